/* embed_openai.c - an embedder through OpenAI's Embeddings API, and every
 * server that speaks it (vLLM, text-embeddings-inference, LiteLLM, ...).
 *
 * One batch is one request: POST {base_url}/embeddings with
 *     {"model": M, "input": [TEXT, ...], "encoding_format": "base64"|"float"
 *      [, "dimensions": D]}
 * and the answer's data[i].embedding (placed by data[i].index) is the vector
 * of input[i]: a JSON array of numbers, or with base64 (the default: a
 * quarter of the bytes, no number parsing) a base64 string of little-endian
 * float32s, decoded straight into the output. Either form is accepted
 * whatever was asked for, since compatible servers differ. usage.prompt_tokens
 * is reported with sl_call_usage. response.h reads the answers: the usual
 * base64 one with jsmn and no JSON tree (its bulk is the vectors' strings),
 * any other with jansson, which also words every failure.
 *
 * The vector size must be known at init, before any request, so `dimension`
 * is required and every answer is checked against it: another size stops the
 * run ("model X returned 1536-dimensional vectors; the config says 384").
 * With `shorten`, `dimension` is sent as "dimensions" (text-embedding-3
 * models shorten their vectors natively). Empty texts are not sent (OpenAI
 * refuses them) and get the zero vector.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include <sluice/remote.h>
#include "response.h"

typedef struct embed_openai_config {
    const char *base_url;
    const char *api_key;
    const char *model;
    int64_t dimension;
    bool shorten;
    const char *encoding;
    int64_t timeout_ms;
} embed_openai_config;

typedef struct embed_openai {
    embed_openai_config c;
    uint32_t dim;
    sl_endpoint ep;      /* {base_url}/embeddings, and the key header's value */
    sl_json_frame frame; /* the request around its "input" texts */
} embed_openai;

/* One batch in flight: sent[k] is the index in the batch (and in out) of
 * the k-th input sent. */
typedef struct pending {
    sl_call *call;
    float *out;
    size_t nsent;
    size_t sent[];
} pending;

static const sl_option options[] = {
    {.name = "base_url",
     .type = SL_OPT_STRING,
     .def = "https://api.openai.com/v1",
     .help = "API root; /embeddings is appended",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(embed_openai_config, base_url)},
    {.name = "api_key",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "sent as 'Authorization: Bearer KEY'; empty: no auth header (local servers)",
     .flags = SL_OPT_SECRET,
     .offset = offsetof(embed_openai_config, api_key)},
    {.name = "model",
     .type = SL_OPT_STRING,
     .def = "text-embedding-3-small",
     .help = "the embedding model",
     .offset = offsetof(embed_openai_config, model)},
    {.name = "dimension",
     .type = SL_OPT_INT,
     .help = "size of the model's vectors (1..65536); every answer is checked against it",
     .flags = SL_OPT_REQUIRED,
     .offset = offsetof(embed_openai_config, dimension)},
    {.name = "shorten",
     .type = SL_OPT_BOOL,
     .def = "false",
     .help = "ask for `dimension`-sized vectors (sends \"dimensions\"; text-embedding-3 models)",
     .offset = offsetof(embed_openai_config, shorten)},
    {.name = "encoding",
     .type = SL_OPT_ENUM,
     .def = "base64",
     .help = "how vectors travel: base64 (compact float32) or float (JSON numbers); same vectors",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(embed_openai_config, encoding),
     .choices = "base64|float"},
    {.name = "timeout",
     .type = SL_OPT_DURATION,
     .def = "120s",
     .help = "longest wait for one batch",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(embed_openai_config, timeout_ms)},
    {0},
};

static void fini(void *state) {
    embed_openai *s = state;
    if (!s) return;
    sl_endpoint_free(&s->ep);
    sl_json_frame_free(&s->frame);
    free(s);
}

static int init(sl_instance *inst, const void *config, void **state) {
    const embed_openai_config *c = config;
    int rc = sl_remote_check_options(inst, c->base_url, c->model, c->timeout_ms);
    if (!rc) rc = sl_check_dimension(inst, c->dimension);
    if (rc) return rc;
    embed_openai *s = calloc(1, sizeof *s);
    if (!s) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    s->c = *c;
    s->dim = (uint32_t)c->dimension;
    rc = sl_endpoint_init(inst, &s->ep, c->base_url, "embeddings", "Bearer ", c->api_key);
    if (rc) {
        free(s);
        return rc;
    }
    json_t *rest =
        c->shorten ? json_pack("{s:s, s:I}", "encoding_format", c->encoding, "dimensions", (json_int_t)s->dim)
                   : json_pack("{s:s}", "encoding_format", c->encoding);
    rc =
        sl_json_frame_init(inst, &s->frame, json_pack("{s:s}", "model", c->model), ",\"input\":[", "]", rest);
    if (rc) {
        fini(s);
        return rc;
    }
    sl_instance_set_dimension(inst, s->dim);
    sl_instance_set_model(inst, c->model);
    *state = s;
    return 0;
}

/* The body read by response.h's fast way when it can (base64 vectors, the
 * usual answer), else by jansson, which also gives every message. */
static int read_response(sl_call *call, const embed_openai *s, const sl_http *req, const pending *p) {
    size_t len = 0;
    const char *body = sl_http_response_body(req, &len);
    long status = sl_http_status(req);
    response_batch b = {p->sent, p->nsent, s->dim, p->out};
    uint64_t tokens = 0;
    if (!sl_http_error(req) && status >= 200 && status <= 299 && response_read(body, len, &b, &tokens)) {
        sl_call_usage(call, tokens, 0);
        return 0;
    }
    json_t *root;
    int rc = sl_json_response(call, req, "OpenAI", s->ep.url, s->c.model, &root);
    if (!rc) rc = response_vectors(call, root, s->c.model, &b);
    json_decref(root);
    return rc;
}

static void on_response(sl_http *req, void *arg) {
    pending *p = arg;
    sl_call *call = p->call;
    int rc = read_response(call, sl_call_state(call), req, p);
    sl_http_free(req);
    free(p);
    sl_call_done(call, rc);
}

static int embed(sl_call *call, const sl_text *texts, size_t n, float *out) {
    const embed_openai *s = sl_call_state(call);
    pending *p = malloc(sizeof *p + n * sizeof p->sent[0]);
    if (!p) return sl_fail(call, SL_ENOMEM, "out of memory for a batch of %zu texts", n);
    *p = (pending){.call = call, .out = out};
    sl_nonempty_texts(texts, n, out, s->dim, p->sent, &p->nsent);
    if (!p->nsent) {
        free(p);
        return 0;
    }
    sl_buf body = {0};
    int rc = sl_json_request(call, &s->frame, texts, p->sent, p->nsent, "text", &body);
    if (rc) {
        free(p);
        return rc;
    }
    sl_header h[] = {{"Authorization", s->ep.auth}};
    rc = sl_post_json(call, s->ep.url, &body, h, 1, s->c.timeout_ms, sl_embed_response_cap(p->nsent, s->dim),
                      on_response, p);
    if (rc != SL_PENDING) free(p);
    return rc;
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "embed-openai",
    .version = "1.0.0",
    .summary = "embedder through OpenAI's Embeddings API (and compatible servers)",
    .role = SL_ROLE_EMBEDDER,
    .bottleneck = SL_IO,
    .flags = SL_PLUGIN_SEND_OFF_LOOP, /* embed builds its request on a pool thread */
    .options = options,
    .config_size = sizeof(embed_openai_config),
    .batch_size = 128,
    .init = init,
    .fini = fini,
    .embed = embed,
};

SL_PLUGIN_EXPORT(desc)
