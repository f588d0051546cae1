/* kne_model_save: the model (with its applied edits) back into a Hugging Face
   checkpoint with the source checkpoint's tensor names, shapes and dtypes.

   The source checkpoint (model->dir) is reopened to learn the exact list of tensors:
   each one the model holds is rebuilt from the model's weights (GPT-2 Conv1D weights
   transposed back to [in, out], c_attn re-merged from q, k, v), converted to the
   tensor's own dtype in the source; a tensor the model does not use (a buffer such
   as GPT-2's attn.bias) is copied byte for byte. Everything is written into
   dir + ".tmp-XXXXXX" and renamed to dir at the end; on failure the temporary
   directory is removed, so dir either holds a complete checkpoint or does not exist. */
#include "model.h"
#include "error.h"
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How a checkpoint tensor is rebuilt from the model. */
enum { SRC_PLAIN, SRC_TRANSPOSE, SRC_QKV_W, SRC_QKV_B };

typedef struct save_map {
    char name[160];
    int kind;
    const kt_tensor *t[3];
} save_map;

typedef struct save_ctx {
    const kne_model *m;
    save_map *map;
    size_t n_map, cap_map;
} save_ctx;

static kne_status add_map(save_ctx *c, const char *name, int kind, const kt_tensor *a, const kt_tensor *b,
                          const kt_tensor *d)
{
    if (!a) return KNE_OK; /* absent in this architecture (e.g. no bias) */
    if (c->n_map == c->cap_map) {
        size_t cap = c->cap_map ? 2 * c->cap_map : 64;
        save_map *p = realloc(c->map, cap * sizeof *p);
        if (!p) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_model_save: out of memory");
        c->map = p;
        c->cap_map = cap;
    }
    save_map *e = &c->map[c->n_map++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->kind = kind;
    e->t[0] = a;
    e->t[1] = b;
    e->t[2] = d;
    return KNE_OK;
}

static kne_status add_linear(save_ctx *c, const char *base, const kne_linear *L, int transpose)
{
    char name[200];
    snprintf(name, sizeof name, "%s.weight", base);
    KNE_TRY(add_map(c, name, transpose ? SRC_TRANSPOSE : SRC_PLAIN, L->w, NULL, NULL));
    snprintf(name, sizeof name, "%s.bias", base);
    return add_map(c, name, SRC_PLAIN, L->b, NULL, NULL);
}

/* The inverse of model_load.c's mapping: checkpoint name -> model tensor(s). */
static kne_status build_map(save_ctx *c, const kne_st_set *st)
{
    const kne_model *m = c->m;
    const kne_config *cf = &m->cfg;
    char base[160], name[200];
    if (cf->arch == KNE_ARCH_LLAMA) {
        KNE_TRY(add_map(c, "model.embed_tokens.weight", SRC_PLAIN, m->wte, NULL, NULL));
        KNE_TRY(add_map(c, "model.norm.weight", SRC_PLAIN, m->lnf_w, NULL, NULL));
        KNE_TRY(add_map(c, "lm_head.weight", SRC_PLAIN, m->head.w, NULL, NULL));
        static const char *const mods[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                            "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        for (int l = 0; l < cf->n_layer; l++) {
            const kne_block *b = &m->blocks[l];
            snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
            KNE_TRY(add_map(c, name, SRC_PLAIN, b->ln1_w, NULL, NULL));
            snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
            KNE_TRY(add_map(c, name, SRC_PLAIN, b->ln2_w, NULL, NULL));
            for (int i = 0; i < 7; i++) {
                snprintf(base, sizeof base, "model.layers.%d.%s", l, mods[i]);
                KNE_TRY(add_linear(c, base, &b->lin[i], 0));
            }
        }
        return KNE_OK;
    }
    const char *pre = kne_st_find(st, "transformer.wte.weight") ? "transformer." : "";
    snprintf(name, sizeof name, "%swte.weight", pre);
    KNE_TRY(add_map(c, name, SRC_PLAIN, m->wte, NULL, NULL));
    snprintf(name, sizeof name, "%swpe.weight", pre);
    KNE_TRY(add_map(c, name, SRC_PLAIN, m->wpe, NULL, NULL));
    snprintf(name, sizeof name, "%sln_f.weight", pre);
    KNE_TRY(add_map(c, name, SRC_PLAIN, m->lnf_w, NULL, NULL));
    snprintf(name, sizeof name, "%sln_f.bias", pre);
    KNE_TRY(add_map(c, name, SRC_PLAIN, m->lnf_b, NULL, NULL));
    KNE_TRY(add_map(c, "lm_head.weight", SRC_PLAIN, m->head.w, NULL, NULL));
    KNE_TRY(add_map(c, "lm_head.bias", SRC_PLAIN, m->head.b, NULL, NULL));
    for (int l = 0; l < cf->n_layer; l++) {
        const kne_block *b = &m->blocks[l];
        if (cf->arch == KNE_ARCH_GPTJ) {
            snprintf(name, sizeof name, "%sh.%d.ln_1.weight", pre, l);
            KNE_TRY(add_map(c, name, SRC_PLAIN, b->ln1_w, NULL, NULL));
            snprintf(name, sizeof name, "%sh.%d.ln_1.bias", pre, l);
            KNE_TRY(add_map(c, name, SRC_PLAIN, b->ln1_b, NULL, NULL));
            static const char *const attn[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
            for (int i = 0; i < 4; i++) {
                snprintf(base, sizeof base, "%sh.%d.attn.%s", pre, l, attn[i]);
                KNE_TRY(add_linear(c, base, &b->lin[i], 0));
            }
            snprintf(base, sizeof base, "%sh.%d.mlp.fc_in", pre, l);
            KNE_TRY(add_linear(c, base, &b->lin[KNE_MOD_UP], 0));
            snprintf(base, sizeof base, "%sh.%d.mlp.fc_out", pre, l);
            KNE_TRY(add_linear(c, base, &b->lin[KNE_MOD_DOWN], 0));
        } else { /* GPT-2 */
            static const char *const ln[4] = {"ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias"};
            const kt_tensor *lnt[4] = {b->ln1_w, b->ln1_b, b->ln2_w, b->ln2_b};
            for (int i = 0; i < 4; i++) {
                snprintf(name, sizeof name, "%sh.%d.%s", pre, l, ln[i]);
                KNE_TRY(add_map(c, name, SRC_PLAIN, lnt[i], NULL, NULL));
            }
            snprintf(name, sizeof name, "%sh.%d.attn.c_attn.weight", pre, l);
            KNE_TRY(add_map(c, name, SRC_QKV_W, b->lin[0].w, b->lin[1].w, b->lin[2].w));
            snprintf(name, sizeof name, "%sh.%d.attn.c_attn.bias", pre, l);
            KNE_TRY(add_map(c, name, SRC_QKV_B, b->lin[0].b, b->lin[1].b, b->lin[2].b));
            snprintf(base, sizeof base, "%sh.%d.attn.c_proj", pre, l);
            KNE_TRY(add_linear(c, base, &b->lin[KNE_MOD_O], 1));
            snprintf(base, sizeof base, "%sh.%d.mlp.c_fc", pre, l);
            KNE_TRY(add_linear(c, base, &b->lin[KNE_MOD_UP], 1));
            snprintf(base, sizeof base, "%sh.%d.mlp.c_proj", pre, l);
            KNE_TRY(add_linear(c, base, &b->lin[KNE_MOD_DOWN], 1));
        }
    }
    return KNE_OK;
}

static const save_map *find_map(const save_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->n_map; i++)
        if (!strcmp(c->map[i].name, name)) return &c->map[i];
    return NULL;
}

/* Materializes one checkpoint tensor in host memory (malloc'ed, src->nbytes bytes). */
static kne_status materialize(const save_ctx *c, const kne_st_tensor *src, void **out)
{
    *out = malloc(src->nbytes ? src->nbytes : 1);
    if (!*out) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_model_save: out of memory for \"%s\"", src->name);
    const save_map *e = find_map(c, src->name);
    if (!e) { /* a tensor the model does not use: keep the source bytes */
        memcpy(*out, src->data, src->nbytes);
        return KNE_OK;
    }
    kt_arena *a = kt_arena_new();
    if (!a) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_model_save: out of memory");
    kt_tensor *x = kt_ref(a, e->t[0]);
    if (e->kind == SRC_TRANSPOSE) {
        x = kt_transpose(a, x, 0, 1);
    } else if (e->kind == SRC_QKV_W || e->kind == SRC_QKV_B) {
        kt_tensor *parts[3] = {kt_ref(a, e->t[0]), kt_ref(a, e->t[1]), kt_ref(a, e->t[2])};
        x = kt_cat(a, parts, 3, 0);
        if (e->kind == SRC_QKV_W) x = kt_transpose(a, x, 0, 1);
    }
    x = kt_contiguous(a, x);
    kne_status s = kt_arena_status(a);
    if (s == KNE_OK) {
        int same = kt_ndim(x) == src->ndim;
        for (int d = 0; same && d < src->ndim; d++) same = kt_size(x, d) == src->shape[d];
        if (!same) s = kne_fail(KNE_ERR_SHAPE, "kne_model_save: tensor \"%s\" of the model does not match the "
                                "shape in the source checkpoint %s", src->name, c->m->dir);
    }
    if (s == KNE_OK) s = kt_copy_to_host(a, x, src->dtype, *out, src->nbytes);
    if (s != KNE_OK && kt_arena_status(a) != KNE_OK) s = kt_arena_report(a, src->name);
    kt_arena_free(a);
    return s;
}

static kne_status copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in) return kne_fail(KNE_ERR_IO, "kne_model_save: cannot read %s: %s", from, strerror(errno));
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return kne_fail(KNE_ERR_IO, "kne_model_save: cannot write %s: %s", to, strerror(errno));
    }
    char buf[65536];
    size_t n;
    int ok = 1;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) {
            ok = 0;
            break;
        }
    if (ferror(in)) ok = 0;
    fclose(in);
    if (fflush(out) != 0 || fsync(fileno(out)) != 0) ok = 0;
    if (fclose(out) != 0) ok = 0;
    return ok ? KNE_OK : kne_fail(KNE_ERR_IO, "kne_model_save: copying %s to %s failed", from, to);
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[4096];
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* JSON string body with the characters JSON needs escaped (names are plain ASCII
   in practice). */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const kne_st_tensor *const *)a)->name, (*(const kne_st_tensor *const *)b)->name);
}

static kne_status write_index(const char *tmp, const kne_st_tensor **ts, const int *shard_of, size_t n, int n_shards,
                              uint64_t total_bytes, uint64_t total_params)
{
    char path[4096], fname[64];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", tmp);
    FILE *f = fopen(path, "w");
    if (!f) return kne_fail(KNE_ERR_IO, "kne_model_save: cannot write %s: %s", path, strerror(errno));
    /* sorted by name, as transformers writes it */
    const kne_st_tensor **sorted = malloc(n * sizeof *sorted);
    int *sh = malloc(n * sizeof *sh);
    if (!sorted || !sh) {
        free(sorted);
        free(sh);
        fclose(f);
        return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_model_save: out of memory");
    }
    memcpy(sorted, ts, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_name);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (ts[j] == sorted[i]) {
                sh[i] = shard_of[j];
                break;
            }
    fprintf(f, "{\n  \"metadata\": {\n    \"total_parameters\": %llu,\n    \"total_size\": %llu\n  },\n"
               "  \"weight_map\": {\n",
            (unsigned long long)total_params, (unsigned long long)total_bytes);
    for (size_t i = 0; i < n; i++) {
        snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", sh[i] + 1, n_shards);
        fputs("    ", f);
        json_str(f, sorted[i]->name);
        fputs(": ", f);
        json_str(f, fname);
        fputs(i + 1 < n ? ",\n" : "\n", f);
    }
    fputs("  }\n}\n", f);
    free(sorted);
    free(sh);
    int ok = !ferror(f) && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0) ok = 0;
    return ok ? KNE_OK : kne_fail(KNE_ERR_IO, "kne_model_save: writing %s failed", path);
}

/* Writes the weights into tmp. The caller holds model->lock for reading. */
static kne_status write_weights(save_ctx *c, const kne_st_set *st, const char *tmp, uint64_t shard_bytes)
{
    size_t n = kne_st_count(st);
    if (n == 0) return kne_fail(KNE_ERR_FORMAT, "kne_model_save: the source checkpoint %s has no tensors", c->m->dir);
    const kne_st_tensor **ts = malloc(n * sizeof *ts);
    int *shard_of = malloc(n * sizeof *shard_of);
    kne_st_out *outs = calloc(n, sizeof *outs);
    void **bufs = calloc(n, sizeof *bufs);
    kne_status s = ts && shard_of && outs && bufs ? KNE_OK : kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_model_save: out of memory");
    uint64_t total_bytes = 0, total_params = 0;
    int n_shards = 0;
    if (s == KNE_OK) {
        /* greedy plan in the source order: a new shard when the next tensor would overflow */
        uint64_t cur = 0;
        for (size_t i = 0; i < n; i++) {
            ts[i] = kne_st_at(st, i);
            uint64_t nb = ts[i]->nbytes;
            if (n_shards == 0 || (shard_bytes && cur > 0 && cur + nb > shard_bytes)) {
                n_shards++;
                cur = 0;
            }
            shard_of[i] = n_shards - 1;
            cur += nb;
            total_bytes += nb;
            total_params += (uint64_t)ts[i]->numel;
        }
        for (size_t i = 0; i < c->n_map; i++) { /* every model tensor must land in the files */
            const save_map *e = &c->map[i];
            if (!strcmp(e->name, "lm_head.weight") && c->m->head.w == c->m->wte) continue; /* tied */
            if (!kne_st_find(st, e->name)) {
                s = kne_fail(KNE_ERR_MISSING_TENSOR, "kne_model_save: the source checkpoint %s no longer holds "
                             "\"%s\"", c->m->dir, e->name);
                break;
            }
        }
    }
    for (int sh = 0; s == KNE_OK && sh < n_shards; sh++) {
        size_t k = 0;
        for (size_t i = 0; s == KNE_OK && i < n; i++) {
            if (shard_of[i] != sh) continue;
            s = materialize(c, ts[i], &bufs[k]);
            if (s != KNE_OK) break;
            outs[k].name = ts[i]->name;
            outs[k].dtype = ts[i]->dtype;
            outs[k].ndim = ts[i]->ndim;
            memcpy(outs[k].shape, ts[i]->shape, sizeof outs[k].shape);
            outs[k].data = bufs[k];
            k++;
        }
        if (s == KNE_OK) {
            char path[4096];
            if (n_shards == 1) snprintf(path, sizeof path, "%s/model.safetensors", tmp);
            else snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", tmp, sh + 1, n_shards);
            s = kne_st_write_file(path, outs, k);
        }
        for (size_t i = 0; i < n; i++) {
            free(bufs[i]);
            bufs[i] = NULL;
        }
    }
    if (s == KNE_OK && n_shards > 1) s = write_index(tmp, ts, shard_of, n, n_shards, total_bytes, total_params);
    free(ts);
    free(shard_of);
    free(outs);
    free(bufs);
    return s;
}

static const char *const copied_files[] = {
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json", NULL};

KNE_API kne_status kne_model_save(const kne_model *model, const char *dir, uint64_t shard_bytes)
{
    kne_clear_error();
    if (!model || !dir || !*dir)
        return kne_fail(KNE_ERR_INVALID_ARG, "kne_model_save: model and dir must not be NULL or empty");
    struct stat sb;
    if (lstat(dir, &sb) == 0)
        return kne_fail(KNE_ERR_INVALID_ARG, "kne_model_save: %s already exists; choose a new directory", dir);
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    char *target = malloc(len + 1), *tmp = malloc(len + 16);
    if (!target || !tmp) {
        free(target);
        free(tmp);
        return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_model_save: out of memory");
    }
    memcpy(target, dir, len);
    target[len] = 0;
    snprintf(tmp, len + 16, "%s.tmp-XXXXXX", target);
    if (!mkdtemp(tmp)) {
        kne_status s = kne_fail(errno == ENOENT || errno == ENOTDIR ? KNE_ERR_NOT_FOUND : KNE_ERR_IO,
                                "kne_model_save: cannot create a directory next to %s: %s", target, strerror(errno));
        free(target);
        free(tmp);
        return s;
    }
    chmod(tmp, 0755); /* mkdtemp makes it 0700; a checkpoint is an ordinary directory */

    kne_st_set *st = NULL;
    save_ctx c = {model, NULL, 0, 0};
    kne_status s = kne_st_open_dir(&st, model->dir);
    if (s != KNE_OK) kne_error_prefix("kne_model_save: reopening the source checkpoint for its tensor list");
    if (s == KNE_OK) s = build_map(&c, st);
    if (s == KNE_OK) {
        kne_model *mm = (kne_model *)model; /* the lock is the one mutable part */
        pthread_rwlock_rdlock(&mm->lock);
        s = write_weights(&c, st, tmp, shard_bytes);
        pthread_rwlock_unlock(&mm->lock);
    }
    kne_st_close(st);
    free(c.map);
    for (int i = 0; s == KNE_OK && copied_files[i]; i++) {
        char from[4096], to[4096];
        snprintf(from, sizeof from, "%s/%s", model->dir, copied_files[i]);
        snprintf(to, sizeof to, "%s/%s", tmp, copied_files[i]);
        if (access(from, F_OK) != 0) {
            if (!strcmp(copied_files[i], "config.json"))
                s = kne_fail(KNE_ERR_NOT_FOUND, "kne_model_save: %s is gone from the source checkpoint", from);
            continue;
        }
        s = copy_file(from, to);
    }
    if (s == KNE_OK && lstat(target, &sb) == 0)
        s = kne_fail(KNE_ERR_INVALID_ARG, "kne_model_save: %s appeared while saving; not replaced", target);
    if (s == KNE_OK && rename(tmp, target) != 0)
        s = kne_fail(KNE_ERR_IO, "kne_model_save: renaming %s to %s: %s", tmp, target, strerror(errno));
    if (s != KNE_OK) remove_tree(tmp);
    free(target);
    free(tmp);
    return s;
}
