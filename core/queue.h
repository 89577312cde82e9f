/* queue.h - many sluice processes on one corpus: the client side of a
 * sink's job queue (plugin.h, ABI 1.5).
 *
 * `sluice enqueue` walks paths and adds one job per document; `sluice run
 * --queue` and `serve --queue` make this process a node that leases jobs in
 * batches, feeds them into its own pipeline (sl_pipeline_add_job), keeps
 * its leases alive on a timer and hands each ending back to the queue: a
 * stored document was acked in its store transaction, an unchanged one is
 * acked here, a failed one is retried after backoff or dead. `sluice queue
 * status` prints what the queue holds and what each node did lately.
 */
#ifndef SL_QUEUE_H
#define SL_QUEUE_H

#include <stdio.h>

#include "report.h"
#include "runtime.h"

/* Enqueues the documents found under paths (the walk `run` does), in
 * batches, and prints the counts (text, or one JSON object). 0, or a
 * negative code with the context's message. */
int sl_queue_enqueue(sl_runtime *rt, const char *const *paths, size_t npaths, int json, FILE *out);

/* Runs this process as a node until the queue holds no queued or leased
 * job (serve: until SIGINT or SIGTERM), filling rep as a run does. The
 * caller has initialised the runtime; the node joins the store itself
 * (queue_join instead of claim). *busy is set when another process holds
 * the store as a plain writer. 0, or a negative code as sl_pipeline_run. */
int sl_queue_run_node(sl_runtime *rt, int serve, sl_report *rep, int *busy);

/* `sluice queue status`: counts by state, the oldest queued job's age,
 * dead letters, each node's leases and acks in the last 1 and 5 minutes. */
int sl_queue_status(sl_runtime *rt, int json, FILE *out);

#endif
