/* batcher_bench.c - items/s and latency of the gpu executor (core/batcher.c)
 * running the layout-torch plugin on a small convolutional TorchScript
 * model, for several batch sizes. Driven by bench/batcher.sh, which builds
 * it and the model; see bench/README.md.
 *
 *   bench-batcher --plugin PATH/layout-torch.so --model conv.pt [--device cpu|cuda]
 *                 [--batches 1,4,16,64] [--items 256] [--input 256] [--page 512]
 *                 [--threads 0] [--delay 5]
 *
 * For each batch size B it runs a closed loop with 2B pages in flight (one
 * batch computing while the next fills, as a busy pipeline keeps it): each
 * page that completes is replaced by a new one until `items` pages (and at
 * least 8 full batches) are done.
 * Every page is a --page sized RGB image the plugin scales to the model's
 * --input size, so the time includes preparing the tensor, as a run's does.
 * A warm-up of 2B pages first lets the TorchScript executor settle. It
 * prints one Markdown table: items/s, latency p50 and p95 from submit to
 * completion on the loop thread, the mean batch size the batcher formed and
 * the device time per batch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batcher.h"
#include "ctx.h"
#include "document.h"
#include "instance.h"
#include "registry.h"
#include "loop.h"

typedef struct bench {
    sl_batcher *b;
    sl_doc **docs; /* one per slot in flight */
    uint64_t *t_submit;
    uint64_t *lat; /* ns per completed item */
    size_t inflight, target, submitted, completed, measured_from;
    int failed;
    uv_timer_t keeper;
} bench;

typedef struct slot {
    bench *bn;
    size_t i;
} slot;

static slot *slots;

static void on_keep(uv_timer_t *t) {}

static void on_done(void *arg, int rc, const char *msg, const sl_batch_times *times) {
    slot *s = arg;
    bench *bn = s->bn;
    if (rc) {
        if (!bn->failed) fprintf(stderr, "bench-batcher: a page failed: %s\n", msg ? msg : sl_strerror(rc));
        bn->failed++;
    }
    if (bn->completed >= bn->measured_from)
        bn->lat[bn->completed - bn->measured_from] = sl_now_ns() - bn->t_submit[s->i];
    bn->completed++;
    if (bn->submitted < bn->target) {
        bn->t_submit[s->i] = sl_now_ns();
        bn->submitted++;
        if (sl_batcher_submit(bn->b, bn->docs[s->i], 1, on_done, s) != 0) bn->failed++;
    }
    if (bn->completed == bn->target) uv_close((uv_handle_t *)&bn->keeper, NULL);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p) {
    if (!n) return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e6;
}

/* One batch size: returns 0, or -1 when something failed. */
static int run_one(sl_instance *inst, uint32_t B, size_t items, uint64_t delay, uint32_t page) {
    bench bn;
    memset(&bn, 0, sizeof bn);
    bn.inflight = 2 * (size_t)B;
    size_t warm = bn.inflight;
    bn.target = warm + items;
    bn.measured_from = warm;
    bn.docs = calloc(bn.inflight, sizeof *bn.docs);
    bn.t_submit = calloc(bn.inflight, sizeof *bn.t_submit);
    bn.lat = calloc(items, sizeof *bn.lat);
    slots = calloc(bn.inflight, sizeof *slots);
    /* a grey page with a dark band: something for the model to look at */
    size_t stride = (size_t)page * 3;
    unsigned char *px = malloc(stride * page);
    for (uint32_t y = 0; y < page; y++)
        memset(px + y * stride, y > page / 3 && y < page / 2 ? 40 : 230, stride);
    for (size_t i = 0; i < bn.inflight; i++) {
        bn.docs[i] = sl_doc_new("bench.png", NULL);
        sl_doc_set_page_count(bn.docs[i], 1);
        sl_doc_set_page_image(bn.docs[i], 1, page, page, 3, stride, px, 96);
        slots[i] = (slot){&bn, i};
    }
    free(px);
    sl_loop *loop;
    sl_loop_new(&loop);
    sl_batcher_opts o = {B, delay, false};
    if (sl_batcher_new(loop, inst, &o, &bn.b) != 0) {
        fprintf(stderr, "bench-batcher: cannot start the batcher\n");
        return -1;
    }
    uv_timer_init(sl_loop_uv(loop), &bn.keeper);
    uv_timer_start(&bn.keeper, on_keep, 1000000, 1000000);
    sl_batcher_stats warm_st, st;
    memset(&warm_st, 0, sizeof warm_st);
    uint64_t t_measure;
    for (size_t i = 0; i < bn.inflight; i++) {
        bn.t_submit[i] = sl_now_ns();
        bn.submitted++;
        if (sl_batcher_submit(bn.b, bn.docs[i], 1, on_done, &slots[i]) != 0) bn.failed++;
    }
    /* the warm-up ends when `warm` items completed: poll the loop until then */
    while (bn.completed < warm && uv_run(sl_loop_uv(loop), UV_RUN_ONCE)) {
    }
    t_measure = sl_now_ns();
    sl_batcher_stats_get(bn.b, &warm_st);
    sl_loop_run(loop);
    uint64_t t1 = sl_now_ns();
    sl_batcher_stats_get(bn.b, &st);
    sl_batcher_free(bn.b);
    sl_loop_drain(loop);
    sl_loop_free(loop);

    size_t n = bn.completed > warm ? bn.completed - warm : 0;
    qsort(bn.lat, n, sizeof *bn.lat, cmp_u64);
    double wall = (double)(t1 - t_measure) / 1e9;
    uint64_t batches = st.batches - warm_st.batches, units = st.units - warm_st.units;
    double dev_ms = batches ? (double)(st.device_ns - warm_st.device_ns) / 1e6 / (double)batches : 0;
    printf("| %5u | %6zu | %7.2f | %8.1f | %8.1f | %8.1f | %10.1f | %12.1f |\n", B, n, wall,
           wall > 0 ? (double)n / wall : 0, pct(bn.lat, n, 0.50), pct(bn.lat, n, 0.95),
           batches ? (double)units / (double)batches : 0, dev_ms);
    fflush(stdout);
    for (size_t i = 0; i < bn.inflight; i++) sl_doc_free(bn.docs[i]);
    free(bn.docs);
    free(bn.t_submit);
    free(bn.lat);
    free(slots);
    return bn.failed ? -1 : 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench-batcher --plugin PATH.so --model MODEL.pt [--device auto|cpu|cuda]\n"
            "       [--batches 1,4,16,64] [--items N] [--input PX] [--page PX] [--threads N] [--delay MS]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *plugin_path = NULL, *model = NULL, *device = "cpu", *batches = "1,4,16,64";
    long items = 256, input = 256, page = 512, threads = 0, delay = 5;
    for (int i = 1; i < argc; i += 2) { /* --name value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--plugin"))
            plugin_path = v;
        else if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "--device"))
            device = v;
        else if (!strcmp(a, "--batches"))
            batches = v;
        else if (!strcmp(a, "--items"))
            items = atol(v);
        else if (!strcmp(a, "--input"))
            input = atol(v);
        else if (!strcmp(a, "--page"))
            page = atol(v);
        else if (!strcmp(a, "--threads"))
            threads = atol(v);
        else if (!strcmp(a, "--delay"))
            delay = atol(v);
        else
            usage();
    }
    if (!plugin_path || !model || items < 1 || input < 8 || page < 8 || delay < 0) usage();

    sl_ctx *ctx = sl_ctx_new();
    sl_ctx_set_global(ctx);
    sl_registry *reg;
    const sl_loaded *plugin;
    if (sl_registry_new(ctx, &reg) || sl_registry_open(ctx, reg, plugin_path, &plugin)) {
        fprintf(stderr, "bench-batcher: %s\n", sl_ctx_errmsg(ctx));
        return 1;
    }
    char o_model[4200], o_device[64], o_w[64], o_h[64], o_threads[64];
    snprintf(o_model, sizeof o_model, "model=%s", model);
    snprintf(o_device, sizeof o_device, "device=%s", device);
    snprintf(o_w, sizeof o_w, "input_width=%ld", input);
    snprintf(o_h, sizeof o_h, "input_height=%ld", input);
    snprintf(o_threads, sizeof o_threads, "threads=%ld", threads);
    /* a threshold no sigmoid reaches: regions would only grow the documents */
    const char *kv[] = {o_model, o_device, o_w, o_h, o_threads, "channels=3", "threshold=1"};
    sl_instance *inst;
    if (sl_instance_new_defaults(ctx, plugin, "layout", kv, sizeof kv / sizeof *kv, &inst) ||
        sl_instance_init(ctx, inst)) {
        fprintf(stderr, "bench-batcher: %s\n", sl_ctx_errmsg(ctx));
        return 1;
    }
    printf("| batch |  items |  wall s |  items/s |   p50 ms |   p95 ms | mean batch | device ms/batch |\n");
    printf("|------:|-------:|--------:|---------:|---------:|---------:|-----------:|----------------:|\n");
    int rc = 0;
    char *list = strdup(batches), *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        long B = atol(t);
        if (B < 1) usage();
        size_t n = (size_t)items > 8 * (size_t)B ? (size_t)items : 8 * (size_t)B;
        if (run_one(inst, (uint32_t)B, n, (uint64_t)delay, (uint32_t)page)) rc = 1;
    }
    free(list);
    sl_instance_free(inst);
    sl_registry_free(reg);
    sl_ctx_free(ctx);
    return rc;
}
