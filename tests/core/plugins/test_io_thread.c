/* test_io_thread.c - an io embedder that checks which thread calls it, for
 * the test of SL_PLUGIN_SEND_OFF_LOOP (plugin.h, ABI 1.7). One source, two
 * plugins: test-io-offloop sets the flag, test-io-onloop does not.
 *
 * init runs on the loop thread (plugin.h) and remembers it. embed then
 * fails the run (SL_EFATAL) when it finds itself on the wrong side: on the
 * loop thread although the flag is set, or off it although it is not. It
 * writes [len, 1, 0, ...] normalised, then POSTs one embeddings request
 * for its texts to base_url/embeddings (the fake provider) with the
 * SDK's JSON request builder, and answers once the response is in: HTTP
 * 200, or the SDK's verdict on what came instead. So a run stores every
 * document only when the core called embed where the flag says, and the
 * transfer it handed over from that thread was started and answered. */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include <sluice/remote.h>

#ifdef TEST_IO_OFF_LOOP
#define PLUGIN_NAME "test-io-offloop"
#define PLUGIN_FLAGS SL_PLUGIN_SEND_OFF_LOOP
#else
#define PLUGIN_NAME "test-io-onloop"
#define PLUGIN_FLAGS 0u
#endif

typedef struct conf {
    const char *base_url;
    const char *api_key;
    int64_t dimension;
} conf;

typedef struct state {
    conf c;
    pthread_t loop_thread;
    sl_json_frame frame;
    sl_endpoint ep; /* base_url/embeddings, and "Bearer KEY" */
} state;

static const sl_option options[] = {
    {"base_url",
     SL_OPT_STRING,
     NULL,
     "the API's URL (its /embeddings is POSTed to)",
     SL_OPT_REQUIRED,
     offsetof(conf, base_url),
     NULL,
     {0}},
    {"api_key", SL_OPT_STRING, "", "its bearer token", SL_OPT_SECRET, offsetof(conf, api_key), NULL, {0}},
    {"dimension", SL_OPT_INT, "4", "vector dimension", 0, offsetof(conf, dimension), NULL, {0}},
    {NULL, 0, NULL, NULL, 0, 0, NULL, {0}},
};

static void fini(void *arg) {
    state *s = arg;
    if (!s) return;
    sl_json_frame_free(&s->frame);
    sl_endpoint_free(&s->ep);
    free(s);
}

static int init(sl_instance *inst, const void *config, void **out) {
    state *s = calloc(1, sizeof *s);
    if (!s) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    s->c = *(const conf *)config;
    s->loop_thread = pthread_self();
    int rc = sl_endpoint_init(inst, &s->ep, s->c.base_url, "embeddings", "Bearer ", s->c.api_key);
    if (!rc)
        rc = sl_json_frame_init(inst, &s->frame, json_pack("{s:s}", "model", "text-embedding-3-small"),
                                ",\"input\":[", "]", json_pack("{s:s}", "encoding_format", "float"));
    if (rc) {
        fini(s);
        return rc;
    }
    sl_instance_set_dimension(inst, (uint32_t)s->c.dimension);
    sl_instance_set_model(inst, PLUGIN_NAME);
    *out = s;
    return 0;
}

static void on_response(sl_http *req, void *arg) {
    sl_call *call = arg;
    long status = sl_http_status(req);
    int rc = !sl_http_error(req) && status == 200 ? 0 : sl_http_verdict(call, req);
    sl_http_free(req);
    sl_call_done(call, rc);
}

static int embed(sl_call *call, const sl_text *texts, size_t n, float *out) {
    state *s = sl_call_state(call);
    bool on_loop = pthread_equal(pthread_self(), s->loop_thread);
    if (on_loop == ((PLUGIN_FLAGS & SL_PLUGIN_SEND_OFF_LOOP) != 0))
        return sl_fail(call, SL_EFATAL, "%s: embed called %s the loop thread, although the plugin %s",
                       PLUGIN_NAME, on_loop ? "on" : "off",
                       on_loop ? "set SL_PLUGIN_SEND_OFF_LOOP" : "did not set SL_PLUGIN_SEND_OFF_LOOP");
    uint32_t dim = (uint32_t)s->c.dimension;
    for (size_t i = 0; i < n; i++) {
        float *v = out + i * dim;
        memset(v, 0, dim * sizeof *v);
        v[0] = (float)texts[i].len;
        if (dim > 1) v[1] = 1.0f;
        float norm = sqrtf(v[0] * v[0] + (dim > 1 ? 1.0f : 0.0f));
        for (uint32_t k = 0; k < dim && k < 2; k++) v[k] /= norm;
    }
    sl_buf body = {0};
    int rc = sl_json_request(call, &s->frame, texts, NULL, 1, "text", &body);
    if (rc) return rc;
    sl_header h[] = {{"Authorization", s->ep.auth}};
    return sl_post_json(call, s->ep.url, &body, h, 1, 10000, 1 << 20, on_response, call);
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = PLUGIN_NAME,
    .version = "1.0.0",
    .summary = "an io embedder that checks the thread it is called on (tests)",
    .role = SL_ROLE_EMBEDDER,
    .bottleneck = SL_IO,
    .flags = PLUGIN_FLAGS,
    .options = options,
    .config_size = sizeof(conf),
    .batch_size = 8,
    .init = init,
    .fini = fini,
    .embed = embed,
};

SL_PLUGIN_EXPORT(desc)
