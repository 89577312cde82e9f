/* http.c - the SDK's asynchronous HTTP client (sluice/http.h): libcurl's
 * multi interface driven by the loop.
 *
 * One curl multi handle per loop, made on first use and kept as the loop's
 * SL_LOOP_HTTP service, so every io plugin shares one connection cache:
 * connections are kept alive and reused, HTTP/2 streams multiplexed. curl
 * tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to wake
 * it (CURLMOPT_TIMERFUNCTION); libuv does the waiting, and the loop thread
 * can keep thousands of requests in flight. The rules that keep this sound
 * (DESIGN.md, "libcurl on libuv"):
 *   - one uv_timer for the whole multi handle;
 *   - one uv_poll per socket, made when curl first mentions the socket,
 *     remembered with curl_multi_assign, stopped as soon as curl says
 *     CURL_POLL_REMOVE (curl closes the socket right after) and freed only
 *     in its uv_close callback;
 *   - a poll that fails (status < 0) is reported as CURL_CSELECT_ERR;
 *   - finished transfers are collected (curl_multi_info_read) after every
 *     socket action and timer, and each request's callback runs from there,
 *     outside any curl callback, so it may free requests or send new ones.
 *
 * The loop must keep running while requests are in flight and stop when
 * none are: the timer and the polls are referenced only while at least one
 * request is in flight (curl keeps idle connections open in its cache, and
 * they must not hold the loop).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "guard.h"
#include "instance.h"
#include "loop.h"
#include "http_request.h"
#include "pool.h"
#include "sluice/http.h"

#define DEFAULT_CONNECT_MS 10000
#define DEFAULT_TOTAL_MS 120000
/* A response body larger than this is cut off unless the request allows
 * more: a provider answering 100 MB to a 512-token request must not fill
 * the memory budget (issue 17). */
#define DEFAULT_MAX_RESPONSE ((size_t)64 << 20)
/* While requests are in flight the multi's timer always runs, at least at
 * this period: curl always has a deadline for a running transfer, so this
 * only guards the loop against ever sleeping with work outstanding. */
#define WATCHDOG_MS 1000

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static void free_handle(uv_handle_t *h) { free(h->data); }

/* --- the multi handle on the loop --- */

static void set_ref(http_multi *m, int on) {
    void (*f)(uv_handle_t *) = on ? uv_ref : uv_unref;
    f((uv_handle_t *)&m->timer);
    for (sock_poll *p = m->polls; p; p = p->next) f((uv_handle_t *)&p->poll);
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

__attribute__((format(printf, 2, 3))) static void set_error(sl_http *req, const char *fmt, ...) {
    char buf[CURL_ERROR_SIZE + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(req->error);
    req->error = xstrdup(buf);
    if (!req->error) req->oom = 1;
}

/* The transport error in words: curl's own message where it has one, with
 * timeouts and refusals said plainly. */
static void describe_error(sl_http *req, CURLcode res) {
    const char *detail = req->errbuf[0] ? req->errbuf : curl_easy_strerror(res);
    if (req->too_big) {
        set_error(req,
                  "response larger than %zu bytes: cut off (a provider answering far more than was asked)",
                  req->max_resp ? req->max_resp : DEFAULT_MAX_RESPONSE);
    } else if (req->oom) {
        set_error(req, "out of memory for the response (%zu bytes so far)", req->resp_len);
    } else if (res == CURLE_OPERATION_TIMEDOUT) {
        int connecting = strstr(detail, "Resolving timed out") || strstr(detail, "Connection timed out");
        int64_t ms = connecting && req->connect_ms < req->total_ms ? req->connect_ms : req->total_ms;
        set_error(req, "%stimed out after %lld ms", connecting ? "connect " : "", (long long)ms);
    } else if (res == CURLE_COULDNT_CONNECT) {
        long os = 0;
        curl_easy_getinfo(req->easy, CURLINFO_OS_ERRNO, &os);
        if (os == ECONNREFUSED)
            set_error(req, "connection refused (%s)", detail);
        else
            set_error(req, "cannot connect (%s)", detail);
    } else if (res == CURLE_PEER_FAILED_VERIFICATION) {
        /* the fix is in the INI: say which option (a plugin's stage, or
         * [sluice] fetch_ca_file for documents: source.c's requests have
         * an instance of their own with no plugin) */
        char option[128], hint[4400];
        if (req->inst && req->inst->desc)
            snprintf(option, sizeof option, "[%s] ca_file", req->inst->name);
        else
            snprintf(option, sizeof option, "[sluice] fetch_ca_file");
        sl_http_cert_hint(hint, sizeof hint, option, req->inst ? req->inst->stage.ca_file : NULL);
        set_error(req, "%s (%s)", detail, hint);
    } else {
        set_error(req, "%s", detail);
    }
    /* lower-case the first letter: it reads as part of a sentence */
    if (req->error && req->error[0] >= 'A' && req->error[0] <= 'Z' && req->error[1] >= 'a' &&
        req->error[1] <= 'z')
        req->error[0] = (char)(req->error[0] - 'A' + 'a');
}

static void detach(sl_http *req) {
    http_multi *m = req->m;
    curl_multi_remove_handle(m->multi, req->easy);
    if (req->prev)
        req->prev->next = req->next;
    else
        m->running = req->next;
    if (req->next) req->next->prev = req->prev;
    req->prev = req->next = NULL;
    req->m = NULL;
    if (--m->inflight == 0) set_ref(m, 0);
}

/* The request is done: its transfer's result and, when whole, its status. */
static void end_with(sl_http *req, CURLcode res, long status) {
    req->state = REQ_DONE;
    req->result = res;
    if (res == CURLE_OK && !req->oom) {
        req->status = status;
    } else {
        req->status = 0; /* a half-received response is no response */
        describe_error(req, res);
    }
}

static void finish(sl_http *req, CURLcode res) {
    detach(req);
    long status = 0;
    if (res == CURLE_OK && !req->oom) {
        curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
        if (req->inst) req->inst->last_http_status = status;
    }
    if (req->inst) { /* for the report: connections opened, answers over HTTP/2 */
        long opened = 0, version = 0;
        if (curl_easy_getinfo(req->easy, CURLINFO_NUM_CONNECTS, &opened) == CURLE_OK && opened > 0)
            atomic_fetch_add_explicit(&req->inst->connects, (uint64_t)opened, memory_order_relaxed);
        if (status && curl_easy_getinfo(req->easy, CURLINFO_HTTP_VERSION, &version) == CURLE_OK) {
            if (version == CURL_HTTP_VERSION_2_0)
                atomic_fetch_add_explicit(&req->inst->http2_answers, 1, memory_order_relaxed);
            req->inst->last_http_version = version == CURL_HTTP_VERSION_2_0   ? 20
                                           : version == CURL_HTTP_VERSION_1_0 ? 10
                                           : version == CURL_HTTP_VERSION_1_1 ? 11
#ifdef CURL_HTTP_VERSION_3
                                           : version == CURL_HTTP_VERSION_3 ? 30
#endif
                                                                            : 0;
        }
    }
    end_with(req, res, status);
}

/* A response handed to a pool thread: its callback runs there (decoding a
 * large body off the loop thread), the task itself is freed on the loop. */
typedef struct answer_task {
    sl_task task;
    sl_http *req;
} answer_task;

/* The plugin's answer callback, marked as its call for a crash report (guard.h). */
static void call_back(sl_http *req) {
    sl_guard_call gc;
    sl_guard_enter_callback(&gc, req->inst, "an HTTP answer callback");
    req->cb(req, req->arg);
    sl_guard_leave(&gc);
}

static void answer_run(sl_task *t, int thread) {
    (void)thread;
    call_back(((answer_task *)t)->req);
}

static void answer_done(sl_task *t) { free(t); }

static void answer(sl_http *req) {
    sl_pool *pool = req->on_pool ? sl_loop_service(req->inst->loop, SL_LOOP_POOL) : NULL;
    answer_task *t = pool ? calloc(1, sizeof *t) : NULL;
    if (!t) { /* no pool (a synchronous call) or no memory: on the loop */
        call_back(req);
        return;
    }
    t->req = req;
    t->task.priority = SL_POOL_PRIORITIES - 1; /* an answer ends a unit: before new work */
    t->task.run = answer_run;
    t->task.done = answer_done;
    sl_pool_submit(pool, &t->task);
}

/* Hands every finished transfer to its callback. One message at a time: a
 * callback that frees another finished request removes its message too. */
static void drain(http_multi *m) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURLcode res = msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        sl_http *req = (sl_http *)priv;
        finish(req, res); /* msg is invalid from here */
        answer(req);
    }
}

static void timer_fired(uv_timer_t *t) {
    http_multi *m = t->data;
    int running;
    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain(m);
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp) {
    http_multi *m = userp;
    if (timeout_ms >= 0)
        uv_timer_start(&m->timer, timer_fired, (uint64_t)timeout_ms, 0);
    else if (m->inflight)
        uv_timer_start(&m->timer, timer_fired, WATCHDOG_MS, 0);
    else
        uv_timer_stop(&m->timer);
    return 0;
}

static void poll_fired(uv_poll_t *h, int status, int events) {
    sock_poll *p = h->data;
    http_multi *m = p->m;
    int flags = status < 0 ? CURL_CSELECT_ERR
                           : (events & UV_READABLE ? CURL_CSELECT_IN : 0) |
                                 (events & UV_WRITABLE ? CURL_CSELECT_OUT : 0);
    int running;
    /* may close p (CURL_POLL_REMOVE); its memory lives until uv_close's callback */
    curl_multi_socket_action(m->multi, p->fd, flags, &running);
    drain(m);
}

static void poll_close(http_multi *m, sock_poll *p) {
    uv_poll_stop(&p->poll); /* before curl closes the socket */
    if (p->prev)
        p->prev->next = p->next;
    else
        m->polls = p->next;
    if (p->next) p->next->prev = p->prev;
    uv_close((uv_handle_t *)&p->poll, free_handle);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
    http_multi *m = userp;
    sock_poll *p = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (p) {
            poll_close(m, p);
            curl_multi_assign(m->multi, s, NULL);
        }
        return 0;
    }
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p) return -1;
        if (uv_poll_init_socket(m->uv, &p->poll, s) != 0) {
            free(p);
            return -1; /* curl fails the transfers rather than waiting forever */
        }
        p->poll.data = p;
        p->fd = s;
        p->m = m;
        p->next = m->polls;
        if (m->polls) m->polls->prev = p;
        m->polls = p;
        if (!m->inflight) uv_unref((uv_handle_t *)&p->poll);
        curl_multi_assign(m->multi, s, p);
    }
    int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    if (ev)
        uv_poll_start(&p->poll, ev, poll_fired);
    else
        uv_poll_stop(&p->poll);
    return 0;
}

/* PIPEWAIT stays off for plain http: with it, curl 7.88 holds every new
 * request to a plain-HTTP/1.1 host until the first response has arrived (it
 * waits to learn whether the connection can multiplex), which on a 30 s LLM
 * call serialises the whole burst. Over TLS the handshake's ALPN answers
 * that, so https requests wait (sl_http_new): a burst to an HTTP/2 host
 * shares the first connection, and one to an HTTP/1.1-only host opens its
 * connections as soon as the first handshake is done (100 documents through
 * tls_front.mjs --http1-only: the same 200 connections and wall time with
 * PIPEWAIT as without). */

/* The loop's service destructor, called by sl_loop_free before the loop's
 * last uv_run: requests still in flight are dropped (no callback), curl
 * closes its connections (telling us CURL_POLL_REMOVE for watched ones), and
 * the handles close; the memory goes in their close callbacks. */
static void multi_free(void *svc) {
    http_multi *m = svc;
    while (m->running) {
        sl_http *req = m->running;
        detach(req);
        req->state = REQ_DONE;
        set_error(req, "cancelled: the loop was closed");
    }
    curl_multi_cleanup(m->multi);
    m->multi = NULL;
    while (m->polls) poll_close(m, m->polls);
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, free_handle); /* frees m */
}

static http_multi *multi_get(sl_loop *loop) {
    http_multi *m = sl_loop_service(loop, SL_LOOP_HTTP);
    if (m) return m;
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) return NULL;
    m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->multi = curl_multi_init();
    if (!m->multi) {
        free(m);
        return NULL;
    }
    m->uv = sl_loop_uv(loop);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    /* Streams one HTTP/2 connection takes at once (the server's SETTINGS
     * still cap it): curl's default is 100, and curl 7.88 (Debian 12) then
     * opens a new connection for every request over that, not one more
     * connection (curl PR 10456, in 8.0). 100 documents through an HTTP/2
     * TLS front (tests/providers-e2e/tls_front.mjs): 300 LLM requests over
     * 41-79 connections with 100, over 1 with 1,000. */
    curl_multi_setopt(m->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, 1000L);
    /* No per-host connection cap: how many calls are in flight is the core's
     * decision (concurrency, rate limits), and an HTTP/1.1 server needs a
     * connection per call. The price, in curl 7.88: choosing a connection
     * walks the host's connection list, about 0.2 ms per request when 10,000
     * HTTP/1.1 connections are open to one host (HTTP/2 hosts need a
     * hundredth as many). */
    uv_timer_init(m->uv, &m->timer);
    m->timer.data = m;
    uv_unref((uv_handle_t *)&m->timer);
    sl_loop_set_service(loop, SL_LOOP_HTTP, m, multi_free);
    return m;
}

/* --- a request --- */

/* What libcurl holds for a transfer, from its first send until the handle
 * is cleaned up: its receive buffer (CURLOPT_BUFFERSIZE, 16 KB by default)
 * and, for a body of 64 KB or more (sent by curl's read callback, not
 * within the request's first buffer), its upload buffer, which
 * sl_http_new sets to the smallest curl takes. About 1,000 requests out at
 * once held 30 MB and more of it, counted nowhere before. */
#define CURL_RECV_BUFFER 16384
#define CURL_UPLOAD_BUFFER 16384
#define CURL_INITIAL_POST 65536

static size_t curl_held(const sl_http *req) {
    if (!req->sent) return 0;
    return CURL_RECV_BUFFER + (req->body_len >= CURL_INITIAL_POST ? CURL_UPLOAD_BUFFER : 0);
}

/* What the request holds (its body, its response buffer and curl's
 * buffers) into the run's memory meter. */
static void meter(sl_http *req) {
    long long now = req->state == REQ_FREED ? 0 : (long long)(req->body_len + req->resp_cap + curl_held(req));
    if (now == req->metered || !req->inst) return;
    sl_meter_add(req->inst->loop, now - req->metered);
    req->metered = now;
}

static size_t max_response(const sl_http *req) {
    return req->max_resp ? req->max_resp : DEFAULT_MAX_RESPONSE;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
    sl_http *req = ud;
    size_t len = size * n;
    if (req->resp_len + len > max_response(req)) {
        req->too_big = 1;
        return 0; /* aborts the transfer */
    }
    if (req->resp_len + len + 1 > req->resp_cap) {
        size_t cap = req->resp_cap ? req->resp_cap : 4096;
        while (cap < req->resp_len + len + 1) cap *= 2;
        char *p = realloc(req->resp, cap);
        if (!p) {
            req->oom = 1;
            return 0; /* aborts the transfer */
        }
        req->resp = p;
        req->resp_cap = cap;
        meter(req);
    }
    memcpy(req->resp + req->resp_len, data, len);
    req->resp_len += len;
    req->resp[req->resp_len] = '\0';
    return len;
}

/* Called by libcurl each time it is about to send the request, a resend
 * included: when a reused connection turns out dead before any answer,
 * libcurl sends the request again on a fresh one by itself. The provider
 * may well have read the first one (a server that reads a request and then
 * drops the connection), so every send counts: the run's report adds the
 * resends to the provider's requests and to its rpm window (throttle.c).
 * Counting keeps libcurl's resend, which is right for the usual case (an
 * idle connection closed by the server as we reused it); sluice cannot
 * tell the two apart, and a request it cannot show was unseen is counted. */
#if LIBCURL_VERSION_NUM >= 0x075000
static int on_prereq(void *ud, char *remote_ip, char *local_ip, int remote_port, int local_port) {
    (void)remote_ip, (void)local_ip, (void)remote_port, (void)local_port;
    sl_http *req = ud;
    if (req->sends++ && req->inst) atomic_fetch_add_explicit(&req->inst->resends, 1, memory_order_relaxed);
    return CURL_PREREQFUNC_OK;
}
#endif

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Keeps the headers of the last response only: a status line (after a
 * 100 Continue, a 103 Early Hints or a proxy's CONNECT) starts over. */
static size_t on_header(char *line, size_t size, size_t n, void *ud) {
    sl_http *req = ud;
    size_t len = size * n;
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        req->hlen = 0;
        req->resp_len = 0;
        if (req->resp) req->resp[0] = '\0';
        return len;
    }
    /* A NUL inside a header (no valid response has one; curl passes it on)
     * would split its "name\0value\0" in two and send the lookup past the
     * buffer's end (found by fuzz_http_response): such a line is dropped. */
    if (memchr(line, '\0', len)) return len;
    const char *colon = memchr(line, ':', len);
    if (!colon) return len; /* the blank line that ends the headers */
    size_t nlen = (size_t)(colon - line);
    while (nlen && is_ws(line[nlen - 1])) nlen--;
    const char *v = colon + 1, *end = line + len;
    while (v < end && is_ws(*v)) v++;
    while (end > v && is_ws(end[-1])) end--;
    size_t vlen = (size_t)(end - v);
    if (!nlen) return len;
    /* a body of known length gets a buffer of that length, not the next
     * power of two: what a response holds is counted in the memory budget */
    if (nlen == 14 && strncasecmp(line, "Content-Length", 14) == 0 && vlen && vlen < 12) {
        char num[16];
        memcpy(num, v, vlen);
        num[vlen] = '\0';
        char *e;
        unsigned long long cl = strtoull(num, &e, 10);
        if (*e == '\0') {
            if (cl > max_response(req)) {
                req->too_big = 1; /* said up front: not a byte of it is kept */
                return 0;
            }
            char *p = cl + 1 > req->resp_cap ? realloc(req->resp, (size_t)cl + 1) : NULL;
            if (p) {
                req->resp = p;
                req->resp_cap = (size_t)cl + 1;
                meter(req);
            }
        }
    }
    size_t need = req->hlen + nlen + vlen + 2;
    if (need > req->hcap) {
        size_t cap = req->hcap ? req->hcap : 1024;
        while (cap < need) cap *= 2;
        char *p = realloc(req->hbuf, cap);
        if (!p) {
            req->oom = 1;
            return 0;
        }
        req->hbuf = p;
        req->hcap = cap;
    }
    char *o = req->hbuf + req->hlen;
    memcpy(o, line, nlen);
    o[nlen] = '\0';
    memcpy(o + nlen + 1, v, vlen);
    o[nlen + 1 + vlen] = '\0';
    req->hlen = need;
    return len;
}

size_t sl_http_take_header(sl_http *req, char *line, size_t len) { return on_header(line, 1, len, req); }

size_t sl_http_take_body(sl_http *req, char *data, size_t len) { return on_body(data, 1, len, req); }

void sl_http_take_end(sl_http *req, long status, int aborted) {
    end_with(req, aborted ? CURLE_WRITE_ERROR : CURLE_OK, status);
}

/* "host/path" from a URL: user:password@ and ?query (API keys live there
 * sometimes) are left out, and it is kept short. */
char *sl_http_url_where(const char *url) {
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t alen = strcspn(p, "/?#");
    const char *host = p;
    for (const char *q = p; q < p + alen; q++)
        if (*q == '@') host = q + 1;
    int hlen = (int)(p + alen - host);
    const char *path = p + alen;
    int plen = *path == '/' ? (int)strcspn(path, "?#") : 0;
    if (hlen > 100) hlen = 100;
    if (plen > 100) plen = 100;
    char *w = malloc((size_t)hlen + (size_t)plen + 1);
    if (w) snprintf(w, (size_t)hlen + (size_t)plen + 1, "%.*s%.*s", hlen, host, plen, path);
    return w;
}

static int token(const char *s) {
    if (!s || !*s) return 0;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 127 || strchr("()<>@,;:\\\"/[]?={}", *s)) return 0;
    return 1;
}

int sl_http_ca_file_check(const char *path, char *err, size_t errlen) {
    if (!path || !*path) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* a bundle may open with comments or text; the first 1 MB is plenty */
    static const char mark[] = "-----BEGIN CERTIFICATE-----";
    char buf[4096 + sizeof mark];
    size_t have = 0, seen = 0;
    bool found = false;
    while (!found && seen < (1u << 20)) {
        size_t n = fread(buf + have, 1, sizeof buf - 1 - have, f);
        if (n == 0) break;
        have += n;
        seen += n;
        if (memmem(buf, have, mark, sizeof mark - 1)) found = true;
        /* keep the tail a mark could straddle */
        size_t keep = have < sizeof mark ? have : sizeof mark - 1;
        memmove(buf, buf + have - keep, keep);
        have = keep;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: cannot read it", path);
        return -1;
    }
    if (!found) {
        snprintf(err, errlen,
                 "%s holds no PEM certificate (no \"%s\" line); give the CA's certificate in PEM form", path,
                 mark);
        return -1;
    }
    return 0;
}

sl_http *sl_http_new(sl_instance *inst, const char *method, const char *url) {
    if (!inst || !token(method) || !url) return NULL;
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) return NULL;
    sl_http *req = calloc(1, sizeof *req);
    if (!req) return NULL;
    req->inst = inst;
    req->method = xstrdup(method);
    req->where = sl_http_url_where(url);
    req->easy = curl_easy_init();
    if (!req->method || !req->where || !req->easy ||
        curl_easy_setopt(req->easy, CURLOPT_URL, url) != CURLE_OK) {
        sl_http_free(req);
        return NULL;
    }
    CURL *e = req->easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, req);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    /* [stage] ca_file: a private CA besides the system's (the default CA
     * path stays); checked readable and PEM when the instance started */
    if (inst->stage.ca_file && *inst->stage.ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, inst->stage.ca_file);
    /* https: a request that finds a connection to its host still in its
     * TLS handshake waits for it (ALPN then says whether it multiplexes)
     * instead of opening one of its own; see PIPEWAIT below for plain http */
    if (strncasecmp(url, "https://", 8) == 0) curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* every encoding curl decodes */
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);   /* long LLM calls behind NATs */
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    /* 16 KB, not 64: a large body goes out in four sends instead of one,
     * and each request out holds 48 KB less (see curl_held) */
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, (long)CURL_UPLOAD_BUFFER);
#if LIBCURL_VERSION_NUM >= 0x075000
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, req);
#endif
    /* Redirects are not followed: curl would carry custom headers such as
     * x-api-key to whatever host the Location names. */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    return req;
}

int sl_http_header(sl_http *req, const char *name, const char *value) {
    if (!req || req->state == REQ_RUNNING || !token(name) || !value || strpbrk(value, "\r\n"))
        return SL_EINVAL;
    size_t nl = strlen(name), vl = strlen(value);
    char *line = malloc(nl + vl + 3);
    if (!line) return SL_ENOMEM;
    /* "Name;" is curl's way to send a header with an empty value */
    if (vl)
        snprintf(line, nl + vl + 3, "%s: %s", name, value);
    else
        snprintf(line, nl + 2, "%s;", name);
    struct curl_slist *l = curl_slist_append(req->headers, line);
    /* the line may hold an API key: wipe our copy (curl keeps its own) */
    memset(line, 0, nl + vl + 3);
    free(line);
    if (!l) return SL_ENOMEM;
    req->headers = l;
    return 0;
}

int sl_http_body_give(sl_http *req, char *data, size_t len, size_t cap) {
    if (!req || req->state == REQ_RUNNING || !data || cap <= len) {
        free(data);
        return SL_EINVAL;
    }
    data[len] = '\0';
    free(req->body);
    req->body = data;
    req->body_len = len;
    meter(req);
    return 0;
}

int sl_http_body(sl_http *req, const char *data, size_t len) {
    if (!req || req->state == REQ_RUNNING || (!data && len)) return SL_EINVAL;
    char *b = malloc(len + 1);
    if (!b) return SL_ENOMEM;
    if (len) memcpy(b, data, len);
    return sl_http_body_give(req, b, len, len + 1);
}

int sl_http_timeouts(sl_http *req, int64_t connect_ms, int64_t total_ms) {
    if (!req || req->state == REQ_RUNNING || connect_ms < 0 || total_ms < 0) return SL_EINVAL;
    req->connect_ms = connect_ms;
    req->total_ms = total_ms;
    return 0;
}

static void reset_response(sl_http *req) {
    req->status = 0;
    req->result = CURLE_OK;
    free(req->error);
    req->error = NULL;
    req->resp_len = 0;
    if (req->resp) req->resp[0] = '\0';
    req->hlen = 0;
    req->oom = 0;
    req->too_big = 0;
    req->errbuf[0] = '\0';
    req->sends = 0;
}

/* Puts req (set up by sl_http_send) in flight on the loop's multi handle. */
static int start_transfer(sl_http *req, http_multi *m) {
    req->m = m;
    req->state = REQ_RUNNING;
    req->sent = 1;
    meter(req);
    req->next = m->running;
    if (m->running) m->running->prev = req;
    m->running = req;
    if (m->inflight++ == 0) set_ref(m, 1);
    if (curl_multi_add_handle(m->multi, req->easy) != CURLM_OK) {
        /* detach's remove_handle on a handle never added is harmless */
        detach(req);
        req->state = REQ_NEW;
        return SL_ENOMEM;
    }
    return 0;
}

/* A request sent from a pool thread, on the loop now: started, or failed
 * through its callback (its sender has returned long ago). */
static void send_posted(sl_post *p) {
    sl_http *req = (sl_http *)((char *)p - offsetof(sl_http, send_post));
    /* The body, built on the pool thread, moves into memory of the loop
     * thread's: it lives as long as the transfer, and bodies kept in the
     * pool threads' malloc arenas until then left those arenas with 20 to
     * 40 MB more RSS (3,000 documents with providers: 394-422 MB against
     * 372-381 MB, interleaved runs). One memcpy here, none on the pool
     * (sl_post_json gives the body rather than copying it). */
    if (req->body_len) {
        char *b = malloc(req->body_len + 1);
        if (b) {
            memcpy(b, req->body, req->body_len + 1);
            free(req->body);
            req->body = b;
            curl_easy_setopt(req->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
            curl_easy_setopt(req->easy, CURLOPT_POSTFIELDS, b);
        }
    }
    http_multi *m = multi_get(req->inst->loop);
    if (m && start_transfer(req, m) == 0) return;
    end_with(req, CURLE_OUT_OF_MEMORY, 0);
    set_error(req, "cannot start the request: out of memory");
    answer(req);
}

int sl_http_send(sl_http *req, sl_http_cb cb, void *arg) {
    if (!req || !cb || req->state == REQ_RUNNING || !req->inst->loop) return SL_EINVAL;
    /* on the loop thread the multi handle is made (or found) now, so that a
     * failure is the caller's return value */
    int here = sl_loop_is_current(req->inst->loop);
    http_multi *m = here ? multi_get(req->inst->loop) : NULL;
    if (here && !m) return SL_ENOMEM;
    CURL *e = req->easy;
    reset_response(req);
    if (!req->connect_ms) req->connect_ms = DEFAULT_CONNECT_MS;
    if (!req->total_ms) req->total_ms = DEFAULT_TOTAL_MS;
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->total_ms);
    int post = strcmp(req->method, "POST") == 0;
    if (req->body || post) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, post ? NULL : req->method);
        /* no 100-continue round trip (and no 1 s stall on servers that
         * never answer it): APIs take the body or refuse it after. */
        if (!req->no_expect) {
            struct curl_slist *l = curl_slist_append(req->headers, "Expect:");
            if (!l) return SL_ENOMEM;
            req->headers = l;
            req->no_expect = 1;
        }
    } else if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);
    req->cb = cb;
    req->arg = arg;
    if (here) return start_transfer(req, m);
    /* from a pool thread (SL_PLUGIN_SEND_OFF_LOOP): the easy handle is set
     * up, and the loop thread, which owns the multi handle, starts it. In
     * flight from now on for the caller: no setter may change it. */
    req->state = REQ_RUNNING;
    req->send_post.fn = send_posted;
    sl_loop_post(req->inst->loop, &req->send_post);
    return 0;
}

long sl_http_status(const sl_http *req) { return req ? req->status : 0; }

const char *sl_http_response_body(const sl_http *req, size_t *len) {
    if (len) *len = req && req->resp ? req->resp_len : 0;
    return req && req->resp ? req->resp : "";
}

const char *sl_http_response_header(const sl_http *req, const char *name) {
    if (!req || !name) return NULL;
    const char *found = NULL;
    for (size_t o = 0; o < req->hlen;) {
        const char *n = req->hbuf + o, *v = n + strlen(n) + 1;
        if (strcasecmp(n, name) == 0) found = v; /* last one wins */
        o = (size_t)(v + strlen(v) + 1 - req->hbuf);
    }
    return found;
}

const char *sl_http_error(const sl_http *req) { return req && req->state == REQ_DONE ? req->error : NULL; }

int sl_http_max_response(sl_http *req, size_t bytes) {
    if (!req || req->state == REQ_RUNNING) return SL_EINVAL;
    req->max_resp = bytes;
    return 0;
}

int sl_http_answer_on_pool(sl_http *req) {
    if (!req || req->state == REQ_RUNNING) return SL_EINVAL;
    req->on_pool = 1;
    return 0;
}

static void free_posted(sl_post *p) { sl_http_free((sl_http *)((char *)p - offsetof(sl_http, post))); }

void sl_http_free(sl_http *req) {
    if (!req) return;
    /* from a pool thread (an answer decoded there): curl's handle is cleaned
     * up on the loop thread, which owns the multi handle and its caches */
    if (req->inst && req->inst->loop && !sl_loop_is_current(req->inst->loop)) {
        req->post.fn = free_posted;
        sl_loop_post(req->inst->loop, &req->post);
        return;
    }
    if (req->m) detach(req); /* cancelled: no callback */
    req->state = REQ_FREED;
    meter(req);
    if (req->easy) curl_easy_cleanup(req->easy);
    curl_slist_free_all(req->headers);
    free(req->method);
    free(req->where);
    free(req->body);
    free(req->error);
    free(req->resp);
    free(req->hbuf);
    free(req);
}
