/* Tokenizer encode throughput, single thread, through the public API only.
   usage: bench_tokenize [tokenizer dir or tokenizer.json] [text file]
   Defaults: ../shared/models/kne-gpt2-tiny and the prose strings of
   ../shared/data/counterfact-edit.json. A text file given is read as raw prose.
   The text is encoded in chunks of whole lines (about 4 KB each), repeated for at
   least two seconds; the result is MB/s of UTF-8 input. */
#include "kne.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    *len = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (buf) buf[*len] = '\0';
    return buf;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/* The JSON string values that contain a space (the prompts and answers written as
   prose), one per line. Surrogate pairs are rare here and become U+FFFD. */
static char *json_prose(const char *json, size_t *len)
{
    char *out = malloc(strlen(json) + 1), *o = out;
    for (const char *p = json; (p = strstr(p, "\": \"")); ) {
        p += 4;
        char *start = o;
        int space = 0;
        while (*p && *p != '"') {
            if (*p != '\\') { space |= *p == ' '; *o++ = *p++; continue; }
            p++;
            if (*p == 'u') {
                unsigned cp = (unsigned)strtoul((char[5]){ p[1], p[2], p[3], p[4], 0 }, NULL, 16);
                if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
                o += put_utf8(o, cp);
                p += 5;
            } else {
                *o++ = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
                p++;
            }
        }
        if (space) *o++ = '\n';
        else o = start;
    }
    *o = '\0';
    *len = (size_t)(o - out);
    return out;
}

int main(int argc, char **argv)
{
    const char *tok_path = argc > 1 ? argv[1] : "../shared/models/kne-gpt2-tiny";
    const char *text_path = argc > 2 ? argv[2] : "../shared/data/counterfact-edit.json";
    kne_tokenizer *tok = NULL;
    if (kne_tokenizer_load(&tok, tok_path) != KNE_OK) {
        fprintf(stderr, "load %s: %s\n", tok_path, kne_last_error());
        return 1;
    }
    size_t raw_len = 0, len = 0;
    char *raw = read_all(text_path, &raw_len);
    if (!raw) { fprintf(stderr, "cannot read %s\n", text_path); return 1; }
    char *text = raw;
    len = raw_len;
    if (argc <= 2) { text = json_prose(raw, &len); free(raw); }

    /* chunks of whole lines, about 4 KB each, NUL-terminated in place */
    size_t n_chunks = 0, cap = 1024;
    char **chunks = malloc(cap * sizeof *chunks);
    for (size_t i = 0; i < len;) {
        size_t end = i + 4096 < len ? i + 4096 : len;
        while (end < len && text[end - 1] != '\n') end++;
        if (n_chunks == cap) chunks = realloc(chunks, (cap *= 2) * sizeof *chunks);
        chunks[n_chunks++] = text + i;
        if (end < len) text[end - 1] = '\0'; /* the newline ends the chunk */
        i = end;
    }

    size_t ids_cap = 1 << 16;
    int32_t *ids = malloc(ids_cap * sizeof *ids);
    double t0 = now(), elapsed = 0;
    clock_t c0 = clock();
    size_t bytes = 0, tokens = 0;
    int passes = 0;
    while (elapsed < 2.0) {
        for (size_t c = 0; c < n_chunks; c++) {
            size_t n = 0;
            kne_status s = kne_tokenizer_encode(tok, chunks[c], 0, ids, ids_cap, &n);
            if (s != KNE_OK) { fprintf(stderr, "encode: %s\n", kne_last_error()); return 1; }
            bytes += strlen(chunks[c]);
            tokens += n;
        }
        passes++;
        elapsed = now() - t0;
    }
    double cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
    printf("tokenizer %s\ntext %s: %.2f MB in %zu chunks, %d passes\n", tok_path, text_path,
           (double)len / 1e6, n_chunks, passes);
    /* CPU time too: on a shared machine wall time also counts other processes */
    printf("encode: %.2f MB/s wall, %.2f MB/s CPU time, %.2f M tokens/s wall, %.2f bytes/token\n",
           (double)bytes / 1e6 / elapsed, (double)bytes / 1e6 / cpu, (double)tokens / 1e6 / elapsed,
           (double)bytes / (double)(tokens ? tokens : 1));
    free(ids);
    free(chunks);
    free(text);
    kne_tokenizer_free(tok);
    return 0;
}
