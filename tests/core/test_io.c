/* test_io.c - the io services plugins wait with (sluice/io.h): socket
 * watches report readiness and errors, change events, pause, and stop from
 * inside their own callback so the descriptor can be closed at once; a
 * stopped watch with an event already pending never calls back; timers fire
 * once, in deadline order, and a stopped one never fires. When everything is
 * done the loop has nothing referenced left, and freeing it leaks nothing. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "instance.h"
#include "loop.h"
#include "sluice/io.h"

static sl_instance *make_instance(void) {
    sl_instance *inst = calloc(1, sizeof *inst);
    inst->ctx = sl_ctx_new();
    inst->name = "io";
    CHECK_INT(sl_loop_new(&inst->loop), 0);
    return inst;
}

static void free_instance(sl_instance *inst) {
    sl_loop_free(inst->loop);
    sl_ctx_free(inst->ctx);
    free(inst);
}

static uv_loop_t *uv(sl_instance *inst) { return sl_loop_uv(inst->loop); }

/* --- watches --- */

typedef struct pair_state {
    int fds[2];
    int calls, readable, writable, bad_status;
    int closed;
    char got;
} pair_state;

/* Step 1: readable, read the byte, switch to writable. Step 2: writable:
 * stop inside the callback and close the descriptor right away. */
static void on_pair(sl_watch *w, int status, int events, void *arg) {
    pair_state *s = arg;
    s->calls++;
    if (status != 0) s->bad_status++;
    if (s->calls == 1) {
        if (events & SL_READABLE) s->readable++;
        if (read(s->fds[0], &s->got, 1) != 1) s->bad_status++;
        CHECK_INT(sl_watch_update(w, SL_WRITABLE), 0);
    } else {
        if (events & SL_WRITABLE) s->writable++;
        sl_watch_stop(w);
        /* more data for a descriptor nobody watches any more */
        if (write(s->fds[1], "y", 1) != 1) s->bad_status++;
        close(s->fds[0]);
        s->closed = 1;
    }
}

static void test_watch_reads_switches_to_write_and_stops_in_callback(void) {
    sl_instance *inst = make_instance();
    pair_state s = {0};
    CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, s.fds), 0);
    sl_watch *w = NULL;
    CHECK_INT(sl_watch_start(inst, s.fds[0], SL_READABLE, on_pair, &s, &w), 0);
    CHECK(w != NULL);
    CHECK_INT(write(s.fds[1], "x", 1), 1);
    uv_run(uv(inst), UV_RUN_DEFAULT); /* returns: the stopped watch holds nothing */
    CHECK_INT(s.calls, 2);
    CHECK_INT(s.readable, 1);
    CHECK_INT(s.writable, 1);
    CHECK_INT(s.bad_status, 0);
    CHECK_INT(s.got, 'x');
    CHECK(s.closed);
    CHECK(!uv_loop_alive(uv(inst)));
    close(s.fds[1]);
    free_instance(inst);
}

static void count_call(sl_watch *w, int status, int events, void *arg) {
    (*(int *)arg)++;
    sl_watch_stop(w);
}

static void test_paused_watch_waits_until_resumed(void) {
    sl_instance *inst = make_instance();
    int fds[2], calls = 0;
    CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    CHECK_INT(write(fds[1], "x", 1), 1);
    sl_watch *w = NULL;
    CHECK_INT(sl_watch_start(inst, fds[0], SL_READABLE, count_call, &calls, &w), 0);
    CHECK_INT(sl_watch_update(w, 0), 0);
    /* readable, but paused: nothing to run, nothing holds the loop */
    CHECK_INT(uv_run(uv(inst), UV_RUN_NOWAIT), 0);
    CHECK_INT(calls, 0);
    CHECK_INT(sl_watch_update(w, SL_READABLE), 0);
    uv_run(uv(inst), UV_RUN_DEFAULT);
    CHECK_INT(calls, 1);
    close(fds[0]);
    close(fds[1]);
    free_instance(inst);
}

/* Two ready watches: whichever runs first stops (and closes) the other,
 * whose event is then already pending in the same loop iteration. */
typedef struct duel {
    int fds[2][2];
    sl_watch *w[2];
    int stopped[2];
    int calls;
} duel;

static void on_duel(sl_watch *w, int status, int events, void *arg) {
    duel *d = arg;
    d->calls++;
    for (int i = 0; i < 2; i++) {
        if (d->stopped[i]) continue;
        sl_watch_stop(d->w[i]);
        close(d->fds[i][0]);
        d->stopped[i] = 1;
    }
}

static void test_stopped_watch_with_pending_event_never_calls_back(void) {
    sl_instance *inst = make_instance();
    duel d = {0};
    for (int i = 0; i < 2; i++) {
        CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, d.fds[i]), 0);
        CHECK_INT(write(d.fds[i][1], "x", 1), 1);
        CHECK_INT(sl_watch_start(inst, d.fds[i][0], SL_READABLE, on_duel, &d, &d.w[i]), 0);
    }
    uv_run(uv(inst), UV_RUN_DEFAULT);
    CHECK_INT(d.calls, 1);
    CHECK(d.stopped[0] && d.stopped[1]);
    for (int i = 0; i < 2; i++) close(d.fds[i][1]);
    free_instance(inst);
}

typedef struct err_state {
    int calls, status;
} err_state;

static void on_err(sl_watch *w, int status, int events, void *arg) {
    err_state *e = arg;
    e->calls++;
    e->status = status;
    sl_watch_stop(w);
}

/* A UDP datagram to a port nobody listens on comes back as ICMP "port
 * unreachable": the socket then has an error, which the watch reports. */
static void test_watch_reports_socket_error(void) {
    sl_instance *inst = make_instance();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int probe = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK_INT(bind(probe, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_INT(getsockname(probe, (struct sockaddr *)&a, &alen), 0);
    close(probe); /* the port is now closed */
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    CHECK_INT(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_INT(send(fd, "x", 1, 0), 1);
    err_state e = {0};
    sl_watch *w = NULL;
    CHECK_INT(sl_watch_start(inst, fd, SL_READABLE, on_err, &e, &w), 0);
    uv_run(uv(inst), UV_RUN_DEFAULT);
    CHECK_INT(e.calls, 1);
    CHECK(e.status < 0);
    close(fd);
    free_instance(inst);
}

static void never(sl_watch *w, int status, int events, void *arg) { (*(int *)arg)++; }

static void test_watch_refuses_bad_arguments(void) {
    sl_instance *inst = make_instance();
    int fds[2], calls = 0;
    CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    sl_watch *w = (sl_watch *)&calls, *w2 = NULL;
    sl_instance no_loop = {0};
    CHECK_INT(sl_watch_start(&no_loop, fds[0], SL_READABLE, never, &calls, &w), SL_EINVAL);
    CHECK(w == NULL);
    CHECK_INT(sl_watch_start(inst, -1, SL_READABLE, never, &calls, &w), SL_EINVAL);
    CHECK_INT(sl_watch_start(inst, fds[0], 8, never, &calls, &w), SL_EINVAL);
    CHECK_INT(sl_watch_start(inst, fds[0], SL_READABLE, NULL, &calls, &w), SL_EINVAL);
    CHECK_INT(sl_watch_start(inst, fds[0], SL_WRITABLE, never, &calls, &w), 0);
    CHECK_INT(sl_watch_update(w, 0), 0);
    CHECK_INT(sl_watch_update(w, SL_READABLE), 0);
    /* one active watch per descriptor */
    CHECK_INT(sl_watch_start(inst, fds[0], SL_READABLE, never, &calls, &w2), SL_EINVAL);
    CHECK(w2 == NULL);
    CHECK_INT(sl_watch_update(w, 8), SL_EINVAL);
    sl_watch_stop(w);
    sl_watch_stop(NULL);
    uv_run(uv(inst), UV_RUN_DEFAULT);
    CHECK_INT(calls, 0);
    close(fds[0]);
    close(fds[1]);
    free_instance(inst);
}

/* --- timers --- */

typedef struct fired {
    int order[8];
    int n;
} fired;

typedef struct tick {
    fired *f;
    int id;
    sl_timer *self;
} tick;

static void on_tick(void *arg) {
    tick *t = arg;
    t->f->order[t->f->n++] = t->id;
    /* stopping a timer from its own callback is harmless */
    if (t->self) sl_timer_stop(t->self);
}

static void test_timers_fire_in_deadline_order_and_stop_cancels(void) {
    sl_instance *inst = make_instance();
    fired f = {0};
    tick t30 = {&f, 30, NULL}, t10 = {&f, 10, NULL}, t20 = {&f, 20, NULL}, t0 = {&f, 0, NULL},
         tx = {&f, 99, NULL};
    sl_timer *stop_me = NULL;
    CHECK_INT(sl_timer_start(inst, 30, on_tick, &t30, NULL), 0);
    CHECK_INT(sl_timer_start(inst, 10, on_tick, &t10, &t10.self), 0);
    CHECK_INT(sl_timer_start(inst, 20, on_tick, &t20, NULL), 0);
    CHECK_INT(sl_timer_start(inst, 15, on_tick, &tx, &stop_me), 0);
    CHECK_INT(sl_timer_start(inst, 0, on_tick, &t0, NULL), 0);
    CHECK(stop_me != NULL);
    sl_timer_stop(stop_me);
    uv_run(uv(inst), UV_RUN_DEFAULT);
    CHECK_INT(f.n, 4);
    CHECK_INT(f.order[0], 0);
    CHECK_INT(f.order[1], 10);
    CHECK_INT(f.order[2], 20);
    CHECK_INT(f.order[3], 30);
    CHECK(!uv_loop_alive(uv(inst)));
    free_instance(inst);
}

typedef struct chain {
    sl_instance *inst;
    int left, fired;
} chain;

static void on_chain(void *arg) {
    chain *c = arg;
    c->fired++;
    if (--c->left > 0) CHECK_INT(sl_timer_start(c->inst, 1, on_chain, c, NULL), 0);
}

static void test_timer_callback_can_start_the_next_timer(void) {
    sl_instance *inst = make_instance();
    chain c = {inst, 5, 0};
    CHECK_INT(sl_timer_start(inst, 1, on_chain, &c, NULL), 0);
    uv_run(uv(inst), UV_RUN_DEFAULT);
    CHECK_INT(c.fired, 5);
    free_instance(inst);
}

static void test_timer_needs_a_loop(void) {
    sl_instance no_loop = {0};
    sl_timer *t = (sl_timer *)&no_loop;
    CHECK_INT(sl_timer_start(&no_loop, 1, on_chain, NULL, &t), SL_EINVAL);
    CHECK(t == NULL);
    sl_timer_stop(NULL);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    test_watch_reads_switches_to_write_and_stops_in_callback();
    test_paused_watch_waits_until_resumed();
    test_stopped_watch_with_pending_event_never_calls_back();
    test_watch_reports_socket_error();
    test_watch_refuses_bad_arguments();
    test_timers_fire_in_deadline_order_and_stop_cancels();
    test_timer_callback_can_start_the_next_timer();
    test_timer_needs_a_loop();
    return check_done();
}
