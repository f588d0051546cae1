/* Decoding: ids -> token strings -> the decoder chain -> text, as HF's decoders
   (each decoder maps a list of strings to a list of strings; the result is joined). */
#include "tokenizer.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

static kne_status oom(void) { return kne_fail(KNE_ERR_OUT_OF_MEMORY, "tokenizer: out of memory"); }

#define TOK_P(l, i) ((l)->text.p + (l)->v[i].start)
#define TOK_N(l, i) ((l)->v[i].end - (l)->v[i].start)

static const char FFFD[3] = { (char)0xEF, (char)0xBF, (char)0xBD };

/* ByteLevel: each character back to its byte; a token with a character outside the
   table keeps its UTF-8 bytes. The bytes are then read as lossy UTF-8. */
static kne_status bytelevel(const kne_tokenizer *t, const tok_pieces *in, tok_pieces *out)
{
    tok_buf bytes = { 0 };
    kne_status st = KNE_OK;
    for (size_t i = 0; i < in->n && st == KNE_OK; i++) {
        const char *p = TOK_P(in, i);
        size_t n = TOK_N(in, i), start = bytes.n;
        for (size_t k = 0; k < n;) {
            uint32_t cp;
            size_t len = tok_utf8_next(p + k, n - k, &cp);
            if (cp >= 324 || t->bl_dec[cp] < 0) {
                bytes.n = start;
                if (tok_buf_append(&bytes, p, n)) st = oom();
                break;
            }
            char b = (char)t->bl_dec[cp];
            if (tok_buf_append(&bytes, &b, 1)) { st = oom(); break; }
            k += len;
        }
    }
    size_t start = out->text.n;
    if (st == KNE_OK && (tok_utf8_lossy(&out->text, bytes.p, bytes.n) ||
                         tok_pieces_push(out, start, out->text.n, 0)))
        st = oom();
    tok_buf_free(&bytes);
    return st;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "<0xAB>" -> 0xAB, else -1 (u8::from_str_radix also takes a leading '+') */
static int byte_token(const char *p, size_t n)
{
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    if (p[3] == '+') return hexval(p[4]);
    int hi = hexval(p[3]), lo = hexval(p[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static kne_status flush_bytes(tok_buf *pending, tok_pieces *out)
{
    if (!pending->n) return KNE_OK;
    if (tok_utf8_valid(pending->p, pending->n, NULL)) {
        if (tok_pieces_add(out, pending->p, pending->n, 0)) return oom();
    } else {
        for (size_t i = 0; i < pending->n; i++)
            if (tok_pieces_add(out, FFFD, 3, 0)) return oom();
    }
    pending->n = 0;
    return KNE_OK;
}

static kne_status bytefallback(const tok_pieces *in, tok_pieces *out)
{
    tok_buf pending = { 0 };
    kne_status st = KNE_OK;
    for (size_t i = 0; i < in->n && st == KNE_OK; i++) {
        int b = byte_token(TOK_P(in, i), TOK_N(in, i));
        if (b >= 0) {
            char c = (char)b;
            if (tok_buf_append(&pending, &c, 1)) st = oom();
            continue;
        }
        st = flush_bytes(&pending, out);
        if (st == KNE_OK && tok_pieces_add(out, TOK_P(in, i), TOK_N(in, i), 0)) st = oom();
    }
    if (st == KNE_OK) st = flush_bytes(&pending, out);
    tok_buf_free(&pending);
    return st;
}

static kne_status replace(const tok_decoder *d, const tok_pieces *in, tok_pieces *out)
{
    size_t *spans = NULL, n_spans = 0, cap = 0;
    pcre2_match_data *md = d->pat.re ? pcre2_match_data_create(1, NULL) : NULL;
    if (d->pat.re && !md) return oom();
    kne_status st = KNE_OK;
    for (size_t i = 0; i < in->n && st == KNE_OK; i++) {
        const char *p = TOK_P(in, i);
        size_t n = TOK_N(in, i), start = out->text.n, prev = 0;
        st = tok_pattern_find_all(&d->pat, p, n, md, &spans, &n_spans, &cap);
        for (size_t k = 0; k < n_spans && st == KNE_OK; k += 2) {
            if (tok_buf_append(&out->text, p + prev, spans[k] - prev) ||
                tok_buf_append(&out->text, d->content, d->content_len))
                st = oom();
            prev = spans[k + 1];
        }
        if (st == KNE_OK && (tok_buf_append(&out->text, p + prev, n - prev) ||
                             tok_pieces_push(out, start, out->text.n, 0)))
            st = oom();
    }
    free(spans);
    if (md) pcre2_match_data_free(md);
    return st;
}

static kne_status fuse(const tok_pieces *in, tok_pieces *out)
{
    size_t start = out->text.n;
    for (size_t i = 0; i < in->n; i++)
        if (tok_buf_append(&out->text, TOK_P(in, i), TOK_N(in, i))) return oom();
    return tok_pieces_push(out, start, out->text.n, 0) ? oom() : KNE_OK;
}

/* Removes up to start leading and stop trailing copies of one character per token. */
static kne_status strip(const tok_decoder *d, const tok_pieces *in, tok_pieces *out)
{
    for (size_t i = 0; i < in->n; i++) {
        const char *p = TOK_P(in, i);
        size_t a = 0, b = TOK_N(in, i);
        uint32_t cp;
        for (int64_t k = 0; k < d->strip_start && a < b; k++) {
            size_t len = tok_utf8_next(p + a, b - a, &cp);
            if (cp != d->strip_char) break;
            a += len;
        }
        for (int64_t k = 0; k < d->strip_stop && b > a; k++) {
            size_t len = tok_utf8_prev_len(p + a, b - a);
            tok_utf8_next(p + b - len, len, &cp);
            if (cp != d->strip_char) break;
            b -= len;
        }
        if (tok_pieces_add(out, p + a, b - a, 0)) return oom();
    }
    return KNE_OK;
}

/* The replacement becomes a space, except in the first token (HF drops it there
   unless prepend_scheme is "never"). */
static kne_status metaspace(const tok_decoder *d, const tok_pieces *in, tok_pieces *out)
{
    for (size_t i = 0; i < in->n; i++) {
        const char *p = TOK_P(in, i);
        size_t n = TOK_N(in, i), start = out->text.n;
        for (size_t k = 0; k < n;) {
            uint32_t cp;
            size_t len = tok_utf8_next(p + k, n - k, &cp);
            int r = 0;
            if (cp != d->repl) r = tok_buf_append(&out->text, p + k, len);
            else if (i != 0 || d->prepend_scheme == PREPEND_NEVER) r = tok_buf_append(&out->text, " ", 1);
            if (r) return oom();
            k += len;
        }
        if (tok_pieces_push(out, start, out->text.n, 0)) return oom();
    }
    return KNE_OK;
}

kne_status tok_decode_chain(const kne_tokenizer *t, const tok_decoder *d, tok_pieces *toks, tok_pieces *tmp)
{
    if (d->kind == TD_SEQUENCE) {
        for (size_t i = 0; i < d->n_items; i++) KNE_TRY(tok_decode_chain(t, &d->items[i], toks, tmp));
        return KNE_OK;
    }
    tok_pieces_clear(tmp);
    kne_status st;
    switch (d->kind) {
    case TD_BYTELEVEL: st = bytelevel(t, toks, tmp); break;
    case TD_REPLACE: st = replace(d, toks, tmp); break;
    case TD_BYTEFALLBACK: st = bytefallback(toks, tmp); break;
    case TD_FUSE: st = fuse(toks, tmp); break;
    case TD_STRIP: st = strip(d, toks, tmp); break;
    case TD_METASPACE: st = metaspace(d, toks, tmp); break;
    default: st = kne_fail(KNE_ERR_UNSUPPORTED, "tokenizer: unknown decoder");
    }
    if (st != KNE_OK) return st;
    tok_pieces swap = *toks;
    *toks = *tmp;
    *tmp = swap;
    return KNE_OK;
}

KNE_API kne_status kne_tokenizer_decode(const kne_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                        char *buf, size_t cap, size_t *len_out)
{
    kne_clear_error();
    if (!tok || (n_ids && !ids) || (cap && !buf) || !len_out)
        return kne_fail(KNE_ERR_INVALID_ARG, "kne_tokenizer_decode: NULL argument");
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= tok->n_vocab)
            return kne_fail(KNE_ERR_INVALID_ARG, "kne_tokenizer_decode: id %d at %zu is outside [0, %d)",
                            (int)ids[i], i, (int)tok->n_vocab);
    tok_pieces toks = { 0 }, tmp = { 0 };
    kne_status st = KNE_OK;
    for (size_t i = 0; i < n_ids && st == KNE_OK; i++) {
        const char *s = tok->id_str[ids[i]];
        if (!s) continue; /* an id with no token (a hole in the vocabulary): HF skips it */
        if (tok_pieces_add(&toks, s, tok->id_len[ids[i]], 0)) st = oom();
    }
    if (st == KNE_OK && tok->decoder) st = tok_decode_chain(tok, tok->decoder, &toks, &tmp);
    /* join: no separator after a decoder, " " without one (HF) */
    tok_buf text = { 0 };
    for (size_t i = 0; i < toks.n && st == KNE_OK; i++) {
        if (!tok->decoder && i > 0 && tok_buf_append(&text, " ", 1)) st = oom();
        if (st == KNE_OK && tok_buf_append(&text, TOK_P(&toks, i), TOK_N(&toks, i))) st = oom();
    }
    if (st == KNE_OK) {
        *len_out = text.n;
        if (cap < text.n + 1) {
            st = kne_fail(KNE_ERR_BUFFER_TOO_SMALL, "kne_tokenizer_decode: text needs %zu bytes with the NUL, buffer has %zu",
                          text.n + 1, cap);
        } else {
            if (text.n) memcpy(buf, text.p, text.n);
            buf[text.n] = '\0';
        }
    }
    tok_buf_free(&text);
    tok_pieces_free(&toks);
    tok_pieces_free(&tmp);
    return st;
}
