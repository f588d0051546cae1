/* The subcommands: each takes argv[0] = its own name. Exit codes: 0 ok, 1 failure, 2 usage. */
#ifndef KNE_CLI_CMDS_H
#define KNE_CLI_CMDS_H
int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_locate(int argc, char **argv);
int cmd_edit(int argc, char **argv);
int cmd_eval(int argc, char **argv);
#endif
