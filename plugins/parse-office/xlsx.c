/* xlsx.c - SpreadsheetML (XLSX) into elements, sheet by sheet.
 *
 * Sheets come in workbook.xml's order. Sheet N is page N: its name is a
 * level-1 heading, its cells one table element (attr sheet = the name):
 * one row a line, cells joined by " | ", a gap in the column letters kept
 * as empty cells so columns line up, empty rows and trailing empty cells
 * left out. Values are as the file stores them: shared strings (the
 * sharedStrings part, phonetic runs left out), inline strings, formula
 * string results, numbers and dates as the written number (no number
 * formats are applied), booleans as TRUE/FALSE, errors as written
 * (#DIV/0!). A shared-string index past the table's end is an empty cell.
 *
 * At most `max_rows` non-empty rows are read per sheet; the table of a
 * longer sheet carries attr truncated=true.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "office.h"

#define MAX_COLUMN 16384 /* XFD, Excel's last column */

typedef struct strings {
    buf text;    /* every string, NUL-terminated, one after another */
    size_t *off; /* where string i starts in text */
    size_t n, cap;
} strings;

static int read_strings(office *o, const char *entry, strings *ss) {
    char *data;
    size_t len;
    int rc = office_read(o, entry, true, &data, &len);
    if (rc) return rc < 0 ? rc : 0;
    ox_reader x;
    rc = office_xml(o, &x, data, len, entry);
    int si = 0, in_t = 0, skip = -1;
    while (!rc) {
        int r = ox_next(&x);
        if (r == 0) break;
        if (r < 0) {
            rc = office_xml_fail(o, &x);
            break;
        }
        int type = ox_type(&x);
        const char *name = ox_name(&x);
        bool bad = false;
        if (type == XML_READER_TYPE_ELEMENT && skip < 0) {
            if (strcmp(name, "si") == 0) {
                if (ss->n == ss->cap) {
                    size_t cap = ss->cap ? ss->cap * 2 : 256;
                    size_t *v = realloc(ss->off, cap * sizeof *v);
                    if (!v)
                        bad = true;
                    else
                        ss->off = v, ss->cap = cap;
                }
                if (!bad) {
                    ss->off[ss->n++] = ss->text.len;
                    si = !ox_empty(&x);
                    if (!si) bad = buf_add(&ss->text, "", 1) != 0; /* <si/> is "" */
                }
            } else if (strcmp(name, "rPh") == 0 && !ox_empty(&x)) {
                skip = ox_depth(&x);
            } else if (strcmp(name, "t") == 0) {
                in_t = si && !ox_empty(&x);
            }
        } else if (type == XML_READER_TYPE_END_ELEMENT) {
            if (skip >= 0) {
                if (ox_depth(&x) == skip) skip = -1;
            } else if (strcmp(name, "t") == 0) {
                in_t = 0;
            } else if (strcmp(name, "si") == 0 && si) {
                bad = buf_add(&ss->text, "", 1) != 0;
                si = 0;
            }
        } else if (in_t && skip < 0) {
            bad = office_text(&ss->text, ox_value(&x)) != 0;
        }
        if (bad) rc = sl_fail(o->call, SL_ENOMEM, "%s: out of memory", entry);
    }
    ox_close(&x);
    free(data);
    return rc;
}

/* Column index (0-based) of a cell reference like "AB12"; -1 if none. */
static int column_of(const char *ref) {
    int col = 0, letters = 0;
    for (; *ref >= 'A' && *ref <= 'Z' && letters < 4; ref++, letters++) col = col * 26 + (*ref - 'A' + 1);
    if (!letters || col > MAX_COLUMN) return -1;
    return col - 1;
}

typedef struct sheet {
    office *o;
    const strings *ss;
    buf table, row, value;
    int col_out;  /* cells written in this row */
    int next_col; /* column of a cell without a reference */
    int col;      /* the cell being read */
    char t[16];   /* its type attribute */
    int in_v, in_t, in_is;
    int64_t rows;
    bool truncated;
} sheet;

static int end_cell(sheet *s) {
    const char *v = s->value.p ? s->value.p : "";
    size_t n = s->value.len;
    if (strcmp(s->t, "s") == 0) {
        char *end;
        unsigned long i = strtoul(v, &end, 10);
        v = end != v && i < s->ss->n ? s->ss->text.p + s->ss->off[i] : "";
        n = strlen(v);
    } else if (strcmp(s->t, "b") == 0) {
        v = strcmp(v, "1") == 0 ? "TRUE" : "FALSE";
        n = strlen(v);
    }
    while (n && (*v == ' ' || *v == '\n' || *v == '\r' || *v == '\t')) v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\n' || v[n - 1] == '\r' || v[n - 1] == '\t')) n--;
    s->next_col = s->col + 1;
    if (!n) return 0;
    int c = s->col >= s->col_out ? s->col : s->col_out; /* out of order: after what is written */
    int seps = c - s->col_out + (s->col_out > 0 ? 1 : 0);
    int bad = 0;
    for (int k = 0; k < seps; k++) bad |= buf_adds(&s->row, " | ");
    size_t at = s->row.len;
    bad |= buf_add(&s->row, v, n);
    for (size_t i = at; i < s->row.len; i++)
        if (s->row.p[i] == '\n' || s->row.p[i] == '\r' || s->row.p[i] == '\t') s->row.p[i] = ' ';
    s->col_out = c + 1;
    return bad ? SL_ENOMEM : 0;
}

/* 1 when the row cap is reached (stop reading), else 0 or a failure. */
static int end_row(sheet *s) {
    if (!s->row.len) return 0;
    if (s->rows == s->o->cfg->max_rows) {
        s->truncated = true;
        return 1;
    }
    int bad = s->table.len ? buf_adds(&s->table, "\n") : 0;
    bad |= buf_add(&s->table, s->row.p, s->row.len);
    s->rows++;
    return bad ? SL_ENOMEM : 0;
}

static int read_sheet(office *o, const strings *ss, const char *entry, const char *name, uint32_t page) {
    char *data;
    size_t len;
    int rc = office_read(o, entry, false, &data, &len);
    if (rc) return rc;
    ox_reader x;
    rc = office_xml(o, &x, data, len, entry);
    sheet s = {.o = o, .ss = ss};
    char ref[32];
    while (!rc) {
        int r = ox_next(&x);
        if (r == 0) break;
        if (r < 0) {
            rc = office_xml_fail(o, &x);
            break;
        }
        int type = ox_type(&x);
        const char *el = ox_name(&x);
        if (type == XML_READER_TYPE_ELEMENT) {
            if (strcmp(el, "row") == 0) {
                s.row.len = 0;
                s.col_out = s.next_col = 0;
            } else if (strcmp(el, "c") == 0) {
                int col = ox_attr(&x, "r", ref, sizeof ref) ? column_of(ref) : -1;
                s.col = col >= 0 ? col : s.next_col < MAX_COLUMN ? s.next_col : MAX_COLUMN - 1;
                if (!ox_attr(&x, "t", s.t, sizeof s.t)) s.t[0] = '\0';
                s.value.len = 0;
                if (ox_empty(&x)) s.next_col = s.col + 1;
            } else if (strcmp(el, "v") == 0) {
                s.in_v = !ox_empty(&x);
            } else if (strcmp(el, "is") == 0) {
                s.in_is = !ox_empty(&x);
            } else if (strcmp(el, "t") == 0) {
                s.in_t = s.in_is && !ox_empty(&x);
            }
        } else if (type == XML_READER_TYPE_END_ELEMENT) {
            if (strcmp(el, "v") == 0)
                s.in_v = 0;
            else if (strcmp(el, "t") == 0)
                s.in_t = 0;
            else if (strcmp(el, "is") == 0)
                s.in_is = 0;
            else if (strcmp(el, "c") == 0)
                rc = end_cell(&s);
            else if (strcmp(el, "row") == 0)
                rc = end_row(&s);
        } else if (s.in_v || s.in_t) {
            if (office_text(&s.value, ox_value(&x))) rc = SL_ENOMEM;
        }
        if (rc == 1) {
            rc = 0;
            break;
        }
        if (rc == SL_ENOMEM) rc = sl_fail(o->call, SL_ENOMEM, "%s: out of memory", entry);
    }
    ox_close(&x);
    free(data);
    if (!rc) {
        int h = office_emit(o, SL_EL_HEADING, 1, page, name, strlen(name));
        int t = h < -1 ? h : office_emit(o, SL_EL_TABLE, 0, page, s.table.p ? s.table.p : "", s.table.len);
        if (t < -1) {
            rc = t;
        } else if (t >= 0) {
            rc = sl_elem_set_attr(o->doc, (size_t)t, "sheet", name);
            if (!rc && s.truncated) rc = sl_elem_set_attr(o->doc, (size_t)t, "truncated", "true");
            if (rc) rc = sl_fail(o->call, rc, "%s: %s", entry, sl_strerror(rc));
        }
    }
    free(s.table.p);
    free(s.row.p);
    free(s.value.p);
    return rc;
}

int office_xlsx(office *o) {
    office_rels root, rels;
    int rc = office_rels_read(o, "", &root);
    if (rc) return rc;
    const office_rel *main = office_rel_by_type(&root, "officeDocument");
    char entry[512];
    snprintf(entry, sizeof entry, "%s", main ? main->target : "xl/workbook.xml");
    office_rels_free(&root);
    if ((rc = office_rels_read(o, entry, &rels))) return rc;
    strings ss = {0};
    const office_rel *sr = office_rel_by_type(&rels, "sharedStrings");
    if (sr) rc = read_strings(o, sr->target, &ss);

    /* The sheet list: name and part of each, NUL-separated pairs. */
    buf sheets = {0};
    char *data = NULL;
    size_t len;
    uint32_t n = 0;
    if (!rc) rc = office_read(o, entry, false, &data, &len);
    ox_reader x = {0};
    if (!rc) rc = office_xml(o, &x, data, len, entry);
    char name[256], id[64];
    while (!rc) {
        int r = ox_next(&x);
        if (r == 0) break;
        if (r < 0) {
            rc = office_xml_fail(o, &x);
            break;
        }
        if (!ox_is_start(ox_type(&x), ox_name(&x), "sheet")) continue;
        if (!ox_attr(&x, "name", name, sizeof name)) snprintf(name, sizeof name, "Sheet%u", n + 1);
        const office_rel *rel = ox_attr_ns(&x, "id", id, sizeof id) ? office_rel_by_id(&rels, id) : NULL;
        if (!rel || !rel->target[0]) continue; /* a chart sheet or a dangling entry: no cells */
        if (buf_add(&sheets, name, strlen(name) + 1) ||
            buf_add(&sheets, rel->target, strlen(rel->target) + 1))
            rc = sl_fail(o->call, SL_ENOMEM, "%s: out of memory", entry);
        n++;
    }
    ox_close(&x);
    free(data);
    office_rels_free(&rels);
    const char *p = sheets.p;
    for (uint32_t i = 1; !rc && i <= n; i++) {
        const char *part = p + strlen(p) + 1;
        rc = read_sheet(o, &ss, part, p, i);
        p = part + strlen(part) + 1;
    }
    free(sheets.p);
    free(ss.text.p);
    free(ss.off);
    if (!rc) {
        rc = sl_doc_set_page_count(o->doc, n ? n : 1);
        if (rc) rc = sl_fail(o->call, rc, "%s", sl_strerror(rc));
    }
    return rc;
}
