/* http_server.h - a small HTTP/1.1 server on libuv, the transport of the fake
 * provider (fake_provider.c). It knows nothing of LLM APIs: it parses
 * requests (keep-alive, pipelining answered in order, Content-Length or
 * chunked bodies, Expect: 100-continue), hands each one to a callback, and
 * delivers the reply the way the callback asks: at once, after a delay, one
 * byte at a time, cut short, as a connection reset, or never.
 *
 * Lifecycle as in libuv: hs_server_start, then hs_server_close from any
 * callback on the loop; the loop ends once every connection has closed. */
#ifndef FAKE_HTTP_SERVER_H
#define FAKE_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HS_MAX_HEADERS 64
#define HS_MAX_HEAD (64 * 1024)        /* request line and headers */
#define HS_MAX_BODY (64 * 1024 * 1024) /* a larger body gets 413 */

struct hs_header {
    const char *name; /* as sent; compare case-insensitively */
    size_t name_len;
    const char *value; /* surrounding spaces trimmed */
    size_t value_len;
};

/* A parsed request. Every pointer lives until the handler returns. */
struct hs_request {
    char method[16];
    char path[2048];   /* target without the query string */
    const char *query; /* after '?', or "" */
    int keep_alive;
    unsigned seq; /* requests before this one on its connection: 0 on a fresh one */
    int nheaders;
    struct hs_header headers[HS_MAX_HEADERS];
    const char *body;
    size_t body_len;
};

enum hs_mode {
    HS_SEND,     /* the whole reply */
    HS_DRIP,     /* headers, then the body one byte every drip_ms */
    HS_TRUNCATE, /* Content-Length of the whole body, half of it sent, then close */
    HS_RESET,    /* no reply: the connection is reset (RST) */
    HS_STALL,    /* no reply ever; the connection stays open until the client leaves */
    HS_CLOSE,    /* no reply: the connection is closed (FIN), as an idle keep-alive one is */
};

/* What the handler fills in. headers and body are malloc'd and taken over by
 * the server; headers holds extra lines, each ending in "\r\n". */
struct hs_reply {
    int status;
    const char *content_type; /* static string */
    char *headers;
    char *body;
    size_t body_len;
    enum hs_mode mode;
    uint64_t delay_ms; /* wait this long before delivering (not for HS_STALL) */
    uint64_t drip_ms;
    int close;   /* close the connection after this reply */
    void *token; /* handed back to the done callback */
};

/* handle: called once per request; the reply starts zeroed with status 200.
 * done: called exactly once per request when its reply has been written out,
 * failed to be, or its connection closed first (a stall ends that way). */
typedef void (*hs_handle_fn)(void *ud, const struct hs_request *req, struct hs_reply *reply);
typedef void (*hs_done_fn)(void *ud, void *token);

struct hs_server;

struct hs_stats {
    uint64_t open, peak, total; /* connections */
};

/* Listens on host:port (0: any free port) with the given backlog. Returns 0 or
 * a negative libuv error code. */
int hs_server_start(struct hs_server **out, uv_loop_t *loop, const char *host, int port, int backlog,
                    hs_handle_fn handle, hs_done_fn done, void *ud);
int hs_server_port(const struct hs_server *srv);
void hs_server_stats(const struct hs_server *srv, struct hs_stats *out);
/* Stops listening and closes every connection; pending requests get their
 * done callback. The server is freed once its handles have closed. */
void hs_server_close(struct hs_server *srv);

/* The value of a header (name in any case), or NULL. */
const char *hs_header(const struct hs_request *req, const char *name, size_t *len);
/* The standard reason phrase of a status code. */
const char *hs_reason(int status);

#endif
