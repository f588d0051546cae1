/* The BPE model: vocabulary, merges by rank, and the per-word merge loop of
   Hugging Face's Word::merge_all (a heap ordered by (rank, position) over a linked
   list of symbols, so long words such as a whole Llama sentence stay O(n log n)). */
#include "tokenizer.h"
#include "error.h"
#include "json_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tok_sym { int32_t id, prev, next; uint32_t len; } tok_sym;
typedef struct tok_merge { uint32_t rank, pos; int32_t new_id; } tok_merge;

void tok_bpe_init(tok_bpe *bpe)
{
    memset(bpe, 0, sizeof *bpe);
    bpe->unk_id = -1;
    for (int b = 0; b < 256; b++) bpe->byte_ids[b] = -1;
}

void tok_bpe_free(tok_bpe *bpe)
{
    tok_strmap_free(&bpe->vocab);
    tok_pairmap_free(&bpe->merges);
    tok_pairmap_free(&bpe->joinable);
    free(bpe->char_ids);
    free(bpe->prefix);
    free(bpe->suffix);
    tok_bpe_init(bpe);
}

static kne_status oom(void) { return kne_fail(KNE_ERR_OUT_OF_MEMORY, "tokenizer: out of memory"); }

static void find_byte_tokens(tok_bpe *bpe)
{
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        bpe->byte_ids[b] = tok_strmap_get(&bpe->vocab, name, 6);
    }
}

kne_status tok_bpe_add_merge(tok_bpe *bpe, const char *a, size_t na, const char *b, size_t nb, uint32_t rank)
{
    int32_t ia = tok_strmap_get(&bpe->vocab, a, na);
    int32_t ib = tok_strmap_get(&bpe->vocab, b, nb);
    if (ia < 0 || ib < 0)
        return kne_fail(KNE_ERR_FORMAT, "merge %u names a token not in the vocabulary: '%.*s'", rank,
                        (int)(ia < 0 ? na : nb), ia < 0 ? a : b);
    if (nb < bpe->prefix_len)
        return kne_fail(KNE_ERR_FORMAT, "merge %u: '%.*s' is shorter than the continuing-subword prefix",
                        rank, (int)nb, b);
    /* the merged token drops the right part's continuing-subword prefix */
    size_t nm = na + nb - bpe->prefix_len;
    char small[256];
    char *m = nm <= sizeof small ? small : malloc(nm);
    if (!m) return oom();
    memcpy(m, a, na);
    memcpy(m + na, b + bpe->prefix_len, nb - bpe->prefix_len);
    int32_t im = tok_strmap_get(&bpe->vocab, m, nm);
    kne_status s = KNE_OK;
    if (im < 0) s = kne_fail(KNE_ERR_FORMAT, "merge %u: merged token '%.*s' is not in the vocabulary", rank, (int)nm, m);
    else tok_pairmap_put(&bpe->merges, ia, ib, rank, im);
    if (m != small) free(m);
    return s;
}

static kne_status read_options(tok_bpe *bpe, const json_object *model)
{
    json_object *dropout = kne_json_get(model, "dropout");
    if (dropout && json_object_get_double(dropout) != 0.0)
        return kne_fail(KNE_ERR_UNSUPPORTED, "tokenizer.json: BPE dropout is not supported");
    int v;
    if (kne_json_bool(model, "fuse_unk", &v)) bpe->fuse_unk = v;
    if (kne_json_bool(model, "byte_fallback", &v)) bpe->byte_fallback = v;
    if (kne_json_bool(model, "ignore_merges", &v)) bpe->ignore_merges = v;
    const char *p = kne_json_str(model, "continuing_subword_prefix");
    if (p && *p && !(bpe->prefix = strdup(p))) return oom();
    bpe->prefix_len = p ? strlen(p) : 0;
    const char *sfx = kne_json_str(model, "end_of_word_suffix");
    if (sfx && *sfx && !(bpe->suffix = strdup(sfx))) return oom();
    bpe->suffix_len = sfx ? strlen(sfx) : 0;
    return KNE_OK;
}

static kne_status read_vocab_object(tok_bpe *bpe, json_object *vocab, const char *what)
{
    if (!vocab || !json_object_is_type(vocab, json_type_object))
        return kne_fail(KNE_ERR_FORMAT, "%s: 'vocab' must be an object of token -> id", what);
    if (tok_strmap_init(&bpe->vocab, (size_t)json_object_object_length(vocab))) return oom();
    json_object_object_foreach(vocab, key, val) {
        if (!json_object_is_type(val, json_type_int) || json_object_get_int64(val) < 0 ||
            json_object_get_int64(val) > INT32_MAX - 1)
            return kne_fail(KNE_ERR_FORMAT, "%s: vocab entry '%s' has no valid id", what, key);
        if (tok_strmap_put(&bpe->vocab, key, strlen(key), (int32_t)json_object_get_int64(val))) return oom();
    }
    return KNE_OK;
}

static kne_status read_merges(tok_bpe *bpe, json_object *merges)
{
    size_t n = merges ? json_object_array_length(merges) : 0;
    if (tok_pairmap_init(&bpe->merges, n)) return oom();
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(merges, i);
        const char *a, *b;
        size_t na, nb;
        if (json_object_is_type(m, json_type_string)) {
            /* legacy spelling "a b": exactly one space */
            a = json_object_get_string(m);
            const char *sp = strchr(a, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: merge %zu ('%s') is not two tokens split by one space", i, a);
            na = (size_t)(sp - a);
            b = sp + 1;
            nb = strlen(b);
        } else if (json_object_is_type(m, json_type_array) && json_object_array_length(m) == 2 &&
                   json_object_is_type(json_object_array_get_idx(m, 0), json_type_string) &&
                   json_object_is_type(json_object_array_get_idx(m, 1), json_type_string)) {
            a = json_object_get_string(json_object_array_get_idx(m, 0));
            b = json_object_get_string(json_object_array_get_idx(m, 1));
            na = (size_t)json_object_get_string_len(json_object_array_get_idx(m, 0));
            nb = (size_t)json_object_get_string_len(json_object_array_get_idx(m, 1));
        } else {
            return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", i);
        }
        kne_status s = tok_bpe_add_merge(bpe, a, na, b, nb, (uint32_t)i);
        if (s != KNE_OK) { kne_error_prefix("tokenizer.json"); return s; }
    }
    return KNE_OK;
}

kne_status tok_bpe_from_json(tok_bpe *bpe, const json_object *model)
{
    KNE_TRY(read_options(bpe, model));
    KNE_TRY(read_vocab_object(bpe, kne_json_get(model, "vocab"), "tokenizer.json"));
    json_object *merges = kne_json_get(model, "merges");
    if (merges && !json_object_is_type(merges, json_type_array))
        return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: model 'merges' must be a list");
    KNE_TRY(read_merges(bpe, merges));
    const char *unk = kne_json_str(model, "unk_token");
    if (unk) {
        bpe->unk_id = tok_strmap_get(&bpe->vocab, unk, strlen(unk));
        if (bpe->unk_id < 0)
            return kne_fail(KNE_ERR_FORMAT, "tokenizer.json: unk_token '%s' is not in the vocabulary", unk);
    }
    find_byte_tokens(bpe);
    return tok_bpe_finish_load(bpe);
}

/* GPT-2's original files: vocab.json (token -> id) and merges.txt ("#version" line,
   then "a b" per line). */
kne_status tok_bpe_from_files(tok_bpe *bpe, const char *vocab_path, const char *merges_path)
{
    json_object *vocab = NULL;
    KNE_TRY(kne_json_read_file(&vocab, vocab_path));
    kne_status s = read_vocab_object(bpe, vocab, vocab_path);
    json_object_put(vocab);
    if (s != KNE_OK) return s;

    FILE *f = fopen(merges_path, "rb");
    if (!f) return kne_fail(errno == ENOENT ? KNE_ERR_NOT_FOUND : KNE_ERR_IO, "%s: %s", merges_path, strerror(errno));
    /* count lines first so the pair map is sized once */
    size_t lines = 0;
    for (int c; (c = fgetc(f)) != EOF;) lines += c == '\n';
    rewind(f);
    if (tok_pairmap_init(&bpe->merges, lines + 1)) { fclose(f); return oom(); }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    uint32_t rank = 0;
    size_t lineno = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0 || strncmp(line, "#version", 8) == 0) continue;
        char *sp = strchr(line, ' ');
        if (!sp || strchr(sp + 1, ' ')) {
            s = kne_fail(KNE_ERR_FORMAT, "%s:%zu: expected two tokens split by one space", merges_path, lineno);
            break;
        }
        s = tok_bpe_add_merge(bpe, line, (size_t)(sp - line), sp + 1, strlen(sp + 1), rank++);
        if (s != KNE_OK) { kne_error_prefix(merges_path); break; }
    }
    free(line);
    if (s == KNE_OK && ferror(f)) s = kne_fail(KNE_ERR_IO, "%s: read error", merges_path);
    fclose(f);
    if (s == KNE_OK) {
        find_byte_tokens(bpe);
        s = tok_bpe_finish_load(bpe);
    }
    return s;
}


/* ------------------------------------------------------- word splitting */

/* Whether token id can be an initial symbol of a word: one character (with the
   subword prefix or suffix), a <0xXX> byte token or <unk>. */
static int can_be_initial(const tok_bpe *bpe, const char *s, size_t n, int32_t id)
{
    if (id == bpe->unk_id) return 1;
    for (int b = 0; b < 256; b++) if (bpe->byte_ids[b] == id) return 1;
    if (bpe->prefix_len && n > bpe->prefix_len && memcmp(s, bpe->prefix, bpe->prefix_len) == 0) {
        s += bpe->prefix_len;
        n -= bpe->prefix_len;
    }
    if (bpe->suffix_len && n > bpe->suffix_len && memcmp(s + n - bpe->suffix_len, bpe->suffix, bpe->suffix_len) == 0)
        n -= bpe->suffix_len;
    uint32_t cp;
    return n > 0 && tok_utf8_next(s, n, &cp) == n;
}

/* BPE on a long word costs O(n log n) in one big heap; Llama (no pre-tokenizer)
   makes a whole text one word. A word can be cut exactly between initial symbols
   x, y when no merge can ever join something ending in x to something starting
   with y. first[t]/last[t] are the first/last initial symbols of token t; they are
   unique when no initial-able token is also made by a merge and all merges that make
   a token agree. Then a merge (A, B) can join across (x, y) only if
   x = last[A] and y = first[B], the pairs stored in joinable. If a premise fails,
   words are never cut (split_words = 0), which is always exact. */
kne_status tok_bpe_finish_load(tok_bpe *bpe)
{
    const tok_strmap *v = &bpe->vocab;
    const tok_pairmap *m = &bpe->merges;
    int32_t n_ids = 0;
    for (size_t i = 0; i < v->n; i++) if (v->entries[i].id >= n_ids) n_ids = v->entries[i].id + 1;
    int32_t *first = malloc((size_t)(n_ids ? n_ids : 1) * sizeof *first);
    int32_t *last = malloc((size_t)(n_ids ? n_ids : 1) * sizeof *last);
    char *made = calloc((size_t)(n_ids ? n_ids : 1), 1);
    kne_status st = KNE_OK;
    int ok = 1;
    if (!first || !last || !made) { st = oom(); goto done; }
    for (int32_t i = 0; i < n_ids; i++) first[i] = last[i] = -1;
    for (size_t i = 0; i <= m->mask; i++)
        if (m->slots[i].key != UINT64_MAX) made[(int32_t)(uint32_t)m->slots[i].val] = 1;
    for (size_t i = 0; i < v->n && ok; i++) {
        int32_t id = v->entries[i].id;
        if (!made[id]) { first[id] = last[id] = id; continue; }
        if (can_be_initial(bpe, v->arena.p + v->entries[i].off, v->entries[i].len, id)) ok = 0;
    }
    /* propagate through merges until nothing changes (depth of the longest token) */
    for (int changed = 1; changed && ok;) {
        changed = 0;
        for (size_t i = 0; i <= m->mask && ok; i++) {
            if (m->slots[i].key == UINT64_MAX) continue;
            int32_t a = (int32_t)(m->slots[i].key >> 32), b = (int32_t)(uint32_t)m->slots[i].key;
            int32_t c = (int32_t)(uint32_t)m->slots[i].val;
            if (first[a] < 0 || last[b] < 0) continue;
            if (first[c] < 0) { first[c] = first[a]; last[c] = last[b]; changed = 1; }
            else if (first[c] != first[a] || last[c] != last[b]) ok = 0;
        }
    }
    if (ok && tok_pairmap_init(&bpe->joinable, m->n)) { st = oom(); goto done; }
    for (size_t i = 0; i <= m->mask && ok; i++) {
        if (m->slots[i].key == UINT64_MAX) continue;
        int32_t a = (int32_t)(m->slots[i].key >> 32), b = (int32_t)(uint32_t)m->slots[i].key;
        if (last[a] < 0 || first[b] < 0) ok = 0; /* a merge of tokens no word can build */
        else tok_pairmap_put(&bpe->joinable, last[a], first[b], 0, 0);
    }
    bpe->split_words = ok;
    /* one-character lookups by table (the common case: no prefix or suffix) */
    if (!bpe->prefix_len && !bpe->suffix_len) {
        if (!(bpe->char_ids = malloc(0x10000 * sizeof *bpe->char_ids))) { st = oom(); goto done; }
        for (uint32_t cp = 0; cp < 0x10000; cp++) bpe->char_ids[cp] = -1;
        for (size_t i = 0; i < v->n; i++) {
            const char *t = v->arena.p + v->entries[i].off;
            size_t n = v->entries[i].len;
            uint32_t cp;
            if (n > 0 && n <= 3 && tok_utf8_next(t, n, &cp) == n && cp < 0x10000) bpe->char_ids[cp] = v->entries[i].id;
        }
    }
done:
    free(first);
    free(last);
    free(made);
    return st;
}

/* ------------------------------------------------------------------ encode */

static int heap_less(const tok_merge *a, const tok_merge *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static int heap_push(tok_ctx *ctx, size_t *n, tok_merge m)
{
    if (*n == ctx->heap_cap) {
        size_t cap = ctx->heap_cap ? ctx->heap_cap * 2 : 64;
        tok_merge *h = realloc(ctx->heap, cap * sizeof *h);
        if (!h) return -1;
        ctx->heap = h;
        ctx->heap_cap = cap;
    }
    tok_merge *h = ctx->heap;
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(&m, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = m;
    return 0;
}

static tok_merge heap_pop(tok_merge *h, size_t *n)
{
    tok_merge top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(&h[c + 1], &h[c])) c++;
        if (!heap_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

static int sym_push(tok_ctx *ctx, size_t *n, int32_t id, uint32_t len)
{
    if (*n == ctx->syms_cap) {
        size_t cap = ctx->syms_cap ? ctx->syms_cap * 2 : 64;
        tok_sym *v = realloc(ctx->syms, cap * sizeof *v);
        if (!v) return -1;
        ctx->syms = v;
        ctx->syms_cap = cap;
    }
    size_t i = (*n)++;
    ctx->syms[i] = (tok_sym){ id, (int32_t)i - 1, -1, len };
    if (i > 0) ctx->syms[i - 1].next = (int32_t)i;
    return 0;
}

/* Looks up one character of the word, with the subword prefix/suffix HF adds. */
static int32_t lookup_char(tok_ctx *ctx, const tok_bpe *bpe, const char *c, size_t n, uint32_t cp,
                           int first, int last, const char **key, size_t *key_len)
{
    int pre = !first && bpe->prefix_len, suf = last && bpe->suffix_len;
    *key = c;
    *key_len = n;
    if (bpe->char_ids && cp < 0x10000) return bpe->char_ids[cp];
    if (!pre && !suf) return tok_strmap_get(&bpe->vocab, c, n);
    tok_buf *b = &ctx->scratch;
    b->n = 0;
    if ((pre && tok_buf_append(b, bpe->prefix, bpe->prefix_len)) || tok_buf_append(b, c, n) ||
        (suf && tok_buf_append(b, bpe->suffix, bpe->suffix_len)))
        return -2;
    *key = b->p;
    *key_len = b->n;
    return tok_strmap_get(&bpe->vocab, b->p, b->n);
}

/* The initial symbols: one per character, byte tokens or <unk> where the vocabulary
   lacks the character (HF BPE::merge_word). */
static kne_status initial_symbols(tok_ctx *ctx, const tok_bpe *bpe, const char *w, size_t n, size_t *n_syms)
{
    int32_t unk_id = -1;
    uint32_t unk_len = 0;
    int have_unk = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = tok_utf8_next(w + i, n - i, &cp);
        const char *key;
        size_t key_len;
        int32_t id = lookup_char(ctx, bpe, w + i, len, cp, i == 0, i + len == n, &key, &key_len);
        if (id == -2) return oom();
        if (id >= 0) {
            if (have_unk) {
                if (sym_push(ctx, n_syms, unk_id, unk_len)) return oom();
                have_unk = 0;
            }
            if (sym_push(ctx, n_syms, id, (uint32_t)len)) return oom();
        } else {
            int done = 0;
            if (bpe->byte_fallback) {
                /* only when every byte of the looked-up string has its <0xXX> token */
                done = 1;
                for (size_t k = 0; k < key_len; k++)
                    if (bpe->byte_ids[(unsigned char)key[k]] < 0) done = 0;
                for (size_t k = 0; done && k < key_len; k++)
                    if (sym_push(ctx, n_syms, bpe->byte_ids[(unsigned char)key[k]], 1)) return oom();
            }
            if (!done && bpe->unk_id >= 0) {
                if (have_unk && bpe->fuse_unk) {
                    unk_len += (uint32_t)len;
                } else {
                    if (have_unk && sym_push(ctx, n_syms, unk_id, unk_len)) return oom();
                    unk_id = bpe->unk_id;
                    unk_len = (uint32_t)len;
                    have_unk = 1;
                }
            }
            /* neither byte tokens nor <unk>: HF drops the character */
        }
        i += len;
    }
    if (have_unk && sym_push(ctx, n_syms, unk_id, unk_len)) return oom();
    return KNE_OK;
}

/* Short words: the same order found by scanning. HF's heap applies, at each step,
   the valid pair with the lowest (rank, position) (a stale entry never passes its
   validity check with a wrong rank: a pair at a position that still yields the same
   token is the same pair), so picking that pair directly is the same algorithm. */
#ifndef SCAN_MAX
#define SCAN_MAX 48 /* overridable to test the heap path alone */
#endif
static void merge_scan(tok_sym *s, const tok_bpe *bpe, size_t begin, size_t end)
{
    int32_t ids[SCAN_MAX], made[SCAN_MAX];
    uint32_t ranks[SCAN_MAX];
    size_t n = end - begin;
    for (size_t i = 0; i < n; i++) ids[i] = s[begin + i].id;
    for (size_t i = 0; i + 1 < n; i++)
        if (!tok_pairmap_get(&bpe->merges, ids[i], ids[i + 1], &ranks[i], &made[i])) ranks[i] = UINT32_MAX;
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (ranks[i] < ranks[best]) best = i;
        if (ranks[best] == UINT32_MAX) break;
        ids[best] = made[best];
        n--;
        for (size_t i = best + 1; i < n; i++) {
            ids[i] = ids[i + 1];
            ranks[i] = ranks[i + 1];
            made[i] = made[i + 1];
        }
        if (best > 0 && !tok_pairmap_get(&bpe->merges, ids[best - 1], ids[best], &ranks[best - 1], &made[best - 1]))
            ranks[best - 1] = UINT32_MAX;
        if (best + 1 < n && !tok_pairmap_get(&bpe->merges, ids[best], ids[best + 1], &ranks[best], &made[best]))
            ranks[best] = UINT32_MAX;
    }
    for (size_t i = 0; i < end - begin; i++) {
        s[begin + i].id = i < n ? ids[i] : -1;
        s[begin + i].len = i < n;
    }
}

/* HF Word::merge_all on symbols [begin, end): lowest (rank, position) merge first;
   stale heap entries are skipped. */
static kne_status merge_range(tok_ctx *ctx, const tok_bpe *bpe, size_t begin, size_t end)
{
    tok_sym *s = ctx->syms;
    if (end - begin <= SCAN_MAX) {
        merge_scan(s, bpe, begin, end);
        return KNE_OK;
    }
    size_t n_heap = 0;
    uint32_t rank;
    int32_t new_id;
    for (size_t i = begin; i + 1 < end; i++)
        if (tok_pairmap_get(&bpe->merges, s[i].id, s[i + 1].id, &rank, &new_id) &&
            heap_push(ctx, &n_heap, (tok_merge){ rank, (uint32_t)i, new_id }))
            return oom();
    while (n_heap) {
        tok_merge top = heap_pop(ctx->heap, &n_heap);
        tok_sym *cur = &s[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        int32_t right_pos = cur->next;
        tok_sym right = s[right_pos];
        if (!tok_pairmap_get(&bpe->merges, cur->id, right.id, &rank, &new_id) || new_id != top.new_id) continue;
        cur->id = top.new_id;
        cur->len += right.len;
        cur->next = right.next;
        s[right_pos].len = 0;
        if (right.next >= 0) s[right.next].prev = (int32_t)top.pos;
        if (cur->prev >= 0 && tok_pairmap_get(&bpe->merges, s[cur->prev].id, cur->id, &rank, &new_id) &&
            heap_push(ctx, &n_heap, (tok_merge){ rank, (uint32_t)cur->prev, new_id }))
            return oom();
        if (cur->next >= 0 && tok_pairmap_get(&bpe->merges, cur->id, s[cur->next].id, &rank, &new_id) &&
            heap_push(ctx, &n_heap, (tok_merge){ rank, top.pos, new_id }))
            return oom();
    }
    return KNE_OK;
}

kne_status tok_bpe_encode(tok_ctx *ctx, const char *w, size_t n, tok_ids *out)
{
    const tok_bpe *bpe = &ctx->tok->bpe;
    if (n == 0) return KNE_OK;
    if (bpe->ignore_merges) {
        int32_t id = tok_strmap_get(&bpe->vocab, w, n);
        if (id >= 0) return tok_ids_push(out, id) ? oom() : KNE_OK;
    }
    size_t n_syms = 0;
    KNE_TRY(initial_symbols(ctx, bpe, w, n, &n_syms));
    tok_sym *s = ctx->syms;
    size_t begin = 0;
    uint32_t rank;
    int32_t unused;
    for (size_t i = 0; i + 1 < n_syms; i++) {
        /* cut where no merge can ever join across: the pieces merge independently */
        if (!bpe->split_words || tok_pairmap_get(&bpe->joinable, s[i].id, s[i + 1].id, &rank, &unused)) continue;
        s[i].next = -1;
        s[i + 1].prev = -1;
        KNE_TRY(merge_range(ctx, bpe, begin, i + 1));
        begin = i + 1;
    }
    KNE_TRY(merge_range(ctx, bpe, begin, n_syms));
    for (size_t i = 0; i < n_syms; i++)
        if (s[i].len && tok_ids_push(out, s[i].id)) return oom();
    return KNE_OK;
}
