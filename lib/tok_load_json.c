/* Reads the normalizer, pre_tokenizer, decoder and post_processor of tokenizer.json.
   Anything not implemented is KNE_ERR_UNSUPPORTED naming the component, never skipped. */
#include "tokenizer.h"
#include "error.h"
#include "json_util.h"

#include <stdlib.h>
#include <string.h>

#define GPT2_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

static kne_status oom(void) { return kne_fail(KNE_ERR_OUT_OF_MEMORY, "tokenizer.json: out of memory"); }

static kne_status unsupported(const char *component, const char *type)
{
    return kne_fail(KNE_ERR_UNSUPPORTED, "tokenizer.json: %s type '%s' is not supported", component, type);
}

static const char *type_of(const json_object *j, const char *component, kne_status *st)
{
    const char *t = kne_json_str(j, "type");
    if (!t) *st = kne_fail(KNE_ERR_FORMAT, "tokenizer.json: %s without a 'type'", component);
    return t;
}

static kne_status dup_str(char **out, size_t *len, const char *s)
{
    *len = strlen(s);
    *out = malloc(*len + 1);
    if (!*out) return oom();
    memcpy(*out, s, *len + 1);
    return KNE_OK;
}

static kne_status need_str(const char **out, const json_object *j, const char *key, const char *what)
{
    *out = kne_json_str(j, key);
    if (!*out) return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: %s needs a string '%s'", what, key);
    return KNE_OK;
}

/* A list member of a Sequence: calls parse on each element into a new array. */
#define PARSE_LIST(T, parse, items_out, n_out, list, what)                                      \
    do {                                                                                        \
        if (!(list) || !json_object_is_type((list), json_type_array))                           \
            return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: %s Sequence needs a list", what);  \
        size_t n_ = json_object_array_length(list);                                             \
        *(items_out) = calloc(n_ ? n_ : 1, sizeof(T));                                          \
        if (!*(items_out)) return oom();                                                        \
        for (size_t i_ = 0; i_ < n_; i_++) {                                                    \
            (*(n_out))++;                                                                       \
            KNE_TRY(parse(&(*(items_out))[i_], json_object_array_get_idx((list), i_)));         \
        }                                                                                       \
    } while (0)

/* ------------------------------------------------------------- normalizer */

static kne_status parse_normalizer_into(tok_normalizer *nz, const json_object *j)
{
    kne_status st = KNE_OK;
    const char *t = type_of(j, "normalizer", &st);
    if (!t) return st;
    const char *s;
    if (!strcmp(t, "Sequence")) {
        nz->kind = TN_SEQUENCE;
        PARSE_LIST(tok_normalizer, parse_normalizer_into, &nz->items, &nz->n_items,
                   kne_json_get(j, "normalizers"), "normalizer");
    } else if (!strcmp(t, "Prepend") || !strcmp(t, "Append")) {
        nz->kind = t[0] == 'P' ? TN_PREPEND : TN_APPEND;
        KNE_TRY(need_str(&s, j, t[0] == 'P' ? "prepend" : "append", t));
        KNE_TRY(dup_str(&nz->str, &nz->str_len, s));
    } else if (!strcmp(t, "Replace")) {
        nz->kind = TN_REPLACE;
        KNE_TRY(tok_pattern_from_json(&nz->pat, kne_json_get(j, "pattern"), "Replace normalizer"));
        KNE_TRY(need_str(&s, j, "content", "Replace normalizer"));
        KNE_TRY(dup_str(&nz->str, &nz->str_len, s));
    } else if (!strcmp(t, "NFC")) nz->kind = TN_NFC;
    else if (!strcmp(t, "NFD")) nz->kind = TN_NFD;
    else if (!strcmp(t, "NFKC")) nz->kind = TN_NFKC;
    else if (!strcmp(t, "NFKD")) nz->kind = TN_NFKD;
    else if (!strcmp(t, "Lowercase")) nz->kind = TN_LOWERCASE;
    else if (!strcmp(t, "Strip")) {
        nz->kind = TN_STRIP;
        nz->left = nz->right = 1;
        kne_json_bool(j, "strip_left", &nz->left);
        kne_json_bool(j, "strip_right", &nz->right);
    } else {
        return unsupported("normalizer", t);
    }
    return KNE_OK;
}

kne_status tok_parse_normalizer(tok_normalizer **out, const json_object *j)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return oom();
    return parse_normalizer_into(*out, j);
}

static void tok_normalizer_free_items(tok_normalizer *nz)
{
    for (size_t i = 0; i < nz->n_items; i++) tok_normalizer_free_items(&nz->items[i]);
    free(nz->items);
    free(nz->str);
    tok_pattern_free(&nz->pat);
}

void tok_normalizer_free(tok_normalizer *nz)
{
    if (!nz) return;
    tok_normalizer_free_items(nz);
    free(nz);
}

/* ---------------------------------------------------------- pre-tokenizer */

static kne_status parse_prepend_scheme(int *scheme, const json_object *j, const char *what)
{
    const char *ps = kne_json_str(j, "prepend_scheme");
    int aps;
    if (ps) {
        if (!strcmp(ps, "always")) *scheme = PREPEND_ALWAYS;
        else if (!strcmp(ps, "first")) *scheme = PREPEND_FIRST;
        else if (!strcmp(ps, "never")) *scheme = PREPEND_NEVER;
        else return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: %s: unknown prepend_scheme '%s'", what, ps);
    } else if (kne_json_bool(j, "add_prefix_space", &aps)) {
        *scheme = aps ? PREPEND_ALWAYS : PREPEND_NEVER; /* the older spelling */
    } else {
        *scheme = PREPEND_ALWAYS;
    }
    return KNE_OK;
}

static kne_status parse_replacement(uint32_t *cp, char *enc, size_t *enc_len, const json_object *j, const char *what)
{
    const char *r = kne_json_str(j, "replacement");
    if (!r) r = "\xe2\x96\x81"; /* U+2581 */
    size_t n = strlen(r);
    if (n == 0 || n > 4 || tok_utf8_next(r, n, cp) != n)
        return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: %s: replacement must be one character", what);
    if (enc) { memcpy(enc, r, n); *enc_len = n; }
    return KNE_OK;
}

static kne_status parse_pretok_into(tok_pretok *pt, const json_object *j)
{
    kne_status st = KNE_OK;
    const char *t = type_of(j, "pre_tokenizer", &st);
    if (!t) return st;
    if (!strcmp(t, "Sequence")) {
        pt->kind = TP_SEQUENCE;
        PARSE_LIST(tok_pretok, parse_pretok_into, &pt->items, &pt->n_items,
                   kne_json_get(j, "pretokenizers"), "pre_tokenizer");
    } else if (!strcmp(t, "ByteLevel")) {
        pt->kind = TP_BYTELEVEL;
        pt->use_regex = 1;
        kne_json_bool(j, "add_prefix_space", &pt->add_prefix_space);
        kne_json_bool(j, "use_regex", &pt->use_regex);
        if (pt->use_regex) KNE_TRY(tok_pattern_compile_regex(&pt->pat, GPT2_REGEX, "ByteLevel pre_tokenizer"));
    } else if (!strcmp(t, "Split")) {
        pt->kind = TP_SPLIT;
        KNE_TRY(tok_pattern_from_json(&pt->pat, kne_json_get(j, "pattern"), "Split pre_tokenizer"));
        const char *b = kne_json_str(j, "behavior");
        if (!b) return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: Split pre_tokenizer needs a 'behavior'");
        if (!strcmp(b, "Removed")) pt->behavior = SPLIT_REMOVED;
        else if (!strcmp(b, "Isolated")) pt->behavior = SPLIT_ISOLATED;
        else if (!strcmp(b, "MergedWithPrevious")) pt->behavior = SPLIT_MERGED_PREV;
        else if (!strcmp(b, "MergedWithNext")) pt->behavior = SPLIT_MERGED_NEXT;
        else if (!strcmp(b, "Contiguous")) pt->behavior = SPLIT_CONTIGUOUS;
        else return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: Split pre_tokenizer: unknown behavior '%s'", b);
        kne_json_bool(j, "invert", &pt->invert);
    } else if (!strcmp(t, "Metaspace")) {
        pt->kind = TP_METASPACE;
        uint32_t cp;
        KNE_TRY(parse_replacement(&cp, pt->repl, &pt->repl_len, j, "Metaspace pre_tokenizer"));
        KNE_TRY(parse_prepend_scheme(&pt->prepend_scheme, j, "Metaspace pre_tokenizer"));
        pt->split = 1;
        kne_json_bool(j, "split", &pt->split);
    } else {
        return unsupported("pre_tokenizer", t);
    }
    return KNE_OK;
}

kne_status tok_parse_pretok(tok_pretok **out, const json_object *j)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return oom();
    return parse_pretok_into(*out, j);
}

static void pretok_free_items(tok_pretok *pt)
{
    for (size_t i = 0; i < pt->n_items; i++) pretok_free_items(&pt->items[i]);
    free(pt->items);
    tok_pattern_free(&pt->pat);
}

void tok_pretok_free(tok_pretok *pt)
{
    if (!pt) return;
    pretok_free_items(pt);
    free(pt);
}

/* ---------------------------------------------------------------- decoder */

static kne_status parse_decoder_into(tok_decoder *d, const json_object *j)
{
    kne_status st = KNE_OK;
    const char *t = type_of(j, "decoder", &st);
    if (!t) return st;
    if (!strcmp(t, "Sequence")) {
        d->kind = TD_SEQUENCE;
        PARSE_LIST(tok_decoder, parse_decoder_into, &d->items, &d->n_items, kne_json_get(j, "decoders"), "decoder");
    } else if (!strcmp(t, "ByteLevel")) {
        d->kind = TD_BYTELEVEL;
    } else if (!strcmp(t, "Replace")) {
        d->kind = TD_REPLACE;
        const char *c;
        KNE_TRY(tok_pattern_from_json(&d->pat, kne_json_get(j, "pattern"), "Replace decoder"));
        KNE_TRY(need_str(&c, j, "content", "Replace decoder"));
        KNE_TRY(dup_str(&d->content, &d->content_len, c));
    } else if (!strcmp(t, "ByteFallback")) {
        d->kind = TD_BYTEFALLBACK;
    } else if (!strcmp(t, "Fuse")) {
        d->kind = TD_FUSE;
    } else if (!strcmp(t, "Strip")) {
        d->kind = TD_STRIP;
        const char *c;
        KNE_TRY(need_str(&c, j, "content", "Strip decoder"));
        size_t n = strlen(c);
        if (n == 0 || tok_utf8_next(c, n, &d->strip_char) != n)
            return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: Strip decoder: content must be one character");
        if (!kne_json_int(j, "start", &d->strip_start) || !kne_json_int(j, "stop", &d->strip_stop) ||
            d->strip_start < 0 || d->strip_stop < 0)
            return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: Strip decoder needs 'start' and 'stop' counts");
    } else if (!strcmp(t, "Metaspace")) {
        d->kind = TD_METASPACE;
        KNE_TRY(parse_replacement(&d->repl, NULL, NULL, j, "Metaspace decoder"));
        KNE_TRY(parse_prepend_scheme(&d->prepend_scheme, j, "Metaspace decoder"));
    } else {
        return unsupported("decoder", t);
    }
    return KNE_OK;
}

kne_status tok_parse_decoder(tok_decoder **out, const json_object *j)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return oom();
    return parse_decoder_into(*out, j);
}

static void decoder_free_items(tok_decoder *d)
{
    for (size_t i = 0; i < d->n_items; i++) decoder_free_items(&d->items[i]);
    free(d->items);
    free(d->content);
    tok_pattern_free(&d->pat);
}

void tok_decoder_free(tok_decoder *d)
{
    if (!d) return;
    decoder_free_items(d);
    free(d);
}

/* --------------------------------------------------------- post-processor */

static kne_status add_template(kne_tokenizer *t, tok_template tpl)
{
    tok_template *v = realloc(t->post, (t->n_post + 1) * sizeof *v);
    if (!v) { free(tpl.items); return oom(); }
    t->post = v;
    t->post[t->n_post++] = tpl;
    return KNE_OK;
}

static kne_status template_push(tok_template *tpl, int32_t item)
{
    int32_t *v = realloc(tpl->items, (tpl->n + 1) * sizeof *v);
    if (!v) return oom();
    tpl->items = v;
    tpl->items[tpl->n++] = item;
    return KNE_OK;
}

static kne_status parse_template_item(tok_template *tpl, const json_object *item, const json_object *specials)
{
    json_object *seq = kne_json_get(item, "Sequence"), *sp = kne_json_get(item, "SpecialToken");
    if (seq) {
        const char *id = kne_json_str(seq, "id");
        if (!id || strcmp(id, "A") != 0)
            return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: TemplateProcessing 'single' may only use sequence A");
        return template_push(tpl, TOK_SEQ_A);
    }
    const char *name = sp ? kne_json_str(sp, "id") : NULL;
    if (!name) return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: TemplateProcessing item is neither Sequence nor SpecialToken");
    json_object *ids = kne_json_get(kne_json_get(specials, name), "ids");
    if (!ids || !json_object_is_type(ids, json_type_array))
        return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: TemplateProcessing special token '%s' has no ids", name);
    for (size_t i = 0; i < json_object_array_length(ids); i++) {
        json_object *v = json_object_array_get_idx(ids, i);
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
            json_object_get_int64(v) > INT32_MAX - 1)
            return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: TemplateProcessing special token '%s': bad id", name);
        KNE_TRY(template_push(tpl, (int32_t)json_object_get_int64(v)));
    }
    return KNE_OK;
}

static kne_status pair_id(int32_t *id, const json_object *j, const char *key, const char *what)
{
    json_object *p = kne_json_get(j, key);
    json_object *v = p && json_object_is_type(p, json_type_array) && json_object_array_length(p) == 2
                         ? json_object_array_get_idx(p, 1) : NULL;
    if (!v || !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
        json_object_get_int64(v) > INT32_MAX - 1)
        return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: %s needs '%s' as [token, id]", what, key);
    *id = (int32_t)json_object_get_int64(v);
    return KNE_OK;
}

kne_status tok_parse_post(kne_tokenizer *t, const json_object *j)
{
    kne_status st = KNE_OK;
    const char *type = type_of(j, "post_processor", &st);
    if (!type) return st;
    if (!strcmp(type, "ByteLevel")) return KNE_OK; /* only trims offsets; ids unchanged */
    if (!strcmp(type, "Sequence")) {
        json_object *list = kne_json_get(j, "processors");
        if (!list || !json_object_is_type(list, json_type_array))
            return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: post_processor Sequence needs a list");
        for (size_t i = 0; i < json_object_array_length(list); i++)
            KNE_TRY(tok_parse_post(t, json_object_array_get_idx(list, i)));
        return KNE_OK;
    }
    tok_template tpl = { NULL, 0 };
    if (!strcmp(type, "TemplateProcessing")) {
        json_object *single = kne_json_get(j, "single");
        if (!single || !json_object_is_type(single, json_type_array))
            return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: TemplateProcessing needs a 'single' list");
        for (size_t i = 0; i < json_object_array_length(single) && st == KNE_OK; i++)
            st = parse_template_item(&tpl, json_object_array_get_idx(single, i), kne_json_get(j, "special_tokens"));
    } else if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        int32_t cls = 0, sep = 0;
        st = pair_id(&cls, j, "cls", type);
        if (st == KNE_OK) st = pair_id(&sep, j, "sep", type);
        if (st == KNE_OK) st = template_push(&tpl, cls);
        if (st == KNE_OK) st = template_push(&tpl, TOK_SEQ_A);
        if (st == KNE_OK) st = template_push(&tpl, sep);
    } else {
        return unsupported("post_processor", type);
    }
    if (st != KNE_OK) { free(tpl.items); return st; }
    return add_template(t, tpl);
}
