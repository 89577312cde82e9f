/* failures.c - the failure list that lasts (see failures.h): recording a
 * run's failed documents in their sinks, and reading the lists back for
 * `sluice failed`, `sluice retry` and the dead letters `run` passes over.
 *
 * Every call is synchronous (sl_invoke): the list is read before a run and
 * written after it, never while documents are in flight.
 */
#include "failures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media.h"
#include "ops.h"

/* The routes' sinks, each once, in route order. */
static size_t distinct_sinks(const sl_runtime *rt, sl_instance **out) {
    size_t n = 0;
    for (size_t i = 0; i < rt->nroutes; i++) {
        sl_instance *s = rt->routes[i].sink;
        size_t k = 0;
        while (k < n && out[k] != s) k++;
        if (k == n) out[n++] = s;
    }
    return n;
}

typedef struct list_arg {
    sl_failure_list *l;
    const char *sink;
    size_t cap;
    int oom;
} list_arg;

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

static void add_row(void *arg, const sl_failure_row *row) {
    list_arg *a = arg;
    sl_failure_list *l = a->l;
    if (a->oom) return;
    if (l->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        sl_failure_entry *g = realloc(l->rows, cap * sizeof *g);
        if (!g) {
            a->oom = 1;
            return;
        }
        l->rows = g;
        a->cap = cap;
    }
    sl_failure_entry *e = &l->rows[l->n];
    memset(e, 0, sizeof *e);
    e->uri = dup_or_empty(row->uri);
    e->stage = dup_or_empty(row->stage);
    e->reason = dup_or_empty(row->reason);
    e->sink = dup_or_empty(a->sink);
    e->attempts = row->attempts;
    e->first_at = row->first_at;
    e->last_at = row->last_at;
    e->dead = l->max_attempts > 0 && row->attempts >= l->max_attempts;
    l->n++;
    if (!e->uri || !e->stage || !e->reason || !e->sink) a->oom = 1;
}

static int call_list(sl_call *call, void *arg) { return call->inst->desc->failures_list(call, add_row, arg); }

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const sl_failure_entry *)a)->uri, ((const sl_failure_entry *)b)->uri);
}

int sl_failures_load(sl_runtime *rt, sl_failure_list *out) {
    memset(out, 0, sizeof *out);
    out->max_attempts = rt->set.max_attempts;
    sl_instance **sinks = calloc(rt->nroutes ? rt->nroutes : 1, sizeof *sinks);
    out->no_list = calloc(rt->nroutes ? rt->nroutes : 1, sizeof *out->no_list);
    if (!sinks || !out->no_list) {
        free(sinks);
        return sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory");
    }
    size_t ns = distinct_sinks(rt, sinks);
    list_arg a = {.l = out};
    int rc = 0;
    for (size_t i = 0; !rc && i < ns; i++) {
        sl_instance *s = sinks[i];
        if (!s->desc->failures_list || !s->desc->failures_record) {
            out->no_list[out->nno_list++] = s->name;
            continue;
        }
        rc = sl_instance_init(rt->ctx, s);
        if (rc) break;
        a.sink = s->name;
        sl_call call;
        rc = sl_invoke(s, call_list, &a, &call);
        if (rc < 0)
            rc = sl_ctx_error(rt->ctx, rc, "[%s] reading the failure list: %s", s->name,
                              call.msg[0] ? call.msg : sl_strerror(rc));
        else
            rc = 0;
    }
    free(sinks);
    if (!rc && a.oom) rc = sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory reading the failure list");
    if (rc) {
        sl_failure_list_free(out);
        return rc;
    }
    if (out->n) qsort(out->rows, out->n, sizeof *out->rows, cmp_entry);
    return 0;
}

void sl_failure_list_free(sl_failure_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        free(l->rows[i].uri);
        free(l->rows[i].stage);
        free(l->rows[i].reason);
        free(l->rows[i].sink);
    }
    free(l->rows);
    free(l->no_list);
    memset(l, 0, sizeof *l);
}

const char **sl_failures_uris(const sl_failure_list *l, int dead, size_t *n) {
    const char **u = calloc(l->n ? l->n : 1, sizeof *u);
    *n = 0;
    if (!u) return NULL;
    for (size_t i = 0; i < l->n; i++) {
        if (dead && !l->rows[i].dead) continue;
        /* rows of two sinks may name one uri: once is enough */
        if (*n && strcmp(u[*n - 1], l->rows[i].uri) == 0) continue;
        u[(*n)++] = l->rows[i].uri;
    }
    return u;
}

/* --- recording --- */

typedef struct record_arg {
    const sl_failure_row *rows;
    size_t n;
} record_arg;

static int call_record(sl_call *call, void *arg) {
    record_arg *a = arg;
    return call->inst->desc->failures_record(call, a->rows, a->n);
}

/* The sink a failed document belongs to: its route's, else the first
 * route's (a document no route takes). */
static sl_instance *sink_of(const sl_runtime *rt, const char *uri) {
    const sl_route *r = sl_runtime_route_for(rt, sl_media_type_for_path(uri));
    return r ? r->sink : rt->routes[0].sink;
}

int sl_failures_record(sl_runtime *rt, const sl_report *rep) {
    if (!rep->nfailures || !rt->nroutes) return 0;
    sl_instance **sinks = calloc(rt->nroutes, sizeof *sinks);
    sl_failure_row *rows = calloc(rep->nfailures, sizeof *rows);
    char **reasons = calloc(rep->nfailures, sizeof *reasons);
    int rc = 0;
    if (!sinks || !rows || !reasons) rc = sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory");
    size_t ns = rc ? 0 : distinct_sinks(rt, sinks);
    for (size_t k = 0; !rc && k < ns; k++) {
        sl_instance *s = sinks[k];
        size_t n = 0;
        for (size_t i = 0; i < rep->nfailures; i++) {
            const sl_failure *f = &rep->failures[i];
            if (sink_of(rt, f->uri) != s) continue;
            /* not the document's fault: the run stopped around it, or the
             * fatal error itself (a rejected key, a wrong dimension) */
            if (rep->fatal && (strncmp(f->reason, "not processed:", 14) == 0 ||
                               (*f->reason && strstr(rep->fatal_msg, f->reason))))
                continue;
            if (!reasons[i]) {
                size_t len = strlen(f->reason) + 1;
                if (!(reasons[i] = malloc(len))) {
                    rc = sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory");
                    break;
                }
                sl_ctx_scrub(rt->ctx, f->reason, reasons[i], len);
            }
            rows[n++] = (sl_failure_row){.uri = f->uri, .stage = f->stage, .reason = reasons[i]};
        }
        if (rc || !n) continue;
        if (!s->desc->failures_record) {
            sl_ctx_log(rt->ctx, SL_LOG_WARN, s->name,
                       "plugin %s keeps no failure list (no failures_record): %zu failed documents are not "
                       "recorded for 'sluice failed' and 'sluice retry'",
                       s->desc->name, n);
            continue;
        }
        record_arg a = {rows, n};
        sl_call call;
        int r = sl_invoke(s, call_record, &a, &call);
        if (r < 0)
            rc = sl_ctx_error(rt->ctx, r, "[%s] recording %zu failed documents: %s", s->name, n,
                              call.msg[0] ? call.msg : sl_strerror(r));
    }
    for (size_t i = 0; reasons && i < rep->nfailures; i++) free(reasons[i]);
    free(reasons);
    free(rows);
    free(sinks);
    return rc;
}
