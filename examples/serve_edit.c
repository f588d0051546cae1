/* Edit a model while it serves: one thread answers the same question in a loop (a
   stand-in for a server), while the main thread locates and applies a correction.
   The server picks up the new answer without stopping.   usage: serve_edit MODEL_DIR */
#include "kne.h"
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *PROMPT = "The mother tongue of Danielle Darrieux is";

typedef struct server {
    kne_model *model;
    pthread_mutex_t mu;   /* guards the fields below */
    int stop, served, changes;
    char answer[256];
} server;

static void *serve(void *arg)
{
    server *sv = arg;
    int32_t ids[256], out[8];
    size_t n = 0, n_out = 0, len = 0;
    char text[256];
    kne_generate_params gp = kne_generate_default_params();
    gp.max_tokens = 4;
    kne_tokenize(sv->model, PROMPT, 1, ids, 256, &n);
    for (;;) {
        pthread_mutex_lock(&sv->mu);
        int stop = sv->stop;
        pthread_mutex_unlock(&sv->mu);
        if (stop) break;
        /* forward/generate may run while another thread applies an edit */
        if (kne_model_generate(sv->model, ids, n, &gp, out, 8, &n_out) != KNE_OK) {
            fprintf(stderr, "server: %s\n", kne_last_error());
            break;
        }
        if (n_out > 0 && out[n_out - 1] == kne_tokenizer_eos(kne_model_tokenizer(sv->model))) n_out--;
        if (kne_detokenize(sv->model, out, n_out, text, sizeof text, &len) != KNE_OK) {
            fprintf(stderr, "server: %s\n", kne_last_error());
            break;
        }
        pthread_mutex_lock(&sv->mu);
        sv->served++;
        if (strcmp(text, sv->answer) != 0) {
            printf("  [server] request %3d: %s %s\n", sv->served, PROMPT, text);
            strcpy(sv->answer, text);
            sv->changes++;
        }
        pthread_mutex_unlock(&sv->mu);
        usleep(10000); /* waiting for the next request */
    }
    return NULL;
}

static int served(server *sv)
{
    pthread_mutex_lock(&sv->mu);
    int n = sv->served;
    pthread_mutex_unlock(&sv->mu);
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    server sv = {NULL, PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, ""};
    if (kne_model_load(&sv.model, argv[1], NULL) != KNE_OK) {
        fprintf(stderr, "load: %s\n", kne_last_error());
        return 1;
    }
    pthread_t th;
    pthread_create(&th, NULL, serve, &sv);
    while (served(&sv) < 3) usleep(1000);

    /* the correction, computed and written while the server keeps answering */
    kne_fact fact = {PROMPT, "English", NULL};
    kne_ensemble *ens = NULL;
    kne_editor *ed = NULL;
    kne_edit_report rep = {sizeof rep, 0, 0, 0, 0, 0};
    kne_status s = kne_locate(&ens, sv.model, &fact, 1, NULL);
    if (s == KNE_OK) s = kne_editor_new(&ed, sv.model, ens, NULL);
    printf("  [editor] applying \"%s English\" (%zu neurons) at request %d\n", PROMPT, kne_ensemble_size(ens),
           served(&sv));
    if (s == KNE_OK) s = kne_apply(ed, &fact, 1, &rep);
    if (s != KNE_OK) fprintf(stderr, "edit: %s: %s\n", kne_status_str(s), kne_last_error());
    else printf("  [editor] applied at request %d (%d steps, %.2f s)\n", served(&sv), rep.steps, rep.seconds);
    int target = served(&sv) + 3;
    while (s == KNE_OK && served(&sv) < target) usleep(1000);

    pthread_mutex_lock(&sv.mu);
    sv.stop = 1;
    pthread_mutex_unlock(&sv.mu);
    pthread_join(th, NULL);
    int ok = s == KNE_OK && sv.changes >= 2 && strstr(sv.answer, "English") != NULL;
    printf("%d requests served, answer now: %s\n", sv.served, sv.answer);
    kne_editor_free(ed); /* the edit stays in the model */
    kne_ensemble_free(ens);
    kne_model_free(sv.model);
    return ok ? 0 : 1;
}
