/* test_sink_sqlite.c - the sink-sqlite plugin, loaded from its .so through
 * the core's loader and configured through the core's instance API, as a
 * run would, against real SQLite files under $SLUICE_TEST_TMP: schema and
 * folder made on first use, 16 KB pages for a new file and an old file's
 * own kept, lookup answers, all-or-nothing stores (under a competing
 * writer and under kill -9), stores that answer SL_PENDING at once and are
 * written by the sink's writer thread, group commit (a failed document
 * alone rolled back, a failed commit failing its whole group, group_max = 1
 * as one transaction per document, no answer before the commit), fini
 * answering every queued store, lookups that read while a write is
 * pending, seen-marks that reach prune, prune by root and run, brute-force
 * queries, reopening, and refusing a newer schema.
 *
 * The test plays the core: it calls the callbacks directly, with a call
 * whose on_done records the answer a store gives later (sl_call_done from
 * the sink's writer thread). An on_done that waits keeps the writer thread
 * there, which is how a test lines documents up into one group (hold_writer).
 * A second, plain SQLite connection inspects the file and plays the other
 * writer.
 */
#include <errno.h>
#include <ftw.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../check.h" /* the tests' check.h, not core/check.h */
#include "ctx.h"
#include "document.h"
#include "instance.h"
#include "registry.h"
#include "query.h"
#include "sluice/sluice.h"

static sl_ctx *ctx;
static sl_registry *reg;
static const sl_loaded *plugin;
static const sl_plugin *desc;
static char tmpdir[1024];

/* --- instances and calls --- */

/* An instance on `path` (NULL: no path given) from the defaults plus
 * busy_timeout and `extra` overrides ("group_max=1", ...), then init. NULL
 * if it could not be built; *rc is the first failure and sl_ctx_errmsg(ctx)
 * its message. */
static sl_instance *sink_open_with(const char *path, int64_t busy_ms, const char *const *extra, size_t nextra,
                                   int *rc) {
    char p[4200], b[64];
    snprintf(p, sizeof p, "path=%s", path ? path : "");
    snprintf(b, sizeof b, "busy_timeout=%lldms", (long long)busy_ms);
    const char *ov[8] = {b};
    size_t n = 1;
    for (size_t i = 0; i < nextra && n < 7; i++) ov[n++] = extra[i];
    if (path) ov[n++] = p;
    sl_instance *inst = NULL;
    sl_ctx_clear_error(ctx);
    *rc = sl_instance_new_defaults(ctx, plugin, "store", ov, n, &inst);
    if (*rc == 0) *rc = sl_instance_init(ctx, inst);
    return inst;
}

static sl_instance *sink_open(const char *path, int64_t busy_ms, int *rc) {
    return sink_open_with(path, busy_ms, NULL, 0, rc);
}

static void sink_close(sl_instance *inst) { sl_instance_free(inst); }

/* A call whose answer may come later, from another thread. When `check`
 * is set, the answer callback also counts, on its own connection, the
 * rows of `uri` with `hash` and all documents at the moment of the answer:
 * a document answered as stored must already be committed then. With
 * `hold`, the answer callback keeps the thread that answers (the sink's
 * writer) until `release` is set. */
typedef struct tcall {
    sl_call call; /* first: on_done gets &call */
    atomic_int answered;
    atomic_int rc;
    const char *check; /* the store's file */
    char uri[256], hash[80];
    atomic_int visible; /* rows seen when the answer came; -1: not checked */
    atomic_llong total; /* documents in the file when the answer came; -1: not checked */
    atomic_int order;   /* 1 for the first answer counted by `answers`, 2 for the next, ... */
    bool hold;
    atomic_int held, release;
} tcall;

static long long count_rows(const char *path, const char *uri, const char *hash);
static atomic_int answers; /* answers given so far, in the order they came */

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void tcall_done(sl_call *call, int rc) {
    tcall *t = (tcall *)call;
    if (t->check) {
        atomic_store(&t->visible, (int)count_rows(t->check, t->uri, t->hash));
        atomic_store(&t->total, count_rows(t->check, NULL, NULL));
    }
    atomic_store(&t->order, atomic_fetch_add(&answers, 1) + 1);
    atomic_store(&t->rc, rc);
    atomic_store(&t->answered, 1);
    if (t->hold) {
        atomic_store(&t->held, 1);
        while (!atomic_load(&t->release)) sleep_ms(1);
    }
}

static void tcall_init(tcall *t, sl_instance *inst, void *thread_state) {
    sl_call_init(&t->call, inst, thread_state);
    t->call.on_done = tcall_done;
    atomic_store(&t->answered, 0);
    atomic_store(&t->rc, 0);
    atomic_store(&t->visible, -1);
    atomic_store(&t->total, -1);
    atomic_store(&t->order, 0);
    t->check = NULL;
    t->hold = false;
    atomic_store(&t->held, 0);
    atomic_store(&t->release, 0);
}

/* The store's answer: at once, or once sl_call_done came (within
 * timeout_ms; 1 (not an SL_* code) when it never did). */
static int tcall_wait(tcall *t, int store_rc, long timeout_ms) {
    if (store_rc != SL_PENDING) return store_rc;
    for (long waited = 0; !atomic_load(&t->answered); waited++) {
        if (waited >= timeout_ms) return 1;
        sleep_ms(1);
    }
    return atomic_load(&t->rc);
}

static sl_call last_call; /* the last call's failure, for messages */

static int do_lookup(sl_instance *inst, sl_doc *doc) {
    sl_call_init(&last_call, inst, NULL);
    return desc->lookup(&last_call, doc);
}
/* Stores and waits for the answer, as the core would. */
static int do_store(sl_instance *inst, sl_doc *doc) {
    static tcall t;
    tcall_init(&t, inst, NULL);
    int rc = tcall_wait(&t, desc->store(&t.call, doc), 10000);
    sl_call_init(&last_call, inst, NULL);
    last_call.code = t.call.code;
    memcpy(last_call.msg, t.call.msg, sizeof last_call.msg);
    return rc;
}
/* Starts a store without waiting: SL_PENDING, or the answer. */
static int store_async(sl_instance *inst, tcall *t, sl_doc *doc, const char *check_path) {
    tcall_init(t, inst, NULL);
    if (check_path) {
        t->check = check_path;
        snprintf(t->uri, sizeof t->uri, "%s", sl_doc_uri(doc));
        snprintf(t->hash, sizeof t->hash, "%s", sl_doc_hash(doc));
    }
    return desc->store(&t->call, doc);
}
static int do_prune(sl_instance *inst, const char *const *roots, size_t n, uint64_t run) {
    sl_call_init(&last_call, inst, NULL);
    return desc->prune(&last_call, roots, n, run);
}
static int do_query(sl_instance *inst, const float *v, uint32_t dim, uint32_t k, sl_hits *hits) {
    sl_call_init(&last_call, inst, NULL);
    return desc->query(&last_call, v, dim, k, hits);
}

static int do_keyword(sl_instance *inst, const char *text, uint32_t k, sl_hits *hits) {
    sl_call_init(&last_call, inst, NULL);
    return desc->keyword(&last_call, text, k, hits);
}

/* A document: `content` is its bytes (static strings only: the document
 * keeps the pointer), `nchunks` chunks "<tag> chunk i" with heading
 * "H<i>", page 1, line 10*i+1 and, when dim > 0, vector e_(i % dim). */
static sl_doc *mkdoc(const char *uri, const char *content, const char *fp, uint64_t run, const char *tag,
                     size_t nchunks, uint32_t dim) {
    sl_doc *d = sl_doc_new(uri, NULL);
    sl_doc_set_data(d, content, strlen(content));
    sl_doc_set_fingerprint(d, fp);
    sl_doc_set_run_id(d, run);
    sl_doc_set_media_type(d, "text/markdown");
    for (size_t i = 0; i < nchunks; i++) {
        char text[128], heading[32];
        snprintf(text, sizeof text, "%s chunk %zu", tag, i);
        snprintf(heading, sizeof heading, "H%zu", i);
        int idx = sl_doc_add_chunk(d, text, strlen(text));
        CHECK_INT(idx, (int)i);
        sl_chunk_set_heading(d, i, heading);
        sl_chunk_set_position(d, i, 1, (uint32_t)(10 * i + 1));
        if (dim) {
            float *v = sl_doc_chunk_vector(d, i, dim);
            v[i % dim] = 1.0f;
        }
    }
    return d;
}

/* --- a second, plain connection to look inside --- */

static sqlite3 *raw_open(const char *path) {
    sqlite3 *db = NULL;
    CHECK_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* The first column of the first row as an integer; -1 if no row. */
static long long raw_int(const char *path, const char *sql) {
    sqlite3 *db = raw_open(path);
    sqlite3_stmt *st = NULL;
    long long v = -1;
    CHECK_INT(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (st && sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The first column of the first row as text, into out; "" if no row. */
static const char *raw_text(const char *path, const char *sql, char *out, size_t outlen) {
    sqlite3 *db = raw_open(path);
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    CHECK_INT(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static void raw_exec(const char *path, const char *sql) {
    sqlite3 *db = raw_open(path);
    CHECK_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* Rows of documents with this uri and hash (NULL, NULL: all of them), on
 * a connection of its own (safe from any thread); -1 when the file cannot
 * be read. */
static long long count_rows(const char *path, const char *uri, const char *hash) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -1;
    const char *sql = uri ? "SELECT count(*) FROM documents WHERE uri = ?1 AND hash = ?2"
                          : "SELECT count(*) FROM documents";
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        if (uri) {
            sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
        }
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* raw_int until it answers `want`, for at most timeout_ms; its last answer. */
static long long wait_int(const char *path, const char *sql, long long want, long timeout_ms) {
    long long v = raw_int(path, sql);
    for (long waited = 0; v != want && waited < timeout_ms; waited += 5) {
        sleep_ms(5);
        v = raw_int(path, sql);
    }
    return v;
}

/* Everything a store decides (documents and chunks, vectors included),
 * without row ids, timestamps and seen_run: equal for equal stores. */
static char *store_dump(const char *path) {
    sqlite3 *db = raw_open(path);
    static const char *const sql[] = {
        "SELECT uri, hash, fingerprint, media_type, bytes, title, metadata, chunk_count FROM documents "
        "ORDER BY uri",
        "SELECT d.uri, c.ordinal, c.text, c.heading, c.page, c.line, c.summary, c.dim, hex(c.vector)"
        " FROM chunks c JOIN documents d ON d.id = c.doc_id ORDER BY d.uri, c.ordinal"};
    size_t len = 0, cap = 4096;
    char *out = malloc(cap);
    out[0] = '\0';
    for (size_t q = 0; q < 2; q++) {
        sqlite3_stmt *st = NULL;
        CHECK_INT(sqlite3_prepare_v2(db, sql[q], -1, &st, NULL), SQLITE_OK);
        while (st && sqlite3_step(st) == SQLITE_ROW)
            for (int i = 0; i < sqlite3_column_count(st); i++) {
                const char *v = (const char *)sqlite3_column_text(st, i);
                size_t n = strlen(v ? v : "NULL") + 2;
                if (len + n + 1 > cap) out = realloc(out, cap = 2 * (len + n + 1));
                len += (size_t)snprintf(out + len, cap - len, "%s%c", v ? v : "NULL",
                                        i + 1 < sqlite3_column_count(st) ? '|' : '\n');
            }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return out;
}

static void store_path(char *out, size_t outlen, const char *name) {
    snprintf(out, outlen, "%s/%s/store.db", tmpdir, name);
}

/* --- the tests --- */

static void test_descriptor_declares_sink(void) {
    CHECK_STR(desc->name, "sink-sqlite");
    CHECK_INT(desc->role, SL_ROLE_SINK);
    CHECK_INT(desc->bottleneck, SL_CPU);
    /* no limit: lookups run on every pool thread while a store writes */
    CHECK_INT(desc->max_concurrency, 0);
    CHECK(desc->lookup && desc->store && desc->prune && desc->query && desc->init && desc->fini);
    CHECK(desc->thread_init && desc->thread_fini); /* a read connection per pool thread */
    /* path is required and, like the others, no part of the fingerprint. */
    size_t n = 0;
    for (const sl_option *o = desc->options; o && o->name; o++, n++) {
        CHECK(o->flags & SL_OPT_NO_FINGERPRINT);
        CHECK(o->help && *o->help);
        CHECK_INT(!!(o->flags & SL_OPT_REQUIRED), strcmp(o->name, "path") == 0);
        if (strcmp(o->name, "group_max") == 0) CHECK_STR(o->def, "64");
        CHECK(strcmp(o->name, "group_ms") != 0); /* groups form by themselves now */
    }
    CHECK_INT(n, 8); /* path, busy_timeout, synchronous, group_max, vector_index{,_min,_ef}, keyword_index */
}

static void test_bad_group_options_refused(void) {
    char path[4096];
    store_path(path, sizeof path, "bad-options");
    static const char *const bad[][2] = {{"group_max=0", "group_max"}, {"group_max=-3", "group_max"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc;
        sl_instance *s = sink_open_with(path, 1000, bad[i], 1, &rc);
        CHECK_INT(rc, SL_EFATAL);
        CHECK_CONTAINS(sl_ctx_errmsg(ctx), bad[i][1]);
        sink_close(s);
    }
}

static void test_schema_and_folder_made_on_first_use(void) {
    char path[2048], dir[1536];
    snprintf(dir, sizeof dir, "%s/first-use/a/b", tmpdir);
    snprintf(path, sizeof path, "%s/store.db", dir);
    struct stat st;
    CHECK(stat(dir, &st) != 0);
    int rc;
    sl_instance *s = sink_open(path, 1000, &rc);
    CHECK_INT(rc, 0);
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
    mode_t mask = umask(0);
    umask(mask);
    CHECK_INT(st.st_mode & 0777, 0755 & ~mask);
    CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode));
    char buf[64];
    CHECK_STR(raw_text(path, "SELECT value FROM meta WHERE key = 'schema_version'", buf, sizeof buf), "5");
    CHECK_STR(raw_text(path, "PRAGMA journal_mode", buf, sizeof buf), "wal");
    CHECK_INT(raw_int(path, "PRAGMA page_size"), 16384); /* six chunk rows a page, not one */
    CHECK_INT(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                            "('meta', 'documents', 'chunks')"),
              3);
    sink_close(s);
}

static void test_missing_required_path_refused(void) {
    int rc;
    sl_instance *s = sink_open(NULL, 1000, &rc);
    CHECK(rc < 0);
    CHECK(s == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "path");
    sink_close(s);
}

/* Store then lookup: unchanged; other bytes or fingerprint: changed;
 * another uri: missing. A lookup records the run as seen: not itself (it
 * only reads), through the writer's next commit, here the timed one. */
static void test_lookup_answers(void) {
    char path[4096];
    store_path(path, sizeof path, "lookup");
    int rc;
    sl_instance *s = sink_open(path, 1000, &rc);
    CHECK_INT(rc, 0);
    sl_doc *d = mkdoc("docs/a.md", "# A\nalpha\n", "fp1", 1, "v1", 2, 4);
    CHECK_INT(do_lookup(s, d), SL_LOOKUP_MISSING);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents"), 0);
    CHECK_INT(do_store(s, d), 0);
    CHECK_INT(do_lookup(s, d), SL_LOOKUP_UNCHANGED);

    sl_doc *changed = mkdoc("docs/a.md", "# A\nalpha, edited\n", "fp1", 2, "v2", 2, 4);
    CHECK_INT(do_lookup(s, changed), SL_LOOKUP_CHANGED);
    CHECK_INT(wait_int(path, "SELECT seen_run FROM documents WHERE uri = 'docs/a.md'", 2, 5000), 2);
    sl_doc *refp = mkdoc("docs/a.md", "# A\nalpha\n", "fp2", 3, "v1", 2, 4);
    CHECK_INT(do_lookup(s, refp), SL_LOOKUP_CHANGED);
    CHECK_INT(wait_int(path, "SELECT seen_run FROM documents WHERE uri = 'docs/a.md'", 3, 5000), 3);
    sl_doc *other = mkdoc("docs/b.md", "# A\nalpha\n", "fp1", 3, "v1", 0, 0);
    CHECK_INT(do_lookup(s, other), SL_LOOKUP_MISSING);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents"), 1);

    /* What store wrote. */
    char buf[256];
    CHECK_STR(raw_text(path, "SELECT hash FROM documents", buf, sizeof buf), sl_doc_hash(d));
    CHECK_STR(raw_text(path, "SELECT fingerprint FROM documents", buf, sizeof buf), "fp1");
    CHECK_STR(raw_text(path, "SELECT media_type FROM documents", buf, sizeof buf), "text/markdown");
    CHECK_INT(raw_int(path, "SELECT bytes FROM documents"), strlen("# A\nalpha\n"));
    CHECK_INT(raw_int(path, "SELECT chunk_count FROM documents"), 2);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents WHERE stored_at LIKE '20__-__-__T__:__:__%Z'"),
              1);
    sl_doc_free(d);
    sl_doc_free(changed);
    sl_doc_free(refp);
    sl_doc_free(other);
    sink_close(s);
}

/* Storing again replaces the chunks: no duplicates, no leftovers. */
static void test_store_replaces_chunks(void) {
    char path[4096];
    store_path(path, sizeof path, "replace");
    int rc;
    sl_instance *s = sink_open(path, 1000, &rc);
    sl_doc *v1 = mkdoc("a.md", "one", "fp", 1, "v1", 3, 4);
    sl_doc *v2 = mkdoc("a.md", "two", "fp", 2, "v2", 3, 4);
    sl_doc *v3 = mkdoc("a.md", "three", "fp", 3, "v3", 2, 0); /* no vectors */
    CHECK_INT(do_store(s, v1), 0);
    long long id = raw_int(path, "SELECT id FROM documents");
    CHECK_INT(do_store(s, v2), 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents"), 1);
    CHECK_INT(raw_int(path, "SELECT id FROM documents"), id);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks"), 3);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks WHERE text LIKE 'v2 chunk %'"), 3);
    CHECK_INT(raw_int(path, "SELECT count(DISTINCT ordinal) FROM chunks"), 3);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks WHERE dim = 4 AND length(vector) = 16"), 3);
    char buf[64];
    CHECK_STR(raw_text(path, "SELECT heading FROM chunks WHERE ordinal = 2", buf, sizeof buf), "H2");
    CHECK_INT(raw_int(path, "SELECT line FROM chunks WHERE ordinal = 2"), 21);
    CHECK_INT(do_store(s, v3), 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks"), 2);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks WHERE text LIKE 'v3 chunk %' AND vector IS NULL"),
              2);
    CHECK_INT(raw_int(path, "SELECT chunk_count FROM documents"), 2);
    sl_doc_free(v1);
    sl_doc_free(v2);
    sl_doc_free(v3);
    sink_close(s);
}

/* Vectors are float32 little-endian, bit for bit. */
static void test_vector_blob_format(void) {
    char path[4096];
    store_path(path, sizeof path, "blob");
    int rc;
    sl_instance *s = sink_open(path, 1000, &rc);
    sl_doc *d = mkdoc("v.md", "v", "fp", 1, "t", 1, 0);
    float *v = sl_doc_chunk_vector(d, 0, 3);
    v[0] = 1.0f;
    v[1] = -2.5f;
    v[2] = 0.125f;
    CHECK_INT(do_store(s, d), 0);
    char buf[64];
    /* 1.0 = 0x3f800000, -2.5 = 0xc0200000, 0.125 = 0x3e000000, each LE. */
    CHECK_STR(raw_text(path, "SELECT hex(vector) FROM chunks", buf, sizeof buf), "0000803F000020C00000003E");
    sl_doc_free(d);
    sink_close(s);
}

/* Metadata lands as a valid JSON object, with the title in its column;
 * quotes, control characters and non-UTF-8 bytes cannot break it. */
static void test_metadata_stored_as_json(void) {
    char path[4096];
    store_path(path, sizeof path, "meta");
    int rc;
    sl_instance *s = sink_open(path, 1000, &rc);
    sl_doc *d = mkdoc("m.md", "m", "fp", 1, "t", 1, 0);
    sl_doc_meta_set(d, "title", "Caf\xc3\xa9 \"quoted\"");
    sl_doc_meta_set(d, "author", "a\\b\nc\td\x01");
    /* the core refuses text that is not UTF-8 before a sink sees it */
    CHECK_INT(sl_doc_meta_set(d, "latin1", "caf\xe9!"), SL_EBADINPUT);
    CHECK_INT(do_store(s, d), 0);
    char buf[256];
    CHECK_STR(raw_text(path, "SELECT title FROM documents", buf, sizeof buf), "Caf\xc3\xa9 \"quoted\"");
    CHECK_INT(raw_int(path, "SELECT json_valid(metadata) FROM documents"), 1);
    CHECK_STR(raw_text(path, "SELECT json_extract(metadata, '$.title') FROM documents", buf, sizeof buf),
              "Caf\xc3\xa9 \"quoted\"");
    CHECK_STR(raw_text(path, "SELECT json_extract(metadata, '$.author') FROM documents", buf, sizeof buf),
              "a\\b\nc\td\x01");
    CHECK_INT(raw_int(path, "SELECT json_extract(metadata, '$.latin1') IS NULL FROM documents"), 1);
    sl_doc_free(d);
    sink_close(s);
}

/* Another connection holds the write lock: store says retry, and what was
 * stored before is untouched. Once the lock is gone the store goes in. */
static void test_locked_store_retries_and_keeps_old_chunks(void) {
    char path[4096];
    store_path(path, sizeof path, "busy");
    int rc;
    sl_instance *s = sink_open(path, 50, &rc);
    CHECK_INT(rc, 0);
    sl_doc *v1 = mkdoc("a.md", "one", "fp", 1, "old", 3, 4);
    sl_doc *v2 = mkdoc("a.md", "two", "fp", 2, "new", 5, 4);
    CHECK_INT(do_store(s, v1), 0);

    sqlite3 *other = raw_open(path);
    CHECK_INT(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    CHECK_INT(do_store(s, v2), SL_ERETRY);
    CHECK_INT(last_call.code, SL_ERETRY);
    CHECK_CONTAINS(last_call.msg, "a.md");
    CHECK_CONTAINS(last_call.msg, "locked");
    /* a lookup only reads: it answers at once, from what is committed */
    CHECK_INT(do_lookup(s, v2), SL_LOOKUP_CHANGED);
    CHECK_INT(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);

    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks"), 3);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks WHERE text LIKE 'old chunk %'"), 3);
    char buf[64];
    CHECK_STR(raw_text(path, "SELECT hash FROM documents", buf, sizeof buf), sl_doc_hash(v1));

    CHECK_INT(do_store(s, v2), 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks WHERE text LIKE 'new chunk %'"), 5);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks"), 5);
    sl_doc_free(v1);
    sl_doc_free(v2);
    sink_close(s);
}

/* prune removes documents under a root that this run did not see, and
 * nothing else: not another root, not a root that merely shares a prefix,
 * not what this run stored or looked up. Their chunks go with them. */
static void test_prune_by_root_and_run(void) {
    char path[4096];
    store_path(path, sizeof path, "prune");
    int rc;
    sl_instance *s = sink_open(path, 1000, &rc);
    struct {
        const char *uri;
        uint64_t run;
    } docs[] = {{"root1/a.md", 1},  {"root1/sub/b.md", 2}, {"root1", 1},
                {"root10/c.md", 1}, {"root1_x/d.md", 1},   {"root2/e.md", 1},
                {"root3/f.md", 1},  {"root1/sub/g.md", 1}, {"root1/100%_x.md", 1}};
    size_t n = sizeof docs / sizeof docs[0];
    for (size_t i = 0; i < n; i++) {
        sl_doc *d = mkdoc(docs[i].uri, "x", "fp", docs[i].run, "t", 2, 0);
        CHECK_INT(do_store(s, d), 0);
        sl_doc_free(d);
    }
    /* root3/f.md is looked up (unchanged) in run 2, so it counts as seen. */
    sl_doc *seen = mkdoc("root3/f.md", "x", "fp", 2, "t", 2, 0);
    CHECK_INT(do_lookup(s, seen), SL_LOOKUP_UNCHANGED);
    sl_doc_free(seen);

    const char *roots1[] = {"root1"};
    CHECK_INT(do_prune(s, roots1, 1, 2), 4); /* root1/a.md, root1, root1/sub/g.md, root1/100%_x.md */
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents WHERE uri = 'root1/sub/b.md'"), 1);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents WHERE uri IN ('root10/c.md', 'root1_x/d.md')"),
              2);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents WHERE uri LIKE 'root1/%' OR uri = 'root1'"), 1);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents"), 5);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks"), 10);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)"), 0);

    const char *roots2[] = {"root2/", "root3", "nowhere"};
    CHECK_INT(do_prune(s, roots2, 3, 2), 1); /* root2/e.md; root3/f.md was seen */
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents WHERE uri = 'root3/f.md'"), 1);
    CHECK_INT(do_prune(s, roots2, 3, 2), 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents"), 4);

    /* LIKE's wildcards in a root are plain characters: "a_%" is not a pattern. */
    const char *wild[] = {"a_%/x.md", "aXY/y.md", "a_%/sub/z.md", "a_%b/w.md"};
    for (size_t i = 0; i < 4; i++) {
        sl_doc *d = mkdoc(wild[i], "x", "fp", 1, "t", 1, 0);
        CHECK_INT(do_store(s, d), 0);
        sl_doc_free(d);
    }
    const char *roots3[] = {"a_%"};
    CHECK_INT(do_prune(s, roots3, 1, 2), 2);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents WHERE uri IN ('aXY/y.md', 'a_%b/w.md')"), 2);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents"), 6);

    const char *empty[] = {""};
    CHECK(do_prune(s, empty, 1, 2) < 0);
    CHECK_INT(last_call.code, SL_EINVAL);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents"), 6);
    sink_close(s);
}

static void store_vec(sl_instance *s, const char *uri, size_t nchunks, const float (*vecs)[4],
                      const bool *has) {
    sl_doc *d = mkdoc(uri, uri, "fp", 1, uri, nchunks, 0);
    for (size_t i = 0; i < nchunks; i++) {
        if (!has[i]) continue;
        float *v = sl_doc_chunk_vector(d, i, 4);
        memcpy(v, vecs[i], sizeof vecs[i]);
    }
    CHECK_INT(do_store(s, d), 0);
    sl_doc_free(d);
}

/* The nearest chunk comes first, with its document and position; scores
 * fall; k caps the answer; chunks without vectors never match. */
static void test_query_nearest_first(void) {
    char path[4096];
    store_path(path, sizeof path, "query");
    int rc;
    sl_instance *s = sink_open(path, 1000, &rc);
    const float a[2][4] = {{0, 1, 0, 0}, {1, 0, 0, 0}};
    const float b[3][4] = {{0, 0, 1, 0}, {0.9f, 0.1f, 0, 0}, {5, 5, 5, 5}};
    const bool all[3] = {true, true, true}, b_has[3] = {true, true, false};
    store_vec(s, "docs/a.md", 2, a, all);
    store_vec(s, "docs/b.md", 3, b, b_has);

    const float q[4] = {2, 0, 0, 0}; /* not unit length: cosine, not dot */
    sl_hits *hits = sl_hits_new(2);
    CHECK_INT(do_query(s, q, 4, 2, hits), 0);
    sl_hits_sort(hits);
    CHECK_INT(sl_hits_count(hits), 2);
    const sl_hit *h0 = sl_hits_at(hits, 0), *h1 = sl_hits_at(hits, 1);
    CHECK(h0 && h1);
    if (h0 && h1) {
        CHECK_STR(h0->uri, "docs/a.md");
        CHECK_INT(h0->chunk, 1);
        CHECK_STR(h0->heading, "H1");
        CHECK_INT(h0->page, 1);
        CHECK_INT(h0->line, 11);
        CHECK_STR(h0->text, "docs/a.md chunk 1");
        CHECK(fabs(h0->score - 1.0) < 1e-6);
        CHECK_STR(h1->uri, "docs/b.md");
        CHECK_INT(h1->chunk, 1);
        CHECK(fabs(h1->score - 0.9 / sqrt(0.82)) < 1e-6);
    }
    sl_hits_free(hits);

    /* A large k returns every chunk that has a vector, nearest first. */
    hits = sl_hits_new(10);
    CHECK_INT(do_query(s, q, 4, 10, hits), 0);
    sl_hits_sort(hits);
    CHECK_INT(sl_hits_count(hits), 4);
    for (size_t i = 1; i < sl_hits_count(hits); i++)
        CHECK(sl_hits_at(hits, i - 1)->score >= sl_hits_at(hits, i)->score);
    for (size_t i = 0; i < sl_hits_count(hits); i++)
        CHECK(!(strcmp(sl_hits_at(hits, i)->uri, "docs/b.md") == 0 && sl_hits_at(hits, i)->chunk == 2));
    sl_hits_free(hits);

    /* k = 1 without the core's trimming: the sink itself keeps only one. */
    hits = sl_hits_new(0);
    CHECK_INT(do_query(s, q, 4, 1, hits), 0);
    CHECK_INT(sl_hits_count(hits), 1);
    sl_hits_free(hits);
    hits = sl_hits_new(0);
    CHECK_INT(do_query(s, q, 4, 0, hits), 0);
    CHECK_INT(sl_hits_count(hits), 0);
    sl_hits_free(hits);
    sink_close(s);
}

/* A query of another dimension than every stored vector is an error that
 * names both. */
static void test_query_dimension_mismatch_refused(void) {
    char path[4096];
    store_path(path, sizeof path, "mismatch");
    int rc;
    sl_instance *s = sink_open(path, 1000, &rc);
    const float a[2][4] = {{0, 1, 0, 0}, {1, 0, 0, 0}};
    const bool all[2] = {true, true};
    store_vec(s, "docs/a.md", 2, a, all);
    const float q[3] = {1, 0, 0};
    sl_hits *hits = sl_hits_new(5);
    CHECK_INT(do_query(s, q, 3, 5, hits), SL_EFATAL);
    CHECK_CONTAINS(last_call.msg, "4-dimensional");
    CHECK_CONTAINS(last_call.msg, "has 3");
    CHECK_INT(sl_hits_count(hits), 0);
    sl_hits_free(hits);
    sink_close(s);

    /* An empty store has nothing to mismatch: no hits, no error. */
    char empty[4096];
    store_path(empty, sizeof empty, "query-empty");
    s = sink_open(empty, 1000, &rc);
    hits = sl_hits_new(5);
    CHECK_INT(do_query(s, q, 3, 5, hits), 0);
    CHECK_INT(sl_hits_count(hits), 0);
    sl_hits_free(hits);
    sink_close(s);
}

/* fini, then init on the same file: everything is still there. */
static void test_reopen_keeps_data(void) {
    char path[4096];
    store_path(path, sizeof path, "reopen");
    int rc;
    sl_instance *s = sink_open(path, 1000, &rc);
    sl_doc *d = mkdoc("r.md", "reopen me", "fp", 1, "r", 3, 4);
    CHECK_INT(do_store(s, d), 0);
    sink_close(s);

    s = sink_open(path, 1000, &rc);
    CHECK_INT(rc, 0);
    CHECK_INT(do_lookup(s, d), SL_LOOKUP_UNCHANGED);
    const float q[4] = {0, 0, 1, 0};
    sl_hits *hits = sl_hits_new(1);
    CHECK_INT(do_query(s, q, 4, 1, hits), 0);
    CHECK_INT(sl_hits_count(hits), 1);
    if (sl_hits_count(hits)) CHECK_STR(sl_hits_at(hits, 0)->text, "r chunk 2");
    sl_hits_free(hits);
    sink_close(s);
    char buf[32];
    CHECK_STR(raw_text(path, "SELECT value FROM meta WHERE key = 'schema_version'", buf, sizeof buf), "5");
    /* the schema version, and how far the keyword log was trimmed */
    CHECK_INT(
        raw_int(path, "SELECT count(*) FROM meta WHERE key NOT IN ('schema_version', 'keyword_log_trimmed')"),
        0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks"), 3);
    sl_doc_free(d);
}

static void test_newer_schema_refused(void) {
    char path[4096];
    store_path(path, sizeof path, "newer");
    int rc;
    sl_instance *s = sink_open(path, 1000, &rc);
    CHECK_INT(rc, 0);
    sink_close(s);
    raw_exec(path, "UPDATE meta SET value = '99' WHERE key = 'schema_version'");
    s = sink_open(path, 1000, &rc);
    CHECK_INT(rc, SL_EFATAL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "schema version 99");
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), path);
    sink_close(s);
    /* Refusing changed nothing. */
    char buf[32];
    CHECK_STR(raw_text(path, "SELECT value FROM meta WHERE key = 'schema_version'", buf, sizeof buf), "99");
}

static void test_not_a_database_refused(void) {
    char path[4096];
    store_path(path, sizeof path, "garbage");
    int rc;
    sl_instance *s = sink_open(path, 1000, &rc); /* makes the folder */
    sink_close(s);
    unlink(path);
    FILE *f = fopen(path, "w");
    fputs("this is not an SQLite database, not even close; just text long enough to have a header\n", f);
    fclose(f);
    s = sink_open(path, 1000, &rc);
    CHECK_INT(rc, SL_EFATAL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), path);
    sink_close(s);
}

/* Everything stored so far written and answered: prune with no roots runs
 * on the writer thread after every queued document, applies the queued
 * seen-marks and removes nothing. */
static void flush(sl_instance *s) { CHECK_INT(do_prune(s, NULL, 0, 0), 0); }

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits up to timeout_ms for every one of t[0..n) to be answered. */
static bool wait_all(tcall *t, size_t n, long timeout_ms) {
    for (long waited = 0;; waited++) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++) done += atomic_load(&t[i].answered) == 1;
        if (done == n) return true;
        if (waited >= timeout_ms) return false;
        sleep_ms(1);
    }
}

/* The writer thread, kept inside a store's answer (its on_done waits): what
 * is stored until release_writer queues, and is then taken as one group
 * (group_max at most). The held document is committed and answered. */
typedef struct holder {
    tcall t;
    sl_doc *doc;
} holder;

static void hold_writer(holder *h, sl_instance *s, const char *name) {
    h->doc = mkdoc(name, name, "fp", 1, "hold", 1, 0);
    tcall_init(&h->t, s, NULL);
    h->t.hold = true;
    CHECK_INT(desc->store(&h->t.call, h->doc), SL_PENDING);
    for (long waited = 0; !atomic_load(&h->t.held) && waited < 10000; waited++) sleep_ms(1);
    CHECK_INT(atomic_load(&h->t.held), 1);
    CHECK_INT(atomic_load(&h->t.rc), 0);
}

static void release_writer(holder *h) { atomic_store(&h->t.release, 1); }

static void *release_later(void *arg) {
    sleep_ms(50); /* the main thread is in fini by then */
    release_writer(arg);
    return NULL;
}

/* Lookups read on connections of their own: they answer at once while a
 * store waits for the write lock (the sink's writer thread stalled behind
 * another connection's BEGIN IMMEDIATE) and while another connection holds
 * uncommitted writes, and they answer on several threads at once. Before,
 * a lookup wrote seen_run and waited up to busy_timeout behind any writer. */
typedef struct lookup_thread {
    sl_instance *inst;
    sl_doc *stored, *open;
    int wrong;
} lookup_thread;

static void *lookups(void *arg) {
    lookup_thread *lt = arg;
    void *ts = NULL;
    if (desc->thread_init(lt->inst->state, &ts) != 0) {
        lt->wrong = -1;
        return NULL;
    }
    sl_call c;
    for (int i = 0; i < 200; i++) {
        sl_call_init(&c, lt->inst, ts);
        lt->wrong += desc->lookup(&c, lt->stored) != SL_LOOKUP_UNCHANGED;
        sl_call_init(&c, lt->inst, ts);
        lt->wrong += desc->lookup(&c, lt->open) != SL_LOOKUP_MISSING;
    }
    desc->thread_fini(lt->inst->state, ts);
    return NULL;
}

static void test_lookups_do_not_wait_for_writes(void) {
    char path[4096];
    store_path(path, sizeof path, "readers");
    int rc;
    sl_instance *s = sink_open(path, 5000, &rc);
    CHECK_INT(rc, 0);
    sl_doc *a = mkdoc("a.md", "alpha", "fp", 1, "a", 2, 4);
    tcall ta, tb;
    CHECK_INT(store_async(s, &ta, a, NULL), SL_PENDING);
    flush(s);
    CHECK_INT(atomic_load(&ta.answered), 1);
    CHECK_INT(atomic_load(&ta.rc), 0);

    /* b.md is stored while another connection holds the write lock: the
     * writer thread waits for it, with b.md, not committed. */
    sqlite3 *other = raw_open(path);
    CHECK_INT(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    sl_doc *b = mkdoc("b.md", "beta", "fp", 1, "b", 2, 4);
    CHECK_INT(store_async(s, &tb, b, NULL), SL_PENDING);
    void *ts = NULL;
    CHECK_INT(desc->thread_init(s->state, &ts), 0);
    sl_call c;
    uint64_t t0 = mono_ms();
    sl_call_init(&c, s, ts);
    CHECK_INT(desc->lookup(&c, a), SL_LOOKUP_UNCHANGED);
    sl_call_init(&c, s, ts);
    CHECK_INT(desc->lookup(&c, b), SL_LOOKUP_MISSING); /* queued, not committed: not stored yet */
    CHECK(mono_ms() - t0 < 1000);                      /* busy_timeout is 5 s */

    /* Four threads, each with its own read connection, while it waits. */
    lookup_thread lt[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        lt[i] = (lookup_thread){s, a, b, 0};
        CHECK_INT(pthread_create(&th[i], NULL, lookups, &lt[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(lt[i].wrong, 0);
    }
    CHECK_INT(atomic_load(&tb.answered), 0);
    CHECK_INT(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    CHECK_INT(tcall_wait(&tb, SL_PENDING, 10000), 0);

    /* Another connection holds the write lock, with a write not committed. */
    CHECK_INT(sqlite3_exec(other, "BEGIN IMMEDIATE; UPDATE documents SET hash = 'x' WHERE uri = 'a.md'", NULL,
                           NULL, NULL),
              SQLITE_OK);
    t0 = mono_ms();
    sl_call_init(&c, s, ts);
    CHECK_INT(desc->lookup(&c, a), SL_LOOKUP_UNCHANGED);
    sl_call_init(&c, s, ts);
    CHECK_INT(desc->lookup(&c, b), SL_LOOKUP_UNCHANGED);
    CHECK_INT(do_lookup(s, b), SL_LOOKUP_UNCHANGED); /* the shared reader of a call without thread state */
    CHECK(mono_ms() - t0 < 1000);                    /* busy_timeout is 5 s */
    CHECK_INT(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    desc->thread_fini(s->state, ts);
    sl_doc_free(a);
    sl_doc_free(b);
    sink_close(s);
}

/* store() only queues: it answers SL_PENDING at once even while another
 * connection holds the write lock, where it used to hold its pool thread
 * for up to busy_timeout (5 s here) waiting for it. Nothing is answered or
 * in the file while the lock is held; once it is gone every store is
 * answered, each in the file when its answer comes. */
static void test_store_answers_at_once_while_another_writer_holds_the_lock(void) {
    char path[4096];
    store_path(path, sizeof path, "pending");
    int rc;
    sl_instance *s = sink_open(path, 5000, &rc);
    CHECK_INT(rc, 0);
    sqlite3 *other = raw_open(path);
    CHECK_INT(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    static const char *const uris[3] = {"p/0.md", "p/1.md", "p/2.md"};
    tcall t[3];
    sl_doc *d[3];
    uint64_t t0 = mono_ms();
    for (int i = 0; i < 3; i++) {
        d[i] = mkdoc(uris[i], uris[i], "fp", 1, "p", 2, 4);
        CHECK_INT(store_async(s, &t[i], d[i], path), SL_PENDING);
    }
    CHECK(mono_ms() - t0 < 1000);
    sleep_ms(100);
    for (int i = 0; i < 3; i++) CHECK_INT(atomic_load(&t[i].answered), 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents"), 0);
    CHECK_INT(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    CHECK(wait_all(t, 3, 10000));
    for (int i = 0; i < 3; i++) {
        CHECK_INT(atomic_load(&t[i].rc), 0);
        CHECK_INT(atomic_load(&t[i].visible), 1);
    }
    for (int i = 0; i < 3; i++) sl_doc_free(d[i]);
    sink_close(s);
}

/* Six documents lined up into one group, two refused by a trigger halfway
 * through their chunks: those two fail alone (the new one leaves no row,
 * the replaced one keeps its old version whole); the four others commit
 * and are answered only then, each in the file, every chunk, when its
 * answer comes. */
static void test_failed_document_rolls_back_alone(void) {
    char path[4096];
    store_path(path, sizeof path, "group-fail");
    const char *group[] = {"group_max=8"};
    int rc;
    sl_instance *s = sink_open_with(path, 1000, group, 1, &rc);
    CHECK_INT(rc, 0);
    sl_doc *old = mkdoc("keep.md", "old", "fp", 1, "old", 3, 4);
    tcall t0;
    CHECK_INT(store_async(s, &t0, old, NULL), SL_PENDING);
    flush(s);
    CHECK_INT(atomic_load(&t0.rc), 0);
    raw_exec(path, "CREATE TRIGGER refuse BEFORE INSERT ON chunks WHEN NEW.text = 'BAD chunk 2'"
                   " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");

    struct {
        const char *uri, *content, *tag;
        bool bad;
    } docs[6] = {{"g/0.md", "g0", "g0", false},    {"g/1.md", "g1", "g1", false},
                 {"bad-new.md", "n", "BAD", true}, {"g/3.md", "g3", "g3", false},
                 {"keep.md", "new", "BAD", true},  {"g/5.md", "g5", "g5", false}};
    tcall t[6];
    sl_doc *d[6];
    holder h;
    hold_writer(&h, s, "hold.md");
    for (int i = 0; i < 6; i++) {
        d[i] = mkdoc(docs[i].uri, docs[i].content, "fp", 2, docs[i].tag, 4, 4);
        CHECK_INT(store_async(s, &t[i], d[i], path), SL_PENDING); /* a trigger is SQL's verdict: later */
    }
    sleep_ms(20);
    for (int i = 0; i < 6; i++) CHECK_INT(atomic_load(&t[i].answered), 0);
    release_writer(&h);
    CHECK(wait_all(t, 6, 10000));
    for (int i = 0; i < 6; i++) {
        if (docs[i].bad) {
            CHECK_INT(atomic_load(&t[i].rc), SL_EFATAL); /* a constraint: SQLite's verdict, not a busy file */
            CHECK_CONTAINS(t[i].call.msg, docs[i].uri);
            CHECK_CONTAINS(t[i].call.msg, "refused by the test");
        } else {
            CHECK_INT(atomic_load(&t[i].rc), 0);
            CHECK_INT(atomic_load(&t[i].visible), 1);
            /* one group: when the first answer came, all four were in */
            CHECK_INT(atomic_load(&t[i].total), 1 + 1 + 4);
        }
    }
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents WHERE uri LIKE 'g/%'"), 4);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id"
                            " WHERE d.uri LIKE 'g/%' AND c.text LIKE 'g_ chunk %'"),
              16);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents WHERE uri = 'bad-new.md'"), 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks WHERE text LIKE 'BAD%'"), 0);
    char buf[128];
    CHECK_STR(raw_text(path, "SELECT hash FROM documents WHERE uri = 'keep.md'", buf, sizeof buf),
              sl_doc_hash(old));
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id"
                            " WHERE d.uri = 'keep.md' AND c.text LIKE 'old chunk %'"),
              3);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents d WHERE chunk_count <> "
                            "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)"),
              0);
    for (int i = 0; i < 6; i++) sl_doc_free(d[i]);
    sl_doc_free(old);
    sl_doc_free(h.doc);
    sink_close(s);
}

/* What the indexes of a closed store hold must agree with its chunks: the
 * keyword file (PATH.keywords, caught up before fini returned) passes
 * FTS5's own integrity-check, holds a row per chunk and nothing more, and
 * records the last log entry; the keyword log holds nothing it covers; a
 * vector log whose adds less removes leave each chunk with a vector once
 * and nothing else. */
static void check_index_agrees(const char *path) {
    char kw[4200];
    snprintf(kw, sizeof kw, "%s.keywords", path);
    raw_exec(kw, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES('integrity-check', 1)");
    /* made by this version: 16 KB pages, as the store (kindex.c, open_db) */
    CHECK_INT(raw_int(kw, "PRAGMA page_size"), 16384);
    CHECK_INT(raw_int(path, "PRAGMA page_size"), 16384);
    CHECK_INT(raw_int(kw, "SELECT count(*) FROM chunks_fts_docsize"),
              raw_int(path, "SELECT count(*) FROM chunks"));
    CHECK_INT(raw_int(kw, "SELECT seq FROM kw_state"),
              raw_int(path, "SELECT seq FROM sqlite_sequence WHERE name = 'keyword_log'"));
    CHECK_INT(raw_int(path,
                      "SELECT count(*) FROM keyword_log WHERE seq <= (SELECT CAST(value AS INTEGER) FROM meta"
                      " WHERE key = 'keyword_log_trimmed')"),
              0);
    CHECK_INT(raw_int(path,
                      "SELECT count(*) FROM (SELECT l.chunk, sum(CASE l.added WHEN 1 THEN 1 ELSE -1 END) AS n"
                      " FROM vector_log l GROUP BY l.chunk) AS g WHERE g.n <> (SELECT count(*) FROM chunks c"
                      " WHERE c.id = g.chunk AND c.vector IS NOT NULL)"),
              0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks c WHERE c.vector IS NOT NULL AND NOT EXISTS"
                            " (SELECT 1 FROM vector_log l WHERE l.chunk = c.id AND l.added = 1)"),
              0);
}

/* A fresh store `name` (its keyword file's path in kw) holding a.md, three
 * chunks with the word "walrus": the opening of the keyword tests. */
static sl_instance *kw_store_with_walrus(const char *name, char *path, size_t plen, char *kw, size_t kwlen,
                                         sl_doc **a) {
    store_path(path, plen, name);
    snprintf(kw, kwlen, "%s.keywords", path);
    int rc;
    sl_instance *s = sink_open(path, 1000, &rc);
    CHECK_INT(rc, 0);
    *a = mkdoc("a.md", "a", "fp", 1, "walrus", 3, 4);
    CHECK_INT(do_store(s, *a), 0);
    return s;
}

/* The keyword file follows the store's log on its own thread: once it has
 * committed the log's head, the writer's next group trims the log up to
 * there and records the mark. A document stored again leaves its old
 * words through the values the delete trigger logged. A keyword query
 * catches the file up itself, and a file behind the trim mark (a backup's,
 * or one a power loss set back) is rebuilt from the chunks, not trusted. */
static void test_keyword_file_follows_the_log(void) {
    char path[4096], kw[4200];
    int rc;
    sl_doc *a;
    sl_instance *s = kw_store_with_walrus("kw-follow", path, sizeof path, kw, sizeof kw, &a);
    long long head = raw_int(path, "SELECT seq FROM sqlite_sequence WHERE name = 'keyword_log'");
    CHECK_INT(head, 3);
    /* the thread's own pass, not a query's: poll the file, which may not
     * hold its table yet */
    long long covered = -1;
    for (int waited = 0; covered != head && waited < 10000; waited += 5) {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        if (access(kw, F_OK) == 0 && sqlite3_open_v2(kw, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
            sqlite3_prepare_v2(db, "SELECT seq FROM kw_state", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            covered = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        if (covered != head) sleep_ms(5);
    }
    CHECK_INT(covered, head);
    sl_doc *b = mkdoc("b.md", "b", "fp", 1, "narwhal", 2, 4);
    CHECK_INT(do_store(s, b), 0);
    CHECK_INT(raw_int(path, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'keyword_log_trimmed'"),
              head);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM keyword_log WHERE seq <= 3"), 0);
    /* a.md again, other words: its three chunks are deleted (logged with
     * their values) and three new ones added */
    sl_doc *a2 = mkdoc("a.md", "a2", "fp", 1, "octopus", 3, 4);
    CHECK_INT(do_store(s, a2), 0);
    sl_hits *hits = sl_hits_new(10);
    CHECK_INT(do_keyword(s, "octopus", 10, hits), 0); /* caught up by the query itself */
    CHECK_INT(sl_hits_count(hits), 3);
    sl_hits_free(hits);
    hits = sl_hits_new(10);
    CHECK_INT(do_keyword(s, "walrus", 10, hits), 0);
    CHECK_INT(sl_hits_count(hits), 0);
    sl_hits_free(hits);
    sink_close(s);
    check_index_agrees(path);
    CHECK_INT(raw_int(kw, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'narwhal'"), 2);

    /* set back behind the trim mark: rebuilt, not caught up from a log
     * that no longer holds what it missed */
    raw_exec(kw, "UPDATE kw_state SET seq = 1");
    raw_exec(kw,
             "INSERT INTO chunks_fts(rowid, text, heading, summary) VALUES(999, 'stale leftover', '', NULL)");
    s = sink_open(path, 1000, &rc);
    CHECK_INT(rc, 0);
    hits = sl_hits_new(10);
    CHECK_INT(do_keyword(s, "narwhal stale", 10, hits), 0);
    CHECK_INT(sl_hits_count(hits), 2);
    sl_hits_free(hits);
    sink_close(s);
    CHECK_INT(raw_int(kw, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'stale'"), 0);
    check_index_agrees(path);
    sl_doc_free(a);
    sl_doc_free(b);
    sl_doc_free(a2);
}

/* keyword_index = off keeps no keyword index: nothing is logged for it, a
 * keyword query says why, and an index made before is set behind the
 * store for good. Turned on again, the first keyword query rebuilds the
 * file from the chunks, the ones stored while it was off included. A
 * value that is neither is refused at init. */
static void test_keyword_index_off(void) {
    char path[4096], kw[4200];
    int rc;
    sl_doc *a;
    sl_instance *s = kw_store_with_walrus("kw-off", path, sizeof path, kw, sizeof kw, &a);
    sink_close(s); /* a.md indexed: the file covers the log */
    CHECK_INT(raw_int(kw, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'walrus'"), 3);

    const char *off[] = {"keyword_index=off"};
    s = sink_open_with(path, 1000, off, 1, &rc);
    CHECK_INT(rc, 0);
    sl_doc *b = mkdoc("b.md", "b", "fp", 1, "narwhal", 2, 4);
    CHECK_INT(do_store(s, b), 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM keyword_log"), 0);
    sl_hits *hits = sl_hits_new(10);
    CHECK_INT(do_keyword(s, "narwhal", 10, hits), SL_KEYWORD_NO_INDEX);
    CHECK_CONTAINS(last_call.msg, "keyword_index = off");
    sl_hits_free(hits);
    sink_close(s);
    CHECK(raw_int(path, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'keyword_log_trimmed'") >
          raw_int(kw, "SELECT seq FROM kw_state"));

    s = sink_open(path, 1000, &rc);
    CHECK_INT(rc, 0);
    hits = sl_hits_new(10);
    CHECK_INT(do_keyword(s, "narwhal walrus", 10, hits), 0);
    CHECK_INT(sl_hits_count(hits), 5);
    sl_hits_free(hits);
    sink_close(s);
    check_index_agrees(path);

    const char *bad[] = {"keyword_index=sometimes"};
    s = sink_open_with(path, 1000, bad, 1, &rc);
    CHECK(rc < 0);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "keyword_index");
    sink_close(s);
    sl_doc_free(a);
    sl_doc_free(b);
}

/* A group's chunks reach the keyword index and the vector log in one
 * statement each at its end (schema 4: no trigger per inserted row). So a
 * group never holds a document twice: lined up behind a held writer, a
 * changed document stored again is cut into the next group (when the first
 * version is answered, the other document is not yet in the file), and it
 * replaces chunks that are indexed by then. A document rolled back leaves
 * nothing in the index. */
static void test_group_indexes_its_chunks_once(void) {
    char path[4096];
    store_path(path, sizeof path, "group-index");
    const char *group[] = {"group_max=8"};
    int rc;
    sl_instance *s = sink_open_with(path, 1000, group, 1, &rc);
    CHECK_INT(rc, 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN"
                            " ('chunks_fts_insert', 'vector_log_insert')"),
              0);
    raw_exec(path, "CREATE TRIGGER refuse BEFORE INSERT ON chunks WHEN NEW.text = 'refused chunk 1'"
                   " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
    sl_doc *d[4] = {
        mkdoc("twice.md", "v1", "fp", 2, "alpha", 3, 4), mkdoc("twice.md", "v2", "fp", 2, "beta", 5, 4),
        mkdoc("other.md", "o", "fp", 2, "gamma", 2, 0), mkdoc("bad.md", "b", "fp", 2, "refused", 3, 4)};
    tcall t[4];
    holder h;
    hold_writer(&h, s, "hold.md");
    for (int i = 0; i < 4; i++) CHECK_INT(store_async(s, &t[i], d[i], path), SL_PENDING);
    release_writer(&h);
    CHECK(wait_all(t, 4, 10000));
    for (int i = 0; i < 3; i++) CHECK_INT(atomic_load(&t[i].rc), 0);
    CHECK_INT(atomic_load(&t[3].rc), SL_EFATAL);
    CHECK_INT(atomic_load(&t[0].total), 2); /* hold.md and twice.md's first version, alone */
    CHECK_INT(atomic_load(&t[1].total), 3);
    CHECK_INT(atomic_load(&t[2].total), 3);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM vector_log WHERE added = 1"), 3 + 5); /* gamma has none */
    sink_close(s); /* the keyword thread catches up before fini returns */
    char kw[4200];
    snprintf(kw, sizeof kw, "%s.keywords", path);
    CHECK_INT(raw_int(kw, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'alpha'"), 0);
    CHECK_INT(raw_int(kw, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'beta'"), 5);
    CHECK_INT(raw_int(kw, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'gamma'"), 2);
    CHECK_INT(raw_int(kw, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'refused'"), 0);
    check_index_agrees(path);
    for (int i = 0; i < 4; i++) sl_doc_free(d[i]);
    sl_doc_free(h.doc);
}

/* A commit that fails (a deferred foreign key the test plants, which
 * SQLite checks only at COMMIT) fails every document of the group with
 * the error, and none of them is stored; the next group (group_max = 3
 * cuts the four lined up into three and one) commits. */
static void test_failed_commit_fails_the_whole_group(void) {
    char path[4096];
    store_path(path, sizeof path, "commit-fail");
    const char *group[] = {"group_max=3"};
    int rc;
    sl_instance *s = sink_open_with(path, 1000, group, 1, &rc);
    CHECK_INT(rc, 0);
    raw_exec(path, "CREATE TABLE trap(doc INTEGER REFERENCES documents(id) DEFERRABLE INITIALLY DEFERRED);"
                   "CREATE TRIGGER plant AFTER INSERT ON documents WHEN NEW.uri LIKE 'trap/%'"
                   " BEGIN INSERT INTO trap VALUES(-1); END;");
    const char *uris[4] = {"x/1.md", "trap/1.md", "x/2.md", "x/3.md"};
    tcall t[4];
    sl_doc *d[4];
    holder h;
    hold_writer(&h, s, "hold.md");
    for (int i = 0; i < 4; i++) {
        d[i] = mkdoc(uris[i], uris[i], "fp", 1, "t", 2, 4);
        CHECK_INT(store_async(s, &t[i], d[i], NULL), SL_PENDING);
    }
    release_writer(&h);
    CHECK(wait_all(t, 4, 10000));
    for (int i = 0; i < 3; i++) {
        CHECK_INT(atomic_load(&t[i].rc), SL_EFATAL);
        CHECK_CONTAINS(t[i].call.msg, uris[i]);
        CHECK_CONTAINS(t[i].call.msg, "commit failed");
    }
    CHECK_INT(atomic_load(&t[3].rc), 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents WHERE uri LIKE 'x/%' OR uri LIKE 'trap/%'"), 1);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id"
                            " WHERE d.uri <> 'x/3.md' AND d.uri <> 'hold.md'"),
              0);

    /* The trap gone, the same documents go in. */
    raw_exec(path, "DROP TRIGGER plant");
    for (int i = 0; i < 3; i++) CHECK_INT(tcall_wait(&t[i], store_async(s, &t[i], d[i], NULL), 10000), 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents"), 5);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks"), 9);
    for (int i = 0; i < 4; i++) sl_doc_free(d[i]);
    sl_doc_free(h.doc);
    sink_close(s);
}

/* group_max = 1 is one transaction per document, as before group commit:
 * with twelve stores lined up, each answer sees exactly the documents
 * answered before it and itself, where the grouped sink commits all twelve
 * at once. And the store it makes equals, byte for byte, the one the same
 * documents make in groups. */
static void test_group_max_1_is_one_transaction_per_document(void) {
    char one[4096], grouped[4096];
    store_path(one, sizeof one, "one-by-one");
    store_path(grouped, sizeof grouped, "grouped");
    const char *g1[] = {"group_max=1"};
    int rc1, rc2;
    sl_instance *s1 = sink_open_with(one, 1000, g1, 1, &rc1);
    sl_instance *s2 = sink_open(grouped, 1000, &rc2);
    CHECK_INT(rc1, 0);
    CHECK_INT(rc2, 0);
    static const char *const contents[] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"};
    tcall t1[12], t2[12];
    sl_doc *d[12];
    holder h1, h2;
    hold_writer(&h1, s1, "hold.md");
    hold_writer(&h2, s2, "hold.md");
    int base = atomic_load(&answers);
    for (int i = 0; i < 12; i++) {
        char uri[32], tag[16];
        snprintf(uri, sizeof uri, "docs/%d.md", i < 10 ? i : i - 10); /* the last two replace 0 and 1 */
        snprintf(tag, sizeof tag, "t%d", i);
        d[i] = mkdoc(uri, contents[i % 10], "fp", 1, tag, (size_t)(1 + i % 4), i % 3 ? 4 : 0);
        sl_doc_meta_set(d[i], "title", tag);
        CHECK_INT(store_async(s1, &t1[i], d[i], one), SL_PENDING);
        CHECK_INT(store_async(s2, &t2[i], d[i], grouped), SL_PENDING);
    }
    release_writer(&h1);
    CHECK(wait_all(t1, 12, 10000));
    release_writer(&h2);
    CHECK(wait_all(t2, 12, 10000));
    for (int i = 0; i < 12; i++) {
        CHECK_INT(atomic_load(&t1[i].rc), 0);
        CHECK_INT(atomic_load(&t2[i].rc), 0);
        CHECK_INT(atomic_load(&t1[i].order), base + i + 1); /* in the order stored */
        /* hold.md, then docs/0..9 one at a time; the last two replace */
        CHECK_INT(atomic_load(&t1[i].total), 1 + (i < 10 ? i + 1 : 10));
        CHECK_INT(atomic_load(&t2[i].total), 1 + 10);
    }
    char *a = store_dump(one), *b = store_dump(grouped);
    CHECK(strlen(a) > 100);
    CHECK_STR(a, b);
    free(a);
    free(b);
    for (int i = 0; i < 12; i++) sl_doc_free(d[i]);
    sl_doc_free(h1.doc);
    sl_doc_free(h2.doc);
    sink_close(s1);
    sink_close(s2);
}

/* fini with documents still queued (the writer thread held, then let go
 * while fini waits for it): every one is written and answered as stored
 * before fini returns. When they cannot be written (another connection
 * holds the write lock), fini answers each with the reason, retryable. */
static void test_fini_answers_every_queued_store(void) {
    char path[4096];
    store_path(path, sizeof path, "fini");
    int rc;
    sl_instance *s = sink_open(path, 1000, &rc);
    CHECK_INT(rc, 0);
    tcall t[5];
    sl_doc *d[5];
    holder h;
    hold_writer(&h, s, "hold.md");
    for (int i = 0; i < 5; i++) {
        char uri[32];
        snprintf(uri, sizeof uri, "f/%d.md", i);
        d[i] = mkdoc(uri, "f", "fp", 1, "f", 2, 4);
        CHECK_INT(store_async(s, &t[i], d[i], NULL), SL_PENDING);
    }
    pthread_t th;
    CHECK_INT(pthread_create(&th, NULL, release_later, &h), 0);
    sink_close(s);
    pthread_join(th, NULL);
    for (int i = 0; i < 5; i++) {
        CHECK_INT(atomic_load(&t[i].answered), 1);
        CHECK_INT(atomic_load(&t[i].rc), 0);
    }
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents WHERE uri LIKE 'f/%'"), 5);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks"), 5 * 2 + 1);
    sl_doc_free(h.doc);

    /* Another writer holds the file: they are answered, not left waiting. */
    s = sink_open(path, 100, &rc);
    CHECK_INT(rc, 0);
    hold_writer(&h, s, "hold2.md");
    sqlite3 *other = raw_open(path);
    CHECK_INT(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < 5; i++) {
        sl_doc_set_run_id(d[i], 2);
        sl_doc_meta_set(d[i], "title", "second");
        CHECK_INT(store_async(s, &t[i], d[i], NULL), SL_PENDING);
    }
    CHECK_INT(pthread_create(&th, NULL, release_later, &h), 0);
    sink_close(s);
    pthread_join(th, NULL);
    CHECK_INT(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    for (int i = 0; i < 5; i++) {
        CHECK_INT(atomic_load(&t[i].answered), 1);
        CHECK_INT(atomic_load(&t[i].rc), SL_ERETRY);
        CHECK_CONTAINS(t[i].call.msg, "locked");
    }
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents WHERE title = 'second'"), 0);
    for (int i = 0; i < 5; i++) sl_doc_free(d[i]);
    sl_doc_free(h.doc);
}

/* A store made with 4 KB pages (before 16 KB became the default) keeps
 * them: nothing is rewritten, and it stores, looks up and answers queries
 * as before. */
static void test_old_page_size_kept(void) {
    char path[4096];
    store_path(path, sizeof path, "old-pages");
    int rc;
    sl_instance *s = sink_open(path, 1000, &rc);
    CHECK_INT(rc, 0);
    sl_doc *d = mkdoc("old.md", "old", "fp", 1, "old", 3, 4);
    CHECK_INT(do_store(s, d), 0);
    sink_close(s);
    raw_exec(path,
             "PRAGMA journal_mode = DELETE; PRAGMA page_size = 4096; VACUUM; PRAGMA journal_mode = WAL");
    CHECK_INT(raw_int(path, "PRAGMA page_size"), 4096);

    s = sink_open(path, 1000, &rc);
    CHECK_INT(rc, 0);
    CHECK_INT(do_lookup(s, d), SL_LOOKUP_UNCHANGED);
    sl_doc *e = mkdoc("new.md", "new", "fp", 1, "new", 40, 4);
    CHECK_INT(do_store(s, e), 0);
    const float q[4] = {0, 0, 1, 0};
    sl_hits *hits = sl_hits_new(3);
    CHECK_INT(do_query(s, q, 4, 3, hits), 0);
    CHECK_INT(sl_hits_count(hits), 3);
    sl_hits_free(hits);
    sink_close(s);
    CHECK_INT(raw_int(path, "PRAGMA page_size"), 4096);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks"), 43);
    char buf[16];
    CHECK_STR(raw_text(path, "PRAGMA integrity_check", buf, sizeof buf), "ok");
    sl_doc_free(d);
    sl_doc_free(e);
}

/* Reruns: skipped documents are looked up, not stored, and their
 * seen-marks wait in the writer; prune right after the lookups applies
 * every one of them before it deletes. An unchanged corpus prunes
 * nothing; a deleted file is removed, exactly; a changed document whose
 * new version then failed is kept (its file is still there). Marks are
 * also written at fini, and on their own when nothing else writes. */
static void test_seen_marks_reach_prune(void) {
    char path[4096];
    store_path(path, sizeof path, "marks");
    int rc;
    sl_instance *s = sink_open(path, 1000, &rc);
    CHECK_INT(rc, 0);
    static const char *const uris[] = {"r/a.md", "r/b.md", "r/c.md", "r/d.md", "outside.md"};
    sl_doc *d[5];
    tcall t[5];
    for (int i = 0; i < 5; i++) {
        d[i] = mkdoc(uris[i], uris[i], "fp", 1, "v1", 2, 4);
        CHECK_INT(store_async(s, &t[i], d[i], NULL), SL_PENDING);
    }
    flush(s);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents"), 5);

    /* run 2, nothing changed: every document under r/ is skipped */
    const char *roots[] = {"r"};
    for (int i = 0; i < 4; i++) {
        sl_doc_set_run_id(d[i], 2);
        CHECK_INT(do_lookup(s, d[i]), SL_LOOKUP_UNCHANGED);
    }
    CHECK_INT(do_prune(s, roots, 1, 2), 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents"), 5);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents WHERE seen_run = 2"), 4);

    /* run 3: r/c.md deleted, r/d.md changed and its new version failed */
    for (int i = 0; i < 2; i++) {
        sl_doc_set_run_id(d[i], 3);
        CHECK_INT(do_lookup(s, d[i]), SL_LOOKUP_UNCHANGED);
    }
    sl_doc *d2 = mkdoc("r/d.md", "r/d.md, edited", "fp", 3, "v2", 2, 4);
    CHECK_INT(do_lookup(s, d2), SL_LOOKUP_CHANGED);
    CHECK_INT(do_prune(s, roots, 1, 3), 1);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents WHERE uri = 'r/c.md'"), 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)"), 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents WHERE uri IN ('r/a.md', 'r/b.md', 'r/d.md')"), 3);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents WHERE uri = 'outside.md'"), 1);
    char buf[128];
    CHECK_STR(raw_text(path, "SELECT hash FROM documents WHERE uri = 'r/d.md'", buf, sizeof buf),
              sl_doc_hash(d[3]));

    /* run 4: prune with the writer held, so the marks are certainly still
     * queued when prune is asked: it waits, then applies them first. */
    holder h;
    hold_writer(&h, s, "hold.md");
    for (int i = 0; i < 4; i++) {
        if (i == 2) continue; /* deleted in run 3 */
        sl_doc_set_run_id(d[i], 4);
        CHECK_INT(do_lookup(s, d[i]), SL_LOOKUP_UNCHANGED);
    }
    pthread_t th;
    CHECK_INT(pthread_create(&th, NULL, release_later, &h), 0);
    const char *all[] = {"r", "outside.md", "hold.md"};
    CHECK_INT(do_prune(s, all, 3, 4), 2); /* outside.md and hold.md were not looked up in run 4 */
    pthread_join(th, NULL);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents WHERE seen_run = 4"), 3);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents"), 3);
    sl_doc_free(h.doc);

    /* run 5: marks queued at fini are written by it */
    sl_doc_set_run_id(d[0], 5);
    CHECK_INT(do_lookup(s, d[0]), SL_LOOKUP_UNCHANGED);
    sink_close(s);
    CHECK_INT(raw_int(path, "SELECT seen_run FROM documents WHERE uri = 'r/a.md'"), 5);

    /* run 6: with nothing stored, they are written on their own */
    s = sink_open(path, 1000, &rc);
    CHECK_INT(rc, 0);
    sl_doc_set_run_id(d[1], 6);
    CHECK_INT(do_lookup(s, d[1]), SL_LOOKUP_UNCHANGED);
    CHECK_INT(wait_int(path, "SELECT seen_run FROM documents WHERE uri = 'r/b.md'", 6, 5000), 6);
    sink_close(s);
    for (int i = 0; i < 5; i++) sl_doc_free(d[i]);
    sl_doc_free(d2);
}

/* kill -9 while storing, several documents queued at a time: the file is
 * intact, every document in it is whole (its chunk rows match its
 * chunk_count and its version), and every version answered as stored
 * before the kill is there, or a later one: a store is answered only once
 * its group has committed. The child logs each answer from the answer
 * callback itself, so the log can only lag the file, never lead it. */
static int answer_log = -1;

static void logged_done(sl_call *call, int rc) {
    tcall *t = (tcall *)call;
    if (rc == 0) dprintf(answer_log, "%s %s\n", t->uri, t->hash); /* hash: the version's title */
    atomic_store(&t->rc, rc);
    atomic_store(&t->answered, 1);
}

static void test_kill_mid_store_leaves_whole_documents(void) {
    char path[4096], log[4200];
    store_path(path, sizeof path, "kill");
    snprintf(log, sizeof log, "%s.answered", path);
    int ready[2];
    CHECK_INT(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        const char *group[] = {"group_max=4"};
        int rc;
        sl_instance *s = sink_open_with(path, 1000, group, 1, &rc);
        if (rc) _exit(2);
        answer_log = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
        if (answer_log < 0) _exit(5);
        static const char *const contents[] = {"v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"};
        enum { INFLIGHT = 8 };
        tcall t[INFLIGHT];
        sl_doc *d[INFLIGHT] = {0};
        for (unsigned n = 0;; n++) {
            unsigned k = n % INFLIGHT;
            if (d[k]) { /* its slot's last document: wait for its answer */
                while (!atomic_load(&t[k].answered)) sleep_ms(1);
                if (atomic_load(&t[k].rc) != 0) _exit(6);
                sl_doc_free(d[k]);
            }
            char uri[32], tag[16];
            snprintf(uri, sizeof uri, "k/%u.md", n % 5);
            snprintf(tag, sizeof tag, "v%u", n);
            d[k] = mkdoc(uri, contents[n % 8], "fp", n, tag, 20 + n % 7, 8);
            sl_doc_meta_set(d[k], "title", tag);
            tcall_init(&t[k], s, NULL);
            t[k].call.on_done = logged_done;
            snprintf(t[k].uri, sizeof t[k].uri, "%s", uri);
            snprintf(t[k].hash, sizeof t[k].hash, "%s", tag);
            if (desc->store(&t[k].call, d[k]) != SL_PENDING) _exit(3);
            if (n == 40 && write(ready[1], "x", 1) != 1) _exit(4);
        }
    }
    close(ready[1]);
    char c;
    CHECK_INT(read(ready[0], &c, 1), 1);
    close(ready[0]);
    usleep(20000);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    char buf[64];
    CHECK_STR(raw_text(path, "PRAGMA integrity_check", buf, sizeof buf), "ok");
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents"), 5);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM documents d WHERE chunk_count <> "
                            "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)"),
              0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id "
                            "WHERE c.text NOT LIKE d.title || ' chunk %'"),
              0);
    /* What was answered is there: each uri's stored version is at least the
     * last one answered for it. */
    FILE *f = fopen(log, "r");
    CHECK(f != NULL);
    unsigned last[5] = {0}, answered = 0;
    char uri[64];
    unsigned n;
    while (f && fscanf(f, "%63s v%u", uri, &n) == 2) {
        unsigned k;
        if (sscanf(uri, "k/%u.md", &k) == 1 && k < 5 && n > last[k]) last[k] = n;
        answered++;
    }
    if (f) fclose(f);
    CHECK(answered >= 30);
    for (unsigned k = 0; k < 5; k++) {
        char sql[128];
        snprintf(sql, sizeof sql,
                 "SELECT CAST(substr(title, 2) AS INTEGER) FROM documents WHERE uri = 'k/%u.md'", k);
        CHECK(raw_int(path, sql) >= (long long)last[k]);
    }
    /* And the store opens and works again. */
    int rc;
    sl_instance *s = sink_open(path, 1000, &rc);
    CHECK_INT(rc, 0);
    sl_doc *d = mkdoc("k/0.md", "after", "fp", 99, "after", 2, 8);
    CHECK_INT(do_store(s, d), 0);
    sl_doc_free(d);
    sink_close(s);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

int main(void) {
    const char *dir = getenv("SLUICE_PLUGIN_DIR");
    const char *tmp = getenv("SLUICE_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/sink-sqlite-%ld", tmp ? tmp : "/tmp", (long)getpid());
    char path[4096];
    snprintf(path, sizeof path, "%s/sink-sqlite.so", dir ? dir : ".");
    ctx = sl_ctx_new();
    CHECK_INT(sl_registry_new(ctx, &reg), 0);
    /* The loader validates the descriptor and its option table. */
    if (sl_registry_open(ctx, reg, path, &plugin) != 0) {
        fprintf(stderr, "cannot load %s: %s\n", path, sl_ctx_errmsg(ctx));
        return 1;
    }
    desc = &plugin->desc;

    test_descriptor_declares_sink();
    test_schema_and_folder_made_on_first_use();
    test_missing_required_path_refused();
    test_bad_group_options_refused();
    test_lookup_answers();
    test_store_replaces_chunks();
    test_vector_blob_format();
    test_metadata_stored_as_json();
    test_locked_store_retries_and_keeps_old_chunks();
    test_prune_by_root_and_run();
    test_query_nearest_first();
    test_query_dimension_mismatch_refused();
    test_reopen_keeps_data();
    test_newer_schema_refused();
    test_not_a_database_refused();
    test_lookups_do_not_wait_for_writes();
    test_store_answers_at_once_while_another_writer_holds_the_lock();
    test_failed_document_rolls_back_alone();
    test_failed_commit_fails_the_whole_group();
    test_group_indexes_its_chunks_once();
    test_keyword_file_follows_the_log();
    test_keyword_index_off();
    test_group_max_1_is_one_transaction_per_document();
    test_fini_answers_every_queued_store();
    test_old_page_size_kept();
    test_seen_marks_reach_prune();
    test_kill_mid_store_leaves_whole_documents();

    sl_registry_free(reg);
    sl_ctx_free(ctx);
    int rc = check_done();
    if (rc == 0) nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
