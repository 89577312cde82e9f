/* worker.h - the isolated executor's own types, shared by its two halves:
 * workers.c (the executor: its queue of tasks, handing them out, keeping
 * the number of workers up with restart backoff, the sl_workers_* API) and
 * worker.c (one worker process as the core sees it: its life as a state
 * machine, its socket, its timers, how it ends). Private to those two; the
 * rest of the core sees workers.h. Everything here lives on the loop thread.
 *
 * Who writes what: a worker's fields only worker.c, and its state only
 * through set_state there; the executor's queue, counters and backoff only
 * workers.c, told of what happens to a worker through the workers_* hooks
 * below.
 */
#ifndef SL_WORKER_H
#define SL_WORKER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "wire.h"
#include "workers.h"

/* One operation, from submit until its callback. */
typedef struct task task;
struct task {
    task *next; /* in the queue, or the deferred list */
    size_t slot;
    sl_instance *inst;
    sl_op_id op;
    sl_doc *doc;
    uint32_t page;
    sl_worker_done done;
    void *arg;
    int64_t timeout_ms;
    uint64_t seq;     /* of its RUN frame; the RESULT must name it */
    uint64_t t_start; /* sl_now_ns() when handed to a worker; 0 until then, and again if it comes back */
    int requeues;     /* times it went back to the queue, its worker dead before it arrived */
    /* Its LOAD or RUN frame could not be written: the worker never saw it, so
     * the worker's death is not its fault. A fact about this hand-over, not
     * about the worker's life: the worker goes on to end as any other. */
    bool unsent;
    int rc;    /* deferred completions */
    char *msg; /* deferred completions, malloc'd */
};

/* A worker's life (worker.c's top comment has the transitions). The first
 * four are live: it counts toward the executor's target. */
typedef enum wstate {
    W_STARTING, /* spawned, CONFIG sent, no HELLO yet */
    W_READY,    /* idle: holds no task */
    W_LOADING,  /* holds a task; its instance is being loaded (the plugin's init) */
    W_BUSY,     /* holds a task; running it */
    W_RETIRING, /* planned end: its input is shut, it exits by itself (or is made to) */
    W_HUNGUP,   /* it closed its socket unasked: its exit will tell why */
    W_KILLED,   /* SIGKILL sent for a cause (timeout, broken protocol, freed mid-task) */
    W_EXITED,   /* libuv reported its exit (or it never started): handles closing */
    W_NSTATES
} wstate;

/* What the worker's one timer does when it fires. Kept apart from the life
 * state: a live worker's timer is its call timeout, and an ending one's
 * escalates (grace, SIGTERM, grace, SIGKILL) alike in three ending states. */
typedef enum wtimer { T_CALL, T_TERM, T_KILL } wtimer;

typedef struct worker worker;
struct worker {
    worker *next;
    sl_workers *w;
    wstate state;
    wstate life;       /* the last live state: the one it is in, or left when it began to end */
    wtimer timer_next; /* T_KILL once SIGTERM was sent */
    int pid;
    int fd;
    uv_process_t proc;
    uv_poll_t poll;
    uv_timer_t timer;
    int handles; /* open libuv handles; the worker is freed when none are left */
    task *cur;   /* in LOADING and BUSY, and in an ending state entered from them */
    uint64_t docs;
    unsigned char *loaded; /* per slot: its instance is loaded in this worker */
    size_t nloaded;
    sl_reader rd;
    sl_frame_out *oq_head, *oq_tail;
    char reason[768]; /* why we killed it, when we did while it held a task */
};

/* An instance as workers load it: its option values as "key=value". */
typedef struct slot {
    sl_instance *inst;
    char **kv;
    size_t nkv;
} slot;

struct sl_workers {
    sl_ctx *ctx;
    sl_loop *loop;
    uv_loop_t *uv;
    sl_workers_opts opts;
    char exe[PATH_MAX];
    int target;
    worker *workers;
    task *qhead, *qtail; /* waiting for a worker */
    task *dhead, *dtail; /* finished without a worker, waiting for the defer timer */
    size_t pending;      /* queued, running and deferred: keeps the loop alive */
    slot *slots;
    size_t nslots;
    uv_timer_t keep, respawn, defer;
    int open_handles;
    int streak;      /* workers in a row that died before finishing anything */
    int start_fails; /* workers in a row that died before hello */
    char last_start_fail[256];
    uint64_t next_spawn_ms;
    int broken;
    char broken_msg[PATH_MAX + 512];
    int alive;
    uint64_t started;
    int freeing;
    int dispatching, redispatch;
    uint64_t seq;
};

/* --- one worker (worker.c) --- */

/* Starts one worker process: 0, or a libuv error (nothing was started). */
int worker_spawn(sl_workers *w);
/* Counts toward the target: STARTING, READY, LOADING or BUSY. */
bool worker_live(const worker *k);
/* READY, with its process running: it may be given a task. */
bool worker_idle(const worker *k);
/* Hands an idle worker a task (LOAD if its instance is not loaded there,
 * then RUN): 0, or SL_ENOMEM and the task was not taken. */
int worker_give(worker *k, task *t);
/* After an answer (BUSY, its task let go): READY for the next task, or
 * RETIRING, asked to end by itself once it read the end of its input. */
void worker_ready(worker *k);
void worker_retire(worker *k, const char *why);
/* sl_workers_free: ends it as soon as it can (nobody waits for its task). */
void worker_stop(worker *k);
/* Its process ended: EXITED, its task (if any) let go, its handles closed. */
void worker_close(worker *k, const char *what);

/* --- what a worker tells the executor (workers.c) --- */

/* It said hello: workers do start. */
void workers_started(sl_workers *w);
/* It answered t and let it go (`spent`: it asks to end, its heap full):
 * workers do work; the executor recycles it or makes it READY. */
void workers_answered(worker *k, task *t, int rc, const char *msg, bool spent);
/* t ended without an answer (its instance's init failed, or it could not
 * be sent after the load). */
void workers_failed(sl_workers *w, task *t, int rc, const char *msg);
/* Its process ended (libuv's exit status and signal) and what it wrote
 * last was read; it is still in the state it ended from. Calls worker_close. */
void workers_exited(worker *k, int64_t status, int sig);
/* Hands queued tasks to idle workers. */
void workers_dispatch(sl_workers *w);

#endif
