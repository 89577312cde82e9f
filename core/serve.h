/* serve.h - `sluice serve`: the long-running form of `sluice run`.
 *
 * It ingests the watched folders, then follows them: inotify events (one
 * libuv fs_event per directory, since Linux watches are not recursive)
 * collect changed paths, a debounce waits until each has been quiet and its
 * size and mtime steady, and the ready paths go through one pass: an
 * ordinary run (pipeline.c) over those paths, pruning what was deleted. A
 * periodic rescan of every folder catches what events missed (an overflowed
 * inotify queue, a folder not yet watched). Passes run one after another,
 * so a path is never in two jobs at once; files that become ready during
 * a pass over changed paths join it (sl_pipeline_add) unless it holds them
 * already, and the other paths that become ready during a pass (folders,
 * deletions, anything during a full pass) go into the next one. Each pass keeps the failure list as `run`
 * does (failures.h): read before it, its dead letters passed over unless
 * their file changed since their last failure, its failures recorded after.
 *
 * serve's handles share one loop with the passes: during a pass they are
 * unreferenced (the run ends when its own handles close) but still answer,
 * so events are read and debounced while a pass runs, and whatever else
 * lives on the loop (an HTTP service) keeps answering between passes.
 *
 * Signals are handled at the boundaries of passes: SIGTERM or SIGINT during
 * a pass finishes its documents in flight (the run's shutdown_grace), then
 * serve exits 0; SIGHUP reloads the configuration once the current pass has
 * drained, keeps the old one when the new one fails to load, and rescans
 * everything after a swap, so documents whose pipeline fingerprint changed
 * are stored again.
 */
#ifndef SL_SERVE_H
#define SL_SERVE_H

#include <stddef.h>

#include "config.h"
#include "ctx.h"
#include "runtime.h"

struct sl_loop;
/* Loads and validates a configuration and builds an initialised runtime on
 * serve's loop (sl_runtime_open_on; the CLI's load with its --set
 * overrides): 0, or an error in ctx with nothing left allocated. */
typedef int (*sl_serve_open_fn)(void *arg, struct sl_loop *loop, sl_config **cfg, sl_runtime **rt);

typedef struct sl_serve_opts {
    const char *const *paths; /* folders or files to follow; none: [sluice] watch */
    size_t npaths;
    sl_serve_open_fn open;
    void *open_arg;
} sl_serve_opts;

/* Opens the configuration, claims its stores (sl_runtime_claim) and runs
 * until SIGTERM or SIGINT. Returns 0 after a signal, or SL_EFATAL with the
 * message in ctx: a configuration that does not load, nothing to watch, or
 * a store another process holds (then *busy is 1). */
int sl_serve(sl_ctx *ctx, const sl_serve_opts *opts, int *busy);

#endif
