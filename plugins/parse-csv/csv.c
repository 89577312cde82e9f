/* csv.c - parse-csv: CSV and TSV files into table elements.
 *
 * RFC 4180: fields separated by a delimiter, records by LF or CRLF, a field
 * in double quotes may hold delimiters, line breaks and "" for a quote. The
 * first record is the header (unless `header = false`). Records are grouped
 * `rows_per_table` at a time into table elements, each starting with the
 * header row, so every chunk cut from the file still says what its columns
 * mean; rows are lines and cells are joined by " | " (sluice/doc.h). A line
 * break inside a quoted field becomes a space: a row stays one line.
 *
 * One pass, no recursion, nothing per field allocated: a field is decoded
 * straight into the row being built. Bounds (columns, field size, records)
 * fail the document with the line where they were passed, as do an
 * unterminated quote and, unless `ragged = pad`, a row with another number
 * of fields than the header.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sluice/sluice.h>

#include "text_input.h"
#include "textbuf.h"

typedef struct csv_config {
    const char *delimiter;
    bool header;
    int64_t rows_per_table;
    uint64_t table_size;
    const char *ragged;
    int64_t max_columns;
    uint64_t max_field;
    int64_t max_records;
} csv_config;

static const sl_option options[] = {
    {.name = "delimiter",
     .type = SL_OPT_STRING,
     .def = "auto",
     .help = "field separator: one character, \"\\t\" or \"tab\", or auto (tab for .tsv and "
             "text/tab-separated-values, else comma)",
     .offset = offsetof(csv_config, delimiter)},
    {.name = "header",
     .type = SL_OPT_BOOL,
     .def = "true",
     .help = "the first record names the columns (repeated at the top of every table element)",
     .offset = offsetof(csv_config, header)},
    {.name = "rows_per_table",
     .type = SL_OPT_INT,
     .def = "25",
     .help = "data rows per table element",
     .offset = offsetof(csv_config, rows_per_table)},
    {.name = "table_size",
     .type = SL_OPT_SIZE,
     .def = "800",
     .help = "bytes of text per table element, header included, so each fits a chunk whole (a longer row "
             "stands alone)",
     .offset = offsetof(csv_config, table_size)},
    {.name = "ragged",
     .type = SL_OPT_ENUM,
     .def = "fail",
     .help = "a row with another number of fields than the first: fail the file, or pad/keep it",
     .offset = offsetof(csv_config, ragged),
     .choices = "fail|pad"},
    {.name = "max_columns",
     .type = SL_OPT_INT,
     .def = "1000",
     .help = "fields in one record; more fails the file",
     .offset = offsetof(csv_config, max_columns)},
    {.name = "max_field",
     .type = SL_OPT_SIZE,
     .def = "1M",
     .help = "bytes in one field; more fails the file",
     .offset = offsetof(csv_config, max_field)},
    TEXT_OPT_MAX_RECORDS(csv_config),
    {0},
};

/* Read-only after init: every pool thread may use it at once. */
typedef struct csv_state {
    char delim; /* 0: auto */
    bool header, pad;
    size_t rows_per_table, table_size, max_columns, max_field, max_records;
} csv_state;

static int csv_init(sl_instance *inst, const void *config, void **state) {
    const csv_config *cfg = config;
    const char *d = cfg->delimiter ? cfg->delimiter : "auto";
    char delim;
    if (strcmp(d, "auto") == 0)
        delim = 0;
    else if (strcmp(d, "\\t") == 0 || strcmp(d, "\t") == 0 || strcmp(d, "tab") == 0)
        delim = '\t';
    else if (strlen(d) == 1 && d[0] != '"' && d[0] != '\n' && d[0] != '\r')
        delim = d[0];
    else
        return sl_instance_fail(inst, SL_EFATAL,
                                "delimiter must be one character other than a quote or line break, \\t, tab "
                                "or auto, not '%s'",
                                d);
    if (cfg->rows_per_table < 1 || cfg->rows_per_table > 1000000)
        return sl_instance_fail(inst, SL_EFATAL, "rows_per_table must be 1..1000000, not %lld",
                                (long long)cfg->rows_per_table);
    if (cfg->max_columns < 1 || cfg->max_records < 1)
        return sl_instance_fail(inst, SL_EFATAL, "max_columns and max_records must be positive");
    csv_state *st = calloc(1, sizeof *st);
    if (!st) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    st->delim = delim;
    st->header = cfg->header;
    st->pad = cfg->ragged && strcmp(cfg->ragged, "pad") == 0;
    st->rows_per_table = (size_t)cfg->rows_per_table;
    st->table_size = cfg->table_size ? (size_t)cfg->table_size : 800;
    st->max_columns = (size_t)cfg->max_columns;
    st->max_field = cfg->max_field ? (size_t)cfg->max_field : (size_t)1 << 20;
    st->max_records = (size_t)cfg->max_records;
    *state = st;
    return 0;
}

static void csv_fini(void *state) { free(state); }

/* --- the reader: one record at a time, decoded into `row` --- */

typedef struct reader {
    const char *start, *p, *end;
    char delim;
    uint32_t line; /* 1-based line of the next byte */
    const csv_state *st;
    char why[160]; /* a bad record's reason */
} reader;

enum { ROW_END = 0, ROW_OK = 1, ROW_BAD = -1, ROW_NOMEM = -2 };

static int too_big(reader *r, uint32_t line) {
    snprintf(r->why, sizeof r->why, "a field longer than %zu bytes at line %u", r->st->max_field, line);
    return ROW_BAD;
}

static int read_row(reader *r, buf *row, size_t *fields) {
    row->len = 0;
    *fields = 0;
    if (r->p >= r->end) return ROW_END;
    for (;;) {
        if (++*fields > r->st->max_columns) {
            snprintf(r->why, sizeof r->why, "more than %zu fields in the record at line %u",
                     r->st->max_columns, r->line);
            return ROW_BAD;
        }
        if (*fields > 1 && buf_add(row, " | ", 3)) return ROW_NOMEM;
        size_t field_start = row->len;
        if (r->p < r->end && *r->p == '"') {
            uint32_t opened = r->line;
            r->p++;
            for (;;) {
                const char *q = memchr(r->p, '"', (size_t)(r->end - r->p));
                if (!q) {
                    snprintf(r->why, sizeof r->why, "a quoted field opened at line %u is never closed",
                             opened);
                    return ROW_BAD;
                }
                /* copy the run before the quote, line breaks as spaces */
                for (const char *s = r->p; s < q;) {
                    const char *nl = s;
                    while (nl < q && *nl != '\n' && *nl != '\r') nl++;
                    if (buf_add(row, s, (size_t)(nl - s))) return ROW_NOMEM;
                    if (nl < q) {
                        if (*nl == '\n') r->line++;
                        if ((*nl == '\n' || !(nl + 1 < q && nl[1] == '\n')) &&
                            (row->len == field_start || row->p[row->len - 1] != ' ') && buf_add(row, " ", 1))
                            return ROW_NOMEM;
                        nl++;
                    }
                    s = nl;
                }
                r->p = q + 1;
                if (row->len - field_start > r->st->max_field) return too_big(r, opened);
                if (r->p < r->end && *r->p == '"') { /* "" is a quote */
                    r->p++;
                    if (buf_add(row, "\"", 1)) return ROW_NOMEM;
                    continue;
                }
                break;
            }
            if (r->p < r->end && *r->p != r->delim && *r->p != '\n' && *r->p != '\r') {
                snprintf(r->why, sizeof r->why,
                         "text after a closing quote at line %u, byte %zu (a quote inside a field is written "
                         "\"\")",
                         r->line, (size_t)(r->p - r->start));
                return ROW_BAD;
            }
        } else {
            const char *s = r->p;
            while (r->p < r->end && *r->p != r->delim && *r->p != '\n' && *r->p != '\r') r->p++;
            if ((size_t)(r->p - s) > r->st->max_field) return too_big(r, r->line);
            if (buf_add(row, s, (size_t)(r->p - s))) return ROW_NOMEM;
        }
        if (r->p < r->end && *r->p == r->delim) {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == '\r') r->p++;
        if (r->p < r->end && *r->p == '\n') r->p++;
        r->line++;
        return ROW_OK;
    }
}

/* --- tables --- */

typedef struct table {
    buf text;
    size_t first, last; /* data rows it holds, 1-based */
    uint32_t line;
    uint64_t offset;
} table;

static int emit(sl_call *call, sl_doc *doc, table *t) {
    if (!t->text.len) return 0;
    int i = sl_doc_add_element(doc, SL_EL_TABLE, t->text.p, t->text.len);
    if (i < 0) return sl_fail(call, i, "%s adding a table", sl_strerror(i));
    char rows[48];
    snprintf(rows, sizeof rows, "%zu-%zu", t->first, t->last);
    if (sl_elem_set_page(doc, (size_t)i, 1) < 0 ||
        sl_elem_set_source(doc, (size_t)i, t->offset, t->line) < 0 ||
        sl_elem_set_attr(doc, (size_t)i, "rows", rows) < 0)
        return sl_fail(call, SL_ENOMEM, "out of memory");
    t->text.len = 0;
    return 0;
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

static int csv_parse(sl_call *call, sl_doc *doc) {
    const csv_state *st = sl_call_state(call);
    const char *data = NULL;
    size_t len = 0, bom = 0;
    int in = text_input(call, doc, &data, &len, &bom);
    if (in) return in;

    char delim = st->delim;
    if (!delim) {
        const char *mt = sl_doc_media_type(doc), *uri = sl_doc_uri(doc);
        delim = (mt && strcmp(mt, "text/tab-separated-values") == 0) || (uri && has_suffix(uri, ".tsv"))
                    ? '\t'
                    : ',';
    }
    reader r = {.start = data, .p = data + bom, .end = data + len, .delim = delim, .line = 1, .st = st};
    buf row = {0}, header = {0};
    table t = {0};
    size_t fields, want = 0, records = 0, data_rows = 0;
    int rc = 0;
    for (;;) {
        uint32_t line = r.line;
        uint64_t offset = (uint64_t)(r.p - data);
        int got = read_row(&r, &row, &fields);
        if (got == ROW_END) break;
        if (got == ROW_NOMEM) {
            rc = sl_fail(call, SL_ENOMEM, "out of memory at line %u", line);
            break;
        }
        if (got == ROW_BAD) {
            rc = sl_fail(call, SL_EBADINPUT, "%s", r.why);
            break;
        }
        if (fields == 1 && row.len == 0) continue; /* a blank line */
        if (++records > st->max_records) {
            rc = sl_fail(call, SL_EBADINPUT, "more than %zu records (at line %u)", st->max_records, line);
            break;
        }
        if (!want) {
            want = fields;
            if (st->header) {
                if (buf_add(&header, row.p, row.len)) rc = sl_fail(call, SL_ENOMEM, "out of memory");
                if (rc) break;
                continue;
            }
        } else if (fields != want) {
            if (!st->pad) {
                rc = sl_fail(
                    call, SL_EBADINPUT,
                    "the record at line %u has %zu fields, the first has %zu (set ragged = pad to keep it)",
                    line, fields, want);
                break;
            }
            for (size_t k = fields; k < want; k++)
                if (buf_add(&row, " | ", 3)) rc = sl_fail(call, SL_ENOMEM, "out of memory");
            if (rc) break;
        }
        data_rows++;
        if (t.text.len && t.text.len + 1 + row.len > st->table_size && (rc = emit(call, doc, &t)) != 0) break;
        if (!t.text.len) {
            t.first = data_rows;
            t.line = line;
            t.offset = offset;
            if (header.len && (buf_add(&t.text, header.p, header.len) || buf_add(&t.text, "\n", 1))) {
                rc = sl_fail(call, SL_ENOMEM, "out of memory");
                break;
            }
        } else if (buf_add(&t.text, "\n", 1)) {
            rc = sl_fail(call, SL_ENOMEM, "out of memory");
            break;
        }
        if (buf_add(&t.text, row.p, row.len)) {
            rc = sl_fail(call, SL_ENOMEM, "out of memory");
            break;
        }
        t.last = data_rows;
        if (data_rows - t.first + 1 == st->rows_per_table && (rc = emit(call, doc, &t)) != 0) break;
    }
    if (!rc) rc = emit(call, doc, &t);
    if (!rc && !data_rows && header.len) { /* a header and nothing else: still say what the columns are */
        t.text.len = 0;
        t.line = 1;
        if (buf_add(&t.text, header.p, header.len)) rc = sl_fail(call, SL_ENOMEM, "out of memory");
        if (!rc) rc = emit(call, doc, &t);
    }
    if (!rc && !records) rc = sl_fail(call, SL_EBADINPUT, "no records");
    if (!rc && header.len) {
        /* the columns, for the sinks' metadata */
        char *cols = sl_doc_strndup(doc, header.p, header.len);
        if (!cols || sl_doc_meta_set(doc, "columns", cols) < 0)
            rc = sl_fail(call, SL_ENOMEM, "out of memory");
    }
    if (!rc) {
        char n[32];
        snprintf(n, sizeof n, "%zu", data_rows);
        if (sl_doc_meta_set(doc, "rows", n) < 0) rc = sl_fail(call, SL_ENOMEM, "out of memory");
    }
    free(row.p);
    free(header.p);
    free(t.text.p);
    if (rc) return rc;
    return sl_doc_set_page_count(doc, 1);
}

static const char *const media_types[] = {"text/csv", "text/tab-separated-values", NULL};

static const sl_plugin parse_csv_plugin = {
    SL_PLUGIN_HEADER,
    .name = "parse-csv",
    .version = "1.0.0",
    .summary = "CSV and TSV (RFC 4180) into tables of rows, the header row repeated in each",
    .role = SL_ROLE_PARSER,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(csv_config),
    .media_types = media_types,
    .init = csv_init,
    .fini = csv_fini,
    .parse = csv_parse,
};

SL_PLUGIN_EXPORT(parse_csv_plugin)
