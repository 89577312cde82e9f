/* ooxml_xml.c - the guarded streaming XML reader (see ooxml_xml.h). */
#include "ooxml_xml.h"

#include <libxml/hash.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void quiet(void *ctx, const char *fmt, ...) {
    (void)ctx;
    (void)fmt;
}

/* libxml2's global set-up, once: the readers themselves are per call. */
static void init_once(void) { xmlInitParser(); }

void ox_init(void) { pthread_once(&once, init_once); }

static void on_error(void *arg, xmlErrorPtr e) {
    ox_reader *x = arg;
    if (!e || e->level < XML_ERR_ERROR || x->failed) return;
    char msg[400];
    snprintf(msg, sizeof msg, "%s", e->message ? e->message : "malformed XML");
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
    if (strstr(msg, "Excessive depth")) /* libxml2's own limit, not a flag anyone should lift */
        snprintf(x->err, sizeof x->err, "%s: elements nested deeper than 256 (libxml2's limit) at line %d",
                 x->entry, e->line);
    else
        snprintf(x->err, sizeof x->err, "%s: malformed XML at line %d: %s", x->entry, e->line, msg);
    x->failed = 1;
}

static const char *find(const char *s, const char *end, const char *what) {
    size_t n = strlen(what);
    for (; s && (size_t)(end - s) >= n; s++) {
        s = memchr(s, what[0], (size_t)(end - s) - n + 1);
        if (!s) return NULL;
        if (memcmp(s, what, n) == 0) return s;
    }
    return NULL;
}

/* An XML declaration's encoding other than the ones libxml2 decodes itself:
 * the parts of these formats are UTF-8 or UTF-16, and anything else would
 * go through iconv for nothing. 1 (with the reason) when refused. */
static int bad_encoding(ox_reader *x, const char *pi, const char *end) {
    static const char *const ok[] = {"UTF-8",    "UTF8",  "UTF-16",     "UTF-16LE", "UTF-16BE",
                                     "US-ASCII", "ASCII", "ISO-8859-1", "LATIN1",   NULL};
    if (end - pi < 5 || memcmp(pi, "<?xml", 5) != 0) return 0;
    const char *e = find(pi, end, "encoding");
    if (!e) return 0;
    e += 8;
    while (e < end && (*e == ' ' || *e == '=' || *e == '\t')) e++;
    if (e >= end || (*e != '"' && *e != '\'')) return 0; /* malformed: the parser says so */
    const char *v = e + 1, *q = memchr(v, *e, (size_t)(end - v));
    if (!q) return 0;
    size_t n = (size_t)(q - v);
    for (const char *const *k = ok; *k; k++)
        if (strlen(*k) == n && strncasecmp(v, *k, n) == 0) return 0;
    char name[48];
    size_t k = 0;
    for (; k < n && k + 1 < sizeof name; k++) /* the name as ASCII: messages stay valid UTF-8 */
        name[k] = v[k] > 0x20 && v[k] < 0x7f ? v[k] : '?';
    name[k] = '\0';
    snprintf(x->err, sizeof x->err, "%s: unsupported encoding '%s' (UTF-8 or UTF-16 expected)", x->entry,
             name);
    return 1;
}

/* The prolog, before libxml2 sees anything: the reader parses ahead of the
 * nodes it reports, so a small file's entity references would be expanded
 * before its DOCTYPE node came back. 0, or -1 with the reason. */
static int check_prolog(ox_reader *x, const char *data, size_t len) {
    const char *p = data, *end = data + len;
    const char *decl = data + (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0);
    size_t head = (size_t)(end - decl) < 512 ? (size_t)(end - decl) : 512;
    const char *decl_end = memchr(decl, '>', head);
    if (bad_encoding(x, decl, decl_end ? decl_end : decl + head)) return -1;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || (unsigned char)*p == 0xEF ||
                           (unsigned char)*p == 0xBB || (unsigned char)*p == 0xBF))
            p++;
        if (end - p >= 2 && p[0] == '<' && p[1] == '?') {
            p = find(p, end, "?>");
        } else if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
            p = find(p + 4, end, "-->");
        } else {
            break;
        }
        if (!p) return 0; /* unterminated: the parser says so */
        p += 2;
    }
    if (end - p < 9 || memcmp(p, "<!DOCTYPE", 9) != 0) return 0;
    if (!x->allow_doctype) {
        snprintf(x->err, sizeof x->err, "%s: a document type declaration (DTD), which this format forbids",
                 x->entry);
        return -1;
    }
    /* The internal subset runs to the first "]" followed by ">"; an entity
     * declared in it fails the part. (A "]>" hidden in a quoted value ends
     * this look early: the DTD node check and libxml2's own amplification
     * limit stand behind it.) */
    const char *open = find(p, end, "[");
    const char *gt = find(p, end, ">");
    if (!open || (gt && gt < open)) return 0;
    const char *close = open;
    while ((close = find(close + 1, end, "]")) != NULL) {
        const char *q = close + 1;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')) q++;
        if (q < end && *q == '>') break;
    }
    const char *ent = find(open, close ? close : end, "<!ENTITY");
    if (ent) {
        snprintf(x->err, sizeof x->err,
                 "%s: the DTD declares XML entities, which are never expanded (a billion-laughs file?)",
                 x->entry);
        return -1;
    }
    return 0;
}

int ox_open(ox_reader *x, const char *data, size_t len, const char *entry, int max_depth, int allow_doctype) {
    ox_init();
    memset(x, 0, sizeof *x);
    x->entry = entry;
    x->max_depth = max_depth;
    x->allow_doctype = allow_doctype;
    if (len > (size_t)0x7fffffff) {
        snprintf(x->err, sizeof x->err, "%s: %zu bytes of XML, more than the parser takes (2 GiB)", entry,
                 len);
        x->failed = 1;
        return -1;
    }
    if (check_prolog(x, data, len)) {
        x->failed = 1;
        return -1;
    }
    xmlSetGenericErrorFunc(NULL, quiet); /* per thread: encoding errors bypass the reader's handler */
    int opts =
        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA | XML_PARSE_COMPACT;
    x->r = xmlReaderForMemory(data, (int)len, entry, NULL, opts);
    if (!x->r) {
        snprintf(x->err, sizeof x->err, "%s: cannot start the XML reader (out of memory?)", entry);
        return -1;
    }
    xmlTextReaderSetStructuredErrorHandler(x->r, on_error, x);
    return 0;
}

void ox_close(ox_reader *x) {
    if (x->r) xmlFreeTextReader(x->r);
    x->r = NULL;
}

/* A DTD that declares entities: the billion-laughs shape, refused whole. */
static int declares_entities(ox_reader *x) {
    xmlNodePtr node = xmlTextReaderCurrentNode(x->r);
    if (!node || node->type != XML_DTD_NODE) return 0;
    xmlDtdPtr dtd = (xmlDtdPtr)node;
    return (dtd->entities && xmlHashSize(dtd->entities) > 0) ||
           (dtd->pentities && xmlHashSize(dtd->pentities) > 0);
}

int ox_next(ox_reader *x) {
    if (x->failed) return -1;
    int rc = xmlTextReaderRead(x->r);
    if (x->failed) return -1;
    if (rc < 0) {
        snprintf(x->err, sizeof x->err, "%s: malformed XML", x->entry);
        x->failed = 1;
        return -1;
    }
    if (rc == 0) return 0;
    int type = xmlTextReaderNodeType(x->r);
    if (type == XML_READER_TYPE_DOCUMENT_TYPE) {
        if (!x->allow_doctype) {
            snprintf(x->err, sizeof x->err,
                     "%s: a document type declaration (DTD), which this format forbids", x->entry);
            x->failed = 1;
            return -1;
        }
        if (declares_entities(x)) {
            snprintf(x->err, sizeof x->err,
                     "%s: the DTD declares XML entities, which are never expanded (a billion-laughs file?)",
                     x->entry);
            x->failed = 1;
            return -1;
        }
    } else if (type == XML_READER_TYPE_ELEMENT && xmlTextReaderDepth(x->r) > x->max_depth) {
        snprintf(x->err, sizeof x->err, "%s: elements nested deeper than max_depth (%d) at line %d", x->entry,
                 x->max_depth, xmlTextReaderGetParserLineNumber(x->r));
        x->failed = 1;
        return -1;
    }
    return 1;
}

static const char *find_attr(ox_reader *x, const char *local, int namespaced, char *out, size_t outlen) {
    if (xmlTextReaderHasAttributes(x->r) != 1) return NULL;
    const char *found = NULL;
    if (xmlTextReaderMoveToFirstAttribute(x->r) == 1) {
        do {
            const char *name = (const char *)xmlTextReaderConstLocalName(x->r);
            if (name && strcmp(name, local) == 0 && (!namespaced || xmlTextReaderConstNamespaceUri(x->r))) {
                const char *v = (const char *)xmlTextReaderConstValue(x->r);
                size_t n = v ? strlen(v) : 0;
                if (n >= outlen) { /* cut at a character boundary: values stay valid UTF-8 */
                    n = outlen - 1;
                    while (n && ((unsigned char)v[n] & 0xC0) == 0x80) n--;
                }
                memcpy(out, v ? v : "", n);
                out[n] = '\0';
                found = out;
                break;
            }
        } while (xmlTextReaderMoveToNextAttribute(x->r) == 1);
        xmlTextReaderMoveToElement(x->r);
    }
    return found;
}

const char *ox_attr(ox_reader *x, const char *local, char *out, size_t outlen) {
    return find_attr(x, local, 0, out, outlen);
}

const char *ox_attr_ns(ox_reader *x, const char *local, char *out, size_t outlen) {
    return find_attr(x, local, 1, out, outlen);
}

/* --- the package --- */

int ox_bounds_check(sl_instance *inst, const ox_bounds *b) {
    if (b->max_entry_size < 4096)
        return sl_instance_fail(inst, SL_EFATAL, "max_entry_size must be at least 4K, not %llu",
                                (unsigned long long)b->max_entry_size);
    if (b->max_total_size < b->max_entry_size)
        return sl_instance_fail(inst, SL_EFATAL,
                                "max_total_size (%llu) must be at least max_entry_size (%llu)",
                                (unsigned long long)b->max_total_size, (unsigned long long)b->max_entry_size);
    if (b->max_ratio < 2 || b->max_ratio > 100000)
        return sl_instance_fail(inst, SL_EFATAL, "max_ratio must be 2..100000, not %lld",
                                (long long)b->max_ratio);
    if (b->max_entries < 1 || b->max_entries > 1000000)
        return sl_instance_fail(inst, SL_EFATAL, "max_entries must be 1..1000000, not %lld",
                                (long long)b->max_entries);
    if (b->max_depth < 8 || b->max_depth > 256)
        return sl_instance_fail(inst, SL_EFATAL, "max_depth must be 8..256, not %lld",
                                (long long)b->max_depth);
    ox_init();
    return 0;
}

int ox_package_open(ox_package *p, sl_call *call, sl_doc *doc, const ox_bounds *b, int allow_doctype) {
    memset(p, 0, sizeof *p);
    p->call = call;
    p->max_depth = (int)b->max_depth;
    p->allow_doctype = allow_doctype;
    size_t len;
    const char *data = sl_doc_data(doc, &len);
    if (!data || !len) return sl_fail(call, SL_EBADINPUT, "empty file");
    oz_limits lim = {.max_entry_size = b->max_entry_size,
                     .max_total_size = b->max_total_size,
                     .max_ratio = (uint64_t)b->max_ratio,
                     .max_entries = (uint64_t)b->max_entries};
    int code;
    p->zip = oz_open(data, len, &lim, &code, p->err, sizeof p->err);
    if (!p->zip) return sl_fail(call, code == OZ_ENOMEM ? SL_ENOMEM : SL_EBADINPUT, "%s", p->err);
    return 0;
}

void ox_package_close(ox_package *p) {
    if (p->zip) oz_close(p->zip);
    p->zip = NULL;
}

int ox_package_read(ox_package *p, const char *entry, bool optional, char **data, size_t *len) {
    int rc = oz_read(p->zip, entry, data, len, p->err, sizeof p->err);
    if (rc == 0) return 0;
    if (rc == OZ_ENOTFOUND && optional) return 1;
    return sl_fail(p->call, rc == OZ_ENOMEM ? SL_ENOMEM : SL_EBADINPUT, "%s", p->err);
}

int ox_package_xml(ox_package *p, ox_reader *x, const char *data, size_t len, const char *entry) {
    if (ox_open(x, data, len, entry, p->max_depth, p->allow_doctype) == 0) return 0;
    return sl_fail(p->call, x->failed ? SL_EBADINPUT : SL_ENOMEM, "%s", x->err);
}

int ox_package_xml_fail(ox_package *p, ox_reader *x) { return sl_fail(p->call, SL_EBADINPUT, "%s", x->err); }

int ox_package_part(ox_package *p, const char *entry, bool optional, ox_reader *x, char **data) {
    size_t len;
    memset(x, 0, sizeof *x);
    *data = NULL;
    int rc = ox_package_read(p, entry, optional, data, &len);
    if (rc) {
        *data = NULL;
        return rc;
    }
    rc = ox_package_xml(p, x, *data, len, entry);
    if (rc) {
        ox_part_close(x, *data);
        *data = NULL;
    }
    return rc;
}

bool ox_package_next(ox_package *p, ox_reader *x, int *rc) {
    if (*rc) return false;
    int r = ox_next(x);
    if (r < 0) *rc = ox_package_xml_fail(p, x);
    return r > 0;
}

void ox_part_close(ox_reader *x, char *data) {
    ox_close(x);
    free(data);
}
