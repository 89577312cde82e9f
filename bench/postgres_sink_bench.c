/* postgres_sink_bench.c - chunks/s through sink-postgres, and the same rows
 * as COPY input for psql's \copy. Driven by bench/postgres_sink.sh, which
 * builds it (cmake --build B --target bench-postgres-sink), starts a server
 * and times \copy; see plugins/sink-postgres/README.md.
 *
 *   bench-postgres-sink --plugin PATH/sink-postgres.so --port PORT
 *                       [--host 127.0.0.1] [--user postgres] [--dbname postgres]
 *                       [--docs 1000] [--chunks 100] [--dim 384] [--text 500]
 *                       [--pool 4] [--prefix bench_] [--copy-dir DIR]
 *
 * It builds every document in memory first (deterministic text of --text
 * bytes per chunk, a unit vector of --dim random floats per chunk), then
 * times only the stores: the sink loaded from its .so and configured
 * through the core's instance API as a run would, its calls made on the
 * core's event loop with --pool calls in flight (what the core sends to a
 * sink that declares a pool of that size), each document one transaction.
 * Nothing else of a run (reading, parsing, chunking, embedding) is in the
 * time. It prints "sink_seconds S" and "sink_rows N" (chunks).
 *
 * With --copy-dir it also writes the same documents and chunks, ids
 * included, as COPY input for tables of the sink's shape, twice: in COPY's
 * text format (documents.copy, chunks.copy; vectors as real[] literals
 * with 9 significant digits, float4 exactly), what a CSV export gives, and
 * in COPY's binary format (documents.bin, chunks.bin), COPY's fastest form.
 * Writing them is not timed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "document.h"
#include "instance.h"
#include "registry.h"
#include "loop.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static const char *const words[] = {
    "the",   "worker",  "stores",  "a",     "chunk",  "of",      "text",    "with",   "its",   "vector",
    "into",  "table",   "under",   "one",   "commit", "while",   "pool",    "sends",  "batch", "server",
    "index", "replica", "journal", "query", "cosine", "nearest", "durable", "restart"};

/* `len` bytes of words and spaces into out (NUL-terminated). */
static void make_text(char *out, size_t len) {
    size_t n = 0;
    while (n < len) {
        const char *w = words[next_rand() % (sizeof words / sizeof *words)];
        size_t wl = strlen(w);
        if (n + wl + 1 > len) wl = len - n - 1 < wl ? len - n - 1 : wl;
        memcpy(out + n, w, wl);
        n += wl;
        if (n < len) out[n++] = ' ';
    }
    out[len] = '\0';
}

typedef struct pending {
    sl_call call;
    int done, rc;
} pending;

static int remaining, failed, next_doc, ndocs;
static sl_doc **docs;
static pending *calls;
static sl_instance *inst;
static const sl_plugin *desc;

static void submit(int i);

static void on_done(sl_call *call, int rc) {
    pending *p = call->udata;
    p->done = 1;
    p->rc = rc;
    remaining--;
    if (rc != 0) {
        failed++;
        fprintf(stderr, "store failed: %s\n", call->msg);
    }
    if (next_doc < ndocs) submit(next_doc++);
}

static void submit(int i) {
    sl_call_init(&calls[i].call, inst, NULL);
    calls[i].call.on_done = on_done;
    calls[i].call.udata = &calls[i];
    int rc = desc->store(&calls[i].call, docs[i]);
    if (rc != SL_PENDING && !calls[i].call.done) {
        calls[i].call.done = 1;
        on_done(&calls[i].call, rc);
    }
}

/* COPY text format: backslash, tab, newline and CR escaped. */
static void copy_text(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '\\': fputs("\\\\", f); break;
        case '\t': fputs("\\t", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        default: fputc(*s, f);
        }
    }
}

static int write_copy(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/documents.copy", dir);
    FILE *fd = fopen(path, "w");
    snprintf(path, sizeof path, "%s/chunks.copy", dir);
    FILE *fc = fopen(path, "w");
    if (!fd || !fc) {
        fprintf(stderr, "cannot write COPY files in %s\n", dir);
        return 1;
    }
    for (int i = 0; i < ndocs; i++) {
        sl_doc *d = docs[i];
        size_t nbytes = 0;
        sl_doc_data(d, &nbytes);
        size_t n = sl_doc_chunk_count(d);
        /* id, uri, hash, fingerprint, media_type, bytes, title, metadata,
         * chunk_count, stored_at, stored_run, seen_run */
        fprintf(fd, "%d\t", i + 1);
        copy_text(fd, sl_doc_uri(d));
        fprintf(fd, "\t%s\t%s\t%s\t%zu\t", sl_doc_hash(d), sl_doc_fingerprint(d), sl_doc_media_type(d),
                nbytes);
        copy_text(fd, sl_doc_meta_get(d, "title"));
        fputs("\t{\"title\": \"", fd);
        copy_text(fd, sl_doc_meta_get(d, "title"));
        fprintf(fd, "\"}\t%zu\t2024-01-01 00:00:00+00\t1\t1\n", n);
        for (size_t k = 0; k < n; k++) {
            size_t len;
            uint32_t dim = 0;
            const float *v = sl_chunk_vector(d, k, &dim);
            fprintf(fc, "%d\t%zu\t%u\t%u\t", i + 1, k, sl_chunk_page(d, k), sl_chunk_line(d, k));
            copy_text(fc, sl_chunk_heading(d, k));
            fputc('\t', fc);
            copy_text(fc, sl_chunk_text(d, k, &len));
            fprintf(fc, "\t\\N\t%u\t{", dim);
            for (uint32_t j = 0; j < dim; j++) fprintf(fc, "%s%.9g", j ? "," : "", (double)v[j]);
            fputs("}\n", fc);
        }
    }
    int bad = ferror(fd) || ferror(fc);
    bad |= fclose(fd) != 0;
    bad |= fclose(fc) != 0;
    return bad;
}

/* --- COPY's binary format: big-endian fields, each with its length --- */

static void be32(FILE *f, uint32_t v) {
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    fwrite(b, 1, 4, f);
}
static void be16(FILE *f, uint16_t v) {
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    fwrite(b, 1, 2, f);
}
static void bin_int8(FILE *f, int64_t v) {
    be32(f, 8);
    be32(f, (uint32_t)((uint64_t)v >> 32));
    be32(f, (uint32_t)v);
}
static void bin_int4(FILE *f, int32_t v) {
    be32(f, 4);
    be32(f, (uint32_t)v);
}
static void bin_text(FILE *f, const char *s) {
    if (!s) {
        be32(f, UINT32_MAX); /* -1: NULL */
        return;
    }
    be32(f, (uint32_t)strlen(s));
    fputs(s, f);
}

static int write_binary(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/documents.bin", dir);
    FILE *fd = fopen(path, "w");
    snprintf(path, sizeof path, "%s/chunks.bin", dir);
    FILE *fc = fopen(path, "w");
    if (!fd || !fc) {
        fprintf(stderr, "cannot write COPY files in %s\n", dir);
        return 1;
    }
    static const char sig[11] = "PGCOPY\n\377\r\n";
    FILE *both[] = {fd, fc};
    for (int i = 0; i < 2; i++) {
        fwrite(sig, 1, 11, both[i]);
        be32(both[i], 0); /* flags */
        be32(both[i], 0); /* header extension */
    }
    for (int i = 0; i < ndocs; i++) {
        sl_doc *d = docs[i];
        size_t nbytes = 0;
        sl_doc_data(d, &nbytes);
        size_t n = sl_doc_chunk_count(d);
        char meta[256];
        snprintf(meta, sizeof meta, "{\"title\": \"%s\"}", sl_doc_meta_get(d, "title"));
        be16(fd, 12);
        bin_int8(fd, i + 1);
        bin_text(fd, sl_doc_uri(d));
        bin_text(fd, sl_doc_hash(d));
        bin_text(fd, sl_doc_fingerprint(d));
        bin_text(fd, sl_doc_media_type(d));
        bin_int8(fd, (int64_t)nbytes);
        bin_text(fd, sl_doc_meta_get(d, "title"));
        be32(fd, (uint32_t)strlen(meta) + 1); /* jsonb: a version byte, then the text */
        fputc(1, fd);
        fputs(meta, fd);
        bin_int4(fd, (int32_t)n);
        bin_int8(fd, 757382400000000LL); /* 2024-01-01 in microseconds since 2000-01-01 */
        bin_int8(fd, 1);
        bin_int8(fd, 1);
        for (size_t k = 0; k < n; k++) {
            size_t len;
            uint32_t dim = 0;
            const float *v = sl_chunk_vector(d, k, &dim);
            be16(fc, 9);
            bin_int8(fc, i + 1);
            bin_int4(fc, (int32_t)k);
            bin_int4(fc, (int32_t)sl_chunk_page(d, k));
            bin_int4(fc, (int32_t)sl_chunk_line(d, k));
            bin_text(fc, sl_chunk_heading(d, k));
            bin_text(fc, sl_chunk_text(d, k, &len));
            bin_text(fc, NULL);
            bin_int4(fc, (int32_t)dim);
            be32(fc, 20 + 8 * dim); /* real[]: header, then (length, value) per element */
            be32(fc, 1);
            be32(fc, 0);
            be32(fc, 700);
            be32(fc, dim);
            be32(fc, 1);
            for (uint32_t j = 0; j < dim; j++) {
                uint32_t u;
                memcpy(&u, &v[j], 4);
                be32(fc, 4);
                be32(fc, u);
            }
        }
    }
    be16(fd, 0xffff); /* trailer */
    be16(fc, 0xffff);
    int bad = ferror(fd) || ferror(fc);
    bad |= fclose(fd) != 0;
    bad |= fclose(fc) != 0;
    return bad;
}

int main(int argc, char **argv) {
    const char *plugin_path = NULL, *host = "127.0.0.1", *port = NULL, *user = "postgres",
               *dbname = "postgres";
    const char *prefix = "bench_", *copy_dir = NULL;
    int nchunks = 100, dim = 384, text = 500, pool = 4;
    ndocs = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--plugin"))
            plugin_path = v;
        else if (!strcmp(k, "--host"))
            host = v;
        else if (!strcmp(k, "--port"))
            port = v;
        else if (!strcmp(k, "--user"))
            user = v;
        else if (!strcmp(k, "--dbname"))
            dbname = v;
        else if (!strcmp(k, "--docs"))
            ndocs = atoi(v);
        else if (!strcmp(k, "--chunks"))
            nchunks = atoi(v);
        else if (!strcmp(k, "--dim"))
            dim = atoi(v);
        else if (!strcmp(k, "--text"))
            text = atoi(v);
        else if (!strcmp(k, "--pool"))
            pool = atoi(v);
        else if (!strcmp(k, "--prefix"))
            prefix = v;
        else if (!strcmp(k, "--copy-dir"))
            copy_dir = v;
        else {
            fprintf(stderr, "unknown argument %s\n", k);
            return 2;
        }
    }
    if (!plugin_path || !port || ndocs < 1 || nchunks < 1 || dim < 1 || text < 2 || pool < 1) {
        fprintf(stderr, "usage: %s --plugin sink-postgres.so --port PORT [options] (see the source)\n",
                argv[0]);
        return 2;
    }

    /* the documents, built before anything is timed */
    docs = calloc((size_t)ndocs, sizeof *docs);
    calls = calloc((size_t)ndocs, sizeof *calls);
    char *buf = malloc((size_t)text + 1);
    for (int i = 0; i < ndocs; i++) {
        char uri[64], title[64], content[64];
        snprintf(uri, sizeof uri, "bench/doc-%06d.md", i);
        snprintf(title, sizeof title, "Document %d", i);
        snprintf(content, sizeof content, "content of document %d", i);
        sl_doc *d = sl_doc_new(uri, NULL);
        sl_doc_set_data(d, sl_doc_strndup(d, content, strlen(content)), strlen(content));
        sl_doc_set_media_type(d, "text/markdown");
        sl_doc_set_fingerprint(d, "0123456789abcdef0123456789abcdef");
        sl_doc_set_run_id(d, 1);
        sl_doc_meta_set(d, "title", title);
        for (int k = 0; k < nchunks; k++) {
            make_text(buf, (size_t)text);
            sl_doc_add_chunk(d, buf, (size_t)text);
            char heading[160];
            snprintf(heading, sizeof heading, "%s > Section %d", title, k / 10);
            sl_chunk_set_heading(d, (size_t)k, heading);
            sl_chunk_set_position(d, (size_t)k, 1, (uint32_t)(k * 7 + 1));
            float *v = sl_doc_chunk_vector(d, (size_t)k, (uint32_t)dim);
            double norm = 0;
            for (int j = 0; j < dim; j++) {
                v[j] = (float)((double)(next_rand() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
                norm += (double)v[j] * v[j];
            }
            for (int j = 0; j < dim; j++) v[j] = (float)(v[j] / sqrt(norm));
        }
        docs[i] = d;
    }
    free(buf);
    if (copy_dir && (write_copy(copy_dir) || write_binary(copy_dir))) return 1;

    sl_ctx *ctx = sl_ctx_new();
    sl_registry *reg = NULL;
    const sl_loaded *plugin = NULL;
    sl_loop *loop = NULL;
    if (sl_registry_new(ctx, &reg) || sl_registry_open(ctx, reg, plugin_path, &plugin) ||
        sl_loop_new(&loop)) {
        fprintf(stderr, "cannot load %s: %s\n", plugin_path, sl_ctx_errmsg(ctx));
        return 1;
    }
    desc = &plugin->desc;
    char o_host[256], o_port[64], o_user[256], o_db[256], o_prefix[256], o_pool[64];
    snprintf(o_host, sizeof o_host, "host=%s", host);
    snprintf(o_port, sizeof o_port, "port=%s", port);
    snprintf(o_user, sizeof o_user, "user=%s", user);
    snprintf(o_db, sizeof o_db, "dbname=%s", dbname);
    snprintf(o_prefix, sizeof o_prefix, "table_prefix=%s", prefix);
    snprintf(o_pool, sizeof o_pool, "pool_size=%d", pool);
    const char *ov[] = {o_host, o_port, o_user, o_db, o_prefix, o_pool};
    if (sl_instance_new_defaults(ctx, plugin, "store", ov, 6, &inst) != 0) {
        fprintf(stderr, "%s\n", sl_ctx_errmsg(ctx));
        return 1;
    }
    inst->loop = loop;
    if (sl_instance_init(ctx, inst) != 0) {
        fprintf(stderr, "%s\n", sl_ctx_errmsg(ctx));
        return 1;
    }

    /* the timed part: every store, `pool` in flight */
    uint64_t t0 = sl_now_ns();
    remaining = ndocs;
    next_doc = 0;
    while (next_doc < ndocs && next_doc < pool) submit(next_doc++);
    while (remaining > 0) uv_run(sl_loop_uv(loop), UV_RUN_ONCE);
    double secs = (double)(sl_now_ns() - t0) / 1e9;

    printf("sink_seconds %.3f\n", secs);
    printf("sink_rows %lld\n", (long long)ndocs * nchunks);
    printf("sink_failed %d\n", failed);
    sl_instance_free(inst);
    sl_loop_free(loop);
    sl_registry_free(reg);
    sl_ctx_free(ctx);
    for (int i = 0; i < ndocs; i++) sl_doc_free(docs[i]);
    free(docs);
    free(calls);
    return failed ? 1 : 0;
}
