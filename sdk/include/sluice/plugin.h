/* sluice/plugin.h - the plugin ABI: the descriptor a plugin exports.
 *
 * A plugin is a shared object exporting one function, sluice_plugin_v1(),
 * that returns a pointer to a static const sl_plugin. The ABI major is in the
 * symbol's name, so a plugin built for another major fails cleanly at dlsym.
 * The first three fields of sl_plugin never move: the core copies what the
 * plugin declared (its `size` bytes) into a zeroed descriptor of the size it
 * knows, so a plugin built against an older minor reads as "callback absent".
 * The ABI only grows by appending fields; appending bumps SL_ABI_MINOR.
 *
 * Options are declared once, in one table: name, type, default, help, flags
 * and where the parsed value goes (an offset into the plugin's config struct,
 * which the core allocates, fills and passes to init). The same table
 * rejects INI keys the plugin does not declare and drives `sluice plugins`.
 *
 * Files and names: a plugin named NAME ([a-z0-9-]+) lives in the file
 * NAME.so, and a config's `plugin = NAME` finds it by that file name alone.
 * The core refuses a file whose descriptor declares another name ("declares
 * plugin 'x', but its file name says 'y'"). Folders are searched in this
 * order, the first NAME.so found wins: the installed plugin folder (next
 * to the sluice executable: ../lib/sluice/plugins), then [sluice]
 * plugin_path, then SLUICE_PLUGIN_PATH. So a third-party plugin takes a
 * name of its own (a prefix: "acme-parse-csv"), never an installed one.
 * `plugin = ./path/to/file.so` (any name with a slash) loads that file.
 *
 * Arguments across SL_PENDING: see the role callbacks below. In short, the
 * document and the outputs (vectors, completion) stay valid until the call
 * is answered; input texts and prompts only until the callback returns.
 */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/call.h"
#include "sluice/doc.h"
#include "sluice/export.h"
#include "sluice/http.h"
#include "sluice/io.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SL_ABI_MAJOR 1
#define SL_ABI_MINOR 7

/* One row of a sink's failure list (ABI 1.3): a document that failed, and
 * where and why the last time. failures_record reads uri, stage and reason;
 * failures_list fills every field. The strings live only as long as the
 * call that passes them. */
typedef struct sl_failure_row {
    const char *uri;
    const char *stage;  /* the stage it failed in: "embedder", "read", ... */
    const char *reason; /* scrubbed by the core before the sink sees it */
    int64_t attempts;   /* runs that failed it since it was last stored */
    int64_t first_at;   /* unix seconds: its first recorded failure */
    int64_t last_at;    /* unix seconds: its latest */
} sl_failure_row;

/* What failures_list and documents call once per row, on the thread that
 * answers the call (for io sinks: the loop thread), before the call is
 * answered. */
typedef void (*sl_failure_fn)(void *arg, const sl_failure_row *row);
typedef void (*sl_uri_fn)(void *arg, const char *uri);
/* One line of text for the user (ABI 1.4): a problem `check` found, the
 * name of the backup `rebuild_swap` kept. Lives as long as the call. */
typedef void (*sl_line_fn)(void *arg, const char *line);

/* What a sink's `check` found (ABI 1.4, `sluice store check`). The core
 * fills every count with -1 (unknown) before the call; the sink sets what
 * it could count. Only grows by appending. */
typedef struct sl_store_health {
    int64_t documents; /* document rows */
    int64_t chunks;    /* chunk rows */
    int64_t vectors;   /* chunks that have a vector */
    int64_t orphans;   /* chunks whose document row is gone */
    int32_t damaged;   /* nonzero: the store is damaged (the lines passed to `problem` say how) */
} sl_store_health;

/* The job queue (ABI 1.5): many sluice nodes share one corpus through a
 * sink that keeps a queue of documents (`sluice enqueue`, `run --queue`).
 * A job is leased by one node at a time; every lease increments its
 * fencing token, and a node's commit names (id, token), so a node whose
 * lease expired and was taken by another cannot commit late. */
typedef struct sl_queue_job {
    int64_t id;
    int64_t token;    /* the fencing token of this lease */
    const char *uri;  /* lives as long as the call that passes it */
    int64_t attempts; /* leases taken, this one included */
    uint64_t size;    /* bytes, as enqueue knew it; 0: unknown */
} sl_queue_job;
typedef void (*sl_queue_job_fn)(void *arg, const sl_queue_job *job);

/* One document for queue_enqueue. hash and fingerprint may be NULL
 * (unknown): then the job is enqueued unless one is already open. */
typedef struct sl_queue_item {
    const char *uri;
    uint64_t size;
    const char *hash;        /* the core's content hash (sl_doc_hash) */
    const char *fingerprint; /* its route's fingerprint (sl_doc_fingerprint) */
} sl_queue_item;

/* What queue_enqueue did: the sink adds to each count. */
typedef struct sl_queue_counts {
    int64_t enqueued;       /* new jobs */
    int64_t already_queued; /* a job for the uri was queued or leased already */
    int64_t unchanged;      /* stored with the same hash and fingerprint: nothing to do */
} sl_queue_counts;

/* `sluice queue status`: the core fills every field with -1 first. */
typedef struct sl_queue_stats {
    int64_t queued, leased, done, dead;
    int64_t oldest_queued_s; /* age of the oldest queued job; -1: none queued */
    int64_t backing_off;     /* queued jobs waiting for their next try after a failure */
} sl_queue_stats;

/* One node seen in the queue: leases it holds, jobs it acked lately. */
typedef struct sl_queue_node {
    const char *node; /* "host:pid:start" */
    int64_t leases;
    int64_t acked_1m, acked_5m; /* acked in the last minute, the last 5 minutes */
} sl_queue_node;
typedef void (*sl_queue_node_fn)(void *arg, const sl_queue_node *n);

/* sl_plugin.flags (ABI 1.7).
 *
 * SL_PLUGIN_SEND_OFF_LOOP: an io plugin whose embed and complete only
 * build a request and send it with the SDK's HTTP client (sluice/http.h,
 * sluice/remote.h), touching no state that another call writes. The core
 * then calls them on a pool thread, so that building the request
 * (escaping a 40 KB prompt or a batch of texts into JSON) does not hold
 * up the loop thread every transfer waits on; sl_http_send hands the
 * transfer to the loop. Everything else stays as for any io plugin: the
 * call answers SL_PENDING and sl_call_done later, and its other callbacks
 * (lookup, store, probe) run on the loop. A plugin built for an older ABI
 * reads as 0: called on the loop thread, as before. */
#define SL_PLUGIN_SEND_OFF_LOOP 0x1u

/* What a plugin does; decides which callbacks it must provide. */
typedef enum sl_role {
    SL_ROLE_PARSER = 1,   /* bytes -> pages, elements, metadata; needs parse */
    SL_ROLE_PAGE = 2,     /* per-page work (render, OCR, layout); needs page */
    SL_ROLE_CHUNKER = 3,  /* elements -> chunks; needs chunk */
    SL_ROLE_EMBEDDER = 4, /* chunk texts -> vectors, batched; needs embed */
    SL_ROLE_LLM = 5,      /* prompts -> completions (summaries); needs complete (ABI 1.1) */
    SL_ROLE_SINK = 6      /* stores documents; needs lookup, store, prune, query */
} sl_role;

/* Where a plugin's time goes; decides the executor that runs it. */
typedef enum sl_bottleneck {
    SL_IO = 1,       /* waits on network or database: the loop thread; never blocks */
    SL_CPU = 2,      /* thread-safe native code: the thread pool, per-thread state */
    SL_ISOLATED = 3, /* crash-prone or untrusted: worker processes */
    SL_GPU = 4       /* models: the batcher */
} sl_bottleneck;

typedef enum sl_opt_type {
    SL_OPT_STRING = 1,   /* const char * (owned by the core, lives as long as the instance) */
    SL_OPT_INT = 2,      /* int64_t */
    SL_OPT_DOUBLE = 3,   /* double */
    SL_OPT_BOOL = 4,     /* bool: true/false, yes/no, on/off, 1/0 */
    SL_OPT_SIZE = 5,     /* uint64_t bytes: "512", "64K", "10M", "2G" */
    SL_OPT_DURATION = 6, /* int64_t milliseconds: "250ms", "5s", "2m", "1h" */
    SL_OPT_PATH = 7,     /* const char *, relative paths resolved against the INI file's folder */
    SL_OPT_ENUM = 8      /* const char *, one of `choices` ("chars|tokens") */
} sl_opt_type;

#define SL_OPT_REQUIRED 0x1u /* the INI must give a value (a default is then meaningless) */
#define SL_OPT_SECRET 0x2u   /* never logged, reported or echoed in errors; not fingerprinted */
#define SL_OPT_NO_FINGERPRINT                                                                                \
    0x4u /* does not change the output (paths, limits): left out of the pipeline fingerprint */

/* One declared option. Frozen for ABI major 1 (tables are arrays); the table
 * ends with an entry whose name is NULL. */
typedef struct sl_option {
    const char *name;
    sl_opt_type type;
    const char *def;     /* default, as the INI would write it; NULL = zero value */
    const char *help;    /* one line for `sluice plugins` */
    uint32_t flags;      /* SL_OPT_* */
    size_t offset;       /* offsetof(your_config, field) */
    const char *choices; /* SL_OPT_ENUM only: "a|b|c" */
    const void *reserved[2];
} sl_option;

typedef struct sl_plugin {
    /* These three never move. */
    uint32_t abi_major; /* SL_ABI_MAJOR */
    uint32_t abi_minor; /* SL_ABI_MINOR */
    uint32_t size;      /* sizeof(sl_plugin) as the plugin was built */
    uint32_t flags;     /* SL_PLUGIN_* below (ABI 1.7; 0 before) */

    const char *name;    /* unique, [a-z0-9-]+, e.g. "parse-markdown" */
    const char *version; /* the plugin's own version, e.g. "1.2.0" */
    const char *summary; /* one line for `sluice plugins` */
    sl_role role;
    sl_bottleneck bottleneck;

    const sl_option *options; /* may be NULL: no options */
    size_t config_size;       /* size of the struct the options fill */

    /* Parsers: media types read ("text/markdown"), NULL-terminated. */
    const char *const *media_types;
    /* Most calls in flight at once for one instance; 0: executor decides. */
    uint32_t max_concurrency;
    /* Embedders: preferred texts per embed call; 0: the core's default. */
    uint32_t batch_size;

    /* Lifecycle (optional). init runs once per instance, on the loop thread,
     * with the filled config; what it puts in *state is handed to every
     * callback (sl_call_state). fini frees it. */
    int (*init)(sl_instance *inst, const void *config, void **state);
    void (*fini)(void *state);
    /* cpu plugins: per-thread state, made on each pool thread the first time
     * it runs this instance, freed on that same thread at shutdown. */
    int (*thread_init)(void *state, void **thread_state);
    void (*thread_fini)(void *state, void *thread_state);

    /* Role callbacks. Each returns 0, a negative SL_E* code (after sl_fail),
     * or, for io and (ABI 1.2) cpu plugins, SL_PENDING and later
     * sl_call_done() from any thread (a cpu plugin not run isolated: a
     * worker process answers at once). The document and the outputs
     * (vectors, completion) stay valid until the call is answered; the
     * input texts and prompts only until the callback returns, so a plugin
     * that answers later copies what it sends. */
    int (*parse)(sl_call *call, sl_doc *doc);
    int (*page)(sl_call *call, sl_doc *doc, uint32_t page);
    int (*chunk)(sl_call *call, sl_doc *doc);
    /* Writes n * dimension floats to out; texts[i] belongs to out[i*dim..].
     * A gpu embedder (ABI 1.4) runs on the batcher: texts come from many
     * documents at once, and SL_ENOMEM makes the batcher split the texts in
     * half and retry (the outputs of a failed call are written again). */
    int (*embed)(sl_call *call, const sl_text *texts, size_t n, float *out);

    /* Sinks. lookup answers SL_LOOKUP_* for a document whose uri, hash and
     * fingerprint are set (and records it as seen by sl_doc_run_id); store
     * replaces the document's chunks in one transaction; prune removes
     * documents under `roots` not seen in run `run_id` and answers how many;
     * query adds the k nearest chunks to hits. */
    int (*lookup)(sl_call *call, sl_doc *doc);
    int (*store)(sl_call *call, sl_doc *doc);
    int (*prune)(sl_call *call, const char *const *roots, size_t nroots, uint64_t run_id);
    int (*query)(sl_call *call, const float *vector, uint32_t dim, uint32_t k, sl_hits *hits);

    /* --- ABI 1.1 --- */
    /* LLMs: answers one prompt with sl_completion_set(out, ...); report
     * tokens with sl_call_usage. */
    int (*complete)(sl_call *call, const sl_text *prompt, sl_completion *out);
    /* gpu page stages: n pages of possibly different documents in one batch
     * (docs[i], pages[i]). SL_ENOMEM makes the batcher split the batch in
     * half and retry. Required instead of `page` for gpu page stages. */
    int (*pages)(sl_call *call, sl_doc *const *docs, const uint32_t *pages, size_t n);

    /* --- ABI 1.3 --- */
    /* Sinks (optional): makes this process the store's one writer until
     * fini. The core calls it after init for `run` and `serve` (never for
     * `query` or `check`, which may read while a writer runs). A store
     * another process holds answers SL_ERETRY (`--wait` calls again until
     * it is free; SL_EFATAL is never waited for) with a message naming the
     * holder: its PID, host and start time; a lock must die with its
     * holder (flock, a database session), so a killed process never blocks
     * the next one. */
    int (*claim)(sl_call *call);
    /* Sinks (optional): the failure list kept in the store, for `sluice
     * failed` and `sluice retry`. failures_record adds one attempt to each
     * row's document (a row made at 1 when absent; stage, reason and last_at
     * replaced); failures_list calls `each` once per recorded document. A
     * sink that implements them also deletes a document's row in the
     * transaction that stores it. A sink without them keeps no failure
     * list: the core says so and carries on. */
    int (*failures_record)(sl_call *call, const sl_failure_row *rows, size_t n);
    int (*failures_list)(sl_call *call, sl_failure_fn each, void *arg);
    /* Sinks (optional): calls `each` with the uri of every stored document
     * (`sluice run --dry-run --prune` names what prune would remove). */
    int (*documents)(sl_call *call, sl_uri_fn each, void *arg);
    /* Any io plugin or sink (optional): one minimal real request for `sluice
     * check --connect` (a provider's model list, a database session); 0 when
     * the other side answers as configured, else a failure saying why. No
     * document is involved. Embedders without it are probed by embedding
     * one short text. */
    int (*probe)(sl_call *call);

    /* --- ABI 1.4 --- */
    /* Sinks (optional): keyword search, the other half of hybrid retrieval
     * (`sluice query --mode hybrid|keyword`). Adds up to k chunks that
     * match the words of `text` (plain text as the user typed it: the sink
     * quotes it for its own query language, so no input is a syntax error),
     * best first, each scored by the sink's text relevance (BM25, ts_rank:
     * higher is better). Answers SL_KEYWORD_NO_INDEX, with the reason in
     * sl_fail's message, when this store has no keyword index (yet): the
     * core then answers by vectors alone and says so. A sink without it is
     * queried by vectors alone. */
    int (*keyword)(sl_call *call, const char *text, uint32_t k, sl_hits *hits);
    /* Sinks (optional): `sluice store check`. Verifies the store as deeply
     * as the sink can (SQLite: PRAGMA integrity_check), calls `problem` once
     * per problem found, and fills the counts it can. 0 when the check ran
     * (damaged or not: see out->damaged), a failure when it could not run.
     * The sink was opened with SL_STORE_SALVAGE, so a damaged store opens. */
    int (*check)(sl_call *call, sl_store_health *out, sl_line_fn problem, void *arg);
    /* Sinks (optional): the last step of `sluice store rebuild`. The sink was
     * opened with SL_STORE_REBUILD, so everything the rebuild stored went
     * into a fresh store beside the real one; this puts the fresh store in
     * its place in one atomic step, keeps the old one as a backup, and calls
     * `say` with a line naming the backup. Called once, after the run; no
     * other callback follows but fini. A sink without it cannot rebuild:
     * the core refuses `store rebuild` and names it. */
    int (*rebuild_swap)(sl_call *call, sl_line_fn say, void *arg);

    /* --- ABI 1.5 --- */
    /* Sinks (optional): a token bucket kept where the store is, shared by
     * every process that names the same `key` (a provider stage's
     * `shared_limits`: its rpm and tpm are the account's, not one
     * process's). The bucket holds at most `burst` tokens and refills at
     * `rate_per_s` per second by the store's own clock; a bucket not seen
     * before starts full. In one atomic step, whatever other processes do
     * at the same moment, it refills by the time elapsed, takes
     * min(want, whole tokens available) and writes that count to *granted
     * (0 when the bucket is empty: the core waits and asks again). `key`
     * is printable ASCII of at most 200 bytes and never a secret; `granted`
     * stays valid until the call is answered. 0 when the bucket answered; a
     * failure (SL_ERETRY: the database cannot be reached) makes the core
     * pace the provider on its own meanwhile (README: Shared limits). A
     * sink without it keeps no shared limits: the core refuses
     * `shared_limits` on a route that stores in it. */
    int (*limit_grant)(sl_call *call, const char *key, double rate_per_s, double burst, double want,
                       double *granted);
    /* Sinks (optional, all or none): the job queue. A sink with them keeps
     * the queue in its store, and its `store` acks the job of a document
     * leased from it (sl_doc_queue_job) inside the store's transaction:
     * only when the job is still leased with that token, else the whole
     * document rolls back and fails with a reason that begins "lease lost"
     * (stored and acked together, or not at all). A document found inside
     * a leased one (sl_doc_queue_fence) is checked the same way without the
     * ack: its parent is stored after it and acks the job.
     *
     * queue_join makes this process a queue node named `node` (host:pid:
     * start): instead of claim's one writer, a claim shared with other
     * nodes and refused while a plain writer holds the store (and the other
     * way round), with SL_ERETRY as claim. */
    int (*queue_join)(sl_call *call, const char *node);
    /* Adds a job for each item unless one is queued or leased for its uri,
     * or the store holds it unchanged; adds what it did to *out, and wakes
     * idle nodes. */
    int (*queue_enqueue)(sl_call *call, const sl_queue_item *items, size_t n, sl_queue_counts *out);
    /* Takes back expired leases, then leases up to `max` jobs due now to
     * `node` for lease_ms, calling `each` once per job before answering;
     * the answer is the number leased. */
    int (*queue_lease)(sl_call *call, const char *node, uint32_t max, int64_t lease_ms, sl_queue_job_fn each,
                       void *arg);
    /* Extends every lease `node` holds to now + lease_ms; answers how many. */
    int (*queue_heartbeat)(sl_call *call, const char *node, int64_t lease_ms);
    /* Acks a job whose document needed no store (stored unchanged); a lost
     * lease is not an error here: nothing was written. */
    int (*queue_done)(sl_call *call, int64_t id, int64_t token);
    /* A job whose document failed: queued again after backoff_ms doubled
     * per earlier failure, or dead (and on the failure list) once it has
     * failed max_attempts times (0: never dead). Nothing when the lease
     * was lost. */
    int (*queue_fail)(sl_call *call, int64_t id, int64_t token, const char *stage, const char *reason,
                      uint32_t max_attempts, int64_t backoff_ms);
    /* Every lease of `node` back to queued (a node that stops). */
    int (*queue_release)(sl_call *call, const char *node);
    /* The counts, then `each` once per node holding leases or having
     * acked in the last 5 minutes. Answers the queued + leased jobs. */
    int (*queue_status)(sl_call *call, sl_queue_stats *out, sl_queue_node_fn each, void *arg);
    /* An idle node's wait for new jobs (optional among the queue
     * callbacks): answers 1 when jobs were enqueued since (LISTEN/NOTIFY),
     * 0 after timeout_ms or when it cannot listen. The node leases after
     * either answer, so a lost notification costs one poll interval.
     * timeout_ms < 0: the node stops; the wait in flight is answered 0 now,
     * and so is this call. */
    int (*queue_wait)(sl_call *call, int64_t timeout_ms);

    /* --- ABI 1.6 --- */
    /* Sinks (optional): the run's last step, once every document of the
     * run is stored (and pruned, when asked), before its report: answers
     * when what the sink derives from the stored chunks on a thread of its
     * own (a keyword or vector index that catches up after the commits)
     * has caught up with them, so the run's time and its report include
     * that work rather than leaving it to the process's exit. Not called
     * for a run that was interrupted or stopped by a fatal error (fini
     * still finishes what it must). May answer SL_PENDING and complete
     * from the sink's thread. A failure (sl_fail with SL_EBADINPUT) is a
     * warning in the run's log, never a failed document: what was stored
     * is whole, and the sink catches up later (its next run or query). A
     * sink that derives nothing later leaves it NULL. */
    int (*settle)(sl_call *call);
} sl_plugin;

/* The descriptor size of ABI 1.0: the core refuses anything smaller; a 1.0
 * plugin reads as having no 1.1 callbacks. */
#define SL_PLUGIN_MIN_SIZE_1_0 (offsetof(sl_plugin, query) + sizeof(void (*)(void)))

/* How the core opens a sink (ABI 1.4): what sl_instance_store_mode answers
 * during init. A sink built for an older ABI never asks, and opens every
 * store as SL_STORE_WRITE did. */
/* run, serve, retry: open or create the store, and write. */
#define SL_STORE_WRITE 0
/* query, failed: only read; create nothing, write nothing; a store that
 * does not exist fails init ("there is no store at ..."). */
#define SL_STORE_READ 1
/* check, run --dry-run, inspect: as READ, but a store that does not exist
 * reads as empty (and is not made). */
#define SL_STORE_PEEK 2
/* store check, and store rebuild listing what the old store holds: as
 * READ, but a damaged store opens, to be checked or read as far as it can. */
#define SL_STORE_SALVAGE 3
/* store rebuild's run: write into a fresh store beside the real one, which
 * rebuild_swap then puts in its place. */
#define SL_STORE_REBUILD 4

/* The mode the core opens this sink instance in: SL_STORE_*. Any role may
 * ask; for anything but a sink it is SL_STORE_WRITE. (1.4) */
SL_EXPORT int sl_instance_store_mode(const sl_instance *inst);

/* lookup's answers. A document whose run id is 0 is looked up by a dry run
 * (`sluice run --dry-run`, ABI 1.3): answer, but record nothing. */
#define SL_LOOKUP_MISSING 0   /* not stored: process it */
#define SL_LOOKUP_CHANGED 1   /* stored with another hash or fingerprint: process and replace */
#define SL_LOOKUP_UNCHANGED 2 /* same hash and fingerprint: skip */

/* keyword's answer for a store without a keyword index (an old store opened
 * read-only): not a failure, the query goes on by vectors alone. (ABI 1.4) */
#define SL_KEYWORD_NO_INDEX 1

/* Fills the fields that never move. Use first in the initialiser. */
#define SL_PLUGIN_HEADER .abi_major = SL_ABI_MAJOR, .abi_minor = SL_ABI_MINOR, .size = sizeof(sl_plugin)

/* Exports the entry symbol returning `desc`. Use once per plugin. */
#define SL_PLUGIN_EXPORT(desc)                                                                               \
    SL_EXPORT const sl_plugin *sluice_plugin_v1(void);                                                       \
    const sl_plugin *sluice_plugin_v1(void) { return &(desc); }

/* The entry symbol's name, as the core looks it up. */
#define SL_ENTRY_SYMBOL "sluice_plugin_v1"

#ifdef __cplusplus
}
#endif
#endif
