/* layout.h - chunk-text's reading of layout regions: the order in which a
 * document's elements are chunked, and which of them stay together.
 *
 * Without layout regions (sl_doc_region) every element is a unit of its
 * own, in the parser's order. A page that has regions is read by them
 * (layout.c): elements are placed in the region that holds most of their
 * box, regions are put in reading order by recursive XY-cut (bands top to
 * bottom, columns left to right), the elements of a table or figure region
 * become one unit, and a caption region joins the nearest table or figure
 * above or below it.
 */
#ifndef CHUNK_TEXT_LAYOUT_H
#define CHUNK_TEXT_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/sluice.h>

/* Elements order[first .. first + count) chunked as one text. */
typedef struct ck_unit {
    size_t first, count;
    const char *regions; /* the labels of its regions, comma-separated (doc arena); NULL: none */
    uint32_t kinds;      /* bit (1 << type) for each kind it records */
    bool group;          /* a table or figure region (with its captions): its elements joined by lines */
} ck_unit;

typedef struct ck_plan {
    size_t *order; /* element indexes, in reading order */
    ck_unit *units;
    size_t nunits;
} ck_plan;

/* Fills plan for doc. 0, or SL_ENOMEM. Free with ck_plan_free. */
int ck_plan_make(sl_doc *doc, ck_plan *plan);
void ck_plan_free(ck_plan *plan);

#endif
