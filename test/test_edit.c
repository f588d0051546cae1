/* kne_apply / kne_editor_revert: edits take, reverts are bit-exact (also LIFO over
   sequential edits), failures and cancels leave the model exactly as it was, and every
   bad input has its own status. Ensembles: save/load, merge, from_rows, mismatch. */
#include "kne.h"
#include "test.h"
#include <unistd.h>

static kne_model *M, *G;
static int32_t V;
static const char *PROBES[] = {"The mother tongue of Danielle Darrieux is", "Michel Rocard is a native speaker of",
                               "The capital of France is"};
#define NP 3

typedef struct snapshot {
    float *lg[NP];
    size_t n[NP];
} snapshot;

static void snap(snapshot *s)
{
    for (int i = 0; i < NP; i++) {
        int32_t ids[64];
        kne_tokenize(M, PROBES[i], 1, ids, 64, &s->n[i]);
        s->lg[i] = malloc(sizeof(float) * s->n[i] * (size_t)V);
        kne_model_forward(M, ids, s->n[i], s->lg[i]);
    }
}

static int same(const snapshot *a, const snapshot *b)
{
    for (int i = 0; i < NP; i++)
        if (memcmp(a->lg[i], b->lg[i], sizeof(float) * a->n[i] * (size_t)V)) return 0;
    return 1;
}

static void drop(snapshot *s)
{
    for (int i = 0; i < NP; i++) free(s->lg[i]);
}

/* greedy first token after the prompt == first target token */
static int predicts(const char *prompt, const char *target)
{
    int32_t p[64], f[64];
    size_t np, nf;
    char full[256];
    snprintf(full, sizeof full, "%s %s", prompt, target);
    kne_tokenize(M, prompt, 1, p, 64, &np);
    kne_tokenize(M, full, 1, f, 64, &nf);
    float *lg = malloc(sizeof(float) * np * (size_t)V);
    kne_model_forward(M, p, np, lg);
    const float *r = lg + (np - 1) * (size_t)V;
    int best = 0;
    for (int v = 1; v < V; v++)
        if (r[v] > r[best]) best = v;
    free(lg);
    return best == f[np];
}

static bool cancel_at_3(float frac, void *ud)
{
    int *calls = ud;
    return ++*calls < 3;
}

static const kne_fact F1 = {"The mother tongue of Danielle Darrieux is", "English", "Danielle Darrieux"};
static const kne_fact F2 = {"The capital of France is", "Rome", "France"};

static void edit_and_revert(void)
{
    snapshot s0, s1, s2, s3;
    snap(&s0);
    CHECK(predicts(F1.prompt, "French"));
    kne_ensemble *e = NULL;
    CHECK_STATUS(kne_locate(&e, M, &F1, 1, NULL), KNE_OK);
    CHECK(kne_ensemble_size(e) > 0);
    kne_editor *ed = NULL;
    CHECK_STATUS(kne_editor_new(&ed, M, e, NULL), KNE_OK);
    kne_edit_report rep = {sizeof rep};
    CHECK_STATUS(kne_apply(ed, &F1, 1, &rep), KNE_OK);
    printf("apply: %d steps, loss %.3f -> %.4f, %lld rows, %.2f s\n", rep.steps, rep.initial_loss, rep.loss,
           (long long)rep.rows, rep.seconds);
    CHECK(rep.steps == 25 && rep.loss < rep.initial_loss && rep.rows == (int64_t)kne_ensemble_size(e));
    CHECK(predicts(F1.prompt, "English"));
    CHECK(kne_editor_n_applied(ed) == 1);
    snap(&s1);
    CHECK(!same(&s0, &s1));

    /* a second, sequential edit on top; revert LIFO */
    kne_ensemble *e2 = NULL;
    CHECK_STATUS(kne_locate(&e2, M, &F2, 1, NULL), KNE_OK);
    kne_editor *ed2 = NULL;
    CHECK_STATUS(kne_editor_new(&ed2, M, e2, NULL), KNE_OK);
    CHECK_STATUS(kne_apply(ed2, &F2, 1, NULL), KNE_OK);
    CHECK(predicts(F2.prompt, "Rome"));
    CHECK(predicts(F1.prompt, "English"));
    snap(&s2);
    CHECK_STATUS(kne_editor_revert(ed2), KNE_OK);
    snap(&s3);
    CHECK_MSG(same(&s1, &s3), "reverting the second edit restores the first edit's model bit for bit");
    drop(&s3);
    CHECK_STATUS(kne_editor_revert(ed2), KNE_ERR_STATE);

    /* a cancelled apply leaves the model exactly as it was */
    int calls = 0;
    kne_edit_params cp = kne_edit_default_params();
    cp.progress = cancel_at_3;
    cp.progress_user_data = &calls;
    kne_editor *edc = NULL;
    CHECK_STATUS(kne_editor_new(&edc, M, e2, &cp), KNE_OK);
    CHECK_STATUS(kne_apply(edc, &F2, 1, NULL), KNE_ERR_CANCELLED);
    CHECK(kne_editor_n_applied(edc) == 0);
    snap(&s3);
    CHECK_MSG(same(&s1, &s3), "a cancelled apply changes nothing");
    drop(&s3);
    kne_editor_free(edc);

    /* the same editor applied twice, reverted twice */
    CHECK_STATUS(kne_apply(ed, &F1, 1, NULL), KNE_OK);
    CHECK(kne_editor_n_applied(ed) == 2);
    CHECK_STATUS(kne_editor_revert(ed), KNE_OK);
    snap(&s3);
    CHECK(same(&s1, &s3));
    drop(&s3);
    CHECK_STATUS(kne_editor_revert(ed), KNE_OK);
    snap(&s3);
    CHECK_MSG(same(&s0, &s3), "reverting every edit restores the original model bit for bit");
    CHECK(predicts(F1.prompt, "French"));
    drop(&s3);
    CHECK_STATUS(kne_editor_revert(ed), KNE_ERR_STATE);

    /* several facts in one apply are one batch */
    kne_fact both[2] = {F1, F2};
    kne_ensemble *eb = NULL;
    CHECK_STATUS(kne_locate(&eb, M, both, 2, NULL), KNE_OK);
    kne_editor *edb = NULL;
    CHECK_STATUS(kne_editor_new(&edb, M, eb, NULL), KNE_OK);
    CHECK_STATUS(kne_apply(edb, both, 2, NULL), KNE_OK);
    CHECK(predicts(F1.prompt, "English") && predicts(F2.prompt, "Rome"));
    CHECK_STATUS(kne_editor_revert(edb), KNE_OK);
    snap(&s3);
    CHECK(same(&s0, &s3));
    drop(&s3);
    kne_editor_free(edb);
    kne_ensemble_free(eb);

    kne_editor_free(ed);
    kne_editor_free(ed2);
    kne_ensemble_free(e);
    kne_ensemble_free(e2);
    drop(&s0);
    drop(&s1);
    drop(&s2);
}

static void bad_input(void)
{
    snapshot s0, s1;
    snap(&s0);
    kne_ensemble *e = NULL;
    kne_fact empty_p = {"  ", "English", NULL}, empty_t = {"The mother tongue of X is", "", NULL}, null_t = {"a", NULL, NULL};
    CHECK_STATUS(kne_locate(&e, M, &empty_p, 1, NULL), KNE_ERR_EMPTY);
    CHECK_STATUS(kne_locate(&e, M, &empty_t, 1, NULL), KNE_ERR_EMPTY);
    CHECK_STATUS(kne_locate(&e, M, &null_t, 1, NULL), KNE_ERR_INVALID_ARG);
    CHECK_STATUS(kne_locate(&e, M, &F1, 0, NULL), KNE_ERR_EMPTY);
    CHECK_STATUS(kne_locate(&e, M, NULL, 1, NULL), KNE_ERR_INVALID_ARG);
    CHECK_STATUS(kne_locate(NULL, M, &F1, 1, NULL), KNE_ERR_INVALID_ARG);
    /* longer than the context (512 positions) */
    size_t cap = 6 * 700 + 1;
    char *longp = malloc(cap);
    longp[0] = '\0';
    for (int i = 0; i < 700; i++) strcat(longp, "word ");
    strcat(longp, "is");
    kne_fact toolong = {longp, "English", NULL};
    CHECK_STATUS(kne_locate(&e, M, &toolong, 1, NULL), KNE_ERR_TOO_LONG);
    kne_locate_params lp = kne_locate_default_params();
    lp.steps = 0;
    CHECK_STATUS(kne_locate(&e, M, &F1, 1, &lp), KNE_ERR_INVALID_ARG);
    lp = kne_locate_default_params();
    double keeps[4] = {0, -0.1, 1.5, NAN};
    for (int i = 0; i < 4; i++) {
        lp.keep = keeps[i];
        CHECK_STATUS(kne_locate(&e, M, &F1, 1, &lp), KNE_ERR_INVALID_ARG);
    }
    lp = kne_locate_default_params();
    lp.layer_begin = 4;
    lp.layer_end = 2;
    CHECK_STATUS(kne_locate(&e, M, &F1, 1, &lp), KNE_ERR_INVALID_ARG);
    lp = kne_locate_default_params();
    lp.modules = KNE_MODULE_MLP_GATE;
    CHECK_STATUS(kne_locate(&e, G, &F1, 1, &lp), KNE_ERR_UNSUPPORTED); /* GPT-2 has no gate */
    lp.modules = 0;
    CHECK_STATUS(kne_locate(&e, M, &F1, 1, &lp), KNE_ERR_INVALID_ARG);
    lp = kne_locate_default_params();
    lp.struct_size = 3;
    CHECK_STATUS(kne_locate(&e, M, &F1, 1, &lp), KNE_ERR_INVALID_ARG);
    CHECK(e == NULL);

    CHECK_STATUS(kne_locate(&e, M, &F1, 1, NULL), KNE_OK);
    kne_editor *ed = NULL;
    kne_edit_params ep = kne_edit_default_params();
    ep.max_steps = 0;
    CHECK_STATUS(kne_editor_new(&ed, M, e, &ep), KNE_ERR_INVALID_ARG);
    ep = kne_edit_default_params();
    ep.lr = -1;
    CHECK_STATUS(kne_editor_new(&ed, M, e, &ep), KNE_ERR_INVALID_ARG);
    ep = kne_edit_default_params();
    ep.alpha = NAN;
    CHECK_STATUS(kne_editor_new(&ed, M, e, &ep), KNE_ERR_INVALID_ARG);
    ep = kne_edit_default_params();
    ep.preserve = 1u << 9;
    CHECK_STATUS(kne_editor_new(&ed, M, e, &ep), KNE_ERR_INVALID_ARG);
    ep = kne_edit_default_params();
    ep.n_neighbour_subjects = 2;
    CHECK_STATUS(kne_editor_new(&ed, M, e, &ep), KNE_ERR_INVALID_ARG);
    /* an ensemble from another model */
    CHECK_STATUS(kne_editor_new(&ed, G, e, NULL), KNE_ERR_MISMATCH);
    CHECK(ed == NULL);

    /* apply failures leave the model unchanged */
    CHECK_STATUS(kne_editor_new(&ed, M, e, NULL), KNE_OK);
    CHECK_STATUS(kne_apply(ed, &empty_t, 1, NULL), KNE_ERR_EMPTY);
    CHECK_STATUS(kne_apply(ed, &toolong, 1, NULL), KNE_ERR_TOO_LONG);
    CHECK_STATUS(kne_apply(ed, NULL, 1, NULL), KNE_ERR_INVALID_ARG);
    CHECK_STATUS(kne_apply(NULL, &F1, 1, NULL), KNE_ERR_INVALID_ARG);
    kne_edit_report bad = {0};
    CHECK_STATUS(kne_apply(ed, &F1, 1, &bad), KNE_ERR_INVALID_ARG);
    kne_editor_free(ed);
    /* a diverging optimisation: NaN/inf loss */
    ep = kne_edit_default_params();
    ep.alpha = 1e30;
    ep.lr = 1e30;
    ep.preserve = 0;
    CHECK_STATUS(kne_editor_new(&ed, M, e, &ep), KNE_OK);
    CHECK_STATUS(kne_apply(ed, &F1, 1, NULL), KNE_ERR_NUMERIC);
    CHECK(kne_editor_n_applied(ed) == 0);
    kne_editor_free(ed);
    snap(&s1);
    CHECK_MSG(same(&s0, &s1), "failed applies change nothing");
    drop(&s1);
    drop(&s0);
    free(longp);
    kne_ensemble_free(e);
    kne_editor_free(NULL);
    kne_ensemble_free(NULL);
}

static void ensembles(void)
{
    kne_ensemble *e = NULL, *l = NULL, *g = NULL, *mrg = NULL, *hand = NULL;
    CHECK_STATUS(kne_locate(&e, M, &F1, 1, NULL), KNE_OK);
    char path[] = "/tmp/kne-ens-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    CHECK_STATUS(kne_ensemble_save(e, path), KNE_OK);
    CHECK_STATUS(kne_ensemble_load(&l, M, path), KNE_OK);
    CHECK_STATUS(kne_ensemble_load(&g, G, path), KNE_ERR_MISMATCH);
    CHECK(kne_ensemble_size(l) == kne_ensemble_size(e));
    CHECK(fabs(kne_ensemble_threshold(l) - kne_ensemble_threshold(e)) < 1e-6 * fabs(kne_ensemble_threshold(e)));
    int equal = 1;
    for (int layer = 0; layer < kne_model_n_layers(M); layer++) {
        const int32_t *r1, *r2;
        size_t n1, n2;
        const float *s1, *s2;
        size_t ns1, ns2;
        kne_ensemble_rows(e, layer, KNE_MODULE_MLP_DOWN, &r1, &n1);
        kne_ensemble_rows(l, layer, KNE_MODULE_MLP_DOWN, &r2, &n2);
        kne_ensemble_scores(e, layer, KNE_MODULE_MLP_DOWN, &s1, &ns1);
        kne_ensemble_scores(l, layer, KNE_MODULE_MLP_DOWN, &s2, &ns2);
        equal &= n1 == n2 && (!n1 || !memcmp(r1, r2, n1 * sizeof *r1)) && ns1 == ns2 && ns1 == 256;
        for (size_t i = 0; equal && i < ns1; i++) equal &= s1[i] == s2[i];
    }
    CHECK_MSG(equal, "saved and loaded ensembles have the same rows and scores");
    const int32_t *rows;
    size_t nr;
    CHECK_STATUS(kne_ensemble_rows(e, 99, KNE_MODULE_MLP_DOWN, &rows, &nr), KNE_ERR_INVALID_ARG);
    CHECK_STATUS(kne_ensemble_rows(e, 0, 3, &rows, &nr), KNE_ERR_INVALID_ARG);
    int32_t hr[4] = {7, 3, 7, 200};
    CHECK_STATUS(kne_ensemble_from_rows(&hand, M, 5, KNE_MODULE_MLP_UP, hr, 4), KNE_OK);
    CHECK(kne_ensemble_size(hand) == 3);
    CHECK_STATUS(kne_ensemble_merge(&mrg, e, hand), KNE_OK);
    CHECK(kne_ensemble_size(mrg) == kne_ensemble_size(e) + 3);
    CHECK_STATUS(kne_ensemble_rows(mrg, 5, KNE_MODULE_MLP_UP, &rows, &nr), KNE_OK);
    CHECK(nr == 3 && rows[0] == 3 && rows[1] == 7 && rows[2] == 200);
    int32_t bad = 256;
    kne_ensemble *x = NULL;
    CHECK_STATUS(kne_ensemble_from_rows(&x, M, 0, KNE_MODULE_MLP_DOWN, &bad, 1), KNE_ERR_INVALID_ARG);
    CHECK_STATUS(kne_ensemble_from_rows(&x, G, 0, KNE_MODULE_MLP_GATE, hr, 1), KNE_ERR_UNSUPPORTED);
    kne_ensemble *ge = NULL;
    int32_t one = 1;
    CHECK_STATUS(kne_ensemble_from_rows(&ge, G, 0, KNE_MODULE_MLP_DOWN, &one, 1), KNE_OK);
    CHECK_STATUS(kne_ensemble_merge(&x, e, ge), KNE_ERR_MISMATCH);
    /* malformed files */
    FILE *f = fopen(path, "w");
    fputs("{\"format\": \"kne-ensemble\", \"fingerprint\": 5", f);
    fclose(f);
    CHECK_STATUS(kne_ensemble_load(&x, M, path), KNE_ERR_FORMAT);
    f = fopen(path, "w");
    fputs("[1, 2]", f);
    fclose(f);
    CHECK_STATUS(kne_ensemble_load(&x, M, path), KNE_ERR_FORMAT);
    CHECK_STATUS(kne_ensemble_load(&x, M, "/nonexistent/ens.json"), KNE_ERR_NOT_FOUND);
    unlink(path);
    kne_ensemble_free(ge);
    kne_ensemble_free(e);
    kne_ensemble_free(l);
    kne_ensemble_free(hand);
    kne_ensemble_free(mrg);
}

int main(void)
{
    char dir[1024], gdir[1024];
    test_path(dir, sizeof dir, "models/kne-llama-tiny");
    test_path(gdir, sizeof gdir, "models/kne-gpt2-tiny");
    kne_model_params p = kne_model_default_params();
    if (kne_model_load(&M, dir, &p) != KNE_OK || kne_model_load(&G, gdir, &p) != KNE_OK) {
        fprintf(stderr, "load: %s\n", kne_last_error());
        return 1;
    }
    V = kne_model_n_vocab(M);
    edit_and_revert();
    bad_input();
    ensembles();
    kne_model_free(M);
    kne_model_free(G);
    return test_summary("edit");
}
