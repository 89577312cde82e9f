/* guard.c - what each thread is calling: crash reports and watchdogs (see guard.h).
 *
 * Each thread that calls plugins has a slot, made on its first call and
 * listed for the watchdog thread. The slot holds the current call: the
 * thread itself reads it in a signal handler (no lock: a handler runs on the
 * thread it interrupts), and the watchdog reads it under the slot's mutex,
 * which the thread also holds while it enters or leaves a call, so the
 * strings it points at (the document's URI) live while they are read.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* on_exit */
#endif
#include "guard.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctx.h"
#include "instance.h"
#include "loop.h"
#include "report.h"

typedef struct slot {
    pthread_mutex_t lock;
    sl_guard_call *cur; /* the innermost call, or NULL */
    uint64_t seq;       /* calls entered: the watchdog logs each call once */
    uint64_t logged;    /* seq of the call last logged */
    uint64_t paused;    /* ns the process did not run during call `paused_seq` */
    uint64_t paused_seq;
    int is_loop;
    struct slot *next;
} slot;

static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static slot *slots;
static pthread_key_t slot_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static _Thread_local slot *my_slot;
static _Thread_local void *alt_stack;

static void slot_gone(void *arg) {
    slot *s = arg;
    pthread_mutex_lock(&slots_lock);
    for (slot **p = &slots; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    pthread_mutex_unlock(&slots_lock);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static void make_key(void) { pthread_key_create(&slot_key, slot_gone); }

static slot *my(void) {
    if (my_slot) return my_slot;
    pthread_once(&key_once, make_key);
    slot *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_lock(&slots_lock);
    s->next = slots;
    slots = s;
    pthread_mutex_unlock(&slots_lock);
    pthread_setspecific(slot_key, s);
    my_slot = s;
    return s;
}

void sl_guard_enter(sl_guard_call *c) {
    slot *s = my();
    c->t_start = sl_now_ns();
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    c->outer = s->cur;
    s->cur = c;
    s->seq++;
    pthread_mutex_unlock(&s->lock);
}

void sl_guard_enter_callback(sl_guard_call *c, const struct sl_instance *inst, const char *what) {
    memset(c, 0, sizeof *c);
    const sl_plugin *d = inst ? inst->desc : NULL; /* a unit test's bare instance has none */
    c->inst = inst && inst->name ? inst->name : "?";
    c->plugin = d ? d->name : "?";
    c->op = what;
    c->bottleneck = d ? (int)d->bottleneck : SL_IO;
    sl_guard_enter(c);
}

void sl_guard_leave(sl_guard_call *c) {
    slot *s = my_slot;
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    if (s->cur == c) s->cur = c->outer;
    pthread_mutex_unlock(&s->lock);
}

void sl_guard_set_loop_thread(void) {
    slot *s = my();
    if (s) s->is_loop = 1;
}

/* --- the crash handler: async-signal-safe from here to the end of crashed() --- */

static const struct sl_report *volatile watched_report;
static const char *command_name = "run";

void sl_guard_set_report(const struct sl_report *rep) { watched_report = rep; }

static void put(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static void put_u(uint64_t v) {
    char b[24];
    size_t i = sizeof b;
    b[--i] = '\0';
    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i);
    put(b + i);
}

static void put_i(int v) {
    if (v < 0) {
        put("-");
        put_u((uint64_t)(-(int64_t)v));
    } else {
        put_u((uint64_t)v);
    }
}

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGSEGV: return "SIGSEGV (invalid memory access)";
    case SIGBUS: return "SIGBUS (bus error)";
    case SIGFPE: return "SIGFPE (arithmetic error)";
    case SIGILL: return "SIGILL (illegal instruction)";
    case SIGABRT: return "SIGABRT (abort)";
    }
    return "a fatal signal";
}

/* What happened (already written), then where, what the run had done, and what to do. */
static void crashed(const sl_guard_call *c) {
    if (c) {
        put(" in plugin ");
        put(c->plugin ? c->plugin : "?");
        put(" (stage [");
        put(c->inst ? c->inst : "?");
        put("]");
        if (c->op) {
            put(", ");
            put(c->op);
        }
        put(")");
        if (c->doc) {
            put(" on document ");
            put(c->doc);
        }
        put("\n");
    } else {
        put(" outside any plugin call: a bug in sluice, please report it\n");
    }
    const struct sl_report *r = watched_report;
    if (r) {
        put("sluice: so far: ");
        put_u(r->stored);
        put(" stored, ");
        put_u(r->skipped);
        put(" skipped, ");
        put_u(r->failed);
        put(" failed\n");
    }
    if (r || strcmp(command_name, "run") == 0)
        put("sluice: the store is whole (each document is stored all or nothing): run the same command "
            "again to resume\n");
    if (!c) return;
    if (c->bottleneck == SL_IO) {
        put("sluice: ");
        put(c->plugin ? c->plugin : "it");
        put(" is an io plugin: its executor, the loop thread, cannot isolate it (isolated = true is for "
            "cpu plugins); the plugin must be fixed\n");
    } else if (c->bottleneck == SL_GPU) {
        put("sluice: ");
        put(c->plugin ? c->plugin : "it");
        put(" is a gpu plugin: its batcher thread cannot isolate it; the plugin must be fixed\n");
    } else {
        put("sluice: to keep a crash to one document, run the stage in worker processes: --set ");
        put(c->inst ? c->inst : "STAGE");
        put(".isolated=true\n");
    }
}

static void on_fatal(int sig, siginfo_t *si, void *uctx) {
    (void)si;
    (void)uctx;
    slot *s = my_slot;
    const sl_guard_call *c = s ? s->cur : NULL;
    put("\nsluice: crashed: ");
    put(signal_name(sig));
    crashed(c);
    if (!c) {
        /* a bug of ours: the default action, with its core dump */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    put("sluice: exit status ");
    put_i(SL_EXIT_CRASH);
    put(" (a plugin crashed)\n");
    _exit(SL_EXIT_CRASH);
}

static void on_exit_handler(int status, void *arg) {
    (void)arg;
    slot *s = my_slot;
    const sl_guard_call *c = s ? s->cur : NULL;
    if (!c) return; /* sluice's own exit */
    put("\nsluice: crashed: exit(");
    put_i(status);
    put(") called");
    crashed(c);
    put("sluice: exit status ");
    put_i(SL_EXIT_CRASH);
    put(" (a plugin called exit)\n");
    _exit(SL_EXIT_CRASH);
}

void sl_guard_thread_begin(void) {
    if (alt_stack) return;
    size_t size = 64 * 1024;
    if (size < (size_t)SIGSTKSZ) size = (size_t)SIGSTKSZ;
    void *mem = malloc(size);
    if (!mem) return;
    stack_t ss = {.ss_sp = mem, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        free(mem);
        return;
    }
    alt_stack = mem;
}

void sl_guard_thread_end(void) {
    if (!alt_stack) return;
    stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    free(alt_stack);
    alt_stack = NULL;
}

void sl_guard_install(const char *command) {
    command_name = command ? command : "run";
    sl_guard_thread_begin();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fatal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &sa, NULL);
    on_exit(on_exit_handler, NULL);
}

/* --- the watchdog thread --- */

static pthread_t dog;
static pthread_mutex_t dog_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dog_cond = PTHREAD_COND_INITIALIZER;
static int dog_running, dog_stop;
static uint64_t dog_loop_ms, dog_slow_ms;
static uint64_t dog_since; /* sl_now_ns() at sl_guard_start: the first tick's gap counts from there */

static void look(slot *s, uint64_t now) {
    pthread_mutex_lock(&s->lock);
    const sl_guard_call *c = s->cur;
    uint64_t limit = s->is_loop ? dog_loop_ms : dog_slow_ms;
    /* the time the call ran, less the time nobody ran (see watchdog) */
    uint64_t ran = c && now > c->t_start ? now - c->t_start : 0;
    if (c && s->paused_seq == s->seq) ran = ran > s->paused ? ran - s->paused : 0;
    if (c && limit && s->logged != s->seq && ran / 1000000u >= limit) {
        s->logged = s->seq;
        uint64_t ms = ran / 1000000u;
        if (s->is_loop)
            sl_ctx_log(sl_ctx_global(), SL_LOG_WARN, c->inst,
                       "plugin %s has blocked the loop thread for %llu ms in %s%s%s: every io request waits "
                       "meanwhile (an io plugin must not block: use the SDK's asynchronous services)",
                       c->plugin, (unsigned long long)ms, c->op ? c->op : "a call", c->doc ? " on " : "",
                       c->doc ? c->doc : "");
        else
            sl_ctx_log(sl_ctx_global(), SL_LOG_WARN, c->inst,
                       "plugin %s has been running %llu ms in %s%s%s ([sluice] slow_call = %llu ms)",
                       c->plugin, (unsigned long long)ms, c->op ? c->op : "a call", c->doc ? " on " : "",
                       c->doc ? c->doc : "", (unsigned long long)dog_slow_ms);
    }
    pthread_mutex_unlock(&s->lock);
}

/* The watchdog ticks every TICK_MS. A tick later than PAUSE_MS means the
 * process did not run meanwhile: stopped (SIGSTOP, ^Z), its VM stalled, or
 * the machine too loaded to schedule it. A call in flight across such a gap
 * is not the one to blame for it: the gap is taken off its time, so a node
 * continued after a stop does not log "blocked the loop thread" for the
 * store call it happened to be in. */
#define TICK_MS 20
#define PAUSE_MS 250

static void credit_pause(uint64_t gap) {
    for (slot *s = slots; s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        if (s->cur) {
            if (s->paused_seq != s->seq) s->paused = 0;
            s->paused_seq = s->seq;
            s->paused += gap;
        }
        pthread_mutex_unlock(&s->lock);
    }
}

static void *watchdog(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "sluice-watchdog");
    pthread_mutex_lock(&dog_lock);
    /* from the start, not from when this thread first ran: a process
     * stopped before the thread was scheduled has its pause counted too */
    uint64_t last = dog_since;
    while (!dog_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&dog_cond, &dog_lock, &until);
        if (dog_stop) break;
        uint64_t now = sl_now_ns();
        uint64_t gap = now > last ? now - last : 0;
        last = now;
        pthread_mutex_lock(&slots_lock);
        if (gap > PAUSE_MS * 1000000ull) {
            credit_pause(gap - TICK_MS * 1000000ull);
            if (gap >= 1000000000ull)
                sl_ctx_log(sl_ctx_global(), SL_LOG_INFO, NULL,
                           "the process did not run for %llu ms (stopped, or its machine stalled); calls in "
                           "flight then are not blamed for it",
                           (unsigned long long)(gap / 1000000u));
        }
        for (slot *s = slots; s; s = s->next) look(s, now);
        pthread_mutex_unlock(&slots_lock);
    }
    pthread_mutex_unlock(&dog_lock);
    return NULL;
}

int sl_guard_start(uint64_t loop_ms, uint64_t slow_ms) {
    pthread_mutex_lock(&dog_lock);
    dog_loop_ms = loop_ms;
    dog_slow_ms = slow_ms;
    dog_stop = 0;
    int rc = 0;
    if (!dog_running) {
        dog_since = sl_now_ns();
        rc = pthread_create(&dog, NULL, watchdog, NULL) == 0 ? 0 : -1;
        dog_running = rc == 0;
    }
    pthread_mutex_unlock(&dog_lock);
    return rc;
}

void sl_guard_stop(void) {
    pthread_mutex_lock(&dog_lock);
    if (!dog_running) {
        pthread_mutex_unlock(&dog_lock);
        return;
    }
    dog_stop = 1;
    pthread_cond_signal(&dog_cond);
    pthread_mutex_unlock(&dog_lock);
    pthread_join(dog, NULL);
    dog_running = 0;
}

/* --- interrupts before the loop listens --- */

static volatile sig_atomic_t held_interrupts;
static int holding; /* this command holds interrupts (cli.c) */

static void on_early_interrupt(int sig) {
    (void)sig;
    if (held_interrupts < 1000) held_interrupts = held_interrupts + 1;
}

void sl_guard_hold_interrupts(void) {
    holding = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_early_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int sl_guard_take_interrupts(void) {
    int n = (int)held_interrupts;
    held_interrupts = 0;
    return n;
}

void sl_guard_rehold_interrupts(void) {
    if (!holding) return;
    struct sigaction cur;
    /* libuv sets the default back when the last handle for a signal
     * closes; where another handle still listens (serve), it stays */
    if (sigaction(SIGTERM, NULL, &cur) == 0 && cur.sa_handler == SIG_DFL) sl_guard_hold_interrupts();
}
