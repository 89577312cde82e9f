/* test_sink_postgres.c - the sink-postgres plugin, loaded from its .so
 * through the core's loader and configured through the instance API, its
 * calls made on an event loop as the core makes them, against a real
 * PostgreSQL cluster that the test makes (pgcluster.sh: initdb in a
 * temporary folder, a free port on 127.0.0.1) and removes.
 *
 * What the end-to-end scripts cannot reach is checked here: a server error
 * halfway through a document's transaction leaves the old version whole and
 * the connection usable; bad text fails the document before it is sent;
 * many calls at once share the pool without exceeding it; a connection cut
 * between calls is reopened without a failure, one cut during a call fails
 * it as retryable; a server that refuses connections makes calls retryable
 * with a retry-after; prune's roots are bytewise prefixes; queries rank by
 * cosine; one store keeps one dimension; a newer schema is refused.
 *
 * A libpq connection of the test's own looks inside and plays the other
 * users of the server.
 */
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../check.h" /* the tests' check.h */
#include "ctx.h"
#include "document.h"
#include "instance.h"
#include "registry.h"
#include "loop.h"
#include "query.h"
#include "runtime.h"
#include "sluice/sluice.h"

static sl_ctx *ctx;
static sl_registry *reg;
static const sl_loaded *plugin;
static const sl_plugin *desc;
static sl_loop *loop;
static char cluster[64];
static int port;
static PGconn *admin;    /* on the test's database, sl */
static PGconn *admin_pg; /* on postgres: what cannot be done from inside sl */

/* --- the server --- */

static int cluster_cmd(const char *cmd, char *out, size_t outlen) {
    char line[512];
    snprintf(line, sizeof line, "bash '%s' %s '%s'", PGCLUSTER, cmd, cluster);
    FILE *f = popen(line, "r");
    if (!f) return -1;
    size_t n = out ? fread(out, 1, outlen - 1, f) : 0;
    if (out) out[n] = '\0';
    char sink[256];
    while (fread(sink, 1, sizeof sink, f) > 0) {
    }
    return pclose(f);
}

/* Runs SQL on the admin connection; the first value of the first row, or
 * "" (static buffer). */
static const char *sql_on(PGconn *conn, const char *q) {
    static char v[1024];
    v[0] = '\0';
    PGresult *r = PQexec(conn, q);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fprintf(stderr, "admin SQL failed: %s: %s", q, PQerrorMessage(conn));
    else if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        snprintf(v, sizeof v, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static const char *sql(const char *q) { return sql_on(admin, q); }
static long long sql_int(const char *q) { return strtoll(sql(q), NULL, 10); }

/* --- instances and calls --- */

/* An instance of the sink on the test's database with `extra` overrides
 * ("key=value", up to 4), then init. *rc is the first failure. */
static sl_instance *sink_open(const char *const *extra, size_t nextra, int *rc) {
    char p[64];
    snprintf(p, sizeof p, "port=%d", port);
    const char *ov[12] = {"host=127.0.0.1", p, "user=postgres", "dbname=sl", "table_prefix=t_"};
    size_t n = 5;
    for (size_t i = 0; i < nextra && n < 12; i++) ov[n++] = extra[i];
    sl_instance *inst = NULL;
    sl_ctx_clear_error(ctx);
    *rc = sl_instance_new_defaults(ctx, plugin, "store", ov, n, &inst);
    if (*rc == 0) {
        inst->loop = loop;
        *rc = sl_instance_init(ctx, inst);
    }
    return inst;
}

static sl_call last; /* the last call's failure, for messages */

static int call_lookup(sl_call *call, void *doc) { return desc->lookup(call, doc); }
static int call_store(sl_call *call, void *doc) { return desc->store(call, doc); }

typedef struct prune_args {
    const char *const *roots;
    size_t n;
    uint64_t run;
} prune_args;
static int call_prune(sl_call *call, void *arg) {
    prune_args *a = arg;
    return desc->prune(call, a->roots, a->n, a->run);
}

typedef struct query_args {
    const float *v;
    uint32_t dim, k;
    sl_hits *hits;
} query_args;
static int call_query(sl_call *call, void *arg) {
    query_args *a = arg;
    return desc->query(call, a->v, a->dim, a->k, a->hits);
}

static int do_lookup(sl_instance *inst, sl_doc *d) { return sl_invoke(inst, call_lookup, d, &last); }
static int do_store(sl_instance *inst, sl_doc *d) { return sl_invoke(inst, call_store, d, &last); }

/* A document with `n` chunks "<tag> chunk i", heading "H<i>", page 1, line
 * 10i+1, and when dim > 0 the vector e_(i % dim). */
static sl_doc *mkdoc(const char *uri, const char *content, uint64_t run, const char *tag, size_t n,
                     uint32_t dim) {
    sl_doc *d = sl_doc_new(uri, NULL);
    sl_doc_set_data(d, content, strlen(content));
    sl_doc_set_fingerprint(d, "00112233445566778899aabbccddeeff");
    sl_doc_set_run_id(d, run);
    sl_doc_set_media_type(d, "text/markdown");
    sl_doc_meta_set(d, "title", tag);
    for (size_t i = 0; i < n; i++) {
        char text[128], heading[32];
        snprintf(text, sizeof text, "%s chunk %zu", tag, i);
        snprintf(heading, sizeof heading, "H%zu", i);
        sl_doc_add_chunk(d, text, strlen(text));
        sl_chunk_set_heading(d, i, heading);
        sl_chunk_set_position(d, i, 1, (uint32_t)(10 * i + 1));
        if (dim) sl_doc_chunk_vector(d, i, dim)[i % dim] = 1.0f;
    }
    return d;
}

static long long chunks_of(const char *uri) {
    char q[512];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM t_chunks c JOIN t_documents d ON d.id = c.doc_id WHERE d.uri = '%s'", uri);
    return sql_int(q);
}

/* --- tests --- */

static void test_schema_made_at_init(void) {
    int rc;
    sl_instance *inst = sink_open(NULL, 0, &rc);
    CHECK_INT(rc, 0);
    if (rc) fprintf(stderr, "init: %s\n", sl_ctx_errmsg(ctx));
    CHECK_INT(sql_int("SELECT count(*) FROM pg_tables WHERE tablename IN "
                      "('t_meta', 't_runs', 't_documents', 't_chunks')"),
              4);
    CHECK_STR(sql("SELECT value FROM t_meta WHERE key = 'schema_version'"), "3");
    CHECK_STR(sql("SELECT value FROM t_meta WHERE key = 'vector'"), "array");
    CHECK_INT(inst ? inst->concurrency : 0, 4); /* pool_size's default, told to the core */
    sl_instance_free(inst);
}

static void test_lookup_answers(void) {
    int rc;
    sl_instance *inst = sink_open(NULL, 0, &rc);
    sl_doc *d = mkdoc("la/a.md", "alpha", 7, "alpha", 2, 0);
    CHECK_INT(do_lookup(inst, d), SL_LOOKUP_MISSING);
    CHECK_INT(do_store(inst, d), 0);
    CHECK_INT(do_lookup(inst, d), SL_LOOKUP_UNCHANGED);
    CHECK_INT(sql_int("SELECT seen_run FROM t_documents WHERE uri = 'la/a.md'"), 7);
    CHECK_INT(sql_int("SELECT count(*) FROM t_runs WHERE run_id = 7"), 1);
    sl_doc_free(d);
    d = mkdoc("la/a.md", "alpha, edited", 8, "alpha", 2, 0); /* another hash */
    CHECK_INT(do_lookup(inst, d), SL_LOOKUP_CHANGED);
    CHECK_INT(sql_int("SELECT seen_run FROM t_documents WHERE uri = 'la/a.md'"), 8);
    sl_doc_free(d);
    d = mkdoc("la/a.md", "alpha", 9, "alpha", 2, 0);
    sl_doc_set_fingerprint(d, "ffffffffffffffffffffffffffffffff"); /* another pipeline */
    CHECK_INT(do_lookup(inst, d), SL_LOOKUP_CHANGED);
    sl_doc_free(d);
    sl_instance_free(inst);
}

static void test_store_replaces_and_rolls_back(void) {
    int rc;
    const char *one[] = {"pool_size=1"};
    sl_instance *inst = sink_open(one, 1, &rc);
    sl_doc *d = mkdoc("rb/doc.md", "v1", 1, "v1", 5, 0);
    CHECK_INT(do_store(inst, d), 0);
    sl_doc_free(d);
    CHECK_INT(chunks_of("rb/doc.md"), 5);
    d = mkdoc("rb/doc.md", "v2", 2, "v2", 2, 0);
    CHECK_INT(do_store(inst, d), 0);
    sl_doc_free(d);
    CHECK_INT(chunks_of("rb/doc.md"), 2);
    CHECK_STR(sql("SELECT string_agg(text, ',' ORDER BY ordinal) FROM t_chunks c JOIN t_documents d "
                  "ON d.id = c.doc_id WHERE d.uri = 'rb/doc.md'"),
              "v2 chunk 0,v2 chunk 1");

    /* The server refuses the third chunk of v3: nothing of v3 remains. */
    sql("CREATE FUNCTION t_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.text LIKE 'v3 chunk 2' THEN RAISE EXCEPTION 'refused by the test' USING ERRCODE = '22023'; "
        "END IF; RETURN NEW; END $$");
    sql("CREATE TRIGGER t_refuse BEFORE INSERT ON t_chunks FOR EACH ROW EXECUTE FUNCTION t_refuse()");
    d = mkdoc("rb/doc.md", "v3", 3, "v3", 4, 0);
    CHECK_INT(do_store(inst, d), SL_EBADINPUT);
    CHECK_CONTAINS(last.msg, "refused by the test");
    CHECK_CONTAINS(last.msg, "rb/doc.md");
    sl_doc_free(d);
    CHECK_INT(chunks_of("rb/doc.md"), 2);
    CHECK_INT(sql_int("SELECT stored_run FROM t_documents WHERE uri = 'rb/doc.md'"), 2);
    CHECK_STR(sql("SELECT string_agg(text, ',' ORDER BY ordinal) FROM t_chunks c JOIN t_documents d "
                  "ON d.id = c.doc_id WHERE d.uri = 'rb/doc.md'"),
              "v2 chunk 0,v2 chunk 1");
    sql("DROP TRIGGER t_refuse ON t_chunks");
    sql("DROP FUNCTION t_refuse()");

    /* the one connection was rolled back and serves the next document */
    d = mkdoc("rb/next.md", "next", 3, "next", 3, 0);
    CHECK_INT(do_store(inst, d), 0);
    sl_doc_free(d);
    CHECK_INT(chunks_of("rb/next.md"), 3);
    sl_instance_free(inst);
}

static void test_bad_text_fails_the_document(void) {
    int rc;
    sl_instance *inst = sink_open(NULL, 0, &rc);
    sl_doc *d = mkdoc("bad/utf8.md", "x", 1, "ok", 1, 0);
    /* Latin-1, not UTF-8: the core refuses it before a sink sees it, and
     * the document, stored, holds only its valid chunk */
    CHECK_INT(sl_doc_add_chunk(d, "caf\xe9 au lait", 12), SL_EBADINPUT);
    CHECK_INT((int)sl_doc_chunk_count(d), 1);
    sl_doc_free(d);
    CHECK_INT(sql_int("SELECT count(*) FROM t_documents WHERE uri = 'bad/utf8.md'"), 0); /* never stored */
    sl_instance_free(inst);
}

static void test_values_are_parameters(void) {
    int rc;
    sl_instance *inst = sink_open(NULL, 0, &rc);
    const char *uri = "q/it's \"x\"; DROP TABLE t_chunks; --.md";
    sl_doc *d = mkdoc(uri, "x", 1, "a'b\"c\\d; DROP TABLE t_documents; --", 1, 0);
    sl_doc_meta_set(d, "author", "O'Brien \"\\\" \xc3\xbf");
    sl_chunk_set_summary(d, 0, "sum'mary");
    CHECK_INT(do_store(inst, d), 0);
    sl_doc_free(d);
    CHECK_INT(
        sql_int("SELECT count(*) FROM t_documents WHERE uri = 'q/it''s \"x\"; DROP TABLE t_chunks; --.md'"),
        1);
    CHECK_STR(sql("SELECT title FROM t_documents WHERE uri LIKE 'q/%'"),
              "a'b\"c\\d; DROP TABLE t_documents; --");
    CHECK_STR(sql("SELECT metadata->>'author' FROM t_documents WHERE uri LIKE 'q/%'"),
              "O'Brien \"\\\" \xc3\xbf");
    CHECK_STR(
        sql("SELECT summary FROM t_chunks c JOIN t_documents d ON d.id = c.doc_id WHERE uri LIKE 'q/%'"),
        "sum'mary");
    sl_instance_free(inst);
}

/* --- many calls at once --- */

typedef struct pending {
    sl_call call;
    int rc, done;
} pending;

static void on_done(sl_call *call, int rc) {
    pending *p = call->udata;
    p->rc = rc;
    p->done = 1;
}

static void test_calls_share_the_pool(void) {
    int rc;
    const char *three[] = {"pool_size=3"};
    sl_instance *inst = sink_open(three, 1, &rc);
    CHECK_INT(inst ? inst->concurrency : 0, 3);
    enum { N = 24 };
    pending p[N];
    sl_doc *docs[N];
    for (int i = 0; i < N; i++) {
        char uri[64];
        snprintf(uri, sizeof uri, "pool/doc-%02d.md", i);
        docs[i] = mkdoc(uri, "content", 5, uri, 20, 0);
        sl_call_init(&p[i].call, inst, NULL);
        p[i].call.on_done = on_done;
        p[i].call.udata = &p[i];
        p[i].done = 0;
        int r = desc->store(&p[i].call, docs[i]);
        if (r != SL_PENDING) on_done(&p[i].call, r);
    }
    int remaining = N;
    while (remaining > 0) {
        uv_run(sl_loop_uv(loop), UV_RUN_ONCE);
        remaining = 0;
        for (int i = 0; i < N; i++) remaining += !p[i].done;
    }
    int ok = 0;
    for (int i = 0; i < N; i++) ok += p[i].rc == 0;
    CHECK_INT(ok, N);
    CHECK_INT(sql_int("SELECT count(*) FROM t_documents WHERE uri LIKE 'pool/%'"), N);
    CHECK_INT(
        sql_int(
            "SELECT count(*) FROM t_chunks c JOIN t_documents d ON d.id = c.doc_id WHERE uri LIKE 'pool/%'"),
        N * 20);
    /* the pool opened its connections, and no more (earlier instances'
     * backends may take a moment to go) */
    long long conns = 0;
    for (int i = 0; i < 50; i++) {
        conns = sql_int("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sluice'");
        if (conns == 3) break;
        usleep(50000);
    }
    CHECK_INT(conns, 3);
    for (int i = 0; i < N; i++) sl_doc_free(docs[i]);
    sl_instance_free(inst);
}

/* --- connections that break --- */

static void test_connection_cut_between_calls_is_reopened(void) {
    int rc;
    const char *two[] = {"pool_size=2"};
    sl_instance *inst = sink_open(two, 1, &rc);
    sl_doc *d = mkdoc("cut/a.md", "a", 1, "a", 2, 0);
    CHECK_INT(do_store(inst, d), 0);
    CHECK_INT(sql_int("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE application_name = 'sluice'"),
              1);
    usleep(100000);
    /* nothing had been sent on the dead connection: it is reopened first */
    CHECK_INT(do_lookup(inst, d), SL_LOOKUP_UNCHANGED);
    CHECK_INT(do_store(inst, d), 0);
    sl_doc_free(d);
    sl_instance_free(inst);
}

static void test_connection_cut_during_a_call_is_retryable(void) {
    int rc;
    const char *one[] = {"pool_size=1"};
    sl_instance *inst = sink_open(one, 1, &rc);
    sl_doc *d = mkdoc("cut/b.md", "b", 1, "b", 2, 0);
    /* the store waits on the test's lock; then its connection is cut */
    sql("BEGIN");
    sql("LOCK TABLE t_chunks IN ACCESS EXCLUSIVE MODE");
    pending p = {0};
    sl_call_init(&p.call, inst, NULL);
    p.call.on_done = on_done;
    p.call.udata = &p;
    int r = desc->store(&p.call, d);
    CHECK_INT(r, SL_PENDING);
    if (r != SL_PENDING) on_done(&p.call, r);
    for (int i = 0; i < 50 && !p.done; i++) uv_run(sl_loop_uv(loop), UV_RUN_NOWAIT), usleep(10000);
    CHECK_INT(p.done, 0);
    CHECK_INT(sql_int("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE application_name = 'sluice'"),
              1);
    while (!p.done) uv_run(sl_loop_uv(loop), UV_RUN_ONCE);
    CHECK_INT(p.rc, SL_ERETRY);
    CHECK_CONTAINS(p.call.msg, "lost the connection");
    CHECK_CONTAINS(p.call.msg, "cut/b.md");
    sql("COMMIT");
    CHECK_INT(chunks_of("cut/b.md"), 0);
    /* the core's retry: a new connection, the whole document */
    CHECK_INT(do_store(inst, d), 0);
    CHECK_INT(chunks_of("cut/b.md"), 2);
    sl_doc_free(d);
    sl_instance_free(inst);
}

static void test_refused_connections_are_retryable(void) {
    int rc;
    sl_instance *inst = sink_open(NULL, 0, &rc);
    sl_doc *d = mkdoc("refused/a.md", "a", 1, "a", 1, 0);
    CHECK_INT(do_store(inst, d), 0);
    sql_on(admin_pg, "ALTER DATABASE sl ALLOW_CONNECTIONS false");
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'sluice'");
    usleep(100000);
    CHECK_INT(do_lookup(inst, d), SL_ERETRY);
    CHECK_CONTAINS(last.msg, "cannot connect to postgres at 127.0.0.1:");
    CHECK_CONTAINS(last.msg, "database sl");
    CHECK_CONTAINS(last.msg, "not currently accepting connections");
    CHECK(last.retry_after_ms >= 1000);
    sql_on(admin_pg, "ALTER DATABASE sl ALLOW_CONNECTIONS true");
    CHECK_INT(do_lookup(inst, d), SL_LOOKUP_UNCHANGED);
    sl_doc_free(d);
    sl_instance_free(inst);
}

/* --- prune, query, dimensions, versions --- */

static void test_prune_by_root_and_run(void) {
    int rc;
    sl_instance *inst = sink_open(NULL, 0, &rc);
    const char *uris[] = {"pr/a.md", "pr/sub/b.md", "pr%/c.md", "pr_x/d.md", "prx/e.md", "pr", "other/f.md"};
    for (size_t i = 0; i < 7; i++) {
        sl_doc *d = mkdoc(uris[i], "x", 1, "x", 1, 0);
        CHECK_INT(do_store(inst, d), 0);
        sl_doc_free(d);
    }
    sl_doc *seen = mkdoc("pr/a.md", "x", 2, "x", 1, 0);
    CHECK_INT(do_lookup(inst, seen), SL_LOOKUP_UNCHANGED); /* seen in run 2 */
    sl_doc_free(seen);
    const char *roots[] = {"pr"};
    prune_args a = {roots, 1, 2};
    /* "pr" and everything under "pr/" except what run 2 saw: not pr%, pr_x, prx */
    CHECK_INT(sl_invoke(inst, call_prune, &a, &last), 2);
    CHECK_INT(sql_int("SELECT count(*) FROM t_documents WHERE uri IN ('pr', 'pr/sub/b.md')"), 0);
    CHECK_INT(sql_int("SELECT count(*) FROM t_documents WHERE uri IN ('pr/a.md', 'pr%/c.md', 'pr_x/d.md', "
                      "'prx/e.md', 'other/f.md')"),
              5);
    CHECK_INT(sql_int("SELECT pruned FROM t_runs WHERE run_id = 2"), 2);
    const char *none[] = {"nowhere/"};
    prune_args b = {none, 1, 2};
    CHECK_INT(sl_invoke(inst, call_prune, &b, &last), 0);
    sl_instance_free(inst);
}

static void test_query_ranks_by_cosine(void) {
    int rc;
    const char *prefix[] = {"table_prefix=qv_"};
    sl_instance *inst = sink_open(prefix, 1, &rc);
    sl_doc *d = mkdoc("qv/a.md", "x", 1, "a", 4, 8); /* chunk i: e_i */
    CHECK_INT(do_store(inst, d), 0);
    sl_doc_free(d);
    CHECK_STR(sql("SELECT value FROM qv_meta WHERE key = 'dimension'"), "8");
    float q[8] = {0, 0, 1, 0.5f, 0, 0, 0, 0}; /* nearest e_2, then e_3 */
    sl_hits *hits = sl_hits_new(3);
    query_args a = {q, 8, 3, hits};
    CHECK_INT(sl_invoke(inst, call_query, &a, &last), 0);
    sl_hits_sort(hits);
    CHECK_INT(sl_hits_count(hits), 3);
    const sl_hit *h0 = sl_hits_at(hits, 0), *h1 = sl_hits_at(hits, 1);
    CHECK_INT(h0 ? h0->chunk : 99, 2);
    CHECK_INT(h1 ? h1->chunk : 99, 3);
    CHECK(h0 && h0->score > 0.894 && h0->score < 0.895); /* 1 / sqrt(1.25) */
    CHECK(h1 && h1->score > 0.447 && h1->score < 0.448);
    CHECK_STR(h0 ? h0->text : "", "a chunk 2");
    CHECK_STR(h0 ? h0->heading : "", "H2");
    CHECK_INT(h0 ? h0->line : 0, 21);
    sl_hits_free(hits);

    /* one store, one dimension */
    float q4[4] = {1, 0, 0, 0};
    hits = sl_hits_new(3);
    query_args b = {q4, 4, 3, hits};
    CHECK_INT(sl_invoke(inst, call_query, &b, &last), SL_EFATAL);
    CHECK_CONTAINS(last.msg, "8-dimensional");
    sl_hits_free(hits);
    d = mkdoc("qv/b.md", "x", 1, "b", 2, 4);
    CHECK_INT(do_store(inst, d), SL_EFATAL);
    CHECK_CONTAINS(last.msg, "8-dimensional");
    sl_doc_free(d);
    sl_instance_free(inst);

    /* a second instance reads the dimension from the store */
    inst = sink_open(prefix, 1, &rc);
    d = mkdoc("qv/c.md", "x", 1, "c", 2, 4);
    CHECK_INT(do_store(inst, d), SL_EFATAL);
    sl_doc_free(d);
    sl_instance_free(inst);
}

static void test_newer_schema_refused(void) {
    int rc;
    const char *prefix[] = {"table_prefix=nv_"};
    sl_instance *inst = sink_open(prefix, 1, &rc);
    CHECK_INT(rc, 0);
    sl_instance_free(inst);
    sql("UPDATE nv_meta SET value = '99' WHERE key = 'schema_version'");
    inst = sink_open(prefix, 1, &rc);
    CHECK_INT(rc, SL_EFATAL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "schema version 99");
    sl_instance_free(inst);
    const char *want_pgvector[] = {"table_prefix=pv_", "vector=pgvector"};
    inst = sink_open(want_pgvector, 2, &rc);
    CHECK_INT(rc, SL_EFATAL); /* Debian's server has no pgvector */
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "pgvector");
    sl_instance_free(inst);
}

int main(void) {
    const char *dir = getenv("SLUICE_PLUGIN_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/sink-postgres.so", dir ? dir : ".");
    ctx = sl_ctx_new();
    CHECK_INT(sl_registry_new(ctx, &reg), 0);
    if (sl_registry_open(ctx, reg, path, &plugin) != 0) {
        fprintf(stderr, "cannot load %s: %s\n", path, sl_ctx_errmsg(ctx));
        return 1;
    }
    desc = &plugin->desc;
    CHECK_INT(desc->role, SL_ROLE_SINK);
    CHECK_INT(desc->bottleneck, SL_IO);

    snprintf(cluster, sizeof cluster, "/tmp/sltest.%ld", (long)getpid());
    char out[64];
    if (cluster_cmd("start", out, sizeof out) != 0 || (port = atoi(out)) <= 0) {
        fprintf(stderr, "FAIL: cannot start a PostgreSQL cluster with %s (see above)\n", PGCLUSTER);
        return 1;
    }
    char conninfo[256];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d user=postgres dbname=postgres", port);
    admin_pg = PQconnectdb(conninfo);
    CHECK_INT(PQstatus(admin_pg), CONNECTION_OK);
    sql_on(admin_pg, "CREATE DATABASE sl");
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d user=postgres dbname=sl", port);
    admin = PQconnectdb(conninfo);
    CHECK_INT(PQstatus(admin), CONNECTION_OK);
    sql("SET application_name = 'sluice-test'");
    CHECK_INT(sl_loop_new(&loop), 0);

    test_schema_made_at_init();
    test_lookup_answers();
    test_store_replaces_and_rolls_back();
    test_bad_text_fails_the_document();
    test_values_are_parameters();
    test_calls_share_the_pool();
    test_connection_cut_between_calls_is_reopened();
    test_connection_cut_during_a_call_is_retryable();
    test_refused_connections_are_retryable();
    test_prune_by_root_and_run();
    test_query_ranks_by_cosine();
    test_newer_schema_refused();

    PQfinish(admin);
    PQfinish(admin_pg);
    sl_loop_free(loop);
    cluster_cmd("stop", NULL, 0);
    sl_registry_free(reg);
    sl_ctx_free(ctx);
    return check_done();
}
