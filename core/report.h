/* report.h - where the time went and what happened to every document.
 *
 * The pipeline fills one sl_report per run: counts per outcome, one row per
 * stage (executor, items, busy time on the executor, time queued before it,
 * failures, retries) and the failed documents with their reasons. It prints
 * as a table for people or as JSON (--json) for machines. The live progress
 * line is drawn here too.
 */
#ifndef SL_REPORT_H
#define SL_REPORT_H

#include <stdint.h>
#include <stdio.h>

typedef struct sl_stage_stats {
    char *name;           /* "read", "markdown", "store lookup", ... */
    char *plugin;         /* plugin name, "" for built-ins */
    const char *executor; /* "pool", "loop" */
    uint64_t items;       /* units done: documents, pages or chunks */
    uint64_t calls;       /* callback invocations (batches count once) */
    uint64_t busy_ns;     /* time inside the callback (or in flight, on the loop) */
    uint64_t wait_ns;     /* time units waited for a slot or a thread */
    uint64_t failures;
    uint64_t retries;
    /* batching stages (the gpu executor): filled when `batched` */
    int batched;
    uint64_t batches;
    uint64_t batch_hist[8]; /* batches of 1, 2, 3-4, 5-8, 9-16, 17-32, 33-64, 65+ units (SL_BATCH_HIST) */
    uint64_t splits;        /* batches halved after running out of memory */
    uint32_t ceiling;       /* the largest batch size that works */
    /* live, for the progress line */
    int inflight;
    int queued;
} sl_stage_stats;

/* Per provider (an io stage's instance or one of its fallbacks): what was
 * asked of it and what it cost. */
typedef struct sl_provider_stats {
    char *name;
    char *plugin;
    uint64_t requests;
    uint64_t retries;
    uint64_t failures;
    uint64_t tokens_in, tokens_out;
    uint64_t breaker_opens;
    double price_input, price_output; /* per million tokens */
    uint64_t throttled;               /* answers 429: the provider paced us */
    uint64_t limit_wait_ns; /* time its calls queued for a slot, a rate budget or a closed breaker */
    int breaker_state;      /* live: SL_BREAKER_* */
    uint64_t resends;       /* of requests: sent again by libcurl on a dead kept-alive connection */
    uint64_t connections;   /* opened for its requests (HTTP/2 multiplexes many over one) */
    uint64_t http2;         /* answers that came over HTTP/2 */
} sl_provider_stats;

enum { SL_BREAKER_CLOSED = 0, SL_BREAKER_HALF_OPEN = 1, SL_BREAKER_OPEN = 2 };
const char *sl_breaker_name(int state);

typedef struct sl_failure {
    char *uri;
    char *stage;
    char *reason;
} sl_failure;

/* Files left out, counted by extension (".xyz"; "(none)" without one). */
typedef struct sl_ext_count {
    char ext[24];
    uint64_t n;
} sl_ext_count;

typedef struct sl_ext_counts {
    uint64_t total;
    sl_ext_count *by_ext; /* the first SL_REPORT_MAX_EXTS extensions; the rest as "(other)" */
    size_t n;
} sl_ext_counts;

#define SL_REPORT_MAX_EXTS 64

/* A document whose name and content disagreed, and the type believed. */
typedef struct sl_detection {
    char *uri;
    char *named, *content, *believed;
} sl_detection;

#define SL_REPORT_MAX_DETECTIONS 10000

/* Failures kept with their reasons; beyond this only counted. */
#define SL_REPORT_MAX_FAILURES 100000

/* The CPU a name's threads of this process used during the run (threads.c):
 * "loop", "sluice-pool", a plugin's own ("sqlite-writer", ...). */
typedef struct sl_thread_cpu {
    char name[16];
    int threads;
    double cpu_s;
} sl_thread_cpu;

typedef struct sl_report {
    uint64_t run_id;
    double wall_s;
    int threads;
    uint64_t peak_rss;
    uint64_t peak_inflight; /* the most that documents in flight held at once */
    uint64_t memory_budget;
    double expansion; /* the most bytes held in flight per byte of file seen */
    /* what bounded the run (pipeline.c): a kind ("chain", "loop", "cpu", "machine",
     * "memory_budget", "limit", "store", "mixed", "none") and a sentence */
    const char *binding_kind;
    char binding[768];
    double chain_s, loop_busy, cores_used, budget_wait_s;
    /* how long sluice's threads waited, ready to run, for a core during
     * the run, summed over them (pipeline.c); -1 where unknown */
    double cpu_wait_s;
    /* this process's threads' CPU during the run, by name, most first */
    sl_thread_cpu *thread_cpu;
    size_t nthread_cpu;
    /* the sinks' settle at the run's end: their own indexes catching up
     * with what the run stored (plugin.h, ABI 1.6), inside wall_s */
    double settle_s;
    uint64_t total, stored, skipped, failed, pruned;
    int total_open; /* during a run: s3:// listings still going, total grows */
    uint64_t bytes, chunks;
    sl_stage_stats *stages;
    size_t nstages;
    sl_failure *failures;
    size_t nfailures;
    sl_provider_stats **providers; /* stable pointers */
    size_t nproviders;
    int interrupted;
    int fatal;
    char fatal_msg[1024];
    /* files no route takes, and files in folders outside [sluice] include
     * (neither is in total); documents made inside documents (children) */
    sl_ext_counts no_route, not_included;
    sl_detection *detections;
    size_t ndetections;
    uint64_t detected;
    uint64_t children;
    /* live while a run goes (sl_pipeline_refresh), final after it */
    uint64_t started_ns;      /* sl_now_ns() at the start */
    uint64_t inflight_bytes;  /* what documents in flight hold now */
    uint64_t worker_restarts; /* worker processes started beyond the first of each slot */
    uint64_t docs_inflight;
    uint64_t parked; /* dead letters passed over: failed [sluice] max_attempts runs (`sluice failed`) */
    /* sl_call_done calls ignored: after the call's deadline, or a second
     * one on a call already answered (a plugin bug) */
    uint64_t late_answers, extra_answers;
    /* pool calls left running past [sluice] call_deadline: their threads
     * cannot be joined, so sluice exits without unloading its plugins */
    uint64_t calls_left;
} sl_report;

sl_stage_stats *sl_report_add_stage(sl_report *r, const char *name, const char *plugin, const char *executor);
sl_provider_stats *sl_report_add_provider(sl_report *r, const char *name, const char *plugin);
double sl_provider_cost(const sl_provider_stats *p);
void sl_report_add_failure(sl_report *r, const char *uri, const char *stage, const char *reason);
/* Counts one file under its name's extension. */
void sl_report_count_ext(sl_ext_counts *c, const char *path);
void sl_report_add_detection(sl_report *r, const char *uri, const char *named, const char *content,
                             const char *believed);
void sl_report_print(const sl_report *r, FILE *out);
int sl_report_write_json(const sl_report *r, FILE *out);
void sl_report_free(sl_report *r);
/* Adds src's counters to dst (`sluice serve`: one report over all its
 * passes): documents, bytes and chunks; stages and providers matched by
 * name, their counters added and their live state taken; peaks kept; at
 * most keep_failures of the latest failures kept. */
void sl_report_accumulate(sl_report *dst, const sl_report *src, size_t keep_failures);
/* NAME's entry in v[0..*n), appended (no threads, no CPU) when it has
 * none; NULL out of memory. */
sl_thread_cpu *sl_thread_cpu_slot(sl_thread_cpu **v, size_t *n, const char *name);
/* "; sluice's CPU by thread: sluice-pool x2 48%, sqlite-keywords 30%" (the
 * three largest names of a tenth or more of r's thread CPU), or "": for
 * the binding line of a run the CPU bound (pipeline.c). */
void sl_report_busiest_threads(const sl_report *r, char *buf, size_t len);

/* The progress line on stderr: "[ 120/1000] 12% 45.2 docs/s ETA 0:19 | parse 4 embed 37". */
void sl_progress_draw(const sl_report *r, double elapsed_s, uint64_t done);
void sl_progress_clear(void);

#endif
