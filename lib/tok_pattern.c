/* Patterns of tokenizer.json ({"String": ...} or {"Regex": ...}) and finding their
   matches. Regexes go to PCRE2 with UTF and Unicode properties, like the Oniguruma
   engine Hugging Face uses; the compiled code is shared, match data is per call. */
#include "tokenizer.h"
#include "error.h"
#include "json_util.h"

#include <stdlib.h>
#include <string.h>

kne_status tok_pattern_compile_regex(tok_pattern *p, const char *regex, const char *what)
{
    int err = 0;
    PCRE2_SIZE off = 0;
    p->re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    if (!p->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return kne_fail(KNE_ERR_UNSUPPORTED, "tokenizer.json: %s: regex '%s' not accepted at offset %zu: %s",
                        what, regex, (size_t)off, (const char *)msg);
    }
    /* JIT is optional: without it pcre2_match interprets, with the same results */
    (void)pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE);
    return KNE_OK;
}

kne_status tok_pattern_from_json(tok_pattern *p, const json_object *pattern, const char *what)
{
    memset(p, 0, sizeof *p);
    const char *s = kne_json_str(pattern, "String");
    if (s) {
        p->literal_len = strlen(s);
        p->literal = malloc(p->literal_len + 1);
        if (!p->literal) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "tokenizer.json: out of memory");
        memcpy(p->literal, s, p->literal_len + 1);
        return KNE_OK;
    }
    const char *re = kne_json_str(pattern, "Regex");
    if (re) return tok_pattern_compile_regex(p, re, what);
    return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: %s: pattern must be {\"String\": ...} or {\"Regex\": ...}", what);
}

static int push_span(size_t **spans, size_t *n, size_t *cap, size_t a, size_t b)
{
    if (*n + 2 > *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        size_t *v = realloc(*spans, c * sizeof *v);
        if (!v) return -1;
        *spans = v;
        *cap = c;
    }
    (*spans)[(*n)++] = a;
    (*spans)[(*n)++] = b;
    return 0;
}

static kne_status find_literal(const tok_pattern *p, const char *s, size_t n,
                               size_t **spans, size_t *n_spans, size_t *cap)
{
    size_t m = p->literal_len;
    if (m == 0) return KNE_OK;
    size_t i = 0;
    while (i + m <= n) {
        const char *hit = memchr(s + i, p->literal[0], n - m + 1 - i);
        if (!hit) break;
        size_t at = (size_t)(hit - s);
        if (memcmp(hit, p->literal, m) == 0) {
            if (push_span(spans, n_spans, cap, at, at + m)) goto oom;
            i = at + m;
        } else {
            i = at + 1;
        }
    }
    return KNE_OK;
oom:
    return kne_fail(KNE_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
}

kne_status tok_pattern_find_all(const tok_pattern *p, const char *s, size_t n,
                                pcre2_match_data *md, size_t **spans, size_t *n_spans, size_t *cap)
{
    *n_spans = 0;
    if (!p->re) return find_literal(p, s, n, spans, n_spans, cap);
    size_t pos = 0;
    uint32_t opts = PCRE2_NO_UTF_CHECK; /* the text was validated once; re-checking is quadratic */
    while (pos <= n) {
        int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, pos, opts, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !(opts & PCRE2_NO_JIT)) {
            opts |= PCRE2_NO_JIT; /* the interpreter keeps its backtracking on the heap */
            continue;
        }
        if (rc < 0 && rc != 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return kne_fail(KNE_ERR_UNSUPPORTED, "tokenizer: regex match failed: %s", (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        if (b > a) {
            if (push_span(spans, n_spans, cap, a, b))
                return kne_fail(KNE_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
            pos = b;
        } else {
            /* empty match: step over one character */
            if (a >= n) break;
            uint32_t cp;
            pos = a + tok_utf8_next(s + a, n - a, &cp);
        }
    }
    return KNE_OK;
}

void tok_pattern_free(tok_pattern *p)
{
    free(p->literal);
    if (p->re) pcre2_code_free(p->re);
    memset(p, 0, sizeof *p);
}
