/* queue.c - a sluice node on a sink's job queue (see queue.h).
 *
 * A node is one pipeline run that does not end when it runs out of work
 * (sl_run_opts.hold): two timers on its loop feed it. The lease timer asks
 * the sink for up to [sluice] queue_lease_size jobs less what the node
 * holds, and each job enters the pipeline as a named path carrying its id
 * and fencing token (sl_pipeline_add_job); the heartbeat timer extends the
 * node's leases every third of [sluice] queue_lease. Every queue call is
 * asynchronous on the loop (sl_invoke_start), never blocking a document.
 *
 * A document's end (sl_run_opts.ended) settles its job: stored means the
 * sink acked it in the store's transaction; stored unchanged is acked here
 * (queue_done); failed is handed back with its reason (queue_fail: retried
 * after backoff, or dead at [sluice] max_attempts) - unless the failure is
 * the sink refusing a commit whose lease was lost, when the job is another
 * node's now and this one only says so in its log.
 *
 * `run --queue` ends when a lease finds nothing, the node holds nothing and
 * the queue has no queued or leased job left; `serve --queue` waits on,
 * polling every [sluice] queue_poll with jitter. A node that stops hands
 * back the leases it never started (queue_release).
 */
#include "queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "document.h"
#include "instance.h"
#include "loop.h"
#include "media.h"
#include "ops.h"
#include "pipeline.h"
#include "walk.h"

/* The one sink of the routes, which must keep a queue; NULL after an error. */
static sl_instance *queue_sink(sl_runtime *rt) {
    sl_instance *sink = NULL;
    for (size_t i = 0; i < rt->nroutes; i++) {
        if (sink && rt->routes[i].sink != sink) {
            sl_ctx_error(rt->ctx, SL_EFATAL,
                         "the routes store into more than one sink ('%s', '%s'): a queue lives in one store, "
                         "so queue mode needs every route to share one sink",
                         sink->name, rt->routes[i].sink->name);
            return NULL;
        }
        sink = rt->routes[i].sink;
    }
    if (!sink) {
        sl_ctx_error(rt->ctx, SL_EFATAL, "no route: nothing to store into");
        return NULL;
    }
    const sl_plugin *d = sink->desc;
    if (!d->queue_join || !d->queue_enqueue || !d->queue_lease || !d->queue_heartbeat || !d->queue_done ||
        !d->queue_fail || !d->queue_release || !d->queue_status) {
        sl_ctx_error(rt->ctx, SL_EFATAL,
                     "[%s] plugin %s keeps no job queue (it lacks the ABI 1.5 queue callbacks): use a sink "
                     "that does, such as sink-postgres",
                     sink->name, d->name);
        return NULL;
    }
    return sink;
}

/* --- enqueue --- */

#define ENQUEUE_BATCH 500

typedef struct enq {
    sl_queue_item items[ENQUEUE_BATCH];
    char *uris[ENQUEUE_BATCH];
    char hashes[ENQUEUE_BATCH][33];
    size_t n;
    sl_queue_counts counts;
} enq;

static int call_enqueue(sl_call *call, void *arg) {
    enq *e = arg;
    return call->inst->desc->queue_enqueue(call, e->items, e->n, &e->counts);
}

static int flush_batch(sl_runtime *rt, sl_instance *sink, enq *e) {
    if (e->n == 0) return 0;
    sl_call call;
    int rc = sl_invoke(sink, call_enqueue, e, &call);
    for (size_t i = 0; i < e->n; i++) free(e->uris[i]);
    e->n = 0;
    if (rc < 0)
        return sl_ctx_error(rt->ctx, rc, "[%s] %s", sink->name, call.msg[0] ? call.msg : sl_strerror(rc));
    return 0;
}

/* The core's content hash of a file (as the read step makes it), or "". */
static void file_hash(const char *path, uint64_t size, uint64_t max, char out[33]) {
    out[0] = '\0';
    if (max && size > max) return;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    char *buf = malloc(size ? size : 1);
    if (buf && fread(buf, 1, size, f) == size) sl_hash128_hex(buf, size, out);
    free(buf);
    fclose(f);
}

int sl_queue_enqueue(sl_runtime *rt, const char *const *paths, size_t npaths, int json, FILE *out) {
    sl_instance *sink = queue_sink(rt);
    if (!sink) return SL_EFATAL;
    if (!sink->initialized) {
        int rc = sl_instance_init(rt->ctx, sink);
        if (rc) return rc;
    }
    enq *e = calloc(1, sizeof *e);
    sl_walk *w = NULL;
    if (!e || sl_walk_new(paths, npaths, rt->set.include, rt->set.exclude, &w)) {
        free(e);
        return sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory");
    }
    uint64_t unreadable = 0, seen = 0;
    int rc = 0;
    sl_walk_entry we;
    while (!rc && sl_walk_next(w, &we) == 1) {
        if (we.outside) continue;
        if (we.error) { /* said now: a node could not read it either */
            sl_ctx_log(rt->ctx, SL_LOG_WARN, NULL, "%s: not enqueued: %s", we.path, we.error);
            unreadable++;
            continue;
        }
        if (!sl_utf8_valid(we.path, strlen(we.path), NULL)) {
            sl_ctx_log(rt->ctx, SL_LOG_WARN, NULL, "%s: not enqueued: the path is not valid UTF-8", we.path);
            unreadable++;
            continue;
        }
        seen++;
        size_t i = e->n;
        if (!(e->uris[i] = strdup(we.path))) {
            rc = sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory");
            break;
        }
        file_hash(we.path, we.size, rt->set.max_file_size, e->hashes[i]);
        const sl_route *route = sl_runtime_route_for(rt, sl_media_type_for_path(we.path));
        e->items[i] = (sl_queue_item){.uri = e->uris[i],
                                      .size = we.size,
                                      .hash = e->hashes[i][0] ? e->hashes[i] : NULL,
                                      .fingerprint = route ? route->fingerprint : NULL};
        e->n++;
        if (e->n == ENQUEUE_BATCH) rc = flush_batch(rt, sink, e);
    }
    if (!rc) rc = flush_batch(rt, sink, e);
    for (size_t i = 0; i < e->n; i++) free(e->uris[i]);
    sl_walk_free(w);
    if (!rc) {
        if (json) {
            json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I}", "documents", (json_int_t)seen, "enqueued",
                                  (json_int_t)e->counts.enqueued, "already_queued",
                                  (json_int_t)e->counts.already_queued, "unchanged",
                                  (json_int_t)e->counts.unchanged, "unreadable", (json_int_t)unreadable);
            if (o) json_dumpf(o, out, JSON_COMPACT);
            fputc('\n', out);
            json_decref(o);
        } else {
            fprintf(out, "%llu documents: %lld enqueued, %lld already queued, %lld stored unchanged",
                    (unsigned long long)seen, (long long)e->counts.enqueued,
                    (long long)e->counts.already_queued, (long long)e->counts.unchanged);
            if (unreadable) fprintf(out, ", %llu unreadable (not enqueued)", (unsigned long long)unreadable);
            fputc('\n', out);
        }
    }
    free(e);
    return rc;
}

/* --- the node --- */

typedef struct qjob {
    int64_t id, token;
    char *uri;
    int started; /* in the pipeline; else waiting for the same uri's older lease to end */
    struct qjob *next;
} qjob;

typedef struct node {
    sl_runtime *rt;
    sl_instance *sink;
    char id[160]; /* host:pid:start */
    struct run *live;
    uv_timer_t lease_t, beat_t;
    int timers_open, closing, serve, drained;
    int lease_busy, beat_busy, status_busy, wait_busy;
    qjob *jobs;
    size_t held;
    uint32_t lease_size;
    int64_t lease_ms, poll_ms;
    uint64_t leased, acked, refused, failed;
} node;

/* One asynchronous queue call; freed when answered. */
typedef struct qcall {
    sl_call call; /* first: the answer's sl_call is this */
    node *n;
    int64_t id, token;
    char *stage, *reason;
    uint32_t max;
    sl_queue_stats stats;
} qcall;

static void qcall_free(qcall *q) {
    free(q->stage);
    free(q->reason);
    free(q);
}

/* Starts fn on the sink; done(q, rc) runs once with the answer. */
static void qcall_start(node *n, qcall *q, sl_invoke_fn fn, void (*done)(sl_call *, int)) {
    q->n = n;
    int rc = sl_invoke_start(n->sink, NULL, fn, q, &q->call, done, q);
    if (rc != SL_PENDING) done(&q->call, rc);
}

static void lease_tick(uv_timer_t *t);

/* The next lease in about ms, with +-25 % jitter so idle nodes spread out. */
static void lease_in(node *n, uint64_t ms) {
    if (n->closing || !n->timers_open) return;
    if (ms > 4) ms = ms * 3 / 4 + (uint64_t)random() % (ms / 2 + 1);
    uv_timer_stop(&n->lease_t);
    uv_timer_start(&n->lease_t, lease_tick, ms, 0);
}

static qjob *find_uri_started(node *n, const char *uri) {
    for (qjob *j = n->jobs; j; j = j->next)
        if (j->started && strcmp(j->uri, uri) == 0) return j;
    return NULL;
}

/* Jobs not yet in the pipeline go in, unless their uri is there already
 * (an older lease of ours still running: it ends first). A job may end
 * inside sl_pipeline_add_job (a file gone: on_ended frees it), so the list
 * is walked again from its head after each. */
static void dispatch(node *n) {
    for (;;) {
        qjob *j = n->jobs;
        while (j && (j->started || find_uri_started(n, j->uri))) j = j->next;
        if (!j) return;
        int64_t id = j->id;
        j->started = 1;
        if (sl_pipeline_add_job(n->live, j->uri, j->id, j->token)) continue;
        for (j = n->jobs; j; j = j->next) /* the run is ending: released after it */
            if (j->id == id) j->started = 0;
        return;
    }
}

static void on_job(void *arg, const sl_queue_job *job) {
    node *n = arg;
    qjob *j = calloc(1, sizeof *j);
    if (!j || !(j->uri = strdup(job->uri))) {
        free(j);
        return; /* not ours in memory: its lease runs out and another node takes it */
    }
    j->id = job->id;
    j->token = job->token;
    j->next = n->jobs;
    n->jobs = j;
    n->held++;
    n->leased++;
}

static int call_lease(sl_call *call, void *arg) {
    qcall *q = arg;
    return call->inst->desc->queue_lease(call, q->n->id, q->max, q->n->lease_ms, on_job, q->n);
}

static int call_wait(sl_call *call, void *arg) {
    qcall *q = arg;
    return call->inst->desc->queue_wait(call, (int64_t)q->max);
}

static void wait_done(sl_call *call, int rc) {
    qcall *q = (qcall *)call;
    node *n = q->n;
    n->wait_busy = 0;
    if (rc > 0) sl_ctx_log(n->rt->ctx, SL_LOG_DEBUG, "queue", "woken: jobs were enqueued");
    qcall_free(q);
    lease_in(n, 0);
}

/* Nothing to lease now: wait for enqueue's NOTIFY (queue_wait) or the poll
 * interval, with jitter, whichever comes first. */
static void idle(node *n) {
    if (n->closing) return;
    uint64_t ms = (uint64_t)n->poll_ms;
    ms = ms * 3 / 4 + (uint64_t)random() % (ms / 2 + 1);
    if (!n->sink->desc->queue_wait || n->wait_busy) {
        lease_in(n, ms);
        return;
    }
    qcall *q = calloc(1, sizeof *q);
    if (!q) {
        lease_in(n, ms);
        return;
    }
    q->max = (uint32_t)ms;
    n->wait_busy = 1;
    qcall_start(n, q, call_wait, wait_done);
}

static int call_status(sl_call *call, void *arg) {
    qcall *q = arg;
    return call->inst->desc->queue_status(call, &q->stats, NULL, NULL);
}

static void status_done(sl_call *call, int rc) {
    qcall *q = (qcall *)call;
    node *n = q->n;
    n->status_busy = 0;
    if (rc >= 0 && q->stats.queued == 0 && q->stats.leased == 0 && n->held == 0 && !n->serve) {
        n->drained = 1;
        sl_ctx_log(n->rt->ctx, SL_LOG_INFO, "queue", "the queue is empty: this node (%s) is done", n->id);
        sl_pipeline_poke(n->live);
    } else {
        if (rc < 0)
            sl_ctx_log(n->rt->ctx, SL_LOG_WARN, "queue", "cannot read the queue's counts: %s", call->msg);
        idle(n);
    }
    qcall_free(q);
}

static void lease_done(sl_call *call, int rc) {
    qcall *q = (qcall *)call;
    node *n = q->n;
    n->lease_busy = 0;
    if (rc < 0) {
        sl_ctx_log(n->rt->ctx, SL_LOG_WARN, "queue", "leasing jobs failed (trying again): %s", call->msg);
        lease_in(n, (uint64_t)n->poll_ms);
    } else if (rc > 0) {
        dispatch(n);
        if (n->held < n->lease_size) lease_in(n, 0);
    } else if (n->held == 0 && !n->serve && !n->status_busy && !n->closing) {
        /* nothing due: done when nothing is queued or leased anywhere */
        qcall *s = calloc(1, sizeof *s);
        if (s) {
            n->status_busy = 1;
            memset(&s->stats, 0xff, sizeof s->stats);
            qcall_start(n, s, call_status, status_done);
        } else {
            lease_in(n, (uint64_t)n->poll_ms);
        }
    } else {
        idle(n);
    }
    qcall_free(q);
}

static void lease_tick(uv_timer_t *t) {
    node *n = t->data;
    if (n->closing || n->lease_busy || n->held >= n->lease_size) return; /* an ending asks again */
    qcall *q = calloc(1, sizeof *q);
    if (!q) {
        lease_in(n, (uint64_t)n->poll_ms);
        return;
    }
    q->max = n->lease_size - (uint32_t)n->held;
    n->lease_busy = 1;
    qcall_start(n, q, call_lease, lease_done);
}

static int call_beat(sl_call *call, void *arg) {
    qcall *q = arg;
    return call->inst->desc->queue_heartbeat(call, q->n->id, q->n->lease_ms);
}

static void beat_done(sl_call *call, int rc) {
    qcall *q = (qcall *)call;
    q->n->beat_busy = 0;
    if (rc < 0)
        sl_ctx_log(q->n->rt->ctx, SL_LOG_WARN, "queue", "heartbeat failed (its leases may run out): %s",
                   call->msg);
    qcall_free(q);
}

static void beat_tick(uv_timer_t *t) {
    node *n = t->data;
    if (n->closing || n->beat_busy || n->held == 0) return;
    qcall *q = calloc(1, sizeof *q);
    if (!q) return;
    n->beat_busy = 1;
    qcall_start(n, q, call_beat, beat_done);
}

static int call_done(sl_call *call, void *arg) {
    qcall *q = arg;
    return call->inst->desc->queue_done(call, q->id, q->token);
}

static int call_fail(sl_call *call, void *arg) {
    qcall *q = arg;
    node *n = q->n;
    int64_t max = n->rt->set.max_attempts;
    return call->inst->desc->queue_fail(call, q->id, q->token, q->stage, q->reason,
                                        (uint32_t)(max > 0 ? max : 0), n->rt->set.queue_backoff_ms);
}

static void settled(sl_call *call, int rc) {
    qcall *q = (qcall *)call;
    if (rc < 0)
        sl_ctx_log(q->n->rt->ctx, SL_LOG_WARN, "queue",
                   "job %lld: cannot hand it back (%s); its lease runs out and it is leased again",
                   (long long)q->id, call->msg);
    qcall_free(q);
}

/* A document given by path ended (pipeline.h: ended). */
static void on_ended(void *arg, const sl_doc *doc, int outcome, const char *stage, const char *reason) {
    node *n = arg;
    int64_t id = 0, token = 0;
    if (!sl_doc_queue_job(doc, &id, &token)) return;
    qjob **pp = &n->jobs;
    while (*pp && !((*pp)->id == id && (*pp)->token == token)) pp = &(*pp)->next;
    if (*pp) {
        qjob *j = *pp;
        *pp = j->next;
        free(j->uri);
        free(j);
        n->held--;
    }
    if (outcome > 0) {
        n->acked++;
    } else if (outcome < 0 && reason && strstr(reason, "lease lost")) {
        n->refused++;
        sl_ctx_log(n->rt->ctx, SL_LOG_WARN, "queue", "%s: %s", sl_doc_uri(doc), reason);
    } else {
        qcall *q = calloc(1, sizeof *q);
        if (q) {
            q->id = id;
            q->token = token;
            if (outcome < 0) {
                n->failed++;
                q->stage = strdup(stage ? stage : "?");
                q->reason = strdup(reason ? reason : "failed without a message");
            }
            if (outcome < 0 && (!q->stage || !q->reason)) {
                qcall_free(q);
            } else {
                qcall_start(n, q, outcome < 0 ? call_fail : call_done, settled);
            }
        }
    }
    dispatch(n);
    if (!n->lease_busy && n->held <= n->lease_size / 2) lease_in(n, 0);
}

static int on_hold(void *arg) {
    const node *n = arg;
    return n->serve || !n->drained;
}

static int call_unwait(sl_call *call, void *arg) { return call->inst->desc->queue_wait(call, -1); }

static void on_closing(void *arg) {
    node *n = arg;
    int was = n->closing;
    n->closing = 1;
    if (!was && n->wait_busy) { /* its answer would keep the loop up to a poll interval */
        sl_call call;
        sl_invoke_start(n->sink, NULL, call_unwait, NULL, &call, NULL, NULL);
    }
    if (n->timers_open) {
        uv_timer_stop(&n->lease_t);
        uv_timer_stop(&n->beat_t);
        uv_close((uv_handle_t *)&n->lease_t, NULL);
        uv_close((uv_handle_t *)&n->beat_t, NULL);
        n->timers_open = 0;
    }
}

typedef struct join_arg {
    const char *node;
} join_arg;
static int call_join(sl_call *call, void *arg) {
    return call->inst->desc->queue_join(call, ((join_arg *)arg)->node);
}
static int call_release(sl_call *call, void *arg) {
    return call->inst->desc->queue_release(call, ((join_arg *)arg)->node);
}

int sl_queue_run_node(sl_runtime *rt, int serve, sl_report *rep, int *busy) {
    *busy = 0;
    sl_instance *sink = queue_sink(rt);
    if (!sink) return SL_EFATAL;
    node *n = calloc(1, sizeof *n);
    if (!n) return sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory");
    n->rt = rt;
    n->sink = sink;
    n->serve = serve;
    int64_t ls = rt->set.queue_lease_size;
    n->lease_size = (uint32_t)(ls < 1 ? 1 : ls > 10000 ? 10000 : ls);
    n->lease_ms = rt->set.queue_lease_ms < 1000 ? 1000 : rt->set.queue_lease_ms;
    n->poll_ms = rt->set.queue_poll_ms < 10 ? 10 : rt->set.queue_poll_ms;
    char host[64] = "";
    if (gethostname(host, sizeof host) != 0 || !host[0]) snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    snprintf(n->id, sizeof n->id, "%s:%ld:%lld", host, (long)getpid(), (long long)time(NULL));

    /* the shared claim: nodes together, never beside a plain writer */
    join_arg ja = {.node = n->id};
    for (int tries = 0;; tries++) {
        sl_call call;
        int rc = sl_invoke(sink, call_join, &ja, &call);
        if (!rc) break;
        if (rc != SL_ERETRY || !rt->claim_wait) {
            *busy = rc == SL_ERETRY;
            free(n);
            return sl_ctx_error(rt->ctx, SL_EFATAL, "[%s] %s", sink->name,
                                call.msg[0] ? call.msg : sl_strerror(rc));
        }
        if (!tries) sl_ctx_log(rt->ctx, SL_LOG_WARN, sink->name, "waiting (--wait): %s", call.msg);
        struct timespec ts = {0, 500 * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    sl_ctx_log(rt->ctx, SL_LOG_INFO, "queue", "node %s: leases of %u jobs for %lld ms", n->id, n->lease_size,
               (long long)n->lease_ms);

    uv_loop_t *uv = sl_loop_uv(rt->loop);
    uv_timer_init(uv, &n->lease_t);
    uv_timer_init(uv, &n->beat_t);
    n->lease_t.data = n->beat_t.data = n;
    n->timers_open = 1;
    uv_timer_start(&n->lease_t, lease_tick, 0, 0);
    uint64_t beat = (uint64_t)n->lease_ms / 3;
    uv_timer_start(&n->beat_t, beat_tick, beat, beat);

    sl_run_opts opts = {
        .live = &n->live, .hold = on_hold, .ended = on_ended, .closing = on_closing, .queue_arg = n};
    int rc = sl_pipeline_run(rt, &opts, rep);
    on_closing(n);         /* a run that could not start never called it */
    sl_loop_run(rt->loop); /* the timers' closes, before n goes */

    /* what was leased and never started goes back to the queue now, not at expiry */
    if (n->held) {
        sl_call call;
        int r2 = sl_invoke(sink, call_release, &ja, &call);
        if (r2 < 0)
            sl_ctx_log(rt->ctx, SL_LOG_WARN, "queue", "cannot hand back %zu leases (they expire): %s",
                       n->held, call.msg);
    }
    sl_ctx_log(
        rt->ctx, SL_LOG_INFO, "queue",
        "node %s: %llu jobs leased, %llu stored and acked, %llu failed, %llu commits refused (lease lost)",
        n->id, (unsigned long long)n->leased, (unsigned long long)n->acked, (unsigned long long)n->failed,
        (unsigned long long)n->refused);
    while (n->jobs) {
        qjob *j = n->jobs;
        n->jobs = j->next;
        free(j->uri);
        free(j);
    }
    free(n);
    return rc;
}

/* --- status --- */

typedef struct status_arg {
    json_t *nodes;
    FILE *out;
    int json;
} status_arg;

static void each_node(void *arg, const sl_queue_node *nd) {
    status_arg *a = arg;
    if (a->json) {
        json_array_append_new(
            a->nodes, json_pack("{s:s, s:I, s:I, s:I}", "node", nd->node, "leases", (json_int_t)nd->leases,
                                "acked_1m", (json_int_t)nd->acked_1m, "acked_5m", (json_int_t)nd->acked_5m));
    } else {
        fprintf(a->out, "  %-40s %6lld leases %8lld acked/min %8.1f acked/min over 5 min\n", nd->node,
                (long long)nd->leases, (long long)nd->acked_1m, (double)nd->acked_5m / 5.0);
    }
}

typedef struct status_call {
    sl_queue_stats *st;
    status_arg *a;
} status_call;
static int call_status_print(sl_call *call, void *arg) {
    status_call *s = arg;
    return call->inst->desc->queue_status(call, s->st, each_node, s->a);
}

int sl_queue_status(sl_runtime *rt, int json, FILE *out) {
    sl_instance *sink = queue_sink(rt);
    if (!sink) return SL_EFATAL;
    if (!sink->initialized) {
        int rc = sl_instance_init(rt->ctx, sink);
        if (rc) return rc;
    }
    sl_queue_stats st;
    memset(&st, 0xff, sizeof st);
    status_arg a = {.nodes = json ? json_array() : NULL, .out = out, .json = json};
    if (!json) fprintf(out, "nodes (leases held now, acks in the last minute and 5 minutes):\n");
    status_call sc = {.st = &st, .a = &a};
    sl_call call;
    int rc = sl_invoke(sink, call_status_print, &sc, &call);
    if (rc < 0) {
        json_decref(a.nodes);
        return sl_ctx_error(rt->ctx, rc, "[%s] %s", sink->name, call.msg[0] ? call.msg : sl_strerror(rc));
    }
    if (json) {
        json_t *o =
            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "queued", (json_int_t)st.queued, "leased",
                      (json_int_t)st.leased, "done", (json_int_t)st.done, "dead", (json_int_t)st.dead,
                      "dead_letters", (json_int_t)st.dead, "oldest_queued_s", (json_int_t)st.oldest_queued_s,
                      "backing_off", (json_int_t)st.backing_off, "nodes", a.nodes);
        if (o) json_dumpf(o, out, JSON_COMPACT);
        fputc('\n', out);
        json_decref(o);
    } else {
        fprintf(
            out,
            "jobs: %lld queued (%lld waiting after a failure), %lld leased, %lld done, %lld dead letters\n",
            (long long)st.queued, (long long)st.backing_off, (long long)st.leased, (long long)st.done,
            (long long)st.dead);
        if (st.oldest_queued_s >= 0)
            fprintf(out, "oldest queued job: %lld s\n", (long long)st.oldest_queued_s);
        else
            fprintf(out, "oldest queued job: none queued\n");
    }
    return 0;
}
