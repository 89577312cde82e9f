/* test_openai_response.c - embed-openai's fast reading of an embeddings
 * response (plugins/embed-openai/response.h) against the jansson reading it
 * stands in for (json_loadb, the checks sl_json_response makes on a 2xx
 * body, then response_vectors).
 *
 * The rule under test: the fast way may decline anything, but what it
 * accepts, jansson must accept too, with the same vectors and the same
 * token count. Checked on bodies of many shapes (whitespace, key order,
 * extra members of every JSON kind, index present or not, usage in every
 * form), on a list of bodies that are almost JSON (the separators, numbers
 * and strings jsmn lets through), and on thousands of random mutations of
 * good bodies. And the fast way must not decline the good bodies it exists
 * for, or it would be correct and useless.
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "instance.h"
#include "response.h"

static uint64_t rng_state = 0x853c49e6748fea9bu;

static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* --- the reference: what the plugin's jansson path accepts --- */

static bool jansson_read(const char *body, size_t len, const response_batch *b, uint64_t *tokens) {
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    json_t *err = json_is_object(root) ? json_object_get(root, "error") : NULL;
    bool ok = json_is_object(root) && (!err || json_is_null(err));
    if (ok) {
        sl_call call;
        sl_call_init(&call, NULL, NULL);
        ok = response_vectors(&call, root, "m", b) == 0;
        *tokens = call.tokens_in;
    }
    json_decref(root);
    return ok;
}

/* --- bodies --- */

typedef struct body {
    char *p;
    size_t len, cap;
} body;

static void put(body *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(body *b, const char *s) { put(b, s, strlen(s)); }

static void putf(body *b, const char *fmt, ...) {
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    put(b, tmp, (size_t)n);
}

/* Whitespace, usually none (as servers write it), sometimes any mix. */
static void ws(body *b, bool loose) {
    if (!loose || rnd() % 3) return;
    static const char *w[] = {" ", "\n", "\t", "\r\n  ", "  "};
    puts_(b, w[rnd() % 5]);
}

static void b64_floats(body *b, const float *v, uint32_t dim) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = (size_t)dim * 4;
    unsigned char bytes[4 * 64];
    for (uint32_t i = 0; i < dim; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++) bytes[i * 4 + k] = (unsigned char)(u >> (8 * k));
    }
    puts_(b, "\"");
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)bytes[i] << 16;
        if (i + 1 < n) x |= (uint32_t)bytes[i + 1] << 8;
        if (i + 2 < n) x |= bytes[i + 2];
        char q[4] = {tab[x >> 18 & 63], tab[x >> 12 & 63], i + 1 < n ? tab[x >> 6 & 63] : '=',
                     i + 2 < n ? tab[x & 63] : '='};
        put(b, q, 4);
    }
    puts_(b, "\"");
}

/* A JSON value of any kind for members the reader skips. */
static void any_value(body *b, int depth, bool loose) {
    static const char *atoms[] = {"0",
                                  "-0",
                                  "17",
                                  "-3.25",
                                  "1e5",
                                  "2.5E-3",
                                  "true",
                                  "false",
                                  "null",
                                  "\"\"",
                                  "\"x y\"",
                                  "\"caf\xc3\xa9 \xe2\x82\xac\"",
                                  "1234567890123",
                                  "\"embedding\"",
                                  "0.0",
                                  "-1E+2"};
    uint32_t r = depth > 2 ? 0 : rnd() % 4;
    if (r < 2) {
        const char *a = atoms[rnd() % (sizeof atoms / sizeof *atoms)];
        put(b, a, strlen(a));
    } else if (r == 2) {
        puts_(b, "[");
        int n = (int)(rnd() % 3);
        for (int i = 0; i < n; i++) {
            if (i) puts_(b, ",");
            ws(b, loose);
            any_value(b, depth + 1, loose);
            ws(b, loose);
        }
        puts_(b, "]");
    } else {
        puts_(b, "{");
        int n = (int)(rnd() % 3);
        for (int i = 0; i < n; i++) {
            if (i) puts_(b, ",");
            ws(b, loose);
            putf(b, "\"k%d\"", i);
            ws(b, loose);
            puts_(b, ":");
            ws(b, loose);
            any_value(b, depth + 1, loose);
        }
        puts_(b, "}");
    }
}

/* A good response for n texts of dim floats, in one of many shapes. */
static void good_body(body *b, size_t n, uint32_t dim, bool loose) {
    b->len = 0;
    size_t order[16];
    for (size_t i = 0; i < n; i++) order[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd() % i, t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    bool with_index = rnd() % 4 != 0;
    if (!with_index)
        for (size_t i = 0; i < n; i++) order[i] = i;
    ws(b, loose);
    puts_(b, "{");
    int members = 0;
    const char *top[] = {"object", "data", "model", "usage", "error", "extra"};
    int first = rnd() % 6;
    for (int m = 0; m < 6; m++) {
        const char *key = top[(first + m) % 6];
        bool must = strcmp(key, "data") == 0;
        if (!must && rnd() % 3 == 0) continue;
        if (members++) puts_(b, ",");
        ws(b, loose);
        putf(b, "\"%s\"", key);
        ws(b, loose);
        puts_(b, ":");
        ws(b, loose);
        if (strcmp(key, "object") == 0)
            puts_(b, "\"list\"");
        else if (strcmp(key, "model") == 0)
            puts_(b, "\"text-embedding-3-small\"");
        else if (strcmp(key, "error") == 0)
            puts_(b, "null");
        else if (strcmp(key, "extra") == 0)
            any_value(b, 0, loose);
        else if (strcmp(key, "usage") == 0) {
            static const char *counts[] = {"12", "0", "-4", "7.0", "\"9\"", "null", "{\"x\":1}", "99"};
            putf(b, "{\"prompt_tokens\":%s,", counts[rnd() % 8]);
            ws(b, loose);
            puts_(b, "\"total_tokens\":12}");
        } else {
            puts_(b, "[");
            for (size_t i = 0; i < n; i++) {
                if (i) puts_(b, ",");
                ws(b, loose);
                puts_(b, "{");
                int fields = 0, f0 = rnd() % 3;
                for (int f = 0; f < 3; f++) {
                    int which = (f0 + f) % 3;
                    if (which == 0 && !with_index) continue;
                    if (which == 2 && rnd() % 2) continue;
                    if (fields++) puts_(b, ",");
                    ws(b, loose);
                    if (which == 0)
                        putf(b, "\"index\":%zu", order[i]);
                    else if (which == 1) {
                        puts_(b, "\"embedding\":");
                        ws(b, loose);
                        float v[64];
                        for (uint32_t j = 0; j < dim; j++)
                            v[j] = (float)((int)(rnd() % 2001) - 1000) / 997.0f + (float)order[i];
                        b64_floats(b, v, dim);
                    } else {
                        puts_(b, "\"object\":");
                        any_value(b, 0, loose);
                    }
                    ws(b, loose);
                }
                puts_(b, "}");
            }
            puts_(b, "]");
        }
        ws(b, loose);
    }
    puts_(b, "}");
    ws(b, loose);
}

/* --- the checks --- */

typedef struct tally {
    long fast, slow, both;
} tally;

/* Reads body both ways; what the fast way accepts must be what jansson
 * reads, vectors and tokens alike. */
static bool agree(const char *body_p, size_t len, size_t n, uint32_t dim, tally *t) {
    size_t sent[16];
    for (size_t i = 0; i < n; i++) sent[i] = n - 1 - i; /* slots in reverse: the mapping matters */
    float a[16 * 64], b[16 * 64];
    for (size_t i = 0; i < n * dim; i++) a[i] = b[i] = -7.0f;
    response_batch fa = {sent, n, dim, a}, fb = {sent, n, dim, b};
    uint64_t ta = 1234, tb = 5678;
    bool fast = response_read(body_p, len, &fa, &ta);
    bool slow = jansson_read(body_p, len, &fb, &tb);
    if (t) {
        t->fast += fast;
        t->slow += slow;
        t->both += fast && slow;
    }
    if (fast && !slow) {
        fprintf(stderr, "the fast way accepted what jansson refuses: %.*s\n", (int)(len > 300 ? 300 : len),
                body_p);
        CHECK(!"fast accepted a body jansson refuses");
        return false;
    }
    if (fast) {
        CHECK(memcmp(a, b, n * dim * sizeof *a) == 0);
        CHECK_INT(ta, tb);
    }
    return fast;
}

static bool agree_str(const char *s, size_t n, uint32_t dim) { return agree(s, strlen(s), n, dim, NULL); }

/* Good bodies of every shape: read the fast way, and the same as jansson. */
static void test_good_bodies_are_read_fast_and_the_same(void) {
    body b = {0};
    tally t = {0};
    for (int i = 0; i < 3000; i++) {
        size_t n = 1 + rnd() % 6;
        uint32_t dim = 1 + rnd() % 10;
        good_body(&b, n, dim, i % 2);
        bool fast = agree(b.p, b.len, n, dim, &t);
        if (!fast) fprintf(stderr, "declined a good body: %.*s\n", (int)(b.len > 400 ? 400 : b.len), b.p);
        CHECK(fast);
    }
    fprintf(stderr, "good bodies: %ld read fast, %ld by jansson\n", t.fast, t.slow);
    free(b.p);
}

/* As the fake provider writes it, 384 floats: the hot path. */
static void test_fake_providers_body_is_read_fast(void) {
    body b = {0};
    puts_(&b, "{\"object\":\"list\",\"data\":[");
    for (int i = 0; i < 3; i++) {
        float v[64];
        putf(&b, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":", i ? "," : "", i);
        for (int j = 0; j < 64; j++) v[j] = (float)(i * 64 + j) / 1000.0f;
        b64_floats(&b, v, 64);
        puts_(&b, "}");
    }
    putf(&b, "],\"model\":\"text-embedding-3-small\",\"usage\":{\"prompt_tokens\":42,\"total_tokens\":42}}");
    size_t sent[3] = {0, 1, 2};
    float out[3 * 64];
    response_batch rb = {sent, 3, 64, out};
    uint64_t tokens = 0;
    CHECK(response_read(b.p, b.len, &rb, &tokens));
    CHECK_INT(tokens, 42);
    CHECK(out[0] == 0.0f && out[65] == 0.065f && out[3 * 64 - 1] == 0.191f);
    CHECK(agree(b.p, b.len, 3, 64, NULL));
    free(b.p);
}

/* Bodies that are not JSON, or not jansson's, though jsmn tokenises most
 * of them: each must be declined (jansson then refuses it with its message)
 * or, where jansson reads it, read the same. */
static void test_almost_json_is_declined(void) {
    const char *E = "\"AACAPwAAIMA=\""; /* 1.0, -2.5 */
    char buf[512];
    const char *shapes[] = {
        "{\"data\" [{\"index\":0,\"embedding\":%s}]}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],}",
        "{\"data\":[{\"index\":0,\"embedding\":%s},]}",
        "{,\"data\":[{\"index\":0,\"embedding\":%s}]}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}] \"usage\":{}}",
        "{\"data\":[{\"index\":0 \"embedding\":%s}]}",
        "{\"data\":[{\"index\":0,,\"embedding\":%s}]}",
        "{\"data\":[{\"index\"::0,\"embedding\":%s}]}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}]}}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}]} {}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}]} x",
        "[{\"data\":[{\"index\":0,\"embedding\":%s}]}]",
        "{\"data\":[{\"index\":0,\"embedding\":%s}]",
        "{\"data\":[{\"index\":01,\"embedding\":%s}]}",
        "{\"data\":[{\"index\":0.0,\"embedding\":%s}]}",
        "{\"data\":[{\"index\":0e0,\"embedding\":%s}]}",
        "{\"data\":[{\"index\":-,\"embedding\":%s}]}",
        "{\"data\":[{\"index\":nul,\"embedding\":%s}]}",
        "{\"data\":[{\"index\":null,\"embedding\":%s}]}",
        "{\"data\":[{\"index\":\"0\",\"embedding\":%s}]}",
        "{\"data\":[{\"index\":0,\"index\":0,\"embedding\":%s}]}",
        "{\"data\":[{\"index\":0,\"embedding\":%s,\"embedding\":\"AAAAAAAAAAA=\"}]}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"data\":[]}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"error\":{\"message\":\"x\"}}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"error\":\"x\"}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"error\":false}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"model\":\"a\x01b\"}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"model\":\"\xff\"}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"model\":\"\xed\xa0\x80\"}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"model\":\"a\\u0041\"}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"model\":\"\\ud800\"}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"n\":1e999}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"n\":99999999999999999999}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"n\":[1 2]}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"n\":{\"a\":1:2}}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"n\":{\"a\"}}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"n\":+1}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"n\":.5}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"n\":1.}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"n\":True}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"usage\":{\"prompt_tokens\":5,\"prompt_tokens\":7}}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"usage\":{\"prompt_tokens\":5},\"usage\":{}}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"usage\":{\"prompt_tokens\":-0}}",
        "{\"data\":[{\"index\":-0,\"embedding\":%s}]}",
        "{\"data\":[{\"index\":1,\"embedding\":%s}]}",
        "{\"data\":[{\"embedding\":%s}]}",
        "{\"d\\u0061ta\":[{\"index\":0,\"embedding\":%s}]}",
        "\xef\xbb\xbf{\"data\":[{\"index\":0,\"embedding\":%s}]}",
        " \n{\"data\":[{\"index\":0,\"embedding\":%s}]}\r\n\t",
        "{\"data\":[{\"index\":0,\"embedding\":%s}]}\f",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]"
        "]]]]]]]]]]]]]]"
        "]]]]]]]]]]]]]]]]}",
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        snprintf(buf, sizeof buf, shapes[i], E);
        agree_str(buf, 1, 2);
    }
    /* those jansson reads and the fast way must read too */
    const char *fine[] = {
        "{\"data\":[{\"index\":-0,\"embedding\":%s}]}",
        "{\"data\":[{\"embedding\":%s}]}",
        " \n{\"data\":[{\"index\":0,\"embedding\":%s}]}\r\n\t",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"error\":null,\"usage\":{\"prompt_tokens\":5.5}}",
        "{\"data\":[{\"index\":0,\"embedding\":%s}],\"usage\":{\"prompt_tokens\":5,\"prompt_tokens\":7}}",
    };
    for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) {
        snprintf(buf, sizeof buf, fine[i], E);
        CHECK(agree_str(buf, 1, 2));
    }
    /* the embedding itself: escapes (even the \/ jansson would read as /),
     * bad characters, bad sizes, non-finite values, not a string */
    const char *embs[] = {"\"AACAPwAAIMA\\u003d\"",
                          "\"AACAPwAAIM\\/=\"",
                          "\"AACAPwAAIM!=\"",
                          "\"AACAPwAAIMAA\"",
                          "\"AACAPwAAwH8=\"",
                          "\"AACAP\"",
                          "[1.0,-2.5]",
                          "\"\"",
                          "null",
                          "\"AACAPw\nAAIMA=\""};
    for (size_t i = 0; i < sizeof embs / sizeof *embs; i++) {
        snprintf(buf, sizeof buf, "{\"data\":[{\"index\":0,\"embedding\":%s}]}", embs[i]);
        bool fast = agree_str(buf, 1, 2);
        CHECK(!fast);
    }
}

/* A NUL anywhere: jsmn stops there, jansson does not. */
static void test_nul_bytes_are_declined(void) {
    const char good[] = "{\"data\":[{\"index\":0,\"embedding\":\"AACAPwAAIMA=\"}],\"model\":\"m\"}";
    size_t len = sizeof good - 1;
    char buf[sizeof good + 1];
    for (size_t at = 0; at <= len; at++) {
        memcpy(buf, good, at);
        buf[at] = '\0';
        memcpy(buf + at + 1, good + at, len - at);
        CHECK(!response_read(buf, len + 1, &(response_batch){(size_t[]){0}, 1, 2, (float[2]){0}},
                             &(uint64_t){0}));
        agree(buf, len + 1, 1, 2, NULL);
    }
}

/* Random damage to good bodies: whatever the fast way still accepts,
 * jansson reads the same. */
static void test_mutated_bodies_never_disagree(void) {
    static const char bytes[] = "{}[]:,\"\\ \n0123456789-+.eEtrufalsn=AZaz/+x";
    body b = {0};
    tally t = {0};
    char *m = NULL;
    for (int i = 0; i < 4000; i++) {
        size_t n = 1 + rnd() % 3;
        uint32_t dim = 1 + rnd() % 4;
        good_body(&b, n, dim, rnd() % 2);
        m = realloc(m, b.len + 8);
        size_t len = b.len;
        memcpy(m, b.p, len);
        int edits = 1 + (int)(rnd() % 2);
        for (int e = 0; e < edits && len; e++) {
            size_t at = rnd() % len;
            uint32_t kind = rnd() % 5;
            char c = rnd() % 8 ? bytes[rnd() % (sizeof bytes - 1)] : (char)(rnd() % 256);
            if (kind == 0) /* replace */
                m[at] = c;
            else if (kind == 1) { /* delete */
                memmove(m + at, m + at + 1, len - at - 1);
                len--;
            } else if (kind == 2) { /* insert */
                memmove(m + at + 1, m + at, len - at);
                m[at] = c;
                len++;
            } else if (kind == 3) /* truncate */
                len = at;
            else /* swap two neighbours */
                if (at + 1 < len) {
                    char x = m[at];
                    m[at] = m[at + 1];
                    m[at + 1] = x;
                }
        }
        agree(m, len, n, dim, &t);
    }
    fprintf(stderr, "mutated bodies: %ld read fast, %ld by jansson, %ld both\n", t.fast, t.slow, t.both);
    CHECK(t.fast > 100); /* some damage leaves JSON both read (a digit for a digit): the rule is exercised */
    free(m);
    free(b.p);
}

/* A body with more tokens than the first guess: counted, then read. */
static void test_many_tokens_are_counted_then_read(void) {
    body b = {0};
    puts_(&b, "{\"data\":[{\"index\":0,\"embedding\":\"AACAPwAAIMA=\"}],\"extra\":[");
    for (int i = 0; i < 500; i++) putf(&b, "%s{\"a\":[1,2,3]}", i ? "," : "");
    puts_(&b, "]}");
    CHECK(agree(b.p, b.len, 1, 2, NULL));
    free(b.p);
}

int main(void) {
    test_good_bodies_are_read_fast_and_the_same();
    test_fake_providers_body_is_read_fast();
    test_almost_json_is_declined();
    test_nul_bytes_are_declined();
    test_mutated_bodies_never_disagree();
    test_many_tokens_are_counted_then_read();
    return check_done();
}
