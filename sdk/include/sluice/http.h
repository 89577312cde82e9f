/* sluice/http.h - asynchronous HTTP for io plugins (ABI 1.1).
 *
 * libcurl's multi interface driven by the loop: thousands of requests in
 * flight on one thread, connections kept alive and reused, HTTP/2
 * multiplexed when the server offers it, TLS verified, proxies taken from
 * the environment (http_proxy, https_proxy, no_proxy). A request is built,
 * sent, and handed back to the plugin's callback on the loop thread with the
 * status, headers and body; the plugin frees it. Header values are never
 * logged (they carry API keys).
 */
#ifndef SLUICE_HTTP_H
#define SLUICE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/call.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_http sl_http;
typedef void (*sl_http_cb)(sl_http *req, void *arg);

/* A new request (method "GET", "POST", ...). NULL on out of memory. */
SL_EXPORT sl_http *sl_http_new(sl_instance *inst, const char *method, const char *url);
/* Adds "Name: value". */
SL_EXPORT int sl_http_header(sl_http *req, const char *name, const char *value);
/* The request body (copied). */
SL_EXPORT int sl_http_body(sl_http *req, const char *data, size_t len);
/* Connect and total timeouts in milliseconds (0: the defaults, 10 s and 120 s). */
SL_EXPORT int sl_http_timeouts(sl_http *req, int64_t connect_ms, int64_t total_ms);
/* Sends; cb runs once on the loop thread when a response or an error is in.
 * Returns 0, or a negative SL_E* (then cb will not run). From a pool
 * thread during a run (ABI 1.7: the embed or complete of a plugin that set
 * SL_PLUGIN_SEND_OFF_LOOP) the transfer is handed to the loop thread and
 * starts there; a failure to start it then reaches cb as a failed transfer
 * (sl_http_error), never as a return value. */
SL_EXPORT int sl_http_send(sl_http *req, sl_http_cb cb, void *arg);

/* Asks for cb to run on one of the run's pool threads instead of the loop
 * thread (ABI 1.2), for a callback that decodes a large body (JSON, base64
 * vectors): the loop thread then only waits. Such a callback may read the
 * response, call sl_http_verdict, sl_fail, sl_call_usage, sl_call_retry_after,
 * sl_call_state, sl_completion_set, sl_log, sl_call_done and sl_http_free
 * (all safe there), and must not touch
 * state another call shares without its own lock, nor send a request. Outside
 * a run (sluice check, query) cb runs on the loop as usual. Call before
 * sl_http_send; 0, or SL_EINVAL for a request in flight. */
SL_EXPORT int sl_http_answer_on_pool(sl_http *req);
/* The largest response body this request accepts (ABI 1.2), e.g. tied to
 * the max_tokens asked for: a larger one is cut off and the request fails
 * as a transport error ("response larger than N bytes"), retryable. 0: the
 * default, 64 MB. Call before sl_http_send. */
SL_EXPORT int sl_http_max_response(sl_http *req, size_t bytes);
/* After completion: the HTTP status (0 when no response came), the body
 * (NUL-terminated, valid until sl_http_free), a response header by name
 * (case-insensitive, last one wins; NULL if absent), and the transport
 * error ("connection refused", "timed out after 120000 ms", ...; NULL when a
 * response came). */
SL_EXPORT long sl_http_status(const sl_http *req);
SL_EXPORT const char *sl_http_response_body(const sl_http *req, size_t *len);
SL_EXPORT const char *sl_http_response_header(const sl_http *req, const char *name);
SL_EXPORT const char *sl_http_error(const sl_http *req);
/* Frees a request; a request still in flight is cancelled (no callback). */
SL_EXPORT void sl_http_free(sl_http *req);

/* How a status or transport error should be treated: SL_OK for 2xx,
 * SL_ERETRY for transport errors, 408, 409, 425, 429 and 5xx (with
 * sl_call_retry_after set from Retry-After, in seconds or as a date),
 * SL_EFATAL for 401 and 403 (bad credentials stop the run), SL_EBADINPUT for
 * other 4xx. Also records the failure on the call with the status and the
 * start of the body. */
SL_EXPORT int sl_http_verdict(sl_call *call, const sl_http *req);

#ifdef __cplusplus
}
#endif
#endif
