/* ops.h - the operation table: what the core does with a plugin, as data.
 *
 * An operation is one kind of work on a document: read, lookup, parse, a
 * page stage, chunk, summarize, embed, store, prune. Its row says which role
 * provides it, the callback it needs, what it works on (a document, a page,
 * a batch of chunks, the whole run), its priority on the pool, whether a
 * worker process or the gpu batcher may run it, and how it is invoked. A
 * role's row says which operations it provides and where it goes in a
 * route. The scheduler (stage.c, job.c), the registry's descriptor checks,
 * the runtime's route rules, the worker process and `sluice check` all read
 * these two tables, so adding a role is a row in each plus an SDK callback.
 *
 * sl_op_call is the one place that calls a plugin: per-thread state made
 * on first use (sl_tstate), the call set up, the callback invoked, and its
 * answer normalised (SL_PENDING only from io plugins, positive values only
 * where the operation defines them). Every executor goes through it.
 */
#ifndef SL_OPS_H
#define SL_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "instance.h"
#include "sluice/plugin.h"

struct sl_job;
struct sl_stage;
struct sl_unit;

typedef enum sl_op_id {
    SL_OP_READ = 0, /* the core's own: map and hash the file */
    SL_OP_LOOKUP,   /* sink: is this document stored unchanged? */
    SL_OP_PARSE,
    SL_OP_PAGE,
    SL_OP_CHUNK,
    SL_OP_SUMMARIZE,
    SL_OP_EMBED,
    SL_OP_STORE,
    SL_OP_PRUNE,
    SL_OP_SETTLE, /* sink (optional): its derived indexes caught up, at the run's end */
    SL_OP_COUNT
} sl_op_id;

/* What one operation works on. */
typedef enum sl_op_unit {
    SL_UNIT_DOC,    /* one document */
    SL_UNIT_PAGE,   /* one page of one document */
    SL_UNIT_TEXTS,  /* texts of chunks, possibly from many documents */
    SL_UNIT_PROMPT, /* one prompt */
    SL_UNIT_RUN     /* the run as a whole (prune, settle) */
} sl_op_unit;

/* The arguments of one invocation; an operation reads the fields of its unit. */
typedef struct sl_op_args {
    sl_doc *doc;   /* DOC, PAGE */
    uint32_t page; /* PAGE: 1-based */
    /* PAGE on the gpu batcher: n pages of possibly different documents */
    sl_doc *const *docs;
    const uint32_t *pages;
    size_t n;
    /* TEXTS: n texts in, n * dim floats out */
    const sl_text *texts;
    float *vectors;
    /* PROMPT */
    const sl_text *prompt;
    sl_completion *answer;
    /* RUN */
    const char *const *roots;
    size_t nroots;
    uint64_t run_id;
    /* READ */
    uint64_t max_file_size;
} sl_op_args;

typedef struct sl_op {
    sl_op_id id;
    const char *name;   /* "parse", ...: logs and the worker protocol */
    sl_role role;       /* the role providing it; 0 for read */
    const char *suffix; /* stage name after the section's: "", ".lookup", ".prune" */
    sl_op_unit unit;    /* what one call works on */
    int priority;       /* pool priority: later operations first, so documents finish before new start */
    bool isolatable;    /* a worker process may run it (isolated = true) */
    bool batchable;     /* a gpu instance runs it on the batcher (through `pages`, or `embed`) */
    bool answers_count; /* a non-negative answer is a value (lookup: SL_LOOKUP_*, prune: a count) */
    int (*invoke)(sl_call *call, const sl_plugin *d, const sl_op_args *a);
    /* The scheduler's side (scheduler.h): how a job's step fans out into units
     * (NULL: not a route step), what a unit's answer does, and what runs on
     * the executing thread around the call to build and drop arguments
     * (prepare answers why it could not, or NULL). */
    void (*start)(struct sl_job *j, struct sl_stage *st);
    void (*done)(struct sl_unit *u, int rc, const char *msg);
    const char *(*prepare)(struct sl_unit *u);
    void (*release)(struct sl_unit *u);
} sl_op;

const sl_op *sl_op_get(sl_op_id id);

/* A role: the operations it provides (which say whether worker processes
 * or the gpu batcher may run it) and its place in a route. */
typedef struct sl_role_info {
    sl_role role;
    const char *name;      /* "parser", ... */
    sl_op_id ops[3];       /* what it provides; SL_OP_COUNT ends the list */
    int route_order;       /* position in a route's stages (0: not in stages) */
    bool route_many;       /* several in one route (page stages) */
    bool route_required;   /* a route without one is refused */
    const char *route_why; /* what a route takes, for the error */
} sl_role_info;

/* NULL for a value that is not a role. */
const sl_role_info *sl_role_get(sl_role role);
/* "parser", ...; "unknown" for a value that is not a role. */
const char *sl_role_name(sl_role role);
const char *sl_bottleneck_name(sl_bottleneck b);
/* The callback a plugin of its role and bottleneck cannot do without, or NULL when all are there. */
const char *sl_role_missing_callback(const sl_plugin *d);
/* Why a plugin of this role and bottleneck (isolated or not) cannot run, or NULL. */
const char *sl_role_executor_refusal(const sl_plugin *d, bool isolated);

/* One plugin's state on one thread: thread_init runs on first use, its
 * failure is remembered, thread_fini runs in sl_tstate_free on that thread. */
typedef struct sl_tstate {
    void *state;
    int made; /* thread_init ran and succeeded (or there is none) */
} sl_tstate;

/* Makes the state if it is not made yet. 0, or a negative code with the
 * reason in call ("thread_init failed (...)"). */
int sl_tstate_make(sl_instance *inst, sl_tstate *ts, sl_call *call);
void sl_tstate_free(sl_instance *inst, sl_tstate *ts);

/* Calls op on inst: sets up call (with ts's state; ts may be NULL on the
 * loop thread), makes ts if needed, invokes and normalises the answer.
 * Returns 0, a negative code with the message in call, or an operation's
 * value (lookup, prune); on_done is then not called. With on_done set, an
 * io plugin may answer later: the return is SL_PENDING and on_done runs
 * once, on the loop thread, with the normalised answer (perhaps before
 * sl_op_call returns). */
int sl_op_call(const sl_op *op, sl_instance *inst, sl_tstate *ts, const sl_op_args *a, sl_call *call,
               void (*on_done)(sl_call *call, int rc), void *udata);
/* Normalises an answer: SL_PENDING only from io plugins, positive values
 * only from operations that answer one (any, when op is NULL). */
int sl_op_result(const sl_op *op, sl_instance *inst, sl_call *call, int rc);

/* A function of the caller's, called on the calling thread with per-thread
 * state made and freed around it, waiting for an io plugin by running the
 * loop until it completes (`sluice query`, `sluice check`, tests); its
 * answer is normalised as for no operation. */
typedef int (*sl_invoke_fn)(sl_call *call, void *arg);
int sl_invoke(sl_instance *inst, sl_invoke_fn fn, void *arg, sl_call *call);
/* The same call without waiting, for callers that must not block the loop
 * (the HTTP service): on the loop thread for an io plugin (ts NULL), on a
 * thread of its own otherwise (ts that thread's state, freed by the
 * caller). As sl_op_call: the answer, or SL_PENDING and on_done runs once
 * on the loop thread (perhaps before this returns). */
int sl_invoke_start(sl_instance *inst, sl_tstate *ts, sl_invoke_fn fn, void *arg, sl_call *call,
                    void (*on_done)(sl_call *call, int rc), void *udata);

#endif
