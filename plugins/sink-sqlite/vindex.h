/* vindex.h - sink-sqlite's approximate vector index: an HNSW graph per
 * vector dimension (hnsw_shim.h), kept next to the store in a file of its
 * own (PATH.DIM.hnsw) and never trusted further than the store agrees.
 *
 * The store logs every vector that comes and goes: (chunk id, dim, added
 * or removed) appended to `vector_log` in the same transaction as the
 * change, so the log is exactly as durable as the chunks. Removals by
 * triggers on `chunks`; additions by the writer, one statement per group
 * of documents (writer.c, index_group: schema 4 dropped the trigger per
 * inserted row). An index file records the store's id and the last log entry it
 * covers. Opened again, after a clean exit or a kill -9, the index is
 * checked (checksum, sizes, store id, that entry) and caught up with the
 * log entries after it: the chunks a replace or prune removed are marked
 * deleted, the new ones added. A file that fails a check is rebuilt from
 * the store, and the log says which happened.
 *
 * Small stores stay brute force: the index is built once a query's scan
 * found at least `min_vectors` vectors of its dimension, and a query then
 * asks the index for candidates and scores them exactly from the store, as
 * the scan does. Vectors of different dimensions never share an index.
 */
#ifndef SINK_SQLITE_VINDEX_H
#define SINK_SQLITE_VINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>
#include <sluice/sluice.h>

/* The log and its triggers: made with the schema (outside its version,
 * like the failure list), a no-op for a store that has them. */
#define VINDEX_LOG_SQL                                                                                       \
    "CREATE TABLE IF NOT EXISTS vector_log("                                                                 \
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, chunk INTEGER NOT NULL, dim INTEGER NOT NULL,"                  \
    " added INTEGER NOT NULL);"                                                                              \
    "CREATE TABLE IF NOT EXISTS vector_log_id(id TEXT NOT NULL);"                                            \
    "INSERT INTO vector_log_id SELECT lower(hex(randomblob(16)))"                                            \
    " WHERE NOT EXISTS (SELECT 1 FROM vector_log_id);"                                                       \
    "CREATE TRIGGER IF NOT EXISTS vector_log_delete AFTER DELETE ON chunks WHEN old.vector IS NOT NULL"      \
    " BEGIN INSERT INTO vector_log(chunk, dim, added) VALUES(old.id, old.dim, 0); END;"                      \
    "CREATE TRIGGER IF NOT EXISTS vector_log_update AFTER UPDATE OF id, dim, vector ON chunks BEGIN"         \
    " INSERT INTO vector_log(chunk, dim, added) SELECT old.id, old.dim, 0 WHERE old.vector IS NOT NULL;"     \
    " INSERT INTO vector_log(chunk, dim, added) SELECT new.id, new.dim, 1 WHERE new.vector IS NOT NULL;"     \
    " END;"

typedef struct vindex_opts {
    int64_t min_vectors; /* build once a scan finds this many vectors of a dimension */
    int64_t ef;          /* candidates a search keeps (hnswlib's ef) */
    int64_t m;           /* links per node */
    int64_t ef_construction;
} vindex_opts;

typedef struct vindex_set vindex_set;

/* The indexes of the store at `path` (the sink's path; the files are
 * PATH.DIM.hnsw). Nothing is read until a query asks. NULL when out of
 * memory. */
vindex_set *vindex_set_new(sl_instance *inst, const char *path, const vindex_opts *o);
/* Saves every index changed since it was read or saved, then frees. NULL
 * is fine. */
void vindex_set_free(vindex_set *vs);

typedef struct vindex_hit {
    double score; /* cosine, computed as the brute-force scan computes it */
    int64_t id;   /* the chunk's row id */
} vindex_hit;

/* Inside the caller's read transaction on db: the index of `dim`, loaded
 * or caught up with this snapshot, asked for the k nearest; each scored
 * exactly from its stored vector. 1 and *hits (malloc'd, *n of them, in no
 * order; the caller frees) when the index answered; 0 when the caller
 * should scan (no index of that dimension yet, fewer than min_vectors, or
 * the index failed, which is logged and dropped). */
int vindex_query(vindex_set *vs, sqlite3 *db, const float *q, uint32_t dim, uint32_t k, vindex_hit **hits,
                 size_t *n);

/* After a brute-force scan in the same read transaction found `matched`
 * vectors of `dim`: builds the index from the store, and saves it, when
 * there are at least min_vectors and none is loaded. */
void vindex_after_scan(vindex_set *vs, sqlite3 *db, uint32_t dim, long long matched);

#endif
