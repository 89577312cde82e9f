/* test_chunk_text.c - chunk-text packs elements into chunks within `size`
 * (code points, or tokens of four), cuts long text at the best break and
 * never inside a UTF-8 sequence, repeats a word-aligned overlap, keeps
 * tables and code whole when they fit, records heading paths and positions,
 * refuses overlap >= size, and stays linear on a 50 MB line. Runs the built
 * plugin through its descriptor (harness.h, shared with parse-markdown). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* The document's elements are built by hand: this tests the chunker alone. */
static void add(sl_doc *d, sl_elem_type type, int level, uint32_t line, const char *text) {
    int i = sl_doc_add_element(d, type, text, strlen(text));
    CHECK(i >= 0);
    if (i < 0) return;
    sl_elem_set_level(d, (size_t)i, level);
    sl_elem_set_page(d, (size_t)i, 1);
    sl_elem_set_source(d, (size_t)i, 0, line);
}

static sl_doc *new_doc(void) { return harness_doc("test.md", "text/markdown", "", 0); }

/* Opens chunk-text with overrides (NULL-terminated) and chunks doc. */
static int run(sl_doc *doc, const char *const *over, sl_call *call) {
    harness h;
    int rc = harness_open(&h, "chunk-text", over);
    if (rc) {
        harness_close(&h);
        return rc;
    }
    sl_call_init(call, h.inst, NULL);
    rc = h.desc->chunk(call, doc);
    harness_close(&h);
    return rc;
}

static size_t cps(const char *s, size_t n) {
    size_t u = 0;
    for (size_t i = 0; i < n; i++) u += ((unsigned char)s[i] & 0xC0) != 0x80;
    return u;
}

static const char *chunk(const sl_doc *d, size_t i) { return sl_chunk_text(d, i, NULL); }

/* The text without its whitespace: what chunking must neither lose nor add
 * (when there is no overlap). */
static char *squeeze(const char *s, size_t n, size_t *out_len) {
    char *o = malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\n' && s[i] != '\t') o[k++] = s[i];
    o[k] = '\0';
    *out_len = k;
    return o;
}

static void check_no_loss(const sl_doc *d, const char *orig, size_t n) {
    size_t ol, total = 0;
    char *want = squeeze(orig, n, &ol);
    char *got = malloc(ol + 1);
    int ok = 1;
    for (size_t i = 0; i < sl_doc_chunk_count(d) && ok; i++) {
        size_t len, sl;
        const char *t = sl_chunk_text(d, i, &len);
        char *s = squeeze(t, len, &sl);
        if (total + sl > ol)
            ok = 0;
        else
            memcpy(got + total, s, sl), total += sl;
        free(s);
    }
    CHECK(ok && total == ol && memcmp(got, want, ol) == 0);
    free(want);
    free(got);
}

static void test_descriptor(void) {
    harness h;
    CHECK_INT(harness_open(&h, "chunk-text", NULL), 0);
    if (h.desc) {
        CHECK_STR(h.desc->name, "chunk-text");
        CHECK_INT(h.desc->role, SL_ROLE_CHUNKER);
        CHECK_INT(h.desc->bottleneck, SL_CPU);
        CHECK(h.desc->chunk != NULL);
    }
    harness_close(&h);
}

static void test_headings_start_chunks_and_set_paths(void) {
    sl_doc *d = new_doc();
    add(d, SL_EL_PARAGRAPH, 0, 1, "Before any heading.");
    add(d, SL_EL_HEADING, 1, 3, "Guide");
    add(d, SL_EL_PARAGRAPH, 0, 5, "Intro text.");
    add(d, SL_EL_HEADING, 2, 7, "Install");
    add(d, SL_EL_HEADING, 3, 9, "From source");
    add(d, SL_EL_PARAGRAPH, 0, 11, "Run make.");
    add(d, SL_EL_CODE, 0, 13, "make install");
    add(d, SL_EL_HEADING, 2, 17, "Empty");
    add(d, SL_EL_HEADING, 2, 19, "Use");
    add(d, SL_EL_LIST, 0, 21, "- one\n- two");
    sl_call call;
    CHECK_INT(run(d, NULL, &call), 0);
    CHECK_INT(sl_doc_chunk_count(d), 5);
    if (sl_doc_chunk_count(d) == 5) {
        CHECK_STR(chunk(d, 0), "Before any heading.");
        CHECK_STR(sl_chunk_heading(d, 0), "");
        CHECK_INT(sl_chunk_line(d, 0), 1);
        CHECK_STR(chunk(d, 1), "Guide\n\nIntro text.");
        CHECK_STR(sl_chunk_heading(d, 1), "Guide");
        CHECK_INT(sl_chunk_line(d, 1), 3);
        CHECK_INT(sl_chunk_page(d, 1), 1);
        /* A heading directly followed by a deeper one shares its chunk. */
        CHECK_STR(chunk(d, 2), "Install\n\nFrom source\n\nRun make.\n\nmake install");
        CHECK_STR(sl_chunk_heading(d, 2), "Guide > Install > From source");
        CHECK_INT(sl_chunk_line(d, 2), 7);
        /* An empty section stays apart; a sibling replaces it in the path. */
        CHECK_STR(chunk(d, 3), "Empty");
        CHECK_STR(sl_chunk_heading(d, 3), "Guide > Empty");
        CHECK_STR(chunk(d, 4), "Use\n\n- one\n- two");
        CHECK_STR(sl_chunk_heading(d, 4), "Guide > Use");
        CHECK_INT(sl_chunk_line(d, 4), 19);
    }
    sl_doc_free(d);
}

/* Multi-byte text, one paragraph: every chunk within 100 code points though
 * many are over 100 bytes, valid UTF-8, and together the whole text. */
static void test_size_counts_code_points(void) {
    const char *words[] = {"héllo", "wörld", "ünïcödé", "日本語テキスト", "naïve", "café.", "Ω≈ç√"};
    char *text = malloc(20000);
    size_t n = 0;
    for (int i = 0; n < 15000; i++) {
        const char *w = words[i % 7];
        memcpy(text + n, w, strlen(w));
        n += strlen(w);
        text[n++] = i % 23 == 22 ? '\n' : ' ';
    }
    text[n - 1] = '.';
    text[n] = '\0';
    sl_doc *d = new_doc();
    add(d, SL_EL_PARAGRAPH, 0, 1, text);
    const char *const over[] = {"size=100", "overlap=0", NULL};
    sl_call call;
    CHECK_INT(run(d, over, &call), 0);
    size_t count = sl_doc_chunk_count(d), max_bytes = 0, small = 0;
    CHECK(count > cps(text, n) / 100);
    for (size_t i = 0; i < count; i++) {
        size_t len;
        const char *t = sl_chunk_text(d, i, &len);
        CHECK(cps(t, len) <= 100);
        CHECK(sl_utf8_valid(t, len, NULL));
        if (len > max_bytes) max_bytes = len;
        if (cps(t, len) < 50) small++;
        CHECK_INT(sl_chunk_line(d, i), 1);
    }
    CHECK(max_bytes > 100);
    CHECK(small <= 1); /* cuts prefer the window's second half: chunks come out full */
    check_no_loss(d, text, n);
    sl_doc_free(d);
    free(text);
}

/* No break at all: cut at character boundaries, each chunk exactly `size`
 * code points, none splitting a multi-byte sequence. */
static void test_no_split_inside_utf8_sequence(void) {
    const char *cs[] = {"日", "é", "a", "😀"};
    char *text = malloc(4 * 1000 + 1);
    size_t n = 0;
    for (int i = 0; i < 1000; i++) {
        const char *c = cs[(i * 7) % 4];
        memcpy(text + n, c, strlen(c));
        n += strlen(c);
    }
    text[n] = '\0';
    sl_doc *d = new_doc();
    add(d, SL_EL_PARAGRAPH, 0, 1, text);
    const char *const over[] = {"size=64", "overlap=0", NULL};
    sl_call call;
    CHECK_INT(run(d, over, &call), 0);
    CHECK_INT(sl_doc_chunk_count(d), (1000 + 63) / 64);
    size_t at = 0;
    for (size_t i = 0; i < sl_doc_chunk_count(d); i++) {
        size_t len;
        const char *t = sl_chunk_text(d, i, &len);
        CHECK(sl_utf8_valid(t, len, NULL));
        CHECK_INT(cps(t, len), i + 1 < sl_doc_chunk_count(d) ? 64 : 1000 % 64);
        CHECK(at + len <= n && memcmp(text + at, t, len) == 0);
        at += len;
    }
    CHECK_INT(at, n);
    sl_doc_free(d);

    /* With overlap the repeated part starts at a character boundary too. */
    d = new_doc();
    add(d, SL_EL_PARAGRAPH, 0, 1, text);
    const char *const over2[] = {"size=64", "overlap=10", NULL};
    CHECK_INT(run(d, over2, &call), 0);
    for (size_t i = 0; i < sl_doc_chunk_count(d); i++) {
        size_t len;
        const char *t = sl_chunk_text(d, i, &len);
        CHECK(sl_utf8_valid(t, len, NULL));
        CHECK(cps(t, len) <= 64);
        if (i) CHECK(cps(t, len) == 64 || i + 1 == sl_doc_chunk_count(d));
    }
    sl_doc_free(d);
    free(text);
}

/* Unique words make each overlap unambiguous: chunk i+1 starts with a
 * suffix of chunk i of at most `overlap` code points, beginning at a word. */
static void test_overlap_repeats_whole_words(void) {
    char *text = malloc(8000);
    size_t n = 0;
    for (int i = 0; i < 1000; i++) n += (size_t)sprintf(text + n, "%s%d", i ? " w" : "w", i);
    sl_doc *d = new_doc();
    add(d, SL_EL_PARAGRAPH, 0, 1, text);
    const char *const over[] = {"size=100", "overlap=30", NULL};
    sl_call call;
    CHECK_INT(run(d, over, &call), 0);
    size_t count = sl_doc_chunk_count(d);
    CHECK(count > 60);
    for (size_t i = 0; i + 1 < count; i++) {
        size_t la, lb;
        const char *a = sl_chunk_text(d, i, &la), *b = sl_chunk_text(d, i + 1, &lb);
        CHECK(la <= 100 && lb <= 100);
        size_t k = 0; /* the overlap: b's first words, found at a's end */
        for (size_t m = 1; m <= la && m <= lb; m++)
            if (memcmp(a + la - m, b, m) == 0 && (m == lb || b[m] == ' ')) k = m;
        CHECK(k > 0 && k <= 30);
        CHECK(k < la && a[la - k - 1] == ' '); /* snapped to the start of a word */
        CHECK(b[0] == 'w');
        CHECK(k == lb || b[k] == ' ');
    }
    sl_doc_free(d);

    /* Overlap is not carried across a heading. */
    d = new_doc();
    add(d, SL_EL_PARAGRAPH, 0, 1, "alpha beta gamma delta");
    add(d, SL_EL_HEADING, 2, 3, "Next");
    add(d, SL_EL_PARAGRAPH, 0, 5, "epsilon");
    CHECK_INT(run(d, over, &call), 0);
    CHECK_INT(sl_doc_chunk_count(d), 2);
    if (sl_doc_chunk_count(d) == 2) CHECK_STR(chunk(d, 1), "Next\n\nepsilon");
    sl_doc_free(d);
    free(text);
}

/* Elements that fit are packed whole; one that does not starts the next
 * chunk, carrying the overlap, and the chunk's line is that of the element
 * its text starts in. */
static void test_packing_and_positions(void) {
    sl_doc *d = new_doc();
    add(d, SL_EL_PARAGRAPH, 0, 1, "alpha beta gamma");
    add(d, SL_EL_PARAGRAPH, 0, 3, "delta epsilon zeta");
    add(d, SL_EL_PARAGRAPH, 0, 5, "eta theta iota kappa lambda mu");
    const char *const over[] = {"size=50", "overlap=10", NULL};
    sl_call call;
    CHECK_INT(run(d, over, &call), 0);
    CHECK_INT(sl_doc_chunk_count(d), 2);
    if (sl_doc_chunk_count(d) == 2) {
        CHECK_STR(chunk(d, 0), "alpha beta gamma\n\ndelta epsilon zeta");
        CHECK_INT(sl_chunk_line(d, 0), 1);
        CHECK_STR(chunk(d, 1), "zeta\n\neta theta iota kappa lambda mu");
        CHECK_INT(sl_chunk_line(d, 1), 3); /* starts with the overlap from line 3 */
    }
    sl_doc_free(d);
}

static int contains_whole(const sl_doc *d, const char *text) {
    for (size_t i = 0; i < sl_doc_chunk_count(d); i++)
        if (strstr(chunk(d, i), text)) return 1;
    return 0;
}

static void test_tables_and_code_kept_whole_when_they_fit(void) {
    char para[301], code[400], table[300];
    memset(para, 'p', 300);
    for (int i = 5; i < 300; i += 6) para[i] = ' ';
    para[300] = '\0';
    size_t n = 0;
    for (int i = 0; i < 12; i++)
        n += (size_t)sprintf(code + n, "%sline_%02d = call(%d);", i ? "\n" : "", i, i);
    n = 0;
    for (int i = 0; i < 12; i++)
        n += (size_t)sprintf(table + n, "%scell %02d | value %02d", i ? "\n" : "", i, i);
    sl_doc *d = new_doc();
    add(d, SL_EL_PARAGRAPH, 0, 1, para);
    add(d, SL_EL_CODE, 0, 3, code);
    add(d, SL_EL_TABLE, 0, 20, table);
    add(d, SL_EL_PARAGRAPH, 0, 40, para);
    const char *const over[] = {"size=400", "overlap=0", NULL};
    sl_call call;
    CHECK_INT(run(d, over, &call), 0);
    CHECK(strlen(code) <= 400 && strlen(code) > 200);
    CHECK(contains_whole(d, code));
    CHECK(contains_whole(d, table));
    for (size_t i = 0; i < sl_doc_chunk_count(d); i++) CHECK(cps(chunk(d, i), strlen(chunk(d, i))) <= 400);
    sl_doc_free(d);

    /* Larger than size: cut at line ends only, so every piece is whole lines. */
    char big[2000];
    n = 0;
    for (int i = 0; i < 40; i++)
        n += (size_t)sprintf(big + n, "%sx = f(%02d) + g(%02d) + h(%02d)", i ? "\n" : "", i, i, i);
    d = new_doc();
    add(d, SL_EL_CODE, 0, 1, big);
    const char *const over2[] = {"size=200", "overlap=0", NULL};
    CHECK_INT(run(d, over2, &call), 0);
    CHECK(sl_doc_chunk_count(d) >= n / 200);
    for (size_t i = 0; i < sl_doc_chunk_count(d); i++) {
        size_t len;
        const char *t = sl_chunk_text(d, i, &len);
        const char *at = strstr(big, t);
        CHECK(len <= 200);
        CHECK(at && (at == big || at[-1] == '\n') && (at[len] == '\n' || at[len] == '\0'));
    }
    check_no_loss(d, big, n);
    sl_doc_free(d);
}

/* Long prose cuts at the biggest break in the second half of the window:
 * paragraph, then sentence, then space. */
static void test_cuts_prefer_paragraphs_then_sentences(void) {
    const char *text = "First paragraph is here and it is fairly long.\n\nSecond one follows and it goes on "
                       "for a bit. Then a short tail comes after it.";
    sl_doc *d = new_doc();
    add(d, SL_EL_PARAGRAPH, 0, 1, text);
    const char *const over[] = {"size=70", "overlap=0", NULL};
    sl_call call;
    CHECK_INT(run(d, over, &call), 0);
    CHECK_INT(sl_doc_chunk_count(d), 3);
    if (sl_doc_chunk_count(d) == 3) {
        CHECK_STR(chunk(d, 0), "First paragraph is here and it is fairly long.");
        CHECK_STR(chunk(d, 1), "Second one follows and it goes on for a bit.");
        CHECK_STR(chunk(d, 2), "Then a short tail comes after it.");
    }
    sl_doc_free(d);
}

static void test_tokens_unit(void) {
    char *text = malloc(5000);
    size_t n = 0;
    for (int i = 0; i < 600; i++) n += (size_t)sprintf(text + n, "%sword", i ? " " : "");
    sl_doc *d = new_doc();
    add(d, SL_EL_PARAGRAPH, 0, 1, text);
    const char *const over[] = {"size=25", "overlap=5", "unit=tokens", NULL};
    sl_call call;
    CHECK_INT(run(d, over, &call), 0);
    size_t max = 0;
    for (size_t i = 0; i < sl_doc_chunk_count(d); i++) {
        size_t c = cps(chunk(d, i), strlen(chunk(d, i)));
        CHECK(c <= 100); /* 25 tokens of 4 characters */
        if (c > max) max = c;
    }
    CHECK(max > 90);
    CHECK(sl_doc_chunk_count(d) >= n / 100);
    sl_doc_free(d);
    free(text);
}

static void test_bad_options_refused_at_init(void) {
    struct {
        const char *over[4];
        const char *needle;
    } cases[] = {
        {{"size=100", "overlap=100", NULL}, "overlap (100) must be smaller than size (100)"},
        {{"size=100", "overlap=150", NULL}, "overlap (150) must be smaller than size (100)"},
        {{"size=10", "unit=tokens", NULL}, "overlap (150) must be smaller than size (10)"},
        {{"size=0", "overlap=0", NULL}, "size must be"},
        {{"overlap=-1", NULL}, "overlap must not be negative"},
        {{"unit=words", NULL}, "unit must be chars or tokens"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        harness h;
        CHECK_INT(harness_open(&h, "chunk-text", cases[i].over), SL_EFATAL);
        CHECK_CONTAINS(h.inst ? h.inst->errmsg : NULL, cases[i].needle);
        harness_close(&h);
    }
}

static void test_no_elements_is_bad_input(void) {
    sl_doc *d = new_doc();
    sl_call call;
    CHECK_INT(run(d, NULL, &call), SL_EBADINPUT);
    CHECK_INT(call.code, SL_EBADINPUT);
    CHECK_CONTAINS(call.msg, "no text");
    sl_doc_free(d);
}

/* A 50 MB paragraph on one line: ~50M/size chunks, every one within size.
 * Quadratic rescans would not finish; the test asserts only the result. */
static void test_50mb_line(void) {
    size_t n = 50u * 1000 * 1000;
    char *big = malloc(n + 1);
    if (!big) return;
    for (size_t i = 0; i < n; i++) big[i] = i % 7 == 6 ? ' ' : "sluices"[i % 7];
    big[n - 1] = 'x';
    big[n] = '\0';

    sl_doc *d = new_doc();
    add(d, SL_EL_PARAGRAPH, 0, 1, big);
    const char *const over[] = {"size=1000", "overlap=0", NULL};
    sl_call call;
    CHECK_INT(run(d, over, &call), 0);
    size_t count = sl_doc_chunk_count(d), bad = 0, total = 0;
    for (size_t i = 0; i < count; i++) {
        size_t len;
        const char *t = sl_chunk_text(d, i, &len);
        bad += len > 1000 || (len < 993 && i + 1 < count) || t[0] == ' ';
        total += len;
    }
    CHECK_INT(bad, 0);
    CHECK(count >= n / 1001 && count <= n / 993 + 1);
    CHECK_INT(total + count - 1, n); /* each cut drops exactly one space */
    sl_doc_free(d);

    /* With the default overlap, and with no spaces at all. */
    d = new_doc();
    add(d, SL_EL_PARAGRAPH, 0, 1, big);
    CHECK_INT(run(d, NULL, &call), 0);
    count = sl_doc_chunk_count(d);
    bad = 0;
    for (size_t i = 0; i < count; i++) bad += strlen(chunk(d, i)) > 1000;
    CHECK_INT(bad, 0);
    CHECK(count >= n / 860 && count <= n / 800); /* each chunk brings about 1000 - 150 new */
    sl_doc_free(d);

    memset(big, 'z', n);
    d = new_doc();
    add(d, SL_EL_PARAGRAPH, 0, 1, big);
    CHECK_INT(run(d, over, &call), 0);
    CHECK_INT(sl_doc_chunk_count(d), n / 1000);
    bad = 0;
    for (size_t i = 0; i < sl_doc_chunk_count(d); i++) bad += strlen(chunk(d, i)) != 1000;
    CHECK_INT(bad, 0);
    sl_doc_free(d);
    free(big);
}

/* --- structure: tables by rows, lists and code by lines, chunk attributes --- */

static int add_table_el(sl_doc *d, const char *text, bool header) {
    int i = sl_doc_add_element(d, SL_EL_TABLE, text, strlen(text));
    CHECK(i >= 0);
    if (i < 0) return i;
    sl_elem_set_page(d, (size_t)i, 1);
    if (header) CHECK_INT(sl_elem_set_attr(d, (size_t)i, "header", "1"), 0);
    return i;
}

/* Whether line (with its length) is one of the lines of text. */
static bool is_line_of(const char *text, const char *line, size_t len) {
    for (const char *p = text; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == len && memcmp(p, line, len) == 0) return true;
        p = e ? e + 1 : p + n;
    }
    return false;
}

/* A table larger than a chunk: parts of whole rows, each opening with the
 * header row; every row in exactly one part, in order. */
static void test_big_table_split_by_rows_under_its_header(void) {
    const char *hdr = "Name | Size | Notes";
    char table[8192];
    size_t n = (size_t)sprintf(table, "%s", hdr);
    for (int i = 0; i < 60; i++)
        n += (size_t)sprintf(table + n, "\nrow-%02d | %d KB | note %02d", i, i * 7, i);
    sl_doc *d = new_doc();
    add(d, SL_EL_HEADING, 1, 1, "Sizes");
    add(d, SL_EL_PARAGRAPH, 0, 2, "The table below lists sizes.");
    add_table_el(d, table, true);
    add(d, SL_EL_PARAGRAPH, 0, 70, "After the table.");
    const char *const over[] = {"size=200", "overlap=50", NULL};
    sl_call call;
    CHECK_INT(run(d, over, &call), 0);
    int next_row = 0, parts = 0;
    for (size_t i = 0; i < sl_doc_chunk_count(d); i++) {
        size_t len;
        const char *t = sl_chunk_text(d, i, &len);
        CHECK(cps(t, len) <= 200);
        const char *kinds = sl_chunk_attr(d, i, "kinds");
        if (!kinds || !strstr(kinds, "table")) continue;
        parts++;
        const char *h = strstr(t, hdr);
        CHECK(h != NULL); /* the header opens every part (after the section's heading, in the first) */
        if (!h) continue;
        CHECK(h == t || (h[-1] == '\n' && h[-2] == '\n'));
        /* every line after the header is a whole row of the table, the next one */
        for (const char *p = h + strlen(hdr); *p == '\n';) {
            p++;
            const char *e = strchr(p, '\n');
            size_t ln = e ? (size_t)(e - p) : strlen(p);
            if (ln == 0) break; /* a blank line: what follows the table */
            CHECK(is_line_of(table, p, ln));
            char want[32];
            snprintf(want, sizeof want, "row-%02d |", next_row);
            if (strncmp(p, want, strlen(want)) == 0) next_row++;
            p += ln;
        }
        CHECK_STR(sl_chunk_heading(d, i), "Sizes");
    }
    CHECK_INT(next_row, 60); /* every row once, in order, none cut */
    CHECK(parts >= 10);
    /* the first part starts after the section's text: "Sizes" and the paragraph stay together */
    CHECK(sl_doc_chunk_count(d) > 0 && strstr(chunk(d, 0), "The table below") != NULL);
    sl_doc_free(d);

    /* Without the header attribute: rows are split the same way, nothing repeated. */
    d = new_doc();
    add_table_el(d, table, false);
    CHECK_INT(run(d, over, &call), 0);
    size_t with_hdr = 0;
    for (size_t i = 0; i < sl_doc_chunk_count(d); i++) with_hdr += strstr(chunk(d, i), hdr) != NULL;
    CHECK_INT(with_hdr, 1);
    check_no_loss(d, table, strlen(table));
    sl_doc_free(d);
}

/* A row longer than a chunk: cut at cell boundaries, each piece under the
 * header cells of its columns; a cell longer than a chunk is cut as text. */
static void test_long_row_split_at_cells_with_their_headers(void) {
    char row[1024], table[2048];
    size_t n = 0;
    for (int i = 0; i < 8; i++)
        n += (size_t)sprintf(row + n, "%scell %d has a value of %02d units", i ? " | " : "", i, i);
    sprintf(table, "A | B | C | D | E | F | G | H\nsmall | row | here | x | x | x | x | x\n%s", row);
    sl_doc *d = new_doc();
    add_table_el(d, table, true);
    const char *const over[] = {"size=80", "overlap=0", NULL};
    sl_call call;
    CHECK_INT(run(d, over, &call), 0);
    int seen[8] = {0};
    for (size_t i = 0; i < sl_doc_chunk_count(d); i++) {
        const char *t = chunk(d, i);
        CHECK(cps(t, strlen(t)) <= 80);
        for (int k = 0; k < 8; k++) {
            char cell[64], head[2] = {(char)('A' + k), 0};
            snprintf(cell, sizeof cell, "cell %d has a value of %02d units", k, k);
            const char *at = strstr(t, cell);
            if (!at) continue;
            seen[k]++;
            /* its header cell is in the piece's first line */
            const char *nl = strchr(t, '\n');
            CHECK(nl && memchr(t, head[0], (size_t)(nl - t)) != NULL);
            CHECK(at == t || at[-1] == '\n' || (at[-1] == ' ' && at[-2] == '|')); /* whole cells */
        }
    }
    for (int k = 0; k < 8; k++) CHECK_INT(seen[k], 1);
    sl_doc_free(d);

    /* One cell longer than the chunk: cut as text, nothing lost. */
    char huge[600];
    memset(huge, 0, sizeof huge);
    for (int i = 0; i < 100; i++) strcat(huge, "word ");
    sprintf(table, "H1 | H2\nshort | %s", huge);
    d = new_doc();
    add_table_el(d, table, true);
    CHECK_INT(run(d, over, &call), 0);
    for (size_t i = 0; i < sl_doc_chunk_count(d); i++) CHECK(strlen(chunk(d, i)) <= 80);
    size_t words = 0;
    for (size_t i = 0; i < sl_doc_chunk_count(d); i++)
        for (const char *p = chunk(d, i); (p = strstr(p, "word")); p += 4) words++;
    CHECK_INT(words, 100);
    sl_doc_free(d);

    /* A row of 300,000 cells (1.2 MB) is cut in one pass: every cell once. */
    size_t ncells = 300000, cap = ncells * 4 + 64;
    char *wide = malloc(cap);
    n = (size_t)sprintf(wide, "H1 | H2\n");
    for (size_t i = 0; i < ncells; i++)
        n += (size_t)sprintf(wide + n, "%s%c", i ? " | " : "", 'a' + (int)(i % 26));
    d = new_doc();
    add_table_el(d, wide, true);
    CHECK_INT(run(d, over, &call), 0);
    size_t cells = 0;
    for (size_t i = 0; i < sl_doc_chunk_count(d); i++) {
        const char *t = chunk(d, i);
        CHECK(strlen(t) <= 80);
        const char *nl = strchr(t, '\n');
        for (const char *p = nl && strncmp(t, "H", 1) == 0 ? nl + 1 : t; *p; p++)
            cells += *p >= 'a' && *p <= 'z';
    }
    CHECK_INT(cells, ncells);
    free(wide);
    sl_doc_free(d);
}

/* A long list is cut between top-level items (an item's nested lines stay
 * with it when they fit), code between lines, a blank line preferred. */
static void test_lists_cut_between_items_code_between_lines(void) {
    char list[4096];
    size_t n = 0;
    for (int i = 0; i < 30; i++)
        n += (size_t)sprintf(list + n,
                             "%s- item %02d says something about it\n  - detail %02d.a\n  - detail %02d.b",
                             i ? "\n" : "", i, i, i);
    sl_doc *d = new_doc();
    add(d, SL_EL_LIST, 0, 1, list);
    const char *const over[] = {"size=300", "overlap=0", NULL};
    sl_call call;
    CHECK_INT(run(d, over, &call), 0);
    CHECK(sl_doc_chunk_count(d) > 3);
    for (size_t i = 0; i < sl_doc_chunk_count(d); i++) {
        const char *t = chunk(d, i);
        CHECK(strncmp(t, "- item ", 7) == 0); /* every piece starts at a top-level item */
        size_t len = strlen(t);
        CHECK(len <= 300 && len >= 2 && strcmp(t + len - 2, ".b") == 0); /* and ends after its last detail */
        CHECK_STR(sl_chunk_attr(d, i, "kinds"), "list");
    }
    check_no_loss(d, list, n);
    sl_doc_free(d);

    char code[4096];
    n = 0;
    for (int i = 0; i < 20; i++)
        n += (size_t)sprintf(code + n, "%sdef f%02d(x):\n    y = x * %d\n    return y + 1\n", i ? "\n" : "",
                             i, i);
    d = new_doc();
    add(d, SL_EL_CODE, 0, 1, code);
    CHECK_INT(run(d, over, &call), 0);
    for (size_t i = 0; i < sl_doc_chunk_count(d); i++) {
        const char *t = chunk(d, i);
        CHECK(strncmp(t, "def f", 5) == 0); /* cut at the blank lines between functions */
        CHECK_STR(sl_chunk_attr(d, i, "kinds"), "code");
    }
    sl_doc_free(d);
}

/* Each chunk records the kinds of its elements, in order, and the pages it
 * runs over. */
static void test_chunk_attrs_kinds_and_pages(void) {
    sl_doc *d = new_doc();
    add(d, SL_EL_HEADING, 1, 1, "Guide");
    add(d, SL_EL_HEADING, 2, 2, "Install");
    add(d, SL_EL_PARAGRAPH, 0, 3, "Run the installer.");
    add_table_el(d, "OS | Command\nDebian | apt install sluice", true);
    int i = sl_doc_add_element(d, SL_EL_CODE, "make install", 12);
    sl_elem_set_page(d, (size_t)i, 2);
    add(d, SL_EL_HEADING, 2, 9, "Use");
    add(d, SL_EL_PARAGRAPH, 0, 10, "Run it.");
    const char *const over[] = {"size=1000", "overlap=0", NULL};
    sl_call call;
    CHECK_INT(run(d, over, &call), 0);
    CHECK_INT(sl_doc_chunk_count(d), 2);
    CHECK_STR(sl_chunk_attr(d, 0, "kinds"), "heading,paragraph,table,code");
    CHECK_STR(sl_chunk_attr(d, 0, "pages"), "1-2");
    CHECK_STR(sl_chunk_heading(d, 0), "Guide > Install");
    CHECK(sl_chunk_attr(d, 0, "region") == NULL); /* no layout: no region */
    CHECK_STR(sl_chunk_attr(d, 1, "kinds"), "heading,paragraph");
    CHECK(sl_chunk_attr(d, 1, "pages") == NULL);
    sl_doc_free(d);
}

/* --- layout regions --- */

static int add_boxed(sl_doc *d, sl_elem_type type, uint32_t page, const char *text, float x0, float y0,
                     float x1, float y1) {
    int i = sl_doc_add_element(d, type, text, strlen(text));
    CHECK(i >= 0);
    if (i < 0) return i;
    sl_elem_set_page(d, (size_t)i, page);
    sl_elem_set_bbox(d, (size_t)i, x0, y0, x1, y1);
    return i;
}

/* Two columns under a full-width title, given in a scrambled order: read
 * title, left column, right column; a table region's blocks are one unit
 * with its caption (below it), kept whole; chunks record the regions. */
static void test_regions_order_columns_and_keep_tables_with_captions(void) {
    sl_doc *d = new_doc();
    sl_doc_set_page_count(d, 1);
    /* the parser's order: right column first, then the title, left column,
     * the caption, then the table's two blocks */
    add_boxed(d, SL_EL_PARAGRAPH, 1, "Right one.", 320, 100, 580, 150);
    add_boxed(d, SL_EL_PARAGRAPH, 1, "Right two.", 320, 160, 580, 210);
    add_boxed(d, SL_EL_PARAGRAPH, 1, "Report title", 20, 20, 580, 60);
    add_boxed(d, SL_EL_PARAGRAPH, 1, "Left one.", 20, 100, 280, 150);
    add_boxed(d, SL_EL_PARAGRAPH, 1, "Left two.", 20, 160, 280, 210);
    add_boxed(d, SL_EL_PARAGRAPH, 1, "Table 1: sizes", 20, 420, 580, 440);
    add_boxed(d, SL_EL_PARAGRAPH, 1, "Name | Size", 20, 300, 580, 320);
    add_boxed(d, SL_EL_PARAGRAPH, 1, "a | 1", 20, 330, 580, 400);
    sl_doc_add_region(d, 1, "title", 0.9f, 15, 15, 585, 65);
    sl_doc_add_region(d, 1, "text", 0.9f, 15, 95, 285, 215);
    sl_doc_add_region(d, 1, "text", 0.9f, 315, 95, 585, 215);
    sl_doc_add_region(d, 1, "table", 0.9f, 15, 295, 585, 405);
    sl_doc_add_region(d, 1, "caption", 0.9f, 15, 415, 585, 445);
    const char *const over[] = {"size=1000", "overlap=0", NULL};
    sl_call call;
    CHECK_INT(run(d, over, &call), 0);
    CHECK_INT(sl_doc_chunk_count(d), 1);
    const char *t = chunk(d, 0);
    const char *order[] = {"Report title", "Left one.",   "Left two.", "Right one.",
                           "Right two.",   "Name | Size", "a | 1",     "Table 1: sizes"};
    const char *prev = t;
    for (size_t k = 0; k < sizeof order / sizeof *order; k++) {
        const char *at = strstr(t, order[k]);
        CHECK(at != NULL && at >= prev);
        if (at) prev = at;
    }
    /* the table's blocks and its caption are one text, lines apart */
    CHECK(strstr(t, "Name | Size\na | 1\nTable 1: sizes") != NULL);
    CHECK_STR(sl_chunk_attr(d, 0, "region"), "title,text,table,caption");
    CHECK_STR(sl_chunk_attr(d, 0, "kinds"), "title,paragraph,table,caption");
    sl_doc_free(d);

    /* Small chunks: the table with its caption is never cut, and its chunk
     * records the table region; the text before it is chunks of its own. */
    d = new_doc();
    sl_doc_set_page_count(d, 1);
    add_boxed(d, SL_EL_PARAGRAPH, 1, "Some text above the table that fills a chunk.", 20, 20, 580, 60);
    add_boxed(d, SL_EL_PARAGRAPH, 1, "Figure 2: the caption sits above", 20, 80, 580, 95);
    add_boxed(d, SL_EL_PARAGRAPH, 1, "pixels and pixels", 20, 100, 580, 300);
    add_boxed(d, SL_EL_PARAGRAPH, 1, "Text after.", 20, 320, 580, 340);
    sl_doc_add_region(d, 1, "figure", 0.9f, 15, 98, 585, 305);
    sl_doc_add_region(d, 1, "caption", 0.9f, 15, 78, 585, 97);
    const char *const small[] = {"size=60", "overlap=0", NULL};
    CHECK_INT(run(d, small, &call), 0);
    bool found = false;
    for (size_t i = 0; i < sl_doc_chunk_count(d); i++) {
        if (strcmp(chunk(d, i), "Figure 2: the caption sits above\npixels and pixels") != 0) continue;
        found = true;
        CHECK_STR(sl_chunk_attr(d, i, "region"), "figure,caption");
    }
    CHECK(found);
    sl_doc_free(d);
}

int main(void) {
    test_descriptor();
    test_headings_start_chunks_and_set_paths();
    test_size_counts_code_points();
    test_no_split_inside_utf8_sequence();
    test_overlap_repeats_whole_words();
    test_packing_and_positions();
    test_tables_and_code_kept_whole_when_they_fit();
    test_cuts_prefer_paragraphs_then_sentences();
    test_tokens_unit();
    test_bad_options_refused_at_init();
    test_no_elements_is_bad_input();
    test_50mb_line();
    test_big_table_split_by_rows_under_its_header();
    test_long_row_split_at_cells_with_their_headers();
    test_lists_cut_between_items_code_between_lines();
    test_chunk_attrs_kinds_and_pages();
    test_regions_order_columns_and_keep_tables_with_captions();
    return check_done();
}
