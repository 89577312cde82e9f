/* fuzz.h - what the harnesses share. Each harness defines
 * LLVMFuzzerTestOneInput (and may define LLVMFuzzerInitialize); built with
 * -DSLUICE_FUZZ=ON (clang) it links libFuzzer, otherwise replay.c's main
 * runs it over files and folders (the committed corpus and the crash
 * reproducers, as regression tests in every build).
 */
#ifndef SLUICE_FUZZ_H
#define SLUICE_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "instance.h"
#include "registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Loads plugin NAME from the build's plugin folder (SLUICE_PLUGIN_DIR, or
 * the folder compiled in) and makes an initialised instance with its
 * defaults and `overrides` ("key=value"); exits with a message on failure:
 * a harness that cannot start must not pass. */
sl_instance *fuzz_instance(const char *name, const char *const *overrides, size_t n);

/* The shared context harnesses fail calls into (messages are scrubbed
 * through it). */
sl_ctx *fuzz_ctx(void);

/* A copy of the input that ends where a PROT_NONE page begins, so that a
 * read past its end faults even inside a library built without sanitizers
 * (md4c, libxml2, mupdf are Debian's, not instrumented): ASan only sees
 * such reads in code it instrumented. The copy is valid until the next
 * call. */
const uint8_t *fuzz_at_guard(const uint8_t *data, size_t size);

#endif
