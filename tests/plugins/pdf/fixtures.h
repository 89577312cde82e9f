/* fixtures.h - PDFs and page images of known text, made at test time with
 * mupdf's writer (and leptonica for JPEG and TIFF), so the PDF and OCR tests
 * need no binary files in the repository.
 *
 * Every page is drawn from a string: lines separated by '\n'; a page whose
 * first line starts with "# " draws that line as a heading in a larger font.
 * Scanned pages are the same drawing rendered to a gray image at FX_DPI and
 * embedded as the page's only content, so OCR can be checked against the
 * string it came from.
 */
#ifndef SL_TEST_PDF_FIXTURES_H
#define SL_TEST_PDF_FIXTURES_H

#include <stddef.h>

#define FX_DPI 200
#define FX_PASSWORD "sesame"

/* text.pdf: three pages with a text layer, metadata and a two-level outline. */
#define FX_TEXT_PAGES 3
extern const char *const fx_text_pages[FX_TEXT_PAGES];
#define FX_TITLE "Harbour and Orchard Notes"
#define FX_AUTHOR "Ada Fixture"
#define FX_CREATED_RAW "D:20240102030405Z"
#define FX_CREATED "2024-01-02T03:04:05Z"
#define FX_MODIFIED_RAW "D:20240203040506+01'00'"
#define FX_MODIFIED "2024-02-03T04:05:06+01:00"
/* The outline of text.pdf: title, level, 1-based target page. */
typedef struct fx_heading {
    const char *title;
    int level;
    int page;
} fx_heading;
#define FX_OUTLINE 4
extern const fx_heading fx_outline[FX_OUTLINE];

/* scanned.pdf: two image-only pages. */
#define FX_SCAN_PAGES 2
extern const char *const fx_scan_pages[FX_SCAN_PAGES];

/* mixed.pdf: page 1 has a text layer, page 2 is an image only, page 3 has a
 * text layer again. */
extern const char *const fx_mixed_pages[3];

/* image.png and image.jpg hold page 0; image.tif holds both pages. */
extern const char *const fx_image_pages[2];

/* encrypted.pdf: one text page, AES-256, user password FX_PASSWORD. */
extern const char *const fx_secret_page;

/* Writes every fixture into dir (which must exist):
 *   text.pdf scanned.pdf mixed.pdf encrypted.pdf
 *   truncated.pdf (text.pdf cut short), garbage.pdf (random bytes),
 *   headless.pdf (text.pdf with its %PDF header and first objects overwritten),
 *   scrambled.pdf (text.pdf with the middle half of its bytes overwritten)
 *   image.png image.jpg image.tif (two pages), broken.png (a PNG cut short)
 * Returns 0, or -1 with the reason in err. */
int fx_write_all(const char *dir, char *err, size_t errlen);

/* Hostile files, in a folder of their own (dir, which must exist) so that
 * no test picks them up by accident:
 *   forms-bomb.pdf: valid, but its page nests form XObjects 64 wide and 6
 *   deep, so extracting its text or rendering it never ends in practice.
 * Returns 0, or -1 with the reason in err. */
int fx_write_hostile(const char *dir, char *err, size_t errlen);

/* Deeply nested files, for the pool threads' stacks (mupdf recurses as
 * deep as they nest), written into dir (which must exist):
 *   deep-outline.pdf (FX_DEEP_OUTLINE): one text page and an outline of
 *   `depth` entries, each the only child of the one before, all pointing
 *   at page 1 (about 130 bytes a level);
 *   deep-forms.pdf (FX_DEEP_FORMS): a page that writes FX_DEEP_PAGE_TEXT,
 *   then draws a form XObject that draws the next, `depth` deep, the
 *   innermost writing FX_DEEP_FORMS_TEXT (about 160 bytes a level).
 * `which` is a mask of the two. Returns 0, or -1 with the reason in err. */
#define FX_DEEP_OUTLINE 1
#define FX_DEEP_FORMS 2
#define FX_DEEP_PAGE_TEXT "This page draws its forms one inside the other."
#define FX_DEEP_FORMS_TEXT "The innermost form writes this line."
int fx_write_deep(const char *dir, int depth, int which, char *err, size_t errlen);

/* A benchmark corpus in dir: `docs` text PDFs of `pages` pages each
 * (text-NNN.pdf), and `images` PNG page images of known text at `dpi`
 * (scan-NNN.png). Pseudo-random but reproducible prose. */
int fx_write_bench(const char *dir, int docs, int pages, int images, int dpi, char *err, size_t errlen);

/* A page's text as it reads, without the "# " heading markers; malloc'd. */
char *fx_plain(const char *page);

/* Reads a whole file into a malloc'd buffer; NULL on failure. */
char *fx_read_file(const char *path, size_t *len);

/* Character error rate of `got` against `want` after normalising both
 * (whitespace runs become one space, ends trimmed): edit distance divided
 * by the length of `want`. */
double fx_cer(const char *got, const char *want);

#endif
