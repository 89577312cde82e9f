/* fuzz_chunker.c - chunk-text on arbitrary elements. The input is a list
 * of records separated by 0x1e: each record's first byte picks the element
 * kind (its low 4 bits, 1..9) and heading level (the next 3 bits), the
 * second its page; the rest is the text (records that are not UTF-8 are
 * refused by the core and left out, as a parser's would be). The chunker
 * runs with a small size and overlap, so the splitting paths (inside
 * elements, inside tables and code, by characters and by tokens) are
 * reached with small inputs.
 */
#include <string.h>

#include "document.h"
#include "fuzz.h"
#include "ops.h"

static sl_instance *by_chars, *by_tokens;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *chars[] = {"size=64", "overlap=16"};
    const char *tokens[] = {"size=24", "overlap=4", "unit=tokens"};
    by_chars = fuzz_instance("chunk-text", chars, 2);
    by_tokens = fuzz_instance("chunk-text", tokens, 3);
    return 0;
}

static int call_chunk(sl_call *call, void *doc) { return call->inst->desc->chunk(call, doc); }

static void run(sl_instance *inst, const uint8_t *data, size_t size) {
    sl_doc *doc = sl_doc_new("fuzz:input", NULL);
    if (!doc) return;
    sl_doc_set_page_count(doc, 8);
    const uint8_t *p = data, *end = data + size;
    while (p < end) {
        const uint8_t *rs = memchr(p, 0x1e, (size_t)(end - p));
        const uint8_t *stop = rs ? rs : end;
        if (stop - p >= 2) {
            int type = (p[0] & 15) % 9 + 1, level = (p[0] >> 4 & 7);
            int i = sl_doc_add_element(doc, (sl_elem_type)type, (const char *)p + 2, (size_t)(stop - p - 2));
            if (i >= 0) {
                sl_elem_set_level(doc, (size_t)i, level);
                sl_elem_set_page(doc, (size_t)i, p[1] % 9);
                sl_elem_set_source(doc, (size_t)i, (uint64_t)(p - data), (uint32_t)(p - data) / 16 + 1);
            }
        }
        p = rs ? rs + 1 : end;
    }
    /* text the core refused: the document would have failed at the parser */
    if (!doc->bad_text[0]) {
        sl_call call;
        if (sl_invoke(inst, call_chunk, doc, &call) == 0) {
            size_t len;
            for (size_t i = 0; i < sl_doc_chunk_count(doc); i++) {
                (void)sl_chunk_text(doc, i, &len);
                (void)sl_chunk_heading(doc, i);
            }
        }
    }
    sl_doc_free(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    run(by_chars, data, size);
    run(by_tokens, data, size);
    return 0;
}
