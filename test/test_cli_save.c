/* kne_model_save round trip: an unedited model saved and reloaded has every tensor of
   the source checkpoint byte for byte (names, dtypes, shapes), and the same logits;
   a save never leaves a partial directory. */
#include "test.h"
#include "kne.h"

#include <dirent.h>
#include <json-c/json.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a minimal independent safetensors reader: every tensor of a directory */
typedef struct st_t {
    char name[160];
    char dtype[8];
    int ndim;
    long long shape[8];
    unsigned char *data;
    size_t n;
} st_t;

typedef struct st_all {
    st_t *t;
    size_t n;
} st_all;

static int read_file(const char *path, unsigned char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc((size_t)n + 1);
    *len = fread(*buf, 1, (size_t)n, f);
    fclose(f);
    (*buf)[*len] = 0;
    return *len == (size_t)n ? 0 : -1;
}

static int read_shard(st_all *all, const char *path)
{
    unsigned char *b;
    size_t len;
    if (read_file(path, &b, &len)) return -1;
    unsigned long long hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    char *hdr = malloc(hl + 1);
    memcpy(hdr, b + 8, hl);
    hdr[hl] = 0;
    json_object *h = json_tokener_parse(hdr);
    free(hdr);
    if (!h) {
        free(b);
        return -1;
    }
    json_object_object_foreach(h, key, val)
    {
        if (!strcmp(key, "__metadata__")) continue;
        all->t = realloc(all->t, (all->n + 1) * sizeof *all->t);
        st_t *t = &all->t[all->n++];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%s", key);
        json_object *dt, *sh, *off;
        json_object_object_get_ex(val, "dtype", &dt);
        json_object_object_get_ex(val, "shape", &sh);
        json_object_object_get_ex(val, "data_offsets", &off);
        snprintf(t->dtype, sizeof t->dtype, "%s", json_object_get_string(dt));
        t->ndim = (int)json_object_array_length(sh);
        for (int i = 0; i < t->ndim && i < 8; i++) t->shape[i] = json_object_get_int64(json_object_array_get_idx(sh, i));
        long long s = json_object_get_int64(json_object_array_get_idx(off, 0));
        long long e = json_object_get_int64(json_object_array_get_idx(off, 1));
        t->n = (size_t)(e - s);
        t->data = malloc(t->n ? t->n : 1);
        memcpy(t->data, b + 8 + hl + s, t->n);
    }
    json_object_put(h);
    free(b);
    return 0;
}

static int read_dir(st_all *all, const char *dir)
{
    memset(all, 0, sizeof *all);
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 12 && !strcmp(e->d_name + l - 12, ".safetensors")) {
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            rc |= read_shard(all, p);
        }
    }
    closedir(d);
    return rc;
}

static const st_t *find(const st_all *a, const char *name)
{
    for (size_t i = 0; i < a->n; i++)
        if (!strcmp(a->t[i].name, name)) return &a->t[i];
    return NULL;
}

static void free_all(st_all *a)
{
    for (size_t i = 0; i < a->n; i++) free(a->t[i].data);
    free(a->t);
}

static int same_file(const char *a, const char *b)
{
    unsigned char *x, *y;
    size_t nx, ny;
    if (read_file(a, &x, &nx)) return 0;
    if (read_file(b, &y, &ny)) {
        free(x);
        return 0;
    }
    int same = nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return same;
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) rm_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void round_trip(const char *tmp, const char *name, uint64_t shard_bytes, int want_index)
{
    char src[512], out[600], path[800], path2[800];
    snprintf(src, sizeof src, "%s/models/%s", test_shared(), name);
    snprintf(out, sizeof out, "%s/%s-saved", tmp, name);
    kne_model *m = NULL, *m2 = NULL;
    kne_model_params mp = kne_model_default_params();
    mp.n_threads = 2;
    kne_status s = kne_model_load(&m, src, &mp);
    CHECK_STATUS(s, KNE_OK);
    if (s != KNE_OK) return;
    CHECK_STATUS(kne_model_save(m, out, shard_bytes), KNE_OK);
    /* the same tensors, byte for byte */
    st_all a, b;
    CHECK(read_dir(&a, src) == 0);
    CHECK(read_dir(&b, out) == 0);
    CHECK_MSG(a.n == b.n && a.n > 0, "%s: %zu tensors in the source, %zu saved", name, a.n, b.n);
    size_t bad = 0;
    for (size_t i = 0; i < a.n; i++) {
        const st_t *x = &a.t[i], *y = find(&b, x->name);
        int ok = y && !strcmp(x->dtype, y->dtype) && x->ndim == y->ndim && x->n == y->n &&
                 !memcmp(x->shape, y->shape, sizeof x->shape) && !memcmp(x->data, y->data, x->n);
        if (!ok && bad++ < 5) fprintf(stderr, "%s: tensor %s differs after the save\n", name, x->name);
    }
    CHECK_MSG(bad == 0, "%s: %zu tensors differ", name, bad);
    free_all(&a);
    free_all(&b);
    /* sharding and the index */
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", out);
    CHECK_MSG((access(path, F_OK) == 0) == want_index, "%s: index.json %s", name, want_index ? "missing" : "unexpected");
    if (!want_index) {
        snprintf(path, sizeof path, "%s/model.safetensors", out);
        CHECK(access(path, F_OK) == 0);
    } else {
        json_object *idx = json_object_from_file(path), *wm = NULL;
        CHECK(idx && json_object_object_get_ex(idx, "weight_map", &wm));
        if (wm) {
            int files_ok = 1;
            json_object_object_foreach(wm, k, v)
            {
                (void)k;
                snprintf(path2, sizeof path2, "%s/%s", out, json_object_get_string(v));
                if (access(path2, F_OK) != 0) files_ok = 0;
            }
            CHECK(files_ok);
        }
        json_object_put(idx);
    }
    /* config and tokenizer files copied */
    const char *files[] = {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", src, files[i]);
        snprintf(path2, sizeof path2, "%s/%s", out, files[i]);
        if (access(path, F_OK) == 0) CHECK_MSG(same_file(path, path2), "%s: %s not copied", name, files[i]);
    }
    /* reloads, with the same logits */
    s = kne_model_load(&m2, out, &mp);
    CHECK_STATUS(s, KNE_OK);
    if (s == KNE_OK) {
        int32_t ids[12];
        size_t n = 0;
        CHECK_STATUS(kne_tokenize(m, "The mother tongue of Danielle Darrieux is", 1, ids, 12, &n), KNE_OK);
        size_t V = (size_t)kne_model_n_vocab(m);
        float *l1 = malloc(n * V * sizeof *l1), *l2 = malloc(n * V * sizeof *l2);
        CHECK_STATUS(kne_model_forward(m, ids, n, l1), KNE_OK);
        CHECK_STATUS(kne_model_forward(m2, ids, n, l2), KNE_OK);
        CHECK_MSG(!memcmp(l1, l2, n * V * sizeof *l1), "%s: logits differ after save + load", name);
        free(l1);
        free(l2);
        kne_model_free(m2);
    }
    /* an existing directory is refused and left alone */
    int before = count_entries(out);
    CHECK_STATUS(kne_model_save(m, out, shard_bytes), KNE_ERR_INVALID_ARG);
    CHECK(count_entries(out) == before);
    kne_model_free(m);
    rm_tree(out);
}

int main(void)
{
    char tmp[] = "/tmp/kne-test-save-XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    round_trip(tmp, "kne-gpt2-tiny", 20000000, 1);  /* Conv1D transposed back, c_attn merged, tied head */
    round_trip(tmp, "kne-llama-tiny", 0, 0);        /* bfloat16, one file */
    round_trip(tmp, "kne-gptj-tiny", 16000000, 1);  /* float16, lm_head bias */
    /* a missing parent directory: NOT_FOUND, nothing left behind */
    char src[512], out[600];
    snprintf(src, sizeof src, "%s/models/kne-gpt2-tiny", test_shared());
    kne_model *m = NULL;
    if (kne_model_load(&m, src, NULL) == KNE_OK) {
        snprintf(out, sizeof out, "%s/no/such/dir", tmp);
        CHECK_STATUS(kne_model_save(m, out, 0), KNE_ERR_NOT_FOUND);
        CHECK_STATUS(kne_model_save(m, NULL, 0), KNE_ERR_INVALID_ARG);
        CHECK_STATUS(kne_model_save(NULL, out, 0), KNE_ERR_INVALID_ARG);
        kne_model_free(m);
    }
    CHECK_MSG(count_entries(tmp) == 0, "temporary directories left in %s", tmp);
    rm_tree(tmp);
    return test_summary("test_cli_save");
}
