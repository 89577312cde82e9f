/* ooxml_xml.h - libxml2's streaming reader (xmlTextReader) set up for
 * untrusted XML inside a zip: the parts of DOCX, PPTX, XLSX and EPUB.
 *
 * The reader walks the XML once, node by node, without building a tree, so
 * memory stays flat whatever the part's size. It is opened with
 * XML_PARSE_NONET (no network), without XML_PARSE_NOENT (entities are never
 * substituted: a reference stays a reference node), without XML_PARSE_DTDLOAD
 * (no external DTD is read) and without XML_PARSE_HUGE (libxml2's own limits
 * on depth, names and text nodes stay on). On top of that:
 *
 *   - a document type declaration fails the part when the caller forbids it
 *     (Office Open XML forbids DTDs); when allowed (XHTML), one that declares
 *     any entity still fails it, so a billion-laughs file is refused before
 *     a single reference is read (and libxml2's own amplification limit
 *     stands behind that);
 *   - elements nested deeper than max_depth fail the part.
 *
 * Every failure message names the zip entry and, for parse errors, the line.
 */
#ifndef SLUICE_PLUGINS_COMMON_OOXML_XML_H
#define SLUICE_PLUGINS_COMMON_OOXML_XML_H

#include <libxml/xmlreader.h>
#include <stddef.h>
#include <string.h>

typedef struct ox_reader {
    xmlTextReaderPtr r;
    const char *entry; /* the zip entry, for messages (not copied) */
    int max_depth;
    int allow_doctype;
    int failed;
    char err[512];
} ox_reader;

/* Call once per process before any reader (safe to call again). */
void ox_init(void);

/* Starts reading data[0..len) (not copied: it must outlive the reader).
 * 0, or -1 with the reason in x->err: x->failed is set when the input is
 * refused (a forbidden DTD, entity declarations, over 2 GiB), clear when
 * memory ran out. The prolog is checked here, before libxml2 reads a byte:
 * its reader parses ahead of the nodes it reports. */
int ox_open(ox_reader *x, const char *data, size_t len, const char *entry, int max_depth, int allow_doctype);
void ox_close(ox_reader *x);

/* Moves to the next node: 1 there is one, 0 the end, -1 an error (x->err). */
int ox_next(ox_reader *x);

/* The current node: type (XML_READER_TYPE_*), local name (no prefix), depth,
 * whether an element is empty (<a/>), and a text node's value. */
static inline int ox_type(ox_reader *x) { return xmlTextReaderNodeType(x->r); }
static inline const char *ox_name(ox_reader *x) { return (const char *)xmlTextReaderConstLocalName(x->r); }
static inline int ox_depth(ox_reader *x) { return xmlTextReaderDepth(x->r); }
static inline int ox_empty(ox_reader *x) { return xmlTextReaderIsEmptyElement(x->r) == 1; }
static inline const char *ox_value(ox_reader *x) { return (const char *)xmlTextReaderConstValue(x->r); }

/* The current element's attribute with this local name, whatever its
 * prefix, copied into out (cut to outlen - 1 bytes); NULL when absent. */
const char *ox_attr(ox_reader *x, const char *local, char *out, size_t outlen);
/* The same, but only an attribute in some namespace (r:id, not id). */
const char *ox_attr_ns(ox_reader *x, const char *local, char *out, size_t outlen);

/* Whether a node of `type` named `name` is the start (or end) of element `local`. */
static inline int ox_is_start(int type, const char *name, const char *local) {
    return type == XML_READER_TYPE_ELEMENT && name && strcmp(name, local) == 0;
}
static inline int ox_is_end(int type, const char *name, const char *local) {
    return type == XML_READER_TYPE_END_ELEMENT && name && strcmp(name, local) == 0;
}

/* --- the package: a zip of XML parts, as parse-office and parse-epub read it ---
 *
 * Both plugins declare the same bounds (the first fields of their config
 * structs, by these names), check them the same way at init, and read a
 * part the same way: inflate it within the bounds, then open the guarded
 * reader on it. What differs is passed in: the default for one entry's
 * size, the word for the whole file in the help text ("file", "book"), and
 * whether a DOCTYPE is allowed (XHTML: yes; Office Open XML: no). */

#include <stdbool.h>
#include <stdint.h>

#include <sluice/sluice.h>

#include "ooxml_zip.h"

typedef struct ox_bounds {
    uint64_t max_entry_size;
    uint64_t max_total_size;
    int64_t max_ratio;
    int64_t max_entries;
    int64_t max_depth;
} ox_bounds;

/* The bounds of a config struct that has those five fields. */
#define OX_BOUNDS_OF(cfg)                                                                                    \
    ((ox_bounds){(cfg)->max_entry_size, (cfg)->max_total_size, (cfg)->max_ratio, (cfg)->max_entries,         \
                 (cfg)->max_depth})

/* Their five option table entries, for config struct `cfg_type`. */
#define OX_BOUNDS_OPTIONS(cfg_type, entry_default, whole)                                                    \
    {.name = "max_entry_size",                                                                               \
     .type = SL_OPT_SIZE,                                                                                    \
     .def = entry_default,                                                                                   \
     .help = "bytes one zip entry may inflate to (counted while inflating)",                                 \
     .flags = SL_OPT_NO_FINGERPRINT,                                                                         \
     .offset = offsetof(cfg_type, max_entry_size)},                                                          \
        {.name = "max_total_size",                                                                           \
         .type = SL_OPT_SIZE,                                                                                \
         .def = "512M",                                                                                      \
         .help = "bytes all entries read from one " whole " may inflate to",                                 \
         .flags = SL_OPT_NO_FINGERPRINT,                                                                     \
         .offset = offsetof(cfg_type, max_total_size)},                                                      \
        {.name = "max_ratio",                                                                                \
         .type = SL_OPT_INT,                                                                                 \
         .def = "100",                                                                                       \
         .help = "inflated bytes per compressed byte of one entry (beyond 1 MiB), 2..100000",                \
         .flags = SL_OPT_NO_FINGERPRINT,                                                                     \
         .offset = offsetof(cfg_type, max_ratio)},                                                           \
        {.name = "max_entries",                                                                              \
         .type = SL_OPT_INT,                                                                                 \
         .def = "10000",                                                                                     \
         .help = "entries a zip may hold, 1..1000000",                                                       \
         .flags = SL_OPT_NO_FINGERPRINT,                                                                     \
         .offset = offsetof(cfg_type, max_entries)},                                                         \
    {                                                                                                        \
        .name = "max_depth", .type = SL_OPT_INT, .def = "256",                                               \
        .help = "XML elements nested deeper than this fail the " whole ", 8..256",                           \
        .flags = SL_OPT_NO_FINGERPRINT, .offset = offsetof(cfg_type, max_depth)                              \
    }

/* At init: 0 when the bounds make sense, else the instance fails saying why. */
int ox_bounds_check(sl_instance *inst, const ox_bounds *b);

/* One document's open package. */
typedef struct ox_package {
    sl_call *call;
    oz_zip *zip;
    int max_depth;
    int allow_doctype;
    char err[600];
} ox_package;

/* Opens the document's bytes as a zip within the bounds: 0, or the document
 * fails (empty, not a zip, a bound crossed). Close with ox_package_close. */
int ox_package_open(ox_package *p, sl_call *call, sl_doc *doc, const ox_bounds *b, int allow_doctype);
void ox_package_close(ox_package *p);
/* Inflates a part (the caller frees *data): 0; 1 when it is absent and
 * `optional` (nothing recorded); or the document fails. */
int ox_package_read(ox_package *p, const char *entry, bool optional, char **data, size_t *len);
/* Opens the guarded reader on a part's bytes: 0, or the document fails. */
int ox_package_xml(ox_package *p, ox_reader *x, const char *data, size_t len, const char *entry);
/* Fails the document with the reader's reason (after ox_next gave -1). */
int ox_package_xml_fail(ox_package *p, ox_reader *x);

/* A part read node by node, as every reader of parse-office and parse-epub
 * does:
 *
 *     ox_reader x;
 *     char *data;
 *     int rc = ox_package_part(p, entry, optional, &x, &data);
 *     if (rc) return rc < 0 ? rc : 0;
 *     while (ox_package_next(p, &x, &rc)) { ... the node; a failure sets rc ... }
 *     ox_part_close(&x, data);
 *
 * ox_package_part inflates the part and opens the guarded reader on it: 0;
 * 1 when the part is absent and `optional` (nothing recorded); or the
 * document fails. Whatever it answers, ox_part_close may follow (there is
 * nothing left open after a failure). */
int ox_package_part(ox_package *p, const char *entry, bool optional, ox_reader *x, char **data);
/* Moves to the next node while *rc is 0: true there is one; false at the
 * end, once *rc is set, or when the XML is bad (the document fails, its
 * code in *rc). */
bool ox_package_next(ox_package *p, ox_reader *x, int *rc);
/* Closes the reader and frees the part's bytes. */
void ox_part_close(ox_reader *x, char *data);

#endif
