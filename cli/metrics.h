/* Knowledge-editing metrics, EasyEdit definitions (docs/metrics.md). */
#ifndef KNE_CLI_METRICS_H
#define KNE_CLI_METRICS_H
#include <stddef.h>
#include <stdint.h>
#include "kne.h"

/* ---- pure functions */

/* Shannon entropy (bits) of the frequency distribution of the order-grams of ids
   (n - order + 1 of them); 0 when there are none. */
double cli_ngram_entropy(const int32_t *ids, size_t n, int order);
/* ROME/EasyEdit n_gram_entropy of one sequence: the arithmetic mean of
   (2/3) H2 and (4/3) H3, i.e. (H2 + 2 H3) / 3. */
double cli_fluency_entropy(const int32_t *ids, size_t n);
/* Fraction of positions where pred[i] == want[i]; 0 for n = 0. */
double cli_token_accuracy(const int32_t *pred, const int32_t *want, size_t n);

/* ---- teacher forcing on a model */

/* A prompt and an answer as the model sees them: ids = tokens of
   [BOS] + prompt + " " + answer without the last one; the answer tokens are the tail
   of tokenize(prompt + " " + answer) beyond tokenize(prompt), predicted at positions
   begin .. begin + n_ans - 1 of ids. */
typedef struct cli_tf {
    int32_t *ids;
    size_t n_ids;
    size_t begin;
    int32_t *ans;
    size_t n_ans;
} cli_tf;

kne_status cli_tf_encode(const kne_model *m, const char *prompt, const char *answer, cli_tf *out);
void cli_tf_free(cli_tf *t);
/* Greedy (argmax) predictions at the answer positions: pred[n_ans] (caller-owned). */
kne_status cli_tf_predict(kne_model *m, const cli_tf *t, int32_t *pred);
/* Teacher-forced token accuracy of the answer after the prompt, in [0, 1]. */
kne_status cli_tf_accuracy(kne_model *m, const char *prompt, const char *answer, double *acc);

/* Fluency: samples a top-k continuation of [BOS] + prompt up to max_len tokens in all
   (the prompt included; EOS does not stop it, as in ROME's generate_fast), and returns
   cli_fluency_entropy of the whole sequence with the BOS and EOS ids left out. */
kne_status cli_fluency(kne_model *m, const char *prompt, int top_k, int max_len, uint64_t seed, double *out);
#endif
