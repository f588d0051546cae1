/* kne edit DIR --facts FILE -o OUTDIR: locate (or load an ensemble), apply the edit,
   save the edited checkpoint. OUTDIR appears only when everything succeeded. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmds.h"
#include "common.h"
#include "progress.h"

static void help(FILE *f)
{
    fprintf(f, "usage: kne edit DIR --facts FILE -o OUTDIR [--ensemble E.json] [--limit N] [--shard-bytes B]\n"
               "               [locate options] [edit options]\n"
               "Edits the facts of FILE (CounterFact, zsRE, KnowEdit JSON or a list of {\"prompt\", \"target\"})\n"
               "into the model of checkpoint DIR as one batch, and writes the edited model as a Hugging Face\n"
               "checkpoint OUTDIR (same tensor names and dtypes as DIR). OUTDIR must not exist; on any\n"
               "failure it is not created.\n"
               "  -o, --output OUTDIR    the edited checkpoint (required)\n"
               "  --facts FILE           the facts (required)\n"
               "  --limit N              edit the first N records only\n"
               "  --shard-bytes B        largest safetensors shard in bytes (default 5000000000; 0 = one file)\n");
    cli_edit_opts_help(f, 1, "--riemann-steps");
}

/* The greedy first token after the prompt, decoded, into buf. */
static void next_token(kne_model *m, const char *prompt, char *buf, size_t cap)
{
    int32_t *ids = NULL, out = 0;
    size_t n = 0, made = 0;
    char *txt = NULL;
    snprintf(buf, cap, "?");
    if (cli_tokenize(m, prompt, 1, &ids, &n) != KNE_OK || n == 0) goto done;
    kne_generate_params gp = kne_generate_default_params();
    gp.max_tokens = 1;
    gp.stop_at_eos = false;
    if (kne_model_generate(m, ids, n, &gp, &out, 1, &made) != KNE_OK || made != 1) goto done;
    if (cli_detokenize(m, &out, 1, &txt) == KNE_OK) snprintf(buf, cap, "%s", txt);
done:
    free(ids);
    free(txt);
}

int cmd_edit(int argc, char **argv)
{
    const char *dir = NULL, *facts_path = NULL, *out_dir = NULL;
    long limit = 0;
    uint64_t shard = 5000000000ULL;
    cli_edit_opts o;
    cli_edit_opts_init(&o);
    for (int i = 1; i < argc; i++) {
        const char *v;
        int err = 0, r;
        if (cli_is_help(argv[i])) {
            help(stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--facts", &v, "edit", &err)) {
            if (err) return 2;
            facts_path = v;
        } else if (cli_opt(argc, argv, &i, "-o", &v, "edit", &err) ||
                   cli_opt(argc, argv, &i, "--output", &v, "edit", &err)) {
            if (err) return 2;
            out_dir = v;
        } else if (cli_opt(argc, argv, &i, "--limit", &v, "edit", &err)) {
            if (err || cli_parse_int("edit", "--limit", v, 1, 100000000, &limit)) return 2;
        } else if (cli_opt(argc, argv, &i, "--shard-bytes", &v, "edit", &err)) {
            if (err || cli_parse_u64("edit", "--shard-bytes", v, &shard)) return 2;
        } else if ((r = cli_edit_opts_parse(&o, argc, argv, &i, "edit", 1, "--riemann-steps")) != 0) {
            if (r < 0) return 2;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            help(stderr);
            return cli_fail("edit", 2, "unknown option %s", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else {
            help(stderr);
            return cli_fail("edit", 2, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!dir || !facts_path || !out_dir) {
        help(stderr);
        return cli_fail("edit", 2, "DIR, --facts and -o are required");
    }
    struct stat sb;
    if (lstat(out_dir, &sb) == 0) return cli_fail("edit", 1, "%s already exists; choose a new output directory", out_dir);
    cli_dataset ds;
    char err[1024];
    if (cli_dataset_load(&ds, facts_path, (size_t)limit, err, sizeof err)) return cli_fail("edit", 1, "%s", err);
    if (cli_neighbour_subjects(&o, "edit", NULL, 0)) {
        cli_dataset_free(&ds);
        return 1;
    }
    kne_model *m = NULL;
    kne_ensemble *ens = NULL;
    kne_editor *ed = NULL;
    kne_fact *facts = cli_facts(ds.rec, ds.n);
    const char *stage = "loading the model";
    double t0 = cli_now();
    kne_status s = cli_load_model(&m, dir, o.n_threads);
    if (s == KNE_OK) {
        if (o.ensemble_path) {
            stage = "loading the ensemble";
            s = kne_ensemble_load(&ens, m, o.ensemble_path);
        } else {
            stage = "locating";
            s = cli_locate(&ens, m, facts, ds.n, &o.locate, 1);
        }
    }
    char before[128] = "";
    cli_progress pr;
    memset(&pr, 0, sizeof pr);
    if (s == KNE_OK) {
        next_token(m, ds.rec[0].prompt, before, sizeof before);
        stage = "creating the editor";
        o.edit.progress = cli_progress_cb;
        o.edit.progress_user_data = &pr;
        s = kne_editor_new(&ed, m, ens, &o.edit);
    }
    kne_edit_report rep;
    memset(&rep, 0, sizeof rep);
    rep.struct_size = sizeof rep;
    if (s == KNE_OK) {
        stage = "applying the edit";
        cli_progress_start(&pr, "editing");
        s = kne_apply(ed, facts, ds.n, &rep);
        cli_progress_done(&pr);
    }
    if (s == KNE_OK) {
        char after[128];
        next_token(m, ds.rec[0].prompt, after, sizeof after);
        printf("edited %zu fact%s with %zu neurons: loss %.4f -> %.4f in %d steps, %lld rows written (%.2f s)\n",
               ds.n, ds.n == 1 ? "" : "s", kne_ensemble_size(ens), rep.initial_loss, rep.loss, rep.steps,
               (long long)rep.rows, rep.seconds);
        printf("\"%s\" -> next token \"%s\" before, \"%s\" after (target \"%s\")\n", ds.rec[0].prompt, before,
               after, ds.rec[0].target);
        stage = "saving";
        s = kne_model_save(m, out_dir, shard);
    }
    int rc = 0;
    if (s != KNE_OK) {
        fprintf(stderr, "kne edit: %s failed; %s was not written\n", stage, out_dir);
        rc = cli_fail_status("edit", s);
    } else {
        printf("edited checkpoint written to %s (%.1f s in all)\n", out_dir, cli_now() - t0);
    }
    kne_editor_free(ed);
    kne_ensemble_free(ens);
    kne_model_free(m);
    free(facts);
    cli_dataset_free(&ds);
    cli_edit_opts_free(&o);
    return rc;
}
