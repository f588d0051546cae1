/* Added tokens: found in the text before the model runs, leftmost-longest as HF's
   Aho-Corasick trie, with single_word / lstrip / rstrip (AddedVocabulary::find_matches). */
#include "tokenizer.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

static int cmp_added(const void *pa, const void *pb)
{
    const tok_added *a = *(const tok_added *const *)pa, *b = *(const tok_added *const *)pb;
    unsigned char fa = (unsigned char)a->match[0], fb = (unsigned char)b->match[0];
    if (fa != fb) return fa < fb ? -1 : 1;
    if (a->match_len != b->match_len) return a->match_len > b->match_len ? -1 : 1; /* longest first */
    return a < b ? -1 : a > b; /* earlier token first: stable */
}

int tok_added_set_build(tok_added_set *set, const tok_added *tokens, size_t n, int normalized)
{
    memset(set, 0, sizeof *set);
    set->tokens = malloc((n ? n : 1) * sizeof *set->tokens);
    if (!set->tokens) return -1;
    for (size_t i = 0; i < n; i++)
        if (tokens[i].match_len && !tokens[i].normalized == !normalized) set->tokens[set->n++] = &tokens[i];
    qsort(set->tokens, set->n, sizeof *set->tokens, cmp_added);
    size_t k = 0;
    for (int b = 0; b <= 256; b++) {
        while (k < set->n && (unsigned char)set->tokens[k]->match[0] < b) k++;
        set->first[b] = (uint32_t)k;
    }
    set->first[256] = (uint32_t)set->n;
    return 0;
}

void tok_added_set_free(tok_added_set *set)
{
    free(set->tokens);
    memset(set, 0, sizeof *set);
}

/* Longest token matching at s[i]; NULL if none. */
static const tok_added *match_at(const tok_added_set *set, const char *s, size_t n, size_t i)
{
    unsigned char c = (unsigned char)s[i];
    for (uint32_t k = set->first[c]; k < set->first[c + 1]; k++) {
        const tok_added *t = set->tokens[k];
        if (t->match_len <= n - i && memcmp(s + i, t->match, t->match_len) == 0) return t;
    }
    return NULL;
}

static int ends_with_word(const char *s, size_t n)
{
    if (n == 0) return 0;
    size_t len = tok_utf8_prev_len(s, n);
    uint32_t cp;
    tok_utf8_next(s + n - len, len, &cp);
    return tok_is_word_char(cp);
}

static int starts_with_word(const char *s, size_t n)
{
    if (n == 0) return 0;
    uint32_t cp;
    tok_utf8_next(s, n, &cp);
    return tok_is_word_char(cp);
}

static size_t space_start_of_end(const char *s, size_t n)
{
    while (n > 0) {
        size_t len = tok_utf8_prev_len(s, n);
        uint32_t cp;
        tok_utf8_next(s + n - len, len, &cp);
        if (!tok_is_whitespace(cp)) break;
        n -= len;
    }
    return n;
}

static size_t space_len_at_start(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t len = tok_utf8_next(s + i, n - i, &cp);
        if (!tok_is_whitespace(cp)) break;
        i += len;
    }
    return i;
}

kne_status tok_added_split(const tok_added_set *set, const char *s, size_t n, int origin,
                           tok_pieces *segs, tok_ids *seg_ids)
{
    size_t start_offset = 0, pos = 0;
    while (set->n && pos < n) {
        /* next candidate: the leftmost position where some token matches */
        const tok_added *t = NULL;
        size_t at = pos;
        for (; at < n; at++) {
            if (set->first[(unsigned char)s[at]] == set->first[(unsigned char)s[at] + 1]) continue;
            if ((t = match_at(set, s, n, at))) break;
        }
        if (!t) break;
        size_t start = at, stop = at + t->match_len;
        pos = stop;
        if (t->single_word) {
            int start_space = start == 0 || !ends_with_word(s, start);
            int stop_space = stop == n || !starts_with_word(s + stop, n - stop);
            if (!start_space || !stop_space) continue;
        }
        if (t->lstrip) {
            size_t ns = space_start_of_end(s, start);
            start = ns > start_offset ? ns : start_offset;
        }
        if (t->rstrip) stop += space_len_at_start(s + stop, n - stop);
        if (start < start_offset) start = start_offset;
        if (start_offset < start) {
            if (tok_pieces_add(segs, s + start_offset, start - start_offset, origin && start_offset == 0) ||
                tok_ids_push(seg_ids, -1))
                goto oom;
        }
        if (tok_pieces_add(segs, s + start, stop - start, 0) || tok_ids_push(seg_ids, t->id)) goto oom;
        start_offset = stop;
        if (pos < stop) pos = stop;
    }
    if (start_offset < n) {
        if (tok_pieces_add(segs, s + start_offset, n - start_offset, origin && start_offset == 0) ||
            tok_ids_push(seg_ids, -1))
            goto oom;
    }
    return KNE_OK;
oom:
    return kne_fail(KNE_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
}
