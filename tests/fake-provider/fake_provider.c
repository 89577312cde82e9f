/* fake_provider.c - sluice's stand-in for OpenAI, Anthropic and Ollama: a
 * real HTTP server on 127.0.0.1 for tests and benchmarks, in the tradition of
 * curl's own test servers. The wire formats live in apis.c, the HTTP/1.1
 * transport in http_server.c; this file is the provider's behaviour: options,
 * authentication, rate limits (429 with Retry-After), injected faults,
 * latency, and the counters tests read back from GET /_stats.
 *
 * Every option is declared once, in `options` below: that table parses the
 * command line, applies POST /_config at runtime, prints GET /_config and
 * --help. Faults and latencies draw from two seeded generators of their own,
 * so a run with the same --seed and the same request order faults the same
 * requests, and changing a latency never moves a fault. README.md documents
 * every option and endpoint. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "fake.h"

#define MAX_PATHS 256 /* distinct paths counted in by_path; the rest go to "(other)" */
#define MAX_LATENCY_MS 3600000

enum dist { DIST_FIXED, DIST_UNIFORM, DIST_EXP };
static const char *const dist_names[] = {"fixed", "uniform", "exp"};

struct config {
    int64_t port, backlog;
    int64_t latency_ms, latency_jitter_ms, latency_dist;
    int64_t llm_latency_ms, llm_latency_jitter_ms, embed_latency_ms, embed_latency_jitter_ms;
    int64_t rpm, rpm_window, tpm, max_concurrent;
    double fault_5xx, fault_reset, fault_stall, fault_truncate, fault_malformed, fault_drip;
    double fault_close_reused;
    int64_t drip_interval_ms, fail_first, retry_after_s, oversize, down, seed, embed_dim, log;
    char *api_key, *models;
};

enum opt_type { OPT_INT, OPT_PROB, OPT_BOOL, OPT_STR, OPT_DIST };

struct option {
    const char *name;
    enum opt_type type;
    size_t off;
    int runtime; /* may change through POST /_config */
    int64_t min, max;
    const char *def;
    const char *help;
};

#define O(field) offsetof(struct config, field)
static const struct option options[] = {
    {"port", OPT_INT, O(port), 0, 0, 65535, "0", "TCP port on 127.0.0.1; 0 picks a free one"},
    {"backlog", OPT_INT, O(backlog), 0, 1, 65535, "65535",
     "listen backlog (the kernel caps it at somaxconn)"},
    {"api-key", OPT_STR, O(api_key), 1, 0, 0, "",
     "require this key: Authorization: Bearer KEY (OpenAI, Ollama) or x-api-key: KEY (Anthropic)"},
    {"models", OPT_STR, O(models), 1, 0, 0, "",
     "comma-separated model names to accept (others get 404); empty: any"},
    {"embed-dim", OPT_INT, O(embed_dim), 1, 0, 16384, "0",
     "embedding dimension of every model; 0: by model name (3-small 1536, 3-large 3072, else 384)"},
    {"latency-ms", OPT_INT, O(latency_ms), 1, 0, MAX_LATENCY_MS, "0", "delay before each answer"},
    {"latency-jitter-ms", OPT_INT, O(latency_jitter_ms), 1, 0, MAX_LATENCY_MS, "0",
     "uniform spread: latency-ms plus or minus this"},
    {"latency-dist", OPT_DIST, O(latency_dist), 1, 0, 0, "uniform",
     "fixed | uniform (latency-ms +- jitter) | exp (exponential with mean latency-ms)"},
    {"llm-latency-ms", OPT_INT, O(llm_latency_ms), 1, -1, MAX_LATENCY_MS, "-1",
     "latency-ms for chat and messages; -1: latency-ms"},
    {"llm-latency-jitter-ms", OPT_INT, O(llm_latency_jitter_ms), 1, -1, MAX_LATENCY_MS, "-1",
     "jitter for chat and messages; -1: latency-jitter-ms"},
    {"embed-latency-ms", OPT_INT, O(embed_latency_ms), 1, -1, MAX_LATENCY_MS, "-1",
     "latency-ms for embeddings; -1: latency-ms"},
    {"embed-latency-jitter-ms", OPT_INT, O(embed_latency_jitter_ms), 1, -1, MAX_LATENCY_MS, "-1",
     "jitter for embeddings; -1: latency-jitter-ms"},
    {"rpm", OPT_INT, O(rpm), 1, 0, INT32_MAX, "0",
     "requests per minute (token bucket, burst = rpm); 0: no limit"},
    {"rpm-window", OPT_BOOL, O(rpm_window), 1, 0, 1, "false",
     "enforce rpm as at most rpm requests in any 60 s (a sliding window) instead of a bucket"},
    {"tpm", OPT_INT, O(tpm), 1, 0, INT32_MAX, "0", "input tokens per minute (token bucket); 0: no limit"},
    {"max-concurrent", OPT_INT, O(max_concurrent), 1, 0, INT32_MAX, "0",
     "answer 429 while this many requests are in flight; 0: no limit"},
    {"fault-5xx", OPT_PROB, O(fault_5xx), 1, 0, 0, "0", "probability of a 500 error"},
    {"fault-reset", OPT_PROB, O(fault_reset), 1, 0, 0, "0",
     "probability of a connection reset instead of an answer"},
    {"fault-stall", OPT_PROB, O(fault_stall), 1, 0, 0, "0", "probability of never answering"},
    {"fault-truncate", OPT_PROB, O(fault_truncate), 1, 0, 0, "0",
     "probability of sending half the body under the full Content-Length, then closing"},
    {"fault-malformed", OPT_PROB, O(fault_malformed), 1, 0, 0, "0",
     "probability of a 200 whose body is invalid JSON"},
    {"fault-drip", OPT_PROB, O(fault_drip), 1, 0, 0, "0",
     "probability of sending the body one byte at a time"},
    {"fault-close-reused", OPT_PROB, O(fault_close_reused), 1, 0, 0, "0",
     "probability that a request on a kept-alive connection is read, counted, and its connection "
     "closed without an answer (drawn apart from the other faults)"},
    {"drip-interval-ms", OPT_INT, O(drip_interval_ms), 1, 1, 60000, "50", "pause between dripped bytes"},
    {"fail-first", OPT_INT, O(fail_first), 1, 0, INT32_MAX, "0",
     "the next N requests get 503 (counted from start, /_reset or setting it)"},
    {"oversize", OPT_INT, O(oversize), 1, 0, INT64_C(1) << 32, "0",
     "completions carry this many bytes more than max_tokens allows (a provider gone wrong); 0: none"},
    {"retry-after", OPT_INT, O(retry_after_s), 1, 0, INT32_MAX, "0",
     "fail-first's 503s carry Retry-After: this many seconds (0: none), as a provider in maintenance says"},
    {"down", OPT_BOOL, O(down), 1, 0, 1, "false",
     "reset every connection's requests: a provider that is down"},
    {"seed", OPT_INT, O(seed), 1, INT64_MIN, INT64_MAX, "1", "seed of the fault and latency draws"},
    {"log", OPT_BOOL, O(log), 1, 0, 1, "false", "print one line per request to stderr"},
};
#define NOPTIONS (sizeof options / sizeof options[0])

enum fault {
    F_5XX,
    F_RESET,
    F_STALL,
    F_TRUNCATE,
    F_MALFORMED,
    F_DRIP,
    F_FAIL_FIRST,
    F_DOWN,
    F_CLOSE_REUSED,
    F_NONE
};
static const char *const fault_names[] = {"5xx",  "reset",      "stall", "truncate",    "malformed",
                                          "drip", "fail_first", "down",  "close_reused"};

struct bucket {
    double level;
    uint64_t at_ms;
};

struct counters {
    uint64_t requests;
    json_t *by_path;
    int64_t in_flight, peak;
    uint64_t faults[F_NONE];
    uint64_t status[600];
    uint64_t tokens_in, tokens_out;
    uint64_t peak_minute; /* rpm-window: the most requests accepted in any 60 s */
};

/* rpm-window: when the requests of the last 60 s were accepted (a ring, oldest first). */
struct window {
    uint64_t *at;
    size_t cap, head, n;
};

struct fake {
    uv_loop_t loop;
    struct hs_server *srv;
    uv_signal_t sigint, sigterm;
    struct config cfg;
    int64_t fail_left;
    struct bucket rpm, tpm;
    struct window win;
    uint64_t rng_fault, rng_latency;
    uint64_t next_id;
    struct counters st;
};

/* One request from arrival to its done callback (the server's token). */
struct pending {
    struct fake *f;
    uint64_t start_ns;
    int counted; /* a provider request, not a /_ control one */
    int status;  /* 0: none sent (reset, stall) */
    enum fault fault;
    char line[160]; /* "METHOD /path", for --log */
};

/* ---- options ---- */

static const struct option *find_option(const char *name, size_t n) {
    for (size_t i = 0; i < NOPTIONS; i++) {
        const char *o = options[i].name;
        if (strlen(o) != n) continue;
        size_t k = 0;
        for (; k < n; k++) /* accept fault_5xx for fault-5xx */
            if (!(o[k] == name[k] || (o[k] == '-' && name[k] == '_'))) break;
        if (k == n) return &options[i];
    }
    return NULL;
}

/* Sets one option from text. Returns 0, or -1 with the reason in err. */
static int set_text(struct config *cfg, const struct option *o, const char *v, char *err, size_t errn) {
    void *at = (char *)cfg + o->off;
    char *end;
    switch (o->type) {
    case OPT_INT: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < o->min || x > o->max) {
            snprintf(err, errn, "%s: \"%s\" is not an integer from %lld to %lld", o->name, v,
                     (long long)o->min, (long long)o->max);
            return -1;
        }
        *(int64_t *)at = x;
        return 0;
    }
    case OPT_PROB: {
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || !(x >= 0 && x <= 1)) {
            snprintf(err, errn, "%s: \"%s\" is not a probability from 0 to 1", o->name, v);
            return -1;
        }
        *(double *)at = x;
        return 0;
    }
    case OPT_BOOL:
        if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
            *(int64_t *)at = 1;
        else if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off"))
            *(int64_t *)at = 0;
        else {
            snprintf(err, errn, "%s: \"%s\" is not true or false", o->name, v);
            return -1;
        }
        return 0;
    case OPT_DIST:
        for (int64_t i = 0; i < 3; i++) {
            if (!strcmp(v, dist_names[i])) {
                *(int64_t *)at = i;
                return 0;
            }
        }
        snprintf(err, errn, "%s: \"%s\" is not fixed, uniform or exp", o->name, v);
        return -1;
    case OPT_STR: {
        char *s = strdup(v);
        if (!s) {
            snprintf(err, errn, "out of memory");
            return -1;
        }
        free(*(char **)at);
        *(char **)at = s;
        return 0;
    }
    }
    return -1;
}

/* Sets one option from a JSON value of /_config. */
static int set_json(struct config *cfg, const struct option *o, json_t *v, char *err, size_t errn) {
    char text[64];
    if (json_is_string(v)) return set_text(cfg, o, json_string_value(v), err, errn);
    if (json_is_boolean(v) && o->type == OPT_BOOL)
        return set_text(cfg, o, json_is_true(v) ? "1" : "0", err, errn);
    if (json_is_integer(v)) {
        snprintf(text, sizeof text, "%lld", (long long)json_integer_value(v));
        return set_text(cfg, o, text, err, errn);
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (o->type == OPT_INT && d == floor(d) && fabs(d) < 9e15)
            snprintf(text, sizeof text, "%.0f", d);
        else
            snprintf(text, sizeof text, "%.17g", d);
        return set_text(cfg, o, text, err, errn);
    }
    snprintf(err, errn, "%s: a value of the wrong type", o->name);
    return -1;
}

static int check_config(const struct config *cfg, char *err, size_t errn) {
    double sum = cfg->fault_5xx + cfg->fault_reset + cfg->fault_stall + cfg->fault_truncate +
                 cfg->fault_malformed + cfg->fault_drip;
    if (sum > 1.0 + 1e-9) {
        snprintf(err, errn, "the fault probabilities add up to %g, more than 1", sum);
        return -1;
    }
    return 0;
}

static void config_free(struct config *cfg) {
    free(cfg->api_key);
    free(cfg->models);
    cfg->api_key = cfg->models = NULL;
}

static int config_copy(struct config *dst, const struct config *src) {
    *dst = *src;
    dst->api_key = strdup(src->api_key);
    dst->models = strdup(src->models);
    if (!dst->api_key || !dst->models) {
        config_free(dst);
        return -1;
    }
    return 0;
}

static json_t *config_json(const struct config *cfg) {
    json_t *j = json_object();
    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct option *o = &options[i];
        const void *at = (const char *)cfg + o->off;
        json_t *v = NULL;
        switch (o->type) {
        case OPT_INT: v = json_integer(*(const int64_t *)at); break;
        case OPT_PROB: v = json_real(*(const double *)at); break;
        case OPT_BOOL: v = json_boolean(*(const int64_t *)at); break;
        case OPT_DIST: v = json_string(dist_names[*(const int64_t *)at]); break;
        case OPT_STR: v = json_string(*(char *const *)at); break;
        }
        json_object_set_new(j, o->name, v);
    }
    return j;
}

static void usage(FILE *to) {
    fprintf(to, "usage: fake-provider [--OPTION VALUE | --OPTION=VALUE | --BOOL-OPTION]...\n"
                "A fake OpenAI / Anthropic / Ollama server on 127.0.0.1 for tests (see README.md).\n\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct option *o = &options[i];
        char name[64];
        snprintf(name, sizeof name, "--%s%s", o->name, o->type == OPT_BOOL ? "" : " V");
        fprintf(to, "  %-28s %s (default %s)%s\n", name, o->help, *o->def ? o->def : "\"\"",
                o->runtime ? "" : " [start only]");
    }
}

/* ---- randomness, rate limits, latency ---- */

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) / 9007199254740992.0; }

static void reseed(struct fake *f) {
    f->rng_fault = (uint64_t)f->cfg.seed ^ 0x6661756c74ull;
    f->rng_latency = (uint64_t)f->cfg.seed ^ 0x6c6174656e6379ull;
}

static uint64_t now_ms(struct fake *f) { return uv_hrtime() / 1000000u; }

/* Refills a bucket that holds `per_minute` at most. */
static void refill(struct fake *f, struct bucket *b, int64_t per_minute) {
    uint64_t now = now_ms(f);
    b->level += (double)(now - b->at_ms) * (double)per_minute / 60000.0;
    if (b->level > (double)per_minute) b->level = (double)per_minute;
    b->at_ms = now;
}

static void fill(struct fake *f, struct bucket *b, int64_t per_minute) {
    b->level = (double)per_minute;
    b->at_ms = now_ms(f);
}

/* Milliseconds until the bucket holds `need`. */
static uint64_t wait_ms(const struct bucket *b, double need, int64_t per_minute) {
    double missing = need - b->level;
    return missing <= 0 ? 0 : (uint64_t)ceil(missing * 60000.0 / (double)per_minute);
}

/* rpm-window: forgets what left the 60 s window; 0 when a request may
 * go now, else the milliseconds until one may. */
static uint64_t window_wait(struct fake *f, int64_t limit) {
    struct window *w = &f->win;
    uint64_t now = now_ms(f);
    while (w->n && w->at[w->head] + 60000 <= now) {
        w->head = (w->head + 1) % w->cap;
        w->n--;
    }
    if ((int64_t)w->n < limit) return 0;
    return w->at[w->head] + 60000 - now;
}

/* rpm-window: records an accepted request; -1 out of memory. */
static int window_add(struct fake *f) {
    struct window *w = &f->win;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        uint64_t *at = malloc(cap * sizeof *at);
        if (!at) return -1;
        for (size_t i = 0; i < w->n; i++) at[i] = w->at[(w->head + i) % w->cap];
        free(w->at);
        w->at = at;
        w->cap = cap;
        w->head = 0;
    }
    w->at[(w->head + w->n) % w->cap] = now_ms(f);
    w->n++;
    if (w->n > f->st.peak_minute) f->st.peak_minute = w->n;
    return 0;
}

static uint64_t pick_latency(struct fake *f, enum fp_kind kind) {
    const struct config *c = &f->cfg;
    int64_t base = c->latency_ms, jitter = c->latency_jitter_ms;
    if (kind == FP_LLM) {
        if (c->llm_latency_ms >= 0) base = c->llm_latency_ms;
        if (c->llm_latency_jitter_ms >= 0) jitter = c->llm_latency_jitter_ms;
    } else if (kind == FP_EMBED) {
        if (c->embed_latency_ms >= 0) base = c->embed_latency_ms;
        if (c->embed_latency_jitter_ms >= 0) jitter = c->embed_latency_jitter_ms;
    }
    double ms = (double)base;
    if (c->latency_dist == DIST_UNIFORM && jitter > 0)
        ms += (2 * rng_unit(&f->rng_latency) - 1) * (double)jitter;
    else if (c->latency_dist == DIST_EXP && base > 0)
        ms = -(double)base * log(1 - rng_unit(&f->rng_latency));
    if (ms < 0) ms = 0;
    if (ms > MAX_LATENCY_MS) ms = MAX_LATENCY_MS;
    return (uint64_t)llround(ms);
}

static enum fault roll_fault(struct fake *f) {
    const struct config *c = &f->cfg;
    const double p[] = {c->fault_5xx,      c->fault_reset,     c->fault_stall,
                        c->fault_truncate, c->fault_malformed, c->fault_drip};
    double any = 0;
    for (int i = 0; i < 6; i++) any += p[i];
    if (any <= 0) return F_NONE;
    double u = rng_unit(&f->rng_fault), acc = 0;
    for (int i = 0; i < 6; i++) {
        acc += p[i];
        if (u < acc) return (enum fault)i;
    }
    return F_NONE;
}

/* ---- replies ---- */

static void add_header(char **h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_header(char **h, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line - 2) return;
    size_t old = *h ? strlen(*h) : 0;
    char *p = realloc(*h, old + (size_t)n + 3);
    if (!p) return;
    memcpy(p + old, line, (size_t)n);
    memcpy(p + old + n, "\r\n", 3);
    *h = p;
}

static void reply_json(struct hs_reply *r, int status, json_t *j) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    r->status = s ? status : 500;
    r->body = s ? s : strdup("{\"error\":\"out of memory\"}");
    r->body_len = r->body ? strlen(r->body) : 0;
}

static void count_status(struct fake *f, struct pending *pd, int status) {
    pd->status = status;
    if (pd->counted && status >= 100 && status < 600) f->st.status[status]++;
}

static void count_fault(struct fake *f, struct pending *pd, enum fault fault) {
    pd->fault = fault;
    f->st.faults[fault]++;
}

/* ---- control endpoints: /_stats, /_reset, /_config ---- */

static json_t *stats_json(struct fake *f) {
    json_t *faults = json_object(), *status = json_object();
    for (int i = 0; i < F_NONE; i++)
        json_object_set_new(faults, fault_names[i], json_integer((json_int_t)f->st.faults[i]));
    for (int s = 100; s < 600; s++) {
        if (!f->st.status[s]) continue;
        char key[8];
        snprintf(key, sizeof key, "%d", s);
        json_object_set_new(status, key, json_integer((json_int_t)f->st.status[s]));
    }
    struct hs_stats cs;
    hs_server_stats(f->srv, &cs);
    return json_pack("{s:I, s:O, s:I, s:I, s:o, s:o, s:{s:I, s:I}, s:{s:I, s:I, s:I}, s:I}", "requests",
                     (json_int_t)f->st.requests, "by_path", f->st.by_path, "in_flight",
                     (json_int_t)f->st.in_flight, "peak_concurrent", (json_int_t)f->st.peak, "faults", faults,
                     "status", status, "tokens", "input", (json_int_t)f->st.tokens_in, "output",
                     (json_int_t)f->st.tokens_out, "connections", "open", (json_int_t)cs.open, "peak",
                     (json_int_t)cs.peak, "total", (json_int_t)cs.total, "peak_minute",
                     (json_int_t)f->st.peak_minute);
}

static void reset_state(struct fake *f) {
    json_decref(f->st.by_path);
    int64_t in_flight = f->st.in_flight;
    memset(&f->st, 0, sizeof f->st);
    f->st.by_path = json_object();
    f->st.in_flight = in_flight;
    f->st.peak = in_flight;
    f->fail_left = f->cfg.fail_first;
    fill(f, &f->rpm, f->cfg.rpm);
    fill(f, &f->tpm, f->cfg.tpm);
    f->win.n = 0;
    reseed(f);
}

/* Applies a JSON object of options all or nothing. */
static int apply_config(struct fake *f, json_t *body, char *err, size_t errn) {
    if (!json_is_object(body)) {
        snprintf(err, errn, "the body must be a JSON object of options");
        return -1;
    }
    struct config next;
    if (config_copy(&next, &f->cfg) < 0) {
        snprintf(err, errn, "out of memory");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        const struct option *o = find_option(key, strlen(key));
        if (!o)
            snprintf(err, errn, "unknown option \"%s\"", key);
        else if (!o->runtime)
            snprintf(err, errn, "%s can only be set at start", o->name);
        if (!o || !o->runtime || set_json(&next, o, v, err, errn) < 0) {
            config_free(&next);
            return -1;
        }
    }
    if (check_config(&next, err, errn) < 0) {
        config_free(&next);
        return -1;
    }
    config_free(&f->cfg);
    f->cfg = next;
    if (json_object_get(body, "rpm")) fill(f, &f->rpm, f->cfg.rpm);
    if (json_object_get(body, "rpm") || json_object_get(body, "rpm-window") ||
        json_object_get(body, "rpm_window"))
        f->win.n = 0;
    if (json_object_get(body, "tpm")) fill(f, &f->tpm, f->cfg.tpm);
    if (json_object_get(body, "fail-first") || json_object_get(body, "fail_first"))
        f->fail_left = f->cfg.fail_first;
    if (json_object_get(body, "seed")) reseed(f);
    return 0;
}

static void control(struct fake *f, const struct hs_request *req, struct hs_reply *r, struct pending *pd) {
    int get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST");
    if (!strcmp(req->path, "/_stats") && get) {
        reply_json(r, 200, stats_json(f));
    } else if (!strcmp(req->path, "/_reset") && post) {
        reset_state(f);
        reply_json(r, 200, stats_json(f));
    } else if (!strcmp(req->path, "/_config") && get) {
        reply_json(r, 200, config_json(&f->cfg));
    } else if (!strcmp(req->path, "/_config") && post) {
        json_error_t jerr;
        json_t *body = json_loadb(req->body, req->body_len, 0, &jerr);
        char err[256];
        if (!body) {
            snprintf(err, sizeof err, "invalid JSON: %s", jerr.text);
            reply_json(r, 400, json_pack("{s:s}", "error", err));
        } else if (apply_config(f, body, err, sizeof err) < 0) {
            reply_json(r, 400, json_pack("{s:s}", "error", err));
        } else {
            reply_json(r, 200, config_json(&f->cfg));
        }
        json_decref(body);
    } else {
        reply_json(r, 404,
                   json_pack("{s:s}", "error",
                             "no such control endpoint: GET /_stats, POST /_reset, "
                             "GET or POST /_config"));
    }
    pd->status = r->status;
}

/* ---- provider requests ---- */

static int authorized(struct fake *f, enum fp_api api, const struct hs_request *req) {
    const char *key = f->cfg.api_key;
    if (!*key) return 1;
    size_t n, kl = strlen(key);
    if (api == FP_ANTHROPIC) {
        const char *v = hs_header(req, "x-api-key", &n);
        return v && n == kl && !memcmp(v, key, kl);
    }
    const char *v = hs_header(req, "authorization", &n);
    return v && n == kl + 7 && !strncasecmp(v, "Bearer ", 7) && !memcmp(v + 7, key, kl);
}

static void count_path(struct fake *f, const char *path) {
    json_t *n = json_object_get(f->st.by_path, path);
    if (!n && json_object_size(f->st.by_path) >= MAX_PATHS)
        path = "(other)", n = json_object_get(f->st.by_path, path);
    json_object_set_new(f->st.by_path, path, json_integer(n ? json_integer_value(n) + 1 : 1));
}

static void rate_headers(struct fake *f, char **h) {
    if (f->cfg.rpm > 0) {
        add_header(h, "x-ratelimit-limit-requests: %lld", (long long)f->cfg.rpm);
        add_header(h, "x-ratelimit-remaining-requests: %lld", (long long)floor(f->rpm.level));
        add_header(h, "x-ratelimit-reset-requests: %llums",
                   (unsigned long long)wait_ms(&f->rpm, (double)f->cfg.rpm, f->cfg.rpm));
    }
    if (f->cfg.tpm > 0) {
        add_header(h, "x-ratelimit-limit-tokens: %lld", (long long)f->cfg.tpm);
        add_header(h, "x-ratelimit-remaining-tokens: %lld", (long long)floor(f->tpm.level));
        add_header(h, "x-ratelimit-reset-tokens: %llums",
                   (unsigned long long)wait_ms(&f->tpm, (double)f->cfg.tpm, f->cfg.tpm));
    }
}

/* Takes one request from the rpm bucket (or window); 0 when it is empty. */
static int take_request(struct fake *f) {
    if (f->cfg.rpm <= 0) return 1;
    if (f->cfg.rpm_window) return window_wait(f, f->cfg.rpm) == 0 && window_add(f) == 0;
    refill(f, &f->rpm, f->cfg.rpm);
    if (f->rpm.level < 1) return 0;
    f->rpm.level -= 1;
    return 1;
}

static void retry_after(char **h, uint64_t ms) {
    uint64_t s = (ms + 999) / 1000;
    add_header(h, "Retry-After: %llu", (unsigned long long)(s ? s : 1));
    add_header(h, "retry-after-ms: %llu", (unsigned long long)ms);
}

/* The per-request override of a test: x-fake-fault: NAME or a status. */
static int header_fault(const struct hs_request *req, enum fault *fault, int *status) {
    size_t n;
    const char *v = hs_header(req, "x-fake-fault", &n);
    if (!v) return 0;
    *status = 0;
    *fault = F_NONE;
    if (n == 4 && !strncasecmp(v, "none", 4)) return 1;
    for (int i = F_5XX; i <= F_DRIP; i++) {
        if (strlen(fault_names[i]) == n && !strncasecmp(v, fault_names[i], n)) {
            *fault = (enum fault)i;
            return 1;
        }
    }
    if (n == 3 && v[0] >= '4' && v[0] <= '5' && v[1] >= '0' && v[1] <= '9' && v[2] >= '0' && v[2] <= '9') {
        *status = (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0');
        *fault = F_5XX;
        return 1;
    }
    return -1;
}

static void provider(struct fake *f, const struct hs_request *req, struct hs_reply *r, struct pending *pd) {
    const struct config *c = &f->cfg;
    pd->counted = 1;
    f->st.requests++;
    count_path(f, req->path);
    if (++f->st.in_flight > f->st.peak) f->st.peak = f->st.in_flight;
    uint64_t id = ++f->next_id;

    if (c->down) {
        count_fault(f, pd, F_DOWN);
        r->mode = HS_RESET;
        return;
    }
    /* drawn apart from the other faults, and only for a request that
     * reuses a connection: the server saw it, the client sees a kept-alive
     * connection closed under it (and libcurl resends it) */
    if (c->fault_close_reused > 0 && req->seq > 0 && rng_unit(&f->rng_fault) < c->fault_close_reused) {
        count_fault(f, pd, F_CLOSE_REUSED);
        r->mode = HS_CLOSE;
        return;
    }
    int wrong_method;
    const struct fp_route *route = fp_route_find(req->method, req->path, &wrong_method);
    enum fp_api api = fp_api_of(route, req);
    struct fp_answer a = {0};
    char *h = NULL;
    add_header(&h, "x-request-id: req_fake%llu", (unsigned long long)id);
    int ran = 0;
    if (!route) {
        fp_error(&a, api, wrong_method ? 405 : 404, NULL, wrong_method ? "method_not_allowed" : "unknown_url",
                 "Invalid URL (%s %s)", req->method, req->path);
    } else if (!authorized(f, api, req)) {
        int anth = api == FP_ANTHROPIC;
        fp_error(&a, api, 401, NULL, "invalid_api_key", "%s",
                 anth ? "invalid x-api-key"
                      : "Incorrect API key provided. You can find your API key at "
                        "https://platform.openai.com/account/api-keys.");
    } else if (c->max_concurrent > 0 && f->st.in_flight - 1 >= c->max_concurrent) {
        fp_error(&a, api, 429, NULL, "rate_limit_exceeded", "Too many concurrent requests (limit %lld)",
                 (long long)c->max_concurrent);
        retry_after(&h, 1000);
    } else if (!take_request(f)) {
        uint64_t ms = c->rpm_window ? window_wait(f, c->rpm) : wait_ms(&f->rpm, 1, c->rpm);
        fp_error(&a, api, 429, api == FP_OPENAI ? "requests" : NULL, "rate_limit_exceeded",
                 "Rate limit reached for requests: limit %lld per minute. Please try again in %llums.",
                 (long long)c->rpm, (unsigned long long)ms);
        retry_after(&h, ms);
    } else if (f->fail_left > 0) {
        f->fail_left--;
        count_fault(f, pd, F_FAIL_FIRST);
        fp_error(&a, api, 503, NULL, "service_unavailable",
                 "The server is temporarily unavailable (fail-first)");
        if (c->retry_after_s > 0) add_header(&h, "Retry-After: %lld", (long long)c->retry_after_s);
    } else {
        struct fp_call call = {
            .req = req, .api = api, .models = c->models, .embed_dim = (int)c->embed_dim, .id = id};
        fp_route_call(route, &call, &a);
        ran = 1;
        if (a.status == 200 && c->tpm > 0) {
            refill(f, &f->tpm, c->tpm);
            if (f->tpm.level < (double)a.tokens_in) {
                uint64_t ms = wait_ms(&f->tpm, (double)a.tokens_in, c->tpm);
                fp_error(
                    &a, api, 429, api == FP_OPENAI ? "tokens" : NULL, "rate_limit_exceeded",
                    "Rate limit reached for tokens: limit %lld per minute, requested %lld. Please try again "
                    "in %llums.",
                    (long long)c->tpm, (long long)a.tokens_in, (unsigned long long)ms);
                retry_after(&h, ms);
                ran = 0;
            } else {
                f->tpm.level -= (double)a.tokens_in;
            }
        }
    }
    rate_headers(f, &h);

    /* oversize: the completion's text padded past anything max_tokens allows */
    if (ran && a.status == 200 && c->oversize > 0 && a.body) {
        const char *k = strstr(a.body, "\"content\":\"");
        if (!k) k = strstr(a.body, "\"text\":\"");
        char *nb = k ? malloc(a.len + (size_t)c->oversize + 1) : NULL;
        if (nb) {
            size_t pre = (size_t)(strchr(k, ':') + 2 - a.body);
            memcpy(nb, a.body, pre);
            memset(nb + pre, 'x', (size_t)c->oversize);
            memcpy(nb + pre + (size_t)c->oversize, a.body + pre, a.len - pre + 1);
            free(a.body);
            a.body = nb;
            a.len += (size_t)c->oversize;
        }
    }

    if (ran) {
        /* The provider worked on it: faults and latency apply. */
        enum fault fault = F_NONE;
        int status = 0;
        int over = header_fault(req, &fault, &status);
        if (over < 0) {
            fp_error(&a, api, 400, NULL, NULL,
                     "x-fake-fault: expected none, 5xx, reset, stall, truncate, "
                     "malformed, drip or a status code");
        } else if (over == 0 && a.status == 200) {
            fault = roll_fault(f);
        }
        size_t vl;
        const char *lat = hs_header(req, "x-fake-latency-ms", &vl);
        r->delay_ms = lat ? strtoull(lat, NULL, 10) : pick_latency(f, route->kind);
        if (r->delay_ms > MAX_LATENCY_MS) r->delay_ms = MAX_LATENCY_MS;
        if (fault != F_NONE) count_fault(f, pd, fault);
        switch (fault) {
        case F_5XX:
            fp_error(&a, api, status ? status : 500, NULL, NULL,
                     "The server had an error while processing your request (injected fault)");
            break;
        case F_RESET: r->mode = HS_RESET; break;
        case F_STALL: r->mode = HS_STALL; break;
        case F_TRUNCATE: r->mode = HS_TRUNCATE; break;
        case F_MALFORMED: fp_malform(&a); break;
        case F_DRIP:
            r->mode = HS_DRIP;
            r->drip_ms = (uint64_t)c->drip_interval_ms;
            break;
        default: break;
        }
        if (a.status == 200 && r->mode != HS_RESET && r->mode != HS_STALL) {
            f->st.tokens_in += (uint64_t)a.tokens_in;
            f->st.tokens_out += (uint64_t)a.tokens_out;
        }
    }
    r->status = a.status;
    r->body = a.body;
    r->body_len = a.len;
    r->content_type = a.content_type;
    r->headers = h;
    if (r->mode != HS_RESET && r->mode != HS_STALL && r->mode != HS_CLOSE) count_status(f, pd, a.status);
}

static void on_request(void *ud, const struct hs_request *req, struct hs_reply *r) {
    struct fake *f = ud;
    struct pending *pd = calloc(1, sizeof *pd);
    if (!pd) {
        r->mode = HS_RESET;
        return;
    }
    pd->f = f;
    pd->start_ns = uv_hrtime();
    pd->fault = F_NONE;
    snprintf(pd->line, sizeof pd->line, "%s %.140s", req->method, req->path);
    r->token = pd;
    if (req->path[0] == '/' && req->path[1] == '_')
        control(f, req, r, pd);
    else
        provider(f, req, r, pd);
}

static void on_done(void *ud, void *token) {
    struct fake *f = ud;
    struct pending *pd = token;
    if (pd->counted) f->st.in_flight--;
    if (f->cfg.log) {
        char status[8] = "-";
        if (pd->status) snprintf(status, sizeof status, "%d", pd->status);
        fprintf(stderr, "fake-provider: %s %s %.1fms%s%s\n", pd->line, status,
                (double)(uv_hrtime() - pd->start_ns) / 1e6, pd->fault != F_NONE ? " fault=" : "",
                pd->fault != F_NONE ? fault_names[pd->fault] : "");
    }
    free(pd);
}

/* ---- start and stop ---- */

static void on_signal(uv_signal_t *s, int signum) {
    struct fake *f = s->data;
    if (f->cfg.log) fprintf(stderr, "fake-provider: signal %d, stopping\n", signum);
    hs_server_close(f->srv);
    uv_close((uv_handle_t *)&f->sigint, NULL);
    uv_close((uv_handle_t *)&f->sigterm, NULL);
}

/* Ten thousand connections need ten thousand descriptors: take all we may. */
static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int parse_args(struct config *cfg, int argc, char **argv) {
    char err[256];
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (set_text(cfg, &options[i], options[i].def, err, sizeof err) < 0) {
            fprintf(stderr, "fake-provider: bad default: %s\n", err);
            return -1;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "fake-provider: unexpected argument \"%s\"\n", a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        const struct option *o = find_option(name, eq ? (size_t)(eq - name) : strlen(name));
        if (!o) {
            fprintf(stderr, "fake-provider: unknown option \"%s\" (see --help)\n", a);
            return -1;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value && o->type == OPT_BOOL) value = "true";
        if (!value && i + 1 < argc) value = argv[++i];
        if (!value) {
            fprintf(stderr, "fake-provider: %s needs a value\n", a);
            return -1;
        }
        if (set_text(cfg, o, value, err, sizeof err) < 0) {
            fprintf(stderr, "fake-provider: %s\n", err);
            return -1;
        }
    }
    if (check_config(cfg, err, sizeof err) < 0) {
        fprintf(stderr, "fake-provider: %s\n", err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    static struct fake f;
    if (parse_args(&f.cfg, argc, argv) < 0) {
        config_free(&f.cfg);
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    uv_loop_init(&f.loop);
    f.st.by_path = json_object();
    reset_state(&f);
    int rc = hs_server_start(&f.srv, &f.loop, "127.0.0.1", (int)f.cfg.port, (int)f.cfg.backlog, on_request,
                             on_done, &f);
    if (rc < 0) {
        fprintf(stderr, "fake-provider: cannot listen on 127.0.0.1:%lld: %s\n", (long long)f.cfg.port,
                uv_strerror(rc));
        uv_run(&f.loop, UV_RUN_DEFAULT);
        uv_loop_close(&f.loop);
        json_decref(f.st.by_path);
        config_free(&f.cfg);
        return 1;
    }
    uv_signal_init(&f.loop, &f.sigint);
    uv_signal_init(&f.loop, &f.sigterm);
    f.sigint.data = f.sigterm.data = &f;
    uv_signal_start(&f.sigint, on_signal, SIGINT);
    uv_signal_start(&f.sigterm, on_signal, SIGTERM);
    printf("listening on 127.0.0.1:%d\n", hs_server_port(f.srv));
    fflush(stdout);

    uv_run(&f.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&f.loop);
    json_decref(f.st.by_path);
    free(f.win.at);
    config_free(&f.cfg);
    return rc == 0 ? 0 : 1;
}
