/* markdown.c - parse-markdown: Markdown and plain text into typed elements.
 *
 * Markdown goes through md4c (CommonMark with GitHub's tables, task lists,
 * strikethrough and autolinks). md4c is a push parser: it calls us on entering
 * and leaving each block and for each run of text. We turn that stream into
 * one element per top-level block: headings, paragraphs, code blocks and HTML
 * blocks each make one element; a top-level list, block quote or table is
 * "captured" whole into one element, everything nested inside it flattened
 * into its text (list items on their own lines, table rows on their own
 * lines). Inline markup is dropped and its text kept.
 *
 * Positions come for free: md4c hands us pointers into the input for normal
 * text, so the first such pointer of a block is its byte offset. Lines are
 * counted with a cursor that only moves forward, so finding every block's
 * line costs one pass over the input in total, whatever its size.
 *
 * Plain text is split into paragraphs at blank lines.
 *
 * Everything is linear in the input and nothing recurses: a 50 MB line is one
 * paragraph, built in one growable buffer that every block reuses. Input is
 * checked first: empty, binary (a NUL byte) and invalid UTF-8 documents fail
 * as bad input with the reason and where.
 */
#include <md4c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include "textbuf.h"

/* List items nested deeper than this are indented no further: the indent is
 * repeated on every item, so unbounded nesting would make the output grow
 * with the square of the input. */
#define MAX_INDENT_LEVEL 8

typedef struct md_config {
    bool front_matter;
    const char *invalid_utf8;
} md_config;

/* Read-only after init: every pool thread may use it at once. */
typedef struct md_state {
    bool front_matter;
    bool replace_invalid;
} md_state;

static const sl_option options[] = {
    {.name = "front_matter",
     .type = SL_OPT_BOOL,
     .def = "true",
     .help = "read a leading ---/--- YAML block's `key: value` lines into metadata",
     .offset = offsetof(md_config, front_matter)},
    {.name = "invalid_utf8",
     .type = SL_OPT_ENUM,
     .def = "fail",
     .help = "invalid UTF-8: fail the document, or replace bad bytes with U+FFFD",
     .offset = offsetof(md_config, invalid_utf8),
     .choices = "fail|replace"},
    {0},
};

static int put_utf8(buf *b, uint32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    }
    return buf_add(b, u, n);
}

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* --- input checks --- */

static uint32_t line_of(const char *s, size_t off) {
    uint32_t line = 1;
    for (const char *p = s, *end = s + off; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++) line++;
    return line;
}

/* Copies s with every invalid UTF-8 sequence replaced by U+FFFD, one per bad
 * byte, resuming validation where it stopped so the whole pass is linear. */
static int repair_utf8(const char *s, size_t len, buf *out) {
    size_t i = 0, bad;
    while (!sl_utf8_valid(s + i, len - i, &bad)) {
        if (buf_add(out, s + i, bad) || buf_add(out, "\xEF\xBF\xBD", 3)) return -1;
        i += bad + 1;
    }
    return buf_add(out, s + i, len - i);
}

/* --- front matter --- */

/* Length of the line at s (without its \n), and where the next one starts. */
static size_t line_len(const char *s, size_t n, size_t *next) {
    const char *nl = memchr(s, '\n', n);
    size_t len = nl ? (size_t)(nl - s) : n;
    *next = nl ? len + 1 : n;
    return len;
}

static bool is_fence(const char *s, size_t len, const char *fence) {
    while (len && is_space(s[len - 1])) len--;
    return len == 3 && memcmp(s, fence, 3) == 0;
}

static void trim(const char **s, size_t *n) {
    while (*n && is_space(**s)) (*s)++, (*n)--;
    while (*n && is_space((*s)[*n - 1])) (*n)--;
}

static bool is_key_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* One `key: value` line into metadata. Nested mappings, list items, comments
 * and anything else a flat reader cannot place are skipped, not guessed. */
static int front_matter_line(sl_doc *doc, const char *s, size_t n) {
    if (!n || is_space(s[0]) || s[0] == '#' || s[0] == '-') return 0;
    const char *colon = memchr(s, ':', n);
    if (!colon) return 0;
    const char *key = s, *val = colon + 1;
    size_t klen = (size_t)(colon - s), vlen = n - klen - 1;
    trim(&key, &klen);
    trim(&val, &vlen);
    if (!klen || !vlen || !is_space(colon[1])) return 0; /* YAML wants "key: value" */
    for (size_t i = 0; i < klen; i++)
        if (!is_key_char(key[i])) return 0;
    if (vlen >= 2 && (val[0] == '"' || val[0] == '\'') && val[vlen - 1] == val[0]) val++, vlen -= 2;
    char *k = sl_doc_strndup(doc, key, klen), *v = sl_doc_strndup(doc, val, vlen);
    if (!k || !v) return SL_ENOMEM;
    return sl_doc_meta_set(doc, k, v);
}

/* If s opens with a "---" line closed by a "---" or "..." line, reads its
 * lines into metadata and returns the length to skip; 0 if there is none. */
static int64_t front_matter(sl_doc *doc, const char *s, size_t n) {
    size_t pos, next;
    size_t len = line_len(s, n, &pos);
    if (pos == n || !is_fence(s, len, "---")) return 0;
    size_t body = pos;
    for (; pos < n; pos = next) { /* find the end first: no metadata from an unclosed block */
        len = line_len(s + pos, n - pos, &next);
        next += pos;
        if (is_fence(s + pos, len, "---") || is_fence(s + pos, len, "...")) break;
    }
    if (pos >= n) return 0;
    size_t end = pos;
    for (pos = body; pos < end; pos = next) {
        len = line_len(s + pos, end - pos, &next);
        next += pos;
        while (len && s[pos + len - 1] == '\r') len--;
        int rc = front_matter_line(doc, s + pos, len);
        if (rc < 0) return rc;
    }
    line_len(s + end, n - end, &next);
    return (int64_t)(end + next);
}

/* --- Markdown: md4c's events into elements --- */

typedef struct list_level {
    bool ordered;
    unsigned next; /* the next item's number */
} list_level;

typedef struct walker {
    sl_doc *doc;
    const char *data; /* what positions are measured in */
    size_t len;
    size_t line_off; /* the line cursor: line_no is the line at byte line_off */
    uint32_t line_no;

    /* the element being built */
    buf text;
    sl_elem_type type; /* 0: none open */
    int level;
    buf lang;
    bool fenced;
    const char *first; /* first text pointer into data, NULL until seen */
    size_t first_at;   /* length of `text` when `first` was seen */
    int depth;         /* md4c block nesting */
    int cap_depth;     /* depth of the list, quote or table being captured; -1: none */

    /* inside a capture */
    list_level *lists;
    size_t nlists, clists;
    bool item_fresh; /* a list item's marker is written, its text not yet */
    int rows;        /* rows so far in this table */
    int cells;       /* cells so far in this table row */
    long html_start; /* in an HTML block: where its text starts in `text`, else -1 */

    int err;
} walker;

static bool capturing(const walker *w) { return w->cap_depth >= 0; }

/* The 1-based line of byte off. The cursor only moves forward in practice
 * (md4c reports blocks in order); stepping back is handled, not expected. */
static uint32_t line_at(walker *w, size_t off) {
    if (off >= w->line_off) {
        for (const char *p = w->data + w->line_off, *end = w->data + off;
             (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
            w->line_no++;
    } else {
        for (const char *p = w->data + off, *end = w->data + w->line_off;
             (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
            w->line_no--;
    }
    w->line_off = off;
    return w->line_no;
}

static void open_element(walker *w, sl_elem_type type) {
    w->type = type;
    w->level = 0;
    w->text.len = 0;
    w->lang.len = 0;
    w->fenced = false;
    w->first = NULL;
}

static void trim_element(const walker *w, sl_elem_type type, const char **s, size_t *n) {
    *s = w->text.p;
    *n = w->text.len;
    if (type == SL_EL_CODE) { /* keep the first line's indentation */
        while (*n && ((*s)[0] == '\n' || (*s)[0] == '\r')) (*s)++, (*n)--;
        while (*n && is_space((*s)[*n - 1])) (*n)--;
    } else {
        trim(s, n);
    }
}

static int close_element(walker *w) {
    const char *s;
    size_t n;
    sl_elem_type type = w->type;
    w->type = (sl_elem_type)0;
    if (!type || !w->text.len) return 0;
    trim_element(w, type, &s, &n);
    if (!n) return 0;
    sl_doc *doc = w->doc;
    int i = sl_doc_add_element(doc, type, s, n);
    if (i < 0) return w->err = i;
    size_t idx = (size_t)i;
    int rc = sl_elem_set_page(doc, idx, 1);
    if (!rc && type == SL_EL_HEADING) rc = sl_elem_set_level(doc, idx, w->level);
    if (!rc && type == SL_EL_CODE && w->lang.len) rc = sl_elem_set_attr(doc, idx, "lang", w->lang.p);
    /* a GitHub table always opens with its header row */
    if (!rc && type == SL_EL_TABLE) rc = sl_elem_set_attr(doc, idx, "header", "1");
    if (!rc && w->first) {
        size_t off = (size_t)(w->first - w->data);
        uint32_t line = line_at(w, off);
        if (type == SL_EL_CODE) {
            /* The block starts at its opening fence and any blank lines
             * before the first text (which md4c sends as bare newlines). */
            uint32_t back = w->fenced ? 1 : 0;
            for (size_t k = 0; k < w->first_at; k++) back += w->text.p[k] == '\n';
            if (back >= line) back = line - 1;
            line -= back;
            while (off && w->data[off - 1] != '\n') off--;
            for (; back; back--) {
                off--;
                while (off && w->data[off - 1] != '\n') off--;
            }
        }
        rc = sl_elem_set_source(doc, idx, off, line);
    }
    if (!rc && type == SL_EL_HEADING && w->level == 1 && !sl_doc_meta_get(doc, "title")) {
        char *title = sl_doc_strndup(doc, s, n);
        rc = title ? sl_doc_meta_set(doc, "title", title) : SL_ENOMEM;
    }
    if (rc) w->err = rc;
    return rc;
}

/* Removes tags and comments from an HTML block's text (in place when
 * `write`). Returns the new length, or SIZE_MAX when a tag or comment does
 * not close: then the HTML is not simple and is kept raw. */
static size_t strip_tags(char *s, size_t n, bool write) {
    size_t r = 0, o = 0;
    while (r < n) {
        char c = s[r];
        char d = r + 1 < n ? s[r + 1] : '\0';
        bool tag = c == '<' &&
                   ((d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z') || d == '/' || d == '!' || d == '?');
        if (!tag) {
            if (write) s[o] = s[r];
            o++, r++;
            continue;
        }
        if (n - r >= 4 && memcmp(s + r, "<!--", 4) == 0) {
            const char *end = memmem(s + r + 4, n - r - 4, "-->", 3);
            if (!end) return SIZE_MAX;
            r = (size_t)(end - s) + 3;
        } else {
            const char *gt = memchr(s + r, '>', n - r);
            if (!gt) return SIZE_MAX;
            r = (size_t)(gt - s) + 1;
        }
    }
    return o;
}

static int indent(walker *w, size_t levels) {
    if (levels > MAX_INDENT_LEVEL) levels = MAX_INDENT_LEVEL;
    return buf_fill(&w->text, ' ', 2 * levels);
}

/* Before a block inside a capture: a list item's first block follows its
 * marker; later ones start a new line, indented under the item; blocks in a
 * quote are separated by a blank line. */
static int separate(walker *w) {
    if (w->item_fresh) {
        w->item_fresh = false;
        return 0;
    }
    if (!w->text.len) return 0;
    if (w->nlists) return buf_adds(&w->text, "\n") || indent(w, w->nlists);
    return buf_adds(&w->text, "\n\n");
}

static int start_capture(walker *w, sl_elem_type type) {
    open_element(w, type);
    w->cap_depth = w->depth;
    w->item_fresh = false;
    return 0;
}

static int enter_list(walker *w, bool ordered, unsigned start) {
    if (w->nlists == w->clists) {
        size_t c = w->clists ? w->clists * 2 : 8;
        list_level *l = realloc(w->lists, c * sizeof *l);
        if (!l) return -1;
        w->lists = l;
        w->clists = c;
    }
    w->lists[w->nlists++] = (list_level){.ordered = ordered, .next = start};
    return 0;
}

static int enter_item(walker *w, const MD_BLOCK_LI_DETAIL *li) {
    if (w->text.len && w->text.p[w->text.len - 1] != '\n' && buf_adds(&w->text, "\n")) return -1;
    if (!w->nlists) return 0;
    if (indent(w, w->nlists - 1)) return -1;
    list_level *l = &w->lists[w->nlists - 1];
    char mark[32];
    if (l->ordered) {
        int k = snprintf(mark, sizeof mark, "%u. ", l->next++);
        if (buf_add(&w->text, mark, (size_t)k)) return -1;
    } else if (buf_adds(&w->text, "- ")) {
        return -1;
    }
    if (li && li->is_task && buf_adds(&w->text, li->task_mark == ' ' ? "[ ] " : "[x] ")) return -1;
    w->item_fresh = true;
    return 0;
}

static int on_enter(MD_BLOCKTYPE type, void *detail, void *u) {
    walker *w = u;
    int rc = 0;
    switch (type) {
    case MD_BLOCK_DOC:
    case MD_BLOCK_HR:
    case MD_BLOCK_THEAD:
    case MD_BLOCK_TBODY: break;
    case MD_BLOCK_QUOTE:
        if (!capturing(w)) rc = start_capture(w, SL_EL_QUOTE);
        break;
    case MD_BLOCK_UL:
    case MD_BLOCK_OL:
        if (!capturing(w))
            rc = start_capture(w, SL_EL_LIST);
        else if (!w->nlists) /* a list in a quote: apart from what came before */
            rc = separate(w);
        if (!rc)
            rc = enter_list(w, type == MD_BLOCK_OL,
                            type == MD_BLOCK_OL ? ((MD_BLOCK_OL_DETAIL *)detail)->start : 0);
        break;
    case MD_BLOCK_LI: rc = enter_item(w, detail); break;
    case MD_BLOCK_TABLE:
        if (!capturing(w))
            rc = start_capture(w, SL_EL_TABLE);
        else
            rc = separate(w);
        w->rows = 0;
        break;
    case MD_BLOCK_TR:
        w->cells = 0;
        if (w->rows++) rc = buf_adds(&w->text, "\n");
        break;
    case MD_BLOCK_TH:
    case MD_BLOCK_TD:
        if (w->cells++) rc = buf_adds(&w->text, " | ");
        break;
    case MD_BLOCK_H:
    case MD_BLOCK_P:
    case MD_BLOCK_CODE:
    case MD_BLOCK_HTML:
        if (capturing(w)) {
            rc = separate(w);
        } else {
            open_element(w, type == MD_BLOCK_H      ? SL_EL_HEADING
                            : type == MD_BLOCK_P    ? SL_EL_PARAGRAPH
                            : type == MD_BLOCK_CODE ? SL_EL_CODE
                                                    : SL_EL_OTHER);
        }
        if (type == MD_BLOCK_H && !capturing(w)) w->level = (int)((MD_BLOCK_H_DETAIL *)detail)->level;
        if (type == MD_BLOCK_CODE && !capturing(w)) {
            const MD_BLOCK_CODE_DETAIL *cd = detail;
            w->fenced = cd->fence_char != 0;
            if (cd->lang.size) rc = rc || buf_add(&w->lang, cd->lang.text, cd->lang.size);
        }
        if (type == MD_BLOCK_HTML) w->html_start = (long)w->text.len;
        break;
    }
    w->depth++;
    if (rc && !w->err) w->err = SL_ENOMEM;
    return rc ? -1 : 0;
}

static int on_leave(MD_BLOCKTYPE type, void *detail, void *u) {
    walker *w = u;
    int rc = 0;
    int depth = --w->depth;
    switch (type) {
    case MD_BLOCK_UL:
    case MD_BLOCK_OL:
        if (w->nlists) w->nlists--;
        /* fall through */
    case MD_BLOCK_QUOTE:
    case MD_BLOCK_TABLE:
        if (w->cap_depth == depth) {
            w->cap_depth = -1;
            rc = close_element(w);
        }
        break;
    case MD_BLOCK_LI: w->item_fresh = false; break;
    case MD_BLOCK_HTML:
        if (w->html_start >= 0 && (size_t)w->html_start < w->text.len) {
            size_t at = (size_t)w->html_start;
            if (strip_tags(w->text.p + at, w->text.len - at, false) != SIZE_MAX)
                w->text.len = at + strip_tags(w->text.p + at, w->text.len - at, true);
        }
        w->html_start = -1;
        if (!capturing(w)) rc = close_element(w);
        break;
    case MD_BLOCK_H:
    case MD_BLOCK_P:
    case MD_BLOCK_CODE:
        if (!capturing(w)) rc = close_element(w);
        break;
    default: break;
    }
    return rc ? -1 : 0;
}

static int on_span(MD_SPANTYPE type, void *detail, void *u) { return 0; }

/* Entities md4c recognised, decoded when common; others stay as written. */
static int put_entity(buf *b, const char *s, size_t n) {
    static const struct {
        const char *name, *text;
    } named[] = {
        {"&amp;", "&"},
        {"&lt;", "<"},
        {"&gt;", ">"},
        {"&quot;", "\""},
        {"&apos;", "'"},
        {"&nbsp;", "\xC2\xA0"},
        {"&copy;", "\xC2\xA9"},
        {"&reg;", "\xC2\xAE"},
        {"&trade;", "\xE2\x84\xA2"},
        {"&mdash;", "\xE2\x80\x94"},
        {"&ndash;", "\xE2\x80\x93"},
        {"&hellip;", "\xE2\x80\xA6"},
        {"&laquo;", "\xC2\xAB"},
        {"&raquo;", "\xC2\xBB"},
        {"&euro;", "\xE2\x82\xAC"},
    };
    if (n >= 4 && s[1] == '#') {
        bool hex = s[2] == 'x' || s[2] == 'X';
        uint32_t cp = 0;
        size_t i = hex ? 3 : 2;
        if (i >= n - 1) return buf_add(b, s, n);
        for (; i < n - 1; i++) {
            char c = s[i];
            uint32_t d = c >= '0' && c <= '9'          ? (uint32_t)(c - '0')
                         : hex && c >= 'a' && c <= 'f' ? (uint32_t)(c - 'a' + 10)
                         : hex && c >= 'A' && c <= 'F' ? (uint32_t)(c - 'A' + 10)
                                                       : 99;
            if (d == 99) return buf_add(b, s, n);
            if (cp <= 0x10FFFF) cp = cp * (hex ? 16 : 10) + d;
        }
        if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
        return put_utf8(b, cp);
    }
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (strlen(named[i].name) == n && memcmp(named[i].name, s, n) == 0) return buf_adds(b, named[i].text);
    return buf_add(b, s, n);
}

static int on_text(MD_TEXTTYPE type, const MD_CHAR *s, MD_SIZE n, void *u) {
    walker *w = u;
    if (!w->type) return 0;
    if (!w->first && s >= w->data && s < w->data + w->len) w->first = s, w->first_at = w->text.len;
    w->item_fresh = false;
    int rc;
    switch (type) {
    case MD_TEXT_NULLCHAR: rc = buf_adds(&w->text, "\xEF\xBF\xBD"); break;
    case MD_TEXT_BR: rc = buf_adds(&w->text, "\n"); break;
    case MD_TEXT_SOFTBR: rc = buf_adds(&w->text, " "); break;
    case MD_TEXT_ENTITY: rc = put_entity(&w->text, s, n); break;
    case MD_TEXT_HTML: /* inline tags are markup; HTML blocks are kept and stripped on leaving */
        rc = w->html_start >= 0 ? buf_add(&w->text, s, n) : 0;
        break;
    default: rc = buf_add(&w->text, s, n); break;
    }
    if (rc && !w->err) w->err = SL_ENOMEM;
    return rc ? -1 : 0;
}

static int parse_markdown(sl_call *call, sl_doc *doc, const char *data, size_t len, size_t skip) {
    if (len - skip > (size_t)(MD_SIZE)-1)
        return sl_fail(call, SL_EBADINPUT, "too large for the Markdown parser (%zu bytes, 4 GiB at most)",
                       len);
    walker w = {.doc = doc, .data = data, .len = len, .line_no = 1, .cap_depth = -1, .html_start = -1};
    MD_PARSER parser = {
        .abi_version = 0,
        .flags = MD_DIALECT_GITHUB,
        .enter_block = on_enter,
        .leave_block = on_leave,
        .enter_span = on_span,
        .leave_span = on_span,
        .text = on_text,
    };
    int rc = md_parse(data + skip, (MD_SIZE)(len - skip), &parser, &w);
    free(w.text.p);
    free(w.lang.p);
    free(w.lists);
    if (w.err) return sl_fail(call, w.err, "%s while parsing Markdown", sl_strerror(w.err));
    if (rc) return sl_fail(call, SL_ENOMEM, "the Markdown parser failed (out of memory)");
    return 0;
}

/* --- plain text: paragraphs between blank lines --- */

static int add_paragraph(sl_doc *doc, buf *b, size_t off, uint32_t line) {
    const char *s = b->p;
    size_t n = b->len;
    trim(&s, &n);
    b->len = 0;
    if (!n) return 0;
    int i = sl_doc_add_element(doc, SL_EL_PARAGRAPH, s, n);
    if (i < 0) return i;
    int rc = sl_elem_set_page(doc, (size_t)i, 1);
    return rc ? rc : sl_elem_set_source(doc, (size_t)i, off, line);
}

static int parse_plain(sl_call *call, sl_doc *doc, const char *data, size_t len, size_t skip) {
    buf b = {0};
    size_t pos = skip, next, start = 0;
    uint32_t line = 1, start_line = 0;
    int rc = 0;
    for (; pos < len && !rc; pos = next, line++) {
        size_t n = line_len(data + pos, len - pos, &next);
        next += pos;
        size_t k = 0;
        while (k < n && is_space(data[pos + k])) k++;
        if (k == n) { /* a blank line ends the paragraph */
            if (start_line) rc = add_paragraph(doc, &b, start, start_line);
            start_line = 0;
            continue;
        }
        if (!start_line) start = pos, start_line = line;
        while (n && data[pos + n - 1] == '\r') n--;
        if ((b.len && buf_adds(&b, "\n")) || buf_add(&b, data + pos, n)) rc = SL_ENOMEM;
    }
    if (!rc && start_line) rc = add_paragraph(doc, &b, start, start_line);
    free(b.p);
    if (rc) return sl_fail(call, rc, "%s while splitting text into paragraphs", sl_strerror(rc));
    return 0;
}

/* --- the plugin --- */

static int md_init(sl_instance *inst, const void *config, void **state) {
    const md_config *cfg = config;
    const char *mode = cfg->invalid_utf8 ? cfg->invalid_utf8 : "fail";
    if (strcmp(mode, "fail") != 0 && strcmp(mode, "replace") != 0)
        return sl_instance_fail(inst, SL_EFATAL, "invalid_utf8 must be fail or replace, not '%s'", mode);
    md_state *st = calloc(1, sizeof *st);
    if (!st) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    st->front_matter = cfg->front_matter;
    st->replace_invalid = strcmp(mode, "replace") == 0;
    *state = st;
    return 0;
}

static void md_fini(void *state) { free(state); }

static int md_parse_doc(sl_call *call, sl_doc *doc) {
    const md_state *st = sl_call_state(call);
    size_t len;
    const char *data = sl_doc_data(doc, &len);
    if (!data || !len) return sl_fail(call, SL_EBADINPUT, "empty file");
    const char *nul = memchr(data, '\0', len);
    if (nul) return sl_fail(call, SL_EBADINPUT, "binary data: NUL byte at offset %zu", (size_t)(nul - data));

    const char *mt = sl_doc_media_type(doc);
    bool plain = mt && strncmp(mt, "text/plain", 10) == 0;
    /* own: a copy, when the input needs one (buf keeps a NUL after it) */
    buf own = {0};
    size_t bad;
    if (!sl_utf8_valid(data, len, &bad)) {
        if (!st || !st->replace_invalid)
            return sl_fail(call, SL_EBADINPUT, "invalid UTF-8 at byte %zu (line %u)", bad,
                           line_of(data, bad));
        if (repair_utf8(data, len, &own)) {
            free(own.p);
            return sl_fail(call, SL_ENOMEM, "out of memory repairing UTF-8");
        }
        data = own.p;
        len = own.len;
    } else if (!plain && data[len - 1] != '\n' && data[len - 1] != '\r') {
        /* md4c 0.4.8 (Debian's) reads one byte past the end of a document
         * whose last line is digits with no line end ("...\n2023"): an
         * ordered-list check. A mapped file whose size is a multiple of the
         * page size then faults. Such documents (without a final line end:
         * the few) are parsed from a copy with a NUL after it. */
        if (buf_add(&own, data, len)) return sl_fail(call, SL_ENOMEM, "out of memory copying the input");
        data = own.p;
    }

    size_t before = sl_doc_element_count(doc);
    size_t bom = len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    int rc;
    if (plain) {
        rc = parse_plain(call, doc, data, len, bom);
    } else {
        int64_t skip = st && st->front_matter ? front_matter(doc, data + bom, len - bom) : 0;
        if (skip < 0)
            rc = sl_fail(call, (int)skip, "%s reading front matter", sl_strerror((int)skip));
        else
            rc = parse_markdown(call, doc, data, len, bom + (size_t)skip);
    }
    free(own.p);
    if (rc) return rc;
    if (sl_doc_element_count(doc) == before) return sl_fail(call, SL_EBADINPUT, "no text");
    return sl_doc_set_page_count(doc, 1);
}

static const char *const media_types[] = {"text/markdown", "text/plain", NULL};

static const sl_plugin parse_markdown_plugin = {
    SL_PLUGIN_HEADER,
    .name = "parse-markdown",
    .version = "1.1.0",
    .summary = "Markdown (CommonMark + GitHub tables) and plain text into headings, paragraphs, lists, code, "
               "tables",
    .role = SL_ROLE_PARSER,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(md_config),
    .media_types = media_types,
    .init = md_init,
    .fini = md_fini,
    .parse = md_parse_doc,
};

SL_PLUGIN_EXPORT(parse_markdown_plugin)
