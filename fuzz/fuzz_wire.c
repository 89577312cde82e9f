/* fuzz_wire.c - the worker wire protocol as the main process reads what a
 * worker process sends (a worker is where a crashing or hostile plugin
 * runs, so its bytes are not trusted): frames out of a byte stream
 * (sl_reader_next), and a document's state out of a payload
 * (sl_wire_get_doc), replacing and appending. The first byte chooses: even,
 * the rest is one document payload applied to a fresh document and then
 * appended to a document that already holds elements, chunks and pages;
 * odd, the rest is a stream of frames, each payload applied the same way.
 * Descriptor-carrying frames find no descriptors and must be refused.
 */
#include <stdlib.h>
#include <string.h>

#include "document.h"
#include "fuzz.h"
#include "wire.h"

static void apply(const unsigned char *p, size_t len) {
    char err[256];
    sl_doc *fresh = sl_doc_new("fuzz:fresh", NULL), *full = sl_doc_new("fuzz:full", NULL);
    if (fresh && full) {
        sl_rbuf r = {p, len, 0, 0};
        (void)sl_wire_get_doc(&r, fresh, 0, err, sizeof err);
        sl_doc_set_page_count(full, 3);
        sl_doc_add_element(full, SL_EL_HEADING, "Title", 5);
        sl_doc_add_element(full, SL_EL_PARAGRAPH, "Body text.", 10);
        sl_doc_add_chunk(full, "Title Body text.", 16);
        sl_doc_add_region(full, 1, "text", 0.9f, 0, 0, 10, 10);
        sl_rbuf a = {p, len, 0, 0};
        (void)sl_wire_get_doc(&a, full, 1, err, sizeof err);
    }
    sl_doc_free(fresh);
    sl_doc_free(full);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if ((data[0] & 1) == 0) {
        apply(data + 1, size - 1);
        return 0;
    }
    sl_reader rd;
    if (sl_reader_init(&rd)) return 0;
    size_t n = size - 1 < rd.cap ? size - 1 : rd.cap;
    memcpy(rd.buf, data + 1, n);
    rd.len = n;
    sl_frame_in f;
    for (int k = 0; k < 64 && sl_reader_next(&rd, &f) == 1; k++) {
        apply(f.payload, f.len);
        sl_frame_in_release(&f);
    }
    sl_reader_free(&rd);
    return 0;
}
