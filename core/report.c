/* report.c - the run report as a table and as JSON, and the progress line. */
#include "report.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/call.h"

sl_stage_stats *sl_report_add_stage(sl_report *r, const char *name, const char *plugin,
                                    const char *executor) {
    sl_stage_stats *ns = realloc(r->stages, (r->nstages + 1) * sizeof *ns);
    if (!ns) return NULL;
    r->stages = ns;
    sl_stage_stats *s = &r->stages[r->nstages++];
    memset(s, 0, sizeof *s);
    s->name = strdup(name);
    s->plugin = strdup(plugin ? plugin : "");
    s->executor = executor;
    return s;
}

sl_provider_stats *sl_report_add_provider(sl_report *r, const char *name, const char *plugin) {
    sl_provider_stats **np = realloc(r->providers, (r->nproviders + 1) * sizeof *np);
    if (!np) return NULL;
    r->providers = np;
    sl_provider_stats *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->name = strdup(name);
    p->plugin = strdup(plugin ? plugin : "");
    r->providers[r->nproviders++] = p;
    return p;
}

double sl_provider_cost(const sl_provider_stats *p) {
    return ((double)p->tokens_in * p->price_input + (double)p->tokens_out * p->price_output) / 1e6;
}

void sl_report_add_failure(sl_report *r, const char *uri, const char *stage, const char *reason) {
    if (r->nfailures >= SL_REPORT_MAX_FAILURES) return;
    sl_failure *nf = realloc(r->failures, (r->nfailures + 1) * sizeof *nf);
    if (!nf) return;
    r->failures = nf;
    sl_failure *f = &r->failures[r->nfailures++];
    f->uri = strdup(uri);
    f->stage = strdup(stage);
    f->reason = strdup(reason);
}

void sl_report_count_ext(sl_ext_counts *c, const char *path) {
    const char *slash = strrchr(path, '/'), *hash = strrchr(path, '#');
    const char *base = slash ? slash + 1 : path;
    if (hash && hash + 1 > base) base = hash + 1; /* a child: its own name */
    const char *dot = strrchr(base, '.');
    char ext[24];
    if (!dot || dot == base || strlen(dot) >= sizeof ext)
        snprintf(ext, sizeof ext, "%s", dot && dot != base ? "(long)" : "(none)");
    else
        for (size_t i = 0; i < sizeof ext; i++) {
            char ch = dot[i];
            ext[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
            if (!ch) break;
        }
    c->total++;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < c->n; i++)
            if (strcmp(c->by_ext[i].ext, ext) == 0) {
                c->by_ext[i].n++;
                /* kept in order of count, most first (ties: first seen first) */
                for (; i > 0 && c->by_ext[i - 1].n < c->by_ext[i].n; i--) {
                    sl_ext_count t = c->by_ext[i - 1];
                    c->by_ext[i - 1] = c->by_ext[i];
                    c->by_ext[i] = t;
                }
                return;
            }
        if (c->n < SL_REPORT_MAX_EXTS) break;
        snprintf(ext, sizeof ext, "(other)");
    }
    sl_ext_count *nv = realloc(c->by_ext, (c->n + 1) * sizeof *nv);
    if (!nv) return;
    c->by_ext = nv;
    memcpy(nv[c->n].ext, ext, sizeof ext);
    nv[c->n++].n = 1;
}

void sl_report_add_detection(sl_report *r, const char *uri, const char *named, const char *content,
                             const char *believed) {
    r->detected++;
    if (r->ndetections >= SL_REPORT_MAX_DETECTIONS) return;
    sl_detection *nd = realloc(r->detections, (r->ndetections + 1) * sizeof *nd);
    if (!nd) return;
    r->detections = nd;
    sl_detection *d = &nd[r->ndetections++];
    d->uri = strdup(uri);
    d->named = strdup(named);
    d->content = strdup(content);
    d->believed = strdup(believed);
}

/* "skipped 3: 2 .xyz, 1 .bin — no route" */
static void print_ext_counts(const sl_ext_counts *c, const char *what, const char *why, FILE *out) {
    if (!c->total) return;
    fprintf(out, "%s %llu:", what, (unsigned long long)c->total);
    uint64_t rest = 0;
    for (size_t i = 0; i < c->n; i++)
        if (i < 12)
            fprintf(out, "%s %llu %s", i ? "," : "", (unsigned long long)c->by_ext[i].n, c->by_ext[i].ext);
        else
            rest += c->by_ext[i].n;
    if (rest) fprintf(out, ", %llu more in %zu other extensions", (unsigned long long)rest, c->n - 12);
    fprintf(out, " \xe2\x80\x94 %s\n", why);
}

static json_t *ext_counts_json(const sl_ext_counts *c) {
    json_t *by = json_object();
    for (size_t i = 0; i < c->n; i++)
        json_object_set_new(by, c->by_ext[i].ext, json_integer((json_int_t)c->by_ext[i].n));
    return json_pack("{s:I, s:o}", "count", (json_int_t)c->total, "by_extension", by);
}

const char *sl_breaker_name(int state) {
    return state == SL_BREAKER_OPEN ? "open" : state == SL_BREAKER_HALF_OPEN ? "half-open" : "closed";
}

static double secs(uint64_t ns) { return (double)ns / 1e9; }

static const char *const batch_buckets[8] = {"1", "2", "3-4", "5-8", "9-16", "17-32", "33-64", "65+"};

/* One line per batching stage: how full its batches were, how long pages
 * queued for them, how long the device took, and the batch sizes. */
static void print_batching(const sl_report *r, FILE *out) {
    int header = 0;
    for (size_t i = 0; i < r->nstages; i++) {
        const sl_stage_stats *s = &r->stages[i];
        if (!s->batched) continue;
        if (!header) {
            fprintf(out, "\n%-18s %8s %6s %11s %10s %10s %6s %7s  %s\n", "batching stage", "batches", "mean",
                    "queue ms/u", "device s", "ms/batch", "splits", "ceiling", "batch sizes");
            header = 1;
        }
        double mean = s->batches ? (double)s->items / (double)s->batches : 0;
        double queue = s->items ? (double)s->wait_ns / 1e6 / (double)s->items : 0;
        double per = s->batches ? (double)s->busy_ns / 1e6 / (double)s->batches : 0;
        fprintf(out, "%-18s %8llu %6.1f %11.2f %10.3f %10.2f %6llu %7u ", s->name,
                (unsigned long long)s->batches, mean, queue, secs(s->busy_ns), per,
                (unsigned long long)s->splits, s->ceiling);
        for (int b = 0; b < 8; b++)
            if (s->batch_hist[b])
                fprintf(out, " %s:%llu", batch_buckets[b], (unsigned long long)s->batch_hist[b]);
        fprintf(out, "\n");
    }
}

/* --- CPU by thread (threads.c fills it, most first) --- */

static double thread_cpu_total(const sl_report *r) {
    double all = 0;
    for (size_t i = 0; i < r->nthread_cpu; i++) all += r->thread_cpu[i].cpu_s;
    return all;
}

/* "sluice-pool x2", "loop" */
static void thread_label(const sl_thread_cpu *t, char *buf, size_t len) {
    if (t->threads > 1)
        snprintf(buf, len, "%s x%d", t->name, t->threads);
    else
        snprintf(buf, len, "%s", t->name);
}

sl_thread_cpu *sl_thread_cpu_slot(sl_thread_cpu **v, size_t *n, const char *name) {
    for (size_t k = 0; k < *n; k++)
        if (strcmp((*v)[k].name, name) == 0) return &(*v)[k];
    sl_thread_cpu *g = realloc(*v, (*n + 1) * sizeof *g);
    if (!g) return NULL;
    *v = g;
    sl_thread_cpu *t = &g[(*n)++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

void sl_report_busiest_threads(const sl_report *r, char *buf, size_t len) {
    buf[0] = '\0';
    double all = thread_cpu_total(r);
    if (all <= 0) return;
    size_t o = 0;
    for (size_t i = 0; i < r->nthread_cpu && i < 3; i++) {
        const sl_thread_cpu *t = &r->thread_cpu[i];
        if (t->cpu_s < 0.1 * all) break; /* most first */
        char label[32];
        thread_label(t, label, sizeof label);
        int w = snprintf(buf + o, len - o, "%s%s %.0f%%", i ? ", " : "; sluice's CPU by thread: ", label,
                         t->cpu_s / all * 100);
        if (w < 0 || (size_t)w >= len - o) {
            buf[0] = '\0';
            return;
        }
        o += (size_t)w;
    }
}

/* One line: the CPU of this process's threads by name, beside the stage
 * table (whose busy time leaves out the threads plugins run themselves). */
static void print_thread_cpu(const sl_report *r, FILE *out) {
    double all = thread_cpu_total(r);
    if (all <= 0) return;
    fprintf(out, "CPU by thread, %.2f s in all:", all);
    size_t shown = 0;
    for (size_t i = 0; i < r->nthread_cpu; i++) {
        const sl_thread_cpu *t = &r->thread_cpu[i];
        if (t->cpu_s < 0.005) continue; /* a thread that slept through the run */
        char label[32];
        thread_label(t, label, sizeof label);
        fprintf(out, "%s %s %.2f s (%.0f%%)", shown++ ? "," : "", label, t->cpu_s, t->cpu_s / all * 100);
    }
    fprintf(out, "\n");
}

void sl_report_print(const sl_report *r, FILE *out) {
    double mb = (double)r->bytes / (1024.0 * 1024.0);
    fprintf(out, "documents: %llu total, %llu stored, %llu skipped (unchanged), %llu failed",
            (unsigned long long)r->total, (unsigned long long)r->stored, (unsigned long long)r->skipped,
            (unsigned long long)r->failed);
    if (r->pruned) fprintf(out, ", %llu pruned", (unsigned long long)r->pruned);
    if (r->children) fprintf(out, " (%llu found inside documents)", (unsigned long long)r->children);
    if (r->parked)
        fprintf(out, ", %llu dead letters passed over (sluice failed; sluice retry --all)",
                (unsigned long long)r->parked);
    fprintf(out, "\n");
    print_ext_counts(&r->no_route, "skipped", "no route (-v lists them)", out);
    print_ext_counts(&r->not_included, "not included", "outside [sluice] include (-v lists them)", out);
    if (r->detected) {
        fprintf(out, "detected by content (%llu):\n", (unsigned long long)r->detected);
        for (size_t i = 0; i < r->ndetections; i++) {
            const sl_detection *d = &r->detections[i];
            fprintf(out, "  %s: named %s, content %s; believed the %s\n", d->uri, d->named, d->content,
                    strcmp(d->believed, d->content) == 0 ? "content" : "name");
        }
        if (r->detected > r->ndetections)
            fprintf(out, "  ... and %llu more\n", (unsigned long long)(r->detected - r->ndetections));
    }
    fprintf(out,
            "chunks stored: %llu; read %.1f MB in %.2f s (%.1f docs/s, %.2f MB/s) on %d threads; peak RSS "
            "%.1f MB\n",
            (unsigned long long)r->chunks, mb, r->wall_s, r->wall_s > 0 ? (double)r->total / r->wall_s : 0.0,
            r->wall_s > 0 ? mb / r->wall_s : 0.0, r->threads, (double)r->peak_rss / (1024.0 * 1024.0));
    if (r->memory_budget)
        fprintf(out, "in flight: at most %.1f MB held by documents of a %.1f MB memory_budget\n",
                (double)r->peak_inflight / (1024.0 * 1024.0), (double)r->memory_budget / (1024.0 * 1024.0));
    fprintf(out, "\n%-18s %-16s %-8s %10s %9s %10s %10s %8s %8s\n", "stage", "plugin", "executor", "items",
            "calls", "busy s", "queued s*", "retries", "failed");
    for (size_t i = 0; i < r->nstages; i++) {
        const sl_stage_stats *s = &r->stages[i];
        fprintf(out, "%-18s %-16s %-8s %10llu %9llu %10.3f %10.3f %8llu %8llu\n", s->name, s->plugin,
                s->executor, (unsigned long long)s->items, (unsigned long long)s->calls, secs(s->busy_ns),
                secs(s->wait_ns), (unsigned long long)s->retries, (unsigned long long)s->failures);
    }
    fprintf(out, "(* queued s is summed over the stage's items: it can exceed the run's %.2f s)\n",
            r->wall_s);
    print_batching(r, out);
    print_thread_cpu(r, out);
    if (r->nproviders) {
        double total = 0;
        fprintf(out, "\n%-18s %-16s %9s %8s %8s %12s %12s %7s %10s %6s %6s\n", "provider", "plugin",
                "requests", "retries", "failed", "tokens in", "tokens out", "breaker", "cost", "conns",
                "http/2");
        for (size_t i = 0; i < r->nproviders; i++) {
            const sl_provider_stats *p = r->providers[i];
            double cost = sl_provider_cost(p);
            total += cost;
            fprintf(out, "%-18s %-16s %9llu %8llu %8llu %12llu %12llu %7llu %10.4f %6llu %6llu\n", p->name,
                    p->plugin, (unsigned long long)p->requests, (unsigned long long)p->retries,
                    (unsigned long long)p->failures, (unsigned long long)p->tokens_in,
                    (unsigned long long)p->tokens_out, (unsigned long long)p->breaker_opens, cost,
                    (unsigned long long)p->connections, (unsigned long long)p->http2);
        }
        if (total > 0) fprintf(out, "total cost: %.4f\n", total);
    }
    if (r->failed) {
        fprintf(out, "\nfailed documents (%llu):\n", (unsigned long long)r->failed);
        for (size_t i = 0; i < r->nfailures; i++)
            fprintf(out, "  %s [%s]: %s\n", r->failures[i].uri, r->failures[i].stage, r->failures[i].reason);
        if (r->failed > r->nfailures)
            fprintf(out, "  ... and %llu more\n", (unsigned long long)(r->failed - r->nfailures));
        fprintf(
            out,
            "(run again, or 'sluice retry', to retry them: stored and unchanged documents are skipped)\n");
    }
    if (r->binding_kind) fprintf(out, "\n%s\n", r->binding);
    if (r->interrupted) fprintf(out, "\ninterrupted: documents not reached are left for the next run\n");
    if (r->fatal)
        fprintf(out, "\nstopped after %llu documents stored: %s\n", (unsigned long long)r->stored,
                r->fatal_msg);
    if (r->late_answers || r->extra_answers)
        fprintf(out,
                "\nsl_call_done calls ignored: %llu after their call's deadline, %llu on calls already "
                "answered (a plugin bug: see the log)\n",
                (unsigned long long)r->late_answers, (unsigned long long)r->extra_answers);
}

int sl_report_write_json(const sl_report *r, FILE *out) {
    json_t *root = json_object();
    json_object_set_new(root, "version", json_string(SLUICE_VERSION_STRING));
    json_object_set_new(root, "run_id", json_integer((json_int_t)r->run_id));
    json_object_set_new(root, "wall_s", json_real(r->wall_s));
    json_object_set_new(root, "threads", json_integer(r->threads));
    json_object_set_new(root, "peak_rss_bytes", json_integer((json_int_t)r->peak_rss));
    json_object_set_new(root, "peak_inflight_bytes", json_integer((json_int_t)r->peak_inflight));
    json_object_set_new(root, "memory_budget_bytes", json_integer((json_int_t)r->memory_budget));
    json_object_set_new(root, "inflight_expansion", json_real(r->expansion));
    if (r->binding_kind) {
        json_t *b = json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:f}", "kind", r->binding_kind, "line",
                              r->binding, "chain_s", r->chain_s, "loop_busy", r->loop_busy, "cores_used",
                              r->cores_used, "budget_wait_s", r->budget_wait_s, "settle_s", r->settle_s);
        if (b && r->cpu_wait_s >= 0) json_object_set_new(b, "cpu_wait_s", json_real(r->cpu_wait_s));
        json_object_set_new(root, "binding", b);
    }
    json_t *tcpu = json_array();
    for (size_t i = 0; i < r->nthread_cpu; i++)
        json_array_append_new(tcpu, json_pack("{s:s, s:i, s:f}", "name", r->thread_cpu[i].name, "threads",
                                              r->thread_cpu[i].threads, "cpu_s", r->thread_cpu[i].cpu_s));
    json_object_set_new(root, "thread_cpu", tcpu);
    json_t *docs = json_object();
    json_object_set_new(docs, "total", json_integer((json_int_t)r->total));
    json_object_set_new(docs, "stored", json_integer((json_int_t)r->stored));
    json_object_set_new(docs, "skipped", json_integer((json_int_t)r->skipped));
    json_object_set_new(docs, "failed", json_integer((json_int_t)r->failed));
    json_object_set_new(docs, "pruned", json_integer((json_int_t)r->pruned));
    json_object_set_new(docs, "children", json_integer((json_int_t)r->children));
    json_object_set_new(docs, "parked", json_integer((json_int_t)r->parked));
    json_object_set_new(root, "documents", docs);
    json_object_set_new(root, "bytes", json_integer((json_int_t)r->bytes));
    json_object_set_new(root, "chunks", json_integer((json_int_t)r->chunks));
    json_t *stages = json_array();
    for (size_t i = 0; i < r->nstages; i++) {
        const sl_stage_stats *s = &r->stages[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(s->name));
        json_object_set_new(o, "plugin", json_string(s->plugin));
        json_object_set_new(o, "executor", json_string(s->executor));
        json_object_set_new(o, "items", json_integer((json_int_t)s->items));
        json_object_set_new(o, "calls", json_integer((json_int_t)s->calls));
        json_object_set_new(o, "busy_s", json_real(secs(s->busy_ns)));
        json_object_set_new(o, "wait_s", json_real(secs(s->wait_ns)));
        json_object_set_new(o, "retries", json_integer((json_int_t)s->retries));
        json_object_set_new(o, "failures", json_integer((json_int_t)s->failures));
        if (s->batched) {
            json_t *bt = json_object(), *hist = json_object();
            for (int b = 0; b < 8; b++)
                json_object_set_new(hist, batch_buckets[b], json_integer((json_int_t)s->batch_hist[b]));
            json_object_set_new(bt, "batches", json_integer((json_int_t)s->batches));
            json_object_set_new(bt, "sizes", hist);
            json_object_set_new(bt, "queue_wait_s", json_real(secs(s->wait_ns)));
            json_object_set_new(bt, "device_s", json_real(secs(s->busy_ns)));
            json_object_set_new(bt, "splits", json_integer((json_int_t)s->splits));
            json_object_set_new(bt, "ceiling", json_integer((json_int_t)s->ceiling));
            json_object_set_new(o, "batching", bt);
        }
        json_array_append_new(stages, o);
    }
    json_object_set_new(root, "stages", stages);
    json_t *provs = json_array();
    for (size_t i = 0; i < r->nproviders; i++) {
        const sl_provider_stats *p = r->providers[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(p->name));
        json_object_set_new(o, "plugin", json_string(p->plugin));
        json_object_set_new(o, "requests", json_integer((json_int_t)p->requests));
        json_object_set_new(o, "retries", json_integer((json_int_t)p->retries));
        json_object_set_new(o, "failures", json_integer((json_int_t)p->failures));
        json_object_set_new(o, "tokens_in", json_integer((json_int_t)p->tokens_in));
        json_object_set_new(o, "tokens_out", json_integer((json_int_t)p->tokens_out));
        json_object_set_new(o, "breaker_opens", json_integer((json_int_t)p->breaker_opens));
        json_object_set_new(o, "cost", json_real(sl_provider_cost(p)));
        json_object_set_new(o, "throttled", json_integer((json_int_t)p->throttled));
        json_object_set_new(o, "limit_wait_s", json_real(secs(p->limit_wait_ns)));
        json_object_set_new(o, "breaker", json_string(sl_breaker_name(p->breaker_state)));
        json_object_set_new(o, "resends", json_integer((json_int_t)p->resends));
        json_object_set_new(o, "connections", json_integer((json_int_t)p->connections));
        json_object_set_new(o, "http2_requests", json_integer((json_int_t)p->http2));
        json_array_append_new(provs, o);
    }
    json_object_set_new(root, "providers", provs);
    json_t *failed = json_array();
    for (size_t i = 0; i < r->nfailures; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "uri", json_string(r->failures[i].uri));
        json_object_set_new(o, "stage", json_string(r->failures[i].stage));
        /* json_string refuses invalid UTF-8; reasons may quote bad bytes */
        json_t *reason = json_string(r->failures[i].reason);
        json_object_set_new(o, "reason", reason ? reason : json_string("(reason not valid UTF-8)"));
        json_array_append_new(failed, o);
    }
    json_object_set_new(root, "failed", failed);
    json_object_set_new(root, "no_route", ext_counts_json(&r->no_route));
    json_object_set_new(root, "not_included", ext_counts_json(&r->not_included));
    json_t *det = json_array();
    for (size_t i = 0; i < r->ndetections; i++) {
        const sl_detection *d = &r->detections[i];
        json_t *uri = json_string(d->uri);
        json_array_append_new(det,
                              json_pack("{s:o, s:s, s:s, s:s}", "uri", uri ? uri : json_string("(not UTF-8)"),
                                        "named", d->named, "content", d->content, "believed", d->believed));
    }
    json_object_set_new(root, "detected", det);
    json_object_set_new(root, "worker_restarts", json_integer((json_int_t)r->worker_restarts));
    json_object_set_new(root, "interrupted", json_boolean(r->interrupted));
    if (r->fatal) json_object_set_new(root, "fatal", json_string(r->fatal_msg));
    json_t *ign = json_object();
    json_object_set_new(ign, "late", json_integer((json_int_t)r->late_answers));
    json_object_set_new(ign, "already_answered", json_integer((json_int_t)r->extra_answers));
    json_object_set_new(root, "answers_ignored", ign);
    int rc = json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', out);
    json_decref(root);
    return rc == 0 ? 0 : SL_EFATAL;
}

void sl_report_free(sl_report *r) {
    for (size_t i = 0; i < r->nstages; i++) {
        free(r->stages[i].name);
        free(r->stages[i].plugin);
    }
    free(r->stages);
    for (size_t i = 0; i < r->nfailures; i++) {
        free(r->failures[i].uri);
        free(r->failures[i].stage);
        free(r->failures[i].reason);
    }
    free(r->failures);
    free(r->no_route.by_ext);
    free(r->not_included.by_ext);
    for (size_t i = 0; i < r->ndetections; i++) {
        free(r->detections[i].uri);
        free(r->detections[i].named);
        free(r->detections[i].content);
        free(r->detections[i].believed);
    }
    free(r->detections);
    for (size_t i = 0; i < r->nproviders; i++) {
        free(r->providers[i]->name);
        free(r->providers[i]->plugin);
        free(r->providers[i]);
    }
    free(r->providers);
    free(r->thread_cpu);
    memset(r, 0, sizeof *r);
}

void sl_progress_draw(const sl_report *r, double elapsed, uint64_t done) {
    char line[512];
    int o = 0;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    unsigned pct = r->total ? (unsigned)(done * 100 / r->total) : 0;
    o +=
        snprintf(line + o, sizeof line - (size_t)o, "[%llu/%llu%s] %u%% %.1f docs/s",
                 (unsigned long long)done, (unsigned long long)r->total, r->total_open ? "+" : "", pct, rate);
    if (rate > 0 && r->total > done && !r->total_open) {
        unsigned long eta = (unsigned long)((double)(r->total - done) / rate);
        o += snprintf(line + o, sizeof line - (size_t)o, " ETA %lu:%02lu", eta / 60, eta % 60);
    }
    o += snprintf(line + o, sizeof line - (size_t)o, " |");
    for (size_t i = 0; i < r->nstages && o < (int)sizeof line - 40; i++) {
        const sl_stage_stats *s = &r->stages[i];
        if (s->inflight || s->queued)
            o += snprintf(line + o, sizeof line - (size_t)o, " %s %d", s->name, s->inflight + s->queued);
    }
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
}

void sl_progress_clear(void) {
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
}

void sl_report_accumulate(sl_report *dst, const sl_report *src, size_t keep_failures) {
    dst->run_id = src->run_id;
    dst->threads = src->threads;
    dst->memory_budget = src->memory_budget;
    dst->total += src->total;
    dst->stored += src->stored;
    dst->skipped += src->skipped;
    dst->failed += src->failed;
    dst->pruned += src->pruned;
    dst->parked += src->parked;
    dst->bytes += src->bytes;
    dst->chunks += src->chunks;
    dst->worker_restarts += src->worker_restarts;
    if (src->peak_rss > dst->peak_rss) dst->peak_rss = src->peak_rss;
    if (src->peak_inflight > dst->peak_inflight) dst->peak_inflight = src->peak_inflight;
    if (src->expansion > dst->expansion) dst->expansion = src->expansion;
    for (size_t i = 0; i < src->nstages; i++) {
        const sl_stage_stats *a = &src->stages[i];
        sl_stage_stats *b = NULL;
        for (size_t k = 0; k < dst->nstages && !b; k++)
            if (strcmp(dst->stages[k].name, a->name) == 0 && strcmp(dst->stages[k].plugin, a->plugin) == 0)
                b = &dst->stages[k];
        if (!b && !(b = sl_report_add_stage(dst, a->name, a->plugin, a->executor))) continue;
        b->items += a->items;
        b->calls += a->calls;
        b->busy_ns += a->busy_ns;
        b->wait_ns += a->wait_ns;
        b->failures += a->failures;
        b->retries += a->retries;
        b->batched |= a->batched;
        b->batches += a->batches;
        for (size_t h = 0; h < 8; h++) b->batch_hist[h] += a->batch_hist[h];
        b->splits += a->splits;
        b->ceiling = a->ceiling;
        b->inflight = a->inflight;
        b->queued = a->queued;
    }
    for (size_t i = 0; i < src->nproviders; i++) {
        const sl_provider_stats *a = src->providers[i];
        sl_provider_stats *b = NULL;
        for (size_t k = 0; k < dst->nproviders && !b; k++)
            if (strcmp(dst->providers[k]->name, a->name) == 0) b = dst->providers[k];
        if (!b && !(b = sl_report_add_provider(dst, a->name, a->plugin))) continue;
        b->requests += a->requests;
        b->retries += a->retries;
        b->failures += a->failures;
        b->tokens_in += a->tokens_in;
        b->tokens_out += a->tokens_out;
        b->breaker_opens += a->breaker_opens;
        b->price_input = a->price_input;
        b->price_output = a->price_output;
        b->throttled += a->throttled;
        b->limit_wait_ns += a->limit_wait_ns;
        b->breaker_state = a->breaker_state;
        b->resends += a->resends;
        b->connections += a->connections;
        b->http2 += a->http2;
    }
    for (size_t i = 0; i < src->nthread_cpu; i++) {
        const sl_thread_cpu *a = &src->thread_cpu[i];
        sl_thread_cpu *b = sl_thread_cpu_slot(&dst->thread_cpu, &dst->nthread_cpu, a->name);
        if (!b) continue;
        b->cpu_s += a->cpu_s;
        if (a->threads > b->threads) b->threads = a->threads;
    }
    for (size_t i = 0; i < src->nfailures; i++)
        sl_report_add_failure(dst, src->failures[i].uri, src->failures[i].stage, src->failures[i].reason);
    if (dst->nfailures > keep_failures) {
        size_t drop = dst->nfailures - keep_failures;
        for (size_t i = 0; i < drop; i++) {
            free(dst->failures[i].uri);
            free(dst->failures[i].stage);
            free(dst->failures[i].reason);
        }
        memmove(dst->failures, dst->failures + drop, keep_failures * sizeof *dst->failures);
        dst->nfailures = keep_failures;
    }
}
