// Tensor ops: shape, arithmetic, neural-net pieces. Each is one libtorch call (or a few)
// behind the arena's exception guard.
#include "shim_internal.hpp"

#include <cmath>

using at::Tensor;

extern "C" {

#define UNARY(name, expr)                                   \
    kt_tensor *name(kt_arena *a, const kt_tensor *x)        \
    {                                                       \
        KT_GUARD_INPUTS(a, x);                              \
        const Tensor &X = x->t;                             \
        KT_TENSOR_OP(a, expr);                              \
    }
#define BINARY(name, expr)                                                \
    kt_tensor *name(kt_arena *a, const kt_tensor *x, const kt_tensor *y)  \
    {                                                                     \
        KT_GUARD_INPUTS(a, x, y);                                         \
        const Tensor &X = x->t, &Y = y->t;                                \
        KT_TENSOR_OP(a, expr);                                            \
    }

kt_tensor *kt_reshape(kt_arena *a, const kt_tensor *t, int ndim, const int64_t *shape)
{
    KT_GUARD_INPUTS(a, t, shape);
    KT_TENSOR_OP(a, t->t.reshape(at::IntArrayRef(shape, ndim)));
}
kt_tensor *kt_transpose(kt_arena *a, const kt_tensor *t, int d0, int d1)
{
    KT_GUARD_INPUTS(a, t);
    KT_TENSOR_OP(a, t->t.transpose(d0, d1));
}
kt_tensor *kt_narrow(kt_arena *a, const kt_tensor *t, int dim, int64_t start, int64_t len)
{
    KT_GUARD_INPUTS(a, t);
    KT_TENSOR_OP(a, t->t.narrow(dim, start, len));
}
static std::vector<Tensor> unwrap(kt_tensor *const *ts, int n)
{
    std::vector<Tensor> v;
    for (int i = 0; i < n; i++) {
        if (!ts[i]) throw std::invalid_argument("NULL tensor in a list");
        v.push_back(ts[i]->t);
    }
    return v;
}
kt_tensor *kt_cat(kt_arena *a, kt_tensor *const *ts, int n, int dim)
{
    KT_GUARD_INPUTS(a, ts);
    KT_TENSOR_OP(a, at::cat(unwrap(ts, n), dim));
}
kt_tensor *kt_stack(kt_arena *a, kt_tensor *const *ts, int n, int dim)
{
    KT_GUARD_INPUTS(a, ts);
    KT_TENSOR_OP(a, at::stack(unwrap(ts, n), dim));
}
kt_tensor *kt_expand(kt_arena *a, const kt_tensor *t, int ndim, const int64_t *shape)
{
    KT_GUARD_INPUTS(a, t, shape);
    KT_TENSOR_OP(a, t->t.expand(at::IntArrayRef(shape, ndim)));
}
kt_tensor *kt_repeat_interleave(kt_arena *a, const kt_tensor *t, int64_t repeats, int dim)
{
    KT_GUARD_INPUTS(a, t);
    KT_TENSOR_OP(a, t->t.repeat_interleave(repeats, dim));
}
kt_tensor *kt_flatten(kt_arena *a, const kt_tensor *t, int start_dim, int end_dim)
{
    KT_GUARD_INPUTS(a, t);
    KT_TENSOR_OP(a, t->t.flatten(start_dim, end_dim));
}
kt_tensor *kt_slice_step(kt_arena *a, const kt_tensor *t, int dim, int64_t start, int64_t step)
{
    KT_GUARD_INPUTS(a, t);
    KT_TENSOR_OP(a, t->t.slice(dim, start, c10::nullopt, step));
}

BINARY(kt_add, X + Y)
BINARY(kt_sub, X - Y)
BINARY(kt_mul, X * Y)
BINARY(kt_div, X / Y)
BINARY(kt_matmul, at::matmul(X, Y))
BINARY(kt_outer, at::outer(X, Y))
UNARY(kt_neg, -X)
UNARY(kt_exp, X.exp())
UNARY(kt_log, X.log())
UNARY(kt_cos, X.cos())
UNARY(kt_sin, X.sin())
UNARY(kt_sqrt, X.sqrt())
UNARY(kt_silu, at::silu(X))
UNARY(kt_gelu, at::gelu(X))
UNARY(kt_relu, at::relu(X))
UNARY(kt_sum, X.sum())
UNARY(kt_mean, X.mean())

kt_tensor *kt_scale(kt_arena *a, const kt_tensor *x, double s)
{
    KT_GUARD_INPUTS(a, x);
    KT_TENSOR_OP(a, x->t * s);
}
kt_tensor *kt_add_scalar(kt_arena *a, const kt_tensor *x, double s)
{
    KT_GUARD_INPUTS(a, x);
    KT_TENSOR_OP(a, x->t + s);
}

kt_tensor *kt_linear(kt_arena *a, const kt_tensor *x, const kt_tensor *w, const kt_tensor *b)
{
    KT_GUARD_INPUTS(a, x, w);
    KT_TENSOR_OP(a, b ? at::linear(x->t, w->t, b->t) : at::linear(x->t, w->t));
}

kt_tensor *kt_rms_norm(kt_arena *a, const kt_tensor *x, const kt_tensor *w, double eps)
{
    KT_GUARD_INPUTS(a, x, w);
    // Hugging Face LlamaRMSNorm: normalise in float32, cast back, then scale.
    KT_TENSOR_OP(a, ([&] {
        Tensor h = x->t.to(at::kFloat);
        h = h * at::rsqrt(h.pow(2).mean(-1, true) + eps);
        return w->t * h.to(x->t.scalar_type());
    }()));
}

kt_tensor *kt_layer_norm(kt_arena *a, const kt_tensor *x, const kt_tensor *w, const kt_tensor *b, double eps)
{
    KT_GUARD_INPUTS(a, x, w, b);
    KT_TENSOR_OP(a, at::layer_norm(x->t, {x->t.size(-1)}, w->t, b->t, eps));
}

kt_tensor *kt_gelu_tanh(kt_arena *a, const kt_tensor *x)
{
    KT_GUARD_INPUTS(a, x);
    // gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    KT_TENSOR_OP(a, ([&] {
        const Tensor &X = x->t;
        return 0.5 * X * (1.0 + at::tanh(std::sqrt(2.0 / M_PI) * (X + 0.044715 * at::pow(X, 3.0))));
    }()));
}

kt_tensor *kt_softmax(kt_arena *a, const kt_tensor *x, int dim)
{
    KT_GUARD_INPUTS(a, x);
    KT_TENSOR_OP(a, at::softmax(x->t, dim));
}
kt_tensor *kt_log_softmax(kt_arena *a, const kt_tensor *x, int dim)
{
    KT_GUARD_INPUTS(a, x);
    KT_TENSOR_OP(a, at::log_softmax(x->t, dim));
}

kt_tensor *kt_causal_attention(kt_arena *a, const kt_tensor *q, const kt_tensor *k, const kt_tensor *v, double scale)
{
    KT_GUARD_INPUTS(a, q, k, v);
    KT_TENSOR_OP(a, ([&] {
        int64_t T = q->t.size(-2), S = k->t.size(-2);
        Tensor scores = at::matmul(q->t.to(at::kFloat), k->t.to(at::kFloat).transpose(-1, -2)) * scale;
        Tensor mask = at::ones({T, S}, scores.options().dtype(at::kBool)).triu(S - T + 1);
        scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
        Tensor p = at::softmax(scores, -1).to(v->t.scalar_type());
        return at::matmul(p, v->t);
    }()));
}

kt_tensor *kt_embedding(kt_arena *a, const kt_tensor *weight, const kt_tensor *ids)
{
    KT_GUARD_INPUTS(a, weight, ids);
    KT_TENSOR_OP(a, at::embedding(weight->t, ids->t));
}
kt_tensor *kt_index_select(kt_arena *a, const kt_tensor *x, int dim, const kt_tensor *idx)
{
    KT_GUARD_INPUTS(a, x, idx);
    KT_TENSOR_OP(a, x->t.index_select(dim, idx->t));
}
kt_tensor *kt_index_add(kt_arena *a, const kt_tensor *x, int dim, const kt_tensor *idx, const kt_tensor *src)
{
    KT_GUARD_INPUTS(a, x, idx, src);
    KT_TENSOR_OP(a, x->t.index_add(dim, idx->t, src->t));
}
kt_tensor *kt_gather(kt_arena *a, const kt_tensor *x, int dim, const kt_tensor *idx)
{
    KT_GUARD_INPUTS(a, x, idx);
    KT_TENSOR_OP(a, x->t.gather(dim, idx->t));
}
kt_tensor *kt_sum_dim(kt_arena *a, const kt_tensor *x, int dim, int keepdim)
{
    KT_GUARD_INPUTS(a, x);
    KT_TENSOR_OP(a, x->t.sum(dim, keepdim != 0));
}
kt_tensor *kt_max_dim(kt_arena *a, const kt_tensor *x, int dim)
{
    KT_GUARD_INPUTS(a, x);
    KT_TENSOR_OP(a, std::get<0>(x->t.max(dim)));
}
kt_tensor *kt_argmax(kt_arena *a, const kt_tensor *x, int dim)
{
    KT_GUARD_INPUTS(a, x);
    KT_TENSOR_OP(a, x->t.argmax(dim));
}
kt_tensor *kt_topk_values(kt_arena *a, const kt_tensor *x, int64_t k)
{
    KT_GUARD_INPUTS(a, x);
    KT_TENSOR_OP(a, std::get<0>(x->t.reshape({-1}).topk(k)));
}
kt_tensor *kt_kl_logits(kt_arena *a, const kt_tensor *logp, const kt_tensor *logp_ref)
{
    KT_GUARD_INPUTS(a, logp, logp_ref);
    // sum p_ref (log p_ref - log p)
    KT_TENSOR_OP(a, (logp_ref->t.exp() * (logp_ref->t - logp->t)).sum());
}
int kt_all_finite(kt_arena *a, const kt_tensor *x)
{
    if (!a || a->status != KNE_OK || !x) return 0;
    try {
        return at::isfinite(x->t).all().item<bool>() ? 1 : 0;
    } catch (...) {
        kt::record_current_exception(a);
        return 0;
    }
}

kt_tensor *kt_row_basis(kt_arena *a, const kt_tensor *K, double rel_tol)
{
    KT_GUARD_INPUTS(a, K);
    KT_TENSOR_OP(a, ([&] {
        Tensor k = K->t.to(at::kFloat);
        auto svd = at::linalg_svd(k, false);
        Tensor S = std::get<1>(svd), Vh = std::get<2>(svd);
        int64_t r = S.numel() ? (S > S[0] * rel_tol).sum().item<int64_t>() : 0;
        return Vh.narrow(0, 0, r).t().contiguous();
    }()));
}

}  // extern "C"
