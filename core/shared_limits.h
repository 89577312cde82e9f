/* shared_limits.h - shared rate limits (issue 15): a provider's rpm and tpm are the
 * account's, not one process's. With `shared_limits = true` on an io stage,
 * its throttle (throttle.c) draws every request and every token from a
 * token bucket that the route's sink keeps (the sink's limit_grant, ABI
 * 1.5: sink-postgres keeps it in a table of its database), so any number of
 * sluice processes using the same account stay under its limit together.
 * The local minute window still applies on top (one process alone never
 * sends more than the limit either).
 *
 * The bucket. A limit L per minute becomes a bucket of `burst` B = 2 s of L
 * (at least 1) refilled at R = (L - B) / (60 + HOLD + MARGIN) per second,
 * where HOLD (2 s) is the longest a process keeps tokens it was granted and
 * MARGIN (1 s) allows for delivery and clocks. Tokens sent in any 60 s were
 * granted in the 60 + HOLD s before, when the bucket gave at most
 * B + R (60 + HOLD) < L: so no 60 s window holds more than L, whatever the
 * number of processes, and a saturated cluster gets about 92 % of L.
 *
 * Grants. A process asks the bucket only when what it holds cannot pay the
 * call at the head of its queue, and then for about one second of the
 * account's rate (R tokens, at least what the call needs, at most B): so
 * the bucket's row is updated about once a second per busy process, not
 * once per request. Whatever a grant leaves unspent for HOLD is dropped,
 * never given back (given back, it could be spent twice in one minute). An
 * empty bucket answers 0: the process asks again when R has refilled what
 * it lacks, with jitter, so processes do not ask in step.
 *
 * tpm. Tokens are known only after the answer: a call is charged its
 * estimate when it goes out, and the difference when the provider reports
 * its usage (a debt makes `have` negative: the next grants pay it before
 * anything else is sent; an overestimate is credited back).
 *
 * The store unreachable. A grant that fails (the database is down) puts
 * the process on a local share: it goes on at what it sent in the minute
 * before (its local window, at least one call a minute), since every
 * process's share of the last minute together fit under the limit; it
 * asks the bucket again with backoff (1 s doubling to 15 s, jittered) and
 * leaves the share at the first grant. A grant unanswered for 10 s (a
 * stalled server) counts as unreachable until it answers. A bucket that refuses for good (a
 * failure other than SL_ERETRY: a table of another shape, no right to make
 * it) makes the provider unusable for the run: its documents fail saying so.
 */
#ifndef SL_SHARED_LIMITS_H
#define SL_SHARED_LIMITS_H

#include <stdint.h>

#include "instance.h"
#include "throttle.h"

struct sl_runtime;

/* Validates every stage's shared_limits and limit_name against the routes
 * (sluice check and every command that opens a config): rpm or tpm set, a
 * name of the allowed characters, and each route that uses the stage
 * storing in one sink that has limit_grant. 0 or SL_EFATAL with the context
 * saying why. */
int sl_shared_limits_check(struct sl_runtime *rt);

/* The sink that keeps inst's shared bucket (validated: see above), or NULL. */
sl_instance *sl_shared_sink_for(const struct sl_runtime *rt, const sl_instance *inst);

typedef struct sl_shared sl_shared;

/* One shared limit of inst: `what` "rpm" or "tpm", `per_minute` its limit,
 * kept by `sink`, for the throttle `owner` (whose `unusable` it sets when
 * the bucket refuses for good: a failure other than SL_ERETRY, such as a
 * table of another shape). `wake(a, b)` is called on the loop thread when
 * a grant that was waited for arrives. NULL when out of memory. */
sl_shared *sl_shared_new(sl_instance *inst, sl_instance *sink, const char *what, double per_minute,
                         sl_throttle *owner, void (*wake)(void *a, void *b), void *a, void *b);
/* 0 when `need` can go now; otherwise the milliseconds until it might
 * (while a grant is on its way: until it times out; its answer calls wake
 * sooner). May start a grant. `sent` is the local window of what this
 * process sent (its share while the store cannot be reached). */
uint64_t sl_shared_wait_ms(sl_shared *s, uint64_t now_ms, double need, sl_window *sent);
/* Spends `amount` of what was granted (a call went out, or a resend). */
void sl_shared_take(sl_shared *s, double amount);
/* Corrects a charge: `delta` more (negative: less) was used than taken. */
void sl_shared_settle(sl_shared *s, double delta);
/* Frees s; a grant still on its way keeps its memory (parked in rt). */
void sl_shared_free(sl_shared *s, struct sl_runtime *rt);

#endif
