/* docx.c - WordprocessingML (DOCX) into elements.
 *
 * Parts are read each once with the streaming reader: styles.xml
 * (which paragraph styles are headings: a name "heading N" or "Title", or an
 * outline level, followed through basedOn), numbering.xml (which lists are
 * numbered and where they start), the main document part named by the
 * package's officeDocument relationship, then its notes, headers and footers.
 *
 * The document is a flat run of paragraphs and tables. A paragraph becomes a
 * heading (level from its style or its own outline level, 1..6; deeper ones
 * are 6), a title, code (a "Source Code"/"HTML Preformatted" style), a quote
 * ("Block Text"/"Quote"), a list item (it has numPr), or a paragraph.
 * Consecutive list items make one list element, one item a line, "- " or
 * "N. ", indented two spaces a level; consecutive code or quote paragraphs
 * likewise make one element. A top-level table is one element: rows on
 * their own lines, cells joined by " | ", a cell's paragraphs (and any table
 * nested in it) joined by spaces.
 *
 * Text is the text of w:t runs (deleted text and field codes are different
 * elements and so left out), tabs as tabs, breaks as newlines, hyperlinks as
 * their text. mc:Fallback content is skipped: it repeats its mc:Choice.
 * Word has no fixed pages, so every element is on page 1.
 *
 * After the body come the parts around it, read the same way, each element
 * with attr role: the footnotes part (role=footnote) and the endnotes part
 * (role=endnote), each note's elements with attr note = its w:id (the id
 * the body's w:footnoteReference names; separators and continuation notices
 * are left out); then the header parts (role=header) and the footer parts
 * (role=footer) the body's sections reference (w:headerReference,
 * w:footerReference through the document's relationships), in the order
 * they are first referenced. A part referenced by several sections is read
 * once, and a header or footer element whose text and type repeat an
 * earlier one of the same role (the same header written again for the first
 * page or another section) is left out. Notes go after the body rather than
 * where they are referenced so that a paragraph's text stays whole for the
 * chunker; the note id links them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "office.h"

enum { K_BODY, K_HEADING, K_TITLE, K_CODE, K_QUOTE };

typedef struct style {
    char id[64];
    char based[64];
    int kind;    /* from the name alone; K_BODY when it says nothing */
    int level;   /* K_HEADING: 1..9 */
    int outline; /* w:outlineLvl + 1, 0 when unset */
} style;

typedef struct abstract_num {
    int id;
    unsigned char ordered[9];
    int start[9];
} abstract_num;

typedef struct num {
    int id, abstract;
    int count[9];
} num;

typedef struct docx {
    office *o;
    style *styles;
    size_t nstyles;
    abstract_num *abs;
    size_t nabs;
    num *nums;
    size_t nnums;
    size_t hf_kept; /* header and footer elements added */
    size_t hf_from; /* the index of the first of them */
} docx;

static int grow(void **v, size_t n, size_t *cap, size_t size) {
    if (n < *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 32;
    void *p = realloc(*v, ncap * size);
    if (!p) return -1;
    *v = p;
    *cap = ncap;
    return 0;
}

/* The kind a style's name gives it, if any. */
static int kind_of_name(const char *name, int *level) {
    if (strncasecmp(name, "heading ", 8) == 0 && name[8] >= '1' && name[8] <= '9' && !name[9]) {
        *level = name[8] - '0';
        return K_HEADING;
    }
    if (strcasecmp(name, "title") == 0) return K_TITLE;
    if (strcasecmp(name, "source code") == 0 || strcasecmp(name, "html preformatted") == 0 ||
        strcasecmp(name, "code") == 0)
        return K_CODE;
    if (strcasecmp(name, "block text") == 0 || strcasecmp(name, "quote") == 0 ||
        strcasecmp(name, "intense quote") == 0)
        return K_QUOTE;
    return K_BODY;
}

static int read_styles(docx *d, const char *entry) {
    office *o = d->o;
    ox_reader x;
    char *data;
    int rc = office_part(o, entry, true, &x, &data);
    if (rc) return rc < 0 ? rc : 0;
    size_t cap = 0;
    style *cur = NULL;
    char v[256];
    while (office_next(o, &x, &rc)) {
        int type = ox_type(&x);
        const char *name = ox_name(&x);
        if (ox_is_start(type, name, "style")) {
            cur = NULL;
            if (!ox_attr(&x, "type", v, sizeof v) || strcmp(v, "paragraph") != 0) continue;
            if (grow((void **)&d->styles, d->nstyles, &cap, sizeof *d->styles)) {
                rc = sl_fail(o->call, SL_ENOMEM, "%s: out of memory", entry);
                break;
            }
            cur = &d->styles[d->nstyles++];
            memset(cur, 0, sizeof *cur);
            ox_attr(&x, "styleId", cur->id, sizeof cur->id);
            if (ox_empty(&x)) cur = NULL;
        } else if (ox_is_end(type, name, "style")) {
            cur = NULL;
        } else if (cur && type == XML_READER_TYPE_ELEMENT) {
            if (strcmp(name, "name") == 0 && ox_attr(&x, "val", v, sizeof v))
                cur->kind = kind_of_name(v, &cur->level);
            else if (strcmp(name, "basedOn") == 0)
                ox_attr(&x, "val", cur->based, sizeof cur->based);
            else if (strcmp(name, "outlineLvl") == 0 && ox_attr(&x, "val", v, sizeof v))
                cur->outline = atoi(v) >= 0 && atoi(v) <= 8 ? atoi(v) + 1 : 0;
        }
    }
    ox_part_close(&x, data);
    return rc;
}

static const style *find_style(const docx *d, const char *id) {
    for (size_t i = 0; i < d->nstyles; i++)
        if (strcmp(d->styles[i].id, id) == 0) return &d->styles[i];
    return NULL;
}

/* A paragraph style's kind and heading level, through its basedOn chain
 * (at most 16 steps: a loop in a hostile file ends there). */
static int style_kind(const docx *d, const char *id, int *level) {
    const style *s = find_style(d, id);
    for (int steps = 0; s && steps < 16; steps++) {
        if (s->kind != K_BODY) {
            *level = s->level;
            return s->kind;
        }
        if (s->outline) {
            *level = s->outline;
            return K_HEADING;
        }
        if (!s->based[0]) break;
        s = find_style(d, s->based);
    }
    /* A styleId like "Heading2" with no styles.xml to say so. */
    if (strncasecmp(id, "heading", 7) == 0 && id[7] >= '1' && id[7] <= '9' && !id[8]) {
        *level = id[7] - '0';
        return K_HEADING;
    }
    if (strcasecmp(id, "title") == 0) return K_TITLE;
    return K_BODY;
}

static int read_numbering(docx *d, const char *entry) {
    office *o = d->o;
    ox_reader x;
    char *data;
    int rc = office_part(o, entry, true, &x, &data);
    if (rc) return rc < 0 ? rc : 0;
    size_t cabs = 0, cnums = 0;
    abstract_num *a = NULL;
    num *n = NULL;
    int lvl = -1;
    char v[64];
    while (office_next(o, &x, &rc)) {
        int type = ox_type(&x);
        const char *name = ox_name(&x);
        if (type == XML_READER_TYPE_END_ELEMENT) {
            if (strcmp(name, "abstractNum") == 0) a = NULL;
            if (strcmp(name, "num") == 0) n = NULL;
            continue;
        }
        if (type != XML_READER_TYPE_ELEMENT) continue;
        if (strcmp(name, "abstractNum") == 0) {
            if (grow((void **)&d->abs, d->nabs, &cabs, sizeof *d->abs)) {
                rc = sl_fail(o->call, SL_ENOMEM, "%s: out of memory", entry);
                break;
            }
            a = &d->abs[d->nabs++];
            memset(a, 0, sizeof *a);
            a->id = ox_attr(&x, "abstractNumId", v, sizeof v) ? atoi(v) : -1;
            for (int i = 0; i < 9; i++) a->start[i] = 1;
            if (ox_empty(&x)) a = NULL;
        } else if (strcmp(name, "num") == 0) {
            if (grow((void **)&d->nums, d->nnums, &cnums, sizeof *d->nums)) {
                rc = sl_fail(o->call, SL_ENOMEM, "%s: out of memory", entry);
                break;
            }
            n = &d->nums[d->nnums++];
            memset(n, 0, sizeof *n);
            n->id = ox_attr(&x, "numId", v, sizeof v) ? atoi(v) : -1;
            n->abstract = -1;
            if (ox_empty(&x)) n = NULL;
        } else if (n && strcmp(name, "abstractNumId") == 0 && ox_attr(&x, "val", v, sizeof v)) {
            n->abstract = atoi(v);
        } else if (a && strcmp(name, "lvl") == 0) {
            lvl = ox_attr(&x, "ilvl", v, sizeof v) ? atoi(v) : -1;
            if (lvl < 0 || lvl > 8) lvl = -1;
        } else if (a && lvl >= 0 && strcmp(name, "numFmt") == 0 && ox_attr(&x, "val", v, sizeof v)) {
            a->ordered[lvl] = strcmp(v, "bullet") != 0 && strcmp(v, "none") != 0;
        } else if (a && lvl >= 0 && strcmp(name, "start") == 0 && ox_attr(&x, "val", v, sizeof v)) {
            a->start[lvl] = atoi(v);
        }
    }
    ox_part_close(&x, data);
    return rc;
}

/* The marker of the next item of list numId at level ilvl: "- " or "N. ". */
static void list_marker(docx *d, int num_id, int ilvl, char *out, size_t outlen) {
    num *n = NULL;
    for (size_t i = 0; i < d->nnums; i++)
        if (d->nums[i].id == num_id) n = &d->nums[i];
    const abstract_num *a = NULL;
    for (size_t i = 0; n && i < d->nabs; i++)
        if (d->abs[i].id == n->abstract) a = &d->abs[i];
    if (!n || !a || !a->ordered[ilvl]) {
        snprintf(out, outlen, "- ");
        return;
    }
    if (!n->count[ilvl])
        n->count[ilvl] = a->start[ilvl];
    else
        n->count[ilvl]++;
    for (int l = ilvl + 1; l < 9; l++) n->count[l] = 0;
    snprintf(out, outlen, "%d. ", n->count[ilvl]);
}

/* --- the document walk --- */

typedef struct walk {
    docx *d;
    buf para;  /* the paragraph being read */
    buf block; /* a list, code or quote run being gathered, or a table */
    sl_elem_type block_type;
    int in_p; /* 1 inside a top-level w:p; more inside text-box paragraphs */
    int in_t, in_r;
    int skip_depth; /* inside mc:Fallback: its depth, else -1 */
    char pstyle[64];
    int outline, num_id, ilvl;
    int tbl; /* table nesting */
    int rows, cells, cell_paras;
    const char *role; /* NULL in the body; "footnote", "endnote", "header", "footer" */
    char note[32];    /* the footnote or endnote being read: its w:id */
    buf *refs;        /* the body's header and footer references, in order: "h"/"f" + r:id, NUL after each */
    int nrefs;
} walk;

/* Header and footer references gathered (each section names up to six);
 * past this many, the rest are left out. */
#define MAX_REFS 256

/* Header and footer elements kept (the rest are left out): the check that
 * each text comes once compares with every one kept before. */
#define MAX_HF_ELEMENTS 4096

static bool ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Whether text s[0..n) repeats an earlier header/footer element of the same
 * role and type (a header written again for another section or the first
 * page), whitespace at either end aside. */
static bool repeated(office *o, size_t from, sl_elem_type type, const char *role, const char *s, size_t n) {
    while (n && ws(*s)) s++, n--;
    while (n && ws(s[n - 1])) n--;
    for (size_t j = from, count = sl_doc_element_count(o->doc); j < count; j++) {
        const char *r = sl_element_attr(o->doc, j, "role");
        if (!r || strcmp(r, role) != 0 || sl_element_type(o->doc, j) != type) continue;
        size_t m;
        const char *u = sl_element_text(o->doc, j, &m);
        while (m && ws(*u)) u++, m--;
        while (m && ws(u[m - 1])) m--;
        if (m == n && memcmp(s, u, n) == 0) return true;
    }
    return false;
}

/* office_emit, with the element's role (and note id) outside the body; a
 * header or footer text already kept is not added again. 0, or a failure. */
static int emit(walk *w, sl_elem_type type, int level, const char *s, size_t n) {
    office *o = w->d->o;
    bool hf = w->role && (strcmp(w->role, "header") == 0 || strcmp(w->role, "footer") == 0);
    if (hf && (w->d->hf_kept >= MAX_HF_ELEMENTS || repeated(o, w->d->hf_from, type, w->role, s, n))) return 0;
    int i = office_emit(o, type, level, 1, s, n);
    if (i < 0 || !w->role) return i < -1 ? i : 0;
    if (hf) w->d->hf_kept++;
    int rc = sl_elem_set_attr(o->doc, (size_t)i, "role", w->role);
    if (!rc && w->note[0]) rc = sl_elem_set_attr(o->doc, (size_t)i, "note", w->note);
    return rc ? sl_fail(o->call, rc, "%s", sl_strerror(rc)) : 0;
}

static int flush_block(walk *w) {
    int rc = 0;
    if (w->block_type && w->block.len) rc = emit(w, w->block_type, 0, w->block.p, w->block.len);
    w->block.len = 0;
    w->block_type = 0;
    return rc;
}

static bool blank(const buf *b) {
    for (size_t i = 0; i < b->len; i++)
        if (b->p[i] != ' ' && b->p[i] != '\t' && b->p[i] != '\n' && b->p[i] != '\r') return false;
    return true;
}

/* Appends the paragraph to the current table cell, on one line. */
static int cell_paragraph(walk *w) {
    if (blank(&w->para)) return 0;
    if (w->cell_paras++ && buf_adds(&w->block, " ")) return -1;
    for (size_t i = 0; i < w->para.len; i++)
        if (w->para.p[i] == '\n' || w->para.p[i] == '\r' || w->para.p[i] == '\t') w->para.p[i] = ' ';
    const char *s = w->para.p;
    size_t n = w->para.len;
    while (n && *s == ' ') s++, n--;
    while (n && s[n - 1] == ' ') n--;
    return buf_add(&w->block, s, n);
}

static int end_paragraph(walk *w) {
    if (w->tbl) return cell_paragraph(w) ? SL_ENOMEM : 0;
    if (blank(&w->para)) return 0;
    int level = 0;
    int kind = w->pstyle[0] ? style_kind(w->d, w->pstyle, &level) : K_BODY;
    if (w->outline) kind = K_HEADING, level = w->outline;
    if (kind == K_HEADING || kind == K_TITLE) {
        int rc = flush_block(w);
        if (rc) return rc;
        return emit(w, kind == K_TITLE ? SL_EL_TITLE : SL_EL_HEADING, level > 6 ? 6 : level, w->para.p,
                    w->para.len);
    }
    sl_elem_type type = w->num_id > 0     ? SL_EL_LIST
                        : kind == K_CODE  ? SL_EL_CODE
                        : kind == K_QUOTE ? SL_EL_QUOTE
                                          : SL_EL_PARAGRAPH;
    if (type != w->block_type) {
        int rc = flush_block(w);
        if (rc) return rc;
    }
    if (type == SL_EL_PARAGRAPH) return emit(w, SL_EL_PARAGRAPH, 0, w->para.p, w->para.len);
    w->block_type = type;
    int bad = w->block.len ? buf_adds(&w->block, "\n") : 0;
    if (type == SL_EL_LIST) {
        char marker[32];
        int ilvl = w->ilvl < 0 ? 0 : w->ilvl > 8 ? 8 : w->ilvl;
        list_marker(w->d, w->num_id, ilvl, marker, sizeof marker);
        bad |= buf_fill(&w->block, ' ', (size_t)ilvl * 2);
        bad |= buf_adds(&w->block, marker);
        const char *s = w->para.p;
        size_t n = w->para.len;
        while (n && (*s == ' ' || *s == '\t')) s++, n--;
        bad |= buf_add(&w->block, s, n);
    } else {
        bad |= buf_add(&w->block, w->para.p, w->para.len);
    }
    return bad ? SL_ENOMEM : 0;
}

static int on_element(walk *w, ox_reader *x, const char *name) {
    char v[64];
    bool empty = ox_empty(x);
    switch (name[0]) {
    case 'p':
        if (strcmp(name, "p") == 0) {
            if (w->in_p) {
                if (!empty) w->in_p++;
                return buf_adds(&w->para, " ") ? SL_ENOMEM : 0;
            }
            w->para.len = 0;
            w->pstyle[0] = '\0';
            w->outline = 0;
            w->num_id = 0;
            w->ilvl = 0;
            if (!empty) w->in_p = 1;
            return 0;
        }
        if (w->in_p == 1 && strcmp(name, "pStyle") == 0) ox_attr(x, "val", w->pstyle, sizeof w->pstyle);
        return 0;
    case 'o':
        if (w->in_p == 1 && strcmp(name, "outlineLvl") == 0 && ox_attr(x, "val", v, sizeof v))
            w->outline = atoi(v) >= 0 && atoi(v) <= 8 ? atoi(v) + 1 : 0;
        return 0;
    case 'n':
        if (w->in_p == 1 && strcmp(name, "numId") == 0 && ox_attr(x, "val", v, sizeof v)) w->num_id = atoi(v);
        if (w->in_r && strcmp(name, "noBreakHyphen") == 0) return buf_adds(&w->para, "-") ? SL_ENOMEM : 0;
        return 0;
    case 'i':
        if (w->in_p == 1 && strcmp(name, "ilvl") == 0 && ox_attr(x, "val", v, sizeof v)) w->ilvl = atoi(v);
        return 0;
    case 't':
        if (strcmp(name, "t") == 0) {
            w->in_t = !empty;
        } else if (w->in_r && strcmp(name, "tab") == 0) {
            return buf_adds(&w->para, "\t") ? SL_ENOMEM : 0;
        } else if (strcmp(name, "tbl") == 0 && !empty) {
            if (w->tbl++ == 0) {
                int rc = flush_block(w);
                if (rc) return rc;
                w->block_type = SL_EL_TABLE;
                w->rows = 0;
            }
        } else if (strcmp(name, "tr") == 0 && w->tbl) {
            if (w->tbl == 1) {
                if (w->rows++ && buf_adds(&w->block, "\n")) return SL_ENOMEM;
                w->cells = 0;
            }
        } else if (strcmp(name, "tc") == 0 && w->tbl) {
            if (w->tbl == 1) {
                if (w->cells++ && buf_adds(&w->block, " | ")) return SL_ENOMEM;
                w->cell_paras = 0;
            }
        }
        return 0;
    case 'r':
        if (strcmp(name, "r") == 0) w->in_r = !empty;
        return 0;
    case 'b':
    case 'c':
        if (w->in_r && (strcmp(name, "br") == 0 || strcmp(name, "cr") == 0))
            return buf_adds(&w->para, "\n") ? SL_ENOMEM : 0;
        return 0;
    case 'F':
        if (strcmp(name, "Fallback") == 0 && !empty) w->skip_depth = ox_depth(x);
        return 0;
    case 'f':
    case 'e':
        if (w->role && (strcmp(name, "footnote") == 0 || strcmp(name, "endnote") == 0)) {
            /* Word's separator lines and continuation notices are no note. */
            const char *t = ox_attr(x, "type", v, sizeof v);
            if (t && strcmp(t, "normal") != 0) {
                if (!empty) w->skip_depth = ox_depth(x);
                return 0;
            }
            if (!ox_attr(x, "id", w->note, sizeof w->note)) w->note[0] = '\0';
            return 0;
        }
        if (w->refs && w->nrefs < MAX_REFS && strcmp(name, "footerReference") == 0 &&
            ox_attr_ns(x, "id", v + 1, sizeof v - 1)) {
            v[0] = 'f';
            w->nrefs++;
            return buf_add(w->refs, v, strlen(v) + 1) ? SL_ENOMEM : 0;
        }
        return 0;
    case 'h':
        if (w->refs && w->nrefs < MAX_REFS && strcmp(name, "headerReference") == 0 &&
            ox_attr_ns(x, "id", v + 1, sizeof v - 1)) {
            v[0] = 'h';
            w->nrefs++;
            return buf_add(w->refs, v, strlen(v) + 1) ? SL_ENOMEM : 0;
        }
        return 0;
    default: return 0;
    }
}

static int on_end(walk *w, ox_reader *x, const char *name) {
    if (w->skip_depth >= 0) {
        if (ox_depth(x) == w->skip_depth) w->skip_depth = -1;
        return 0;
    }
    if (strcmp(name, "t") == 0)
        w->in_t = 0;
    else if (strcmp(name, "r") == 0)
        w->in_r = 0;
    else if (strcmp(name, "p") == 0 && w->in_p) {
        if (--w->in_p == 0) return end_paragraph(w);
    } else if (strcmp(name, "tbl") == 0 && w->tbl) {
        if (--w->tbl == 0) return flush_block(w);
        if (w->in_p == 0 && buf_adds(&w->block, " ")) return SL_ENOMEM;
    } else if (w->role && (strcmp(name, "footnote") == 0 || strcmp(name, "endnote") == 0)) {
        int rc = flush_block(w); /* one note's list is not the next one's */
        w->note[0] = '\0';
        return rc;
    }
    return 0;
}

/* Reads a part of paragraphs and tables: the main document (role NULL; it
 * gathers the header and footer references into refs), or a footnotes,
 * endnotes, header or footer part whose elements get attr role. */
static int read_part(docx *d, const char *entry, bool optional, const char *role, buf *refs) {
    office *o = d->o;
    ox_reader x;
    char *data;
    int rc = office_part(o, entry, optional, &x, &data);
    if (rc) return rc < 0 ? rc : 0;
    walk w = {.d = d, .skip_depth = -1, .role = role, .refs = refs};
    while (office_next(o, &x, &rc)) {
        int type = ox_type(&x);
        if (type == XML_READER_TYPE_ELEMENT) {
            if (w.skip_depth < 0) rc = on_element(&w, &x, ox_name(&x));
            /* an empty element is never ended: nothing to undo */
        } else if (type == XML_READER_TYPE_END_ELEMENT) {
            rc = on_end(&w, &x, ox_name(&x));
        } else if (w.in_t && w.skip_depth < 0 &&
                   (type == XML_READER_TYPE_TEXT || type == XML_READER_TYPE_SIGNIFICANT_WHITESPACE ||
                    type == XML_READER_TYPE_WHITESPACE)) {
            if (office_text(&w.para, ox_value(&x))) rc = SL_ENOMEM;
        }
        if (rc == SL_ENOMEM) rc = sl_fail(o->call, SL_ENOMEM, "%s: out of memory", entry);
    }
    if (!rc) rc = flush_block(&w);
    free(w.para.p);
    free(w.block.p);
    ox_part_close(&x, data);
    return rc;
}

int office_docx(office *o) {
    office_rels root, rels;
    int rc = office_rels_read(o, "", &root);
    if (rc) return rc;
    const office_rel *main = office_rel_by_type(&root, "officeDocument");
    char entry[512];
    snprintf(entry, sizeof entry, "%s", main ? main->target : "word/document.xml");
    office_rels_free(&root);
    if ((rc = office_rels_read(o, entry, &rels))) return rc;
    const office_rel *st = office_rel_by_type(&rels, "styles");
    const office_rel *nb = office_rel_by_type(&rels, "numbering");
    docx d = {.o = o};
    rc = st ? read_styles(&d, st->target) : 0;
    if (!rc && nb) rc = read_numbering(&d, nb->target);
    buf refs = {0};
    if (!rc) rc = read_part(&d, entry, false, NULL, &refs);
    /* After the body: footnotes, endnotes, then each header and each footer
     * part once, in the order the body's sections first name them. */
    const office_rel *fn = office_rel_by_type(&rels, "footnotes");
    const office_rel *en = office_rel_by_type(&rels, "endnotes");
    if (!rc && fn) rc = read_part(&d, fn->target, true, "footnote", NULL);
    if (!rc && en) rc = read_part(&d, en->target, true, "endnote", NULL);
    d.hf_from = sl_doc_element_count(o->doc);
    for (int pass = 0; pass < 2 && !rc; pass++) {
        char want = pass == 0 ? 'h' : 'f';
        for (size_t at = 0; !rc && at < refs.len; at += strlen(refs.p + at) + 1) {
            const char *ref = refs.p + at;
            if (ref[0] != want) continue;
            const office_rel *rel = office_rel_by_id(&rels, ref + 1);
            if (!rel || !rel->target[0] || strcmp(rel->type, pass == 0 ? "header" : "footer") != 0) continue;
            bool seen = false; /* an earlier reference to the same part */
            for (size_t b = 0; !seen && b < at; b += strlen(refs.p + b) + 1) {
                const office_rel *r = refs.p[b] == want ? office_rel_by_id(&rels, refs.p + b + 1) : NULL;
                seen = r && strcmp(r->target, rel->target) == 0;
            }
            if (!seen) rc = read_part(&d, rel->target, true, pass == 0 ? "header" : "footer", NULL);
        }
    }
    free(refs.p);
    office_rels_free(&rels);
    free(d.styles);
    free(d.abs);
    free(d.nums);
    if (!rc) {
        rc = sl_doc_set_page_count(o->doc, 1);
        if (rc) rc = sl_fail(o->call, rc, "%s", sl_strerror(rc));
    }
    return rc;
}
