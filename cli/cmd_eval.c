/* kne eval DIR --data FILE: edits each record (or batch of records) into the model,
   measures the EasyEdit metrics on the edited model, reverts, and averages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "common.h"
#include "metrics.h"
#include "progress.h"

enum { METHOD_NONE, METHOD_KNE, METHOD_FT };
static const char *const method_names[] = {"none", "kne", "ft"};

static void help(FILE *f)
{
    fprintf(f,
            "usage: kne eval DIR --data FILE [--method kne|ft|none] [--limit N] [--skip N] [--batch B]\n"
            "               [--seed S] [--json] [--details FILE.jsonl] [--no-fluency] [--fluency-n N]\n"
            "               [--ft-layer L] [--ft-lr LR] [--ft-steps N] [locate options] [edit options]\n"
            "For each record of FILE (CounterFact, zsRE or KnowEdit JSON), or each batch of B records,\n"
            "edits the model of checkpoint DIR, measures the metrics of docs/metrics.md on the edited\n"
            "model, and reverts the edit, so that every edit starts from the original model.\n"
            "  --method M       kne: locate + apply (default); ft: FT-L, plain fine-tuning of every row of\n"
            "                   one layer's mlp.down (Adam, lr 5e-4, 25 steps, update W + dW); none: no edit\n"
            "  --ft-layer L     the FT-L layer (default n_layers / 2)\n"
            "  --ft-lr LR       FT-L learning rate (default 5e-4)\n"
            "  --ft-steps N     FT-L Adam steps (default 25)\n"
            "  --limit N        the first N records (after --skip) only\n"
            "  --skip N         leave out the first N records\n"
            "  --batch B        records per edit (default 1)\n"
            "  --seed S         seed of the fluency samples (record i uses S + i; default 0)\n"
            "  --no-fluency     do not sample continuations (fluency null; much faster)\n"
            "  --fluency-n N    measure fluency on the first N records only (default all)\n"
            "  --json           print one JSON object with the averages instead of a table\n"
            "  --details FILE   also write one JSON line of metrics per record\n");
    cli_edit_opts_help(f, 1, "--riemann-steps");
}

typedef struct rec_metrics {
    double es, gen, port, loc, flu;
    int has_gen, has_port, has_loc, has_flu;
} rec_metrics;

typedef struct pre_loc {
    cli_tf tf;
    int32_t *pred;
} pre_loc;

static kne_status mean_accuracy(kne_model *m, char *const *prompts, const cli_qa *qa, size_t n, const char *answer,
                                double *out)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double a;
        kne_status s = qa ? cli_tf_accuracy(m, qa[i].prompt, qa[i].answer, &a)
                          : cli_tf_accuracy(m, prompts[i], answer, &a);
        if (s != KNE_OK) return s;
        sum += a;
    }
    *out = n ? sum / (double)n : 0;
    return KNE_OK;
}

/* Pre-edit argmax on each locality prompt + answer. */
static kne_status locality_before(kne_model *m, const cli_record *r, pre_loc **out)
{
    *out = NULL;
    if (!r->n_locality) return KNE_OK;
    pre_loc *p = calloc(r->n_locality, sizeof *p);
    if (!p) return KNE_ERR_OUT_OF_MEMORY;
    kne_status s = KNE_OK;
    for (size_t i = 0; s == KNE_OK && i < r->n_locality; i++) {
        s = cli_tf_encode(m, r->locality[i].prompt, r->locality[i].answer, &p[i].tf);
        if (s == KNE_OK) {
            p[i].pred = malloc(p[i].tf.n_ans * sizeof *p[i].pred);
            s = p[i].pred ? cli_tf_predict(m, &p[i].tf, p[i].pred) : KNE_ERR_OUT_OF_MEMORY;
        }
    }
    *out = p;
    return s;
}

static void free_pre(pre_loc *p, size_t n)
{
    if (!p) return;
    for (size_t i = 0; i < n; i++) {
        cli_tf_free(&p[i].tf);
        free(p[i].pred);
    }
    free(p);
}

static kne_status measure(kne_model *m, const cli_record *r, const pre_loc *pre, int fluency, uint64_t seed,
                          rec_metrics *out)
{
    memset(out, 0, sizeof *out);
    kne_status s = cli_tf_accuracy(m, r->prompt, r->target, &out->es);
    if (s == KNE_OK && r->n_rephrase) {
        out->has_gen = 1;
        s = mean_accuracy(m, r->rephrase, NULL, r->n_rephrase, r->target, &out->gen);
    }
    if (s == KNE_OK && r->n_portability) {
        out->has_port = 1;
        s = mean_accuracy(m, NULL, r->portability, r->n_portability, NULL, &out->port);
    }
    if (s == KNE_OK && r->n_locality) {
        out->has_loc = 1;
        double sum = 0;
        for (size_t i = 0; s == KNE_OK && i < r->n_locality; i++) {
            int32_t *post = malloc(pre[i].tf.n_ans * sizeof *post);
            s = post ? cli_tf_predict(m, &pre[i].tf, post) : KNE_ERR_OUT_OF_MEMORY;
            if (s == KNE_OK) sum += cli_token_accuracy(post, pre[i].pred, pre[i].tf.n_ans);
            free(post);
        }
        out->loc = sum / (double)r->n_locality;
    }
    if (s == KNE_OK && fluency) {
        out->has_flu = 1;
        s = cli_fluency(m, r->prompt, 5, 100, seed, &out->flu);
    }
    return s;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, const char *key, double v, int present, int last)
{
    fprintf(f, "\"%s\": ", key);
    if (present && isfinite(v)) fprintf(f, "%.2f", v);
    else fputs("null", f);
    fputs(last ? "" : ", ", f);
}

int cmd_eval(int argc, char **argv)
{
    const char *dir = NULL, *data = NULL, *details = NULL;
    long limit = 0, skip = 0, batch = 1, ft_layer = -1, ft_steps = 25, fluency_n = -1;
    double ft_lr = 5e-4;
    uint64_t seed = 0;
    int method = METHOD_KNE, as_json = 0, fluency = 1;
    cli_edit_opts o;
    cli_edit_opts_init(&o);
    for (int i = 1; i < argc; i++) {
        const char *v;
        int err = 0, r;
        if (cli_is_help(argv[i])) {
            help(stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--data", &v, "eval", &err)) {
            if (err) return 2;
            data = v;
        } else if (cli_opt(argc, argv, &i, "--details", &v, "eval", &err)) {
            if (err) return 2;
            details = v;
        } else if (cli_opt(argc, argv, &i, "--method", &v, "eval", &err)) {
            if (err) return 2;
            if (!strcmp(v, "kne")) method = METHOD_KNE;
            else if (!strcmp(v, "ft")) method = METHOD_FT;
            else if (!strcmp(v, "none")) method = METHOD_NONE;
            else return cli_fail("eval", 2, "--method: '%s' is not kne, ft or none", v);
        } else if (cli_opt(argc, argv, &i, "--limit", &v, "eval", &err)) {
            if (err || cli_parse_int("eval", "--limit", v, 1, 100000000, &limit)) return 2;
        } else if (cli_opt(argc, argv, &i, "--skip", &v, "eval", &err)) {
            if (err || cli_parse_int("eval", "--skip", v, 0, 100000000, &skip)) return 2;
        } else if (cli_opt(argc, argv, &i, "--batch", &v, "eval", &err)) {
            if (err || cli_parse_int("eval", "--batch", v, 1, 1000000, &batch)) return 2;
        } else if (cli_opt(argc, argv, &i, "--seed", &v, "eval", &err)) {
            if (err || cli_parse_u64("eval", "--seed", v, &seed)) return 2;
        } else if (cli_opt(argc, argv, &i, "--ft-layer", &v, "eval", &err)) {
            if (err || cli_parse_int("eval", "--ft-layer", v, 0, 100000, &ft_layer)) return 2;
        } else if (cli_opt(argc, argv, &i, "--ft-lr", &v, "eval", &err)) {
            if (err || cli_parse_double("eval", "--ft-lr", v, &ft_lr)) return 2;
        } else if (cli_opt(argc, argv, &i, "--ft-steps", &v, "eval", &err)) {
            if (err || cli_parse_int("eval", "--ft-steps", v, 0, 1000000, &ft_steps)) return 2;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (!strcmp(argv[i], "--no-fluency")) {
            fluency = 0;
        } else if (cli_opt(argc, argv, &i, "--fluency-n", &v, "eval", &err)) {
            if (err || cli_parse_int("eval", "--fluency-n", v, 0, 100000000, &fluency_n)) return 2;
        } else if ((r = cli_edit_opts_parse(&o, argc, argv, &i, "eval", 1, "--riemann-steps")) != 0) {
            if (r < 0) return 2;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            help(stderr);
            return cli_fail("eval", 2, "unknown option %s", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else {
            help(stderr);
            return cli_fail("eval", 2, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!dir || !data) {
        help(stderr);
        return cli_fail("eval", 2, "DIR and --data are required");
    }
    cli_dataset ds;
    char err[1024];
    if (cli_dataset_load(&ds, data, 0, err, sizeof err)) return cli_fail("eval", 1, "%s", err);
    if ((size_t)skip >= ds.n) {
        cli_dataset_free(&ds);
        return cli_fail("eval", 1, "%s: --skip %ld leaves no records", data, skip);
    }
    const cli_record *recs = ds.rec + skip;
    size_t n = ds.n - (size_t)skip;
    if (limit && (size_t)limit < n) n = (size_t)limit;
    /* neighbour subjects for the editor: --neighbours-from, else the file's last 200 */
    if (cli_neighbour_subjects(&o, "eval", &ds, 200)) {
        cli_dataset_free(&ds);
        return 1;
    }
    kne_model *m = NULL;
    kne_status s = cli_load_model(&m, dir, o.n_threads);
    if (s != KNE_OK) {
        cli_dataset_free(&ds);
        return cli_fail_status("eval", s);
    }
    FILE *df = NULL;
    if (details && !(df = fopen(details, "w"))) {
        kne_model_free(m);
        cli_dataset_free(&ds);
        return cli_fail("eval", 1, "cannot write %s", details);
    }

    /* FT-L: one editor over every row of one layer's mlp.down, reused for every edit */
    kne_editor *ft = NULL;
    double edit_secs = 0;
    size_t n_edits = 0;
    if (method == METHOD_FT) {
        int L = kne_model_n_layers(m), E = kne_model_n_embd(m);
        if (ft_layer < 0) ft_layer = L / 2;
        if (ft_layer >= L) {
            if (df) fclose(df);
            kne_model_free(m);
            cli_dataset_free(&ds);
            cli_edit_opts_free(&o);
            return cli_fail("eval", 2, "--ft-layer %ld: the model has %d layers", ft_layer, L);
        }
        int32_t *rows = malloc(sizeof *rows * (size_t)E);
        for (int i = 0; rows && i < E; i++) rows[i] = i;
        kne_ensemble *ens = NULL;
        if (s == KNE_OK) s = rows ? kne_ensemble_from_rows(&ens, m, (int32_t)ft_layer, KNE_MODULE_MLP_DOWN, rows,
                                                           (size_t)E)
                                  : KNE_ERR_OUT_OF_MEMORY;
        /* plain FT-L: every extension of the editor off (zero), whatever its defaults are */
        kne_edit_params ep;
        memset(&ep, 0, sizeof ep);
        ep.struct_size = sizeof ep;
        ep.alpha = sqrt((double)E); /* alpha / sqrt(n) = 1: the update is W + W_ft */
        ep.lr = ft_lr;
        ep.max_steps = (int32_t)ft_steps;
        if (s == KNE_OK) s = kne_editor_new(&ft, m, ens, &ep);
        kne_ensemble_free(ens);
        free(rows);
    }

    double sum_es = 0, sum_gen = 0, sum_port = 0, sum_loc = 0, sum_flu = 0;
    size_t n_gen = 0, n_port = 0, n_loc = 0, n_flu = 0, done = 0;
    cli_progress pr;
    cli_progress_start(&pr, method_names[method]);
    for (size_t b0 = 0; s == KNE_OK && b0 < n; b0 += (size_t)batch) {
        size_t bn = n - b0 < (size_t)batch ? n - b0 : (size_t)batch;
        const cli_record *br = recs + b0;
        pre_loc **pre = calloc(bn, sizeof *pre);
        if (!pre) s = KNE_ERR_OUT_OF_MEMORY;
        for (size_t k = 0; s == KNE_OK && k < bn; k++) {
            s = locality_before(m, &br[k], &pre[k]);
            if (s != KNE_OK) fprintf(stderr, "kne eval: record %zu: locality prompt\n", skip + b0 + k);
        }
        kne_editor *ed = NULL;
        int applied = 0;
        double t0, batch_secs = 0;
        if (s == KNE_OK && method != METHOD_NONE) {
            kne_fact *facts = cli_facts(br, bn);
            t0 = cli_now();
            if (method == METHOD_KNE) {
                kne_ensemble *ens = NULL;
                s = cli_locate(&ens, m, facts, bn, &o.locate, 0);
                if (s == KNE_OK) s = kne_editor_new(&ed, m, ens, &o.edit);
                kne_ensemble_free(ens);
            } else {
                ed = ft;
            }
            if (s == KNE_OK) s = kne_apply(ed, facts, bn, NULL);
            if (s == KNE_OK) applied = 1;
            batch_secs = cli_now() - t0;
            edit_secs += batch_secs;
            n_edits++;
            free(facts);
            if (s != KNE_OK) fprintf(stderr, "kne eval: editing record %zu failed\n", skip + b0);
        }
        for (size_t k = 0; s == KNE_OK && k < bn; k++) {
            rec_metrics rm;
            size_t idx = skip + b0 + k;
            int flu = fluency && (fluency_n < 0 || b0 + k < (size_t)fluency_n);
            s = measure(m, &br[k], pre[k], flu, seed + idx, &rm);
            if (s != KNE_OK) {
                fprintf(stderr, "kne eval: measuring record %zu failed\n", idx);
                break;
            }
            sum_es += rm.es;
            if (rm.has_gen) sum_gen += rm.gen, n_gen++;
            if (rm.has_port) sum_port += rm.port, n_port++;
            if (rm.has_loc) sum_loc += rm.loc, n_loc++;
            if (rm.has_flu) sum_flu += rm.flu, n_flu++;
            done++;
            if (df) {
                fprintf(df, "{\"record\": %zu, \"prompt\": ", idx);
                json_string(df, br[k].prompt);
                fputs(", \"target\": ", df);
                json_string(df, br[k].target);
                fputs(", ", df);
                json_num(df, "edit_success", 100 * rm.es, 1, 0);
                json_num(df, "generalization", 100 * rm.gen, rm.has_gen, 0);
                json_num(df, "portability", 100 * rm.port, rm.has_port, 0);
                json_num(df, "locality", 100 * rm.loc, rm.has_loc, 0);
                json_num(df, "fluency", 100 * rm.flu, rm.has_flu, 0);
                fprintf(df, "\"edit_seconds\": %.3f, \"batch\": %zu", batch_secs, b0 / (size_t)batch);
                fputs("}\n", df);
                fflush(df);
            }
        }
        if (applied) {
            kne_status r = kne_editor_revert(ed);
            if (s == KNE_OK) s = r;
        }
        if (ed != ft) kne_editor_free(ed);
        for (size_t k = 0; k < bn && pre; k++) free_pre(pre[k], br[k].n_locality);
        free(pre);
        char extra[96];
        snprintf(extra, sizeof extra, "%zu/%zu  es %.1f", done, n, done ? 100 * sum_es / (double)done : 0.0);
        cli_progress_update(&pr, (double)done / (double)n, extra);
    }
    cli_progress_done(&pr);
    kne_editor_free(ft);
    if (df) fclose(df);
    if (s != KNE_OK) {
        int rc = cli_fail_status("eval", s);
        kne_model_free(m);
        cli_dataset_free(&ds);
        cli_edit_opts_free(&o);
        return rc;
    }
    char mb[256], db[256];
    cli_basename(dir, mb, sizeof mb);
    cli_basename(data, db, sizeof db);
    double es = 100 * sum_es / (double)done, gen = n_gen ? 100 * sum_gen / (double)n_gen : NAN,
           port = n_port ? 100 * sum_port / (double)n_port : NAN, loc = n_loc ? 100 * sum_loc / (double)n_loc : NAN,
           flu = n_flu ? 100 * sum_flu / (double)n_flu : NAN, spe = n_edits ? edit_secs / (double)n_edits : 0;
    if (as_json) {
        fputs("{\"model\": ", stdout);
        json_string(stdout, mb);
        fputs(", \"dataset\": ", stdout);
        json_string(stdout, db);
        printf(", \"method\": \"%s\", \"n\": %zu, ", method_names[method], done);
        json_num(stdout, "edit_success", es, 1, 0);
        json_num(stdout, "generalization", gen, n_gen > 0, 0);
        json_num(stdout, "portability", port, n_port > 0, 0);
        json_num(stdout, "locality", loc, n_loc > 0, 0);
        json_num(stdout, "fluency", flu, n_flu > 0, 0);
        printf("\"seconds_per_edit\": %.3f}\n", spe);
    } else {
        printf("model             %s (%s)\n", mb, kne_model_arch(m));
        printf("dataset           %s (%s), %zu records from %ld\n", db, cli_format_name(ds.format), done, skip);
        if (method == METHOD_FT)
            printf("method            ft (FT-L: every row of layer %ld mlp.down, lr %g, %ld steps), batch %ld\n",
                   ft_layer, ft_lr, ft_steps, batch);
        else printf("method            %s, batch %ld\n", method_names[method], batch);
#define ROW(name, v) do { if (isfinite(v)) printf("%-17s %6.2f\n", name, v); else printf("%-17s %6s\n", name, "-"); } while (0)
        ROW("edit_success", es);
        ROW("generalization", gen);
        ROW("portability", port);
        ROW("locality", loc);
        ROW("fluency", flu);
#undef ROW
        printf("%-17s %6.3f\n", "seconds_per_edit", spe);
    }
    kne_model_free(m);
    cli_dataset_free(&ds);
    cli_edit_opts_free(&o);
    return 0;
}
