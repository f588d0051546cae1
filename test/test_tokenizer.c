/* Tokenizer tests: exact ids against the Hugging Face goldens of the three testbed
   models, round trips, the GPT-2 vocab.json + merges.txt loader, the buffer contract,
   errors for malformed files and bad UTF-8, components the goldens do not reach
   (on small hand-written tokenizer.json files), and encoding on several threads. */
#include "kne.h"
#include "test.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------ goldens_public.json reading */

/* The test links libkne only, so it reads the goldens' "tokenizer" list with a
   scanner just big enough for it: strings (with \u escapes) and integer lists. */
typedef struct golden { char *text; int32_t *ids; size_t n_ids; } golden;

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
    return p;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* p at the opening quote; returns a malloc'd string and moves *pp past the closing quote. */
static char *read_string(const char **pp)
{
    const char *p = *pp + 1;
    char *out = malloc(strlen(p) + 1), *o = out;
    while (*p && *p != '"') {
        if (*p != '\\') { *o++ = *p++; continue; }
        p++;
        char c = *p++;
        switch (c) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u': {
            uint32_t cp = (uint32_t)strtoul((char[5]){ p[0], p[1], p[2], p[3], 0 }, NULL, 16);
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && p[0] == '\\' && p[1] == 'u') {
                uint32_t lo = (uint32_t)strtoul((char[5]){ p[2], p[3], p[4], p[5], 0 }, NULL, 16);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            o += put_utf8(o, cp);
            break;
        }
        default: *o++ = c; break; /* \" \\ \/ */
        }
    }
    *o = '\0';
    *pp = *p ? p + 1 : p;
    return out;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = '\0';
    if (len) *len = got;
    return buf;
}

/* Reads goldens[i] = {text, ids} of the "tokenizer" list; returns the count. */
static size_t read_goldens(const char *model, golden **out)
{
    char path[1024], rel[256];
    snprintf(rel, sizeof rel, "models/%s/goldens_public.json", model);
    test_path(path, sizeof path, rel);
    char *buf = read_file(path, NULL);
    *out = NULL;
    if (!buf) return 0;
    const char *p = strstr(buf, "\"tokenizer\"");
    size_t n = 0, cap = 0;
    golden *g = NULL;
    if (p) p = strchr(p, '[');
    while (p && *p) {
        const char *obj = strchr(p, '{'), *end = strchr(p, ']');
        /* the list ends at a ']' that comes before the next object */
        const char *tkey = obj ? strstr(obj, "\"text\"") : NULL;
        if (!obj || (end && end < obj) || !tkey) break;
        if (n == cap) { cap = cap ? cap * 2 : 64; g = realloc(g, cap * sizeof *g); }
        const char *q = skip_ws(strchr(tkey + 6, ':') + 1);
        g[n].text = read_string(&q);
        const char *ids = strchr(strstr(q, "\"ids\""), '[') + 1;
        g[n].ids = NULL;
        g[n].n_ids = 0;
        size_t icap = 0;
        for (;;) {
            ids = skip_ws(ids);
            if (*ids == ']') break;
            char *e;
            long v = strtol(ids, &e, 10);
            if (g[n].n_ids == icap) { icap = icap ? icap * 2 : 16; g[n].ids = realloc(g[n].ids, icap * sizeof(int32_t)); }
            g[n].ids[g[n].n_ids++] = (int32_t)v;
            ids = skip_ws(e);
            if (*ids == ',') ids++;
        }
        n++;
        p = strchr(ids, '}');
        if (p) p++;
    }
    free(buf);
    *out = g;
    return n;
}

static void free_goldens(golden *g, size_t n)
{
    for (size_t i = 0; i < n; i++) { free(g[i].text); free(g[i].ids); }
    free(g);
}

/* ------------------------------------------------------------------ helpers */

static kne_tokenizer *load(const char *rel)
{
    char path[1024];
    test_path(path, sizeof path, rel);
    kne_tokenizer *t = NULL;
    kne_status s = kne_tokenizer_load(&t, path);
    CHECK_MSG(s == KNE_OK, "load %s: %s", path, kne_last_error());
    return t;
}

static int ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* Encodes into a fresh array (*n set); NULL on failure. */
static int32_t *encode(const kne_tokenizer *t, const char *text, int add_special, size_t *n)
{
    size_t need = 0;
    kne_status s = kne_tokenizer_encode(t, text, add_special, NULL, 0, &need);
    if (s != KNE_OK && s != KNE_ERR_BUFFER_TOO_SMALL) return NULL;
    int32_t *ids = malloc((need ? need : 1) * sizeof *ids);
    if (kne_tokenizer_encode(t, text, add_special, ids, need, n) != KNE_OK) { free(ids); return NULL; }
    return ids;
}

static char *decode(const kne_tokenizer *t, const int32_t *ids, size_t n)
{
    size_t len = 0;
    kne_status s = kne_tokenizer_decode(t, ids, n, NULL, 0, &len);
    if (s != KNE_OK && s != KNE_ERR_BUFFER_TOO_SMALL) return NULL;
    char *buf = malloc(len + 1);
    if (kne_tokenizer_decode(t, ids, n, buf, len + 1, &len) != KNE_OK) { free(buf); return NULL; }
    return buf;
}

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", (int)ids[i]);
    fprintf(stderr, "\n");
}

/* ------------------------------------------------------------------ goldens */

static void test_goldens(const char *model, int has_bos)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", model);
    kne_tokenizer *t = load(rel);
    golden *g;
    size_t n = read_goldens(model, &g);
    CHECK_MSG(n == 91, "%s: %zu golden texts, want 91", model, n);
    if (!t) { free_goldens(g, n); return; }
    size_t exact = 0, round = 0;
    for (size_t i = 0; i < n; i++) {
        size_t m = 0;
        int32_t *ids = encode(t, g[i].text, 1, &m);
        int ok = ids && ids_equal(ids, m, g[i].ids, g[i].n_ids);
        exact += ok;
        if (!ok) {
            fprintf(stderr, "%s golden %zu differs: \"%s\"\n", model, i, g[i].text);
            print_ids("want", g[i].ids, g[i].n_ids);
            if (ids) print_ids("got ", ids, m);
        }
        /* without add_special the post-processor's ids are absent */
        size_t m0 = 0;
        int32_t *raw = encode(t, g[i].text, 0, &m0);
        size_t skip = has_bos ? 1 : 0;
        CHECK(raw && m >= skip && ids_equal(raw, m0, ids + skip, m - skip));
        /* decode of the text's own ids (no BOS) gives the text back */
        char *back = raw ? decode(t, raw, m0) : NULL;
        int same = back && strcmp(back, g[i].text) == 0;
        round += same;
        if (!same) fprintf(stderr, "%s round trip of \"%s\" gave \"%s\"\n", model, g[i].text, back ? back : "(error)");
        free(back);
        free(raw);
        free(ids);
    }
    printf("%s: %zu/%zu goldens exact, %zu/%zu round trips\n", model, exact, n, round, n);
    CHECK_MSG(exact == n, "%s: %zu of %zu goldens exact", model, exact, n);
    CHECK_MSG(round == n, "%s: %zu of %zu round trips", model, round, n);
    free_goldens(g, n);
    kne_tokenizer_free(t);
}

/* OpenAI's vocab.json + merges.txt give the ids of kne-gpt2-tiny's tokenizer.json. */
static void test_gpt2_files(void)
{
    kne_tokenizer *t = load("tokenizers/gpt2");
    golden *g;
    size_t n = read_goldens("kne-gpt2-tiny", &g);
    if (!t) { free_goldens(g, n); return; }
    CHECK(kne_tokenizer_n_vocab(t) == 50257);
    CHECK(kne_tokenizer_bos(t) == 50256);
    CHECK(kne_tokenizer_eos(t) == 50256);
    size_t exact = 0;
    for (size_t i = 0; i < n; i++) {
        size_t m = 0;
        int32_t *ids = encode(t, g[i].text, 1, &m);
        exact += ids && ids_equal(ids, m, g[i].ids, g[i].n_ids);
        free(ids);
    }
    printf("tokenizers/gpt2 (vocab.json + merges.txt): %zu/%zu goldens exact\n", exact, n);
    CHECK_MSG(exact == n && n == 91, "gpt2 files: %zu of %zu", exact, n);
    size_t m = 0;
    int32_t *ids = encode(t, "Hello<|endoftext|> world", 1, &m);
    const int32_t want[] = { 15496, 50256, 995 };
    CHECK(ids && ids_equal(ids, m, want, 3));
    char *back = ids ? decode(t, ids, m) : NULL;
    CHECK(back && strcmp(back, "Hello<|endoftext|> world") == 0);
    free(back);
    free(ids);
    free_goldens(g, n);
    kne_tokenizer_free(t);
}

static void test_specials(void)
{
    kne_tokenizer *t = load("models/kne-llama-tiny");
    if (t) {
        CHECK(kne_tokenizer_n_vocab(t) == 32000);
        CHECK(kne_tokenizer_bos(t) == 1);
        CHECK(kne_tokenizer_eos(t) == 2);
        /* special tokens in the text are split out before normalization */
        size_t m = 0;
        int32_t *ids = encode(t, "Hello</s>world", 0, &m);
        const int32_t want[] = { 15043, 2, 3186 };
        CHECK(ids && ids_equal(ids, m, want, 3));
        free(ids);
        /* HF decode keeps the BOS text; the Strip decoder then leaves the space */
        int32_t hello[] = { 1, 15043, 3186 };
        char *s = decode(t, hello, 3);
        CHECK(s && strcmp(s, "<s> Hello world") == 0);
        free(s);
        /* byte fallback pieces decode back to the character */
        ids = encode(t, "emoji \xf0\x9f\x99\x82", 0, &m);
        s = ids ? decode(t, ids, m) : NULL;
        CHECK(s && strcmp(s, "emoji \xf0\x9f\x99\x82") == 0);
        free(s);
        free(ids);
        /* a lone byte token is not UTF-8: U+FFFD, as HF */
        int32_t lone[] = { 243 }; /* <0xF0> */
        s = decode(t, lone, 1);
        CHECK(s && strcmp(s, "\xef\xbf\xbd") == 0);
        free(s);
        kne_tokenizer_free(t);
    }
    t = load("models/kne-gptj-tiny");
    if (t) {
        CHECK(kne_tokenizer_n_vocab(t) == 50257);
        CHECK(kne_tokenizer_bos(t) == 50256 && kne_tokenizer_eos(t) == 50256);
        /* ByteLevel decode of a split multi-byte character: lossy U+FFFD */
        size_t m = 0;
        int32_t *ids = encode(t, "\xf0\x9f\x99\x82", 0, &m);
        CHECK(ids && m >= 2);
        char *s = ids ? decode(t, ids, 1) : NULL;
        CHECK(s && strcmp(s, "\xef\xbf\xbd") == 0);
        free(s);
        free(ids);
        kne_tokenizer_free(t);
    }
}

/* ------------------------------------------------------------ buffer contract */

static void test_buffers(void)
{
    kne_tokenizer *t = load("models/kne-llama-tiny");
    if (!t) return;
    const char *text = "Hello world";
    size_t n = 99;
    CHECK_STATUS(kne_tokenizer_encode(t, text, 1, NULL, 0, &n), KNE_ERR_BUFFER_TOO_SMALL);
    CHECK(n == 3);
    int32_t ids[5] = { -7, -7, -7, -7, -7 };
    n = 0;
    CHECK_STATUS(kne_tokenizer_encode(t, text, 1, ids, 2, &n), KNE_ERR_BUFFER_TOO_SMALL);
    CHECK(n == 3 && ids[2] == -7);
    CHECK_STATUS(kne_tokenizer_encode(t, text, 1, ids, 3, &n), KNE_OK);
    CHECK(n == 3 && ids[0] == 1 && ids[1] == 15043 && ids[2] == 3186 && ids[3] == -7);
    CHECK_STATUS(kne_tokenizer_encode(t, "", 0, NULL, 0, &n), KNE_OK);
    CHECK(n == 0);
    CHECK_STATUS(kne_tokenizer_encode(t, "", 1, ids, 5, &n), KNE_OK);
    CHECK(n == 1 && ids[0] == 1);

    char buf[16];
    size_t len = 0;
    CHECK_STATUS(kne_tokenizer_decode(t, ids + 1, 0, NULL, 0, &len), KNE_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 0);
    int32_t hw[] = { 15043, 3186 };
    memset(buf, 'x', sizeof buf);
    CHECK_STATUS(kne_tokenizer_decode(t, hw, 2, buf, 11, &len), KNE_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 11 && buf[11] == 'x');
    CHECK_STATUS(kne_tokenizer_decode(t, hw, 2, buf, 12, &len), KNE_OK);
    CHECK(len == 11 && strcmp(buf, "Hello world") == 0 && buf[12] == 'x');
    CHECK_STATUS(kne_tokenizer_decode(t, hw, 0, buf, 1, &len), KNE_OK);
    CHECK(len == 0 && buf[0] == '\0');

    /* arguments */
    int32_t bad[] = { 32000 };
    CHECK_STATUS(kne_tokenizer_decode(t, bad, 1, buf, sizeof buf, &len), KNE_ERR_INVALID_ARG);
    bad[0] = -1;
    CHECK_STATUS(kne_tokenizer_decode(t, bad, 1, buf, sizeof buf, &len), KNE_ERR_INVALID_ARG);
    CHECK_STATUS(kne_tokenizer_encode(t, NULL, 1, ids, 5, &n), KNE_ERR_INVALID_ARG);
    CHECK_STATUS(kne_tokenizer_encode(t, text, 1, NULL, 5, &n), KNE_ERR_INVALID_ARG);
    CHECK_STATUS(kne_tokenizer_encode(NULL, text, 1, ids, 5, &n), KNE_ERR_INVALID_ARG);
    CHECK_STATUS(kne_tokenizer_encode(t, text, 1, ids, 5, NULL), KNE_ERR_INVALID_ARG);

    /* invalid UTF-8: a lone continuation byte, a truncated sequence, an overlong, a surrogate */
    const char *invalid[] = { "abc\x80", "caf\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf5\x80\x80\x80" };
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++)
        CHECK_STATUS(kne_tokenizer_encode(t, invalid[i], 1, ids, 5, &n), KNE_ERR_ENCODING);
    kne_tokenizer_free(t);

    CHECK(kne_tokenizer_n_vocab(NULL) == 0 && kne_tokenizer_bos(NULL) == -1 && kne_tokenizer_eos(NULL) == -1);
    kne_tokenizer_free(NULL);
}

/* --------------------------------------------------- hand-written tokenizers */

static char tmpdir[256];

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f) { CHECK_MSG(0, "cannot write %s", path); return; }
    fputs(text, f);
    fclose(f);
}

static void remove_file(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    unlink(path);
}

/* Writes tokenizer.json and loads the directory; returns the status. */
static kne_status load_json_text(const char *json, kne_tokenizer **t)
{
    write_file("tokenizer.json", json);
    *t = NULL;
    return kne_tokenizer_load(t, tmpdir);
}

/* A tiny vocabulary: letters a-e, a few merges. %s slots: model extras, top-level extras. */
#define TINY_VOCAB "\"vocab\": {\"<unk>\": 0, \"a\": 1, \"b\": 2, \"c\": 3, \"d\": 4, \"ab\": 5, \"abc\": 6, \"cd\": 7, " \
                   "\"\\u2581\": 8, \"\\u2581a\": 9, \"\\u2581ab\": 10, \"e\": 11}"

static void tiny(char *buf, size_t cap, const char *model_extra, const char *merges, const char *top_extra)
{
    snprintf(buf, cap,
             "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null, \"added_tokens\": [], %s"
             "\"model\": {\"type\": \"BPE\", \"dropout\": null, %s " TINY_VOCAB ", \"merges\": %s}}",
             top_extra, model_extra, merges);
}

static void expect_ids(const kne_tokenizer *t, const char *text, const int32_t *want, size_t n_want)
{
    size_t m = 0;
    int32_t *ids = encode(t, text, 1, &m);
    int ok = ids && ids_equal(ids, m, want, n_want);
    CHECK_MSG(ok, "encode \"%s\"", text);
    if (!ok) { print_ids("want", want, n_want); if (ids) print_ids("got ", ids, m); }
    free(ids);
}

static void expect_text(const kne_tokenizer *t, const int32_t *ids, size_t n, const char *want)
{
    char *s = decode(t, ids, n);
    CHECK_MSG(s && strcmp(s, want) == 0, "decode gave \"%s\", want \"%s\"", s ? s : "(error)", want);
    free(s);
}

static void test_components(void)
{
    static char json[8192];
    kne_tokenizer *t;

    /* both merge spellings; the pair form; unk fused over a run of unknown characters */
    tiny(json, sizeof json, "\"unk_token\": \"<unk>\", \"fuse_unk\": true,", "[\"a b\", [\"ab\", \"c\"], \"c d\"]", "");
    CHECK_STATUS(load_json_text(json, &t), KNE_OK);
    if (t) {
        expect_ids(t, "abcd", (int32_t[]){ 6, 4 }, 2);   /* ab, then abc (rank 1) beats cd (rank 2) */
        expect_ids(t, "cdab", (int32_t[]){ 7, 5 }, 2);
        expect_ids(t, "axyzb", (int32_t[]){ 1, 0, 2 }, 3);  /* xyz fused into one <unk> */
        expect_text(t, (int32_t[]){ 6, 4 }, 2, "abc d");  /* no decoder: tokens joined by spaces */
        kne_tokenizer_free(t);
    }
    /* unk not fused */
    tiny(json, sizeof json, "\"unk_token\": \"<unk>\", \"fuse_unk\": false,", "[\"a b\"]", "");
    CHECK_STATUS(load_json_text(json, &t), KNE_OK);
    if (t) { expect_ids(t, "xya", (int32_t[]){ 0, 0, 1 }, 3); kne_tokenizer_free(t); }
    /* no unk: unknown characters vanish, as in HF */
    tiny(json, sizeof json, "", "[\"a b\"]", "");
    CHECK_STATUS(load_json_text(json, &t), KNE_OK);
    if (t) { expect_ids(t, "xaby", (int32_t[]){ 5 }, 1); kne_tokenizer_free(t); }
    /* ignore_merges: a word in the vocabulary is taken whole */
    tiny(json, sizeof json, "\"ignore_merges\": true,", "[\"c d\"]", "");
    CHECK_STATUS(load_json_text(json, &t), KNE_OK);
    if (t) {
        expect_ids(t, "abc", (int32_t[]){ 6 }, 1);
        expect_ids(t, "abcd", (int32_t[]){ 1, 2, 7 }, 3);
        kne_tokenizer_free(t);
    }

    /* Metaspace pre-tokenizer and decoder, NFKC (U+FB01 'fi' ligature stays unknown
       as two letters f, i: dropped), Strip normalizer */
    tiny(json, sizeof json, "", "[\"\\u2581 a\", \"\\u2581a b\", \"a b\"]",
         "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFKC\"}, "
         "{\"type\": \"Strip\", \"strip_left\": true, \"strip_right\": true}]}, "
         "\"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"prepend_scheme\": \"always\", \"split\": true}, "
         "\"decoder\": {\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"prepend_scheme\": \"always\", \"split\": true},");
    CHECK_STATUS(load_json_text(json, &t), KNE_OK);
    if (t) {
        expect_ids(t, "  ab a  ", (int32_t[]){ 10, 9 }, 2);
        expect_ids(t, "ab\xef\xbc\xa1" "c", (int32_t[]){ 10, 3 }, 2); /* fullwidth A -> A: unknown, dropped */
        expect_text(t, (int32_t[]){ 10, 9 }, 2, "ab a");
        kne_tokenizer_free(t);
    }

    /* Split (Removed and Isolated), continuing_subword_prefix, Strip/Fuse/Replace decoders */
    snprintf(json, sizeof json,
             "{\"added_tokens\": [], \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": ["
             "{\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Removed\", \"invert\": false},"
             "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\d\"}, \"behavior\": \"Isolated\", \"invert\": false}]},"
             "\"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": \"##\"}, \"content\": \"\"},"
             "{\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": \"x\", \"start\": 1, \"stop\": 2}]},"
             "\"model\": {\"type\": \"BPE\", \"continuing_subword_prefix\": \"##\", \"vocab\": {\"a\": 0, \"##b\": 1, \"ab\": 2, "
             "\"1\": 3, \"##c\": 4, \"abc\": 5, \"x\": 6, \"##x\": 7}, \"merges\": [\"a ##b\", \"ab ##c\"]}}");
    CHECK_STATUS(load_json_text(json, &t), KNE_OK);
    if (t) {
        expect_ids(t, "abc ab1ab", (int32_t[]){ 5, 2, 3, 2 }, 4);
        expect_text(t, (int32_t[]){ 6, 5, 7, 7, 7 }, 5, "abcx");
        kne_tokenizer_free(t);
    }

    /* end_of_word_suffix */
    snprintf(json, sizeof json,
             "{\"added_tokens\": [], \"model\": {\"type\": \"BPE\", \"end_of_word_suffix\": \"</w>\", "
             "\"vocab\": {\"a\": 0, \"b</w>\": 1, \"ab</w>\": 2, \"b\": 3}, \"merges\": [\"a b</w>\"]}}");
    CHECK_STATUS(load_json_text(json, &t), KNE_OK);
    if (t) { expect_ids(t, "ab", (int32_t[]){ 2 }, 1); expect_ids(t, "bab", (int32_t[]){ 3, 2 }, 2); kne_tokenizer_free(t); }

    /* added tokens: lstrip/rstrip take the spaces; single_word only matches whole words;
       a normalized (non-special) token is found in the normalized text */
    snprintf(json, sizeof json,
             "{\"added_tokens\": ["
             "{\"id\": 20, \"content\": \"<m>\", \"single_word\": false, \"lstrip\": true, \"rstrip\": true, \"normalized\": false, \"special\": true},"
             "{\"id\": 21, \"content\": \"cd\", \"single_word\": true, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": false},"
             "{\"id\": 22, \"content\": \"E\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": true, \"special\": false}],"
             "\"normalizer\": {\"type\": \"Lowercase\"},"
             "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Removed\", \"invert\": false},"
             "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<m>\", \"type_id\": 0}}, "
             "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"<m>\", \"type_id\": 0}}], "
             "\"pair\": [], \"special_tokens\": {\"<m>\": {\"id\": \"<m>\", \"ids\": [20], \"tokens\": [\"<m>\"]}}},"
             "\"model\": {\"type\": \"BPE\", " TINY_VOCAB ", \"merges\": [\"a b\", \"c d\"]}}");
    CHECK_STATUS(load_json_text(json, &t), KNE_OK);
    if (t) {
        expect_ids(t, "ab  <m>  cd", (int32_t[]){ 20, 5, 20, 21, 20 }, 5);
        expect_ids(t, "abcd", (int32_t[]){ 20, 5, 7, 20 }, 4);    /* cd inside a word: not the added token */
        expect_ids(t, "AeB", (int32_t[]){ 20, 1, 22, 2, 20 }, 5);  /* lowercased, then "e" is the added token */
        CHECK(kne_tokenizer_n_vocab(t) == 23);
        CHECK(kne_tokenizer_bos(t) == 20 && kne_tokenizer_eos(t) == 20);
        kne_tokenizer_free(t);
    }
}

static void test_bad_files(void)
{
    static char json[4096];
    kne_tokenizer *t = (kne_tokenizer *)1;

    CHECK_STATUS(load_json_text("{\"model\": {\"type\": \"BPE\", \"vocab\": {", &t), KNE_ERR_FORMAT);
    CHECK(t == NULL);
    CHECK_STATUS(load_json_text("{\"version\": \"1.0\", \"added_tokens\": []}", &t), KNE_ERR_FORMAT);
    CHECK(strstr(kne_last_error(), "model") != NULL);
    tiny(json, sizeof json, "", "[\"a zz\"]", "");
    CHECK_STATUS(load_json_text(json, &t), KNE_ERR_FORMAT);
    CHECK(strstr(kne_last_error(), "zz") != NULL);
    tiny(json, sizeof json, "", "[\"a b c\"]", "");
    CHECK_STATUS(load_json_text(json, &t), KNE_ERR_FORMAT);
    tiny(json, sizeof json, "", "[\"b c\"]", ""); /* "bc" is not in the vocabulary */
    CHECK_STATUS(load_json_text(json, &t), KNE_ERR_FORMAT);
    tiny(json, sizeof json, "\"unk_token\": \"<nope>\",", "[]", "");
    CHECK_STATUS(load_json_text(json, &t), KNE_ERR_FORMAT);

    /* components that are not implemented name themselves */
    tiny(json, sizeof json, "", "[]", "\"pre_tokenizer\": {\"type\": \"Whitespace\"},");
    CHECK_STATUS(load_json_text(json, &t), KNE_ERR_UNSUPPORTED);
    CHECK(strstr(kne_last_error(), "pre_tokenizer type 'Whitespace' is not supported") != NULL);
    tiny(json, sizeof json, "", "[]", "\"normalizer\": {\"type\": \"BertNormalizer\"},");
    CHECK_STATUS(load_json_text(json, &t), KNE_ERR_UNSUPPORTED);
    CHECK(strstr(kne_last_error(), "BertNormalizer") != NULL);
    tiny(json, sizeof json, "", "[]", "\"decoder\": {\"type\": \"WordPiece\"},");
    CHECK_STATUS(load_json_text(json, &t), KNE_ERR_UNSUPPORTED);
    tiny(json, sizeof json, "\"dropout\": 0.1,", "[]", "");
    CHECK_STATUS(load_json_text(json, &t), KNE_ERR_UNSUPPORTED);
    CHECK(strstr(kne_last_error(), "dropout") != NULL);
    CHECK_STATUS(load_json_text("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", &t), KNE_ERR_UNSUPPORTED);
    CHECK(strstr(kne_last_error(), "WordPiece") != NULL);
    CHECK_STATUS(load_json_text("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", &t), KNE_ERR_UNSUPPORTED);

    /* vocab.json + merges.txt with a bad merge; then an empty directory */
    remove_file("tokenizer.json");
    write_file("vocab.json", "{\"a\": 0, \"b\": 1, \"ab\": 2}");
    write_file("merges.txt", "#version: 0.2\na b\nb q\n");
    CHECK_STATUS(kne_tokenizer_load(&t, tmpdir), KNE_ERR_FORMAT);
    write_file("merges.txt", "#version: 0.2\na b\n");
    CHECK_STATUS(kne_tokenizer_load(&t, tmpdir), KNE_OK);
    if (t) { expect_ids(t, "ab a", (int32_t[]){ 2, 0 }, 2); kne_tokenizer_free(t); } /* " " has no token: dropped */
    remove_file("vocab.json");
    remove_file("merges.txt");
    CHECK_STATUS(kne_tokenizer_load(&t, tmpdir), KNE_ERR_NOT_FOUND);
    CHECK_STATUS(kne_tokenizer_load(&t, "/nonexistent/tokenizer.json"), KNE_ERR_NOT_FOUND);
    CHECK_STATUS(kne_tokenizer_load(NULL, tmpdir), KNE_ERR_INVALID_ARG);
    CHECK_STATUS(kne_tokenizer_load(&t, NULL), KNE_ERR_INVALID_ARG);
}

/* A tokenizer.json path (not a directory) loads too. */
static void test_file_path(void)
{
    kne_tokenizer *t = load("models/kne-gpt2-tiny/tokenizer.json");
    if (!t) return;
    CHECK(kne_tokenizer_bos(t) == 50256);
    expect_ids(t, "Hello world", (int32_t[]){ 15496, 995 }, 2);
    kne_tokenizer_free(t);
}

/* Llama sees a whole text as one BPE word: a long one must not be quadratic. */
static void test_long_word(void)
{
    kne_tokenizer *t = load("models/kne-llama-tiny");
    if (!t) return;
    size_t n = 200000;
    char *text = malloc(n + 1);
    const char *words = "the capital of France is Paris and ";
    for (size_t i = 0; i < n; i++) text[i] = words[i % strlen(words)];
    text[n] = '\0';
    clock_t c0 = clock();
    size_t m = 0;
    int32_t *ids = encode(t, text, 0, &m);
    double secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
    CHECK(ids && m > 1000);
    CHECK_MSG(secs < 5, "200 kB Llama word took %.2f s", secs);
    char *back = ids ? decode(t, ids, m) : NULL;
    CHECK(back && strcmp(back, text) == 0);
    free(back);
    free(ids);
    free(text);
    kne_tokenizer_free(t);
}

/* ------------------------------------------------------------------ threads */

typedef struct thread_job { const kne_tokenizer *tok; golden *g; size_t n; int bad; } thread_job;

static void *encode_all(void *arg)
{
    thread_job *job = arg;
    for (int rep = 0; rep < 20; rep++)
        for (size_t i = 0; i < job->n; i++) {
            size_t m = 0;
            int32_t ids[512];
            kne_status s = kne_tokenizer_encode(job->tok, job->g[i].text, 1, ids, 512, &m);
            if (s != KNE_OK || !ids_equal(ids, m, job->g[i].ids, job->g[i].n_ids)) job->bad++;
        }
    return NULL;
}

static void test_threads(void)
{
    const char *models[] = { "kne-llama-tiny", "kne-gpt2-tiny" };
    for (int k = 0; k < 2; k++) {
        char rel[256];
        snprintf(rel, sizeof rel, "models/%s", models[k]);
        kne_tokenizer *t = load(rel);
        golden *g;
        size_t n = read_goldens(models[k], &g);
        if (t) {
            pthread_t th[4];
            thread_job jobs[4];
            for (int i = 0; i < 4; i++) {
                jobs[i] = (thread_job){ t, g, n, 0 };
                pthread_create(&th[i], NULL, encode_all, &jobs[i]);
            }
            int bad = 0;
            for (int i = 0; i < 4; i++) { pthread_join(th[i], NULL); bad += jobs[i].bad; }
            CHECK_MSG(bad == 0, "%s: %d wrong encodes on 4 threads", models[k], bad);
            kne_tokenizer_free(t);
        }
        free_goldens(g, n);
    }
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kne_tok_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }

    test_goldens("kne-llama-tiny", 1);
    test_goldens("kne-gptj-tiny", 0);
    test_goldens("kne-gpt2-tiny", 0);
    test_gpt2_files();
    test_specials();
    test_buffers();
    test_components();
    test_bad_files();
    test_file_path();
    test_long_word();
    test_threads();

    remove_file("tokenizer.json");
    rmdir(tmpdir);
    return test_summary("tokenizer");
}
