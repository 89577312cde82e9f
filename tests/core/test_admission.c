/* test_admission.c - the memory budget's admission estimate (core/job.c,
 * run_held): what a document is charged per byte of file before it holds
 * anything. It rises at once with what documents in flight are seen to
 * hold; it is lowered only once many have ended and many are in flight;
 * and never below what stored documents held at their peaks, which a
 * backlog of documents not yet parsed (holding little more than their
 * bytes) cannot hide.
 */
#include <stdlib.h>

#include "check.h"
#include "scheduler.h"

#define DOC 40000 /* bytes of one document's file */

/* n documents in flight, each holding `ratio` times its bytes, after
 * `ended` stored documents that each held `peak` times theirs at most. */
static run *state(double expand, size_t n, double ratio, uint64_t ended, double peak) {
    run *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->expand = expand;
    r->docs_inflight = n;
    r->raw_inflight = (uint64_t)n * DOC;
    r->bytes_inflight = (uint64_t)((double)r->raw_inflight * ratio);
    r->done = ended;
    r->ended_raw = ended * DOC;
    r->ended_peaks = (uint64_t)((double)r->ended_raw * peak);
    return r;
}

static void test_backlog_does_not_lower_it(void) {
    /* a burst admitted at the start: 400 in flight, most waiting for the
     * parser, so they hold 4x their bytes together; the 64 stored held 10x */
    run *r = state(15.4, 400, 4.0, 64, 10.0);
    run_held(r);
    CHECK(r->expand > 11.49 && r->expand < 11.51);         /* the peaks, with the margin: not 4 x 1.15 */
    CHECK(r->expand_seen > 3.99 && r->expand_seen < 4.01); /* the report's ratio is what was seen */
    free(r);
}

static void test_lowered_to_what_is_seen_when_it_is_more(void) {
    /* steady: documents in every phase hold 10x together, stored ones
     * peaked at 8x (a document's phases differ; requests count too) */
    run *r = state(15.4, 400, 10.0, 64, 8.0);
    run_held(r);
    CHECK(r->expand > 11.49 && r->expand < 11.51);
    free(r);
}

static void test_not_lowered_early(void) {
    /* fewer than 64 ended, or few in flight: the route's estimate stands */
    run *r = state(15.4, 400, 4.0, 10, 10.0);
    run_held(r);
    CHECK(r->expand > 15.39 && r->expand < 15.41);
    free(r);
    r = state(15.4, 8, 4.0, 100, 10.0);
    run_held(r);
    CHECK(r->expand > 15.39 && r->expand < 15.41);
    free(r);
}

static void test_raised_at_once(void) {
    run *r = state(5.0, 3, 20.0, 0, 0);
    uint64_t held = run_held(r);
    CHECK(r->expand > 22.99 && r->expand < 23.01);
    CHECK_INT(held, 3 * (20 * DOC + JOB_OVERHEAD));
    CHECK_INT(r->peak_inflight, held);
    free(r);
}

int main(void) {
    test_backlog_does_not_lower_it();
    test_lowered_to_what_is_seen_when_it_is_more();
    test_not_lowered_early();
    test_raised_at_once();
    return check_done();
}
