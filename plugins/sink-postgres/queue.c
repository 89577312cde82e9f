/* queue.c - the job queue that lets many sluice nodes share one corpus
 * (`sluice enqueue`, `sluice run --queue`, `sluice queue status`): a table
 * in the sink's own database, leased with FOR UPDATE SKIP LOCKED, as pgmq,
 * River and Solid Queue do. No server of our own: PostgreSQL coordinates.
 *
 * The table, [schema.]PREFIXjobs, is made with the sink's schema (schema.c
 * calls pg_queue_create inside its migration transaction). One row per job:
 *
 *   id            bigint identity
 *   uri           the document (a path on a shared mount, or a URI)
 *   size, hash    what enqueue knew of it (hash: the core's content hash)
 *   fingerprint   the route's fingerprint at enqueue (with hash: "unchanged")
 *   state         queued | leased | done | dead
 *   attempts      leases taken (an expired lease counts here only)
 *   failures      times a node failed the document (dead at max_attempts)
 *   next_try      not leased before (exponential backoff after a failure)
 *   lease_owner   the node holding it: "host:pid:start"
 *   lease_expires the lease is lost after this unless heartbeated
 *   token         the fencing token: +1 on EVERY lease
 *   last_error    the latest failure, "stage: reason"
 *   enqueued_at, leased_at, done_at, done_by   timestamps and who acked
 *
 * Indexes: one open job per uri (unique, partial: state queued or leased),
 * the leasable jobs (partial: queued, by next_try), the leases by expiry
 * (partial: leased), the acks by time (partial: done, for throughput).
 *
 * The statements, each named once (pg_queue.sql[QQ_*]):
 *
 *   QQ_ACK       in the store's transaction, after BEGIN: SELECT
 *                PREFIXqueue_ack(id, token), a function made with the table
 *                that sets the job done WHERE id AND token AND state =
 *                'leased' and, when no row matched, raises SQLSTATE SLQ01
 *                "lease lost: job N token T was re-leased; commit refused":
 *                the whole transaction rolls back, the document fails with
 *                that reason. Stored and acked together, or not at all. A
 *                job already done with that same token passes: only this
 *                lease had it, so it is this lease's own commit whose answer
 *                a lost connection kept (the store is retried, pool.c).
 *   QQ_FENCE     the same check without the ack, for a child of a leased
 *                document (sl_doc_queue_fence): SELECT PREFIXqueue_fence(
 *                id, token) locks the job's row FOR SHARE while it is
 *                leased with that token, else raises SLQ01 as the ack does;
 *                the parent's store, after its children's, acks the job
 *   QQ_DONE      the same ack outside a store, for a document that needed
 *                none (stored unchanged): 0 rows means the lease was lost,
 *                which is harmless here (nothing was written).
 *   QQ_RECLAIM   expired leases back to queued (owner cleared; token kept,
 *                so the late owner's ack still fails: its state is no
 *                longer 'leased' with that token once re-leased); rows
 *                another transaction holds are skipped, not waited for
 *   QQ_LEASE     up to $2 leasable jobs: SELECT ... FOR UPDATE SKIP LOCKED,
 *                then state leased, owner, expiry now() + $3 ms, token + 1,
 *                attempts + 1; returns id, token, uri, attempts, size
 *   QQ_HEARTBEAT every lease of node $1 extended to now() + $2 ms
 *   QQ_FAIL      a failed document's job: failures + 1, last_error, back to
 *                queued at now() + backoff (base $5 ms doubled per failure,
 *                at most an hour), or dead at $4 failures, when it also
 *                enters the sink's failure list (`sluice failed`)
 *   QQ_RELEASE   node $1's leases back to queued (a node that stops)
 *   QQ_ENQUEUE   arrays of uri, size, hash, fingerprint: inserts the jobs
 *                that have no open job and are not stored unchanged;
 *                answers (enqueued, already queued, unchanged)
 *   QQ_NOTIFY    pg_notify on the channel PREFIXjobs (LISTEN wakes nodes)
 *   QQ_COUNTS    jobs by state, the oldest queued job's age, dead letters
 *   QQ_NODES     per node: leases held, acks in the last 1 and 5 minutes
 *
 * And on a session of its own, LISTEN "PREFIXjobs" (pg_queue_wait): an idle
 * node waits for enqueue's NOTIFY, or for its poll interval, whichever
 * comes first; polling stays the safety net (a lost NOTIFY, a lost session).
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink_postgres.h"

void pg_queue_close(pg_queue *q);

/* PREFIX + name, quoted and schema-qualified when `qualify`; malloc'd. */
static char *qname(PGconn *conn, const pg_config *c, const char *name, bool qualify) {
    return pg_qualified(conn, qualify ? c->schema : NULL, c->table_prefix ? c->table_prefix : "", name);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    if (vasprintf(&s, f, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

void pg_queue_free(pg_queue *q) {
    pg_queue_close(q);
    free(q->jobs);
    free(q->ack_fn);
    free(q->fence_fn);
    free(q->channel);
    for (int i = 0; i < QQ_COUNT; i++) free(q->sql[i]);
    memset(q, 0, sizeof *q);
}

int pg_queue_names(PGconn *conn, const pg_config *c, const pg_names *n, pg_queue *q) {
    memset(q, 0, sizeof *q);
    q->jobs = qname(conn, c, "jobs", true);
    q->ack_fn = qname(conn, c, "queue_ack", true);
    q->fence_fn = qname(conn, c, "queue_fence", true);
    q->channel = fmt("%sjobs", c->table_prefix ? c->table_prefix : "");
    if (!q->jobs || !q->ack_fn || !q->fence_fn || !q->channel) return SL_ENOMEM;
    const char *j = q->jobs;
    q->sql[QQ_ACK] = fmt("SELECT %s($1::bigint, $2::bigint)", q->ack_fn);
    q->sql[QQ_FENCE] = fmt("SELECT %s($1::bigint, $2::bigint)", q->fence_fn);
    q->sql[QQ_DONE] = fmt("UPDATE %s SET state = 'done', done_at = now(), done_by = lease_owner,"
                          " lease_expires = NULL, last_error = NULL"
                          " WHERE id = $1::bigint AND token = $2::bigint AND state = 'leased'",
                          j);
    /* SKIP LOCKED: a job row that a stalled node holds locked (its ack, in
     * a store transaction it has not finished) stays with it, rather than
     * holding up this statement, and so this node's every lease, until
     * that node goes on or its session ends. */
    q->sql[QQ_RECLAIM] =
        fmt("UPDATE %s SET state = 'queued', lease_owner = NULL, lease_expires = NULL"
            " WHERE id IN (SELECT id FROM %s WHERE state = 'leased' AND lease_expires < now()"
            " FOR UPDATE SKIP LOCKED)",
            j, j);
    q->sql[QQ_LEASE] =
        fmt("WITH c AS (SELECT id FROM %s WHERE state = 'queued' AND next_try <= now()"
            " ORDER BY next_try, id LIMIT $2::integer FOR UPDATE SKIP LOCKED)"
            " UPDATE %s j SET state = 'leased', lease_owner = $1,"
            " lease_expires = now() + $3::bigint * interval '1 millisecond',"
            " token = j.token + 1, attempts = j.attempts + 1, leased_at = now()"
            " FROM c WHERE j.id = c.id RETURNING j.id, j.token, j.uri, j.attempts, coalesce(j.size, 0)",
            j, j);
    q->sql[QQ_HEARTBEAT] = fmt("UPDATE %s SET lease_expires = now() + $2::bigint * interval '1 millisecond'"
                               " WHERE state = 'leased' AND lease_owner = $1",
                               j);
    q->sql[QQ_FAIL] = fmt(
        "WITH f AS (UPDATE %s SET failures = failures + 1, last_error = $3 || ': ' || $4,"
        " state = CASE WHEN $5::integer > 0 AND failures + 1 >= $5::integer THEN 'dead' ELSE 'queued' END,"
        " next_try = now() + least($6::bigint * power(2, least(failures, 20)), 3600000)"
        " * interval '1 millisecond', lease_owner = NULL, lease_expires = NULL"
        " WHERE id = $1::bigint AND token = $2::bigint AND state = 'leased'"
        " RETURNING uri, state, failures)"
        " INSERT INTO %s AS x(uri, stage, reason, attempts, first_at, last_at)"
        " SELECT uri, $3, $4, failures, now(), now() FROM f WHERE state = 'dead'"
        " ON CONFLICT (uri) DO UPDATE SET stage = excluded.stage, reason = excluded.reason,"
        " attempts = greatest(x.attempts, excluded.attempts), last_at = excluded.last_at",
        j, n->failures);
    q->sql[QQ_RELEASE] = fmt("UPDATE %s SET state = 'queued', lease_owner = NULL, lease_expires = NULL"
                             " WHERE state = 'leased' AND lease_owner = $1",
                             j);
    q->sql[QQ_ENQUEUE] =
        fmt("WITH i AS (SELECT DISTINCT ON (uri) uri, size, hash, fp FROM"
            " unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(uri, size, hash, fp)),"
            " o AS (SELECT i.uri FROM i WHERE EXISTS (SELECT 1 FROM %s j WHERE j.uri = i.uri"
            " AND j.state IN ('queued', 'leased'))),"
            " u AS (SELECT i.uri FROM i JOIN %s d ON d.uri = i.uri WHERE i.hash <> '' AND d.hash = i.hash"
            " AND d.fingerprint = i.fp AND i.uri NOT IN (SELECT uri FROM o)),"
            " n AS (INSERT INTO %s(uri, size, hash, fingerprint) SELECT uri,"
            " nullif(size, '')::bigint, nullif(hash, ''), nullif(fp, '')"
            " FROM i WHERE uri NOT IN (SELECT uri FROM o) AND uri NOT IN (SELECT uri FROM u)"
            " ON CONFLICT (uri) WHERE state IN ('queued', 'leased') DO NOTHING RETURNING 1)"
            " SELECT (SELECT count(*) FROM n), (SELECT count(*) FROM i) - (SELECT count(*) FROM n)"
            " - (SELECT count(*) FROM u), (SELECT count(*) FROM u)",
            j, n->documents, j);
    q->sql[QQ_NOTIFY] = strdup("SELECT pg_notify($1, '')");
    q->sql[QQ_COUNTS] = fmt("SELECT count(*) FILTER (WHERE state = 'queued'),"
                            " count(*) FILTER (WHERE state = 'leased'),"
                            " count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'dead'),"
                            " coalesce(extract(epoch FROM now() - min(enqueued_at)"
                            " FILTER (WHERE state = 'queued'))::bigint, -1),"
                            " count(*) FILTER (WHERE state = 'queued' AND next_try > now())"
                            " FROM %s",
                            j);
    q->sql[QQ_NODES] =
        fmt("SELECT node, count(*) FILTER (WHERE state = 'leased'),"
            " count(*) FILTER (WHERE state = 'done' AND done_at > now() - interval '1 minute'),"
            " count(*) FILTER (WHERE state = 'done' AND done_at > now() - interval '5 minutes')"
            " FROM (SELECT CASE WHEN state = 'leased' THEN lease_owner ELSE done_by END AS node,"
            " state, done_at FROM %s WHERE state = 'leased'"
            " OR (state = 'done' AND done_at > now() - interval '5 minutes')) x"
            " WHERE node IS NOT NULL GROUP BY node ORDER BY node",
            j);
    for (int i = 0; i < QQ_COUNT; i++)
        if (!q->sql[i]) return SL_ENOMEM;
    return 0;
}

/* Runs one statement of the migration; on failure writes "what: message". */
static int exec(PGconn *conn, const char *sql, const char *what, char *err, size_t errlen) {
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        snprintf(err, errlen, "%s: %s", what, m ? m : PQerrorMessage(conn));
        PQclear(r);
        return SL_EFATAL;
    }
    PQclear(r);
    return 0;
}

/* A plpgsql function fn(job, tok) on the jobs table `jobs`: `check` (its
 * one %s is the table) finds the job still leased with that token, or else
 * `unless` may RETURN, or it raises SQLSTATE SLQ01, which pool.c turns
 * into the document's failure (not the run's), with the words the node
 * logs: "lease lost: job N token T was re-leased; commit refused<what>". */
static char *lease_function(const char *fn, const char *jobs, const char *check, const char *unless,
                            const char *what) {
    char *body = fmt(check, jobs);
    char *sql =
        body ? fmt("CREATE OR REPLACE FUNCTION %s(job bigint, tok bigint) RETURNS void LANGUAGE plpgsql"
                   " AS $q$ DECLARE cur record; BEGIN %s IF NOT FOUND THEN"
                   " SELECT token, state, coalesce(lease_owner, 'no node') AS owner INTO cur"
                   " FROM %s WHERE id = job;%s"
                   " RAISE EXCEPTION USING ERRCODE = 'SLQ01', MESSAGE = format('lease lost: job %%s"
                   " token %%s was re-leased; commit refused%s (the job is now token %%s, %%s, %%s)',"
                   " job, tok, coalesce(cur.token::text, '?'), coalesce(cur.state, 'gone'),"
                   " coalesce(cur.owner, '?')); END IF; END $q$",
                   fn, body, jobs, unless, what)
             : NULL;
    free(body);
    return sql;
}

int pg_queue_create(PGconn *conn, const pg_config *c, char *err, size_t errlen) {
    char *jobs = qname(conn, c, "jobs", true), *fn = qname(conn, c, "queue_ack", true);
    char *fence_fn = qname(conn, c, "queue_fence", true);
    char *i_open = qname(conn, c, "jobs_open_uri", false), *i_ready = qname(conn, c, "jobs_leasable", false);
    char *i_exp = qname(conn, c, "jobs_lease_expiry", false), *i_done = qname(conn, c, "jobs_done_at", false);
    char *ddl = NULL, *func = NULL, *fence = NULL;
    if (jobs && fn && fence_fn && i_open && i_ready && i_exp && i_done) {
        ddl = fmt("CREATE TABLE IF NOT EXISTS %s("
                  " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                  " uri text COLLATE \"C\" NOT NULL,"
                  " size bigint,"
                  " hash text,"
                  " fingerprint text,"
                  " state text NOT NULL DEFAULT 'queued'"
                  " CHECK (state IN ('queued', 'leased', 'done', 'dead')),"
                  " attempts integer NOT NULL DEFAULT 0,"
                  " failures integer NOT NULL DEFAULT 0,"
                  " next_try timestamptz NOT NULL DEFAULT now(),"
                  " lease_owner text,"
                  " lease_expires timestamptz,"
                  " token bigint NOT NULL DEFAULT 0,"
                  " last_error text,"
                  " enqueued_at timestamptz NOT NULL DEFAULT now(),"
                  " leased_at timestamptz,"
                  " done_at timestamptz,"
                  " done_by text);"
                  "CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s(uri) WHERE state IN ('queued', 'leased');"
                  "CREATE INDEX IF NOT EXISTS %s ON %s(next_try, id) WHERE state = 'queued';"
                  "CREATE INDEX IF NOT EXISTS %s ON %s(lease_expires) WHERE state = 'leased';"
                  "CREATE INDEX IF NOT EXISTS %s ON %s(done_at) WHERE state = 'done';",
                  jobs, i_open, jobs, i_ready, jobs, i_exp, jobs, i_done, jobs);
        /* the ack that refuses a stale node. A job done with this very
         * token passes: this lease's own earlier commit, whose answer the
         * connection lost (the store is retried) */
        func = lease_function(fn, jobs,
                              "UPDATE %s SET state = 'done', done_at = now(), done_by = lease_owner,"
                              " lease_expires = NULL, last_error = NULL"
                              " WHERE id = job AND token = tok AND state = 'leased';",
                              " IF cur.state = 'done' AND cur.token = tok THEN RETURN; END IF;", "");
        /* the same refusal for a leased document's child, without the ack:
         * the row is locked FOR SHARE until the store commits, so a reclaim
         * (SKIP LOCKED) leaves it leased with this token meanwhile */
        fence =
            lease_function(fence_fn, jobs,
                           "PERFORM 1 FROM %s WHERE id = job AND token = tok AND state = 'leased' FOR SHARE;",
                           "", " for a document found inside it");
    }
    int rc = ddl && func && fence ? 0 : SL_ENOMEM;
    if (rc) snprintf(err, errlen, "out of memory");
    if (!rc) rc = exec(conn, ddl, "creating the job queue", err, errlen);
    if (!rc) rc = exec(conn, func, "creating the queue's ack function", err, errlen);
    if (!rc) rc = exec(conn, fence, "creating the queue's fence function", err, errlen);
    free(jobs);
    free(fn);
    free(fence_fn);
    free(fence);
    free(i_open);
    free(i_ready);
    free(i_exp);
    free(i_done);
    free(ddl);
    free(func);
    return rc;
}

/* --- the callbacks (ABI 1.5), each one operation on the pool --- */

typedef struct qctx {
    sl_queue_job_fn each_job;
    sl_queue_node_fn each_node;
    void *arg;
    sl_queue_counts *counts;
    sl_queue_stats *stats;
} qctx;

static const char *num(pg_op *op, long long v) {
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    return pg_op_strdup(op, b);
}

static int64_t col(const PGresult *res, int row, int c) {
    return PQgetisnull(res, row, c) ? 0 : strtoll(PQgetvalue(res, row, c), NULL, 10);
}

/* A new op whose context is a copy of *qc; NULL after sl_fail. */
static pg_op *qop(sl_call *call, const pg_queue *q, const char *what, const qctx *qc,
                  int (*on_result)(pg_op *, int, const PGresult *)) {
    pg_op *op = pg_op_new(call, what, q->where);
    qctx *kept = op ? pg_op_alloc(op, sizeof *kept) : NULL;
    if (!kept) {
        pg_op_free(op);
        sl_fail(call, SL_ENOMEM, "%s: out of memory", what);
        return NULL;
    }
    if (qc) *kept = *qc;
    op->arg = kept;
    op->on_result = on_result;
    return op;
}

static int affected(pg_op *op, int stmt, const PGresult *res) {
    op->value = atoi(PQcmdTuples((PGresult *)res));
    return 0;
}

static int lease_result(pg_op *op, int stmt, const PGresult *res) {
    if (stmt != 1) return 0;
    qctx *qc = op->arg;
    for (int i = 0; i < PQntuples(res); i++) {
        sl_queue_job job = {.id = col(res, i, 0),
                            .token = col(res, i, 1),
                            .uri = PQgetvalue(res, i, 2),
                            .attempts = col(res, i, 3),
                            .size = (uint64_t)col(res, i, 4)};
        qc->each_job(qc->arg, &job);
    }
    op->value = PQntuples(res);
    return 0;
}

int pg_queue_lease(sl_call *call, const pg_queue *q, const char *node, uint32_t max, int64_t lease_ms,
                   sl_queue_job_fn each, void *arg) {
    if (!node || !each || max == 0 || lease_ms <= 0) return sl_fail(call, SL_EINVAL, "lease: bad arguments");
    qctx qc = {.each_job = each, .arg = arg};
    pg_op *op = qop(call, q, "lease jobs", &qc, lease_result);
    if (!op) return SL_ENOMEM;
    pg_op_stmt(op, q->sql[QQ_RECLAIM], 0);
    pg_stmt *st = pg_op_stmt(op, q->sql[QQ_LEASE], 3);
    if (st) {
        pg_stmt_text(st, 0, pg_op_strdup(op, node));
        pg_stmt_text(st, 1, num(op, max > 100000 ? 100000 : max));
        pg_stmt_text(st, 2, num(op, (long long)lease_ms));
    }
    if (!st || !st->values[0] || !st->values[1] || !st->values[2])
        pg_op_fail(op, SL_ENOMEM, "lease jobs: out of memory");
    return pg_pool_submit(q->pool, op);
}

/* One statement of text parameters whose answer is the rows it changed. */
static int simple(sl_call *call, const pg_queue *q, const char *what, int which, int n,
                  const char *const *v) {
    pg_op *op = qop(call, q, what, NULL, affected);
    if (!op) return SL_ENOMEM;
    pg_stmt *st = pg_op_stmt(op, q->sql[which], n);
    bool ok = st != NULL;
    for (int i = 0; ok && i < n; i++) {
        const char *c = v[i] ? pg_op_strdup(op, v[i]) : NULL;
        if (v[i] && !c) ok = false;
        pg_stmt_text(st, i, c);
    }
    if (!ok) pg_op_fail(op, SL_ENOMEM, "%s: out of memory", what);
    return pg_pool_submit(q->pool, op);
}

int pg_queue_heartbeat(sl_call *call, const pg_queue *q, const char *node, int64_t lease_ms) {
    char ms[32];
    snprintf(ms, sizeof ms, "%lld", (long long)lease_ms);
    const char *v[] = {node, ms};
    return simple(call, q, "heartbeat", QQ_HEARTBEAT, 2, v);
}

int pg_queue_done(sl_call *call, const pg_queue *q, int64_t id, int64_t token) {
    char a[32], b[32];
    snprintf(a, sizeof a, "%lld", (long long)id);
    snprintf(b, sizeof b, "%lld", (long long)token);
    const char *v[] = {a, b};
    return simple(call, q, "ack job", QQ_DONE, 2, v);
}

int pg_queue_release(sl_call *call, const pg_queue *q, const char *node) {
    const char *v[] = {node};
    return simple(call, q, "release leases", QQ_RELEASE, 1, v);
}

/* Text PostgreSQL can hold (UTF-8, no NUL), else a stand-in. */
static const char *pg_text(const char *s, const char *instead) {
    return s && sl_utf8_valid(s, strlen(s), NULL) ? s : instead;
}

int pg_queue_fail(sl_call *call, const pg_queue *q, int64_t id, int64_t token, const char *stage,
                  const char *reason, uint32_t max_attempts, int64_t backoff_ms) {
    char a[32], b[32], m[32], k[32];
    snprintf(a, sizeof a, "%lld", (long long)id);
    snprintf(b, sizeof b, "%lld", (long long)token);
    snprintf(m, sizeof m, "%u", max_attempts);
    snprintf(k, sizeof k, "%lld", (long long)(backoff_ms > 0 ? backoff_ms : 1));
    const char *v[] = {a, b, pg_text(stage, "?"), pg_text(reason, "(the reason is not valid UTF-8)"), m, k};
    return simple(call, q, "fail job", QQ_FAIL, 6, v);
}

static int enqueue_result(pg_op *op, int stmt, const PGresult *res) {
    qctx *qc = op->arg;
    if (stmt != 0 || PQntuples(res) != 1) return 0;
    qc->counts->enqueued += col(res, 0, 0);
    qc->counts->already_queued += col(res, 0, 1);
    qc->counts->unchanged += col(res, 0, 2);
    return 0;
}

int pg_queue_enqueue(sl_call *call, const pg_queue *q, const sl_queue_item *items, size_t n,
                     sl_queue_counts *out) {
    if (n == 0) return 0;
    if (!items || !out || n > 1000000) return sl_fail(call, SL_EINVAL, "enqueue: bad arguments");
    for (size_t i = 0; i < n; i++)
        if (!items[i].uri || !*items[i].uri || !sl_utf8_valid(items[i].uri, strlen(items[i].uri), NULL))
            return sl_fail(call, SL_EBADINPUT, "enqueue: item %zu's uri is empty or not valid UTF-8", i);
    qctx qc = {.counts = out};
    pg_op *op = qop(call, q, "enqueue", &qc, enqueue_result);
    if (!op) return SL_ENOMEM;
    pg_buf b[4] = {{0}};
    for (int k = 0; k < 4; k++) pg_array_header(&b[k], PG_OID_TEXT, (int32_t)n, false);
    for (size_t i = 0; i < n; i++) {
        char sz[32] = "";
        if (items[i].size) snprintf(sz, sizeof sz, "%llu", (unsigned long long)items[i].size);
        const char *h = pg_text(items[i].hash, ""), *f = pg_text(items[i].fingerprint, "");
        pg_array_elem(&b[0], items[i].uri, (int32_t)strlen(items[i].uri));
        pg_array_elem(&b[1], sz, (int32_t)strlen(sz));
        pg_array_elem(&b[2], h, (int32_t)strlen(h));
        pg_array_elem(&b[3], f, (int32_t)strlen(f));
    }
    pg_stmt *st = pg_op_stmt(op, q->sql[QQ_ENQUEUE], 4);
    bool ok = st != NULL;
    for (int k = 0; k < 4; k++) {
        if (!ok || b[k].oom || b[k].n > INT32_MAX) {
            ok = false;
            free(b[k].p);
            continue;
        }
        char *p = pg_op_alloc(op, b[k].n + 1);
        if (p) memcpy(p, b[k].p, b[k].n);
        free(b[k].p);
        if (!p) {
            ok = false;
            continue;
        }
        pg_stmt_binary(st, k, p, (int)b[k].n);
    }
    pg_stmt *nt = ok ? pg_op_stmt(op, q->sql[QQ_NOTIFY], 1) : NULL;
    if (nt) pg_stmt_text(nt, 0, q->channel);
    if (!ok || !nt) pg_op_fail(op, SL_ENOMEM, "enqueue: out of memory");
    return pg_pool_submit(q->pool, op);
}

static int status_result(pg_op *op, int stmt, const PGresult *res) {
    qctx *qc = op->arg;
    if (stmt == 0 && PQntuples(res) == 1) {
        sl_queue_stats *o = qc->stats;
        o->queued = col(res, 0, 0);
        o->leased = col(res, 0, 1);
        o->done = col(res, 0, 2);
        o->dead = col(res, 0, 3);
        o->oldest_queued_s = col(res, 0, 4);
        o->backing_off = col(res, 0, 5);
        op->value = (int)(o->queued + o->leased > 1000000000 ? 1000000000 : o->queued + o->leased);
    } else if (stmt == 1 && qc->each_node) {
        for (int i = 0; i < PQntuples(res); i++) {
            sl_queue_node nd = {.node = PQgetvalue(res, i, 0),
                                .leases = col(res, i, 1),
                                .acked_1m = col(res, i, 2),
                                .acked_5m = col(res, i, 3)};
            qc->each_node(qc->arg, &nd);
        }
    }
    return 0;
}

int pg_queue_status(sl_call *call, const pg_queue *q, sl_queue_stats *out, sl_queue_node_fn each, void *arg) {
    if (!out) return sl_fail(call, SL_EINVAL, "queue status: no output");
    qctx qc = {.stats = out, .each_node = each, .arg = arg};
    pg_op *op = qop(call, q, "queue status", &qc, status_result);
    if (!op) return SL_ENOMEM;
    if (!pg_op_stmt(op, q->sql[QQ_COUNTS], 0) || !pg_op_stmt(op, q->sql[QQ_NODES], 0))
        pg_op_fail(op, SL_ENOMEM, "queue status: out of memory");
    return pg_pool_submit(q->pool, op);
}

/* --- LISTEN: an idle node wakes when jobs arrive --- */

/* The listening session: its own blocking connect and LISTEN (once, the
 * first time a node goes idle), then watched on the loop only while a wait
 * is in flight, so an idle listener never keeps the loop from ending. */
static void wait_answer(pg_queue *q, int woke) {
    sl_call *call = q->waiting;
    q->waiting = NULL;
    if (q->wait_timer) sl_timer_stop(q->wait_timer);
    q->wait_timer = NULL;
    if (q->watch) sl_watch_update(q->watch, 0);
    if (call) sl_call_done(call, woke);
}

static void listen_close(pg_queue *q) {
    if (q->watch) sl_watch_stop(q->watch);
    q->watch = NULL;
    PQfinish(q->listen_pg);
    q->listen_pg = NULL;
}

/* 1 when a notification came, 0 when none, -1 when the session is lost. */
static int drain_notifies(pg_queue *q) {
    if (!PQconsumeInput(q->listen_pg)) return -1;
    int got = 0;
    PGnotify *nt;
    while ((nt = PQnotifies(q->listen_pg)) != NULL) {
        got = 1;
        PQfreemem(nt);
    }
    return got;
}

static void listen_ready(sl_watch *w, int status, int events, void *arg) {
    pg_queue *q = arg;
    int got = status < 0 ? -1 : drain_notifies(q);
    if (got < 0) {
        sl_log(q->inst, SL_LOG_WARN, "%s: the LISTEN session was lost; polling until the next wait",
               q->where);
        listen_close(q);
        wait_answer(q, 0);
    } else if (got) {
        wait_answer(q, 1);
    }
}

static void wait_over(void *arg) {
    pg_queue *q = arg;
    q->wait_timer = NULL; /* it freed itself */
    wait_answer(q, 0);
}

int pg_queue_wait(sl_call *call, pg_queue *q, int64_t timeout_ms, const char *const *keys,
                  const char *const *values) {
    if (timeout_ms < 0) { /* the node stops: the wait in flight ends now */
        wait_answer(q, 0);
        return 0;
    }
    if (q->waiting) return sl_fail(call, SL_EINVAL, "queue wait: a wait is in flight already");
    if (!q->listen_pg) {
        PGconn *pg = PQconnectdbParams(keys, values, 0);
        char sql[200];
        char *ch = pg ? PQescapeIdentifier(pg, q->channel, strlen(q->channel)) : NULL;
        snprintf(sql, sizeof sql, "LISTEN %s", ch ? ch : "\"\"");
        if (ch) PQfreemem(ch);
        PGresult *r = pg && PQstatus(pg) == CONNECTION_OK ? PQexec(pg, sql) : NULL;
        bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK && PQsetnonblocking(pg, 1) == 0;
        PQclear(r);
        if (ok && sl_watch_start(q->inst, PQsocket(pg), SL_READABLE, listen_ready, q, &q->watch) != 0)
            ok = false;
        if (!ok) {
            PQfinish(pg);
            return 0; /* no listener: the node polls */
        }
        q->listen_pg = pg;
        sl_watch_update(q->watch, 0);
    }
    int got = drain_notifies(q);
    if (got < 0) {
        listen_close(q);
        return 0;
    }
    if (got) return 1;
    if (sl_timer_start(q->inst, (uint64_t)(timeout_ms > 0 ? timeout_ms : 1), wait_over, q, &q->wait_timer) !=
        0)
        return 0;
    q->waiting = call;
    sl_watch_update(q->watch, SL_READABLE);
    return SL_PENDING;
}

void pg_queue_close(pg_queue *q) {
    if (q->waiting) wait_answer(q, 0);
    listen_close(q);
}
