/* embed_example.c - example-embed, an out-of-tree io embedder for any server
 * that speaks the OpenAI-compatible embeddings API with plain float arrays
 * (vLLM, llama.cpp's server, LM Studio, text-embeddings-inference's
 * /v1 routes, LiteLLM, ...).
 *
 * It is the io counterpart of parse_csv.c and the walk-through of
 * share/doc/sluice/docs/plugin-guide.md: every step that does not depend on the
 * wire format comes from the SDK's <sluice/remote.h>, the same helpers the
 * in-tree providers are built on.
 *
 *   POST {base_url}/embeddings
 *     {"model": M, "input": [TEXT, ...], "encoding_format": "float"}
 *   200 {"data": [{"index": 0, "embedding": [0.1, ...]}, ...],
 *        "usage": {"prompt_tokens": N}}
 *
 * The call returns SL_PENDING at once; the answer is decoded on a pool
 * thread (sl_post_json asks for that) and handed back with sl_call_done.
 * embed itself runs on a pool thread too (SL_PLUGIN_SEND_OFF_LOOP, ABI
 * 1.7): it only builds the request from the SDK's helpers and sends it,
 * so the loop thread, which every transfer waits on, never escapes a
 * batch of texts into JSON.
 * Wrong dimensions stop the run (the config is wrong); a garbled 2xx body
 * is retried by the core a bounded number of times; 401/403 are fatal;
 * 429 and 5xx are retried with the server's Retry-After.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <sluice/sluice.h>

#include <sluice/remote.h> /* after sluice.h; needs jansson */

typedef struct embed_config {
    const char *base_url;
    const char *api_key;
    const char *model;
    int64_t dimension;
    int64_t timeout_ms;
} embed_config;

static const sl_option options[] = {
    {.name = "base_url",
     .type = SL_OPT_STRING,
     .help = "the server's API root, e.g. http://localhost:8000/v1; /embeddings is appended",
     .flags = SL_OPT_REQUIRED | SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(embed_config, base_url)},
    {.name = "api_key",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "sent as 'Authorization: Bearer KEY'; empty: no header",
     .flags = SL_OPT_SECRET,
     .offset = offsetof(embed_config, api_key)},
    {.name = "model",
     .type = SL_OPT_STRING,
     .help = "the embedding model the server knows",
     .flags = SL_OPT_REQUIRED,
     .offset = offsetof(embed_config, model)},
    {.name = "dimension",
     .type = SL_OPT_INT,
     .help = "size of the model's vectors; every answer is checked",
     .flags = SL_OPT_REQUIRED,
     .offset = offsetof(embed_config, dimension)},
    {.name = "timeout",
     .type = SL_OPT_DURATION,
     .def = "60s",
     .help = "longest wait for one batch",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(embed_config, timeout_ms)},
    {0},
};

/* What init makes once and every call reads (never writes: calls run at
 * once on the loop and their answers on pool threads). */
typedef struct embedder {
    embed_config c;
    uint32_t dim;
    sl_endpoint ep;      /* {base_url}/embeddings and the "Bearer KEY" value */
    sl_json_frame frame; /* {"model":M,"input":[ ... ],"encoding_format":"float"} */
} embedder;

/* One batch in flight: the k-th text sent is texts[sent[k]], and its vector
 * goes to out + sent[k] * dim. */
typedef struct pending {
    sl_call *call;
    float *out;
    size_t nsent;
    size_t sent[];
} pending;

static void fini(void *state) {
    embedder *s = state;
    if (!s) return;
    sl_endpoint_free(&s->ep); /* wipes the key */
    sl_json_frame_free(&s->frame);
    free(s);
}

static int init(sl_instance *inst, const void *config, void **state) {
    const embed_config *c = config;
    int rc = sl_remote_check_options(inst, c->base_url, c->model, c->timeout_ms);
    if (!rc) rc = sl_check_dimension(inst, c->dimension);
    if (rc) return rc;
    embedder *s = calloc(1, sizeof *s);
    if (!s) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    s->c = *c;
    s->dim = (uint32_t)c->dimension;
    rc = sl_endpoint_init(inst, &s->ep, c->base_url, "embeddings", "Bearer ", c->api_key);
    if (!rc)
        rc = sl_json_frame_init(inst, &s->frame, json_pack("{s:s}", "model", c->model), ",\"input\":[", "]",
                                json_pack("{s:s}", "encoding_format", "float"));
    if (rc) {
        fini(s);
        return rc;
    }
    sl_instance_set_dimension(inst, s->dim); /* the sink sizes its vectors from this */
    sl_instance_set_model(inst, c->model);   /* shown in the report */
    *state = s;
    return 0;
}

/* The "data" array into out, each item placed by its "index". */
static int vectors(sl_call *call, const embedder *s, json_t *root, pending *p) {
    json_t *data = json_object_get(root, "data");
    if (!json_is_array(data) || json_array_size(data) != p->nsent)
        return sl_fail(call, SL_ERETRY, "example-embed: expected %zu embeddings in \"data\", got %s",
                       p->nsent, json_is_array(data) ? "another number" : "none");
    size_t k;
    json_t *item;
    json_array_foreach(data, k, item) {
        json_t *index = json_object_get(item, "index");
        json_int_t at = json_is_integer(index) ? json_integer_value(index) : (json_int_t)k;
        if (at < 0 || (size_t)at >= p->nsent)
            return sl_fail(call, SL_ERETRY, "example-embed: embedding %zu has index %lld of %zu", k,
                           (long long)at, p->nsent);
        int rc = sl_vector_json(call, json_object_get(item, "embedding"), p->out + p->sent[at] * s->dim,
                                s->dim, "example-embed", s->c.model, (size_t)at);
        if (rc) return rc;
    }
    sl_call_usage(call, sl_json_count(json_object_get(root, "usage"), "prompt_tokens"), 0);
    return 0;
}

/* Runs once per request, on a pool thread during a run: decode, answer. */
static void on_response(sl_http *req, void *arg) {
    pending *p = arg;
    sl_call *call = p->call;
    const embedder *s = sl_call_state(call);
    json_t *root;
    int rc = sl_json_response(call, req, "example-embed", s->ep.url, s->c.model, &root);
    if (!rc) rc = vectors(call, s, root, p);
    json_decref(root);
    sl_http_free(req);
    free(p);
    sl_call_done(call, rc);
}

static int embed(sl_call *call, const sl_text *texts, size_t n, float *out) {
    const embedder *s = sl_call_state(call);
    pending *p = malloc(sizeof *p + n * sizeof p->sent[0]);
    if (!p) return sl_fail(call, SL_ENOMEM, "out of memory for a batch of %zu texts", n);
    *p = (pending){.call = call, .out = out};
    sl_nonempty_texts(texts, n, out, s->dim, p->sent, &p->nsent); /* empty texts: zero vectors */
    if (!p->nsent) {
        free(p);
        return 0;
    }
    /* texts are only valid until this function returns: the body copies them */
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
    .name = "example-embed",
    .version = "1.0.0",
    .summary = "embedder for OpenAI-compatible /embeddings servers (float arrays)",
    .role = SL_ROLE_EMBEDDER,
    .bottleneck = SL_IO,
    .flags = SL_PLUGIN_SEND_OFF_LOOP, /* embed builds its request on a pool thread */
    .options = options,
    .config_size = sizeof(embed_config),
    .batch_size = 32,
    .init = init,
    .fini = fini,
    .embed = embed,
};

SL_PLUGIN_EXPORT(desc)
