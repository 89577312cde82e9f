/* harness.h - what the remote provider tests share: the fake provider as a
 * child process, a "canned" server that answers whatever a test sets (for
 * bodies the fake never sends: wrong shapes, garbage), and plugin instances
 * built and called the way a run does (loader, instance API, sl_invoke on a
 * real loop).
 *
 * The fake provider (tests/fake-provider) is started with --port 0 and
 * found through FAKE_PROVIDER (a compile definition); its "listening on
 * 127.0.0.1:PORT" line goes to a file the harness reads. It dies with the
 * test (PR_SET_PDEATHSIG), so a crashed test leaves no server behind.
 * Faults are switched on and off at run time through POST /_config.
 */
#ifndef PROVIDERS_HARNESS_H
#define PROVIDERS_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../check.h" /* the tests' check.h */
#include "ctx.h"
#include "instance.h"
#include "registry.h"
#include "loop.h"
#include "runtime.h"
#include "sluice/sluice.h"

#ifndef FAKE_PROVIDER
#error "FAKE_PROVIDER (the fake provider's path) must be defined by the build"
#endif

/* The key the fake provider requires; tests check it never shows. */
#define GOOD_KEY "sk-fake-GOODKEY-4f1d2c"
#define WRONG_KEY "sk-fake-WRONGKEY-9a8b7c"

static sl_ctx *h_ctx;
static sl_registry *h_reg;
static sl_loop *h_loop;

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline void h_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* --- the fake provider --- */

typedef struct fake {
    pid_t pid;
    int port;
} fake;

/* Starts the fake provider with extra arguments (NULL-terminated) and waits
 * for its "listening on 127.0.0.1:PORT" line. Exits the test on failure:
 * nothing here can be checked without it. */
static inline fake fake_start(const char *const *args) {
    static int nstarted;
    const char *tmp = getenv("SLUICE_TEST_TMP");
    char out[4096];
    snprintf(out, sizeof out, "%s/fake-provider-%d-%d.out", tmp ? tmp : "/tmp", (int)getpid(), nstarted++);
    unlink(out);
    const char *argv[32] = {FAKE_PROVIDER, "--port", "0"};
    size_t argc = 3;
    for (size_t i = 0; args && args[i] && argc < 31; i++) argv[argc++] = args[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid < 0) h_die("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0) _exit(126);
        execv(FAKE_PROVIDER, (char *const *)argv);
        _exit(127);
    }
    for (int waited = 0; waited < 10000; waited += 10) {
        FILE *f = fopen(out, "r");
        char line[256];
        int port = 0;
        if (f) {
            while (fgets(line, sizeof line, f))
                if (sscanf(line, "listening on 127.0.0.1:%d", &port) == 1) break;
            fclose(f);
        }
        if (port > 0) {
            unlink(out);
            return (fake){pid, port};
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            h_die("%s exited before listening (status %d)", FAKE_PROVIDER, status);
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    h_die("%s did not say it was listening within 10 s", FAKE_PROVIDER);
    return (fake){0, 0};
}

static inline void fake_stop(fake *f) {
    if (f->pid <= 0) return;
    kill(f->pid, SIGTERM);
    for (int waited = 0; waited < 5000; waited += 10) {
        if (waitpid(f->pid, NULL, WNOHANG) == f->pid) {
            f->pid = 0;
            return;
        }
        sleep_ms(10);
    }
    kill(f->pid, SIGKILL);
    waitpid(f->pid, NULL, 0);
    f->pid = 0;
}

/* A blocking HTTP/1.1 exchange with the fake's control endpoints (not
 * through the code under test). Returns the status; the body, when asked
 * for, is malloc'd. */
static inline int control(int port, const char *method, const char *path, const char *body, char **resp) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) h_die("control: cannot connect");
    char head[512];
    size_t blen = body ? strlen(body) : 0;
    int hl =
        snprintf(head, sizeof head,
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
                 "%zu\r\nConnection: close\r\n\r\n",
                 method, path, blen);
    if (write(fd, head, (size_t)hl) != hl || (blen && write(fd, body, blen) != (ssize_t)blen))
        h_die("control: write failed");
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (len + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    close(fd);
    buf[len] = '\0';
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    if (resp) {
        char *b = strstr(buf, "\r\n\r\n");
        *resp = strdup(b ? b + 4 : "");
    }
    free(buf);
    return status;
}

/* Sets fake options at run time, e.g. {"fault-malformed": 1}. */
static inline void fake_config(const fake *f, const char *json) {
    char *resp = NULL;
    int st = control(f->port, "POST", "/_config", json, &resp);
    if (st != 200) h_die("POST /_config %s: %d %s", json, st, resp ? resp : "");
    free(resp);
}

/* Provider requests the fake has counted so far. */
static inline long long fake_requests(const fake *f) {
    char *resp = NULL;
    control(f->port, "GET", "/_stats", NULL, &resp);
    json_t *j = json_loads(resp, 0, NULL);
    long long n = json_integer_value(json_object_get(j, "requests"));
    json_decref(j);
    free(resp);
    return n;
}

/* A port nothing listens on: bound, then closed. */
static inline int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) < 0)
        h_die("closed_port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

/* --- the canned server: one thread, one connection at a time, answers
 * every request with the status and body a test set, and keeps the last
 * request it read so a test can look at what a plugin sent. --- */

typedef struct canned {
    int fd, port;
    pthread_t thread;
    pthread_mutex_t lock;
    int status;
    char *body;    /* what to answer */
    char *request; /* the last request, head and body */
} canned;

static canned h_canned;

static inline void *canned_main(void *arg) {
    canned *c = arg;
    for (;;) {
        int fd = accept(c->fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) continue;
            return NULL; /* closed: the test is over */
        }
        size_t cap = 1 << 20, len = 0, want = 0;
        char *buf = malloc(cap);
        ssize_t n;
        while (len + 1 < cap && (n = read(fd, buf + len, cap - len - 1)) > 0) {
            len += (size_t)n;
            buf[len] = '\0';
            char *end = strstr(buf, "\r\n\r\n");
            if (!end) continue;
            if (!want) {
                char *cl = strcasestr(buf, "\r\nContent-Length:");
                want = (size_t)(end + 4 - buf) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
            }
            if (len >= want) break;
        }
        buf[len] = '\0';
        pthread_mutex_lock(&c->lock);
        free(c->request);
        c->request = buf;
        char head[256];
        size_t blen = strlen(c->body ? c->body : "");
        int hl = snprintf(head, sizeof head,
                          "HTTP/1.1 %d Canned\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                          "Connection: close\r\n\r\n",
                          c->status, blen);
        ssize_t w1 = write(fd, head, (size_t)hl), w2 = blen ? write(fd, c->body, blen) : 0;
        (void)w1;
        (void)w2;
        pthread_mutex_unlock(&c->lock);
        close(fd);
    }
}

static inline void canned_start(void) {
    canned *c = &h_canned;
    pthread_mutex_init(&c->lock, NULL);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (c->fd < 0 || bind(c->fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(c->fd, 16) < 0 ||
        getsockname(c->fd, (struct sockaddr *)&a, &al) < 0)
        h_die("canned server: %s", strerror(errno));
    c->port = ntohs(a.sin_port);
    c->status = 200;
    if (pthread_create(&c->thread, NULL, canned_main, c)) h_die("canned server: no thread");
}

/* The next answers: status and body (copied). */
static inline void canned_set(int status, const char *body) {
    pthread_mutex_lock(&h_canned.lock);
    h_canned.status = status;
    free(h_canned.body);
    h_canned.body = strdup(body);
    pthread_mutex_unlock(&h_canned.lock);
}

/* A copy of the last request (free it). */
static inline char *canned_request(void) {
    pthread_mutex_lock(&h_canned.lock);
    char *r = strdup(h_canned.request ? h_canned.request : "");
    pthread_mutex_unlock(&h_canned.lock);
    return r;
}

static inline void canned_stop(void) {
    shutdown(h_canned.fd, SHUT_RDWR);
    close(h_canned.fd);
    pthread_join(h_canned.thread, NULL);
    free(h_canned.body);
    free(h_canned.request);
    pthread_mutex_destroy(&h_canned.lock);
}

/* --- plugins, instances, calls --- */

static inline void harness_open(void) {
    const char *dir = getenv("SLUICE_PLUGIN_DIR");
    if (!dir) h_die("SLUICE_PLUGIN_DIR is not set");
    signal(SIGPIPE, SIG_IGN);
    h_ctx = sl_ctx_new();
    if (sl_registry_new(h_ctx, &h_reg) || sl_registry_add_dir(h_reg, dir))
        h_die("registry: %s", sl_ctx_errmsg(h_ctx));
    if (sl_loop_new(&h_loop)) h_die("no loop");
}

static inline void harness_close(void) {
    sl_registry_free(h_reg);
    sl_loop_free(h_loop);
    sl_ctx_free(h_ctx);
}

/* An instance of `plugin` from its defaults and "key", "value" pairs
 * (NULL-terminated), on the harness loop, init called. NULL when building
 * or init failed (the reason is in sl_ctx_errmsg(h_ctx)). */
static inline sl_instance *inst_new(const char *plugin, ...) {
    const sl_loaded *p;
    if (sl_registry_find(h_ctx, h_reg, plugin, &p)) {
        fprintf(stderr, "%s\n", sl_ctx_errmsg(h_ctx));
        return NULL;
    }
    char *ov[16];
    size_t n = 0;
    va_list ap;
    va_start(ap, plugin);
    const char *k;
    while (n < 16 && (k = va_arg(ap, const char *))) {
        const char *v = va_arg(ap, const char *);
        size_t len = strlen(k) + strlen(v) + 2;
        ov[n] = malloc(len);
        snprintf(ov[n++], len, "%s=%s", k, v);
    }
    va_end(ap);
    sl_instance *inst = NULL;
    sl_ctx_clear_error(h_ctx);
    int rc = sl_instance_new_defaults(h_ctx, p, plugin, (const char *const *)ov, n, &inst);
    for (size_t i = 0; i < n; i++) free(ov[i]);
    if (rc == 0) {
        inst->loop = h_loop;
        rc = sl_instance_init(h_ctx, inst);
    }
    if (rc) {
        sl_instance_free(inst);
        return NULL;
    }
    return inst;
}

/* "http://127.0.0.1:PORT" + suffix, in one of a few static buffers. */
static inline const char *url_of(int port, const char *suffix) {
    static char bufs[8][96];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "http://127.0.0.1:%d%s", port, suffix);
    return b;
}

typedef struct complete_args {
    sl_text prompt;
    sl_completion *out;
} complete_args;

static inline int do_complete(sl_call *call, void *arg) {
    complete_args *a = arg;
    return call->inst->desc->complete(call, &a->prompt, a->out);
}

/* Asks inst for a completion of prompt through sl_invoke (which runs the
 * loop until the plugin's sl_call_done). *out's text is malloc'd. */
static inline int complete(sl_instance *inst, const char *prompt, size_t len, sl_completion *out,
                           sl_call *call) {
    complete_args a = {{prompt, len}, out};
    return sl_invoke(inst, do_complete, &a, call);
}

typedef struct embed_args {
    const sl_text *texts;
    size_t n;
    float *out;
} embed_args;

static inline int do_embed(sl_call *call, void *arg) {
    embed_args *a = arg;
    return call->inst->desc->embed(call, a->texts, a->n, a->out);
}

/* Embeds n NUL-terminated texts into out (n * inst->dim floats). */
static inline int embed(sl_instance *inst, const char *const *texts, size_t n, float *out, sl_call *call) {
    sl_text t[16];
    for (size_t i = 0; i < n && i < 16; i++) t[i] = (sl_text){texts[i], strlen(texts[i])};
    embed_args a = {t, n, out};
    return sl_invoke(inst, do_embed, &a, call);
}

/* The fake's token count for a text of `words` words. */
static inline uint64_t tokens_of_words(uint64_t words) { return (words * 4 + 2) / 3; }

static inline double norm_of(const float *v, uint32_t dim) {
    double s = 0;
    for (uint32_t i = 0; i < dim; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

/* A failed call's message must say what went wrong without the key: not
 * the key itself, and not the scrubber's "***" either (which would mean the
 * plugin put it there and only the safety net caught it). */
static inline void check_no_secret(const char *msg) {
    CHECK(strstr(msg, GOOD_KEY) == NULL);
    CHECK(strstr(msg, WRONG_KEY) == NULL);
    CHECK(strstr(msg, "GOODKEY") == NULL);
    CHECK(strstr(msg, "WRONGKEY") == NULL);
    CHECK(strstr(msg, "***") == NULL);
}

#endif
