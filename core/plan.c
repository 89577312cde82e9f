/* plan.c - a run's stages, and the steps of each route through them.
 *
 * Every route becomes a list of steps: read, the sink's lookup, the parser,
 * its page stages, the chunker, the llm stage, the embedder and the sink's
 * store (the llm and embed steps as one, run at once: when the embedder
 * reads the chunks' summaries, each chunk is embedded as its summary
 * comes). A step is a stage: one (instance,
 * operation) pair, shared by every
 * route that names the instance, with the executor the instance's
 * bottleneck calls for (executor.c) and the chain of throttles it may use:
 * the instance, then its fallbacks. One throttle per instance is shared by
 * all its stages, so a sink's limit holds across lookup, store and prune.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared_limits.h"
#include "scheduler.h"

/* A grant from a shared bucket arrived: the stages calling its throttle go on. */
static void shared_wake(void *r, void *t) { stage_pump_throttle(r, t); }

/* shared_limits: the throttle's rpm and tpm drawn from the sink's bucket too. */
static int share_limits(run *r, sl_throttle *t, sl_instance *inst) {
    sl_instance *sink = inst->stage.shared_limits ? sl_shared_sink_for(r->rt, inst) : NULL;
    if (!sink || !sink->desc->limit_grant) return 0; /* validated when the config was opened */
    if (inst->stage.rpm > 0 &&
        !(t->shared_reqs = sl_shared_new(inst, sink, "rpm", (double)inst->stage.rpm, t, shared_wake, r, t)))
        return SL_ENOMEM;
    if (inst->stage.tpm > 0 &&
        !(t->shared_toks = sl_shared_new(inst, sink, "tpm", (double)inst->stage.tpm, t, shared_wake, r, t)))
        return SL_ENOMEM;
    return 0;
}

/* The instance's throttle, made on first use. */
static sl_throttle *throttle_for(run *r, sl_instance *inst) {
    if (r->thr[inst->id]) return r->thr[inst->id];
    sl_throttle *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    int limit = inst->stage.max_concurrency > 0 ? (int)inst->stage.max_concurrency
                : inst->concurrency > 0         ? (int)inst->concurrency
                                                : (int)inst->desc->max_concurrency;
    sl_throttle_init(t, inst, limit, sl_now_ns() / 1000000u);
    r->thr[inst->id] = t;
    if (share_limits(r, t, inst)) return NULL;
    if (inst->desc->bottleneck == SL_IO || inst->nfallbacks || inst->stage.rpm || inst->stage.tpm) {
        t->stats = sl_report_add_provider(r->rep, inst->name, inst->desc->name);
        if (t->stats) {
            t->stats->price_input = inst->stage.price_input;
            t->stats->price_output = inst->stage.price_output;
        }
    }
    return t;
}

static int chain_init(run *r, stage *st, sl_instance *inst) {
    size_t n = inst ? 1 + inst->nfallbacks : 1;
    st->chain = calloc(n, sizeof *st->chain);
    if (!st->chain) return SL_ENOMEM;
    if (!inst) {
        st->chain[st->nchain++] = &r->read_thr;
        return 0;
    }
    st->chain[st->nchain++] = throttle_for(r, inst);
    for (size_t i = 0; i < inst->nfallbacks; i++)
        st->chain[st->nchain++] = throttle_for(r, inst->fallbacks[i]);
    for (size_t i = 0; i < st->nchain; i++)
        if (!st->chain[i]) return SL_ENOMEM;
    return 0;
}

static stage *stage_new(run *r, const sl_op *op, sl_instance *inst) {
    stage *st = calloc(1, sizeof *st);
    stage **grown = st ? realloc(r->stages, (r->nstages + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(st);
        return NULL;
    }
    r->stages = grown;
    r->stages[r->nstages++] = st;
    st->run = r;
    st->op = op;
    st->inst = inst;
    st->ex = exec_for(r, op, inst);
    if (chain_init(r, st, inst)) return NULL;
    if (inst) {
        st->batch_size = inst->stage.batch_size > 0   ? (size_t)inst->stage.batch_size
                         : inst->desc->batch_size > 0 ? inst->desc->batch_size
                                                      : 64;
        st->delay_ms = (uint64_t)(inst->stage.batch_delay_ms > 0 ? inst->stage.batch_delay_ms : 0);
    }
    char name[256];
    snprintf(name, sizeof name, "%s%s", inst ? inst->name : op->name, op->suffix);
    if (!sl_report_add_stage(r->rep, name, inst ? inst->desc->name : "", st->ex->ops->name)) return NULL;
    st->stat_index = r->rep->nstages - 1;
    return st;
}

/* The stage of (op, inst), made on first use. */
static stage *stage_for(run *r, sl_op_id id, sl_instance *inst) {
    for (size_t i = 0; i < r->nstages; i++)
        if (r->stages[i]->op->id == id && r->stages[i]->inst == inst) return r->stages[i];
    return stage_new(r, sl_op_get(id), inst);
}

static int plan_route(run *r, const sl_route *rr, route_plan *p) {
    p->steps = calloc(7 + rr->npages, sizeof *p->steps);
    if (!p->steps) return SL_ENOMEM;
    int inspect = r->opts->inspect;
    p->steps[p->n++] = r->read;
    if (!inspect) p->steps[p->n++] = stage_for(r, SL_OP_LOOKUP, rr->sink);
    p->steps[p->n++] = stage_for(r, SL_OP_PARSE, rr->parser);
    for (size_t k = 0; k < rr->npages; k++) p->steps[p->n++] = stage_for(r, SL_OP_PAGE, rr->pages[k]);
    p->steps[p->n++] = stage_for(r, SL_OP_CHUNK, rr->chunker);
    p->joint = SIZE_MAX;
    if (rr->llm) {
        p->steps[p->n++] = stage_for(r, SL_OP_SUMMARIZE, rr->llm);
        p->embed_summaries = rr->llm->stage.embed_summaries;
        if (rr->embedder) {
            const char *sm = rr->llm->stage.summaries;
            int chunk_summaries = strcmp(sm, "chunks") == 0 || strcmp(sm, "both") == 0;
            p->joint = p->n - 1;
            p->chained = p->embed_summaries && chunk_summaries;
        }
    }
    if (rr->embedder) p->steps[p->n++] = stage_for(r, SL_OP_EMBED, rr->embedder);
    if (!inspect) p->steps[p->n++] = stage_for(r, SL_OP_STORE, rr->sink);
    for (size_t k = 0; k < p->n; k++)
        if (!p->steps[k]) return SL_ENOMEM;
    if (!inspect && r->opts->prune && !stage_for(r, SL_OP_PRUNE, rr->sink)) return SL_ENOMEM;
    if (!inspect && rr->sink->desc->settle && !stage_for(r, SL_OP_SETTLE, rr->sink)) return SL_ENOMEM;
    /* inspect up to a stage: the route ends after it (an llm step cut from
     * its embedder is a step of its own again) */
    const char *stop = r->opts->stop_after;
    for (size_t k = 0; stop && k < p->n; k++) {
        if (strcmp(r->rep->stages[p->steps[k]->stat_index].name, stop) != 0) continue;
        p->n = k + 1;
        if (p->joint != SIZE_MAX && p->joint + 1 >= p->n) {
            p->joint = SIZE_MAX;
            p->chained = 0;
        }
        break;
    }
    return 0;
}

int plan_run(run *r) {
    sl_runtime *rt = r->rt;
    r->thr = calloc(rt->ninst ? rt->ninst : 1, sizeof *r->thr);
    if (!r->thr) return SL_ENOMEM;
    sl_throttle_init(&r->read_thr, NULL, 0, sl_now_ns() / 1000000u);
    r->read = stage_new(r, sl_op_get(SL_OP_READ), NULL);
    r->plans = calloc(rt->nroutes ? rt->nroutes : 1, sizeof *r->plans);
    if (!r->read || !r->plans) return SL_ENOMEM;
    for (size_t i = 0; i < rt->nroutes; i++) {
        int rc = plan_route(r, &rt->routes[i], &r->plans[i]);
        if (rc) return rc;
    }
    /* the report's stage array is final now: point at it */
    for (size_t i = 0; i < r->nstages; i++) r->stages[i]->stats = &r->rep->stages[r->stages[i]->stat_index];
    return 0;
}

void plan_free(run *r) {
    for (size_t i = 0; i < r->nstages; i++) {
        free(r->stages[i]->pend);
        free(r->stages[i]->chain);
        free(r->stages[i]);
    }
    free(r->stages);
    r->stages = NULL;
    for (size_t i = 0; r->plans && i < r->rt->nroutes; i++) free(r->plans[i].steps);
    free(r->plans);
    r->plans = NULL;
    for (size_t i = 0; r->thr && i < r->rt->ninst; i++) {
        if (r->thr[i]) {
            sl_shared_free(r->thr[i]->shared_reqs, r->rt);
            sl_shared_free(r->thr[i]->shared_toks, r->rt);
        }
        free(r->thr[i]);
    }
    free(r->thr);
    r->thr = NULL;
}
