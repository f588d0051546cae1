/* config.json parsing for Llama-family, GPT-J and GPT-2 checkpoints. */
#include "config.h"
#include "error.h"
#include "json_util.h"

#include <stdio.h>
#include <string.h>

static kne_status need_int(const json_object *o, const char *key, const char *path, int *out)
{
    int64_t v;
    if (!kne_json_int(o, key, &v))
        return kne_fail(KNE_ERR_FORMAT, "%s: missing or non-integer \"%s\"", path, key);
    if (v <= 0 || v > (1 << 24))
        return kne_fail(KNE_ERR_FORMAT, "%s: \"%s\" = %lld is out of range", path, key, (long long)v);
    *out = (int)v;
    return KNE_OK;
}

static int opt_int(const json_object *o, const char *key, int dflt)
{
    int64_t v;
    return kne_json_int(o, key, &v) ? (int)v : dflt;
}

static int opt_bool(const json_object *o, const char *key, int dflt)
{
    int v;
    return kne_json_bool(o, key, &v) ? v : dflt;
}

static int parse_dtype(const json_object *o)
{
    const char *d = kne_json_str(o, "dtype");
    if (!d) d = kne_json_str(o, "torch_dtype");
    if (!d) return 0;
    if (!strcmp(d, "float32")) return KNE_DTYPE_F32;
    if (!strcmp(d, "float16")) return KNE_DTYPE_F16;
    if (!strcmp(d, "bfloat16")) return KNE_DTYPE_BF16;
    return 0;
}

static kne_status parse_act(kne_config *c, const char *name, const char *path)
{
    if (!strcmp(name, "silu") || !strcmp(name, "swish")) c->act = KNE_ACT_SILU;
    else if (!strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh") || !strcmp(name, "gelu_fast"))
        c->act = KNE_ACT_GELU_TANH;
    else if (!strcmp(name, "gelu")) c->act = KNE_ACT_GELU;
    else if (!strcmp(name, "relu")) c->act = KNE_ACT_RELU;
    else return kne_fail(KNE_ERR_UNSUPPORTED, "%s: activation \"%s\" is not supported", path, name);
    return KNE_OK;
}

/* rope_scaling (transformers 4) or rope_parameters (transformers 5) */
static kne_status parse_rope(kne_config *c, const json_object *o, const char *path)
{
    c->rope_theta = 10000.0;
    kne_json_double(o, "rope_theta", &c->rope_theta);
    json_object *rp = kne_json_get(o, "rope_parameters");
    json_object *rs = kne_json_get(o, "rope_scaling");
    if (rp) kne_json_double(rp, "rope_theta", &c->rope_theta);
    const json_object *spec = rs ? rs : rp;
    c->rope_type = KNE_ROPE_DEFAULT;
    if (!spec) return KNE_OK;
    const char *type = kne_json_str(spec, "rope_type");
    if (!type) type = kne_json_str(spec, "type");
    if (!type || !strcmp(type, "default")) return KNE_OK;
    /* the type first: an unsupported one (e.g. longrope) need not have a "factor" */
    if (strcmp(type, "linear") && strcmp(type, "llama3"))
        return kne_fail(KNE_ERR_UNSUPPORTED, "%s: rope scaling type \"%s\" is not supported "
                        "(supported: default, linear, llama3)", path, type);
    if (!kne_json_double(spec, "factor", &c->rope_factor) || c->rope_factor <= 0)
        return kne_fail(KNE_ERR_FORMAT, "%s: rope scaling \"%s\" needs a positive \"factor\"", path, type);
    if (!strcmp(type, "linear")) {
        c->rope_type = KNE_ROPE_LINEAR;
        return KNE_OK;
    }
    if (!strcmp(type, "llama3")) {
        c->rope_type = KNE_ROPE_LLAMA3;
        int64_t omp = 0;
        if (!kne_json_double(spec, "low_freq_factor", &c->rope_low_freq_factor) ||
            !kne_json_double(spec, "high_freq_factor", &c->rope_high_freq_factor) ||
            !kne_json_int(spec, "original_max_position_embeddings", &omp) || omp <= 0 ||
            c->rope_high_freq_factor <= c->rope_low_freq_factor)
            return kne_fail(KNE_ERR_FORMAT, "%s: llama3 rope scaling needs low_freq_factor < high_freq_factor "
                            "and original_max_position_embeddings", path);
        c->rope_original_max_pos = (int)omp;
    }
    return KNE_OK;
}

static kne_status parse_llama(kne_config *c, const json_object *o, const char *path)
{
    c->arch = KNE_ARCH_LLAMA;
    KNE_TRY(need_int(o, "hidden_size", path, &c->n_embd));
    KNE_TRY(need_int(o, "num_hidden_layers", path, &c->n_layer));
    KNE_TRY(need_int(o, "num_attention_heads", path, &c->n_head));
    KNE_TRY(need_int(o, "intermediate_size", path, &c->n_ff));
    c->n_kv_head = opt_int(o, "num_key_value_heads", c->n_head);
    c->head_dim = opt_int(o, "head_dim", 0);
    if (c->head_dim <= 0) c->head_dim = c->n_embd / c->n_head;
    c->rotary_dim = c->head_dim;
    c->n_ctx = opt_int(o, "max_position_embeddings", 2048);
    c->eps = 1e-6;
    kne_json_double(o, "rms_norm_eps", &c->eps);
    const char *act = kne_json_str(o, "hidden_act");
    KNE_TRY(parse_act(c, act ? act : "silu", path));
    c->tie_embeddings = opt_bool(o, "tie_word_embeddings", 0);
    c->attn_bias = opt_bool(o, "attention_bias", 0);
    c->attn_o_bias = c->attn_bias;
    c->mlp_bias = opt_bool(o, "mlp_bias", 0);
    int64_t sw;
    if (kne_json_int(o, "sliding_window", &sw) && sw > 0 && sw < c->n_ctx)
        return kne_fail(KNE_ERR_UNSUPPORTED, "%s: sliding-window attention (sliding_window = %lld) is not supported",
                        path, (long long)sw);
    if (c->n_head % c->n_kv_head != 0)
        return kne_fail(KNE_ERR_FORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                        path, c->n_head, c->n_kv_head);
    return parse_rope(c, o, path);
}

static kne_status parse_gpt_common(kne_config *c, const json_object *o, const char *path)
{
    KNE_TRY(need_int(o, "n_embd", path, &c->n_embd));
    KNE_TRY(need_int(o, "n_layer", path, &c->n_layer));
    KNE_TRY(need_int(o, "n_head", path, &c->n_head));
    c->n_kv_head = c->n_head;
    c->head_dim = c->n_embd / c->n_head;
    c->n_ff = opt_int(o, "n_inner", 0);
    if (c->n_ff <= 0) c->n_ff = 4 * c->n_embd;
    c->n_ctx = opt_int(o, "n_positions", 1024);
    c->eps = 1e-5;
    kne_json_double(o, "layer_norm_epsilon", &c->eps);
    const char *act = kne_json_str(o, "activation_function");
    return parse_act(c, act ? act : "gelu_new", path);
}

kne_status kne_config_load(kne_config *cfg, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_object *o = NULL;
    KNE_TRY(kne_json_read_file(&o, path));
    kne_config c;
    memset(&c, 0, sizeof c);
    kne_status s = KNE_OK;
    if (!json_object_is_type(o, json_type_object)) {
        s = kne_fail(KNE_ERR_FORMAT, "%s: not a JSON object", path);
        goto done;
    }
    json_object *archs = kne_json_get(o, "architectures");
    const char *arch = archs && json_object_is_type(archs, json_type_array) && json_object_array_length(archs) > 0
                           ? json_object_get_string(json_object_array_get_idx(archs, 0)) : NULL;
    const char *mt = kne_json_str(o, "model_type");
    if (!arch && mt) {
        if (!strcmp(mt, "llama")) arch = "LlamaForCausalLM";
        else if (!strcmp(mt, "gptj")) arch = "GPTJForCausalLM";
        else if (!strcmp(mt, "gpt2")) arch = "GPT2LMHeadModel";
        else if (!strcmp(mt, "mistral")) arch = "MistralForCausalLM";
    }
    if (!arch) {
        s = kne_fail(KNE_ERR_FORMAT, "%s: neither \"architectures\" nor a known \"model_type\"", path);
        goto done;
    }
    snprintf(c.arch_name, sizeof c.arch_name, "%s", arch);
    c.bos_id = opt_int(o, "bos_token_id", -1);
    c.eos_id = opt_int(o, "eos_token_id", -1);
    c.dtype = parse_dtype(o);
    if (!strcmp(arch, "LlamaForCausalLM") || !strcmp(arch, "MistralForCausalLM")) {
        s = parse_llama(&c, o, path);
    } else if (!strcmp(arch, "GPTJForCausalLM")) {
        c.arch = KNE_ARCH_GPTJ;
        s = parse_gpt_common(&c, o, path);
        c.rotary_dim = opt_int(o, "rotary_dim", c.head_dim);
        c.rope_theta = 10000.0;
        c.mlp_bias = 1;
        c.tie_embeddings = opt_bool(o, "tie_word_embeddings", 0);
        if (s == KNE_OK && (c.rotary_dim <= 0 || c.rotary_dim > c.head_dim || c.rotary_dim % 2))
            s = kne_fail(KNE_ERR_FORMAT, "%s: rotary_dim %d must be even and at most head_dim %d", path, c.rotary_dim, c.head_dim);
    } else if (!strcmp(arch, "GPT2LMHeadModel")) {
        c.arch = KNE_ARCH_GPT2;
        s = parse_gpt_common(&c, o, path);
        c.attn_bias = c.attn_o_bias = c.mlp_bias = 1;
        c.tie_embeddings = opt_bool(o, "tie_word_embeddings", 1);
        c.scale_attn_weights = opt_bool(o, "scale_attn_weights", 1);
        c.scale_attn_by_inverse_layer_idx = opt_bool(o, "scale_attn_by_inverse_layer_idx", 0);
    } else {
        s = kne_fail(KNE_ERR_UNSUPPORTED, "%s: architecture \"%s\" is not supported "
                     "(supported: LlamaForCausalLM, MistralForCausalLM without sliding window, GPTJForCausalLM, GPT2LMHeadModel)",
                     path, arch);
    }
    if (s != KNE_OK) goto done;
    s = need_int(o, "vocab_size", path, &c.n_vocab);
    if (s == KNE_OK && c.n_embd % c.n_head != 0 && c.arch != KNE_ARCH_LLAMA)
        s = kne_fail(KNE_ERR_FORMAT, "%s: n_embd %d is not a multiple of n_head %d", path, c.n_embd, c.n_head);
    if (s == KNE_OK) *cfg = c;
done:
    json_object_put(o);
    return s;
}
