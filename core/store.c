/* store.c - `sluice store check` and the core's half of `sluice store
 * rebuild` (see store.h).
 *
 * The core knows nothing of files or tables: each sink checks, lists and
 * swaps its own store through the ABI 1.4 callbacks, and this file walks
 * the routes' sinks (each once), collects what they say and prints it.
 */
#include "store.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "instance.h"
#include "ops.h"

/* The routes' sinks, each once, in route order; n of them. */
static size_t route_sinks(const sl_runtime *rt, sl_instance **out) {
    size_t n = 0;
    for (size_t i = 0; i < rt->nroutes; i++) {
        sl_instance *s = rt->routes[i].sink;
        size_t k = 0;
        while (k < n && out[k] != s) k++;
        if (k == n) out[n++] = s;
    }
    return n;
}

static sl_instance **sinks_of(sl_runtime *rt, size_t *n) {
    sl_instance **s = calloc(rt->nroutes ? rt->nroutes : 1, sizeof *s);
    *n = s ? route_sinks(rt, s) : 0;
    if (!s) sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory");
    return s;
}

/* --- check --- */

typedef struct lines {
    char **v;
    size_t n, cap;
    int oom;
} lines;

static void add_line(void *arg, const char *line) {
    lines *l = arg;
    if (l->oom || !line) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **g = realloc(l->v, cap * sizeof *g);
        if (!g) {
            l->oom = 1;
            return;
        }
        l->v = g;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(line))) {
        l->oom = 1;
        return;
    }
    l->n++;
}

static void lines_free(lines *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

typedef struct check_args {
    sl_store_health *h;
    lines *problems;
} check_args;

static int call_check(sl_call *call, void *arg) {
    check_args *a = arg;
    return call->inst->desc->check(call, a->h, add_line, a->problems);
}

static void count_text(FILE *out, const char *name, int64_t v, int last) {
    if (v < 0)
        fprintf(out, "%s ?", name);
    else
        fprintf(out, "%s %lld", name, (long long)v);
    fputs(last ? "\n" : ", ", out);
}

static json_t *count_json(int64_t v) { return v < 0 ? json_null() : json_integer((json_int_t)v); }

int sl_store_check(sl_runtime *rt, int json, FILE *out, int *damaged) {
    *damaged = 0;
    size_t ns;
    sl_instance **sinks = sinks_of(rt, &ns);
    if (!sinks) return SL_ENOMEM;
    int rc = 0;
    for (size_t i = 0; !rc && i < ns; i++)
        if (!sinks[i]->desc->check)
            rc = sl_ctx_error(rt->ctx, SL_EFATAL,
                              "[%s] plugin %s cannot check its store (it has no `check` callback, ABI 1.4)",
                              sinks[i]->name, sinks[i]->desc->name);
    json_t *arr = json ? json_array() : NULL;
    for (size_t i = 0; !rc && i < ns; i++) {
        sl_instance *s = sinks[i];
        rc = sl_instance_init(rt->ctx, s);
        if (rc) break;
        sl_store_health h = {.documents = -1, .chunks = -1, .vectors = -1, .orphans = -1};
        lines problems = {0};
        check_args a = {&h, &problems};
        sl_call call;
        int crc = sl_invoke(s, call_check, &a, &call);
        if (crc < 0) {
            rc = sl_ctx_error(rt->ctx, crc, "[%s] checking the store: %s", s->name,
                              call.msg[0] ? call.msg : sl_strerror(crc));
        } else if (problems.oom) {
            rc = sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory");
        } else {
            *damaged += h.damaged != 0;
            if (json) {
                json_t *p = json_array();
                for (size_t k = 0; k < problems.n; k++) json_array_append_new(p, json_string(problems.v[k]));
                json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:o, s:o, s:o, s:o, s:o}", "sink",
                                                     s->name, "plugin", s->desc->name, "healthy", !h.damaged,
                                                     "documents", count_json(h.documents), "chunks",
                                                     count_json(h.chunks), "vectors", count_json(h.vectors),
                                                     "orphans", count_json(h.orphans), "problems", p));
            } else {
                fprintf(out, "[%s] %s: %s\n", s->name, s->desc->name, h.damaged ? "DAMAGED" : "healthy");
                fputs("  ", out);
                count_text(out, "documents", h.documents, 0);
                count_text(out, "chunks", h.chunks, 0);
                count_text(out, "vectors", h.vectors, 0);
                count_text(out, "orphans", h.orphans, 1);
                for (size_t k = 0; k < problems.n; k++) fprintf(out, "  problem: %s\n", problems.v[k]);
                if (h.damaged)
                    fprintf(out, "  'sluice store rebuild' re-ingests the documents it lists into a fresh "
                                 "store and keeps this one as a backup\n");
            }
        }
        lines_free(&problems);
    }
    if (json && !rc) {
        json_t *root = json_pack("{s:b, s:o}", "healthy", *damaged == 0, "stores", arr);
        json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', out);
        json_decref(root);
    } else {
        json_decref(arr);
    }
    free(sinks);
    return rc;
}

/* --- rebuild --- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int call_documents(sl_call *call, void *arg) {
    return call->inst->desc->documents(call, add_line, arg);
}

int sl_store_salvage(sl_runtime *rt, char ***paths, size_t *npaths) {
    *paths = NULL;
    *npaths = 0;
    size_t ns;
    sl_instance **sinks = sinks_of(rt, &ns);
    if (!sinks) return SL_ENOMEM;
    int rc = 0;
    for (size_t i = 0; !rc && i < ns; i++)
        if (!sinks[i]->desc->documents || !sinks[i]->desc->rebuild_swap)
            rc = sl_ctx_error(rt->ctx, SL_EFATAL,
                              "[%s] plugin %s cannot rebuild its store (it has no `%s` callback, ABI 1.4): "
                              "its README says how to repair it",
                              sinks[i]->name, sinks[i]->desc->name,
                              sinks[i]->desc->documents ? "rebuild_swap" : "documents");
    lines all = {0};
    for (size_t i = 0; !rc && i < ns; i++) {
        sl_instance *s = sinks[i];
        rc = sl_instance_init(rt->ctx, s);
        if (rc) break;
        sl_call call;
        int lrc = sl_invoke(s, call_documents, &all, &call);
        if (lrc < 0)
            rc = sl_ctx_error(rt->ctx, lrc, "[%s] listing the stored documents: %s", s->name,
                              call.msg[0] ? call.msg : sl_strerror(lrc));
    }
    if (!rc && all.oom) rc = sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory");
    free(sinks);
    if (rc) {
        lines_free(&all);
        return rc;
    }
    /* a document found inside another is made again by its parent */
    for (size_t i = 0; i < all.n; i++) {
        char *hash = strchr(all.v[i], '#');
        if (hash && hash != all.v[i]) *hash = '\0';
    }
    if (all.n) qsort(all.v, all.n, sizeof *all.v, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < all.n; i++) {
        if (k && strcmp(all.v[k - 1], all.v[i]) == 0) {
            free(all.v[i]);
            continue;
        }
        all.v[k++] = all.v[i];
    }
    *paths = all.v;
    *npaths = k;
    return 0;
}

typedef struct swap_args {
    lines *said;
} swap_args;

static int call_swap(sl_call *call, void *arg) {
    swap_args *a = arg;
    return call->inst->desc->rebuild_swap(call, add_line, a->said);
}

int sl_store_swap(sl_runtime *rt, FILE *out) {
    size_t ns;
    sl_instance **sinks = sinks_of(rt, &ns);
    if (!sinks) return SL_ENOMEM;
    int rc = 0;
    for (size_t i = 0; !rc && i < ns; i++) {
        sl_instance *s = sinks[i];
        lines said = {0};
        swap_args a = {&said};
        sl_call call;
        int src = sl_invoke(s, call_swap, &a, &call);
        if (src < 0)
            rc = sl_ctx_error(rt->ctx, src, "[%s] putting the rebuilt store in place: %s", s->name,
                              call.msg[0] ? call.msg : sl_strerror(src));
        for (size_t k = 0; k < said.n; k++) fprintf(out, "[%s] %s\n", s->name, said.v[k]);
        lines_free(&said);
    }
    free(sinks);
    return rc;
}
