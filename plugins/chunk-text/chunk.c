/* chunk.c - chunk-text: a document's elements into chunks of bounded size,
 * cut where the text has a natural break.
 *
 * Elements are packed in order into the current chunk, joined by a blank
 * line, while they fit in `size`. One that does not fit starts the next
 * chunk whole, so paragraphs, lists, tables and code blocks are never cut
 * when they fit in a chunk of their own. One larger than `size` is cut: at
 * the largest break in the window that fits (a blank line, then a line end,
 * then a sentence end, then a space), preferring a break in the window's
 * second half so chunks come out full, and at worst at a character boundary
 * (never inside a UTF-8 sequence). Lists and code are cut between lines
 * (list items, blank lines in code first). Each chunk after the first
 * repeats up to `overlap` of the text before it, starting at a word.
 *
 * Tables are never cut inside a row: a table larger than a chunk is split
 * between rows, every part opening with the table's header row (element
 * attr "header" = "1"); a row longer than a chunk is cut between cells, each
 * piece under the header cells of its columns.
 *
 * The order elements are read in, and which stay together, comes from
 * layout.c: the parser's order, or on pages with layout regions their
 * reading order, with tables and figures (and their captions) as units.
 * Every chunk records the kinds of its elements, its regions and the pages
 * it spans as chunk attributes (sluice/doc.h).
 *
 * Headings start sections: a heading always starts a new chunk (no overlap
 * carried across it) and sets the heading path ("Install > From source")
 * that every chunk of its section records. A heading is also text: it opens
 * its section's first chunk. A heading directly followed by a deeper one
 * shares its chunk, so "# Guide" then "## Install" do not make a chunk of one
 * word; an empty section (a heading followed by one of the same or a higher
 * level) stays a chunk of its own.
 *
 * Sizes count Unicode code points; unit = tokens multiplies them by four
 * (about one token per four characters of English for BPE tokenizers),
 * unless the embedder's own tokenizer is given (vocab or spm: the shared
 * plugins/common/tokenizer.h), when they count its tokens exactly: `size`
 * is then the model's window, and the text of a chunk gets what is left of
 * it after [CLS], [SEP] and the prefix. Token counts do not quite add up
 * where pieces join (a word cut in two, SentencePiece's context), so every
 * chunk is counted whole before it is stored and one that is still over
 * is cut at a token boundary (emit): no chunk exceeds the window.
 *
 * Sentence ends are ASCII's ('.', '!', '?' before a space) and those of
 * ICU's sentence break iterator, so Japanese 。, Hindi । and Greek ;
 * end sentences too.
 *
 * Linear on any input: each cut looks at most one window of text, each chunk
 * is copied once, and the overlap is measured back from a chunk's end, so a
 * 50 MB paragraph on one line costs a few passes over its bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include <unicode/ubrk.h>
#include <unicode/utext.h>

#include "layout.h"
#include "textbuf.h"
#include "tokenizer.h"

#define TOKEN_CHARS 4         /* code points per token in unit = tokens */
#define MAX_SIZE 100000000    /* largest size accepted, in its unit */
#define MAX_HEADING_BYTES 200 /* of one heading in a path: headings can be whole paragraphs */

typedef struct ck_config {
    int64_t size;
    int64_t overlap;
    const char *unit;
    const char *vocab;
    const char *spm;
    bool lowercase;
    const char *strip_accents;
    const char *prefix;
    const char *locale;
    const char *tokenizer;
} ck_config;

/* Read-only after init: every pool thread may use it at once (the
 * tokenizer too). */
typedef struct ck_state {
    size_t size, overlap; /* in code points, or tokens with a tokenizer */
    tok *tk;
    const char *locale; /* ICU's, for sentence breaks */
} ck_state;

static const sl_option options[] = {
    {.name = "size",
     .type = SL_OPT_INT,
     .def = "1000",
     .help = "largest chunk, in `unit`",
     .offset = offsetof(ck_config, size)},
    {.name = "overlap",
     .type = SL_OPT_INT,
     .def = "150",
     .help = "text repeated from the end of one chunk at the start of the next, in `unit`; < size",
     .offset = offsetof(ck_config, overlap)},
    {.name = "unit",
     .type = SL_OPT_ENUM,
     .def = "chars",
     .help = "what size and overlap count: Unicode characters, or tokens (4 characters each)",
     .offset = offsetof(ck_config, unit),
     .choices = "chars|tokens"},
    {.name = "vocab",
     .type = SL_OPT_PATH,
     .def = "",
     .help = "unit = tokens: count with this WordPiece vocab.txt (the embedder's), size being its window",
     .offset = offsetof(ck_config, vocab)},
    {.name = "spm",
     .type = SL_OPT_PATH,
     .def = "",
     .help = "unit = tokens: count with this SentencePiece .model (the embedder's)",
     .offset = offsetof(ck_config, spm)},
    {.name = "lowercase",
     .type = SL_OPT_BOOL,
     .def = "true",
     .help = "vocab: lowercase as the embedder does",
     .offset = offsetof(ck_config, lowercase)},
    {.name = "strip_accents",
     .type = SL_OPT_ENUM,
     .def = "auto",
     .help = "vocab: strip accents as the embedder does (auto: when lowercasing)",
     .offset = offsetof(ck_config, strip_accents),
     .choices = "auto|yes|no"},
    {.name = "prefix",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "the embedder's passage_prefix: its tokens count against size",
     .offset = offsetof(ck_config, prefix)},
    {.name = "tokenizer",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "an embedder section (embed-torch): count its tokens, within its max_seq_len and passage_prefix",
     .offset = offsetof(ck_config, tokenizer)},
    {.name = "locale",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "the text's language for ICU's sentence ends (\"el\": Greek ';' ends a question); \"\": any",
     .offset = offsetof(ck_config, locale)},
    {0},
};

/* --- text helpers --- */

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static bool is_cont(char c) { return ((unsigned char)c & 0xC0) == 0x80; } /* a UTF-8 continuation byte */

static size_t count_cps(const char *s, size_t n) {
    size_t u = 0;
    for (size_t i = 0; i < n; i++) u += !is_cont(s[i]);
    return u;
}

/* The byte index k code points after pos (or n). */
static size_t advance_cps(const char *s, size_t pos, size_t n, size_t k) {
    for (; pos < n && k; k--) {
        pos++;
        while (pos < n && is_cont(s[pos])) pos++;
    }
    return pos;
}

static void trim(const char **s, size_t *n) {
    while (*n && is_space(**s)) (*s)++, (*n)--;
    while (*n && is_space((*s)[*n - 1])) (*n)--;
}

/* --- cutting one long text --- */

/* How a text is laid out, which says where it is best cut. */
typedef enum shape {
    SHAPE_TEXT, /* prose: paragraphs, lines, sentences, words */
    SHAPE_CODE, /* lines; a blank line best */
    SHAPE_LIST, /* lines; the start of a top-level item best */
    SHAPE_ROWS  /* lines only (a table's rows, a figure's lines) */
} shape;

enum { BREAK_PARA, BREAK_LINE, BREAK_SENTENCE, BREAK_SPACE, NBREAKS };

/* The last sentence boundary ICU's break iterator finds inside
 * s[pos, wend), moved back over the spaces before it (so the cut lands on
 * them), or 0. *bi is opened on first use and kept for the document. */
static size_t icu_sentence(UBreakIterator **bi, const char *locale, const char *s, size_t pos, size_t wend) {
    if (wend - pos > INT32_MAX) return 0;
    UErrorCode e = U_ZERO_ERROR;
    if (!*bi) {
        *bi = ubrk_open(UBRK_SENTENCE, locale ? locale : "", NULL, 0, &e);
        if (U_FAILURE(e)) {
            *bi = NULL;
            return 0;
        }
    }
    UText *ut = utext_openUTF8(NULL, s + pos, (int64_t)(wend - pos), &e);
    if (U_FAILURE(e)) return 0;
    ubrk_setUText(*bi, ut, &e);
    int32_t b = U_SUCCESS(e) ? ubrk_preceding(*bi, (int32_t)(wend - pos)) : UBRK_DONE;
    utext_close(ut);
    if (b == UBRK_DONE || b <= 0) return 0;
    size_t at = pos + (size_t)b;
    while (at > pos && is_space(s[at - 1])) at--;
    return at > pos ? at : 0;
}

/* Where to end the piece s[pos, ...) that may run to wend (< n): the byte
 * index of the break (the piece is [pos, cut)). Looks back from wend for
 * each kind's last break; the highest kind found in the window's second half
 * (from mid) wins, else the last break of any kind, else wend itself.
 * Sentence ends are ASCII's and, for prose, ICU's. */
static size_t best_text_cut(const char *s, size_t pos, size_t mid, size_t wend, size_t n, bool block,
                            UBreakIterator **bi, const char *locale) {
    size_t at[NBREAKS] = {0};
    bool seen[NBREAKS] = {false}, any = false;
    size_t sb = block ? 0 : icu_sentence(bi, locale, s, pos, wend), early = 0;
    if (sb && sb >= mid) seen[BREAK_SENTENCE] = any = true, at[BREAK_SENTENCE] = sb;
    for (size_t i = wend; i > pos && !(i < mid && any); i--) {
        char c = s[i];
        int kind;
        if (c == '\n')
            kind = !block && i + 1 < n && s[i + 1] == '\n' ? BREAK_PARA : BREAK_LINE;
        else if (c == ' ' || c == '\t')
            kind = !block && (s[i - 1] == '.' || s[i - 1] == '!' || s[i - 1] == '?') ? BREAK_SENTENCE
                                                                                     : BREAK_SPACE;
        else
            continue;
        if (i < mid) { /* nothing in the second half: the last break there is */
            early = i;
            break;
        }
        if (kind == BREAK_PARA) return i;
        if (!seen[kind] || i > at[kind]) seen[kind] = any = true, at[kind] = i;
    }
    if (!any) return early || sb ? (early > sb ? early : sb) : wend;
    for (int k = 0; k < NBREAKS; k++)
        if (seen[k]) return at[k];
    return wend;
}

/* best_text_cut for prose; for line-shaped text a line end anywhere after
 * the window's first quarter (from low) wins over any space, and the best
 * line end (a blank line in code, the start of a top-level item in a list)
 * over other line ends. Each piece is then at least a quarter full, which
 * keeps the cost linear. */
static size_t best_cut(const char *s, size_t pos, size_t low, size_t mid, size_t wend, size_t n, shape sh,
                       UBreakIterator **bi, const char *locale) {
    if (sh == SHAPE_TEXT) return best_text_cut(s, pos, mid, wend, n, false, bi, locale);
    size_t line = 0;
    for (size_t i = wend; i > pos && i >= low; i--) {
        if (s[i] != '\n') continue;
        bool next = i + 1 < n;
        if ((sh == SHAPE_LIST && next && !is_space(s[i + 1])) ||
            (sh == SHAPE_CODE && next && s[i + 1] == '\n'))
            return i;
        if (!line) line = i;
    }
    return line ? line : best_text_cut(s, pos, mid, wend, n, true, bi, locale);
}

/* --- the chunk being built --- */

/* Where a text comes from: its first element's page and line, the kinds
 * of element it holds (bit 1 << sl_elem_type) and its regions' labels. */
typedef struct origin {
    uint32_t page, line;
    uint32_t kinds;
    const char *regions; /* comma-separated, doc arena; NULL: none */
} origin;

typedef struct mark {
    size_t at; /* where an element's text starts in the chunk */
    origin o;
} mark;

typedef struct chunker {
    sl_doc *doc;
    size_t size, overlap;
    buf cur;      /* the chunk so far: no leading or trailing space */
    size_t units; /* code points in cur */
    bool fresh;   /* cur holds only the overlap carried from the chunk before */
    bool body;    /* cur holds more than headings */
    int head_level;
    mark *marks;
    size_t nmarks, cmarks;
    buf heads[7]; /* the heading path: text of the last heading of each level 1..6 */
    buf path;
    buf attr;           /* an attribute's value being built */
    buf joined;         /* a unit of several elements, joined; or a piece of a row */
    buf piece;          /* a piece of a row under its header cells */
    const tok *tk;      /* counts tokens; NULL: code points */
    UBreakIterator *bi; /* ICU sentence breaks, opened on first use */
    const char *locale;
} chunker;

/* --- measuring: code points, or the embedder's tokens --- */

static size_t units_of(const chunker *c, const char *s, size_t n) {
    if (!c->tk) return count_cps(s, n);
    size_t k = tok_count(c->tk, s, n);
    return k == (size_t)-1 ? n : k; /* out of memory: bytes, more than its tokens */
}

/* The byte index k units after pos (or n): for tokens, where the token
 * after the k-th begins. Only a window of the text is tokenized, grown
 * until it holds k + 1 tokens or reaches n. */
static size_t advance(const chunker *c, const char *s, size_t pos, size_t n, size_t k) {
    if (!c->tk) return advance_cps(s, pos, n, k);
    if (k == 0 || pos >= n) return pos;
    size_t win = k * 16 + 64, r;
    for (;;) {
        size_t end = n - pos > win ? pos + win : n;
        while (end < n && end > pos && is_cont(s[end])) end--;
        tok_ids ids = {0};
        int rc = tok_encode(c->tk, s + pos, end - pos, k + 1, &ids);
        bool more = rc == 0 && ids.n <= k && end < n;
        r = rc ? advance_cps(s, pos, n, k) : ids.n > k ? pos + ids.begin[k] : n;
        tok_ids_free(&ids);
        if (!more) break;
        win *= 4;
    }
    return r > pos ? r : advance_cps(s, pos, n, 1);
}

static void drop(chunker *c) {
    c->cur.len = 0;
    c->units = 0;
    c->nmarks = 0;
    c->fresh = false;
    c->body = false;
    c->head_level = 0;
}

static int append(chunker *c, const char *sep, const char *s, size_t n, size_t units, bool body,
                  const origin *o) {
    size_t sl = c->cur.len ? strlen(sep) : 0;
    if (c->nmarks == c->cmarks) {
        size_t cap = c->cmarks ? c->cmarks * 2 : 16;
        mark *m = realloc(c->marks, cap * sizeof *m);
        if (!m) return SL_ENOMEM;
        c->marks = m;
        c->cmarks = cap;
    }
    if (buf_add(&c->cur, sep, sl)) return SL_ENOMEM;
    c->marks[c->nmarks++] = (mark){.at = c->cur.len, .o = *o};
    if (buf_add(&c->cur, s, n)) return SL_ENOMEM;
    /* tokens do not add up across a join: counted again, whole */
    c->units = c->tk ? units_of(c, c->cur.p, c->cur.len) : c->units + sl + units;
    c->fresh = false;
    c->body |= body;
    return 0;
}

/* Where the overlap starts in s[0, len): at most `overlap` units from the
 * end, moved forward to the start of a word. Text with no space in that
 * stretch (one long word, or scripts written without spaces) overlaps from
 * a character (or token) boundary instead. */
static size_t tail_start(const chunker *c, const char *s, size_t len, size_t overlap) {
    if (!overlap) return len;
    size_t t = len;
    if (c->tk) {
        tok_ids ids = {0};
        if (tok_encode(c->tk, s, len, 0, &ids))
            t = len; /* out of memory: no overlap */
        else
            t = ids.n > overlap ? ids.begin[ids.n - overlap] : 0;
        tok_ids_free(&ids);
    }
    for (size_t k = overlap; !c->tk && t > 0 && k; k--) {
        t--;
        while (t > 0 && is_cont(s[t])) t--;
    }
    if (t == 0) return 0;
    size_t u = t;
    if (!is_space(s[t - 1])) {
        while (u < len && !is_space(s[u])) u++;
        if (u == len) return t;
    }
    while (u < len && is_space(s[u])) u++;
    return u;
}

static const char *heading_path(chunker *c) {
    c->path.len = 0;
    for (int l = 1; l <= 6; l++) {
        if (!c->heads[l].len) continue;
        if ((c->path.len && buf_add(&c->path, " > ", 3)) || buf_add(&c->path, c->heads[l].p, c->heads[l].len))
            return NULL;
    }
    return c->path.len ? c->path.p : "";
}

/* Whether the comma-separated list l[0, n) holds item s[0, k). */
static bool has_item(const char *l, size_t n, const char *s, size_t k) {
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && l[j] != ',') j++;
        if (j - i == k && memcmp(l + i, s, k) == 0) return true;
        i = j + 1;
    }
    return false;
}

/* Appends the items of the comma-separated list s that c->attr lacks. */
static int add_items(buf *b, const char *s) {
    for (const char *p = s; p && *p;) {
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k && !has_item(b->p, b->len, p, k) && ((b->len && buf_add(b, ",", 1)) || buf_add(b, p, k)))
            return SL_ENOMEM;
        p += k + (e != NULL);
    }
    return 0;
}

/* The chunk's structure as attributes (sluice/doc.h): "kinds", "region"
 * and, when it runs over pages, "pages". */
static int set_attrs(chunker *c, size_t i) {
    sl_doc *doc = c->doc;
    buf *b = &c->attr;
    b->len = 0;
    uint32_t lo = 0, hi = 0;
    for (size_t m = 0; m < c->nmarks; m++) {
        const origin *o = &c->marks[m].o;
        for (int t = SL_EL_TITLE; t <= SL_EL_OTHER; t++)
            if (o->kinds & (1u << t) && add_items(b, sl_elem_type_name((sl_elem_type)t))) return SL_ENOMEM;
        if (o->page && (!lo || o->page < lo)) lo = o->page;
        if (o->page > hi) hi = o->page;
    }
    int rc = b->len ? sl_chunk_set_attr(doc, i, "kinds", b->p) : 0;
    b->len = 0;
    for (size_t m = 0; !rc && m < c->nmarks; m++)
        if (add_items(b, c->marks[m].o.regions)) return SL_ENOMEM;
    if (!rc && b->len) rc = sl_chunk_set_attr(doc, i, "region", b->p);
    if (!rc && lo && hi > lo) {
        char pages[32];
        snprintf(pages, sizeof pages, "%u-%u", lo, hi);
        rc = sl_chunk_set_attr(doc, i, "pages", pages);
    }
    return rc;
}

/* Adds cur[0, len) to the document as a chunk. */
static int store_chunk(chunker *c, size_t len) {
    sl_doc *doc = c->doc;
    int i = sl_doc_add_chunk(doc, c->cur.p, len);
    if (i < 0) return i;
    const char *path = heading_path(c);
    if (!path) return SL_ENOMEM;
    int rc = *path ? sl_chunk_set_heading(doc, (size_t)i, path) : 0;
    if (!rc) rc = sl_chunk_set_position(doc, (size_t)i, c->marks[0].o.page, c->marks[0].o.line);
    if (!rc) rc = set_attrs(c, (size_t)i);
    return rc;
}

/* Tokens only: the chunk is over the window once counted whole (its
 * pieces' counts did not add up). Stores the most of it that fits, cut at
 * a token boundary, and keeps the rest as the start of the next chunk. */
static int emit_over(chunker *c) {
    tok_ids ids = {0};
    if (tok_encode(c->tk, c->cur.p, c->cur.len, c->size + 1, &ids)) return SL_ENOMEM;
    size_t k = ids.n > c->size ? c->size : ids.n;
    size_t cut = k < ids.n ? ids.begin[k] : c->cur.len;
    while (cut > 0 && units_of(c, c->cur.p, cut) > c->size) cut = --k > 0 ? ids.begin[k] : 0;
    tok_ids_free(&ids);
    if (cut == 0) cut = advance_cps(c->cur.p, 0, c->cur.len, 1);
    size_t end = cut;
    while (end > 0 && is_space(c->cur.p[end - 1])) end--;
    int rc = store_chunk(c, end ? end : cut);
    if (rc) return rc;
    size_t start = cut;
    while (start < c->cur.len && is_space(c->cur.p[start])) start++;
    size_t m = 0, keep = 1;
    while (m + 1 < c->nmarks && c->marks[m + 1].at <= start) m++;
    c->marks[0] = (mark){.at = 0, .o = c->marks[m].o};
    for (size_t j = m + 1; j < c->nmarks; j++)
        c->marks[keep++] = (mark){.at = c->marks[j].at - start, .o = c->marks[j].o};
    c->nmarks = keep;
    c->cur.len -= start;
    memmove(c->cur.p, c->cur.p + start, c->cur.len);
    c->units = units_of(c, c->cur.p, c->cur.len);
    return 0;
}

/* Adds the chunk built so far to the document, and keeps its overlap as the
 * start of the next one. */
static int emit(chunker *c) {
    if (!c->cur.len || c->fresh) return 0;
    while (c->tk && c->units > c->size && c->cur.len) {
        int rc = emit_over(c);
        if (rc) return rc;
    }
    if (!c->cur.len) {
        drop(c);
        return 0;
    }
    int rc = store_chunk(c, c->cur.len);
    if (rc) return rc;

    size_t t = tail_start(c, c->cur.p, c->cur.len, c->overlap);
    if (t >= c->cur.len) {
        drop(c);
        return 0;
    }
    size_t m = c->nmarks - 1; /* the element the overlap starts in */
    while (m > 0 && c->marks[m].at > t) m--;
    c->marks[0] = (mark){.at = 0, .o = c->marks[m].o};
    c->nmarks = 1;
    c->cur.len -= t;
    memmove(c->cur.p, c->cur.p + t, c->cur.len);
    c->units = units_of(c, c->cur.p, c->cur.len);
    c->fresh = true;
    c->body = false;
    c->head_level = 0;
    return 0;
}

/* A text larger than what is left: cut into pieces, each filling a chunk. */
static int add_split(chunker *c, const char *s, size_t n, shape sh, bool body, const origin *o) {
    const char *join = "\n\n"; /* how this piece meets the text before it */
    size_t pos = 0;
    while (pos < n) {
        size_t sl = c->cur.len ? strlen(join) : 0;
        if (c->cur.len && c->units + sl >= c->size) { /* no room left beside the overlap */
            drop(c);
            sl = 0;
        }
        size_t avail = c->size - c->units - sl;
        size_t wend = advance(c, s, pos, n, avail), cut = n;
        if (wend < n)
            cut = best_cut(s, pos, advance(c, s, pos, wend, avail / 4), advance(c, s, pos, wend, avail / 2),
                           wend, n, sh, &c->bi, c->locale);
        size_t end = cut;
        while (end > pos && is_space(s[end - 1])) end--;
        int rc = append(c, join, s + pos, end - pos, units_of(c, s + pos, end - pos), body, o);
        if (rc) return rc;
        if (cut >= n) return 0; /* the last piece stays open: what follows may join it */
        if ((rc = emit(c))) return rc;
        size_t lines = 0;
        for (pos = cut; pos < n && is_space(s[pos]); pos++) lines += s[pos] == '\n';
        join = lines > 1 ? "\n\n" : lines ? "\n" : is_space(s[cut]) ? " " : ""; /* "": cut inside a word */
    }
    return 0;
}

/* Adds a text that fits where it is, or in a chunk of its own; 1 when it
 * fits in neither (nothing done), else 0 or a negative code. */
static int add_whole(chunker *c, const char *s, size_t n, size_t units, bool body, const origin *o) {
    size_t sl = c->cur.len ? 2 : 0;
    if (c->units + sl + units <= c->size) return append(c, "\n\n", s, n, units, body, o);
    if (units > c->size) return 1;
    int rc = emit(c); /* fits in a chunk of its own: never cut it */
    if (rc) return rc;
    if (c->cur.len && c->units + 2 + units > c->size) drop(c);
    return append(c, "\n\n", s, n, units, body, o);
}

static int add_text(chunker *c, const char *s, size_t n, shape sh, bool body, const origin *o) {
    trim(&s, &n);
    if (!n) return 0;
    int rc = add_whole(c, s, n, units_of(c, s, n), body, o);
    if (rc <= 0) return rc;
    if (c->body && (rc = emit(c))) return rc; /* a long text starts its own chunk, after headings */
    return add_split(c, s, n, sh, body, o);
}

/* --- tables --- */

/* The next line of s[*pos, n), without its line end; false at the end. */
static bool next_line(const char *s, size_t n, size_t *pos, const char **line, size_t *len) {
    while (*pos < n && (s[*pos] == '\n' || s[*pos] == '\r')) (*pos)++;
    if (*pos >= n) return false;
    const char *e = memchr(s + *pos, '\n', n - *pos);
    size_t end = e ? (size_t)(e - s) : n;
    *line = s + *pos;
    *len = end - *pos;
    while (*len && (*line)[*len - 1] == '\r') (*len)--;
    *pos = end;
    return true;
}

/* The cell of a row ("a | b | c") at *pos, and *pos moved past it; false
 * past the last cell. */
static bool next_cell(const char *row, size_t n, size_t *pos, const char **cell, size_t *len) {
    if (*pos > n) return false;
    size_t j = *pos;
    while (j + 3 <= n && !(row[j] == ' ' && row[j + 1] == '|' && row[j + 2] == ' ')) j++;
    if (j + 3 > n) j = n;
    *cell = row + *pos;
    *len = j - *pos;
    *pos = j < n ? j + 3 : n + 1;
    return true;
}

/* Ends a part: emitted, and nothing carried into the next. */
static int end_part(chunker *c) {
    int rc = emit(c);
    drop(c);
    return rc;
}

/* A row too long for a part: cut at cell boundaries into pieces of
 * consecutive cells, each a chunk under the header cells of the same
 * columns when they fit beside them (a narrow table of its own), else
 * without; a cell too long for a chunk alone is cut as text. One pass over
 * the row; the header's cells are listed once. */
static int add_long_row(chunker *c, const char *row, size_t rn, const char *hdr, size_t hn, const origin *o) {
    int rc = end_part(c);
    sl_text *hcells = NULL;
    size_t nh = 0, hpos = 0;
    if (hn) {
        hcells = malloc((hn / 3 + 2) * sizeof *hcells); /* a cell and its " | " take 3 bytes or more */
        if (!hcells) return SL_ENOMEM;
        while (next_cell(hdr, hn, &hpos, &hcells[nh].ptr, &hcells[nh].len)) nh++;
    }
    buf *b = &c->joined, *h = &c->piece;
    const char *cell;
    size_t len, pos = 0, k = 0; /* k: the index of `cell` */
    bool have = next_cell(row, rn, &pos, &cell, &len);
    while (!rc && have) {
        size_t units = 0, hunits = 0, take = 0;
        bool with_head = nh > k;
        b->len = h->len = 0;
        while (have) { /* the most cells from k that fit, with their header cells */
            size_t j = k + take, cu = units_of(c, cell, len) + (take ? 3 : 0);
            size_t hu = j < nh ? units_of(c, hcells[j].ptr, hcells[j].len) + (take ? 3 : 0) : 0;
            if (units + cu + (with_head ? hunits + hu + 1 : 0) > c->size) {
                if (take || !with_head || cu > c->size) break;
                with_head = false; /* the cell fits, but not beside its header cell */
                hu = 0;
            }
            if ((take && buf_add(b, " | ", 3)) || buf_add(b, cell, len)) rc = SL_ENOMEM;
            if (with_head && j < nh &&
                ((h->len && buf_add(h, " | ", 3)) || buf_add(h, hcells[j].ptr, hcells[j].len)))
                rc = SL_ENOMEM;
            units += cu, hunits += hu, take++;
            have = next_cell(row, rn, &pos, &cell, &len);
        }
        if (rc) break;
        if (!take) { /* one cell longer than a chunk: cut as text */
            rc = add_split(c, cell, len, SHAPE_TEXT, true, o);
            if (!rc) rc = end_part(c);
            k++;
            have = next_cell(row, rn, &pos, &cell, &len);
            continue;
        }
        if (with_head && h->len && (buf_add(h, "\n", 1) || buf_add(h, b->p, b->len))) rc = SL_ENOMEM;
        const buf *piece = with_head && h->len ? h : b;
        if (!rc) rc = append(c, "\n\n", piece->p, piece->len, units_of(c, piece->p, piece->len), true, o);
        if (!rc) rc = end_part(c);
        k += take;
    }
    free(hcells);
    return rc;
}

/* A table: whole when it fits (where it is, or in a chunk of its own);
 * else split between rows into parts, each part a chunk under the header
 * row when the table has one (`header`) that takes at most half a chunk. A
 * part never starts with overlap. */
static int add_table(chunker *c, const char *s, size_t n, bool header, const origin *o) {
    trim(&s, &n);
    if (!n) return 0;
    int rc = add_whole(c, s, n, units_of(c, s, n), true, o);
    if (rc <= 0) return rc;
    rc = 0;
    size_t pos = 0, hn = 0, hu = 0, rn;
    const char *hdr = NULL, *row;
    if (header && next_line(s, n, &pos, &hdr, &hn)) {
        hu = units_of(c, hdr, hn);
        if (hu > c->size / 2)
            pos = 0, hn = 0, hu = 0, hdr = NULL; /* too big to repeat: rows go on without it */
    }
    if (c->body && (rc = emit(c))) return rc; /* the table starts its own chunk, after headings */
    if (c->fresh) drop(c);
    bool open = false; /* a part is being filled */
    while (!rc && next_line(s, n, &pos, &row, &rn)) {
        size_t ru = units_of(c, row, rn);
        if (open) {
            if (c->units + 1 + ru <= c->size) {
                rc = append(c, "\n", row, rn, ru, true, o);
                continue;
            }
            if ((rc = end_part(c))) break;
            open = false;
        }
        size_t need = (hn ? hu + 1 : 0) + ru;
        if (c->cur.len && c->units + 2 + need > c->size && (rc = end_part(c))) break; /* headings alone */
        if (c->units + (c->cur.len ? 2 : 0) + need <= c->size) {
            if (hn) rc = append(c, "\n\n", hdr, hn, hu, true, o);
            if (!rc) rc = append(c, hn ? "\n" : "\n\n", row, rn, ru, true, o);
            open = true;
            continue;
        }
        rc = add_long_row(c, row, rn, hdr, hn, o); /* one row longer than a part */
    }
    return rc;
}

static int add_heading(chunker *c, const char *s, size_t n, int level, const origin *o) {
    trim(&s, &n);
    if (!n) return 0;
    if (level < 1) level = 1;
    if (level > 6) level = 6;
    bool merge = c->cur.len && !c->fresh && !c->body && level > c->head_level &&
                 c->units + 2 + units_of(c, s, n) <= c->size;
    if (!merge) {
        int rc = emit(c);
        if (rc) return rc;
        drop(c); /* no overlap across a section boundary */
    }
    size_t keep = n < MAX_HEADING_BYTES ? n : MAX_HEADING_BYTES;
    while (keep < n && keep && is_cont(s[keep])) keep--;
    c->heads[level].len = 0;
    if (buf_add(&c->heads[level], s, keep)) return SL_ENOMEM;
    for (char *p = c->heads[level].p; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    for (int l = level + 1; l <= 6; l++) c->heads[l].len = 0;
    int rc = add_text(c, s, n, SHAPE_TEXT, false, o);
    c->head_level = level;
    return rc;
}

static shape shape_of(sl_elem_type type) {
    switch (type) {
    case SL_EL_CODE: return SHAPE_CODE;
    case SL_EL_LIST: return SHAPE_LIST;
    case SL_EL_TABLE: return SHAPE_ROWS;
    default: return SHAPE_TEXT;
    }
}

/* A unit of several elements (a table or figure region with its
 * captions): their texts joined by line ends, kept whole when it fits. */
static int add_group(chunker *c, const ck_plan *plan, const ck_unit *u, const origin *o) {
    sl_doc *doc = c->doc;
    buf *b = &c->joined;
    b->len = 0;
    for (size_t k = 0; k < u->count; k++) {
        size_t n;
        const char *s = sl_element_text(doc, plan->order[u->first + k], &n);
        trim(&s, &n);
        if (n && ((b->len && buf_add(b, "\n", 1)) || buf_add(b, s, n))) return SL_ENOMEM;
    }
    if (!b->len) return 0;
    /* the buffer is reused by add_long_row: chunk a copy */
    char *text = sl_doc_strndup(doc, b->p, b->len);
    if (!text) return SL_ENOMEM;
    bool table =
        u->regions && strncmp(u->regions, "table", 5) == 0 && (!u->regions[5] || u->regions[5] == ',');
    return table ? add_table(c, text, strlen(text), false, o)
                 : add_text(c, text, strlen(text), SHAPE_ROWS, true, o);
}

static int chunk_doc(chunker *c) {
    sl_doc *doc = c->doc;
    ck_plan plan;
    int rc = ck_plan_make(doc, &plan);
    for (size_t k = 0; !rc && k < plan.nunits; k++) {
        const ck_unit *u = &plan.units[k];
        size_t i = plan.order[u->first], n;
        origin o = {.page = sl_element_page(doc, i),
                    .line = sl_element_line(doc, i),
                    .kinds = u->kinds,
                    .regions = u->regions};
        if (u->group) {
            rc = add_group(c, &plan, u, &o);
            continue;
        }
        const char *s = sl_element_text(doc, i, &n);
        sl_elem_type type = sl_element_type(doc, i);
        const char *header = sl_element_attr(doc, i, "header");
        if (type == SL_EL_HEADING || type == SL_EL_TITLE)
            rc = add_heading(c, s, n, type == SL_EL_TITLE ? 1 : sl_element_level(doc, i), &o);
        else if (type == SL_EL_TABLE)
            rc = add_table(c, s, n, header && strcmp(header, "1") == 0, &o);
        else
            rc = add_text(c, s, n, shape_of(type), true, &o);
    }
    ck_plan_free(&plan);
    return rc ? rc : emit(c);
}

/* --- the plugin --- */

#define EMBED_TORCH_MAX_SEQ "256" /* embed-torch's max_seq_len when its section gives none */

static bool truthy(const char *v) {
    return !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1");
}

/* tokenizer = SECTION: the embedder section's vocab or spm, lowercase,
 * strip_accents and passage_prefix, and size capped at its max_seq_len. */
static int from_section(sl_instance *inst, ck_config *cfg) {
    const char *sec = cfg->tokenizer;
    const char *vocab = sl_instance_peer_value(inst, sec, "vocab", 1);
    const char *spm = sl_instance_peer_value(inst, sec, "spm", 1);
    if (!(vocab && *vocab) && !(spm && *spm))
        return sl_instance_fail(inst, SL_EFATAL, "tokenizer = %s: section [%s] gives no vocab or spm", sec,
                                sec);
    if ((cfg->vocab && *cfg->vocab) || (cfg->spm && *cfg->spm))
        return sl_instance_fail(inst, SL_EFATAL, "give tokenizer or vocab/spm, not both");
    cfg->vocab = vocab && *vocab ? vocab : "";
    cfg->spm = spm && *spm ? spm : "";
    const char *lower = sl_instance_peer_value(inst, sec, "lowercase", 0);
    const char *strip = sl_instance_peer_value(inst, sec, "strip_accents", 0);
    const char *prefix = sl_instance_peer_value(inst, sec, "passage_prefix", 0);
    const char *max = sl_instance_peer_value(inst, sec, "max_seq_len", 0);
    cfg->lowercase = lower ? truthy(lower) : true;
    cfg->strip_accents = strip ? strip : "auto";
    if (prefix) cfg->prefix = prefix;
    long long window = atoll(max ? max : EMBED_TORCH_MAX_SEQ);
    if (window > 0 && window < cfg->size) cfg->size = window;
    cfg->unit = "tokens";
    return 0;
}

static int ck_init(sl_instance *inst, const void *config, void **state) {
    ck_config given = *(const ck_config *)config, *cfg = &given;
    if (cfg->tokenizer && *cfg->tokenizer) {
        int rc = from_section(inst, cfg);
        if (rc) return rc;
    }
    const char *unit = cfg->unit ? cfg->unit : "chars";
    bool tokens = strcmp(unit, "tokens") == 0;
    if (!tokens && strcmp(unit, "chars") != 0)
        return sl_instance_fail(inst, SL_EFATAL, "unit must be chars or tokens, not '%s'", unit);
    if (cfg->size < 1 || cfg->size > MAX_SIZE)
        return sl_instance_fail(inst, SL_EFATAL, "size must be between 1 and %d, not %lld", MAX_SIZE,
                                (long long)cfg->size);
    if (cfg->overlap < 0)
        return sl_instance_fail(inst, SL_EFATAL, "overlap must not be negative (%lld)",
                                (long long)cfg->overlap);
    if (cfg->overlap >= cfg->size)
        return sl_instance_fail(inst, SL_EFATAL, "overlap (%lld) must be smaller than size (%lld)",
                                (long long)cfg->overlap, (long long)cfg->size);
    bool vocab = cfg->vocab && *cfg->vocab, spm = cfg->spm && *cfg->spm;
    if ((vocab || spm) && !tokens)
        return sl_instance_fail(inst, SL_EFATAL, "vocab and spm count tokens: set unit = tokens");
    if (vocab && spm) return sl_instance_fail(inst, SL_EFATAL, "give vocab or spm, not both");
    ck_state *st = calloc(1, sizeof *st);
    if (!st) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    size_t scale = tokens && !(vocab || spm) ? TOKEN_CHARS : 1;
    st->size = (size_t)cfg->size * scale;
    st->overlap = (size_t)cfg->overlap * scale;
    st->locale = cfg->locale ? cfg->locale : "";
    if (vocab || spm) {
        char err[1024];
        bool strip =
            strcmp(cfg->strip_accents, "auto") == 0 ? cfg->lowercase : strcmp(cfg->strip_accents, "yes") == 0;
        if (vocab ? tok_open_wordpiece(cfg->vocab, cfg->lowercase, strip, &st->tk, err, sizeof err)
                  : tok_open_spm(cfg->spm, &st->tk, err, sizeof err)) {
            free(st);
            return sl_instance_fail(inst, SL_EFATAL, "%s", err);
        }
        /* size is the model's window: the text gets what [CLS], [SEP] and the prefix leave */
        size_t pre = cfg->prefix ? tok_count(st->tk, cfg->prefix, strlen(cfg->prefix)) : 0;
        size_t fixed = tok_specials(st->tk) + pre;
        if (pre == (size_t)-1 || st->size <= fixed + st->overlap) {
            tok_free(st->tk);
            free(st);
            return sl_instance_fail(
                inst, SL_EFATAL,
                "size (%lld tokens) leaves no room: [CLS], [SEP] and the prefix take %zu, "
                "overlap %lld",
                (long long)cfg->size, fixed, (long long)cfg->overlap);
        }
        st->size -= fixed;
    }
    *state = st;
    return 0;
}

static void ck_fini(void *state) {
    ck_state *st = state;
    if (st) tok_free(st->tk);
    free(st);
}

static int ck_chunk(sl_call *call, sl_doc *doc) {
    const ck_state *st = sl_call_state(call);
    if (!st) return sl_fail(call, SL_EFATAL, "chunk-text was not initialised");
    if (!sl_doc_element_count(doc)) return sl_fail(call, SL_EBADINPUT, "no text to chunk (no elements)");
    size_t before = sl_doc_chunk_count(doc);
    chunker c = {.doc = doc, .size = st->size, .overlap = st->overlap, .tk = st->tk, .locale = st->locale};
    int rc = chunk_doc(&c);
    if (c.bi) ubrk_close(c.bi);
    free(c.cur.p);
    free(c.marks);
    free(c.path.p);
    free(c.attr.p);
    free(c.joined.p);
    free(c.piece.p);
    for (int l = 0; l < 7; l++) free(c.heads[l].p);
    if (rc) return sl_fail(call, rc, "%s while chunking", sl_strerror(rc));
    if (sl_doc_chunk_count(doc) == before)
        return sl_fail(call, SL_EBADINPUT, "no text to chunk (empty elements)");
    return 0;
}

static const sl_plugin chunk_text_plugin = {
    SL_PLUGIN_HEADER,
    .name = "chunk-text",
    .version = "1.1.0",
    .summary = "elements into heading-aware chunks of bounded size, cut at paragraph, line, sentence or word "
               "breaks; tables split by rows under their header; layout regions read for order",
    .role = SL_ROLE_CHUNKER,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(ck_config),
    .init = ck_init,
    .fini = ck_fini,
    .chunk = ck_chunk,
};

SL_PLUGIN_EXPORT(chunk_text_plugin)
