/* pipeline.h - one ingestion run: documents from paths through routes into sinks.
 *
 * The loop thread owns every document's state. A document is a job that
 * moves through steps: read (mmap and hash, pool) → lookup in the sink
 * (skip if unchanged) → parse → page stages (fanned out per page, joined)
 * → chunk → embed (chunks from many documents batched together) → store
 * (one transaction) → done. Each step runs where its plugin's bottleneck
 * says: cpu plugins on the pool, io plugins on the loop. A failure fails
 * that document only, with the stage and the reason; retryable failures are
 * retried with exponential backoff and full jitter; a fatal one stops the
 * run. Documents in flight are bounded by count and by bytes, so memory
 * stays flat however large the corpus.
 */
#ifndef SL_PIPELINE_H
#define SL_PIPELINE_H

#include <stddef.h>

#include "report.h"
#include "runtime.h"

typedef struct sl_run_opts {
    const char *const *paths;
    size_t npaths;
    int prune;    /* remove stored documents under paths that were not seen */
    int progress; /* draw the live progress line on stderr */
    /* with prune: more roots to prune under, not walked (`sluice serve`:
     * paths that were deleted) */
    const char *const *prune_only;
    size_t nprune_only;
    /* Where the run in progress is published for readers on the loop
     * thread (the HTTP service, httpd.h): set when the run starts, NULL
     * again when it ends. NULL: not published. */
    struct run **live;
    /* dead letters (failures.c): uris sorted by strcmp, passed over and
     * counted as parked; may be NULL */
    const char *const *parked;
    size_t nparked;
    /* `sluice inspect`: no lookup and no store (the sink is never called);
     * each route ends after the stage named stop_after (a section name, or
     * "read") when it has one; observe sees the document after each step,
     * on the loop thread, with the step's stage, operation and busy time */
    int inspect;
    const char *stop_after;
    void (*observe)(void *arg, const char *stage, const char *op, const sl_doc *doc, double busy_s);
    void *observe_arg;
    /* called with the report as it stands when sluice stops without
     * unwinding (a second interrupt, shutdown_grace over), then it exits 3 */
    void (*last_report)(const sl_report *rep, void *arg);
    void *last_report_arg;
    /* queue nodes (queue.c): while hold answers 1 (and the run is not
     * stopping) the run does not end when it runs out of work, waiting for
     * sl_pipeline_add_job; ended sees each document given by path (not
     * one found inside another) when it ends: stored 1, skipped 0 (stored
     * unchanged), failed -1 with the stage and reason; closing is called
     * once, when the run ends (close the handles that kept the loop). */
    int (*hold)(void *arg);
    void (*ended)(void *arg, const struct sl_doc *doc, int outcome, const char *stage, const char *reason);
    void (*closing)(void *arg);
    void *queue_arg;
} sl_run_opts;

/* Runs to the end (or to an interrupt or fatal error) and fills rep.
 * Returns 0 when the run completed (documents may have failed: see rep),
 * or a negative code when it could not start or was stopped. */
int sl_pipeline_run(sl_runtime *rt, const sl_run_opts *opts, sl_report *rep);

/* Brings the live numbers of a run in progress (published in opts->live)
 * into its report: queues, in-flight units and bytes, breakers, batch
 * sizes, worker restarts. Loop thread only; the counters the report keeps
 * as the run goes need no refresh. */
void sl_pipeline_refresh(struct run *r);

/* `sluice serve`: a file that became ready while the run (published in
 * opts->live) goes on joins it, read and stored like the files it was
 * given, without waiting for it to end; its roots and prune do not change.
 * Loop thread only. The caller makes sure the run does not hold the path
 * already. 1 when taken, 0 when the run no longer admits (it is ending,
 * stopping or stopped by a fatal error) or out of memory. */
int sl_pipeline_add(struct run *r, const char *path);

/* A queue node's document (queue.c): as sl_pipeline_add, with the job's id
 * and fencing token set on the document (sl_doc_queue_job); a path that
 * cannot be read fails the document (and so the job) instead of being
 * passed over. */
int sl_pipeline_add_job(struct run *r, const char *path, int64_t id, int64_t token);
/* The run looks again whether it may end (after hold changed its mind). */
void sl_pipeline_poke(struct run *r);

#endif
