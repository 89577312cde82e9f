/* workers.h - the isolated executor: pre-started worker processes.
 *
 * For crash-prone or untrusted work. Each worker is the sluice executable
 * started in worker mode (`sluice __worker FD`: never a fork of this
 * threaded process), fed over a socketpair in a framed format. A worker
 * loads the plugin itself, rebuilds the instance from the option values it
 * is sent, runs one operation on one document (or page) at a time and sends
 * back what the plugin added; the core applies that to its own copy of the
 * document before calling `done` on the loop thread. The document's bytes
 * travel as the file path or a memfd, not through the socket.
 *
 * A worker that dies (signal, exit) is replaced and its document fails with
 * the cause ("segmentation fault in plugin X on file Y"); one past the call
 * timeout is killed and replaced; one past its document count or resident
 * size is recycled between documents; setrlimit caps its memory so a runaway
 * allocation fails one document. No worker outlives sl_workers_free.
 */
#ifndef SL_WORKERS_H
#define SL_WORKERS_H

#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "instance.h"
#include "loop.h"
#include "ops.h"
#include "sluice/doc.h"

typedef struct sl_workers sl_workers;

typedef struct sl_workers_opts {
    const char *exe;        /* the sluice executable; NULL: /proc/self/exe */
    int count;              /* worker processes; 0: derived from cores and the memory budget */
    uint64_t memory_budget; /* for the derived count */
    uint64_t max_documents; /* recycle a worker after this many documents; 0: never */
    uint64_t max_rss;       /* recycle a worker above this resident size; 0: never */
    uint64_t memory_limit;  /* RLIMIT_AS of each worker; 0: none */
    int64_t timeout_ms;     /* default per-call limit when the stage sets none; 0: none */
    bool seccomp;           /* deny network and file writes after the plugin's init */
} sl_workers_opts;

/* `rc` is what the plugin returned (or SL_EBADINPUT for a crash, hang or
 * memory limit), `msg` the reason; the document already holds the results.
 * `t_start_ns` is the sl_now_ns() at which the operation was handed to a
 * worker process (after waiting in the executor's queue for a free one),
 * or 0 if it never reached one: before it is queue time, after it busy. */
typedef void (*sl_worker_done)(void *arg, int rc, const char *msg, uint64_t t_start_ns);

int sl_workers_new(sl_ctx *ctx, sl_loop *loop, const sl_workers_opts *opts, sl_workers **out);
/* Queues one operation: one whose row in the operation table says a worker
 * may run it (sl_op->isolatable: parse, page, chunk), of a plugin whose role
 * provides it; `page` (1-based) for a page operation, else 0. Runs `done`
 * on the loop thread later, never inside this call. 0, or SL_EINVAL /
 * SL_ENOMEM with the reason in the context. */
int sl_workers_submit(sl_workers *w, sl_instance *inst, sl_op_id op, sl_doc *doc, uint32_t page,
                      sl_worker_done done, void *arg);
/* The number of workers it keeps (opts->count or the derived count). Use
 * it as an isolated stage's in-flight limit, so operations wait in the
 * stage's queue (and its statistics) rather than inside the executor. */
int sl_workers_size(const sl_workers *w);
/* Workers alive now, and started in all (restarts included), for the report. */
int sl_workers_alive(const sl_workers *w);
uint64_t sl_workers_started(const sl_workers *w);
/* Stops every worker (waiting for none), reaps them and frees. Queued
 * operations are not run: call it after the run's documents are done. */
void sl_workers_free(sl_workers *w);

/* The worker process's side (worker_main.c): `sluice __worker FD` calls
 * this and exits with its value. */
int sl_worker_main(int fd);

#endif
