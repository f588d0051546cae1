/* Safetensors reader: every shard mmap'ed read-only and validated before use.
   The writer is in safetensors_write.c. */
#include "safetensors.h"
#include "error.h"
#include "json_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_INDEX_NAME "model.safetensors.index.json"
#define ST_SUFFIX ".safetensors"
/* Same bound as the Rust implementation: a larger header is almost surely corrupt. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

typedef struct st_shard {
    char *path;
    void *map;             /* whole file, PROT_READ, MAP_PRIVATE */
    size_t size;
    size_t data_start;     /* 8 + header length */
} st_shard;

/* Per-tensor offsets inside its shard's data area, kept for validation. */
typedef struct st_span {
    uint64_t begin, end;
} st_span;

struct kne_st_set {
    st_shard *shards;
    size_t n_shards, cap_shards;
    kne_st_tensor *tensors;
    st_span *spans;        /* parallel to tensors */
    size_t n_tensors, cap_tensors, cap_spans;
    const kne_st_tensor **by_name; /* sorted by name, for kne_st_find; built once all are read */
};

/* ------------------------------------------------------------------ dtypes */

size_t kne_st_dtype_size(int dtype)
{
    switch (dtype) {
    case KNE_ST_F32: return 4;
    case KNE_ST_F16: return 2;
    case KNE_ST_BF16: return 2;
    default: return 0;
    }
}

const char *kne_st_dtype_name(int dtype)
{
    switch (dtype) {
    case KNE_ST_F32: return "F32";
    case KNE_ST_F16: return "F16";
    case KNE_ST_BF16: return "BF16";
    default: return NULL;
    }
}

static int dtype_from_name(const char *s)
{
    if (strcmp(s, "F32") == 0) return KNE_ST_F32;
    if (strcmp(s, "F16") == 0) return KNE_ST_F16;
    if (strcmp(s, "BF16") == 0) return KNE_ST_BF16;
    return 0;
}

int kne_st_numel(const int64_t *shape, int ndim, int64_t *numel)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return 0;
        if (shape[i] != 0 && n > INT64_MAX / shape[i]) return 0;
        n *= shape[i];
    }
    /* a byte count must fit too (largest dtype is 4 bytes) */
    if ((uint64_t)n > (uint64_t)(SIZE_MAX / 4) || n > INT64_MAX / 4) return 0;
    *numel = n;
    return 1;
}

/* ------------------------------------------------------------------- set */

void kne_st_close(kne_st_set *set)
{
    if (!set) return;
    for (size_t i = 0; i < set->n_shards; i++) {
        if (set->shards[i].map) munmap(set->shards[i].map, set->shards[i].size);
        free(set->shards[i].path);
    }
    for (size_t i = 0; i < set->n_tensors; i++) free((char *)set->tensors[i].name);
    free(set->shards);
    free(set->tensors);
    free(set->spans);
    free(set->by_name);
    free(set);
}

size_t kne_st_count(const kne_st_set *set) { return set ? set->n_tensors : 0; }

const kne_st_tensor *kne_st_at(const kne_st_set *set, size_t i)
{
    return set && i < set->n_tensors ? &set->tensors[i] : NULL;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp((*(const kne_st_tensor *const *)a)->name, (*(const kne_st_tensor *const *)b)->name);
}

const kne_st_tensor *kne_st_find(const kne_st_set *set, const char *name)
{
    if (!set || !name || !set->by_name) return NULL;
    size_t lo = 0, hi = set->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const kne_st_tensor *t = set->by_name[mid];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0) hi = mid; else lo = mid + 1;
    }
    return NULL;
}

void kne_st_release_bytes(const void *data, size_t nbytes)
{
    if (!data || nbytes == 0) return;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) return;
    uintptr_t lo = (uintptr_t)data, hi = lo + nbytes;
    uintptr_t p = (uintptr_t)page;
    /* only pages fully inside the range: neighbours may still be in use */
    uintptr_t start = (lo + p - 1) / p * p, end = hi / p * p;
    /* read-only private mapping: dropped pages are re-read from the file if touched */
    if (end > start) madvise((void *)start, end - start, MADV_DONTNEED);
}

void kne_st_release(const kne_st_set *set, const kne_st_tensor *t)
{
    (void)set;
    if (t) kne_st_release_bytes(t->data, t->nbytes);
}

/* Room for need items: returns the (maybe moved) array, or NULL with arr untouched. */
static void *grow(void *arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return arr;
    size_t ncap = *cap ? *cap * 2 : 16;
    while (ncap < need) ncap *= 2;
    void *p = realloc(arr, ncap * elem);
    if (p) *cap = ncap;
    return p;
}

#define ST_GROW(arr, cap, need) do { \
    void *grown_ = grow((arr), &(cap), (need), sizeof *(arr)); \
    if (!grown_) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "safetensors: out of memory"); \
    (arr) = grown_; \
} while (0)

static kne_status add_tensor_slot(kne_st_set *set, kne_st_tensor **t, st_span **sp)
{
    ST_GROW(set->tensors, set->cap_tensors, set->n_tensors + 1);
    ST_GROW(set->spans, set->cap_spans, set->n_tensors + 1);
    *t = &set->tensors[set->n_tensors];
    *sp = &set->spans[set->n_tensors];
    memset(*t, 0, sizeof **t);
    memset(*sp, 0, sizeof **sp);
    return KNE_OK;
}

/* --------------------------------------------------------------- mapping */

static uint64_t read_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Opens and maps path into sh; checks the header length against the file size. */
static kne_status map_shard(st_shard *sh, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kne_fail(errno == ENOENT ? KNE_ERR_NOT_FOUND : KNE_ERR_IO, "%s: cannot open: %s",
                        path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return kne_fail(KNE_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return kne_fail(KNE_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size < 8) {
        close(fd);
        return kne_fail(KNE_ERR_FORMAT, "%s: file is %lld bytes, shorter than the 8-byte header length",
                        path, (long long)st.st_size);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return kne_fail(KNE_ERR_IO, "%s: file too large to map", path);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file */
    if (map == MAP_FAILED) return kne_fail(KNE_ERR_IO, "%s: cannot mmap: %s", path, strerror(e));
    sh->map = map;
    sh->size = (size_t)st.st_size;

    uint64_t hlen = read_le64(map);
    if (hlen > sh->size - 8)
        return kne_fail(KNE_ERR_FORMAT, "%s: header length %llu exceeds the file (%zu bytes after the length)",
                        path, (unsigned long long)hlen, sh->size - 8);
    if (hlen > ST_MAX_HEADER)
        return kne_fail(KNE_ERR_FORMAT, "%s: header length %llu exceeds the %llu-byte limit", path,
                        (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    sh->data_start = 8 + (size_t)hlen;
    return KNE_OK;
}

/* ---------------------------------------------------------------- header */

/* Reads a JSON int array of at most cap items into out (all >= 0); returns count or -1. */
static int read_nonneg_ints(json_object *arr, int64_t *out, int cap)
{
    if (!arr || !json_object_is_type(arr, json_type_array)) return -1;
    size_t n = json_object_array_length(arr);
    if (n > (size_t)cap) return -2;
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(arr, i);
        if (!v || !json_object_is_type(v, json_type_int)) return -1;
        int64_t x = json_object_get_int64(v);
        if (x < 0) return -3;
        out[i] = x;
    }
    return (int)n;
}

static kne_status parse_metadata(json_object *meta, const char *path)
{
    if (!meta || !json_object_is_type(meta, json_type_object))
        return kne_fail(KNE_ERR_FORMAT, "%s: \"__metadata__\" is not an object", path);
    json_object_object_foreach(meta, key, val) {
        if (!val || !json_object_is_type(val, json_type_string))
            return kne_fail(KNE_ERR_FORMAT, "%s: \"__metadata__\" value of \"%s\" is not a string", path, key);
    }
    return KNE_OK;
}

static kne_status parse_shape(kne_st_tensor *t, json_object *entry, const char *path)
{
    int64_t dims[KNE_ST_MAX_DIMS];
    int nd = read_nonneg_ints(kne_json_get(entry, "shape"), dims, KNE_ST_MAX_DIMS);
    if (nd == -2)
        return kne_fail(KNE_ERR_FORMAT, "%s: tensor \"%s\": shape has more than %d dimensions", path, t->name,
                        KNE_ST_MAX_DIMS);
    if (nd == -3)
        return kne_fail(KNE_ERR_FORMAT, "%s: tensor \"%s\": shape has a negative dimension", path, t->name);
    if (nd < 0)
        return kne_fail(KNE_ERR_FORMAT, "%s: tensor \"%s\": \"shape\" missing or not an array of integers",
                        path, t->name);
    t->ndim = nd;
    memcpy(t->shape, dims, (size_t)nd * sizeof dims[0]);
    if (!kne_st_numel(t->shape, nd, &t->numel))
        return kne_fail(KNE_ERR_FORMAT, "%s: tensor \"%s\": element count of the shape overflows", path, t->name);
    return KNE_OK;
}

static kne_status parse_offsets(st_span *sp, const kne_st_tensor *t, json_object *entry,
                                const st_shard *sh)
{
    int64_t off[2];
    int n = read_nonneg_ints(kne_json_get(entry, "data_offsets"), off, 2);
    if (n == -3)
        return kne_fail(KNE_ERR_FORMAT, "%s: tensor \"%s\": negative data_offsets", sh->path, t->name);
    if (n != 2)
        return kne_fail(KNE_ERR_FORMAT, "%s: tensor \"%s\": \"data_offsets\" missing or not [begin, end]",
                        sh->path, t->name);
    uint64_t begin = (uint64_t)off[0], end = (uint64_t)off[1], area = sh->size - sh->data_start;
    if (end < begin)
        return kne_fail(KNE_ERR_FORMAT, "%s: tensor \"%s\": data_offsets end %llu < begin %llu", sh->path,
                        t->name, (unsigned long long)end, (unsigned long long)begin);
    if (end > area)
        return kne_fail(KNE_ERR_FORMAT, "%s: tensor \"%s\": data_offsets [%llu, %llu] beyond the %llu-byte data area",
                        sh->path, t->name, (unsigned long long)begin, (unsigned long long)end,
                        (unsigned long long)area);
    uint64_t want = (uint64_t)t->numel * kne_st_dtype_size(t->dtype);
    if (end - begin != want)
        return kne_fail(KNE_ERR_FORMAT, "%s: tensor \"%s\": %llu bytes in data_offsets, but shape and %s need %llu",
                        sh->path, t->name, (unsigned long long)(end - begin), kne_st_dtype_name(t->dtype),
                        (unsigned long long)want);
    sp->begin = begin;
    sp->end = end;
    return KNE_OK;
}

/* Fills one tensor from its header entry (name already set). */
static kne_status parse_entry(kne_st_tensor *t, st_span *sp, json_object *entry, const st_shard *sh)
{
    if (!entry || !json_object_is_type(entry, json_type_object))
        return kne_fail(KNE_ERR_FORMAT, "%s: tensor \"%s\": entry is not an object", sh->path, t->name);
    json_object *dt = kne_json_get(entry, "dtype");
    if (!dt || !json_object_is_type(dt, json_type_string))
        return kne_fail(KNE_ERR_FORMAT, "%s: tensor \"%s\": \"dtype\" missing or not a string", sh->path, t->name);
    t->dtype = dtype_from_name(json_object_get_string(dt));
    if (!t->dtype)
        return kne_fail(KNE_ERR_DTYPE, "%s: tensor \"%s\": dtype %s is not supported (only F32, F16, BF16)",
                        sh->path, t->name, json_object_get_string(dt));
    KNE_TRY(parse_shape(t, entry, sh->path));
    KNE_TRY(parse_offsets(sp, t, entry, sh));
    t->nbytes = (size_t)(sp->end - sp->begin);
    t->data = (const unsigned char *)sh->map + sh->data_start + sp->begin;
    return KNE_OK;
}

typedef struct st_ranked {
    uint64_t begin, end;
    size_t idx;
} st_ranked;

static int cmp_ranked(const void *a, const void *b)
{
    const st_ranked *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* Tensors [first, first+n) of one file, in offset order, must not share a byte. */
static kne_status check_overlaps(const kne_st_set *set, size_t first, size_t n, const char *path)
{
    st_ranked *r = malloc((n ? n : 1) * sizeof *r);
    if (!r) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        r[i].begin = set->spans[first + i].begin;
        r[i].end = set->spans[first + i].end;
        r[i].idx = first + i;
    }
    qsort(r, n, sizeof *r, cmp_ranked);
    const st_ranked *last = NULL; /* the tensor reaching furthest so far */
    kne_status s = KNE_OK;
    for (size_t i = 0; i < n && s == KNE_OK; i++) {
        if (r[i].end == r[i].begin) continue; /* empty tensors occupy no bytes */
        if (last && r[i].begin < last->end)
            s = kne_fail(KNE_ERR_FORMAT, "%s: tensors \"%s\" [%llu, %llu] and \"%s\" [%llu, %llu] overlap", path,
                         set->tensors[last->idx].name, (unsigned long long)last->begin,
                         (unsigned long long)last->end, set->tensors[r[i].idx].name,
                         (unsigned long long)r[i].begin, (unsigned long long)r[i].end);
        else if (!last || r[i].end > last->end)
            last = &r[i];
    }
    free(r);
    return s;
}

static kne_status parse_header(kne_st_set *set, size_t shard_idx)
{
    const st_shard *sh = &set->shards[shard_idx];
    json_object *root = NULL;
    KNE_TRY(kne_json_parse(&root, (const char *)sh->map + 8, sh->data_start - 8, sh->path));
    kne_status s = KNE_OK;
    size_t first = set->n_tensors;
    if (!json_object_is_type(root, json_type_object)) {
        s = kne_fail(KNE_ERR_FORMAT, "%s: header is not a JSON object", sh->path);
        goto done;
    }
    json_object_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            s = parse_metadata(val, sh->path);
            if (s != KNE_OK) goto done;
            continue;
        }
        kne_st_tensor *t = NULL;
        st_span *sp = NULL;
        s = add_tensor_slot(set, &t, &sp);
        if (s != KNE_OK) goto done;
        t->name = strdup(key);
        if (!t->name) {
            s = kne_fail(KNE_ERR_OUT_OF_MEMORY, "%s: out of memory", sh->path);
            goto done;
        }
        t->shard = (int)shard_idx;
        set->n_tensors++; /* counted now so that close frees the name */
        s = parse_entry(t, sp, val, sh);
        if (s != KNE_OK) goto done;
    }
    s = check_overlaps(set, first, set->n_tensors - first, sh->path);
done:
    json_object_put(root);
    return s;
}

/* Maps and validates one file; its tensors are appended to the set. */
static kne_status add_shard(kne_st_set *set, const char *path)
{
    ST_GROW(set->shards, set->cap_shards, set->n_shards + 1);
    st_shard *sh = &set->shards[set->n_shards];
    memset(sh, 0, sizeof *sh);
    sh->path = strdup(path);
    if (!sh->path) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    set->n_shards++; /* counted now so that close unmaps it */
    KNE_TRY(map_shard(sh, path));
    return parse_header(set, set->n_shards - 1);
}

/* Builds the name index and rejects a name found twice (in two shards). */
static kne_status index_names(kne_st_set *set)
{
    size_t n = set->n_tensors;
    set->by_name = malloc((n ? n : 1) * sizeof *set->by_name);
    if (!set->by_name) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
    for (size_t i = 0; i < n; i++) set->by_name[i] = &set->tensors[i];
    qsort(set->by_name, n, sizeof *set->by_name, cmp_tensor_name);
    for (size_t i = 1; i < n; i++) {
        const kne_st_tensor *a = set->by_name[i - 1], *b = set->by_name[i];
        if (strcmp(a->name, b->name) == 0)
            return kne_fail(KNE_ERR_FORMAT, "tensor \"%s\" appears twice: in %s and in %s", a->name,
                            set->shards[a->shard].path, set->shards[b->shard].path);
    }
    return KNE_OK;
}

static kne_status new_set(kne_st_set **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? KNE_OK : kne_fail(KNE_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
}

kne_status kne_st_open_file(kne_st_set **out, const char *path)
{
    if (!out || !path) return kne_fail(KNE_ERR_INVALID_ARG, "kne_st_open_file: NULL argument");
    *out = NULL;
    kne_st_set *set;
    KNE_TRY(new_set(&set));
    kne_status s = add_shard(set, path);
    if (s == KNE_OK) s = index_names(set);
    if (s != KNE_OK) {
        kne_st_close(set);
        return s;
    }
    *out = set;
    return KNE_OK;
}

/* ------------------------------------------------------------- directory */

static char *join_path(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static kne_status push_str(char ***v, size_t *n, size_t *cap, const char *s)
{
    ST_GROW(*v, *cap, *n + 1);
    (*v)[*n] = strdup(s);
    if (!(*v)[*n]) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
    (*n)++;
    return KNE_OK;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a > b && strcmp(s + a - b, suf) == 0;
}

/* Sorted names of the *.safetensors files in dir. */
static kne_status list_shards(const char *dir, char ***names, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d) return kne_fail(errno == ENOENT ? KNE_ERR_NOT_FOUND : KNE_ERR_IO, "%s: cannot open directory: %s",
                            dir, strerror(errno));
    size_t cap = 0;
    kne_status s = KNE_OK;
    struct dirent *e;
    while (s == KNE_OK && (e = readdir(d)) != NULL)
        if (has_suffix(e->d_name, ST_SUFFIX)) s = push_str(names, n, &cap, e->d_name);
    closedir(d);
    if (s != KNE_OK) return s;
    if (*n == 0)
        return kne_fail(KNE_ERR_NOT_FOUND, "%s: no " ST_INDEX_NAME " and no *" ST_SUFFIX
                        " file in this directory (expected a Hugging Face checkpoint directory)", dir);
    qsort(*names, *n, sizeof **names, cmp_str);
    return KNE_OK;
}

/* Reads the index's weight_map; *shards gets its distinct file names, sorted. */
static kne_status read_index(json_object **map_out, char ***shards, size_t *n, const char *ipath)
{
    json_object *root = NULL;
    KNE_TRY(kne_json_read_file(&root, ipath));
    json_object *map = kne_json_get(root, "weight_map");
    kne_status s = KNE_OK;
    size_t cap = 0;
    if (!map || !json_object_is_type(map, json_type_object)) {
        s = kne_fail(KNE_ERR_FORMAT, "%s: \"weight_map\" missing or not an object", ipath);
        goto done;
    }
    json_object_object_foreach(map, key, val) {
        const char *file = val && json_object_is_type(val, json_type_string) ? json_object_get_string(val) : NULL;
        if (!file || !*file || strchr(file, '/')) {
            s = kne_fail(KNE_ERR_FORMAT, "%s: weight_map entry \"%s\" is not a file name in the directory", ipath, key);
            goto done;
        }
        int seen = 0;
        for (size_t i = 0; i < *n && !seen; i++) seen = strcmp((*shards)[i], file) == 0;
        if (!seen && (s = push_str(shards, n, &cap, file)) != KNE_OK) goto done;
    }
    if (*n == 0) {
        s = kne_fail(KNE_ERR_FORMAT, "%s: \"weight_map\" is empty", ipath);
        goto done;
    }
    qsort(*shards, *n, sizeof **shards, cmp_str);
    *map_out = json_object_get(map);
done:
    json_object_put(root);
    return s;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Every weight_map entry must name a tensor of the named shard. */
static kne_status check_index(const kne_st_set *set, json_object *map, const char *ipath)
{
    json_object_object_foreach(map, key, val) {
        const char *file = json_object_get_string(val);
        const kne_st_tensor *t = kne_st_find(set, key);
        if (!t)
            return kne_fail(KNE_ERR_FORMAT, "%s: weight_map puts tensor \"%s\" in %s, but that file has no such tensor",
                            ipath, key, file);
        const char *actual = base_name(set->shards[t->shard].path);
        if (strcmp(actual, file) != 0)
            return kne_fail(KNE_ERR_FORMAT, "%s: weight_map puts tensor \"%s\" in %s, but it is found in %s",
                            ipath, key, file, actual);
    }
    return KNE_OK;
}

static kne_status open_shards(kne_st_set *set, const char *dir, char **names, size_t n, const char *ipath)
{
    for (size_t i = 0; i < n; i++) {
        char *p = join_path(dir, names[i]);
        if (!p) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
        kne_status s = add_shard(set, p);
        free(p);
        if (s != KNE_OK) {
            if (ipath && s == KNE_ERR_NOT_FOUND) {
                char what[1024];
                snprintf(what, sizeof what, "%s: weight_map names a missing shard", ipath);
                kne_error_prefix(what);
            }
            return s;
        }
    }
    return index_names(set);
}

static kne_status open_dir_into(kne_st_set *set, const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return kne_fail(errno == ENOENT ? KNE_ERR_NOT_FOUND : KNE_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return kne_fail(KNE_ERR_NOT_FOUND, "%s: not a directory", dir);
    char *ipath = join_path(dir, ST_INDEX_NAME);
    if (!ipath) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
    char **names = NULL;
    size_t n = 0;
    json_object *map = NULL;
    kne_status s;
    if (access(ipath, F_OK) == 0) {
        s = read_index(&map, &names, &n, ipath);
        if (s == KNE_OK) s = open_shards(set, dir, names, n, ipath);
        if (s == KNE_OK) s = check_index(set, map, ipath);
    } else {
        s = list_shards(dir, &names, &n);
        if (s == KNE_OK) s = open_shards(set, dir, names, n, NULL);
    }
    json_object_put(map);
    free_strs(names, n);
    free(ipath);
    return s;
}

kne_status kne_st_open_dir(kne_st_set **out, const char *dir)
{
    if (!out || !dir) return kne_fail(KNE_ERR_INVALID_ARG, "kne_st_open_dir: NULL argument");
    *out = NULL;
    kne_st_set *set;
    KNE_TRY(new_set(&set));
    kne_status s = open_dir_into(set, dir);
    if (s != KNE_OK) {
        kne_st_close(set);
        return s;
    }
    *out = set;
    return KNE_OK;
}
