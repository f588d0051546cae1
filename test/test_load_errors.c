/* kne_model_load on bad input: one broken thing per checkpoint, each with its own
   status and a message naming the file or tensor, *out left NULL, nothing leaked
   (run under valgrind: docs/architecture.md). The checkpoints are tiny hand-written
   GPT-2 and Llama models (1 layer, n_embd 8, random weights) written by a small
   safetensors writer below into mkdtemp() directories, with the tokenizer copied from
   the shared testbed models. Also the positive cases (the tiny models load and give
   finite logits; transformers-4 Llama configs with linear and llama3 rope scaling load
   and change the logits as they should), progress fractions, and kne_model_forward on
   bad input. */
#include "kne.h"
#include "test.h"

#include <errno.h>
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

/* ------------------------------------------------------------ file helpers */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f || fputs(text, f) < 0) { perror(path); exit(2); }
    fclose(f);
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in) return 0;
    FILE *out = fopen(to, "wb");
    if (!out) { perror(to); exit(2); }
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) { perror(to); exit(2); }
    fclose(in);
    fclose(out);
    return 1;
}

/* Removes dir and everything below it (no symlinks are made here). */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[1024];
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
            else unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* A new empty directory under root. Returned pointer: static ring of 8. */
static const char *new_dir(void)
{
    static char bufs[8][320];
    static int next;
    char *p = bufs[next++ % 8];
    snprintf(p, sizeof bufs[0], "%s/ckptXXXXXX", root);
    if (!mkdtemp(p)) { perror(p); exit(2); }
    return p;
}

static void join(char *out, size_t cap, const char *dir, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

/* ------------------------------------------------------ safetensors writer */

typedef struct spec {
    char name[96];
    int ndim;
    int64_t shape[2];
} spec;

/* One broken thing at a time. */
typedef struct mutation {
    const char *drop;          /* leave this tensor out */
    const char *dtype_of;      /* give this tensor dtype_name instead of F32 */
    const char *dtype_name;
    const char *reshape_of;    /* give this tensor shape [reshape0] or [reshape0, reshape1] (data sized to fit) */
    int reshape_ndim;
    int64_t reshape0, reshape1;
    const char *overlap_of;    /* this tensor reuses the offsets of the tensor before it (same size) */
    int end_beyond;            /* the last tensor's data_offsets end 4 bytes past the data area */
    long truncate_by;          /* cut this many bytes off the end of the file */
    long truncate_to;          /* or cut the file to this many bytes (> 0) */
    uint64_t hlen_extra;       /* header length field larger than the header by this much */
    const char *raw_header;    /* a header text of our own instead */
} mutation;

static size_t elem_size(const char *dtype)
{
    if (!strcmp(dtype, "F16") || !strcmp(dtype, "BF16")) return 2;
    if (!strcmp(dtype, "I64") || !strcmp(dtype, "F64")) return 8;
    if (!strcmp(dtype, "U8") || !strcmp(dtype, "I8") || !strcmp(dtype, "BOOL")) return 1;
    return 4;
}

static uint32_t rng_state;
static float rnd(void) /* uniform in [-0.5, 0.5) */
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(rng_state >> 8) / 16777216.0f - 0.5f;
}

/* Writes the tensors of specs (random F32 data, same every time) into path, broken as m says. */
static void write_st(const char *path, const spec *specs, int n, const mutation *m)
{
    static const mutation none;
    if (!m) m = &none;
    size_t hcap = 256 + (size_t)n * 200, hlen = 0;
    char *hdr = malloc(hcap);
    uint64_t *beg = calloc((size_t)n, sizeof *beg), *end = calloc((size_t)n, sizeof *end);
    hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0, prev_b = 0, prev_e = 0;
    for (int i = 0; i < n; i++) {
        const spec *s = &specs[i];
        if (m->drop && !strcmp(m->drop, s->name)) continue;
        const char *dt = m->dtype_of && !strcmp(m->dtype_of, s->name) ? m->dtype_name : "F32";
        int nd = s->ndim;
        int64_t sh[2] = {s->shape[0], s->shape[1]};
        if (m->reshape_of && !strcmp(m->reshape_of, s->name)) {
            nd = m->reshape_ndim;
            sh[0] = m->reshape0;
            sh[1] = m->reshape1;
        }
        uint64_t bytes = elem_size(dt) * (uint64_t)sh[0] * (uint64_t)(nd == 2 ? sh[1] : 1);
        if (m->overlap_of && !strcmp(m->overlap_of, s->name)) {
            beg[i] = prev_b;
            end[i] = prev_e;
        } else {
            beg[i] = off;
            end[i] = off + bytes;
            off += bytes;
        }
        prev_b = beg[i];
        prev_e = end[i];
        char shape[64];
        if (nd == 2) snprintf(shape, sizeof shape, "[%lld,%lld]", (long long)sh[0], (long long)sh[1]);
        else snprintf(shape, sizeof shape, "[%lld]", (long long)sh[0]);
        uint64_t b = beg[i], e = end[i];
        if (m->end_beyond && i == n - 1) {
            b += 4;
            e += 4;
        }
        hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, ",\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%llu,%llu]}",
                                 s->name, dt, shape, (unsigned long long)b, (unsigned long long)e);
    }
    hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "}");
    if (m->raw_header) {
        free(hdr);
        hdr = strdup(m->raw_header);
        hlen = strlen(hdr);
        hdr = realloc(hdr, hlen + 8);
    }
    while (hlen % 8) hdr[hlen++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    uint64_t field = hlen + m->hlen_extra;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(field >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(hdr, 1, hlen, f);
    rng_state = 12345;
    for (uint64_t i = 0; i < off / 4; i++) {
        float v = rnd();
        fwrite(&v, 4, 1, f);
    }
    for (uint64_t i = 0; i < off % 4; i++) fputc(0, f);
    fclose(f);
    long size = (long)(8 + hlen + off);
    if (m->truncate_by && truncate(path, size - m->truncate_by) != 0) { perror(path); exit(2); }
    if (m->truncate_to && truncate(path, m->truncate_to) != 0) { perror(path); exit(2); }
    free(hdr);
    free(beg);
    free(end);
}

/* --------------------------------------------------------- tiny checkpoints */

enum { E = 8, HEADS = 2, KV_HEADS = 1, FF = 16, CTX = 16, V_GPT2 = 50257, V_LLAMA = 32000 };

static int add(spec *s, int n, const char *name, int ndim, int64_t d0, int64_t d1)
{
    snprintf(s[n].name, sizeof s[n].name, "%s", name);
    s[n].ndim = ndim;
    s[n].shape[0] = d0;
    s[n].shape[1] = d1;
    return n + 1;
}

/* GPT-2, 1 layer, Conv1D weights stored [in, out]. */
static int gpt2_specs(spec *s)
{
    int n = 0;
    n = add(s, n, "transformer.wte.weight", 2, V_GPT2, E);
    n = add(s, n, "transformer.wpe.weight", 2, CTX, E);
    n = add(s, n, "transformer.h.0.ln_1.weight", 1, E, 0);
    n = add(s, n, "transformer.h.0.ln_1.bias", 1, E, 0);
    n = add(s, n, "transformer.h.0.attn.c_attn.weight", 2, E, 3 * E);
    n = add(s, n, "transformer.h.0.attn.c_attn.bias", 1, 3 * E, 0);
    n = add(s, n, "transformer.h.0.attn.c_proj.weight", 2, E, E);
    n = add(s, n, "transformer.h.0.attn.c_proj.bias", 1, E, 0);
    n = add(s, n, "transformer.h.0.ln_2.weight", 1, E, 0);
    n = add(s, n, "transformer.h.0.ln_2.bias", 1, E, 0);
    n = add(s, n, "transformer.h.0.mlp.c_fc.weight", 2, E, 4 * E);
    n = add(s, n, "transformer.h.0.mlp.c_fc.bias", 1, 4 * E, 0);
    n = add(s, n, "transformer.h.0.mlp.c_proj.weight", 2, 4 * E, E);
    n = add(s, n, "transformer.h.0.mlp.c_proj.bias", 1, E, 0);
    n = add(s, n, "transformer.ln_f.weight", 1, E, 0);
    n = add(s, n, "transformer.ln_f.bias", 1, E, 0);
    return n;
}

/* Llama, 1 layer, GQA 2 heads / 1 kv head of 4, untied lm_head. */
static int llama_specs(spec *s)
{
    int n = 0, hd = E / HEADS;
    n = add(s, n, "model.embed_tokens.weight", 2, V_LLAMA, E);
    n = add(s, n, "model.layers.0.input_layernorm.weight", 1, E, 0);
    n = add(s, n, "model.layers.0.self_attn.q_proj.weight", 2, HEADS * hd, E);
    n = add(s, n, "model.layers.0.self_attn.k_proj.weight", 2, KV_HEADS * hd, E);
    n = add(s, n, "model.layers.0.self_attn.v_proj.weight", 2, KV_HEADS * hd, E);
    n = add(s, n, "model.layers.0.self_attn.o_proj.weight", 2, E, HEADS * hd);
    n = add(s, n, "model.layers.0.post_attention_layernorm.weight", 1, E, 0);
    n = add(s, n, "model.layers.0.mlp.gate_proj.weight", 2, FF, E);
    n = add(s, n, "model.layers.0.mlp.up_proj.weight", 2, FF, E);
    n = add(s, n, "model.layers.0.mlp.down_proj.weight", 2, E, FF);
    n = add(s, n, "model.norm.weight", 1, E, 0);
    n = add(s, n, "lm_head.weight", 2, V_LLAMA, E);
    return n;
}

static char gpt2_config[1024];

static void make_configs(void)
{
    snprintf(gpt2_config, sizeof gpt2_config,
             "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\", \"activation_function\": \"gelu_new\",\n"
             " \"bos_token_id\": 50256, \"eos_token_id\": 50256, \"dtype\": \"float32\", \"layer_norm_epsilon\": 1e-05,\n"
             " \"n_embd\": %d, \"n_head\": %d, \"n_inner\": null, \"n_layer\": 1, \"n_positions\": %d,\n"
             " \"tie_word_embeddings\": true, \"vocab_size\": %d}\n", E, HEADS, CTX, V_GPT2);
}

/* A transformers-4 style Llama config with the given rope lines (may be ""). */
static void llama_config(char *buf, size_t cap, const char *rope)
{
    snprintf(buf, cap,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"bos_token_id\": 1, \"eos_token_id\": 2,\n"
             " \"hidden_act\": \"silu\", \"hidden_size\": %d, \"intermediate_size\": %d, \"max_position_embeddings\": %d,\n"
             " \"num_attention_heads\": %d, \"num_hidden_layers\": 1, \"num_key_value_heads\": %d, \"rms_norm_eps\": 1e-05,\n"
             " \"tie_word_embeddings\": false, \"torch_dtype\": \"float32\", \"transformers_version\": \"4.44.0\",\n"
             " \"vocab_size\": %d%s%s}\n", E, FF, CTX, HEADS, KV_HEADS, V_LLAMA, *rope ? ", " : "", rope);
}

enum { NO_TOKENIZER = 1, NO_WEIGHTS = 2, LLAMA = 4 };

/* A checkpoint dir: config text, tokenizer copied from the testbed model, weights broken by m. */
static const char *make_ckpt(const char *config, int flags, const mutation *m)
{
    const char *dir = new_dir();
    char p[512], src[512];
    join(p, sizeof p, dir, "config.json");
    write_text(p, config);
    if (!(flags & NO_TOKENIZER)) {
        const char *model = flags & LLAMA ? "models/kne-llama-tiny" : "models/kne-gpt2-tiny";
        static const char *const files[2] = {"tokenizer.json", "tokenizer_config.json"};
        for (int i = 0; i < 2; i++) {
            char rel[128];
            snprintf(rel, sizeof rel, "%s/%s", model, files[i]);
            test_path(src, sizeof src, rel);
            join(p, sizeof p, dir, files[i]);
            if (!copy_file(src, p) && i == 0) { fprintf(stderr, "cannot read %s\n", src); exit(2); }
        }
    }
    if (!(flags & NO_WEIGHTS)) {
        spec s[32];
        int n = flags & LLAMA ? llama_specs(s) : gpt2_specs(s);
        join(p, sizeof p, dir, "model.safetensors");
        write_st(p, s, n, m);
    }
    return dir;
}

/* ---------------------------------------------------------------- checks */

/* Loading dir must fail with want, name needle (and needle2 if given) in the message,
   and leave *out NULL (it is set to a non-NULL value before the call). */
static void expect_fail_(int line, const char *what, const char *dir, const kne_model_params *p, kne_status want,
                         const char *needle, const char *needle2)
{
    static int sentinel;
    kne_model *m = (kne_model *)(void *)&sentinel;
    kne_status s = kne_model_load(&m, dir, p);
    const char *err = kne_last_error();
    if (s == want && m == NULL && err[0] && (!needle || strstr(err, needle)) && (!needle2 || strstr(err, needle2))) {
        test_passed++;
        printf("  ok  %-34s %-22s %s\n", what, kne_status_str(s), err);
    } else {
        test_failed++;
        fprintf(stderr, "FAIL %s:%d: %s: status %d (%s), want %d (%s); out %s; message \"%s\", want it to name \"%s\"%s%s\n",
                __FILE__, line, what, (int)s, kne_status_str(s), (int)want, kne_status_str(want),
                m == NULL ? "NULL" : "NOT NULL", err, needle ? needle : "", needle2 ? " and " : "",
                needle2 ? needle2 : "");
        if (s == KNE_OK && m != (kne_model *)(void *)&sentinel) kne_model_free(m);
    }
}
#define expect_fail(what, dir, p, want, needle, needle2) expect_fail_(__LINE__, what, dir, p, want, needle, needle2)

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* Loads dir (must succeed) and returns the logits of ids (caller frees), or NULL. */
static float *load_and_forward(const char *what, const char *dir, const int32_t *ids, size_t n, int32_t *vocab)
{
    kne_model *m = NULL;
    kne_status s = kne_model_load(&m, dir, NULL);
    CHECK_MSG(s == KNE_OK && m, "%s: load returned %s: %s", what, kne_status_str(s), kne_last_error());
    if (!m) return NULL;
    int32_t V = kne_model_n_vocab(m);
    *vocab = V;
    float *lg = malloc(sizeof(float) * n * (size_t)V);
    CHECK_STATUS(kne_model_forward(m, ids, n, lg), KNE_OK);
    CHECK_MSG(all_finite(lg, n * (size_t)V), "%s: logits not finite", what);
    kne_model_free(m);
    return lg;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
    return d;
}

/* ------------------------------------------------------------------ cases */

static void test_paths_and_args(void)
{
    printf("arguments and paths\n");
    char p[512];
    snprintf(p, sizeof p, "%s/does-not-exist", root);
    expect_fail("missing directory", p, NULL, KNE_ERR_NOT_FOUND, "does-not-exist", NULL);
    const char *dir = new_dir();
    join(p, sizeof p, dir, "plain-file");
    write_text(p, "not a checkpoint\n");
    expect_fail("a file instead of a directory", p, NULL, KNE_ERR_NOT_FOUND, "plain-file", "not a directory");
    expect_fail("empty directory (no config.json)", dir, NULL, KNE_ERR_NOT_FOUND, "config.json", NULL);

    /* NULL out / dir: nothing to set */
    kne_model *m = NULL;
    CHECK_STATUS(kne_model_load(NULL, dir, NULL), KNE_ERR_INVALID_ARG);
    CHECK_STATUS(kne_model_load(&m, NULL, NULL), KNE_ERR_INVALID_ARG);
    CHECK(m == NULL);

    /* bad parameters on a good checkpoint: rejected before anything is read */
    const char *good = make_ckpt(gpt2_config, 0, NULL);
    kne_model_params mp = kne_model_default_params();
    CHECK(mp.struct_size == sizeof mp && mp.device && !strcmp(mp.device, "cpu") && mp.dtype == KNE_DTYPE_AUTO &&
          mp.n_threads == 0 && mp.progress == NULL);
    mp.struct_size = 0;
    expect_fail("struct_size 0", good, &mp, KNE_ERR_INVALID_ARG, "struct_size", NULL);
    mp.struct_size = sizeof mp + 8;
    expect_fail("struct_size too large", good, &mp, KNE_ERR_INVALID_ARG, "struct_size", NULL);
    mp = kne_model_default_params();
    mp.dtype = 9;
    expect_fail("dtype 9", good, &mp, KNE_ERR_INVALID_ARG, "dtype 9", NULL);
    mp.dtype = -1;
    expect_fail("dtype -1", good, &mp, KNE_ERR_INVALID_ARG, "dtype -1", NULL);
    mp = kne_model_default_params();
    mp.n_threads = -1;
    expect_fail("n_threads -1", good, &mp, KNE_ERR_INVALID_ARG, "n_threads", NULL);

    /* devices: this test runs against the CPU-only libtorch; with a CUDA build and a GPU,
       "cuda" loads, which is accepted too */
    mp = kne_model_default_params();
    mp.device = "cuda";
    m = NULL;
    kne_status s = kne_model_load(&m, good, &mp);
    if (s == KNE_OK) {
        printf("  ok  device cuda loads (CUDA build)\n");
        CHECK(m && !strncmp(kne_model_device(m), "cuda", 4));
        kne_model_free(m);
    } else {
        expect_fail("device cuda (CPU-only libtorch)", good, &mp, KNE_ERR_DEVICE, "'cuda'", "CUDA");
    }
    mp.device = "cuda:7";
    expect_fail("device cuda:7", good, &mp, KNE_ERR_DEVICE, "'cuda:7'", NULL);
    mp.device = "tpu";
    expect_fail("device tpu", good, &mp, KNE_ERR_DEVICE, "'tpu'", "cpu, cuda");
    mp.device = "";
    expect_fail("device \"\"", good, &mp, KNE_ERR_DEVICE, "''", "cpu, cuda");
    mp.device = "cpu:banana";
    expect_fail("device cpu:banana", good, &mp, KNE_ERR_DEVICE, "cpu:banana", NULL);
    /* NULL device means the default (cpu) */
    mp.device = NULL;
    m = NULL;
    CHECK_STATUS(kne_model_load(&m, good, &mp), KNE_OK);
    CHECK(m && !strcmp(kne_model_device(m), "cpu"));
    kne_model_free(m);
}

static void test_config(void)
{
    printf("config.json\n");
    const char *d;
    d = make_ckpt("{\"architectures\": [\"GPT2LMHeadModel\"], \"n_embd\": 8,", 0, NULL);
    expect_fail("invalid JSON in config.json", d, NULL, KNE_ERR_FORMAT, "config.json", NULL);
    d = make_ckpt("[1, 2, 3]\n", 0, NULL);
    expect_fail("config.json not an object", d, NULL, KNE_ERR_FORMAT, "config.json", NULL);
    d = make_ckpt("{\"architectures\": [\"BertModel\"], \"model_type\": \"bert\", \"hidden_size\": 8, \"vocab_size\": 30522}\n",
                  0, NULL);
    expect_fail("unknown architecture", d, NULL, KNE_ERR_UNSUPPORTED, "BertModel", "config.json");
    d = make_ckpt("{\"model_type\": \"bert\", \"hidden_size\": 8}\n", 0, NULL);
    expect_fail("no architectures, unknown model_type", d, NULL, KNE_ERR_FORMAT, "config.json", "model_type");
    char cfg[2048];
    snprintf(cfg, sizeof cfg, "%s", gpt2_config);
    char *at = strstr(cfg, "\"n_embd\": 8, ");
    memmove(at, at + 13, strlen(at + 13) + 1); /* drop n_embd */
    d = make_ckpt(cfg, 0, NULL);
    expect_fail("config without n_embd", d, NULL, KNE_ERR_FORMAT, "n_embd", "config.json");
    snprintf(cfg, sizeof cfg, "%s", gpt2_config);
    at = strstr(cfg, "gelu_new");
    memcpy(at, "mish", 4);
    memmove(at + 4, at + 8, strlen(at + 8) + 1); /* "gelu_new" -> "mish" */
    d = make_ckpt(cfg, 0, NULL);
    expect_fail("unknown activation", d, NULL, KNE_ERR_UNSUPPORTED, "mish", NULL);

    llama_config(cfg, sizeof cfg, "\"rope_theta\": 10000.0, \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0, "
                                  "\"original_max_position_embeddings\": 8}");
    d = make_ckpt(cfg, LLAMA, NULL);
    expect_fail("rope scaling yarn", d, NULL, KNE_ERR_UNSUPPORTED, "yarn", "config.json");
    llama_config(cfg, sizeof cfg, "\"rope_scaling\": {\"rope_type\": \"longrope\", \"short_factor\": [1.0, 1.0], "
                                  "\"long_factor\": [2.0, 2.0]}");
    d = make_ckpt(cfg, LLAMA, NULL);
    expect_fail("rope scaling longrope (no factor)", d, NULL, KNE_ERR_UNSUPPORTED, "longrope", NULL);
    llama_config(cfg, sizeof cfg, "\"rope_scaling\": {\"type\": \"linear\"}");
    d = make_ckpt(cfg, LLAMA, NULL);
    expect_fail("linear rope scaling without factor", d, NULL, KNE_ERR_FORMAT, "factor", NULL);
    llama_config(cfg, sizeof cfg, "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}");
    d = make_ckpt(cfg, LLAMA, NULL);
    expect_fail("llama3 rope scaling incomplete", d, NULL, KNE_ERR_FORMAT, "llama3", NULL);
    llama_config(cfg, sizeof cfg, "\"sliding_window\": 4");
    d = make_ckpt(cfg, LLAMA, NULL);
    expect_fail("sliding window", d, NULL, KNE_ERR_UNSUPPORTED, "sliding", NULL);
}

static void test_safetensors(void)
{
    printf("safetensors\n");
    const char *d;
    mutation m;
#define MUT(...) (memset(&m, 0, sizeof m), m = (mutation){__VA_ARGS__}, &m)
    d = make_ckpt(gpt2_config, NO_WEIGHTS, NULL);
    expect_fail("no safetensors file", d, NULL, KNE_ERR_NOT_FOUND, "safetensors", NULL);
    d = make_ckpt(gpt2_config, 0, MUT(.truncate_to = 4));
    expect_fail("safetensors of 4 bytes", d, NULL, KNE_ERR_FORMAT, "model.safetensors", NULL);
    d = make_ckpt(gpt2_config, 0, MUT(.truncate_by = 1000));
    expect_fail("truncated safetensors (data)", d, NULL, KNE_ERR_FORMAT, "model.safetensors", "data area");
    d = make_ckpt(gpt2_config, 0, MUT(.truncate_to = 100));
    expect_fail("truncated safetensors (header)", d, NULL, KNE_ERR_FORMAT, "model.safetensors", "header length");
    d = make_ckpt(gpt2_config, 0, MUT(.hlen_extra = (uint64_t)1 << 40));
    expect_fail("header length larger than file", d, NULL, KNE_ERR_FORMAT, "model.safetensors", "header length");
    d = make_ckpt(gpt2_config, 0, MUT(.raw_header = "{\"transformer.wte.weight\": {\"dtype\": \"F32\", "));
    expect_fail("header not JSON", d, NULL, KNE_ERR_FORMAT, "model.safetensors", NULL);
    d = make_ckpt(gpt2_config, 0, MUT(.end_beyond = 1));
    expect_fail("offsets out of range", d, NULL, KNE_ERR_FORMAT, "transformer.ln_f.bias", "model.safetensors");
    d = make_ckpt(gpt2_config, 0, MUT(.overlap_of = "transformer.h.0.ln_1.bias"));
    expect_fail("overlapping tensors", d, NULL, KNE_ERR_FORMAT, "overlap", "transformer.h.0.ln_1.bias");
    d = make_ckpt(gpt2_config, 0, MUT(.dtype_of = "transformer.h.0.mlp.c_fc.weight", .dtype_name = "I64"));
    expect_fail("dtype I64", d, NULL, KNE_ERR_DTYPE, "transformer.h.0.mlp.c_fc.weight", "I64");
    d = make_ckpt(gpt2_config, 0, MUT(.dtype_of = "transformer.wpe.weight", .dtype_name = "F64"));
    expect_fail("dtype F64", d, NULL, KNE_ERR_DTYPE, "transformer.wpe.weight", "F64");
    d = make_ckpt(gpt2_config, 0, MUT(.drop = "transformer.h.0.attn.c_proj.weight"));
    expect_fail("missing tensor", d, NULL, KNE_ERR_MISSING_TENSOR, "transformer.h.0.attn.c_proj.weight", NULL);
    d = make_ckpt(gpt2_config, 0, MUT(.drop = "transformer.ln_f.bias"));
    expect_fail("missing last tensor", d, NULL, KNE_ERR_MISSING_TENSOR, "transformer.ln_f.bias", NULL);
    d = make_ckpt(gpt2_config, 0, MUT(.reshape_of = "transformer.h.0.mlp.c_fc.weight", .reshape_ndim = 2,
                                      .reshape0 = 4 * E, .reshape1 = E));
    expect_fail("wrong shape (transposed Conv1D)", d, NULL, KNE_ERR_SHAPE, "transformer.h.0.mlp.c_fc.weight", "[32, 8]");
    d = make_ckpt(gpt2_config, 0, MUT(.reshape_of = "transformer.ln_f.weight", .reshape_ndim = 1, .reshape0 = E + 1));
    expect_fail("wrong shape (1-d)", d, NULL, KNE_ERR_SHAPE, "transformer.ln_f.weight", NULL);
    d = make_ckpt(gpt2_config, 0, MUT(.reshape_of = "transformer.wte.weight", .reshape_ndim = 1, .reshape0 = V_GPT2 * E));
    expect_fail("wrong rank", d, NULL, KNE_ERR_SHAPE, "transformer.wte.weight", NULL);
    char cfg[2048];
    llama_config(cfg, sizeof cfg, "");
    d = make_ckpt(cfg, LLAMA, MUT(.reshape_of = "model.layers.0.self_attn.k_proj.weight", .reshape_ndim = 2,
                                  .reshape0 = E, .reshape1 = E));
    expect_fail("llama k_proj without GQA", d, NULL, KNE_ERR_SHAPE, "model.layers.0.self_attn.k_proj.weight", NULL);
    d = make_ckpt(cfg, LLAMA, MUT(.drop = "model.layers.0.mlp.gate_proj.weight"));
    expect_fail("llama missing gate_proj", d, NULL, KNE_ERR_MISSING_TENSOR, "model.layers.0.mlp.gate_proj.weight", NULL);
    d = make_ckpt(gpt2_config, NO_TOKENIZER, NULL);
    expect_fail("missing tokenizer.json", d, NULL, KNE_ERR_NOT_FOUND, "tokenizer.json", NULL);
#undef MUT
}

typedef struct progress_log {
    int calls, cancel_at;
    float last, min_step;
    int monotone, in_range;
} progress_log;

static bool on_progress(float f, void *ud)
{
    progress_log *pl = ud;
    if (pl->calls > 0 && f - pl->last < pl->min_step) pl->min_step = f - pl->last;
    if (pl->calls > 0 && f <= pl->last) pl->monotone = 0;
    if (!(f >= 0.0f && f <= 1.0f)) pl->in_range = 0;
    pl->last = f;
    pl->calls++;
    return pl->cancel_at == 0 || pl->calls < pl->cancel_at;
}

static void check_progress(const char *what, const char *dir, int n_tensors)
{
    progress_log pl = {0, 0, 0.0f, 1.0f, 1, 1};
    kne_model_params mp = kne_model_default_params();
    mp.progress = on_progress;
    mp.progress_user_data = &pl;
    kne_model *m = NULL;
    CHECK_STATUS(kne_model_load(&m, dir, &mp), KNE_OK);
    kne_model_free(m);
    CHECK_MSG(pl.calls == n_tensors, "%s: %d progress calls, want %d", what, pl.calls, n_tensors);
    CHECK_MSG(pl.monotone && pl.in_range, "%s: progress not increasing in [0, 1]", what);
    CHECK_MSG(fabsf(pl.last - 1.0f) < 1e-6f, "%s: last progress %g, want 1", what, (double)pl.last);
}

static void test_progress(void)
{
    printf("progress and cancel\n");
    const char *good = make_ckpt(gpt2_config, 0, NULL);
    check_progress("gpt2 tiny", good, 16);
    char cfg[2048];
    llama_config(cfg, sizeof cfg, "");
    check_progress("llama tiny", make_ckpt(cfg, LLAMA, NULL), 12);
    /* tied: no lm_head read */
    llama_config(cfg, sizeof cfg, "\"tie_word_embeddings\": true");
    { char *t = strstr(cfg, "\"tie_word_embeddings\": false, "); memmove(t, t + 30, strlen(t + 30) + 1); }
    mutation m = {0};
    m.drop = "lm_head.weight";
    check_progress("llama tiny, tied", make_ckpt(cfg, LLAMA, &m), 11);
    /* the GPT-J testbed model has an lm_head bias */
    char dir[512];
    test_path(dir, sizeof dir, "models/kne-gptj-tiny");
    check_progress("kne-gptj-tiny", dir, 5 + 6 * 10);

    for (int at = 1; at <= 16; at += 15) {
        progress_log pl = {0, at, 0.0f, 1.0f, 1, 1};
        kne_model_params mp = kne_model_default_params();
        mp.progress = on_progress;
        mp.progress_user_data = &pl;
        char what[64];
        snprintf(what, sizeof what, "cancel at tensor %d", at);
        expect_fail(what, good, &mp, KNE_ERR_CANCELLED, "cancelled", NULL);
        CHECK_MSG(pl.calls == at, "cancel: %d calls after returning false at call %d", pl.calls, at);
    }
}

static void test_positive(void)
{
    printf("tiny checkpoints that load\n");
    int32_t ids[6] = {464, 3139, 286, 4881, 318, 6342}, V = 0;
    const char *g = make_ckpt(gpt2_config, 0, NULL);
    kne_model *m = NULL;
    CHECK_STATUS(kne_model_load(&m, g, NULL), KNE_OK);
    if (m) {
        CHECK(kne_model_n_vocab(m) == V_GPT2 && kne_model_n_layers(m) == 1 && kne_model_n_embd(m) == E &&
              kne_model_n_ctx(m) == CTX && !strcmp(kne_model_arch(m), "gpt2"));
        V = kne_model_n_vocab(m);
        float *lg = malloc(sizeof(float) * (CTX + 1) * (size_t)V);
        CHECK_STATUS(kne_model_forward(m, ids, 6, lg), KNE_OK);
        CHECK(all_finite(lg, 6 * (size_t)V));
        /* bad input to forward */
        printf("forward on bad input\n");
        int32_t bad[3] = {1, V, 2};
        CHECK_STATUS(kne_model_forward(m, bad, 3, lg), KNE_ERR_INVALID_ARG);
        CHECK(strstr(kne_last_error(), "50257") != NULL);
        bad[1] = -1;
        CHECK_STATUS(kne_model_forward(m, bad, 3, lg), KNE_ERR_INVALID_ARG);
        CHECK_STATUS(kne_model_forward(m, ids, 0, lg), KNE_ERR_EMPTY);
        int32_t longer[CTX + 1];
        for (int i = 0; i <= CTX; i++) longer[i] = i;
        CHECK_STATUS(kne_model_forward(m, longer, CTX + 1, lg), KNE_ERR_TOO_LONG);
        CHECK_STATUS(kne_model_forward(m, longer, CTX, lg), KNE_OK);
        CHECK_STATUS(kne_model_forward(m, ids, 6, NULL), KNE_ERR_INVALID_ARG);
        CHECK_STATUS(kne_model_forward(m, NULL, 6, lg), KNE_ERR_INVALID_ARG);
        CHECK_STATUS(kne_model_forward(NULL, ids, 6, lg), KNE_ERR_INVALID_ARG);
        free(lg);
        kne_model_free(m);
    }

    /* Llama: transformers 5 spelling (no rope scaling), transformers 4 spelling with linear
       and llama3 scaling. Same weights: the first position (angle 0) is the same in all,
       later positions differ. */
    printf("llama configs\n");
    char cfg[2048];
    int32_t lids[6] = {1, 450, 7483, 310, 3444, 338};
    size_t n = 6;
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"bos_token_id\": 1, \"eos_token_id\": 2,\n"
             " \"dtype\": \"float32\", \"head_dim\": %d, \"hidden_act\": \"silu\", \"hidden_size\": %d, \"intermediate_size\": %d,\n"
             " \"max_position_embeddings\": %d, \"num_attention_heads\": %d, \"num_hidden_layers\": 1, \"num_key_value_heads\": %d,\n"
             " \"rms_norm_eps\": 1e-05, \"rope_parameters\": {\"rope_theta\": 10000.0, \"rope_type\": \"default\"},\n"
             " \"tie_word_embeddings\": false, \"transformers_version\": \"5.17.0\", \"vocab_size\": %d}\n",
             E / HEADS, E, FF, CTX, HEADS, KV_HEADS, V_LLAMA);
    float *base = load_and_forward("llama transformers-5", make_ckpt(cfg, LLAMA, NULL), lids, n, &V);
    llama_config(cfg, sizeof cfg, "\"rope_theta\": 10000.0");
    float *t4 = load_and_forward("llama transformers-4, no scaling", make_ckpt(cfg, LLAMA, NULL), lids, n, &V);
    llama_config(cfg, sizeof cfg, "\"rope_theta\": 10000.0, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}");
    float *lin = load_and_forward("llama linear rope scaling", make_ckpt(cfg, LLAMA, NULL), lids, n, &V);
    llama_config(cfg, sizeof cfg, "\"rope_theta\": 500000.0, \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, "
                                  "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                                  "\"original_max_position_embeddings\": 8}");
    float *l3 = load_and_forward("llama llama3 rope scaling", make_ckpt(cfg, LLAMA, NULL), lids, n, &V);
    llama_config(cfg, sizeof cfg, "\"rope_theta\": 500000.0");
    float *l3base = load_and_forward("llama theta 5e5, no scaling", make_ckpt(cfg, LLAMA, NULL), lids, n, &V);
    if (base && t4 && lin && l3 && l3base) {
        size_t all = n * (size_t)V;
        CHECK_MSG(max_abs_diff(base, t4, all) == 0, "transformers 4 and 5 spellings differ by %g",
                  max_abs_diff(base, t4, all));
        CHECK(max_abs_diff(base, lin, V) < 1e-6);      /* position 0 */
        CHECK_MSG(max_abs_diff(base, lin, all) > 1e-6, "linear scaling changed nothing");
        CHECK(max_abs_diff(l3base, l3, V) < 1e-6);
        CHECK_MSG(max_abs_diff(l3base, l3, all) > 1e-6, "llama3 scaling changed nothing");
    }
    free(base);
    free(t4);
    free(lin);
    free(l3);
    free(l3base);
}

int main(void)
{
    snprintf(root, sizeof root, "%s/kne-load-errors-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) { perror(root); return 2; }
    make_configs();
    test_paths_and_args();
    test_config();
    test_safetensors();
    test_progress();
    test_positive();
    remove_tree(root);
    return test_summary("load_errors");
}
