/* test_pages.c - plugins for the pipeline's page-stage tests, built twice:
 *
 *   test-pages-parse (TEST_PAGES_PARSER): a parser for text/plain whose
 *     first line is "pages N": the document gets N pages and one paragraph.
 *   test-pages-step: a page stage that appends "TAG PAGE" to the file
 *     `log` (O_APPEND, one write per line) as it works. With `render =
 *     true` it gives the page a small image; otherwise it fails a page
 *     without one, adds an element "TAG PAGE" and drops the image, as an
 *     OCR stage would. Each call takes 2 ms, like real page work.
 *
 * The log shows the order pages went through the stages, and from it how
 * many page images were alive at once.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/sluice.h>

#ifdef TEST_PAGES_PARSER

static int parse(sl_call *call, sl_doc *doc) {
    size_t len;
    const char *data = sl_doc_data(doc, &len);
    unsigned n = 0;
    if (len < 7 || sscanf(data, "pages %u", &n) != 1 || n == 0 || n > 10000)
        return sl_fail(call, SL_EBADINPUT, "first line must be 'pages N' (N from 1 to 10000)");
    if (sl_doc_set_page_count(doc, n) < 0) return sl_fail(call, SL_ENOMEM, "out of memory");
    return sl_doc_add_element(doc, SL_EL_PARAGRAPH, "a document of pages", 19) < 0
               ? sl_fail(call, SL_ENOMEM, "out of memory")
               : 0;
}

static const char *const media[] = {"text/plain", NULL};

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,       .name = "test-pages-parse",
    .version = "1.0.0",     .summary = "test: 'pages N' documents get N pages",
    .role = SL_ROLE_PARSER, .bottleneck = SL_CPU,
    .media_types = media,   .parse = parse,
};

#else

typedef struct conf {
    const char *log;
    const char *tag;
    bool render;
} conf;

static const sl_option options[] = {
    {.name = "log",
     .type = SL_OPT_STRING,
     .help = "file the stage appends 'TAG PAGE' lines to",
     .offset = offsetof(conf, log)},
    {.name = "tag",
     .type = SL_OPT_STRING,
     .def = "step",
     .help = "name in the log",
     .offset = offsetof(conf, tag)},
    {.name = "render",
     .type = SL_OPT_BOOL,
     .def = "false",
     .help = "make page images (else use them up)",
     .offset = offsetof(conf, render)},
    {0},
};

static int init(sl_instance *inst, const void *config, void **state) {
    const conf *c = config;
    if (!c->log || !*c->log) return sl_instance_fail(inst, SL_EFATAL, "log: a file name is needed");
    conf *copy = malloc(sizeof *copy);
    if (!copy) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    *copy = *c;
    *state = copy;
    return 0;
}

static void fini(void *state) { free(state); }

static int step(sl_call *call, sl_doc *doc, uint32_t page) {
    const conf *c = sl_call_state(call);
    char line[128];
    int n = snprintf(line, sizeof line, "%s %u\n", c->tag, page);
    int fd = open(c->log, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0 || write(fd, line, (size_t)n) != n) {
        if (fd >= 0) close(fd);
        return sl_fail(call, SL_EFATAL, "cannot append to %s", c->log);
    }
    close(fd);
    usleep(4000); /* a page's work takes time, as real rendering and OCR do */
    if (c->render) {
        static const unsigned char px[16] = {0};
        return sl_doc_set_page_image(doc, page, 4, 4, 1, 4, px, 72);
    }
    if (!sl_doc_page_image(doc, page, NULL, NULL, NULL, NULL, NULL))
        return sl_fail(call, SL_EBADINPUT, "page %u has no image", page);
    line[n - 1] = '\0';
    int e = sl_doc_add_element(doc, SL_EL_PARAGRAPH, line, (size_t)n - 1);
    if (e < 0) return sl_fail(call, SL_ENOMEM, "out of memory");
    sl_elem_set_page(doc, (size_t)e, page);
    sl_doc_drop_page_image(doc, page);
    return 0;
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,     .name = "test-pages-step",
    .version = "1.0.0",   .summary = "test: a page stage that logs the order pages come in",
    .role = SL_ROLE_PAGE, .bottleneck = SL_CPU,
    .options = options,   .config_size = sizeof(conf),
    .init = init,         .fini = fini,
    .page = step,
};

#endif

SL_PLUGIN_EXPORT(desc)
