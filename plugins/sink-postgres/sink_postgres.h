/* sink_postgres.h - what the files of sink-postgres share: the options, the
 * sink's state, and the three rooms it is built from.
 *
 *   sink_postgres.c  the plugin: options, init/fini, lookup/store/prune/query
 *                    as statements and what their results mean
 *   pool.c           connections on the loop: libpq in non-blocking pipeline
 *                    mode, one operation per connection, reconnects
 *   schema.c         init-time work on one blocking connection: connect,
 *                    create and migrate the versioned schema, detect pgvector
 *   encode.c         parameters in PostgreSQL's binary array format, the
 *                    metadata as JSON, and scrubbing the password from text
 *   limits.c         the token buckets shared rate limits are drawn from
 */
#ifndef SINK_POSTGRES_H
#define SINK_POSTGRES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <sluice/sluice.h>

typedef struct pg_config {
    const char *host;
    int64_t port;
    const char *dbname;
    const char *user;
    const char *password_env;
    const char *sslmode;
    int64_t connect_timeout; /* ms */
    const char *schema;
    const char *table_prefix;
    int64_t pool_size;
    const char *vector; /* auto|pgvector|array */
} pg_config;

/* --- encode.c --- */

typedef struct pg_buf {
    char *p;
    size_t n, cap;
    bool oom;
} pg_buf;

void pg_put(pg_buf *b, const void *p, size_t len);
void pg_put_i32(pg_buf *b, int32_t v);
/* A one-dimensional array header in the binary format (array_recv):
 * `n` elements of type `elem_oid`, the first `has_null` if any is NULL. */
void pg_array_header(pg_buf *b, uint32_t elem_oid, int32_t n, bool has_null);
/* One element: its length then its bytes; len < 0 writes NULL. */
void pg_array_elem(pg_buf *b, const void *p, int32_t len);
/* One float4 element, big-endian as the wire wants. */
void pg_array_float4(pg_buf *b, float f);
void pg_array_int4(pg_buf *b, int32_t v);

#define PG_OID_INT4 23u
#define PG_OID_TEXT 25u
#define PG_OID_FLOAT4 700u

/* Replaces every occurrence of `secret` in s (in place) with "***" and
 * turns newlines and tabs into spaces: libpq's messages are multi-line. */
void pg_scrub(char *s, size_t cap, const char *secret);

/* --- pool.c --- */

typedef struct pg_pool pg_pool;
typedef struct pg_op pg_op;

/* One statement of an operation. Parameter arrays live in the op's memory;
 * libpq copies them when the statement is sent. */
typedef struct pg_stmt {
    const char *sql;
    int nparams;
    const char **values;
    int *lengths;
    int *formats; /* 0 text, 1 binary */
} pg_stmt;

typedef struct pg_block pg_block;

/* An operation: the statements of one sink call, sent in one pipeline and
 * answered by one sync, on one connection. */
struct pg_op {
    sl_call *call;
    const char *what;    /* "store", "lookup", ...: for messages */
    const char *subject; /* the document's uri, or the root: for messages */
    pg_stmt *stmts;
    int nstmts, capstmts;
    /* Each statement's successful result, in order; a negative return fails
     * the op with that code (after sl_fail-like pg_op_fail). */
    int (*on_result)(pg_op *op, int stmt, const PGresult *res);
    /* After the op ended, before the call completes: rc is what the call
     * answers. */
    void (*on_end)(pg_op *op, int rc);
    void *arg;
    int value; /* the call's answer on success (lookup's SL_LOOKUP_*, prune's count) */
    int dim;   /* store: the dimension this op fixes, if it does */

    /* the pool's */
    pg_block *blocks;
    pg_op *next;
    int attempts; /* times the connection it was given proved closed before it was sent */
    int code;     /* first failure, 0 if none */
    int64_t retry_after_ms;
    char msg[900];
};

pg_op *pg_op_new(sl_call *call, const char *what, const char *subject);
void *pg_op_alloc(pg_op *op, size_t size); /* zeroed, freed with the op */
char *pg_op_strdup(pg_op *op, const char *s);
/* Appends a statement with room for n parameters (all text, NULL); NULL on OOM. */
pg_stmt *pg_op_stmt(pg_op *op, const char *sql, int nparams);
void pg_stmt_text(pg_stmt *st, int i, const char *value); /* NULL: SQL NULL */
void pg_stmt_binary(pg_stmt *st, int i, const char *p, int len);
/* Records the op's first failure. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int pg_op_fail(pg_op *op, int code, const char *fmt, ...);
void pg_op_free(pg_op *op);

typedef struct pg_pool_conf {
    sl_instance *inst;
    const char *const *keys; /* libpq connection keywords, NULL-terminated */
    const char *const *values;
    const char *where;  /* "postgres at HOST:PORT database DB" */
    const char *secret; /* the password to scrub from messages; may be NULL */
    int size;
    uint64_t connect_timeout_ms;
} pg_pool_conf;

/* Makes a pool of conf->size connections; `first` (may be NULL) is an open
 * blocking connection made by init, taken over as the first one. The
 * others connect on demand, asynchronously. The conf's strings must live
 * as long as the pool. */
int pg_pool_new(const pg_pool_conf *conf, PGconn *first, pg_pool **out);
/* Runs op on a free connection now or when one is free. Returns SL_PENDING
 * (the op then completes its call with sl_call_done), or a negative code
 * after sl_fail when it cannot be run at all (the op is then freed). */
int pg_pool_submit(pg_pool *pool, pg_op *op);
/* Closes every connection. Ops still queued are dropped without answer:
 * call only when no call is in flight. */
void pg_pool_free(pg_pool *pool);

/* The SL_E* kind of a server error, from its SQLSTATE. */
int pg_error_kind(const char *sqlstate);

/* --- schema.c --- */

typedef struct pg_names {
    /* quoted, schema-qualified identifiers, e.g. "public"."sluice_chunks" */
    char *meta, *runs, *documents, *chunks;
    char *hnsw_index; /* the index's own name: not qualified (CREATE INDEX names no schema) */
    char *failures;   /* the failure list (sluice failed): made on open, outside the versioned schema */
    char *tsv_index;  /* the keyword index's own name, like hnsw_index */
} pg_names;

typedef struct pg_schema {
    pg_names names;
    bool pgvector;    /* vector(n) with HNSW; else real[] */
    uint32_t dim;     /* the dimension of stored vectors; 0 until the first store with vectors */
    int version;      /* schema version found (after migration: current) */
    bool no_failures; /* read-only open of a store from before the failure list (no table) */
} pg_schema;

/* SCHEMA.PREFIXNAME, each part quoted (PQescapeIdentifier), or PREFIXNAME
 * alone when schema is NULL or empty; malloc'd, NULL when out of memory. */
char *pg_qualified(PGconn *conn, const char *schema, const char *prefix, const char *name);

/* On the blocking init connection: creates the schema or migrates it,
 * decides pgvector or real[], reads the stored dimension. On failure
 * returns SL_EFATAL with a message in err. */
int pg_schema_open(PGconn *conn, const pg_config *c, pg_schema *out, char *err, size_t errlen);
void pg_schema_free(pg_schema *s);
/* The read-only commands' open (SL_STORE_READ, PEEK, SALVAGE): reads the
 * schema version, vector kind and dimension, creates and migrates nothing.
 * Tables that are absent set *missing (with the words in err) and return 0;
 * a store from PG_SCHEMA_READABLE on is read as it is (out->version), an
 * older or newer one is SL_EFATAL. */
int pg_schema_read(PGconn *conn, const pg_config *c, pg_schema *out, bool *missing, char *err, size_t errlen);

/* --- limits.c --- */

/* The shared rate-limit buckets (limit_grant): SCHEMA.sluice_rate_limits,
 * made by the first grant that needs it. */
typedef struct pg_limits pg_limits;
/* conn quotes the names; NULL when out of memory. */
pg_limits *pg_limits_new(PGconn *conn, const char *schema);
void pg_limits_free(pg_limits *l);
/* One grant from bucket `key` (see the SDK's limit_grant) as one operation
 * on the pool: SL_PENDING, or a failure after sl_fail. */
int pg_limit_grant(pg_limits *l, pg_pool *pool, sl_call *call, const char *key, double rate_per_s,
                   double burst, double want, double *granted);
/* --- queue.c --- */

/* The job queue's statements (queue.c names each). */
enum {
    QQ_ACK,
    QQ_FENCE,
    QQ_DONE,
    QQ_RECLAIM,
    QQ_LEASE,
    QQ_HEARTBEAT,
    QQ_FAIL,
    QQ_RELEASE,
    QQ_ENQUEUE,
    QQ_NOTIFY,
    QQ_COUNTS,
    QQ_NODES,
    QQ_COUNT
};

typedef struct pg_queue {
    char *jobs;     /* [schema.]PREFIXjobs, quoted */
    char *ack_fn;   /* [schema.]PREFIXqueue_ack, quoted */
    char *fence_fn; /* [schema.]PREFIXqueue_fence, quoted */
    char *channel;  /* PREFIXjobs: what enqueue NOTIFYs and nodes LISTEN on (unquoted) */
    char *sql[QQ_COUNT];
    pg_pool *pool;     /* the sink's: every queue call is one op on it */
    const char *where; /* for messages */
    sl_instance *inst;
    PGconn *listen_pg; /* LISTEN channel, made on the first wait */
    sl_watch *watch;   /* on listen_pg's socket, paused unless a wait is in flight */
    sl_timer *wait_timer;
    sl_call *waiting;
} pg_queue;

/* Inside schema.c's migration transaction: the jobs table, its indexes and
 * the ack function, made if absent. SL_EFATAL with a message in err. */
int pg_queue_create(PGconn *conn, const pg_config *c, char *err, size_t errlen);
/* The names and statements; SL_ENOMEM or 0. Freed with pg_queue_free. */
int pg_queue_names(PGconn *conn, const pg_config *c, const pg_names *n, pg_queue *q);
void pg_queue_free(pg_queue *q);
/* The ABI 1.5 queue callbacks (plugin.h), on the pool; the sink's own
 * callbacks pass its pg_queue. */
int pg_queue_lease(sl_call *call, const pg_queue *q, const char *node, uint32_t max, int64_t lease_ms,
                   sl_queue_job_fn each, void *arg);
int pg_queue_heartbeat(sl_call *call, const pg_queue *q, const char *node, int64_t lease_ms);
int pg_queue_done(sl_call *call, const pg_queue *q, int64_t id, int64_t token);
int pg_queue_release(sl_call *call, const pg_queue *q, const char *node);
int pg_queue_fail(sl_call *call, const pg_queue *q, int64_t id, int64_t token, const char *stage,
                  const char *reason, uint32_t max_attempts, int64_t backoff_ms);
int pg_queue_enqueue(sl_call *call, const pg_queue *q, const sl_queue_item *items, size_t n,
                     sl_queue_counts *out);
int pg_queue_status(sl_call *call, const pg_queue *q, sl_queue_stats *out, sl_queue_node_fn each, void *arg);
/* An idle node's wait: 1 at once when a NOTIFY is pending; else SL_PENDING,
 * answered 1 at the next NOTIFY or 0 after timeout_ms; 0 at once when no
 * LISTEN session can be had (the node then polls). */
int pg_queue_wait(sl_call *call, pg_queue *q, int64_t timeout_ms, const char *const *keys,
                  const char *const *values);

#define PG_SCHEMA_VERSION 3
#define PG_SCHEMA_READABLE 2 /* the oldest a read-only command answers from as it is */
#define PG_SCHEMA_TSV 3      /* the first with the keyword index (chunks.tsv) */

#endif
