/* render.c - render-pdf: PDF pages without a real text layer, rendered to
 * gray images for OCR.
 *
 * A page stage: the core calls it once per page, pages of one document on
 * several pool threads at once. A page whose elements already hold at least
 * `min_chars` characters (its text layer, from parse-pdf) is left alone;
 * any other is rendered at `dpi` into an 8-bit gray image on the page
 * (sl_doc_set_page_image), where ocr-tesseract finds it. A page so large
 * that the image would exceed `max_pixels` is rendered at the highest
 * resolution that fits.
 *
 * The document is opened again from its bytes (sl_doc_data): the parser's
 * mupdf document lived in another thread's context and is gone. Each pool
 * thread has its own mupdf context (plugins/common/mupdf.h) and keeps the
 * last document it opened, so the pages
 * of one document that land on the same thread open it once. The cache is
 * keyed by the bytes' address, length and content hash: a hit means the
 * same bytes are still mapped where the cached document reads them.
 */
#include <math.h>
#include <mupdf/fitz.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include "mupdf.h"

#define MAX_DPI 1200
#define MAX_SIDE 32768 /* pixels per side; mupdf's and most image code's comfort zone */

typedef struct rp_config {
    int64_t dpi;
    int64_t min_chars;
    int64_t max_pixels;
    const char *password;
    uint64_t cache;
    bool shared_cache;
} rp_config;

typedef struct rp_state {
    sl_instance *inst;
    slmu mu;
    int dpi;
    size_t min_chars;
    double max_pixels;
    const char *password;
} rp_state;

/* One pool thread's context and the document it opened last. */
typedef struct rp_thread {
    slmu_thread mu;
    fz_document *fdoc;
    const char *data;
    size_t len;
    char hash[33];
} rp_thread;

static const sl_option options[] = {
    {.name = "dpi",
     .type = SL_OPT_INT,
     .def = "200",
     .help = "resolution pages are rendered at (dots per inch, 36..1200)",
     .offset = offsetof(rp_config, dpi)},
    {.name = "min_chars",
     .type = SL_OPT_INT,
     .def = "32",
     .help = "render pages whose text layer has fewer characters than this",
     .offset = offsetof(rp_config, min_chars)},
    {.name = "max_pixels",
     .type = SL_OPT_INT,
     .def = "60000000",
     .help = "largest image per page; bigger pages are rendered at a lower resolution",
     .offset = offsetof(rp_config, max_pixels)},
    {.name = "password",
     .type = SL_OPT_STRING,
     .help = "password for encrypted PDFs (the same as parse-pdf's; never printed)",
     .flags = SL_OPT_SECRET,
     .offset = offsetof(rp_config, password)},
    SLMU_OPTIONS(rp_config),
    {0},
};

static void free_state(rp_state *st) {
    slmu_fini(&st->mu);
    free(st);
}

static int init(sl_instance *inst, const void *config, void **state) {
    const rp_config *cf = config;
    if (cf->dpi < 36 || cf->dpi > MAX_DPI)
        return sl_instance_fail(inst, SL_EFATAL, "dpi = %lld: must be from 36 to %d", (long long)cf->dpi,
                                MAX_DPI);
    if (cf->min_chars < 0)
        return sl_instance_fail(inst, SL_EFATAL, "min_chars = %lld: must not be negative",
                                (long long)cf->min_chars);
    if (cf->max_pixels < 1000000)
        return sl_instance_fail(inst, SL_EFATAL, "max_pixels = %lld: must be at least 1000000",
                                (long long)cf->max_pixels);
    rp_state *st = calloc(1, sizeof *st);
    if (!st) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    st->inst = inst;
    st->dpi = (int)cf->dpi;
    st->min_chars = (size_t)cf->min_chars;
    st->max_pixels = (double)cf->max_pixels;
    st->password = cf->password && *cf->password ? cf->password : NULL;
    int rc = slmu_init(&st->mu, inst, (size_t)cf->cache, cf->shared_cache);
    if (rc) {
        free(st);
        return rc;
    }
    *state = st;
    return 0;
}

static void fini(void *state) { free_state(state); }

static int thread_init(void *state, void **thread_state) {
    rp_state *st = state;
    rp_thread *t = calloc(1, sizeof *t);
    if (!t) return SL_ENOMEM;
    int rc = slmu_thread_init(&st->mu, &t->mu);
    if (rc) {
        free(t);
        return rc;
    }
    *thread_state = t;
    return 0;
}

static void forget(rp_thread *t) {
    if (t->fdoc) fz_drop_document(t->mu.ctx, t->fdoc);
    t->fdoc = NULL;
    t->data = NULL;
    t->len = 0;
    t->hash[0] = '\0';
}

static void thread_fini(void *state, void *thread_state) {
    rp_thread *t = thread_state;
    (void)state;
    forget(t);
    slmu_thread_fini(&t->mu);
    free(t);
}

/* The thread's document for doc's bytes, opened (and decrypted) if it is
 * not the one cached. */
static int open_doc(sl_call *call, const rp_state *st, rp_thread *t, sl_doc *doc) {
    size_t len;
    const char *data = sl_doc_data(doc, &len);
    const char *hash = sl_doc_hash(doc);
    if (t->fdoc && t->data == data && t->len == len && strcmp(t->hash, hash) == 0) return 0;
    forget(t);
    fz_context *ctx = t->mu.ctx;
    fz_stream *stm = NULL;
    fz_document *fdoc = NULL;
    int failed = 0, needs = 0, ok = 0;
    char why[512] = "";
    fz_var(stm);
    fz_var(fdoc);
    fz_var(failed);
    fz_var(needs);
    fz_var(ok);
    fz_try(ctx) {
        stm = fz_open_memory(ctx, (const unsigned char *)data, len);
        fdoc = fz_open_document_with_stream(ctx, "application/pdf", stm);
        needs = fz_needs_password(ctx, fdoc);
        if (needs && st->password) ok = fz_authenticate_password(ctx, fdoc, st->password);
    }
    fz_always(ctx) fz_drop_stream(ctx, stm);
    fz_catch(ctx) {
        snprintf(why, sizeof why, "%s", fz_caught_message(ctx));
        failed = 1;
    }
    if (!failed && needs && !ok) {
        fz_drop_document(ctx, fdoc);
        return sl_fail(call, SL_EBADINPUT, "encrypted PDF: %s (set [%s] password)",
                       st->password ? "the password does not open it" : "needs a password",
                       sl_instance_name(st->inst));
    }
    if (failed) {
        fz_drop_document(ctx, fdoc);
        return sl_fail(call, SL_EBADINPUT, "cannot open the PDF: %s", why);
    }
    /* as parse-pdf reads it: the page tree checked, its counts corrected */
    int64_t said, found;
    if (slmu_check_page_tree(ctx, fdoc, &said, &found, why, sizeof why)) {
        fz_drop_document(ctx, fdoc);
        return sl_fail(call, SL_EBADINPUT, "cannot read the PDF's %s", why);
    }
    t->fdoc = fdoc;
    t->data = data;
    t->len = len;
    snprintf(t->hash, sizeof t->hash, "%s", hash);
    return 0;
}

/* The image size mupdf makes for w x h inches at dpi: whole pixels, and
 * one more where the page's edge falls inside a pixel. */
static double pixels(double w, double h, double dpi) { return (ceil(w * dpi) + 1) * (ceil(h * dpi) + 1); }

/* The resolution page `bounds` (points) renders at: dpi, or less when the
 * image would be larger than max_pixels or MAX_SIDE. */
static float fit_dpi(const rp_state *st, fz_rect bounds) {
    double w = (bounds.x1 - bounds.x0) / 72.0, h = (bounds.y1 - bounds.y0) / 72.0; /* inches */
    double dpi = st->dpi;
    if (w > 0 && h > 0) {
        if (w * dpi > MAX_SIDE) dpi = MAX_SIDE / w;
        if (h * dpi > MAX_SIDE) dpi = MAX_SIDE / h;
        if (pixels(w, h, dpi) > st->max_pixels) dpi = sqrt(st->max_pixels / (w * h));
        while (dpi > 1 && pixels(w, h, dpi) > st->max_pixels) dpi *= 0.995;
    }
    return (float)dpi;
}

/* Opens (or reuses) the document, renders page pno and hands the image over. */
static int render_page(sl_call *call, const rp_state *st, rp_thread *t, sl_doc *doc, uint32_t pno) {
    int rc = open_doc(call, st, t, doc);
    if (rc) return rc;

    fz_context *ctx = t->mu.ctx;
    fz_page *page = NULL;
    fz_pixmap *pix = NULL;
    int failed = 0;
    float dpi = 0;
    char why[512] = "";
    fz_var(page);
    fz_var(pix);
    fz_var(failed);
    fz_var(dpi);
    fz_try(ctx) {
        page = fz_load_page(ctx, t->fdoc, (int)pno - 1);
        dpi = fit_dpi(st, fz_bound_page(ctx, page));
        pix = fz_new_pixmap_from_page(ctx, page, fz_scale(dpi / 72.0f, dpi / 72.0f), fz_device_gray(ctx), 0);
    }
    fz_always(ctx) fz_drop_page(ctx, page);
    fz_catch(ctx) {
        snprintf(why, sizeof why, "%s", fz_caught_message(ctx));
        failed = 1;
    }
    if (failed) return sl_fail(call, SL_EBADINPUT, "cannot render page %u: %s", pno, why);
    int w = fz_pixmap_width(ctx, pix), h = fz_pixmap_height(ctx, pix);
    rc = sl_doc_set_page_image(doc, pno, (uint32_t)w, (uint32_t)h, 1, (size_t)fz_pixmap_stride(ctx, pix),
                               fz_pixmap_samples(ctx, pix), dpi);
    fz_drop_pixmap(ctx, pix);
    if (rc < 0)
        return sl_fail(call, rc, "cannot keep page %u's image (%dx%d): %s", pno, w, h, sl_strerror(rc));
    if (dpi < (float)st->dpi - 0.5f)
        sl_log(st->inst, SL_LOG_INFO, "%s: page %u rendered at %.0f dpi to stay within max_pixels",
               sl_doc_uri(doc), pno, dpi);
    return 0;
}

static int render(sl_call *call, sl_doc *doc, uint32_t pno) {
    const rp_state *st = sl_call_state(call);
    rp_thread *t = sl_call_thread_state(call);
    if (!t) return sl_fail(call, SL_EFATAL, "render-pdf called without its per-thread state");
    if (sl_doc_page_image(doc, pno, NULL, NULL, NULL, NULL, NULL)) return 0; /* someone rendered it */
    if (sl_doc_page_text_chars(doc, pno) >= st->min_chars) return 0;         /* a real text layer */
    t->mu.uri = sl_doc_uri(doc);
    int rc = render_page(call, st, t, doc, pno);
    fz_flush_warnings(t->mu.ctx);
    t->mu.uri = NULL;
    return rc;
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "render-pdf",
    .version = "1.0.0",
    .summary = "PDF pages without a real text layer rendered to gray images for OCR (mupdf)",
    .role = SL_ROLE_PAGE,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(rp_config),
    .init = init,
    .fini = fini,
    .thread_init = thread_init,
    .thread_fini = thread_fini,
    .page = render,
};

SL_PLUGIN_EXPORT(desc)
