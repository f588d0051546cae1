/* kne locate DIR --facts FILE -o ENSEMBLE.json [--plot FILE.svg]: the knowledge
   neurons of the facts, saved as an ensemble; a table (and plot) of where they sit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "common.h"
#include "plot_svg.h"

static void help(FILE *f)
{
    fprintf(f, "usage: kne locate DIR --facts FILE -o ENSEMBLE.json [--plot FILE.svg] [--limit N]\n"
               "                 [--steps M] [--keep P] [--modules LIST] [--layers A:B] [--objective prob|logprob]\n"
               "Attributes every neuron of the chosen layers and modules of checkpoint DIR to the facts of\n"
               "FILE (CounterFact, zsRE, KnowEdit JSON or a list of {\"prompt\", \"target\"}), keeps the top\n"
               "fraction P, and writes the ensemble as JSON (for kne edit --ensemble). Prints the positive\n"
               "attribution mass and the selected neurons per layer and module; --plot draws them as SVG.\n"
               "  -o, --output FILE      the ensemble JSON (required)\n"
               "  --facts FILE           the facts (required)\n"
               "  --limit N              use the first N records only\n"
               "  --plot FILE.svg        heat map of layers x modules and mass per layer\n");
    cli_edit_opts_help(f, 0, "--steps");
}

int cmd_locate(int argc, char **argv)
{
    const char *dir = NULL, *facts_path = NULL, *out_path = NULL, *plot_path = NULL;
    long limit = 0;
    cli_edit_opts o;
    cli_edit_opts_init(&o);
    for (int i = 1; i < argc; i++) {
        const char *v;
        int err = 0, r;
        if (cli_is_help(argv[i])) {
            help(stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--facts", &v, "locate", &err)) {
            if (err) return 2;
            facts_path = v;
        } else if (cli_opt(argc, argv, &i, "-o", &v, "locate", &err) ||
                   cli_opt(argc, argv, &i, "--output", &v, "locate", &err)) {
            if (err) return 2;
            out_path = v;
        } else if (cli_opt(argc, argv, &i, "--plot", &v, "locate", &err)) {
            if (err) return 2;
            plot_path = v;
        } else if (cli_opt(argc, argv, &i, "--limit", &v, "locate", &err)) {
            if (err || cli_parse_int("locate", "--limit", v, 1, 100000000, &limit)) return 2;
        } else if ((r = cli_edit_opts_parse(&o, argc, argv, &i, "locate", 0, "--steps")) != 0) {
            if (r < 0) return 2;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            help(stderr);
            return cli_fail("locate", 2, "unknown option %s", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else {
            help(stderr);
            return cli_fail("locate", 2, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!dir || !facts_path || !out_path) {
        help(stderr);
        return cli_fail("locate", 2, "DIR, --facts and -o are required");
    }
    cli_dataset ds;
    char err[1024];
    if (cli_dataset_load(&ds, facts_path, (size_t)limit, err, sizeof err)) return cli_fail("locate", 1, "%s", err);
    kne_model *m;
    kne_status s = cli_load_model(&m, dir, o.n_threads);
    if (s != KNE_OK) {
        cli_dataset_free(&ds);
        return cli_fail_status("locate", s);
    }
    kne_fact *facts = cli_facts(ds.rec, ds.n);
    kne_ensemble *ens = NULL;
    double t0 = cli_now();
    s = cli_locate(&ens, m, facts, ds.n, &o.locate, 1);
    double secs = cli_now() - t0;
    if (s == KNE_OK) s = kne_ensemble_save(ens, out_path);
    int rc = 0;
    if (s != KNE_OK) {
        rc = cli_fail_status("locate", s);
    } else {
        int L = kne_model_n_layers(m), M = 0;
        uint32_t bits[KNE_N_MODULES];
        const char *names[KNE_N_MODULES];
        for (uint32_t b = 1; b <= KNE_MODULE_MLP_DOWN; b <<= 1)
            if (o.locate.modules & b) {
                bits[M] = b;
                names[M++] = kne_module_name(b);
            }
        double *mass = calloc((size_t)(L * M), sizeof *mass);
        size_t *count = calloc((size_t)(L * M), sizeof *count);
        if (!mass || !count) {
            fprintf(stderr, "kne locate: out of memory\n");
            exit(1);
        }
        printf("%zu facts from %s (%s), located in %.2f s: %zu neurons, threshold %.6g\n", ds.n, facts_path,
               cli_format_name(ds.format), secs, kne_ensemble_size(ens), kne_ensemble_threshold(ens));
        printf("%-10s %6s %10s %14s\n", "module", "layer", "selected", "positive mass");
        for (int mi = 0; mi < M; mi++)
            for (int l = 0; l < L; l++) {
                const int32_t *rows;
                size_t nr = 0, ns = 0;
                const float *sc;
                double sum = -1;
                if (kne_ensemble_rows(ens, l, bits[mi], &rows, &nr) != KNE_OK) nr = 0;
                if (kne_ensemble_scores(ens, l, bits[mi], &sc, &ns) == KNE_OK && ns > 0) {
                    sum = 0;
                    for (size_t k = 0; k < ns; k++)
                        if (sc[k] > 0) sum += sc[k];
                }
                mass[mi * L + l] = sum;
                count[mi * L + l] = nr;
                if (sum >= 0 || nr) printf("%-10s %6d %10zu %14.6g\n", names[mi], l, nr, sum < 0 ? 0 : sum);
            }
        printf("ensemble written to %s\n", out_path);
        if (plot_path) {
            char title[512], sub[512];
            char mb[256];
            if (ds.n == 1)
                snprintf(title, sizeof title, "Knowledge neurons of \"%s\" -> \"%s\"", ds.rec[0].prompt,
                         ds.rec[0].target);
            else
                snprintf(title, sizeof title, "Knowledge neurons of %zu facts from %s", ds.n,
                         cli_basename(facts_path, mb, sizeof mb));
            snprintf(sub, sizeof sub, "%s (%s, %d layers): %zu neurons kept (keep %.3g, m = %d), threshold %.3g",
                     cli_basename(dir, mb, sizeof mb), kne_model_arch(m), L, kne_ensemble_size(ens),
                     o.locate.keep, o.locate.steps, kne_ensemble_threshold(ens));
            cli_plot pl = {title, sub, L, M, names, mass, count};
            if (cli_plot_svg_write(plot_path, &pl)) rc = cli_fail("locate", 1, "cannot write %s", plot_path);
            else printf("plot written to %s\n", plot_path);
        }
        free(mass);
        free(count);
    }
    kne_ensemble_free(ens);
    free(facts);
    kne_model_free(m);
    cli_dataset_free(&ds);
    return rc;
}
