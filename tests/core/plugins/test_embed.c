/* test_embed.c - an embedder that misbehaves on purpose, for the pipeline's
 * tests: it fails its first `fail_first` calls as retryable (with a
 * retry-after hint), fails any batch holding a text that contains
 * `bad_text` as bad input, and logs and reports its secret `api_key`, which
 * must never reach the output. Vectors: [len, 1, 0, ...] normalised. */
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <sluice/sluice.h>

typedef struct conf {
    const char *api_key;
    int64_t fail_first;
    const char *bad_text;
    int64_t dimension;
} conf;

typedef struct state {
    conf c;
    atomic_long calls;
} state;

static const sl_option options[] = {
    {"api_key",
     SL_OPT_STRING,
     "",
     "a secret this plugin leaks on purpose",
     SL_OPT_SECRET,
     offsetof(conf, api_key),
     NULL,
     {0}},
    {"fail_first",
     SL_OPT_INT,
     "0",
     "calls that fail as retryable first",
     SL_OPT_NO_FINGERPRINT,
     offsetof(conf, fail_first),
     NULL,
     {0}},
    {"bad_text",
     SL_OPT_STRING,
     "",
     "texts containing this fail as bad input",
     0,
     offsetof(conf, bad_text),
     NULL,
     {0}},
    {"dimension", SL_OPT_INT, "4", "vector dimension", 0, offsetof(conf, dimension), NULL, {0}},
    {NULL, 0, NULL, NULL, 0, 0, NULL, {0}},
};

static state the_state;

static int init(sl_instance *inst, const void *config, void **out) {
    state *s = &the_state;
    s->c = *(const conf *)config;
    atomic_store(&s->calls, 0);
    sl_instance_set_dimension(inst, (uint32_t)s->c.dimension);
    sl_instance_set_model(inst, "test-embed");
    if (*s->c.api_key) sl_log(inst, SL_LOG_WARN, "connecting with key %s", s->c.api_key);
    *out = s;
    return 0;
}

static int embed(sl_call *call, const sl_text *texts, size_t n, float *out) {
    state *s = sl_call_state(call);
    long k = atomic_fetch_add(&s->calls, 1);
    if (k < s->c.fail_first) {
        sl_call_retry_after(call, 1);
        return sl_fail(call, SL_ERETRY, "busy (call %ld, key %s)", k, s->c.api_key);
    }
    uint32_t dim = (uint32_t)s->c.dimension;
    for (size_t i = 0; i < n; i++) {
        if (*s->c.bad_text && memmem(texts[i].ptr, texts[i].len, s->c.bad_text, strlen(s->c.bad_text)))
            return sl_fail(call, SL_EBADINPUT, "refusing text with '%s' (key %s)", s->c.bad_text,
                           s->c.api_key);
        float *v = out + i * dim;
        memset(v, 0, dim * sizeof *v);
        v[0] = (float)texts[i].len;
        if (dim > 1) v[1] = 1.0f;
        float norm = sqrtf(v[0] * v[0] + (dim > 1 ? 1.0f : 0.0f));
        for (uint32_t d = 0; d < dim; d++) v[d] /= norm;
    }
    return 0;
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,         .name = "test-embed",
    .version = "1.0.0",       .summary = "misbehaving embedder for tests",
    .role = SL_ROLE_EMBEDDER, .bottleneck = SL_CPU,
    .options = options,       .config_size = sizeof(conf),
    .batch_size = 8,          .init = init,
    .embed = embed,
};
SL_PLUGIN_EXPORT(desc)
