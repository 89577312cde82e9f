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

#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "scheduler.h"
#include "guard.h"
#include "threads.h"

void run_fatal(run *r, const char *who, const char *msg) {
    if (!r->rep->fatal) {
        r->rep->fatal = 1;
        snprintf(r->rep->fatal_msg, sizeof r->rep->fatal_msg, "%s: %s", who, msg);
        sl_ctx_log(r->rt->ctx, SL_LOG_ERROR, who, "%s (stopping the run)", msg);
    }
    r->stopping = 1;
    run_sweep(r); /* what is queued fails now, not after a breaker's cooldown */
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

/* One unit for each stage of the run-unit op `op` (prune, settle), counted
 * in *pending; run_maybe_end waits for the count to come back to zero. A
 * prune that cannot start fails the run (what it would remove stays); a
 * settle that cannot start only means the report comes before the sink's
 * indexes caught up. */
static void start_run_units(run *r, sl_op_id op, int *pending) {
    for (size_t i = 0; i < r->nstages; i++) {
        stage *st = r->stages[i];
        if (st->op->id != op) continue;
        unit *u = unit_new(st, NULL);
        if (!u) {
            if (op == SL_OP_PRUNE)
                run_fatal(r, stage_name(st), "out of memory");
            else
                sl_ctx_log(r->rt->ctx, SL_LOG_WARN, stage_name(st),
                           "out of memory: not waiting for it to settle");
            continue;
        }
        u->args.roots = (const char *const *)r->roots;
        u->args.nroots = r->nroots;
        u->args.run_id = r->run_id;
        (*pending)++;
        stage_dispatch(u);
    }
}

/* --- settle: after every document and the prune --- */

/* A sink's derived indexes that could not catch up are its next run's or
 * query's to finish: what was stored is whole, so this is a warning. */
void op_done_settle(unit *u, int rc, const char *msg) {
    run *r = u->st->run;
    if (rc < 0)
        sl_ctx_log(r->rt->ctx, SL_LOG_WARN, stage_name(u->st),
                   "%s (the documents are stored; the next run or query catches up)", msg);
    unit_free(u);
    SL_INVARIANT(r->settle_pending > 0);
    if (--r->settle_pending == 0) {
        r->rep->settle_s = (double)(sl_now_ns() - r->settle_t0) / 1e9;
        run_maybe_end(r);
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
    sl_guard_rehold_interrupts();
    uv_close((uv_handle_t *)&r->sweep, NULL);
    r->sweep_open = 0;
    if (r->page_open) {
        sl_walk_set_notify(r->walk, NULL, NULL); /* returns once no notify runs */
        uv_close((uv_handle_t *)&r->page, NULL);
        r->page_open = r->page_waiting = 0;
    }
    uv_close((uv_handle_t *)&r->grace, NULL);
    r->grace_open = 0;
    for (size_t i = 0; i < r->nstages; i++) {
        stage *st = r->stages[i];
        if (st->flush_open) uv_close((uv_handle_t *)&st->flush, NULL);
        if (st->wake_open) uv_close((uv_handle_t *)&st->wake, NULL);
        st->flush_open = st->wake_open = 0;
    }
}

void run_maybe_end(run *r) {
    if (r->ended || r->docs_inflight > 0 || r->prune_pending > 0 || r->settle_pending > 0 || r->child_head)
        return;
    if ((!r->walk_done || r->have_next || r->extra_next < r->nextra) && !r->stopping) return;
    if (!r->stopping && r->opts->hold && r->opts->hold(r->opts->queue_arg)) return;
    if (!r->ending) {
        r->ending = 1;
        if (r->opts->prune && !r->stopping && !r->rep->fatal) {
            start_run_units(r, SL_OP_PRUNE, &r->prune_pending);
            if (r->prune_pending) return;
        }
    }
    /* once, after the prune: the sinks' own threads catch up with what
     * the run stored, inside the run's time (plugin.h, settle) */
    if (!r->settled) {
        r->settled = 1;
        if (!r->stopping && !r->rep->fatal) {
            r->settle_t0 = sl_now_ns();
            start_run_units(r, SL_OP_SETTLE, &r->settle_pending);
            if (r->settle_pending) return;
        }
    }
    r->ended = 1;
    stop_handles(r);
    if (r->opts->closing) r->opts->closing(r->opts->queue_arg);
}

/* Stops now, with the report as it stands: what was stored is whole. */
static _Noreturn void stop_now(run *r) {
    r->rep->interrupted = 1;
    r->rep->wall_s = (double)(sl_now_ns() - r->t0) / 1e9;
    r->rep->total = r->rep->stored + r->rep->skipped + r->rep->failed;
    for (size_t i = 0; i < r->nstages; i++) stage_refresh_stats(r->stages[i]);
    if (r->progress_on) sl_progress_clear();
    if (r->opts->last_report) r->opts->last_report(r->rep, r->opts->last_report_arg);
    _exit(3);
}

/* In-flight work outlasted shutdown_grace after a signal (a plugin call that
 * never returns, say): name where it is stuck and stop. Every store is a
 * transaction: the next run resumes. */
static void grace_over(uv_timer_t *t) {
    run *r = t->data;
    char where[512] = "";
    size_t o = 0;
    for (size_t i = 0; i < r->nstages && o < sizeof where - 64; i++)
        if (r->stages[i]->inflight)
            o += (size_t)snprintf(where + o, sizeof where - o, "%s%s (%d)", o ? ", " : "",
                                  stage_name(r->stages[i]), r->stages[i]->inflight);
    char running[1024];
    size_t n = exec_pool_running(r, running, sizeof running);
    sl_ctx_log(r->rt->ctx, SL_LOG_ERROR, NULL,
               "stopping: %zu documents still in flight %lld ms after the interrupt ([sluice] "
               "shutdown_grace), in %s%s%s",
               r->docs_inflight, (long long)r->rt->set.shutdown_grace_ms, o ? where : "no stage",
               n ? "; still running on the thread pool: " : "", n ? running : "");
    stop_now(r);
}

static void on_signal(uv_signal_t *s, int signum) {
    run *r = s->data;
    if (r->stopping) {
        sl_ctx_log(r->rt->ctx, SL_LOG_WARN, NULL, "interrupted again: stopping now");
        stop_now(r); /* interrupted (README: exit status); the store is whole, the next run resumes */
    }
    r->stopping = 1;
    r->rep->interrupted = 1;
    sl_ctx_log(r->rt->ctx, SL_LOG_WARN, NULL,
               "interrupted: finishing %zu documents in flight (interrupt again to stop at once)",
               r->docs_inflight);
    job_admit(r); /* children not started yet fail now: their parents then finish */
    if (r->grace_open) uv_timer_start(&r->grace, grace_over, (uint64_t)r->rt->set.shutdown_grace_ms, 0);
    run_maybe_end(r);
}

/* The progress total: what the count found before the run, plus what the
 * run's s3:// listings have found so far (the count lists none). */
static void refresh_total(run *r) {
    if (!r->uncounted || !r->walk) return;
    r->rep->total = r->counted + sl_walk_s3_listed(r->walk);
    r->rep->total_open = !r->walk_done;
}

void sl_pipeline_refresh(run *r) {
    sl_report *rep = r->rep;
    refresh_total(r);
    for (size_t i = 0; i < r->nstages; i++) stage_refresh_stats(r->stages[i]);
    uint64_t now = sl_now_ns() / 1000000u;
    for (size_t i = 0; r->thr && i < r->rt->ninst; i++)
        if (r->thr[i] && r->thr[i]->stats) {
            r->thr[i]->stats->breaker_state = sl_throttle_breaker(r->thr[i], now);
            sl_throttle_transport(r->thr[i]);
        }
    long long m = atomic_load(&r->meter.bytes);
    rep->inflight_bytes = r->bytes_inflight + (uint64_t)(m > 0 ? m : 0) + r->docs_inflight * JOB_OVERHEAD;
    rep->docs_inflight = r->docs_inflight;
    if (r->workers) {
        uint64_t started = sl_workers_started(r->workers), size = (uint64_t)sl_workers_size(r->workers);
        rep->worker_restarts = started > size ? started - size : 0;
    }
}

static void progress_tick(uv_timer_t *t) {
    run *r = t->data;
    refresh_total(r);
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

static double cpu_s(int who) {
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* The CPU time so far of the cores sluice may run on (its affinity; all
 * of them without one), busy and in all, in ticks (/proc/stat's cpuN
 * lines); 0 where it cannot be read. */
static void machine_ticks(unsigned long long *busy, unsigned long long *all) {
    *busy = *all = 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    int mine = sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned cpu;
        unsigned long long v[8] = {0};
        if (strncmp(line, "cpu", 3) != 0) break; /* the cpu lines come first */
        if (sscanf(line, "cpu%u %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) != 9)
            continue; /* the "cpu" line: all of them */
        if (mine && (cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &set))) continue;
        unsigned long long a = 0;
        for (int i = 0; i < 8; i++) a += v[i];
        *all += a;
        *busy += a - v[3] - v[4]; /* less idle and iowait */
    }
    fclose(f);
}

/* The stage of a limited io instance (rpm, tpm or a concurrency the user
 * set) whose units waited longest in its queue, or NULL. */
static const stage *limited_stage(const run *r, double *wait_s) {
    const stage *best = NULL;
    *wait_s = 0;
    for (size_t i = 0; i < r->nstages; i++) {
        const stage *st = r->stages[i];
        const sl_instance *in = st->inst;
        if (!in || in->desc->bottleneck != SL_IO) continue;
        if (!in->stage.rpm && !in->stage.tpm && in->stage.max_concurrency <= 0) continue;
        double w = (double)st->stats->wait_ns / 1e9;
        if (w > *wait_s) {
            *wait_s = w;
            best = st;
        }
    }
    return best;
}

/* After a run: what bounded it, from what it measured, and what relaxing
 * that would buy. The first that holds, in this order: the longest
 * document's own chain (nothing can be faster), a provider limit the user
 * set that requests waited on for a good part of the run, the loop thread,
 * sluice's CPU, the machine's CPU (full, with others taking part of it),
 * the memory budget, the store. */
static void name_binding(run *r, double wall, double loop_cpu, double proc_cpu, double machine,
                         double cpu_wait) {
    sl_report *rep = r->rep;
    int cores = sl_cpu_count();
    double chain = (double)r->chain_max_ns / 1e9, loop = wall > 0 ? loop_cpu / wall : 0;
    double used = wall > 0 ? proc_cpu / wall : 0, bw = (double)r->budget_wait_ns / 1e9;
    rep->chain_s = chain;
    rep->loop_busy = loop;
    rep->cores_used = used;
    rep->budget_wait_s = bw;
    rep->cpu_wait_s = cpu_wait;
    char *b = rep->binding;
    size_t n = sizeof rep->binding;
    double lwait;
    const stage *lim = limited_stage(r, &lwait);
    const stage *store = NULL;
    char settled_name[96] = "";
    int nsettle = 0;
    for (size_t i = 0; i < r->nstages; i++) {
        if (r->stages[i]->op->id == SL_OP_STORE &&
            (!store || r->stages[i]->stats->busy_ns > store->stats->busy_ns))
            store = r->stages[i];
        if (r->stages[i]->op->id == SL_OP_SETTLE && nsettle++ == 0)
            snprintf(settled_name, sizeof settled_name, "[%.80s]", r->stages[i]->inst->name);
    }
    if (nsettle > 1) snprintf(settled_name, sizeof settled_name, "the stores");
    double settle = rep->settle_s;
    if (!rep->stored) {
        rep->binding_kind = "none";
        snprintf(b, n, "nothing was stored: no bound to speak of");
    } else if (chain >= wall / 1.3) {
        rep->binding_kind = "chain";
        snprintf(b, n,
                 "bound by the documents' own steps: the longest document chain was %.2f s of %.2f s; only "
                 "faster providers or stages would shorten it",
                 chain, wall);
    } else if (lim && lwait / (double)(lim->stats->items ? lim->stats->items : 1) >= 0.25 * (wall - chain)) {
        const sl_instance *in = lim->inst;
        char what[96];
        if (in->stage.rpm)
            snprintf(what, sizeof what, "rpm = %lld", (long long)in->stage.rpm);
        else if (in->stage.tpm)
            snprintf(what, sizeof what, "tpm = %lld", (long long)in->stage.tpm);
        else
            snprintf(what, sizeof what, "max_concurrency = %lld", (long long)in->stage.max_concurrency);
        rep->binding_kind = "limit";
        snprintf(b, n,
                 "bound by [%s] %s: %llu requests waited %.1f s in all for the limit; doubling it would save "
                 "up to "
                 "about %.1f s of %.2f s",
                 in->name, what, (unsigned long long)lim->stats->items, lwait, (wall - chain) / 2, wall);
    } else if (loop >= 0.7) {
        rep->binding_kind = "loop";
        snprintf(
            b, n,
            "bound by sluice CPU: the loop thread was busy %.0f%% of the run (%.2f of %.2f s); the longest "
            "document chain was %.2f s",
            loop * 100, loop_cpu, wall, chain);
    } else if (used >= 0.85 * cores) {
        char busiest[160];
        sl_report_busiest_threads(rep, busiest, sizeof busiest);
        rep->binding_kind = "cpu";
        snprintf(
            b, n,
            "bound by CPU: sluice used %.1f of %d core%s; more cores (or cheaper stages) would help%s; the "
            "longest document chain was %.2f s of %.2f s",
            used, cores, cores == 1 ? "" : "s", busiest, chain, wall);
    } else if (machine >= 0.85 && (used >= 0.25 * cores ||
                                   (cpu_wait >= proc_cpu && proc_cpu + cpu_wait >= 0.25 * cores * wall))) {
        /* The cores were full, and not only with sluice: whatever else ran
         * took the CPU sluice would have used. Either sluice still had a
         * quarter of them, or it wanted that much and got at most half of
         * it: its threads waited, ready to run, at least as long as they
         * ran, and running and waiting together came to a quarter of the
         * cores or more. On a crowded machine sluice may get far less than
         * a quarter; the wait is what says it wanted more (a run that only
         * waits on providers or on its budget waits asleep, and needs little
         * CPU when it runs). Admission waiting for room is then a symptom,
         * not the cause (a larger budget lets in more documents than the
         * CPU can move: measured, it made runs slower). */
        char budget[160] = "";
        if (r->budget && bw >= 0.3 * wall)
            snprintf(budget, sizeof budget,
                     "; admission waited %.2f s for memory, which a larger memory_budget would not shorten",
                     bw);
        char waited[96] = "";
        if (cpu_wait >= 0)
            snprintf(waited, sizeof waited, "; sluice's threads waited %.2f s in all for a core", cpu_wait);
        char busiest[160];
        sl_report_busiest_threads(rep, busiest, sizeof busiest);
        rep->binding_kind = "machine";
        snprintf(b, n,
                 "bound by the machine's CPU: its %d core%s %s %.0f%% busy, sluice using %.1f and other "
                 "processes %.1f; more cores, or less else running, would help%s%s%s; the longest document "
                 "chain was %.2f s of %.2f s",
                 cores, cores == 1 ? "" : "s", cores == 1 ? "was" : "were", machine * 100, used,
                 machine * cores > used ? machine * cores - used : 0, waited, busiest, budget, chain, wall);
    } else if (r->budget && bw >= 0.3 * wall) {
        /* Room frees only as documents in flight finish: say where their
         * time went (each stage's time in its calls and queued for them,
         * summed over its units), so a full budget is not mistaken for the
         * cause when a slow provider or the store holds the documents. */
        const stage *held = NULL;
        double held_s = 0, all_s = 0;
        for (size_t i = 0; i < r->nstages; i++) {
            const stage *st = r->stages[i];
            double t = (double)(st->stats->busy_ns + st->stats->wait_ns) / 1e9;
            all_s += t;
            if (t > held_s) {
                held_s = t;
                held = st;
            }
        }
        char where[256] = "";
        if (held && all_s > 0 && held->stats->items)
            snprintf(
                where, sizeof where,
                "; the documents in flight spent %.0f%% of their time in [%s] (%.3f s a unit, %llu units), "
                "so it is what to speed up or widen",
                100.0 * held_s / all_s, held->inst ? held->inst->name : held->op->name,
                held_s / (double)held->stats->items, (unsigned long long)held->stats->items);
        rep->binding_kind = "memory_budget";
        snprintf(
            b, n,
            "bound by memory_budget = %.0f MB: admission waited %.2f s of %.2f s for room (documents held "
            "%.1fx their size in flight)%s; a larger budget would let more documents in at once",
            (double)r->budget / 1048576.0, bw, wall, r->expand_seen, where);
    } else if (settle >= 0.3 * wall) {
        rep->binding_kind = "store";
        snprintf(b, n,
                 "bound by the store: %s took %.2f s of %.2f s after the last document was stored to "
                 "bring its own indexes up to date; a faster store, or fewer indexes, would shorten it",
                 settled_name, settle, wall);
        settle = 0; /* said */
    } else if (store && (double)store->stats->busy_ns / 1e9 >= 0.6 * wall) {
        rep->binding_kind = "store";
        snprintf(b, n,
                 "bound by the store: [%s] was busy %.2f s of %.2f s writing one document after another",
                 store->inst->name, (double)store->stats->busy_ns / 1e9, wall);
    } else {
        rep->binding_kind = "mixed";
        snprintf(
            b, n,
            "no single bound: the longest document chain was %.2f s of %.2f s, the loop thread busy %.0f%%, "
            "CPU %.1f of %d cores (the machine's %.0f%% busy), admission waited %.2f s for memory",
            chain, wall, loop * 100, used, cores, machine * 100, bw);
    }
    /* a tail worth naming: the part of the run after the last document */
    if (rep->stored && settle >= 0.1 * wall && settle >= 0.1) {
        size_t len = strlen(b);
        snprintf(b + len, n - len,
                 "; %s brought its own indexes up to date in the last %.2f s, after the last "
                 "document",
                 settled_name, settle);
    }
}

static int copy_roots(run *r) {
    const sl_run_opts *o = r->opts;
    size_t n = o->npaths + o->nprune_only;
    r->roots = calloc(n ? n : 1, sizeof *r->roots);
    if (!r->roots) return SL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *p = i < o->npaths ? o->paths[i] : o->prune_only[i - o->npaths];
        size_t l = strlen(p);
        while (l > 1 && p[l - 1] == '/') l--;
        if (!(r->roots[r->nroots++] = strndup(p, l))) return SL_ENOMEM;
    }
    return 0;
}

/* On a listing's fetching thread: only the async handle is touched. */
static void page_notify(void *arg) {
    run *r = arg;
    uv_async_send(&r->page);
}

static void page_in(uv_async_t *a) {
    run *r = a->data;
    if (r->page_waiting) {
        r->page_waiting = 0;
        uv_unref((uv_handle_t *)&r->page);
    }
    job_admit(r);
    run_maybe_end(r);
}

static void start_handles(run *r) {
    uv_loop_t *uv = sl_loop_uv(r->loop);
    if (uv_async_init(uv, &r->page, page_in) == 0) {
        r->page.data = r;
        r->page_open = 1;
        uv_unref((uv_handle_t *)&r->page);
        sl_walk_set_notify(r->walk, page_notify, r);
    }
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
    uv_timer_init(uv, &r->grace);
    r->grace.data = r;
    r->grace_open = 1;
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
    for (size_t i = r->extra_next; i < r->nextra; i++) free(r->extra[i]);
    free(r->extra);
    free(r->extra_job);
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
    rep->started_ns = r->t0;
    r->budget = rt->set.memory_budget;

    uint64_t late0, extra0;
    sl_call_answers_ignored(&late0, &extra0);
    sl_guard_set_report(rep);
    exec_init(r);
    int rc = plan_run(r);
    if (!rc) rc = copy_roots(r);
    if (!rc && sl_walk_new(opts->paths, opts->npaths, rt->set.include, rt->set.exclude, &r->walk))
        rc = SL_ENOMEM;
    if (rc) rc = sl_ctx_error(rt->ctx, rc, "out of memory while planning the run");
    if (!rc) {
        sl_walk_report_outside(r->walk); /* counted, never silent (job.c) */
        r->max_docs = max_documents(r);
        r->expand = initial_expand(r);
        r->meter.grew = meter_grew;
        r->meter.arg = r;
        sl_loop_set_service(r->loop, SL_LOOP_METER, &r->meter, NULL);
        r->counted =
            sl_walk_count(opts->paths, opts->npaths, rt->set.include, rt->set.exclude, &r->uncounted);
        rep->total = r->counted;
        rep->total_open = r->uncounted;
        rc = exec_start(r); /* on failure, the context says why */
    }
    /* the threads as the kernel counts them, read again at the end: how
     * long they waited for a core, and each name's CPU (threads.c) */
    sl_thread_samples threads0, threads1 = {0};
    sl_threads_read(&threads0);
    double loop0 = cpu_s(RUSAGE_THREAD), proc0 = cpu_s(RUSAGE_SELF), wait0 = sl_threads_waited_s(&threads0),
           wait1 = -1;
    unsigned long long mbusy0, mall0, mbusy1, mall1;
    machine_ticks(&mbusy0, &mall0);
    if (!rc) {
        start_handles(r);
        if (sl_guard_take_interrupts()) { /* before the loop listened: nothing has started */
            r->stopping = 1;
            rep->interrupted = 1;
            sl_ctx_log(rt->ctx, SL_LOG_WARN, NULL, "interrupted before the first document: stopping");
        }
        if (opts->live) *opts->live = r;
        job_admit(r);
        run_maybe_end(r);
        sl_loop_run(r->loop);
    }
    if (!rc) sl_pipeline_refresh(r); /* the final breakers and worker restarts, before the executors go */
    if (!rc) {                       /* while the pool's threads are there to read */
        sl_threads_read(&threads1);
        if (wait0 >= 0) wait1 = sl_threads_waited_s(&threads1);
        free(rep->thread_cpu); /* the report of an earlier run in this struct */
        sl_threads_cpu_by_name(&threads0, &threads1, &rep->thread_cpu, &rep->nthread_cpu);
    }
    sl_threads_free(&threads0);
    sl_threads_free(&threads1);
    if (opts->live) *opts->live = NULL;
    exec_stop(r);
    sl_guard_set_report(NULL);
    sl_call_answers_ignored(&rep->late_answers, &rep->extra_answers);
    rep->late_answers -= late0;
    rep->extra_answers -= extra0;
    sl_loop_set_service(r->loop, SL_LOOP_METER, NULL, NULL);
    rep->peak_inflight = r->peak_inflight;
    rep->memory_budget = r->budget;
    rep->expansion = r->expand_seen;

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    rep->peak_rss = (uint64_t)ru.ru_maxrss * 1024u;
    rep->wall_s = (double)(sl_now_ns() - r->t0) / 1e9;
    machine_ticks(&mbusy1, &mall1);
    if (!rc)
        name_binding(r, rep->wall_s, cpu_s(RUSAGE_THREAD) - loop0, cpu_s(RUSAGE_SELF) - proc0,
                     mall1 > mall0 ? (double)(mbusy1 - mbusy0) / (double)(mall1 - mall0) : 0,
                     wait1 < 0       ? -1
                     : wait1 > wait0 ? wait1 - wait0
                                     : 0);
    /* the pre-count may differ if files came or went while we ran */
    if (!rc) rep->total = rep->stored + rep->skipped + rep->failed + rep->parked;
    rep->total_open = 0;
    free_run(r);
    if (rc) return rc;
    return rep->fatal ? SL_EFATAL : 0;
}

int sl_pipeline_add(struct run *r, const char *path) { return sl_pipeline_add_job(r, path, 0, 0); }

void sl_pipeline_poke(struct run *r) {
    if (r) run_maybe_end(r);
}

int sl_pipeline_add_job(struct run *r, const char *path, int64_t id, int64_t token) {
    if (!r || r->ending || r->ended || r->stopping || r->rep->fatal) return 0;
    if (r->nextra == r->extra_cap) {
        size_t cap = r->extra_cap ? r->extra_cap * 2 : 16;
        char **g = realloc(r->extra, cap * sizeof *g);
        if (!g) return 0;
        r->extra = g;
        int64_t *gj = realloc(r->extra_job, cap * 2 * sizeof *gj);
        if (!gj) return 0;
        r->extra_job = gj;
        r->extra_cap = cap;
    }
    if (!(r->extra[r->nextra] = strdup(path))) return 0;
    r->extra_job[2 * r->nextra] = id;
    r->extra_job[2 * r->nextra + 1] = token;
    r->nextra++;
    job_admit(r);
    run_maybe_end(r); /* had it ended at once (gone again), the run may end */
    return 1;
}
