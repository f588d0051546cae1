/* kne_tokenizer_load and the small public accessors: finds tokenizer.json (or GPT-2's
   vocab.json + merges.txt), builds the pipeline, the id -> token table, BOS and EOS. */
#include "tokenizer.h"
#include "error.h"
#include "json_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>
#include <sys/stat.h>

static kne_status oom(void) { return kne_fail(KNE_ERR_OUT_OF_MEMORY, "tokenizer: out of memory"); }

static void tokenizer_destroy(kne_tokenizer *t)
{
    tok_bpe_free(&t->bpe);
    for (size_t i = 0; i < t->n_added; i++) {
        if (t->added[i].match != t->added[i].content) free(t->added[i].match);
        free(t->added[i].content);
    }
    free(t->added);
    tok_added_set_free(&t->raw_set);
    tok_added_set_free(&t->norm_set);
    tok_normalizer_free(t->normalizer);
    tok_pretok_free(t->pretok);
    tok_decoder_free(t->decoder);
    for (size_t i = 0; i < t->n_post; i++) free(t->post[i].items);
    free(t->post);
    free(t->id_str);
    free(t->id_len);
    free(t);
}

KNE_API void kne_tokenizer_free(kne_tokenizer *tok)
{
    if (tok) tokenizer_destroy(tok);
}

/* ------------------------------------------------------------ added tokens */

static kne_status parse_added(kne_tokenizer *t, const json_object *list)
{
    if (!list) return KNE_OK;
    if (!json_object_is_type(list, json_type_array))
        return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: 'added_tokens' must be a list");
    size_t n = json_object_array_length(list);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return oom();
    for (size_t i = 0; i < n; i++) {
        json_object *o = json_object_array_get_idx(list, i);
        const char *content = kne_json_str(o, "content");
        int64_t id;
        if (!content || !kne_json_int(o, "id", &id) || id < 0 || id > INT32_MAX - 1)
            return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: added token %zu needs 'id' and 'content'", i);
        tok_added *a = &t->added[t->n_added++];
        a->len = strlen(content);
        if (!(a->content = malloc(a->len + 1))) return oom();
        memcpy(a->content, content, a->len + 1);
        a->match = a->content;
        a->match_len = a->len;
        a->id = (int32_t)id;
        kne_json_bool(o, "special", &a->special);
        a->normalized = !a->special; /* HF's default when the field is absent */
        kne_json_bool(o, "normalized", &a->normalized);
        kne_json_bool(o, "lstrip", &a->lstrip);
        kne_json_bool(o, "rstrip", &a->rstrip);
        kne_json_bool(o, "single_word", &a->single_word);
    }
    return KNE_OK;
}

/* Normalized added tokens are searched for in normalized text, as their normalized form. */
static kne_status normalize_added(kne_tokenizer *t)
{
    if (!t->normalizer) return KNE_OK;
    for (size_t i = 0; i < t->n_added; i++) {
        tok_added *a = &t->added[i];
        if (!a->normalized) continue;
        tok_buf out = { 0 };
        kne_status st = tok_normalize(t->normalizer, a->content, a->len, &out);
        if (st == KNE_OK && tok_buf_append(&out, "", 1)) st = oom();
        if (st != KNE_OK) { tok_buf_free(&out); return st; }
        a->match = out.p;
        a->match_len = out.n - 1;
    }
    return KNE_OK;
}

/* ------------------------------------------------------------ id table, specials */

static int32_t token_to_id(const kne_tokenizer *t, const char *s)
{
    for (size_t i = 0; i < t->n_added; i++)
        if (strcmp(t->added[i].content, s) == 0) return t->added[i].id;
    return tok_strmap_get(&t->bpe.vocab, s, strlen(s));
}

static kne_status build_id_table(kne_tokenizer *t)
{
    const tok_strmap *v = &t->bpe.vocab;
    int32_t max = -1;
    for (size_t i = 0; i < v->n; i++) if (v->entries[i].id > max) max = v->entries[i].id;
    for (size_t i = 0; i < t->n_added; i++) if (t->added[i].id > max) max = t->added[i].id;
    t->n_vocab = max + 1;
    size_t n = (size_t)(max + 1);
    t->id_str = calloc(n ? n : 1, sizeof *t->id_str);
    t->id_len = calloc(n ? n : 1, sizeof *t->id_len);
    if (!t->id_str || !t->id_len) return oom();
    for (size_t i = 0; i < v->n; i++) {
        t->id_str[v->entries[i].id] = v->arena.p + v->entries[i].off;
        t->id_len[v->entries[i].id] = v->entries[i].len;
    }
    for (size_t i = 0; i < t->n_added; i++) { /* added tokens take precedence, as in HF */
        t->id_str[t->added[i].id] = t->added[i].content;
        t->id_len[t->added[i].id] = (uint32_t)t->added[i].len;
    }
    return KNE_OK;
}

/* tokenizer_config.json's bos_token / eos_token: a string or {"content": ...}. */
static int32_t config_token(const kne_tokenizer *t, const json_object *cfg, const char *key)
{
    json_object *v = kne_json_get(cfg, key);
    const char *s = NULL;
    if (v && json_object_is_type(v, json_type_string)) s = json_object_get_string(v);
    else if (v) s = kne_json_str(v, "content");
    return s ? token_to_id(t, s) : -1;
}

static int32_t first_known(const kne_tokenizer *t, const char *const *names)
{
    for (; *names; names++) {
        int32_t id = token_to_id(t, *names);
        if (id >= 0) return id;
    }
    return -1;
}

/* BOS/EOS: tokenizer_config.json, else the post-processor's special ids around
   sequence A, else the usual names. */
static void find_specials(kne_tokenizer *t, const char *config_path)
{
    static const char *const bos_names[] = { "<s>", "<|begin_of_text|>", "<|endoftext|>", "<bos>", NULL };
    static const char *const eos_names[] = { "</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", NULL };
    json_object *cfg = NULL;
    t->bos = t->eos = -1;
    struct stat sb;
    if (config_path && stat(config_path, &sb) == 0 && kne_json_read_file(&cfg, config_path) == KNE_OK) {
        t->bos = config_token(t, cfg, "bos_token");
        t->eos = config_token(t, cfg, "eos_token");
        json_object_put(cfg);
    }
    kne_clear_error(); /* the config is optional: a broken one is not the caller's error */
    for (size_t k = 0; k < t->n_post; k++) {
        const tok_template *tpl = &t->post[k];
        for (size_t i = 0; i < tpl->n; i++) {
            if (tpl->items[i] != TOK_SEQ_A) continue;
            if (t->bos < 0 && i > 0) t->bos = tpl->items[0];
            if (t->eos < 0 && i + 1 < tpl->n) t->eos = tpl->items[tpl->n - 1];
        }
    }
    if (t->bos < 0) t->bos = first_known(t, bos_names);
    if (t->eos < 0) t->eos = first_known(t, eos_names);
}

/* ------------------------------------------------------------ the two formats */

static kne_status load_tokenizer_json(kne_tokenizer *t, const char *path)
{
    json_object *root = NULL;
    KNE_TRY(kne_json_read_file(&root, path));
    kne_status st = KNE_OK;
    json_object *model, *j;
    if (!json_object_is_type(root, json_type_object)) {
        st = kne_fail(KNE_ERR_FORMAT, "tokenizer.json: the top level must be an object");
        goto done;
    }
    model = kne_json_get(root, "model");
    if (!model || !json_object_is_type(model, json_type_object)) {
        st = kne_fail(KNE_ERR_FORMAT, "tokenizer.json: missing 'model'");
        goto done;
    }
    const char *type = kne_json_str(model, "type");
    if (type && strcmp(type, "BPE") != 0) {
        st = kne_fail(KNE_ERR_UNSUPPORTED, "tokenizer.json: model type '%s' is not supported (only BPE)", type);
        goto done;
    }
    if (!type && !kne_json_get(model, "merges")) {
        st = kne_fail(KNE_ERR_UNSUPPORTED, "tokenizer.json: model without a type or merges is not supported (only BPE)");
        goto done;
    }
    if (kne_json_get(root, "truncation") || kne_json_get(root, "padding")) {
        st = kne_fail(KNE_ERR_UNSUPPORTED, "tokenizer.json: %s is not supported",
                      kne_json_get(root, "truncation") ? "truncation" : "padding");
        goto done;
    }
    if ((st = tok_bpe_from_json(&t->bpe, model)) != KNE_OK) goto done;
    if ((st = parse_added(t, kne_json_get(root, "added_tokens"))) != KNE_OK) goto done;
    if ((j = kne_json_get(root, "normalizer")) && (st = tok_parse_normalizer(&t->normalizer, j)) != KNE_OK) goto done;
    if ((j = kne_json_get(root, "pre_tokenizer")) && (st = tok_parse_pretok(&t->pretok, j)) != KNE_OK) goto done;
    if ((j = kne_json_get(root, "post_processor")) && (st = tok_parse_post(t, j)) != KNE_OK) goto done;
    if ((j = kne_json_get(root, "decoder")) && (st = tok_parse_decoder(&t->decoder, j)) != KNE_OK) goto done;
    st = normalize_added(t);
done:
    json_object_put(root);
    if (st != KNE_OK && strncmp(kne_last_error(), "tokenizer.json", 14) == 0 && strstr(kne_last_error(), path) == NULL)
        kne_error_prefix(path);
    return st;
}

/* GPT-2's original pair: byte-level BPE, no post-processing, <|endoftext|> special. */
static kne_status load_gpt2_files(kne_tokenizer *t, const char *vocab_path, const char *merges_path)
{
    KNE_TRY(tok_bpe_from_files(&t->bpe, vocab_path, merges_path));
    json_object *pre = json_tokener_parse("{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}");
    json_object *dec = json_tokener_parse("{\"type\": \"ByteLevel\"}");
    kne_status st = pre && dec ? KNE_OK : oom();
    if (st == KNE_OK) st = tok_parse_pretok(&t->pretok, pre);
    if (st == KNE_OK) st = tok_parse_decoder(&t->decoder, dec);
    json_object_put(pre);
    json_object_put(dec);
    int32_t eot = tok_strmap_get(&t->bpe.vocab, "<|endoftext|>", 13);
    if (st == KNE_OK && eot >= 0) {
        if (!(t->added = calloc(1, sizeof *t->added)) || !(t->added[0].content = strdup("<|endoftext|>")))
            return oom();
        t->n_added = 1;
        t->added[0] = (tok_added){ t->added[0].content, 13, t->added[0].content, 13, eot, 1, 0, 0, 0, 0 };
    }
    return st;
}

static int is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static kne_status load_path(kne_tokenizer *t, const char *path, char **config_path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return kne_fail(errno == ENOENT ? KNE_ERR_NOT_FOUND : KNE_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) {
        /* a tokenizer.json file: its config sits beside it */
        const char *slash = strrchr(path, '/');
        char *dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
        *config_path = dir ? join_path(dir, "tokenizer_config.json") : NULL;
        free(dir);
        if (!*config_path) return oom();
        return load_tokenizer_json(t, path);
    }
    char *json = join_path(path, "tokenizer.json");
    char *vocab = join_path(path, "vocab.json");
    char *merges = join_path(path, "merges.txt");
    *config_path = join_path(path, "tokenizer_config.json");
    kne_status st;
    if (!json || !vocab || !merges || !*config_path) st = oom();
    else if (is_file(json)) st = load_tokenizer_json(t, json);
    else if (is_file(vocab) && is_file(merges)) st = load_gpt2_files(t, vocab, merges);
    else st = kne_fail(KNE_ERR_NOT_FOUND, "%s: no tokenizer.json, nor vocab.json with merges.txt", path);
    free(json);
    free(vocab);
    free(merges);
    return st;
}

KNE_API kne_status kne_tokenizer_load(kne_tokenizer **out, const char *path)
{
    kne_clear_error();
    if (!out || !path) return kne_fail(KNE_ERR_INVALID_ARG, "kne_tokenizer_load: NULL argument");
    *out = NULL;
    kne_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return oom();
    tok_bpe_init(&t->bpe);
    char *config_path = NULL;
    kne_status st = load_path(t, path, &config_path);
    if (st == KNE_OK) st = build_id_table(t);
    if (st == KNE_OK && (tok_added_set_build(&t->raw_set, t->added, t->n_added, 0) ||
                         tok_added_set_build(&t->norm_set, t->added, t->n_added, 1)))
        st = oom();
    if (st == KNE_OK) {
        tok_bytelevel_tables(t);
        find_specials(t, config_path);
    }
    free(config_path);
    if (st != KNE_OK) { tokenizer_destroy(t); return st; }
#ifdef __GLIBC__
    /* tokenizer.json's parse tree (tens of MB of small json-c objects) is freed by now;
       hand those pages back instead of keeping them in the heap */
    malloc_trim(0);
#endif
    *out = t;
    return KNE_OK;
}

KNE_API int32_t kne_tokenizer_n_vocab(const kne_tokenizer *tok) { return tok ? tok->n_vocab : 0; }
KNE_API int32_t kne_tokenizer_bos(const kne_tokenizer *tok) { return tok ? tok->bos : -1; }
KNE_API int32_t kne_tokenizer_eos(const kne_tokenizer *tok) { return tok ? tok->eos : -1; }
