/* chunk_attrs.h - a chunk's attributes (sl_chunk_attr: "kinds", "region",
 * "pages", ...) as one JSON object, the way the sinks store them (the
 * `attrs` column of sink-sqlite and sink-postgres), and back into a query's
 * hits. Both stores hold the same text for the same chunk.
 *
 * Header-only (static inline), like metadata_json.h. Reading needs jansson
 * (Debian: libjansson-dev), which a sink that includes this links.
 */
#ifndef SLUICE_PLUGINS_COMMON_CHUNK_ATTRS_H
#define SLUICE_PLUGINS_COMMON_CHUNK_ATTRS_H

#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>

#include <sluice/sluice.h>

#include "metadata_json.h"

/* Chunk i's attributes as a JSON object of strings ("{}" when it has
 * none); malloc'd, NULL when out of memory. */
static inline char *slj_chunk_attrs(const sl_doc *doc, size_t i) {
    buf b = {0};
    int bad = buf_adds(&b, "{");
    size_t n = sl_chunk_attr_count(doc, i), written = 0;
    for (size_t j = 0; j < n; j++) {
        const char *k, *v;
        if (sl_chunk_attr_at(doc, i, j, &k, &v) != 0) continue;
        if (written++) bad |= buf_adds(&b, ",");
        bad |= slj_string(&b, k);
        bad |= buf_adds(&b, ":");
        bad |= slj_string(&b, v);
    }
    bad |= buf_adds(&b, "}");
    if (bad) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* Sets the attributes stored as `json` (an object of strings) on the hit
 * just added. Text that is not such an object (a store edited by hand) adds
 * nothing: a query answers what it can read. 0, or SL_ENOMEM. */
static inline int slj_hit_attrs(sl_hits *hits, const char *json, size_t len) {
    if (!json || len <= 2) return 0; /* "{}" or nothing */
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return 0;
    }
    int rc = 0;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (!json_is_string(v) || !*k) continue;
        if ((rc = sl_hits_set_attr(hits, k, json_string_value(v))) == SL_ENOMEM) break;
        rc = 0;
    }
    json_decref(o);
    return rc;
}

#endif
