/* runtime.c - settings, instances and routes from a config (see runtime.h). */
#include "runtime.h"
#include "source.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "guard.h"
#include "http_request.h"
#include "httpd.h"
#include "shared_limits.h"
#include "options.h"
#include "loop.h"
#include "pool.h"

/* "a" or "an" before a role's name, as it is read aloud ("an embedder",
 * "an llm", "a parser"). */
static const char *article(const char *word) {
    return strchr("aeiou", word[0]) || strcmp(word, "llm") == 0 ? "an" : "a";
}

static const sl_option settings_options[] = {
    {"threads",
     SL_OPT_INT,
     "0",
     "pool threads; 0: one per core",
     0,
     offsetof(sl_settings, threads),
     NULL,
     {0}},
    {"memory_budget",
     SL_OPT_SIZE,
     "256M",
     "bytes of documents in flight at once",
     0,
     offsetof(sl_settings, memory_budget),
     NULL,
     {0}},
    {"max_documents",
     SL_OPT_INT,
     "0",
     "documents in flight at once; 0: derived from threads and batch sizes",
     0,
     offsetof(sl_settings, max_documents),
     NULL,
     {0}},
    {"max_file_size",
     SL_OPT_SIZE,
     "64M",
     "larger files fail with a reason",
     0,
     offsetof(sl_settings, max_file_size),
     NULL,
     {0}},
    {"include",
     SL_OPT_STRING,
     "*.md *.markdown *.txt *.text",
     "file name patterns ingested inside folders",
     0,
     offsetof(sl_settings, include),
     NULL,
     {0}},
    {"exclude",
     SL_OPT_STRING,
     ".git .sluice node_modules",
     "file and folder name patterns skipped",
     0,
     offsetof(sl_settings, exclude),
     NULL,
     {0}},
    {"plugin_path",
     SL_OPT_STRING,
     "",
     "extra plugin folders, space-separated, relative to the INI file",
     0,
     offsetof(sl_settings, plugin_path),
     NULL,
     {0}},
    {"retries",
     SL_OPT_INT,
     "5",
     "attempts after a retryable failure",
     0,
     offsetof(sl_settings, retries),
     NULL,
     {0}},
    {"retry_base",
     SL_OPT_DURATION,
     "200ms",
     "first backoff; doubles each attempt, with full jitter",
     0,
     offsetof(sl_settings, retry_base_ms),
     NULL,
     {0}},
    {"retry_max",
     SL_OPT_DURATION,
     "30s",
     "longest backoff",
     0,
     offsetof(sl_settings, retry_max_ms),
     NULL,
     {0}},
    {"shutdown_grace",
     SL_OPT_DURATION,
     "30s",
     "after SIGINT or SIGTERM, how long documents in flight may take to finish before sluice stops anyway",
     0,
     offsetof(sl_settings, shutdown_grace_ms),
     NULL,
     {0}},
    {"retry_budget",
     SL_OPT_DURATION,
     "10m",
     "the most one call may wait in backoffs, a provider's Retry-After included; past it the document fails",
     0,
     offsetof(sl_settings, retry_budget_ms),
     NULL,
     {0}},
    {"workers",
     SL_OPT_INT,
     "0",
     "worker processes for isolated stages; 0: from cores and memory_budget",
     0,
     offsetof(sl_settings, workers),
     NULL,
     {0}},
    {"worker_max_documents",
     SL_OPT_INT,
     "1000",
     "a worker is replaced after this many documents; 0: never",
     0,
     offsetof(sl_settings, worker_max_documents),
     NULL,
     {0}},
    {"worker_max_rss",
     SL_OPT_SIZE,
     "1G",
     "a worker above this resident size is replaced between documents",
     0,
     offsetof(sl_settings, worker_max_rss),
     NULL,
     {0}},
    {"worker_memory_limit",
     SL_OPT_SIZE,
     "4G",
     "address-space limit of each worker (setrlimit); 0: none",
     0,
     offsetof(sl_settings, worker_memory_limit),
     NULL,
     {0}},
    {"worker_timeout",
     SL_OPT_DURATION,
     "5m",
     "a worker busy longer on one call is killed; 0: never",
     0,
     offsetof(sl_settings, worker_timeout_ms),
     NULL,
     {0}},
    {"worker_seccomp",
     SL_OPT_BOOL,
     "false",
     "deny workers network and file writes after their plugins' init",
     0,
     offsetof(sl_settings, worker_seccomp),
     NULL,
     {0}},
    {"max_children",
     SL_OPT_INT,
     "1000",
     "documents one document may hold (an email's attachments); past it the document fails",
     0,
     offsetof(sl_settings, max_children),
     NULL,
     {0}},
    {"max_child_bytes",
     SL_OPT_SIZE,
     "64M",
     "bytes of the documents one document holds, in all; past it the document fails",
     0,
     offsetof(sl_settings, max_child_bytes),
     NULL,
     {0}},
    {"watch",
     SL_OPT_STRING,
     "",
     "serve: folders to ingest and follow, space-separated (relative ones from the current directory)",
     0,
     offsetof(sl_settings, watch),
     NULL,
     {0}},
    {"watch_debounce",
     SL_OPT_DURATION,
     "500ms",
     "serve: a changed file is ingested once it has been quiet and its size and mtime steady this long",
     0,
     offsetof(sl_settings, watch_debounce_ms),
     NULL,
     {0}},
    {"rescan",
     SL_OPT_DURATION,
     "5m",
     "serve: walk every watched folder again this often, in case an event was missed; 0: never",
     0,
     offsetof(sl_settings, rescan_ms),
     NULL,
     {0}},
    {"report_interval",
     SL_OPT_DURATION,
     "60s",
     "serve: log the cumulative counters this often; 0: never",
     0,
     offsetof(sl_settings, report_interval_ms),
     NULL,
     {0}},
    {"listen",
     SL_OPT_STRING,
     "",
     "HOST:PORT to serve /metrics, /health, /ready, /query and a status page on (127.0.0.1:9464); "
     "empty: off",
     0,
     offsetof(sl_settings, listen),
     NULL,
     {0}},
    {"listen_linger",
     SL_OPT_DURATION,
     "0",
     "`sluice run`: keep serving this long after the run ended (SIGINT or SIGTERM ends it sooner), so the "
     "final numbers can be scraped",
     0,
     offsetof(sl_settings, listen_linger_ms),
     NULL,
     {0}},
    {"max_attempts",
     SL_OPT_INT,
     "5",
     "a document that failed this many runs is parked as a dead letter until `sluice retry --all`; 0: never",
     0,
     offsetof(sl_settings, max_attempts),
     NULL,
     {0}},
    {"call_deadline",
     SL_OPT_DURATION,
     "10m",
     "a plugin call that answered SL_PENDING and has not called sl_call_done after this long fails its "
     "document (a stage's call_timeout sets its own); so does a pool call still running, whose thread is "
     "then left to it",
     0,
     offsetof(sl_settings, call_deadline_ms),
     NULL,
     {0}},
    {"slow_call",
     SL_OPT_DURATION,
     "60s",
     "a plugin call on the thread pool running longer is logged with its plugin and document; 0: never",
     0,
     offsetof(sl_settings, slow_call_ms),
     NULL,
     {0}},
    {"s3_endpoint",
     SL_OPT_STRING,
     "",
     "s3:// URIs: the URL of an S3-compatible server, addressed path style (http://127.0.0.1:9000); empty: "
     "AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, else AWS itself",
     0,
     offsetof(sl_settings, s3_endpoint),
     NULL,
     {0}},
    {"fetch_ca_file",
     SL_OPT_PATH,
     "",
     "http(s):// and s3:// documents: a PEM file of CA certificates to trust besides the system's (a web or "
     "S3-compatible server behind a company CA); empty: the system's alone",
     0,
     offsetof(sl_settings, fetch_ca_file),
     NULL,
     {0}},
    {"fetch_timeout",
     SL_OPT_DURATION,
     "60s",
     "an http(s):// or s3:// document's request (and an s3:// listing page) fails after this long, and is "
     "retried like a 5xx ([sluice] retries)",
     0,
     offsetof(sl_settings, fetch_timeout_ms),
     NULL,
     {0}},
    {"queue_lease_size",
     SL_OPT_INT,
     "16",
     "`run --queue`/`serve --queue`: jobs a node leases and holds at once (1 to 10000)",
     0,
     offsetof(sl_settings, queue_lease_size),
     NULL,
     {0}},
    {"queue_lease",
     SL_OPT_DURATION,
     "60s",
     "queue nodes: a lease lasts this long; the node heartbeats every third of it, and a node that dies "
     "or stalls loses its jobs to others when it runs out (at least 1s)",
     0,
     offsetof(sl_settings, queue_lease_ms),
     NULL,
     {0}},
    {"queue_poll",
     SL_OPT_DURATION,
     "2s",
     "queue nodes: an idle node asks for jobs again after about this long (with jitter)",
     0,
     offsetof(sl_settings, queue_poll_ms),
     NULL,
     {0}},
    {"queue_backoff",
     SL_OPT_DURATION,
     "10s",
     "queue: a failed job waits this long before its next try, doubled per failure (at most an hour); "
     "after [sluice] max_attempts failures it is dead",
     0,
     offsetof(sl_settings, queue_backoff_ms),
     NULL,
     {0}},
    {NULL, 0, NULL, NULL, 0, 0, NULL, {0}},
};

const sl_option *sl_settings_options(void) { return settings_options; }

#define ROUTE_PREFIX "route."
#define SETTINGS_SECTION "sluice"

static int is_route(const char *section) { return strncmp(section, ROUTE_PREFIX, strlen(ROUTE_PREFIX)) == 0; }

/* Splits "a b, c" into words; returns the count, *out malloc'd strings. */
static size_t split_words(const char *s, char ***out) {
    *out = NULL;
    size_t n = 0;
    if (!s) return 0;
    char *copy = strdup(s);
    if (!copy) return 0;
    for (char *save = NULL, *t = strtok_r(copy, " \t,", &save); t; t = strtok_r(NULL, " \t,", &save)) {
        char **nv = realloc(*out, (n + 1) * sizeof *nv);
        if (!nv) break;
        *out = nv;
        nv[n++] = strdup(t);
    }
    free(copy);
    return n;
}

static void free_words(char **w, size_t n) {
    for (size_t i = 0; i < n; i++) free(w[i]);
    free(w);
}

/* The ranges of the integer settings: a value outside one is refused with
 * its file and line before anything starts (a huge `workers` would fork
 * without end; a negative count means nothing). */
static const struct {
    const char *name;
    int64_t min, max;
} settings_bounds[] = {
    {"threads", 0, 1024},         {"max_documents", 0, 100000000},        {"retries", 0, 1000},
    {"workers", 0, 1024},         {"worker_max_documents", 0, INT64_MAX}, {"max_children", 0, 1000000},
    {"max_attempts", 0, 1000000},
};

static int check_setting_bounds(sl_runtime *rt, const char *key, const char *where) {
    for (size_t i = 0; i < sizeof settings_bounds / sizeof settings_bounds[0]; i++) {
        if (strcmp(settings_bounds[i].name, key) != 0) continue;
        const sl_option *o = settings_options;
        while (o->name && strcmp(o->name, key) != 0) o++;
        int64_t v;
        memcpy(&v, (char *)&rt->set + o->offset, sizeof v);
        if (v < settings_bounds[i].min || v > settings_bounds[i].max)
            return sl_ctx_error(rt->ctx, SL_EFATAL, "%s[sluice] %s: %lld is out of range (%lld to %lld)",
                                where, key, (long long)v, (long long)settings_bounds[i].min,
                                (long long)settings_bounds[i].max);
    }
    return 0;
}

static int parse_settings(sl_runtime *rt) {
    sl_config *cfg = rt->cfg;
    char err[512], where[512];
    for (const sl_option *o = settings_options; o->name; o++) {
        if (sl_option_parse(o, o->def, cfg->dir, &rt->set, &rt->owned, &rt->nowned, err, sizeof err) != 0)
            return sl_ctx_error(rt->ctx, SL_EFATAL, "built-in default of [sluice] %s: %s", o->name, err);
    }
    sl_conf_section *sec = sl_config_section(cfg, SETTINGS_SECTION);
    for (size_t i = 0; sec && i < sec->n; i++) {
        sl_conf_kv *kv = &sec->kv[i];
        const sl_option *o = settings_options;
        while (o->name && strcmp(o->name, kv->key) != 0) o++;
        sl_config_where(cfg, kv->line, where, sizeof where);
        if (!o->name) {
            char known[512] = "";
            for (const sl_option *k = settings_options; k->name; k++) {
                strncat(known, k->name, sizeof known - strlen(known) - 3);
                if (k[1].name) strncat(known, ", ", sizeof known - strlen(known) - 1);
            }
            return sl_ctx_error(rt->ctx, SL_EFATAL, "%s: [sluice] %s: unknown setting (known: %s)", where,
                                kv->key, known);
        }
        kv->used = 1;
        if (sl_option_parse(o, kv->value, cfg->dir, &rt->set, &rt->owned, &rt->nowned, err, sizeof err) != 0)
            return sl_ctx_error(rt->ctx, SL_EFATAL, "%s: [sluice] %s: %s", where, kv->key, err);
        strncat(where, ": ", sizeof where - strlen(where) - 1);
        if (check_setting_bounds(rt, kv->key, where)) return SL_EFATAL;
        struct sockaddr_storage ss;
        if (strcmp(kv->key, "listen") == 0 && rt->set.listen[0] &&
            sl_httpd_parse_listen(rt->set.listen, &ss, err, sizeof err))
            return sl_ctx_error(rt->ctx, SL_EFATAL, "%s[sluice] listen: %s", where, err);
    }
    return 0;
}

void sl_registry_add_path_list(sl_registry *reg, const char *list, const char *base) {
    char **dirs;
    size_t n = split_words(list, &dirs);
    for (size_t i = 0; i < n; i++) {
        char buf[4096];
        if (dirs[i][0] != '/' && base)
            snprintf(buf, sizeof buf, "%s/%s", base, dirs[i]);
        else
            snprintf(buf, sizeof buf, "%s", dirs[i]);
        sl_registry_add_dir(reg, buf);
    }
    free_words(dirs, n);
}

static sl_instance *find_instance(sl_runtime *rt, const char *name) {
    for (size_t i = 0; i < rt->ninst; i++)
        if (strcmp(rt->inst[i]->name, name) == 0) return rt->inst[i];
    return NULL;
}

static int build_instances(sl_runtime *rt) {
    for (size_t i = 0; i < rt->cfg->nsections; i++) {
        const char *name = rt->cfg->sections[i].name;
        if (strcmp(name, SETTINGS_SECTION) == 0 || is_route(name)) continue;
        sl_instance *inst;
        int rc = sl_instance_new(rt->ctx, rt->reg, rt->cfg, name, &inst);
        if (rc) return rc;
        sl_bottleneck b = inst->desc->bottleneck;
        sl_role role = inst->desc->role;
        const char *why = sl_role_executor_refusal(inst->desc, inst->stage.isolated);
        if (why) {
            int code = sl_ctx_error(rt->ctx, SL_EFATAL, "[%s] plugin %s (%s, bottleneck %s): %s", name,
                                    inst->desc->name, sl_role_name(role), sl_bottleneck_name(b), why);
            sl_instance_free(inst);
            return code;
        }
        /* a thread of the pool (or the batcher) cannot be taken back from a
         * plugin mid-call: a limit there would be a promise not kept */
        if (inst->stage.timeout_ms > 0 && !inst->stage.isolated && (b == SL_CPU || b == SL_GPU)) {
            int code = sl_ctx_error(
                rt->ctx, SL_EFATAL,
                "[%s] call_timeout: plugin %s runs on the %s, where a call cannot be stopped once it has "
                "started; set %s.isolated=true to run it in worker processes, where a call past "
                "call_timeout kills the worker and fails the document (or remove call_timeout; "
                "[sluice] slow_call logs long calls)",
                name, inst->desc->name, b == SL_GPU ? "gpu batcher" : "thread pool", name);
            sl_instance_free(inst);
            return code;
        }
        sl_instance **nv = realloc(rt->inst, (rt->ninst + 1) * sizeof *nv);
        if (!nv) {
            sl_instance_free(inst);
            return sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory");
        }
        rt->inst = nv;
        inst->id = (int)rt->ninst;
        inst->loop = rt->loop;
        rt->inst[rt->ninst++] = inst;
    }
    return 0;
}

/* Finds the stage named by a route key, checking its role. */
static int route_stage(sl_runtime *rt, const char *where, const char *route, const char *key,
                       const char *name, sl_instance **out) {
    sl_instance *inst = find_instance(rt, name);
    if (!inst)
        return sl_ctx_error(rt->ctx, SL_EFATAL, "%s: [%s] %s: no section [%s] defines a stage named '%s'",
                            where, route, key, name, name);
    *out = inst;
    return 0;
}

static int parser_reads(const sl_instance *p, const char *media) {
    const char *const *mt = p->desc->media_types;
    for (size_t i = 0; mt && mt[i]; i++)
        if (strcmp(mt[i], media) == 0) return 1;
    return 0;
}

static void route_fingerprint(sl_route *r) {
    XXH3_state_t *st = XXH3_createState();
    XXH3_128bits_reset(st);
    sl_instance *parts[64];
    size_t n = 0;
    parts[n++] = r->parser;
    for (size_t i = 0; i < r->npages && n < 60; i++) parts[n++] = r->pages[i];
    parts[n++] = r->chunker;
    if (r->llm) parts[n++] = r->llm;
    if (r->embedder) parts[n++] = r->embedder;
    for (size_t i = 0; i < n; i++) {
        const char *c = parts[i]->canon ? parts[i]->canon : parts[i]->desc->name;
        XXH3_128bits_update(st, c, strlen(c));
        XXH3_128bits_update(st, "\x1e", 1);
    }
    if (r->llm) {
        /* what the summaries say depends on the core's llm settings too */
        const sl_stage_conf *s = &r->llm->stage;
        char num[64];
        snprintf(num, sizeof num, "%lld %d", (long long)s->max_input_chars, (int)s->embed_summaries);
        const char *items[] = {s->summaries, s->document_prompt, s->chunk_prompt, num};
        for (size_t i = 0; i < 4; i++) {
            XXH3_128bits_update(st, items[i] ? items[i] : "", items[i] ? strlen(items[i]) : 0);
            XXH3_128bits_update(st, "\x1e", 1);
        }
    }
    XXH128_hash_t h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    snprintf(r->fingerprint, sizeof r->fingerprint, "%016llx%016llx", (unsigned long long)h.high64,
             (unsigned long long)h.low64);
}

/* Where a stage of role ri may go in a route whose stages so far reach
 * last_order: NULL when here is fine, else what a route takes. The order
 * comes from the role table: parser, page stages, chunker, llm, embedder;
 * roles after a required one need it before them. */
static const char *route_place(const sl_role_info *ri, size_t i, int *last_order) {
    if (ri->route_order == 0) return ri->route_why;
    if (i == 0 && ri->route_order != 1) return "a parser first";
    if (ri->route_order < *last_order || (ri->route_order == *last_order && !ri->route_many))
        return ri->route_why;
    for (sl_role role = SL_ROLE_PARSER; role <= SL_ROLE_SINK; role++) {
        const sl_role_info *req = sl_role_get(role);
        if (req && req->route_required && req->route_order < ri->route_order &&
            req->route_order > *last_order)
            return ri->route_why;
    }
    *last_order = ri->route_order;
    return NULL;
}

/* Puts a stage where the route keeps its role. */
static int route_put(sl_route *r, sl_instance *inst) {
    switch (inst->desc->role) {
    case SL_ROLE_PARSER: r->parser = inst; break;
    case SL_ROLE_CHUNKER: r->chunker = inst; break;
    case SL_ROLE_EMBEDDER: r->embedder = inst; break;
    case SL_ROLE_LLM: r->llm = inst; break;
    case SL_ROLE_SINK: r->sink = inst; break;
    case SL_ROLE_PAGE: {
        sl_instance **np = realloc(r->pages, (r->npages + 1) * sizeof *np);
        if (!np) return SL_ENOMEM;
        r->pages = np;
        r->pages[r->npages++] = inst;
        break;
    }
    }
    return 0;
}

static int build_route(sl_runtime *rt, sl_conf_section *sec, sl_route *r) {
    char where[512];
    sl_config_where(rt->cfg, sec->line, where, sizeof where);
    r->name = strdup(sec->name + strlen(ROUTE_PREFIX));
    if (!r->name || !*r->name)
        return sl_ctx_error(rt->ctx, SL_EFATAL, "%s: [%s]: a route needs a name", where, sec->name);
    const char *media = NULL, *stages = NULL, *sink = NULL;
    for (size_t i = 0; i < sec->n; i++) {
        sl_conf_kv *kv = &sec->kv[i];
        char kwhere[512];
        sl_config_where(rt->cfg, kv->line, kwhere, sizeof kwhere);
        kv->used = 1;
        if (strcmp(kv->key, "media") == 0)
            media = kv->value;
        else if (strcmp(kv->key, "stages") == 0)
            stages = kv->value;
        else if (strcmp(kv->key, "sink") == 0)
            sink = kv->value;
        else
            return sl_ctx_error(rt->ctx, SL_EFATAL,
                                "%s: [%s] %s: unknown route key (known: media, stages, sink)", kwhere,
                                sec->name, kv->key);
    }
    if (!media || !stages || !sink)
        return sl_ctx_error(rt->ctx, SL_EFATAL, "%s: [%s]: a route needs media, stages and sink (missing %s)",
                            where, sec->name,
                            !media    ? "media"
                            : !stages ? "stages"
                                      : "sink");
    r->nmedia = split_words(media, &r->media);
    char **names;
    size_t n = split_words(stages, &names);
    int rc = 0;
    /* parser, page stages..., chunker, optional embedder */
    size_t i = 0;
    int last_order = 0;
    sl_instance *inst = NULL;
    if (n == 0) rc = sl_ctx_error(rt->ctx, SL_EFATAL, "%s: [%s] stages: empty", where, sec->name);
    for (; rc == 0 && i < n; i++) {
        if ((rc = route_stage(rt, where, sec->name, "stages", names[i], &inst))) break;
        /* a stage named twice would be one stage the route passes twice:
         * its page units would wait on themselves (issue 17: it hung) */
        for (size_t k = 0; k < i && !rc; k++)
            if (strcmp(names[k], names[i]) == 0)
                rc = sl_ctx_error(
                    rt->ctx, SL_EFATAL,
                    "%s: [%s] stages: '%s' is named twice; a route passes each stage once (make a "
                    "second section with the same plugin to run it again)",
                    where, sec->name, names[i]);
        if (rc) break;
        const sl_role_info *ri = sl_role_get(inst->desc->role);
        const char *want = route_place(ri, i, &last_order);
        if (want) {
            rc = sl_ctx_error(rt->ctx, SL_EFATAL, "%s: [%s] stages: '%s' is %s %s stage; a route takes %s",
                              where, sec->name, names[i], article(ri->name), ri->name, want);
            break;
        }
        if ((rc = route_put(r, inst))) {
            rc = sl_ctx_error(rt->ctx, rc, "out of memory");
            break;
        }
    }
    free_words(names, n);
    if (rc) return rc;
    if (!r->chunker)
        return sl_ctx_error(rt->ctx, SL_EFATAL, "%s: [%s] stages: a route needs a chunker", where, sec->name);
    if ((rc = route_stage(rt, where, sec->name, "sink", sink, &r->sink))) return rc;
    if (r->sink->desc->role != SL_ROLE_SINK)
        return sl_ctx_error(rt->ctx, SL_EFATAL, "%s: [%s] sink: '%s' is %s %s stage, not a sink", where,
                            sec->name, sink, article(sl_role_name(r->sink->desc->role)),
                            sl_role_name(r->sink->desc->role));
    for (size_t m = 0; m < r->nmedia; m++) {
        if (!parser_reads(r->parser, r->media[m]))
            return sl_ctx_error(rt->ctx, SL_EFATAL, "%s: [%s] media: parser '%s' (%s) does not read %s",
                                where, sec->name, r->parser->name, r->parser->desc->name, r->media[m]);
    }
    route_fingerprint(r);
    return 0;
}

/* Resolves every stage's `fallback` list: sections of the same role. */
static int resolve_fallbacks(sl_runtime *rt) {
    for (size_t i = 0; i < rt->ninst; i++) {
        sl_instance *inst = rt->inst[i];
        char **names;
        size_t n = split_words(inst->stage.fallback, &names);
        int rc = 0;
        if (n) {
            inst->fallbacks = calloc(n, sizeof *inst->fallbacks);
            if (!inst->fallbacks) rc = sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory");
        }
        for (size_t k = 0; rc == 0 && k < n; k++) {
            sl_instance *f = find_instance(rt, names[k]);
            if (!f)
                rc = sl_ctx_error(rt->ctx, SL_EFATAL, "[%s] fallback: no section [%s]", inst->name, names[k]);
            else if (f == inst)
                rc = sl_ctx_error(rt->ctx, SL_EFATAL, "[%s] fallback: a stage cannot fall back to itself",
                                  inst->name);
            else if (f->desc->role != inst->desc->role)
                rc = sl_ctx_error(rt->ctx, SL_EFATAL, "[%s] fallback: [%s] is %s %s stage, not %s %s stage",
                                  inst->name, names[k], article(sl_role_name(f->desc->role)),
                                  sl_role_name(f->desc->role), article(sl_role_name(inst->desc->role)),
                                  sl_role_name(inst->desc->role));
            else if (f->desc->role != SL_ROLE_EMBEDDER && f->desc->role != SL_ROLE_LLM)
                rc = sl_ctx_error(rt->ctx, SL_EFATAL,
                                  "[%s] fallback: only embedders and llm stages take fallbacks", inst->name);
            else
                inst->fallbacks[inst->nfallbacks++] = f;
        }
        free_words(names, n);
        if (rc) return rc;
    }
    return 0;
}

static int build_routes(sl_runtime *rt) {
    for (size_t i = 0; i < rt->cfg->nsections; i++) {
        sl_conf_section *sec = &rt->cfg->sections[i];
        if (!is_route(sec->name)) continue;
        sl_route *nr = realloc(rt->routes, (rt->nroutes + 1) * sizeof *nr);
        if (!nr) return sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory");
        rt->routes = nr;
        sl_route *r = &rt->routes[rt->nroutes++];
        memset(r, 0, sizeof *r);
        int rc = build_route(rt, sec, r);
        if (rc) return rc;
        for (size_t j = 0; j + 1 < rt->nroutes; j++)
            for (size_t a = 0; a < r->nmedia; a++)
                for (size_t b = 0; b < rt->routes[j].nmedia; b++)
                    if (strcmp(r->media[a], rt->routes[j].media[b]) == 0)
                        return sl_ctx_error(rt->ctx, SL_EFATAL,
                                            "[%s] media: %s is already routed by [route.%s]", sec->name,
                                            r->media[a], rt->routes[j].name);
    }
    if (rt->nroutes == 0)
        return sl_ctx_error(rt->ctx, SL_EFATAL,
                            "%s: no [route.NAME] section: nothing says where documents go", rt->cfg->path);
    return 0;
}

int sl_runtime_open(sl_ctx *ctx, sl_config *cfg, sl_runtime **out) {
    return sl_runtime_open_on(ctx, cfg, NULL, out);
}

int sl_runtime_open_on(sl_ctx *ctx, sl_config *cfg, sl_loop *loop, sl_runtime **out) {
    sl_runtime *rt = calloc(1, sizeof *rt);
    if (!rt) return sl_ctx_error(ctx, SL_ENOMEM, "out of memory");
    rt->ctx = ctx;
    rt->cfg = cfg;
    rt->loop = loop;
    rt->loop_borrowed = loop != NULL;
    int rc = parse_settings(rt);
    char cerr[600];
    if (!rc && sl_http_ca_file_check(rt->set.fetch_ca_file, cerr, sizeof cerr))
        rc = sl_ctx_error(ctx, SL_EFATAL, "[sluice] fetch_ca_file: %s", cerr);
    if (!rc)
        sl_source_configure(ctx, rt->set.s3_endpoint, rt->set.fetch_timeout_ms, rt->set.retries,
                            rt->set.retry_base_ms, rt->set.fetch_ca_file);
    if (!rc) rc = sl_registry_new(ctx, &rt->reg);
    if (!rc) sl_registry_add_path_list(rt->reg, rt->set.plugin_path, cfg->dir);
    if (!rc && !rt->loop && sl_loop_new(&rt->loop) != 0)
        rc = sl_ctx_error(ctx, SL_ENOMEM, "cannot start the event loop");
    if (!rc) rc = build_instances(rt);
    if (!rc) rc = build_routes(rt);
    if (!rc) rc = resolve_fallbacks(rt);
    if (!rc) rc = sl_shared_limits_check(rt);
    if (rc) {
        sl_runtime_free(rt);
        return rc;
    }
    rt->threads = rt->set.threads > 0 ? (int)rt->set.threads : sl_cpu_count();
    *out = rt;
    return 0;
}

static int used_directly(const sl_runtime *rt, const sl_instance *inst) {
    for (size_t i = 0; i < rt->nroutes; i++) {
        const sl_route *r = &rt->routes[i];
        if (r->parser == inst || r->chunker == inst || r->llm == inst || r->embedder == inst ||
            r->sink == inst)
            return 1;
        for (size_t p = 0; p < r->npages; p++)
            if (r->pages[p] == inst) return 1;
    }
    return 0;
}

static int used_by_route(const sl_runtime *rt, const sl_instance *inst) {
    if (used_directly(rt, inst)) return 1;
    for (size_t i = 0; i < rt->ninst; i++)
        if (used_directly(rt, rt->inst[i]))
            for (size_t k = 0; k < rt->inst[i]->nfallbacks; k++)
                if (rt->inst[i]->fallbacks[k] == inst) return 1;
    return 0;
}

/* Vectors from different models do not share a space: an embedder's
 * fallbacks must make the same vectors (LLMs may mix models). */
static int check_embedding_chains(sl_runtime *rt) {
    for (size_t i = 0; i < rt->ninst; i++) {
        sl_instance *a = rt->inst[i];
        if (a->desc->role != SL_ROLE_EMBEDDER || !a->initialized) continue;
        for (size_t k = 0; k < a->nfallbacks; k++) {
            sl_instance *b = a->fallbacks[k];
            const char *ma = a->model ? a->model : "", *mb = b->model ? b->model : "";
            if (!b->initialized) continue;
            if (a->dim != b->dim || strcmp(ma, mb) != 0)
                return sl_ctx_error(rt->ctx, SL_EFATAL,
                                    "[%s] fallback: [%s] embeds with %s (%u dimensions), [%s] with %s (%u "
                                    "dimensions); a fallback chain must use one model and dimension, or "
                                    "stored vectors would not be comparable",
                                    a->name, b->name, mb, b->dim, a->name, ma, a->dim);
        }
    }
    return 0;
}

int sl_runtime_init(sl_runtime *rt, bool all) {
    for (size_t i = 0; i < rt->ninst; i++) {
        if (!all && !used_by_route(rt, rt->inst[i])) continue;
        /* isolated plugins are initialised in their worker processes: a
         * crashing init must not take sluice down */
        if (!all && (rt->inst[i]->stage.isolated || rt->inst[i]->desc->bottleneck == SL_ISOLATED)) continue;
        int rc = sl_instance_init(rt->ctx, rt->inst[i]);
        if (rc) return rc;
    }
    int crc = check_embedding_chains(rt);
    if (crc) return crc;
    /* Vectors in one store must share a space, or queries silently go wrong. */
    for (size_t i = 0; i < rt->nroutes; i++) {
        for (size_t j = i + 1; j < rt->nroutes; j++) {
            const sl_route *a = &rt->routes[i], *b = &rt->routes[j];
            if (a->sink != b->sink || !a->embedder || !b->embedder) continue;
            const char *ma = a->embedder->model ? a->embedder->model : "";
            const char *mb = b->embedder->model ? b->embedder->model : "";
            if (a->embedder->dim != b->embedder->dim || strcmp(ma, mb) != 0)
                return sl_ctx_error(
                    rt->ctx, SL_EFATAL,
                    "[route.%s] and [route.%s] store into '%s' with different embeddings (%s, %u "
                    "dimensions vs %s, %u): queries would compare unrelated vectors",
                    a->name, b->name, a->sink->name, ma, a->embedder->dim, mb, b->embedder->dim);
        }
    }
    return 0;
}

struct sl_parked {
    void *p;
    void (*fn)(void *);
    struct sl_parked *next;
};

void sl_runtime_free(sl_runtime *rt) {
    if (!rt) return;
    for (size_t i = 0; i < rt->nroutes; i++) {
        free_words(rt->routes[i].media, rt->routes[i].nmedia);
        free(rt->routes[i].pages);
        free(rt->routes[i].name);
    }
    free(rt->routes);
    /* fini in reverse order of creation: sinks last in, first out */
    for (size_t i = rt->ninst; i-- > 0;) sl_instance_free(rt->inst[i]);
    free(rt->inst);
    sl_options_free_owned(rt->owned, rt->nowned);
    /* a borrowed loop finishes the closes the plugins began while their code is still loaded */
    if (rt->loop_borrowed && rt->loop) uv_run(sl_loop_uv(rt->loop), UV_RUN_NOWAIT);
    sl_registry_free(rt->reg);
    if (!rt->loop_borrowed) sl_loop_free(rt->loop);
    while (rt->parked) {
        struct sl_parked *p = rt->parked;
        rt->parked = p->next;
        p->fn(p->p);
        free(p);
    }
    free(rt);
}

void sl_runtime_park(sl_runtime *rt, void *p, void (*fn)(void *)) {
    struct sl_parked *k = malloc(sizeof *k);
    if (!k) return; /* kept for good: safer than freed under a plugin */
    k->p = p;
    k->fn = fn;
    k->next = rt->parked;
    rt->parked = k;
}

static int call_claim(sl_call *call, void *arg) {
    (void)arg;
    return call->inst->desc->claim(call);
}

/* --wait: how often a held store is asked again. A lock has no queue to
 * wait in (flock would, an advisory lock would, but not both alike and not
 * with a message on the way), so the waiter polls; half a second is
 * nothing beside a run. */
#define CLAIM_POLL_MS 500

int sl_runtime_claim(sl_runtime *rt) {
    for (size_t i = 0; i < rt->nroutes; i++) {
        sl_instance *sink = rt->routes[i].sink;
        int seen = 0;
        for (size_t j = 0; j < i; j++) seen |= rt->routes[j].sink == sink;
        if (seen || !sink->desc->claim) continue;
        uint64_t t0 = sl_now_ns();
        for (int tries = 0;; tries++) {
            sl_call call;
            int rc = sl_invoke(sink, call_claim, NULL, &call);
            if (!rc) {
                if (tries)
                    sl_ctx_log(rt->ctx, SL_LOG_INFO, sink->name, "the store is ours after waiting %.1f s",
                               (double)(sl_now_ns() - t0) / 1e9);
                break;
            }
            if (rc != SL_ERETRY || !rt->claim_wait)
                return sl_ctx_error(rt->ctx, SL_EFATAL, "[%s] %s", sink->name,
                                    call.msg[0] ? call.msg : sl_strerror(rc));
            if (!tries)
                sl_ctx_log(rt->ctx, SL_LOG_WARN, sink->name, "waiting (--wait): %s",
                           call.msg[0] ? call.msg : sl_strerror(rc));
            if (sl_guard_take_interrupts()) { /* SIGINT/SIGTERM while waiting: nothing was started */
                rt->claim_interrupted = 1;
                return sl_ctx_error(rt->ctx, SL_EFATAL, "[%s] interrupted while waiting for the store: %s",
                                    sink->name, call.msg[0] ? call.msg : sl_strerror(rc));
            }
            struct timespec ts = {0, CLAIM_POLL_MS * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        }
    }
    return 0;
}

void sl_runtime_set_store_mode(sl_runtime *rt, int mode) {
    for (size_t i = 0; i < rt->ninst; i++)
        if (rt->inst[i]->desc->role == SL_ROLE_SINK) rt->inst[i]->store_mode = mode;
}

const sl_route *sl_runtime_route_for(const sl_runtime *rt, const char *media_type) {
    for (size_t i = 0; i < rt->nroutes; i++)
        for (size_t m = 0; m < rt->routes[i].nmedia; m++)
            if (strcmp(rt->routes[i].media[m], media_type) == 0) return &rt->routes[i];
    return NULL;
}

const sl_route *sl_runtime_route_named(const sl_runtime *rt, const char *name) {
    for (size_t i = 0; i < rt->nroutes; i++)
        if (strcmp(rt->routes[i].name, name) == 0) return &rt->routes[i];
    return NULL;
}
