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
