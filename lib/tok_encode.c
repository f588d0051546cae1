/* Encoding: the HF pipeline order. Added tokens (raw) are split out first, each
   remaining segment is normalized, normalized added tokens are split out, then the
   pre-tokenizer makes words and BPE encodes each; the post-processor adds specials. */
#include "tokenizer.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

static kne_status oom(void) { return kne_fail(KNE_ERR_OUT_OF_MEMORY, "tokenizer: out of memory"); }

typedef struct enc_scratch {
    tok_pieces words, pre_out, segs2;
    tok_ids seg2_ids;
    tok_buf norm;
} enc_scratch;

/* Pre-tokenize one normalized, added-token-free segment and run BPE on each word. */
static kne_status encode_words(tok_ctx *ctx, enc_scratch *sc, const char *s, size_t n, int origin, tok_ids *out)
{
    const kne_tokenizer *t = ctx->tok;
    if (n == 0) return KNE_OK;
    if (!t->pretok) return tok_bpe_encode(ctx, s, n, out);
    tok_pieces_clear(&sc->words);
    if (tok_pieces_add(&sc->words, s, n, origin)) return oom();
    KNE_TRY(tok_pretokenize(ctx, t->pretok, &sc->words, &sc->pre_out));
    for (size_t i = 0; i < sc->pre_out.n; i++) {
        const tok_piece *p = &sc->pre_out.v[i];
        KNE_TRY(tok_bpe_encode(ctx, sc->pre_out.text.p + p->start, p->end - p->start, out));
    }
    return KNE_OK;
}

static kne_status encode_segment(tok_ctx *ctx, enc_scratch *sc, const char *s, size_t n, int origin, tok_ids *out)
{
    const kne_tokenizer *t = ctx->tok;
    if (t->normalizer) {
        KNE_TRY(tok_normalize(t->normalizer, s, n, &sc->norm));
        s = sc->norm.p;
        n = sc->norm.n;
    }
    if (t->norm_set.n == 0) return encode_words(ctx, sc, s, n, origin, out);
    tok_pieces_clear(&sc->segs2);
    sc->seg2_ids.n = 0;
    KNE_TRY(tok_added_split(&t->norm_set, s, n, origin, &sc->segs2, &sc->seg2_ids));
    for (size_t i = 0; i < sc->segs2.n; i++) {
        const tok_piece *p = &sc->segs2.v[i];
        if (sc->seg2_ids.v[i] >= 0) {
            if (tok_ids_push(out, sc->seg2_ids.v[i])) return oom();
        } else {
            KNE_TRY(encode_words(ctx, sc, sc->segs2.text.p + p->start, p->end - p->start, p->origin, out));
        }
    }
    return KNE_OK;
}

static kne_status encode_text(tok_ctx *ctx, const char *text, size_t n, tok_ids *out)
{
    const kne_tokenizer *t = ctx->tok;
    enc_scratch sc;
    memset(&sc, 0, sizeof sc);
    tok_pieces segs = { 0 };
    tok_ids seg_ids = { 0 };
    kne_status st = KNE_OK;
    if (t->raw_set.n == 0) {
        st = n ? encode_segment(ctx, &sc, text, n, 1, out) : KNE_OK;
    } else {
        st = tok_added_split(&t->raw_set, text, n, 1, &segs, &seg_ids);
        for (size_t i = 0; i < segs.n && st == KNE_OK; i++) {
            if (seg_ids.v[i] >= 0) {
                if (tok_ids_push(out, seg_ids.v[i])) st = oom();
            } else {
                st = encode_segment(ctx, &sc, segs.text.p + segs.v[i].start, segs.v[i].end - segs.v[i].start,
                                    segs.v[i].origin, out);
            }
        }
    }
    tok_pieces_free(&segs);
    tok_ids_free(&seg_ids);
    tok_pieces_free(&sc.words);
    tok_pieces_free(&sc.pre_out);
    tok_pieces_free(&sc.segs2);
    tok_ids_free(&sc.seg2_ids);
    tok_buf_free(&sc.norm);
    return st;
}

static kne_status post_process(const kne_tokenizer *t, tok_ids *ids)
{
    for (size_t k = 0; k < t->n_post; k++) {
        const tok_template *tpl = &t->post[k];
        tok_ids next = { 0 };
        for (size_t i = 0; i < tpl->n; i++) {
            int r = tpl->items[i] == TOK_SEQ_A ? tok_ids_append(&next, ids->v, ids->n)
                                               : tok_ids_push(&next, tpl->items[i]);
            if (r) { tok_ids_free(&next); return oom(); }
        }
        tok_ids_free(ids);
        *ids = next;
    }
    return KNE_OK;
}

KNE_API kne_status kne_tokenizer_encode(const kne_tokenizer *tok, const char *text, int add_special,
                                        int32_t *ids, size_t cap, size_t *n_out)
{
    kne_clear_error();
    if (!tok || !text || !n_out || (cap && !ids))
        return kne_fail(KNE_ERR_INVALID_ARG, "kne_tokenizer_encode: NULL argument");
    size_t n = strlen(text), bad = 0;
    if (!tok_utf8_valid(text, n, &bad))
        return kne_fail(KNE_ERR_ENCODING, "kne_tokenizer_encode: text is not valid UTF-8 (byte %zu)", bad);
    tok_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.tok = tok;
    ctx.md = pcre2_match_data_create(1, NULL);
    if (!ctx.md) return oom();
    tok_ids out = { 0 };
    kne_status st = encode_text(&ctx, text, n, &out);
    if (st == KNE_OK && add_special) st = post_process(tok, &out);
    if (st == KNE_OK) {
        *n_out = out.n;
        if (out.n > cap)
            st = kne_fail(KNE_ERR_BUFFER_TOO_SMALL, "kne_tokenizer_encode: %zu ids needed, buffer holds %zu", out.n, cap);
        else if (out.n)
            memcpy(ids, out.v, out.n * sizeof *ids);
    }
    tok_ids_free(&out);
    pcre2_match_data_free(ctx.md);
    free(ctx.spans);
    free(ctx.syms);
    free(ctx.heap);
    tok_buf_free(&ctx.scratch);
    return st;
}
