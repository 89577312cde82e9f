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

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include "textbuf.h"

/* Valid UTF-8 s[0..len), escaped for a JSON string. 0, or -1 when out of
 * memory. */
static inline int slj_run_(buf *b, const char *s, size_t len) {
    int bad = 0;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        bad |= buf_add(b, s + start, i - start);
        char esc[8];
        switch (c) {
        case '"': bad |= buf_adds(b, "\\\""); break;
        case '\\': bad |= buf_adds(b, "\\\\"); break;
        case '\n': bad |= buf_adds(b, "\\n"); break;
        case '\r': bad |= buf_adds(b, "\\r"); break;
        case '\t': bad |= buf_adds(b, "\\t"); break;
        default: bad |= buf_add(b, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04x", c)); break;
        }
        start = i + 1;
    }
    return bad | buf_add(b, s + start, len - start);
}

/* s as a JSON string, invalid bytes as U+FFFD. 0, or -1 when out of memory. */
static inline int slj_string(buf *b, const char *s) {
    size_t len = strlen(s), i = 0;
    int bad = buf_adds(b, "\"");
    while (i < len) {
        size_t skip = 0;
        if (sl_utf8_valid(s + i, len - i, &skip)) {
            bad |= slj_run_(b, s + i, len - i);
            break;
        }
        bad |= slj_run_(b, s + i, skip);
        bad |= buf_adds(b, "\xEF\xBF\xBD");
        i += skip + 1;
    }
    return bad | buf_adds(b, "\"");
}

/* The document's metadata as a JSON object ("{}" when it has none);
 * malloc'd, NULL when out of memory. */
static inline char *slj_metadata(const sl_doc *doc) {
    buf b = {0};
    int bad = buf_adds(&b, "{");
    size_t n = sl_doc_meta_count(doc), written = 0;
    for (size_t i = 0; i < n; i++) {
        const char *k, *v;
        if (sl_doc_meta_at(doc, i, &k, &v) != 0) continue;
        if (written++) bad |= buf_adds(&b, ",");
        bad |= slj_string(&b, k);
        bad |= buf_adds(&b, ":");
        bad |= slj_string(&b, v);
    }
    bad |= buf_adds(&b, "}");
    if (bad) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

#endif
