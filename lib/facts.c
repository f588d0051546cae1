/* Tokenization of facts, shared by locate and apply. */
#include "facts.h"
#include "error.h"
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kne_status kne_tokenize_alloc(const kne_model *m, const char *text, int add_special, int32_t **ids, size_t *n)
{
    size_t need = 0;
    kne_status s = kne_tokenize(m, text, add_special, NULL, 0, &need);
    if (s != KNE_OK && s != KNE_ERR_BUFFER_TOO_SMALL) return s;
    int32_t *buf = malloc(sizeof(int32_t) * (need ? need : 1));
    if (!buf) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "tokenize: out of memory");
    s = kne_tokenize(m, text, add_special, buf, need, n);
    if (s != KNE_OK) {
        free(buf);
        return s;
    }
    *ids = buf;
    return KNE_OK;
}

static int blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return 0;
    return 1;
}

kne_status kne_fact_encode(const kne_model *m, const kne_fact *f, size_t which, kne_enc_fact *out)
{
    memset(out, 0, sizeof *out);
    if (!f->prompt || !f->target) return kne_fail(KNE_ERR_INVALID_ARG, "fact %zu: prompt and target must not be NULL", which);
    if (blank(f->prompt)) return kne_fail(KNE_ERR_EMPTY, "fact %zu: the prompt is empty", which);
    if (blank(f->target)) return kne_fail(KNE_ERR_EMPTY, "fact %zu: the target is empty", which);
    size_t lp = strlen(f->prompt), lt = strlen(f->target);
    char *full = malloc(lp + lt + 2);
    if (!full) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "fact %zu: out of memory", which);
    memcpy(full, f->prompt, lp);
    full[lp] = ' ';
    memcpy(full + lp + 1, f->target, lt + 1);
    int32_t *p = NULL, *all = NULL;
    size_t np = 0, nall = 0;
    kne_status s = kne_tokenize_alloc(m, f->prompt, 1, &p, &np);
    if (s == KNE_OK) s = kne_tokenize_alloc(m, full, 1, &all, &nall);
    free(full);
    if (s != KNE_OK) {
        free(p);
        kne_error_prefix("fact tokenization");
        return s;
    }
    free(p);
    if (np == 0 || nall <= np) {
        free(all);
        return kne_fail(KNE_ERR_EMPTY, "fact %zu: the prompt or the target has no tokens", which);
    }
    if (nall - 1 > (size_t)m->cfg.n_ctx) {
        free(all);
        return kne_fail(KNE_ERR_TOO_LONG, "fact %zu: %zu tokens exceed the model's context of %d", which, nall - 1,
                        m->cfg.n_ctx);
    }
    out->ids = all;
    out->n_ids = nall - 1;
    out->n_prompt = np;
    out->tgt_begin = np - 1;
    out->n_tgt = nall - np;
    out->tgt = all + np; /* the tail of the same array: target j is ids[tgt_begin + j + 1] */
    return KNE_OK;
}

kne_status kne_facts_encode(const kne_model *m, const kne_fact *facts, size_t n, kne_enc_fact **out)
{
    if (!facts && n) return kne_fail(KNE_ERR_INVALID_ARG, "facts is NULL");
    if (n == 0) return kne_fail(KNE_ERR_EMPTY, "no facts given");
    kne_enc_fact *e = calloc(n, sizeof *e);
    if (!e) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "facts: out of memory");
    for (size_t i = 0; i < n; i++) {
        kne_status s = kne_fact_encode(m, &facts[i], i, &e[i]);
        if (s != KNE_OK) {
            kne_facts_free(e, i);
            return s;
        }
    }
    *out = e;
    return KNE_OK;
}

void kne_facts_free(kne_enc_fact *f, size_t n)
{
    if (!f) return;
    for (size_t i = 0; i < n; i++) free(f[i].ids);
    free(f);
}

/* Number of tokens of the first len bytes of text (with BOS), or -1. */
static long count_tokens(const kne_model *m, const char *text, size_t len)
{
    char *buf = malloc(len + 1);
    if (!buf) return -1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    size_t n = 0;
    kne_status s = kne_tokenize(m, buf, 1, NULL, 0, &n);
    free(buf);
    return s == KNE_OK || s == KNE_ERR_BUFFER_TOO_SMALL ? (long)n : -1;
}

int kne_subject_span(const kne_model *m, const char *prompt, const char *subject, size_t *begin, size_t *end)
{
    if (!prompt || !subject || !*subject) return 0;
    const char *at = strstr(prompt, subject);
    if (!at) return 0;
    size_t pre = (size_t)(at - prompt);
    while (pre > 0 && prompt[pre - 1] == ' ') pre--; /* the space belongs to the subject's first token */
    long b = count_tokens(m, prompt, pre), e = count_tokens(m, prompt, (size_t)(at - prompt) + strlen(subject));
    if (b < 0 || e <= b) return 0;
    *begin = (size_t)b;
    *end = (size_t)e;
    return 1;
}
