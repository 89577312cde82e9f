/* httpd.h - the HTTP service: Prometheus metrics, health, readiness, queries
 * and a status page, served on the loop thread.
 *
 * libh2o (its libuv binding) parses HTTP on the core's own libuv loop, so
 * reading the numbers needs no lock: every handler runs on the loop thread,
 * where the run's state lives. What could block (a cpu sink's query, say)
 * runs on libuv's work threads and answers back on the loop. Endpoints:
 *
 *   /             a status page for people (one self-contained HTML file)
 *   /status.json  what the page shows, refreshed every 2 s by its script
 *   /metrics      Prometheus text format (sluice_* names)
 *   /health       200 while the process answers
 *   /ready        200 when plugins are initialised and every sink answers a
 *                 lookup; 503 with {"ready":false,"reason":...} otherwise
 *   /query?q=TEXT&k=N[&route=NAME]  the JSON of `sluice query --json`
 *
 * Only GET (405 otherwise); any other path is 404; a path or query string
 * over 4 KiB is 414, a request body over 4 KiB is 413 (h2o), headers are
 * bounded by h2o (100 headers), and at most SL_HTTPD_MAX_CONNS connections
 * are open at once (more are closed at accept).
 *
 * The process state it reads comes through an sl_httpd_source, never
 * globals, so `sluice run --listen` and `sluice serve` share it.
 */
#ifndef SL_HTTPD_H
#define SL_HTTPD_H

#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#include "report.h"
#include "runtime.h"

#define SL_HTTPD_MAX_CONNS 64
#define SL_HTTPD_MAX_TARGET 4096

/* What the service reads. Every callback runs on the loop thread. */
typedef struct sl_httpd_source {
    void *arg;
    /* The numbers to show, brought up to date now; *running says whether
     * a run is going (1) or the report is a finished run's (0). NULL:
     * nothing to show yet (the metrics then hold only sluice_up). */
    const sl_report *(*report)(void *arg, int *running);
    /* The runtime /ready checks and /query uses, with its stages
     * initialised; NULL while there is none (not ready). */
    sl_runtime *(*runtime)(void *arg);
    /* Optional: a reason the process is not ready beyond the runtime (a
     * reload in progress, say), or NULL. */
    const char *(*not_ready)(void *arg);
    sl_ctx *ctx; /* logs; may be NULL */
} sl_httpd_source;

typedef struct sl_httpd sl_httpd;

/* Parses "HOST:PORT" or "[V6]:PORT" (port 0: any free port). 0, or
 * SL_EINVAL with the reason in err. */
int sl_httpd_parse_listen(const char *listen, struct sockaddr_storage *ss, char *err, size_t n);

/* Starts serving on `listen`; src is copied. Its handles are unreferenced:
 * they never keep the loop running. NULL with the reason in err (a bad
 * address, a port in use). */
sl_httpd *sl_httpd_start(uv_loop_t *loop, const char *listen, const sl_httpd_source *src, char *err,
                         size_t n);
/* The address it listens on, "127.0.0.1:9464" (the port it got for 0). */
const char *sl_httpd_address(const sl_httpd *h);
/* Stops accepting, lets the requests in progress finish (keep-alive
 * connections close when idle, at most h2o's request timeout later) and
 * frees itself once the last connection is gone: run the loop after it
 * (a referenced timer holds it until then). NULL is fine. */
void sl_httpd_stop(sl_httpd *h);

/* A source for one process's runs (`sluice run --listen`, and `serve`):
 * point rt at the initialised runtime, rep at the report the current run
 * fills, and pass &live as sl_run_opts.live. */
typedef struct sl_httpd_run_view {
    sl_runtime *rt;
    sl_report *rep;
    struct run *live;
    const char *not_ready; /* a reason, or NULL */
} sl_httpd_run_view;
void sl_httpd_source_for_run(sl_httpd_source *src, sl_httpd_run_view *view);

/* The texts the endpoints answer, for tests: the Prometheus text and the
 * status JSON of a report (malloc'd; NULL on out of memory). */
char *sl_metrics_text(const sl_report *rep, int running, size_t *len);
char *sl_status_json(const sl_report *rep, int running, size_t *len);

#endif
