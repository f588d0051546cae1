/* kne_editor_new / kne_apply / kne_editor_revert: the masked ensemble update.

   Per (layer, module) of the ensemble, a float32 W_kne [n, d_in], zero-initialised;
   the module's output becomes W x + alpha/sqrt(n) * scatter_rows(W_kne x) (eq. 8-11),
   never a dense dW. All W_kne train together by Adam on the targets' NLL, the model
   frozen; then W[rows] += alpha/sqrt(n) W_kne is written in the model's dtype under
   the model's write lock, the replaced rows kept for an exact revert. */
#include "editor.h"
#include "edit_keys.h"
#include "edit_loss.h"
#include "ensemble.h"
#include "error.h"
#include "facts.h"
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

KNE_API kne_edit_params kne_edit_default_params(void)
{
    kne_edit_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.alpha = 1.0;
    p.lr = 1e-2;
    p.max_steps = 25;
    p.stop_loss = 0.0;
    p.weight_decay = 0.0;
    p.preserve = KNE_PRESERVE_CONTEXT | KNE_PRESERVE_NEIGHBOURS;
    p.preserve_tol = 0.1;
    p.neighbour_weight = 0.0;
    p.n_neighbours = 5;
    return p;
}

static kne_status check_edit_params(const kne_edit_params *p)
{
    if (!(isfinite(p->alpha) && p->alpha > 0)) return kne_fail(KNE_ERR_INVALID_ARG, "edit params: alpha = %g must be > 0", p->alpha);
    if (!(isfinite(p->lr) && p->lr > 0)) return kne_fail(KNE_ERR_INVALID_ARG, "edit params: lr = %g must be > 0", p->lr);
    if (p->max_steps <= 0 || p->max_steps > 100000)
        return kne_fail(KNE_ERR_INVALID_ARG, "edit params: max_steps = %d must be in [1, 100000]", p->max_steps);
    if (!(p->stop_loss >= 0) || !isfinite(p->stop_loss))
        return kne_fail(KNE_ERR_INVALID_ARG, "edit params: stop_loss = %g must be >= 0", p->stop_loss);
    if (!(p->weight_decay >= 0) || !isfinite(p->weight_decay))
        return kne_fail(KNE_ERR_INVALID_ARG, "edit params: weight_decay = %g must be >= 0", p->weight_decay);
    if (!(p->neighbour_weight >= 0) || !isfinite(p->neighbour_weight) || p->n_neighbours < 0)
        return kne_fail(KNE_ERR_INVALID_ARG, "edit params: neighbour_weight and n_neighbours must be >= 0");
    if (p->preserve & ~(uint32_t)(KNE_PRESERVE_CONTEXT | KNE_PRESERVE_GENERIC | KNE_PRESERVE_NEIGHBOURS))
        return kne_fail(KNE_ERR_INVALID_ARG, "edit params: preserve 0x%x has bits that are not KNE_PRESERVE_*", p->preserve);
    if (!(p->preserve_tol >= 0 && p->preserve_tol < 1))
        return kne_fail(KNE_ERR_INVALID_ARG, "edit params: preserve_tol = %g must be in [0, 1)", p->preserve_tol);
    if (p->n_neighbour_subjects && !p->neighbour_subjects)
        return kne_fail(KNE_ERR_INVALID_ARG, "edit params: neighbour_subjects is NULL but n_neighbour_subjects = %zu",
                        p->n_neighbour_subjects);
    for (size_t i = 0; i < p->n_neighbour_subjects; i++)
        if (!p->neighbour_subjects[i] || !*p->neighbour_subjects[i])
            return kne_fail(KNE_ERR_INVALID_ARG, "edit params: neighbour subject %zu is NULL or empty", i);
    return KNE_OK;
}

KNE_API kne_status kne_editor_new(kne_editor **out, kne_model *m, const kne_ensemble *ens, const kne_edit_params *params)
{
    kne_clear_error();
    if (!out || !m || !ens) return kne_fail(KNE_ERR_INVALID_ARG, "kne_editor_new: out, model and ensemble must not be NULL");
    *out = NULL;
    kne_edit_params p = kne_edit_default_params();
    if (params) {
        if (params->struct_size < offsetof(kne_edit_params, progress) || params->struct_size > sizeof p)
            return kne_fail(KNE_ERR_INVALID_ARG, "kne_editor_new: params->struct_size %u is not a known size", params->struct_size);
        memcpy(&p, params, params->struct_size);
    }
    KNE_TRY(check_edit_params(&p));
    if (ens->fingerprint != m->fingerprint || ens->n_layers != m->cfg.n_layer)
        return kne_fail(KNE_ERR_MISMATCH, "kne_editor_new: the ensemble was made for another model");
    if (kne_ensemble_size(ens) == 0) return kne_fail(KNE_ERR_EMPTY, "kne_editor_new: the ensemble is empty");
    kne_editor *ed = calloc(1, sizeof *ed);
    if (!ed) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_editor_new: out of memory");
    ed->model = m;
    ed->params = p;
    if (p.n_neighbour_subjects) {
        ed->neighbours = calloc(p.n_neighbour_subjects, sizeof(char *));
        for (size_t i = 0; ed->neighbours && i < p.n_neighbour_subjects; i++)
            if (!(ed->neighbours[i] = strdup(p.neighbour_subjects[i]))) {
                ed->params.n_neighbour_subjects = i;
                kne_editor_free(ed);
                return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_editor_new: out of memory");
            }
        ed->params.neighbour_subjects = (const char *const *)ed->neighbours;
    }
    ed->arena = kt_arena_new();
    ed->targets = calloc((size_t)m->cfg.n_layer * KNE_N_MODULES, sizeof *ed->targets);
    if (!ed->arena || !ed->targets) {
        kne_editor_free(ed);
        return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_editor_new: out of memory");
    }
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int mi = 0; mi < KNE_N_MODULES; mi++) {
            const kne_ens_entry *en = kne_ensemble_entry(ens, l, mi);
            if (!en->n_rows) continue;
            int64_t *rows = malloc(sizeof(int64_t) * en->n_rows);
            if (!rows) {
                kne_editor_free(ed);
                return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_editor_new: out of memory");
            }
            for (size_t i = 0; i < en->n_rows; i++) rows[i] = en->rows[i];
            kne_edit_target *t = &ed->targets[ed->n_targets++];
            t->layer = l;
            t->module = mi;
            t->n = (int64_t)en->n_rows;
            t->d_in = m->blocks[l].lin[mi].n_in;
            t->rows = kt_from_data(ed->arena, rows, KT_I64, 1, &t->n, m->device, KT_I64);
            free(rows);
        }
    kne_status s = kt_arena_report(ed->arena, "kne_editor_new");
    if (s != KNE_OK) {
        kne_editor_free(ed);
        return s;
    }
    *out = ed;
    return KNE_OK;
}

KNE_API size_t kne_editor_n_applied(const kne_editor *ed) { return ed ? ed->n_applied : 0; }

static void applied_free(kne_applied *ap)
{
    kt_arena_free(ap->arena);
    free(ap->old_rows);
}

KNE_API void kne_editor_free(kne_editor *ed)
{
    if (!ed) return;
    for (size_t i = 0; i < ed->n_applied; i++) applied_free(&ed->applied[i]);
    free(ed->applied);
    for (size_t i = 0; ed->neighbours && i < ed->params.n_neighbour_subjects; i++) free(ed->neighbours[i]);
    free(ed->neighbours);
    free(ed->targets);
    kt_arena_free(ed->arena);
    free(ed);
}

/* ---- training */

typedef struct edit_hook {
    const kne_editor *ed;
    int *slot;                   /* [n_layer * 7] -> target index or -1 */
    kt_tensor **wk;              /* trainable W_kne per target */
    kt_tensor **basis;           /* per target: preserved-key basis [d_in, r] or NULL */
} edit_hook;

/* x without its components along the preserved keys: x - (x U) U^T */
static kt_tensor *project_out(kt_arena *a, kt_tensor *x, kt_tensor *U)
{
    return U ? kt_sub(a, x, kt_matmul(a, kt_matmul(a, x, U), kt_transpose(a, U, 0, 1))) : x;
}

static kt_tensor *edit_fn(void *ctx, kt_arena *a, int layer, int module, kt_tensor *z, kt_tensor *x)
{
    const edit_hook *h = ctx;
    int ti = h->slot[layer * KNE_N_MODULES + module];
    if (ti < 0) return z;
    const kne_edit_target *t = &h->ed->targets[ti];
    kt_tensor *delta = kt_linear(a, project_out(a, kt_to(a, x, KT_F32), h->basis[ti]), h->wk[ti], NULL);
    delta = kt_scale(a, delta, h->ed->params.alpha / sqrt((double)t->n));
    return kt_index_add(a, z, -1, t->rows, kt_to(a, delta, kt_dtype(z)));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Trains W_kne (in arena train) on the facts; fills the report's steps and losses. */
static kne_status train(kne_editor *ed, kt_arena *train_a, const kne_fact *facts, size_t n_facts,
                        const kne_enc_fact *ef, kt_tensor **wk, kt_tensor **basis, kne_edit_report *rep)
{
    kne_model *m = ed->model;
    const kne_edit_params *p = &ed->params;
    int nt = ed->n_targets;
    kt_tensor **mom = calloc((size_t)nt * 3, sizeof *mom);
    int *slot = malloc(sizeof(int) * (size_t)m->cfg.n_layer * KNE_N_MODULES);
    if (!mom || !slot) {
        free(mom);
        free(slot);
        return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_apply: out of memory");
    }
    kt_tensor **mv = mom, **grads = mom + 2 * nt;
    for (int i = 0; i < m->cfg.n_layer * KNE_N_MODULES; i++) slot[i] = -1;
    for (int ti = 0; ti < nt; ti++) {
        const kne_edit_target *t = &ed->targets[ti];
        int64_t shape[2] = {t->n, t->d_in};
        slot[t->layer * KNE_N_MODULES + t->module] = ti;
        wk[ti] = kt_requires_grad(train_a, kt_zeros(train_a, 2, shape, KT_F32, m->device));
        mv[2 * ti] = kt_zeros(train_a, 2, shape, KT_F32, m->device);
        mv[2 * ti + 1] = kt_zeros(train_a, 2, shape, KT_F32, m->device);
    }
    edit_hook hook = {ed, slot, wk, basis};
    kne_edit_loss loss_ctx;
    memset(&loss_ctx, 0, sizeof loss_ctx);
    kne_status s = kt_arena_report(train_a, "kne_apply");
    if (s == KNE_OK) s = kne_edit_key_basis(ed, train_a, facts, n_facts, basis);
    if (s == KNE_OK) s = kne_edit_loss_init(&loss_ctx, m, train_a, facts, n_facts, ef, &ed->params);
    int prev = kt_grad_mode(1);
    kne_model_use_threads(m);
    for (int step = 0; s == KNE_OK && step < p->max_steps; step++) {
        kt_arena *a = kt_arena_new();
        double target_nll = NAN;
        kt_tensor *total = kne_edit_loss_eval(&loss_ctx, a, edit_fn, &hook, &target_nll);
        s = kt_arena_report(a, "kne_apply");
        if (s == KNE_OK && !isfinite(target_nll))
            s = kne_fail(KNE_ERR_NUMERIC, "kne_apply: the loss became %g at step %d (lower lr or alpha)", target_nll, step);
        if (s == KNE_OK) {
            if (step == 0) rep->initial_loss = target_nll;
            rep->loss = target_nll;
            if (target_nll < p->stop_loss) {
                kt_arena_free(a);
                break;
            }
            s = kt_grad(a, total, wk, nt, grads);
            for (int ti = 0; s == KNE_OK && ti < nt; ti++)
                s = kt_adam_step(a, wk[ti], grads[ti], mv[2 * ti], mv[2 * ti + 1], step + 1, p->lr, 0.9, 0.999, 1e-8,
                                 p->weight_decay);
            if (s != KNE_OK) s = kt_arena_report(a, "kne_apply: optimiser step");
            rep->steps = step + 1;
        }
        kt_arena_free(a);
        if (s == KNE_OK && p->progress && !p->progress((float)(step + 1) / (float)p->max_steps, p->progress_user_data))
            s = kne_fail(KNE_ERR_CANCELLED, "kne_apply: cancelled by the progress callback");
    }
    kt_grad_mode(prev);
    kne_edit_loss_finish(&loss_ctx);
    free(mom);
    free(slot);
    return s;
}

/* Computes the new rows, then swaps them in under the write lock; keeps the old rows. */
static kne_status write_rows(kne_editor *ed, kt_tensor **wk, kt_tensor **basis, kne_applied *ap)
{
    kne_model *m = ed->model;
    int nt = ed->n_targets;
    kt_tensor **fresh = calloc((size_t)nt, sizeof *fresh);
    ap->old_rows = calloc((size_t)nt, sizeof *ap->old_rows);
    ap->arena = kt_arena_new();
    if (!fresh || !ap->old_rows || !ap->arena) {
        free(fresh);
        return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_apply: out of memory");
    }
    kt_arena *a = ap->arena;
    int prev = kt_grad_mode(0);
    for (int ti = 0; ti < nt; ti++) {
        const kne_edit_target *t = &ed->targets[ti];
        kt_tensor *W = m->blocks[t->layer].lin[t->module].w;
        ap->old_rows[ti] = kt_clone(a, kt_index_select(a, W, 0, t->rows));
        /* W_kne (I - U U^T): the projection folded into the written rows */
        kt_tensor *upd = kt_scale(a, project_out(a, kt_detach(a, wk[ti]), basis[ti]), ed->params.alpha / sqrt((double)t->n));
        fresh[ti] = kt_to(a, kt_add(a, kt_to(a, ap->old_rows[ti], KT_F32), upd), m->dtype);
        if (!kt_all_finite(a, fresh[ti]) && kt_arena_status(a) == KNE_OK)
            kt_arena_fail(a, KNE_ERR_NUMERIC, "the updated rows are not finite");
    }
    kne_status s = kt_arena_report(a, "kne_apply");
    if (s == KNE_OK) {
        pthread_rwlock_wrlock(&m->lock);
        int ti = 0;
        for (; ti < nt && s == KNE_OK; ti++)
            s = kt_index_copy_rows(a, m->blocks[ed->targets[ti].layer].lin[ed->targets[ti].module].w, ed->targets[ti].rows,
                                   fresh[ti]);
        if (s != KNE_OK) /* undo the rows already written: all or nothing */
            for (int k = 0; k < ti - 1; k++) {
                kt_arena *b = kt_arena_new();
                kt_index_copy_rows(b, m->blocks[ed->targets[k].layer].lin[ed->targets[k].module].w, ed->targets[k].rows,
                                   ap->old_rows[k]);
                kt_arena_free(b);
            }
        pthread_rwlock_unlock(&m->lock);
        if (s != KNE_OK) s = kt_arena_report(a, "kne_apply: row write");
    }
    kt_grad_mode(prev);
    free(fresh);
    return s;
}

KNE_API kne_status kne_apply(kne_editor *ed, const kne_fact *facts, size_t n_facts, kne_edit_report *report_out)
{
    kne_clear_error();
    double t0 = now_s();
    if (!ed) return kne_fail(KNE_ERR_INVALID_ARG, "kne_apply: editor is NULL");
    if (report_out && (report_out->struct_size < sizeof(uint32_t) || report_out->struct_size > sizeof *report_out))
        return kne_fail(KNE_ERR_INVALID_ARG, "kne_apply: report->struct_size must be set to sizeof(kne_edit_report)");
    kne_enc_fact *ef = NULL;
    KNE_TRY(kne_facts_encode(ed->model, facts, n_facts, &ef));
    if (ed->n_applied == ed->cap_applied) {
        size_t cap = ed->cap_applied ? 2 * ed->cap_applied : 4;
        kne_applied *na = realloc(ed->applied, cap * sizeof *na);
        if (!na) {
            kne_facts_free(ef, n_facts);
            return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_apply: out of memory");
        }
        ed->applied = na;
        ed->cap_applied = cap;
    }
    kne_edit_report rep;
    memset(&rep, 0, sizeof rep);
    rep.struct_size = sizeof rep;
    kt_arena *train_a = kt_arena_new();
    kt_tensor **wk = calloc((size_t)ed->n_targets * 2, sizeof *wk), **basis = wk ? wk + ed->n_targets : NULL;
    kne_status s = train_a && wk ? train(ed, train_a, facts, n_facts, ef, wk, basis, &rep)
                                 : kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_apply: out of memory");
    kne_applied ap = {0};
    if (s == KNE_OK) s = write_rows(ed, wk, basis, &ap);
    if (s == KNE_OK) {
        ed->applied[ed->n_applied++] = ap;
    } else {
        applied_free(&ap);
    }
    free(wk);
    kt_arena_free(train_a);
    kne_facts_free(ef, n_facts);
    if (s != KNE_OK) return s;
    for (int ti = 0; ti < ed->n_targets; ti++) rep.rows += ed->targets[ti].n;
    rep.seconds = now_s() - t0;
    if (report_out) memcpy((char *)report_out + sizeof(uint32_t), (char *)&rep + sizeof(uint32_t),
                           report_out->struct_size - sizeof(uint32_t));
    return KNE_OK;
}

KNE_API kne_status kne_editor_revert(kne_editor *ed)
{
    kne_clear_error();
    if (!ed) return kne_fail(KNE_ERR_INVALID_ARG, "kne_editor_revert: editor is NULL");
    if (ed->n_applied == 0) return kne_fail(KNE_ERR_STATE, "kne_editor_revert: no applied edit to revert");
    kne_applied *ap = &ed->applied[ed->n_applied - 1];
    kne_model *m = ed->model;
    kt_arena *a = kt_arena_new();
    kne_status s = KNE_OK;
    pthread_rwlock_wrlock(&m->lock);
    for (int ti = 0; ti < ed->n_targets && s == KNE_OK; ti++)
        s = kt_index_copy_rows(a, m->blocks[ed->targets[ti].layer].lin[ed->targets[ti].module].w, ed->targets[ti].rows,
                               ap->old_rows[ti]);
    pthread_rwlock_unlock(&m->lock);
    if (s != KNE_OK) s = kt_arena_report(a, "kne_editor_revert");
    kt_arena_free(a);
    if (s != KNE_OK) return s;
    applied_free(ap);
    ed->n_applied--;
    return KNE_OK;
}
