/* pipeline.c - one ingestion run (see pipeline.h).
 *
 * Everything here runs on the loop thread except the bodies of pool tasks
 * (unit_run), which touch only their unit and its document. Work is done in
 * units: a step of one document, one page of one document, or a batch of
 * chunks from many documents (embedding). A stage is one (instance,
 * operation) pair with its own in-flight limit, queue and statistics.
 */
#include "pipeline.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "batcher.h"
#include "document.h"
#include "loop.h"
#include "media.h"
#include "pool.h"
#include "throttle.h"
#include "walk.h"
#include "workers.h"

typedef enum op {
    OP_READ,
    OP_LOOKUP,
    OP_PARSE,
    OP_PAGE,
    OP_CHUNK,
    OP_SUMMARIZE,
    OP_EMBED,
    OP_STORE,
    OP_PRUNE
} op;

/* What an OP_SUMMARIZE unit asks for. */
enum { SUM_CHUNK, SUM_DOC, SUM_PART, SUM_COMBINE };
enum { EX_POOL, EX_LOOP, EX_WORKER, EX_BATCH };

typedef struct run run;
typedef struct job job;
typedef struct unit unit;

typedef struct ref {
    job *job;
    uint32_t chunk;
} ref;

typedef struct stage {
    run *run;
    op op;
    sl_instance *inst;   /* NULL for read */
    sl_throttle **chain; /* inst, then its fallbacks; one NULL-instance provider for read */
    size_t nchain;
    int exec;
    int inflight;
    uv_timer_t wake; /* when every provider is at its limit: the earliest one might not be */
    int wake_open, wake_on;
    unit *qhead, *qtail;
    int queued;
    size_t stat_index;
    sl_stage_stats *stats;
    /* embedding: chunks waiting for a batch */
    ref *pend;
    size_t pend_head, pend_len, pend_cap;
    uv_timer_t timer;
    int timer_open, timer_on;
    size_t batch_size;
    uint64_t delay_ms;
} stage;

struct unit {
    sl_task task; /* first: pool tasks are recovered from it */
    sl_call call;
    stage *st;
    sl_throttle *prov; /* who runs it this time */
    uint32_t avoid;    /* chain members that failed it since the last backoff */
    uint64_t estimate; /* tokens, for the rate limits */
    int kind;          /* OP_SUMMARIZE: SUM_* */
    uint32_t index;    /* OP_SUMMARIZE: chunk or part */
    char *prompt;
    size_t prompt_len;
    sl_completion answer;
    job *job; /* NULL for embedding batches and prune */
    uint32_t page;
    int chained; /* a page unit past the first page stage of its route */
    ref *refs;
    size_t nrefs;
    float *out;
    int solo; /* a batch split off a failed one: fail, don't split again */
    int rc;
    int attempts;
    unit *next;
    uint64_t t_ready, t_loop_start;
    int owned; /* freed when done (page units, batches, prune) */
};

typedef struct route_plan {
    stage **steps;
    size_t n;
    int embed_summaries;
} route_plan;

struct job {
    run *run;
    sl_doc *doc;
    size_t route;
    size_t step;
    size_t accounted;
    uint32_t pending; /* outstanding pages or chunks */
    int failed;
    char *fail_stage, *fail_reason;
    unit unit;
    unit *pages;
    char **parts; /* document summary in parts: the parts' summaries */
    uint32_t nparts, parts_left;
};

struct run {
    sl_runtime *rt;
    const sl_run_opts *opts;
    sl_report *rep;
    sl_loop *loop;
    sl_pool *pool;
    sl_workers *workers; /* made when a stage is isolated */
    sl_walk *walk;
    stage **stages;
    size_t nstages;
    route_plan *plans;
    stage *read;
    sl_throttle **prov;   /* [inst id], made for the instances a run uses */
    sl_batcher **batcher; /* [inst id]: one dispatcher per gpu page instance */
    sl_throttle read_prov;
    void **tstate; /* [thread * ninst + inst id] */
    unsigned char *tinit;
    uint64_t run_id;
    size_t max_docs;
    uint64_t budget;
    size_t docs_inflight;
    uint64_t bytes_inflight;
    uint64_t done;
    /* lookahead from the walker */
    int have_next, walk_done;
    char *next_path, *next_error;
    uint64_t next_size;
    int stopping, ending, ended;
    int prune_pending;
    char **roots;
    size_t nroots;
    uv_signal_t sigint, sigterm;
    uv_timer_t progress;
    int progress_on;
    uv_timer_t heartbeat; /* re-pumps every queue once a second: no unit can be forgotten */
    uint64_t t0;
};

static void dispatch(unit *u);
static void dispatch_step(job *j);
static void admit(run *r);
static void maybe_end(run *r);

static const char *exec_name(int e) {
    return e == EX_LOOP ? "loop" : e == EX_WORKER ? "workers" : e == EX_BATCH ? "batcher" : "pool";
}

/* --- per-thread plugin state --- */

static int thread_state(run *r, sl_instance *inst, int thread, void **out) {
    size_t slot = (size_t)thread * r->rt->ninst + (size_t)inst->id;
    if (!r->tinit[slot]) {
        r->tinit[slot] = 1;
        if (inst->desc->thread_init) {
            int rc = inst->desc->thread_init(inst->state, &r->tstate[slot]);
            if (rc) {
                r->tinit[slot] = 0;
                return rc < 0 ? rc : SL_EFATAL;
            }
        }
    }
    *out = r->tstate[slot];
    return 0;
}

static void thread_exit(void *arg, int thread) {
    run *r = arg;
    for (size_t i = 0; i < r->rt->ninst; i++) {
        size_t slot = (size_t)thread * r->rt->ninst + i;
        sl_instance *inst = r->rt->inst[i];
        if (r->tinit[slot] && inst->desc->thread_fini) inst->desc->thread_fini(inst->state, r->tstate[slot]);
    }
}

/* --- invoking plugins (any thread) --- */

/* The text embedded for a chunk: its own, or its summary and its text. */
static char *embed_text(const unit *u, size_t i, sl_text *t) {
    const sl_doc *doc = u->refs[i].job->doc;
    t->ptr = sl_chunk_text(doc, u->refs[i].chunk, &t->len);
    const char *sum = sl_chunk_summary(doc, u->refs[i].chunk);
    if (!sum || !u->st->run->plans[u->refs[i].job->route].embed_summaries) return NULL;
    size_t sl = strlen(sum);
    char *both = malloc(sl + 2 + t->len + 1);
    if (!both) return NULL;
    memcpy(both, sum, sl);
    memcpy(both + sl, "\n\n", 2);
    memcpy(both + sl + 2, t->ptr, t->len);
    both[sl + 2 + t->len] = '\0';
    t->ptr = both;
    t->len += sl + 2;
    return both;
}

static int invoke(unit *u) {
    stage *st = u->st;
    sl_instance *inst = u->prov->inst;
    const sl_plugin *d = inst ? inst->desc : NULL;
    sl_doc *doc = u->job ? u->job->doc : NULL;
    switch (st->op) {
    case OP_READ: {
        char err[512];
        int rc = sl_doc_load(doc, st->run->rt->set.max_file_size, err, sizeof err);
        return rc ? sl_fail(&u->call, rc, "%s", err) : 0;
    }
    case OP_LOOKUP: return d->lookup(&u->call, doc);
    case OP_PARSE: return d->parse(&u->call, doc);
    case OP_PAGE: return d->page(&u->call, doc, u->page);
    case OP_CHUNK: return d->chunk(&u->call, doc);
    case OP_SUMMARIZE: {
        sl_text prompt = {u->prompt, u->prompt_len};
        return d->complete(&u->call, &prompt, &u->answer);
    }
    case OP_STORE: return d->store(&u->call, doc);
    case OP_PRUNE:
        return d->prune(&u->call, (const char *const *)st->run->roots, st->run->nroots, st->run->run_id);
    case OP_EMBED: {
        sl_text *texts = malloc(u->nrefs * sizeof *texts);
        char **owned = calloc(u->nrefs, sizeof *owned);
        free(u->out); /* a retried batch allocated one already */
        u->out = malloc(u->nrefs * inst->dim * sizeof(float));
        if (!texts || !owned || !u->out) {
            free(texts);
            free(owned);
            return sl_fail(&u->call, SL_ENOMEM, "out of memory for a batch of %zu texts", u->nrefs);
        }
        for (size_t i = 0; i < u->nrefs; i++) owned[i] = embed_text(u, i, &texts[i]);
        int rc = d->embed(&u->call, texts, u->nrefs, u->out);
        /* an io embedder keeps `texts` until it completes: it must copy what
         * it sends (the HTTP body is built before it returns) */
        for (size_t i = 0; i < u->nrefs; i++) free(owned[i]);
        free(owned);
        free(texts);
        return rc;
    }
    }
    return SL_EINVAL;
}

static void unit_run(sl_task *t, int thread) {
    unit *u = (unit *)t;
    void *ts = NULL;
    sl_instance *inst = u->prov->inst;
    int rc = inst ? thread_state(u->st->run, inst, thread, &ts) : 0;
    sl_call_init(&u->call, inst, ts);
    if (rc) {
        u->rc = sl_fail(&u->call, rc, "thread_init failed (%s)", sl_strerror(rc));
        return;
    }
    u->rc = invoke(u);
    if (u->rc == SL_PENDING)
        u->rc = sl_fail(&u->call, SL_EFATAL, "a cpu plugin answered SL_PENDING (only io plugins may)");
    else if (u->rc > 0 && u->st->op != OP_LOOKUP && u->st->op != OP_PRUNE)
        u->rc = sl_fail(&u->call, SL_EFATAL, "plugin returned %d, not 0 or a negative SL_E* code", u->rc);
}

/* --- stage queues --- */

static void finish_unit(unit *u, int rc);

static void unit_pool_done(sl_task *t) {
    unit *u = (unit *)t;
    sl_stage_stats *s = u->st->stats;
    s->busy_ns += t->t_end - t->t_start;
    s->wait_ns += t->t_start > u->t_ready ? t->t_start - u->t_ready : 0;
    finish_unit(u, u->rc);
}

static void unit_loop_done(sl_call *call, int rc) {
    unit *u = call->udata;
    uint64_t now = sl_now_ns();
    u->st->stats->busy_ns += now - u->t_loop_start;
    finish_unit(u, rc);
}

/* The batcher's completion, on the loop thread. Busy and wait time come
 * from the batcher's own statistics at the end of the run. */
static void unit_batch_done(void *arg, int rc, const char *msg) {
    unit *u = arg;
    u->call.code = rc;
    if (rc && msg && *msg) snprintf(u->call.msg, sizeof u->call.msg, "%s", msg);
    finish_unit(u, rc);
}

static int priority(op o) {
    switch (o) {
    case OP_READ: return 1;
    case OP_LOOKUP: return 2;
    case OP_PARSE: return 3;
    case OP_PAGE: return 4;
    case OP_CHUNK: return 5;
    case OP_SUMMARIZE: return 6;
    case OP_EMBED: return 6;
    default: return 7;
    }
}

static void worker_done(void *arg, int rc, const char *msg) {
    unit *u = arg;
    u->st->stats->busy_ns += sl_now_ns() - u->t_loop_start;
    if (rc < 0 && msg && *msg) snprintf(u->call.msg, sizeof u->call.msg, "%s", msg);
    finish_unit(u, rc);
}

static void start(unit *u, sl_throttle *prov) {
    stage *st = u->st;
    u->prov = prov;
    sl_throttle_take(prov, sl_now_ns() / 1000000u, u->estimate);
    st->inflight++;
    if (st->exec == EX_BATCH) {
        sl_call_init(&u->call, prov->inst, NULL);
        int rc =
            sl_batcher_submit(st->run->batcher[prov->inst->id], u->job->doc, u->page, unit_batch_done, u);
        if (rc) finish_unit(u, sl_fail(&u->call, rc, "cannot queue page %u for the batcher", u->page));
        return;
    }
    if (st->exec == EX_WORKER) {
        u->t_loop_start = sl_now_ns();
        st->stats->wait_ns += u->t_loop_start - u->t_ready;
        sl_call_init(&u->call, prov->inst, NULL);
        sl_worker_op wop = st->op == OP_PARSE  ? SL_WORK_PARSE
                           : st->op == OP_PAGE ? SL_WORK_PAGE
                                               : SL_WORK_CHUNK;
        int rc = sl_workers_submit(st->run->workers, prov->inst, wop, u->job->doc, u->page, worker_done, u);
        if (rc) {
            sl_fail(&u->call, rc, "cannot hand the document to a worker process (%s)", sl_strerror(rc));
            finish_unit(u, rc);
        }
        return;
    }
    if (!prov->inst || prov->inst->desc->bottleneck != SL_IO) {
        /* A page that is further along its page stages goes first, so
         * each page's image is recognised (and dropped) soon after it is
         * rendered instead of every page waiting rendered at once. */
        u->task.priority = st->op == OP_PAGE && u->chained ? priority(OP_PAGE) + 1 : priority(st->op);
        u->task.run = unit_run;
        u->task.done = unit_pool_done;
        sl_pool_submit(st->run->pool, &u->task);
        return;
    }
    u->t_loop_start = sl_now_ns();
    st->stats->wait_ns += u->t_loop_start - u->t_ready;
    sl_call_init(&u->call, prov->inst, NULL);
    u->call.on_done = unit_loop_done;
    u->call.udata = u;
    int rc = invoke(u);
    if (rc != SL_PENDING && !u->call.done) {
        u->call.done = 1;
        unit_loop_done(&u->call, rc);
    }
}

/* The first provider of the chain that can take u now; else NULL and
 * *wait the milliseconds until one might (SL_THROTTLE_NEVER: only a
 * completion can free one). Providers that failed u are tried last. */
static sl_throttle *pick(stage *st, unit *u, uint64_t *wait) {
    uint64_t now = sl_now_ns() / 1000000u;
    *wait = SL_THROTTLE_NEVER;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < st->nchain; i++) {
            int avoided = i < 32 && (u->avoid >> i) & 1u;
            if (avoided != pass) continue;
            uint64_t w = sl_throttle_wait_ms(st->chain[i], now, u->estimate);
            if (w == 0) return st->chain[i];
            if (w < *wait) *wait = w;
        }
    }
    return NULL;
}

static void pump(stage *st);

static void wake_fire(uv_timer_t *t) {
    stage *st = t->data;
    st->wake_on = 0;
    pump(st);
}

static void pump(stage *st) {
    while (st->qhead) {
        uint64_t wait;
        sl_throttle *p = pick(st, st->qhead, &wait);
        if (!p) {
            if (wait != SL_THROTTLE_NEVER && st->wake_open) {
                uv_timer_stop(&st->wake);
                uv_timer_start(&st->wake, wake_fire, wait, 0);
                st->wake_on = 1;
            }
            return;
        }
        unit *u = st->qhead;
        st->qhead = u->next;
        if (!st->qhead) st->qtail = NULL;
        st->queued--;
        start(u, p);
    }
}

static void dispatch(unit *u) {
    stage *st = u->st;
    u->t_ready = sl_now_ns();
    u->next = NULL;
    if (st->qtail)
        st->qtail->next = u;
    else
        st->qhead = u;
    st->qtail = u;
    st->queued++;
    pump(st);
}

/* --- documents --- */

static void account(job *j) {
    size_t now = sl_doc_bytes(j->doc);
    j->run->bytes_inflight += now;
    j->run->bytes_inflight -= j->accounted;
    j->accounted = now;
}

typedef enum outcome { STORED, SKIPPED, FAILED } outcome;

static void finish_job(job *j, outcome o) {
    run *r = j->run;
    sl_report *rep = r->rep;
    if (o == STORED) {
        rep->stored++;
        rep->chunks += sl_doc_chunk_count(j->doc);
    } else if (o == SKIPPED) {
        rep->skipped++;
    } else {
        rep->failed++;
        sl_report_add_failure(rep, sl_doc_uri(j->doc), j->fail_stage ? j->fail_stage : "?",
                              j->fail_reason ? j->fail_reason : "unknown");
        sl_ctx_log(r->rt->ctx, SL_LOG_INFO, NULL, "%s failed in %s: %s", sl_doc_uri(j->doc), j->fail_stage,
                   j->fail_reason);
    }
    rep->bytes += j->doc->len;
    r->done++;
    r->docs_inflight--;
    r->bytes_inflight -= j->accounted;
    free(j->pages);
    for (uint32_t i = 0; i < j->nparts; i++) free(j->parts[i]);
    free(j->parts);
    free(j->fail_stage);
    free(j->fail_reason);
    sl_doc_free(j->doc);
    free(j);
    admit(r);
    maybe_end(r);
}

/* Records the first failure of a job (later ones are consequences). */
static void mark_failed(job *j, const char *stage_name, const char *reason) {
    if (j->failed) return;
    j->failed = 1;
    j->fail_stage = strdup(stage_name);
    j->fail_reason = strdup(reason && *reason ? reason : "failed without a message");
}

static const char *stage_name(const stage *st) { return st->stats->name; }

static void fail_job(job *j, const stage *st, const char *reason) {
    mark_failed(j, stage_name(st), reason);
    finish_job(j, FAILED);
}

static void advance(job *j) {
    route_plan *p = &j->run->plans[j->route];
    if (++j->step >= p->n) {
        finish_job(j, STORED);
        return;
    }
    dispatch_step(j);
}

/* One of a job's outstanding parts (pages, chunks in batches, summaries)
 * is done; after the last, the document goes on, or fails if any did. */
static void part_done(job *j) {
    if (--j->pending > 0) return;
    if (j->failed) {
        finish_job(j, FAILED);
        return;
    }
    account(j);
    advance(j);
}

static void fatal(run *r, const char *who, const char *msg) {
    if (!r->rep->fatal) {
        r->rep->fatal = 1;
        snprintf(r->rep->fatal_msg, sizeof r->rep->fatal_msg, "%s: %s", who, msg);
        sl_ctx_log(r->rt->ctx, SL_LOG_ERROR, who, "%s (stopping the run)", msg);
    }
    r->stopping = 1;
}

/* --- embedding batches --- */

/* Tokens a batch will cost, roughly: four characters a token. */
static uint64_t batch_estimate(const ref *refs, size_t n) {
    uint64_t chars = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        sl_chunk_text(refs[i].job->doc, refs[i].chunk, &len);
        chars += len;
    }
    return chars / 4 + 1;
}

static void send_batch(stage *st, size_t max) {
    unit *u = calloc(1, sizeof *u);
    ref *refs = u ? malloc(max * sizeof *refs) : NULL;
    if (!refs) {
        free(u);
        fatal(st->run, stage_name(st), "out of memory");
        return;
    }
    size_t n = 0;
    while (n < max && st->pend_head < st->pend_len) {
        ref rf = st->pend[st->pend_head++];
        if (rf.job->failed) {
            if (--rf.job->pending == 0) finish_job(rf.job, FAILED);
            continue;
        }
        refs[n++] = rf;
    }
    if (st->pend_head == st->pend_len) st->pend_head = st->pend_len = 0;
    if (n == 0) {
        free(refs);
        free(u);
        return;
    }
    u->st = st;
    u->refs = refs;
    u->nrefs = n;
    u->owned = 1;
    u->estimate = batch_estimate(refs, n);
    dispatch(u);
}

static size_t pend_count(const stage *st) { return st->pend_len - st->pend_head; }

static void flush_timer(uv_timer_t *t) {
    stage *st = t->data;
    st->timer_on = 0;
    while (pend_count(st)) send_batch(st, st->batch_size);
}

static void maybe_flush(stage *st) {
    while (pend_count(st) >= st->batch_size) send_batch(st, st->batch_size);
    if (pend_count(st) && !st->timer_on) {
        st->timer_on = 1;
        uv_timer_start(&st->timer, flush_timer, st->delay_ms, 0);
    }
}

static int enqueue_chunks(stage *st, job *j) {
    size_t n = sl_doc_chunk_count(j->doc);
    if (st->pend_len + n > st->pend_cap) {
        /* compact, then grow */
        if (st->pend) memmove(st->pend, st->pend + st->pend_head, pend_count(st) * sizeof *st->pend);
        st->pend_len -= st->pend_head;
        st->pend_head = 0;
        size_t cap = st->pend_cap ? st->pend_cap : 256;
        while (cap < st->pend_len + n) cap *= 2;
        ref *np = realloc(st->pend, cap * sizeof *np);
        if (!np) return SL_ENOMEM;
        st->pend = np;
        st->pend_cap = cap;
    }
    for (size_t i = 0; i < n; i++) st->pend[st->pend_len++] = (ref){j, (uint32_t)i};
    j->pending = (uint32_t)n;
    return 0;
}

/* Copies a successful batch's vectors into the documents and moves every
 * document whose chunks are all embedded on to the next step. */
static void batch_done(unit *u) {
    uint32_t dim = u->st->inst->dim;
    for (size_t i = 0; i < u->nrefs; i++) {
        job *j = u->refs[i].job;
        const float *v = u->out + i * dim;
        int finite = 1;
        for (uint32_t k = 0; k < dim && finite; k++) finite = isfinite(v[k]);
        if (!finite)
            mark_failed(j, stage_name(u->st), "the embedder returned a non-finite value (NaN or inf)");
        else if (!j->failed) {
            float *dst = sl_doc_chunk_vector(j->doc, u->refs[i].chunk, dim);
            if (dst)
                memcpy(dst, v, dim * sizeof *dst);
            else
                mark_failed(j, stage_name(u->st), "out of memory for vectors");
        }
        part_done(j);
    }
}

/* A batch failed for good. A batch mixes documents, so one bad document must
 * not fail its neighbours: split it into one batch per document and try
 * again; a batch of one document fails that document. */
static void batch_failed(unit *u, const char *reason) {
    int mixed = 0;
    for (size_t i = 1; i < u->nrefs && !mixed; i++) mixed = u->refs[i].job != u->refs[0].job;
    if (mixed && !u->solo) {
        for (size_t i = 0; i < u->nrefs;) {
            size_t k = i;
            while (k < u->nrefs && u->refs[k].job == u->refs[i].job) k++;
            unit *s = calloc(1, sizeof *s);
            ref *refs = s ? malloc((k - i) * sizeof *refs) : NULL;
            if (!refs) {
                free(s);
                for (size_t m = i; m < k; m++) {
                    job *j = u->refs[m].job;
                    mark_failed(j, stage_name(u->st), "out of memory");
                    if (--j->pending == 0) finish_job(j, FAILED);
                }
            } else {
                memcpy(refs, u->refs + i, (k - i) * sizeof *refs);
                s->st = u->st;
                s->refs = refs;
                s->nrefs = k - i;
                s->solo = 1;
                s->owned = 1;
                s->estimate = batch_estimate(refs, k - i);
                dispatch(s);
            }
            i = k;
        }
        return;
    }
    for (size_t i = 0; i < u->nrefs; i++) {
        job *j = u->refs[i].job;
        mark_failed(j, stage_name(u->st), reason);
        if (--j->pending == 0) finish_job(j, FAILED);
    }
}

/* --- completion --- */

static void retry_fire(uv_timer_t *t) {
    unit *u = t->data;
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
    dispatch(u);
}

static uint64_t backoff_ms(const run *r, int attempt, int64_t retry_after) {
    /* full jitter: uniform in [0, min(max, base * 2^attempt)] */
    uint64_t cap = (uint64_t)r->rt->set.retry_base_ms << (attempt < 20 ? attempt : 20);
    if (cap > (uint64_t)r->rt->set.retry_max_ms) cap = (uint64_t)r->rt->set.retry_max_ms;
    uint64_t d = cap ? (uint64_t)random() % (cap + 1) : 0;
    if (retry_after >= 0 && (uint64_t)retry_after > d) d = (uint64_t)retry_after;
    return d;
}

static void release_unit(unit *u) {
    if (!u->owned) return;
    free(u->refs);
    free(u->out);
    free(u);
}

static void prune_done(unit *u, int rc) {
    run *r = u->st->run;
    if (rc >= 0)
        r->rep->pruned += (uint64_t)rc;
    else
        fatal(r, stage_name(u->st), u->call.msg[0] ? u->call.msg : sl_strerror(rc));
    release_unit(u);
    if (--r->prune_pending == 0) maybe_end(r);
}

/* --- summaries --- */

/* A prompt template with {title} {source} {heading} {text} filled in. */
static char *fill_prompt(const char *tpl, const sl_doc *doc, const char *heading, const char *text,
                         size_t tlen, size_t *len) {
    const char *title = sl_doc_meta_get(doc, "title");
    struct {
        const char *key, *val;
        size_t vlen;
    } vars[] = {{"{title}", title ? title : "", 0},
                {"{source}", sl_doc_uri(doc), 0},
                {"{heading}", heading ? heading : "", 0},
                {"{text}", text, tlen}};
    for (size_t i = 0; i < 3; i++) vars[i].vlen = strlen(vars[i].val);
    size_t cap = strlen(tpl) + 1;
    for (const char *s = tpl; *s; s++)
        for (size_t i = 0; i < 4; i++)
            if (strncmp(s, vars[i].key, strlen(vars[i].key)) == 0) cap += vars[i].vlen;
    char *out = malloc(cap), *o = out;
    if (!out) return NULL;
    for (const char *s = tpl; *s;) {
        size_t i = 0;
        while (i < 4 && strncmp(s, vars[i].key, strlen(vars[i].key)) != 0) i++;
        if (i < 4) {
            memcpy(o, vars[i].val, vars[i].vlen);
            o += vars[i].vlen;
            s += strlen(vars[i].key);
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    *len = (size_t)(o - out);
    return out;
}

static void summary_unit(stage *st, job *j, int kind, uint32_t index, const char *tpl, const char *heading,
                         const char *text, size_t len) {
    unit *u = calloc(1, sizeof *u);
    if (u) u->prompt = fill_prompt(tpl, j->doc, heading, text, len, &u->prompt_len);
    if (!u || !u->prompt) {
        free(u);
        mark_failed(j, stage_name(st), "out of memory for a prompt");
        if (--j->pending == 0) finish_job(j, FAILED);
        return;
    }
    u->st = st;
    u->job = j;
    u->kind = kind;
    u->index = index;
    u->owned = 1;
    u->estimate = u->prompt_len / 4 + 1;
    dispatch(u);
}

/* The document's text for its summary: elements joined by blank lines. */
static char *document_text(const sl_doc *doc, size_t *len) {
    size_t n = sl_doc_element_count(doc), total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        sl_element_text(doc, i, &l);
        total += l + 2;
    }
    char *t = malloc(total + 1), *o = t;
    if (!t) return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const char *s = sl_element_text(doc, i, &l);
        memcpy(o, s, l);
        o += l;
        if (i + 1 < n) *o++ = '\n', *o++ = '\n';
    }
    *o = '\0';
    *len = (size_t)(o - t);
    return t;
}

/* Fans a document out into summary calls: one per chunk, and one for the
 * whole document, or one per part and then one over the parts' summaries
 * when it is longer than max_input_chars. */
static void start_summaries(stage *st, job *j) {
    const sl_stage_conf *c = &st->inst->stage;
    int chunks = strcmp(c->summaries, "chunks") == 0 || strcmp(c->summaries, "both") == 0;
    int whole = strcmp(c->summaries, "document") == 0 || strcmp(c->summaries, "both") == 0;
    size_t nchunks = chunks ? sl_doc_chunk_count(j->doc) : 0;
    size_t len = 0;
    char *text = whole ? document_text(j->doc, &len) : NULL;
    if (whole && !text) {
        fail_job(j, st, "out of memory for the document's text");
        return;
    }
    size_t max = c->max_input_chars > 0 ? (size_t)c->max_input_chars : SIZE_MAX;
    uint32_t nparts = 0;
    if (whole) nparts = len <= max ? 1 : (uint32_t)((len + max - 1) / max);
    j->pending = (uint32_t)nchunks + nparts + 1; /* +1 holds the job until all are out */
    if (nparts > 1) {
        j->parts = calloc(nparts, sizeof *j->parts);
        j->nparts = j->parts_left = j->parts ? nparts : 0;
        if (!j->parts) {
            free(text);
            j->pending = 1;
            mark_failed(j, stage_name(st), "out of memory");
            nparts = 0;
        }
    }
    for (size_t i = 0; i < nchunks; i++) {
        size_t cl;
        const char *ct = sl_chunk_text(j->doc, i, &cl);
        summary_unit(st, j, SUM_CHUNK, (uint32_t)i, c->chunk_prompt, sl_chunk_heading(j->doc, i), ct, cl);
    }
    if (nparts == 1) {
        summary_unit(st, j, SUM_DOC, 0, c->document_prompt, NULL, text, len);
    } else {
        /* parts end at a line break where one is near, else at a UTF-8 boundary */
        size_t off = 0;
        for (uint32_t i = 0; i < nparts && off < len; i++) {
            size_t end = off + max < len ? off + max : len;
            if (end < len) {
                size_t nl = end;
                while (nl > off + max / 2 && text[nl] != '\n') nl--;
                if (nl > off + max / 2) end = nl;
                while (end > off && ((unsigned char)text[end] & 0xC0) == 0x80) end--;
            }
            summary_unit(st, j, SUM_PART, i, c->document_prompt, NULL, text + off, end - off);
            off = end;
        }
    }
    free(text);
    part_done(j);
}

static void summary_done(unit *u, int rc, const char *msg) {
    job *j = u->job;
    stage *st = u->st;
    const char *text = u->answer.text ? u->answer.text : "";
    if (rc < 0) {
        mark_failed(j, stage_name(st), msg);
    } else if (!j->failed) {
        if (u->kind == SUM_CHUNK) {
            sl_chunk_set_summary(j->doc, u->index, text);
        } else if (u->kind == SUM_DOC || u->kind == SUM_COMBINE) {
            sl_doc_meta_set(j->doc, "summary", text);
        } else if (u->index < j->nparts) {
            j->parts[u->index] = strdup(text);
            if (--j->parts_left == 0) {
                /* every part is summarised: summarise the summaries */
                size_t total = 0;
                for (uint32_t i = 0; i < j->nparts; i++) total += (j->parts[i] ? strlen(j->parts[i]) : 0) + 2;
                char *all = malloc(total + 1), *o = all;
                for (uint32_t i = 0; all && i < j->nparts; i++) {
                    size_t l = j->parts[i] ? strlen(j->parts[i]) : 0;
                    if (l) memcpy(o, j->parts[i], l);
                    o += l;
                    *o++ = '\n', *o++ = '\n';
                }
                if (all) {
                    *o = '\0';
                    j->pending++;
                    summary_unit(st, j, SUM_COMBINE, 0, st->inst->stage.document_prompt, NULL, all,
                                 (size_t)(o - all));
                    free(all);
                } else {
                    mark_failed(j, stage_name(st), "out of memory");
                }
            }
        }
    }
    free(u->prompt);
    free(u->answer.text);
    release_unit(u);
    part_done(j);
}

/* A provider freed a slot: every stage that calls it may go on (a sink's
 * lookup, store and prune share one). */
static void pump_sharing(run *r, const sl_throttle *prov) {
    for (size_t i = 0; i < r->nstages; i++) {
        stage *s = r->stages[i];
        for (size_t k = 0; k < s->nchain; k++)
            if (s->chain[k] == prov) {
                pump(s);
                break;
            }
    }
}

/* A route's page stages run page by page: a page goes through all of them
 * in order while other pages are at other stages, and the document moves
 * on when its last page is through the last one. j->step stays on the
 * first page stage until then. */
static size_t last_page_step(const job *j) {
    const route_plan *p = &j->run->plans[j->route];
    size_t k = j->step;
    while (k + 1 < p->n && p->steps[k + 1]->op == OP_PAGE) k++;
    return k;
}

/* Sends a page unit that finished one page stage on to the route's next
 * one; 0 when that was the last. */
static int chain_page(unit *u) {
    job *j = u->job;
    const route_plan *p = &j->run->plans[j->route];
    size_t k = j->step;
    while (k < p->n && p->steps[k] != u->st) k++;
    if (k + 1 >= p->n || p->steps[k + 1]->op != OP_PAGE) return 0;
    u->st = p->steps[k + 1];
    u->chained = 1;
    u->prov = NULL;
    u->avoid = 0;
    u->attempts = 0;
    u->rc = 0;
    dispatch(u);
    return 1;
}

static void finish_unit(unit *u, int rc) {
    stage *st = u->st;
    run *r = st->run;
    st->inflight--;
    st->stats->calls++;
    st->stats->items += st->op == OP_EMBED ? u->nrefs : 1;
    const char *msg = u->call.msg[0] ? u->call.msg : sl_strerror(rc);
    sl_throttle *prov = u->prov;
    size_t pi = 0;
    while (pi < st->nchain && st->chain[pi] != prov) pi++;
    if (sl_throttle_done(prov, sl_now_ns() / 1000000u, rc, u->estimate,
                         u->call.tokens_in + u->call.tokens_out))
        sl_ctx_log(r->rt->ctx, SL_LOG_WARN, prov->inst ? prov->inst->name : "",
                   "%s; leaving it alone for %lld ms", msg,
                   (long long)(prov->inst ? prov->inst->stage.breaker_cooldown_ms : 0));
    if (prov->stats) {
        prov->stats->tokens_in += u->call.tokens_in;
        prov->stats->tokens_out += u->call.tokens_out;
        if (rc < 0) prov->stats->failures++;
    }

    if (rc == SL_ERETRY && u->attempts < r->rt->set.retries) {
        u->attempts++;
        st->stats->retries++;
        if (prov->stats) prov->stats->retries++;
        /* With fallbacks, another provider takes it at once; the failed one
         * is tried again only after a backoff. */
        if (pi < 32) u->avoid |= 1u << pi;
        int untried = 0;
        for (size_t i = 0; i < st->nchain && i < 32; i++) untried |= !((u->avoid >> i) & 1u);
        if (untried) {
            sl_ctx_log(r->rt->ctx, SL_LOG_INFO, stage_name(st), "retry %d on a fallback: %s", u->attempts,
                       msg);
            dispatch(u);
            pump_sharing(r, prov);
            return;
        }
        u->avoid = 0;
        uv_timer_t *t = malloc(sizeof *t);
        if (t) {
            uint64_t d = backoff_ms(r, u->attempts, u->call.retry_after_ms);
            sl_ctx_log(r->rt->ctx, SL_LOG_INFO, stage_name(st), "retry %d in %llu ms: %s", u->attempts,
                       (unsigned long long)d, msg);
            uv_timer_init(sl_loop_uv(r->loop), t);
            t->data = u;
            uv_timer_start(t, retry_fire, d, 0);
            pump_sharing(r, prov);
            return;
        }
    }
    if (rc < 0) {
        st->stats->failures++;
        if (rc == SL_EFATAL) fatal(r, stage_name(st), msg);
    }
    job *j = u->job;
    switch (st->op) {
    case OP_PRUNE: prune_done(u, rc); break;
    case OP_SUMMARIZE: summary_done(u, rc, msg); break;
    case OP_EMBED:
        if (rc < 0)
            batch_failed(u, msg);
        else
            batch_done(u);
        release_unit(u);
        break;
    case OP_PAGE:
        if (rc < 0) mark_failed(j, stage_name(st), msg);
        if (rc >= 0 && !j->failed && chain_page(u)) break;
        release_unit(u);
        if (j->pending == 1 && !j->failed) { /* the last page: the document goes on */
            j->step = last_page_step(j);
            sl_doc_sort_elements(j->doc);
        }
        part_done(j);
        break;
    default:
        if (rc < 0) {
            fail_job(j, st, msg);
            break;
        }
        account(j);
        if (st->op == OP_LOOKUP) {
            if (rc == SL_LOOKUP_UNCHANGED) {
                finish_job(j, SKIPPED);
                break;
            }
            if (rc != SL_LOOKUP_MISSING && rc != SL_LOOKUP_CHANGED) {
                char why[128];
                snprintf(why, sizeof why, "lookup answered %d, not an SL_LOOKUP_* value", rc);
                fail_job(j, st, why);
                break;
            }
        } else if (st->op == OP_CHUNK && sl_doc_chunk_count(j->doc) == 0) {
            fail_job(j, st, "the chunker made no chunks");
            break;
        }
        advance(j);
    }
    pump_sharing(r, prov);
}

static void dispatch_step(job *j) {
    run *r = j->run;
    stage *st = r->plans[j->route].steps[j->step];
    if (r->stopping && r->rep->fatal) {
        fail_job(j, st, "not processed: the run was stopped by a fatal error");
        return;
    }
    if (st->op == OP_PAGE) {
        uint32_t n = sl_doc_page_count(j->doc);
        if (n == 0) {
            advance(j);
            return;
        }
        free(j->pages);
        j->pages = NULL;
        j->pending = n;
        for (uint32_t p = 1; p <= n; p++) {
            unit *u = calloc(1, sizeof *u);
            if (!u) {
                mark_failed(j, stage_name(st), "out of memory");
                if (--j->pending == 0) finish_job(j, FAILED);
                continue;
            }
            u->st = st;
            u->job = j;
            u->page = p;
            u->owned = 1;
            dispatch(u);
        }
        return;
    }
    if (st->op == OP_CHUNK && sl_doc_element_count(j->doc) == 0) {
        fail_job(j, st, "no text: nothing was found to chunk");
        return;
    }
    if (st->op == OP_SUMMARIZE) {
        start_summaries(st, j);
        return;
    }
    if (st->op == OP_EMBED) {
        if (enqueue_chunks(st, j) != 0) {
            fail_job(j, st, "out of memory");
            return;
        }
        maybe_flush(st);
        return;
    }
    memset(&j->unit, 0, sizeof j->unit);
    j->unit.st = st;
    j->unit.job = j;
    dispatch(&j->unit);
}

static void start_job(run *r, const char *path, const char *error, uint64_t est) {
    job *j = calloc(1, sizeof *j);
    sl_doc *doc = j ? sl_doc_new(path, path) : NULL;
    if (!doc) {
        free(j);
        fatal(r, "read", "out of memory");
        return;
    }
    j->run = r;
    j->doc = doc;
    r->docs_inflight++;
    j->accounted = est; /* until the read step knows better */
    r->bytes_inflight += est;
    const char *media = sl_media_type_for_path(path);
    sl_doc_set_media_type(doc, media);
    sl_doc_set_run_id(doc, r->run_id);
    if (error) {
        fail_job(j, r->read, error);
        return;
    }
    const sl_route *route = sl_runtime_route_for(r->rt, media);
    if (!route) {
        char why[256];
        snprintf(why, sizeof why, "no route for media type %s (add it to a [route.*] section's media)",
                 media);
        fail_job(j, r->read, why);
        return;
    }
    j->route = (size_t)(route - r->rt->routes);
    sl_doc_set_fingerprint(doc, route->fingerprint);
    j->step = 0;
    dispatch_step(j);
}

static void admit(run *r) {
    while (!r->stopping && !r->walk_done) {
        if (!r->have_next) {
            sl_walk_entry e;
            if (sl_walk_next(r->walk, &e) != 1) {
                r->walk_done = 1;
                break;
            }
            free(r->next_path);
            free(r->next_error);
            r->next_path = strdup(e.path);
            r->next_error = e.error ? strdup(e.error) : NULL;
            r->next_size = e.size;
            r->have_next = 1;
        }
        /* mapped bytes plus what parsing, chunking and vectors add */
        uint64_t est = r->next_size * 3 + 16384;
        if (r->docs_inflight > 0 && (r->docs_inflight >= r->max_docs || r->bytes_inflight + est > r->budget))
            break;
        r->have_next = 0;
        start_job(r, r->next_path, r->next_error, est);
    }
}

/* --- start and end --- */

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
    uv_close((uv_handle_t *)&r->heartbeat, NULL);
    for (size_t i = 0; i < r->nstages; i++) {
        if (r->stages[i]->timer_open) {
            uv_close((uv_handle_t *)&r->stages[i]->timer, NULL);
            r->stages[i]->timer_open = 0;
        }
        if (r->stages[i]->wake_open) {
            uv_close((uv_handle_t *)&r->stages[i]->wake, NULL);
            r->stages[i]->wake_open = 0;
        }
    }
}

static void start_prune(run *r) {
    for (size_t i = 0; i < r->nstages; i++) {
        stage *st = r->stages[i];
        if (st->op != OP_PRUNE) continue;
        unit *u = calloc(1, sizeof *u);
        if (!u) {
            fatal(r, stage_name(st), "out of memory");
            continue;
        }
        u->st = st;
        u->owned = 1;
        r->prune_pending++;
        dispatch(u);
    }
}

static void maybe_end(run *r) {
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
    maybe_end(r);
}

static void progress_tick(uv_timer_t *t) {
    run *r = t->data;
    for (size_t i = 0; i < r->nstages; i++) {
        r->stages[i]->stats->inflight = r->stages[i]->inflight;
        stage *st = r->stages[i];
        st->stats->queued = st->queued + (int)pend_count(st);
        if (st->exec == EX_BATCH) st->stats->queued += (int)sl_batcher_queued(r->batcher[st->inst->id]);
    }
    sl_progress_draw(r->rep, (double)(sl_now_ns() - r->t0) / 1e9, r->done);
}

static void progress_clear_hook(void *arg) { sl_progress_clear(); }

/* Every wake-up that can free a slot pumps the queues that wait for it;
 * this once-a-second pass is the safety net that keeps a run live if a
 * plugin completes in an order nobody foresaw. */
static void heartbeat_tick(uv_timer_t *t) {
    run *r = t->data;
    for (size_t i = 0; i < r->nstages; i++) pump(r->stages[i]);
}

/* One provider per instance, shared by every stage that calls it (a sink's
 * lookup, store and prune), so its limits hold across them. */
static sl_throttle *provider_for(run *r, sl_instance *inst) {
    if (r->prov[inst->id]) return r->prov[inst->id];
    sl_throttle *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    int limit = inst->stage.max_concurrency > 0 ? (int)inst->stage.max_concurrency
                : inst->concurrency > 0         ? (int)inst->concurrency
                                                : (int)inst->desc->max_concurrency;
    sl_throttle_init(p, inst, limit, sl_now_ns() / 1000000u);
    if (inst->desc->bottleneck == SL_IO || inst->nfallbacks || inst->stage.rpm || inst->stage.tpm) {
        p->stats = sl_report_add_provider(r->rep, inst->name, inst->desc->name);
        if (p->stats) {
            p->stats->price_input = inst->stage.price_input;
            p->stats->price_output = inst->stage.price_output;
        }
    }
    r->prov[inst->id] = p;
    return p;
}

static stage *add_stage(run *r, op o, sl_instance *inst, const char *name) {
    stage *st = calloc(1, sizeof *st);
    stage **ns = st ? realloc(r->stages, (r->nstages + 1) * sizeof *ns) : NULL;
    if (!ns) {
        free(st);
        return NULL;
    }
    r->stages = ns;
    r->stages[r->nstages++] = st;
    st->run = r;
    st->op = o;
    st->inst = inst;
    st->exec = !inst                                                           ? EX_POOL
               : inst->desc->bottleneck == SL_IO                               ? EX_LOOP
               : inst->desc->bottleneck == SL_ISOLATED || inst->stage.isolated ? EX_WORKER
               : inst->desc->bottleneck == SL_GPU && o == OP_PAGE              ? EX_BATCH
                                                                               : EX_POOL;
    size_t nchain = inst ? 1 + inst->nfallbacks : 1;
    st->chain = calloc(nchain, sizeof *st->chain);
    if (!st->chain) return NULL;
    if (!inst) {
        st->chain[st->nchain++] = &r->read_prov;
    } else {
        st->chain[st->nchain++] = provider_for(r, inst);
        for (size_t i = 0; i < inst->nfallbacks; i++)
            st->chain[st->nchain++] = provider_for(r, inst->fallbacks[i]);
        for (size_t i = 0; i < st->nchain; i++)
            if (!st->chain[i]) return NULL;
    }
    if (inst) {
        st->batch_size = inst->stage.batch_size > 0   ? (size_t)inst->stage.batch_size
                         : inst->desc->batch_size > 0 ? inst->desc->batch_size
                                                      : 64;
        st->delay_ms = (uint64_t)(inst->stage.batch_delay_ms > 0 ? inst->stage.batch_delay_ms : 0);
    }
    sl_stage_stats *s = sl_report_add_stage(r->rep, name, inst ? inst->desc->name : "", exec_name(st->exec));
    if (!s) return NULL;
    st->stat_index = r->rep->nstages - 1;
    return st;
}

static stage *find_stage(run *r, op o, const sl_instance *inst) {
    for (size_t i = 0; i < r->nstages; i++)
        if (r->stages[i]->op == o && r->stages[i]->inst == inst) return r->stages[i];
    return NULL;
}

static stage *stage_for(run *r, op o, sl_instance *inst) {
    stage *st = find_stage(r, o, inst);
    if (st) return st;
    char name[256];
    if (o == OP_LOOKUP)
        snprintf(name, sizeof name, "%s.lookup", inst->name);
    else if (o == OP_PRUNE)
        snprintf(name, sizeof name, "%s.prune", inst->name);
    else
        snprintf(name, sizeof name, "%s", inst->name);
    return add_stage(r, o, inst, name);
}

static int plan(run *r) {
    sl_runtime *rt = r->rt;
    r->prov = calloc(rt->ninst ? rt->ninst : 1, sizeof *r->prov);
    if (!r->prov) return SL_ENOMEM;
    sl_throttle_init(&r->read_prov, NULL, 0, sl_now_ns() / 1000000u);
    r->read = add_stage(r, OP_READ, NULL, "read");
    r->plans = calloc(rt->nroutes, sizeof *r->plans);
    if (!r->read || !r->plans) return SL_ENOMEM;
    for (size_t i = 0; i < rt->nroutes; i++) {
        sl_route *rr = &rt->routes[i];
        route_plan *p = &r->plans[i];
        p->steps = calloc(7 + rr->npages, sizeof *p->steps);
        if (!p->steps) return SL_ENOMEM;
        p->steps[p->n++] = r->read;
        p->steps[p->n++] = stage_for(r, OP_LOOKUP, rr->sink);
        p->steps[p->n++] = stage_for(r, OP_PARSE, rr->parser);
        for (size_t k = 0; k < rr->npages; k++) p->steps[p->n++] = stage_for(r, OP_PAGE, rr->pages[k]);
        p->steps[p->n++] = stage_for(r, OP_CHUNK, rr->chunker);
        if (rr->llm) {
            p->steps[p->n++] = stage_for(r, OP_SUMMARIZE, rr->llm);
            p->embed_summaries = rr->llm->stage.embed_summaries;
        }
        if (rr->embedder) p->steps[p->n++] = stage_for(r, OP_EMBED, rr->embedder);
        p->steps[p->n++] = stage_for(r, OP_STORE, rr->sink);
        for (size_t k = 0; k < p->n; k++)
            if (!p->steps[k]) return SL_ENOMEM;
        if (r->opts->prune && !stage_for(r, OP_PRUNE, rr->sink)) return SL_ENOMEM;
    }
    /* the report's stage array is final now: point at it */
    for (size_t i = 0; i < r->nstages; i++) r->stages[i]->stats = &r->rep->stages[r->stages[i]->stat_index];
    return 0;
}

static size_t largest_batch(const run *r) {
    size_t b = 0;
    for (size_t i = 0; i < r->nstages; i++)
        if ((r->stages[i]->op == OP_EMBED || r->stages[i]->exec == EX_BATCH) && r->stages[i]->batch_size > b)
            b = r->stages[i]->batch_size;
    return b;
}

static void free_run(run *r) {
    for (size_t i = 0; i < r->nstages; i++) {
        free(r->stages[i]->pend);
        free(r->stages[i]->chain);
        free(r->stages[i]);
    }
    free(r->stages);
    for (size_t i = 0; r->plans && i < r->rt->nroutes; i++) free(r->plans[i].steps);
    free(r->plans);
    for (size_t i = 0; r->prov && i < r->rt->ninst; i++) free(r->prov[i]);
    free(r->prov);
    free(r->batcher);
    free(r->tstate);
    free(r->tinit);
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
    struct timeval tv;
    gettimeofday(&tv, NULL);
    r->run_id = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    srandom((unsigned)(r->run_id ^ (uint64_t)getpid()));
    rep->run_id = r->run_id;
    rep->threads = rt->threads;
    r->t0 = sl_now_ns();

    int rc = plan(r);
    if (rc) {
        free_run(r);
        return sl_ctx_error(rt->ctx, rc, "out of memory while planning the run");
    }
    r->roots = calloc(opts->npaths ? opts->npaths : 1, sizeof *r->roots);
    for (size_t i = 0; r->roots && i < opts->npaths; i++) {
        size_t l = strlen(opts->paths[i]);
        while (l > 1 && opts->paths[i][l - 1] == '/') l--;
        r->roots[r->nroots++] = strndup(opts->paths[i], l);
    }
    r->budget = rt->set.memory_budget;
    /* Waiting costs nothing on the loop: with io stages in the routes, as
     * many documents as the memory budget allows may wait at once. */
    int io = 0;
    for (size_t i = 0; i < r->nstages; i++)
        for (size_t k = 0; k < r->stages[i]->nchain; k++)
            io |= r->stages[i]->chain[k]->inst && r->stages[i]->chain[k]->inst->desc->bottleneck == SL_IO;
    r->max_docs = rt->set.max_documents > 0 ? (size_t)rt->set.max_documents
                  : io                      ? 100000
                                            : (size_t)rt->threads * 8 + largest_batch(r) + 16;
    r->tstate = calloc((size_t)rt->threads * (rt->ninst ? rt->ninst : 1), sizeof *r->tstate);
    r->tinit = calloc((size_t)rt->threads * (rt->ninst ? rt->ninst : 1), 1);
    rep->total = sl_walk_count(opts->paths, opts->npaths, rt->set.include, rt->set.exclude);
    r->loop = rt->loop;
    if (!r->tstate || !r->tinit ||
        sl_walk_new(opts->paths, opts->npaths, rt->set.include, rt->set.exclude, &r->walk)) {
        free_run(r);
        return sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory while starting the run");
    }
    if (sl_pool_new(r->loop, rt->threads, thread_exit, r, &r->pool)) {
        free_run(r);
        return sl_ctx_error(rt->ctx, SL_EFATAL, "cannot start %d pool threads", rt->threads);
    }
    int isolated = 0;
    for (size_t i = 0; i < r->nstages; i++) isolated |= r->stages[i]->exec == EX_WORKER;
    if (isolated) {
        sl_workers_opts wo = {.count = (int)rt->set.workers,
                              .memory_budget = rt->set.memory_budget,
                              .max_documents = (uint64_t)rt->set.worker_max_documents,
                              .max_rss = rt->set.worker_max_rss,
                              .memory_limit = rt->set.worker_memory_limit,
                              .timeout_ms = rt->set.worker_timeout_ms,
                              .seccomp = rt->set.worker_seccomp};
        if (sl_workers_new(rt->ctx, r->loop, &wo, &r->workers)) {
            sl_pool_free(r->pool);
            free_run(r);
            return SL_EFATAL; /* the context says why */
        }
        /* a worker takes one call at a time: more would only wait inside */
        for (size_t i = 0; i < r->nstages; i++)
            if (r->stages[i]->exec == EX_WORKER) {
                sl_throttle *pv = r->stages[i]->chain[0];
                int n = sl_workers_size(r->workers);
                if (pv->limit == 0 || pv->limit > n) pv->limit = n;
            }
    }
    r->batcher = calloc(rt->ninst ? rt->ninst : 1, sizeof *r->batcher);
    rc = r->batcher ? 0 : sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory while starting the run");
    for (size_t i = 0; rc == 0 && i < r->nstages; i++) {
        stage *st = r->stages[i];
        if (st->exec != EX_BATCH || r->batcher[st->inst->id]) continue;
        sl_batcher_opts bo;
        sl_batcher_opts_for(st->inst, &bo);
        if (sl_batcher_new(r->loop, st->inst, &bo, &r->batcher[st->inst->id]))
            rc = sl_ctx_error(rt->ctx, SL_EFATAL, "[%s] cannot start its batcher", st->inst->name);
    }
    if (rc) {
        for (size_t i = 0; r->batcher && i < rt->ninst; i++) sl_batcher_free(r->batcher[i]);
        sl_workers_free(r->workers);
        sl_pool_free(r->pool);
        free_run(r);
        return rc;
    }
    uv_loop_t *uv = sl_loop_uv(r->loop);
    for (size_t i = 0; i < r->nstages; i++) {
        stage *st = r->stages[i];
        uv_timer_init(uv, &st->wake);
        st->wake.data = st;
        st->wake_open = 1;
        if (st->op != OP_EMBED) continue;
        uv_timer_init(uv, &st->timer);
        st->timer.data = st;
        st->timer_open = 1;
    }
    uv_timer_init(uv, &r->heartbeat);
    r->heartbeat.data = r;
    uv_timer_start(&r->heartbeat, heartbeat_tick, 1000, 1000);
    uv_unref((uv_handle_t *)&r->heartbeat);
    uv_signal_init(uv, &r->sigint);
    uv_signal_init(uv, &r->sigterm);
    r->sigint.data = r->sigterm.data = r;
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
    if (opts->progress) {
        uv_timer_init(uv, &r->progress);
        r->progress.data = r;
        uv_timer_start(&r->progress, progress_tick, 200, 200);
        r->progress_on = 1;
        sl_ctx_set_log_hook(rt->ctx, progress_clear_hook, NULL, r);
    }

    admit(r);
    maybe_end(r);
    sl_loop_run(r->loop);
    sl_workers_free(r->workers); /* stops and reaps every worker: none is left behind */
    r->workers = NULL;
    sl_pool_free(r->pool); /* joins; thread_exit frees per-thread plugin state */
    for (size_t i = 0; i < r->nstages; i++) {
        stage *st = r->stages[i];
        if (st->exec != EX_BATCH) continue;
        sl_batcher_stats bs;
        sl_batcher_stats_get(r->batcher[st->inst->id], &bs);
        sl_stage_stats *s = st->stats;
        s->batched = 1;
        s->calls = bs.batches;
        s->busy_ns = bs.device_ns;
        s->wait_ns = bs.queue_wait_ns;
        s->batches = bs.batches;
        memcpy(s->batch_hist, bs.hist, sizeof s->batch_hist);
        s->splits = bs.splits;
        s->ceiling = bs.ceiling;
    }
    /* joins each dispatcher (running the plugin's thread_fini there) */
    for (size_t i = 0; i < rt->ninst; i++) sl_batcher_free(r->batcher[i]);
    sl_loop_drain(r->loop);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    rep->peak_rss = (uint64_t)ru.ru_maxrss * 1024u;
    rep->wall_s = (double)(sl_now_ns() - r->t0) / 1e9;
    /* the pre-count may differ if files came or went while we ran */
    rep->total = rep->stored + rep->skipped + rep->failed;
    free_run(r);
    return rep->fatal ? SL_EFATAL : 0;
}
