/* Knowledge-editing data sets and facts files, in one shape:
   CounterFact (MEND/EasyEdit), zsRE (MEND/EasyEdit), KnowEdit, and a plain list of
   {"prompt", "target"} objects. The format is detected from the first record's keys. */
#ifndef KNE_CLI_DATASET_H
#define KNE_CLI_DATASET_H
#include <stddef.h>

typedef enum cli_format {
    CLI_FMT_UNKNOWN = 0,
    CLI_FMT_COUNTERFACT = 1,
    CLI_FMT_ZSRE = 2,
    CLI_FMT_KNOWEDIT = 3,
    CLI_FMT_SIMPLE = 4
} cli_format;

typedef struct cli_qa {
    char *prompt;
    char *answer;
} cli_qa;

typedef struct cli_record {
    char *prompt;                /* the edit prompt */
    char *target;                /* target_new */
    char *subject;               /* NULL if the format has none */
    char *ground_truth;          /* the true answer (first alias); NULL if absent */
    char **rephrase;             /* paraphrases of the prompt */
    size_t n_rephrase;
    cli_qa *portability;         /* KnowEdit portability prompts with their answers */
    size_t n_portability;
    cli_qa *locality;            /* prompts the edit must not change, with their answers */
    size_t n_locality;
} cli_record;

typedef struct cli_dataset {
    cli_format format;
    cli_record *rec;
    size_t n;
} cli_dataset;

const char *cli_format_name(cli_format f);

/* Loads path (at most limit records when limit > 0). Returns 0 on success; otherwise
   writes an explanation into err (err_cap bytes) and returns -1. */
int cli_dataset_load(cli_dataset *ds, const char *path, size_t limit, char *err, size_t err_cap);
/* The same from JSON text in memory (for tests). */
int cli_dataset_parse(cli_dataset *ds, const char *json_text, size_t limit, char *err, size_t err_cap);
void cli_dataset_free(cli_dataset *ds);
#endif
