/* probe.h - `sluice check --connect`: inits every instance and makes one
 * minimal real request to each provider and sink (see probe.c). */
#ifndef SL_PROBE_H
#define SL_PROBE_H

#include <stdio.h>

#include "runtime.h"

/* Prints the table (or JSON) on out; returns how many probes failed, or a
 * negative code with the context's message. */
int sl_probe_all(sl_runtime *rt, int json, FILE *out);
/* Whether a plugin has anything to connect to: a probe of its own, or it
 * is an embedder, a sink or an io plugin. */
int sl_probe_applies(const sl_plugin *d);
/* One instance (`check --plugin X.so --connect`): inits it if need be and
 * probes it as sl_probe_all does; line gets "connect: REQUEST in MS ms,
 * HTTP STATUS: RESULT" (scrubbed). 1 when the probe passed, else 0. */
int sl_probe_instance(sl_ctx *ctx, sl_instance *s, char *line, size_t n);

#endif
