/* query.h - the results of a query: the k nearest chunks a sink found.
 *
 * A query asks a sink for the chunks nearest a vector; the sink adds what it
 * finds with sl_hits_add (sluice/doc.h) and the core reads the list back
 * here. The list keeps at most k hits once sorted: a sink may add more than
 * k (or add every chunk it scanned) and sl_hits_sort keeps the best, so a
 * simple sink needs no heap of its own. Adding also trims when the list
 * reaches twice k, so memory stays bounded by the answer, not the store.
 *
 * Not thread-safe: one query fills one list, on one thread at a time.
 */
#ifndef SL_QUERY_H
#define SL_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sluice/doc.h"

/* One hit. The strings are malloc'd copies owned by the list: they live
 * until sl_hits_free (or until a trim drops the hit). */
typedef struct sl_hit {
    double score; /* cosine similarity: higher is nearer */
    char *uri;
    uint32_t chunk; /* the chunk's 0-based ordinal within its document */
    uint32_t page;  /* 1-based, 0: unknown */
    uint32_t line;  /* 1-based, 0: unknown */
    char *heading;  /* "" if none */
    char *text;
    char **attrs; /* key, value, key, value...: nattrs pairs (sl_hits_set_attr) */
    size_t nattrs;
} sl_hit;

/* A list that keeps the best k hits; k = 0 keeps every hit. NULL on out of
 * memory. */
sl_hits *sl_hits_new(uint32_t k);
/* Hits held now (after sl_hits_sort: at most k). */
size_t sl_hits_count(const sl_hits *hits);
/* Hit i, or NULL when i is out of range. The pointer is valid until the next
 * sl_hits_add, sl_hits_sort or sl_hits_free. */
const sl_hit *sl_hits_at(const sl_hits *hits, size_t i);
/* Orders by descending score (ties: uri, then chunk, ascending, so the order
 * never depends on the order of adding) and drops all but the best k. */
void sl_hits_sort(sl_hits *hits);
/* The value of a hit's attribute, or NULL. */
const char *sl_hit_attr(const sl_hit *hit, const char *key);
/* Frees the list and every string in it. NULL is fine. */
void sl_hits_free(sl_hits *hits);
/* The hits as `sluice query --json` prints them (and /query answers): an
 * array of {score, uri, chunk, page, line, heading, text}. New reference. */
json_t *sl_hits_json(const sl_hits *hits);

#endif
