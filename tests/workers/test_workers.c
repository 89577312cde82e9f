/* test_workers.c - the isolated executor, driven directly: real worker
 * processes (the built sluice in its __worker mode) running plugins that
 * misbehave on purpose (plugins/test_bad.c).
 *
 * Each test makes its own loop and sl_workers, submits documents, runs the
 * loop until every callback has come, checks what came back and what the
 * documents hold, frees the executor and then checks that no child process
 * is left: not running, not a zombie. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "document.h"
#include "instance.h"
#include "registry.h"
#include "loop.h"
#include "workers.h"

#define MIB (1024ull * 1024ull)

static sl_ctx *ctx;
static sl_registry *reg;
static char tmpdir[4096];

typedef struct result {
    int calls;
    int rc;
    char msg[2048];
    uint64_t t_start; /* when a worker took it; 0: none did */
} result;

static void on_done(void *arg, int rc, const char *msg, uint64_t t_start_ns) {
    result *r = arg;
    r->t_start = t_start_ns;
    r->calls++;
    r->rc = rc;
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "(null)");
}

static sl_instance *instance(const char *plugin, const char *name, const char *const *overrides, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.so", WORKERS_PLUGIN_DIR, plugin);
    const sl_loaded *pl;
    sl_instance *inst = NULL;
    if (sl_registry_open(ctx, reg, path, &pl) != 0 ||
        sl_instance_new_defaults(ctx, pl, name, overrides, n, &inst)) {
        fprintf(stderr, "cannot make an instance of %s: %s\n", path, sl_ctx_errmsg(ctx));
        exit(1);
    }
    return inst;
}

static sl_doc *text_doc(const char *uri, const char *text) {
    sl_doc *d = sl_doc_new(uri, NULL);
    sl_doc_set_data(d, text, strlen(text));
    sl_doc_set_media_type(d, "text/markdown");
    sl_doc_set_fingerprint(d, "00112233445566778899aabbccddeeff");
    sl_doc_set_run_id(d, 42);
    return d;
}

static sl_workers_opts base_opts(void) {
    sl_workers_opts o;
    memset(&o, 0, sizeof o);
    o.exe = SLUICE_EXE;
    o.count = 2;
    return o;
}

/* After sl_workers_free nothing may be left: waitpid reports no children. */
static void check_no_children(void) {
    errno = 0;
    pid_t p = waitpid(-1, NULL, WNOHANG);
    CHECK_INT(p, -1);
    CHECK_INT(errno, ECHILD);
}

static void check_gone(long pid) {
    CHECK(pid > 0 && pid != (long)getpid());
    CHECK(kill((pid_t)pid, 0) == -1 && errno == ESRCH);
}

static long meta_long(const sl_doc *d, const char *key) {
    const char *v = sl_doc_meta_get(d, key);
    return v ? strtol(v, NULL, 10) : -1;
}

/* --- a crash, a hang, a runaway, an exit: each costs one document --- */

static void test_bad_documents_fail_alone(void) {
    sl_loop *loop;
    CHECK_INT(sl_loop_new(&loop), 0);
    sl_instance *inst = instance("test-bad-parser", "bad", NULL, 0);
    sl_workers_opts o = base_opts();
    o.memory_limit = 64 * MIB;
    o.timeout_ms = 1500;
    sl_workers *w;
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), 0);
    if (!w) return;
    CHECK_INT(sl_workers_alive(w), 2);

    enum { NGOOD = 8 };
    static const struct {
        const char *uri, *text, *want;
        int rc;
    } bad[] = {
        {"bad/segv.md", "# Crash\n\nSLUICE_TEST_SEGFAULT\n",
         "segmentation fault (SIGSEGV) in plugin test-bad-parser on bad/segv.md", SL_EBADINPUT},
        {"bad/hang.md", "# Hang\n\nSLUICE_TEST_HANG\n",
         "timed out after 1500 ms in plugin test-bad-parser on bad/hang.md", SL_EBADINPUT},
        {"bad/alloc.md", "# Runaway\n\nSLUICE_TEST_ALLOCATE\n",
         "out of memory (worker memory limit 64 MiB) in plugin test-bad-parser on bad/alloc.md: malloc "
         "failed after",
         SL_ENOMEM},
        {"bad/exit.md", "# Exit\n\nSLUICE_TEST_EXIT\n",
         "worker exited with status 3 in plugin test-bad-parser on bad/exit.md", SL_EBADINPUT},
        {"bad/abort.md", "# Abort\n\nSLUICE_TEST_ABORT\n",
         "aborted (SIGABRT) in plugin test-bad-parser on bad/abort.md", SL_EBADINPUT},
        {"bad/reject.md", "SLUICE_TEST_REJECT\n", "rejected: the document holds SLUICE_TEST_REJECT",
         SL_EBADINPUT},
    };
    enum { NBAD = sizeof bad / sizeof bad[0] };
    sl_doc *good[NGOOD], *bd[NBAD];
    result rg[NGOOD], rb[NBAD];
    char texts[NGOOD][128], uris[NGOOD][64];
    memset(rg, 0, sizeof rg);
    memset(rb, 0, sizeof rb);
    for (int i = 0; i < NGOOD; i++) {
        snprintf(uris[i], sizeof uris[i], "good/%d.md", i);
        snprintf(texts[i], sizeof texts[i], "# Title %d\n\nfirst line of %d\nsecond line\n", i, i);
        good[i] = text_doc(uris[i], texts[i]);
    }
    for (int i = 0; i < NBAD; i++) bd[i] = text_doc(bad[i].uri, bad[i].text);
    /* bad documents in between good ones */
    for (int i = 0; i < NGOOD || i < NBAD; i++) {
        if (i < NBAD) CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, bd[i], 0, on_done, &rb[i]), 0);
        if (i < NGOOD) CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, good[i], 0, on_done, &rg[i]), 0);
    }
    sl_loop_run(loop);

    long pids[NGOOD];
    for (int i = 0; i < NGOOD; i++) {
        CHECK_INT(rg[i].calls, 1);
        CHECK_INT(rg[i].rc, 0);
        CHECK_INT(sl_doc_element_count(good[i]), 3);
        char want[64];
        snprintf(want, sizeof want, "Title %d", i);
        CHECK_STR(sl_element_text(good[i], 0, NULL), want);
        CHECK_INT(sl_element_type(good[i], 0), SL_EL_HEADING);
        CHECK_INT(sl_element_level(good[i], 0), 1);
        CHECK_INT(sl_element_line(good[i], 2), 4);
        CHECK_STR(sl_element_attr(good[i], 2, "len"), "11");
        float box[4];
        CHECK_INT(sl_element_bbox(good[i], 1, box), 1);
        CHECK(box[3] == 3.0f && box[0] == 1.0f);
        CHECK(sl_element_confidence(good[i], 1) == 90.0f);
        CHECK_STR(sl_doc_meta_get(good[i], "hash"), sl_doc_hash(good[i]));
        CHECK_INT(meta_long(good[i], "bytes"), (long)strlen(texts[i]));
        pids[i] = meta_long(good[i], "pid");
        CHECK(pids[i] > 0 && pids[i] != (long)getpid());
    }
    for (int i = 0; i < NBAD; i++) {
        CHECK_INT(rb[i].calls, 1);
        CHECK_INT(rb[i].rc, bad[i].rc);
        CHECK_CONTAINS(rb[i].msg, bad[i].want);
        CHECK_INT(sl_doc_element_count(bd[i]), 0);
    }
    /* five workers died or were killed (segv, hang, runaway, exit, abort), each replaced */
    CHECK(sl_workers_started(w) >= 2 + 5);
    sl_workers_free(w);
    check_no_children();
    for (int i = 0; i < NGOOD; i++) check_gone(pids[i]);
    for (int i = 0; i < NGOOD; i++) sl_doc_free(good[i]);
    for (int i = 0; i < NBAD; i++) sl_doc_free(bd[i]);
    sl_instance_free(inst);
    sl_loop_free(loop);
}

/* --- page and chunk operations: what travels and what comes back --- */

static void set_image(sl_doc *d, uint32_t page, uint32_t w, uint32_t h, uint32_t ch, unsigned char v) {
    size_t n = (size_t)w * h * ch;
    unsigned char *px = malloc(n);
    for (size_t i = 0; i < n; i++) px[i] = (unsigned char)(v + i % 7);
    CHECK_INT(sl_doc_set_page_image(d, page, w, h, ch, (size_t)w * ch, px, 150.0f), 0);
    free(px);
}

static int find_element(const sl_doc *d, const char *prefix) {
    for (size_t i = 0; i < sl_doc_element_count(d); i++)
        if (strncmp(sl_element_text(d, i, NULL), prefix, strlen(prefix)) == 0) return (int)i;
    return -1;
}

static void test_page_and_chunk_state_round_trip(void) {
    sl_loop *loop;
    CHECK_INT(sl_loop_new(&loop), 0);
    sl_instance *pg = instance("test-bad-page", "pages", NULL, 0);
    sl_instance *ck = instance("test-bad-chunker", "chunks", NULL, 0);
    sl_workers_opts o = base_opts();
    o.timeout_ms = 20000;
    sl_workers *w;
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), 0);
    if (!w) return;

    /* as a parser would leave it: 3 pages, text on pages 1 and 3, images on all */
    sl_doc *d = text_doc("scan.pdf", "%PDF-1.7 not really");
    sl_doc_set_page_count(d, 3);
    set_image(d, 1, 10, 5, 1, 10);
    set_image(d, 2, 700, 400, 3, 20); /* 840 KB: travels as a memfd both ways */
    set_image(d, 3, 4, 4, 4, 30);
    int e = sl_doc_add_element(d, SL_EL_PARAGRAPH, "hello", 5);
    sl_elem_set_page(d, (size_t)e, 1);
    e = sl_doc_add_element(d, SL_EL_TITLE, "third page", 10);
    sl_elem_set_page(d, (size_t)e, 3);
    sl_doc_meta_set(d, "title", "Scan");
    sl_doc_add_region(d, 3, "figure", 0.9f, 1, 2, 3, 4);

    result r[3];
    memset(r, 0, sizeof r);
    for (uint32_t p = 1; p <= 3; p++)
        CHECK_INT(sl_workers_submit(w, pg, SL_OP_PAGE, d, p, on_done, &r[p - 1]), 0);
    sl_loop_run(loop);
    for (int p = 0; p < 3; p++) {
        CHECK_INT(r[p].calls, 1);
        CHECK_INT(r[p].rc, 0);
    }
    CHECK_INT(sl_doc_element_count(d), 5);
    CHECK(find_element(d, "page 1: chars=5 image=10x5 px=10") >= 0);
    CHECK(find_element(d, "page 2: chars=0 image=700x400 px=20") >= 0);
    CHECK(find_element(d, "page 3: chars=9 image=4x4 px=30") >= 0);
    int i2 = find_element(d, "page 2:");
    CHECK(i2 >= 0 && sl_element_page(d, (size_t)i2) == 2);
    CHECK(i2 >= 0 && sl_element_attr(d, (size_t)i2, "from") &&
          strcmp(sl_element_attr(d, (size_t)i2, "from"), "page-stage") == 0);
    CHECK_STR(sl_element_text(d, 0, NULL), "hello"); /* what was there stays */
    CHECK_STR(sl_doc_meta_get(d, "title"), "Scan");
    for (int p = 1; p <= 3; p++) {
        char key[16];
        snprintf(key, sizeof key, "page.%d", p);
        CHECK(meta_long(d, key) > 0 && meta_long(d, key) != (long)getpid());
    }
    /* even pages inverted, odd pages dropped */
    uint32_t iw = 0, ih = 0, ic = 0;
    size_t st = 0;
    float dpi = 0;
    const unsigned char *px = sl_doc_page_image(d, 2, &iw, &ih, &ic, &st, &dpi);
    CHECK(px != NULL);
    if (px) {
        CHECK_INT(iw, 700);
        CHECK_INT(ih, 400);
        CHECK_INT(ic, 3);
        CHECK(dpi == 150.0f);
        int ok = 1;
        for (size_t k = 0; k < st * ih; k++) ok &= px[k] == (unsigned char)(255 - (20 + k % 7));
        CHECK(ok);
    }
    CHECK(sl_doc_page_image(d, 1, NULL, NULL, NULL, NULL, NULL) == NULL);
    CHECK(sl_doc_page_image(d, 3, NULL, NULL, NULL, NULL, NULL) == NULL);
    CHECK_INT(sl_doc_region_count(d), 4);
    int odd = 0, even = 0;
    for (size_t k = 0; k < sl_doc_region_count(d); k++) {
        const char *label;
        uint32_t page;
        sl_doc_region(d, k, &page, &label, NULL, NULL);
        odd += strcmp(label, "odd") == 0;
        even += strcmp(label, "even") == 0 && page == 2;
    }
    CHECK_INT(odd, 2);
    CHECK_INT(even, 1);

    /* the chunker sees every element and its chunks come back */
    result rc;
    memset(&rc, 0, sizeof rc);
    CHECK_INT(sl_workers_submit(w, ck, SL_OP_CHUNK, d, 0, on_done, &rc), 0);
    sl_loop_run(loop);
    CHECK_INT(rc.calls, 1);
    CHECK_INT(rc.rc, 0);
    CHECK_INT(sl_doc_element_count(d), 5);
    CHECK_INT(sl_doc_chunk_count(d), 5);
    for (size_t k = 0; k < sl_doc_chunk_count(d) && k < 5; k++) {
        char h[16], s[16];
        snprintf(h, sizeof h, "h/%zu", k);
        snprintf(s, sizeof s, "s/%zu", k);
        CHECK_STR(sl_chunk_text(d, k, NULL), sl_element_text(d, k, NULL));
        CHECK_STR(sl_chunk_heading(d, k), h);
        CHECK_STR(sl_chunk_summary(d, k), s);
        CHECK_INT(sl_chunk_page(d, k), sl_element_page(d, k));
    }
    CHECK(sl_doc_page_image(d, 2, NULL, NULL, NULL, NULL, NULL) !=
          NULL); /* not sent to the chunker, still here */

    /* one page of a document crashes: that page fails, the others do not */
    sl_doc *c = text_doc("crash.pdf", "SLUICE_TEST_SEGFAULT on page two");
    sl_doc_set_page_count(c, 3);
    memset(r, 0, sizeof r);
    for (uint32_t p = 1; p <= 3; p++)
        CHECK_INT(sl_workers_submit(w, pg, SL_OP_PAGE, c, p, on_done, &r[p - 1]), 0);
    sl_loop_run(loop);
    CHECK_INT(r[0].rc, 0);
    CHECK_INT(r[1].rc, SL_EBADINPUT);
    CHECK_CONTAINS(r[1].msg, "segmentation fault (SIGSEGV) in plugin test-bad-page on crash.pdf");
    CHECK_INT(r[2].rc, 0);
    CHECK_INT(sl_doc_element_count(c), 2);

    sl_workers_free(w);
    check_no_children();
    sl_doc_free(d);
    sl_doc_free(c);
    sl_instance_free(pg);
    sl_instance_free(ck);
    sl_loop_free(loop);
}

/* --- seccomp: no new sockets, no file writes once the plugin runs --- */

static void seccomp_run(bool on, const char *written, result *rw, result *rs, result *rg, sl_doc **docs) {
    sl_loop *loop;
    CHECK_INT(sl_loop_new(&loop), 0);
    char ov[4200];
    snprintf(ov, sizeof ov, "write_path=%s", written);
    const char *overrides[] = {ov};
    sl_instance *inst = instance("test-bad-parser", "sandboxed", overrides, 1);
    sl_workers_opts o = base_opts();
    o.count = 1;
    o.seccomp = on;
    o.timeout_ms = 20000;
    sl_workers *w;
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), 0);
    if (!w) return;
    docs[0] = text_doc("sec/write.md", "SLUICE_TEST_WRITE\n");
    docs[1] = text_doc("sec/socket.md", "SLUICE_TEST_SOCKET\n");
    docs[2] = text_doc("sec/good.md", "# fine\n");
    CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, docs[0], 0, on_done, rw), 0);
    CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, docs[1], 0, on_done, rs), 0);
    CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, docs[2], 0, on_done, rg), 0);
    sl_loop_run(loop);
    sl_workers_free(w);
    check_no_children();
    sl_instance_free(inst);
    sl_loop_free(loop);
}

static void test_seccomp_denies_network_and_writes(void) {
    char written[4200];
    snprintf(written, sizeof written, "%s/workers-written-%d", tmpdir, (int)getpid());
    unlink(written);
    result rw = {0}, rs = {0}, rg = {0};
    sl_doc *docs[3];
    seccomp_run(true, written, &rw, &rs, &rg, docs);
    CHECK_INT(rw.rc, SL_EBADINPUT);
    CHECK_CONTAINS(rw.msg, "bad system call (SIGSYS)");
    CHECK_CONTAINS(rw.msg, "seccomp");
    CHECK_INT(rs.rc, SL_EBADINPUT);
    CHECK_CONTAINS(rs.msg, "bad system call (SIGSYS)");
    CHECK_INT(rg.rc, 0);
    CHECK_INT(sl_doc_element_count(docs[2]), 1);
    struct stat sb;
    CHECK(stat(written, &sb) != 0);
    for (int i = 0; i < 3; i++) sl_doc_free(docs[i]);

    /* without the filter the same plugin does write and connect: the test can fail */
    memset(&rw, 0, sizeof rw);
    memset(&rs, 0, sizeof rs);
    memset(&rg, 0, sizeof rg);
    seccomp_run(false, written, &rw, &rs, &rg, docs);
    CHECK_INT(rw.rc, 0);
    CHECK_STR(sl_doc_meta_get(docs[0], "wrote"), written);
    CHECK(stat(written, &sb) == 0);
    CHECK_INT(rs.rc, 0);
    CHECK_STR(sl_doc_meta_get(docs[1], "socket"), "opened");
    for (int i = 0; i < 3; i++) sl_doc_free(docs[i]);
    unlink(written);
}

/* --- recycling after a number of documents, or above a resident size --- */

static void test_workers_are_recycled(void) {
    sl_loop *loop;
    CHECK_INT(sl_loop_new(&loop), 0);
    sl_instance *inst = instance("test-bad-parser", "recycled", NULL, 0);
    sl_workers_opts o = base_opts();
    o.count = 1;
    o.max_documents = 2;
    sl_workers *w;
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), 0);
    if (!w) return;
    enum { N = 5 };
    sl_doc *d[N];
    result r[N];
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++) {
        d[i] = text_doc("r.md", "# one\n");
        CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, d[i], 0, on_done, &r[i]), 0);
    }
    sl_loop_run(loop);
    long pid[N];
    for (int i = 0; i < N; i++) {
        CHECK_INT(r[i].rc, 0);
        pid[i] = meta_long(d[i], "pid");
    }
    /* the instance stays loaded between documents of one worker, not across workers */
    CHECK(pid[0] == pid[1] && pid[2] == pid[3] && pid[0] != pid[2] && pid[4] != pid[2] && pid[4] != pid[0]);
    CHECK_INT(meta_long(d[0], "calls"), 1);
    CHECK_INT(meta_long(d[1], "calls"), 2);
    CHECK_INT(meta_long(d[2], "calls"), 1);
    CHECK_INT(meta_long(d[3], "calls"), 2);
    CHECK_INT(meta_long(d[4], "calls"), 1);
    CHECK_INT(sl_workers_started(w), 3);
    sl_workers_free(w);
    check_no_children();
    for (int i = 0; i < N; i++) check_gone(pid[i]);
    for (int i = 0; i < N; i++) sl_doc_free(d[i]);

    /* above max_rss: the worker that grew is replaced before the next document */
    sl_loop_free(loop);
    CHECK_INT(sl_loop_new(&loop), 0);
    o.max_documents = 0;
    o.max_rss = 40 * MIB;
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), 0);
    sl_doc *g[3] = {text_doc("a.md", "# small\n"), text_doc("b.md", "SLUICE_TEST_GROW\n"),
                    text_doc("c.md", "# after\n")};
    result rr[3];
    memset(rr, 0, sizeof rr);
    for (int i = 0; i < 3; i++)
        CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, g[i], 0, on_done, &rr[i]), 0);
    sl_loop_run(loop);
    for (int i = 0; i < 3; i++) CHECK_INT(rr[i].rc, 0);
    CHECK(meta_long(g[0], "pid") == meta_long(g[1], "pid"));
    CHECK(meta_long(g[1], "pid") != meta_long(g[2], "pid"));
    CHECK_INT(meta_long(g[2], "calls"), 1);
    sl_workers_free(w);
    check_no_children();
    for (int i = 0; i < 3; i++) sl_doc_free(g[i]);
    sl_instance_free(inst);
    sl_loop_free(loop);
}

/* --- a worker that dies between documents --- */

static void test_idle_worker_death_costs_no_document(void) {
    sl_loop *loop;
    CHECK_INT(sl_loop_new(&loop), 0);
    sl_instance *inst = instance("test-bad-parser", "idle", NULL, 0);
    sl_workers_opts o = base_opts();
    o.count = 1;
    sl_workers *w;
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), 0);
    if (!w) return;
    sl_doc *a = text_doc("a.md", "# a\n"), *b = text_doc("b.md", "# b\n");
    result ra = {0}, rb = {0};
    CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, a, 0, on_done, &ra), 0);
    sl_loop_run(loop);
    CHECK_INT(ra.rc, 0);
    long pid = meta_long(a, "pid");
    /* killed from outside while idle; the loop has not seen it yet */
    CHECK_INT(kill((pid_t)pid, SIGKILL), 0);
    usleep(100 * 1000);
    CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, b, 0, on_done, &rb), 0);
    sl_loop_run(loop);
    CHECK_INT(rb.calls, 1);
    CHECK_INT(rb.rc, 0);
    CHECK(meta_long(b, "pid") > 0 && meta_long(b, "pid") != pid);
    CHECK_INT(sl_workers_started(w), 2);
    sl_workers_free(w);
    check_no_children();
    sl_doc_free(a);
    sl_doc_free(b);
    sl_instance_free(inst);
    sl_loop_free(loop);
}

/* --- init, secrets, the document's bytes --- */

static void test_init_failures_are_fatal(void) {
    sl_loop *loop;
    CHECK_INT(sl_loop_new(&loop), 0);
    const char *fail[] = {"fail_init=true"}, *crash[] = {"init_crash=true"};
    sl_instance *a = instance("test-bad-parser", "failing", fail, 1);
    sl_instance *b = instance("test-bad-parser", "crashing", crash, 1);
    sl_workers_opts o = base_opts();
    sl_workers *w;
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), 0);
    if (!w) return;
    sl_doc *d1 = text_doc("x.md", "# x\n"), *d2 = text_doc("y.md", "# y\n");
    result r1 = {0}, r2 = {0};
    CHECK_INT(sl_workers_submit(w, a, SL_OP_PARSE, d1, 0, on_done, &r1), 0);
    CHECK_INT(sl_workers_submit(w, b, SL_OP_PARSE, d2, 0, on_done, &r2), 0);
    sl_loop_run(loop);
    CHECK_INT(r1.rc, SL_EFATAL);
    CHECK_CONTAINS(r1.msg, "[failing] init failed: told to fail by fail_init");
    CHECK_INT(r2.rc, SL_EFATAL);
    CHECK_CONTAINS(r2.msg, "[crashing] segmentation fault (SIGSEGV) while plugin test-bad-parser started");
    sl_workers_free(w);
    check_no_children();
    sl_doc_free(d1);
    sl_doc_free(d2);
    sl_instance_free(a);
    sl_instance_free(b);
    sl_loop_free(loop);
}

static void test_secrets_reach_the_worker_but_never_its_messages(void) {
    sl_loop *loop;
    CHECK_INT(sl_loop_new(&loop), 0);
    const char *ov[] = {"token=hunter2-very-secret"};
    sl_instance *inst = instance("test-bad-parser", "secretive", ov, 1);
    sl_workers_opts o = base_opts();
    o.count = 1;
    sl_workers *w;
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), 0);
    if (!w) return;
    sl_doc *leak = text_doc("leak.md", "SLUICE_TEST_LEAK\n"), *ok = text_doc("ok.md", "# ok\n");
    result r1 = {0}, r2 = {0};
    CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, leak, 0, on_done, &r1), 0);
    CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, ok, 0, on_done, &r2), 0);
    sl_loop_run(loop);
    CHECK_INT(r1.rc, SL_EBADINPUT);
    CHECK_CONTAINS(r1.msg, "my token is ***");
    CHECK(strstr(r1.msg, "hunter2") == NULL);
    CHECK_INT(r2.rc, 0);
    CHECK_INT(meta_long(ok, "token_len"), (long)strlen("hunter2-very-secret"));
    sl_workers_free(w);
    check_no_children();
    sl_doc_free(leak);
    sl_doc_free(ok);
    sl_instance_free(inst);
    sl_loop_free(loop);
}

static void write_file(const char *path, const char *text) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    fputs(text, f);
    fclose(f);
    rename(tmp, path); /* a new file: a mapping of the old one keeps the old bytes */
}

static void test_the_worker_parses_the_bytes_sluice_read(void) {
    sl_loop *loop;
    CHECK_INT(sl_loop_new(&loop), 0);
    sl_instance *inst = instance("test-bad-parser", "files", NULL, 0);
    sl_workers_opts o = base_opts();
    sl_workers *w;
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), 0);
    if (!w) return;
    char p1[4200], p2[4200];
    snprintf(p1, sizeof p1, "%s/workers-file-a-%d.md", tmpdir, (int)getpid());
    snprintf(p2, sizeof p2, "%s/workers-file-b-%d.md", tmpdir, (int)getpid());
    write_file(p1, "# From a file\n\nread once by sluice\n");
    write_file(p2, "# Read before\n");
    sl_doc *a = sl_doc_new(p1, p1), *b = sl_doc_new(p2, p2);
    char err[256];
    CHECK_INT(sl_doc_load(a, 1 << 20, err, sizeof err), 0);
    CHECK_INT(sl_doc_load(b, 1 << 20, err, sizeof err), 0);
    write_file(p2, "# Has changed\n"); /* after sluice read it */
    result ra = {0}, rb = {0};
    CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, a, 0, on_done, &ra), 0);
    CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, b, 0, on_done, &rb), 0);
    sl_loop_run(loop);
    CHECK_INT(ra.rc, 0);
    CHECK_STR(sl_doc_meta_get(a, "hash"), sl_doc_hash(a));
    CHECK_INT(sl_doc_element_count(a), 2);
    /* the worker parses the bytes sluice read (a sealed copy), not the file
     * as it is now: what is stored is what was hashed */
    CHECK_INT(rb.rc, 0);
    CHECK_STR(sl_doc_meta_get(b, "hash"), sl_doc_hash(b));
    size_t l;
    const char *t = sl_element_text(b, 0, &l);
    CHECK(t && l == 11 && memcmp(t, "Read before", 11) == 0);
    sl_workers_free(w);
    check_no_children();
    sl_doc_free(a);
    sl_doc_free(b);
    unlink(p1);
    unlink(p2);
    sl_instance_free(inst);
    sl_loop_free(loop);
}

/* --- workers that cannot start --- */

static void test_workers_that_cannot_start_fail_the_work(void) {
    sl_loop *loop;
    CHECK_INT(sl_loop_new(&loop), 0);
    sl_instance *inst = instance("test-bad-parser", "nowhere", NULL, 0);
    sl_workers_opts o = base_opts();
    sl_workers *w = NULL;

    o.exe = "/nonexistent/sluice";
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), SL_EFATAL);
    CHECK(w == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "cannot start a worker process (/nonexistent/sluice __worker)");

    /* starts, but is no sluice: it exits before saying hello, every time */
    o.exe = "/bin/false";
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), 0);
    if (!w) return;
    sl_doc *d = text_doc("x.md", "# x\n");
    result r = {0};
    CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, d, 0, on_done, &r), 0);
    sl_loop_run(loop);
    CHECK_INT(r.calls, 1);
    CHECK_INT(r.rc, SL_EFATAL);
    CHECK_CONTAINS(r.msg, "worker processes do not start (worker exited with status 1, 3 times in a row)");
    CHECK(sl_workers_started(w) <= 4);
    /* later work fails the same way, without new attempts */
    uint64_t started = sl_workers_started(w);
    result r2 = {0};
    CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, d, 0, on_done, &r2), 0);
    sl_loop_run(loop);
    CHECK_INT(r2.rc, SL_EFATAL);
    CHECK_INT(sl_workers_started(w), started);
    sl_workers_free(w);
    check_no_children();
    sl_doc_free(d);
    sl_instance_free(inst);
    sl_loop_free(loop);
}

/* --- the moment a worker took the operation: queue time before, busy time after --- */

static void test_start_time_is_when_a_worker_took_it(void) {
    sl_loop *loop;
    CHECK_INT(sl_loop_new(&loop), 0);
    sl_instance *inst = instance("test-bad-parser", "timed", NULL, 0);
    sl_workers_opts o = base_opts();
    o.count = 1;
    o.timeout_ms = 300;
    sl_workers *w;
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), 0);
    if (!w) return;
    sl_doc *a = text_doc("slow.md", "# Hang\n\nSLUICE_TEST_HANG\n"), *b = text_doc("next.md", "# next\n");
    result ra = {0}, rb = {0};
    uint64_t t0 = sl_now_ns();
    CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, a, 0, on_done, &ra), 0);
    CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, b, 0, on_done, &rb), 0);
    sl_loop_run(loop);
    uint64_t t1 = sl_now_ns();
    CHECK_INT(ra.rc, SL_EBADINPUT);
    CHECK_INT(rb.rc, 0);
    /* b waited in the queue while a held the one worker until its timeout */
    CHECK(ra.t_start >= t0 && ra.t_start <= t1);
    CHECK(rb.t_start >= ra.t_start + 300 * 1000000ull && rb.t_start <= t1);
    sl_workers_free(w);
    check_no_children();

    /* a worker never took it: 0 */
    o.exe = "/bin/false";
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), 0);
    if (!w) return;
    result rc = {0};
    CHECK_INT(sl_workers_submit(w, inst, SL_OP_PARSE, b, 0, on_done, &rc), 0);
    sl_loop_run(loop);
    CHECK_INT(rc.rc, SL_EFATAL);
    CHECK(rc.t_start == 0);
    sl_workers_free(w);
    check_no_children();
    sl_doc_free(a);
    sl_doc_free(b);
    sl_instance_free(inst);
    sl_loop_free(loop);
}

static void test_worker_count_is_derived_from_cores_and_memory(void) {
    sl_loop *loop;
    CHECK_INT(sl_loop_new(&loop), 0);
    sl_workers_opts o = base_opts();
    o.count = 0;
    o.memory_budget = 100 * MIB; /* room for one 64 MiB worker */
    sl_workers *w;
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), 0);
    CHECK_INT(sl_workers_size(w), 1);
    CHECK_INT(sl_workers_alive(w), 1);
    sl_workers_free(w);
    o.memory_budget = 1ull << 40; /* then cores decide */
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), 0);
    CHECK_INT(sl_workers_alive(w), (int)sysconf(_SC_NPROCESSORS_ONLN));
    sl_workers_free(w);
    o.memory_budget = 256 * MIB;
    o.memory_limit = 4096 * MIB; /* a ceiling against runaways, not what a worker takes */
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), 0);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK_INT(sl_workers_size(w), cores < 4 ? cores : 4);
    sl_workers_free(w);
    o.count = 3; /* said outright: no deriving */
    CHECK_INT(sl_workers_new(ctx, loop, &o, &w), 0);
    CHECK_INT(sl_workers_size(w), 3);
    CHECK_INT(sl_workers_alive(w), 3);
    sl_workers_free(w);
    check_no_children();
    sl_loop_free(loop);
}

int main(void) {
    const char *t = getenv("SLUICE_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s", t && *t ? t : "/tmp");
    ctx = sl_ctx_new();
    sl_ctx_set_global(ctx);
    sl_ctx_set_log_level(ctx, SL_LOG_ERROR);
    if (sl_registry_new(ctx, &reg)) return 1;
    test_bad_documents_fail_alone();
    test_page_and_chunk_state_round_trip();
    test_seccomp_denies_network_and_writes();
    test_workers_are_recycled();
    test_idle_worker_death_costs_no_document();
    test_init_failures_are_fatal();
    test_secrets_reach_the_worker_but_never_its_messages();
    test_the_worker_parses_the_bytes_sluice_read();
    test_workers_that_cannot_start_fail_the_work();
    test_start_time_is_when_a_worker_took_it();
    test_worker_count_is_derived_from_cores_and_memory();
    sl_registry_free(reg);
    sl_ctx_free(ctx);
    return check_done();
}
