/* provider.h - what the remote provider plugins share (llm-openai,
 * llm-anthropic, llm-ollama, embed-openai, embed-ollama).
 *
 * Each of them does the same dance on the loop thread: check the options in
 * init, turn texts into a JSON request with jansson, POST it with the SDK's
 * asynchronous HTTP client, return SL_PENDING, and in the HTTP callback turn
 * the status and body into vectors or a completion and an sl_call_done. The
 * parts that do not depend on the provider's wire format live here, once:
 * endpoint URLs, option checks, UTF-8 texts as JSON strings, sending, the
 * status verdict, parsing the body (garbage never crashes: it is a
 * retryable failure with a clear message), token counts, and the base64
 * float32 decoder for OpenAI's compact embedding encoding.
 *
 * Header-only (static inline): each plugin is built as a third party would
 * build it, from its own folder, linking only the SDK and jansson.
 *
 * Failure kinds, the same for every provider:
 *   - non-2xx status or transport error: sl_http_verdict (retryable for
 *     transport errors, 408, 409, 425, 429 and 5xx with Retry-After; fatal for
 *     401 and 403; bad input for other 4xx), except 404, which is fatal here:
 *     it means a wrong base_url or an unknown model, never a bad document;
 *   - a 2xx whose body is not the JSON the provider documents (malformed,
 *     truncated, fields missing or of the wrong type, a wrong number of
 *     vectors): SL_ERETRY, because providers and the proxies in front of them
 *     do glitch, and the core bounds the retries;
 *   - vectors of another dimension than the config declares: SL_EFATAL, since
 *     every later call would fail the same way;
 *   - texts that are not UTF-8 (JSON cannot carry them): SL_EBADINPUT.
 * API keys go only into request headers, never into a message or a log.
 */
#ifndef SLUICE_PLUGINS_PROVIDER_H
#define SLUICE_PLUGINS_PROVIDER_H

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#define PROVIDER_MAX_DIM 65536 /* largest `dimension` an embedder accepts */

/* --- init --- */

static inline bool provider_empty(const char *s) { return !s || !*s; }

/* base + path without a doubled or missing slash, malloc'd (NULL: out of
 * memory). "http://h:1/v1/" + "/embeddings" -> "http://h:1/v1/embeddings". */
static inline char *provider_url(const char *base, const char *path) {
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') bl--;
    while (*path == '/') path++;
    size_t pl = strlen(path);
    char *u = malloc(bl + 1 + pl + 1);
    if (!u) return NULL;
    memcpy(u, base, bl);
    u[bl] = '/';
    memcpy(u + bl + 1, path, pl);
    u[bl + 1 + pl] = '\0';
    return u;
}

/* The options every provider has: an http(s) base_url, a model, a positive
 * timeout. Returns 0 or SL_EFATAL after sl_instance_fail. */
static inline int provider_check_options(sl_instance *inst, const char *base_url, const char *model,
                                         int64_t timeout_ms) {
    if (provider_empty(base_url) ||
        (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0))
        return sl_instance_fail(inst, SL_EFATAL, "option 'base_url': '%s' is not an http:// or https:// URL",
                                base_url ? base_url : "");
    if (provider_empty(model)) return sl_instance_fail(inst, SL_EFATAL, "option 'model': must not be empty");
    if (timeout_ms <= 0)
        return sl_instance_fail(inst, SL_EFATAL, "option 'timeout': must be more than 0 (got %lld ms)",
                                (long long)timeout_ms);
    return 0;
}

/* prefix + secret, malloc'd, for an auth header value; NULL when there is no
 * secret (no header is then sent) or out of memory (*oom set). */
static inline char *provider_auth_value(const char *prefix, const char *secret, bool *oom) {
    *oom = false;
    if (provider_empty(secret)) return NULL;
    size_t pl = strlen(prefix), sl = strlen(secret);
    char *v = malloc(pl + sl + 1);
    if (!v) {
        *oom = true;
        return NULL;
    }
    memcpy(v, prefix, pl);
    memcpy(v + pl, secret, sl + 1);
    return v;
}

/* Frees a string that held a secret, wiping it first so it does not linger
 * in freed memory (core dumps, later allocations). */
static inline void provider_free_secret(char *s) {
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* Where a provider's requests go, and its key header's value. */
typedef struct provider_endpoint {
    char *url;  /* {base_url}/{path} */
    char *auth; /* prefix + key ("Bearer KEY"), NULL without a key: no header is sent */
} provider_endpoint;

static inline void provider_endpoint_free(provider_endpoint *ep) {
    free(ep->url);
    provider_free_secret(ep->auth);
    *ep = (provider_endpoint){NULL, NULL};
}

/* Fills ep from the options. Returns 0, or SL_ENOMEM after
 * sl_instance_fail (ep then holds nothing). */
static inline int provider_endpoint_init(sl_instance *inst, provider_endpoint *ep, const char *base_url,
                                         const char *path, const char *prefix, const char *key) {
    bool oom;
    ep->url = provider_url(base_url, path);
    ep->auth = provider_auth_value(prefix, key, &oom);
    if (!oom && ep->url) return 0;
    provider_endpoint_free(ep);
    return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
}

/* The options every LLM provider has: max_tokens in 1..1000000 and a
 * temperature from 0 to the provider's max_temperature. Returns 0 or
 * SL_EFATAL after sl_instance_fail. */
static inline int provider_check_llm_options(sl_instance *inst, int64_t max_tokens, double temperature,
                                             double max_temperature) {
    if (max_tokens < 1 || max_tokens > 1000000)
        return sl_instance_fail(inst, SL_EFATAL, "option 'max_tokens': %lld is out of range (1..1000000)",
                                (long long)max_tokens);
    if (!(temperature >= 0 && temperature <= max_temperature))
        return sl_instance_fail(inst, SL_EFATAL, "option 'temperature': %g is out of range (0..%g)",
                                temperature, max_temperature);
    return 0;
}

/* --- requests --- */

/* A text as a JSON string in *out, or a failure code after sl_fail:
 * SL_EBADINPUT when it is not UTF-8 (JSON has no way to carry it),
 * SL_EINVAL, SL_ENOMEM. `what` names it in messages ("the prompt", "text");
 * `index`, unless SIZE_MAX, is its place in a batch. */
static inline int provider_text(sl_call *call, const sl_text *t, const char *what, size_t index,
                                json_t **out) {
    const char *p = t->ptr ? t->ptr : "";
    size_t bad = 0;
    int code = 0;
    if (!t->ptr && t->len)
        code = SL_EINVAL;
    else if (!sl_utf8_valid(p, t->len, &bad))
        code = SL_EBADINPUT;
    else if (!(*out = json_stringn_nocheck(p, t->len)))
        code = SL_ENOMEM;
    if (!code) return 0;
    *out = NULL;
    char name[64];
    if (index == SIZE_MAX)
        snprintf(name, sizeof name, "%s", what);
    else
        snprintf(name, sizeof name, "%s %zu", what, index);
    if (code == SL_EINVAL) return sl_fail(call, code, "%s has a length but no bytes", name);
    if (code == SL_EBADINPUT) return sl_fail(call, code, "%s is not valid UTF-8 (at byte %zu)", name, bad);
    return sl_fail(call, code, "out of memory for %s (%zu bytes)", name, t->len);
}

/* One request header; a NULL value is skipped (an absent API key). */
typedef struct provider_header {
    const char *name;
    const char *value;
} provider_header;

/* POSTs `body` (always released) as JSON to url; cb(req, arg) runs later on
 * the loop thread and must sl_http_free(req). Returns SL_PENDING, or a
 * negative code after sl_fail (cb will then not run). */
static inline int provider_post(sl_call *call, const char *url, json_t *body, const provider_header *hdrs,
                                size_t nhdrs, int64_t timeout_ms, sl_http_cb cb, void *arg) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) return sl_fail(call, SL_ENOMEM, "out of memory building the request for %s", url);
    sl_http *req = sl_http_new(sl_call_instance(call), "POST", url);
    int rc = req ? 0 : SL_ENOMEM;
    if (!rc) rc = sl_http_header(req, "Content-Type", "application/json");
    for (size_t i = 0; !rc && i < nhdrs; i++)
        if (hdrs[i].value) rc = sl_http_header(req, hdrs[i].name, hdrs[i].value);
    if (!rc) rc = sl_http_body(req, text, strlen(text));
    if (!rc) rc = sl_http_timeouts(req, 0, timeout_ms);
    free(text);
    if (!rc) rc = sl_http_send(req, cb, arg);
    if (!rc) return SL_PENDING;
    sl_http_free(req);
    return sl_fail(call, rc, "cannot send the request to %s (%s)", url, sl_strerror(rc));
}

/* --- responses --- */

/* The provider's own explanation from an error body ({"error": "..."} as
 * Ollama writes it, {"error": {"message": "..."}} as OpenAI and Anthropic
 * do), else the start of the body; printable ASCII only, at most cap-1
 * bytes. */
static inline void provider_error_text(const char *body, size_t len, char *buf, size_t cap) {
    const char *src = body ? body : "";
    size_t n = body ? len : 0;
    json_t *root = body ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *err = json_is_object(root) ? json_object_get(root, "error") : NULL;
    if (json_is_object(err)) err = json_object_get(err, "message");
    if (json_is_string(err)) {
        src = json_string_value(err);
        n = json_string_length(err);
    }
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        buf[o++] = c >= 0x20 && c < 0x7f ? (char)c : (c == '\n' || c == '\t' ? ' ' : '?');
    }
    if (cap) buf[o] = '\0';
    json_decref(root);
}

/* The response body as a JSON object, or the call's failure code: the
 * status verdict for transport errors and non-2xx (404 made fatal: a wrong
 * base_url or model), SL_ERETRY for a 2xx body that is not a JSON object or
 * that carries an "error". `who` names the provider in messages. */
static inline int provider_response(sl_call *call, const sl_http *req, const char *who, const char *url,
                                    const char *model, json_t **out) {
    *out = NULL;
    long status = sl_http_status(req);
    size_t len = 0;
    const char *body = sl_http_response_body(req, &len);
    if (status == 404) {
        char why[200];
        provider_error_text(body, len, why, sizeof why);
        return sl_fail(call, SL_EFATAL, "%s: HTTP 404 from %s (check base_url and model '%s'): %s", who, url,
                       model, why);
    }
    if (sl_http_error(req) || status < 200 || status > 299) return sl_http_verdict(call, req);
    if (!body || !len) return sl_fail(call, SL_ERETRY, "%s: HTTP %ld with an empty body", who, status);
    json_error_t e;
    /* JSON_ALLOW_NUL: an answer may hold "\u0000"; lengths are kept. */
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, &e);
    if (!root) {
        bool at_end = e.position >= 0 && (size_t)e.position >= len;
        return sl_fail(call, SL_ERETRY, "%s: the response is not valid JSON%s (%s, at byte %d of %zu)", who,
                       at_end ? " (truncated?)" : "", e.text, e.position, len);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return sl_fail(call, SL_ERETRY, "%s: the response is JSON but not an object", who);
    }
    json_t *err = json_object_get(root, "error");
    if (err && !json_is_null(err)) {
        char why[200];
        provider_error_text(body, len, why, sizeof why);
        json_decref(root);
        return sl_fail(call, SL_ERETRY, "%s: HTTP %ld but the body reports an error: %s", who, status, why);
    }
    *out = root;
    return 0;
}

/* A token count from obj[key]: a non-negative integer, else 0 (providers
 * leave usage out under load; accounting is best effort, not a failure). */
static inline uint64_t provider_count(const json_t *obj, const char *key) {
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
    return n > 0 ? (uint64_t)n : 0;
}

/* --- vectors --- */

/* The failure for vectors of the wrong size: fatal, the config is wrong. */
static inline int provider_dim_mismatch(sl_call *call, const char *model, size_t got, uint32_t dim) {
    return sl_fail(call, SL_EFATAL,
                   "model %s returned %zu-dimensional vectors; the config says %u (set dimension = %zu)",
                   model, got, dim, got);
}

/* A JSON array of dim numbers into out. SL_EFATAL on another length,
 * SL_ERETRY when it is not an array of finite numbers. */
static inline int provider_vector_floats(sl_call *call, const json_t *arr, float *out, uint32_t dim,
                                         const char *who, const char *model, size_t index) {
    if (!json_is_array(arr)) return sl_fail(call, SL_ERETRY, "%s: embedding %zu is not an array", who, index);
    size_t n = json_array_size(arr);
    if (n != dim) return provider_dim_mismatch(call, model, n, dim);
    for (size_t j = 0; j < n; j++) {
        json_t *v = json_array_get(arr, j);
        double d = json_is_number(v) ? json_number_value(v) : NAN;
        float f = (float)d;
        if (!isfinite(f))
            return sl_fail(call, SL_ERETRY,
                           "%s: embedding %zu has a value that is not a finite number (at %zu)", who, index,
                           j);
        out[j] = f;
    }
    return 0;
}

static inline int provider_b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Bytes that standard base64 text s (padding optional) decodes to, or -1
 * when its length cannot be base64. */
static inline long provider_b64_size(const char *s, size_t len) {
    if (len >= 1 && s[len - 1] == '=') len--;
    if (len >= 1 && s[len - 1] == '=') len--;
    if (len % 4 == 1) return -1;
    return (long)(len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0));
}

/* Decodes s straight into out, which must hold provider_b64_size(s, len)
 * bytes: no intermediate copy. Returns 0, or -1 at a byte that is not base64
 * (out is then partly written). */
static inline int provider_b64_decode(const char *s, size_t len, unsigned char *out) {
    if (len >= 1 && s[len - 1] == '=') len--;
    if (len >= 1 && s[len - 1] == '=') len--;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = provider_b64_value((unsigned char)s[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *out++ = (unsigned char)(acc >> bits);
        }
    }
    return 0;
}

/* A base64 string of dim little-endian float32s into out. SL_EFATAL on
 * another dimension, SL_ERETRY when it is not base64 of finite floats. */
static inline int provider_vector_base64(sl_call *call, const json_t *str, float *out, uint32_t dim,
                                         const char *who, const char *model, size_t index) {
    if (!json_is_string(str))
        return sl_fail(call, SL_ERETRY, "%s: embedding %zu is not a string", who, index);
    const char *s = json_string_value(str);
    size_t len = json_string_length(str);
    long bytes = provider_b64_size(s, len);
    if (bytes < 0 || bytes % 4)
        return sl_fail(call, SL_ERETRY, "%s: embedding %zu is not base64 of float32 values (%zu characters)",
                       who, index, len);
    if ((size_t)bytes / 4 != dim) return provider_dim_mismatch(call, model, (size_t)bytes / 4, dim);
    if (provider_b64_decode(s, len, (unsigned char *)out) < 0)
        return sl_fail(call, SL_ERETRY, "%s: embedding %zu is not valid base64", who, index);
    for (uint32_t j = 0; j < dim; j++) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        uint32_t u;
        memcpy(&u, out + j, 4);
        u = __builtin_bswap32(u);
        memcpy(out + j, &u, 4);
#endif
        if (!isfinite(out[j]))
            return sl_fail(call, SL_ERETRY,
                           "%s: embedding %zu has a value that is not a finite number (at %u)", who, index,
                           j);
    }
    return 0;
}

/* Embedders send only non-empty texts (OpenAI refuses "", and an empty text
 * has no meaning to embed): empties get the zero vector, as embed-hash
 * gives them. Fills sent[0..*nsent) with the indexes of the texts to send
 * and zeroes the empties' vectors. */
static inline void provider_nonempty(const sl_text *texts, size_t n, float *out, uint32_t dim, size_t *sent,
                                     size_t *nsent) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (texts[i].len)
            sent[k++] = i;
        else
            memset(out + i * dim, 0, (size_t)dim * sizeof *out);
    }
    *nsent = k;
}

/* The `dimension` option of an embedder: required, 1..PROVIDER_MAX_DIM. */
static inline int provider_check_dimension(sl_instance *inst, int64_t dim) {
    if (dim < 1 || dim > PROVIDER_MAX_DIM)
        return sl_instance_fail(inst, SL_EFATAL, "option 'dimension': %lld is out of range (1..%d)",
                                (long long)dim, PROVIDER_MAX_DIM);
    return 0;
}

#endif
