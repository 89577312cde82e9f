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

/* --- hybrid retrieval --- */

int sl_query_mode_parse(const char *s, sl_query_mode *out) {
    static const struct {
        const char *name;
        sl_query_mode mode;
    } modes[] = {{"hybrid", SL_QUERY_HYBRID}, {"vector", SL_QUERY_VECTOR}, {"keyword", SL_QUERY_KEYWORD}};
    for (size_t i = 0; s && i < sizeof modes / sizeof *modes; i++)
        if (strcmp(s, modes[i].name) == 0) {
            *out = modes[i].mode;
            return 0;
        }
    return -1;
}

const char *sl_query_mode_name(sl_query_mode mode) {
    return mode == SL_QUERY_VECTOR ? "vector" : mode == SL_QUERY_KEYWORD ? "keyword" : "hybrid";
}

uint32_t sl_query_depth(uint32_t k) { return k > UINT32_MAX / 2 ? UINT32_MAX : k * 2 < 50 ? 50 : k * 2; }

void sl_hits_rank(sl_hits *h, bool vector) {
    sl_hits_sort(h);
    for (size_t i = 0; h && i < h->n; i++) {
        sl_hit *hit = &h->v[i];
        if (vector) {
            hit->vrank = (uint32_t)(i + 1);
            hit->vscore = hit->score;
        } else {
            hit->krank = (uint32_t)(i + 1);
            hit->kscore = hit->score;
        }
    }
}

void sl_hits_truncate(sl_hits *h, uint32_t k) {
    if (!h) return;
    h->k = k;
    sl_hits_sort(h);
}

/* Adds a copy of `from` (text, place, attributes, ranks) with a new score. */
static int add_copy(sl_hits *to, const sl_hit *from, double score) {
    int rc =
        sl_hits_add(to, score, from->uri, from->chunk, from->page, from->line, from->heading, from->text);
    for (size_t j = 0; rc == 0 && j < from->nattrs; j++)
        rc = sl_hits_set_attr(to, from->attrs[2 * j], from->attrs[2 * j + 1]);
    if (rc == 0) {
        sl_hit *hit = &to->v[to->n - 1];
        hit->vrank = from->vrank;
        hit->vscore = from->vscore;
        hit->krank = from->krank;
        hit->kscore = from->kscore;
    }
    return rc;
}

static double rrf(uint32_t rrf_k, uint32_t rank) { return rank ? 1.0 / ((double)rrf_k + rank) : 0.0; }

/* The two lists are at most a few thousand hits (sl_query_depth): a
 * linear search for each keyword hit's vector twin costs less than a hash
 * table would to build. */
sl_hits *sl_hits_fuse(const sl_hits *vec, const sl_hits *kw, uint32_t k, uint32_t rrf_k, double vweight,
                      double kweight) {
    size_t nv = sl_hits_count(vec), nk = sl_hits_count(kw);
    sl_hits *out = sl_hits_new(0);
    bool *paired = calloc(nk ? nk : 1, sizeof *paired);
    int rc = out && paired ? 0 : SL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < nv; i++) {
        const sl_hit *v = &vec->v[i];
        const sl_hit *twin = NULL;
        for (size_t j = 0; j < nk && !twin; j++)
            if (!paired[j] && kw->v[j].chunk == v->chunk && strcmp(kw->v[j].uri, v->uri) == 0) {
                twin = &kw->v[j];
                paired[j] = true;
            }
        rc = add_copy(out, v,
                      vweight * rrf(rrf_k, v->vrank) + (twin ? kweight * rrf(rrf_k, twin->krank) : 0.0));
        if (rc == 0 && twin) {
            sl_hit *hit = &out->v[out->n - 1];
            hit->krank = twin->krank;
            hit->kscore = twin->kscore;
        }
    }
    for (size_t j = 0; rc == 0 && j < nk; j++)
        if (!paired[j]) rc = add_copy(out, &kw->v[j], kweight * rrf(rrf_k, kw->v[j].krank));
    free(paired);
    if (rc) {
        sl_hits_free(out);
        return NULL;
    }
    out->k = k;
    sl_hits_sort(out);
    return out;
}

/* {rank, score} of a hit in one ranking, or null when it is not in it. */
static json_t *rank_json(uint32_t rank, double score) {
    if (!rank) return json_null();
    return json_pack("{s:i, s:f}", "rank", (json_int_t)rank, "score", score);
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
    json_object_set_new(o, "vector", rank_json(h->vrank, h->vscore));
    json_object_set_new(o, "keyword", rank_json(h->krank, h->kscore));
    json_object_set_new(o, "text", json_string(h->text));
    return o;
}

json_t *sl_hits_json(const sl_hits *hits) {
    json_t *arr = json_array();
    for (size_t i = 0; i < sl_hits_count(hits); i++)
        json_array_append_new(arr, hit_json(sl_hits_at(hits, i)));
    return arr;
}
