/* Hash maps of the BPE model: token string -> id and (id, id) -> merge. */
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x94D049BB133111EBull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return (uint32_t)h;
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n) c *= 2;
    return c;
}

int tok_strmap_init(tok_strmap *m, size_t expected)
{
    memset(m, 0, sizeof *m);
    size_t slots = pow2_at_least(expected * 2 + 1);
    m->slots = calloc(slots, sizeof *m->slots);
    m->entries_cap = expected ? expected : 16;
    m->entries = malloc(m->entries_cap * sizeof *m->entries);
    if (!m->slots || !m->entries) { tok_strmap_free(m); return -1; }
    m->mask = slots - 1;
    return 0;
}

static int strmap_grow(tok_strmap *m)
{
    size_t slots = (m->mask + 1) * 2;
    uint32_t *s = calloc(slots, sizeof *s);
    if (!s) return -1;
    for (size_t e = 0; e < m->n; e++) {
        size_t i = m->entries[e].hash & (slots - 1);
        while (s[i]) i = (i + 1) & (slots - 1);
        s[i] = (uint32_t)e + 1;
    }
    free(m->slots);
    m->slots = s;
    m->mask = slots - 1;
    return 0;
}

int tok_strmap_put(tok_strmap *m, const char *s, size_t n, int32_t id)
{
    uint32_t h = hash_bytes(s, n);
    size_t i = h & m->mask;
    while (m->slots[i]) {
        tok_strmap_entry *e = &m->entries[m->slots[i] - 1];
        if (e->hash == h && e->len == n && memcmp(m->arena.p + e->off, s, n) == 0) {
            e->id = id;
            return 0;
        }
        i = (i + 1) & m->mask;
    }
    if (m->n == m->entries_cap) {
        size_t cap = m->entries_cap * 2;
        tok_strmap_entry *v = realloc(m->entries, cap * sizeof *v);
        if (!v) return -1;
        m->entries = v;
        m->entries_cap = cap;
    }
    size_t off = m->arena.n;
    /* NUL after each key so token strings can be printed in messages */
    if (tok_buf_append(&m->arena, s, n) || tok_buf_append(&m->arena, "", 1)) return -1;
    m->entries[m->n] = (tok_strmap_entry){ (uint32_t)off, (uint32_t)n, h, id };
    m->slots[i] = (uint32_t)++m->n;
    if (m->n * 2 > m->mask + 1) return strmap_grow(m);
    return 0;
}

int32_t tok_strmap_get(const tok_strmap *m, const char *s, size_t n)
{
    if (!m->slots) return -1;
    uint32_t h = hash_bytes(s, n);
    size_t i = h & m->mask;
    while (m->slots[i]) {
        const tok_strmap_entry *e = &m->entries[m->slots[i] - 1];
        if (e->hash == h && e->len == n && memcmp(m->arena.p + e->off, s, n) == 0) return e->id;
        i = (i + 1) & m->mask;
    }
    return -1;
}

void tok_strmap_free(tok_strmap *m)
{
    tok_buf_free(&m->arena);
    free(m->entries);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

#define PAIR_EMPTY UINT64_MAX

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static size_t pair_slot(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xFF51AFD7ED558CCDull;
    k ^= k >> 33;
    return (size_t)k;
}

int tok_pairmap_init(tok_pairmap *m, size_t expected)
{
    size_t slots = pow2_at_least(expected * 2 + 1);
    m->slots = malloc(slots * sizeof *m->slots);
    m->n = 0;
    if (!m->slots) return -1;
    for (size_t i = 0; i < slots; i++) m->slots[i].key = PAIR_EMPTY;
    m->mask = slots - 1;
    return 0;
}

/* The map is sized for all merges up front (tok_pairmap_init), so put never grows;
   a later duplicate overwrites, as HF's HashMap collect does. */
void tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id)
{
    uint64_t k = pair_key(a, b);
    size_t i = pair_slot(k) & m->mask;
    while (m->slots[i].key != PAIR_EMPTY && m->slots[i].key != k) i = (i + 1) & m->mask;
    if (m->slots[i].key == PAIR_EMPTY) m->n++;
    m->slots[i].key = k;
    m->slots[i].val = ((uint64_t)rank << 32) | (uint32_t)new_id;
}

int tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *new_id)
{
    if (!m->slots) return 0;
    uint64_t k = pair_key(a, b);
    size_t i = pair_slot(k) & m->mask;
    while (m->slots[i].key != PAIR_EMPTY) {
        if (m->slots[i].key == k) {
            *rank = (uint32_t)(m->slots[i].val >> 32);
            *new_id = (int32_t)(uint32_t)m->slots[i].val;
            return 1;
        }
        i = (i + 1) & m->mask;
    }
    return 0;
}

void tok_pairmap_free(tok_pairmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}
