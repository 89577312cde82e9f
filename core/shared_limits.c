/* shared_limits.c - shared rate limits: a provider's rpm and tpm drawn from a token
 * bucket the route's sink keeps (see shared_limits.h for the arithmetic). */
#include "shared_limits.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops.h"
#include "runtime.h"

#define HOLD_MS 2000u        /* granted tokens unspent this long are dropped */
#define MARGIN_S 1.0         /* delivery and clocks, in the refill rate's denominator */
#define BURST_S 2.0          /* the bucket holds this many seconds of the limit */
#define GRANT_S 1.0          /* a grant asks for this many seconds of the account's rate */
#define MIN_ASK_MS 20u       /* an empty bucket is asked again no sooner */
#define BACKOFF_MIN_MS 1000u /* the store unreachable: asked again after this, doubling */
#define BACKOFF_MAX_MS 15000u
#define ASK_TIMEOUT_MS 10000u /* a grant unanswered this long: paced alone meanwhile */
#define NAME_MAX_LEN 120      /* limit_name */
#define NAME_BUF 176          /* a bucket's name, derived or given */

struct sl_shared {
    sl_instance *inst, *sink;
    char what[4];           /* "rpm" or "tpm" */
    char key[NAME_BUF + 8]; /* NAME/rpm: the bucket's row */
    double limit;           /* per minute */
    double rate;            /* refill, per second */
    double burst;           /* what the bucket holds at most */
    double grant;           /* what a grant asks for at least */
    double have;            /* granted and not spent; negative: a debt (tpm) */
    uint64_t expires, next_ask, backoff_ms, asked_at;
    int asking, in_wait, orphan, announced;
    int local;    /* the store cannot be reached: paced by `share` */
    double share; /* per minute while local */
    sl_window *sent;
    char *unusable; /* the throttle's: set when the bucket refuses for good */
    size_t unusable_len;
    double want, granted, total;
    uint64_t rng;
    sl_call call;
    void (*wake)(void *, void *);
    void *wa, *wb;
};

/* --- the bucket's name --- */

static int name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("._:/-", c);
}

/* A plugin option's string value by name, or "". */
static const char *option_text(const sl_instance *inst, const char *name) {
    for (const sl_option *o = inst->desc->options; o && o->name; o++) {
        if (strcmp(o->name, name) != 0) continue;
        if (o->type != SL_OPT_STRING && o->type != SL_OPT_PATH && o->type != SL_OPT_ENUM) return "";
        const char *v;
        memcpy(&v, (const char *)inst->config + o->offset, sizeof v);
        return v ? v : "";
    }
    return "";
}

/* The url without credentials (user:password@), query or fragment. */
static void clean_url(const char *url, char *out, size_t n) {
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    const char *slash = host + strcspn(host, "/?#");
    const char *at = memchr(host, '@', (size_t)(slash - host));
    size_t head = (size_t)(host - url);
    const char *rest = at ? at + 1 : host;
    size_t tail = strcspn(rest, "?#");
    snprintf(out, n, "%.*s%.*s", (int)(head < 12 ? head : 12), url, (int)(tail < 68 ? tail : 68), rest);
}

/* The bucket's name: limit_name, else "plugin|url|model|key:HASH" where HASH
 * is a 64-bit hash of the stage's secret options (its API key): it tells
 * accounts apart without revealing the key. */
static void limit_name(const sl_instance *inst, char *out, size_t n) {
    const char *given = inst->stage.limit_name;
    if (given && *given) {
        snprintf(out, n, "%s", given);
        return;
    }
    const char *url = option_text(inst, "base_url");
    if (!*url) url = option_text(inst, "url");
    char u[96];
    clean_url(url, u, sizeof u);
    const char *model = option_text(inst, "model");
    uint64_t h = 0x736c756963650015ull;
    int keyed = 0;
    for (const sl_option *o = inst->desc->options; o && o->name; o++) {
        if (!(o->flags & SL_OPT_SECRET)) continue;
        const char *v = option_text(inst, o->name);
        if (!*v) continue;
        h = sl_hash64(v, strlen(v), h);
        keyed = 1;
    }
    char key[32];
    if (keyed)
        snprintf(key, sizeof key, "key:%016llx", (unsigned long long)h);
    else
        snprintf(key, sizeof key, "nokey");
    /* at most 30 + 80 + 40 + 20 and three bars: the sink's 200 bytes hold it and "/rpm" */
    snprintf(out, n, "%.30s|%.80s|%.40s|%.20s", inst->desc->name, u, model, key);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) *p = '_';
}

/* --- validation --- */

/* Whether route r calls inst (directly, or as a fallback of its llm or embedder). */
static int route_uses(const sl_route *r, const sl_instance *inst) {
    const sl_instance *stages[2] = {r->llm, r->embedder};
    for (int i = 0; i < 2; i++) {
        if (!stages[i]) continue;
        if (stages[i] == inst) return 1;
        for (size_t k = 0; k < stages[i]->nfallbacks; k++)
            if (stages[i]->fallbacks[k] == inst) return 1;
    }
    return 0;
}

sl_instance *sl_shared_sink_for(const sl_runtime *rt, const sl_instance *inst) {
    for (size_t i = 0; i < rt->nroutes; i++)
        if (route_uses(&rt->routes[i], inst)) return rt->routes[i].sink;
    return NULL;
}

int sl_shared_limits_check(sl_runtime *rt) {
    for (size_t i = 0; i < rt->ninst; i++) {
        const sl_instance *inst = rt->inst[i];
        const char *given = inst->stage.limit_name ? inst->stage.limit_name : "";
        if (*given && !inst->stage.shared_limits)
            return sl_ctx_error(rt->ctx, SL_EFATAL,
                                "[%s] limit_name: names a shared bucket, but shared_limits is off; set "
                                "shared_limits = true, or remove limit_name",
                                inst->name);
        if (!inst->stage.shared_limits) continue;
        if (inst->desc->bottleneck != SL_IO ||
            (inst->desc->role != SL_ROLE_EMBEDDER && inst->desc->role != SL_ROLE_LLM))
            return sl_ctx_error(
                rt->ctx, SL_EFATAL,
                "[%s] shared_limits: only providers (embedders and llm stages that run on the "
                "loop) have an account's rate limits to share; plugin %s is not one",
                inst->name, inst->desc->name);
        if (inst->stage.rpm <= 0 && inst->stage.tpm <= 0)
            return sl_ctx_error(rt->ctx, SL_EFATAL,
                                "[%s] shared_limits: set rpm or tpm (the account's limits per minute); "
                                "without them there is nothing to share",
                                inst->name);
        size_t len = strlen(given);
        if (len > NAME_MAX_LEN)
            return sl_ctx_error(rt->ctx, SL_EFATAL, "[%s] limit_name: %zu characters; at most %d", inst->name,
                                len, NAME_MAX_LEN);
        for (size_t k = 0; k < len; k++)
            if (!name_char(given[k]))
                return sl_ctx_error(rt->ctx, SL_EFATAL,
                                    "[%s] limit_name: byte %zu (0x%02x) is not allowed; use letters, "
                                    "digits and . : _ / -",
                                    inst->name, k + 1, (unsigned)(unsigned char)given[k]);
        const sl_route *first = NULL;
        for (size_t k = 0; k < rt->nroutes; k++) {
            const sl_route *r = &rt->routes[k];
            if (!route_uses(r, inst)) continue;
            if (!r->sink->desc->limit_grant)
                return sl_ctx_error(rt->ctx, SL_EFATAL,
                                    "[%s] shared_limits: the shared bucket is kept in the route's store, and "
                                    "[%s] (plugin %s, used by [route.%s]) cannot keep one (it has no "
                                    "limit_grant); store in sink-postgres, or remove shared_limits",
                                    inst->name, r->sink->name, r->sink->desc->name, r->name);
            if (first && first->sink != r->sink)
                return sl_ctx_error(rt->ctx, SL_EFATAL,
                                    "[%s] shared_limits: [route.%s] stores in [%s] and [route.%s] in [%s]; "
                                    "a shared bucket is kept in one store, so every route using the stage "
                                    "must store in the same one",
                                    inst->name, first->name, first->sink->name, r->name, r->sink->name);
            if (!first) first = r;
        }
    }
    return 0;
}

/* --- grants --- */

static double jitter(sl_shared *s) {
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return 0.75 + (double)(s->rng >> 11) / (double)(1ull << 53) * 0.5;
}

sl_shared *sl_shared_new(sl_instance *inst, sl_instance *sink, const char *what, double per_minute,
                         sl_throttle *owner, void (*wake)(void *a, void *b), void *a, void *b) {
    sl_shared *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->unusable = owner->unusable;
    s->unusable_len = sizeof owner->unusable;
    s->inst = inst;
    s->sink = sink;
    snprintf(s->what, sizeof s->what, "%s", what);
    char name[NAME_BUF];
    limit_name(inst, name, sizeof name);
    snprintf(s->key, sizeof s->key, "%s/%s", name, what);
    s->limit = per_minute;
    s->burst = floor(per_minute * BURST_S / 60.0);
    if (s->burst < 1) s->burst = 1;
    double spend = per_minute - s->burst;
    if (spend < per_minute / 2) spend = per_minute / 2; /* a tiny limit: see README */
    s->rate = spend / (60.0 + HOLD_MS / 1000.0 + MARGIN_S);
    s->grant = ceil(s->rate * GRANT_S);
    if (s->grant > s->burst) s->grant = s->burst;
    if (s->grant < 1) s->grant = 1;
    s->wake = wake;
    s->wa = a;
    s->wb = b;
    s->rng = sl_hash64(s->key, strlen(s->key), (uint64_t)getpid() ^ sl_now_ns()) | 1u;
    return s;
}

static int call_grant(sl_call *call, void *arg) {
    sl_shared *s = arg;
    return call->inst->desc->limit_grant(call, s->key, s->rate, s->burst, s->want, &s->granted);
}

/* What this process sent in the last minute, as a share to pace by alone. */
static double local_share(sl_shared *s, uint64_t now) {
    if (!s->sent) return 1;
    sl_window_add(s->sent, now, 0); /* moves the window to now */
    return s->sent->sum >= 1 ? s->sent->sum : 1;
}

/* The bucket cannot be reached: paced alone at the last minute's share. */
static void go_local(sl_shared *s, uint64_t now, const char *why) {
    if (s->local) return;
    s->local = 1;
    s->have = 0;
    s->share = local_share(s, now);
    sl_ctx_log(s->inst->ctx, SL_LOG_WARN, s->inst->name,
               "%s: the shared bucket in [%s] cannot be reached (%s); pacing alone at %.0f per minute, what "
               "this process sent in the last minute, until it answers",
               s->what, s->sink->name, why, s->share);
}

static void answered(sl_shared *s, int rc) {
    s->asking = 0;
    if (s->orphan) return;
    uint64_t now = sl_now_ns() / 1000000u;
    const char *name = s->inst->name;
    if (rc == 0) {
        double g = s->granted;
        if (!(g >= 0)) g = 0; /* NaN too */
        if (g > s->want) g = s->want;
        if (s->local) {
            s->local = 0;
            sl_ctx_log(s->inst->ctx, SL_LOG_INFO, name,
                       "%s: [%s] answers the shared bucket again; back from the local share", s->what,
                       s->sink->name);
        }
        s->backoff_ms = 0;
        if (g > 0) {
            s->have += g;
            s->expires = now + HOLD_MS;
            s->total += g;
        }
        if (!s->announced) {
            s->announced = 1;
            sl_ctx_log(s->inst->ctx, SL_LOG_INFO, name,
                       "%s = %.0f shared through [%s]: bucket '%s', %.3g per s, burst %.0f, grants of %.0f",
                       s->what, s->limit, s->sink->name, s->key, s->rate, s->burst, s->grant);
        }
        double missing = s->want - g;
        if (g < 1 && missing > 0) { /* empty: ask when the refill covers what is missing */
            double ms = missing / s->rate * 1000.0 * jitter(s);
            if (ms < MIN_ASK_MS) ms = MIN_ASK_MS;
            if (ms > 60000) ms = 60000;
            s->next_ask = now + (uint64_t)ms;
        } else {
            s->next_ask = 0;
        }
        return;
    }
    if (rc != SL_ERETRY && s->unusable) {
        /* not the database away but the bucket refused (a table of another
         * shape, no right to make it): the provider is passed by, its
         * documents fail with this reason, rather than pacing blind */
        snprintf(s->unusable, s->unusable_len, "%s: the shared bucket in [%s] refused a grant: %s", s->what,
                 s->sink->name, s->call.msg[0] ? s->call.msg : sl_strerror(rc));
        sl_ctx_log(s->inst->ctx, SL_LOG_ERROR, name, "%s", s->unusable);
        return;
    }
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (s->backoff_ms > BACKOFF_MAX_MS) s->backoff_ms = BACKOFF_MAX_MS;
    s->next_ask = now + (uint64_t)((double)s->backoff_ms * jitter(s));
    go_local(s, now, s->call.msg[0] ? s->call.msg : sl_strerror(rc));
}

static void grant_done(sl_call *call, int rc) {
    sl_shared *s = call->udata;
    answered(s, rc);
    if (!s->orphan && !s->in_wait && s->wake) s->wake(s->wa, s->wb);
}

static void ask(sl_shared *s, double need) {
    double want = need - s->have;
    if (want < s->grant) want = s->grant;
    if (want > s->burst) want = s->burst;
    s->want = ceil(want);
    s->granted = 0;
    s->asking = 1;
    s->asked_at = sl_now_ns() / 1000000u;
    s->in_wait = 1;
    int rc = sl_invoke_start(s->sink, NULL, call_grant, s, &s->call, grant_done, s);
    s->in_wait = 0;
    if (rc != SL_PENDING) answered(s, rc); /* answered at once: grant_done was not called */
}

/* The local window `sent`, as if its limit were `share`. */
static uint64_t share_wait(sl_window *sent, double share, uint64_t now, double need) {
    double keep = sent->limit;
    sent->limit = share;
    uint64_t w = sl_window_wait_ms(sent, now, need);
    sent->limit = keep;
    return w;
}

uint64_t sl_shared_wait_ms(sl_shared *s, uint64_t now, double need, sl_window *sent) {
    s->sent = sent;
    if (s->have > 0 && now >= s->expires) s->have = 0; /* held too long: dropped, never given back */
    /* a call needing more than the bucket holds goes with a full bucket; the rest is a debt */
    double pay = need > s->burst ? s->burst : need;
    if (!s->local && s->have >= pay) return 0;
    if (!s->asking && now >= s->next_ask) ask(s, pay);
    if (s->local) return share_wait(sent, s->share, now, need);
    if (s->have >= pay) return 0;
    if (s->asking) {
        /* the answer wakes the stages; a database that stopped answering
         * (not refusing: a stalled server) is given ASK_TIMEOUT_MS */
        uint64_t age = now > s->asked_at ? now - s->asked_at : 0;
        if (age < ASK_TIMEOUT_MS) return ASK_TIMEOUT_MS - age;
        go_local(s, now, "no answer to a grant in 10 s");
        return share_wait(sent, s->share, now, need);
    }
    return s->next_ask > now ? s->next_ask - now : 1;
}

void sl_shared_take(sl_shared *s, double amount) {
    if (!s->local) s->have -= amount;
}

void sl_shared_settle(sl_shared *s, double delta) {
    if (!s->local) s->have -= delta;
}

void sl_shared_free(sl_shared *s, sl_runtime *rt) {
    if (!s) return;
    if (s->announced)
        sl_ctx_log(s->inst->ctx, SL_LOG_DEBUG, s->inst->name, "%s: %.0f granted by the shared bucket '%s'",
                   s->what, s->total, s->key);
    if (s->asking) {
        s->orphan = 1; /* the sink may still answer into s->call and s->granted */
        sl_runtime_park(rt, s, free);
        return;
    }
    free(s);
}
