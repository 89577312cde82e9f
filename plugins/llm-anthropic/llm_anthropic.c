/* llm_anthropic.c - an LLM through Anthropic's Messages API.
 *
 * One prompt is one request: POST {base_url}/messages with the headers
 * "x-api-key: KEY" (none when api_key is empty, for a gateway that adds it)
 * and "anthropic-version: 2023-06-01", and the prompt as the single user
 * message,
 *     {"model": M, "max_tokens": N, "temperature": T,
 *      "messages": [{"role": "user", "content": PROMPT}]}
 * The answer is the text of the "text" blocks of "content", joined in order;
 * usage.input_tokens and usage.output_tokens are reported with sl_call_usage.
 * Overload (529) and rate limits (429) are retryable through the status
 * verdict, with Retry-After honoured. The request is sent from the loop
 * thread with the SDK's asynchronous HTTP client; the call completes in its
 * callback, which runs on a pool thread and touches only its own call.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include <sluice/remote.h>

#define ANTHROPIC_VERSION "2023-06-01"

typedef struct llm_anthropic_config {
    const char *base_url;
    const char *api_key;
    const char *model;
    int64_t timeout_ms;
    int64_t max_tokens;
    double temperature;
} llm_anthropic_config;

typedef struct llm_anthropic {
    llm_anthropic_config c;
    sl_endpoint ep;      /* {base_url}/messages, and the key header's value */
    sl_json_frame frame; /* the request around its prompt */
} llm_anthropic;

typedef struct pending {
    sl_call *call;
    sl_completion *out;
} pending;

static const sl_option options[] = {
    {.name = "base_url",
     .type = SL_OPT_STRING,
     .def = "https://api.anthropic.com/v1",
     .help = "API root; /messages is appended",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(llm_anthropic_config, base_url)},
    {.name = "api_key",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "sent as 'x-api-key: KEY'; empty: no key header (a gateway adds it)",
     .flags = SL_OPT_SECRET,
     .offset = offsetof(llm_anthropic_config, api_key)},
    {.name = "model",
     .type = SL_OPT_STRING,
     .def = "claude-3-5-haiku-latest",
     .help = "the model that answers",
     .offset = offsetof(llm_anthropic_config, model)},
    {.name = "timeout",
     .type = SL_OPT_DURATION,
     .def = "120s",
     .help = "longest wait for one answer",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(llm_anthropic_config, timeout_ms)},
    {.name = "max_tokens",
     .type = SL_OPT_INT,
     .def = "512",
     .help = "most tokens in an answer (1..1000000)",
     .offset = offsetof(llm_anthropic_config, max_tokens)},
    {.name = "temperature",
     .type = SL_OPT_DOUBLE,
     .def = "0",
     .help = "sampling temperature, 0..1 (0: the most repeatable answers)",
     .offset = offsetof(llm_anthropic_config, temperature)},
    {0},
};

static void fini(void *state) {
    llm_anthropic *s = state;
    if (!s) return;
    sl_endpoint_free(&s->ep);
    sl_json_frame_free(&s->frame);
    free(s);
}

static int init(sl_instance *inst, const void *config, void **state) {
    const llm_anthropic_config *c = config;
    int rc = sl_remote_check_options(inst, c->base_url, c->model, c->timeout_ms);
    if (!rc) rc = sl_check_llm_options(inst, c->max_tokens, c->temperature, 1);
    if (rc) return rc;
    llm_anthropic *s = calloc(1, sizeof *s);
    if (!s) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    s->c = *c;
    rc = sl_endpoint_init(inst, &s->ep, c->base_url, "messages", "", c->api_key);
    if (rc) {
        free(s);
        return rc;
    }
    rc = sl_json_frame_init(inst, &s->frame,
                            json_pack("{s:s, s:I, s:f}", "model", c->model, "max_tokens",
                                      (json_int_t)c->max_tokens, "temperature", c->temperature),
                            ",\"messages\":[{\"role\":\"user\",\"content\":", "}]", json_object());
    if (rc) {
        fini(s);
        return rc;
    }
    sl_instance_set_model(inst, c->model);
    *state = s;
    return 0;
}

/* The answer: every text block of "content", in order. Other blocks
 * (thinking, tool use) are not part of a summary. */
static int answer(sl_call *call, json_t *root, sl_completion *out) {
    json_t *content = json_object_get(root, "content");
    json_t *usage = json_object_get(root, "usage");
    sl_call_usage(call, sl_json_count(usage, "input_tokens"), sl_json_count(usage, "output_tokens"));
    if (!json_is_array(content))
        return sl_fail(call, SL_ERETRY, "Anthropic: the response has no content array");
    size_t total = 0, i;
    json_t *block;
    json_array_foreach(content, i, block) {
        json_t *type = json_object_get(block, "type"), *text = json_object_get(block, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0) continue;
        if (!json_is_string(text))
            return sl_fail(call, SL_ERETRY, "Anthropic: content block %zu is text without a text string", i);
        total += json_string_length(text);
    }
    char *joined = malloc(total + 1);
    if (!joined) return sl_fail(call, SL_ENOMEM, "out of memory for a %zu-byte answer", total);
    size_t at = 0;
    json_array_foreach(content, i, block) {
        json_t *type = json_object_get(block, "type"), *text = json_object_get(block, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0) continue;
        memcpy(joined + at, json_string_value(text), json_string_length(text));
        at += json_string_length(text);
    }
    int rc = sl_completion_set(out, joined, total);
    free(joined);
    return rc ? sl_fail(call, rc, "out of memory for a %zu-byte answer", total) : 0;
}

static void on_response(sl_http *req, void *arg) {
    pending *p = arg;
    sl_call *call = p->call;
    const llm_anthropic *s = sl_call_state(call);
    json_t *root;
    int rc = sl_json_response(call, req, "Anthropic", s->ep.url, s->c.model, &root);
    if (!rc) rc = answer(call, root, p->out);
    json_decref(root);
    sl_http_free(req);
    free(p);
    sl_call_done(call, rc);
}

static int complete(sl_call *call, const sl_text *prompt, sl_completion *out) {
    const llm_anthropic *s = sl_call_state(call);
    sl_buf body = {0};
    int rc = sl_json_request(call, &s->frame, prompt, NULL, 1, "the prompt", &body);
    if (rc) return rc;
    pending *p = malloc(sizeof *p);
    if (!p) {
        sl_buf_free(&body);
        return sl_fail(call, SL_ENOMEM, "out of memory");
    }
    *p = (pending){call, out};
    sl_header h[] = {{"x-api-key", s->ep.auth}, {"anthropic-version", ANTHROPIC_VERSION}};
    rc = sl_post_json(call, s->ep.url, &body, h, 2, s->c.timeout_ms, sl_llm_response_cap(s->c.max_tokens),
                      on_response, p);
    if (rc != SL_PENDING) free(p);
    return rc;
}

/* check --connect: the model list, with the key (ABI 1.3). */
static int probe(sl_call *call) {
    const llm_anthropic *s = sl_call_state(call);
    sl_header h[] = {{"x-api-key", s->ep.auth}, {"anthropic-version", ANTHROPIC_VERSION}};
    return sl_probe_models(call, s->c.base_url, "models", h, 2, s->c.timeout_ms, "Anthropic", s->c.model,
                           "data", "id");
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "llm-anthropic",
    .version = "1.0.0",
    .summary = "LLM through Anthropic's Messages API",
    .role = SL_ROLE_LLM,
    .bottleneck = SL_IO,
    .flags = SL_PLUGIN_SEND_OFF_LOOP,
    .options = options,
    .config_size = sizeof(llm_anthropic_config),
    .init = init,
    .fini = fini,
    .complete = complete,
    .probe = probe,
};

SL_PLUGIN_EXPORT(desc)
