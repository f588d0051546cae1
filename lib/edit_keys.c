/* Collects the layer inputs ("keys") that an edit must leave alone and turns them into
   a projector basis: the edit's W_kne then only sees x - U U^T x, so for every
   preserved key the module's output is unchanged (up to preserve_tol). */
#include "edit_keys.h"
#include "error.h"
#include "facts.h"
#include "generic_prompts.h"
#include "model.h"

#include <stdlib.h>
#include <string.h>

char *kne_replace_subject(const char *prompt, const char *subject, const char *other)
{
    const char *at = subject && *subject ? strstr(prompt, subject) : NULL;
    if (!at || !other) return NULL;
    size_t lp = strlen(prompt), ls = strlen(subject), lo = strlen(other);
    char *out = malloc(lp - ls + lo + 1);
    if (!out) return NULL;
    size_t pre = (size_t)(at - prompt);
    memcpy(out, prompt, pre);
    memcpy(out + pre, other, lo);
    memcpy(out + pre + lo, at + ls, lp - pre - ls + 1);
    return out;
}

size_t kne_neighbour_prompts(const kne_edit_params *p, const kne_fact *f, char **out)
{
    size_t used = 0;
    for (size_t k = 0; k < p->n_neighbour_subjects && used < (size_t)p->n_neighbours; k++) {
        if (f->subject && !strcmp(p->neighbour_subjects[k], f->subject)) continue;
        char *text = kne_replace_subject(f->prompt, f->subject, p->neighbour_subjects[k]);
        if (!text) break;
        out[used++] = text;
    }
    return used;
}

typedef struct key_rec {
    const kne_editor *ed;
    const int *slot;             /* [n_layer * 7] -> target or -1 */
    kt_tensor *pos;              /* int64 positions to keep of the current sequence */
    kt_tensor ***lists;          /* per target, growing list of [k, d_in] tensors */
    int *counts;
    int *done;                   /* per target: entries already reduced to a source basis */
} key_rec;

static kt_tensor *record_fn(void *ctx, kt_arena *a, int layer, int module, kt_tensor *z, kt_tensor *x)
{
    key_rec *r = ctx;
    int ti = r->slot[layer * KNE_N_MODULES + module];
    if (ti < 0) return z;
    kt_tensor *k = kt_index_select(a, kt_reshape(a, x, 2, (int64_t[]){-1, kt_size(x, -1)}), 0, r->pos);
    r->lists[ti][r->counts[ti]++] = kt_to(a, k, KT_F32);
    return z;
}

/* Runs one sequence and records the keys at the positions where keep[i] != 0. */
static void record_sequence(const kne_model *m, kt_arena *a, key_rec *r, const int32_t *ids, size_t n, const char *keep)
{
    int64_t *pos = malloc(sizeof(int64_t) * n);
    int64_t k = 0;
    if (!pos) {
        kt_arena_fail(a, KNE_ERR_OUT_OF_MEMORY, "preserved keys: out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!keep || keep[i]) pos[k++] = (int64_t)i;
    if (k > 0) {
        r->pos = kt_from_data(a, pos, KT_I64, 1, &k, m->device, KT_I64);
        kne_fwd f = {0};
        f.ids = kne_ids_tensor(m, a, ids, 1, (int64_t)n);
        f.layer_stop = m->cfg.n_layer; /* the last edited module is all we need */
        f.hook = record_fn;
        f.hook_ctx = r;
        kne_forward_graph(m, a, &f);
    }
    free(pos);
}

static void record_text(const kne_model *m, kt_arena *a, key_rec *r, const char *text)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (kne_tokenize_alloc(m, text, 1, &ids, &n) != KNE_OK) {
        kt_arena_fail(a, KNE_ERR_BACKEND, kne_last_error());
        return;
    }
    if (n > 0 && n <= (size_t)m->cfg.n_ctx) record_sequence(m, a, r, ids, n, NULL);
    free(ids);
}

/* The edit prompt itself, positions outside the subject. */
static void record_context(const kne_model *m, kt_arena *a, key_rec *r, const kne_fact *f)
{
    size_t b, e;
    if (!kne_subject_span(m, f->prompt, f->subject, &b, &e)) return;
    int32_t *ids = NULL;
    size_t n = 0;
    if (kne_tokenize_alloc(m, f->prompt, 1, &ids, &n) != KNE_OK) return;
    char *keep = calloc(n ? n : 1, 1);
    if (keep) {
        for (size_t i = 0; i < n; i++) keep[i] = i < b || i >= e;
        if (e <= n) record_sequence(m, a, r, ids, n, keep);
    }
    free(keep);
    free(ids);
}

/* Replaces the keys recorded since the last call (one source: context, generic or
   neighbours) by the rows of their basis, cut at preserve_tol relative to this source's
   largest singular value, so one source's large keys cannot push another's below the cut. */
static void reduce_source(const kne_editor *ed, kt_arena *a, key_rec *r)
{
    for (int t = 0; t < ed->n_targets; t++) {
        int from = r->done[t], n = r->counts[t] - from;
        if (n <= 0) continue;
        kt_tensor *u = kt_row_basis(a, kt_cat(a, r->lists[t] + from, n, 0), ed->params.preserve_tol);
        r->lists[t][from] = kt_transpose(a, u, 0, 1); /* [r, d_in] */
        r->counts[t] = r->done[t] = from + 1;
    }
}

static size_t max_sequences(const kne_editor *ed, size_t n_facts)
{
    const kne_edit_params *p = &ed->params;
    size_t n = 0;
    if (p->preserve & KNE_PRESERVE_CONTEXT) n += n_facts;
    if (p->preserve & KNE_PRESERVE_GENERIC) n += kne_n_generic_prompts;
    if (p->preserve & KNE_PRESERVE_NEIGHBOURS) n += n_facts * (size_t)p->n_neighbours;
    return n;
}

kne_status kne_edit_key_basis(const kne_editor *ed, kt_arena *a, const kne_fact *facts, size_t n_facts, kt_tensor **basis)
{
    const kne_model *m = ed->model;
    const kne_edit_params *p = &ed->params;
    int nt = ed->n_targets;
    for (int t = 0; t < nt; t++) basis[t] = NULL;
    size_t cap = max_sequences(ed, n_facts);
    if (cap == 0) return KNE_OK;
    int *slot = malloc(sizeof(int) * (size_t)m->cfg.n_layer * KNE_N_MODULES);
    int *counts = calloc((size_t)nt * 2, sizeof(int)), *done = counts ? counts + nt : NULL;
    kt_tensor ***lists = calloc((size_t)nt, sizeof *lists);
    kne_status s = slot && counts && lists ? KNE_OK : kne_fail(KNE_ERR_OUT_OF_MEMORY, "preserved keys: out of memory");
    for (int t = 0; s == KNE_OK && t < nt; t++)
        if (!(lists[t] = calloc(cap, sizeof(kt_tensor *)))) s = kne_fail(KNE_ERR_OUT_OF_MEMORY, "preserved keys: out of memory");
    if (s == KNE_OK) {
        for (int i = 0; i < m->cfg.n_layer * KNE_N_MODULES; i++) slot[i] = -1;
        for (int t = 0; t < nt; t++) slot[ed->targets[t].layer * KNE_N_MODULES + ed->targets[t].module] = t;
        key_rec r = {ed, slot, NULL, lists, counts, done};
        int prev = kt_grad_mode(0);
        for (size_t i = 0; i < n_facts && (p->preserve & KNE_PRESERVE_CONTEXT); i++) record_context(m, a, &r, &facts[i]);
        reduce_source(ed, a, &r);
        for (size_t i = 0; i < kne_n_generic_prompts && (p->preserve & KNE_PRESERVE_GENERIC); i++)
            record_text(m, a, &r, kne_generic_prompts[i]);
        reduce_source(ed, a, &r);
        char **texts = p->n_neighbours > 0 ? calloc((size_t)p->n_neighbours, sizeof(char *)) : NULL;
        for (size_t i = 0; texts && i < n_facts && (p->preserve & KNE_PRESERVE_NEIGHBOURS); i++) {
            size_t n = kne_neighbour_prompts(p, &facts[i], texts);
            for (size_t k = 0; k < n; k++) {
                record_text(m, a, &r, texts[k]);
                free(texts[k]);
            }
        }
        free(texts);
        reduce_source(ed, a, &r);
        /* the union of the sources' bases, orthonormalised */
        for (int t = 0; t < nt; t++)
            if (counts[t] > 0) {
                kt_tensor *u = counts[t] == 1 ? kt_transpose(a, lists[t][0], 0, 1)
                                              : kt_row_basis(a, kt_cat(a, lists[t], counts[t], 0), 1e-4);
                basis[t] = kt_size(u, 1) > 0 ? u : NULL;
            }
        kt_grad_mode(prev);
        s = kt_arena_report(a, "kne_apply: preserved keys");
    }
    for (int t = 0; lists && t < nt; t++) free(lists[t]);
    free(lists);
    free(counts);
    free(slot);
    return s;
}
