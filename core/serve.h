/* serve.h - `sluice serve`: the long-running form of `sluice run`.
 *
 * It ingests the watched folders, then follows them: inotify events (one
 * libuv fs_event per directory, since Linux watches are not recursive)
 * collect changed paths, a debounce waits until each has been quiet and its
 * size and mtime steady, and the ready paths go through one pass: an
 * ordinary run (pipeline.c) over those paths, pruning what was deleted. A
 * periodic rescan of every folder catches what events missed (an overflowed
 * inotify queue, a folder not yet watched). Passes run one after another,
 * so a path is never in two jobs at once; events that come during a pass
 * wait in the kernel's queue and are read when it ends.
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

/* Loads and validates a configuration and builds an initialised runtime
 * (the CLI's load with its --set overrides): 0, or an error in ctx with
 * nothing left allocated. */
typedef int (*sl_serve_open_fn)(void *arg, sl_config **cfg, sl_runtime **rt);

typedef struct sl_serve_opts {
    const char *const *paths; /* folders or files to follow; none: [sluice] watch */
    size_t npaths;
    sl_serve_open_fn open;
    void *open_arg;
} sl_serve_opts;

/* Runs until SIGTERM or SIGINT. Takes ownership of cfg and rt (already
 * claimed: sl_runtime_claim). Returns 0 after a signal, SL_EFATAL when
 * nothing can be watched or a reloaded store cannot be claimed (message
 * in ctx). */
int sl_serve(sl_ctx *ctx, sl_config *cfg, sl_runtime *rt, const sl_serve_opts *opts);

#endif
