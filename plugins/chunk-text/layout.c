/* layout.c - the order in which chunk-text reads a document's elements, and
 * the units it keeps together, from the layout regions of its pages (see
 * layout.h).
 *
 * Elements are taken page by page as the parser gave them (a run of
 * elements on one page). On a page with regions:
 *
 * - an element belongs to the region that holds the largest share of its
 *   box, when that share is at least half; element boxes and regions must
 *   be in the same units (PDF points for parse-pdf and ocr-tesseract: run
 *   layout-torch with `units = points`);
 * - a caption region belongs to the nearest table or figure region above
 *   or below it that it overlaps across (the vertical gap decides);
 * - reading order is a recursive XY-cut over the remaining regions and the
 *   boxes of elements in no region: a set of boxes is split where a
 *   vertical gap runs through all of them (columns, left to right), else
 *   where a horizontal one does (bands, top to bottom), and a set that no
 *   gap splits is read top to bottom, then left to right. Columns are
 *   tried first so that two columns whose paragraphs happen to end at the
 *   same height are not read across;
 * - an element without a box keeps its place before the next element of
 *   the page that has one (a heading from the PDF outline, say);
 * - the elements of a table or figure region (with its captions, in
 *   reading order, a caption above first) form one unit, so the chunker
 *   keeps them whole when they fit in a chunk;
 * - a region's label is recorded on the elements it holds, and where the
 *   label names an element kind (table, caption, list, title, ...) that is
 *   the kind the chunk records.
 *
 * Bounded: a page is read by XY-cut only with at most MAX_NODES boxes
 * (more are sorted top to bottom instead), so the cost is at most
 * MAX_NODES^2 log MAX_NODES a page, and recursion at most MAX_NODES deep.
 */
#include "layout.h"

#include <stdlib.h>
#include <string.h>

#define MAX_NODES 1024 /* boxes on one page read by XY-cut; more are sorted by position */
#define GAP_TOL 1.0f   /* a gap narrower than this (boxes touching) still splits */

typedef struct node {
    float box[4];
    size_t region; /* index into the page's regions, or SIZE_MAX for an element's own box */
    size_t rank;
} node;

typedef struct page_region {
    size_t index; /* sl_doc_region index */
    const char *label;
    float box[4];
    size_t owner; /* page-region index it joins (a caption: its table or figure), else itself */
    size_t node;  /* its node, when it is its own owner */
} page_region;

static bool is_label(const char *l, const char *want) { return l && strcmp(l, want) == 0; }
static bool is_whole(const char *l) {
    return is_label(l, "table") || is_label(l, "figure") || is_label(l, "picture");
}

static float area(const float b[4]) {
    float w = b[2] - b[0], h = b[3] - b[1];
    return w > 0 && h > 0 ? w * h : 0;
}

static float overlap(const float a[4], const float b[4]) {
    float x0 = a[0] > b[0] ? a[0] : b[0], y0 = a[1] > b[1] ? a[1] : b[1];
    float x1 = a[2] < b[2] ? a[2] : b[2], y1 = a[3] < b[3] ? a[3] : b[3];
    return x1 > x0 && y1 > y0 ? (x1 - x0) * (y1 - y0) : 0;
}

/* --- XY-cut --- */

static _Thread_local node *tl_nodes; /* the comparators' context: one page at a time per thread */

static int by_y(const void *pa, const void *pb) {
    const node *a = &tl_nodes[*(const size_t *)pa], *b = &tl_nodes[*(const size_t *)pb];
    if (a->box[1] != b->box[1]) return a->box[1] < b->box[1] ? -1 : 1;
    if (a->box[0] != b->box[0]) return a->box[0] < b->box[0] ? -1 : 1;
    return (*(const size_t *)pa > *(const size_t *)pb) - (*(const size_t *)pa < *(const size_t *)pb);
}
static int by_x(const void *pa, const void *pb) {
    const node *a = &tl_nodes[*(const size_t *)pa], *b = &tl_nodes[*(const size_t *)pb];
    if (a->box[0] != b->box[0]) return a->box[0] < b->box[0] ? -1 : 1;
    return by_y(pa, pb);
}

/* Where the first gap along axis (0: x, 1: y) splits idx[0..n), sorted
 * along it; 0 when none does. */
static size_t find_cut(size_t *idx, size_t n, int axis) {
    qsort(idx, n, sizeof *idx, axis ? by_y : by_x);
    float far = tl_nodes[idx[0]].box[axis + 2];
    for (size_t k = 1; k < n; k++) {
        const float *b = tl_nodes[idx[k]].box;
        if (b[axis] >= far - GAP_TOL) return k;
        if (b[axis + 2] > far) far = b[axis + 2];
    }
    return 0;
}

static void xycut(size_t *idx, size_t n, size_t *rank) {
    if (n > 1) {
        for (int axis = 0; axis < 2; axis++) {
            size_t k = find_cut(idx, n, axis);
            if (k) {
                xycut(idx, k, rank);
                xycut(idx + k, n - k, rank);
                return;
            }
        }
        qsort(idx, n, sizeof *idx, by_y);
    }
    for (size_t i = 0; i < n; i++) tl_nodes[idx[i]].rank = (*rank)++;
}

/* --- one page --- */

typedef struct elem_info {
    size_t index; /* element index */
    size_t preg;  /* its page region, or SIZE_MAX */
    size_t rank;  /* reading position of its node */
    int side;     /* -1: a caption above its owner, 1: below, 0: otherwise */
    size_t seq;   /* its position in the parser's order */
} elem_info;

static int by_rank(const void *pa, const void *pb) {
    const elem_info *a = pa, *b = pb;
    if (a->rank != b->rank) return a->rank < b->rank ? -1 : 1;
    if (a->side != b->side) return a->side < b->side ? -1 : 1;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

static uint32_t kind_bit(const sl_doc *doc, size_t e, const char *label) {
    for (int t = SL_EL_TITLE; label && t <= SL_EL_OTHER; t++)
        if (t != SL_EL_PARAGRAPH && t != SL_EL_OTHER &&
            strcmp(label, sl_elem_type_name((sl_elem_type)t)) == 0)
            return 1u << t;
    return 1u << sl_element_type(doc, e);
}

typedef struct page_ctx {
    sl_doc *doc;
    ck_plan *plan;
    page_region *pr;
    size_t npr;
    elem_info *ei;
    node *nodes;
} page_ctx;

/* A region's page and index, sorted by page then index. */
typedef struct region_ref {
    uint32_t page;
    size_t index;
} region_ref;

static int by_page(const void *pa, const void *pb) {
    const region_ref *a = pa, *b = pb;
    if (a->page != b->page) return a->page < b->page ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* The regions of `page` (at most MAX_NODES, in the order they were added)
 * into pr; refs holds all nrefs regions sorted by page. */
static size_t page_regions(const sl_doc *doc, const region_ref *refs, size_t nrefs, uint32_t page,
                           page_region *pr) {
    size_t lo = 0, hi = nrefs, n = 0;
    while (lo < hi) { /* the first ref of this page */
        size_t mid = lo + (hi - lo) / 2;
        if (refs[mid].page < page)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = lo; k < nrefs && refs[k].page == page && n < MAX_NODES; k++) {
        size_t i = refs[k].index;
        const char *label;
        float box[4];
        if (sl_doc_region(doc, i, NULL, &label, NULL, box) || !label || area(box) <= 0) continue;
        pr[n] = (page_region){.index = i, .label = label, .owner = n};
        memcpy(pr[n].box, box, sizeof box);
        n++;
    }
    return n;
}

static void attach_captions(page_region *pr, size_t n) {
    for (size_t c = 0; c < n; c++) {
        if (!is_label(pr[c].label, "caption")) continue;
        float best = -1;
        for (size_t t = 0; t < n; t++) {
            if (!is_whole(pr[t].label)) continue;
            const float *a = pr[c].box, *b = pr[t].box;
            if (a[2] <= b[0] || b[2] <= a[0]) continue; /* not over or under it */
            float gap = a[1] >= b[3] ? a[1] - b[3] : b[1] >= a[3] ? b[1] - a[3] : 0;
            if (best < 0 || gap < best) best = gap, pr[c].owner = t;
        }
    }
}

/* Orders elements [from, to) of one page that has regions and groups them
 * into units, appended to the plan (*nout counts them). */
static int plan_page(page_ctx *pc, size_t from, size_t to, size_t *nout) {
    sl_doc *doc = pc->doc;
    page_region *pr = pc->pr;
    size_t npr = pc->npr, m = to - from, nn = 0;
    elem_info *ei = pc->ei;
    node *nodes = pc->nodes;
    attach_captions(pr, npr);
    for (size_t r = 0; r < npr; r++)
        if (pr[r].owner == r && nn < MAX_NODES) {
            pr[r].node = nn;
            nodes[nn++] = (node){.region = r};
            memcpy(nodes[nn - 1].box, pr[r].box, sizeof pr[r].box);
        }
    size_t *enode = malloc(m * sizeof *enode); /* each element's node, SIZE_MAX: none */
    if (!enode) return SL_ENOMEM;
    bool sorted_only = false;
    for (size_t k = 0; k < m; k++) {
        size_t e = from + k;
        float box[4];
        ei[k] = (elem_info){.index = e, .preg = SIZE_MAX, .seq = k};
        enode[k] = SIZE_MAX;
        if (!sl_element_bbox(doc, e, box)) continue;
        float a = area(box), best = 0;
        for (size_t r = 0; r < npr && a > 0; r++) {
            float o = overlap(box, pr[r].box) / a;
            if (o >= 0.5f && (o > best || (o == best && area(pr[r].box) < area(pr[ei[k].preg].box))))
                best = o, ei[k].preg = r;
        }
        if (ei[k].preg != SIZE_MAX) {
            size_t own = pr[ei[k].preg].owner;
            enode[k] = pr[own].node;
            if (own != ei[k].preg) ei[k].side = pr[ei[k].preg].box[1] < pr[own].box[1] ? -1 : 1;
        } else if (nn < MAX_NODES) {
            enode[k] = nn;
            nodes[nn++] = (node){.region = SIZE_MAX};
            memcpy(nodes[nn - 1].box, box, sizeof box);
        } else {
            sorted_only = true; /* too many boxes: read them top to bottom */
        }
    }
    size_t *idx = malloc((nn ? nn : 1) * sizeof *idx);
    if (!idx) {
        free(enode);
        return SL_ENOMEM;
    }
    for (size_t i = 0; i < nn; i++) idx[i] = i;
    size_t rank = 0;
    tl_nodes = nodes;
    if (sorted_only) {
        qsort(idx, nn, sizeof *idx, by_y);
        for (size_t i = 0; i < nn; i++) nodes[idx[i]].rank = rank++;
    } else {
        xycut(idx, nn, &rank);
    }
    free(idx);
    /* an element without a box: just before the next one with a node,
     * ahead of that node's own elements and captions (side -2) */
    size_t next = rank;
    for (size_t k = m; k-- > 0;) {
        if (enode[k] != SIZE_MAX) next = nodes[enode[k]].rank;
        ei[k].rank = next;
        if (enode[k] == SIZE_MAX) ei[k].side = -2;
    }
    free(enode);
    qsort(ei, m, sizeof *ei, by_rank);

    ck_plan *plan = pc->plan;
    size_t *order = plan->order + from;
    for (size_t k = 0; k < m;) {
        size_t reg = ei[k].preg, own = reg == SIZE_MAX ? SIZE_MAX : pr[reg].owner;
        ck_unit u = {.first = from + k, .count = 1};
        if (own != SIZE_MAX && is_whole(pr[own].label)) {
            u.group = true;
            size_t end = k + 1;
            bool caption = is_label(pr[reg].label, "caption");
            while (end < m && ei[end].preg != SIZE_MAX && pr[ei[end].preg].owner == own) {
                caption |= is_label(pr[ei[end].preg].label, "caption");
                end++;
            }
            u.count = end - k;
            u.regions = pr[own].label;
            if (caption) {
                size_t ll = strlen(pr[own].label);
                char *s = sl_doc_alloc(doc, ll + sizeof ",caption");
                if (!s) return SL_ENOMEM;
                memcpy(s, pr[own].label, ll);
                memcpy(s + ll, ",caption", sizeof ",caption");
                u.regions = s;
            }
        } else if (reg != SIZE_MAX) {
            u.regions = pr[reg].label;
        }
        for (size_t j = 0; j < u.count; j++) {
            const elem_info *x = &ei[k + j];
            order[k + j] = x->index;
            u.kinds |= kind_bit(doc, x->index, x->preg == SIZE_MAX ? NULL : pr[x->preg].label);
        }
        plan->units[(*nout)++] = u;
        k += u.count;
    }
    return 0;
}

/* --- the plan --- */

void ck_plan_free(ck_plan *plan) {
    free(plan->order);
    free(plan->units);
    memset(plan, 0, sizeof *plan);
}

int ck_plan_make(sl_doc *doc, ck_plan *plan) {
    size_t n = sl_doc_element_count(doc);
    memset(plan, 0, sizeof *plan);
    plan->order = malloc((n ? n : 1) * sizeof *plan->order);
    plan->units = malloc((n ? n : 1) * sizeof *plan->units);
    page_ctx pc = {.doc = doc, .plan = plan};
    size_t nrefs = sl_doc_region_count(doc);
    bool regions = nrefs > 0;
    region_ref *refs = NULL;
    if (regions) {
        pc.pr = malloc(MAX_NODES * sizeof *pc.pr);
        pc.ei = malloc((n ? n : 1) * sizeof *pc.ei);
        pc.nodes = malloc(MAX_NODES * sizeof *pc.nodes);
        refs = malloc(nrefs * sizeof *refs);
        for (size_t i = 0; refs && i < nrefs; i++) {
            refs[i] = (region_ref){.index = i};
            sl_doc_region(doc, i, &refs[i].page, NULL, NULL, NULL);
        }
        if (refs) qsort(refs, nrefs, sizeof *refs, by_page);
    }
    int rc =
        !plan->order || !plan->units || (regions && (!pc.pr || !pc.ei || !pc.nodes || !refs)) ? SL_ENOMEM : 0;
    for (size_t i = 0; !rc && i < n;) {
        uint32_t page = sl_element_page(doc, i);
        size_t end = i + 1;
        while (end < n && sl_element_page(doc, end) == page) end++;
        pc.npr = regions && page ? page_regions(doc, refs, nrefs, page, pc.pr) : 0;
        if (pc.npr) {
            rc = plan_page(&pc, i, end, &plan->nunits);
        } else {
            for (size_t e = i; e < end; e++) {
                plan->order[e] = e;
                plan->units[plan->nunits++] =
                    (ck_unit){.first = e, .count = 1, .kinds = kind_bit(doc, e, NULL)};
            }
        }
        i = end;
    }
    free(refs);
    free(pc.pr);
    free(pc.ei);
    free(pc.nodes);
    if (rc) ck_plan_free(plan);
    return rc;
}
