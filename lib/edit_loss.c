/* The editing objective: target NLL and locality terms. */
#include "edit_loss.h"
#include "edit_keys.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

/* Pads encoded sequences to [n, T] and returns the ids tensor; *T_out gets T. */
static kt_tensor *pad_batch(const kne_model *m, kt_arena *a, int32_t *const *seqs, const size_t *lens, size_t n,
                            int64_t *T_out)
{
    size_t T = 0;
    for (size_t i = 0; i < n; i++)
        if (lens[i] > T) T = lens[i];
    int32_t *buf = calloc(n * T, sizeof(int32_t));
    if (!buf) {
        kt_arena_fail(a, KNE_ERR_OUT_OF_MEMORY, "edit batch: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) memcpy(buf + i * T, seqs[i], sizeof(int32_t) * lens[i]);
    kt_tensor *t = kne_ids_tensor(m, a, buf, (int64_t)n, (int64_t)T);
    free(buf);
    *T_out = (int64_t)T;
    return t;
}

/* The neighbour term: each edit prompt with its subject replaced by up to n_neighbours
   other subjects; the next-token distribution there is held to the unedited model's. */
static kne_status neighbour_init(kne_edit_loss *L, kt_arena *a, const kne_fact *facts, size_t n_facts)
{
    const kne_model *m = L->m;
    const kne_edit_params *p = L->p;
    size_t cap = n_facts * (size_t)p->n_neighbours, k = 0;
    if (cap == 0) return KNE_OK;
    int32_t **seqs = calloc(cap, sizeof *seqs);
    size_t *lens = calloc(cap, sizeof *lens);
    char **texts = calloc((size_t)p->n_neighbours, sizeof(char *));
    kne_status s = seqs && lens && texts ? KNE_OK : kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_apply: out of memory");
    for (size_t i = 0; s == KNE_OK && i < n_facts; i++) {
        size_t n = kne_neighbour_prompts(p, &facts[i], texts);
        for (size_t j = 0; j < n; j++) {
            if (s == KNE_OK) s = kne_tokenize_alloc(m, texts[j], 1, &seqs[k], &lens[k]);
            free(texts[j]);
            if (s != KNE_OK) continue;
            if (lens[k] == 0 || lens[k] > (size_t)m->cfg.n_ctx) free(seqs[k]); /* a neighbour too long for the context: skipped */
            else k++;
        }
    }
    free(texts);
    if (s == KNE_OK && k > 0) {
        int64_t T = 0, K = (int64_t)k;
        L->nb_ids = pad_batch(m, a, seqs, lens, k, &T);
        int64_t *last = malloc(sizeof(int64_t) * k);
        if (last) {
            for (size_t i = 0; i < k; i++) last[i] = (int64_t)i * T + (int64_t)lens[i] - 1;
            L->nb_flat_last = kt_from_data(a, last, KT_I64, 1, &K, m->device, KT_I64);
        } else {
            kt_arena_fail(a, KNE_ERR_OUT_OF_MEMORY, "kne_apply: out of memory");
        }
        free(last);
        int prev = kt_grad_mode(0);
        kne_fwd f = {0};
        f.ids = L->nb_ids;
        f.layer_stop = -1;
        kt_tensor *lg = kt_reshape(a, kne_forward_graph(m, a, &f), 2, (int64_t[]){-1, m->cfg.n_vocab});
        L->nb_ref = kt_log_softmax(a, kt_index_select(a, lg, 0, L->nb_flat_last), -1);
        kt_grad_mode(prev);
        s = kt_arena_report(a, "kne_apply: neighbour prompts");
    }
    for (size_t i = 0; i < k; i++) free(seqs[i]);
    free(seqs);
    free(lens);
    return s;
}

kne_status kne_edit_loss_init(kne_edit_loss *L, const kne_model *m, kt_arena *a, const kne_fact *facts, size_t n_facts,
                              const kne_enc_fact *ef, const kne_edit_params *p)
{
    memset(L, 0, sizeof *L);
    L->m = m;
    L->p = p;
    int32_t **seqs = calloc(n_facts, sizeof(int32_t *));
    size_t *lens = calloc(n_facts, sizeof(size_t)), n_tok = 0;
    if (!seqs || !lens) {
        free(seqs);
        free(lens);
        return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_apply: out of memory");
    }
    for (size_t i = 0; i < n_facts; i++) {
        seqs[i] = ef[i].ids;
        lens[i] = ef[i].n_ids;
        n_tok += ef[i].n_tgt;
    }
    int64_t T = 0;
    L->ids = pad_batch(m, a, seqs, lens, n_facts, &T);
    int64_t *pos = malloc(sizeof(int64_t) * n_tok * 2);
    float *w = malloc(sizeof(float) * n_tok);
    if (pos && w) {
        size_t k = 0;
        for (size_t i = 0; i < n_facts; i++)
            for (size_t j = 0; j < ef[i].n_tgt; j++, k++) {
                pos[k] = (int64_t)i * T + (int64_t)(ef[i].tgt_begin + j);
                pos[n_tok + k] = ef[i].tgt[j];
                w[k] = (float)(1.0 / ((double)ef[i].n_tgt * (double)n_facts));
            }
        int64_t N = (int64_t)n_tok;
        L->flat_pos = kt_from_data(a, pos, KT_I64, 1, &N, m->device, KT_I64);
        L->tgt = kt_from_data(a, pos + n_tok, KT_I64, 2, (int64_t[]){N, 1}, m->device, KT_I64);
        L->weight = kt_from_data(a, w, KT_F32, 1, &N, m->device, KT_F32);
    } else {
        kt_arena_fail(a, KNE_ERR_OUT_OF_MEMORY, "kne_apply: out of memory");
    }
    free(pos);
    free(w);
    free(seqs);
    free(lens);
    kne_status s = kt_arena_report(a, "kne_apply");
    if (s == KNE_OK && p->neighbour_weight > 0) s = neighbour_init(L, a, facts, n_facts);
    return s;
}

kt_tensor *kne_edit_loss_eval(const kne_edit_loss *L, kt_arena *a, kne_linear_hook hook, void *hook_ctx,
                              double *target_nll)
{
    const kne_model *m = L->m;
    kne_fwd f = {0};
    f.ids = L->ids;
    f.layer_stop = -1;
    f.hook = hook;
    f.hook_ctx = hook_ctx;
    kt_tensor *logits = kne_forward_graph(m, a, &f);
    int64_t V = m->cfg.n_vocab;
    kt_tensor *flat = kt_reshape(a, logits, 2, (int64_t[]){-1, V});
    kt_tensor *lp = kt_log_softmax(a, kt_index_select(a, flat, 0, L->flat_pos), -1);
    kt_tensor *nll = kt_neg(a, kt_reshape(a, kt_gather(a, lp, 1, L->tgt), 1, (int64_t[]){-1}));
    kt_tensor *loss = kt_sum(a, kt_mul(a, nll, L->weight));
    *target_nll = kt_item(a, loss);
    if (L->nb_ids) {
        f.ids = L->nb_ids;
        kt_tensor *nl = kt_reshape(a, kne_forward_graph(m, a, &f), 2, (int64_t[]){-1, V});
        kt_tensor *cur = kt_log_softmax(a, kt_index_select(a, nl, 0, L->nb_flat_last), -1);
        double w = L->p->neighbour_weight / (double)kt_size(L->nb_ids, 0);
        loss = kt_add(a, loss, kt_scale(a, kt_kl_logits(a, cur, L->nb_ref), w));
    }
    return loss;
}

void kne_edit_loss_finish(kne_edit_loss *L) { (void)L; }
