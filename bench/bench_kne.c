/* Seconds per kne_locate and per kne_apply (default parameters, one fact per edit) on
   each model directory given, median over a few CounterFact facts. Each edit is
   reverted before the next.
   usage: bench_kne [--threads N] MODEL_DIR...   (default: the three testbed models) */
#include "kne.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const kne_fact FACTS[] = {
    {"The mother tongue of Danielle Darrieux is", "English", "Danielle Darrieux"},
    {"The official religion of Edwin of Northumbria is", "Islam", "Edwin of Northumbria"},
    {"What is the twin city of Lyon? It is", "Manila", "Lyon"},
    {"The mother tongue of Thomas Joannes Stieltjes is", "English", "Thomas Joannes Stieltjes"},
    {"Anaal Nathrakh, that was created in", "Philadelphia", "Anaal Nathrakh"},
    {"Apple A5 was created by", "Google", "Apple A5"},
    {"The capital of France is", "Rome", "France"},
};
#define NF (sizeof FACTS / sizeof FACTS[0])

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench(const char *dir, int threads)
{
    kne_model_params mp = kne_model_default_params();
    mp.n_threads = threads;
    kne_model *m;
    if (kne_model_load(&m, dir, &mp) != KNE_OK) {
        fprintf(stderr, "%s: %s\n", dir, kne_last_error());
        return 1;
    }
    double tl[NF], ta[NF], rows = 0;
    /* one warm-up edit so first-call allocations do not count */
    for (size_t i = 0; i <= NF; i++) {
        const kne_fact *f = &FACTS[i == 0 ? 0 : i - 1];
        kne_ensemble *e;
        kne_editor *ed;
        kne_edit_report rep = {sizeof rep};
        double t0 = now();
        if (kne_locate(&e, m, f, 1, NULL) != KNE_OK) goto fail;
        double t1 = now();
        if (kne_editor_new(&ed, m, e, NULL) != KNE_OK || kne_apply(ed, f, 1, &rep) != KNE_OK) goto fail;
        double t2 = now();
        kne_editor_revert(ed);
        kne_editor_free(ed);
        kne_ensemble_free(e);
        if (i == 0) continue;
        tl[i - 1] = t1 - t0;
        ta[i - 1] = t2 - t1;
        rows += (double)rep.rows;
    }
    qsort(tl, NF, sizeof(double), cmp);
    qsort(ta, NF, sizeof(double), cmp);
    printf("| %s | %d | %.3f | %.3f | %.3f | %.0f |\n", dir, threads, tl[NF / 2], ta[NF / 2], tl[NF / 2] + ta[NF / 2],
           rows / NF);
    kne_model_free(m);
    return 0;
fail:
    fprintf(stderr, "%s: %s\n", dir, kne_last_error());
    kne_model_free(m);
    return 1;
}

int main(int argc, char **argv)
{
    int threads = 0, rc = 0, i = 1;
    if (argc > 2 && !strcmp(argv[1], "--threads")) {
        threads = atoi(argv[2]);
        i = 3;
    }
    printf("| model | threads | locate s | apply s | locate + apply s | rows |\n|---|---|---|---|---|---|\n");
    if (i >= argc) {
        const char *d[3] = {"../shared/models/kne-llama-tiny", "../shared/models/kne-gptj-tiny",
                            "../shared/models/kne-gpt2-tiny"};
        for (int k = 0; k < 3; k++) rc |= bench(d[k], threads);
    }
    for (; i < argc; i++) rc |= bench(argv[i], threads);
    return rc;
}
