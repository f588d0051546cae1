/* Preserved keys (KNE_PRESERVE_*): the inputs of each edited module on text the edit
   must not change, reduced to an orthonormal basis of their span. */
#ifndef KNE_EDIT_KEYS_H
#define KNE_EDIT_KEYS_H
#include "editor.h"

/* Replaces the first occurrence of subject in prompt by other; NULL if absent (caller frees). */
char *kne_replace_subject(const char *prompt, const char *subject, const char *other);
/* The fact's prompt with its subject replaced by each of the first n_neighbours
   neighbour_subjects that differ from it; writes at most n_neighbours new strings
   (caller frees each) into out and returns how many. */
size_t kne_neighbour_prompts(const kne_edit_params *p, const kne_fact *f, char **out);
/* basis[t] = [d_in, r] float32 basis for editor target t, or NULL when nothing is preserved. */
kne_status kne_edit_key_basis(const kne_editor *ed, kt_arena *a, const kne_fact *facts, size_t n_facts, kt_tensor **basis);
#endif
