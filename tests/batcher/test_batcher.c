/* test_batcher.c - the gpu executor (core/batcher.c) with the test-gpu
 * plugin, loaded through the core's loader: full batches never exceed
 * max_batch, a partial batch goes out once its oldest unit has waited
 * max_delay, grouping by shape never mixes image sizes (and without it they
 * do mix), out of memory splits a batch in half and the largest size that
 * worked becomes the ceiling, a single unit that runs out of memory fails
 * alone, other failures fail the whole batch, the plugin's per-thread state
 * lives on the dispatcher thread, completions arrive on the loop thread,
 * and freeing runs what is still queued. Behaviour only, never timings (the
 * one clock check is a lower bound the batcher guarantees).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "../plugin_test.h"
#include "batcher.h"
#include "ctx.h"
#include "document.h"
#include "instance.h"
#include "registry.h"
#include "loop.h"
#include "plugins/test_gpu.h"

static sl_ctx *ctx;
static sl_registry *reg;
static const sl_loaded *plugin;
static pthread_t main_thread;

/* --- plumbing --- */

static sl_instance *instance_new(const char *const *overrides, size_t n) {
    sl_instance *inst = NULL;
    int rc = sl_instance_new_defaults(ctx, plugin, "gpu", overrides, n, &inst);
    if (rc == 0) rc = sl_instance_init(ctx, inst);
    CHECK_INT(rc, 0);
    if (rc) { /* nothing below can run without it */
        fprintf(stderr, "instance: %s\n", sl_ctx_errmsg(ctx));
        exit(check_done());
    }
    return inst;
}

static test_gpu_state *state_of(sl_instance *inst) { return inst->state; }

/* A document of `pages` pages, each with a white gray image of w x h (c channels). */
static sl_doc *doc_new(const char *uri, uint32_t pages, uint32_t w, uint32_t h, uint32_t c) {
    sl_doc *d = sl_doc_new(uri, NULL);
    sl_doc_set_page_count(d, pages);
    unsigned char *px = malloc((size_t)w * h * c);
    memset(px, 255, (size_t)w * h * c);
    for (uint32_t p = 1; p <= pages; p++) sl_doc_set_page_image(d, p, w, h, c, (size_t)w * c, px, 72);
    free(px);
    return d;
}

/* One submitted unit and what came back for it. */
typedef struct result {
    sl_doc *doc;
    uint32_t page;
    int calls; /* times done ran: must be 1 */
    int rc;
    char msg[256];
    int off_loop; /* done ran on a thread other than the loop's */
    uint64_t t_submit, t_done;
} result;

#define MAX_UNITS 64
static result results[MAX_UNITS];
static int nresults, ndone, expected;
static uv_timer_t keeper; /* posts alone do not keep the loop running (loop.h) */

static void on_keep(uv_timer_t *t) {}

static void on_done(void *arg, int rc, const char *msg, const sl_batch_times *times) {
    result *r = arg;
    r->calls++;
    r->rc = rc;
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
    r->t_done = sl_now_ns();
    if (!pthread_equal(pthread_self(), main_thread)) r->off_loop = 1;
    if (++ndone == expected) uv_close((uv_handle_t *)&keeper, NULL);
}

static void reset(void) {
    memset(results, 0, sizeof results);
    nresults = ndone = expected = 0;
}

static void submit(sl_batcher *b, sl_doc *doc, uint32_t page) {
    result *r = &results[nresults++];
    r->doc = doc;
    r->page = page;
    r->t_submit = sl_now_ns();
    CHECK_INT(sl_batcher_submit(b, doc, page, on_done, r), 0);
}

/* Runs the loop until every submitted unit is done. */
static void wait_all(sl_loop *loop) {
    expected = nresults;
    if (ndone == expected) return;
    uv_timer_init(sl_loop_uv(loop), &keeper);
    uv_timer_start(&keeper, on_keep, 1000000, 1000000);
    sl_loop_run(loop);
    CHECK_INT(ndone, expected);
}

/* Regions labelled "seen" on page `page` of `doc`: how often the plugin ran on it. */
static int seen(const sl_doc *doc, uint32_t page) {
    int n = 0;
    for (size_t i = 0; i < sl_doc_region_count(doc); i++) {
        uint32_t p;
        const char *label;
        sl_doc_region(doc, i, &p, &label, NULL, NULL);
        if (p == page && strcmp(label, "seen") == 0) n++;
    }
    return n;
}

static void check_all_ok_once(void) {
    for (int i = 0; i < nresults; i++) {
        CHECK_INT(results[i].calls, 1);
        CHECK_INT(results[i].rc, 0);
        CHECK_INT(results[i].off_loop, 0);
        CHECK_INT(seen(results[i].doc, results[i].page), 1);
    }
}

static sl_batcher *batcher_new(sl_loop *loop, sl_instance *inst, uint32_t max_batch, uint64_t delay_ms,
                               bool group) {
    sl_batcher_opts o = {max_batch, delay_ms, group};
    sl_batcher *b = NULL;
    CHECK_INT(sl_batcher_new(loop, inst, &o, &b), 0);
    return b;
}

/* --- tests --- */

static void test_full_batches_never_exceed_max_batch(void) {
    reset();
    sl_loop *loop;
    sl_loop_new(&loop);
    sl_instance *inst = instance_new(NULL, 0);
    /* a delay no test waits for: only full batches can go */
    sl_batcher *b = batcher_new(loop, inst, 4, 600000, false);
    sl_doc *d[3];
    for (int i = 0; i < 3; i++) {
        char uri[32];
        snprintf(uri, sizeof uri, "doc%d", i);
        d[i] = doc_new(uri, 4, 40, 40, 1);
        for (uint32_t p = 1; p <= 4; p++) submit(b, d[i], p);
    }
    wait_all(loop);
    check_all_ok_once();
    test_gpu_state *s = state_of(inst);
    CHECK_INT(s->ncalls, 3);
    for (int i = 0; i < s->ncalls; i++) CHECK_INT(s->sizes[i], 4);
    sl_batcher_stats st;
    sl_batcher_stats_get(b, &st);
    CHECK_INT(st.batches, 3);
    CHECK_INT(st.units, 12);
    CHECK_INT(st.hist[2], 3); /* bucket 3-4 */
    CHECK_STR(sl_batcher_bucket_label(2), "3-4");
    CHECK_INT(st.splits, 0);
    CHECK_INT(st.ceiling, 4);
    CHECK(st.device_ns > 0);
    CHECK_INT(sl_batcher_queued(b), 0);
    sl_batcher_free(b);
    CHECK_INT(s->thread_finis, 1);
    sl_instance_free(inst);
    for (int i = 0; i < 3; i++) sl_doc_free(d[i]);
    sl_loop_free(loop);
}

static void test_partial_batch_goes_out_after_max_delay(void) {
    reset();
    sl_loop *loop;
    sl_loop_new(&loop);
    sl_instance *inst = instance_new(NULL, 0);
    const uint64_t delay_ms = 150;
    sl_batcher *b = batcher_new(loop, inst, 8, delay_ms, false);
    sl_doc *d = doc_new("partial", 3, 40, 40, 1);
    for (uint32_t p = 1; p <= 3; p++) submit(b, d, p);
    wait_all(loop); /* never reaches 8 units: only the delay can send it */
    check_all_ok_once();
    test_gpu_state *s = state_of(inst);
    CHECK(s->ncalls >= 1);
    for (int i = 0; i < s->ncalls; i++) CHECK(s->sizes[i] < 8);
    /* not before the oldest unit had waited max_delay */
    CHECK(results[0].t_done - results[0].t_submit >= delay_ms * 1000000u);
    sl_batcher_stats st;
    sl_batcher_stats_get(b, &st);
    CHECK(st.queue_wait_ns >= delay_ms * 1000000u);
    sl_batcher_free(b);
    sl_instance_free(inst);
    sl_doc_free(d);
    sl_loop_free(loop);
}

/* Pages of three shapes, interleaved: 100x100 gray, 200x50 gray, 100x100 RGB. */
static int shapes_run(bool group, int *mixed_batches) {
    reset();
    sl_loop *loop;
    sl_loop_new(&loop);
    sl_instance *inst = instance_new(NULL, 0);
    sl_batcher *b = batcher_new(loop, inst, 4, 100, group);
    sl_doc *d[3] = {doc_new("a", 8, 100, 100, 1), doc_new("b", 8, 200, 50, 1), doc_new("c", 8, 100, 100, 3)};
    for (uint32_t p = 1; p <= 8; p++)
        for (int i = 0; i < 3; i++) submit(b, d[i], p);
    wait_all(loop);
    check_all_ok_once();
    test_gpu_state *s = state_of(inst);
    int ncalls = s->ncalls;
    *mixed_batches = 0;
    for (int i = 0; i < s->ncalls; i++) {
        *mixed_batches += s->mixed[i];
        CHECK(s->sizes[i] <= 4);
    }
    sl_batcher_free(b);
    sl_instance_free(inst);
    for (int i = 0; i < 3; i++) sl_doc_free(d[i]);
    sl_loop_free(loop);
    return ncalls;
}

static void test_grouping_by_shape_never_mixes_sizes(void) {
    int mixed;
    int calls = shapes_run(true, &mixed);
    CHECK_INT(mixed, 0);
    CHECK(calls >= 6); /* 24 units, 4 at most per batch */
    /* the same units without grouping do share batches: the check above can fail */
    shapes_run(false, &mixed);
    CHECK(mixed > 0);
}

static void test_out_of_memory_splits_and_remembers_the_ceiling(void) {
    reset();
    sl_loop *loop;
    sl_loop_new(&loop);
    const char *o[] = {"oom_above=5"};
    sl_instance *inst = instance_new(o, 1);
    sl_batcher *b = batcher_new(loop, inst, 16, 600000, false);
    sl_doc *d1 = doc_new("first", 16, 40, 40, 1);
    for (uint32_t p = 1; p <= 16; p++) submit(b, d1, p);
    wait_all(loop);
    check_all_ok_once(); /* every page ran once, despite the retries */
    test_gpu_state *s = state_of(inst);
    /* 16 fails, its half (8) fails, 4 works and stays the ceiling */
    uint32_t want[] = {16, 8, 4, 4, 4, 4};
    CHECK_INT(s->ncalls, 6);
    for (int i = 0; i < s->ncalls && i < 6; i++) CHECK_INT(s->sizes[i], want[i]);
    CHECK_INT(s->rcs[0], SL_ENOMEM);
    CHECK_INT(s->rcs[1], SL_ENOMEM);
    sl_batcher_stats st;
    sl_batcher_stats_get(b, &st);
    CHECK_INT(st.splits, 2);
    CHECK_INT(st.ceiling, 4);
    CHECK_INT(st.units, 16);
    CHECK_INT(st.batches, 6);
    CHECK_INT(st.hist[4], 1); /* 9-16 */
    CHECK_INT(st.hist[3], 1); /* 5-8 */
    CHECK_INT(st.hist[2], 4); /* 3-4 */

    /* later units never go out above the ceiling again */
    int before = s->ncalls;
    reset();
    sl_doc *d2 = doc_new("second", 12, 40, 40, 1);
    for (uint32_t p = 1; p <= 12; p++) submit(b, d2, p);
    wait_all(loop);
    check_all_ok_once();
    CHECK_INT(s->ncalls - before, 3);
    for (int i = before; i < s->ncalls; i++) {
        CHECK_INT(s->sizes[i], 4);
        CHECK_INT(s->rcs[i], 0);
    }
    sl_batcher_stats_get(b, &st);
    CHECK_INT(st.splits, 2);
    sl_batcher_free(b);
    sl_instance_free(inst);
    sl_doc_free(d1);
    sl_doc_free(d2);
    sl_loop_free(loop);
}

static void test_a_unit_out_of_memory_alone_fails_alone_and_keeps_the_ceiling(void) {
    reset();
    sl_loop *loop;
    sl_loop_new(&loop);
    sl_instance *inst = instance_new(NULL, 0);
    sl_batcher *b = batcher_new(loop, inst, 4, 600000, false);
    sl_doc *ok = doc_new("ok", 3, 40, 40, 1), *big = doc_new("big", 1, 40, 40, 1);
    sl_doc_meta_set(big, "oom", "yes");
    submit(b, ok, 1);
    submit(b, big, 1);
    submit(b, ok, 2);
    submit(b, ok, 3);
    wait_all(loop);
    for (int i = 0; i < nresults; i++) {
        CHECK_INT(results[i].calls, 1);
        if (results[i].doc == big) {
            CHECK_INT(results[i].rc, SL_ENOMEM);
            CHECK_CONTAINS(results[i].msg, "out of device memory for a batch of 1");
            CHECK_INT(seen(big, 1), 0);
        } else {
            CHECK_INT(results[i].rc, 0);
            CHECK_INT(seen(ok, results[i].page), 1);
        }
    }
    test_gpu_state *s = state_of(inst);
    for (int i = 0; i < s->ncalls; i++) CHECK(s->sizes[i] <= 4);
    /* the page that fails alone explains the failed batches: the ceiling stays */
    sl_batcher_stats st;
    sl_batcher_stats_get(b, &st);
    CHECK_INT(st.ceiling, 4);
    int before = s->ncalls;
    reset();
    sl_doc *more = doc_new("more", 4, 40, 40, 1);
    for (uint32_t p = 1; p <= 4; p++) submit(b, more, p);
    wait_all(loop);
    check_all_ok_once();
    CHECK_INT(s->ncalls - before, 1);
    CHECK_INT(s->sizes[before], 4);
    sl_batcher_free(b);
    sl_instance_free(inst);
    sl_doc_free(ok);
    sl_doc_free(big);
    sl_doc_free(more);
    sl_loop_free(loop);
}

static void test_other_failures_fail_every_unit_of_the_batch(void) {
    reset();
    sl_loop *loop;
    sl_loop_new(&loop);
    sl_instance *inst = instance_new(NULL, 0);
    sl_batcher *b = batcher_new(loop, inst, 4, 600000, false);
    sl_doc *good = doc_new("good", 2, 40, 40, 1), *bad = doc_new("bad", 2, 40, 40, 1);
    sl_doc_meta_set(bad, "bad", "yes");
    submit(b, good, 1);
    submit(b, bad, 1);
    submit(b, good, 2);
    submit(b, bad, 2);
    wait_all(loop);
    for (int i = 0; i < nresults; i++) {
        CHECK_INT(results[i].calls, 1);
        CHECK_INT(results[i].rc, SL_EBADINPUT);
        CHECK_CONTAINS(results[i].msg, "a bad page in this batch");
    }
    test_gpu_state *s = state_of(inst);
    CHECK_INT(s->ncalls, 1); /* not split: only out of memory is */
    sl_batcher_stats st;
    sl_batcher_stats_get(b, &st);
    CHECK_INT(st.splits, 0);
    sl_batcher_free(b);
    sl_instance_free(inst);
    sl_doc_free(good);
    sl_doc_free(bad);
    sl_loop_free(loop);
}

static void test_thread_state_lives_on_the_dispatcher_thread(void) {
    reset();
    sl_loop *loop;
    sl_loop_new(&loop);
    const char *o[] = {"sleep_ms=2"};
    sl_instance *inst = instance_new(o, 1);
    sl_batcher *b = batcher_new(loop, inst, 2, 1, false);
    sl_doc *d = doc_new("threads", 7, 40, 40, 1);
    for (uint32_t p = 1; p <= 7; p++) submit(b, d, p);
    wait_all(loop);
    check_all_ok_once(); /* includes: every done ran on the loop thread */
    test_gpu_state *s = state_of(inst);
    CHECK_INT(s->thread_inits, 1);
    CHECK(!pthread_equal(s->init_thread, main_thread));
    CHECK_INT(s->wrong_thread, 0);
    CHECK_INT(s->wrong_thread_state, 0);
    CHECK_INT(s->thread_finis, 0);
    sl_batcher_free(b);
    CHECK_INT(s->thread_finis, 1);
    CHECK_INT(s->wrong_thread_state, 0);
    sl_instance_free(inst);
    sl_doc_free(d);
    sl_loop_free(loop);
}

static void test_free_runs_what_is_queued(void) {
    reset();
    sl_loop *loop;
    sl_loop_new(&loop);
    sl_instance *inst = instance_new(NULL, 0);
    sl_batcher *b = batcher_new(loop, inst, 8, 600000, false);
    sl_doc *d = doc_new("queued", 3, 40, 40, 1);
    for (uint32_t p = 1; p <= 3; p++) submit(b, d, p);
    expected = nresults;
    sl_batcher_free(b);  /* no full batch, delay far away: only free sends them */
    CHECK_INT(ndone, 0); /* done runs on the loop, not inside free */
    uv_timer_init(sl_loop_uv(loop), &keeper);
    sl_loop_drain(loop);
    CHECK_INT(ndone, 3);
    check_all_ok_once();
    sl_loop_run(loop); /* closes the keeper handle */
    sl_instance_free(inst);
    sl_doc_free(d);
    sl_loop_free(loop);
}

static void test_bad_arguments_are_refused(void) {
    sl_loop *loop;
    sl_loop_new(&loop);
    sl_instance *inst = instance_new(NULL, 0);
    sl_batcher_opts o = {0, 5, false};
    sl_batcher *b = (sl_batcher *)&o;
    CHECK_INT(sl_batcher_new(loop, inst, &o, &b), SL_EINVAL);
    CHECK(b == NULL);
    sl_batcher_opts_for(inst, &o);
    CHECK_INT(o.max_batch, 16);
    CHECK_INT(o.max_delay_ms, 20);
    sl_instance_free(inst);
    const char *bs[] = {"batch_size=3", "batch_delay=40ms"};
    inst = instance_new(bs, 2);
    sl_batcher_opts_for(inst, &o);
    CHECK_INT(o.max_batch, 3);
    CHECK_INT(o.max_delay_ms, 40);
    sl_instance_free(inst);
    sl_loop_free(loop);
}

int main(void) {
    main_thread = pthread_self();
    ctx = sl_ctx_new();
    const char *dir = getenv("SLUICE_TEST_PLUGINS");
    if (plugin_open(ctx, dir ? dir : TEST_PLUGIN_DIR, "test-gpu.so", &reg, &plugin)) return check_done();
    test_full_batches_never_exceed_max_batch();
    test_partial_batch_goes_out_after_max_delay();
    test_grouping_by_shape_never_mixes_sizes();
    test_out_of_memory_splits_and_remembers_the_ceiling();
    test_a_unit_out_of_memory_alone_fails_alone_and_keeps_the_ceiling();
    test_other_failures_fail_every_unit_of_the_batch();
    test_thread_state_lives_on_the_dispatcher_thread();
    test_free_runs_what_is_queued();
    test_bad_arguments_are_refused();
    sl_registry_free(reg);
    sl_ctx_free(ctx);
    return check_done();
}
