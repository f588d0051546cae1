/* Safetensors writer: one file, written to path.tmp, fsync'ed and renamed into place
   so that a crash never leaves a half-written checkpoint under the final name. */
#include "safetensors.h"
#include "error.h"
#include "json_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Largest single write(): Linux transfers at most about 2 GiB per call. */
#define ST_WRITE_CHUNK ((size_t)1 << 30)

static int cmp_out_name(const void *a, const void *b)
{
    return strcmp((*(const kne_st_out *const *)a)->name, (*(const kne_st_out *const *)b)->name);
}

static kne_status check_one(const kne_st_out *t, const char *path, size_t i)
{
    if (!t->name || !*t->name || strcmp(t->name, "__metadata__") == 0)
        return kne_fail(KNE_ERR_INVALID_ARG, "%s: tensor %zu has no usable name", path, i);
    if (!kne_st_dtype_size(t->dtype))
        return kne_fail(KNE_ERR_DTYPE, "%s: tensor \"%s\": dtype %d is not F32, F16 or BF16", path, t->name,
                        t->dtype);
    if (t->ndim < 0 || t->ndim > KNE_ST_MAX_DIMS)
        return kne_fail(KNE_ERR_INVALID_ARG, "%s: tensor \"%s\": ndim %d outside 0..%d", path, t->name, t->ndim,
                        KNE_ST_MAX_DIMS);
    int64_t numel;
    if (!kne_st_numel(t->shape, t->ndim, &numel))
        return kne_fail(KNE_ERR_INVALID_ARG, "%s: tensor \"%s\": negative dimension or element count overflow",
                        path, t->name);
    if (numel > 0 && !t->data)
        return kne_fail(KNE_ERR_INVALID_ARG, "%s: tensor \"%s\": data is NULL", path, t->name);
    return KNE_OK;
}

static size_t out_nbytes(const kne_st_out *t)
{
    int64_t numel = 0;
    kne_st_numel(t->shape, t->ndim, &numel); /* checked by check_input */
    return (size_t)numel * kne_st_dtype_size(t->dtype);
}

/* Validates every tensor and rejects a name given twice. */
static kne_status check_input(const char *path, const kne_st_out *tensors, size_t n)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        KNE_TRY(check_one(&tensors[i], path, i));
        size_t nb = out_nbytes(&tensors[i]);
        if (nb > (uint64_t)INT64_MAX - total)
            return kne_fail(KNE_ERR_INVALID_ARG, "%s: total data size overflows", path);
        total += nb;
    }
    const kne_st_out **sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) sorted[i] = &tensors[i];
    qsort(sorted, n, sizeof *sorted, cmp_out_name);
    kne_status s = KNE_OK;
    for (size_t i = 1; i < n && s == KNE_OK; i++)
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0)
            s = kne_fail(KNE_ERR_INVALID_ARG, "%s: tensor \"%s\" given twice", path, sorted[i]->name);
    free(sorted);
    return s;
}

static json_object *int_array(const int64_t *v, int n)
{
    json_object *a = json_object_new_array();
    for (int i = 0; a && i < n; i++) json_object_array_add(a, json_object_new_int64(v[i]));
    return a;
}

/* Header object: "__metadata__" first, then the tensors in the given order (json-c
   keeps insertion order, so the text is deterministic). */
static json_object *build_header(const kne_st_out *tensors, size_t n)
{
    json_object *root = json_object_new_object(), *meta = json_object_new_object();
    if (!root || !meta) goto fail;
    json_object_object_add(meta, "format", json_object_new_string("pt"));
    json_object_object_add(root, "__metadata__", meta);
    meta = NULL;
    int64_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        const kne_st_out *t = &tensors[i];
        int64_t offs[2] = {offset, offset + (int64_t)out_nbytes(t)};
        json_object *e = json_object_new_object();
        if (!e) goto fail;
        json_object_object_add(e, "dtype", json_object_new_string(kne_st_dtype_name(t->dtype)));
        json_object_object_add(e, "shape", int_array(t->shape, t->ndim));
        json_object_object_add(e, "data_offsets", int_array(offs, 2));
        json_object_object_add(root, t->name, e);
        offset = offs[1];
    }
    return root;
fail:
    json_object_put(meta);
    json_object_put(root);
    return NULL;
}

static kne_status write_all(int fd, const void *buf, size_t len, const char *path)
{
    const unsigned char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len < ST_WRITE_CHUNK ? len : ST_WRITE_CHUNK);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return kne_fail(KNE_ERR_IO, "%s: write failed: %s", path, w < 0 ? strerror(errno) : "no progress");
        p += w;
        len -= (size_t)w;
    }
    return KNE_OK;
}

/* Length prefix, header padded with spaces to a multiple of 8, then the data. */
static kne_status write_body(int fd, const char *tmp, const char *json, const kne_st_out *tensors, size_t n)
{
    size_t jlen = strlen(json), hlen = (jlen + 7) / 8 * 8;
    unsigned char *head = malloc(8 + hlen);
    if (!head) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "%s: out of memory", tmp);
    for (int i = 0; i < 8; i++) head[i] = (unsigned char)((uint64_t)hlen >> (8 * i)); /* little-endian */
    memcpy(head + 8, json, jlen);
    memset(head + 8 + jlen, ' ', hlen - jlen);
    kne_status s = write_all(fd, head, 8 + hlen, tmp);
    free(head);
    for (size_t i = 0; i < n && s == KNE_OK; i++) s = write_all(fd, tensors[i].data, out_nbytes(&tensors[i]), tmp);
    return s;
}

/* Makes the rename durable; failure here is not worth failing the write for. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

static kne_status write_tmp(const char *tmp, const char *json, const kne_st_out *tensors, size_t n)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return kne_fail(errno == ENOENT ? KNE_ERR_NOT_FOUND : KNE_ERR_IO, "%s: cannot create: %s", tmp,
                        strerror(errno));
    kne_status s = write_body(fd, tmp, json, tensors, n);
    if (s == KNE_OK && fsync(fd) != 0) s = kne_fail(KNE_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && s == KNE_OK) s = kne_fail(KNE_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (s != KNE_OK) unlink(tmp);
    return s;
}

kne_status kne_st_write_file(const char *path, const kne_st_out *tensors, size_t n)
{
    if (!path || !*path || (n > 0 && !tensors))
        return kne_fail(KNE_ERR_INVALID_ARG, "kne_st_write_file: NULL path or tensors");
    KNE_TRY(check_input(path, tensors, n));
    json_object *hdr = build_header(tensors, n);
    if (!hdr) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "%s: out of memory building the header", path);
    const char *json = json_object_to_json_string_ext(hdr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    kne_status s = KNE_OK;
    if (!json || !tmp) s = kne_fail(KNE_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    if (s == KNE_OK) {
        memcpy(tmp, path, plen);
        memcpy(tmp + plen, ".tmp", 5);
        s = write_tmp(tmp, json, tensors, n);
    }
    if (s == KNE_OK && rename(tmp, path) != 0) {
        s = kne_fail(KNE_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        unlink(tmp);
    }
    if (s == KNE_OK) sync_parent_dir(path);
    free(tmp);
    json_object_put(hdr);
    return s;
}
