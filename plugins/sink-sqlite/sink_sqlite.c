/* sink_sqlite.c - the embedded default store: documents, chunks and vectors
 * in one SQLite file, so `sluice run` needs no server.
 *
 * Durability comes from SQLite's transactions: a document is stored in one
 * BEGIN IMMEDIATE ... COMMIT that upserts its row, deletes its old chunks
 * and inserts the new ones, so a reader (or a run after kill -9) sees the
 * old document or the new one, never a mix. The file runs in WAL mode:
 * readers (`sluice query`) never block the writer, and synchronous=normal
 * costs no fsync per document while still never corrupting the file.
 *
 * The core calls a sink from one pool thread at a time (max_concurrency 1),
 * not always the same thread, so the connection is opened FULLMUTEX and
 * every statement is prepared once in init and reset after each use.
 *
 * Queries are brute force: a cosine against every stored vector of the
 * query's dimension, the best k kept in a small heap, then only those k rows
 * are read back in full. Fine up to a few hundred thousand chunks; beyond
 * that, use a store with a vector index.
 *
 * The schema is versioned in the `meta` table; init migrates an older file
 * step by step and refuses a newer one rather than guess at it.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>
#include <sluice/sluice.h>

#include "metadata_json.h"

#define SCHEMA_VERSION 1

/* migrations[v] takes a store from schema version v to v + 1. */
static const char *const migrations[SCHEMA_VERSION] = {
    "CREATE TABLE documents("
    " id INTEGER PRIMARY KEY,"
    " uri TEXT UNIQUE NOT NULL,"
    " hash TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL,"
    " media_type TEXT,"
    " bytes INTEGER,"
    " title TEXT,"
    " metadata TEXT NOT NULL DEFAULT '{}',"
    " chunk_count INTEGER NOT NULL DEFAULT 0,"
    " stored_at TEXT NOT NULL,"
    " seen_run INTEGER);"
    "CREATE TABLE chunks("
    " id INTEGER PRIMARY KEY,"
    " doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
    " ordinal INTEGER NOT NULL,"
    /* dim and vector before the texts: a query reads them from the start
     * of the record, without following a long text's overflow pages */
    " dim INTEGER NOT NULL DEFAULT 0,"
    " vector BLOB,"
    " page INTEGER NOT NULL DEFAULT 0,"
    " line INTEGER NOT NULL DEFAULT 0,"
    " heading TEXT NOT NULL DEFAULT '',"
    " text TEXT NOT NULL,"
    " summary TEXT,"
    " UNIQUE(doc_id, ordinal));",
};

typedef struct sink_sqlite_config {
    const char *path;
    int64_t busy_timeout; /* ms */
    const char *synchronous;
} sink_sqlite_config;

static const sl_option options[] = {
    {.name = "path",
     .type = SL_OPT_PATH,
     .help = "the SQLite file; its folder is made on first use",
     .flags = SL_OPT_REQUIRED | SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sink_sqlite_config, path)},
    {.name = "busy_timeout",
     .type = SL_OPT_DURATION,
     .def = "10s",
     .help = "how long to wait for another writer before retrying later",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sink_sqlite_config, busy_timeout)},
    {.name = "synchronous",
     .type = SL_OPT_ENUM,
     .def = "normal",
     .help = "normal: survives crashes; full: also survives power loss, slower",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sink_sqlite_config, synchronous),
     .choices = "normal|full"},
    {0},
};

enum {
    ST_BEGIN_WRITE,
    ST_BEGIN_READ,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_LOOKUP,
    ST_UPSERT,
    ST_DELETE_CHUNKS,
    ST_INSERT_CHUNK,
    ST_PRUNE,
    ST_SCAN,
    ST_FETCH,
    ST_COUNT
};

static const char *const statements[ST_COUNT] = {
    [ST_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_LOOKUP] = "UPDATE documents SET seen_run = ?2 WHERE uri = ?1 RETURNING hash, fingerprint",
    [ST_UPSERT] = "INSERT INTO documents(uri, hash, fingerprint, media_type, bytes, title, metadata,"
                  " chunk_count, stored_at, seen_run)"
                  " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?9)"
                  " ON CONFLICT(uri) DO UPDATE SET hash = excluded.hash, fingerprint = excluded.fingerprint,"
                  " media_type = excluded.media_type, bytes = excluded.bytes, title = excluded.title,"
                  " metadata = excluded.metadata, chunk_count = excluded.chunk_count,"
                  " stored_at = excluded.stored_at, seen_run = excluded.seen_run"
                  " RETURNING id",
    [ST_DELETE_CHUNKS] = "DELETE FROM chunks WHERE doc_id = ?1",
    [ST_INSERT_CHUNK] = "INSERT INTO chunks(doc_id, ordinal, text, heading, page, line, summary, dim, vector)"
                        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    /* Under a root: the root itself, or [root/, root0): '0' follows '/', and
     * uri compares bytewise, so this range is exactly "starts with root/"
     * and it walks the uri index; no LIKE, nothing to escape. */
    [ST_PRUNE] = "DELETE FROM documents WHERE (uri = ?1 OR (uri >= ?2 AND uri < ?3))"
                 " AND (seen_run IS NULL OR seen_run <> ?4)",
    [ST_SCAN] = "SELECT id, dim, vector FROM chunks WHERE vector IS NOT NULL",
    [ST_FETCH] = "SELECT d.uri, c.ordinal, c.page, c.line, c.heading, c.text"
                 " FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id = ?1",
};

typedef struct sink {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[ST_COUNT];
    char errmsg[512]; /* SQLite's message for the last failure, kept before reset clears it */
    float *fbuf;      /* query: one stored vector, aligned */
    size_t fcap;
} sink;

/* --- small helpers --- */

static bool host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static uint32_t bswap32(uint32_t x) {
    return (x >> 24) | ((x >> 8) & 0xff00u) | ((x << 8) & 0xff0000u) | (x << 24);
}

/* Vectors are stored as float32 little-endian; this swaps in place on a
 * big-endian host (both ways: the swap is its own inverse). */
static void floats_to_from_le(float *v, size_t n) {
    if (host_is_little_endian()) return;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        u = bswap32(u);
        memcpy(&v[i], &u, 4);
    }
}

static int grow_fbuf(sink *s, size_t n) {
    if (n <= s->fcap) return 0;
    float *nb = realloc(s->fbuf, n * sizeof *nb);
    if (!nb) return SL_ENOMEM;
    s->fbuf = nb;
    s->fcap = n;
    return 0;
}

/* Remembers SQLite's message for a failing rc and passes rc on. */
static int note(sink *s, int rc) {
    if (rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
        snprintf(s->errmsg, sizeof s->errmsg, "%s", sqlite3_errmsg(s->db));
    return rc;
}

/* A failure found by us rather than SQLite: its standard wording. */
static int own_error(sink *s, int rc) {
    snprintf(s->errmsg, sizeof s->errmsg, "%s", sqlite3_errstr(rc));
    return rc;
}

/* Runs a statement that returns no rows; SQLITE_OK or the error. */
static int exec(sink *s, sqlite3_stmt *st) {
    int rc = note(s, sqlite3_step(st));
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void rollback(sink *s) {
    if (!sqlite3_get_autocommit(s->db)) {
        sqlite3_step(s->st[ST_ROLLBACK]);
        sqlite3_reset(s->st[ST_ROLLBACK]);
    }
}

/* The SL_E* kind of a SQLite failure: locked is worth retrying, a full
 * disk or a broken file stops the run. */
static int error_kind(int rc) {
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return SL_ERETRY;
    case SQLITE_NOMEM: return SL_ENOMEM;
    case SQLITE_TOOBIG: return SL_EBADINPUT;
    default: return SL_EFATAL; /* FULL, IOERR, CORRUPT, NOTADB, READONLY, CANTOPEN, ... */
    }
}

static int db_fail(sl_call *call, sink *s, int rc, const char *what, const char *uri) {
    int code = error_kind(rc);
    if (code == SL_ERETRY)
        return sl_fail(call, code, "%s '%s': %s is locked by another writer (%s)", what, uri, s->path,
                       s->errmsg);
    return sl_fail(call, code, "%s '%s': %s: %s", what, uri, s->path, s->errmsg);
}

/* --- init: folder, connection, schema, statements --- */

/* mkdir -p of the folder holding `path` (0755). */
static int make_parent(const char *path, char *err, size_t errlen) {
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return 0;
    char *dir = strndup(path, (size_t)(slash - path));
    if (!dir) return snprintf(err, errlen, "out of memory"), SL_ENOMEM;
    for (char *p = dir + 1;; p++) {
        char saved = *p;
        if (saved != '/' && saved != '\0') continue;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot make folder '%s': %s", dir, strerror(errno));
            free(dir);
            return SL_EFATAL;
        }
        *p = saved;
        if (saved == '\0') break;
    }
    struct stat st;
    int rc = 0;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "'%s' is not a folder", dir);
        rc = SL_EFATAL;
    }
    free(dir);
    return rc;
}

static int exec_sql(sink *s, const char *sql) {
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) snprintf(s->errmsg, sizeof s->errmsg, "%s", msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return rc;
}

/* Reads schema_version from meta: 0 when absent, -1 when not a number. */
static int64_t schema_version(sink *s, int *rc) {
    sqlite3_stmt *st;
    *rc = note(
        s, sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &st, NULL));
    if (*rc != SQLITE_OK) return 0;
    int64_t v = 0;
    int step = note(s, sqlite3_step(st));
    if (step == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        char *end;
        errno = 0;
        long long x = t ? strtoll(t, &end, 10) : 0;
        v = (!t || end == t || *end || errno || x < 0) ? -1 : (int64_t)x;
    } else if (step != SQLITE_DONE) {
        *rc = step;
    }
    sqlite3_finalize(st);
    return v;
}

/* Brings the schema to SCHEMA_VERSION in one transaction. */
static int migrate(sink *s, sl_instance *inst) {
    int rc = exec_sql(s, "BEGIN IMMEDIATE");
    if (rc != SQLITE_OK)
        return sl_instance_fail(inst, error_kind(rc) == SL_ERETRY ? SL_EFATAL : error_kind(rc),
                                "%s: cannot open the schema: %s", s->path, s->errmsg);
    rc = exec_sql(s, "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    int64_t v = rc == SQLITE_OK ? schema_version(s, &rc) : 0;
    if (rc == SQLITE_OK && v < 0) {
        exec_sql(s, "ROLLBACK");
        return sl_instance_fail(inst, SL_EFATAL, "%s: meta.schema_version is not a number", s->path);
    }
    if (rc == SQLITE_OK && v > SCHEMA_VERSION) {
        exec_sql(s, "ROLLBACK");
        return sl_instance_fail(inst, SL_EFATAL,
                                "%s has schema version %lld, newer than this sink-sqlite knows (%d): "
                                "use a newer sluice, or another path",
                                s->path, (long long)v, SCHEMA_VERSION);
    }
    for (; rc == SQLITE_OK && v < SCHEMA_VERSION; v++) rc = exec_sql(s, migrations[v]);
    if (rc == SQLITE_OK) {
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '%d')",
                 SCHEMA_VERSION);
        rc = exec_sql(s, sql);
    }
    if (rc == SQLITE_OK) rc = exec_sql(s, "COMMIT");
    if (rc != SQLITE_OK) {
        char msg[sizeof s->errmsg];
        memcpy(msg, s->errmsg, sizeof msg);
        if (!sqlite3_get_autocommit(s->db)) exec_sql(s, "ROLLBACK");
        return sl_instance_fail(inst, SL_EFATAL, "%s: cannot set up the schema: %s", s->path, msg);
    }
    return 0;
}

static void sink_free(sink *s) {
    if (!s) return;
    for (int i = 0; i < ST_COUNT; i++) sqlite3_finalize(s->st[i]);
    sqlite3_close_v2(s->db);
    free(s->path);
    free(s->fbuf);
    free(s);
}

static int init(sl_instance *inst, const void *config, void **state) {
    const sink_sqlite_config *c = config;
    if (!c->path || !*c->path) return sl_instance_fail(inst, SL_EFATAL, "option 'path' is required");
    const char *sync = c->synchronous ? c->synchronous : "normal";
    if (strcmp(sync, "normal") != 0 && strcmp(sync, "full") != 0)
        return sl_instance_fail(inst, SL_EFATAL, "option 'synchronous': '%s' is not normal or full", sync);
    if (c->busy_timeout < 0)
        return sl_instance_fail(inst, SL_EFATAL, "option 'busy_timeout': must not be negative");

    char err[512];
    int rc = make_parent(c->path, err, sizeof err);
    if (rc) return sl_instance_fail(inst, rc, "option 'path': %s", err);

    sink *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(c->path))) {
        free(s);
        return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    }
    rc = sqlite3_open_v2(c->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                         NULL);
    if (rc != SQLITE_OK) {
        int code = sl_instance_fail(inst, SL_EFATAL, "cannot open %s: %s", c->path,
                                    s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        sink_free(s);
        return code;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, c->busy_timeout > INT_MAX ? INT_MAX : (int)c->busy_timeout);

    /* WAL: readers never block the writer, and a commit is one append.
     * An in-memory or read-only-folder database answers another mode; it
     * still works, only without those properties. */
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        if (!mode || strcmp(mode, "wal") != 0)
            sl_log(inst, SL_LOG_WARN, "%s: journal mode is %s, not wal", c->path, mode ? mode : "unknown");
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK) note(s, rc);
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = exec_sql(s, strcmp(sync, "full") == 0 ? "PRAGMA synchronous = FULL"
                                                   : "PRAGMA synchronous = NORMAL");
    if (rc == SQLITE_OK) rc = exec_sql(s, "PRAGMA foreign_keys = ON");
    if (rc != SQLITE_OK) {
        int code = sl_instance_fail(inst, SL_EFATAL, "cannot open %s: %s", c->path, s->errmsg);
        sink_free(s);
        return code;
    }

    rc = migrate(s, inst);
    if (rc) {
        sink_free(s);
        return rc;
    }
    for (int i = 0; i < ST_COUNT; i++) {
        int prc = sqlite3_prepare_v3(s->db, statements[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (prc != SQLITE_OK) {
            int code = sl_instance_fail(inst, SL_EFATAL, "%s: cannot prepare statement %d: %s", c->path, i,
                                        sqlite3_errmsg(s->db));
            sink_free(s);
            return code;
        }
    }
    *state = s;
    return 0;
}

static void fini(void *state) { sink_free(state); }

/* --- lookup, store, prune --- */

static int lookup(sl_call *call, sl_doc *doc) {
    sink *s = sl_call_state(call);
    sqlite3_stmt *st = s->st[ST_LOOKUP];
    const char *uri = sl_doc_uri(doc);
    sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)sl_doc_run_id(doc));
    int answer = SL_LOOKUP_MISSING;
    int rc = note(s, sqlite3_step(st));
    if (rc == SQLITE_ROW) {
        const char *hash = (const char *)sqlite3_column_text(st, 0);
        const char *fp = (const char *)sqlite3_column_text(st, 1);
        bool same =
            hash && fp && strcmp(hash, sl_doc_hash(doc)) == 0 && strcmp(fp, sl_doc_fingerprint(doc)) == 0;
        answer = same ? SL_LOOKUP_UNCHANGED : SL_LOOKUP_CHANGED;
        rc = note(s, sqlite3_step(st)); /* uri is unique: DONE */
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return db_fail(call, s, rc, "lookup", uri);
    return answer;
}

static int bind_text_or_null(sqlite3_stmt *st, int i, const char *t) {
    return t ? sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static int insert_chunk(sink *s, sl_doc *doc, sqlite3_int64 doc_id, size_t i) {
    sqlite3_stmt *st = s->st[ST_INSERT_CHUNK];
    size_t len;
    const char *text = sl_chunk_text(doc, i, &len);
    uint32_t dim = 0;
    const float *vec = sl_chunk_vector(doc, i, &dim);
    if (len > INT_MAX) return own_error(s, SQLITE_TOOBIG);
    int rc = sqlite3_bind_int64(st, 1, doc_id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 3, text ? text : "", (int)len, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 4, sl_chunk_heading(doc, i), -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 5, sl_chunk_page(doc, i));
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 6, sl_chunk_line(doc, i));
    if (rc == SQLITE_OK) rc = bind_text_or_null(st, 7, sl_chunk_summary(doc, i));
    if (!vec || dim == 0) {
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 8, 0);
        if (rc == SQLITE_OK) rc = sqlite3_bind_null(st, 9);
    } else {
        if ((size_t)dim > (size_t)INT_MAX / sizeof(float)) return own_error(s, SQLITE_TOOBIG);
        const void *blob = vec;
        if (!host_is_little_endian()) {
            if (grow_fbuf(s, dim)) return own_error(s, SQLITE_NOMEM);
            memcpy(s->fbuf, vec, (size_t)dim * sizeof(float));
            floats_to_from_le(s->fbuf, dim);
            blob = s->fbuf;
        }
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 8, dim);
        if (rc == SQLITE_OK) rc = sqlite3_bind_blob(st, 9, blob, (int)(dim * sizeof(float)), SQLITE_STATIC);
    }
    if (rc != SQLITE_OK) {
        sqlite3_reset(st);
        return note(s, rc);
    }
    return exec(s, st);
}

static int store(sl_call *call, sl_doc *doc) {
    sink *s = sl_call_state(call);
    const char *uri = sl_doc_uri(doc);
    char *meta = slj_metadata(doc);
    if (!meta) return sl_fail(call, SL_ENOMEM, "store '%s': out of memory", uri);
    size_t nbytes = 0;
    sl_doc_data(doc, &nbytes);
    size_t nchunks = sl_doc_chunk_count(doc);
    const char *what = "store";

    int rc = exec(s, s->st[ST_BEGIN_WRITE]);
    if (rc != SQLITE_OK) goto fail;

    sqlite3_stmt *st = s->st[ST_UPSERT];
    rc = sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, sl_doc_hash(doc), -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 3, sl_doc_fingerprint(doc), -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = bind_text_or_null(st, 4, sl_doc_media_type(doc));
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 5, (sqlite3_int64)nbytes);
    if (rc == SQLITE_OK) rc = bind_text_or_null(st, 6, sl_doc_meta_get(doc, "title"));
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 7, meta, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 8, (sqlite3_int64)nchunks);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 9, (sqlite3_int64)sl_doc_run_id(doc));
    sqlite3_int64 doc_id = 0;
    if (rc == SQLITE_OK) {
        rc = note(s, sqlite3_step(st));
        if (rc == SQLITE_ROW) {
            doc_id = sqlite3_column_int64(st, 0);
            rc = note(s, sqlite3_step(st));
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    } else {
        note(s, rc);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_OK) goto fail;

    st = s->st[ST_DELETE_CHUNKS];
    sqlite3_bind_int64(st, 1, doc_id);
    rc = exec(s, st);
    for (size_t i = 0; rc == SQLITE_OK && i < nchunks; i++) rc = insert_chunk(s, doc, doc_id, i);
    if (rc != SQLITE_OK) goto fail;

    what = "commit";
    rc = exec(s, s->st[ST_COMMIT]);
    if (rc != SQLITE_OK) goto fail;
    free(meta);
    return 0;

fail:
    free(meta);
    rollback(s);
    return db_fail(call, s, rc, what, uri);
}

static int prune(sl_call *call, const char *const *roots, size_t nroots, uint64_t run_id) {
    sink *s = sl_call_state(call);
    if (nroots && !roots) return sl_fail(call, SL_EINVAL, "prune: no roots");
    for (size_t i = 0; i < nroots; i++)
        if (!roots[i] || !*roots[i]) return sl_fail(call, SL_EINVAL, "prune: root %zu is empty", i);

    int rc = exec(s, s->st[ST_BEGIN_WRITE]);
    long long removed = 0;
    char *lo = NULL, *hi = NULL;
    const char *root = nroots ? roots[0] : "";
    for (size_t i = 0; rc == SQLITE_OK && i < nroots; i++) {
        root = roots[i];
        size_t n = strlen(root);
        bool slash = root[n - 1] == '/';
        free(lo);
        free(hi);
        lo = malloc(n + 2);
        hi = malloc(n + 2);
        if (!lo || !hi) {
            rc = own_error(s, SQLITE_NOMEM);
            break;
        }
        snprintf(lo, n + 2, "%s%s", root, slash ? "" : "/");
        memcpy(hi, lo, strlen(lo) + 1);
        hi[strlen(hi) - 1] = '0'; /* the byte after '/' */
        sqlite3_stmt *st = s->st[ST_PRUNE];
        sqlite3_bind_text(st, 1, root, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, lo, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, hi, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)run_id);
        rc = exec(s, st);
        if (rc == SQLITE_OK) removed += sqlite3_changes(s->db);
    }
    free(lo);
    free(hi);
    if (rc == SQLITE_OK) rc = exec(s, s->st[ST_COMMIT]);
    if (rc != SQLITE_OK) {
        rollback(s);
        return db_fail(call, s, rc, "prune", root);
    }
    return removed > INT_MAX ? INT_MAX : (int)removed;
}

/* --- query --- */

typedef struct scored {
    double score;
    sqlite3_int64 id;
} scored;

/* Min-heap on score: the root is the worst of the best k so far. */
static void heap_down(scored *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l].score < h[m].score) m = l;
        if (r < n && h[r].score < h[m].score) m = r;
        if (m == i) return;
        scored t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_up(scored *h, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].score <= h[i].score) return;
        scored t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* Nearest first; equal scores by row id, so results are reproducible. */
static int cmp_scored(const void *pa, const void *pb) {
    const scored *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

static int add_hits(sl_call *call, sink *s, scored *best, size_t n, sl_hits *hits) {
    sqlite3_stmt *st = s->st[ST_FETCH];
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, best[i].id);
        int rc = note(s, sqlite3_step(st));
        if (rc == SQLITE_ROW) {
            const char *uri = (const char *)sqlite3_column_text(st, 0);
            uint32_t ordinal = (uint32_t)sqlite3_column_int64(st, 1);
            uint32_t page = (uint32_t)sqlite3_column_int64(st, 2);
            uint32_t line = (uint32_t)sqlite3_column_int64(st, 3);
            const char *heading = (const char *)sqlite3_column_text(st, 4);
            const char *text = (const char *)sqlite3_column_text(st, 5);
            int arc = sl_hits_add(hits, best[i].score, uri ? uri : "", ordinal, page, line, heading,
                                  text ? text : "");
            sqlite3_reset(st);
            if (arc < 0) return sl_fail(call, arc, "query: cannot add a hit: %s", sl_strerror(arc));
        } else {
            sqlite3_reset(st);
            if (rc != SQLITE_DONE) return db_fail(call, s, rc, "query", "fetch");
        }
    }
    return 0;
}

static int query(sl_call *call, const float *vector, uint32_t dim, uint32_t k, sl_hits *hits) {
    sink *s = sl_call_state(call);
    if (!vector || dim == 0 || !hits) return sl_fail(call, SL_EINVAL, "query: no vector");
    if (k == 0) return 0;
    if (grow_fbuf(s, dim)) return sl_fail(call, SL_ENOMEM, "query: out of memory");
    double qq = 0;
    for (uint32_t j = 0; j < dim; j++) qq += (double)vector[j] * vector[j];
    double qnorm = sqrt(qq);

    size_t cap = k < 1024 ? k : 1024, n = 0;
    scored *best = malloc(cap * sizeof *best);
    if (!best) return sl_fail(call, SL_ENOMEM, "query: out of memory");

    /* One read transaction: the scan and the fetch see the same snapshot. */
    int rc = exec(s, s->st[ST_BEGIN_READ]);
    sqlite3_stmt *st = s->st[ST_SCAN];
    long long matched = 0, other = 0;
    int64_t other_dim = 0;
    const size_t want = (size_t)dim * sizeof(float);
    while (rc == SQLITE_OK && (rc = note(s, sqlite3_step(st))) == SQLITE_ROW) {
        rc = SQLITE_OK;
        int64_t d = sqlite3_column_int64(st, 1);
        if (d != (int64_t)dim) {
            if (!other_dim) other_dim = d;
            other++;
            continue;
        }
        const void *blob = sqlite3_column_blob(st, 2);
        if (!blob || (size_t)sqlite3_column_bytes(st, 2) != want) continue; /* damaged row */
        matched++;
        memcpy(s->fbuf, blob, want); /* the blob need not be aligned for float */
        floats_to_from_le(s->fbuf, dim);
        double dot = 0, vv = 0;
        for (uint32_t j = 0; j < dim; j++) {
            dot += (double)vector[j] * s->fbuf[j];
            vv += (double)s->fbuf[j] * s->fbuf[j];
        }
        double score = qnorm > 0 && vv > 0 ? dot / (qnorm * sqrt(vv)) : 0.0;
        scored e = {score, sqlite3_column_int64(st, 0)};
        if (n < k) {
            if (n == cap) {
                size_t nc = cap * 2 > k ? k : cap * 2;
                scored *nb = realloc(best, nc * sizeof *nb);
                if (!nb) {
                    rc = own_error(s, SQLITE_NOMEM);
                    break;
                }
                best = nb;
                cap = nc;
            }
            best[n] = e;
            heap_up(best, n++);
        } else if (score > best[0].score) {
            best[0] = e;
            heap_down(best, n, 0);
        }
    }
    sqlite3_reset(st);
    int ret = 0;
    if (rc != SQLITE_DONE) {
        ret = db_fail(call, s, rc, "query", s->path);
    } else if (matched == 0 && other > 0) {
        ret = sl_fail(call, SL_EFATAL, "query: the store holds %lld-dimensional vectors; the query has %u",
                      (long long)other_dim, dim);
    } else {
        qsort(best, n, sizeof *best, cmp_scored);
        ret = add_hits(call, s, best, n, hits);
    }
    free(best);
    if (ret == 0) {
        rc = exec(s, s->st[ST_COMMIT]);
        if (rc != SQLITE_OK) ret = db_fail(call, s, rc, "query", s->path);
    }
    rollback(s);
    return ret;
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "sink-sqlite",
    .version = "1.0.0",
    .summary = "stores documents, chunks and vectors in one SQLite file (WAL; brute-force cosine queries)",
    .role = SL_ROLE_SINK,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(sink_sqlite_config),
    .max_concurrency = 1,
    .init = init,
    .fini = fini,
    .lookup = lookup,
    .store = store,
    .prune = prune,
    .query = query,
};

SL_PLUGIN_EXPORT(desc)
