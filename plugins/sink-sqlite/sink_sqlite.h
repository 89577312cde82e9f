/* sink_sqlite.h - what the two halves of sink-sqlite share: a connection
 * with its last error, SQLite's failures as SL_E* codes, and the writer's
 * interface.
 *
 * sink_sqlite.c is the store as the core sees it: options, schema, the
 * read connections (one per pool thread) that answer lookup and query.
 * writer.c is the one write connection, on its own thread: the documents
 * store() queues, written and committed in groups, the seen-marks that
 * lookups queue, and prune.
 */
#ifndef SINK_SQLITE_H
#define SINK_SQLITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>
#include <sluice/sluice.h>

#include "kindex.h"

/* One SQLite connection and SQLite's message for its last failure, kept
 * before a reset clears it. */
typedef struct conn {
    sqlite3 *db;
    const char *path; /* the store's file, for messages; owned by the sink */
    char errmsg[512];
    bool nospace; /* the last failure was a full disk: messages lead with it */
} conn;

/* Remembers SQLite's message for a failing rc and passes rc on. */
int conn_note(conn *c, int rc);
/* A failure found by us rather than SQLite: its standard wording. */
int conn_own_error(conn *c, int rc);
/* Steps a statement that returns no rows and resets it: SQLITE_OK or the error. */
int conn_exec(conn *c, sqlite3_stmt *st);
/* The SL_E* kind of a SQLite failure: busy or locked is worth retrying, a
 * full disk or a broken file stops the run. */
int sqlite_error_kind(int rc);
/* sl_fail for a SQLite failure while doing `what` to `uri`. */
int conn_fail(sl_call *call, const conn *c, int rc, const char *what, const char *uri);

/* Vectors are stored as float32 little-endian. */
bool host_is_little_endian(void);
/* Swaps in place on a big-endian host (both ways: the swap is its own inverse). */
void floats_to_from_le(float *v, size_t n);

/* --- the writer (writer.c) --- */

typedef struct writer writer;

typedef struct writer_opts {
    int64_t group_max; /* documents per transaction at most, >= 1 */
    kindex *ki;        /* the keyword index that follows the log; NULL: none (the log grows) */
    bool no_keywords;  /* keyword_index = off: stored chunks are not logged for it */
} writer_opts;

/* Takes over `db` (open, schema current) and starts the writer thread,
 * which alone uses it from then on. 0, or a negative code with the reason
 * in inst; db is closed either way on failure. */
int writer_new(sl_instance *inst, sqlite3 *db, const char *path, const writer_opts *o, writer **out);
/* Writes and answers every queued document, applies the queued
 * seen-marks, stops the thread, closes the connection. NULL is fine. */
void writer_free(writer *w);

/* Queues doc for the writer thread and answers SL_PENDING at once:
 * sl_call_done(call, ...) follows from that thread once the document's
 * group has committed (0) or it failed. A negative code when it fails
 * before queueing (out of memory, a value longer than SQLite takes).
 * doc must stay valid and unchanged until the call is answered. Never
 * waits for SQL. */
int writer_store(writer *w, sl_call *call, sl_doc *doc);
/* Queues "seen in run `run`" for a stored uri; written with the next
 * transaction, and always before prune deletes anything. Thread-safe, and
 * never waits for a write. */
int writer_mark_seen(writer *w, const char *uri, uint64_t run, bool children);
/* On the writer thread, after every document queued before it: in one
 * transaction, applies every queued seen-mark and removes the documents
 * under roots not seen in run_id. Waits for it; the number removed, or a
 * negative code. */
int writer_prune(writer *w, sl_call *call, const char *const *roots, size_t nroots, uint64_t run_id);

/* --- the file's health (health.c) --- */

/* PATH followed by suffix ("-wal", ".lock"); malloc'd, NULL when out of memory. */
char *side_path(const char *path, const char *suffix);
/* Why `path` cannot be opened (for writing when `write`), in words: a
 * folder that does not exist, permission, a read-only file system. */
void explain_open(const char *path, bool write, int sys_errno, char *out, size_t cap);
/* SQLite's 100-byte header of db's main file, read through SQLite's own
 * handle: 0 when sound (or the file is empty), else 1 and `why`. */
int header_problem(sqlite3 *db, char *why, size_t cap);
/* Whether the store at path was closed cleanly and not changed since (or a
 * live sluice writes it now); when not, `why` says how it was left. */
bool closed_cleanly(const char *path, char *why, size_t cap);
/* The clean-close marker: removed before a writer's first write, written
 * when the last connection has closed with the WAL checkpointed away. */
void clean_forget(const char *path);
void clean_record(const char *path);
/* Runs PRAGMA quick_check or integrity_check; the number of problems
 * (0: ok), each passed to `each` (may be NULL), the first in `first`. */
int run_check(sqlite3 *db, const char *pragma, void (*each)(void *, const char *), void *arg, char *first,
              size_t cap);
/* The uris a damaged documents table still gives, from both ends of the
 * table and of its uri index (repeats possible). The number of scans that
 * read to the end (4 on a sound file); the first error in err. */
int salvage_uris(sqlite3 *db, sl_uri_fn each, void *arg, char *err, size_t cap);
/* Puts the closed file `fresh` in place of `path` in one rename, the old
 * file (with its -wal and -shm) kept as `backup` (PATH.damaged-STAMP). */
int swap_in(const char *fresh, const char *path, char *backup, size_t bcap, char *err, size_t cap);

#endif
