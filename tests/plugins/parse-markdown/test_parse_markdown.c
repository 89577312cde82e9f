/* test_parse_markdown.c - parse-markdown turns Markdown and plain text into
 * typed elements with levels, lines, offsets and attributes, reads front
 * matter and titles, refuses bad input with the reason, and stays linear on
 * a 50 MB line. Runs the built plugin through its descriptor (harness.h). */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static harness H;

typedef struct result {
    sl_doc *doc;
    int rc;
    sl_call call;
} result;

/* Parses `text` (len bytes, or strlen when len is SIZE_MAX) as media type mt. */
static result parse_with(harness *h, const char *mt, const char *text, size_t len) {
    result r;
    if (len == SIZE_MAX) len = strlen(text);
    r.doc = harness_doc("test", mt, text, len);
    sl_call_init(&r.call, h->inst, NULL);
    r.rc = h->desc->parse(&r.call, r.doc);
    return r;
}

static result parse(const char *mt, const char *text) { return parse_with(&H, mt, text, SIZE_MAX); }

static const char *text_of(const sl_doc *doc, size_t i) { return sl_element_text(doc, i, NULL); }

static void test_descriptor(void) {
    CHECK(H.desc != NULL);
    CHECK_STR(H.desc->name, "parse-markdown");
    CHECK_INT(H.desc->role, SL_ROLE_PARSER);
    CHECK_INT(H.desc->bottleneck, SL_CPU);
    CHECK_STR(H.desc->media_types[0], "text/markdown");
    CHECK_STR(H.desc->media_types[1], "text/plain");
    CHECK(H.desc->media_types[2] == NULL);
}

static const char guide[] = "# Guide\n"                                                            /* 1 */
                            "\n"                                                                   /* 2 */
                            "Intro with [a link](http://example.com) and `code` and *emphasis*.\n" /* 3 */
                            "Second line &amp; more.\n"                                            /* 4 */
                            "\n"                                                                   /* 5 */
                            "## Install\n"                                                         /* 6 */
                            "\n"                                                                   /* 7 */
                            "- one\n"                                                              /* 8 */
                            "- two\n"                                                              /* 9 */
                            "  - nested a\n"                                                       /* 10 */
                            "  - nested b\n"                                                       /* 11 */
                            "- three\n"                                                            /* 12 */
                            "\n"                                                                   /* 13 */
                            "3. first\n"                                                           /* 14 */
                            "4. second\n"                                                          /* 15 */
                            "\n"                                                                   /* 16 */
                            "```python\n"                                                          /* 17 */
                            "print(\"hi\")\n"                                                      /* 18 */
                            "```\n"                                                                /* 19 */
                            "\n"                                                                   /* 20 */
                            "| Name | Value |\n"                                                   /* 21 */
                            "|------|-------|\n"                                                   /* 22 */
                            "| a    | 1     |\n"                                                   /* 23 */
                            "| b    | 2     |\n"                                                   /* 24 */
                            "\n"                                                                   /* 25 */
                            "> quoted text\n"                                                      /* 26 */
                            "> continues\n"                                                        /* 27 */
                            "\n"                                                                   /* 28 */
                            "---\n"                                                                /* 29 */
                            "\n"                                                                   /* 30 */
                            "### Deep\n"                                                           /* 31 */
                            "\n"                                                                   /* 32 */
                            "Line one\\\n"                                                         /* 33 */
                            "line two\n";                                                          /* 34 */

static void test_markdown_blocks_become_typed_elements_with_lines(void) {
    result r = parse("text/markdown", guide);
    CHECK_INT(r.rc, 0);
    sl_doc *d = r.doc;
    CHECK_INT(sl_doc_element_count(d), 10);
    if (sl_doc_element_count(d) != 10) goto out;

    CHECK_INT(sl_element_type(d, 0), SL_EL_HEADING);
    CHECK_INT(sl_element_level(d, 0), 1);
    CHECK_STR(text_of(d, 0), "Guide");
    CHECK_INT(sl_element_line(d, 0), 1);
    CHECK_INT(sl_element_offset(d, 0), 2); /* the heading's first text, after "# " */

    CHECK_INT(sl_element_type(d, 1), SL_EL_PARAGRAPH);
    CHECK_STR(text_of(d, 1), "Intro with a link and code and emphasis. Second line & more.");
    CHECK_INT(sl_element_line(d, 1), 3);
    CHECK_INT(sl_element_offset(d, 1), (long long)(strstr(guide, "Intro") - guide));

    CHECK_INT(sl_element_type(d, 2), SL_EL_HEADING);
    CHECK_INT(sl_element_level(d, 2), 2);
    CHECK_STR(text_of(d, 2), "Install");
    CHECK_INT(sl_element_line(d, 2), 6);

    CHECK_INT(sl_element_type(d, 3), SL_EL_LIST);
    CHECK_STR(text_of(d, 3), "- one\n- two\n  - nested a\n  - nested b\n- three");
    CHECK_INT(sl_element_line(d, 3), 8);

    CHECK_INT(sl_element_type(d, 4), SL_EL_LIST);
    CHECK_STR(text_of(d, 4), "3. first\n4. second"); /* numbering keeps the list's start */
    CHECK_INT(sl_element_line(d, 4), 14);

    CHECK_INT(sl_element_type(d, 5), SL_EL_CODE);
    CHECK_STR(text_of(d, 5), "print(\"hi\")");
    CHECK_STR(sl_element_attr(d, 5, "lang"), "python");
    CHECK_INT(sl_element_line(d, 5), 17); /* the opening fence */
    CHECK_INT(sl_element_offset(d, 5), (long long)(strstr(guide, "```python") - guide));

    CHECK_INT(sl_element_type(d, 6), SL_EL_TABLE);
    CHECK_STR(text_of(d, 6), "Name | Value\na | 1\nb | 2");
    CHECK_STR(sl_element_attr(d, 6, "header"), "1"); /* the first row is the header: chunkers repeat it */
    CHECK_INT(sl_element_line(d, 6), 21);

    CHECK_INT(sl_element_type(d, 7), SL_EL_QUOTE);
    CHECK_STR(text_of(d, 7), "quoted text continues");
    CHECK_INT(sl_element_line(d, 7), 26);

    CHECK_INT(sl_element_type(d, 8), SL_EL_HEADING);
    CHECK_INT(sl_element_level(d, 8), 3);
    CHECK_STR(text_of(d, 8), "Deep");
    CHECK_INT(sl_element_line(d, 8), 31);

    CHECK_INT(sl_element_type(d, 9), SL_EL_PARAGRAPH);
    CHECK_STR(text_of(d, 9), "Line one\nline two"); /* hard break kept as a newline */
    CHECK_INT(sl_element_line(d, 9), 33);

    CHECK_INT(sl_doc_page_count(d), 1);
    for (size_t i = 0; i < sl_doc_element_count(d); i++) CHECK_INT(sl_element_page(d, i), 1);
    CHECK_STR(sl_doc_meta_get(d, "title"), "Guide"); /* the first level-1 heading */
out:
    sl_doc_free(d);
}

static void test_all_heading_levels(void) {
    result r = parse("text/markdown", "# a\n## b\n### c\n#### d\n##### e\n###### f\n\nSetext\n------\n");
    CHECK_INT(r.rc, 0);
    CHECK_INT(sl_doc_element_count(r.doc), 7);
    for (size_t i = 0; i < 6 && i < sl_doc_element_count(r.doc); i++) {
        CHECK_INT(sl_element_type(r.doc, i), SL_EL_HEADING);
        CHECK_INT(sl_element_level(r.doc, i), (long long)i + 1);
        CHECK_INT(sl_element_line(r.doc, i), (long long)i + 1);
    }
    if (sl_doc_element_count(r.doc) == 7) {
        CHECK_STR(text_of(r.doc, 6), "Setext");
        CHECK_INT(sl_element_level(r.doc, 6), 2);
        CHECK_INT(sl_element_line(r.doc, 6), 8);
    }
    sl_doc_free(r.doc);
}

static void test_nested_and_loose_lists_and_tasks(void) {
    result r = parse("text/markdown", "- [x] done\n- [ ] todo\n\n"
                                      "* para one\n\n  para two\n* next\n  1. inner\n  2. inner two\n"
                                      "     - deepest\n");
    CHECK_INT(r.rc, 0);
    CHECK_INT(sl_doc_element_count(r.doc), 2);
    if (sl_doc_element_count(r.doc) == 2) {
        CHECK_INT(sl_element_type(r.doc, 0), SL_EL_LIST);
        CHECK_STR(text_of(r.doc, 0), "- [x] done\n- [ ] todo");
        CHECK_INT(sl_element_type(r.doc, 1), SL_EL_LIST);
        CHECK_STR(text_of(r.doc, 1),
                  "- para one\n  para two\n- next\n  1. inner\n  2. inner two\n    - deepest");
        CHECK_INT(sl_element_line(r.doc, 1), 4);
    }
    sl_doc_free(r.doc);
}

static void test_code_blocks(void) {
    result r = parse("text/markdown", "Text.\n\n~~~ js extra words\n\n  let x = 1;\nx++;\n~~~\n\n"
                                      "    indented code\n    second\n\n```\nno lang\n```\n");
    CHECK_INT(r.rc, 0);
    CHECK_INT(sl_doc_element_count(r.doc), 4);
    if (sl_doc_element_count(r.doc) == 4) {
        CHECK_INT(sl_element_type(r.doc, 1), SL_EL_CODE);
        CHECK_STR(text_of(r.doc, 1), "  let x = 1;\nx++;"); /* leading blank line dropped, indent kept */
        CHECK_STR(sl_element_attr(r.doc, 1, "lang"), "js");
        CHECK_INT(sl_element_line(r.doc, 1), 3);
        CHECK_INT(sl_element_offset(r.doc, 1), 7);
        CHECK_INT(sl_element_type(r.doc, 2), SL_EL_CODE);
        CHECK_STR(text_of(r.doc, 2), "indented code\nsecond");
        CHECK(sl_element_attr(r.doc, 2, "lang") == NULL);
        CHECK_INT(sl_element_line(r.doc, 2), 9);
        CHECK_STR(text_of(r.doc, 3), "no lang");
        CHECK(sl_element_attr(r.doc, 3, "lang") == NULL);
        CHECK_INT(sl_element_line(r.doc, 3), 12);
    }
    sl_doc_free(r.doc);
}

static void test_table_cells_and_inline_markup(void) {
    result r =
        parse("text/markdown", "Intro\n\n| **Key** | `val` | [site](https://x.org) |\n| :-- | :-: | --: |\n"
                               "| k1 | v&amp;1 | |\n");
    CHECK_INT(r.rc, 0);
    CHECK_INT(sl_doc_element_count(r.doc), 2);
    if (sl_doc_element_count(r.doc) == 2) {
        CHECK_INT(sl_element_type(r.doc, 1), SL_EL_TABLE);
        CHECK_STR(text_of(r.doc, 1), "Key | val | site\nk1 | v&1 |");
        CHECK_INT(sl_element_line(r.doc, 1), 3);
    }
    sl_doc_free(r.doc);
}

static void test_quote_with_several_blocks(void) {
    result r = parse("text/markdown", "> first para\n>\n> - item\n>\n> > nested\n\nafter\n");
    CHECK_INT(r.rc, 0);
    CHECK_INT(sl_doc_element_count(r.doc), 2);
    if (sl_doc_element_count(r.doc) == 2) {
        CHECK_INT(sl_element_type(r.doc, 0), SL_EL_QUOTE);
        CHECK_STR(text_of(r.doc, 0), "first para\n\n- item\n\nnested");
        CHECK_INT(sl_element_line(r.doc, 0), 1);
        CHECK_STR(text_of(r.doc, 1), "after");
        CHECK_INT(sl_element_line(r.doc, 1), 7);
    }
    sl_doc_free(r.doc);
}

static void test_entities_are_decoded(void) {
    result r =
        parse("text/markdown",
              "Fish &amp; chips &lt;b&gt; &quot;q&quot; &#65;&#x42;&#X43; &copy; &bogus; &#0; &#x110000;\n");
    CHECK_INT(r.rc, 0);
    CHECK_INT(sl_doc_element_count(r.doc), 1);
    CHECK_STR(text_of(r.doc, 0), "Fish & chips <b> \"q\" ABC \xC2\xA9 &bogus; \xEF\xBF\xBD \xEF\xBF\xBD");
    sl_doc_free(r.doc);
}

static void test_html_blocks(void) {
    result r = parse("text/markdown", "<div class=\"note\">\n<b>Note:</b> be careful\n</div>\n\n"
                                      "<!-- only a comment -->\n\n"
                                      "<div>\n1 < 2 and <!-- never closed\n\n"
                                      "Inline <span>html</span> tags go.\n");
    CHECK_INT(r.rc, 0);
    CHECK_INT(sl_doc_element_count(r.doc), 3);
    if (sl_doc_element_count(r.doc) == 3) {
        CHECK_INT(sl_element_type(r.doc, 0), SL_EL_OTHER);
        CHECK_STR(text_of(r.doc, 0), "Note: be careful");
        CHECK_INT(sl_element_type(r.doc, 1), SL_EL_OTHER);
        CHECK_STR(text_of(r.doc, 1), "<div>\n1 < 2 and <!-- never closed"); /* not simple: kept raw */
        CHECK_INT(sl_element_line(r.doc, 1), 7);
        CHECK_STR(text_of(r.doc, 2), "Inline html tags go.");
    }
    sl_doc_free(r.doc);
}

static const char fm_doc[] = "---\n"
                             "title: \"My Doc\"\n"
                             "author: Jane Roe\n"
                             "tags:\n"
                             "  - a\n"
                             "# a comment\n"
                             "url: http://example.com/x\n"
                             "---\n"
                             "# Heading One\n"
                             "\n"
                             "Body.\n";

static void test_front_matter_goes_to_metadata(void) {
    result r = parse("text/markdown", fm_doc);
    CHECK_INT(r.rc, 0);
    CHECK_STR(sl_doc_meta_get(r.doc, "title"), "My Doc"); /* front matter wins over the first H1 */
    CHECK_STR(sl_doc_meta_get(r.doc, "author"), "Jane Roe");
    CHECK_STR(sl_doc_meta_get(r.doc, "url"), "http://example.com/x");
    CHECK(sl_doc_meta_get(r.doc, "tags") == NULL);
    CHECK_INT(sl_doc_element_count(r.doc), 2);
    if (sl_doc_element_count(r.doc) == 2) {
        CHECK_STR(text_of(r.doc, 0), "Heading One");
        CHECK_INT(sl_element_line(r.doc, 0), 9); /* lines count from the top of the file */
        CHECK_STR(text_of(r.doc, 1), "Body.");
        CHECK_INT(sl_element_line(r.doc, 1), 11);
    }
    sl_doc_free(r.doc);

    /* Without a closing line there is no front matter. */
    r = parse("text/markdown", "---\ntitle: x\n\nNot closed.\n");
    CHECK_INT(r.rc, 0);
    CHECK(sl_doc_meta_get(r.doc, "title") == NULL);
    sl_doc_free(r.doc);
}

static void test_front_matter_off(void) {
    harness h;
    const char *const over[] = {"front_matter=false", NULL};
    CHECK_INT(harness_open(&h, "parse-markdown", over), 0);
    if (h.init_rc) return;
    result r = parse_with(&h, "text/markdown", fm_doc, SIZE_MAX);
    CHECK_INT(r.rc, 0);
    CHECK(sl_doc_meta_get(r.doc, "author") == NULL);
    CHECK_STR(sl_doc_meta_get(r.doc, "title"), "a comment"); /* "# a comment" is now a heading */
    int found = 0;
    for (size_t i = 0; i < sl_doc_element_count(r.doc); i++)
        found |= strstr(text_of(r.doc, i), "author") != NULL;
    CHECK(found);
    sl_doc_free(r.doc);
    harness_close(&h);
}

static void test_plain_text_paragraphs(void) {
    const char *t = "First para line one.\nline two.\n\n   \n\nSecond para.\n";
    result r = parse("text/plain", t);
    CHECK_INT(r.rc, 0);
    CHECK_INT(sl_doc_element_count(r.doc), 2);
    if (sl_doc_element_count(r.doc) == 2) {
        CHECK_INT(sl_element_type(r.doc, 0), SL_EL_PARAGRAPH);
        CHECK_STR(text_of(r.doc, 0), "First para line one.\nline two.");
        CHECK_INT(sl_element_line(r.doc, 0), 1);
        CHECK_INT(sl_element_offset(r.doc, 0), 0);
        CHECK_STR(text_of(r.doc, 1), "Second para.");
        CHECK_INT(sl_element_line(r.doc, 1), 6);
        CHECK_INT(sl_element_offset(r.doc, 1), (long long)(strstr(t, "Second") - t));
        CHECK_INT(sl_element_page(r.doc, 1), 1);
    }
    CHECK_INT(sl_doc_page_count(r.doc), 1);
    CHECK(sl_doc_meta_get(r.doc, "title") == NULL);
    sl_doc_free(r.doc);

    /* CRLF line ends, and Markdown syntax means nothing in plain text. */
    r = parse("text/plain", "# not a heading\r\nb\r\n\r\nc");
    CHECK_INT(r.rc, 0);
    CHECK_INT(sl_doc_element_count(r.doc), 2);
    if (sl_doc_element_count(r.doc) == 2) {
        CHECK_STR(text_of(r.doc, 0), "# not a heading\nb");
        CHECK_INT(sl_element_type(r.doc, 0), SL_EL_PARAGRAPH);
        CHECK_STR(text_of(r.doc, 1), "c");
        CHECK_INT(sl_element_line(r.doc, 1), 4);
        CHECK_INT(sl_element_offset(r.doc, 1), 22);
    }
    sl_doc_free(r.doc);
}

static void check_bad(const char *mt, const char *data, size_t len, const char *reason) {
    result r = parse_with(&H, mt, data, len);
    CHECK_INT(r.rc, SL_EBADINPUT);
    CHECK_INT(r.call.code, SL_EBADINPUT);
    CHECK_STR(r.call.msg, reason);
    sl_doc_free(r.doc);
}

static void test_bad_input_is_refused_with_the_reason(void) {
    check_bad("text/markdown", "", 0, "empty file");
    check_bad("text/plain", "", 0, "empty file");
    check_bad("text/markdown", "abc\0def", 7, "binary data: NUL byte at offset 3");
    check_bad("text/markdown", "line1\nline2 \xC3\x28 x", SIZE_MAX, "invalid UTF-8 at byte 12 (line 2)");
    check_bad("text/plain", "ok\n\n\xFF", SIZE_MAX, "invalid UTF-8 at byte 4 (line 3)");
    check_bad("text/markdown", " \n\n\t \n", SIZE_MAX, "no text");
    check_bad("text/plain", " \n\n\t \n", SIZE_MAX, "no text");
    check_bad("text/markdown", "---\n---\n<!-- c -->\n\n***\n", SIZE_MAX, "no text");
}

static void test_invalid_utf8_can_be_replaced(void) {
    harness h;
    const char *const over[] = {"invalid_utf8=replace", NULL};
    CHECK_INT(harness_open(&h, "parse-markdown", over), 0);
    if (h.init_rc) return;
    result r = parse_with(&h, "text/markdown", "caf\xE9 ok \xC3", SIZE_MAX);
    CHECK_INT(r.rc, 0);
    CHECK_INT(sl_doc_element_count(r.doc), 1);
    CHECK_STR(text_of(r.doc, 0), "caf\xEF\xBF\xBD ok \xEF\xBF\xBD");
    sl_doc_free(r.doc);
    harness_close(&h);

    const char *const bad[] = {"invalid_utf8=ignore", NULL};
    CHECK_INT(harness_open(&h, "parse-markdown", bad), SL_EFATAL);
    CHECK_CONTAINS(h.inst ? h.inst->errmsg : NULL, "invalid_utf8");
    harness_close(&h);
}

/* 50 MB of words on one line: one paragraph, every byte kept. Both parsers
 * must be linear here; a quadratic step would not finish. */
static void test_50mb_single_line(void) {
    size_t n = 50u * 1000 * 1000;
    char *big = malloc(n);
    if (!big) return;
    for (size_t i = 0; i < n; i++) big[i] = i % 6 == 5 ? ' ' : "lorem"[i % 6];
    big[n - 1] = 'x';
    const char *types[] = {"text/markdown", "text/plain"};
    for (int t = 0; t < 2; t++) {
        result r = parse_with(&H, types[t], big, n);
        CHECK_INT(r.rc, 0);
        CHECK_INT(sl_doc_element_count(r.doc), 1);
        size_t len = 0;
        const char *s = sl_element_text(r.doc, 0, &len);
        CHECK_INT(len, n);
        CHECK(s && memcmp(s, big, n) == 0);
        CHECK_INT(sl_element_type(r.doc, 0), SL_EL_PARAGRAPH);
        CHECK_INT(sl_element_line(r.doc, 0), 1);
        sl_doc_free(r.doc);
    }
    free(big);
}

int main(void) {
    if (harness_open(&H, "parse-markdown", NULL) != 0) {
        fprintf(stderr, "cannot load and init parse-markdown\n");
        return 1;
    }
    test_descriptor();
    test_markdown_blocks_become_typed_elements_with_lines();
    test_all_heading_levels();
    test_nested_and_loose_lists_and_tasks();
    test_code_blocks();
    test_table_cells_and_inline_markup();
    test_quote_with_several_blocks();
    test_entities_are_decoded();
    test_html_blocks();
    test_front_matter_goes_to_metadata();
    test_front_matter_off();
    test_plain_text_paragraphs();
    test_bad_input_is_refused_with_the_reason();
    test_invalid_utf8_can_be_replaced();
    test_50mb_single_line();
    harness_close(&H);
    return check_done();
}
