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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sluice/doc.h"

/* One hit. The strings are malloc'd copies owned by the list: they live
 * until sl_hits_free (or until a trim drops the hit). */
typedef struct sl_hit {
    double score; /* higher is nearer: the cosine, the keyword relevance, or the fused score */
    char *uri;
    uint32_t chunk; /* the chunk's 0-based ordinal within its document */
    uint32_t page;  /* 1-based, 0: unknown */
    uint32_t line;  /* 1-based, 0: unknown */
    char *heading;  /* "" if none */
    char *text;
    char **attrs; /* key, value, key, value...: nattrs pairs (sl_hits_set_attr) */
    size_t nattrs;
    /* Where the hit stood in each ranking (sl_hits_rank, sl_hits_fuse):
     * 1-based rank and that ranking's own score; rank 0: not in it. */
    uint32_t vrank, krank;
    double vscore, kscore;
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
/* --- hybrid retrieval: two rankings fused --- */

/* How a query ranks chunks: by vector (cosine), by keyword (the sink's
 * BM25 or ts_rank), or both fused by reciprocal rank fusion (the default). */
typedef enum sl_query_mode { SL_QUERY_HYBRID = 0, SL_QUERY_VECTOR = 1, SL_QUERY_KEYWORD = 2 } sl_query_mode;

/* "hybrid", "vector" or "keyword" into *out: 0, or -1 for anything else. */
int sl_query_mode_parse(const char *s, sl_query_mode *out);
const char *sl_query_mode_name(sl_query_mode mode);

/* Reciprocal rank fusion's constant, by default: a hit at rank r in a
 * ranking adds 1 / (rrf_k + r). 60 is the value of Cormack et al. (SIGIR
 * 2009): it damps the difference between the very first ranks, so one
 * ranking's favourite does not drown what both rankings agree on. A
 * smaller one (`--rrf-k`) trusts each ranking's first places more: better
 * when one ranking is much weaker than the other (bench/retrieval.sh). */
#define SL_RRF_K 60
#define SL_RRF_K_MAX 10000
/* Weighted fusion: a ranking's term is multiplied by its weight, w / (rrf_k
 * + r). Only the ratio matters to the order. The keyword ranking weighs
 * more by default: measured on heading queries over /usr/share/doc
 * (bench/retrieval.sh, chosen on the odd-numbered files, checked on the
 * even ones), BM25 alone misses far fewer than feature-hashed vectors, and
 * an equal vote lets the weaker ranking push the right chunk out of the top
 * 5. `--vector-weight` / `--keyword-weight` (vector_weight= and
 * keyword_weight= on /query) change them; 1 and 1 is plain RRF. */
#define SL_RRF_VECTOR_WEIGHT 1.0
#define SL_RRF_KEYWORD_WEIGHT 2.0
#define SL_RRF_WEIGHT_MAX 100.0
/* How many candidates a hybrid query asks each ranking for, to answer k:
 * max(50, 2k). A chunk below that depth in both rankings cannot make the
 * fused top k unless fewer than k chunks were found at all. */
uint32_t sl_query_depth(uint32_t k);

/* Sorts the list (sl_hits_sort) and records each hit's place in it as its
 * vector (vector = true) or keyword ranking: rank i + 1, score. */
void sl_hits_rank(sl_hits *hits, bool vector);
/* Keeps the best k (sorted); k = 0 keeps every hit. */
void sl_hits_truncate(sl_hits *hits, uint32_t k);
/* A new list of the best k of vec and kw fused: each chunk (uri, chunk)
 * scores the sum of weight / (rrf_k + rank) over the rankings that hold it
 * (vweight for vec, kweight for kw), and keeps its rank and score in each.
 * Both lists must have been ranked (sl_hits_rank); either may be NULL or
 * empty. NULL on out of memory. */
sl_hits *sl_hits_fuse(const sl_hits *vec, const sl_hits *kw, uint32_t k, uint32_t rrf_k, double vweight,
                      double kweight);

/* The hits as `sluice query --json` prints them (and /query answers): an
 * array of {score, uri, chunk, page, line, heading, ..., vector, keyword,
 * text}; vector and keyword are {rank, score}, or null for a ranking that
 * did not hold the hit (or was not asked). New reference. */
json_t *sl_hits_json(const sl_hits *hits);

#endif
