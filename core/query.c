/* query.c - sl_hits: the list a sink fills with the chunks nearest a query
 * (see query.h). Hits are appended; when the list reaches twice k it is
 * sorted and cut back to k, so adding n hits costs O(n log k) amortised and
 * memory stays O(k) however many chunks the sink scans. */
#include "query.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/call.h"

struct sl_hits {
    uint32_t k; /* 0: keep all */
    sl_hit *v;
    size_t n, cap;
};

sl_hits *sl_hits_new(uint32_t k) {
    sl_hits *h = calloc(1, sizeof *h);
    if (h) h->k = k;
    return h;
}

size_t sl_hits_count(const sl_hits *h) { return h ? h->n : 0; }

const sl_hit *sl_hits_at(const sl_hits *h, size_t i) { return h && i < h->n ? &h->v[i] : NULL; }

static void hit_clear(sl_hit *hit) {
    free(hit->uri);
    free(hit->heading);
    free(hit->text);
}

/* Nearer first; ties broken by uri and chunk so the order is reproducible. */
static int cmp_hit(const void *pa, const void *pb) {
    const sl_hit *a = pa, *b = pb;
    if (a->score > b->score) return -1;
    if (a->score < b->score) return 1;
    int c = strcmp(a->uri, b->uri);
    if (c) return c;
    return (a->chunk > b->chunk) - (a->chunk < b->chunk);
}

void sl_hits_sort(sl_hits *h) {
    if (!h || h->n == 0) return;
    qsort(h->v, h->n, sizeof *h->v, cmp_hit);
    if (h->k && h->n > h->k) {
        for (size_t i = h->k; i < h->n; i++) hit_clear(&h->v[i]);
        h->n = h->k;
    }
}

int sl_hits_add(sl_hits *h, double score, const char *uri, uint32_t chunk, uint32_t page, uint32_t line,
                const char *heading, const char *text) {
    if (!h || !uri || !text || isnan(score)) return SL_EINVAL;
    if (h->k && h->n >= 2 * (size_t)h->k) sl_hits_sort(h);
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 16;
        sl_hit *nv = realloc(h->v, nc * sizeof *nv);
        if (!nv) return SL_ENOMEM;
        h->v = nv;
        h->cap = nc;
    }
    sl_hit hit = {.score = score, .chunk = chunk, .page = page, .line = line};
    hit.uri = strdup(uri);
    hit.heading = strdup(heading ? heading : "");
    hit.text = strdup(text);
    if (!hit.uri || !hit.heading || !hit.text) {
        hit_clear(&hit);
        return SL_ENOMEM;
    }
    h->v[h->n++] = hit;
    return 0;
}

void sl_hits_free(sl_hits *h) {
    if (!h) return;
    for (size_t i = 0; i < h->n; i++) hit_clear(&h->v[i]);
    free(h->v);
    free(h);
}

json_t *sl_hits_json(const sl_hits *hits) {
    json_t *arr = json_array();
    for (size_t i = 0; i < sl_hits_count(hits); i++) {
        const sl_hit *h = sl_hits_at(hits, i);
        json_t *o = json_object();
        json_object_set_new(o, "score", json_real(h->score));
        json_object_set_new(o, "uri", json_string(h->uri));
        json_object_set_new(o, "chunk", json_integer(h->chunk));
        json_object_set_new(o, "page", json_integer(h->page));
        json_object_set_new(o, "line", json_integer(h->line));
        json_object_set_new(o, "heading", json_string(h->heading));
        json_object_set_new(o, "text", json_string(h->text));
        json_array_append_new(arr, o);
    }
    return arr;
}
