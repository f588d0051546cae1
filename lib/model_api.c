/* Public model calls: queries, forward, log-probabilities, generation, and the
   tokenizer wrappers that take a model. */
#include "model.h"
#include "error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

KNE_API int32_t kne_model_n_vocab(const kne_model *m) { return m ? m->cfg.n_vocab : 0; }
KNE_API int32_t kne_model_n_layers(const kne_model *m) { return m ? m->cfg.n_layer : 0; }
KNE_API int32_t kne_model_n_embd(const kne_model *m) { return m ? m->cfg.n_embd : 0; }
KNE_API int32_t kne_model_n_ctx(const kne_model *m) { return m ? m->cfg.n_ctx : 0; }
KNE_API const char *kne_model_device(const kne_model *m) { return m ? m->device : NULL; }
KNE_API const kne_tokenizer *kne_model_tokenizer(const kne_model *m) { return m ? m->tok : NULL; }

KNE_API const char *kne_model_arch(const kne_model *m)
{
    if (!m) return NULL;
    switch (m->cfg.arch) {
    case KNE_ARCH_LLAMA: return "llama";
    case KNE_ARCH_GPTJ: return "gptj";
    case KNE_ARCH_GPT2: return "gpt2";
    }
    return "unknown";
}

void kne_model_use_threads(const kne_model *m)
{
    if (m->n_threads > 0) kt_thread_limit(m->n_threads);
}

int kne_model_has_module(const kne_model *m, int module)
{
    return module >= 0 && module < KNE_N_MODULES && m->blocks[0].lin[module].w != NULL;
}

kne_status kne_check_ids(const kne_model *m, const int32_t *ids, size_t n_ids)
{
    if (!m) return kne_fail(KNE_ERR_INVALID_ARG, "model is NULL");
    if (n_ids == 0) return kne_fail(KNE_ERR_EMPTY, "no token ids given");
    if (!ids) return kne_fail(KNE_ERR_INVALID_ARG, "ids is NULL");
    if (n_ids > (size_t)m->cfg.n_ctx)
        return kne_fail(KNE_ERR_TOO_LONG, "%zu tokens exceed the model's context of %d", n_ids, m->cfg.n_ctx);
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.n_vocab)
            return kne_fail(KNE_ERR_INVALID_ARG, "token id %d at position %zu is outside the vocabulary [0, %d)",
                            ids[i], i, m->cfg.n_vocab);
    return KNE_OK;
}

/* Runs the model on one sequence under the read lock; *logits [1, T, V] float32 in
   arena a, or [1, 1, V] for the last position only. */
static kne_status run_logits(kne_model *m, kt_arena *a, const int32_t *ids, size_t n, int last_only, kt_tensor **logits)
{
    int prev = kt_grad_mode(0);
    kne_model_use_threads(m);
    int64_t last = (int64_t)n - 1;
    kne_fwd f = {0};
    if (last_only) f.positions = kt_from_data(a, &last, KT_I64, 1, (int64_t[]){1}, m->device, KT_I64);
    pthread_rwlock_rdlock(&m->lock);
    f.ids = kne_ids_tensor(m, a, ids, 1, (int64_t)n);
    f.layer_stop = -1;
    kt_tensor *lg = kne_forward_graph(m, a, &f);
    /* materialise while the lock is held: libtorch runs eagerly, so lg is complete */
    pthread_rwlock_unlock(&m->lock);
    kt_grad_mode(prev);
    *logits = lg;
    return kt_arena_report(a, "forward");
}

KNE_API kne_status kne_model_forward(kne_model *m, const int32_t *ids, size_t n_ids, float *logits_out)
{
    kne_clear_error();
    KNE_TRY(kne_check_ids(m, ids, n_ids));
    if (!logits_out) return kne_fail(KNE_ERR_INVALID_ARG, "kne_model_forward: logits_out is NULL");
    kt_arena *a = kt_arena_new();
    kt_tensor *lg = NULL;
    kne_status s = run_logits(m, a, ids, n_ids, 0, &lg);
    if (s == KNE_OK) s = kt_copy_to_f32(a, lg, logits_out, n_ids * (size_t)m->cfg.n_vocab);
    if (s != KNE_OK) s = kt_arena_report(a, "forward");
    kt_arena_free(a);
    return s;
}

KNE_API kne_status kne_model_token_logprobs(kne_model *m, const int32_t *ids, size_t n_ids, double *out)
{
    kne_clear_error();
    KNE_TRY(kne_check_ids(m, ids, n_ids));
    if (!out) return kne_fail(KNE_ERR_INVALID_ARG, "kne_model_token_logprobs: logprobs_out is NULL");
    if (n_ids < 2) return KNE_OK;
    kt_arena *a = kt_arena_new();
    kt_tensor *lg = NULL;
    kne_status s = run_logits(m, a, ids, n_ids, 0, &lg);
    if (s == KNE_OK) {
        kt_tensor *lp = kt_log_softmax(a, kt_narrow(a, lg, 1, 0, (int64_t)n_ids - 1), -1);
        kt_tensor *next = kt_reshape(a, kne_ids_tensor(m, a, ids + 1, 1, (int64_t)n_ids - 1),
                                     3, (int64_t[]){1, (int64_t)n_ids - 1, 1});
        s = kt_copy_to_f64(a, kt_gather(a, lp, 2, next), out, n_ids - 1);
        if (s != KNE_OK) s = kt_arena_report(a, "token log-probabilities");
    }
    kt_arena_free(a);
    return s;
}

KNE_API kne_generate_params kne_generate_default_params(void)
{
    kne_generate_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.max_tokens = 20;
    p.top_k = 1;
    p.temperature = 1.0f;
    p.stop_at_eos = true;
    return p;
}

/* splitmix64: a small, seedable, thread-local-free generator for sampling */
static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Picks a token from one row of logits: argmax for k = 1, else among the k largest. */
static int32_t pick(const float *row, int32_t V, int32_t k, float temp, uint64_t *rng)
{
    int32_t best = 0;
    for (int32_t i = 1; i < V; i++)
        if (row[i] > row[best]) best = i;
    if (k <= 1) return best;
    if (k > V) k = V;
    int32_t *top = malloc(sizeof(int32_t) * (size_t)k);
    double *w = malloc(sizeof(double) * (size_t)k);
    if (!top || !w) {
        free(top);
        free(w);
        return best;
    }
    int32_t n = 0; /* insertion into a descending list of the k largest */
    for (int32_t i = 0; i < V; i++) {
        if (n == k && row[i] <= row[top[k - 1]]) continue;
        int32_t j = n < k ? n++ : k - 1;
        while (j > 0 && row[top[j - 1]] < row[i]) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = i;
    }
    double sum = 0;
    for (int32_t j = 0; j < k; j++) sum += w[j] = exp((row[top[j]] - row[top[0]]) / (temp > 0 ? temp : 1.0f));
    double r = (double)(next_rand(rng) >> 11) / 9007199254740992.0 * sum;
    int32_t chosen = top[k - 1];
    for (int32_t j = 0; j < k; j++) {
        if (r < w[j]) {
            chosen = top[j];
            break;
        }
        r -= w[j];
    }
    free(top);
    free(w);
    return chosen;
}

KNE_API kne_status kne_model_generate(kne_model *m, const int32_t *prompt, size_t n_prompt,
                                      const kne_generate_params *params, int32_t *out_ids, size_t cap, size_t *n_out)
{
    kne_clear_error();
    KNE_TRY(kne_check_ids(m, prompt, n_prompt));
    kne_generate_params p = kne_generate_default_params();
    if (params) {
        if (params->struct_size < sizeof(uint32_t) || params->struct_size > sizeof p)
            return kne_fail(KNE_ERR_INVALID_ARG, "kne_model_generate: params->struct_size is not a known size");
        memcpy(&p, params, params->struct_size);
    }
    if (!n_out || (!out_ids && cap > 0)) return kne_fail(KNE_ERR_INVALID_ARG, "kne_model_generate: NULL output");
    if (p.max_tokens < 0 || p.top_k < 1 || !(p.temperature > 0))
        return kne_fail(KNE_ERR_INVALID_ARG, "kne_model_generate: max_tokens >= 0, top_k >= 1, temperature > 0");
    *n_out = 0;
    size_t V = (size_t)m->cfg.n_vocab, limit = (size_t)m->cfg.n_ctx;
    size_t n = n_prompt;
    int32_t *seq = malloc(sizeof(int32_t) * (n_prompt + (size_t)p.max_tokens));
    float *lg = malloc(sizeof(float) * V);
    if (!seq || !lg) {
        free(seq);
        free(lg);
        return kne_fail(KNE_ERR_OUT_OF_MEMORY, "kne_model_generate: out of memory");
    }
    memcpy(seq, prompt, sizeof(int32_t) * n_prompt);
    uint64_t rng = p.seed;
    int32_t eos = m->tok ? kne_tokenizer_eos(m->tok) : m->cfg.eos_id;
    kne_status s = KNE_OK;
    /* No KV cache: each step re-runs the prefix. Simple and exact; fine for short
       continuations on the models this library edits. */
    while (s == KNE_OK && n < n_prompt + (size_t)p.max_tokens && n < limit) {
        kt_arena *a = kt_arena_new();
        kt_tensor *all = NULL;
        s = run_logits(m, a, seq, n, 1, &all);
        if (s == KNE_OK) s = kt_copy_to_f32(a, all, lg, V);
        if (s != KNE_OK) s = kt_arena_report(a, "generate");
        kt_arena_free(a);
        if (s != KNE_OK) break;
        int32_t t = pick(lg, (int32_t)V, p.top_k, p.temperature, &rng);
        seq[n++] = t;
        if (p.stop_at_eos && t == eos) break;
    }
    if (s == KNE_OK) {
        size_t made = n - n_prompt;
        *n_out = made;
        memcpy(out_ids, seq + n_prompt, sizeof(int32_t) * (made < cap ? made : cap));
        if (made > cap) s = kne_fail(KNE_ERR_BUFFER_TOO_SMALL, "kne_model_generate: %zu ids made, room for %zu", made, cap);
    }
    free(seq);
    free(lg);
    return s;
}

KNE_API kne_status kne_tokenize(const kne_model *m, const char *text, int add_special, int32_t *ids, size_t cap,
                                size_t *n_out)
{
    if (!m) {
        kne_clear_error();
        return kne_fail(KNE_ERR_INVALID_ARG, "kne_tokenize: model is NULL");
    }
    return kne_tokenizer_encode(m->tok, text, add_special, ids, cap, n_out);
}

KNE_API kne_status kne_detokenize(const kne_model *m, const int32_t *ids, size_t n_ids, char *buf, size_t cap,
                                  size_t *len_out)
{
    if (!m) {
        kne_clear_error();
        return kne_fail(KNE_ERR_INVALID_ARG, "kne_detokenize: model is NULL");
    }
    return kne_tokenizer_decode(m->tok, ids, n_ids, buf, cap, len_out);
}
