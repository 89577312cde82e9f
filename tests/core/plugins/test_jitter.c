/* test_jitter.c - plugins for the liveness test (test_liveness.c) that take
 * a random time and finish in a random order, built six times:
 *
 *   test-jitter-parse (JITTER_PARSE): a cpu parser of text/plain whose first
 *     line is "pages N" (N may be 0): the document gets N pages and one
 *     paragraph element per blank-line-separated block after that line, and
 *     `children` child documents ("pages 1" and one paragraph) when it is
 *     no child itself.
 *   test-jitter-page (JITTER_PAGE): a cpu page stage that adds the element
 *     "TAG page P" on page P.
 *   test-jitter-chunk (JITTER_CHUNK): a cpu chunker, one chunk per element.
 *   test-jitter-embed-cpu (JITTER_EMBED and JITTER_CPU): a cpu embedder that
 *     answers at once, through sl_call_done on the pool thread, or from a
 *     thread of its own after a random while (1/4, 1/4, 1/2 of the calls).
 *   test-jitter-embed (JITTER_EMBED): an io embedder.
 *   test-jitter-llm (JITTER_LLM): an io llm that answers "summary of N
 *     characters".
 *
 * Every call draws from the instance's random stream (`seed`): cpu calls
 * sleep 0 to `sleep_max` microseconds; io calls answer in one of four ways,
 * the ways a real provider can: returning the result at once, calling
 * sl_call_done before returning SL_PENDING, or completing from an sl_timer
 * on the next loop iteration (0 ms) or 1 to `delay_max` ms later (1/8,
 * 1/8, 1/4 and 1/2 of the calls). A call fails as retryable with probability `retry_pct`
 * percent, and a document whose text contains `bad_text` fails as bad input
 * in this stage (the page stage fails on the document's last page).
 * io plugins report `usage` input tokens per call (0: a quarter of the
 * characters), and `usage_first` on the first call of the instance, so a
 * `tpm` limit makes later calls wait. Vectors are [len, 1, 0, ...]
 * normalised, `dimension` long, for model `model`.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/sluice.h>

typedef struct conf {
    int64_t seed;
    int64_t sleep_max; /* cpu: microseconds */
    int64_t delay_max; /* io: milliseconds */
    int64_t retry_pct;
    const char *bad_text;
    const char *tag;
    int64_t dimension;
    const char *model;
    int64_t usage;
    int64_t usage_first;
    int64_t children;
} conf;

typedef struct state {
    conf c;
    uint64_t stream; /* seed mixed with the instance's name */
    atomic_uint_fast64_t draws;
    atomic_int first_done;
    sl_instance *inst;
} state;

#define OPT(n, t, d, h, f)                                                                                   \
    { .name = n, .type = t, .def = d, .help = h, .flags = SL_OPT_NO_FINGERPRINT, .offset = offsetof(conf, f) }

static const sl_option options[] = {
    OPT("seed", SL_OPT_INT, "1", "seed of the instance's random stream", seed),
    OPT("sleep_max", SL_OPT_INT, "2000", "cpu calls sleep 0 to this many microseconds", sleep_max),
    OPT("delay_max", SL_OPT_INT, "5", "io calls complete up to this many milliseconds later", delay_max),
    OPT("retry_pct", SL_OPT_INT, "0", "percent of calls that fail as retryable", retry_pct),
    OPT("bad_text", SL_OPT_STRING, "", "documents containing this fail here as bad input", bad_text),
    OPT("tag", SL_OPT_STRING, "page", "page stages: the name in the elements they add", tag),
    OPT("dimension", SL_OPT_INT, "8", "embedders: vector dimension", dimension),
    OPT("model", SL_OPT_STRING, "jitter", "embedders: the model named to the core", model),
    OPT("usage", SL_OPT_INT, "0", "io: input tokens reported per call; 0: a quarter of the characters",
        usage),
    OPT("usage_first", SL_OPT_INT, "0", "io: input tokens reported by the instance's first call",
        usage_first),
    OPT("children", SL_OPT_INT, "0", "parser: documents found inside each document that is no child itself",
        children),
    {0},
};

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The next number of the instance's stream (any thread). */
static uint64_t draw(state *s) { return mix(s->stream + atomic_fetch_add(&s->draws, 1)); }

static int init(sl_instance *inst, const void *config, void **out) {
    const conf *c = config;
    if (c->retry_pct < 0 || c->retry_pct > 100)
        return sl_instance_fail(inst, SL_EFATAL, "retry_pct: %lld is not a percentage",
                                (long long)c->retry_pct);
    if (c->sleep_max < 0 || c->delay_max < 0 || c->dimension < 1 || c->dimension > 4096)
        return sl_instance_fail(inst, SL_EFATAL, "sleep_max, delay_max or dimension out of range");
    state *s = calloc(1, sizeof *s);
    if (!s) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    s->c = *c;
    s->inst = inst;
    const char *name = sl_instance_name(inst);
    s->stream = sl_hash64(name, strlen(name), (uint64_t)c->seed);
    atomic_init(&s->draws, 0);
    atomic_init(&s->first_done, 0);
#ifdef JITTER_EMBED
    sl_instance_set_dimension(inst, (uint32_t)c->dimension);
    sl_instance_set_model(inst, c->model);
#endif
    *out = s;
    return 0;
}

static void fini(void *st) { free(st); }

static bool contains(const char *p, size_t len, const char *needle) {
    return *needle && memmem(p, len, needle, strlen(needle)) != NULL;
}

static bool retry_now(state *s) { return s->c.retry_pct > 0 && draw(s) % 100 < (uint64_t)s->c.retry_pct; }

#if defined(JITTER_CPU) || (!defined(JITTER_EMBED) && !defined(JITTER_LLM))

/* cpu work takes a random while */
static void jitter(state *s) {
    uint64_t us = s->c.sleep_max ? draw(s) % ((uint64_t)s->c.sleep_max + 1) : 0;
    struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000};
    while (us && nanosleep(&ts, &ts) != 0) {
    }
}

#endif

#ifdef JITTER_PARSE

static int parse(sl_call *call, sl_doc *doc) {
    state *s = sl_call_state(call);
    jitter(s);
    if (retry_now(s)) return sl_fail(call, SL_ERETRY, "busy, try again");
    size_t len;
    const char *data = sl_doc_data(doc, &len);
    unsigned n = 0;
    const char *nl = memchr(data, '\n', len);
    if (len < 7 || !nl || sscanf(data, "pages %u", &n) != 1 || n > 1000)
        return sl_fail(call, SL_EBADINPUT, "first line must be 'pages N' (N from 0 to 1000)");
    if (contains(data, len, s->c.bad_text))
        return sl_fail(call, SL_EBADINPUT, "the parser refuses '%s'", s->c.bad_text);
    if (n && sl_doc_set_page_count(doc, n) < 0) return sl_fail(call, SL_ENOMEM, "out of memory");
    const char *p = nl + 1, *end = data + len;
    while (p < end) {
        while (p < end && *p == '\n') p++;
        const char *q = p;
        while (q < end && !(*q == '\n' && q + 1 < end && q[1] == '\n')) q++;
        size_t l = (size_t)(q - p);
        while (l && p[l - 1] == '\n') l--;
        if (l && sl_doc_add_element(doc, SL_EL_PARAGRAPH, p, l) < 0)
            return sl_fail(call, SL_ENOMEM, "out of memory");
        p = q;
    }
    /* children: "pages 1" documents of one paragraph, routed as text/plain */
    for (int64_t k = 0; k < s->c.children && !strchr(sl_doc_uri(doc), '#'); k++) {
        char child[256], name[32];
        int cl = snprintf(child, sizeof child, "pages 1\n\nnested child %lld of %s.\n", (long long)k,
                          sl_doc_uri(doc));
        snprintf(name, sizeof name, "child-%lld.txt", (long long)k);
        if (sl_doc_add_child(doc, name, k % 2 ? "text/plain" : NULL, child, (size_t)cl) < 0)
            return sl_fail(call, SL_EBADINPUT, "child %lld refused", (long long)k);
    }
    return 0;
}

static const char *const media[] = {"text/plain", NULL};

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,       .name = "test-jitter-parse",
    .version = "1.0.0",     .summary = "test: 'pages N' documents, parsed after a random while",
    .role = SL_ROLE_PARSER, .bottleneck = SL_CPU,
    .options = options,     .config_size = sizeof(conf),
    .media_types = media,   .init = init,
    .fini = fini,           .parse = parse,
};

#elif defined(JITTER_PAGE)

static int page(sl_call *call, sl_doc *doc, uint32_t p) {
    state *s = sl_call_state(call);
    jitter(s);
    if (retry_now(s)) return sl_fail(call, SL_ERETRY, "page %u: busy, try again", p);
    size_t len;
    const char *data = sl_doc_data(doc, &len);
    if (p == sl_doc_page_count(doc) && contains(data, len, s->c.bad_text))
        return sl_fail(call, SL_EBADINPUT, "page %u holds '%s'", p, s->c.bad_text);
    char line[128];
    int n = snprintf(line, sizeof line, "%s page %u", s->c.tag, p);
    int e = sl_doc_add_element(doc, SL_EL_PARAGRAPH, line, (size_t)n);
    if (e < 0) return sl_fail(call, SL_ENOMEM, "out of memory");
    sl_elem_set_page(doc, (size_t)e, p);
    return 0;
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,     .name = "test-jitter-page",
    .version = "1.0.0",   .summary = "test: a page stage that takes a random while",
    .role = SL_ROLE_PAGE, .bottleneck = SL_CPU,
    .options = options,   .config_size = sizeof(conf),
    .init = init,         .fini = fini,
    .page = page,
};

#elif defined(JITTER_CHUNK)

static int chunk(sl_call *call, sl_doc *doc) {
    state *s = sl_call_state(call);
    jitter(s);
    if (retry_now(s)) return sl_fail(call, SL_ERETRY, "busy, try again");
    size_t len;
    const char *data = sl_doc_data(doc, &len);
    if (contains(data, len, s->c.bad_text))
        return sl_fail(call, SL_EBADINPUT, "the chunker refuses '%s'", s->c.bad_text);
    size_t n = sl_doc_element_count(doc);
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const char *t = sl_element_text(doc, i, &l);
        int c = sl_doc_add_chunk(doc, t, l);
        if (c < 0) return sl_fail(call, SL_ENOMEM, "out of memory");
        sl_chunk_set_position(doc, (size_t)c, sl_element_page(doc, i), sl_element_line(doc, i));
    }
    return 0;
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "test-jitter-chunk",
    .version = "1.0.0",
    .summary = "test: one chunk per element, after a random while",
    .role = SL_ROLE_CHUNKER,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(conf),
    .init = init,
    .fini = fini,
    .chunk = chunk,
};

#else /* the embedders and the llm */

/* A call answered later, from a timer (io) or a thread of its own (cpu). */
typedef struct later {
    sl_call *call;
    int rc;
    state *s;
} later;

#ifdef JITTER_CPU

static void *later_thread(void *arg) {
    later *l = arg;
    jitter(l->s);
    sl_call_done(l->call, l->rc);
    free(l);
    return NULL;
}

#else

static void later_fire(void *arg) {
    later *l = arg;
    sl_call *call = l->call;
    int rc = l->rc;
    free(l);
    sl_call_done(call, rc);
}

#endif

/* Returns rc the way this call's draw says: at once, or SL_PENDING and
 * sl_call_done now, on the next loop iteration or a few ms later. */
static int answer(state *s, sl_call *call, int rc) {
    uint64_t in = s->c.usage;
    int expected = 0;
    if (s->c.usage_first && atomic_compare_exchange_strong(&s->first_done, &expected, 1))
        in = s->c.usage_first;
    if (in) sl_call_usage(call, (uint64_t)in, 1);
#ifdef JITTER_CPU
    /* a cpu plugin may answer later too, from any thread (a sink's
     * committer, say): at once, sl_call_done on this pool thread before
     * returning SL_PENDING, or from a thread of its own after a while */
    jitter(s);
    uint64_t way = draw(s) % 4;
    if (way == 0) return rc;
    if (way == 1) {
        sl_call_done(call, rc);
        return SL_PENDING;
    }
    later *l = malloc(sizeof *l);
    pthread_t t;
    pthread_attr_t a;
    if (!l) return rc;
    *l = (later){call, rc, s};
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int started = pthread_create(&t, &a, later_thread, l) == 0;
    pthread_attr_destroy(&a);
    if (!started) {
        free(l);
        return rc;
    }
    return SL_PENDING;
#else
    uint64_t r = draw(s), way = r % 8;
    switch (way) {
    case 0: return rc;
    case 1: sl_call_done(call, rc); return SL_PENDING;
    default: {
        later *l = malloc(sizeof *l);
        if (!l) return rc;
        *l = (later){call, rc, s};
        uint64_t ms = way < 4 || !s->c.delay_max ? 0 : 1 + (r >> 8) % (uint64_t)s->c.delay_max;
        if (sl_timer_start(s->inst, ms, later_fire, l, NULL) != 0) {
            free(l);
            return rc;
        }
        return SL_PENDING;
    }
    }
#endif
}

#ifdef JITTER_EMBED

static int embed(sl_call *call, const sl_text *texts, size_t n, float *out) {
    state *s = sl_call_state(call);
    uint32_t dim = (uint32_t)s->c.dimension;
    int rc = 0;
    size_t chars = 0;
    if (retry_now(s)) {
        if (draw(s) % 2) sl_call_retry_after(call, (int64_t)(draw(s) % 3));
        rc = sl_fail(call, SL_ERETRY, "busy, try again");
    }
    for (size_t i = 0; !rc && i < n; i++) {
        chars += texts[i].len;
        if (contains(texts[i].ptr, texts[i].len, s->c.bad_text)) {
            rc = sl_fail(call, SL_EBADINPUT, "refusing text %zu: it holds '%s'", i, s->c.bad_text);
            break;
        }
        float *v = out + i * dim;
        memset(v, 0, dim * sizeof *v);
        float a = (float)texts[i].len, norm = sqrtf(a * a + (dim > 1 ? 1.0f : 0.0f));
        v[0] = norm > 0 ? a / norm : 1.0f;
        if (dim > 1) v[1] = 1.0f / norm;
    }
    if (!s->c.usage && !rc) sl_call_usage(call, chars / 4 + 1, 0);
    return answer(s, call, rc);
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
#ifdef JITTER_CPU
    .name = "test-jitter-embed-cpu",
    .summary = "test: a cpu embedder that takes a random while",
    .bottleneck = SL_CPU,
#else
    .name = "test-jitter-embed",
    .summary = "test: an io embedder that answers in a random order",
    .bottleneck = SL_IO,
#endif
    .version = "1.0.0",
    .role = SL_ROLE_EMBEDDER,
    .options = options,
    .config_size = sizeof(conf),
    .batch_size = 8,
    .init = init,
    .fini = fini,
    .embed = embed,
};

#else /* JITTER_LLM */

static int complete(sl_call *call, const sl_text *prompt, sl_completion *out) {
    state *s = sl_call_state(call);
    int rc = 0;
    if (retry_now(s)) {
        if (draw(s) % 2) sl_call_retry_after(call, (int64_t)(draw(s) % 3));
        rc = sl_fail(call, SL_ERETRY, "overloaded, try again");
    } else if (contains(prompt->ptr, prompt->len, s->c.bad_text)) {
        rc = sl_fail(call, SL_EBADINPUT, "the prompt holds '%s'", s->c.bad_text);
    } else {
        char text[64];
        int n = snprintf(text, sizeof text, "summary of %zu characters", prompt->len);
        if (sl_completion_set(out, text, (size_t)n) != 0) rc = sl_fail(call, SL_ENOMEM, "out of memory");
    }
    if (!s->c.usage && !rc) sl_call_usage(call, prompt->len / 4 + 1, 5);
    return answer(s, call, rc);
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,     .name = "test-jitter-llm",
    .version = "1.0.0",   .summary = "test: an io llm that answers in a random order",
    .role = SL_ROLE_LLM,  .bottleneck = SL_IO,
    .options = options,   .config_size = sizeof(conf),
    .init = init,         .fini = fini,
    .complete = complete,
};

#endif
#endif

SL_PLUGIN_EXPORT(desc)
