/* pptx.c - PresentationML (PPTX) into elements, slide by slide.
 *
 * Slides come in the order of presentation.xml's slide list (p:sldIdLst,
 * through the presentation's relationships), not the order of the zip or of
 * the file names. Each slide is page N (its 1-based position), and its
 * elements are, in order:
 *
 *   - the title placeholder's text (title or ctrTitle) as a level-1 heading;
 *   - each other shape's text in the order of the shape tree (groups
 *     included): paragraphs with a bullet (a:buChar, a:buAutoNum) gathered
 *     into one list element per shape, indented two spaces per a:pPr lvl;
 *     others as paragraphs; date, footer, slide-number and header
 *     placeholders left out; a paragraph of a body or content placeholder
 *     has its master's bullet unless it says a:buNone;
 *   - tables (a:tbl) as table elements, rows on lines, cells " | ";
 *   - with `notes` on, the speaker notes (the notes slide's body
 *     placeholder) as one paragraph with attr role=notes.
 *
 * mc:Fallback content is skipped: it repeats its mc:Choice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "office.h"

/* An element of the slide waiting for the title, which is written first. */
typedef struct pending {
    sl_elem_type type;
    size_t off, len;
} pending;

typedef struct slide {
    office *o;
    uint32_t page;
    bool notes_only;              /* reading a notes slide: only body placeholders count */
    buf title, para, text, group; /* text: pending elements' bytes; group: a list or table being built */
    sl_elem_type group_type;
    pending *v;
    size_t n, cap;
    /* the shape being read */
    int skip_shape; /* this shape's text is left out */
    bool is_title;
    bool is_body; /* a body or content placeholder: bullets come from the master */
    bool in_t, bullet, no_bullet;
    int lvl;
    int skip_depth; /* inside mc:Fallback: its depth, else -1 */
    int tbl, rows, cells, cell_paras;
} slide;

static int push(slide *s, sl_elem_type type, const char *p, size_t n) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        pending *v = realloc(s->v, cap * sizeof *v);
        if (!v) return SL_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (pending){type, s->text.len, n};
    return buf_add(&s->text, p, n) ? SL_ENOMEM : 0;
}

static int flush_group(slide *s) {
    int rc = 0;
    if (s->group_type && s->group.len) rc = push(s, s->group_type, s->group.p, s->group.len);
    s->group.len = 0;
    s->group_type = 0;
    return rc;
}

static void one_line(buf *b) {
    for (size_t i = 0; i < b->len; i++)
        if (b->p[i] == '\n' || b->p[i] == '\r' || b->p[i] == '\t') b->p[i] = ' ';
}

static bool blank(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') return false;
    return true;
}

static int end_paragraph(slide *s) {
    buf *p = &s->para;
    if (s->skip_shape || blank(p->p, p->len)) return 0;
    if (s->tbl) {
        one_line(p);
        if (s->cell_paras++ && buf_adds(&s->group, " ")) return SL_ENOMEM;
        return buf_add(&s->group, p->p, p->len) ? SL_ENOMEM : 0;
    }
    if (s->is_title) {
        if (s->title.len && buf_adds(&s->title, " ")) return SL_ENOMEM;
        one_line(p);
        return buf_add(&s->title, p->p, p->len) ? SL_ENOMEM : 0;
    }
    if ((s->bullet || s->is_body) && !s->no_bullet && !s->notes_only) {
        if (s->group_type != SL_EL_LIST) {
            int rc = flush_group(s);
            if (rc) return rc;
            s->group_type = SL_EL_LIST;
        }
        int lvl = s->lvl < 0 ? 0 : s->lvl > 8 ? 8 : s->lvl;
        int bad = s->group.len ? buf_adds(&s->group, "\n") : 0;
        bad |= buf_fill(&s->group, ' ', (size_t)lvl * 2);
        bad |= buf_adds(&s->group, "- ");
        return bad | buf_add(&s->group, p->p, p->len) ? SL_ENOMEM : 0;
    }
    int rc = flush_group(s);
    return rc ? rc : push(s, SL_EL_PARAGRAPH, p->p, p->len);
}

static void shape_start(slide *s) {
    s->skip_shape = s->notes_only; /* notes: only a body placeholder is read */
    s->is_title = false;
    s->is_body = false;
}

static int on_element(slide *s, ox_reader *x, const char *name) {
    char v[64];
    bool empty = ox_empty(x);
    if (strcmp(name, "sp") == 0) {
        shape_start(s);
    } else if (strcmp(name, "ph") == 0) {
        const char *t = ox_attr(x, "type", v, sizeof v);
        if (s->notes_only) {
            s->skip_shape = !(t && strcmp(t, "body") == 0);
        } else if (t && (strcmp(t, "title") == 0 || strcmp(t, "ctrTitle") == 0)) {
            s->is_title = true;
        } else if (!t || strcmp(t, "body") == 0 || strcmp(t, "obj") == 0) {
            s->is_body = true;
        } else if (t && (strcmp(t, "dt") == 0 || strcmp(t, "ftr") == 0 || strcmp(t, "sldNum") == 0 ||
                         strcmp(t, "hdr") == 0)) {
            s->skip_shape = 1;
        }
    } else if (strcmp(name, "p") == 0) {
        s->para.len = 0;
        s->bullet = s->no_bullet = false;
        s->lvl = 0;
        if (empty) return end_paragraph(s);
    } else if (strcmp(name, "pPr") == 0) {
        if (ox_attr(x, "lvl", v, sizeof v)) s->lvl = atoi(v);
    } else if (strcmp(name, "buChar") == 0 || strcmp(name, "buAutoNum") == 0) {
        s->bullet = true;
    } else if (strcmp(name, "buNone") == 0) {
        s->no_bullet = true;
    } else if (strcmp(name, "t") == 0) {
        s->in_t = !empty;
    } else if (strcmp(name, "br") == 0) {
        return buf_adds(&s->para, "\n") ? SL_ENOMEM : 0;
    } else if (strcmp(name, "tbl") == 0 && !empty) {
        if (s->tbl++ == 0) {
            int rc = flush_group(s);
            if (rc) return rc;
            s->group_type = SL_EL_TABLE;
            s->rows = 0;
            s->skip_shape = 0;
            s->is_title = false;
        }
    } else if (strcmp(name, "tr") == 0 && s->tbl == 1) {
        if (s->rows++ && buf_adds(&s->group, "\n")) return SL_ENOMEM;
        s->cells = 0;
    } else if (strcmp(name, "tc") == 0 && s->tbl == 1) {
        if (s->cells++ && buf_adds(&s->group, " | ")) return SL_ENOMEM;
        s->cell_paras = 0;
    } else if (strcmp(name, "Fallback") == 0 && !empty) {
        s->skip_depth = ox_depth(x);
    }
    return 0;
}

static int on_end(slide *s, ox_reader *x, const char *name) {
    if (s->skip_depth >= 0) {
        if (ox_depth(x) == s->skip_depth) s->skip_depth = -1;
        return 0;
    }
    if (strcmp(name, "t") == 0)
        s->in_t = false;
    else if (strcmp(name, "p") == 0)
        return end_paragraph(s);
    else if (strcmp(name, "sp") == 0)
        return flush_group(s);
    else if (strcmp(name, "tbl") == 0 && s->tbl && --s->tbl == 0)
        return flush_group(s);
    return 0;
}

/* Reads one slide or notes part into s's pending elements. */
static int read_part(slide *s, const char *entry) {
    office *o = s->o;
    ox_reader x;
    char *data;
    int rc = office_part(o, entry, false, &x, &data);
    if (rc) return rc;
    s->skip_depth = -1;
    s->tbl = 0;
    shape_start(s);
    while (office_next(o, &x, &rc)) {
        int type = ox_type(&x);
        if (type == XML_READER_TYPE_ELEMENT) {
            if (s->skip_depth < 0) rc = on_element(s, &x, ox_name(&x));
        } else if (type == XML_READER_TYPE_END_ELEMENT) {
            rc = on_end(s, &x, ox_name(&x));
        } else if (s->in_t && s->skip_depth < 0 &&
                   (type == XML_READER_TYPE_TEXT || type == XML_READER_TYPE_SIGNIFICANT_WHITESPACE ||
                    type == XML_READER_TYPE_WHITESPACE)) {
            if (office_text(&s->para, ox_value(&x))) rc = SL_ENOMEM;
        }
        if (rc == SL_ENOMEM) rc = sl_fail(o->call, SL_ENOMEM, "%s: out of memory", entry);
    }
    if (!rc) rc = flush_group(s);
    if (rc == SL_ENOMEM) rc = sl_fail(o->call, SL_ENOMEM, "%s: out of memory", entry);
    ox_part_close(&x, data);
    return rc;
}

static int read_slide(office *o, slide *s, const char *entry, uint32_t page) {
    s->page = page;
    s->title.len = s->text.len = s->group.len = 0;
    s->group_type = 0;
    s->n = 0;
    s->notes_only = false;
    int rc = read_part(s, entry);
    if (rc) return rc;
    if (s->title.len) {
        rc = office_emit(o, SL_EL_HEADING, 1, page, s->title.p, s->title.len);
        if (rc < -1) return rc;
    }
    for (size_t i = 0; i < s->n; i++) {
        rc = office_emit(o, s->v[i].type, 0, page, s->text.p + s->v[i].off, s->v[i].len);
        if (rc < -1) return rc;
    }
    if (!o->cfg->notes) return 0;
    office_rels rels;
    if ((rc = office_rels_read(o, entry, &rels))) return rc;
    const office_rel *nr = office_rel_by_type(&rels, "notesSlide");
    char notes[512];
    snprintf(notes, sizeof notes, "%s", nr ? nr->target : "");
    office_rels_free(&rels);
    if (!notes[0]) return 0;
    s->text.len = s->group.len = 0;
    s->n = 0;
    s->notes_only = true;
    if ((rc = read_part(s, notes))) return rc;
    buf all = {0};
    for (size_t i = 0; i < s->n; i++)
        if ((all.len && buf_adds(&all, "\n")) || buf_add(&all, s->text.p + s->v[i].off, s->v[i].len)) {
            free(all.p);
            return sl_fail(o->call, SL_ENOMEM, "%s: out of memory", notes);
        }
    rc = all.len ? office_emit(o, SL_EL_PARAGRAPH, 0, page, all.p, all.len) : -1;
    free(all.p);
    if (rc >= 0) rc = sl_elem_set_attr(o->doc, (size_t)rc, "role", "notes");
    return rc < -1 ? rc : 0;
}

int office_pptx(office *o) {
    office_rels root, rels;
    int rc = office_rels_read(o, "", &root);
    if (rc) return rc;
    const office_rel *main = office_rel_by_type(&root, "officeDocument");
    char entry[512];
    snprintf(entry, sizeof entry, "%s", main ? main->target : "ppt/presentation.xml");
    office_rels_free(&root);
    if ((rc = office_rels_read(o, entry, &rels))) return rc;

    /* The slide list: r:id of each p:sldId, in order. */
    ox_reader x;
    char *data;
    if ((rc = office_part(o, entry, false, &x, &data))) {
        office_rels_free(&rels);
        return rc;
    }
    slide s = {.o = o};
    uint32_t page = 0;
    char id[64];
    /* Slide entries are read after the presentation part is closed, one at
     * a time; their names are collected first. */
    buf names = {0};
    while (office_next(o, &x, &rc)) {
        if (!ox_is_start(ox_type(&x), ox_name(&x), "sldId") || !ox_attr_ns(&x, "id", id, sizeof id)) continue;
        const office_rel *rel = office_rel_by_id(&rels, id);
        if (!rel || !rel->target[0]) {
            rc = sl_fail(o->call, SL_EBADINPUT, "%s: slide %u's relationship '%s' names no part", entry,
                         page + 1, id);
            break;
        }
        if (buf_add(&names, rel->target, strlen(rel->target) + 1))
            rc = sl_fail(o->call, SL_ENOMEM, "%s: out of memory", entry);
        page++;
    }
    ox_part_close(&x, data);
    office_rels_free(&rels);
    const char *p = names.p;
    for (uint32_t i = 1; !rc && i <= page; i++, p += strlen(p) + 1) rc = read_slide(o, &s, p, i);
    free(names.p);
    free(s.title.p);
    free(s.para.p);
    free(s.text.p);
    free(s.group.p);
    free(s.v);
    if (!rc) {
        rc = sl_doc_set_page_count(o->doc, page ? page : 1);
        if (rc) rc = sl_fail(o->call, rc, "%s", sl_strerror(rc));
    }
    return rc;
}
