/* test_misbehave.c - parsers that break on purpose, for the crash and
 * watchdog tests (tests/e2e/crash.sh, tests/e2e/watchdog.sh), built twice:
 *
 *   test-misbehave (a cpu parser, on the thread pool)
 *   test-misbehave-io (MISBEHAVE_IO: an io parser, on the loop thread)
 *
 * Each parses text/plain and text/markdown into one paragraph per document,
 * except a document whose path contains `trigger`, on which it does what
 * `mode` says:
 *   segv   reads a field through a NULL pointer
 *   abort  calls abort()
 *   exit   calls exit(3)
 *   never  answers SL_PENDING and never calls sl_call_done (io)
 *   twice  answers through sl_call_done twice, on a timer (io)
 *   late   answers SL_PENDING and calls sl_call_done `delay` ms later (io)
 *   segv_later  answers SL_PENDING and dereferences NULL in its timer callback (io)
 *   block  sleeps `delay` ms inside the call, then parses
 *   stop   stops the whole process (SIGSTOP) inside the call, as a user's
 *          ^Z or a stalled VM would, and has a shell continue it `delay`
 *          ms later; then parses
 *   fail   fails as bad input with no message, or returns `code` when set
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#include <sluice/sluice.h>

typedef struct conf {
    const char *mode;
    const char *trigger;
    int64_t delay;
    int64_t code;
} conf;

static const sl_option options[] = {
    {.name = "mode",
     .type = SL_OPT_ENUM,
     .def = "none",
     .choices = "none|segv|abort|exit|never|twice|late|block|stop|fail|segv_later",
     .help = "what to do on a triggering document",
     .offset = offsetof(conf, mode)},
    {.name = "trigger",
     .type = SL_OPT_STRING,
     .def = "bad",
     .help = "documents whose path contains this misbehave",
     .offset = offsetof(conf, trigger)},
    {.name = "delay",
     .type = SL_OPT_INT,
     .def = "500",
     .help = "block, late and stop: milliseconds",
     .offset = offsetof(conf, delay)},
    {.name = "code",
     .type = SL_OPT_INT,
     .def = "0",
     .help = "fail: the code returned (0: SL_EBADINPUT)",
     .offset = offsetof(conf, code)},
    {0},
};

typedef struct state {
    conf c;
    sl_instance *inst;
} state;

static int init(sl_instance *inst, const void *config, void **out) {
    state *s = calloc(1, sizeof *s);
    if (!s) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    s->c = *(const conf *)config;
    s->inst = inst;
    *out = s;
    return 0;
}

static void fini(void *st) { free(st); }

static int parse_now(sl_call *call, sl_doc *doc) {
    size_t len;
    const char *data = sl_doc_data(doc, &len);
    if (sl_doc_add_element(doc, SL_EL_PARAGRAPH, len ? data : "empty", len ? len : 5) < 0)
        return sl_fail(call, SL_ENOMEM, "out of memory");
    return 0;
}

typedef struct later {
    sl_call *call;
    sl_doc *doc;
    int twice;
    int crash;
} later;

/* A field read through a NULL struct pointer, the usual shape of the bug:
 * address 8, so the sanitizers' own NULL check lets the signal through to
 * sluice's crash handler, which is what the tests are about. */
static int null_field(void) {
    volatile int *volatile p = (volatile int *)(uintptr_t)8;
    return *p;
}

static void answer(void *arg) {
    later *l = arg;
    if (l->crash) l->twice = null_field();
    int rc = parse_now(l->call, l->doc);
    sl_call_done(l->call, rc);
    if (l->twice) sl_call_done(l->call, rc);
    free(l);
}

static void sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int parse(sl_call *call, sl_doc *doc) {
    state *s = sl_call_state(call);
    const char *m = s->c.mode;
    if (!*s->c.trigger || !strstr(sl_doc_uri(doc), s->c.trigger) || strcmp(m, "none") == 0)
        return parse_now(call, doc);
    if (strcmp(m, "segv") == 0) return null_field();
    if (strcmp(m, "abort") == 0) abort();
    if (strcmp(m, "exit") == 0) exit(3);
    if (strcmp(m, "never") == 0) return SL_PENDING;
    if (strcmp(m, "block") == 0) {
        sleep_ms(s->c.delay);
        return parse_now(call, doc);
    }
    if (strcmp(m, "stop") == 0) {
        /* posix_spawn, not fork: no copy of this process's page tables
         * (slow under ASan), so the call itself stays short */
        char cmd[96];
        snprintf(cmd, sizeof cmd, "sleep %lld.%03lld; kill -CONT %lld", (long long)(s->c.delay / 1000),
                 (long long)(s->c.delay % 1000), (long long)getpid());
        char *argv[] = {(char *)"sh", (char *)"-c", cmd, NULL};
        pid_t child;
        if (posix_spawnp(&child, "sh", NULL, NULL, argv, environ) != 0)
            return sl_fail(call, SL_EFATAL, "posix_spawn: cannot start the shell that continues us");
        raise(SIGSTOP);
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
        }
        return parse_now(call, doc);
    }
    if (strcmp(m, "fail") == 0) return s->c.code ? (int)s->c.code : SL_EBADINPUT;
    if (strcmp(m, "twice") == 0 || strcmp(m, "late") == 0 || strcmp(m, "segv_later") == 0) {
        later *l = calloc(1, sizeof *l);
        if (!l) return sl_fail(call, SL_ENOMEM, "out of memory");
        l->call = call;
        l->doc = doc;
        l->twice = m[0] == 't';
        l->crash = m[0] == 's';
        if (sl_timer_start(s->inst, m[0] == 'l' ? (uint64_t)s->c.delay : 0, answer, l, NULL) != 0) {
            free(l);
            return sl_fail(call, SL_ENOMEM, "no timer");
        }
        return SL_PENDING;
    }
    return parse_now(call, doc);
}

static const char *const media[] = {"text/plain", "text/markdown", NULL};

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
#ifdef MISBEHAVE_IO
    .name = "test-misbehave-io",
    .bottleneck = SL_IO,
#else
    .name = "test-misbehave",
    .bottleneck = SL_CPU,
#endif
    .version = "1.0.0",
    .summary = "test: a parser that crashes, exits, hangs or answers twice on purpose",
    .role = SL_ROLE_PARSER,
    .options = options,
    .config_size = sizeof(conf),
    .media_types = media,
    .init = init,
    .fini = fini,
    .parse = parse,
};

SL_PLUGIN_EXPORT(desc)
