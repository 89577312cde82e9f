/* pages.c - page stages: a document fanned out into pages, page by page.
 *
 * A route's page stages (render, OCR, layout) run page by page: a page goes
 * through all of them in order while other pages are at other stages, and
 * the document moves on when its last page is through the last one. The
 * job stays on its first page step until then (job.c), with one part per
 * page. The pool runs pages that are further along first, so a page's image
 * is used up soon after it is made instead of every page of a long document
 * waiting rendered at once.
 */
#include "scheduler.h"

void op_start_pages(job *j, stage *st) {
    uint32_t n = sl_doc_page_count(j->doc);
    for (uint32_t p = 1; p <= n; p++) {
        unit *u = unit_new(st, j);
        if (!u) {
            job_mark_failed(j, st, "out of memory");
            break;
        }
        u->u.pg.page = p;
        u->args.page = p;
        job_parts_add(j, 1);
        stage_dispatch(u);
    }
}

/* Sends a page that finished one page stage on to the route's next one;
 * 0 when that was the last. */
static int chain_page(unit *u) {
    stage *next = job_next_page_stage(u->job, u->st);
    if (!next) return 0;
    u->st = next;
    u->u.pg.chained = 1;
    u->thr = NULL;
    u->avoid = 0;
    u->attempts = 0;
    u->last_err[0] = '\0';
    u->rc = 0;
    stage_dispatch(u);
    return 1;
}

void op_done_page(unit *u, int rc, const char *msg) {
    job *j = u->job;
    if (rc < 0) job_mark_failed(j, u->st, msg);
    if (rc >= 0 && !j->failed && chain_page(u)) return;
    unit_free(u);
    job_part_done(j);
}
