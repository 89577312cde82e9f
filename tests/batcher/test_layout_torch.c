/* test_layout_torch.c - the layout-torch plugin run through the batcher, on
 * page images made here (white pages with black rectangles) and TorchScript
 * models compiled from source at test time by torch-make-model (a grid
 * detector of dark rectangles: see make_models.cpp). It checks that the
 * regions found are the rectangles drawn (boxes mapped back to page pixels
 * through fit and stretch resizing, gray, RGB and RGBA pages, labels by
 * name, points from the dpi), that the score threshold filters, that a
 * model running out of memory splits the batch without losing or doubling
 * regions, and that models breaking the contract or options that do not fit
 * fail at init with a message saying why.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../check.h"
#include "../plugin_test.h"
#include "batcher.h"
#include "ctx.h"
#include "document.h"
#include "instance.h"
#include "registry.h"
#include "loop.h"

static sl_ctx *ctx;
static sl_registry *reg;
static const sl_loaded *plugin;
static char models[4096];

/* --- models and instances --- */

/* Writes every test model into `models` (one process: libtorch starts once). */
static void make_models(void) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' --all '%s'", MAKE_MODEL, models);
    int rc = system(cmd);
    CHECK_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "failed: %s\n", cmd);
        exit(check_done());
    }
}

/* An instance of layout-torch with model NAME and "key=value" overrides; NULL
 * when init failed (the message is then sl_ctx_errmsg). */
static sl_instance *layout_new(const char *model, const char *const *kv, size_t n) {
    char opt[4200];
    snprintf(opt, sizeof opt, "model=%s/%s.pt", models, model);
    const char *base[] = {opt, "device=cpu", "threads=1"};
    return plugin_instance(ctx, plugin, "layout", base, 3, kv, n);
}

/* --- pages --- */

typedef struct rect {
    uint32_t x0, y0, x1, y1;
    const char *label; /* expected; NULL: not to be found */
} rect;

/* Sets page `page` to a white w x h image of `ch` channels with `n` rects
 * filled with `ink` (ch bytes; alpha last for RGBA). */
static void draw(sl_doc *d, uint32_t page, uint32_t w, uint32_t h, uint32_t ch, const rect *r, size_t n,
                 const unsigned char *ink, float dpi) {
    size_t stride = (size_t)w * ch + 3; /* rows padded: stride is honoured */
    unsigned char *px = malloc(stride * h);
    memset(px, 255, stride * h);
    for (size_t i = 0; i < n; i++)
        for (uint32_t y = r[i].y0; y < r[i].y1; y++)
            for (uint32_t x = r[i].x0; x < r[i].x1; x++) memcpy(px + y * stride + (size_t)x * ch, ink, ch);
    CHECK_INT(sl_doc_set_page_image(d, page, w, h, ch, stride, px, dpi), 0);
    free(px);
}

/* Regions of (doc, page) must be exactly `want` (those with a label), each
 * box within `tol` page units of its rect. */
static void expect_regions(const sl_doc *d, uint32_t page, const rect *want, size_t n, float tol) {
    size_t expected = 0, found = 0;
    for (size_t i = 0; i < n; i++) expected += want[i].label != NULL;
    for (size_t k = 0; k < sl_doc_region_count(d); k++) {
        uint32_t p;
        const char *label;
        float score, box[4];
        sl_doc_region(d, k, &p, &label, &score, box);
        if (p != page) continue;
        found++;
        int matched = 0;
        for (size_t i = 0; i < n && !matched; i++) {
            if (!want[i].label) continue;
            matched = fabsf(box[0] - (float)want[i].x0) <= tol && fabsf(box[1] - (float)want[i].y0) <= tol &&
                      fabsf(box[2] - (float)want[i].x1) <= tol && fabsf(box[3] - (float)want[i].y1) <= tol;
            if (matched) {
                CHECK_STR(label, want[i].label);
                CHECK(score >= 0.99f && score <= 1.0f);
            }
        }
        if (!matched)
            fprintf(stderr, "%s page %u: unexpected region %s %.1f,%.1f,%.1f,%.1f (score %.2f)\n",
                    sl_doc_uri(d), page, label, box[0], box[1], box[2], box[3], score);
        CHECK(matched);
    }
    if (found != expected) fprintf(stderr, "%s page %u: %zu regions\n", sl_doc_uri(d), page, found);
    CHECK_INT(found, expected);
}

/* --- running pages through the batcher --- */

typedef struct result {
    int calls, rc;
    char msg[512];
} result;

static result results[64];
static int nsubmit, ndone;
static uv_timer_t keeper;

static void on_keep(uv_timer_t *t) {}

static void on_done(void *arg, int rc, const char *msg, const sl_batch_times *times) {
    result *r = arg;
    r->calls++;
    r->rc = rc;
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
    if (++ndone == nsubmit) uv_close((uv_handle_t *)&keeper, NULL);
}

/* Runs every page of every document through a batcher of `inst`; fills
 * *st with its statistics and checks every unit succeeded once. */
static void run_pages(sl_instance *inst, sl_doc **docs, size_t ndocs, uint32_t max_batch,
                      sl_batcher_stats *st) {
    sl_loop *loop;
    sl_loop_new(&loop);
    sl_batcher_opts o = {max_batch, 20, false};
    sl_batcher *b = NULL;
    CHECK_INT(sl_batcher_new(loop, inst, &o, &b), 0);
    memset(results, 0, sizeof results);
    nsubmit = ndone = 0;
    for (size_t i = 0; i < ndocs; i++)
        for (uint32_t p = 1; p <= sl_doc_page_count(docs[i]); p++) {
            CHECK_INT(sl_batcher_submit(b, docs[i], p, on_done, &results[nsubmit]), 0);
            nsubmit++;
        }
    uv_timer_init(sl_loop_uv(loop), &keeper);
    uv_timer_start(&keeper, on_keep, 1000000, 1000000);
    sl_loop_run(loop);
    CHECK_INT(ndone, nsubmit);
    for (int i = 0; i < nsubmit; i++) {
        CHECK_INT(results[i].calls, 1);
        if (results[i].rc) fprintf(stderr, "unit %d: %s\n", i, results[i].msg);
        CHECK_INT(results[i].rc, 0);
    }
    sl_batcher_stats_get(b, st);
    sl_batcher_free(b);
    sl_loop_free(loop);
}

static const unsigned char black[4] = {0, 0, 0, 255};

/* --- tests --- */

static void test_regions_are_the_dark_rectangles(void) {
    const char *kv[] = {"channels=1", "input_width=256", "input_height=256", "labels=tall,wide"};
    sl_instance *inst = layout_new("rects", kv, 4);
    CHECK(inst != NULL);
    if (!inst) {
        fprintf(stderr, "%s\n", sl_ctx_errmsg(ctx));
        return;
    }
    /* a: gray 512x384, fit: half size, bottom padded white. Each rectangle
     * lies in one cell of the model's 8x8 grid. */
    sl_doc *a = sl_doc_new("a.pdf", NULL);
    sl_doc_set_page_count(a, 4);
    rect a1[] = {{70, 10, 120, 50, "wide"}, {200, 140, 250, 180, "wide"}, {300, 200, 320, 250, "tall"}};
    rect a3[] = {{450, 330, 500, 370, "wide"}};
    /* an outline scores its dark share of its box (about 0.2): below threshold */
    rect a4[] = {{130, 130, 170, 132, NULL},
                 {130, 168, 170, 170, NULL},
                 {130, 130, 132, 170, NULL},
                 {168, 130, 170, 170, NULL}};
    draw(a, 1, 512, 384, 1, a1, 3, black, 72);
    draw(a, 2, 512, 384, 1, NULL, 0, black, 72);
    draw(a, 3, 512, 384, 1, a3, 1, black, 72);
    draw(a, 4, 512, 384, 1, a4, 4, black, 72);
    /* b: RGB 256x256 (scale 1), a dark blue rectangle, and RGBA where a
     * transparent black rectangle is white over white */
    sl_doc *b = sl_doc_new("b.png", NULL);
    sl_doc_set_page_count(b, 3);
    rect b1[] = {{10, 10, 20, 30, "tall"}};
    rect b2[] = {{40, 40, 60, 50, "wide"}};
    rect b3[] = {{100, 100, 120, 126, "tall"}};
    rect b3t[] = {{170, 170, 190, 190, NULL}};
    const unsigned char blue[3] = {0, 0, 128}, clear[4] = {0, 0, 0, 0};
    draw(b, 1, 256, 256, 3, b1, 1, black, 0);
    draw(b, 2, 256, 256, 3, b2, 1, blue, 0);
    draw(b, 3, 256, 256, 4, b3, 1, black, 0);
    {
        /* add the transparent rectangle to page 3 */
        uint32_t w, h, ch;
        size_t stride;
        const unsigned char *px = sl_doc_page_image(b, 3, &w, &h, &ch, &stride, NULL);
        unsigned char *copy = malloc(stride * h);
        memcpy(copy, px, stride * h);
        for (uint32_t y = b3t[0].y0; y < b3t[0].y1; y++)
            for (uint32_t x = b3t[0].x0; x < b3t[0].x1; x++) memcpy(copy + y * stride + x * 4, clear, 4);
        sl_doc_set_page_image(b, 3, w, h, ch, stride, copy, 0);
        free(copy);
    }
    /* c: gray 1024x1024 (a quarter), and a page with no image at all */
    sl_doc *c = sl_doc_new("c.tiff", NULL);
    sl_doc_set_page_count(c, 2);
    rect c1[] = {{520, 260, 600, 300, "wide"}};
    draw(c, 1, 1024, 1024, 1, c1, 1, black, 300);

    sl_doc *docs[] = {a, b, c};
    sl_batcher_stats st;
    run_pages(inst, docs, 3, 4, &st);
    expect_regions(a, 1, a1, 3, 2);
    expect_regions(a, 2, NULL, 0, 2);
    expect_regions(a, 3, a3, 1, 2);
    expect_regions(a, 4, a4, 4, 2);
    expect_regions(b, 1, b1, 1, 1);
    expect_regions(b, 2, b2, 1, 1);
    expect_regions(b, 3, b3, 1, 1);
    expect_regions(c, 1, c1, 1, 4);
    expect_regions(c, 2, NULL, 0, 4);
    CHECK_INT(st.units, 9);
    CHECK(st.batches < st.units); /* pages of different documents shared batches */
    CHECK_INT(st.splits, 0);
    sl_doc_free(a);
    sl_doc_free(b);
    sl_doc_free(c);
    sl_instance_free(inst);
}

static void test_tuple_output_stretch_and_points(void) {
    /* no labels output: every region is class 0, named label0 with no names given */
    const char *kv[] = {"channels=3", "input_width=256", "input_height=256", "resize=stretch",
                        "units=points"};
    sl_instance *inst = layout_new("rects-tuple", kv, 5);
    CHECK(inst != NULL);
    if (!inst) {
        fprintf(stderr, "%s\n", sl_ctx_errmsg(ctx));
        return;
    }
    /* 512x256 stretched to 256x256: x halves, y stays; 144 dpi: points are half the pixels */
    sl_doc *d = sl_doc_new("stretch.pdf", NULL);
    sl_doc_set_page_count(d, 1);
    rect r[] = {{80, 40, 120, 60, "label0"}};
    draw(d, 1, 512, 256, 1, r, 1, black, 144);
    sl_batcher_stats st;
    run_pages(inst, &d, 1, 4, &st);
    rect pts[] = {{40, 20, 60, 30, "label0"}};
    expect_regions(d, 1, pts, 1, 1);
    sl_doc_free(d);
    sl_instance_free(inst);
}

static void test_model_out_of_memory_splits_the_batch(void) {
    const char *kv[] = {"channels=1", "input_width=256", "input_height=256", "labels=tall,wide"};
    sl_instance *inst = layout_new("rects-oom", kv, 4);
    CHECK(inst != NULL);
    if (!inst) {
        fprintf(stderr, "%s\n", sl_ctx_errmsg(ctx));
        return;
    }
    sl_doc *docs[6];
    rect r[6][1];
    for (int i = 0; i < 6; i++) {
        char uri[32];
        snprintf(uri, sizeof uri, "oom%d.png", i);
        docs[i] = sl_doc_new(uri, NULL);
        sl_doc_set_page_count(docs[i], 1);
        r[i][0] = (rect){(uint32_t)(40 + 32 * i), 40, (uint32_t)(50 + 32 * i), 60, "tall"};
        draw(docs[i], 1, 256, 256, 1, r[i], 1, black, 0);
    }
    sl_batcher_stats st;
    run_pages(inst, docs, 6, 8, &st);
    for (int i = 0; i < 6; i++) expect_regions(docs[i], 1, r[i], 1, 1); /* once each: no leftovers */
    CHECK(st.splits >= 1);
    CHECK_INT(st.ceiling, 2);
    CHECK_INT(st.units, 6);
    for (int i = 0; i < 6; i++) sl_doc_free(docs[i]);
    sl_instance_free(inst);
}

static void test_models_and_options_that_do_not_fit_fail_at_init(void) {
    const char *kv[] = {"channels=1", "input_width=256", "input_height=256"};
    CHECK(layout_new("bad-output", kv, 3) == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "boxes");

    CHECK(layout_new("no-such-model", kv, 3) == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "cannot load model");
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "no-such-model.pt");

    /* the grid model needs sides divisible by 8: the check at init says so */
    const char *odd[] = {"channels=1", "input_width=250", "input_height=256"};
    CHECK(layout_new("rects", odd, 3) == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "failed on a blank [1,1,256,250] input");

    const char *two[] = {"channels=2"};
    CHECK(layout_new("rects", two, 1) == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "channels must be 1 or 3");
}

static void test_cuda_runs_or_says_why_not(void) {
    const char *kv[] = {"channels=1", "input_width=256", "input_height=256", "device=cuda"};
    sl_instance *inst = layout_new("rects", kv, 4);
    if (!inst) { /* a CPU build of libtorch, or no GPU here */
        CHECK_CONTAINS(sl_ctx_errmsg(ctx), "CUDA");
        return;
    }
    sl_doc *d = sl_doc_new("cuda.png", NULL);
    sl_doc_set_page_count(d, 1);
    rect r[] = {{40, 40, 50, 60, "label0"}};
    draw(d, 1, 256, 256, 1, r, 1, black, 0);
    sl_batcher_stats st;
    run_pages(inst, &d, 1, 4, &st);
    expect_regions(d, 1, r, 1, 1);
    sl_doc_free(d);
    sl_instance_free(inst);
}

int main(void) {
    ctx = sl_ctx_new();
    const char *tmp = getenv("SLUICE_TEST_TMP"), *dir = getenv("SLUICE_PLUGIN_DIR");
    CHECK(tmp && dir);
    if (!tmp || !dir) return check_done();
    snprintf(models, sizeof models, "%s/layout-torch-models", tmp);
    mkdir(models, 0755);
    make_models();

    if (plugin_open(ctx, dir, "layout-torch.so", &reg, &plugin)) return check_done();
    test_regions_are_the_dark_rectangles();
    test_tuple_output_stretch_and_points();
    test_model_out_of_memory_splits_the_batch();
    test_models_and_options_that_do_not_fit_fail_at_init();
    test_cuda_runs_or_says_why_not();
    sl_registry_free(reg);
    sl_ctx_free(ctx);
    return check_done();
}
