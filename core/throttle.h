/* throttle.h - the policies the core applies to every io stage, whatever
 * the plugin: in-flight limit, token buckets for requests and tokens per
 * minute, and a circuit breaker. A stage holds a chain of providers (its
 * own instance, then its `fallback` sections) and each call goes to the
 * first one that can take it now; when none can, the call waits for the
 * earliest moment one might (sl_throttle_wait_ms).
 *
 * Buckets refill continuously at rpm/60 000 per millisecond and hold at
 * most 5 seconds' worth (at least one request), so a run starts at once
 * and settles at the allowed rate without bursting past a provider's
 * per-minute window. Token estimates are corrected by the usage the
 * provider reports. The breaker opens after `breaker_failures` consecutive
 * retryable failures, stays open for the cooldown, then lets one probe
 * through (half-open): success closes it, failure opens it again.
 */
#ifndef SL_THROTTLE_H
#define SL_THROTTLE_H

#include <stdint.h>

#include "instance.h"
#include "report.h"

typedef struct sl_throttle {
    sl_instance *inst;
    int limit; /* calls in flight at most; 0: no limit */
    int inflight;
    double req, req_cap, req_rate; /* request bucket: tokens, capacity, refill per ms */
    double tok, tok_cap, tok_rate; /* token bucket */
    uint64_t last_ms;
    int failures;        /* consecutive retryable failures */
    uint64_t open_until; /* breaker open until this time (ms); 0: closed */
    uint64_t hold_until; /* a 429 asked every call to wait until then (ms) */
    int probing;         /* half-open: one call is out */
    sl_provider_stats *stats;
    int failed_probes;    /* half-open probes that failed in a row (the provider stays away) */
    char last_error[256]; /* the last retryable failure's message, for the reasons of those it blocks */
} sl_throttle;

#define SL_THROTTLE_NEVER UINT64_MAX /* waits for a call to complete, not for time */

void sl_throttle_init(sl_throttle *p, sl_instance *inst, int limit, uint64_t now_ms);
/* 0 when p can take a call estimated at `tokens` now; otherwise how many
 * milliseconds until it might, or SL_THROTTLE_NEVER when only a completing
 * call can free it. */
uint64_t sl_throttle_wait_ms(sl_throttle *p, uint64_t now_ms, uint64_t tokens);
/* Records a call going out (after wait_ms said 0). */
void sl_throttle_take(sl_throttle *p, uint64_t now_ms, uint64_t tokens);
/* Records a call's end: rc as the plugin returned it; the estimate and the
 * tokens actually used correct the token bucket. Returns 1 when this call
 * opened the breaker. */
/* throttled: the provider answered 429, pacing us: every call waits
 * retry_after_ms (1 s when it gave none, at most a minute) and the breaker
 * does not count it as a failure. */
int sl_throttle_done(sl_throttle *p, uint64_t now_ms, int rc, uint64_t estimate, uint64_t used, int throttled,
                     int64_t retry_after_ms);
/* The breaker's state now: SL_BREAKER_CLOSED, _HALF_OPEN (cooldown over,
 * the next call is a probe) or _OPEN (report.h). */
int sl_throttle_breaker(const sl_throttle *p, uint64_t now_ms);

#endif
