/* queue_capacity.c - the job queue's own capacity on one PostgreSQL: lease
 * and ack operations per second with 1..8 concurrent clients, the ceiling
 * on how many sluice nodes one database can feed. Driven by
 * bench/queue_capacity.sh, which builds it (cmake --build B --target
 * bench-queue-capacity) and starts the server.
 *
 *   bench-queue-capacity --port PORT [--host 127.0.0.1] [--user postgres]
 *                        [--dbname postgres] [--prefix benchq_]
 *                        [--jobs 50000] [--clients "1 2 4 8"]
 *                        [--batches "1 16 64"] [--seconds 3]
 *                        [--chunk-rows 0] [--unlogged]
 *
 * Each client is one thread with its own connection, the way each node
 * holds its own. The statements are the queue's (see SQL below): a lease
 * takes up to B queued jobs with FOR UPDATE SKIP LOCKED and bumps each
 * one's fencing token; an ack is the store transaction reduced to what the
 * queue adds to it: BEGIN, upsert one document row (plus --chunk-rows
 * chunk rows of 500 bytes of text and a 384-float vector, generated on the
 * server), mark the job done WHERE id AND token (failing the transaction
 * when the token moved on), COMMIT, sent at once in libpq's pipeline mode
 * as sink-postgres sends a store. Three measures, each on a fresh queue of
 * --jobs queued jobs (TRUNCATE, fill, VACUUM ANALYZE, CHECKPOINT; none of
 * that timed):
 *   lease B   clients lease batches of B until --seconds pass or the
 *             queue is empty: lease statements/s and jobs leased/s;
 *   ack       every job leased first (token 1, untimed); clients ack
 *             disjoint jobs one transaction each: acks/s;
 *   cycle B   what a node's queue traffic is: lease B, ack each of them,
 *             again: jobs through lease + ack per second.
 * Rates are counted operations over the wall time from the common start
 * to the last client's end. It prints one Markdown table. Timings are for
 * people, never for assertions.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The queue's statements, with {jobs}, {documents} and {chunks} replaced
 * by the quoted table names. */
static const char *const SQL_SCHEMA = "DROP TABLE IF EXISTS {chunks}, {documents}, {jobs};"
                                      "CREATE {unlogged} TABLE {jobs}("
                                      " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                                      " uri text COLLATE \"C\" NOT NULL UNIQUE,"
                                      " bytes bigint,"
                                      " hash text,"
                                      " state text NOT NULL DEFAULT 'queued',"
                                      " attempts integer NOT NULL DEFAULT 0,"
                                      " token bigint NOT NULL DEFAULT 0,"
                                      " node text,"
                                      " lease_until timestamptz,"
                                      " run_after timestamptz NOT NULL DEFAULT now(),"
                                      " enqueued_at timestamptz NOT NULL DEFAULT now(),"
                                      " reason text);"
                                      "CREATE INDEX ON {jobs}(id) WHERE state = 'queued';"
                                      "CREATE INDEX ON {jobs}(lease_until) WHERE state = 'leased';"
                                      "CREATE {unlogged} TABLE {documents}("
                                      " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                                      " uri text COLLATE \"C\" NOT NULL UNIQUE,"
                                      " hash text NOT NULL,"
                                      " fingerprint text NOT NULL,"
                                      " media_type text,"
                                      " bytes bigint,"
                                      " title text,"
                                      " metadata jsonb NOT NULL DEFAULT '{}',"
                                      " chunk_count integer NOT NULL DEFAULT 0,"
                                      " stored_at timestamptz NOT NULL DEFAULT now(),"
                                      " stored_run bigint,"
                                      " seen_run bigint);"
                                      "CREATE {unlogged} TABLE {chunks}("
                                      " doc_id bigint NOT NULL REFERENCES {documents}(id) ON DELETE CASCADE,"
                                      " ordinal integer NOT NULL,"
                                      " text text NOT NULL,"
                                      " embedding real[],"
                                      " PRIMARY KEY (doc_id, ordinal));";

static const char *const SQL_FILL = "TRUNCATE {chunks}, {documents}, {jobs} RESTART IDENTITY;"
                                    "INSERT INTO {jobs}(uri, bytes, hash)"
                                    " SELECT '/corpus/' || lpad(g::text, 8, '0') || '.md', 2000, md5(g::text)"
                                    " FROM generate_series(1, {N}) g;";

static const char *const SQL_LEASE =
    "UPDATE {jobs} AS j SET state = 'leased', token = j.token + 1, attempts = j.attempts + 1,"
    " node = $2, lease_until = now() + interval '60 seconds'"
    " FROM (SELECT id FROM {jobs}"
    "       WHERE (state = 'queued' AND run_after <= now()) OR (state = 'leased' AND lease_until < now())"
    "       ORDER BY id LIMIT $1::integer FOR UPDATE SKIP LOCKED) AS l"
    " WHERE j.id = l.id RETURNING j.id, j.token, j.uri";

static const char *const SQL_DOC =
    "INSERT INTO {documents}(uri, hash, fingerprint, media_type, bytes, title, chunk_count, stored_run, "
    "seen_run)"
    " VALUES ($1, $2, 'fp', 'text/markdown', 2000, 'a title', $3::integer, 1, 1)"
    " ON CONFLICT (uri) DO UPDATE SET hash = excluded.hash, chunk_count = excluded.chunk_count,"
    " stored_at = now()";

static const char *const SQL_CHUNKS =
    "INSERT INTO {chunks}(doc_id, ordinal, text, embedding)"
    " SELECT d.id, g, repeat('chunk text ', 45), array_fill(0.5::real, ARRAY[384])"
    " FROM {documents} d, generate_series(1, $2::integer) g WHERE d.uri = $1";

/* The fencing check: 0 rows (the token moved on) fails the statement, so
 * the pipeline's COMMIT never runs and the document is not stored. */
static const char *const SQL_ACK =
    "WITH a AS (UPDATE {jobs} SET state = 'done', node = NULL, lease_until = NULL"
    "           WHERE id = $1::bigint AND token = $2::bigint AND state = 'leased' RETURNING id)"
    " SELECT CASE WHEN count(*) = 1 THEN 1"
    " ELSE ('lease lost: job ' || $1 || ', ' || count(*) || ' rows')::integer END FROM a";

/* --- small helpers --- */

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bench-queue-capacity: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* sql with each {name} replaced; malloc'd. */
static char *expand(const char *sql, const char *const *keys, const char *const *vals, int n) {
    size_t cap = strlen(sql) * 2 + 256, len = 0;
    char *out = malloc(cap);
    if (!out) die("out of memory");
    for (const char *p = sql; *p;) {
        int k = -1;
        if (*p == '{')
            for (int i = 0; i < n; i++)
                if (strncmp(p + 1, keys[i], strlen(keys[i])) == 0 && p[1 + strlen(keys[i])] == '}') k = i;
        const char *add = k >= 0 ? vals[k] : p;
        size_t alen = k >= 0 ? strlen(vals[k]) : 1;
        if (len + alen + 1 > cap) {
            cap = (len + alen + 1) * 2;
            char *grown = realloc(out, cap);
            if (!grown) die("out of memory");
            out = grown;
        }
        memcpy(out + len, add, alen);
        len += alen;
        p += k >= 0 ? strlen(keys[k]) + 2 : 1;
    }
    out[len] = '\0';
    return out;
}

typedef struct config {
    const char *host, *port, *user, *dbname, *prefix;
    long jobs;
    int clients[16], nclients;
    int batches[16], nbatches;
    double seconds;
    int chunk_rows;
    bool unlogged;
} config;

static config cfg = {.host = "127.0.0.1",
                     .user = "postgres",
                     .dbname = "postgres",
                     .prefix = "benchq_",
                     .jobs = 50000,
                     .seconds = 3.0};

static char *sql_schema, *sql_fill, *sql_lease, *sql_doc, *sql_chunks, *sql_ack;

static PGconn *connect_db(void) {
    const char *keys[] = {"host", "port", "user", "dbname", "application_name", NULL};
    const char *vals[] = {cfg.host, cfg.port, cfg.user, cfg.dbname, "bench-queue-capacity", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (PQstatus(c) != CONNECTION_OK) die("cannot connect: %s", PQerrorMessage(c));
    PGresult *r = PQexec(c, "SET client_min_messages = warning");
    PQclear(r);
    return c;
}

static void exec_ok(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) die("%s\n  in: %.200s", PQerrorMessage(c), sql);
    PQclear(r);
}

/* --- the clients --- */

enum measure { M_LEASE, M_ACK, M_CYCLE };

typedef struct job {
    char id[24], token[24], uri[64];
} job;

typedef struct client {
    pthread_t thread;
    int idx;
    PGconn *conn;
    enum measure what;
    int batch;
    job *mine; /* M_ACK: the jobs this client acks */
    long nmine;
    long ops, jobs; /* statements (leases) or transactions (acks); jobs moved */
    double end;
    char err[512];
} client;

static pthread_barrier_t start_line;
static double t_start, t_deadline;

/* One ack: the store transaction in one pipeline. 0, or -1 with c->err. */
static int ack(client *c, const job *j) {
    char nchunks[16];
    snprintf(nchunks, sizeof nchunks, "%d", cfg.chunk_rows);
    const char *doc[] = {j->uri, j->token, nchunks};
    const char *chunks[] = {j->uri, nchunks};
    const char *fence[] = {j->id, j->token};
    PGconn *pg = c->conn;
    int sent = 0;
    bool ok = PQsendQueryParams(pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) &&
              PQsendQueryParams(pg, sql_doc, 3, NULL, doc, NULL, NULL, 0);
    sent = 2;
    if (ok && cfg.chunk_rows > 0) {
        ok = PQsendQueryParams(pg, sql_chunks, 2, NULL, chunks, NULL, NULL, 0);
        sent++;
    }
    ok = ok && PQsendQueryParams(pg, sql_ack, 2, NULL, fence, NULL, NULL, 0) &&
         PQsendQueryParams(pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) && PQpipelineSync(pg);
    sent += 2;
    if (!ok) {
        snprintf(c->err, sizeof c->err, "send: %s", PQerrorMessage(pg));
        return -1;
    }
    int failed = 0;
    for (int i = 0; i < sent; i++) {
        PGresult *r;
        while ((r = PQgetResult(pg)) != NULL) {
            ExecStatusType st = PQresultStatus(r);
            if (st == PGRES_FATAL_ERROR && !failed) {
                failed = 1;
                snprintf(c->err, sizeof c->err, "ack %s: %s", j->id, PQresultErrorMessage(r));
            }
            PQclear(r);
        }
    }
    PGresult *r = PQgetResult(pg); /* the sync */
    if (!r || PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
        if (!failed) snprintf(c->err, sizeof c->err, "ack %s: no sync", j->id);
        failed = 1;
    }
    PQclear(r);
    if (failed && PQtransactionStatus(pg) == PQTRANS_INERROR) {
        PQsendQueryParams(pg, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0);
        PQpipelineSync(pg);
        while ((r = PQgetResult(pg)) != NULL) PQclear(r);
        r = PQgetResult(pg);
        PQclear(r);
    }
    return failed ? -1 : 0;
}

/* One lease of up to c->batch jobs into out (when not NULL): how many, or -1. */
static long lease(client *c, job *out) {
    char b[16], node[32];
    snprintf(b, sizeof b, "%d", c->batch);
    snprintf(node, sizeof node, "bench-%d", c->idx);
    const char *params[] = {b, node};
    PGconn *pg = c->conn;
    if (!PQsendQueryParams(pg, sql_lease, 2, NULL, params, NULL, NULL, 0) || !PQpipelineSync(pg)) {
        snprintf(c->err, sizeof c->err, "lease: %s", PQerrorMessage(pg));
        return -1;
    }
    PGresult *r = PQgetResult(pg), *x;
    while ((x = PQgetResult(pg)) != NULL) PQclear(x); /* the statement's end */
    x = PQgetResult(pg);                              /* the sync */
    bool synced = x && PQresultStatus(x) == PGRES_PIPELINE_SYNC;
    PQclear(x);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || !synced) {
        snprintf(c->err, sizeof c->err, "lease: %s", r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
        PQclear(r);
        return -1;
    }
    long n = PQntuples(r);
    for (long i = 0; out && i < n; i++) {
        snprintf(out[i].id, sizeof out[i].id, "%s", PQgetvalue(r, (int)i, 0));
        snprintf(out[i].token, sizeof out[i].token, "%s", PQgetvalue(r, (int)i, 1));
        snprintf(out[i].uri, sizeof out[i].uri, "%s", PQgetvalue(r, (int)i, 2));
    }
    PQclear(r);
    return n;
}

static void *client_main(void *arg) {
    client *c = arg;
    job *batch = c->what == M_CYCLE ? calloc((size_t)c->batch, sizeof *batch) : NULL;
    pthread_barrier_wait(&start_line);
    long next = 0;
    while (!c->err[0] && now_s() < t_deadline) {
        if (c->what == M_LEASE) {
            long n = lease(c, NULL);
            if (n <= 0) break;
            c->ops++;
            c->jobs += n;
        } else if (c->what == M_ACK) {
            if (next >= c->nmine) break;
            if (ack(c, &c->mine[next++]) != 0) break;
            c->ops++;
            c->jobs++;
        } else {
            long n = lease(c, batch);
            if (n <= 0) break;
            c->ops++;
            for (long i = 0; i < n; i++) {
                if (ack(c, &batch[i]) != 0) break;
                c->ops++;
                c->jobs++;
            }
        }
    }
    c->end = now_s();
    free(batch);
    return NULL;
}

/* A fresh queue of cfg.jobs queued jobs. */
static void refill(PGconn *admin) {
    char n[32], vac[256];
    snprintf(n, sizeof n, "%ld", cfg.jobs);
    const char *k[] = {"N"};
    const char *v[] = {n};
    char *fill = expand(sql_fill, k, v, 1);
    exec_ok(admin, fill);
    free(fill);
    snprintf(vac, sizeof vac, "VACUUM ANALYZE \"%sjobs\"", cfg.prefix);
    exec_ok(admin, vac);
    exec_ok(admin, "CHECKPOINT");
}

typedef struct result {
    long ops, jobs;
    double wall;
} result;

static result run(PGconn *admin, enum measure what, int nclients, int batch) {
    refill(admin);
    client *cs = calloc((size_t)nclients, sizeof *cs);
    if (!cs) die("out of memory");
    if (what == M_ACK) {
        /* every job leased once (token 1), dealt out round robin */
        char sql[512];
        snprintf(sql, sizeof sql,
                 "UPDATE \"%sjobs\" SET state = 'leased', token = token + 1, attempts = attempts + 1,"
                 " node = 'bench', lease_until = now() + interval '1 hour' RETURNING id, token, uri",
                 cfg.prefix);
        PGresult *r = PQexec(admin, sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) die("lease all: %s", PQerrorMessage(admin));
        long n = PQntuples(r);
        for (int i = 0; i < nclients; i++) {
            cs[i].mine = calloc((size_t)(n / nclients + 1), sizeof(job));
            if (!cs[i].mine) die("out of memory");
        }
        for (long i = 0; i < n; i++) {
            client *c = &cs[i % nclients];
            job *j = &c->mine[c->nmine++];
            snprintf(j->id, sizeof j->id, "%s", PQgetvalue(r, (int)i, 0));
            snprintf(j->token, sizeof j->token, "%s", PQgetvalue(r, (int)i, 1));
            snprintf(j->uri, sizeof j->uri, "%s", PQgetvalue(r, (int)i, 2));
        }
        PQclear(r);
        char vac[256];
        snprintf(vac, sizeof vac, "VACUUM ANALYZE \"%sjobs\"", cfg.prefix);
        exec_ok(admin, vac);
        exec_ok(admin, "CHECKPOINT");
    }
    for (int i = 0; i < nclients; i++) {
        client *c = &cs[i];
        c->idx = i;
        c->what = what;
        c->batch = batch;
        c->conn = connect_db();
        if (PQsetnonblocking(c->conn, 0) != 0 || PQenterPipelineMode(c->conn) != 1)
            die("pipeline mode: %s", PQerrorMessage(c->conn));
    }
    if (pthread_barrier_init(&start_line, NULL, (unsigned)nclients + 1) != 0) die("barrier");
    for (int i = 0; i < nclients; i++)
        if (pthread_create(&cs[i].thread, NULL, client_main, &cs[i]) != 0) die("thread: %s", strerror(errno));
    t_start = now_s();
    t_deadline = t_start + cfg.seconds;
    pthread_barrier_wait(&start_line);
    result res = {0, 0, 0};
    double end = t_start;
    for (int i = 0; i < nclients; i++) {
        pthread_join(cs[i].thread, NULL);
        if (cs[i].err[0]) die("client %d: %s", i, cs[i].err);
        res.ops += cs[i].ops;
        res.jobs += cs[i].jobs;
        if (cs[i].end > end) end = cs[i].end;
        PQfinish(cs[i].conn);
        free(cs[i].mine);
    }
    pthread_barrier_destroy(&start_line);
    free(cs);
    res.wall = end - t_start;
    /* nothing acked twice, nothing acked without its document */
    if (what != M_LEASE) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "SELECT (SELECT count(*) FROM \"%sjobs\" WHERE state = 'done'),"
                 " (SELECT count(*) FROM \"%sdocuments\")",
                 cfg.prefix, cfg.prefix);
        PGresult *r = PQexec(admin, sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) die("check: %s", PQerrorMessage(admin));
        long done = atol(PQgetvalue(r, 0, 0)), docs = atol(PQgetvalue(r, 0, 1));
        PQclear(r);
        long acks = what == M_ACK ? res.ops : res.jobs;
        if (done != acks || docs != acks)
            die("%ld acks counted, but %ld jobs done and %ld documents stored", acks, done, docs);
    }
    return res;
}

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    char *end;
    while (*s) {
        while (*s == ' ' || *s == ',') s++;
        if (!*s) break;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1000 || n == max) die("bad list '%s'", s);
        out[n++] = (int)v;
        s = end;
    }
    if (n == 0) die("empty list");
    return n;
}

static void usage(void) {
    fputs("usage: bench-queue-capacity --port PORT [--host H] [--user U] [--dbname D] [--prefix P]\n"
          "       [--jobs N] [--clients \"1 2 4 8\"] [--batches \"1 16 64\"] [--seconds S]\n"
          "       [--chunk-rows K] [--unlogged]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv) {
    const char *clients = "1 2 4 8", *batches = "1 16 64";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--unlogged") == 0) {
            cfg.unlogged = true;
            continue;
        }
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (strcmp(a, "--host") == 0)
            cfg.host = v;
        else if (strcmp(a, "--port") == 0)
            cfg.port = v;
        else if (strcmp(a, "--user") == 0)
            cfg.user = v;
        else if (strcmp(a, "--dbname") == 0)
            cfg.dbname = v;
        else if (strcmp(a, "--prefix") == 0)
            cfg.prefix = v;
        else if (strcmp(a, "--jobs") == 0)
            cfg.jobs = atol(v);
        else if (strcmp(a, "--clients") == 0)
            clients = v;
        else if (strcmp(a, "--batches") == 0)
            batches = v;
        else if (strcmp(a, "--seconds") == 0)
            cfg.seconds = atof(v);
        else if (strcmp(a, "--chunk-rows") == 0)
            cfg.chunk_rows = atoi(v);
        else
            usage();
    }
    if (!cfg.port || cfg.jobs < 1 || cfg.seconds <= 0 || cfg.chunk_rows < 0) usage();
    for (const char *p = cfg.prefix; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            die("--prefix: lower-case letters, digits and _ only");
    cfg.nclients = parse_list(clients, cfg.clients, 16);
    cfg.nbatches = parse_list(batches, cfg.batches, 16);

    char jobs[128], documents[128], chunks[128];
    snprintf(jobs, sizeof jobs, "\"%sjobs\"", cfg.prefix);
    snprintf(documents, sizeof documents, "\"%sdocuments\"", cfg.prefix);
    snprintf(chunks, sizeof chunks, "\"%schunks\"", cfg.prefix);
    const char *keys[] = {"jobs", "documents", "chunks", "unlogged"};
    const char *vals[] = {jobs, documents, chunks, cfg.unlogged ? "UNLOGGED" : ""};
    sql_schema = expand(SQL_SCHEMA, keys, vals, 4);
    sql_fill = expand(SQL_FILL, keys, vals, 4);
    sql_lease = expand(SQL_LEASE, keys, vals, 4);
    sql_doc = expand(SQL_DOC, keys, vals, 4);
    sql_chunks = expand(SQL_CHUNKS, keys, vals, 4);
    sql_ack = expand(SQL_ACK, keys, vals, 4);

    PGconn *admin = connect_db();
    exec_ok(admin, sql_schema);
    PGresult *r = PQexec(admin, "SELECT current_setting('server_version'), current_setting('fsync'),"
                                " current_setting('synchronous_commit')");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) die("%s", PQerrorMessage(admin));
    printf("PostgreSQL %s on %s:%s (fsync %s, synchronous_commit %s), %s tables; %ld jobs per measure,"
           " at most %.1f s each;\nack = BEGIN, upsert a document row%s, mark the job done WHERE id AND"
           " token, COMMIT (one pipeline)\n\n",
           PQgetvalue(r, 0, 0), cfg.host, cfg.port, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2),
           cfg.unlogged ? "UNLOGGED" : "logged", cfg.jobs, cfg.seconds,
           cfg.chunk_rows ? " and its chunk rows" : "");
    PQclear(r);
    if (cfg.chunk_rows)
        printf("(each ack also writes %d chunk rows of 500 bytes of text and 384 real)\n\n", cfg.chunk_rows);

    printf("| %-22s | %7s | %9s | %8s | %11s | %11s |\n", "measure", "clients", "ops", "seconds", "ops/s",
           "jobs/s");
    printf("|------------------------|--------:|----------:|---------:|------------:|------------:|\n");
    for (int b = 0; b < cfg.nbatches; b++)
        for (int k = 0; k < cfg.nclients; k++) {
            result res = run(admin, M_LEASE, cfg.clients[k], cfg.batches[b]);
            char name[64];
            snprintf(name, sizeof name, "lease, batch %d", cfg.batches[b]);
            printf("| %-22s | %7d | %9ld | %8.2f | %11.0f | %11.0f |\n", name, cfg.clients[k], res.ops,
                   res.wall, res.ops / res.wall, res.jobs / res.wall);
            fflush(stdout);
        }
    for (int k = 0; k < cfg.nclients; k++) {
        result res = run(admin, M_ACK, cfg.clients[k], 1);
        printf("| %-22s | %7d | %9ld | %8.2f | %11.0f | %11.0f |\n", "ack (store txn)", cfg.clients[k],
               res.ops, res.wall, res.ops / res.wall, res.jobs / res.wall);
        fflush(stdout);
    }
    for (int b = 0; b < cfg.nbatches; b++)
        for (int k = 0; k < cfg.nclients; k++) {
            result res = run(admin, M_CYCLE, cfg.clients[k], cfg.batches[b]);
            char name[64];
            snprintf(name, sizeof name, "lease %d + acks", cfg.batches[b]);
            printf("| %-22s | %7d | %9ld | %8.2f | %11.0f | %11.0f |\n", name, cfg.clients[k], res.ops,
                   res.wall, res.ops / res.wall, res.jobs / res.wall);
            fflush(stdout);
        }
    char drop[512];
    snprintf(drop, sizeof drop, "DROP TABLE %s, %s, %s", chunks, documents, jobs);
    exec_ok(admin, drop);
    PQfinish(admin);
    free(sql_schema);
    free(sql_fill);
    free(sql_lease);
    free(sql_doc);
    free(sql_chunks);
    free(sql_ack);
    return 0;
}
