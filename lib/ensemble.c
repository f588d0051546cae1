/* Ensemble queries, hand-made ensembles, merge, and JSON save/load (json-c). */
#include "ensemble.h"
#include "error.h"
#include "json_util.h"
#include "model.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const module_names[KNE_N_MODULES] = {"attn.q", "attn.k", "attn.v", "attn.o",
                                                         "mlp.gate", "mlp.up", "mlp.down"};

int kne_module_index(uint32_t bit)
{
    for (int i = 0; i < KNE_N_MODULES; i++)
        if (bit == (1u << i)) return i;
    return -1;
}

KNE_API const char *kne_module_name(uint32_t bit)
{
    int i = kne_module_index(bit);
    return i < 0 ? NULL : module_names[i];
}

KNE_API uint32_t kne_module_from_name(const char *name)
{
    if (!name) return 0;
    for (int i = 0; i < KNE_N_MODULES; i++)
        if (!strcmp(name, module_names[i])) return 1u << i;
    return 0;
}

kne_status kne_ensemble_alloc(kne_ensemble **out, const kne_model *m)
{
    kne_ensemble *e = calloc(1, sizeof *e);
    if (e) e->entries = calloc((size_t)m->cfg.n_layer * KNE_N_MODULES, sizeof *e->entries);
    if (!e || !e->entries) {
        free(e);
        return kne_fail(KNE_ERR_OUT_OF_MEMORY, "ensemble: out of memory");
    }
    e->fingerprint = m->fingerprint;
    e->n_layers = m->cfg.n_layer;
    for (int i = 0; i < KNE_N_MODULES; i++) e->module_size[i] = m->blocks[0].lin[i].w ? m->blocks[0].lin[i].n_out : 0;
    *out = e;
    return KNE_OK;
}

kne_ens_entry *kne_ensemble_entry(const kne_ensemble *e, int32_t layer, int module)
{
    return &e->entries[(size_t)layer * KNE_N_MODULES + (size_t)module];
}

KNE_API void kne_ensemble_free(kne_ensemble *e)
{
    if (!e) return;
    for (size_t i = 0; i < (size_t)e->n_layers * KNE_N_MODULES; i++) {
        free(e->entries[i].rows);
        free(e->entries[i].scores);
    }
    free(e->entries);
    free(e);
}

KNE_API size_t kne_ensemble_size(const kne_ensemble *e)
{
    size_t n = 0;
    if (!e) return 0;
    for (size_t i = 0; i < (size_t)e->n_layers * KNE_N_MODULES; i++) n += e->entries[i].n_rows;
    return n;
}

KNE_API int32_t kne_ensemble_n_layers(const kne_ensemble *e) { return e ? e->n_layers : 0; }
KNE_API double kne_ensemble_threshold(const kne_ensemble *e) { return e ? e->threshold : 0; }

static kne_status locate_entry(const kne_ensemble *e, int32_t layer, uint32_t module, const kne_ens_entry **out)
{
    if (!e) return kne_fail(KNE_ERR_INVALID_ARG, "ensemble is NULL");
    int mi = kne_module_index(module);
    if (layer < 0 || layer >= e->n_layers || mi < 0)
        return kne_fail(KNE_ERR_INVALID_ARG, "layer %d / module 0x%x is not in the ensemble's model (%d layers, one "
                        "KNE_MODULE_* bit)", layer, module, e->n_layers);
    *out = kne_ensemble_entry(e, layer, mi);
    return KNE_OK;
}

KNE_API kne_status kne_ensemble_rows(const kne_ensemble *e, int32_t layer, uint32_t module, const int32_t **rows,
                                     size_t *n_rows)
{
    kne_clear_error();
    const kne_ens_entry *en;
    KNE_TRY(locate_entry(e, layer, module, &en));
    if (!rows || !n_rows) return kne_fail(KNE_ERR_INVALID_ARG, "kne_ensemble_rows: NULL output");
    *rows = en->rows;
    *n_rows = en->n_rows;
    return KNE_OK;
}

KNE_API kne_status kne_ensemble_scores(const kne_ensemble *e, int32_t layer, uint32_t module, const float **scores,
                                       size_t *n)
{
    kne_clear_error();
    const kne_ens_entry *en;
    KNE_TRY(locate_entry(e, layer, module, &en));
    if (!scores || !n) return kne_fail(KNE_ERR_INVALID_ARG, "kne_ensemble_scores: NULL output");
    *scores = en->scores;
    *n = en->scores ? en->n_scores : 0;
    return KNE_OK;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Sorts and de-duplicates rows in place; returns the new count. */
static size_t sort_unique(int32_t *rows, size_t n)
{
    if (n == 0) return 0;
    qsort(rows, n, sizeof *rows, cmp_i32);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (rows[i] != rows[k - 1]) rows[k++] = rows[i];
    return k;
}

/* Sets an entry's rows from a list (copied, sorted, unique), checking the range. */
static kne_status set_rows(kne_ensemble *e, int layer, int mi, const int32_t *rows, size_t n)
{
    kne_ens_entry *en = kne_ensemble_entry(e, layer, mi);
    for (size_t i = 0; i < n; i++)
        if (rows[i] < 0 || rows[i] >= e->module_size[mi])
            return kne_fail(KNE_ERR_INVALID_ARG, "row %d of layer %d %s is outside [0, %lld)", rows[i], layer,
                            module_names[mi], (long long)e->module_size[mi]);
    int32_t *copy = malloc(sizeof(int32_t) * (n ? n : 1));
    if (!copy) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "ensemble: out of memory");
    if (n) memcpy(copy, rows, sizeof(int32_t) * n);
    free(en->rows);
    en->rows = copy;
    en->n_rows = sort_unique(copy, n);
    return KNE_OK;
}

KNE_API kne_status kne_ensemble_from_rows(kne_ensemble **out, const kne_model *model, int32_t layer, uint32_t module,
                                          const int32_t *rows, size_t n_rows)
{
    kne_clear_error();
    if (!out || !model || (!rows && n_rows)) return kne_fail(KNE_ERR_INVALID_ARG, "kne_ensemble_from_rows: NULL argument");
    *out = NULL;
    int mi = kne_module_index(module);
    if (mi < 0 || layer < 0 || layer >= model->cfg.n_layer)
        return kne_fail(KNE_ERR_INVALID_ARG, "kne_ensemble_from_rows: layer %d or module 0x%x out of range", layer, module);
    if (!kne_model_has_module(model, mi))
        return kne_fail(KNE_ERR_UNSUPPORTED, "module %s does not exist in %s models", module_names[mi],
                        kne_model_arch(model));
    kne_ensemble *e;
    KNE_TRY(kne_ensemble_alloc(&e, model));
    kne_status s = set_rows(e, layer, mi, rows, n_rows);
    if (s != KNE_OK) {
        kne_ensemble_free(e);
        return s;
    }
    *out = e;
    return KNE_OK;
}

KNE_API kne_status kne_ensemble_merge(kne_ensemble **out, const kne_ensemble *a, const kne_ensemble *b)
{
    kne_clear_error();
    if (!out || !a || !b) return kne_fail(KNE_ERR_INVALID_ARG, "kne_ensemble_merge: NULL argument");
    *out = NULL;
    if (a->fingerprint != b->fingerprint || a->n_layers != b->n_layers)
        return kne_fail(KNE_ERR_MISMATCH, "kne_ensemble_merge: the ensembles belong to different models");
    kne_ensemble *e = calloc(1, sizeof *e);
    if (e) e->entries = calloc((size_t)a->n_layers * KNE_N_MODULES, sizeof *e->entries);
    if (!e || !e->entries) {
        free(e);
        return kne_fail(KNE_ERR_OUT_OF_MEMORY, "ensemble: out of memory");
    }
    e->fingerprint = a->fingerprint;
    e->n_layers = a->n_layers;
    memcpy(e->module_size, a->module_size, sizeof e->module_size);
    e->threshold = a->threshold < b->threshold ? a->threshold : b->threshold;
    kne_status s = KNE_OK;
    for (int l = 0; l < a->n_layers && s == KNE_OK; l++)
        for (int mi = 0; mi < KNE_N_MODULES && s == KNE_OK; mi++) {
            const kne_ens_entry *x = kne_ensemble_entry(a, l, mi), *y = kne_ensemble_entry(b, l, mi);
            size_t n = x->n_rows + y->n_rows;
            int32_t *tmp = malloc(sizeof(int32_t) * (n ? n : 1));
            if (!tmp) {
                s = kne_fail(KNE_ERR_OUT_OF_MEMORY, "ensemble: out of memory");
                break;
            }
            if (x->n_rows) memcpy(tmp, x->rows, sizeof(int32_t) * x->n_rows);
            if (y->n_rows) memcpy(tmp + x->n_rows, y->rows, sizeof(int32_t) * y->n_rows);
            s = set_rows(e, l, mi, tmp, n);
            free(tmp);
            /* scores are only meaningful for one attribution run: keep a's when equal */
            const kne_ens_entry *src = x->scores ? x : y->scores ? y : NULL;
            kne_ens_entry *en = kne_ensemble_entry(e, l, mi);
            if (s == KNE_OK && src && (!x->scores || !y->scores ||
                                       !memcmp(x->scores, y->scores, sizeof(float) * x->n_scores))) {
                en->scores = malloc(sizeof(float) * src->n_scores);
                if (!en->scores) s = kne_fail(KNE_ERR_OUT_OF_MEMORY, "ensemble: out of memory");
                else memcpy(en->scores, src->scores, sizeof(float) * src->n_scores), en->n_scores = src->n_scores;
            }
        }
    if (s != KNE_OK) {
        kne_ensemble_free(e);
        return s;
    }
    *out = e;
    return KNE_OK;
}

/* ---- JSON: {"format": "kne-ensemble", "version": 1, "fingerprint": "hex", "n_layers",
   "threshold", "modules": {"mlp.down": {"size": 768, "layers": {"3": {"rows": [...], "scores": [...]}}}}} */

KNE_API kne_status kne_ensemble_save(const kne_ensemble *e, const char *path)
{
    kne_clear_error();
    if (!e || !path) return kne_fail(KNE_ERR_INVALID_ARG, "kne_ensemble_save: NULL argument");
    json_object *root = json_object_new_object(), *mods = json_object_new_object();
    char fp[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, e->fingerprint);
    json_object_object_add(root, "format", json_object_new_string("kne-ensemble"));
    json_object_object_add(root, "version", json_object_new_int(1));
    json_object_object_add(root, "fingerprint", json_object_new_string(fp));
    json_object_object_add(root, "n_layers", json_object_new_int(e->n_layers));
    json_object_object_add(root, "threshold", json_object_new_double(e->threshold));
    json_object_object_add(root, "size", json_object_new_int64((int64_t)kne_ensemble_size(e)));
    for (int mi = 0; mi < KNE_N_MODULES; mi++) {
        if (!e->module_size[mi]) continue;
        json_object *mod = json_object_new_object(), *layers = json_object_new_object();
        int any = 0;
        for (int l = 0; l < e->n_layers; l++) {
            const kne_ens_entry *en = kne_ensemble_entry(e, l, mi);
            if (!en->n_rows && !en->scores) continue;
            json_object *le = json_object_new_object(), *rows = json_object_new_array();
            for (size_t i = 0; i < en->n_rows; i++) json_object_array_add(rows, json_object_new_int(en->rows[i]));
            json_object_object_add(le, "rows", rows);
            if (en->scores) {
                json_object *sc = json_object_new_array();
                for (size_t i = 0; i < en->n_scores; i++) json_object_array_add(sc, json_object_new_double(en->scores[i]));
                json_object_object_add(le, "scores", sc);
            }
            char key[16];
            snprintf(key, sizeof key, "%d", l);
            json_object_object_add(layers, key, le);
            any = 1;
        }
        if (!any) {
            json_object_put(mod);
            json_object_put(layers);
            continue;
        }
        json_object_object_add(mod, "size", json_object_new_int64(e->module_size[mi]));
        json_object_object_add(mod, "layers", layers);
        json_object_object_add(mods, module_names[mi], mod);
    }
    json_object_object_add(root, "modules", mods);
    kne_status s = KNE_OK;
    if (json_object_to_file_ext(path, root, JSON_C_TO_STRING_PLAIN) != 0)
        s = kne_fail(errno == ENOENT ? KNE_ERR_NOT_FOUND : KNE_ERR_IO, "%s: cannot write the ensemble: %s", path,
                     json_util_get_last_err() ? json_util_get_last_err() : strerror(errno));
    json_object_put(root);
    return s;
}

static kne_status load_layer(kne_ensemble *e, int mi, const char *key, json_object *le, const char *path)
{
    char *end;
    long l = strtol(key, &end, 10);
    if (*end || l < 0 || l >= e->n_layers)
        return kne_fail(KNE_ERR_FORMAT, "%s: layer \"%s\" of %s is not a layer of this model", path, key, module_names[mi]);
    json_object *rows = kne_json_get(le, "rows"), *sc = kne_json_get(le, "scores");
    if (!rows || !json_object_is_type(rows, json_type_array))
        return kne_fail(KNE_ERR_FORMAT, "%s: layer %ld of %s has no \"rows\" array", path, l, module_names[mi]);
    size_t n = json_object_array_length(rows);
    int32_t *tmp = malloc(sizeof(int32_t) * (n ? n : 1));
    if (!tmp) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "ensemble: out of memory");
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(rows, i);
        if (!json_object_is_type(v, json_type_int)) {
            free(tmp);
            return kne_fail(KNE_ERR_FORMAT, "%s: a row of layer %ld %s is not an integer", path, l, module_names[mi]);
        }
        tmp[i] = json_object_get_int(v);
    }
    kne_status s = set_rows(e, (int)l, mi, tmp, n);
    free(tmp);
    if (s != KNE_OK) return kne_fail(KNE_ERR_FORMAT, "%s: %s", path, kne_last_error());
    if (sc) {
        size_t ns = json_object_is_type(sc, json_type_array) ? json_object_array_length(sc) : 0;
        if ((int64_t)ns != e->module_size[mi])
            return kne_fail(KNE_ERR_FORMAT, "%s: layer %ld %s has %zu scores, the module has %lld outputs", path, l,
                            module_names[mi], ns, (long long)e->module_size[mi]);
        kne_ens_entry *en = kne_ensemble_entry(e, (int)l, mi);
        en->scores = malloc(sizeof(float) * ns);
        if (!en->scores) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "ensemble: out of memory");
        en->n_scores = ns;
        for (size_t i = 0; i < ns; i++) en->scores[i] = (float)json_object_get_double(json_object_array_get_idx(sc, i));
    }
    return KNE_OK;
}

static kne_status load_from_json(kne_ensemble *e, json_object *root, const char *path)
{
    const char *fmt = kne_json_str(root, "format"), *fp = kne_json_str(root, "fingerprint");
    int64_t nl = 0;
    if (!fmt || strcmp(fmt, "kne-ensemble") != 0 || !fp || !kne_json_int(root, "n_layers", &nl))
        return kne_fail(KNE_ERR_FORMAT, "%s: not a kne ensemble file (format, fingerprint, n_layers)", path);
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, e->fingerprint);
    if (strcmp(fp, want) != 0 || nl != e->n_layers)
        return kne_fail(KNE_ERR_MISMATCH, "%s: the ensemble was made for another model (fingerprint %s, this model %s)",
                        path, fp, want);
    kne_json_double(root, "threshold", &e->threshold);
    json_object *mods = kne_json_get(root, "modules");
    if (!mods || !json_object_is_type(mods, json_type_object))
        return kne_fail(KNE_ERR_FORMAT, "%s: no \"modules\" object", path);
    json_object_object_foreach(mods, mname, mod) {
        int mi = kne_module_index(kne_module_from_name(mname));
        if (mi < 0 || !e->module_size[mi])
            return kne_fail(KNE_ERR_FORMAT, "%s: module \"%s\" is not a module of this model", path, mname);
        json_object *layers = kne_json_get(mod, "layers");
        if (!layers || !json_object_is_type(layers, json_type_object))
            return kne_fail(KNE_ERR_FORMAT, "%s: module \"%s\" has no \"layers\" object", path, mname);
        json_object_object_foreach(layers, key, le) KNE_TRY(load_layer(e, mi, key, le, path));
    }
    return KNE_OK;
}

KNE_API kne_status kne_ensemble_load(kne_ensemble **out, const kne_model *model, const char *path)
{
    kne_clear_error();
    if (!out || !model || !path) return kne_fail(KNE_ERR_INVALID_ARG, "kne_ensemble_load: NULL argument");
    *out = NULL;
    json_object *root;
    KNE_TRY(kne_json_read_file(&root, path));
    kne_ensemble *e = NULL;
    kne_status s = kne_ensemble_alloc(&e, model);
    if (s == KNE_OK) s = load_from_json(e, root, path);
    json_object_put(root);
    if (s != KNE_OK) {
        kne_ensemble_free(e);
        return s;
    }
    *out = e;
    return KNE_OK;
}
