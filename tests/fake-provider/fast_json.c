/* fast_json.c - see fast_json.h. A recursive descent over the bytes with
 * jansson's grammar: strings are copied once (escapes decoded into a
 * scratch buffer only when there are any) and validated as jansson
 * validates them; numbers go through strtoll and strtod as in jansson. */
#include "fast_json.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct fj {
    const unsigned char *p, *end;
    char *scratch; /* decoded strings with escapes */
    size_t cap;
    int depth;
};

/* Byte classes inside a string: 0 plain ASCII, 1 '"', 2 '\\', 3 a control
 * character (jansson refuses it), 4 the first byte of a UTF-8 sequence. */
static unsigned char cls[256];

static void cls_init(void) {
    static int done;
    if (done) return;
    for (int c = 0; c < 256; c++) cls[c] = c < 0x20 ? 3 : c >= 0x80 ? 4 : 0;
    cls['"'] = 1;
    cls['\\'] = 2;
    done = 1;
}

static void skip_ws(struct fj *f) {
    while (f->p < f->end && (*f->p == ' ' || *f->p == '\t' || *f->p == '\n' || *f->p == '\r')) f->p++;
}

/* The length of the valid UTF-8 sequence at p (jansson's rules: no
 * overlong form, no surrogate, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    size_t n;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    return n;
}

static int hex4(const unsigned char *p, const unsigned char *end, uint32_t *out) {
    if (end - p < 4) return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            v |= (c | 0x20) - 'a' + 10;
        else
            return -1;
    }
    *out = v;
    return 0;
}

static int room(struct fj *f, size_t need) {
    if (need <= f->cap) return 0;
    size_t cap = f->cap ? f->cap : 4096;
    while (cap < need) cap *= 2;
    char *g = realloc(f->scratch, cap);
    if (!g) return -1;
    f->scratch = g;
    f->cap = cap;
    return 0;
}

/* The string whose opening quote was just passed: its bytes in *s, *n
 * (in the input when it has no escape, else in the scratch buffer). */
static int string_body(struct fj *f, const char **s, size_t *n) {
    const unsigned char *start = f->p, *p = f->p, *end = f->end;
    for (;;) { /* the common case: no escape */
        while (p < end && cls[*p] == 0) p++;
        if (p == end) return -1;
        if (cls[*p] == 1) {
            *s = (const char *)start;
            *n = (size_t)(p - start);
            f->p = p + 1;
            return 0;
        }
        if (cls[*p] != 4) break;
        size_t k = utf8_len(p, end);
        if (!k) return -1;
        p += k;
    }
    if (cls[*p] == 3) return -1;
    /* an escape: decode from here on into the scratch buffer (an escape
     * shrinks or keeps the length, so the rest of the input bounds it) */
    size_t o = (size_t)(p - start);
    if (room(f, (size_t)(end - start))) return -1;
    char *d = f->scratch;
    memcpy(d, start, o);
    while (p < end) {
        unsigned c = *p;
        switch (cls[c]) {
        case 0: d[o++] = (char)c, p++; continue;
        case 1:
            *s = d;
            *n = o;
            f->p = p + 1;
            return 0;
        case 3: return -1;
        case 4: {
            size_t k = utf8_len(p, end);
            if (!k) return -1;
            memcpy(d + o, p, k);
            o += k;
            p += k;
            continue;
        }
        default: break;
        }
        if (end - p < 2) return -1;
        c = p[1];
        p += 2;
        switch (c) {
        case '"': d[o++] = '"'; continue;
        case '\\': d[o++] = '\\'; continue;
        case '/': d[o++] = '/'; continue;
        case 'b': d[o++] = '\b'; continue;
        case 'f': d[o++] = '\f'; continue;
        case 'n': d[o++] = '\n'; continue;
        case 'r': d[o++] = '\r'; continue;
        case 't': d[o++] = '\t'; continue;
        case 'u': break;
        default: return -1;
        }
        uint32_t v;
        if (hex4(p, end, &v)) return -1;
        p += 4;
        if (v == 0 || (v >= 0xDC00 && v <= 0xDFFF)) return -1; /* jansson: NUL, a lone low surrogate */
        if (v >= 0xD800 && v <= 0xDBFF) {
            uint32_t lo;
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, end, &lo) || lo < 0xDC00 ||
                lo > 0xDFFF)
                return -1;
            p += 6;
            v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
        }
        /* at most 4 bytes from the 6 or 12 read */
        if (v < 0x80) {
            d[o++] = (char)v;
        } else if (v < 0x800) {
            d[o++] = (char)(0xC0 | (v >> 6));
            d[o++] = (char)(0x80 | (v & 0x3F));
        } else if (v < 0x10000) {
            d[o++] = (char)(0xE0 | (v >> 12));
            d[o++] = (char)(0x80 | ((v >> 6) & 0x3F));
            d[o++] = (char)(0x80 | (v & 0x3F));
        } else {
            d[o++] = (char)(0xF0 | (v >> 18));
            d[o++] = (char)(0x80 | ((v >> 12) & 0x3F));
            d[o++] = (char)(0x80 | ((v >> 6) & 0x3F));
            d[o++] = (char)(0x80 | (v & 0x3F));
        }
    }
    return -1;
}

static int is_digit(const struct fj *f) { return f->p < f->end && *f->p >= '0' && *f->p <= '9'; }

/* jansson's number grammar: an integer when it has no fraction and no
 * exponent (strtoll; out of range is jansson's error), else a real
 * (strtod; an overflow is jansson's error, an underflow is not). */
static json_t *number(struct fj *f) {
    const unsigned char *start = f->p;
    int real = 0;
    if (*f->p == '-') f->p++;
    if (f->p < f->end && *f->p == '0') {
        f->p++;
        if (is_digit(f)) return NULL;
    } else if (is_digit(f)) {
        while (is_digit(f)) f->p++;
    } else {
        return NULL;
    }
    if (f->p < f->end && *f->p == '.') {
        f->p++;
        if (!is_digit(f)) return NULL;
        while (is_digit(f)) f->p++;
        real = 1;
    }
    if (f->p < f->end && (*f->p == 'e' || *f->p == 'E')) {
        f->p++;
        if (f->p < f->end && (*f->p == '+' || *f->p == '-')) f->p++;
        if (!is_digit(f)) return NULL;
        while (is_digit(f)) f->p++;
        real = 1;
    }
    char tmp[128];
    size_t n = (size_t)(f->p - start);
    if (n >= sizeof tmp) return NULL; /* jansson's to judge */
    memcpy(tmp, start, n);
    tmp[n] = '\0';
    errno = 0;
    if (!real) {
        long long v = strtoll(tmp, NULL, 10);
        if (errno == ERANGE) return NULL;
        return json_integer((json_int_t)v);
    }
    double d = strtod(tmp, NULL);
    if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL)) return NULL;
    return json_real(d);
}

static int literal(struct fj *f, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(f->end - f->p) < n || memcmp(f->p, word, n) != 0) return -1;
    f->p += n;
    return 0;
}

static json_t *value(struct fj *f);

static json_t *array(struct fj *f) {
    json_t *a = json_array();
    if (!a) return NULL;
    f->p++;
    skip_ws(f);
    if (f->p < f->end && *f->p == ']') {
        f->p++;
        return a;
    }
    for (;;) {
        json_t *v = value(f);
        if (!v || json_array_append_new(a, v)) break;
        skip_ws(f);
        if (f->p == f->end) break;
        if (*f->p == ']') {
            f->p++;
            return a;
        }
        if (*f->p != ',') break;
        f->p++;
        skip_ws(f);
    }
    json_decref(a);
    return NULL;
}

static json_t *object(struct fj *f) {
    json_t *o = json_object();
    if (!o) return NULL;
    f->p++;
    skip_ws(f);
    if (f->p < f->end && *f->p == '}') {
        f->p++;
        return o;
    }
    char small[256], *key = NULL;
    for (;;) {
        if (f->p == f->end || *f->p != '"') break;
        f->p++;
        const char *s;
        size_t n;
        if (string_body(f, &s, &n)) break;
        /* a NUL-terminated copy: the key's bytes may be the scratch buffer,
         * which the value may reuse */
        key = n < sizeof small ? small : malloc(n + 1);
        if (!key) break;
        memcpy(key, s, n);
        key[n] = '\0';
        skip_ws(f);
        if (f->p == f->end || *f->p != ':') break;
        f->p++;
        skip_ws(f);
        json_t *v = value(f);
        if (!v || json_object_set_new_nocheck(o, key, v)) break;
        if (key != small) free(key);
        key = NULL;
        skip_ws(f);
        if (f->p == f->end) break;
        if (*f->p == '}') {
            f->p++;
            return o;
        }
        if (*f->p != ',') break;
        f->p++;
        skip_ws(f);
    }
    if (key != small) free(key);
    json_decref(o);
    return NULL;
}

static json_t *value(struct fj *f) {
    if (f->p == f->end) return NULL;
    switch (*f->p) {
    case '{':
    case '[': {
        if (++f->depth > FJ_MAX_DEPTH) return NULL;
        json_t *v = *f->p == '{' ? object(f) : array(f);
        f->depth--;
        return v;
    }
    case '"': {
        f->p++;
        const char *s;
        size_t n;
        if (string_body(f, &s, &n)) return NULL;
        return json_stringn_nocheck(s, n);
    }
    case 't': return literal(f, "true") ? NULL : json_true();
    case 'f': return literal(f, "false") ? NULL : json_false();
    case 'n': return literal(f, "null") ? NULL : json_null();
    default: return number(f);
    }
}

json_t *fj_loadb(const char *buf, size_t len) {
    cls_init();
    struct fj f = {.p = (const unsigned char *)buf, .end = (const unsigned char *)buf + len};
    skip_ws(&f);
    json_t *v = NULL;
    if (f.p < f.end && (*f.p == '{' || *f.p == '[')) v = value(&f);
    skip_ws(&f);
    if (v && f.p != f.end) { /* trailing bytes: jansson's error */
        json_decref(v);
        v = NULL;
    }
    free(f.scratch);
    return v;
}
