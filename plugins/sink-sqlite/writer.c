/* writer.c - sink-sqlite's one write connection, on a thread of its own.
 *
 * SQLite lets one connection write at a time, and each COMMIT is a WAL
 * append (with synchronous = full, an fsync too). Done on the pool threads,
 * under a lock, that held a pool thread per store while it waited for the
 * lock and while it inserted: the other threads' parsing and embedding
 * queued behind it. So the SQL runs here, on the writer thread, and a pool
 * thread only queues:
 *
 *   store()  on a pool thread: checks what can fail the document at once
 *            (a text or vector longer than SQLite takes), builds its
 *            metadata JSON, queues (call, doc) and answers SL_PENDING. It
 *            never waits for the write lock or for SQL.
 *   writer   this thread: takes everything queued (group_max at most),
 *            BEGIN IMMEDIATE, a SAVEPOINT per document around its upsert,
 *            chunk delete and chunk inserts, the keyword index and vector
 *            log of the group's chunks (index_group), COMMIT, and only then answers
 *            each document (sl_call_done): 0 once committed, the error when
 *            its own writes or the COMMIT failed. A document whose writes
 *            fail is rolled back to its savepoint and fails alone.
 *
 * Groups form by themselves: what arrives while one group is written is
 * the next group, so a busy writer commits big groups and an idle one
 * commits each document at once, without waiting for company (waiting
 * bought nothing measurable, and held documents in flight).
 * group_max = 1 is one transaction per document.
 *
 * The document is read here, on the writer thread, through the SDK's
 * accessors, without a copy: the core frees a document only once its store
 * unit has completed, i.e. after sl_call_done, and no other stage touches
 * it meanwhile (store is its last). An item is answered last, and nothing
 * of it is read after that.
 *
 * Lookups read on their own connections and never write. The "seen in
 * this run" they record (what prune keeps) is queued here and applied with
 * the next group, or on its own a little later when nothing is stored;
 * prune runs on this thread too, after everything queued before it, and
 * applies every queued mark before its DELETE.
 *
 * Checkpoints (copying the WAL's pages into the file, and an fsync of
 * each) run on a thread of their own, the checkpointer, with its own
 * connection: done by the writer after its commit, as SQLite does by
 * default, they held up the next group for the copy and two fsyncs every
 * 1000 pages (30% of the writer's time on bench/ingest.sh). The writer's
 * WAL hook wakes the checkpointer past CKPT_FRAMES; a PASSIVE checkpoint
 * waits for no one and blocks no one. The WAL starts over only when the
 * checkpointer has copied all of it before the writer's next transaction,
 * which a busy writer may never leave time for: past CKPT_BACKSTOP frames
 * the writer waits for the checkpointer's pass and checkpoints what is
 * left itself (a tail the checkpointer has mostly copied), so the WAL
 * stays bounded (see wal_hook).
 *
 * One lock, mu, guards the queues and the flags; it is never held during
 * SQL. Another, ckpt_mu, is held by whichever side checkpoints; no thread
 * holds both. The connection is this thread's alone while it runs (init
 * made it before, fini closes it after), so it needs no lock of its own;
 * nor does the checkpointer's.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chunk_attrs.h"
#include "metadata_json.h"
#include "sink_sqlite.h"

enum {
    W_BEGIN,
    W_COMMIT,
    W_ROLLBACK,
    W_SAVEPOINT,
    W_RELEASE,
    W_ROLLBACK_TO,
    W_UPSERT,
    W_DELETE_CHUNKS,
    W_INSERT_CHUNK,
    W_MARK_SEEN,
    W_MARK_CHILDREN,
    W_PRUNE,
    W_CLEAR_FAILURE,
    W_INDEX_KEYWORDS,
    W_LOG_VECTORS,
    W_TRIM_LOG,
    W_TRIM_MARK,
    W_COUNT
};

static const char *const statements[W_COUNT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_SAVEPOINT] = "SAVEPOINT one",
    [W_RELEASE] = "RELEASE one",
    [W_ROLLBACK_TO] = "ROLLBACK TO one",
    [W_UPSERT] = "INSERT INTO documents(uri, hash, fingerprint, media_type, bytes, title, metadata,"
                 " chunk_count, stored_at, seen_run)"
                 " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?9)"
                 " ON CONFLICT(uri) DO UPDATE SET hash = excluded.hash, fingerprint = excluded.fingerprint,"
                 " media_type = excluded.media_type, bytes = excluded.bytes, title = excluded.title,"
                 " metadata = excluded.metadata, chunk_count = excluded.chunk_count,"
                 " stored_at = excluded.stored_at, seen_run = excluded.seen_run"
                 " RETURNING id",
    [W_DELETE_CHUNKS] = "DELETE FROM chunks WHERE doc_id = ?1",
    [W_INSERT_CHUNK] = "INSERT INTO chunks(doc_id, ordinal, text, heading, page, line, summary, dim, vector,"
                       " attrs) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [W_MARK_SEEN] = "UPDATE documents SET seen_run = ?2 WHERE uri = ?1",
    /* the documents found inside it (uri PARENT#NAME): '$' follows '#' */
    [W_MARK_CHILDREN] = "UPDATE documents SET seen_run = ?2 WHERE uri >= (?1 || '#') AND uri < (?1 || '$')",
    /* Under a root: the root itself, or [root/, root0): '0' follows '/', and
     * uri compares bytewise, so this range is exactly "starts with root/"
     * and it walks the uri index; no LIKE, nothing to escape. And the
     * documents found inside the root ([root#, root$)). */
    [W_PRUNE] = "DELETE FROM documents WHERE (uri = ?1 OR (uri >= ?2 AND uri < ?3)"
                " OR (uri >= (?1 || '#') AND uri < (?1 || '$')))"
                " AND (seen_run IS NULL OR seen_run <> ?4)",
    /* a document stored is off the failure list, in the same transaction */
    [W_CLEAR_FAILURE] = "DELETE FROM failures WHERE uri = ?1",
    /* What the chunks of a group's documents (?1: their ids, a JSON array)
     * add to the keyword index and to the vector log, one statement each
     * before the group's COMMIT (see index_group). */
    [W_INDEX_KEYWORDS] = "INSERT INTO keyword_log(chunk)"
                         " SELECT c.id FROM json_each(?1) AS j JOIN chunks AS c ON c.doc_id = j.value",
    [W_LOG_VECTORS] =
        "INSERT INTO vector_log(chunk, dim, added) SELECT c.id, c.dim, 1 FROM json_each(?1) AS j"
        " JOIN chunks AS c ON c.doc_id = j.value WHERE c.vector IS NOT NULL",
    /* What the keyword file has indexed leaves the log, and the store
     * records how far: a keyword file behind that is rebuilt (kindex.c). */
    [W_TRIM_LOG] = "DELETE FROM keyword_log WHERE seq <= ?1",
    [W_TRIM_MARK] = "INSERT OR REPLACE INTO meta(key, value) VALUES('keyword_log_trimmed', ?1)",
};

/* Seen-marks wait this long for a group to ride with before they are
 * written on their own: a rerun of unchanged documents queues one per
 * lookup, and nothing but prune (which applies them first) needs them soon. */
#define MARKS_DELAY_MS 100
/* A transaction of marks that failed is tried again after this pause. */
#define MARKS_RETRY_MS 1000

/* WAL frames (pages) after a commit that wake the checkpointer: SQLite's
 * own autocheckpoint, 16 MB of 16 KB pages. */
#define CKPT_FRAMES 1000
/* WAL frames past which the writer checkpoints itself (32 MB). */
#define CKPT_BACKSTOP 2000

/* An item's answer before it has one: written into the open transaction. */
#define WRITTEN 1

/* A document queued by store(), answered by the writer thread. */
typedef struct item {
    struct item *next;
    sl_call *call;
    sl_doc *doc; /* the core's, unchanged until the call is answered */
    char *meta;  /* its metadata as JSON (store() built it on the pool thread) */
    int rc;      /* its answer; WRITTEN while its transaction is open */
} item;

typedef struct items {
    item *head, *tail;
    size_t n;
} items;

/* The documents a group's transaction wrote, whose chunks are not yet in
 * the keyword index and the vector log: their ids as a JSON array, and
 * what they hold, to check what the index statements add. */
typedef struct unindexed {
    char *ids;
    size_t len, cap;
    size_t chunks, vectors;
} unindexed;

/* A queued seen-mark; a list, so putting marks back never allocates. */
typedef struct mark {
    struct mark *next;
    uint64_t run;
    bool children; /* its children too: it is unchanged, so they are */
    char uri[];
} mark;

typedef struct marks {
    mark *head, *tail;
    size_t n;
} marks;

/* A prune asked of the writer thread; its caller waits for `done`. */
typedef struct prune_req {
    sl_call *call;
    const char *const *roots;
    size_t nroots;
    uint64_t run_id;
    int result;
    bool done;
} prune_req;

struct writer {
    sl_instance *inst;
    conn c; /* the writer thread's alone while it runs */
    sqlite3_stmt *st[W_COUNT];
    float *fbuf; /* big-endian hosts: one vector in little-endian order */
    size_t fcap;
    unindexed wr; /* the open group's documents (the buffer is kept between groups) */
    writer_opts o;
    int64_t max_len;           /* SQLite's longest string or blob (SQLITE_LIMIT_LENGTH) */
    int64_t trimming, trimmed; /* keyword_log: trimmed to, in the open transaction / committed */

    pthread_mutex_t mu;  /* everything from here to `thread` */
    pthread_cond_t work; /* the writer thread waits here while idle */
    pthread_cond_t done; /* prune waits here for its answer */
    items queue;
    marks queued;
    uint64_t marks_due; /* when the queued marks go on their own; 0: none queued */
    prune_req *prune;
    bool idle; /* the writer thread is waiting: a new item must wake it */
    bool stop;
    pthread_t thread;
    bool thread_started;

    /* the writer thread's own counts, logged at fini: groups tried,
     * documents committed, time writing, the thread's CPU time */
    uint64_t ngroups, ndocs, busy_ns, cpu_ns;

    /* The checkpointer: its connection (NULL: none, the writer
     * checkpoints as SQLite does by default), its thread, woken through
     * `ckpt_work` (under mu) when `ckpt_due`. */
    sqlite3 *cdb;
    pthread_t ckpt_thread;
    bool ckpt_started;
    bool ckpt_due;
    bool ckpt_stop; /* set once the writer thread has ended */
    pthread_cond_t ckpt_work;
    pthread_mutex_t ckpt_mu; /* held by a checkpoint: the checkpointer's pass or the writer's */
    bool ckpt_held;          /* the writer thread holds ckpt_mu (wal_hook) */
    /* its counts (its thread's own until joined), and the writer's own
     * checkpoints past the backstop (the writer thread's) */
    uint64_t nckpt, ckpt_busy_ns, ckpt_cpu_ns, ckpt_failed, nbackstop;
    int ckpt_last_rc;
};

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

/* --- queues (mu) --- */

static void items_push(items *q, item *it) {
    it->next = NULL;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->n++;
}

/* Whether the chain from `head` to `last` holds a document of uri. */
static bool holds_uri(const item *head, const item *last, const char *uri) {
    for (const item *it = head;; it = it->next) {
        if (strcmp(sl_doc_uri(it->doc), uri) == 0) return true;
        if (it == last) return false;
    }
}

/* The first `max` items of q, cut off, and cut before a second document of
 * a uri already taken: a group's chunks are indexed at its end
 * (index_group), so a document must not delete chunks that its own group
 * wrote. mu held. */
static items items_take(items *q, size_t max) {
    items out = {q->head, q->head, 0};
    if (!q->head) return (items){0};
    for (out.n = 1; out.n < max && out.tail->next; out.n++) {
        if (holds_uri(out.head, out.tail, sl_doc_uri(out.tail->next->doc))) break;
        out.tail = out.tail->next;
    }
    q->head = out.tail->next;
    if (!q->head) q->tail = NULL;
    q->n -= out.n;
    out.tail->next = NULL;
    return out;
}

/* Puts `rest` (a chain not yet written) back at the front of the queue. */
static void requeue_items(writer *w, item *rest) {
    if (!rest) return;
    size_t n = 1;
    item *last = rest;
    for (; last->next; last = last->next) n++;
    pthread_mutex_lock(&w->mu);
    last->next = w->queue.head;
    if (!w->queue.head) w->queue.tail = last;
    w->queue.head = rest;
    w->queue.n += n;
    pthread_mutex_unlock(&w->mu);
}

/* Takes every queued mark. mu held. */
static marks take_marks_locked(writer *w) {
    marks m = w->queued;
    memset(&w->queued, 0, sizeof w->queued);
    w->marks_due = 0;
    return m;
}

/* Puts marks whose transaction failed back in the queue, to be tried again
 * after a pause (not at once: what failed would likely fail again). */
static void requeue_marks(writer *w, marks *m) {
    if (!m->n) return;
    pthread_mutex_lock(&w->mu);
    m->tail->next = w->queued.head;
    if (!w->queued.head) w->queued.tail = m->tail;
    w->queued.head = m->head;
    w->queued.n += m->n;
    uint64_t at = sl_now_ms() + MARKS_RETRY_MS;
    if (!w->marks_due || at < w->marks_due) w->marks_due = at;
    pthread_mutex_unlock(&w->mu);
    memset(m, 0, sizeof *m);
}

static void free_marks(marks *m) {
    for (mark *k = m->head, *next; k; k = next) {
        next = k->next;
        free(k);
    }
    memset(m, 0, sizeof *m);
}

int writer_mark_seen(writer *w, const char *uri, uint64_t run, bool children) {
    size_t len = strlen(uri);
    mark *k = malloc(sizeof *k + len + 1);
    if (!k) return SL_ENOMEM;
    k->next = NULL;
    k->run = run;
    k->children = children;
    memcpy(k->uri, uri, len + 1);
    pthread_mutex_lock(&w->mu);
    if (w->queued.tail)
        w->queued.tail->next = k;
    else
        w->queued.head = k;
    w->queued.tail = k;
    w->queued.n++;
    if (!w->marks_due) {
        w->marks_due = sl_now_ms() + MARKS_DELAY_MS;
        if (w->idle) pthread_cond_signal(&w->work); /* it sleeps without a deadline */
    }
    pthread_mutex_unlock(&w->mu);
    return 0;
}

/* --- store (a pool thread) --- */

/* What would fail at once in SQLite, found before queueing: a text or a
 * vector longer than SQLite takes. 0 or the failure. */
static int check_doc(writer *w, sl_call *call, sl_doc *doc, const char *meta) {
    const char *uri = sl_doc_uri(doc);
    size_t n = sl_doc_chunk_count(doc), len;
    for (size_t i = 0; i < n; i++) {
        uint32_t dim = 0;
        sl_chunk_text(doc, i, &len);
        sl_chunk_vector(doc, i, &dim);
        if (len > (uint64_t)w->max_len)
            return sl_fail(call, SL_EBADINPUT,
                           "store '%s': chunk %zu has %zu bytes of text, more than SQLite "
                           "stores in one value (%lld)",
                           uri, i, len, (long long)w->max_len);
        if ((uint64_t)dim * sizeof(float) > (uint64_t)w->max_len)
            return sl_fail(call, SL_EBADINPUT,
                           "store '%s': chunk %zu has a vector of %u dimensions, more than "
                           "SQLite stores in one value (%lld bytes)",
                           uri, i, dim, (long long)w->max_len);
    }
    if (strlen(meta) > (uint64_t)w->max_len)
        return sl_fail(call, SL_EBADINPUT,
                       "store '%s': its metadata is more than SQLite stores in one value "
                       "(%lld bytes)",
                       uri, (long long)w->max_len);
    return 0;
}

int writer_store(writer *w, sl_call *call, sl_doc *doc) {
    const char *uri = sl_doc_uri(doc);
    item *it = malloc(sizeof *it);
    char *meta = slj_metadata(doc); /* here, not on the one writer thread: it is CPU the pool can share */
    if (!it || !meta) {
        free(it);
        free(meta);
        return sl_fail(call, SL_ENOMEM, "store '%s': out of memory", uri);
    }
    int rc = check_doc(w, call, doc, meta);
    if (rc) {
        free(it);
        free(meta);
        return rc;
    }
    *it = (item){.call = call, .doc = doc, .meta = meta};
    pthread_mutex_lock(&w->mu);
    if (w->stop) {
        pthread_mutex_unlock(&w->mu);
        free(it);
        free(meta);
        return sl_fail(call, SL_EFATAL, "store '%s': %s is being closed", uri, w->c.path);
    }
    items_push(&w->queue, it);
    if (w->idle) pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
    /* From here the writer thread owns `it`; call and doc are not touched again. */
    return SL_PENDING;
}

/* --- the connection (the writer thread) --- */

static int exec_st(writer *w, int i) { return conn_exec(&w->c, w->st[i]); }

static void rollback_all(writer *w) {
    if (!sqlite3_get_autocommit(w->c.db)) {
        sqlite3_step(w->st[W_ROLLBACK]);
        sqlite3_reset(w->st[W_ROLLBACK]);
    }
}

/* Undoes what the current savepoint holds. False when that is impossible
 * because the whole transaction is gone: SQLite rolls everything back
 * itself on some errors (a full disk, I/O, out of memory). */
static bool undo_one(writer *w) {
    if (sqlite3_get_autocommit(w->c.db)) return false;
    int rc = sqlite3_step(w->st[W_ROLLBACK_TO]);
    sqlite3_reset(w->st[W_ROLLBACK_TO]);
    if (rc == SQLITE_DONE) {
        rc = sqlite3_step(w->st[W_RELEASE]);
        sqlite3_reset(w->st[W_RELEASE]);
    }
    if (rc == SQLITE_DONE) return true;
    rollback_all(w);
    return false;
}

static int bind_text_or_null(sqlite3_stmt *st, int i, const char *t) {
    return t ? sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static int grow_fbuf(writer *w, size_t n) {
    if (n <= w->fcap) return 0;
    float *nb = realloc(w->fbuf, n * sizeof *nb);
    if (!nb) return SL_ENOMEM;
    w->fbuf = nb;
    w->fcap = n;
    return 0;
}

static int insert_chunk(writer *w, sl_doc *doc, sqlite3_int64 doc_id, size_t i, size_t *vectors) {
    sqlite3_stmt *st = w->st[W_INSERT_CHUNK];
    size_t len;
    const char *text = sl_chunk_text(doc, i, &len);
    uint32_t dim = 0;
    const float *vec = sl_chunk_vector(doc, i, &dim);
    if (len > INT_MAX) return conn_own_error(&w->c, SQLITE_TOOBIG);
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
        if ((size_t)dim > (size_t)INT_MAX / sizeof(float)) return conn_own_error(&w->c, SQLITE_TOOBIG);
        const void *blob = vec;
        if (!host_is_little_endian()) {
            if (grow_fbuf(w, dim)) return conn_own_error(&w->c, SQLITE_NOMEM);
            memcpy(w->fbuf, vec, (size_t)dim * sizeof(float));
            floats_to_from_le(w->fbuf, dim);
            blob = w->fbuf;
        }
        /* the vector as one blob of dim float32s: no text, no per-value rows */
        (*vectors)++;
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 8, dim);
        if (rc == SQLITE_OK) rc = sqlite3_bind_blob(st, 9, blob, (int)(dim * sizeof(float)), SQLITE_STATIC);
    }
    char *attrs = rc == SQLITE_OK ? slj_chunk_attrs(doc, i) : NULL;
    if (rc == SQLITE_OK && !attrs) rc = SQLITE_NOMEM;
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 10, attrs, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK) {
        sqlite3_reset(st);
        free(attrs);
        return conn_note(&w->c, rc);
    }
    rc = conn_exec(&w->c, st);
    sqlite3_clear_bindings(st); /* attrs is freed now: nothing may point at it */
    free(attrs);
    return rc;
}

/* The document's row (inserted or replaced) and its chunks, replacing the
 * old ones, in the current savepoint: its id, and how many of its chunks
 * have a vector, in *id and *vectors. */
static int write_doc(writer *w, sl_doc *doc, const char *meta, sqlite3_int64 *id, size_t *vectors) {
    size_t nbytes = 0;
    sl_doc_data(doc, &nbytes);
    size_t nchunks = sl_doc_chunk_count(doc);
    sqlite3_stmt *st = w->st[W_UPSERT];
    int rc = sqlite3_bind_text(st, 1, sl_doc_uri(doc), -1, SQLITE_STATIC);
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
        rc = conn_note(&w->c, sqlite3_step(st));
        if (rc == SQLITE_ROW) {
            doc_id = sqlite3_column_int64(st, 0);
            rc = conn_note(&w->c, sqlite3_step(st));
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    } else {
        conn_note(&w->c, rc);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_OK) return rc;

    st = w->st[W_DELETE_CHUNKS];
    sqlite3_bind_int64(st, 1, doc_id);
    rc = conn_exec(&w->c, st);
    *id = doc_id;
    for (size_t i = 0; rc == SQLITE_OK && i < nchunks; i++) rc = insert_chunk(w, doc, doc_id, i, vectors);
    if (rc == SQLITE_OK) {
        st = w->st[W_CLEAR_FAILURE];
        sqlite3_bind_text(st, 1, sl_doc_uri(doc), -1, SQLITE_STATIC);
        rc = conn_exec(&w->c, st);
    }
    return rc;
}

/* Applies seen-marks in the open transaction. With a savepoint, a failure
 * undoes them alone (SQLITE_ABORT: the caller puts them back in the queue). */
static int apply_marks(writer *w, const marks *m, bool savepoint) {
    if (!m->n) return SQLITE_OK;
    int rc = savepoint ? exec_st(w, W_SAVEPOINT) : SQLITE_OK;
    sqlite3_stmt *st = w->st[W_MARK_SEEN];
    sqlite3_stmt *kids = w->st[W_MARK_CHILDREN];
    for (const mark *k = m->head; rc == SQLITE_OK && k; k = k->next) {
        sqlite3_bind_text(st, 1, k->uri, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)k->run);
        rc = conn_exec(&w->c, st);
        if (rc != SQLITE_OK || !k->children) continue;
        sqlite3_bind_text(kids, 1, k->uri, -1, SQLITE_STATIC);
        sqlite3_bind_int64(kids, 2, (sqlite3_int64)k->run);
        rc = conn_exec(&w->c, kids);
    }
    sqlite3_clear_bindings(st);
    sqlite3_clear_bindings(kids);
    if (savepoint) {
        if (rc == SQLITE_OK)
            rc = exec_st(w, W_RELEASE);
        else if (undo_one(w))
            return SQLITE_ABORT; /* undone: the group goes on without them */
    }
    return rc;
}

/* Room for one more document in w->wr (an id, its comma, the closing
 * bracket), made before its savepoint: nothing can fail after it. */
static int written_reserve(writer *w) {
    unindexed *wr = &w->wr;
    if (wr->cap - wr->len >= 32) return SQLITE_OK;
    size_t cap = wr->cap ? wr->cap * 2 : 1024;
    char *p = realloc(wr->ids, cap);
    if (!p) return conn_own_error(&w->c, SQLITE_NOMEM);
    wr->ids = p;
    wr->cap = cap;
    return SQLITE_OK;
}

/* Notes a document the open group wrote (its savepoint released). */
static void written_add(writer *w, sqlite3_int64 id, size_t chunks, size_t vectors) {
    unindexed *wr = &w->wr;
    wr->len +=
        (size_t)snprintf(wr->ids + wr->len, wr->cap - wr->len, "%c%lld", wr->len ? ',' : '[', (long long)id);
    wr->chunks += chunks;
    wr->vectors += vectors;
}

/* One index statement over the written documents: SQLITE_OK when it added
 * exactly `want` rows. */
static int index_rows(writer *w, int which, size_t want, const char *what) {
    sqlite3_stmt *st = w->st[which];
    int rc = sqlite3_bind_text(st, 1, w->wr.ids, (int)w->wr.len, SQLITE_STATIC);
    rc = rc == SQLITE_OK ? conn_exec(&w->c, st) : conn_note(&w->c, rc);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_OK && (uint64_t)sqlite3_changes64(w->c.db) != (uint64_t)want) {
        rc = conn_own_error(&w->c, SQLITE_INTERNAL);
        snprintf(w->c.errmsg, sizeof w->c.errmsg, "%s got %lld rows for the %zu its documents wrote", what,
                 (long long)sqlite3_changes64(w->c.db), want);
    }
    return rc;
}

/* The keyword log and the vector log of the chunks that the open
 * transaction wrote: one INSERT ... SELECT each for the whole group, in its
 * transaction, so a kill -9 keeps the chunks and their log entries
 * together or neither. The keyword index itself is another file, written
 * by its own thread from the log (kindex.c): FTS5 was most of this
 * thread's CPU when it was written here, first by a trigger per chunk,
 * then per group. Deletes go through triggers: a group never holds a
 * document twice (items_take), so what a document deletes was logged by an
 * earlier group. What the keyword file has committed leaves the log here. */
static int index_group(writer *w) {
    unindexed *wr = &w->wr;
    int rc = SQLITE_OK;
    if (wr->len) {
        wr->ids[wr->len++] = ']';
        wr->ids[wr->len] = '\0';
        rc = wr->chunks && !w->o.no_keywords ? index_rows(w, W_INDEX_KEYWORDS, wr->chunks, "the keyword log")
                                             : SQLITE_OK;
        if (rc == SQLITE_OK && wr->vectors) rc = index_rows(w, W_LOG_VECTORS, wr->vectors, "the vector log");
    }
    int64_t upto = w->o.ki ? kindex_committed(w->o.ki) : 0;
    w->trimming = w->trimmed;
    if (rc == SQLITE_OK && upto > w->trimmed) {
        for (int i = W_TRIM_LOG; rc == SQLITE_OK && i <= W_TRIM_MARK; i++) {
            sqlite3_bind_int64(w->st[i], 1, upto);
            rc = conn_exec(&w->c, w->st[i]);
        }
        if (rc == SQLITE_OK) w->trimming = upto;
    }
    return rc;
}

/* Every item of g still WRITTEN fails: its transaction was rolled back,
 * `why` says what took it. */
static void fail_written(writer *w, items *g, size_t written, int rc, const char *why) {
    int code = sqlite_error_kind(rc);
    for (item *it = g->head; it; it = it->next)
        if (it->rc == WRITTEN && w->c.nospace)
            it->rc = sl_fail(it->call, SL_EFATAL,
                             "no space left on device for %s (store '%s': its group of %zu documents was "
                             "rolled back): %s",
                             w->c.path, sl_doc_uri(it->doc), written, w->c.errmsg);
        else if (it->rc == WRITTEN)
            it->rc =
                sl_fail(it->call, code, "store '%s': its group of %zu documents was rolled back (%s): %s: %s",
                        sl_doc_uri(it->doc), written, why, w->c.path, w->c.errmsg);
}

/* Answers every item of g and frees them: after this the core may free
 * their documents. */
static void answer_items(items *g) {
    for (item *it = g->head, *next; it; it = next) {
        next = it->next;
        free(it->meta);
        sl_call_done(it->call, it->rc);
        free(it);
    }
    memset(g, 0, sizeof *g);
}

/* One transaction: the documents of g, each in its savepoint, and the
 * marks m, then COMMIT. Answers the documents it took; documents it could
 * not reach because the transaction was lost go back to the queue. */
static void write_group(writer *w, items *g, marks *m) {
    uint64_t t0 = now_ns();
    int rc = exec_st(w, W_BEGIN);
    if (rc != SQLITE_OK) {
        /* nothing was written: all of them fail with it (busy: retryable) */
        for (item *it = g->head; it; it = it->next)
            it->rc = conn_fail(it->call, &w->c, rc, "store", sl_doc_uri(it->doc));
        if (!g->n)
            sl_log(w->inst, SL_LOG_INFO, "%s: %zu seen-marks not written yet: %s", w->c.path, m->n,
                   w->c.errmsg);
        requeue_marks(w, m);
        answer_items(g);
        return;
    }
    bool lost = false;
    size_t written = 0;
    size_t taken = 0;
    w->wr.len = w->wr.chunks = w->wr.vectors = 0;
    for (item *it = g->head; it; it = it->next) {
        taken++;
        sqlite3_int64 id = 0;
        size_t vectors = 0;
        rc = written_reserve(w);
        if (rc == SQLITE_OK) rc = exec_st(w, W_SAVEPOINT);
        if (rc == SQLITE_OK) rc = write_doc(w, it->doc, it->meta, &id, &vectors);
        if (rc == SQLITE_OK) rc = exec_st(w, W_RELEASE);
        if (rc == SQLITE_OK) {
            written_add(w, id, sl_doc_chunk_count(it->doc), vectors);
            it->rc = WRITTEN;
            written++;
            continue;
        }
        it->rc = conn_fail(it->call, &w->c, rc, "store", sl_doc_uri(it->doc));
        if (undo_one(w)) continue; /* it fails alone */
        /* SQLite ended the whole transaction: what was written before goes
         * with it; what comes after is written in the next one. */
        fail_written(w, g, written, rc, "another document's failure ended the transaction");
        requeue_items(w, it->next);
        it->next = NULL;
        g->tail = it;
        g->n = taken;
        lost = true;
        break;
    }
    if (!lost) {
        rc = index_group(w);
        if (rc != SQLITE_OK) {
            rollback_all(w);
            fail_written(w, g, written, rc, "indexing its chunks failed");
            lost = true;
        }
    }
    if (!lost) {
        rc = apply_marks(w, m, true);
        if (rc == SQLITE_ABORT) {
            sl_log(w->inst, SL_LOG_WARN, "%s: %zu seen-marks not written, trying again later: %s", w->c.path,
                   m->n, w->c.errmsg);
            requeue_marks(w, m);
            rc = SQLITE_OK;
        } else if (rc != SQLITE_OK) {
            rollback_all(w);
            fail_written(w, g, written, rc, "writing seen-marks failed");
            lost = true;
        }
    }
    if (!lost) {
        rc = exec_st(w, W_COMMIT);
        if (rc != SQLITE_OK) {
            rollback_all(w);
            fail_written(w, g, written, rc, "commit failed");
            lost = true;
            if (!g->n)
                sl_log(w->inst, SL_LOG_INFO, "%s: seen-marks not written yet: %s", w->c.path, w->c.errmsg);
        }
    }
    if (lost) {
        requeue_marks(w, m);
    } else {
        free_marks(m);
        for (item *it = g->head; it; it = it->next)
            if (it->rc == WRITTEN) it->rc = 0;
        w->trimmed = w->trimming;
        kindex_poke(w->o.ki, w->wr.chunks); /* the log holds more, or deletes */
    }
    w->ngroups += g->n > 0;
    w->ndocs += lost ? 0 : written;
    w->busy_ns += now_ns() - t0;
    answer_items(g);
}

/* --- prune (the writer thread) --- */

static int write_prune(writer *w, prune_req *p, marks *m) {
    int rc = exec_st(w, W_BEGIN);
    if (rc == SQLITE_OK) rc = apply_marks(w, m, false);
    long long removed = 0;
    char *lo = NULL, *hi = NULL;
    const char *root = p->nroots ? p->roots[0] : "";
    for (size_t i = 0; rc == SQLITE_OK && i < p->nroots; i++) {
        root = p->roots[i];
        size_t n = strlen(root);
        bool slash = root[n - 1] == '/';
        free(lo);
        free(hi);
        lo = malloc(n + 2);
        hi = malloc(n + 2);
        if (!lo || !hi) {
            rc = conn_own_error(&w->c, SQLITE_NOMEM);
            break;
        }
        snprintf(lo, n + 2, "%s%s", root, slash ? "" : "/");
        memcpy(hi, lo, strlen(lo) + 1);
        hi[strlen(hi) - 1] = '0'; /* the byte after '/' */
        sqlite3_stmt *st = w->st[W_PRUNE];
        sqlite3_bind_text(st, 1, root, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, lo, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, hi, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)p->run_id);
        rc = conn_exec(&w->c, st);
        if (rc == SQLITE_OK) removed += sqlite3_changes(w->c.db);
    }
    free(lo);
    free(hi);
    if (rc == SQLITE_OK) rc = exec_st(w, W_COMMIT);
    if (rc != SQLITE_OK) {
        rollback_all(w);
        requeue_marks(w, m);
        return conn_fail(p->call, &w->c, rc, "prune", root);
    }
    free_marks(m);
    if (removed) kindex_poke(w->o.ki, 0); /* the delete trigger logged their chunks */
    return removed > INT_MAX ? INT_MAX : (int)removed;
}

int writer_prune(writer *w, sl_call *call, const char *const *roots, size_t nroots, uint64_t run_id) {
    prune_req p = {.call = call, .roots = roots, .nroots = nroots, .run_id = run_id};
    pthread_mutex_lock(&w->mu);
    while (w->prune && !w->stop) pthread_cond_wait(&w->done, &w->mu); /* another sink's prune first */
    if (w->stop) {
        pthread_mutex_unlock(&w->mu);
        return sl_fail(call, SL_EFATAL, "prune: %s is being closed", w->c.path);
    }
    w->prune = &p;
    if (w->idle) pthread_cond_signal(&w->work);
    while (!p.done) pthread_cond_wait(&w->done, &w->mu);
    pthread_mutex_unlock(&w->mu);
    return p.result;
}

/* --- the writer thread --- */

static void wait_until(writer *w, uint64_t due) {
    uint64_t now = sl_now_ms(), ms = due > now ? due - now : 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    w->idle = true;
    pthread_cond_timedwait(&w->work, &w->mu, &ts);
    w->idle = false;
}

/* Documents first (they hold places in the pipeline), in the order they
 * came, then a prune (after every document queued before it), then marks
 * whose time is up; at stop, everything left. mu is held except around
 * SQL. */
static void *writer_main(void *arg) {
    writer *w = arg;
    pthread_setname_np(pthread_self(), "sqlite-writer"); /* for top -H and perf */
    pthread_mutex_lock(&w->mu);
    for (;;) {
        uint64_t now = sl_now_ms();
        if (w->queue.n) {
            items g = items_take(&w->queue, (size_t)w->o.group_max);
            marks m = take_marks_locked(w);
            pthread_mutex_unlock(&w->mu);
            write_group(w, &g, &m);
            pthread_mutex_lock(&w->mu);
        } else if (w->prune) {
            prune_req *p = w->prune;
            marks m = take_marks_locked(w);
            pthread_mutex_unlock(&w->mu);
            int result = write_prune(w, p, &m);
            pthread_mutex_lock(&w->mu);
            p->result = result;
            p->done = true;
            w->prune = NULL;
            pthread_cond_broadcast(&w->done);
        } else if (w->queued.n && (w->stop || now >= w->marks_due)) {
            marks m = take_marks_locked(w);
            pthread_mutex_unlock(&w->mu);
            items none = {0};
            write_group(w, &none, &m);
            pthread_mutex_lock(&w->mu);
            if (w->stop && w->queued.n) break; /* they failed again: fini logs them */
        } else if (w->stop) {
            break;
        } else if (w->queued.n) {
            wait_until(w, w->marks_due);
        } else {
            w->idle = true;
            pthread_cond_wait(&w->work, &w->mu);
            w->idle = false;
        }
    }
    pthread_mutex_unlock(&w->mu);
    if (w->ckpt_held) { /* a mutex is unlocked by the thread that locked it */
        pthread_mutex_unlock(&w->ckpt_mu);
        w->ckpt_held = false;
    }
    w->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    return NULL;
}

/* --- checkpoints --- */

/* After each commit on the writer's connection (the writer thread, mu not
 * held): wakes the checkpointer, or past the backstop checkpoints here.
 *
 * The WAL starts over in the writer's next transaction only if every
 * frame was copied and no checkpoint is under way when it begins, so the
 * backstop keeps the checkpointer out (ckpt_mu, held by the writer thread)
 * from its RESTART checkpoint until the next commit: by then that
 * transaction has begun, and started the WAL over. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames) {
    writer *w = arg;
    if (w->ckpt_held) {
        pthread_mutex_unlock(&w->ckpt_mu);
        w->ckpt_held = false;
    }
    if (frames >= CKPT_BACKSTOP) {
        /* Waits for the checkpointer's pass, then (busy_timeout) for
         * readers of older snapshots; copies what is left. SQLITE_BUSY: the
         * wait ran out, and the next commit tries again. */
        pthread_mutex_lock(&w->ckpt_mu);
        w->ckpt_held = true;
        if (sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_RESTART, NULL, NULL) == SQLITE_OK)
            w->nbackstop++;
    } else if (frames >= CKPT_FRAMES) {
        pthread_mutex_lock(&w->mu);
        if (!w->ckpt_due) {
            w->ckpt_due = true;
            pthread_cond_signal(&w->ckpt_work);
        }
        pthread_mutex_unlock(&w->mu);
    }
    return SQLITE_OK;
}

static void *ckpt_main(void *arg) {
    writer *w = arg;
    pthread_setname_np(pthread_self(), "sqlite-ckpt");
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->ckpt_due && !w->ckpt_stop) pthread_cond_wait(&w->ckpt_work, &w->mu);
        if (!w->ckpt_due) break; /* stop: the writer's close checkpoints the rest */
        w->ckpt_due = false;
        pthread_mutex_unlock(&w->mu);
        pthread_mutex_lock(&w->ckpt_mu);
        uint64_t t0 = now_ns();
        int rc = sqlite3_wal_checkpoint_v2(w->cdb, "main", SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        w->ckpt_busy_ns += now_ns() - t0;
        pthread_mutex_unlock(&w->ckpt_mu);
        if (rc == SQLITE_OK) {
            w->nckpt++;
        } else if (rc != SQLITE_BUSY) {
            /* an I/O error: the writer's own checkpoints (the backstop) and
             * its close still keep the WAL bounded; fini says why */
            w->ckpt_failed++;
            w->ckpt_last_rc = rc;
        }
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    w->ckpt_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    return NULL;
}

/* The checkpointer for the writer's file `path`, when it is in WAL mode:
 * a connection with the writer's synchronous setting (the checkpoint's
 * fsyncs keep the durability that asks for) and its thread. Without one
 * (not WAL, or it cannot start) the writer checkpoints as SQLite does by
 * default: nothing is lost but time, and the log says so. */
static void ckpt_start(writer *w, const char *path) {
    sqlite3 *db = w->c.db;
    sqlite3_stmt *st = NULL;
    bool wal = false;
    int sync = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const char *m = (const char *)sqlite3_column_text(st, 0);
        wal = m && strcmp(m, "wal") == 0;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA synchronous", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        sync = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (!wal || sync < 1) return;

    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA synchronous = %d", sync);
    char why[256] = "";
    int rc = sqlite3_open_v2(path, &w->cdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_exec(w->cdb, pragma, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(why, sizeof why, "%s", w->cdb ? sqlite3_errmsg(w->cdb) : sqlite3_errstr(rc));
    } else if ((rc = pthread_create(&w->ckpt_thread, NULL, ckpt_main, w)) != 0) {
        snprintf(why, sizeof why, "cannot start it: %s", strerror(rc));
    }
    if (why[0]) {
        sl_log(w->inst, SL_LOG_WARN, "%s: no checkpoint thread (%s): the writer checkpoints the WAL itself",
               path, why);
        sqlite3_close_v2(w->cdb);
        w->cdb = NULL;
        return;
    }
    w->ckpt_started = true;
    sqlite3_wal_hook(db, wal_hook, w); /* replaces SQLite's autocheckpoint */
}

/* Stops the checkpointer, once the writer thread has ended (no commit
 * wakes it again); a checkpoint under way ends first. */
static void writer_stop_ckpt(writer *w) {
    if (!w->ckpt_started) return;
    pthread_mutex_lock(&w->mu);
    w->ckpt_stop = true;
    pthread_cond_signal(&w->ckpt_work);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->ckpt_thread, NULL);
    w->ckpt_started = false;
}

/* --- life --- */

static void writer_close(writer *w) {
    for (int i = 0; i < W_COUNT; i++) sqlite3_finalize(w->st[i]);
    /* the checkpointer's first: the writer's, the last, checkpoints what
     * is left and removes the WAL */
    sqlite3_close_v2(w->cdb);
    sqlite3_close_v2(w->c.db);
    free_marks(&w->queued);
    free(w->fbuf);
    free(w->wr.ids);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->done);
    pthread_cond_destroy(&w->ckpt_work);
    pthread_mutex_destroy(&w->ckpt_mu);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

int writer_new(sl_instance *inst, sqlite3 *db, const char *path, const writer_opts *o, writer **out) {
    *out = NULL;
    writer *w = calloc(1, sizeof *w);
    if (!w) {
        sqlite3_close_v2(db);
        return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    }
    w->inst = inst;
    w->c.db = db;
    w->c.path = path;
    w->o = *o;
    w->max_len = sqlite3_limit(db, SQLITE_LIMIT_LENGTH, -1);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->work, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&w->done, NULL);
    pthread_cond_init(&w->ckpt_work, NULL);
    pthread_mutex_init(&w->ckpt_mu, NULL);
    pthread_mutex_init(&w->mu, NULL);
    for (int i = 0; i < W_COUNT; i++) {
        int rc = sqlite3_prepare_v3(db, statements[i], -1, SQLITE_PREPARE_PERSISTENT, &w->st[i], NULL);
        if (rc != SQLITE_OK) {
            int code = sl_instance_fail(inst, SL_EFATAL, "%s: cannot prepare a statement (%s): %s", path,
                                        statements[i], sqlite3_errmsg(db));
            writer_close(w);
            return code;
        }
    }
    ckpt_start(w, path);
    int rc = pthread_create(&w->thread, NULL, writer_main, w);
    if (rc) {
        writer_stop_ckpt(w);
        writer_close(w);
        return sl_instance_fail(inst, SL_EFATAL, "cannot start the writer thread: %s", strerror(rc));
    }
    w->thread_started = true;
    *out = w;
    return 0;
}

void writer_free(writer *w) {
    if (!w) return;
    if (w->thread_started) {
        /* The thread writes and answers everything queued, then the marks,
         * and ends. */
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_signal(&w->work);
        pthread_cond_broadcast(&w->done);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    writer_stop_ckpt(w);
    if (w->queued.n)
        sl_log(w->inst, SL_LOG_WARN, "%s: %zu seen-marks were not written: %s", w->c.path, w->queued.n,
               w->c.errmsg);
    if (w->ngroups)
        sl_log(w->inst, SL_LOG_INFO,
               "%s: %llu documents in %llu groups (%.1f a group); the writer thread wrote for %.2f s, "
               "%.2f s of it on the CPU",
               w->c.path, (unsigned long long)w->ndocs, (unsigned long long)w->ngroups,
               (double)w->ndocs / (double)w->ngroups, (double)w->busy_ns / 1e9, (double)w->cpu_ns / 1e9);
    if (w->nckpt || w->nbackstop)
        sl_log(w->inst, SL_LOG_INFO,
               "%s: %llu checkpoints on the checkpoint thread (%.2f s, %.2f s of it on the CPU), %llu by "
               "the writer past %d WAL pages",
               w->c.path, (unsigned long long)w->nckpt, (double)w->ckpt_busy_ns / 1e9,
               (double)w->ckpt_cpu_ns / 1e9, (unsigned long long)w->nbackstop, CKPT_BACKSTOP);
    if (w->ckpt_failed)
        sl_log(w->inst, SL_LOG_WARN, "%s: %llu checkpoints failed on the checkpoint thread (the last: %s)",
               w->c.path, (unsigned long long)w->ckpt_failed, sqlite3_errstr(w->ckpt_last_rc));
    writer_close(w);
}
