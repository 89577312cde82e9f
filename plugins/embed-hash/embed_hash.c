/* embed_hash.c - a local embedder by feature hashing: deterministic, offline,
 * no model files.
 *
 * Each text is folded to ASCII lower case and split into words (runs of
 * ASCII letters and digits; bytes >= 0x80 count as letters, so UTF-8 words
 * stay whole). Every word adds one feature for itself and one for each
 * character n-gram of " word " (n = ngram_min..ngram_max, counted in code
 * points, the spaces marking the word's edges, as fastText does). A feature
 * is hashed with sl_hash64 into one of `dimension` buckets and adds +w or -w
 * there, the sign taken from another bit of the same hash (the signed
 * "hashing trick": collisions cancel on average instead of piling up). The
 * sum is L2-normalised, so a dot product is a cosine. Texts that share words
 * and word pieces land near each other; that is all this embedder knows,
 * which makes it a good default for tests and offline runs, not a semantic
 * model.
 *
 * Words longer than MAX_WORD bytes are cut into pieces of at most that size
 * (at a code point boundary), so the work per byte is bounded and the
 * scratch space is a fixed stack buffer: no allocation per call.
 *
 * Words repeat (a few hundred make up most of any text), and a short word
 * costs a dozen hashes. So each thread keeps, per instance, a direct-mapped
 * cache of short words and the features they add (bucket and sign, in the
 * order they are added): a word seen before costs one hash and a compare.
 * The floats are added in the same order as without the cache, so vectors
 * are bit for bit the same. A thread's cache is its own (a pthread key), so
 * there is still no shared mutable state; the instance frees them all.
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <sluice/sluice.h>

#define MAX_WORD 256   /* bytes of one word piece, not counting the edge spaces */
#define MAX_NGRAM 16   /* largest ngram_max accepted */
#define MAX_DIM 65536  /* largest dimension accepted */
#define MAX_WEIGHT 1e6 /* largest word_weight accepted */

/* Word features and n-gram features hash with different seeds, so the word
 * "cat" and the n-gram "cat" of "concatenate" are different features. */
#define WORD_SEED_SALT UINT64_C(0x9e3779b97f4a7c15)

typedef struct embed_hash_config {
    int64_t dimension;
    int64_t ngram_min;
    int64_t ngram_max;
    bool words;
    double word_weight;
    int64_t seed;
} embed_hash_config;

/* The word cache: CACHE_SLOTS entries (a power of two), each a word of at
 * most CACHE_WORD bytes whose features number at most CACHE_FEATS. About
 * 0.6 MB a thread, which holds the common words of any one language. */
#define CACHE_SLOTS 4096
#define CACHE_WORD 24
#define CACHE_FEATS 64

typedef struct cached_word {
    uint8_t len;   /* bytes of the word; 0: an empty slot */
    uint8_t nfeat; /* features, the whole word's first when `words` */
    char word[CACHE_WORD];
    uint64_t neg; /* bit k: feature k subtracts */
    uint16_t bucket[CACHE_FEATS];
} cached_word;

typedef struct word_cache {
    struct word_cache *next; /* the instance's list, for fini */
    cached_word slot[CACHE_SLOTS];
} word_cache;

/* Read-only after init, except the cache list (under `mu`, touched once a
 * thread), so every thread may use it at once. */
typedef struct embed_hash {
    uint32_t dim;
    uint32_t nmin, nmax;
    bool words;
    float word_weight;
    uint64_t seed, word_seed;
    pthread_key_t key; /* this thread's word_cache */
    pthread_mutex_t mu;
    word_cache *caches;
} embed_hash;

static const sl_option options[] = {
    {.name = "dimension",
     .type = SL_OPT_INT,
     .def = "384",
     .help = "vector size, 1..65536",
     .offset = offsetof(embed_hash_config, dimension)},
    {.name = "ngram_min",
     .type = SL_OPT_INT,
     .def = "3",
     .help = "shortest character n-gram, in code points (1..16)",
     .offset = offsetof(embed_hash_config, ngram_min)},
    {.name = "ngram_max",
     .type = SL_OPT_INT,
     .def = "5",
     .help = "longest character n-gram, in code points (ngram_min..16)",
     .offset = offsetof(embed_hash_config, ngram_max)},
    {.name = "words",
     .type = SL_OPT_BOOL,
     .def = "true",
     .help = "add a feature for each whole word, besides its n-grams",
     .offset = offsetof(embed_hash_config, words)},
    {.name = "word_weight",
     .type = SL_OPT_DOUBLE,
     .def = "1.0",
     .help = "weight of a whole-word feature; an n-gram weighs 1 (0..1000000)",
     .offset = offsetof(embed_hash_config, word_weight)},
    {.name = "seed",
     .type = SL_OPT_INT,
     .def = "0",
     .help = "hash seed: another seed gives another, incompatible vector space",
     .offset = offsetof(embed_hash_config, seed)},
    {0},
};

static int init(sl_instance *inst, const void *config, void **state) {
    const embed_hash_config *c = config;
    if (c->dimension < 1 || c->dimension > MAX_DIM)
        return sl_instance_fail(inst, SL_EFATAL, "option 'dimension': %lld is out of range (1..%d)",
                                (long long)c->dimension, MAX_DIM);
    if (c->ngram_min < 1 || c->ngram_min > MAX_NGRAM)
        return sl_instance_fail(inst, SL_EFATAL, "option 'ngram_min': %lld is out of range (1..%d)",
                                (long long)c->ngram_min, MAX_NGRAM);
    if (c->ngram_max < c->ngram_min || c->ngram_max > MAX_NGRAM)
        return sl_instance_fail(inst, SL_EFATAL,
                                "option 'ngram_max': %lld is out of range (ngram_min %lld..%d)",
                                (long long)c->ngram_max, (long long)c->ngram_min, MAX_NGRAM);
    if (!(c->word_weight >= 0 && c->word_weight <= MAX_WEIGHT))
        return sl_instance_fail(inst, SL_EFATAL, "option 'word_weight': %g is out of range (0..%g)",
                                c->word_weight, MAX_WEIGHT);

    embed_hash *eh = calloc(1, sizeof *eh);
    if (!eh) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    eh->dim = (uint32_t)c->dimension;
    eh->nmin = (uint32_t)c->ngram_min;
    eh->nmax = (uint32_t)c->ngram_max;
    eh->words = c->words;
    eh->word_weight = (float)c->word_weight;
    eh->seed = (uint64_t)c->seed;
    eh->word_seed = eh->seed ^ WORD_SEED_SALT;
    /* No destructor: a thread's cache lives as long as the instance, which
     * frees every cache in fini (pool threads outlive no instance). */
    if (pthread_key_create(&eh->key, NULL) != 0) {
        free(eh);
        return sl_instance_fail(inst, SL_ENOMEM, "cannot create the word cache's thread key");
    }
    pthread_mutex_init(&eh->mu, NULL);

    /* Everything that shapes a vector is in the model name, so a fallback
     * chain cannot mix two embed-hash instances whose spaces differ. */
    char model[160];
    snprintf(model, sizeof model, "embed-hash/1 ngram=%u-%u words=%s word_weight=%g seed=%lld", eh->nmin,
             eh->nmax, eh->words ? "yes" : "no", c->word_weight, (long long)c->seed);
    sl_instance_set_dimension(inst, eh->dim);
    sl_instance_set_model(inst, model);
    *state = eh;
    return 0;
}

static void fini(void *state) {
    embed_hash *eh = state;
    pthread_key_delete(eh->key);
    for (word_cache *c = eh->caches, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    pthread_mutex_destroy(&eh->mu);
    free(eh);
}

/* Every accepted dimension fits the cache's uint16 buckets. */
_Static_assert(MAX_DIM <= UINT16_MAX + 1, "a bucket of the word cache must hold every dimension");

/* This thread's cache, made on first use; NULL (no cache, every word
 * hashed) when memory is short. */
static word_cache *thread_cache(embed_hash *eh) {
    word_cache *c = pthread_getspecific(eh->key);
    if (c) return c;
    c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (pthread_setspecific(eh->key, c) != 0) {
        free(c);
        return NULL;
    }
    pthread_mutex_lock(&eh->mu);
    c->next = eh->caches;
    eh->caches = c;
    pthread_mutex_unlock(&eh->mu);
    return c;
}

/* One feature's hash: bucket from the low 32 bits (multiply-shift, no
 * modulo bias to speak of), sign from the top bit. sl_hash64 is XXH3: the
 * same hash, inlined, since a word of n-grams makes a few calls a
 * character on 3 to 5 bytes each. */
static inline uint32_t feature_bucket(uint64_t h, uint32_t dim) {
    return (uint32_t)(((h & 0xffffffffu) * (uint64_t)dim) >> 32);
}

static inline void add_hashed(float *v, uint32_t dim, uint64_t h, float w) {
    v[feature_bucket(h, dim)] += (h >> 63) ? -w : w;
}

/* Features of " piece " with n-grams from code point starts cp[0..ncp]
 * (cp[ncp] the end): n-gram i..i+n spans [cp[i], cp[i+n]). */
static size_t ngram_count(const embed_hash *eh, size_t ncp) {
    size_t k = 0;
    for (uint32_t n = eh->nmin; n <= eh->nmax && n <= ncp; n++) k += ncp - n + 1;
    return k;
}

/* buf holds " piece " (len bytes, edge spaces included). */
static void add_word(const embed_hash *eh, word_cache *cache, float *v, const char *buf, size_t len) {
    const char *word = buf + 1;
    size_t wlen = len - 2;
    /* The whole word's hash: its feature, and the cache slot's index */
    uint64_t wh = XXH3_64bits_withSeed(word, wlen, eh->word_seed);
    cached_word *e = NULL;
    if (cache && wlen <= CACHE_WORD) {
        e = &cache->slot[(wh >> 32) & (CACHE_SLOTS - 1)];
        if (e->len == wlen && memcmp(e->word, word, wlen) == 0) {
            size_t k = 0;
            if (eh->words) {
                v[e->bucket[0]] += (e->neg & 1) ? -eh->word_weight : eh->word_weight;
                k = 1;
            }
            for (; k < e->nfeat; k++) v[e->bucket[k]] += ((e->neg >> k) & 1) ? -1.0f : 1.0f;
            return;
        }
    }

    uint32_t cp[MAX_WORD + 8];
    size_t ncp = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)buf[i] & 0xC0) != 0x80) cp[ncp++] = (uint32_t)i;
    cp[ncp] = (uint32_t)len;
    if (e && ngram_count(eh, ncp) + eh->words > CACHE_FEATS) e = NULL;
    size_t k = 0;
    uint64_t neg = 0;
    if (eh->words) {
        add_hashed(v, eh->dim, wh, eh->word_weight);
        if (e) {
            e->bucket[k] = (uint16_t)feature_bucket(wh, eh->dim);
            neg |= (wh >> 63) << k;
            k++;
        }
    }
    for (size_t i = 0; i < ncp; i++)
        for (uint32_t n = eh->nmin; n <= eh->nmax && i + n <= ncp; n++) {
            uint64_t h = XXH3_64bits_withSeed(buf + cp[i], cp[i + n] - cp[i], eh->seed);
            add_hashed(v, eh->dim, h, 1.0f);
            if (e) {
                e->bucket[k] = (uint16_t)feature_bucket(h, eh->dim);
                neg |= (h >> 63) << k;
                k++;
            }
        }
    if (e) {
        e->len = (uint8_t)wlen;
        e->nfeat = (uint8_t)k;
        e->neg = neg;
        memcpy(e->word, word, wlen);
    }
}

static inline bool is_word_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static void embed_one(const embed_hash *eh, word_cache *cache, const char *text, size_t len, float *v) {
    memset(v, 0, (size_t)eh->dim * sizeof *v);
    char buf[MAX_WORD + 8]; /* " " + piece + " " */
    size_t n = 0;           /* piece bytes in buf[1..] */
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)text[i] : ' ';
        if (is_word_byte(c)) {
            /* Cut an overlong word at a code point start; malformed runs of
             * continuation bytes are cut at a hard limit. */
            if (n >= MAX_WORD && ((c & 0xC0) != 0x80 || n >= MAX_WORD + 4)) {
                buf[0] = ' ';
                buf[n + 1] = ' ';
                add_word(eh, cache, v, buf, n + 2);
                n = 0;
            }
            buf[1 + n++] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
        } else if (n) {
            buf[0] = ' ';
            buf[n + 1] = ' ';
            add_word(eh, cache, v, buf, n + 2);
            n = 0;
        }
    }
    double sum = 0;
    for (uint32_t j = 0; j < eh->dim; j++) sum += (double)v[j] * v[j];
    if (sum > 0) {
        float inv = (float)(1.0 / sqrt(sum));
        for (uint32_t j = 0; j < eh->dim; j++) v[j] *= inv;
    }
}

static int embed(sl_call *call, const sl_text *texts, size_t n, float *out) {
    embed_hash *eh = sl_call_state(call);
    word_cache *cache = thread_cache(eh);
    for (size_t i = 0; i < n; i++) {
        if (!texts[i].ptr && texts[i].len) return sl_fail(call, SL_EINVAL, "text %zu has no bytes", i);
        embed_one(eh, cache, texts[i].ptr ? texts[i].ptr : "", texts[i].len, out + i * eh->dim);
    }
    return 0;
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "embed-hash",
    .version = "1.0.0",
    .summary = "local embedder by feature hashing of words and character n-grams (offline, deterministic)",
    .role = SL_ROLE_EMBEDDER,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(embed_hash_config),
    .batch_size = 256,
    .init = init,
    .fini = fini,
    .embed = embed,
};

SL_PLUGIN_EXPORT(desc)
