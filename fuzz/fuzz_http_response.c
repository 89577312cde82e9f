/* fuzz_http_response.c - what a provider (or a proxy in front of it) sends
 * back, as the core's HTTP client takes it during a run: the response head
 * line by line (a status line starts the headers over, as after a 100
 * Continue; Content-Length sizes the body's buffer, or refuses a body past
 * the request's limit), the body in pieces, then sl_http_verdict's reading
 * of it all (the status, Retry-After as seconds or an HTTP date,
 * retry-after-ms, the x-ratelimit-* pairs, a redirect's Location, the
 * body's snippet in the message).
 *
 * The input is the response as it comes off the wire: lines up to the
 * first empty one are the head, the rest is the body. The status is the
 * last status line's; without one, 200. The body's limit is 4096 bytes;
 * a response the client refuses (a Content-Length or a body past it) ends
 * as a failed transfer, as libcurl's abort does.
 * Checked besides the sanitizers: a body is never kept past its limit,
 * every header found lies inside the kept headers, a retry hint stays
 * within the cap, and the verdict is one of its codes with a message
 * when it is not a success.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http_request.h"

#define BODY_LIMIT 4096

static sl_instance inst;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    inst.ctx = fuzz_ctx();
    inst.name = "fuzz";
    return 0;
}

static void must(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_http_response: %s\n", what);
        abort();
    }
}

/* The status of a status line ("HTTP/1.1 429 Too Many Requests"), or -1. */
static long status_of(const char *line, size_t len) {
    if (len < 5 || memcmp(line, "HTTP/", 5) != 0) return -1;
    const char *sp = memchr(line, ' ', len);
    if (!sp) return 0;
    long s = 0;
    int digits = 0;
    for (const char *p = sp + 1; p < line + len && *p >= '0' && *p <= '9' && digits < 3; p++, digits++)
        s = s * 10 + (*p - '0');
    return digits == 3 ? s : 0;
}

/* A header the client kept: NULL, or a string inside req's header buffer. */
static void check_header(const sl_http *req, const char *name) {
    const char *v = sl_http_response_header(req, name);
    if (!v) return;
    must(req->hbuf && v >= req->hbuf && v < req->hbuf + req->hlen, "a header value outside the kept headers");
    must(v + strlen(v) < req->hbuf + req->hlen, "a header value that runs past the kept headers");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size ? size : 1);
    sl_http *req = calloc(1, sizeof *req);
    if (!buf || !req) {
        free(buf);
        free(req);
        return 0;
    }
    memcpy(buf, data, size);
    req->method = strdup("POST");
    req->where = strdup("fuzz.invalid/v1/chat/completions");
    req->max_resp = BODY_LIMIT;
    long status = 200;
    size_t off = 0;
    int in_body = 0, aborted = 0;
    while (off < size) {
        if (!in_body) {
            char *nl = memchr(buf + off, '\n', size - off);
            size_t len = nl ? (size_t)(nl - (buf + off)) + 1 : size - off;
            long s = status_of(buf + off, len);
            if (s >= 0) status = s;
            int blank =
                len <= 2 && (buf[off] == '\n' || (buf[off] == '\r' && len == 2 && buf[off + 1] == '\n'));
            if (sl_http_take_header(req, buf + off, len) != len) { /* refused: curl aborts */
                aborted = 1;
                break;
            }
            off += len;
            if (blank) in_body = 1;
        } else {
            /* curl hands a body over in pieces: here of 1 to 1024 bytes,
             * the length from the piece's first byte */
            size_t len = 1 + (unsigned char)buf[off] * 4u;
            if (len > size - off) len = size - off;
            if (sl_http_take_body(req, buf + off, len) != len) {
                aborted = 1;
                break;
            }
            off += len;
        }
        must(req->resp_len <= BODY_LIMIT, "a body kept past its limit");
        must(req->hlen <= req->hcap, "headers past their buffer");
        must(!req->resp || req->resp_len < req->resp_cap, "a body without room for its terminator");
    }
    sl_http_take_end(req, status, aborted);
    must(!aborted || (req->status == 0 && req->error), "a cut-off response taken as an answer");
    static const char *const names[] = {"Content-Length",
                                        "Retry-After",
                                        "retry-after-ms",
                                        "x-ratelimit-remaining-requests",
                                        "x-ratelimit-reset-requests",
                                        "x-ratelimit-reset-tokens",
                                        "Location",
                                        "Content-Type",
                                        ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) check_header(req, names[i]);

    sl_call call;
    sl_call_init(&call, &inst, NULL); /* no loop: a failure is only recorded */
    int rc = sl_http_verdict(&call, req);
    must(rc == SL_OK || rc == SL_ERETRY || rc == SL_EBADINPUT || rc == SL_EFATAL || rc == SL_ENOMEM,
         "a verdict that is none of its codes");
    must(rc == SL_OK || call.msg[0], "a failed verdict without a message");
    must(call.retry_after_ms >= -1 && call.retry_after_ms <= MAX_RETRY_AFTER_MS, "a retry hint past the cap");
    must(rc == SL_ERETRY || call.retry_after_ms == -1, "a retry hint on a verdict that is not retry");
    sl_http_free(req);
    free(buf);
    return 0;
}
