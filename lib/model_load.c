/* kne_model_load: config.json + safetensors shards -> shim tensors in the compute
   dtype, one tensor at a time (the mmap'ed pages of each are dropped once converted). */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np: writer preference */
#include "model.h"
#include "error.h"
#include "safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct loader {
    kne_model *m;
    kne_st_set *st;
    const kne_model_params *p;
    const char *prefix;          /* "transformer." or "" for GPT-2/GPT-J checkpoints */
    int done, total;
} loader;

#define CHUNK_BYTES ((size_t)8 << 20)

/* Converts a large tensor a few MB of rows at a time, dropping each chunk's file pages
   once copied, so the mmap'ed original and the converted copy are never both resident
   (an embedding matrix is most of a small model). */
static kt_tensor *convert_in_chunks(loader *ld, kt_arena *tmp, const kne_st_tensor *t)
{
    kt_tensor *x = kt_empty(tmp, t->ndim, t->shape, ld->m->dtype, ld->m->device);
    size_t row_bytes = t->nbytes / (size_t)t->shape[0];
    int64_t rows = row_bytes ? (int64_t)(CHUNK_BYTES / row_bytes) : t->shape[0];
    if (rows < 1) rows = 1;
    for (int64_t r = 0; r < t->shape[0] && kt_arena_status(tmp) == KNE_OK; r += rows) {
        int64_t n = r + rows <= t->shape[0] ? rows : t->shape[0] - r;
        const char *src = (const char *)t->data + (size_t)r * row_bytes;
        kt_copy_rows_from_data(tmp, x, r, n, src, t->dtype);
        kne_st_release_bytes(src, (size_t)n * row_bytes);
    }
    return x;
}

/* Fetches name, checks its shape, converts it to the compute dtype on the device.
   transpose: the checkpoint stores [in, out] (GPT-2 Conv1D). */
static kne_status load_tensor(loader *ld, kt_tensor **out, const char *name, int ndim, int64_t d0, int64_t d1,
                              int transpose)
{
    const kne_st_tensor *t = kne_st_find(ld->st, name);
    if (!t) return kne_fail(KNE_ERR_MISSING_TENSOR, "%s: tensor \"%s\" is missing from the checkpoint", ld->m->dir, name);
    int64_t want[2] = {transpose ? d1 : d0, transpose ? d0 : d1};
    if (t->ndim != ndim || t->shape[0] != want[0] || (ndim == 2 && t->shape[1] != want[1])) {
        char got[128] = "", exp[64];
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), i ? ", %lld" : "%lld", (long long)t->shape[i]);
        if (ndim == 2) snprintf(exp, sizeof exp, "%lld, %lld", (long long)want[0], (long long)want[1]);
        else snprintf(exp, sizeof exp, "%lld", (long long)want[0]);
        return kne_fail(KNE_ERR_SHAPE, "%s: tensor \"%s\" has shape [%s], config.json implies [%s]",
                        ld->m->dir, name, got, exp);
    }
    kt_arena *tmp = kt_arena_new();
    kt_tensor *x;
    if (!transpose && t->nbytes > 2 * CHUNK_BYTES)
        x = convert_in_chunks(ld, tmp, t);
    else
        x = kt_from_data(tmp, t->data, t->dtype, t->ndim, t->shape, ld->m->device, ld->m->dtype);
    if (transpose) x = kt_contiguous(tmp, kt_transpose(tmp, x, 0, 1));
    *out = kt_ref(ld->m->weights, x);
    kne_status s = kt_arena_status(tmp) != KNE_OK ? kt_arena_report(tmp, name) : kt_arena_report(ld->m->weights, name);
    kt_arena_free(tmp);
    kne_st_release(ld->st, t);
    if (s != KNE_OK) return s;
    if (!ld->m->src_dtype) ld->m->src_dtype = t->dtype;
    ld->done++;
    if (ld->p->progress && !ld->p->progress((float)ld->done / (float)ld->total, ld->p->progress_user_data))
        return kne_fail(KNE_ERR_CANCELLED, "%s: loading cancelled by the progress callback", ld->m->dir);
    return KNE_OK;
}

static kne_status load_linear(loader *ld, kne_linear *L, const char *base, int64_t n_out, int64_t n_in, int bias,
                              int transpose)
{
    char name[600];
    snprintf(name, sizeof name, "%s.weight", base);
    KNE_TRY(load_tensor(ld, &L->w, name, 2, n_out, n_in, transpose));
    if (bias) {
        snprintf(name, sizeof name, "%s.bias", base);
        KNE_TRY(load_tensor(ld, &L->b, name, 1, n_out, 0, 0));
    }
    L->n_out = n_out;
    L->n_in = n_in;
    return KNE_OK;
}

static kne_status load_llama_block(loader *ld, int l)
{
    const kne_config *c = &ld->m->cfg;
    kne_block *b = &ld->m->blocks[l];
    char base[256], name[512];
    int64_t E = c->n_embd, qd = (int64_t)c->n_head * c->head_dim, kvd = (int64_t)c->n_kv_head * c->head_dim;
    snprintf(base, sizeof base, "model.layers.%d.", l);
    snprintf(name, sizeof name, "%sinput_layernorm.weight", base);
    KNE_TRY(load_tensor(ld, &b->ln1_w, name, 1, E, 0, 0));
    snprintf(name, sizeof name, "%spost_attention_layernorm.weight", base);
    KNE_TRY(load_tensor(ld, &b->ln2_w, name, 1, E, 0, 0));
    static const char *const attn[4] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%sself_attn.%s", base, attn[i]);
        int64_t out = i == 0 || i == 3 ? (i == 3 ? E : qd) : kvd, in = i == 3 ? qd : E;
        KNE_TRY(load_linear(ld, &b->lin[i], name, out, in, i == 3 ? c->attn_o_bias : c->attn_bias, 0));
    }
    static const char *const mlp[3] = {"gate_proj", "up_proj", "down_proj"};
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%smlp.%s", base, mlp[i]);
        KNE_TRY(load_linear(ld, &b->lin[KNE_MOD_GATE + i], name, i == 2 ? E : c->n_ff, i == 2 ? c->n_ff : E,
                            c->mlp_bias, 0));
    }
    return KNE_OK;
}

static kne_status load_gptj_block(loader *ld, int l)
{
    const kne_config *c = &ld->m->cfg;
    kne_block *b = &ld->m->blocks[l];
    char base[256], name[512];
    int64_t E = c->n_embd;
    snprintf(base, sizeof base, "%sh.%d.", ld->prefix, l);
    snprintf(name, sizeof name, "%sln_1.weight", base);
    KNE_TRY(load_tensor(ld, &b->ln1_w, name, 1, E, 0, 0));
    snprintf(name, sizeof name, "%sln_1.bias", base);
    KNE_TRY(load_tensor(ld, &b->ln1_b, name, 1, E, 0, 0));
    static const char *const attn[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%sattn.%s", base, attn[i]);
        KNE_TRY(load_linear(ld, &b->lin[i], name, E, E, 0, 0));
    }
    snprintf(name, sizeof name, "%smlp.fc_in", base);
    KNE_TRY(load_linear(ld, &b->lin[KNE_MOD_UP], name, c->n_ff, E, 1, 0));
    snprintf(name, sizeof name, "%smlp.fc_out", base);
    return load_linear(ld, &b->lin[KNE_MOD_DOWN], name, E, c->n_ff, 1, 0);
}

static kne_status load_gpt2_block(loader *ld, int l)
{
    const kne_config *c = &ld->m->cfg;
    kne_model *m = ld->m;
    kne_block *b = &m->blocks[l];
    char base[256], name[512];
    int64_t E = c->n_embd;
    snprintf(base, sizeof base, "%sh.%d.", ld->prefix, l);
    static const char *const ln[4] = {"ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias"};
    kt_tensor **lnt[4] = {&b->ln1_w, &b->ln1_b, &b->ln2_w, &b->ln2_b};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s%s", base, ln[i]);
        KNE_TRY(load_tensor(ld, lnt[i], name, 1, E, 0, 0));
    }
    /* c_attn is one Conv1D [E, 3E]: split into q, k, v linears [E, E] */
    kne_linear qkv = {0};
    snprintf(name, sizeof name, "%sattn.c_attn", base);
    KNE_TRY(load_linear(ld, &qkv, name, 3 * E, E, 1, 1));
    for (int i = 0; i < 3; i++) {
        b->lin[i].w = kt_contiguous(m->weights, kt_narrow(m->weights, qkv.w, 0, i * E, E));
        b->lin[i].b = kt_contiguous(m->weights, kt_narrow(m->weights, qkv.b, 0, i * E, E));
        b->lin[i].n_out = b->lin[i].n_in = E;
    }
    KNE_TRY(kt_arena_report(m->weights, name));
    snprintf(name, sizeof name, "%sattn.c_proj", base);
    KNE_TRY(load_linear(ld, &b->lin[KNE_MOD_O], name, E, E, 1, 1));
    snprintf(name, sizeof name, "%smlp.c_fc", base);
    KNE_TRY(load_linear(ld, &b->lin[KNE_MOD_UP], name, c->n_ff, E, 1, 1));
    snprintf(name, sizeof name, "%smlp.c_proj", base);
    return load_linear(ld, &b->lin[KNE_MOD_DOWN], name, E, c->n_ff, 1, 1);
}

/* The number of load_tensor calls load_weights makes, so that progress ends at exactly 1:
   optional biases and the lm_head (absent or tied) are counted as load_weights reads them. */
static int count_tensors(const kne_config *c, const kne_st_set *st)
{
    switch (c->arch) {
    case KNE_ARCH_LLAMA: {
        int per_layer = 9 + (c->attn_bias ? 3 : 0) + (c->attn_o_bias ? 1 : 0) + (c->mlp_bias ? 3 : 0);
        int head = !c->tie_embeddings && kne_st_find(st, "lm_head.weight");
        return 2 + head + c->n_layer * per_layer;
    }
    case KNE_ARCH_GPTJ: {
        int head = c->tie_embeddings ? 0 : 1 + (kne_st_find(st, "lm_head.bias") != NULL);
        return 3 + head + c->n_layer * 10;
    }
    case KNE_ARCH_GPT2:
        return 4 + c->n_layer * 12;
    }
    return 1;
}

static kne_status load_weights(loader *ld)
{
    kne_model *m = ld->m;
    const kne_config *c = &m->cfg;
    int64_t V = c->n_vocab, E = c->n_embd;
    char name[256];
    ld->total = count_tensors(c, ld->st);
    if (c->arch == KNE_ARCH_LLAMA) {
        KNE_TRY(load_tensor(ld, &m->wte, "model.embed_tokens.weight", 2, V, E, 0));
        for (int l = 0; l < c->n_layer; l++) KNE_TRY(load_llama_block(ld, l));
        KNE_TRY(load_tensor(ld, &m->lnf_w, "model.norm.weight", 1, E, 0, 0));
        if (c->tie_embeddings || !kne_st_find(ld->st, "lm_head.weight")) m->head.w = m->wte;
        else KNE_TRY(load_tensor(ld, &m->head.w, "lm_head.weight", 2, V, E, 0));
    } else {
        ld->prefix = kne_st_find(ld->st, "transformer.wte.weight") ? "transformer." : "";
        snprintf(name, sizeof name, "%swte.weight", ld->prefix);
        KNE_TRY(load_tensor(ld, &m->wte, name, 2, V, E, 0));
        if (c->arch == KNE_ARCH_GPT2) {
            snprintf(name, sizeof name, "%swpe.weight", ld->prefix);
            KNE_TRY(load_tensor(ld, &m->wpe, name, 2, c->n_ctx, E, 0));
        }
        for (int l = 0; l < c->n_layer; l++)
            KNE_TRY(c->arch == KNE_ARCH_GPTJ ? load_gptj_block(ld, l) : load_gpt2_block(ld, l));
        snprintf(name, sizeof name, "%sln_f.weight", ld->prefix);
        KNE_TRY(load_tensor(ld, &m->lnf_w, name, 1, E, 0, 0));
        snprintf(name, sizeof name, "%sln_f.bias", ld->prefix);
        KNE_TRY(load_tensor(ld, &m->lnf_b, name, 1, E, 0, 0));
        if (c->arch == KNE_ARCH_GPT2 || c->tie_embeddings) {
            m->head.w = m->wte;
        } else {
            KNE_TRY(load_tensor(ld, &m->head.w, "lm_head.weight", 2, V, E, 0));
            if (kne_st_find(ld->st, "lm_head.bias")) KNE_TRY(load_tensor(ld, &m->head.b, "lm_head.bias", 1, V, 0, 0));
        }
    }
    m->head.n_out = V;
    m->head.n_in = E;
    return KNE_OK;
}

/* FNV-1a over the shapes and the first bytes of the embedding: tells checkpoints apart. */
static uint64_t fingerprint(const kne_model *m, const kne_st_set *st)
{
    uint64_t h = 1469598103934665603ULL;
    const kne_config *c = &m->cfg;
    int v[8] = {c->arch, c->n_vocab, c->n_embd, c->n_layer, c->n_head, c->n_kv_head, c->n_ff, c->n_ctx};
    const unsigned char *p = (const unsigned char *)v;
    for (size_t i = 0; i < sizeof v; i++) h = (h ^ p[i]) * 1099511628211ULL;
    for (size_t i = 0; i < kne_st_count(st); i++) {
        const kne_st_tensor *t = kne_st_at(st, i);
        if (!strstr(t->name, "wte.weight") && !strstr(t->name, "embed_tokens.weight")) continue;
        const unsigned char *d = t->data;
        size_t n = t->nbytes < 65536 ? t->nbytes : 65536;
        for (size_t j = 0; j < n; j++) h = (h ^ d[j]) * 1099511628211ULL;
    }
    return h;
}

static int resolve_dtype(int asked, const char *device, int cfg_dtype)
{
    if (asked != KNE_DTYPE_AUTO) return asked;
    if (!strncmp(device, "cpu", 3)) return KNE_DTYPE_F32; /* half precision on CPU is slow and inexact */
    return cfg_dtype ? cfg_dtype : KNE_DTYPE_F32;
}

KNE_API kne_model_params kne_model_default_params(void)
{
    kne_model_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.device = "cpu";
    p.dtype = KNE_DTYPE_AUTO;
    return p;
}

KNE_API kne_status kne_model_load(kne_model **out, const char *dir, const kne_model_params *params)
{
    kne_clear_error();
    if (!out || !dir) return kne_fail(KNE_ERR_INVALID_ARG, "kne_model_load: out and dir must not be NULL");
    *out = NULL;
    kne_model_params p = kne_model_default_params();
    if (params) {
        if (params->struct_size < offsetof(kne_model_params, progress) || params->struct_size > sizeof p)
            return kne_fail(KNE_ERR_INVALID_ARG, "kne_model_load: params->struct_size %u is not a known size "
                            "(use kne_model_default_params)", params->struct_size);
        memcpy(&p, params, params->struct_size);
        if (!p.device) p.device = "cpu";
    }
    if (p.dtype < KNE_DTYPE_AUTO || p.dtype > KNE_DTYPE_BF16)
        return kne_fail(KNE_ERR_INVALID_ARG, "kne_model_load: dtype %d is not a KNE_DTYPE_* value", p.dtype);
    if (p.n_threads < 0) return kne_fail(KNE_ERR_INVALID_ARG, "kne_model_load: n_threads must be >= 0");
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return kne_fail(errno == ENOENT ? KNE_ERR_NOT_FOUND : KNE_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return kne_fail(KNE_ERR_NOT_FOUND, "%s: not a directory", dir);
    if (!*p.device) /* the shim would read "" as cpu, but the model would then report device "" */
        return kne_fail(KNE_ERR_DEVICE, "device '' is empty (use cpu, cuda or cuda:N)");
    KNE_TRY(kt_check_device(p.device));
    if (strlen(p.device) >= sizeof((kne_model *)0)->device)
        return kne_fail(KNE_ERR_DEVICE, "device string '%s' is too long", p.device);
    kt_set_num_threads(p.n_threads);
    /* OpenBLAS threads under libtorch's own parallelism oversubscribe the cores: a 16-token
       forward of kne-llama-tiny takes 40 ms with the default pool and 8 ms with one
       thread, locate + apply 2.3 s and 0.74 s (docs/BENCHMARKS.md). So: n_threads when
       given, else 1 unless the user set OPENBLAS_NUM_THREADS. */
    if (p.n_threads > 0) kt_blas_threads(p.n_threads);
    else if (!getenv("OPENBLAS_NUM_THREADS")) kt_blas_threads(1);

    kne_model *m = calloc(1, sizeof *m);
    if (!m) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_model_load: out of memory");
    /* Prefer writers: with glibc's default, readers forwarding back to back would
       starve an edit's row write forever. */
    pthread_rwlockattr_t lock_attr;
    pthread_rwlockattr_init(&lock_attr);
#ifdef __GLIBC__
    pthread_rwlockattr_setkind_np(&lock_attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    pthread_rwlock_init(&m->lock, &lock_attr);
    pthread_rwlockattr_destroy(&lock_attr);
    m->n_threads = p.n_threads;
    m->dir = strdup(dir);
    snprintf(m->device, sizeof m->device, "%s", p.device);
    m->weights = kt_arena_new();
    kne_status s = m->dir && m->weights ? KNE_OK : kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_model_load: out of memory");
    if (s == KNE_OK) s = kne_config_load(&m->cfg, dir);
    if (s == KNE_OK) {
        m->dtype = resolve_dtype(p.dtype, p.device, m->cfg.dtype);
        m->blocks = calloc((size_t)m->cfg.n_layer, sizeof *m->blocks);
        if (!m->blocks) s = kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_model_load: out of memory");
    }
    if (s == KNE_OK) s = kne_tokenizer_load(&m->tok, dir);
    loader ld = {m, NULL, &p, "", 0, 0};
    if (s == KNE_OK) s = kne_st_open_dir(&ld.st, dir);
    if (s == KNE_OK) s = load_weights(&ld);
    if (s == KNE_OK) m->fingerprint = fingerprint(m, ld.st);
    kne_st_close(ld.st);
    if (s != KNE_OK) {
        kne_model_free(m);
        return s;
    }
    *out = m;
    return KNE_OK;
}

KNE_API void kne_model_free(kne_model *model)
{
    if (!model) return;
    kt_arena_free(model->weights);
    kne_tokenizer_free(model->tok);
    free(model->blocks);
    free(model->dir);
    pthread_rwlock_destroy(&model->lock);
    free(model);
}
