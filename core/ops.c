/* ops.c - the operation and role tables, and the one place that calls a
 * plugin (see ops.h). */
#include "ops.h"

#include <stdlib.h>
#include <string.h>

#include "document.h"
#include "loop.h"
#include "media.h"
#include "scheduler.h"
#include "guard.h"

/* --- how each operation is invoked --- */

/* Reads the file (a child's bytes are there already) and looks at its
 * first bytes where they may not be what the name says (media.h); the loop
 * thread then believes them (job.c, op_done_read). */
static int do_read(sl_call *call, const sl_plugin *d, const sl_op_args *a) {
    sl_doc *doc = a->doc;
    if (doc->path) {
        char err[512];
        int rc = sl_doc_load(doc, a->max_file_size, err, sizeof err);
        if (rc) return sl_fail(call, rc, "%s", err);
    } else if (doc->len > a->max_file_size) {
        return sl_fail(call, SL_EBADINPUT, "%zu bytes, larger than max_file_size (%llu bytes)", doc->len,
                       (unsigned long long)a->max_file_size);
    }
    const char *content;
    doc->believed = sl_media_believe(doc->media_type, doc->data, doc->len, &content);
    doc->detected = content;
    return 0;
}
static int do_lookup(sl_call *call, const sl_plugin *d, const sl_op_args *a) {
    return d->lookup(call, a->doc);
}
static int do_parse(sl_call *call, const sl_plugin *d, const sl_op_args *a) {
    /* a retried parse starts its children again */
    sl_doc *doc = a->doc;
    doc->nchildren = 0;
    doc->child_bytes = 0;
    free(doc->child_refusal);
    doc->child_refusal = NULL;
    return d->parse(call, doc);
}
static int do_page(sl_call *call, const sl_plugin *d, const sl_op_args *a) {
    if (a->docs) return d->pages(call, a->docs, a->pages, a->n);
    return d->page(call, a->doc, a->page);
}
static int do_chunk(sl_call *call, const sl_plugin *d, const sl_op_args *a) { return d->chunk(call, a->doc); }
static int do_summarize(sl_call *call, const sl_plugin *d, const sl_op_args *a) {
    a->answer->bad = 0; /* a retry's answer is judged on its own */
    return d->complete(call, a->prompt, a->answer);
}
/* an io embedder keeps `texts` only until it returns: it must copy what it
 * sends (the HTTP body is built before it returns) */
static int do_embed(sl_call *call, const sl_plugin *d, const sl_op_args *a) {
    return d->embed(call, a->texts, a->n, a->vectors);
}
static int do_store(sl_call *call, const sl_plugin *d, const sl_op_args *a) { return d->store(call, a->doc); }
static int do_prune(sl_call *call, const sl_plugin *d, const sl_op_args *a) {
    return d->prune(call, a->roots, a->nroots, a->run_id);
}
static int do_settle(sl_call *call, const sl_plugin *d, const sl_op_args *a) {
    (void)a;
    return d->settle(call);
}

/* Priorities: a document that is further along goes first, so documents in
 * flight finish before new ones start and memory stays flat. */
#define DOC_OPS(start, done) start, done, NULL, NULL
static const sl_op ops[SL_OP_COUNT] = {
    /* id, name, role, stage suffix, unit, priority, isolatable, batchable, answers a count, invoke,
     * scheduler: start, done, prepare, release */
    [SL_OP_READ] = {SL_OP_READ, "read", 0, "", SL_UNIT_DOC, 1, false, false, false, do_read,
                    DOC_OPS(op_start_doc, op_done_read)},
    [SL_OP_LOOKUP] = {SL_OP_LOOKUP, "lookup", SL_ROLE_SINK, ".lookup", SL_UNIT_DOC, 2, false, false, true,
                      do_lookup, DOC_OPS(op_start_doc, op_done_lookup)},
    [SL_OP_PARSE] = {SL_OP_PARSE, "parse", SL_ROLE_PARSER, "", SL_UNIT_DOC, 3, true, false, false, do_parse,
                     DOC_OPS(op_start_doc, op_done_parse)},
    [SL_OP_PAGE] = {SL_OP_PAGE, "page", SL_ROLE_PAGE, "", SL_UNIT_PAGE, 4, true, true, false, do_page,
                    DOC_OPS(op_start_pages, op_done_page)},
    [SL_OP_CHUNK] = {SL_OP_CHUNK, "chunk", SL_ROLE_CHUNKER, "", SL_UNIT_DOC, 5, true, false, false, do_chunk,
                     DOC_OPS(op_start_chunk, op_done_chunk)},
    [SL_OP_SUMMARIZE] = {SL_OP_SUMMARIZE, "summarize", SL_ROLE_LLM, "", SL_UNIT_PROMPT, 6, false, false,
                         false, do_summarize, DOC_OPS(op_start_summaries, op_done_summary)},
    [SL_OP_EMBED] = {SL_OP_EMBED, "embed", SL_ROLE_EMBEDDER, "", SL_UNIT_TEXTS, 6, false, true, false,
                     do_embed, op_start_embed, op_done_embed, op_prepare_embed, op_release_embed},
    [SL_OP_STORE] = {SL_OP_STORE, "store", SL_ROLE_SINK, "", SL_UNIT_DOC, 7, false, false, false, do_store,
                     DOC_OPS(op_start_doc, op_done_doc)},
    [SL_OP_PRUNE] = {SL_OP_PRUNE, "prune", SL_ROLE_SINK, ".prune", SL_UNIT_RUN, 7, false, false, true,
                     do_prune, DOC_OPS(NULL, op_done_prune)},
    [SL_OP_SETTLE] = {SL_OP_SETTLE, "settle", SL_ROLE_SINK, ".settle", SL_UNIT_RUN, 7, false, false, false,
                      do_settle, DOC_OPS(NULL, op_done_settle)},
};
#undef DOC_OPS

const sl_op *sl_op_get(sl_op_id id) { return id < SL_OP_COUNT ? &ops[id] : NULL; }

/* --- roles --- */

#define END SL_OP_COUNT
static const sl_role_info roles[] = {
    /* role, name, operations, route order, many, required, what a route takes */
    {SL_ROLE_PARSER, "parser", {SL_OP_PARSE, END, END}, 1, false, true, "one parser, first"},
    {SL_ROLE_PAGE, "page", {SL_OP_PAGE, END, END}, 2, true, false, "page stages before the chunker"},
    {SL_ROLE_CHUNKER, "chunker", {SL_OP_CHUNK, END, END}, 3, false, true, "one chunker"},
    {SL_ROLE_LLM,
     "llm",
     {SL_OP_SUMMARIZE, END, END},
     4,
     false,
     false,
     "one llm stage, after the chunker and before the embedder"},
    {SL_ROLE_EMBEDDER,
     "embedder",
     {SL_OP_EMBED, END, END},
     5,
     false,
     false,
     "one embedder, after the chunker"},
    {SL_ROLE_SINK,
     "sink",
     {SL_OP_LOOKUP, SL_OP_STORE, SL_OP_PRUNE},
     0,
     false,
     false,
     "the sink under 'sink', not in stages"},
};
#undef END

const sl_role_info *sl_role_get(sl_role role) {
    for (size_t i = 0; i < sizeof roles / sizeof *roles; i++)
        if (roles[i].role == role) return &roles[i];
    return NULL;
}

const char *sl_role_name(sl_role role) {
    const sl_role_info *r = sl_role_get(role);
    return r ? r->name : "unknown";
}

const char *sl_bottleneck_name(sl_bottleneck b) {
    switch (b) {
    case SL_IO: return "io";
    case SL_CPU: return "cpu";
    case SL_ISOLATED: return "isolated";
    case SL_GPU: return "gpu";
    }
    return "unknown";
}

/* The callback behind each operation, by name, for a descriptor. */
static const char *op_callback(const sl_plugin *d, sl_op_id id) {
    switch (id) {
    case SL_OP_LOOKUP: return d->lookup ? NULL : "lookup";
    case SL_OP_PARSE: return d->parse ? NULL : "parse";
    case SL_OP_PAGE:
        if (d->bottleneck == SL_GPU) return d->pages ? NULL : "pages";
        return d->page ? NULL : "page";
    case SL_OP_CHUNK: return d->chunk ? NULL : "chunk";
    case SL_OP_SUMMARIZE: return d->complete ? NULL : "complete";
    case SL_OP_EMBED: return d->embed ? NULL : "embed";
    case SL_OP_STORE: return d->store ? NULL : "store";
    case SL_OP_PRUNE: return d->prune ? NULL : "prune";
    case SL_OP_SETTLE: return d->settle ? NULL : "settle";
    case SL_OP_READ:
    case SL_OP_COUNT: break;
    }
    return NULL;
}

const char *sl_role_missing_callback(const sl_plugin *d) {
    const sl_role_info *r = sl_role_get(d->role);
    if (!r) return NULL;
    for (size_t i = 0; i < 3 && r->ops[i] != SL_OP_COUNT; i++) {
        const char *cb = op_callback(d, r->ops[i]);
        if (cb) return cb;
    }
    /* sinks also answer `sluice query`, which is not a pipeline operation */
    if (d->role == SL_ROLE_SINK && !d->query) return "query";
    return NULL;
}

/* Whether every operation of the role is isolatable (batchable). */
static bool role_ops_all(const sl_role_info *r, bool batchable) {
    for (size_t i = 0; i < 3 && r->ops[i] != SL_OP_COUNT; i++)
        if (!(batchable ? ops[r->ops[i]].batchable : ops[r->ops[i]].isolatable)) return false;
    return true;
}

const char *sl_role_executor_refusal(const sl_plugin *d, bool isolated) {
    const sl_role_info *r = sl_role_get(d->role);
    if (isolated && d->bottleneck != SL_CPU && d->bottleneck != SL_ISOLATED)
        return "isolated = true is for cpu plugins (io plugins wait, they do not crash the run)";
    if ((isolated || d->bottleneck == SL_ISOLATED) && r && !role_ops_all(r, false))
        return "worker processes run parsers, page stages and chunkers";
    if (d->bottleneck == SL_GPU && r && !role_ops_all(r, true))
        return "the gpu batcher runs page stages (their `pages` callback) and embedders";
    return NULL;
}

/* --- per-thread state --- */

int sl_tstate_make(sl_instance *inst, sl_tstate *ts, sl_call *call) {
    if (ts->made) return 0;
    if (inst->desc->thread_init) {
        sl_guard_call gc;
        sl_guard_enter_callback(&gc, inst, "thread_init");
        int rc = inst->desc->thread_init(inst->state, &ts->state);
        sl_guard_leave(&gc);
        if (rc) {
            ts->state = NULL;
            return sl_fail(call, rc < 0 ? rc : SL_EFATAL, "[%s] thread_init failed (%s)", inst->name,
                           sl_strerror(rc < 0 ? rc : SL_EFATAL));
        }
    }
    ts->made = 1;
    return 0;
}

void sl_tstate_free(sl_instance *inst, sl_tstate *ts) {
    if (ts->made && inst->desc->thread_fini) inst->desc->thread_fini(inst->state, ts->state);
    ts->made = 0;
    ts->state = NULL;
}

/* --- calling a plugin --- */

int sl_op_result(const sl_op *op, sl_instance *inst, sl_call *call, int rc) {
    if (rc == SL_PENDING)
        return sl_fail(
            call, SL_EFATAL,
            "%s plugin answered SL_PENDING (only io and cpu plugins may, and not in a worker process)",
            !inst                                   ? "a core"
            : inst->desc->bottleneck == SL_ISOLATED ? "an isolated"
            : inst->desc->bottleneck == SL_GPU      ? "a gpu"
            : inst->desc->bottleneck == SL_CPU      ? "a cpu"
                                                    : "an io");
    if (rc > 0 && rc != SL_PENDING && op && !op->answers_count)
        return sl_fail(call, SL_EFATAL, "plugin returned %d, not 0 or a negative SL_E* code", rc);
    return rc;
}

/* Runs on sl_call_done: the answer normalised, then the caller's callback. */
static void async_done(sl_call *call, int rc) {
    rc = sl_doc_text_verdict(call->doc, call, sl_op_result(call->op, call->inst, call, rc));
    call->then(call, rc);
}

/* The body shared by every way of calling: fn is the operation's invoke or
 * a caller's own function (sl_invoke). */
static int call_plugin(const sl_op *op, const sl_op_args *a, sl_instance *inst, sl_tstate *ts,
                       int (*fn)(sl_call *, void *), void *arg, sl_call *call,
                       void (*on_done)(sl_call *, int), void *udata) {
    sl_call_init(call, inst, NULL);
    call->op = op;
    if (ts && inst) {
        int rc = sl_tstate_make(inst, ts, call);
        if (rc) return rc;
        call->thread_state = ts->state;
    }
    call->then = on_done;
    call->udata = udata;
    if (on_done) {
        call->on_done = async_done;
        call->loop = inst ? inst->loop : NULL;
    }
    /* the thread's current call, for a crash report and the watchdogs (guard.h) */
    sl_guard_call wc = {.inst = inst ? inst->name : NULL,
                        .plugin = inst ? inst->desc->name : NULL,
                        .op = op ? op->name : NULL,
                        .doc = a && a->doc            ? sl_doc_uri(a->doc)
                               : a && a->docs && a->n ? sl_doc_uri(a->docs[0])
                                                      : NULL,
                        .bottleneck = inst ? (int)inst->desc->bottleneck : SL_CPU};
    sl_guard_enter(&wc);
    int rc = fn(call, arg);
    sl_guard_leave(&wc);
    /* io plugins answer later on the loop thread (or from a pool thread
     * decoding their response); cpu plugins later from any thread (a sink's
     * group commit). Either way sl_call_done brings the answer to the loop. */
    if (rc == SL_PENDING && on_done && inst &&
        (inst->desc->bottleneck == SL_IO || inst->desc->bottleneck == SL_CPU))
        return SL_PENDING;
    /* answered at once: a later sl_call_done is ignored */
    if (call->done && on_done) return SL_PENDING; /* sl_call_done already delivered (or posted) it */
    call->done = 1;
    return sl_doc_text_verdict(call->doc, call, sl_op_result(op, inst, call, rc));
}

typedef struct op_arg {
    const sl_op *op;
    const sl_op_args *a;
} op_arg;

static int invoke_op(sl_call *call, void *arg) {
    op_arg *oa = arg;
    call->doc = oa->a ? oa->a->doc : NULL;
    const sl_plugin *d = call->inst ? call->inst->desc : NULL;
    return oa->op->invoke(call, d, oa->a);
}

int sl_op_call(const sl_op *op, sl_instance *inst, sl_tstate *ts, const sl_op_args *a, sl_call *call,
               void (*on_done)(sl_call *call, int rc), void *udata) {
    op_arg oa = {op, a};
    return call_plugin(op, a, inst, ts, invoke_op, &oa, call, on_done, udata);
}

/* --- synchronous calls, for `sluice query`, `sluice check` and tests --- */

typedef struct sync_answer {
    int rc;
    int delivered;
} sync_answer;

static void sync_done(sl_call *call, int rc) {
    sync_answer *a = call->udata;
    a->rc = rc;
    a->delivered = 1;
}

static int wait_sync(sl_instance *inst, sl_call *call, int rc, const sync_answer *a) {
    if (rc != SL_PENDING) return rc;
    /* an io plugin: run the loop until it calls sl_call_done. A cpu plugin
     * answers from a thread of its own: the loop is held open for the post. */
    int hold = inst->loop && inst->desc->bottleneck == SL_CPU;
    if (hold) sl_loop_hold(inst->loop, 1);
    while (!a->delivered && inst->loop && uv_run(sl_loop_uv(inst->loop), UV_RUN_ONCE)) {
    }
    if (hold) sl_loop_hold(inst->loop, 0);
    return a->delivered ? a->rc
                        : sl_fail(call, SL_EFATAL, "answered SL_PENDING but nothing it waits for is left");
}

int sl_invoke(sl_instance *inst, sl_invoke_fn fn, void *arg, sl_call *call) {
    sl_tstate ts = {0};
    sync_answer a = {0};
    int rc = call_plugin(NULL, NULL, inst, &ts, fn, arg, call, sync_done, &a);
    rc = wait_sync(inst, call, rc, &a);
    sl_tstate_free(inst, &ts);
    return rc;
}

int sl_invoke_start(sl_instance *inst, sl_tstate *ts, sl_invoke_fn fn, void *arg, sl_call *call,
                    void (*on_done)(sl_call *call, int rc), void *udata) {
    return call_plugin(NULL, NULL, inst, ts, fn, arg, call, on_done, udata);
}
