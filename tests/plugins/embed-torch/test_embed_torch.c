/* test_embed_torch.c - embed-torch and its tokenizers (plugins/common/
 * tokenizer.h), against references worked out here:
 *   - WordPiece on a hand-written vocabulary: the expected ids and byte
 *     ranges are written out below, for lowercasing, accents (é, Greek
 *     breathing marks and final sigma), punctuation, CJK ideographs,
 *     control characters, no-break spaces, continuation pieces, [UNK];
 *   - SentencePiece: a model trained here on a real text (a GPL licence)
 *     by libsentencepiece; our ids must be the library's own EncodeAsIds
 *     and our byte ranges must walk the text in order;
 *   - pooling: the test models (make_embed_models.cpp) answer a hidden state
 *     that is a known function of each token id, so mean pooling (padding
 *     left out), [CLS] pooling, L2 normalisation, truncation at max_seq_len
 *     and the query prefix are computed here independently and compared;
 *   - the batcher: a model that fails above 2 texts splits a batch of 8
 *     into calls of 2, every vector still right;
 *   - options and models that do not fit fail at init, saying why.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../check.h"
#include "../../plugin_test.h"
#include "batcher.h"
#include "ctx.h"
#include "instance.h"
#include "loop.h"
#include "ops.h"
#include "registry.h"
#include "tokenizer.h"

static sl_ctx *ctx;
static sl_registry *reg;
static const sl_loaded *plugin;
static char dir[4096], vocab[4200];

/* The hand-written vocabulary: its line number is the id. */
static const char *const words[] = {
    "[PAD]",  "[UNK]", "[CLS]",  "[SEP]",   "the",   "quick", "brown", "fox",   ",",   ".",    /* 0-9 */
    "un",     "##aff", "##able", "cafe",    "中",    "国",    "!",     "hello", "##s", "οδος", /* 10-19 */
    "αθηναι", "query", ":",      "passage", "zebra", "Café",                                   /* 20-25 */
};
#define NWORDS (sizeof words / sizeof *words)

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) exit(check_done());
    fputs(text, f);
    fclose(f);
}

static void write_vocab(void) {
    FILE *f = fopen(vocab, "wb");
    CHECK(f != NULL);
    for (size_t i = 0; f && i < NWORDS; i++) fprintf(f, "%s\n", words[i]);
    if (f) fclose(f);
}

/* --- WordPiece --- */

typedef struct tokw {
    int32_t id;
    uint32_t begin, end;
} tokw;

static void expect_tokens(const tok *t, const char *text, const tokw *w, size_t n) {
    tok_ids ids = {0};
    CHECK_INT(tok_encode(t, text, strlen(text), 0, &ids), 0);
    if (ids.n != n) fprintf(stderr, "'%s': %zu tokens, want %zu\n", text, ids.n, n);
    CHECK_INT(ids.n, n);
    for (size_t i = 0; i < n && i < ids.n; i++) {
        if (ids.id[i] != w[i].id || ids.begin[i] != w[i].begin || ids.end[i] != w[i].end)
            fprintf(stderr, "'%s' token %zu: %d [%u,%u), want %d [%u,%u)\n", text, i, ids.id[i], ids.begin[i],
                    ids.end[i], w[i].id, w[i].begin, w[i].end);
        CHECK_INT(ids.id[i], w[i].id);
        CHECK_INT(ids.begin[i], w[i].begin);
        CHECK_INT(ids.end[i], w[i].end);
    }
    tok_ids_free(&ids);
}

static void test_wordpiece_matches_the_hand_worked_ids(void) {
    char err[512];
    tok *t = NULL;
    CHECK_INT(tok_open_wordpiece(vocab, true, true, &t, err, sizeof err), 0);
    if (!t) return;
    CHECK_INT(tok_cls(t), 2);
    CHECK_INT(tok_sep(t), 3);
    CHECK_INT(tok_pad(t), 0);
    CHECK_INT(tok_unk(t), 1);
    CHECK_INT(tok_specials(t), 2);
    /* lowercased, punctuation split off, byte ranges in the input */
    expect_tokens(t, "The Quick, brown fox.",
                  (tokw[]){{4, 0, 3}, {5, 4, 9}, {8, 9, 10}, {6, 11, 16}, {7, 17, 20}, {9, 20, 21}}, 6);
    /* continuation pieces: un ##aff ##able; hello ##s */
    expect_tokens(t, "unaffable hellos",
                  (tokw[]){{10, 0, 2}, {11, 2, 5}, {12, 5, 9}, {17, 10, 15}, {18, 15, 16}}, 5);
    /* accents stripped: Café (é is 2 bytes) is cafe; CJK ideographs and a
     * full-width '!' (U+FF01, punctuation) each a token */
    expect_tokens(t, "Café 中国！", (tokw[]){{13, 0, 5}, {14, 6, 9}, {15, 9, 12}, {1, 12, 15}}, 4);
    expect_tokens(t, "中国!", (tokw[]){{14, 0, 3}, {15, 3, 6}, {16, 6, 7}}, 3);
    /* Greek: capitals lowercased with a final sigma (ΟΔΟΣ -> οδος),
     * breathing and accent marks stripped (Ἀθῆναι -> αθηναι) */
    expect_tokens(t, "ΟΔΟΣ Ἀθῆναι", (tokw[]){{19, 0, 8}, {20, 9, 23}}, 2);
    /* a control character is dropped (the word joins), a no-break space splits */
    expect_tokens(t,
                  "hel\x01lo the\xc2\xa0"
                  "fox",
                  (tokw[]){{17, 0, 6}, {4, 7, 10}, {7, 12, 15}}, 3);
    /* a word the vocabulary cannot spell, and one over 100 characters: [UNK] */
    char longw[160];
    memset(longw, 'a', 120);
    strcpy(longw + 120, " fox");
    expect_tokens(t, "xyz", (tokw[]){{1, 0, 3}}, 1);
    expect_tokens(t, longw, (tokw[]){{1, 0, 120}, {7, 121, 124}}, 2);
    /* limit: stops after that many */
    tok_ids ids = {0};
    CHECK_INT(tok_encode(t, "the quick brown fox", 19, 2, &ids), 0);
    CHECK_INT(ids.n, 2);
    tok_ids_free(&ids);
    CHECK_INT(tok_count(t, "the quick brown fox", 19), 4);
    tok_free(t);

    /* cased: no lowercasing, accents kept */
    CHECK_INT(tok_open_wordpiece(vocab, false, false, &t, err, sizeof err), 0);
    if (!t) return;
    expect_tokens(t, "Café The", (tokw[]){{25, 0, 5}, {1, 6, 9}}, 2);
    tok_free(t);

    /* a file that is not a vocabulary */
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/bad-vocab.txt", dir);
    write_file(bad, "a\nb\n");
    CHECK(tok_open_wordpiece(bad, true, true, &t, err, sizeof err) != 0);
    CHECK(strstr(err, "not a WordPiece vocab.txt") != NULL);
    CHECK(tok_open_wordpiece("/nonexistent/vocab.txt", true, true, &t, err, sizeof err) != 0);
    CHECK(strstr(err, "/nonexistent/vocab.txt") != NULL);
}

/* --- SentencePiece --- */

static void test_sentencepiece_ids_are_the_librarys(void) {
    const char *corpus = "/usr/share/common-licenses/GPL-3";
    char prefix[4200], model[4300], cmd[9000];
    snprintf(prefix, sizeof prefix, "%s/spm", dir);
    snprintf(model, sizeof model, "%s.model", prefix);
    snprintf(cmd, sizeof cmd, "'%s' --spm '%s' '%s'", MAKE_SPM, corpus, prefix);
    CHECK_INT(system(cmd), 0);
    char err[512];
    tok *t = NULL;
    CHECK_INT(tok_open_spm(model, &t, err, sizeof err), 0);
    if (!t) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    const char *text =
        "The licenses for most software are designed to take away your freedom; Ünïcödé 日本語.";
    tok_ids ids = {0};
    CHECK_INT(tok_encode(t, text, strlen(text), 0, &ids), 0);
    CHECK(ids.n > 5);
    snprintf(cmd, sizeof cmd, "'%s' --spm-ids '%s' '%s'", MAKE_SPM, model, text);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    size_t k = 0;
    int id;
    while (p && fscanf(p, "%d", &id) == 1) {
        if (k < ids.n) CHECK_INT(ids.id[k], id);
        k++;
    }
    if (p) CHECK_INT(pclose(p), 0);
    CHECK_INT(k, ids.n);
    /* byte ranges walk the text in order and end at its end */
    uint32_t at = 0;
    for (size_t i = 0; i < ids.n; i++) {
        CHECK(ids.begin[i] >= at || ids.begin[i] == ids.end[i]);
        CHECK(ids.end[i] >= ids.begin[i]);
        if (ids.end[i] > at) at = ids.end[i];
    }
    CHECK_INT(at, strlen(text));
    CHECK_INT(tok_vocab_size(t), 300);
    CHECK(tok_cls(t) >= 0 && tok_sep(t) >= 0); /* <s> and </s> */
    tok_ids_free(&ids);
    tok_free(t);
    CHECK(tok_open_spm(vocab, &t, err, sizeof err) != 0); /* a vocab.txt is not a model */
    CHECK(strstr(err, vocab) != NULL);
}

/* --- the plugin --- */

static sl_instance *embedder(const char *model, const char *const *kv, size_t n) {
    char opt[4300], voc[4300];
    snprintf(opt, sizeof opt, "model=%s/%s.pt", dir, model);
    snprintf(voc, sizeof voc, "vocab=%s", vocab);
    const char *base[] = {opt, voc, "device=cpu", "threads=1"};
    return plugin_instance(ctx, plugin, "embedder", base, 4, kv, n);
}

/* The test models' hidden state for token `id`, dimension d. */
static double hidden(int id, int d) { return sin((id + 1.0) * (d + 1.0) * 0.37); }

/* Mean pooling of the ids, by hand; normalised when asked. */
static void expected_mean(const int *ids, size_t n, bool norm, double *v) {
    double sq = 0;
    for (int d = 0; d < 8; d++) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += hidden(ids[i], d);
        v[d] = s / (double)n;
        sq += v[d] * v[d];
    }
    for (int d = 0; norm && d < 8; d++) v[d] /= sqrt(sq);
}

static void expect_vector(const float *got, const double *want, const char *what) {
    for (int d = 0; d < 8; d++) {
        if (fabs(got[d] - want[d]) > 1e-5)
            fprintf(stderr, "%s: dimension %d is %.6f, want %.6f\n", what, d, got[d], want[d]);
        CHECK(fabs(got[d] - want[d]) <= 1e-5);
    }
}

typedef struct embed_args {
    const sl_text *texts;
    size_t n;
    float *out;
    int query;
} embed_args;

static int call_embed(sl_call *call, void *arg) {
    embed_args *a = arg;
    call->query = a->query;
    return call->inst->desc->embed(call, a->texts, a->n, a->out);
}

static int embed(sl_instance *inst, const sl_text *texts, size_t n, float *out, int query) {
    embed_args a = {texts, n, out, query};
    sl_call call;
    int rc = sl_invoke(inst, call_embed, &a, &call);
    if (rc) fprintf(stderr, "embed: %s\n", call.msg);
    return rc;
}

static void test_pooling_and_normalisation_match_the_hand_computed(void) {
    const char *mean_kv[] = {"pooling=mean", "normalize=false"};
    sl_instance *inst = embedder("sin", mean_kv, 2);
    CHECK(inst != NULL);
    if (!inst) {
        fprintf(stderr, "%s\n", sl_ctx_errmsg(ctx));
        return;
    }
    CHECK_INT(inst->dim, 8);
    /* two texts of different lengths in one batch: the shorter is padded
     * with [PAD] (id 0), which must not count in its mean */
    sl_text texts[] = {{"The quick fox", 13}, {"fox", 3}};
    float out[16];
    CHECK_INT(embed(inst, texts, 2, out, 0), 0);
    double want[8];
    expected_mean((int[]){2, 4, 5, 7, 3}, 5, false, want);
    expect_vector(out, want, "mean of [CLS] the quick fox [SEP]");
    expected_mean((int[]){2, 7, 3}, 3, false, want);
    expect_vector(out + 8, want, "mean of [CLS] fox [SEP], padded");
    sl_instance_free(inst);

    /* normalised: the same direction, length 1 */
    inst = embedder("sin", NULL, 0);
    CHECK(inst != NULL);
    if (inst) {
        CHECK_INT(embed(inst, texts, 1, out, 0), 0);
        expected_mean((int[]){2, 4, 5, 7, 3}, 5, true, want);
        expect_vector(out, want, "normalised mean");
        sl_instance_free(inst);
    }

    /* [CLS] pooling: the first token's state, here the [CLS] id's */
    const char *cls_kv[] = {"pooling=cls", "normalize=false"};
    inst = embedder("sin", cls_kv, 2);
    CHECK(inst != NULL);
    if (inst) {
        CHECK_INT(embed(inst, texts, 2, out, 0), 0);
        for (int d = 0; d < 8; d++) want[d] = hidden(2, d);
        expect_vector(out, want, "cls");
        expect_vector(out + 8, want, "cls of the second text");
        sl_instance_free(inst);
    }

    /* max_seq_len 4: [CLS] the quick [SEP] */
    const char *cut_kv[] = {"max_seq_len=4", "normalize=false"};
    inst = embedder("sin", cut_kv, 2);
    CHECK(inst != NULL);
    if (inst) {
        CHECK_INT(embed(inst, texts, 1, out, 0), 0);
        expected_mean((int[]){2, 4, 5, 3}, 4, false, want);
        expect_vector(out, want, "truncated at max_seq_len");
        sl_instance_free(inst);
    }

    /* prefixes: a query gets "query: ", a chunk "passage: " */
    const char *pre_kv[] = {"normalize=false", "query_prefix=query: ", "passage_prefix=passage: "};
    inst = embedder("sin", pre_kv, 3);
    CHECK(inst != NULL);
    if (inst) {
        sl_text z = {"zebra", 5};
        CHECK_INT(embed(inst, &z, 1, out, 1), 0);
        expected_mean((int[]){2, 21, 22, 24, 3}, 5, false, want);
        expect_vector(out, want, "query: zebra");
        CHECK_INT(embed(inst, &z, 1, out, 0), 0);
        expected_mean((int[]){2, 23, 22, 24, 3}, 5, false, want);
        expect_vector(out, want, "passage: zebra");
        sl_instance_free(inst);
    }

    /* a two-input model answering a dict: the same mean */
    inst = embedder("sin2", mean_kv, 2);
    CHECK(inst != NULL);
    if (inst) {
        CHECK_INT(embed(inst, texts, 1, out, 0), 0);
        expected_mean((int[]){2, 4, 5, 7, 3}, 5, false, want);
        expect_vector(out, want, "two-input model");
        sl_instance_free(inst);
    }
}

/* --- through the batcher --- */

static int ndone;
static int done_rc = -100;
static uv_timer_t keeper;
static void on_keep(uv_timer_t *t) {}
static void on_done(void *arg, int rc, const char *msg, const sl_batch_times *times) {
    done_rc = rc;
    if (rc) fprintf(stderr, "batch: %s\n", msg ? msg : "");
    if (++ndone == 2) uv_close((uv_handle_t *)&keeper, NULL);
}

static void test_out_of_memory_splits_the_batch(void) {
    const char *kv[] = {"normalize=false"};
    sl_instance *inst = embedder("sin-oom", kv, 1);
    CHECK(inst != NULL);
    if (!inst) {
        fprintf(stderr, "%s\n", sl_ctx_errmsg(ctx));
        return;
    }
    const char *words8[] = {"the", "quick", "brown", "fox", "hello", "cafe", "zebra", "query"};
    const int ids8[] = {4, 5, 6, 7, 17, 13, 24, 21};
    sl_text texts[8];
    for (int i = 0; i < 8; i++) texts[i] = (sl_text){words8[i], strlen(words8[i])};
    float out[2][64];
    memset(out, 0, sizeof out);
    sl_loop *loop;
    sl_loop_new(&loop);
    sl_batcher_opts o = {8, 0, false};
    sl_batcher *b = NULL;
    CHECK_INT(sl_batcher_new(loop, inst, &o, &b), 0);
    if (!b) return;
    ndone = 0;
    CHECK_INT(sl_batcher_submit_texts(b, texts, 8, out[0], 8, on_done, NULL), 0);
    CHECK_INT(sl_batcher_submit_texts(b, texts, 8, out[1], 8, on_done, NULL), 0);
    uv_timer_init(sl_loop_uv(loop), &keeper);
    uv_timer_start(&keeper, on_keep, 1000000, 1000000);
    sl_loop_run(loop);
    CHECK_INT(ndone, 2);
    CHECK_INT(done_rc, 0);
    sl_batcher_stats st;
    sl_batcher_stats_get(b, &st);
    sl_batcher_free(b);
    sl_loop_free(loop);
    /* 8 fails, 4 fails, then calls of 2: the ceiling is 2 */
    CHECK(st.splits >= 2);
    CHECK_INT(st.ceiling, 2);
    CHECK_INT(st.units, 16);
    CHECK(st.hist[1] >= 8); /* the 2-text bucket: 4 calls a unit */
    for (int u = 0; u < 2; u++)
        for (int i = 0; i < 8; i++) {
            double want[8];
            expected_mean((int[]){2, ids8[i], 3}, 3, false, want);
            expect_vector(out[u] + i * 8, want, words8[i]);
        }
    sl_instance_free(inst);
}

static void test_what_does_not_fit_fails_at_init(void) {
    const char *dim_kv[] = {"dimension=16"};
    CHECK(embedder("sin", dim_kv, 1) == NULL);
    CHECK(strstr(sl_ctx_errmsg(ctx), "8-dimension vectors, but dimension = 16") != NULL);
    CHECK(embedder("bad", NULL, 0) == NULL);
    CHECK(strstr(sl_ctx_errmsg(ctx), "failed on a probe text") != NULL);
    char spm[4300];
    snprintf(spm, sizeof spm, "spm=%s/spm.model", dir);
    const char *both_kv[] = {spm};
    CHECK(embedder("sin", both_kv, 1) == NULL);
    CHECK(strstr(sl_ctx_errmsg(ctx), "exactly one tokenizer") != NULL);
    const char *len_kv[] = {"max_seq_len=2"};
    CHECK(embedder("sin", len_kv, 1) == NULL);
    CHECK(strstr(sl_ctx_errmsg(ctx), "max_seq_len") != NULL);
    const char *cuda_kv[] = {"device=cuda"};
    sl_instance *inst = embedder("sin", cuda_kv, 1);
    if (!inst) CHECK(strstr(sl_ctx_errmsg(ctx), "CUDA") != NULL); /* a CPU build says so */
    sl_instance_free(inst);
}

int main(void) {
    ctx = sl_ctx_new();
    const char *tmp = getenv("SLUICE_TEST_TMP"), *pdir = getenv("SLUICE_PLUGIN_DIR");
    CHECK(tmp && pdir);
    if (!tmp || !pdir) return check_done();
    mkdir(tmp, 0755);
    snprintf(dir, sizeof dir, "%s/embed-torch", tmp);
    mkdir(dir, 0755);
    snprintf(vocab, sizeof vocab, "%s/vocab.txt", dir);
    write_vocab();
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "'%s' '%s'", MAKE_MODEL, dir);
    CHECK_INT(system(cmd), 0);

    test_wordpiece_matches_the_hand_worked_ids();
    test_sentencepiece_ids_are_the_librarys();

    if (plugin_open(ctx, pdir, "embed-torch.so", &reg, &plugin)) return check_done();
    test_pooling_and_normalisation_match_the_hand_computed();
    test_out_of_memory_splits_the_batch();
    test_what_does_not_fit_fails_at_init();
    sl_registry_free(reg);
    sl_ctx_free(ctx);
    return check_done();
}
