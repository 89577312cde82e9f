/* test_sink_sqlite.c - the sink-sqlite plugin, loaded from its .so through
 * the core's loader and configured through the core's instance API, as a
 * run would, against real SQLite files under $SLUICE_TEST_TMP: schema and
 * folder made on first use, lookup answers, all-or-nothing stores (under a
 * competing writer and under kill -9), prune by root and run, brute-force
 * queries, reopening, and refusing a newer schema.
 *
 * A second, plain SQLite connection inspects the file and plays the other
 * writer.
 */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
 * overrides, then init. NULL if it could not be built; *rc is the first
 * failure and sl_ctx_errmsg(ctx) its message. */
static sl_instance *sink_open(const char *path, int64_t busy_ms, int *rc) {
    char p[4200], b[64];
    snprintf(p, sizeof p, "path=%s", path ? path : "");
    snprintf(b, sizeof b, "busy_timeout=%lldms", (long long)busy_ms);
    const char *ov[2] = {b, p};
    sl_instance *inst = NULL;
    sl_ctx_clear_error(ctx);
    *rc = sl_instance_new_defaults(ctx, plugin, "store", ov, path ? 2 : 1, &inst);
    if (*rc == 0) *rc = sl_instance_init(ctx, inst);
    return inst;
}

static void sink_close(sl_instance *inst) { sl_instance_free(inst); }

static sl_call last_call; /* the last call's failure, for messages */

static int do_lookup(sl_instance *inst, sl_doc *doc) {
    sl_call_init(&last_call, inst, NULL);
    return desc->lookup(&last_call, doc);
}
static int do_store(sl_instance *inst, sl_doc *doc) {
    sl_call_init(&last_call, inst, NULL);
    return desc->store(&last_call, doc);
}
static int do_prune(sl_instance *inst, const char *const *roots, size_t n, uint64_t run) {
    sl_call_init(&last_call, inst, NULL);
    return desc->prune(&last_call, roots, n, run);
}
static int do_query(sl_instance *inst, const float *v, uint32_t dim, uint32_t k, sl_hits *hits) {
    sl_call_init(&last_call, inst, NULL);
    return desc->query(&last_call, v, dim, k, hits);
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

static void store_path(char *out, size_t outlen, const char *name) {
    snprintf(out, outlen, "%s/%s/store.db", tmpdir, name);
}

/* --- the tests --- */

static void test_descriptor_declares_sink(void) {
    CHECK_STR(desc->name, "sink-sqlite");
    CHECK_INT(desc->role, SL_ROLE_SINK);
    CHECK_INT(desc->bottleneck, SL_CPU);
    CHECK_INT(desc->max_concurrency, 1);
    CHECK(desc->lookup && desc->store && desc->prune && desc->query && desc->init && desc->fini);
    /* path is required and, like the other two, no part of the fingerprint. */
    size_t n = 0;
    for (const sl_option *o = desc->options; o && o->name; o++, n++) {
        CHECK(o->flags & SL_OPT_NO_FINGERPRINT);
        CHECK_INT(!!(o->flags & SL_OPT_REQUIRED), strcmp(o->name, "path") == 0);
    }
    CHECK_INT(n, 3);
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
    CHECK_STR(raw_text(path, "SELECT value FROM meta WHERE key = 'schema_version'", buf, sizeof buf), "1");
    CHECK_STR(raw_text(path, "PRAGMA journal_mode", buf, sizeof buf), "wal");
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
 * another uri: missing. A lookup records the run as seen. */
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
    CHECK_INT(raw_int(path, "SELECT seen_run FROM documents WHERE uri = 'docs/a.md'"), 2);
    sl_doc *refp = mkdoc("docs/a.md", "# A\nalpha\n", "fp2", 3, "v1", 2, 4);
    CHECK_INT(do_lookup(s, refp), SL_LOOKUP_CHANGED);
    CHECK_INT(raw_int(path, "SELECT seen_run FROM documents WHERE uri = 'docs/a.md'"), 3);
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
    sl_doc_meta_set(d, "latin1", "caf\xe9!");
    CHECK_INT(do_store(s, d), 0);
    char buf[256];
    CHECK_STR(raw_text(path, "SELECT title FROM documents", buf, sizeof buf), "Caf\xc3\xa9 \"quoted\"");
    CHECK_INT(raw_int(path, "SELECT json_valid(metadata) FROM documents"), 1);
    CHECK_STR(raw_text(path, "SELECT json_extract(metadata, '$.title') FROM documents", buf, sizeof buf),
              "Caf\xc3\xa9 \"quoted\"");
    CHECK_STR(raw_text(path, "SELECT json_extract(metadata, '$.author') FROM documents", buf, sizeof buf),
              "a\\b\nc\td\x01");
    CHECK_STR(raw_text(path, "SELECT json_extract(metadata, '$.latin1') FROM documents", buf, sizeof buf),
              "caf\xef\xbf\xbd!");
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
    CHECK_INT(do_lookup(s, v2), SL_ERETRY); /* lookup writes seen_run: it waits too */
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
    CHECK_STR(raw_text(path, "SELECT value FROM meta WHERE key = 'schema_version'", buf, sizeof buf), "1");
    CHECK_INT(raw_int(path, "SELECT count(*) FROM meta"), 1);
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

/* kill -9 in the middle of storing: the file is intact, and every document
 * in it is whole (its chunk rows match its chunk_count and its version). */
static void test_kill_mid_store_leaves_whole_documents(void) {
    char path[4096];
    store_path(path, sizeof path, "kill");
    int ready[2];
    CHECK_INT(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        int rc;
        sl_instance *s = sink_open(path, 1000, &rc);
        if (rc) _exit(2);
        static const char *const contents[] = {"v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"};
        for (unsigned i = 0;; i++) {
            char uri[32], tag[16];
            snprintf(uri, sizeof uri, "k/%u.md", i % 5);
            snprintf(tag, sizeof tag, "v%u", i % 8);
            sl_doc *d = mkdoc(uri, contents[i % 8], "fp", i, tag, 20 + i % 7, 8);
            sl_doc_meta_set(d, "title", tag);
            if (do_store(s, d) != 0) _exit(3);
            sl_doc_free(d);
            if (i == 20 && write(ready[1], "x", 1) != 1) _exit(4);
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
    test_kill_mid_store_leaves_whole_documents();

    sl_registry_free(reg);
    sl_ctx_free(ctx);
    int rc = check_done();
    if (rc == 0) nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
