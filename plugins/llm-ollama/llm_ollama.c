/* llm_ollama.c - an LLM served by Ollama (a local or remote `ollama serve`).
 *
 * One prompt is one request: POST {base_url}/api/chat with the prompt as the
 * single user message and streaming off,
 *     {"model": M, "stream": false,
 *      "messages": [{"role": "user", "content": PROMPT}],
 *      "options": {"num_predict": N, "temperature": T}}
 * The answer is message.content; prompt_eval_count and eval_count are the
 * tokens reported with sl_call_usage. Ollama needs no key; when api_key is
 * set it goes in "Authorization: Bearer KEY" (Ollama's hosted API, or a
 * proxy in front of a server). A model that is not pulled answers 404, which
 * stops the run with Ollama's own message ("model 'x' not found"). The
 * request is sent from the loop thread with the SDK's asynchronous HTTP
 * client; the call completes in its callback, which runs on a pool thread
 * and touches only its own call.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <sluice/sluice.h>

#include <sluice/remote.h>

typedef struct llm_ollama_config {
    const char *base_url;
    const char *api_key;
    const char *model;
    int64_t timeout_ms;
    int64_t max_tokens;
    double temperature;
} llm_ollama_config;

typedef struct llm_ollama {
    llm_ollama_config c;
    sl_endpoint ep;      /* {base_url}/api/chat, and the key header's value */
    sl_json_frame frame; /* the request around its prompt */
} llm_ollama;

typedef struct pending {
    sl_call *call;
    sl_completion *out;
} pending;

static const sl_option options[] = {
    {.name = "base_url",
     .type = SL_OPT_STRING,
     .def = "http://localhost:11434",
     .help = "the Ollama server; /api/chat is appended",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(llm_ollama_config, base_url)},
    {.name = "api_key",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "sent as 'Authorization: Bearer KEY'; empty (a local server): no auth header",
     .flags = SL_OPT_SECRET,
     .offset = offsetof(llm_ollama_config, api_key)},
    {.name = "model",
     .type = SL_OPT_STRING,
     .def = "llama3.1",
     .help = "the model that answers (pulled on the server)",
     .offset = offsetof(llm_ollama_config, model)},
    {.name = "timeout",
     .type = SL_OPT_DURATION,
     .def = "120s",
     .help = "longest wait for one answer (a cold model loads first)",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(llm_ollama_config, timeout_ms)},
    {.name = "max_tokens",
     .type = SL_OPT_INT,
     .def = "512",
     .help = "most tokens in an answer, sent as num_predict (1..1000000)",
     .offset = offsetof(llm_ollama_config, max_tokens)},
    {.name = "temperature",
     .type = SL_OPT_DOUBLE,
     .def = "0",
     .help = "sampling temperature, 0..2 (0: the most repeatable answers)",
     .offset = offsetof(llm_ollama_config, temperature)},
    {0},
};

static void fini(void *state) {
    llm_ollama *s = state;
    if (!s) return;
    sl_endpoint_free(&s->ep);
    sl_json_frame_free(&s->frame);
    free(s);
}

static int init(sl_instance *inst, const void *config, void **state) {
    const llm_ollama_config *c = config;
    int rc = sl_remote_check_options(inst, c->base_url, c->model, c->timeout_ms);
    if (!rc) rc = sl_check_llm_options(inst, c->max_tokens, c->temperature, 2);
    if (rc) return rc;
    llm_ollama *s = calloc(1, sizeof *s);
    if (!s) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    s->c = *c;
    rc = sl_endpoint_init(inst, &s->ep, c->base_url, "api/chat", "Bearer ", c->api_key);
    if (rc) {
        free(s);
        return rc;
    }
    rc = sl_json_frame_init(inst, &s->frame, json_pack("{s:s, s:b}", "model", c->model, "stream", 0),
                            ",\"messages\":[{\"role\":\"user\",\"content\":", "}]",
                            json_pack("{s:{s:I, s:f}}", "options", "num_predict", (json_int_t)c->max_tokens,
                                      "temperature", c->temperature));
    if (rc) {
        fini(s);
        return rc;
    }
    sl_instance_set_model(inst, c->model);
    *state = s;
    return 0;
}

static int answer(sl_call *call, json_t *root, sl_completion *out) {
    json_t *content = json_object_get(json_object_get(root, "message"), "content");
    sl_call_usage(call, sl_json_count(root, "prompt_eval_count"), sl_json_count(root, "eval_count"));
    if (!json_is_string(content))
        return sl_fail(call, SL_ERETRY, "Ollama: the response has no message.content string");
    int rc = sl_completion_set(out, json_string_value(content), json_string_length(content));
    return rc ? sl_fail(call, rc, "out of memory for a %zu-byte answer", json_string_length(content)) : 0;
}

static void on_response(sl_http *req, void *arg) {
    pending *p = arg;
    sl_call *call = p->call;
    const llm_ollama *s = sl_call_state(call);
    json_t *root;
    int rc = sl_json_response(call, req, "Ollama", s->ep.url, s->c.model, &root);
    if (!rc) rc = answer(call, root, p->out);
    json_decref(root);
    sl_http_free(req);
    free(p);
    sl_call_done(call, rc);
}

static int complete(sl_call *call, const sl_text *prompt, sl_completion *out) {
    const llm_ollama *s = sl_call_state(call);
    sl_buf body = {0};
    int rc = sl_json_request(call, &s->frame, prompt, NULL, 1, "the prompt", &body);
    if (rc) return rc;
    pending *p = malloc(sizeof *p);
    if (!p) {
        sl_buf_free(&body);
        return sl_fail(call, SL_ENOMEM, "out of memory");
    }
    *p = (pending){call, out};
    sl_header h[] = {{"Authorization", s->ep.auth}};
    rc = sl_post_json(call, s->ep.url, &body, h, 1, s->c.timeout_ms, sl_llm_response_cap(s->c.max_tokens),
                      on_response, p);
    if (rc != SL_PENDING) free(p);
    return rc;
}

/* check --connect: the local model list, /api/tags (ABI 1.3). */
static int probe(sl_call *call) {
    const llm_ollama *s = sl_call_state(call);
    sl_header h[] = {{"Authorization", s->ep.auth}};
    return sl_probe_models(call, s->c.base_url, "api/tags", h, 1, s->c.timeout_ms, "Ollama", s->c.model,
                           "models", "name");
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "llm-ollama",
    .version = "1.0.0",
    .summary = "LLM served by Ollama (/api/chat)",
    .role = SL_ROLE_LLM,
    .bottleneck = SL_IO,
    .flags = SL_PLUGIN_SEND_OFF_LOOP,
    .options = options,
    .config_size = sizeof(llm_ollama_config),
    .init = init,
    .fini = fini,
    .complete = complete,
    .probe = probe,
};

SL_PLUGIN_EXPORT(desc)
