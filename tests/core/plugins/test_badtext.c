/* test_badtext.c - test-badtext, a careless parser for text/plain: each
 * line becomes a paragraph exactly as its bytes are, and it ignores what
 * sl_doc_add_element answers. The core must still refuse text that is not
 * UTF-8 and fail the document with the place, whatever the plugin returns
 * (tests/e2e/bad_text.sh). With `title = true` it also sets the first line
 * as the `title` metadata, unchecked too.
 *
 * Built with BADTEXT_LLM it is test-badtext-llm, an LLM that answers in
 * Latin-1 and, as careless plugins do, calls any failure of
 * sl_completion_set "out of memory": the core must name the plugin, its
 * stage and the byte offset, not blame the sink later.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <sluice/sluice.h>

#ifdef BADTEXT_LLM
static int complete(sl_call *call, const sl_text *prompt, sl_completion *out) {
    (void)prompt;
    static const char answer[] = "R\xe9sum\xe9 in Latin-1";
    if (sl_completion_set(out, answer, sizeof answer - 1) != 0)
        return sl_fail(call, SL_ENOMEM, "out of memory");
    return 0;
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,     .name = "test-badtext-llm",
    .version = "1.0.0",   .summary = "an LLM that answers in Latin-1 (tests)",
    .role = SL_ROLE_LLM,  .bottleneck = SL_IO,
    .complete = complete,
};
#else
typedef struct opts {
    bool title;
} opts;

static int parse(sl_call *call, sl_doc *doc) {
    const opts *s = sl_call_state(call);
    size_t len;
    const char *p = sl_doc_data(doc, &len), *end = p + len;
    bool first = true;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n) {
            if (first && s->title) {
                char *t = sl_doc_strndup(doc, p, n);
                if (t) (void)sl_doc_meta_set(doc, "title", t);
            }
            (void)sl_doc_add_element(doc, SL_EL_PARAGRAPH, p, n);
            first = false;
        }
        p += n + (nl != NULL);
    }
    return 0;
}

static const char *const media[] = {"text/plain", NULL};
static const sl_option options[] = {
    {"title",
     SL_OPT_BOOL,
     "false",
     "set the first line as the title metadata",
     0,
     offsetof(opts, title),
     NULL,
     {0}},
    {0},
};

static int init(sl_instance *inst, const void *config, void **state) {
    (void)inst;
    *state = (void *)config; /* the core keeps the filled config for the instance's life */
    return 0;
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "test-badtext",
    .version = "1.0.0",
    .summary = "a parser that does not check its text (tests)",
    .role = SL_ROLE_PARSER,
    .bottleneck = SL_CPU,
    .media_types = media,
    .options = options,
    .config_size = sizeof(opts),
    .init = init,
    .parse = parse,
};
#endif
SL_PLUGIN_EXPORT(desc)
