/* throttle.c - rate limits, concurrency and circuit breaker per stage instance (see throttle.h). */
#include "throttle.h"

#include <stdatomic.h>
#include <string.h>

#include "shared_limits.h"
#include "sluice/call.h"

/* --- the minute window --- */

void sl_window_init(sl_window *w, double limit, uint64_t now) {
    memset(w, 0, sizeof *w);
    w->limit = limit;
    w->slot = (int64_t)(now / SL_WINDOW_SLOT_MS);
}

/* Moves to now's slot: the slots that left the window are emptied. */
static void window_advance(sl_window *w, uint64_t now) {
    int64_t s = (int64_t)(now / SL_WINDOW_SLOT_MS);
    if (s <= w->slot) return;
    if (s - w->slot >= SL_WINDOW_SLOTS) {
        memset(w->used, 0, sizeof w->used);
        w->sum = 0;
    } else {
        for (int64_t k = w->slot + 1; k <= s; k++) {
            double *u = &w->used[k % SL_WINDOW_SLOTS];
            w->sum -= *u;
            *u = 0;
        }
        if (w->sum < 0) w->sum = 0; /* rounding */
    }
    w->slot = s;
}

uint64_t sl_window_wait_ms(sl_window *w, uint64_t now, double need) {
    if (w->limit <= 0) return 0;
    window_advance(w, now);
    if (need > w->limit) need = w->limit;
    const double eps = 1e-9;
    if (w->sum + need <= w->limit + eps) return 0;
    /* the oldest slots leave first: slot k leaves when slot k + SLOTS begins */
    double left = w->sum;
    for (int64_t k = w->slot - SL_WINDOW_SLOTS + 1; k <= w->slot; k++) {
        left -= w->used[((k % SL_WINDOW_SLOTS) + SL_WINDOW_SLOTS) % SL_WINDOW_SLOTS];
        if (left + need <= w->limit + eps) {
            uint64_t at = (uint64_t)(k + SL_WINDOW_SLOTS) * SL_WINDOW_SLOT_MS;
            return at > now ? at - now : 1;
        }
    }
    return (uint64_t)SL_WINDOW_SLOTS * SL_WINDOW_SLOT_MS; /* not reached: an empty window fits */
}

void sl_window_add(sl_window *w, uint64_t now, double amount) {
    if (w->limit <= 0) return;
    window_advance(w, now);
    if (amount >= 0) {
        w->used[w->slot % SL_WINDOW_SLOTS] += amount;
        w->sum += amount;
        return;
    }
    double back = -amount;
    for (int64_t k = w->slot; k > w->slot - SL_WINDOW_SLOTS && back > 0; k--) {
        double *u = &w->used[((k % SL_WINDOW_SLOTS) + SL_WINDOW_SLOTS) % SL_WINDOW_SLOTS];
        double x = *u < back ? *u : back;
        *u -= x;
        w->sum -= x;
        back -= x;
    }
    if (w->sum < 0) w->sum = 0;
}

/* --- the throttle --- */

/* The resends libcurl made for this instance since the last look (http.c
 * counts them): requests the provider saw, in the report and the window. */
static void count_resends(sl_throttle *p, uint64_t now) {
    if (!p->inst) return;
    uint64_t n = atomic_load_explicit(&p->inst->resends, memory_order_relaxed);
    if (n == p->resends_seen) return;
    uint64_t d = n - p->resends_seen;
    p->resends_seen = n;
    sl_window_add(&p->reqs, now, (double)d);
    if (p->shared_reqs) sl_shared_take(p->shared_reqs, (double)d);
    if (p->stats) {
        p->stats->requests += d;
        p->stats->resends += d;
    }
}

void sl_throttle_init(sl_throttle *p, sl_instance *inst, int limit, uint64_t now) {
    p->inst = inst;
    p->limit = limit;
    int64_t rpm = inst ? inst->stage.rpm : 0, tpm = inst ? inst->stage.tpm : 0;
    sl_window_init(&p->reqs, rpm > 0 ? (double)rpm : 0, now);
    sl_window_init(&p->toks, tpm > 0 ? (double)tpm : 0, now);
    p->resends_seen = inst ? atomic_load_explicit(&inst->resends, memory_order_relaxed) : 0;
    p->connects0 = inst ? atomic_load_explicit(&inst->connects, memory_order_relaxed) : 0;
    p->http2_0 = inst ? atomic_load_explicit(&inst->http2_answers, memory_order_relaxed) : 0;
}

void sl_throttle_transport(sl_throttle *p) {
    if (!p->inst || !p->stats) return;
    p->stats->connections = atomic_load_explicit(&p->inst->connects, memory_order_relaxed) - p->connects0;
    p->stats->http2 = atomic_load_explicit(&p->inst->http2_answers, memory_order_relaxed) - p->http2_0;
}

uint64_t sl_throttle_wait_ms(sl_throttle *p, uint64_t now, uint64_t tokens) {
    count_resends(p, now);
    if (p->unusable[0]) return SL_THROTTLE_NEVER;
    if (now < p->hold_until) return p->hold_until - now;
    if (p->open_until) {
        if (now < p->open_until) return p->open_until - now;
        if (p->probing) return SL_THROTTLE_NEVER; /* half-open: one probe at a time */
    }
    if (p->limit > 0 && p->inflight >= p->limit) return SL_THROTTLE_NEVER;
    uint64_t a = sl_window_wait_ms(&p->reqs, now, 1.0);
    uint64_t b = sl_window_wait_ms(&p->toks, now, (double)tokens);
    /* the shared bucket is asked only when the local limits let the call go */
    if (!a && !b && p->shared_reqs) a = sl_shared_wait_ms(p->shared_reqs, now, 1.0, &p->reqs);
    if (!a && !b && p->shared_toks) b = sl_shared_wait_ms(p->shared_toks, now, (double)tokens, &p->toks);
    return a > b ? a : b;
}

void sl_throttle_take(sl_throttle *p, uint64_t now, uint64_t tokens) {
    count_resends(p, now);
    p->inflight++;
    sl_window_add(&p->reqs, now, 1.0);
    sl_window_add(&p->toks, now, (double)tokens > p->toks.limit ? p->toks.limit : (double)tokens);
    if (p->shared_reqs) sl_shared_take(p->shared_reqs, 1.0);
    if (p->shared_toks) sl_shared_take(p->shared_toks, (double)tokens);
    if (p->open_until && now >= p->open_until) p->probing = 1;
    if (p->stats) p->stats->requests++;
}

int sl_throttle_done(sl_throttle *p, uint64_t now, int rc, uint64_t estimate, uint64_t used, int throttled,
                     int64_t retry_after_ms) {
    SL_INVARIANT(p->inflight > 0);
    p->inflight--;
    count_resends(p, now);
    if (p->toks.limit > 0 && used > 0) {
        /* the window was charged the estimate: settle the difference */
        double charged = (double)estimate > p->toks.limit ? p->toks.limit : (double)estimate;
        sl_window_add(&p->toks, now, (double)used - charged);
    }
    /* the shared bucket was charged the whole estimate */
    if (p->shared_toks && used > 0) sl_shared_settle(p->shared_toks, (double)used - (double)estimate);
    int was_probe = p->probing;
    p->probing = 0;
    if (rc == SL_ERETRY && throttled) {
        /* the provider pacing us: everyone waits, nobody is blamed */
        int64_t ms = retry_after_ms >= 0 ? retry_after_ms : 1000;
        if (ms > 60000) ms = 60000;
        if (now + (uint64_t)ms > p->hold_until) p->hold_until = now + (uint64_t)ms;
        return 0;
    }
    /* Only the provider's own trouble counts: a bad document is not a sign
     * that the provider is down. */
    if (rc == SL_ERETRY || rc == SL_EFATAL) {
        p->failures++;
        /* The breaker is for io providers, a remote service being down; a
         * local plugin's failures (and the reader's) are only retried. */
        int64_t limit = p->inst && p->inst->desc->bottleneck == SL_IO ? p->inst->stage.breaker_failures : 0;
        if (was_probe) p->failed_probes++;
        if (limit > 0 && (was_probe || p->failures >= limit)) {
            int newly = p->open_until == 0 || was_probe;
            p->open_until = now + (uint64_t)(p->inst ? p->inst->stage.breaker_cooldown_ms : 30000);
            if (newly && p->stats) p->stats->breaker_opens++;
            return newly;
        }
    } else if (rc >= 0) {
        p->failures = 0;
        p->failed_probes = 0;
        p->open_until = 0;
    }
    return 0;
}

int sl_throttle_breaker(const sl_throttle *p, uint64_t now) {
    if (!p->open_until) return SL_BREAKER_CLOSED;
    return now < p->open_until && !p->probing ? SL_BREAKER_OPEN : SL_BREAKER_HALF_OPEN;
}
