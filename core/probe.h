/* probe.h - `sluice check --connect`: inits every instance and makes one
 * minimal real request to each provider and sink (see probe.c). */
#ifndef SL_PROBE_H
#define SL_PROBE_H

#include <stdio.h>

#include "runtime.h"

/* Prints the table (or JSON) on out; returns how many probes failed, or a
 * negative code with the context's message. */
int sl_probe_all(sl_runtime *rt, int json, FILE *out);

#endif
