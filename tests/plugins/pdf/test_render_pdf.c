/* test_render_pdf.c - render-pdf renders exactly the pages without a real
 * text layer (fewer than min_chars characters) to gray images at the
 * configured dpi, lowers the resolution to stay within max_pixels, opens
 * encrypted PDFs only with a password, keeps each thread's cached
 * document from ever answering for other bytes, and renders the same
 * pixels whether threads share one mupdf cache or keep their own. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static plug PARSE, R;
static void *PTS, *RTS;

typedef struct image {
    const unsigned char *px;
    uint32_t w, h, ch;
    size_t stride;
    float dpi;
} image;

static int image_of(const sl_doc *doc, uint32_t page, image *im) {
    im->px = sl_doc_page_image(doc, page, &im->w, &im->h, &im->ch, &im->stride, &im->dpi);
    return im->px != NULL;
}

/* Pixels darker than mid-gray. */
static size_t dark_pixels(const image *im) {
    size_t dark = 0;
    for (uint32_t y = 0; y < im->h; y++)
        for (uint32_t x = 0; x < im->w; x++) dark += im->px[y * im->stride + x] < 128;
    return dark;
}

/* A fixture parsed with parse-pdf's defaults, ready for page stages. */
static fixdoc parsed(const char *name) {
    fixdoc f = fixture_doc(name);
    sl_call call;
    int rc = run_parse(&PARSE, PTS, f.doc, &call);
    if (rc) fprintf(stderr, "parse %s: %s\n", name, call.msg);
    return f;
}

/* A page tree whose counts are wrong (the root says 1 page, the branch
 * 0): parse-pdf finds 3 pages, and render-pdf must find the same ones, or
 * the third, a drawing without text, fails as "cannot find page 3". */
static void test_pages_of_a_miscounted_tree_are_found(void) {
    static const char *const objs[] = {
        CATALOG,
        "<< /Type /Pages /Count 1 /Kids [3 0 R 5 0 R] >>",
        PAGE("4 0 R"),
        TEXT("the first page has a text layer of its own, long enough to count as real text"),
        "<< /Type /Pages /Count 0 /Kids [6 0 R 8 0 R] >>",
        PAGE("7 0 R"),
        TEXT("and so does the second page, with as many letters as a real text layer needs"),
        PAGE("9 0 R"),
        "<< >>\nstream\n0 0 0 rg 50 50 200 100 re f\nendstream",
    };
    char *bytes;
    sl_doc *doc = pdf_of("miscounted.pdf", objs, sizeof objs / sizeof objs[0], &bytes);
    sl_call call;
    CHECK_INT(run_parse(&PARSE, PTS, doc, &call), 0);
    CHECK_INT(sl_doc_page_count(doc), 3);
    CHECK_INT(run_pages(&R, RTS, doc, &call), 0);
    image im;
    CHECK_INT(image_of(doc, 1, &im), 0);
    CHECK_INT(image_of(doc, 2, &im), 0);
    CHECK_INT(image_of(doc, 3, &im), 1);
    if (im.px) CHECK(dark_pixels(&im) > 1000); /* the rectangle */
    sl_doc_free(doc);
    free(bytes);
}

static void test_descriptor(void) {
    CHECK_STR(R.desc->name, "render-pdf");
    CHECK_INT(R.desc->role, SL_ROLE_PAGE);
    CHECK_INT(R.desc->bottleneck, SL_CPU);
    CHECK(R.desc->page != NULL);
}

static void test_only_pages_without_text_are_rendered(void) {
    fixdoc f = parsed("mixed.pdf");
    sl_call call;
    CHECK_INT(run_pages(&R, RTS, f.doc, &call), 0);
    image im;
    CHECK_INT(image_of(f.doc, 1, &im), 0);
    CHECK_INT(image_of(f.doc, 3, &im), 0);
    CHECK_INT(image_of(f.doc, 2, &im), 1);
    /* 8.5 x 11 in at 200 dpi, one gray channel */
    CHECK_INT(im.w, 1700);
    CHECK_INT(im.h, 2200);
    CHECK_INT(im.ch, 1);
    CHECK(im.stride >= im.w);
    CHECK(im.dpi > 199.5f && im.dpi < 200.5f);
    /* the scanned text is there: some dark pixels, mostly white */
    size_t dark = dark_pixels(&im);
    CHECK(dark > 5000 && dark < (size_t)im.w * im.h / 10);
    fixdoc_free(&f);

    f = parsed("scanned.pdf");
    CHECK_INT(run_pages(&R, RTS, f.doc, &call), 0);
    CHECK_INT(image_of(f.doc, 1, &im), 1);
    CHECK_INT(image_of(f.doc, 2, &im), 1);
    fixdoc_free(&f);

    f = parsed("text.pdf");
    CHECK_INT(run_pages(&R, RTS, f.doc, &call), 0);
    for (uint32_t p = 1; p <= 3; p++) CHECK_INT(image_of(f.doc, p, &im), 0);
    fixdoc_free(&f);
}

static void test_min_chars_decides_what_is_real_text(void) {
    static const char *const all[] = {"min_chars=100000", NULL};
    static const char *const none[] = {"min_chars=0", NULL};
    plug q;
    sl_call call;
    image im;
    CHECK_INT(plug_open(&q, "render-pdf", all), 0);
    void *ts = plug_thread(&q);
    fixdoc f = parsed("text.pdf");
    CHECK_INT(run_pages(&q, ts, f.doc, &call), 0);
    for (uint32_t p = 1; p <= 3; p++) CHECK_INT(image_of(f.doc, p, &im), 1);
    fixdoc_free(&f);
    plug_thread_free(&q, ts);
    plug_close(&q);

    CHECK_INT(plug_open(&q, "render-pdf", none), 0);
    ts = plug_thread(&q);
    f = parsed("scanned.pdf");
    CHECK_INT(run_pages(&q, ts, f.doc, &call), 0);
    for (uint32_t p = 1; p <= 2; p++) CHECK_INT(image_of(f.doc, p, &im), 0);
    fixdoc_free(&f);
    plug_thread_free(&q, ts);
    plug_close(&q);
}

static void test_dpi_and_max_pixels(void) {
    static const char *const low[] = {"dpi=100", NULL};
    static const char *const cap[] = {"max_pixels=1000000", NULL};
    static const char *const bad[] = {"dpi=5", NULL};
    plug q;
    sl_call call;
    image im;
    CHECK_INT(plug_open(&q, "render-pdf", low), 0);
    void *ts = plug_thread(&q);
    fixdoc f = parsed("scanned.pdf");
    CHECK_INT(run_page(&q, ts, f.doc, 1, &call), 0);
    CHECK_INT(image_of(f.doc, 1, &im), 1);
    CHECK_INT(im.w, 850);
    CHECK_INT(im.h, 1100);
    fixdoc_free(&f);
    plug_thread_free(&q, ts);
    plug_close(&q);

    CHECK_INT(plug_open(&q, "render-pdf", cap), 0);
    ts = plug_thread(&q);
    f = parsed("scanned.pdf");
    CHECK_INT(run_page(&q, ts, f.doc, 1, &call), 0);
    CHECK_INT(image_of(f.doc, 1, &im), 1);
    CHECK((uint64_t)im.w * im.h <= 1000000u);
    CHECK((uint64_t)im.w * im.h > 900000u);
    CHECK(im.dpi > 100.0f && im.dpi < 200.0f);
    fixdoc_free(&f);
    plug_thread_free(&q, ts);
    plug_close(&q);

    CHECK_INT(plug_open(&q, "render-pdf", bad), SL_EFATAL);
    CHECK_CONTAINS(q.err, "dpi = 5: must be from 36 to 1200");
    plug_close(&q);
}

static void test_encrypted_pdf_renders_only_with_its_password(void) {
    static const char *const pw[] = {"password=" FX_PASSWORD, "min_chars=100000", NULL};
    static const char *const nopw[] = {"min_chars=100000", NULL};
    plug q;
    sl_call call;
    image im;
    /* the document as a run would hold it after parsing: one page */
    fixdoc f = fixture_doc("encrypted.pdf");
    sl_doc_set_page_count(f.doc, 1);

    CHECK_INT(plug_open(&q, "render-pdf", nopw), 0);
    void *ts = plug_thread(&q);
    CHECK_INT(run_page(&q, ts, f.doc, 1, &call), SL_EBADINPUT);
    CHECK_STR(call.msg, "encrypted PDF: needs a password (set [render-pdf] password)");
    plug_thread_free(&q, ts);
    plug_close(&q);

    CHECK_INT(plug_open(&q, "render-pdf", pw), 0);
    ts = plug_thread(&q);
    CHECK_INT(run_page(&q, ts, f.doc, 1, &call), 0);
    CHECK_INT(image_of(f.doc, 1, &im), 1);
    CHECK(dark_pixels(&im) > 5000);
    plug_thread_free(&q, ts);
    plug_close(&q);
    fixdoc_free(&f);

    /* bytes that are no PDF fail the page with mupdf's reason */
    f = fixture_doc("garbage.pdf");
    sl_doc_set_page_count(f.doc, 1);
    CHECK_INT(run_page(&R, RTS, f.doc, 1, &call), SL_EBADINPUT);
    CHECK_CONTAINS(call.msg, "cannot open the PDF: ");
    fixdoc_free(&f);
}

/* One thread renders pages of two documents in turn, then the first
 * document's bytes again through a new document: each image must be its
 * own document's, whatever the thread's cache held. */
static void test_thread_cache_never_mixes_documents(void) {
    sl_call call;
    image a, b, c;
    fixdoc mixed = parsed("mixed.pdf"), scan = parsed("scanned.pdf");
    CHECK_INT(run_page(&R, RTS, mixed.doc, 2, &call), 0);
    CHECK_INT(run_page(&R, RTS, scan.doc, 1, &call), 0);
    CHECK_INT(image_of(mixed.doc, 2, &a), 1);
    CHECK_INT(image_of(scan.doc, 1, &b), 1);
    CHECK(a.h == b.h && a.stride == b.stride && memcmp(a.px, b.px, a.h * a.stride) != 0);
    fixdoc again = parsed("mixed.pdf");
    CHECK_INT(run_page(&R, RTS, again.doc, 2, &call), 0);
    CHECK_INT(image_of(again.doc, 2, &c), 1);
    CHECK(a.h == c.h && a.stride == c.stride && memcmp(a.px, c.px, a.h * a.stride) == 0);
    /* the cached document's bytes are freed: the next page drops it without
     * reading them (ASan would see it) and opens its own */
    fixdoc_free(&again);
    fixdoc_free(&mixed);
    CHECK_INT(run_page(&R, RTS, scan.doc, 2, &call), 0);
    CHECK_INT(image_of(scan.doc, 2, &b), 1);
    fixdoc_free(&scan);
}

/* shared_cache = true clones every thread's context from one base under
 * mupdf's lock callbacks; the image must not change. */
static void test_shared_cache_renders_the_same_pixels(void) {
    plug q;
    const char *shared[] = {"shared_cache=true", NULL};
    CHECK_INT(plug_open(&q, "render-pdf", shared), 0);
    void *ts = plug_thread(&q);
    sl_call call;
    image a, b;
    fixdoc one = parsed("scanned.pdf"), two = parsed("scanned.pdf");
    CHECK_INT(run_page(&R, RTS, one.doc, 1, &call), 0);
    CHECK_INT(run_page(&q, ts, two.doc, 1, &call), 0);
    CHECK_INT(image_of(one.doc, 1, &a), 1);
    CHECK_INT(image_of(two.doc, 1, &b), 1);
    CHECK(a.w == b.w && a.h == b.h && a.stride == b.stride && memcmp(a.px, b.px, a.h * a.stride) == 0);
    CHECK(dark_pixels(&b) > 5000);
    fixdoc_free(&one);
    fixdoc_free(&two);
    plug_thread_free(&q, ts);
    plug_close(&q);
}

int main(void) {
    CHECK_INT(plug_open(&PARSE, "parse-pdf", NULL), 0);
    CHECK_INT(plug_open(&R, "render-pdf", NULL), 0);
    PTS = plug_thread(&PARSE);
    RTS = plug_thread(&R);
    test_descriptor();
    test_only_pages_without_text_are_rendered();
    test_min_chars_decides_what_is_real_text();
    test_dpi_and_max_pixels();
    test_encrypted_pdf_renders_only_with_its_password();
    test_thread_cache_never_mixes_documents();
    test_shared_cache_renders_the_same_pixels();
    test_pages_of_a_miscounted_tree_are_found();
    plug_thread_free(&R, RTS);
    plug_thread_free(&PARSE, PTS);
    plug_close(&R);
    plug_close(&PARSE);
    return check_done();
}
