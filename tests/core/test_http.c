/* test_http.c - the asynchronous HTTP client (sluice/http.h) against a real
 * HTTP/1.1 server over 127.0.0.1, no mocks.
 *
 * The server is this file's own: libuv on a second thread with its own loop,
 * keep-alive connections, Content-Length bodies, and endpoints that answer,
 * refuse, stall, hang up, or send a large body. The client side checks:
 * requests and responses carry methods, headers and bodies intact; only the
 * last response's headers are kept; compressed bodies are decoded; a
 * thousand requests in flight on one loop all complete; connections are
 * kept alive and reused; every status gets its verdict (with Retry-After
 * in each of its forms); timeouts, refused connections and hang-ups are
 * transport errors; a request freed while in flight never calls back; the
 * loop keeps running exactly while requests are in flight; and freeing the
 * loop with requests in flight leaks nothing.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "instance.h"
#include "loop.h"
#include "sluice/http.h"
#include "sluice/io.h"

/* ------------------------------------------------------------------ */
/* The server                                                          */
/* ------------------------------------------------------------------ */

#define BIG_LEN (5u * 1024 * 1024)

typedef struct server {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    uv_thread_t thread;
    uv_sem_t ready;
    int port;
    atomic_int accepted;
    struct conn *conns;
    char *big;
} server;

typedef struct conn {
    uv_tcp_t tcp;
    uv_timer_t slow;
    server *srv;
    struct conn *prev, *next;
    char *buf;
    size_t len, cap;
    int open_handles;
    int closing;
} conn;

typedef struct wreq {
    uv_write_t w;
    char *head;
} wreq;

static server srv;

static void conn_closed(uv_handle_t *h) {
    conn *c = h->data;
    if (--c->open_handles) return;
    free(c->buf);
    free(c);
}

static void conn_close(conn *c) {
    if (c->closing) return;
    c->closing = 1;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
    uv_close((uv_handle_t *)&c->slow, conn_closed);
}

static void written(uv_write_t *w, int status) {
    wreq *r = (wreq *)w;
    free(r->head);
    free(r);
}

/* Sends status line, extra headers ("Name: value\r\n" each) and body; the
 * body is copied unless `shared` (the big one, which lives as long as the
 * server). */
static void respond(conn *c, int status, const char *extra, const char *body, size_t blen, int shared) {
    if (c->closing) return;
    wreq *r = malloc(sizeof *r);
    size_t cap = 512 + (extra ? strlen(extra) : 0) + (shared ? 0 : blen);
    r->head = malloc(cap);
    int n = snprintf(r->head, cap, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nX-Server: test\r\n%s\r\n", status,
                     blen, extra ? extra : "");
    if (!shared) {
        memcpy(r->head + n, body, blen);
        n += (int)blen;
    }
    uv_buf_t bufs[2] = {uv_buf_init(r->head, (unsigned)n), uv_buf_init((char *)body, (unsigned)blen)};
    if (uv_write(&r->w, (uv_stream_t *)&c->tcp, bufs, shared ? 2 : 1, written)) {
        free(r->head);
        free(r);
    }
}

static void respond_str(conn *c, int status, const char *extra, const char *body) {
    respond(c, status, extra, body, strlen(body), 0);
}

static void on_slow(uv_timer_t *t) { respond_str(t->data, 200, NULL, "slow"); }

static void http_date(time_t t, char *out, size_t cap) {
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void handle(conn *c, const char *method, const char *path, const char *headers, size_t body_len) {
    char extra[512], body[512];
    size_t plen = strcspn(path, "?");
    if (!strncmp(path, "/ok", plen) && plen == 3) {
        const char *e = strcasestr(headers, "\r\nX-Echo:");
        char echo[64] = "";
        if (e) sscanf(e + 9, " %63[^\r]", echo);
        snprintf(body, sizeof body, "{\"method\":\"%s\",\"len\":%zu,\"echo\":\"%s\"}", method, body_len,
                 echo);
        respond_str(c, 200, "Content-Type: application/json\r\n", body);
    } else if (!strcmp(path, "/gzip")) {
        /* {"hello":"gzip"}, gzip-compressed; sent only to a client that asks */
        static const char gz[] =
            "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xab\x56\xca\x48\xcd\xc9\xc9\x57\xb2"
            "\x52\x4a\xaf\xca\x2c\x50\xaa\x05\x00\xf6\x4f\x05\x6f\x10\x00\x00\x00";
        const char *ae = strcasestr(headers, "\r\nAccept-Encoding:");
        if (ae && strstr(ae, "gzip"))
            respond(c, 200, "Content-Encoding: gzip\r\n", gz, sizeof gz - 1, 0);
        else
            respond_str(c, 406, NULL, "no gzip offered");
    } else if (!strcmp(path, "/retry")) {
        respond_str(c, 429, "Retry-After: 2\r\n", "slow\r\n\tdown  please");
    } else if (!strcmp(path, "/boom")) {
        respond_str(c, 503, NULL, "boom");
    } else if (!strcmp(path, "/slow")) {
        uv_timer_start(&c->slow, on_slow, 2000, 0);
    } else if (!strcmp(path, "/reset")) {
        conn_close(c);
    } else if (!strcmp(path, "/big")) {
        respond(c, 200, NULL, c->srv->big, BIG_LEN, 1);
    } else if (!strcmp(path, "/hints")) {
        /* an informational response with headers of its own, then the real one */
        wreq *r = calloc(1, sizeof *r);
        r->head = strdup("HTTP/1.1 103 Early Hints\r\nX-Hint: 1\r\nX-Server: early\r\n\r\n");
        uv_buf_t b = uv_buf_init(r->head, (unsigned)strlen(r->head));
        uv_write(&r->w, (uv_stream_t *)&c->tcp, &b, 1, written);
        respond_str(c, 200, NULL, "final");
    } else if (!strncmp(path, "/status/", 8)) {
        int st = atoi(path + 8);
        snprintf(body, sizeof body, "status %d\nsecond line\x01", st);
        respond_str(c, st, st / 100 == 3 ? "Location: https://elsewhere.example/x?token=abc\r\n" : NULL,
                    body);
    } else if (!strcmp(path, "/long-error")) {
        /* 300 two-byte characters: the snippet must cut between them */
        char b[601];
        for (int i = 0; i < 300; i++) memcpy(b + 2 * i, "\xc3\xa9", 2);
        b[600] = '\0';
        respond_str(c, 500, NULL, b);
    } else if (!strcmp(path, "/retry-date") || !strcmp(path, "/retry-past")) {
        char date[64];
        http_date(time(NULL) + (!strcmp(path, "/retry-date") ? 3600 : -3600), date, sizeof date);
        snprintf(extra, sizeof extra, "Retry-After: %s\r\n", date);
        respond_str(c, 503, extra, "later");
    } else if (!strcmp(path, "/retry-ms")) {
        respond_str(c, 429, "Retry-After: 2\r\nretry-after-ms: 1500\r\n", "");
    } else if (!strcmp(path, "/ratelimit")) {
        respond_str(c, 429,
                    "x-ratelimit-remaining-requests: 5\r\nx-ratelimit-reset-requests: 1s\r\n"
                    "x-ratelimit-remaining-tokens: 0\r\nx-ratelimit-reset-tokens: 6m0s\r\n",
                    "tokens");
    } else {
        respond_str(c, 404, NULL, "no such endpoint");
    }
}

/* Handles every complete request in the buffer (keep-alive: many per
 * connection). */
static void process(conn *c) {
    while (!c->closing) {
        char *end = strstr(c->buf, "\r\n\r\n");
        if (!end) return;
        size_t head_len = (size_t)(end - c->buf) + 4;
        size_t body_len = 0;
        *end = '\0';
        const char *cl = strcasestr(c->buf, "\r\nContent-Length:");
        if (cl) body_len = strtoul(cl + 17, NULL, 10);
        if (c->len < head_len + body_len) {
            *end = '\r';
            return;
        }
        char method[16] = "", path[256] = "";
        sscanf(c->buf, "%15s %255s", method, path);
        handle(c, method, path, c->buf, body_len);
        if (c->closing) return;
        size_t used = head_len + body_len;
        memmove(c->buf, c->buf + used, c->len - used + 1);
        c->len -= used;
    }
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b) {
    conn *c = h->data;
    if (c->cap - c->len < 65536 + 1) {
        c->cap = c->cap * 2 + 65536 + 1;
        c->buf = realloc(c->buf, c->cap);
    }
    *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len - 1));
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    conn *c = s->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    process(c);
}

static void on_connection(uv_stream_t *l, int status) {
    server *s = l->data;
    if (status < 0) return;
    conn *c = calloc(1, sizeof *c);
    c->srv = s;
    uv_tcp_init(&s->loop, &c->tcp);
    uv_timer_init(&s->loop, &c->slow);
    c->tcp.data = c->slow.data = c;
    c->open_handles = 2;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp)) {
        conn_close(c);
        return;
    }
    atomic_fetch_add(&s->accepted, 1);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static void on_stop(uv_async_t *a) {
    server *s = a->data;
    while (s->conns) conn_close(s->conns);
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->stop, NULL);
}

static void server_main(void *arg) {
    server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
}

static void server_start(server *s) {
    s->big = malloc(BIG_LEN);
    for (size_t i = 0; i < BIG_LEN; i++) s->big[i] = (char)('a' + i % 26);
    uv_loop_init(&s->loop);
    uv_tcp_init(&s->loop, &s->listener);
    s->listener.data = s;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    CHECK_INT(uv_tcp_bind(&s->listener, (struct sockaddr *)&a, 0), 0);
    CHECK_INT(uv_listen((uv_stream_t *)&s->listener, 4096, on_connection), 0);
    int alen = sizeof a;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&a, &alen);
    s->port = ntohs(a.sin_port);
    uv_async_init(&s->loop, &s->stop, on_stop);
    s->stop.data = s;
    CHECK_INT(uv_thread_create(&s->thread, server_main, s), 0);
}

static void server_stop(server *s) {
    uv_async_send(&s->stop);
    uv_thread_join(&s->thread);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&s->loop), 0);
    free(s->big);
}

/* ------------------------------------------------------------------ */
/* The client side                                                     */
/* ------------------------------------------------------------------ */

static sl_instance *make_instance(void) {
    sl_instance *inst = calloc(1, sizeof *inst);
    inst->ctx = sl_ctx_new();
    inst->name = "http";
    CHECK_INT(sl_loop_new(&inst->loop), 0);
    return inst;
}

static void free_instance(sl_instance *inst) {
    if (inst->loop) sl_loop_free(inst->loop);
    sl_ctx_free(inst->ctx);
    free(inst);
}

static uv_loop_t *uv(sl_instance *inst) { return sl_loop_uv(inst->loop); }

static char *url(const char *path) {
    static char buf[8][256];
    static int i;
    char *u = buf[i++ % 8];
    snprintf(u, 256, "http://127.0.0.1:%d%s", srv.port, path);
    return u;
}

typedef struct got {
    int calls;
} got;

static void record(sl_http *req, void *arg) { ((got *)arg)->calls++; }

static sl_http *send_req(sl_instance *inst, const char *method, const char *path, got *g) {
    sl_http *req = sl_http_new(inst, method, url(path));
    CHECK(req != NULL);
    CHECK_INT(sl_http_send(req, record, g), 0);
    return req;
}

/* Runs the loop until nothing referenced is left: it must return by itself
 * once every request has called back. */
static void run(sl_instance *inst) {
    uv_run(uv(inst), UV_RUN_DEFAULT);
    CHECK(!uv_loop_alive(uv(inst)));
}

static void test_get_and_post_carry_headers_and_bodies(void) {
    sl_instance *inst = make_instance();
    got g = {0};
    sl_http *get = sl_http_new(inst, "GET", url("/ok?x=1"));
    CHECK_INT(sl_http_header(get, "X-Echo", "hello"), 0);
    CHECK_INT(sl_http_send(get, record, &g), 0);

    sl_http *post = sl_http_new(inst, "POST", url("/ok"));
    char data[6] = {'a', 'b', '\0', 'c', 'd', 'e'};
    CHECK_INT(sl_http_header(post, "X-Echo", "posted"), 0);
    CHECK_INT(sl_http_header(post, "Content-Type", "application/octet-stream"), 0);
    CHECK_INT(sl_http_body(post, data, sizeof data), 0);
    memset(data, 'z', sizeof data); /* the body was copied */
    CHECK_INT(sl_http_send(post, record, &g), 0);

    sl_http *put = sl_http_new(inst, "PUT", url("/ok"));
    CHECK_INT(sl_http_body(put, "xyz", 3), 0);
    CHECK_INT(sl_http_send(put, record, &g), 0);
    sl_http *del = send_req(inst, "DELETE", "/ok", &g);
    sl_http *empty_post = send_req(inst, "POST", "/ok", &g);
    run(inst);
    CHECK_INT(g.calls, 5);

    size_t len = 0;
    CHECK_INT(sl_http_status(get), 200);
    CHECK(sl_http_error(get) == NULL);
    CHECK_STR(sl_http_response_body(get, &len), "{\"method\":\"GET\",\"len\":0,\"echo\":\"hello\"}");
    CHECK_INT(len, strlen("{\"method\":\"GET\",\"len\":0,\"echo\":\"hello\"}"));
    CHECK_STR(sl_http_response_header(get, "x-server"), "test");
    CHECK_STR(sl_http_response_header(get, "CONTENT-TYPE"), "application/json");
    CHECK(sl_http_response_header(get, "X-Missing") == NULL);

    CHECK_INT(sl_http_status(post), 200);
    CHECK_STR(sl_http_response_body(post, NULL), "{\"method\":\"POST\",\"len\":6,\"echo\":\"posted\"}");
    CHECK_STR(sl_http_response_body(put, NULL), "{\"method\":\"PUT\",\"len\":3,\"echo\":\"\"}");
    CHECK_STR(sl_http_response_body(del, NULL), "{\"method\":\"DELETE\",\"len\":0,\"echo\":\"\"}");
    CHECK_STR(sl_http_response_body(empty_post, NULL), "{\"method\":\"POST\",\"len\":0,\"echo\":\"\"}");

    /* a request can be sent again once it has completed */
    CHECK_INT(sl_http_send(get, record, &g), 0);
    run(inst);
    CHECK_INT(g.calls, 6);
    CHECK_INT(sl_http_status(get), 200);
    CHECK_CONTAINS(sl_http_response_body(get, NULL), "\"echo\":\"hello\"");

    sl_http_free(get);
    sl_http_free(post);
    sl_http_free(put);
    sl_http_free(del);
    sl_http_free(empty_post);
    free_instance(inst);
}

static void test_only_the_last_responses_headers_are_kept(void) {
    sl_instance *inst = make_instance();
    got g = {0};
    sl_http *req = send_req(inst, "GET", "/hints", &g);
    run(inst);
    CHECK_INT(g.calls, 1);
    CHECK_INT(sl_http_status(req), 200);
    CHECK_STR(sl_http_response_body(req, NULL), "final");
    CHECK_STR(sl_http_response_header(req, "X-Server"), "test");
    CHECK(sl_http_response_header(req, "X-Hint") == NULL);
    sl_http_free(req);
    free_instance(inst);
}

static void test_compressed_response_is_decoded(void) {
    sl_instance *inst = make_instance();
    got g = {0};
    sl_http *req = send_req(inst, "GET", "/gzip", &g);
    run(inst);
    CHECK_INT(sl_http_status(req), 200);
    CHECK_STR(sl_http_response_body(req, NULL), "{\"hello\":\"gzip\"}");
    sl_http_free(req);
    free_instance(inst);
}

static void test_large_body_arrives_whole(void) {
    sl_instance *inst = make_instance();
    got g = {0};
    sl_http *req = send_req(inst, "GET", "/big", &g);
    run(inst);
    size_t len = 0;
    const char *b = sl_http_response_body(req, &len);
    CHECK_INT(len, BIG_LEN);
    CHECK(len == BIG_LEN && memcmp(b, srv.big, BIG_LEN) == 0);
    CHECK(len == BIG_LEN && b[len] == '\0');
    sl_http_free(req);
    free_instance(inst);
}

/* --- many in flight --- */

#define MANY 1000

typedef struct many {
    sl_http *req[MANY];
    struct one {
        struct many *m;
        int i;
    } one[MANY];
    int done, wrong;
} many;

/* each answer echoes its own request's header and body length */
static void many_done(sl_http *req, void *arg) {
    struct one *o = arg;
    char want[64];
    snprintf(want, sizeof want, "\"len\":%d,\"echo\":\"%d\"", snprintf(NULL, 0, "%d", o->i), o->i);
    o->m->done++;
    if (req != o->m->req[o->i] || sl_http_status(req) != 200 ||
        !strstr(sl_http_response_body(req, NULL), want))
        o->m->wrong++;
}

static void test_thousand_requests_in_flight_on_one_loop(void) {
    sl_instance *inst = make_instance();
    many *m = calloc(1, sizeof *m);
    for (int i = 0; i < MANY; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        m->one[i] = (struct one){m, i};
        m->req[i] = sl_http_new(inst, "POST", url("/ok"));
        CHECK_INT(sl_http_header(m->req[i], "X-Echo", v), 0);
        CHECK_INT(sl_http_body(m->req[i], v, strlen(v)), 0);
        CHECK_INT(sl_http_send(m->req[i], many_done, &m->one[i]), 0);
    }
    int before = atomic_load(&srv.accepted);
    run(inst);
    fprintf(stderr, "  %d requests at once: %d connections\n", MANY, atomic_load(&srv.accepted) - before);
    CHECK_INT(m->done, MANY);
    CHECK_INT(m->wrong, 0);
    for (int i = 0; i < MANY; i++) sl_http_free(m->req[i]);
    free(m);
    free_instance(inst);
}

/* A window of WINDOW requests in flight, each completion sending the next:
 * kept-alive connections are reused, so the server sees at most WINDOW. */
#define WINDOW 8
#define TOTAL 400

typedef struct windowed {
    sl_instance *inst;
    int sent, done, wrong;
} windowed;

static void window_next(windowed *w);

static void window_done(sl_http *req, void *arg) {
    windowed *w = arg;
    w->done++;
    if (sl_http_status(req) != 200) w->wrong++;
    sl_http_free(req); /* freeing inside its own callback */
    window_next(w);
}

static void window_next(windowed *w) {
    if (w->sent == TOTAL) return;
    w->sent++;
    sl_http *req = sl_http_new(w->inst, "GET", url("/ok"));
    if (!req || sl_http_send(req, window_done, w)) w->wrong++;
}

static void test_connections_are_kept_alive_and_reused(void) {
    sl_instance *inst = make_instance();
    windowed w = {inst, 0, 0, 0};
    int before = atomic_load(&srv.accepted);
    for (int i = 0; i < WINDOW; i++) window_next(&w);
    run(inst);
    int conns = atomic_load(&srv.accepted) - before;
    CHECK_INT(w.done, TOTAL);
    CHECK_INT(w.wrong, 0);
    CHECK(conns >= 1);
    CHECK(conns <= WINDOW);
    fprintf(stderr, "  %d requests, %d in flight at a time: %d connections\n", TOTAL, WINDOW, conns);
    free_instance(inst);
}

/* The way sl_invoke waits (UV_RUN_ONCE until the call is done): the loop
 * must never run out of work while the request is in flight. */
static void test_run_once_keeps_going_until_the_response(void) {
    sl_instance *inst = make_instance();
    got g = {0};
    sl_http *req = send_req(inst, "GET", "/big", &g);
    int starved = 0;
    while (!g.calls)
        if (!uv_run(uv(inst), UV_RUN_ONCE) && !g.calls) {
            starved = 1;
            break;
        }
    CHECK(!starved);
    CHECK_INT(sl_http_status(req), 200);
    CHECK_INT(uv_run(uv(inst), UV_RUN_NOWAIT), 0);
    sl_http_free(req);
    free_instance(inst);
}

/* --- verdicts --- */

typedef struct verdict_case {
    const char *path;
    int code;
    int64_t retry_min, retry_max; /* -1, -1: none */
    const char *says;
} verdict_case;

static void test_every_status_gets_its_verdict(void) {
    static const verdict_case cases[] = {
        {"/ok", SL_OK, -1, -1, ""},
        {"/retry", SL_ERETRY, 2000, 2000, "HTTP 429 from GET 127.0.0.1:"},
        {"/boom", SL_ERETRY, -1, -1, "HTTP 503 from GET 127.0.0.1:"},
        {"/status/408", SL_ERETRY, -1, -1, "HTTP 408"},
        {"/status/409", SL_ERETRY, -1, -1, "HTTP 409"},
        {"/status/425", SL_ERETRY, -1, -1, "HTTP 425"},
        {"/status/500", SL_ERETRY, -1, -1, "HTTP 500"},
        {"/status/502", SL_ERETRY, -1, -1, "HTTP 502"},
        {"/status/401?api_key=SECRETVALUE", SL_EFATAL, -1, -1, "check the API key"},
        {"/status/403", SL_EFATAL, -1, -1, "HTTP 403"},
        {"/status/400", SL_EBADINPUT, -1, -1, "HTTP 400"},
        {"/status/404", SL_EBADINPUT, -1, -1, "/status/404: status 404 second line"},
        {"/status/422", SL_EBADINPUT, -1, -1, "HTTP 422"},
        {"/status/301", SL_EFATAL, -1, -1, "redirects are not followed (to elsewhere.example/x)"},
        {"/retry-date", SL_ERETRY, 3500000, 3600000, "HTTP 503"},
        {"/retry-past", SL_ERETRY, 0, 0, "HTTP 503"},
        {"/retry-ms", SL_ERETRY, 1500, 1500, "HTTP 429"},
        {"/ratelimit", SL_ERETRY, 360000, 360000, "HTTP 429"},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    sl_instance *inst = make_instance();
    got g = {0};
    sl_http *req[N];
    for (int i = 0; i < N; i++) req[i] = send_req(inst, "GET", cases[i].path, &g);
    run(inst);
    CHECK_INT(g.calls, N);
    for (int i = 0; i < N; i++) {
        sl_call call;
        sl_call_init(&call, inst, NULL);
        int rc = sl_http_verdict(&call, req[i]);
        fprintf(stderr, "  %s -> %d, retry after %lld: %s\n", cases[i].path, rc,
                (long long)call.retry_after_ms, call.msg);
        CHECK_INT(rc, cases[i].code);
        CHECK_INT(call.code, cases[i].code);
        CHECK_CONTAINS(call.msg, cases[i].says);
        CHECK(!strstr(call.msg, "SECRETVALUE"));
        CHECK(!strstr(call.msg, "token=abc"));
        if (cases[i].retry_min < 0) {
            CHECK_INT(call.retry_after_ms, -1);
        } else {
            CHECK(call.retry_after_ms >= cases[i].retry_min);
            CHECK(call.retry_after_ms <= cases[i].retry_max);
        }
        if (rc) CHECK_CONTAINS(call.msg, "GET 127.0.0.1:");
        sl_http_free(req[i]);
    }
    free_instance(inst);
}

static void test_error_body_is_quoted_short_and_on_a_character_boundary(void) {
    sl_instance *inst = make_instance();
    got g = {0};
    sl_http *r429 = send_req(inst, "GET", "/retry", &g);
    sl_http *rlong = send_req(inst, "GET", "/long-error", &g);
    run(inst);
    sl_call call;
    sl_call_init(&call, inst, NULL);
    CHECK_INT(sl_http_verdict(&call, r429), SL_ERETRY);
    CHECK_CONTAINS(call.msg, ": slow down please"); /* CR, LF, TAB and runs of blanks: one space */
    fprintf(stderr, "  %s\n", call.msg);
    sl_call_init(&call, inst, NULL);
    CHECK_INT(sl_http_verdict(&call, rlong), SL_ERETRY);
    const char *dots = strstr(call.msg, "...");
    CHECK(dots != NULL);
    CHECK(strlen(call.msg) < 320);
    fprintf(stderr, "  %s\n", call.msg);
    /* before the dots: whole two-byte characters only */
    const char *body = strstr(call.msg, ": \xc3");
    CHECK(body != NULL);
    if (body && dots) {
        CHECK((dots - (body + 2)) % 2 == 0);
        CHECK((unsigned char)dots[-2] == 0xc3 && (unsigned char)dots[-1] == 0xa9);
    }
    sl_http_free(r429);
    sl_http_free(rlong);
    free_instance(inst);
}

/* --- transport errors --- */

static void test_total_timeout_is_a_retryable_transport_error(void) {
    sl_instance *inst = make_instance();
    got g = {0};
    sl_http *req = sl_http_new(inst, "GET", url("/slow"));
    CHECK_INT(sl_http_timeouts(req, -1, 0), SL_EINVAL);
    CHECK_INT(sl_http_timeouts(req, 0, 300), 0);
    CHECK_INT(sl_http_send(req, record, &g), 0);
    run(inst);
    CHECK_INT(g.calls, 1);
    CHECK_INT(sl_http_status(req), 0);
    CHECK_STR(sl_http_error(req), "timed out after 300 ms");
    sl_call call;
    sl_call_init(&call, inst, NULL);
    CHECK_INT(sl_http_verdict(&call, req), SL_ERETRY);
    CHECK_CONTAINS(call.msg, "GET 127.0.0.1:");
    CHECK_CONTAINS(call.msg, "/slow failed: timed out after 300 ms");
    sl_http_free(req);
    free_instance(inst);
}

static void test_refused_connection_is_a_retryable_transport_error(void) {
    /* bound but not listening: connecting to it is refused */
    uv_loop_t l;
    uv_loop_init(&l);
    uv_tcp_t hold;
    uv_tcp_init(&l, &hold);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    CHECK_INT(uv_tcp_bind(&hold, (struct sockaddr *)&a, 0), 0);
    int alen = sizeof a;
    uv_tcp_getsockname(&hold, (struct sockaddr *)&a, &alen);
    char u[64];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/ok", ntohs(a.sin_port));

    sl_instance *inst = make_instance();
    got g = {0};
    sl_http *req = sl_http_new(inst, "POST", u);
    CHECK_INT(sl_http_send(req, record, &g), 0);
    run(inst);
    CHECK_INT(g.calls, 1);
    CHECK_INT(sl_http_status(req), 0);
    CHECK_CONTAINS(sl_http_error(req), "connection refused");
    sl_call call;
    sl_call_init(&call, inst, NULL);
    CHECK_INT(sl_http_verdict(&call, req), SL_ERETRY);
    CHECK_CONTAINS(call.msg, "connection refused");
    CHECK_INT(call.retry_after_ms, -1);
    fprintf(stderr, "  %s\n", call.msg);
    sl_http_free(req);
    free_instance(inst);

    uv_close((uv_handle_t *)&hold, NULL);
    uv_run(&l, UV_RUN_DEFAULT);
    uv_loop_close(&l);
}

static void test_hang_up_without_answer_is_a_transport_error(void) {
    sl_instance *inst = make_instance();
    got g = {0};
    sl_http *req = send_req(inst, "GET", "/reset", &g);
    run(inst);
    CHECK_INT(g.calls, 1);
    CHECK_INT(sl_http_status(req), 0);
    CHECK(sl_http_error(req) != NULL);
    sl_call call;
    sl_call_init(&call, inst, NULL);
    CHECK_INT(sl_http_verdict(&call, req), SL_ERETRY);
    CHECK_CONTAINS(call.msg, "/reset failed: ");
    fprintf(stderr, "  %s\n", call.msg);
    sl_http_free(req);
    free_instance(inst);
}

/* --- cancelling --- */

typedef struct cancel {
    sl_http *victim;
    got slow;
    int ok_calls;
} cancel;

static void free_victim(sl_http *req, void *arg) {
    cancel *c = arg;
    c->ok_calls++;
    sl_http_free(c->victim); /* in flight on the wire by now */
    c->victim = NULL;
}

static void test_freed_request_in_flight_never_calls_back(void) {
    sl_instance *inst = make_instance();
    cancel c = {0};
    /* freed before the loop ever ran */
    sl_http *early = send_req(inst, "GET", "/slow", &c.slow);
    sl_http_free(early);
    /* freed while the server holds it (the /ok answer comes first) */
    c.victim = send_req(inst, "GET", "/slow", &c.slow);
    sl_http *ok = sl_http_new(inst, "GET", url("/big"));
    CHECK_INT(sl_http_send(ok, free_victim, &c), 0);
    run(inst); /* returns without waiting for /slow */
    CHECK_INT(c.ok_calls, 1);
    CHECK_INT(c.slow.calls, 0);
    CHECK(c.victim == NULL);
    sl_http_free(ok);
    free_instance(inst);
}

static void test_loop_freed_with_requests_in_flight(void) {
    sl_instance *inst = make_instance();
    got g = {0};
    sl_http *a = send_req(inst, "GET", "/slow", &g);
    sl_http *b = send_req(inst, "POST", "/slow", &g);
    for (int i = 0; i < 20; i++) uv_run(uv(inst), UV_RUN_NOWAIT); /* on the wire */
    sl_loop_free(inst->loop);
    inst->loop = NULL;
    CHECK_INT(g.calls, 0);
    CHECK_CONTAINS(sl_http_error(a), "cancelled");
    sl_http_free(a);
    sl_http_free(b);
    free_instance(inst);
}

static void test_bad_arguments_are_refused(void) {
    sl_instance no_loop = {0};
    got g = {0};
    CHECK(sl_http_new(NULL, "GET", "http://127.0.0.1/") == NULL);
    CHECK(sl_http_new(&no_loop, "G E T", "http://127.0.0.1/") == NULL);
    CHECK(sl_http_new(&no_loop, "GET", NULL) == NULL);
    sl_http *req = sl_http_new(&no_loop, "GET", "http://127.0.0.1/");
    CHECK(req != NULL);
    CHECK_INT(sl_http_header(req, "X-Bad", "a\r\nX-Injected: 1"), SL_EINVAL);
    CHECK_INT(sl_http_header(req, "X Bad", "a"), SL_EINVAL);
    CHECK_INT(sl_http_header(req, "X-Empty", ""), 0);
    CHECK_INT(sl_http_body(req, NULL, 3), SL_EINVAL);
    CHECK_INT(sl_http_send(req, record, &g), SL_EINVAL); /* no loop */
    CHECK_INT(sl_http_send(req, NULL, &g), SL_EINVAL);
    CHECK_INT(sl_http_status(req), 0);
    CHECK(sl_http_error(req) == NULL);
    sl_call call;
    sl_call_init(&call, NULL, NULL);
    CHECK_INT(sl_http_verdict(&call, req), SL_EINVAL);
    sl_http_free(req);
    sl_http_free(NULL);
    CHECK_INT(g.calls, 0);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    alarm(240); /* a hang fails the test instead of stalling the suite */
    /* the server and the client share this process's descriptors */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    server_start(&srv);

    test_get_and_post_carry_headers_and_bodies();
    test_only_the_last_responses_headers_are_kept();
    test_compressed_response_is_decoded();
    test_large_body_arrives_whole();
    test_thousand_requests_in_flight_on_one_loop();
    test_connections_are_kept_alive_and_reused();
    test_run_once_keeps_going_until_the_response();
    test_every_status_gets_its_verdict();
    test_error_body_is_quoted_short_and_on_a_character_boundary();
    test_total_timeout_is_a_retryable_transport_error();
    test_refused_connection_is_a_retryable_transport_error();
    test_hang_up_without_answer_is_a_transport_error();
    test_freed_request_in_flight_never_calls_back();
    test_loop_freed_with_requests_in_flight();
    test_bad_arguments_are_refused();

    server_stop(&srv);
    return check_done();
}
