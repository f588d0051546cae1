/* kne generate DIR PROMPT: greedy or top-k continuation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "common.h"

static void help(FILE *f)
{
    fprintf(f, "usage: kne generate DIR PROMPT [--max-tokens N] [--top-k K] [--temperature T] [--seed S]\n"
               "                   [--ignore-eos] [--threads N]\n"
               "Continues PROMPT with the model of checkpoint DIR and prints prompt + continuation.\n"
               "  --max-tokens N   new tokens at most (default 20)\n"
               "  --top-k K        1 = greedy (default); K > 1 samples among the K most likely tokens\n"
               "  --temperature T  sampling temperature (default 1)\n"
               "  --seed S         sampling seed (default 0)\n"
               "  --ignore-eos     keep generating after the end-of-sequence token\n"
               "  --threads N      CPU threads, 0 = all cores (default)\n");
}

int cmd_generate(int argc, char **argv)
{
    const char *dir = NULL, *prompt = NULL;
    long max_tokens = 20, top_k = 1, threads = 0;
    double temp = 1;
    uint64_t seed = 0;
    int ignore_eos = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int err = 0;
        if (cli_is_help(argv[i])) {
            help(stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--max-tokens", &v, "generate", &err)) {
            if (err || cli_parse_int("generate", "--max-tokens", v, 0, 1000000, &max_tokens)) return 2;
        } else if (cli_opt(argc, argv, &i, "--top-k", &v, "generate", &err)) {
            if (err || cli_parse_int("generate", "--top-k", v, 1, 1000000000, &top_k)) return 2;
        } else if (cli_opt(argc, argv, &i, "--temperature", &v, "generate", &err)) {
            if (err || cli_parse_double("generate", "--temperature", v, &temp)) return 2;
            if (!(temp > 0)) return cli_fail("generate", 2, "--temperature must be > 0");
        } else if (cli_opt(argc, argv, &i, "--seed", &v, "generate", &err)) {
            if (err || cli_parse_u64("generate", "--seed", v, &seed)) return 2;
        } else if (!strcmp(argv[i], "--ignore-eos")) {
            ignore_eos = 1;
        } else if (cli_opt(argc, argv, &i, "--threads", &v, "generate", &err)) {
            if (err || cli_parse_int("generate", "--threads", v, 0, 4096, &threads)) return 2;
        } else if (argv[i][0] == '-' && argv[i][1] == '-' && argv[i][2]) {
            help(stderr);
            return cli_fail("generate", 2, "unknown option %s", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else if (!prompt) {
            prompt = argv[i];
        } else {
            help(stderr);
            return cli_fail("generate", 2, "unexpected argument '%s' (quote the prompt)", argv[i]);
        }
    }
    if (!dir || !prompt) {
        help(stderr);
        return 2;
    }
    kne_model *m;
    kne_status s = cli_load_model(&m, dir, (int)threads);
    if (s != KNE_OK) return cli_fail_status("generate", s);
    int32_t *ids = NULL, *out = NULL, *all = NULL;
    size_t n = 0, made = 0;
    char *text = NULL;
    s = cli_tokenize(m, prompt, 1, &ids, &n);
    if (s == KNE_OK && n == 0) s = KNE_ERR_EMPTY;
    if (s == KNE_OK) {
        out = malloc(sizeof *out * (size_t)(max_tokens + 1));
        all = malloc(sizeof *all * (n + (size_t)max_tokens + 1));
        if (!out || !all) s = KNE_ERR_OUT_OF_MEMORY;
    }
    if (s == KNE_OK) {
        kne_generate_params gp = kne_generate_default_params();
        gp.max_tokens = (int32_t)max_tokens;
        gp.top_k = (int32_t)top_k;
        gp.temperature = (float)temp;
        gp.seed = seed;
        gp.stop_at_eos = !ignore_eos;
        s = kne_model_generate(m, ids, n, &gp, out, (size_t)max_tokens, &made);
    }
    if (s == KNE_OK) {
        /* decode prompt + continuation together so that pieces join as they should */
        size_t k = 0;
        int32_t bos = kne_tokenizer_bos(kne_model_tokenizer(m)), eos = kne_tokenizer_eos(kne_model_tokenizer(m));
        for (size_t i = 0; i < n; i++)
            if (!(i == 0 && ids[i] == bos)) all[k++] = ids[i];
        for (size_t i = 0; i < made; i++)
            if (out[i] != eos) all[k++] = out[i];
        s = cli_detokenize(m, all, k, &text);
    }
    if (s == KNE_OK) printf("%s\n", text);
    free(ids);
    free(out);
    free(all);
    free(text);
    int rc = s == KNE_OK ? 0 : cli_fail_status("generate", s);
    kne_model_free(m);
    return rc;
}
