/* json.c - parse-json: JSON documents and JSON Lines into one element per
 * record.
 *
 * A record is a line of a JSON Lines file (application/x-ndjson, .jsonl,
 * .ndjson), an item of a top-level JSON array, the array found at
 * `records` (a dotted path such as "data.items"), or a whole JSON document
 * that is none of those. Each record becomes one paragraph: the values of
 * `text_fields` (dotted paths) when they are set, else the record itself
 * written as "key: value" lines, nested keys dotted ("user.name: Ada").
 * `title_field` makes the record's value there a heading before it, so the
 * chunker starts a section per record and every chunk carries the record's
 * title in its heading path; without it, small records share chunks.
 * `meta_fields` become attributes of the record's element (and, for a
 * document of one record, its metadata).
 *
 * jansson parses (its depth limit is 2048, so nesting cannot exhaust the
 * stack). Malformed JSON fails the document with jansson's reason and where:
 * line, column and byte offset, of the file for JSON Lines. Bounds: records
 * per file, bytes of text in all.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sluice/sluice.h>

#include "text_input.h"
#include "textbuf.h"

#define MAX_FIELDS 32

typedef struct json_config {
    const char *text_fields;
    const char *meta_fields;
    const char *title_field;
    const char *records;
    int64_t max_records;
    uint64_t max_output;
} json_config;

static const sl_option options[] = {
    {.name = "text_fields",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "space-separated dotted paths whose values are a record's text (empty: the whole record as "
             "key: value lines)",
     .offset = offsetof(json_config, text_fields)},
    {.name = "meta_fields",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "space-separated dotted paths kept as the record element's attributes",
     .offset = offsetof(json_config, meta_fields)},
    {.name = "title_field",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "dotted path of a record's title: a heading before each record (a chunk section per record)",
     .offset = offsetof(json_config, title_field)},
    {.name = "records",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "dotted path of the array that holds the records in a JSON document (empty: a top-level array, "
             "else the document is one record)",
     .offset = offsetof(json_config, records)},
    TEXT_OPT_MAX_RECORDS(json_config),
    {.name = "max_output",
     .type = SL_OPT_SIZE,
     .def = "256M",
     .help = "bytes of text one file may give; more fails the file",
     .offset = offsetof(json_config, max_output)},
    {0},
};

typedef struct field_list {
    char *names[MAX_FIELDS];
    size_t n;
} field_list;

/* Read-only after init: every pool thread may use it at once. */
typedef struct json_state {
    field_list text, meta;
    char *title, *records;
    size_t max_records, max_output;
} json_state;

static void fields_free(field_list *f) {
    for (size_t i = 0; i < f->n; i++) free(f->names[i]);
    f->n = 0;
}

static int fields_parse(sl_instance *inst, const char *option, const char *s, field_list *f) {
    while (s && *s) {
        while (*s == ' ' || *s == '\t' || *s == ',') s++;
        size_t k = strcspn(s, " \t,");
        if (!k) break;
        if (f->n == MAX_FIELDS)
            return sl_instance_fail(inst, SL_EFATAL, "%s names more than %d fields", option, MAX_FIELDS);
        f->names[f->n] = strndup(s, k);
        if (!f->names[f->n++]) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
        s += k;
    }
    return 0;
}

static void json_fini(void *state) {
    json_state *st = state;
    if (!st) return;
    fields_free(&st->text);
    fields_free(&st->meta);
    free(st->title);
    free(st->records);
    free(st);
}

static int json_init(sl_instance *inst, const void *config, void **state) {
    const json_config *cfg = config;
    if (cfg->max_records < 1) return sl_instance_fail(inst, SL_EFATAL, "max_records must be positive");
    json_state *st = calloc(1, sizeof *st);
    if (!st) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    int rc = fields_parse(inst, "text_fields", cfg->text_fields, &st->text);
    if (!rc) rc = fields_parse(inst, "meta_fields", cfg->meta_fields, &st->meta);
    if (!rc && cfg->title_field && *cfg->title_field && !(st->title = strdup(cfg->title_field)))
        rc = sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    if (!rc && cfg->records && *cfg->records && !(st->records = strdup(cfg->records)))
        rc = sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    if (rc) {
        json_fini(st);
        return rc;
    }
    st->max_records = (size_t)cfg->max_records;
    st->max_output = cfg->max_output ? (size_t)cfg->max_output : (size_t)256 << 20;
    *state = st;
    return 0;
}

/* The value at a dotted path ("user.name"); NULL when absent. */
static json_t *at_path(json_t *v, const char *path) {
    while (v && *path) {
        size_t k = strcspn(path, ".");
        if (!json_is_object(v)) return NULL;
        char key[256];
        if (k >= sizeof key) return NULL;
        memcpy(key, path, k);
        key[k] = '\0';
        v = json_object_get(v, key);
        path += k + (path[k] == '.');
    }
    return v;
}

/* A scalar as text; arrays of scalars joined by ", "; objects compact JSON. */
static int scalar(buf *b, json_t *v) {
    char num[64];
    switch (json_typeof(v)) {
    case JSON_STRING: return buf_add(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf_adds(b, num);
    case JSON_REAL: snprintf(num, sizeof num, "%.17g", json_real_value(v)); return buf_adds(b, num);
    case JSON_TRUE: return buf_adds(b, "true");
    case JSON_FALSE: return buf_adds(b, "false");
    case JSON_NULL: return 0;
    default: break;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    int rc = s ? buf_adds(b, s) : -1;
    free(s);
    return rc;
}

static bool all_scalars(json_t *a) {
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x) if (json_is_object(x) || json_is_array(x)) return false;
    return true;
}

/* The record as "key: value" lines, nested objects' keys dotted. Iterative:
 * a stack of (object, iterator, key prefix length). */
typedef struct kv_frame {
    json_t *obj;
    void *it;
    size_t prefix;
} kv_frame;

static int key_values(buf *out, json_t *rec) {
    if (!json_is_object(rec)) {
        if (json_is_array(rec) && !all_scalars(rec)) {
            size_t i;
            json_t *x;
            int bad = 0;
            json_array_foreach(rec, i, x) {
                if (i && buf_adds(out, "\n")) return -1;
                bad |= key_values(out, x); /* depth is bounded by jansson's 2048 */
            }
            return bad;
        }
        if (json_is_array(rec)) {
            size_t i;
            json_t *x;
            json_array_foreach(rec, i, x) if ((i && buf_adds(out, ", ")) || scalar(out, x)) return -1;
            return 0;
        }
        return scalar(out, rec);
    }
    buf key = {0};
    enum { MAX_KV_DEPTH = 2100 }; /* over jansson's own depth limit */
    kv_frame *st = malloc(MAX_KV_DEPTH * sizeof *st);
    if (!st) return -1;
    size_t n = 0;
    st[n++] = (kv_frame){rec, json_object_iter(rec), 0};
    int rc = 0;
    while (n && !rc) {
        kv_frame *f = &st[n - 1];
        if (!f->it) {
            n--;
            continue;
        }
        const char *k = json_object_iter_key(f->it);
        json_t *v = json_object_iter_value(f->it);
        f->it = json_object_iter_next(f->obj, f->it);
        key.len = f->prefix;
        if ((key.len && buf_adds(&key, ".")) || buf_adds(&key, k)) rc = -1;
        if (rc) break;
        if (json_is_object(v) && json_object_size(v) && n < MAX_KV_DEPTH) {
            st[n++] = (kv_frame){v, json_object_iter(v), key.len};
            continue;
        }
        if (json_is_null(v)) continue;
        if (out->len && buf_adds(out, "\n")) rc = -1;
        if (!rc && (buf_add(out, key.p, key.len) || buf_adds(out, ": "))) rc = -1;
        if (!rc && json_is_array(v) && all_scalars(v)) {
            size_t i;
            json_t *x;
            json_array_foreach(v, i, x) if ((i && buf_adds(out, ", ")) || scalar(out, x)) rc = -1;
        } else if (!rc) {
            rc = scalar(out, v);
        }
    }
    free(key.p);
    free(st);
    return rc;
}

typedef struct ctx {
    sl_call *call;
    sl_doc *doc;
    const json_state *st;
    buf text;
    size_t records, out_bytes;
    bool single; /* the document is one record: meta fields are its metadata too */
} ctx;

static int add(ctx *c, sl_elem_type type, int level, uint32_t line, uint64_t offset) {
    const char *s = c->text.p;
    size_t n = c->text.len;
    while (n && (s[0] == ' ' || s[0] == '\n' || s[0] == '\t' || s[0] == '\r')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
    if (!n) return -1; /* nothing to add */
    c->out_bytes += n;
    if (c->out_bytes > c->st->max_output)
        return sl_fail(c->call, SL_EBADINPUT, "more than %zu bytes of text (at record %zu)",
                       c->st->max_output, c->records);
    int i = sl_doc_add_element(c->doc, type, s, n);
    if (i < 0) return sl_fail(c->call, i, "%s adding an element", sl_strerror(i));
    int rc = sl_elem_set_page(c->doc, (size_t)i, 1);
    if (!rc && level) rc = sl_elem_set_level(c->doc, (size_t)i, level);
    if (!rc && line) rc = sl_elem_set_source(c->doc, (size_t)i, offset, line);
    if (rc) return sl_fail(c->call, rc, "%s", sl_strerror(rc));
    return i;
}

static int record(ctx *c, json_t *rec, uint32_t line, uint64_t offset) {
    if (++c->records > c->st->max_records)
        return sl_fail(c->call, SL_EBADINPUT, "more than %zu records%s", c->st->max_records, "");
    const json_state *st = c->st;
    int rc = 0;
    if (st->title) {
        json_t *t = at_path(rec, st->title);
        c->text.len = 0;
        if (t && !json_is_null(t)) {
            if (scalar(&c->text, t)) return sl_fail(c->call, SL_ENOMEM, "out of memory");
            rc = add(c, SL_EL_HEADING, 1, line, offset);
            if (rc < -1) return rc;
            if (rc >= 0 && c->single && !sl_doc_meta_get(c->doc, "title")) {
                size_t len;
                const char *s = sl_element_text(c->doc, (size_t)rc, &len);
                if (sl_doc_meta_set(c->doc, "title", s) < 0)
                    return sl_fail(c->call, SL_ENOMEM, "out of memory");
            }
        }
    }
    c->text.len = 0;
    if (st->text.n) {
        for (size_t i = 0; i < st->text.n; i++) {
            json_t *v = at_path(rec, st->text.names[i]);
            if (!v || json_is_null(v)) continue;
            if (c->text.len && buf_adds(&c->text, "\n\n"))
                return sl_fail(c->call, SL_ENOMEM, "out of memory");
            if (json_is_object(v) || json_is_array(v) ? key_values(&c->text, v) : scalar(&c->text, v))
                return sl_fail(c->call, SL_ENOMEM, "out of memory");
        }
    } else if (key_values(&c->text, rec)) {
        return sl_fail(c->call, SL_ENOMEM, "out of memory");
    }
    int i = add(c, SL_EL_PARAGRAPH, 0, line, offset);
    if (i < -1) return i;
    for (size_t k = 0; k < st->meta.n; k++) {
        json_t *v = at_path(rec, st->meta.names[k]);
        if (!v || json_is_null(v)) continue;
        buf b = {0};
        if (scalar(&b, v)) {
            free(b.p);
            return sl_fail(c->call, SL_ENOMEM, "out of memory");
        }
        int r2 = 0;
        if (b.p && i >= 0) r2 = sl_elem_set_attr(c->doc, (size_t)i, st->meta.names[k], b.p);
        if (b.p && !r2 && c->single) r2 = sl_doc_meta_set(c->doc, st->meta.names[k], b.p);
        free(b.p);
        if (r2 < 0) return sl_fail(c->call, SL_ENOMEM, "out of memory");
    }
    return 0;
}

static bool is_lines(const sl_doc *doc) {
    const char *mt = sl_doc_media_type(doc), *uri = sl_doc_uri(doc);
    if (mt && (strcmp(mt, "application/x-ndjson") == 0 || strcmp(mt, "application/jsonl") == 0 ||
               strcmp(mt, "application/json-seq") == 0))
        return true;
    size_t n = uri ? strlen(uri) : 0;
    return (n > 6 && strcasecmp(uri + n - 6, ".jsonl") == 0) ||
           (n > 7 && strcasecmp(uri + n - 7, ".ndjson") == 0);
}

static int parse_lines(ctx *c, const char *data, size_t len, size_t skip) {
    uint32_t line = 1;
    for (size_t pos = skip; pos < len; line++) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t k = pos;
        while (k < end && (data[k] == ' ' || data[k] == '\t' || data[k] == '\r')) k++;
        if (k < end) {
            json_error_t e;
            json_t *rec = json_loadb(data + pos, end - pos, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &e);
            if (rec) { /* only whitespace may follow the value on its line */
                size_t after = pos + (size_t)e.position;
                while (after < end && (data[after] == ' ' || data[after] == '\t' || data[after] == '\r'))
                    after++;
                if (after < end) {
                    json_decref(rec);
                    return sl_fail(c->call, SL_EBADINPUT,
                                   "invalid JSON Lines at line %u, byte %zu: more than one value on the line",
                                   line, after);
                }
            } else {
                return sl_fail(c->call, SL_EBADINPUT, "invalid JSON at line %u, column %d (byte %zu): %s",
                               line, e.column, pos + (size_t)(e.position > 0 ? e.position - 1 : 0), e.text);
            }
            int rc = record(c, rec, line, pos);
            json_decref(rec);
            if (rc < -1) return rc;
        }
        pos = end + 1;
    }
    return 0;
}

static int parse_document(ctx *c, const char *data, size_t len, size_t skip) {
    json_error_t e;
    json_t *root = json_loadb(data + skip, len - skip, JSON_DECODE_ANY, &e);
    if (!root) {
        size_t at = skip + (size_t)(e.position > 0 ? e.position - 1 : 0);
        return sl_fail(c->call, SL_EBADINPUT, "invalid JSON at line %d, column %d (byte %zu): %s", e.line,
                       e.column, at, e.text);
    }
    json_t *recs = c->st->records ? at_path(root, c->st->records) : root;
    int rc = 0;
    if (c->st->records && !json_is_array(recs)) {
        rc = sl_fail(c->call, SL_EBADINPUT, "no array at \"%s\" (records)", c->st->records);
    } else if (json_is_array(recs)) {
        size_t i;
        json_t *x;
        c->single = json_array_size(recs) == 1;
        json_array_foreach(recs, i, x) {
            rc = record(c, x, 0, 0);
            if (rc < -1) break;
            rc = 0;
        }
    } else {
        c->single = true;
        rc = record(c, root, text_line_of(data, skip), skip);
        if (rc == -1) rc = 0;
    }
    json_decref(root);
    return rc;
}

static int json_parse_doc(sl_call *call, sl_doc *doc) {
    const json_state *st = sl_call_state(call);
    const char *data = NULL;
    size_t len = 0, bom = 0;
    int in = text_input(call, doc, &data, &len, &bom);
    if (in) return in;
    ctx c = {.call = call, .doc = doc, .st = st};
    size_t before = sl_doc_element_count(doc);
    int rc = is_lines(doc) ? parse_lines(&c, data, len, bom) : parse_document(&c, data, len, bom);
    free(c.text.p);
    if (rc < -1) return rc;
    if (sl_doc_element_count(doc) == before)
        return sl_fail(call, SL_EBADINPUT, c.records ? "no text in %zu records" : "no records", c.records);
    char n[32];
    snprintf(n, sizeof n, "%zu", c.records);
    if (sl_doc_meta_set(doc, "records", n) < 0) return sl_fail(call, SL_ENOMEM, "out of memory");
    return sl_doc_set_page_count(doc, 1);
}

static const char *const media_types[] = {"application/json", "application/x-ndjson", NULL};

static const sl_plugin parse_json_plugin = {
    SL_PLUGIN_HEADER,
    .name = "parse-json",
    .version = "1.0.0",
    .summary = "JSON and JSON Lines into one element per record: chosen text fields, or key: value lines",
    .role = SL_ROLE_PARSER,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(json_config),
    .media_types = media_types,
    .init = json_init,
    .fini = json_fini,
    .parse = json_parse_doc,
};

SL_PLUGIN_EXPORT(parse_json_plugin)
