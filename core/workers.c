/* workers.c - the isolated executor (see workers.h): the sl_workers_* API,
 * the queue of tasks waiting for a worker, handing them out, and keeping
 * the number of workers up. One worker process, its states and its socket
 * are worker.c's; the process's own side is worker_main.c.
 *
 * Loop thread only. A task is queued by sl_workers_submit and handed to
 * the first idle worker (dispatch); its callback runs once, when the worker
 * answers, fails it, or dies with it, and never inside submit: a task that
 * ends without reaching a worker is completed from the next loop iteration
 * (the defer timer).
 *
 * Whatever ends a worker, the task it held fails with the cause and a new
 * worker takes its place, unless the task never reached it (its frames
 * could not be written): then it goes back to the queue, twice at most.
 * Workers that keep dying before finishing anything are restarted with a
 * growing delay (50 ms doubling to 2 s, one at a time), and three in a row
 * that die before even saying hello mark the executor broken: every task
 * then fails with that reason, so a missing executable or a plugin that
 * crashes at load cannot fork-bomb.
 *
 * Handles are unreferenced, except one keep-alive timer that is referenced
 * while tasks are queued or running: idle workers never keep a loop from
 * ending.
 */
#include "workers.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "document.h"
#include "options.h"
#include "sandbox.h"
#include "worker.h"

/* The memory a worker is assumed to need, for the derived worker count: a
 * sluice process with a parser loaded and a document in hand. */
#define WORKER_MEMORY_GUESS (64ull << 20)
/* Deaths before hello in a row that mark the executor broken. */
#define MAX_START_FAILURES 3

/* --- completing tasks --- */

static void keep_update(sl_workers *w) {
    if (w->pending)
        uv_ref((uv_handle_t *)&w->keep);
    else
        uv_unref((uv_handle_t *)&w->keep);
}

static void on_keep(uv_timer_t *t) {}

/* Runs the caller's callback and frees the task. */
static void finish(sl_workers *w, task *t, int rc, const char *msg) {
    SL_INVARIANT(w->pending > 0);
    w->pending--;
    if (!w->freeing) t->done(t->arg, rc, msg ? msg : "", t->t_start);
    free(t->msg);
    free(t);
    keep_update(w);
}

static void on_defer(uv_timer_t *timer) {
    sl_workers *w = timer->data;
    task *t = w->dhead;
    w->dhead = w->dtail = NULL;
    while (t) {
        task *next = t->next;
        finish(w, t, t->rc, t->msg);
        t = next;
    }
}

/* Completes a task from the next loop iteration (never inside submit). */
static void defer(sl_workers *w, task *t, int rc, const char *msg) {
    t->rc = rc;
    t->msg = strdup(msg);
    t->next = NULL;
    if (w->dtail)
        w->dtail->next = t;
    else
        w->dhead = t;
    w->dtail = t;
    if (!uv_is_active((uv_handle_t *)&w->defer)) uv_timer_start(&w->defer, on_defer, 0, 0);
}

static void go_broken(sl_workers *w, const char *msg) {
    if (!w->broken) {
        w->broken = 1;
        snprintf(w->broken_msg, sizeof w->broken_msg, "%s", msg);
        sl_ctx_log(w->ctx, SL_LOG_ERROR, "workers", "%s", msg);
    }
    while (w->qhead) {
        task *t = w->qhead;
        w->qhead = t->next;
        defer(w, t, SL_EFATAL, w->broken_msg);
    }
    w->qtail = NULL;
}

/* --- keeping the number up --- */

static void maintain(sl_workers *w);

static void on_respawn(uv_timer_t *t) {
    sl_workers *w = t->data;
    maintain(w);
    workers_dispatch(w);
}

/* Starts workers up to the target, holding back while they keep dying. */
static void maintain(sl_workers *w) {
    if (w->freeing || w->broken) return;
    int n = 0;
    for (worker *k = w->workers; k; k = k->next) n += worker_live(k);
    while (n < w->target) {
        uint64_t now = uv_now(w->uv);
        if (w->streak > 0 && now < w->next_spawn_ms) {
            if (!uv_is_active((uv_handle_t *)&w->respawn))
                uv_timer_start(&w->respawn, on_respawn, w->next_spawn_ms - now, 0);
            return;
        }
        int rc = worker_spawn(w);
        if (rc) {
            char msg[PATH_MAX + 128];
            snprintf(msg, sizeof msg, "cannot start a worker process (%s __worker): %s", w->exe,
                     uv_strerror(rc));
            go_broken(w, msg);
            return;
        }
        n++;
        if (w->streak > 0) w->next_spawn_ms = now + 50; /* one at a time while they die */
    }
}

/* --- what workers tell the executor --- */

void workers_started(sl_workers *w) { w->start_fails = 0; }

static uint64_t rss_of(int pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", pid);
    FILE *f = fopen(path, "re");
    unsigned long long size = 0, resident = 0;
    if (!f) return 0;
    if (fscanf(f, "%llu %llu", &size, &resident) != 2) resident = 0;
    fclose(f);
    return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Recycling: a worker past its document count or resident size ends
 * between documents, as does one that asks to. */
void workers_answered(worker *k, task *t, int rc, const char *msg, bool spent) {
    sl_workers *w = k->w;
    const sl_workers_opts *o = &w->opts;
    w->streak = 0;
    if (spent)
        worker_retire(k, "spent: it ran out of memory under its limit");
    else if ((o->max_documents && k->docs >= o->max_documents) || (o->max_rss && rss_of(k->pid) > o->max_rss))
        worker_retire(k, "recycled");
    else
        worker_ready(k);
    maintain(w);
    finish(w, t, rc, msg);
}

void workers_failed(sl_workers *w, task *t, int rc, const char *msg) {
    maintain(w);
    finish(w, t, rc, msg);
}

static void describe_exit(char *buf, size_t len, int64_t status, int sig, bool seccomp) {
    const char *what = NULL;
    switch (sig) {
    case 0: snprintf(buf, len, "worker exited with status %" PRId64, status); return;
    case SIGSEGV: what = "segmentation fault (SIGSEGV)"; break;
    case SIGBUS: what = "bus error (SIGBUS)"; break;
    case SIGFPE: what = "arithmetic exception (SIGFPE)"; break;
    case SIGILL: what = "illegal instruction (SIGILL)"; break;
    case SIGABRT: what = "aborted (SIGABRT)"; break;
    case SIGKILL: what = "killed by SIGKILL (out of memory?)"; break;
    case SIGSYS:
        what =
            seccomp
                ? "bad system call (SIGSYS): the worker's seccomp filter denied a network or file-write call"
                : "bad system call (SIGSYS)";
        break;
    default: break;
    }
    if (what) {
        snprintf(buf, len, "%s", what);
        return;
    }
    const char *abbrev = sigabbrev_np(sig);
    snprintf(buf, len, "killed by signal %d (SIG%s)", sig, abbrev ? abbrev : "?");
}

void workers_exited(worker *k, int64_t status, int sig) {
    sl_workers *w = k->w;
    task *c = k->cur;
    char what[256];
    describe_exit(what, sizeof what, status, sig, w->opts.seccomp);
    bool loading = c && k->life == W_LOADING;
    if (k->state != W_RETIRING && !w->freeing) { /* not planned */
        if (k->life == W_STARTING) {
            w->start_fails++;
            snprintf(w->last_start_fail, sizeof w->last_start_fail, "%s", what);
        }
        if (k->docs == 0) {
            w->streak++;
            int shift = w->streak - 1 < 6 ? w->streak - 1 : 6;
            uint64_t delay = 50u << shift;
            w->next_spawn_ms = uv_now(w->uv) + (delay < 2000 ? delay : 2000);
        }
        sl_ctx_log(w->ctx, SL_LOG_INFO, "workers", "worker %d ended: %s", k->pid, what);
    }
    worker_close(k, what);
    if (c && !w->freeing && c->unsent && !k->reason[0] && c->requeues < 2) {
        /* it died between documents, before this one reached it: not its fault */
        c->requeues++;
        c->unsent = false;
        c->t_start = 0;
        c->next = w->qhead;
        w->qhead = c;
        if (!w->qtail) w->qtail = c;
        c = NULL;
    }
    if (w->start_fails >= MAX_START_FAILURES) {
        char msg[PATH_MAX + 512];
        snprintf(msg, sizeof msg,
                 "worker processes do not start (%s, %d times in a row); is %s a sluice executable?",
                 w->last_start_fail, w->start_fails, w->exe);
        go_broken(w, msg);
    }
    if (c && !w->freeing) {
        char why[1400];
        const char *plugin = c->inst->desc->name;
        if (k->reason[0])
            snprintf(why, sizeof why, "%s", k->reason);
        else if (loading)
            snprintf(why, sizeof why, "[%s] %s while plugin %s started in a worker (init)", c->inst->name,
                     what, plugin);
        else
            snprintf(why, sizeof why, "%s in plugin %s on %s", what, plugin, sl_doc_uri(c->doc));
        maintain(w);
        finish(w, c, loading ? SL_EFATAL : SL_EBADINPUT, why);
    } else if (c) {
        finish(w, c, SL_EBADINPUT, "");
    } else {
        maintain(w);
    }
    workers_dispatch(w);
}

/* --- handing out tasks --- */

static worker *idle_worker(sl_workers *w) {
    for (worker *k = w->workers; k; k = k->next)
        if (worker_idle(k)) return k;
    return NULL;
}

void workers_dispatch(sl_workers *w) {
    if (w->freeing) return;
    if (w->dispatching) { /* called again from a callback inside: the outer loop goes on */
        w->redispatch = 1;
        return;
    }
    w->dispatching = 1;
    do {
        w->redispatch = 0;
        worker *k;
        while (w->qhead && (k = idle_worker(w))) {
            task *t = w->qhead;
            w->qhead = t->next;
            if (!w->qhead) w->qtail = NULL;
            if (worker_give(k, t) < 0)
                defer(w, t, SL_ENOMEM, "out of memory while sending a document to a worker");
        }
    } while (w->redispatch);
    w->dispatching = 0;
}

/* --- instances as workers load them --- */

static int option_kv(const sl_option *o, const void *config, char **out) {
    size_t cap = 256;
    for (;;) {
        size_t nl = strlen(o->name);
        char *buf = malloc(nl + 1 + cap);
        if (!buf) return SL_ENOMEM;
        memcpy(buf, o->name, nl);
        buf[nl] = '=';
        if (sl_option_format(o, config, buf + nl + 1, cap) == 0) {
            *out = buf;
            return 0;
        }
        free(buf);
        if (cap > (64u << 20)) return SL_EINVAL;
        cap *= 4;
    }
}

/* The slot of an instance, made (with its option values) the first time. */
static int slot_of(sl_workers *w, sl_instance *inst, size_t *out) {
    for (size_t i = 0; i < w->nslots; i++)
        if (w->slots[i].inst == inst) return (int)(*out = i, 0);
    slot *ns = realloc(w->slots, (w->nslots + 1) * sizeof *ns);
    if (!ns) return SL_ENOMEM;
    w->slots = ns;
    slot *s = &ns[w->nslots];
    memset(s, 0, sizeof *s);
    s->inst = inst;
    size_t n = sl_options_count(inst->desc->options);
    s->kv = calloc(n ? n : 1, sizeof *s->kv);
    if (!s->kv) return SL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const sl_option *o = &inst->desc->options[i];
        if (o->type == SL_OPT_STRING || o->type == SL_OPT_PATH || o->type == SL_OPT_ENUM) {
            const char *v;
            memcpy(&v, (const char *)inst->config + o->offset, sizeof v);
            if (!v) continue; /* unset stays unset: the worker starts from the same defaults */
        }
        int rc = option_kv(o, inst->config, &s->kv[s->nkv]);
        if (rc) {
            for (size_t k = 0; k < s->nkv; k++) free(s->kv[k]);
            free(s->kv);
            return rc;
        }
        s->nkv++;
    }
    *out = w->nslots++;
    return 0;
}

/* --- the API --- */

/* One per core, as many as the memory budget holds. The memory limit is a
 * ceiling against runaways, not what a worker uses: only a limit below the
 * guess lowers the estimate. */
static int derive_count(const sl_workers_opts *o) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    uint64_t each =
        o->memory_limit && o->memory_limit < WORKER_MEMORY_GUESS ? o->memory_limit : WORKER_MEMORY_GUESS;
    uint64_t by_memory = o->memory_budget ? o->memory_budget / each : (uint64_t)cores;
    uint64_t n = by_memory < (uint64_t)cores ? by_memory : (uint64_t)cores;
    return n < 1 ? 1 : (int)n;
}

int sl_workers_new(sl_ctx *ctx, sl_loop *loop, const sl_workers_opts *opts, sl_workers **out) {
    *out = NULL;
    if (opts->count < 0) return sl_ctx_error(ctx, SL_EINVAL, "workers: count must be 0 or more");
    if (opts->seccomp && !sl_sandbox_seccomp_available())
        return sl_ctx_error(ctx, SL_EFATAL,
                            "workers: this sluice was built without libseccomp (worker_seccomp)");
    sl_workers *w = calloc(1, sizeof *w);
    if (!w) return sl_ctx_error(ctx, SL_ENOMEM, "out of memory");
    w->ctx = ctx;
    w->loop = loop;
    w->uv = sl_loop_uv(loop);
    w->opts = *opts;
    if (opts->exe) {
        snprintf(w->exe, sizeof w->exe, "%s", opts->exe);
    } else {
        /* the real path, not /proc/self/exe: `ps` and `pgrep sluice` show it */
        ssize_t n = readlink("/proc/self/exe", w->exe, sizeof w->exe - 1);
        if (n <= 0) {
            free(w);
            return sl_ctx_error(ctx, SL_EFATAL, "workers: cannot find the sluice executable: %s",
                                strerror(errno));
        }
        w->exe[n] = '\0';
    }
    w->opts.exe = w->exe;
    w->target = opts->count > 0 ? opts->count : derive_count(opts);
    uv_timer_init(w->uv, &w->keep);
    uv_timer_init(w->uv, &w->respawn);
    uv_timer_init(w->uv, &w->defer);
    w->keep.data = w->respawn.data = w->defer.data = w;
    w->open_handles = 3;
    uv_timer_start(&w->keep, on_keep, 3600 * 1000, 3600 * 1000);
    uv_unref((uv_handle_t *)&w->keep);
    uv_unref((uv_handle_t *)&w->respawn);
    uv_unref((uv_handle_t *)&w->defer);
    *out = w;
    for (int i = 0; i < w->target; i++) {
        int rc = worker_spawn(w);
        if (rc) {
            int code = sl_ctx_error(ctx, SL_EFATAL, "cannot start a worker process (%s __worker): %s", w->exe,
                                    uv_strerror(rc));
            sl_workers_free(w);
            *out = NULL;
            return code;
        }
    }
    return 0;
}

int sl_workers_submit(sl_workers *w, sl_instance *inst, sl_op_id op, sl_doc *doc, uint32_t page,
                      sl_worker_done done, void *arg) {
    if (!w || !inst || !doc || !done) return SL_EINVAL;
    const sl_plugin *d = inst->desc;
    const sl_op *o = sl_op_get(op);
    /* the operation table says what a worker may run; the plugin's role must
     * provide it, with its callback, and a worker must be allowed to run it */
    if (!o || !o->isolatable || o->role != d->role || sl_role_missing_callback(d) ||
        sl_role_executor_refusal(d, true) || (o->unit == SL_UNIT_PAGE && page == 0))
        return sl_ctx_error(w->ctx, SL_EINVAL, "[%s] plugin %s cannot run operation %s in a worker",
                            inst->name, d->name, o ? o->name : "(unknown)");
    size_t s;
    task *t = calloc(1, sizeof *t);
    if (!t || slot_of(w, inst, &s)) {
        free(t);
        return sl_ctx_error(w->ctx, SL_ENOMEM, "out of memory");
    }
    t->slot = s;
    t->inst = inst;
    t->op = op;
    t->doc = doc;
    t->page = page;
    t->done = done;
    t->arg = arg;
    t->timeout_ms = inst->stage.timeout_ms > 0 ? inst->stage.timeout_ms : w->opts.timeout_ms;
    w->pending++;
    keep_update(w);
    if (w->broken) {
        defer(w, t, SL_EFATAL, w->broken_msg);
        return 0;
    }
    if (w->qtail)
        w->qtail->next = t;
    else
        w->qhead = t;
    w->qtail = t;
    maintain(w);
    workers_dispatch(w);
    return 0;
}

int sl_workers_size(const sl_workers *w) { return w ? w->target : 0; }
int sl_workers_alive(const sl_workers *w) { return w ? w->alive : 0; }
uint64_t sl_workers_started(const sl_workers *w) { return w ? w->started : 0; }

static void on_timer_closed(uv_handle_t *h) {
    sl_workers *w = h->data;
    w->open_handles--;
}

void sl_workers_free(sl_workers *w) {
    if (!w) return;
    w->freeing = 1;
    /* queued and deferred operations are dropped, not run */
    for (task *t = w->qhead, *next; t; t = next) {
        next = t->next;
        free(t);
    }
    for (task *t = w->dhead, *next; t; t = next) {
        next = t->next;
        free(t->msg);
        free(t);
    }
    w->qhead = w->qtail = w->dhead = w->dtail = NULL;
    for (worker *k = w->workers; k; k = k->next) worker_stop(k);
    while (w->alive > 0) uv_run(w->uv, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&w->keep, on_timer_closed);
    uv_close((uv_handle_t *)&w->respawn, on_timer_closed);
    uv_close((uv_handle_t *)&w->defer, on_timer_closed);
    while (w->open_handles > 0) uv_run(w->uv, UV_RUN_ONCE);
    for (size_t i = 0; i < w->nslots; i++) {
        for (size_t k = 0; k < w->slots[i].nkv; k++) free(w->slots[i].kv[k]);
        free(w->slots[i].kv);
    }
    free(w->slots);
    free(w);
}
