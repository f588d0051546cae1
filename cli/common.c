#include "common.h"
#include "progress.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cli_fail_status(const char *cmd, kne_status s)
{
    const char *msg = kne_last_error();
    fprintf(stderr, "kne %s: %s%s%s\n", cmd, kne_status_str(s), msg && *msg ? ": " : "", msg ? msg : "");
    return 1;
}

int cli_fail(const char *cmd, int code, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "kne %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int cli_is_help(const char *a)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h");
}

int cli_opt(int argc, char **argv, int *i, const char *name, const char **value, const char *cmd, int *err)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n)) return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n]) return 0;
    if (*i + 1 >= argc) {
        cli_fail(cmd, 2, "option %s needs a value", name);
        *err = 1;
        *value = NULL;
        return 1;
    }
    *value = argv[++*i];
    return 1;
}

int cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        cli_fail(cmd, 2, "%s: '%s' is not an integer in [%ld, %ld]", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *cmd, const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v)) {
        cli_fail(cmd, 2, "%s: '%s' is not a finite number", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_u64(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *s == '-' || *end || errno) {
        cli_fail(cmd, 2, "%s: '%s' is not a non-negative integer", opt, s);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

kne_status cli_load_model(kne_model **out, const char *dir, int n_threads)
{
    cli_progress pr;
    cli_progress_start(&pr, "loading");
    kne_model_params p = kne_model_default_params();
    p.n_threads = n_threads;
    p.progress = cli_progress_cb;
    p.progress_user_data = &pr;
    kne_status s = kne_model_load(out, dir, &p);
    cli_progress_done(&pr);
    return s;
}

void cli_edit_opts_init(cli_edit_opts *o)
{
    memset(o, 0, sizeof *o);
    o->locate = kne_locate_default_params();
    o->edit = kne_edit_default_params();
}

uint32_t cli_parse_modules(const char *cmd, const char *s)
{
    uint32_t bits = 0;
    char *copy = cli_strdup(s), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!strcmp(tok, "all")) {
            bits |= KNE_MODULE_ALL;
            continue;
        }
        uint32_t b = kne_module_from_name(tok);
        if (!b) {
            cli_fail(cmd, 2, "--modules: unknown module '%s' (known: attn.q, attn.k, attn.v, attn.o, mlp.gate, "
                     "mlp.up, mlp.down, all)", tok);
            free(copy);
            return 0;
        }
        bits |= b;
    }
    free(copy);
    if (!bits) cli_fail(cmd, 2, "--modules: no module given");
    return bits;
}

int cli_edit_opts_parse(cli_edit_opts *o, int argc, char **argv, int *i, const char *cmd, int with_edit,
                        const char *rs)
{
    const char *v = NULL;
    int err = 0;
    long n;
    double d;
    if (cli_opt(argc, argv, i, rs, &v, cmd, &err)) {
        if (err || cli_parse_int(cmd, rs, v, 1, 100000, &n)) return -1;
        o->locate.steps = (int32_t)n;
        return 1;
    }
    if (cli_opt(argc, argv, i, "--keep", &v, cmd, &err)) {
        if (err || cli_parse_double(cmd, "--keep", v, &d)) return -1;
        if (!(d > 0 && d <= 1)) {
            cli_fail(cmd, 2, "--keep must be in (0, 1], got %s", v);
            return -1;
        }
        o->locate.keep = d;
        return 1;
    }
    if (cli_opt(argc, argv, i, "--modules", &v, cmd, &err)) {
        if (err) return -1;
        uint32_t b = cli_parse_modules(cmd, v);
        if (!b) return -1;
        o->locate.modules = b;
        return 1;
    }
    if (cli_opt(argc, argv, i, "--layers", &v, cmd, &err)) {
        if (err) return -1;
        /* A:B half-open, A: (to the end), or a single layer A */
        char *end;
        long a = strtol(v, &end, 10), b;
        if (end == v || a < 0) {
            cli_fail(cmd, 2, "--layers: '%s' is not A:B, A: or A", v);
            return -1;
        }
        if (*end == 0) b = a + 1;
        else if (*end == ':' && end[1] == 0) b = -1;
        else if (*end == ':') {
            char *e2;
            b = strtol(end + 1, &e2, 10);
            if (*e2 || b <= a) {
                cli_fail(cmd, 2, "--layers: '%s' is not A:B with A < B", v);
                return -1;
            }
        } else {
            cli_fail(cmd, 2, "--layers: '%s' is not A:B, A: or A", v);
            return -1;
        }
        o->locate.layer_begin = (int32_t)a;
        o->locate.layer_end = (int32_t)b;
        return 1;
    }
    if (cli_opt(argc, argv, i, "--objective", &v, cmd, &err)) {
        if (err) return -1;
        if (!strcmp(v, "prob")) o->locate.objective = KNE_OBJECTIVE_PROB;
        else if (!strcmp(v, "logprob")) o->locate.objective = KNE_OBJECTIVE_LOGPROB;
        else {
            cli_fail(cmd, 2, "--objective: '%s' is not prob or logprob", v);
            return -1;
        }
        return 1;
    }
    if (cli_opt(argc, argv, i, "--threads", &v, cmd, &err)) {
        if (err || cli_parse_int(cmd, "--threads", v, 0, 4096, &n)) return -1;
        o->n_threads = (int)n;
        return 1;
    }
    if (!with_edit) return 0;
    if (cli_opt(argc, argv, i, "--ensemble", &v, cmd, &err)) {
        if (err) return -1;
        o->ensemble_path = v;
        return 1;
    }
    struct {
        const char *name;
        double *dst;
    } dbl[] = {{"--alpha", &o->edit.alpha},
               {"--lr", &o->edit.lr},
               {"--stop-loss", &o->edit.stop_loss},
               {"--weight-decay", &o->edit.weight_decay},
               {"--neighbour-weight", &o->edit.neighbour_weight}};
    for (size_t k = 0; k < sizeof dbl / sizeof dbl[0]; k++)
        if (cli_opt(argc, argv, i, dbl[k].name, &v, cmd, &err)) {
            if (err || cli_parse_double(cmd, dbl[k].name, v, dbl[k].dst)) return -1;
            return 1;
        }
    if (cli_opt(argc, argv, i, "--preserve", &v, cmd, &err)) {
        if (err) return -1;
        uint32_t bits = 0;
        char *copy = cli_strdup(v), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (!strcmp(tok, "context")) bits |= KNE_PRESERVE_CONTEXT;
            else if (!strcmp(tok, "generic")) bits |= KNE_PRESERVE_GENERIC;
            else if (!strcmp(tok, "neighbours")) bits |= KNE_PRESERVE_NEIGHBOURS;
            else if (!strcmp(tok, "none")) bits = 0;
            else {
                cli_fail(cmd, 2, "--preserve: unknown key set '%s' (context, generic, neighbours, none)", tok);
                free(copy);
                return -1;
            }
        }
        free(copy);
        o->edit.preserve = bits;
        return 1;
    }
    if (cli_opt(argc, argv, i, "--preserve-tol", &v, cmd, &err)) {
        if (err || cli_parse_double(cmd, "--preserve-tol", v, &o->edit.preserve_tol)) return -1;
        return 1;
    }
    if (cli_opt(argc, argv, i, "--neighbours-from", &v, cmd, &err)) {
        if (err) return -1;
        o->neighbours_from = v;
        return 1;
    }
    if (cli_opt(argc, argv, i, "--steps", &v, cmd, &err)) {
        if (err || cli_parse_int(cmd, "--steps", v, 0, 1000000, &n)) return -1;
        o->edit.max_steps = (int32_t)n;
        return 1;
    }
    if (cli_opt(argc, argv, i, "--neighbours", &v, cmd, &err)) {
        if (err || cli_parse_int(cmd, "--neighbours", v, 0, 1000, &n)) return -1;
        o->edit.n_neighbours = (int32_t)n;
        return 1;
    }
    return 0;
}

void cli_edit_opts_help(FILE *f, int with_edit, const char *rs)
{
    cli_edit_opts d;
    cli_edit_opts_init(&d);
    fprintf(f,
            "locate options:\n"
            "  %-22s Riemann steps m of the integrated gradients (default %d)\n"
            "  --keep P               fraction of neurons kept (global quantile), in (0,1] (default %g)\n"
            "  --modules LIST         comma-separated: attn.q,attn.k,attn.v,attn.o,mlp.gate,mlp.up,mlp.down,all\n"
            "                         (default mlp.down)\n"
            "  --layers A:B           half-open layer range, A: to the end, or one layer A (default all)\n"
            "  --objective prob|logprob  attribution objective (default prob)\n"
            "  --threads N            CPU threads, 0 = all cores (default 0)\n",
            strcmp(rs, "--steps") ? "--riemann-steps M" : "--steps M", d.locate.steps, d.locate.keep);
    char pres[64] = "";
    if (d.edit.preserve & KNE_PRESERVE_CONTEXT) strcat(pres, ",context");
    if (d.edit.preserve & KNE_PRESERVE_GENERIC) strcat(pres, ",generic");
    if (d.edit.preserve & KNE_PRESERVE_NEIGHBOURS) strcat(pres, ",neighbours");
    if (!pres[0]) strcpy(pres, ",none");
    memmove(pres, pres + 1, strlen(pres));
    if (with_edit)
        fprintf(f,
                "edit options:\n"
                "  --ensemble FILE        use this ensemble (kne locate -o) instead of locating\n"
                "  --alpha A              update scale, W + A/sqrt(n) dW (default %g)\n"
                "  --lr LR                Adam learning rate (default %g)\n"
                "  --steps N              Adam steps at most (default %d)\n"
                "  --stop-loss L          stop when the target NLL per token is below L (default %g)\n"
                "  --weight-decay W       L2 on W_kne (default %g)\n"
                "  --preserve LIST        keys the edit must leave unchanged: context,generic,neighbours or none\n"
                "                         (default %s)\n"
                "  --preserve-tol T       relative singular-value cut of the preserved keys (default %g)\n"
                "  --neighbour-weight W   weight of the neighbour KL term (default %g)\n"
                "  --neighbours N         neighbour subjects per fact (default %d)\n"
                "  --neighbours-from FILE take the neighbour subjects from the records of a data file\n"
                "                         (kne eval: by default the last 200 subjects of its --data file)\n",
                d.edit.alpha, d.edit.lr, d.edit.max_steps, d.edit.stop_loss, d.edit.weight_decay,
                pres, d.edit.preserve_tol, d.edit.neighbour_weight, d.edit.n_neighbours);
}

char *cli_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (!p) {
        fprintf(stderr, "kne: out of memory\n");
        exit(1);
    }
    memcpy(p, s, n);
    return p;
}

const char *cli_basename(const char *path, char *buf, size_t cap)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/') b--;
    size_t len = n - b < cap - 1 ? n - b : cap - 1;
    memcpy(buf, path + b, len);
    buf[len] = 0;
    return buf;
}

kne_status cli_tokenize(const kne_model *m, const char *text, int add_special, int32_t **ids, size_t *n)
{
    size_t need = 0;
    *ids = NULL;
    *n = 0;
    kne_status s = kne_tokenize(m, text, add_special, NULL, 0, &need);
    if (s != KNE_OK && s != KNE_ERR_BUFFER_TOO_SMALL) return s;
    int32_t *buf = malloc(sizeof(int32_t) * (need ? need : 1));
    if (!buf) return KNE_ERR_OUT_OF_MEMORY;
    if (need) {
        s = kne_tokenize(m, text, add_special, buf, need, &need);
        if (s != KNE_OK) {
            free(buf);
            return s;
        }
    }
    *ids = buf;
    *n = need;
    return KNE_OK;
}

kne_status cli_detokenize(const kne_model *m, const int32_t *ids, size_t n, char **text)
{
    size_t len = 0;
    *text = NULL;
    kne_status s = kne_detokenize(m, ids, n, NULL, 0, &len);
    if (s != KNE_OK && s != KNE_ERR_BUFFER_TOO_SMALL) return s;
    char *buf = malloc(len + 1);
    if (!buf) return KNE_ERR_OUT_OF_MEMORY;
    s = kne_detokenize(m, ids, n, buf, len + 1, &len);
    if (s != KNE_OK) {
        free(buf);
        return s;
    }
    *text = buf;
    return KNE_OK;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

kne_fact *cli_facts(const cli_record *rec, size_t n)
{
    kne_fact *f = calloc(n ? n : 1, sizeof *f);
    if (!f) {
        fprintf(stderr, "kne: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        f[i].prompt = rec[i].prompt;
        f[i].target = rec[i].target;
        f[i].subject = rec[i].subject;
    }
    return f;
}

kne_status cli_locate(kne_ensemble **out, kne_model *m, const kne_fact *facts, size_t n,
                      const kne_locate_params *lp, int show_progress)
{
    kne_locate_params p = *lp;
    cli_progress pr;
    if (show_progress) {
        cli_progress_start(&pr, "locating");
        p.progress = cli_progress_cb;
        p.progress_user_data = &pr;
    }
    kne_status s = kne_locate(out, m, facts, n, &p);
    if (show_progress) cli_progress_done(&pr);
    return s;
}

int cli_neighbour_subjects(cli_edit_opts *o, const char *cmd, const cli_dataset *fallback, size_t tail)
{
    cli_dataset own;
    const cli_dataset *src = fallback;
    char err[1024];
    if (o->neighbours_from) {
        if (cli_dataset_load(&own, o->neighbours_from, 0, err, sizeof err)) {
            cli_fail(cmd, 1, "--neighbours-from: %s", err);
            return -1;
        }
        src = &own;
        tail = own.n;
    }
    if (!src) return 0;
    size_t begin = src->n > tail ? src->n - tail : 0, k = 0;
    o->neighbour_storage = calloc(src->n - begin + 1, sizeof(char *));
    if (!o->neighbour_storage) {
        fprintf(stderr, "kne: out of memory\n");
        exit(1);
    }
    for (size_t i = begin; i < src->n; i++) {
        const char *subj = src->rec[i].subject;
        if (!subj || !*subj) continue;
        int dup = 0;
        for (size_t j = 0; j < k && !dup; j++) dup = !strcmp(o->neighbour_storage[j], subj);
        if (!dup) o->neighbour_storage[k++] = cli_strdup(subj);
    }
    o->n_neighbour_storage = k;
    o->edit.neighbour_subjects = (const char *const *)o->neighbour_storage;
    o->edit.n_neighbour_subjects = k;
    if (src == &own) cli_dataset_free(&own);
    return 0;
}

void cli_edit_opts_free(cli_edit_opts *o)
{
    for (size_t i = 0; i < o->n_neighbour_storage; i++) free(o->neighbour_storage[i]);
    free(o->neighbour_storage);
    o->neighbour_storage = NULL;
    o->n_neighbour_storage = 0;
    o->edit.neighbour_subjects = NULL;
    o->edit.n_neighbour_subjects = 0;
}
