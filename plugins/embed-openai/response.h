/* response.h - embed-openai's reading of an embeddings response: fast, and
 * with jansson when the fast way declines.
 *
 * A response of 128 base64 vectors is about 270 KB, nearly all of it the
 * vectors' strings. jansson reads it into a tree, copying every string a
 * byte at a time: 26 us per vector, more than the rest of a chunk's work
 * together (bench/codec_bench.c). Here the body is tokenised in place by
 * jsmn (Debian's libjsmn-dev, one header), every byte is checked as jansson
 * would check it, and each vector is decoded from the body straight into
 * the batch's output: about 2 us per vector, decoding included.
 *
 * It only ever says "read, and the same as jansson would have" or "not
 * mine": vectors as number arrays, an escape in any string, a number out of
 * jansson's range, nesting deeper than 32, a wrong count, an index missing
 * here and present there, a vector that does not decode, anything that is
 * not JSON, all decline, and the caller reads the body again with jansson,
 * which gives the answer and the messages it always gave. Declining is
 * always safe; accepting is only allowed for bodies jansson reads the same.
 *
 * Header-only and static: the plugin and its tests include it.
 */
#ifndef SLUICE_EMBED_OPENAI_RESPONSE_H
#define SLUICE_EMBED_OPENAI_RESPONSE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include <sluice/remote.h>

#define JSMN_STATIC       /* this file's own copy */
#define JSMN_STRICT       /* primitives are numbers, true, false, null */
#define JSMN_PARENT_LINKS /* closing a container is O(1), not a walk back */
#include <jsmn.h>

#define RESPONSE_MAX_DEPTH 32

/* Tokens of a body, walked in order: i is the next one. */
typedef struct jreader {
    const char *js;
    const jsmntok_t *t;
    int n, i;
} jreader;

/* A token's first and past-the-last bytes (a string's quotes included). */
static inline int tok_begin(const jsmntok_t *t) { return t->type == JSMN_STRING ? t->start - 1 : t->start; }
static inline int tok_end(const jsmntok_t *t) { return t->type == JSMN_STRING ? t->end + 1 : t->end; }

static inline bool tok_is(const jreader *r, int k, const char *s) {
    size_t n = strlen(s);
    return (size_t)(r->t[k].end - r->t[k].start) == n && memcmp(r->js + r->t[k].start, s, n) == 0;
}

/* js[from, to) is JSON whitespace around exactly one `sep`, or whitespace
 * only when sep is 0. jsmn does not check separators; this does. */
static inline bool json_gap(const char *js, int from, int to, char sep) {
    int seps = 0;
    for (int i = from; i < to; i++) {
        char c = js[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
        if (c != sep || !sep) return false;
        seps++;
    }
    return seps == (sep ? 1 : 0);
}

/* A string's bytes as jansson takes them, and with nothing to unescape: no
 * backslash (declined: the responses this reads have none), no control
 * character, valid UTF-8. */
static inline bool json_plain(const char *s, int n) {
    for (int i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == '\\') return false;
    return sl_utf8_valid(s, (size_t)n, NULL);
}

static inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* A JSON number jansson reads without error: *integer when it has neither
 * fraction nor exponent (jansson's integer), then in *value. Integers of
 * more than 18 digits and reals that might overflow a double are declined
 * rather than judged. */
static inline bool json_number(const char *s, int n, bool *integer, long long *value) {
    int i = 0, digits = 0;
    bool neg = i < n && s[i] == '-';
    if (neg) i++;
    long long v = 0;
    if (i < n && s[i] == '0')
        i++, digits = 1;
    else
        for (; i < n && is_digit(s[i]); i++, digits++)
            if (digits < 18) v = v * 10 + (s[i] - '0');
    if (!digits) return false;
    *integer = true;
    if (i < n && s[i] == '.') {
        int frac = 0;
        for (i++; i < n && is_digit(s[i]); i++) frac++;
        if (!frac) return false;
        *integer = false;
    }
    long exp = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = i < n && s[i] == '-';
        if (i < n && (s[i] == '-' || s[i] == '+')) i++;
        int edigits = 0;
        for (; i < n && is_digit(s[i]); i++, edigits++)
            if (exp < 100000) exp = exp * 10 + (s[i] - '0');
        if (!edigits) return false;
        if (eneg) exp = -exp;
        *integer = false;
    }
    if (i != n) return false;
    if (*integer) {
        if (digits > 18) return false;
        *value = neg ? -v : v;
        return true;
    }
    return digits + exp <= 300;
}

/* A primitive: true, false, null or a number. */
static inline bool json_primitive(const char *s, int n) {
    bool integer;
    long long v;
    if (n == 4 && (memcmp(s, "true", 4) == 0 || memcmp(s, "null", 4) == 0)) return true;
    if (n == 5 && memcmp(s, "false", 5) == 0) return true;
    return json_number(s, n, &integer, &v);
}

/* Stepping through the members of the container at token c: the gaps
 * before, between and after them are checked as it goes. */
typedef struct jmembers {
    int c, left, pos, last; /* last: the previous value's token, -1 before the first */
} jmembers;

/* Starts on the container at r->i if it is of `type`. */
static inline bool members_open(jreader *r, jmembers *m, jsmntype_t type) {
    if (r->i >= r->n || r->t[r->i].type != type) return false;
    *m = (jmembers){r->i, r->t[r->i].size, r->t[r->i].start + 1, -1};
    r->i++;
    return true;
}

/* The next member: 1 with r->i at its value (and *key at its key, in an
 * object), after which the caller moves r->i past the value; 0 at the
 * closing bracket; -1 when the JSON there is not what jansson would read.
 */
static inline int members_next(jreader *r, jmembers *m, int *key) {
    const jsmntok_t *c = &r->t[m->c];
    if (m->last >= 0) m->pos = tok_end(&r->t[m->last]);
    if (!m->left) return json_gap(r->js, m->pos, c->end - 1, 0) ? 0 : -1;
    if (r->i >= r->n) return -1;
    char sep = m->last >= 0 ? ',' : 0;
    m->left--;
    if (c->type == JSMN_OBJECT) {
        const jsmntok_t *k = &r->t[r->i];
        if (k->type != JSMN_STRING || k->size != 1 || !json_gap(r->js, m->pos, k->start - 1, sep) ||
            !json_plain(r->js + k->start, k->end - k->start))
            return -1;
        *key = r->i++;
        if (r->i >= r->n || !json_gap(r->js, k->end + 1, tok_begin(&r->t[r->i]), ':')) return -1;
    } else if (!json_gap(r->js, m->pos, tok_begin(&r->t[r->i]), sep))
        return -1;
    m->last = r->i;
    return 1;
}

/* Checks the value at r->i, whatever it holds, and moves past it. */
static inline bool json_skip(jreader *r, int depth) {
    if (r->i >= r->n) return false;
    const jsmntok_t *t = &r->t[r->i];
    if (t->type == JSMN_STRING || t->type == JSMN_PRIMITIVE) {
        r->i++;
        const char *s = r->js + t->start;
        int n = t->end - t->start;
        return t->size == 0 && (t->type == JSMN_STRING ? json_plain(s, n) : json_primitive(s, n));
    }
    jmembers m;
    if (depth >= RESPONSE_MAX_DEPTH || !members_open(r, &m, t->type)) return false;
    int key, rc;
    while ((rc = members_next(r, &m, &key)) == 1)
        if (!json_skip(r, depth + 1)) return false;
    return rc == 0;
}

/* A primitive value at r->i that is a JSON integer, in *v; moves past it
 * either way. false when it is anything else (a real, true, a string...). */
static inline bool json_integer_at(jreader *r, long long *v) {
    const jsmntok_t *t = &r->t[r->i];
    bool integer = false;
    if (t->type != JSMN_PRIMITIVE || t->size != 0) return false;
    r->i++;
    return json_number(r->js + t->start, t->end - t->start, &integer, v) && integer;
}

/* The batch a response answers: sent[k] is the slot in out (of dim floats
 * each) of the k-th text sent. */
typedef struct response_batch {
    const size_t *sent;
    size_t nsent;
    uint32_t dim;
    float *out;
} response_batch;

/* One data[] item: {"index": K, "embedding": "BASE64", ...}, K defaulting
 * to the item's place as vectors() has it. */
static inline bool response_item(jreader *r, const response_batch *b, unsigned char *seen, size_t place) {
    jmembers m;
    if (!members_open(r, &m, JSMN_OBJECT)) return false;
    long long k = (long long)place;
    int key, rc, index = -1, emb = -1;
    while ((rc = members_next(r, &m, &key)) == 1) {
        if (tok_is(r, key, "index")) {
            if (index >= 0) return false; /* twice: jansson's "last wins" is left to jansson */
            index = r->i;
            if (!json_integer_at(r, &k)) return false;
        } else if (tok_is(r, key, "embedding")) {
            if (emb >= 0 || r->t[r->i].type != JSMN_STRING || r->t[r->i].size != 0) return false;
            emb = r->i++; /* its bytes are checked by decoding: base64 is a subset of plain JSON */
        } else if (!json_skip(r, 2))
            return false;
    }
    if (rc || emb < 0 || k < 0 || (unsigned long long)k >= b->nsent || seen[k]) return false;
    seen[k] = 1;
    const jsmntok_t *e = &r->t[emb];
    uint32_t bad;
    return sl_b64_floats(r->js + e->start, (size_t)(e->end - e->start), b->out + b->sent[k] * b->dim, b->dim,
                         &bad) == 0;
}

/* usage: {"prompt_tokens": N, ...}; N as sl_json_count reads it. */
static inline bool response_usage(jreader *r, uint64_t *tokens) {
    *tokens = 0;
    if (r->t[r->i].type != JSMN_OBJECT) return json_skip(r, 1);
    jmembers m;
    members_open(r, &m, JSMN_OBJECT);
    int key, rc;
    while ((rc = members_next(r, &m, &key)) == 1) {
        long long v;
        if (!tok_is(r, key, "prompt_tokens")) {
            if (!json_skip(r, 2)) return false;
        } else if (r->t[r->i].type == JSMN_PRIMITIVE) {
            int at = r->i;
            if (json_integer_at(r, &v))
                *tokens = v > 0 ? (uint64_t)v : 0; /* a repeated key: the last wins, as in jansson */
            else {
                r->i = at;
                if (!json_skip(r, 2)) return false;
                *tokens = 0;
            }
        } else {
            if (!json_skip(r, 2)) return false;
            *tokens = 0;
        }
    }
    return rc == 0;
}

static inline bool response_root(jreader *r, const response_batch *b, unsigned char *seen, uint64_t *tokens) {
    jmembers m;
    if (!json_gap(r->js, 0, tok_begin(&r->t[0]), 0) || !members_open(r, &m, JSMN_OBJECT)) return false;
    bool data = false;
    int key, rc;
    *tokens = 0;
    while ((rc = members_next(r, &m, &key)) == 1) {
        if (tok_is(r, key, "data")) {
            jmembers items;
            if (data || !members_open(r, &items, JSMN_ARRAY) || (size_t)r->t[items.c].size != b->nsent)
                return false;
            data = true;
            int unused;
            for (size_t place = 0; (rc = members_next(r, &items, &unused)) == 1; place++)
                if (!response_item(r, b, seen, place)) return false;
            if (rc) return false;
        } else if (tok_is(r, key, "usage")) {
            if (!response_usage(r, tokens)) return false;
        } else if (tok_is(r, key, "error")) {
            const jsmntok_t *e = &r->t[r->i];
            if (e->type != JSMN_PRIMITIVE || !tok_is(r, r->i, "null")) return false;
            r->i++;
        } else if (!json_skip(r, 1))
            return false;
    }
    return rc == 0 && data;
}

/* Reads an embeddings response body (len bytes) straight into b->out:
 * data[i].embedding, a base64 string, into the slot of the text
 * data[i].index names, and usage.prompt_tokens into *tokens. true when the
 * body is read, and read as jansson and response_vectors would read it;
 * false to leave it to them (out is then written in part or not at all). */
static inline bool response_read(const char *body, size_t len, const response_batch *b, uint64_t *tokens) {
    if (!body || !len || len > INT_MAX / 2 || b->nsent > INT_MAX / 16) return false;
    unsigned cap = (unsigned)b->nsent * 8 + 64; /* OpenAI's items are 7 tokens; more is counted below */
    jsmntok_t *toks = malloc(cap * sizeof *toks);
    unsigned char *seen = calloc(b->nsent ? b->nsent : 1, 1);
    jsmn_parser p;
    jsmn_init(&p);
    int n = toks && seen ? jsmn_parse(&p, body, len, toks, cap) : JSMN_ERROR_INVAL;
    if (n == JSMN_ERROR_NOMEM) {
        jsmn_init(&p);
        n = jsmn_parse(&p, body, len, NULL, 0);
        jsmntok_t *more = n > 0 ? realloc(toks, (size_t)n * sizeof *toks) : NULL;
        if (more) {
            toks = more;
            cap = (unsigned)n;
            jsmn_init(&p);
            n = jsmn_parse(&p, body, len, toks, cap);
        } else
            n = JSMN_ERROR_NOMEM;
    }
    jreader r = {body, toks, n, 0};
    bool ok = n > 0 && response_root(&r, b, seen, tokens) && r.i == n &&
              json_gap(body, tok_end(&toks[0]), (int)len, 0);
    free(toks);
    free(seen);
    return ok;
}

/* --- the jansson way: every body, and every message --- */

/* data[] of a parsed response into the batch's vectors: one entry per text
 * sent, each index once, a base64 string or an array of numbers each;
 * usage.prompt_tokens reported. Returns 0 or the failure after sl_fail:
 * SL_ERETRY for a body that is not what the API documents, SL_EFATAL for
 * vectors of another dimension. */
static inline int response_vectors(sl_call *call, json_t *root, const char *model, const response_batch *b) {
    json_t *usage = json_object_get(root, "usage");
    sl_call_usage(call, sl_json_count(usage, "prompt_tokens"), 0);
    json_t *data = json_object_get(root, "data");
    if (!json_is_array(data)) return sl_fail(call, SL_ERETRY, "OpenAI: the response has no data array");
    if (json_array_size(data) != b->nsent)
        return sl_fail(call, SL_ERETRY, "OpenAI: model %s returned %zu embeddings for %zu texts", model,
                       json_array_size(data), b->nsent);
    unsigned char *seen = calloc(b->nsent, 1);
    if (!seen) return sl_fail(call, SL_ENOMEM, "out of memory");
    int rc = 0;
    size_t i;
    json_t *item;
    json_array_foreach(data, i, item) {
        json_t *index = json_object_get(item, "index"), *emb = json_object_get(item, "embedding");
        /* Servers that leave "index" out list the vectors in input order. */
        json_int_t k = index ? (json_is_integer(index) ? json_integer_value(index) : -1) : (json_int_t)i;
        if (k < 0 || (size_t)k >= b->nsent || seen[k]) {
            rc = sl_fail(call, SL_ERETRY, "OpenAI: data[%zu] has a missing, repeated or out-of-range index",
                         i);
            break;
        }
        seen[k] = 1;
        float *v = b->out + b->sent[k] * b->dim;
        if (json_is_string(emb))
            rc = sl_vector_base64(call, json_string_value(emb), json_string_length(emb), v, b->dim, "OpenAI",
                                  model, (size_t)k);
        else
            rc = sl_vector_json(call, emb, v, b->dim, "OpenAI", model, (size_t)k);
        if (rc) break;
    }
    free(seen);
    return rc;
}

#endif
