/* http_server.c - the fake provider's HTTP/1.1 transport on libuv (see
 * http_server.h).
 *
 * One connection answers one request at a time: a pipelined request waits in
 * the input buffer until the reply before it has been handed to the socket,
 * so replies leave in request order without a queue of their own. Reading
 * goes on while a reply waits (a delay, a drip, a stall), so a client that
 * gives up and closes is noticed and its request ends; only a client that
 * piles megabytes of pipelined requests onto a busy connection is paused.
 * Each read lands in one buffer shared by every connection (the loop runs
 * one callback at a time) and only unparsed bytes are kept per connection,
 * so ten thousand idle connections cost little more than their sockets. */
#include "http_server.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define READ_CHUNK (64 * 1024)
#define PAUSE_AT (4 * 1024 * 1024) /* buffered bytes at which a busy connection stops reading */

struct conn;

struct hs_server {
    uv_tcp_t listener;
    uv_loop_t *loop;
    hs_handle_fn handle;
    hs_done_fn done;
    void *ud;
    struct conn *conns; /* open (not closing) connections */
    uint64_t unfreed;   /* connections whose handles have not all closed */
    int port;
    int closing;
    int listener_open;
    struct hs_stats stats;
    char rbuf[READ_CHUNK];
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* the pending reply's delay, then its drip */
    struct hs_server *srv;
    struct conn *prev, *next;
    char *in; /* received, not yet parsed */
    size_t len, cap;
    struct hs_reply reply; /* the reply waiting to go out while busy */
    size_t drip_pos;
    int handles;     /* open libuv handles: freed at 0 */
    unsigned served; /* requests parsed on this connection */
    unsigned busy : 1, closing : 1, doomed : 1, reading : 1, continue_sent : 1;
};

struct wreq {
    uv_write_t req;
    struct conn *c;
    char *head, *body; /* freed when written */
    void *token;
    int close_after;
    char byte; /* a drip's one byte */
};

static void process(struct conn *c);

const char *hs_reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 529: return "Overloaded";
    default: return "Unknown";
    }
}

const char *hs_header(const struct hs_request *req, const char *name, size_t *len) {
    size_t n = strlen(name);
    for (int i = 0; i < req->nheaders; i++) {
        const struct hs_header *h = &req->headers[i];
        if (h->name_len == n && strncasecmp(h->name, name, n) == 0) {
            if (len) *len = h->value_len;
            return h->value;
        }
    }
    return NULL;
}

/* ---- connection lifecycle ---- */

static void maybe_free_server(struct hs_server *srv) {
    if (srv->closing && !srv->listener_open && srv->unfreed == 0) free(srv);
}

static void on_conn_handle_closed(uv_handle_t *h) {
    struct conn *c = h->data;
    if (--c->handles > 0) return;
    struct hs_server *srv = c->srv;
    free(c->in);
    free(c);
    srv->unfreed--;
    maybe_free_server(srv);
}

static void drop_reply(struct conn *c) {
    struct hs_server *srv = c->srv;
    void *token = c->reply.token;
    free(c->reply.headers);
    free(c->reply.body);
    memset(&c->reply, 0, sizeof c->reply);
    c->busy = 0;
    if (token) srv->done(srv->ud, token);
}

static void conn_close(struct conn *c, int reset) {
    if (c->closing) return;
    struct hs_server *srv = c->srv;
    c->closing = 1;
    if (c->busy) drop_reply(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    srv->stats.open--;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    if (!reset || uv_tcp_close_reset(&c->tcp, on_conn_handle_closed) != 0)
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

static void on_written(uv_write_t *req, int status) {
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;
    free(w->head);
    free(w->body);
    if (w->token) c->srv->done(c->srv->ud, w->token);
    if (status < 0 || w->close_after) conn_close(c, 0);
    free(w);
}

/* Queues head and body (either may be NULL); both are freed once written.
 * token's done callback runs after that write, whatever its outcome. */
static void queue_write(struct conn *c, char *head, char *body, size_t body_len, void *token,
                        int close_after) {
    struct hs_server *srv = c->srv;
    struct wreq *w = calloc(1, sizeof *w);
    if (!w || c->closing) {
        free(w);
        free(head);
        free(body);
        if (token) srv->done(srv->ud, token);
        return;
    }
    w->c = c;
    w->head = head;
    w->body = body;
    w->token = token;
    w->close_after = close_after;
    uv_buf_t bufs[2];
    unsigned n = 0;
    if (head) bufs[n++] = uv_buf_init(head, (unsigned)strlen(head));
    if (body && body_len) bufs[n++] = uv_buf_init(body, (unsigned)body_len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, n, on_written);
    if (rc < 0) {
        w->req.handle = (uv_stream_t *)&c->tcp;
        on_written(&w->req, rc);
    }
}

static char *format_head(const struct hs_reply *r, size_t content_length) {
    const char *extra = r->headers ? r->headers : "";
    const char *ctype = r->content_type ? r->content_type : "application/json";
    char *head = NULL;
    if (asprintf(&head,
                 "HTTP/1.1 %d %s\r\nServer: sluice-fake-provider\r\nContent-Type: %s\r\nContent-Length: "
                 "%zu\r\nConnection: %s\r\n%s\r\n",
                 r->status, hs_reason(r->status), ctype, content_length, r->close ? "close" : "keep-alive",
                 extra) < 0)
        return NULL;
    return head;
}

static void on_drip(uv_timer_t *t) {
    struct conn *c = t->data;
    struct hs_reply *r = &c->reply;
    struct wreq *w = calloc(1, sizeof *w);
    if (!w) {
        conn_close(c, 0);
        return;
    }
    w->c = c;
    w->byte = r->body[c->drip_pos++];
    int last = c->drip_pos == r->body_len;
    if (last) {
        /* The request ends with its last byte: hand its token to that write. */
        w->token = r->token;
        w->close_after = r->close;
        r->token = NULL;
        uv_timer_stop(t);
        if (r->close) c->doomed = 1;
    }
    uv_buf_t buf = uv_buf_init(&w->byte, 1);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
    if (rc < 0) {
        w->req.handle = (uv_stream_t *)&c->tcp;
        on_written(&w->req, rc);
        return;
    }
    if (last) {
        drop_reply(c);
        process(c);
    }
}

/* Sends the pending reply as its mode says. Clears busy unless the reply
 * goes on (a drip) or the connection ends. */
static void deliver(struct conn *c) {
    struct hs_reply *r = &c->reply;
    switch (r->mode) {
    case HS_RESET:
    case HS_CLOSE: {
        int reset = r->mode == HS_RESET;
        drop_reply(c);
        conn_close(c, reset);
        return;
    }
    case HS_STALL: return; /* stays busy until the client closes */
    case HS_DRIP:
        if (r->body_len > 0) {
            char *head = format_head(r, r->body_len);
            if (!head) {
                conn_close(c, 0);
                return;
            }
            queue_write(c, head, NULL, 0, NULL, 0);
            c->drip_pos = 0;
            c->busy = 1;
            uv_timer_start(&c->timer, on_drip, r->drip_ms ? r->drip_ms : 1, r->drip_ms ? r->drip_ms : 1);
            return;
        }
        /* nothing to drip: send it whole */
        __attribute__((fallthrough));
    case HS_SEND:
    case HS_TRUNCATE: {
        int truncate = r->mode == HS_TRUNCATE;
        char *head = format_head(r, r->body_len);
        size_t send_len = truncate ? r->body_len / 2 : r->body_len;
        void *token = r->token;
        int close_after = truncate || r->close;
        char *body = r->body;
        free(r->headers);
        memset(r, 0, sizeof *r);
        c->busy = 0;
        if (close_after) c->doomed = 1;
        if (!head) {
            free(body);
            if (token) c->srv->done(c->srv->ud, token);
            conn_close(c, 0);
            return;
        }
        queue_write(c, head, body, send_len, token, close_after);
        return;
    }
    }
}

static void on_delay(uv_timer_t *t) {
    struct conn *c = t->data;
    deliver(c);
    if (!c->busy) process(c);
}

/* ---- request parsing ---- */

enum { P_MORE = 0, P_OK = 1, P_MORE_BODY = 2 }; /* other results are HTTP error statuses */

static int has_token(const char *v, size_t n, const char *tok) {
    size_t t = strlen(tok);
    for (size_t i = 0; i + t <= n; i++) {
        if (strncasecmp(v + i, tok, t) == 0 && (i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') &&
            (i + t == n || v[i + t] == ',' || v[i + t] == ' '))
            return 1;
    }
    return 0;
}

/* Walks a chunked body in p[0..n). Without out it measures: *total, and
 * *consumed through the final CRLF. With out it copies the data. */
static int dechunk(const char *p, size_t n, size_t *consumed, size_t *total, char *out) {
    size_t pos = 0, sum = 0;
    for (;;) {
        const char *eol = memmem(p + pos, n - pos, "\r\n", 2);
        if (!eol) return n - pos > 1024 ? 400 : P_MORE;
        size_t size = 0, digits = 0;
        const char *q = p + pos;
        for (; q < eol && isxdigit((unsigned char)*q); q++, digits++) {
            if (size > HS_MAX_BODY) return 413;
            size = size * 16 +
                   (size_t)(isdigit((unsigned char)*q) ? *q - '0' : (tolower((unsigned char)*q) - 'a' + 10));
        }
        if (digits == 0 || (q < eol && *q != ';' && *q != ' ')) return 400;
        pos = (size_t)(eol - p) + 2;
        if (size == 0) {
            for (;;) { /* trailers, up to the empty line */
                const char *e = memmem(p + pos, n - pos, "\r\n", 2);
                if (!e) return n - pos > HS_MAX_HEAD ? 431 : P_MORE;
                size_t line = (size_t)(e - (p + pos));
                pos += line + 2;
                if (line == 0) break;
            }
            *consumed = pos;
            *total = sum;
            return P_OK;
        }
        if (sum + size > HS_MAX_BODY) return 413;
        if (n - pos < size + 2) return P_MORE;
        if (p[pos + size] != '\r' || p[pos + size + 1] != '\n') return 400;
        if (out) memcpy(out + sum, p + pos, size);
        sum += size;
        pos += size + 2;
    }
}

/* Parses the request at the start of c->in. On P_OK, *used bytes make the
 * request and *owned is a body this call allocated (chunked), else NULL. */
static int parse(struct conn *c, struct hs_request *req, size_t *used, char **owned) {
    const char *p = c->in;
    size_t n = c->len;
    *owned = NULL;
    const char *end = memmem(p, n < HS_MAX_HEAD ? n : HS_MAX_HEAD, "\r\n\r\n", 4);
    if (!end) return n >= HS_MAX_HEAD ? 431 : P_MORE;
    size_t head_len = (size_t)(end - p) + 4;

    const char *eol = memmem(p, head_len, "\r\n", 2);
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    if (!sp1 || sp1 == p || (size_t)(sp1 - p) >= sizeof req->method) return 400;
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(eol - target));
    if (!sp2 || sp2 == target) return 400;
    size_t tlen = (size_t)(sp2 - target);
    if (tlen + 2 > sizeof req->path) return 414;
    const char *version = sp2 + 1;
    size_t vlen = (size_t)(eol - version);
    if (vlen == 8 && memcmp(version, "HTTP/1.1", 8) == 0)
        req->keep_alive = 1;
    else if (vlen == 8 && memcmp(version, "HTTP/1.0", 8) == 0)
        req->keep_alive = 0;
    else
        return 505;
    memcpy(req->method, p, (size_t)(sp1 - p));
    req->method[sp1 - p] = '\0';
    memcpy(req->path, target, tlen);
    req->path[tlen] = '\0';
    char *qm = strchr(req->path, '?');
    if (qm) {
        /* path\0query share the buffer: shift the query one place right. */
        size_t qlen = strlen(qm + 1);
        memmove(qm + 2, qm + 1, qlen + 1);
        *qm = '\0';
        req->query = qm + 2;
    } else {
        req->path[tlen + 1] = '\0'; /* the query: an empty string after the path */
        req->query = req->path + tlen + 1;
    }

    req->nheaders = 0;
    const char *line = eol + 2;
    while (line < end + 2) {
        const char *le = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        if (le == line) break;
        if (*line == ' ' || *line == '\t') return 400; /* obsolete line folding */
        const char *colon = memchr(line, ':', (size_t)(le - line));
        if (!colon || colon == line) return 400;
        for (const char *q = line; q < colon; q++)
            if (*q == ' ' || *q == '\t') return 400;
        if (req->nheaders == HS_MAX_HEADERS) return 431;
        const char *v = colon + 1, *ve = le;
        while (v < ve && (*v == ' ' || *v == '\t')) v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        struct hs_header *h = &req->headers[req->nheaders++];
        h->name = line;
        h->name_len = (size_t)(colon - line);
        h->value = v;
        h->value_len = (size_t)(ve - v);
        line = le + 2;
    }

    size_t vl;
    const char *v = hs_header(req, "connection", &vl);
    if (v && has_token(v, vl, "close"))
        req->keep_alive = 0;
    else if (v && has_token(v, vl, "keep-alive"))
        req->keep_alive = 1;

    const char *cl = hs_header(req, "content-length", &vl);
    size_t clen = 0;
    if (cl) {
        if (vl == 0 || vl > 12) return vl > 12 ? 413 : 400;
        for (size_t i = 0; i < vl; i++) {
            if (!isdigit((unsigned char)cl[i])) return 400;
            clen = clen * 10 + (size_t)(cl[i] - '0');
        }
        if (clen > HS_MAX_BODY) return 413;
    }
    const char *te = hs_header(req, "transfer-encoding", &vl);
    if (te) {
        if (cl) return 400;
        if (vl != 7 || strncasecmp(te, "chunked", 7) != 0) return 501;
        size_t consumed = 0, total = 0;
        int st = dechunk(p + head_len, n - head_len, &consumed, &total, NULL);
        if (st == P_MORE) return P_MORE_BODY;
        if (st != P_OK) return st;
        char *body = malloc(total + 1);
        if (!body) return 500;
        dechunk(p + head_len, n - head_len, &consumed, &total, body);
        body[total] = '\0';
        *owned = body;
        req->body = body;
        req->body_len = total;
        *used = head_len + consumed;
        return P_OK;
    }
    if (n - head_len < clen) return P_MORE_BODY;
    req->body = p + head_len;
    req->body_len = clen;
    *used = head_len + clen;
    return P_OK;
}

static void consume(struct conn *c, size_t n) {
    memmove(c->in, c->in + n, c->len - n);
    c->len -= n;
    if (c->len == 0 && c->cap > READ_CHUNK) {
        /* A large body came and went: give its buffer back. */
        free(c->in);
        c->in = NULL;
        c->cap = 0;
    }
}

static void reject(struct conn *c, int status) {
    struct hs_reply r = {.status = status, .close = 1};
    char *body = NULL;
    int n = asprintf(&body, "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\"}}",
                     hs_reason(status));
    if (n < 0) {
        conn_close(c, 0);
        return;
    }
    r.body = body;
    r.body_len = (size_t)n;
    c->reply = r;
    c->busy = 1;
    deliver(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    struct conn *c = h->data;
    *buf = uv_buf_init(c->srv->rbuf, sizeof c->srv->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    struct conn *c = s->data;
    if (nread < 0) {
        conn_close(c, 0);
        return;
    }
    if (nread == 0 || c->closing || c->doomed) return;
    if (c->len + (size_t)nread > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + (size_t)nread) cap *= 2;
        char *in = realloc(c->in, cap);
        if (!in) {
            conn_close(c, 0);
            return;
        }
        c->in = in;
        c->cap = cap;
    }
    memcpy(c->in + c->len, buf->base, (size_t)nread);
    c->len += (size_t)nread;
    if (c->busy && c->len >= PAUSE_AT && c->reading) {
        uv_read_stop(s);
        c->reading = 0;
    }
    process(c);
}

/* Answers every complete request in the buffer, one at a time, until one
 * has to wait (delay, drip, stall) or the bytes run out. */
static void process(struct conn *c) {
    struct hs_server *srv = c->srv;
    while (!c->busy && !c->closing && !c->doomed && c->len > 0) {
        size_t skip = 0; /* stray CRLFs between pipelined requests are allowed */
        while (skip < c->len && (c->in[skip] == '\r' || c->in[skip] == '\n')) skip++;
        if (skip) {
            consume(c, skip);
            continue;
        }
        struct hs_request req;
        size_t used = 0;
        char *owned = NULL;
        int st = parse(c, &req, &used, &owned);
        if (st == P_MORE) break;
        if (st == P_MORE_BODY) {
            size_t vl;
            const char *e = hs_header(&req, "expect", &vl);
            if (e && vl == 12 && strncasecmp(e, "100-continue", 12) == 0 && !c->continue_sent) {
                c->continue_sent = 1;
                queue_write(c, strdup("HTTP/1.1 100 Continue\r\n\r\n"), NULL, 0, NULL, 0);
            }
            break;
        }
        if (st != P_OK) {
            reject(c, st);
            break;
        }
        struct hs_reply r = {.status = 200};
        req.seq = c->served++;
        srv->handle(srv->ud, &req, &r);
        free(owned);
        consume(c, used);
        c->continue_sent = 0;
        if (!req.keep_alive) r.close = 1;
        c->reply = r;
        c->busy = 1;
        if (r.mode == HS_STALL) break;
        if (r.delay_ms > 0) {
            uv_timer_start(&c->timer, on_delay, r.delay_ms, 0);
            break;
        }
        deliver(c);
    }
    if (!c->closing && !c->reading && !(c->busy && c->len >= PAUSE_AT)) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        c->reading = 1;
    }
}

static void on_connection(uv_stream_t *listener, int status) {
    struct hs_server *srv = listener->data;
    if (status < 0 || srv->closing) return;
    struct conn *c = calloc(1, sizeof *c);
    if (!c) return;
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    srv->unfreed++;
    c->next = srv->conns;
    if (c->next) c->next->prev = c;
    srv->conns = c;
    srv->stats.open++;
    srv->stats.total++;
    if (srv->stats.open > srv->stats.peak) srv->stats.peak = srv->stats.open;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c, 0);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    c->reading = 1;
}

/* ---- the server ---- */

int hs_server_start(struct hs_server **out, uv_loop_t *loop, const char *host, int port, int backlog,
                    hs_handle_fn handle, hs_done_fn done, void *ud) {
    struct hs_server *srv = calloc(1, sizeof *srv);
    if (!srv) return UV_ENOMEM;
    srv->loop = loop;
    srv->handle = handle;
    srv->done = done;
    srv->ud = ud;
    struct sockaddr_in addr;
    int rc = uv_ip4_addr(host, port, &addr);
    if (rc == 0) rc = uv_tcp_init(loop, &srv->listener);
    if (rc != 0) {
        free(srv);
        return rc;
    }
    srv->listener.data = srv;
    srv->listener_open = 1;
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&srv->listener, backlog, on_connection);
    if (rc == 0) {
        struct sockaddr_in bound;
        int len = sizeof bound;
        rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len);
        srv->port = ntohs(bound.sin_port);
    }
    if (rc != 0) {
        hs_server_close(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

int hs_server_port(const struct hs_server *srv) { return srv->port; }

void hs_server_stats(const struct hs_server *srv, struct hs_stats *out) { *out = srv->stats; }

static void on_listener_closed(uv_handle_t *h) {
    struct hs_server *srv = h->data;
    srv->listener_open = 0;
    maybe_free_server(srv);
}

void hs_server_close(struct hs_server *srv) {
    if (srv->closing) return;
    srv->closing = 1;
    while (srv->conns) conn_close(srv->conns, 0);
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
}
