/* harness.h - the PDF and OCR plugins run the way a run runs them: found
 * by the real loader in $SLUICE_PLUGIN_DIR, configured from their option
 * tables (defaults plus KEY=VALUE overrides) by the real instance code,
 * initialised, and called with per-thread state made by their own
 * thread_init, as a pool thread would. Fixture files come from
 * $SLUICE_PDF_FIXTURES, written by gen_fixtures before the tests run.
 */
#ifndef SL_TEST_PDF_HARNESS_H
#define SL_TEST_PDF_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ctx.h"
#include "document.h"
#include "fixtures.h"
#include "instance.h"
#include "registry.h"

typedef struct plug {
    sl_ctx *ctx;
    sl_registry *reg;
    sl_instance *inst;
    const sl_plugin *desc;
    char err[1024]; /* init's message when it failed */
} plug;

/* Loads and inits plugin `name` with "key=value" overrides (NULL-ended).
 * Returns init's code; the loader's own failures abort the test. */
static inline int plug_open(plug *p, const char *name, const char *const *overrides) {
    memset(p, 0, sizeof *p);
    p->ctx = sl_ctx_new();
    const sl_loaded *lp = NULL;
    size_t n = 0;
    while (overrides && overrides[n]) n++;
    const char *dir = getenv("SLUICE_PLUGIN_DIR");
    if (!p->ctx || sl_registry_new(p->ctx, &p->reg) || !dir || sl_registry_add_dir(p->reg, dir) ||
        sl_registry_find(p->ctx, p->reg, name, &lp) ||
        sl_instance_new_defaults(p->ctx, lp, name, overrides, n, &p->inst)) {
        fprintf(stderr, "cannot load plugin %s from %s: %s\n", name, dir ? dir : "(SLUICE_PLUGIN_DIR unset)",
                p->ctx ? sl_ctx_errmsg(p->ctx) : "no context");
        exit(1);
    }
    p->desc = p->inst->desc;
    int rc = sl_instance_init(p->ctx, p->inst);
    if (rc) snprintf(p->err, sizeof p->err, "%s", sl_ctx_errmsg(p->ctx));
    return rc;
}

static inline void plug_close(plug *p) {
    sl_instance_free(p->inst);
    sl_registry_free(p->reg);
    sl_ctx_free(p->ctx);
    memset(p, 0, sizeof *p);
}

/* Per-thread state, as a pool thread makes it; NULL when the plugin keeps none. */
static inline void *plug_thread(plug *p) {
    void *ts = NULL;
    if (p->desc->thread_init) {
        int rc = p->desc->thread_init(p->inst->state, &ts);
        if (rc) {
            fprintf(stderr, "%s: thread_init failed (%d)\n", p->desc->name, rc);
            exit(1);
        }
    }
    return ts;
}

static inline void plug_thread_free(plug *p, void *ts) {
    if (p->desc->thread_fini) p->desc->thread_fini(p->inst->state, ts);
}

/* --- documents over fixture files --- */

typedef struct fixdoc {
    sl_doc *doc;
    char *bytes;
} fixdoc;

static inline const char *fixture_dir(void) {
    const char *d = getenv("SLUICE_PDF_FIXTURES");
    if (!d) {
        fprintf(stderr, "SLUICE_PDF_FIXTURES is not set (ctest sets it; gen_fixtures writes the files)\n");
        exit(1);
    }
    return d;
}

static inline char *fixture_bytes(const char *name, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", fixture_dir(), name);
    char *b = fx_read_file(path, len);
    if (!b) {
        fprintf(stderr, "cannot read fixture %s\n", path);
        exit(1);
    }
    return b;
}

static inline const char *media_of(const char *name) {
    const char *dot = strrchr(name, '.');
    if (dot && !strcmp(dot, ".png")) return "image/png";
    if (dot && !strcmp(dot, ".jpg")) return "image/jpeg";
    if (dot && !strcmp(dot, ".tif")) return "image/tiff";
    return "application/pdf";
}

/* A document over the bytes of fixture `name`. */
static inline fixdoc fixture_doc(const char *name) {
    fixdoc f;
    size_t len;
    f.bytes = fixture_bytes(name, &len);
    f.doc = sl_doc_new(name, NULL);
    sl_doc_set_data(f.doc, f.bytes, len);
    sl_doc_set_media_type(f.doc, media_of(name));
    return f;
}

static inline void fixdoc_free(fixdoc *f) {
    sl_doc_free(f->doc);
    free(f->bytes);
    f->doc = NULL;
    f->bytes = NULL;
}

/* --- calls --- */

static inline int run_parse(plug *p, void *ts, sl_doc *doc, sl_call *call) {
    sl_call_init(call, p->inst, ts);
    return p->desc->parse(call, doc);
}

static inline int run_page(plug *p, void *ts, sl_doc *doc, uint32_t page, sl_call *call) {
    sl_call_init(call, p->inst, ts);
    return p->desc->page(call, doc, page);
}

/* Runs a page stage over every page, in order; the first failure's code. */
static inline int run_pages(plug *p, void *ts, sl_doc *doc, sl_call *call) {
    for (uint32_t pg = 1; pg <= sl_doc_page_count(doc); pg++) {
        int rc = run_page(p, ts, doc, pg, call);
        if (rc) return rc;
    }
    return 0;
}

/* A PDF from its objects (object i + 1 is objs[i]), with a correct xref, so
 * that mupdf reads the page tree as written rather than repairing it. The
 * catalog is object 1 and points at /Pages 2 0 R. The document holds the
 * bytes it is given, not a copy: *bytes is freed after it. */
static inline sl_doc *pdf_of(const char *uri, const char *const *objs, size_t nobjs, char **bytes) {
    size_t cap = 4096, len = 0;
    for (size_t i = 0; i < nobjs; i++) cap += strlen(objs[i]) + 64;
    char *p = malloc(cap);
    size_t *at = calloc(nobjs, sizeof *at);
    if (!p || !at) abort();
    len += (size_t)snprintf(p + len, cap - len, "%%PDF-1.7\n");
    for (size_t i = 0; i < nobjs; i++) {
        at[i] = len;
        len += (size_t)snprintf(p + len, cap - len, "%zu 0 obj\n%s\nendobj\n", i + 1, objs[i]);
    }
    size_t xref = len;
    len += (size_t)snprintf(p + len, cap - len, "xref\n0 %zu\n0000000000 65535 f \n", nobjs + 1);
    for (size_t i = 0; i < nobjs; i++)
        len += (size_t)snprintf(p + len, cap - len, "%010zu 00000 n \n", at[i]);
    len +=
        (size_t)snprintf(p + len, cap - len,
                         "trailer\n<< /Size %zu /Root 1 0 R >>\nstartxref\n%zu\n%%%%EOF\n", nobjs + 1, xref);
    sl_doc *doc = sl_doc_new(uri, NULL);
    sl_doc_set_data(doc, p, len); /* not copied: the caller frees *bytes after doc */
    sl_doc_set_media_type(doc, "application/pdf");
    free(at);
    *bytes = p;
    return doc;
}

/* The catalog; a page of text_obj's text; that text object. */
#define CATALOG "<< /Type /Catalog /Pages 2 0 R >>"
#define PAGE(text_obj)                                                                                       \
    "<< /Type /Page /MediaBox [0 0 300 200] /Contents " text_obj " /Resources << /Font << /F1 "              \
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>"
#define TEXT(s) "<< >>\nstream\nBT /F1 12 Tf 20 100 Td (" s ") Tj ET\nendstream"

/* The texts of the elements on `page` (0: all pages), joined by '\n';
 * only those carrying attribute "ocr" when ocr_only. malloc'd. */
static inline char *doc_text(const sl_doc *doc, uint32_t page, int ocr_only) {
    size_t cap = 1, n = 0;
    for (size_t i = 0; i < sl_doc_element_count(doc); i++) cap += strlen(sl_element_text(doc, i, NULL)) + 1;
    char *out = malloc(cap);
    out[0] = '\0';
    for (size_t i = 0; i < sl_doc_element_count(doc); i++) {
        if (page && sl_element_page(doc, i) != page) continue;
        if (ocr_only && !sl_element_attr(doc, i, "ocr")) continue;
        n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "\n" : "", sl_element_text(doc, i, NULL));
    }
    return out;
}

/* Index of the first element whose text contains `needle`, or -1. */
static inline long find_element(const sl_doc *doc, const char *needle) {
    for (size_t i = 0; i < sl_doc_element_count(doc); i++)
        if (strstr(sl_element_text(doc, i, NULL), needle)) return (long)i;
    return -1;
}

#endif
