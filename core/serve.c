/* serve.c - `sluice serve` (see serve.h): watches, debounce, passes,
 * signals and reload.
 *
 * serve has a libuv loop of its own, apart from the runtime's: its handles
 * (the fs_event watches, the timers, the signals) stay open for as long as
 * it runs, while a pass runs the runtime's loop until its run ends. Work is
 * started only between iterations of serve's loop, never inside a
 * callback, so a pass never nests inside another and a reload always finds
 * the old runtime idle (the "safe point": the pass before it has drained).
 */
#include "serve.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "guard.h"
#include "failures.h"
#include "httpd.h"
#include "loop.h"
#include "pipeline.h"
#include "report.h"
#include "walk.h"

/* More changed paths than this waiting at once: forget them and rescan
 * everything instead (a bound on what a flood of events can hold). */
#define MAX_PENDING 100000
/* Folders nested deeper than this are left to the rescan. */
#define MAX_WATCH_DEPTH 64

typedef struct serve serve;

typedef struct watch {
    uv_fs_event_t h;
    char *dir;
    serve *sv;
} watch;

/* A path an event named, waiting until it is steady. */
typedef struct pending {
    char *path;
    uint64_t due_ms; /* its last event plus the debounce */
    int exists, is_dir, ready;
    int taken;  /* in the pass running now (an event since puts it back) */
    int passed; /* in the pass running now, even after an event since: never given to it twice */
    off_t size;
    struct timespec mtime;
} pending;

struct serve {
    sl_ctx *ctx;
    sl_config *cfg;
    sl_runtime *rt;
    const sl_serve_opts *opts;
    sl_loop *sl; /* the one loop: serve's handles, every pass and the plugins' io */
    uv_loop_t *uv;
    int in_pass;         /* a pass runs the loop: serve's handles are unreferenced and never stop it */
    int change_pass;     /* ... and it is a pass over changed paths (files ready meanwhile may join it) */
    uint64_t calls_left; /* pool calls left running at call_deadline: no plugin is unloaded after */
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t debounce, rescan, report;
    char **roots;
    size_t nroots;
    watch **w;
    size_t nw, wcap;
    pending *p;
    size_t np, pcap;
    int stop, reload, rescan_due, ready_due, status;
    int watch_warned;
    uint64_t passes, stored, skipped, failed, pruned, events, joined;
    uint64_t t0;
    /* [sluice] listen: the HTTP service reads one report over every pass
     * (cum), plus the pass in progress (cur, live) while one runs */
    sl_httpd *httpd;
    sl_report cum, view;
    sl_report *cur;
    struct run *live;
};

/* Failures the HTTP service's report keeps (the latest). */
#define KEEP_FAILURES 100

/* Asks the main loop of sl_serve to look at the flags: between passes
 * it waits in the loop, which this stops; during a pass the run owns the
 * loop and the flags are read when it ends. */
static void wake(serve *s) {
    if (!s->in_pass) uv_stop(s->uv);
}

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t o = a;
    if (a && dir[a - 1] != '/') p[o++] = '/';
    memcpy(p + o, name, b + 1);
    return p;
}

/* --- the roots --- */

static void free_roots(serve *s) {
    for (size_t i = 0; i < s->nroots; i++) free(s->roots[i]);
    free(s->roots);
    s->roots = NULL;
    s->nroots = 0;
}

/* The command line's paths, else [sluice] watch; each must exist. */
static int make_roots(serve *s, const sl_runtime *rt, char ***out, size_t *nout) {
    char **roots = NULL;
    size_t n = 0;
    char *copy = NULL;
    const char *const *src = s->opts->paths;
    size_t nsrc = s->opts->npaths;
    const char *words[256];
    if (!nsrc) {
        copy = strdup(rt->set.watch ? rt->set.watch : "");
        if (!copy) return sl_ctx_error(s->ctx, SL_ENOMEM, "out of memory");
        for (char *save = NULL, *t = strtok_r(copy, " \t,", &save); t && nsrc < 256;
             t = strtok_r(NULL, " \t,", &save))
            words[nsrc++] = t;
        src = words;
    }
    int rc = 0;
    if (!nsrc)
        rc = sl_ctx_error(s->ctx, SL_EFATAL,
                          "serve: nothing to watch: name folders on the command line or in [sluice] watch");
    roots = calloc(nsrc ? nsrc : 1, sizeof *roots);
    if (!rc && !roots) rc = sl_ctx_error(s->ctx, SL_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < nsrc; i++) {
        size_t l = strlen(src[i]);
        while (l > 1 && src[i][l - 1] == '/') l--;
        struct stat st;
        if (!(roots[n] = strndup(src[i], l)))
            rc = sl_ctx_error(s->ctx, SL_ENOMEM, "out of memory");
        else if (stat(roots[n], &st) != 0)
            rc = sl_ctx_error(s->ctx, SL_EFATAL, "serve: cannot watch %s: %s", roots[n], strerror(errno));
        n++;
    }
    free(copy);
    if (rc) {
        for (size_t i = 0; i < n; i++) free(roots[i]);
        free(roots);
        return rc;
    }
    *out = roots;
    *nout = n;
    return 0;
}

/* --- watches: one per directory --- */

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status);

static void watch_closed(uv_handle_t *h) {
    watch *w = h->data;
    free(w->dir);
    free(w);
}

static int is_watched(const serve *s, const char *dir) {
    for (size_t i = 0; i < s->nw; i++)
        if (strcmp(s->w[i]->dir, dir) == 0) return 1;
    return 0;
}

static void add_watch(serve *s, const char *dir) {
    if (is_watched(s, dir)) return;
    if (s->nw == s->wcap) {
        size_t nc = s->wcap ? s->wcap * 2 : 16;
        watch **nv = realloc(s->w, nc * sizeof *nv);
        if (!nv) return;
        s->w = nv;
        s->wcap = nc;
    }
    watch *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        return;
    }
    w->sv = s;
    uv_fs_event_init(s->uv, &w->h);
    w->h.data = w;
    int rc = uv_fs_event_start(&w->h, on_fs_event, dir, 0);
    if (rc) {
        /* ENOSPC: fs.inotify.max_user_watches is spent */
        if (!s->watch_warned++)
            sl_ctx_log(s->ctx, SL_LOG_WARN, "serve",
                       "cannot watch %s: %s (changes there are found by the rescan only; more folders "
                       "than fs.inotify.max_user_watches?)",
                       dir, uv_strerror(rc));
        uv_close((uv_handle_t *)&w->h, watch_closed);
        return;
    }
    if (s->in_pass) uv_unref((uv_handle_t *)&w->h);
    s->w[s->nw++] = w;
}

/* Watches dir and every folder under it that the walk would enter.
 * Symbolic links to folders are walked but not watched (no loops): the
 * rescan covers them. */
static void watch_tree(serve *s, const char *dir, int depth) {
    if (depth > MAX_WATCH_DEPTH) return;
    add_watch(s, dir);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        if (sl_walk_name_matches(s->rt->set.exclude, de->d_name)) continue;
        char *path = join(dir, de->d_name);
        struct stat st;
        if (path && lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) watch_tree(s, path, depth + 1);
        free(path);
    }
    closedir(d);
}

/* Stops watching path and everything under it (deleted, or renamed away). */
static void unwatch(serve *s, const char *path) {
    size_t l = strlen(path);
    for (size_t i = 0; i < s->nw;) {
        watch *w = s->w[i];
        if (strcmp(w->dir, path) == 0 || (strncmp(w->dir, path, l) == 0 && w->dir[l] == '/')) {
            uv_close((uv_handle_t *)&w->h, watch_closed);
            s->w[i] = s->w[--s->nw];
        } else {
            i++;
        }
    }
}

static void unwatch_all(serve *s) {
    for (size_t i = 0; i < s->nw; i++) uv_close((uv_handle_t *)&s->w[i]->h, watch_closed);
    s->nw = 0;
}

/* Before a rescan: drop watches of folders that are gone, watch new ones. */
static void resync_watches(serve *s) {
    for (size_t i = 0; i < s->nw;) {
        struct stat st;
        if (stat(s->w[i]->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            uv_close((uv_handle_t *)&s->w[i]->h, watch_closed);
            s->w[i] = s->w[--s->nw];
        } else {
            i++;
        }
    }
    for (size_t i = 0; i < s->nroots; i++) {
        struct stat st;
        if (stat(s->roots[i], &st) == 0 && S_ISDIR(st.st_mode)) watch_tree(s, s->roots[i], 0);
    }
}

/* --- pending paths and the debounce --- */

static void on_debounce(uv_timer_t *t);

static void clear_pending(serve *s) {
    for (size_t i = 0; i < s->np; i++) free(s->p[i].path);
    s->np = 0;
}

static void note(pending *e, const struct stat *st) {
    e->exists = st != NULL;
    e->is_dir = st && S_ISDIR(st->st_mode);
    e->size = st ? st->st_size : 0;
    e->mtime = st ? st->st_mtim : (struct timespec){0, 0};
}

static int same(const pending *e, const struct stat *st) {
    if (!e->exists || !st) return !e->exists && !st;
    return e->size == st->st_size && e->mtime.tv_sec == st->st_mtim.tv_sec &&
           e->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static uint64_t debounce_ms(const serve *s) {
    return s->rt->set.watch_debounce_ms > 0 ? (uint64_t)s->rt->set.watch_debounce_ms : 1;
}

/* Each path waits for its own quiet time: events of other paths never push
 * it back (files arriving all the time must not starve the first one).
 * The timer is set for the earliest due path. */
static void arm_debounce(serve *s) {
    uint64_t now = uv_now(s->uv), first = UINT64_MAX;
    for (size_t i = 0; i < s->np; i++)
        if (!s->p[i].ready && s->p[i].due_ms < first) first = s->p[i].due_ms;
    if (first == UINT64_MAX) return;
    uv_timer_start(&s->debounce, on_debounce, first > now ? first - now : 0, 0);
}

/* A path changed (st: what it is now, NULL when it is gone). */
static void add_pending(serve *s, const char *path, const struct stat *st) {
    s->events++;
    for (size_t i = 0; i < s->np; i++)
        if (strcmp(s->p[i].path, path) == 0) {
            note(&s->p[i], st);
            s->p[i].ready = 0;
            s->p[i].taken = 0;
            s->p[i].due_ms = uv_now(s->uv) + debounce_ms(s);
            if (!uv_is_active((uv_handle_t *)&s->debounce)) arm_debounce(s);
            return;
        }
    if (s->np >= MAX_PENDING) {
        sl_ctx_log(s->ctx, SL_LOG_WARN, "serve", "more than %d changed paths waiting: rescanning everything",
                   MAX_PENDING);
        if (!s->in_pass) clear_pending(s); /* a pass still reads the paths it took */
        s->rescan_due = 1;
        wake(s);
        return;
    }
    if (s->np == s->pcap) {
        size_t nc = s->pcap ? s->pcap * 2 : 64;
        pending *nv = realloc(s->p, nc * sizeof *nv);
        if (!nv) {
            s->rescan_due = 1;
            return;
        }
        s->p = nv;
        s->pcap = nc;
    }
    pending *e = &s->p[s->np];
    memset(e, 0, sizeof *e);
    if (!(e->path = strdup(path))) {
        s->rescan_due = 1;
        return;
    }
    note(e, st);
    e->due_ms = uv_now(s->uv) + debounce_ms(s);
    s->np++;
    if (!uv_is_active((uv_handle_t *)&s->debounce)) arm_debounce(s);
}

static void join_ready(serve *s);

/* The debounce of some paths is over: one whose size and mtime did not
 * move since its last event is ready; the others wait another round
 * (still being written). */
static void on_debounce(uv_timer_t *t) {
    serve *s = t->data;
    uint64_t now = uv_now(s->uv);
    for (size_t i = 0; i < s->np; i++) {
        pending *e = &s->p[i];
        if (e->ready || e->due_ms > now) continue;
        struct stat st;
        int ok = stat(e->path, &st) == 0;
        /* a folder's mtime moves with every file put in it: those files
         * have events of their own, so a new folder waits only once */
        if (same(e, ok ? &st : NULL) || (e->is_dir && ok && S_ISDIR(st.st_mode))) {
            e->ready = 1;
            s->ready_due = 1;
        } else {
            note(e, ok ? &st : NULL);
            e->due_ms = now + debounce_ms(s);
        }
    }
    arm_debounce(s);
    if (s->ready_due && s->in_pass && s->change_pass && s->live) join_ready(s);
    if (s->ready_due) wake(s);
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status) {
    (void)events;
    watch *w = h->data;
    serve *s = w->sv;
    if (status < 0) {
        sl_ctx_log(s->ctx, SL_LOG_WARN, "serve", "watching %s: %s; rescanning", w->dir, uv_strerror(status));
        s->rescan_due = 1;
        wake(s);
        return;
    }
    if (!filename || !*filename) {
        s->rescan_due = 1;
        wake(s);
        return;
    }
    const sl_settings *set = &s->rt->set;
    if (sl_walk_name_matches(set->exclude, filename)) return;
    char *path = join(w->dir, filename);
    if (!path) return;
    struct stat st;
    if (stat(path, &st) != 0) {
        unwatch(s, path); /* a folder that went takes its watches along */
        add_pending(s, path, NULL);
    } else if (S_ISDIR(st.st_mode)) {
        /* a new (or re-made) folder: files may be in it before its watch is */
        if (strcmp(path, w->dir) != 0) {
            unwatch(s, path);
            watch_tree(s, path, 1);
            add_pending(s, path, &st);
        }
    } else if (sl_walk_name_matches(set->include, filename)) {
        add_pending(s, path, &st);
    }
    free(path);
}

/* --- passes --- */

static uint64_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Whether serve's handles keep the loop running: between passes they do
 * (it waits for them), during a pass they must not (the run ends when its
 * own handles are closed). */
static void set_refs(serve *s, int on) {
    uv_handle_t *h[] = {(uv_handle_t *)&s->sigint,   (uv_handle_t *)&s->sigterm, (uv_handle_t *)&s->sighup,
                        (uv_handle_t *)&s->debounce, (uv_handle_t *)&s->rescan,  (uv_handle_t *)&s->report};
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) on ? uv_ref(h[i]) : uv_unref(h[i]);
    for (size_t i = 0; i < s->nw; i++)
        on ? uv_ref((uv_handle_t *)&s->w[i]->h) : uv_unref((uv_handle_t *)&s->w[i]->h);
}

/* The dead letters a pass passes over (failures.h), sorted, pointers into
 * fl: those whose file did not change since their last failure. A file
 * whose status changed (ctime: a write, a rename or a copy into place,
 * which no tool can set back) at or after its last failure gets one more
 * attempt: a fixed file is stored by the next pass that sees it, with no
 * `retry --all`; if it fails again it is a dead letter again at once. NULL
 * when out of memory. */
static const char **dead_letters(const sl_failure_list *fl, size_t *n) {
    size_t nd = 0;
    const char **u = sl_failures_uris(fl, 1, &nd);
    *n = 0;
    if (!u) return NULL;
    for (size_t i = 0, k = 0; i < nd; i++) {
        while (k < fl->n && strcmp(fl->rows[k].uri, u[i]) != 0) k++;
        int64_t last = 0; /* the latest failure among its rows (one per sink) */
        for (size_t j = k; j < fl->n && strcmp(fl->rows[j].uri, u[i]) == 0; j++)
            if (fl->rows[j].last_at > last) last = fl->rows[j].last_at;
        struct stat st;
        if (stat(u[i], &st) == 0 && (int64_t)st.st_ctim.tv_sec >= last) continue;
        u[(*n)++] = u[i];
    }
    return u;
}

static void pass(serve *s, const char *const *walk, size_t nwalk, const char *const *gone, size_t ngone,
                 const char *why) {
    sl_run_opts o = {.paths = walk,
                     .npaths = nwalk,
                     .prune = 1,
                     .prune_only = gone,
                     .nprune_only = ngone,
                     .live = &s->live};
    /* the failure list, as `run` keeps it: read before each pass (dead
     * letters passed over), the pass's failures recorded after it */
    sl_failure_list fl;
    const char **parked = NULL;
    int have_list = sl_failures_load(s->rt, &fl) == 0;
    if (!have_list)
        sl_ctx_log(s->ctx, SL_LOG_ERROR, "serve", "the %s pass runs without the failure list: %s", why,
                   sl_ctx_errmsg(s->ctx));
    else if (!(parked = dead_letters(&fl, &o.nparked)))
        sl_ctx_log(s->ctx, SL_LOG_ERROR, "serve", "out of memory: the %s pass retries dead letters too", why);
    o.parked = parked;
    sl_report rep;
    memset(&rep, 0, sizeof rep);
    set_refs(s, 0);
    s->in_pass = 1;
    s->cur = &rep;
    int rc = sl_pipeline_run(s->rt, &o, &rep);
    s->cur = NULL;
    s->in_pass = 0;
    set_refs(s, 1);
    if ((!rc || rep.fatal) && sl_failures_record(s->rt, &rep))
        sl_ctx_log(s->ctx, SL_LOG_ERROR, "serve", "the %s pass's failures are not in the failure list: %s",
                   why, sl_ctx_errmsg(s->ctx));
    free(parked);
    if (have_list) sl_failure_list_free(&fl);
    sl_report_accumulate(&s->cum, &rep, KEEP_FAILURES);
    s->passes++;
    s->stored += rep.stored;
    s->skipped += rep.skipped;
    s->failed += rep.failed;
    s->pruned += rep.pruned;
    s->calls_left += rep.calls_left;
    if (rep.fatal)
        sl_ctx_log(s->ctx, SL_LOG_ERROR, "serve",
                   "the %s pass stopped: %s; the next change or rescan tries again", why, rep.fatal_msg);
    else if (rc)
        sl_ctx_log(s->ctx, SL_LOG_ERROR, "serve", "the %s pass could not start: %s", why,
                   sl_ctx_errmsg(s->ctx));
    sl_ctx_log(
        s->ctx, SL_LOG_INFO, "serve",
        "%s pass over %zu paths: %llu stored, %llu skipped, %llu failed, %llu pruned, %llu dead letters "
        "passed over in %.2f s",
        why, nwalk + ngone, (unsigned long long)rep.stored, (unsigned long long)rep.skipped,
        (unsigned long long)rep.failed, (unsigned long long)rep.pruned, (unsigned long long)rep.parked,
        rep.wall_s);
    if (rep.interrupted) s->stop = 1;
    sl_report_free(&rep);
}

static void full_pass(serve *s, const char *why) {
    resync_watches(s);
    /* what waits in the debounce stays there: a file still being written
     * is stored again once it is steady */
    pass(s, (const char *const *)s->roots, s->nroots, NULL, 0, why);
}

/* Whether a ready folder of this pass holds path: its walk finds the file,
 * which as a root of its own would be a second job for one document (a
 * new folder and the files moved into it are often ready together). */
static int under_ready_folder(const serve *s, const char *path) {
    for (size_t i = 0; i < s->np; i++) {
        const pending *d = &s->p[i];
        if (!d->ready || !d->exists || !d->is_dir) continue;
        size_t l = strlen(d->path);
        if (strncmp(path, d->path, l) == 0 && path[l] == '/') return 1;
    }
    return 0;
}

/* Whether a folder of the pass running now holds path: its walk finds the
 * file, which given to the pass again would be a second job for it. */
static int under_pass_folder(const serve *s, const char *path) {
    for (size_t i = 0; i < s->np; i++) {
        const pending *d = &s->p[i];
        if (!d->passed || !d->exists || !d->is_dir) continue;
        size_t l = strlen(d->path);
        if (strncmp(path, d->path, l) == 0 && path[l] == '/') return 1;
    }
    return 0;
}

/* A pass over changed paths is running: files that became ready since join
 * it at once (sl_pipeline_add) instead of waiting for it to end, unless it
 * holds them already (named by it, or under a folder it walks). Folders and
 * deletions wait for the next pass, which walks and prunes them; so does
 * everything during a full pass (its walk may not have reached the file). */
static void join_ready(serve *s) {
    for (size_t i = 0; i < s->np; i++) {
        pending *e = &s->p[i];
        if (!e->ready || e->taken || e->passed || !e->exists || e->is_dir) continue;
        if (under_pass_folder(s, e->path)) continue;
        if (!sl_pipeline_add(s->live, e->path)) return; /* the pass is ending: the next one */
        e->taken = e->passed = 1;
        s->joined++;
        sl_ctx_log_doc(s->ctx, SL_LOG_INFO, "serve", e->path, "joins the change pass in progress");
    }
}

static void ready_pass(serve *s) {
    const char **walk = calloc(s->np ? s->np : 1, sizeof *walk);
    const char **gone = calloc(s->np ? s->np : 1, sizeof *gone);
    size_t nwalk = 0, ngone = 0;
    if (!walk || !gone) {
        free(walk);
        free(gone);
        s->rescan_due = 1;
        return;
    }
    for (size_t i = 0; i < s->np; i++) {
        if (!s->p[i].ready) continue;
        s->p[i].taken = s->p[i].passed = 1;
        if (!s->p[i].exists)
            gone[ngone++] = s->p[i].path;
        else if (!under_ready_folder(s, s->p[i].path))
            walk[nwalk++] = s->p[i].path;
    }
    if (nwalk + ngone) {
        s->change_pass = 1;
        pass(s, walk, nwalk, gone, ngone, "change");
        s->change_pass = 0;
    }
    free(walk);
    free(gone);
    /* what became ready during the pass and did not join it goes into the next one */
    size_t k = 0;
    for (size_t i = 0; i < s->np; i++) {
        if (s->p[i].taken) {
            free(s->p[i].path);
        } else {
            s->p[i].passed = 0;
            s->p[k++] = s->p[i];
        }
    }
    s->np = k;
}

/* --- timers and signals --- */

static void on_rescan(uv_timer_t *t) {
    serve *s = t->data;
    s->rescan_due = 1;
    wake(s);
}

static void on_report(uv_timer_t *t) {
    serve *s = t->data;
    sl_ctx_log(s->ctx, SL_LOG_INFO, "serve",
               "up %.0f s: %llu passes; %llu stored, %llu skipped, %llu failed, %llu pruned; %llu events, "
               "%zu paths waiting, %zu folders watched; RSS %.1f MB; %llu files joined a pass in progress",
               (double)(sl_now_ns() - s->t0) / 1e9, (unsigned long long)s->passes,
               (unsigned long long)s->stored, (unsigned long long)s->skipped, (unsigned long long)s->failed,
               (unsigned long long)s->pruned, (unsigned long long)s->events, s->np, s->nw,
               (double)rss_bytes() / 1048576.0, (unsigned long long)s->joined);
}

static void start_timers(serve *s) {
    const sl_settings *set = &s->rt->set;
    uv_timer_stop(&s->rescan);
    uv_timer_stop(&s->report);
    if (set->rescan_ms > 0)
        uv_timer_start(&s->rescan, on_rescan, (uint64_t)set->rescan_ms, (uint64_t)set->rescan_ms);
    if (set->report_interval_ms > 0)
        uv_timer_start(&s->report, on_report, (uint64_t)set->report_interval_ms,
                       (uint64_t)set->report_interval_ms);
}

static void on_signal(uv_signal_t *h, int signum) {
    serve *s = h->data;
    if (signum == SIGHUP)
        s->reload = 1;
    else
        s->stop = 1; /* during a pass, the run's own handler finishes what is in flight */
    wake(s);
}

/* SIGHUP, between passes: the new configuration is loaded, validated and
 * initialised beside the old one; only when all of that worked is the old
 * one freed (its store released) and the new one claims the store. */
static void reload(serve *s) {
    sl_ctx_log(s->ctx, SL_LOG_INFO, "serve", "SIGHUP: reloading %s", s->cfg->path);
    sl_config *cfg = NULL;
    sl_runtime *rt = NULL;
    if (s->opts->open(s->opts->open_arg, s->sl, &cfg, &rt) != 0) {
        sl_ctx_log(s->ctx, SL_LOG_ERROR, "serve", "reload refused, the running configuration stays: %s",
                   sl_ctx_errmsg(s->ctx));
        return;
    }
    char **roots;
    size_t nroots;
    if (make_roots(s, rt, &roots, &nroots) != 0) {
        sl_ctx_log(s->ctx, SL_LOG_ERROR, "serve", "reload refused, the running configuration stays: %s",
                   sl_ctx_errmsg(s->ctx));
        sl_runtime_free(rt);
        sl_config_free(cfg);
        return;
    }
    /* callbacks that run while the old one is freed read the new one */
    sl_runtime *old_rt = s->rt;
    sl_config *old_cfg = s->cfg;
    s->rt = rt;
    s->cfg = cfg;
    if (!s->calls_left) sl_runtime_free(old_rt); /* else a pool thread may still run its plugin's code */
    sl_config_free(old_cfg);
    unwatch_all(s);
    free_roots(s);
    s->roots = roots;
    s->nroots = nroots;
    if (sl_runtime_claim(rt) != 0) {
        sl_ctx_log(s->ctx, SL_LOG_ERROR, "serve", "after the reload: %s; stopping", sl_ctx_errmsg(s->ctx));
        s->status = SL_EFATAL;
        s->stop = 1;
        return;
    }
    start_timers(s);
    s->rescan_due = 1; /* watches come back with it */
    sl_ctx_log(s->ctx, SL_LOG_INFO, "serve",
               "reloaded %s: rescanning; documents whose pipeline changed are stored again", cfg->path);
}

/* --- the HTTP service's view --- */

static const sl_report *view_report(void *arg, int *running) {
    serve *s = arg;
    *running = 1; /* a service: its counters never end */
    sl_report_free(&s->view);
    sl_report_accumulate(&s->view, &s->cum, KEEP_FAILURES);
    if (s->live && s->cur) {
        sl_pipeline_refresh(s->live);
        sl_report_accumulate(&s->view, s->cur, KEEP_FAILURES);
        s->view.inflight_bytes = s->cur->inflight_bytes;
        s->view.docs_inflight = s->cur->docs_inflight;
    }
    s->view.started_ns = s->t0;
    s->view.wall_s = (double)(sl_now_ns() - s->t0) / 1e9;
    return &s->view;
}

static sl_runtime *view_runtime(void *arg) { return ((serve *)arg)->rt; }

static int start_httpd(serve *s) {
    const char *listen = s->rt->set.listen;
    if (!listen || !*listen) return 0;
    sl_httpd_source src = {.arg = s, .report = view_report, .runtime = view_runtime, .ctx = s->ctx};
    char err[512];
    s->httpd = sl_httpd_start(s->uv, listen, &src, err, sizeof err);
    if (!s->httpd) return sl_ctx_error(s->ctx, SL_EFATAL, "[sluice] listen: %s", err);
    sl_ctx_log(s->ctx, SL_LOG_INFO, "serve", "serving http://%s/ (/metrics /health /ready /query)",
               sl_httpd_address(s->httpd));
    return 0;
}

/* --- the whole --- */

int sl_serve(sl_ctx *ctx, const sl_serve_opts *opts, int *busy) {
    serve S, *s = &S;
    memset(s, 0, sizeof S);
    *busy = 0;
    s->ctx = ctx;
    s->opts = opts;
    s->t0 = sl_now_ns();
    if (sl_loop_new(&s->sl) != 0) return sl_ctx_error(ctx, SL_ENOMEM, "cannot start the event loop");
    s->uv = sl_loop_uv(s->sl);
    int rc = opts->open(opts->open_arg, s->sl, &s->cfg, &s->rt);
    if (!rc && sl_runtime_claim(s->rt) != 0) {
        *busy = 1;
        rc = SL_EFATAL;
    }
    if (!rc) rc = make_roots(s, s->rt, &s->roots, &s->nroots);
    s->cum.started_ns = s->t0;
    if (!rc) rc = start_httpd(s);
    if (rc) {
        sl_runtime_free(s->rt);
        sl_config_free(s->cfg);
        sl_loop_free(s->sl);
        return rc;
    }
    uv_timer_init(s->uv, &s->debounce);
    uv_timer_init(s->uv, &s->rescan);
    uv_timer_init(s->uv, &s->report);
    s->debounce.data = s->rescan.data = s->report.data = s;
    uv_signal_init(s->uv, &s->sigint);
    uv_signal_init(s->uv, &s->sigterm);
    uv_signal_init(s->uv, &s->sighup);
    s->sigint.data = s->sigterm.data = s->sighup.data = s;
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    uv_signal_start(&s->sighup, on_signal, SIGHUP);
    if (sl_guard_take_interrupts()) s->stop = 1; /* interrupted while starting */
    start_timers(s);
    sl_ctx_log(ctx, SL_LOG_INFO, "serve",
               "serving %s (PID %ld): %zu folders, debounce %lld ms, rescan %lld ms", s->cfg->path,
               (long)getpid(), s->nroots, (long long)s->rt->set.watch_debounce_ms,
               (long long)s->rt->set.rescan_ms);

    /* the first pass watches first, so nothing made during it is missed */
    full_pass(s, "initial");
    while (!s->stop) {
        if (s->reload) {
            s->reload = 0;
            reload(s);
        } else if (s->rescan_due) {
            s->rescan_due = 0;
            full_pass(s, "rescan");
        } else if (s->ready_due) {
            s->ready_due = 0;
            ready_pass(s);
        } else {
            sl_loop_run(s->sl); /* until a callback has something to do (wake) */
        }
    }
    on_report(&s->report);
    sl_ctx_log(ctx, SL_LOG_INFO, "serve", "stopped");

    unwatch_all(s);
    uv_close((uv_handle_t *)&s->debounce, NULL);
    uv_close((uv_handle_t *)&s->rescan, NULL);
    uv_close((uv_handle_t *)&s->report, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sighup, NULL);
    if (s->httpd) {
        sl_httpd_stop(s->httpd);
        sl_loop_run(s->sl); /* until its last connection closed */
    }
    if (s->calls_left) {
        /* a pool thread is still inside a call left at [sluice]
         * call_deadline: no unloading from under it (cli.c does the same) */
        if (s->status) fprintf(stderr, "sluice: %s\n", sl_ctx_errmsg(s->ctx));
        fflush(stdout);
        fflush(stderr);
        _exit(s->status ? 2 : 0);
    }
    sl_runtime_free(s->rt);
    sl_config_free(s->cfg);
    sl_loop_free(s->sl); /* finishes every close, the HTTP service's last connections too */
    sl_report_free(&s->cum);
    sl_report_free(&s->view);
    free(s->w);
    clear_pending(s);
    free(s->p);
    free_roots(s);
    return s->status;
}
