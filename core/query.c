/* query.c - sl_hits: the list a sink fills with the chunks nearest a query
 * (see query.h). Hits are appended; when the list reaches twice k it is
 * sorted and cut back to k, so adding n hits costs O(n log k) amortised and
 * memory stays O(k) however many chunks the sink scans. */
#include "query.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/call.h"

struct sl_hits {
    uint32_t k; /* 0: keep all */
    sl_hit *v;
    size_t n, cap;
    bool fresh; /* v[n - 1] was just added: sl_hits_set_attr applies to it */
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
    for (size_t i = 0; i < 2 * hit->nattrs; i++) free(hit->attrs[i]);
    free(hit->attrs);
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
    h->fresh = false;
    qsort(h->v, h->n, sizeof *h->v, cmp_hit);
    if (h->k && h->n > h->k) {
        for (size_t i = h->k; i < h->n; i++) hit_clear(&h->v[i]);
        h->n = h->k;
    }
}

int sl_hits_add(sl_hits *h, double score, const char *uri, uint32_t chunk, uint32_t page, uint32_t line,
                const char *heading, const char *text) {
    if (h) h->fresh = false;
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
    h->fresh = true;
    return 0;
}

int sl_hits_set_attr(sl_hits *h, const char *key, const char *value) {
    if (!h || !h->fresh || !key || !*key || !value) return SL_EINVAL;
    sl_hit *hit = &h->v[h->n - 1];
    for (size_t i = 0; i < hit->nattrs; i++)
        if (strcmp(hit->attrs[2 * i], key) == 0) {
            char *v = strdup(value);
            if (!v) return SL_ENOMEM;
            free(hit->attrs[2 * i + 1]);
            hit->attrs[2 * i + 1] = v;
            return 0;
        }
    char **na = realloc(hit->attrs, 2 * (hit->nattrs + 1) * sizeof *na);
    if (!na) return SL_ENOMEM;
    hit->attrs = na;
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return SL_ENOMEM;
    }
    na[2 * hit->nattrs] = k;
    na[2 * hit->nattrs + 1] = v;
    hit->nattrs++;
    return 0;
}

const char *sl_hit_attr(const sl_hit *hit, const char *key) {
    for (size_t i = 0; hit && key && i < hit->nattrs; i++)
        if (strcmp(hit->attrs[2 * i], key) == 0) return hit->attrs[2 * i + 1];
    return NULL;
}

void sl_hits_free(sl_hits *h) {
    if (!h) return;
    for (size_t i = 0; i < h->n; i++) hit_clear(&h->v[i]);
    free(h->v);
    free(h);
}

/* A comma-separated attribute as a JSON array of its items. */
static json_t *json_list(const char *csv) {
    json_t *arr = json_array();
    for (const char *p = csv; p && *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n) json_array_append_new(arr, json_stringn(p, n));
        p = e ? e + 1 : p + n;
    }
    return arr;
}

/* A hit as JSON: its place, the structure its chunk records (kinds, region,
 * pages; each other stored attribute under "attrs") and its text. */
static json_t *hit_json(const sl_hit *h) {
    json_t *o = json_object();
    json_object_set_new(o, "score", json_real(h->score));
    json_object_set_new(o, "uri", json_string(h->uri));
    json_object_set_new(o, "chunk", json_integer(h->chunk));
    json_object_set_new(o, "page", json_integer(h->page));
    json_object_set_new(o, "line", json_integer(h->line));
    json_object_set_new(o, "heading", json_string(h->heading));
    json_t *path = json_array(); /* the heading path, one heading an item */
    for (const char *p = h->heading; p && *p;) {
        const char *e = strstr(p, " > ");
        size_t n = e ? (size_t)(e - p) : strlen(p);
        json_array_append_new(path, json_stringn(p, n));
        p = e ? e + 3 : p + n;
    }
    json_object_set_new(o, "heading_path", path);
    json_object_set_new(o, "kinds", json_list(sl_hit_attr(h, "kinds")));
    const char *region = sl_hit_attr(h, "region");
    json_object_set_new(o, "region", region ? json_string(region) : json_null());
    const char *pages = sl_hit_attr(h, "pages");
    if (pages) json_object_set_new(o, "pages", json_string(pages));
    json_t *attrs = json_object();
    for (size_t j = 0; j < h->nattrs; j++)
        json_object_set_new(attrs, h->attrs[2 * j], json_string(h->attrs[2 * j + 1]));
    json_object_set_new(o, "attrs", attrs);
    json_object_set_new(o, "text", json_string(h->text));
    return o;
}

json_t *sl_hits_json(const sl_hits *hits) {
    json_t *arr = json_array();
    for (size_t i = 0; i < sl_hits_count(hits); i++)
        json_array_append_new(arr, hit_json(sl_hits_at(hits, i)));
    return arr;
}
