/* Pre-tokenizers: split each piece of normalized text into words for the model
   (ByteLevel, Split, Metaspace, Sequence), as Hugging Face's pre_tokenizers. */
#include "tokenizer.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

static kne_status oom(void) { return kne_fail(KNE_ERR_OUT_OF_MEMORY, "tokenizer: out of memory"); }

/* GPT-2's byte -> printable character table: printable Latin-1 bytes map to
   themselves, the others to U+0100 upwards in byte order. */
void tok_bytelevel_tables(kne_tokenizer *t)
{
    for (int i = 0; i < 324; i++) t->bl_dec[i] = -1;
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        uint32_t cp = printable ? (uint32_t)b : next++;
        char enc[4];
        t->bl_enc_len[b] = (uint8_t)tok_utf8_encode(cp, enc);
        memcpy(t->bl_enc[b], enc, t->bl_enc_len[b]);
        t->bl_dec[cp] = (int16_t)b;
    }
}

/* A split of one piece: [start, end) of the piece's text and whether it matched. */
typedef struct seg { size_t start, end; int match; } seg;
typedef struct segs { seg *v; size_t n, cap; } segs;

static int segs_push(segs *s, size_t a, size_t b, int match)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        seg *v = realloc(s->v, cap * sizeof *v);
        if (!v) return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (seg){ a, b, match };
    return 0;
}

/* Matches and the gaps between them cover the text (HF Pattern::find_matches). */
static int segs_from_spans(segs *out, const size_t *spans, size_t n_spans, size_t len, int invert)
{
    out->n = 0;
    size_t prev = 0;
    for (size_t i = 0; i < n_spans; i += 2) {
        if (spans[i] > prev && segs_push(out, prev, spans[i], invert)) return -1;
        if (segs_push(out, spans[i], spans[i + 1], !invert)) return -1;
        prev = spans[i + 1];
    }
    if (prev < len && segs_push(out, prev, len, invert)) return -1;
    return 0;
}

/* Applies a SplitDelimiterBehavior in place (HF NormalizedString::split). */
static void apply_behavior(segs *s, int behavior)
{
    size_t w = 0;
    int prev_match = 0;
    switch (behavior) {
    case SPLIT_ISOLATED:
        return;
    case SPLIT_REMOVED:
        for (size_t i = 0; i < s->n; i++)
            if (!s->v[i].match) s->v[w++] = s->v[i];
        break;
    case SPLIT_MERGED_PREV:
        for (size_t i = 0; i < s->n; i++) {
            seg g = s->v[i];
            if (g.match && !prev_match && w > 0) s->v[w - 1].end = g.end;
            else s->v[w++] = g;
            prev_match = g.match;
        }
        break;
    case SPLIT_MERGED_NEXT: {
        /* walk backwards, then the kept entries are already in order at the tail */
        size_t r = s->n;
        for (size_t i = s->n; i-- > 0;) {
            seg g = s->v[i];
            if (g.match && !prev_match && r < s->n) s->v[r].start = g.start;
            else s->v[--r] = g;
            prev_match = g.match;
        }
        memmove(s->v, s->v + r, (s->n - r) * sizeof *s->v);
        w = s->n - r;
        break;
    }
    case SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < s->n; i++) {
            seg g = s->v[i];
            if (w > 0 && g.match == prev_match) s->v[w - 1].end = g.end;
            else s->v[w++] = g;
            prev_match = g.match;
        }
        break;
    }
    s->n = w;
}

static kne_status emit_copy(tok_pieces *out, const char *text, const segs *s, int origin)
{
    int first = 1;
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].end == s->v[i].start) continue; /* HF drops empty splits */
        if (tok_pieces_add(out, text + s->v[i].start, s->v[i].end - s->v[i].start, origin && first)) return oom();
        first = 0;
    }
    return KNE_OK;
}

static kne_status bytelevel(tok_ctx *ctx, const tok_pretok *pt, const char *p, size_t n, int origin,
                            tok_pieces *out, segs *sg)
{
    const kne_tokenizer *t = ctx->tok;
    tok_buf *sc = &ctx->scratch;
    sc->n = 0;
    if (pt->add_prefix_space && (n == 0 || p[0] != ' ') && tok_buf_append(sc, " ", 1)) return oom();
    if (tok_buf_append(sc, p, n)) return oom();
    sg->n = 0;
    if (pt->use_regex) {
        KNE_TRY(tok_pattern_find_all(&pt->pat, sc->p, sc->n, ctx->md, &ctx->spans, &ctx->n_spans, &ctx->spans_cap));
        if (segs_from_spans(sg, ctx->spans, ctx->n_spans, sc->n, 0)) return oom();
    } else if (segs_push(sg, 0, sc->n, 0)) {
        return oom();
    }
    int first = 1;
    for (size_t i = 0; i < sg->n; i++) {
        size_t a = sg->v[i].start, b = sg->v[i].end;
        if (a == b) continue;
        size_t start = out->text.n;
        if (tok_buf_reserve(&out->text, 2 * (b - a))) return oom();
        char *dst = out->text.p + out->text.n;
        for (size_t k = a; k < b; k++) {
            unsigned char c = (unsigned char)sc->p[k];
            *dst++ = t->bl_enc[c][0];
            if (t->bl_enc_len[c] == 2) *dst++ = t->bl_enc[c][1];
        }
        out->text.n = (size_t)(dst - out->text.p);
        if (tok_pieces_push(out, start, out->text.n, origin && first)) return oom();
        first = 0;
    }
    return KNE_OK;
}

static kne_status split(tok_ctx *ctx, const tok_pretok *pt, const char *p, size_t n, int origin,
                        tok_pieces *out, segs *sg)
{
    KNE_TRY(tok_pattern_find_all(&pt->pat, p, n, ctx->md, &ctx->spans, &ctx->n_spans, &ctx->spans_cap));
    if (segs_from_spans(sg, ctx->spans, ctx->n_spans, n, pt->invert)) return oom();
    apply_behavior(sg, pt->behavior);
    return emit_copy(out, p, sg, origin);
}

static kne_status metaspace(tok_ctx *ctx, const tok_pretok *pt, const char *p, size_t n, int origin,
                            tok_pieces *out, segs *sg)
{
    tok_buf *sc = &ctx->scratch;
    sc->n = 0;
    int starts = n >= pt->repl_len && memcmp(p, pt->repl, pt->repl_len) == 0;
    /* a leading space becomes the replacement too, so it counts as one */
    if (n > 0 && p[0] == ' ') starts = 1;
    if (!starts && (pt->prepend_scheme == PREPEND_ALWAYS || (pt->prepend_scheme == PREPEND_FIRST && origin)))
        if (tok_buf_append(sc, pt->repl, pt->repl_len)) return oom();
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j < n && p[j] != ' ') j++;
        if (tok_buf_append(sc, p + i, j - i)) return oom();
        if (j < n && tok_buf_append(sc, pt->repl, pt->repl_len)) return oom();
        i = j;
    }
    sg->n = 0;
    if (!pt->split) {
        if (segs_push(sg, 0, sc->n, 0)) return oom();
        return emit_copy(out, sc->p, sg, origin);
    }
    tok_pattern lit = { (char *)pt->repl, pt->repl_len, NULL };
    KNE_TRY(tok_pattern_find_all(&lit, sc->p, sc->n, NULL, &ctx->spans, &ctx->n_spans, &ctx->spans_cap));
    if (segs_from_spans(sg, ctx->spans, ctx->n_spans, sc->n, 0)) return oom();
    apply_behavior(sg, SPLIT_MERGED_NEXT);
    return emit_copy(out, sc->p, sg, origin);
}

kne_status tok_pretokenize(tok_ctx *ctx, const tok_pretok *pt, const tok_pieces *in, tok_pieces *out)
{
    tok_pieces_clear(out);
    if (pt->kind == TP_SEQUENCE) {
        tok_pieces a = { 0 }, b = { 0 };
        kne_status st = KNE_OK;
        for (size_t k = 0; k < in->n && st == KNE_OK; k++)
            if (tok_pieces_add(&a, in->text.p + in->v[k].start, in->v[k].end - in->v[k].start, in->v[k].origin))
                st = oom();
        for (size_t i = 0; i < pt->n_items && st == KNE_OK; i++) {
            st = tok_pretokenize(ctx, &pt->items[i], &a, &b);
            tok_pieces t = a; a = b; b = t;
        }
        for (size_t k = 0; k < a.n && st == KNE_OK; k++)
            if (tok_pieces_add(out, a.text.p + a.v[k].start, a.v[k].end - a.v[k].start, a.v[k].origin))
                st = oom();
        tok_pieces_free(&a);
        tok_pieces_free(&b);
        return st;
    }
    segs sg = { 0 };
    kne_status st = KNE_OK;
    for (size_t k = 0; k < in->n && st == KNE_OK; k++) {
        const char *p = in->text.p + in->v[k].start;
        size_t n = in->v[k].end - in->v[k].start;
        int origin = in->v[k].origin;
        switch (pt->kind) {
        case TP_BYTELEVEL: st = bytelevel(ctx, pt, p, n, origin, out, &sg); break;
        case TP_SPLIT: st = split(ctx, pt, p, n, origin, out, &sg); break;
        case TP_METASPACE: st = metaspace(ctx, pt, p, n, origin, out, &sg); break;
        default: st = kne_fail(KNE_ERR_UNSUPPORTED, "tokenizer: unknown pre-tokenizer");
        }
    }
    free(sg.v);
    return st;
}
