/* workers.c - the isolated executor: worker processes fed over sockets (see
 * workers.h), and the worker's own side (sl_worker_main).
 *
 * The core's side runs on the loop thread only. Each worker is `sluice
 * __worker 3` started with uv_spawn (fork and exec at once, inside libuv: a
 * threaded process is never forked to keep running) with one end of a
 * socketpair as its descriptor 3 and its stdout joined to our stderr, so a
 * chatty plugin cannot corrupt a report on stdout. libuv reaps it and tells
 * us how it ended; a uv_poll on our end of the socket reads its frames.
 *
 * A worker's life: STARTING until its hello, then READY, LOADING (the
 * plugin's init, once per instance per worker) and BUSY (one operation at a
 * time), and CLOSING once we decided it ends (recycled, timed out, or its
 * socket closed) until libuv reports its exit. Whatever ends a worker, the
 * operation it held fails with the cause and a new worker takes its place;
 * workers that keep dying before finishing anything are restarted with a
 * growing delay, and three that die before even saying hello mark the
 * executor broken: every operation then fails with that reason, so a
 * missing executable or a plugin that crashes at load cannot fork-bomb.
 *
 * Handles are unreferenced, except one keep-alive timer that is referenced
 * while operations are queued or running: idle workers never keep a loop
 * from ending.
 *
 * The worker's side is a plain blocking loop: read a frame, do it, answer.
 * It rebuilds each instance from the option values it is sent (secrets
 * included: they travel over the socket only), caps its address space with
 * setrlimit after loading plugins, and, if asked, locks itself down with a
 * seccomp filter before the first document.
 */
#include "workers.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#ifdef SLUICE_HAVE_SECCOMP
#include <seccomp.h>
#endif

#include "document.h"
#include "registry.h"
#include "options.h"
#include "wire.h"

/* The memory a worker is assumed to need, for the derived worker count: a
 * sluice process with a parser loaded and a document in hand. */
#define WORKER_MEMORY_GUESS (64ull << 20)
/* How long a worker that was asked to end may take before SIGTERM, and
 * after it before SIGKILL. */
#define GRACE_MS 2000
#define TERM_GRACE_MS 1000
/* Deaths before hello in a row that mark the executor broken. */
#define MAX_START_FAILURES 3

/* --- the core's side --- */

typedef struct task task;
struct task {
    task *next;
    size_t slot;
    sl_instance *inst;
    sl_op_id op;
    uint64_t t_start; /* sl_now_ns() when handed to a worker; 0 until then */
    sl_doc *doc;
    uint32_t page;
    sl_worker_done done;
    void *arg;
    int64_t timeout_ms;
    uint64_t seq;
    int requeues; /* times it went back to the queue, its worker dead before it arrived */
    int rc;       /* deferred completions */
    char *msg;    /* deferred completions, malloc'd */
};

enum { W_STARTING, W_READY, W_LOADING, W_BUSY, W_CLOSING, W_EXITED };
enum { T_CALL, T_GRACE };

typedef struct worker worker;
struct worker {
    worker *next;
    sl_workers *w;
    int state;
    int pid;
    int fd;
    uv_process_t proc;
    uv_poll_t poll;
    uv_timer_t timer;
    int handles;   /* open libuv handles; the worker is freed when none are left */
    int poll_open; /* poll initialised (the fd is closed in its close callback) */
    int polling;
    int eof;
    int dead; /* libuv reported its exit */
    int hello;
    int retiring;
    int term_sent;
    int timer_why;
    task *cur;
    int cur_loading; /* cur waits for the plugin's init, not for its call */
    int lost_output; /* a frame for cur could not be written: the worker never saw it */
    uint64_t docs;
    unsigned char *loaded; /* per slot */
    size_t nloaded;
    sl_reader rd;
    sl_frame_out *oq_head, *oq_tail;
    char reason[768]; /* why we killed it, when we did */
};

typedef struct slot {
    sl_instance *inst;
    char **kv; /* "key=value" of every option, for LOAD */
    size_t nkv;
} slot;

struct sl_workers {
    sl_ctx *ctx;
    sl_loop *loop;
    uv_loop_t *uv;
    sl_workers_opts opts;
    char exe[PATH_MAX];
    int target;
    worker *workers;
    task *qhead, *qtail; /* waiting for a worker */
    task *dhead, *dtail; /* finished without a worker, waiting for the defer timer */
    size_t pending;      /* queued, running and deferred: keeps the loop alive */
    slot *slots;
    size_t nslots;
    uv_timer_t keep, respawn, defer;
    int respawn_on, defer_on;
    int open_handles;
    int streak;      /* workers in a row that died before finishing anything */
    int start_fails; /* workers in a row that died before hello */
    char last_start_fail[256];
    uint64_t next_spawn_ms;
    int broken;
    char broken_msg[PATH_MAX + 512];
    int alive;
    uint64_t started;
    int freeing;
    int dispatching, redispatch;
    uint64_t seq;
};

static void dispatch(sl_workers *w);
static void maintain(sl_workers *w);
static void drain(worker *k);

static void keep_update(sl_workers *w) {
    if (w->pending)
        uv_ref((uv_handle_t *)&w->keep);
    else
        uv_unref((uv_handle_t *)&w->keep);
}

static void on_keep(uv_timer_t *t) {}

static const char *plugin_of(const task *t) { return t->inst->desc->name; }

/* Runs the caller's callback and frees the task. */
static void finish(sl_workers *w, task *t, int rc, const char *msg) {
    w->pending--;
    if (!w->freeing) t->done(t->arg, rc, msg ? msg : "", t->t_start);
    free(t->msg);
    free(t);
    keep_update(w);
}

static void on_defer(uv_timer_t *timer) {
    sl_workers *w = timer->data;
    w->defer_on = 0;
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
    if (!w->defer_on) {
        w->defer_on = 1;
        uv_timer_start(&w->defer, on_defer, 0, 0);
    }
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

/* --- handles --- */

static void on_handle_closed(uv_handle_t *h) {
    worker *k = h->data;
    sl_workers *w = k->w;
    if (h == (uv_handle_t *)&k->poll) close(k->fd); /* only now: libuv no longer watches it */
    w->open_handles--;
    if (--k->handles > 0) return;
    for (worker **p = &w->workers; *p; p = &(*p)->next) {
        if (*p == k) {
            *p = k->next;
            break;
        }
    }
    while (k->oq_head) {
        sl_frame_out *f = k->oq_head;
        k->oq_head = f->next;
        sl_frame_free(f);
    }
    sl_reader_free(&k->rd);
    free(k->loaded);
    free(k);
}

static void close_handle(worker *k, uv_handle_t *h) {
    if (!uv_is_closing(h)) uv_close(h, on_handle_closed);
}

static void close_worker(worker *k) {
    uv_timer_stop(&k->timer);
    close_handle(k, (uv_handle_t *)&k->timer);
    if (k->poll_open) close_handle(k, (uv_handle_t *)&k->poll);
    close_handle(k, (uv_handle_t *)&k->proc);
}

/* --- sending --- */

static void on_poll(uv_poll_t *p, int status, int events);

static void set_poll(worker *k) {
    if (!k->poll_open || k->eof) return;
    int ev = UV_READABLE | (k->oq_head ? UV_WRITABLE : 0);
    uv_poll_start(&k->poll, ev, on_poll);
    k->polling = 1;
}

static void drop_output(worker *k) {
    while (k->oq_head) {
        sl_frame_out *f = k->oq_head;
        k->oq_head = f->next;
        sl_frame_free(f);
    }
    k->oq_tail = NULL;
}

static void flush(worker *k) {
    while (k->oq_head) {
        int rc = sl_frame_send(k->fd, k->oq_head);
        if (rc == 0) break;
        if (rc < 0) { /* the worker is gone: its exit will tell why */
            k->lost_output = 1;
            drop_output(k);
            break;
        }
        sl_frame_out *f = k->oq_head;
        k->oq_head = f->next;
        if (!k->oq_head) k->oq_tail = NULL;
        sl_frame_free(f);
    }
    set_poll(k);
}

static void send_frame(worker *k, sl_frame_out *f) {
    f->next = NULL;
    if (k->oq_tail)
        k->oq_tail->next = f;
    else
        k->oq_head = f;
    k->oq_tail = f;
    flush(k);
}

/* --- killing --- */

static void on_timer(uv_timer_t *t);

static void start_timer(worker *k, int why, uint64_t ms) {
    k->timer_why = why;
    uv_timer_start(&k->timer, on_timer, ms, 0);
}

static void kill_worker(worker *k, int sig) {
    if (!k->dead) uv_process_kill(&k->proc, sig);
}

/* We are done with this worker: it sees the end of its input, finishes its
 * instances and exits; one that does not is terminated after a grace. */
static void retire(worker *k) {
    k->state = W_CLOSING;
    k->retiring = 1;
    if (!k->eof) shutdown(k->fd, SHUT_WR);
    start_timer(k, T_GRACE, GRACE_MS);
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

static void on_timer(uv_timer_t *t) {
    worker *k = t->data;
    if (k->dead) return;
    if (k->timer_why == T_CALL) {
        drain(k); /* the answer may be waiting unread */
        task *c = k->cur;
        if (!c || k->state == W_CLOSING || k->dead) {
            dispatch(k->w);
            return;
        }
        snprintf(k->reason, sizeof k->reason,
                 "timed out after %" PRId64 " ms in plugin %s on %s%s (worker killed)", c->timeout_ms,
                 plugin_of(c), sl_doc_uri(c->doc), k->cur_loading ? " while the plugin started" : "");
        k->state = W_CLOSING;
        kill_worker(k, SIGKILL);
        return;
    }
    if (!k->term_sent) {
        k->term_sent = 1;
        kill_worker(k, SIGTERM);
        start_timer(k, T_GRACE, TERM_GRACE_MS);
    } else {
        kill_worker(k, SIGKILL);
    }
}

/* --- receiving --- */

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

static void protocol_error(worker *k, const char *what) {
    task *c = k->cur;
    if (c)
        snprintf(k->reason, sizeof k->reason,
                 "worker broke the protocol (%s) in plugin %s on %s (worker killed)", what, plugin_of(c),
                 sl_doc_uri(c->doc));
    k->state = W_CLOSING;
    kill_worker(k, SIGKILL);
}

static void on_hello(worker *k, sl_rbuf *r) {
    uint32_t pid = sl_rget_u32(r), version = sl_rget_u32(r);
    if (r->bad || (int)pid != k->pid || version != SL_WIRE_VERSION || k->hello) {
        protocol_error(k, "bad hello");
        return;
    }
    k->hello = 1;
    k->w->start_fails = 0;
    if (k->state == W_STARTING) k->state = W_READY;
}

static int send_run(worker *k);

static void on_loaded(worker *k, sl_rbuf *r) {
    sl_workers *w = k->w;
    uint32_t s = sl_rget_u32(r);
    int32_t rc = sl_rget_i32(r);
    const char *msg = sl_rget_str(r, NULL);
    task *c = k->cur;
    if (r->bad || k->state != W_LOADING || !c || s != c->slot) {
        protocol_error(k, "unexpected LOADED");
        return;
    }
    uv_timer_stop(&k->timer);
    k->cur_loading = 0;
    if (rc < 0) {
        char why[1400];
        snprintf(why, sizeof why, "%s (in a worker process)", msg && *msg ? msg : "init failed");
        k->cur = NULL;
        retire(k);
        maintain(w);
        finish(w, c, SL_EFATAL, why);
        return;
    }
    k->loaded[s] = 1;
    if (send_run(k) < 0) {
        k->cur = NULL;
        k->state = W_READY;
        finish(w, c, SL_ENOMEM, "out of memory while sending a document to a worker");
    }
}

static void on_result(worker *k, sl_rbuf *r) {
    sl_workers *w = k->w;
    task *c = k->cur;
    uint64_t seq = sl_rget_u64(r);
    int32_t rc = sl_rget_i32(r);
    int64_t retry_after = sl_rget_i64(r);
    uint8_t retire_me = sl_rget_u8(r);
    const char *msg = sl_rget_str(r, NULL);
    (void)retry_after;
    if (r->bad || k->state != W_BUSY || !c || seq != c->seq) {
        protocol_error(k, "unexpected RESULT");
        return;
    }
    uv_timer_stop(&k->timer);
    if (rc > 0 || rc < SL_EINVAL) rc = SL_EBADINPUT; /* the worker converts these; a broken one may not */
    char why[1400];
    snprintf(why, sizeof why, "%s", msg ? msg : "");
    if (rc >= 0) {
        uint8_t append = sl_rget_u8(r);
        char err[256] = "";
        int arc = r->bad ? SL_EINVAL : sl_wire_get_doc(r, c->doc, append, err, sizeof err);
        if (arc < 0) {
            rc = arc == SL_ENOMEM ? SL_ENOMEM : SL_EBADINPUT;
            snprintf(why, sizeof why, "results of plugin %s from a worker could not be applied: %s",
                     plugin_of(c), err[0] ? err : "malformed");
        }
    } else if (rc == SL_ENOMEM && w->opts.memory_limit) {
        snprintf(
            why, sizeof why, "out of memory (worker memory limit %" PRIu64 " MiB) in plugin %s on %s: %s",
            w->opts.memory_limit >> 20, plugin_of(c), sl_doc_uri(c->doc), msg && *msg ? msg : "no message");
    }
    k->cur = NULL;
    k->docs++;
    w->streak = 0;
    if (retire_me || (w->opts.max_documents && k->docs >= w->opts.max_documents) ||
        (w->opts.max_rss && rss_of(k->pid) > w->opts.max_rss))
        retire(k);
    else
        k->state = W_READY;
    maintain(w);
    finish(w, c, rc, why);
}

static void handle_frame(worker *k, sl_frame_in *f) {
    sl_rbuf r = {f->payload, f->len, 0, 0};
    switch (f->hdr.type) {
    case SL_MSG_HELLO: on_hello(k, &r); break;
    case SL_MSG_LOADED: on_loaded(k, &r); break;
    case SL_MSG_RESULT: on_result(k, &r); break;
    default: protocol_error(k, "unexpected frame"); break;
    }
}

static void on_eof(worker *k) {
    k->eof = 1;
    if (k->polling) uv_poll_stop(&k->poll);
    k->polling = 0;
    drop_output(k);
    if (k->state != W_CLOSING && !k->dead) {
        /* it closed its end without being asked: its exit will say why */
        k->state = W_CLOSING;
        start_timer(k, T_GRACE, GRACE_MS);
    }
}

/* Reads and handles every frame there is. */
static void drain(worker *k) {
    while (!k->eof) {
        int rc = sl_reader_fill(&k->rd, k->fd);
        if (rc == -EAGAIN || rc == -EWOULDBLOCK) break;
        sl_frame_in f;
        int n;
        while ((n = sl_reader_next(&k->rd, &f)) == 1) {
            handle_frame(k, &f);
            sl_frame_in_release(&f);
        }
        if (n < 0) {
            protocol_error(k, "malformed frame");
            on_eof(k);
            break;
        }
        if (rc <= 0) {
            on_eof(k);
            break;
        }
    }
}

static void on_poll(uv_poll_t *p, int status, int events) {
    worker *k = p->data;
    if (status < 0) {
        drain(k);
        on_eof(k);
    } else {
        if (events & UV_WRITABLE) flush(k);
        if (events & UV_READABLE) drain(k);
    }
    dispatch(k->w);
}

/* --- process lifecycle --- */

static void on_worker_exit(uv_process_t *proc, int64_t status, int sig) {
    worker *k = proc->data;
    sl_workers *w = k->w;
    w->alive--;
    k->dead = 1;
    drain(k); /* an answer written just before the end still counts */
    task *c = k->cur;
    int loading = c && k->cur_loading;
    k->cur = NULL;
    int planned = k->retiring || w->freeing;
    char what[256];
    describe_exit(what, sizeof what, status, sig, w->opts.seccomp);
    if (!planned) {
        if (!k->hello) {
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
    k->state = W_EXITED;
    close_worker(k);
    if (c && !w->freeing && k->lost_output && !k->reason[0] && c->requeues < 2) {
        /* it died between documents, before this one reached it: not its fault */
        c->requeues++;
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
        if (k->reason[0])
            snprintf(why, sizeof why, "%s", k->reason);
        else if (loading)
            snprintf(why, sizeof why, "[%s] %s while plugin %s started in a worker (init)", c->inst->name,
                     what, plugin_of(c));
        else
            snprintf(why, sizeof why, "%s in plugin %s on %s", what, plugin_of(c), sl_doc_uri(c->doc));
        maintain(w);
        finish(w, c, loading ? SL_EFATAL : SL_EBADINPUT, why);
    } else if (c) {
        finish(w, c, SL_EBADINPUT, "");
    } else {
        maintain(w);
    }
    dispatch(w);
}

/* Frames the CONFIG message: log level, memory limit, seccomp. */
static void enc_config(sl_wbuf *b, const void *arg) {
    const sl_workers *w = arg;
    sl_wput_i32(b, sl_ctx_log_level(w->ctx));
    sl_wput_u64(b, w->opts.memory_limit);
    sl_wput_u8(b, w->opts.seccomp ? 1 : 0);
}

static int spawn(sl_workers *w) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return uv_translate_sys_error(errno);
    worker *k = calloc(1, sizeof *k);
    sl_frame_out *cfg = NULL;
    if (!k || sl_reader_init(&k->rd) || sl_frame_build(SL_MSG_CONFIG, enc_config, w, &cfg)) {
        if (k) sl_reader_free(&k->rd);
        free(k);
        close(sv[0]);
        close(sv[1]);
        return UV_ENOMEM;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    k->w = w;
    k->fd = sv[0];
    k->state = W_STARTING;

    char *args[] = {w->exe, "__worker", "3", NULL};
    uv_stdio_container_t stdio[4];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD; /* a plugin's printf goes to stderr, never into a report */
    stdio[1].data.fd = 2;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    stdio[3].flags = UV_INHERIT_FD;
    stdio[3].data.fd = sv[1];
    uv_process_options_t po;
    memset(&po, 0, sizeof po);
    po.exit_cb = on_worker_exit;
    po.file = w->exe;
    po.args = args;
    po.stdio_count = 4;
    po.stdio = stdio;
    k->proc.data = k;
    int rc = uv_spawn(w->uv, &k->proc, &po);
    close(sv[1]);
    /* a failed spawn leaves an initialised handle that must be closed */
    k->handles = 1;
    w->open_handles++;
    k->next = w->workers;
    w->workers = k;
    uv_unref((uv_handle_t *)&k->proc);
    if (rc) {
        sl_frame_free(cfg);
        close(sv[0]);
        k->fd = -1;
        k->dead = 1;
        k->state = W_EXITED;
        close_handle(k, (uv_handle_t *)&k->proc);
        return rc;
    }
    k->pid = k->proc.pid;
    w->alive++;
    w->started++;
    uv_timer_init(w->uv, &k->timer);
    k->timer.data = k;
    uv_unref((uv_handle_t *)&k->timer);
    k->handles++;
    w->open_handles++;
    if (uv_poll_init(w->uv, &k->poll, k->fd) == 0) {
        k->poll.data = k;
        k->poll_open = 1;
        uv_unref((uv_handle_t *)&k->poll);
        k->handles++;
        w->open_handles++;
    } else {
        close(k->fd);
        k->eof = 1;
    }
    send_frame(k, cfg);
    return 0;
}

static int usable(const worker *k) { return k->state != W_CLOSING && k->state != W_EXITED; }

static void on_respawn(uv_timer_t *t) {
    sl_workers *w = t->data;
    w->respawn_on = 0;
    maintain(w);
    dispatch(w);
}

/* Starts workers up to the target, holding back while they keep dying. */
static void maintain(sl_workers *w) {
    if (w->freeing || w->broken) return;
    int n = 0;
    for (worker *k = w->workers; k; k = k->next) n += usable(k);
    while (n < w->target) {
        uint64_t now = uv_now(w->uv);
        if (w->streak > 0 && now < w->next_spawn_ms) {
            if (!w->respawn_on) {
                w->respawn_on = 1;
                uv_timer_start(&w->respawn, on_respawn, w->next_spawn_ms - now, 0);
            }
            return;
        }
        int rc = spawn(w);
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

/* --- work --- */

typedef struct load_enc {
    uint32_t slot;
    const slot *s;
} load_enc;

static void enc_load(sl_wbuf *b, const void *arg) {
    const load_enc *e = arg;
    sl_wput_u32(b, e->slot);
    sl_wput_str(b, e->s->inst->plugin->path);
    sl_wput_str(b, e->s->inst->name);
    sl_wput_u32(b, (uint32_t)e->s->nkv);
    for (size_t i = 0; i < e->s->nkv; i++) sl_wput_str(b, e->s->kv[i]);
}

enum { DATA_NONE = 0, DATA_PATH = 1, DATA_FD = 2 };

typedef struct run_enc {
    const task *t;
    uint8_t kind;
    sl_wire_sel sel;
} run_enc;

static void enc_run(sl_wbuf *b, const void *arg) {
    const run_enc *e = arg;
    const task *t = e->t;
    const sl_doc *d = t->doc;
    sl_wput_u64(b, t->seq);
    sl_wput_u32(b, (uint32_t)t->slot);
    sl_wput_u32(b, (uint32_t)t->op);
    sl_wput_u32(b, t->page);
    sl_wput_str(b, d->uri);
    sl_wput_str(b, d->path);
    sl_wput_str(b, d->media_type);
    sl_wput_str(b, d->hash);
    sl_wput_str(b, d->fingerprint);
    sl_wput_u64(b, d->run_id);
    sl_wput_u8(b, e->kind);
    sl_wput_u64(b, d->len);
    sl_wire_put_doc(b, d, &e->sel);
}

/* A copy of the bytes in a memfd, for documents that are not a mapped file. */
static int data_memfd(const sl_doc *d) {
    int fd = memfd_create("sluice-doc", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < d->len) {
        ssize_t n = write(fd, d->data + done, d->len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)n;
    }
    if (sl_memfd_seal(fd) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_run(worker *k) {
    task *t = k->cur;
    sl_doc *d = t->doc;
    run_enc e;
    memset(&e, 0, sizeof e);
    e.t = t;
    /* a mapped file is opened again by the worker (shared page cache, and
     * the worker checks the hash); anything else goes as a memfd copy */
    e.kind = d->len == 0 ? DATA_NONE : d->path && d->mapped == 1 ? DATA_PATH : DATA_FD;
    if (sl_op_get(t->op)->unit == SL_UNIT_PAGE) {
        e.sel.images = SL_IMAGES_PAGE;
        e.sel.page = t->page;
        e.sel.only_page = t->page;
    }
    t->seq = ++k->w->seq;
    sl_frame_out *f;
    pthread_mutex_lock(&d->lock);
    int rc = sl_frame_build(SL_MSG_RUN, enc_run, &e, &f);
    pthread_mutex_unlock(&d->lock);
    if (rc) return rc;
    if (e.kind == DATA_FD) {
        int fd = data_memfd(d);
        if (fd < 0) {
            sl_frame_free(f);
            return SL_ENOMEM;
        }
        sl_frame_attach_fd(f, fd);
    }
    send_frame(k, f);
    k->state = W_BUSY;
    if (t->timeout_ms > 0) start_timer(k, T_CALL, (uint64_t)t->timeout_ms);
    return 0;
}

static void start_task(worker *k, task *t) {
    sl_workers *w = k->w;
    k->cur = t;
    k->cur_loading = 0;
    k->lost_output = 0;
    if (t->slot >= k->nloaded) {
        unsigned char *nl = realloc(k->loaded, w->nslots);
        if (!nl) goto oom;
        memset(nl + k->nloaded, 0, w->nslots - k->nloaded);
        k->loaded = nl;
        k->nloaded = w->nslots;
    }
    if (!k->loaded[t->slot]) {
        load_enc e = {(uint32_t)t->slot, &w->slots[t->slot]};
        sl_frame_out *f;
        if (sl_frame_build(SL_MSG_LOAD, enc_load, &e, &f)) goto oom;
        send_frame(k, f);
        k->state = W_LOADING;
        k->cur_loading = 1;
        if (t->timeout_ms > 0) start_timer(k, T_CALL, (uint64_t)t->timeout_ms);
        t->t_start = sl_now_ns();
        return;
    }
    if (send_run(k) == 0) {
        t->t_start = sl_now_ns();
        return;
    }
oom:
    k->cur = NULL;
    k->state = W_READY;
    finish(w, t, SL_ENOMEM, "out of memory while sending a document to a worker");
}

static worker *idle_worker(sl_workers *w) {
    for (worker *k = w->workers; k; k = k->next)
        if (k->state == W_READY && !k->dead && !k->eof && !k->cur) return k;
    return NULL;
}

static void dispatch(sl_workers *w) {
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
            start_task(k, t);
        }
    } while (w->redispatch);
    w->dispatching = 0;
}

/* --- the API --- */

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
#ifndef SLUICE_HAVE_SECCOMP
    if (opts->seccomp)
        return sl_ctx_error(ctx, SL_EFATAL,
                            "workers: this sluice was built without libseccomp (worker_seccomp)");
#endif
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
        int rc = spawn(w);
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
    dispatch(w);
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
    for (worker *k = w->workers; k; k = k->next) {
        if (k->dead) continue;
        uv_ref((uv_handle_t *)&k->proc);
        uv_ref((uv_handle_t *)&k->timer);
        if (k->cur) { /* nobody waits for its answer */
            k->state = W_CLOSING;
            kill_worker(k, SIGKILL);
        } else if (k->state != W_CLOSING) {
            retire(k);
        } else if (!uv_is_active((uv_handle_t *)&k->timer)) {
            start_timer(k, T_GRACE, GRACE_MS);
        }
    }
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

/* --- the worker's side --- */

typedef struct wslot {
    sl_instance *inst;
    void *ts; /* thread state: a worker is one thread */
    int ts_made;
} wslot;

typedef struct wctx {
    int fd;
    sl_ctx *ctx;
    sl_registry *reg;
    sl_reader rd;
    wslot *slots;
    size_t nslots;
    uint64_t memory_limit;
    int seccomp, seccomp_on;
    uint64_t limit_at; /* RLIMIT_AS while a plugin runs */
    int base_dirty;    /* plugins were loaded since limit_at was measured */
} wctx;

/* Replies that must go out even when memory is exhausted use this. */
static unsigned char small_frame[4096];

static int wsend(wctx *c, sl_frame_out *f) {
    int rc = sl_frame_send(c->fd, f);
    sl_frame_free(f);
    return rc == 1 ? 0 : SL_EFATAL;
}

static uint64_t vm_size(void) {
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long size = 0;
    if (!f) return 0;
    if (fscanf(f, "%llu", &size) != 1) size = 0;
    fclose(f);
    return size * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* The limit counts from what the worker holds after loading its plugins:
 * libraries and models are not what runs away. (Relative also keeps it
 * meaningful under AddressSanitizer, whose shadow reserves terabytes.) It is
 * measured again only after a load, so a slow leak still reaches it. */
static void limit_memory(wctx *c) {
    struct rlimit rl;
    if (!c->memory_limit || getrlimit(RLIMIT_AS, &rl) != 0) return;
    if (c->base_dirty) {
        c->limit_at = vm_size() + c->memory_limit;
        c->base_dirty = 0;
    }
    uint64_t want = c->limit_at;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) want = rl.rlim_max;
    rl.rlim_cur = (rlim_t)want;
    setrlimit(RLIMIT_AS, &rl);
}

static void unlimit_memory(wctx *c) {
    struct rlimit rl;
    if (!c->memory_limit || getrlimit(RLIMIT_AS, &rl) != 0) return;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_AS, &rl);
}

#ifdef SLUICE_HAVE_SECCOMP
/* Denies new sockets and every way to write, create or remove files. Calls
 * on descriptors already open (the socket to sluice, stderr, what init
 * opened) stay allowed. openat2 and io_uring answer ENOSYS, so libraries
 * that try them fall back to calls the filter can inspect. */
static int install_seccomp(char *err, size_t errlen) {
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
    if (!f) return snprintf(err, errlen, "seccomp_init failed"), SL_EFATAL;
    static const int denied[] = {
        SCMP_SYS(socket),
        SCMP_SYS(socketpair),
        SCMP_SYS(connect),
        SCMP_SYS(bind),
        SCMP_SYS(listen),
        SCMP_SYS(accept),
        SCMP_SYS(accept4),
        SCMP_SYS(creat),
        SCMP_SYS(truncate),
        SCMP_SYS(unlink),
        SCMP_SYS(unlinkat),
        SCMP_SYS(rename),
        SCMP_SYS(renameat),
        SCMP_SYS(renameat2),
        SCMP_SYS(mkdir),
        SCMP_SYS(mkdirat),
        SCMP_SYS(rmdir),
        SCMP_SYS(link),
        SCMP_SYS(linkat),
        SCMP_SYS(symlink),
        SCMP_SYS(symlinkat),
        SCMP_SYS(chmod),
        SCMP_SYS(fchmodat),
        SCMP_SYS(chown),
        SCMP_SYS(lchown),
        SCMP_SYS(fchownat),
        SCMP_SYS(mknod),
        SCMP_SYS(mknodat),
        SCMP_SYS(open_by_handle_at),
    };
    static const int nosys[] = {SCMP_SYS(openat2), SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_enter),
                                SCMP_SYS(io_uring_register)};
    static const unsigned write_flags[] = {O_WRONLY, O_RDWR, O_CREAT, O_TRUNC};
    int rc = 0;
    for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++)
        rc = rc ? rc : seccomp_rule_add(f, SCMP_ACT_KILL_PROCESS, denied[i], 0);
    for (size_t i = 0; i < sizeof nosys / sizeof nosys[0]; i++)
        rc = rc ? rc : seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), nosys[i], 0);
    for (size_t i = 0; i < sizeof write_flags / sizeof write_flags[0]; i++) {
        scmp_datum_t fl = write_flags[i];
        rc = rc ? rc
                : seccomp_rule_add(f, SCMP_ACT_KILL_PROCESS, SCMP_SYS(open), 1,
                                   SCMP_A1(SCMP_CMP_MASKED_EQ, fl, fl));
        rc = rc ? rc
                : seccomp_rule_add(f, SCMP_ACT_KILL_PROCESS, SCMP_SYS(openat), 1,
                                   SCMP_A2(SCMP_CMP_MASKED_EQ, fl, fl));
    }
    if (rc == 0) rc = seccomp_load(f);
    seccomp_release(f);
    if (rc) return snprintf(err, errlen, "cannot load the seccomp filter: %s", strerror(-rc)), SL_EFATAL;
    return 0;
}
#endif

static void wsend_loaded(wctx *c, uint32_t s, int rc, const char *msg) {
    sl_frame_out f;
    unsigned char *p;
    sl_wbuf m = {NULL, 0, 0};
    sl_wput_u32(&m, s);
    sl_wput_i32(&m, rc);
    sl_wput_str(&m, msg);
    if (sl_frame_begin_static(&f, small_frame, sizeof small_frame, SL_MSG_LOADED, m.len, &p)) return;
    sl_wbuf b = {p, 0, m.len};
    sl_wput_u32(&b, s);
    sl_wput_i32(&b, rc);
    sl_wput_str(&b, msg);
    wsend(c, &f);
}

static int w_load(wctx *c, sl_rbuf *r) {
    uint32_t s = sl_rget_u32(r);
    const char *path = sl_rget_str(r, NULL), *name = sl_rget_str(r, NULL);
    uint32_t n = sl_rget_u32(r);
    if (r->bad || !path || !name || n > r->len) return SL_EINVAL;
    const char **kv = calloc(n ? n : 1, sizeof *kv);
    if (!kv) return SL_ENOMEM;
    for (uint32_t i = 0; i < n; i++) kv[i] = sl_rget_str(r, NULL);
    for (uint32_t i = 0; i < n; i++)
        if (!kv[i]) r->bad = 1;
    if (r->bad || s > 4096) {
        free(kv);
        return SL_EINVAL;
    }
    if (s >= c->nslots) {
        wslot *ns = realloc(c->slots, (s + 1) * sizeof *ns);
        if (!ns) {
            free(kv);
            return SL_ENOMEM;
        }
        memset(ns + c->nslots, 0, (s + 1 - c->nslots) * sizeof *ns);
        c->slots = ns;
        c->nslots = s + 1;
    }
    wslot *ws = &c->slots[s];
    unlimit_memory(c); /* loading is not the runaway the limit is for */
    c->base_dirty = 1;
    sl_ctx_clear_error(c->ctx);
    const sl_loaded *pl;
    sl_instance *inst = NULL;
    int rc = sl_registry_open(c->ctx, c->reg, path, &pl);
    if (rc == 0) rc = sl_instance_new_defaults(c->ctx, pl, name, kv, n, &inst);
    free(kv);
    if (rc == 0) rc = sl_instance_init(c->ctx, inst);
    if (rc == 0 && inst->desc->thread_init) {
        int trc = inst->desc->thread_init(inst->state, &ws->ts);
        if (trc)
            rc = sl_ctx_error(c->ctx, trc < 0 ? trc : SL_EFATAL, "[%s] thread_init failed (%s)", inst->name,
                              sl_strerror(trc < 0 ? trc : SL_EFATAL));
        else
            ws->ts_made = 1;
    }
    if (rc < 0) {
        sl_instance_free(inst);
        inst = NULL;
    }
    if (ws->inst) { /* loaded again: the newer one wins */
        if (ws->ts_made && ws->inst->desc->thread_fini) ws->inst->desc->thread_fini(ws->inst->state, ws->ts);
        sl_instance_free(ws->inst);
    }
    ws->inst = inst;
    if (!inst) ws->ts_made = 0;
    wsend_loaded(c, s, rc, rc < 0 ? sl_ctx_errmsg(c->ctx) : "");
    return 0;
}

typedef struct result_enc {
    uint64_t seq;
    int rc;
    int retire;
    const char *msg;
    const sl_doc *doc; /* NULL: no state (failed calls) */
    int append;
    sl_wire_sel sel;
} result_enc;

static void enc_result(sl_wbuf *b, const void *arg) {
    const result_enc *e = arg;
    sl_wput_u64(b, e->seq);
    sl_wput_i32(b, e->rc);
    sl_wput_i64(b, -1);
    sl_wput_u8(b, (uint8_t)e->retire);
    sl_wput_str(b, e->msg);
    if (!e->doc) return;
    sl_wput_u8(b, (uint8_t)e->append);
    sl_wire_put_doc(b, e->doc, &e->sel);
}

/* Sends a result without allocating (failed calls carry no state). */
static int wsend_small(wctx *c, const result_enc *e) {
    sl_frame_out f;
    unsigned char *p;
    sl_wbuf m = {NULL, 0, 0};
    enc_result(&m, e);
    if (sl_frame_begin_static(&f, small_frame, sizeof small_frame, SL_MSG_RESULT, m.len, &p))
        return SL_EFATAL;
    sl_wbuf b = {p, 0, m.len};
    enc_result(&b, e);
    return wsend(c, &f);
}

static int wsend_fail(wctx *c, uint64_t seq, int rc, const char *msg) {
    result_enc e = {seq, rc, 0, msg, NULL, 0, {0}};
    return wsend_small(c, &e);
}

/* Maps the document's bytes: its file (checked against the hash sluice
 * computed: the file may have changed since) or the memfd sent along. */
static int map_data(sl_doc *doc, uint8_t kind, uint64_t len, int fd, const char *hash, char *err,
                    size_t errlen) {
    if (kind == DATA_NONE || len == 0) {
        sl_doc_set_data(doc, "", 0);
        return 0;
    }
    int own = -1;
    if (kind == DATA_PATH) {
        if (!doc->path) return snprintf(err, errlen, "no path for the document's bytes"), SL_EINVAL;
        own = fd = open(doc->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) return snprintf(err, errlen, "worker cannot open it: %s", strerror(errno)), SL_EBADINPUT;
    }
    struct stat st;
    void *m = MAP_FAILED;
    if (fd >= 0 && (kind == DATA_PATH || sl_memfd_sealed(fd)) && fstat(fd, &st) == 0 &&
        (uint64_t)st.st_size == len)
        m = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (own >= 0) close(own);
    if (m == MAP_FAILED)
        return snprintf(err, errlen,
                        kind == DATA_PATH ? "the file changed since sluice read it (size differs)"
                                          : "the document's bytes did not arrive"),
               SL_EBADINPUT;
    doc->data = m;
    doc->len = (size_t)len;
    doc->mapped = 1;
    sl_hash128_hex(doc->data, doc->len, doc->hash);
    if (strcmp(doc->hash, hash) != 0)
        return snprintf(err, errlen, "the file changed since sluice read it (content differs)"), SL_EBADINPUT;
    return 0;
}

static int w_run(wctx *c, sl_rbuf *r, int data_fd) {
    uint64_t seq = sl_rget_u64(r);
    uint32_t s = sl_rget_u32(r), op = sl_rget_u32(r), page = sl_rget_u32(r);
    const char *uri = sl_rget_str(r, NULL), *path = sl_rget_str(r, NULL), *media = sl_rget_str(r, NULL);
    const char *hash = sl_rget_str(r, NULL), *fp = sl_rget_str(r, NULL);
    uint64_t run_id = sl_rget_u64(r);
    uint8_t kind = sl_rget_u8(r);
    uint64_t len = sl_rget_u64(r);
    if (r->bad || !uri || !media || !hash || !fp) return SL_EINVAL;
    if (s >= c->nslots || !c->slots[s].inst)
        return wsend_fail(c, seq, SL_EFATAL, "the instance is not loaded in this worker");
    wslot *ws = &c->slots[s];
    sl_instance *inst = ws->inst;
    char err[512];
#ifdef SLUICE_HAVE_SECCOMP
    if (c->seccomp && !c->seccomp_on) {
        if (install_seccomp(err, sizeof err)) return wsend_fail(c, seq, SL_EFATAL, err);
        c->seccomp_on = 1;
    }
#endif
    if (c->base_dirty) limit_memory(c); /* measured before this document is mapped */
    sl_doc *doc = sl_doc_new(uri, path);
    if (!doc) return wsend_fail(c, seq, SL_ENOMEM, "out of memory for the document");
    int rc = map_data(doc, kind, len, data_fd, hash, err, sizeof err);
    if (rc == 0) {
        sl_doc_set_media_type(doc, media);
        sl_doc_set_fingerprint(doc, fp);
        sl_doc_set_run_id(doc, run_id);
        rc = sl_wire_get_doc(r, doc, 0, err, sizeof err);
    }
    if (rc < 0) {
        sl_doc_free(doc);
        return wsend_fail(c, seq, rc == SL_EINVAL ? SL_EFATAL : rc, err);
    }
    result_enc e;
    memset(&e, 0, sizeof e);
    e.seq = seq;
    e.doc = doc;
    /* what the plugin adds is what travels back (see sl_wire_sel) */
    uint32_t nel = (uint32_t)doc->nelems, nch = (uint32_t)doc->nchunks, nrg = (uint32_t)doc->nregions;
    const unsigned char *px0 = NULL;
    uint64_t h0 = 0;
    uint32_t w0 = 0, hh0 = 0;
    if (op == SL_OP_PAGE && page >= 1 && page <= doc->nimages && doc->images[page - 1].pixels) {
        const sl_page_image *im = &doc->images[page - 1];
        px0 = im->pixels;
        h0 = XXH3_64bits(im->pixels, im->stride * im->height);
        w0 = im->width;
        hh0 = im->height;
    }

    limit_memory(c);
    sl_call call;
    sl_call_init(&call, inst, ws->ts);
    const sl_plugin *d = inst->desc;
    switch (op) {
    case SL_OP_PARSE: rc = d->parse ? d->parse(&call, doc) : SL_EINVAL; break;
    case SL_OP_PAGE: rc = d->page ? d->page(&call, doc, page) : SL_EINVAL; break;
    case SL_OP_CHUNK: rc = d->chunk ? d->chunk(&call, doc) : SL_EINVAL; break;
    default: rc = SL_EINVAL;
    }
    if (rc == SL_PENDING)
        rc = sl_fail(&call, SL_EFATAL, "a cpu plugin answered SL_PENDING (only io plugins may)");
    else if (rc > 0)
        rc = sl_fail(&call, SL_EFATAL, "plugin returned %d, not 0 or a negative SL_E* code", rc);
    e.rc = rc;
    e.msg = call.msg[0] || rc >= 0 ? call.msg : sl_strerror(rc);
    /* a plugin that hit the memory limit may have left the heap full:
     * this worker ends after answering */
    e.retire = rc == SL_ENOMEM && c->memory_limit;
    int status;
    if (rc < 0) {
        e.doc = NULL;
        status = wsend_small(c, &e);
    } else {
        if (op == SL_OP_PAGE) {
            e.append = 1;
            e.sel = (sl_wire_sel){SL_IMAGES_NONE, page, nel, nch, nrg, 0};
            const sl_page_image *im = page <= doc->nimages ? &doc->images[page - 1] : NULL;
            int same = im && px0 && im->pixels == px0 && im->width == w0 && im->height == hh0 &&
                       XXH3_64bits(im->pixels, im->stride * im->height) == h0;
            int none = (!im || !im->pixels) && !px0;
            if (!same && !none) e.sel.images = SL_IMAGES_PAGE;
        } else if (op == SL_OP_CHUNK) {
            e.sel = (sl_wire_sel){SL_IMAGES_ALL, 0, nel, 0, nrg, 0};
        } else {
            e.sel = (sl_wire_sel){SL_IMAGES_ALL, 0, 0, 0, 0, 0};
        }
        sl_frame_out *f;
        unlimit_memory(c); /* the answer must not fail for the plugin's limit */
        if (sl_frame_build(SL_MSG_RESULT, enc_result, &e, &f) == 0) {
            status = wsend(c, f);
        } else {
            e.rc = SL_ENOMEM;
            e.msg = "out of memory for the results in the worker";
            e.doc = NULL;
            status = wsend_small(c, &e);
        }
    }
    sl_doc_free(doc);
    if (e.retire) _exit(0); /* no fini, no leak report: the heap is the plugin's mess */
    return status;
}

static int w_config(wctx *c, sl_rbuf *r) {
    int32_t level = sl_rget_i32(r);
    uint64_t limit = sl_rget_u64(r);
    uint8_t sec = sl_rget_u8(r);
    if (r->bad) return SL_EINVAL;
    sl_ctx_set_log_level(c->ctx, level);
    c->memory_limit = limit;
    c->base_dirty = 1;
    c->seccomp = sec;
    return 0;
}

static int w_hello(wctx *c) {
    sl_frame_out f;
    unsigned char *p;
    if (sl_frame_begin_static(&f, small_frame, sizeof small_frame, SL_MSG_HELLO, 8, &p)) return SL_EFATAL;
    sl_wbuf b = {p, 0, 8};
    sl_wput_u32(&b, (uint32_t)getpid());
    sl_wput_u32(&b, SL_WIRE_VERSION);
    return wsend(c, &f);
}

/* The next frame, blocking: 1, 0 at the end of input, or an error. */
static int wnext(wctx *c, sl_frame_in *f) {
    for (;;) {
        int rc = sl_reader_next(&c->rd, f);
        if (rc != 0) return rc;
        rc = sl_reader_fill(&c->rd, c->fd);
        if (rc == 0) return 0;
        if (rc < 0) return SL_EFATAL;
    }
}

int sl_worker_main(int fd) {
    if (fd < 3 || fcntl(fd, F_GETFD) < 0) {
        fprintf(stderr, "sluice __worker: descriptor %d is not open (this command is for sluice itself)\n",
                fd);
        return 2;
    }
    /* die with sluice, leave ^C to it, and hold nothing it did not mean to give */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    if (fd > 3) close_range(3, (unsigned)fd - 1, 0);
    close_range((unsigned)fd + 1, ~0u, 0);
    fcntl(fd, F_SETFD, FD_CLOEXEC);

    wctx c;
    memset(&c, 0, sizeof c);
    c.fd = fd;
    c.ctx = sl_ctx_new();
    sl_ctx *old = sl_ctx_global();
    if (!c.ctx || sl_registry_new(c.ctx, &c.reg) || sl_reader_init(&c.rd)) {
        fprintf(stderr, "sluice __worker: out of memory\n");
        return 1;
    }
    sl_ctx_set_global(c.ctx);
    int status = w_hello(&c) ? 1 : 0;
    while (status == 0) {
        sl_frame_in f;
        int rc = wnext(&c, &f);
        if (rc == 0) break;
        if (rc < 0) {
            status = 1;
            break;
        }
        sl_rbuf r = {f.payload, f.len, 0, 0};
        switch (f.hdr.type) {
        case SL_MSG_CONFIG: rc = w_config(&c, &r); break;
        case SL_MSG_LOAD: rc = w_load(&c, &r); break;
        case SL_MSG_RUN: rc = w_run(&c, &r, f.data_fd); break;
        default: rc = SL_EINVAL;
        }
        sl_frame_in_release(&f);
        if (rc < 0) {
            sl_ctx_log(c.ctx, SL_LOG_ERROR, "worker", "malformed request from sluice (%s)", sl_strerror(rc));
            status = 1;
        }
    }
    unlimit_memory(&c);
    for (size_t i = 0; i < c.nslots; i++) {
        wslot *ws = &c.slots[i];
        if (!ws->inst) continue;
        if (ws->ts_made && ws->inst->desc->thread_fini) ws->inst->desc->thread_fini(ws->inst->state, ws->ts);
        sl_instance_free(ws->inst);
    }
    free(c.slots);
    sl_reader_free(&c.rd);
    sl_registry_free(c.reg);
    sl_ctx_set_global(old);
    sl_ctx_free(c.ctx);
    return status;
}
