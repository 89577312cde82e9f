/* loop.c - the loop thread and the one thread-safe hand-off into it (see loop.h).
 *
 * Posts go on a mutex-protected list; uv_async_send coalesces wake-ups, so
 * the async callback drains the whole list each time it runs. */
#include "loop.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "sluice/io.h"

struct sl_loop {
    uv_loop_t uv;
    uv_async_t async;
    pthread_mutex_t lock;
    sl_post *head, *tail;
    int async_open;
    pthread_t owner; /* the thread that runs it */
    void *services[SL_LOOP_SERVICES];
    void (*service_free[SL_LOOP_SERVICES])(void *);
};

uint64_t sl_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t sl_now_ms(void) { return sl_now_ns() / 1000000u; }

static void drain(uv_async_t *a) {
    sl_loop *loop = a->data;
    pthread_mutex_lock(&loop->lock);
    sl_post *p = loop->head;
    loop->head = loop->tail = NULL;
    pthread_mutex_unlock(&loop->lock);
    while (p) {
        sl_post *next = p->next; /* fn may free or reuse p */
        p->fn(p);
        p = next;
    }
}

int sl_loop_new(sl_loop **out) {
    sl_loop *loop = calloc(1, sizeof *loop);
    if (!loop) return -1;
    int rc = uv_loop_init(&loop->uv);
    if (rc) {
        free(loop);
        return rc;
    }
    pthread_mutex_init(&loop->lock, NULL);
    uv_async_init(&loop->uv, &loop->async, drain);
    loop->async.data = loop;
    /* The hand-off alone does not keep the loop alive: what waits for
     * results (a run's signal handles, an io plugin's sockets) does. */
    uv_unref((uv_handle_t *)&loop->async);
    loop->async_open = 1;
    loop->owner = pthread_self();
    *out = loop;
    return 0;
}

uv_loop_t *sl_loop_uv(sl_loop *loop) { return &loop->uv; }

void sl_loop_post(sl_loop *loop, sl_post *post) {
    post->next = NULL;
    pthread_mutex_lock(&loop->lock);
    if (loop->tail)
        loop->tail->next = post;
    else
        loop->head = post;
    loop->tail = post;
    pthread_mutex_unlock(&loop->lock);
    uv_async_send(&loop->async);
}

int sl_loop_run(sl_loop *loop) {
    loop->owner = pthread_self();
    return uv_run(&loop->uv, UV_RUN_DEFAULT);
}

int sl_loop_is_current(const sl_loop *loop) { return pthread_equal(loop->owner, pthread_self()); }

void sl_loop_hold(sl_loop *loop, int on) {
    if (!loop->async_open) return;
    if (on)
        uv_ref((uv_handle_t *)&loop->async);
    else
        uv_unref((uv_handle_t *)&loop->async);
}

void sl_loop_drain(sl_loop *loop) { drain(&loop->async); }

static void stop(sl_loop *loop) {
    if (loop->async_open) {
        loop->async_open = 0;
        drain(&loop->async); /* nothing posted may be lost */
        uv_close((uv_handle_t *)&loop->async, NULL);
    }
}

static void close_any(uv_handle_t *h, void *arg) {
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

void sl_loop_set_service(sl_loop *loop, int id, void *svc, void (*free_fn)(void *)) {
    loop->services[id] = svc;
    loop->service_free[id] = free_fn;
}

void *sl_loop_service(sl_loop *loop, int id) { return loop->services[id]; }

void sl_meter_add(sl_loop *loop, long long delta) {
    sl_meter *m = loop ? loop->services[SL_LOOP_METER] : NULL;
    if (!m || !delta) return;
    atomic_fetch_add(&m->bytes, delta);
    if (delta > 0 && m->grew && sl_loop_is_current(loop)) m->grew(m->arg);
}

void sl_loop_free(sl_loop *loop) {
    if (!loop) return;
    /* services first: they close their own handles and may need the loop */
    for (int i = 0; i < SL_LOOP_SERVICES; i++)
        if (loop->services[i] && loop->service_free[i]) loop->service_free[i](loop->services[i]);
    stop(loop);
    uv_walk(&loop->uv, close_any, NULL);
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    uv_loop_close(&loop->uv);
    pthread_mutex_destroy(&loop->lock);
    free(loop);
}
