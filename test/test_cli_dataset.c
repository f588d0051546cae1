/* The data set loaders of the kne CLI: each format on a small hand-written file, and
   files in no known format. */
#include "test.h"
#include "../cli/dataset.c"

#include <dirent.h>
#include <unistd.h>

static char dir[256];

static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    fputs(text, f);
    fclose(f);
    return path;
}

static int load(cli_dataset *ds, const char *name, const char *text, char *err, size_t cap)
{
    const char *p = write_file(name, text);
    return p ? cli_dataset_load(ds, p, 0, err, cap) : -1;
}

static void test_counterfact(void)
{
    const char *j = "[{\"case_id\": 0, \"prompt\": \"The mother tongue of Danielle Darrieux is\", \"target_new\": "
                    "\"English\", \"subject\": \"Danielle Darrieux\", \"ground_truth\": \"French\", "
                    "\"rephrase_prompt\": \"Where Danielle Darrieux is from, people speak the language of\", "
                    "\"locality_prompt\": \"Michel Rocard is a native speaker of\", \"locality_ground_truth\": "
                    "\"French\"},"
                    "{\"prompt\": \"B is\", \"target_new\": \"x\", \"subject\": \"B\", \"ground_truth\": \"y\", "
                    "\"rephrase_prompt\": \"B, it is\", \"locality_prompt\": \"C is\", \"locality_ground_truth\": \"z\"}]";
    cli_dataset ds;
    char err[512] = "";
    CHECK_MSG(load(&ds, "cf.json", j, err, sizeof err) == 0, "%s", err);
    CHECK(ds.format == CLI_FMT_COUNTERFACT);
    CHECK(ds.n == 2);
    if (ds.n == 2) {
        cli_record *r = &ds.rec[0];
        CHECK(!strcmp(r->prompt, "The mother tongue of Danielle Darrieux is"));
        CHECK(!strcmp(r->target, "English"));
        CHECK(r->subject && !strcmp(r->subject, "Danielle Darrieux"));
        CHECK(r->ground_truth && !strcmp(r->ground_truth, "French"));
        CHECK(r->n_rephrase == 1 && !strcmp(r->rephrase[0], "Where Danielle Darrieux is from, people speak the language of"));
        CHECK(r->n_locality == 1 && !strcmp(r->locality[0].prompt, "Michel Rocard is a native speaker of") &&
              !strcmp(r->locality[0].answer, "French"));
        CHECK(r->n_portability == 0);
        CHECK(!strcmp(ds.rec[1].locality[0].answer, "z"));
    }
    cli_dataset_free(&ds);
    /* limit */
    const char *p = write_file("cf2.json", j);
    CHECK(cli_dataset_load(&ds, p, 1, err, sizeof err) == 0 && ds.n == 1);
    cli_dataset_free(&ds);
}

static void test_zsre(void)
{
    const char *j = "[{\"subject\": \"Watts Humphrey\", \"src\": \"What university did Watts Humphrey attend?\", "
                    "\"pred\": \"Trinity College\", \"rephrase\": \"What university did Watts Humphrey take part in?\", "
                    "\"alt\": \"University of Michigan\", \"answers\": [\"Illinois Institute of Technology\"], "
                    "\"loc\": \"nq question: who played desmond doss father in hacksaw ridge\", "
                    "\"loc_ans\": \"Hugo Weaving\", \"cond\": \"Trinity College >> University of Michigan || "
                    "What university did Watts Humphrey attend?\"}]";
    cli_dataset ds;
    char err[512] = "";
    CHECK_MSG(load(&ds, "zsre.json", j, err, sizeof err) == 0, "%s", err);
    CHECK(ds.format == CLI_FMT_ZSRE && ds.n == 1);
    if (ds.n == 1) {
        cli_record *r = &ds.rec[0];
        CHECK(!strcmp(r->prompt, "What university did Watts Humphrey attend?"));
        CHECK(!strcmp(r->target, "University of Michigan"));
        CHECK(r->subject && !strcmp(r->subject, "Watts Humphrey"));
        CHECK(r->ground_truth && !strcmp(r->ground_truth, "Illinois Institute of Technology"));
        CHECK(r->n_rephrase == 1 && !strcmp(r->rephrase[0], "What university did Watts Humphrey take part in?"));
        /* EasyEdit keeps the "nq question: " prefix */
        CHECK(r->n_locality == 1 &&
              !strcmp(r->locality[0].prompt, "nq question: who played desmond doss father in hacksaw ridge") &&
              !strcmp(r->locality[0].answer, "Hugo Weaving"));
    }
    cli_dataset_free(&ds);
}

static void test_knowedit(void)
{
    const char *j =
        "[{\"subject\": \"Lahti Town Hall\", \"prompt\": \"The name of the architect who designed Lahti Town Hall is\", "
        "\"target_new\": \"Aki Kaurismäki\", \"ground_truth\": [\"Eliel Saarinen\", \"Saarinen\"], "
        "\"rephrase_prompt\": \"Lahti Town Hall was designed by\", "
        "\"portability\": {\"Reasoning\": [{\"prompt\": \"The architect of Lahti Town Hall was born in\", "
        "\"ground_truth\": [[\"Orimattila\", \"Orimattila, Finland\"]]}], "
        "\"Subject_Aliasing\": [{\"prompt\": \"The architect of Lahti City Hall is\", \"ground_truth\": "
        "\"Aki Kaurismäki\"}]}, "
        "\"locality\": {\"Relation_Specificity\": [{\"prompt\": \"The country of Lahti Town Hall is\", "
        "\"ground_truth\": [[\"Finland\", \"FI\"]]}, {\"prompt\": \"Lahti Town Hall is located in\", "
        "\"ground_truth\": [\"Lahti\"]}]}},"
        "{\"subject\": \"X\", \"prompt\": \"X is\", \"target_new\": \"y\"}]";
    cli_dataset ds;
    char err[512] = "";
    CHECK_MSG(load(&ds, "knowedit.json", j, err, sizeof err) == 0, "%s", err);
    CHECK(ds.format == CLI_FMT_KNOWEDIT && ds.n == 2);
    if (ds.n == 2) {
        cli_record *r = &ds.rec[0];
        CHECK(!strcmp(r->target, "Aki Kaurismäki"));
        CHECK(r->ground_truth && !strcmp(r->ground_truth, "Eliel Saarinen")); /* first alias */
        CHECK(r->n_rephrase == 1 && !strcmp(r->rephrase[0], "Lahti Town Hall was designed by"));
        CHECK(r->n_portability == 2);
        int found_reasoning = 0, found_alias = 0;
        for (size_t i = 0; i < r->n_portability; i++) {
            if (!strcmp(r->portability[i].prompt, "The architect of Lahti Town Hall was born in"))
                found_reasoning = !strcmp(r->portability[i].answer, "Orimattila"); /* list of alias lists */
            if (!strcmp(r->portability[i].prompt, "The architect of Lahti City Hall is"))
                found_alias = !strcmp(r->portability[i].answer, "Aki Kaurismäki");
        }
        CHECK(found_reasoning && found_alias);
        CHECK(r->n_locality == 2);
        if (r->n_locality == 2) {
            CHECK(!strcmp(r->locality[0].prompt, "The country of Lahti Town Hall is"));
            CHECK(!strcmp(r->locality[0].answer, "Finland"));
            CHECK(!strcmp(r->locality[1].answer, "Lahti"));
        }
        /* fields are optional */
        CHECK(ds.rec[1].n_rephrase == 0 && ds.rec[1].n_portability == 0 && ds.rec[1].n_locality == 0);
        CHECK(ds.rec[1].ground_truth == NULL);
    }
    cli_dataset_free(&ds);
}

static void test_simple(void)
{
    cli_dataset ds;
    char err[512] = "";
    CHECK_MSG(load(&ds, "facts.json", "[{\"prompt\": \"The capital of France is\", \"target\": \"Rome\"}]", err,
                   sizeof err) == 0, "%s", err);
    CHECK(ds.format == CLI_FMT_SIMPLE && ds.n == 1);
    if (ds.n == 1) {
        CHECK(!strcmp(ds.rec[0].prompt, "The capital of France is") && !strcmp(ds.rec[0].target, "Rome"));
        CHECK(ds.rec[0].subject == NULL && ds.rec[0].n_locality == 0);
    }
    cli_dataset_free(&ds);
}

static void test_errors(void)
{
    cli_dataset ds;
    char err[512] = "";
    CHECK(load(&ds, "unknown.json", "[{\"question\": \"a\", \"answer\": \"b\"}]", err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "not in a known format") != NULL, "%s", err);
    CHECK(ds.n == 0 && ds.rec == NULL);
    err[0] = 0;
    CHECK(load(&ds, "object.json", "{\"prompt\": \"a\", \"target\": \"b\"}", err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "not in a known format") != NULL, "%s", err);
    err[0] = 0;
    CHECK(load(&ds, "bad.json", "[{\"prompt\": \"a\", ", err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "not valid JSON") != NULL, "%s", err);
    err[0] = 0;
    CHECK(load(&ds, "empty.json", "[]", err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "no records") != NULL, "%s", err);
    err[0] = 0;
    /* a later record missing its target */
    CHECK(load(&ds, "partial.json", "[{\"prompt\": \"a\", \"target\": \"b\"}, {\"prompt\": \"c\"}]", err,
               sizeof err) == -1);
    CHECK_MSG(strstr(err, "record 1") != NULL, "%s", err);
    err[0] = 0;
    char missing[300];
    snprintf(missing, sizeof missing, "%s/does-not-exist.json", dir);
    CHECK(cli_dataset_load(&ds, missing, 0, err, sizeof err) == -1 && strstr(err, "cannot open"));
}

static void test_shared_files(void)
{
    char path[512];
    cli_dataset ds;
    char err[512] = "";
    test_path(path, sizeof path, "data/counterfact-edit.json");
    if (cli_dataset_load(&ds, path, 20, err, sizeof err) == 0) {
        CHECK(ds.format == CLI_FMT_COUNTERFACT && ds.n == 20);
        CHECK(ds.rec[0].n_rephrase == 1 && ds.rec[0].n_locality == 1);
        cli_dataset_free(&ds);
    } else {
        CHECK_MSG(0, "%s", err);
    }
    test_path(path, sizeof path, "data/zsre_mend_train-1k.json");
    if (cli_dataset_load(&ds, path, 20, err, sizeof err) == 0) {
        CHECK(ds.format == CLI_FMT_ZSRE && ds.n == 20);
        CHECK(!strncmp(ds.rec[0].locality[0].prompt, "nq question: ", 13));
        cli_dataset_free(&ds);
    } else {
        CHECK_MSG(0, "%s", err);
    }
}

static void cleanup(void)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[600];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/kne-test-dataset-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_counterfact();
    test_zsre();
    test_knowedit();
    test_simple();
    test_errors();
    test_shared_files();
    cleanup();
    return test_summary("test_cli_dataset");
}
