/* ann_bench.c - query latency of sink-sqlite with and without its HNSW
 * index, the index's recall@10 against brute force, its build time, file
 * size and load time. Driven by bench/ann.sh, which builds it (cmake
 * --build B --target bench-ann).
 *
 *   bench-ann --plugin PATH/sink-sqlite.so --dir DIR --n N [--dim 384]
 *             [--queries 200] [--exact-queries 50] [--ef 100[,200...]] [--k 10]
 *
 * It writes DIR/N/store.db once (reused when it holds N chunks): the
 * sink's own schema (its init), then N chunks of 100 per document inserted
 * in one transaction on a plain connection, with synthetic vectors: points
 * around 1,000 centres in --dim dimensions (cosine to their centre about
 * 0.8), as embeddings cluster by topic. Queries are fresh points of the
 * same mixture. Everything after is the plugin, loaded from its .so and
 * called as `sluice query` calls it (desc->query: the k rows read back in
 * full included): brute force (vector_index = exact) on the first
 * --exact-queries queries, then the index (vector_index_min = 1): the
 * first query builds and saves it (build_s), a second instance loads the
 * file (load_s: what a new `sluice query` process pays once), then all
 * --queries are timed. recall@10 compares its top k with brute force's on
 * the queries both ran; each --ef (a comma list) is measured on the same
 * file. One line per mode and ef, "key value" pairs.
 */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ctx.h"
#include "instance.h"
#include "query.h"
#include "registry.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
/* Two normal deviates per call pair (Box-Muller, the second kept). */
static float gauss(void) {
    static int have;
    static double keep;
    if (have) {
        have = 0;
        return (float)keep;
    }
    double u = rnd() + 1e-300, v = rnd(), r = sqrt(-2 * log(u));
    keep = r * sin(2 * M_PI * v);
    have = 1;
    return (float)(r * cos(2 * M_PI * v));
}

enum { CENTRES = 1000 };
static float *centres;
static void point(float *v, int dim) {
    const float *c = centres + (size_t)(rnd() * CENTRES) * (size_t)dim;
    for (int j = 0; j < dim; j++) v[j] = c[j] + 0.75f * gauss();
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static sl_ctx *ctx;
static const sl_loaded *plugin;

static sl_instance *open_sink(const char *path, const char *mode, long ef) {
    char p[4200], m[64], e[64];
    snprintf(p, sizeof p, "path=%s", path);
    snprintf(m, sizeof m, "vector_index=%s", mode);
    snprintf(e, sizeof e, "vector_index_ef=%ld", ef);
    const char *ov[] = {p, m, e, "vector_index_min=1"};
    sl_instance *inst = NULL;
    if (sl_instance_new_defaults(ctx, plugin, "store", ov, 4, &inst) || sl_instance_init(ctx, inst)) {
        fprintf(stderr, "bench-ann: cannot open the sink: %s\n", sl_ctx_errmsg(ctx));
        exit(1);
    }
    return inst;
}

/* One query; the row ids of its hits are not visible through the API, so
 * hits are compared by uri and chunk ordinal, which name a row. */
static double query(sl_instance *inst, const float *q, int dim, int k, long long *keys) {
    sl_call call;
    sl_call_init(&call, inst, NULL);
    sl_hits *hits = sl_hits_new((uint32_t)k);
    double t0 = now_s();
    int rc = inst->desc->query(&call, q, (uint32_t)dim, (uint32_t)k, hits);
    double t = now_s() - t0;
    if (rc) {
        fprintf(stderr, "bench-ann: query failed: %s\n", call.msg);
        exit(1);
    }
    sl_hits_sort(hits);
    for (int i = 0; i < k; i++) {
        const sl_hit *h = sl_hits_at(hits, (size_t)i);
        keys[i] = h ? atoll(h->uri + 2) * 1000 + h->chunk : -1; /* "d/DOC" */
    }
    sl_hits_free(hits);
    return t;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double pct(double *v, int n, double p) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (int)ceil(p * n) - 1;
    return v[i < 0 ? 0 : i];
}

static long long count_chunks(const char *path) {
    sqlite3 *db;
    sqlite3_stmt *st;
    long long n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT max(id) FROM chunks", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

static void generate(const char *path, long long n, int dim) {
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) exit(1);
    sqlite3_exec(db, "PRAGMA synchronous = OFF; BEGIN", NULL, NULL, NULL);
    sqlite3_stmt *doc, *chunk;
    sqlite3_prepare_v2(db,
                       "INSERT INTO documents(id, uri, hash, fingerprint, chunk_count, stored_at) "
                       "VALUES(?1, 'd/' || ?1, 'h', 'f', 100, '2026-12-03')",
                       -1, &doc, NULL);
    sqlite3_prepare_v2(db,
                       "INSERT INTO chunks(doc_id, ordinal, dim, vector, text) VALUES(?1, ?2, ?3, ?4, ?5)",
                       -1, &chunk, NULL);
    float *v = malloc((size_t)dim * sizeof *v);
    for (long long i = 0; i < n; i++) {
        long long d = i / 100 + 1;
        if (i % 100 == 0) {
            sqlite3_bind_int64(doc, 1, d);
            if (sqlite3_step(doc) != SQLITE_DONE) goto fail;
            sqlite3_reset(doc);
        }
        point(v, dim);
        char text[48];
        snprintf(text, sizeof text, "synthetic chunk %lld", i);
        sqlite3_bind_int64(chunk, 1, d);
        sqlite3_bind_int64(chunk, 2, i % 100);
        sqlite3_bind_int(chunk, 3, dim);
        sqlite3_bind_blob(chunk, 4, v, dim * (int)sizeof(float), SQLITE_STATIC); /* little-endian host */
        sqlite3_bind_text(chunk, 5, text, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(chunk) != SQLITE_DONE) goto fail;
        sqlite3_reset(chunk);
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) goto fail;
    sqlite3_finalize(doc);
    sqlite3_finalize(chunk);
    sqlite3_close(db);
    free(v);
    return;
fail:
    fprintf(stderr, "bench-ann: generating %s: %s\n", path, sqlite3_errmsg(db));
    exit(1);
}

int main(int argc, char **argv) {
    const char *plugin_path = NULL, *dir = NULL;
    long long n = 0;
    int dim = 384, nq = 200, nexact = 50, k = 10;
    long ef = 100;
    const char *efs = "100";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--plugin"))
            plugin_path = argv[i + 1];
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--n"))
            n = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--dim"))
            dim = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--queries"))
            nq = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--exact-queries"))
            nexact = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ef"))
            efs = argv[i + 1];
        else if (!strcmp(argv[i], "--k"))
            k = atoi(argv[i + 1]);
    }
    if (!plugin_path || !dir || n <= 0 || dim <= 0 || nq <= 0 || nexact <= 0 || nexact > nq || k <= 0) {
        fprintf(stderr, "usage: bench-ann --plugin SO --dir DIR --n N [--dim D] [--queries Q] "
                        "[--exact-queries E] [--ef EF] [--k K]\n");
        return 2;
    }
    ctx = sl_ctx_new();
    sl_ctx_set_log_level(ctx, SL_LOG_WARN);
    sl_registry *reg;
    if (sl_registry_new(ctx, &reg) || sl_registry_open(ctx, reg, plugin_path, &plugin)) {
        fprintf(stderr, "bench-ann: cannot load %s: %s\n", plugin_path, sl_ctx_errmsg(ctx));
        return 1;
    }
    centres = malloc((size_t)CENTRES * (size_t)dim * sizeof *centres);
    for (size_t i = 0; i < (size_t)CENTRES * (size_t)dim; i++) centres[i] = gauss();

    char sub[4096], path[4200], idx[4300];
    snprintf(sub, sizeof sub, "%s/%lld", dir, n);
    mkdir(dir, 0755);
    mkdir(sub, 0755);
    snprintf(path, sizeof path, "%s/store.db", sub);
    snprintf(idx, sizeof idx, "%s.%d.hnsw", path, dim);
    if (count_chunks(path) != n) {
        remove(path);
        sl_instance_free(open_sink(path, "exact", ef)); /* the schema, as the sink makes it */
        double t0 = now_s();
        generate(path, n, dim);
        printf("generated %lld chunks in %.1fs\n", n, now_s() - t0);
    }
    remove(idx); /* the build is measured */

    float *qs = malloc((size_t)nq * (size_t)dim * sizeof *qs);
    for (int i = 0; i < nq; i++) point(qs + (size_t)i * (size_t)dim, dim);
    long long *truth = malloc((size_t)nexact * (size_t)k * sizeof *truth);
    long long *got = malloc((size_t)k * sizeof *got);
    double *lat = malloc((size_t)nq * sizeof *lat);

    sl_instance *ex = open_sink(path, "exact", ef);
    for (int i = 0; i < nexact; i++)
        lat[i] = query(ex, qs + (size_t)i * (size_t)dim, dim, k, truth + (size_t)i * k);
    sl_instance_free(ex);
    double p50 = pct(lat, nexact, 0.5), p95 = pct(lat, nexact, 0.95);
    printf("chunks %lld mode exact queries %d p50_ms %.2f p95_ms %.2f\n", n, nexact, p50 * 1e3, p95 * 1e3);
    fflush(stdout);

    ef = strtol(efs, NULL, 10);
    sl_instance *ann = open_sink(path, "auto", ef > 0 ? ef : 100);
    double build = query(ann, qs, dim, k, got); /* a scan, then the build and save */
    sl_instance_free(ann);
    struct stat st;
    double mb = stat(idx, &st) == 0 ? st.st_size / 1048576.0 : -1;
    /* each ef on the same file: a new instance loads it (load_s) */
    for (const char *e = efs; *e;) {
        ef = strtol(e, (char **)&e, 10);
        while (*e == ',') e++;
        if (ef <= 0) break;
        ann = open_sink(path, "auto", ef);
        double load = query(ann, qs, dim, k, got);
        long long hit = 0;
        for (int i = 0; i < nq; i++) {
            lat[i] = query(ann, qs + (size_t)i * (size_t)dim, dim, k, got);
            if (i < nexact)
                for (int a = 0; a < k; a++)
                    for (int b = 0; b < k; b++)
                        if (got[a] >= 0 && got[a] == truth[(size_t)i * k + b]) hit++;
        }
        sl_instance_free(ann);
        p50 = pct(lat, nq, 0.5);
        p95 = pct(lat, nq, 0.95);
        printf("chunks %lld mode hnsw queries %d p50_ms %.2f p95_ms %.2f recall@%d %.4f build_s %.1f "
               "index_mb %.0f "
               "load_s %.2f ef %ld\n",
               n, nq, p50 * 1e3, p95 * 1e3, k, (double)hit / ((double)nexact * k), build, mb, load, ef);
        fflush(stdout);
    }
    free(qs);
    free(truth);
    free(got);
    free(lat);
    free(centres);
    sl_registry_free(reg);
    sl_ctx_free(ctx);
    return 0;
}
