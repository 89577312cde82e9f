/* sandbox.h - what a worker process does to contain the plugin it runs.
 *
 * Two fences, both inside the worker (worker_main.c) and both one-way from
 * the plugin's side:
 *   - a cap on the address space (RLIMIT_AS) while a plugin runs, so a
 *     runaway allocation fails one document instead of the machine. The cap
 *     counts from what the worker holds after loading its plugins, plus the
 *     configured limit; it is lifted while plugins load and while the answer
 *     is sent, so neither fails for the plugin's limit.
 *   - a seccomp filter, when asked for, installed once before the first
 *     document (after every plugin's init, which may open its models): no
 *     new sockets, no file writes, creations or removals.
 * The supervisor (workers.c) only sends the settings; it never relies on the
 * sandbox for its own safety: a worker that breaks out is still a process
 * that can only answer over its socket.
 */
#ifndef SL_SANDBOX_H
#define SL_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl_sandbox {
    uint64_t memory_limit; /* what a plugin may add to the worker's base; 0: no cap */
    bool seccomp;          /* install the filter before the first document */
    bool locked;           /* the filter is installed (for good) */
    bool stale;            /* plugins were loaded since the base was measured */
    uint64_t limit_at;     /* RLIMIT_AS while a plugin runs: base + memory_limit */
} sl_sandbox;

/* Whether this sluice was built with libseccomp. */
bool sl_sandbox_seccomp_available(void);

/* The settings sent by sluice (CONFIG); the base is measured on next use. */
void sl_sandbox_init(sl_sandbox *s, uint64_t memory_limit, bool seccomp);
/* Plugins are about to be loaded: the cap is lifted, and the base is
 * measured again before the next document. */
void sl_sandbox_loading(sl_sandbox *s);
/* Measures the base if plugins were loaded since it last was (and caps):
 * called before a document is mapped, so its bytes are not counted as base. */
void sl_sandbox_measure(sl_sandbox *s);
/* Caps the address space at base + limit (measuring a stale base first). */
void sl_sandbox_limit(sl_sandbox *s);
/* Lifts the cap (to send an answer that must not fail for it). */
void sl_sandbox_unlimit(sl_sandbox *s);
/* Installs the seccomp filter if asked for and not yet installed: 0, or
 * SL_EFATAL with the reason in err. */
int sl_sandbox_lock(sl_sandbox *s, char *err, size_t errlen);

#endif
