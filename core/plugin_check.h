/* plugin_check.h - `sluice check --plugin FILE.so`: what a third party runs before
 * shipping a plugin.
 *
 * Loads the file the way a run would (every ABI refusal applies), builds an
 * instance from the option defaults plus KEY=VALUE overrides, runs init and
 * fini, and exercises the role's contract on small sample input: a parser
 * must turn samples of the media types it declares into valid elements, a
 * chunker must chunk, an embedder must return finite vectors of its declared
 * dimension, a sink must store, find, query and prune a sample document.
 */
#ifndef SL_PLUGIN_CHECK_H
#define SL_PLUGIN_CHECK_H

#include <stdio.h>

#include "ctx.h"

/* Returns 0 when the plugin passes; SL_EFATAL when it cannot be loaded,
 * configured or initialised; SL_EBADINPUT when it breaks its role's
 * contract. Progress and findings go to out. */
/* connect: then also one real request (probe.h); a plugin with nothing to
 * connect to is refused with SL_EINVAL before any check. */
int sl_check_plugin(sl_ctx *ctx, const char *path, const char *const *overrides, size_t noverrides,
                    int connect, FILE *out);

#endif
