/* The one safetensors reader and writer: a checkpoint's shards, mmap'ed and validated. */
#ifndef KNE_SAFETENSORS_H
#define KNE_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "kne.h"

enum { KNE_ST_F32 = 1, KNE_ST_F16 = 2, KNE_ST_BF16 = 3 }; /* same values as KNE_DTYPE_* */
#define KNE_ST_MAX_DIMS 8

typedef struct kne_st_tensor {
    const char *name;            /* owned by the set */
    int dtype;                   /* KNE_ST_* */
    int ndim;
    int64_t shape[KNE_ST_MAX_DIMS];
    int64_t numel;
    const void *data;            /* inside the mmap'ed file, read-only */
    size_t nbytes;
    int shard;                   /* index of the file it lives in */
} kne_st_tensor;

typedef struct kne_st_set kne_st_set;

/* Opens a checkpoint directory: model.safetensors.index.json (sharded) if present,
   else every *.safetensors file in it (usually one model.safetensors). Every file is
   mmap'ed read-only and fully validated before return: header length inside the file,
   header valid JSON, dtype F32/F16/BF16 (else KNE_ERR_DTYPE naming the tensor), offsets
   inside the data area, not overlapping, byte size = numel x dtype size, no duplicate
   names across shards, index.json entries that name existing tensors in the named file.
   Errors: KNE_ERR_NOT_FOUND, KNE_ERR_IO, KNE_ERR_FORMAT, KNE_ERR_DTYPE. *out caller-owned. */
kne_status kne_st_open_dir(kne_st_set **out, const char *dir);
/* Opens one .safetensors file (same checks). */
kne_status kne_st_open_file(kne_st_set **out, const char *path);
void kne_st_close(kne_st_set *set); /* NULL-safe; unmaps */
size_t kne_st_count(const kne_st_set *set);
const kne_st_tensor *kne_st_at(const kne_st_set *set, size_t i); /* NULL past the end */
/* Order of kne_st_at: shard by shard (file-name order), each in its header's order.
   data lies at 8 + header length + begin in the mapping, so it is aligned only as far
   as the writer padded the header (every known writer pads to 8 bytes). */
const kne_st_tensor *kne_st_find(const kne_st_set *set, const char *name); /* NULL if absent */
/* Drops the tensor's pages from memory (madvise DONTNEED) once it has been converted,
   so that loading never holds the mmap'ed file and the converted weights at once. */
void kne_st_release(const kne_st_set *set, const kne_st_tensor *t);
/* The same for a byte range of a mapped tensor (pages fully inside it). */
void kne_st_release_bytes(const void *data, size_t nbytes);

/* Writing: one file with the given tensors (data in the stated dtype, row-major),
   metadata {"format": "pt"}. Written to path + ".tmp" and renamed. */
typedef struct kne_st_out {
    const char *name;
    int dtype;                   /* KNE_ST_* */
    int ndim;
    int64_t shape[KNE_ST_MAX_DIMS];
    const void *data;
} kne_st_out;
/* Tensors are laid out in the given order after a header padded with spaces to a
   multiple of 8 bytes; the file is fsync'ed before the rename. Errors: KNE_ERR_INVALID_ARG
   (NULL, empty or duplicate name, ndim outside 0..8, negative dimension, overflow),
   KNE_ERR_DTYPE, KNE_ERR_NOT_FOUND (directory missing), KNE_ERR_IO. */
kne_status kne_st_write_file(const char *path, const kne_st_out *tensors, size_t n);
size_t kne_st_dtype_size(int dtype); /* 4, 2, 2; 0 for unknown */
const char *kne_st_dtype_name(int dtype); /* "F32", "F16", "BF16"; NULL for unknown */
/* Element count of a shape into *numel; 0 if a dimension is negative or the count
   (or its byte size at 4 bytes an element) overflows. */
int kne_st_numel(const int64_t *shape, int ndim, int64_t *numel);
#endif
