/* guard.h - what each thread is calling right now: crash reports and watchdogs.
 *
 * sl_op_call (ops.c) records, per thread, the plugin call it is inside: the
 * instance, the plugin, the operation, the document and when it started.
 * Three things read that record:
 *
 *   - the crash handler: a fatal signal (SEGV, BUS, FPE, ILL, ABRT) or an
 *     exit() inside a plugin call prints which plugin, stage and document it
 *     was in and what the run had done so far, then exits with
 *     SL_EXIT_CRASH. It is async-signal-safe: write(2) of strings that exist
 *     already, numbers formatted by hand, no malloc, on an alternate stack
 *     (sigaltstack) so a stack overflow is reported too. The store is as
 *     after kill -9: every document is stored whole or not at all, and the
 *     next run resumes;
 *   - the watchdog thread: a call on the loop thread running past 100 ms
 *     (an io plugin blocking the loop) and a pool call running past
 *     `[sluice] slow_call` are logged once each, with plugin and document;
 *   - nothing else: the record is a few stores per call.
 */
#ifndef SL_GUARD_H
#define SL_GUARD_H

#include <stdint.h>

#include "sluice/plugin.h"

/* The exit status of a crash in a plugin (README: exit status). */
#define SL_EXIT_CRASH 5

struct sl_report;
struct sl_instance;

/* One thread's current call. The fields are written by their own thread. */
typedef struct sl_guard_call {
    const char *inst; /* the stage's section name */
    const char *plugin;
    const char *op;              /* "parse", ...; NULL: a caller's own function */
    const char *doc;             /* the document's URI, or NULL (a batch, the run) */
    int bottleneck;              /* sl_bottleneck */
    uint64_t t_start;            /* sl_now_ns() when it began */
    struct sl_guard_call *outer; /* the call this one is nested in, if any */
} sl_guard_call;

/* Marks the calling thread as inside a callback of inst's plugin (`what`:
 * "a timer", "an HTTP answer") until sl_guard_leave(c): an io plugin's code
 * runs there too, outside any sl_op_call. */
void sl_guard_enter_callback(sl_guard_call *c, const struct sl_instance *inst, const char *what);

/* Marks the calling thread as inside c until sl_guard_leave(c). */
void sl_guard_enter(sl_guard_call *c);
void sl_guard_leave(sl_guard_call *c);

/* Installs the crash handlers (fatal signals, exit() from a plugin call)
 * for this process; `command` names what sluice was doing ("run", ...). */
void sl_guard_install(const char *command);
/* An alternate signal stack for the calling thread (pool and batcher
 * threads call it when they start, and sl_guard_thread_end before they end). */
void sl_guard_thread_begin(void);
void sl_guard_thread_end(void);
/* The report whose counts a crash prints (NULL: none). */
void sl_guard_set_report(const struct sl_report *rep);
/* The loop thread (its long calls block every io request). */
void sl_guard_set_loop_thread(void);

/* SIGINT and SIGTERM before the run's loop listens for them: from process
 * start until the pipeline (or serve) starts its own handlers, an interrupt
 * is counted instead of killing the process by default (an exit status
 * outside the README's table, with plugins half initialised). The pipeline
 * takes the count when it starts: one interrupt ends the run before any
 * document (exit 3), two stop it at once. Only `run`, `retry` and `serve`
 * hold interrupts; every other command keeps the default. */
void sl_guard_hold_interrupts(void);
/* Holds them again once the loop has stopped listening (libuv restores the
 * default when its last signal handle closes), so the end of a run (report,
 * plugin fini, store close) is not killed halfway either. A no-op unless
 * the command holds interrupts, or while a loop handle still listens. */
void sl_guard_rehold_interrupts(void);
/* How many interrupts arrived while held (and clears the count). */
int sl_guard_take_interrupts(void);

/* The watchdog thread: logs a loop-thread call past loop_ms and any other
 * call past slow_ms (0: never), once per call. */
int sl_guard_start(uint64_t loop_ms, uint64_t slow_ms);
void sl_guard_stop(void);

#endif
