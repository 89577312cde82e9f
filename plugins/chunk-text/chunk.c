/* chunk.c - chunk-text: a document's elements into chunks of bounded size,
 * cut where the text has a natural break.
 *
 * Elements are packed in order into the current chunk, joined by a blank
 * line, while they fit in `size`. One that does not fit starts the next
 * chunk whole, so paragraphs, lists, tables and code blocks are never cut
 * when they fit in a chunk of their own. One larger than `size` is cut: at
 * the largest break in the window that fits (a blank line, then a line end,
 * then a sentence end, then a space; code and tables only at line ends and
 * spaces), preferring a break in the window's second half so chunks come out
 * full, and at worst at a character boundary (never inside a UTF-8
 * sequence). Each chunk after the first repeats up to `overlap` of the text
 * before it, starting at a word.
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
 * (about one token per four characters of English for BPE tokenizers).
 *
 * Linear on any input: each cut looks at most one window of text, each chunk
 * is copied once, and the overlap is measured back from a chunk's end, so a
 * 50 MB paragraph on one line costs a few passes over its bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include "textbuf.h"

#define TOKEN_CHARS 4         /* code points per token in unit = tokens */
#define MAX_SIZE 100000000    /* largest size accepted, in its unit */
#define MAX_HEADING_BYTES 200 /* of one heading in a path: headings can be whole paragraphs */

typedef struct ck_config {
    int64_t size;
    int64_t overlap;
    const char *unit;
} ck_config;

/* Read-only after init: every pool thread may use it at once. */
typedef struct ck_state {
    size_t size, overlap; /* in code points */
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
    {0},
};

/* --- text helpers --- */

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static bool is_cont(char c) { return ((unsigned char)c & 0xC0) == 0x80; } /* a UTF-8 continuation byte */

static size_t count_units(const char *s, size_t n) {
    size_t u = 0;
    for (size_t i = 0; i < n; i++) u += !is_cont(s[i]);
    return u;
}

/* The byte index k code points after pos (or n). */
static size_t advance(const char *s, size_t pos, size_t n, size_t k) {
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

enum { BREAK_PARA, BREAK_LINE, BREAK_SENTENCE, BREAK_SPACE, NBREAKS };

/* Where to end the piece s[pos, ...) that may run to wend (< n): the byte
 * index of the break (the piece is [pos, cut)). Looks back from wend for
 * each kind's last break; the highest kind found in the window's second half
 * (from mid) wins, else the last break of any kind, else wend itself. */
static size_t best_cut(const char *s, size_t pos, size_t mid, size_t wend, size_t n, bool block) {
    size_t at[NBREAKS];
    bool seen[NBREAKS] = {false}, any = false;
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
        if (i < mid) return i; /* nothing in the second half: the last break there is */
        if (kind == BREAK_PARA) return i;
        if (!seen[kind]) seen[kind] = any = true, at[kind] = i;
    }
    for (int k = 0; k < NBREAKS; k++)
        if (seen[k]) return at[k];
    return wend;
}

/* --- the chunk being built --- */

typedef struct mark {
    size_t at; /* where an element's text starts in the chunk */
    uint32_t page, line;
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
} chunker;

static void drop(chunker *c) {
    c->cur.len = 0;
    c->units = 0;
    c->nmarks = 0;
    c->fresh = false;
    c->body = false;
    c->head_level = 0;
}

static int append(chunker *c, const char *sep, const char *s, size_t n, size_t units, bool body,
                  uint32_t page, uint32_t line) {
    size_t sl = c->cur.len ? strlen(sep) : 0;
    if (c->nmarks == c->cmarks) {
        size_t cap = c->cmarks ? c->cmarks * 2 : 16;
        mark *m = realloc(c->marks, cap * sizeof *m);
        if (!m) return SL_ENOMEM;
        c->marks = m;
        c->cmarks = cap;
    }
    if (buf_add(&c->cur, sep, sl)) return SL_ENOMEM;
    c->marks[c->nmarks++] = (mark){.at = c->cur.len, .page = page, .line = line};
    if (buf_add(&c->cur, s, n)) return SL_ENOMEM;
    c->units += sl + units;
    c->fresh = false;
    c->body |= body;
    return 0;
}

/* Where the overlap starts in s[0, len): at most `overlap` code points from
 * the end, moved forward to the start of a word. Text with no space in that
 * stretch (one long word, or scripts written without spaces) overlaps from
 * a character boundary instead. */
static size_t tail_start(const char *s, size_t len, size_t overlap) {
    if (!overlap) return len;
    size_t t = len;
    for (size_t k = overlap; t > 0 && k; k--) {
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

/* Adds the chunk built so far to the document, and keeps its overlap as the
 * start of the next one. */
static int emit(chunker *c) {
    if (!c->cur.len || c->fresh) return 0;
    sl_doc *doc = c->doc;
    int i = sl_doc_add_chunk(doc, c->cur.p, c->cur.len);
    if (i < 0) return i;
    const char *path = heading_path(c);
    if (!path) return SL_ENOMEM;
    int rc = *path ? sl_chunk_set_heading(doc, (size_t)i, path) : 0;
    if (!rc) rc = sl_chunk_set_position(doc, (size_t)i, c->marks[0].page, c->marks[0].line);
    if (rc) return rc;

    size_t t = tail_start(c->cur.p, c->cur.len, c->overlap);
    if (t >= c->cur.len) {
        drop(c);
        return 0;
    }
    size_t m = c->nmarks - 1; /* the element the overlap starts in */
    while (m > 0 && c->marks[m].at > t) m--;
    c->marks[0] = (mark){.at = 0, .page = c->marks[m].page, .line = c->marks[m].line};
    c->nmarks = 1;
    c->cur.len -= t;
    memmove(c->cur.p, c->cur.p + t, c->cur.len);
    c->units = count_units(c->cur.p, c->cur.len);
    c->fresh = true;
    c->body = false;
    c->head_level = 0;
    return 0;
}

/* A text larger than what is left: cut into pieces, each filling a chunk. */
static int add_split(chunker *c, const char *s, size_t n, bool block, bool body, uint32_t page,
                     uint32_t line) {
    const char *join = "\n\n"; /* how this piece meets the text before it */
    size_t pos = 0;
    while (pos < n) {
        size_t sl = c->cur.len ? strlen(join) : 0;
        if (c->cur.len && c->units + sl >= c->size) { /* no room left beside the overlap */
            drop(c);
            sl = 0;
        }
        size_t avail = c->size - c->units - sl;
        size_t wend = advance(s, pos, n, avail), cut = n;
        if (wend < n) cut = best_cut(s, pos, advance(s, pos, wend, avail / 2), wend, n, block);
        size_t end = cut;
        while (end > pos && is_space(s[end - 1])) end--;
        int rc = append(c, join, s + pos, end - pos, count_units(s + pos, end - pos), body, page, line);
        if (rc) return rc;
        if (cut >= n) return 0; /* the last piece stays open: what follows may join it */
        if ((rc = emit(c))) return rc;
        size_t lines = 0;
        for (pos = cut; pos < n && is_space(s[pos]); pos++) lines += s[pos] == '\n';
        join = lines > 1 ? "\n\n" : lines ? "\n" : is_space(s[cut]) ? " " : ""; /* "": cut inside a word */
    }
    return 0;
}

static int add_text(chunker *c, const char *s, size_t n, bool block, bool body, uint32_t page,
                    uint32_t line) {
    trim(&s, &n);
    if (!n) return 0;
    size_t units = count_units(s, n);
    size_t sl = c->cur.len ? 2 : 0;
    if (c->units + sl + units <= c->size) return append(c, "\n\n", s, n, units, body, page, line);
    int rc;
    if (units <= c->size) { /* fits in a chunk of its own: never cut it */
        if ((rc = emit(c))) return rc;
        if (c->cur.len && c->units + 2 + units > c->size) drop(c);
        return append(c, "\n\n", s, n, units, body, page, line);
    }
    if (c->body && (rc = emit(c))) return rc; /* a long text starts its own chunk, after headings */
    return add_split(c, s, n, block, body, page, line);
}

static int add_heading(chunker *c, const char *s, size_t n, int level, uint32_t page, uint32_t line) {
    trim(&s, &n);
    if (!n) return 0;
    if (level < 1) level = 1;
    if (level > 6) level = 6;
    bool merge = c->cur.len && !c->fresh && !c->body && level > c->head_level &&
                 c->units + 2 + count_units(s, n) <= c->size;
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
    int rc = add_text(c, s, n, false, false, page, line);
    c->head_level = level;
    return rc;
}

static int chunk_doc(chunker *c) {
    sl_doc *doc = c->doc;
    size_t count = sl_doc_element_count(doc);
    for (size_t i = 0; i < count; i++) {
        size_t n;
        const char *s = sl_element_text(doc, i, &n);
        uint32_t page = sl_element_page(doc, i), line = sl_element_line(doc, i);
        sl_elem_type type = sl_element_type(doc, i);
        int rc;
        if (type == SL_EL_HEADING || type == SL_EL_TITLE)
            rc = add_heading(c, s, n, type == SL_EL_TITLE ? 1 : sl_element_level(doc, i), page, line);
        else
            rc = add_text(c, s, n, type == SL_EL_CODE || type == SL_EL_TABLE, true, page, line);
        if (rc) return rc;
    }
    return emit(c);
}

/* --- the plugin --- */

static int ck_init(sl_instance *inst, const void *config, void **state) {
    const ck_config *cfg = config;
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
    ck_state *st = calloc(1, sizeof *st);
    if (!st) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    size_t scale = tokens ? TOKEN_CHARS : 1;
    st->size = (size_t)cfg->size * scale;
    st->overlap = (size_t)cfg->overlap * scale;
    *state = st;
    return 0;
}

static void ck_fini(void *state) { free(state); }

static int ck_chunk(sl_call *call, sl_doc *doc) {
    const ck_state *st = sl_call_state(call);
    if (!st) return sl_fail(call, SL_EFATAL, "chunk-text was not initialised");
    if (!sl_doc_element_count(doc)) return sl_fail(call, SL_EBADINPUT, "no text to chunk (no elements)");
    size_t before = sl_doc_chunk_count(doc);
    chunker c = {.doc = doc, .size = st->size, .overlap = st->overlap};
    int rc = chunk_doc(&c);
    free(c.cur.p);
    free(c.marks);
    free(c.path.p);
    for (int l = 0; l < 7; l++) free(c.heads[l].p);
    if (rc) return sl_fail(call, rc, "%s while chunking", sl_strerror(rc));
    if (sl_doc_chunk_count(doc) == before)
        return sl_fail(call, SL_EBADINPUT, "no text to chunk (empty elements)");
    return 0;
}

static const sl_plugin chunk_text_plugin = {
    SL_PLUGIN_HEADER,
    .name = "chunk-text",
    .version = "1.0.0",
    .summary = "elements into heading-aware chunks of bounded size, cut at paragraph, line, sentence or word "
               "breaks",
    .role = SL_ROLE_CHUNKER,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(ck_config),
    .init = ck_init,
    .fini = ck_fini,
    .chunk = ck_chunk,
};

SL_PLUGIN_EXPORT(chunk_text_plugin)
