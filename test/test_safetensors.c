/* Safetensors reader and writer: the three shared tiny models checked against their
   index, config and an independent stdio decoding; write/read round trips; and one
   crafted file per malformed-input case, each with its status and message.
   Unity build: the reader is internal (hidden in libkne.so), so its sources are
   compiled into this test. */
#include "../lib/error.c"
#include "../lib/json_util.c"
#include "../lib/safetensors.c"
#include "../lib/safetensors_write.c"
#include "test.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

static char tmpdir[1024];

/* ---------------------------------------------------------------- helpers */

static const char *tpath(const char *rel)
{
    static char buf[4][sizeof tmpdir + 256];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, rel);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    if (len && fwrite(data, 1, len, f) != len) { perror(path); exit(2); }
    fclose(f);
}

/* A safetensors file: u64 length of header (as given, unpadded), header, data_len bytes. */
static const char *craft(const char *rel, const char *header, size_t data_len)
{
    const char *path = tpath(rel);
    size_t hlen = strlen(header);
    unsigned char *buf = calloc(1, 8 + hlen + data_len + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, header, hlen);
    for (size_t i = 0; i < data_len; i++) buf[8 + hlen + i] = (unsigned char)(i * 7 + 1);
    write_bytes(path, buf, 8 + hlen + data_len);
    free(buf);
    return path;
}

static const char *make_subdir(const char *rel)
{
    const char *p = tpath(rel);
    mkdir(p, 0755);
    return p;
}

/* Removes tmpdir and the files (one level of subdirectories) made in it. */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            chmod(p, 0755);
            remove_tree(p);
        } else {
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

static int msg_has(const char *s) { return s && strstr(kne_last_error(), s) != NULL; }

/* KNE_TEST_VERBOSE=1 prints each expected error message, to read them over. */
static void show_error(void)
{
    if (getenv("KNE_TEST_VERBOSE")) printf("  expected error: %s\n", kne_last_error());
}

/* open_file on path must fail with want, and the message must name the file and the
   two given fragments (tensor name, dtype...). */
#define EXPECT_FILE_FAIL(path, want, frag1, frag2) do { \
    kne_st_set *set_ = (kne_st_set *)1; \
    CHECK_STATUS(kne_st_open_file(&set_, (path)), (want)); \
    show_error(); \
    CHECK(set_ == NULL); \
    CHECK_MSG(msg_has(path), "message does not name %s: %s", (path), kne_last_error()); \
    CHECK_MSG(!(frag1) || msg_has(frag1), "message lacks '%s': %s", (frag1) ? (frag1) : "", kne_last_error()); \
    CHECK_MSG(!(frag2) || msg_has(frag2), "message lacks '%s': %s", (frag2) ? (frag2) : "", kne_last_error()); \
} while (0)

#define EXPECT_DIR_FAIL(dir, want, frag1, frag2) do { \
    kne_st_set *set_ = (kne_st_set *)1; \
    CHECK_STATUS(kne_st_open_dir(&set_, (dir)), (want)); \
    show_error(); \
    CHECK(set_ == NULL); \
    CHECK_MSG(!(frag1) || msg_has(frag1), "message lacks '%s': %s", (frag1) ? (frag1) : "", kne_last_error()); \
    CHECK_MSG(!(frag2) || msg_has(frag2), "message lacks '%s': %s", (frag2) ? (frag2) : "", kne_last_error()); \
} while (0)

static float bf16_to_float(const unsigned char *p)
{
    uint32_t bits = ((uint32_t)p[0] | (uint32_t)p[1] << 8) << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float f16_to_float(const unsigned char *p)
{
    unsigned h = (unsigned)p[0] | (unsigned)p[1] << 8;
    int e = (h >> 10) & 31;
    float m = (float)(h & 1023);
    float v = e == 0 ? ldexpf(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf(m + 1024.0f, e - 25);
    return h & 0x8000 ? -v : v;
}

static float value_at(const kne_st_tensor *t, size_t i)
{
    const unsigned char *p = (const unsigned char *)t->data + i * kne_st_dtype_size(t->dtype);
    if (t->dtype == KNE_ST_BF16) return bf16_to_float(p);
    if (t->dtype == KNE_ST_F16) return f16_to_float(p);
    float f;
    memcpy(&f, p, 4);
    return f;
}

/* ------------------------------------------------------- the shared models */

/* Reads one shard with stdio and json-c alone, and compares every tensor's bytes
   (at 8 + header length + begin) with the set's mmap'ed data. Returns tensors seen. */
static size_t compare_shard_raw(const kne_st_set *set, const char *path)
{
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return 0;
    unsigned char len8[8];
    CHECK(fread(len8, 1, 8, f) == 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
    char *hdr = calloc(1, (size_t)n + 1);
    CHECK(fread(hdr, 1, (size_t)n, f) == n);
    json_object *root = json_tokener_parse(hdr);
    CHECK_MSG(root != NULL, "%s: header does not parse", path);
    size_t seen = 0;
    if (root) {
        json_object_object_foreach(root, name, entry) {
            if (!strcmp(name, "__metadata__")) {
                CHECK(kne_json_str(entry, "format") && !strcmp(kne_json_str(entry, "format"), "pt"));
                continue;
            }
            seen++;
            const kne_st_tensor *t = kne_st_find(set, name);
            CHECK_MSG(t != NULL, "%s: tensor %s not in the set", path, name);
            if (!t) continue;
            json_object *offs = kne_json_get(entry, "data_offsets");
            long begin = (long)json_object_get_int64(json_object_array_get_idx(offs, 0));
            long end = (long)json_object_get_int64(json_object_array_get_idx(offs, 1));
            CHECK((size_t)(end - begin) == t->nbytes);
            unsigned char *raw = malloc((size_t)(end - begin) + 1);
            CHECK(fseek(f, (long)(8 + n) + begin, SEEK_SET) == 0);
            CHECK(fread(raw, 1, (size_t)(end - begin), f) == (size_t)(end - begin));
            CHECK_MSG(memcmp(raw, t->data, t->nbytes) == 0, "%s: bytes of %s differ", path, name);
            json_object *shape = kne_json_get(entry, "shape");
            CHECK((int)json_object_array_length(shape) == t->ndim);
            for (int d = 0; d < t->ndim; d++)
                CHECK(json_object_get_int64(json_object_array_get_idx(shape, (size_t)d)) == t->shape[d]);
            free(raw);
        }
        json_object_put(root);
    }
    free(hdr);
    fclose(f);
    return seen;
}

static void check_shape(const kne_st_set *set, const char *name, int dtype, int ndim, int64_t d0, int64_t d1)
{
    const kne_st_tensor *t = kne_st_find(set, name);
    CHECK_MSG(t != NULL, "missing %s", name);
    if (!t) return;
    CHECK_MSG(t->dtype == dtype, "%s: dtype %d, want %d", name, t->dtype, dtype);
    CHECK_MSG(t->ndim == ndim, "%s: ndim %d, want %d", name, t->ndim, ndim);
    CHECK_MSG(t->shape[0] == d0, "%s: dim 0 is %lld, want %lld", name, (long long)t->shape[0], (long long)d0);
    if (ndim > 1) CHECK_MSG(t->shape[1] == d1, "%s: dim 1 is %lld, want %lld", name, (long long)t->shape[1], (long long)d1);
    CHECK(t->numel == d0 * (ndim > 1 ? d1 : 1));
    CHECK(t->nbytes == (size_t)t->numel * kne_st_dtype_size(dtype));
}

static int64_t cfg_int(const json_object *cfg, const char *key)
{
    int64_t v = -1;
    CHECK_MSG(kne_json_int(cfg, key, &v), "config lacks %s", key);
    return v;
}

/* Shapes that config.json implies, per architecture. */
static void check_config_shapes(const kne_st_set *set, const json_object *cfg, const char *model, int dt)
{
    char name[256];
    if (!strcmp(model, "kne-llama-tiny")) {
        int64_t v = cfg_int(cfg, "vocab_size"), h = cfg_int(cfg, "hidden_size");
        int64_t ff = cfg_int(cfg, "intermediate_size"), hd = cfg_int(cfg, "head_dim");
        int64_t nh = cfg_int(cfg, "num_attention_heads"), kv = cfg_int(cfg, "num_key_value_heads");
        int64_t nl = cfg_int(cfg, "num_hidden_layers");
        check_shape(set, "model.embed_tokens.weight", dt, 2, v, h);
        check_shape(set, "lm_head.weight", dt, 2, v, h);
        check_shape(set, "model.norm.weight", dt, 1, h, 0);
        check_shape(set, "model.layers.0.mlp.down_proj.weight", KNE_ST_BF16, 2, 256, 768); /* as documented */
        for (int64_t l = 0; l < nl; l++) {
            snprintf(name, sizeof name, "model.layers.%lld.mlp.down_proj.weight", (long long)l);
            check_shape(set, name, dt, 2, h, ff);
            snprintf(name, sizeof name, "model.layers.%lld.self_attn.q_proj.weight", (long long)l);
            check_shape(set, name, dt, 2, nh * hd, h);
            snprintf(name, sizeof name, "model.layers.%lld.self_attn.k_proj.weight", (long long)l);
            check_shape(set, name, dt, 2, kv * hd, h);
        }
        CHECK(kne_st_count(set) == (size_t)(3 + 9 * nl));
    } else if (!strcmp(model, "kne-gpt2-tiny")) {
        int64_t v = cfg_int(cfg, "vocab_size"), e = cfg_int(cfg, "n_embd"), np = cfg_int(cfg, "n_positions");
        int64_t nl = cfg_int(cfg, "n_layer");
        check_shape(set, "transformer.wte.weight", dt, 2, v, e);
        check_shape(set, "transformer.wpe.weight", dt, 2, np, e);
        for (int64_t l = 0; l < nl; l++) {
            snprintf(name, sizeof name, "transformer.h.%lld.attn.c_attn.weight", (long long)l);
            check_shape(set, name, dt, 2, e, 3 * e); /* Conv1D: [in, out] */
            snprintf(name, sizeof name, "transformer.h.%lld.mlp.c_fc.weight", (long long)l);
            check_shape(set, name, dt, 2, e, 4 * e);
        }
        CHECK(kne_st_find(set, "lm_head.weight") == NULL); /* tied */
    } else {
        int64_t v = cfg_int(cfg, "vocab_size"), e = cfg_int(cfg, "n_embd"), nl = cfg_int(cfg, "n_layer");
        check_shape(set, "transformer.wte.weight", dt, 2, v, e);
        check_shape(set, "lm_head.weight", dt, 2, v, e);
        check_shape(set, "lm_head.bias", dt, 1, v, 0);
        for (int64_t l = 0; l < nl; l++) {
            snprintf(name, sizeof name, "transformer.h.%lld.attn.q_proj.weight", (long long)l);
            check_shape(set, name, dt, 2, e, e);
            snprintf(name, sizeof name, "transformer.h.%lld.mlp.fc_in.weight", (long long)l);
            check_shape(set, name, dt, 2, 4 * e, e);
        }
    }
}

/* Weights decode to finite values of a plausible size. */
static void check_values_sane(const kne_st_set *set)
{
    for (size_t i = 0; i < kne_st_count(set); i++) {
        const kne_st_tensor *t = kne_st_at(set, i);
        size_t step = t->numel > 4096 ? (size_t)t->numel / 4096 : 1, bad = 0;
        for (size_t k = 0; k < (size_t)t->numel; k += step) {
            float v = value_at(t, k);
            if (!isfinite(v) || fabsf(v) > 1000.0f) bad++;
        }
        CHECK_MSG(bad == 0, "%s: %zu implausible values", t->name, bad);
    }
}

static void test_model(const char *model, int dtype)
{
    char dir[PATH_MAX], p[2 * PATH_MAX], rel[256];
    snprintf(rel, sizeof rel, "models/%s", model);
    test_path(dir, sizeof dir, rel);
    kne_st_set *set = NULL;
    CHECK_STATUS(kne_st_open_dir(&set, dir), KNE_OK);
    if (!set) return;

    json_object *index = NULL, *cfg = NULL;
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    CHECK_STATUS(kne_json_read_file(&index, p), KNE_OK);
    snprintf(p, sizeof p, "%s/config.json", dir);
    CHECK_STATUS(kne_json_read_file(&cfg, p), KNE_OK);
    json_object *map = kne_json_get(index, "weight_map");
    CHECK_MSG(kne_st_count(set) == (size_t)json_object_object_length(map), "%s: %zu tensors, index has %d",
              model, kne_st_count(set), json_object_object_length(map));

    /* every index entry: present, in the named shard, in the checkpoint's dtype */
    char *files[8];
    size_t n_files = 0, raw_seen = 0;
    json_object_object_foreach(map, name, val) {
        const char *file = json_object_get_string(val);
        const kne_st_tensor *t = kne_st_find(set, name);
        CHECK_MSG(t != NULL, "%s: %s missing", model, name);
        if (!t) continue;
        CHECK(!strcmp(t->name, name));
        CHECK(t->dtype == dtype);
        CHECK(t->shard >= 0 && (size_t)t->shard < set->n_shards);
        const char *sp = set->shards[t->shard].path;
        CHECK_MSG(!strcmp(strrchr(sp, '/') + 1, file), "%s: %s in %s, index says %s", model, name, sp, file);
        int known = 0;
        for (size_t i = 0; i < n_files; i++) known |= !strcmp(files[i], file);
        if (!known && n_files < 8) files[n_files++] = (char *)file;
    }
    for (size_t i = 0; i < n_files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        raw_seen += compare_shard_raw(set, p);
    }
    CHECK(raw_seen == kne_st_count(set));

    /* totals recorded by the exporter */
    json_object *meta = kne_json_get(index, "metadata");
    int64_t total_size = -1, total_params = -1, nbytes = 0, numel = 0;
    CHECK(kne_json_int(meta, "total_size", &total_size) && kne_json_int(meta, "total_parameters", &total_params));
    for (size_t i = 0; i < kne_st_count(set); i++) {
        nbytes += (int64_t)kne_st_at(set, i)->nbytes;
        numel += kne_st_at(set, i)->numel;
    }
    CHECK_MSG(nbytes == total_size, "%s: %lld bytes, index says %lld", model, (long long)nbytes, (long long)total_size);
    CHECK(numel == total_params);
    CHECK(kne_st_at(set, kne_st_count(set)) == NULL);
    CHECK(kne_st_find(set, "no.such.tensor") == NULL);

    check_config_shapes(set, cfg, model, dtype);
    check_values_sane(set);

    /* release drops the pages; touching them again re-reads the file */
    const kne_st_tensor *big = kne_st_at(set, 0);
    for (size_t i = 1; i < kne_st_count(set); i++)
        if (kne_st_at(set, i)->nbytes > big->nbytes) big = kne_st_at(set, i);
    unsigned char *copy = malloc(big->nbytes);
    memcpy(copy, big->data, big->nbytes);
    kne_st_release(set, big);
    kne_st_release(set, big); /* twice is harmless */
    CHECK_MSG(memcmp(copy, big->data, big->nbytes) == 0, "%s: %s changed after release", model, big->name);
    free(copy);

    /* one shard on its own (files[] borrow from index, so before it is freed) */
    kne_st_close(set);
    snprintf(p, sizeof p, "%s/%s", dir, files[0]);
    json_object_put(index);
    json_object_put(cfg);
    CHECK_STATUS(kne_st_open_file(&set, p), KNE_OK);
    CHECK(set && kne_st_count(set) > 0);
    kne_st_close(set);
}

/* -------------------------------------------------------------- round trip */

static void test_round_trip(void)
{
    float f32[15];
    for (int i = 0; i < 15; i++) f32[i] = (float)i * 0.5f - 3.0f;
    uint16_t f16[7], bf16[24], deep[2] = {0x3f80, 0xbf80}, odd[3] = {1, 2, 3};
    for (int i = 0; i < 7; i++) f16[i] = (uint16_t)(0x3c00 + i * 0x111);
    for (int i = 0; i < 24; i++) bf16[i] = (uint16_t)(0x4000 + i * 0x53);
    float scalar = 42.0f;
    kne_st_out outs[] = {
        {"f32.matrix", KNE_ST_F32, 2, {3, 5}, f32},
        {"f16.vector", KNE_ST_F16, 1, {7}, f16},
        {"odd/slash", KNE_ST_F16, 1, {3}, odd},
        {"bf16.cube", KNE_ST_BF16, 3, {2, 3, 4}, bf16},
        {"scalar", KNE_ST_F32, 0, {0}, &scalar},
        {"empty", KNE_ST_F16, 2, {0, 4}, NULL},
        {"deep", KNE_ST_BF16, 8, {1, 1, 1, 1, 1, 1, 1, 2}, deep},
    };
    size_t n = sizeof outs / sizeof outs[0];
    const char *path = tpath("rt/out.safetensors");
    make_subdir("rt");
    CHECK_STATUS(kne_st_write_file(path, outs, n), KNE_OK);
    CHECK(access(tpath("rt/out.safetensors.tmp"), F_OK) != 0);

    kne_st_set *set = NULL;
    CHECK_STATUS(kne_st_open_file(&set, path), KNE_OK);
    if (set) {
        CHECK(kne_st_count(set) == n);
        for (size_t i = 0; i < n && i < kne_st_count(set); i++) {
            const kne_st_tensor *t = kne_st_at(set, i), *o = kne_st_find(set, outs[i].name);
            CHECK_MSG(!strcmp(t->name, outs[i].name), "order: %s at %zu, want %s", t->name, i, outs[i].name);
            CHECK(o == t);
            CHECK(t->dtype == outs[i].dtype && t->ndim == outs[i].ndim);
            int64_t numel = 1;
            for (int d = 0; d < t->ndim; d++) {
                CHECK(t->shape[d] == outs[i].shape[d]);
                numel *= outs[i].shape[d];
            }
            CHECK(t->numel == numel);
            CHECK(t->nbytes == (size_t)numel * kne_st_dtype_size(t->dtype));
            CHECK_MSG(!t->nbytes || memcmp(t->data, outs[i].data, t->nbytes) == 0, "%s: bytes differ", t->name);
        }
        CHECK(value_at(kne_st_find(set, "f32.matrix"), 14) == 4.0f);
        CHECK(value_at(kne_st_find(set, "f16.vector"), 0) == 1.0f);
        CHECK(value_at(kne_st_find(set, "deep"), 1) == -1.0f);
        kne_st_close(set);
    }

    /* raw layout: padded header, __metadata__ first, data laid out in order */
    FILE *f = fopen(path, "rb");
    unsigned char buf[1024] = {0};
    size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    CHECK(hlen % 8 == 0);
    size_t data_len = 15 * 4 + 7 * 2 + 3 * 2 + 24 * 2 + 4 + 0 + 2 * 2;
    CHECK_MSG(got == 8 + hlen + data_len, "file is %zu bytes, want %zu", got, (size_t)(8 + hlen + data_len));
    const char *prefix = "{\"__metadata__\":{\"format\":\"pt\"},\"f32.matrix\":{\"dtype\":\"F32\",\"shape\":[3,5],"
                         "\"data_offsets\":[0,60]},\"f16.vector\":";
    CHECK(got > 8 + strlen(prefix) && memcmp(buf + 8, prefix, strlen(prefix)) == 0);
    CHECK(buf[8 + hlen - 1] == ' ' || buf[8 + hlen - 1] == '}');
    CHECK(strstr((const char *)buf + 8, "\"odd/slash\"") != NULL); /* not escaped as \\/ */
    CHECK(memcmp(buf + 8 + hlen, f32, 60) == 0);
    CHECK(memcmp(buf + 8 + hlen + data_len - 4, deep, 4) == 0);

    /* deterministic: writing again (over the old file) gives the same bytes */
    const char *path2 = tpath("rt/again.safetensors");
    CHECK_STATUS(kne_st_write_file(path2, outs, n), KNE_OK);
    CHECK_STATUS(kne_st_write_file(path2, outs, n), KNE_OK);
    unsigned char buf2[1024];
    f = fopen(path2, "rb");
    size_t got2 = f ? fread(buf2, 1, sizeof buf2, f) : 0;
    if (f) fclose(f);
    CHECK(got2 == got && memcmp(buf, buf2, got) == 0);

    /* a directory without an index opens every *.safetensors in it */
    CHECK_STATUS(kne_st_open_dir(&set, tpath("rt")), KNE_ERR_FORMAT); /* same names twice */
    CHECK(msg_has("appears twice") && msg_has("again.safetensors") && msg_has("out.safetensors"));
    unlink(path2);
    CHECK_STATUS(kne_st_open_dir(&set, tpath("rt")), KNE_OK);
    CHECK(set && kne_st_count(set) == n);
    kne_st_close(set);

    /* an empty file list is a valid file too */
    CHECK_STATUS(kne_st_write_file(tpath("rt/none.safetensors"), NULL, 0), KNE_OK);
    CHECK_STATUS(kne_st_open_file(&set, tpath("rt/none.safetensors")), KNE_OK);
    CHECK(set && kne_st_count(set) == 0);
    kne_st_close(set);

    /* a big tensor, F32 / F16 / BF16, several shapes */
    static const int64_t shapes[][3] = {{1, 1, 1}, {17, 1, 1}, {64, 33, 1}, {5, 7, 9}};
    for (int dt = KNE_ST_F32; dt <= KNE_ST_BF16; dt++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            kne_st_out o = {"w", dt, s == 3 ? 3 : s == 2 ? 2 : 1, {shapes[s][0], shapes[s][1], shapes[s][2]}, NULL};
            size_t nb = (size_t)(shapes[s][0] * shapes[s][1] * shapes[s][2]) * kne_st_dtype_size(dt);
            unsigned char *d = malloc(nb);
            for (size_t i = 0; i < nb; i++) d[i] = (unsigned char)(i * 31 + (size_t)dt);
            o.data = d;
            CHECK_STATUS(kne_st_write_file(tpath("rt/one.safetensors"), &o, 1), KNE_OK);
            CHECK_STATUS(kne_st_open_file(&set, tpath("rt/one.safetensors")), KNE_OK);
            const kne_st_tensor *t = kne_st_find(set, "w");
            CHECK(t && t->dtype == dt && t->ndim == o.ndim && t->nbytes == nb && memcmp(t->data, d, nb) == 0);
            kne_st_close(set);
            free(d);
        }
    }
}

static void test_write_errors(void)
{
    float x[4] = {0};
    kne_st_out ok = {"x", KNE_ST_F32, 1, {4}, x};
    const char *missing = tpath("no/such/dir/out.safetensors");
    CHECK_STATUS(kne_st_write_file(missing, &ok, 1), KNE_ERR_NOT_FOUND);
    CHECK(msg_has("no/such/dir/out.safetensors"));

    kne_st_out bad = ok;
    bad.dtype = 9;
    CHECK_STATUS(kne_st_write_file(tpath("w.safetensors"), &bad, 1), KNE_ERR_DTYPE);
    CHECK(msg_has("\"x\""));
    bad = ok;
    bad.ndim = KNE_ST_MAX_DIMS + 1;
    CHECK_STATUS(kne_st_write_file(tpath("w.safetensors"), &bad, 1), KNE_ERR_INVALID_ARG);
    bad = ok;
    bad.ndim = -1;
    CHECK_STATUS(kne_st_write_file(tpath("w.safetensors"), &bad, 1), KNE_ERR_INVALID_ARG);
    bad = ok;
    bad.shape[0] = -4;
    CHECK_STATUS(kne_st_write_file(tpath("w.safetensors"), &bad, 1), KNE_ERR_INVALID_ARG);
    bad = ok;
    bad.ndim = 3;
    bad.shape[0] = bad.shape[1] = bad.shape[2] = (int64_t)1 << 30;
    CHECK_STATUS(kne_st_write_file(tpath("w.safetensors"), &bad, 1), KNE_ERR_INVALID_ARG);
    bad = ok;
    bad.data = NULL;
    CHECK_STATUS(kne_st_write_file(tpath("w.safetensors"), &bad, 1), KNE_ERR_INVALID_ARG);
    bad = ok;
    bad.name = "__metadata__";
    CHECK_STATUS(kne_st_write_file(tpath("w.safetensors"), &bad, 1), KNE_ERR_INVALID_ARG);
    kne_st_out two[2] = {ok, ok};
    CHECK_STATUS(kne_st_write_file(tpath("w.safetensors"), two, 2), KNE_ERR_INVALID_ARG);
    CHECK(msg_has("given twice") && msg_has("\"x\""));
    CHECK_STATUS(kne_st_write_file(NULL, &ok, 1), KNE_ERR_INVALID_ARG);
    CHECK(access(tpath("w.safetensors"), F_OK) != 0 && access(tpath("w.safetensors.tmp"), F_OK) != 0);
}

/* ---------------------------------------------------------- malformed files */

#define T1 "\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}"

static void test_bad_files(void)
{
    /* missing, unreadable */
    EXPECT_FILE_FAIL(tpath("absent.safetensors"), KNE_ERR_NOT_FOUND, NULL, NULL);
    EXPECT_FILE_FAIL(make_subdir("adir.safetensors"), KNE_ERR_IO, "not a regular file", NULL);
    const char *locked = craft("locked.safetensors", "{" T1 "}", 16);
    chmod(locked, 0);
    if (geteuid() != 0) EXPECT_FILE_FAIL(locked, KNE_ERR_IO, "Permission denied", NULL);
    chmod(locked, 0644);

    /* the sane base case opens */
    kne_st_set *set = NULL;
    CHECK_STATUS(kne_st_open_file(&set, locked), KNE_OK);
    kne_st_close(set);

    /* length prefix */
    write_bytes(tpath("short.safetensors"), "\x10\0\0", 3);
    EXPECT_FILE_FAIL(tpath("short.safetensors"), KNE_ERR_FORMAT, "shorter than the 8-byte", NULL);
    write_bytes(tpath("empty.safetensors"), "", 0);
    EXPECT_FILE_FAIL(tpath("empty.safetensors"), KNE_ERR_FORMAT, "0 bytes", NULL);
    write_bytes(tpath("long.safetensors"), "\x40\0\0\0\0\0\0\0{}", 10);
    EXPECT_FILE_FAIL(tpath("long.safetensors"), KNE_ERR_FORMAT, "header length 64 exceeds the file", NULL);
    write_bytes(tpath("huge.safetensors"), "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10);
    EXPECT_FILE_FAIL(tpath("huge.safetensors"), KNE_ERR_FORMAT, "exceeds the file", NULL);

    /* header JSON */
    EXPECT_FILE_FAIL(craft("notjson.safetensors", "{\"t\":{\"dtype\":", 0), KNE_ERR_FORMAT, "invalid JSON", NULL);
    EXPECT_FILE_FAIL(craft("garbage.safetensors", "hello", 0), KNE_ERR_FORMAT, "invalid JSON", NULL);
    EXPECT_FILE_FAIL(craft("array.safetensors", "[1,2]", 0), KNE_ERR_FORMAT, "not a JSON object", NULL);
    EXPECT_FILE_FAIL(craft("meta.safetensors", "{\"__metadata__\":[]," T1 "}", 16), KNE_ERR_FORMAT, "__metadata__", NULL);
    EXPECT_FILE_FAIL(craft("meta2.safetensors", "{\"__metadata__\":{\"format\":1}," T1 "}", 16), KNE_ERR_FORMAT,
                     "format", "not a string");

    /* entries */
    EXPECT_FILE_FAIL(craft("entry.safetensors", "{\"e\":5}", 0), KNE_ERR_FORMAT, "\"e\"", "not an object");
    EXPECT_FILE_FAIL(craft("nodtype.safetensors", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                     KNE_ERR_FORMAT, "\"w\"", "dtype");
    EXPECT_FILE_FAIL(craft("dtypeint.safetensors", "{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                     KNE_ERR_FORMAT, "\"w\"", "dtype");
    EXPECT_FILE_FAIL(craft("noshape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8),
                     KNE_ERR_FORMAT, "\"w\"", "shape");
    EXPECT_FILE_FAIL(craft("shapestr.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8),
                     KNE_ERR_FORMAT, "\"w\"", "shape");
    EXPECT_FILE_FAIL(craft("shapefloat.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8),
                     KNE_ERR_FORMAT, "\"w\"", "shape");
    EXPECT_FILE_FAIL(craft("negdim.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8),
                     KNE_ERR_FORMAT, "\"w\"", "negative dimension");
    EXPECT_FILE_FAIL(craft("ndim.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                           "\"data_offsets\":[0,4]}}", 4), KNE_ERR_FORMAT, "\"w\"", "more than 8");
    EXPECT_FILE_FAIL(craft("nooffs.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8),
                     KNE_ERR_FORMAT, "\"w\"", "data_offsets");
    EXPECT_FILE_FAIL(craft("offs1.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 8),
                     KNE_ERR_FORMAT, "\"w\"", "data_offsets");
    EXPECT_FILE_FAIL(craft("offs3.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 8),
                     KNE_ERR_FORMAT, "\"w\"", "data_offsets");
    EXPECT_FILE_FAIL(craft("offsneg.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8),
                     KNE_ERR_FORMAT, "\"w\"", "negative data_offsets");

    /* dtypes the library does not read */
    static const char *const dtypes[] = {"I64", "F64", "F8_E4M3", "BOOL", "f32"};
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++) {
        char hdr[256], rel[64];
        snprintf(hdr, sizeof hdr, "{\"ok\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"odd.weight\":{\"dtype\":\"%s\",\"shape\":[1],\"data_offsets\":[4,12]}}", dtypes[i]);
        snprintf(rel, sizeof rel, "dtype%zu.safetensors", i);
        EXPECT_FILE_FAIL(craft(rel, hdr, 12), KNE_ERR_DTYPE, "\"odd.weight\"", dtypes[i]);
    }

    /* offsets and sizes */
    EXPECT_FILE_FAIL(craft("beyond.safetensors", "{" T1 "}", 12), KNE_ERR_FORMAT, "\"t\"", "beyond the 12-byte data area");
    EXPECT_FILE_FAIL(craft("backwards.safetensors", "{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8),
                     KNE_ERR_FORMAT, "\"t\"", "end 4 < begin 8");
    EXPECT_FILE_FAIL(craft("size.safetensors", "{\"t\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16),
                     KNE_ERR_FORMAT, "\"t\"", "need 8");
    EXPECT_FILE_FAIL(craft("overflow.safetensors", "{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                           "\"data_offsets\":[0,16]}}", 16), KNE_ERR_FORMAT, "\"t\"", "overflow");
    EXPECT_FILE_FAIL(craft("overflow2.safetensors", "{\"t\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],"
                           "\"data_offsets\":[0,16]}}", 16), KNE_ERR_FORMAT, "\"t\"", NULL);
    EXPECT_FILE_FAIL(craft("overlap.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[20,28]},"
                           "\"c\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 28),
                     KNE_ERR_FORMAT, "\"a\"", "\"c\"");
    CHECK(msg_has("overlap"));
    EXPECT_FILE_FAIL(craft("same.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                           "\"b\":{\"dtype\":\"BF16\",\"shape\":[8],\"data_offsets\":[0,16]}}", 16),
                     KNE_ERR_FORMAT, "\"a\"", "\"b\"");
    /* empty tensors share offsets harmlessly; gaps are allowed */
    const char *fine = craft("fine.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                             "\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
                             "\"g\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[20,22]}}", 24);
    CHECK_STATUS(kne_st_open_file(&set, fine), KNE_OK);
    CHECK(set && kne_st_count(set) == 3 && kne_st_find(set, "g") && kne_st_find(set, "g")->ndim == 0 &&
          kne_st_find(set, "g")->numel == 1 && kne_st_find(set, "z")->numel == 0);
    if (set) {
        for (size_t i = 0; i < kne_st_count(set); i++) kne_st_release(set, kne_st_at(set, i));
        kne_st_close(set);
    }
}

/* ------------------------------------------------------ bad directories */

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

static void test_bad_dirs(void)
{
    EXPECT_DIR_FAIL(tpath("nodir"), KNE_ERR_NOT_FOUND, "nodir", NULL);
    EXPECT_DIR_FAIL(tpath("fine.safetensors"), KNE_ERR_NOT_FOUND, "not a directory", NULL);
    const char *empty = make_subdir("emptydir");
    write_text(tpath("emptydir/config.json"), "{}");
    EXPECT_DIR_FAIL(empty, KNE_ERR_NOT_FOUND, "emptydir", "no model.safetensors.index.json and no *.safetensors");

    /* a tensor in two shards (no index) */
    make_subdir("dup");
    craft("dup/a.safetensors", "{" T1 "}", 16);
    craft("dup/b.safetensors", "{\"u\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]}," T1 "}", 20);
    EXPECT_DIR_FAIL(tpath("dup"), KNE_ERR_FORMAT, "\"t\" appears twice", "dup/b.safetensors");
    CHECK(msg_has("dup/a.safetensors"));

    /* sharded checkpoint with an index */
    make_subdir("sh");
    craft("sh/model-1.safetensors", "{" T1 "}", 16);
    craft("sh/model-2.safetensors", "{\"u\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,6]}}", 6);
    char ip[PATH_MAX];
    snprintf(ip, sizeof ip, "%s", tpath("sh/model.safetensors.index.json"));
    write_text(ip, "{\"metadata\":{},\"weight_map\":{\"t\":\"model-1.safetensors\",\"u\":\"model-2.safetensors\"}}");
    kne_st_set *set = NULL;
    CHECK_STATUS(kne_st_open_dir(&set, tpath("sh")), KNE_OK);
    CHECK(set && kne_st_count(set) == 2 && kne_st_find(set, "u") && kne_st_find(set, "u")->shard == 1);
    kne_st_close(set);

    write_text(ip, "{\"weight_map\":{\"t\":\"model-1.safetensors\",\"u\":\"model-3.safetensors\"}}");
    EXPECT_DIR_FAIL(tpath("sh"), KNE_ERR_NOT_FOUND, "sh/model-3.safetensors", "sh/model.safetensors.index.json");
    write_text(ip, "{\"weight_map\":{\"t\":\"model-1.safetensors\",\"u\":\"model-1.safetensors\"}}");
    EXPECT_DIR_FAIL(tpath("sh"), KNE_ERR_FORMAT, "\"u\"", "model-1.safetensors");
    CHECK(msg_has("sh/model.safetensors.index.json") && msg_has("no such tensor"));
    write_text(ip, "{\"weight_map\":{\"t\":\"model-2.safetensors\",\"u\":\"model-2.safetensors\","
                   "\"x\":\"model-1.safetensors\"}}");
    EXPECT_DIR_FAIL(tpath("sh"), KNE_ERR_FORMAT, "\"t\" in model-2.safetensors", "found in model-1.safetensors");
    write_text(ip, "{\"weight_map\":{\"t\":\"model-1.safetensors\",\"v\":\"model-2.safetensors\"}}");
    EXPECT_DIR_FAIL(tpath("sh"), KNE_ERR_FORMAT, "\"v\"", "no such tensor");
    write_text(ip, "{\"weight_map\":{\"t\":\"model-1.safetensors\",\"u\":\"model-2.safetensors\","
                   "\"w\":\"model-1.safetensors\"}}");
    craft("sh/model-2.safetensors", "{\"u\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]}," T1 "}", 22);
    EXPECT_DIR_FAIL(tpath("sh"), KNE_ERR_FORMAT, "\"t\" appears twice", "model-2.safetensors");
    craft("sh/model-2.safetensors", "{\"u\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,6]}}", 6);
    write_text(ip, "{\"weight_map\":{\"t\":\"model-1.safetensors\",\"u\":\"../model-2.safetensors\"}}");
    EXPECT_DIR_FAIL(tpath("sh"), KNE_ERR_FORMAT, "\"u\"", "not a file name");
    write_text(ip, "{\"weight_map\":{\"t\":\"model-1.safetensors\",\"u\":7}}");
    EXPECT_DIR_FAIL(tpath("sh"), KNE_ERR_FORMAT, "\"u\"", NULL);
    write_text(ip, "{\"weight_map\":[]}");
    EXPECT_DIR_FAIL(tpath("sh"), KNE_ERR_FORMAT, "weight_map", NULL);
    write_text(ip, "{\"weight_map\":{}}");
    EXPECT_DIR_FAIL(tpath("sh"), KNE_ERR_FORMAT, "empty", NULL);
    write_text(ip, "{\"weight_map\":");
    EXPECT_DIR_FAIL(tpath("sh"), KNE_ERR_FORMAT, "model.safetensors.index.json", "invalid JSON");

    /* a bad shard inside a directory is reported with its path */
    write_text(ip, "{\"weight_map\":{\"t\":\"model-1.safetensors\",\"u\":\"model-2.safetensors\"}}");
    craft("sh/model-2.safetensors", "{\"u\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,24]}}", 24);
    EXPECT_DIR_FAIL(tpath("sh"), KNE_ERR_DTYPE, "sh/model-2.safetensors", "\"u\"");

    CHECK_STATUS(kne_st_open_dir(NULL, tpath("sh")), KNE_ERR_INVALID_ARG);
    CHECK_STATUS(kne_st_open_file(&set, NULL), KNE_ERR_INVALID_ARG);
    kne_st_close(NULL);
    CHECK(kne_st_count(NULL) == 0 && kne_st_find(NULL, "t") == NULL && kne_st_at(NULL, 0) == NULL);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/kne_st_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    CHECK(kne_st_dtype_size(KNE_ST_F32) == 4 && kne_st_dtype_size(KNE_ST_F16) == 2 &&
          kne_st_dtype_size(KNE_ST_BF16) == 2 && kne_st_dtype_size(0) == 0 && kne_st_dtype_size(7) == 0);
    CHECK((int)KNE_ST_F32 == (int)KNE_DTYPE_F32 && (int)KNE_ST_F16 == (int)KNE_DTYPE_F16 &&
          (int)KNE_ST_BF16 == (int)KNE_DTYPE_BF16);
    test_model("kne-llama-tiny", KNE_ST_BF16);
    test_model("kne-gpt2-tiny", KNE_ST_F32);
    test_model("kne-gptj-tiny", KNE_ST_F16);
    test_round_trip();
    test_write_errors();
    test_bad_files();
    test_bad_dirs();
    remove_tree(tmpdir);
    return test_summary("safetensors");
}
