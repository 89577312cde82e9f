/* test_embed_hash.c - the embed-hash plugin, loaded from its .so through
 * the core's loader and configured through the core's instance API, as a
 * run would: vectors of the declared dimension, unit length, deterministic,
 * nearer for texts that share words, and option values checked in init.
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../check.h" /* the tests' check.h, not core/check.h */
#include "ctx.h"
#include "instance.h"
#include "registry.h"
#include "sluice/sluice.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

static sl_ctx *ctx;
static sl_registry *reg;
static const sl_loaded *plugin;
static const sl_plugin *desc;

/* An instance from the option defaults plus "key=value" overrides, then
 * init: what `sluice check --plugin` and a run do. NULL if it could not be
 * built; *rc is the first failure. */
static sl_instance *instance_new_with(const char *const *overrides, size_t n, int *rc) {
    sl_instance *inst = NULL;
    sl_ctx_clear_error(ctx);
    *rc = sl_instance_new_defaults(ctx, plugin, "embedder", overrides, n, &inst);
    if (*rc == 0) *rc = sl_instance_init(ctx, inst);
    return inst;
}

static sl_instance *instance_new(const char *override, int *rc) {
    return instance_new_with(&override, override ? 1 : 0, rc);
}

static void instance_free(sl_instance *inst) { sl_instance_free(inst); }

static int embed(sl_instance *inst, const char *const *texts, size_t n, float *out) {
    sl_text t[8];
    for (size_t i = 0; i < n; i++) t[i] = (sl_text){texts[i], strlen(texts[i])};
    sl_call call;
    sl_call_init(&call, inst, NULL);
    return desc->embed(&call, t, n, out);
}

static double dot(const float *a, const float *b, uint32_t dim) {
    double s = 0;
    for (uint32_t i = 0; i < dim; i++) s += (double)a[i] * b[i];
    return s;
}

static int has_nan(const float *v, uint32_t dim) {
    for (uint32_t i = 0; i < dim; i++)
        if (isnan(v[i]) || isinf(v[i])) return 1;
    return 0;
}

static void test_descriptor_declares_embedder(void) {
    CHECK_STR(desc->name, "embed-hash");
    CHECK_INT(desc->role, SL_ROLE_EMBEDDER);
    CHECK_INT(desc->bottleneck, SL_CPU);
    CHECK_INT(desc->batch_size, 256);
    CHECK(desc->embed != NULL);
    CHECK(desc->options != NULL);
}

/* The declared dimension is the one written, and nothing past it. */
static void test_dimension_honoured(void) {
    int rc;
    sl_instance *inst = instance_new("dimension=37", &rc);
    CHECK_INT(rc, 0);
    CHECK_INT(inst->dim, 37);
    CHECK_CONTAINS(inst->model, "embed-hash");
    float out[2 * 37 + 1];
    out[2 * 37] = 12345.0f; /* a guard after the last vector */
    const char *texts[] = {"alpha beta gamma", "delta"};
    CHECK_INT(embed(inst, texts, 2, out), 0);
    CHECK(out[2 * 37] == 12345.0f);
    CHECK(fabs(dot(out, out, 37) - 1.0) < 1e-5);
    CHECK(fabs(dot(out + 37, out + 37, 37) - 1.0) < 1e-5);
    instance_free(inst);

    inst = instance_new(NULL, &rc); /* the default */
    CHECK_INT(rc, 0);
    CHECK_INT(inst->dim, 384);
    instance_free(inst);
}

static void test_vectors_unit_length(void) {
    int rc;
    sl_instance *inst = instance_new(NULL, &rc);
    CHECK_INT(rc, 0);
    const char *texts[] = {"a", "The quick brown fox jumps over the lazy dog.", "Ünïcödé wörds — naïve café",
                           "x1 y2 z3 42 1999-12-31", "supercalifragilisticexpialidocious"};
    size_t n = sizeof texts / sizeof texts[0];
    float *out = malloc(n * 384 * sizeof *out);
    CHECK_INT(embed(inst, texts, n, out), 0);
    for (size_t i = 0; i < n; i++) {
        CHECK(!has_nan(out + i * 384, 384));
        CHECK(fabs(sqrt(dot(out + i * 384, out + i * 384, 384)) - 1.0) < 1e-5);
    }
    free(out);
    instance_free(inst);
}

/* Same text, same vector: within a batch, across calls, across instances. */
static void test_deterministic(void) {
    int rc1, rc2;
    sl_instance *a = instance_new(NULL, &rc1), *b = instance_new(NULL, &rc2);
    CHECK_INT(rc1, 0);
    CHECK_INT(rc2, 0);
    CHECK_STR(a->model, b->model);
    const char *texts[] = {"Sluice turns documents into chunks.", "other text",
                           "Sluice turns documents into chunks."};
    float x[3 * 384], y[384];
    CHECK_INT(embed(a, texts, 3, x), 0);
    CHECK(memcmp(x, x + 2 * 384, sizeof y) == 0);
    CHECK_INT(embed(a, texts, 1, y), 0);
    CHECK(memcmp(x, y, sizeof y) == 0);
    memset(y, 0, sizeof y);
    CHECK_INT(embed(b, texts, 1, y), 0);
    CHECK(memcmp(x, y, sizeof y) == 0);
    CHECK(memcmp(x, x + 384, sizeof y) != 0);
    instance_free(a);
    instance_free(b);
}

static void test_similar_texts_nearer(void) {
    int rc;
    sl_instance *inst = instance_new(NULL, &rc);
    CHECK_INT(rc, 0);
    const char *texts[] = {"the cat sat on the mat", "a cat sat on a mat", "quarterly revenue report",
                           "the cats are sitting on mats"};
    float v[4 * 384];
    CHECK_INT(embed(inst, texts, 4, v), 0);
    double near = dot(v, v + 384, 384), far = dot(v, v + 2 * 384, 384), morph = dot(v, v + 3 * 384, 384);
    CHECK(near > far);
    CHECK(near > 0.5);
    CHECK(far < 0.3);
    CHECK(morph > far); /* shared n-grams: "cat"/"cats", "mat"/"mats" */
    instance_free(inst);
}

/* ASCII letters fold to lower case; punctuation only separates words. */
static void test_case_and_punctuation(void) {
    int rc;
    sl_instance *inst = instance_new(NULL, &rc);
    CHECK_INT(rc, 0);
    const char *texts[] = {"Hello, WORLD!", "hello world", "hello worlds", "CAFÉ", "café", "cafe"};
    float v[6 * 384];
    CHECK_INT(embed(inst, texts, 6, v), 0);
    CHECK(memcmp(v, v + 384, 384 * sizeof *v) == 0);
    CHECK(memcmp(v, v + 2 * 384, 384 * sizeof *v) != 0);
    /* Only ASCII folds: "É" stays a different byte sequence from "é". */
    CHECK(memcmp(v + 3 * 384, v + 4 * 384, 384 * sizeof *v) != 0);
    CHECK(memcmp(v + 4 * 384, v + 5 * 384, 384 * sizeof *v) != 0);
    instance_free(inst);
}

static void test_options_change_vectors(void) {
    int rc0, rc1, rc2;
    sl_instance *a = instance_new(NULL, &rc0), *b = instance_new("seed=1", &rc1),
                *w = instance_new("words=false", &rc2);
    CHECK(rc0 == 0 && rc1 == 0 && rc2 == 0);
    const char *texts[] = {"the same text in every space"};
    float x[384], y[384], z[384];
    CHECK_INT(embed(a, texts, 1, x), 0);
    CHECK_INT(embed(b, texts, 1, y), 0);
    CHECK_INT(embed(w, texts, 1, z), 0);
    CHECK(memcmp(x, y, sizeof x) != 0);
    CHECK(dot(x, y, 384) < 0.5); /* another seed is another space */
    CHECK(memcmp(x, z, sizeof x) != 0);
    CHECK(fabs(dot(z, z, 384) - 1.0) < 1e-5);
    /* The model name tells the spaces apart, for fallback chains. */
    CHECK(strcmp(a->model, b->model) != 0);
    CHECK(strcmp(a->model, w->model) != 0);
    instance_free(a);
    instance_free(b);
    instance_free(w);
}

static void test_empty_text_is_zero_vector(void) {
    int rc;
    sl_instance *inst = instance_new(NULL, &rc);
    CHECK_INT(rc, 0);
    const char *texts[] = {"", "  \t\n ... !!! -- ", "x"};
    float v[3 * 384];
    for (size_t i = 0; i < 3 * 384; i++) v[i] = 7.0f; /* the embedder must overwrite */
    CHECK_INT(embed(inst, texts, 3, v), 0);
    for (size_t i = 0; i < 2 * 384; i++) CHECK(v[i] == 0.0f);
    CHECK(!has_nan(v, 3 * 384));
    CHECK(fabs(dot(v + 768, v + 768, 384) - 1.0) < 1e-5);
    /* A NULL pointer with length 0 is an empty text too. */
    sl_text t = {NULL, 0};
    sl_call call;
    sl_call_init(&call, inst, NULL);
    CHECK_INT(desc->embed(&call, &t, 1, v), 0);
    for (size_t i = 0; i < 384; i++) CHECK(v[i] == 0.0f);
    instance_free(inst);
}

/* Values the option parser accepts but init must refuse, with a message
 * that names the option. */
static void expect_refused(const char *o1, const char *o2, const char *option) {
    const char *ov[2] = {o1, o2};
    int rc;
    sl_instance *inst = instance_new_with(ov, o2 ? 2 : 1, &rc);
    CHECK_INT(rc, SL_EFATAL);
    CHECK(inst != NULL); /* built, so it was init that refused */
    char quoted[64];
    snprintf(quoted, sizeof quoted, "'%s'", option);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "init failed");
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), quoted);
    instance_free(inst);
}

static void test_out_of_range_options_refused(void) {
    expect_refused("dimension=0", NULL, "dimension");
    expect_refused("dimension=65537", NULL, "dimension");
    expect_refused("dimension=-3", NULL, "dimension");
    expect_refused("ngram_min=0", NULL, "ngram_min");
    expect_refused("ngram_min=4", "ngram_max=3", "ngram_max");
    expect_refused("ngram_max=17", NULL, "ngram_max");
    expect_refused("word_weight=-1", NULL, "word_weight");
    expect_refused("word_weight=2e6", NULL, "word_weight");

    /* The edges of the ranges are accepted. */
    const char *edges[] = {"dimension=65536", "ngram_min=1", "ngram_max=16"};
    int rc;
    sl_instance *inst = instance_new_with(edges, 3, &rc);
    CHECK_INT(rc, 0);
    float *v = malloc(65536 * sizeof *v);
    const char *texts[] = {"edge"};
    CHECK_INT(embed(inst, texts, 1, v), 0);
    CHECK(fabs(dot(v, v, 65536) - 1.0) < 1e-5);
    free(v);
    instance_free(inst);
}

/* Large inputs embed: 1 MB of words, 1 MB with no separator at all (one
 * giant "word") and 1 MB of stray UTF-8 continuation bytes. */
static void test_one_megabyte_texts(void) {
    int rc;
    sl_instance *inst = instance_new(NULL, &rc);
    CHECK_INT(rc, 0);
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        big[i] = (x >> 16) % 7 == 0 ? ' ' : (char)('a' + (x >> 8) % 26);
    }
    big[n] = '\0';
    float v[384];
    const char *texts[] = {big};
    CHECK_INT(embed(inst, texts, 1, v), 0);
    CHECK(!has_nan(v, 384));
    CHECK(fabs(dot(v, v, 384) - 1.0) < 1e-5);

    memset(big, 'q', n);
    CHECK_INT(embed(inst, texts, 1, v), 0);
    CHECK(!has_nan(v, 384));
    CHECK(fabs(dot(v, v, 384) - 1.0) < 1e-5);

    memset(big, 0x80, n);
    CHECK_INT(embed(inst, texts, 1, v), 0);
    CHECK(!has_nan(v, 384));
    CHECK(fabs(dot(v, v, 384) - 1.0) < 1e-5);
    free(big);
    instance_free(inst);
}

/* The algorithm as the plugin's header states it, written plainly (no word
 * cache, every feature hashed): the plugin must give these vectors bit for
 * bit, whatever its cache holds. Options: n-grams nmin..nmax, a whole-word
 * feature of weight ww when words, seed. Words longer than 256 bytes are
 * cut at a code point start (or at 260 bytes of continuation bytes). */
typedef struct ref_opts {
    uint32_t dim, nmin, nmax;
    bool words;
    float ww;
    uint64_t seed;
} ref_opts;

static void ref_feature(const ref_opts *o, float *v, const char *p, size_t n, uint64_t seed, float w) {
    uint64_t h = XXH3_64bits_withSeed(p, n, seed);
    v[(uint32_t)(((h & 0xffffffffu) * (uint64_t)o->dim) >> 32)] += (h >> 63) ? -w : w;
}

static void ref_word(const ref_opts *o, float *v, const char *buf, size_t len) {
    if (o->words) ref_feature(o, v, buf + 1, len - 2, o->seed ^ UINT64_C(0x9e3779b97f4a7c15), o->ww);
    size_t starts[300], ns = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)buf[i] & 0xC0) != 0x80) starts[ns++] = i;
    starts[ns] = len;
    for (size_t i = 0; i < ns; i++)
        for (uint32_t n = o->nmin; n <= o->nmax && i + n <= ns; n++)
            ref_feature(o, v, buf + starts[i], starts[i + n] - starts[i], o->seed, 1.0f);
}

static void ref_embed(const ref_opts *o, const char *t, float *v) {
    memset(v, 0, o->dim * sizeof *v);
    char buf[300];
    size_t n = 0, len = strlen(t);
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)t[i] : ' ';
        bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
        if (word && n >= 256 && ((c & 0xC0) != 0x80 || n >= 260)) {
            buf[0] = buf[n + 1] = ' ';
            ref_word(o, v, buf, n + 2);
            n = 0;
        }
        if (word) {
            buf[1 + n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        } else if (n) {
            buf[0] = buf[n + 1] = ' ';
            ref_word(o, v, buf, n + 2);
            n = 0;
        }
    }
    double sum = 0;
    for (uint32_t j = 0; j < o->dim; j++) sum += (double)v[j] * v[j];
    if (sum > 0) {
        float inv = (float)(1.0 / sqrt(sum));
        for (uint32_t j = 0; j < o->dim; j++) v[j] *= inv;
    }
}

/* A text of words drawn from a vocabulary of `vocab` words (many more than
 * the plugin's per-thread cache holds, so words evict each other), of 1 to
 * 40 bytes, some upper case, some UTF-8, one of 300 bytes. */
static char *random_text(uint32_t *x, size_t words, uint32_t vocab) {
    char *t = malloc(words * 82 + 302), *p = t; /* a word: at most 40 characters of 2 bytes */
    for (size_t i = 0; i < words; i++) {
        *x = *x * 1103515245u + 12345u;
        uint32_t id = (*x >> 8) % vocab, y = id * 2654435761u + 1;
        size_t len = 1 + (id * 7u) % (id % 5 ? 9 : 40);
        for (size_t k = 0; k < len; k++) {
            y = y * 1103515245u + 12345u;
            uint32_t r = (y >> 16) % 40;
            if (r < 26)
                *p++ = (char)((id % 3 ? 'a' : 'A') + r);
            else if (r < 30)
                p += sprintf(p, "\xc3\xa9");
            else
                *p++ = (char)('0' + r % 10);
        }
        *p++ = i % 11 == 10 ? '.' : ' ';
    }
    memset(p, 'z', 300);
    p += 300;
    *p = '\0';
    return t;
}

/* The per-thread word cache changes no vector: the plugin's vectors equal
 * the plain algorithm's, bit for bit, on texts whose words repeat and evict
 * each other, cold and warm, with options whose words have too many
 * features to cache, without word features, and with another weight.
 * Returns the vectors that differ or failed (no CHECK: threads call it). */
static int mismatches(sl_instance *inst, const ref_opts *o, uint32_t seed) {
    int bad = 0;
    uint32_t x = seed;
    float *got = malloc(o->dim * sizeof *got), *want = malloc(o->dim * sizeof *want);
    for (int round = 0; round < 6; round++) {
        char *t = random_text(&x, 2000, round < 3 ? 300 : 20000);
        const char *texts[] = {t};
        ref_embed(o, t, want);
        for (int again = 0; again < 2; again++) {
            if (embed(inst, texts, 1, got) != 0 || memcmp(got, want, o->dim * sizeof *got) != 0) bad++;
        }
        free(t);
    }
    free(got);
    free(want);
    return bad;
}

static void test_cache_gives_the_plain_vectors(void) {
    struct {
        const char *set[4];
        ref_opts o;
    } cases[] = {
        {{NULL}, {384, 3, 5, true, 1.0f, 0}},
        {{"words=false", "seed=7"}, {384, 3, 5, false, 1.0f, 7}},
        {{"word_weight=2.5", "dimension=1000"}, {1000, 3, 5, true, 2.5f, 0}},
        {{"ngram_min=1", "ngram_max=16"}, {384, 1, 16, true, 1.0f, 0}},
        {{"dimension=65536", "ngram_min=2", "ngram_max=2"}, {65536, 2, 2, true, 1.0f, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n = 0;
        while (n < 4 && cases[c].set[n]) n++;
        int rc;
        sl_instance *inst = instance_new_with(cases[c].set, n, &rc);
        CHECK_INT(rc, 0);
        CHECK_INT(mismatches(inst, &cases[c].o, 1000u + (uint32_t)c), 0);
        instance_free(inst);
    }
}

typedef struct cache_thread {
    sl_instance *inst;
    uint32_t seed;
    int bad;
} cache_thread;

static void *cache_thread_main(void *arg) {
    cache_thread *ct = arg;
    ref_opts o = {384, 3, 5, true, 1.0f, 0};
    ct->bad = mismatches(ct->inst, &o, ct->seed);
    return NULL;
}

/* Threads embedding at once through one instance each keep their own
 * cache: every vector still equals the plain one. */
static void test_cache_per_thread(void) {
    int rc;
    sl_instance *inst = instance_new(NULL, &rc);
    CHECK_INT(rc, 0);
    pthread_t th[3];
    cache_thread arg[3];
    for (int i = 0; i < 3; i++) {
        arg[i] = (cache_thread){inst, 77u + (uint32_t)i, -1};
        CHECK_INT(pthread_create(&th[i], NULL, cache_thread_main, &arg[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(arg[i].bad, 0);
    }
    instance_free(inst);
}

int main(void) {
    const char *dir = getenv("SLUICE_PLUGIN_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/embed-hash.so", dir ? dir : ".");
    ctx = sl_ctx_new();
    CHECK_INT(sl_registry_new(ctx, &reg), 0);
    /* The loader validates the descriptor and its option table. */
    if (sl_registry_open(ctx, reg, path, &plugin) != 0) {
        fprintf(stderr, "cannot load %s: %s\n", path, sl_ctx_errmsg(ctx));
        return 1;
    }
    desc = &plugin->desc;

    test_descriptor_declares_embedder();
    test_dimension_honoured();
    test_vectors_unit_length();
    test_deterministic();
    test_similar_texts_nearer();
    test_case_and_punctuation();
    test_options_change_vectors();
    test_empty_text_is_zero_vector();
    test_out_of_range_options_refused();
    test_one_megabyte_texts();
    test_cache_gives_the_plain_vectors();
    test_cache_per_thread();

    sl_registry_free(reg);
    sl_ctx_free(ctx);
    return check_done();
}
