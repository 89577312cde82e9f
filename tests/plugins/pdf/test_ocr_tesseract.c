/* test_ocr_tesseract.c - ocr-tesseract recognises rendered pages and
 * scanned images of known text with a character error rate under 2%,
 * gives every element its confidence, box and page, frees the image it
 * read, leaves pages with a text layer alone, answers the same on every
 * engine and thread, refuses bad settings at init and a missing language on
 * the first image (tesseract starts lazily); parse-image loads
 * PNG, JPEG and (multi-page) TIFF scans and refuses damaged ones. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define MAX_CER 0.02

static plug PARSE, RENDER, OCR, IMAGE;
static void *PTS, *RTS, *OTS, *ITS;

/* A scanned PDF through parse, render and OCR, as its route runs it. */
static int pdf_through_ocr(const char *name, fixdoc *f, sl_call *call) {
    *f = fixture_doc(name);
    int rc = run_parse(&PARSE, PTS, f->doc, call);
    if (!rc) rc = run_pages(&RENDER, RTS, f->doc, call);
    if (!rc) rc = run_pages(&OCR, OTS, f->doc, call);
    if (!rc) sl_doc_sort_elements(f->doc); /* as the core does after page stages */
    return rc;
}

/* An image through parse-image and OCR. */
static int image_through_ocr(plug *ocr, void *ots, const char *name, fixdoc *f, sl_call *call) {
    *f = fixture_doc(name);
    int rc = run_parse(&IMAGE, ITS, f->doc, call);
    if (!rc) rc = run_pages(ocr, ots, f->doc, call);
    return rc;
}

static double cer_of(const char *got, const char *page) {
    char *want = fx_plain(page);
    double cer = fx_cer(got, want);
    if (cer >= MAX_CER) fprintf(stderr, "CER %.3f\n  got:  %s\n  want: %s\n", cer, got, want);
    free(want);
    return cer;
}

static void check_ocr_elements(const sl_doc *d, float page_w) {
    size_t n = sl_doc_element_count(d);
    CHECK(n > 0);
    for (size_t i = 0; i < n; i++) {
        if (!sl_element_attr(d, i, "ocr")) continue;
        float box[4];
        float conf = sl_element_confidence(d, i);
        CHECK_INT(sl_element_type(d, i), SL_EL_PARAGRAPH);
        CHECK_STR(sl_element_attr(d, i, "ocr"), "tesseract");
        CHECK(conf > 50.0f && conf <= 100.0f);
        CHECK_INT(sl_element_bbox(d, i, box), 1);
        CHECK(box[0] >= 0 && box[2] > box[0] && box[2] <= page_w && box[3] > box[1]);
        CHECK(sl_element_line(d, i) >= 1);
        CHECK(sl_element_page(d, i) >= 1 && sl_element_page(d, i) <= sl_doc_page_count(d));
    }
}

static void test_descriptors(void) {
    CHECK_STR(OCR.desc->name, "ocr-tesseract");
    CHECK_INT(OCR.desc->role, SL_ROLE_PAGE);
    CHECK_INT(OCR.desc->bottleneck, SL_CPU);
    CHECK_STR(IMAGE.desc->name, "parse-image");
    CHECK_INT(IMAGE.desc->role, SL_ROLE_PARSER);
    CHECK_STR(IMAGE.desc->media_types[0], "image/png");
    CHECK_STR(IMAGE.desc->media_types[1], "image/jpeg");
    CHECK_STR(IMAGE.desc->media_types[2], "image/tiff");
}

static void test_scanned_pdf_is_recognised_under_2_percent_cer(void) {
    fixdoc f;
    sl_call call;
    CHECK_INT(pdf_through_ocr("scanned.pdf", &f, &call), 0);
    for (uint32_t p = 1; p <= FX_SCAN_PAGES; p++) {
        char *got = doc_text(f.doc, p, 1);
        CHECK(cer_of(got, fx_scan_pages[p - 1]) < MAX_CER);
        free(got);
        /* the image is freed once read */
        CHECK(sl_doc_page_image(f.doc, p, NULL, NULL, NULL, NULL, NULL) == NULL);
    }
    /* page 1 first: elements in page order */
    CHECK(sl_doc_element_count(f.doc) >= 2);
    CHECK_INT(sl_element_page(f.doc, 0), 1);
    CHECK_INT(sl_element_page(f.doc, sl_doc_element_count(f.doc) - 1), 2);
    /* boxes in points: the text starts about an inch from the left */
    check_ocr_elements(f.doc, 612);
    float box[4];
    long e = find_element(f.doc, "Rain fell");
    CHECK(e >= 0);
    if (e >= 0) {
        CHECK_INT(sl_element_bbox(f.doc, (size_t)e, box), 1);
        CHECK(box[0] > 60 && box[0] < 85);
    }
    fixdoc_free(&f);
}

static void test_mixed_pdf_gets_text_layer_and_ocr_page_by_page(void) {
    fixdoc f;
    sl_call call;
    CHECK_INT(pdf_through_ocr("mixed.pdf", &f, &call), 0);
    char *p1 = doc_text(f.doc, 1, 0), *p2 = doc_text(f.doc, 2, 1), *p3 = doc_text(f.doc, 3, 0);
    char *ocr1 = doc_text(f.doc, 1, 1), *ocr3 = doc_text(f.doc, 3, 1);
    CHECK_STR(p1, fx_mixed_pages[0]);
    CHECK(cer_of(p2, fx_mixed_pages[1]) < MAX_CER);
    CHECK_STR(p3, fx_mixed_pages[2]);
    CHECK_STR(ocr1, "");
    CHECK_STR(ocr3, "");
    free(p1), free(p2), free(p3), free(ocr1), free(ocr3);
    fixdoc_free(&f);
}

static void test_png_jpeg_and_tiff_scans_are_recognised(void) {
    static const char *const names[] = {"image.png", "image.jpg", "image.tif"};
    static const char *const formats[] = {"PNG", "JPEG", "TIFF"};
    for (size_t i = 0; i < 3; i++) {
        fixdoc f;
        sl_call call;
        CHECK_INT(image_through_ocr(&OCR, OTS, names[i], &f, &call), 0);
        CHECK_STR(sl_doc_meta_get(f.doc, "format"), formats[i]);
        CHECK_STR(sl_doc_meta_get(f.doc, "width"), "1700");
        CHECK_STR(sl_doc_meta_get(f.doc, "height"), "2200");
        uint32_t pages = i == 2 ? 2 : 1;
        CHECK_INT(sl_doc_page_count(f.doc), pages);
        for (uint32_t p = 1; p <= pages; p++) {
            char *got = doc_text(f.doc, p, 1);
            CHECK(cer_of(got, fx_image_pages[p - 1]) < MAX_CER);
            free(got);
        }
        /* the images state 200 dpi: boxes come in points */
        check_ocr_elements(f.doc, 612);
        fixdoc_free(&f);
    }
}

static void test_damaged_or_oversized_images_fail_with_a_reason(void) {
    fixdoc f;
    sl_call call;
    f = fixture_doc("broken.png");
    CHECK_INT(run_parse(&IMAGE, ITS, f.doc, &call), SL_EBADINPUT);
    CHECK_STR(call.msg, "PNG image cut short: its end marker is missing");
    fixdoc_free(&f);
    f = fixture_doc("garbage.pdf");
    sl_doc_set_media_type(f.doc, "image/png");
    CHECK_INT(run_parse(&IMAGE, ITS, f.doc, &call), SL_EBADINPUT);
    CHECK_STR(call.msg, "not a PNG, JPEG or TIFF image");
    fixdoc_free(&f);

    plug q;
    static const char *const small[] = {"max_pixels=1000000", NULL};
    CHECK_INT(plug_open(&q, "parse-image", small), 0);
    f = fixture_doc("image.png");
    CHECK_INT(run_parse(&q, NULL, f.doc, &call), SL_EBADINPUT);
    CHECK_STR(call.msg, "image of 1700x2200 pixels is over max_pixels (1000000)");
    CHECK(sl_doc_page_image(f.doc, 1, NULL, NULL, NULL, NULL, NULL) == NULL);
    fixdoc_free(&f);
    plug_close(&q);
}

static void test_unit_line_and_min_confidence(void) {
    static const char *const lines[] = {"unit=line", NULL};
    static const char *const strict[] = {"min_confidence=100", NULL};
    plug q;
    fixdoc f;
    sl_call call;
    CHECK_INT(plug_open(&q, "ocr-tesseract", lines), 0);
    void *ts = plug_thread(&q);
    CHECK_INT(image_through_ocr(&q, ts, "image.png", &f, &call), 0);
    /* two lines of text, two elements, each with its own confidence */
    CHECK_INT(sl_doc_element_count(f.doc), 2);
    CHECK(find_element(f.doc, "Monday to Friday") == 1);
    CHECK(sl_element_confidence(f.doc, 0) > 50.0f);
    CHECK(sl_element_confidence(f.doc, 1) > 50.0f);
    CHECK_INT(sl_element_line(f.doc, 1), 2);
    fixdoc_free(&f);
    plug_thread_free(&q, ts);
    plug_close(&q);

    CHECK_INT(plug_open(&q, "ocr-tesseract", strict), 0);
    ts = plug_thread(&q);
    CHECK_INT(image_through_ocr(&q, ts, "image.png", &f, &call), 0);
    CHECK_INT(sl_doc_element_count(f.doc), 0);
    fixdoc_free(&f);
    plug_thread_free(&q, ts);
    plug_close(&q);
}

static void test_bad_settings_fail_at_init(void) {
    static const char *const junk[] = {"languages=eng;rm", NULL};
    static const char *const psm[] = {"psm=0", NULL};
    plug q;
    CHECK_INT(plug_open(&q, "ocr-tesseract", junk), SL_EFATAL);
    CHECK_CONTAINS(q.err, "expected names such as");
    plug_close(&q);
    CHECK_INT(plug_open(&q, "ocr-tesseract", psm), SL_EFATAL);
    CHECK_CONTAINS(q.err, "psm = 0");
    plug_close(&q);
}

/* tesseract starts on the first image, not at init: a missing language
 * opens fine, leaves text pages alone, and stops the run (SL_EFATAL) with
 * its reason on the first page that needs OCR. */
static void test_missing_language_fails_on_the_first_image(void) {
    static const char *const lang[] = {"languages=xx-missing", NULL};
    plug q;
    sl_call call;
    fixdoc f;
    CHECK_INT(plug_open(&q, "ocr-tesseract", lang), 0);
    void *ts = plug_thread(&q);
    f = fixture_doc("text.pdf");
    CHECK_INT(run_parse(&PARSE, PTS, f.doc, &call), 0);
    CHECK_INT(run_pages(&RENDER, RTS, f.doc, &call), 0);
    CHECK_INT(run_pages(&q, ts, f.doc, &call), 0);
    fixdoc_free(&f);
    CHECK_INT(image_through_ocr(&q, ts, "image.png", &f, &call), SL_EFATAL);
    CHECK_CONTAINS(call.msg, "tesseract cannot load languages \"xx-missing\"");
    fixdoc_free(&f);
    plug_thread_free(&q, ts);
    plug_close(&q);
}

/* --- the same answer from every engine, alone or in parallel --- */

typedef struct ocr_run {
    const char *name;
    void *ts;
    char *text;
    float conf;
    int rc;
} ocr_run;

static void *ocr_thread(void *arg) {
    ocr_run *r = arg;
    fixdoc f;
    sl_call call;
    r->rc = image_through_ocr(&OCR, r->ts, r->name, &f, &call);
    r->text = doc_text(f.doc, 0, 1);
    r->conf = sl_doc_element_count(f.doc) ? sl_element_confidence(f.doc, 0) : -1;
    fixdoc_free(&f);
    return NULL;
}

static void test_engines_agree_alone_and_in_parallel(void) {
    void *other = plug_thread(&OCR);
    ocr_run alone[2] = {{"image.png", OTS, NULL, 0, 0}, {"image.jpg", other, NULL, 0, 0}};
    for (int i = 0; i < 2; i++) ocr_thread(&alone[i]);
    ocr_run again = {"image.png", other, NULL, 0, 0};
    ocr_thread(&again);
    CHECK_INT(alone[0].rc, 0);
    CHECK(strlen(alone[0].text) > 40);
    /* one image, two engines: the same text and confidence */
    CHECK_STR(again.text, alone[0].text);
    CHECK(again.conf == alone[0].conf);

    ocr_run par[2] = {{"image.png", OTS, NULL, 0, 0}, {"image.jpg", other, NULL, 0, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) CHECK_INT(pthread_create(&t[i], NULL, ocr_thread, &par[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        CHECK_INT(par[i].rc, 0);
        CHECK_STR(par[i].text, alone[i].text);
        CHECK(par[i].conf == alone[i].conf);
        free(par[i].text);
        free(alone[i].text);
    }
    free(again.text);
    plug_thread_free(&OCR, other);
}

int main(void) {
    CHECK_INT(plug_open(&PARSE, "parse-pdf", NULL), 0);
    CHECK_INT(plug_open(&RENDER, "render-pdf", NULL), 0);
    CHECK_INT(plug_open(&OCR, "ocr-tesseract", NULL), 0);
    CHECK_INT(plug_open(&IMAGE, "parse-image", NULL), 0);
    PTS = plug_thread(&PARSE);
    RTS = plug_thread(&RENDER);
    OTS = plug_thread(&OCR);
    ITS = plug_thread(&IMAGE);
    test_descriptors();
    test_scanned_pdf_is_recognised_under_2_percent_cer();
    test_mixed_pdf_gets_text_layer_and_ocr_page_by_page();
    test_png_jpeg_and_tiff_scans_are_recognised();
    test_damaged_or_oversized_images_fail_with_a_reason();
    test_unit_line_and_min_confidence();
    test_bad_settings_fail_at_init();
    test_missing_language_fails_on_the_first_image();
    test_engines_agree_alone_and_in_parallel();
    plug_thread_free(&IMAGE, ITS);
    plug_thread_free(&OCR, OTS);
    plug_thread_free(&RENDER, RTS);
    plug_thread_free(&PARSE, PTS);
    plug_close(&IMAGE);
    plug_close(&OCR);
    plug_close(&RENDER);
    plug_close(&PARSE);
    return check_done();
}
