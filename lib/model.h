/* The loaded model: weights as shim tensors, composed into a transformer in C
   (forward.c), so attribution and editing can hook any linear layer. */
#ifndef KNE_MODEL_H
#define KNE_MODEL_H
#include <pthread.h>
#include "kne.h"
#include "config.h"
#include "kne_shim.h"

/* Module index = bit position of KNE_MODULE_*: q, k, v, o, gate, up, down. */
enum { KNE_MOD_Q, KNE_MOD_K, KNE_MOD_V, KNE_MOD_O, KNE_MOD_GATE, KNE_MOD_UP, KNE_MOD_DOWN };

typedef struct kne_linear {
    kt_tensor *w;                /* [n_out, n_in] in the compute dtype (GPT-2 Conv1D transposed at load) */
    kt_tensor *b;                /* [n_out] or NULL */
    int64_t n_out, n_in;
} kne_linear;

typedef struct kne_block {
    kt_tensor *ln1_w, *ln1_b, *ln2_w, *ln2_b; /* biases NULL for RMSNorm; ln2 NULL for GPT-J */
    kne_linear lin[KNE_N_MODULES];            /* w NULL where the architecture has no such module */
} kne_block;

struct kne_model {
    kne_config cfg;
    char *dir;
    char device[32];
    int dtype;                   /* compute dtype, KNE_DTYPE_F32/F16/BF16 */
    int src_dtype;               /* dtype found in the checkpoint's weights */
    kt_arena *weights;
    kt_tensor *wte, *wpe, *lnf_w, *lnf_b;
    kne_linear head;
    kne_block *blocks;
    kne_tokenizer *tok;
    uint64_t fingerprint;        /* identifies the checkpoint (ensembles check it) */
    int n_threads;               /* CPU threads per call, 0 = libtorch's default */
    pthread_rwlock_t lock;       /* readers: forward; writer: an edit's row write */
};

/* Called for each hooked linear with z = x W^T (before the bias). Returns the tensor
   to use in its place (z itself to leave it). */
typedef kt_tensor *(*kne_linear_hook)(void *ctx, kt_arena *a, int layer, int module, kt_tensor *z, kt_tensor *x);

typedef struct kne_fwd {
    kt_tensor *ids;              /* [B, T] int64 */
    int layer_begin;             /* first layer to run (x_in then holds its input) */
    kt_tensor *x_in;             /* residual stream entering layer_begin, [B, T, E]; NULL: embeddings */
    int layer_stop;              /* >= 0: stop before this layer and return the residual stream */
    kt_tensor *positions;        /* optional int64 [P]: logits only at these positions */
    kt_tensor **residuals;       /* optional [n_layer]: receives the stream entering each layer run */
    kne_linear_hook hook;        /* optional */
    void *hook_ctx;
} kne_fwd;

/* Builds the forward graph in arena a: logits [B, T or P, V] (float32), or the residual
   stream when layer_stop >= 0. NULL with the arena's error set on failure. The caller
   holds model->lock for reading. */
kt_tensor *kne_forward_graph(const kne_model *m, kt_arena *a, const kne_fwd *f);

/* Host int32 ids -> [rows, cols] int64 tensor on the model's device. */
kt_tensor *kne_ids_tensor(const kne_model *m, kt_arena *a, const int32_t *ids, int64_t rows, int64_t cols);
/* Checks ids against the vocabulary and context (KNE_ERR_INVALID_ARG, KNE_ERR_EMPTY, KNE_ERR_TOO_LONG). */
kne_status kne_check_ids(const kne_model *m, const int32_t *ids, size_t n_ids);
/* Applies the model's thread count to the calling thread (OpenMP settings are per thread). */
void kne_model_use_threads(const kne_model *m);
/* Does the architecture have this module index? */
int kne_model_has_module(const kne_model *m, int module);
#endif
