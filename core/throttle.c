/* throttle.c - rate limits, concurrency and circuit breaker per stage instance (see throttle.h). */
#include "throttle.h"

#include "sluice/call.h"

static void refill(sl_throttle *p, uint64_t now) {
    if (now <= p->last_ms) return;
    double dt = (double)(now - p->last_ms);
    p->last_ms = now;
    if (p->req_rate > 0) {
        p->req += dt * p->req_rate;
        if (p->req > p->req_cap) p->req = p->req_cap;
    }
    if (p->tok_rate > 0) {
        p->tok += dt * p->tok_rate;
        if (p->tok > p->tok_cap) p->tok = p->tok_cap;
    }
}

void sl_throttle_init(sl_throttle *p, sl_instance *inst, int limit, uint64_t now) {
    p->inst = inst;
    p->limit = limit;
    p->last_ms = now;
    int64_t rpm = inst ? inst->stage.rpm : 0, tpm = inst ? inst->stage.tpm : 0;
    if (rpm > 0) {
        p->req_rate = (double)rpm / 60000.0;
        p->req_cap = p->req_rate * 5000.0;
        if (p->req_cap < 1.0) p->req_cap = 1.0;
        p->req = p->req_cap;
    }
    if (tpm > 0) {
        p->tok_rate = (double)tpm / 60000.0;
        p->tok_cap = p->tok_rate * 5000.0;
        if (p->tok_cap < 1.0) p->tok_cap = 1.0;
        p->tok = p->tok_cap;
    }
}

/* Milliseconds until a bucket holds `need` (which may exceed its capacity:
 * then a full bucket is enough, or a large call could never go). */
static uint64_t bucket_wait(double have, double cap, double rate, double need) {
    if (rate <= 0) return 0;
    if (need > cap) need = cap;
    if (have >= need) return 0;
    double ms = (need - have) / rate;
    return (uint64_t)ms + 1;
}

uint64_t sl_throttle_wait_ms(sl_throttle *p, uint64_t now, uint64_t tokens) {
    refill(p, now);
    if (now < p->hold_until) return p->hold_until - now;
    if (p->open_until) {
        if (now < p->open_until) return p->open_until - now;
        if (p->probing) return SL_THROTTLE_NEVER; /* half-open: one probe at a time */
    }
    if (p->limit > 0 && p->inflight >= p->limit) return SL_THROTTLE_NEVER;
    uint64_t a = bucket_wait(p->req, p->req_cap, p->req_rate, 1.0);
    uint64_t b = bucket_wait(p->tok, p->tok_cap, p->tok_rate, (double)tokens);
    return a > b ? a : b;
}

void sl_throttle_take(sl_throttle *p, uint64_t now, uint64_t tokens) {
    refill(p, now);
    p->inflight++;
    if (p->req_rate > 0) p->req -= 1.0;
    if (p->tok_rate > 0) p->tok -= (double)tokens > p->tok_cap ? p->tok_cap : (double)tokens;
    if (p->open_until && now >= p->open_until) p->probing = 1;
    if (p->stats) p->stats->requests++;
}

int sl_throttle_done(sl_throttle *p, uint64_t now, int rc, uint64_t estimate, uint64_t used, int throttled,
                     int64_t retry_after_ms) {
    SL_INVARIANT(p->inflight > 0);
    p->inflight--;
    if (p->tok_rate > 0 && used > 0) {
        /* the bucket was charged the estimate: settle the difference */
        p->tok -= (double)used - (double)estimate;
        if (p->tok > p->tok_cap) p->tok = p->tok_cap;
    }
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
