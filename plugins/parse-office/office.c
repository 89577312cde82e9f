/* office.c - parse-office: Office Open XML documents (DOCX, PPTX, XLSX)
 * into typed elements.
 *
 * An OOXML file is a zip "package" of XML parts tied together by
 * relationship files (_rels/NAME.rels). This file holds the plugin: options and
 * their range checks, the package plumbing the three readers share (bounded
 * zip reads through ooxml_zip.c, guarded streaming XML through ooxml_xml.c,
 * relationships), the metadata from docProps/core.xml, and the dispatch by
 * media type to docx.c, pptx.c or xlsx.c.
 *
 * Every part is read once with libxml2's streaming reader; nothing builds a
 * tree. A hostile package (a zip bomb, a DTD, deep nesting, a damaged or
 * truncated zip, unsafe entry names) fails its document with a reason that
 * names the entry, and never more than that document.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "office.h"

static const sl_option options[] = {
    OX_BOUNDS_OPTIONS(office_cfg, "128M", "file"),
    {.name = "max_rows",
     .type = SL_OPT_INT,
     .def = "10000",
     .help = "XLSX rows read per sheet; the rest are left out and the sheet marked truncated, 1..10000000",
     .offset = offsetof(office_cfg, max_rows)},
    {.name = "notes",
     .type = SL_OPT_BOOL,
     .def = "true",
     .help = "PPTX: speaker notes as elements after their slide",
     .offset = offsetof(office_cfg, notes)},
    {0},
};

/* --- package plumbing --- */

static const char *last_segment(const char *s) {
    const char *slash = strrchr(s, '/');
    return slash ? slash + 1 : s;
}

/* strlcpy: copies what fits, always terminated. */
static void copy(char *dst, size_t n, const char *src) {
    size_t len = strlen(src);
    if (len >= n) len = n - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

int office_rels_read(office *o, const char *part, office_rels *rels) {
    rels->v = NULL;
    rels->n = 0;
    char entry[600];
    const char *slash = strrchr(part, '/');
    size_t dir = slash ? (size_t)(slash - part) + 1 : 0;
    if (snprintf(entry, sizeof entry, "%.*s_rels/%s.rels", (int)dir, part, part + dir) >= (int)sizeof entry)
        return sl_fail(o->call, SL_EBADINPUT, "%s: part name too long", part);
    ox_reader x;
    char *data;
    int rc = office_part(o, entry, true, &x, &data);
    if (rc) return rc < 0 ? rc : 0;
    size_t cap = 0;
    while (office_next(o, &x, &rc)) {
        if (!ox_is_start(ox_type(&x), ox_name(&x), "Relationship")) continue;
        if (rels->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            office_rel *v = realloc(rels->v, ncap * sizeof *v);
            if (!v) {
                rc = sl_fail(o->call, SL_ENOMEM, "%s: out of memory", entry);
                break;
            }
            rels->v = v;
            cap = ncap;
        }
        office_rel *rel = &rels->v[rels->n];
        char type[512], target[512], mode[32];
        if (!ox_attr(&x, "Id", rel->id, sizeof rel->id)) continue;
        copy(rel->type, sizeof rel->type, ox_attr(&x, "Type", type, sizeof type) ? last_segment(type) : "");
        rel->target[0] = '\0';
        bool external = ox_attr(&x, "TargetMode", mode, sizeof mode) && strcmp(mode, "External") == 0;
        if (!external && ox_attr(&x, "Target", target, sizeof target) &&
            oz_resolve(part, target, rel->target, sizeof rel->target) != 0)
            rel->target[0] = '\0';
        rels->n++;
    }
    ox_part_close(&x, data);
    if (rc) office_rels_free(rels);
    return rc;
}

void office_rels_free(office_rels *rels) {
    free(rels->v);
    rels->v = NULL;
    rels->n = 0;
}

const office_rel *office_rel_by_id(const office_rels *rels, const char *id) {
    for (size_t i = 0; i < rels->n; i++)
        if (strcmp(rels->v[i].id, id) == 0) return &rels->v[i];
    return NULL;
}

const office_rel *office_rel_by_type(const office_rels *rels, const char *type) {
    for (size_t i = 0; i < rels->n; i++)
        if (strcmp(rels->v[i].type, type) == 0 && rels->v[i].target[0]) return &rels->v[i];
    return NULL;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int office_emit(office *o, sl_elem_type type, int level, uint32_t page, const char *s, size_t n) {
    /* A table's first cell may be empty: only its blank lines go. */
    bool table = type == SL_EL_TABLE;
    while (n && (table ? *s == '\n' : is_space(*s))) s++, n--;
    while (n && (table ? s[n - 1] == '\n' : is_space(s[n - 1]))) n--;
    if (!n || (table && n == strspn(s, " |\n"))) return -1;
    int i = sl_doc_add_element(o->doc, type, s, n);
    if (i < 0) return sl_fail(o->call, i, "%s adding an element", sl_strerror(i));
    int rc = sl_elem_set_page(o->doc, (size_t)i, page);
    if (!rc && type == SL_EL_HEADING) rc = sl_elem_set_level(o->doc, (size_t)i, level);
    if (rc) return sl_fail(o->call, rc, "%s adding an element", sl_strerror(rc));
    return i;
}

int office_text(buf *b, const char *s) { return s ? buf_adds(b, s) : 0; }

/* --- docProps/core.xml: title, author, dates, subject --- */

static int core_properties(office *o) {
    static const struct {
        const char *local, *key;
    } wanted[] = {
        {"title", "title"},       {"creator", "author"},          {"created", "created"},
        {"modified", "modified"}, {"subject", "subject"},         {"language", "language"},
        {"keywords", "keywords"}, {"description", "description"},
    };
    office_rels root;
    int rc = office_rels_read(o, "", &root);
    if (rc) return rc;
    const office_rel *rel = office_rel_by_type(&root, "core-properties");
    char entry[512];
    snprintf(entry, sizeof entry, "%s", rel ? rel->target : "docProps/core.xml");
    office_rels_free(&root);
    ox_reader x;
    char *data;
    rc = office_part(o, entry, true, &x, &data);
    if (rc) return rc < 0 ? rc : 0;
    buf text = {0};
    int want = -1, depth = -1;
    while (office_next(o, &x, &rc)) {
        int type = ox_type(&x);
        if (type == XML_READER_TYPE_ELEMENT && ox_depth(&x) == 1 && !ox_empty(&x)) {
            const char *name = ox_name(&x);
            for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++)
                if (strcmp(name, wanted[i].local) == 0) want = (int)i, depth = 1, text.len = 0;
        } else if ((type == XML_READER_TYPE_TEXT || type == XML_READER_TYPE_SIGNIFICANT_WHITESPACE) &&
                   want >= 0) {
            if (office_text(&text, ox_value(&x)))
                rc = sl_fail(o->call, SL_ENOMEM, "%s: out of memory", entry);
        } else if (type == XML_READER_TYPE_END_ELEMENT && want >= 0 && ox_depth(&x) == depth) {
            const char *s = text.p ? text.p : "";
            size_t n = text.len;
            while (n && is_space(*s)) s++, n--;
            while (n && is_space(s[n - 1])) n--;
            if (n) {
                char *v = sl_doc_strndup(o->doc, s, n);
                rc = v ? sl_doc_meta_set(o->doc, wanted[want].key, v) : SL_ENOMEM;
                if (rc) rc = sl_fail(o->call, rc, "%s: %s", entry, sl_strerror(rc));
            }
            want = -1;
        }
    }
    free(text.p);
    ox_part_close(&x, data);
    return rc;
}

/* --- the plugin --- */

static int office_init(sl_instance *inst, const void *config, void **state) {
    const office_cfg *c = config;
    ox_bounds b = OX_BOUNDS_OF(c);
    int rc = ox_bounds_check(inst, &b);
    if (rc) return rc;
    if (c->max_rows < 1 || c->max_rows > 10000000)
        return sl_instance_fail(inst, SL_EFATAL, "max_rows must be 1..10000000, not %lld",
                                (long long)c->max_rows);
    office_cfg *st = malloc(sizeof *st);
    if (!st) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    *st = *c;
    *state = st;
    return 0;
}

static void office_fini(void *state) { free(state); }

#define MT_DOCX "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
#define MT_PPTX "application/vnd.openxmlformats-officedocument.presentationml.presentation"
#define MT_XLSX "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

static int office_parse(sl_call *call, sl_doc *doc) {
    const office_cfg *cfg = sl_call_state(call);
    office o = {.call = call, .doc = doc, .cfg = cfg};
    ox_bounds b = OX_BOUNDS_OF(cfg);
    int open = ox_package_open(&o.pkg, call, doc, &b, 0);
    if (open) return open;

    const char *mt = sl_doc_media_type(doc);
    int kind = !mt                        ? 0
               : strcmp(mt, MT_DOCX) == 0 ? 'd'
               : strcmp(mt, MT_PPTX) == 0 ? 'p'
               : strcmp(mt, MT_XLSX) == 0 ? 'x'
                                          : 0;
    if (!kind) { /* a package under another media type: its main part decides */
        kind = oz_has(o.pkg.zip, "word/document.xml")      ? 'd'
               : oz_has(o.pkg.zip, "ppt/presentation.xml") ? 'p'
               : oz_has(o.pkg.zip, "xl/workbook.xml")      ? 'x'
                                                           : 0;
    }
    size_t before = sl_doc_element_count(doc);
    int rc = 0;
    if (!kind)
        rc = sl_fail(call, SL_EBADINPUT, "not an Office Open XML package (no word/, ppt/ or xl/ main part)");
    if (!rc) rc = core_properties(&o);
    if (!rc) rc = kind == 'd' ? office_docx(&o) : kind == 'p' ? office_pptx(&o) : office_xlsx(&o);
    ox_package_close(&o.pkg);
    if (rc) return rc;
    if (sl_doc_element_count(doc) == before) return sl_fail(call, SL_EBADINPUT, "no text");
    if (!sl_doc_meta_get(doc, "title") &&
        kind != 'x') { /* the first title or top heading (not a sheet name) */
        for (size_t i = before, n = sl_doc_element_count(doc); i < n; i++) {
            sl_elem_type t = sl_element_type(doc, i);
            if (t == SL_EL_TITLE || (t == SL_EL_HEADING && sl_element_level(doc, i) == 1)) {
                rc = sl_doc_meta_set(doc, "title", sl_element_text(doc, i, NULL));
                break;
            }
        }
    }
    if (rc) return sl_fail(call, rc, "%s setting the title", sl_strerror(rc));
    return 0;
}

static const char *const media_types[] = {MT_DOCX, MT_PPTX, MT_XLSX, NULL};

static const sl_plugin parse_office_plugin = {
    SL_PLUGIN_HEADER,
    .name = "parse-office",
    .version = "1.0.0",
    .summary =
        "Office Open XML (DOCX, PPTX, XLSX) into headings, paragraphs, lists, tables, slides, notes and "
        "sheets",
    .role = SL_ROLE_PARSER,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(office_cfg),
    .media_types = media_types,
    .init = office_init,
    .fini = office_fini,
    .parse = office_parse,
};

SL_PLUGIN_EXPORT(parse_office_plugin)
