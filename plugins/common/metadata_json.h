/* metadata_json.h - a document's metadata as one JSON object, the way the
 * sinks store it (sink-sqlite's and sink-postgres's `metadata` column), so
 * the two stores hold the same text for the same document.
 *
 * Keys and values are JSON strings; bytes that are not UTF-8 become U+FFFD
 * so the column always holds valid JSON (SQLite's json_extract and
 * PostgreSQL's jsonb both read it). A pair the document cannot give back
 * is left out without leaving a stray comma.
 *
 * Header-only (static inline): each plugin is built from its own folder as
 * a third party would build it, linking only the SDK and its own library.
 */
#ifndef SLUICE_PLUGINS_COMMON_METADATA_JSON_H
#define SLUICE_PLUGINS_COMMON_METADATA_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

/* A growable string; once an allocation fails, oom stays set and nothing
 * more is added. */
typedef struct slj_buf {
    char *p;
    size_t n, cap;
    bool oom;
} slj_buf;

static inline void slj_put(slj_buf *b, const char *s, size_t len) {
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
    if (len) memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

/* Valid UTF-8 s[0..len), escaped for a JSON string. */
static inline void slj_run_(slj_buf *b, const char *s, size_t len) {
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        slj_put(b, s + start, i - start);
        char esc[8];
        switch (c) {
        case '"': slj_put(b, "\\\"", 2); break;
        case '\\': slj_put(b, "\\\\", 2); break;
        case '\n': slj_put(b, "\\n", 2); break;
        case '\r': slj_put(b, "\\r", 2); break;
        case '\t': slj_put(b, "\\t", 2); break;
        default: slj_put(b, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04x", c)); break;
        }
        start = i + 1;
    }
    slj_put(b, s + start, len - start);
}

/* s as a JSON string, invalid bytes as U+FFFD. */
static inline void slj_string(slj_buf *b, const char *s) {
    size_t len = strlen(s), i = 0;
    slj_put(b, "\"", 1);
    while (i < len) {
        size_t bad = 0;
        if (sl_utf8_valid(s + i, len - i, &bad)) {
            slj_run_(b, s + i, len - i);
            break;
        }
        slj_run_(b, s + i, bad);
        slj_put(b, "\xEF\xBF\xBD", 3);
        i += bad + 1;
    }
    slj_put(b, "\"", 1);
}

/* The document's metadata as a JSON object ("{}" when it has none);
 * malloc'd, NULL when out of memory. */
static inline char *slj_metadata(const sl_doc *doc) {
    slj_buf b = {0};
    slj_put(&b, "{", 1);
    size_t n = sl_doc_meta_count(doc), written = 0;
    for (size_t i = 0; i < n; i++) {
        const char *k, *v;
        if (sl_doc_meta_at(doc, i, &k, &v) != 0) continue;
        if (written++) slj_put(&b, ",", 1);
        slj_string(&b, k);
        slj_put(&b, ":", 1);
        slj_string(&b, v);
    }
    slj_put(&b, "}", 1);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

#endif
