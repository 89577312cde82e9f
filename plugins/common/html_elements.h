/* html_elements.h - HTML into a document's typed elements, through libgumbo.
 *
 * Shared by the plugins that meet HTML: parse-html for .html files,
 * parse-email for text/html bodies, the EPUB reader for its XHTML. Compile
 * html_elements.c into the plugin (it links gumbo, Debian: libgumbo-dev):
 *
 *     sluice_add_plugin(parse-x x.c ../common/html_elements.c)
 *     target_link_libraries(parse-x PRIVATE PkgConfig::GUMBO)
 *
 * What it makes (see plugins/parse-html/README.md for the full table):
 * headings with levels, paragraphs, lists (items on their own lines), tables
 * (rows on their own lines, header rows first, cells joined by " | "), code
 * (attr "lang" from class="language-x"), quotes and captions, each with its
 * 1-based source line and byte offset. Script, style, forms, hidden elements
 * and page boilerplate (nav, page-level header and footer, aside) are
 * dropped. Metadata from <head>: title (else the first h1), author,
 * description, keywords, dates, lang.
 *
 * Nothing recurses: the walk keeps its own stack, so nesting depth costs
 * heap, not C stack. Bounds (opts) make hostile input fail with a reason.
 *
 * Thread-safe: no global state; every call owns its memory.
 */
#ifndef SLUICE_PLUGINS_COMMON_HTML_ELEMENTS_H
#define SLUICE_PLUGINS_COMMON_HTML_ELEMENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/sluice.h>

/* Limits and choices; zero fields take the defaults shown. Append only. */
typedef struct html_opts {
    size_t max_depth;      /* structure deeper than this is flattened into its parent's text (256) */
    size_t max_elements;   /* HTML elements (tags) in the input; more fails (1,000,000) */
    size_t max_output;     /* bytes of element text in all; more fails (256 MiB) */
    size_t max_nesting;    /* start tags left open at once, as a pre-scan counts them; more fails
                               before parsing, since the HTML parser's cost grows with depth (100,000) */
    bool keep_boilerplate; /* keep nav, aside, page-level header and footer */
    bool no_metadata;      /* read nothing from <head> (title, author, ...) */
    uint32_t page;         /* page number given to every element; 0 leaves it unset */
    uint32_t line_base;    /* added to every line (the body's first line in a larger file); 0: none */
    uint64_t offset_base;  /* added to every byte offset */
} html_opts;

/* Parses html[0..len) (UTF-8; see html_to_utf8) and appends its elements
 * and metadata to doc. Returns 0; SL_EBADINPUT with the reason in err when a
 * bound is passed or nothing readable is left ("no text"); SL_ENOMEM.
 * Existing metadata is not replaced (a title the caller set stays). err may
 * be NULL when errlen is 0. */
int html_to_elements(sl_doc *doc, const char *html, size_t len, const html_opts *opts, char *err,
                     size_t errlen);

/* The charset a document declares: a BOM, <meta charset=...>, or <meta
 * http-equiv="Content-Type" content="...; charset=...">, looked for in the
 * first 4 KiB. Writes it lower-cased to out (empty when none) and returns out. */
char *html_sniff_charset(const char *html, size_t len, char *out, size_t outlen);

/* Makes html valid UTF-8. Input that is valid UTF-8 (a UTF-8 BOM stripped)
 * and declares no other charset is returned as is (*out = html, *owned =
 * NULL). Otherwise the declared charset (`fallback` when none, "windows-1252"
 * when that is NULL; ISO-8859-1 read as windows-1252 as browsers do) is
 * converted with iconv into a malloc'd copy (*out = *owned, free it).
 * Returns 0; SL_EBADINPUT with the reason (an unknown charset, bytes the
 * charset cannot hold, with their offset); SL_ENOMEM. */
int html_to_utf8(const char *html, size_t len, const char *fallback, const char **out, size_t *outlen,
                 char **owned, char *err, size_t errlen);

#endif
