/* epub.c - parse-epub: EPUB 2 and 3 books into typed elements.
 *
 * An EPUB is a zip: META-INF/container.xml names the package document (the
 * OPF), whose manifest lists the book's files and whose spine gives the
 * reading order. Each XHTML chapter of the spine is read once with libxml2's
 * streaming reader (no tree) and becomes elements the way an HTML page
 * would: h1..h6 headings, paragraphs, lists (one element per top-level list,
 * items on lines, "- " or "N. ", nested ones indented), tables (rows on
 * lines, cells " | "), pre as code, blockquote as a quote, figcaption and
 * caption as captions, loose text in containers as paragraphs. head, script,
 * style and nav are left out, and so is the EPUB 3 navigation document (the
 * table of contents would repeat every heading). Chapter N of the spine, in
 * reading order, is page N.
 *
 * Metadata: title, author (every dc:creator, joined by "; "), date and
 * language from the OPF.
 *
 * The zip is read through the bounded reader (ooxml_zip.c: size, ratio and
 * entry-count limits checked while inflating, unsafe names refused) and the
 * XML through the guarded reader (ooxml_xml.c: no network, no DTD loading,
 * entities never substituted, a DTD that declares entities refused, a depth
 * limit). Each failure names its entry and fails only this document.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include "ooxml_xml.h"
#include "ooxml_zip.h"
#include "textbuf.h"

typedef struct epub_cfg {
    uint64_t max_entry_size;
    uint64_t max_total_size;
    int64_t max_ratio;
    int64_t max_entries;
    int64_t max_depth;
    int64_t max_chapters;
} epub_cfg;

static const sl_option options[] = {
    OX_BOUNDS_OPTIONS(epub_cfg, "64M", "book"),
    {.name = "max_chapters",
     .type = SL_OPT_INT,
     .def = "10000",
     .help = "spine items read; a longer spine fails the book, 1..1000000",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(epub_cfg, max_chapters)},
    {0},
};

typedef struct epub {
    sl_call *call;
    sl_doc *doc;
    ox_package pkg; /* the zip, its bounds, and the reason of its last failure */
    const epub_cfg *cfg;
} epub;

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

/* --- container.xml and the OPF --- */

typedef struct item {
    char *id, *href, *type;
    bool nav;
} item;

typedef struct package {
    item *items;
    size_t nitems, citems;
    char **spine; /* idrefs, in order */
    size_t nspine, cspine;
} package;

static void package_free(package *p) {
    for (size_t i = 0; i < p->nitems; i++) {
        free(p->items[i].id);
        free(p->items[i].href);
        free(p->items[i].type);
    }
    for (size_t i = 0; i < p->nspine; i++) free(p->spine[i]);
    free(p->items);
    free(p->spine);
}

static int unhex(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* An href as a zip entry name: fragment dropped, %XX decoded, resolved
 * against the OPF's folder. NULL when it escapes the root or memory ran out. */
static char *entry_of(const char *opf, const char *href) {
    char dec[1024];
    size_t n = 0;
    for (const char *s = href; *s && *s != '#' && n + 1 < sizeof dec; s++) {
        if (*s == '%' && unhex(s[1]) >= 0 && unhex(s[2]) >= 0) {
            dec[n++] = (char)(unhex(s[1]) * 16 + unhex(s[2]));
            s += 2;
        } else {
            dec[n++] = *s;
        }
    }
    dec[n] = '\0';
    char out[1024];
    if (oz_resolve(opf, dec, out, sizeof out) != 0) return NULL;
    return strdup(out);
}

static int find_opf(epub *e, char *opf, size_t opflen) {
    const char *entry = "META-INF/container.xml";
    ox_reader x;
    char *data;
    int rc = ox_package_part(&e->pkg, entry, false, &x, &data);
    if (rc) return rc;
    opf[0] = '\0';
    while (!opf[0] && ox_package_next(&e->pkg, &x, &rc))
        if (ox_is_start(ox_type(&x), ox_name(&x), "rootfile")) ox_attr(&x, "full-path", opf, opflen);
    ox_part_close(&x, data);
    if (!rc && !opf[0]) rc = sl_fail(e->call, SL_EBADINPUT, "%s names no package document (rootfile)", entry);
    return rc;
}

static int meta_append(epub *e, const char *key, const char *v, size_t n, const char *sep) {
    while (n && is_space(*v)) v++, n--;
    while (n && is_space(v[n - 1])) n--;
    if (!n) return 0;
    const char *old = sl_doc_meta_get(e->doc, key);
    if (old && !sep) return 0; /* the first one counts */
    size_t ol = old ? strlen(old) : 0, sl = old ? strlen(sep) : 0;
    char *s = sl_doc_alloc(e->doc, ol + sl + n + 1);
    if (!s) return SL_ENOMEM;
    if (old) memcpy(s, old, ol), memcpy(s + ol, sep, sl);
    memcpy(s + ol + sl, v, n);
    s[ol + sl + n] = '\0';
    return sl_doc_meta_set(e->doc, key, s);
}

static int read_opf(epub *e, const char *opf, package *p) {
    ox_reader x;
    char *data;
    int rc = ox_package_part(&e->pkg, opf, false, &x, &data);
    if (rc) return rc;
    buf text = {0};
    int in_meta = 0; /* inside a dc:title/creator/date/language */
    const char *key = NULL, *sep = NULL;
    char id[256], href[1024], type[128], props[256];
    while (ox_package_next(&e->pkg, &x, &rc)) {
        int t = ox_type(&x);
        const char *name = ox_name(&x);
        if (t == XML_READER_TYPE_ELEMENT) {
            const char *uri = (const char *)xmlTextReaderConstNamespaceUri(x.r);
            bool dc = uri && strstr(uri, "purl.org/dc/elements");
            if (dc && !ox_empty(&x)) {
                key = strcmp(name, "title") == 0      ? "title"
                      : strcmp(name, "creator") == 0  ? "author"
                      : strcmp(name, "date") == 0     ? "date"
                      : strcmp(name, "language") == 0 ? "language"
                                                      : NULL;
                sep = key && strcmp(key, "author") == 0 ? "; " : NULL;
                in_meta = key != NULL;
                text.len = 0;
            } else if (strcmp(name, "item") == 0) {
                if (!ox_attr(&x, "id", id, sizeof id) || !ox_attr(&x, "href", href, sizeof href)) continue;
                if (!ox_attr(&x, "media-type", type, sizeof type)) type[0] = '\0';
                if (!ox_attr(&x, "properties", props, sizeof props)) props[0] = '\0';
                if (p->nitems == p->citems) {
                    size_t cap = p->citems ? p->citems * 2 : 32;
                    item *v = realloc(p->items, cap * sizeof *v);
                    if (!v) {
                        rc = SL_ENOMEM;
                        break;
                    }
                    p->items = v;
                    p->citems = cap;
                }
                item *it = &p->items[p->nitems];
                it->id = strdup(id);
                it->href = entry_of(opf, href);
                it->type = strdup(type);
                it->nav = strstr(props, "nav") != NULL;
                if (!it->id || !it->type) {
                    free(it->id), free(it->href), free(it->type);
                    rc = SL_ENOMEM;
                    break;
                }
                p->nitems++;
            } else if (strcmp(name, "itemref") == 0) {
                if (!ox_attr(&x, "idref", id, sizeof id)) continue;
                if ((int64_t)p->nspine >= e->cfg->max_chapters) {
                    rc = sl_fail(e->call, SL_EBADINPUT,
                                 "%s: the spine has more than max_chapters (%lld) items", opf,
                                 (long long)e->cfg->max_chapters);
                    break;
                }
                if (p->nspine == p->cspine) {
                    size_t cap = p->cspine ? p->cspine * 2 : 32;
                    char **v = realloc(p->spine, cap * sizeof *v);
                    if (!v) {
                        rc = SL_ENOMEM;
                        break;
                    }
                    p->spine = v;
                    p->cspine = cap;
                }
                if (!(p->spine[p->nspine] = strdup(id))) {
                    rc = SL_ENOMEM;
                    break;
                }
                p->nspine++;
            }
        } else if (t == XML_READER_TYPE_END_ELEMENT && in_meta) {
            rc = meta_append(e, key, text.p ? text.p : "", text.len, sep);
            in_meta = 0;
        } else if (in_meta && (t == XML_READER_TYPE_TEXT || t == XML_READER_TYPE_SIGNIFICANT_WHITESPACE)) {
            if (buf_adds(&text, ox_value(&x))) rc = SL_ENOMEM;
        }
    }
    if (rc == SL_ENOMEM) rc = sl_fail(e->call, SL_ENOMEM, "%s: out of memory", opf);
    free(text.p);
    ox_part_close(&x, data);
    return rc;
}

/* --- XHTML chapters --- */

#define MAX_LISTS 16
#define MAX_INDENT 8

typedef struct walker {
    epub *e;
    uint32_t page;
    buf cur;           /* the element being built */
    sl_elem_type type; /* of the open block or capture; 0: loose text */
    int level;
    int blk_depth;  /* depth of the open simple block (heading, p, pre, caption), -1 none */
    int cap_depth;  /* depth of the captured list, table or quote, -1 none */
    int skip_depth; /* inside head/script/style/nav, -1 none */
    int pre;        /* inside pre */
    bool ordered[MAX_LISTS];
    int count[MAX_LISTS];
    int nlists; /* list nesting inside a capture (may pass MAX_LISTS) */
    int rows, cells;
    size_t keep; /* trim_end stops here: the end of the last marker written */
} walker;

static int emit(walker *w, sl_elem_type type) {
    const char *s = w->cur.p ? w->cur.p : "";
    size_t n = w->cur.len;
    w->cur.len = 0;
    w->keep = 0;
    if (type == SL_EL_TABLE) { /* a first cell may be empty: only blank lines go */
        while (n && s[0] == '\n') s++, n--;
        while (n && is_space(s[n - 1])) n--;
        if (n == strspn(s, " |\n")) n = 0;
    } else if (type == SL_EL_CODE) {
        while (n && (s[0] == '\n' || s[0] == '\r')) s++, n--;
        while (n && is_space(s[n - 1])) n--;
    } else {
        while (n && is_space(*s)) s++, n--;
        while (n && is_space(s[n - 1])) n--;
    }
    if (!n) return 0;
    int i = sl_doc_add_element(w->e->doc, type, s, n);
    if (i < 0) return i;
    int rc = sl_elem_set_page(w->e->doc, (size_t)i, w->page);
    if (!rc && type == SL_EL_HEADING) rc = sl_elem_set_level(w->e->doc, (size_t)i, w->level);
    return rc;
}

/* Loose text (outside any block) becomes a paragraph at the next boundary. */
static int flush_loose(walker *w) {
    if (w->blk_depth >= 0 || w->cap_depth >= 0) return 0;
    return emit(w, SL_EL_PARAGRAPH);
}

static bool ends_with_space(const buf *b) { return !b->len || is_space(b->p[b->len - 1]); }

static int add_text(walker *w, const char *s) {
    if (!s) return 0;
    if (w->pre) return buf_adds(&w->cur, s);
    /* HTML whitespace: every run is one space */
    for (const char *p = s; *p;) {
        if (is_space(*p)) {
            while (*p && is_space(*p)) p++;
            if (!ends_with_space(&w->cur) && buf_adds(&w->cur, " ")) return -1;
        } else {
            const char *q = p;
            while (*q && !is_space(*q)) q++;
            if (buf_add(&w->cur, p, (size_t)(q - p))) return -1;
            p = q;
        }
    }
    return 0;
}

static int heading_level(const char *n) {
    return n[0] == 'h' && n[1] >= '1' && n[1] <= '6' && !n[2] ? n[1] - '0' : 0;
}

static bool in_set(const char *name, const char *const *set) {
    for (; *set; set++)
        if (strcmp(name, *set) == 0) return true;
    return false;
}

static const char *const skipped[] = {"head", "script", "style", "nav", "template", NULL};
static const char *const containers[] = {
    "div",    "section", "article", "body", "header",   "footer", "aside", "main", "figure", "address",
    "hgroup", "details", "summary", "form", "fieldset", "hr",     "dd",    "dt",   "center", NULL};

/* Drops the spaces the last text left before a line or cell boundary. */
static void trim_end(walker *w) {
    if (w->pre) return;
    while (w->cur.len > w->keep && (w->cur.p[w->cur.len - 1] == ' ' || w->cur.p[w->cur.len - 1] == '\t'))
        w->cur.len--;
    if (w->cur.p) w->cur.p[w->cur.len] = '\0';
}

/* A block boundary inside a captured element: lines in a quote, a space
 * elsewhere (a list item's second paragraph, a cell's). */
static int separate(walker *w) {
    if (w->type == SL_EL_QUOTE) {
        trim_end(w);
        return w->cur.len && buf_adds(&w->cur, "\n") ? -1 : 0;
    }
    return ends_with_space(&w->cur) ? 0 : buf_adds(&w->cur, " ");
}

static int on_start(walker *w, ox_reader *x, const char *name, int depth) {
    bool empty = ox_empty(x);
    if (in_set(name, skipped)) {
        if (!empty) w->skip_depth = depth;
        return 0;
    }
    if (strcmp(name, "br") == 0)
        return buf_adds(&w->cur, w->pre || w->type == SL_EL_QUOTE || w->cap_depth < 0 ? "\n" : " ");
    bool list = strcmp(name, "ul") == 0 || strcmp(name, "ol") == 0;
    if (w->cap_depth >= 0) { /* inside a list, table or quote */
        if (list && !empty) {
            if (w->nlists < MAX_LISTS) w->ordered[w->nlists] = name[0] == 'o', w->count[w->nlists] = 0;
            w->nlists++;
        } else if (strcmp(name, "li") == 0) {
            int l = w->nlists ? w->nlists - 1 : 0;
            int lv = l < MAX_LISTS ? l : MAX_LISTS - 1;
            char marker[32] = "- ";
            trim_end(w);
            if (w->nlists && w->ordered[lv]) snprintf(marker, sizeof marker, "%d. ", ++w->count[lv]);
            int bad = w->cur.len ? buf_adds(&w->cur, "\n") : 0;
            bad |= buf_fill(&w->cur, ' ', (size_t)(l < MAX_INDENT ? l : MAX_INDENT) * 2);
            bad |= buf_adds(&w->cur, marker);
            w->keep = w->cur.len;
            return bad;
        } else if (strcmp(name, "tr") == 0 && w->type == SL_EL_TABLE) {
            w->cells = 0;
            trim_end(w);
            int bad = w->rows++ ? buf_adds(&w->cur, "\n") : 0;
            w->keep = w->cur.len;
            return bad;
        } else if ((strcmp(name, "td") == 0 || strcmp(name, "th") == 0) && w->type == SL_EL_TABLE) {
            trim_end(w);
            int bad = w->cells++ ? buf_adds(&w->cur, " | ") : 0;
            w->keep = w->cur.len;
            return bad;
        } else if (strcmp(name, "pre") == 0 && !empty) {
            w->pre++;
            return separate(w);
        } else if (strcmp(name, "p") == 0 || heading_level(name) || in_set(name, containers) ||
                   strcmp(name, "blockquote") == 0) {
            return separate(w);
        }
        return 0;
    }
    if (w->blk_depth >= 0) { /* a block inside a paragraph or heading: keep it in */
        if (strcmp(name, "p") == 0 || in_set(name, containers) || list || strcmp(name, "li") == 0)
            return ends_with_space(&w->cur) ? 0 : buf_adds(&w->cur, " ");
        return 0;
    }
    int level = heading_level(name);
    sl_elem_type block = level                                                         ? SL_EL_HEADING
                         : strcmp(name, "p") == 0                                      ? SL_EL_PARAGRAPH
                         : strcmp(name, "pre") == 0                                    ? SL_EL_CODE
                         : strcmp(name, "figcaption") == 0 || !strcmp(name, "caption") ? SL_EL_CAPTION
                                                                                       : 0;
    sl_elem_type capture = list                              ? SL_EL_LIST
                           : strcmp(name, "table") == 0      ? SL_EL_TABLE
                           : strcmp(name, "dl") == 0         ? SL_EL_LIST
                           : strcmp(name, "blockquote") == 0 ? SL_EL_QUOTE
                                                             : 0;
    if (block || capture || in_set(name, containers) || strcmp(name, "li") == 0) {
        int rc = flush_loose(w);
        if (rc) return rc;
    }
    if (empty) return 0;
    if (block) {
        w->type = block;
        w->level = level;
        w->blk_depth = depth;
        if (block == SL_EL_CODE) w->pre++;
    } else if (capture) {
        w->type = capture;
        w->cap_depth = depth;
        w->rows = w->cells = 0;
        w->keep = 0;
        w->nlists = 0;
        if (list) {
            w->ordered[0] = name[0] == 'o';
            w->count[0] = 0;
            w->nlists = 1;
        }
    }
    return 0;
}

static int on_end(walker *w, const char *name, int depth) {
    if (w->skip_depth >= 0) {
        if (depth == w->skip_depth) w->skip_depth = -1;
        return 0;
    }
    if (strcmp(name, "pre") == 0 && w->pre) w->pre--;
    if (w->cap_depth >= 0) {
        if ((strcmp(name, "ul") == 0 || strcmp(name, "ol") == 0) && w->nlists) w->nlists--;
        if (depth != w->cap_depth) return 0;
        w->cap_depth = -1;
        int rc = emit(w, w->type);
        w->type = 0;
        return rc;
    }
    if (w->blk_depth >= 0) {
        if (depth != w->blk_depth) return 0;
        w->blk_depth = -1;
        int rc = emit(w, w->type);
        w->type = 0;
        return rc;
    }
    if (in_set(name, containers) || strcmp(name, "li") == 0) return flush_loose(w);
    return 0;
}

/* Entity references stay unexpanded by the parser; the common named ones
 * of XHTML are written as their characters, others as written. */
static int on_entity(walker *w, const char *name) {
    static const struct {
        const char *name, *text;
    } named[] = {
        {"nbsp", "\xC2\xA0"},
        {"amp", "&"},
        {"lt", "<"},
        {"gt", ">"},
        {"quot", "\""},
        {"apos", "'"},
        {"copy", "\xC2\xA9"},
        {"reg", "\xC2\xAE"},
        {"trade", "\xE2\x84\xA2"},
        {"mdash", "\xE2\x80\x94"},
        {"ndash", "\xE2\x80\x93"},
        {"hellip", "\xE2\x80\xA6"},
        {"laquo", "\xC2\xAB"},
        {"raquo", "\xC2\xBB"},
        {"lsquo", "\xE2\x80\x98"},
        {"rsquo", "\xE2\x80\x99"},
        {"ldquo", "\xE2\x80\x9C"},
        {"rdquo", "\xE2\x80\x9D"},
        {"euro", "\xE2\x82\xAC"},
        {"shy", ""},
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (strcmp(named[i].name, name) == 0) return buf_adds(&w->cur, named[i].text);
    return buf_adds(&w->cur, "&") || buf_adds(&w->cur, name) || buf_adds(&w->cur, ";");
}

static int read_chapter(epub *e, const char *entry, uint32_t page) {
    ox_reader x;
    char *data;
    int rc = ox_package_part(&e->pkg, entry, false, &x, &data);
    if (rc) return rc;
    walker w = {.e = e, .page = page, .blk_depth = -1, .cap_depth = -1, .skip_depth = -1};
    while (ox_package_next(&e->pkg, &x, &rc)) {
        int t = ox_type(&x);
        int depth = ox_depth(&x);
        if (w.skip_depth >= 0 && t != XML_READER_TYPE_END_ELEMENT) continue;
        switch (t) {
        case XML_READER_TYPE_ELEMENT: rc = on_start(&w, &x, ox_name(&x), depth); break;
        case XML_READER_TYPE_END_ELEMENT: rc = on_end(&w, ox_name(&x), depth); break;
        case XML_READER_TYPE_TEXT:
        case XML_READER_TYPE_CDATA:
        case XML_READER_TYPE_WHITESPACE:
        case XML_READER_TYPE_SIGNIFICANT_WHITESPACE: rc = add_text(&w, ox_value(&x)); break;
        case XML_READER_TYPE_ENTITY_REFERENCE: rc = on_entity(&w, ox_name(&x)); break;
        default: break;
        }
        if (rc == -1) rc = SL_ENOMEM;
        if (rc) rc = sl_fail(e->call, rc, "%s: %s", entry, sl_strerror(rc));
    }
    if (!rc) {
        rc = w.type && (w.blk_depth >= 0 || w.cap_depth >= 0) ? emit(&w, w.type) : emit(&w, SL_EL_PARAGRAPH);
        if (rc) rc = sl_fail(e->call, rc, "%s: %s", entry, sl_strerror(rc));
    }
    free(w.cur.p);
    ox_part_close(&x, data);
    return rc;
}

/* --- the plugin --- */

static int epub_init(sl_instance *inst, const void *config, void **state) {
    const epub_cfg *c = config;
    ox_bounds b = OX_BOUNDS_OF(c);
    int rc = ox_bounds_check(inst, &b);
    if (rc) return rc;
    if (c->max_chapters < 1 || c->max_chapters > 1000000)
        return sl_instance_fail(inst, SL_EFATAL, "max_chapters must be 1..1000000, not %lld",
                                (long long)c->max_chapters);
    epub_cfg *st = malloc(sizeof *st);
    if (!st) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    *st = *c;
    *state = st;
    return 0;
}

static void epub_fini(void *state) { free(state); }

static bool is_xhtml(const char *type) {
    return strcmp(type, "application/xhtml+xml") == 0 || strcmp(type, "text/html") == 0;
}

static int epub_parse(sl_call *call, sl_doc *doc) {
    const epub_cfg *cfg = sl_call_state(call);
    epub e = {.call = call, .doc = doc, .cfg = cfg};
    ox_bounds b = OX_BOUNDS_OF(cfg);
    int open = ox_package_open(&e.pkg, call, doc, &b, 1);
    if (open) return open;
    char opf[1024];
    package p = {0};
    size_t before = sl_doc_element_count(doc);
    int rc = find_opf(&e, opf, sizeof opf);
    if (!rc) rc = read_opf(&e, opf, &p);
    uint32_t page = 0;
    for (size_t i = 0; !rc && i < p.nspine; i++) {
        const item *it = NULL;
        for (size_t k = 0; k < p.nitems && !it; k++)
            if (strcmp(p.items[k].id, p.spine[i]) == 0) it = &p.items[k];
        if (!it) {
            rc = sl_fail(call, SL_EBADINPUT, "%s: spine item '%s' is not in the manifest", opf, p.spine[i]);
            break;
        }
        if (it->nav || !is_xhtml(it->type)) continue;
        if (!it->href) {
            rc = sl_fail(call, SL_EBADINPUT, "%s: manifest item '%s' points outside the book", opf, it->id);
            break;
        }
        rc = read_chapter(&e, it->href, ++page);
    }
    package_free(&p);
    ox_package_close(&e.pkg);
    if (rc) return rc;
    if (!page) return sl_fail(call, SL_EBADINPUT, "%s: the spine has no XHTML chapter", opf);
    if (sl_doc_element_count(doc) == before) return sl_fail(call, SL_EBADINPUT, "no text");
    return sl_doc_set_page_count(doc, page);
}

static const char *const media_types[] = {"application/epub+zip", NULL};

static const sl_plugin parse_epub_plugin = {
    SL_PLUGIN_HEADER,
    .name = "parse-epub",
    .version = "1.0.0",
    .summary = "EPUB books (spine order, XHTML chapters) into headings, paragraphs, lists, tables, code",
    .role = SL_ROLE_PARSER,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(epub_cfg),
    .media_types = media_types,
    .init = epub_init,
    .fini = epub_fini,
    .parse = epub_parse,
};

SL_PLUGIN_EXPORT(parse_epub_plugin)
