/* threads.h - this process's threads as the kernel counts them
 * (/proc/self/task): what each ran and waited for a core, by name.
 *
 * A run reads them at its start and at its end (pipeline.c). The report
 * gives the CPU each name's threads used in between: the loop thread
 * ("loop"), the pool's ("sluice-pool"), and the plugins' own threads, which
 * no stage's busy time shows (sink-sqlite's "sqlite-writer",
 * "sqlite-keywords", "sqlite-ckpt"). Worker processes are other processes
 * and are not counted; a thread that ended between the two readings takes
 * its CPU with it.
 */
#ifndef SLUICE_THREADS_H
#define SLUICE_THREADS_H

#include <stddef.h>
#include <stdint.h>

#include "report.h"

typedef struct sl_thread_sample {
    long tid;
    char name[16]; /* the thread's name (comm), "loop" for the main thread */
    uint64_t ran_ns, waited_ns;
} sl_thread_sample;

typedef struct sl_thread_samples {
    sl_thread_sample *v;
    size_t n;
    int have_wait; /* schedstat was read: waited_ns means something */
} sl_thread_samples;

/* Reads every thread of this process. 0, or -1 when /proc/self/task
 * cannot be read (out is then empty). */
int sl_threads_read(sl_thread_samples *out);
void sl_threads_free(sl_thread_samples *t);

/* How long the threads of t have waited, runnable, for a core, summed, in
 * seconds; -1 where the kernel does not say (no schedstats). */
double sl_threads_waited_s(const sl_thread_samples *t);

/* The CPU each name's threads used from `before` to `after` (a thread
 * absent from `before` counts from 0), most first, into a malloc'd array.
 * 0, or -1 out of memory. */
int sl_threads_cpu_by_name(const sl_thread_samples *before, const sl_thread_samples *after,
                           sl_thread_cpu **out, size_t *n);

#endif
