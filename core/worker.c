/* worker.c - one worker process, as the core sees it (see workers.h for
 * what workers are, worker.h for how this file and workers.c share the
 * work). Loop thread only.
 *
 * A worker is `sluice __worker 3` started with uv_spawn (fork and exec at
 * once, inside libuv: a threaded process is never forked to keep running)
 * with one end of a socketpair as its descriptor 3 and its stdout joined to
 * our stderr, so a chatty plugin cannot corrupt a report on stdout. libuv
 * reaps it and tells us how it ended; a uv_poll on our end of the socket
 * reads its frames until the end of the stream. One timer per worker is
 * its call timeout while it works and its kill escalation while it ends.
 *
 * Its life is one state machine. set_state is the only way to change it:
 * it checks the change against `allowed` (SL_INVARIANT: a bad one is a bug
 * in sluice) and logs it at debug level (-vv) as "worker PID: a -> b (why)".
 *
 *   STARTING --HELLO--> READY --task--> LOADING --LOADED--> BUSY --RESULT--> READY
 *   READY --task, its instance already loaded there--> BUSY
 *   LOADING --LOADED, but the RUN could not be built--> READY
 *   LOADING --init failed--> RETIRING
 *   BUSY --RESULT, and it is spent or due for recycling (workers.c)--> RETIRING
 *   STARTING, READY --the executor is freed--> RETIRING
 *   any live --end of its socket--> HUNGUP
 *   any live --call timeout, broken protocol, freed mid-task--> KILLED
 *   RETIRING, HUNGUP, KILLED, any live --libuv reports its exit--> EXITED
 *   STARTING --spawn failed--> EXITED
 *
 * Live states (the first four) count toward the executor's target, and a
 * task is held exactly in LOADING and BUSY. Ending states go only to
 * EXITED: RETIRING and HUNGUP get a grace, then SIGTERM, then SIGKILL; a
 * broken protocol there only hastens that with SIGKILL. When to recycle it
 * and what its exit costs (the task's failure, restart backoff) is
 * workers.c's to decide.
 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "document.h"

/* How long a worker that was asked to end may take before SIGTERM, and
 * after it before SIGKILL. */
#define GRACE_MS 2000
#define TERM_GRACE_MS 1000

/* --- the state machine --- */

static const char *const state_names[W_NSTATES] = {"starting", "ready",  "loading", "busy",
                                                   "retiring", "hungup", "killed",  "exited"};

#define S(x) (1u << (x))
#define ENDS (S(W_RETIRING) | S(W_HUNGUP) | S(W_KILLED) | S(W_EXITED))
static const unsigned allowed[W_NSTATES] = {
    [W_STARTING] = S(W_READY) | ENDS,
    [W_READY] = S(W_LOADING) | S(W_BUSY) | ENDS,
    [W_LOADING] = S(W_BUSY) | S(W_READY) | ENDS,
    [W_BUSY] = S(W_READY) | ENDS,
    [W_RETIRING] = S(W_EXITED),
    [W_HUNGUP] = S(W_EXITED),
    [W_KILLED] = S(W_EXITED),
    [W_EXITED] = 0,
};

static bool is_live(wstate s) { return s == W_STARTING || s == W_READY || s == W_LOADING || s == W_BUSY; }

bool worker_live(const worker *k) { return is_live(k->state); }

static void set_state(worker *k, wstate to, const char *why) {
    SL_INVARIANT(allowed[k->state] & S(to));
    if (is_live(to)) SL_INVARIANT((k->cur != NULL) == (to == W_LOADING || to == W_BUSY));
    sl_ctx_log(k->w->ctx, SL_LOG_DEBUG, "workers", "worker %d: %s -> %s (%s)", k->pid, state_names[k->state],
               state_names[to], why);
    k->state = to;
    if (is_live(to)) k->life = to;
}

/* libuv stops the process handle before it reports the exit: from then on
 * the pid may be another process's, and nothing may signal it. */
static bool process_running(const worker *k) { return uv_is_active((const uv_handle_t *)&k->proc); }

/* The socket is watched from the spawn until its end is read (on_eof). */
static bool reading(const worker *k) { return uv_is_active((const uv_handle_t *)&k->poll); }

bool worker_idle(const worker *k) { return k->state == W_READY && process_running(k); }

/* --- handles --- */

static void drop_output(worker *k) {
    while (k->oq_head) {
        sl_frame_out *f = k->oq_head;
        k->oq_head = f->next;
        sl_frame_free(f);
    }
    k->oq_tail = NULL;
}

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
    drop_output(k);
    sl_reader_free(&k->rd);
    free(k->loaded);
    free(k);
}

static void close_handle(uv_handle_t *h) {
    if (!uv_is_closing(h)) uv_close(h, on_handle_closed);
}

/* --- sending --- */

static void on_poll(uv_poll_t *p, int status, int events);

static void set_poll(worker *k) {
    if (!reading(k)) return; /* its end was read: nothing more goes either way */
    uv_poll_start(&k->poll, UV_READABLE | (k->oq_head ? UV_WRITABLE : 0), on_poll);
}

static void flush(worker *k) {
    while (k->oq_head) {
        int rc = sl_frame_send(k->fd, k->oq_head);
        if (rc == 0) break;
        if (rc < 0) { /* the worker is gone: its exit will tell why */
            if (k->cur) k->cur->unsent = true;
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

/* --- ending --- */

static void on_timer(uv_timer_t *t);

static void start_timer(worker *k, wtimer next, uint64_t ms) {
    k->timer_next = next;
    uv_timer_start(&k->timer, on_timer, ms, 0);
}

/* An ending worker gets GRACE_MS to exit; then SIGTERM, TERM_GRACE_MS, and
 * SIGKILL. Once SIGTERM went, a new grace ends in SIGKILL. */
static void start_grace(worker *k) { start_timer(k, k->timer_next == T_KILL ? T_KILL : T_TERM, GRACE_MS); }

static void kill_process(worker *k, int sig) {
    if (process_running(k)) uv_process_kill(&k->proc, sig);
}

void worker_retire(worker *k, const char *why) {
    set_state(k, W_RETIRING, why);
    shutdown(k->fd, SHUT_WR);
    start_grace(k);
}

void worker_ready(worker *k) { set_state(k, W_READY, "answered"); }

/* Ends it at once. A live worker becomes KILLED; an ending one keeps its
 * state (its end is decided already: this only hastens it). */
static void kill_now(worker *k, const char *why) {
    if (worker_live(k)) set_state(k, W_KILLED, why);
    kill_process(k, SIGKILL);
}

void worker_stop(worker *k) {
    if (k->state == W_EXITED) return;
    uv_ref((uv_handle_t *)&k->proc);
    uv_ref((uv_handle_t *)&k->timer);
    if (k->cur)
        kill_now(k, "the executor is freed: nobody waits for its answer");
    else if (worker_live(k))
        worker_retire(k, "the executor is freed");
    else if (!uv_is_active((uv_handle_t *)&k->timer))
        start_grace(k);
}

static void drain(worker *k);

static void call_timed_out(worker *k) {
    drain(k); /* the answer may be waiting unread */
    task *c = k->cur;
    if (!c || !worker_live(k)) {
        workers_dispatch(k->w);
        return;
    }
    snprintf(k->reason, sizeof k->reason,
             "timed out after %" PRId64 " ms in plugin %s on %s%s (worker killed)", c->timeout_ms,
             c->inst->desc->name, sl_doc_uri(c->doc),
             k->state == W_LOADING ? " while the plugin started" : "");
    kill_now(k, "its call timed out");
}

static void on_timer(uv_timer_t *t) {
    worker *k = t->data;
    if (k->state == W_EXITED) return;
    switch (k->timer_next) {
    case T_CALL: call_timed_out(k); break;
    case T_TERM:
        kill_process(k, SIGTERM);
        start_timer(k, T_KILL, TERM_GRACE_MS);
        break;
    case T_KILL: kill_process(k, SIGKILL); break;
    }
}

static void on_process_exit(uv_process_t *proc, int64_t status, int sig) {
    worker *k = proc->data;
    k->w->alive--;
    drain(k); /* an answer written just before the end still counts */
    workers_exited(k, status, sig);
}

void worker_close(worker *k, const char *what) {
    k->cur = NULL;
    set_state(k, W_EXITED, what);
    uv_timer_stop(&k->timer);
    close_handle((uv_handle_t *)&k->timer);
    close_handle((uv_handle_t *)&k->poll);
    close_handle((uv_handle_t *)&k->proc);
}

/* --- receiving --- */

static void protocol_error(worker *k, const char *what) {
    task *c = k->cur;
    if (c)
        snprintf(k->reason, sizeof k->reason,
                 "worker broke the protocol (%s) in plugin %s on %s (worker killed)", what,
                 c->inst->desc->name, sl_doc_uri(c->doc));
    kill_now(k, "it broke the protocol");
}

static void on_hello(worker *k, sl_rbuf *r) {
    uint32_t pid = sl_rget_u32(r), version = sl_rget_u32(r);
    if (r->bad || (int)pid != k->pid || version != SL_WIRE_VERSION || k->life != W_STARTING) {
        protocol_error(k, "bad hello");
        return;
    }
    if (k->state != W_STARTING) return; /* ending already: a late hello changes nothing */
    workers_started(k->w);
    set_state(k, W_READY, "hello");
}

static int send_run(worker *k, task *t);

static void on_loaded(worker *k, sl_rbuf *r) {
    uint32_t s = sl_rget_u32(r);
    int32_t rc = sl_rget_i32(r);
    const char *msg = sl_rget_str(r, NULL);
    task *c = k->cur;
    if (r->bad || k->state != W_LOADING || !c || s != c->slot) {
        protocol_error(k, "unexpected LOADED");
        return;
    }
    uv_timer_stop(&k->timer);
    if (rc < 0) {
        char why[1400];
        snprintf(why, sizeof why, "%s (in a worker process)", msg && *msg ? msg : "init failed");
        k->cur = NULL;
        worker_retire(k, "its instance's init failed");
        workers_failed(k->w, c, SL_EFATAL, why);
        return;
    }
    k->loaded[s] = 1;
    if (send_run(k, c) < 0) {
        k->cur = NULL;
        set_state(k, W_READY, "the RUN could not be built");
        workers_failed(k->w, c, SL_ENOMEM, "out of memory while sending a document to a worker");
    }
}

static void on_result(worker *k, sl_rbuf *r) {
    const sl_workers_opts *o = &k->w->opts;
    task *c = k->cur;
    uint64_t seq = sl_rget_u64(r);
    int32_t rc = sl_rget_i32(r);
    int64_t retry_after = sl_rget_i64(r);
    uint8_t spent = sl_rget_u8(r);
    const char *msg = sl_rget_str(r, NULL);
    (void)retry_after;
    if (r->bad || k->state != W_BUSY || !c || seq != c->seq) {
        protocol_error(k, "unexpected RESULT");
        return;
    }
    uv_timer_stop(&k->timer);
    /* the worker normalised the plugin's answer (ops.c); one that did not is broken */
    if (rc > 0 || rc < SL_EINVAL) rc = SL_EBADINPUT;
    const char *plugin = c->inst->desc->name;
    char why[1400];
    snprintf(why, sizeof why, "%s", msg ? msg : "");
    if (rc >= 0) {
        uint8_t append = sl_rget_u8(r);
        char err[256] = "";
        int arc = r->bad ? SL_EINVAL : sl_wire_get_doc(r, c->doc, append, err, sizeof err);
        if (arc < 0) {
            rc = arc == SL_ENOMEM ? SL_ENOMEM : SL_EBADINPUT;
            snprintf(why, sizeof why, "results of plugin %s from a worker could not be applied: %s", plugin,
                     err[0] ? err : "malformed");
        }
    } else if (rc == SL_ENOMEM && o->memory_limit) {
        snprintf(why, sizeof why,
                 "out of memory (worker memory limit %" PRIu64 " MiB) in plugin %s on %s: %s",
                 o->memory_limit >> 20, plugin, sl_doc_uri(c->doc), msg && *msg ? msg : "no message");
    }
    k->cur = NULL;
    k->docs++;
    workers_answered(k, c, rc, why, spent);
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
    uv_poll_stop(&k->poll);
    drop_output(k);
    if (worker_live(k) && process_running(k)) {
        set_state(k, W_HUNGUP, "it closed its socket unasked"); /* its exit will say why */
        start_grace(k);
    }
}

/* Reads and handles every frame there is. */
static void drain(worker *k) {
    while (reading(k)) {
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
    workers_dispatch(k->w);
}

/* --- starting --- */

/* Frames the CONFIG message: log level, memory limit, seccomp. */
static void enc_config(sl_wbuf *b, const void *arg) {
    const sl_workers *w = arg;
    sl_wput_i32(b, sl_ctx_log_level(w->ctx));
    sl_wput_u64(b, w->opts.memory_limit);
    sl_wput_u8(b, w->opts.seccomp ? 1 : 0);
}

static int spawn_process(sl_workers *w, worker *k, int child_fd) {
    char *args[] = {w->exe, "__worker", "3", NULL};
    /* its stdout is our stderr: a plugin's printf never goes into a report */
    uv_stdio_container_t stdio[4] = {{.flags = UV_IGNORE},
                                     {.flags = UV_INHERIT_FD, .data.fd = 2},
                                     {.flags = UV_INHERIT_FD, .data.fd = 2},
                                     {.flags = UV_INHERIT_FD, .data.fd = child_fd}};
    uv_process_options_t po;
    memset(&po, 0, sizeof po);
    po.exit_cb = on_process_exit;
    po.file = w->exe;
    po.args = args;
    po.stdio_count = 4;
    po.stdio = stdio;
    k->proc.data = k;
    int rc = uv_spawn(w->uv, &k->proc, &po);
    /* initialised even when it failed: it must be closed */
    uv_unref((uv_handle_t *)&k->proc);
    k->handles++;
    w->open_handles++;
    return rc;
}

int worker_spawn(sl_workers *w) {
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
    k->state = k->life = W_STARTING;
    k->next = w->workers;
    w->workers = k;
    uv_timer_init(w->uv, &k->timer);
    k->timer.data = k;
    uv_unref((uv_handle_t *)&k->timer);
    k->handles++;
    w->open_handles++;
    /* the poll first: a worker we could not hear is never started */
    int rc = uv_poll_init(w->uv, &k->poll, k->fd);
    bool polled = rc == 0;
    if (polled) {
        k->poll.data = k;
        uv_unref((uv_handle_t *)&k->poll);
        k->handles++;
        w->open_handles++;
        rc = spawn_process(w, k, sv[1]);
    }
    close(sv[1]);
    if (rc) {
        sl_frame_free(cfg);
        set_state(k, W_EXITED, "it could not be started");
        close_handle((uv_handle_t *)&k->timer);
        if (polled) {
            close_handle((uv_handle_t *)&k->poll); /* closes the socket */
            close_handle((uv_handle_t *)&k->proc);
        } else {
            close(k->fd);
        }
        return rc;
    }
    k->pid = k->proc.pid;
    w->alive++;
    w->started++;
    sl_ctx_log(w->ctx, SL_LOG_DEBUG, "workers", "worker %d: started (%s)", k->pid, state_names[k->state]);
    uv_poll_start(&k->poll, UV_READABLE, on_poll);
    send_frame(k, cfg);
    return 0;
}

/* --- giving it work --- */

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

typedef struct run_enc {
    const task *t;
    uint8_t kind; /* sl_wire_data */
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

/* A copy of the document's bytes in a sealed memfd. */
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

static int send_run(worker *k, task *t) {
    sl_doc *d = t->doc;
    run_enc e;
    memset(&e, 0, sizeof e);
    e.t = t;
    /* the bytes sluice read go as a sealed memfd copy: the file itself may
     * change underneath, the copy cannot */
    e.kind = d->len == 0 ? SL_DATA_NONE : SL_DATA_FD;
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
    if (e.kind == SL_DATA_FD) {
        int fd = data_memfd(d);
        if (fd < 0) {
            sl_frame_free(f);
            return SL_ENOMEM;
        }
        sl_frame_attach_fd(f, fd);
    }
    send_frame(k, f);
    set_state(k, W_BUSY, "RUN sent");
    if (t->timeout_ms > 0) start_timer(k, T_CALL, (uint64_t)t->timeout_ms);
    return 0;
}

int worker_give(worker *k, task *t) {
    sl_workers *w = k->w;
    SL_INVARIANT(worker_idle(k));
    if (t->slot >= k->nloaded) {
        unsigned char *nl = realloc(k->loaded, w->nslots);
        if (!nl) return SL_ENOMEM;
        memset(nl + k->nloaded, 0, w->nslots - k->nloaded);
        k->loaded = nl;
        k->nloaded = w->nslots;
    }
    uint64_t now = sl_now_ns();
    k->cur = t;
    t->unsent = false;
    if (k->loaded[t->slot]) {
        if (send_run(k, t) < 0) {
            k->cur = NULL;
            return SL_ENOMEM;
        }
    } else {
        load_enc e = {(uint32_t)t->slot, &w->slots[t->slot]};
        sl_frame_out *f;
        if (sl_frame_build(SL_MSG_LOAD, enc_load, &e, &f)) {
            k->cur = NULL;
            return SL_ENOMEM;
        }
        send_frame(k, f);
        set_state(k, W_LOADING, "LOAD sent");
        if (t->timeout_ms > 0) start_timer(k, T_CALL, (uint64_t)t->timeout_ms);
    }
    t->t_start = now;
    return 0;
}
