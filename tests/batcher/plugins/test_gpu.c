/* test_gpu.c - a gpu page plugin with no model, for the batcher's tests.
 *
 * Its `pages` callback records every batch (size, whether it mixed image
 * shapes, what it answered) and the thread it ran on, then for each page adds
 * one region labelled "seen", so a test can tell that every page ran exactly
 * once. It answers SL_ENOMEM for batches larger than `oom_above` and for any
 * batch holding a page of a document whose metadata has oom=yes (so a single
 * unit can run out of memory too), and SL_EBADINPUT for a batch holding a page
 * of a document with bad=yes. It sleeps `sleep_ms` per call like a model
 * that computes. */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/sluice.h>

#include "test_gpu.h"

static const sl_option options[] = {
    {"oom_above",
     SL_OPT_INT,
     "0",
     "batches larger than this run out of memory (0: never)",
     0,
     offsetof(test_gpu_conf, oom_above),
     NULL,
     {0}},
    {"sleep_ms",
     SL_OPT_INT,
     "0",
     "milliseconds each call takes",
     0,
     offsetof(test_gpu_conf, sleep_ms),
     NULL,
     {0}},
    {NULL, 0, NULL, NULL, 0, 0, NULL, {0}},
};

static int init(sl_instance *inst, const void *config, void **out) {
    test_gpu_state *s = calloc(1, sizeof *s);
    if (!s) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    s->c = *(const test_gpu_conf *)config;
    pthread_mutex_init(&s->lock, NULL);
    *out = s;
    return 0;
}

static void fini(void *state) {
    test_gpu_state *s = state;
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int tag; /* its address is the thread state: any non-NULL value the test can recognise */

static int thread_init(void *state, void **ts) {
    test_gpu_state *s = state;
    pthread_mutex_lock(&s->lock);
    s->thread_inits++;
    s->init_thread = pthread_self();
    pthread_mutex_unlock(&s->lock);
    *ts = &tag;
    return 0;
}

static void thread_fini(void *state, void *ts) {
    test_gpu_state *s = state;
    pthread_mutex_lock(&s->lock);
    s->thread_finis++;
    if (ts != &tag) s->wrong_thread_state++;
    pthread_mutex_unlock(&s->lock);
}

static int meta_yes(const sl_doc *doc, const char *key) {
    const char *v = sl_doc_meta_get(doc, key);
    return v && strcmp(v, "yes") == 0;
}

static int pages(sl_call *call, sl_doc *const *docs, const uint32_t *pgs, size_t n) {
    test_gpu_state *s = sl_call_state(call);
    int mixed = 0, oom = s->c.oom_above > 0 && n > (size_t)s->c.oom_above, bad = 0;
    uint32_t w0 = 0, h0 = 0, c0 = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t w = 0, h = 0, c = 0;
        sl_doc_page_image(docs[i], pgs[i], &w, &h, &c, NULL, NULL);
        if (i == 0) {
            w0 = w, h0 = h, c0 = c;
        } else if (w != w0 || h != h0 || c != c0) {
            mixed = 1;
        }
        oom |= meta_yes(docs[i], "oom");
        bad |= meta_yes(docs[i], "bad");
    }
    if (s->c.sleep_ms > 0) {
        struct timespec ts = {(time_t)(s->c.sleep_ms / 1000), (long)(s->c.sleep_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    int rc = 0;
    if (oom)
        rc = sl_fail(call, SL_ENOMEM, "test-gpu: out of device memory for a batch of %zu", n);
    else if (bad)
        rc = sl_fail(call, SL_EBADINPUT, "test-gpu: a bad page in this batch");
    pthread_mutex_lock(&s->lock);
    if (s->ncalls < TEST_GPU_MAX_CALLS) {
        s->sizes[s->ncalls] = (uint32_t)n;
        s->mixed[s->ncalls] = mixed;
        s->rcs[s->ncalls] = rc;
        s->ncalls++;
    }
    if (!pthread_equal(pthread_self(), s->init_thread)) s->wrong_thread++;
    if (sl_call_thread_state(call) != &tag) s->wrong_thread_state++;
    pthread_mutex_unlock(&s->lock);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++)
        if (sl_doc_add_region(docs[i], pgs[i], "seen", 1.0f, 0, 0, 1, 1) < 0)
            return sl_fail(call, SL_ENOMEM, "out of memory for a region");
    return 0;
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "test-gpu",
    .version = "1.0.0",
    .summary = "records the batches the gpu executor sends (tests only)",
    .role = SL_ROLE_PAGE,
    .bottleneck = SL_GPU,
    .options = options,
    .config_size = sizeof(test_gpu_conf),
    .init = init,
    .fini = fini,
    .thread_init = thread_init,
    .thread_fini = thread_fini,
    .pages = pages,
};

SL_PLUGIN_EXPORT(desc)
