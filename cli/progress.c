#include "progress.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_progress_start(cli_progress *p, const char *label)
{
    const char *off = getenv("KNE_NO_PROGRESS");
    p->label = label;
    p->enabled = isatty(2) && !(off && *off && strcmp(off, "0"));
    p->last_permille = -1;
    p->t0 = cli_now();
    cli_progress_update(p, 0, NULL);
}

void cli_progress_update(cli_progress *p, double f, const char *extra)
{
    if (!p->enabled) return;
    if (f < 0) f = 0;
    if (f > 1) f = 1;
    int pm = (int)(f * 1000);
    if (pm == p->last_permille && !extra) return;
    p->last_permille = pm;
    enum { W = 30 };
    char bar[W + 1];
    int fill = (int)(f * W + 0.5);
    for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
    bar[W] = 0;
    double el = cli_now() - p->t0;
    fprintf(stderr, "\r%-12s [%s] %5.1f%% %6.1fs %s\033[K", p->label, bar, 100 * f, el, extra ? extra : "");
    fflush(stderr);
}

void cli_progress_done(cli_progress *p)
{
    if (!p->enabled) return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
}

bool cli_progress_cb(float fraction, void *user_data)
{
    cli_progress_update((cli_progress *)user_data, fraction, NULL);
    return true;
}
