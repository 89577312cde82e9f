/* scheduler.h - the scheduler's shared types: a run, its stages, the jobs (one
 * per document in flight) and the units of work handed to executors.
 *
 * Private to the files that make up one run (pipeline.c, plan.c, job.c,
 * stage.c, executor.c, pages.c, batches.c, summaries.c). Everything here
 * lives on the loop thread, except that a unit's call, arguments and
 * document are touched by the executor running it while it runs.
 *
 * Liveness. The run ends when the walker is done and no job is in flight;
 * every place a unit or a document can wait has exactly one thing that
 * wakes it, and that thing is always armed while something waits:
 *   - a unit in a stage queue waits for a member of the stage's chain (a
 *     throttle) to have a free slot, rate budget or a closed breaker. Slots
 *     and half-open probes are freed only by a completion, which pumps every
 *     stage sharing that throttle (stage_complete); budgets and breakers
 *     reopen with time, and pump arms the stage's wake timer for the
 *     earliest moment before it returns with a non-empty queue;
 *   - a unit waiting to be retried holds its own timer, which dispatches it;
 *   - chunks waiting for an embedding batch go out when the batch is full
 *     or when the flush timer fires, armed whenever chunks are pending;
 *   - a document waiting for admission waits for bytes or a slot, freed only
 *     when a job finishes, which admits again;
 *   - a child document (job.c, "children") waits in the run's child queue,
 *     admitted first, and admission does not count the parents that only
 *     wait for children: with none active a child always gets in, so a
 *     parent never waits on a child it keeps out; a parent waiting (before
 *     its store, or its end) is woken by its last child's end, each child
 *     ending exactly once (stored, skipped, failed, or dropped when the run
 *     stops);
 *   - a job waiting for its parts (pages, batches, summaries) is counted in
 *     job->parts and every part ends in job_part_done exactly once; when a
 *     job fails, the sweep timer pumps every queue, which ends its queued
 *     units without calling the plugin, so it never waits on a provider.
 * Executors deliver every submitted unit back through stage_complete exactly
 * once, on the loop thread. tests/core/test_liveness.c drives runs with
 * random completion orders and fails on any stall.
 */
#ifndef SL_SCHEDULER_H
#define SL_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "batcher.h"
#include "ctx.h"
#include "document.h"
#include "instance.h"
#include "ops.h"
#include "pipeline.h"
#include "pool.h"
#include "report.h"
#include "throttle.h"
#include "walk.h"
#include "workers.h"

typedef struct run run;
typedef struct sl_job job;
typedef struct sl_stage stage;
typedef struct sl_unit unit;
typedef struct sl_exec sl_exec;

/* --- executors (executor.c) --- */

/* One shape for the four executors. submit hands a unit over; the executor
 * delivers it back through stage_complete exactly once, on the loop thread,
 * with when it started and how long it was busy. stats adds what only the
 * executor knows (units queued inside it, batch sizes) to a stage's stats. */
typedef struct sl_exec_ops {
    const char *name; /* "pool", "loop", "workers", "batcher": the report's executor column */
    void (*submit)(sl_exec *ex, unit *u);
    void (*stats)(sl_exec *ex, const stage *st, sl_stage_stats *s);
} sl_exec_ops;

struct sl_exec {
    const sl_exec_ops *ops;
    run *run;
};

/* The executor an operation of this instance runs on (inst NULL: the core's own read). */
sl_exec *exec_for(run *r, const sl_op *op, const sl_instance *inst);
/* Sets the four executors up, starting nothing (before planning). */
void exec_init(run *r);
/* The documents of the pool calls running now, "URI (PLUGIN, T s), ..."
 * into out; the length written. */
size_t exec_pool_running(run *r, char *out, size_t cap);
/* Starts what the stages need (threads, worker processes, batchers); 0 or
 * an error already in the context. exec_stop joins and reaps them all. */
int exec_start(run *r);
void exec_stop(run *r);

/* --- units --- */

/* A chunk of a job, waiting for or in an embedding batch. */
typedef struct chunk_ref {
    job *job;
    uint32_t chunk;
} chunk_ref;

/* What an SL_OP_SUMMARIZE unit asks for. */
enum { SUM_CHUNK, SUM_DOC, SUM_PART, SUM_COMBINE };

/* One piece of work for one executor: a step of one job, a page, a batch of
 * chunks from many jobs, a prompt, or the run's prune. Which member of the
 * union is in use follows from the stage's operation (op->unit). */
struct sl_unit {
    sl_task task; /* first: the pool's link */
    sl_call call;
    sl_op_args args;
    stage *st;
    sl_throttle *thr; /* the chain member running it this time */
    job *job;         /* NULL for batches and prune */
    uint32_t avoid;   /* chain members that failed it since the last backoff */
    uint64_t estimate;
    int attempts;
    uint64_t waited_ms;  /* in backoffs so far (retry_budget) */
    uint64_t t_first_ms; /* first queued in this step: an open breaker's waits count from here */
    char gave_up[384];   /* why retry() gave up on an open breaker, or "" */
    char last_err[256];  /* its latest retryable failure in this step, or "" */
    int rc;              /* pool: the answer, carried back to the loop */
    int calling;         /* loop: inside the plugin's call */
    int answered;        /* loop: sl_call_done ran inside the call; rc holds the answer */
    /* pool, a plugin that answered SL_PENDING: the unit completes once both
     * the call returned (pool_done) and the answer came (pool_answer), in
     * either order, both on the loop thread. */
    int returned, pool_answered, answer;
    int off_loop; /* an io call made on a pool thread (executor.c, sends_off_loop) */
    int owned;    /* freed when done (all but a job's own step unit) */
    /* a call that answered SL_PENDING: its deadline (call_timeout, else
     * [sluice] call_deadline), and whether it passed: the unit's memory
     * then stays until the run's end, so a late sl_call_done finds it */
    uv_timer_t *deadline;
    int abandoned;
    sl_op_unit kind; /* u->st->op->unit, kept for unit_free_parked */
    sl_post later;   /* loop: an answer completes on the loop's next turn */
    uint64_t t_ready, t_start;
    unit *next;
    /* pool: the calls in flight (run->pool_units), when this one began on
     * its thread (0: still queued), and, past [sluice] call_deadline, the
     * reason it failed with while its thread went on (executor.c) */
    unit *pool_prev, *pool_next;
    _Atomic uint64_t pool_since;
    int pool_left;
    char left_msg[320];
    union {
        struct { /* SL_UNIT_PAGE */
            uint32_t page;
            int chained; /* past the first page stage of its route */
        } pg;
        struct { /* SL_UNIT_TEXTS */
            chunk_ref *refs;
            size_t n;
            float *out;
            size_t out_bytes; /* metered (loop.h sl_meter) */
            sl_text *texts;
            char **joined; /* summary + text, when the route embeds summaries */
            int solo;      /* split off a failed batch: fail, don't split again */
        } batch;
        struct {      /* SL_UNIT_PROMPT */
            int kind; /* SUM_* */
            uint32_t index;
            char *prompt;
            size_t len;
            sl_text text; /* the prompt, as the plugin gets it */
            sl_completion answer;
        } sum;
    } u;
};

unit *unit_new(stage *st, job *j);
void unit_free(unit *u);

/* --- stages (stage.c) --- */

/* One (instance, operation) pair: its chain of throttles (the instance and
 * its fallbacks), its queue, its executor and its statistics. */
struct sl_stage {
    run *run;
    const sl_op *op;
    sl_instance *inst; /* NULL for read */
    sl_exec *ex;
    sl_throttle **chain;
    size_t nchain;
    int inflight;
    unit *qhead, *qtail;
    int queued;
    int pumping;
    uint64_t swept;  /* the run's sweeps when its queue was last swept */
    uv_timer_t wake; /* every chain member at its limit: when the first might not be */
    int wake_open;
    sl_stage_stats *stats;
    size_t stat_index;
    /* embedding: chunks waiting for a batch (batches.c) */
    chunk_ref *pend;
    size_t pend_head, pend_len, pend_cap;
    uv_timer_t flush;
    int flush_open, flush_on;
    size_t batch_size;
    uint64_t delay_ms;
};

/* Queues u on its stage and starts what the chain can take now. */
void stage_dispatch(unit *u);
/* Starts queued units while a chain member can take them. */
void stage_pump(stage *st);
/* Pumps every stage whose chain holds thr (a shared-limit grant arrived). */
void stage_pump_throttle(run *r, const sl_throttle *thr);
/* The executors' completion: accounts the time, retries or falls back on
 * a retryable failure, else hands the answer to the operation's done. */
void stage_complete(unit *u, int rc, uint64_t t_start, uint64_t busy_ns, int calls);
/* Fills the stage's live counters (in flight, queued) for the progress line and the report. */
void stage_refresh_stats(stage *st);
const char *stage_name(const stage *st);

/* --- jobs: a document's passage through its route (job.c) --- */

typedef enum job_state {
    JOB_NEW, /* admitted, no step entered yet */
    JOB_READ,
    JOB_LOOKUP,
    JOB_PARSE,
    JOB_PAGES,
    JOB_CHUNK,
    JOB_SUMMARIZE,
    JOB_SUMMARIZE_EMBED, /* both at once: the embedder does not read summaries */
    JOB_EMBED,
    JOB_STORE,
    JOB_STORED, /* the three ends */
    JOB_SKIPPED,
    JOB_FAILED
} job_state;

typedef struct route_plan {
    stage **steps;
    size_t n;
    int embed_summaries;
    /* the llm step and the embed step after it run as one step, at once:
     * the index of the llm step, or SIZE_MAX. When the embedder reads the
     * chunks' summaries (embed_summaries with chunk summaries) the step is
     * chained: each chunk goes to the embedder as its summary comes. */
    size_t joint;
    int chained;
} route_plan;

struct sl_job {
    run *run;
    sl_doc *doc;
    job_state state;
    size_t route;
    size_t step;      /* index into the route's plan */
    size_t accounted; /* bytes counted against the memory budget */
    size_t peak;      /* the most it held (accounted) so far */
    uint64_t raw;     /* the file's size at admission (at least JOB_MIN_RAW) */
    uint32_t parts;   /* units of the current step not yet done */
    int skip;         /* lookup said unchanged */
    int parked;       /* a dead letter: looked up (so prune keeps what is stored of it), then passed over */
    int failed;
    int abandoned; /* a unit of it passed its deadline: kept until the runtime is freed */
    char *fail_stage, *fail_reason;
    unit unit;        /* the step unit of document-wide operations */
    char **summaries; /* document summary in parts: each part's summary */
    uint32_t nsummaries, summaries_left;
    /* its chain: the service time of its steps one after another (the
     * longest part of each step; a summary in parts, its parts then their
     * combination), for the report's binding constraint */
    uint64_t chain_ns, step_busy_ns, sum_base_ns, sum_busy_ns;
    /* children (documents found inside this one): a child knows its parent,
     * which waits for it; a parent is stored, or ends, only after its last
     * child ended (job.c, "children") */
    job *parent;
    job *next_child;         /* in the run's queue of children waiting for admission */
    uint32_t children_left;  /* made and not yet ended */
    int children_incomplete; /* one failed or was never processed */
    int waiting;             /* 1: at its store step, 2: at its end, for children_left to reach 0 */
    job_state end_when_done; /* the end it waits to take (waiting == 2) */
    int no_route;            /* its content named a type no route takes: skipped, counted */
    int fetching;            /* a remote document being fetched (job.c): in flight before its route */
    int named;               /* named on the command line (for job_begin after the fetch) */
};

/* Starts as many documents as the limits allow. */
void job_admit(run *r);
/* Records the first failure of a job (later ones are consequences). */
void job_mark_failed(job *j, const stage *st, const char *reason);
/* The current step waits for n more parts. */
void job_parts_add(job *j, uint32_t n);
/* One part of the current step is done; after the last, the job moves on
 * (to the next step, or to its end). */
void job_part_done(job *j);
/* Whether a page unit of stage st has a next page stage in the route; sets *next. */
stage *job_next_page_stage(const job *j, const stage *st);
/* Every document in flight is charged this much beside what it holds
 * (its job, units, queue entries). */
#define JOB_OVERHEAD 16384
#define JOB_MIN_RAW 4096
/* The bytes held in flight now, and the peak and expansion it updates. */
uint64_t run_held(run *r);
/* Re-reads the bytes the document holds into the memory budget. */
void job_account(job *j);

/* --- the operations' scheduler side (named in ops.c's table) --- */

void op_start_doc(job *j, stage *st); /* job.c: one unit for the whole document */
void op_done_doc(unit *u, int rc, const char *msg);
void op_done_lookup(unit *u, int rc, const char *msg);
void op_start_chunk(job *j, stage *st);
void op_done_chunk(unit *u, int rc, const char *msg);
void op_done_read(unit *u, int rc, const char *msg);  /* believes the content's type, maybe another route */
void op_done_parse(unit *u, int rc, const char *msg); /* makes the children the parser found */
void op_start_pages(job *j, stage *st);               /* pages.c */
void op_done_page(unit *u, int rc, const char *msg);
void op_start_embed(job *j, stage *st); /* batches.c */
/* One chunk of j into the embedder's queue, its part already counted (a
 * chained step: its summary just came). */
void batches_add_chunk(job *j, stage *st, uint32_t chunk);
void op_done_embed(unit *u, int rc, const char *msg);
const char *op_prepare_embed(unit *u); /* on the executing thread, before and after the call */
void op_release_embed(unit *u);
void op_start_summaries(job *j, stage *st); /* summaries.c */
void op_done_summary(unit *u, int rc, const char *msg);
void op_done_prune(unit *u, int rc, const char *msg);  /* pipeline.c */
void op_done_settle(unit *u, int rc, const char *msg); /* pipeline.c */

/* batches.c: the flush timer's handler (stage setup arms it) */
void batches_flush_timer(uv_timer_t *t);
size_t batches_pending(const stage *st);

/* --- the run (pipeline.c) --- */

struct run {
    sl_runtime *rt;
    const sl_run_opts *opts;
    sl_report *rep;
    sl_loop *loop;
    stage **stages;
    size_t nstages;
    route_plan *plans;
    stage *read;
    sl_throttle **thr; /* [inst id], made for the instances a run uses */
    sl_throttle read_thr;
    /* executors (executor.c) */
    sl_exec ex_pool, ex_loop, ex_workers, ex_batcher;
    sl_pool *pool;
    sl_tstate *tstate;    /* [thread * ninst + inst id] */
    sl_workers *workers;  /* made when a stage is isolated */
    sl_batcher **batcher; /* [inst id]: one dispatcher per gpu page instance */
    uint64_t run_id;
    size_t max_docs;
    uint64_t budget;
    size_t docs_inflight;
    uint64_t bytes_inflight;         /* what documents in flight hold (job_account), plus... */
    sl_meter meter;                  /* ...what their HTTP bodies and batches hold */
    uint64_t raw_inflight;           /* their file sizes */
    double expand, expand_seen;      /* in flight over file bytes: assumed at admission, largest seen */
    uint64_t ended_peaks, ended_raw; /* stored documents: the most each held, and their file bytes */
    uint64_t peak_inflight;          /* the most held at once (the report's peak_inflight_bytes) */
    uint64_t chain_max_ns;           /* the longest chain of a stored document */
    uint64_t budget_wait_ns, budget_wait_since; /* admission held back by the budget */
    uint64_t done;
    uint64_t counted; /* candidates counted before the run (s3:// roots not listed: uncounted) */
    int uncounted;
    /* lookahead from the walker */
    sl_walk *walk;
    int have_next, walk_done, admitting;
    char *next_path, *next_error;
    uint64_t next_size;
    int next_named;
    /* files added while the run goes on (sl_pipeline_add): admitted after
     * the walk's lookahead, before the run may end */
    char **extra;
    size_t nextra, extra_next, extra_cap;
    int64_t *extra_job; /* sl_pipeline_add_job: [2i] id, [2i+1] token; 0: not a queue job */
    int64_t next_job[2];
    /* children made and not yet admitted (they go before new files), and
     * the jobs in flight that only wait for their children: admission does
     * not count them, so a parent never waits on a child it keeps out */
    job *child_head, *child_tail;
    size_t parents_waiting;
    int stopping, ending, ended;
    int prune_pending;
    /* the sinks' settle (their derived indexes catching up), after the
     * last document and prune: how many are out, and when they began */
    int settle_pending, settled;
    uint64_t settle_t0;
    uint64_t sweeps;  /* sweeps asked for (a job failed, a fatal error) */
    uv_timer_t sweep; /* after a job fails: pumps every queue, which drops its units */
    int sweep_open;
    /* an s3:// listing's page arrived (sl_walk_set_notify, from its fetching
     * thread): admission goes on. Referenced only while admission waits on
     * one, so that the loop does not end with the walk unfinished. */
    uv_async_t page;
    int page_open, page_waiting;
    char **roots;
    size_t nroots;
    uv_signal_t sigint, sigterm;
    uv_timer_t grace; /* after a signal: stop anyway when in-flight work outlasts shutdown_grace */
    int grace_open;
    uv_timer_t progress;
    int progress_on;
    uint64_t t0;
    /* pool calls in flight, checked each second against [sluice]
     * call_deadline; calls left running past it, and the threads that may
     * still be started to take their place (executor.c) */
    unit *pool_units;
    uv_timer_t *pool_watch; /* freed by its close callback: it may close after the loop's last turn */
    int pool_left, pool_spare;
};

/* Stops the run for a fatal error (the first one is reported). */
void run_fatal(run *r, const char *who, const char *msg);
/* On the next loop iteration, every queue drops the units no longer wanted
 * (their documents failed, or the run is stopping for a fatal error). */
void run_sweep(run *r);
/* Ends the run when nothing is left in flight (prunes first when asked,
 * then lets the sinks settle). */
void run_maybe_end(run *r);

/* plan.c: the run's stages and each route's steps */
int plan_run(run *r);
void plan_free(run *r);

#endif
