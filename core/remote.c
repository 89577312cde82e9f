/* remote.c - the SDK's helpers for io plugins that call remote HTTP APIs
 * (sdk/include/sluice/remote.h documents each). The in-tree providers are
 * built on these; the hot paths (JSON escaping of texts, base64 vectors)
 * are written for speed since a run does them for every chunk, and
 * bench/codec_bench.c measures them against the jansson way.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_request.h"
#include "instance.h"
#include "sluice/remote.h"

/* --- init --- */

static bool empty(const char *s) { return !s || !*s; }

/* base + path without a doubled or missing slash, malloc'd (NULL: out of
 * memory). "http://h:1/v1/" + "/embeddings" -> "http://h:1/v1/embeddings". */
char *sl_url_join(const char *base, const char *path) {
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

/* A URL for messages: with "user:password@" after the scheme dropped, since
 * credentials in a URL are as secret as a key (into buf, always
 * NUL-terminated). */
const char *sl_url_shown(const char *url, char *buf, size_t size) {
    if (!url) url = "";
    const char *auth = strstr(url, "://"), *host = auth ? auth + 3 : url;
    const char *end = host + strcspn(host, "/?#"), *at = NULL;
    for (const char *p = host; p < end; p++)
        if (*p == '@') at = p;
    if (!at) {
        snprintf(buf, size, "%s", url);
    } else {
        snprintf(buf, size, "%.*s%s", (int)(host - url), url, at + 1);
    }
    return buf;
}

/* The options every provider has: an http(s) base_url, a model, a positive
 * timeout. Returns 0 or SL_EFATAL after sl_instance_fail. */
int sl_remote_check_options(sl_instance *inst, const char *base_url, const char *model, int64_t timeout_ms) {
    if (empty(base_url) || (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0)) {
        char shown[512];
        return sl_instance_fail(
            inst, SL_EFATAL,
            "option 'base_url': '%s' is not an http:// or https:// URL (credentials in it are not shown)",
            sl_url_shown(base_url, shown, sizeof shown));
    }
    if (empty(model)) return sl_instance_fail(inst, SL_EFATAL, "option 'model': must not be empty");
    if (timeout_ms <= 0)
        return sl_instance_fail(inst, SL_EFATAL, "option 'timeout': must be more than 0 (got %lld ms)",
                                (long long)timeout_ms);
    return 0;
}

/* prefix + secret, malloc'd, for an auth header value; NULL when there is no
 * secret (no header is then sent) or out of memory (*oom set). */
static char *auth_value(const char *prefix, const char *secret, bool *oom) {
    *oom = false;
    if (empty(secret)) return NULL;
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
void sl_free_secret(char *s) {
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* Where a provider's requests go, and its key header's value. */
void sl_endpoint_free(sl_endpoint *ep) {
    free(ep->url);
    sl_free_secret(ep->auth);
    *ep = (sl_endpoint){NULL, NULL};
}

/* Fills ep from the options. Returns 0, or SL_ENOMEM after
 * sl_instance_fail (ep then holds nothing). */
int sl_endpoint_init(sl_instance *inst, sl_endpoint *ep, const char *base_url, const char *path,
                     const char *prefix, const char *key) {
    bool oom;
    ep->url = sl_url_join(base_url, path);
    ep->auth = auth_value(prefix, key, &oom);
    if (!oom && ep->url) return 0;
    sl_endpoint_free(ep);
    return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
}

/* The options every LLM provider has: max_tokens in 1..1000000 and a
 * temperature from 0 to the provider's max_temperature. Returns 0 or
 * SL_EFATAL after sl_instance_fail. */
int sl_check_llm_options(sl_instance *inst, int64_t max_tokens, double temperature, double max_temperature) {
    if (max_tokens < 1 || max_tokens > 1000000)
        return sl_instance_fail(inst, SL_EFATAL, "option 'max_tokens': %lld is out of range (1..1000000)",
                                (long long)max_tokens);
    if (!(temperature >= 0 && temperature <= max_temperature))
        return sl_instance_fail(inst, SL_EFATAL, "option 'temperature': %g is out of range (0..%g)",
                                temperature, max_temperature);
    return 0;
}

/* --- requests --- */

/* A growing byte buffer for a request body. A failed allocation sets oom and
 * makes every later add a no-op, so a body is built without a check per
 * step and checked once at the end. */
/* Room for `more` bytes after len; false (oom set) when there is none. */
bool sl_buf_reserve(sl_buf *b, size_t more) {
    if (b->oom) return false;
    if (b->cap - b->len >= more) return true;
    /* a first reservation larger than 256 bytes gets exactly what it asks:
     * a request body sized up front (sl_json_request) is kept for as long as
     * its request is in flight, where doubling would keep up to twice that */
    size_t cap = b->cap ? b->cap : more > 256 ? more : 256;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void sl_buf_add(sl_buf *b, const char *s, size_t n) {
    if (!sl_buf_reserve(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void sl_buf_free(sl_buf *b) {
    free(b->p);
    *b = (sl_buf){0};
}

/* What follows a backslash for each byte JSON needs escaped ('u': \u00XX),
 * 0 for a byte written as it is: the same escapes jansson writes, so a body
 * is byte for byte what json_dumps made of it. */
static const char *json_escapes(void) {
    static const char e[256] = {
        'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',         'u',
        'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', ['"'] = '"', ['\\'] = '\\',
    };
    return e;
}

/* True when none of the 8 bytes in x needs a look: no control character,
 * '"', '\' or byte from 0x80 up. Each test sets a byte's top bit; a borrow
 * between bytes can only come from a byte that already set one, so there
 * are no false answers of "plain". */
static bool json_plain8(uint64_t x) {
    const uint64_t ones = 0x0101010101010101u, tops = 0x8080808080808080u;
    uint64_t ctl = x - ones * 0x20, quote = (x ^ ones * '"') - ones, bslash = (x ^ ones * '\\') - ones;
    return ((ctl | quote | bslash | x) & tops) == 0;
}

/* Appends s (len bytes) to b as a JSON string: quotes around it, '"' and
 * '\' escaped, control characters as \n, \t, ... or \u00XX (NUL included),
 * UTF-8 copied as it is. One pass, 8 bytes at a time where nothing needs
 * escaping, checking the UTF-8 as it goes (sl_utf8_valid on each
 * multi-byte character): a text is read once, not validated and then
 * escaped. Returns false when s is not UTF-8, *bad at the first byte that
 * is not (where sl_utf8_valid on the whole text says), b then unchanged;
 * out of memory sets b->oom. */
bool sl_json_string(sl_buf *b, const char *s, size_t len, size_t *bad) {
    static const char hex[] = "0123456789ABCDEF";
    const char *esc = json_escapes();
    size_t start = b->len;
    if (len > SIZE_MAX - 2 || !sl_buf_reserve(b, len + 2)) return true;
    /* From here cap - o >= len - i + 1: room for the rest as it is and the
     * closing quote; only an escape writes more than it reads. */
    size_t i = 0, o = b->len;
    b->p[o++] = '"';
    while (i < len) {
        uint64_t x;
        while (len - i >= 8 && (memcpy(&x, s + i, 8), json_plain8(x))) {
            memcpy(b->p + o, &x, 8);
            i += 8;
            o += 8;
        }
        if (i == len) break;
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2; /* what the lead byte promises */
            if (n > len - i) n = len - i;
            if (!sl_utf8_valid(s + i, n, NULL)) {
                *bad = i;
                b->len = start;
                return false;
            }
            memcpy(b->p + o, s + i, n);
            i += n;
            o += n;
        } else if (esc[c]) {
            b->len = o;
            if (!sl_buf_reserve(b, 6 + (len - i - 1) + 1)) return true;
            char seq[6] = {'\\', esc[c], '0', '0', hex[c >> 4], hex[c & 15]};
            memcpy(b->p + o, seq, 6);
            o += esc[c] == 'u' ? 6 : 2;
            i++;
        } else
            b->p[o++] = (char)s[i++];
    }
    b->p[o++] = '"';
    b->len = o;
    return true;
}

/* A text as a JSON string appended to b, or a failure code after sl_fail:
 * SL_EBADINPUT when it is not UTF-8 (JSON has no way to carry it),
 * SL_EINVAL, SL_ENOMEM. `what` names it in messages ("the prompt", "text");
 * `index`, unless SIZE_MAX, is its place in a batch. */
int sl_json_text(sl_call *call, const sl_text *t, const char *what, size_t index, sl_buf *b) {
    size_t bad = 0;
    int code = 0;
    if (!t->ptr && t->len)
        code = SL_EINVAL;
    else if (!sl_json_string(b, t->ptr ? t->ptr : "", t->len, &bad))
        code = SL_EBADINPUT;
    else if (b->oom)
        code = SL_ENOMEM;
    if (!code) return 0;
    char name[64];
    if (index == SIZE_MAX)
        snprintf(name, sizeof name, "%s", what);
    else
        snprintf(name, sizeof name, "%s %zu", what, index);
    if (code == SL_EINVAL) return sl_fail(call, code, "%s has a length but no bytes", name);
    if (code == SL_EBADINPUT) return sl_fail(call, code, "%s is not valid UTF-8 (at byte %zu)", name, bad);
    return sl_fail(call, code, "out of memory for %s (%zu bytes)", name, t->len);
}

/* The JSON of a provider's request around its texts, made once at init:
 * head is everything before the first text ({"model":"m","input":[), tail
 * everything after the last (],"encoding_format":"base64"}). A call then
 * writes head, its texts and tail into one buffer: no JSON object per text,
 * and the small parts still written by jansson. */
void sl_json_frame_free(sl_json_frame *f) {
    free(f->head);
    free(f->tail);
    *f = (sl_json_frame){0};
}

/* Fills f from two JSON objects (both released): head is `first` without
 * its closing brace, then `open`; tail is `close`, then the members of
 * `rest` after a comma (just "}" when rest is empty). open must start with a
 * comma, as first is never empty: "{\"model\":\"m\"" + ",\"input\":[".
 * Returns 0, or SL_EFATAL after sl_instance_fail (f then holds nothing):
 * out of memory, or an option jansson refused (a string not UTF-8). */
int sl_json_frame_init(sl_instance *inst, sl_json_frame *f, json_t *first, const char *open,
                       const char *close, json_t *rest) {
    *f = (sl_json_frame){0};
    char *a = first ? json_dumps(first, JSON_COMPACT) : NULL;
    char *z = rest ? json_dumps(rest, JSON_COMPACT) : NULL;
    json_decref(first);
    json_decref(rest);
    size_t al = a ? strlen(a) : 0, zl = z ? strlen(z) : 0, ol = strlen(open), cl = strlen(close);
    if (a && z && al > 2 && a[al - 1] == '}' && zl >= 2 && z[0] == '{') {
        f->head = malloc(al - 1 + ol + 1);
        f->tail = malloc(cl + zl + 1);
    }
    if (f->head && f->tail) {
        memcpy(f->head, a, al - 1);
        memcpy(f->head + al - 1, open, ol + 1);
        f->head_len = al - 1 + ol;
        memcpy(f->tail, close, cl);
        if (zl == 2) /* {} */
            memcpy(f->tail + cl, "}", 2);
        else {
            f->tail[cl] = ',';
            memcpy(f->tail + cl + 1, z + 1, zl); /* z's members, its brace and NUL */
        }
        f->tail_len = strlen(f->tail);
    }
    free(a);
    free(z);
    if (f->head && f->tail) return 0;
    sl_json_frame_free(f);
    return sl_instance_fail(inst, SL_EFATAL,
                            "cannot build the requests from the options (out of memory, or a string that is "
                            "not UTF-8)");
}

/* The body of a request in *b: f's head, the texts as JSON strings
 * separated by commas, f's tail. sent[0..n) are the indexes of the texts to
 * send, named `what INDEX` in messages; with sent NULL, texts[0] alone is
 * sent, named `what`. Returns 0, or sl_json_text's failure (b then holds
 * nothing). */
int sl_json_request(sl_call *call, const sl_json_frame *f, const sl_text *texts, const size_t *sent, size_t n,
                    const char *what, sl_buf *b) {
    if (!sent) n = 1;
    size_t need = f->head_len + f->tail_len;
    for (size_t k = 0; k < n; k++) need += texts[sent ? sent[k] : 0].len + 3;
    /* room for a few escapes (rarely a second allocation) and a NUL: the
     * buffer becomes the request's body (sl_post_json gives it) */
    sl_buf_reserve(b, need + need / 32 + 1);
    sl_buf_add(b, f->head, f->head_len);
    int rc = 0;
    for (size_t k = 0; !rc && k < n; k++) {
        if (k) sl_buf_add(b, ",", 1);
        rc = sent ? sl_json_text(call, &texts[sent[k]], what, sent[k], b)
                  : sl_json_text(call, &texts[0], what, SIZE_MAX, b);
    }
    sl_buf_add(b, f->tail, f->tail_len);
    if (!rc && b->oom) rc = sl_fail(call, SL_ENOMEM, "out of memory for a request of %zu bytes", need);
    if (rc) sl_buf_free(b);
    return rc;
}

/* One request header; a NULL value is skipped (an absent API key). */
/* POSTs `body` (always released) as JSON to url; cb(req, arg) runs later
 * and must sl_http_free(req). cb runs on a pool thread during a run
 * (sl_http_answer_on_pool: decoding a 300 KB answer does not hold up the
 * loop thread every other request waits on), on the loop outside one; so
 * it may only decode, and call sl_fail, sl_call_usage, sl_completion_set on
 * its own call's answer, sl_http_free and sl_call_done, touching no state
 * that another call shares. Returns SL_PENDING, or a negative code after
 * sl_fail (cb will then not run). */
/* The most a response may hold, from what was asked: an LLM's max_tokens
 * (32 bytes a token covers escaped Unicode and the JSON around it), or n
 * embeddings of dim numbers (24 bytes a number as text), and 64 KB for the
 * rest. A larger answer is cut off and retried, never stored. */
size_t sl_llm_response_cap(int64_t max_tokens) {
    return (size_t)(max_tokens > 0 ? max_tokens : 4096) * 32 + 65536;
}
size_t sl_embed_response_cap(size_t n, uint32_t dim) { return n * (size_t)dim * 24 + 65536; }

int sl_post_json(sl_call *call, const char *url, sl_buf *body, const sl_header *hdrs, size_t nhdrs,
                 int64_t timeout_ms, size_t max_response, sl_http_cb cb, void *arg) {
    sl_http *req = sl_http_new(sl_call_instance(call), "POST", url);
    int rc = req ? 0 : SL_ENOMEM;
    if (!rc) rc = sl_http_header(req, "Content-Type", "application/json");
    for (size_t i = 0; !rc && i < nhdrs; i++)
        if (hdrs[i].value) rc = sl_http_header(req, hdrs[i].name, hdrs[i].value);
    if (!rc) {
        if (body->p && body->cap > body->len) { /* the usual case: taken, not copied */
            rc = sl_http_body_give(req, body->p, body->len, body->cap);
            *body = (sl_buf){0};
        } else {
            rc = sl_http_body(req, body->p, body->len);
        }
    }
    if (!rc) rc = sl_http_timeouts(req, 0, timeout_ms);
    if (!rc) rc = sl_http_answer_on_pool(req);
    if (!rc) rc = sl_http_max_response(req, max_response);
    sl_buf_free(body);
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
void sl_error_text(const char *body, size_t len, char *buf, size_t cap) {
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
int sl_json_response(sl_call *call, const sl_http *req, const char *who, const char *url, const char *model,
                     json_t **out) {
    *out = NULL;
    long status = sl_http_status(req);
    size_t len = 0;
    const char *body = sl_http_response_body(req, &len);
    if (status == 404) {
        char why[200];
        sl_error_text(body, len, why, sizeof why);
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
        sl_error_text(body, len, why, sizeof why);
        json_decref(root);
        return sl_fail(call, SL_ERETRY, "%s: HTTP %ld but the body reports an error: %s", who, status, why);
    }
    *out = root;
    return 0;
}

/* A token count from obj[key]: a non-negative integer, else 0 (providers
 * leave usage out under load; accounting is best effort, not a failure). */
uint64_t sl_json_count(const json_t *obj, const char *key) {
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
    return n > 0 ? (uint64_t)n : 0;
}

/* --- vectors --- */

/* The failure for vectors of the wrong size. SL_EFATAL, but marked as the
 * provider's own: in a run the core passes this provider by for the rest
 * of it, its fallbacks take the work, and with none left the documents
 * fail with this reason; the run goes on (stage.c). */
int sl_dim_mismatch(sl_call *call, const char *model, size_t got, uint32_t dim) {
    if (call) call->unusable = 1;
    return sl_fail(call, SL_EFATAL,
                   "model %s returned %zu-dimensional vectors; the config says %u (set dimension = %zu)",
                   model, got, dim, got);
}

/* A JSON array of dim numbers into out. SL_EFATAL on another length,
 * SL_ERETRY when it is not an array of finite numbers. */
int sl_vector_json(sl_call *call, const json_t *arr, float *out, uint32_t dim, const char *who,
                   const char *model, size_t index) {
    if (!json_is_array(arr)) return sl_fail(call, SL_ERETRY, "%s: embedding %zu is not an array", who, index);
    size_t n = json_array_size(arr);
    if (n != dim) return sl_dim_mismatch(call, model, n, dim);
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

/* The value of character c in the standard base64 alphabet, `invalid`
 * outside it ('=' included: padding is taken off before decoding). A
 * constant expression, so the decoder's tables are made by the compiler. */
#define B64_VALUE(c, invalid)                                                                                \
    ((c) >= 'A' && (c) <= 'Z'   ? (uint32_t)((c) - 'A')                                                      \
     : (c) >= 'a' && (c) <= 'z' ? (uint32_t)((c) - 'a' + 26)                                                 \
     : (c) >= '0' && (c) <= '9' ? (uint32_t)((c) - '0' + 52)                                                 \
     : (c) == '+'               ? 62u                                                                        \
     : (c) == '/'               ? 63u                                                                        \
                                : (invalid))
/* c's value shifted to its place in a quad's 24 bits; 0xff000000 (bits no
 * valid quad has) outside the alphabet. */
#define B64_AT(c, shift) (B64_VALUE(c, 0xff000000u >> (shift)) << (shift))
#define B64_4(c, s) B64_AT(c, s), B64_AT(c + 1, s), B64_AT(c + 2, s), B64_AT(c + 3, s)
#define B64_16(c, s) B64_4(c, s), B64_4(c + 4, s), B64_4(c + 8, s), B64_4(c + 12, s)
#define B64_64(c, s) B64_16(c, s), B64_16(c + 16, s), B64_16(c + 32, s), B64_16(c + 48, s)
#define B64_256(s) B64_64(0, s), B64_64(64, s), B64_64(128, s), B64_64(192, s)

/* For each of a quad's four places, every byte's value already shifted
 * there: a quad is four loads and three ORs, and one test of the ORed
 * quads (bits 24 and up) finds any character outside the alphabet. */
static const uint32_t (*b64_tables(void))[256] {
    static const uint32_t t[4][256] = {{B64_256(18)}, {B64_256(12)}, {B64_256(6)}, {B64_256(0)}};
    return t;
}

/* Bytes that standard base64 text s (padding optional) decodes to, or -1
 * when its length cannot be base64. */
long sl_b64_size(const char *s, size_t len) {
    if (len >= 1 && s[len - 1] == '=') len--;
    if (len >= 1 && s[len - 1] == '=') len--;
    if (len % 4 == 1) return -1;
    return (long)(len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0));
}

/* Four base64 characters as 24 bits, with bits from 24 up set when one of
 * them is outside the alphabet. */
static uint32_t b64_quad(const uint32_t (*t)[256], const unsigned char *p) {
    return t[0][p[0]] | t[1][p[1]] | t[2][p[2]] | t[3][p[3]];
}

/* The float whose IEEE bits are u, stored in out; true when it is not
 * finite (all exponent bits set: an infinity or a NaN). */
static bool b64_store(float *out, uint32_t u) {
    memcpy(out, &u, 4);
    return (u & 0x7f800000u) == 0x7f800000u;
}

/* Four little-endian bytes as a number. */
static uint32_t le32(const unsigned char *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Decodes standard base64 s (len characters, padding optional) of dim
 * little-endian float32s straight into out: 16 characters (4 quads, 12
 * bytes) make 3 floats, each assembled from its bytes as a number, so the
 * host's byte order does not matter. Returns 0; SL_B64_INVALID for a
 * character outside the alphabet or a length that is not dim floats' worth;
 * SL_B64_NONFINITE with *bad the first value that is not finite. out
 * is written in full or in part either way. */
int sl_b64_floats(const char *s, size_t len, float *out, uint32_t dim, uint32_t *bad) {
    if (sl_b64_size(s, len) != (long)dim * 4) return SL_B64_INVALID;
    const uint32_t(*t)[256] = b64_tables();
    const unsigned char *p = (const unsigned char *)s;
    uint32_t err = 0;
    bool nonfinite = false;
    uint32_t j = 0;
    for (; dim - j >= 3; j += 3, p += 16) {
        uint32_t a = b64_quad(t, p), b = b64_quad(t, p + 4);
        uint32_t c = b64_quad(t, p + 8), d = b64_quad(t, p + 12);
        err |= a | b | c | d;
        /* the 12 bytes a2 a1 a0 b2 | b1 b0 c2 c1 | c0 d2 d1 d0, each four little-endian */
        nonfinite |= b64_store(out + j, (a >> 16 & 0xff) | (a >> 8 & 0xff) << 8 | (a & 0xff) << 16 |
                                            (b >> 16 & 0xff) << 24);
        nonfinite |= b64_store(out + j + 1, (b >> 8 & 0xff) | (b & 0xff) << 8 | (c >> 16 & 0xff) << 16 |
                                                (c >> 8 & 0xff) << 24);
        nonfinite |= b64_store(out + j + 2,
                               (c & 0xff) | (d >> 16 & 0xff) << 8 | (d >> 8 & 0xff) << 16 | (d & 0xff) << 24);
    }
    if (j < dim) { /* 1 or 2 floats left: 6 or 11 characters, the last quad partial */
        unsigned char bytes[8] = {0};
        size_t left = (size_t)(dim - j) * 4, o = 0;
        unsigned char last[4] = {'A', 'A', 'A', 'A'}; /* zero bits for what the partial quad lacks */
        memcpy(last, p + left / 3 * 4, left % 3 + 1);
        for (; o < left; o += 3) {
            uint32_t q = b64_quad(t, o + 3 <= left ? p + o / 3 * 4 : last);
            err |= q;
            unsigned char three[3] = {(unsigned char)(q >> 16), (unsigned char)(q >> 8), (unsigned char)q};
            memcpy(bytes + o, three, left - o < 3 ? left - o : 3);
        }
        nonfinite |= b64_store(out + j, le32(bytes));
        if (left == 8) nonfinite |= b64_store(out + j + 1, le32(bytes + 4));
    }
    if (err >> 24) return SL_B64_INVALID;
    if (!nonfinite) return 0;
    j = 0;
    while (isfinite(out[j])) j++;
    *bad = j;
    return SL_B64_NONFINITE;
}

/* A base64 string of dim little-endian float32s into out. SL_EFATAL on
 * another dimension, SL_ERETRY when it is not base64 of finite floats. */
int sl_vector_base64(sl_call *call, const char *s, size_t len, float *out, uint32_t dim, const char *who,
                     const char *model, size_t index) {
    long bytes = sl_b64_size(s, len);
    if (bytes < 0 || bytes % 4)
        return sl_fail(call, SL_ERETRY, "%s: embedding %zu is not base64 of float32 values (%zu characters)",
                       who, index, len);
    if ((size_t)bytes / 4 != dim) return sl_dim_mismatch(call, model, (size_t)bytes / 4, dim);
    uint32_t bad = 0;
    int rc = sl_b64_floats(s, len, out, dim, &bad);
    if (rc == SL_B64_INVALID)
        return sl_fail(call, SL_ERETRY, "%s: embedding %zu is not valid base64", who, index);
    if (rc == SL_B64_NONFINITE)
        return sl_fail(call, SL_ERETRY, "%s: embedding %zu has a value that is not a finite number (at %u)",
                       who, index, bad);
    return 0;
}

/* Embedders send only non-empty texts (OpenAI refuses "", and an empty text
 * has no meaning to embed): empties get the zero vector, as embed-hash
 * gives them. Fills sent[0..*nsent) with the indexes of the texts to send
 * and zeroes the empties' vectors. */
void sl_nonempty_texts(const sl_text *texts, size_t n, float *out, uint32_t dim, size_t *sent,
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

/* The `dimension` option of an embedder: required, 1..SL_MAX_DIM. */
int sl_check_dimension(sl_instance *inst, int64_t dim) {
    if (dim < 1 || dim > SL_MAX_DIM)
        return sl_instance_fail(inst, SL_EFATAL, "option 'dimension': %lld is out of range (1..%d)",
                                (long long)dim, SL_MAX_DIM);
    return 0;
}

/* --- probes (`sluice check --connect`) --- */

/* One GET of a provider's model list ({base_url}/models, /api/tags, ...):
 * the server is there, the key is accepted, and the configured model is
 * listed. `list` and `field` say where the names are (OpenAI and
 * Anthropic: data[].id; Ollama: models[].name, where "m" also matches
 * "m:latest"). */
typedef struct probe {
    sl_call *call;
    char *url;
    const char *who, *model, *list, *field;
} probe;

static bool model_named(const char *name, const char *model) {
    size_t ml = strlen(model);
    if (strcmp(name, model) == 0) return true;
    return strncmp(name, model, ml) == 0 && strcmp(name + ml, ":latest") == 0;
}

static void probe_answer(sl_http *req, void *arg) {
    probe *p = arg;
    sl_call *call = p->call;
    long status = sl_http_status(req);
    size_t len = 0;
    const char *body = sl_http_response_body(req, &len);
    int rc;
    if (sl_http_error(req) || status < 200 || status > 299) {
        rc = sl_http_verdict(call, req);
    } else {
        json_t *root = json_loadb(body ? body : "", len, 0, NULL);
        json_t *arr = json_is_object(root) ? json_object_get(root, p->list) : NULL;
        size_t i, n = json_array_size(arr);
        json_t *m;
        bool found = false;
        json_array_foreach(arr, i, m) {
            json_t *name = json_object_get(m, p->field);
            if (json_is_string(name) && model_named(json_string_value(name), p->model)) found = true;
        }
        if (!json_is_array(arr))
            rc = sl_fail(call, SL_EFATAL, "%s: GET %s answered HTTP %ld without a \"%s\" list", p->who,
                         p->url, status, p->list);
        else if (!found)
            rc = sl_fail(call, SL_EFATAL, "%s: model '%s' is not among the %zu models %s lists", p->who,
                         p->model, n, p->url);
        else
            rc = 0;
        json_decref(root);
    }
    sl_http_free(req);
    free(p->url);
    free(p);
    sl_call_done(call, rc);
}

/* GETs {base_url}/{path} with the key header; SL_PENDING, or a failure. */
int sl_probe_models(sl_call *call, const char *base_url, const char *path, const sl_header *hdrs,
                    size_t nhdrs, int64_t timeout_ms, const char *who, const char *model, const char *list,
                    const char *field) {
    probe *p = calloc(1, sizeof *p);
    char *url = sl_url_join(base_url, path);
    sl_http *req = url && p ? sl_http_new(sl_call_instance(call), "GET", url) : NULL;
    int rc = req ? 0 : SL_ENOMEM;
    for (size_t i = 0; !rc && i < nhdrs; i++)
        if (hdrs[i].value) rc = sl_http_header(req, hdrs[i].name, hdrs[i].value);
    if (!rc) rc = sl_http_timeouts(req, 0, timeout_ms);
    if (!rc) {
        *p = (probe){call, url, who, model, list, field};
        rc = sl_http_send(req, probe_answer, p);
        if (!rc) return SL_PENDING;
    }
    sl_http_free(req);
    free(url);
    free(p);
    return sl_fail(call, rc, "%s: cannot send the probe (%s)", who, sl_strerror(rc));
}
