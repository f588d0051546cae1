/*
 * The C bridge to libtorch: opaque tensor handles and a small set of ops.
 * Plain C; the only C++ of the library lives behind it (shim/ *.cpp).
 *
 * Every tensor belongs to an arena and dies with it. An arena carries a sticky error:
 * the first op that fails (a libtorch exception, a NULL input) records a status and a
 * message, returns NULL, and every later op on that arena returns NULL at once. So C
 * code composes a whole computation and checks kt_arena_status() once at the end.
 * No exception and no C++ type crosses this header.
 *
 * Threads: an arena is used by one thread at a time; distinct arenas may share input
 * tensors (read-only) across threads. Grad mode is per thread (kt_grad_mode).
 */
#ifndef KNE_SHIM_H
#define KNE_SHIM_H
#include <stddef.h>
#include <stdint.h>
#include "kne.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kt_tensor kt_tensor;
typedef struct kt_arena kt_arena;

/* Element types: the first three equal KNE_DTYPE_*. */
enum { KT_F32 = 1, KT_F16 = 2, KT_BF16 = 3, KT_I64 = 4, KT_F64 = 5 };

kt_arena *kt_arena_new(void);                 /* NULL only when out of memory */
void kt_arena_free(kt_arena *a);              /* NULL-safe; frees every tensor of the arena */
kne_status kt_arena_status(const kt_arena *a);/* KNE_OK until an op failed */
const char *kt_arena_message(const kt_arena *a); /* "" when ok; borrowed */
/* Copies the arena's error into kne_last_error() (prefixed by what) and returns it. */
kne_status kt_arena_report(const kt_arena *a, const char *what);
/* Records an error by hand (e.g. a check in C); keeps the first error. */
void kt_arena_fail(kt_arena *a, kne_status s, const char *msg);

/* ---- process-wide */
int kt_cuda_device_count(void);               /* 0 without CUDA */
kne_status kt_check_device(const char *device); /* KNE_ERR_DEVICE with a message if unusable */
void kt_set_num_threads(int n);
/* Limits the calling thread's parallel regions to n threads (OpenMP is per thread). */
void kt_thread_limit(int n);
/* Sets the BLAS library's (process-wide) thread count, where the BLAS is OpenBLAS. */
void kt_blas_threads(int n);
/* Sets grad mode for this thread, returns the previous one. */
int kt_grad_mode(int enabled);
void kt_manual_seed(uint64_t seed);

/* ---- creation (all copy their input) */
kt_tensor *kt_from_data(kt_arena *a, const void *data, int src_dtype, int ndim, const int64_t *shape,
                        const char *device, int dtype);
kt_tensor *kt_from_i32(kt_arena *a, const int32_t *data, int ndim, const int64_t *shape, const char *device);
/* dst[row0 : row0 + n_rows] = host data (src_dtype, rows of dst's trailing shape). */
kne_status kt_copy_rows_from_data(kt_arena *a, kt_tensor *dst, int64_t row0, int64_t n_rows, const void *data,
                                  int src_dtype);
kt_tensor *kt_empty(kt_arena *a, int ndim, const int64_t *shape, int dtype, const char *device);
kt_tensor *kt_zeros(kt_arena *a, int ndim, const int64_t *shape, int dtype, const char *device);
kt_tensor *kt_full(kt_arena *a, int ndim, const int64_t *shape, double value, int dtype, const char *device);
kt_tensor *kt_arange(kt_arena *a, double start, double end, double step, int dtype, const char *device);
/* Another handle, in arena a, to the same tensor (shares storage and autograd). */
kt_tensor *kt_ref(kt_arena *a, const kt_tensor *t);
kt_tensor *kt_clone(kt_arena *a, const kt_tensor *t);
kt_tensor *kt_to(kt_arena *a, const kt_tensor *t, int dtype);   /* dtype conversion */
kt_tensor *kt_detach(kt_arena *a, const kt_tensor *t);
kt_tensor *kt_contiguous(kt_arena *a, const kt_tensor *t);

/* ---- queries (0 / -1 on NULL) */
int kt_ndim(const kt_tensor *t);
int64_t kt_size(const kt_tensor *t, int dim);   /* negative dim counts from the end */
int64_t kt_numel(const kt_tensor *t);
int kt_dtype(const kt_tensor *t);
/* Copies t (any float dtype, any device) as float32 / float64 into host memory of n
   elements; fails unless n == numel. */
kne_status kt_copy_to_f32(kt_arena *a, const kt_tensor *t, float *out, size_t n);
kne_status kt_copy_to_f64(kt_arena *a, const kt_tensor *t, double *out, size_t n);
kne_status kt_copy_to_i64(kt_arena *a, const kt_tensor *t, int64_t *out, size_t n);
/* Copies t into host memory in the given dtype (KT_F32/F16/BF16 bytes). */
kne_status kt_copy_to_host(kt_arena *a, const kt_tensor *t, int dtype, void *out, size_t nbytes);
double kt_item(kt_arena *a, const kt_tensor *t);  /* NaN on failure */

/* ---- shape */
kt_tensor *kt_reshape(kt_arena *a, const kt_tensor *t, int ndim, const int64_t *shape);
kt_tensor *kt_transpose(kt_arena *a, const kt_tensor *t, int d0, int d1);
kt_tensor *kt_narrow(kt_arena *a, const kt_tensor *t, int dim, int64_t start, int64_t len);
kt_tensor *kt_cat(kt_arena *a, kt_tensor *const *ts, int n, int dim);
kt_tensor *kt_stack(kt_arena *a, kt_tensor *const *ts, int n, int dim);
kt_tensor *kt_expand(kt_arena *a, const kt_tensor *t, int ndim, const int64_t *shape);
kt_tensor *kt_repeat_interleave(kt_arena *a, const kt_tensor *t, int64_t repeats, int dim);
kt_tensor *kt_flatten(kt_arena *a, const kt_tensor *t, int start_dim, int end_dim);
/* x[..., start::step] along the last dim */
kt_tensor *kt_slice_step(kt_arena *a, const kt_tensor *t, int dim, int64_t start, int64_t step);

/* ---- arithmetic */
kt_tensor *kt_add(kt_arena *a, const kt_tensor *x, const kt_tensor *y);
kt_tensor *kt_sub(kt_arena *a, const kt_tensor *x, const kt_tensor *y);
kt_tensor *kt_mul(kt_arena *a, const kt_tensor *x, const kt_tensor *y);
kt_tensor *kt_div(kt_arena *a, const kt_tensor *x, const kt_tensor *y);
kt_tensor *kt_scale(kt_arena *a, const kt_tensor *x, double s);
kt_tensor *kt_add_scalar(kt_arena *a, const kt_tensor *x, double s);
kt_tensor *kt_neg(kt_arena *a, const kt_tensor *x);
kt_tensor *kt_exp(kt_arena *a, const kt_tensor *x);
kt_tensor *kt_log(kt_arena *a, const kt_tensor *x);
kt_tensor *kt_cos(kt_arena *a, const kt_tensor *x);
kt_tensor *kt_sin(kt_arena *a, const kt_tensor *x);
kt_tensor *kt_sqrt(kt_arena *a, const kt_tensor *x);
kt_tensor *kt_matmul(kt_arena *a, const kt_tensor *x, const kt_tensor *y);
/* x @ w^T (+ b): w [out, in]; b may be NULL */
kt_tensor *kt_linear(kt_arena *a, const kt_tensor *x, const kt_tensor *w, const kt_tensor *b);
kt_tensor *kt_outer(kt_arena *a, const kt_tensor *x, const kt_tensor *y);

/* ---- neural-net */
kt_tensor *kt_rms_norm(kt_arena *a, const kt_tensor *x, const kt_tensor *w, double eps);
kt_tensor *kt_layer_norm(kt_arena *a, const kt_tensor *x, const kt_tensor *w, const kt_tensor *b, double eps);
kt_tensor *kt_silu(kt_arena *a, const kt_tensor *x);
kt_tensor *kt_gelu_tanh(kt_arena *a, const kt_tensor *x);
kt_tensor *kt_gelu(kt_arena *a, const kt_tensor *x);
kt_tensor *kt_relu(kt_arena *a, const kt_tensor *x);
kt_tensor *kt_softmax(kt_arena *a, const kt_tensor *x, int dim);
kt_tensor *kt_log_softmax(kt_arena *a, const kt_tensor *x, int dim);
/* Causal attention: q [B,H,T,D], k,v [B,H,S,D] (S >= T; query i sees keys 0..S-T+i),
   scale applied to q.k; softmax in float32. Returns [B,H,T,D]. */
kt_tensor *kt_causal_attention(kt_arena *a, const kt_tensor *q, const kt_tensor *k, const kt_tensor *v, double scale);
kt_tensor *kt_embedding(kt_arena *a, const kt_tensor *weight, const kt_tensor *ids);
/* out[..., j] = x[..., idx[j]] (idx int64 1-D) */
kt_tensor *kt_index_select(kt_arena *a, const kt_tensor *x, int dim, const kt_tensor *idx);
/* out = x with src added at idx along dim (out of place) */
kt_tensor *kt_index_add(kt_arena *a, const kt_tensor *x, int dim, const kt_tensor *idx, const kt_tensor *src);
kt_tensor *kt_gather(kt_arena *a, const kt_tensor *x, int dim, const kt_tensor *idx);
kt_tensor *kt_sum(kt_arena *a, const kt_tensor *x);                    /* all elements */
kt_tensor *kt_sum_dim(kt_arena *a, const kt_tensor *x, int dim, int keepdim);
kt_tensor *kt_mean(kt_arena *a, const kt_tensor *x);
kt_tensor *kt_max_dim(kt_arena *a, const kt_tensor *x, int dim);      /* values */
kt_tensor *kt_argmax(kt_arena *a, const kt_tensor *x, int dim);
kt_tensor *kt_topk_values(kt_arena *a, const kt_tensor *x, int64_t k); /* 1-D, descending */
/* KL(p_ref || p) summed: both are log-probabilities over the last dim */
kt_tensor *kt_kl_logits(kt_arena *a, const kt_tensor *logp, const kt_tensor *logp_ref);
int kt_all_finite(kt_arena *a, const kt_tensor *x);                   /* 1 yes, 0 no / error */
/* Orthonormal basis [d, r] (float32) of the row space of K [N, d]: the right singular
   vectors whose singular value exceeds rel_tol times the largest (r may be 0). */
kt_tensor *kt_row_basis(kt_arena *a, const kt_tensor *K, double rel_tol);

/* ---- autograd */
kt_tensor *kt_requires_grad(kt_arena *a, const kt_tensor *t); /* a leaf copy that requires grad */
/* d(out)/d(inputs[i]) for a scalar out; writes n gradient handles into grads (zeros for
   an input that out does not depend on). */
kne_status kt_grad(kt_arena *a, const kt_tensor *out, kt_tensor *const *inputs, int n, kt_tensor **grads);

/* ---- in place (the caller guarantees exclusive access) */
/* dst[rows] = src (rows int64 1-D, dst [R, C], src [len(rows), C]); src converted to dst's dtype */
kne_status kt_index_copy_rows(kt_arena *a, kt_tensor *dst, const kt_tensor *rows, const kt_tensor *src);
kne_status kt_copy_(kt_arena *a, kt_tensor *dst, const kt_tensor *src);
/* One Adam step on p (no grad tracking): m, v moment buffers, step >= 1. */
kne_status kt_adam_step(kt_arena *a, kt_tensor *p, const kt_tensor *g, kt_tensor *m, kt_tensor *v,
                        int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay);

#ifdef __cplusplus
}
#endif
#endif
