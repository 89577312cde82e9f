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

/* Reads a part and opens an XML reader on it with the configured depth
 * limit: 0; 1 when the part is absent and `optional` (nothing recorded); or
 * a failure. Walk it with office_next, then ox_part_close(x, *data)
 * (ooxml_xml.h: ox_package_part). */
static inline int office_part(office *o, const char *entry, bool optional, ox_reader *x, char **data) {
    return ox_package_part(&o->pkg, entry, optional, x, data);
}
/* The part's next node while *rc is 0 (ox_package_next): true there is
 * one; false at the end, once *rc is set, or after bad XML (a failure). */
static inline bool office_next(office *o, ox_reader *x, int *rc) { return ox_package_next(&o->pkg, x, rc); }
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
