/* vindex.c - the approximate vector index of sink-sqlite (see vindex.h):
 * when an index file is believed, how it is caught up with the store's
 * vector_log, when it is built, and how a query uses it.
 *
 * Locking: the set's mutex guards its list of indexes; each index has a
 * read-write lock: searches share it, loading, catching up and building
 * take it alone. Every read of the store runs on the caller's connection,
 * inside the caller's read transaction, so an index caught up to a
 * snapshot's last log entry holds exactly that snapshot's vectors.
 */
#include "vindex.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hnsw_shim.h"
#include "sink_sqlite.h"

#define MAX_DIMS 8

/* What an index file records about the store it was built from. */
typedef struct file_meta {
    char store_id[48];  /* vector_log_id.id */
    int64_t seq;        /* the last log entry it covers; 0: none */
    int64_t last_chunk; /* that entry's chunk and whether it added: a store */
    int64_t last_added; /* with another history has another entry there */
    uint64_t live;
} file_meta;

typedef struct vindex {
    uint32_t dim;
    pthread_rwlock_t lock;
    sl_hnsw *h;  /* NULL: not loaded or built */
    int64_t seq; /* the last log entry h reflects */
    bool dirty;  /* changed since read or saved */
    bool tried;  /* the file was tried (absent, bad or loaded) */
    bool failed; /* a build failed: do not retry in this process */
    bool fresh;  /* loaded from its file and not caught up yet */
} vindex;

struct vindex_set {
    sl_instance *inst;
    char *path;
    vindex_opts o;
    pthread_mutex_t mu;
    vindex *idx[MAX_DIMS];
    size_t n;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

vindex_set *vindex_set_new(sl_instance *inst, const char *path, const vindex_opts *o) {
    vindex_set *vs = calloc(1, sizeof *vs);
    if (!vs || !(vs->path = strdup(path))) {
        free(vs);
        return NULL;
    }
    vs->inst = inst;
    vs->o = *o;
    pthread_mutex_init(&vs->mu, NULL);
    return vs;
}

static void file_path(const vindex_set *vs, uint32_t dim, char *out, size_t outlen) {
    snprintf(out, outlen, "%s.%u.hnsw", vs->path, dim);
}

/* Temporary files of saves that a kill interrupted: FILE.tmp.PID with no
 * such process any more. */
static void remove_stale_temps(const vindex_set *vs, uint32_t dim) {
    char file[4200];
    file_path(vs, dim, file, sizeof file);
    const char *slash = strrchr(file, '/');
    char dir[4200];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - file) : 1, slash ? file : ".");
    const char *base = slash ? slash + 1 : file;
    size_t blen = strlen(base);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, base, blen) != 0 || strncmp(e->d_name + blen, ".tmp.", 5) != 0) continue;
        char *end;
        long pid = strtol(e->d_name + blen + 5, &end, 10);
        if (*end || pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) {
            char p[8400];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
}

/* Temp file, fsync, rename: a reader sees the old file or the new one. */
static int save(vindex_set *vs, vindex *x, const file_meta *m) {
    char file[4200], tmp[4300];
    file_path(vs, x->dim, file, sizeof file);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", file, (long)getpid());
    double t0 = now_s();
    int rc = sl_hnsw_save(x->h, tmp, m, sizeof *m);
    if (rc == SL_HNSW_OK && rename(tmp, file) != 0) rc = SL_HNSW_EIO;
    if (rc != SL_HNSW_OK) {
        sl_log(vs->inst, SL_LOG_WARN, "vector index %s: cannot save: %s", file,
               *sl_hnsw_last_error() ? sl_hnsw_last_error() : strerror(errno));
        unlink(tmp);
        return -1;
    }
    x->dirty = false;
    sl_log(vs->inst, SL_LOG_DEBUG, "vector index %s: saved %zu vectors in %.2fs", file, sl_hnsw_live(x->h),
           now_s() - t0);
    return 0;
}

/* --- reading the store (the caller's transaction) --- */

static sqlite3_stmt *prep(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

/* The snapshot's last log entry (0 when none) and its store id. -1 when
 * the store has no log (it always has: init makes it). */
static int64_t log_head(sqlite3 *db, char *store_id, size_t idlen) {
    sqlite3_stmt *st = prep(db, "SELECT (SELECT id FROM vector_log_id LIMIT 1),"
                                " coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'vector_log'), 0)");
    int64_t seq = -1;
    if (st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
        snprintf(store_id, idlen, "%s", (const char *)sqlite3_column_text(st, 0));
        seq = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return seq;
}

/* The chunk and kind of log entry `seq`: 0, or -1 when there is none. */
static int log_entry(sqlite3 *db, int64_t seq, int64_t *chunk, int64_t *added) {
    sqlite3_stmt *st = prep(db, "SELECT chunk, added FROM vector_log WHERE seq = ?1");
    int rc = -1;
    if (st) {
        sqlite3_bind_int64(st, 1, seq);
        if (sqlite3_step(st) == SQLITE_ROW) {
            *chunk = sqlite3_column_int64(st, 0);
            *added = sqlite3_column_int64(st, 1);
            rc = 0;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* A stored vector of `dim` floats (host order) into v: 1, 0 when the row is
 * gone or of another dimension, -1 on a read failure. */
static int read_vector(sqlite3_stmt *st, int64_t id, uint32_t dim, float *v) {
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st), found = 0;
    if (rc == SQLITE_ROW) {
        const void *blob = sqlite3_column_blob(st, 1);
        if (sqlite3_column_int64(st, 0) == (int64_t)dim && blob &&
            (size_t)sqlite3_column_bytes(st, 1) == (size_t)dim * sizeof(float)) {
            memcpy(v, blob, (size_t)dim * sizeof(float));
            floats_to_from_le(v, dim);
            found = 1;
        }
    } else if (rc != SQLITE_DONE) {
        found = -1;
    }
    sqlite3_reset(st);
    return found;
}

/* The log entries after x->seq up to `head`, applied in order. -1 when the
 * log has a gap there (entries missing: the index cannot be caught up) or
 * a read or an add failed. */
static int catch_up(vindex_set *vs, vindex *x, sqlite3 *db, int64_t head, size_t *applied) {
    *applied = 0;
    sqlite3_stmt *cnt = prep(db, "SELECT count(*) FROM vector_log WHERE seq > ?1 AND seq <= ?2");
    sqlite3_stmt *log =
        prep(db, "SELECT chunk, added FROM vector_log WHERE seq > ?1 AND seq <= ?2 AND dim = ?3"
                 " ORDER BY seq");
    sqlite3_stmt *vec = prep(db, "SELECT dim, vector FROM chunks WHERE id = ?1");
    float *v = malloc((size_t)x->dim * sizeof *v);
    int rc = cnt && log && vec && v ? 0 : -1;
    if (rc == 0) {
        sqlite3_bind_int64(cnt, 1, x->seq);
        sqlite3_bind_int64(cnt, 2, head);
        if (sqlite3_step(cnt) != SQLITE_ROW || sqlite3_column_int64(cnt, 0) != head - x->seq) {
            sl_log(vs->inst, SL_LOG_WARN,
                   "vector index of %u dimensions: the store's log has a gap after entry %lld", x->dim,
                   (long long)x->seq);
            rc = -1;
        }
    }
    if (rc == 0) {
        sqlite3_bind_int64(log, 1, x->seq);
        sqlite3_bind_int64(log, 2, head);
        sqlite3_bind_int64(log, 3, x->dim);
        int step;
        while (rc == 0 && (step = sqlite3_step(log)) == SQLITE_ROW) {
            int64_t chunk = sqlite3_column_int64(log, 0);
            if (sqlite3_column_int64(log, 1)) {
                /* the row as this snapshot has it: a later entry removes it if it went */
                int got = read_vector(vec, chunk, x->dim, v);
                if (got < 0 || (got == 1 && sl_hnsw_add(x->h, chunk, v) != SL_HNSW_OK)) rc = -1;
            } else if (sl_hnsw_remove(x->h, chunk) < 0) {
                rc = -1;
            }
            (*applied)++;
        }
        if (rc == 0 && step != SQLITE_DONE) rc = -1;
    }
    if (rc == 0) {
        x->seq = head;
        if (*applied) x->dirty = true;
    }
    free(v);
    sqlite3_finalize(cnt);
    sqlite3_finalize(log);
    sqlite3_finalize(vec);
    return rc;
}

/* Loads PATH.DIM.hnsw if it is there and agrees with the store; 0 with
 * x->h set, or -1 (absent or refused: logged when refused). */
static int load(vindex_set *vs, vindex *x, sqlite3 *db, const char *store_id, int64_t head) {
    char file[4200];
    file_path(vs, x->dim, file, sizeof file);
    remove_stale_temps(vs, x->dim);
    if (access(file, F_OK) != 0) return -1;
    file_meta m;
    double t0 = now_s();
    sl_hnsw *h = NULL;
    int rc = sl_hnsw_load(file, x->dim, &m, sizeof m, &h);
    const char *why = NULL;
    char buf[512];
    int64_t chunk = 0, added = 0;
    if (rc != SL_HNSW_OK) {
        snprintf(buf, sizeof buf, "%s", sl_hnsw_last_error());
        why = buf;
    } else if (memchr(m.store_id, '\0', sizeof m.store_id) == NULL || strcmp(m.store_id, store_id) != 0) {
        why = "it was built from another store";
    } else if (m.seq < 0 || m.seq > head) {
        why = "it is newer than the store";
    } else if (m.seq > 0 && (log_entry(db, m.seq, &chunk, &added) != 0 || chunk != m.last_chunk ||
                             added != m.last_added)) {
        why = "the store's log does not have its last entry";
    } else if (sl_hnsw_live(h) != m.live) {
        why = "its vector count does not match its header";
    }
    if (why) {
        sl_log(vs->inst, SL_LOG_WARN, "vector index %s not used (%s); rebuilding it from the store", file,
               why);
        sl_hnsw_free(h);
        return -1;
    }
    x->h = h;
    x->seq = m.seq;
    x->dirty = false;
    x->fresh = true;
    sl_log(vs->inst, SL_LOG_DEBUG, "vector index %s: loaded %zu vectors in %.2fs", file, sl_hnsw_live(h),
           now_s() - t0);
    return 0;
}

static void drop(vindex *x) {
    sl_hnsw_free(x->h);
    x->h = NULL;
    x->dirty = false;
}

static int save_current(vindex_set *vs, vindex *x, sqlite3 *db, const char *store_id) {
    file_meta m;
    memset(&m, 0, sizeof m);
    snprintf(m.store_id, sizeof m.store_id, "%s", store_id);
    m.seq = x->seq;
    m.live = sl_hnsw_live(x->h);
    if (x->seq > 0 && log_entry(db, x->seq, &m.last_chunk, &m.last_added) != 0) return -1;
    return save(vs, x, &m);
}

static vindex *slot(vindex_set *vs, uint32_t dim, bool create) {
    pthread_mutex_lock(&vs->mu);
    vindex *x = NULL;
    for (size_t i = 0; i < vs->n && !x; i++)
        if (vs->idx[i]->dim == dim) x = vs->idx[i];
    if (!x && create && vs->n < MAX_DIMS && (x = calloc(1, sizeof *x))) {
        x->dim = dim;
        pthread_rwlock_init(&x->lock, NULL);
        vs->idx[vs->n++] = x;
    }
    pthread_mutex_unlock(&vs->mu);
    return x;
}

/* Under x's write lock: x->h loaded if a good file is there, and caught up
 * to `head`. A failed catch-up drops the index (a later scan rebuilds it).
 * The index stays ahead of an older snapshot: a search drops the rows the
 * snapshot lacks. */
static void bring_up_to(vindex_set *vs, vindex *x, sqlite3 *db, const char *store_id, int64_t head) {
    if (!x->h && !x->tried) {
        x->tried = true;
        if (load(vs, x, db, store_id, head) != 0) return;
    }
    if (!x->h || x->seq >= head) return;
    int64_t from = x->seq;
    size_t applied = 0;
    double t0 = now_s();
    if (catch_up(vs, x, db, head, &applied) != 0) {
        sl_log(vs->inst, SL_LOG_WARN,
               "vector index of %u dimensions: cannot catch up with the store after entry %lld: %s; it will "
               "be rebuilt",
               x->dim, (long long)from, *sl_hnsw_last_error() ? sl_hnsw_last_error() : sqlite3_errmsg(db));
        drop(x);
        return;
    }
    /* what a run since the file was saved changed (or a kill -9 kept from
     * being saved) is worth a line; a live store's next few are not */
    sl_log(vs->inst, x->fresh ? SL_LOG_INFO : SL_LOG_DEBUG,
           "vector index of %u dimensions: caught up with %zu change(s) in the store in %.2fs", x->dim,
           applied, now_s() - t0);
    x->fresh = false;
}

int vindex_query(vindex_set *vs, sqlite3 *db, const float *q, uint32_t dim, uint32_t k, vindex_hit **hits,
                 size_t *n) {
    *hits = NULL;
    *n = 0;
    if (!vs || k == 0) return 0;
    vindex *x = slot(vs, dim, true);
    if (!x) return 0;
    char store_id[48] = "";
    int64_t head = log_head(db, store_id, sizeof store_id);
    if (head < 0) return 0;

    pthread_rwlock_rdlock(&x->lock);
    if (!x->h || x->seq < head) {
        pthread_rwlock_unlock(&x->lock);
        pthread_rwlock_wrlock(&x->lock);
        bring_up_to(vs, x, db, store_id, head);
        pthread_rwlock_unlock(&x->lock);
        pthread_rwlock_rdlock(&x->lock);
    }
    if (!x->h || sl_hnsw_live(x->h) < (size_t)vs->o.min_vectors) {
        pthread_rwlock_unlock(&x->lock);
        return 0;
    }
    /* a few more than k: a row the index holds and this snapshot lacks
     * (another thread caught the index up further) is dropped below */
    size_t want = (size_t)k + 8;
    int64_t *labels = malloc(want * sizeof *labels);
    float *sims = malloc(want * sizeof *sims);
    vindex_hit *out = malloc(want * sizeof *out);
    float *v = malloc((size_t)dim * sizeof *v);
    sqlite3_stmt *vec = prep(db, "SELECT dim, vector FROM chunks WHERE id = ?1");
    size_t got = 0, kept = 0;
    int rc = labels && sims && out && v && vec ? 0 : -1;
    if (rc == 0 && sl_hnsw_search(x->h, q, want, (size_t)vs->o.ef, labels, sims, &got) != SL_HNSW_OK) rc = -1;
    pthread_rwlock_unlock(&x->lock);

    /* exact scores, as the scan in sink_sqlite.c computes them (the same
     * arithmetic, so both give the same numbers) */
    double qq = 0;
    for (uint32_t j = 0; j < dim; j++) qq += (double)q[j] * q[j];
    double qnorm = sqrt(qq);
    for (size_t i = 0; rc == 0 && i < got; i++) {
        int found = read_vector(vec, labels[i], dim, v);
        if (found < 0) rc = -1;
        if (found != 1) continue;
        double dot = 0, vv = 0;
        for (uint32_t j = 0; j < dim; j++) {
            dot += (double)q[j] * v[j];
            vv += (double)v[j] * v[j];
        }
        out[kept].score = qnorm > 0 && vv > 0 ? dot / (qnorm * sqrt(vv)) : 0.0;
        out[kept++].id = labels[i];
    }
    sqlite3_finalize(vec);
    free(labels);
    free(sims);
    free(v);
    if (rc != 0) {
        sl_log(vs->inst, SL_LOG_WARN, "vector index of %u dimensions: search failed (%s); scanning instead",
               dim, *sl_hnsw_last_error() ? sl_hnsw_last_error() : sqlite3_errmsg(db));
        free(out);
        return 0;
    }
    *hits = out;
    *n = kept;
    return 1;
}

void vindex_after_scan(vindex_set *vs, sqlite3 *db, uint32_t dim, long long matched) {
    if (!vs || matched < vs->o.min_vectors || matched <= 0) return;
    vindex *x = slot(vs, dim, true);
    if (!x) return;
    pthread_rwlock_wrlock(&x->lock);
    char store_id[48] = "";
    int64_t head = log_head(db, store_id, sizeof store_id);
    if (x->h || x->failed || head < 0) {
        pthread_rwlock_unlock(&x->lock);
        return;
    }
    x->tried = true;
    char file[4200];
    file_path(vs, dim, file, sizeof file);
    sl_log(vs->inst, SL_LOG_INFO, "vector index %s: building it for %lld vectors of %u dimensions", file,
           matched, dim);
    double t0 = now_s();
    sqlite3_stmt *st = prep(db, "SELECT id, vector FROM chunks WHERE dim = ?1 AND vector IS NOT NULL");
    /* read in batches, each linked on every core */
    enum { BATCH = 8192 };
    float *v = malloc((size_t)BATCH * dim * sizeof *v);
    int64_t *ids = malloc(BATCH * sizeof *ids);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = cpus < 1 ? 1 : cpus > 16 ? 16 : (unsigned)cpus;
    int rc = st && v && ids &&
                     sl_hnsw_new(dim, (size_t)vs->o.m, (size_t)vs->o.ef_construction, &x->h) == SL_HNSW_OK
                 ? 0
                 : -1;
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, dim);
        int step = SQLITE_DONE;
        const size_t want = (size_t)dim * sizeof(float);
        size_t nb = 0;
        while (rc == 0) {
            step = sqlite3_step(st);
            if (step == SQLITE_ROW) {
                const void *blob = sqlite3_column_blob(st, 1);
                if (!blob || (size_t)sqlite3_column_bytes(st, 1) != want) continue; /* as the scan skips it */
                memcpy(v + nb * dim, blob, want);
                floats_to_from_le(v + nb * dim, dim);
                ids[nb++] = sqlite3_column_int64(st, 0);
            }
            if (nb == BATCH || (step != SQLITE_ROW && nb)) {
                if (sl_hnsw_add_batch(x->h, ids, v, nb, threads) != SL_HNSW_OK) rc = -1;
                nb = 0;
                /* a million vectors take minutes: say how far, every tenth */
                long long linked = (long long)sl_hnsw_live(x->h);
                if (rc == 0 && step == SQLITE_ROW && linked * 10 / matched > (linked - BATCH) * 10 / matched)
                    sl_log(vs->inst, SL_LOG_INFO, "vector index %s: %lld of %lld vectors linked (%.0fs)",
                           file, linked, matched, now_s() - t0);
            }
            if (step != SQLITE_ROW) break;
        }
        if (rc == 0 && step != SQLITE_DONE) rc = -1;
    }
    sqlite3_finalize(st);
    free(v);
    free(ids);
    if (rc == 0) {
        x->seq = head;
        x->dirty = true;
        sl_log(vs->inst, SL_LOG_INFO, "vector index %s: built for %zu vectors in %.1fs", file,
               sl_hnsw_live(x->h), now_s() - t0);
        save_current(vs, x, db, store_id);
    } else {
        sl_log(vs->inst, SL_LOG_WARN, "vector index %s: build failed (%s); queries scan", file,
               *sl_hnsw_last_error() ? sl_hnsw_last_error() : sqlite3_errmsg(db));
        drop(x);
        x->failed = true;
    }
    pthread_rwlock_unlock(&x->lock);
}

void vindex_set_free(vindex_set *vs) {
    if (!vs) return;
    sqlite3 *db = NULL;
    for (size_t i = 0; i < vs->n; i++) {
        vindex *x = vs->idx[i];
        /* a changed index is saved with the log entry it reached, read on a
         * connection of its own (the entry is committed: it stays) */
        if (x->h && x->dirty) {
            if (!db && sqlite3_open_v2(vs->path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
                sqlite3_close(db);
                db = NULL;
            }
            char store_id[48] = "";
            if (db && log_head(db, store_id, sizeof store_id) >= x->seq) save_current(vs, x, db, store_id);
        }
        sl_hnsw_free(x->h);
        pthread_rwlock_destroy(&x->lock);
        free(x);
    }
    sqlite3_close(db);
    pthread_mutex_destroy(&vs->mu);
    free(vs->path);
    free(vs);
}
