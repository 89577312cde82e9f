/* job.c - a document's passage through its route, as a state machine.
 *
 * A job is one document in flight. Its state names the step it is at (new,
 * read, lookup, parse, pages, chunk, summarize, embed, store) or how it ended
 * (stored, skipped, failed). Every change goes through job_set, which
 * refuses an illegal one and logs each at -vv ("doc.md: parse -> pages"),
 * the way curl logs multistate().
 *
 * A step runs as parts: one unit for a document-wide operation, one per
 * page, one per chunk in embedding batches, one per summary call. The step
 * counts its parts (job_parts_add), each ends in job_part_done, and after
 * the last the job moves on: to its next step, or to its end. A failure is
 * recorded when it happens (job_mark_failed) and takes effect when the
 * step's last part is done, so no unit is ever left pointing at a freed
 * job.
 *
 * Admission is here too: documents start while they fit the run's limits
 * (count and memory budget); a job's end frees room and admits the next.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "media.h"
#include "scheduler.h"
#include "source.h"

static const char *const state_names[] = {[JOB_NEW] = "new",
                                          [JOB_READ] = "read",
                                          [JOB_LOOKUP] = "lookup",
                                          [JOB_PARSE] = "parse",
                                          [JOB_PAGES] = "pages",
                                          [JOB_CHUNK] = "chunk",
                                          [JOB_SUMMARIZE] = "summarize",
                                          [JOB_SUMMARIZE_EMBED] = "summarize+embed",
                                          [JOB_EMBED] = "embed",
                                          [JOB_STORE] = "store",
                                          [JOB_STORED] = "stored",
                                          [JOB_SKIPPED] = "skipped",
                                          [JOB_FAILED] = "failed"};

static int is_end(job_state s) { return s >= JOB_STORED; }

static job_state state_of(const sl_op *op) {
    switch (op->id) {
    case SL_OP_READ: return JOB_READ;
    case SL_OP_LOOKUP: return JOB_LOOKUP;
    case SL_OP_PARSE: return JOB_PARSE;
    case SL_OP_PAGE: return JOB_PAGES;
    case SL_OP_CHUNK: return JOB_CHUNK;
    case SL_OP_SUMMARIZE: return JOB_SUMMARIZE;
    case SL_OP_EMBED: return JOB_EMBED;
    default: return JOB_STORE;
    }
}

/* The one transition function. A job only moves forward along its route,
 * or to an end; an end is final. */
static void job_set(job *j, job_state to) {
    SL_INVARIANT(!is_end(j->state));
    SL_INVARIANT(is_end(to) || to >= j->state);
    SL_INVARIANT(to != JOB_STORED || j->parts == 0);
    sl_ctx_log_doc(j->run->rt->ctx, SL_LOG_DEBUG, NULL, sl_doc_uri(j->doc), "%s -> %s", state_names[j->state],
                   state_names[to]);
    j->state = to;
}

/* --- the memory budget ---
 *
 * What a document holds in flight is counted as it grows: its bytes, its
 * arena (elements, chunks, vectors, metadata), page images and summaries
 * (job_account, after every step), plus what its requests hold outside it
 * (HTTP bodies, embedding batches: the run's meter, loop.h). Admission must
 * decide before any of that exists, so it charges a document its file size
 * times an expansion: at first one estimated from the route (plan.c), then
 * the largest ratio of held bytes to file bytes seen in flight so far, with
 * a margin. A document waits until it fits; one alone always goes.
 *
 * The ratio seen in flight undercounts while many documents wait for their
 * first steps (a burst admitted at the start queues for the parser, each
 * holding little more than its bytes): lowered to that, admission let in
 * twice the budget's worth, which grew to 498 MB held on a 256 MB budget
 * once they were parsed and embedded. So the estimate is never lowered
 * below what stored documents held at their peaks, over their file bytes. */

uint64_t run_held(run *r) {
    long long m = atomic_load(&r->meter.bytes);
    uint64_t held = r->bytes_inflight + (uint64_t)(m > 0 ? m : 0) + r->docs_inflight * JOB_OVERHEAD;
    if (held > r->peak_inflight) r->peak_inflight = held;
    if (r->docs_inflight && r->raw_inflight) {
        double seen = (double)(held - r->docs_inflight * JOB_OVERHEAD) / (double)r->raw_inflight;
        if (seen > r->expand_seen) r->expand_seen = seen;
        /* what was seen, with a margin, raises the estimate at any time; it
         * lowers it only once many documents are in flight together (their
         * steps then overlap in every phase, so the ratio seen is the ratio
         * there is), never while a few could all peak at once */
        double peaks = r->ended_raw ? (double)r->ended_peaks / (double)r->ended_raw : 0;
        double want = (r->expand_seen > peaks ? r->expand_seen : peaks) * 1.15;
        if (want > r->expand || (r->done >= 64 && r->docs_inflight >= 32 && want > 1.0)) r->expand = want;
    }
    return held;
}

static size_t job_bytes(const job *j) {
    size_t n = sl_doc_bytes(j->doc);
    for (uint32_t i = 0; i < j->nsummaries; i++)
        if (j->summaries[i]) n += strlen(j->summaries[i]) + 1;
    return n;
}

void job_account(job *j) {
    size_t now = job_bytes(j);
    SL_INVARIANT(j->run->bytes_inflight >= j->accounted);
    j->run->bytes_inflight += now;
    j->run->bytes_inflight -= j->accounted;
    j->accounted = now;
    if (now > j->peak) j->peak = now;
    run_held(j->run);
}

static void child_ended(job *parent, job_state end);

static void job_free_parked(void *p) {
    job *j = p;
    sl_doc_free(j->doc);
    free(j);
}

/* The job's end: counted in the report, its memory given back, its parent
 * told, the next document admitted. */
static void job_end(job *j, job_state end) {
    run *r = j->run;
    sl_report *rep = r->rep;
    if (j->children_left > 0) {
        /* its children hold its bytes: it ends after the last of them */
        SL_INVARIANT(!j->waiting);
        j->waiting = 2;
        j->end_when_done = end;
        r->parents_waiting++;
        job_admit(r);
        return;
    }
    job_set(j, end);
    if (end == JOB_SKIPPED && j->no_route) {
        sl_report_count_ext(&rep->no_route, sl_doc_uri(j->doc));
        sl_ctx_log(r->rt->ctx, SL_LOG_INFO, NULL, "%s: skipped, no route for %s", sl_doc_uri(j->doc),
                   sl_doc_media_type(j->doc));
    } else if (end == JOB_STORED) {
        if (j->chain_ns > r->chain_max_ns) r->chain_max_ns = j->chain_ns;
        rep->stored++;
        rep->chunks += sl_doc_chunk_count(j->doc);
    } else if (end == JOB_SKIPPED && j->parked) {
        rep->parked++;
        sl_ctx_log_doc(r->rt->ctx, SL_LOG_INFO, NULL, sl_doc_uri(j->doc),
                       "a dead letter (failed max_attempts runs): passed over until 'sluice retry --all'");
    } else if (end == JOB_SKIPPED) {
        rep->skipped++;
    } else {
        rep->failed++;
        sl_report_add_failure(rep, sl_doc_uri(j->doc), j->fail_stage ? j->fail_stage : "?",
                              j->fail_reason ? j->fail_reason : "unknown");
        sl_ctx_log_doc(r->rt->ctx, SL_LOG_INFO, j->fail_stage, sl_doc_uri(j->doc), "failed: %s",
                       j->fail_reason);
    }
    if (!j->parent && r->opts->ended)
        r->opts->ended(r->opts->queue_arg, j->doc,
                       end == JOB_STORED    ? 1
                       : end == JOB_SKIPPED ? 0
                                            : -1,
                       j->fail_stage, j->fail_reason);
    if (!(end == JOB_SKIPPED && j->no_route)) rep->bytes += j->doc->len;
    if (end == JOB_STORED) { /* skipped ones never grew: they would pull the floor down */
        r->ended_peaks += j->peak;
        r->ended_raw += j->raw;
    }
    r->done++;
    run_held(r);
    SL_INVARIANT(r->docs_inflight > 0 && r->bytes_inflight >= j->accounted && r->raw_inflight >= j->raw);
    r->docs_inflight--;
    r->bytes_inflight -= j->accounted;
    r->raw_inflight -= j->raw;
    for (uint32_t i = 0; i < j->nsummaries; i++) free(j->summaries[i]);
    free(j->summaries);
    free(j->fail_stage);
    free(j->fail_reason);
    job *parent = j->parent;
    if (j->abandoned)
        sl_runtime_park(r->rt, j, job_free_parked); /* a plugin may still answer into it */
    else
        job_free_parked(j);
    if (parent) child_ended(parent, end);
    job_admit(r);
    run_maybe_end(r);
}

static void sweep_fire(uv_timer_t *t) {
    run *r = t->data;
    for (size_t i = 0; i < r->nstages; i++)
        if (r->stages[i]->qhead) stage_pump(r->stages[i]);
}

void run_sweep(run *r) {
    r->sweeps++;
    if (r->sweep_open && !uv_is_active((uv_handle_t *)&r->sweep)) uv_timer_start(&r->sweep, sweep_fire, 0, 0);
}

void job_mark_failed(job *j, const stage *st, const char *reason) {
    if (j->failed) return;
    j->failed = 1;
    /* its units still queued elsewhere (embeddings beside a summary that
     * failed) are dropped on the next loop iteration, not sent */
    run_sweep(j->run);
    j->fail_stage = strdup(st ? stage_name(st) : "read");
    j->fail_reason = strdup(reason && *reason ? reason : "failed without a message");
}

/* Enters step j->step: the state follows from its operation, and the
 * operation's start fans the document out into units. */
static void job_enter_step(job *j) {
    run *r = j->run;
    const route_plan *p = &r->plans[j->route];
    stage *st = p->steps[j->step];
    int joint = j->step == p->joint;
    job_set(j, joint ? JOB_SUMMARIZE_EMBED : state_of(st->op));
    if (r->stopping && r->rep->fatal) {
        job_mark_failed(j, st, "not processed: the run was stopped by a fatal error");
        job_end(j, JOB_FAILED);
        return;
    }
    /* the step holds the job until every part it fans out has started, so a
     * part that completes at once cannot end the step early */
    job_parts_add(j, 1);
    /* chained: one part per chunk for its embedding, sent when its summary
     * comes (summaries.c) */
    if (joint && p->chained) job_parts_add(j, (uint32_t)sl_doc_chunk_count(j->doc));
    st->op->start(j, st);
    if (joint && !p->chained) p->steps[j->step + 1]->op->start(j, p->steps[j->step + 1]);
    job_part_done(j);
}

/* Every page is through the last page stage: the step jumps past the page
 * stages and the elements are put in page order. */
static void job_pages_done(job *j) {
    const route_plan *p = &j->run->plans[j->route];
    while (j->step + 1 < p->n && p->steps[j->step + 1]->op->id == SL_OP_PAGE) j->step++;
    if (sl_doc_page_count(j->doc)) sl_doc_sort_elements(j->doc);
}

void job_parts_add(job *j, uint32_t n) { j->parts += n; }

/* `sluice inspect`: the document as the step just left it. */
static void observe_step(job *j, const route_plan *p) {
    const sl_run_opts *o = j->run->opts;
    const stage *st = p->steps[j->step];
    uint64_t sum = j->sum_base_ns + j->sum_busy_ns;
    if (j->step == p->joint) {
        o->observe(o->observe_arg, stage_name(st), st->op->name, j->doc, (double)sum / 1e9);
        st = p->steps[j->step + 1];
    }
    if (st->op->id == SL_OP_PAGE) { /* the page stages ran page by page, together: one entry */
        char names[512] = "";
        size_t f = j->step, used = 0;
        while (f > 0 && p->steps[f - 1]->op->id == SL_OP_PAGE) f--;
        for (size_t k = f; k <= j->step && used + 1 < sizeof names; k++) {
            int n = snprintf(names + used, sizeof names - used, "%s%s", k > f ? " + " : "",
                             stage_name(p->steps[k]));
            if (n > 0) used += (size_t)n;
        }
        o->observe(o->observe_arg, names, st->op->name, j->doc, (double)j->step_busy_ns / 1e9);
        return;
    }
    o->observe(o->observe_arg, stage_name(st), st->op->name, j->doc, (double)j->step_busy_ns / 1e9);
}

void job_part_done(job *j) {
    SL_INVARIANT(j->parts > 0);
    if (--j->parts > 0) return;
    if (j->failed) {
        job_end(j, JOB_FAILED);
        return;
    }
    if (j->skip || j->no_route) {
        job_end(j, JOB_SKIPPED);
        return;
    }
    const route_plan *p = &j->run->plans[j->route];
    if (p->steps[j->step]->op->id == SL_OP_PAGE) job_pages_done(j);
    job_account(j);
    if (j->run->opts->observe) observe_step(j, p);
    uint64_t sum = j->sum_base_ns + j->sum_busy_ns;
    j->chain_ns += sum > j->step_busy_ns ? sum : j->step_busy_ns;
    j->step_busy_ns = j->sum_base_ns = j->sum_busy_ns = 0;
    j->step += j->step == p->joint ? 2 : 1;
    if (j->step >= p->n) {
        job_end(j, JOB_STORED);
        return;
    }
    if (p->steps[j->step]->op->id == SL_OP_STORE && j->children_left > 0) {
        /* stored after its children: a parent in the store means every
         * child of it was dealt with, so a rerun may skip them all */
        j->waiting = 1;
        j->run->parents_waiting++;
        job_admit(j->run);
        return;
    }
    job_enter_step(j);
}

/* --- page stages: the route's page steps run page by page (pages.c) --- */

stage *job_next_page_stage(const job *j, const stage *st) {
    const route_plan *p = &j->run->plans[j->route];
    size_t k = j->step;
    while (k < p->n && p->steps[k] != st) k++;
    if (k + 1 >= p->n || p->steps[k + 1]->op->id != SL_OP_PAGE) return NULL;
    return p->steps[k + 1];
}

/* --- document-wide operations: read, lookup, parse, chunk, store --- */

void op_start_doc(job *j, stage *st) {
    unit *u = &j->unit;
    memset(u, 0, sizeof *u);
    u->st = st;
    u->job = j;
    u->args.doc = j->doc;
    u->args.max_file_size = j->run->rt->set.max_file_size;
    job_parts_add(j, 1);
    stage_dispatch(u);
}

void op_done_doc(unit *u, int rc, const char *msg) {
    if (rc < 0) job_mark_failed(u->job, u->st, msg);
    job_part_done(u->job);
}

void op_done_lookup(unit *u, int rc, const char *msg) {
    job *j = u->job;
    if (rc == SL_LOOKUP_UNCHANGED || (j->parked && (rc == SL_LOOKUP_MISSING || rc == SL_LOOKUP_CHANGED))) {
        j->skip = 1;
    } else if (rc >= 0 && rc != SL_LOOKUP_MISSING && rc != SL_LOOKUP_CHANGED) {
        char why[128];
        snprintf(why, sizeof why, "lookup answered %d, not an SL_LOOKUP_* value", rc);
        job_mark_failed(j, u->st, why);
    }
    op_done_doc(u, rc, msg);
}

void op_start_chunk(job *j, stage *st) {
    if (sl_doc_element_count(j->doc) == 0) {
        job_mark_failed(j, st, "no text: nothing was found to chunk");
        return;
    }
    op_start_doc(j, st);
}

void op_done_chunk(unit *u, int rc, const char *msg) {
    if (rc >= 0 && sl_doc_chunk_count(u->job->doc) == 0)
        job_mark_failed(u->job, u->st, "the chunker made no chunks");
    op_done_doc(u, rc, msg);
}

/* --- what the content says: another type, maybe another route --- */

void op_done_read(unit *u, int rc, const char *msg) {
    job *j = u->job;
    sl_doc *d = j->doc;
    if (rc >= 0 && d->detected) {
        run *r = j->run;
        sl_report_add_detection(r->rep, sl_doc_uri(d), d->media_type, d->detected, d->believed);
        sl_ctx_log(r->rt->ctx, SL_LOG_INFO, NULL, "%s: named %s, content %s; believing %s", sl_doc_uri(d),
                   d->media_type, d->detected, d->believed);
        if (strcmp(d->believed, d->media_type) != 0) {
            /* every route starts with the same read step: the job goes on
             * along the route of the type believed */
            const sl_route *route = sl_runtime_route_for(r->rt, d->believed);
            sl_doc_set_media_type(d, d->believed);
            if (route) {
                j->route = (size_t)(route - r->rt->routes);
                sl_doc_set_fingerprint(d, route->fingerprint);
            } else {
                j->no_route = 1;
            }
        }
    }
    op_done_doc(u, rc, msg);
}

/* --- children: documents found inside a document ---
 *
 * A parser hands them over with sl_doc_add_child; when its parse succeeds
 * each becomes a job of its own (uri PARENT#NAME, metadata "parent"),
 * queued for admission ahead of new files. The child's bytes stay in the
 * parent's arena, so the parent outlives its children: it waits before its
 * store step, or before its end if it fails first, until children_left is
 * 0. While it only waits it is not counted by admission, so its children
 * always get in. A child that failed (or never ran: the run stopped) marks
 * its parent incomplete: the parent is stored with a fingerprint no route
 * has, so the next run parses it again and retries that child. Every
 * child's end calls child_ended exactly once: the one wakeup of a waiting
 * parent. */

#define MAX_CHILD_DEPTH 8
#define CHILD_NAME_MAX 120

/* A name safe in a uri and unique among its siblings (made[0..i)): no
 * '/', '#' or control bytes, no leading dots, at most CHILD_NAME_MAX bytes
 * (cut at a UTF-8 boundary), "part" when nothing is left; a repeated name
 * gets "~N" before its extension. */
static void child_name(const char *in, const char *const *made, size_t i, char *out, size_t cap) {
    size_t o = 0;
    while (*in == '.' || *in == ' ') in++;
    for (; *in && o + 1 < cap && o < CHILD_NAME_MAX; in++) {
        unsigned char ch = (unsigned char)*in;
        out[o++] = ch < 0x20 || ch == 0x7f || ch == '/' || ch == '\\' || ch == '#' ? '_' : (char)ch;
    }
    if (*in && ((unsigned char)*in & 0xc0) == 0x80) { /* cut inside a sequence: drop its start */
        while (o > 0 && ((unsigned char)out[o - 1] & 0xc0) == 0x80) o--;
        if (o > 0) o--;
    }
    out[o] = 0;
    if (!o) snprintf(out, cap, "part");
    char base[CHILD_NAME_MAX + 1];
    snprintf(base, sizeof base, "%s", out);
    const char *dot = strrchr(base, '.');
    int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    for (int n = 2; n < 1000000; n++) {
        int taken = 0;
        for (size_t k = 0; k < i && !taken; k++) taken = strcmp(made[k], out) == 0;
        if (!taken) break;
        snprintf(out, cap, "%.*s~%d%s", stem, base, n, base + stem);
    }
}

static void make_children(job *j, const stage *st) {
    run *r = j->run;
    sl_doc *d = j->doc;
    if (d->depth >= MAX_CHILD_DEPTH) {
        char why[128];
        snprintf(why, sizeof why, "documents nested more than %d deep inside each other", MAX_CHILD_DEPTH);
        job_mark_failed(j, st, why);
        return;
    }
    const char **made = calloc(d->nchildren, sizeof *made); /* arena strings */
    if (!made) {
        job_mark_failed(j, st, "out of memory for its children");
        return;
    }
    size_t ulen = strlen(d->uri);
    for (size_t i = 0; i < d->nchildren; i++) {
        const sl_child *c = &d->children[i];
        char name[CHILD_NAME_MAX + 16];
        child_name(c->name, made, i, name, sizeof name);
        made[i] = sl_arena_strdup(&d->arena, name);
        char *uri = malloc(ulen + strlen(name) + 2);
        job *k = calloc(1, sizeof *k);
        sl_doc *cd = NULL;
        if (uri && k && made[i]) {
            snprintf(uri, ulen + strlen(name) + 2, "%s#%s", d->uri, name);
            cd = sl_doc_new(uri, NULL);
        }
        free(uri);
        if (!cd) {
            free(k);
            job_mark_failed(j, st, "out of memory for its children");
            break;
        }
        sl_doc_set_data(cd, c->data, c->len); /* the parent's arena: it outlives the child */
        const char *media = c->media_type;
        if (!media || strcmp(media, "application/octet-stream") == 0) media = sl_media_type_for_path(name);
        sl_doc_set_media_type(cd, media);
        sl_doc_set_run_id(cd, r->run_id);
        sl_doc_meta_set(cd, "parent", d->uri);
        sl_doc_set_child_limits(cd, (uint32_t)r->rt->set.max_children, r->rt->set.max_child_bytes);
        cd->depth = d->depth + 1;
        /* a leased document's children: their stores are fenced by its job
         * (sl_doc_queue_fence), so a stale node's late ones are refused too */
        cd->fence_id = d->queue_id > 0 ? d->queue_id : d->fence_id;
        cd->fence_token = d->queue_id > 0 ? d->queue_token : d->fence_token;
        k->run = r;
        k->doc = cd;
        k->state = JOB_NEW;
        k->parent = j;
        k->raw = c->len > JOB_MIN_RAW ? c->len : JOB_MIN_RAW;
        j->children_left++;
        r->rep->children++;
        if (r->child_tail)
            r->child_tail->next_child = k;
        else
            r->child_head = k;
        r->child_tail = k;
    }
    free(made);
}

void op_done_parse(unit *u, int rc, const char *msg) {
    job *j = u->job;
    sl_doc *d = j->doc;
    if (d->child_refusal) /* the core's reason, whatever the parser answered */
        job_mark_failed(j, u->st, d->child_refusal);
    else if (rc >= 0 && d->nchildren)
        make_children(j, u->st);
    run *r = u->st->run;
    op_done_doc(u, rc, msg); /* may end the job, and u with it (its own step unit) */
    /* children wait in the queue: admit them (after the parent moved on) */
    job_admit(r);
}

/* A child ended: the last one wakes its parent, at its store step or at
 * its end. */
static void child_ended(job *parent, job_state end) {
    SL_INVARIANT(parent->children_left > 0);
    if (end == JOB_FAILED) parent->children_incomplete = 1;
    if (--parent->children_left > 0 || !parent->waiting) return;
    run *r = parent->run;
    int waited = parent->waiting;
    parent->waiting = 0;
    SL_INVARIANT(r->parents_waiting > 0);
    r->parents_waiting--;
    if (waited == 2) {
        job_end(parent, parent->end_when_done);
        return;
    }
    if (parent->children_incomplete) {
        /* no route's fingerprint ends in 'p': the next run parses it again */
        parent->doc->fingerprint[31] = 'p';
        sl_ctx_log(r->rt->ctx, SL_LOG_INFO, NULL,
                   "%s: stored, but a document inside it failed: the next run parses it again",
                   sl_doc_uri(parent->doc));
    }
    job_enter_step(parent);
}

/* A child that never ran (the run is stopping) fails, and tells its parent. */
static void drop_children(run *r) {
    while (r->child_head) {
        job *k = r->child_head;
        r->child_head = k->next_child;
        if (!r->child_head) r->child_tail = NULL;
        r->rep->failed++;
        sl_report_add_failure(r->rep, sl_doc_uri(k->doc), "read", "not processed: the run was stopped");
        job *parent = k->parent;
        sl_doc_free(k->doc);
        free(k);
        child_ended(parent, JOB_FAILED);
    }
}

/* --- admission --- */

/* Picks the job's route by its media type and enters its first step. A
 * type no route takes sends the content to be looked at (media.h); still
 * none: a PATH named on the command line fails with the reason, a file
 * found in a folder or inside a document is skipped and counted by its
 * extension (never silently). */
static void job_begin(job *j, const char *error, int named) {
    run *r = j->run;
    sl_doc *doc = j->doc;
    if (j->fetching) { /* counted since its fetch began */
        j->fetching = 0;
    } else {
        r->docs_inflight++;
        r->raw_inflight += j->raw;
    }
    sl_doc_set_run_id(doc, r->run_id);
    const char *media = sl_doc_media_type(doc);
    const sl_route *route = error ? NULL : sl_runtime_route_for(r->rt, media);
    if (!error && !route) {
        const char *content = NULL, *b;
        if (doc->path)
            b = sl_media_believe_file(doc->path, media, &content);
        else
            b = sl_media_believe(media, doc->data, doc->len, &content);
        if (content) {
            sl_report_add_detection(r->rep, sl_doc_uri(doc), media, content, b);
            sl_doc_set_media_type(doc, b);
            media = sl_doc_media_type(doc);
            route = sl_runtime_route_for(r->rt, media);
        }
    }
    if (error || (!route && named)) {
        char why[256];
        if (!error)
            snprintf(why, sizeof why, "no route for media type %s (add it to a [route.*] section's media)",
                     media);
        job_mark_failed(j, r->read, error ? error : why);
        job_end(j, JOB_FAILED);
        return;
    }
    if (!route) {
        j->no_route = 1;
        job_end(j, JOB_SKIPPED);
        return;
    }
    j->route = (size_t)(route - r->rt->routes);
    sl_doc_set_fingerprint(doc, route->fingerprint);
    sl_doc_set_child_limits(doc, (uint32_t)r->rt->set.max_children, r->rt->set.max_child_bytes);
    j->step = 0;
    job_enter_step(j);
}

static int cmp_uri(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A dead letter (failed [sluice] max_attempts runs) waits for `sluice retry
 * --all`: it is read and looked up only, so that a prune keeps what the
 * store holds of it (the file is there), then counted as parked (job_end). */
static int job_parked(run *r, const char *path) {
    const sl_run_opts *o = r->opts;
    return o->nparked && bsearch(&path, o->parked, o->nparked, sizeof *o->parked, cmp_uri);
}

/* --- remote documents (source.h) ---
 *
 * An http(s):// or s3:// document is fetched on the loop before its route
 * is chosen: the response's Content-Type names its type where its name does
 * not. It is admitted, and counted in flight, when its fetch begins, so the
 * memory budget and the document limit bound the fetches too; its body is
 * metered while it arrives. Its bytes then are the document's, as a child's
 * are: the read step checks and sniffs them, lookup compares their hash. */

/* "text/html; charset=utf-8" -> "text/html", lower case, into out. */
static void bare_type(const char *ct, char *out, size_t outlen) {
    size_t n = strcspn(ct, "; \t");
    if (n >= outlen) n = outlen - 1;
    for (size_t i = 0; i < n; i++) out[i] = (char)(ct[i] >= 'A' && ct[i] <= 'Z' ? ct[i] + 32 : ct[i]);
    out[n] = 0;
}

static void fetched(void *arg, int rc, sl_fetched *got, const char *err) {
    job *j = arg;
    run *r = j->run;
    sl_doc *d = j->doc;
    char why[512];
    if (rc) {
        snprintf(why, sizeof why, "cannot fetch: %s", err);
    } else {
        sl_doc_take_data(d, got->data, got->len);
        if (got->len > j->raw) { /* the size was unknown (http) or has grown */
            r->raw_inflight += got->len - j->raw;
            j->raw = got->len;
        }
        char ct[128];
        bare_type(got->content_type, ct, sizeof ct);
        if (strcmp(sl_doc_media_type(d), "application/octet-stream") == 0 && ct[0] &&
            strcmp(ct, "application/octet-stream") != 0)
            sl_doc_set_media_type(d, ct);
        if (got->etag[0]) sl_doc_meta_set(d, "etag", got->etag);
        if (got->last_modified[0]) sl_doc_meta_set(d, "last_modified", got->last_modified);
    }
    job_begin(j, rc ? why : NULL, j->named); /* its end, if it fails, admits the next */
    job_admit(r);
}

static void job_fetch(job *j) {
    run *r = j->run;
    j->fetching = 1;
    r->docs_inflight++;
    r->raw_inflight += j->raw;
    if (sl_fetch_start(r->loop, sl_doc_uri(j->doc), r->rt->set.max_file_size, fetched, j) != 0)
        fetched(j, SL_ENOMEM, NULL, "cannot start the request (out of memory, or not a URI sluice fetches)");
}

static void job_start(run *r, const char *path, const char *error, uint64_t raw, int named, int parked,
                      const int64_t *qjob) {
    job *j = calloc(1, sizeof *j);
    int remote = !error && sl_source_is_remote(path);
    sl_doc *doc = j ? sl_doc_new(path, remote ? NULL : path) : NULL;
    if (!doc) {
        free(j);
        run_fatal(r, "read", "out of memory");
        return;
    }
    j->run = r;
    j->doc = doc;
    j->state = JOB_NEW;
    j->raw = raw;
    j->parked = parked;
    j->named = named;
    doc->queue_id = qjob[0];
    doc->queue_token = qjob[1];
    sl_doc_set_media_type(doc, sl_media_type_for_path(path));
    if (remote)
        job_fetch(j);
    else
        job_begin(j, error, named);
}

/* A file in a folder outside [sluice] include: counted, by whether a route
 * would take it (by its name; its content is not read). */
static void count_outside(run *r, const char *path) {
    const char *media = sl_media_type_for_path(path);
    int routed = sl_runtime_route_for(r->rt, media) != NULL;
    sl_report_count_ext(routed ? &r->rep->not_included : &r->rep->no_route, path);
    sl_ctx_log(r->rt->ctx, SL_LOG_INFO, NULL, "%s: skipped, %s", path,
               routed ? "outside [sluice] include" : "no route for its name's type");
}

/* Whether a document of raw bytes may start now: the documents in flight
 * that do more than wait for their children, by count and memory budget
 * (what they will hold at the expansion, and what they hold now). One
 * always may when none is active. */
static int fits(run *r, uint64_t raw) {
    size_t active = r->docs_inflight - r->parents_waiting;
    double want = (double)(r->raw_inflight + raw) * r->expand + (double)(r->docs_inflight + 1) * JOB_OVERHEAD;
    uint64_t held = run_held(r);
    if (active > 0 && active >= r->max_docs) return 0;
    if (active > 0 &&
        (want > (double)r->budget || held + (uint64_t)((double)raw * r->expand) + JOB_OVERHEAD > r->budget)) {
        if (!r->budget_wait_since) r->budget_wait_since = sl_now_ns();
        return 0;
    }
    if (r->budget_wait_since) {
        r->budget_wait_ns += sl_now_ns() - r->budget_wait_since;
        r->budget_wait_since = 0;
    }
    return 1;
}

void job_admit(run *r) {
    /* a job that ends at once admits again: the outer loop carries on */
    if (r->admitting) return;
    r->admitting = 1;
    SL_INVARIANT(r->docs_inflight >= r->parents_waiting);
    while (!r->stopping) {
        /* children first: their parents are in flight, waiting for them */
        if (r->child_head) {
            job *k = r->child_head;
            if (!fits(r, k->raw)) break;
            r->child_head = k->next_child;
            if (!r->child_head) r->child_tail = NULL;
            k->next_child = NULL;
            job_begin(k, NULL, 0);
            continue;
        }
        if (!r->have_next && r->extra_next < r->nextra) { /* a file added since (sl_pipeline_add) */
            size_t x = r->extra_next;
            char *path = r->extra[x];
            r->extra[r->extra_next++] = NULL;
            int64_t qid = r->extra_job[2 * x], qtok = r->extra_job[2 * x + 1];
            struct stat st = {0};
            char *gone = NULL;
            /* a URI (a queue job's, source.h) is fetched, not stat'ed: its
             * size is known when its body arrives */
            int remote = sl_source_is_remote(path);
            int serr = !remote && stat(path, &st) != 0 ? errno : 0;
            if (!remote && (serr || !S_ISREG(st.st_mode))) {
                if (!qid) { /* gone again: the next pass sees to it */
                    free(path);
                    continue;
                }
                /* a queue job's document fails, so its job is retried or dead */
                char why[300];
                snprintf(why, sizeof why, "cannot read: %s", serr ? strerror(serr) : "not a regular file");
                gone = strdup(why);
                st.st_size = 0;
            }
            free(r->next_path);
            free(r->next_error);
            r->next_path = path;
            r->next_error = gone;
            r->next_job[0] = qid;
            r->next_job[1] = qtok;
            r->next_size = (uint64_t)st.st_size;
            r->next_named = 1;
            r->have_next = 1;
        }
        if (!r->have_next && r->walk_done) break;
        if (!r->have_next) {
            sl_walk_entry e;
            int got = sl_walk_next(r->walk, &e);
            if (got == 2) { /* a listing's page is on its way: r->page wakes us */
                if (r->page_open && !r->page_waiting) {
                    r->page_waiting = 1;
                    uv_ref((uv_handle_t *)&r->page);
                }
                break;
            }
            if (got != 1) {
                r->walk_done = 1;
                if (r->extra_next < r->nextra) continue;
                break;
            }
            if (e.outside) {
                count_outside(r, e.path);
                continue;
            }
            free(r->next_path);
            free(r->next_error);
            r->next_job[0] = r->next_job[1] = 0;
            r->next_path = strdup(e.path);
            r->next_error = e.error ? strdup(e.error) : NULL;
            r->next_size = e.size;
            r->next_named = e.named;
            r->have_next = 1;
        }
        uint64_t raw = r->next_size > JOB_MIN_RAW ? r->next_size : JOB_MIN_RAW;
        if (!fits(r, raw)) break;
        r->have_next = 0;
        job_start(r, r->next_path, r->next_error, raw, r->next_named, job_parked(r, r->next_path),
                  r->next_job);
    }
    if (r->stopping) drop_children(r);
    r->admitting = 0;
}
