/* kindex.h - sink-sqlite's keyword index (FTS5) in a file of its own,
 * PATH.keywords, caught up from the store's keyword_log on a thread of
 * its own.
 *
 * Why a second file: FTS5 costs about 20 µs of CPU a chunk (tokenizing and
 * merging), more than the rest of a chunk's write, and SQLite writes one
 * file from one connection at a time. In the store's own transaction it
 * was most of the writer thread's work, and the one writer thread bounded
 * every run. Now the writer logs each chunk it adds (one small row of
 * keyword_log, written in the group's transaction) and each chunk it
 * deletes (the delete trigger copies the indexed values: a contentless
 * FTS5 table deletes by them), and this thread indexes what the log holds
 * into PATH.keywords, on another core, in transactions of its own.
 *
 * Consistency: PATH.keywords records the store it belongs to (the store's
 * vector_log_id) and the last log entry it covers (seq), in the same
 * transaction as the index rows, so a kill -9 of either never leaves an
 * entry indexed twice or lost. Each catch-up reads the store in one
 * snapshot. The writer trims the log up to what this file has committed
 * and records how far (meta keyword_log_trimmed); a file behind that mark,
 * ahead of the store, of another store, missing or damaged is rebuilt
 * from the store's chunks. The index lags the store by at most what the
 * thread has not reached yet; a keyword query first catches it up.
 */
#ifndef SINK_SQLITE_KINDEX_H
#define SINK_SQLITE_KINDEX_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>
#include <sluice/sluice.h>

typedef struct kindex kindex;

/* The keyword file of the store `store_file` (what SQLite opens) named for
 * messages by `path`: PATH.keywords beside the store. Opens nothing yet.
 * NULL when out of memory. */
kindex *kindex_new(sl_instance *inst, const char *path, const char *store_file, int busy_ms);

/* Starts the thread that catches the file up whenever kindex_poke says
 * the store has more. 0, or a negative code with the reason in inst. */
int kindex_start(kindex *k);

/* The writer committed log entries, about `entries` of them: wake the
 * thread. Never waits. */
void kindex_poke(kindex *k, size_t entries);

/* The last log entry the file has committed, as this process saw it (0
 * until a catch-up ran): the writer trims the log up to it. */
int64_t kindex_committed(const kindex *k);

/* The sink's settle (plugin.h): answers `call` (sl_call_done, from the
 * thread) once a catch-up that began after this call has finished, at
 * once and without waiting the gathering pause: 0, or SL_EBADINPUT with
 * the reason. Returns SL_PENDING, or 0 when no thread runs. */
int kindex_settle(kindex *k, sl_call *call);

/* Catches the file up to the store's log as it is now, on the calling
 * thread (a query's). 0, or -1 with the reason in err. */
int kindex_catch_up(kindex *k, char *err, size_t errlen);

/* The keyword file's path (PATH.keywords): read connections ATTACH it. */
const char *kindex_path(const kindex *k);

/* Whether the keyword file exists. */
bool kindex_exists(const kindex *k);

/* Removes the keyword file and its WAL (a store replaced by a rebuild):
 * the next catch-up builds it again. */
void kindex_remove(kindex *k);

/* Stops the thread after it has caught up with everything committed (a
 * run ends with its documents findable by keyword), logs what it did, and
 * frees k. NULL is fine. */
void kindex_free(kindex *k);

#endif
