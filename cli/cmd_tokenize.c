/* kne tokenize DIR TEXT: ids and the piece of text each one stands for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "common.h"

static void help(FILE *f)
{
    fprintf(f, "usage: kne tokenize DIR TEXT [--no-special] [--ids-only]\n"
               "Prints the token ids of TEXT under the tokenizer of checkpoint DIR, one per line with the\n"
               "text it decodes to. --no-special leaves out BOS and other added tokens; --ids-only prints\n"
               "the ids on one line.\n");
}

static void print_quoted(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') printf("\\n");
        else if (c == '\t') printf("\\t");
        else if (c < 0x20) printf("\\x%02x", c);
        else putchar(c);
    }
    putchar('"');
}

int cmd_tokenize(int argc, char **argv)
{
    const char *dir = NULL, *text = NULL;
    int special = 1, ids_only = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            help(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--no-special")) {
            special = 0;
        } else if (!strcmp(argv[i], "--ids-only")) {
            ids_only = 1;
        } else if (argv[i][0] == '-' && argv[i][1] == '-' && argv[i][2]) {
            help(stderr);
            return cli_fail("tokenize", 2, "unknown option %s", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else if (!text) {
            text = argv[i];
        } else {
            help(stderr);
            return cli_fail("tokenize", 2, "unexpected argument '%s' (quote the text)", argv[i]);
        }
    }
    if (!dir || !text) {
        help(stderr);
        return 2;
    }
    kne_tokenizer *tok = NULL;
    kne_status s = kne_tokenizer_load(&tok, dir);
    if (s != KNE_OK) return cli_fail_status("tokenize", s);
    size_t n = 0;
    s = kne_tokenizer_encode(tok, text, special, NULL, 0, &n);
    int32_t *ids = NULL;
    if (s == KNE_OK || s == KNE_ERR_BUFFER_TOO_SMALL) {
        ids = malloc(sizeof *ids * (n ? n : 1));
        s = ids ? (n ? kne_tokenizer_encode(tok, text, special, ids, n, &n) : KNE_OK) : KNE_ERR_OUT_OF_MEMORY;
    }
    if (s != KNE_OK) {
        free(ids);
        kne_tokenizer_free(tok);
        return cli_fail_status("tokenize", s);
    }
    if (ids_only) {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    } else {
        printf("%zu tokens\n", n);
        for (size_t i = 0; i < n; i++) {
            char buf[256];
            size_t len = 0;
            kne_status d = kne_tokenizer_decode(tok, &ids[i], 1, buf, sizeof buf, &len);
            printf("%6d  ", ids[i]);
            if (d == KNE_OK) print_quoted(buf);
            else printf("(%s)", kne_status_str(d));
            printf("\n");
        }
    }
    free(ids);
    kne_tokenizer_free(tok);
    return 0;
}
