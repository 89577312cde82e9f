/* parse_csv.c - example-csv, an out-of-tree sluice parser for CSV files.
 *
 * Reads RFC 4180 CSV (quoted fields, "" for a quote inside quotes, line
 * breaks inside quoted fields, LF or CRLF line ends) and emits one table
 * element per `rows_per_table` data rows, each starting with the header row,
 * so every chunk cut from it still says what its columns mean. Cells are
 * joined with " | " and rows with newlines, as sluice/doc.h asks of tables.
 *
 * It is the kind of plugin a third party writes in an afternoon: it includes
 * only <sluice/sluice.h>, declares its options in one table, and leaves
 * chunking, embedding and storing to the plugins already in the route.
 * Add a route for text/csv to the INI (see csv.ini) and *.csv to [sluice]
 * include, and CSV files flow through the default pipeline.
 *
 * A file that is not text (NUL bytes, invalid UTF-8), is empty, has an
 * unterminated quote or a row with a different number of fields than the
 * header fails as bad input, with the line where the problem starts; the
 * run goes on with the other documents.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

typedef struct csv_config {
    const char *delimiter;
    int64_t rows_per_table;
    bool header;
} csv_config;

static const sl_option options[] = {
    {.name = "delimiter",
     .type = SL_OPT_STRING,
     .def = ",",
     .help = "field separator, one character (\"\\t\" for tab)",
     .offset = offsetof(csv_config, delimiter)},
    {.name = "rows_per_table",
     .type = SL_OPT_INT,
     .def = "20",
     .help = "data rows per table element; the header is repeated in each",
     .offset = offsetof(csv_config, rows_per_table)},
    {.name = "header",
     .type = SL_OPT_BOOL,
     .def = "true",
     .help = "the first row names the columns",
     .offset = offsetof(csv_config, header)},
    {0},
};

/* Read-only after init: every pool thread may use it at once. */
typedef struct csv_state {
    char delim;
    size_t rows_per_table;
    bool header;
} csv_state;

static int csv_init(sl_instance *inst, const void *config, void **state) {
    const csv_config *cfg = config;
    char delim;
    if (strcmp(cfg->delimiter, "\\t") == 0 || strcmp(cfg->delimiter, "\t") == 0)
        delim = '\t';
    else if (strlen(cfg->delimiter) == 1 && cfg->delimiter[0] != '"' && cfg->delimiter[0] != '\n')
        delim = cfg->delimiter[0];
    else
        return sl_instance_fail(
            inst, SL_EFATAL, "delimiter must be one character other than a quote, got '%s'", cfg->delimiter);
    if (cfg->rows_per_table < 1 || cfg->rows_per_table > 100000)
        return sl_instance_fail(inst, SL_EFATAL, "rows_per_table must be 1..100000, got %lld",
                                (long long)cfg->rows_per_table);
    csv_state *st = malloc(sizeof *st);
    if (!st) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    st->delim = delim;
    st->rows_per_table = (size_t)cfg->rows_per_table;
    st->header = cfg->header;
    *state = st;
    return 0;
}

static void csv_fini(void *state) { free(state); }

/* A growing byte buffer for one table's text; freed by the caller. */
typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static bool buf_add(buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (b->len + n + 1 > cap) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

/* The reader: walks the bytes one record at a time. A field is appended to
 * `row` as it is decoded, quotes removed and cells separated by " | ", so a
 * row never needs a per-field allocation. Line breaks inside a quoted field
 * become spaces: a table row stays on one line. */
typedef struct reader {
    const char *p, *end;
    char delim;
    uint32_t line; /* 1-based line of the next byte */
} reader;

enum { ROW_END = 0, ROW_OK = 1, ROW_BAD = -1, ROW_NOMEM = -2 };

static int read_row(reader *r, buf *row, size_t *fields, uint32_t *bad_line) {
    row->len = 0;
    *fields = 0;
    if (r->p >= r->end) return ROW_END;
    for (;;) {
        if (*fields > 0 && !buf_add(row, " | ", 3)) return ROW_NOMEM;
        (*fields)++;
        if (r->p < r->end && *r->p == '"') {
            uint32_t start = r->line;
            r->p++;
            for (;;) {
                if (r->p >= r->end) {
                    *bad_line = start;
                    return ROW_BAD;
                }
                char c = *r->p++;
                if (c == '"') {
                    if (r->p < r->end && *r->p == '"') {
                        r->p++;
                        if (!buf_add(row, "\"", 1)) return ROW_NOMEM;
                        continue;
                    }
                    break;
                }
                if (c == '\n') r->line++;
                if (c == '\r' || c == '\n') c = ' ';
                if (!buf_add(row, &c, 1)) return ROW_NOMEM;
            }
            /* after the closing quote only a delimiter or the end of the record may follow */
            if (r->p < r->end && *r->p != r->delim && *r->p != '\n' && *r->p != '\r') {
                *bad_line = r->line;
                return ROW_BAD;
            }
        } else {
            const char *s = r->p;
            while (r->p < r->end && *r->p != r->delim && *r->p != '\n' && *r->p != '\r') r->p++;
            if (!buf_add(row, s, (size_t)(r->p - s))) return ROW_NOMEM;
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

/* Adds the table collected so far as one element, with where it starts and
 * which data rows it holds ("21-40"). */
static int emit_table(sl_call *call, sl_doc *doc, const buf *table, uint32_t line, size_t first,
                      size_t last) {
    int i = sl_doc_add_element(doc, SL_EL_TABLE, table->p, table->len);
    if (i < 0) return sl_fail(call, i, "out of memory");
    char rows[48];
    snprintf(rows, sizeof rows, "%zu-%zu", first, last);
    if (sl_elem_set_source(doc, (size_t)i, 0, line) < 0 || sl_elem_set_attr(doc, (size_t)i, "rows", rows) < 0)
        return sl_fail(call, SL_ENOMEM, "out of memory");
    return 0;
}

static int csv_parse(sl_call *call, sl_doc *doc) {
    const csv_state *st = sl_call_state(call);
    size_t len;
    const char *data = sl_doc_data(doc, &len);
    if (len == 0) return sl_fail(call, SL_EBADINPUT, "empty file");
    const char *nul = memchr(data, '\0', len);
    if (nul)
        return sl_fail(call, SL_EBADINPUT, "NUL byte at offset %zu: not a text file", (size_t)(nul - data));
    size_t bad;
    if (!sl_utf8_valid(data, len, &bad)) return sl_fail(call, SL_EBADINPUT, "invalid UTF-8 at byte %zu", bad);
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) data += 3, len -= 3; /* spreadsheets write a BOM */

    reader r = {.p = data, .end = data + len, .delim = st->delim, .line = 1};
    buf row = {0}, header = {0}, table = {0};
    size_t fields, want = 0, rows = 0, in_table = 0, first = 0;
    uint32_t table_line = 0, bad_line = 0, row_line;
    int rc = 0, got;

    while (rc == 0) {
        row_line = r.line;
        got = read_row(&r, &row, &fields, &bad_line);
        if (got == ROW_END) break;
        if (got == ROW_NOMEM) {
            rc = sl_fail(call, SL_ENOMEM, "out of memory");
            break;
        }
        if (got == ROW_BAD) {
            rc = sl_fail(call, SL_EBADINPUT, "line %u: unterminated or misplaced quote", bad_line);
            break;
        }
        if (fields == 1 && row.len == 0) continue; /* blank line */
        if (want == 0) {
            want = fields;
            if (st->header) {
                if (!buf_add(&header, row.p, row.len) || !buf_add(&header, "\n", 1))
                    rc = sl_fail(call, SL_ENOMEM, "out of memory");
                continue;
            }
        }
        if (fields != want) {
            rc = sl_fail(call, SL_EBADINPUT, "line %u: %zu fields, expected %zu", row_line, fields, want);
            break;
        }
        rows++;
        if (in_table == 0) {
            table.len = 0;
            table_line = row_line;
            first = rows;
            if (header.len && !buf_add(&table, header.p, header.len)) {
                rc = sl_fail(call, SL_ENOMEM, "out of memory");
                break;
            }
        }
        if (!buf_add(&table, row.p, row.len) || !buf_add(&table, "\n", 1)) {
            rc = sl_fail(call, SL_ENOMEM, "out of memory");
            break;
        }
        if (++in_table == st->rows_per_table) {
            rc = emit_table(call, doc, &table, table_line, first, rows);
            in_table = 0;
        }
    }
    if (rc == 0 && in_table > 0) rc = emit_table(call, doc, &table, table_line, first, rows);
    if (rc == 0 && rows == 0) rc = sl_fail(call, SL_EBADINPUT, "no data rows");
    if (rc == 0) {
        char n[32];
        snprintf(n, sizeof n, "%zu", rows);
        if (sl_doc_meta_set(doc, "rows", n) < 0) rc = sl_fail(call, SL_ENOMEM, "out of memory");
        snprintf(n, sizeof n, "%zu", want);
        if (rc == 0 && sl_doc_meta_set(doc, "columns", n) < 0) rc = sl_fail(call, SL_ENOMEM, "out of memory");
    }
    free(row.p);
    free(header.p);
    free(table.p);
    return rc;
}

static const char *const media_types[] = {"text/csv", NULL};

static const sl_plugin parse_csv = {
    SL_PLUGIN_HEADER,           .name = "example-csv",
    .version = "1.0.0",         .summary = "CSV files as tables of rows_per_table rows, header repeated",
    .role = SL_ROLE_PARSER,     .bottleneck = SL_CPU,
    .options = options,         .config_size = sizeof(csv_config),
    .media_types = media_types, .init = csv_init,
    .fini = csv_fini,           .parse = csv_parse,
};

SL_PLUGIN_EXPORT(parse_csv)
