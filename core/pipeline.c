/* pipeline.c - one ingestion run (see pipeline.h): setting it up, running
 * the loop until it ends, and taking it down.
 *
 * The run plans its stages (plan.c), starts its executors (executor.c),
 * admits documents (job.c) and runs the loop thread until no document is
 * in flight and the walker is done, or until it is interrupted or a fatal
 * error stops it. Then the executors are stopped (threads joined, worker
 * processes reaped), the report is completed and everything is freed along
 * one unwind path. SIGINT or SIGTERM finishes what is in flight; a second
 * one stops at once.
 */
#include "pipeline.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "scheduler.h"

void run_fatal(run *r, const char *who, const char *msg) {
    if (!r->rep->fatal) {
        r->rep->fatal = 1;
        snprintf(r->rep->fatal_msg, sizeof r->rep->fatal_msg, "%s: %s", who, msg);
        sl_ctx_log(r->rt->ctx, SL_LOG_ERROR, who, "%s (stopping the run)", msg);
    }
    r->stopping = 1;
}

/* --- prune: after every document, when asked --- */

void op_done_prune(unit *u, int rc, const char *msg) {
    run *r = u->st->run;
    if (rc >= 0)
        r->rep->pruned += (uint64_t)rc;
    else
        run_fatal(r, stage_name(u->st), msg);
    unit_free(u);
    SL_INVARIANT(r->prune_pending > 0);
    if (--r->prune_pending == 0) run_maybe_end(r);
}

static void start_prune(run *r) {
    for (size_t i = 0; i < r->nstages; i++) {
        stage *st = r->stages[i];
        if (st->op->id != SL_OP_PRUNE) continue;
        unit *u = unit_new(st, NULL);
        if (!u) {
            run_fatal(r, stage_name(st), "out of memory");
            continue;
        }
        u->args.roots = (const char *const *)r->roots;
        u->args.nroots = r->nroots;
        u->args.run_id = r->run_id;
        r->prune_pending++;
        stage_dispatch(u);
    }
}

/* --- the end --- */

static void stop_handles(run *r) {
    if (r->progress_on) {
        uv_timer_stop(&r->progress);
        uv_close((uv_handle_t *)&r->progress, NULL);
        r->progress_on = 0;
        sl_progress_clear();
        sl_ctx_set_log_hook(r->rt->ctx, NULL, NULL, NULL);
    }
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    uv_close((uv_handle_t *)&r->sweep, NULL);
    r->sweep_open = 0;
    for (size_t i = 0; i < r->nstages; i++) {
        stage *st = r->stages[i];
        if (st->flush_open) uv_close((uv_handle_t *)&st->flush, NULL);
        if (st->wake_open) uv_close((uv_handle_t *)&st->wake, NULL);
        st->flush_open = st->wake_open = 0;
    }
}

void run_maybe_end(run *r) {
    if (r->ended || r->docs_inflight > 0 || r->prune_pending > 0) return;
    if (!r->walk_done && !r->stopping) return;
    if (!r->ending) {
        r->ending = 1;
        if (r->opts->prune && !r->stopping && !r->rep->fatal) {
            start_prune(r);
            if (r->prune_pending) return;
        }
    }
    r->ended = 1;
    stop_handles(r);
}

static void on_signal(uv_signal_t *s, int signum) {
    run *r = s->data;
    if (r->stopping) {
        sl_ctx_log(r->rt->ctx, SL_LOG_WARN, NULL, "interrupted again: stopping now");
        _exit(130);
    }
    r->stopping = 1;
    r->rep->interrupted = 1;
    sl_ctx_log(r->rt->ctx, SL_LOG_WARN, NULL,
               "interrupted: finishing %zu documents in flight (interrupt again to stop at once)",
               r->docs_inflight);
    run_maybe_end(r);
}

static void progress_tick(uv_timer_t *t) {
    run *r = t->data;
    for (size_t i = 0; i < r->nstages; i++) stage_refresh_stats(r->stages[i]);
    sl_progress_draw(r->rep, (double)(sl_now_ns() - r->t0) / 1e9, r->done);
}

static void progress_clear_hook(void *arg) { sl_progress_clear(); }

/* --- the start --- */

static size_t largest_batch(const run *r) {
    size_t b = 0;
    for (size_t i = 0; i < r->nstages; i++) {
        const stage *st = r->stages[i];
        if ((st->op->id == SL_OP_EMBED || st->ex == &r->ex_batcher) && st->batch_size > b) b = st->batch_size;
    }
    return b;
}

/* Documents in flight at most. Waiting costs nothing on the loop: with io
 * stages in the routes, as many as the memory budget allows may wait. */
static size_t max_documents(const run *r) {
    const sl_runtime *rt = r->rt;
    if (rt->set.max_documents > 0) return (size_t)rt->set.max_documents;
    for (size_t i = 0; i < r->nstages; i++)
        for (size_t k = 0; k < r->stages[i]->nchain; k++) {
            const sl_instance *inst = r->stages[i]->chain[k]->inst;
            if (inst && inst->desc->bottleneck == SL_IO) return 100000;
        }
    return (size_t)rt->threads * 8 + largest_batch(r) + 16;
}

/* The expansion admission assumes until documents in flight show theirs
 * (job.c): the bytes themselves, their elements and chunks, and for each
 * embedding of D dimensions per ~700 bytes of text (chunks of 1000 with
 * overlap) 19 bytes a dimension: the float32 vector in the document and in
 * the batch's output, and a base64 response of 5.4 bytes a dimension held
 * twice while it is decoded; and a prompt's copy for an LLM. */
static double initial_expand(const run *r) {
    double e = 4.0;
    uint32_t dim = 0;
    int llm = 0;
    for (size_t i = 0; i < r->nstages; i++) {
        const stage *st = r->stages[i];
        for (size_t k = 0; k < st->nchain; k++) {
            const sl_instance *inst = st->chain[k]->inst;
            if (!inst) continue;
            if (st->op->id == SL_OP_EMBED && inst->dim > dim) dim = inst->dim;
            if (st->op->id == SL_OP_SUMMARIZE) llm = 1;
        }
    }
    return e + llm + (double)dim * 19.0 / 700.0;
}

static void meter_grew(void *arg) { run_held(arg); }

static int copy_roots(run *r) {
    const sl_run_opts *o = r->opts;
    r->roots = calloc(o->npaths ? o->npaths : 1, sizeof *r->roots);
    if (!r->roots) return SL_ENOMEM;
    for (size_t i = 0; i < o->npaths; i++) {
        size_t l = strlen(o->paths[i]);
        while (l > 1 && o->paths[i][l - 1] == '/') l--;
        if (!(r->roots[r->nroots++] = strndup(o->paths[i], l))) return SL_ENOMEM;
    }
    return 0;
}

static void start_handles(run *r) {
    uv_loop_t *uv = sl_loop_uv(r->loop);
    for (size_t i = 0; i < r->nstages; i++) {
        stage *st = r->stages[i];
        uv_timer_init(uv, &st->wake);
        st->wake.data = st;
        st->wake_open = 1;
        if (st->op->id != SL_OP_EMBED) continue;
        uv_timer_init(uv, &st->flush);
        st->flush.data = st;
        st->flush_open = 1;
    }
    uv_timer_init(uv, &r->sweep);
    r->sweep.data = r;
    r->sweep_open = 1;
    uv_signal_init(uv, &r->sigint);
    uv_signal_init(uv, &r->sigterm);
    r->sigint.data = r->sigterm.data = r;
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
    if (r->opts->progress) {
        uv_timer_init(uv, &r->progress);
        r->progress.data = r;
        uv_timer_start(&r->progress, progress_tick, 200, 200);
        r->progress_on = 1;
        sl_ctx_set_log_hook(r->rt->ctx, progress_clear_hook, NULL, r);
    }
}

static void free_run(run *r) {
    plan_free(r);
    for (size_t i = 0; i < r->nroots; i++) free(r->roots[i]);
    free(r->roots);
    free(r->next_path);
    free(r->next_error);
    sl_walk_free(r->walk);
}

int sl_pipeline_run(sl_runtime *rt, const sl_run_opts *opts, sl_report *rep) {
    run R, *r = &R;
    memset(r, 0, sizeof R);
    r->rt = rt;
    r->opts = opts;
    r->rep = rep;
    r->loop = rt->loop;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    r->run_id = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    srandom((unsigned)(r->run_id ^ (uint64_t)getpid()));
    rep->run_id = r->run_id;
    rep->threads = rt->threads;
    r->t0 = sl_now_ns();
    r->budget = rt->set.memory_budget;

    exec_init(r);
    int rc = plan_run(r);
    if (!rc) rc = copy_roots(r);
    if (!rc && sl_walk_new(opts->paths, opts->npaths, rt->set.include, rt->set.exclude, &r->walk))
        rc = SL_ENOMEM;
    if (rc) rc = sl_ctx_error(rt->ctx, rc, "out of memory while planning the run");
    if (!rc) {
        r->max_docs = max_documents(r);
        r->expand = initial_expand(r);
        r->meter.grew = meter_grew;
        r->meter.arg = r;
        sl_loop_set_service(r->loop, SL_LOOP_METER, &r->meter, NULL);
        rep->total = sl_walk_count(opts->paths, opts->npaths, rt->set.include, rt->set.exclude);
        rc = exec_start(r); /* on failure, the context says why */
    }
    if (!rc) {
        start_handles(r);
        job_admit(r);
        run_maybe_end(r);
        sl_loop_run(r->loop);
    }
    exec_stop(r);
    sl_loop_set_service(r->loop, SL_LOOP_METER, NULL, NULL);
    rep->peak_inflight = r->peak_inflight;
    rep->memory_budget = r->budget;
    rep->expansion = r->expand_seen;

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    rep->peak_rss = (uint64_t)ru.ru_maxrss * 1024u;
    rep->wall_s = (double)(sl_now_ns() - r->t0) / 1e9;
    /* the pre-count may differ if files came or went while we ran */
    if (!rc) rep->total = rep->stored + rep->skipped + rep->failed;
    free_run(r);
    if (rc) return rc;
    return rep->fatal ? SL_EFATAL : 0;
}
