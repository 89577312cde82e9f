/* encode.c - values as PostgreSQL receives them: arrays in the binary wire
 * format, metadata as a JSON object, and messages with the password taken
 * out.
 *
 * A document's chunks travel as a handful of array parameters (one int4[]
 * per number column, one text[] per text column, all vectors in one
 * float4[]), so one INSERT ... SELECT FROM unnest(...) stores every chunk:
 * no round trip per row, no escaping (binary elements carry their length),
 * no float formatting on our side or parsing on the server's.
 */
#include <stdlib.h>
#include <string.h>

#include "sink_postgres.h"

void pg_put(pg_buf *b, const void *p, size_t len) {
    if (b->oom) return;
    if (b->n + len + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + len + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    if (len) memcpy(b->p + b->n, p, len);
    b->n += len;
    b->p[b->n] = '\0';
}

void pg_put_i32(pg_buf *b, int32_t v) {
    uint32_t u = (uint32_t)v;
    unsigned char be[4] = {(unsigned char)(u >> 24), (unsigned char)(u >> 16), (unsigned char)(u >> 8),
                           (unsigned char)u};
    pg_put(b, be, 4);
}

/* ndim, has-null flag, element type, then per dimension: size and lower bound. */
void pg_array_header(pg_buf *b, uint32_t elem_oid, int32_t n, bool has_null) {
    if (n == 0) {
        pg_put_i32(b, 0); /* an empty array has no dimensions */
        pg_put_i32(b, 0);
        pg_put_i32(b, (int32_t)elem_oid);
        return;
    }
    pg_put_i32(b, 1);
    pg_put_i32(b, has_null ? 1 : 0);
    pg_put_i32(b, (int32_t)elem_oid);
    pg_put_i32(b, n);
    pg_put_i32(b, 1);
}

void pg_array_elem(pg_buf *b, const void *p, int32_t len) {
    if (len < 0) {
        pg_put_i32(b, -1);
        return;
    }
    pg_put_i32(b, len);
    pg_put(b, p, (size_t)len);
}

void pg_array_float4(pg_buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    pg_put_i32(b, 4);
    pg_put_i32(b, (int32_t)u);
}

void pg_array_int4(pg_buf *b, int32_t v) {
    pg_put_i32(b, 4);
    pg_put_i32(b, v);
}

/* --- metadata as JSON (as sink-sqlite writes it) --- */

static void json_run(pg_buf *b, const char *s, size_t len) {
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        pg_put(b, s + start, i - start);
        char esc[8];
        switch (c) {
        case '"': pg_put(b, "\\\"", 2); break;
        case '\\': pg_put(b, "\\\\", 2); break;
        case '\n': pg_put(b, "\\n", 2); break;
        case '\r': pg_put(b, "\\r", 2); break;
        case '\t': pg_put(b, "\\t", 2); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            pg_put(b, esc, 6);
            break;
        }
        start = i + 1;
    }
    pg_put(b, s + start, len - start);
}

static void json_string(pg_buf *b, const char *s) {
    size_t len = strlen(s), i = 0;
    pg_put(b, "\"", 1);
    while (i < len) {
        size_t bad = 0;
        if (sl_utf8_valid(s + i, len - i, &bad)) {
            json_run(b, s + i, len - i);
            break;
        }
        json_run(b, s + i, bad);
        pg_put(b, "\xEF\xBF\xBD", 3);
        i += bad + 1;
    }
    pg_put(b, "\"", 1);
}

char *pg_metadata_json(const sl_doc *doc) {
    pg_buf b = {0};
    pg_put(&b, "{", 1);
    size_t n = sl_doc_meta_count(doc), written = 0;
    for (size_t i = 0; i < n; i++) {
        const char *k, *v;
        if (sl_doc_meta_at(doc, i, &k, &v) != 0) continue;
        if (written++) pg_put(&b, ",", 1);
        json_string(&b, k);
        pg_put(&b, ":", 1);
        json_string(&b, v);
    }
    pg_put(&b, "}", 1);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* --- messages --- */

void pg_scrub(char *s, size_t cap, const char *secret) {
    if (!s || cap == 0) return;
    size_t sl = secret ? strlen(secret) : 0;
    char *out = malloc(cap);
    if (!out) {
        /* no memory for a copy: blank the secret in place, same length */
        for (char *p = s; sl && (p = strstr(p, secret)) != NULL; p += sl) memset(p, '*', sl);
        return;
    }
    size_t n = 0;
    for (const char *p = s; *p && n + 1 < cap;) {
        if (sl && strncmp(p, secret, sl) == 0) {
            for (const char *r = "***"; *r && n + 1 < cap; r++) out[n++] = *r;
            p += sl;
        } else if (*p == '\n' || *p == '\t' || *p == '\r' || *p == ' ') {
            /* libpq's messages span lines: one line, single spaces */
            if (n > 0 && out[n - 1] != ' ') out[n++] = ' ';
            p++;
        } else {
            out[n++] = *p++;
        }
    }
    while (n > 0 && out[n - 1] == ' ') n--;
    out[n] = '\0';
    memcpy(s, out, n + 1);
    free(out);
}
