// Arenas, error capture, devices, tensor creation, queries and copies to host.
#include "shim_internal.hpp"

#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <ATen/Parallel.h>
#include <cstring>
#include <new>
#include <ATen/detail/CUDAHooksInterface.h>
#include <cmath>

namespace kt {

at::ScalarType scalar_type(int dtype)
{
    switch (dtype) {
    case KT_F32: return at::kFloat;
    case KT_F16: return at::kHalf;
    case KT_BF16: return at::kBFloat16;
    case KT_I64: return at::kLong;
    case KT_F64: return at::kDouble;
    }
    throw std::invalid_argument("unknown dtype code " + std::to_string(dtype));
}

int dtype_code(at::ScalarType st)
{
    switch (st) {
    case at::kFloat: return KT_F32;
    case at::kHalf: return KT_F16;
    case at::kBFloat16: return KT_BF16;
    case at::kLong: return KT_I64;
    case at::kDouble: return KT_F64;
    default: return 0;
    }
}

at::Device parse_device(const char *device)
{
    return at::Device(std::string(device && *device ? device : "cpu"));
}

static bool looks_like_oom(const std::string &m)
{
    return m.find("out of memory") != std::string::npos || m.find("OutOfMemory") != std::string::npos;
}

void record_current_exception(kt_arena *a)
{
    try {
        throw;
    } catch (const c10::Error &e) {
        std::string m = e.what_without_backtrace();
        a->fail(looks_like_oom(m) ? KNE_ERR_OUT_OF_MEMORY : KNE_ERR_BACKEND, m);
    } catch (const std::bad_alloc &) {
        a->fail(KNE_ERR_OUT_OF_MEMORY, "out of memory");
    } catch (const std::exception &e) {
        std::string m = e.what();
        a->fail(looks_like_oom(m) ? KNE_ERR_OUT_OF_MEMORY : KNE_ERR_BACKEND, m);
    } catch (...) {
        a->fail(KNE_ERR_BACKEND, "unknown C++ exception in libtorch");
    }
}

}  // namespace kt

// kne_fail lives in the C part (lib/error.c).
extern "C" kne_status kne_fail(kne_status s, const char *fmt, ...);

extern "C" {

kt_arena *kt_arena_new(void)
{
    try {
        return new kt_arena();
    } catch (...) {
        return nullptr;
    }
}

void kt_arena_free(kt_arena *a)
{
    try {
        delete a;
    } catch (...) {
    }
}

kne_status kt_arena_status(const kt_arena *a) { return a ? a->status : KNE_ERR_OUT_OF_MEMORY; }
const char *kt_arena_message(const kt_arena *a) { return a ? a->message.c_str() : "arena allocation failed"; }

kne_status kt_arena_report(const kt_arena *a, const char *what)
{
    if (!a) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    if (a->status == KNE_OK) return KNE_OK;
    return kne_fail(a->status, "%s: %s", what, a->message.c_str());
}

void kt_arena_fail(kt_arena *a, kne_status s, const char *msg)
{
    if (!a) return;
    try {
        a->fail(s, msg ? msg : "");
    } catch (...) {
        a->status = s;
    }
}

int kt_cuda_device_count(void)
{
    try {
        return at::hasCUDA() ? (int)at::detail::getCUDAHooks().getNumGPUs() : 0;
    } catch (...) {
        return 0;
    }
}

kne_status kt_check_device(const char *device)
{
    try {
        at::Device d = kt::parse_device(device);
        if (d.is_cpu()) return KNE_OK;
        if (d.is_cuda()) {
            int n = kt_cuda_device_count();
            if (n == 0)
                return kne_fail(KNE_ERR_DEVICE, "device '%s': this libkne was built against a libtorch without CUDA, "
                                "or no CUDA device is visible (rebuild with make TORCH_DIR=... on a GPU machine)", device);
            if (d.has_index() && d.index() >= n)
                return kne_fail(KNE_ERR_DEVICE, "device '%s': only %d CUDA device(s) visible", device, n);
            return KNE_OK;
        }
        return kne_fail(KNE_ERR_DEVICE, "device '%s' is not supported (use cpu, cuda or cuda:N)", device);
    } catch (const std::exception &e) {
        return kne_fail(KNE_ERR_DEVICE, "device '%s' is not a valid device string (use cpu, cuda or cuda:N)", device);
    } catch (...) {
        return kne_fail(KNE_ERR_DEVICE, "device '%s' is not valid", device);
    }
}

void kt_set_num_threads(int n)
{
    try {
        if (n > 0) at::set_num_threads(n);
    } catch (...) {
    }
}

// libtorch's CPU kernels run on OpenMP (libgomp comes with libtorch_cpu); weak so a
// build without OpenMP links too.
extern "C" void omp_set_num_threads(int) __attribute__((weak));

void kt_thread_limit(int n)
{
    if (n > 0 && omp_set_num_threads) omp_set_num_threads(n);
}

// Debian's libtorch does its matrix products in OpenBLAS, whose own thread pool is
// process-wide and knows nothing of OpenMP's.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

void kt_blas_threads(int n)
{
    if (n > 0 && openblas_set_num_threads) openblas_set_num_threads(n);
}

int kt_grad_mode(int enabled)
{
    bool prev = c10::GradMode::is_enabled();
    c10::GradMode::set_enabled(enabled != 0);
    return prev ? 1 : 0;
}

void kt_manual_seed(uint64_t seed)
{
    try {
        at::manual_seed(seed);
    } catch (...) {
    }
}

kt_tensor *kt_from_data(kt_arena *a, const void *data, int src_dtype, int ndim, const int64_t *shape,
                        const char *device, int dtype)
{
    KT_GUARD_INPUTS(a, data, shape);
    KT_TENSOR_OP(a, ([&] {
        at::Tensor view = at::from_blob(const_cast<void *>(data), at::IntArrayRef(shape, ndim),
                                        at::TensorOptions().dtype(kt::scalar_type(src_dtype)));
        // .to() with copy=true so the result never aliases the caller's (mmap'ed) memory
        return view.to(kt::parse_device(device), kt::scalar_type(dtype), false, true);
    }()));
}

kt_tensor *kt_from_i32(kt_arena *a, const int32_t *data, int ndim, const int64_t *shape, const char *device)
{
    KT_GUARD_INPUTS(a, data, shape);
    KT_TENSOR_OP(a, ([&] {
        at::Tensor view = at::from_blob(const_cast<int32_t *>(data), at::IntArrayRef(shape, ndim),
                                        at::TensorOptions().dtype(at::kInt));
        return view.to(kt::parse_device(device), at::kLong, false, true);
    }()));
}

kt_tensor *kt_empty(kt_arena *a, int ndim, const int64_t *shape, int dtype, const char *device)
{
    KT_GUARD_INPUTS(a, shape);
    KT_TENSOR_OP(a, at::empty(at::IntArrayRef(shape, ndim),
                              at::TensorOptions().dtype(kt::scalar_type(dtype)).device(kt::parse_device(device))));
}

kne_status kt_copy_rows_from_data(kt_arena *a, kt_tensor *dst, int64_t row0, int64_t n_rows, const void *data,
                                  int src_dtype)
{
    if (!dst || !data) {
        if (a) a->fail(KNE_ERR_BACKEND, "kt_copy_rows_from_data: NULL argument");
        return KNE_ERR_BACKEND;
    }
    KT_STATUS_OP(a, {
        at::NoGradGuard ng;
        std::vector<int64_t> shape(dst->t.sizes().begin(), dst->t.sizes().end());
        shape[0] = n_rows;
        at::Tensor view = at::from_blob(const_cast<void *>(data), shape,
                                        at::TensorOptions().dtype(kt::scalar_type(src_dtype)));
        dst->t.narrow(0, row0, n_rows).copy_(view);
    });
}

kt_tensor *kt_zeros(kt_arena *a, int ndim, const int64_t *shape, int dtype, const char *device)
{
    KT_GUARD_INPUTS(a, shape);
    KT_TENSOR_OP(a, at::zeros(at::IntArrayRef(shape, ndim),
                              at::TensorOptions().dtype(kt::scalar_type(dtype)).device(kt::parse_device(device))));
}

kt_tensor *kt_full(kt_arena *a, int ndim, const int64_t *shape, double value, int dtype, const char *device)
{
    KT_GUARD_INPUTS(a, shape);
    KT_TENSOR_OP(a, at::full(at::IntArrayRef(shape, ndim), value,
                             at::TensorOptions().dtype(kt::scalar_type(dtype)).device(kt::parse_device(device))));
}

kt_tensor *kt_arange(kt_arena *a, double start, double end, double step, int dtype, const char *device)
{
    if (!a || a->status != KNE_OK) return nullptr;
    KT_TENSOR_OP(a, at::arange(start, end, step,
                               at::TensorOptions().dtype(kt::scalar_type(dtype)).device(kt::parse_device(device))));
}

kt_tensor *kt_ref(kt_arena *a, const kt_tensor *t) { KT_GUARD_INPUTS(a, t); KT_TENSOR_OP(a, t->t); }
kt_tensor *kt_clone(kt_arena *a, const kt_tensor *t) { KT_GUARD_INPUTS(a, t); KT_TENSOR_OP(a, t->t.clone()); }
kt_tensor *kt_to(kt_arena *a, const kt_tensor *t, int dtype)
{
    KT_GUARD_INPUTS(a, t);
    KT_TENSOR_OP(a, t->t.to(kt::scalar_type(dtype)));
}
kt_tensor *kt_detach(kt_arena *a, const kt_tensor *t) { KT_GUARD_INPUTS(a, t); KT_TENSOR_OP(a, t->t.detach()); }
kt_tensor *kt_contiguous(kt_arena *a, const kt_tensor *t) { KT_GUARD_INPUTS(a, t); KT_TENSOR_OP(a, t->t.contiguous()); }

int kt_ndim(const kt_tensor *t) { return t ? (int)t->t.dim() : -1; }
int64_t kt_size(const kt_tensor *t, int dim)
{
    if (!t) return -1;
    int64_t nd = t->t.dim();
    int64_t d = dim < 0 ? nd + dim : dim;
    return d >= 0 && d < nd ? t->t.size(d) : -1;
}
int64_t kt_numel(const kt_tensor *t) { return t ? t->t.numel() : -1; }
int kt_dtype(const kt_tensor *t) { return t ? kt::dtype_code(t->t.scalar_type()) : 0; }

static kne_status copy_out(kt_arena *a, const kt_tensor *t, at::ScalarType st, void *out, size_t n, size_t elsize)
{
    if (!t || !out) {
        if (a) a->fail(KNE_ERR_BACKEND, "NULL given to a host copy");
        return KNE_ERR_BACKEND;
    }
    KT_STATUS_OP(a, {
        if ((size_t)t->t.numel() != n)
            throw std::invalid_argument("host copy of " + std::to_string(t->t.numel()) + " elements into a buffer of " +
                                        std::to_string(n));
        at::Tensor h = t->t.detach().to(at::kCPU, st).contiguous();
        std::memcpy(out, h.data_ptr(), n * elsize);
    });
}

kne_status kt_copy_to_f32(kt_arena *a, const kt_tensor *t, float *out, size_t n)
{
    return copy_out(a, t, at::kFloat, out, n, sizeof(float));
}
kne_status kt_copy_to_f64(kt_arena *a, const kt_tensor *t, double *out, size_t n)
{
    return copy_out(a, t, at::kDouble, out, n, sizeof(double));
}
kne_status kt_copy_to_i64(kt_arena *a, const kt_tensor *t, int64_t *out, size_t n)
{
    return copy_out(a, t, at::kLong, out, n, sizeof(int64_t));
}
kne_status kt_copy_to_host(kt_arena *a, const kt_tensor *t, int dtype, void *out, size_t nbytes)
{
    if (!a) return KNE_ERR_INVALID_ARG;
    size_t el = dtype == KT_F32 ? 4 : (dtype == KT_F16 || dtype == KT_BF16) ? 2 : dtype == KT_F64 || dtype == KT_I64 ? 8 : 0;
    if (el == 0 || nbytes % el != 0) {
        a->fail(KNE_ERR_BACKEND, "host copy: bad dtype or size");
        return a->status;
    }
    try {
        return copy_out(a, t, kt::scalar_type(dtype), out, nbytes / el, el);
    } catch (...) {
        kt::record_current_exception(a);
        return a->status;
    }
}

double kt_item(kt_arena *a, const kt_tensor *t)
{
    double v = NAN;
    if (kt_copy_to_f64(a, t, &v, 1) != KNE_OK) return NAN;
    return v;
}

}  // extern "C"
