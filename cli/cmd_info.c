/* kne info DIR: architecture, sizes, tokenizer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "common.h"

static void help(FILE *f)
{
    fprintf(f, "usage: kne info DIR [--threads N]\n"
               "Loads the Hugging Face checkpoint DIR and prints its architecture and sizes.\n");
}

int cmd_info(int argc, char **argv)
{
    const char *dir = NULL;
    long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int err = 0;
        if (cli_is_help(argv[i])) {
            help(stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--threads", &v, "info", &err)) {
            if (err || cli_parse_int("info", "--threads", v, 0, 4096, &threads)) return 2;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            help(stderr);
            return cli_fail("info", 2, "unknown option %s", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else {
            help(stderr);
            return cli_fail("info", 2, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!dir) {
        help(stderr);
        return 2;
    }
    kne_model *m;
    kne_status s = cli_load_model(&m, dir, (int)threads);
    if (s != KNE_OK) return cli_fail_status("info", s);
    const kne_tokenizer *tok = kne_model_tokenizer(m);
    printf("checkpoint:   %s\n", dir);
    printf("architecture: %s\n", kne_model_arch(m));
    printf("layers:       %d\n", kne_model_n_layers(m));
    printf("hidden size:  %d\n", kne_model_n_embd(m));
    printf("vocabulary:   %d\n", kne_model_n_vocab(m));
    printf("context:      %d\n", kne_model_n_ctx(m));
    printf("device:       %s\n", kne_model_device(m));
    printf("tokenizer:    %d ids, bos %d, eos %d\n", kne_tokenizer_n_vocab(tok), kne_tokenizer_bos(tok),
           kne_tokenizer_eos(tok));
    printf("modules:     ");
    for (uint32_t b = 1; b <= KNE_MODULE_MLP_DOWN; b <<= 1) {
        /* a module exists when an ensemble can be made on it */
        kne_ensemble *e = NULL;
        int32_t row = 0;
        if (kne_ensemble_from_rows(&e, m, 0, b, &row, 1) == KNE_OK) printf(" %s", kne_module_name(b));
        kne_ensemble_free(e);
    }
    printf("\n");
    kne_model_free(m);
    return 0;
}
