/* embed.c - embed-torch: sentence embeddings from a BERT-family encoder
 * exported to TorchScript (all-MiniLM-L6-v2, bge-small, e5-small, gte-small).
 *
 * A gpu embedder: the batcher hands it chunk texts gathered across many
 * documents. Each text (after the passage prefix, or the query prefix for
 * `sluice query`) is tokenized in C (plugins/common/tokenizer.h: WordPiece
 * from vocab.txt, or SentencePiece), framed by [CLS] ... [SEP] and cut to
 * max_seq_len; the batch is padded to its longest text and runs as one
 * forward(input_ids, attention_mask[, token_type_ids]). The last hidden
 * state is pooled here, in C: the mean over the attended tokens (what
 * sentence-transformers' mean pooling does, [CLS] and [SEP] included) or
 * the [CLS] token's state, then L2-normalised when asked. Out of memory
 * answers SL_ENOMEM, and the batcher splits the batch and retries.
 *
 * libtorch sits behind embed_shim.h. The model is used under a lock: the
 * batcher's dispatcher runs it, and `sluice serve` embeds /query questions
 * on another thread.
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include "embed_shim.h"
#include "tokenizer.h"

#define MAX_SEQ 8192

typedef struct conf {
    const char *model;
    const char *vocab;
    const char *spm;
    bool lowercase;
    const char *strip_accents;
    const char *pooling;
    bool normalize;
    int64_t max_seq_len;
    const char *query_prefix;
    const char *passage_prefix;
    int64_t dimension;
    const char *device;
    int64_t threads;
    const char *model_name;
} conf;

static const sl_option options[] = {
    {"model",
     SL_OPT_PATH,
     NULL,
     "TorchScript file of the encoder (export: README.md)",
     SL_OPT_REQUIRED,
     offsetof(conf, model),
     NULL,
     {0}},
    {"vocab",
     SL_OPT_PATH,
     "",
     "WordPiece vocab.txt of the model (or spm)",
     0,
     offsetof(conf, vocab),
     NULL,
     {0}},
    {"spm",
     SL_OPT_PATH,
     "",
     "SentencePiece .model of the model (or vocab)",
     0,
     offsetof(conf, spm),
     NULL,
     {0}},
    {"lowercase",
     SL_OPT_BOOL,
     "true",
     "WordPiece: lowercase before lookup (uncased models)",
     0,
     offsetof(conf, lowercase),
     NULL,
     {0}},
    {"strip_accents",
     SL_OPT_ENUM,
     "auto",
     "WordPiece: strip accents (auto: when lowercasing)",
     0,
     offsetof(conf, strip_accents),
     "auto|yes|no",
     {0}},
    {"pooling",
     SL_OPT_ENUM,
     "mean",
     "mean of the attended tokens, or the [CLS] token (bge)",
     0,
     offsetof(conf, pooling),
     "mean|cls",
     {0}},
    {"normalize", SL_OPT_BOOL, "true", "L2-normalise each vector", 0, offsetof(conf, normalize), NULL, {0}},
    {"max_seq_len",
     SL_OPT_INT,
     "256",
     "most tokens per text, [CLS] and [SEP] included; longer texts are cut",
     0,
     offsetof(conf, max_seq_len),
     NULL,
     {0}},
    {"query_prefix",
     SL_OPT_STRING,
     "",
     "put before a query (`sluice query`); E5: \"query: \"",
     0,
     offsetof(conf, query_prefix),
     NULL,
     {0}},
    {"passage_prefix",
     SL_OPT_STRING,
     "",
     "put before each chunk; E5: \"passage: \"",
     0,
     offsetof(conf, passage_prefix),
     NULL,
     {0}},
    {"dimension",
     SL_OPT_INT,
     "0",
     "the vector size the model must produce (0: whatever it does)",
     0,
     offsetof(conf, dimension),
     NULL,
     {0}},
    SL_TORCH_OPTION_DEVICE(conf),
    SL_TORCH_OPTION_THREADS(conf),
    {"model_name",
     SL_OPT_STRING,
     "",
     "the model's name for fallback checks (default: the model file's name)",
     0,
     offsetof(conf, model_name),
     NULL,
     {0}},
    {NULL, 0, NULL, NULL, 0, 0, NULL, {0}},
};

typedef struct state {
    conf c;
    tok *tk;
    et_model *model;
    pthread_mutex_t lock; /* one forward at a time */
    int64_t dim;
    bool cls;
} state;

/* --- lifecycle --- */

static void fini(void *st) {
    state *s = st;
    if (!s) return;
    et_model_free(s->model);
    tok_free(s->tk);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int embed_batch(state *s, const sl_text *texts, size_t n, bool query, float *out, int64_t *dim,
                       char *err, size_t errlen);

static int init(sl_instance *inst, const void *config, void **out) {
    const conf *c = config;
    bool have_vocab = c->vocab && *c->vocab, have_spm = c->spm && *c->spm;
    if (have_vocab == have_spm)
        return sl_instance_fail(inst, SL_EFATAL,
                                "give exactly one tokenizer: vocab (WordPiece vocab.txt) or spm "
                                "(SentencePiece .model)");
    if (c->max_seq_len < 3 || c->max_seq_len > MAX_SEQ)
        return sl_instance_fail(inst, SL_EFATAL, "max_seq_len must be 3 to %d, not %lld", MAX_SEQ,
                                (long long)c->max_seq_len);
    if (c->dimension < 0 || c->threads < 0)
        return sl_instance_fail(inst, SL_EFATAL, "dimension and threads cannot be negative");
    state *s = calloc(1, sizeof *s);
    if (!s) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    s->c = *c;
    s->cls = strcmp(c->pooling, "cls") == 0;
    pthread_mutex_init(&s->lock, NULL);
    char err[1024];
    int rc = 0;
    bool strip = strcmp(c->strip_accents, "auto") == 0 ? c->lowercase : strcmp(c->strip_accents, "yes") == 0;
    if (have_vocab ? tok_open_wordpiece(c->vocab, c->lowercase, strip, &s->tk, err, sizeof err)
                   : tok_open_spm(c->spm, &s->tk, err, sizeof err)) {
        rc = sl_instance_fail(inst, SL_EFATAL, "%s", err);
    } else if (et_model_load(c->model, c->device, &s->model)) {
        rc = sl_instance_fail(inst, SL_EFATAL, "cannot load model %s: %s", c->model, sl_torch_last_error());
    } else {
        /* one probe text: the model answers with its width, or fails now
         * with the reason instead of on every chunk */
        sl_text probe = {"probe", 5};
        int64_t dim = 0;
        rc = embed_batch(s, &probe, 1, false, NULL, &dim, err, sizeof err);
        if (rc) {
            rc = sl_instance_fail(inst, SL_EFATAL, "model %s failed on a probe text: %s", c->model, err);
        } else if (dim < 1 || dim > 65536) {
            rc = sl_instance_fail(inst, SL_EFATAL, "model %s answers vectors of %lld values", c->model,
                                  (long long)dim);
        } else if (c->dimension && dim != c->dimension) {
            rc = sl_instance_fail(inst, SL_EFATAL,
                                  "model %s makes %lld-dimension vectors, but dimension = %lld", c->model,
                                  (long long)dim, (long long)c->dimension);
        } else {
            s->dim = dim;
            sl_instance_set_dimension(inst, (uint32_t)dim);
            const char *name = c->model_name && *c->model_name ? c->model_name : c->model;
            const char *slash = strrchr(name, '/');
            sl_instance_set_model(inst, slash && !(c->model_name && *c->model_name) ? slash + 1 : name);
            sl_log(inst, SL_LOG_INFO,
                   "model %s on %s (libtorch %s): %lld dimensions, %s tokenizer, %s pooling", c->model,
                   et_model_device(s->model), sl_torch_version(), (long long)dim, tok_kind(s->tk),
                   c->pooling);
        }
    }
    if (rc) {
        fini(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* The dispatcher thread: libtorch's CPU threads are set where forward runs. */
static int thread_init(void *st, void **ts) {
    state *s = st;
    sl_torch_thread_init(s->c.threads);
    *ts = NULL;
    return 0;
}

/* --- tokens in --- */

/* The text's ids, framed and cut to max_seq_len, into ids; its count. */
static int tokenize(const state *s, const char *prefix, const sl_text *t, tok_ids *ids, char **join,
                    size_t *cap) {
    /* an INI value cannot end in a space: "query:" is joined to the text
     * with one, as E5's "query: " */
    size_t pl = strlen(prefix), room = (size_t)s->c.max_seq_len - tok_specials(s->tk);
    bool space = pl && prefix[pl - 1] != ' ';
    /* a window of the text is enough for `room` tokens: SentencePiece
     * encodes whole strings, and a chunk can be megabytes */
    size_t len = t->len, most = room * 64 + 64;
    if (len > most) {
        len = most;
        while (len && ((unsigned char)t->ptr[len] & 0xC0) == 0x80) len--;
    }
    if (pl + 1 + len + 1 > *cap) {
        char *nj = realloc(*join, pl + 1 + len + 1);
        if (!nj) return -1;
        *join = nj;
        *cap = pl + 1 + len + 1;
    }
    memcpy(*join, prefix, pl);
    if (space) (*join)[pl++] = ' ';
    memcpy(*join + pl, t->ptr, len);
    (*join)[pl + len] = '\0';
    tok_ids_clear(ids);
    return tok_encode(s->tk, *join, pl + len, room, ids);
}

/* Embeds texts[0, n): out gets n * dim floats (out NULL: only *dim is
 * learnt). 0, SL_ENOMEM (split and retry), or SL_EFATAL with err. */
static int embed_batch(state *s, const sl_text *texts, size_t n, bool query, float *out, int64_t *dim,
                       char *err, size_t errlen) {
    const char *prefix = query ? s->c.query_prefix : s->c.passage_prefix;
    tok_ids *all = calloc(n, sizeof *all);
    char *join = NULL;
    size_t cap = 0, t = 1;
    int rc = 0;
    if (!all) rc = SL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (tokenize(s, prefix ? prefix : "", &texts[i], &all[i], &join, &cap)) rc = SL_ENOMEM;
        size_t len = all[i].n + tok_specials(s->tk);
        if (len > t) t = len;
    }
    free(join);
    int64_t *ids = NULL, *mask = NULL, *types = NULL;
    if (rc == 0) {
        ids = calloc(n * t, sizeof *ids);
        mask = calloc(n * t, sizeof *mask);
        types = calloc(n * t, sizeof *types);
        if (!ids || !mask || !types) rc = SL_ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int64_t *row = ids + i * t, *m = mask + i * t;
        size_t k = 0;
        if (tok_cls(s->tk) >= 0) row[k] = tok_cls(s->tk), m[k++] = 1;
        for (size_t j = 0; j < all[i].n; j++) row[k] = all[i].id[j], m[k++] = 1;
        if (tok_sep(s->tk) >= 0) row[k] = tok_sep(s->tk), m[k++] = 1;
        for (; k < t; k++) row[k] = tok_pad(s->tk);
    }
    float *hs = NULL;
    int64_t h = 0;
    int pooled = 0;
    if (rc == 0) {
        pthread_mutex_lock(&s->lock);
        int trc = et_forward(s->model, ids, mask, types, (int64_t)n, (int64_t)t, &hs, &h, &pooled);
        pthread_mutex_unlock(&s->lock);
        if (trc == SL_TORCH_ENOMEM) {
            rc = SL_ENOMEM;
            snprintf(err, errlen, "out of memory running %zu texts of up to %zu tokens: %s", n, t,
                     sl_torch_last_error());
        } else if (trc) {
            rc = SL_EFATAL;
            snprintf(err, errlen, "the model failed on %zu texts of up to %zu tokens: %s", n, t,
                     sl_torch_last_error());
        } else if (s->dim && h != s->dim) {
            rc = SL_EFATAL;
            snprintf(err, errlen, "the model answered %lld values a text, %lld at init", (long long)h,
                     (long long)s->dim);
        }
    } else {
        snprintf(err, errlen, "out of memory for a batch of %zu texts", n);
    }
    if (rc == 0) *dim = h;
    for (size_t i = 0; rc == 0 && out && i < n; i++) {
        float *v = out + i * (size_t)h;
        if (pooled) {
            memcpy(v, hs + i * (size_t)h, (size_t)h * sizeof *v);
        } else if (s->cls) {
            memcpy(v, hs + i * t * (size_t)h, (size_t)h * sizeof *v);
        } else { /* mean over the attended tokens, in double */
            for (int64_t d = 0; d < h; d++) {
                double sum = 0;
                size_t cnt = 0;
                for (size_t k = 0; k < t; k++)
                    if (mask[i * t + k]) sum += hs[(i * t + k) * (size_t)h + (size_t)d], cnt++;
                v[d] = (float)(cnt ? sum / (double)cnt : 0);
            }
        }
        if (s->c.normalize) {
            double sq = 0;
            for (int64_t d = 0; d < h; d++) sq += (double)v[d] * v[d];
            double norm = sqrt(sq);
            if (norm > 1e-12)
                for (int64_t d = 0; d < h; d++) v[d] = (float)(v[d] / norm);
        }
    }
    free(hs);
    free(ids);
    free(mask);
    free(types);
    for (size_t i = 0; all && i < n; i++) tok_ids_free(&all[i]);
    free(all);
    return rc;
}

static int embed(sl_call *call, const sl_text *texts, size_t n, float *out) {
    state *s = sl_call_state(call);
    char err[1024] = "";
    int64_t dim = 0;
    int rc = n ? embed_batch(s, texts, n, sl_call_is_query(call) != 0, out, &dim, err, sizeof err) : 0;
    return rc ? sl_fail(call, rc, "%s", err) : 0;
}

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "embed-torch",
    .version = "0.1.0",
    .summary = "sentence embeddings from a BERT-family encoder in TorchScript (WordPiece or SentencePiece), "
               "on the gpu batcher; CUDA when present, else CPU",
    .role = SL_ROLE_EMBEDDER,
    .bottleneck = SL_GPU,
    .options = options,
    .config_size = sizeof(conf),
    .batch_size = 32,
    .init = init,
    .fini = fini,
    .thread_init = thread_init,
    .embed = embed,
};

SL_PLUGIN_EXPORT(desc)
