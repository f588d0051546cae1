/* The metrics of kne eval against hand-computed values, and the teacher-forcing
   tokenization on a real model. */
#include "test.h"
#include "../cli/common.c"
#include "../cli/progress.c"
#include "../cli/dataset.c"
#include "../cli/metrics.c"

static void test_pure(void)
{
    /* [1 2 1 2 3]: bigrams (1,2) x2, (2,1), (2,3) -> p = 1/2, 1/4, 1/4 -> H2 = 1.5 bits;
       trigrams (1,2,1), (2,1,2), (1,2,3) all distinct -> H3 = log2 3 */
    int32_t s[] = {1, 2, 1, 2, 3};
    CHECK(fabs(cli_ngram_entropy(s, 5, 2) - 1.5) < 1e-12);
    CHECK(fabs(cli_ngram_entropy(s, 5, 3) - log2(3.0)) < 1e-12);
    CHECK(fabs(cli_ngram_entropy(s, 5, 1) - (-(0.4 * log2(0.4)) * 2 - 0.2 * log2(0.2))) < 1e-12);
    /* EasyEdit: mean of (2/3 H2, 4/3 H3) */
    double want = (2.0 / 3.0 * 1.5 + 4.0 / 3.0 * log2(3.0)) / 2.0;
    CHECK(fabs(cli_fluency_entropy(s, 5) - want) < 1e-12);
    CHECK(fabs(cli_fluency_entropy(s, 5) - 1.5566416) < 1e-6);
    /* a constant sequence has zero entropy; too short a sequence has none */
    int32_t c[] = {7, 7, 7, 7, 7, 7};
    CHECK(cli_fluency_entropy(c, 6) == 0);
    CHECK(cli_ngram_entropy(s, 2, 3) == 0);
    CHECK(cli_fluency_entropy(s, 0) == 0);
    /* 8 distinct tokens: 7 distinct bigrams, 6 distinct trigrams */
    int32_t d[] = {10, 11, 12, 13, 14, 15, 16, 17};
    CHECK(fabs(cli_fluency_entropy(d, 8) - (log2(7.0) / 3 + 2 * log2(6.0) / 3)) < 1e-12);
    /* token accuracy */
    int32_t p[] = {1, 2, 3}, w[] = {1, 5, 3};
    CHECK(fabs(cli_token_accuracy(p, w, 3) - 2.0 / 3.0) < 1e-12);
    CHECK(cli_token_accuracy(p, p, 3) == 1.0);
    CHECK(cli_token_accuracy(p, w, 0) == 0);
}

static void test_model(const char *name, int has_bos)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/%s", test_shared(), name);
    kne_model *m = NULL;
    kne_model_params mp = kne_model_default_params();
    mp.n_threads = 2;
    kne_status s = kne_model_load(&m, dir, &mp);
    CHECK_STATUS(s, KNE_OK);
    if (s != KNE_OK) return;
    const char *prompt = "The capital of France is", *answer = "Paris";
    int32_t *pi = NULL, *fi = NULL;
    size_t np = 0, nf = 0;
    CHECK_STATUS(cli_tokenize(m, prompt, 1, &pi, &np), KNE_OK);
    CHECK_STATUS(cli_tokenize(m, "The capital of France is Paris", 1, &fi, &nf), KNE_OK);
    CHECK(has_bos ? pi[0] == kne_tokenizer_bos(kne_model_tokenizer(m)) : pi[0] != kne_tokenizer_bos(kne_model_tokenizer(m)));
    cli_tf t;
    CHECK_STATUS(cli_tf_encode(m, prompt, answer, &t), KNE_OK);
    /* ids = full without its last token; the answer = the tail beyond the prompt */
    CHECK(t.n_ids == nf - 1 && t.begin == np - 1 && t.n_ans == nf - np);
    CHECK(!memcmp(t.ids, fi, t.n_ids * sizeof *fi));
    CHECK(!memcmp(t.ans, fi + np, t.n_ans * sizeof *fi));
    /* token accuracy by hand: argmax of the forward logits at the answer positions */
    size_t V = (size_t)kne_model_n_vocab(m);
    float *lg = malloc(t.n_ids * V * sizeof *lg);
    CHECK_STATUS(kne_model_forward(m, t.ids, t.n_ids, lg), KNE_OK);
    size_t hits = 0;
    for (size_t i = 0; i < t.n_ans; i++) {
        const float *row = lg + (t.begin + i) * V;
        size_t best = 0;
        for (size_t v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        hits += (int32_t)best == t.ans[i];
    }
    double acc = -1;
    CHECK_STATUS(cli_tf_accuracy(m, prompt, answer, &acc), KNE_OK);
    CHECK(fabs(acc - (double)hits / (double)t.n_ans) < 1e-12);
    CHECK_MSG(acc == 1.0, "%s does not know the capital of France (accuracy %g)", name, acc);
    /* a wrong answer is not predicted */
    CHECK_STATUS(cli_tf_accuracy(m, prompt, "Zebra", &acc), KNE_OK);
    CHECK(acc < 1.0);
    /* fluency: deterministic for a seed, in the range of a sampled sentence */
    double f1 = -1, f2 = -2;
    CHECK_STATUS(cli_fluency(m, prompt, 5, 16, 7, &f1), KNE_OK);
    CHECK_STATUS(cli_fluency(m, prompt, 5, 16, 7, &f2), KNE_OK);
    CHECK(f1 == f2);
    double hi = log2(15.0) / 3 + 2 * log2(14.0) / 3; /* all n-grams distinct in 16 tokens at most */
    CHECK_MSG(f1 > 1.0 && f1 <= hi + 1e-9, "fluency %g", f1);
    free(lg);
    free(pi);
    free(fi);
    cli_tf_free(&t);
    kne_model_free(m);
}

int main(void)
{
    test_pure();
    test_model("kne-llama-tiny", 1);
    test_model("kne-gpt2-tiny", 0);
    return test_summary("test_cli_metrics");
}
