/* Internal tokenizer structures: a Hugging Face tokenizer.json pipeline
   (added tokens -> normalizer -> pre-tokenizer -> BPE -> post-processor, and the
   decoder chain) held read-only after load, so encode/decode are thread-safe. */
#ifndef KNE_TOKENIZER_H
#define KNE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <json-c/json.h>

#include "kne.h"

/* ---------------------------------------------------------------- utilities */

/* Growable byte buffer; functions return 0, or -1 when out of memory. */
typedef struct tok_buf { char *p; size_t n, cap; } tok_buf;
int tok_buf_reserve(tok_buf *b, size_t extra);
int tok_buf_append(tok_buf *b, const char *s, size_t n);
void tok_buf_free(tok_buf *b);

/* Growable id array. */
typedef struct tok_ids { int32_t *v; size_t n, cap; } tok_ids;
int tok_ids_push(tok_ids *a, int32_t id);
int tok_ids_append(tok_ids *a, const int32_t *ids, size_t n);
void tok_ids_free(tok_ids *a);

/* Pieces of text: spans into one buffer. origin marks a piece that starts at byte 0
   of the caller's text (Metaspace's prepend_scheme "first" needs it). */
typedef struct tok_piece { size_t start, end; int origin; } tok_piece;
typedef struct tok_pieces { tok_buf text; tok_piece *v; size_t n, cap; } tok_pieces;
int tok_pieces_push(tok_pieces *p, size_t start, size_t end, int origin);
/* Appends text and a piece spanning it. */
int tok_pieces_add(tok_pieces *p, const char *s, size_t n, int origin);
void tok_pieces_clear(tok_pieces *p);
void tok_pieces_free(tok_pieces *p);

/* UTF-8. */
int tok_utf8_valid(const char *s, size_t n, size_t *bad_at);
/* Decodes one code point of valid UTF-8 at s (n > 0); returns its byte length. */
size_t tok_utf8_next(const char *s, size_t n, uint32_t *cp);
/* Byte length of the code point that ends at s[n-1] (valid UTF-8, n > 0). */
size_t tok_utf8_prev_len(const char *s, size_t n);
size_t tok_utf8_encode(uint32_t cp, char out[4]);
/* Appends s with invalid sequences replaced by U+FFFD, as Rust's from_utf8_lossy. */
int tok_utf8_lossy(tok_buf *out, const char *s, size_t n);
/* Rust char::is_whitespace (the White_Space property). */
int tok_is_whitespace(uint32_t cp);
/* Rust regex \w: letters, marks, decimal digits, connector punctuation. */
int tok_is_word_char(uint32_t cp);

/* String -> id hash map (open addressing). Keys are copied into an arena. */
typedef struct tok_strmap_entry { uint32_t off, len, hash; int32_t id; } tok_strmap_entry;
typedef struct tok_strmap {
    tok_buf arena;
    tok_strmap_entry *entries;
    size_t n, entries_cap;
    uint32_t *slots;   /* entry index + 1; 0 = empty */
    size_t mask;       /* slot count - 1 (power of two) */
} tok_strmap;
int tok_strmap_init(tok_strmap *m, size_t expected);
int tok_strmap_put(tok_strmap *m, const char *s, size_t n, int32_t id); /* overwrites */
int32_t tok_strmap_get(const tok_strmap *m, const char *s, size_t n);   /* -1 if absent */
void tok_strmap_free(tok_strmap *m);

/* (id, id) -> (rank, new id) hash map for BPE merges. */
/* key and value side by side: one cache line per probe */
typedef struct tok_pair_slot { uint64_t key, val; } tok_pair_slot;
typedef struct tok_pairmap { tok_pair_slot *slots; size_t mask, n; } tok_pairmap;
int tok_pairmap_init(tok_pairmap *m, size_t expected);
void tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id);
/* Returns 1 and sets *rank, *new_id when the pair merges. */
int tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *new_id);
void tok_pairmap_free(tok_pairmap *m);

/* A literal string or a PCRE2 regex (compiled with UTF|UCP, JIT when available). */
typedef struct tok_pattern { char *literal; size_t literal_len; pcre2_code *re; } tok_pattern;
kne_status tok_pattern_compile_regex(tok_pattern *p, const char *regex, const char *what);
kne_status tok_pattern_from_json(tok_pattern *p, const json_object *pattern, const char *what);
/* Appends to *spans every non-empty, non-overlapping match of p in s[0..n) as pairs
   (start, end). Returns KNE_OK or an error. */
kne_status tok_pattern_find_all(const tok_pattern *p, const char *s, size_t n,
                                pcre2_match_data *md, size_t **spans, size_t *n_spans, size_t *cap);
void tok_pattern_free(tok_pattern *p);

/* -------------------------------------------------------------- components */

enum { TN_SEQUENCE, TN_PREPEND, TN_APPEND, TN_REPLACE, TN_NFC, TN_NFD, TN_NFKC, TN_NFKD,
       TN_STRIP, TN_LOWERCASE };
typedef struct tok_normalizer {
    int kind;
    struct tok_normalizer *items; size_t n_items;   /* TN_SEQUENCE */
    char *str; size_t str_len;                      /* prepend/append text, replace content */
    tok_pattern pat;                                /* TN_REPLACE */
    int left, right;                                /* TN_STRIP */
} tok_normalizer;

enum { TP_SEQUENCE, TP_BYTELEVEL, TP_SPLIT, TP_METASPACE };
enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };
enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };
typedef struct tok_pretok {
    int kind;
    struct tok_pretok *items; size_t n_items;       /* TP_SEQUENCE */
    tok_pattern pat;                                /* TP_SPLIT; TP_BYTELEVEL's regex when used */
    int use_regex, add_prefix_space;                /* TP_BYTELEVEL */
    int behavior, invert;                           /* TP_SPLIT */
    char repl[4]; size_t repl_len;                  /* TP_METASPACE */
    int prepend_scheme, split;
} tok_pretok;

enum { TD_SEQUENCE, TD_BYTELEVEL, TD_REPLACE, TD_BYTEFALLBACK, TD_FUSE, TD_STRIP, TD_METASPACE };
typedef struct tok_decoder {
    int kind;
    struct tok_decoder *items; size_t n_items;      /* TD_SEQUENCE */
    tok_pattern pat; char *content; size_t content_len; /* TD_REPLACE */
    uint32_t strip_char; int64_t strip_start, strip_stop; /* TD_STRIP */
    uint32_t repl; int prepend_scheme;              /* TD_METASPACE */
} tok_decoder;

/* Post-processor template: ids, with TOK_SEQ_A where the encoded text goes. */
#define TOK_SEQ_A INT32_MIN
typedef struct tok_template { int32_t *items; size_t n; } tok_template;

typedef struct tok_added {
    char *content; size_t len;   /* the token's text, as decode gives it */
    char *match; size_t match_len; /* text searched for: content, normalized when normalized */
    int32_t id;
    int special, lstrip, rstrip, single_word, normalized;
} tok_added;

/* Added tokens of one kind (raw or normalized), bucketed by first byte. */
typedef struct tok_added_set {
    const tok_added **tokens; size_t n;  /* sorted: first byte, then longest first */
    uint32_t first[257];                 /* tokens starting with byte b: [first[b], first[b+1]) */
} tok_added_set;

typedef struct tok_bpe {
    tok_strmap vocab;
    tok_pairmap merges;
    int32_t unk_id;                      /* -1: none */
    int fuse_unk, byte_fallback, ignore_merges;
    char *prefix; size_t prefix_len;     /* continuing_subword_prefix */
    char *suffix; size_t suffix_len;     /* end_of_word_suffix */
    int32_t byte_ids[256];               /* <0xXX> tokens, -1 if absent */
    /* Pairs of initial symbols (x, y) that some merge may join across: a word splits
       exactly between any other neighbours (tok_bpe_finish_load). */
    tok_pairmap joinable;
    int split_words;                     /* 0: the proof's premises failed; never split */
    int32_t *char_ids;                   /* BMP code point -> id of that one-character token
                                            (-1: none); NULL with a subword prefix/suffix */
} tok_bpe;

struct kne_tokenizer {
    tok_bpe bpe;
    tok_added *added; size_t n_added;
    tok_added_set raw_set, norm_set;
    tok_normalizer *normalizer;          /* NULL: none */
    tok_pretok *pretok;                  /* NULL: none */
    tok_decoder *decoder;                /* NULL: tokens joined with " " */
    tok_template *post; size_t n_post;   /* applied in order when add_special */
    const char **id_str; uint32_t *id_len; /* token text by id, NULL where none */
    int32_t n_vocab, bos, eos;
    char bl_enc[256][2]; uint8_t bl_enc_len[256]; /* ByteLevel byte -> char (UTF-8) */
    int16_t bl_dec[324];                 /* ByteLevel code point -> byte, -1 if none */
};

/* Per-call scratch, so a const tokenizer can encode on many threads at once. */
typedef struct tok_ctx {
    const kne_tokenizer *tok;
    pcre2_match_data *md;
    size_t *spans; size_t n_spans, spans_cap;
    struct tok_sym *syms; size_t syms_cap;
    struct tok_merge *heap; size_t heap_cap;
    tok_buf scratch;
} tok_ctx;

/* ------------------------------------------------------------- internal API */

/* tok_load_json.c: components from tokenizer.json. */
kne_status tok_parse_normalizer(tok_normalizer **out, const json_object *j);
kne_status tok_parse_pretok(tok_pretok **out, const json_object *j);
kne_status tok_parse_decoder(tok_decoder **out, const json_object *j);
kne_status tok_parse_post(kne_tokenizer *t, const json_object *j);
void tok_normalizer_free(tok_normalizer *n);
void tok_pretok_free(tok_pretok *p);
void tok_decoder_free(tok_decoder *d);

/* tok_bpe.c */
kne_status tok_bpe_from_json(tok_bpe *bpe, const json_object *model);
kne_status tok_bpe_from_files(tok_bpe *bpe, const char *vocab_path, const char *merges_path);
kne_status tok_bpe_add_merge(tok_bpe *bpe, const char *a, size_t na, const char *b, size_t nb,
                             uint32_t rank);
void tok_bpe_init(tok_bpe *bpe);
/* Call once vocab, merges, unk and byte tokens are known. */
kne_status tok_bpe_finish_load(tok_bpe *bpe);
void tok_bpe_free(tok_bpe *bpe);
kne_status tok_bpe_encode(tok_ctx *ctx, const char *word, size_t n, tok_ids *out);

/* tok_normalize.c */
kne_status tok_normalize(const tok_normalizer *nz, const char *s, size_t n, tok_buf *out);

/* tok_pretokenize.c: rewrites in into out (both owned by the caller). */
kne_status tok_pretokenize(tok_ctx *ctx, const tok_pretok *pt, const tok_pieces *in, tok_pieces *out);
void tok_bytelevel_tables(kne_tokenizer *t);

/* tok_added.c */
int tok_added_set_build(tok_added_set *set, const tok_added *tokens, size_t n, int normalized);
void tok_added_set_free(tok_added_set *set);
/* Splits s into (piece, -1) and (added token, id) segments, as HF find_matches. */
kne_status tok_added_split(const tok_added_set *set, const char *s, size_t n, int origin,
                           tok_pieces *segs, tok_ids *seg_ids);

/* tok_decode.c */
kne_status tok_decode_chain(const kne_tokenizer *t, const tok_decoder *d, tok_pieces *toks,
                            tok_pieces *tmp);

#endif
