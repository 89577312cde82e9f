/* limits.c - sink-postgres's shared rate-limit buckets (limit_grant, ABI
 * 1.5): the token buckets that let many sluice processes share a provider
 * account's rpm and tpm (the core's limits.h says how they are sized and
 * spent).
 *
 * The table is SCHEMA.sluice_rate_limits, one row per bucket, keyed by the
 * bucket's name (the provider's plugin, url, model and a hash of its key, or
 * the stage's limit_name; never the key). It has no table_prefix: a
 * provider's limits belong to the account, not to a store, so two stores in
 * one database (two prefixes) that use the same account draw from the same
 * row. It is made by the first grant that needs it (under an advisory lock,
 * so two processes starting together do not race), not with the store's
 * schema: a store that shares no limit has no such table.
 *
 * A grant is one UPDATE ... RETURNING on the row: it refills the bucket by
 * the time elapsed since its last grant, by the server's clock
 * (statement_timestamp(): one instant for the whole statement, so every
 * expression sees the same time), caps it at the burst, and takes
 * min(want, whole tokens available). The row lock serialises grants across
 * processes; there is no read-modify-write on the client. `at` only moves
 * forward (a statement that waited for the lock may carry an earlier time
 * than the grant before it: it then refills nothing). A row that does not
 * exist yet is inserted full by the first grant of its name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink_postgres.h"

struct pg_limits {
    char *table; /* "schema"."sluice_rate_limits" */
    char *sql_lock, *sql_create, *sql_insert, *sql_grant;
    bool table_ready;
    char **keys; /* rows this process has made sure of */
    size_t nkeys;
};

#define AVAIL                                                                                                \
    "least($3::float8, b.tokens + $2::float8 * greatest(0::float8, extract(epoch FROM "                      \
    "statement_timestamp() "                                                                                 \
    "- b.at)::float8))"
#define GRANT "least($4::float8, floor(" AVAIL "))"

static char *sql_format(const char *fmt, const char *table) {
    size_t n = strlen(fmt) + 4 * strlen(table) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, fmt, table, table, table, table);
    return s;
}

pg_limits *pg_limits_new(PGconn *conn, const char *schema) {
    pg_limits *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->table = pg_qualified(conn, schema, "", "sluice_rate_limits");
    if (!l->table) {
        free(l);
        return NULL;
    }
    /* %1$s is not portable to every printf: the table is repeated */
    l->sql_lock = strdup("SELECT pg_advisory_xact_lock(hashtext('sluice'), hashtext('sluice_rate_limits'))");
    l->sql_create =
        sql_format("CREATE TABLE IF NOT EXISTS %s (name text PRIMARY KEY, tokens float8 NOT NULL, "
                   "granted float8 NOT NULL DEFAULT 0, rate float8 NOT NULL, burst float8 NOT NULL, "
                   "at timestamptz NOT NULL)",
                   l->table);
    l->sql_insert = sql_format("INSERT INTO %s (name, tokens, rate, burst, at) VALUES ($1, $3::float8, "
                               "$2::float8, $3::float8, statement_timestamp()) ON CONFLICT (name) DO NOTHING",
                               l->table);
    l->sql_grant = sql_format("UPDATE %s AS b SET tokens = " AVAIL " - " GRANT ", granted = " GRANT
                              ", at = greatest(b.at, statement_timestamp()), rate = $2::float8, burst = "
                              "$3::float8 WHERE b.name = $1 RETURNING b.granted, b.tokens",
                              l->table);
    if (!l->sql_lock || !l->sql_create || !l->sql_insert || !l->sql_grant) {
        pg_limits_free(l);
        return NULL;
    }
    return l;
}

static void forget_keys(pg_limits *l) {
    for (size_t i = 0; i < l->nkeys; i++) free(l->keys[i]);
    free(l->keys);
    l->keys = NULL;
    l->nkeys = 0;
}

void pg_limits_free(pg_limits *l) {
    if (!l) return;
    forget_keys(l);
    free(l->table);
    free(l->sql_lock);
    free(l->sql_create);
    free(l->sql_insert);
    free(l->sql_grant);
    free(l);
}

static bool key_ready(const pg_limits *l, const char *key) {
    for (size_t i = 0; i < l->nkeys; i++)
        if (strcmp(l->keys[i], key) == 0) return true;
    return false;
}

typedef struct grant_ctx {
    pg_limits *l;
    double *granted;
    char *key;
    int last;   /* the UPDATE's statement */
    bool found; /* the UPDATE found the row */
} grant_ctx;

static int grant_result(pg_op *op, int stmt, const PGresult *res) {
    grant_ctx *g = op->arg;
    if (stmt != g->last) return 0;
    g->found = PQntuples(res) == 1;
    *g->granted = g->found ? strtod(PQgetvalue(res, 0, 0), NULL) : 0;
    return 0;
}

static void grant_end(pg_op *op, int rc) {
    grant_ctx *g = op->arg;
    pg_limits *l = g->l;
    if (rc != 0) { /* the table or the row may have gone: make sure of them again next time */
        l->table_ready = false;
        forget_keys(l);
        return;
    }
    l->table_ready = true;
    if (!g->found || key_ready(l, g->key)) return; /* a row deleted meanwhile: inserted next time */
    char **grown = realloc(l->keys, (l->nkeys + 1) * sizeof *grown);
    char *k = grown ? strdup(g->key) : NULL;
    if (grown) l->keys = grown;
    if (k) l->keys[l->nkeys++] = k;
}

int pg_limit_grant(pg_limits *l, pg_pool *pool, sl_call *call, const char *key, double rate_per_s,
                   double burst, double want, double *granted) {
    *granted = 0;
    if (!key || !*key || strlen(key) > 200 || !(rate_per_s >= 0) || !(burst >= 1) || !(want >= 0))
        return sl_fail(call, SL_EINVAL, "shared limit: bad arguments (key, rate %g, burst %g, want %g)",
                       rate_per_s, burst, want);
    pg_op *op = pg_op_new(call, "shared limit", key);
    grant_ctx *g = op ? pg_op_alloc(op, sizeof *g) : NULL;
    if (!g) {
        pg_op_free(op);
        return sl_fail(call, SL_ENOMEM, "shared limit: out of memory");
    }
    g->l = l;
    g->granted = granted;
    g->key = pg_op_strdup(op, key);
    op->arg = g;
    op->on_result = grant_result;
    op->on_end = grant_end;
    char r[40], b[40], w[40];
    snprintf(r, sizeof r, "%.17g", rate_per_s);
    snprintf(b, sizeof b, "%.17g", burst);
    snprintf(w, sizeof w, "%.17g", want);
    int n = 0;
    bool ok = g->key != NULL;
    if (ok && !l->table_ready) {
        ok = pg_op_stmt(op, l->sql_lock, 0) && pg_op_stmt(op, l->sql_create, 0);
        n += 2;
    }
    if (ok && !key_ready(l, key)) {
        pg_stmt *st = pg_op_stmt(op, l->sql_insert, 3);
        ok = st != NULL;
        if (ok) {
            pg_stmt_text(st, 0, g->key);
            pg_stmt_text(st, 1, pg_op_strdup(op, r));
            pg_stmt_text(st, 2, pg_op_strdup(op, b));
            ok = st->values[0] && st->values[1] && st->values[2];
        }
        n++;
    }
    pg_stmt *st = ok ? pg_op_stmt(op, l->sql_grant, 4) : NULL;
    if (st) {
        pg_stmt_text(st, 0, g->key);
        pg_stmt_text(st, 1, pg_op_strdup(op, r));
        pg_stmt_text(st, 2, pg_op_strdup(op, b));
        pg_stmt_text(st, 3, pg_op_strdup(op, w));
        ok = st->values[0] && st->values[1] && st->values[2] && st->values[3];
    }
    g->last = n;
    if (!st || !ok) pg_op_fail(op, SL_ENOMEM, "shared limit: out of memory");
    return pg_pool_submit(pool, op);
}
