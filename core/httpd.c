/* httpd.c - the HTTP service (see httpd.h): libh2o on the loop thread.
 *
 * One h2o handler at "/" routes by path. Answers that are ready at once
 * (metrics, status, health, the page) are sent inline. /query and /ready
 * call plugins: an io plugin on the loop thread (it answers through
 * sl_call_done), any other on libuv's work threads, so the loop never
 * blocks. A client may hang up before the answer comes: the request's pool
 * then tells us (a shared allocation's dispose callback) and the answer is
 * dropped.
 *
 * Every handle is unreferenced: a run's loop ends when its documents do,
 * whoever is connected. Stopping closes the listener, asks h2o to shut
 * down, and frees the context once the last connection has closed.
 */
#include "httpd.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <h2o.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "document.h"
#include "instance.h"
#include "loop.h"
#include "ops.h"
#include "pipeline.h"
#include "query.h"

extern const char sl_status_page[];

struct sl_httpd {
    uv_loop_t *loop;
    sl_httpd_source src;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    uv_timer_t drain; /* after stop: waits for the last connection */
    int nconns, stopping;
    char address[80];
};

typedef struct handler {
    h2o_handler_t super;
    sl_httpd *h;
} handler;

/* --- answers --- */

static void add_header(h2o_req_t *req, const h2o_token_t *token, const char *value) {
    h2o_add_header(&req->pool, &req->res.headers, token, NULL, value, strlen(value));
}

static void respond(h2o_req_t *req, int status, const char *reason, const char *type, const char *body,
                    size_t len) {
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len;
    const sl_httpd *h = (const sl_httpd *)((const char *)req->conn->ctx - offsetof(sl_httpd, ctx));
    if (h->stopping) req->http1_is_persistent = 0;
    add_header(req, H2O_TOKEN_CONTENT_TYPE, type);
    add_header(req, H2O_TOKEN_CACHE_CONTROL, "no-store");
    h2o_send_inline(req, body, len);
}

static void respond_json(h2o_req_t *req, int status, const char *reason, json_t *body, size_t flags) {
    char *s = json_dumps(body, flags);
    if (!s) {
        respond(req, 500, "Internal Server Error", "text/plain; charset=utf-8", "out of memory\n", 14);
        return;
    }
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (t) {
        s = t;
        s[n++] = '\n';
        s[n] = 0;
    }
    respond(req, status, reason, "application/json", s, n);
    free(s);
}

static void respond_error(h2o_req_t *req, int status, const char *reason, const char *msg) {
    json_t *o = json_pack("{s:s}", "error", msg);
    respond_json(req, status, reason, o, JSON_COMPACT);
    json_decref(o);
}

/* --- plugin calls that never block the loop --- */

typedef struct acall acall;
struct acall {
    sl_call call;
    sl_tstate ts;
    sl_instance *inst;
    sl_invoke_fn fn;
    void *arg;
    uv_work_t work;
    int rc, returned, answered, answer;
    void (*then)(acall *a, int rc);
};

static void acall_finish(acall *a, int rc) {
    sl_tstate_free(a->inst, &a->ts);
    a->then(a, rc);
}

static void acall_answer(sl_call *call, int rc) {
    acall *a = call->udata;
    if (!a->returned) {
        a->answered = 1;
        a->answer = rc;
        return;
    }
    acall_finish(a, rc);
}

static void acall_work(uv_work_t *w) {
    acall *a = w->data;
    a->rc = sl_invoke_start(a->inst, &a->ts, a->fn, a->arg, &a->call, acall_answer, a);
}

static void acall_after(uv_work_t *w, int status) {
    acall *a = w->data;
    a->returned = 1;
    if (status) a->rc = sl_fail(&a->call, SL_EFATAL, "the call was cancelled");
    if (a->rc != SL_PENDING)
        acall_finish(a, a->rc);
    else if (a->answered)
        acall_finish(a, a->answer);
}

static void acall_start(uv_loop_t *loop, acall *a) {
    memset(&a->ts, 0, sizeof a->ts);
    a->returned = a->answered = 0;
    a->work.data = a;
    if (a->inst->desc->bottleneck == SL_IO) {
        a->rc = sl_invoke_start(a->inst, NULL, a->fn, a->arg, &a->call, acall_answer, a);
        acall_after(&a->work, 0);
        return;
    }
    if (uv_queue_work(loop, &a->work, acall_work, acall_after)) {
        a->returned = 1;
        acall_finish(a, sl_fail(&a->call, SL_EFATAL, "cannot queue the call on a work thread"));
    }
}

/* A request an answer will come to later. req is NULL once the client is
 * gone (the request's pool disposes its slot); taking it detaches the slot,
 * so a pool freed after the answer never touches what answered. */
typedef struct pending {
    h2o_req_t *req;
    struct pending **slot;
} pending;

static void pending_gone(void *p) {
    pending **slot = p;
    if (*slot) (*slot)->req = NULL;
}

static void pending_watch(pending *p, h2o_req_t *req) {
    p->req = req;
    p->slot = h2o_mem_alloc_shared(&req->pool, sizeof *p->slot, pending_gone);
    *p->slot = p;
}

static h2o_req_t *pending_take(pending *p) {
    h2o_req_t *req = p->req;
    if (req) *p->slot = NULL;
    p->req = NULL;
    return req;
}

/* --- /query --- */

typedef struct query {
    pending pend;
    acall a;
    uv_loop_t *loop;
    sl_instance *embedder, *sink;
    char *text;
    uint32_t k, depth, dim, rrf_k;
    double vweight, kweight;
    bool want_vec, want_kw;
    float *v;
    sl_hits *hits;     /* the ranking being asked for now */
    sl_hits *vec, *kw; /* the rankings answered */
    char err[1200];
} query;

static int call_embed(sl_call *call, void *arg) {
    query *q = arg;
    sl_text t = {q->text, strlen(q->text)};
    call->query = 1; /* the query prefix, for models that have one */
    return call->inst->desc->embed(call, &t, 1, q->v);
}

static int call_query(sl_call *call, void *arg) {
    query *q = arg;
    return call->inst->desc->query(call, q->v, q->dim, q->depth, q->hits);
}

static int call_keyword(sl_call *call, void *arg) {
    query *q = arg;
    return call->inst->desc->keyword(call, q->text, q->depth, q->hits);
}

static void query_free(query *q) {
    free(q->text);
    free(q->v);
    sl_hits_free(q->hits);
    sl_hits_free(q->vec);
    sl_hits_free(q->kw);
    free(q);
}

/* body NULL: the error in q->err. */
static void query_end(query *q, int status, const char *reason, json_t *body) {
    h2o_req_t *req = pending_take(&q->pend);
    if (req && body)
        respond_json(req, status, reason, body, JSON_INDENT(2)); /* as `sluice query --json` prints it */
    else if (req)
        respond_error(req, status, reason, q->err);
    json_decref(body);
    query_free(q);
}

/* Both rankings asked for are in: fused, or the one there cut to k. */
static void query_answer(query *q) {
    sl_hits *fused = NULL, *one = q->vec ? q->vec : q->kw;
    if (q->vec && q->kw) {
        fused = sl_hits_fuse(q->vec, q->kw, q->k, q->rrf_k, q->vweight, q->kweight);
        if (!fused) {
            snprintf(q->err, sizeof q->err, "out of memory");
            query_end(q, 500, "Internal Server Error", NULL);
            return;
        }
    } else if (!one) {
        snprintf(q->err, sizeof q->err, "[%s] has no keyword index to search: use mode=vector",
                 q->sink->name);
        query_end(q, 400, "Bad Request", NULL);
        return;
    } else {
        sl_hits_truncate(one, q->k);
    }
    json_t *body = sl_hits_json(fused ? fused : one);
    sl_hits_free(fused);
    query_end(q, 200, "OK", body);
}

static void query_keyword_answered(acall *a, int rc) {
    query *q = (query *)((char *)a - offsetof(query, a));
    if (rc == SL_KEYWORD_NO_INDEX) {
        sl_ctx_log(q->sink->ctx, SL_LOG_WARN, q->sink->name, "no keyword ranking: %s",
                   a->call.msg[0] ? a->call.msg : "the store has no keyword index");
        query_answer(q);
        return;
    }
    if (rc) {
        snprintf(q->err, sizeof q->err, "[%s] keyword query failed: %s", q->sink->name,
                 a->call.msg[0] ? a->call.msg : sl_strerror(rc));
        query_end(q, 502, "Bad Gateway", NULL);
        return;
    }
    sl_hits_rank(q->hits, false);
    q->kw = q->hits;
    q->hits = NULL;
    query_answer(q);
}

static void query_answered(acall *a, int rc);

/* Asks the sink for one ranking into a new q->hits. */
static void query_ask(query *q, bool vector) {
    if (!q->pend.req) { /* the client is gone: no need to ask the sink */
        query_free(q);
        return;
    }
    q->hits = sl_hits_new(q->depth);
    if (!q->hits) {
        snprintf(q->err, sizeof q->err, "out of memory");
        query_end(q, 500, "Internal Server Error", NULL);
        return;
    }
    acall *a = &q->a;
    a->inst = q->sink;
    a->fn = vector ? call_query : call_keyword;
    a->then = vector ? query_answered : query_keyword_answered;
    acall_start(q->loop, a);
}

static void query_answered(acall *a, int rc) {
    query *q = (query *)((char *)a - offsetof(query, a));
    if (rc) {
        snprintf(q->err, sizeof q->err, "[%s] query failed: %s", q->sink->name,
                 a->call.msg[0] ? a->call.msg : sl_strerror(rc));
        query_end(q, 502, "Bad Gateway", NULL);
        return;
    }
    sl_hits_rank(q->hits, true);
    q->vec = q->hits;
    q->hits = NULL;
    if (q->want_kw)
        query_ask(q, false);
    else
        query_answer(q);
}

static void query_embedded(acall *a, int rc) {
    query *q = (query *)((char *)a - offsetof(query, a));
    if (rc) {
        snprintf(q->err, sizeof q->err, "[%s] embedding the query failed: %s", q->embedder->name,
                 a->call.msg[0] ? a->call.msg : sl_strerror(rc));
        query_end(q, 502, "Bad Gateway", NULL);
        return;
    }
    query_ask(q, true);
}

/* The value of key in a query string, percent-decoded into out: 1, 0 when
 * absent, -1 when malformed or longer than out. */
static int query_param(h2o_iovec_t qs, const char *key, char *out, size_t n) {
    size_t klen = strlen(key);
    const char *p = qs.base, *end = qs.base + qs.len;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if ((size_t)(e - p) > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t o = 0;
            for (const char *c = p + klen + 1; c < e; c++) {
                if (o + 1 >= n) return -1;
                if (*c == '+') {
                    out[o++] = ' ';
                } else if (*c == '%') {
                    if (e - c < 3 || !isxdigit((unsigned char)c[1]) || !isxdigit((unsigned char)c[2]))
                        return -1;
                    char hex[3] = {c[1], c[2], 0};
                    out[o++] = (char)strtol(hex, NULL, 16);
                    c += 2;
                } else {
                    out[o++] = *c;
                }
            }
            out[o] = 0;
            return 1;
        }
        p = e + 1;
    }
    return 0;
}

static void serve_query(sl_httpd *h, h2o_req_t *req, h2o_iovec_t qs) {
    sl_runtime *rt = h->src.runtime ? h->src.runtime(h->src.arg) : NULL;
    if (!rt) return respond_error(req, 503, "Service Unavailable", "no configuration is loaded yet");
    char text[SL_HTTPD_MAX_TARGET], kbuf[32], route[256], mbuf[16];
    if (query_param(qs, "q", text, sizeof text) != 1 || !text[0] || strlen(text) == 0)
        return respond_error(
            req, 400, "Bad Request",
            "/query needs q=TEXT (and optionally k=N, route=NAME, mode=hybrid|vector|keyword, rrf_k=N, "
            "vector_weight=W, keyword_weight=W)");
    long k = 5;
    int has_k = query_param(qs, "k", kbuf, sizeof kbuf);
    if (has_k) {
        char *end;
        errno = 0;
        k = has_k > 0 ? strtol(kbuf, &end, 10) : 0;
        if (has_k < 0 || errno || *end || k < 1 || k > 10000)
            return respond_error(req, 400, "Bad Request", "k must be a number from 1 to 10000");
    }
    long rrf_k = SL_RRF_K;
    int has_rrf_k = query_param(qs, "rrf_k", kbuf, sizeof kbuf);
    if (has_rrf_k) {
        char *end;
        errno = 0;
        rrf_k = has_rrf_k > 0 ? strtol(kbuf, &end, 10) : 0;
        if (has_rrf_k < 0 || errno || *end || rrf_k < 1 || rrf_k > SL_RRF_K_MAX)
            return respond_error(req, 400, "Bad Request", "rrf_k must be a number from 1 to 10000");
    }
    double weights[2] = {SL_RRF_VECTOR_WEIGHT, SL_RRF_KEYWORD_WEIGHT};
    static const char *const weight_names[2] = {"vector_weight", "keyword_weight"};
    for (int i = 0; i < 2; i++) {
        int has_w = query_param(qs, weight_names[i], kbuf, sizeof kbuf);
        if (!has_w) continue;
        char *end = kbuf;
        errno = 0;
        weights[i] = has_w > 0 ? strtod(kbuf, &end) : -1;
        if (has_w < 0 || errno || end == kbuf || *end ||
            !(weights[i] >= 0 && weights[i] <= SL_RRF_WEIGHT_MAX))
            return respond_error(req, 400, "Bad Request",
                                 i ? "keyword_weight must be a number from 0 to 100"
                                   : "vector_weight must be a number from 0 to 100");
    }
    sl_query_mode mode = SL_QUERY_HYBRID;
    int has_mode = query_param(qs, "mode", mbuf, sizeof mbuf);
    if (has_mode && (has_mode < 0 || sl_query_mode_parse(mbuf, &mode)))
        return respond_error(req, 400, "Bad Request", "mode must be hybrid, vector or keyword");
    const sl_route *r = rt->nroutes ? &rt->routes[0] : NULL;
    int has_route = query_param(qs, "route", route, sizeof route);
    if (has_route) r = has_route > 0 ? sl_runtime_route_named(rt, route) : NULL;
    if (!r) return respond_error(req, 404, "Not Found", "no such route");
    bool want_vec = mode != SL_QUERY_KEYWORD, want_kw = mode != SL_QUERY_VECTOR && r->sink->desc->keyword;
    if (mode == SL_QUERY_KEYWORD && !want_kw)
        return respond_error(req, 400, "Bad Request",
                             "the route's sink has no keyword search: use mode=vector");
    if (want_vec && !r->embedder) {
        if (!want_kw)
            return respond_error(req, 400, "Bad Request",
                                 "the route has no embedder: its chunks have no vectors to query");
        want_vec = false; /* hybrid without vectors: the keyword ranking alone */
    }
    if ((want_vec && sl_instance_init(rt->ctx, r->embedder)) || sl_instance_init(rt->ctx, r->sink))
        return respond_error(req, 503, "Service Unavailable", sl_ctx_errmsg(rt->ctx));
    query *q = calloc(1, sizeof *q);
    if (!q || !(q->text = strdup(text)) ||
        (want_vec && !(q->v = calloc(r->embedder->dim ? r->embedder->dim : 1, sizeof(float))))) {
        if (q) query_free(q);
        return respond_error(req, 500, "Internal Server Error", "out of memory");
    }
    q->loop = h->loop;
    q->embedder = want_vec ? r->embedder : NULL;
    q->sink = r->sink;
    q->k = (uint32_t)k;
    q->rrf_k = (uint32_t)rrf_k;
    q->vweight = weights[0];
    q->kweight = weights[1];
    q->depth = want_vec && want_kw ? sl_query_depth(q->k) : q->k;
    q->dim = want_vec ? r->embedder->dim : 0;
    q->want_vec = want_vec;
    q->want_kw = want_kw;
    pending_watch(&q->pend, req);
    q->a.arg = q;
    if (!want_vec) return query_ask(q, false);
    q->a.inst = q->embedder;
    q->a.fn = call_embed;
    q->a.then = query_embedded;
    acall_start(h->loop, &q->a);
}

/* --- /ready: plugins initialised and every sink answers a lookup --- */

#define READY_PROBE_URI "sluice:ready-probe"

typedef struct ready_probe ready_probe;
typedef struct ready {
    pending pend;
    int left;
    char reason[1200];
} ready;

struct ready_probe {
    acall a;
    ready *rd;
    sl_doc *doc;
};

static int call_lookup(sl_call *call, void *arg) { return call->inst->desc->lookup(call, arg); }

static void ready_end(ready *rd) {
    h2o_req_t *req = pending_take(&rd->pend);
    if (req) {
        json_t *o = rd->reason[0] ? json_pack("{s:b, s:s}", "ready", 0, "reason", rd->reason)
                                  : json_pack("{s:b}", "ready", 1);
        if (rd->reason[0])
            respond_json(req, 503, "Service Unavailable", o, JSON_COMPACT);
        else
            respond_json(req, 200, "OK", o, JSON_COMPACT);
        json_decref(o);
    }
    free(rd);
}

static void ready_probed(acall *a, int rc) {
    ready_probe *p = (ready_probe *)a;
    ready *rd = p->rd;
    if (rc < 0 && !rd->reason[0])
        snprintf(rd->reason, sizeof rd->reason, "sink [%s] does not answer: %s", a->inst->name,
                 a->call.msg[0] ? a->call.msg : sl_strerror(rc));
    sl_doc_free(p->doc);
    free(p);
    if (--rd->left == 0) ready_end(rd);
}

static void serve_ready(sl_httpd *h, h2o_req_t *req) {
    const char *why = h->src.not_ready ? h->src.not_ready(h->src.arg) : NULL;
    sl_runtime *rt = h->src.runtime ? h->src.runtime(h->src.arg) : NULL;
    if (!why && !rt) why = "no configuration is loaded yet";
    if (why) {
        json_t *o = json_pack("{s:b, s:s}", "ready", 0, "reason", why);
        respond_json(req, 503, "Service Unavailable", o, JSON_COMPACT);
        json_decref(o);
        return;
    }
    ready *rd = calloc(1, sizeof *rd);
    if (!rd) return respond_error(req, 500, "Internal Server Error", "out of memory");
    pending_watch(&rd->pend, req);
    rd->left = 1; /* held until every probe is started */
    for (size_t i = 0; i < rt->nroutes; i++) {
        sl_instance *sink = rt->routes[i].sink;
        int seen = 0;
        for (size_t j = 0; j < i; j++) seen |= rt->routes[j].sink == sink;
        if (seen) continue;
        if (!sink->initialized) {
            if (!rd->reason[0])
                snprintf(rd->reason, sizeof rd->reason, "sink [%s] is not initialised", sink->name);
            continue;
        }
        ready_probe *p = calloc(1, sizeof *p);
        sl_doc *doc = p ? sl_doc_new(READY_PROBE_URI, NULL) : NULL;
        if (!doc) {
            free(p);
            snprintf(rd->reason, sizeof rd->reason, "out of memory");
            continue;
        }
        sl_doc_set_data(doc, "", 0);
        sl_doc_set_fingerprint(doc, rt->routes[i].fingerprint);
        p->rd = rd;
        p->doc = doc;
        p->a.inst = sink;
        p->a.fn = call_lookup;
        p->a.arg = doc;
        p->a.then = ready_probed;
        rd->left++;
        acall_start(h->loop, &p->a);
    }
    if (--rd->left == 0) ready_end(rd);
}

/* --- routing --- */

static int is(h2o_iovec_t path, const char *s) { return h2o_memis(path.base, path.len, s, strlen(s)); }

static void serve_text(h2o_req_t *req, const char *type, char *body, size_t len) {
    if (!body) return respond_error(req, 500, "Internal Server Error", "out of memory");
    respond(req, 200, "OK", type, body, len);
    free(body);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
    sl_httpd *h = ((handler *)self)->h;
    if (req->path.len > SL_HTTPD_MAX_TARGET) {
        respond_error(req, 414, "URI Too Long", "the request target is longer than 4096 bytes");
        return 0;
    }
    h2o_iovec_t path = req->path_normalized;
    h2o_iovec_t qs = h2o_iovec_init("", 0);
    if (req->query_at != SIZE_MAX)
        qs = h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
    int known = is(path, "/") || is(path, "/metrics") || is(path, "/health") || is(path, "/ready") ||
                is(path, "/query") || is(path, "/status.json");
    if (!known) {
        respond_error(req, 404, "Not Found",
                      "no such endpoint (/, /metrics, /health, /ready, /query, /status.json)");
        return 0;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        add_header(req, H2O_TOKEN_ALLOW, "GET");
        respond_error(req, 405, "Method Not Allowed", "only GET is served");
        return 0;
    }
    int running = 0;
    size_t len = 0;
    if (is(path, "/health")) {
        respond(req, 200, "OK", "text/plain; charset=utf-8", "ok\n", 3);
    } else if (is(path, "/ready")) {
        serve_ready(h, req);
    } else if (is(path, "/query")) {
        serve_query(h, req, qs);
    } else if (is(path, "/metrics")) {
        const sl_report *rep = h->src.report ? h->src.report(h->src.arg, &running) : NULL;
        char *body = sl_metrics_text(rep, running, &len);
        serve_text(req, "text/plain; version=0.0.4; charset=utf-8", body, len);
    } else if (is(path, "/status.json")) {
        const sl_report *rep = h->src.report ? h->src.report(h->src.arg, &running) : NULL;
        char *body = sl_status_json(rep, running, &len);
        serve_text(req, "application/json", body, len);
    } else {
        respond(req, 200, "OK", "text/html; charset=utf-8", sl_status_page, strlen(sl_status_page));
    }
    return 0;
}

/* --- connections --- */

/* h2o's socket takes the handle's data field: the service is found from
 * the handle's place in a conn. */
typedef struct conn {
    uv_tcp_t tcp;
    sl_httpd *h;
} conn;

static void conn_closed(uv_handle_t *hd) {
    conn *c = (conn *)hd;
    c->h->nconns--;
    free(c);
}

static void on_accept(uv_stream_t *listener, int status) {
    sl_httpd *h = listener->data;
    if (status != 0) return;
    conn *c = calloc(1, sizeof *c);
    if (!c) return;
    uv_tcp_init(listener->loop, &c->tcp);
    uv_unref((uv_handle_t *)&c->tcp);
    c->h = h;
    h->nconns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || h->nconns > SL_HTTPD_MAX_CONNS || h->stopping) {
        /* over the bound: closed at once, before h2o reads a byte */
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
        return;
    }
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, conn_closed);
    h2o_accept(&h->accept_ctx, sock);
}

/* Handles h2o_context_init made (its timers, its queue's async) must not
 * keep a run's loop going: every handle not there before is unreferenced. */
typedef struct handle_set {
    uv_handle_t **v;
    size_t n, cap;
} handle_set;

static void collect(uv_handle_t *hd, void *arg) {
    handle_set *s = arg;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        uv_handle_t **nv = realloc(s->v, cap * sizeof *nv);
        if (!nv) return;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = hd;
}

static void unref_new(uv_handle_t *hd, void *arg) {
    handle_set *before = arg;
    for (size_t i = 0; i < before->n; i++)
        if (before->v[i] == hd) return;
    uv_unref(hd);
}

int sl_httpd_parse_listen(const char *listen, struct sockaddr_storage *ss, char *err, size_t n) {
    memset(ss, 0, sizeof *ss);
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (!colon || colon == listen) {
        snprintf(err, n, "'%s' is not HOST:PORT (for example 127.0.0.1:9464)", listen ? listen : "");
        return SL_EINVAL;
    }
    char host[256];
    size_t hl = (size_t)(colon - listen);
    if (listen[0] == '[' && hl >= 2 && listen[hl - 1] == ']') {
        listen++;
        hl -= 2;
    }
    if (hl >= sizeof host) {
        snprintf(err, n, "'%s': the host is too long", listen);
        return SL_EINVAL;
    }
    memcpy(host, listen, hl);
    host[hl] = 0;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || errno || port < 0 || port > 65535) {
        snprintf(err, n, "'%s': the port must be a number from 0 to 65535", colon + 1);
        return SL_EINVAL;
    }
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) != 0 &&
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) != 0) {
        snprintf(err, n, "'%s' is not a numeric IPv4 or IPv6 address (127.0.0.1, 0.0.0.0, [::1])", host);
        return SL_EINVAL;
    }
    return 0;
}

static void free_h(uv_handle_t *hd) { free(hd->data); }

/* The context's timers closed in the same pass as the drain timer and live
 * in h: h is freed one pass later, with the (long closed) listener's memory
 * made a handle again for it. */
static void h_free_late(uv_handle_t *hd) {
    sl_httpd *h = hd->data;
    uv_tcp_init(h->loop, &h->listener);
    h->listener.data = h;
    uv_close((uv_handle_t *)&h->listener, free_h);
}

static void drain_tick(uv_timer_t *t) {
    sl_httpd *h = t->data;
    if (h->nconns > 0) return;
    uv_timer_stop(t);
    h2o_context_dispose(&h->ctx);
    h2o_config_dispose(&h->config);
    uv_close((uv_handle_t *)t, h_free_late);
}

static void listener_closed(uv_handle_t *hd) {
    sl_httpd *h = hd->data;
    uv_timer_start(&h->drain, drain_tick, 0, 20);
}

void sl_httpd_stop(sl_httpd *h) {
    if (!h || h->stopping) return;
    h->stopping = 1;                  /* answers from now on close their connection (respond) */
    uv_ref((uv_handle_t *)&h->drain); /* the loop runs until the last connection is gone */
    uv_close((uv_handle_t *)&h->listener, listener_closed);
}

const char *sl_httpd_address(const sl_httpd *h) { return h ? h->address : ""; }

sl_httpd *sl_httpd_start(uv_loop_t *loop, const char *listen, const sl_httpd_source *src, char *err,
                         size_t n) {
    struct sockaddr_storage ss;
    if (sl_httpd_parse_listen(listen, &ss, err, n)) return NULL;
    sl_httpd *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    h->loop = loop;
    h->src = *src;
    uv_tcp_init(loop, &h->listener);
    h->listener.data = h;
    int rc = uv_tcp_bind(&h->listener, (const struct sockaddr *)&ss, 0);
    if (!rc) rc = uv_listen((uv_stream_t *)&h->listener, 128, on_accept);
    if (rc) {
        snprintf(err, n, "cannot listen on %s: %s", listen, uv_strerror(rc));
        uv_close((uv_handle_t *)&h->listener, free_h);
        return NULL;
    }
    uv_unref((uv_handle_t *)&h->listener);
    struct sockaddr_storage got;
    int gl = sizeof got;
    char ip[INET6_ADDRSTRLEN] = "?";
    if (uv_tcp_getsockname(&h->listener, (struct sockaddr *)&got, &gl) == 0) {
        if (got.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&got, ip, sizeof ip);
            snprintf(h->address, sizeof h->address, "[%s]:%d", ip,
                     ntohs(((struct sockaddr_in6 *)&got)->sin6_port));
        } else {
            uv_ip4_name((struct sockaddr_in *)&got, ip, sizeof ip);
            snprintf(h->address, sizeof h->address, "%s:%d", ip,
                     ntohs(((struct sockaddr_in *)&got)->sin_port));
        }
    }

    h2o_config_init(&h->config);
    h->config.max_request_entity_size = 4096;
    h->config.http1.req_timeout = 10000;
    h->config.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *host = h2o_config_register_host(&h->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    handler *hd = (handler *)h2o_create_handler(pathconf, sizeof *hd);
    hd->super.on_req = on_req;
    hd->h = h;

    handle_set before = {0};
    uv_walk(loop, collect, &before);
    h2o_context_init(&h->ctx, loop, &h->config);
    uv_timer_init(loop, &h->drain);
    h->drain.data = h;
    uv_walk(loop, unref_new, &before);
    free(before.v);
    h->accept_ctx.ctx = &h->ctx;
    h->accept_ctx.hosts = h->config.hosts;
    return h;
}

/* --- a source for a process's runs --- */

static const sl_report *view_report(void *arg, int *running) {
    sl_httpd_run_view *v = arg;
    *running = v->live != NULL;
    if (v->live) sl_pipeline_refresh(v->live);
    return v->rep;
}

static sl_runtime *view_runtime(void *arg) { return ((sl_httpd_run_view *)arg)->rt; }
static const char *view_not_ready(void *arg) { return ((sl_httpd_run_view *)arg)->not_ready; }

void sl_httpd_source_for_run(sl_httpd_source *src, sl_httpd_run_view *view) {
    memset(src, 0, sizeof *src);
    src->arg = view;
    src->report = view_report;
    src->runtime = view_runtime;
    src->not_ready = view_not_ready;
    src->ctx = view->rt ? view->rt->ctx : NULL;
}
