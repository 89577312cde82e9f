/* pool.h - the thread pool: one thread per core, for thread-safe native code.
 *
 * Tasks are intrusive (the caller embeds an sl_task and keeps it alive until
 * `done` runs). `run` executes on a pool thread and is told which thread it
 * is on, so the pipeline can keep per-thread plugin state in an array;
 * `done` then runs on the loop thread (posted through sl_loop_post), which is
 * where all pipeline state lives. Queued tasks run highest priority first,
 * FIFO within a priority: the pipeline gives later stages higher priority so
 * documents in flight finish before new ones start, which keeps memory flat.
 */
#ifndef SL_POOL_H
#define SL_POOL_H

#include <stdint.h>

#include "loop.h"

#define SL_POOL_PRIORITIES 8
/* Each pool thread's stack (address space; pages are touched as used). */
#define SL_POOL_STACK ((size_t)256 << 20)

typedef struct sl_task sl_task;
struct sl_task {
    sl_post post; /* first: the completion travels back as a post */
    sl_task *next;
    int priority; /* 0 .. SL_POOL_PRIORITIES-1, higher first */
    void (*run)(sl_task *task, int thread);
    void (*done)(sl_task *task);
    uint64_t t_submit, t_start, t_end; /* sl_now_ns() stamps */
};

typedef struct sl_pool sl_pool;

/* Starts `threads` threads (>= 1). `thread_exit(arg, thread)` runs on each
 * pool thread just before it ends (to free per-thread plugin state). */
int sl_pool_new(sl_loop *loop, int threads, void (*thread_exit)(void *arg, int thread), void *arg,
                sl_pool **out);
int sl_pool_threads(const sl_pool *pool);
/* Thread-safe. The task must stay valid until its done callback ran. */
void sl_pool_submit(sl_pool *pool, sl_task *task);
/* One more thread, with the next index (a thread left to a call that
 * passed its deadline is replaced): the new index, or -1. Loop thread. */
int sl_pool_add_thread(sl_pool *pool);
/* Tasks queued, not yet started (for the progress line). */
int sl_pool_queued(sl_pool *pool);
/* Lets running and queued tasks finish, runs thread_exit on each thread,
 * joins them and frees the pool. Their done callbacks are posted to the
 * loop, which must run again to deliver them. */
void sl_pool_free(sl_pool *pool);
/* For a pool with a thread still inside a call that will not return:
 * asks every thread to end once idle and detaches them all, joining none;
 * the pool's memory is kept (the stuck thread still reads it). The process
 * is expected to exit soon: sluice then exits without unloading plugins. */
void sl_pool_abandon(sl_pool *pool);

/* Number of cores this process may run on: its CPU affinity (taskset,
 * cpusets), else the online cores; at least 1. */
int sl_cpu_count(void);

#endif
