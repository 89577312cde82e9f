/* test_wire.c - the framed format between sluice and its workers: a
 * document's whole state survives the trip; every truncated or corrupted
 * encoding is refused without a crash; frames cross a real socketpair inline
 * or as a sealed memfd, with a document's descriptor alongside; an unsealed
 * memfd is refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "document.h"
#include "wire.h"

static sl_doc *full_doc(void) {
    static const char text[] = "# Title\n\nbody";
    sl_doc *d = sl_doc_new("a/b.md", "/x/a/b.md");
    sl_doc_set_data(d, text, sizeof text - 1);
    sl_doc_set_page_count(d, 2);
    sl_doc_meta_set(d, "title", "Title");
    sl_doc_meta_set(d, "lang", "en");
    int e = sl_doc_add_element(d, SL_EL_HEADING, "Title", 5);
    sl_elem_set_level(d, (size_t)e, 2);
    sl_elem_set_page(d, (size_t)e, 1);
    sl_elem_set_source(d, (size_t)e, 7, 3);
    sl_elem_set_bbox(d, (size_t)e, 1.5f, 2.5f, 3.5f, 4.5f);
    sl_elem_set_confidence(d, (size_t)e, 77.0f);
    sl_elem_set_attr(d, (size_t)e, "k", "v");
    sl_elem_set_attr(d, (size_t)e, "k2", "");
    e = sl_doc_add_element(d, SL_EL_TABLE, "a|b", 3);
    sl_elem_set_page(d, (size_t)e, 2);
    int c = sl_doc_add_chunk(d, "chunk one", 9);
    sl_chunk_set_heading(d, (size_t)c, "Title");
    sl_chunk_set_summary(d, (size_t)c, "sum");
    sl_chunk_set_position(d, (size_t)c, 1, 3);
    sl_chunk_set_attr(d, (size_t)c, "kinds", "heading,table");
    sl_chunk_set_attr(d, (size_t)c, "region", "table");
    float *v = sl_doc_chunk_vector(d, (size_t)c, 3);
    v[0] = 0.25f, v[1] = -1.0f, v[2] = 3.0f;
    sl_doc_add_chunk(d, "chunk two", 9);
    unsigned char px[6 * 2 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (unsigned char)i;
    sl_doc_set_page_image(d, 2, 6, 2, 3, 18, px, 96.0f);
    sl_doc_add_region(d, 2, "table", 0.75f, 1, 2, 3, 4);
    return d;
}

static unsigned char *encode(const sl_doc *d, const sl_wire_sel *sel, size_t *len) {
    sl_wbuf m = {NULL, 0, 0};
    sl_wire_put_doc(&m, d, sel);
    unsigned char *p = malloc(m.len);
    sl_wbuf b = {p, 0, m.len};
    sl_wire_put_doc(&b, d, sel);
    CHECK_INT(b.len, m.len);
    *len = m.len;
    return p;
}

static void check_same(const sl_doc *a, const sl_doc *b) {
    CHECK_INT(sl_doc_page_count(b), sl_doc_page_count(a));
    CHECK_INT(sl_doc_meta_count(b), sl_doc_meta_count(a));
    CHECK_STR(sl_doc_meta_get(b, "lang"), "en");
    CHECK_INT(sl_doc_element_count(b), sl_doc_element_count(a));
    for (size_t i = 0; i < sl_doc_element_count(a) && i < sl_doc_element_count(b); i++) {
        CHECK_STR(sl_element_text(b, i, NULL), sl_element_text(a, i, NULL));
        CHECK_INT(sl_element_type(b, i), sl_element_type(a, i));
        CHECK_INT(sl_element_level(b, i), sl_element_level(a, i));
        CHECK_INT(sl_element_page(b, i), sl_element_page(a, i));
        CHECK_INT(sl_element_line(b, i), sl_element_line(a, i));
        CHECK_INT(sl_element_offset(b, i), sl_element_offset(a, i));
        CHECK(sl_element_confidence(b, i) == sl_element_confidence(a, i));
        float ba[4], bb[4];
        int ha = sl_element_bbox(a, i, ba), hb = sl_element_bbox(b, i, bb);
        CHECK_INT(hb, ha);
        if (ha && hb) CHECK(memcmp(ba, bb, sizeof ba) == 0);
    }
    CHECK_STR(sl_element_attr(b, 0, "k"), "v");
    CHECK_STR(sl_element_attr(b, 0, "k2"), "");
    CHECK_INT(sl_doc_chunk_count(b), 2);
    CHECK_STR(sl_chunk_heading(b, 0), "Title");
    CHECK_STR(sl_chunk_summary(b, 0), "sum");
    CHECK(sl_chunk_summary(b, 1) == NULL);
    CHECK_INT(sl_chunk_line(b, 0), 3);
    CHECK_INT(sl_chunk_attr_count(b, 0), 2);
    CHECK_STR(sl_chunk_attr(b, 0, "kinds"), "heading,table");
    CHECK_STR(sl_chunk_attr(b, 0, "region"), "table");
    CHECK_INT(sl_chunk_attr_count(b, 1), 0);
    uint32_t dim = 0;
    const float *v = sl_chunk_vector(b, 0, &dim);
    CHECK_INT(dim, 3);
    CHECK(v && v[0] == 0.25f && v[1] == -1.0f && v[2] == 3.0f);
    uint32_t w = 0, h = 0, ch = 0;
    size_t stride = 0;
    float dpi = 0;
    const unsigned char *px = sl_doc_page_image(b, 2, &w, &h, &ch, &stride, &dpi);
    CHECK(px && w == 6 && h == 2 && ch == 3 && stride == 18 && dpi == 96.0f && px[35] == 35);
    CHECK(sl_doc_page_image(b, 1, NULL, NULL, NULL, NULL, NULL) == NULL);
    CHECK_INT(sl_doc_region_count(b), 1);
    const char *label = NULL;
    float score = 0, box[4];
    uint32_t page = 0;
    sl_doc_region(b, 0, &page, &label, &score, box);
    CHECK_STR(label, "table");
    CHECK(page == 2 && score == 0.75f && box[3] == 4.0f);
}

static void test_a_document_survives_the_trip(void) {
    sl_doc *a = full_doc();
    sl_wire_sel sel = {SL_IMAGES_ALL, 0, 0, 0, 0, 0};
    size_t len;
    unsigned char *p = encode(a, &sel, &len);
    sl_doc *b = sl_doc_new("a/b.md", NULL);
    sl_rbuf r = {p, len, 0, 0};
    char err[256] = "";
    CHECK_INT(sl_wire_get_doc(&r, b, 0, err, sizeof err), 0);
    CHECK_INT(r.pos, len);
    check_same(a, b);

    /* appended: what was there stays, the rest comes after it */
    sl_rbuf r2 = {p, len, 0, 0};
    CHECK_INT(sl_wire_get_doc(&r2, b, 1, err, sizeof err), 0);
    CHECK_INT(sl_doc_element_count(b), 4);
    CHECK_INT(sl_doc_chunk_count(b), 4);
    CHECK_INT(sl_doc_region_count(b), 2);

    /* replaced from index 1: the first element stays, the second is the sender's */
    sl_wire_sel from1 = {SL_IMAGES_NONE, 0, 1, 0, 1, 0};
    size_t len1;
    unsigned char *p1 = encode(a, &from1, &len1);
    sl_rbuf r3 = {p1, len1, 0, 0};
    CHECK_INT(sl_wire_get_doc(&r3, b, 0, err, sizeof err), 0);
    CHECK_INT(sl_doc_element_count(b), 2);
    CHECK_INT(sl_doc_chunk_count(b), 2);
    CHECK_INT(sl_doc_region_count(b), 1);
    CHECK_STR(sl_element_text(b, 1, NULL), "a|b");

    /* one page's elements and regions only */
    sl_wire_sel only2 = {SL_IMAGES_PAGE, 1, 0, 0, 0, 2};
    size_t len2;
    unsigned char *p2 = encode(a, &only2, &len2);
    sl_doc *c = sl_doc_new("c", NULL);
    sl_rbuf r4 = {p2, len2, 0, 0};
    CHECK_INT(sl_wire_get_doc(&r4, c, 0, err, sizeof err), 0);
    CHECK_INT(sl_doc_element_count(c), 1);
    CHECK_STR(sl_element_text(c, 0, NULL), "a|b");
    CHECK(sl_doc_page_image(c, 1, NULL, NULL, NULL, NULL, NULL) == NULL);
    free(p);
    free(p1);
    free(p2);
    sl_doc_free(a);
    sl_doc_free(b);
    sl_doc_free(c);
}

static void test_bad_encodings_are_refused(void) {
    sl_doc *a = full_doc();
    sl_wire_sel sel = {SL_IMAGES_ALL, 0, 0, 0, 0, 0};
    size_t len;
    unsigned char *p = encode(a, &sel, &len);
    char err[256];
    int refused = 0;
    for (size_t cut = 0; cut < len; cut++) {
        sl_doc *b = sl_doc_new("t", NULL);
        sl_rbuf r = {p, cut, 0, 0};
        refused += sl_wire_get_doc(&r, b, 0, err, sizeof err) < 0;
        sl_doc_free(b);
    }
    CHECK_INT(refused, len);
    /* every byte flipped in turn: refused or decoded, never a crash (ASan) */
    unsigned char *q = malloc(len);
    for (size_t i = 0; i < len; i++) {
        memcpy(q, p, len);
        q[i] ^= 0xff;
        sl_doc *b = sl_doc_new("t", NULL);
        sl_rbuf r = {q, len, 0, 0};
        (void)sl_wire_get_doc(&r, b, 0, err, sizeof err);
        sl_doc_free(b);
    }
    /* a string without its NUL */
    unsigned char raw[16];
    sl_wbuf w = {raw, 0, sizeof raw};
    sl_wput_u64(&w, 3);
    sl_wput(&w, "abcd", 4);
    sl_rbuf r = {raw, w.len, 0, 0};
    CHECK(sl_rget_str(&r, NULL) == NULL && r.bad);
    free(q);
    free(p);
    sl_doc_free(a);
}

static void fill_frame(sl_wbuf *b, const void *arg) {
    size_t n = *(const size_t *)arg;
    sl_wput_u64(b, n);
    for (size_t i = 0; i < n; i++) sl_wput_u8(b, (uint8_t)(i * 7));
}

static int receive(sl_reader *rd, int fd, sl_frame_in *f) {
    for (;;) {
        int rc = sl_reader_next(rd, f);
        if (rc != 0) return rc;
        rc = sl_reader_fill(rd, fd);
        if (rc <= 0) return rc < 0 ? rc : -1;
    }
}

static void test_frames_cross_a_socket(void) {
    int sv[2];
    CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    sl_reader rd;
    CHECK_INT(sl_reader_init(&rd), 0);
    size_t sizes[] = {10, SL_WIRE_INLINE_MAX - 8, SL_WIRE_INLINE_MAX, 3u << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        sl_frame_out *f;
        CHECK_INT(sl_frame_build(SL_MSG_RESULT, fill_frame, &sizes[k], &f), 0);
        if (k == 1) { /* a document's bytes ride along */
            int dfd = memfd_create("doc", MFD_CLOEXEC | MFD_ALLOW_SEALING);
            CHECK_INT(write(dfd, "hello", 5), 5);
            sl_memfd_seal(dfd);
            sl_frame_attach_fd(f, dfd);
        }
        /* at most 64 KiB go through the socket, the rest is in the memfd */
        CHECK_INT(sl_frame_send(sv[0], f), 1);
        sl_frame_free(f);
        sl_frame_in in;
        int got = receive(&rd, sv[1], &in);
        CHECK_INT(got, 1);
        if (got != 1) break;
        CHECK_INT(in.hdr.type, SL_MSG_RESULT);
        CHECK_INT(in.len, sizes[k] + 8);
        CHECK_INT(in.map != NULL, sizes[k] + 8 > SL_WIRE_INLINE_MAX);
        sl_rbuf r = {in.payload, in.len, 0, 0};
        CHECK_INT(sl_rget_u64(&r), sizes[k]);
        int ok = 1;
        for (size_t i = 0; i < sizes[k]; i++) ok &= sl_rget_u8(&r) == (uint8_t)(i * 7);
        CHECK(ok && !r.bad);
        CHECK_INT(in.data_fd >= 0, k == 1);
        if (in.data_fd >= 0) {
            char buf[8] = "";
            CHECK_INT(pread(in.data_fd, buf, sizeof buf, 0), 5);
            CHECK_STR(buf, "hello");
        }
        sl_frame_in_release(&in);
    }

    /* a memfd payload that the sender could still change is refused */
    int mfd = memfd_create("unsealed", MFD_CLOEXEC);
    CHECK_INT(ftruncate(mfd, SL_WIRE_INLINE_MAX + 100), 0);
    sl_frame_hdr h = {SL_MSG_RESULT, SL_FRAME_PAYLOAD_FD, SL_WIRE_INLINE_MAX + 100};
    sl_frame_out raw;
    unsigned char storage[sizeof h];
    memset(&raw, 0, sizeof raw);
    memcpy(storage, &h, sizeof h);
    raw.buf = storage;
    raw.buflen = sizeof h;
    raw.fds[0] = mfd;
    raw.nfds = 1;
    CHECK_INT(sl_frame_send(sv[0], &raw), 1);
    sl_frame_free(&raw);
    sl_frame_in in;
    CHECK(receive(&rd, sv[1], &in) < 0);

    /* an unknown frame type is refused too */
    sl_frame_hdr bad = {99, 0, 0};
    CHECK_INT(write(sv[0], &bad, sizeof bad), sizeof bad);
    sl_reader rd2;
    sl_reader_init(&rd2);
    CHECK(receive(&rd2, sv[1], &in) < 0);
    sl_reader_free(&rd2);
    sl_reader_free(&rd);
    close(sv[0]);
    close(sv[1]);
}

int main(void) {
    test_a_document_survives_the_trip();
    test_bad_encodings_are_refused();
    test_frames_cross_a_socket();
    return check_done();
}
