/* The editor: trains W_kne for the ensemble rows (eq. 8-11) and writes them. */
#ifndef KNE_EDITOR_H
#define KNE_EDITOR_H
#include "kne.h"
#include "kne_shim.h"

typedef struct kne_edit_target {
    int layer, module;
    kt_tensor *rows;             /* int64 [n] */
    int64_t n, d_in;
} kne_edit_target;

/* One applied edit: the rows it replaced, to restore bit for bit. */
typedef struct kne_applied {
    kt_arena *arena;
    kt_tensor **old_rows;        /* per target, in the model's dtype */
} kne_applied;

struct kne_editor {
    kne_model *model;
    kne_edit_params params;
    kt_arena *arena;             /* row indices */
    kne_edit_target *targets;
    int n_targets;
    char **neighbours;           /* copies of params.neighbour_subjects */
    kne_applied *applied;        /* stack */
    size_t n_applied, cap_applied;
};
#endif
