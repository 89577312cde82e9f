/* test_embed_providers.c - embed-openai and embed-ollama against the fake
 * provider over real HTTP, loaded and called as a run does: one request per
 * batch, vectors of the declared dimension in input order, deterministic,
 * the same whether they travel as base64 or as JSON numbers, empty texts as
 * zero vectors without a request, tokens from the usage fields, `shorten`
 * asking for the declared size, and a model whose vectors have another size
 * stopping the run with both sizes named. Answers the fake never sends
 * (shuffled, repeated or missing indexes, bad base64, non-finite values) are
 * checked against the canned server.
 */
#include "harness.h"

static fake fk;

static sl_instance *openai_new(const char *dim, const char *encoding, const char *shorten) {
    return inst_new("embed-openai", "base_url", url_of(fk.port, "/v1"), "api_key", GOOD_KEY, "dimension", dim,
                    "encoding", encoding, "shorten", shorten, NULL);
}

static sl_instance *ollama_new(const char *dim, const char *shorten) {
    return inst_new("embed-ollama", "base_url", url_of(fk.port, ""), "api_key", GOOD_KEY, "dimension", dim,
                    "shorten", shorten, NULL);
}

static void test_descriptors_declare_io_embedders(void) {
    sl_instance *a = openai_new("1536", "base64", "false"), *b = ollama_new("768", "false");
    CHECK(a != NULL && b != NULL);
    if (a) {
        CHECK_INT(a->desc->role, SL_ROLE_EMBEDDER);
        CHECK_INT(a->desc->bottleneck, SL_IO);
        CHECK_INT(a->desc->batch_size, 128);
        CHECK_INT(a->dim, 1536);
        CHECK_STR(a->model, "text-embedding-3-small");
    }
    if (b) {
        CHECK_INT(b->desc->role, SL_ROLE_EMBEDDER);
        CHECK_INT(b->desc->bottleneck, SL_IO);
        CHECK_INT(b->desc->batch_size, 32);
        CHECK_INT(b->dim, 768);
        CHECK_STR(b->model, "nomic-embed-text");
    }
    sl_instance_free(a);
    sl_instance_free(b);
}

/* A batch: one request; each vector unit length (the fake normalises) in
 * its text's slot; the same text gives the same vector in a batch and
 * across calls, another text another one; the empty text the zero vector;
 * nothing written past the batch; tokens as the response counted them. */
static void check_batch(sl_instance *inst) {
    uint32_t d = inst->dim;
    const char *texts[] = {"alpha beta", "", "gamma delta epsilon", "alpha beta"};
    float *v = malloc((4 * d + 1) * sizeof *v);
    for (uint32_t i = 0; i < 4 * d; i++) v[i] = 7.0f;
    v[4 * d] = 12345.0f;
    long long before = fake_requests(&fk);
    sl_call call;
    int rc = embed(inst, texts, 4, v, &call);
    if (rc) fprintf(stderr, "%s: %s\n", inst->desc->name, call.msg);
    CHECK_INT(rc, 0);
    CHECK_INT(fake_requests(&fk), before + 1);
    CHECK(v[4 * d] == 12345.0f);
    CHECK(fabs(norm_of(v, d) - 1.0) < 1e-4);
    CHECK(fabs(norm_of(v + 2 * d, d) - 1.0) < 1e-4);
    CHECK(memcmp(v, v + 3 * d, d * sizeof *v) == 0);
    CHECK(memcmp(v, v + 2 * d, d * sizeof *v) != 0);
    for (uint32_t i = 0; i < d; i++) CHECK(v[d + i] == 0.0f);
    CHECK_INT(call.tokens_in, tokens_of_words(2) * 2 + tokens_of_words(3));
    CHECK_INT(call.tokens_out, 0);

    float *w = malloc(d * sizeof *w);
    const char *again[] = {"gamma delta epsilon"};
    CHECK_INT(embed(inst, again, 1, w, &call), 0);
    CHECK(memcmp(w, v + 2 * d, d * sizeof *w) == 0);
    free(w);
    free(v);
}

static void test_batches_round_trip(void) {
    sl_instance *insts[] = {openai_new("1536", "base64", "false"), openai_new("1536", "float", "false"),
                            ollama_new("768", "false")};
    for (size_t i = 0; i < 3; i++) {
        CHECK(insts[i] != NULL);
        if (insts[i]) check_batch(insts[i]);
        sl_instance_free(insts[i]);
    }
}

/* base64 (float32 bytes) and JSON numbers (eight decimals in the fake)
 * carry the same vectors. */
static void test_base64_and_float_agree(void) {
    sl_instance *b = openai_new("1536", "base64", "false"), *f = openai_new("1536", "float", "false");
    CHECK(b != NULL && f != NULL);
    if (!b || !f) return;
    const char *texts[] = {"Sluice turns documents into chunks.", "a second, different text"};
    float *x = malloc(2 * 1536 * sizeof *x), *y = malloc(2 * 1536 * sizeof *y);
    sl_call call;
    CHECK_INT(embed(b, texts, 2, x, &call), 0);
    CHECK_INT(embed(f, texts, 2, y, &call), 0);
    double worst = 0;
    for (size_t i = 0; i < 2 * 1536; i++) worst = fmax(worst, fabs((double)x[i] - y[i]));
    CHECK(worst < 1e-7);
    CHECK(memcmp(x, x + 1536, 1536 * sizeof *x) != 0);
    free(x);
    free(y);
    sl_instance_free(b);
    sl_instance_free(f);
}

/* shorten sends the declared size as "dimensions": the model answers it. */
static void test_shorten_asks_for_the_declared_size(void) {
    sl_instance *insts[] = {openai_new("256", "base64", "true"), ollama_new("128", "true")};
    uint32_t dims[] = {256, 128};
    for (size_t i = 0; i < 2; i++) {
        CHECK(insts[i] != NULL);
        if (!insts[i]) continue;
        CHECK_INT(insts[i]->dim, dims[i]);
        const char *texts[] = {"shorter vectors please"};
        float v[256];
        sl_call call;
        CHECK_INT(embed(insts[i], texts, 1, v, &call), 0);
        CHECK(fabs(norm_of(v, dims[i]) - 1.0) < 1e-4);
        sl_instance_free(insts[i]);
    }
}

/* A model whose vectors have another size than the config declares stops
 * the run, and the message names the model and both sizes. */
static void test_wrong_dimension_is_fatal(void) {
    struct {
        sl_instance *inst;
        const char *native;
    } cases[] = {
        {openai_new("384", "base64", "false"), "1536"},
        {openai_new("384", "float", "false"), "1536"},
        {ollama_new("384", "false"), "768"},
    };
    for (size_t i = 0; i < 3; i++) {
        CHECK(cases[i].inst != NULL);
        if (!cases[i].inst) continue;
        const char *texts[] = {"one", "two"};
        float v[2 * 384];
        sl_call call;
        CHECK_INT(embed(cases[i].inst, texts, 2, v, &call), SL_EFATAL);
        char want[64];
        snprintf(want, sizeof want, "returned %s-dimensional vectors", cases[i].native);
        CHECK_CONTAINS(call.msg, want);
        CHECK_CONTAINS(call.msg, "the config says 384");
        CHECK_CONTAINS(call.msg, cases[i].inst->model);
        sl_instance_free(cases[i].inst);
    }
}

/* A batch of only empty texts needs no request; a text JSON cannot carry
 * fails the batch as bad input before anything is sent. */
static void test_empty_and_invalid_texts_send_nothing(void) {
    sl_instance *insts[] = {openai_new("1536", "base64", "false"), ollama_new("768", "false")};
    for (size_t i = 0; i < 2; i++) {
        CHECK(insts[i] != NULL);
        if (!insts[i]) continue;
        uint32_t d = insts[i]->dim;
        float *v = malloc(2 * d * sizeof *v);
        for (uint32_t j = 0; j < 2 * d; j++) v[j] = 3.0f;
        long long before = fake_requests(&fk);
        const char *empties[] = {"", ""};
        sl_call call;
        CHECK_INT(embed(insts[i], empties, 2, v, &call), 0);
        for (uint32_t j = 0; j < 2 * d; j++) CHECK(v[j] == 0.0f);
        const char *bad[] = {"fine", "broken \xc3\x28 text"};
        CHECK_INT(embed(insts[i], bad, 2, v, &call), SL_EBADINPUT);
        CHECK_CONTAINS(call.msg, "text 1 is not valid UTF-8 (at byte 7)");
        CHECK_INT(fake_requests(&fk), before);
        free(v);
        sl_instance_free(insts[i]);
    }
}

/* `dimension` is required and range-checked, naming the option. */
static void test_dimension_option_required_and_checked(void) {
    const char *plugins[] = {"embed-openai", "embed-ollama"};
    for (size_t i = 0; i < 2; i++) {
        CHECK(inst_new(plugins[i], NULL) == NULL);
        CHECK_CONTAINS(sl_ctx_errmsg(h_ctx), "dimension");
        CHECK(inst_new(plugins[i], "dimension", "0", NULL) == NULL);
        CHECK_CONTAINS(sl_ctx_errmsg(h_ctx), "'dimension'");
        CHECK(inst_new(plugins[i], "dimension", "65537", NULL) == NULL);
        CHECK_CONTAINS(sl_ctx_errmsg(h_ctx), "'dimension'");
        sl_instance *ok = inst_new(plugins[i], "dimension", "65536", NULL);
        CHECK(ok != NULL);
        sl_instance_free(ok);
    }
    CHECK(inst_new("embed-openai", "dimension", "8", "encoding", "hex", NULL) == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(h_ctx), "encoding");
}

/* --- against the canned server --- */

static sl_instance *canned_openai(const char *encoding, const char *shorten) {
    return inst_new("embed-openai", "base_url", url_of(h_canned.port, "/v1"), "dimension", "2", "encoding",
                    encoding, "shorten", shorten, NULL);
}

/* The request: model, input, encoding_format; "dimensions" only with
 * shorten; no auth header without a key. */
static void test_requests_follow_each_wire_format(void) {
    canned_set(200, "{\"data\":[{\"index\":0,\"embedding\":[0.5,0.25]}]}");
    sl_instance *inst = canned_openai("base64", "false");
    const char *texts[] = {"x"};
    float v[2];
    sl_call call;
    CHECK_INT(embed(inst, texts, 1, v, &call), 0);
    char *req = canned_request();
    CHECK_CONTAINS(req, "POST /v1/embeddings HTTP/1.1\r\n");
    CHECK_CONTAINS(req,
                   "{\"model\":\"text-embedding-3-small\",\"input\":[\"x\"],\"encoding_format\":\"base64\"}");
    CHECK(strstr(req, "dimensions") == NULL);
    CHECK(strcasestr(req, "Authorization:") == NULL);
    free(req);
    sl_instance_free(inst);

    inst = canned_openai("float", "true");
    CHECK_INT(embed(inst, texts, 1, v, &call), 0);
    req = canned_request();
    CHECK_CONTAINS(req, "\"encoding_format\":\"float\"");
    CHECK_CONTAINS(req, "\"dimensions\":2");
    free(req);
    sl_instance_free(inst);

    canned_set(200, "{\"embeddings\":[[0.5,0.25]]}");
    inst = inst_new("embed-ollama", "base_url", url_of(h_canned.port, ""), "dimension", "2", NULL);
    CHECK_INT(embed(inst, texts, 1, v, &call), 0);
    req = canned_request();
    CHECK_CONTAINS(req, "POST /api/embed HTTP/1.1\r\n");
    CHECK_CONTAINS(req, "{\"model\":\"nomic-embed-text\",\"input\":[\"x\"]}");
    free(req);
    sl_instance_free(inst);
}

/* The whole body, byte for byte (as jansson wrote it before the bodies were
 * built by hand): texts with quotes, backslashes, control characters and
 * multi-byte UTF-8, an empty text left out, "dimensions" last. */
static void test_request_bodies_are_exact(void) {
    const char *texts[] = {"a \"quoted\" \\ word", "",
                           "line\nbreak\ttab\x01 \xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e"};
#define INPUT                                                                                                \
    "[\"a \\\"quoted\\\" \\\\ word\",\"line\\nbreak\\ttab\\u0001 \xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\"]"
    float v[3 * 2];
    sl_call call;
    canned_set(200, "{\"data\":[{\"index\":0,\"embedding\":[0.5,0.25]},{\"index\":1,\"embedding\":[1,2]}]}");
    sl_instance *inst = canned_openai("float", "true");
    CHECK_INT(embed(inst, texts, 3, v, &call), 0);
    char *req = canned_request();
    char *body = strstr(req, "\r\n\r\n");
    CHECK_STR(body ? body + 4 : NULL, "{\"model\":\"text-embedding-3-small\",\"input\":" INPUT
                                      ",\"encoding_format\":\"float\",\"dimensions\":2}");
    free(req);
    sl_instance_free(inst);

    canned_set(200, "{\"embeddings\":[[0.5,0.25],[1,2]]}");
    const char *shorten[] = {"false", "true"};
    const char *bodies[] = {"{\"model\":\"nomic-embed-text\",\"input\":" INPUT "}",
                            "{\"model\":\"nomic-embed-text\",\"input\":" INPUT ",\"dimensions\":2}"};
    for (size_t i = 0; i < 2; i++) {
        inst = inst_new("embed-ollama", "base_url", url_of(h_canned.port, ""), "dimension", "2", "shorten",
                        shorten[i], NULL);
        CHECK_INT(embed(inst, texts, 3, v, &call), 0);
        req = canned_request();
        body = strstr(req, "\r\n\r\n");
        CHECK_STR(body ? body + 4 : NULL, bodies[i]);
        free(req);
        sl_instance_free(inst);
    }
#undef INPUT
}

/* data[] entries are placed by their index, and either encoding is read
 * whatever was asked for. [1.0, -2.5] as float32 LE is AACAPwAAIMA=. */
static void test_vectors_placed_by_index(void) {
    sl_instance *inst = canned_openai("float", "false");
    canned_set(200, "{\"data\":[{\"index\":1,\"embedding\":\"AACAPwAAIMA=\"},"
                    "{\"index\":0,\"embedding\":[0.5,0.25]}],\"usage\":{\"prompt_tokens\":4}}");
    const char *texts[] = {"first", "second"};
    float v[4];
    sl_call call;
    CHECK_INT(embed(inst, texts, 2, v, &call), 0);
    CHECK(v[0] == 0.5f && v[1] == 0.25f);
    CHECK(v[2] == 1.0f && v[3] == -2.5f);
    CHECK_INT(call.tokens_in, 4);
    /* no index at all: input order */
    canned_set(200, "{\"data\":[{\"embedding\":[1,2]},{\"embedding\":[3,4]}]}");
    CHECK_INT(embed(inst, texts, 2, v, &call), 0);
    CHECK(v[0] == 1.0f && v[1] == 2.0f && v[2] == 3.0f && v[3] == 4.0f);
    /* with an empty text in between, vectors still land in their slots */
    const char *gap[] = {"first", "", "third"};
    float w[6];
    canned_set(200, "{\"data\":[{\"index\":0,\"embedding\":[1,2]},{\"index\":1,\"embedding\":[3,4]}]}");
    CHECK_INT(embed(inst, gap, 3, w, &call), 0);
    CHECK(w[0] == 1.0f && w[1] == 2.0f && w[2] == 0.0f && w[3] == 0.0f && w[4] == 3.0f && w[5] == 4.0f);
    sl_instance_free(inst);
}

/* A 200 whose body is not what the API documents: retryable (providers
 * glitch), with a message saying what was wrong; never a crash. */
static void expect_garbage(sl_instance *inst, size_t n, const char *body, int code, const char *says) {
    canned_set(200, body);
    const char *texts[] = {"first", "second", "third"};
    float v[3 * 2];
    sl_call call;
    CHECK_INT(embed(inst, texts, n, v, &call), code);
    CHECK_CONTAINS(call.msg, says);
}

static void test_garbage_answers_fail_cleanly(void) {
    sl_instance *o = canned_openai("base64", "false");
    expect_garbage(o, 2, "", SL_ERETRY, "empty body");
    expect_garbage(o, 2, "{\"data\":[{\"index\":0,\"embedding\":[1,2]}", SL_ERETRY, "not valid JSON");
    expect_garbage(o, 2, "[1,2]", SL_ERETRY, "not an object");
    expect_garbage(o, 2, "{\"object\":\"list\"}", SL_ERETRY, "no data array");
    expect_garbage(o, 2, "{\"data\":[{\"index\":0,\"embedding\":[1,2]}]}", SL_ERETRY,
                   "returned 1 embeddings for 2");
    expect_garbage(o, 2, "{\"data\":[{\"index\":0,\"embedding\":[1,2]},{\"index\":0,\"embedding\":[1,2]}]}",
                   SL_ERETRY, "index");
    expect_garbage(o, 2, "{\"data\":[{\"index\":0,\"embedding\":[1,2]},{\"index\":5,\"embedding\":[1,2]}]}",
                   SL_ERETRY, "index");
    expect_garbage(o, 2,
                   "{\"data\":[{\"index\":0,\"embedding\":[1,2]},{\"index\":\"1\",\"embedding\":[1,2]}]}",
                   SL_ERETRY, "index");
    expect_garbage(o, 1, "{\"data\":[{\"index\":0,\"embedding\":[1,\"2\"]}]}", SL_ERETRY,
                   "not a finite number");
    expect_garbage(o, 1, "{\"data\":[{\"index\":0,\"embedding\":{\"x\":1}}]}", SL_ERETRY, "not an array");
    expect_garbage(o, 1, "{\"data\":[{\"index\":0,\"embedding\":\"AACAPwAAIM!=\"}]}", SL_ERETRY,
                   "not valid base64");
    expect_garbage(o, 1, "{\"data\":[{\"index\":0,\"embedding\":\"AACAPwAAI\"}]}", SL_ERETRY, "not base64");
    expect_garbage(o, 1, "{\"data\":[{\"index\":0,\"embedding\":\"AACAPwAAwH8=\"}]}", SL_ERETRY,
                   "not a finite number"); /* 1.0, NaN */
    expect_garbage(o, 1, "{\"data\":[{\"index\":0,\"embedding\":[1e39,0]}]}", SL_ERETRY,
                   "not a finite number");
    expect_garbage(o, 1, "{\"error\":{\"message\":\"upstream hiccup\"}}", SL_ERETRY, "upstream hiccup");
    /* another size is the config's fault, not a glitch */
    expect_garbage(o, 1, "{\"data\":[{\"index\":0,\"embedding\":\"AACAPwAAIMAAAAAA\"}]}", SL_EFATAL,
                   "returned 3-dimensional vectors; the config says 2");
    expect_garbage(o, 1, "{\"data\":[{\"index\":0,\"embedding\":[1]}]}", SL_EFATAL,
                   "returned 1-dimensional vectors; the config says 2");
    sl_instance_free(o);

    sl_instance *l = inst_new("embed-ollama", "base_url", url_of(h_canned.port, ""), "dimension", "2", NULL);
    expect_garbage(l, 2, "{\"embeddings\":[[1,2],[3,4]", SL_ERETRY, "not valid JSON");
    expect_garbage(l, 2, "{\"model\":\"x\"}", SL_ERETRY, "no embeddings array");
    expect_garbage(l, 2, "{\"embeddings\":[[1,2]]}", SL_ERETRY, "returned 1 embeddings for 2");
    expect_garbage(l, 2, "{\"embeddings\":[[1,2],null]}", SL_ERETRY, "not an array");
    expect_garbage(l, 2, "{\"embeddings\":[[1,2],[3,4,5]]}", SL_EFATAL, "returned 3-dimensional vectors");
    expect_garbage(l, 1, "{\"error\":\"model is loading\"}", SL_ERETRY, "model is loading");
    sl_instance_free(l);
}

int main(void) {
    harness_open();
    canned_start();
    const char *args[] = {"--api-key", GOOD_KEY, NULL};
    fk = fake_start(args);

    test_descriptors_declare_io_embedders();
    test_batches_round_trip();
    test_base64_and_float_agree();
    test_shorten_asks_for_the_declared_size();
    test_wrong_dimension_is_fatal();
    test_empty_and_invalid_texts_send_nothing();
    test_dimension_option_required_and_checked();
    test_requests_follow_each_wire_format();
    test_request_bodies_are_exact();
    test_vectors_placed_by_index();
    test_garbage_answers_fail_cleanly();

    fake_stop(&fk);
    canned_stop();
    harness_close();
    return check_done();
}
