/* image.c - parse-image: scanned images (PNG, JPEG, TIFF) as page images for
 * OCR, through leptonica.
 *
 * A parser that finds no text itself: it decodes the image into 8-bit gray
 * and hands it to page 1 (sl_doc_set_page_image), where a page stage such
 * as ocr-tesseract recognises it. Every page of a multi-page TIFF becomes a
 * page of the document. Transparent images are laid on white first (text
 * drawn on a transparent background would otherwise turn black on black).
 * The image's resolution, when it states a plausible one, goes with it, so
 * OCR can give positions in points. Metadata: format, width, height and
 * pages.
 *
 * Size is checked from the header before decoding: an image over
 * max_pixels fails as bad input instead of taking the memory of a run. A
 * PNG or JPEG without its end marker was cut short and fails too, rather
 * than decoding into part of a page.
 * leptonica reports decoding problems on stderr by default; they are
 * silenced (leptonica's severity is process-wide) and each failure is
 * reported once, as the document's reason.
 */
#include <leptonica/allheaders.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sluice/sluice.h>

#define MIN_DPI 30 /* below this a stated resolution is an aspect ratio, not dots per inch */
#define MAX_DPI 4800

typedef struct pi_config {
    int64_t max_pixels;
    int64_t max_pages;
} pi_config;

static const sl_option options[] = {
    {.name = "max_pixels",
     .type = SL_OPT_INT,
     .def = "100000000",
     .help = "largest image (width x height) decoded; larger ones fail as bad input",
     .offset = offsetof(pi_config, max_pixels)},
    {.name = "max_pages",
     .type = SL_OPT_INT,
     .def = "1000",
     .help = "most pages read from a multi-page TIFF; more fail the document",
     .offset = offsetof(pi_config, max_pages)},
    {0},
};

static int init(sl_instance *inst, const void *config, void **state) {
    const pi_config *cf = config;
    if (cf->max_pixels < 1)
        return sl_instance_fail(inst, SL_EFATAL, "max_pixels = %lld: must be positive",
                                (long long)cf->max_pixels);
    if (cf->max_pages < 1)
        return sl_instance_fail(inst, SL_EFATAL, "max_pages = %lld: must be positive",
                                (long long)cf->max_pages);
    setMsgSeverity(L_SEVERITY_NONE);
    *state = (void *)cf; /* the config lives as long as the instance */
    return 0;
}

static const char *format_name(l_int32 format) {
    switch (format) {
    case IFF_PNG: return "PNG";
    case IFF_JFIF_JPEG: return "JPEG";
    case IFF_TIFF:
    case IFF_TIFF_PACKBITS:
    case IFF_TIFF_RLE:
    case IFF_TIFF_G3:
    case IFF_TIFF_G4:
    case IFF_TIFF_LZW:
    case IFF_TIFF_ZIP:
    case IFF_TIFF_JPEG: return "TIFF";
    default: return NULL;
    }
}

/* A PNG ends with its IEND chunk and a JPEG with its EOI marker; a file cut
 * short lacks them. Decoding it anyway would give part of a page as if it
 * were whole (and libpng would complain on stderr). Trailing bytes after
 * the end, which some writers leave, are allowed. */
static bool complete(const char *format, const l_uint8 *data, size_t len) {
    size_t tail = len < 1024 ? len : 1024;
    const l_uint8 *t = data + len - tail;
    if (strcmp(format, "PNG") == 0) return memmem(t, tail, "IEND", 4) != NULL;
    if (strcmp(format, "JPEG") == 0) return memmem(t, tail, "\xff\xd9", 2) != NULL;
    return true;
}

/* pix as 8-bit gray on page `page` of doc. */
static int add_page(sl_call *call, sl_doc *doc, uint32_t page, PIX *pix, const pi_config *cf) {
    l_int32 w = pixGetWidth(pix), h = pixGetHeight(pix);
    if ((double)w * (double)h > (double)cf->max_pixels)
        return sl_fail(call, SL_EBADINPUT, "page %u: image of %dx%d pixels is over max_pixels (%lld)", page,
                       w, h, (long long)cf->max_pixels);
    PIX *flat = pixGetSpp(pix) == 4 ? pixAlphaBlendUniform(pix, 0xffffff00) : pixClone(pix);
    PIX *gray = flat ? pixConvertTo8(flat, FALSE) : NULL;
    pixDestroy(&flat);
    if (!gray) return sl_fail(call, SL_EBADINPUT, "page %u: cannot convert the image to gray", page);
    /* leptonica keeps pixels in native 32-bit words; swapping makes each row
     * plain bytes, left to right */
    pixEndianByteSwap(gray);
    l_int32 xres = pixGetXRes(pix);
    float dpi = xres >= MIN_DPI && xres <= MAX_DPI ? (float)xres : 0.0f;
    int rc = sl_doc_set_page_image(doc, page, (uint32_t)w, (uint32_t)h, 1, (size_t)pixGetWpl(gray) * 4,
                                   (const unsigned char *)pixGetData(gray), dpi);
    pixDestroy(&gray);
    if (rc < 0)
        return sl_fail(call, rc, "page %u: cannot keep its image (%dx%d): %s", page, w, h, sl_strerror(rc));
    return 0;
}

static int set_meta_int(sl_doc *doc, const char *key, long long v) {
    char s[32];
    snprintf(s, sizeof s, "%lld", v);
    return sl_doc_meta_set(doc, key, s);
}

/* The pages of a TIFF, read one at a time. */
static int parse_tiff(sl_call *call, sl_doc *doc, const l_uint8 *data, size_t len, const pi_config *cf) {
    size_t offset = 0;
    uint32_t n = 0;
    int rc = 0;
    /* count first, so the page count is known before images are set */
    do {
        PIX *pix = pixReadMemFromMultipageTiff(data, len, &offset);
        if (!pix) break;
        pixDestroy(&pix);
        n++;
    } while (offset != 0 && n <= (uint32_t)cf->max_pages);
    if (n == 0) return sl_fail(call, SL_EBADINPUT, "cannot decode the TIFF image");
    if (n > (uint32_t)cf->max_pages)
        return sl_fail(call, SL_EBADINPUT, "TIFF with more than max_pages (%lld) pages",
                       (long long)cf->max_pages);
    if (sl_doc_set_page_count(doc, n) < 0 || set_meta_int(doc, "pages", n) < 0)
        return sl_fail(call, SL_ENOMEM, "out of memory");
    offset = 0;
    for (uint32_t p = 1; p <= n && !rc; p++) {
        PIX *pix = pixReadMemFromMultipageTiff(data, len, &offset);
        if (!pix) return sl_fail(call, SL_EBADINPUT, "cannot decode page %u of the TIFF image", p);
        if (p == 1 && (set_meta_int(doc, "width", pixGetWidth(pix)) < 0 ||
                       set_meta_int(doc, "height", pixGetHeight(pix)) < 0))
            rc = sl_fail(call, SL_ENOMEM, "out of memory");
        if (!rc) rc = add_page(call, doc, p, pix, cf);
        pixDestroy(&pix);
    }
    return rc;
}

static int parse(sl_call *call, sl_doc *doc) {
    const pi_config *cf = sl_call_state(call);
    size_t len;
    const l_uint8 *data = (const l_uint8 *)sl_doc_data(doc, &len);
    if (len == 0) return sl_fail(call, SL_EBADINPUT, "empty file");
    l_int32 format = IFF_UNKNOWN, w = 0, h = 0, bps = 0, spp = 0, cmap = 0;
    if (findFileFormatBuffer(data, &format) != 0 || !format_name(format))
        return sl_fail(call, SL_EBADINPUT, "not a PNG, JPEG or TIFF image");
    if (pixReadHeaderMem(data, len, &format, &w, &h, &bps, &spp, &cmap) != 0 || w <= 0 || h <= 0)
        return sl_fail(call, SL_EBADINPUT, "cannot read the %s image's header", format_name(format));
    if ((double)w * (double)h > (double)cf->max_pixels)
        return sl_fail(call, SL_EBADINPUT, "image of %dx%d pixels is over max_pixels (%lld)", w, h,
                       (long long)cf->max_pixels);
    if (!complete(format_name(format), data, len))
        return sl_fail(call, SL_EBADINPUT, "%s image cut short: its end marker is missing",
                       format_name(format));
    if (sl_doc_meta_set(doc, "format", format_name(format)) < 0)
        return sl_fail(call, SL_ENOMEM, "out of memory");
    if (strcmp(format_name(format), "TIFF") == 0) return parse_tiff(call, doc, data, len, cf);

    PIX *pix = pixReadMem(data, len);
    if (!pix)
        return sl_fail(call, SL_EBADINPUT, "cannot decode the %s image (damaged or cut short?)",
                       format_name(format));
    int rc = 0;
    if (sl_doc_set_page_count(doc, 1) < 0 || set_meta_int(doc, "pages", 1) < 0 ||
        set_meta_int(doc, "width", w) < 0 || set_meta_int(doc, "height", h) < 0)
        rc = sl_fail(call, SL_ENOMEM, "out of memory");
    if (!rc) rc = add_page(call, doc, 1, pix, cf);
    pixDestroy(&pix);
    return rc;
}

static const char *const media_types[] = {"image/png", "image/jpeg", "image/tiff", NULL};

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "parse-image",
    .version = "1.0.0",
    .summary = "PNG, JPEG and TIFF scans as gray page images for OCR (leptonica)",
    .role = SL_ROLE_PARSER,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(pi_config),
    .media_types = media_types,
    .init = init,
    .parse = parse,
};

SL_PLUGIN_EXPORT(desc)
