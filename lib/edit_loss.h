/* The objective kne_apply minimises: the targets' NLL (teacher-forced, mean per token
   within a fact, mean over facts), plus the optional locality terms of docs/method.md. */
#ifndef KNE_EDIT_LOSS_H
#define KNE_EDIT_LOSS_H
#include "facts.h"
#include "model.h"

typedef struct kne_edit_loss {
    const kne_model *m;
    const kne_edit_params *p;
    kt_tensor *ids;              /* [B, T] facts, right-padded (causal: padding never reaches a target) */
    kt_tensor *flat_pos;         /* int64 [N]: b * T + position of each target token */
    kt_tensor *tgt;              /* int64 [N, 1] */
    kt_tensor *weight;           /* float32 [N]: 1 / (tokens of its fact * facts) */
    /* neighbour term: the edit prompts with the subject replaced, their last position */
    kt_tensor *nb_ids;           /* [K, Tn] right-padded, or NULL */
    kt_tensor *nb_flat_last;     /* int64 [K] */
    kt_tensor *nb_ref;           /* [K, V] log-probabilities of the unedited model */
} kne_edit_loss;

/* Builds the batch tensors in arena a (which must outlive the loss). */
kne_status kne_edit_loss_init(kne_edit_loss *L, const kne_model *m, kt_arena *a, const kne_fact *facts, size_t n_facts,
                              const kne_enc_fact *ef, const kne_edit_params *p);
/* The total loss (a scalar with grad) under the hook, in arena a; *target_nll gets the
   targets' NLL alone. */
kt_tensor *kne_edit_loss_eval(const kne_edit_loss *L, kt_arena *a, kne_linear_hook hook, void *hook_ctx,
                              double *target_nll);
void kne_edit_loss_finish(kne_edit_loss *L);
#endif
