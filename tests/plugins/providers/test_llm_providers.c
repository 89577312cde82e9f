/* test_llm_providers.c - llm-openai, llm-anthropic and llm-ollama against the
 * fake provider over real HTTP, loaded and called as a run does: each sends
 * the prompt as its API's single user message with its API's auth header,
 * puts the answer in the completion, reports the tokens the response
 * counted, passes max_tokens on, and refuses bad options at init. The
 * shapes of the answer the fake never sends (refusals, blocks, empty
 * content) are checked against the canned server.
 */
#include "harness.h"

static fake fk;

/* 17 words; the fake answers "Summary:" and the first 12. */
#define PROMPT "The quick brown fox jumps over the lazy dog and then runs far away into the forest"
#define ANSWER "Summary: The quick brown fox jumps over the lazy dog and then runs"

typedef struct llm {
    const char *plugin;
    const char *base_suffix; /* what base_url adds to http://127.0.0.1:PORT */
} llm;

static const llm llms[] = {
    {"llm-openai", "/v1"},
    {"llm-anthropic", "/v1"},
    {"llm-ollama", ""},
};

static sl_instance *llm_new(const llm *l, const char *key, const char *max_tokens) {
    return inst_new(l->plugin, "base_url", url_of(fk.port, l->base_suffix), "api_key", key, "max_tokens",
                    max_tokens, NULL);
}

static void test_descriptors_declare_io_llms(void) {
    for (size_t i = 0; i < 3; i++) {
        sl_instance *inst = llm_new(&llms[i], GOOD_KEY, "512");
        CHECK(inst != NULL);
        if (!inst) continue;
        CHECK_STR(inst->desc->name, llms[i].plugin);
        CHECK_INT(inst->desc->role, SL_ROLE_LLM);
        CHECK_INT(inst->desc->bottleneck, SL_IO);
        CHECK(inst->desc->complete != NULL);
        CHECK(inst->model != NULL && inst->model[0]);
        sl_instance_free(inst);
    }
}

/* The answer is the fake's summary of the prompt, and the tokens are what
 * the response's usage fields said (the fake counts words * 4 / 3). */
static void test_prompt_round_trips_with_usage(void) {
    for (size_t i = 0; i < 3; i++) {
        sl_instance *inst = llm_new(&llms[i], GOOD_KEY, "512");
        CHECK(inst != NULL);
        if (!inst) continue;
        long long before = fake_requests(&fk);
        sl_completion out = {0};
        sl_call call;
        int rc = complete(inst, PROMPT, strlen(PROMPT), &out, &call);
        if (rc) fprintf(stderr, "%s: %s\n", llms[i].plugin, call.msg);
        CHECK_INT(rc, 0);
        CHECK_STR(out.text, ANSWER);
        CHECK_INT(out.len, strlen(ANSWER));
        CHECK_INT(call.tokens_in, tokens_of_words(17));
        CHECK_INT(call.tokens_out, tokens_of_words(13)); /* "Summary:" and 12 words */
        CHECK_INT(fake_requests(&fk), before + 1);
        free(out.text);
        sl_instance_free(inst);
    }
}

/* max_tokens reaches the provider (max_tokens; Ollama's options.num_predict):
 * the fake cuts its answer to fit. 5 tokens hold 3 words. */
static void test_max_tokens_reaches_provider(void) {
    for (size_t i = 0; i < 3; i++) {
        sl_instance *inst = llm_new(&llms[i], GOOD_KEY, "5");
        CHECK(inst != NULL);
        if (!inst) continue;
        sl_completion out = {0};
        sl_call call;
        CHECK_INT(complete(inst, PROMPT, strlen(PROMPT), &out, &call), 0);
        CHECK_STR(out.text, "Summary: The quick");
        CHECK_INT(call.tokens_out, tokens_of_words(3));
        free(out.text);
        sl_instance_free(inst);
    }
}

/* Quotes, newlines, control characters and UTF-8 survive the JSON round
 * trip (the fake echoes the first words, whitespace-separated). */
static void test_prompt_text_is_escaped(void) {
    const char *prompt = "\"quoted\"\tback\\slash\nnaïve→東京 \x01"
                         "ctl";
    for (size_t i = 0; i < 3; i++) {
        sl_instance *inst = llm_new(&llms[i], GOOD_KEY, "512");
        CHECK(inst != NULL);
        if (!inst) continue;
        sl_completion out = {0};
        sl_call call;
        CHECK_INT(complete(inst, prompt, strlen(prompt), &out, &call), 0);
        CHECK_STR(out.text, "Summary: \"quoted\" back\\slash naïve→東京 \x01"
                            "ctl");
        free(out.text);
        sl_instance_free(inst);
    }
}

/* A prompt JSON cannot carry fails as bad input before anything is sent. */
static void test_invalid_utf8_prompt_is_bad_input(void) {
    const char bad[] = "summarise \xff\xfe this";
    for (size_t i = 0; i < 3; i++) {
        sl_instance *inst = llm_new(&llms[i], GOOD_KEY, "512");
        CHECK(inst != NULL);
        if (!inst) continue;
        long long before = fake_requests(&fk);
        sl_completion out = {0};
        sl_call call;
        CHECK_INT(complete(inst, bad, sizeof bad - 1, &out, &call), SL_EBADINPUT);
        CHECK_CONTAINS(call.msg, "UTF-8");
        CHECK_CONTAINS(call.msg, "byte 10");
        CHECK(out.text == NULL);
        CHECK_INT(fake_requests(&fk), before);
        sl_instance_free(inst);
    }
}

/* Values the option parser accepts but init refuses, naming the option. */
static void expect_init_refused(const char *plugin, const char *key, const char *value) {
    sl_instance *inst = inst_new(plugin, key, value, NULL);
    CHECK(inst == NULL);
    char quoted[64];
    snprintf(quoted, sizeof quoted, "'%s'", key);
    CHECK_CONTAINS(sl_ctx_errmsg(h_ctx), "init failed");
    CHECK_CONTAINS(sl_ctx_errmsg(h_ctx), quoted);
    sl_instance_free(inst);
}

static void test_bad_options_refused_at_init(void) {
    for (size_t i = 0; i < 3; i++) {
        expect_init_refused(llms[i].plugin, "max_tokens", "0");
        expect_init_refused(llms[i].plugin, "temperature", "-0.5");
        expect_init_refused(llms[i].plugin, "temperature", "3");
        expect_init_refused(llms[i].plugin, "model", "");
        expect_init_refused(llms[i].plugin, "base_url", "ftp://example.com");
        expect_init_refused(llms[i].plugin, "timeout", "0s");
    }
    expect_init_refused("llm-anthropic", "temperature", "1.5"); /* Anthropic: 0..1 */
    /* the defaults are valid */
    for (size_t i = 0; i < 3; i++) {
        sl_instance *inst = inst_new(llms[i].plugin, NULL);
        CHECK(inst != NULL);
        sl_instance_free(inst);
    }
}

/* --- against the canned server: what the plugins send, and answers the
 * fake never gives --- */

static sl_instance *canned_llm(const char *plugin, const char *key) {
    const char *suffix = strcmp(plugin, "llm-ollama") == 0 ? "" : "/v1";
    return inst_new(plugin, "base_url", url_of(h_canned.port, suffix), "api_key", key, NULL);
}

static int canned_complete(sl_instance *inst, sl_completion *out, sl_call *call) {
    return complete(inst, "hello", 5, out, call);
}

/* The request line, headers and JSON each API documents; no auth header
 * at all without a key. */
static void test_requests_follow_each_wire_format(void) {
    canned_set(200, "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"ok\"}}]}");
    sl_instance *inst = canned_llm("llm-openai", GOOD_KEY);
    sl_completion out = {0};
    sl_call call;
    CHECK_INT(canned_complete(inst, &out, &call), 0);
    char *req = canned_request();
    CHECK_CONTAINS(req, "POST /v1/chat/completions HTTP/1.1\r\n");
    CHECK_CONTAINS(req, "Authorization: Bearer " GOOD_KEY "\r\n");
    CHECK_CONTAINS(req, "\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]");
    CHECK_CONTAINS(req, "\"model\":\"gpt-4o-mini\"");
    CHECK_CONTAINS(req, "\"max_tokens\":512");
    free(req);
    free(out.text);
    sl_instance_free(inst);

    canned_set(200, "{\"content\":[{\"type\":\"text\",\"text\":\"ok\"}]}");
    inst = canned_llm("llm-anthropic", GOOD_KEY);
    out = (sl_completion){0};
    CHECK_INT(canned_complete(inst, &out, &call), 0);
    req = canned_request();
    CHECK_CONTAINS(req, "POST /v1/messages HTTP/1.1\r\n");
    CHECK_CONTAINS(req, "x-api-key: " GOOD_KEY "\r\n");
    CHECK_CONTAINS(req, "anthropic-version: 2023-06-01\r\n");
    CHECK(strcasestr(req, "Authorization:") == NULL);
    CHECK_CONTAINS(req, "\"model\":\"claude-3-5-haiku-latest\"");
    CHECK_CONTAINS(req, "\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]");
    free(req);
    free(out.text);
    sl_instance_free(inst);

    canned_set(200, "{\"message\":{\"role\":\"assistant\",\"content\":\"ok\"},\"done\":true}");
    inst = canned_llm("llm-ollama", "");
    out = (sl_completion){0};
    CHECK_INT(canned_complete(inst, &out, &call), 0);
    req = canned_request();
    CHECK_CONTAINS(req, "POST /api/chat HTTP/1.1\r\n");
    CHECK(strcasestr(req, "Authorization:") == NULL);
    CHECK_CONTAINS(req, "\"stream\":false");
    CHECK_CONTAINS(req, "\"num_predict\":512");
    CHECK_CONTAINS(req, "\"model\":\"llama3.1\"");
    free(req);
    free(out.text);
    sl_instance_free(inst);

    inst = canned_llm("llm-openai", "");
    out = (sl_completion){0};
    canned_set(200, "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"ok\"}}]}");
    CHECK_INT(canned_complete(inst, &out, &call), 0);
    req = canned_request();
    CHECK(strcasestr(req, "Authorization:") == NULL);
    free(req);
    free(out.text);
    sl_instance_free(inst);
}

/* The whole body, byte for byte, as each API documents it (and as jansson
 * wrote it before the bodies were built by hand): a prompt with quotes, a
 * backslash, every kind of control character, a NUL, DEL, multi-byte UTF-8
 * and a slash, and a non-default temperature. */
static void test_request_bodies_are_exact(void) {
    static const char prompt[] =
        "say \"hi\"\\ \n\t\r\b\f \x01\x1f\x7f \xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e /\0z";
#define ESCAPED                                                                                              \
    "\"say \\\"hi\\\"\\\\ \\n\\t\\r\\b\\f \\u0001\\u001F\x7f \xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e "          \
    "/\\u0000z\""
    struct {
        const char *plugin, *answer, *body;
    } cases[] = {
        {"llm-openai", "{\"choices\":[{\"message\":{\"content\":\"ok\"}}]}",
         "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":" ESCAPED
         "}],\"max_tokens\":512,\"temperature\":0.69999999999999996}"},
        {"llm-anthropic", "{\"content\":[{\"type\":\"text\",\"text\":\"ok\"}]}",
         "{\"model\":\"claude-3-5-haiku-latest\",\"max_tokens\":512,\"temperature\":0.69999999999999996,"
         "\"messages\":[{\"role\":\"user\",\"content\":" ESCAPED "}]}"},
        {"llm-ollama", "{\"message\":{\"content\":\"ok\"}}",
         "{\"model\":\"llama3.1\",\"stream\":false,\"messages\":[{\"role\":\"user\",\"content\":" ESCAPED
         "}],\"options\":{\"num_predict\":512,\"temperature\":0.69999999999999996}}"},
    };
#undef ESCAPED
    for (size_t i = 0; i < 3; i++) {
        const char *suffix = strcmp(cases[i].plugin, "llm-ollama") == 0 ? "" : "/v1";
        sl_instance *inst =
            inst_new(cases[i].plugin, "base_url", url_of(h_canned.port, suffix), "temperature", "0.7", NULL);
        CHECK(inst != NULL);
        if (!inst) continue;
        canned_set(200, cases[i].answer);
        sl_completion out = {0};
        sl_call call;
        CHECK_INT(complete(inst, prompt, sizeof prompt - 1, &out, &call), 0);
        char *req = canned_request();
        char *body = strstr(req, "\r\n\r\n");
        CHECK_STR(body ? body + 4 : NULL, cases[i].body);
        free(req);
        free(out.text);
        sl_instance_free(inst);
    }
}

/* Anthropic: text blocks joined in order, other blocks skipped; an empty
 * content array is an empty answer, not a failure. */
static void test_anthropic_joins_text_blocks(void) {
    sl_instance *inst = canned_llm("llm-anthropic", "");
    sl_completion out = {0};
    sl_call call;
    canned_set(
        200,
        "{\"content\":[{\"type\":\"thinking\",\"thinking\":\"hmm\"},{\"type\":\"text\",\"text\":\"one \"},"
        "{\"type\":\"text\",\"text\":\"two\"}],\"usage\":{\"input_tokens\":7,\"output_tokens\":3}}");
    CHECK_INT(canned_complete(inst, &out, &call), 0);
    CHECK_STR(out.text, "one two");
    CHECK_INT(call.tokens_in, 7);
    CHECK_INT(call.tokens_out, 3);
    /* an escaped NUL is text like any other: the length says where it ends */
    canned_set(200, "{\"content\":[{\"type\":\"text\",\"text\":\"a\\u0000b\"}]}");
    CHECK_INT(canned_complete(inst, &out, &call), 0);
    CHECK_INT(out.len, 3);
    CHECK(out.text && memcmp(out.text, "a\0b", 4) == 0);
    canned_set(200, "{\"content\":[],\"stop_reason\":\"end_turn\"}");
    CHECK_INT(canned_complete(inst, &out, &call), 0);
    CHECK_STR(out.text, "");
    CHECK_INT(call.tokens_in, 0); /* no usage: nothing counted, no failure */
    free(out.text);
    sl_instance_free(inst);
}

/* OpenAI: a refusal fails the document as bad input, with the reason. */
static void test_openai_refusal_is_bad_input(void) {
    sl_instance *inst = canned_llm("llm-openai", "");
    sl_completion out = {0};
    sl_call call;
    canned_set(200, "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,"
                    "\"refusal\":\"I can't help with that.\"}}]}");
    CHECK_INT(canned_complete(inst, &out, &call), SL_EBADINPUT);
    CHECK_CONTAINS(call.msg, "refused");
    CHECK_CONTAINS(call.msg, "I can't help with that.");
    CHECK(out.text == NULL);
    sl_instance_free(inst);
}

int main(void) {
    harness_open();
    canned_start();
    const char *args[] = {"--api-key", GOOD_KEY, NULL};
    fk = fake_start(args);

    test_descriptors_declare_io_llms();
    test_prompt_round_trips_with_usage();
    test_max_tokens_reaches_provider();
    test_prompt_text_is_escaped();
    test_invalid_utf8_prompt_is_bad_input();
    test_bad_options_refused_at_init();
    test_requests_follow_each_wire_format();
    test_request_bodies_are_exact();
    test_anthropic_joins_text_blocks();
    test_openai_refusal_is_bad_input();

    fake_stop(&fk);
    canned_stop();
    harness_close();
    return check_done();
}
