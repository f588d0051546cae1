/* Forward-pass parity with the Hugging Face goldens (float64 reference) on the three
   testbed models: the 10 top last-position logits and every token log-prob within
   1e-3, and the same top-1 id. */
#include "kne.h"
#include "test.h"
#include <json-c/json.h>

#define TOL 1e-3

static int read_ids(json_object *arr, int32_t *ids, int cap)
{
    int n = (int)json_object_array_length(arr);
    for (int i = 0; i < n && i < cap; i++) ids[i] = json_object_get_int(json_object_array_get_idx(arr, i));
    return n;
}

static void check_model(const char *name)
{
    char dir[1024], gold[1100];
    snprintf(dir, sizeof dir, "%s/models/%s", test_shared(), name);
    snprintf(gold, sizeof gold, "%s/goldens_public.json", dir);
    kne_model *m = NULL;
    CHECK_STATUS(kne_model_load(&m, dir, NULL), KNE_OK);
    if (!m) return;
    json_object *g = json_object_from_file(gold);
    CHECK(g != NULL);
    json_object *cases = NULL;
    json_object_object_get_ex(g, "logits", &cases);
    int n_cases = cases ? (int)json_object_array_length(cases) : 0;
    CHECK(n_cases >= 30);
    int32_t V = kne_model_n_vocab(m);
    double worst_top = 0, worst_lp = 0;
    int top1_ok = 0;
    for (int c = 0; c < n_cases; c++) {
        json_object *e = json_object_array_get_idx(cases, c), *f;
        int32_t ids[512];
        json_object_object_get_ex(e, "ids", &f);
        int n = read_ids(f, ids, 512);
        float *lg = malloc(sizeof(float) * (size_t)n * (size_t)V);
        double *lp = malloc(sizeof(double) * (size_t)n);
        CHECK_STATUS(kne_model_forward(m, ids, (size_t)n, lg), KNE_OK);
        CHECK_STATUS(kne_model_token_logprobs(m, ids, (size_t)n, lp), KNE_OK);
        const float *last = lg + (size_t)(n - 1) * (size_t)V;
        json_object *tids, *tl, *tlp;
        json_object_object_get_ex(e, "top_ids", &tids);
        json_object_object_get_ex(e, "top_logits", &tl);
        json_object_object_get_ex(e, "token_logprobs", &tlp);
        int best = 0;
        for (int v = 1; v < V; v++)
            if (last[v] > last[best]) best = v;
        if (best == json_object_get_int(json_object_array_get_idx(tids, 0))) top1_ok++;
        for (size_t k = 0; k < json_object_array_length(tids); k++) {
            int id = json_object_get_int(json_object_array_get_idx(tids, k));
            double d = fabs(last[id] - json_object_get_double(json_object_array_get_idx(tl, k)));
            if (d > worst_top) worst_top = d;
        }
        for (size_t k = 0; k < json_object_array_length(tlp); k++) {
            double d = fabs(lp[k] - json_object_get_double(json_object_array_get_idx(tlp, k)));
            if (d > worst_lp) worst_lp = d;
        }
        free(lg);
        free(lp);
    }
    printf("%s: %d cases, top-1 equal %d, worst top-10 logit error %.2e, worst token log-prob error %.2e\n", name,
           n_cases, top1_ok, worst_top, worst_lp);
    CHECK_MSG(top1_ok == n_cases, "%s: top-1 differs in %d cases", name, n_cases - top1_ok);
    CHECK_MSG(worst_top < TOL, "%s: top logits off by %g", name, worst_top);
    CHECK_MSG(worst_lp < TOL, "%s: log-probs off by %g", name, worst_lp);
    json_object_put(g);
    kne_model_free(m);
}

int main(void)
{
    check_model("kne-llama-tiny");
    check_model("kne-gptj-tiny");
    check_model("kne-gpt2-tiny");
    return test_summary("forward");
}
