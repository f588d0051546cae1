#include "dataset.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cli_format_name(cli_format f)
{
    switch (f) {
    case CLI_FMT_COUNTERFACT: return "counterfact";
    case CLI_FMT_ZSRE: return "zsre";
    case CLI_FMT_KNOWEDIT: return "knowedit";
    case CLI_FMT_SIMPLE: return "facts";
    default: return "unknown";
    }
}

static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || !cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static char *dup_str(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_is_type(o, json_type_object)) return NULL;
    if (!json_object_object_get_ex(o, key, &v)) return NULL;
    return v;
}

/* A string, or the first string of a (nested) list of aliases. */
static const char *first_alias(json_object *v)
{
    for (int depth = 0; v && depth < 4; depth++) {
        if (json_object_is_type(v, json_type_string)) return json_object_get_string(v);
        if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0) return NULL;
        v = json_object_array_get_idx(v, 0);
    }
    return NULL;
}

static int push_str(char ***arr, size_t *n, const char *s)
{
    char **p = realloc(*arr, (*n + 1) * sizeof *p);
    if (!p) return -1;
    *arr = p;
    if (!(p[*n] = dup_str(s))) return -1;
    (*n)++;
    return 0;
}

static int push_qa(cli_qa **arr, size_t *n, const char *prompt, const char *answer)
{
    cli_qa *p = realloc(*arr, (*n + 1) * sizeof *p);
    if (!p) return -1;
    *arr = p;
    p[*n].prompt = dup_str(prompt);
    p[*n].answer = dup_str(answer);
    if (!p[*n].prompt || !p[*n].answer) {
        free(p[*n].prompt);
        free(p[*n].answer);
        return -1;
    }
    (*n)++;
    return 0;
}

/* A string or a list of strings: every non-empty one. */
static int push_strings(char ***arr, size_t *n, json_object *v)
{
    if (!v) return 0;
    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        return *s ? push_str(arr, n, s) : 0;
    }
    if (json_object_is_type(v, json_type_array))
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            json_object *e = json_object_array_get_idx(v, i);
            if (json_object_is_type(e, json_type_string) && *json_object_get_string(e))
                if (push_str(arr, n, json_object_get_string(e))) return -1;
        }
    return 0;
}

/* One KnowEdit entry {prompt, ground_truth}; prompt may be a list (one entry each). */
static int push_knowedit_entry(cli_qa **arr, size_t *n, json_object *e)
{
    if (!json_object_is_type(e, json_type_object)) return 0;
    const char *ans = first_alias(get(e, "ground_truth"));
    if (!ans) ans = first_alias(get(e, "answer"));
    json_object *p = get(e, "prompt");
    if (!ans || !*ans || !p) return 0;
    if (json_object_is_type(p, json_type_string)) return push_qa(arr, n, json_object_get_string(p), ans);
    if (json_object_is_type(p, json_type_array))
        for (size_t i = 0; i < json_object_array_length(p); i++) {
            json_object *q = json_object_array_get_idx(p, i);
            if (json_object_is_type(q, json_type_string))
                if (push_qa(arr, n, json_object_get_string(q), ans)) return -1;
        }
    return 0;
}

/* {"Reasoning": [entries] or entry, ...} */
static int push_knowedit_group(cli_qa **arr, size_t *n, json_object *g)
{
    if (!g || !json_object_is_type(g, json_type_object)) return 0;
    json_object_object_foreach(g, key, val)
    {
        (void)key;
        if (json_object_is_type(val, json_type_array)) {
            for (size_t i = 0; i < json_object_array_length(val); i++)
                if (push_knowedit_entry(arr, n, json_object_array_get_idx(val, i))) return -1;
        } else if (push_knowedit_entry(arr, n, val)) {
            return -1;
        }
    }
    return 0;
}

static cli_format detect(json_object *r)
{
    if (!json_object_is_type(r, json_type_object)) return CLI_FMT_UNKNOWN;
    if (get(r, "src") && get(r, "alt")) return CLI_FMT_ZSRE;
    if (get(r, "prompt") && get(r, "target_new")) {
        if (get(r, "locality_prompt") || get(r, "locality_ground_truth")) return CLI_FMT_COUNTERFACT;
        return CLI_FMT_KNOWEDIT;
    }
    if (get(r, "prompt") && get(r, "target")) return CLI_FMT_SIMPLE;
    return CLI_FMT_UNKNOWN;
}

static const char *req_string(json_object *r, const char *key)
{
    json_object *v = get(r, key);
    if (!v) return NULL;
    if (json_object_is_type(v, json_type_string)) return json_object_get_string(v);
    return first_alias(v); /* target_new may be a list of aliases in some KnowEdit files */
}

static int parse_record(cli_format f, json_object *r, cli_record *out, size_t idx, char *err, size_t cap)
{
    memset(out, 0, sizeof *out);
    if (!json_object_is_type(r, json_type_object)) {
        set_err(err, cap, "record %zu is not a JSON object", idx);
        return -1;
    }
    const char *pk = "prompt", *tk = "target_new";
    if (f == CLI_FMT_ZSRE) pk = "src", tk = "alt";
    else if (f == CLI_FMT_SIMPLE) tk = "target";
    const char *prompt = req_string(r, pk), *target = req_string(r, tk);
    if (!prompt || !target) {
        set_err(err, cap, "record %zu (%s format) has no string \"%s\"", idx, cli_format_name(f),
                !prompt ? pk : tk);
        return -1;
    }
    out->prompt = dup_str(prompt);
    out->target = dup_str(target);
    const char *subj = req_string(r, "subject");
    out->subject = subj && *subj ? dup_str(subj) : NULL;
    int rc = 0;
    switch (f) {
    case CLI_FMT_COUNTERFACT: {
        const char *gt = first_alias(get(r, "ground_truth"));
        out->ground_truth = gt ? dup_str(gt) : NULL;
        rc |= push_strings(&out->rephrase, &out->n_rephrase, get(r, "rephrase_prompt"));
        json_object *lp = get(r, "locality_prompt");
        const char *la = first_alias(get(r, "locality_ground_truth"));
        if (lp && la && *la) {
            char **ps = NULL;
            size_t np = 0;
            rc |= push_strings(&ps, &np, lp);
            for (size_t i = 0; i < np; i++) {
                rc |= push_qa(&out->locality, &out->n_locality, ps[i], la);
                free(ps[i]);
            }
            free(ps);
        }
        break;
    }
    case CLI_FMT_ZSRE: {
        const char *gt = first_alias(get(r, "answers"));
        if (!gt) gt = first_alias(get(r, "pred"));
        out->ground_truth = gt ? dup_str(gt) : NULL;
        rc |= push_strings(&out->rephrase, &out->n_rephrase, get(r, "rephrase"));
        const char *loc = req_string(r, "loc"), *la = first_alias(get(r, "loc_ans"));
        if (loc && *loc && la && *la) rc |= push_qa(&out->locality, &out->n_locality, loc, la);
        break;
    }
    case CLI_FMT_KNOWEDIT: {
        const char *gt = first_alias(get(r, "ground_truth"));
        out->ground_truth = gt ? dup_str(gt) : NULL;
        json_object *rp = get(r, "rephrase_prompt");
        if (!rp) rp = get(r, "rephrase");
        rc |= push_strings(&out->rephrase, &out->n_rephrase, rp);
        rc |= push_knowedit_group(&out->portability, &out->n_portability, get(r, "portability"));
        rc |= push_knowedit_group(&out->locality, &out->n_locality, get(r, "locality"));
        break;
    }
    default: break;
    }
    if (rc || !out->prompt || !out->target) {
        set_err(err, cap, "out of memory");
        return -1;
    }
    return 0;
}

static void free_record(cli_record *r)
{
    free(r->prompt);
    free(r->target);
    free(r->subject);
    free(r->ground_truth);
    for (size_t i = 0; i < r->n_rephrase; i++) free(r->rephrase[i]);
    free(r->rephrase);
    for (size_t i = 0; i < r->n_portability; i++) {
        free(r->portability[i].prompt);
        free(r->portability[i].answer);
    }
    free(r->portability);
    for (size_t i = 0; i < r->n_locality; i++) {
        free(r->locality[i].prompt);
        free(r->locality[i].answer);
    }
    free(r->locality);
}

void cli_dataset_free(cli_dataset *ds)
{
    if (!ds) return;
    for (size_t i = 0; i < ds->n; i++) free_record(&ds->rec[i]);
    free(ds->rec);
    memset(ds, 0, sizeof *ds);
}

static int from_json(cli_dataset *ds, json_object *root, size_t limit, char *err, size_t cap)
{
    memset(ds, 0, sizeof *ds);
    if (json_object_is_type(root, json_type_object)) { /* {"data": [...]} wrappers */
        json_object *d = get(root, "data");
        if (!d) d = get(root, "records");
        if (d) root = d;
    }
    if (!json_object_is_type(root, json_type_array)) {
        set_err(err, cap, "not in a known format: the top level is not a list of records "
                "(CounterFact, zsRE, KnowEdit or [{\"prompt\", \"target\"}])");
        return -1;
    }
    size_t n = json_object_array_length(root);
    if (n == 0) {
        set_err(err, cap, "the file holds no records");
        return -1;
    }
    cli_format f = detect(json_object_array_get_idx(root, 0));
    if (f == CLI_FMT_UNKNOWN) {
        set_err(err, cap, "not in a known format: record 0 has neither CounterFact keys (prompt, target_new, "
                "locality_prompt), zsRE keys (src, alt), KnowEdit keys (prompt, target_new, portability, "
                "locality) nor prompt + target");
        return -1;
    }
    if (limit && limit < n) n = limit;
    ds->rec = calloc(n, sizeof *ds->rec);
    if (!ds->rec) {
        set_err(err, cap, "out of memory");
        return -1;
    }
    ds->format = f;
    for (size_t i = 0; i < n; i++) {
        if (parse_record(f, json_object_array_get_idx(root, i), &ds->rec[i], i, err, cap)) {
            free_record(&ds->rec[i]);
            cli_dataset_free(ds);
            return -1;
        }
        ds->n = i + 1;
    }
    return 0;
}

int cli_dataset_parse(cli_dataset *ds, const char *text, size_t limit, char *err, size_t cap)
{
    memset(ds, 0, sizeof *ds);
    json_tokener *tk = json_tokener_new();
    if (!tk) {
        set_err(err, cap, "out of memory");
        return -1;
    }
    json_object *root = json_tokener_parse_ex(tk, text, (int)strlen(text));
    enum json_tokener_error je = json_tokener_get_error(tk);
    if (!root || je != json_tokener_success) {
        set_err(err, cap, "not valid JSON: %s", json_tokener_error_desc(je));
        json_object_put(root);
        json_tokener_free(tk);
        return -1;
    }
    json_tokener_free(tk);
    int rc = from_json(ds, root, limit, err, cap);
    json_object_put(root);
    return rc;
}

int cli_dataset_load(cli_dataset *ds, const char *path, size_t limit, char *err, size_t cap)
{
    memset(ds, 0, sizeof *ds);
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, cap, "%s: cannot open", path);
        return -1;
    }
    size_t len = 0, capb = 1 << 16;
    char *buf = malloc(capb);
    size_t got;
    while (buf && (got = fread(buf + len, 1, capb - len - 1, f)) > 0) {
        len += got;
        if (len + 1 == capb) {
            char *p = realloc(buf, capb * 2);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            capb *= 2;
        }
    }
    int ioerr = ferror(f);
    fclose(f);
    if (!buf || ioerr) {
        free(buf);
        set_err(err, cap, "%s: cannot read", path);
        return -1;
    }
    buf[len] = 0;
    char inner[512] = "";
    int rc = cli_dataset_parse(ds, buf, limit, inner, sizeof inner);
    free(buf);
    if (rc) set_err(err, cap, "%s: %s", path, inner);
    return rc;
}
