/* dryrun.c - `sluice run --dry-run`: what a run would do, doing none of it.
 *
 * The same walk as a run (walk.c, [sluice] include/exclude), each file read
 * and hashed as a run reads it (sl_doc_load), and looked up in its route's
 * sink with run id 0, which a sink answers without recording anything
 * (plugin.h). Nothing else is initialised: no provider is called and no
 * stage but the sinks is started. With --prune, the sinks' stored uris
 * (sl_plugin.documents) under the PATHs that the walk did not find are
 * what prune would remove. One document at a time, on the calling thread:
 * a dry run is for looking, not for speed.
 */
#include "dryrun.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "document.h"
#include "media.h"
#include "ops.h"
#include "walk.h"

enum { D_NEW, D_CHANGED, D_SKIPPED, D_FAILED, D_PARKED, D_PRUNED, D_KINDS };
static const char *const kind_word[D_KINDS] = {"new", "replace", "skip", "fail", "parked", "prune"};
static const char *const kind_json[D_KINDS] = {"new", "replaced", "skipped", "failed", "parked", "pruned"};

typedef struct dry {
    sl_runtime *rt;
    const sl_run_opts *opts;
    int json;
    FILE *out;
    json_t *lists[D_KINDS];
    uint64_t count[D_KINDS];
    char **seen; /* walked uris, for prune */
    size_t nseen, capseen;
    int oom;
} dry;

static void emit(dry *d, int kind, const char *uri, const char *why) {
    d->count[kind]++;
    if (d->json) {
        json_t *v = why ? json_pack("{s:s, s:s}", "uri", uri, "reason", why) : json_string(uri);
        if (v) json_array_append_new(d->lists[kind], v);
    } else if (why) {
        fprintf(d->out, "%-8s %s: %s\n", kind_word[kind], uri, why);
    } else {
        fprintf(d->out, "%-8s %s\n", kind_word[kind], uri);
    }
}

static void remember(dry *d, const char *uri) {
    if (!d->opts->prune) return;
    if (d->nseen == d->capseen) {
        size_t cap = d->capseen ? d->capseen * 2 : 256;
        char **g = realloc(d->seen, cap * sizeof *g);
        if (!g) {
            d->oom = 1;
            return;
        }
        d->seen = g;
        d->capseen = cap;
    }
    if (!(d->seen[d->nseen] = strdup(uri)))
        d->oom = 1;
    else
        d->nseen++;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int call_lookup(sl_call *call, void *arg) { return call->inst->desc->lookup(call, arg); }

/* One walked file: read, hashed, looked up. */
static void one(dry *d, const sl_walk_entry *e) {
    sl_runtime *rt = d->rt;
    const sl_run_opts *o = d->opts;
    remember(d, e->path);
    if (o->nparked && bsearch(&e->path, o->parked, o->nparked, sizeof *o->parked, cmp_str)) {
        emit(d, D_PARKED, e->path, "a dead letter: passed over until 'sluice retry --all'");
        return;
    }
    if (e->error) {
        emit(d, D_FAILED, e->path, e->error);
        return;
    }
    const char *media = sl_media_type_for_path(e->path);
    const sl_route *route = sl_runtime_route_for(rt, media);
    if (!route) {
        char why[256];
        snprintf(why, sizeof why, "no route for media type %s", media);
        emit(d, D_FAILED, e->path, why);
        return;
    }
    sl_doc *doc = sl_doc_new(e->path, e->path);
    if (!doc) {
        d->oom = 1;
        return;
    }
    sl_doc_set_media_type(doc, media);
    sl_doc_set_fingerprint(doc, route->fingerprint);
    sl_doc_set_run_id(doc, 0); /* a dry run: the sink records nothing */
    char err[512];
    if (sl_doc_load(doc, rt->set.max_file_size, err, sizeof err)) {
        emit(d, D_FAILED, e->path, err);
        sl_doc_free(doc);
        return;
    }
    sl_call call;
    int rc = sl_instance_init(rt->ctx, route->sink);
    if (rc) {
        emit(d, D_FAILED, e->path, sl_ctx_errmsg(rt->ctx));
        sl_doc_free(doc);
        return;
    }
    rc = sl_invoke(route->sink, call_lookup, doc, &call);
    if (rc == SL_LOOKUP_MISSING)
        emit(d, D_NEW, e->path, NULL);
    else if (rc == SL_LOOKUP_CHANGED)
        emit(d, D_CHANGED, e->path, NULL);
    else if (rc == SL_LOOKUP_UNCHANGED)
        emit(d, D_SKIPPED, e->path, NULL);
    else
        emit(d, D_FAILED, e->path, call.msg[0] ? call.msg : sl_strerror(rc));
    sl_doc_free(doc);
}

/* --- prune --- */

typedef struct prune_arg {
    dry *d;
} prune_arg;

static int under_roots(const sl_run_opts *o, const char *uri) {
    for (size_t i = 0; i < o->npaths; i++) {
        size_t l = strlen(o->paths[i]);
        while (l > 1 && o->paths[i][l - 1] == '/') l--;
        if (strncmp(uri, o->paths[i], l) == 0 && (uri[l] == '\0' || uri[l] == '/')) return 1;
    }
    return 0;
}

static void stored_uri(void *arg, const char *uri) {
    dry *d = arg;
    if (!under_roots(d->opts, uri)) return;
    if (d->nseen && bsearch(&uri, d->seen, d->nseen, sizeof *d->seen, cmp_str)) return;
    emit(d, D_PRUNED, uri, NULL);
}

static int call_documents(sl_call *call, void *arg) {
    return call->inst->desc->documents(call, stored_uri, arg);
}

static int dry_prune(dry *d) {
    sl_runtime *rt = d->rt;
    if (d->nseen) qsort(d->seen, d->nseen, sizeof *d->seen, cmp_str);
    for (size_t i = 0; i < rt->nroutes; i++) {
        sl_instance *s = rt->routes[i].sink;
        size_t k = 0;
        while (k < i && rt->routes[k].sink != s) k++;
        if (k < i) continue; /* a sink of an earlier route: listed already */
        if (!s->desc->documents)
            return sl_ctx_error(rt->ctx, SL_EFATAL,
                                "[%s] plugin %s cannot list its documents (no `documents` callback): "
                                "--dry-run --prune cannot say what would be pruned",
                                s->name, s->desc->name);
        int rc = sl_instance_init(rt->ctx, s);
        if (rc) return rc;
        sl_call call;
        rc = sl_invoke(s, call_documents, d, &call);
        if (rc < 0)
            return sl_ctx_error(rt->ctx, rc, "[%s] listing stored documents: %s", s->name,
                                call.msg[0] ? call.msg : sl_strerror(rc));
    }
    return 0;
}

int sl_dry_run(sl_runtime *rt, const sl_run_opts *opts, int json, FILE *out, uint64_t *failed) {
    dry D = {.rt = rt, .opts = opts, .json = json, .out = out}, *d = &D;
    for (int k = 0; json && k < D_KINDS; k++) d->lists[k] = json_array();
    sl_walk *w = NULL;
    int rc = sl_walk_new(opts->paths, opts->npaths, rt->set.include, rt->set.exclude, &w) ? SL_ENOMEM : 0;
    if (rc) rc = sl_ctx_error(rt->ctx, rc, "out of memory");
    sl_walk_entry e;
    while (!rc && !d->oom && sl_walk_next(w, &e) == 1) one(d, &e);
    sl_walk_free(w);
    if (!rc && d->oom) rc = sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory");
    if (!rc && opts->prune) rc = dry_prune(d);
    if (!rc) {
        if (json) {
            json_t *root = json_object(), *counts = json_object();
            json_object_set_new(root, "dry_run", json_true());
            for (int k = 0; k < D_KINDS; k++) {
                if (k == D_PRUNED && !opts->prune) continue;
                json_object_set_new(counts, kind_json[k], json_integer((json_int_t)d->count[k]));
                json_object_set(root, kind_json[k], d->lists[k]);
            }
            json_object_set_new(root, "documents", counts);
            json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            fputc('\n', out);
            json_decref(root);
        } else {
            fprintf(out,
                    "dry run: %llu new, %llu to replace, %llu unchanged (skipped), %llu would fail, %llu "
                    "dead letters",
                    (unsigned long long)d->count[D_NEW], (unsigned long long)d->count[D_CHANGED],
                    (unsigned long long)d->count[D_SKIPPED], (unsigned long long)d->count[D_FAILED],
                    (unsigned long long)d->count[D_PARKED]);
            if (opts->prune) fprintf(out, ", %llu to prune", (unsigned long long)d->count[D_PRUNED]);
            fprintf(out, "; nothing was called or written\n");
        }
    }
    *failed = d->count[D_FAILED];
    for (int k = 0; k < D_KINDS; k++) json_decref(d->lists[k]);
    for (size_t i = 0; i < d->nseen; i++) free(d->seen[i]);
    free(d->seen);
    return rc;
}
