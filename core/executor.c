/* executor.c - the four executors behind one shape (scheduler.h: sl_exec_ops).
 *
 *   pool     thread-safe native code on one thread per core, with per-thread
 *            plugin state; the answer is posted back to the loop.
 *   loop     io plugins, called on the loop thread; they answer at once or
 *            later through sl_call_done, never blocking.
 *   workers  isolated stages in worker processes (workers.c).
 *   batcher  gpu page stages and gpu embedders, batched across documents
 *            (batcher.c).
 *
 * Each one calls the plugin through sl_op_call (ops.c) and hands every unit
 * back through stage_complete exactly once, on the loop thread, with the
 * moment it started (the time before that was queue time) and the time it
 * was busy, so the report reads every executor the same way.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"
#include "guard.h"

/* --- pool --- */

static sl_tstate *tstate_of(run *r, const sl_instance *inst, int thread) {
    return &r->tstate[(size_t)thread * r->rt->ninst + (size_t)inst->id];
}

/* Calls the plugin for u on this thread, with the operation's arguments
 * built before and dropped after (an io plugin copies what it sends before
 * it returns). */
static int call_unit(unit *u, sl_tstate *ts, void (*on_done)(sl_call *, int)) {
    const sl_op *op = u->st->op;
    const char *why = op->prepare ? op->prepare(u) : NULL;
    int rc;
    if (why) {
        sl_call_init(&u->call, u->thr->inst, NULL);
        rc = sl_fail(&u->call, SL_ENOMEM, "%s", why);
    } else {
        rc = sl_op_call(op, u->thr->inst, ts, &u->args, &u->call, on_done, u);
    }
    if (op->release) op->release(u);
    return rc;
}

/* --- deadlines of calls that answered SL_PENDING ---
 *
 * A plugin that answers SL_PENDING promises an sl_call_done. If none comes
 * within the stage's call_timeout (else [sluice] call_deadline), the unit
 * fails its documents with "no answer from PLUGIN within T s". The call is
 * marked abandoned (call.c ignores and counts a late sl_call_done) and the
 * unit's memory, with its job's, is kept until the run is freed, so the
 * plugin's late answer writes into memory that is still there. */

static void deadline_closed(uv_handle_t *h) { free(h); }

static void deadline_disarm(unit *u) {
    if (!u->deadline) return;
    uv_timer_stop(u->deadline);
    uv_close((uv_handle_t *)u->deadline, deadline_closed);
    u->deadline = NULL;
}

static void deadline_fire(uv_timer_t *t) {
    unit *u = t->data;
    deadline_disarm(u);
    int expected = 0;
    /* the answer is already on its way to the loop: it decides */
    if (!atomic_compare_exchange_strong(&u->call.done, &expected, SL_CALL_ABANDONED)) return;
    u->abandoned = 1;
    if (u->job) u->job->abandoned = 1;
    sl_instance *inst = u->thr->inst;
    int64_t ms = inst->stage.timeout_ms > 0 ? inst->stage.timeout_ms : u->st->run->rt->set.call_deadline_ms;
    sl_fail(
        &u->call, SL_EBADINPUT,
        "no answer from %s within %.3g s (it answered SL_PENDING and did not call sl_call_done in time; %s)",
        inst->desc->name, (double)ms / 1000.0,
        inst->stage.timeout_ms > 0 ? "the stage's call_timeout" : "[sluice] call_deadline");
    uint64_t t0 = u->st->ex == &u->st->run->ex_pool ? u->task.t_start : u->t_start;
    stage_complete(u, SL_EBADINPUT, t0, sl_now_ns() - t0, 1);
}

static void deadline_arm(unit *u) {
    sl_instance *inst = u->thr->inst;
    if (!inst) return;
    int64_t ms = inst->stage.timeout_ms > 0 ? inst->stage.timeout_ms : u->st->run->rt->set.call_deadline_ms;
    if (ms <= 0) return;
    uv_timer_t *t = malloc(sizeof *t);
    if (!t) return;
    uv_timer_init(sl_loop_uv(u->st->run->loop), t);
    t->data = u;
    u->deadline = t;
    uv_timer_start(t, deadline_fire, (uint64_t)ms, 0);
}

/* --- pool calls past [sluice] call_deadline ---
 *
 * A call on a pool thread cannot be stopped (a thread cannot be killed
 * safely), but it need not hold the run: a call still running past
 * [sluice] call_deadline (a PDF that sends mupdf into a loop for days)
 * fails its document, its memory is kept as for an abandoned SL_PENDING
 * call, and a new thread takes the stuck one's place. The run then ends
 * without waiting for it; sluice exits without joining that thread or
 * unloading the plugins (cli.c), so the call runs into memory that stays.
 * The failure list keeps the document; after [sluice] max_attempts runs it
 * is a dead letter, passed over. */

static void pool_link(unit *u) {
    run *r = u->st->run;
    u->pool_prev = NULL;
    u->pool_next = r->pool_units;
    if (r->pool_units) r->pool_units->pool_prev = u;
    r->pool_units = u;
}

static void pool_unlink(unit *u) {
    run *r = u->st->run;
    if (u->pool_prev)
        u->pool_prev->pool_next = u->pool_next;
    else if (r->pool_units == u)
        r->pool_units = u->pool_next;
    if (u->pool_next) u->pool_next->pool_prev = u->pool_prev;
    u->pool_prev = u->pool_next = NULL;
}

/* Leaves u's call to its thread and fails its documents now. */
static void pool_leave(unit *u, uint64_t since, uint64_t now) {
    run *r = u->st->run;
    int expected = 0;
    /* an answer already on its way (SL_PENDING, then sl_call_done) decides */
    if (!atomic_compare_exchange_strong(&u->call.done, &expected, SL_CALL_ABANDONED)) return;
    pool_unlink(u);
    u->pool_left = 1;
    u->abandoned = 1; /* the unit, and the jobs below, are kept until the runtime is freed */
    if (u->job) u->job->abandoned = 1;
    if (u->st->op->unit == SL_UNIT_TEXTS)
        for (size_t i = 0; i < u->u.batch.n; i++) u->u.batch.refs[i].job->abandoned = 1;
    r->pool_left++;
    sl_instance *inst = u->thr->inst;
    const char *plugin = inst ? inst->desc->name : stage_name(u->st);
    double s = (double)(now - since) / 1e9;
    snprintf(u->left_msg, sizeof u->left_msg,
             "no answer from %s within %.3g s ([sluice] call_deadline): the call goes on in its pool thread, "
             "which cannot be stopped (isolated = true with call_timeout kills such a call)",
             plugin, s);
    const char *uri = u->job ? sl_doc_uri(u->job->doc) : NULL;
    sl_ctx_log_doc(r->rt->ctx, SL_LOG_WARN, stage_name(u->st), uri,
                   "plugin %s still running after %.3g s ([sluice] call_deadline): its document fails, and a "
                   "new pool thread takes its place",
                   plugin, s);
    if (r->pool_spare > 0 && sl_pool_add_thread(r->pool) >= 0) r->pool_spare--;
    stage_complete(u, SL_EBADINPUT, since, now - since, 1);
}

static void pool_watch_fire(uv_timer_t *t) {
    run *r = t->data;
    int64_t ms = r->rt->set.call_deadline_ms;
    if (ms <= 0) return;
    uint64_t now = sl_now_ns(), limit = (uint64_t)ms * 1000000u;
    unit *u = r->pool_units;
    while (u) {
        unit *next = u->pool_next; /* pool_leave unlinks u, and may end its job */
        uint64_t since = atomic_load(&u->pool_since);
        /* a document's call; the run's own (prune) is waited for */
        if (since && now > since && now - since >= limit && u->st->op->unit != SL_UNIT_RUN)
            pool_leave(u, since, now);
        u = next;
    }
}

/* The documents of pool calls running now, for the message of a run that
 * stops with them in flight: "URI (PLUGIN, 12.5 s), ...". */
size_t exec_pool_running(run *r, char *out, size_t cap) {
    size_t o = 0;
    uint64_t now = sl_now_ns();
    if (cap) out[0] = '\0';
    for (unit *u = r->pool_units; u && o + 64 < cap; u = u->pool_next) {
        uint64_t since = atomic_load(&u->pool_since);
        if (!since || !u->job) continue;
        const sl_instance *inst = u->thr->inst;
        o += (size_t)snprintf(out + o, cap - o, "%s%s (%s, %.1f s)", o ? ", " : "", sl_doc_uri(u->job->doc),
                              inst ? inst->desc->name : stage_name(u->st), (double)(now - since) / 1e9);
    }
    return o;
}

/* A unit's completion with its busy time: a pool call's is its time on
 * the thread; an io call's (sent off the loop, below) runs from its start
 * on the thread until its answer, as an io call's on the loop does. */
static void pool_complete(unit *u, int rc) {
    if (u->off_loop)
        stage_complete(u, rc, u->t_start, sl_now_ns() - u->t_start, 1);
    else
        stage_complete(u, rc, u->task.t_start, u->task.t_end - u->task.t_start, 1);
}

/* The answer of a pool call that returned SL_PENDING (sl_call_done from any
 * thread, brought to the loop by call.c). */
static void pool_answer(sl_call *call, int rc) {
    unit *u = call->udata;
    if (!u->returned) { /* the call has not been seen to return yet */
        u->pool_answered = 1;
        u->answer = rc;
        return;
    }
    deadline_disarm(u);
    pool_complete(u, rc);
}

static void pool_run(sl_task *t, int thread) {
    unit *u = (unit *)t;
    atomic_store(&u->pool_since, sl_now_ns());
    sl_instance *inst = u->thr->inst;
    /* an io plugin has no per-thread state, wherever it is called */
    u->rc = call_unit(u, inst && !u->off_loop ? tstate_of(u->st->run, inst, thread) : NULL, pool_answer);
}

static void pool_done(sl_task *t) {
    unit *u = (unit *)t;
    if (u->pool_left) { /* failed at its deadline: the late answer is dropped */
        u->st->run->pool_left--;
        return;
    }
    pool_unlink(u);
    atomic_store(&u->pool_since, 0);
    if (u->off_loop) u->t_start = t->t_start; /* deadline_fire's start, as for a call on the loop */
    if (u->rc == SL_PENDING) {
        u->returned = 1;
        if (u->pool_answered)
            pool_complete(u, u->answer);
        else
            deadline_arm(u);
        return;
    }
    pool_complete(u, u->rc);
}

static void pool_enqueue(run *r, unit *u, int priority, int off_loop) {
    u->task.priority = priority;
    u->task.run = pool_run;
    u->task.done = pool_done;
    u->off_loop = off_loop;
    u->returned = u->pool_answered = 0;
    atomic_store(&u->pool_since, 0);
    u->pool_left = 0;
    pool_link(u);
    sl_pool_submit(r->pool, &u->task);
}

static void pool_submit(sl_exec *ex, unit *u) {
    /* A page that is further along its page stages goes first, so each
     * page's image is recognised (and dropped) soon after it is rendered
     * instead of every page waiting rendered at once. */
    const sl_op *op = u->st->op;
    pool_enqueue(ex->run, u, op->unit == SL_UNIT_PAGE && u->u.pg.chained ? op->priority + 1 : op->priority,
                 0);
}

static void thread_exit(void *arg, int thread) {
    run *r = arg;
    for (size_t i = 0; i < r->rt->ninst; i++)
        sl_tstate_free(r->rt->inst[i], tstate_of(r, r->rt->inst[i], thread));
}

/* --- loop --- */

static void loop_later(sl_post *p) {
    unit *u = (unit *)((char *)p - offsetof(unit, later));
    stage_complete(u, u->rc, u->t_start, sl_now_ns() - u->t_start, 1);
}

static void loop_done(sl_call *call, int rc) {
    unit *u = call->udata;
    if (u->calling) { /* sl_call_done inside the call: delivered once it returns */
        u->rc = rc;
        u->answered = 1;
        return;
    }
    deadline_disarm(u);
    /* completed on the loop's next turn, not inside sl_call_done: a plugin
     * that calls sl_call_done twice in a row finds the call still marked
     * done (call.c counts it) rather than a unit already reused */
    u->rc = rc;
    u->later.fn = loop_later;
    sl_loop_post(u->st->run->loop, &u->later);
}

/* An io plugin that builds its requests off the loop (plugin.h,
 * SL_PLUGIN_SEND_OFF_LOOP): its embed and complete calls go to a pool
 * thread, first among what waits there (a call starts a transfer, and
 * waits on the provider from then on); the request it sends is handed to
 * the loop (http.c), and the call completes as a pool call that answered
 * SL_PENDING, with an io call's busy time. The stage stays the loop
 * executor's in the report. */
static int sends_off_loop(const unit *u) {
    const sl_instance *inst = u->thr->inst;
    sl_op_id id = u->st->op->id;
    return inst && inst->desc->bottleneck == SL_IO && (inst->desc->flags & SL_PLUGIN_SEND_OFF_LOOP) &&
           (id == SL_OP_EMBED || id == SL_OP_SUMMARIZE);
}

static void loop_submit(sl_exec *ex, unit *u) {
    if (sends_off_loop(u)) {
        pool_enqueue(ex->run, u, SL_POOL_PRIORITIES - 1, 1);
        return;
    }
    u->off_loop = 0;
    u->t_start = sl_now_ns();
    u->calling = 1;
    u->answered = 0;
    int rc = call_unit(u, NULL, loop_done);
    u->calling = 0;
    if (rc != SL_PENDING)
        stage_complete(u, rc, u->t_start, sl_now_ns() - u->t_start, 1);
    else if (u->answered)
        stage_complete(u, u->rc, u->t_start, sl_now_ns() - u->t_start, 1);
    else
        deadline_arm(u);
}

/* --- workers --- */

static void workers_done(void *arg, int rc, const char *msg, uint64_t t_start) {
    unit *u = arg;
    uint64_t now = sl_now_ns();
    if (!t_start) t_start = now; /* never reached a worker */
    if (rc < 0 && msg && *msg) sl_fail(&u->call, rc, "%s", msg);
    stage_complete(u, rc, t_start, now - t_start, 1);
}

static void workers_submit(sl_exec *ex, unit *u) {
    sl_call_init(&u->call, u->thr->inst, NULL);
    int page = u->st->op->unit == SL_UNIT_PAGE ? (int)u->u.pg.page : 0;
    int rc = sl_workers_submit(ex->run->workers, u->thr->inst, u->st->op->id, u->args.doc, (uint32_t)page,
                               workers_done, u);
    if (rc) {
        sl_fail(&u->call, rc, "cannot hand the document to a worker process (%s)", sl_strerror(rc));
        workers_done(u, rc, NULL, 0);
    }
}

/* --- batcher --- */

static void batch_done(void *arg, int rc, const char *msg, const sl_batch_times *t) {
    unit *u = arg;
    if (rc && msg && *msg) sl_fail(&u->call, rc, "%s", msg);
    if (u->st->op->release) u->st->op->release(u); /* before a retry prepares again */
    uint64_t now = sl_now_ns();
    stage_complete(u, rc, t && t->t_start ? t->t_start : now, t ? t->busy_ns : 0, t ? t->calls : 0);
}

static void batcher_submit(sl_exec *ex, unit *u) {
    sl_call_init(&u->call, u->thr->inst, NULL);
    sl_batcher *b = ex->run->batcher[u->thr->inst->id];
    const sl_op *op = u->st->op;
    if (op->unit == SL_UNIT_TEXTS) { /* an embedding batch: its texts are gathered here, on the loop */
        const char *why = op->prepare ? op->prepare(u) : NULL;
        int rc = why ? SL_ENOMEM
                     : sl_batcher_submit_texts(b, u->args.texts, u->args.n, u->args.vectors,
                                               u->thr->inst->dim, batch_done, u);
        if (rc) {
            sl_fail(&u->call, rc, "%s", why ? why : "cannot queue an embedding batch for the batcher");
            batch_done(u, rc, NULL, NULL);
        }
        return;
    }
    int rc = sl_batcher_submit(b, u->args.doc, u->u.pg.page, batch_done, u);
    if (rc) {
        sl_fail(&u->call, rc, "cannot queue page %u for the batcher", u->u.pg.page);
        batch_done(u, rc, NULL, NULL);
    }
}

static void batcher_stats(sl_exec *ex, const stage *st, sl_stage_stats *s) {
    sl_batcher *b = ex->run->batcher[st->inst->id];
    if (!b) return;
    sl_batcher_stats bs;
    sl_batcher_stats_get(b, &bs);
    s->batched = 1;
    s->batches = bs.batches;
    memcpy(s->batch_hist, bs.hist, sizeof s->batch_hist);
    s->splits = bs.splits;
    s->ceiling = bs.ceiling;
    s->queued += (int)sl_batcher_queued(b);
}

static const sl_exec_ops pool_ops = {"pool", pool_submit, NULL};
static const sl_exec_ops loop_ops = {"loop", loop_submit, NULL};
static const sl_exec_ops workers_ops = {"workers", workers_submit, NULL};
static const sl_exec_ops batcher_ops = {"batcher", batcher_submit, batcher_stats};

sl_exec *exec_for(run *r, const sl_op *op, const sl_instance *inst) {
    if (!inst) return &r->ex_pool;
    sl_bottleneck b = inst->desc->bottleneck;
    if (b == SL_IO) return &r->ex_loop;
    if (b == SL_ISOLATED || inst->stage.isolated) return &r->ex_workers;
    if (b == SL_GPU && op->batchable) return &r->ex_batcher;
    return &r->ex_pool;
}

static void exec_set(sl_exec *ex, const sl_exec_ops *ops, run *r) {
    ex->ops = ops;
    ex->run = r;
}

void exec_init(run *r) {
    exec_set(&r->ex_pool, &pool_ops, r);
    exec_set(&r->ex_loop, &loop_ops, r);
    exec_set(&r->ex_workers, &workers_ops, r);
    exec_set(&r->ex_batcher, &batcher_ops, r);
}

int exec_start(run *r) {
    sl_runtime *rt = r->rt;
    size_t ninst = rt->ninst ? rt->ninst : 1;
    /* room for as many threads again: each may be replaced once when a call
     * passes [sluice] call_deadline (pool_leave) */
    r->tstate = calloc((size_t)rt->threads * 2 * ninst, sizeof *r->tstate);
    r->pool_spare = rt->threads;
    r->batcher = calloc(ninst, sizeof *r->batcher);
    if (!r->tstate || !r->batcher)
        return sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory while starting the run");
    if (sl_pool_new(r->loop, rt->threads, thread_exit, r, &r->pool))
        return sl_ctx_error(rt->ctx, SL_EFATAL, "cannot start %d pool threads", rt->threads);
    /* pool calls against [sluice] call_deadline, each second (unref'd: it
     * never keeps the loop alive by itself) */
    if (rt->set.call_deadline_ms > 0 && (r->pool_watch = malloc(sizeof *r->pool_watch)) != NULL) {
        uint64_t every = (uint64_t)rt->set.call_deadline_ms / 4;
        if (every > 1000) every = 1000;
        if (every < 10) every = 10;
        uv_timer_init(sl_loop_uv(r->loop), r->pool_watch);
        r->pool_watch->data = r;
        uv_timer_start(r->pool_watch, pool_watch_fire, every, every);
        uv_unref((uv_handle_t *)r->pool_watch);
    }
    /* the watchdogs (guard.h): the loop blocked past 100 ms, a pool call past [sluice] slow_call */
    sl_guard_set_loop_thread();
    sl_guard_start(100, (uint64_t)(rt->set.slow_call_ms > 0 ? rt->set.slow_call_ms : 0));
    /* io plugins' responses are decoded here (sl_http_answer_on_pool) */
    sl_loop_set_service(r->loop, SL_LOOP_POOL, r->pool, NULL);
    int isolated = 0;
    for (size_t i = 0; i < r->nstages; i++) isolated |= r->stages[i]->ex == &r->ex_workers;
    if (isolated) {
        sl_workers_opts wo = {.count = (int)rt->set.workers,
                              .memory_budget = rt->set.memory_budget,
                              .max_documents = (uint64_t)rt->set.worker_max_documents,
                              .max_rss = rt->set.worker_max_rss,
                              .memory_limit = rt->set.worker_memory_limit,
                              .timeout_ms = rt->set.worker_timeout_ms,
                              .seccomp = rt->set.worker_seccomp};
        if (sl_workers_new(rt->ctx, r->loop, &wo, &r->workers)) return SL_EFATAL; /* the context says why */
        /* a worker takes one call at a time: more would only wait inside */
        int n = sl_workers_size(r->workers);
        for (size_t i = 0; i < r->nstages; i++)
            if (r->stages[i]->ex == &r->ex_workers) {
                sl_throttle *t = r->stages[i]->chain[0];
                if (t->limit == 0 || t->limit > n) t->limit = n;
            }
    }
    for (size_t i = 0; i < r->nstages; i++) {
        stage *st = r->stages[i];
        if (st->ex != &r->ex_batcher || r->batcher[st->inst->id]) continue;
        sl_batcher_opts bo;
        sl_batcher_opts_for(st->inst, &bo);
        if (sl_batcher_new(r->loop, st->inst, &bo, &r->batcher[st->inst->id]))
            return sl_ctx_error(rt->ctx, SL_EFATAL, "[%s] cannot start its batcher", st->inst->name);
    }
    return 0;
}

void exec_stop(run *r) {
    sl_guard_stop();
    sl_workers_free(r->workers); /* stops and reaps every worker: none is left behind */
    r->workers = NULL;
    sl_loop_set_service(r->loop, SL_LOOP_POOL, NULL, NULL);
    if (r->pool_watch) {
        uv_timer_stop(r->pool_watch);
        uv_close((uv_handle_t *)r->pool_watch, deadline_closed); /* frees it */
        r->pool_watch = NULL;
    }
    r->rep->calls_left = (uint64_t)r->pool_left;
    int stuck = r->pool_left > 0;
    if (stuck)
        sl_pool_abandon(r->pool); /* a thread is still in a call left at its deadline: no join */
    else
        sl_pool_free(r->pool); /* joins; thread_exit frees per-thread plugin state */
    r->pool = NULL;
    /* the batchers' counters, before they go */
    for (size_t i = 0; i < r->nstages; i++)
        if (r->stages[i]->stats) stage_refresh_stats(r->stages[i]);
    /* joins each dispatcher (running the plugin's thread_fini there) */
    for (size_t i = 0; r->batcher && i < r->rt->ninst; i++) {
        sl_batcher_free(r->batcher[i]);
        r->batcher[i] = NULL;
    }
    sl_loop_drain(r->loop);
    free(r->batcher);
    r->batcher = NULL;
    if (!stuck) free(r->tstate); /* else the stuck thread's plugin state, kept */
    r->tstate = NULL;
}
