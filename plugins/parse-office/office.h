/* office.h - what parse-office's three readers (docx.c, pptx.c, xlsx.c)
 * share: the open package, the options, element output, and relationship
 * files. office.c holds the plugin itself and the package metadata.
 *
 * Functions returning int give 0 or a negative SL_E* code after sl_fail has
 * recorded the reason (which names the zip entry), so a reader just returns.
 */
#ifndef PARSE_OFFICE_OFFICE_H
#define PARSE_OFFICE_OFFICE_H

#include <stdbool.h>
#include <stdint.h>

#include <sluice/sluice.h>

#include "ooxml_xml.h"
#include "ooxml_zip.h"
#include "textbuf.h"

typedef struct office_cfg {
    uint64_t max_entry_size;
    uint64_t max_total_size;
    int64_t max_ratio;
    int64_t max_entries;
    int64_t max_depth;
    int64_t max_rows;
    bool notes;
} office_cfg;

typedef struct office {
    sl_call *call;
    sl_doc *doc;
    ox_package pkg; /* the zip, its bounds, and the reason of its last failure */
    const office_cfg *cfg;
} office;

/* One relationship of a part: Id, Type (its last path segment, e.g.
 * "officeDocument", "slide", "notesSlide") and the target resolved to a zip
 * entry name (empty for external targets). */
typedef struct office_rel {
    char id[64];
    char type[64];
    char target[512];
} office_rel;

typedef struct office_rels {
    office_rel *v;
    size_t n;
} office_rels;

/* Reads a zip entry (the caller frees *data). 0; 1 when the entry is absent
 * and `optional` (nothing recorded); or a failure. */
static inline int office_read(office *o, const char *entry, bool optional, char **data, size_t *len) {
    return ox_package_read(&o->pkg, entry, optional, data, len);
}
/* Opens an XML reader on a part's bytes with the configured depth limit. */
static inline int office_xml(office *o, ox_reader *x, const char *data, size_t len, const char *entry) {
    return ox_package_xml(&o->pkg, x, data, len, entry);
}
/* Fails the document with the reader's reason. */
static inline int office_xml_fail(office *o, ox_reader *x) { return ox_package_xml_fail(&o->pkg, x); }
/* Reads the relationships of `part` (from its _rels/NAME.rels; none when
 * that is absent). Free with office_rels_free. */
int office_rels_read(office *o, const char *part, office_rels *rels);
void office_rels_free(office_rels *rels);
const office_rel *office_rel_by_id(const office_rels *rels, const char *id);
const office_rel *office_rel_by_type(const office_rels *rels, const char *type);

/* Adds an element of text s[0..n) (trimmed; nothing when empty) on `page`
 * with `level` for headings. Returns the element's index, -1 when nothing
 * was added, or a failure. */
int office_emit(office *o, sl_elem_type type, int level, uint32_t page, const char *s, size_t n);

/* Appends a text node's value to b, whitespace runs kept as they are. */
int office_text(buf *b, const char *s);

int office_docx(office *o);
int office_pptx(office *o);
int office_xlsx(office *o);

#endif
