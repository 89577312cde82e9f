/* queue_capacity.c - the job queue's own capacity on one PostgreSQL: lease
 * and ack operations per second with 1..8 concurrent clients, the ceiling
 * on how many sluice nodes one database can feed. Driven by
 * bench/queue_capacity.sh, which builds it (cmake --build B --target
 * bench-queue-capacity) and starts the server.
 *
 *   bench-queue-capacity --port PORT [--host 127.0.0.1] [--user postgres]
 *                        [--dbname postgres] [--prefix benchq_]
 *                        [--jobs 50000] [--clients "1 2 4 8"]
 *                        [--batches "1 16 64"] [--seconds 2]
 *                        [--trials 3] [--chunk-rows 0] [--unlogged]
 *
 * Each client is one thread with its own connection, the way each node
 * holds its own. The tables and statements are sink-postgres's own: this
 * program is linked with the plugin's schema.c and queue.c, makes the
 * store with pg_schema_open (documents, chunks, failures, the jobs table
 * and its ack function) and takes every statement from pg_queue_names. A
 * lease is QQ_LEASE: up to B queued jobs taken with FOR UPDATE SKIP LOCKED,
 * each one's fencing token bumped. An ack is the store transaction reduced
 * to what the queue adds to it: BEGIN, upsert one document row (plus
 * --chunk-rows chunk rows of 500 bytes of text and a 384-float vector,
 * made on the server; the keyword column is computed as in a real store),
 * QQ_ACK (the job done WHERE id AND token, raising when the token moved
 * on), COMMIT, sent at once in libpq's pipeline mode as sink-postgres
 * sends a store. Each measure starts from a fresh queue of --jobs jobs put
 * in by QQ_ENQUEUE, 1,000 per statement (TRUNCATE, enqueue, VACUUM
 * ANALYZE, CHECKPOINT; the first enqueue is timed and printed):
 *   lease B   clients lease batches of B until --seconds pass or the
 *             queue is empty: lease statements/s and jobs leased/s;
 *   store     every job leased first (untimed); clients store disjoint
 *             jobs' documents, one transaction each, without the ack: the
 *             store transaction alone, to compare with
 *   ack       the same with the queue's ack in it: acks/s;
 *   cycle B   what a node's queue traffic is: lease B, ack each of them,
 *             again: jobs through lease + ack per second.
 * With --unlogged the jobs table is made UNLOGGED (ALTER TABLE ... SET
 * UNLOGGED; the documents stay logged). Rates are counted operations over
 * the wall time from the common start to the last client's end; each
 * measure runs --trials times and the table shows the median trial and
 * the range of ops/s over the trials. It prints one Markdown table. Timings are for people, never for assertions.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sink_postgres.h"

/* What the store transaction writes besides the ack, in the sink's own
 * tables (pg_schema_open made them), their quoted names for the %s. The document upsert has the sink's shape (Q_UPSERT in
 * sink_postgres.c, which keeps its statements to itself). */
static const char *const SQL_DOC =
    "INSERT INTO %s AS d(uri, hash, fingerprint, media_type, bytes, title, metadata, chunk_count,"
    " stored_run, seen_run) VALUES ($1, md5($1), 'fp', 'text/markdown', 2000, 'a title', '{}', $2::integer, "
    "1, 1)"
    " ON CONFLICT (uri) DO UPDATE SET hash = excluded.hash, fingerprint = excluded.fingerprint,"
    " chunk_count = excluded.chunk_count, stored_at = now(), stored_run = excluded.stored_run,"
    " seen_run = excluded.seen_run";

static const char *const SQL_CHUNKS =
    "INSERT INTO %s(doc_id, ordinal, text, dim, embedding)"
    " SELECT d.id, g, repeat('chunk text ', 45), 384, array_fill(0.5::real, ARRAY[384])"
    " FROM %s d, generate_series(1, $2::integer) g WHERE d.uri = $1";

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

typedef struct config {
    const char *host, *port, *user, *dbname, *prefix;
    long jobs;
    int clients[16], nclients;
    int batches[16], nbatches;
    double seconds;
    int chunk_rows;
    int trials;
    bool unlogged;
} config;

static config cfg = {.host = "127.0.0.1",
                     .user = "postgres",
                     .dbname = "postgres",
                     .prefix = "benchq_",
                     .jobs = 50000,
                     .seconds = 2.0,
                     .trials = 3};

static pg_schema schema;
static pg_queue queue;
static char *sql_doc, *sql_chunks;

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

/* sql with %s replaced by each table name in turn (at most 3); malloc'd. */
static char *with_names(const char *f, const char *a, const char *b, const char *c) {
    size_t n = strlen(f) + strlen(a) + (b ? strlen(b) : 0) + (c ? strlen(c) : 0) + 1;
    char *out = malloc(n);
    if (!out) die("out of memory");
    snprintf(out, n, f, a, b, c);
    return out;
}

/* --- the clients --- */

enum measure { M_LEASE, M_ACK, M_STORE, M_CYCLE };

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

/* Sends nothing more and reads the pipeline up to its sync: how many
 * statements failed (the first one's message into err), or -1 when the
 * sync never came. r0, when not NULL, keeps the first result. */
static int drain(PGconn *pg, int nstmts, char *err, size_t errlen, PGresult **r0) {
    int failed = 0;
    for (int i = 0; i < nstmts; i++) {
        PGresult *r;
        while ((r = PQgetResult(pg)) != NULL) {
            ExecStatusType st = PQresultStatus(r);
            if ((st == PGRES_FATAL_ERROR || st == PGRES_PIPELINE_ABORTED) && !failed++)
                snprintf(err, errlen, "%s", st == PGRES_FATAL_ERROR ? PQresultErrorMessage(r) : "aborted");
            if (i == 0 && r0 && !*r0)
                *r0 = r;
            else
                PQclear(r);
        }
    }
    PGresult *r = PQgetResult(pg);
    bool synced = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
    PQclear(r);
    if (!synced) {
        snprintf(err, errlen, "no sync: %s", PQerrorMessage(pg));
        return -1;
    }
    return failed;
}

/* One ack: the store transaction in one pipeline (without the queue's
 * ack when !fenced: the store alone). 0, or -1 with c->err. */
static int ack(client *c, const job *j, bool fenced) {
    char nchunks[16];
    snprintf(nchunks, sizeof nchunks, "%d", cfg.chunk_rows);
    const char *doc[] = {j->uri, nchunks};
    const char *fence[] = {j->id, j->token};
    PGconn *pg = c->conn;
    int n = 0;
    bool ok =
        PQsendQueryParams(pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) && ++n &&
        PQsendQueryParams(pg, sql_doc, 2, NULL, doc, NULL, NULL, 0) && ++n &&
        (cfg.chunk_rows == 0 || (PQsendQueryParams(pg, sql_chunks, 2, NULL, doc, NULL, NULL, 0) && ++n)) &&
        (!fenced || (PQsendQueryParams(pg, queue.sql[QQ_ACK], 2, NULL, fence, NULL, NULL, 0) && ++n)) &&
        PQsendQueryParams(pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) && ++n && PQpipelineSync(pg);
    if (!ok) {
        snprintf(c->err, sizeof c->err, "ack %s: send: %s", j->id, PQerrorMessage(pg));
        return -1;
    }
    char why[400];
    int failed = drain(pg, n, why, sizeof why, NULL);
    if (failed == 0) return 0;
    snprintf(c->err, sizeof c->err, "ack %s: %s", j->id, why);
    if (failed > 0 && PQtransactionStatus(pg) == PQTRANS_INERROR &&
        PQsendQueryParams(pg, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0) && PQpipelineSync(pg))
        drain(pg, 1, why, sizeof why, NULL);
    return -1;
}

/* One lease of up to c->batch jobs into out (when not NULL): how many, or -1. */
static long lease(client *c, job *out) {
    char b[16], owner[32];
    snprintf(b, sizeof b, "%d", c->batch);
    snprintf(owner, sizeof owner, "bench:%d", c->idx);
    const char *params[] = {owner, b, "60000"};
    PGconn *pg = c->conn;
    if (!PQsendQueryParams(pg, queue.sql[QQ_LEASE], 3, NULL, params, NULL, NULL, 0) || !PQpipelineSync(pg)) {
        snprintf(c->err, sizeof c->err, "lease: %s", PQerrorMessage(pg));
        return -1;
    }
    PGresult *r = NULL;
    char why[400];
    if (drain(pg, 1, why, sizeof why, &r) != 0 || PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(c->err, sizeof c->err, "lease: %s", why);
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
        } else if (c->what == M_ACK || c->what == M_STORE) {
            if (next >= c->nmine) break;
            if (ack(c, &c->mine[next++], c->what == M_ACK) != 0) break;
            c->ops++;
            c->jobs++;
        } else {
            long n = batch ? lease(c, batch) : -1;
            if (n <= 0) break;
            c->ops++;
            for (long i = 0; i < n; i++) {
                if (ack(c, &batch[i], true) != 0) break;
                c->ops++;
                c->jobs++;
            }
        }
    }
    c->end = now_s();
    free(batch);
    return NULL;
}

/* A fresh queue of cfg.jobs jobs, put in by the queue's own enqueue
 * statement, 1,000 per statement: its seconds. */
static double refill(PGconn *admin) {
    char *trunc = with_names("TRUNCATE %s, %s, %s", queue.jobs, schema.names.chunks, schema.names.documents);
    exec_ok(admin, trunc);
    free(trunc);
    size_t cap = 1000 * 40 + 64;
    char *uris = malloc(cap), *sizes = malloc(cap), *hashes = malloc(cap), *fps = malloc(cap);
    if (!uris || !sizes || !hashes || !fps) die("out of memory");
    double t0 = now_s();
    for (long from = 1; from <= cfg.jobs; from += 1000) {
        size_t nu = 0, ns = 0, nh = 0, nf = 0;
        uris[nu++] = sizes[ns++] = hashes[nh++] = fps[nf++] = '{';
        for (long i = from; i < from + 1000 && i <= cfg.jobs; i++) {
            const char *sep = i > from ? "," : "";
            nu += (size_t)snprintf(uris + nu, cap - nu, "%s/corpus/%08ld.md", sep, i);
            ns += (size_t)snprintf(sizes + ns, cap - ns, "%s2000", sep);
            nh += (size_t)snprintf(hashes + nh, cap - nh, "%sh%ld", sep, i);
            nf += (size_t)snprintf(fps + nf, cap - nf, "%sfp", sep);
        }
        snprintf(uris + nu, cap - nu, "}");
        snprintf(sizes + ns, cap - ns, "}");
        snprintf(hashes + nh, cap - nh, "}");
        snprintf(fps + nf, cap - nf, "}");
        const char *params[] = {uris, sizes, hashes, fps};
        PGresult *r = PQexecParams(admin, queue.sql[QQ_ENQUEUE], 4, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) die("enqueue: %s", PQerrorMessage(admin));
        PQclear(r);
    }
    double took = now_s() - t0;
    free(uris);
    free(sizes);
    free(hashes);
    free(fps);
    char *vac = with_names("VACUUM ANALYZE %s", queue.jobs, NULL, NULL);
    exec_ok(admin, vac);
    free(vac);
    exec_ok(admin, "CHECKPOINT");
    return took;
}

typedef struct result {
    long ops, jobs;
    double wall;
} result;

static double enqueue_s = -1;

static result run(PGconn *admin, enum measure what, int nclients, int batch) {
    double e = refill(admin);
    if (enqueue_s < 0) enqueue_s = e;
    client *cs = calloc((size_t)nclients, sizeof *cs);
    if (!cs) die("out of memory");
    for (int i = 0; i < nclients; i++) {
        client *c = &cs[i];
        c->idx = i;
        c->what = what;
        c->batch = batch;
        c->conn = connect_db();
        if (PQsetnonblocking(c->conn, 0) != 0 || PQenterPipelineMode(c->conn) != 1)
            die("pipeline mode: %s", PQerrorMessage(c->conn));
    }
    if (what == M_ACK || what == M_STORE) {
        /* every job leased once by the queue's lease, dealt out round robin */
        client all = {.idx = 0, .conn = cs[0].conn, .batch = 1000};
        job *leased = calloc((size_t)cfg.jobs, sizeof *leased);
        if (!leased) die("out of memory");
        long n = 0, got;
        while (n < cfg.jobs && (got = lease(&all, leased + n)) > 0) n += got;
        if (all.err[0]) die("%s", all.err);
        for (int i = 0; i < nclients; i++) {
            cs[i].mine = calloc((size_t)(n / nclients + 1), sizeof(job));
            if (!cs[i].mine) die("out of memory");
        }
        for (long i = 0; i < n; i++) cs[i % nclients].mine[cs[i % nclients].nmine++] = leased[i];
        free(leased);
        char *vac = with_names("VACUUM ANALYZE %s", queue.jobs, NULL, NULL);
        exec_ok(admin, vac);
        free(vac);
        exec_ok(admin, "CHECKPOINT");
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
    /* every ack counted is one job done and one document stored */
    if (what != M_LEASE) {
        char *sql =
            with_names("SELECT (SELECT count(*) FROM %s WHERE state = 'done'), (SELECT count(*) FROM %s)",
                       queue.jobs, schema.names.documents, NULL);
        PGresult *r = PQexec(admin, sql);
        free(sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) die("check: %s", PQerrorMessage(admin));
        long done = atol(PQgetvalue(r, 0, 0)), docs = atol(PQgetvalue(r, 0, 1));
        PQclear(r);
        long acks = what == M_STORE ? 0 : res.jobs;
        if (done != acks || docs != res.jobs)
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
          "       [--chunk-rows K] [--trials 3] [--unlogged]\n",
          stderr);
    exit(2);
}

/* Runs one measure cfg.trials times and prints the median trial (by
 * ops/s) with the lowest and highest ops/s of the trials. */
static void row(PGconn *admin, const char *name, enum measure what, int clients, int batch) {
    result t[16];
    for (int i = 0; i < cfg.trials; i++) t[i] = run(admin, what, clients, batch);
    for (int i = 1; i < cfg.trials; i++) /* insertion sort by rate */
        for (int j = i; j > 0 && t[j].ops / t[j].wall < t[j - 1].ops / t[j - 1].wall; j--) {
            result x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    result m = t[cfg.trials / 2];
    char range[32];
    snprintf(range, sizeof range, "%.0f-%.0f", t[0].ops / t[0].wall,
             t[cfg.trials - 1].ops / t[cfg.trials - 1].wall);
    printf("| %-22s | %7d | %9ld | %8.2f | %11.0f | %11s | %11.0f |\n", name, clients, m.ops, m.wall,
           m.ops / m.wall, range, m.jobs / m.wall);
    fflush(stdout);
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
        else if (strcmp(a, "--trials") == 0)
            cfg.trials = atoi(v);
        else if (strcmp(a, "--chunk-rows") == 0)
            cfg.chunk_rows = atoi(v);
        else
            usage();
    }
    if (!cfg.port || cfg.jobs < 1 || cfg.jobs > 10000000 || cfg.seconds <= 0 || cfg.chunk_rows < 0 ||
        cfg.trials < 1 || cfg.trials > 16)
        usage();
    for (const char *p = cfg.prefix; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            die("--prefix: lower-case letters, digits and _ only");
    cfg.nclients = parse_list(clients, cfg.clients, 16);
    cfg.nbatches = parse_list(batches, cfg.batches, 16);

    /* the store and its queue, made as sink-postgres makes them */
    PGconn *admin = connect_db();
    pg_config pc = {.host = cfg.host,
                    .port = atol(cfg.port),
                    .dbname = cfg.dbname,
                    .user = cfg.user,
                    .table_prefix = cfg.prefix,
                    .pool_size = 1,
                    .vector = "array"};
    char err[1024];
    char *drop = with_names("DROP TABLE IF EXISTS \"%sjobs\", \"%schunks\", \"%sdocuments\"", cfg.prefix,
                            cfg.prefix, cfg.prefix);
    exec_ok(admin, drop);
    free(drop);
    drop = with_names("DROP TABLE IF EXISTS \"%sruns\", \"%smeta\", \"%sfailures\"", cfg.prefix, cfg.prefix,
                      cfg.prefix);
    exec_ok(admin, drop);
    free(drop);
    if (pg_schema_open(admin, &pc, &schema, err, sizeof err) != 0) die("making the store: %s", err);
    if (pg_queue_names(admin, &pc, &schema.names, &queue) != 0) die("out of memory");
    if (cfg.unlogged) {
        char *alter = with_names("ALTER TABLE %s SET UNLOGGED", queue.jobs, NULL, NULL);
        exec_ok(admin, alter);
        free(alter);
    }
    sql_doc = with_names(SQL_DOC, schema.names.documents, NULL, NULL);
    sql_chunks = with_names(SQL_CHUNKS, schema.names.chunks, schema.names.documents, NULL);

    PGresult *r = PQexec(admin, "SELECT current_setting('server_version'), current_setting('fsync'),"
                                " current_setting('synchronous_commit')");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) die("%s", PQerrorMessage(admin));
    printf("PostgreSQL %s on %s:%s (fsync %s, synchronous_commit %s); jobs table %s, store tables logged;\n"
           "%ld jobs per measure, at most %.1f s each, median of %d trials; ack = BEGIN, upsert a document "
           "row%s, the queue's ack,"
           " COMMIT (one pipeline)\n\n",
           PQgetvalue(r, 0, 0), cfg.host, cfg.port, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2),
           cfg.unlogged ? "UNLOGGED" : "logged", cfg.jobs, cfg.seconds, cfg.trials,
           cfg.chunk_rows ? " and its chunk rows (500 bytes of text, 384 real each)" : "");
    PQclear(r);

    printf("| %-22s | %7s | %9s | %8s | %11s | %11s | %11s |\n", "measure", "clients", "ops", "seconds",
           "ops/s", "range", "jobs/s");
    printf("|------------------------|--------:|----------:|---------:|------------:|------------:|----------"
           "--:|\n");
    char name[64];
    for (int b = 0; b < cfg.nbatches; b++)
        for (int k = 0; k < cfg.nclients; k++) {
            snprintf(name, sizeof name, "lease, batch %d", cfg.batches[b]);
            row(admin, name, M_LEASE, cfg.clients[k], cfg.batches[b]);
        }
    for (int k = 0; k < cfg.nclients; k++) row(admin, "store txn, no ack", M_STORE, cfg.clients[k], 1);
    for (int k = 0; k < cfg.nclients; k++) row(admin, "store txn + ack", M_ACK, cfg.clients[k], 1);
    for (int b = 0; b < cfg.nbatches; b++)
        for (int k = 0; k < cfg.nclients; k++) {
            snprintf(name, sizeof name, "lease %d + acks", cfg.batches[b]);
            row(admin, name, M_CYCLE, cfg.clients[k], cfg.batches[b]);
        }
    printf("\nenqueue (1 client, 1,000 jobs per statement): %ld jobs in %.2f s, %.0f jobs/s\n", cfg.jobs,
           enqueue_s, cfg.jobs / enqueue_s);

    drop = with_names("DROP TABLE %s, %s, %s", queue.jobs, schema.names.chunks, schema.names.documents);
    exec_ok(admin, drop);
    free(drop);
    drop = with_names("DROP TABLE %s, %s, %s", schema.names.runs, schema.names.meta, schema.names.failures);
    exec_ok(admin, drop);
    free(drop);
    char *fn = with_names("DROP FUNCTION %s", queue.ack_fn, NULL, NULL);
    exec_ok(admin, fn);
    free(fn);
    PQfinish(admin);
    pg_queue_free(&queue);
    pg_schema_free(&schema);
    free(sql_doc);
    free(sql_chunks);
    return 0;
}
