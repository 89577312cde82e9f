/* textbuf.h - a growable, always NUL-terminated text buffer, for the
 * parsers that build element text piece by piece (parse-markdown,
 * parse-pdf). Every function returns 0, or -1 when memory runs out (the
 * buffer then holds what it held before).
 *
 * Header-only (static inline): each plugin is built from its own folder as
 * a third party would build it, linking only the SDK and its own library.
 */
#ifndef SLUICE_PLUGINS_COMMON_TEXTBUF_H
#define SLUICE_PLUGINS_COMMON_TEXTBUF_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

/* Room for n more bytes plus a NUL. */
static inline int buf_reserve(buf *b, size_t n) {
    if (b->cap - b->len > n) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= n) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int buf_add(buf *b, const char *s, size_t n) {
    if (buf_reserve(b, n)) return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static inline int buf_adds(buf *b, const char *s) { return buf_add(b, s, strlen(s)); }

/* n copies of c. */
static inline int buf_fill(buf *b, char c, size_t n) {
    if (buf_reserve(b, n)) return -1;
    memset(b->p + b->len, c, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

#endif
