/* ocr.c - ocr-tesseract: page images to text with confidences, through
 * tesseract's C API.
 *
 * A page stage: for each page that carries an image (a PDF page rendered by
 * render-pdf, a scan loaded by parse-image) it recognises the image and adds
 * the text as paragraph elements, each with its bounding box (PDF points
 * from the top left when the image's resolution is known, else pixels), its
 * confidence (0..100: the mean of its lines', weighted by their length) and
 * the attribute "ocr" = "tesseract". With unit = line every text line is an
 * element of its own, with its own confidence. Lines whose confidence is
 * below min_confidence are dropped. The image is freed afterwards (unless
 * keep_image), so a long scanned document does not hold every page's pixels
 * until it is stored. Pages without an image are not touched.
 *
 * tesseract's rules, kept here: one engine per pool thread, made the first
 * time the thread meets an image and reused for every page after (loading
 * a language model costs more than a page); text it returns is freed with
 * TessDeleteText. Nothing of tesseract starts before that first image: init
 * only checks the options, so a run whose documents all have a text layer
 * (the built-in default routes every PDF through this stage) never loads a
 * language model. A language that cannot be loaded is therefore found on
 * the first page that needs OCR, and stops the run there (SL_EFATAL).
 * The engine's own OpenMP threads are switched off around each recognition,
 * on the calling thread, so the pool alone decides how many cores OCR uses:
 * parallel engines that each spread over every core run many times slower.
 * (Setting OMP_THREAD_LIMIT in the environment would come too late: libgomp
 * reads it once, when the dynamic loader brings it in with this plugin.)
 * debug_file, a process-wide tesseract parameter, is set once per process,
 * before the first engine is made.
 */
#include <omp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tesseract/capi.h>

#include <sluice/sluice.h>

#include "textbuf.h"

typedef struct ocr_config {
    const char *languages;
    const char *datapath;
    int64_t psm;
    double min_confidence;
    const char *unit;
    bool keep_image;
} ocr_config;

typedef struct ocr_state {
    sl_instance *inst;
    char lang[256]; /* "eng+deu" */
    char *datapath; /* NULL: tesseract's own default */
    int psm;
    float min_confidence;
    bool per_line;
    bool keep_image;
} ocr_state;

static const sl_option options[] = {
    {.name = "languages",
     .type = SL_OPT_STRING,
     .def = "eng",
     .help = "tesseract languages, e.g. \"eng\" or \"eng deu\" (Debian: tesseract-ocr-LANG)",
     .offset = offsetof(ocr_config, languages)},
    {.name = "datapath",
     .type = SL_OPT_PATH,
     .def = "",
     .help = "folder holding LANG.traineddata; empty: tesseract's default (TESSDATA_PREFIX or the system's)",
     .offset = offsetof(ocr_config, datapath)},
    {.name = "psm",
     .type = SL_OPT_INT,
     .def = "3",
     .help = "tesseract's page segmentation mode (1, 3..13; 3: fully automatic)",
     .offset = offsetof(ocr_config, psm)},
    {.name = "min_confidence",
     .type = SL_OPT_DOUBLE,
     .def = "0",
     .help = "drop text lines recognised with less confidence than this (0..100)",
     .offset = offsetof(ocr_config, min_confidence)},
    {.name = "unit",
     .type = SL_OPT_ENUM,
     .def = "paragraph",
     .help = "one element per paragraph, or per text line",
     .offset = offsetof(ocr_config, unit),
     .choices = "paragraph|line"},
    {.name = "keep_image",
     .type = SL_OPT_BOOL,
     .def = "false",
     .help = "keep the page image after OCR, for a later page stage",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(ocr_config, keep_image)},
    {0},
};

/* "eng deu", "eng,deu" or "eng+deu" as tesseract's "eng+deu". */
static int language_list(const char *in, char *out, size_t cap) {
    size_t n = 0;
    for (const char *p = in; *p;) {
        while (*p == ' ' || *p == ',' || *p == '+' || *p == '\t') p++;
        size_t w = strcspn(p, " ,+\t");
        if (w == 0) break;
        for (size_t i = 0; i < w; i++) {
            char c = p[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '-'))
                return -1;
        }
        if (n + w + 2 > cap) return -1;
        if (n) out[n++] = '+';
        memcpy(out + n, p, w);
        n += w;
        p += w;
    }
    out[n] = '\0';
    return n ? 0 : -1;
}

/* tesseract's diagnostics go to debug_file, a process-wide parameter: set
 * once, before any engine runs (setting it again while another thread's
 * engine prints would race on the string). */
static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;
static void quiet_tesseract(void) {
    TessBaseAPI *api = TessBaseAPICreate();
    if (!api) return;
    TessBaseAPISetVariable(api, "debug_file", "/dev/null");
    TessBaseAPIDelete(api);
}

/* A ready engine, or NULL. */
static TessBaseAPI *new_engine(const ocr_state *st) {
    pthread_once(&quiet_once, quiet_tesseract);
    TessBaseAPI *api = TessBaseAPICreate();
    if (!api) return NULL;
    if (TessBaseAPIInit2(api, st->datapath, st->lang, OEM_LSTM_ONLY) != 0) {
        TessBaseAPIDelete(api);
        return NULL;
    }
    TessBaseAPISetPageSegMode(api, (TessPageSegMode)st->psm);
    return api;
}

static void free_engine(TessBaseAPI *api) {
    if (!api) return;
    TessBaseAPIEnd(api);
    TessBaseAPIDelete(api);
}

static void free_state(ocr_state *st) {
    free(st->datapath);
    free(st);
}

static int init(sl_instance *inst, const void *config, void **state) {
    const ocr_config *cf = config;
    if (cf->psm < 1 || cf->psm > 13 || cf->psm == 2)
        return sl_instance_fail(inst, SL_EFATAL,
                                "psm = %lld: must be 1 or 3..13 (0 and 2 find layout but recognise no text)",
                                (long long)cf->psm);
    if (!(cf->min_confidence >= 0 && cf->min_confidence <= 100))
        return sl_instance_fail(inst, SL_EFATAL, "min_confidence = %g: must be from 0 to 100",
                                cf->min_confidence);
    ocr_state *st = calloc(1, sizeof *st);
    if (!st) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    st->inst = inst;
    st->psm = (int)cf->psm;
    st->min_confidence = (float)cf->min_confidence;
    st->per_line = cf->unit && strcmp(cf->unit, "line") == 0;
    st->keep_image = cf->keep_image;
    if (language_list(cf->languages ? cf->languages : "", st->lang, sizeof st->lang)) {
        free_state(st);
        return sl_instance_fail(inst, SL_EFATAL,
                                "languages = \"%s\": expected names such as \"eng\" or \"eng deu\"",
                                cf->languages ? cf->languages : "");
    }
    if (cf->datapath && *cf->datapath && !(st->datapath = strdup(cf->datapath))) {
        free_state(st);
        return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    }
    *state = st;
    return 0;
}

static void fini(void *state) { free_state(state); }

/* A pool thread's engine, made when the thread first meets a page with an
 * image: a PDF route passes every page through OCR, and threads that only
 * ever see pages with a text layer should not load a language model. */
typedef struct ocr_thread {
    TessBaseAPI *api;
} ocr_thread;

static int thread_init(void *state, void **thread_state) {
    ocr_thread *t = calloc(1, sizeof *t);
    if (!t) return SL_ENOMEM;
    *thread_state = t;
    return 0;
}

static void thread_fini(void *state, void *thread_state) {
    ocr_thread *t = thread_state;
    free_engine(t->api);
    free(t);
}

/* The thread's engine, made on its first image; NULL when the languages
 * cannot be loaded. */
static TessBaseAPI *engine(ocr_state *st, ocr_thread *t) {
    if (t->api) return t->api;
    t->api = new_engine(st);
    if (t->api)
        sl_log(st->inst, SL_LOG_INFO, "tesseract engine started (languages %s) on a pool thread", st->lang);
    return t->api;
}

/* --- turning tesseract's lines into elements --- */

/* The element being built: lines of one paragraph (or one line). */
typedef struct para {
    buf text;
    double conf_sum, weight;
    int box[4];
    uint32_t line; /* first line's index on the page, 1-based */
    bool open;
} para;

typedef struct page_job {
    sl_call *call;
    sl_doc *doc;
    uint32_t page;
    float scale; /* pixels to points: 72 / dpi, or 1 when the dpi is unknown */
    para cur;
} page_job;

static int flush(page_job *pj) {
    para *p = &pj->cur;
    if (!p->open) return 0;
    p->open = false;
    if (p->text.len == 0) return 0;
    int i = sl_doc_add_element(pj->doc, SL_EL_PARAGRAPH, p->text.p, p->text.len);
    p->text.len = 0;
    if (i < 0) return sl_fail(pj->call, SL_ENOMEM, "out of memory");
    size_t e = (size_t)i;
    float s = pj->scale;
    sl_elem_set_page(pj->doc, e, pj->page);
    sl_elem_set_source(pj->doc, e, 0, p->line);
    sl_elem_set_bbox(pj->doc, e, (float)p->box[0] * s, (float)p->box[1] * s, (float)p->box[2] * s,
                     (float)p->box[3] * s);
    sl_elem_set_confidence(pj->doc, e, p->weight > 0 ? (float)(p->conf_sum / p->weight) : 0.0f);
    if (sl_elem_set_attr(pj->doc, e, "ocr", "tesseract") < 0)
        return sl_fail(pj->call, SL_ENOMEM, "out of memory");
    return 0;
}

/* Adds one recognised line (trimmed, not empty) to the current element. */
static int add_line(page_job *pj, const char *text, size_t len, float conf, const int box[4], uint32_t line) {
    para *p = &pj->cur;
    if (!p->open) {
        p->open = true;
        p->conf_sum = p->weight = 0;
        p->line = line;
        memcpy(p->box, box, sizeof p->box);
    } else {
        if (box[0] < p->box[0]) p->box[0] = box[0];
        if (box[1] < p->box[1]) p->box[1] = box[1];
        if (box[2] > p->box[2]) p->box[2] = box[2];
        if (box[3] > p->box[3]) p->box[3] = box[3];
    }
    if ((p->text.len && buf_add(&p->text, "\n", 1)) || buf_add(&p->text, text, len))
        return sl_fail(pj->call, SL_ENOMEM, "out of memory");
    p->conf_sum += (double)conf * (double)len;
    p->weight += (double)len;
    return 0;
}

static bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f'; }

/* Walks the recognised page line by line. */
static int collect(const ocr_state *st, TessBaseAPI *api, page_job *pj) {
    TessResultIterator *ri = TessBaseAPIGetIterator(api);
    if (!ri) return 0; /* nothing found on the page */
    TessPageIterator *pi = TessResultIteratorGetPageIterator(ri);
    int rc = 0;
    uint32_t line = 0;
    do {
        bool new_para = TessPageIteratorIsAtBeginningOf(pi, RIL_PARA);
        char *text = TessResultIteratorGetUTF8Text(ri, RIL_TEXTLINE);
        if (!text) continue;
        float conf = TessResultIteratorConfidence(ri, RIL_TEXTLINE);
        int box[4] = {0, 0, 0, 0};
        TessPageIteratorBoundingBox(pi, RIL_TEXTLINE, &box[0], &box[1], &box[2], &box[3]);
        const char *s = text;
        size_t n = strlen(s);
        while (n > 0 && is_ws(*s)) s++, n--;
        while (n > 0 && is_ws(s[n - 1])) n--;
        line++;
        if (n > 0 && conf >= st->min_confidence && sl_utf8_valid(s, n, NULL)) {
            if (new_para || st->per_line) rc = flush(pj);
            if (!rc) rc = add_line(pj, s, n, conf, box, line);
        }
        TessDeleteText(text);
    } while (!rc && TessResultIteratorNext(ri, RIL_TEXTLINE));
    TessResultIteratorDelete(ri);
    if (!rc) rc = flush(pj);
    return rc;
}

static int recognise(sl_call *call, sl_doc *doc, uint32_t page) {
    ocr_state *st = sl_call_state(call);
    ocr_thread *t = sl_call_thread_state(call);
    if (!t) return sl_fail(call, SL_EFATAL, "ocr-tesseract called without its per-thread state");
    uint32_t w, h, ch;
    size_t stride;
    float dpi;
    const unsigned char *img = sl_doc_page_image(doc, page, &w, &h, &ch, &stride, &dpi);
    if (!img) return 0;
    TessBaseAPI *api = engine(st, t);
    if (!api)
        return sl_fail(call, SL_EFATAL,
                       "tesseract cannot load languages \"%s\" from %s: is LANG.traineddata there "
                       "(Debian: tesseract-ocr-LANG)?",
                       st->lang, st->datapath ? st->datapath : "its default data folder");
    if (w > INT32_MAX || h > INT32_MAX || stride > INT32_MAX || (ch != 1 && ch != 3 && ch != 4))
        return sl_fail(call, SL_EBADINPUT, "page %u: image of %ux%u with %u channels cannot be recognised",
                       page, w, h, ch);

    TessBaseAPISetImage(api, img, (int)w, (int)h, (int)ch, (int)stride);
    if (dpi >= 1.0f) TessBaseAPISetSourceResolution(api, (int)(dpi + 0.5f));
    int saved = omp_get_max_active_levels();
    omp_set_max_active_levels(0); /* no parallel regions: one core per engine */
    int failed = TessBaseAPIRecognize(api, NULL);
    omp_set_max_active_levels(saved);

    int rc = 0;
    if (failed) {
        rc = sl_fail(call, SL_EBADINPUT, "page %u: tesseract could not recognise its image (%ux%u)", page, w,
                     h);
    } else {
        page_job pj = {.call = call, .doc = doc, .page = page, .scale = dpi >= 1.0f ? 72.0f / dpi : 1.0f};
        rc = collect(st, api, &pj);
        free(pj.cur.text.p);
    }
    TessBaseAPIClear(api);
    if (!rc && !st->keep_image) sl_doc_drop_page_image(doc, page);
    return rc;
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "ocr-tesseract",
    .version = "1.0.0",
    .summary = "page images to text elements with per-line confidence (tesseract)",
    .role = SL_ROLE_PAGE,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(ocr_config),
    .init = init,
    .fini = fini,
    .thread_init = thread_init,
    .thread_fini = thread_fini,
    .page = recognise,
};

SL_PLUGIN_EXPORT(desc)
