/* text_input.h - what the record parsers (parse-csv, parse-json) check and
 * declare alike: a document must be text (not empty, no NUL byte, valid
 * UTF-8, its BOM skipped), and a file's records are bounded by one option
 * that reads the same in both.
 *
 * Header-only (static inline), like textbuf.h: each plugin is built from its
 * own folder as a third party would build it.
 */
#ifndef SLUICE_PLUGINS_COMMON_TEXT_INPUT_H
#define SLUICE_PLUGINS_COMMON_TEXT_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sluice/sluice.h>

/* The 1-based line of byte `off` in s. */
static inline uint32_t text_line_of(const char *s, size_t off) {
    uint32_t line = 1;
    for (const char *p = s, *end = s + off; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++) line++;
    return line;
}

/* The document's bytes when they are text: 0 with *data, *len and *bom (3
 * after a UTF-8 byte order mark, else 0) set; else the document fails with
 * the reason (empty, binary, or where the UTF-8 goes wrong). */
static inline int text_input(sl_call *call, sl_doc *doc, const char **data, size_t *len, size_t *bom) {
    const char *d = sl_doc_data(doc, len);
    if (!d || !*len) return sl_fail(call, SL_EBADINPUT, "empty file");
    const char *nul = memchr(d, '\0', *len);
    if (nul) return sl_fail(call, SL_EBADINPUT, "binary data: NUL byte at offset %zu", (size_t)(nul - d));
    size_t bad;
    if (!sl_utf8_valid(d, *len, &bad))
        return sl_fail(call, SL_EBADINPUT, "invalid UTF-8 at byte %zu (line %u)", bad, text_line_of(d, bad));
    *bom = *len >= 3 && memcmp(d, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0; /* spreadsheets write one */
    *data = d;
    return 0;
}

/* The max_records option, for a config struct with `int64_t max_records`. */
#define TEXT_OPT_MAX_RECORDS(config_type)                                                                    \
    {                                                                                                        \
        .name = "max_records", .type = SL_OPT_INT, .def = "1000000",                                         \
        .help = "records in one file; more fails the file", .offset = offsetof(config_type, max_records)     \
    }

#endif
