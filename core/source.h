/* source.h - where documents come from: a local path, an http(s):// URL or
 * an s3://bucket/key object.
 *
 * A local path is read by document.c and walked by walk.c. A remote URI is
 * fetched through libcurl: during a run on the loop thread (curl's multi
 * interface, http.c), so thousands of fetches wait on one thread and each
 * counts against the memory budget like any document; elsewhere (a dry
 * run, a tool reading one document) with a blocking request.
 *
 * S3: requests are signed with AWS Signature Version 4 by libcurl
 * (CURLOPT_AWS_SIGV4, curl 7.75 and later) from AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (sent as
 * x-amz-security-token), in AWS_REGION or AWS_DEFAULT_REGION (us-east-1
 * when neither is set). Without an endpoint, objects are addressed
 * virtual-host style on AWS (https://BUCKET.s3.REGION.amazonaws.com/KEY);
 * with one (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or [sluice] s3_endpoint,
 * which wins), path style (ENDPOINT/BUCKET/KEY), as S3-compatible servers
 * expect. No credentials: the requests go unsigned (a public bucket).
 *
 * A prefix is listed with ListObjectsV2, a page of up to 1000 keys at a
 * time (continuation tokens), while the walk goes: see walk.c. Messages
 * name the URI and the status, never a credential: the secret and the
 * session token are registered with the context as secrets.
 */
#ifndef SL_SOURCE_H
#define SL_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "loop.h"

/* Whether `uri` is fetched rather than opened: http://, https://, s3://. */
int sl_source_is_remote(const char *uri);
/* Whether `uri` is an s3:// URI. */
int sl_source_is_s3(const char *uri);

/* The process's settings for remote documents, read once from the
 * environment and [sluice] (runtime.c calls it when it opens a config):
 * s3_endpoint ("" or NULL: the environment's, else AWS), the timeout of one
 * fetch in milliseconds (0: 60 s), how many times a 5xx or a transport
 * error is retried and the first backoff, and a PEM file of CA certificates
 * trusted besides the system's ([sluice] fetch_ca_file; "" or NULL: none).
 * Registers the secrets with ctx (may be NULL). */
void sl_source_configure(sl_ctx *ctx, const char *s3_endpoint, int64_t timeout_ms, int64_t retries,
                         int64_t retry_base_ms, const char *ca_file);

/* --- listing an s3:// prefix --- */

typedef struct sl_s3_list sl_s3_list;
/* A listing of s3://BUCKET/PREFIX (PREFIX may be empty). The first page is
 * asked for on the first sl_s3_list_next. */
int sl_s3_list_new(const char *uri, sl_s3_list **out);
/* 1 and the next object's key (valid until the next call) and size; 0 at
 * the end; -1 with the reason in err ("listing s3://b/p: HTTP 403
 * AccessDenied: ..."). Keys ending in '/' (folder markers) are left out.
 * Pages are fetched on a thread of their own, the next one while the
 * current one's keys are handed out; a call that needs a page not in yet
 * waits for it, or, with a notifier set, answers 2 (pending) at once. */
int sl_s3_list_next(sl_s3_list *l, const char **key, uint64_t *size, char *err, size_t errlen);
/* fn(arg) is called, on the fetching thread, when a page asked for is in
 * (or failed); sl_s3_list_next then answers pending instead of waiting.
 * fn must not call back into the listing. Once a call with fn NULL
 * returned, fn is not running and will not run. */
void sl_s3_list_set_notify(sl_s3_list *l, void (*fn)(void *arg), void *arg);
void sl_s3_list_free(sl_s3_list *l);

/* --- reading what an S3 server answered ---
 * The parsing of untrusted bytes, apart from the requests so that
 * fuzz/fuzz_s3_listing.c runs the production code without a network. */

/* Reads one ListObjectsV2 answer (body: len bytes, not NUL-terminated) into
 * l in place of its current page: the keys sl_s3_list_next returns next,
 * the continuation token of the following page, and whether this page is
 * the last. 0, or SL_EBADINPUT / SL_ENOMEM with the reason in err. */
int sl_s3_list_page(sl_s3_list *l, const char *body, size_t len, char *err, size_t errlen);
/* How many keys of the current page sl_s3_list_next has yet to return; at
 * 0 its next call asks the server for the following page, if any. */
size_t sl_s3_list_pending(const sl_s3_list *l);
/* The continuation token the following page will be asked with
 * (percent-encoded); NULL when the current page is the last. */
const char *sl_s3_list_token(const sl_s3_list *l);

/* "HTTP 404" into out, with S3's <Code> and <Message> when `body` (an
 * error answer, NUL-terminated; NULL for none) has them. */
void sl_s3_describe_status(long status, const char *body, char *out, size_t outlen);

/* --- fetching one document --- */

/* What a fetch brought: the body (malloc'd, NUL-terminated, the receiver
 * frees it), its length, and the response's Content-Type, ETag and
 * Last-Modified ("" when absent). */
typedef struct sl_fetched {
    char *data;
    size_t len;
    char content_type[128];
    char etag[128];
    char last_modified[64];
} sl_fetched;

typedef struct sl_fetch sl_fetch;
/* cb runs once on the loop thread: rc 0 and *got filled, or a negative
 * SL_E* with the reason in err (the URI is the caller's to name). The fetch
 * is freed after cb returns. */
typedef void (*sl_fetch_cb)(void *arg, int rc, sl_fetched *got, const char *err);
/* Starts fetching `uri` on `loop` (from the loop thread): bodies larger
 * than max_size fail, 5xx and transport errors are retried with backoff.
 * Its buffers count in the loop's memory meter while in flight. Returns 0,
 * or a negative SL_E* (then cb will not run). */
int sl_fetch_start(sl_loop *loop, const char *uri, uint64_t max_size, sl_fetch_cb cb, void *arg);

/* The same, blocking the calling thread (for a reader outside a run).
 * Returns 0 and fills *got, or a negative SL_E* with the reason in err. */
int sl_fetch_sync(const char *uri, uint64_t max_size, sl_fetched *got, char *err, size_t errlen);

/* Keeps what one response header line (len bytes as curl hands it over,
 * not NUL-terminated, the line end included) says of the document in got:
 * Content-Type, ETag or Last-Modified, cut to their fields' sizes. The
 * blocking fetch reads its headers with it (fuzz/fuzz_s3_listing.c too). */
void sl_fetched_header(sl_fetched *got, const char *line, size_t len);

#endif
