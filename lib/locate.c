/* kne_locate: integrated-gradient attribution of every neuron (eq. 4-5) and the
   global-quantile ensemble (eq. 6-7).

   For a linear output z = W x (+ b), scaling W by i/m scales Wx. The attribution of
   output k is w_k/m * sum_i dP/dw_k (i/m W) = 1/m * sum_i sum_t g_k(i, t) * z_k(t),
   with g the gradient w.r.t. the scaled output and z = Wx unscaled: gradients w.r.t.
   the linear outputs only, never weight gradients. The m steps run as one batch,
   starting from the residual stream entering the scaled layer, computed once per fact. */
#include "ensemble.h"
#include "error.h"
#include "facts.h"
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

KNE_API kne_locate_params kne_locate_default_params(void)
{
    kne_locate_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.steps = 20;
    p.keep = 0.1;
    p.modules = KNE_MODULE_MLP_DOWN;
    p.layer_begin = 0;
    p.layer_end = -1;
    p.objective = KNE_OBJECTIVE_PROB;
    return p;
}

typedef struct scale_hook {
    int layer, module;
    kt_tensor *alpha;            /* [m, 1, 1]: i/m */
    kt_tensor *z;                /* unscaled Wx, detached */
    kt_tensor *scaled;           /* the leaf whose gradient is g */
} scale_hook;

static kt_tensor *scale_fn(void *ctx, kt_arena *a, int layer, int module, kt_tensor *z, kt_tensor *x)
{
    scale_hook *h = ctx;
    if (layer != h->layer || module != h->module) return z;
    h->z = kt_detach(a, z);
    h->scaled = kt_requires_grad(a, kt_mul(a, h->z, h->alpha));
    return h->scaled;
}

/* Adds one fact's scores of (layer, module) into acc (n_out floats). */
static kne_status attribute_one(kne_model *m, const kne_enc_fact *f, kt_tensor *x_l, int layer, int module,
                                const kne_locate_params *p, float *acc)
{
    kt_arena *a = kt_arena_new();
    int64_t M = p->steps, T = (int64_t)f->n_ids, E = m->cfg.n_embd;
    kt_tensor *alpha = kt_arange(a, 1, (double)M + 0.5, 1, KT_F32, m->device);
    alpha = kt_to(a, kt_reshape(a, kt_scale(a, alpha, 1.0 / (double)M), 3, (int64_t[]){M, 1, 1}), m->dtype);
    scale_hook h = {layer, module, alpha, NULL, NULL};
    kne_fwd fw = {0};
    fw.ids = kt_expand(a, kne_ids_tensor(m, a, f->ids, 1, T), 2, (int64_t[]){M, T});
    fw.layer_begin = layer;
    fw.x_in = kt_expand(a, x_l, 3, (int64_t[]){M, T, E});
    fw.layer_stop = -1;
    int64_t *pos = malloc(sizeof(int64_t) * f->n_tgt);
    for (size_t j = 0; j < f->n_tgt; j++) pos[j] = (int64_t)(f->tgt_begin + j);
    fw.positions = kt_from_data(a, pos, KT_I64, 1, (int64_t[]){(int64_t)f->n_tgt}, m->device, KT_I64);
    free(pos);
    fw.hook = scale_fn;
    fw.hook_ctx = &h;
    kt_tensor *lp = kt_log_softmax(a, kne_forward_graph(m, a, &fw), -1);       /* [M, n_tgt, V] */
    kt_tensor *tg = kt_expand(a, kt_reshape(a, kne_ids_tensor(m, a, f->tgt, 1, (int64_t)f->n_tgt), 3,
                                            (int64_t[]){1, (int64_t)f->n_tgt, 1}),
                              3, (int64_t[]){M, (int64_t)f->n_tgt, 1});
    kt_tensor *sel = kt_gather(a, lp, 2, tg);
    kt_tensor *obj = kt_sum(a, p->objective == KNE_OBJECTIVE_LOGPROB ? sel : kt_exp(a, sel));
    kt_tensor *g = NULL;
    kne_status s = kt_arena_status(a) == KNE_OK && h.scaled ? kt_grad(a, obj, &h.scaled, 1, &g) : KNE_ERR_BACKEND;
    if (s == KNE_OK) {
        /* sum over steps and positions of g * z, / m, accumulated in float32 */
        kt_tensor *sc = kt_scale(a, kt_sum_dim(a, kt_sum_dim(a, kt_to(a, kt_mul(a, g, h.z), KT_F32), 0, 0), 0, 0),
                                 1.0 / (double)M);
        int64_t n = kt_numel(sc);
        float *tmp = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
        s = tmp ? kt_copy_to_f32(a, sc, tmp, (size_t)n) : KNE_ERR_OUT_OF_MEMORY;
        if (s == KNE_OK)
            for (int64_t k = 0; k < n; k++) acc[k] += tmp[k];
        free(tmp);
    }
    s = kt_arena_status(a) != KNE_OK ? kt_arena_report(a, "attribution")
        : s != KNE_OK ? kne_fail(s, "attribution: no gradient for layer %d", layer) : KNE_OK;
    kt_arena_free(a);
    return s;
}

/* Residual streams entering every layer for one fact (no grad), in arena a. */
static kne_status prefix_streams(kne_model *m, kt_arena *a, const kne_enc_fact *f, kt_tensor **res)
{
    kne_fwd fw = {0};
    fw.ids = kne_ids_tensor(m, a, f->ids, 1, (int64_t)f->n_ids);
    fw.layer_stop = m->cfg.n_layer; /* the streams are all we need */
    fw.residuals = res;
    kne_forward_graph(m, a, &fw);
    return kt_arena_report(a, "attribution prefix");
}

static kne_status check_params(const kne_model *m, const kne_locate_params *p, int *lb, int *le)
{
    if (p->steps <= 0 || p->steps > 10000)
        return kne_fail(KNE_ERR_INVALID_ARG, "kne_locate: steps = %d must be in [1, 10000]", p->steps);
    if (!(p->keep > 0 && p->keep <= 1))
        return kne_fail(KNE_ERR_INVALID_ARG, "kne_locate: keep = %g must be in (0, 1]", p->keep);
    if (p->objective != KNE_OBJECTIVE_PROB && p->objective != KNE_OBJECTIVE_LOGPROB)
        return kne_fail(KNE_ERR_INVALID_ARG, "kne_locate: objective %d is not a KNE_OBJECTIVE_* value", p->objective);
    if (p->modules == 0 || (p->modules & ~(uint32_t)KNE_MODULE_ALL))
        return kne_fail(KNE_ERR_INVALID_ARG, "kne_locate: modules 0x%x is not a non-empty set of KNE_MODULE_* bits",
                        p->modules);
    for (int mi = 0; mi < KNE_N_MODULES; mi++)
        if ((p->modules & (1u << mi)) && !kne_model_has_module(m, mi))
            return kne_fail(KNE_ERR_UNSUPPORTED, "kne_locate: module %s does not exist in %s models",
                            kne_module_name(1u << mi), kne_model_arch(m));
    *lb = p->layer_begin;
    *le = p->layer_end < 0 ? m->cfg.n_layer : p->layer_end;
    if (*lb < 0 || *lb >= *le || *le > m->cfg.n_layer)
        return kne_fail(KNE_ERR_INVALID_ARG, "kne_locate: layers [%d, %d) are not a non-empty range within [0, %d)",
                        p->layer_begin, p->layer_end, m->cfg.n_layer);
    return KNE_OK;
}

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* eq. 6-7: one threshold t_p (the k-th largest score, k = round(keep * N)) over all
   scored neurons; keep every neuron with score >= t_p. */
static kne_status select_rows(kne_ensemble *e, double keep)
{
    size_t total = 0;
    for (size_t i = 0; i < (size_t)e->n_layers * KNE_N_MODULES; i++) total += e->entries[i].scores ? e->entries[i].n_scores : 0;
    float *all = malloc(sizeof(float) * total);
    if (!all) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_locate: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < (size_t)e->n_layers * KNE_N_MODULES; i++)
        if (e->entries[i].scores) {
            memcpy(all + k, e->entries[i].scores, sizeof(float) * e->entries[i].n_scores);
            k += e->entries[i].n_scores;
        }
    qsort(all, total, sizeof(float), cmp_desc);
    size_t keep_n = (size_t)llround(keep * (double)total);
    if (keep_n < 1) keep_n = 1;
    if (keep_n > total) keep_n = total;
    float thr = all[keep_n - 1];
    free(all);
    e->threshold = thr;
    for (size_t i = 0; i < (size_t)e->n_layers * KNE_N_MODULES; i++) {
        kne_ens_entry *en = &e->entries[i];
        if (!en->scores) continue;
        size_t n = 0;
        for (size_t r = 0; r < en->n_scores; r++) n += en->scores[r] >= thr;
        en->rows = malloc(sizeof(int32_t) * (n ? n : 1));
        if (!en->rows) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_locate: out of memory");
        for (size_t r = 0; r < en->n_scores; r++)
            if (en->scores[r] >= thr) en->rows[en->n_rows++] = (int32_t)r;
    }
    return KNE_OK;
}

KNE_API kne_status kne_locate(kne_ensemble **out, kne_model *m, const kne_fact *facts, size_t n_facts,
                              const kne_locate_params *params)
{
    kne_clear_error();
    if (!out || !m) return kne_fail(KNE_ERR_INVALID_ARG, "kne_locate: out and model must not be NULL");
    *out = NULL;
    kne_locate_params p = kne_locate_default_params();
    if (params) {
        if (params->struct_size < offsetof(kne_locate_params, progress) || params->struct_size > sizeof p)
            return kne_fail(KNE_ERR_INVALID_ARG, "kne_locate: params->struct_size %u is not a known size", params->struct_size);
        memcpy(&p, params, params->struct_size);
    }
    int lb = 0, le = 0;
    KNE_TRY(check_params(m, &p, &lb, &le));
    kne_enc_fact *ef = NULL;
    KNE_TRY(kne_facts_encode(m, facts, n_facts, &ef));
    kne_ensemble *e = NULL;
    kne_status s = kne_ensemble_alloc(&e, m);
    for (int l = lb; l < le && s == KNE_OK; l++)
        for (int mi = 0; mi < KNE_N_MODULES && s == KNE_OK; mi++) {
            if (!(p.modules & (1u << mi))) continue;
            kne_ens_entry *en = kne_ensemble_entry(e, l, mi);
            en->n_scores = (size_t)e->module_size[mi];
            en->scores = calloc(en->n_scores, sizeof(float));
            if (!en->scores) s = kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_locate: out of memory");
        }
    int prev = kt_grad_mode(0);
    size_t units = 0, done = 0;
    for (int mi = 0; mi < KNE_N_MODULES; mi++) units += (p.modules >> mi) & 1;
    units *= (size_t)(le - lb) * n_facts;
    kne_model_use_threads(m);
    /* The read lock is held per fact (its prefix and units), not across callbacks, so a
       waiting row write is not held up by a whole locate. */
    for (size_t fi = 0; fi < n_facts && s == KNE_OK; fi++) {
        kt_arena *a = kt_arena_new();
        kt_tensor **res = calloc((size_t)m->cfg.n_layer, sizeof *res);
        pthread_rwlock_rdlock(&m->lock);
        s = res ? prefix_streams(m, a, &ef[fi], res) : kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_locate: out of memory");
        pthread_rwlock_unlock(&m->lock);
        for (int l = lb; l < le && s == KNE_OK; l++)
            for (int mi = 0; mi < KNE_N_MODULES && s == KNE_OK; mi++) {
                if (!(p.modules & (1u << mi))) continue;
                kt_grad_mode(1);
                pthread_rwlock_rdlock(&m->lock);
                s = attribute_one(m, &ef[fi], res[l], l, mi, &p, kne_ensemble_entry(e, l, mi)->scores);
                pthread_rwlock_unlock(&m->lock);
                kt_grad_mode(0);
                done++;
                if (s == KNE_OK && p.progress && !p.progress((float)done / (float)units, p.progress_user_data))
                    s = kne_fail(KNE_ERR_CANCELLED, "kne_locate: cancelled by the progress callback");
            }
        free(res);
        kt_arena_free(a);
    }
    kt_grad_mode(prev);
    for (size_t i = 0; s == KNE_OK && i < (size_t)e->n_layers * KNE_N_MODULES; i++)
        for (size_t r = 0; e->entries[i].scores && r < e->entries[i].n_scores; r++)
            if (!isfinite(e->entries[i].scores[r])) {
                s = kne_fail(KNE_ERR_NUMERIC, "kne_locate: attribution score of layer %zu %s row %zu is not finite",
                             i / KNE_N_MODULES, kne_module_name(1u << (i % KNE_N_MODULES)), r);
                break;
            }
    if (s == KNE_OK) s = select_rows(e, p.keep);
    kne_facts_free(ef, n_facts);
    if (s != KNE_OK) {
        kne_ensemble_free(e);
        return s;
    }
    *out = e;
    return KNE_OK;
}
