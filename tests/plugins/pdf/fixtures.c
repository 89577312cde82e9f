/* fixtures.c - PDFs and page images of known text (see fixtures.h).
 *
 * Text pages are content streams written by hand (Times-Roman, one Tm/Tj per
 * line) and added with pdf_add_page; scanned pages render such a page to a
 * gray pixmap and embed it as the only thing on a page of the same size.
 * The outline is built from dictionaries, as a PDF writer would. Damaged
 * copies are made from text.pdf's bytes. The hostile file is a valid PDF
 * whose one page costs mupdf longer than anyone would wait.
 */
#include "fixtures.h"

#include <errno.h>
#include <leptonica/allheaders.h>
#include <mupdf/fitz.h>
#include <mupdf/pdf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Line (0-based) of its page that each outline entry of text.pdf points at. */
static const int fx_outline_line[FX_OUTLINE] = {0, 0, 0, 3};

/* --- page drawing --- */

#define PAGE_W 612.0f
#define PAGE_H 792.0f
#define MARGIN 72.0f
#define BODY_PT 11.0f
#define HEAD_PT 16.0f
#define LEADING 15.0f

/* Baseline of line `index` of `text` (PDF space: from the bottom), and its
 * font size. */
static float line_baseline(const char *text, int index, float *size) {
    float y = PAGE_H - MARGIN;
    int i = 0;
    for (const char *p = text; *p; i++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        int heading = n > 2 && p[0] == '#' && p[1] == ' ';
        float pt = heading ? HEAD_PT : BODY_PT;
        if (i == index) {
            if (size) *size = pt;
            return y;
        }
        y -= heading ? 2 * LEADING : LEADING;
        p = nl ? nl + 1 : p + n;
    }
    if (size) *size = BODY_PT;
    return y;
}

static void put_pdf_string(fz_context *ctx, fz_buffer *b, const char *s, size_t n) {
    fz_append_byte(ctx, b, '(');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '(' || s[i] == ')' || s[i] == '\\') fz_append_byte(ctx, b, '\\');
        fz_append_byte(ctx, b, s[i]);
    }
    fz_append_byte(ctx, b, ')');
}

/* A content stream drawing `text` with /F1 (body) and /F2 (headings). */
static fz_buffer *page_contents(fz_context *ctx, const char *text) {
    fz_buffer *b = fz_new_buffer(ctx, 1024);
    fz_try(ctx) {
        fz_append_string(ctx, b, "BT\n");
        int i = 0;
        for (const char *p = text; *p; i++) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            int heading = n > 2 && p[0] == '#' && p[1] == ' ';
            float pt;
            float y = line_baseline(text, i, &pt);
            if (n > 0) {
                fz_append_printf(ctx, b, "/%s %g Tf 1 0 0 1 %g %g Tm ", heading ? "F2" : "F1", pt, MARGIN, y);
                if (heading)
                    put_pdf_string(ctx, b, p + 2, n - 2);
                else
                    put_pdf_string(ctx, b, p, n);
                fz_append_string(ctx, b, " Tj\n");
            }
            p = nl ? nl + 1 : p + n;
        }
        fz_append_string(ctx, b, "ET\n");
    }
    fz_catch(ctx) {
        fz_drop_buffer(ctx, b);
        fz_rethrow(ctx);
    }
    return b;
}

typedef struct fonts {
    pdf_obj *body, *head;
} fonts;

static void drop_fonts(fz_context *ctx, fonts *f) {
    pdf_drop_obj(ctx, f->body);
    pdf_drop_obj(ctx, f->head);
    f->body = f->head = NULL;
}

static fonts add_fonts(fz_context *ctx, pdf_document *doc) {
    fonts f = {NULL, NULL};
    fz_font *times = NULL, *bold = NULL;
    fz_var(times);
    fz_var(bold);
    fz_try(ctx) {
        times = fz_new_base14_font(ctx, "Times-Roman");
        bold = fz_new_base14_font(ctx, "Times-Bold");
        f.body = pdf_add_simple_font(ctx, doc, times, PDF_SIMPLE_ENCODING_LATIN);
        f.head = pdf_add_simple_font(ctx, doc, bold, PDF_SIMPLE_ENCODING_LATIN);
    }
    fz_always(ctx) {
        fz_drop_font(ctx, times);
        fz_drop_font(ctx, bold);
    }
    fz_catch(ctx) fz_rethrow(ctx);
    return f;
}

/* Appends a page with a text layer drawing `text`. */
static void add_text_page(fz_context *ctx, pdf_document *doc, const fonts *f, const char *text) {
    pdf_obj *res = NULL, *page = NULL;
    fz_buffer *contents = NULL;
    fz_var(res);
    fz_var(page);
    fz_var(contents);
    fz_try(ctx) {
        res = pdf_new_dict(ctx, doc, 1);
        pdf_obj *fd = pdf_dict_put_dict(ctx, res, PDF_NAME(Font), 2);
        pdf_dict_puts(ctx, fd, "F1", f->body);
        pdf_dict_puts(ctx, fd, "F2", f->head);
        contents = page_contents(ctx, text);
        page = pdf_add_page(ctx, doc, fz_make_rect(0, 0, PAGE_W, PAGE_H), 0, res, contents);
        pdf_insert_page(ctx, doc, -1, page);
    }
    fz_always(ctx) {
        pdf_drop_obj(ctx, page);
        pdf_drop_obj(ctx, res);
        fz_drop_buffer(ctx, contents);
    }
    fz_catch(ctx) fz_rethrow(ctx);
}

/* `text` drawn on a page and rendered to 8-bit gray at dpi. */
static fz_pixmap *render_text(fz_context *ctx, const char *text, int dpi) {
    pdf_document *doc = NULL;
    fz_page *page = NULL;
    fz_pixmap *pix = NULL;
    fonts f = {NULL, NULL};
    fz_var(doc);
    fz_var(page);
    fz_var(pix);
    fz_var(f);
    fz_try(ctx) {
        doc = pdf_create_document(ctx);
        f = add_fonts(ctx, doc);
        add_text_page(ctx, doc, &f, text);
        page = fz_load_page(ctx, &doc->super, 0);
        float s = (float)dpi / 72.0f;
        pix = fz_new_pixmap_from_page(ctx, page, fz_scale(s, s), fz_device_gray(ctx), 0);
        fz_set_pixmap_resolution(ctx, pix, dpi, dpi);
    }
    fz_always(ctx) {
        drop_fonts(ctx, &f);
        fz_drop_page(ctx, page);
        pdf_drop_document(ctx, doc);
    }
    fz_catch(ctx) fz_rethrow(ctx);
    return pix;
}

/* Appends a page whose only content is an image of `text` at dpi. */
static void add_scanned_page(fz_context *ctx, pdf_document *doc, const char *text, int dpi) {
    fz_pixmap *pix = NULL;
    fz_image *img = NULL;
    pdf_obj *res = NULL, *page = NULL;
    fz_buffer *contents = NULL;
    fz_var(pix);
    fz_var(img);
    fz_var(res);
    fz_var(page);
    fz_var(contents);
    fz_try(ctx) {
        pix = render_text(ctx, text, dpi);
        img = fz_new_image_from_pixmap(ctx, pix, NULL);
        res = pdf_new_dict(ctx, doc, 1);
        pdf_obj *xo = pdf_dict_put_dict(ctx, res, PDF_NAME(XObject), 1);
        pdf_dict_puts_drop(ctx, xo, "Im0", pdf_add_image(ctx, doc, img));
        contents = fz_new_buffer(ctx, 64);
        fz_append_printf(ctx, contents, "q %g 0 0 %g 0 0 cm /Im0 Do Q\n", PAGE_W, PAGE_H);
        page = pdf_add_page(ctx, doc, fz_make_rect(0, 0, PAGE_W, PAGE_H), 0, res, contents);
        pdf_insert_page(ctx, doc, -1, page);
    }
    fz_always(ctx) {
        pdf_drop_obj(ctx, page);
        pdf_drop_obj(ctx, res);
        fz_drop_buffer(ctx, contents);
        fz_drop_image(ctx, img);
        fz_drop_pixmap(ctx, pix);
    }
    fz_catch(ctx) fz_rethrow(ctx);
}

/* The document information dictionary (a new document has none). */
static void set_info(fz_context *ctx, pdf_document *doc) {
    pdf_obj *info = pdf_add_new_dict(ctx, doc, 4);
    fz_try(ctx) {
        pdf_dict_put_text_string(ctx, info, PDF_NAME(Title), FX_TITLE);
        pdf_dict_put_text_string(ctx, info, PDF_NAME(Author), FX_AUTHOR);
        pdf_dict_put_text_string(ctx, info, PDF_NAME(CreationDate), FX_CREATED_RAW);
        pdf_dict_put_text_string(ctx, info, PDF_NAME(ModDate), FX_MODIFIED_RAW);
        pdf_dict_put(ctx, pdf_trailer(ctx, doc), PDF_NAME(Info), info);
    }
    fz_always(ctx) pdf_drop_obj(ctx, info);
    fz_catch(ctx) fz_rethrow(ctx);
}

/* The outline of text.pdf, as /Outlines dictionaries with /XYZ targets. */
static void add_outline(fz_context *ctx, pdf_document *doc) {
    pdf_obj *root = pdf_dict_get(ctx, pdf_trailer(ctx, doc), PDF_NAME(Root));
    pdf_obj *outlines = pdf_add_new_dict(ctx, doc, 4);
    pdf_obj *items[FX_OUTLINE] = {NULL};
    fz_try(ctx) {
        pdf_dict_put(ctx, outlines, PDF_NAME(Type), PDF_NAME(Outlines));
        pdf_obj *last_at[3] = {outlines, NULL, NULL}; /* the latest item of each level */
        for (int i = 0; i < FX_OUTLINE; i++) {
            const fx_heading *h = &fx_outline[i];
            pdf_obj *it = items[i] = pdf_add_new_dict(ctx, doc, 6);
            pdf_obj *parent = last_at[h->level - 1];
            pdf_dict_put_text_string(ctx, it, PDF_NAME(Title), h->title);
            pdf_dict_put(ctx, it, PDF_NAME(Parent), parent);
            float size;
            float top = line_baseline(fx_text_pages[h->page - 1], fx_outline_line[i], &size) + size;
            pdf_obj *dest = pdf_dict_put_array(ctx, it, PDF_NAME(Dest), 5);
            pdf_array_push(ctx, dest, pdf_lookup_page_obj(ctx, doc, h->page - 1));
            pdf_array_push_name(ctx, dest, "XYZ");
            pdf_array_push_real(ctx, dest, 0);
            pdf_array_push_real(ctx, dest, top);
            pdf_array_push_real(ctx, dest, 0);
            pdf_obj *prev = pdf_dict_get(ctx, parent, PDF_NAME(Last));
            if (prev) {
                pdf_dict_put(ctx, prev, PDF_NAME(Next), it);
                pdf_dict_put(ctx, it, PDF_NAME(Prev), prev);
            } else {
                pdf_dict_put(ctx, parent, PDF_NAME(First), it);
            }
            pdf_dict_put(ctx, parent, PDF_NAME(Last), it);
            pdf_dict_put_int(ctx, parent, PDF_NAME(Count),
                             pdf_dict_get_int(ctx, parent, PDF_NAME(Count)) + 1);
            last_at[h->level] = it;
        }
        pdf_dict_put(ctx, root, PDF_NAME(Outlines), outlines);
    }
    fz_always(ctx) {
        for (int i = 0; i < FX_OUTLINE; i++) pdf_drop_obj(ctx, items[i]);
        pdf_drop_obj(ctx, outlines);
    }
    fz_catch(ctx) fz_rethrow(ctx);
}

static void save(fz_context *ctx, pdf_document *doc, const char *path, const char *user_pw) {
    pdf_write_options opts = pdf_default_write_options;
    opts.do_compress = 1;
    opts.do_garbage = 1;
    if (user_pw) {
        opts.do_encrypt = PDF_ENCRYPT_AES_256;
        opts.permissions = -1;
        snprintf(opts.upwd_utf8, sizeof opts.upwd_utf8, "%s", user_pw);
        snprintf(opts.opwd_utf8, sizeof opts.opwd_utf8, "%s-owner", user_pw);
    }
    pdf_save_document(ctx, doc, path, &opts);
}

typedef enum kind { TEXT, SCAN } kind;

/* A PDF of n pages of the given kinds. */
static void write_pdf(fz_context *ctx, const char *path, const char *const *pages, const kind *kinds, int n,
                      int meta, const char *user_pw) {
    pdf_document *doc = NULL;
    fonts f = {NULL, NULL};
    fz_var(doc);
    fz_var(f);
    fz_try(ctx) {
        doc = pdf_create_document(ctx);
        f = add_fonts(ctx, doc);
        for (int i = 0; i < n; i++) {
            if (kinds[i] == TEXT)
                add_text_page(ctx, doc, &f, pages[i]);
            else
                add_scanned_page(ctx, doc, pages[i], FX_DPI);
        }
        if (meta) {
            set_info(ctx, doc);
            add_outline(ctx, doc);
        }
        save(ctx, doc, path, user_pw);
    }
    fz_always(ctx) {
        drop_fonts(ctx, &f);
        pdf_drop_document(ctx, doc);
    }
    fz_catch(ctx) fz_rethrow(ctx);
}

/* --- images through leptonica --- */

static PIX *pix_from_pixmap(fz_context *ctx, fz_pixmap *pm, int dpi) {
    int w = fz_pixmap_width(ctx, pm), h = fz_pixmap_height(ctx, pm);
    ptrdiff_t stride = fz_pixmap_stride(ctx, pm);
    const unsigned char *s = fz_pixmap_samples(ctx, pm);
    PIX *pix = pixCreate(w, h, 8);
    if (!pix) return NULL;
    l_uint32 *data = pixGetData(pix);
    int wpl = pixGetWpl(pix);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) SET_DATA_BYTE(data + y * wpl, x, s[y * stride + x]);
    pixSetResolution(pix, dpi, dpi);
    return pix;
}

/* Writes `text` as an image to path in format fmt (IFF_*); append adds a
 * TIFF page. Returns 0 or -1. */
static int write_image(fz_context *ctx, const char *path, const char *text, int dpi, int fmt, int append) {
    fz_pixmap *pm = NULL;
    fz_var(pm);
    fz_try(ctx) pm = render_text(ctx, text, dpi);
    fz_catch(ctx) return -1;
    PIX *pix = pix_from_pixmap(ctx, pm, dpi);
    fz_drop_pixmap(ctx, pm);
    if (!pix) return -1;
    int rc;
    if (fmt == IFF_TIFF_ZIP)
        rc = pixWriteTiff(path, pix, IFF_TIFF_ZIP, append ? "a" : "w");
    else
        rc = pixWrite(path, pix, fmt);
    pixDestroy(&pix);
    return rc ? -1 : 0;
}

/* --- files --- */

static int write_bytes(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Deterministic bytes: the fixtures must not change between runs. */
static uint32_t lcg(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static int damaged_copies(const char *dir, char *err, size_t errlen) {
    char *text = join(dir, "text.pdf");
    size_t len;
    char *pdf = text ? fx_read_file(text, &len) : NULL;
    free(text);
    if (!pdf) {
        snprintf(err, errlen, "cannot read back text.pdf");
        return -1;
    }
    int rc = 0;
    /* cut at 60%: the cross-reference table and trailer are gone, and with
     * them the %%EOF marker */
    char *p = join(dir, "truncated.pdf");
    rc |= p ? write_bytes(p, pdf, len * 6 / 10) : -1;
    free(p);
    /* the middle half overwritten: header and trailer intact, objects gone */
    uint32_t seed = 12345;
    char *copy = malloc(len);
    if (copy) {
        memcpy(copy, pdf, len);
        for (size_t i = len / 4; i < len * 3 / 4; i++) copy[i] = (char)(lcg(&seed) & 0xff);
    }
    p = join(dir, "scrambled.pdf");
    rc |= p && copy ? write_bytes(p, copy, len) : -1;
    free(p);
    free(copy);
    /* the header and the first half of the objects overwritten */
    for (size_t i = 0; i < len / 2; i++) pdf[i] = (char)(lcg(&seed) & 0xff);
    p = join(dir, "headless.pdf");
    rc |= p ? write_bytes(p, pdf, len) : -1;
    free(p);
    /* nothing but noise */
    char noise[4096];
    for (size_t i = 0; i < sizeof noise; i++) noise[i] = (char)(lcg(&seed) & 0xff);
    p = join(dir, "garbage.pdf");
    rc |= p ? write_bytes(p, noise, sizeof noise) : -1;
    free(p);
    free(pdf);

    /* a PNG cut in the middle of its image data */
    char *png = join(dir, "image.png");
    char *img = png ? fx_read_file(png, &len) : NULL;
    free(png);
    p = join(dir, "broken.png");
    rc |= img && p ? write_bytes(p, img, len / 3) : -1;
    free(p);
    free(img);
    if (rc) snprintf(err, errlen, "cannot write the damaged copies in %s: %s", dir, strerror(errno));
    return rc ? -1 : 0;
}

static fz_context *new_ctx(void) {
    fz_context *ctx = fz_new_context(NULL, NULL, FZ_STORE_DEFAULT);
    if (ctx) {
        fz_set_warning_callback(ctx, NULL, NULL);
        fz_register_document_handlers(ctx);
    }
    return ctx;
}

int fx_write_all(const char *dir, char *err, size_t errlen) {
    fz_context *ctx = new_ctx();
    if (!ctx) {
        snprintf(err, errlen, "cannot make a mupdf context");
        return -1;
    }
    char *paths[5] = {join(dir, "text.pdf"), join(dir, "scanned.pdf"), join(dir, "mixed.pdf"),
                      join(dir, "encrypted.pdf"), NULL};
    const kind text3[3] = {TEXT, TEXT, TEXT}, scan2[2] = {SCAN, SCAN}, mixed[3] = {TEXT, SCAN, TEXT};
    int failed = 0;
    fz_try(ctx) {
        write_pdf(ctx, paths[0], fx_text_pages, text3, FX_TEXT_PAGES, 1, NULL);
        write_pdf(ctx, paths[1], fx_scan_pages, scan2, FX_SCAN_PAGES, 0, NULL);
        write_pdf(ctx, paths[2], fx_mixed_pages, mixed, 3, 0, NULL);
        write_pdf(ctx, paths[3], &fx_secret_page, text3, 1, 0, FX_PASSWORD);
    }
    fz_catch(ctx) {
        snprintf(err, errlen, "mupdf: %s", fz_caught_message(ctx));
        failed = 1;
    }
    for (int i = 0; i < 4; i++) free(paths[i]);
    if (failed) {
        fz_drop_context(ctx);
        return -1;
    }
    static const struct {
        const char *name;
        int fmt, page, append;
    } images[] = {
        {"image.png", IFF_PNG, 0, 0},
        {"image.jpg", IFF_JFIF_JPEG, 0, 0},
        {"image.tif", IFF_TIFF_ZIP, 0, 0},
        {"image.tif", IFF_TIFF_ZIP, 1, 1},
    };
    for (size_t i = 0; i < sizeof images / sizeof images[0] && !failed; i++) {
        char *p = join(dir, images[i].name);
        if (!p ||
            write_image(ctx, p, fx_image_pages[images[i].page], FX_DPI, images[i].fmt, images[i].append)) {
            snprintf(err, errlen, "cannot write %s", images[i].name);
            failed = 1;
        }
        free(p);
    }
    fz_drop_context(ctx);
    if (failed) return -1;
    return damaged_copies(dir, err, errlen);
}

/* --- hostile files --- */

#define BOMB_LEVELS 6
#define BOMB_FANOUT 64

/* A form XObject drawing `body`, with `child` (if any) as its /X. */
static pdf_obj *add_form(fz_context *ctx, pdf_document *doc, const char *body, pdf_obj *child) {
    pdf_obj *dict = NULL, *form = NULL;
    fz_buffer *buf = NULL;
    fz_var(dict);
    fz_var(form);
    fz_var(buf);
    fz_try(ctx) {
        dict = pdf_new_dict(ctx, doc, 4);
        pdf_dict_put(ctx, dict, PDF_NAME(Type), PDF_NAME(XObject));
        pdf_dict_put(ctx, dict, PDF_NAME(Subtype), PDF_NAME(Form));
        pdf_dict_put_rect(ctx, dict, PDF_NAME(BBox), fz_make_rect(0, 0, PAGE_W, PAGE_H));
        if (child) {
            pdf_obj *res = pdf_dict_put_dict(ctx, dict, PDF_NAME(Resources), 1);
            pdf_obj *xo = pdf_dict_put_dict(ctx, res, PDF_NAME(XObject), 1);
            pdf_dict_puts(ctx, xo, "X", child);
        }
        buf = fz_new_buffer_from_copied_data(ctx, (const unsigned char *)body, strlen(body));
        form = pdf_add_stream(ctx, doc, buf, dict, 0);
    }
    fz_always(ctx) {
        pdf_drop_obj(ctx, dict);
        fz_drop_buffer(ctx, buf);
    }
    fz_catch(ctx) fz_rethrow(ctx);
    return form;
}

/* forms-bomb.pdf: one page that draws form 0, which draws form 1
 * BOMB_FANOUT times, and so on down BOMB_LEVELS levels to a form that
 * fills a 1 pt square: 64^6 (about 7e10) squares from a file of a few KB.
 * Every object is valid and no form draws itself, so mupdf has nothing to
 * refuse: reading the page's text or rendering it runs for days. */
static void write_forms_bomb(fz_context *ctx, const char *path) {
    pdf_document *doc = NULL;
    pdf_obj *form = NULL, *next = NULL, *res = NULL, *page = NULL;
    fz_buffer *contents = NULL;
    char fan[BOMB_FANOUT * 6 + 1];
    for (int i = 0; i < BOMB_FANOUT; i++) memcpy(fan + i * 6, "/X Do\n", 6);
    fan[sizeof fan - 1] = '\0';
    fz_var(doc);
    fz_var(form);
    fz_var(next);
    fz_var(res);
    fz_var(page);
    fz_var(contents);
    fz_try(ctx) {
        doc = pdf_create_document(ctx);
        form = add_form(ctx, doc, "0 0 1 1 re f\n", NULL);
        for (int level = 0; level < BOMB_LEVELS; level++) {
            next = add_form(ctx, doc, fan, form);
            pdf_drop_obj(ctx, form);
            form = next;
            next = NULL;
        }
        res = pdf_new_dict(ctx, doc, 1);
        pdf_obj *xo = pdf_dict_put_dict(ctx, res, PDF_NAME(XObject), 1);
        pdf_dict_puts(ctx, xo, "X", form);
        contents = fz_new_buffer_from_copied_data(ctx, (const unsigned char *)"/X Do\n", 6);
        page = pdf_add_page(ctx, doc, fz_make_rect(0, 0, PAGE_W, PAGE_H), 0, res, contents);
        pdf_insert_page(ctx, doc, -1, page);
        save(ctx, doc, path, NULL);
    }
    fz_always(ctx) {
        pdf_drop_obj(ctx, page);
        pdf_drop_obj(ctx, res);
        pdf_drop_obj(ctx, form);
        fz_drop_buffer(ctx, contents);
        pdf_drop_document(ctx, doc);
    }
    fz_catch(ctx) fz_rethrow(ctx);
}

int fx_write_hostile(const char *dir, char *err, size_t errlen) {
    fz_context *ctx = new_ctx();
    char *path = join(dir, "forms-bomb.pdf");
    int failed = !ctx || !path;
    if (failed) snprintf(err, errlen, "out of memory");
    fz_var(failed);
    if (!failed) {
        fz_try(ctx) write_forms_bomb(ctx, path);
        fz_catch(ctx) {
            snprintf(err, errlen, "forms-bomb.pdf: mupdf: %s", fz_caught_message(ctx));
            failed = 1;
        }
    }
    free(path);
    if (ctx) fz_drop_context(ctx);
    return failed ? -1 : 0;
}

/* --- deep nesting ---
 *
 * mupdf loads an outline, and checks a page's resources for transparency,
 * by recursion as deep as the file nests them; the two files here nest
 * `depth` levels. Each level is an object of its own, and the levels'
 * object numbers are reserved at once: mupdf grows its cross-reference
 * table one entry per new object, a copy of the whole table each time
 * under a sanitizer's realloc (minutes for 100,000 levels). The file is
 * saved without garbage collection, whose marking recurses as deep as the
 * objects nest and would overflow this program's own stack. */

static const char deep_page_text[] = "# Deep Outline\n"
                                     "This page is all the text the deep outline file has.\n"
                                     "Its outline nests one entry inside the next, all pointing here.";

/* The first of n new object numbers, in one step of the table. */
static int reserve_objects(fz_context *ctx, pdf_document *doc, int n) {
    int first = pdf_xref_len(ctx, doc);
    pdf_ensure_solid_xref(ctx, doc, first + n);
    return first;
}

/* deep-outline.pdf: one text page; outline item i is the only child
 * (/First and /Last) of item i-1, titled "Level i", pointing at page 1. */
static void write_deep_outline(fz_context *ctx, const char *path, int depth) {
    pdf_document *doc = NULL;
    pdf_obj *outlines = NULL, *it = NULL, *ref = NULL;
    fonts f = {NULL, NULL};
    fz_var(doc);
    fz_var(outlines);
    fz_var(it);
    fz_var(ref);
    fz_var(f);
    fz_try(ctx) {
        doc = pdf_create_document(ctx);
        f = add_fonts(ctx, doc);
        add_text_page(ctx, doc, &f, deep_page_text);
        /* each item gets a reference of its own: mupdf counts an object's
         * references in 16 bits, and 100,000 of one would never be freed */
        int page = pdf_to_num(ctx, pdf_lookup_page_obj(ctx, doc, 0));
        int first = reserve_objects(ctx, doc, depth + 1); /* the /Outlines dictionary, then the items */
        for (int i = 0; i <= depth; i++) {
            it = pdf_new_dict(ctx, doc, 5);
            if (i == 0) {
                pdf_dict_put(ctx, it, PDF_NAME(Type), PDF_NAME(Outlines));
            } else {
                char title[32];
                snprintf(title, sizeof title, "Level %d", i);
                pdf_dict_put_text_string(ctx, it, PDF_NAME(Title), title);
                pdf_dict_put_drop(ctx, it, PDF_NAME(Parent), pdf_new_indirect(ctx, doc, first + i - 1, 0));
                pdf_obj *dest = pdf_dict_put_array(ctx, it, PDF_NAME(Dest), 2);
                pdf_array_push_drop(ctx, dest, pdf_new_indirect(ctx, doc, page, 0));
                pdf_array_push_name(ctx, dest, "Fit");
            }
            if (i < depth) {
                ref = pdf_new_indirect(ctx, doc, first + i + 1, 0);
                pdf_dict_put(ctx, it, PDF_NAME(First), ref);
                pdf_dict_put(ctx, it, PDF_NAME(Last), ref);
                pdf_drop_obj(ctx, ref);
                ref = NULL;
            }
            pdf_update_object(ctx, doc, first + i, it);
            pdf_drop_obj(ctx, it);
            it = NULL;
        }
        outlines = pdf_new_indirect(ctx, doc, first, 0);
        pdf_dict_put(ctx, pdf_dict_get(ctx, pdf_trailer(ctx, doc), PDF_NAME(Root)), PDF_NAME(Outlines),
                     outlines);
        pdf_save_document(ctx, doc, path, &pdf_default_write_options);
    }
    fz_always(ctx) {
        pdf_drop_obj(ctx, ref);
        pdf_drop_obj(ctx, it);
        pdf_drop_obj(ctx, outlines);
        drop_fonts(ctx, &f);
        pdf_drop_document(ctx, doc);
    }
    fz_catch(ctx) fz_rethrow(ctx);
}

/* deep-forms.pdf: one page that writes FX_DEEP_PAGE_TEXT, then draws form
 * 1, which draws form 2, and so on down to form `depth`, which writes
 * FX_DEEP_FORMS_TEXT. */
static void write_deep_forms(fz_context *ctx, const char *path, int depth) {
    static const char draw_next[] = "/X Do\n";
    pdf_document *doc = NULL;
    pdf_obj *form = NULL, *res = NULL, *page = NULL;
    fz_buffer *contents = NULL, *inner = NULL;
    fonts f = {NULL, NULL};
    fz_var(doc);
    fz_var(form);
    fz_var(res);
    fz_var(page);
    fz_var(contents);
    fz_var(inner);
    fz_var(f);
    fz_try(ctx) {
        doc = pdf_create_document(ctx);
        f = add_fonts(ctx, doc);
        inner = fz_new_buffer(ctx, 128);
        fz_append_string(ctx, inner, "BT /F1 11 Tf 72 600 Td ");
        put_pdf_string(ctx, inner, FX_DEEP_FORMS_TEXT, strlen(FX_DEEP_FORMS_TEXT));
        fz_append_string(ctx, inner, " Tj ET\n");
        contents = fz_new_buffer_from_copied_data(ctx, (const unsigned char *)draw_next, strlen(draw_next));
        int first = reserve_objects(ctx, doc, depth);
        for (int level = 1; level <= depth; level++) {
            int num = first + level - 1;
            pdf_obj *dict = pdf_new_dict(ctx, doc, 4);
            pdf_update_object(ctx, doc, num, dict);
            pdf_drop_obj(ctx, dict);
            form = pdf_new_indirect(ctx, doc, num, 0);
            pdf_dict_put(ctx, form, PDF_NAME(Type), PDF_NAME(XObject));
            pdf_dict_put(ctx, form, PDF_NAME(Subtype), PDF_NAME(Form));
            pdf_dict_put_rect(ctx, form, PDF_NAME(BBox), fz_make_rect(0, 0, PAGE_W, PAGE_H));
            pdf_obj *fres = pdf_dict_put_dict(ctx, form, PDF_NAME(Resources), 1);
            if (level < depth) {
                pdf_dict_puts_drop(ctx, pdf_dict_put_dict(ctx, fres, PDF_NAME(XObject), 1), "X",
                                   pdf_new_indirect(ctx, doc, num + 1, 0));
                pdf_update_stream(ctx, doc, form, contents, 0);
            } else {
                pdf_dict_puts(ctx, pdf_dict_put_dict(ctx, fres, PDF_NAME(Font), 1), "F1", f.body);
                pdf_update_stream(ctx, doc, form, inner, 0);
            }
            pdf_drop_obj(ctx, form);
            form = NULL;
        }
        form = pdf_new_indirect(ctx, doc, first, 0);
        res = pdf_new_dict(ctx, doc, 2);
        pdf_dict_puts(ctx, pdf_dict_put_dict(ctx, res, PDF_NAME(Font), 1), "F1", f.body);
        pdf_dict_puts(ctx, pdf_dict_put_dict(ctx, res, PDF_NAME(XObject), 1), "X", form);
        fz_drop_buffer(ctx, contents);
        contents = fz_new_buffer(ctx, 128);
        fz_append_string(ctx, contents, "BT /F1 11 Tf 72 700 Td ");
        put_pdf_string(ctx, contents, FX_DEEP_PAGE_TEXT, strlen(FX_DEEP_PAGE_TEXT));
        fz_append_string(ctx, contents, " Tj ET\n/X Do\n");
        page = pdf_add_page(ctx, doc, fz_make_rect(0, 0, PAGE_W, PAGE_H), 0, res, contents);
        pdf_insert_page(ctx, doc, -1, page);
        pdf_save_document(ctx, doc, path, &pdf_default_write_options);
    }
    fz_always(ctx) {
        pdf_drop_obj(ctx, page);
        pdf_drop_obj(ctx, res);
        pdf_drop_obj(ctx, form);
        fz_drop_buffer(ctx, contents);
        fz_drop_buffer(ctx, inner);
        drop_fonts(ctx, &f);
        pdf_drop_document(ctx, doc);
    }
    fz_catch(ctx) fz_rethrow(ctx);
}

int fx_write_deep(const char *dir, int depth, int which, char *err, size_t errlen) {
    static const struct {
        int flag;
        const char *name;
        void (*write)(fz_context *, const char *, int);
    } files[] = {
        {FX_DEEP_OUTLINE, "deep-outline.pdf", write_deep_outline},
        {FX_DEEP_FORMS, "deep-forms.pdf", write_deep_forms},
    };
    if (depth < 1) {
        snprintf(err, errlen, "depth must be at least 1");
        return -1;
    }
    fz_context *ctx = new_ctx();
    if (!ctx) {
        snprintf(err, errlen, "cannot make a mupdf context");
        return -1;
    }
    int failed = 0;
    fz_var(failed);
    for (size_t i = 0; i < sizeof files / sizeof files[0] && !failed; i++) {
        if (!(which & files[i].flag)) continue;
        char *path = join(dir, files[i].name);
        if (!path) {
            snprintf(err, errlen, "out of memory");
            failed = 1;
        } else {
            fz_try(ctx) files[i].write(ctx, path, depth);
            fz_catch(ctx) {
                snprintf(err, errlen, "%s: mupdf: %s", files[i].name, fz_caught_message(ctx));
                failed = 1;
            }
        }
        free(path);
    }
    fz_drop_context(ctx);
    return failed ? -1 : 0;
}

/* --- benchmark corpus --- */

static const char *const words[] = {
    "river",  "harbour", "orchard", "lantern", "ledger",  "pilot",   "ferry",  "market", "bridge",
    "valley", "winter",  "summer",  "copper",  "kettle",  "barrel",  "candle", "meadow", "garden",
    "window", "letter",  "station", "morning", "evening", "quiet",   "bright", "narrow", "ancient",
    "gentle", "steady",  "simple",  "carried", "opened",  "counted", "walked", "wrote",  "painted",
    "mended", "watched", "crossed", "sold",    "the",     "the",     "the",    "a",      "and",
    "and",    "of",      "of",      "to",      "in",      "on",      "by",     "with",   "from",
    "under",  "before",  "after",   "while",   "near",    "every",   "stone",  "wooden", "northern",
    "salt",   "flour",   "grain",   "wheel",   "mill",    "school",  "tower",
};

static void prose(uint32_t *seed, char *out, size_t cap) {
    size_t n = 0;
    int cap_next = 1;
    while (n + 16 < cap) {
        const char *w = words[lcg(seed) % (sizeof words / sizeof words[0])];
        size_t wl = strlen(w);
        if (n + wl + 2 >= cap) break;
        if (n) out[n++] = ' ';
        memcpy(out + n, w, wl);
        if (cap_next && out[n] >= 'a' && out[n] <= 'z') out[n] -= 'a' - 'A';
        n += wl;
        cap_next = lcg(seed) % 9 == 0;
        if (cap_next) out[n++] = '.';
    }
    out[n] = '\0';
}

/* A page of `lines` lines of prose, about 75 characters each. */
static char *bench_page(uint32_t *seed, int lines) {
    size_t cap = (size_t)lines * 80 + 1;
    char *page = malloc(cap);
    if (!page) return NULL;
    size_t n = 0;
    for (int l = 0; l < lines; l++) {
        char line[80];
        prose(seed, line, 76);
        n += (size_t)snprintf(page + n, cap - n, "%s%s", l ? "\n" : "", line);
    }
    return page;
}

/* write_pdf, with mupdf's reason in err when it throws. */
static int try_write_pdf(fz_context *ctx, const char *path, const char *const *pages, const kind *kinds,
                         int n, char *err, size_t errlen) {
    int failed = 0;
    fz_var(failed);
    fz_try(ctx) write_pdf(ctx, path, pages, kinds, n, 0, NULL);
    fz_catch(ctx) {
        snprintf(err, errlen, "mupdf: %s", fz_caught_message(ctx));
        failed = 1;
    }
    return failed;
}

int fx_write_bench(const char *dir, int docs, int pages, int images, int dpi, char *err, size_t errlen) {
    fz_context *ctx = new_ctx();
    if (!ctx) {
        snprintf(err, errlen, "cannot make a mupdf context");
        return -1;
    }
    uint32_t seed = 2024;
    int failed = 0;
    kind *kinds = calloc((size_t)pages, sizeof *kinds);
    char **texts = calloc((size_t)pages, sizeof *texts);
    for (int d = 0; d < docs && !failed && kinds && texts; d++) {
        for (int p = 0; p < pages; p++) texts[p] = bench_page(&seed, 44);
        char name[64];
        snprintf(name, sizeof name, "text-%03d.pdf", d);
        char *path = join(dir, name);
        failed = !path || try_write_pdf(ctx, path, (const char *const *)texts, kinds, pages, err, errlen);
        free(path);
        for (int p = 0; p < pages; p++) free(texts[p]);
    }
    free(kinds);
    free(texts);
    for (int i = 0; i < images && !failed; i++) {
        char *text = bench_page(&seed, 20);
        char name[64];
        snprintf(name, sizeof name, "scan-%03d.png", i);
        char *path = join(dir, name);
        if (!text || !path || write_image(ctx, path, text, dpi, IFF_PNG, 0)) {
            snprintf(err, errlen, "cannot write %s", name);
            failed = 1;
        }
        free(path);
        free(text);
    }
    fz_drop_context(ctx);
    return failed ? -1 : 0;
}
