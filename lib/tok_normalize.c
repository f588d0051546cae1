/* Normalizers: text -> text, as Hugging Face's normalizers module. */
#include "tokenizer.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static kne_status oom(void) { return kne_fail(KNE_ERR_OUT_OF_MEMORY, "tokenizer: out of memory"); }

static kne_status replace(const tok_normalizer *nz, const char *s, size_t n, tok_buf *out)
{
    size_t *spans = NULL, n_spans = 0, cap = 0;
    pcre2_match_data *md = nz->pat.re ? pcre2_match_data_create(1, NULL) : NULL;
    if (nz->pat.re && !md) return oom();
    kne_status st = tok_pattern_find_all(&nz->pat, s, n, md, &spans, &n_spans, &cap);
    size_t prev = 0;
    for (size_t i = 0; st == KNE_OK && i < n_spans; i += 2) {
        if (tok_buf_append(out, s + prev, spans[i] - prev) || tok_buf_append(out, nz->str, nz->str_len))
            st = oom();
        prev = spans[i + 1];
    }
    if (st == KNE_OK && tok_buf_append(out, s + prev, n - prev)) st = oom();
    free(spans);
    if (md) pcre2_match_data_free(md);
    return st;
}

static kne_status unicode_form(int options, const char *s, size_t n, tok_buf *out)
{
    if (n == 0) return KNE_OK;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                        (utf8proc_option_t)(UTF8PROC_STABLE | options));
    if (len < 0) return kne_fail(KNE_ERR_ENCODING, "tokenizer: normalization failed: %s", utf8proc_errmsg(len));
    int r = tok_buf_append(out, (const char *)dst, (size_t)len);
    free(dst);
    return r ? oom() : KNE_OK;
}

static kne_status strip(const tok_normalizer *nz, const char *s, size_t n, tok_buf *out)
{
    size_t a = 0, b = n;
    uint32_t cp;
    while (nz->left && a < b) {
        size_t len = tok_utf8_next(s + a, b - a, &cp);
        if (!tok_is_whitespace(cp)) break;
        a += len;
    }
    while (nz->right && b > a) {
        size_t len = tok_utf8_prev_len(s + a, b - a);
        tok_utf8_next(s + b - len, len, &cp);
        if (!tok_is_whitespace(cp)) break;
        b -= len;
    }
    return tok_buf_append(out, s + a, b - a) ? oom() : KNE_OK;
}

/* Per character, as Rust's char::to_lowercase; U+0130 is its one multi-character case. */
static kne_status lowercase(const char *s, size_t n, tok_buf *out)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = tok_utf8_next(s + i, n - i, &cp);
        char enc[8];
        size_t m;
        if (cp == 0x130) {
            m = tok_utf8_encode('i', enc);
            m += tok_utf8_encode(0x307, enc + m);
        } else {
            m = tok_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), enc);
        }
        if (tok_buf_append(out, enc, m)) return oom();
        i += len;
    }
    return KNE_OK;
}

kne_status tok_normalize(const tok_normalizer *nz, const char *s, size_t n, tok_buf *out)
{
    out->n = 0;
    switch (nz->kind) {
    case TN_SEQUENCE: {
        tok_buf a = { 0 }, b = { 0 };
        if (tok_buf_append(&a, s, n)) return oom();
        for (size_t i = 0; i < nz->n_items; i++) {
            kne_status st = tok_normalize(&nz->items[i], a.p, a.n, &b);
            if (st != KNE_OK) { tok_buf_free(&a); tok_buf_free(&b); return st; }
            tok_buf t = a; a = b; b = t;
        }
        int r = tok_buf_append(out, a.p, a.n);
        tok_buf_free(&a);
        tok_buf_free(&b);
        return r ? oom() : KNE_OK;
    }
    case TN_PREPEND: /* HF prepends only to non-empty text */
        if (n && tok_buf_append(out, nz->str, nz->str_len)) return oom();
        return tok_buf_append(out, s, n) ? oom() : KNE_OK;
    case TN_APPEND:
        if (tok_buf_append(out, s, n)) return oom();
        return n && tok_buf_append(out, nz->str, nz->str_len) ? oom() : KNE_OK;
    case TN_REPLACE: return replace(nz, s, n, out);
    case TN_NFC: return unicode_form(UTF8PROC_COMPOSE, s, n, out);
    case TN_NFD: return unicode_form(UTF8PROC_DECOMPOSE, s, n, out);
    case TN_NFKC: return unicode_form(UTF8PROC_COMPOSE | UTF8PROC_COMPAT, s, n, out);
    case TN_NFKD: return unicode_form(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, s, n, out);
    case TN_STRIP: return strip(nz, s, n, out);
    case TN_LOWERCASE: return lowercase(s, n, out);
    }
    return kne_fail(KNE_ERR_UNSUPPORTED, "tokenizer: unknown normalizer");
}
