/* The longest stall a reader sees while an edit is applied. Reader threads forward a
   short probe in a loop and time every call; the main thread runs kne_apply (and
   kne_editor_revert) several times. Forward latencies are split into those that
   overlap an apply, a revert, or neither. Since only the final row write of kne_apply
   takes the model's exclusive lock, the worst latency during an apply should be close
   to the worst outside it, far below the apply's own duration (the optimisation).

   usage: bench_stall MODEL_DIR [READERS=1] [APPLIES=5] [N_THREADS=0] [DEVICE=cpu] */
#include "kne.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 200000
#define MAX_APPLIES 64

typedef struct { double t0, t1; } span;

typedef struct reader {
    kne_model *m;
    const int32_t *ids;
    size_t n;
    float *lg;
    span *s;
    size_t ns;
    int errors;
} reader;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int stop;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int stopped(void)
{
    pthread_mutex_lock(&mu);
    int s = stop;
    pthread_mutex_unlock(&mu);
    return s;
}

static void *read_loop(void *arg)
{
    reader *r = arg;
    while (!stopped() && r->ns < MAX_SAMPLES) {
        double t0 = now_s();
        if (kne_model_forward(r->m, r->ids, r->n, r->lg) != KNE_OK) r->errors++;
        r->s[r->ns++] = (span){t0, now_s()};
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct stats { size_t n; double p50, p99, max; } stats;

static stats summarise(double *v, size_t n)
{
    stats st = {n, 0, 0, 0};
    if (!n) return st;
    qsort(v, n, sizeof *v, cmp_double);
    st.p50 = v[n / 2];
    st.p99 = v[(size_t)(0.99 * (double)(n - 1))];
    st.max = v[n - 1];
    return st;
}

static int overlaps(span a, const span *iv, int n)
{
    for (int i = 0; i < n; i++)
        if (a.t0 < iv[i].t1 && a.t1 > iv[i].t0) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [READERS=1] [APPLIES=5] [N_THREADS=0] [DEVICE=cpu]\n", argv[0]);
        return 2;
    }
    int n_readers = argc > 2 ? atoi(argv[2]) : 1, n_applies = argc > 3 ? atoi(argv[3]) : 5;
    if (n_readers < 1) n_readers = 1;
    if (n_applies < 1 || n_applies > MAX_APPLIES) n_applies = 5;
    kne_model_params mp = kne_model_default_params();
    mp.n_threads = argc > 4 ? atoi(argv[4]) : 0;
    mp.device = argc > 5 ? argv[5] : "cpu";

    kne_model *m = NULL;
    if (kne_model_load(&m, argv[1], &mp) != KNE_OK) {
        fprintf(stderr, "load: %s\n", kne_last_error());
        return 1;
    }
    const char *prompt = "The mother tongue of Danielle Darrieux is";
    kne_fact fact = {prompt, "English", NULL};
    int32_t ids[64];
    size_t n = 0;
    kne_ensemble *ens = NULL;
    kne_editor *ed = NULL;
    kne_status s = kne_tokenize(m, prompt, 1, ids, 64, &n);
    if (s == KNE_OK) s = kne_locate(&ens, m, &fact, 1, NULL);
    if (s == KNE_OK) s = kne_editor_new(&ed, m, ens, NULL);
    if (s != KNE_OK) {
        fprintf(stderr, "setup: %s\n", kne_last_error());
        return 1;
    }
    size_t V = (size_t)kne_model_n_vocab(m);

    /* one apply alone, for its duration without readers */
    kne_edit_report rep = {sizeof rep, 0, 0, 0, 0, 0};
    double t = now_s();
    kne_apply(ed, &fact, 1, &rep);
    double apply_alone = now_s() - t;
    t = now_s();
    kne_editor_revert(ed);
    double revert_alone = now_s() - t;

    reader *rd = calloc((size_t)n_readers, sizeof *rd);
    pthread_t *th = calloc((size_t)n_readers, sizeof *th);
    for (int i = 0; i < n_readers; i++) {
        rd[i] = (reader){m, ids, n, malloc(sizeof(float) * n * V), malloc(sizeof(span) * MAX_SAMPLES), 0, 0};
        pthread_create(&th[i], NULL, read_loop, &rd[i]);
    }
    span ap[MAX_APPLIES], rv[MAX_APPLIES];
    double apply_max = 0, apply_sum = 0;
    int failed = 0;
    usleep(1000000); /* baseline: readers alone */
    for (int k = 0; k < n_applies; k++) {
        ap[k].t0 = now_s();
        if (kne_apply(ed, &fact, 1, &rep) != KNE_OK) failed++;
        ap[k].t1 = now_s();
        usleep(300000);
        rv[k].t0 = now_s();
        if (kne_editor_revert(ed) != KNE_OK) failed++;
        rv[k].t1 = now_s();
        usleep(300000);
        double d = ap[k].t1 - ap[k].t0;
        apply_sum += d;
        if (d > apply_max) apply_max = d;
    }
    pthread_mutex_lock(&mu);
    stop = 1;
    pthread_mutex_unlock(&mu);
    size_t total = 0;
    int errors = 0;
    for (int i = 0; i < n_readers; i++) {
        pthread_join(th[i], NULL);
        total += rd[i].ns;
        errors += rd[i].errors;
    }
    double *in_apply = malloc(sizeof(double) * total), *in_revert = malloc(sizeof(double) * total),
           *outside = malloc(sizeof(double) * total);
    size_t na = 0, nr = 0, no = 0;
    for (int i = 0; i < n_readers; i++)
        for (size_t j = 0; j < rd[i].ns; j++) {
            span x = rd[i].s[j];
            double lat = 1e3 * (x.t1 - x.t0);
            if (overlaps(x, ap, n_applies)) in_apply[na++] = lat;
            else if (overlaps(x, rv, n_applies)) in_revert[nr++] = lat;
            else outside[no++] = lat;
        }
    stats sa = summarise(in_apply, na), sr = summarise(in_revert, nr), so = summarise(outside, no);
    printf("bench_stall: %s on %s, %d reader(s), probe %zu tokens, n_threads %d, %d applies of %zu neurons "
           "(%d Adam steps)\n", kne_model_arch(m), kne_model_device(m), n_readers, n, mp.n_threads, n_applies,
           kne_ensemble_size(ens), rep.steps);
    printf("  apply alone %.1f ms, revert alone %.2f ms; apply with readers: mean %.1f ms, max %.1f ms\n",
           1e3 * apply_alone, 1e3 * revert_alone, 1e3 * apply_sum / n_applies, 1e3 * apply_max);
    printf("  forward latency (ms)        n      p50      p99      max\n");
    printf("  outside apply/revert %8zu %8.2f %8.2f %8.2f\n", so.n, so.p50, so.p99, so.max);
    printf("  overlapping an apply %8zu %8.2f %8.2f %8.2f\n", sa.n, sa.p50, sa.p99, sa.max);
    printf("  overlapping a revert %8zu %8.2f %8.2f %8.2f\n", sr.n, sr.p50, sr.p99, sr.max);
    printf("  worst extra stall during an apply: %.2f ms (max during apply - max outside), "
           "vs %.1f ms mean apply\n", sa.max - so.max, 1e3 * apply_sum / n_applies);
    if (failed || errors) printf("  %d failed apply/revert, %d failed forwards\n", failed, errors);

    for (int i = 0; i < n_readers; i++) {
        free(rd[i].lg);
        free(rd[i].s);
    }
    free(rd);
    free(th);
    free(in_apply);
    free(in_revert);
    free(outside);
    kne_editor_free(ed);
    kne_ensemble_free(ens);
    kne_model_free(m);
    return failed || errors;
}
