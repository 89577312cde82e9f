/* codec_bench.c - what the remote providers' byte work costs per call, old
 * way against new (the SDK's sluice/remote.h, core/remote.c):
 *
 *   1. decoding one base64 embedding (384 and 1536 float32s): the old
 *      bit-at-a-time decoder and its separate finiteness pass, against
 *      sl_b64_floats;
 *   2. building a request body: an embeddings request of 128 texts of about
 *      1000 characters and an LLM request with one 40 KB document, with one
 *      jansson string per text and json_dumps (as before), against the
 *      frame and escaper (sl_json_request); UTF-8 validation is in both;
 *   3. reading an embeddings response of 128 base64 vectors of 384 (as
 *      tests/fake-provider writes them): json_loadb alone, json_loadb and
 *      the decoding (before and after the new decoder), jsmn's tokenizer
 *      alone, and embed-openai's fast way (response.h: jsmn, checks as
 *      strict as jansson's, decoding straight into the output).
 *
 * Build and run (never part of ctest; numbers for people, nothing asserts):
 *   cmake --build build --target bench-codec && build/bench/bench-codec
 * Each figure is the best of 5 rounds of about 0.2 s: a shared machine
 * gives noisy means, and the minimum is the cost of the code itself.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "instance.h"
#include <sluice/remote.h>
#include "response.h"

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile uint64_t sink; /* keeps results alive */

/* ns per call of fn(arg): the best of 5 rounds of about 0.2 s each. */
static double bench(void (*fn)(void *), void *arg) {
    long iters = 1;
    for (;;) { /* calibrate to ~20 ms */
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) fn(arg);
        if (now_ns() - t0 > 2e7) break;
        iters *= 2;
    }
    iters *= 10;
    double best = INFINITY;
    for (int r = 0; r < 5; r++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) fn(arg);
        double per = (now_ns() - t0) / (double)iters;
        if (per < best) best = per;
    }
    return best;
}

static uint64_t rng = 0x2545f4914f6cdd1du;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* --- before: the providers' decoder as it was --- */

static int old_b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static int old_b64_decode(const char *s, size_t len, unsigned char *out) {
    if (len >= 1 && s[len - 1] == '=') len--;
    if (len >= 1 && s[len - 1] == '=') len--;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = old_b64_value((unsigned char)s[i]);
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

/* The old sl_vector_base64 less its messages: size, decode, then a
 * pass for byte order and finiteness. */
static int old_vector_base64(const char *s, size_t len, float *out, uint32_t dim) {
    long bytes = sl_b64_size(s, len);
    if (bytes < 0 || bytes % 4 || (size_t)bytes / 4 != dim) return -1;
    if (old_b64_decode(s, len, (unsigned char *)out) < 0) return -1;
    for (uint32_t j = 0; j < dim; j++) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        uint32_t u;
        memcpy(&u, out + j, 4);
        u = __builtin_bswap32(u);
        memcpy(out + j, &u, 4);
#endif
        if (!isfinite(out[j])) return -1;
    }
    return 0;
}

static void b64_encode_floats(const float *v, uint32_t dim, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *b = (const unsigned char *)v; /* little-endian hosts: this is the wire */
    size_t n = (size_t)dim * 4, o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)b[i] << 16;
        if (i + 1 < n) x |= (uint32_t)b[i + 1] << 8;
        if (i + 2 < n) x |= b[i + 2];
        out[o++] = tab[x >> 18 & 63];
        out[o++] = tab[x >> 12 & 63];
        out[o++] = i + 1 < n ? tab[x >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[x & 63] : '=';
    }
    out[o] = '\0';
}

typedef struct vec_case {
    char *b64;
    size_t len;
    uint32_t dim;
    float *out;
} vec_case;

static void run_old_vector(void *arg) {
    vec_case *c = arg;
    sink += (uint64_t)old_vector_base64(c->b64, c->len, c->out, c->dim);
}

static void run_new_vector(void *arg) {
    vec_case *c = arg;
    uint32_t bad;
    sink += (uint64_t)sl_b64_floats(c->b64, c->len, c->out, c->dim, &bad);
}

static vec_case vec_new(uint32_t dim) {
    vec_case c = {malloc((size_t)dim * 6 + 8), 0, dim, malloc((size_t)dim * 4)};
    float *v = malloc((size_t)dim * 4);
    for (uint32_t i = 0; i < dim; i++) v[i] = ((float)(rnd() % 20001) - 10000.0f) / 10000.0f / 20.0f;
    b64_encode_floats(v, dim, c.b64);
    c.len = strlen(c.b64);
    free(v);
    return c;
}

/* --- request bodies --- */

/* Text that looks like a chunk of Markdown: words, punctuation, a few
 * quotes, line breaks, now and then an accented letter or a dash. */
static char *prose(size_t n) {
    static const char *words[] = {"the",      "sluice",      "turns",        "documents",  "into",
                                  "chunks",   "with",        "vectors",      "\"quoted\"", "token",
                                  "rotation", "caf\xc3\xa9", "\xe2\x80\x94", "backup",     "restore",
                                  "config",   "path\\to",    "API"};
    char *s = malloc(n + 32);
    size_t o = 0;
    while (o < n) {
        const char *w = words[rnd() % (sizeof words / sizeof *words)];
        size_t wl = strlen(w);
        memcpy(s + o, w, wl);
        o += wl;
        s[o++] = rnd() % 12 ? ' ' : '\n';
    }
    s[o] = '\0';
    return s;
}

typedef struct req_case {
    sl_call call;
    sl_text *texts;
    size_t *sent;
    size_t n;
    const char *model;
    sl_json_frame frame;
    bool llm;
} req_case;

/* The old way: sl_json_text made a jansson string per text, json_pack the
 * object, sl_post_json dumped it. */
static void run_old_request(void *arg) {
    req_case *c = arg;
    json_t *body;
    if (c->llm) {
        const sl_text *t = &c->texts[0];
        if (!sl_utf8_valid(t->ptr, t->len, NULL)) abort();
        json_t *content = json_stringn_nocheck(t->ptr, t->len);
        body = json_pack("{s:s, s:[{s:s, s:o}], s:I, s:f}", "model", c->model, "messages", "role", "user",
                         "content", content, "max_tokens", (json_int_t)512, "temperature", 0.0);
    } else {
        json_t *input = json_array();
        for (size_t k = 0; k < c->n; k++) {
            const sl_text *t = &c->texts[c->sent[k]];
            if (!sl_utf8_valid(t->ptr, t->len, NULL)) abort();
            json_array_append_new(input, json_stringn_nocheck(t->ptr, t->len));
        }
        body = json_pack("{s:s, s:o, s:s}", "model", c->model, "input", input, "encoding_format", "base64");
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    sink += strlen(text);
    free(text);
}

static void run_new_request(void *arg) {
    req_case *c = arg;
    sl_buf b = {0};
    if (sl_json_request(&c->call, &c->frame, c->texts, c->llm ? NULL : c->sent, c->n,
                        c->llm ? "the prompt" : "text", &b))
        abort();
    sink += b.len;
    sl_buf_free(&b);
}

/* --- responses --- */

/* An embeddings response as tests/fake-provider/apis.c writes it. */
static char *response(size_t n, uint32_t dim, size_t *len) {
    vec_case v = vec_new(dim);
    size_t cap = n * (v.len + 64) + 256, o = 0;
    char *s = malloc(cap);
    o += (size_t)sprintf(s + o, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < n; i++) {
        v = (free(v.b64), free(v.out), vec_new(dim));
        o += (size_t)sprintf(s + o, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":\"%s\"}",
                             i ? "," : "", i, v.b64);
    }
    o += (size_t)sprintf(s + o,
                         "],\"model\":\"text-embedding-3-small\",\"usage\":{\"prompt_tokens\":%zu,"
                         "\"total_tokens\":%zu}}",
                         n * 250, n * 250);
    free(v.b64);
    free(v.out);
    *len = o;
    return s;
}

typedef struct resp_case {
    char *body;
    size_t len, n;
    uint32_t dim;
    float *out;
} resp_case;

static void run_loadb(void *arg) {
    resp_case *c = arg;
    json_t *root = json_loadb(c->body, c->len, JSON_ALLOW_NUL, NULL);
    if (!root) abort();
    json_decref(root);
}

/* json_loadb, then vectors() as embed-openai does it. */
static void run_loadb_decode(void *arg, bool old) {
    resp_case *c = arg;
    json_t *root = json_loadb(c->body, c->len, JSON_ALLOW_NUL, NULL);
    json_t *data = json_object_get(root, "data");
    size_t i;
    json_t *item;
    sink += (uint64_t)sl_json_count(json_object_get(root, "usage"), "prompt_tokens");
    json_array_foreach(data, i, item) {
        json_int_t k = json_integer_value(json_object_get(item, "index"));
        json_t *emb = json_object_get(item, "embedding");
        float *v = c->out + (size_t)k * c->dim;
        uint32_t bad;
        int rc = old ? old_vector_base64(json_string_value(emb), json_string_length(emb), v, c->dim)
                     : sl_b64_floats(json_string_value(emb), json_string_length(emb), v, c->dim, &bad);
        if (rc) abort();
    }
    json_decref(root);
}

static void run_loadb_old(void *arg) { run_loadb_decode(arg, true); }
static void run_loadb_new(void *arg) { run_loadb_decode(arg, false); }

/* embed-openai's fast way (response.h): jsmn, the checks, the decoding. */
static void run_fast(void *arg) {
    resp_case *c = arg;
    size_t *sent = malloc(c->n * sizeof *sent);
    for (size_t i = 0; i < c->n; i++) sent[i] = i;
    response_batch b = {sent, c->n, c->dim, c->out};
    uint64_t tokens;
    if (!response_read(c->body, c->len, &b, &tokens)) abort();
    free(sent);
}

/* jsmn alone, for how much of that is the tokenizer. */
static void run_jsmn(void *arg) {
    resp_case *c = arg;
    unsigned cap = (unsigned)c->n * 8 + 64;
    jsmntok_t *toks = malloc(cap * sizeof *toks);
    jsmn_parser p;
    jsmn_init(&p);
    if (jsmn_parse(&p, c->body, c->len, toks, cap) < 0) abort();
    free(toks);
}

int main(void) {
    printf("## base64 embeddings: ns per vector\n\n| dim | before | after | speed-up |\n|---|---|---|---|\n");
    uint32_t dims[] = {384, 1536};
    for (size_t d = 0; d < 2; d++) {
        vec_case c = vec_new(dims[d]);
        double a = bench(run_old_vector, &c), b = bench(run_new_vector, &c);
        printf("| %u | %.0f | %.0f | %.1fx |\n", dims[d], a, b, a / b);
        free(c.b64);
        free(c.out);
    }

    printf("\n## request bodies: us per request (UTF-8 check included in both)\n\n"
           "| request | bytes | before | after | speed-up |\n|---|---|---|---|---|\n");
    struct {
        const char *name;
        size_t n, chars;
        bool llm;
    } reqs[] = {{"embeddings, 128 texts of ~1000 chars", 128, 1000, false},
                {"chat, one 40 KB document", 1, 40000, true}};
    for (size_t r = 0; r < 2; r++) {
        req_case c = {.n = reqs[r].n, .llm = reqs[r].llm, .model = "text-embedding-3-small"};
        sl_call_init(&c.call, NULL, NULL);
        c.texts = malloc(c.n * sizeof *c.texts);
        c.sent = malloc(c.n * sizeof *c.sent);
        for (size_t i = 0; i < c.n; i++) {
            char *t = prose(reqs[r].chars);
            c.texts[i] = (sl_text){t, strlen(t)};
            c.sent[i] = i;
        }
        json_t *first = json_pack("{s:s}", "model", c.model);
        int rc = c.llm ? sl_json_frame_init(
                             NULL, &c.frame, first, ",\"messages\":[{\"role\":\"user\",\"content\":", "}]",
                             json_pack("{s:I, s:f}", "max_tokens", (json_int_t)512, "temperature", 0.0))
                       : sl_json_frame_init(NULL, &c.frame, first, ",\"input\":[", "]",
                                            json_pack("{s:s}", "encoding_format", "base64"));
        if (rc) abort();
        sl_buf b = {0};
        sl_json_request(&c.call, &c.frame, c.texts, c.llm ? NULL : c.sent, c.n, "text", &b);
        double a = bench(run_old_request, &c), n = bench(run_new_request, &c);
        printf("| %s | %zu | %.1f | %.1f | %.1fx |\n", reqs[r].name, b.len, a / 1e3, n / 1e3, a / n);
        sl_buf_free(&b);
        sl_json_frame_free(&c.frame);
        for (size_t i = 0; i < c.n; i++) free((char *)c.texts[i].ptr);
        free(c.texts);
        free(c.sent);
    }

    resp_case rc = {.n = 128, .dim = 384};
    rc.body = response(rc.n, rc.dim, &rc.len);
    rc.out = malloc(rc.n * rc.dim * sizeof *rc.out);
    printf("\n## embeddings response, 128 x 384 base64 (%zu bytes): us per response\n\n"
           "| reading | us | us per vector |\n|---|---|---|\n",
           rc.len);
    struct {
        const char *name;
        void (*fn)(void *);
    } reads[] = {
        {"json_loadb alone", run_loadb},
        {"json_loadb + old decoder (before)", run_loadb_old},
        {"json_loadb + new decoder (after)", run_loadb_new},
        {"jsmn tokenizer alone", run_jsmn},
        {"embed-openai fast way (jsmn + checks + new decoder)", run_fast},
    };
    for (size_t r = 0; r < sizeof reads / sizeof *reads; r++) {
        double t = bench(reads[r].fn, &rc);
        printf("| %s | %.0f | %.2f |\n", reads[r].name, t / 1e3, t / 1e3 / (double)rc.n);
    }
    free(rc.body);
    free(rc.out);
    return (int)(sink & 0);
}
