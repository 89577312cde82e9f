/* layout.c - layout-torch: finds the regions of rendered pages (text,
 * tables, figures, ...) with a TorchScript detection model.
 *
 * A gpu page stage: the batcher hands it pages of many documents at once.
 * Each page image is scaled into the model's input (keeping its aspect
 * ratio and padding with white, or stretched), the batch runs as one
 * [N, C, H, W] float tensor in 0..1, and every detection scoring at least
 * `threshold` becomes a region (label, score, box in page pixels) on its
 * page. The input and output contract is in README.md, so anyone can
 * export a DETR- or YOLO-style model to it. libtorch sits behind
 * torch_shim.h; this file is plain C like every other plugin.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include "torch_shim.h"

typedef struct conf {
    const char *model;
    const char *device;
    double threshold;
    int64_t input_width, input_height;
    int64_t channels;
    const char *resize;
    const char *labels;
    double nms_iou;
    int64_t max_regions;
    int64_t threads;
    const char *units;
} conf;

static const sl_option options[] = {
    {"model",
     SL_OPT_PATH,
     NULL,
     "TorchScript file of the detection model (contract: README.md)",
     SL_OPT_REQUIRED,
     offsetof(conf, model),
     NULL,
     {0}},
    SL_TORCH_OPTION_DEVICE(conf),
    {"threshold",
     SL_OPT_DOUBLE,
     "0.5",
     "lowest score (0..1) a detection needs to become a region",
     0,
     offsetof(conf, threshold),
     NULL,
     {0}},
    {"input_width",
     SL_OPT_INT,
     "1024",
     "model input width in pixels",
     0,
     offsetof(conf, input_width),
     NULL,
     {0}},
    {"input_height",
     SL_OPT_INT,
     "1024",
     "model input height in pixels",
     0,
     offsetof(conf, input_height),
     NULL,
     {0}},
    {"channels",
     SL_OPT_INT,
     "3",
     "model input channels: 3 (RGB) or 1 (gray)",
     0,
     offsetof(conf, channels),
     NULL,
     {0}},
    {"resize",
     SL_OPT_ENUM,
     "fit",
     "fit: keep the aspect ratio, pad right and bottom with white; stretch: fill the input",
     0,
     offsetof(conf, resize),
     "fit|stretch",
     {0}},
    {"labels",
     SL_OPT_STRING,
     "",
     "label names by class index, comma-separated (\"text,title,list,table,figure\"); others: labelN",
     0,
     offsetof(conf, labels),
     NULL,
     {0}},
    {"nms_iou",
     SL_OPT_DOUBLE,
     "0",
     "non-maximum suppression per label at this IoU (0: off, for models that do their own)",
     0,
     offsetof(conf, nms_iou),
     NULL,
     {0}},
    {"max_regions",
     SL_OPT_INT,
     "100",
     "most regions per page, best first (0: no limit)",
     0,
     offsetof(conf, max_regions),
     NULL,
     {0}},
    SL_TORCH_OPTION_THREADS(conf),
    {"units",
     SL_OPT_ENUM,
     "pixels",
     "region coordinates: pixels of the page image, or points (1/72 inch, from the image's dpi)",
     0,
     offsetof(conf, units),
     "pixels|points",
     {0}},
    {NULL, 0, NULL, NULL, 0, 0, NULL, {0}},
};

typedef struct state {
    conf c;
    sl_torch_model *model;
    char **labels; /* names by class index */
    size_t nlabels;
    char *labels_buf;
    bool fit, points;
} state;

/* Per dispatcher thread: the input tensor's memory, reused between batches
 * (a batch of 1024x1024 RGB pages is 12 MB a page). */
typedef struct scratch {
    float *buf;
    size_t cap; /* floats */
} scratch;

/* One detection, before it becomes a region. */
typedef struct det {
    float box[4];
    float score;
    int64_t label;
} det;

/* --- lifecycle --- */

static void fini(void *st) {
    state *s = st;
    if (!s) return;
    sl_torch_model_free(s->model);
    free(s->labels);
    free(s->labels_buf);
    free(s);
}

static int split_labels(state *s) {
    s->labels_buf = strdup(s->c.labels);
    if (!s->labels_buf) return SL_ENOMEM;
    size_t n = 0;
    for (const char *p = s->labels_buf; *p; p++) n += *p == ',';
    s->labels = calloc(n + 1, sizeof *s->labels);
    if (!s->labels) return SL_ENOMEM;
    char *save = NULL;
    for (char *t = strtok_r(s->labels_buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ' || *t == '\t') t++;
        char *e = t + strlen(t);
        while (e > t && (e[-1] == ' ' || e[-1] == '\t')) *--e = '\0';
        s->labels[s->nlabels++] = t;
    }
    return 0;
}

static int check_model(sl_instance *inst, state *s);

static int check_options(sl_instance *inst, const conf *c) {
    if (c->input_width < 8 || c->input_height < 8 || c->input_width > 16384 || c->input_height > 16384)
        return sl_instance_fail(inst, SL_EFATAL,
                                "input_width and input_height must be 8 to 16384, not %lldx%lld",
                                (long long)c->input_width, (long long)c->input_height);
    if (c->channels != 1 && c->channels != 3)
        return sl_instance_fail(inst, SL_EFATAL, "channels must be 1 or 3, not %lld", (long long)c->channels);
    if (!(c->threshold >= 0 && c->threshold <= 1))
        return sl_instance_fail(inst, SL_EFATAL, "threshold must be within 0..1, not %g", c->threshold);
    if (!(c->nms_iou >= 0 && c->nms_iou <= 1))
        return sl_instance_fail(inst, SL_EFATAL, "nms_iou must be within 0..1 (0: off), not %g", c->nms_iou);
    if (c->max_regions < 0 || c->threads < 0)
        return sl_instance_fail(inst, SL_EFATAL, "max_regions and threads cannot be negative");
    return 0;
}

static int init(sl_instance *inst, const void *config, void **out) {
    const conf *c = config;
    int rc = check_options(inst, c);
    if (rc) return rc;
    state *s = calloc(1, sizeof *s);
    if (!s) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    s->c = *c;
    s->fit = strcmp(c->resize, "fit") == 0;
    s->points = strcmp(c->units, "points") == 0;
    if (split_labels(s)) {
        rc = sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    } else if (sl_torch_model_load(c->model, c->device, &s->model)) {
        rc = sl_instance_fail(inst, SL_EFATAL, "cannot load model %s: %s", c->model, sl_torch_last_error());
    } else {
        sl_log(inst, SL_LOG_INFO, "model %s on %s (libtorch %s)", c->model, sl_torch_model_device(s->model),
               sl_torch_version());
        rc = check_model(inst, s);
    }
    if (rc) {
        fini(s); /* the core calls fini only after a successful init */
        return rc;
    }
    *out = s;
    return 0;
}

/* The dispatcher thread: libtorch's CPU threads are set where forward runs
 * (OpenMP keeps the count per thread; sl_torch_thread_init). */
static int thread_init(void *st, void **ts) {
    state *s = st;
    sl_torch_thread_init(s->c.threads);
    scratch *sc = calloc(1, sizeof *sc);
    if (!sc) return SL_ENOMEM;
    *ts = sc;
    return 0;
}

static void thread_fini(void *st, void *ts) {
    scratch *sc = ts;
    if (!sc) return;
    free(sc->buf);
    free(sc);
}

/* --- pixels in --- */

/* Scales one page image into the model input at dst ([C][H][W] floats in
 * 0..1): area-averaging when shrinking, nearest when enlarging. Returns the
 * scale factors page -> input for the box mapping back. */
static void fill_input(const state *s, const unsigned char *px, uint32_t w, uint32_t h, uint32_t ch,
                       size_t stride, float *dst, double *sx, double *sy) {
    const int W = (int)s->c.input_width, H = (int)s->c.input_height, C = (int)s->c.channels;
    int dw = W, dh = H;
    if (s->fit) {
        double k = fmin((double)W / w, (double)H / h);
        dw = (int)lround(w * k);
        dh = (int)lround(h * k);
        if (dw < 1) dw = 1;
        if (dh < 1) dh = 1;
        if (dw > W) dw = W;
        if (dh > H) dh = H;
    }
    *sx = (double)dw / w;
    *sy = (double)dh / h;
    size_t plane = (size_t)W * H;
    for (size_t i = 0; i < plane * (size_t)C; i++) dst[i] = 1.0f; /* white padding */
    for (int oy = 0; oy < dh; oy++) {
        uint32_t y0 = (uint32_t)((uint64_t)oy * h / (uint64_t)dh);
        uint32_t y1 = (uint32_t)((uint64_t)(oy + 1) * h / (uint64_t)dh);
        if (y1 <= y0) y1 = y0 + 1;
        for (int ox = 0; ox < dw; ox++) {
            uint32_t x0 = (uint32_t)((uint64_t)ox * w / (uint64_t)dw);
            uint32_t x1 = (uint32_t)((uint64_t)(ox + 1) * w / (uint64_t)dw);
            if (x1 <= x0) x1 = x0 + 1;
            double sum[3] = {0, 0, 0};
            for (uint32_t y = y0; y < y1; y++) {
                const unsigned char *row = px + (size_t)y * stride;
                for (uint32_t x = x0; x < x1; x++) {
                    const unsigned char *p = row + (size_t)x * ch;
                    double r, g, b;
                    if (ch == 1) {
                        r = g = b = p[0];
                    } else {
                        double a = ch == 4 ? p[3] / 255.0 : 1.0; /* over white */
                        r = p[0] * a + 255 * (1 - a);
                        g = p[1] * a + 255 * (1 - a);
                        b = p[2] * a + 255 * (1 - a);
                    }
                    sum[0] += r;
                    sum[1] += g;
                    sum[2] += b;
                }
            }
            double n = (double)(y1 - y0) * (x1 - x0) * 255.0;
            size_t at = (size_t)oy * W + (size_t)ox;
            if (C == 1) {
                dst[at] = (float)((0.299 * sum[0] + 0.587 * sum[1] + 0.114 * sum[2]) / n);
            } else {
                for (int k = 0; k < 3; k++) dst[(size_t)k * plane + at] = (float)(sum[k] / n);
            }
        }
    }
}

/* --- detections out --- */

static int by_score(const void *a, const void *b) {
    float x = ((const det *)a)->score, y = ((const det *)b)->score;
    return x < y ? 1 : x > y ? -1 : 0;
}

static float iou(const float *a, const float *b) {
    float ix = fminf(a[2], b[2]) - fmaxf(a[0], b[0]), iy = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
    if (ix <= 0 || iy <= 0) return 0;
    float inter = ix * iy;
    float ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return ua > 0 ? inter / ua : 0;
}

/* Greedy non-maximum suppression per label on score-sorted detections;
 * returns how many are kept (moved to the front). */
static size_t nms(det *d, size_t n, float thr) {
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        bool keep = true;
        for (size_t j = 0; j < kept && keep; j++)
            keep = d[j].label != d[i].label || iou(d[j].box, d[i].box) <= thr;
        if (keep) d[kept++] = d[i];
    }
    return kept;
}

/* The model's outputs, checked against the contract (README.md). */
typedef struct outputs {
    const float *boxes, *scores;
    const int64_t *labels; /* NULL: every detection is class 0 */
    int64_t k;             /* detections per image */
} outputs;

static const sl_torch_tensor *output(const sl_torch_outputs *o, const char *name, size_t pos) {
    const sl_torch_tensor *t = sl_torch_outputs_find(o, name);
    return t ? t : sl_torch_outputs_find(o, pos == 0 ? "0" : pos == 1 ? "1" : "2");
}

static int read_outputs(sl_call *call, sl_instance *inst, const sl_torch_outputs *o, int64_t n,
                        outputs *out) {
    const sl_torch_tensor *b = output(o, "boxes", 0), *s = output(o, "scores", 1),
                          *l = output(o, "labels", 2);
#define CONTRACT(...)                                                                                        \
    (call ? sl_fail(call, SL_EFATAL, __VA_ARGS__) : sl_instance_fail(inst, SL_EFATAL, __VA_ARGS__))
    if (!b || !s)
        return CONTRACT(
            "the model must return boxes [N,K,4] and scores [N,K] (a dict with keys boxes, scores, "
            "labels, or a tuple in that order); it returned %zu outputs",
            sl_torch_outputs_count(o));
    if (b->dtype != SL_TORCH_FLOAT32 || b->ndim != 3 || b->shape[0] != n || b->shape[2] != 4)
        return CONTRACT(
            "boxes must be a float tensor [N=%lld,K,4] of normalised x0,y0,x1,y1; got %d dimensions "
            "[%lld,...]",
            (long long)n, b->ndim, (long long)(b->ndim ? b->shape[0] : 0));
    int64_t k = b->shape[1];
    if (s->dtype != SL_TORCH_FLOAT32 || s->ndim != 2 || s->shape[0] != n || s->shape[1] != k)
        return CONTRACT("scores must be a float tensor [N=%lld,K=%lld] matching boxes", (long long)n,
                        (long long)k);
    if (l && (l->dtype != SL_TORCH_INT64 || l->ndim != 2 || l->shape[0] != n || l->shape[1] != k))
        return CONTRACT("labels must be an integer tensor [N=%lld,K=%lld] matching boxes", (long long)n,
                        (long long)k);
#undef CONTRACT
    out->boxes = b->data;
    out->scores = s->data;
    out->labels = l ? l->data : NULL;
    out->k = k;
    return 0;
}

/* Turns image i's detections into regions of (doc, page). */
static int add_regions(sl_call *call, const state *s, const outputs *o, int64_t i, sl_doc *doc, uint32_t page,
                       uint32_t w, uint32_t h, float dpi, double sx, double sy, det *buf) {
    size_t n = 0;
    const double W = (double)s->c.input_width, H = (double)s->c.input_height;
    for (int64_t j = 0; j < o->k; j++) {
        float score = o->scores[i * o->k + j];
        if (!(score >= s->c.threshold)) continue; /* NaN too */
        const float *bx = o->boxes + (i * o->k + j) * 4;
        det *d = &buf[n];
        /* normalised input coordinates -> input pixels -> page pixels */
        d->box[0] = (float)fmin(fmax(bx[0] * W / sx, 0), w);
        d->box[1] = (float)fmin(fmax(bx[1] * H / sy, 0), h);
        d->box[2] = (float)fmin(fmax(bx[2] * W / sx, 0), w);
        d->box[3] = (float)fmin(fmax(bx[3] * H / sy, 0), h);
        if (!(d->box[2] > d->box[0] && d->box[3] > d->box[1])) continue; /* empty, or NaN */
        d->score = score > 1 ? 1 : score;
        d->label = o->labels ? o->labels[i * o->k + j] : 0;
        n++;
    }
    qsort(buf, n, sizeof *buf, by_score);
    if (s->c.nms_iou > 0) n = nms(buf, n, (float)s->c.nms_iou);
    if (s->c.max_regions > 0 && n > (size_t)s->c.max_regions) n = (size_t)s->c.max_regions;
    float unit = s->points && dpi > 0 ? 72.0f / dpi : 1.0f;
    for (size_t j = 0; j < n; j++) {
        char name[32];
        const char *label = name;
        if (buf[j].label >= 0 && (size_t)buf[j].label < s->nlabels)
            label = s->labels[buf[j].label];
        else
            snprintf(name, sizeof name, "label%lld", (long long)buf[j].label);
        const float *b = buf[j].box;
        if (sl_doc_add_region(doc, page, label, buf[j].score, b[0] * unit, b[1] * unit, b[2] * unit,
                              b[3] * unit) < 0)
            return sl_fail(call, SL_ENOMEM, "out of memory for regions");
    }
    return 0;
}

/* --- the batch --- */

/* Where image i of the input came from. */
typedef struct slot {
    sl_doc *doc;
    uint32_t page, w, h;
    float dpi;
    double sx, sy;
} slot;

static int pages(sl_call *call, sl_doc *const *docs, const uint32_t *pgs, size_t n) {
    state *s = sl_call_state(call);
    scratch *sc = sl_call_thread_state(call);
    const size_t per = (size_t)s->c.channels * (size_t)s->c.input_width * (size_t)s->c.input_height;
    slot *slots = calloc(n ? n : 1, sizeof *slots);
    float *input = NULL;
    if (!slots) return sl_fail(call, SL_ENOMEM, "out of memory for a batch of %zu pages", n);
    if (sc && sc->cap >= per * n) {
        input = sc->buf;
    } else {
        input = malloc(per * n * sizeof *input);
        if (input && sc) {
            free(sc->buf);
            sc->buf = input;
            sc->cap = per * n;
        }
    }
    if (!input) {
        free(slots);
        return sl_fail(call, SL_ENOMEM, "out of memory for the input of %zu pages", n);
    }
    size_t m = 0; /* pages with an image: the others have nothing to look at */
    for (size_t i = 0; i < n; i++) {
        uint32_t w, h, ch;
        size_t stride;
        float dpi;
        const unsigned char *px = sl_doc_page_image(docs[i], pgs[i], &w, &h, &ch, &stride, &dpi);
        if (!px) continue;
        slot *sl = &slots[m];
        *sl = (slot){docs[i], pgs[i], w, h, dpi, 0, 0};
        fill_input(s, px, w, h, ch, stride, input + m * per, &sl->sx, &sl->sy);
        m++;
    }
    int rc = 0;
    sl_torch_outputs *out = NULL;
    if (m) {
        int64_t shape[4] = {(int64_t)m, s->c.channels, s->c.input_height, s->c.input_width};
        int trc = sl_torch_forward(s->model, input, shape, 4, &out);
        if (trc == SL_TORCH_ENOMEM)
            rc = sl_fail(call, SL_ENOMEM, "out of memory running a batch of %zu pages: %s", m,
                         sl_torch_last_error());
        else if (trc)
            rc = sl_fail(call, SL_EFATAL, "the model failed on a batch of %zu pages: %s", m,
                         sl_torch_last_error());
    }
    outputs o;
    if (m && rc == 0) rc = read_outputs(call, NULL, out, (int64_t)m, &o);
    det *buf = rc == 0 && m ? malloc((size_t)(o.k ? o.k : 1) * sizeof *buf) : NULL;
    if (m && rc == 0 && !buf) rc = sl_fail(call, SL_ENOMEM, "out of memory for detections");
    /* regions only once the whole batch ran: a batch that runs out of
     * memory is retried, and must not leave regions behind */
    for (size_t i = 0; rc == 0 && i < m; i++)
        rc = add_regions(call, s, &o, (int64_t)i, slots[i].doc, slots[i].page, slots[i].w, slots[i].h,
                         slots[i].dpi, slots[i].sx, slots[i].sy, buf);
    free(buf);
    sl_torch_outputs_free(out);
    if (!sc) free(input);
    free(slots);
    return rc;
}

/* Runs the model once on a blank page at init: a model that does not fit
 * the options (input size, channels) or the output contract fails the run
 * at start, with the reason, rather than on every page. */
static int check_model(sl_instance *inst, state *s) {
    const size_t per = (size_t)s->c.channels * (size_t)s->c.input_width * (size_t)s->c.input_height;
    float *x = malloc(per * sizeof *x);
    if (!x) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < per; i++) x[i] = 1.0f;
    int64_t shape[4] = {1, s->c.channels, s->c.input_height, s->c.input_width};
    sl_torch_outputs *out = NULL;
    int rc = sl_torch_forward(s->model, x, shape, 4, &out);
    free(x);
    if (rc) {
        rc = sl_instance_fail(inst, SL_EFATAL, "model %s failed on a blank [1,%lld,%lld,%lld] input: %s",
                              s->c.model, (long long)s->c.channels, (long long)s->c.input_height,
                              (long long)s->c.input_width, sl_torch_last_error());
    } else {
        outputs o;
        rc = read_outputs(NULL, inst, out, 1, &o);
    }
    sl_torch_outputs_free(out);
    return rc;
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "layout-torch",
    .version = "0.1.0",
    .summary = "page layout regions (text, tables, figures) from a TorchScript detection model",
    .role = SL_ROLE_PAGE,
    .bottleneck = SL_GPU,
    .options = options,
    .config_size = sizeof(conf),
    .batch_size = 8,
    .init = init,
    .fini = fini,
    .thread_init = thread_init,
    .thread_fini = thread_fini,
    .pages = pages,
};

SL_PLUGIN_EXPORT(desc)
