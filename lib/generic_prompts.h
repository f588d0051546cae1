/* A small built-in set of generic English prompts (KNE_PRESERVE_GENERIC). */
#ifndef KNE_GENERIC_PROMPTS_H
#define KNE_GENERIC_PROMPTS_H
#include <stddef.h>
extern const char *const kne_generic_prompts[];
extern const size_t kne_n_generic_prompts;
#endif
