/* xlsx.c - SpreadsheetML (XLSX) into elements, sheet by sheet.
 *
 * Sheets come in workbook.xml's order. Sheet N is page N: its name is a
 * level-1 heading, its cells one table element (attr sheet = the name):
 * one row a line, cells joined by " | ", a gap in the column letters kept
 * as empty cells so columns line up, empty rows and trailing empty cells
 * left out. Values are as the file stores them: shared strings (the
 * sharedStrings part, phonetic runs left out), inline strings, formula
 * string results, numbers as written, booleans as TRUE/FALSE, errors as
 * written (#DIV/0!). A shared-string index past the table's end is an empty
 * cell. A number whose cell style (its s attribute, an index into
 * styles.xml's cellXfs) has a date or time number format (built-in 14..22,
 * 45..47, or a custom numFmt with d, m, y, h or s outside quotes, brackets
 * and escapes) is shown in ISO 8601: 2024-02-29 for a date format,
 * 2024-02-29T09:30:15 when the format has a time part, 09:30:15 for a time
 * format's value under one day; serials count from 1900 (with Excel's
 * phantom 1900-02-29) or from 1904 when workbookPr says date1904. Other
 * number formats are not applied.
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
    ox_reader x;
    char *data;
    int rc = office_part(o, entry, true, &x, &data);
    if (rc) return rc < 0 ? rc : 0;
    int si = 0, in_t = 0, skip = -1;
    while (office_next(o, &x, &rc)) {
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
    ox_part_close(&x, data);
    return rc;
}

/* --- dates: a number shown through a date or time format --- */

enum { F_NUMBER = 0, F_DATE = 1, F_TIME = 2, F_DATETIME = 3 };

/* What a number format shows: the built-in date and time formats (14..22,
 * 45..47), or a custom format code with d, m, y (a date) or h, s (a time)
 * outside quotes, brackets ([Red], [$-409], [h]) and escaped characters. An
 * m with no d or y but an h or s is minutes: a time only. */
static int format_class(int id, const char *code) {
    if (id >= 14 && id <= 17) return F_DATE;
    if ((id >= 18 && id <= 21) || (id >= 45 && id <= 47)) return F_TIME;
    if (id == 22) return F_DATETIME;
    if (!code) return F_NUMBER;
    bool d = false, m = false, t = false;
    for (const char *c = code; *c; c++) {
        switch (*c) {
        case '"':
            while (c[1] && c[1] != '"') c++;
            if (c[1]) c++;
            break;
        case '[':
            while (c[1] && c[1] != ']') c++;
            if (c[1]) c++;
            break;
        case '\\':
        case '_':
        case '*':
            if (c[1]) c++; /* an escaped character, a space as wide as one, a fill */
            break;
        case 'd':
        case 'D':
        case 'y':
        case 'Y': d = true; break;
        case 'm':
        case 'M': m = true; break;
        case 'h':
        case 'H':
        case 's':
        case 'S': t = true; break;
        default: break;
        }
    }
    if (d) return t ? F_DATETIME : F_DATE;
    if (t) return F_TIME;
    return m ? F_DATE : F_NUMBER;
}

typedef struct styles {
    unsigned char *xf; /* cellXfs index -> F_* */
    size_t n;
    bool date1904;
} styles;

#define MAX_XF 65536 /* Excel's own limit is 64000 cell formats */
#define MAX_NUMFMT 4096

static int read_styles(office *o, const char *entry, styles *st) {
    ox_reader x;
    char *data;
    int rc = office_part(o, entry, true, &x, &data);
    if (rc) return rc < 0 ? rc : 0;
    struct {
        int id;
        unsigned char cls;
    } *fmts = NULL;
    size_t nfmts = 0, cap = 0;
    int in_xfs = 0;
    char v[256];
    while (office_next(o, &x, &rc)) {
        int type = ox_type(&x);
        const char *name = ox_name(&x);
        if (ox_is_end(type, name, "cellXfs")) in_xfs = 0;
        if (type != XML_READER_TYPE_ELEMENT) continue;
        bool bad = false;
        if (strcmp(name, "numFmt") == 0 && nfmts < MAX_NUMFMT) {
            int id = ox_attr(&x, "numFmtId", v, sizeof v) ? atoi(v) : -1;
            const char *code = ox_attr(&x, "formatCode", v, sizeof v);
            if (nfmts == cap) {
                size_t ncap = cap ? cap * 2 : 32;
                void *p = realloc(fmts, ncap * sizeof *fmts);
                if (!p)
                    bad = true;
                else
                    fmts = p, cap = ncap;
            }
            if (!bad) {
                fmts[nfmts].id = id;
                fmts[nfmts++].cls = (unsigned char)format_class(-1, code);
            }
        } else if (strcmp(name, "cellXfs") == 0) {
            in_xfs = !ox_empty(&x);
        } else if (in_xfs && strcmp(name, "xf") == 0 && ox_depth(&x) == 2 && st->n < MAX_XF) {
            if (!st->xf && !(st->xf = calloc(MAX_XF, 1))) {
                bad = true;
            } else {
                int id = ox_attr(&x, "numFmtId", v, sizeof v) ? atoi(v) : 0;
                int cls = format_class(id, NULL);
                for (size_t i = 0; i < nfmts; i++) /* a custom format overrides a built-in id */
                    if (fmts[i].id == id) cls = fmts[i].cls;
                st->xf[st->n++] = (unsigned char)cls;
            }
        }
        if (bad) rc = sl_fail(o->call, SL_ENOMEM, "%s: out of memory", entry);
    }
    free(fmts);
    ox_part_close(&x, data);
    return rc;
}

/* Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm). */
static void civil(long long z, long long *y, unsigned *m, unsigned *d) {
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (long long)yoe + era * 400 + (*m <= 2);
}

/* A serial date number v in ISO 8601, as format class cls shows it: a
 * date, a date-time, or a time of day (a time format's value under one
 * day). 0 when v is no number or out of 0..9999-12-31. */
static int iso_date(const char *v, size_t n, int cls, bool date1904, char *out, size_t outlen) {
    char tmp[64];
    if (!n || n >= sizeof tmp) return 0;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    char *end;
    double x = strtod(tmp, &end);
    if (*end || !(x >= 0) || x >= 2958466.0) return 0;
    long long days = (long long)x;
    int secs = (int)((x - (double)days) * 86400.0 + 0.5);
    if (secs >= 86400) days++, secs -= 86400;
    if (cls == F_TIME && days == 0) {
        snprintf(out, outlen, "%02d:%02d:%02d", secs / 3600, secs / 60 % 60, secs % 60);
        return 1;
    }
    /* 1900 system: day 1 is 1900-01-01, counted from 1899-12-31 up to Excel's
     * phantom 1900-02-29 (serial 60), from 1899-12-30 after it. 1904 system:
     * day 0 is 1904-01-01. */
    long long unix_days = date1904 ? days - 24107 : days < 60 ? days - 25568 : days - 25569;
    long long y;
    unsigned m, d;
    civil(unix_days, &y, &m, &d);
    if (y < 1 || y > 9999) return 0;
    int yy = (int)y, mm = (int)m, dd = (int)d;
    if (cls == F_DATE)
        snprintf(out, outlen, "%04d-%02d-%02d", yy, mm, dd);
    else
        snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d", yy, mm, dd, secs / 3600, secs / 60 % 60,
                 secs % 60);
    return 1;
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
    const styles *st;
    buf table, row, value;
    int col_out;   /* cells written in this row */
    int next_col;  /* column of a cell without a reference */
    int col;       /* the cell being read */
    char t[16];    /* its type attribute */
    long xf;       /* its style (s attribute), -1 when none */
    char date[64]; /* its value as a date */
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
    } else if ((!s->t[0] || strcmp(s->t, "n") == 0) && s->xf >= 0 && (size_t)s->xf < s->st->n &&
               s->st->xf[s->xf] != F_NUMBER) {
        if (iso_date(v, n, s->st->xf[s->xf], s->st->date1904, s->date, sizeof s->date)) {
            v = s->date;
            n = strlen(v);
        }
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

static int read_sheet(office *o, const strings *ss, const styles *st, const char *entry, const char *name,
                      uint32_t page) {
    ox_reader x;
    char *data;
    int rc = office_part(o, entry, false, &x, &data);
    if (rc) return rc;
    sheet s = {.o = o, .ss = ss, .st = st};
    char ref[32];
    while (office_next(o, &x, &rc)) {
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
                s.xf = ox_attr(&x, "s", ref, sizeof ref) ? strtol(ref, NULL, 10) : -1;
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
    ox_part_close(&x, data);
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
    styles st = {0};
    const office_rel *sy = office_rel_by_type(&rels, "styles");
    if (!rc && sy) rc = read_styles(o, sy->target, &st);

    /* The sheet list: name and part of each, NUL-separated pairs. */
    buf sheets = {0};
    char *data = NULL;
    uint32_t n = 0;
    ox_reader x = {0};
    if (!rc) rc = office_part(o, entry, false, &x, &data);
    char name[256], id[64];
    while (office_next(o, &x, &rc)) {
        if (ox_is_start(ox_type(&x), ox_name(&x), "workbookPr")) {
            const char *d = ox_attr(&x, "date1904", id, sizeof id);
            st.date1904 = d && (strcmp(d, "1") == 0 || strcmp(d, "true") == 0);
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
    ox_part_close(&x, data);
    office_rels_free(&rels);
    const char *p = sheets.p;
    for (uint32_t i = 1; !rc && i <= n; i++) {
        const char *part = p + strlen(p) + 1;
        rc = read_sheet(o, &ss, &st, part, p, i);
        p = part + strlen(part) + 1;
    }
    free(sheets.p);
    free(ss.text.p);
    free(ss.off);
    free(st.xf);
    if (!rc) {
        rc = sl_doc_set_page_count(o->doc, n ? n : 1);
        if (rc) rc = sl_fail(o->call, rc, "%s", sl_strerror(rc));
    }
    return rc;
}
