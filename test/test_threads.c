/* Editing a model while it serves: 4 reader threads forward a fixed probe in a loop
   while the main thread applies and reverts an edit 20 times. Every reader result must
   equal, bit for bit, the pre-edit or the post-edit logits (both computed first, single-
   threaded): readers see the whole edit or none of it. Also checks that readers saw
   both states, that every revert restores the weights exactly, and that kne_apply is
   not starved by the readers (a watchdog fails the test after WATCHDOG_S seconds).
   Built with -fsanitize=thread by `make tsan`. */
#include "kne.h"
#include "test.h"
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define N_READERS 4
#define N_EDITS 20
#define WATCHDOG_S 240

static const char *PROMPT = "The mother tongue of Danielle Darrieux is";
static const char *TARGET = "English";

typedef struct shared {
    kne_model *m;
    const int32_t *ids;
    size_t n_ids;
    const float *pre, *post;
    size_t n_logits;
    pthread_mutex_t mu;          /* guards stop */
    int stop;
} shared;

typedef struct reader_ctx {
    shared *sh;
    long n_pre, n_post, n_bad, n_err;
} reader_ctx;

static int stopped(shared *sh)
{
    pthread_mutex_lock(&sh->mu);
    int s = sh->stop;
    pthread_mutex_unlock(&sh->mu);
    return s;
}

static void *reader(void *arg)
{
    reader_ctx *rc = arg;
    shared *sh = rc->sh;
    float *lg = malloc(sizeof(float) * sh->n_logits);
    while (lg && !stopped(sh)) {
        kne_status s = kne_model_forward(sh->m, sh->ids, sh->n_ids, lg);
        if (s != KNE_OK) {
            rc->n_err++;
            fprintf(stderr, "reader: forward failed: %s: %s\n", kne_status_str(s), kne_last_error());
        } else if (!memcmp(lg, sh->pre, sizeof(float) * sh->n_logits)) {
            rc->n_pre++;
        } else if (!memcmp(lg, sh->post, sizeof(float) * sh->n_logits)) {
            rc->n_post++;
        } else {
            rc->n_bad++;
        }
    }
    free(lg);
    return NULL;
}

static void *watchdog(void *arg)
{
    (void)arg;
    for (int i = 0; i < WATCHDOG_S; i++) sleep(1);
    fprintf(stderr, "FAIL test_threads: not done after %d s (kne_apply starved by readers, or a deadlock)\n",
            WATCHDOG_S);
    printf("threads: 0 passed, 1 failed\n");
    fflush(stdout);
    _exit(1);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void)
{
    char dir[1024];
    test_path(dir, sizeof dir, "models/kne-llama-tiny");
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog, NULL);
    pthread_detach(wd);

    kne_model *m = NULL;
    CHECK_STATUS(kne_model_load(&m, dir, NULL), KNE_OK);
    if (!m) return test_summary("threads");
    int32_t ids[64];
    size_t n = 0;
    CHECK_STATUS(kne_tokenize(m, PROMPT, 1, ids, 64, &n), KNE_OK);
    size_t V = (size_t)kne_model_n_vocab(m), nl = n * V;
    float *pre = malloc(sizeof(float) * nl), *post = malloc(sizeof(float) * nl), *tmp = malloc(sizeof(float) * nl);

    kne_fact fact = {PROMPT, TARGET, NULL};
    kne_locate_params lp = kne_locate_default_params();
    lp.steps = 4;
    kne_ensemble *ens = NULL;
    CHECK_STATUS(kne_locate(&ens, m, &fact, 1, &lp), KNE_OK);
    kne_edit_params ep = kne_edit_default_params();
    ep.max_steps = 3;
    kne_editor *ed = NULL;
    CHECK_STATUS(kne_editor_new(&ed, m, ens, &ep), KNE_OK);
    if (!ed) return test_summary("threads");

    /* references, single-threaded */
    CHECK_STATUS(kne_model_forward(m, ids, n, pre), KNE_OK);
    CHECK_STATUS(kne_apply(ed, &fact, 1, NULL), KNE_OK);
    CHECK_STATUS(kne_model_forward(m, ids, n, post), KNE_OK);
    CHECK_STATUS(kne_editor_revert(ed), KNE_OK);
    CHECK_STATUS(kne_model_forward(m, ids, n, tmp), KNE_OK);
    CHECK_MSG(!memcmp(tmp, pre, sizeof(float) * nl), "revert restores the logits bit for bit");
    CHECK_MSG(memcmp(pre, post, sizeof(float) * nl) != 0, "the edit changes the probe's logits");

    shared sh = {m, ids, n, pre, post, nl, PTHREAD_MUTEX_INITIALIZER, 0};
    reader_ctx rc[N_READERS];
    pthread_t th[N_READERS];
    for (int i = 0; i < N_READERS; i++) {
        rc[i] = (reader_ctx){&sh, 0, 0, 0, 0};
        pthread_create(&th[i], NULL, reader, &rc[i]);
    }
    double t0 = now_s(), worst_apply = 0;
    int apply_ok = 0, revert_ok = 0;
    for (int e = 0; e < N_EDITS; e++) {
        double t = now_s();
        kne_edit_report rep = {sizeof rep, 0, 0, 0, 0, 0};
        if (kne_apply(ed, &fact, 1, &rep) == KNE_OK) apply_ok++;
        else fprintf(stderr, "apply %d: %s\n", e, kne_last_error());
        if (now_s() - t > worst_apply) worst_apply = now_s() - t;
        usleep(20000); /* let readers run on the edited weights */
        if (kne_editor_revert(ed) == KNE_OK) revert_ok++;
        else fprintf(stderr, "revert %d: %s\n", e, kne_last_error());
        usleep(20000);
    }
    pthread_mutex_lock(&sh.mu);
    sh.stop = 1;
    pthread_mutex_unlock(&sh.mu);
    long n_pre = 0, n_post = 0, n_bad = 0, n_err = 0;
    for (int i = 0; i < N_READERS; i++) {
        pthread_join(th[i], NULL);
        n_pre += rc[i].n_pre;
        n_post += rc[i].n_post;
        n_bad += rc[i].n_bad;
        n_err += rc[i].n_err;
    }
    printf("test_threads: %d readers, %d apply+revert in %.1f s (slowest apply %.2f s); reader results: "
           "%ld pre-edit, %ld post-edit, %ld other, %ld errors\n",
           N_READERS, N_EDITS, now_s() - t0, worst_apply, n_pre, n_post, n_bad, n_err);
    CHECK_MSG(apply_ok == N_EDITS && revert_ok == N_EDITS, "%d applies, %d reverts succeeded", apply_ok, revert_ok);
    CHECK_MSG(n_bad == 0, "%ld reader results equal neither the pre- nor the post-edit logits", n_bad);
    CHECK_MSG(n_err == 0, "%ld reader forwards failed", n_err);
    CHECK_MSG(n_pre > 0 && n_post > 0, "readers saw both states (%ld pre, %ld post)", n_pre, n_post);
    CHECK(kne_editor_n_applied(ed) == 0);
    CHECK_STATUS(kne_model_forward(m, ids, n, tmp), KNE_OK);
    CHECK_MSG(!memcmp(tmp, pre, sizeof(float) * nl), "after 20 apply/revert the weights are the original ones");

    kne_editor_free(ed);
    kne_ensemble_free(ens);
    kne_model_free(m);
    free(pre);
    free(post);
    free(tmp);
    return test_summary("threads");
}
