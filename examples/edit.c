/* Edit one fact: locate its knowledge neurons, apply the new answer, show the greedy
   answer before and after, then revert.   usage: edit MODEL_DIR */
#include "kne.h"
#include <stdio.h>
#include <string.h>

#define TRY(expr) do { kne_status s_ = (expr); if (s_ != KNE_OK) { \
    fprintf(stderr, "%s: %s: %s\n", #expr, kne_status_str(s_), kne_last_error()); return 1; } } while (0)

/* Greedy continuation of prompt (up to 8 tokens, stopping at EOS) into buf. */
static kne_status answer(kne_model *m, const char *prompt, char *buf, size_t cap)
{
    int32_t ids[256], out[8];
    size_t n, n_out, len;
    kne_status s = kne_tokenize(m, prompt, 1, ids, 256, &n);
    kne_generate_params gp = kne_generate_default_params();
    gp.max_tokens = 8;
    if (s == KNE_OK) s = kne_model_generate(m, ids, n, &gp, out, 8, &n_out);
    if (s == KNE_OK && n_out > 0 && out[n_out - 1] == kne_tokenizer_eos(kne_model_tokenizer(m))) n_out--;
    if (s == KNE_OK) s = kne_detokenize(m, out, n_out, buf, cap, &len);
    return s;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    const char *prompt = "The mother tongue of Danielle Darrieux is";
    kne_fact fact = {prompt, "English", "Danielle Darrieux"};
    char before[256], after[256], reverted[256];

    kne_model *m = NULL;
    TRY(kne_model_load(&m, argv[1], NULL));
    TRY(answer(m, prompt, before, sizeof before));

    kne_ensemble *ens = NULL;                   /* the fact's knowledge neurons */
    TRY(kne_locate(&ens, m, &fact, 1, NULL));   /* kne_locate_default_params() */
    kne_editor *ed = NULL;
    TRY(kne_editor_new(&ed, m, ens, NULL));
    kne_edit_report rep = {sizeof rep, 0, 0, 0, 0, 0};
    TRY(kne_apply(ed, &fact, 1, &rep));
    TRY(answer(m, prompt, after, sizeof after));
    TRY(kne_editor_revert(ed));
    TRY(answer(m, prompt, reverted, sizeof reverted));

    printf("%s ...\n  before:   %s\n  edited:   %s   (%zu neurons, %d steps, loss %.3f -> %.3f, %.2f s)\n"
           "  reverted: %s\n", prompt, before, after, kne_ensemble_size(ens), rep.steps, rep.initial_loss,
           rep.loss, rep.seconds, reverted);
    int ok = strstr(after, "English") != NULL && strcmp(before, reverted) == 0;

    kne_editor_free(ed);
    kne_ensemble_free(ens);
    kne_model_free(m);
    return ok ? 0 : 1;
}
