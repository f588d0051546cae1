/* The kne command end to end: --help everywhere, kne edit -o writes a checkpoint that
   kne_model_load reloads with the edited answer, failing edits leave no directory,
   kne locate writes an ensemble and an SVG, kne eval --json prints one object. */
#include "test.h"
#include "kne.h"

#include <dirent.h>
#include <json-c/json.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char kne_bin[512], tmp[64], model[512];

static int run(const char *args, char *out, size_t cap)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "KNE_NO_PROGRESS=1 %s %s 2>%s/stderr.txt", kne_bin, args, tmp);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = 0;
    if (out && cap) {
        n = fread(out, 1, cap - 1, p);
        out[n] = 0;
    } else {
        char buf[4096];
        while (fread(buf, 1, sizeof buf, p) > 0) {
        }
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void stderr_text(char *buf, size_t cap)
{
    char p[128];
    snprintf(p, sizeof p, "%s/stderr.txt", tmp);
    FILE *f = fopen(p, "r");
    buf[0] = 0;
    if (!f) return;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
}

static void write_file(const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

static int exists(const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    return access(p, F_OK) == 0;
}

/* entries of tmp whose name starts with prefix */
static int count_prefix(const char *prefix)
{
    DIR *d = opendir(tmp);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    if (d) closedir(d);
    return n;
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) rm_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void test_help(void)
{
    const char *cmds[] = {"info", "tokenize", "generate", "locate", "edit", "eval"};
    char out[8192], args[64];
    CHECK(run("--help", out, sizeof out) == 0 && strstr(out, "usage: kne"));
    for (int i = 0; i < 6; i++) {
        snprintf(args, sizeof args, "%s --help", cmds[i]);
        int rc = run(args, out, sizeof out);
        CHECK_MSG(rc == 0 && strstr(out, "usage: kne"), "kne %s --help: rc %d", cmds[i], rc);
    }
    CHECK(run("no-such-command", NULL, 0) == 2);
    CHECK(run("edit", NULL, 0) == 2); /* missing arguments */
}

static const char *fact_json =
    "[{\"case_id\": 0, \"prompt\": \"The mother tongue of Danielle Darrieux is\", \"target_new\": \"English\", "
    "\"subject\": \"Danielle Darrieux\", \"ground_truth\": \"French\", "
    "\"rephrase_prompt\": \"Where Danielle Darrieux is from, people speak the language of\", "
    "\"locality_prompt\": \"Michel Rocard is a native speaker of\", \"locality_ground_truth\": \"French\"}]";

static void test_edit(void)
{
    char args[2048], out[8192], err[4096];
    write_file("fact.json", fact_json);
    snprintf(args, sizeof args, "edit %s --facts %s/fact.json -o %s/edited", model, tmp, tmp);
    int rc = run(args, out, sizeof out);
    stderr_text(err, sizeof err);
    CHECK_MSG(rc == 0, "kne edit exited %d: %s", rc, err);
    CHECK(exists("edited/config.json"));
    CHECK_MSG(count_prefix("edited.tmp-") == 0, "temporary directory left behind");
    /* the reloaded checkpoint answers with the target */
    char dir[256];
    snprintf(dir, sizeof dir, "%s/edited", tmp);
    kne_model *m = NULL;
    kne_model_params mp = kne_model_default_params();
    mp.n_threads = 2;
    kne_status s = kne_model_load(&m, dir, &mp);
    CHECK_STATUS(s, KNE_OK);
    if (s == KNE_OK) {
        int32_t p[64], f[64];
        size_t np = 0, nf = 0;
        CHECK_STATUS(kne_tokenize(m, "The mother tongue of Danielle Darrieux is", 1, p, 64, &np), KNE_OK);
        CHECK_STATUS(kne_tokenize(m, "The mother tongue of Danielle Darrieux is English", 1, f, 64, &nf), KNE_OK);
        CHECK(nf > np);
        size_t V = (size_t)kne_model_n_vocab(m);
        float *lg = malloc(np * V * sizeof *lg);
        CHECK_STATUS(kne_model_forward(m, p, np, lg), KNE_OK);
        const float *row = lg + (np - 1) * V;
        size_t best = 0;
        for (size_t v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        CHECK_MSG((int32_t)best == f[np], "greedy next token %zu, first target token %d", best, f[np]);
        free(lg);
        kne_model_free(m);
    }
    /* an existing output directory is refused and left as it was */
    rc = run(args, NULL, 0);
    CHECK(rc != 0);
    CHECK(exists("edited/config.json"));
    rm_tree(dir);
}

static void test_failing_edits(void)
{
    char args[2048], err[4096];
    /* an empty target: the library refuses it */
    write_file("empty.json", "[{\"prompt\": \"The capital of France is\", \"target\": \"\"}]");
    snprintf(args, sizeof args, "edit %s --facts %s/empty.json -o %s/out1", model, tmp, tmp);
    int rc = run(args, NULL, 0);
    stderr_text(err, sizeof err);
    CHECK_MSG(rc != 0 && strstr(err, "kne edit:"), "rc %d: %s", rc, err);
    CHECK(!exists("out1") && count_prefix("out1.tmp-") == 0);
    /* alpha must be > 0: refused after locating, by kne_editor_new */
    write_file("fact.json", fact_json);
    snprintf(args, sizeof args, "edit %s --facts %s/fact.json -o %s/out2 --alpha -1", model, tmp, tmp);
    rc = run(args, NULL, 0);
    stderr_text(err, sizeof err);
    CHECK_MSG(rc != 0 && strstr(err, "invalid argument"), "rc %d: %s", rc, err);
    CHECK(!exists("out2") && count_prefix("out2.tmp-") == 0);
    /* not a number */
    snprintf(args, sizeof args, "edit %s --facts %s/fact.json -o %s/out3 --alpha nan", model, tmp, tmp);
    CHECK(run(args, NULL, 0) == 2);
    CHECK(!exists("out3"));
    /* a facts file in no known format */
    write_file("odd.json", "[{\"question\": \"a\", \"answer\": \"b\"}]");
    snprintf(args, sizeof args, "edit %s --facts %s/odd.json -o %s/out4", model, tmp, tmp);
    rc = run(args, NULL, 0);
    stderr_text(err, sizeof err);
    CHECK_MSG(rc == 1 && strstr(err, "not in a known format"), "rc %d: %s", rc, err);
    CHECK(!exists("out4"));
    /* a model directory that does not exist */
    snprintf(args, sizeof args, "edit %s/nothing --facts %s/fact.json -o %s/out5", tmp, tmp, tmp);
    rc = run(args, NULL, 0);
    stderr_text(err, sizeof err);
    CHECK_MSG(rc == 1 && strstr(err, "not found"), "rc %d: %s", rc, err);
    CHECK(!exists("out5"));
}

static void test_locate(void)
{
    char args[2048], out[16384], err[4096];
    write_file("fact.json", fact_json);
    snprintf(args, sizeof args, "locate %s --facts %s/fact.json -o %s/ens.json --plot %s/ens.svg --modules "
             "mlp.down,attn.o --layers 0:6", model, tmp, tmp, tmp);
    int rc = run(args, out, sizeof out);
    stderr_text(err, sizeof err);
    CHECK_MSG(rc == 0, "kne locate exited %d: %s", rc, err);
    CHECK(strstr(out, "mlp.down") && strstr(out, "attn.o"));
    char p[256];
    snprintf(p, sizeof p, "%s/ens.svg", tmp);
    FILE *f = fopen(p, "r");
    char svg[256] = "";
    if (f) {
        size_t n = fread(svg, 1, sizeof svg - 1, f);
        svg[n] = 0;
        fclose(f);
    }
    CHECK(!strncmp(svg, "<?xml", 5) && strstr(svg, "<svg"));
    kne_model *m = NULL;
    if (kne_model_load(&m, model, NULL) == KNE_OK) {
        kne_ensemble *e = NULL;
        snprintf(p, sizeof p, "%s/ens.json", tmp);
        CHECK_STATUS(kne_ensemble_load(&e, m, p), KNE_OK);
        CHECK(e && kne_ensemble_size(e) > 0);
        kne_ensemble_free(e);
        kne_model_free(m);
    }
    /* an unknown module name is a usage error */
    snprintf(args, sizeof args, "locate %s --facts %s/fact.json -o %s/ens2.json --modules mlp.nothing", model, tmp,
             tmp);
    CHECK(run(args, NULL, 0) == 2);
    CHECK(!exists("ens2.json"));
}

static void test_eval_json(void)
{
    char args[2048], out[8192], err[4096];
    char data[512];
    test_path(data, sizeof data, "data/counterfact-edit.json");
    snprintf(args, sizeof args, "eval %s --data %s --limit 2 --method none --no-fluency --json", model, data);
    int rc = run(args, out, sizeof out);
    stderr_text(err, sizeof err);
    CHECK_MSG(rc == 0, "kne eval exited %d: %s", rc, err);
    json_object *o = json_tokener_parse(out);
    CHECK_MSG(o && json_object_is_type(o, json_type_object), "not one JSON object: %s", out);
    if (o) {
        const char *keys[] = {"model", "dataset", "method", "n", "edit_success", "generalization", "portability",
                              "locality", "fluency", "seconds_per_edit"};
        CHECK(json_object_object_length(o) == 10);
        for (int i = 0; i < 10; i++) CHECK_MSG(json_object_object_get_ex(o, keys[i], NULL), "no key %s", keys[i]);
        json_object *v;
        CHECK(json_object_object_get_ex(o, "n", &v) && json_object_get_int(v) == 2);
        CHECK(json_object_object_get_ex(o, "method", &v) && !strcmp(json_object_get_string(v), "none"));
        CHECK(json_object_object_get_ex(o, "portability", &v) && v == NULL); /* CounterFact has none */
        CHECK(json_object_object_get_ex(o, "fluency", &v) && v == NULL);     /* --no-fluency */
        CHECK(json_object_object_get_ex(o, "locality", &v) && json_object_get_double(v) == 100.0); /* no edit */
        json_object_put(o);
    }
    /* one real edit, measured and reverted */
    snprintf(args, sizeof args, "eval %s --data %s --limit 1 --method kne --no-fluency --json", model, data);
    rc = run(args, out, sizeof out);
    stderr_text(err, sizeof err);
    CHECK_MSG(rc == 0, "kne eval --method kne exited %d: %s", rc, err);
    o = json_tokener_parse(out);
    json_object *v;
    CHECK(o && json_object_object_get_ex(o, "edit_success", &v) && json_object_get_double(v) >= 0);
    json_object_put(o);
}

int main(void)
{
    const char *b = getenv("B");
    char cwd[400];
    if (!getcwd(cwd, sizeof cwd)) return 1;
    snprintf(kne_bin, sizeof kne_bin, "%s/%s/kne", cwd, b && *b ? b : "build");
    if (access(kne_bin, X_OK) != 0) {
        fprintf(stderr, "%s is not built\n", kne_bin);
        CHECK(0);
        return test_summary("test_cli_edit");
    }
    snprintf(model, sizeof model, "%s/models/kne-llama-tiny", test_shared());
    snprintf(tmp, sizeof tmp, "/tmp/kne-test-cli-XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    test_help();
    test_edit();
    test_failing_edits();
    test_locate();
    test_eval_json();
    rm_tree(tmp);
    return test_summary("test_cli_edit");
}
