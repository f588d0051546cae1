/* config.json -> kne_config: the architecture hyper-parameters, in both the
   transformers 4 and 5 spellings. */
#ifndef KNE_CONFIG_H
#define KNE_CONFIG_H
#include "kne.h"

typedef enum kne_arch { KNE_ARCH_LLAMA = 1, KNE_ARCH_GPTJ = 2, KNE_ARCH_GPT2 = 3 } kne_arch;
typedef enum kne_act { KNE_ACT_SILU = 1, KNE_ACT_GELU_TANH = 2, KNE_ACT_GELU = 3, KNE_ACT_RELU = 4 } kne_act;
typedef enum kne_rope { KNE_ROPE_DEFAULT = 0, KNE_ROPE_LINEAR = 1, KNE_ROPE_LLAMA3 = 2 } kne_rope;

typedef struct kne_config {
    kne_arch arch;
    char arch_name[64];          /* architectures[0] as written */
    int n_vocab, n_embd, n_layer, n_head, n_kv_head, head_dim, n_ff, n_ctx;
    double eps;
    kne_act act;
    /* rotary (Llama: over head_dim, halves; GPT-J: over rotary_dim, interleaved pairs) */
    int rotary_dim;
    double rope_theta;
    kne_rope rope_type;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos;
    int tie_embeddings;
    int attn_bias, attn_o_bias, mlp_bias;
    int scale_attn_weights, scale_attn_by_inverse_layer_idx;
    int dtype;                   /* KNE_DTYPE_* of the checkpoint (config dtype/torch_dtype); 0 unknown */
    int bos_id, eos_id;          /* -1 when absent */
} kne_config;

/* Parses dir/config.json. KNE_ERR_NOT_FOUND, KNE_ERR_FORMAT (invalid JSON, a missing or
   non-positive size), KNE_ERR_UNSUPPORTED (architecture, activation, rope scaling). */
kne_status kne_config_load(kne_config *cfg, const char *dir);
#endif
