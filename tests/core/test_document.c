/* test_document.c - documents, their arena, and the context's errors and
 * secret scrubbing: what plugins add is kept and read back, elements sort by
 * page stably, loading reports why a path cannot be read, secrets never
 * print, and UTF-8 validation finds the first bad byte. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "check.h"
#include "ctx.h"
#include "document.h"
#include "instance.h"

static void test_arena(void) {
    sl_arena a;
    sl_arena_init(&a);
    char *s = sl_arena_strdup(&a, "hello");
    CHECK_STR(s, "hello");
    CHECK(((uintptr_t)sl_arena_alloc(&a, 3) & 15) == 0);
    /* a block larger than the largest arena block still works */
    unsigned char *big = sl_arena_alloc(&a, 5u << 20);
    CHECK(big != NULL);
    CHECK_INT(big[(5u << 20) - 1], 0);
    big[0] = 1;
    char *after = sl_arena_strdup(&a, "after");
    CHECK_STR(after, "after");
    CHECK(a.used >= (5u << 20));
    sl_arena_free(&a);
    CHECK_INT(a.used, 0);
    /* raw bytes are left as they are; plain allocations are zeroed even
     * where freed, dirty memory comes back */
    for (int round = 0; round < 4; round++) {
        unsigned char *raw = sl_arena_alloc_raw(&a, 3000);
        CHECK(raw != NULL && ((uintptr_t)raw & 15) == 0);
        memset(raw, 0xAB, 3000);
        sl_arena_free(&a);
        unsigned char *z = sl_arena_alloc(&a, 3000);
        size_t nonzero = 0;
        for (size_t i = 0; i < 3000; i++) nonzero += z[i] != 0;
        CHECK_INT(nonzero, 0);
        sl_arena_free(&a);
    }
}

static void test_document_content(void) {
    sl_doc *d = sl_doc_new("docs/a.md", NULL);
    sl_doc_set_data(d, "abc", 3);
    CHECK_STR(sl_doc_uri(d), "docs/a.md");
    CHECK_INT(strlen(sl_doc_hash(d)), 32);
    char h[33];
    sl_hash128_hex("abc", 3, h);
    CHECK_STR(sl_doc_hash(d), h);
    sl_hash128_hex("abd", 3, h);
    CHECK(strcmp(sl_doc_hash(d), h) != 0);

    CHECK_INT(sl_doc_meta_set(d, "title", "One"), 0);
    CHECK_INT(sl_doc_meta_set(d, "title", "Two"), 0);
    CHECK_STR(sl_doc_meta_get(d, "title"), "Two");
    CHECK_INT(sl_doc_meta_count(d), 1);
    CHECK(sl_doc_meta_get(d, "missing") == NULL);

    int e0 = sl_doc_add_element(d, SL_EL_HEADING, "Intro", 5);
    int e1 = sl_doc_add_element(d, SL_EL_PARAGRAPH, "p2", 2);
    int e2 = sl_doc_add_element(d, SL_EL_CODE, "x", 1);
    CHECK_INT(e0, 0);
    CHECK_INT(e2, 2);
    CHECK_INT(sl_doc_add_element(d, (sl_elem_type)99, "x", 1), SL_EINVAL);
    sl_elem_set_level(d, 0, 2);
    sl_elem_set_page(d, 0, 2);
    sl_elem_set_page(d, 1, 1);
    sl_elem_set_page(d, 2, 2);
    sl_elem_set_source(d, 1, 10, 3);
    sl_elem_set_attr(d, 2, "lang", "c");
    sl_elem_set_bbox(d, 2, 1, 2, 3, 4);
    CHECK_INT(sl_elem_set_page(d, 7, 1), SL_EINVAL);
    sl_doc_sort_elements(d);
    /* page 1 first; within page 2 the heading stays before the code */
    CHECK_STR(sl_element_text(d, 0, NULL), "p2");
    CHECK_INT(sl_element_line(d, 0), 3);
    CHECK_STR(sl_element_text(d, 1, NULL), "Intro");
    CHECK_INT(sl_element_level(d, 1), 2);
    CHECK_STR(sl_element_text(d, 2, NULL), "x");
    CHECK_STR(sl_element_attr(d, 2, "lang"), "c");
    float box[4];
    CHECK_INT(sl_element_bbox(d, 2, box), 1);
    CHECK(box[3] == 4.0f);
    CHECK_INT(sl_element_bbox(d, 0, box), 0);
    CHECK(sl_element_confidence(d, 0) < 0);
    CHECK_STR(sl_elem_type_name(SL_EL_TABLE), "table");
    (void)e1;

    int c = sl_doc_add_chunk(d, "chunk text", 10);
    CHECK_INT(c, 0);
    sl_chunk_set_heading(d, 0, "Intro > Setup");
    sl_chunk_set_position(d, 0, 1, 3);
    CHECK_STR(sl_chunk_heading(d, 0), "Intro > Setup");
    CHECK_INT(sl_chunk_line(d, 0), 3);
    uint32_t dim = 9;
    CHECK(sl_chunk_vector(d, 0, &dim) == NULL);
    CHECK_INT(dim, 0);
    float *v = sl_doc_chunk_vector(d, 0, 4);
    v[3] = 2.5f;
    CHECK(sl_chunk_vector(d, 0, &dim)[3] == 2.5f);
    CHECK_INT(dim, 4);
    /* a vector copied in, from bytes at any alignment, replaces it */
    float src[3] = {0.5f, -1.0f, 4.0f};
    unsigned char odd[1 + sizeof src];
    memcpy(odd + 1, src, sizeof src);
    CHECK_INT(sl_doc_set_chunk_vector(d, 0, odd + 1, 3), 0);
    const float *got = sl_chunk_vector(d, 0, &dim);
    CHECK_INT(dim, 3);
    CHECK(got[0] == 0.5f && got[1] == -1.0f && got[2] == 4.0f);
    CHECK_INT(sl_doc_set_chunk_vector(d, 7, src, 3), SL_EINVAL);
    CHECK_INT(sl_doc_set_chunk_vector(d, 0, src, 0), SL_EINVAL);
    CHECK_INT(sl_doc_set_chunk_vector(d, 0, NULL, 3), SL_EINVAL);
    CHECK(sl_chunk_text(d, 5, NULL) == NULL);
    /* chunk attributes: set, replaced, listed in first-set order; bad calls refused */
    CHECK(sl_chunk_attr(d, 0, "kinds") == NULL);
    CHECK_INT(sl_chunk_set_attr(d, 0, "kinds", "paragraph"), 0);
    CHECK_INT(sl_chunk_set_attr(d, 0, "region", "text"), 0);
    CHECK_INT(sl_chunk_set_attr(d, 0, "kinds", "paragraph,table"), 0);
    CHECK_STR(sl_chunk_attr(d, 0, "kinds"), "paragraph,table");
    CHECK_INT(sl_chunk_attr_count(d, 0), 2);
    const char *k = NULL, *val = NULL;
    CHECK_INT(sl_chunk_attr_at(d, 0, 0, &k, &val), 0);
    CHECK_STR(k, "kinds");
    CHECK_STR(val, "paragraph,table");
    CHECK_INT(sl_chunk_attr_at(d, 0, 2, &k, &val), SL_EINVAL);
    CHECK_INT(sl_chunk_set_attr(d, 1, "kinds", "x"), SL_EINVAL);
    CHECK_INT(sl_chunk_set_attr(d, 0, "", "x"), SL_EINVAL);
    CHECK_INT(sl_chunk_set_attr(d, 0, "kinds", NULL), SL_EINVAL);
    CHECK_INT(sl_chunk_attr_count(d, 7), 0);
    CHECK(sl_doc_bytes(d) > 3);
    sl_doc_free(d);
}

static void test_document_load(void) {
    const char *tmp = getenv("SLUICE_TEST_TMP");
    char dir[512], path[600], err[256];
    snprintf(dir, sizeof dir, "%s/doc-%d", tmp ? tmp : "/tmp", (int)getpid());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/a.md", dir);
    FILE *f = fopen(path, "w");
    fputs("# Title\n", f);
    fclose(f);

    sl_doc *d = sl_doc_new(path, path);
    CHECK_INT(sl_doc_load(d, 1 << 20, err, sizeof err), 0);
    size_t len;
    const char *data = sl_doc_data(d, &len);
    CHECK_INT(len, 8);
    CHECK(memcmp(data, "# Title\n", 8) == 0);
    sl_doc_free(d);

    d = sl_doc_new(path, path);
    CHECK_INT(sl_doc_load(d, 4, err, sizeof err), SL_EBADINPUT);
    CHECK_CONTAINS(err, "max_file_size");
    sl_doc_free(d);

    d = sl_doc_new(dir, dir);
    CHECK_INT(sl_doc_load(d, 1 << 20, err, sizeof err), SL_EBADINPUT);
    CHECK_CONTAINS(err, "directory");
    sl_doc_free(d);

    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s/pipe.md", dir);
    mkfifo(fifo, 0644);
    d = sl_doc_new(fifo, fifo);
    CHECK_INT(sl_doc_load(d, 1 << 20, err, sizeof err), SL_EBADINPUT);
    CHECK_CONTAINS(err, "not a regular file");
    sl_doc_free(d);

    char missing[600];
    snprintf(missing, sizeof missing, "%s/none.md", dir);
    d = sl_doc_new(missing, missing);
    CHECK_INT(sl_doc_load(d, 1 << 20, err, sizeof err), SL_EBADINPUT);
    CHECK_CONTAINS(err, "No such file");
    sl_doc_free(d);

    char empty[600];
    snprintf(empty, sizeof empty, "%s/empty.md", dir);
    fclose(fopen(empty, "w"));
    d = sl_doc_new(empty, empty);
    CHECK_INT(sl_doc_load(d, 1 << 20, err, sizeof err), 0);
    sl_doc_data(d, &len);
    CHECK_INT(len, 0);
    sl_doc_free(d);

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_INT(system(cmd), 0);
}

static void test_ctx_errors_and_secrets(void) {
    sl_ctx *ctx = sl_ctx_new();
    CHECK_STR(sl_ctx_errmsg(ctx), "");
    sl_ctx_add_secret(ctx, "sk-TOPSECRET-123");
    sl_ctx_add_secret(ctx, "ab"); /* too short to scrub sensibly: ignored */
    CHECK_INT(sl_ctx_error(ctx, SL_EFATAL, "bad key sk-TOPSECRET-123 for %s", "host"), SL_EFATAL);
    CHECK_STR(sl_ctx_errmsg(ctx), "bad key *** for host");
    CHECK_INT(sl_ctx_errcode(ctx), SL_EFATAL);
    char out[64];
    CHECK_STR(sl_ctx_scrub(ctx, "xsk-TOPSECRET-123ysk-TOPSECRET-123", out, sizeof out), "x***y***");
    CHECK_STR(sl_ctx_scrub(ctx, "about", out, sizeof out), "about");
    CHECK_STR(sl_ctx_scrub(ctx, "sk-TOPSECRET-123", out, 3), "**");
    sl_ctx_clear_error(ctx);
    CHECK_INT(sl_ctx_errcode(ctx), 0);
    sl_ctx_free(ctx);
}

static void test_utf8(void) {
    size_t bad = 99;
    CHECK_INT(sl_utf8_valid("plain", 5, &bad), 1);
    CHECK_INT(sl_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15, &bad), 1);
    CHECK_INT(sl_utf8_valid("ab\xff", 3, &bad), 0);
    CHECK_INT(bad, 2);
    CHECK_INT(sl_utf8_valid("a\xc3", 2, &bad), 0); /* truncated */
    CHECK_INT(bad, 1);
    CHECK_INT(sl_utf8_valid("\xc0\xaf", 2, &bad), 0);         /* overlong */
    CHECK_INT(sl_utf8_valid("\xed\xa0\x80", 3, &bad), 0);     /* surrogate */
    CHECK_INT(sl_utf8_valid("\xf4\x90\x80\x80", 4, &bad), 0); /* > U+10FFFF */
    CHECK(sl_hash64("a", 1, 0) != sl_hash64("a", 1, 1));
    CHECK(sl_hash64("a", 1, 7) == sl_hash64("a", 1, 7));
    CHECK_STR(sl_strerror(SL_EBADINPUT), "bad input");
}

/* Text a plugin gives must be UTF-8: refused with SL_EBADINPUT, nothing
 * added, and the first offence kept with its place for the verdict that
 * fails the document even when the plugin answered 0. */
static void test_plugin_text_must_be_utf8(void) {
    sl_doc *d = sl_doc_new("docs/bad.txt", NULL);
    CHECK_INT(sl_doc_add_element(d, SL_EL_PARAGRAPH, "fine \xc3\xa9", 7), 0);
    CHECK_INT(sl_doc_add_element(d, SL_EL_HEADING,
                                 "ab\xff"
                                 "cd",
                                 5),
              SL_EBADINPUT);
    CHECK_INT((int)sl_doc_element_count(d), 1);
    CHECK_INT(sl_doc_add_chunk(d, "\xc3", 1), SL_EBADINPUT); /* truncated: later offences keep the first */
    CHECK_INT((int)sl_doc_chunk_count(d), 0);
    sl_call call;
    sl_call_init(&call, NULL, NULL);
    CHECK_INT(sl_doc_text_verdict(d, &call, 0), SL_EBADINPUT);
    CHECK(strstr(call.msg, "element 1 (heading): not valid UTF-8 at byte 2") != NULL);
    sl_doc_free(d);

    d = sl_doc_new("docs/meta.txt", NULL);
    CHECK_INT(sl_doc_meta_set(d, "title", "caf\xe9"), SL_EBADINPUT);
    CHECK(sl_doc_meta_get(d, "title") == NULL);
    CHECK_INT(sl_doc_add_chunk(d, "ok", 2), 0);
    CHECK_INT(sl_chunk_set_heading(d, 0, "A > \x80"), SL_EBADINPUT);
    sl_call_init(&call, NULL, NULL);
    CHECK_INT(sl_doc_text_verdict(d, &call, SL_ENOMEM), SL_EBADINPUT);
    CHECK(strstr(call.msg, "metadata value: not valid UTF-8 at byte 3") != NULL);
    sl_doc_free(d);

    d = sl_doc_new("docs/good.txt", NULL); /* valid text: the plugin's own answer stands */
    CHECK_INT(sl_doc_add_element(d, SL_EL_PARAGRAPH, "plain", 5), 0);
    CHECK_INT(sl_doc_text_verdict(d, &call, 0), 0);
    CHECK_INT(sl_doc_text_verdict(d, &call, SL_ERETRY), SL_ERETRY);
    sl_doc_free(d);
}

/* 200,000 keys (a front matter of that many lines, issue 17): set, found,
 * overwritten and listed in the order they came. With a linear search per
 * key this took minutes; the test's size is what it checks, not a time. */
static void test_many_metadata_keys(void) {
    enum { N = 200000 };
    sl_doc *d = sl_doc_new("docs/many.md", NULL);
    char k[32], v[32];
    int bad = 0;
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "key-%d", i);
        snprintf(v, sizeof v, "v%d", i);
        bad += sl_doc_meta_set(d, k, v) != 0;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(sl_doc_meta_count(d), N);
    for (int i = 0; i < N; i += 997) {
        snprintf(k, sizeof k, "key-%d", i);
        snprintf(v, sizeof v, "v%d", i);
        const char *got = sl_doc_meta_get(d, k);
        bad += !got || strcmp(got, v) != 0;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(sl_doc_meta_set(d, "key-12345", "again"), 0);
    CHECK_STR(sl_doc_meta_get(d, "key-12345"), "again");
    CHECK_INT(sl_doc_meta_count(d), N);
    CHECK(sl_doc_meta_get(d, "key-200000") == NULL);
    const char *key, *val;
    CHECK_INT(sl_doc_meta_at(d, 12345, &key, &val), 0);
    CHECK_STR(key, "key-12345");
    CHECK_STR(val, "again");
    CHECK_INT(sl_doc_meta_at(d, N - 1, &key, &val), 0);
    CHECK_STR(key, "key-199999");
    sl_doc_free(d);
}

int main(void) {
    test_arena();
    test_document_content();
    test_many_metadata_keys();
    test_document_load();
    test_ctx_errors_and_secrets();
    test_utf8();
    test_plugin_text_must_be_utf8();
    return check_done();
}
