/* batcher.h - the gpu executor: one dispatcher per model instance.
 *
 * Page units from many documents queue up; a batch goes out when it reaches
 * max_batch or when its oldest unit has waited max_delay. The dispatcher
 * thread calls the plugin's `pages` callback with the whole batch (models
 * are fast only on batches). Units of different shapes are grouped by page
 * image size when the stage asks for it, so a batch never mixes shapes the
 * model cannot pad. On out of memory (SL_ENOMEM) the batch is split in half
 * and retried, and the largest batch that worked becomes the new ceiling.
 * Results go back to the loop thread, one `done` per unit.
 *
 * A plugin that answers SL_ENOMEM must leave the documents as they were
 * (the same pages run again in smaller batches). Any other failure fails
 * every unit of the batch with the plugin's message; the pipeline decides
 * what that means for each document. The dispatcher calls the plugin
 * through sl_op_call (ops.c), which runs its thread_init (when declared) on
 * the dispatcher's own thread, as thread_fini at the end, so per-thread
 * state (a CUDA stream, libtorch's thread count) lives where the model runs.
 */
#ifndef SL_BATCHER_H
#define SL_BATCHER_H

#include <stdbool.h>
#include <stdint.h>

#include "instance.h"
#include "loop.h"
#include "sluice/doc.h"
#include "sluice/plugin.h"

typedef struct sl_batcher sl_batcher;

typedef struct sl_batcher_opts {
    uint32_t max_batch;    /* units per batch at most */
    uint64_t max_delay_ms; /* longest the oldest queued unit waits for a fuller batch */
    bool group_by_shape;   /* a batch holds pages of one image size only */
} sl_batcher_opts;

#define SL_BATCH_HIST 8 /* batch sizes 1, 2, 3-4, 5-8, ..., 65+ */

typedef struct sl_batcher_stats {
    uint64_t batches;
    uint64_t units;
    uint64_t hist[SL_BATCH_HIST]; /* batches by size bucket */
    uint64_t queue_wait_ns;       /* summed over units */
    uint64_t device_ns;           /* time inside the plugin's `pages` */
    uint64_t splits;              /* batches halved after SL_ENOMEM */
    uint32_t ceiling;             /* the largest batch size that works */
} sl_batcher_stats;

/* When a unit's first batch started (sl_now_ns), its share of the time
 * spent inside `pages` over every batch it was in, and how many batch
 * calls it opened (the first unit of each counts it), so the scheduler
 * accounts queue and busy time as for every other executor. */
typedef struct sl_batch_times {
    uint64_t t_start;
    uint64_t busy_ns;
    int calls;
} sl_batch_times;

typedef void (*sl_batch_done)(void *arg, int rc, const char *msg, const sl_batch_times *times);

/* The options of a gpu stage from its section: max_batch from the stage's
 * batch_size, else the plugin's declared batch_size, else 16; max_delay_ms
 * from batch_delay (the core's default, 20ms; 0 sends what is queued at
 * once); no grouping by shape (the SDK has no way to declare it yet). */
void sl_batcher_opts_for(const sl_instance *inst, sl_batcher_opts *out);

/* Starts the dispatcher thread of `inst` (whose plugin must have `pages`,
 * or `embed` for a gpu embedder).
 * SL_EINVAL for a max_batch of 0 or a plugin without `pages`, SL_ENOMEM or
 * SL_EFATAL (no thread) otherwise; the context is not touched. */
int sl_batcher_new(sl_loop *loop, sl_instance *inst, const sl_batcher_opts *opts, sl_batcher **out);
/* Loop thread: queues page `page` of `doc`; `done` runs on the loop thread,
 * with msg NULL on success (rc 0) and the plugin's message on failure.
 * The document must stay alive and untouched by others until then. */
int sl_batcher_submit(sl_batcher *b, sl_doc *doc, uint32_t page, sl_batch_done done, void *arg);
/* Loop thread: queues an embedding batch (a gpu embedder): n texts, already
 * gathered across documents, whose vectors go to out (n * dim floats).
 * The batcher calls the plugin's `embed` with at most its ceiling of them
 * at a time, halving on SL_ENOMEM; texts and out must stay alive until
 * `done`, which reports the first failure that was not a split. */
int sl_batcher_submit_texts(sl_batcher *b, const sl_text *texts, size_t n, float *out, uint32_t dim,
                            sl_batch_done done, void *arg);
/* Units queued and not yet handed to the plugin (for the progress line). */
uint32_t sl_batcher_queued(sl_batcher *b);
/* Batch sizes are bucketed as 1, 2, 3-4, 5-8, 9-16, 17-32, 33-64, 65+;
 * these are the buckets' labels, for reports. */
const char *sl_batcher_bucket_label(int bucket);
/* A consistent copy of the counters; safe from any thread. Counts every
 * call into `pages` (attempts that ran out of memory too) as a batch. */
void sl_batcher_stats_get(sl_batcher *b, sl_batcher_stats *out);
/* Runs what is queued, joins the dispatcher and frees. The last `done`
 * callbacks are posted to the loop, which must run (or be drained,
 * sl_loop_drain) afterwards to deliver them. NULL is fine. */
void sl_batcher_free(sl_batcher *b);

#endif
