// C++ internals of the shim: the arena, the tensor handle and the exception guard.
#pragma once
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <memory>
#include <string>
#include <vector>
#include "kne_shim.h"

struct kt_tensor {
    at::Tensor t;
};

struct kt_arena {
    std::vector<std::unique_ptr<kt_tensor>> tensors;
    kne_status status = KNE_OK;
    std::string message;

    kt_tensor *add(at::Tensor t)
    {
        tensors.emplace_back(new kt_tensor{std::move(t)});
        return tensors.back().get();
    }
    void fail(kne_status s, const std::string &msg)
    {
        if (status != KNE_OK) return;
        status = s;
        message = msg;
    }
};

namespace kt {

at::ScalarType scalar_type(int dtype);
int dtype_code(at::ScalarType st);
at::Device parse_device(const char *device);
// Turns the exception being handled into the arena's error. Call only inside catch.
void record_current_exception(kt_arena *a);

}  // namespace kt

// Runs body (returning at::Tensor) and wraps the result in a handle of arena a; on any
// exception records it in the arena and returns NULL. Inputs checked non-NULL first.
#define KT_GUARD_INPUTS(a, ...)                                                   \
    do {                                                                          \
        if (!(a) || (a)->status != KNE_OK) return nullptr;                        \
        const void *kt_in_[] = {__VA_ARGS__};                                     \
        for (const void *p_ : kt_in_)                                             \
            if (!p_) { (a)->fail(KNE_ERR_BACKEND, "NULL tensor given to " + std::string(__func__)); return nullptr; } \
    } while (0)

#define KT_TENSOR_OP(a, ...)                                                     \
    try {                                                                         \
        return (a)->add(__VA_ARGS__);                                             \
    } catch (...) {                                                               \
        kt::record_current_exception(a);                                          \
        return nullptr;                                                           \
    }

#define KT_STATUS_OP(a, ...)                                                     \
    do {                                                                          \
        if (!(a)) return KNE_ERR_INVALID_ARG;                                     \
        if ((a)->status != KNE_OK) return (a)->status;                            \
        try {                                                                     \
            __VA_ARGS__;                                                          \
            return KNE_OK;                                                        \
        } catch (...) {                                                           \
            kt::record_current_exception(a);                                      \
            return (a)->status;                                                   \
        }                                                                         \
    } while (0)
