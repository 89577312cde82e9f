/* http_request.h - the inside of an sl_http request, shared by http.c (the
 * client: libcurl's multi interface on the loop) and http_verdict.c (what a
 * finished request means for the call that made it). Private to the core. */
#ifndef SL_HTTP_REQUEST_H
#define SL_HTTP_REQUEST_H

#include <curl/curl.h>
#include <uv.h>

#include "instance.h"
#include "loop.h"
#include "sluice/http.h"

/* A server's Retry-After is capped: a bogus one must not park work for days. */
#define MAX_RETRY_AFTER_MS (24LL * 3600 * 1000)
/* How much of an error body a message quotes. */
#define SNIPPET_BYTES 200

typedef struct http_multi http_multi;
typedef struct sock_poll sock_poll;

struct sock_poll {
    uv_poll_t poll;
    curl_socket_t fd;
    http_multi *m;
    sock_poll *prev, *next; /* the multi's open polls (not closing ones) */
};

struct http_multi {
    CURLM *multi;
    uv_loop_t *uv;
    uv_timer_t timer;
    sock_poll *polls;
    sl_http *running; /* requests in flight */
    size_t inflight;
};

enum { REQ_NEW, REQ_RUNNING, REQ_DONE, REQ_FREED };

struct sl_http {
    sl_instance *inst;
    CURL *easy;
    http_multi *m; /* while in flight */
    sl_http *prev, *next;
    int state;
    char *method;
    char *where; /* "host/path" for messages: no credentials, no query */
    struct curl_slist *headers;
    char *body; /* request body, own copy */
    size_t body_len;
    int64_t connect_ms, total_ms;
    sl_http_cb cb;
    void *arg;
    /* the response */
    long status;
    CURLcode result;
    char *error;
    char *resp;
    size_t resp_len, resp_cap;
    char *hbuf; /* headers of the last response, "name\0value\0" each */
    size_t hlen, hcap;
    int oom;
    int no_expect;     /* "Expect:" is in headers */
    int sent;          /* sent at least once: curl holds its buffers (curl_held) */
    int on_pool;       /* sl_http_answer_on_pool: cb runs on a pool thread */
    long long metered; /* bytes counted in the run's memory meter */
    size_t max_resp;   /* sl_http_max_response; 0: DEFAULT_MAX_RESPONSE */
    int too_big;       /* the response passed max_resp: cut off */
    sl_post post;      /* sl_http_free off the loop thread: the cleanup is posted */
    sl_post send_post; /* sl_http_send off the loop thread: the start is posted */
    unsigned sends;    /* times libcurl began sending this request (sl_http_send resets it) */
    char errbuf[CURL_ERROR_SIZE];
};

/* For the fuzzer of what a provider answers (fuzz/fuzz_http_response.c):
 * a response's header line (its "\r\n" included) and a piece of its body,
 * handed to req as libcurl hands them; the bytes taken, fewer when the
 * request refuses the rest (too big, out of memory). */
size_t sl_http_take_header(sl_http *req, char *line, size_t len);
size_t sl_http_take_body(sl_http *req, char *data, size_t len);
/* Ends it as libcurl's completion does: with `status`, or, when a callback
 * above refused bytes (aborted), as a failed transfer saying why. */
void sl_http_take_end(sl_http *req, long status, int aborted);

/* The request body, taken rather than copied (sl_post_json: a batch's
 * body of 100 KB and more is not made twice): data, malloc'd, with room
 * for cap bytes, is the request's from now on, whatever the answer. cap
 * must exceed len (a NUL is put after it). 0, or SL_EINVAL (data freed). */
int sl_http_body_give(sl_http *req, char *data, size_t len, size_t cap);

/* "host/path" of a URL for messages: no credentials, no query (malloc'd). */
char *sl_http_url_where(const char *url);
/* A CA file option's value (ca_file, [sluice] fetch_ca_file): "" or NULL is
 * fine; else it must be a readable file with a PEM certificate in it.
 * 0, or -1 with what is wrong in err ("PATH: No such file or directory",
 * "PATH holds no PEM certificate ..."). */
int sl_http_ca_file_check(const char *path, char *err, size_t errlen);
/* A transport error no retry can fix: the URL, the TLS setup, the
 * certificate (sl_http_verdict makes it fatal; documents are not retried). */
bool sl_http_result_permanent(CURLcode res);
/* What to say after curl's words for a certificate that did not verify:
 * the option that fixes it ("[summarizer] ca_file", "[sluice]
 * fetch_ca_file") and the CA file it holds already, if any (into out). */
void sl_http_cert_hint(char *out, size_t n, const char *option, const char *ca_file);

#endif
