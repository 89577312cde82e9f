/* test_parse_html.c - parse-html keeps a page's structure (headings, lists,
 * tables header first, code with its language, quotes, captions), drops
 * scripts, forms, hidden parts and boilerplate, reads <head> metadata,
 * honours a declared latin-1 charset, flattens deep nesting without
 * recursion and refuses hostile or binary input with a reason. Runs the
 * built plugin through its descriptor (harness.h). */
#include <stdlib.h>
#include <string.h>

#include "../parse-markdown/harness.h"

static harness H;

typedef struct result {
    sl_doc *doc;
    int rc;
    sl_call call;
} result;

static result parse_n(harness *h, const char *text, size_t len) {
    result r;
    r.doc = harness_doc("test.html", "text/html", text, len);
    sl_call_init(&r.call, h->inst, NULL);
    r.rc = h->desc->parse(&r.call, r.doc);
    return r;
}

static result parse(const char *text) { return parse_n(&H, text, strlen(text)); }

/* The index of the first element of `type` whose text contains `needle`, or -1. */
static long find(const sl_doc *d, sl_elem_type type, const char *needle) {
    for (size_t i = 0; i < sl_doc_element_count(d); i++)
        if (sl_element_type(d, i) == type && strstr(sl_element_text(d, i, NULL), needle)) return (long)i;
    return -1;
}

static bool anywhere(const sl_doc *d, const char *needle) {
    for (size_t i = 0; i < sl_doc_element_count(d); i++)
        if (strstr(sl_element_text(d, i, NULL), needle)) return true;
    return false;
}

static const char page[] =
    "<!DOCTYPE html>\n"                                                                      /* 1 */
    "<html lang=\"en-GB\"><head><title> The   Guide </title>\n"                              /* 2 */
    "<meta name=\"author\" content=\"Ada Lovelace\">\n"                                      /* 3 */
    "<meta name=\"dcterms.date\" content=\"2024-05-01\">\n"                                  /* 4 */
    "<meta name=\"description\" content=\"How to use it\">\n"                                /* 5 */
    "<style>body { color: red }</style><script>var secret = 1;</script></head>\n"            /* 6 */
    "<body><header><a href=/>Site name</a></header><nav><ul><li>Home</li></ul></nav>\n"      /* 7 */
    "<main><h1>Guide</h1>\n"                                                                 /* 8 */
    "<p>Intro with <a href=x>a link</a> and <b>bold</b>\n"                                   /* 9 */
    "   text &amp; more.</p>\n"                                                              /* 10 */
    "<h2 id=i>Install</h2>\n"                                                                /* 11 */
    "<ul><li>one</li><li>two<ul><li>nested a</li><li>nested b</li></ul></li>\n"              /* 12 */
    "<li><p>three</p><p>more</p></li></ul>\n"                                                /* 13 */
    "<ol start=3><li>first<li>second</ol>\n"                                                 /* 14 */
    "<pre><code class=\"language-python\">print(\"hi\")\n  x = 1\n</code></pre>\n"           /* 15-17 */
    "<table><caption>Values</caption><tfoot><tr><td>sum<td>3</tfoot>\n"                      /* 18 */
    "<tbody><tr><td>a</td><td>1</td></tr><tr><td>b<td></tr></tbody>\n"                       /* 19 */
    "<thead><tr><th>Name</th><th>Value</th></tr></thead></table>\n"                          /* 20 */
    "<blockquote><p>quoted</p><p>twice</p></blockquote>\n"                                   /* 21 */
    "<figure><img src=a.png alt=\"a chart\"><figcaption>Figure 1</figcaption></figure>\n"    /* 22 */
    "<div>loose text<br>next line</div>\n"                                                   /* 23 */
    "<div hidden>hidden one</div><p style=\"display: none\">hidden two</p>\n"                /* 24 */
    "<form><input value=x><textarea>typed</textarea></form><noscript>enable js</noscript>\n" /* 25 */
    "<aside>related links</aside><article><header><h3>Post</h3></header>body</article>\n"    /* 26 */
    "</main><footer>Copyright</footer></body></html>\n";                                     /* 27 */

static void test_structure_and_lines(void) {
    result r = parse(page);
    CHECK_INT(r.rc, 0);
    sl_doc *d = r.doc;
    long h1 = find(d, SL_EL_HEADING, "Guide");
    CHECK(h1 >= 0);
    CHECK_INT(sl_element_level(d, (size_t)h1), 1);
    CHECK_INT(sl_element_line(d, (size_t)h1), 8);
    CHECK_INT(sl_element_page(d, (size_t)h1), 1);
    long h2 = find(d, SL_EL_HEADING, "Install");
    CHECK_INT(sl_element_level(d, (size_t)h2), 2);
    CHECK_INT(sl_element_line(d, (size_t)h2), 11);
    long p = find(d, SL_EL_PARAGRAPH, "Intro");
    CHECK_STR(sl_element_text(d, (size_t)p, NULL), "Intro with a link and bold text & more.");
    CHECK_INT(sl_element_line(d, (size_t)p), 9);
    long l = find(d, SL_EL_LIST, "one");
    CHECK_STR(sl_element_text(d, (size_t)l, NULL),
              "- one\n- two\n  - nested a\n  - nested b\n- three\n  more");
    CHECK_INT(sl_element_line(d, (size_t)l), 12);
    CHECK_STR(sl_element_text(d, (size_t)find(d, SL_EL_LIST, "first"), NULL), "3. first\n4. second");
    long c = find(d, SL_EL_CODE, "print");
    CHECK_STR(sl_element_text(d, (size_t)c, NULL), "print(\"hi\")\n  x = 1");
    CHECK_STR(sl_element_attr(d, (size_t)c, "lang"), "python");
    CHECK_INT(sl_element_line(d, (size_t)c), 15);
    long t = find(d, SL_EL_TABLE, "Name");
    CHECK_STR(sl_element_text(d, (size_t)t, NULL), "Name | Value\na | 1\nb | \nsum | 3");
    CHECK_INT(sl_element_line(d, (size_t)t), 18);
    long cap = find(d, SL_EL_CAPTION, "Values");
    CHECK(cap >= 0 && cap < t); /* the caption comes before its table */
    CHECK_STR(sl_element_text(d, (size_t)find(d, SL_EL_QUOTE, "quoted"), NULL), "quoted\n\ntwice");
    CHECK(find(d, SL_EL_CAPTION, "Figure 1") >= 0);
    CHECK(find(d, SL_EL_PARAGRAPH, "a chart") >= 0);
    CHECK_STR(sl_element_text(d, (size_t)find(d, SL_EL_PARAGRAPH, "loose"), NULL), "loose text\nnext line");
    CHECK(find(d, SL_EL_HEADING, "Post") >= 0); /* an article's header is content */
    static const char *const dropped[] = {"secret",     "color", "Site name", "Home",          "hidden one",
                                          "hidden two", "typed", "enable js", "related links", "Copyright"};
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++) CHECK(!anywhere(d, dropped[i]));
    CHECK_STR(sl_doc_meta_get(d, "title"), "The Guide");
    CHECK_STR(sl_doc_meta_get(d, "author"), "Ada Lovelace");
    CHECK_STR(sl_doc_meta_get(d, "date"), "2024-05-01");
    CHECK_STR(sl_doc_meta_get(d, "description"), "How to use it");
    CHECK_STR(sl_doc_meta_get(d, "lang"), "en-GB");
    CHECK_INT(sl_doc_page_count(d), 1);
    sl_doc_free(d);
}

static void test_keep_boilerplate_and_title_from_h1(void) {
    harness h;
    static const char *const ov[] = {"keep_boilerplate=true", NULL};
    CHECK_INT(harness_open(&h, "parse-html", ov), 0);
    const char *html = "<body><nav>Menu</nav><h1>Only <i>heading</i></h1><footer>Foot</footer>";
    result r = parse_n(&h, html, strlen(html));
    CHECK_INT(r.rc, 0);
    CHECK(anywhere(r.doc, "Menu") && anywhere(r.doc, "Foot"));
    CHECK_STR(sl_doc_meta_get(r.doc, "title"), "Only heading");
    sl_doc_free(r.doc);
    harness_close(&h);
}

/* A table that holds headings or tables is page layout: read as blocks. */
static void test_layout_table(void) {
    result r = parse("<table><tr><td><h2>Menu</h2><p>links</p></td><td><h1>Main</h1>"
                     "<p>body text</p><table><tr><th>k<th>v<tr><td>a<td>1</table></td></tr></table>");
    CHECK_INT(r.rc, 0);
    sl_doc *d = r.doc;
    CHECK_INT(sl_element_level(d, (size_t)find(d, SL_EL_HEADING, "Main")), 1);
    CHECK(find(d, SL_EL_HEADING, "Menu") >= 0);
    CHECK_STR(sl_element_text(d, (size_t)find(d, SL_EL_PARAGRAPH, "body"), NULL), "body text");
    CHECK_STR(sl_element_text(d, (size_t)find(d, SL_EL_TABLE, "k"), NULL), "k | v\na | 1");
    sl_doc_free(d);
}

static void test_charsets(void) {
    /* latin-1 declared: é is 0xE9; windows-1252's 0x93/0x94 are curly quotes */
    const char *l1 = "<meta charset=\"ISO-8859-1\"><p>caf\xE9 \x93q\x94</p>";
    result r = parse(l1);
    CHECK_INT(r.rc, 0);
    CHECK_STR(sl_element_text(r.doc, 0, NULL), "caf\xC3\xA9 \xE2\x80\x9Cq\xE2\x80\x9D");
    CHECK_STR(sl_doc_meta_get(r.doc, "charset"), "iso-8859-1");
    sl_doc_free(r.doc);
    /* another charset iconv knows */
    const char *koi =
        "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=koi8-r\"><p>\xF0\xD2\xC9</p>";
    r = parse(koi);
    CHECK_INT(r.rc, 0);
    CHECK_STR(sl_element_text(r.doc, 0, NULL), "\xD0\x9F\xD1\x80\xD0\xB8"); /* При */
    sl_doc_free(r.doc);
    /* declared UTF-8 that is not */
    r = parse("<meta charset=utf-8><p>bad \xE9 byte</p>");
    CHECK_INT(r.rc, SL_EBADINPUT);
    CHECK_CONTAINS(r.call.msg, "invalid UTF-8 at byte");
    sl_doc_free(r.doc);
    /* an unknown charset */
    r = parse("<meta charset=x-no-such><p>\xE9</p>");
    CHECK_INT(r.rc, SL_EBADINPUT);
    CHECK_CONTAINS(r.call.msg, "unknown charset 'x-no-such'");
    sl_doc_free(r.doc);
    /* with no default charset, undeclared non-UTF-8 fails */
    harness h;
    static const char *const ov[] = {"default_charset=", NULL};
    CHECK_INT(harness_open(&h, "parse-html", ov), 0);
    r = parse_n(&h, "<p>caf\xE9</p>", 9);
    CHECK_INT(r.rc, SL_EBADINPUT);
    CHECK_CONTAINS(r.call.msg, "no charset declared");
    sl_doc_free(r.doc);
    harness_close(&h);
}

static char *repeat(const char *open, const char *mid, const char *close, size_t n, size_t *len) {
    size_t lo = strlen(open), lm = strlen(mid), lc = strlen(close);
    char *s = malloc(n * (lo + lc) + lm + 1), *p = s;
    for (size_t i = 0; i < n; i++) memcpy(p, open, lo), p += lo;
    memcpy(p, mid, lm), p += lm;
    for (size_t i = 0; i < n; i++) memcpy(p, close, lc), p += lc;
    *p = '\0';
    *len = (size_t)(p - s);
    return s;
}

static void test_hostile(void) {
    size_t len;
    /* 10,000 nested divs: parsed, text kept */
    char *s = repeat("<div>", "deep text", "</div>", 10000, &len);
    result r = parse_n(&H, s, len);
    CHECK_INT(r.rc, 0);
    CHECK(anywhere(r.doc, "deep text"));
    sl_doc_free(r.doc);
    free(s);
    /* 10,000 nested lists, past max_depth: flattened, text kept */
    s = repeat("<ul><li>x", "bottom", "</li></ul>", 10000, &len);
    r = parse_n(&H, s, len);
    CHECK_INT(r.rc, 0);
    CHECK(anywhere(r.doc, "bottom"));
    sl_doc_free(r.doc);
    free(s);
    /* 100,000 nested divs: refused before gumbo, with where */
    s = repeat("<div>", "x", "", 100000, &len);
    r = parse_n(&H, s, len);
    CHECK_INT(r.rc, SL_EBADINPUT);
    CHECK_CONTAINS(r.call.msg, "HTML nested deeper than 20000 elements (at byte 100000, line 1)");
    sl_doc_free(r.doc);
    free(s);
    /* binary */
    r = parse_n(&H, "<p>a\0b</p>", 10);
    CHECK_INT(r.rc, SL_EBADINPUT);
    CHECK_STR(r.call.msg, "binary data: NUL byte at offset 4");
    sl_doc_free(r.doc);
    /* nothing readable */
    r = parse("<html><head><script>x()</script></head><body> <!-- c --> </body></html>");
    CHECK_INT(r.rc, SL_EBADINPUT);
    CHECK_STR(r.call.msg, "no text (none outside scripts, styles, forms, hidden parts and page boilerplate)");
    sl_doc_free(r.doc);
    r = parse_n(&H, "", 0);
    CHECK_INT(r.rc, SL_EBADINPUT);
    CHECK_STR(r.call.msg, "empty file");
    sl_doc_free(r.doc);
    /* too many elements, too much text */
    harness h;
    static const char *const ov[] = {"max_elements=1000", NULL};
    CHECK_INT(harness_open(&h, "parse-html", ov), 0);
    s = repeat("<p>a</p>", "", "", 1001, &len);
    r = parse_n(&h, s, len);
    CHECK_INT(r.rc, SL_EBADINPUT);
    CHECK_CONTAINS(r.call.msg, "more than 1000 HTML elements");
    sl_doc_free(r.doc);
    free(s);
    harness_close(&h);
}

int main(void) {
    CHECK_INT(harness_open(&H, "parse-html", NULL), 0);
    CHECK_STR(H.desc->name, "parse-html");
    CHECK_STR(H.desc->media_types[0], "text/html");
    test_structure_and_lines();
    test_keep_boilerplate_and_title_from_h1();
    test_layout_table();
    test_charsets();
    test_hostile();
    harness_close(&H);
    return check_done();
}
