/* store.h - keeping a store healthy: `sluice store check` and `sluice store
 * rebuild`.
 *
 * check opens each sink of the routes with SL_STORE_SALVAGE (read-only, a
 * damaged store opens) and asks its `check` callback (ABI 1.4) for the
 * problems it finds and the counts of documents, chunks, vectors and
 * orphans. rebuild is three steps, driven by cli.c: sl_store_salvage lists
 * what the old store says it holds (SL_STORE_SALVAGE, `documents`), a run
 * re-ingests those paths into a fresh store (SL_STORE_REBUILD), and
 * sl_store_swap puts the fresh store in place (`rebuild_swap`), the old
 * one kept as a backup. A run that stops leaves the real store as it was.
 */
#ifndef SL_STORE_H
#define SL_STORE_H

#include <stdio.h>

#include "runtime.h"

/* Checks every distinct sink of the routes and prints what it found (text,
 * or one JSON object with --json). *damaged: how many sinks found their
 * store damaged. 0, or a negative code with the context's message (a sink
 * without `check`, a store that does not exist, one that cannot be read). */
int sl_store_check(sl_runtime *rt, int json, FILE *out, int *damaged);

/* The paths to re-ingest: the uris every sink lists (as far as it can read
 * them), a document found inside another (PARENT#NAME) as its parent,
 * sorted, each once. Refuses a sink that cannot rebuild (no `documents` or
 * no `rebuild_swap`) before anything is read. The caller frees each string
 * and the array. 0, or a negative code with the context's message. */
int sl_store_salvage(sl_runtime *rt, char ***paths, size_t *npaths);

/* Puts each sink's fresh store in place of the old one (`rebuild_swap`),
 * printing on `out` the line each says (where the old store was kept). */
int sl_store_swap(sl_runtime *rt, FILE *out);

#endif
