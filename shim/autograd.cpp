// Gradients and in-place updates: what attribution and editing need beyond plain ops.
#include "shim_internal.hpp"

#include <c10/core/GradMode.h>

using at::Tensor;

extern "C" {

kt_tensor *kt_requires_grad(kt_arena *a, const kt_tensor *t)
{
    KT_GUARD_INPUTS(a, t);
    KT_TENSOR_OP(a, t->t.detach().requires_grad_(true));
}

kne_status kt_grad(kt_arena *a, const kt_tensor *out, kt_tensor *const *inputs, int n, kt_tensor **grads)
{
    if (!out || !inputs || !grads) {
        if (a) a->fail(KNE_ERR_BACKEND, "kt_grad: NULL argument");
        return KNE_ERR_BACKEND;
    }
    KT_STATUS_OP(a, {
        std::vector<Tensor> in;
        for (int i = 0; i < n; i++) {
            if (!inputs[i]) throw std::invalid_argument("kt_grad: NULL input");
            in.push_back(inputs[i]->t);
        }
        auto g = torch::autograd::grad({out->t}, in, {}, c10::nullopt, false, true);
        for (int i = 0; i < n; i++)
            grads[i] = a->add(g[i].defined() ? g[i] : at::zeros_like(in[i]));
    });
}

kne_status kt_index_copy_rows(kt_arena *a, kt_tensor *dst, const kt_tensor *rows, const kt_tensor *src)
{
    if (!dst || !rows || !src) {
        if (a) a->fail(KNE_ERR_BACKEND, "kt_index_copy_rows: NULL argument");
        return KNE_ERR_BACKEND;
    }
    KT_STATUS_OP(a, {
        at::NoGradGuard ng;
        dst->t.index_copy_(0, rows->t, src->t.to(dst->t.scalar_type()));
    });
}

kne_status kt_copy_(kt_arena *a, kt_tensor *dst, const kt_tensor *src)
{
    if (!dst || !src) {
        if (a) a->fail(KNE_ERR_BACKEND, "kt_copy_: NULL argument");
        return KNE_ERR_BACKEND;
    }
    KT_STATUS_OP(a, {
        at::NoGradGuard ng;
        dst->t.copy_(src->t);
    });
}

kne_status kt_adam_step(kt_arena *a, kt_tensor *p, const kt_tensor *g, kt_tensor *m, kt_tensor *v,
                        int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay)
{
    if (!p || !g || !m || !v) {
        if (a) a->fail(KNE_ERR_BACKEND, "kt_adam_step: NULL argument");
        return KNE_ERR_BACKEND;
    }
    KT_STATUS_OP(a, {
        // torch.optim.Adam (L2 weight decay added to the gradient), bias-corrected.
        at::NoGradGuard ng;
        Tensor grad = g->t;
        if (weight_decay != 0) grad = grad + weight_decay * p->t;
        m->t.mul_(beta1).add_(grad, 1 - beta1);
        v->t.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
        double bc1 = 1 - std::pow(beta1, (double)step), bc2 = 1 - std::pow(beta2, (double)step);
        Tensor denom = (v->t.sqrt() / std::sqrt(bc2)).add_(eps);
        p->t.addcdiv_(m->t, denom, -lr / bc1);
    });
}

}  // extern "C"
