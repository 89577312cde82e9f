/* html.c - parse-html: HTML pages into typed elements.
 *
 * The page is made UTF-8 first (its declared charset honoured, through
 * html_to_utf8) and then walked by html_to_elements (plugins/common), which
 * does the real work with libgumbo: headings, paragraphs, lists, tables,
 * code, quotes and captions with their source lines, metadata from <head>,
 * script, style, forms, hidden parts and page boilerplate dropped. This file
 * is the plugin around it: options, bounds and the reasons a page fails.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include "html_elements.h"

typedef struct html_config {
    bool keep_boilerplate;
    const char *default_charset;
    int64_t max_depth;
    int64_t max_nesting;
    int64_t max_elements;
    uint64_t max_output;
} html_config;

static const sl_option options[] = {
    {.name = "keep_boilerplate",
     .type = SL_OPT_BOOL,
     .def = "false",
     .help = "keep nav, aside and the page's own header and footer",
     .offset = offsetof(html_config, keep_boilerplate)},
    {.name = "default_charset",
     .type = SL_OPT_STRING,
     .def = "windows-1252",
     .help = "charset of a page that is not UTF-8 and declares none (empty: fail such pages)",
     .offset = offsetof(html_config, default_charset)},
    {.name = "max_depth",
     .type = SL_OPT_INT,
     .def = "256",
     .help = "structure nested deeper than this is flattened into its parent's text",
     .offset = offsetof(html_config, max_depth)},
    {.name = "max_nesting",
     .type = SL_OPT_INT,
     .def = "20000",
     .help = "elements left open at once; a page nested deeper fails before it is parsed",
     .offset = offsetof(html_config, max_nesting)},
    {.name = "max_elements",
     .type = SL_OPT_INT,
     .def = "1000000",
     .help = "HTML elements in one page; more fails",
     .offset = offsetof(html_config, max_elements)},
    {.name = "max_output",
     .type = SL_OPT_SIZE,
     .def = "256M",
     .help = "bytes of text one page may give; more fails",
     .offset = offsetof(html_config, max_output)},
    {0},
};

/* Read-only after init: every pool thread may use it at once. */
typedef struct html_state {
    html_opts opts;
    char charset[64];
} html_state;

static int html_init(sl_instance *inst, const void *config, void **state) {
    const html_config *cfg = config;
    if (cfg->max_depth < 1 || cfg->max_nesting < 1 || cfg->max_elements < 1 || cfg->max_output < 1)
        return sl_instance_fail(inst, SL_EFATAL,
                                "max_depth, max_nesting, max_elements and max_output must be positive");
    html_state *st = calloc(1, sizeof *st);
    if (!st) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    st->opts = (html_opts){
        .max_depth = (size_t)cfg->max_depth,
        .max_nesting = (size_t)cfg->max_nesting,
        .max_elements = (size_t)cfg->max_elements,
        .max_output = (size_t)cfg->max_output,
        .keep_boilerplate = cfg->keep_boilerplate,
        .page = 1,
    };
    const char *cs = cfg->default_charset ? cfg->default_charset : "";
    if (strlen(cs) >= sizeof st->charset) {
        free(st);
        return sl_instance_fail(inst, SL_EFATAL, "default_charset '%s' is too long", cs);
    }
    strcpy(st->charset, cs);
    *state = st;
    return 0;
}

static void html_fini(void *state) { free(state); }

static int html_parse(sl_call *call, sl_doc *doc) {
    const html_state *st = sl_call_state(call);
    size_t len;
    const char *data = sl_doc_data(doc, &len);
    if (!data || !len) return sl_fail(call, SL_EBADINPUT, "empty file");
    char err[256];
    const char *text;
    size_t n;
    char *owned;
    int rc = html_to_utf8(data, len, st->charset[0] ? st->charset : NULL, &text, &n, &owned, err, sizeof err);
    if (rc) return sl_fail(call, rc, "%s", err);
    if (owned) { /* say what the bytes were read as */
        char cs[64];
        html_sniff_charset(data, len, cs, sizeof cs);
        if (sl_doc_meta_set(doc, "charset", cs[0] ? cs : st->charset) < 0) {
            free(owned);
            return sl_fail(call, SL_ENOMEM, "out of memory");
        }
    }
    rc = html_to_elements(doc, text, n, &st->opts, err, sizeof err);
    free(owned);
    if (rc) return sl_fail(call, rc, "%s", err);
    return sl_doc_set_page_count(doc, 1);
}

static const char *const media_types[] = {"text/html", "application/xhtml+xml", NULL};

static const sl_plugin parse_html_plugin = {
    SL_PLUGIN_HEADER,
    .name = "parse-html",
    .version = "1.0.0",
    .summary = "HTML (libgumbo) into headings, paragraphs, lists, tables, code, quotes and captions; "
               "boilerplate, scripts and forms dropped",
    .role = SL_ROLE_PARSER,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(html_config),
    .media_types = media_types,
    .init = html_init,
    .fini = html_fini,
    .parse = html_parse,
};

SL_PLUGIN_EXPORT(parse_html_plugin)
