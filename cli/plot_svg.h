/* A hand-written SVG of where the attribution mass of a locate sits: a heat map of
   modules x layers (colour = sum of positive scores, number = selected neurons) over
   a bar chart of the mass per layer, stacked by module. */
#ifndef KNE_CLI_PLOT_SVG_H
#define KNE_CLI_PLOT_SVG_H
#include <stddef.h>

typedef struct cli_plot {
    const char *title;
    const char *subtitle;
    int n_layers, n_modules;
    const char *const *module_names;  /* n_modules */
    const double *mass;               /* [n_modules][n_layers], sum of positive scores (< 0: not scored) */
    const size_t *count;              /* [n_modules][n_layers], selected neurons */
} cli_plot;

/* Writes the SVG; 0 on success, -1 (errno set) when the file cannot be written. */
int cli_plot_svg_write(const char *path, const cli_plot *p);
#endif
