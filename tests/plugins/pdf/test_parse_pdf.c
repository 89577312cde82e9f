/* test_parse_pdf.c - parse-pdf reads a PDF's text layer into elements with
 * pages, boxes and lines, its metadata, and its outline as headings on the
 * pages they point at; leaves pages without text empty for OCR; opens
 * encrypted PDFs only with the right password; refuses truncated and
 * corrupted files with a reason; fails page trees mupdf would loop in or
 * multiply, and reads those whose page counts are wrong; and gives the same answers when many
 * threads parse at once, each with its own mupdf context. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static plug P;   /* defaults */
static void *TS; /* the main thread's mupdf context */

static int parse_fixture(plug *p, void *ts, const char *name, fixdoc *f, sl_call *call) {
    *f = fixture_doc(name);
    return run_parse(p, ts, f->doc, call);
}

static void test_descriptor(void) {
    CHECK_STR(P.desc->name, "parse-pdf");
    CHECK_INT(P.desc->role, SL_ROLE_PARSER);
    CHECK_INT(P.desc->bottleneck, SL_CPU);
    CHECK_STR(P.desc->media_types[0], "application/pdf");
    CHECK(P.desc->media_types[1] == NULL);
    CHECK(P.desc->thread_init != NULL && P.desc->thread_fini != NULL);
}

static void test_text_layer_becomes_paragraphs_with_pages_boxes_and_lines(void) {
    fixdoc f;
    sl_call call;
    CHECK_INT(parse_fixture(&P, TS, "text.pdf", &f, &call), 0);
    sl_doc *d = f.doc;
    CHECK_INT(sl_doc_page_count(d), FX_TEXT_PAGES);
    /* every body line of every page is found on its page */
    for (int pg = 0; pg < FX_TEXT_PAGES; pg++) {
        char *text = doc_text(d, (uint32_t)pg + 1, 0);
        const char *p = fx_text_pages[pg];
        while (*p) {
            size_t n = strcspn(p, "\n");
            char line[256];
            snprintf(line, sizeof line, "%.*s", (int)n, p[0] == '#' ? p + 2 : p);
            if (n) CHECK_CONTAINS(text, line);
            p += n + (p[n] == '\n');
        }
        free(text);
    }
    long e = find_element(d, "seventeen lanterns");
    CHECK(e >= 0);
    if (e >= 0) {
        size_t i = (size_t)e;
        float box[4];
        CHECK_INT(sl_element_type(d, i), SL_EL_PARAGRAPH);
        CHECK_INT(sl_element_page(d, i), 2);
        CHECK_INT(sl_element_bbox(d, i, box), 1);
        /* points from the top left: the block sits below the heading, inside the page */
        CHECK(box[0] >= 71 && box[0] < 80 && box[2] > box[0] && box[2] <= 612);
        CHECK(box[1] > 72 && box[3] > box[1] && box[3] < 200);
        /* its first line follows the heading's line */
        CHECK_INT(sl_element_line(d, i), 2);
        /* lines of one block are joined by newlines, in order */
        CHECK_CONTAINS(
            sl_element_text(d, i, NULL),
            "breakwater.\nEach lantern burns whale oil in old stories, but paraffin in the ledgers.");
    }
    /* a blank line on the page starts a new block */
    long a = find_element(d, "gulls"), b = find_element(d, "lighthouse keeper");
    CHECK(a >= 0 && b > a);
    if (b >= 0) CHECK_INT(sl_element_line(d, (size_t)b), 5);
    fixdoc_free(&f);
}

static void test_metadata_with_iso_dates(void) {
    fixdoc f;
    sl_call call;
    CHECK_INT(parse_fixture(&P, TS, "text.pdf", &f, &call), 0);
    CHECK_STR(sl_doc_meta_get(f.doc, "title"), FX_TITLE);
    CHECK_STR(sl_doc_meta_get(f.doc, "author"), FX_AUTHOR);
    CHECK_STR(sl_doc_meta_get(f.doc, "created"), FX_CREATED);
    CHECK_STR(sl_doc_meta_get(f.doc, "modified"), FX_MODIFIED);
    CHECK_STR(sl_doc_meta_get(f.doc, "format"), "PDF 1.7");
    CHECK_STR(sl_doc_meta_get(f.doc, "pages"), "3");
    CHECK(sl_doc_meta_get(f.doc, "subject") == NULL);
    CHECK(sl_doc_meta_get(f.doc, "repaired") == NULL);
    fixdoc_free(&f);
}

static void test_outline_becomes_headings_on_their_pages(void) {
    fixdoc f;
    sl_call call;
    CHECK_INT(parse_fixture(&P, TS, "text.pdf", &f, &call), 0);
    sl_doc *d = f.doc;
    size_t heads = 0;
    for (size_t i = 0; i < sl_doc_element_count(d); i++) {
        if (sl_element_type(d, i) != SL_EL_HEADING) continue;
        CHECK(heads < FX_OUTLINE);
        if (heads >= FX_OUTLINE) break;
        const fx_heading *h = &fx_outline[heads++];
        CHECK_STR(sl_element_text(d, i, NULL), h->title);
        CHECK_INT(sl_element_level(d, i), h->level);
        CHECK_INT(sl_element_page(d, i), h->page);
    }
    CHECK_INT(heads, FX_OUTLINE);
    /* a heading whose title is a block of its page replaces that block */
    long h1 = find_element(d, "Chapter One: Harbours");
    CHECK(h1 >= 0);
    if (h1 >= 0) {
        float box[4];
        CHECK_INT(sl_element_type(d, (size_t)h1), SL_EL_HEADING);
        CHECK_INT(sl_element_bbox(d, (size_t)h1, box), 1);
        CHECK_INT(sl_element_line(d, (size_t)h1), 1);
        CHECK(h1 == 0); /* first on page 1 */
    }
    size_t same = 0;
    for (size_t i = 0; i < sl_doc_element_count(d); i++)
        same += strcmp(sl_element_text(d, i, NULL), "Lanterns and Pilots") == 0;
    CHECK_INT(same, 1);
    /* one without such a block goes where it points: between the two paragraphs of page 3 */
    long orchards = find_element(d, "orchards climb"), cider = find_element(d, "The Cider Press"),
         pickers = find_element(d, "Pickers arrive");
    CHECK(orchards >= 0 && cider > orchards && pickers > cider);
    if (cider >= 0) CHECK_INT(sl_element_type(d, (size_t)cider), SL_EL_HEADING);
    fixdoc_free(&f);

    /* outline = false: no headings; the chapter titles stay paragraphs */
    plug q;
    static const char *const off[] = {"outline=false", NULL};
    CHECK_INT(plug_open(&q, "parse-pdf", off), 0);
    void *ts = plug_thread(&q);
    CHECK_INT(parse_fixture(&q, ts, "text.pdf", &f, &call), 0);
    size_t nheads = 0;
    for (size_t i = 0; i < sl_doc_element_count(f.doc); i++)
        nheads += sl_element_type(f.doc, i) == SL_EL_HEADING;
    CHECK_INT(nheads, 0);
    long t = find_element(f.doc, "Chapter Two: Orchards");
    CHECK(t >= 0);
    if (t >= 0) CHECK_INT(sl_element_type(f.doc, (size_t)t), SL_EL_PARAGRAPH);
    CHECK(find_element(f.doc, "The Cider Press") < 0);
    fixdoc_free(&f);
    plug_thread_free(&q, ts);
    plug_close(&q);
}

static void test_pages_without_text_get_no_elements(void) {
    fixdoc f;
    sl_call call;
    /* a scan: pages counted, nothing added, and no failure (OCR decides) */
    CHECK_INT(parse_fixture(&P, TS, "scanned.pdf", &f, &call), 0);
    CHECK_INT(sl_doc_page_count(f.doc), FX_SCAN_PAGES);
    CHECK_INT(sl_doc_element_count(f.doc), 0);
    fixdoc_free(&f);
    /* mixed: pages 1 and 3 have text, page 2 none */
    CHECK_INT(parse_fixture(&P, TS, "mixed.pdf", &f, &call), 0);
    CHECK_INT(sl_doc_page_count(f.doc), 3);
    CHECK(sl_doc_page_text_chars(f.doc, 1) > 60);
    CHECK_INT(sl_doc_page_text_chars(f.doc, 2), 0);
    CHECK(sl_doc_page_text_chars(f.doc, 3) > 40);
    char *p1 = doc_text(f.doc, 1, 0);
    CHECK_CONTAINS(p1, "real text layer");
    free(p1);
    fixdoc_free(&f);
}

static void test_encrypted_pdf_needs_the_right_password(void) {
    fixdoc f;
    sl_call call;
    CHECK_INT(parse_fixture(&P, TS, "encrypted.pdf", &f, &call), SL_EBADINPUT);
    CHECK_STR(call.msg, "encrypted PDF: needs a password (set [parse-pdf] password)");
    CHECK_INT(sl_doc_element_count(f.doc), 0);
    fixdoc_free(&f);

    static const char *const good[] = {"password=" FX_PASSWORD, NULL};
    static const char *const bad[] = {"password=open-sesame", NULL};
    plug q;
    CHECK_INT(plug_open(&q, "parse-pdf", good), 0);
    void *ts = plug_thread(&q);
    CHECK_INT(parse_fixture(&q, ts, "encrypted.pdf", &f, &call), 0);
    char *text = doc_text(f.doc, 0, 0);
    CHECK_CONTAINS(text, "buried under the third olive tree");
    free(text);
    fixdoc_free(&f);
    /* a password on a PDF that needs none changes nothing */
    CHECK_INT(parse_fixture(&q, ts, "text.pdf", &f, &call), 0);
    CHECK(find_element(f.doc, "seventeen lanterns") >= 0);
    fixdoc_free(&f);
    plug_thread_free(&q, ts);
    plug_close(&q);

    CHECK_INT(plug_open(&q, "parse-pdf", bad), 0);
    ts = plug_thread(&q);
    CHECK_INT(parse_fixture(&q, ts, "encrypted.pdf", &f, &call), SL_EBADINPUT);
    CHECK_STR(call.msg, "encrypted PDF: the password in [parse-pdf] password does not open it");
    CHECK(strstr(call.msg, "open-sesame") == NULL);
    fixdoc_free(&f);
    plug_thread_free(&q, ts);
    plug_close(&q);
}

static void test_damaged_files_fail_with_their_reason(void) {
    static const struct {
        const char *name, *reason;
    } cases[] = {
        {"truncated.pdf", "truncated PDF: no %EOF marker at its end"},
        {"garbage.pdf", "not a PDF: no %PDF- header in its first 1 KiB"},
        {"headless.pdf", "not a PDF: no %PDF- header in its first 1 KiB"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixdoc f;
        sl_call call;
        CHECK_INT(parse_fixture(&P, TS, cases[i].name, &f, &call), SL_EBADINPUT);
        CHECK_CONTAINS(call.msg, cases[i].reason);
        CHECK_INT(sl_doc_element_count(f.doc), 0);
        fixdoc_free(&f);
    }
    /* empty */
    sl_doc *doc = sl_doc_new("empty.pdf", NULL);
    sl_doc_set_data(doc, "", 0);
    sl_call call;
    CHECK_INT(run_parse(&P, TS, doc, &call), SL_EBADINPUT);
    CHECK_STR(call.msg, "empty file");
    sl_doc_free(doc);

    /* header and trailer intact, objects overwritten: mupdf repairs what it
     * can; the pages it finds have no text, and the document says so */
    fixdoc f;
    CHECK_INT(parse_fixture(&P, TS, "scrambled.pdf", &f, &call), 0);
    CHECK_INT(sl_doc_element_count(f.doc), 0);
    CHECK_STR(sl_doc_meta_get(f.doc, "repaired"), "true");
    fixdoc_free(&f);

    /* allow_truncated: mupdf tries; this file has lost its page tree, and
     * mupdf's own reason is passed on */
    plug q;
    static const char *const allow[] = {"allow_truncated=true", NULL};
    CHECK_INT(plug_open(&q, "parse-pdf", allow), 0);
    void *ts = plug_thread(&q);
    CHECK_INT(parse_fixture(&q, ts, "truncated.pdf", &f, &call), SL_EBADINPUT);
    CHECK(strncmp(call.msg, "cannot ", 7) == 0);
    CHECK(strstr(call.msg, "%EOF") == NULL);
    fixdoc_free(&f);
    plug_thread_free(&q, ts);
    plug_close(&q);

    /* by default, a file without the newline after its %%EOF still opens */
    size_t len;
    char *bytes = fixture_bytes("text.pdf", &len);
    doc = sl_doc_new("text-cut.pdf", NULL);
    sl_doc_set_data(doc, bytes, len - 1);
    CHECK_INT(run_parse(&P, TS, doc, &call), 0);
    CHECK(find_element(doc, "seventeen lanterns") >= 0);
    sl_doc_free(doc);
    free(bytes);
}

/* --- page trees (pdf_of: harness.h) --- */

static void test_hostile_page_trees_fail_at_once_with_their_reason(void) {
    /* a /Pages node written inline, with a null kid where the page is: mupdf
     * 1.21 looked for page 2 in it for ever (a fuzzer's find) */
    static const char *const null_kid[] = {
        CATALOG,
        "<< /Type /Pages /Count 2 /Kids [3 0 R << /Type /Pages /Count 1 /Kids [null] >>] >>",
        PAGE("4 0 R"),
        TEXT("the first page of the null kid file"),
    };
    /* a branch that lists itself */
    static const char *const cycle[] = {
        CATALOG,
        "<< /Type /Pages /Count 2 /Kids [3 0 R 5 0 R] >>",
        PAGE("4 0 R"),
        TEXT("a page before the cycle"),
        "<< /Type /Pages /Count 1 /Kids [5 0 R] >>",
    };
    /* one branch of ten pages shared ten times, three levels: a thousand
     * pages from a few objects, and a million one level on */
    static const char *const shared[] = {
        CATALOG,
        "<< /Type /Pages /Count 1000 /Kids [5 0 R 5 0 R 5 0 R 5 0 R 5 0 R 5 0 R 5 0 R 5 0 R 5 0 R 5 0 R] >>",
        PAGE("4 0 R"),
        TEXT("one page shared"),
        "<< /Type /Pages /Count 100 /Kids [6 0 R 6 0 R 6 0 R 6 0 R 6 0 R 6 0 R 6 0 R 6 0 R 6 0 R 6 0 R] >>",
        "<< /Type /Pages /Count 10 /Kids [3 0 R 3 0 R 3 0 R 3 0 R 3 0 R 3 0 R 3 0 R 3 0 R 3 0 R 3 0 R] >>",
    };
    static const struct {
        const char *name;
        const char *const *objs;
        size_t n;
        const char *reason;
    } cases[] = {
        {"null-kid.pdf", null_kid, 4,
         "cannot read the PDF's page tree: kid 1 of /Pages node (written inline) is null, not a page"},
        {"cycle.pdf", cycle, 5, "cannot read the PDF's page tree: /Pages node 5 0 R is met twice"},
        {"shared.pdf", shared, 6, "cannot read the PDF's page tree: /Pages node 6 0 R is met twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *bytes;
        sl_doc *doc = pdf_of(cases[i].name, cases[i].objs, cases[i].n, &bytes);
        sl_call call;
        CHECK_INT(run_parse(&P, TS, doc, &call), SL_EBADINPUT);
        CHECK_CONTAINS(call.msg, cases[i].reason);
        CHECK_INT(sl_doc_element_count(doc), 0);
        sl_doc_free(doc);
        free(bytes);
    }

    /* deeper than the parser walks: a chain of /Pages nodes 1,500 long */
    enum { DEEP = 1500 };
    char **deep = calloc(DEEP + 3, sizeof *deep);
    deep[0] = strdup(CATALOG);
    for (int d = 0; d < DEEP; d++) { /* objects 2 .. DEEP + 1 */
        deep[d + 1] = malloc(64);
        snprintf(deep[d + 1], 64, "<< /Type /Pages /Count 1 /Kids [%d 0 R] >>", d + 3);
    }
    deep[DEEP + 1] = strdup(PAGE("1 0 R"));
    char *bytes;
    sl_doc *doc = pdf_of("deep-tree.pdf", (const char *const *)deep, DEEP + 2, &bytes);
    sl_call call;
    CHECK_INT(run_parse(&P, TS, doc, &call), SL_EBADINPUT);
    CHECK_CONTAINS(call.msg, "cannot read the PDF's page tree nested more than 1000 deep");
    sl_doc_free(doc);
    free(bytes);
    for (int d = 0; d < DEEP + 2; d++) free(deep[d]);
    free(deep);
}

static void test_wrong_page_counts_are_corrected_and_every_page_read(void) {
    /* the root says 1 page and 2,000,000,000 in a branch: three are there */
    static const char *const wrong[] = {
        CATALOG,
        "<< /Type /Pages /Count 1 /Kids [3 0 R 5 0 R] >>",
        PAGE("4 0 R"),
        TEXT("alpha page of the miscounted file"),
        "<< /Type /Pages /Count 2000000000 /Kids [6 0 R 8 0 R] >>",
        PAGE("7 0 R"),
        TEXT("bravo page of the miscounted file"),
        PAGE("9 0 R"),
        TEXT("charlie page of the miscounted file"),
    };
    char *bytes;
    sl_doc *doc = pdf_of("miscounted.pdf", wrong, 9, &bytes);
    sl_call call;
    CHECK_INT(run_parse(&P, TS, doc, &call), 0);
    CHECK_STR(sl_doc_meta_get(doc, "pages"), "3");
    static const char *const words[] = {"alpha page", "bravo page", "charlie page"};
    for (uint32_t i = 0; i < 3; i++) {
        long e = find_element(doc, words[i]);
        CHECK(e >= 0);
        if (e >= 0) CHECK_INT(sl_element_page(doc, (size_t)e), i + 1);
    }
    sl_doc_free(doc);
    free(bytes);

    /* one page object listed twice is two pages, as mupdf reads it; a node
     * without /Type (kids, no media box) is a /Pages node */
    static const char *const twice[] = {
        CATALOG,
        "<< /Type /Pages /Count 2 /Kids [5 0 R] >>",
        PAGE("4 0 R"),
        TEXT("the page listed twice"),
        "<< /Count 2 /Kids [3 0 R 3 0 R] >>",
    };
    doc = pdf_of("twice.pdf", twice, 5, &bytes);
    CHECK_INT(run_parse(&P, TS, doc, &call), 0);
    CHECK_STR(sl_doc_meta_get(doc, "pages"), "2");
    size_t on[3] = {0};
    for (size_t e = 0; e < sl_doc_element_count(doc); e++) {
        size_t len;
        const char *t = sl_element_text(doc, e, &len);
        uint32_t pg = sl_element_page(doc, e);
        if (t && strstr(t, "the page listed twice") && pg <= 2) on[pg]++;
    }
    CHECK_INT(on[1], 1);
    CHECK_INT(on[2], 1);
    sl_doc_free(doc);
    free(bytes);
}

/* --- many documents at once, one mupdf context per thread ---
 * Both ways of giving threads their contexts: independent ones (the
 * default) and clones sharing one cache under mupdf's lock callbacks. */

#define THREADS 4
#define ROUNDS 6
static const char *const parallel_docs[] = {"text.pdf", "mixed.pdf", "scanned.pdf", "encrypted.pdf",
                                            "truncated.pdf"};
#define NDOCS (sizeof parallel_docs / sizeof parallel_docs[0])

typedef struct outcome {
    int rc;
    size_t elements;
    char *text;
} outcome;

static plug *PAR; /* the instance the parallel test runs */

static outcome parse_once(void *ts, const char *name) {
    fixdoc f;
    sl_call call;
    outcome o;
    o.rc = parse_fixture(PAR, ts, name, &f, &call);
    o.elements = sl_doc_element_count(f.doc);
    o.text = doc_text(f.doc, 0, 0);
    fixdoc_free(&f);
    return o;
}

static outcome serial[NDOCS];
static int mismatches;
static pthread_mutex_t mismatch_lock = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg) {
    size_t id = (size_t)arg;
    void *ts = plug_thread(PAR);
    for (size_t r = 0; r < ROUNDS; r++)
        for (size_t k = 0; k < NDOCS; k++) {
            size_t i = (k + id + r) % NDOCS;
            outcome o = parse_once(ts, parallel_docs[i]);
            if (o.rc != serial[i].rc || o.elements != serial[i].elements ||
                strcmp(o.text, serial[i].text) != 0) {
                pthread_mutex_lock(&mismatch_lock);
                mismatches++;
                pthread_mutex_unlock(&mismatch_lock);
            }
            free(o.text);
        }
    plug_thread_free(PAR, ts);
    return NULL;
}

static void parallel_parses_match_serial_ones(plug *p, void *main_ts) {
    PAR = p;
    mismatches = 0;
    for (size_t i = 0; i < NDOCS; i++) serial[i] = parse_once(main_ts, parallel_docs[i]);
    CHECK_INT(serial[0].rc, 0);
    CHECK(serial[0].elements > 5);
    CHECK_INT(serial[3].rc, SL_EBADINPUT);
    pthread_t t[THREADS];
    for (size_t i = 0; i < THREADS; i++) CHECK_INT(pthread_create(&t[i], NULL, worker, (void *)i), 0);
    for (size_t i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    CHECK_INT(mismatches, 0);
    for (size_t i = 0; i < NDOCS; i++) free(serial[i].text);
}

static void test_parallel_parses_match_serial_ones(void) { parallel_parses_match_serial_ones(&P, TS); }

static void test_parallel_parses_with_a_shared_cache_match_serial_ones(void) {
    plug q;
    const char *shared[] = {"shared_cache=true", NULL};
    CHECK_INT(plug_open(&q, "parse-pdf", shared), 0);
    void *ts = plug_thread(&q);
    parallel_parses_match_serial_ones(&q, ts);
    plug_thread_free(&q, ts);
    plug_close(&q);
}

int main(void) {
    CHECK_INT(plug_open(&P, "parse-pdf", NULL), 0);
    TS = plug_thread(&P);
    test_descriptor();
    test_text_layer_becomes_paragraphs_with_pages_boxes_and_lines();
    test_metadata_with_iso_dates();
    test_outline_becomes_headings_on_their_pages();
    test_pages_without_text_get_no_elements();
    test_encrypted_pdf_needs_the_right_password();
    test_damaged_files_fail_with_their_reason();
    test_hostile_page_trees_fail_at_once_with_their_reason();
    test_wrong_page_counts_are_corrected_and_every_page_read();
    test_parallel_parses_match_serial_ones();
    test_parallel_parses_with_a_shared_cache_match_serial_ones();
    plug_thread_free(&P, TS);
    plug_close(&P);
    return check_done();
}
