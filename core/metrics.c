/* metrics.c - a run's report as Prometheus text (/metrics) and as the
 * status page's JSON (/status.json).
 *
 * Both read the sl_report the run fills and `sluice run --json` prints, so
 * a scrape at the end of a run gives the report's own numbers: counters
 * are integers printed as such, seconds are the report's nanoseconds over
 * 1e9 printed with 17 significant digits (what jansson prints for the
 * JSON report's reals), so a test can compare them exactly.
 *
 * Names follow Prometheus conventions: a sluice_ prefix, counters ending
 * in _total, base units (_seconds, _bytes), labels stage=, provider=.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "loop.h"

static double secs(uint64_t ns) { return (double)ns / 1e9; }

/* A label value: backslash, double quote and newline escaped. */
static void label(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void head(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(FILE *f, const char *name, const char *type, const char *help, unsigned long long v) {
    head(f, name, type, help);
    fprintf(f, "%s %llu\n", name, v);
}

static void stage_labels(FILE *f, const sl_stage_stats *s) {
    fputs("{stage=\"", f);
    label(f, s->name);
    fputs("\",plugin=\"", f);
    label(f, s->plugin);
    fputs("\",executor=\"", f);
    label(f, s->executor);
    fputs("\"}", f);
}

static void provider_labels(FILE *f, const sl_provider_stats *p, const char *extra) {
    fputs("{provider=\"", f);
    label(f, p->name);
    fputs("\",plugin=\"", f);
    label(f, p->plugin);
    fprintf(f, "\"%s}", extra ? extra : ""); /* extra: ,name="value" */
}

/* One metric per stage: its value read by `field`. */
enum { S_ITEMS, S_CALLS, S_BUSY, S_QUEUED_S, S_RETRIES, S_FAILURES, S_DEPTH, S_INFLIGHT };
static void per_stage(FILE *f, const sl_report *r, const char *name, const char *type, const char *help,
                      int field) {
    head(f, name, type, help);
    for (size_t i = 0; i < r->nstages; i++) {
        const sl_stage_stats *s = &r->stages[i];
        fputs(name, f);
        stage_labels(f, s);
        switch (field) {
        case S_ITEMS: fprintf(f, " %llu\n", (unsigned long long)s->items); break;
        case S_CALLS: fprintf(f, " %llu\n", (unsigned long long)s->calls); break;
        case S_BUSY: fprintf(f, " %.17g\n", secs(s->busy_ns)); break;
        case S_QUEUED_S: fprintf(f, " %.17g\n", secs(s->wait_ns)); break;
        case S_RETRIES: fprintf(f, " %llu\n", (unsigned long long)s->retries); break;
        case S_FAILURES: fprintf(f, " %llu\n", (unsigned long long)s->failures); break;
        case S_DEPTH: fprintf(f, " %d\n", s->queued); break;
        default: fprintf(f, " %d\n", s->inflight); break;
        }
    }
}

enum { P_REQUESTS, P_RETRIES, P_FAILURES, P_THROTTLED, P_OPENS, P_STATE, P_WAIT, P_CONNS, P_HTTP2, P_COST };
static void per_provider(FILE *f, const sl_report *r, const char *name, const char *type, const char *help,
                         int field) {
    head(f, name, type, help);
    for (size_t i = 0; i < r->nproviders; i++) {
        const sl_provider_stats *p = r->providers[i];
        fputs(name, f);
        provider_labels(f, p, NULL);
        switch (field) {
        case P_REQUESTS: fprintf(f, " %llu\n", (unsigned long long)p->requests); break;
        case P_RETRIES: fprintf(f, " %llu\n", (unsigned long long)p->retries); break;
        case P_FAILURES: fprintf(f, " %llu\n", (unsigned long long)p->failures); break;
        case P_THROTTLED: fprintf(f, " %llu\n", (unsigned long long)p->throttled); break;
        case P_OPENS: fprintf(f, " %llu\n", (unsigned long long)p->breaker_opens); break;
        case P_STATE: fprintf(f, " %d\n", p->breaker_state); break;
        case P_WAIT: fprintf(f, " %.17g\n", secs(p->limit_wait_ns)); break;
        case P_CONNS: fprintf(f, " %llu\n", (unsigned long long)p->connections); break;
        case P_HTTP2: fprintf(f, " %llu\n", (unsigned long long)p->http2); break;
        default: fprintf(f, " %.17g\n", sl_provider_cost(p)); break;
        }
    }
}

/* The batcher's sizes as a histogram: its bins 1, 2, 3-4, ... 65+ are the
 * cumulative buckets le=1, 2, 4, ... +Inf; the sum is the units batched. */
static void batch_histogram(FILE *f, const sl_report *r) {
    static const char *const le[8] = {"1", "2", "4", "8", "16", "32", "64", "+Inf"};
    head(f, "sluice_batch_size", "histogram", "units per batch of a batching (gpu) stage");
    for (size_t i = 0; i < r->nstages; i++) {
        const sl_stage_stats *s = &r->stages[i];
        if (!s->batched) continue;
        unsigned long long cum = 0;
        for (int b = 0; b < 8; b++) {
            cum += s->batch_hist[b];
            fputs("sluice_batch_size_bucket{stage=\"", f);
            label(f, s->name);
            fprintf(f, "\",le=\"%s\"} %llu\n", le[b], cum);
        }
        fputs("sluice_batch_size_sum{stage=\"", f);
        label(f, s->name);
        fprintf(f, "\"} %llu\n", (unsigned long long)s->items);
        fputs("sluice_batch_size_count{stage=\"", f);
        label(f, s->name);
        fprintf(f, "\"} %llu\n", (unsigned long long)cum);
    }
}

char *sl_metrics_text(const sl_report *r, int running, size_t *len) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return NULL;
    one(f, "sluice_up", "gauge", "1: the process answers", 1);
    if (!r) goto out;
    one(f, "sluice_run_active", "gauge", "1 while a run is going, 0 once it ended",
        (unsigned long long)running);
    head(f, "sluice_run_elapsed_seconds", "gauge", "time since the run started (its wall time once ended)");
    fprintf(f, "sluice_run_elapsed_seconds %.17g\n", running ? secs(sl_now_ns() - r->started_ns) : r->wall_s);
    one(f, "sluice_run_documents", "gauge",
        "documents the run found to ingest (once ended: those that ended stored, skipped or failed)",
        (unsigned long long)r->total);
    head(f, "sluice_documents_total", "counter", "documents by how they ended in this run");
    fprintf(f, "sluice_documents_total{outcome=\"stored\"} %llu\n", (unsigned long long)r->stored);
    fprintf(f, "sluice_documents_total{outcome=\"skipped\"} %llu\n", (unsigned long long)r->skipped);
    fprintf(f, "sluice_documents_total{outcome=\"failed\"} %llu\n", (unsigned long long)r->failed);
    fprintf(f, "sluice_documents_total{outcome=\"pruned\"} %llu\n", (unsigned long long)r->pruned);
    fprintf(f, "sluice_documents_total{outcome=\"parked\"} %llu\n", (unsigned long long)r->parked);
    one(f, "sluice_documents_found_inside_total", "counter",
        "documents found inside documents (email attachments), counted in the outcomes too",
        (unsigned long long)r->children);
    one(f, "sluice_documents_in_flight", "gauge", "documents admitted and not ended",
        (unsigned long long)r->docs_inflight);
    one(f, "sluice_chunks_stored_total", "counter", "chunks of stored documents",
        (unsigned long long)r->chunks);
    one(f, "sluice_read_bytes_total", "counter", "bytes of documents read", (unsigned long long)r->bytes);
    one(f, "sluice_inflight_bytes", "gauge", "bytes documents in flight hold now (against memory_budget)",
        (unsigned long long)r->inflight_bytes);
    one(f, "sluice_inflight_peak_bytes", "gauge", "the most bytes documents in flight held at once",
        (unsigned long long)r->peak_inflight);
    one(f, "sluice_memory_budget_bytes", "gauge", "[sluice] memory_budget",
        (unsigned long long)r->memory_budget);
    one(f, "sluice_worker_restarts_total", "counter", "worker processes started to replace one",
        (unsigned long long)r->worker_restarts);

    per_stage(f, r, "sluice_stage_items_total", "counter",
              "units a stage finished (documents, pages, chunks)", S_ITEMS);
    per_stage(f, r, "sluice_stage_calls_total", "counter", "plugin calls (a batch counts once)", S_CALLS);
    per_stage(f, r, "sluice_stage_busy_seconds_total", "counter",
              "time in the plugin's call (for io stages: in flight)", S_BUSY);
    per_stage(f, r, "sluice_stage_queued_seconds_total", "counter",
              "time units waited for a slot, a rate budget or a thread", S_QUEUED_S);
    per_stage(f, r, "sluice_stage_retries_total", "counter", "units retried after a retryable failure",
              S_RETRIES);
    per_stage(f, r, "sluice_stage_failures_total", "counter", "units that failed", S_FAILURES);
    per_stage(f, r, "sluice_stage_queue_depth", "gauge", "units waiting in the stage's queue now", S_DEPTH);
    per_stage(f, r, "sluice_stage_in_flight", "gauge", "units running now", S_INFLIGHT);

    per_provider(f, r, "sluice_provider_requests_total", "counter", "calls sent to the provider", P_REQUESTS);
    per_provider(f, r, "sluice_provider_retries_total", "counter", "calls retried", P_RETRIES);
    per_provider(f, r, "sluice_provider_failures_total", "counter", "calls that failed", P_FAILURES);
    per_provider(f, r, "sluice_provider_throttled_total", "counter",
                 "answers 429 (the provider asked us to slow down)", P_THROTTLED);
    per_provider(f, r, "sluice_provider_connections_total", "counter",
                 "connections opened to the provider (HTTP/2 multiplexes calls over few)", P_CONNS);
    per_provider(f, r, "sluice_provider_http2_requests_total", "counter", "answers that came over HTTP/2",
                 P_HTTP2);
    head(f, "sluice_provider_tokens_total", "counter", "tokens the provider reported, by direction");
    for (size_t i = 0; i < r->nproviders; i++) {
        const sl_provider_stats *p = r->providers[i];
        fputs("sluice_provider_tokens_total", f);
        provider_labels(f, p, ",direction=\"input\"");
        fprintf(f, " %llu\n", (unsigned long long)p->tokens_in);
        fputs("sluice_provider_tokens_total", f);
        provider_labels(f, p, ",direction=\"output\"");
        fprintf(f, " %llu\n", (unsigned long long)p->tokens_out);
    }
    per_provider(f, r, "sluice_provider_cost_total", "counter",
                 "tokens times the configured price_input/price_output per million", P_COST);
    per_provider(f, r, "sluice_provider_breaker_opens_total", "counter", "times its circuit breaker opened",
                 P_OPENS);
    per_provider(f, r, "sluice_provider_breaker_state", "gauge",
                 "its circuit breaker now: 0 closed, 1 half-open (next call probes), 2 open", P_STATE);
    per_provider(f, r, "sluice_provider_limiter_wait_seconds_total", "counter",
                 "time its calls waited for a slot, a rate budget (rpm, tpm) or a closed breaker", P_WAIT);
    head(f, "sluice_thread_cpu_seconds_total", "counter",
         "CPU this process's threads used in runs that ended, by thread name: loop, sluice-pool, and the "
         "threads plugins run themselves (sqlite-writer, sqlite-keywords, ...)");
    for (size_t i = 0; i < r->nthread_cpu; i++) {
        fputs("sluice_thread_cpu_seconds_total{thread=\"", f);
        label(f, r->thread_cpu[i].name);
        fprintf(f, "\"} %.17g\n", r->thread_cpu[i].cpu_s);
    }
    batch_histogram(f, r);
    head(f, "sluice_batch_splits_total", "counter", "batches halved after running out of memory");
    for (size_t i = 0; i < r->nstages; i++) {
        if (!r->stages[i].batched) continue;
        fputs("sluice_batch_splits_total{stage=\"", f);
        label(f, r->stages[i].name);
        fprintf(f, "\"} %llu\n", (unsigned long long)r->stages[i].splits);
    }
out:
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* While a run goes, its binding constraint is not known yet: the stage
 * with the most units waiting says where work piles up now. */
static json_t *binding_now(const sl_report *r, int running) {
    if (!running && r->binding_kind)
        return json_pack("{s:s, s:s}", "kind", r->binding_kind, "line", r->binding);
    const sl_stage_stats *most = NULL;
    for (size_t i = 0; i < r->nstages; i++)
        if (r->stages[i].queued > 0 && (!most || r->stages[i].queued > most->queued)) most = &r->stages[i];
    char line[512];
    if (!running)
        snprintf(line, sizeof line, "the run ended before a bound was measured");
    else if (most)
        snprintf(line, sizeof line, "so far: work waits longest at %s (%d queued, %d in flight)", most->name,
                 most->queued, most->inflight);
    else
        snprintf(line, sizeof line, "so far: nothing is waiting in a queue");
    return json_pack("{s:s, s:s}", "kind", running ? "live" : "none", "line", line);
}

static json_t *str(const char *s) {
    json_t *j = json_string(s ? s : "");
    return j ? j : json_string("(not valid UTF-8)");
}

char *sl_status_json(const sl_report *r, int running, size_t *len) {
    json_t *root = json_object();
    json_object_set_new(root, "running", json_boolean(running));
    if (!r) {
        json_object_set_new(root, "started", json_false());
        goto out;
    }
    json_object_set_new(root, "started", json_true());
    double elapsed = running ? secs(sl_now_ns() - r->started_ns) : r->wall_s;
    uint64_t ended = r->stored + r->skipped + r->failed;
    json_object_set_new(root, "run_id", json_integer((json_int_t)r->run_id));
    json_object_set_new(root, "elapsed_s", json_real(elapsed));
    json_object_set_new(root, "documents",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "total", (json_int_t)r->total, "stored",
                                  (json_int_t)r->stored, "skipped", (json_int_t)r->skipped, "failed",
                                  (json_int_t)r->failed, "pruned", (json_int_t)r->pruned, "in_flight",
                                  (json_int_t)r->docs_inflight));
    json_object_set_new(root, "docs_per_s", json_real(elapsed > 0 ? (double)ended / elapsed : 0));
    json_object_set_new(root, "mb_per_s",
                        json_real(elapsed > 0 ? (double)r->bytes / 1048576.0 / elapsed : 0));
    json_object_set_new(root, "chunks", json_integer((json_int_t)r->chunks));
    json_object_set_new(root, "inflight_bytes", json_integer((json_int_t)r->inflight_bytes));
    json_object_set_new(root, "memory_budget_bytes", json_integer((json_int_t)r->memory_budget));
    json_object_set_new(root, "worker_restarts", json_integer((json_int_t)r->worker_restarts));
    json_object_set_new(root, "binding", binding_now(r, running));
    json_t *stages = json_array();
    for (size_t i = 0; i < r->nstages; i++) {
        const sl_stage_stats *s = &r->stages[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", str(s->name));
        json_object_set_new(o, "plugin", str(s->plugin));
        json_object_set_new(o, "executor", str(s->executor));
        json_object_set_new(o, "items", json_integer((json_int_t)s->items));
        json_object_set_new(o, "busy_s", json_real(secs(s->busy_ns)));
        json_object_set_new(o, "queued", json_integer(s->queued));
        json_object_set_new(o, "in_flight", json_integer(s->inflight));
        json_object_set_new(o, "retries", json_integer((json_int_t)s->retries));
        json_object_set_new(o, "failures", json_integer((json_int_t)s->failures));
        json_array_append_new(stages, o);
    }
    json_object_set_new(root, "stages", stages);
    json_t *provs = json_array();
    for (size_t i = 0; i < r->nproviders; i++) {
        const sl_provider_stats *p = r->providers[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", str(p->name));
        json_object_set_new(o, "plugin", str(p->plugin));
        json_object_set_new(o, "requests", json_integer((json_int_t)p->requests));
        json_object_set_new(o, "retries", json_integer((json_int_t)p->retries));
        json_object_set_new(o, "failures", json_integer((json_int_t)p->failures));
        json_object_set_new(o, "throttled", json_integer((json_int_t)p->throttled));
        json_object_set_new(o, "tokens_in", json_integer((json_int_t)p->tokens_in));
        json_object_set_new(o, "tokens_out", json_integer((json_int_t)p->tokens_out));
        json_object_set_new(o, "cost", json_real(sl_provider_cost(p)));
        json_object_set_new(o, "breaker", json_string(sl_breaker_name(p->breaker_state)));
        json_object_set_new(o, "limit_wait_s", json_real(secs(p->limit_wait_ns)));
        json_array_append_new(provs, o);
    }
    json_object_set_new(root, "providers", provs);
    /* the most recent failures, newest first */
    json_t *failed = json_array();
    for (size_t i = r->nfailures, n = 0; i > 0 && n < 20; i--, n++) {
        const sl_failure *x = &r->failures[i - 1];
        json_array_append_new(failed, json_pack("{s:o, s:o, s:o}", "uri", str(x->uri), "stage", str(x->stage),
                                                "reason", str(x->reason)));
    }
    json_object_set_new(root, "failures", failed);
    if (r->fatal) json_object_set_new(root, "fatal", str(r->fatal_msg));
out:;
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (s) *len = strlen(s);
    return s;
}
