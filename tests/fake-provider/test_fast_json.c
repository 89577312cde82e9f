/* test_fast_json.c - the fake provider's request parser (fast_json.c) gives
 * the values json_loadb gives, or gives up, and never takes what jansson
 * refuses.
 *
 * - Hand-written cases: each is expected to parse fast (with the same
 *   value as jansson) or to fall back, and where jansson refuses the
 *   input, the fast parser must refuse it too.
 * - Random trees (strings with escapes, control characters, every UTF-8
 *   length, surrogate pairs; integers at the limits; reals; nesting)
 *   dumped by jansson with several flag sets: every one must take the fast
 *   path and compare json_equal.
 * - Each dump mutated many times (a byte flipped, deleted, duplicated or
 *   replaced by a JSON metacharacter): the fast parser must never accept
 *   what jansson refuses, and what both accept must be equal.
 * - A request like embed-openai's (128 inputs of 1,000 characters) and one
 *   like llm-openai's take the fast path. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fast_json.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* 1 when both refuse or both give equal values; 0 when they disagree.
 * *fast tells whether the fast parser answered. */
static int agree(const char *s, size_t n, int *fast) {
    json_error_t err;
    json_t *ref = json_loadb(s, n, 0, &err);
    json_t *got = fj_loadb(s, n);
    *fast = got != NULL;
    int ok = !got || (ref && json_equal(got, ref));
    if (!ok) fprintf(stderr, "disagree on %zu bytes: %.*s\n", n, (int)(n < 300 ? n : 300), s);
    json_decref(ref);
    json_decref(got);
    return ok;
}

struct tcase {
    const char *text;
    int fast; /* 1: must take the fast path; 0: must fall back */
};

static void hand_written(void) {
    static const struct tcase cases[] = {
        {"{}", 1},
        {"[]", 1},
        {" \t\r\n{ \"a\" : 1 , \"b\":[true,false,null] } \n", 1},
        {"{\"model\":\"m\",\"input\":[\"x\",\"y\"],\"dimensions\":384}", 1},
        {"[0,-0,1,-1,9223372036854775807,-9223372036854775808]", 1},
        {"[1.5,-0.0,1e3,1E-3,2.5e+10,1e-400]", 1}, /* an underflow is jansson's 0 too */
        {"[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", 1},
        {"[\"\\u00e9\\u4e2d\\ud83d\\ude00\\u0041\"]", 1},
        {"[\"caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80\"]", 1},
        {"{\"a\":1,\"a\":2}", 1}, /* the last one wins in both */
        {"{\"\":\"\"}", 1},
        {"[\"\x7f\"]", 1},
        /* refused by jansson: the fast parser must refuse too */
        {"", 0},
        {"   ", 0},
        {"1", 0},
        {"\"s\"", 0},
        {"null", 0},
        {"{", 0},
        {"[1,]", 0},
        {"{\"a\":1,}", 0},
        {"{\"a\" 1}", 0},
        {"{1:2}", 0},
        {"[01]", 0},
        {"[-]", 0},
        {"[1.]", 0},
        {"[.5]", 0},
        {"[1e]", 0},
        {"[+1]", 0},
        {"[9223372036854775808]", 0},
        {"[-9223372036854775809]", 0},
        {"[1e400]", 0},
        {"[tru]", 0},
        {"[truex]", 0},
        {"[nul]", 0},
        {"[\"a\x01\"]", 0},
        {"[\"a\nb\"]", 0},
        {"[\"\\x\"]", 0},
        {"[\"\\u12\"]", 0},
        {"[\"\\u0000\"]", 0},
        {"[\"\\ud800\"]", 0},
        {"[\"\\udc00\"]", 0},
        {"[\"\\ud800\\u0041\"]", 0},
        {"[\"\xc0\xaf\"]", 0},         /* overlong */
        {"[\"\xe0\x80\xaf\"]", 0},     /* overlong */
        {"[\"\xed\xa0\x80\"]", 0},     /* a surrogate */
        {"[\"\xf4\x90\x80\x80\"]", 0}, /* above U+10FFFF */
        {"[\"\xff\"]", 0},
        {"[\"\xc3\"]", 0},
        {"[\"unterminated", 0},
        {"{} x", 0},
        {"[] []", 0},
        {"[\xc3\xa9]", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int fast;
        const char *t = cases[i].text;
        CHECK(agree(t, strlen(t), &fast));
        if (fast != cases[i].fast)
            fprintf(stderr, "case %zu (%s): fast %d, want %d\n", i, t, fast, cases[i].fast);
        CHECK_INT(fast, cases[i].fast);
    }
    /* a NUL byte inside the buffer (length-delimited, as bodies are) */
    static const char nul[] = "[\"a\0b\"]";
    int fast;
    CHECK(agree(nul, sizeof nul - 1, &fast));
    CHECK_INT(fast, 0);
    /* deeper than FJ_MAX_DEPTH: jansson's to parse */
    size_t deep = FJ_MAX_DEPTH + 10;
    char *d = malloc(2 * deep);
    memset(d, '[', deep);
    memset(d + deep, ']', deep);
    CHECK(agree(d, 2 * deep, &fast));
    CHECK_INT(fast, 0);
    free(d);
}

static json_t *random_string(void) {
    char buf[64];
    size_t n = 0, want = rnd(20);
    while (n < want && n + 5 < sizeof buf) {
        uint32_t k = rnd(10);
        uint32_t v;
        if (k < 5)
            v = 0x20 + rnd(0x5f); /* printable ASCII, quotes and backslashes among it */
        else if (k == 5)
            v = 1 + rnd(0x1f); /* a control character: escaped by the dump */
        else if (k == 6)
            v = 0x80 + rnd(0x780);
        else if (k == 7) {
            v = 0x800 + rnd(0xf800);
            if (v >= 0xd800 && v <= 0xdfff) v = 0xe000;
        } else if (k == 8)
            v = 0x10000 + rnd(0x100000);
        else
            v = "\"\\/\b\f\n\r\t"[rnd(8)];
        if (v < 0x80) {
            buf[n++] = (char)v;
        } else if (v < 0x800) {
            buf[n++] = (char)(0xC0 | (v >> 6));
            buf[n++] = (char)(0x80 | (v & 0x3F));
        } else if (v < 0x10000) {
            buf[n++] = (char)(0xE0 | (v >> 12));
            buf[n++] = (char)(0x80 | ((v >> 6) & 0x3F));
            buf[n++] = (char)(0x80 | (v & 0x3F));
        } else {
            buf[n++] = (char)(0xF0 | (v >> 18));
            buf[n++] = (char)(0x80 | ((v >> 12) & 0x3F));
            buf[n++] = (char)(0x80 | ((v >> 6) & 0x3F));
            buf[n++] = (char)(0x80 | (v & 0x3F));
        }
    }
    return json_stringn(buf, n);
}

static json_t *random_value(int depth) {
    uint32_t k = rnd(depth > 4 ? 6 : 8);
    switch (k) {
    case 0: return random_string();
    case 1: {
        static const json_int_t edge[] = {0, 1, -1, INT64_MAX, INT64_MIN, 4294967296LL, -123456789};
        return json_integer(rnd(2) ? edge[rnd(7)] : (json_int_t)rnd(100000) - 50000);
    }
    case 2: {
        static const double edge[] = {0.5, -0.25, 1e300, -1e-300, 3.141592653589793, 1e21, 123456.789};
        return json_real(rnd(2) ? edge[rnd(7)] : (double)rnd(1000000) / 997.0);
    }
    case 3: return json_true();
    case 4: return json_false();
    case 5: return json_null();
    case 6: {
        json_t *a = json_array();
        for (uint32_t i = rnd(5); i > 0; i--) json_array_append_new(a, random_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (uint32_t i = rnd(5); i > 0; i--) {
            json_t *key = random_string();
            json_object_set_new(o, json_string_value(key), random_value(depth + 1));
            json_decref(key);
        }
        return o;
    }
    }
}

static void random_trees(void) {
    static const size_t flag_sets[] = {JSON_COMPACT, JSON_ENSURE_ASCII, JSON_INDENT(2),
                                       JSON_COMPACT | JSON_ENSURE_ASCII};
    static const char metachars[] = "{}[]:,\"\\ -0.eE9tfnu";
    int fast_trees = 0, trees = 2000, mutants = 0, mutants_fast = 0;
    for (int t = 0; t < trees; t++) {
        json_t *root = rnd(2) ? json_object() : json_array();
        for (uint32_t i = 1 + rnd(6); i > 0; i--) {
            if (json_is_object(root)) {
                json_t *key = random_string();
                json_object_set_new(root, json_string_value(key), random_value(1));
                json_decref(key);
            } else {
                json_array_append_new(root, random_value(1));
            }
        }
        char *s = json_dumps(root, flag_sets[t % 4]);
        size_t n = strlen(s);
        int fast;
        CHECK(agree(s, n, &fast));
        fast_trees += fast;
        /* mutants */
        char *m = malloc(n + 2);
        for (int k = 0; k < 20; k++) {
            size_t mn = n;
            memcpy(m, s, n);
            size_t at = n ? rnd((uint32_t)n) : 0;
            switch (rnd(4)) {
            case 0: m[at] = (char)(m[at] ^ (1u << rnd(8))); break;
            case 1:
                memmove(m + at, m + at + 1, n - at - 1);
                mn = n - 1;
                break;
            case 2:
                memmove(m + at + 1, m + at, n - at);
                mn = n + 1;
                break;
            default: m[at] = metachars[rnd(sizeof metachars - 1)]; break;
            }
            CHECK(agree(m, mn, &fast));
            mutants++;
            mutants_fast += fast;
        }
        free(m);
        free(s);
        json_decref(root);
    }
    CHECK_INT(fast_trees, trees);
    /* some mutants stay valid JSON and some not: both kinds were tried */
    CHECK(mutants_fast > 0);
    CHECK(mutants_fast < mutants);
    printf("random trees: %d of %d fast; mutants: %d of %d parsed fast\n", fast_trees, trees, mutants_fast,
           mutants);
}

static void requests(void) {
    /* embed-openai's body: 128 texts of about 1,000 characters */
    json_t *req = json_object();
    json_object_set_new(req, "model", json_string("text-embedding-3-small"));
    json_t *in = json_array();
    char text[1100];
    for (int i = 0; i < 128; i++) {
        size_t n = 0;
        while (n < 1000) n += (size_t)snprintf(text + n, sizeof text - n, "word%u \"q\" é\n", rnd(1000));
        json_array_append_new(in, json_string(text));
    }
    json_object_set_new(req, "input", in);
    json_object_set_new(req, "dimensions", json_integer(384));
    json_object_set_new(req, "encoding_format", json_string("base64"));
    char *s = json_dumps(req, JSON_COMPACT);
    int fast;
    CHECK(agree(s, strlen(s), &fast));
    CHECK_INT(fast, 1);
    free(s);
    json_decref(req);
    /* llm-openai's: messages with a long content */
    req = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:i}", "model", "gpt-4o-mini", "messages", "role",
                    "system", "content", "Summarise.", "role", "user", "content", text,
                    "max_completion_tokens", 300);
    s = json_dumps(req, JSON_COMPACT);
    CHECK(agree(s, strlen(s), &fast));
    CHECK_INT(fast, 1);
    free(s);
    json_decref(req);
}

int main(void) {
    hand_written();
    random_trees();
    requests();
    return check_done();
}
