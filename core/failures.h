/* failures.h - the failure list that lasts, kept by the sinks.
 *
 * A run's failed documents (the report's list) are recorded, after the run,
 * in the sink of each document's route (sl_plugin.failures_record, ABI
 * 1.3): uri, stage, reason, one more attempt, first and last time. A sink
 * deletes a document's row when it stores it. `sluice failed` lists the
 * rows, `sluice retry` runs their uris again, and a document that failed
 * [sluice] max_attempts runs is a dead letter: `run` and `retry` pass it
 * over until `retry --all`. `sluice serve` does the same around each pass
 * (serve.c), except that a dead letter whose file changed since its last
 * failure gets one more attempt. A third-party sink without the callbacks
 * keeps no list: it is named, and nothing else changes.
 */
#ifndef SL_FAILURES_H
#define SL_FAILURES_H

#include <stddef.h>

#include "report.h"
#include "runtime.h"

/* One row of the merged list; strings malloc'd. */
typedef struct sl_failure_entry {
    char *uri, *stage, *reason, *sink;
    int64_t attempts, first_at, last_at;
    int dead;
} sl_failure_entry;

typedef struct sl_failure_list {
    sl_failure_entry *rows; /* sorted by uri */
    size_t n;
    const char **no_list; /* sink sections whose plugin keeps no failure list */
    size_t nno_list;
    int64_t max_attempts;
} sl_failure_list;

/* Inits the routes' sinks (each once) and reads their lists. 0, or a
 * negative code with the context's message. */
int sl_failures_load(sl_runtime *rt, sl_failure_list *out);
void sl_failure_list_free(sl_failure_list *l);
/* The uris of dead (all = 0) or of all (all = 1) rows, sorted; pointers
 * into l. The caller frees the array only. */
const char **sl_failures_uris(const sl_failure_list *l, int dead, size_t *n);
/* Records the run's failures in their routes' sinks. Documents that failed
 * only because a fatal error stopped the run, or with the fatal error
 * itself, are not counted against them. 0, or a negative code with the context's message. */
int sl_failures_record(sl_runtime *rt, const sl_report *rep);

#endif
