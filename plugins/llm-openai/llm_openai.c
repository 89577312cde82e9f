/* llm_openai.c - an LLM through OpenAI's Chat Completions API, and every
 * server that speaks it (vLLM, llama.cpp's server, LiteLLM, Azure's
 * OpenAI-compatible endpoints, ...).
 *
 * One prompt is one request: POST {base_url}/chat/completions with the prompt
 * as the single user message,
 *     {"model": M, "messages": [{"role": "user", "content": PROMPT}],
 *      "max_tokens": N, "temperature": T}
 * and the answer is choices[0].message.content; usage.prompt_tokens and
 * usage.completion_tokens are reported with sl_call_usage. The key goes in
 * "Authorization: Bearer KEY" (no header when api_key is empty, for local
 * servers). The request is sent from the loop thread with the SDK's
 * asynchronous HTTP client; the call completes in its callback, which runs
 * on a pool thread and touches only its own call.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <sluice/sluice.h>

#include <sluice/remote.h>

typedef struct llm_openai_config {
    const char *base_url;
    const char *api_key;
    const char *model;
    int64_t timeout_ms;
    int64_t max_tokens;
    double temperature;
} llm_openai_config;

typedef struct llm_openai {
    llm_openai_config c;
    sl_endpoint ep;      /* {base_url}/chat/completions, and the key header's value */
    sl_json_frame frame; /* the request around its prompt */
} llm_openai;

/* One completion in flight. */
typedef struct pending {
    sl_call *call;
    sl_completion *out;
} pending;

static const sl_option options[] = {
    {.name = "base_url",
     .type = SL_OPT_STRING,
     .def = "https://api.openai.com/v1",
     .help = "API root; /chat/completions is appended",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(llm_openai_config, base_url)},
    {.name = "api_key",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "sent as 'Authorization: Bearer KEY'; empty: no auth header (local servers)",
     .flags = SL_OPT_SECRET,
     .offset = offsetof(llm_openai_config, api_key)},
    {.name = "model",
     .type = SL_OPT_STRING,
     .def = "gpt-4o-mini",
     .help = "the model that answers",
     .offset = offsetof(llm_openai_config, model)},
    {.name = "timeout",
     .type = SL_OPT_DURATION,
     .def = "120s",
     .help = "longest wait for one answer",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(llm_openai_config, timeout_ms)},
    {.name = "max_tokens",
     .type = SL_OPT_INT,
     .def = "512",
     .help = "most tokens in an answer (1..1000000)",
     .offset = offsetof(llm_openai_config, max_tokens)},
    {.name = "temperature",
     .type = SL_OPT_DOUBLE,
     .def = "0",
     .help = "sampling temperature, 0..2 (0: the most repeatable answers)",
     .offset = offsetof(llm_openai_config, temperature)},
    {0},
};

static void fini(void *state) {
    llm_openai *s = state;
    if (!s) return;
    sl_endpoint_free(&s->ep);
    sl_json_frame_free(&s->frame);
    free(s);
}

static int init(sl_instance *inst, const void *config, void **state) {
    const llm_openai_config *c = config;
    int rc = sl_remote_check_options(inst, c->base_url, c->model, c->timeout_ms);
    if (!rc) rc = sl_check_llm_options(inst, c->max_tokens, c->temperature, 2);
    if (rc) return rc;
    llm_openai *s = calloc(1, sizeof *s);
    if (!s) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    s->c = *c;
    rc = sl_endpoint_init(inst, &s->ep, c->base_url, "chat/completions", "Bearer ", c->api_key);
    if (rc) {
        free(s);
        return rc;
    }
    rc = sl_json_frame_init(
        inst, &s->frame, json_pack("{s:s}", "model", c->model),
        ",\"messages\":[{\"role\":\"user\",\"content\":", "}]",
        json_pack("{s:I, s:f}", "max_tokens", (json_int_t)c->max_tokens, "temperature", c->temperature));
    if (rc) {
        fini(s);
        return rc;
    }
    sl_instance_set_model(inst, c->model);
    *state = s;
    return 0;
}

/* The answer out of a chat completion. */
static int answer(sl_call *call, const llm_openai *s, json_t *root, sl_completion *out) {
    json_t *choices = json_object_get(root, "choices");
    json_t *msg = json_object_get(json_array_get(choices, 0), "message");
    json_t *content = json_object_get(msg, "content");
    json_t *usage = json_object_get(root, "usage");
    sl_call_usage(call, sl_json_count(usage, "prompt_tokens"), sl_json_count(usage, "completion_tokens"));
    if (json_is_string(content)) {
        int rc = sl_completion_set(out, json_string_value(content), json_string_length(content));
        return rc ? sl_fail(call, rc, "out of memory for a %zu-byte answer", json_string_length(content)) : 0;
    }
    json_t *refusal = json_object_get(msg, "refusal");
    if (json_is_string(refusal))
        return sl_fail(call, SL_EBADINPUT, "OpenAI: model %s refused the prompt: %.300s", s->c.model,
                       json_string_value(refusal));
    if (!json_is_array(choices) || !json_array_size(choices))
        return sl_fail(call, SL_ERETRY, "OpenAI: the response has no choices");
    return sl_fail(call, SL_ERETRY, "OpenAI: the response has no choices[0].message.content string");
}

static void on_response(sl_http *req, void *arg) {
    pending *p = arg;
    sl_call *call = p->call;
    const llm_openai *s = sl_call_state(call);
    json_t *root;
    int rc = sl_json_response(call, req, "OpenAI", s->ep.url, s->c.model, &root);
    if (!rc) rc = answer(call, s, root, p->out);
    json_decref(root);
    sl_http_free(req);
    free(p);
    sl_call_done(call, rc);
}

static int complete(sl_call *call, const sl_text *prompt, sl_completion *out) {
    const llm_openai *s = sl_call_state(call);
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

/* check --connect: the model list, with the key (ABI 1.3). */
static int probe(sl_call *call) {
    const llm_openai *s = sl_call_state(call);
    sl_header h[] = {{"Authorization", s->ep.auth}};
    return sl_probe_models(call, s->c.base_url, "models", h, 1, s->c.timeout_ms, "OpenAI", s->c.model, "data",
                           "id");
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "llm-openai",
    .version = "1.0.0",
    .summary = "LLM through OpenAI's Chat Completions API (and compatible servers)",
    .role = SL_ROLE_LLM,
    .bottleneck = SL_IO,
    .flags = SL_PLUGIN_SEND_OFF_LOOP,
    .options = options,
    .config_size = sizeof(llm_openai_config),
    .init = init,
    .fini = fini,
    .complete = complete,
    .probe = probe,
};

SL_PLUGIN_EXPORT(desc)
