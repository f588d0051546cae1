/* Model load and forward: bench_load MODEL_DIR [n_threads [device]]
                          bench_load MODEL_DIR --tokenizer-only
   Reports, for one fresh process:
   - baseline RSS before the load (libkne + libtorch + libc code and data already touched),
   - load seconds (kne_model_load, wall clock),
   - peak RSS (getrusage ru_maxrss, = VmHWM) and the RSS after the load,
   - the weights' size in the compute dtype (float32 on CPU: sum of numel x 4 over every
     tensor of the checkpoint's safetensors headers, read here with plain stdio),
   - peak RSS / weights, with and without the baseline,
   - RSS when the first tensor has been loaded (config, tokenizer and libtorch's first
     use are paid by then) and the largest RSS step from one tensor to the next,
   - the median (and min) wall time of a 16-token forward over 20 runs (2 warm-up runs
     first), and the process CPU time per forward (all threads; less sensitive to a busy
     machine than wall time).
   --tokenizer-only loads just the tokenizer and reports its peak RSS increment.
   The last line is a Markdown table row for docs/BENCHMARKS.md. */
#include "kne.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A "VmXXX:" line of /proc/self/status, in MiB (-1 if unavailable). */
static double proc_status_mb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double mb = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            mb = strtod(line + kl + 1, NULL) / 1024.0;
            break;
        }
    fclose(f);
    return mb;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           1e-6 * ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec);
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* kilobytes on Linux */
}

/* Sum of numel over the tensors of one safetensors file's header (0 on error). */
static double file_numel(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char le[8];
    double total = 0;
    if (fread(le, 1, 8, f) == 8) {
        unsigned long long hlen = 0;
        for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | le[i];
        char *h = hlen < 100000000ULL ? malloc(hlen + 1) : NULL;
        if (h && fread(h, 1, hlen, f) == hlen) {
            h[hlen] = '\0';
            for (char *p = strstr(h, "\"shape\""); p; p = strstr(p + 1, "\"shape\"")) {
                char *q = strchr(p, '[');
                if (!q) break;
                double n = 1;
                for (q++; *q && *q != ']';) {
                    char *e;
                    long long d = strtoll(q, &e, 10);
                    if (e == q) {
                        q++;
                        continue;
                    }
                    n *= (double)d;
                    q = e;
                }
                total += n;
            }
        }
        free(h);
    }
    fclose(f);
    return total;
}

/* Elements in every *.safetensors file of dir. */
static double checkpoint_numel(const char *dir, double *file_bytes)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    double total = 0;
    *file_bytes = 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        total += file_numel(path);
        FILE *f = fopen(path, "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            *file_bytes += (double)ftell(f);
            fclose(f);
        }
    }
    closedir(d);
    return total;
}

/* Progress callback: RSS after each loaded tensor. */
typedef struct rss_track {
    int calls;
    double first, last, max_step;
} rss_track;

static bool on_tensor(float fraction, void *ud)
{
    (void)fraction;
    rss_track *t = ud;
    double rss = proc_status_mb("VmRSS");
    if (t->calls == 0) t->first = rss;
    else if (rss - t->last > t->max_step) t->max_step = rss - t->last;
    t->last = rss;
    t->calls++;
    return true;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [device]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    double base_rss = proc_status_mb("VmRSS");
    double base_peak = peak_rss_mb();

    if (argc > 2 && !strcmp(argv[2], "--tokenizer-only")) {
        kne_tokenizer *tok = NULL;
        double t0 = now();
        kne_status s = kne_tokenizer_load(&tok, dir);
        double sec = now() - t0;
        if (s != KNE_OK) {
            fprintf(stderr, "tokenizer %s: %s\n", dir, kne_last_error());
            return 1;
        }
        printf("tokenizer only: %.3f s, vocab %d, baseline RSS %.1f MB, peak RSS %.1f MB (+%.1f), RSS after %.1f MB\n",
               sec, kne_tokenizer_n_vocab(tok), base_rss, peak_rss_mb(), peak_rss_mb() - base_rss,
               proc_status_mb("VmRSS"));
        kne_tokenizer_free(tok);
        return 0;
    }
    kne_model_params p = kne_model_default_params();
    if (argc > 2) p.n_threads = atoi(argv[2]);
    if (argc > 3) p.device = argv[3];
    rss_track track = {0, 0, 0, 0};
    p.progress = on_tensor;
    p.progress_user_data = &track;
    kne_model *m = NULL;
    double t0 = now();
    kne_status s = kne_model_load(&m, dir, &p);
    double load_s = now() - t0;
    if (s != KNE_OK) {
        fprintf(stderr, "load %s: %s: %s\n", dir, kne_status_str(s), kne_last_error());
        return 1;
    }
    double peak = peak_rss_mb(), after_rss = proc_status_mb("VmRSS");

    double file_bytes = 0;
    double numel = checkpoint_numel(dir, &file_bytes);
    double weights_mb = numel * 4.0 / (1024.0 * 1024.0); /* float32: the CPU compute dtype */

    /* 16-token prompt: the text's ids, repeated if it is shorter */
    enum { N = 16, RUNS = 20 };
    int32_t ids[64], prompt[N];
    size_t n = 0;
    s = kne_tokenize(m, "The mother tongue of Danielle Darrieux is French, and the capital of France is Paris.", 0,
                     ids, 64, &n);
    if (s != KNE_OK || n == 0) {
        fprintf(stderr, "tokenize: %s\n", kne_last_error());
        return 1;
    }
    for (int i = 0; i < N; i++) prompt[i] = ids[(size_t)i % n];
    size_t V = (size_t)kne_model_n_vocab(m);
    float *logits = malloc(sizeof(float) * N * V);
    double times[RUNS], cpu0 = 0;
    for (int r = -2; r < RUNS; r++) {
        if (r == 0) cpu0 = cpu_seconds();
        double f0 = now();
        s = kne_model_forward(m, prompt, N, logits);
        if (s != KNE_OK) {
            fprintf(stderr, "forward: %s\n", kne_last_error());
            return 1;
        }
        if (r >= 0) times[r] = now() - f0;
    }
    double cpu_ms = 1e3 * (cpu_seconds() - cpu0) / RUNS; /* all threads of the process */
    qsort(times, RUNS, sizeof times[0], cmp_double);
    double fwd_ms = 1e3 * 0.5 * (times[RUNS / 2 - 1] + times[RUNS / 2]);
    double peak_after_fwd = peak_rss_mb();

    const char *name = strrchr(dir, '/');
    name = name && name[1] ? name + 1 : dir;
    printf("model                 %s (%s, %d layers, n_embd %d, vocab %d, device %s, n_threads %d)\n", name,
           kne_model_arch(m), kne_model_n_layers(m), kne_model_n_embd(m), kne_model_n_vocab(m), kne_model_device(m),
           p.n_threads);
    printf("checkpoint files      %.1f MB (safetensors, source dtype)\n", file_bytes / (1024.0 * 1024.0));
    printf("weights, float32      %.1f MB (%.2fM parameters)\n", weights_mb, numel / 1e6);
    printf("baseline RSS          %.1f MB before load (peak so far %.1f MB)\n", base_rss, base_peak);
    printf("load                  %.3f s\n", load_s);
    printf("peak RSS after load   %.1f MB (RSS now %.1f MB)\n", peak, after_rss);
    printf("peak / weights        %.2f with the baseline, %.2f without (peak - baseline = %.1f MB)\n",
           peak / weights_mb, (peak - base_rss) / weights_mb, peak - base_rss);
    printf("during load           RSS %.1f MB after the first tensor (+%.1f over the baseline), largest step "
           "%.1f MB over %d tensors\n", track.first, track.first - base_rss, track.max_step, track.calls);
    printf("forward, 16 tokens    %.2f ms median of %d (min %.2f, max %.2f), %.2f ms CPU each; peak RSS after %.1f MB\n",
           fwd_ms, RUNS, 1e3 * times[0], 1e3 * times[RUNS - 1], cpu_ms, peak_after_fwd);
    printf("| %s | %.1f | %.3f | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f (min %.2f) | %.2f |\n", name, weights_mb, load_s,
           base_rss, peak, peak - base_rss, peak / weights_mb, (peak - base_rss) / weights_mb, fwd_ms, 1e3 * times[0],
           cpu_ms);
    free(logits);
    kne_model_free(m);
    return 0;
}
