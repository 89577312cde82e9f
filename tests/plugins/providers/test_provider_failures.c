/* test_provider_failures.c - how all five remote provider plugins fail, each
 * against the fake provider's real faults over real HTTP: a wrong key stops
 * the run and never shows in the message; a rate limit is retryable with
 * the server's Retry-After; 5xx, resets and truncated bodies are retryable;
 * a 200 with malformed JSON is retryable with a message saying so; an
 * unknown model stops the run with the server's explanation; a server that
 * is not there is retryable. After every fault the same instance works
 * again.
 */
#include "harness.h"

static fake fk;

typedef struct provider {
    const char *plugin;
    const char *base_suffix;
    const char *dim; /* embedders: the fake's native size for the default model */
} provider;

static const provider providers[] = {
    {"llm-openai", "/v1", NULL},     {"llm-anthropic", "/v1", NULL}, {"llm-ollama", "", NULL},
    {"embed-openai", "/v1", "1536"}, {"embed-ollama", "", "768"},
};
#define NPROVIDERS (sizeof providers / sizeof providers[0])

static sl_instance *provider_new(const provider *p, int port, const char *key, const char *model) {
    const char *base = url_of(port, p->base_suffix);
    if (p->dim && model)
        return inst_new(p->plugin, "base_url", base, "api_key", key, "dimension", p->dim, "model", model,
                        NULL);
    if (p->dim) return inst_new(p->plugin, "base_url", base, "api_key", key, "dimension", p->dim, NULL);
    if (model) return inst_new(p->plugin, "base_url", base, "api_key", key, "model", model, NULL);
    return inst_new(p->plugin, "base_url", base, "api_key", key, NULL);
}

/* One call of whichever kind the plugin is. */
static int call_once(sl_instance *inst, sl_call *call) {
    if (inst->desc->role == SL_ROLE_LLM) {
        sl_completion out = {0};
        const char *prompt = "Summarise this sentence about rivers and sluices.";
        int rc = complete(inst, prompt, strlen(prompt), &out, call);
        CHECK(rc == 0 ? out.text != NULL : out.text == NULL);
        free(out.text);
        return rc;
    }
    const char *texts[] = {"rivers", "sluices and gates"};
    float *v = malloc(2 * inst->dim * sizeof *v);
    int rc = embed(inst, texts, 2, v, call);
    free(v);
    return rc;
}

/* 401: fatal (no retry fixes a key), and neither key in the message. */
static void test_wrong_key_is_fatal_and_never_shown(void) {
    for (size_t i = 0; i < NPROVIDERS; i++) {
        sl_instance *inst = provider_new(&providers[i], fk.port, WRONG_KEY, NULL);
        CHECK(inst != NULL);
        if (!inst) continue;
        sl_call call;
        CHECK_INT(call_once(inst, &call), SL_EFATAL);
        CHECK_CONTAINS(call.msg, "401");
        check_no_secret(call.msg);
        sl_instance_free(inst);

        inst = provider_new(&providers[i], fk.port, "", NULL); /* no key at all */
        CHECK(inst != NULL);
        if (!inst) continue;
        CHECK_INT(call_once(inst, &call), SL_EFATAL);
        CHECK_CONTAINS(call.msg, "401");
        sl_instance_free(inst);
    }
}

/* 429 with Retry-After: retryable, and the wait is passed on. The fake's
 * bucket holds one request a minute: the first passes, the second waits. */
static void test_rate_limit_is_retryable_with_retry_after(void) {
    for (size_t i = 0; i < NPROVIDERS; i++) {
        sl_instance *inst = provider_new(&providers[i], fk.port, GOOD_KEY, NULL);
        CHECK(inst != NULL);
        if (!inst) continue;
        fake_config(&fk, "{\"rpm\": 1}");
        sl_call call;
        CHECK_INT(call_once(inst, &call), 0);
        CHECK_INT(call_once(inst, &call), SL_ERETRY);
        CHECK_CONTAINS(call.msg, "429");
        CHECK(call.retry_after_ms >= 1000);
        CHECK(call.retry_after_ms <= 60000);
        check_no_secret(call.msg);
        fake_config(&fk, "{\"rpm\": 0}");
        CHECK_INT(call_once(inst, &call), 0);
        sl_instance_free(inst);
    }
}

/* Turns one fault on for every request, checks each provider fails with
 * `code` and a message containing `says`, turns it off, and checks the
 * same instance works again. */
static void expect_fault(const char *on, const char *off, int code, const char *says) {
    for (size_t i = 0; i < NPROVIDERS; i++) {
        sl_instance *inst = provider_new(&providers[i], fk.port, GOOD_KEY, NULL);
        CHECK(inst != NULL);
        if (!inst) continue;
        fake_config(&fk, on);
        sl_call call;
        int rc = call_once(inst, &call);
        if (rc != code) fprintf(stderr, "%s under %s: %d %s\n", providers[i].plugin, on, rc, call.msg);
        CHECK_INT(rc, code);
        if (says) CHECK_CONTAINS(call.msg, says);
        CHECK(call.msg[0] != '\0');
        check_no_secret(call.msg);
        fake_config(&fk, off);
        CHECK_INT(call_once(inst, &call), 0);
        sl_instance_free(inst);
    }
}

static void test_malformed_json_is_retryable(void) {
    expect_fault("{\"fault-malformed\": 1}", "{\"fault-malformed\": 0}", SL_ERETRY, "not valid JSON");
}

static void test_truncated_body_is_retryable(void) {
    expect_fault("{\"fault-truncate\": 1}", "{\"fault-truncate\": 0}", SL_ERETRY, NULL);
}

static void test_server_errors_are_retryable(void) {
    expect_fault("{\"fault-5xx\": 1}", "{\"fault-5xx\": 0}", SL_ERETRY, "500");
    expect_fault("{\"fail-first\": 1}", "{\"fail-first\": 0}", SL_ERETRY, "503");
}

static void test_connection_reset_is_retryable(void) {
    expect_fault("{\"fault-reset\": 1}", "{\"fault-reset\": 0}", SL_ERETRY, NULL);
}

/* A model the server does not have: 404, which no document can cause, so
 * the run stops, with the server's explanation naming the model. */
static void test_unknown_model_is_fatal(void) {
    for (size_t i = 0; i < NPROVIDERS; i++) {
        sl_instance *inst = provider_new(&providers[i], fk.port, GOOD_KEY, "no-such-model-x1");
        CHECK(inst != NULL);
        if (!inst) continue;
        fake_config(&fk, "{\"models\": \"gpt-4o-mini,claude-3-5-haiku-latest,llama3.1,"
                         "text-embedding-3-small,nomic-embed-text\"}");
        sl_call call;
        CHECK_INT(call_once(inst, &call), SL_EFATAL);
        CHECK_CONTAINS(call.msg, "404");
        CHECK_CONTAINS(call.msg, "no-such-model-x1");
        check_no_secret(call.msg);
        fake_config(&fk, "{\"models\": \"\"}");
        sl_instance_free(inst);
    }
}

/* Nothing listening: retryable (a provider restarting comes back). */
static void test_connection_refused_is_retryable(void) {
    int port = closed_port();
    for (size_t i = 0; i < NPROVIDERS; i++) {
        sl_instance *inst = provider_new(&providers[i], port, GOOD_KEY, NULL);
        CHECK(inst != NULL);
        if (!inst) continue;
        sl_call call;
        CHECK_INT(call_once(inst, &call), SL_ERETRY);
        CHECK(call.msg[0] != '\0');
        check_no_secret(call.msg);
        sl_instance_free(inst);
    }
}

/* A server slower than the configured timeout: retryable. */
static void test_timeout_is_retryable(void) {
    for (size_t i = 0; i < NPROVIDERS; i++) {
        const provider *p = &providers[i];
        const char *base = url_of(fk.port, p->base_suffix);
        sl_instance *inst =
            p->dim ? inst_new(p->plugin, "base_url", base, "api_key", GOOD_KEY, "dimension", p->dim,
                              "timeout", "300ms", NULL)
                   : inst_new(p->plugin, "base_url", base, "api_key", GOOD_KEY, "timeout", "300ms", NULL);
        CHECK(inst != NULL);
        if (!inst) continue;
        fake_config(&fk, "{\"fault-stall\": 1}");
        sl_call call;
        CHECK_INT(call_once(inst, &call), SL_ERETRY);
        CHECK(call.msg[0] != '\0');
        fake_config(&fk, "{\"fault-stall\": 0}");
        CHECK_INT(call_once(inst, &call), 0);
        sl_instance_free(inst);
    }
}

int main(void) {
    harness_open();
    const char *args[] = {"--api-key", GOOD_KEY, NULL};
    fk = fake_start(args);

    test_wrong_key_is_fatal_and_never_shown();
    test_rate_limit_is_retryable_with_retry_after();
    test_malformed_json_is_retryable();
    test_truncated_body_is_retryable();
    test_server_errors_are_retryable();
    test_connection_reset_is_retryable();
    test_unknown_model_is_fatal();
    test_connection_refused_is_retryable();
    test_timeout_is_retryable();

    fake_stop(&fk);
    harness_close();
    return check_done();
}
