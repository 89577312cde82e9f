/* dryrun.h - `sluice run --dry-run`: walk, hash and look up, then say what
 * a run would store (new), replace (changed), skip (unchanged), fail
 * (unreadable, no route), pass over (dead letters) and, with --prune,
 * remove; no provider is called and nothing is written (see dryrun.c).
 */
#ifndef SL_DRYRUN_H
#define SL_DRYRUN_H

#include <stdint.h>
#include <stdio.h>

#include "pipeline.h"

/* Prints one line per document (or, with json, one object) on out. Returns
 * 0, or a negative code with the context's message; *failed is the number
 * of documents a run would fail. */
int sl_dry_run(sl_runtime *rt, const sl_run_opts *opts, int json, FILE *out, uint64_t *failed);

#endif
