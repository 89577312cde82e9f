/* test_query.c - sl_hits (core/query.c): the list a sink fills keeps the
 * best k hits, nearest first, whatever order they were added in. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../check.h" /* the tests' check.h, not core/check.h */
#include "query.h"
#include "sluice/call.h"

/* k = 3 over 10 hits added in a scrambled order: the best three remain,
 * sorted, with their fields copied. */
static void test_keeps_best_k_sorted(void) {
    sl_hits *h = sl_hits_new(3);
    CHECK(h != NULL);
    const int order[10] = {4, 9, 1, 7, 0, 3, 8, 2, 6, 5};
    for (int i = 0; i < 10; i++) {
        int s = order[i];
        char uri[32], heading[32], text[32];
        snprintf(uri, sizeof uri, "doc%d.md", s);
        snprintf(heading, sizeof heading, "H%d", s);
        snprintf(text, sizeof text, "text %d", s);
        CHECK_INT(sl_hits_add(h, s / 10.0, uri, (uint32_t)s, (uint32_t)s + 1, (uint32_t)s + 2, heading, text),
                  0);
    }
    sl_hits_sort(h);
    CHECK_INT(sl_hits_count(h), 3);
    for (size_t i = 0; i < sl_hits_count(h); i++) {
        const sl_hit *hit = sl_hits_at(h, i);
        int s = 9 - (int)i;
        char want[32];
        CHECK(fabs(hit->score - s / 10.0) < 1e-12);
        snprintf(want, sizeof want, "doc%d.md", s);
        CHECK_STR(hit->uri, want);
        CHECK_INT(hit->chunk, s);
        CHECK_INT(hit->page, s + 1);
        CHECK_INT(hit->line, s + 2);
        snprintf(want, sizeof want, "H%d", s);
        CHECK_STR(hit->heading, want);
        snprintf(want, sizeof want, "text %d", s);
        CHECK_STR(hit->text, want);
    }
    CHECK(sl_hits_at(h, 3) == NULL);
    sl_hits_free(h);
}

/* Many more hits than k: the list trims as it goes and still ends with the
 * true best k (the scores 999..990). */
static void test_many_adds_keep_true_best(void) {
    sl_hits *h = sl_hits_new(10);
    for (int i = 0; i < 1000; i++) {
        int s = (i * 7919) % 1000; /* a permutation of 0..999 */
        CHECK_INT(sl_hits_add(h, s, "u", (uint32_t)s, 0, 0, NULL, "t"), 0);
    }
    sl_hits_sort(h);
    CHECK_INT(sl_hits_count(h), 10);
    for (size_t i = 0; i < sl_hits_count(h); i++) CHECK_INT(sl_hits_at(h, i)->chunk, 999 - (int)i);
    CHECK_STR(sl_hits_at(h, 0)->heading, ""); /* NULL heading reads as "" */
    sl_hits_free(h);
}

/* Equal scores are ordered by uri, then chunk, not by arrival. */
static void test_ties_ordered_by_uri_then_chunk(void) {
    sl_hits *h = sl_hits_new(0);
    CHECK_INT(sl_hits_add(h, 0.5, "b", 1, 0, 0, "", "x"), 0);
    CHECK_INT(sl_hits_add(h, 0.5, "a", 2, 0, 0, "", "x"), 0);
    CHECK_INT(sl_hits_add(h, 0.5, "a", 1, 0, 0, "", "x"), 0);
    CHECK_INT(sl_hits_add(h, 0.9, "z", 0, 0, 0, "", "x"), 0);
    sl_hits_sort(h);
    CHECK_INT(sl_hits_count(h), 4); /* k = 0 keeps all */
    CHECK_STR(sl_hits_at(h, 0)->uri, "z");
    CHECK_STR(sl_hits_at(h, 1)->uri, "a");
    CHECK_INT(sl_hits_at(h, 1)->chunk, 1);
    CHECK_STR(sl_hits_at(h, 2)->uri, "a");
    CHECK_INT(sl_hits_at(h, 2)->chunk, 2);
    CHECK_STR(sl_hits_at(h, 3)->uri, "b");
    sl_hits_free(h);
}

/* NULL strings and NaN scores are refused and add nothing. */
static void test_bad_arguments_refused(void) {
    sl_hits *h = sl_hits_new(5);
    CHECK_INT(sl_hits_add(h, 1.0, NULL, 0, 0, 0, "", "t"), SL_EINVAL);
    CHECK_INT(sl_hits_add(h, 1.0, "u", 0, 0, 0, "", NULL), SL_EINVAL);
    CHECK_INT(sl_hits_add(h, NAN, "u", 0, 0, 0, "", "t"), SL_EINVAL);
    CHECK_INT(sl_hits_add(NULL, 1.0, "u", 0, 0, 0, "", "t"), SL_EINVAL);
    CHECK_INT(sl_hits_count(h), 0);
    sl_hits_free(h);
    sl_hits_free(NULL);
}

/* Attributes go to the hit just added, survive sorting and trimming with
 * it, and need a hit just added. */
static void test_attrs_follow_their_hit(void) {
    sl_hits *h = sl_hits_new(2);
    CHECK_INT(sl_hits_set_attr(h, "kinds", "table"), SL_EINVAL); /* no hit yet */
    CHECK_INT(sl_hits_add(h, 0.2, "low", 0, 0, 0, "", "t"), 0);
    CHECK_INT(sl_hits_set_attr(h, "kinds", "paragraph"), 0);
    CHECK_INT(sl_hits_add(h, 0.9, "high", 0, 0, 0, "", "t"), 0);
    CHECK_INT(sl_hits_set_attr(h, "kinds", "list"), 0);
    CHECK_INT(sl_hits_set_attr(h, "kinds", "table"), 0); /* replaced */
    CHECK_INT(sl_hits_set_attr(h, "region", "table"), 0);
    CHECK_INT(sl_hits_set_attr(h, "", "x"), SL_EINVAL);
    CHECK_INT(sl_hits_set_attr(h, "k", NULL), SL_EINVAL);
    for (int i = 0; i < 10; i++) CHECK_INT(sl_hits_add(h, 0.1, "drop", (uint32_t)i, 0, 0, "", "t"), 0);
    sl_hits_sort(h);
    CHECK_INT(sl_hits_set_attr(h, "kinds", "code"), SL_EINVAL); /* sorted: no hit is "just added" */
    CHECK_INT(sl_hits_count(h), 2);
    CHECK_STR(sl_hits_at(h, 0)->uri, "high");
    CHECK_STR(sl_hit_attr(sl_hits_at(h, 0), "kinds"), "table");
    CHECK_STR(sl_hit_attr(sl_hits_at(h, 0), "region"), "table");
    CHECK_INT(sl_hits_at(h, 0)->nattrs, 2);
    CHECK_STR(sl_hit_attr(sl_hits_at(h, 1), "kinds"), "paragraph");
    CHECK(sl_hit_attr(sl_hits_at(h, 1), "region") == NULL);
    sl_hits_free(h);
}

/* Reciprocal rank fusion: a chunk in both rankings sums 1 / (rrf_k + rank)
 * of each, one in a single ranking gets that one's share; each keeps its
 * ranks and scores, and attributes come along. */
static void test_fuse_sums_reciprocal_ranks(void) {
    sl_hits *vec = sl_hits_new(10), *kw = sl_hits_new(10);
    /* vector: a.md#0 (0.9), b.md#0 (0.8), c.md#1 (0.7); keyword: c.md#1 (12), d.md#2 (7), a.md#0 (3) */
    CHECK_INT(sl_hits_add(vec, 0.8, "b.md", 0, 1, 1, "", "b"), 0);
    CHECK_INT(sl_hits_add(vec, 0.9, "a.md", 0, 1, 1, "", "a"), 0);
    CHECK_INT(sl_hits_set_attr(vec, "kinds", "paragraph"), 0);
    CHECK_INT(sl_hits_add(vec, 0.7, "c.md", 1, 1, 1, "", "c"), 0);
    CHECK_INT(sl_hits_add(kw, 7.0, "d.md", 2, 1, 1, "", "d"), 0);
    CHECK_INT(sl_hits_add(kw, 12.0, "c.md", 1, 1, 1, "", "c"), 0);
    CHECK_INT(sl_hits_add(kw, 3.0, "a.md", 0, 1, 1, "", "a"), 0);
    sl_hits_rank(vec, true);
    sl_hits_rank(kw, false);
    sl_hits *f = sl_hits_fuse(vec, kw, 3, 60, 1.0, 1.0);
    CHECK(f != NULL);
    CHECK_INT(sl_hits_count(f), 3);
    /* c: 1/63 + 1/61; a: 1/61 + 1/63 (a tie: uri orders it first); b: 1/62; d: 1/62 */
    const sl_hit *h0 = sl_hits_at(f, 0), *h1 = sl_hits_at(f, 1), *h2 = sl_hits_at(f, 2);
    CHECK_STR(h0->uri, "a.md");
    CHECK(fabs(h0->score - (1.0 / 61 + 1.0 / 63)) < 1e-12);
    CHECK_INT(h0->vrank, 1);
    CHECK_INT(h0->krank, 3);
    CHECK(fabs(h0->vscore - 0.9) < 1e-12 && fabs(h0->kscore - 3.0) < 1e-12);
    CHECK_STR(sl_hit_attr(h0, "kinds"), "paragraph");
    CHECK_STR(h1->uri, "c.md");
    CHECK_INT(h1->vrank, 3);
    CHECK_INT(h1->krank, 1);
    CHECK_STR(h2->uri, "b.md"); /* b and d tie at 1/62: b.md first */
    CHECK_INT(h2->krank, 0);
    CHECK(fabs(h2->score - 1.0 / 62) < 1e-12);
    sl_hits_free(f);
    /* a smaller constant: the same order here, the larger scores */
    f = sl_hits_fuse(vec, kw, 10, 1, 1.0, 1.0);
    CHECK_INT(sl_hits_count(f), 4);
    CHECK(fabs(sl_hits_at(f, 0)->score - (1.0 / 2 + 1.0 / 4)) < 1e-12);
    sl_hits_free(f);
    /* one ranking missing: the other alone, by its ranks */
    f = sl_hits_fuse(NULL, kw, 2, 60, 1.0, 1.0);
    CHECK_INT(sl_hits_count(f), 2);
    CHECK_STR(sl_hits_at(f, 0)->uri, "c.md");
    CHECK_INT(sl_hits_at(f, 0)->vrank, 0);
    sl_hits_free(f);
    /* truncation keeps the best, sorted */
    sl_hits_truncate(vec, 1);
    CHECK_INT(sl_hits_count(vec), 1);
    CHECK_STR(sl_hits_at(vec, 0)->uri, "a.md");
    sl_hits_free(vec);
    sl_hits_free(kw);
}

/* Under the default weights the keyword ranking's first place outranks the
 * vector ranking's first place (with equal weights they would tie, and the
 * uri would put "a.md", the vector hit, first), and a chunk both rankings
 * hold still comes before either alone. */
static void test_fuse_default_weights_favour_keyword(void) {
    CHECK(SL_RRF_KEYWORD_WEIGHT > SL_RRF_VECTOR_WEIGHT);
    sl_hits *vec = sl_hits_new(10), *kw = sl_hits_new(10);
    CHECK_INT(sl_hits_add(vec, 0.9, "a.md", 0, 1, 1, "", "vector's first"), 0);
    CHECK_INT(sl_hits_add(vec, 0.5, "m.md", 0, 1, 1, "", "both, second"), 0);
    CHECK_INT(sl_hits_add(kw, 9.0, "z.md", 0, 1, 1, "", "keyword's first"), 0);
    CHECK_INT(sl_hits_add(kw, 4.0, "m.md", 0, 1, 1, "", "both, second"), 0);
    sl_hits_rank(vec, true);
    sl_hits_rank(kw, false);
    sl_hits *f = sl_hits_fuse(vec, kw, 3, SL_RRF_K, SL_RRF_VECTOR_WEIGHT, SL_RRF_KEYWORD_WEIGHT);
    CHECK_INT(sl_hits_count(f), 3);
    CHECK_STR(sl_hits_at(f, 0)->uri, "m.md");
    CHECK_STR(sl_hits_at(f, 1)->uri, "z.md");
    CHECK_STR(sl_hits_at(f, 2)->uri, "a.md");
    CHECK(fabs(sl_hits_at(f, 1)->score - SL_RRF_KEYWORD_WEIGHT / (SL_RRF_K + 1)) < 1e-12);
    CHECK(fabs(sl_hits_at(f, 2)->score - SL_RRF_VECTOR_WEIGHT / (SL_RRF_K + 1)) < 1e-12);
    sl_hits_free(f);
    /* equal weights: plain RRF, the tie goes to the uri */
    f = sl_hits_fuse(vec, kw, 3, SL_RRF_K, 1.0, 1.0);
    CHECK_STR(sl_hits_at(f, 1)->uri, "a.md");
    sl_hits_free(f);
    /* a weight of 0 leaves that ranking out */
    f = sl_hits_fuse(vec, kw, 3, SL_RRF_K, 0.0, 1.0);
    CHECK_STR(sl_hits_at(f, 0)->uri, "z.md");
    CHECK_STR(sl_hits_at(f, 1)->uri, "m.md");
    CHECK(sl_hits_at(f, 2)->score == 0.0);
    sl_hits_free(f);
    sl_hits_free(vec);
    sl_hits_free(kw);
}

static void test_query_modes_parse(void) {
    sl_query_mode m = SL_QUERY_VECTOR;
    CHECK_INT(sl_query_mode_parse("hybrid", &m), 0);
    CHECK_INT(m, SL_QUERY_HYBRID);
    CHECK_INT(sl_query_mode_parse("keyword", &m), 0);
    CHECK_INT(m, SL_QUERY_KEYWORD);
    CHECK_INT(sl_query_mode_parse("Vector", &m), -1);
    CHECK_INT(sl_query_mode_parse(NULL, &m), -1);
    CHECK_STR(sl_query_mode_name(SL_QUERY_VECTOR), "vector");
    CHECK_INT(sl_query_depth(5), 50);
    CHECK_INT(sl_query_depth(100), 200);
}

int main(void) {
    test_fuse_sums_reciprocal_ranks();
    test_fuse_default_weights_favour_keyword();
    test_query_modes_parse();
    test_attrs_follow_their_hit();
    test_keeps_best_k_sorted();
    test_many_adds_keep_true_best();
    test_ties_ordered_by_uri_then_chunk();
    test_bad_arguments_refused();
    return check_done();
}
