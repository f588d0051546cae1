/* The transformer forward pass, composed from shim ops with Hugging Face semantics:
   Llama (RMSNorm, RoPE halves, GQA, gated MLP), GPT-J (parallel attention + MLP,
   partial interleaved rotary), GPT-2 (learned positions, LayerNorm, gelu_new). */
#include "model.h"

#include <math.h>
#include <stdlib.h>

#define SHAPE(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

static kt_tensor *linear(const kne_model *m, kt_arena *a, const kne_fwd *f, int layer, int mod, kt_tensor *x)
{
    const kne_linear *L = &m->blocks[layer].lin[mod];
    kt_tensor *z = kt_linear(a, x, L->w, NULL);
    if (f->hook && z) z = f->hook(f->hook_ctx, a, layer, mod, z, x);
    return L->b ? kt_add(a, z, L->b) : z;
}

static kt_tensor *activation(const kne_model *m, kt_arena *a, kt_tensor *x)
{
    switch (m->cfg.act) {
    case KNE_ACT_SILU: return kt_silu(a, x);
    case KNE_ACT_GELU_TANH: return kt_gelu_tanh(a, x);
    case KNE_ACT_GELU: return kt_gelu(a, x);
    case KNE_ACT_RELU: return kt_relu(a, x);
    }
    return NULL;
}

/* Inverse frequencies of the rotary embedding, with Llama-3 / linear scaling. */
static void rope_inv_freq(const kne_config *c, double *inv, int half)
{
    for (int i = 0; i < half; i++) {
        double f = 1.0 / pow(c->rope_theta, (double)(2 * i) / c->rotary_dim);
        if (c->rope_type == KNE_ROPE_LINEAR) {
            f /= c->rope_factor;
        } else if (c->rope_type == KNE_ROPE_LLAMA3) {
            double low_wl = c->rope_original_max_pos / c->rope_low_freq_factor;
            double high_wl = c->rope_original_max_pos / c->rope_high_freq_factor;
            double wl = 2 * M_PI / f;
            if (wl > low_wl) {
                f /= c->rope_factor;
            } else if (wl >= high_wl) {
                double s = (c->rope_original_max_pos / wl - c->rope_low_freq_factor) /
                           (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (1 - s) * f / c->rope_factor + s * f;
            }
        }
        inv[i] = (float)f; /* Hugging Face computes the frequencies in float32 */
    }
}

/* cos and sin tables [T, rotary_dim/2] in float32, angles t * inv_freq[i]. */
static void rope_tables(const kne_model *m, kt_arena *a, int64_t T, kt_tensor **cos_t, kt_tensor **sin_t)
{
    int half = m->cfg.rotary_dim / 2;
    double *inv = malloc(sizeof(double) * (size_t)half);
    float *cs = malloc(sizeof(float) * (size_t)(T * half) * 2);
    if (!inv || !cs) {
        free(inv);
        free(cs);
        kt_arena_fail(a, KNE_ERR_OUT_OF_MEMORY, "rotary tables: out of memory");
        *cos_t = *sin_t = NULL;
        return;
    }
    rope_inv_freq(&m->cfg, inv, half);
    for (int64_t t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            float ang = (float)t * (float)inv[i]; /* float32 product, as Hugging Face */
            cs[t * half + i] = cosf(ang);
            cs[T * half + t * half + i] = sinf(ang);
        }
    *cos_t = kt_from_data(a, cs, KT_F32, SHAPE(T, half), m->device, KT_F32);
    *sin_t = kt_from_data(a, cs + T * half, KT_F32, SHAPE(T, half), m->device, KT_F32);
    free(inv);
    free(cs);
}

/* Llama: x [B,H,T,D]; out = x cos + rotate_half(x) sin, tables repeated over both halves. */
static kt_tensor *rope_halves(kt_arena *a, kt_tensor *x, kt_tensor *cos2, kt_tensor *sin2, int64_t D)
{
    kt_tensor *x1 = kt_narrow(a, x, -1, 0, D / 2), *x2 = kt_narrow(a, x, -1, D / 2, D / 2);
    kt_tensor *parts[2] = {kt_neg(a, x2), x1};
    kt_tensor *rot = kt_cat(a, parts, 2, -1);
    return kt_add(a, kt_mul(a, x, cos2), kt_mul(a, rot, sin2));
}

/* GPT-J: rotary over the first rd dims with interleaved pairs (rotate_every_two). */
static kt_tensor *rope_interleaved(kt_arena *a, kt_tensor *x, kt_tensor *cosi, kt_tensor *sini, int64_t rd, int64_t D)
{
    kt_tensor *xr = kt_narrow(a, x, -1, 0, rd);
    kt_tensor *even = kt_slice_step(a, xr, -1, 0, 2), *odd = kt_slice_step(a, xr, -1, 1, 2);
    kt_tensor *pair[2] = {kt_neg(a, odd), even};
    kt_tensor *rot = kt_flatten(a, kt_stack(a, pair, 2, -1), -2, -1);
    kt_tensor *y = kt_add(a, kt_mul(a, xr, cosi), kt_mul(a, rot, sini));
    if (rd == D) return y;
    kt_tensor *both[2] = {y, kt_narrow(a, x, -1, rd, D - rd)};
    return kt_cat(a, both, 2, -1);
}

typedef struct rope_ctx {
    kt_tensor *cos, *sin;        /* broadcastable to [B,H,T,rd] in the compute dtype */
} rope_ctx;

static void rope_prepare(const kne_model *m, kt_arena *a, int64_t T, rope_ctx *r)
{
    r->cos = r->sin = NULL;
    if (m->cfg.arch == KNE_ARCH_GPT2) return;
    kt_tensor *c, *s;
    rope_tables(m, a, T, &c, &s);
    if (m->cfg.arch == KNE_ARCH_LLAMA) {
        kt_tensor *cc[2] = {c, c}, *ss[2] = {s, s};
        c = kt_cat(a, cc, 2, -1);
        s = kt_cat(a, ss, 2, -1);
    } else {
        c = kt_repeat_interleave(a, c, 2, -1);
        s = kt_repeat_interleave(a, s, 2, -1);
    }
    r->cos = kt_to(a, c, m->dtype);
    r->sin = kt_to(a, s, m->dtype);
}

static kt_tensor *attention(const kne_model *m, kt_arena *a, const kne_fwd *f, int l, kt_tensor *h,
                            const rope_ctx *r, int64_t B, int64_t T)
{
    const kne_config *c = &m->cfg;
    int64_t H = c->n_head, KV = c->n_kv_head, D = c->head_dim;
    kt_tensor *q = kt_transpose(a, kt_reshape(a, linear(m, a, f, l, KNE_MOD_Q, h), SHAPE(B, T, H, D)), 1, 2);
    kt_tensor *k = kt_transpose(a, kt_reshape(a, linear(m, a, f, l, KNE_MOD_K, h), SHAPE(B, T, KV, D)), 1, 2);
    kt_tensor *v = kt_transpose(a, kt_reshape(a, linear(m, a, f, l, KNE_MOD_V, h), SHAPE(B, T, KV, D)), 1, 2);
    double scale = 1.0 / sqrt((double)D);
    if (c->arch == KNE_ARCH_LLAMA) {
        q = rope_halves(a, q, r->cos, r->sin, D);
        k = rope_halves(a, k, r->cos, r->sin, D);
    } else if (c->arch == KNE_ARCH_GPTJ) {
        q = rope_interleaved(a, q, r->cos, r->sin, c->rotary_dim, D);
        k = rope_interleaved(a, k, r->cos, r->sin, c->rotary_dim, D);
    } else {
        if (!c->scale_attn_weights) scale = 1.0;
        if (c->scale_attn_by_inverse_layer_idx) scale /= (double)(l + 1);
    }
    if (KV != H) {
        k = kt_repeat_interleave(a, k, H / KV, 1);
        v = kt_repeat_interleave(a, v, H / KV, 1);
    }
    kt_tensor *o = kt_causal_attention(a, q, k, v, scale);
    o = kt_reshape(a, kt_transpose(a, o, 1, 2), SHAPE(B, T, H * D));
    return linear(m, a, f, l, KNE_MOD_O, o);
}

static kt_tensor *mlp(const kne_model *m, kt_arena *a, const kne_fwd *f, int l, kt_tensor *h)
{
    kt_tensor *up = linear(m, a, f, l, KNE_MOD_UP, h);
    kt_tensor *g = m->blocks[l].lin[KNE_MOD_GATE].w
                       ? kt_mul(a, activation(m, a, linear(m, a, f, l, KNE_MOD_GATE, h)), up)
                       : activation(m, a, up);
    return linear(m, a, f, l, KNE_MOD_DOWN, g);
}

static kt_tensor *norm(const kne_model *m, kt_arena *a, kt_tensor *x, kt_tensor *w, kt_tensor *b)
{
    return m->cfg.arch == KNE_ARCH_LLAMA ? kt_rms_norm(a, x, w, m->cfg.eps) : kt_layer_norm(a, x, w, b, m->cfg.eps);
}

static kt_tensor *block(const kne_model *m, kt_arena *a, const kne_fwd *f, int l, kt_tensor *x,
                        const rope_ctx *r, int64_t B, int64_t T)
{
    const kne_block *bk = &m->blocks[l];
    kt_tensor *h = norm(m, a, x, bk->ln1_w, bk->ln1_b);
    if (m->cfg.arch == KNE_ARCH_GPTJ) /* parallel attention and MLP from one LayerNorm */
        return kt_add(a, kt_add(a, x, attention(m, a, f, l, h, r, B, T)), mlp(m, a, f, l, h));
    x = kt_add(a, x, attention(m, a, f, l, h, r, B, T));
    h = norm(m, a, x, bk->ln2_w, bk->ln2_b);
    return kt_add(a, x, mlp(m, a, f, l, h));
}

kt_tensor *kne_forward_graph(const kne_model *m, kt_arena *a, const kne_fwd *f)
{
    int64_t B = kt_size(f->ids, 0), T = kt_size(f->ids, 1);
    kt_tensor *x = f->x_in;
    if (!x) {
        x = kt_embedding(a, m->wte, f->ids);
        if (m->wpe) x = kt_add(a, x, kt_narrow(a, m->wpe, 0, 0, T));
    }
    rope_ctx r;
    rope_prepare(m, a, T, &r);
    for (int l = f->layer_begin; l < m->cfg.n_layer; l++) {
        if (l == f->layer_stop) return x;
        if (f->residuals) f->residuals[l] = x;
        x = block(m, a, f, l, x, &r, B, T);
    }
    if (f->positions) x = kt_index_select(a, x, 1, f->positions);
    x = norm(m, a, x, m->lnf_w, m->lnf_b);
    return kt_to(a, kt_linear(a, x, m->head.w, m->head.b), KT_F32);
}

kt_tensor *kne_ids_tensor(const kne_model *m, kt_arena *a, const int32_t *ids, int64_t rows, int64_t cols)
{
    return kt_from_i32(a, ids, SHAPE(rows, cols), m->device);
}
