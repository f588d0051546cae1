/*
 * libkne: edit facts inside large language models in place, by the
 * Knowledge Neuronal Ensemble (KNE) method.
 *
 * Pure C99 public header; also compiles as C++.
 *
 * Conventions (see docs/api.md):
 *  - Every fallible call returns a kne_status; KNE_OK (0) on success, a negative
 *    value otherwise. On failure kne_last_error() gives a message for the calling
 *    thread, and output parameters are left untouched (or set to NULL for handles).
 *  - Outputs come first. Handles are opaque. Every *_free is NULL-safe.
 *  - Parameter structs are obtained from kne_*_default_params() and carry their
 *    struct_size first, so fields can be appended without breaking callers.
 *  - Ownership is stated in each comment: "borrowed" pointers stay owned by the
 *    library (or the caller) and must not be freed by the other side.
 *  - Threads: see each function; the full contract is in docs/threads.md.
 */
#ifndef KNE_H
#define KNE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(KNE_BUILDING)
#define KNE_API __declspec(dllexport)
#elif defined(_WIN32)
#define KNE_API __declspec(dllimport)
#elif defined(__GNUC__)
#define KNE_API __attribute__((visibility("default")))
#else
#define KNE_API
#endif

#define KNE_VERSION_MAJOR 0
#define KNE_VERSION_MINOR 1
#define KNE_VERSION_PATCH 0
#define KNE_VERSION_STRING "0.1.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH */
#define KNE_VERSION_NUMBER (KNE_VERSION_MAJOR * 10000 + KNE_VERSION_MINOR * 100 + KNE_VERSION_PATCH)

/* The library's version at run time, e.g. "0.1.0". Static string; thread-safe. */
KNE_API const char *kne_version(void);
/* KNE_VERSION_NUMBER of the library at run time. Thread-safe. */
KNE_API uint32_t kne_version_number(void);

/* ------------------------------------------------------------------ status */

/* Return codes. Append-only: values never change meaning. */
typedef enum kne_status {
    KNE_OK = 0,
    KNE_ERR_INVALID_ARG = -1,      /* NULL where a value is needed, out-of-range parameter */
    KNE_ERR_NOT_FOUND = -2,        /* a file or directory does not exist */
    KNE_ERR_IO = -3,               /* a file exists but cannot be read or written */
    KNE_ERR_FORMAT = -4,           /* malformed file: bad JSON, truncated or inconsistent safetensors */
    KNE_ERR_DTYPE = -5,            /* a tensor dtype the library does not read */
    KNE_ERR_MISSING_TENSOR = -6,   /* the architecture needs a tensor the checkpoint lacks */
    KNE_ERR_SHAPE = -7,            /* a tensor's shape differs from what config.json implies */
    KNE_ERR_UNSUPPORTED = -8,      /* architecture, rope scaling or tokenizer component not implemented */
    KNE_ERR_DEVICE = -9,           /* the requested device is unavailable (e.g. CUDA in a CPU-only build) */
    KNE_ERR_BACKEND = -10,         /* the tensor backend (libtorch) failed */
    KNE_ERR_OUT_OF_MEMORY = -11,
    KNE_ERR_CANCELLED = -12,       /* a progress callback returned false */
    KNE_ERR_BUFFER_TOO_SMALL = -13,/* the caller's buffer holds fewer items than needed; *n_out says how many */
    KNE_ERR_TOO_LONG = -14,        /* the input is longer than the model's context */
    KNE_ERR_ENCODING = -15,        /* text is not valid UTF-8 */
    KNE_ERR_NUMERIC = -16,         /* NaN or infinity appeared (loss, scores) */
    KNE_ERR_MISMATCH = -17,        /* an object belongs to another model (ensemble, editor) */
    KNE_ERR_STATE = -18,           /* the call is not valid now (e.g. revert with nothing applied) */
    KNE_ERR_EMPTY = -19            /* an empty prompt, target or fact list */
} kne_status;

/* Short English name of a status, e.g. "invalid argument". Static; thread-safe. */
KNE_API const char *kne_status_str(kne_status s);
/* The message of the last failure on the calling thread; "" if none. Never NULL.
   Borrowed: valid until the next libkne call on this thread. */
KNE_API const char *kne_last_error(void);

/* Progress callback: fraction in [0, 1]. Return false to cancel the operation, which
   then returns KNE_ERR_CANCELLED and leaves everything as it was before the call. */
typedef bool (*kne_progress_fn)(float fraction, void *user_data);

/* ------------------------------------------------------------------- model */

typedef struct kne_model kne_model;
typedef struct kne_tokenizer kne_tokenizer;
typedef struct kne_ensemble kne_ensemble;
typedef struct kne_editor kne_editor;

enum {
    KNE_DTYPE_AUTO = 0, /* CPU: float32; CUDA: the checkpoint's dtype */
    KNE_DTYPE_F32 = 1,
    KNE_DTYPE_F16 = 2,
    KNE_DTYPE_BF16 = 3
};

typedef struct kne_model_params {
    uint32_t struct_size;          /* set by kne_model_default_params */
    const char *device;            /* "cpu" (default), "cuda", "cuda:N"; borrowed during the call */
    int32_t dtype;                 /* compute dtype: KNE_DTYPE_* */
    int32_t n_threads;             /* CPU threads of each call on this model (OpenMP, per calling thread),
                                      0 = libtorch's default; also sets OpenBLAS's process-wide pool
                                      (0: one thread unless OPENBLAS_NUM_THREADS is set) */
    kne_progress_fn progress;      /* optional: called per loaded tensor; may cancel */
    void *progress_user_data;
} kne_model_params;

/* Defaults: device "cpu", KNE_DTYPE_AUTO, n_threads 0, no progress. Thread-safe. */
KNE_API kne_model_params kne_model_default_params(void);

/* Loads a Hugging Face checkpoint directory (config.json, *.safetensors or a
   model.safetensors.index.json, tokenizer.json or vocab.json + merges.txt).
   On success *out is a new model owned by the caller (free with kne_model_free).
   params may be NULL (defaults). Thread-safe (distinct models).
   Returns KNE_OK, KNE_ERR_INVALID_ARG, KNE_ERR_NOT_FOUND, KNE_ERR_IO, KNE_ERR_FORMAT,
   KNE_ERR_DTYPE, KNE_ERR_MISSING_TENSOR, KNE_ERR_SHAPE, KNE_ERR_UNSUPPORTED,
   KNE_ERR_DEVICE, KNE_ERR_BACKEND, KNE_ERR_OUT_OF_MEMORY, KNE_ERR_CANCELLED. */
KNE_API kne_status kne_model_load(kne_model **out, const char *dir, const kne_model_params *params);
/* Frees the model and its tokenizer. NULL-safe. Editors and ensembles made from it
   must be freed first. Not thread-safe with any other use of the model. */
KNE_API void kne_model_free(kne_model *model);

/* Shape queries; 0 (or NULL) for a NULL model. Thread-safe (read-only). */
KNE_API int32_t kne_model_n_vocab(const kne_model *model);
KNE_API int32_t kne_model_n_layers(const kne_model *model);
KNE_API int32_t kne_model_n_embd(const kne_model *model);
KNE_API int32_t kne_model_n_ctx(const kne_model *model);     /* max positions */
/* "llama", "gptj" or "gpt2". Borrowed static string. */
KNE_API const char *kne_model_arch(const kne_model *model);
/* Device string of the weights, e.g. "cpu", "cuda:0". Borrowed, valid while the model lives. */
KNE_API const char *kne_model_device(const kne_model *model);
/* The model's tokenizer. Borrowed: owned by the model. */
KNE_API const kne_tokenizer *kne_model_tokenizer(const kne_model *model);

/* Runs the causal LM on ids (n_ids >= 1, each in [0, n_vocab)) and writes
   n_ids x n_vocab float32 logits, row-major, into logits_out (caller-owned).
   Thread-safe: any number of threads may call it at once, also while an edit runs
   (they see the weights either before or after an edit's row write, never half).
   Returns KNE_OK, KNE_ERR_INVALID_ARG, KNE_ERR_EMPTY, KNE_ERR_TOO_LONG, KNE_ERR_BACKEND. */
KNE_API kne_status kne_model_forward(kne_model *model, const int32_t *ids, size_t n_ids,
                                     float *logits_out);

/* Log-probability of each ids[i+1] given ids[..i]: writes n_ids - 1 values into
   logprobs_out (caller-owned). Same threading as kne_model_forward. */
KNE_API kne_status kne_model_token_logprobs(kne_model *model, const int32_t *ids, size_t n_ids,
                                            double *logprobs_out);

typedef struct kne_generate_params {
    uint32_t struct_size;
    int32_t max_tokens;            /* new tokens at most, default 20 */
    int32_t top_k;                 /* 1 = greedy (default); k > 1 samples among the k most likely */
    float temperature;             /* default 1 */
    uint64_t seed;                 /* sampling seed, default 0 */
    bool stop_at_eos;              /* default true */
} kne_generate_params;
KNE_API kne_generate_params kne_generate_default_params(void);

/* Continues prompt_ids; writes the new ids (at most cap) into out_ids and their number
   into *n_out (KNE_ERR_BUFFER_TOO_SMALL when more were made than cap). Stops at
   max_tokens, at EOS (if asked) or at the context length. Thread-safe like
   kne_model_forward; each token's forward sees whole edits only, so a generation that
   overlaps an edit may continue with the edited weights after some tokens. */
KNE_API kne_status kne_model_generate(kne_model *model, const int32_t *prompt_ids, size_t n_prompt,
                                      const kne_generate_params *params,
                                      int32_t *out_ids, size_t cap, size_t *n_out);

/* Writes the model (with every applied edit) as a Hugging Face checkpoint into dir:
   config.json, tokenizer files copied from the source, safetensors shards of at most
   shard_bytes each (0: one file) in the checkpoint's original dtype. dir must not exist;
   it is written under a temporary name and renamed when complete, so a failure leaves
   nothing. Not thread-safe with kne_apply/kne_editor_revert on the same model. */
KNE_API kne_status kne_model_save(const kne_model *model, const char *dir, uint64_t shard_bytes);

/* --------------------------------------------------------------- tokenizer */

/* Loads a tokenizer alone: a directory with tokenizer.json (or vocab.json + merges.txt),
   or a path to a tokenizer.json file. *out is caller-owned (kne_tokenizer_free).
   Returns KNE_OK, KNE_ERR_INVALID_ARG, KNE_ERR_NOT_FOUND, KNE_ERR_IO, KNE_ERR_FORMAT,
   KNE_ERR_UNSUPPORTED (naming the component). */
KNE_API kne_status kne_tokenizer_load(kne_tokenizer **out, const char *path);
/* NULL-safe. Do not free a model's tokenizer (kne_model_tokenizer): the model owns it. */
KNE_API void kne_tokenizer_free(kne_tokenizer *tok);
/* Vocabulary size including added tokens; 0 for NULL. Thread-safe (read-only). */
KNE_API int32_t kne_tokenizer_n_vocab(const kne_tokenizer *tok);
/* Special ids, -1 when the tokenizer has none. Thread-safe (read-only). */
KNE_API int32_t kne_tokenizer_bos(const kne_tokenizer *tok);
KNE_API int32_t kne_tokenizer_eos(const kne_tokenizer *tok);

/* Encodes UTF-8 text. Writes at most cap ids; *n_out receives the number of ids the
   text needs. When cap is too small returns KNE_ERR_BUFFER_TOO_SMALL and writes nothing
   past cap (ids may be NULL when cap is 0, to ask for the size). add_special != 0 applies
   the post-processor (e.g. Llama's BOS). Thread-safe.
   Returns KNE_OK, KNE_ERR_INVALID_ARG, KNE_ERR_ENCODING, KNE_ERR_BUFFER_TOO_SMALL. */
KNE_API kne_status kne_tokenizer_encode(const kne_tokenizer *tok, const char *text, int add_special,
                                        int32_t *ids, size_t cap, size_t *n_out);
/* Decodes ids into UTF-8 text, NUL-terminated. *len_out receives the text's length in
   bytes (without the NUL); when cap < len + 1 returns KNE_ERR_BUFFER_TOO_SMALL, writing
   nothing past cap. Thread-safe. Returns KNE_OK, KNE_ERR_INVALID_ARG (id out of range),
   KNE_ERR_BUFFER_TOO_SMALL. */
KNE_API kne_status kne_tokenizer_decode(const kne_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                        char *buf, size_t cap, size_t *len_out);

/* The same with the model's tokenizer. */
KNE_API kne_status kne_tokenize(const kne_model *model, const char *text, int add_special,
                                int32_t *ids, size_t cap, size_t *n_out);
KNE_API kne_status kne_detokenize(const kne_model *model, const int32_t *ids, size_t n_ids,
                                  char *buf, size_t cap, size_t *len_out);

/* --------------------------------------------------------------------- KNE */

/* A fact: the prompt x and the target answer y*. The target is appended to the prompt
   with one space, as "prompt target". subject is optional (NULL): the subject's text as
   it appears in the prompt, used by the neighbour-locality term (docs/method.md). */
typedef struct kne_fact {
    const char *prompt;
    const char *target;
    const char *subject;
} kne_fact;

/* Module roles: one bit each. A neuron is one output unit of the module's linear map. */
enum {
    KNE_MODULE_ATTN_Q = 1u << 0,
    KNE_MODULE_ATTN_K = 1u << 1,
    KNE_MODULE_ATTN_V = 1u << 2,
    KNE_MODULE_ATTN_O = 1u << 3,
    KNE_MODULE_MLP_GATE = 1u << 4,  /* Llama only */
    KNE_MODULE_MLP_UP = 1u << 5,    /* Llama up_proj, GPT-J fc_in, GPT-2 c_fc */
    KNE_MODULE_MLP_DOWN = 1u << 6,  /* Llama down_proj, GPT-J fc_out, GPT-2 mlp.c_proj */
    KNE_MODULE_ALL = 0x7f
};
#define KNE_N_MODULES 7
/* "attn.q", "attn.k", "attn.v", "attn.o", "mlp.gate", "mlp.up", "mlp.down" for one bit;
   NULL otherwise. Static. */
KNE_API const char *kne_module_name(uint32_t module_bit);
/* Parses a module name (as above) into its bit; 0 if unknown. */
KNE_API uint32_t kne_module_from_name(const char *name);

enum {
    KNE_OBJECTIVE_PROB = 0,   /* sum_j P(y_j | x, y_<j), the paper's eq. 4-5 (default) */
    KNE_OBJECTIVE_LOGPROB = 1 /* sum_j log P(y_j | x, y_<j) */
};

typedef struct kne_locate_params {
    uint32_t struct_size;
    int32_t steps;                 /* Riemann steps m, default 20 */
    double keep;                   /* fraction of neurons kept by the global quantile, in (0, 1]; default 0.1
                                      (the paper's 0.01 edits too little once the edit preserves its context:
                                      docs/method.md) */
    uint32_t modules;              /* bit set of KNE_MODULE_*, default KNE_MODULE_MLP_DOWN */
    int32_t layer_begin, layer_end;/* half-open layer range; default 0, -1 (= all layers) */
    int32_t objective;             /* KNE_OBJECTIVE_*, default PROB */
    kne_progress_fn progress;      /* optional; may cancel */
    void *progress_user_data;
} kne_locate_params;
KNE_API kne_locate_params kne_locate_default_params(void);

/* Attributes every neuron of the requested layers and modules for the facts (summed
   over target tokens and facts), and keeps those whose score reaches the global
   (1 - keep) quantile. *out is caller-owned (kne_ensemble_free). Thread-safe with
   readers of the model; several locates may run at once.
   Returns KNE_OK, KNE_ERR_INVALID_ARG, KNE_ERR_EMPTY, KNE_ERR_TOO_LONG, KNE_ERR_UNSUPPORTED
   (a module the architecture lacks), KNE_ERR_NUMERIC, KNE_ERR_CANCELLED, KNE_ERR_BACKEND. */
KNE_API kne_status kne_locate(kne_ensemble **out, kne_model *model, const kne_fact *facts,
                              size_t n_facts, const kne_locate_params *params);
/* Ensembles are immutable after creation: every query below is thread-safe, and
   borrowed pointers stay valid until kne_ensemble_free. */
/* NULL-safe. Not thread-safe with other uses of the same ensemble. */
KNE_API void kne_ensemble_free(kne_ensemble *ens);
/* Total number of selected neurons. */
KNE_API size_t kne_ensemble_size(const kne_ensemble *ens);
/* The layer count of the model the ensemble was made for. */
KNE_API int32_t kne_ensemble_n_layers(const kne_ensemble *ens);
/* The score threshold t_p used for selection. */
KNE_API double kne_ensemble_threshold(const kne_ensemble *ens);
/* Selected rows of one (layer, module): *rows borrowed (valid while ens lives),
   ascending; *n_rows may be 0. Returns KNE_ERR_INVALID_ARG for a bad layer or module. */
KNE_API kne_status kne_ensemble_rows(const kne_ensemble *ens, int32_t layer, uint32_t module,
                                     const int32_t **rows, size_t *n_rows);
/* Attribution score of every neuron of one (layer, module) (*scores borrowed, *n = the
   module's output size); *n = 0 when the ensemble holds no scores there (loaded or
   merged ensembles keep the scores they had). */
KNE_API kne_status kne_ensemble_scores(const kne_ensemble *ens, int32_t layer, uint32_t module,
                                       const float **scores, size_t *n);
/* Writes the ensemble as JSON (rows, scores, threshold, model fingerprint). */
KNE_API kne_status kne_ensemble_save(const kne_ensemble *ens, const char *path);
/* Reads an ensemble saved by kne_ensemble_save and checks it against model
   (KNE_ERR_MISMATCH when it was made for another model). *out caller-owned. */
KNE_API kne_status kne_ensemble_load(kne_ensemble **out, const kne_model *model, const char *path);
/* Builds an ensemble by hand from rows (any order, duplicates ignored) of one
   (layer, module) of model, e.g. every row of a layer for plain fine-tuning.
   *out caller-owned. Returns KNE_OK, KNE_ERR_INVALID_ARG (bad layer, module or row),
   KNE_ERR_UNSUPPORTED (a module the architecture lacks). */
KNE_API kne_status kne_ensemble_from_rows(kne_ensemble **out, const kne_model *model, int32_t layer,
                                          uint32_t module, const int32_t *rows, size_t n_rows);
/* Union of two ensembles of the same model. *out caller-owned; a and b unchanged. */
KNE_API kne_status kne_ensemble_merge(kne_ensemble **out, const kne_ensemble *a, const kne_ensemble *b);

/* Keys the edit preserves (kne_edit_params.preserve): the edit's update W_kne acts only
   on the part of a layer's input orthogonal to these keys, so their outputs stay exact. */
enum {
    KNE_PRESERVE_CONTEXT = 1u << 0,   /* the edit prompt's positions outside the subject (needs kne_fact.subject) */
    KNE_PRESERVE_GENERIC = 1u << 1,   /* a built-in set of generic English prompts */
    KNE_PRESERVE_NEIGHBOURS = 1u << 2 /* the edit prompt with neighbour_subjects in place of the subject */
};

typedef struct kne_edit_params {
    uint32_t struct_size;
    double alpha;                  /* scale of the update, W + alpha/sqrt(n) dW */
    double lr;                     /* Adam learning rate */
    int32_t max_steps;             /* Adam steps at most */
    double stop_loss;              /* stop when the target NLL (mean per token) is below */
    double weight_decay;           /* L2 on W_kne (0 = off) */
    /* Locality extensions beyond the paper (docs/method.md; each 0 = off): */
    uint32_t preserve;             /* bit set of KNE_PRESERVE_*: keys whose outputs the edit must not change */
    double preserve_tol;           /* singular values below tol * largest are ignored (default 0.1) */
    double neighbour_weight;       /* weight of the neighbour KL term */
    int32_t n_neighbours;          /* neighbour subjects used per fact (default 5) */
    const char *const *neighbour_subjects; /* other subjects substituted for the fact's subject (copied by kne_editor_new) */
    size_t n_neighbour_subjects;
    kne_progress_fn progress;      /* optional, per step; may cancel */
    void *progress_user_data;
} kne_edit_params;
/* Defaults: alpha 1, lr 1e-2, max_steps 25, stop_loss 0, weight_decay 0,
   preserve KNE_PRESERVE_CONTEXT | KNE_PRESERVE_NEIGHBOURS (the latter only acts when
   neighbour_subjects are given), preserve_tol 0.1, no KL term (n_neighbours 5).
   preserve = 0 with kne_locate keep = 0.01 is the paper's plain recipe. */
KNE_API kne_edit_params kne_edit_default_params(void);

typedef struct kne_edit_report {
    uint32_t struct_size;          /* set by the caller to sizeof(kne_edit_report) */
    int32_t steps;                 /* optimisation steps taken */
    double initial_loss;           /* target NLL before the edit */
    double loss;                   /* target NLL at the last step */
    int64_t rows;                  /* weight rows written */
    double seconds;                /* wall time of kne_apply */
} kne_edit_report;

/* Creates an editor for model with the neurons of ens (copied; ens may be freed after).
   *out caller-owned (kne_editor_free). Thread-safe (reads the model's shapes only). Returns KNE_OK, KNE_ERR_INVALID_ARG, KNE_ERR_MISMATCH,
   KNE_ERR_EMPTY (an empty ensemble). */
KNE_API kne_status kne_editor_new(kne_editor **out, kne_model *model, const kne_ensemble *ens,
                                  const kne_edit_params *params);
/* Trains W_kne on the facts (one batch) and writes the rows into the model.
   All-or-nothing: on any error or cancel the model is exactly as before.
   Thread-safe with readers of the model (forward, tokenize, generate): only the final
   row write takes the model's exclusive lock. Not thread-safe with another
   kne_apply/kne_editor_revert on the same model. report may be NULL.
   Returns KNE_OK, KNE_ERR_INVALID_ARG, KNE_ERR_EMPTY, KNE_ERR_TOO_LONG, KNE_ERR_NUMERIC,
   KNE_ERR_CANCELLED, KNE_ERR_BACKEND. */
KNE_API kne_status kne_apply(kne_editor *editor, const kne_fact *facts, size_t n_facts,
                             kne_edit_report *report_out);
/* Restores the rows changed by this editor's last not-yet-reverted apply, bit for bit.
   Edits revert in reverse order (LIFO). Returns KNE_OK, KNE_ERR_STATE (nothing to revert),
   KNE_ERR_BACKEND. Same threading as kne_apply. */
KNE_API kne_status kne_editor_revert(kne_editor *editor);
/* Number of applied edits not reverted. Not thread-safe with kne_apply/revert on the
   same editor. */
KNE_API size_t kne_editor_n_applied(const kne_editor *editor);
/* NULL-safe; keeps applied edits in the model (they can no longer be reverted). Not
   thread-safe with other uses of the same editor. The model must outlive its editors. */
KNE_API void kne_editor_free(kne_editor *editor);

#ifdef __cplusplus
}
#endif
#endif /* KNE_H */
