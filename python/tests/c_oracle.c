/* The C side of the Python parity tests: runs one scenario through the C API only and
   writes what it got, so python/tests can compare the wrapper's results bit for bit.
   usage: c_oracle MODEL_DIR OUT_DIR PROMPT TARGET STEPS KEEP MAX_STEPS TEXTS_FILE
   writes: sizes.txt (struct sizes), tokens.txt (per line of TEXTS_FILE: ids with and
   without specials, and the detokenized text as hex), logits_pre.bin, logprobs_pre.bin,
   rows.txt, scores.bin, report.txt, logits_post.bin, gen_post.txt, logits_reverted.bin. */
#include "kne.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *out_dir;

static void die(const char *what, kne_status s)
{
    fprintf(stderr, "c_oracle: %s: %s: %s\n", what, kne_status_str(s), kne_last_error());
    exit(1);
}
#define TRY(what, expr) do { kne_status s_ = (expr); if (s_ != KNE_OK) die(what, s_); } while (0)

static FILE *out(const char *name, const char *mode)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    FILE *f = fopen(path, mode);
    if (!f) { perror(path); exit(1); }
    return f;
}

static void write_bin(const char *name, const void *p, size_t bytes)
{
    FILE *f = out(name, "wb");
    fwrite(p, 1, bytes, f);
    fclose(f);
}

static void forward_to(kne_model *m, const int32_t *ids, size_t n, const char *name)
{
    size_t V = (size_t)kne_model_n_vocab(m);
    float *lg = malloc(sizeof(float) * n * V);
    TRY("forward", kne_model_forward(m, ids, n, lg));
    write_bin(name, lg, sizeof(float) * n * V);
    free(lg);
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: %s MODEL_DIR OUT_DIR PROMPT TARGET STEPS KEEP MAX_STEPS TEXTS_FILE\n", argv[0]);
        return 2;
    }
    out_dir = argv[2];
    kne_fact fact = {argv[3], argv[4], NULL};

    FILE *sz = out("sizes.txt", "w");
    fprintf(sz, "kne_model_params %zu\nkne_generate_params %zu\nkne_fact %zu\nkne_locate_params %zu\n"
                "kne_edit_params %zu\nkne_edit_report %zu\n",
            sizeof(kne_model_params), sizeof(kne_generate_params), sizeof(kne_fact),
            sizeof(kne_locate_params), sizeof(kne_edit_params), sizeof(kne_edit_report));
    fclose(sz);

    kne_model *m = NULL;
    TRY("load", kne_model_load(&m, argv[1], NULL));

    /* tokens */
    FILE *texts = fopen(argv[8], "r"), *tok = out("tokens.txt", "w");
    if (!texts) { perror(argv[8]); return 1; }
    static char line[65536];
    static int32_t ids[8192];
    static char text[65536];
    while (fgets(line, sizeof line, texts)) {
        line[strcspn(line, "\n")] = '\0';
        for (int special = 1; special >= 0; special--) {
            size_t n = 0, len = 0;
            TRY("tokenize", kne_tokenize(m, line, special, ids, 8192, &n));
            for (size_t i = 0; i < n; i++) fprintf(tok, "%s%d", i ? " " : "", ids[i]);
            fputc('\t', tok);
            TRY("detokenize", kne_detokenize(m, ids, n, text, sizeof text, &len));
            for (size_t i = 0; i < len; i++) fprintf(tok, "%02x", (unsigned char)text[i]);
            fputc(special ? '\t' : '\n', tok);
        }
    }
    fclose(texts);
    fclose(tok);

    /* pre-edit logits of the prompt */
    size_t n = 0;
    TRY("tokenize prompt", kne_tokenize(m, argv[3], 1, ids, 8192, &n));
    forward_to(m, ids, n, "logits_pre.bin");
    double *lp = malloc(sizeof(double) * n);
    TRY("token_logprobs", kne_model_token_logprobs(m, ids, n, lp));
    write_bin("logprobs_pre.bin", lp, sizeof(double) * (n - 1));
    free(lp);

    /* locate */
    kne_locate_params lpar = kne_locate_default_params();
    lpar.steps = atoi(argv[5]);
    lpar.keep = atof(argv[6]);
    kne_ensemble *ens = NULL;
    TRY("locate", kne_locate(&ens, m, &fact, 1, &lpar));
    FILE *rf = out("rows.txt", "w"), *sf = out("scores.bin", "wb");
    fprintf(rf, "size %zu\n", kne_ensemble_size(ens));
    for (int32_t l = 0; l < kne_ensemble_n_layers(ens); l++) {
        for (int b = 0; b < KNE_N_MODULES; b++) {
            const int32_t *rows;
            size_t nr;
            TRY("rows", kne_ensemble_rows(ens, l, 1u << b, &rows, &nr));
            fprintf(rf, "%d %s", l, kne_module_name(1u << b));
            for (size_t i = 0; i < nr; i++) fprintf(rf, " %d", rows[i]);
            fputc('\n', rf);
            const float *sc;
            size_t ns;
            TRY("scores", kne_ensemble_scores(ens, l, 1u << b, &sc, &ns));
            if (ns) fwrite(sc, sizeof(float), ns, sf);
        }
    }
    fclose(rf);
    fclose(sf);

    /* edit */
    kne_edit_params ep = kne_edit_default_params();
    ep.max_steps = atoi(argv[7]);
    kne_editor *ed = NULL;
    TRY("editor_new", kne_editor_new(&ed, m, ens, &ep));
    kne_edit_report rep = {sizeof rep, 0, 0, 0, 0, 0};
    TRY("apply", kne_apply(ed, &fact, 1, &rep));
    FILE *rp = out("report.txt", "w");
    fprintf(rp, "%d %a %a %lld\n", rep.steps, rep.initial_loss, rep.loss, (long long)rep.rows);
    fclose(rp);
    forward_to(m, ids, n, "logits_post.bin");
    int32_t gen[64];
    size_t ng = 0;
    kne_generate_params gp = kne_generate_default_params();
    gp.max_tokens = 5;
    TRY("generate", kne_model_generate(m, ids, n, &gp, gen, 64, &ng));
    FILE *gf = out("gen_post.txt", "w");
    for (size_t i = 0; i < ng; i++) fprintf(gf, "%s%d", i ? " " : "", gen[i]);
    fputc('\n', gf);
    fclose(gf);
    TRY("revert", kne_editor_revert(ed));
    forward_to(m, ids, n, "logits_reverted.bin");

    kne_editor_free(ed);
    kne_ensemble_free(ens);
    kne_model_free(m);
    return 0;
}
