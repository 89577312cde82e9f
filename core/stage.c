/* stage.c - stage queues: who runs a unit, when, and what a failure costs.
 *
 * A stage is one (instance, operation) pair. Its units wait in a FIFO until
 * a member of its chain (the instance, then its fallbacks, each with its
 * throttle: in-flight limit, rate windows, circuit breaker) can take one;
 * then the stage's executor runs it. The chain is an order of preference:
 * a fallback takes a unit only when the members before it are down or
 * have had no room for it for `fallback_after` (pick). A retryable failure
 * goes at once to a chain member that has not failed it yet, and when every
 * member has, it waits a backoff with full jitter (honouring Retry-After)
 * and starts over; a 429 always backs off to the same chain, and a member
 * whose answers cannot be used (vectors of another dimension) is passed by
 * for the rest of the run.
 * Every completion frees its throttle's slot and pumps each stage sharing
 * that throttle: a sink's lookup, store and prune share one. The liveness
 * argument is at the top of scheduler.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"

const char *stage_name(const stage *st) { return st->stats->name; }

unit *unit_new(stage *st, job *j) {
    unit *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->st = st;
    u->job = j;
    u->owned = 1;
    if (j) u->args.doc = j->doc;
    return u;
}

static void unit_free_parked(void *p) {
    unit *u = p;
    if (u->kind == SL_UNIT_TEXTS) {
        free(u->u.batch.refs);
        free(u->u.batch.out);
    } else if (u->kind == SL_UNIT_PROMPT) {
        free(u->u.sum.prompt);
        free(u->u.sum.answer.text);
    }
    free(u);
}

void unit_free(unit *u) {
    if (!u || !u->owned) return;
    u->kind = u->st->op->unit;
    if (u->kind == SL_UNIT_TEXTS) sl_meter_add(u->st->run->loop, -(long long)u->u.batch.out_bytes);
    /* past its deadline, the plugin may still answer into it (executor.c);
     * unit_free_parked then runs when the runtime is freed, after the
     * stages: it reads the kind kept above, never u->st */
    if (u->abandoned)
        sl_runtime_park(u->st->run->rt, u, unit_free_parked);
    else
        unit_free_parked(u);
}

/* Whether a chain member is down: its breaker open (or probing), or its
 * answers unusable. A member that is merely at its limits is not. */
static int member_down(const sl_throttle *t) { return t->open_until != 0 || t->unusable[0]; }

/* The member of the chain that takes u now; else NULL and *wait the
 * milliseconds until one might (SL_THROTTLE_NEVER: only a completion can
 * free one). Members that failed u are tried last. The chain is an order
 * of preference, not a pool: a fallback takes u only when every member
 * before it is down, or has had no room for u for the primary's
 * `fallback_after` (its rpm, tpm, concurrency or a 429's Retry-After);
 * until then u waits for the first (issue 17: with everyone healthy the
 * primary answered 4 of 90 and the fallback 86). */
static sl_throttle *pick(stage *st, unit *u, uint64_t *wait) {
    uint64_t now = sl_now_ns() / 1000000u;
    *wait = SL_THROTTLE_NEVER;
    const sl_instance *first = st->chain[0]->inst;
    uint64_t after =
        first && first->stage.fallback_after_ms > 0 ? (uint64_t)first->stage.fallback_after_ms : 0;
    uint64_t queued = u->t_ready / 1000000u, waited = now > queued ? now - queued : 0;
    int spill = waited >= after;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < st->nchain; i++) {
            int avoided = i < 32 && (u->avoid >> i) & 1u;
            if (avoided != pass) continue;
            sl_throttle *t = st->chain[i];
            uint64_t w = sl_throttle_wait_ms(t, now, u->estimate);
            if (w == 0) return t;
            if (w < *wait) *wait = w;
            if (st->nchain > 1 && !spill && !member_down(t)) {
                /* healthy and busy: the members after it wait their turn */
                if (after - waited < *wait) *wait = after - waited;
                break;
            }
        }
    }
    return NULL;
}

/* Whether every member of the chain has answered in a way that cannot be
 * used (vectors of another dimension): then nothing is sent again. */
static const char *chain_unusable(const stage *st) {
    for (size_t i = 0; i < st->nchain; i++)
        if (!st->chain[i]->unusable[0]) return NULL;
    return st->nchain ? st->chain[0]->unusable : NULL;
}

static void wake_fire(uv_timer_t *t) { stage_pump(t->data); }

/* Whether u's work is no longer wanted: every document it serves has
 * failed, or a fatal error is stopping the run. */
static int moot(const unit *u) {
    if (u->st->op->unit == SL_UNIT_RUN) return 0;
    if (u->st->run->stopping && u->st->run->rep->fatal) return 1;
    if (u->st->op->unit != SL_UNIT_TEXTS) return u->job && u->job->failed;
    for (size_t i = 0; i < u->u.batch.n; i++)
        if (!u->u.batch.refs[i].job->failed) return 0;
    return 1;
}

/* Ends a moot unit without calling the plugin. */
static void drop(unit *u) {
    stage *st = u->st;
    int fatal = st->run->stopping && st->run->rep->fatal;
    if (st->op->unit == SL_UNIT_TEXTS) u->u.batch.solo = 1; /* every document failed: no split */
    st->op->done(u, fatal ? SL_EFATAL : SL_EBADINPUT,
                 fatal ? "not processed: the run was stopped by a fatal error"
                       : "not processed: the document had already failed");
}

/* Takes the units whose documents have failed out of the queue and ends
 * them without calling the plugin, so a failed document never waits for a
 * provider (a breaker's cooldown, a rate limit) it no longer needs. */
static void sweep(stage *st) {
    unit *dropped = NULL, **link = &st->qhead;
    st->qtail = NULL;
    while (*link) {
        unit *u = *link;
        if (moot(u)) {
            *link = u->next;
            st->queued--;
            u->next = dropped;
            dropped = u;
        } else {
            st->qtail = u;
            link = &u->next;
        }
    }
    while (dropped) {
        unit *u = dropped;
        dropped = u->next;
        drop(u);
    }
}

/* How long until a member of the chain has a closed breaker: 0 when one
 * has now (or is half-open), else the shortest remaining cooldown. */
static uint64_t breaker_wait_ms(const stage *st, uint64_t now) {
    uint64_t w = UINT64_MAX;
    for (size_t i = 0; i < st->nchain; i++) {
        const sl_throttle *t = st->chain[i];
        if (!t->open_until || now >= t->open_until) return 0;
        if (t->open_until - now < w) w = t->open_until - now;
    }
    return w == UINT64_MAX ? 0 : w;
}

/* Whether every member of the chain has failed `retries` probes in a row
 * (at least one): the provider, or the database, is gone, not blinking. A
 * probe stands for every call waiting behind its breaker, so those calls
 * have had their retries; they fail now rather than at the budget's end
 * (a PostgreSQL that never came back held a run for the whole budget). */
static int chain_gone(const stage *st) {
    int need = st->run->rt->set.retries > 0 ? st->run->rt->set.retries : 1;
    for (size_t i = 0; i < st->nchain; i++)
        if (st->chain[i]->failed_probes < need) return 0;
    return st->nchain > 0;
}

/* Says why u gives up on a chain whose breakers are all open, or returns 0
 * while its wait still fits [sluice] retry_budget counted from when it
 * first queued and the breakers' probes have not failed `retries` times in
 * a row: no document waits out cooldown after cooldown. The reason ends
 * with the last failure the breaker saw (which server, what it said). */
static int unavailable(const unit *u, uint64_t now, char *why, size_t n, int with_last) {
    const stage *st = u->st;
    uint64_t bw = breaker_wait_ms(st, now);
    uint64_t budget = (uint64_t)st->run->rt->set.retry_budget_ms;
    uint64_t spent = u->t_first_ms && now > u->t_first_ms ? now - u->t_first_ms : 0;
    if (!bw) return 0;
    int gone = chain_gone(st);
    if (!gone && spent + bw <= budget) return 0;
    const sl_throttle *first = st->chain[0];
    const sl_instance *inst = first->inst;
    const char *name = inst ? inst->name : stage_name(st);
    size_t o;
    if (gone)
        o = (size_t)snprintf(why, n,
                             "provider %s unavailable: its circuit breaker's last %d probe%s failed%s, "
                             "after %d %s over %.1f s",
                             name, first->failed_probes, first->failed_probes == 1 ? "" : "s",
                             st->nchain > 1 ? " (and its fallbacks')" : "", u->attempts,
                             u->attempts == 1 ? "retry" : "retries", (double)spent / 1000.0);
    else
        o = (size_t)snprintf(
            why, n,
            "provider %s unavailable after %d %s over %.1f s (its circuit breaker stays open "
            "%llu ms more%s; [sluice] retry_budget = %lld ms)",
            name, u->attempts, u->attempts == 1 ? "retry" : "retries", (double)spent / 1000.0,
            (unsigned long long)bw, st->nchain > 1 ? ", and its fallbacks'" : "", (long long)budget);
    if (with_last && first->last_err[0] && o < n)
        snprintf(why + o, n - o, "; last failure: %s", first->last_err);
    return 1;
}

/* Fails the queued units no member of the chain can take any more. */
static void expire_unusable(stage *st, const char *why) {
    while (st->qhead) {
        unit *u = st->qhead;
        st->qhead = u->next;
        st->queued--;
        st->stats->failures++;
        if (st->op->unit == SL_UNIT_TEXTS) u->u.batch.solo = 1; /* every document fails the same way */
        st->op->done(u, SL_EBADINPUT, why);
    }
    st->qtail = NULL;
}

/* Fails the queued units that an open breaker would keep past their budget. */
static void expire_blocked(stage *st) {
    uint64_t now = sl_now_ns() / 1000000u;
    const char *none_left = chain_unusable(st);
    if (none_left) {
        char copy[sizeof st->chain[0]->unusable];
        snprintf(copy, sizeof copy, "%s", none_left);
        expire_unusable(st, copy);
        return;
    }
    if (!breaker_wait_ms(st, now)) return;
    unit *gone = NULL, **link = &st->qhead;
    st->qtail = NULL;
    while (*link) {
        unit *u = *link;
        char why[512];
        if (u->st->op->unit != SL_UNIT_RUN && unavailable(u, now, why, sizeof why, 1)) {
            *link = u->next;
            st->queued--;
            u->next = gone;
            gone = u;
        } else {
            st->qtail = u;
            link = &u->next;
        }
    }
    while (gone) {
        unit *u = gone;
        gone = u->next;
        /* each document keeps the error it gave up on: its own last one, or
         * (never sent: the breaker opened first) its provider's last one */
        char why[1024], base[512];
        unavailable(u, now, base, sizeof base, 0);
        const char *last = u->last_err;
        for (size_t i = 0; !*last && i < st->nchain; i++) last = st->chain[i]->last_err;
        if (*last)
            snprintf(why, sizeof why, "%s: %s%s", base,
                     u->last_err[0] ? "" : "the provider's last error: ", last);
        else
            snprintf(why, sizeof why, "%s", base);
        st->stats->failures++;
        if (st->op->unit == SL_UNIT_TEXTS) u->u.batch.solo = 1; /* no split: the provider is down */
        st->op->done(u, SL_EBADINPUT, why);
    }
}

static void start(unit *u, sl_throttle *thr) {
    stage *st = u->st;
    u->thr = thr;
    sl_throttle_take(thr, sl_now_ns() / 1000000u, u->estimate);
    st->inflight++;
    st->ex->ops->submit(st->ex, u);
}

void stage_pump(stage *st) {
    /* a unit that completes while it is being started pumps again: the loop
     * below sees what that freed, so the nested call has nothing to do */
    if (st->pumping) return;
    st->pumping = 1;
    if (st->swept != st->run->sweeps) {
        st->swept = st->run->sweeps;
        sweep(st);
    }
    while (st->qhead) {
        uint64_t wait;
        sl_throttle *thr = pick(st, st->qhead, &wait);
        if (!thr) {
            expire_blocked(st);
            if (!st->qhead) break;
            if (wait != SL_THROTTLE_NEVER && st->wake_open) {
                uv_timer_stop(&st->wake);
                uv_timer_start(&st->wake, wake_fire, wait, 0);
            }
            break;
        }
        unit *u = st->qhead;
        st->qhead = u->next;
        if (!st->qhead) st->qtail = NULL;
        st->queued--;
        start(u, thr);
    }
    st->pumping = 0;
}

void stage_dispatch(unit *u) {
    stage *st = u->st;
    /* a unit that comes back after its documents failed (a retry's backoff
     * ended, say) is not queued behind a breaker for nothing */
    if (moot(u)) {
        drop(u);
        return;
    }
    u->t_ready = sl_now_ns();
    if (!u->t_first_ms) u->t_first_ms = u->t_ready / 1000000u;
    u->next = NULL;
    if (st->qtail)
        st->qtail->next = u;
    else
        st->qhead = u;
    st->qtail = u;
    st->queued++;
    stage_pump(st);
}

/* A throttle freed a slot: every stage that calls it may go on. */
static void pump_sharing(run *r, const sl_throttle *thr) {
    for (size_t i = 0; i < r->nstages; i++) {
        stage *s = r->stages[i];
        for (size_t k = 0; k < s->nchain; k++)
            if (s->chain[k] == thr) {
                stage_pump(s);
                break;
            }
    }
}

void stage_pump_throttle(run *r, const sl_throttle *thr) { pump_sharing(r, thr); }

static uint64_t backoff_ms(const run *r, int attempt, int64_t retry_after) {
    /* full jitter: uniform in [0, min(max, base * 2^attempt)] */
    uint64_t cap = (uint64_t)r->rt->set.retry_base_ms << (attempt < 20 ? attempt : 20);
    if (cap > (uint64_t)r->rt->set.retry_max_ms) cap = (uint64_t)r->rt->set.retry_max_ms;
    uint64_t d = cap ? (uint64_t)random() % (cap + 1) : 0;
    if (retry_after >= 0 && (uint64_t)retry_after > d) d = (uint64_t)retry_after;
    return d;
}

static void retry_fire(uv_timer_t *t) {
    unit *u = t->data;
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
    stage_dispatch(u);
}

/* A retryable failure with attempts left: another chain member at once, or
 * the same ones after a backoff. 0 when u could not be requeued. */
static int retry(unit *u, size_t member, const char *msg, int64_t *over_ms) {
    stage *st = u->st;
    run *r = st->run;
    uint32_t avoid = u->avoid;
    /* a 429 is the provider pacing us, not failing: the unit backs off
     * (its Retry-After) and comes back to the same chain, where a fallback
     * takes it only as it takes any unit that waited long (pick) */
    if (member < 32 && !u->call.throttled) avoid |= 1u << member;
    int untried = 0;
    for (size_t i = 0; i < st->nchain && i < 32 && !u->call.throttled; i++) untried |= !((avoid >> i) & 1u);
    /* a backoff (a provider's Retry-After included) must fit the budget */
    uint64_t d = 0;
    if (!untried && unavailable(u, sl_now_ns() / 1000000u, u->gave_up, sizeof u->gave_up, 0)) return 0;
    if (!untried) {
        d = backoff_ms(r, u->attempts + 1, u->call.retry_after_ms);
        if (u->waited_ms + d > (uint64_t)r->rt->set.retry_budget_ms) {
            *over_ms = (int64_t)d;
            return 0;
        }
    }
    u->attempts++;
    st->stats->retries++;
    if (u->thr->stats) u->thr->stats->retries++;
    if (untried) {
        u->avoid = avoid;
        sl_ctx_log(r->rt->ctx, SL_LOG_INFO, stage_name(st), "retry %d on a fallback: %s", u->attempts, msg);
        stage_dispatch(u);
        return 1;
    }
    u->avoid = 0;
    uv_timer_t *t = malloc(sizeof *t);
    if (!t) return 0;
    u->waited_ms += d;
    sl_ctx_log(r->rt->ctx, SL_LOG_INFO, stage_name(st), "retry %d in %llu ms: %s", u->attempts,
               (unsigned long long)d, msg);
    uv_timer_init(sl_loop_uv(r->loop), t);
    t->data = u;
    uv_timer_start(t, retry_fire, d, 0);
    return 1;
}

/* The unit's service time into its documents' chains (job.c). */
static void chain_note(const unit *u, uint64_t busy_ns) {
    if (u->st->op->unit == SL_UNIT_TEXTS) {
        for (size_t i = 0; i < u->u.batch.n; i++) {
            job *j = u->u.batch.refs[i].job;
            if (busy_ns > j->step_busy_ns) j->step_busy_ns = busy_ns;
        }
    } else if (u->job && u->st->op->id == SL_OP_SUMMARIZE) {
        if (busy_ns > u->job->sum_busy_ns) u->job->sum_busy_ns = busy_ns;
    } else if (u->job) {
        if (busy_ns > u->job->step_busy_ns) u->job->step_busy_ns = busy_ns;
    }
}

void stage_complete(unit *u, int rc, uint64_t t_start, uint64_t busy_ns, int calls) {
    stage *st = u->st;
    run *r = st->run;
    sl_throttle *thr = u->thr;
    SL_INVARIANT(st->inflight > 0);
    st->inflight--;
    sl_stage_stats *s = st->stats;
    s->calls += (uint64_t)calls;
    s->items += st->op->unit == SL_UNIT_TEXTS ? u->u.batch.n : 1;
    s->busy_ns += busy_ns;
    s->wait_ns += t_start > u->t_ready ? t_start - u->t_ready : 0;
    /* a pool call left at its deadline: its thread may still write u->call */
    const char *msg = u->pool_left ? u->left_msg : u->call.msg[0] ? u->call.msg : sl_strerror(rc);
    char bare[256];
    if (rc < 0 && !u->pool_left &&
        !u->call.msg[0]) { /* a failure with no message: at least the code and the plugin */
        const sl_instance *in = thr->inst;
        const char *what = in ? in->desc->name : stage_name(st), *code = sl_strerror(rc);
        if (strncmp(code, "unknown", 7) == 0)
            snprintf(bare, sizeof bare, "%s failed with %s and no message", what, code);
        else
            snprintf(bare, sizeof bare, "%s failed with %s (%d) and no message", what, code, rc);
        msg = bare;
    }
    size_t member = 0;
    while (member < st->nchain && st->chain[member] != thr) member++;
    char named[1024];
    if (rc < 0 && u->call.unusable) {
        /* the provider's answers cannot be used (vectors of another
         * dimension): it fails, not the run; the chain passes it by from
         * now on, and with no member left the documents fail saying why */
        snprintf(named, sizeof named, "provider %.80s: %.900s", thr->inst ? thr->inst->name : stage_name(st),
                 msg);
        msg = named;
        if (!thr->unusable[0]) {
            snprintf(thr->unusable, sizeof thr->unusable, "%.500s", msg);
            sl_ctx_log(r->rt->ctx, SL_LOG_WARN, thr->inst ? thr->inst->name : stage_name(st),
                       "%s: no more calls to it in this run%s", u->call.msg,
                       chain_unusable(st) ? "" : "; its fallbacks take the work");
        }
        rc = chain_unusable(st) ? SL_EBADINPUT : SL_ERETRY;
        if (rc == SL_EBADINPUT && st->op->unit == SL_UNIT_TEXTS) u->u.batch.solo = 1;
    }
    if (sl_throttle_done(thr, sl_now_ns() / 1000000u, rc, u->estimate, u->call.tokens_in + u->call.tokens_out,
                         u->call.throttled, u->call.retry_after_ms))
        sl_ctx_log(r->rt->ctx, SL_LOG_WARN, thr->inst ? thr->inst->name : "",
                   "%s; leaving it alone for %lld ms", msg,
                   (long long)(thr->inst ? thr->inst->stage.breaker_cooldown_ms : 0));
    if (thr->stats) {
        thr->stats->tokens_in += u->call.tokens_in;
        thr->stats->tokens_out += u->call.tokens_out;
        if (rc < 0) thr->stats->failures++;
        if (u->call.throttled) thr->stats->throttled++;
        thr->stats->limit_wait_ns += t_start > u->t_ready ? t_start - u->t_ready : 0;
    }
    char why[1200];
    if (rc == SL_ERETRY) { /* the kind of failure that opens a breaker */
        snprintf(thr->last_err, sizeof thr->last_err, "%.255s", msg);
        snprintf(u->last_err, sizeof u->last_err, "%.255s", msg);
        int64_t d = -1;
        if (u->attempts < r->rt->set.retries) {
            int done = retry(u, member, msg, &d);
            if (done) {
                pump_sharing(r, thr);
                return;
            }
        }
        /* the answer says why the document gives up here */
        if (u->gave_up[0])
            snprintf(why, sizeof why, "%.380s: %.700s", u->gave_up, msg);
        else if (d >= 0)
            snprintf(why, sizeof why,
                     "%s (gave up: waiting %lld ms more would pass [sluice] retry_budget = %lld ms)", msg,
                     (long long)d, (long long)r->rt->set.retry_budget_ms);
        else if (u->attempts > 0)
            snprintf(why, sizeof why, "%s (after %d %s)", msg, u->attempts,
                     u->attempts == 1 ? "retry" : "retries");
        else
            snprintf(why, sizeof why, "%s", msg);
        msg = why;
    }
    if (rc < 0) {
        s->failures++;
        if (rc == SL_EFATAL) run_fatal(r, stage_name(st), msg);
    }
    chain_note(u, busy_ns);
    /* done may free u (and with it the job): nothing below reads it */
    st->op->done(u, rc, msg);
    pump_sharing(r, thr);
}

void stage_refresh_stats(stage *st) {
    st->stats->inflight = st->inflight;
    st->stats->queued = st->queued + (int)batches_pending(st);
    if (st->ex->ops->stats) st->ex->ops->stats(st->ex, st, st->stats);
}
