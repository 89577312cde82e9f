/* io.c - the SDK's socket watches and timers for io plugins (sluice/io.h).
 *
 * Thin wrappers over libuv handles on the instance's loop: an sl_watch is a
 * uv_poll_t, an sl_timer a one-shot uv_timer_t. Both are heap-allocated and
 * freed only in their uv_close callback, so stopping one from inside its own
 * callback is safe. A watch stops polling at once when asked (uv_poll_stop
 * takes the descriptor out of epoll) so the plugin may close the descriptor
 * right after sl_watch_stop returns; the uv_close that follows only finishes
 * the handle. Both handles stay referenced: a plugin waiting on a socket or a
 * timer is work in progress and keeps the loop running.
 */
#include <stdlib.h>

#include "guard.h"
#include "instance.h"
#include "loop.h"
#include "sluice/io.h"

struct sl_watch {
    uv_poll_t poll;
    const sl_instance *inst;
    sl_watch_cb cb;
    void *arg;
    int stopped; /* sl_watch_stop ran: a pending event must not call back */
};

struct sl_timer {
    uv_timer_t timer;
    const sl_instance *inst;
    void (*cb)(void *arg);
    void *arg;
};

static void free_handle(uv_handle_t *h) { free(h->data); }

static int uv_events(int events) {
    return (events & SL_READABLE ? UV_READABLE : 0) | (events & SL_WRITABLE ? UV_WRITABLE : 0);
}

static void watch_cb(uv_poll_t *poll, int status, int uvev) {
    sl_watch *w = poll->data;
    if (w->stopped) return;
    /* libuv reports a socket error (POLLERR) as a negative errno and has
     * already stopped the handle; plugins see the SDK's one convention. */
    sl_guard_call gc; /* a crash in the plugin's callback names it (guard.h) */
    sl_guard_enter_callback(&gc, w->inst, "a socket callback");
    if (status < 0) {
        w->cb(w, SL_ERETRY, 0, w->arg);
    } else {
        int events = (uvev & UV_READABLE ? SL_READABLE : 0) | (uvev & UV_WRITABLE ? SL_WRITABLE : 0);
        w->cb(w, 0, events, w->arg);
    }
    sl_guard_leave(&gc);
}

int sl_watch_start(sl_instance *inst, int fd, int events, sl_watch_cb cb, void *arg, sl_watch **out) {
    if (out) *out = NULL;
    if (!inst || !inst->loop || fd < 0 || !cb || !out || (events & ~(SL_READABLE | SL_WRITABLE)))
        return SL_EINVAL;
    sl_watch *w = calloc(1, sizeof *w);
    if (!w) return SL_ENOMEM;
    /* fails with UV_EEXIST when the descriptor is already watched */
    int rc = uv_poll_init_socket(sl_loop_uv(inst->loop), &w->poll, fd);
    if (rc) {
        free(w);
        return rc == UV_ENOMEM ? SL_ENOMEM : SL_EINVAL;
    }
    w->poll.data = w;
    w->inst = inst;
    w->cb = cb;
    w->arg = arg;
    if (events && uv_poll_start(&w->poll, uv_events(events), watch_cb) != 0) {
        uv_close((uv_handle_t *)&w->poll, free_handle);
        return SL_EINVAL;
    }
    *out = w;
    return 0;
}

int sl_watch_update(sl_watch *w, int events) {
    if (!w || w->stopped || (events & ~(SL_READABLE | SL_WRITABLE))) return SL_EINVAL;
    if (!events) return uv_poll_stop(&w->poll) ? SL_EINVAL : 0;
    return uv_poll_start(&w->poll, uv_events(events), watch_cb) ? SL_EINVAL : 0;
}

void sl_watch_stop(sl_watch *w) {
    if (!w || w->stopped) return;
    w->stopped = 1;
    uv_poll_stop(&w->poll); /* now, so the caller may close the descriptor */
    uv_close((uv_handle_t *)&w->poll, free_handle);
}

static void timer_cb(uv_timer_t *t) {
    sl_timer *tm = t->data;
    /* closed before the callback, which may then start new timers or call
     * sl_timer_stop on this one harmlessly; freed after it returns */
    uv_close((uv_handle_t *)&tm->timer, free_handle);
    sl_guard_call gc;
    sl_guard_enter_callback(&gc, tm->inst, "a timer callback");
    tm->cb(tm->arg);
    sl_guard_leave(&gc);
}

int sl_timer_start(sl_instance *inst, uint64_t ms, void (*cb)(void *arg), void *arg, sl_timer **out) {
    if (out) *out = NULL;
    if (!inst || !inst->loop || !cb) return SL_EINVAL;
    sl_timer *tm = calloc(1, sizeof *tm);
    if (!tm) return SL_ENOMEM;
    uv_timer_init(sl_loop_uv(inst->loop), &tm->timer); /* cannot fail */
    tm->timer.data = tm;
    tm->inst = inst;
    tm->cb = cb;
    tm->arg = arg;
    uv_timer_start(&tm->timer, timer_cb, ms, 0);
    if (out) *out = tm;
    return 0;
}

void sl_timer_stop(sl_timer *tm) {
    if (!tm || uv_is_closing((uv_handle_t *)&tm->timer)) return;
    uv_timer_stop(&tm->timer);
    uv_close((uv_handle_t *)&tm->timer, free_handle);
}
