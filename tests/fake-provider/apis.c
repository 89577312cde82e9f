/* apis.c - the wire formats the fake provider speaks: OpenAI chat completions,
 * embeddings and models; Anthropic Messages and models; Ollama chat, embed,
 * embeddings and tags. Each handler validates a request the way the real API
 * does (so a client that forgets a required field fails here, not in
 * production) and answers deterministically:
 *
 *  - a completion is "Summary:" and the first 12 words of the last user
 *    message, cut to max_tokens when one is given;
 *  - an embedding is a function of (model, text, dimension) only: each word
 *    (lower-cased) adds +-1 at four hashed positions and a little noise
 *    seeded by the whole text keeps different texts apart, then the vector
 *    is normalised. Texts that share words have a high cosine similarity,
 *    so search over fake vectors still finds the right chunk;
 *  - tokens are counted as words * 4 / 3.
 *
 * Embedding replies are written by hand rather than through jansson: a batch
 * of 1536-dimension vectors is most of the server's work under load, and
 * fixed-point printing keeps the fake provider from being the bottleneck of
 * a benchmark. */
#include "fake.h"
#include "fast_json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SUMMARY_WORDS 12
#define MAX_EMBED_INPUTS 2048
#define MAX_DIM 16384

/* ---- a growable string ---- */

struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

/* Room for n more bytes and a NUL at b->p + b->len, or NULL (out of memory:
 * b->oom set). The caller writes there and then moves b->len on. */
static char *buf_room(struct buf *b, size_t n) {
    if (b->oom) return NULL;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    return b->p + b->len;
}

static void buf_add(struct buf *b, const void *s, size_t n) {
    char *at = buf_room(b, n);
    if (!at) return;
    memcpy(at, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        b->oom = 1;
    else if ((size_t)n < sizeof tmp)
        buf_add(b, tmp, (size_t)n);
    else {
        char *big = malloc((size_t)n + 1);
        if (!big) {
            b->oom = 1;
            return;
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        buf_add(b, big, (size_t)n);
        free(big);
    }
}

/* A JSON string literal. */
static void buf_json_str(struct buf *b, const char *s) {
    buf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            buf_add(b, e, 2);
        } else if (*p < 0x20) {
            buf_printf(b, "\\u%04x", *p);
        } else {
            buf_add(b, p, 1);
        }
    }
    buf_add(b, "\"", 1);
}

/* Hands a finished buffer to the answer, or a 500 when memory ran out. */
static void answer_buf(struct fp_answer *out, struct buf *b, enum fp_api api, const char *content_type) {
    if (b->oom) {
        free(b->p);
        fp_error(out, api, 500, NULL, NULL, "the fake provider ran out of memory");
        return;
    }
    out->status = 200;
    out->body = b->p;
    out->len = b->len;
    out->content_type = content_type;
}

static void answer_json(struct fp_answer *out, json_t *j, enum fp_api api) {
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s) {
        fp_error(out, api, 500, NULL, NULL, "the fake provider ran out of memory");
        return;
    }
    out->status = 200;
    out->body = s;
    out->len = strlen(s);
}

/* ---- errors ---- */

static const char *error_type(enum fp_api api, int status) {
    if (api == FP_ANTHROPIC) {
        switch (status) {
        case 401: return "authentication_error";
        case 403: return "permission_error";
        case 404: return "not_found_error";
        case 413: return "request_too_large";
        case 429: return "rate_limit_error";
        case 503:
        case 529: return "overloaded_error";
        default: return status >= 500 ? "api_error" : "invalid_request_error";
        }
    }
    if (status == 429) return "requests";
    return status >= 500 ? "server_error" : "invalid_request_error";
}

void fp_error(struct fp_answer *out, enum fp_api api, int status, const char *type, const char *code,
              const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!type) type = error_type(api, status);
    json_t *j;
    if (api == FP_ANTHROPIC)
        j = json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type", type, "message", msg);
    else if (api == FP_OLLAMA)
        j = json_pack("{s:s}", "error", msg);
    else
        j = json_pack("{s:{s:s, s:s, s:n, s:o}}", "error", "message", msg, "type", type, "param", "code",
                      code ? json_string(code) : json_null());
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    free(out->body);
    out->status = status;
    out->body = s ? s : strdup("{}");
    out->len = out->body ? strlen(out->body) : 0;
    out->content_type = NULL;
}

void fp_malform(struct fp_answer *a) {
    /* Half of a JSON text plus a stray tag is never valid JSON. */
    static const char junk[] = "<!-- fake-provider: malformed -->";
    size_t keep = a->len / 2;
    char *p = malloc(keep + sizeof junk);
    if (!p) return;
    memcpy(p, a->body, keep);
    memcpy(p + keep, junk, sizeof junk);
    free(a->body);
    a->body = p;
    a->len = keep + sizeof junk - 1;
}

/* ---- text ---- */

int64_t fp_tokens_of_words(int64_t words) { return (words * 4 + 2) / 3; }

/* A table, not six comparisons: every word of every request goes through
 * it (the fake's CPU is taken from the sluice it serves in a benchmark). */
static const unsigned char space_tab[256] = {
    [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1, ['\f'] = 1, ['\v'] = 1};

static int is_space(char c) { return space_tab[(unsigned char)c]; }

/* The next whitespace-separated word at *p, or 0 at the end. */
static int next_word(const char **p, const char *end, const char **w, size_t *wl) {
    const char *s = *p;
    while (s < end && is_space(*s)) s++;
    if (s == end) return 0;
    const char *e = s;
    while (e < end && !is_space(*e)) e++;
    *w = s;
    *wl = (size_t)(e - s);
    *p = e;
    return 1;
}

/* The words of s: the starts of runs of non-space, one table lookup a
 * byte and no branch (every prompt's text goes through it). */
static int64_t count_words(const char *s, size_t n) {
    int64_t k = 0;
    unsigned prev = 1; /* "before the text" is a space */
    for (size_t i = 0; i < n; i++) {
        unsigned sp = space_tab[(unsigned char)s[i]];
        k += prev & !sp;
        prev = sp;
    }
    return k;
}

/* The text of a message's content: a string, or an array of parts or blocks
 * whose "text" members are joined by spaces (images and the like carry
 * none). Returns -1 when content has another type. */
static int content_text(json_t *content, struct buf *out) {
    if (!content || json_is_null(content)) return 0;
    if (json_is_string(content)) {
        buf_add(out, json_string_value(content), json_string_length(content));
        return 0;
    }
    if (!json_is_array(content)) return -1;
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
        if (!json_is_object(part)) return -1;
        json_t *text = json_object_get(part, "text");
        if (json_is_string(text)) {
            if (out->len) buf_add(out, " ", 1);
            buf_add(out, json_string_value(text), json_string_length(text));
        }
    }
    return 0;
}

/* "Summary:" and the first words of text, cut so that its tokens stay within
 * max_tokens (< 0: no limit). */
static void summarize(const char *text, size_t len, int64_t words, int64_t max_tokens, struct buf *out,
                      int64_t *tokens, int *cut) {
    int64_t n = 1 + (int64_t)SUMMARY_WORDS; /* "Summary:" counts as a word */
    int64_t available = 1 + words;
    if (available < n) n = available;
    int64_t whole = n;
    while (max_tokens >= 0 && n > 0 && fp_tokens_of_words(n) > max_tokens) n--;
    *cut = n < whole;
    *tokens = fp_tokens_of_words(n);
    if (n == 0) {
        buf_add(out, "", 0);
        return;
    }
    buf_puts(out, "Summary:");
    const char *w, *p = text;
    size_t wl;
    for (int64_t i = 1; i < n && next_word(&p, text + len, &w, &wl); i++) {
        buf_add(out, " ", 1);
        buf_add(out, w, wl);
    }
}

/* ---- models ---- */

static const char *const default_models[] = {
    "gpt-4o-mini", "text-embedding-3-small", "text-embedding-3-large", "claude-3-5-haiku-latest",
    "llama3.2",    "nomic-embed-text",
};

/* Does name (Ollama: with or without ":latest") appear in the list? */
static int model_listed(const char *models, const char *name, int ollama) {
    if (!models || !*models) return 1;
    size_t nl = strlen(name);
    if (ollama && nl > 7 && strcmp(name + nl - 7, ":latest") == 0) nl -= 7;
    const char *p = models;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        size_t cmp = l;
        if (ollama && l > 7 && strncmp(p + l - 7, ":latest", 7) == 0) cmp -= 7;
        if (cmp == nl && strncmp(p, name, nl) == 0) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

/* The model field, checked; NULL after filling out with the error. */
static const char *require_model(const struct fp_call *call, struct fp_answer *out) {
    json_t *m = json_object_get(call->body, "model");
    if (!json_is_string(m) || json_string_length(m) == 0) {
        if (call->api == FP_ANTHROPIC)
            fp_error(out, call->api, 400, NULL, NULL, "model: Field required");
        else if (call->api == FP_OLLAMA)
            fp_error(out, call->api, 400, NULL, NULL, "model is required");
        else
            fp_error(out, call->api, 400, NULL, NULL, "you must provide a model parameter");
        return NULL;
    }
    const char *model = json_string_value(m);
    if (!model_listed(call->models, model, call->api == FP_OLLAMA)) {
        if (call->api == FP_ANTHROPIC)
            fp_error(out, call->api, 404, NULL, NULL, "model: %s", model);
        else if (call->api == FP_OLLAMA)
            fp_error(out, call->api, 404, NULL, NULL, "model \"%s\" not found, try pulling it first", model);
        else
            fp_error(out, call->api, 404, NULL, "model_not_found",
                     "The model `%s` does not exist or you do not have access to it.", model);
        return NULL;
    }
    return model;
}

/* ---- embeddings ---- */

static uint64_t fnv1a(const void *data, size_t n, uint64_t h) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* x % d without a 64-bit division (four a word made most of embed()'s
 * time): x's two halves reduced by Lemire's multiply-shift (exact for
 * 32-bit numerators), then combined, which stays under 2^32 while d is at
 * most 65535 (MAX_DIM is below that). The same index as x % d. */
struct mod {
    uint32_t d, r32; /* d, 2^32 mod d */
    uint64_t m;      /* ceil(2^64 / d) */
};

static struct mod mod_new(uint32_t d) {
    struct mod md = {.d = d, .r32 = (uint32_t)((UINT64_C(1) << 32) % d), .m = UINT64_MAX / d + 1};
    return md;
}

static uint32_t mod32(const struct mod *md, uint32_t a) {
    uint64_t low = md->m * a;
    return (uint32_t)(((unsigned __int128)low * md->d) >> 64);
}

static uint32_t mod_dim(const struct mod *md, uint64_t x) {
    uint32_t hi = mod32(md, (uint32_t)(x >> 32)), lo = mod32(md, (uint32_t)x);
    return mod32(md, hi * md->r32 + lo);
}

_Static_assert(MAX_DIM <= 65535, "mod_dim needs d * d + d below 2^32");

static int model_dim(const char *model) {
    static const struct {
        const char *name;
        int dim;
    } known[] = {
        {"text-embedding-3-small", 1536}, {"text-embedding-3-large", 3072}, {"text-embedding-ada-002", 1536},
        {"nomic-embed-text", 768},        {"mxbai-embed-large", 1024},      {"all-minilm", 384},
    };
    size_t n = strcspn(model, ":");
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].name) == n && strncmp(known[i].name, model, n) == 0) return known[i].dim;
    return 384;
}

/* The vector of (model, text, dim) into v[dim]; returns the text's words. */
static int64_t embed(const char *model, const char *text, size_t len, int dim, float *v) {
    uint64_t seed = fnv1a(model, strlen(model), 0xcbf29ce484222325ull);
    struct mod md = mod_new((uint32_t)dim);
    double *acc = calloc((size_t)dim, sizeof *acc);
    if (!acc) {
        for (int i = 0; i < dim; i++) v[i] = 0;
        return 0;
    }
    /* One pass: each word's hash (lower-cased) and the whole text's hash
     * (fnv1a(text, len, seed ^ 0x5bd1e995), for the noise) side by side,
     * two independent chains of multiplies the CPU overlaps. */
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    uint64_t th = seed ^ 0x5bd1e995u;
    int64_t words = 0;
    for (;;) {
        while (p < end && space_tab[*p]) th = (th ^ *p++) * 0x100000001b3ull;
        if (p == end) break;
        uint64_t h = seed;
        while (p < end && !space_tab[*p]) {
            unsigned char ch = *p++;
            th = (th ^ ch) * 0x100000001b3ull;
            if (ch >= 'A' && ch <= 'Z') ch = (unsigned char)(ch - 'A' + 'a');
            h = (h ^ ch) * 0x100000001b3ull;
        }
        for (uint64_t k = 0; k < 4; k++) {
            uint64_t x = mix64(h + k);
            acc[mod_dim(&md, x)] += (x >> 63) ? -1.0 : 1.0;
        }
        words++;
    }
    /* Noise about a tenth of the words' length; all of it for a wordless text. */
    double scale = words ? 0.1 * sqrt(4.0 * (double)words) / sqrt((double)dim / 3.0) : 1.0;
    double norm = 0;
    for (int i = 0; i < dim; i++) {
        double u = (double)(mix64(th + (uint64_t)i) >> 11) / 9007199254740992.0; /* [0, 1) */
        acc[i] += scale * (2 * u - 1);
        norm += acc[i] * acc[i];
    }
    norm = norm > 0 ? sqrt(norm) : 1;
    for (int i = 0; i < dim; i++) v[i] = (float)(acc[i] / norm);
    free(acc);
    return words;
}

/* x in [-1, 1] as fixed point with eight decimals: fast and exact enough. */
static void buf_unit(struct buf *b, float x) {
    char tmp[16], *e = tmp + sizeof tmp, *q = e;
    double d = (double)x * 1e8;
    int neg = d < 0;
    long long v = llround(neg ? -d : d);
    for (int i = 0; i < 8; i++, v /= 10) *--q = (char)('0' + v % 10);
    *--q = '.';
    do {
        *--q = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (neg) *--q = '-';
    buf_add(b, q, (size_t)(e - q));
}

static void buf_vector(struct buf *b, const float *v, int dim) {
    buf_add(b, "[", 1);
    for (int i = 0; i < dim; i++) {
        if (i) buf_add(b, ",", 1);
        buf_unit(b, v[i]);
    }
    buf_add(b, "]", 1);
}

/* Little-endian float32 bytes in base64, as OpenAI's encoding_format=base64. */
static void buf_base64_floats(struct buf *b, const float *v, int dim) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = (size_t)dim * 4;
    unsigned char *bytes = malloc(n);
    if (!bytes) {
        b->oom = 1;
        return;
    }
    for (int i = 0; i < dim; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++) bytes[i * 4 + k] = (unsigned char)(u >> (8 * k));
    }
    /* straight into the reply: a buf_add of 4 bytes at a time was a sixth
     * of the fake's CPU under bench/scale.sh */
    size_t out = (n + 2) / 3 * 4 + 2;
    char *q = buf_room(b, out);
    if (q) {
        *q++ = '"';
        for (size_t i = 0; i < n; i += 3) {
            uint32_t x = (uint32_t)bytes[i] << 16;
            if (i + 1 < n) x |= (uint32_t)bytes[i + 1] << 8;
            if (i + 2 < n) x |= bytes[i + 2];
            q[0] = tab[(x >> 18) & 63];
            q[1] = tab[(x >> 12) & 63];
            q[2] = i + 1 < n ? tab[(x >> 6) & 63] : '=';
            q[3] = i + 2 < n ? tab[x & 63] : '=';
            q += 4;
        }
        *q = '"';
        b->len += out;
        b->p[b->len] = '\0';
    }
    free(bytes);
}

/* One embedding input: a string, or (OpenAI) an array of token ids, read as
 * the text of those numbers. */
struct input {
    const char *text;
    size_t len;
    char *owned;
};

static int token_array_text(json_t *arr, struct input *in) {
    struct buf b = {0};
    size_t i;
    json_t *t;
    json_array_foreach(arr, i, t) {
        if (!json_is_integer(t)) {
            free(b.p);
            return -1;
        }
        buf_printf(&b, "%s%lld", i ? " " : "", (long long)json_integer_value(t));
    }
    if (b.oom || !b.p) {
        free(b.p);
        return -1;
    }
    in->text = in->owned = b.p;
    in->len = b.len;
    return 0;
}

/* Reads "input" into ins[]; returns the count, or -1 after filling out. */
static int read_inputs(const struct fp_call *call, json_t *input, struct input **ins, struct fp_answer *out) {
    int openai = call->api == FP_OPENAI;
    const char *bad = openai ? "'$.input' is invalid. Please check the API reference: "
                               "https://platform.openai.com/docs/api-reference."
                             : "invalid input type";
    *ins = NULL;
    if (json_is_string(input)) {
        if (openai && json_string_length(input) == 0) goto invalid;
        *ins = calloc(1, sizeof **ins);
        if (!*ins) goto oom;
        (*ins)[0].text = json_string_value(input);
        (*ins)[0].len = json_string_length(input);
        return 1;
    }
    if (!json_is_array(input)) {
        if (!input) {
            fp_error(out, call->api, 400, NULL, NULL,
                     openai ? "you must provide an input parameter" : "input is required");
            return -1;
        }
        goto invalid;
    }
    size_t n = json_array_size(input);
    if (openai && n == 0) goto invalid;
    if (n > MAX_EMBED_INPUTS) {
        fp_error(out, call->api, 400, NULL, NULL, "at most %d inputs per request, got %zu", MAX_EMBED_INPUTS,
                 n);
        return -1;
    }
    if (openai && n > 0 && json_is_integer(json_array_get(input, 0))) {
        *ins = calloc(1, sizeof **ins);
        if (!*ins) goto oom;
        if (token_array_text(input, &(*ins)[0]) < 0) goto invalid;
        return 1;
    }
    *ins = calloc(n ? n : 1, sizeof **ins);
    if (!*ins) goto oom;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(input, i);
        if (json_is_string(s) && !(openai && json_string_length(s) == 0)) {
            (*ins)[i].text = json_string_value(s);
            (*ins)[i].len = json_string_length(s);
        } else if (openai && json_is_array(s) && json_array_size(s) > 0) {
            if (token_array_text(s, &(*ins)[i]) < 0) goto invalid_free;
        } else {
            goto invalid_free;
        }
    }
    return (int)n;
invalid_free:
    for (size_t i = 0; i < n; i++) free((*ins)[i].owned);
invalid:
    free(*ins);
    *ins = NULL;
    fp_error(out, call->api, 400, NULL, NULL, "%s", bad);
    return -1;
oom:
    fp_error(out, call->api, 500, NULL, NULL, "the fake provider ran out of memory");
    return -1;
}

static void free_inputs(struct input *ins, int n) {
    for (int i = 0; i < n; i++) free(ins[i].owned);
    free(ins);
}

/* The dimension a request asks for, or -1 after filling out. */
static int request_dim(const struct fp_call *call, const char *model, struct fp_answer *out) {
    int native = call->embed_dim > 0 ? call->embed_dim : model_dim(model);
    json_t *d = json_object_get(call->body, "dimensions");
    if (!d || json_is_null(d)) return native;
    if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > MAX_DIM) {
        fp_error(out, call->api, 400, NULL, NULL, "dimensions must be an integer from 1 to %d", MAX_DIM);
        return -1;
    }
    if (call->api == FP_OPENAI && strcmp(model, "text-embedding-ada-002") == 0) {
        fp_error(out, call->api, 400, NULL, NULL, "This model does not support specifying dimensions.");
        return -1;
    }
    if (call->api == FP_OPENAI && json_integer_value(d) > native) {
        fp_error(out, call->api, 400, NULL, NULL, "dimensions must be at most %d for %s", native, model);
        return -1;
    }
    return (int)json_integer_value(d);
}

/* The shapes of the three embedding replies. */
enum embed_shape { SHAPE_OPENAI, SHAPE_OLLAMA_EMBED, SHAPE_OLLAMA_LEGACY };

static void embed_reply(const struct fp_call *call, struct fp_answer *out, const char *model, int dim,
                        struct input *ins, int n, enum embed_shape shape, int base64) {
    float *v = malloc((size_t)dim * sizeof *v);
    struct buf b = {0};
    if (!v) b.oom = 1;
    int64_t tokens = 0;
    if (shape == SHAPE_OPENAI)
        buf_puts(&b, "{\"object\":\"list\",\"data\":[");
    else if (shape == SHAPE_OLLAMA_EMBED) {
        buf_puts(&b, "{\"model\":");
        buf_json_str(&b, model);
        buf_puts(&b, ",\"embeddings\":[");
    } else
        buf_puts(&b, "{\"embedding\":");
    for (int i = 0; i < n && !b.oom; i++) {
        tokens += fp_tokens_of_words(embed(model, ins[i].text, ins[i].len, dim, v));
        if (i) buf_add(&b, ",", 1);
        if (shape == SHAPE_OPENAI) buf_printf(&b, "{\"object\":\"embedding\",\"index\":%d,\"embedding\":", i);
        if (base64)
            buf_base64_floats(&b, v, dim);
        else
            buf_vector(&b, v, dim);
        if (shape == SHAPE_OPENAI) buf_add(&b, "}", 1);
    }
    if (shape == SHAPE_OPENAI) {
        buf_puts(&b, "],\"model\":");
        buf_json_str(&b, model);
        buf_printf(&b, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}", (long long)tokens,
                   (long long)tokens);
    } else if (shape == SHAPE_OLLAMA_EMBED) {
        buf_printf(&b, "],\"total_duration\":%lld,\"load_duration\":0,\"prompt_eval_count\":%lld}",
                   (long long)(tokens * 100000 + 1000000), (long long)tokens);
    } else {
        buf_add(&b, "}", 1);
    }
    free(v);
    out->tokens_in = tokens;
    answer_buf(out, &b, call->api, NULL);
}

static void openai_embeddings(const struct fp_call *call, struct fp_answer *out) {
    const char *model = require_model(call, out);
    if (!model) return;
    int dim = request_dim(call, model, out);
    if (dim < 0) return;
    json_t *fmt = json_object_get(call->body, "encoding_format");
    int base64 = 0;
    if (fmt && !json_is_null(fmt)) {
        const char *f = json_string_value(fmt);
        if (f && strcmp(f, "base64") == 0)
            base64 = 1;
        else if (!f || strcmp(f, "float") != 0) {
            fp_error(out, call->api, 400, NULL, NULL, "encoding_format must be \"float\" or \"base64\"");
            return;
        }
    }
    struct input *ins;
    int n = read_inputs(call, json_object_get(call->body, "input"), &ins, out);
    if (n < 0) return;
    embed_reply(call, out, model, dim, ins, n, SHAPE_OPENAI, base64);
    free_inputs(ins, n);
}

static void ollama_embed(const struct fp_call *call, struct fp_answer *out) {
    const char *model = require_model(call, out);
    if (!model) return;
    int dim = request_dim(call, model, out);
    if (dim < 0) return;
    struct input *ins;
    int n = read_inputs(call, json_object_get(call->body, "input"), &ins, out);
    if (n < 0) return;
    embed_reply(call, out, model, dim, ins, n, SHAPE_OLLAMA_EMBED, 0);
    free_inputs(ins, n);
}

static void ollama_embeddings_legacy(const struct fp_call *call, struct fp_answer *out) {
    const char *model = require_model(call, out);
    if (!model) return;
    int dim = request_dim(call, model, out);
    if (dim < 0) return;
    json_t *prompt = json_object_get(call->body, "prompt");
    if (!json_is_string(prompt)) {
        fp_error(out, call->api, 400, NULL, NULL, "prompt must be a string");
        return;
    }
    struct input in = {.text = json_string_value(prompt), .len = json_string_length(prompt)};
    embed_reply(call, out, model, dim, &in, 1, SHAPE_OLLAMA_LEGACY, 0);
}

/* ---- chat ---- */

/* What every chat format reduces to. */
struct chat {
    const char *model;
    struct buf last_user; /* text of the last user message */
    int64_t last_user_words;
    int64_t words_in;   /* of every message (and the system prompt) */
    int64_t max_tokens; /* -1: none */
    struct buf reply;
    int64_t tokens_out;
    int cut; /* stopped by max_tokens */
};

/* Reads the messages array; -1 after filling out. */
static int read_messages(const struct fp_call *call, json_t *messages, struct chat *c,
                         struct fp_answer *out) {
    if (!json_is_array(messages) || (call->api != FP_OLLAMA && json_array_size(messages) == 0)) {
        const char *msg = call->api == FP_ANTHROPIC ? "messages: at least one message is required"
                          : call->api == FP_OLLAMA  ? "messages must be an array"
                                                    : "'messages' must be a non-empty array";
        fp_error(out, call->api, 400, NULL, NULL, "%s", msg);
        return -1;
    }
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role) {
            fp_error(out, call->api, 400, NULL, NULL, "messages.%zu.role: Field required", i);
            return -1;
        }
        if (call->api == FP_ANTHROPIC && strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0) {
            fp_error(out, call->api, 400, NULL, NULL,
                     "messages.%zu.role: Input should be 'user' or 'assistant' (the system prompt goes in "
                     "the top-level system field)",
                     i);
            return -1;
        }
        struct buf text = {0};
        json_t *content = json_object_get(m, "content");
        if ((call->api == FP_OLLAMA && content && !json_is_string(content)) ||
            content_text(content, &text) < 0) {
            free(text.p);
            fp_error(out, call->api, 400, NULL, NULL, "messages.%zu.content has an unsupported type", i);
            return -1;
        }
        int64_t words = count_words(text.p ? text.p : "", text.len);
        c->words_in += words;
        if (strcmp(role, "user") == 0) {
            free(c->last_user.p);
            c->last_user = text;
            c->last_user_words = words;
        } else {
            free(text.p);
        }
    }
    return 0;
}

static int no_stream(const struct fp_call *call, struct fp_answer *out) {
    if (json_is_true(json_object_get(call->body, "stream"))) {
        fp_error(out, call->api, 400, NULL, "unsupported_value",
                 "stream: the fake provider answers stream=false only");
        return -1;
    }
    return 0;
}

static int read_max_tokens(const struct fp_call *call, json_t *v, const char *name, struct chat *c,
                           struct fp_answer *out) {
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        fp_error(out, call->api, 400, NULL, NULL, "%s must be a positive integer", name);
        return -1;
    }
    c->max_tokens = json_integer_value(v);
    return 0;
}

static void chat_run(struct chat *c) {
    summarize(c->last_user.p ? c->last_user.p : "", c->last_user.len, c->last_user_words, c->max_tokens,
              &c->reply, &c->tokens_out, &c->cut);
}

static void chat_free(struct chat *c) {
    free(c->last_user.p);
    free(c->reply.p);
}

static void openai_chat(const struct fp_call *call, struct fp_answer *out) {
    struct chat c = {.max_tokens = -1};
    c.model = require_model(call, out);
    if (!c.model || no_stream(call, out) < 0) return;
    json_t *mct = json_object_get(call->body, "max_completion_tokens");
    if (read_max_tokens(call, mct ? mct : json_object_get(call->body, "max_tokens"),
                        mct ? "max_completion_tokens" : "max_tokens", &c, out) < 0 ||
        read_messages(call, json_object_get(call->body, "messages"), &c, out) < 0) {
        chat_free(&c);
        return;
    }
    chat_run(&c);
    int64_t in = fp_tokens_of_words(c.words_in);
    char id[48];
    snprintf(id, sizeof id, "chatcmpl-fake%llu", (unsigned long long)call->id);
    json_t *j = json_pack(
        "{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s, s:n}, s:n, s:s}], s:{s:I, s:I, s:I}}", "id", id, "object",
        "chat.completion", "created", (json_int_t)time(NULL), "model", c.model, "choices", "index", 0,
        "message", "role", "assistant", "content", c.reply.p ? c.reply.p : "", "refusal", "logprobs",
        "finish_reason", c.cut ? "length" : "stop", "usage", "prompt_tokens", (json_int_t)in,
        "completion_tokens", (json_int_t)c.tokens_out, "total_tokens", (json_int_t)(in + c.tokens_out));
    out->tokens_in = in;
    out->tokens_out = c.tokens_out;
    chat_free(&c);
    answer_json(out, j, call->api);
}

static void anthropic_messages(const struct fp_call *call, struct fp_answer *out) {
    if (!hs_header(call->req, "anthropic-version", NULL)) {
        fp_error(out, call->api, 400, NULL, NULL, "anthropic-version: header is required");
        return;
    }
    struct chat c = {.max_tokens = -1};
    c.model = require_model(call, out);
    if (!c.model || no_stream(call, out) < 0) return;
    json_t *mt = json_object_get(call->body, "max_tokens");
    if (!mt) {
        fp_error(out, call->api, 400, NULL, NULL, "max_tokens: Field required");
        return;
    }
    struct buf system = {0};
    if (read_max_tokens(call, mt, "max_tokens", &c, out) < 0 ||
        content_text(json_object_get(call->body, "system"), &system) < 0 ||
        read_messages(call, json_object_get(call->body, "messages"), &c, out) < 0) {
        if (!out->body)
            fp_error(out, call->api, 400, NULL, NULL, "system: Input should be a string or blocks");
        free(system.p);
        chat_free(&c);
        return;
    }
    c.words_in += count_words(system.p ? system.p : "", system.len);
    free(system.p);
    chat_run(&c);
    int64_t in = fp_tokens_of_words(c.words_in);
    char id[48];
    snprintf(id, sizeof id, "msg_fake%llu", (unsigned long long)call->id);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:s}], s:s, s:n, s:{s:I, s:I}}", "id", id, "type",
                          "message", "role", "assistant", "model", c.model, "content", "type", "text", "text",
                          c.reply.p ? c.reply.p : "", "stop_reason", c.cut ? "max_tokens" : "end_turn",
                          "stop_sequence", "usage", "input_tokens", (json_int_t)in, "output_tokens",
                          (json_int_t)c.tokens_out);
    out->tokens_in = in;
    out->tokens_out = c.tokens_out;
    chat_free(&c);
    answer_json(out, j, call->api);
}

static void iso_now(char *out, size_t n) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%.20s.%06dZ", base, (int)(ts.tv_nsec / 1000) % 1000000);
}

/* Ollama streams by default: NDJSON, one line per word, then a final "done"
 * line with the counts. A client that forgets stream:false gets exactly what
 * a real Ollama would send it. */
static void ollama_chat(const struct fp_call *call, struct fp_answer *out) {
    struct chat c = {.max_tokens = -1};
    c.model = require_model(call, out);
    if (!c.model) return;
    json_t *options = json_object_get(call->body, "options");
    if (read_max_tokens(call, json_object_get(options, "num_predict"), "options.num_predict", &c, out) < 0 ||
        read_messages(call, json_object_get(call->body, "messages"), &c, out) < 0) {
        chat_free(&c);
        return;
    }
    chat_run(&c);
    int64_t in = fp_tokens_of_words(c.words_in);
    char now[48];
    iso_now(now, sizeof now);
    json_t *stream = json_object_get(call->body, "stream");
    int streaming = !stream || json_is_true(stream);
    json_t *done = json_pack(
        "{s:s, s:s, s:{s:s, s:s}, s:b, s:s, s:I, s:i, s:I, s:I, s:I, s:I}", "model", c.model, "created_at",
        now, "message", "role", "assistant", "content", streaming ? "" : (c.reply.p ? c.reply.p : ""), "done",
        1, "done_reason", c.cut ? "length" : "stop", "total_duration",
        (json_int_t)(in * 1000000 + c.tokens_out * 10000000 + 1000000), "load_duration", 0,
        "prompt_eval_count", (json_int_t)in, "prompt_eval_duration", (json_int_t)(in * 1000000), "eval_count",
        (json_int_t)c.tokens_out, "eval_duration", (json_int_t)(c.tokens_out * 10000000));
    out->tokens_in = in;
    out->tokens_out = c.tokens_out;
    if (!streaming) {
        chat_free(&c);
        answer_json(out, done, call->api);
        return;
    }
    struct buf b = {0};
    const char *text = c.reply.p ? c.reply.p : "", *w, *p = text;
    size_t wl;
    int first = 1;
    while (next_word(&p, text + c.reply.len, &w, &wl)) {
        char piece[512];
        snprintf(piece, sizeof piece, "%s%.*s", first ? "" : " ", (int)(wl < 400 ? wl : 400), w);
        first = 0;
        json_t *line = json_pack("{s:s, s:s, s:{s:s, s:s}, s:b}", "model", c.model, "created_at", now,
                                 "message", "role", "assistant", "content", piece, "done", 0);
        char *s = line ? json_dumps(line, JSON_COMPACT) : NULL;
        json_decref(line);
        if (!s)
            b.oom = 1;
        else
            buf_puts(&b, s);
        free(s);
        buf_add(&b, "\n", 1);
    }
    char *s = done ? json_dumps(done, JSON_COMPACT) : NULL;
    json_decref(done);
    if (!s)
        b.oom = 1;
    else
        buf_puts(&b, s);
    free(s);
    buf_add(&b, "\n", 1);
    chat_free(&c);
    answer_buf(out, &b, call->api, "application/x-ndjson");
}

/* ---- model lists ---- */

static json_t *model_names(const struct fp_call *call) {
    json_t *names = json_array();
    if (call->models && *call->models) {
        const char *p = call->models;
        while (*p) {
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            if (l) json_array_append_new(names, json_stringn(p, l));
            if (!e) break;
            p = e + 1;
        }
    } else {
        for (size_t i = 0; i < sizeof default_models / sizeof default_models[0]; i++)
            json_array_append_new(names, json_string(default_models[i]));
    }
    return names;
}

static void list_models(const struct fp_call *call, struct fp_answer *out) {
    json_t *names = model_names(call), *data = json_array(), *name;
    size_t i;
    json_array_foreach(names, i, name) {
        const char *n = json_string_value(name);
        if (call->api == FP_ANTHROPIC)
            json_array_append_new(data, json_pack("{s:s, s:s, s:s, s:s}", "type", "model", "id", n,
                                                  "display_name", n, "created_at", "2025-01-01T00:00:00Z"));
        else
            json_array_append_new(data, json_pack("{s:s, s:s, s:i, s:s}", "id", n, "object", "model",
                                                  "created", 0, "owned_by", "fake-provider"));
    }
    json_t *j;
    if (call->api == FP_ANTHROPIC) {
        size_t n = json_array_size(names);
        j = json_pack("{s:o, s:b, s:o, s:o}", "data", data, "has_more", 0, "first_id",
                      n ? json_incref(json_array_get(names, 0)) : json_null(), "last_id",
                      n ? json_incref(json_array_get(names, n - 1)) : json_null());
    } else {
        j = json_pack("{s:s, s:o}", "object", "list", "data", data);
    }
    json_decref(names);
    answer_json(out, j, call->api);
}

static void ollama_tags(const struct fp_call *call, struct fp_answer *out) {
    json_t *names = model_names(call), *models = json_array(), *name;
    size_t i;
    json_array_foreach(names, i, name) {
        const char *n = json_string_value(name);
        char full[256];
        snprintf(full, sizeof full, "%s%s", n, strchr(n, ':') ? "" : ":latest");
        char digest[17];
        snprintf(digest, sizeof digest, "%016llx",
                 (unsigned long long)fnv1a(n, strlen(n), 0xcbf29ce484222325ull));
        json_array_append_new(models, json_pack("{s:s, s:s, s:s, s:i, s:s, s:{}}", "name", full, "model",
                                                full, "modified_at", "2025-01-01T00:00:00Z", "size", 0,
                                                "digest", digest, "details"));
    }
    json_decref(names);
    answer_json(out, json_pack("{s:o}", "models", models), call->api);
}

/* ---- routing ---- */

static const struct fp_route routes[] = {
    {"POST", "/v1/chat/completions", FP_OPENAI, FP_LLM, 1, openai_chat},
    {"POST", "/v1/embeddings", FP_OPENAI, FP_EMBED, 1, openai_embeddings},
    {"GET", "/v1/models", FP_OPENAI, FP_OTHER, 0, list_models},
    {"POST", "/v1/messages", FP_ANTHROPIC, FP_LLM, 1, anthropic_messages},
    {"POST", "/api/chat", FP_OLLAMA, FP_LLM, 1, ollama_chat},
    {"POST", "/api/embed", FP_OLLAMA, FP_EMBED, 1, ollama_embed},
    {"POST", "/api/embeddings", FP_OLLAMA, FP_EMBED, 1, ollama_embeddings_legacy},
    {"GET", "/api/tags", FP_OLLAMA, FP_OTHER, 0, ollama_tags},
};

const struct fp_route *fp_route_find(const char *method, const char *path, int *wrong_method) {
    *wrong_method = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(routes[i].path, path) != 0) continue;
        if (strcmp(routes[i].method, method) == 0) return &routes[i];
        *wrong_method = 1;
    }
    return NULL;
}

enum fp_api fp_api_of(const struct fp_route *route, const struct hs_request *req) {
    if (strncmp(req->path, "/api/", 5) == 0) return FP_OLLAMA;
    if (route && route->api != FP_OPENAI) return route->api;
    if (strcmp(req->path, "/v1/messages") == 0 || hs_header(req, "anthropic-version", NULL))
        return FP_ANTHROPIC;
    return FP_OPENAI;
}

void fp_route_call(const struct fp_route *route, struct fp_call *call, struct fp_answer *out) {
    json_t *body = NULL;
    if (route->json_body) {
        json_error_t err;
        /* the fast parser's value, or jansson's (and its error message)
         * when it gives up */
        body = fj_loadb(call->req->body, call->req->body_len);
        if (!body) body = json_loadb(call->req->body, call->req->body_len, 0, &err);
        if (!body) {
            fp_error(out, call->api, 400, NULL, NULL,
                     "We could not parse the JSON body of your request: %s (line %d, column %d)", err.text,
                     err.line, err.column);
            return;
        }
        if (!json_is_object(body)) {
            json_decref(body);
            fp_error(out, call->api, 400, NULL, NULL, "the request body must be a JSON object");
            return;
        }
    }
    call->body = body;
    route->fn(call, out);
    json_decref(body);
    call->body = NULL;
}
