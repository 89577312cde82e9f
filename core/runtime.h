/* runtime.h - a config turned into something that can run: settings, stage
 * instances and routes.
 *
 * The [sluice] section holds the run's settings (its own option table, so
 * typos are errors there too). Every [route.NAME] section sends documents of
 * some media types through stages to a sink:
 *     [route.text]
 *     media = text/markdown text/plain
 *     stages = markdown chunker embedder    ; parser, page stages, chunker, llm, embedder
 *     sink = store
 * Every other section is a stage instance (instance.h). Roles are checked
 * against positions, parsers against the media types they declare, and
 * routes sharing a sink must embed with the same model and dimension.
 */
#ifndef SL_RUNTIME_H
#define SL_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "ctx.h"
#include "instance.h"
#include "ops.h"
#include "registry.h"

typedef struct sl_settings {
    int64_t threads;
    uint64_t memory_budget;
    int64_t max_documents;
    uint64_t max_file_size;
    const char *include;
    const char *exclude;
    const char *plugin_path;
    int64_t retries;
    int64_t retry_base_ms;
    int64_t retry_max_ms;
    int64_t retry_budget_ms;   /* a unit's backoffs, Retry-After included, at most */
    int64_t shutdown_grace_ms; /* after a signal, in-flight work may take this long */
    int64_t workers;
    int64_t worker_max_documents;
    uint64_t worker_max_rss;
    uint64_t worker_memory_limit;
    int64_t worker_timeout_ms;
    bool worker_seccomp;
    int64_t max_children;       /* documents a document may hold (email attachments) */
    uint64_t max_child_bytes;   /* their bytes in all */
    const char *watch;          /* serve: folders to follow, space-separated */
    int64_t watch_debounce_ms;  /* serve: quiet time before a changed path is ingested */
    int64_t rescan_ms;          /* serve: full rescan every this long; 0: never */
    int64_t report_interval_ms; /* serve: a counters line in the log every this long; 0: never */
    const char *listen;         /* HOST:PORT of the HTTP service (httpd.h); "" off */
    int64_t listen_linger_ms;   /* `run`: keep serving this long after the run ended */
    int64_t max_attempts;       /* failed this many runs: a dead letter, not retried by `run`; 0: never */
    int64_t call_deadline_ms;   /* a call answering SL_PENDING gets this long, unless its stage says */
    int64_t slow_call_ms;       /* a pool call running longer is logged; 0: never */
    const char
        *s3_endpoint; /* s3:// URIs: an S3-compatible server (path style); "": the environment's, or AWS */
    int64_t fetch_timeout_ms; /* one http(s):// or s3:// request, at most */
    const char
        *fetch_ca_file; /* http(s):// and s3:// documents: CA certificates besides the system's; "" none */
    int64_t queue_lease_size; /* queue nodes: jobs leased (and held) at once */
    int64_t queue_lease_ms;   /* queue nodes: a lease lasts this long unless heartbeated */
    int64_t queue_poll_ms;    /* queue nodes: an idle node looks again after about this long */
    int64_t queue_backoff_ms; /* queue: a failed job's first wait, doubled per failure */
} sl_settings;

/* The core's table for [sluice] (shown by `sluice plugins`). */
const sl_option *sl_settings_options(void);

typedef struct sl_route {
    char *name; /* NAME of [route.NAME] */
    char **media;
    size_t nmedia;
    sl_instance *parser;
    sl_instance **pages;
    size_t npages;
    sl_instance *chunker;
    sl_instance *llm;      /* may be NULL: no summaries */
    sl_instance *embedder; /* may be NULL: chunks stored without vectors */
    sl_instance *sink;
    char fingerprint[33]; /* hex XXH3-128 of every stage's canonical options */
} sl_route;

typedef struct sl_runtime {
    sl_ctx *ctx;
    sl_config *cfg; /* borrowed */
    sl_registry *reg;
    sl_settings set;
    char **owned;
    size_t nowned;
    sl_instance **inst;
    size_t ninst;
    sl_route *routes;
    size_t nroutes;
    int threads;              /* resolved: set.threads or the core count */
    struct sl_loop *loop;     /* the loop thread's loop: runs and io services use it */
    int loop_borrowed;        /* opened on a loop of the caller's (sl_runtime_open_on): not freed here */
    struct sl_parked *parked; /* memory a late plugin answer may still write: freed last */
    int claim_wait;           /* --wait: sl_runtime_claim waits for a store another process holds */
    int claim_interrupted;    /* ... and SIGINT or SIGTERM ended that wait (exit 3, not 4) */
} sl_runtime;

/* Keeps p until the runtime is freed (after every instance's fini and the
 * loop), then calls fn(p): the memory of a call abandoned at its deadline,
 * which the plugin may still answer into. */
void sl_runtime_park(sl_runtime *rt, void *p, void (*fn)(void *));

/* Loads every plugin the config names and builds all instances and routes
 * (no init yet). Errors are SL_EFATAL with file, line, section and key. */
int sl_runtime_open(sl_ctx *ctx, sl_config *cfg, sl_runtime **out);
/* The same on a loop that outlives the runtime (`sluice serve` keeps one
 * loop across reloads); freeing the runtime then only runs the loop once,
 * without waiting, so the handles its plugins closed finish closing. */
int sl_runtime_open_on(sl_ctx *ctx, sl_config *cfg, struct sl_loop *loop, sl_runtime **out);
/* Inits the instances used by routes (all of them when `all`; isolated
 * ones only then: a run leaves them to its worker processes), then checks
 * what only init can tell (dimensions along shared sinks). */
int sl_runtime_init(sl_runtime *rt, bool all);
void sl_runtime_free(sl_runtime *rt);
/* Makes this process the one writer of every store the routes use (the
 * sinks' claim callback), for `run` and `serve`. SL_EFATAL, with the
 * holder named in the context's message, when another process has one;
 * with rt->claim_wait (`--wait`) it waits instead, polling, until the
 * holder is gone (a sink answers SL_ERETRY for a store that is held). */
int sl_runtime_claim(sl_runtime *rt);
/* Says how every sink instance is to be opened (SL_STORE_*, read by the
 * plugin through sl_instance_store_mode); before their init. */
void sl_runtime_set_store_mode(sl_runtime *rt, int mode);

/* Adds each folder of a space-separated list to the registry, relative ones
 * resolved against base (the INI file's folder): [sluice] plugin_path. */
void sl_registry_add_path_list(sl_registry *reg, const char *list, const char *base);

const sl_route *sl_runtime_route_for(const sl_runtime *rt, const char *media_type);
const sl_route *sl_runtime_route_named(const sl_runtime *rt, const char *name);

#endif
