/* kindex.c - the keyword index file and its catch-up thread (see kindex.h).
 *
 * One connection to PATH.keywords, with the store ATTACHed as "store" (read
 * only by discipline: nothing here writes it), used under `mu` by the
 * thread and by queries alike. A catch-up is one transaction on the
 * keyword file (its write lock taken first: one catcher at a time, across
 * processes too) that reads the store in one snapshot:
 *
 *   - the file's state (store id, seq) against the store's (vector_log_id,
 *     the log's head in sqlite_sequence, keyword_log_trimmed in meta): a
 *     mismatch rebuilds the index from store.chunks and sets seq = head;
 *   - else the log entries after seq (BATCH at most): first each delete
 *     whose chunk the index holds, by the values the delete trigger logged
 *     (a contentless FTS5 table deletes by them); then, in one statement,
 *     each added chunk that the log does not delete later (a later delete
 *     means the chunk read now may be another one that reused its id: that
 *     one has its own, later, add entry), with its values read from
 *     store.chunks; then seq.
 *
 * Deletes before adds is the log's order where it matters: an add this
 * pass applies has no later delete, and a delete this pass applies
 * removes a chunk indexed by an earlier pass.
 */
#include "kindex.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Log entries one pass indexes at most: a fifth of a second of FTS5, and
 * about 6 MB of text copied out of the store. */
#define BATCH 10000
/* A catch-up that failed is tried again after this pause (or a poke). */
#define RETRY_MS 1000
/* After a poke the thread waits this long for the writer's next groups
 * before its pass. FTS5 writes a segment a transaction and merges them
 * later, so a pass of a few hundred entries (one group) costs about a
 * fifth more CPU an entry than one of several thousand; the writer commits
 * a group every few tens of milliseconds under load. A query catches the
 * file up itself, and the run's end (stop) does not wait. */
#define GATHER_MS 250
/* ...or until the writer has logged this many entries since the last pass
 * began, whichever comes first. A run whose documents all end together (a
 * short one, or the last of a long one) then has most of its chunks
 * indexed while the rest are being stored, not all after the last
 * document, while the run waits. bench/scale.sh, 100 documents with
 * providers: the run's wall time over its longest chain, 1.42-1.59 before,
 * 1.27-1.37 after (2,000: 1.29-1.35; 5,000: 1.39-1.46). Under load a pass
 * still gathers about 9,000 entries (79 passes for 720,489 entries against
 * 75), but it costs: in interleaved runs without providers the keyword
 * thread took a median 15.4 µs of CPU a chunk at 10,000 documents (6 runs,
 * 14.3-21.8) against 14.4 (5 runs, 13.9-14.5), and 20.8 against 19.3 at
 * 50,000; the runs were about 3% longer. */
#define PASS_ENOUGH 3000

#define KW_SCHEMA                                                                                            \
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, heading, summary, content='',"           \
    " tokenize='porter unicode61 remove_diacritics 2');"                                                     \
    "CREATE TABLE IF NOT EXISTS kw_state(id INTEGER PRIMARY KEY CHECK (id = 1), store_id TEXT NOT NULL,"     \
    " seq INTEGER NOT NULL);"

enum {
    K_BEGIN,
    K_LOCK,
    K_COMMIT,
    K_ROLLBACK,
    K_STATE,
    K_STORE,
    K_CLEAR,
    K_FILL,
    K_SET,
    K_HELD,
    K_DELETE,
    K_INSERT,
    K_COUNT
};

/* The keyword file's connection (the store ATTACHed for a rebuild). */
static const char *const kstatements[K_COUNT] = {
    /* Not BEGIN IMMEDIATE: that would take the write lock of every
     * attached database, the store's too, and hold up its writer. A write
     * statement locks only the file it writes: this one, even when it
     * changes no row. */
    [K_BEGIN] = "BEGIN",
    [K_LOCK] = "UPDATE kw_state SET id = id WHERE id = 1",
    [K_COMMIT] = "COMMIT",
    [K_ROLLBACK] = "ROLLBACK",
    [K_STATE] = "SELECT store_id, seq FROM kw_state WHERE id = 1",
    [K_STORE] =
        ("SELECT (SELECT id FROM store.vector_log_id LIMIT 1),"
         " coalesce((SELECT seq FROM store.sqlite_sequence WHERE name = 'keyword_log'), 0),"
         " coalesce((SELECT CAST(value AS INTEGER) FROM store.meta WHERE key = 'keyword_log_trimmed'), 0)"),
    [K_CLEAR] = "INSERT INTO chunks_fts(chunks_fts) VALUES('delete-all')",
    [K_FILL] = ("INSERT INTO chunks_fts(rowid, text, heading, summary)"
                " SELECT id, text, heading, summary FROM store.chunks"),
    [K_SET] = "INSERT OR REPLACE INTO kw_state(id, store_id, seq) VALUES(1, ?1, ?2)",
    [K_HELD] = "SELECT 1 FROM chunks_fts_docsize WHERE id = ?1",
    [K_DELETE] =
        "INSERT INTO chunks_fts(chunks_fts, rowid, text, heading, summary) VALUES('delete', ?1, ?2, ?3, ?4)",
    [K_INSERT] = "INSERT INTO chunks_fts(rowid, text, heading, summary) VALUES(?1, ?2, ?3, ?4)",
};

/* The store's read connection: a pass copies what it needs out of one
 * short read transaction, so the store's WAL can be checkpointed and
 * rewound while the pass indexes (a snapshot held for a whole pass kept
 * it from ever rewinding: 2 GB of WAL at 50,000 documents). */
enum { R_BEGIN, R_COMMIT, R_STORE, R_DELETES, R_ADDS, R_COUNT };

static const char *const rstatements[R_COUNT] = {
    [R_BEGIN] = "BEGIN",
    [R_COMMIT] = "COMMIT",
    [R_STORE] = ("SELECT (SELECT id FROM vector_log_id LIMIT 1),"
                 " coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'keyword_log'), 0),"
                 " coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'keyword_log_trimmed'), 0)"),
    [R_DELETES] = ("SELECT chunk, text, heading, summary FROM keyword_log"
                   " WHERE deleted AND seq > ?1 AND seq <= ?2 ORDER BY seq"),
    [R_ADDS] = ("SELECT c.id, c.text, c.heading, c.summary FROM keyword_log AS l"
                " JOIN chunks AS c ON c.id = l.chunk"
                " WHERE l.seq > ?1 AND l.seq <= ?2 AND NOT l.deleted AND NOT EXISTS"
                " (SELECT 1 FROM keyword_log AS d WHERE d.deleted AND d.chunk = l.chunk AND d.seq > l.seq)"
                " ORDER BY l.seq"),
};

/* Rows copied out of the store: a chunk id and its three values (a
 * length of -1: NULL), the bytes in one buffer. */
typedef struct kw_row {
    sqlite3_int64 id;
    size_t off[3];
    int len[3];
} kw_row;

typedef struct kw_rows {
    kw_row *r;
    size_t n, cap;
    char *buf;
    size_t used, bcap;
} kw_rows;

struct kindex {
    sl_instance *inst;
    char *path;       /* the store, for messages */
    char *store_file; /* what SQLite opens for the store */
    char *file;       /* PATH.keywords */
    int busy_ms;
    pthread_mutex_t mu; /* the connection and its statements */
    sqlite3 *db;
    sqlite3_stmt *st[K_COUNT];
    sqlite3 *rdb; /* the store, read */
    sqlite3_stmt *rst[R_COUNT];
    kw_rows dels, adds; /* a pass's rows, kept between passes */
    bool rebuild_next;  /* an incremental pass failed in a way a rebuild mends */
    _Atomic int64_t committed;
    /* the thread */
    pthread_mutex_t tmu;
    pthread_cond_t cv;
    pthread_t th;
    bool started, pending, stop;
    size_t logged; /* entries the writer logged since the last pass began */
    /* settle calls waiting for a catch-up that begins after them (under
     * tmu): answered in order, the first `answering` by the pass now
     * running */
    sl_call **settles;
    size_t nsettles, settles_cap;
    /* what it did, for the closing line (under mu) */
    uint64_t entries, passes, busy_ns, cpu_ns;
    char last_error[700];
};

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static char *concat(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

kindex *kindex_new(sl_instance *inst, const char *path, const char *store_file, int busy_ms) {
    kindex *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->inst = inst;
    k->busy_ms = busy_ms;
    k->path = strdup(path);
    k->store_file = strdup(store_file);
    k->file = concat(store_file, ".keywords");
    if (!k->path || !k->store_file || !k->file) {
        free(k->path);
        free(k->store_file);
        free(k->file);
        free(k);
        return NULL;
    }
    pthread_mutex_init(&k->mu, NULL);
    pthread_mutex_init(&k->tmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cv, &ca);
    pthread_condattr_destroy(&ca);
    return k;
}

const char *kindex_path(const kindex *k) { return k->file; }

bool kindex_exists(const kindex *k) { return access(k->file, F_OK) == 0; }

int64_t kindex_committed(const kindex *k) { return atomic_load(&((kindex *)k)->committed); }

/* --- the connection (under mu) --- */

static void close_db(kindex *k) {
    for (int i = 0; i < K_COUNT; i++) {
        sqlite3_finalize(k->st[i]);
        k->st[i] = NULL;
    }
    for (int i = 0; i < R_COUNT; i++) {
        sqlite3_finalize(k->rst[i]);
        k->rst[i] = NULL;
    }
    sqlite3_close_v2(k->db);
    sqlite3_close_v2(k->rdb);
    k->db = k->rdb = NULL;
}

static void say(kindex *k, char *err, size_t errlen, const char *what, int rc) {
    snprintf(err, errlen, "keyword index %s: %s: %s", k->file, what,
             k->db ? sqlite3_errmsg(k->db) : sqlite3_errstr(rc));
}

static int exec(kindex *k, const char *sql) { return sqlite3_exec(k->db, sql, NULL, NULL, NULL); }

static int open_db(kindex *k, char *err, size_t errlen) {
    int rc = sqlite3_open_v2(k->file, &k->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(k->db, 1);
        sqlite3_busy_timeout(k->db, k->busy_ms);
        /* 16 KB pages, as the store's: FTS5's 4 KB leaves four to a page,
         * a quarter of the WAL frames and writes. For this text (bench/README,
         * "the keyword thread at 50,000") 13.0 to 11.5 µs of CPU a chunk at
         * 300,000 chunks and 16.3 to 13.8 at 1,000,000; queries 10 to 35%
         * faster. Only a new file takes it (before WAL: the first write
         * fixes the size); an older file keeps its 4 KB pages until it is
         * removed and rebuilt. */
        rc = exec(k, "PRAGMA page_size = 16384");
        /* WAL: a query's reader never waits for this file's writer. Normal
         * sync: a power loss may lose the last passes, which the state
         * check then finds behind the store's trim mark or not, and
         * rebuilds or redoes; the store itself stays as durable as asked. */
        if (rc == SQLITE_OK) rc = exec(k, "PRAGMA journal_mode = WAL");
        if (rc == SQLITE_OK) rc = exec(k, "PRAGMA synchronous = NORMAL");
        /* 8 MB of page cache, not the 32 MB it had: a pass writes its
         * segment once and a merge reads its inputs once, in order, so a
         * larger cache held pages nobody read again. bench/scale.sh without
         * providers, 10,000 and 50,000 documents: peak RSS 179 to 157 MB
         * and 187 to 150 MB, the thread's CPU a chunk the same within the
         * runs' spread (14.1-16.7 against 14.7-16.8 µs; 18.5 against 17.4).
         * 2 MB saved only 3 MB more. */
        if (rc == SQLITE_OK) rc = exec(k, "PRAGMA cache_size = -8192");
        if (rc == SQLITE_OK) rc = exec(k, KW_SCHEMA);
        /* FTS5's merge policy, kept in the file: a pass's terms (about 10
         * MB for 10,000 chunks) flushed as one segment rather than one a
         * megabyte, and 8 segments of a level merged at a time rather than
         * 4. At 720,000 chunks that is 40% less CPU for the same index
         * (19.3 s to 11.6 s); a query over every chunk holding a common
         * word takes as long either way (0.4 to 0.7 s). */
        if (rc == SQLITE_OK)
            rc = exec(k, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES('hashsize', 16777216);"
                         "INSERT INTO chunks_fts(chunks_fts, rank) VALUES('automerge', 8);");
    }
    if (rc == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(k->db, "ATTACH ?1 AS store", -1, &st, NULL);
        if (rc == SQLITE_OK) sqlite3_bind_text(st, 1, k->store_file, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_DONE) rc = SQLITE_OK;
        sqlite3_finalize(st);
    }
    for (int i = 0; rc == SQLITE_OK && i < K_COUNT; i++)
        rc = sqlite3_prepare_v3(k->db, kstatements[i], -1, SQLITE_PREPARE_PERSISTENT, &k->st[i], NULL);
    if (rc != SQLITE_OK) {
        say(k, err, errlen, "cannot open it", rc);
        close_db(k);
        return rc;
    }
    /* the store's read connection: query_only, so a bug cannot write it */
    rc = sqlite3_open_v2(k->store_file, &k->rdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(k->rdb, 1);
        sqlite3_busy_timeout(k->rdb, k->busy_ms);
        rc = sqlite3_exec(k->rdb, "PRAGMA query_only = ON", NULL, NULL, NULL);
    }
    for (int i = 0; rc == SQLITE_OK && i < R_COUNT; i++)
        rc = sqlite3_prepare_v3(k->rdb, rstatements[i], -1, SQLITE_PREPARE_PERSISTENT, &k->rst[i], NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "keyword index %s: cannot read %s: %s", k->file, k->path,
                 k->rdb ? sqlite3_errmsg(k->rdb) : sqlite3_errstr(rc));
        close_db(k);
        rc = SQLITE_CANTOPEN; /* the store's trouble, not a damaged keyword file */
    }
    return rc;
}

/* A file SQLite calls damaged, or not a database: removed and made again. */
static bool damaged_rc(int rc) { return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB; }

/* Closes the connections and removes the file with its WAL (under mu). */
static void remove_locked(kindex *k) {
    close_db(k);
    static const char *const sides[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char *f = concat(k->file, sides[i]);
        if (f) unlink(f);
        free(f);
    }
}

void kindex_remove(kindex *k) {
    pthread_mutex_lock(&k->mu);
    remove_locked(k);
    pthread_mutex_unlock(&k->mu);
}

static int step_done(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Rebuilds the index from the store's chunks, in the open transaction. */
static int rebuild(kindex *k, const char *store_id, int64_t head, int64_t *indexed) {
    int rc = step_done(k->st[K_CLEAR]);
    if (rc == SQLITE_OK) rc = step_done(k->st[K_FILL]);
    if (rc == SQLITE_OK) *indexed = sqlite3_changes64(k->db);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(k->st[K_SET], 1, store_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(k->st[K_SET], 2, head);
        rc = step_done(k->st[K_SET]);
        sqlite3_clear_bindings(k->st[K_SET]);
    }
    return rc;
}

/* Copies the rows of a statement (id and three values) into `out`. */
static int copy_rows(sqlite3_stmt *st, kw_rows *out) {
    out->n = out->used = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 1024;
            kw_row *r = realloc(out->r, cap * sizeof *r);
            if (!r) return SQLITE_NOMEM;
            out->r = r;
            out->cap = cap;
        }
        kw_row *row = &out->r[out->n++];
        row->id = sqlite3_column_int64(st, 0);
        for (int c = 0; c < 3; c++) {
            const unsigned char *v = sqlite3_column_text(st, c + 1);
            int len = sqlite3_column_bytes(st, c + 1);
            row->len[c] = v ? len : -1;
            row->off[c] = out->used;
            if (!v) continue;
            if (out->used + (size_t)len > out->bcap) {
                size_t cap = out->bcap ? out->bcap : 1 << 20;
                while (cap < out->used + (size_t)len) cap *= 2;
                char *b = realloc(out->buf, cap);
                if (!b) return SQLITE_NOMEM;
                out->buf = b;
                out->bcap = cap;
            }
            memcpy(out->buf + out->used, v, (size_t)len);
            out->used += (size_t)len;
        }
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Binds a copied row to ?1..?4 of st. */
static void bind_row(sqlite3_stmt *st, const kw_rows *rows, const kw_row *row) {
    sqlite3_bind_int64(st, 1, row->id);
    for (int c = 0; c < 3; c++)
        if (row->len[c] < 0)
            sqlite3_bind_null(st, c + 2);
        else
            sqlite3_bind_text(st, c + 2, rows->buf + row->off[c], row->len[c], SQLITE_STATIC);
}

/* The log entries (from, to], read in the store's snapshot that the open
 * read transaction holds: the deletes (with their values) and the adds
 * that no later entry deletes (with the chunks' values). */
static int read_entries(kindex *k, int64_t from, int64_t to) {
    int rc = SQLITE_OK;
    for (int i = 0; rc == SQLITE_OK && i < 2; i++) {
        sqlite3_stmt *st = k->rst[i ? R_ADDS : R_DELETES];
        sqlite3_bind_int64(st, 1, from);
        sqlite3_bind_int64(st, 2, to);
        rc = copy_rows(st, i ? &k->adds : &k->dels);
        sqlite3_reset(st);
    }
    return rc;
}

/* Into the open transaction of the keyword file: each deleted chunk the
 * index holds leaves it (by the values it was indexed with), then the
 * added chunks go in. */
static int apply_entries(kindex *k) {
    sqlite3_stmt *held = k->st[K_HELD], *del = k->st[K_DELETE], *ins = k->st[K_INSERT];
    int rc = SQLITE_OK;
    for (size_t i = 0; rc == SQLITE_OK && i < k->dels.n; i++) {
        const kw_row *row = &k->dels.r[i];
        sqlite3_bind_int64(held, 1, row->id);
        rc = sqlite3_step(held);
        sqlite3_reset(held);
        if (rc == SQLITE_DONE) { /* never indexed: its add was skipped */
            rc = SQLITE_OK;
            continue;
        }
        if (rc != SQLITE_ROW) break;
        bind_row(del, &k->dels, row);
        rc = step_done(del);
        sqlite3_clear_bindings(del);
    }
    for (size_t i = 0; rc == SQLITE_OK && i < k->adds.n; i++) {
        bind_row(ins, &k->adds, &k->adds.r[i]);
        rc = step_done(ins);
        sqlite3_clear_bindings(ins);
    }
    return rc;
}

/* Reads the store's identity, log head and trim mark with st. */
static int read_store(sqlite3_stmt *st, char *store_id, size_t idlen, int64_t *head, int64_t *trimmed) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *id = sqlite3_column_text(st, 0);
        snprintf(store_id, idlen, "%s", id ? (const char *)id : "");
        *head = sqlite3_column_int64(st, 1);
        *trimmed = sqlite3_column_int64(st, 2);
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    return rc;
}

/* One pass: a transaction that brings the file at most BATCH entries
 * closer to the store. *more when the store's log holds more after it. */
static int pass(kindex *k, bool *more, int64_t *done, char *err, size_t errlen) {
    *more = false;
    *done = 0;
    int rc = step_done(k->st[K_BEGIN]);
    if (rc == SQLITE_OK) rc = step_done(k->st[K_LOCK]);
    if (rc != SQLITE_OK) {
        say(k, err, errlen, "cannot begin", rc);
        if (!sqlite3_get_autocommit(k->db)) step_done(k->st[K_ROLLBACK]);
        return rc;
    }
    bool have = false, rebuilt = false;
    char mine[64] = "", store_id[64] = "";
    int64_t seq = 0, head = 0, trimmed = 0;
    sqlite3_stmt *st = k->st[K_STATE];
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        have = true;
        snprintf(mine, sizeof mine, "%s", (const char *)sqlite3_column_text(st, 0));
        seq = sqlite3_column_int64(st, 1);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    const char *what = "cannot read the store";
    /* the store in one short read transaction: what it is, then the entries */
    bool reading = false;
    if (rc == SQLITE_OK && (rc = step_done(k->rst[R_BEGIN])) == SQLITE_OK) reading = true;
    if (rc == SQLITE_OK) rc = read_store(k->rst[R_STORE], store_id, sizeof store_id, &head, &trimmed);
    bool stale = !have || k->rebuild_next || strcmp(mine, store_id) != 0 || seq < trimmed || seq > head;
    int64_t to = head - seq > BATCH ? seq + BATCH : head;
    if (rc == SQLITE_OK && !stale && seq < head) rc = read_entries(k, seq, to);
    if (reading) {
        int crc = step_done(k->rst[R_COMMIT]);
        if (rc == SQLITE_OK) rc = crc;
    }
    bool store_failed = rc != SQLITE_OK; /* what failed so far read the store */
    if (rc == SQLITE_OK && stale) {
        /* rebuilt through the ATTACHed store: one snapshot for the chunks
         * and the head they reach, held for the rebuild alone */
        const char *why = !have                         ? "new"
                          : k->rebuild_next             ? "its last pass failed"
                          : strcmp(mine, store_id) != 0 ? "made for another store"
                          : seq < trimmed               ? "behind what the store's log still holds"
                                                        : "ahead of the store";
        uint64_t t0 = mono_ns();
        int64_t n = 0;
        rc = read_store(k->st[K_STORE], store_id, sizeof store_id, &head, &trimmed);
        what = "cannot rebuild it";
        if (rc == SQLITE_OK) rc = rebuild(k, store_id, head, &n);
        if (rc == SQLITE_OK) {
            *done = n;
            rebuilt = true;
            seq = head;
            if (have || n)
                sl_log(k->inst, SL_LOG_INFO, "keyword index %s (%s): rebuilt from %lld chunks in %.2f s",
                       k->file, why, (long long)n, (double)(mono_ns() - t0) / 1e9);
        }
    } else if (rc == SQLITE_OK && seq < head) {
        what = "cannot index the store's log";
        rc = apply_entries(k);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(k->st[K_SET], 1, store_id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(k->st[K_SET], 2, to);
            rc = step_done(k->st[K_SET]);
            sqlite3_clear_bindings(k->st[K_SET]);
        }
        if (rc == SQLITE_OK) {
            *done = to - seq;
            seq = to;
            *more = to < head;
        } else if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_FULL && (rc & 0xff) != SQLITE_NOMEM &&
                   (rc & 0xff) != SQLITE_IOERR) {
            k->rebuild_next = true; /* an index that refuses the log is rebuilt */
        }
    }
    if (rc == SQLITE_OK) {
        what = "cannot commit";
        rc = step_done(k->st[K_COMMIT]);
    }
    if (rc != SQLITE_OK) {
        if (store_failed)
            snprintf(err, errlen, "keyword index %s: cannot read %s: %s", k->file, k->path,
                     sqlite3_errmsg(k->rdb));
        else
            say(k, err, errlen, what, rc);
        if (!sqlite3_get_autocommit(k->db)) step_done(k->st[K_ROLLBACK]);
        /* a damaged store is the store's to report (check, rebuild), not a
         * reason to remove this file */
        return store_failed && damaged_rc(rc) ? SQLITE_ERROR : rc;
    }
    if (rebuilt) k->rebuild_next = false;
    if (!have || seq >= atomic_load(&k->committed)) atomic_store(&k->committed, seq);
    k->entries += (uint64_t)*done;
    k->passes++;
    return SQLITE_OK;
}

/* Passes until caught up, under mu. */
static int catch_up_locked(kindex *k, char *err, size_t errlen) {
    uint64_t t0 = mono_ns();
    int rc = SQLITE_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!k->db && (rc = open_db(k, err, errlen)) != SQLITE_OK) {
            if (!damaged_rc(rc)) break;
        } else {
            bool more = true;
            int64_t done;
            while (more && (rc = pass(k, &more, &done, err, errlen)) == SQLITE_OK) {
            }
            if (rc == SQLITE_OK || !damaged_rc(rc)) break;
        }
        /* damaged: made again from the store */
        sl_log(k->inst, SL_LOG_WARN, "%s: removing it and building it again from %s", err, k->path);
        remove_locked(k);
    }
    k->busy_ns += mono_ns() - t0;
    return rc == SQLITE_OK ? 0 : -1;
}

int kindex_catch_up(kindex *k, char *err, size_t errlen) {
    pthread_mutex_lock(&k->mu);
    int rc = catch_up_locked(k, err, errlen);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

/* --- the thread --- */

static void *kindex_main(void *arg) {
    kindex *k = arg;
    pthread_setname_np(pthread_self(), "sqlite-keywords"); /* for top -H and perf */
    pthread_mutex_lock(&k->tmu);
    for (;;) {
        if (!k->pending && !k->stop) pthread_cond_wait(&k->cv, &k->tmu);
        if (!k->pending && k->stop) break;
        if (!k->stop && !k->nsettles) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += GATHER_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
            while (!k->stop && !k->nsettles && k->logged < PASS_ENOUGH &&
                   pthread_cond_timedwait(&k->cv, &k->tmu, &until) != ETIMEDOUT) {
            }
        }
        k->pending = false;
        k->logged = 0;
        bool stopping = k->stop;
        size_t answering = k->nsettles; /* asked before this catch-up began */
        pthread_mutex_unlock(&k->tmu);
        char err[700];
        int rc = kindex_catch_up(k, err, sizeof err);
        pthread_mutex_lock(&k->tmu);
        for (size_t i = 0; i < answering; i++) {
            if (rc) sl_fail(k->settles[i], SL_EBADINPUT, "%s", err);
            sl_call_done(k->settles[i], rc ? SL_EBADINPUT : 0);
        }
        if (answering) {
            memmove(k->settles, k->settles + answering, (k->nsettles - answering) * sizeof *k->settles);
            k->nsettles -= answering;
        }
        if (rc == 0) {
            k->last_error[0] = '\0';
            continue;
        }
        /* the documents are stored; only their keyword entries wait */
        if (strcmp(err, k->last_error) != 0)
            sl_log(k->inst, SL_LOG_WARN, "%s; trying again%s", err,
                   stopping ? " at the next run or query" : "");
        snprintf(k->last_error, sizeof k->last_error, "%s", err);
        if (stopping) break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += RETRY_MS / 1000;
        if (!k->pending && !k->stop) pthread_cond_timedwait(&k->cv, &k->tmu, &ts);
        k->pending = true;
    }
    /* none should be left (the core settles before fini), but none is
     * left unanswered */
    for (size_t i = 0; i < k->nsettles; i++) {
        sl_fail(k->settles[i], SL_EBADINPUT, "keyword index %s: closed before it caught up", k->file);
        sl_call_done(k->settles[i], SL_EBADINPUT);
    }
    k->nsettles = 0;
    pthread_mutex_unlock(&k->tmu);
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        k->cpu_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return NULL;
}

int kindex_start(kindex *k) {
    k->pending = true; /* a first pass: what an earlier run left behind */
    int rc = pthread_create(&k->th, NULL, kindex_main, k);
    if (rc)
        return sl_instance_fail(k->inst, SL_EFATAL, "cannot start the keyword index thread: %s",
                                strerror(rc));
    k->started = true;
    return 0;
}

int kindex_settle(kindex *k, sl_call *call) {
    if (!k || !k->started) return 0;
    pthread_mutex_lock(&k->tmu);
    if (k->stop) { /* fini has begun: it catches up itself */
        pthread_mutex_unlock(&k->tmu);
        return 0;
    }
    if (k->nsettles == k->settles_cap) {
        size_t cap = k->settles_cap ? k->settles_cap * 2 : 4;
        sl_call **g = realloc(k->settles, cap * sizeof *g);
        if (!g) {
            pthread_mutex_unlock(&k->tmu);
            return sl_fail(call, SL_EBADINPUT, "keyword index %s: out of memory", k->file);
        }
        k->settles = g;
        k->settles_cap = cap;
    }
    k->settles[k->nsettles++] = call;
    k->pending = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->tmu);
    return SL_PENDING;
}

void kindex_poke(kindex *k, size_t entries) {
    if (!k || !k->started) return;
    pthread_mutex_lock(&k->tmu);
    k->pending = true;
    k->logged += entries;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->tmu);
}

void kindex_free(kindex *k) {
    if (!k) return;
    if (k->started) {
        pthread_mutex_lock(&k->tmu);
        k->stop = true;
        k->pending = true; /* the last pass: everything committed */
        pthread_cond_signal(&k->cv);
        pthread_mutex_unlock(&k->tmu);
        uint64_t t0 = mono_ns();
        pthread_join(k->th, NULL);
        if (k->passes)
            sl_log(k->inst, SL_LOG_INFO,
                   "keyword index %s: %llu log entries in %llu passes; its thread indexed for %.2f s, %.2f s "
                   "of it "
                   "on the CPU, the last %.2f s after the writer's last commit",
                   k->file, (unsigned long long)k->entries, (unsigned long long)k->passes,
                   (double)k->busy_ns / 1e9, (double)k->cpu_ns / 1e9, (double)(mono_ns() - t0) / 1e9);
    }
    close_db(k);
    free(k->dels.r);
    free(k->dels.buf);
    free(k->adds.r);
    free(k->adds.buf);
    free(k->settles);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->tmu);
    pthread_mutex_destroy(&k->mu);
    free(k->path);
    free(k->store_file);
    free(k->file);
    free(k);
}
