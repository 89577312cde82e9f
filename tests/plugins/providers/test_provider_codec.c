/* test_provider_codec.c - the byte-level parts of the SDK's remote helpers (core/remote.c,
 * sluice/remote.h)
 * on their own, without a server: the JSON string escaper and the request
 * bodies built with it (checked byte for byte against what jansson writes
 * for the same values, and parsed back), and the base64 float32 decoder
 * (checked against an encoder of the test's own: every length class, with
 * and without padding, a bad character at every position, wrong lengths,
 * and every kind of non-finite value at every place).
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "instance.h"
#include <sluice/remote.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* --- the escaper --- */

/* What jansson writes for the string s (len bytes). malloc'd. */
static char *jansson_string(const char *s, size_t len) {
    json_t *j = json_stringn_nocheck(s, len);
    char *d = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    return d;
}

/* sl_json_string's output, NUL-terminated, malloc'd; the buffer is
 * started empty so growth is exercised. */
static char *escaped(const char *s, size_t len) {
    sl_buf b = {0};
    size_t bad = 0;
    CHECK(sl_json_string(&b, s, len, &bad));
    sl_buf_add(&b, "", 1);
    CHECK(!b.oom);
    return b.p;
}

/* s escaped is exactly what jansson writes, and reads back as s. */
static void check_like_jansson(const char *s, size_t len) {
    char *mine = escaped(s, len), *theirs = jansson_string(s, len);
    CHECK_STR(mine, theirs);
    json_t *back = json_loads(mine, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CHECK(json_is_string(back));
    CHECK(back && json_string_length(back) == len && memcmp(json_string_value(back), s, len) == 0);
    json_decref(back);
    free(mine);
    free(theirs);
}

static void test_escaper_writes_the_plain_and_empty_strings(void) {
    char *e = escaped("", 0);
    CHECK_STR(e, "\"\"");
    free(e);
    e = escaped("hello, world / 42", 17);
    CHECK_STR(e, "\"hello, world / 42\"");
    free(e);
}

static void test_escaper_escapes_quotes_and_backslashes(void) {
    char *e = escaped("a\"b\\c\"\"\\\\", 9);
    CHECK_STR(e, "\"a\\\"b\\\\c\\\"\\\"\\\\\\\\\"");
    free(e);
    check_like_jansson("\"", 1);
    check_like_jansson("\\", 1);
    check_like_jansson("\\\"", 2);
}

/* Every byte below 0x20 (NUL included), alone and between letters, as
 * jansson writes it: \b \t \n \f \r, the rest \u00XX; DEL is left alone. */
static void test_escaper_escapes_every_control_character(void) {
    for (int c = 0; c < 0x20; c++) {
        char one[1] = {(char)c}, three[3] = {'x', (char)c, 'y'};
        check_like_jansson(one, 1);
        check_like_jansson(three, 3);
    }
    char *e = escaped("\n\t\r\b\f\x01\x1f\x7f", 8);
    CHECK_STR(e, "\"\\n\\t\\r\\b\\f\\u0001\\u001F\x7f\"");
    free(e);
    e = escaped("a\0b", 3);
    CHECK_STR(e, "\"a\\u0000b\"");
    free(e);
}

static void test_escaper_copies_multibyte_utf8(void) {
    const char *s = "na\xc3\xafve \xe2\x86\x92 \xe6\x9d\xb1\xe4\xba\xac \xf0\x9d\x84\x9e \xef\xbf\xbf";
    char *e = escaped(s, strlen(s));
    CHECK(strlen(e) == strlen(s) + 2 && memcmp(e + 1, s, strlen(s)) == 0);
    free(e);
    check_like_jansson(s, strlen(s));
}

/* A random valid UTF-8 text of n code points, one in four a character that
 * needs escaping. */
static size_t random_text(char *out, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t r = rnd() % 16, cp;
        if (r < 4)
            cp = "\"\\\n\x01"[r];
        else if (r < 10)
            cp = 0x20 + rnd() % 0x5f;
        else if (r < 12)
            cp = 0x80 + rnd() % 0x780;
        else if (r < 14)
            do cp = 0x800 + rnd() % 0xf800;
            while (cp >= 0xd800 && cp <= 0xdfff);
        else if (r < 15)
            cp = 0x10000 + rnd() % 0x100000;
        else
            cp = rnd() % 0x20;
        if (cp < 0x80)
            out[o++] = (char)cp;
        else if (cp < 0x800) {
            out[o++] = (char)(0xc0 | cp >> 6);
            out[o++] = (char)(0x80 | (cp & 63));
        } else if (cp < 0x10000) {
            out[o++] = (char)(0xe0 | cp >> 12);
            out[o++] = (char)(0x80 | (cp >> 6 & 63));
            out[o++] = (char)(0x80 | (cp & 63));
        } else {
            out[o++] = (char)(0xf0 | cp >> 18);
            out[o++] = (char)(0x80 | (cp >> 12 & 63));
            out[o++] = (char)(0x80 | (cp >> 6 & 63));
            out[o++] = (char)(0x80 | (cp & 63));
        }
    }
    return o;
}

static void test_escaper_matches_jansson_on_random_texts(void) {
    char *buf = malloc(4 * 300);
    for (int i = 0; i < 500; i++) {
        size_t len = random_text(buf, rnd() % 300);
        CHECK(sl_utf8_valid(buf, len, NULL));
        check_like_jansson(buf, len);
    }
    free(buf);
}

/* A 1 MB text, and one of 100,000 control characters (each written as six
 * bytes: the buffer grows from a fraction of the size). */
static void test_escaper_handles_very_long_texts(void) {
    size_t n = 1 << 20;
    char *big = malloc(4 * n);
    size_t len = random_text(big, n / 2);
    check_like_jansson(big, len);
    memset(big, 1, 100000);
    char *e = escaped(big, 100000);
    CHECK(strlen(e) == 100000 * 6 + 2);
    CHECK(strncmp(e, "\"\\u0001\\u0001", 13) == 0);
    CHECK(strcmp(e + strlen(e) - 7, "\\u0001\"") == 0);
    free(e);
    free(big);
}

/* The escaper checks UTF-8 as it copies: a bad byte anywhere in a text
 * (a stray continuation, a lead without its continuations, an overlong
 * form, a surrogate, past U+10FFFF, a lead cut off by the end) is found at
 * the offset sl_utf8_valid gives for the whole text, and nothing is added
 * to the buffer. */
static void test_escaper_refuses_invalid_utf8_where_the_core_does(void) {
    static const char *bad[] = {
        "\x80",     "\xbf",         "\xc3",         "\xe2\x82",         "\xf0\x9d\x84",
        "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf8\x88\x80\x80",
        "\xff",     "\xc3\x28"};
    char text[600];
    for (int round = 0; round < 300; round++) {
        size_t len = random_text(text, rnd() % 60);
        size_t at = len ? rnd() % (len + 1) : 0;
        while (at && at < len && ((unsigned char)text[at] & 0xc0) == 0x80) at--; /* a character's start */
        const char *b = bad[rnd() % (sizeof bad / sizeof *bad)];
        size_t bl = strlen(b);
        memmove(text + at + bl, text + at, len - at);
        memcpy(text + at, b, bl);
        len += bl;
        size_t want = 0, got = 12345;
        CHECK(!sl_utf8_valid(text, len, &want));
        sl_buf buf = {0};
        sl_buf_add(&buf, "x", 1);
        CHECK(!sl_json_string(&buf, text, len, &got));
        CHECK_INT(got, want);
        CHECK_INT(buf.len, 1);
        sl_buf_free(&buf);
    }
}

/* sl_json_text keeps the checks it had: a non-UTF-8 text fails with its
 * place and byte named and adds nothing to the body; a length without bytes
 * is an invalid argument. */
static void test_text_validates_before_escaping(void) {
    sl_call call;
    sl_call_init(&call, NULL, NULL);
    sl_buf b = {0};
    sl_text ok = {"fine \"text\"", 11}, bad = {"broken \xc3\x28 text", 14}, none = {NULL, 3};
    CHECK_INT(sl_json_text(&call, &ok, "text", 0, &b), 0);
    size_t len = b.len;
    CHECK_INT(sl_json_text(&call, &bad, "text", 5, &b), SL_EBADINPUT);
    CHECK_STR(call.msg, "text 5 is not valid UTF-8 (at byte 7)");
    CHECK_INT(sl_json_text(&call, &bad, "the prompt", SIZE_MAX, &b), SL_EBADINPUT);
    CHECK_STR(call.msg, "the prompt is not valid UTF-8 (at byte 7)");
    const char overlong[] = {'a', (char)0xc0, (char)0xaf}, surrogate[] = {(char)0xed, (char)0xa0, (char)0x80};
    sl_text t1 = {overlong, 3}, t2 = {surrogate, 3};
    CHECK_INT(sl_json_text(&call, &t1, "text", 1, &b), SL_EBADINPUT);
    CHECK_INT(sl_json_text(&call, &t2, "text", 2, &b), SL_EBADINPUT);
    CHECK_INT(sl_json_text(&call, &none, "text", 3, &b), SL_EINVAL);
    CHECK_STR(call.msg, "text 3 has a length but no bytes");
    CHECK_INT(b.len, len);
    sl_buf_add(&b, "", 1);
    CHECK_STR(b.p, "\"fine \\\"text\\\"\"");
    sl_buf_free(&b);
}

/* A frame and its texts make the body jansson would have made of the same
 * object; a failing text leaves no body behind. */
static void test_request_is_what_jansson_writes(void) {
    sl_call call;
    sl_call_init(&call, NULL, NULL);
    sl_json_frame f;
    CHECK_INT(
        sl_json_frame_init(NULL, &f, json_pack("{s:s}", "model", "m\"1"), ",\"input\":[", "]",
                           json_pack("{s:s, s:I}", "encoding_format", "base64", "dimensions", (json_int_t)8)),
        0);
    CHECK_STR(f.head, "{\"model\":\"m\\\"1\",\"input\":[");
    CHECK_STR(f.tail, "],\"encoding_format\":\"base64\",\"dimensions\":8}");
    char buf[3][200];
    sl_text texts[3];
    for (int i = 0; i < 3; i++) texts[i] = (sl_text){buf[i], random_text(buf[i], 40)};
    size_t sent[] = {2, 0};
    sl_buf b = {0};
    CHECK_INT(sl_json_request(&call, &f, texts, sent, 2, "text", &b), 0);
    json_t *want = json_pack("{s:s, s:[s%, s%], s:s, s:I}", "model", "m\"1", "input", buf[2], texts[2].len,
                             buf[0], texts[0].len, "encoding_format", "base64", "dimensions", (json_int_t)8);
    char *w = json_dumps(want, JSON_COMPACT);
    CHECK(b.len == strlen(w) && memcmp(b.p, w, b.len) == 0);
    free(w);
    json_decref(want);
    sl_buf_free(&b);

    sl_text bad[] = {{"ok", 2}, {"\xff", 1}};
    size_t both[] = {0, 1};
    CHECK_INT(sl_json_request(&call, &f, bad, both, 2, "text", &b), SL_EBADINPUT);
    CHECK_STR(call.msg, "text 1 is not valid UTF-8 (at byte 0)");
    CHECK(b.p == NULL && b.len == 0);
    sl_json_frame_free(&f);

    /* one prompt, and an empty `rest` */
    CHECK_INT(sl_json_frame_init(NULL, &f, json_pack("{s:s, s:f}", "model", "x", "temperature", 0.7),
                                 ",\"messages\":[{\"role\":\"user\",\"content\":", "}]", json_object()),
              0);
    sl_text prompt = {"hi\n", 3};
    CHECK_INT(sl_json_request(&call, &f, &prompt, NULL, 1, "the prompt", &b), 0);
    sl_buf_add(&b, "", 1);
    CHECK_STR(b.p, "{\"model\":\"x\",\"temperature\":0.69999999999999996,\"messages\":[{\"role\":\"user\","
                   "\"content\":\"hi\\n\"}]}");
    sl_buf_free(&b);
    sl_json_frame_free(&f);
}

/* --- the base64 decoder --- */

/* dim floats as little-endian float32 base64, padded when `pad`. */
static size_t encode(const float *v, uint32_t dim, bool pad, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = (size_t)dim * 4, o = 0;
    unsigned char *bytes = malloc(n);
    for (uint32_t i = 0; i < dim; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++) bytes[i * 4 + k] = (unsigned char)(u >> (8 * k));
    }
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)bytes[i] << 16;
        if (i + 1 < n) x |= (uint32_t)bytes[i + 1] << 8;
        if (i + 2 < n) x |= bytes[i + 2];
        out[o++] = tab[x >> 18 & 63];
        out[o++] = tab[x >> 12 & 63];
        if (i + 1 < n) out[o++] = tab[x >> 6 & 63];
        if (i + 2 < n) out[o++] = tab[x & 63];
    }
    while (pad && o % 4) out[o++] = '=';
    out[o] = '\0';
    free(bytes);
    return o;
}

static float random_float(void) {
    uint32_t u;
    do u = rnd() << 16 ^ rnd();
    while ((u & 0x7f800000u) == 0x7f800000u);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Every byte at every place of a quad: the 64 alphabet characters decode to
 * their value at that place (the tables the compiler made from the
 * alphabet), and every other byte makes the text invalid. */
static void test_b64_every_byte_at_every_place(void) {
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int shift[4] = {18, 12, 6, 0}, valid = 0;
    for (int c = 0; c < 256; c++) {
        const char *at = c ? strchr(alphabet, c) : NULL;
        valid += at != NULL;
        for (int k = 0; k < 4; k++) {
            char text[16];
            memset(text, 'A', sizeof text);
            text[k] = (char)c;
            float v[3];
            uint32_t bad = 0;
            int rc = sl_b64_floats(text, sizeof text, v, 3, &bad);
            if (!at) {
                CHECK_INT(rc, SL_B64_INVALID);
                continue;
            }
            CHECK_INT(rc, 0);
            uint32_t q = (uint32_t)(at - alphabet) << shift[k];
            unsigned char want[4] = {(unsigned char)(q >> 16), (unsigned char)(q >> 8), (unsigned char)q, 0};
            uint32_t u;
            memcpy(&u, &v[0], 4);
            unsigned char got[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                                    (unsigned char)(u >> 24)};
            CHECK(memcmp(got, want, 4) == 0);
        }
    }
    CHECK_INT(valid, 64);
}

static void test_b64_known_vector(void) {
    float v[2] = {0, 0};
    uint32_t bad = 0;
    CHECK_INT(sl_b64_floats("AACAPwAAIMA=", 12, v, 2, &bad), 0);
    CHECK(v[0] == 1.0f && v[1] == -2.5f);
    CHECK_INT(sl_b64_floats("AACAPwAAIMA", 11, v, 2, &bad), 0);
    CHECK(v[0] == 1.0f && v[1] == -2.5f);
    float w[3];
    CHECK_INT(sl_b64_floats("AACAPwAAIMAAAIB/", 16, w, 3, &bad), SL_B64_NONFINITE); /* +inf */
    CHECK_INT(bad, 2);
}

/* Every dimension from 1 to 50 (each remainder mod 3, so both the 16-char
 * steps and the tail), padded and not, decodes bit for bit. */
static void test_b64_round_trips_every_length(void) {
    float src[50], out[51];
    char s[300];
    for (uint32_t dim = 1; dim <= 50; dim++)
        for (int pad = 0; pad < 2; pad++) {
            for (uint32_t i = 0; i < dim; i++) src[i] = random_float();
            src[0] = -0.0f;
            if (dim > 1) src[1] = 1e-45f; /* a denormal */
            if (dim > 2) src[2] = 3.4028235e38f;
            size_t len = encode(src, dim, pad, s);
            out[dim] = 42.0f;
            uint32_t bad;
            CHECK_INT(sl_b64_size(s, len), dim * 4);
            CHECK_INT(sl_b64_floats(s, len, out, dim, &bad), 0);
            CHECK(memcmp(out, src, dim * 4) == 0);
            CHECK(out[dim] == 42.0f);
        }
}

/* A character outside the alphabet at any position (each position mod 4,
 * in the 16-char steps and in the tail) is refused; so is '=' anywhere but
 * at the end, and the URL-safe alphabet. */
static void test_b64_refuses_a_bad_character_anywhere(void) {
    const char bad[] = {'!', '=', ' ', '\0', '\n', '"', '-', '_', '.', (char)0x80, (char)0xff};
    float src[7], out[7];
    char s[64];
    for (uint32_t dim = 5; dim <= 7; dim++) {
        for (uint32_t i = 0; i < dim; i++) src[i] = random_float();
        size_t len = encode(src, dim, false, s);
        for (size_t at = 0; at < len; at++)
            for (size_t k = 0; k < sizeof bad; k++) {
                char keep = s[at];
                s[at] = bad[k];
                uint32_t b;
                int rc = sl_b64_floats(s, len, out, dim, &b);
                if (rc != SL_B64_INVALID)
                    fprintf(stderr, "dim %u: byte 0x%02x at %zu (mod 4: %zu) accepted\n", dim,
                            (unsigned char)bad[k], at, at % 4);
                CHECK_INT(rc, SL_B64_INVALID);
                s[at] = keep;
            }
        uint32_t b;
        CHECK_INT(sl_b64_floats(s, len, out, dim, &b), 0);
    }
}

/* Lengths that are not base64, or not dim floats' worth, and too much
 * padding. */
static void test_b64_refuses_wrong_lengths(void) {
    float out[4];
    uint32_t b;
    CHECK_INT(sl_b64_size("AACAP", 5), -1);
    CHECK_INT(sl_b64_size("AACAP=", 6), -1);
    CHECK_INT(sl_b64_size("", 0), 0);
    CHECK_INT(sl_b64_size("AA==", 4), 1);
    CHECK_INT(sl_b64_size("AAA=", 4), 2);
    CHECK_INT(sl_b64_floats("AACAPwAAIMA=", 12, out, 3, &b), SL_B64_INVALID);
    CHECK_INT(sl_b64_floats("AACAPwAAIMA=", 12, out, 1, &b), SL_B64_INVALID);
    CHECK_INT(sl_b64_floats("AACAPwAAIM", 10, out, 2, &b), SL_B64_INVALID);
    CHECK_INT(sl_b64_floats("AACAPwAAIMA===", 14, out, 2, &b), SL_B64_INVALID);
    CHECK_INT(sl_b64_floats("AACAPw", 6, out, 1, &b), 0);
    CHECK(out[0] == 1.0f);

    sl_call call;
    sl_call_init(&call, NULL, NULL);
    CHECK_INT(sl_vector_base64(&call, "AACAPwAAI", 9, out, 2, "OpenAI", "m", 3), SL_ERETRY);
    CHECK_STR(call.msg, "OpenAI: embedding 3 is not base64 of float32 values (9 characters)");
    CHECK_INT(sl_vector_base64(&call, "AACAPwAAIMAAAAAA", 16, out, 2, "OpenAI", "m", 0), SL_EFATAL);
    CHECK_CONTAINS(call.msg, "returned 3-dimensional vectors; the config says 2");
    CHECK_INT(sl_vector_base64(&call, "AACAPwAAIM!=", 12, out, 2, "OpenAI", "m", 1), SL_ERETRY);
    CHECK_STR(call.msg, "OpenAI: embedding 1 is not valid base64");
}

/* +inf, -inf, a quiet and a signalling NaN, at every place of a vector
 * that has steps and a tail: refused, naming the first such place. */
static void test_b64_refuses_non_finite_values(void) {
    const uint32_t nonfinite[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffffffffu};
    float src[8], out[8];
    char s[64];
    for (size_t k = 0; k < sizeof nonfinite / sizeof *nonfinite; k++)
        for (uint32_t at = 0; at < 8; at++) {
            for (uint32_t i = 0; i < 8; i++) src[i] = random_float();
            memcpy(&src[at], &nonfinite[k], 4);
            if (at < 6) memcpy(&src[7], &nonfinite[k], 4); /* a second one later: the first is named */
            size_t len = encode(src, 8, true, s);
            uint32_t b = 99;
            CHECK_INT(sl_b64_floats(s, len, out, 8, &b), SL_B64_NONFINITE);
            CHECK_INT(b, at);
        }
    sl_call call;
    sl_call_init(&call, NULL, NULL);
    CHECK_INT(sl_vector_base64(&call, "AACAPwAAwH8=", 12, out, 2, "OpenAI", "m", 4), SL_ERETRY);
    CHECK_STR(call.msg, "OpenAI: embedding 4 has a value that is not a finite number (at 1)");
    /* a bad character and a NaN: the character is what is reported */
    CHECK_INT(sl_vector_base64(&call, "AAC!PwAAwH8=", 12, out, 2, "OpenAI", "m", 4), SL_ERETRY);
    CHECK_STR(call.msg, "OpenAI: embedding 4 is not valid base64");
}

int main(void) {
    test_escaper_writes_the_plain_and_empty_strings();
    test_escaper_escapes_quotes_and_backslashes();
    test_escaper_escapes_every_control_character();
    test_escaper_copies_multibyte_utf8();
    test_escaper_matches_jansson_on_random_texts();
    test_escaper_handles_very_long_texts();
    test_escaper_refuses_invalid_utf8_where_the_core_does();
    test_text_validates_before_escaping();
    test_request_is_what_jansson_writes();
    test_b64_every_byte_at_every_place();
    test_b64_known_vector();
    test_b64_round_trips_every_length();
    test_b64_refuses_a_bad_character_anywhere();
    test_b64_refuses_wrong_lengths();
    test_b64_refuses_non_finite_values();
    return check_done();
}
