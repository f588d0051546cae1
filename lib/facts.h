/* Facts as token ids: [BOS] + prompt, teacher-forced target tokens after it. */
#ifndef KNE_FACTS_H
#define KNE_FACTS_H
#include "kne.h"

typedef struct kne_enc_fact {
    int32_t *ids;                /* model input: tokens of "prompt target" without the last one */
    size_t n_ids;
    size_t tgt_begin;            /* position whose next-token prediction is the first target token */
    size_t n_tgt;
    int32_t *tgt;                /* target ids: the tail of tokenize(prompt + " " + target) beyond tokenize(prompt) */
    size_t n_prompt;             /* tokens of the prompt alone */
} kne_enc_fact;

/* Encodes one fact; `which` names it in messages. KNE_ERR_INVALID_ARG, KNE_ERR_EMPTY,
   KNE_ERR_ENCODING, KNE_ERR_TOO_LONG. */
kne_status kne_fact_encode(const kne_model *m, const kne_fact *f, size_t which, kne_enc_fact *out);
/* Encodes n facts (all or nothing); *out caller-owned (kne_facts_free). */
kne_status kne_facts_encode(const kne_model *m, const kne_fact *facts, size_t n, kne_enc_fact **out);
void kne_facts_free(kne_enc_fact *f, size_t n);
/* Tokenizes text into a new array (*ids caller-owned, free()). */
kne_status kne_tokenize_alloc(const kne_model *m, const char *text, int add_special, int32_t **ids, size_t *n);


/* Token span [*begin, *end) of subject inside the tokenized prompt (with BOS), found
   by tokenizing the text before it and through it, as ROME does. 0 if the subject is
   NULL, empty or not in the prompt. */
int kne_subject_span(const kne_model *m, const char *prompt, const char *subject, size_t *begin, size_t *end);
#endif
