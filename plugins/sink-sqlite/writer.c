/* writer.c - sink-sqlite's one write connection, with group commit.
 *
 * SQLite lets one connection write at a time, and each COMMIT is a WAL
 * append (and with synchronous = full, an fsync): paid per document, it is
 * what ten thousand documents queue behind. So several whole documents
 * share one transaction: BEGIN IMMEDIATE, then per document a SAVEPOINT
 * around its upsert, chunk delete and chunk inserts, released when they
 * all went in. A document whose writes fail is rolled back to its
 * savepoint and fails alone; the others stay in the group.
 *
 * store() writes the document into the open group and answers SL_PENDING;
 * every document of the group is answered (sl_call_done, from whatever
 * thread commits) once COMMIT has returned: 0 when it succeeded, the error
 * when it did not. A document is never reported stored before its
 * transaction committed, and kill -9 loses at most unanswered groups.
 *
 * A group commits when it holds group_max documents (on the thread that
 * stores the last one, which is answered by its return value), group_ms
 * after its first document (on the committer thread: a condition variable
 * with a deadline), or when prune or fini needs the connection.
 * group_max = 1 is one transaction per document, answered at once.
 *
 * Lookups read on their own connections and never write. The "seen in
 * this run" they used to write (what prune keeps) is queued here and
 * applied in the next transaction, and at the latest in prune's own,
 * before its DELETE: prune never sees a run without all its marks.
 *
 * Two locks. db_mu guards the connection and the open group and is held
 * while writing; mu guards the committer's deadline and the seen-mark
 * queue and is held only to read or change them, so a lookup never waits
 * for a write. Order: db_mu, then mu. Answers are given after db_mu is
 * released.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    W_PRUNE,
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
    [W_INSERT_CHUNK] = "INSERT INTO chunks(doc_id, ordinal, text, heading, page, line, summary, dim, vector)"
                       " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [W_MARK_SEEN] = "UPDATE documents SET seen_run = ?2 WHERE uri = ?1",
    /* Under a root: the root itself, or [root/, root0): '0' follows '/', and
     * uri compares bytewise, so this range is exactly "starts with root/"
     * and it walks the uri index; no LIKE, nothing to escape. */
    [W_PRUNE] = "DELETE FROM documents WHERE (uri = ?1 OR (uri >= ?2 AND uri < ?3))"
                " AND (seen_run IS NULL OR seen_run <> ?4)",
};

/* A document written into the open group, not answered yet. */
typedef struct pending {
    sl_call *call;
    char *uri; /* for messages */
} pending;

/* A queued seen-mark; a list, so putting marks back never allocates. */
typedef struct mark {
    struct mark *next;
    uint64_t run;
    char uri[];
} mark;

typedef struct marks {
    mark *head, *tail;
    size_t n;
} marks;

/* Documents taken out of a group, answered once db_mu is released: code
 * is what every one of them gets (their messages are already set). */
typedef struct answers {
    pending *v;
    size_t n;
    int code;
} answers;

struct writer {
    sl_instance *inst;
    conn c;
    sqlite3_stmt *st[W_COUNT];
    float *fbuf; /* big-endian hosts: one vector in little-endian order */
    size_t fcap;
    writer_opts o;

    pthread_mutex_t db_mu;
    bool open; /* BEGIN IMMEDIATE issued, not committed */
    pending *group;
    size_t ngroup, capgroup;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t due_ms; /* when the open group or the oldest queued mark is to be committed; 0: nothing is */
    marks queued;
    bool stop;
    pthread_t thread;
    bool thread_started;
};

/* --- the deadline and the seen-marks (mu) --- */

/* Sets the deadline to `at` unless an earlier one is set. mu held. */
static void arm_locked(writer *w, uint64_t at) {
    if (w->due_ms == 0 || at < w->due_ms) {
        w->due_ms = at ? at : 1;
        pthread_cond_signal(&w->cv);
    }
}

static void arm(writer *w, uint64_t at) {
    pthread_mutex_lock(&w->mu);
    arm_locked(w, at);
    pthread_mutex_unlock(&w->mu);
}

/* Takes every queued mark; what is committed now clears the deadline. */
static marks take_marks(writer *w) {
    pthread_mutex_lock(&w->mu);
    marks m = w->queued;
    memset(&w->queued, 0, sizeof w->queued);
    w->due_ms = 0;
    pthread_mutex_unlock(&w->mu);
    return m;
}

/* Puts marks whose transaction failed back in the queue, to be tried again
 * after a pause (not at once: what failed would likely fail again). */
static void requeue_marks(writer *w, marks *m) {
    if (!m->n) return;
    pthread_mutex_lock(&w->mu);
    if (w->queued.tail)
        w->queued.tail->next = m->head;
    else
        w->queued.head = m->head;
    w->queued.tail = m->tail;
    w->queued.n += m->n;
    int64_t pause = w->o.group_ms > 1000 ? w->o.group_ms : 1000;
    arm_locked(w, sl_now_ms() + (uint64_t)pause);
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

int writer_mark_seen(writer *w, const char *uri, uint64_t run) {
    size_t len = strlen(uri);
    mark *k = malloc(sizeof *k + len + 1);
    if (!k) return SL_ENOMEM;
    k->next = NULL;
    k->run = run;
    memcpy(k->uri, uri, len + 1);
    pthread_mutex_lock(&w->mu);
    if (w->queued.tail)
        w->queued.tail->next = k;
    else
        w->queued.head = k;
    w->queued.tail = k;
    w->queued.n++;
    arm_locked(w, sl_now_ms() + (uint64_t)w->o.group_ms);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

/* --- the connection (db_mu) --- */

static int exec_st(writer *w, int i) { return conn_exec(&w->c, w->st[i]); }

static void rollback_all(writer *w) {
    if (!sqlite3_get_autocommit(w->c.db)) {
        sqlite3_step(w->st[W_ROLLBACK]);
        sqlite3_reset(w->st[W_ROLLBACK]);
    }
    w->open = false;
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

static void detach(writer *w, answers *a, int code) {
    a->v = w->group;
    a->n = w->ngroup;
    a->code = code;
    w->group = NULL;
    w->ngroup = w->capgroup = 0;
}

/* The group's transaction is gone (rolled back): every document in it
 * fails with rc; `why` says what took it. */
static void fail_group(writer *w, int rc, const char *why, answers *a) {
    detach(w, a, sqlite_error_kind(rc));
    for (size_t i = 0; i < a->n; i++)
        sl_fail(a->v[i].call, a->code, "store '%s': its group of %zu documents was rolled back (%s): %s: %s",
                a->v[i].uri, a->n, why, w->c.path, w->c.errmsg);
}

static void answer(answers *a) {
    for (size_t i = 0; i < a->n; i++) {
        sl_call_done(a->v[i].call, a->code);
        free(a->v[i].uri);
    }
    free(a->v);
    memset(a, 0, sizeof *a);
}

/* Applies seen-marks in the open transaction. With a savepoint, a failure
 * undoes them alone (the caller puts them back in the queue). */
static int apply_marks(writer *w, const marks *m, bool savepoint) {
    int rc = savepoint ? exec_st(w, W_SAVEPOINT) : SQLITE_OK;
    sqlite3_stmt *st = w->st[W_MARK_SEEN];
    for (const mark *k = m->head; rc == SQLITE_OK && k; k = k->next) {
        sqlite3_bind_text(st, 1, k->uri, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)k->run);
        rc = conn_exec(&w->c, st);
    }
    sqlite3_clear_bindings(st);
    if (savepoint) {
        if (rc == SQLITE_OK)
            rc = exec_st(w, W_RELEASE);
        else if (undo_one(w))
            return SQLITE_ABORT; /* undone: the group goes on without them */
    }
    return rc;
}

/* Commits the open group with the queued seen-marks (in a transaction of
 * their own when no group is open). The group's documents go to *a with
 * their answer. SQLITE_OK or the failure. */
static int commit_group(writer *w, answers *a) {
    marks m = take_marks(w);
    if (!w->open && !m.n) return SQLITE_OK;
    int rc = SQLITE_OK;
    if (!w->open) {
        rc = exec_st(w, W_BEGIN);
        if (rc != SQLITE_OK) {
            requeue_marks(w, &m);
            return rc;
        }
        w->open = true;
    }
    if (m.n) {
        rc = apply_marks(w, &m, true);
        if (rc == SQLITE_ABORT) {
            sl_log(w->inst, SL_LOG_WARN, "%s: %zu seen-marks not written, trying again later: %s", w->c.path,
                   m.n, w->c.errmsg);
            requeue_marks(w, &m);
            rc = SQLITE_OK;
        } else if (rc != SQLITE_OK) {
            rollback_all(w);
            fail_group(w, rc, "writing seen-marks failed", a);
            requeue_marks(w, &m);
            return rc;
        }
    }
    rc = exec_st(w, W_COMMIT);
    if (rc != SQLITE_OK) {
        rollback_all(w);
        fail_group(w, rc, "commit failed", a);
        requeue_marks(w, &m);
        return rc;
    }
    w->open = false;
    detach(w, a, 0);
    free_marks(&m);
    return SQLITE_OK;
}

/* --- the committer thread --- */

static bool is_due(writer *w) {
    pthread_mutex_lock(&w->mu);
    uint64_t due = w->due_ms;
    pthread_mutex_unlock(&w->mu);
    return due && sl_now_ms() >= due;
}

static void wait_until(writer *w, uint64_t due) {
    uint64_t now = sl_now_ms(), ms = due - now;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&w->cv, &w->mu, &ts);
}

/* Commits each group (and each batch of seen-marks) when its time is up. */
static void *committer(void *arg) {
    writer *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        if (!w->due_ms) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        if (sl_now_ms() < w->due_ms) {
            wait_until(w, w->due_ms);
            continue;
        }
        pthread_mutex_unlock(&w->mu);
        answers a = {0};
        pthread_mutex_lock(&w->db_mu);
        /* a store may have committed it meanwhile, and opened the next */
        int rc = is_due(w) ? commit_group(w, &a) : SQLITE_OK;
        if (rc != SQLITE_OK)
            sl_log(w->inst, SL_LOG_INFO, "%s: timed commit failed: %s", w->c.path, w->c.errmsg);
        pthread_mutex_unlock(&w->db_mu);
        answer(&a);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* --- store --- */

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

static int insert_chunk(writer *w, sl_doc *doc, sqlite3_int64 doc_id, size_t i) {
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
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 8, dim);
        if (rc == SQLITE_OK) rc = sqlite3_bind_blob(st, 9, blob, (int)(dim * sizeof(float)), SQLITE_STATIC);
    }
    if (rc != SQLITE_OK) {
        sqlite3_reset(st);
        return conn_note(&w->c, rc);
    }
    return conn_exec(&w->c, st);
}

/* The document's row (inserted or replaced) and its chunks, replacing the
 * old ones, in the current savepoint. */
static int write_doc(writer *w, sl_doc *doc, const char *meta) {
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
    for (size_t i = 0; rc == SQLITE_OK && i < nchunks; i++) rc = insert_chunk(w, doc, doc_id, i);
    return rc;
}

static int reserve_group(writer *w) {
    if (w->ngroup < w->capgroup) return 0;
    size_t cap = w->capgroup ? w->capgroup * 2 : 16;
    pending *g = realloc(w->group, cap * sizeof *g);
    if (!g) return SL_ENOMEM;
    w->group = g;
    w->capgroup = cap;
    return 0;
}

int writer_store(writer *w, sl_call *call, sl_doc *doc) {
    const char *uri = sl_doc_uri(doc);
    char *meta = slj_metadata(doc);
    char *name = strdup(uri);
    answers a = {0};
    pthread_mutex_lock(&w->db_mu);
    if (!meta || !name || reserve_group(w)) {
        pthread_mutex_unlock(&w->db_mu);
        free(meta);
        free(name);
        return sl_fail(call, SL_ENOMEM, "store '%s': out of memory", uri);
    }
    int rc = SQLITE_OK;
    if (!w->open) {
        rc = exec_st(w, W_BEGIN);
        if (rc != SQLITE_OK) goto failed; /* nothing was open: nothing else is touched */
        w->open = true;
        arm(w, sl_now_ms() + (uint64_t)w->o.group_ms);
    }
    rc = exec_st(w, W_SAVEPOINT);
    if (rc == SQLITE_OK) rc = write_doc(w, doc, meta);
    if (rc == SQLITE_OK) rc = exec_st(w, W_RELEASE);
    if (rc != SQLITE_OK) {
        if (!undo_one(w))
            fail_group(w, rc, "another document's failure ended the transaction", &a);
        else if (w->ngroup == 0)
            rollback_all(w); /* nothing else in it: do not hold the write lock for nothing */
        goto failed;
    }
    free(meta);
    w->group[w->ngroup++] = (pending){call, name};
    if (w->ngroup < (size_t)w->o.group_max) {
        pthread_mutex_unlock(&w->db_mu);
        return SL_PENDING;
    }
    /* The group is full: commit it here. This document is the last of it
     * and is answered by the return value, the others by sl_call_done. */
    commit_group(w, &a);
    pthread_mutex_unlock(&w->db_mu);
    free(a.v[--a.n].uri);
    int code = a.code;
    answer(&a);
    return code;

failed:
    pthread_mutex_unlock(&w->db_mu);
    answer(&a);
    free(meta);
    free(name);
    return conn_fail(call, &w->c, rc, "store", uri);
}

/* --- prune --- */

int writer_prune(writer *w, sl_call *call, const char *const *roots, size_t nroots, uint64_t run_id) {
    answers a = {0};
    pthread_mutex_lock(&w->db_mu);
    /* The open group first, so this transaction starts clean; its own
     * failure is its documents' (they are answered with it). */
    commit_group(w, &a);
    marks m = take_marks(w);
    int rc = exec_st(w, W_BEGIN);
    if (rc == SQLITE_OK) rc = apply_marks(w, &m, false);
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
        sqlite3_bind_int64(st, 4, (sqlite3_int64)run_id);
        rc = conn_exec(&w->c, st);
        if (rc == SQLITE_OK) removed += sqlite3_changes(w->c.db);
    }
    free(lo);
    free(hi);
    if (rc == SQLITE_OK) rc = exec_st(w, W_COMMIT);
    if (rc != SQLITE_OK) {
        rollback_all(w);
        requeue_marks(w, &m);
    } else {
        w->open = false;
        free_marks(&m);
    }
    pthread_mutex_unlock(&w->db_mu);
    answer(&a);
    if (rc != SQLITE_OK) return conn_fail(call, &w->c, rc, "prune", root);
    return removed > INT_MAX ? INT_MAX : (int)removed;
}

/* --- life --- */

static void writer_close(writer *w) {
    for (int i = 0; i < W_COUNT; i++) sqlite3_finalize(w->st[i]);
    sqlite3_close_v2(w->c.db);
    free_marks(&w->queued);
    free(w->group);
    free(w->fbuf);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->db_mu);
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
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->db_mu, NULL);
    for (int i = 0; i < W_COUNT; i++) {
        int rc = sqlite3_prepare_v3(db, statements[i], -1, SQLITE_PREPARE_PERSISTENT, &w->st[i], NULL);
        if (rc != SQLITE_OK) {
            int code = sl_instance_fail(inst, SL_EFATAL, "%s: cannot prepare a statement (%s): %s", path,
                                        statements[i], sqlite3_errmsg(db));
            writer_close(w);
            return code;
        }
    }
    int rc = pthread_create(&w->thread, NULL, committer, w);
    if (rc) {
        writer_close(w);
        return sl_instance_fail(inst, SL_EFATAL, "cannot start the commit thread: %s", strerror(rc));
    }
    w->thread_started = true;
    *out = w;
    return 0;
}

void writer_free(writer *w) {
    if (!w) return;
    if (w->thread_started) {
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    answers a = {0};
    pthread_mutex_lock(&w->db_mu);
    if (commit_group(w, &a) != SQLITE_OK)
        sl_log(w->inst, SL_LOG_WARN, "%s: the last group or seen-marks were not written: %s", w->c.path,
               w->c.errmsg);
    pthread_mutex_unlock(&w->db_mu);
    answer(&a);
    writer_close(w);
}
