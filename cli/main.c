/* kne: the command-line face of libkne. One subcommand per file (cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "common.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} cmds[] = {
    {"info", cmd_info, "print a checkpoint's architecture and sizes"},
    {"tokenize", cmd_tokenize, "show the token ids and pieces of a text"},
    {"generate", cmd_generate, "continue a prompt (greedy or top-k sampling)"},
    {"locate", cmd_locate, "find the knowledge neurons of facts; write the ensemble (and a plot)"},
    {"edit", cmd_edit, "edit facts into a model and save the edited checkpoint"},
    {"eval", cmd_eval, "measure edit success, generalization, portability, locality, fluency"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: kne COMMAND [ARGS]   (kne COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].what);
    fprintf(f, "\nlibkne %s. Progress bars go to stderr when it is a terminal (KNE_NO_PROGRESS=1 turns them off).\n",
            kne_version());
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (cli_is_help(argv[1]) || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("kne %s\n", kne_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].run(argc - 1, argv + 1);
    fprintf(stderr, "kne: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
