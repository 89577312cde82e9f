/* sink_postgres.c - the PostgreSQL store: documents, chunks and vectors in
 * a server's tables, written from the loop thread without blocking it.
 *
 * An io plugin: every call becomes one operation, the statements of one
 * pipeline on one connection of the pool (pool.c), answered later with
 * sl_call_done. Only init blocks: it connects once to check the server,
 * sets up the schema (schema.c), and hands that connection to the pool.
 *
 * A document is stored in one transaction: BEGIN, upsert its row, delete
 * its old chunks, insert the new ones, COMMIT, all sent at once. The chunks
 * go in one INSERT ... SELECT FROM unnest(...) whose parameters are arrays
 * in the binary format (encode.c): one statement per document, however
 * many chunks, and no value is ever spliced into SQL text; only quoted
 * identifiers and the vector dimension (an integer of ours, where SQL
 * allows no parameter) are. A failure anywhere rolls it all back; a lost
 * connection makes the call retryable and the core sends it again.
 *
 * Vectors are pgvector's vector(n) with an HNSW index for cosine distance
 * when the server has the extension, real[] otherwise (schema.c decides);
 * queries use the index there and an exact scan computed by the server
 * here. One store holds one dimension, fixed by its first vectors.
 *
 * The password never passes through the INI file: libpq reads PGPASSWORD
 * or ~/.pgpass itself, or password_env names another variable; whatever the
 * source, its value is scrubbed from every message this plugin writes.
 */
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunk_attrs.h"
#include "metadata_json.h"
#include "sink_postgres.h"

static const sl_option options[] = {
    {.name = "host",
     .type = SL_OPT_STRING,
     .def = "",
     .help =
         "server host name, address or socket folder; empty: libpq's default (PGHOST, else the local socket)",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(pg_config, host)},
    {.name = "port",
     .type = SL_OPT_INT,
     .def = "0",
     .help = "server port; 0: libpq's default (PGPORT, else 5432)",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(pg_config, port)},
    {.name = "dbname",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "database; empty: libpq's default (PGDATABASE, else the user name)",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(pg_config, dbname)},
    {.name = "user",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "role to connect as; empty: libpq's default (PGUSER, else the login name)",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(pg_config, user)},
    {.name = "password_env",
     .type = SL_OPT_STRING,
     .def = "PGPASSWORD",
     .help = "environment variable holding the password (never the password itself); unset: ~/.pgpass",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(pg_config, password_env)},
    {.name = "sslmode",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "disable, allow, prefer, require, verify-ca or verify-full; empty: libpq's default (prefer)",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(pg_config, sslmode)},
    {.name = "connect_timeout",
     .type = SL_OPT_DURATION,
     .def = "10s",
     .help = "how long one connection attempt may take",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(pg_config, connect_timeout)},
    {.name = "schema",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "schema for the tables (made if missing); empty: the first on the search_path",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(pg_config, schema)},
    {.name = "table_prefix",
     .type = SL_OPT_STRING,
     .def = "sluice_",
     .help = "prefix of the table names (PREFIXdocuments, PREFIXchunks, ...); quoted, so any text is safe",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(pg_config, table_prefix)},
    {.name = "pool_size",
     .type = SL_OPT_INT,
     .def = "4",
     .help = "connections, and so calls in flight at once (1 for PGlite)",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(pg_config, pool_size)},
    {.name = "vector",
     .type = SL_OPT_ENUM,
     .def = "auto",
     .help = "a new store's vectors: pgvector (vector(n), HNSW), array (real[]), auto: pgvector if the "
             "server has it",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(pg_config, vector),
     .choices = "auto|pgvector|array"},
    {0},
};

/* Statements whose text depends only on the table names: made in init. */
enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_RUN,
    Q_LOOKUP,
    Q_UPSERT,
    Q_DELETE_CHUNKS,
    Q_INSERT_CHUNKS,
    Q_PRUNE,
    Q_EF_SEARCH,
    Q_QUERY,
    Q_LOOKUP_DRY,
    Q_CLEAR_FAILURE,
    Q_RECORD_FAILURES,
    Q_FAILURES,
    Q_URIS,
    Q_PROBE,
    Q_KEYWORD,
    Q_COUNT
};

typedef struct sink {
    sl_instance *inst;
    pg_schema schema;
    pg_pool *pool;
    char *sql[Q_COUNT];
    char *where; /* "postgres at HOST:PORT database DB" */
    char *password;
    const char *keys[16];
    const char *values[16];
    char port[24], timeout[24];
    uint64_t run_recorded; /* the run whose row is in the runs table */
    char *dim_sql;         /* the statement fixing dim_sql_dim, kept for the next stores */
    uint32_t dim_sql_dim;
    char *lock_key;  /* claim: "SCHEMA.PREFIX", what the advisory lock is keyed on */
    PGconn *lock_pg; /* claim: the session holding the advisory lock */
    int mode;        /* SL_STORE_* */
    pg_queue queue;  /* the job queue's statements (queue.c) */
    bool empty;      /* SL_STORE_PEEK on a store never made: it reads as empty */

    pg_limits *limits; /* shared rate limits (limits.c); NULL in read-only modes */
} sink;

/* Chunks per INSERT: bounds one statement's parameters (arrays of at most
 * this many elements, a few MB with vectors). */
#define CHUNKS_PER_INSERT 1000

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

static int make_statements(sink *s) {
    const pg_names *n = &s->schema.names;
    s->sql[Q_BEGIN] = strdup("BEGIN");
    s->sql[Q_COMMIT] = strdup("COMMIT");
    s->sql[Q_RUN] =
        format("INSERT INTO %s(run_id) VALUES ($1::bigint) ON CONFLICT (run_id) DO NOTHING", n->runs);
    /* An unchanged document keeps the documents found inside it (uri
     * PARENT#NAME, '$' follows '#'): they are not parsed again. A changed
     * one is: its children mark themselves. */
    s->sql[Q_LOOKUP] = format(
        "WITH d AS (UPDATE %s SET seen_run = $2::bigint WHERE uri = $1 RETURNING hash, fingerprint),"
        " k AS (UPDATE %s SET seen_run = $2::bigint WHERE uri COLLATE \"C\" >= ($1 || '#') COLLATE \"C\""
        " AND uri COLLATE \"C\" < ($1 || '$') COLLATE \"C\""
        " AND EXISTS (SELECT 1 FROM d WHERE d.hash = $3 AND d.fingerprint = $4) RETURNING 1)"
        " SELECT hash, fingerprint FROM d",
        n->documents, n->documents);
    s->sql[Q_UPSERT] = format(
        "INSERT INTO %s AS d(uri, hash, fingerprint, media_type, bytes, title, metadata, chunk_count,"
        " stored_at, stored_run, seen_run)"
        " VALUES ($1, $2, $3, $4, $5::bigint, $6, $7::jsonb, $8::integer, now(), $9::bigint, $9::bigint)"
        " ON CONFLICT (uri) DO UPDATE SET hash = excluded.hash, fingerprint = excluded.fingerprint,"
        " media_type = excluded.media_type, bytes = excluded.bytes, title = excluded.title,"
        " metadata = excluded.metadata, chunk_count = excluded.chunk_count, stored_at = excluded.stored_at,"
        " stored_run = excluded.stored_run, seen_run = excluded.seen_run",
        n->documents);
    s->sql[Q_DELETE_CHUNKS] =
        format("DELETE FROM %s WHERE doc_id = (SELECT id FROM %s WHERE uri = $1)", n->chunks, n->documents);
    /* $9 holds every vector of the batch back to back; chunk i's is the
     * slice at its offset. The slice is real[]; pgvector casts it. */
    s->sql[Q_INSERT_CHUNKS] =
        format("INSERT INTO %s(doc_id, ordinal, page, line, heading, text, summary, dim, embedding, attrs)"
               " SELECT d.id, c.ordinal, c.page, c.line, c.heading, c.text, c.summary, c.dim,"
               " CASE WHEN c.dim > 0 THEN ($9::real[])[c.voff + 1 : c.voff + c.dim]%s END, c.attrs::jsonb"
               " FROM (SELECT id FROM %s WHERE uri = $1) AS d,"
               " unnest($2::integer[], $3::integer[], $4::integer[], $5::text[], $6::text[], $7::text[],"
               " $8::integer[], $10::integer[], $11::text[])"
               " AS c(ordinal, page, line, heading, text, summary, dim, voff, attrs)",
               n->chunks, s->schema.pgvector ? "::vector" : "", n->documents);
    /* Under a root: the root itself, or [root/, root0): '0' follows '/',
     * and uri compares bytewise (COLLATE "C"), so the range is exactly
     * "starts with root/"; no LIKE, nothing to escape. And the documents
     * found inside the root ([root#, root$)). */
    s->sql[Q_PRUNE] = format(
        "WITH gone AS (DELETE FROM %s AS d WHERE (d.seen_run IS NULL OR d.seen_run <> $1::bigint)"
        " AND EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[], $4::text[]) AS r(root, lo, hi)"
        " WHERE d.uri = r.root COLLATE \"C\" OR (d.uri >= r.lo COLLATE \"C\" AND d.uri < r.hi COLLATE \"C\")"
        " OR (d.uri >= (r.root || '#') COLLATE \"C\" AND d.uri < (r.root || '$') COLLATE \"C\"))"
        " RETURNING 1),"
        " n AS (SELECT count(*) AS n FROM gone),"
        " rec AS (INSERT INTO %s AS r(run_id, pruned, pruned_at) SELECT $1::bigint, n, now() FROM n"
        " ON CONFLICT (run_id) DO UPDATE SET pruned = excluded.pruned, pruned_at = excluded.pruned_at)"
        " SELECT n FROM n",
        n->documents, n->runs);
    /* HNSW answers at most ef_search rows, and finds more of the true nearest
     * the larger it is: max(k, 100), within pgvector's cap of 1000 */
    s->sql[Q_EF_SEARCH] = strdup("SELECT set_config('hnsw.ef_search', $1, true)");
    if (s->schema.pgvector)
        s->sql[Q_QUERY] =
            format("SELECT d.uri, n.ordinal, n.page, n.line, n.heading, n.text, 1 - n.distance, n.attrs::text"
                   " FROM (SELECT doc_id, ordinal, page, line, heading, text, attrs,"
                   " embedding <=> $1::vector AS distance"
                   " FROM %s ORDER BY embedding <=> $1::vector LIMIT $2::integer) AS n"
                   " JOIN %s AS d ON d.id = n.doc_id ORDER BY n.distance, d.uri, n.ordinal",
                   n->chunks, n->documents);
    else
        /* exact: the server computes every cosine; $3 is the query's norm */
        s->sql[Q_QUERY] =
            format("SELECT d.uri, n.ordinal, n.page, n.line, n.heading, n.text, n.score, n.attrs::text"
                   " FROM (SELECT c.doc_id, c.ordinal, c.page, c.line, c.heading, c.text, c.attrs,"
                   " (SELECT sum(a::float8 * b) / NULLIF(sqrt(sum(a::float8 * a)) * $3::float8, 0)"
                   " FROM unnest(c.embedding, $1::real[]) AS t(a, b)) AS score"
                   " FROM %s AS c WHERE c.embedding IS NOT NULL"
                   " ORDER BY score DESC NULLS LAST LIMIT $2::integer) AS n"
                   " JOIN %s AS d ON d.id = n.doc_id ORDER BY n.score DESC, d.uri, n.ordinal",
                   n->chunks, n->documents);
    /* a dry run's lookup (run id 0) only reads */
    s->sql[Q_LOOKUP_DRY] = format("SELECT hash, fingerprint FROM %s WHERE uri = $1", n->documents);
    s->sql[Q_CLEAR_FAILURE] = format("DELETE FROM %s WHERE uri = $1", n->failures);
    s->sql[Q_RECORD_FAILURES] =
        format("INSERT INTO %s AS f(uri, stage, reason, attempts, first_at, last_at)"
               " SELECT DISTINCT ON (t.u) t.u, t.s, t.r, 1, now(), now()"
               " FROM unnest($1::text[], $2::text[], $3::text[]) AS t(u, s, r)"
               " ON CONFLICT (uri) DO UPDATE SET stage = excluded.stage, reason = excluded.reason,"
               " attempts = f.attempts + 1, last_at = excluded.last_at",
               n->failures);
    s->sql[Q_FAILURES] = format("SELECT uri, stage, reason, attempts, extract(epoch FROM first_at)::bigint,"
                                " extract(epoch FROM last_at)::bigint FROM %s ORDER BY uri",
                                n->failures);
    s->sql[Q_URIS] = format("SELECT uri FROM %s ORDER BY uri", n->documents);
    s->sql[Q_PROBE] = format("SELECT count(*) FROM %s", n->documents);
    /* The keyword ranking: the words of $1 (plainto_tsquery: plain text, no
     * syntax to get wrong), any of them (its '&'s made '|'s: lexemes are
     * quoted and hold no spaces, so only the operators match ' & '),
     * ranked by ts_rank with the heading's weight A (1.0) five times the
     * text's B and the summary's C (0.2 each; ts_rank's own default is
     * 0.4 and 0.2), as sink-sqlite weighs its heading column in bm25(). */
    s->sql[Q_KEYWORD] =
        format("SELECT d.uri, n.ordinal, n.page, n.line, n.heading, n.text, n.score, n.attrs::text"
               " FROM (SELECT c.doc_id, c.ordinal, c.page, c.line, c.heading, c.text, c.attrs,"
               " ts_rank('{0.1, 0.2, 0.2, 1.0}'::real[], c.tsv, q.q) AS score"
               " FROM %s AS c, (SELECT replace(plainto_tsquery('english'::regconfig, $1)::text, ' & ', ' | ')"
               "::tsquery AS q) AS q"
               " WHERE c.tsv @@ q.q ORDER BY score DESC LIMIT $2::integer) AS n"
               " JOIN %s AS d ON d.id = n.doc_id ORDER BY n.score DESC, d.uri, n.ordinal",
               n->chunks, n->documents);
    for (int i = 0; i < Q_COUNT; i++)
        if (!s->sql[i]) return SL_ENOMEM;
    return 0;
}

/* The statement that fixes the store's dimension at `dim`, once: under a
 * lock on meta, a store without a dimension gets it (pgvector: the column
 * becomes vector(dim) and gets its HNSW index); a store with another one
 * raises SLD01, which fails the run. Runs inside the first document's
 * transaction, so the document and the dimension commit together. */
static const char *dimension_sql(sink *s, uint32_t dim) {
    if (s->dim_sql && s->dim_sql_dim == dim) return s->dim_sql;
    const pg_names *n = &s->schema.names;
    char *pg = NULL;
    if (s->schema.pgvector)
        pg = format("ALTER TABLE %s ALTER COLUMN embedding TYPE vector(%u);"
                    " CREATE INDEX IF NOT EXISTS %s ON %s USING hnsw (embedding vector_cosine_ops);",
                    n->chunks, dim, n->hnsw_index, n->chunks);
    char *body = format(
        "DECLARE have text; BEGIN LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE;"
        " SELECT value INTO have FROM %s WHERE key = 'dimension';"
        " IF have IS NULL THEN %s INSERT INTO %s(key, value) VALUES ('dimension', '%u');"
        " ELSIF have <> '%u' THEN RAISE EXCEPTION"
        " 'the store holds %%-dimensional vectors; this document''s have %u (use another table_prefix)',"
        " have USING ERRCODE = 'SLD01'; END IF; END",
        n->meta, n->meta, pg ? pg : "", n->meta, dim, dim, dim);
    free(pg);
    if (!body) return NULL;
    /* a dollar-quote tag that the body (quoted names included) does not contain */
    char tag[32] = "$sl$";
    for (int i = 0; strstr(body, tag); i++) snprintf(tag, sizeof tag, "$sl%d$", i);
    char *sql = format("DO %s %s %s", tag, body, tag);
    free(body);
    if (!sql) return NULL;
    free(s->dim_sql);
    s->dim_sql = sql;
    s->dim_sql_dim = dim;
    return sql;
}

/* --- init and fini --- */

static void sink_free(sink *s) {
    if (!s) return;
    pg_queue_free(&s->queue);
    pg_pool_free(s->pool);
    for (int i = 0; i < Q_COUNT; i++) free(s->sql[i]);
    pg_schema_free(&s->schema);
    free(s->where);
    if (s->password) {
        memset(s->password, 0, strlen(s->password));
        free(s->password);
    }
    free(s->dim_sql);
    PQfinish(s->lock_pg); /* ends the session: the advisory lock goes with it */
    free(s->lock_key);
    pg_limits_free(s->limits);
    free(s);
}

static bool one_of(const char *v, const char *const *list) {
    for (; *list; list++)
        if (strcmp(v, *list) == 0) return true;
    return false;
}

static int check_options(sl_instance *inst, const pg_config *c) {
    static const char *const sslmodes[] = {"",        "disable",   "allow",       "prefer",
                                           "require", "verify-ca", "verify-full", NULL};
    if (c->port < 0 || c->port > 65535)
        return sl_instance_fail(inst, SL_EFATAL, "option 'port': %lld is not a port (0 to 65535)",
                                (long long)c->port);
    if (c->pool_size < 1 || c->pool_size > 256)
        return sl_instance_fail(inst, SL_EFATAL, "option 'pool_size': %lld is not between 1 and 256",
                                (long long)c->pool_size);
    if (c->connect_timeout <= 0)
        return sl_instance_fail(inst, SL_EFATAL, "option 'connect_timeout': must be positive");
    if (!one_of(c->sslmode ? c->sslmode : "", sslmodes))
        return sl_instance_fail(inst, SL_EFATAL,
                                "option 'sslmode': '%s' is not one of disable, allow, prefer, require, "
                                "verify-ca, verify-full",
                                c->sslmode);
    if (!c->password_env || !*c->password_env)
        return sl_instance_fail(inst, SL_EFATAL,
                                "option 'password_env': name an environment variable (default PGPASSWORD)");
    /* identifiers are at most 63 bytes; the longest name made is PREFIXchunks_embedding_idx */
    if (c->table_prefix && strlen(c->table_prefix) > 40)
        return sl_instance_fail(inst, SL_EFATAL, "option 'table_prefix': at most 40 bytes");
    if (c->schema && strlen(c->schema) > 63)
        return sl_instance_fail(inst, SL_EFATAL, "option 'schema': at most 63 bytes");
    return 0;
}

/* libpq's connection keywords from the options; empty options are left to
 * libpq's defaults (PG* variables, the local socket). */
static void connection_params(sink *s, const pg_config *c) {
    int k = 0;
#define KV(key, val)                                                                                         \
    do {                                                                                                     \
        s->keys[k] = (key);                                                                                  \
        s->values[k] = (val);                                                                                \
        k++;                                                                                                 \
    } while (0)
    if (c->host && *c->host) KV("host", c->host);
    if (c->port > 0) {
        snprintf(s->port, sizeof s->port, "%lld", (long long)c->port);
        KV("port", s->port);
    }
    if (c->dbname && *c->dbname) KV("dbname", c->dbname);
    if (c->user && *c->user) KV("user", c->user);
    if (s->password) KV("password", s->password);
    if (c->sslmode && *c->sslmode) KV("sslmode", c->sslmode);
    /* libpq counts whole seconds, at least 2 */
    snprintf(s->timeout, sizeof s->timeout, "%lld", (long long)((c->connect_timeout + 999) / 1000));
    KV("connect_timeout", s->timeout);
    KV("client_encoding", "UTF8");
    KV("fallback_application_name", "sluice");
    KV(NULL, NULL);
#undef KV
}

static int init(sl_instance *inst, const void *config, void **state) {
    const pg_config *c = config;
    int rc = check_options(inst, c);
    if (rc) return rc;
    sink *s = calloc(1, sizeof *s);
    if (!s) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    s->inst = inst;
    const char *pw = getenv(c->password_env);
    if (pw && *pw && !(s->password = strdup(pw))) {
        sink_free(s);
        return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    }
    connection_params(s, c);

    /* The one blocking connection: is the server there, and may we in? */
    PGconn *conn = PQconnectdbParams(s->keys, s->values, 0);
    const char *host = c->host && *c->host ? c->host : conn ? PQhost(conn) : NULL;
    const char *port = c->port > 0 ? s->port : conn ? PQport(conn) : NULL;
    const char *db = c->dbname && *c->dbname ? c->dbname : conn ? PQdb(conn) : NULL;
    s->where = format("postgres at %s:%s database %s", host && *host ? host : "localhost",
                      port && *port ? port : "5432", db && *db ? db : "(default)");
    if (!conn || !s->where) {
        PQfinish(conn);
        sink_free(s);
        return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    }
    pg_scrub(s->where, strlen(s->where) + 1, s->password);
    if (PQstatus(conn) != CONNECTION_OK) {
        char msg[800];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(conn));
        pg_scrub(msg, sizeof msg, s->password);
        PQfinish(conn);
        rc = sl_instance_fail(inst, SL_EFATAL, "cannot connect to %s: %s", s->where, msg);
        sink_free(s);
        return rc;
    }
    if (PQserverVersion(conn) < 110000) {
        rc = sl_instance_fail(inst, SL_EFATAL, "%s runs PostgreSQL %d; sink-postgres needs 11 or later",
                              s->where, PQserverVersion(conn));
        PQfinish(conn);
        sink_free(s);
        return rc;
    }

    char err[800];
    s->mode = sl_instance_store_mode(inst);
    if (s->mode == SL_STORE_WRITE || s->mode == SL_STORE_REBUILD) {
        rc = pg_schema_open(conn, c, &s->schema, err, sizeof err);
    } else {
        /* read-only commands: no schema is made or migrated */
        bool missing = false;
        rc = pg_schema_read(conn, c, &s->schema, &missing, err, sizeof err);
        if (!rc && missing && s->mode != SL_STORE_PEEK) rc = SL_EFATAL;
        s->empty = missing;
    }
    if (!rc) rc = make_statements(s) ? SL_ENOMEM : 0;
    if (!rc && (s->mode == SL_STORE_WRITE || s->mode == SL_STORE_REBUILD) &&
        !(s->limits = pg_limits_new(conn, c->schema)))
        rc = SL_ENOMEM;
    if (!rc) rc = pg_queue_names(conn, c, &s->schema.names, &s->queue);
    if (rc) {
        pg_scrub(err, sizeof err, s->password);
        PQfinish(conn);
        rc = sl_instance_fail(inst, rc, "%s: %s", s->where, rc == SL_ENOMEM ? "out of memory" : err);
        sink_free(s);
        return rc;
    }

    pg_pool_conf pc = {
        .inst = inst,
        .keys = s->keys,
        .values = s->values,
        .where = s->where,
        .secret = s->password,
        .size = (int)c->pool_size,
        .connect_timeout_ms = (uint64_t)c->connect_timeout,
    };
    if (pg_pool_new(&pc, conn, &s->pool) != 0) {
        PQfinish(conn);
        sink_free(s);
        return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    }
    s->queue.pool = s->pool;
    s->queue.where = s->where;
    s->queue.inst = inst;
    s->lock_key = format("%s.%s", c->schema ? c->schema : "", c->table_prefix ? c->table_prefix : "");
    if (!s->lock_key) {
        sink_free(s);
        return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    }
    sl_instance_set_concurrency(inst, (uint32_t)c->pool_size);
    sl_log(inst, SL_LOG_DEBUG, "%s: schema version %d, vectors as %s%s", s->where, s->schema.version,
           s->schema.pgvector ? "pgvector" : "real[]", s->schema.dim ? "" : " (dimension not fixed yet)");
    *state = s;
    return 0;
}

static void fini(void *state) { sink_free(state); }

/* One writer process per store (schema and table prefix, in one database):
 * a session-level advisory lock on a connection of its own, apart from the
 * pool (whose connections come and go). Keyed on two int4s: a constant of
 * sluice's and hashtext of the key, so pg_locks shows it as (classid,
 * objid), and the holder's application_name says its PID and host (its
 * session's backend_start, when it took the lock). The server drops the
 * lock when the holder's session ends, a killed process included. A held
 * store answers SL_ERETRY (`--wait` asks again). A blocking call, as init
 * is: the core claims before the run starts. */
#define LOCK_CLASS 1397310533 /* "SLUE" */
static int lock_store(sl_call *call, bool shared) {
    sink *s = sl_call_state(call);
    if (s->lock_pg) return 0;
    const char *keys[18], *values[18];
    /* "sluice writer pid PID on HOST": application_name holds 63 bytes, so
     * a long host name is cut (the PID, first, never is) */
    char app[64], host[64] = "";
    if (gethostname(host, sizeof host) != 0 || !host[0]) snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    snprintf(app, sizeof app, "sluice %s pid %ld on %s", shared ? "node" : "writer", (long)getpid(), host);
    int n = 0;
    for (; s->keys[n] && n < 16; n++) {
        keys[n] = s->keys[n];
        values[n] = s->values[n];
    }
    keys[n] = "application_name";
    values[n++] = app;
    keys[n] = values[n] = NULL;
    PGconn *pg = PQconnectdbParams(keys, values, 0);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        char msg[800];
        snprintf(msg, sizeof msg, "%s", pg ? PQerrorMessage(pg) : "out of memory");
        pg_scrub(msg, sizeof msg, s->password);
        PQfinish(pg);
        return sl_fail(call, SL_EFATAL, "cannot connect to %s to lock the store: %s", s->where, msg);
    }
    char cls[24];
    snprintf(cls, sizeof cls, "%d", LOCK_CLASS);
    const char *params[2] = {cls, s->lock_key};
    /* queue nodes share the lock; a plain writer holds it alone */
    PGresult *res = PQexecParams(pg,
                                 shared ? "SELECT pg_try_advisory_lock_shared($1::int4, hashtext($2))"
                                        : "SELECT pg_try_advisory_lock($1::int4, hashtext($2))",
                                 2, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    int got = ok && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (got) {
        s->lock_pg = pg;
        return 0;
    }
    if (!ok) {
        char msg[800];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(pg));
        pg_scrub(msg, sizeof msg, s->password);
        PQfinish(pg);
        return sl_fail(call, SL_EFATAL, "%s: cannot take the store's advisory lock: %s", s->where, msg);
    }
    res = PQexecParams(pg,
                       "SELECT a.application_name, a.client_addr, "
                       "to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
                       "FROM pg_locks l JOIN pg_stat_activity a "
                       "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
                       "AND l.classid = $1::int4::oid AND l.objid = hashtext($2)::oid LIMIT 1",
                       2, NULL, params, NULL, NULL, 0);
    char holder[256] = "PID unknown";
    bool node = false;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        const char *an = PQgetvalue(res, 0, 0), *addr = PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1);
        const char *since = PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2);
        const char *pid = strncmp(an, "sluice writer pid ", 18) == 0 ? an + 18
                          : strncmp(an, "sluice node pid ", 16) == 0 ? an + 16
                                                                     : NULL;
        if (strncmp(an, "sluice node pid ", 16) == 0) node = true;
        char pidv[24] = "unknown", hostv[64] = "";
        if (pid) sscanf(pid, "%23s on %63s", pidv, hostv); /* an older holder names no host */
        snprintf(holder, sizeof holder, "PID %s%s%s%s%s%s%s%s", pidv, hostv[0] ? " on host " : "", hostv,
                 addr ? " from " : "", addr ? addr : "", since ? ", started " : "", since ? since : "",
                 since ? " UTC" : "");
    }
    PQclear(res);
    PQfinish(pg);
    if (shared || node)
        return sl_fail(
            call, SL_ERETRY,
            "the store %s (schema.table_prefix '%s') is in use by another sluice process (%s, %s): "
            "queue nodes (run --queue, serve --queue) share a store with each other, never with a "
            "plain run or serve; wait for it (--wait) or stop it first",
            s->where, s->lock_key, holder, node ? "a queue node" : "a plain writer");
    return sl_fail(call, SL_ERETRY,
                   "the store %s (schema.table_prefix '%s') is in use by another sluice process (%s): one "
                   "process writes a store at a time; wait for it (--wait) or stop it first",
                   s->where, s->lock_key, holder);
}

static int claim(sl_call *call) { return lock_store(call, false); }

/* --- helpers for building operations --- */

/* A decimal number in the op's memory. */
static const char *num(pg_op *op, long long v) {
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    return pg_op_strdup(op, b);
}

/* Binary parameters built in a pg_buf become the op's. */
static const char *adopt(pg_op *op, pg_buf *b, int *len) {
    if (b->oom || b->n > INT_MAX) {
        free(b->p);
        return NULL;
    }
    if (!b->p) pg_put(b, "", 0);
    char *p = pg_op_alloc(op, b->n + 1);
    if (p && b->n) memcpy(p, b->p, b->n);
    *len = (int)b->n;
    free(b->p);
    memset(b, 0, sizeof *b);
    return p;
}

/* PostgreSQL text holds UTF-8 without NUL bytes: anything else fails the
 * document here, with a reason, rather than at the server. */
static bool text_ok(const char *p, size_t len) {
    return p && sl_utf8_valid(p, len, NULL) && memchr(p, '\0', len) == NULL;
}

static void add_run_record(sink *s, pg_op *op, uint64_t run) {
    if (s->run_recorded == run) return;
    pg_stmt *st = pg_op_stmt(op, s->sql[Q_RUN], 1);
    if (!st) return;
    pg_stmt_text(st, 0, num(op, (long long)run));
}

/* --- lookup --- */

typedef struct lookup_ctx {
    sink *s;
    sl_doc *doc;
    int stmt; /* the UPDATE's index among the op's statements */
} lookup_ctx;

static int lookup_result(pg_op *op, int stmt, const PGresult *res) {
    lookup_ctx *lc = op->arg;
    if (stmt != lc->stmt) return 0;
    if (PQntuples(res) == 0) {
        op->value = SL_LOOKUP_MISSING;
        return 0;
    }
    bool same = strcmp(PQgetvalue(res, 0, 0), sl_doc_hash(lc->doc)) == 0 &&
                strcmp(PQgetvalue(res, 0, 1), sl_doc_fingerprint(lc->doc)) == 0;
    op->value = same ? SL_LOOKUP_UNCHANGED : SL_LOOKUP_CHANGED;
    return 0;
}

static void record_run_end(pg_op *op, int rc) {
    lookup_ctx *lc = op->arg;
    if (rc >= 0) lc->s->run_recorded = sl_doc_run_id(lc->doc);
}

static int lookup(sl_call *call, sl_doc *doc) {
    sink *s = sl_call_state(call);
    const char *uri = sl_doc_uri(doc);
    if (s->empty) return SL_LOOKUP_MISSING; /* a dry run before the first run */
    if (!text_ok(uri, strlen(uri)))
        return sl_fail(call, SL_EBADINPUT,
                       "lookup '%s': the path is not valid UTF-8, which PostgreSQL text requires", uri);
    pg_op *op = pg_op_new(call, "lookup", uri);
    lookup_ctx *lc = op ? pg_op_alloc(op, sizeof *lc) : NULL;
    if (!lc) {
        pg_op_free(op);
        return sl_fail(call, SL_ENOMEM, "lookup '%s': out of memory", uri);
    }
    lc->s = s;
    lc->doc = doc;
    op->arg = lc;
    op->on_result = lookup_result;
    lc->stmt = op->nstmts;
    if (!sl_doc_run_id(doc)) { /* a dry run: nothing recorded */
        pg_stmt *st = pg_op_stmt(op, s->sql[Q_LOOKUP_DRY], 1);
        if (st)
            pg_stmt_text(st, 0, uri);
        else
            pg_op_fail(op, SL_ENOMEM, "lookup '%s': out of memory", uri);
        return pg_pool_submit(s->pool, op);
    }
    op->on_end = record_run_end;
    add_run_record(s, op, sl_doc_run_id(doc));
    lc->stmt = op->nstmts;
    pg_stmt *st = pg_op_stmt(op, s->sql[Q_LOOKUP], 4);
    if (st) {
        pg_stmt_text(st, 0, uri);
        pg_stmt_text(st, 1, num(op, (long long)sl_doc_run_id(doc)));
        pg_stmt_text(st, 2, sl_doc_hash(doc));
        pg_stmt_text(st, 3, sl_doc_fingerprint(doc));
    }
    if (!st || !st->values[1]) pg_op_fail(op, SL_ENOMEM, "lookup '%s': out of memory", uri);
    return pg_pool_submit(s->pool, op);
}

/* --- store --- */

/* The columns of chunks [from, to) as array parameters. */
static int add_chunk_batch(sink *s, pg_op *op, sl_doc *doc, size_t from, size_t to) {
    pg_buf ord = {0}, page = {0}, line = {0}, heading = {0}, text = {0}, summary = {0}, dim = {0}, voff = {0},
           vec = {0}, attrs = {0};
    int32_t n = (int32_t)(to - from);
    bool summary_null = false;
    size_t nfloats = 0;
    for (size_t i = from; i < to; i++) {
        uint32_t d = 0;
        if (sl_chunk_vector(doc, i, &d) && d) nfloats += d;
        if (!sl_chunk_summary(doc, i)) summary_null = true;
    }
    if (nfloats > INT32_MAX)
        return pg_op_fail(op, SL_EBADINPUT, "store '%s': too many vector values", op->subject);
    pg_array_header(&ord, PG_OID_INT4, n, false);
    pg_array_header(&page, PG_OID_INT4, n, false);
    pg_array_header(&line, PG_OID_INT4, n, false);
    pg_array_header(&heading, PG_OID_TEXT, n, false);
    pg_array_header(&text, PG_OID_TEXT, n, false);
    pg_array_header(&summary, PG_OID_TEXT, n, summary_null);
    pg_array_header(&dim, PG_OID_INT4, n, false);
    pg_array_header(&voff, PG_OID_INT4, n, false);
    pg_array_header(&vec, PG_OID_FLOAT4, (int32_t)nfloats, false);
    pg_array_header(&attrs, PG_OID_TEXT, n, false);
    int32_t off = 0;
    for (size_t i = from; i < to; i++) {
        size_t len;
        const char *t = sl_chunk_text(doc, i, &len);
        const char *h = sl_chunk_heading(doc, i);
        const char *sum = sl_chunk_summary(doc, i);
        uint32_t d = 0;
        const float *v = sl_chunk_vector(doc, i, &d);
        if (!v) d = 0;
        pg_array_int4(&ord, (int32_t)i);
        pg_array_int4(&page, (int32_t)(sl_chunk_page(doc, i) & INT32_MAX));
        pg_array_int4(&line, (int32_t)(sl_chunk_line(doc, i) & INT32_MAX));
        pg_array_elem(&heading, h ? h : "", h ? (int32_t)strlen(h) : 0);
        pg_array_elem(&text, t ? t : "", t ? (int32_t)len : 0);
        pg_array_elem(&summary, sum, sum ? (int32_t)strlen(sum) : -1);
        pg_array_int4(&dim, (int32_t)d);
        pg_array_int4(&voff, off);
        for (uint32_t k = 0; k < d; k++) pg_array_float4(&vec, v[k]);
        off += (int32_t)d;
        char *a = slj_chunk_attrs(doc, i); /* valid UTF-8 JSON whatever the attributes hold */
        if (!a) attrs.oom = true;
        pg_array_elem(&attrs, a ? a : "{}", a ? (int32_t)strlen(a) : 2);
        free(a);
    }
    pg_buf *bufs[] = {&ord, &page, &line, &heading, &text, &summary, &dim, &vec, &voff, &attrs};
    enum { NBUFS = sizeof bufs / sizeof *bufs };
    pg_stmt *st = pg_op_stmt(op, s->sql[Q_INSERT_CHUNKS], NBUFS + 1);
    if (!st) {
        for (int j = 0; j < NBUFS; j++) free(bufs[j]->p);
        return pg_op_fail(op, SL_ENOMEM, "store '%s': out of memory", op->subject);
    }
    pg_stmt_text(st, 0, sl_doc_uri(doc));
    for (int k = 0; k < NBUFS; k++) {
        int len = 0;
        const char *p = adopt(op, bufs[k], &len);
        if (!p) {
            for (int j = k + 1; j < NBUFS; j++) free(bufs[j]->p);
            return pg_op_fail(op, SL_ENOMEM, "store '%s': out of memory", op->subject);
        }
        pg_stmt_binary(st, k + 1, p, len);
    }
    return 0;
}

typedef struct store_ctx {
    sink *s;
    uint64_t run;
    uint32_t dim; /* the dimension this store fixes, 0 if it does not */
} store_ctx;

static void store_end(pg_op *op, int rc) {
    store_ctx *sc = op->arg;
    if (rc < 0) return;
    sc->s->run_recorded = sc->run;
    if (sc->dim) sc->s->schema.dim = sc->dim;
}

/* Checks the document's texts and vectors; 0, or fails the call. */
static int store_check(sl_call *call, sink *s, sl_doc *doc, uint32_t *dim_out) {
    const char *uri = sl_doc_uri(doc);
    if (!text_ok(uri, strlen(uri)))
        return sl_fail(call, SL_EBADINPUT,
                       "store '%s': the path is not valid UTF-8, which PostgreSQL text requires", uri);
    const char *title = sl_doc_meta_get(doc, "title");
    if (title && !text_ok(title, strlen(title)))
        return sl_fail(call, SL_EBADINPUT, "store '%s': the title is not valid UTF-8", uri);
    uint32_t dim = 0;
    size_t n = sl_doc_chunk_count(doc);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *t = sl_chunk_text(doc, i, &len);
        const char *h = sl_chunk_heading(doc, i), *sum = sl_chunk_summary(doc, i);
        if (!text_ok(t ? t : "", t ? len : 0) || !text_ok(h ? h : "", h ? strlen(h) : 0) ||
            (sum && !text_ok(sum, strlen(sum))))
            return sl_fail(call, SL_EBADINPUT,
                           "store '%s': chunk %zu holds bytes PostgreSQL text cannot (invalid UTF-8 or NUL)",
                           uri, i);
        uint32_t d = 0;
        if (!sl_chunk_vector(doc, i, &d) || d == 0) continue;
        if (dim && d != dim)
            return sl_fail(call, SL_EBADINPUT,
                           "store '%s': chunk %zu has a %u-dimensional vector, chunk 0 %u", uri, i, d, dim);
        dim = d;
    }
    if (dim && s->schema.dim && dim != s->schema.dim)
        return sl_fail(
            call, SL_EFATAL,
            "store '%s': the store holds %u-dimensional vectors; this document's have %u (use another "
            "table_prefix, or drop the tables)",
            uri, s->schema.dim, dim);
    *dim_out = dim;
    return 0;
}

static int store(sl_call *call, sl_doc *doc) {
    sink *s = sl_call_state(call);
    const char *uri = sl_doc_uri(doc);
    uint32_t dim = 0;
    int rc = store_check(call, s, doc, &dim);
    if (rc) return rc;
    size_t nbytes = 0, nchunks = sl_doc_chunk_count(doc);
    sl_doc_data(doc, &nbytes);

    pg_op *op = pg_op_new(call, "store", uri);
    store_ctx *sc = op ? pg_op_alloc(op, sizeof *sc) : NULL;
    char *meta = sc ? slj_metadata(doc) : NULL;
    const char *meta_kept = meta ? pg_op_strdup(op, meta) : NULL;
    free(meta);
    if (!meta_kept) {
        pg_op_free(op);
        return sl_fail(call, SL_ENOMEM, "store '%s': out of memory", uri);
    }
    sc->s = s;
    sc->run = sl_doc_run_id(doc);
    op->arg = sc;
    op->on_end = store_end;

    /* BEGIN; [fix the dimension]; [record the run]; upsert the document;
     * delete its chunks; insert the new ones; COMMIT: one round trip */
    bool ok = pg_op_stmt(op, s->sql[Q_BEGIN], 0) != NULL;
    int64_t job = 0, token = 0;
    int acked = ok && sl_doc_queue_job(doc, &job, &token);
    if (acked || (ok && sl_doc_queue_fence(doc, &job, &token))) {
        /* a leased document: acked first, in this transaction; a child of
         * one: fenced by its job, which its parent's store acks. A lost
         * lease raises (queue.c) and the whole document rolls back */
        pg_stmt *ack = pg_op_stmt(op, s->queue.sql[acked ? QQ_ACK : QQ_FENCE], 2);
        if (ack) {
            pg_stmt_text(ack, 0, num(op, (long long)job));
            pg_stmt_text(ack, 1, num(op, (long long)token));
        }
        ok = ack && ack->values[0] && ack->values[1];
    }
    if (ok && dim && s->schema.dim != dim) {
        const char *fix = dimension_sql(s, dim);
        ok = fix && pg_op_stmt(op, fix, 0);
        sc->dim = dim;
    }
    if (ok) add_run_record(s, op, sc->run);
    pg_stmt *st = ok ? pg_op_stmt(op, s->sql[Q_UPSERT], 9) : NULL;
    if (st) {
        pg_stmt_text(st, 0, uri);
        pg_stmt_text(st, 1, sl_doc_hash(doc));
        pg_stmt_text(st, 2, sl_doc_fingerprint(doc));
        pg_stmt_text(st, 3, sl_doc_media_type(doc));
        pg_stmt_text(st, 4, num(op, (long long)nbytes));
        pg_stmt_text(st, 5, sl_doc_meta_get(doc, "title"));
        pg_stmt_text(st, 6, meta_kept);
        pg_stmt_text(st, 7, num(op, (long long)nchunks));
        pg_stmt_text(st, 8, num(op, (long long)sc->run));
        ok = st->values[4] && st->values[7] && st->values[8];
    }
    pg_stmt *del = st && ok ? pg_op_stmt(op, s->sql[Q_DELETE_CHUNKS], 1) : NULL;
    if (del) pg_stmt_text(del, 0, uri);
    if (!del) pg_op_fail(op, SL_ENOMEM, "store '%s': out of memory", uri);
    for (size_t from = 0; from < nchunks && !op->code; from += CHUNKS_PER_INSERT)
        add_chunk_batch(s, op, doc, from,
                        from + CHUNKS_PER_INSERT < nchunks ? from + CHUNKS_PER_INSERT : nchunks);
    /* stored: off the failure list, in the same transaction */
    pg_stmt *clear = op->code ? NULL : pg_op_stmt(op, s->sql[Q_CLEAR_FAILURE], 1);
    if (clear) pg_stmt_text(clear, 0, uri);
    if (!op->code && (!clear || !pg_op_stmt(op, s->sql[Q_COMMIT], 0)))
        pg_op_fail(op, SL_ENOMEM, "store '%s': out of memory", uri);
    return pg_pool_submit(s->pool, op);
}

/* --- prune --- */

static int prune_result(pg_op *op, int stmt, const PGresult *res) {
    if (stmt != op->nstmts - 1 || PQntuples(res) != 1) return 0;
    long long n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    op->value = n > INT_MAX ? INT_MAX : (int)n;
    return 0;
}

static int prune(sl_call *call, const char *const *roots, size_t nroots, uint64_t run_id) {
    sink *s = sl_call_state(call);
    if (nroots && !roots) return sl_fail(call, SL_EINVAL, "prune: no roots");
    for (size_t i = 0; i < nroots; i++)
        if (!roots[i] || !*roots[i]) return sl_fail(call, SL_EINVAL, "prune: root %zu is empty", i);
    if (nroots > INT32_MAX) return sl_fail(call, SL_EINVAL, "prune: too many roots");
    pg_op *op = pg_op_new(call, "prune", nroots ? roots[0] : "");
    if (!op) return sl_fail(call, SL_ENOMEM, "prune: out of memory");
    pg_buf root = {0}, lo = {0}, hi = {0};
    pg_array_header(&root, PG_OID_TEXT, (int32_t)nroots, false);
    pg_array_header(&lo, PG_OID_TEXT, (int32_t)nroots, false);
    pg_array_header(&hi, PG_OID_TEXT, (int32_t)nroots, false);
    for (size_t i = 0; i < nroots; i++) {
        size_t n = strlen(roots[i]);
        if (!text_ok(roots[i], n)) {
            free(root.p);
            free(lo.p);
            free(hi.p);
            pg_op_free(op);
            return sl_fail(call, SL_EBADINPUT, "prune '%s': the root is not valid UTF-8", roots[i]);
        }
        bool slash = roots[i][n - 1] == '/';
        pg_array_elem(&root, roots[i], (int32_t)n);
        /* lo = root/ and hi = root0: the byte after '/' */
        pg_put_i32(&lo, (int32_t)(n + !slash));
        pg_put(&lo, roots[i], n);
        if (!slash) pg_put(&lo, "/", 1);
        pg_put_i32(&hi, (int32_t)(n + !slash));
        pg_put(&hi, roots[i], slash ? n - 1 : n);
        pg_put(&hi, "0", 1);
    }
    add_run_record(s, op, run_id);
    op->on_result = prune_result;
    pg_stmt *st = pg_op_stmt(op, s->sql[Q_PRUNE], 4);
    int l1 = 0, l2 = 0, l3 = 0;
    const char *p1 = st ? adopt(op, &root, &l1) : NULL;
    const char *p2 = p1 ? adopt(op, &lo, &l2) : NULL;
    const char *p3 = p2 ? adopt(op, &hi, &l3) : NULL;
    if (!p3) {
        free(root.p);
        free(lo.p);
        free(hi.p);
        pg_op_fail(op, SL_ENOMEM, "prune: out of memory");
    } else {
        pg_stmt_text(st, 0, num(op, (long long)run_id));
        pg_stmt_binary(st, 1, p1, l1);
        pg_stmt_binary(st, 2, p2, l2);
        pg_stmt_binary(st, 3, p3, l3);
    }
    return pg_pool_submit(s->pool, op);
}

/* --- the failure list, stored uris, probe (ABI 1.3) --- */

static int failures_record(sl_call *call, const sl_failure_row *rows, size_t n) {
    sink *s = sl_call_state(call);
    if (n > INT32_MAX) return sl_fail(call, SL_EINVAL, "recording failures: too many rows");
    pg_buf u = {0}, st = {0}, r = {0};
    int32_t k = 0;
    for (size_t i = 0; i < n; i++) /* a uri PostgreSQL text cannot hold was never looked up either */
        if (rows[i].uri && text_ok(rows[i].uri, strlen(rows[i].uri))) k++;
    if (k == 0) return 0;
    pg_array_header(&u, PG_OID_TEXT, k, false);
    pg_array_header(&st, PG_OID_TEXT, k, false);
    pg_array_header(&r, PG_OID_TEXT, k, false);
    for (size_t i = 0; i < n; i++) {
        if (!rows[i].uri || !text_ok(rows[i].uri, strlen(rows[i].uri))) continue;
        const char *stage = rows[i].stage ? rows[i].stage : "";
        const char *why = rows[i].reason ? rows[i].reason : "";
        if (!text_ok(stage, strlen(stage))) stage = "?";
        if (!text_ok(why, strlen(why))) why = "(the reason is not valid UTF-8)";
        pg_array_elem(&u, rows[i].uri, (int32_t)strlen(rows[i].uri));
        pg_array_elem(&st, stage, (int32_t)strlen(stage));
        pg_array_elem(&r, why, (int32_t)strlen(why));
    }
    pg_op *op = pg_op_new(call, "record failures", s->where);
    pg_stmt *q = op ? pg_op_stmt(op, s->sql[Q_RECORD_FAILURES], 3) : NULL;
    int l1 = 0, l2 = 0, l3 = 0;
    const char *p1 = q ? adopt(op, &u, &l1) : NULL;
    const char *p2 = p1 ? adopt(op, &st, &l2) : NULL;
    const char *p3 = p2 ? adopt(op, &r, &l3) : NULL;
    if (!p3) {
        free(u.p);
        free(st.p);
        free(r.p);
        if (!op) return sl_fail(call, SL_ENOMEM, "recording failures: out of memory");
        pg_op_fail(op, SL_ENOMEM, "recording failures: out of memory");
    } else {
        pg_stmt_binary(q, 0, p1, l1);
        pg_stmt_binary(q, 1, p2, l2);
        pg_stmt_binary(q, 2, p3, l3);
    }
    return pg_pool_submit(s->pool, op);
}

typedef struct each_ctx {
    sl_failure_fn each_failure;
    sl_uri_fn each_uri;
    void *arg;
} each_ctx;

static int failures_result(pg_op *op, int stmt, const PGresult *res) {
    each_ctx *ec = op->arg;
    for (int i = 0; i < PQntuples(res); i++) {
        sl_failure_row row = {
            .uri = PQgetvalue(res, i, 0),
            .stage = PQgetvalue(res, i, 1),
            .reason = PQgetvalue(res, i, 2),
            .attempts = strtoll(PQgetvalue(res, i, 3), NULL, 10),
            .first_at = strtoll(PQgetvalue(res, i, 4), NULL, 10),
            .last_at = strtoll(PQgetvalue(res, i, 5), NULL, 10),
        };
        ec->each_failure(ec->arg, &row);
    }
    return 0;
}

static int uris_result(pg_op *op, int stmt, const PGresult *res) {
    each_ctx *ec = op->arg;
    for (int i = 0; i < PQntuples(res); i++) ec->each_uri(ec->arg, PQgetvalue(res, i, 0));
    return 0;
}

/* One read statement whose rows go to `on_result`. */
static int read_op(sl_call *call, const char *what, int q, int (*on_result)(pg_op *, int, const PGresult *),
                   const each_ctx *ec) {
    sink *s = sl_call_state(call);
    pg_op *op = pg_op_new(call, what, s->where);
    each_ctx *kept = op ? pg_op_alloc(op, sizeof *kept) : NULL;
    if (!kept) {
        pg_op_free(op);
        return sl_fail(call, SL_ENOMEM, "%s: out of memory", what);
    }
    *kept = *ec;
    op->arg = kept;
    op->on_result = on_result;
    if (!pg_op_stmt(op, s->sql[q], 0)) pg_op_fail(op, SL_ENOMEM, "%s: out of memory", what);
    return pg_pool_submit(s->pool, op);
}

static int failures_list(sl_call *call, sl_failure_fn each, void *arg) {
    const sink *s = sl_call_state(call);
    if (s->empty || s->schema.no_failures) return 0;
    each_ctx ec = {.each_failure = each, .arg = arg};
    return read_op(call, "list failures", Q_FAILURES, failures_result, &ec);
}

static int documents(sl_call *call, sl_uri_fn each, void *arg) {
    if (((sink *)sl_call_state(call))->empty) return 0;
    each_ctx ec = {.each_uri = each, .arg = arg};
    return read_op(call, "list documents", Q_URIS, uris_result, &ec);
}

static int probe_result(pg_op *op, int stmt, const PGresult *res) { return 0; }

/* A statement on a connection of the pool: a session, and the tables. */
static int probe(sl_call *call) {
    if (((sink *)sl_call_state(call))->empty) return 0; /* init connected: no tables to read yet */
    each_ctx ec = {0};
    return read_op(call, "probe", Q_PROBE, probe_result, &ec);
}

/* --- store check --- */

/* `sluice store check`: on a blocking session of its own (as claim), the
 * schema version read at init, then the counts. PostgreSQL guards its own
 * pages (WAL, and checksums when the cluster has them); what is checked
 * here is what sluice relies on: the tables are there, of this version,
 * and no chunk lacks its document. */
static int64_t pg_count(PGconn *pg, const char *sql) {
    PGresult *r = PQexec(pg, sql);
    int64_t n = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                    ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
                    : -1;
    PQclear(r);
    return n;
}

static int check(sl_call *call, sl_store_health *out, sl_line_fn problem, void *arg) {
    sink *s = sl_call_state(call);
    if (s->empty) return 0;
    PGconn *pg = PQconnectdbParams(s->keys, s->values, 0);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        char msg[800];
        snprintf(msg, sizeof msg, "%s", pg ? PQerrorMessage(pg) : "out of memory");
        pg_scrub(msg, sizeof msg, s->password);
        PQfinish(pg);
        return sl_fail(call, SL_EFATAL, "cannot connect to %s: %s", s->where, msg);
    }
    const pg_names *n = &s->schema.names;
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", n->documents);
    out->documents = pg_count(pg, sql);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", n->chunks);
    out->chunks = pg_count(pg, sql);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE embedding IS NOT NULL", n->chunks);
    out->vectors = pg_count(pg, sql);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM %s c WHERE NOT EXISTS (SELECT 1 FROM %s d WHERE d.id = c.doc_id)",
             n->chunks, n->documents);
    out->orphans = pg_count(pg, sql);
    char line[1200];
    if (out->documents < 0 || out->chunks < 0 || out->vectors < 0 || out->orphans < 0) {
        snprintf(line, sizeof line, "%s: the tables cannot be counted: %s", s->where, PQerrorMessage(pg));
        pg_scrub(line, sizeof line, s->password);
        problem(arg, line);
        out->damaged = 1;
    }
    if (out->orphans > 0) {
        snprintf(line, sizeof line, "%lld chunks in %s belong to no document", (long long)out->orphans,
                 n->chunks);
        problem(arg, line);
        out->damaged = 1;
    }
    PQfinish(pg);
    return 0;
}

/* --- query --- */

typedef struct query_ctx {
    sl_hits *hits;
    int stmt;
} query_ctx;

static int query_result(pg_op *op, int stmt, const PGresult *res) {
    query_ctx *qc = op->arg;
    if (stmt != qc->stmt) return 0;
    for (int r = 0; r < PQntuples(res); r++) {
        if (PQgetisnull(res, r, 6)) continue; /* a zero vector has no direction */
        double score = strtod(PQgetvalue(res, r, 6), NULL);
        if (isnan(score)) continue;
        int rc = sl_hits_add(
            qc->hits, score, PQgetvalue(res, r, 0), (uint32_t)strtoul(PQgetvalue(res, r, 1), NULL, 10),
            (uint32_t)strtoul(PQgetvalue(res, r, 2), NULL, 10),
            (uint32_t)strtoul(PQgetvalue(res, r, 3), NULL, 10), PQgetvalue(res, r, 4), PQgetvalue(res, r, 5));
        if (rc == 0 && !PQgetisnull(res, r, 7))
            rc = slj_hit_attrs(qc->hits, PQgetvalue(res, r, 7), (size_t)PQgetlength(res, r, 7));
        if (rc < 0) return pg_op_fail(op, rc, "query: cannot add a hit: %s", sl_strerror(rc));
    }
    return 0;
}

/* pgvector's text form, "[0.1,0.2,...]", exact for float4 (9 digits). */
static char *vector_text(pg_op *op, const float *v, uint32_t dim) {
    pg_buf b = {0};
    pg_put(&b, "[", 1);
    for (uint32_t i = 0; i < dim; i++) {
        char f[32];
        int n = snprintf(f, sizeof f, "%s%.9g", i ? "," : "", (double)v[i]);
        pg_put(&b, f, (size_t)n);
    }
    pg_put(&b, "]", 1);
    int len;
    char *p = (char *)adopt(op, &b, &len);
    return p;
}

static int query(sl_call *call, const float *vector, uint32_t dim, uint32_t k, sl_hits *hits) {
    sink *s = sl_call_state(call);
    if (s->empty) return 0;
    if (!vector || dim == 0 || !hits) return sl_fail(call, SL_EINVAL, "query: no vector");
    if (k == 0) return 0;
    for (uint32_t i = 0; i < dim; i++)
        if (!isfinite(vector[i]))
            return sl_fail(call, SL_EBADINPUT, "query: the vector holds NaN or infinity");
    if (s->schema.dim && s->schema.dim != dim)
        return sl_fail(call, SL_EFATAL, "query: the store holds %u-dimensional vectors; the query has %u",
                       s->schema.dim, dim);
    pg_op *op = pg_op_new(call, "query", s->where);
    query_ctx *qc = op ? pg_op_alloc(op, sizeof *qc) : NULL;
    if (!qc) {
        pg_op_free(op);
        return sl_fail(call, SL_ENOMEM, "query: out of memory");
    }
    qc->hits = hits;
    op->arg = qc;
    op->on_result = query_result;
    uint32_t limit = k > INT32_MAX ? INT32_MAX : k;
    if (s->schema.pgvector) {
        const char *text = vector_text(op, vector, dim);
        pg_op_stmt(op, s->sql[Q_BEGIN], 0);
        pg_stmt *ef = pg_op_stmt(op, s->sql[Q_EF_SEARCH], 1);
        if (ef) pg_stmt_text(ef, 0, num(op, limit < 100 ? 100 : limit > 1000 ? 1000 : limit));
        qc->stmt = op->nstmts;
        pg_stmt *st = pg_op_stmt(op, s->sql[Q_QUERY], 2);
        if (st) {
            pg_stmt_text(st, 0, text);
            pg_stmt_text(st, 1, num(op, limit));
        }
        if (!pg_op_stmt(op, s->sql[Q_COMMIT], 0) || !ef || !st || !text || !ef->values[0] || !st->values[1])
            pg_op_fail(op, SL_ENOMEM, "query: out of memory");
    } else {
        pg_buf b = {0};
        double qq = 0;
        pg_array_header(&b, PG_OID_FLOAT4, (int32_t)dim, false);
        for (uint32_t i = 0; i < dim; i++) {
            pg_array_float4(&b, vector[i]);
            qq += (double)vector[i] * vector[i];
        }
        char norm[64];
        snprintf(norm, sizeof norm, "%.17g", sqrt(qq));
        int len = 0;
        const char *arr = adopt(op, &b, &len);
        qc->stmt = op->nstmts;
        pg_stmt *st = pg_op_stmt(op, s->sql[Q_QUERY], 3);
        if (st && arr) {
            pg_stmt_binary(st, 0, arr, len);
            pg_stmt_text(st, 1, num(op, limit));
            pg_stmt_text(st, 2, pg_op_strdup(op, norm));
        }
        if (!st || !arr || !st->values[1] || !st->values[2])
            pg_op_fail(op, SL_ENOMEM, "query: out of memory");
    }
    return pg_pool_submit(s->pool, op);
}

static int keyword(sl_call *call, const char *text, uint32_t k, sl_hits *hits) {
    sink *s = sl_call_state(call);
    if (!text || !hits) return sl_fail(call, SL_EINVAL, "keyword: no text");
    if (s->schema.version < PG_SCHEMA_TSV)
        return sl_fail(
            call, SL_KEYWORD_NO_INDEX,
            "the store %s has schema version %d, from before the keyword index: it is built the next "
            "time sluice writes the store (sluice run)",
            s->schema.names.chunks, s->schema.version);
    if (k == 0) return 0;
    pg_op *op = pg_op_new(call, "keyword", s->where);
    query_ctx *qc = op ? pg_op_alloc(op, sizeof *qc) : NULL;
    if (!qc) {
        pg_op_free(op);
        return sl_fail(call, SL_ENOMEM, "keyword: out of memory");
    }
    qc->hits = hits;
    qc->stmt = 0;
    op->arg = qc;
    op->on_result = query_result;
    pg_stmt *st = pg_op_stmt(op, s->sql[Q_KEYWORD], 2);
    if (st) {
        pg_stmt_text(st, 0, pg_op_strdup(op, text));
        pg_stmt_text(st, 1, num(op, k > INT32_MAX ? INT32_MAX : k));
    }
    if (!st || !st->values[0] || !st->values[1]) pg_op_fail(op, SL_ENOMEM, "keyword: out of memory");
    return pg_pool_submit(s->pool, op);
}

/* --- shared rate limits (ABI 1.5) --- */

static int limit_grant(sl_call *call, const char *key, double rate_per_s, double burst, double want,
                       double *granted) {
    sink *s = sl_call_state(call);
    if (!s->limits) {
        *granted = 0;
        return sl_fail(call, SL_EFATAL, "%s: opened read-only, it keeps no shared limit", s->where);
    }
    return pg_limit_grant(s->limits, s->pool, call, key, rate_per_s, burst, want, granted);
}

/* --- the job queue (ABI 1.5): queue.c's operations on this sink's pool --- */

static int queue_join(sl_call *call, const char *node) { return lock_store(call, true); }
static int queue_enqueue(sl_call *call, const sl_queue_item *items, size_t n, sl_queue_counts *out) {
    return pg_queue_enqueue(call, &((sink *)sl_call_state(call))->queue, items, n, out);
}
static int queue_lease(sl_call *call, const char *node, uint32_t max, int64_t lease_ms, sl_queue_job_fn each,
                       void *arg) {
    return pg_queue_lease(call, &((sink *)sl_call_state(call))->queue, node, max, lease_ms, each, arg);
}
static int queue_heartbeat(sl_call *call, const char *node, int64_t lease_ms) {
    return pg_queue_heartbeat(call, &((sink *)sl_call_state(call))->queue, node, lease_ms);
}
static int queue_done(sl_call *call, int64_t id, int64_t token) {
    return pg_queue_done(call, &((sink *)sl_call_state(call))->queue, id, token);
}
static int queue_fail(sl_call *call, int64_t id, int64_t token, const char *stage, const char *reason,
                      uint32_t max_attempts, int64_t backoff_ms) {
    return pg_queue_fail(call, &((sink *)sl_call_state(call))->queue, id, token, stage, reason, max_attempts,
                         backoff_ms);
}
static int queue_release(sl_call *call, const char *node) {
    return pg_queue_release(call, &((sink *)sl_call_state(call))->queue, node);
}
static int queue_status(sl_call *call, sl_queue_stats *out, sl_queue_node_fn each, void *arg) {
    sink *s = sl_call_state(call);
    if (s->empty)
        return sl_fail(call, SL_EFATAL, "%s: there is no store (and so no queue) here yet", s->where);
    return pg_queue_status(call, &s->queue, out, each, arg);
}

static int queue_wait(sl_call *call, int64_t timeout_ms) {
    sink *s = sl_call_state(call);
    return pg_queue_wait(call, &s->queue, timeout_ms, s->keys, s->values);
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "sink-postgres",
    .version = "1.2.0",
    .summary = "stores documents, chunks and vectors in PostgreSQL (pgvector HNSW when present, else real[]; "
               "tsvector keyword search)",
    .role = SL_ROLE_SINK,
    .bottleneck = SL_IO,
    .options = options,
    .config_size = sizeof(pg_config),
    .init = init,
    .fini = fini,
    .lookup = lookup,
    .store = store,
    .prune = prune,
    .query = query,
    .claim = claim,
    .failures_record = failures_record,
    .failures_list = failures_list,
    .documents = documents,
    .probe = probe,
    .keyword = keyword,
    .check = check,
    .limit_grant = limit_grant,
    .queue_join = queue_join,
    .queue_enqueue = queue_enqueue,
    .queue_lease = queue_lease,
    .queue_heartbeat = queue_heartbeat,
    .queue_done = queue_done,
    .queue_fail = queue_fail,
    .queue_release = queue_release,
    .queue_status = queue_status,
    .queue_wait = queue_wait,
};

SL_PLUGIN_EXPORT(desc)
