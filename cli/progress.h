/* A progress bar on stderr, drawn only when stderr is a terminal. */
#ifndef KNE_CLI_PROGRESS_H
#define KNE_CLI_PROGRESS_H
#include <stdbool.h>

typedef struct cli_progress {
    const char *label;
    int enabled;                 /* stderr is a terminal and not KNE_NO_PROGRESS */
    int last_permille;
    double t0;
} cli_progress;

void cli_progress_start(cli_progress *p, const char *label);
/* fraction in [0, 1]; extra: a short text shown after the bar (may be NULL) */
void cli_progress_update(cli_progress *p, double fraction, const char *extra);
void cli_progress_done(cli_progress *p);
/* A kne_progress_fn that draws the bar of user_data (a cli_progress *). */
bool cli_progress_cb(float fraction, void *user_data);
#endif
