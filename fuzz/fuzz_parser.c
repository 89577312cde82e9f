/* fuzz_parser.c - a parser plugin (FUZZ_PLUGIN, e.g. "parse-markdown") on
 * arbitrary bytes of its media type (FUZZ_MEDIA). Built once per parser;
 * the plugin is the real .so of the build, instrumented like the core when
 * SLUICE_FUZZ is on. Any answer is fine (most inputs are bad input); a
 * crash, a sanitizer report, a leak or a hang is a finding. After a
 * successful parse the elements are read back, as the chunker would.
 * The input ends at a guard page (fuzz_at_guard): the parsers' libraries
 * are not instrumented, and a read one byte past a file's end is a crash
 * when the file is mapped and its size a multiple of the page size.
 */
#include <string.h>

#include "document.h"
#include "fuzz.h"
#include "ops.h"

static sl_instance *inst;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    inst = fuzz_instance(FUZZ_PLUGIN, NULL, 0);
    return 0;
}

static int call_parse(sl_call *call, void *doc) { return call->inst->desc->parse(call, doc); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sl_doc *doc = sl_doc_new("fuzz:input", NULL);
    if (!doc) return 0;
    sl_doc_set_data(doc, (const char *)fuzz_at_guard(data, size), size);
    sl_doc_set_media_type(doc, FUZZ_MEDIA);
    sl_call call;
    if (sl_invoke(inst, call_parse, doc, &call) == 0) {
        size_t total = 0, len;
        for (size_t i = 0; i < sl_doc_element_count(doc); i++) {
            const char *t = sl_element_text(doc, i, &len);
            total += t ? strnlen(t, len) : 0;
        }
        (void)total;
    }
    sl_doc_free(doc);
    return 0;
}
