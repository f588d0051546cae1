/* kne_locate against independent oracles:
   (1) the literal definition on a small random Llama (weights scaled by i/m, weight
       gradients, times w) from test/oracle/attr_oracle.py (python3-torch, float64):
       equal within 1e-4 relative for mlp.down, attn.q and attn.k;
   (2) completeness: a layer's summed attribution approaches P(W) - P(0 W) as m grows;
   (3) the reference implementation ../shared/reference/kne_reference.py on
       kne-llama-tiny: same scores and the same ensemble for its first record. */
#include "kne.h"
#include "test.h"
#include <json-c/json.h>
#include <stdlib.h>
#include <unistd.h>

static const char *python(void)
{
    const char *p = getenv("PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

static double score_rel_err(json_object *want, const float *got, size_t n)
{
    double mx = 0, d = 0;
    for (size_t i = 0; i < n; i++) {
        double w = json_object_get_double(json_object_array_get_idx(want, i));
        if (fabs(w) > mx) mx = fabs(w);
        if (fabs(w - got[i]) > d) d = fabs(w - got[i]);
    }
    return mx > 0 ? d / mx : d;
}

static kne_ensemble *locate(kne_model *m, const kne_fact *f, int steps, uint32_t modules, int objective)
{
    kne_locate_params p = kne_locate_default_params();
    p.objective = objective;
    p.steps = steps;
    p.keep = 1.0;
    p.modules = modules;
    kne_ensemble *e = NULL;
    CHECK_STATUS(kne_locate(&e, m, f, 1, &p), KNE_OK);
    return e;
}

static void random_model_oracle(void)
{
    char dir[] = "/tmp/kne-oracle-XXXXXX", cmd[4096], tok[1024], in[600], out[600];
    CHECK(mkdtemp(dir) != NULL);
    test_path(tok, sizeof tok, "models/kne-llama-tiny/tokenizer.json");
    snprintf(cmd, sizeof cmd, "%s test/oracle/attr_oracle.py make %s %s", python(), dir, tok);
    CHECK_MSG(system(cmd) == 0, "%s", cmd);
    kne_model *m = NULL;
    CHECK_STATUS(kne_model_load(&m, dir, NULL), KNE_OK);
    if (!m) return;
    kne_fact f = {"The capital of France is", "Paris city", "France"};
    int32_t ids[64], pids[64];
    size_t n = 0, np = 0;
    CHECK_STATUS(kne_tokenize(m, "The capital of France is Paris city", 1, ids, 64, &n), KNE_OK);
    CHECK_STATUS(kne_tokenize(m, f.prompt, 1, pids, 64, &np), KNE_OK);
    static const int steps[] = {2, 8, 32, 128};
    snprintf(in, sizeof in, "%s/in.json", dir);
    snprintf(out, sizeof out, "%s/out.json", dir);
    FILE *fp = fopen(in, "w");
    fprintf(fp, "{\"n_prompt\": %zu, \"steps\": [2, 8, 20, 32, 128], \"modules\": [\"mlp.down\", \"attn.q\", \"attn.k\"], \"ids\": [", np);
    for (size_t i = 0; i < n; i++) fprintf(fp, i ? ", %d" : "%d", ids[i]);
    fprintf(fp, "]}\n");
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s test/oracle/attr_oracle.py attr %s %s %s", python(), dir, in, out);
    CHECK_MSG(system(cmd) == 0, "%s", cmd);
    json_object *res = json_object_from_file(out), *scores = NULL, *comp = NULL;
    CHECK(res != NULL);
    json_object_object_get_ex(res, "scores", &scores);
    json_object_object_get_ex(res, "completeness", &comp);

    /* (1) fast attribution == literal definition, m = 20 */
    kne_ensemble *e = locate(m, &f, 20, KNE_MODULE_MLP_DOWN | KNE_MODULE_ATTN_Q | KNE_MODULE_ATTN_K, KNE_OBJECTIVE_PROB);
    static const uint32_t mods[3] = {KNE_MODULE_MLP_DOWN, KNE_MODULE_ATTN_Q, KNE_MODULE_ATTN_K};
    double worst = 0;
    for (int mi = 0; mi < 3 && e; mi++)
        for (int l = 0; l < kne_model_n_layers(m); l++) {
            const float *sc;
            size_t ns;
            char key[64];
            CHECK_STATUS(kne_ensemble_scores(e, l, mods[mi], &sc, &ns), KNE_OK);
            snprintf(key, sizeof key, "%s.%d.20", kne_module_name(mods[mi]), l);
            json_object *want = NULL;
            json_object_object_get_ex(scores, key, &want);
            CHECK_MSG(want && json_object_array_length(want) == ns, "%s: %zu scores", key, ns);
            if (!want || json_object_array_length(want) != ns) continue;
            double r = score_rel_err(want, sc, ns);
            if (r > worst) worst = r;
            CHECK_MSG(r < 1e-4, "%s: relative error %.3g", key, r);
        }
    printf("literal-definition oracle (random Llama, m = 20): worst relative error %.2e\n", worst);
    kne_ensemble_free(e);

    /* (2) completeness, log-probability objective (the random model gives the target a
       probability near 1/V, so log P has the informative scale):
       |sum_k Attr_k - (log P(W) - log P(0 W))| shrinks as m grows */
    for (int l = 0; l < kne_model_n_layers(m); l++) {
        char key[64];
        snprintf(key, sizeof key, "mlp.down.%d", l);
        json_object *dp = NULL;
        json_object_object_get_ex(comp, key, &dp);
        double delta = json_object_get_double(dp), prev = INFINITY, first = 0;
        printf("completeness layer %d: log P(W) - log P(0W) = %.6f;", l, delta);
        for (int si = 0; si < 4; si++) {
            kne_ensemble *es = locate(m, &f, steps[si], KNE_MODULE_MLP_DOWN, KNE_OBJECTIVE_LOGPROB);
            const float *sc;
            size_t ns = 0;
            double sum = 0;
            if (es && kne_ensemble_scores(es, l, KNE_MODULE_MLP_DOWN, &sc, &ns) == KNE_OK)
                for (size_t k = 0; k < ns; k++) sum += sc[k];
            double err = fabs(sum - delta);
            printf(" m=%d err %.2e", steps[si], err);
            CHECK_MSG(err <= prev * 1.0001, "layer %d: error grew to %g at m = %d", l, err, steps[si]);
            prev = err;
            if (si == 0) first = err;
            kne_ensemble_free(es);
        }
        printf("\n");
        /* a right Riemann sum converges as 1/m: 64 times the steps, at least 20 times less error */
        CHECK_MSG(prev < first / 20 && prev < 0.1 * fabs(delta), "layer %d: error at m = 128 is %g (m = 2: %g) of %g", l,
                  prev, first, delta);
    }
    json_object_put(res);
    kne_model_free(m);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

static void reference_oracle(void)
{
    char model[1024], spm[1024], data[1024], cmd[4096];
    char dump[] = "/tmp/kne-ref-XXXXXX";
    int fd = mkstemp(dump);
    CHECK(fd >= 0);
    close(fd);
    test_path(model, sizeof model, "models/kne-llama-tiny");
    test_path(spm, sizeof spm, "tokenizers/llama2-sentencepiece/tokenizer.model");
    test_path(data, sizeof data, "data/counterfact-edit.json");
    snprintf(cmd, sizeof cmd, "%s %s/reference/kne_reference.py %s %s %s --n 1 --dump %s > /dev/null", python(),
             test_shared(), model, spm, data, dump);
    CHECK_MSG(system(cmd) == 0, "%s", cmd);
    json_object *ref = json_object_from_file(dump), *sc = NULL, *ens = NULL;
    CHECK(ref != NULL);
    if (!ref) return;
    json_object_object_get_ex(ref, "scores", &sc);
    json_object_object_get_ex(ref, "ensemble", &ens);
    kne_model *m = NULL;
    CHECK_STATUS(kne_model_load(&m, model, NULL), KNE_OK);
    kne_fact f = {json_object_get_string(json_object_object_get(ref, "record")),
                  json_object_get_string(json_object_object_get(ref, "target")), NULL};
    kne_ensemble *e = NULL;
    kne_locate_params lp = kne_locate_default_params();
    lp.keep = 0.01; /* the reference's default */
    CHECK_STATUS(kne_locate(&e, m, &f, 1, &lp), KNE_OK);
    double worst = 0;
    size_t rows_equal = 0, layers = 0;
    for (int l = 0; e && l < kne_model_n_layers(m); l++) {
        char key[32];
        snprintf(key, sizeof key, "down.%d", l);
        const float *s;
        size_t n;
        kne_ensemble_scores(e, l, KNE_MODULE_MLP_DOWN, &s, &n);
        json_object *want = json_object_object_get(sc, key);
        double r = score_rel_err(want, s, n);
        if (r > worst) worst = r;
        const int32_t *rows;
        size_t nr;
        kne_ensemble_rows(e, l, KNE_MODULE_MLP_DOWN, &rows, &nr);
        json_object *wr = json_object_object_get(ens, key);
        size_t nw = wr ? json_object_array_length(wr) : 0;
        int same = nw == nr;
        for (size_t i = 0; same && i < nr; i++) same = json_object_get_int(json_object_array_get_idx(wr, i)) == rows[i];
        rows_equal += same;
        layers++;
    }
    printf("reference oracle (kne-llama-tiny, first record): worst score error %.2e of the layer maximum, "
           "ensemble equal in %zu/%zu layers\n", worst, rows_equal, layers);
    CHECK_MSG(worst < 1e-3, "scores differ from the reference by %g", worst);
    CHECK(rows_equal == layers && layers > 0);
    kne_ensemble_free(e);
    kne_model_free(m);
    json_object_put(ref);
    unlink(dump);
}

int main(void)
{
    random_model_oracle();
    reference_oracle();
    return test_summary("locate_oracle");
}
