/* hnsw_shim.h - a small C API over hnswlib (Debian: libhnswlib-dev, a
 * header-only C++ library): an approximate nearest-neighbour graph of unit
 * vectors under inner product, labelled by 64-bit ids, kept in a file with
 * a checksum.
 *
 * sink-sqlite is C; hnswlib is C++. This header is the only boundary
 * between them, and no C++ exception crosses it: every function catches
 * everything, answers a negative SL_HNSW_* code and keeps the message in a
 * thread-local slot (sl_hnsw_last_error), as layout-torch's shim does.
 *
 * The file is ours, not hnswlib's saveIndex (which ignores write errors and
 * cannot be checked before it is parsed): a header (magic, version, the
 * dimension, the caller's block of metadata), hnswlib's own fields and
 * arrays, and an XXH64 of all of that at the end. sl_hnsw_load reads the
 * whole file through the checksum and checks every size and link before it
 * hands out an index, so a truncated or damaged file answers
 * SL_HNSW_ECORRUPT, never a crash.
 *
 * Threads: any number of sl_hnsw_search at once; sl_hnsw_add and
 * sl_hnsw_remove need the index to themselves (the caller's lock).
 */
#ifndef SL_HNSW_SHIM_H
#define SL_HNSW_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_HNSW_OK 0
#define SL_HNSW_EINVAL (-1)   /* a bad argument */
#define SL_HNSW_ENOMEM (-2)   /* out of memory */
#define SL_HNSW_ECORRUPT (-3) /* the file is truncated, damaged, or not ours */
#define SL_HNSW_EIO (-4)      /* the file cannot be read or written */
#define SL_HNSW_ERROR (-5)    /* anything else hnswlib threw */

typedef struct sl_hnsw sl_hnsw;

/* The message of this thread's last failure; "" when none. */
const char *sl_hnsw_last_error(void);

/* An empty index of `dim`-dimensional vectors: `m` links per node (16 is
 * hnswlib's default), `ef_construction` candidates while linking a new
 * node. Room grows as points are added. */
int sl_hnsw_new(uint32_t dim, size_t m, size_t ef_construction, sl_hnsw **out);
void sl_hnsw_free(sl_hnsw *h);

uint32_t sl_hnsw_dim(const sl_hnsw *h);
/* Points that a search can return (added and not removed). */
size_t sl_hnsw_live(const sl_hnsw *h);
/* Points removed but still in the graph (hnswlib marks, never unlinks). */
size_t sl_hnsw_removed(const sl_hnsw *h);

/* Adds `v` (dim floats; normalised here, a zero vector stays zero) under
 * `label`; a label already there, removed or not, gets the new vector. */
int sl_hnsw_add(sl_hnsw *h, int64_t label, const float *v);
/* Adds n vectors (vecs: n rows of dim floats) under labels[], as
 * sl_hnsw_add does, on `threads` threads at once (hnswlib links points
 * concurrently): how a whole store is indexed. */
int sl_hnsw_add_batch(sl_hnsw *h, const int64_t *labels, const float *vecs, size_t n, unsigned threads);
/* Removes `label` from what searches return: 1 if it was there, 0 if it
 * was not (absent or already removed). */
int sl_hnsw_remove(sl_hnsw *h, int64_t label);

/* The k nearest (largest inner product with q normalised) live points,
 * searched with `ef` candidates (ef < k means k): labels[] and their inner
 * products sims[], best first; *n of them (fewer than k when the index
 * holds fewer). */
int sl_hnsw_search(const sl_hnsw *h, const float *q, size_t k, size_t ef, int64_t *labels, float *sims,
                   size_t *n);

/* Writes the index and `meta` (metalen bytes, at most 4096) to `path`,
 * flushed and fsync'd. The caller renames it into place. */
int sl_hnsw_save(const sl_hnsw *h, const char *path, const void *meta, size_t metalen);
/* Reads an index saved by sl_hnsw_save. Its dimension must be `dim` and
 * its metadata block exactly metalen bytes, copied into meta. */
int sl_hnsw_load(const char *path, uint32_t dim, void *meta, size_t metalen, sl_hnsw **out);

#ifdef __cplusplus
}
#endif

#endif
