/* Shared pieces of the kne command: option parsing, errors, model loading, and the
   locate/edit options that several subcommands accept. */
#ifndef KNE_CLI_COMMON_H
#define KNE_CLI_COMMON_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "kne.h"
#include "dataset.h"

/* Prints "kne CMD: <status>: <library message>" on stderr and returns 1 (exit code). */
int cli_fail_status(const char *cmd, kne_status s);
/* Prints "kne CMD: message" on stderr and returns 2 (usage) or 1. */
int cli_fail(const char *cmd, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Option scanning: argv[*i] is the option; its value is argv[*i + 1] (advances *i).
   "--name=value" is accepted too. Returns 1 when argv[*i] is that option. */
int cli_opt(int argc, char **argv, int *i, const char *name, const char **value, const char *cmd, int *err);
int cli_is_help(const char *arg);
/* Number parsing with range checks; 0 on success, else prints an error. */
int cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
int cli_parse_double(const char *cmd, const char *opt, const char *s, double *out);
int cli_parse_u64(const char *cmd, const char *opt, const char *s, uint64_t *out);

/* Loads a model with n_threads (0 = all cores), a progress bar on a terminal. */
kne_status cli_load_model(kne_model **out, const char *dir, int n_threads);

/* Options of locate and edit that kne locate / edit / eval share. */
typedef struct cli_edit_opts {
    kne_locate_params locate;
    kne_edit_params edit;
    const char *ensemble_path;   /* --ensemble: use this instead of locating */
    const char *neighbours_from; /* --neighbours-from: a data file whose subjects are the neighbours */
    char **neighbour_storage;    /* owned copies behind edit.neighbour_subjects */
    size_t n_neighbour_storage;
    int n_threads;
} cli_edit_opts;

void cli_edit_opts_init(cli_edit_opts *o);
/* Tries the locate options (riemann_steps_name is "--steps" for kne locate and
   "--riemann-steps" elsewhere) and the edit options (when with_edit). Returns 1 if
   argv[*i] was one of them (consumed), 0 if not, -1 on a bad value. */
int cli_edit_opts_parse(cli_edit_opts *o, int argc, char **argv, int *i, const char *cmd, int with_edit,
                        const char *riemann_steps_name);
/* Fills edit.neighbour_subjects: the subjects of --neighbours-from's records, else of the
   last `tail` records of fallback (may be NULL). 0 on success, else prints and -1. */
int cli_neighbour_subjects(cli_edit_opts *o, const char *cmd, const struct cli_dataset *fallback, size_t tail);
void cli_edit_opts_free(cli_edit_opts *o);
/* The help text of those options. */
void cli_edit_opts_help(FILE *f, int with_edit, const char *riemann_steps_name);
/* Parses "mlp.down,attn.o" into a bit set; 0 on an unknown name (printed). */
uint32_t cli_parse_modules(const char *cmd, const char *s);

/* Text helpers */
char *cli_strdup(const char *s);
const char *cli_basename(const char *path, char *buf, size_t cap);
/* Encodes text with the model's tokenizer into a new array (free()). */
kne_status cli_tokenize(const kne_model *m, const char *text, int add_special, int32_t **ids, size_t *n);
/* Decodes into a new string (free()). */
kne_status cli_detokenize(const kne_model *m, const int32_t *ids, size_t n, char **text);

double cli_now(void);

/* Facts (prompt, target, subject) of n records; borrowed strings; free() the array. */
kne_fact *cli_facts(const cli_record *rec, size_t n);
/* Locates with a progress bar ("locating"). */
kne_status cli_locate(kne_ensemble **out, kne_model *m, const kne_fact *facts, size_t n,
                      const kne_locate_params *lp, int show_progress);
#endif
