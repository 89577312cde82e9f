/* sluice/remote.h (ABI 1.3) - helpers for io plugins that call a remote HTTP API
 * (an LLM or an embedding provider). The in-tree providers (llm-openai,
 * llm-anthropic, llm-ollama, embed-openai, embed-ollama) are built on
 * exactly these functions; a third-party provider gets the same ones.
 *
 * Not included by sluice/sluice.h: it needs jansson (Debian
 * libjansson-dev), since responses are handed over as json_t. Include it
 * after sluice/sluice.h and link jansson too (`pkg-config --libs jansson`,
 * or CMake's `pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)`).
 *
 * The shape of a provider call, every step here once:
 *
 *   init:   sl_remote_check_options, sl_check_llm_options or
 *           sl_check_dimension; sl_endpoint_init (URL and key header);
 *           sl_json_frame_init (the JSON around the texts, made once).
 *   call:   sl_json_request (the texts into one body), sl_post_json
 *           (returns SL_PENDING; the callback runs later).
 *   answer: sl_json_response (status verdict, then a JSON object or a
 *           failure), sl_vector_json / sl_vector_base64 (vectors with
 *           dimension checks), sl_json_count + sl_call_usage (tokens),
 *           sl_completion_set, sl_http_free, sl_call_done.
 *
 * Failure kinds, the same for every provider built on this:
 *   - transport errors and non-2xx statuses: sl_http_verdict (retryable
 *     for transport errors, 408, 409, 425, 429 and 5xx; fatal for 401 and
 *     403; bad input for other 4xx), except 404, which is fatal: it means a
 *     wrong base_url or an unknown model, never a bad document;
 *   - a 2xx whose body is not the JSON the provider documents (malformed,
 *     truncated, fields missing or of the wrong type, a wrong number of
 *     vectors): SL_ERETRY, since providers and proxies glitch and the core
 *     bounds the retries;
 *   - vectors of another dimension than the config declares: SL_EFATAL,
 *     every later call would fail the same way;
 *   - texts that are not UTF-8 (JSON cannot carry them): SL_EBADINPUT.
 *
 * Secrets: a key goes only into sl_endpoint's auth header value, which is
 * wiped when freed; sl_url_shown drops credentials from URLs for messages.
 * Never put a key into sl_fail or sl_log text.
 *
 * Threads: every function here may be called from any thread; none keeps
 * state between calls except in the structures passed to it.
 */
#ifndef SLUICE_REMOTE_H
#define SLUICE_REMOTE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/call.h"
#include "sluice/doc.h"
#include "sluice/export.h"
#include "sluice/http.h"
#include "sluice/io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest `dimension` an embedder accepts. */
#define SL_MAX_DIM 65536

/* --- init --- */

/* base + "/" + path without a doubled or missing slash, malloc'd (free()
 * it; NULL: out of memory): "http://h:1/v1/" + "/embeddings" ->
 * "http://h:1/v1/embeddings". */
SL_EXPORT char *sl_url_join(const char *base, const char *path);

/* url for a message: "user:password@" after the scheme dropped, since
 * credentials in a URL are as secret as a key. Writes into buf (always
 * NUL-terminated) and returns it. */
SL_EXPORT const char *sl_url_shown(const char *url, char *buf, size_t size);

/* The options every provider has: an http:// or https:// base_url, a
 * non-empty model, a positive timeout. Returns 0, or SL_EFATAL after
 * sl_instance_fail with the option named (for `init`). */
SL_EXPORT int sl_remote_check_options(sl_instance *inst, const char *base_url, const char *model,
                                      int64_t timeout_ms);

/* An LLM's max_tokens in 1..1000000 and temperature in 0..max_temperature.
 * Returns 0 or SL_EFATAL after sl_instance_fail. */
SL_EXPORT int sl_check_llm_options(sl_instance *inst, int64_t max_tokens, double temperature,
                                   double max_temperature);

/* An embedder's `dimension` in 1..SL_MAX_DIM. Returns 0 or SL_EFATAL after
 * sl_instance_fail. */
SL_EXPORT int sl_check_dimension(sl_instance *inst, int64_t dim);

/* Where a provider's requests go, and its key header's value. */
typedef struct sl_endpoint {
    char *url;  /* base_url + "/" + path */
    char *auth; /* prefix + key ("Bearer KEY"); NULL without a key: send no header */
} sl_endpoint;

/* Fills ep: url from base_url and path, auth from prefix and key (an empty
 * or NULL key: no auth). Returns 0, or SL_ENOMEM after sl_instance_fail
 * (ep then holds nothing). */
SL_EXPORT int sl_endpoint_init(sl_instance *inst, sl_endpoint *ep, const char *base_url, const char *path,
                               const char *prefix, const char *key);
/* Frees ep's strings, wiping the key first; ep is left empty. */
SL_EXPORT void sl_endpoint_free(sl_endpoint *ep);

/* Frees a malloc'd string that held a secret, wiping it first so it does
 * not linger in freed memory. NULL is ignored. */
SL_EXPORT void sl_free_secret(char *s);

/* --- request bodies --- */

/* A growing byte buffer. Start it zeroed ({0}). A failed allocation sets
 * oom and makes every later add a no-op, so a body is built without a
 * check per step and checked once at the end. */
typedef struct sl_buf {
    char *p;
    size_t len, cap;
    bool oom;
} sl_buf;

/* Room for `more` bytes after len; false (oom set) when there is none. */
SL_EXPORT bool sl_buf_reserve(sl_buf *b, size_t more);
SL_EXPORT void sl_buf_add(sl_buf *b, const char *s, size_t n);
SL_EXPORT void sl_buf_free(sl_buf *b);

/* Appends s (len bytes, NUL allowed) to b as a JSON string, escaped as
 * jansson escapes, UTF-8 checked in the same pass. Returns false when s is
 * not UTF-8, with *bad the offset of the first bad byte and b unchanged;
 * running out of memory sets b->oom and returns true. */
SL_EXPORT bool sl_json_string(sl_buf *b, const char *s, size_t len, size_t *bad);

/* t as a JSON string appended to b, or a failure code after sl_fail:
 * SL_EBADINPUT "WHAT [INDEX] is not valid UTF-8 (at byte N)", SL_EINVAL,
 * SL_ENOMEM. `what` names the text in messages ("the prompt", "text");
 * `index` is its place in a batch, or SIZE_MAX for none. */
SL_EXPORT int sl_json_text(sl_call *call, const sl_text *t, const char *what, size_t index, sl_buf *b);

/* The JSON of a request around its texts, made once at init: head is
 * everything before the first text ({"model":"m","input":[), tail
 * everything after the last (],"encoding_format":"base64"}). */
typedef struct sl_json_frame {
    char *head, *tail;
    size_t head_len, tail_len;
} sl_json_frame;

/* Fills f from two JSON objects, both released (NULL counts as {}): head
 * is `first` without its closing brace, then `open`; tail is `close`, then
 * the members of `rest` after a comma. `open` must start with a comma
 * (",\"input\":["). Returns 0, or SL_EFATAL after sl_instance_fail (f then
 * holds nothing). */
SL_EXPORT int sl_json_frame_init(sl_instance *inst, sl_json_frame *f, json_t *first, const char *open,
                                 const char *close, json_t *rest);
SL_EXPORT void sl_json_frame_free(sl_json_frame *f);

/* A request body in *b (start it zeroed): f's head, texts as JSON strings
 * separated by commas, f's tail. sent[0..n) are the indexes of the texts
 * to send, named `what INDEX` in messages; with sent NULL, texts[0] alone
 * is sent, named `what`. Returns 0, or sl_json_text's failure (b then
 * holds nothing). */
SL_EXPORT int sl_json_request(sl_call *call, const sl_json_frame *f, const sl_text *texts, const size_t *sent,
                              size_t n, const char *what, sl_buf *b);

/* Embedders send only non-empty texts (an empty text has no meaning to
 * embed, and OpenAI refuses ""): fills sent[0..*nsent) with the indexes of
 * texts[0..n) that are not empty and gives the empty ones the zero vector
 * in out (n * dim floats). */
SL_EXPORT void sl_nonempty_texts(const sl_text *texts, size_t n, float *out, uint32_t dim, size_t *sent,
                                 size_t *nsent);

/* --- sending --- */

/* One request header; a NULL value is skipped (an absent key). */
typedef struct sl_header {
    const char *name;
    const char *value;
} sl_header;

/* The most a response may hold, for sl_post_json's max_response: an LLM's
 * max_tokens at 32 bytes a token plus 64 KB, or n embeddings of dim numbers
 * at 24 bytes a number plus 64 KB. A larger answer is cut off and retried,
 * never stored. */
SL_EXPORT size_t sl_llm_response_cap(int64_t max_tokens);
SL_EXPORT size_t sl_embed_response_cap(size_t n, uint32_t dim);

/* POSTs `body` (always released) as JSON to url with the headers, a total
 * timeout and a response cap. cb(req, arg) runs later, once, and must
 * sl_http_free(req); during a run it runs on a pool thread
 * (sl_http_answer_on_pool), so it may only decode and call sl_fail,
 * sl_call_usage, sl_completion_set on its own call, sl_http_free and
 * sl_call_done, touching no state another call shares. Returns
 * SL_PENDING, or a negative code after sl_fail (cb will then not run). */
SL_EXPORT int sl_post_json(sl_call *call, const char *url, sl_buf *body, const sl_header *hdrs, size_t nhdrs,
                           int64_t timeout_ms, size_t max_response, sl_http_cb cb, void *arg);

/* --- answers --- */

/* The provider's own explanation in an error body ({"error": "..."} or
 * {"error": {"message": "..."}}), else the start of the body: printable
 * ASCII only, at most cap-1 bytes, into buf. */
SL_EXPORT void sl_error_text(const char *body, size_t len, char *buf, size_t cap);

/* The response body as a JSON object in *out (json_decref it), or the
 * call's failure code after sl_fail: sl_http_verdict for transport errors
 * and non-2xx, SL_EFATAL for 404 ("check base_url and model"), SL_ERETRY
 * for a 2xx body that is empty, not JSON (with the byte offset, and
 * "truncated?" at the end), not an object, or carrying an "error". `who`
 * names the provider in messages; url must be shown-safe (sl_url_shown). */
SL_EXPORT int sl_json_response(sl_call *call, const sl_http *req, const char *who, const char *url,
                               const char *model, json_t **out);

/* obj[key] as a token count: a non-negative integer, else 0 (providers
 * leave usage out under load; accounting is best effort). */
SL_EXPORT uint64_t sl_json_count(const json_t *obj, const char *key);

/* The failure for vectors of the wrong size, after sl_fail: SL_EFATAL,
 * "model M returned N-dimensional vectors; the config says D (set
 * dimension = N)". In a run it fails this provider, not the run: the
 * stage's fallbacks take the work, and with none left the documents fail
 * with this reason. */
SL_EXPORT int sl_dim_mismatch(sl_call *call, const char *model, size_t got, uint32_t dim);

/* A JSON array of dim finite numbers into out. SL_EFATAL on another
 * length (sl_dim_mismatch), SL_ERETRY when it is not an array of finite
 * numbers; `index` names the vector in messages. */
SL_EXPORT int sl_vector_json(sl_call *call, const json_t *arr, float *out, uint32_t dim, const char *who,
                             const char *model, size_t index);

#define SL_B64_INVALID (-1)   /* a character outside base64, or a length that is not dim floats */
#define SL_B64_NONFINITE (-2) /* a value that is an infinity or a NaN */

/* Decodes standard base64 s (len characters, padding optional) of dim
 * little-endian float32 values into out, whatever the host's byte order.
 * Returns 0, SL_B64_INVALID, or SL_B64_NONFINITE with *bad the index of
 * the first value that is not finite. out may be written in part on
 * failure. */
SL_EXPORT int sl_b64_floats(const char *s, size_t len, float *out, uint32_t dim, uint32_t *bad);

/* Bytes standard base64 text s (padding optional) decodes to, or -1 when
 * its length cannot be base64. */
SL_EXPORT long sl_b64_size(const char *s, size_t len);

/* A base64 string of dim little-endian float32s (OpenAI's
 * encoding_format=base64) into out, after sl_fail on failure: SL_EFATAL on
 * another dimension, SL_ERETRY when it is not base64 of finite floats. */
SL_EXPORT int sl_vector_base64(sl_call *call, const char *s, size_t len, float *out, uint32_t dim,
                               const char *who, const char *model, size_t index);

/* --- probes --- */

/* `sluice check --connect` for an LLM provider (the plugin's `probe`
 * callback, plugin.h): one GET of {base_url}/{path}, the provider's model
 * list, with the headers (the key). Passes when the server answers 2xx,
 * the key is accepted and the configured model is listed: `list` names the
 * array in the answer and `field` the name in each item (OpenAI and
 * Anthropic: "data", "id"; Ollama: "models", "name", where "m" also matches
 * "m:latest"). Returns SL_PENDING (the answer comes with sl_call_done), or
 * a failure after sl_fail. `who` names the provider in messages. */
SL_EXPORT int sl_probe_models(sl_call *call, const char *base_url, const char *path, const sl_header *hdrs,
                              size_t nhdrs, int64_t timeout_ms, const char *who, const char *model,
                              const char *list, const char *field);

#ifdef __cplusplus
}
#endif

#endif
