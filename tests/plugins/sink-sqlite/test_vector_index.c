/* test_vector_index.c - sink-sqlite's approximate vector index (vindex.c,
 * hnsw_shim.cpp), through the plugin loaded from its .so as a run loads
 * it, on real SQLite files under $SLUICE_TEST_TMP: the index's top k equal
 * brute force's on a known set, replace and prune take old vectors out of
 * its answers, a kill -9 in the middle of a run leaves a store whose index
 * is caught up (the log says so) and answers as brute force does, a
 * damaged, truncated or foreign index file is refused and rebuilt, and
 * vectors of different dimensions never share an index.
 *
 * Brute force is the reference: a second instance on the same file with
 * vector_index = exact. Vectors are clustered (points around 16 centres),
 * as embeddings are, from a fixed seed.
 */
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../check.h"
#include "ctx.h"
#include "document.h"
#include "instance.h"
#include "query.h"
#include "registry.h"
#include "sluice/sluice.h"

#define DIM 24

static sl_ctx *ctx;
static sl_registry *reg;
static const sl_loaded *plugin;
static const sl_plugin *desc;
static char tmpdir[1024];

/* --- vectors --- */

static uint64_t rng_state;
static double rnd(void) { /* uniform in [0, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double gauss(void) {
    double u = rnd() + 1e-12, v = rnd();
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}
static float centres[16][DIM];
static void make_centres(void) {
    rng_state = 42;
    for (int c = 0; c < 16; c++)
        for (int j = 0; j < DIM; j++) centres[c][j] = (float)gauss();
}
/* A point near a random centre. */
static void point(float *v, uint32_t dim) {
    int c = (int)(rnd() * 16);
    for (uint32_t j = 0; j < dim; j++) v[j] = centres[c][j % DIM] + 0.4f * (float)gauss();
}

/* --- the sink --- */

static sl_instance *sink_open(const char *path, const char *mode, const char *min, int *rc) {
    char p[4200], m[64], n[64];
    snprintf(p, sizeof p, "path=%s", path);
    snprintf(m, sizeof m, "vector_index=%s", mode);
    snprintf(n, sizeof n, "vector_index_min=%s", min);
    const char *ov[] = {p, m, n, "busy_timeout=5000ms", "group_max=8"};
    sl_instance *inst = NULL;
    sl_ctx_clear_error(ctx);
    *rc = sl_instance_new_defaults(ctx, plugin, "store", ov, 5, &inst);
    if (*rc == 0) *rc = sl_instance_init(ctx, inst);
    return inst;
}

typedef struct tcall {
    sl_call call;
    atomic_int answered, rc;
} tcall;
static void tcall_done(sl_call *call, int rc) {
    tcall *t = (tcall *)call;
    atomic_store(&t->rc, rc);
    atomic_store(&t->answered, 1);
}
static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
static int do_store(sl_instance *inst, sl_doc *doc) {
    static tcall t;
    sl_call_init(&t.call, inst, NULL);
    t.call.on_done = tcall_done;
    atomic_store(&t.answered, 0);
    int rc = desc->store(&t.call, doc);
    if (rc != SL_PENDING) return rc;
    for (long waited = 0; !atomic_load(&t.answered); waited++) {
        if (waited > 30000) return 1;
        sleep_ms(1);
    }
    return atomic_load(&t.rc);
}
static int do_prune(sl_instance *inst, const char *root, uint64_t run) {
    sl_call call;
    sl_call_init(&call, inst, NULL);
    return desc->prune(&call, &root, 1, run);
}
/* The k nearest as "uri#chunk score" lines, best first. */
static char *do_query(sl_instance *inst, const float *q, uint32_t dim, uint32_t k) {
    sl_call call;
    sl_call_init(&call, inst, NULL);
    sl_hits *hits = sl_hits_new(k);
    int rc = desc->query(&call, q, dim, k, hits);
    CHECK_INT(rc, 0);
    if (rc) fprintf(stderr, "query: %s\n", call.msg);
    sl_hits_sort(hits);
    size_t cap = 64 * k + 1, len = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    for (size_t i = 0; i < sl_hits_count(hits); i++) {
        const sl_hit *h = sl_hits_at(hits, i);
        len += (size_t)snprintf(out + len, cap - len, "%s#%u %.9f\n", h->uri, h->chunk, h->score);
    }
    sl_hits_free(hits);
    return out;
}

/* A document of n chunks "TAG i" with clustered vectors of `dim`. */
static sl_doc *mkdoc(const char *uri, const char *tag, size_t n, uint32_t dim, uint64_t run) {
    sl_doc *d = sl_doc_new(uri, NULL);
    sl_doc_set_data(d, tag, strlen(tag));
    sl_doc_set_fingerprint(d, "fp");
    sl_doc_set_run_id(d, run);
    sl_doc_set_media_type(d, "text/plain");
    for (size_t i = 0; i < n; i++) {
        char text[64];
        snprintf(text, sizeof text, "%s %zu", tag, i);
        sl_doc_add_chunk(d, text, strlen(text));
        point(sl_doc_chunk_vector(d, i, dim), dim);
    }
    return d;
}

/* docs documents d/NAME-i.md of n chunks each */
static void fill(sl_instance *s, const char *name, int docs, size_t n, uint32_t dim, uint64_t run) {
    for (int i = 0; i < docs; i++) {
        char uri[64];
        snprintf(uri, sizeof uri, "d/%s-%d.md", name, i);
        sl_doc *d = mkdoc(uri, uri, n, dim, run);
        CHECK_INT(do_store(s, d), 0);
        sl_doc_free(d);
    }
}

/* --- the log, captured from stderr --- */

static int saved_err = -1;
static char capture_file[4200];
static void capture_start(void) {
    snprintf(capture_file, sizeof capture_file, "%s/log.txt", tmpdir);
    fflush(stderr);
    saved_err = dup(2);
    int fd = open(capture_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
}
/* What was logged since capture_start (malloc'd); also echoed. */
static char *capture_end(void) {
    fflush(stderr);
    dup2(saved_err, 2);
    close(saved_err);
    FILE *f = fopen(capture_file, "r");
    char *buf = calloc(1, 1 << 16);
    if (f) {
        size_t got = fread(buf, 1, (1 << 16) - 1, f);
        buf[got] = '\0';
        fclose(f);
    }
    fputs(buf, stderr);
    return buf;
}

static void store_dir(char *out, size_t outlen, const char *name) {
    snprintf(out, outlen, "%s/%s/store.db", tmpdir, name);
}
static bool exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* The index (min vectors: `min`) and brute force answer `nq` random
 * queries alike. */
static void same_as_brute_force(const char *path, const char *min, int nq, uint32_t dim, uint32_t k) {
    int rc;
    sl_instance *ann = sink_open(path, "auto", min, &rc);
    CHECK_INT(rc, 0);
    sl_instance *exact = sink_open(path, "exact", min, &rc);
    CHECK_INT(rc, 0);
    float q[64];
    int same = 0;
    for (int i = 0; i < nq; i++) {
        point(q, dim);
        char *a = do_query(ann, q, dim, k), *b = do_query(exact, q, dim, k);
        if (strcmp(a, b) == 0)
            same++;
        else
            fprintf(stderr, "index:\n%sbrute force:\n%s", a, b);
        free(a);
        free(b);
    }
    CHECK_INT(same, nq);
    sl_instance_free(exact);
    sl_instance_free(ann);
}

/* --- the tests --- */

static void test_index_top_k_equals_brute_force(void) {
    char path[4096], idx[4200];
    store_dir(path, sizeof path, "known");
    snprintf(idx, sizeof idx, "%s.%d.hnsw", path, DIM);
    int rc;
    sl_instance *s = sink_open(path, "auto", "1000", &rc);
    CHECK_INT(rc, 0);
    fill(s, "a", 40, 50, DIM, 1); /* 2000 vectors */
    float q[DIM];
    point(q, DIM);
    capture_start();
    free(do_query(s, q, DIM, 10)); /* a scan: 2000 >= 1000, so the index is built */
    char *log = capture_end();
    CHECK_CONTAINS(log, "building it for 2000 vectors of 24 dimensions");
    CHECK_CONTAINS(log, "built for 2000 vectors");
    free(log);
    CHECK(exists(idx));
    sl_instance_free(s);
    same_as_brute_force(path, "1000", 40, DIM, 10);

    /* under the threshold nothing is built */
    char small[4096], sidx[4200];
    store_dir(small, sizeof small, "small");
    snprintf(sidx, sizeof sidx, "%s.%d.hnsw", small, DIM);
    s = sink_open(small, "auto", "1000", &rc);
    fill(s, "s", 10, 50, DIM, 1);
    free(do_query(s, q, DIM, 10));
    sl_instance_free(s);
    CHECK(!exists(sidx));
    /* nor with vector_index = exact */
    s = sink_open(small, "exact", "1", &rc);
    free(do_query(s, q, DIM, 10));
    sl_instance_free(s);
    CHECK(!exists(sidx));
}

/* Replace and prune: what they removed never comes back from the index. */
static void test_replace_and_prune_leave_the_index(void) {
    char path[4096];
    store_dir(path, sizeof path, "replace");
    int rc;
    sl_instance *s = sink_open(path, "auto", "100", &rc);
    CHECK_INT(rc, 0);
    fill(s, "b", 20, 20, DIM, 1);
    /* a document whose vectors are all the query itself */
    float q[DIM];
    point(q, DIM);
    sl_doc *d = sl_doc_new("d/target.md", NULL);
    sl_doc_set_data(d, "v1", 2);
    sl_doc_set_fingerprint(d, "fp");
    sl_doc_set_run_id(d, 1);
    for (size_t i = 0; i < 3; i++) {
        sl_doc_add_chunk(d, "old", 3);
        memcpy(sl_doc_chunk_vector(d, i, DIM), q, sizeof q);
    }
    CHECK_INT(do_store(s, d), 0);
    sl_doc_free(d);
    free(do_query(s, q, DIM, 5)); /* builds the index */
    char *a = do_query(s, q, DIM, 3);
    CHECK_CONTAINS(a, "d/target.md#0 1.0");
    CHECK_CONTAINS(a, "d/target.md#2 1.0");
    free(a);

    /* replaced by vectors pointing the other way: the old ones are gone */
    d = sl_doc_new("d/target.md", NULL);
    sl_doc_set_data(d, "v2", 2);
    sl_doc_set_fingerprint(d, "fp");
    sl_doc_set_run_id(d, 2);
    sl_doc_add_chunk(d, "new", 3);
    float *v = sl_doc_chunk_vector(d, 0, DIM);
    for (int j = 0; j < DIM; j++) v[j] = -q[j];
    CHECK_INT(do_store(s, d), 0);
    sl_doc_free(d);
    capture_start();
    a = do_query(s, q, DIM, 3);
    char *log = capture_end();
    CHECK_CONTAINS(log, "caught up with 4 change(s)"); /* 3 removed, 1 added */
    free(log);
    CHECK(strstr(a, "d/target.md") == NULL);
    free(a);
    float back[DIM];
    for (int j = 0; j < DIM; j++) back[j] = -q[j];
    a = do_query(s, back, DIM, 1);
    CHECK_CONTAINS(a, "d/target.md#0 1.0");
    free(a);

    /* pruned (not seen in run 3): no hit of it at all */
    for (int i = 0; i < 20; i++) {
        char uri[64];
        snprintf(uri, sizeof uri, "d/b-%d.md", i);
        sl_doc *keep = mkdoc(uri, uri, 20, DIM, 3);
        CHECK_INT(do_store(s, keep), 0); /* stored again: seen in run 3, new rows */
        sl_doc_free(keep);
    }
    CHECK_INT(do_prune(s, "d", 3), 1);
    a = do_query(s, back, DIM, 5);
    CHECK(strstr(a, "d/target.md") == NULL);
    free(a);
    sl_instance_free(s);
    same_as_brute_force(path, "100", 20, DIM, 10);
}

/* A run killed in the middle: the index file on disk is older than the
 * store; opened again it is caught up from the store's log, and answers
 * as brute force does. */
static void test_kill_mid_run_index_caught_up(void) {
    char path[4096];
    store_dir(path, sizeof path, "kill");
    int rc;
    sl_instance *s = sink_open(path, "auto", "200", &rc);
    CHECK_INT(rc, 0);
    fill(s, "c", 20, 30, DIM, 1);
    float q[DIM];
    point(q, DIM);
    free(do_query(s, q, DIM, 5)); /* built and saved */
    sl_instance_free(s);

    int ready[2];
    CHECK_INT(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        int crc;
        sl_instance *c = sink_open(path, "auto", "200", &crc);
        if (crc) _exit(2);
        for (unsigned n = 0;; n++) {
            char uri[64];
            snprintf(uri, sizeof uri, "d/c-%u.md", n % 30); /* replaces, then new ones */
            sl_doc *d = mkdoc(uri, uri, 10 + n % 7, DIM, 2);
            if (do_store(c, d) != 0) _exit(3);
            sl_doc_free(d);
            float cq[DIM];
            point(cq, DIM);
            free(do_query(c, cq, DIM, 5)); /* the index caught up in memory, not saved */
            if (n == 25 && write(ready[1], "x", 1) != 1) _exit(4);
        }
    }
    close(ready[1]);
    char ch;
    CHECK_INT(read(ready[0], &ch, 1), 1);
    close(ready[0]);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    s = sink_open(path, "auto", "200", &rc);
    CHECK_INT(rc, 0);
    capture_start();
    free(do_query(s, q, DIM, 5));
    char *log = capture_end();
    CHECK_CONTAINS(log, "caught up with");
    CHECK(strstr(log, "rebuilding") == NULL);
    free(log);
    sl_instance_free(s);
    same_as_brute_force(path, "200", 30, DIM, 10);
}

/* Damage to the file is found, the file rebuilt, and answers stay right. */
static void damage_and_check(const char *path, const char *idx, void (*damage)(const char *),
                             const char *expect) {
    damage(idx);
    int rc;
    sl_instance *s = sink_open(path, "auto", "300", &rc);
    CHECK_INT(rc, 0);
    float q[DIM];
    point(q, DIM);
    capture_start();
    free(do_query(s, q, DIM, 5));
    char *log = capture_end();
    CHECK_CONTAINS(log, expect);
    CHECK_CONTAINS(log, "rebuilding it from the store");
    CHECK_CONTAINS(log, "built for 600 vectors");
    free(log);
    sl_instance_free(s);
    /* the rebuilt file is believed */
    s = sink_open(path, "auto", "300", &rc);
    capture_start();
    free(do_query(s, q, DIM, 5));
    log = capture_end();
    CHECK(strstr(log, "rebuilding") == NULL && strstr(log, "building") == NULL);
    free(log);
    sl_instance_free(s);
    same_as_brute_force(path, "300", 10, DIM, 10);
}

static void flip_a_byte(const char *p) {
    FILE *f = fopen(p, "r+b");
    CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    long mid = ftell(f) / 2;
    fseek(f, mid, SEEK_SET);
    int c = fgetc(f);
    fseek(f, mid, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
}
static void cut_in_half(const char *p) {
    struct stat st;
    CHECK_INT(stat(p, &st), 0);
    CHECK_INT(truncate(p, st.st_size / 2), 0);
}
static const char *foreign_src;
static void replace_with_foreign(const char *p) {
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", foreign_src, p);
    CHECK_INT(system(cmd), 0);
}

static void test_damaged_index_file_rebuilt(void) {
    char path[4096], idx[4200];
    store_dir(path, sizeof path, "damaged");
    snprintf(idx, sizeof idx, "%s.%d.hnsw", path, DIM);
    int rc;
    sl_instance *s = sink_open(path, "auto", "300", &rc);
    CHECK_INT(rc, 0);
    fill(s, "e", 20, 30, DIM, 1);
    float q[DIM];
    point(q, DIM);
    free(do_query(s, q, DIM, 5));
    sl_instance_free(s);
    CHECK(exists(idx));

    damage_and_check(path, idx, flip_a_byte, "checksum mismatch");
    damage_and_check(path, idx, cut_in_half, "truncated");
    /* another store's index under this store's name */
    char other[4096], oidx[4200];
    store_dir(other, sizeof other, "known");
    snprintf(oidx, sizeof oidx, "%s.%d.hnsw", other, DIM);
    foreign_src = oidx;
    damage_and_check(path, idx, replace_with_foreign, "built from another store");
}

/* Vectors of two dimensions in one store: two indexes, never mixed. */
static void test_dimensions_kept_apart(void) {
    char path[4096], i8[4200], i16[4200];
    store_dir(path, sizeof path, "dims");
    snprintf(i8, sizeof i8, "%s.8.hnsw", path);
    snprintf(i16, sizeof i16, "%s.16.hnsw", path);
    int rc;
    sl_instance *s = sink_open(path, "auto", "50", &rc);
    CHECK_INT(rc, 0);
    fill(s, "eight", 10, 10, 8, 1);
    fill(s, "sixteen", 10, 10, 16, 1);
    float q[16];
    point(q, 8);
    free(do_query(s, q, 8, 5));
    point(q, 16);
    free(do_query(s, q, 16, 5));
    CHECK(exists(i8) && exists(i16));
    char *a = do_query(s, q, 16, 200);
    CHECK(strstr(a, "eight") == NULL);
    CHECK(strstr(a, "sixteen") != NULL);
    free(a);
    point(q, 8);
    a = do_query(s, q, 8, 200);
    CHECK(strstr(a, "sixteen") == NULL);
    free(a);
    sl_instance_free(s);
    same_as_brute_force(path, "50", 10, 8, 10);
    same_as_brute_force(path, "50", 10, 16, 10);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

int main(void) {
    const char *dir = getenv("SLUICE_PLUGIN_DIR");
    const char *tmp = getenv("SLUICE_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/vector-index-%ld", tmp ? tmp : "/tmp", (long)getpid());
    mkdir(tmp ? tmp : "/tmp", 0755);
    mkdir(tmpdir, 0755);
    char path[4096];
    snprintf(path, sizeof path, "%s/sink-sqlite.so", dir ? dir : ".");
    ctx = sl_ctx_new();
    sl_ctx_set_log_level(ctx, SL_LOG_DEBUG);
    CHECK_INT(sl_registry_new(ctx, &reg), 0);
    if (sl_registry_open(ctx, reg, path, &plugin) != 0) {
        fprintf(stderr, "cannot load %s: %s\n", path, sl_ctx_errmsg(ctx));
        return 1;
    }
    desc = &plugin->desc;
    make_centres();

    test_index_top_k_equals_brute_force();
    test_replace_and_prune_leave_the_index();
    test_kill_mid_run_index_caught_up();
    test_damaged_index_file_rebuilt();
    test_dimensions_kept_apart();

    sl_registry_free(reg);
    sl_ctx_free(ctx);
    int rc = check_done();
    if (rc == 0) nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
