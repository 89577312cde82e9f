/* schema.c - sink-postgres's tables: made, versioned and migrated by the
 * sink itself, at init, on the one blocking connection init may use.
 *
 * Four tables, named from the options: [schema.]PREFIXmeta, PREFIXruns,
 * PREFIXdocuments and PREFIXchunks. Names are always quoted identifiers
 * (PQescapeIdentifier), so any prefix is safe and keeps its case. The meta
 * table holds the schema version, the vector storage chosen when the store
 * was made ("pgvector" or "array") and, once the first vectors arrive, their
 * dimension. A store is set up or migrated in one transaction under an
 * advisory lock, so two sluice processes starting at once do not race; a
 * store written by a newer sink-postgres is refused rather than guessed at.
 *
 * pgvector: with `vector = auto` a new store uses it when the server has the
 * extension (installed, or available to CREATE EXTENSION, tried inside a
 * savepoint so a refusal leaves the transaction usable), and real[]
 * otherwise. The column starts as plain `vector`; the first store with
 * vectors fixes it to vector(n) and builds the HNSW index (sink_postgres.c),
 * because only then is n known.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink_postgres.h"

/* migrations[v] takes a store from version v to v + 1. {meta}, {runs},
 * {documents} and {chunks} become the quoted table names and {vector} the
 * column type ("vector" or "real[]"). The uri is compared in the C
 * collation: prune's prefix ranges are then bytewise, whatever the
 * database's locale, and the unique index serves them. */
static const char *const migrations[PG_SCHEMA_VERSION] = {
    "CREATE TABLE {runs}("
    " run_id bigint PRIMARY KEY,"
    " started_at timestamptz NOT NULL DEFAULT now(),"
    " pruned integer,"
    " pruned_at timestamptz);"
    "CREATE TABLE {documents}("
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
    "CREATE TABLE {chunks}("
    " doc_id bigint NOT NULL REFERENCES {documents}(id) ON DELETE CASCADE,"
    " ordinal integer NOT NULL,"
    " page integer NOT NULL DEFAULT 0,"
    " line integer NOT NULL DEFAULT 0,"
    " heading text NOT NULL DEFAULT '',"
    " text text NOT NULL,"
    " summary text,"
    " dim integer NOT NULL DEFAULT 0,"
    " embedding {vector},"
    " PRIMARY KEY (doc_id, ordinal));",
    /* 2: what each chunk is made of (chunk attributes: kinds, region,
     * pages); chunks stored before keep '{}' until their document is
     * stored again */
    "ALTER TABLE {chunks} ADD COLUMN attrs jsonb NOT NULL DEFAULT '{}';",
    /* 3: the keyword index of hybrid retrieval: a tsvector of each chunk's
     * heading path (weight A), text (B) and summary (C), a generated column
     * the server keeps in the statement that writes the chunk, with a GIN
     * index. Adding it computes it for every chunk an older store holds.
     * The text is indexed up to its first 200,000 characters: a tsvector
     * holds at most 1 MB, and a larger one would fail the document. */
    "ALTER TABLE {chunks} ADD COLUMN tsv tsvector GENERATED ALWAYS AS ("
    " setweight(to_tsvector('english'::regconfig, heading), 'A') ||"
    " setweight(to_tsvector('english'::regconfig, left(text, 200000)), 'B') ||"
    " setweight(to_tsvector('english'::regconfig, left(coalesce(summary, ''), 200000)), 'C')) STORED;"
    "CREATE INDEX {tsv_index} ON {chunks} USING gin (tsv);",
};

/* sink_postgres.h */
char *pg_qualified(PGconn *conn, const char *schema, const char *prefix, const char *name) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    char *q = PQescapeIdentifier(conn, full, strlen(full));
    if (!q) return NULL;
    char *out = NULL;
    if (schema && *schema) {
        char *qs = PQescapeIdentifier(conn, schema, strlen(schema));
        if (qs) {
            size_t n = strlen(qs) + strlen(q) + 2;
            out = malloc(n);
            if (out) snprintf(out, n, "%s.%s", qs, q);
            PQfreemem(qs);
        }
    } else {
        out = strdup(q);
    }
    PQfreemem(q);
    return out;
}

/* The template with each {key} replaced; malloc'd. */
static char *expand(const char *tpl, const pg_names *n, const char *vector_type) {
    pg_buf b = {0};
    for (const char *p = tpl; *p;) {
        const char *rep = NULL;
        size_t skip = 0;
        static const char *const keys[] = {"{meta}",   "{runs}",   "{documents}",
                                           "{chunks}", "{vector}", "{tsv_index}"};
        const char *vals[] = {n->meta, n->runs, n->documents, n->chunks, vector_type, n->tsv_index};
        for (size_t k = 0; k < sizeof keys / sizeof *keys && *p == '{'; k++) {
            size_t kl = strlen(keys[k]);
            if (strncmp(p, keys[k], kl) == 0) {
                rep = vals[k];
                skip = kl;
                break;
            }
        }
        if (rep) {
            pg_put(&b, rep, strlen(rep));
            p += skip;
        } else {
            pg_put(&b, p, 1);
            p++;
        }
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* Runs one statement; on failure writes "what: message" to err. */
static int run(PGconn *conn, const char *sql, int nparams, const char *const *params, PGresult **keep,
               const char *what, char *err, size_t errlen) {
    /* without parameters, the simple protocol: a migration is several statements */
    PGresult *r = nparams ? PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0) : PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        snprintf(err, errlen, "%s: %s", what, m ? m : PQerrorMessage(conn));
        PQclear(r);
        return SL_EFATAL;
    }
    if (keep)
        *keep = r;
    else
        PQclear(r);
    return 0;
}

static bool one_row(PGresult *r) { return PQntuples(r) == 1 && !PQgetisnull(r, 0, 0); }

void pg_schema_free(pg_schema *s) {
    free(s->names.meta);
    free(s->names.runs);
    free(s->names.documents);
    free(s->names.chunks);
    free(s->names.hnsw_index);
    free(s->names.tsv_index);
    free(s->names.failures);
    memset(s, 0, sizeof *s);
}

/* Decides the vector storage of a new store; may CREATE EXTENSION. */
static int choose_vectors(PGconn *conn, const pg_config *c, bool *pgvector, char *err, size_t errlen) {
    const char *want = c->vector ? c->vector : "auto";
    PGresult *r = NULL;
    int rc = run(conn, "SELECT extversion FROM pg_extension WHERE extname = 'vector'", 0, NULL, &r,
                 "looking for pgvector", err, errlen);
    if (rc) return rc;
    bool installed = one_row(r);
    PQclear(r);
    *pgvector = false;
    if (strcmp(want, "array") == 0) return 0;
    if (installed) {
        *pgvector = true;
        return 0;
    }
    rc = run(conn, "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'", 0, NULL, &r,
             "looking for pgvector", err, errlen);
    if (rc) return rc;
    bool available = PQntuples(r) > 0;
    PQclear(r);
    char why[512] = "the server has no pgvector extension";
    if (available) {
        /* a role without the right to create it gets real[] under auto */
        rc = run(conn, "SAVEPOINT sluice_vector", 0, NULL, NULL, "savepoint", err, errlen);
        if (rc) return rc;
        if (run(conn, "CREATE EXTENSION IF NOT EXISTS vector", 0, NULL, NULL, "CREATE EXTENSION vector", why,
                sizeof why) == 0) {
            *pgvector = true;
            return run(conn, "RELEASE SAVEPOINT sluice_vector", 0, NULL, NULL, "savepoint", err, errlen);
        }
        rc = run(conn, "ROLLBACK TO SAVEPOINT sluice_vector", 0, NULL, NULL, "savepoint", err, errlen);
        if (rc) return rc;
    }
    if (strcmp(want, "pgvector") == 0) {
        snprintf(err, errlen, "option vector = pgvector, but %s", why);
        return SL_EFATAL;
    }
    return 0;
}

/* The quoted table names, from the options. */
static int make_names(PGconn *conn, const pg_config *c, pg_schema *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const char *prefix = c->table_prefix ? c->table_prefix : "";
    const char *schema = c->schema ? c->schema : "";
    pg_names *n = &out->names;
    n->meta = pg_qualified(conn, schema, prefix, "meta");
    n->runs = pg_qualified(conn, schema, prefix, "runs");
    n->documents = pg_qualified(conn, schema, prefix, "documents");
    n->chunks = pg_qualified(conn, schema, prefix, "chunks");
    n->failures = pg_qualified(conn, schema, prefix, "failures");
    char idx[128];
    snprintf(idx, sizeof idx, "%schunks_embedding_idx", prefix);
    n->hnsw_index = PQescapeIdentifier(conn, idx, strlen(idx));
    if (n->hnsw_index) {
        /* PQescapeIdentifier's memory is freed with PQfreemem: keep a malloc'd copy */
        char *copy = strdup(n->hnsw_index);
        PQfreemem(n->hnsw_index);
        n->hnsw_index = copy;
    }
    snprintf(idx, sizeof idx, "%schunks_tsv_idx", prefix);
    n->tsv_index = PQescapeIdentifier(conn, idx, strlen(idx));
    if (n->tsv_index) {
        char *copy = strdup(n->tsv_index);
        PQfreemem(n->tsv_index);
        n->tsv_index = copy;
    }
    if (!n->meta || !n->runs || !n->documents || !n->chunks || !n->hnsw_index || !n->failures ||
        !n->tsv_index) {
        snprintf(err, errlen, "out of memory");
        return SL_ENOMEM;
    }
    return 0;
}

int pg_schema_open(PGconn *conn, const pg_config *c, pg_schema *out, char *err, size_t errlen) {
    const char *prefix = c->table_prefix ? c->table_prefix : "";
    const char *schema = c->schema ? c->schema : "";
    pg_names *n = &out->names;
    int make = make_names(conn, c, out, err, errlen);
    if (make) return make;

    int rc = run(conn, "SET client_min_messages = warning", 0, NULL, NULL, "session", err, errlen);
    if (!rc) rc = run(conn, "BEGIN", 0, NULL, NULL, "BEGIN", err, errlen);
    if (!rc) {
        /* one sluice at a time sets up a given store */
        char key[32], where[512];
        snprintf(where, sizeof where, "%s\x1f%s", schema, prefix);
        snprintf(key, sizeof key, "%lld", (long long)sl_hash64(where, strlen(where), 0x51u));
        const char *params[] = {key};
        rc = run(conn, "SELECT pg_advisory_xact_lock($1::bigint)", 1, params, NULL, "advisory lock", err,
                 errlen);
    }
    if (!rc && *schema) {
        char *q = PQescapeIdentifier(conn, schema, strlen(schema));
        char sql[512];
        snprintf(sql, sizeof sql, "CREATE SCHEMA IF NOT EXISTS %s", q ? q : "\"\"");
        if (q) PQfreemem(q);
        rc = run(conn, sql, 0, NULL, NULL, "CREATE SCHEMA", err, errlen);
    }
    char sql[1024];
    if (!rc) {
        snprintf(sql, sizeof sql, "CREATE TABLE IF NOT EXISTS %s(key text PRIMARY KEY, value text NOT NULL)",
                 n->meta);
        rc = run(conn, sql, 0, NULL, NULL, "creating the meta table", err, errlen);
    }
    long version = 0;
    char stored_vector[16] = "";
    if (!rc) {
        PGresult *r = NULL;
        snprintf(sql, sizeof sql,
                 "SELECT key, value FROM %s WHERE key IN ('schema_version', 'vector', 'dimension')", n->meta);
        rc = run(conn, sql, 0, NULL, &r, "reading the meta table", err, errlen);
        for (int i = 0; !rc && i < PQntuples(r); i++) {
            const char *k = PQgetvalue(r, i, 0), *v = PQgetvalue(r, i, 1);
            char *end;
            if (strcmp(k, "schema_version") == 0) {
                version = strtol(v, &end, 10);
                if (end == v || *end || version < 0) {
                    snprintf(err, errlen, "%s: schema_version '%s' is not a number", n->meta, v);
                    rc = SL_EFATAL;
                }
            } else if (strcmp(k, "vector") == 0) {
                snprintf(stored_vector, sizeof stored_vector, "%s", v);
            } else {
                unsigned long d = strtoul(v, &end, 10);
                if (end != v && !*end && d > 0 && d < 1000000) out->dim = (uint32_t)d;
            }
        }
        PQclear(r);
    }
    if (!rc && version > PG_SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "the store %s has schema version %ld, newer than this sink-postgres knows (%d): use a newer "
                 "sluice, or another table_prefix",
                 n->meta, version, PG_SCHEMA_VERSION);
        rc = SL_EFATAL;
    }
    if (!rc && version == 0) {
        rc = choose_vectors(conn, c, &out->pgvector, err, errlen);
    } else if (!rc) {
        const char *want = c->vector ? c->vector : "auto";
        out->pgvector = strcmp(stored_vector, "pgvector") == 0;
        if (strcmp(want, "auto") != 0 && strcmp(want, out->pgvector ? "pgvector" : "array") != 0) {
            snprintf(err, errlen,
                     "the store %s keeps its vectors as %s; option vector = %s asks for the other kind: set "
                     "vector = auto, or use another table_prefix",
                     n->chunks, out->pgvector ? "pgvector" : "real[]", want);
            rc = SL_EFATAL;
        }
    }
    for (long v = version; !rc && v < PG_SCHEMA_VERSION; v++) {
        char *m = expand(migrations[v], n, out->pgvector ? "vector" : "real[]");
        if (!m) {
            snprintf(err, errlen, "out of memory");
            rc = SL_ENOMEM;
            break;
        }
        char what[64];
        snprintf(what, sizeof what, "migrating to schema version %ld", v + 1);
        rc = run(conn, m, 0, NULL, NULL, what, err, errlen);
        free(m);
    }
    if (!rc) {
        /* the failure list: its own table, made for a store that lacks it */
        snprintf(sql, sizeof sql,
                 "CREATE TABLE IF NOT EXISTS %s(uri text COLLATE \"C\" PRIMARY KEY, stage text NOT NULL,"
                 " reason text NOT NULL, attempts integer NOT NULL, first_at timestamptz NOT NULL,"
                 " last_at timestamptz NOT NULL)",
                 n->failures);
        rc = run(conn, sql, 0, NULL, NULL, "creating the failures table", err, errlen);
    }
    if (!rc)
        rc = pg_queue_create(conn, c, err, errlen); /* the job queue (queue.c), made as the failure list is */
    if (!rc) {
        char ver[16];
        snprintf(ver, sizeof ver, "%d", PG_SCHEMA_VERSION);
        const char *params[] = {ver, out->pgvector ? "pgvector" : "array"};
        snprintf(sql, sizeof sql,
                 "INSERT INTO %s(key, value) VALUES ('schema_version', $1), ('vector', $2)"
                 " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 n->meta);
        rc = run(conn, sql, 2, params, NULL, "writing the meta table", err, errlen);
    }
    if (!rc) rc = run(conn, "COMMIT", 0, NULL, NULL, "COMMIT", err, errlen);
    if (rc) {
        PGresult *r = PQexec(conn, "ROLLBACK");
        PQclear(r);
        return rc;
    }
    out->version = PG_SCHEMA_VERSION;
    return 0;
}

int pg_schema_read(PGconn *conn, const pg_config *c, pg_schema *out, bool *missing, char *err,
                   size_t errlen) {
    *missing = false;
    int rc = make_names(conn, c, out, err, errlen);
    if (rc) return rc;
    const pg_names *n = &out->names;
    /* every table the sink reads: a store lacking one was never made (or
     * only partly): nothing is created here */
    const char *const tables[] = {n->meta, n->documents, n->chunks, n->failures};
    for (size_t i = 0; !rc && i < 4; i++) {
        if (i == 3) { /* a store from before the failure list: its list is empty */
            PGresult *r = NULL;
            const char *params[] = {n->failures};
            rc = run(conn, "SELECT to_regclass($1) IS NULL", 1, params, &r, "looking for the tables", err,
                     errlen);
            out->no_failures = !rc && one_row(r) && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
            PQclear(r);
            break;
        }
        PGresult *r = NULL;
        const char *params[] = {tables[i]};
        rc =
            run(conn, "SELECT to_regclass($1) IS NULL", 1, params, &r, "looking for the tables", err, errlen);
        if (!rc && one_row(r) && strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
            *missing = true;
            snprintf(err, errlen,
                     "there is no store here (no table %s): nothing has been stored with this "
                     "schema and table_prefix yet ('sluice run PATH...' makes it)",
                     tables[i]);
        }
        PQclear(r);
        if (*missing) return 0;
    }
    char sql[512];
    PGresult *r = NULL;
    snprintf(sql, sizeof sql,
             "SELECT key, value FROM %s WHERE key IN ('schema_version', 'vector', 'dimension')", n->meta);
    if (!rc) rc = run(conn, sql, 0, NULL, &r, "reading the meta table", err, errlen);
    long version = 0;
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        const char *k = PQgetvalue(r, i, 0), *v = PQgetvalue(r, i, 1);
        if (strcmp(k, "schema_version") == 0)
            version = strtol(v, NULL, 10);
        else if (strcmp(k, "vector") == 0)
            out->pgvector = strcmp(v, "pgvector") == 0;
        else {
            unsigned long d = strtoul(v, NULL, 10);
            if (d > 0 && d < 1000000) out->dim = (uint32_t)d;
        }
    }
    PQclear(r);
    /* a store from PG_SCHEMA_READABLE on is read as it is (out->version
     * says which: before PG_SCHEMA_TSV it has no keyword index) */
    if (!rc && (version < PG_SCHEMA_READABLE || version > PG_SCHEMA_VERSION)) {
        snprintf(err, errlen,
                 "the store %s has schema version %ld and this sink-postgres reads versions %d to %d: %s",
                 n->meta, version, PG_SCHEMA_READABLE, PG_SCHEMA_VERSION,
                 version < PG_SCHEMA_VERSION ? "a read-only command does not migrate it; 'sluice run' does"
                                             : "use a newer sluice");
        rc = SL_EFATAL;
    }
    if (!rc) out->version = (int)version;
    return rc;
}
