#include "metrics.h"
#include "common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* qsort context for n-grams (C99 qsort has no user pointer) */
static const int32_t *g_seq;
static int g_order;

static int cmp_gram(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    for (int k = 0; k < g_order; k++) {
        int32_t x = g_seq[i + (size_t)k], y = g_seq[j + (size_t)k];
        if (x != y) return x < y ? -1 : 1;
    }
    return 0;
}

double cli_ngram_entropy(const int32_t *ids, size_t n, int order)
{
    if (order < 1 || n < (size_t)order) return 0;
    size_t m = n - (size_t)order + 1;
    size_t *idx = malloc(m * sizeof *idx);
    if (!idx) return NAN;
    for (size_t i = 0; i < m; i++) idx[i] = i;
    g_seq = ids;
    g_order = order;
    qsort(idx, m, sizeof *idx, cmp_gram);
    double h = 0;
    size_t run = 1;
    for (size_t i = 1; i <= m; i++) {
        if (i < m && cmp_gram(&idx[i - 1], &idx[i]) == 0) {
            run++;
            continue;
        }
        double p = (double)run / (double)m;
        h -= p * log2(p);
        run = 1;
    }
    free(idx);
    return h + 0.0; /* no -0 */
}

double cli_fluency_entropy(const int32_t *ids, size_t n)
{
    double h2 = cli_ngram_entropy(ids, n, 2), h3 = cli_ngram_entropy(ids, n, 3);
    return (2.0 / 3.0 * h2 + 4.0 / 3.0 * h3) / 2.0;
}

double cli_token_accuracy(const int32_t *pred, const int32_t *want, size_t n)
{
    if (!n) return 0;
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) ok += pred[i] == want[i];
    return (double)ok / (double)n;
}

void cli_tf_free(cli_tf *t)
{
    if (!t) return;
    free(t->ids);
    free(t->ans);
    memset(t, 0, sizeof *t);
}

kne_status cli_tf_encode(const kne_model *m, const char *prompt, const char *answer, cli_tf *out)
{
    memset(out, 0, sizeof *out);
    int32_t *p = NULL, *f = NULL;
    size_t np = 0, nf = 0;
    size_t len = strlen(prompt) + strlen(answer) + 2;
    char *full = malloc(len);
    if (!full) return KNE_ERR_OUT_OF_MEMORY;
    snprintf(full, len, "%s %s", prompt, answer);
    kne_status s = cli_tokenize(m, prompt, 1, &p, &np);
    if (s == KNE_OK) s = cli_tokenize(m, full, 1, &f, &nf);
    free(full);
    if (s == KNE_OK && (np == 0 || nf <= np)) s = KNE_ERR_EMPTY; /* no answer tokens */
    if (s == KNE_OK) {
        out->n_ans = nf - np;
        out->ans = malloc(out->n_ans * sizeof *out->ans);
        if (!out->ans) s = KNE_ERR_OUT_OF_MEMORY;
    }
    if (s != KNE_OK) {
        free(p);
        free(f);
        free(out->ans);
        memset(out, 0, sizeof *out);
        return s;
    }
    memcpy(out->ans, f + np, out->n_ans * sizeof *out->ans);
    out->ids = f;
    out->n_ids = nf - 1;
    out->begin = np - 1;
    free(p);
    return KNE_OK;
}

kne_status cli_tf_predict(kne_model *m, const cli_tf *t, int32_t *pred)
{
    size_t V = (size_t)kne_model_n_vocab(m);
    float *lg = malloc(t->n_ids * V * sizeof *lg);
    if (!lg) return KNE_ERR_OUT_OF_MEMORY;
    kne_status s = kne_model_forward(m, t->ids, t->n_ids, lg);
    if (s == KNE_OK)
        for (size_t i = 0; i < t->n_ans; i++) {
            const float *row = lg + (t->begin + i) * V;
            size_t best = 0;
            for (size_t v = 1; v < V; v++)
                if (row[v] > row[best]) best = v;
            pred[i] = (int32_t)best;
        }
    free(lg);
    return s;
}

kne_status cli_tf_accuracy(kne_model *m, const char *prompt, const char *answer, double *acc)
{
    cli_tf t;
    kne_status s = cli_tf_encode(m, prompt, answer, &t);
    if (s != KNE_OK) return s;
    int32_t *pred = malloc(t.n_ans * sizeof *pred);
    if (!pred) s = KNE_ERR_OUT_OF_MEMORY;
    if (s == KNE_OK) s = cli_tf_predict(m, &t, pred);
    if (s == KNE_OK) *acc = cli_token_accuracy(pred, t.ans, t.n_ans);
    free(pred);
    cli_tf_free(&t);
    return s;
}

kne_status cli_fluency(kne_model *m, const char *prompt, int top_k, int max_len, uint64_t seed, double *out)
{
    int32_t *p = NULL;
    size_t np = 0;
    kne_status s = cli_tokenize(m, prompt, 1, &p, &np);
    if (s != KNE_OK) return s;
    if (np == 0) {
        free(p);
        return KNE_ERR_EMPTY;
    }
    size_t room = max_len > (int)np ? (size_t)max_len - np : 0;
    int32_t *seq = malloc((np + room + 1) * sizeof *seq);
    if (!seq) {
        free(p);
        return KNE_ERR_OUT_OF_MEMORY;
    }
    memcpy(seq, p, np * sizeof *seq);
    size_t made = 0;
    if (room) {
        kne_generate_params gp = kne_generate_default_params();
        gp.max_tokens = (int32_t)room;
        gp.top_k = top_k;
        gp.seed = seed;
        gp.stop_at_eos = false; /* as ROME/EasyEdit's generate_fast: always max_len tokens */
        s = kne_model_generate(m, p, np, &gp, seq + np, room, &made);
    }
    if (s == KNE_OK) {
        /* the text is decoded without special tokens: leave BOS and EOS out */
        int32_t bos = kne_tokenizer_bos(kne_model_tokenizer(m));
        int32_t eos = kne_tokenizer_eos(kne_model_tokenizer(m));
        size_t k = 0;
        for (size_t i = 0; i < np + made; i++)
            if (seq[i] != bos && seq[i] != eos) seq[k++] = seq[i];
        *out = cli_fluency_entropy(seq, k);
    }
    free(seq);
    free(p);
    return s;
}
