/* The ensemble: selected rows (neurons) per (layer, module), with their scores. */
#ifndef KNE_ENSEMBLE_H
#define KNE_ENSEMBLE_H
#include "kne.h"

typedef struct kne_ens_entry {
    int32_t *rows;               /* ascending */
    size_t n_rows;
    float *scores;               /* every neuron's score, or NULL */
    size_t n_scores;
} kne_ens_entry;

struct kne_ensemble {
    uint64_t fingerprint;        /* of the model it was made for */
    int32_t n_layers;
    int64_t module_size[KNE_N_MODULES]; /* output size of each module, 0 if absent */
    double threshold;
    kne_ens_entry *entries;      /* [n_layers * KNE_N_MODULES] */
};

/* A new empty ensemble shaped for model. */
kne_status kne_ensemble_alloc(kne_ensemble **out, const kne_model *model);
kne_ens_entry *kne_ensemble_entry(const kne_ensemble *e, int32_t layer, int module);
/* Module index (0..6) of a single KNE_MODULE_* bit, -1 otherwise. */
int kne_module_index(uint32_t bit);
#endif
