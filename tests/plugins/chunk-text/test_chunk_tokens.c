/* test_chunk_tokens.c - chunk-text counting the embedder's own tokens, and
 * cutting at sentence ends beyond ASCII.
 *
 * Token-exact chunking runs on real text (a GPL licence from
 * /usr/share/common-licenses) with a WordPiece vocabulary made here from
 * that text: its frequent words are whole tokens, the others are spelt in
 * ## pieces, so counts depend on the words and do not follow the length.
 * Every chunk, framed as the embedder frames it ([CLS] prefix text [SEP]),
 * must fit the window (`size`), and chunks must come out reasonably full.
 * Sentence ends: Japanese (。, no spaces at all), Hindi (।) and Greek (;)
 * paragraphs longer than a chunk are cut after their sentence ends, which
 * only ICU's break iterator knows.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "tokenizer.h"

static char dir[4096], vocab[4200];

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = b ? fread(b, 1, (size_t)n, f) : 0;
    if (b) b[*len] = '\0';
    fclose(f);
    return b;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A vocabulary from the text: single characters (and their ## forms) so
 * everything can be spelt, plus every lowercase word seen 3 times or more. */
static void make_vocab(const char *text) {
    FILE *f = fopen(vocab, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs("[PAD]\n[UNK]\n[CLS]\n[SEP]\n", f);
    for (int ch = 33; ch < 127; ch++) fprintf(f, "%c\n##%c\n", ch, ch);
    size_t n = strlen(text), nw = 0;
    char **w = malloc(n * sizeof *w);
    for (size_t i = 0; i < n;) {
        while (i < n && !(text[i] >= 'a' && text[i] <= 'z') && !(text[i] >= 'A' && text[i] <= 'Z')) i++;
        size_t j = i;
        while (j < n && ((text[j] >= 'a' && text[j] <= 'z') || (text[j] >= 'A' && text[j] <= 'Z'))) j++;
        if (j - i > 1) {
            char *s = strndup(text + i, j - i);
            for (char *p = s; *p; p++)
                if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
            w[nw++] = s;
        }
        i = j;
    }
    qsort(w, nw, sizeof *w, cmp_str);
    size_t kept = 0;
    for (size_t i = 0; i < nw;) {
        size_t j = i;
        while (j < nw && strcmp(w[j], w[i]) == 0) j++;
        if (j - i >= 3) fprintf(f, "%s\n", w[i]), kept++;
        i = j;
    }
    CHECK(kept > 200);
    for (size_t i = 0; i < nw; i++) free(w[i]);
    free(w);
    fclose(f);
}

static sl_doc *doc_of(const char *text) {
    sl_doc *d = harness_doc("t.md", "text/markdown", "", 0);
    /* paragraphs: the text's blank-line-separated blocks */
    const char *p = text;
    while (*p) {
        const char *e = strstr(p, "\n\n");
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n) {
            int i = sl_doc_add_element(d, SL_EL_PARAGRAPH, p, n);
            CHECK(i >= 0);
        }
        p += n;
        while (*p == '\n') p++;
    }
    return d;
}

static int chunk_with(sl_doc *d, const char *const *over) {
    harness h;
    int rc = harness_open(&h, "chunk-text", over);
    if (rc == 0) {
        sl_call call;
        sl_call_init(&call, h.inst, NULL);
        rc = h.desc->chunk(&call, d);
        if (rc) fprintf(stderr, "chunk: %s\n", call.msg);
    } else {
        fprintf(stderr, "open: %s\n", (h.inst ? h.inst->errmsg : ""));
    }
    harness_close(&h);
    return rc;
}

static void test_no_chunk_exceeds_the_window(void) {
    size_t len;
    char *text = slurp("/usr/share/common-licenses/GPL-3", &len);
    CHECK(text != NULL);
    if (!text) return;
    make_vocab(text);
    char err[512];
    tok *t = NULL;
    CHECK_INT(tok_open_wordpiece(vocab, true, true, &t, err, sizeof err), 0);
    if (!t) return;
    static const int windows[] = {16, 64, 256};
    for (size_t w = 0; w < 3; w++) {
        char vopt[4300], sopt[64], oopt[64];
        snprintf(vopt, sizeof vopt, "vocab=%s", vocab);
        snprintf(sopt, sizeof sopt, "size=%d", windows[w]);
        snprintf(oopt, sizeof oopt, "overlap=%d", windows[w] / 8);
        const char *over[] = {"unit=tokens", vopt, sopt, oopt, "prefix=passage: ", NULL};
        sl_doc *d = doc_of(text);
        CHECK_INT(chunk_with(d, over), 0);
        size_t n = sl_doc_chunk_count(d), over_window = 0, full = 0, pre = tok_count(t, "passage: ", 9);
        CHECK(n > 3);
        for (size_t i = 0; i < n; i++) {
            size_t cl;
            const char *c = sl_chunk_text(d, i, &cl);
            size_t k = tok_count(t, c, cl) + pre + 2;
            if (k > (size_t)windows[w]) {
                over_window++;
                fprintf(stderr, "window %d: chunk %zu has %zu tokens: %.60s\n", windows[w], i, k, c);
            }
            full += k * 2 >= (size_t)windows[w];
        }
        CHECK_INT(over_window, 0);
        /* most chunks use at least half the window (the licence's short
         * paragraphs and headings make some small ones) */
        if (full * 2 < n) fprintf(stderr, "window %d: %zu of %zu chunks half full\n", windows[w], full, n);
        CHECK(full * 2 >= n);
        sl_doc_free(d);
    }
    /* the same text counted as code points makes other chunks: the counts are the tokenizer's */
    tok_free(t);
    free(text);
}

static void test_options_that_do_not_fit(void) {
    char vopt[4300];
    snprintf(vopt, sizeof vopt, "vocab=%s", vocab);
    harness h;
    const char *chars[] = {vopt, NULL};
    CHECK(harness_open(&h, "chunk-text", chars) != 0);
    CHECK(strstr((h.inst ? h.inst->errmsg : ""), "set unit = tokens") != NULL);
    harness_close(&h);
    const char *tiny[] = {"unit=tokens", vopt, "size=4", "overlap=1", "prefix=passage: ", NULL};
    CHECK(harness_open(&h, "chunk-text", tiny) != 0);
    CHECK(strstr((h.inst ? h.inst->errmsg : ""), "leaves no room") != NULL);
    harness_close(&h);
}

/* Every chunk but the last ends with `end` (a sentence terminator). */
static void expect_sentence_ends(const char *text, const char *size, const char *end, const char *locale) {
    sl_doc *d = doc_of(text);
    const char *over[] = {size, "overlap=0", locale, NULL};
    CHECK_INT(chunk_with(d, over), 0);
    size_t n = sl_doc_chunk_count(d), el = strlen(end);
    CHECK(n >= 3);
    for (size_t i = 0; i + 1 < n; i++) {
        size_t cl;
        const char *c = sl_chunk_text(d, i, &cl);
        bool ok = cl >= el && memcmp(c + cl - el, end, el) == 0;
        if (!ok) fprintf(stderr, "chunk %zu does not end a sentence: %s\n", i, c);
        CHECK(ok);
    }
    sl_doc_free(d);
}

static void test_sentence_ends_beyond_ascii(void) {
    /* Japanese: no spaces at all; each sentence 12-16 characters */
    expect_sentence_ends("吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"
                         "何でも薄暗いじめじめした所で泣いていた事だけは記憶している。"
                         "吾輩はここで始めて人間というものを見た。しかもあとで聞くと"
                         "それは書生という人間中で一番獰悪な種族であったそうだ。",
                         "size=40", "。", NULL);
    /* Hindi: words with spaces, sentences end with the danda */
    expect_sentence_ends("भारत एक विशाल देश है। यहाँ अनेक भाषाएँ बोली जाती हैं। हिमालय उत्तर में स्थित है। "
                         "गंगा एक पवित्र नदी है। दिल्ली भारत की राजधानी है। लोग त्योहार मिलकर मनाते हैं।",
                         "size=60", "।", NULL);
    /* Greek: the question mark is ; (U+037E, which NFC writes as ';'),
     * a sentence end in ICU's Greek rules (locale = el) */
    expect_sentence_ends("Τι κάνεις σήμερα το πρωί; Πού πηγαίνεις με τόση βιασύνη; Γιατί δεν μένεις λίγο; "
                         "Θέλεις να πιούμε έναν καφέ μαζί; Ποιος θα έρθει απόψε στο σπίτι;",
                         "size=40", ";", "locale=el");
}

int main(void) {
    const char *tmp = getenv("SLUICE_TEST_TMP");
    CHECK(tmp != NULL);
    if (!tmp) return check_done();
    mkdir(tmp, 0755);
    snprintf(dir, sizeof dir, "%s/chunk-tokens", tmp);
    mkdir(dir, 0755);
    snprintf(vocab, sizeof vocab, "%s/vocab.txt", dir);
    test_no_chunk_exceeds_the_window();
    test_options_that_do_not_fit();
    test_sentence_ends_beyond_ascii();
    return check_done();
}
