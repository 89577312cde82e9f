/* embed_ollama.c - an embedder served by Ollama (a local or remote
 * `ollama serve`).
 *
 * One batch is one request: POST {base_url}/api/embed with
 *     {"model": M, "input": [TEXT, ...] [, "dimensions": D]}
 * and the answer's "embeddings" (an array of arrays of numbers, in input
 * order) are the vectors; prompt_eval_count is reported with sl_call_usage.
 * Ollama needs no key; when api_key is set it goes in "Authorization: Bearer
 * KEY" (Ollama's hosted API, or a proxy in front of a server).
 *
 * The vector size must be known at init, before any request, so `dimension`
 * is required and every answer is checked against it: another size stops the
 * run ("model X returned 768-dimensional vectors; the config says 384").
 * With `shorten`, `dimension` is sent as "dimensions" (servers and models
 * that support truncating). Empty texts are not sent and get the zero vector.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include <sluice/remote.h>

typedef struct embed_ollama_config {
    const char *base_url;
    const char *api_key;
    const char *model;
    int64_t dimension;
    bool shorten;
    int64_t timeout_ms;
} embed_ollama_config;

typedef struct embed_ollama {
    embed_ollama_config c;
    uint32_t dim;
    sl_endpoint ep;      /* {base_url}/api/embed, and the key header's value */
    sl_json_frame frame; /* the request around its "input" texts */
} embed_ollama;

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
     .def = "http://localhost:11434",
     .help = "the Ollama server; /api/embed is appended",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(embed_ollama_config, base_url)},
    {.name = "api_key",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "sent as 'Authorization: Bearer KEY'; empty (a local server): no auth header",
     .flags = SL_OPT_SECRET,
     .offset = offsetof(embed_ollama_config, api_key)},
    {.name = "model",
     .type = SL_OPT_STRING,
     .def = "nomic-embed-text",
     .help = "the embedding model (pulled on the server)",
     .offset = offsetof(embed_ollama_config, model)},
    {.name = "dimension",
     .type = SL_OPT_INT,
     .help = "size of the model's vectors (1..65536; nomic-embed-text: 768); every answer is checked",
     .flags = SL_OPT_REQUIRED,
     .offset = offsetof(embed_ollama_config, dimension)},
    {.name = "shorten",
     .type = SL_OPT_BOOL,
     .def = "false",
     .help = "ask for `dimension`-sized vectors (sends \"dimensions\")",
     .offset = offsetof(embed_ollama_config, shorten)},
    {.name = "timeout",
     .type = SL_OPT_DURATION,
     .def = "120s",
     .help = "longest wait for one batch (a cold model loads first)",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(embed_ollama_config, timeout_ms)},
    {0},
};

static void fini(void *state) {
    embed_ollama *s = state;
    if (!s) return;
    sl_endpoint_free(&s->ep);
    sl_json_frame_free(&s->frame);
    free(s);
}

static int init(sl_instance *inst, const void *config, void **state) {
    const embed_ollama_config *c = config;
    int rc = sl_remote_check_options(inst, c->base_url, c->model, c->timeout_ms);
    if (!rc) rc = sl_check_dimension(inst, c->dimension);
    if (rc) return rc;
    embed_ollama *s = calloc(1, sizeof *s);
    if (!s) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    s->c = *c;
    s->dim = (uint32_t)c->dimension;
    rc = sl_endpoint_init(inst, &s->ep, c->base_url, "api/embed", "Bearer ", c->api_key);
    if (rc) {
        free(s);
        return rc;
    }
    json_t *rest = c->shorten ? json_pack("{s:I}", "dimensions", (json_int_t)s->dim) : json_object();
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

static int vectors(sl_call *call, const embed_ollama *s, json_t *root, pending *p) {
    sl_call_usage(call, sl_json_count(root, "prompt_eval_count"), 0);
    json_t *embs = json_object_get(root, "embeddings");
    if (!json_is_array(embs)) return sl_fail(call, SL_ERETRY, "Ollama: the response has no embeddings array");
    if (json_array_size(embs) != p->nsent)
        return sl_fail(call, SL_ERETRY, "Ollama: model %s returned %zu embeddings for %zu texts", s->c.model,
                       json_array_size(embs), p->nsent);
    for (size_t k = 0; k < p->nsent; k++) {
        int rc = sl_vector_json(call, json_array_get(embs, k), p->out + p->sent[k] * s->dim, s->dim, "Ollama",
                                s->c.model, k);
        if (rc) return rc;
    }
    return 0;
}

static void on_response(sl_http *req, void *arg) {
    pending *p = arg;
    sl_call *call = p->call;
    const embed_ollama *s = sl_call_state(call);
    json_t *root;
    int rc = sl_json_response(call, req, "Ollama", s->ep.url, s->c.model, &root);
    if (!rc) rc = vectors(call, s, root, p);
    json_decref(root);
    sl_http_free(req);
    free(p);
    sl_call_done(call, rc);
}

static int embed(sl_call *call, const sl_text *texts, size_t n, float *out) {
    const embed_ollama *s = sl_call_state(call);
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
    .name = "embed-ollama",
    .version = "1.0.0",
    .summary = "embedder served by Ollama (/api/embed)",
    .role = SL_ROLE_EMBEDDER,
    .bottleneck = SL_IO,
    .flags = SL_PLUGIN_SEND_OFF_LOOP, /* embed builds its request on a pool thread */
    .options = options,
    .config_size = sizeof(embed_ollama_config),
    .batch_size = 32,
    .init = init,
    .fini = fini,
    .embed = embed,
};

SL_PLUGIN_EXPORT(desc)
