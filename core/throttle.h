/* throttle.h - the policies the core applies to every io stage, whatever
 * the plugin: in-flight limit, windows for requests and tokens per
 * minute, and a circuit breaker. A stage holds a chain of providers (its
 * own instance, then its `fallback` sections) and each call goes to the
 * first one that can take it now; when none can, the call waits for the
 * earliest moment one might (sl_throttle_wait_ms).
 *
 * rpm and tpm are kept as windows, not buckets: whatever went out in the
 * last minute counts against the limit, so no 60 s window ever holds more
 * than the provider allows, and a run may start with all of it at once
 * (as a provider's own bucket or window allows). A bucket with a head
 * start sent 65 s' worth in the first minute and drew 429s from providers
 * that count per minute (issue 17). Each send counts from its 250 ms slot
 * for 60.25 to 60.5 s: the quarter second is margin for the provider's
 * clock and for delivery. Token estimates are corrected by the usage the
 * provider reports; the resends libcurl makes on its own (a kept-alive
 * connection found dead) count as requests too. The breaker opens after
 * `breaker_failures` consecutive retryable failures, stays open for the
 * cooldown, then lets one probe through (half-open): success closes it,
 * failure opens it again. A 429 is the provider pacing us: it holds every
 * call for its Retry-After and is not a failure to the breaker.
 */
#ifndef SL_THROTTLE_H
#define SL_THROTTLE_H

#include <stdint.h>

#include "instance.h"
#include "report.h"

#define SL_WINDOW_SLOT_MS 250
#define SL_WINDOW_SLOTS 242 /* 60 s and one slot of margin */

/* What went out in the last minute, per slot of SL_WINDOW_SLOT_MS. */
typedef struct sl_window {
    double limit; /* per minute; 0: none */
    double sum;   /* what the slots hold */
    int64_t slot; /* the current slot: now / SL_WINDOW_SLOT_MS */
    double used[SL_WINDOW_SLOTS];
} sl_window;

typedef struct sl_throttle {
    sl_instance *inst;
    int limit; /* calls in flight at most; 0: no limit */
    int inflight;
    sl_window reqs, toks;        /* rpm and tpm */
    uint64_t resends_seen;       /* inst->resends already counted */
    uint64_t connects0, http2_0; /* inst->connects and http2_answers when the run began */
    int failures;                /* consecutive retryable failures */
    uint64_t open_until;         /* breaker open until this time (ms); 0: closed */
    uint64_t hold_until;         /* a 429 asked every call to wait until then (ms) */
    int probing;                 /* half-open: one call is out */
    sl_provider_stats *stats;
    /* the latest failed call's message: what a unit that never got a call
     * out (its breaker opened first) says it gave up on */
    char last_err[256];
    /* Set when the provider's answers cannot be used at all (vectors of
     * another dimension): the chain passes it by for the rest of the run. */
    char unusable[512];
    int failed_probes; /* half-open probes that failed in a row (the provider stays away) */
    /* shared_limits: rpm and tpm also drawn from the sink's bucket (shared_limits.h); NULL: local only */
    struct sl_shared *shared_reqs, *shared_toks;
} sl_throttle;

#define SL_THROTTLE_NEVER UINT64_MAX /* waits for a call to complete, not for time */

void sl_throttle_init(sl_throttle *p, sl_instance *inst, int limit, uint64_t now_ms);

/* An empty window of `limit` per minute (0: no limit) at now_ms. */
void sl_window_init(sl_window *w, double limit, uint64_t now_ms);
/* A window: 0 when `need` more fits the last minute now (a need above the
 * limit fits an empty window), else the milliseconds until it does. */
uint64_t sl_window_wait_ms(sl_window *w, uint64_t now_ms, double need);
/* Adds what went out now (a negative amount takes back from the newest). */
void sl_window_add(sl_window *w, uint64_t now_ms, double amount);
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
/* Copies into the stats the connections opened and the answers over HTTP/2
 * since the throttle began (http.c counts them on the instance). */
void sl_throttle_transport(sl_throttle *p);

#endif
