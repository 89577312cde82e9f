/* cli.c - the sluice command: run, serve, query, plugins, check.
 *
 * Exit status: 0 all went well, 1 some documents failed (or a plugin broke
 * its contract), 2 usage or configuration errors, 3 interrupted, 4 the
 * store is held by another sluice process (run, serve), 5 a plugin crashed
 * or called exit() inside a call. Logs and the progress line
 * go to stderr; results (report, hits, listings) to stdout. Without -c the
 * built-in copy of conf/default.ini is used: SQLite under ./.sluice/.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ops.h"
#include "plugin_check.h"
#include "config.h"
#include "ctx.h"
#include "document.h"
#include "httpd.h"
#include "loop.h"
#include "dryrun.h"
#include "failures.h"
#include "probe.h"
#include "registry.h"
#include "options.h"
#include "pipeline.h"
#include "query.h"
#include "runtime.h"
#include "serve.h"
#include "workers.h"
#include "media.h"
#include "guard.h"
#include "store.h"
#include "queue.h"

extern const char sl_default_ini[];

enum { EXIT_OK = 0, EXIT_DOCS = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 3, EXIT_BUSY = 4 };
/* 5 (SL_EXIT_CRASH, guard.h): a plugin crashed or called exit() inside a call */

typedef struct cli {
    const char *command;
    const char *config;
    const char **sets;
    size_t nsets;
    const char **args;
    size_t nargs;
    int verbosity; /* SL_LOG_* */
    bool json, prune, help;
    long k;
    const char *route;
    const char *plugin;
    sl_ctx *ctx;
    char *listen_set; /* --listen ADDR, as --set sluice.listen=ADDR */
    bool dry_run, connect, all;
    const char *log_format;  /* "text" (default) or "json" */
    const char *stage;       /* inspect --stage */
    const char *input;       /* check --plugin X.so --input FILE */
    bool wait;               /* run/serve --wait: wait for a store another process holds */
    const char *mode;        /* query --mode hybrid|vector|keyword */
    long rrf_k;              /* query --rrf-k N */
    double vweight, kweight; /* query --vector-weight W, --keyword-weight W */
    bool run_stopped;        /* the last run_paths ended by a fatal error or a signal */
    bool queue;              /* run/serve --queue: a node of the store's job queue */
} cli;

static const char *usage_main =
    "usage: sluice [-c FILE] [--set SECTION.KEY=VALUE]... [-v|-q] [--log-format text|json] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  run [--prune] [--json] [--listen ADDR] PATH...  ingest files and folders into the store\n"
    "  query [-k N] [--mode M] [--json] TEXT  the N chunks nearest TEXT (default 5, hybrid)\n"
    "  plugins [--json]                 every plugin found, with its options\n"
    "  check [--plugin FILE.so]         validate the config and its plugins, or one plugin file\n"
    "  check --connect [--json]         ... and one real request to each provider and database\n"
    "  run --dry-run [--prune] PATH...  what a run would store, replace, skip and prune; no writes\n"
    "  failed [--json]                  the documents that failed, kept in the store\n"
    "  retry [--all]                    run the failed documents again (--all: dead letters too)\n"
    "  inspect [--stage NAME] FILE      what each stage makes of FILE, nothing stored\n"
    "  store check [--json]             is the store healthy? counts documents, chunks, vectors\n"
    "  store rebuild                    re-ingest what a (damaged) store lists into a fresh one\n"
    "  enqueue [--json] PATH...         add a job per document to the store's queue (sink-postgres)\n"
    "  run --queue / serve --queue      be a node: lease jobs from the queue, store them, ack\n"
    "  queue status [--json]            the queue's jobs by state, its nodes and their throughput\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   INI file (default: the built-in conf/default.ini: SQLite in ./.sluice/)\n"
    "  --set S.K=V         override key K of section [S] (repeatable)\n"
    "  -v, -vv / -q        more / less logging on stderr\n"
    "  --log-format F      text (default) or json: one object per line (time, level, stage, document, "
    "message)\n"
    "  -h, --help          help for sluice or for a command\n"
    "  --version           print the version\n"
    "\n"
    "exit status: 0 all went well, 1 some documents failed, 2 usage or configuration error,\n"
    "3 interrupted, 4 the store is in use by another sluice process, 5 a plugin crashed (or called\n"
    "exit) inside a call\n";

static const char *usage_run =
    "usage: sluice run [-c FILE] [--set S.K=V]... [--prune] [--json] [--dry-run] [--listen ADDR] [-v|-q]\n"
    "                  [--wait] PATH...\n"
    "\n"
    "Ingests the files and folders given (folders recursively, by [sluice] include/exclude).\n"
    "Unchanged documents (same content hash, same pipeline) are skipped; changed ones replaced.\n"
    "  --prune   also remove stored documents under PATH... that no longer exist\n"
    "  --json    print the run report as JSON on stdout instead of the table\n"
    "  --listen HOST:PORT  serve /metrics, /health, /ready, /query and a status page at / while\n"
    "            it runs (as [sluice] listen; [sluice] listen_linger keeps serving after the end)\n"
    "  --dry-run walk, hash and look up only: print what would be stored (new), replaced, skipped\n"
    "            and (with --prune) pruned; no provider is called and nothing is written\n"
    "  --wait    when another sluice process holds the store, wait until it is done (without\n"
    "            --wait: exit 4, naming the holder's PID, host and start time)\n"
    "Failed documents are kept in the store ('sluice failed'); one that failed [sluice] max_attempts\n"
    "runs is a dead letter, passed over until 'sluice retry --all'.\n"
    "Exit status: 0 all stored or skipped, 1 some documents failed (listed in the report), 2 config error.\n";

static const char *usage_query =
    "usage: sluice query [-c FILE] [--set S.K=V]... [-k N] [--mode hybrid|vector|keyword] [--rrf-k N]\n"
    "                    [--vector-weight W] [--keyword-weight W] [--route NAME] [--json] TEXT\n"
    "\n"
    "Prints the N stored chunks that best answer TEXT: score, source:line, heading path\n"
    "and text. --mode vector ranks by the route's embedder (cosine), keyword by the\n"
    "store's text index (BM25), and hybrid (the default) fuses the two rankings by\n"
    "reciprocal rank fusion: W / (N + rank) summed, N = 60 unless --rrf-k says, W the\n"
    "ranking's weight (vector 1, keyword 2 unless --vector-weight/--keyword-weight say);\n"
    "--json shows each hit's rank and score in both.\n"
    "A store without a keyword index answers by vector alone, and says so. The first\n"
    "route is used unless --route names another.\n";

static const char *usage_plugins =
    "usage: sluice plugins [-c FILE] [--json]\n"
    "\n"
    "Lists every plugin found (next to the executable, in [sluice] plugin_path,\n"
    "in SLUICE_PLUGIN_PATH): name, version, role, bottleneck and options with type,\n"
    "default and help, plus the settings every stage section accepts.\n";

static const char *usage_failed =
    "usage: sluice failed [-c FILE] [--json]\n"
    "\n"
    "Lists the failed documents the store keeps: uri, stage, reason, attempts (runs that failed\n"
    "it), first and last time; those that failed [sluice] max_attempts runs are dead letters.\n"
    "A document leaves the list when it is stored. A sink whose plugin keeps no failure list\n"
    "(a third-party sink without failures_record/failures_list) is named.\n";

static const char *usage_retry =
    "usage: sluice retry [-c FILE] [--set S.K=V]... [--all] [--json]\n"
    "\n"
    "Runs exactly the documents of 'sluice failed' again (their uris are the paths), dead\n"
    "letters passed over unless --all. Exit status as for run.\n";

static const char *usage_store =
    "usage: sluice store check [-c FILE] [--set S.K=V]... [--json]\n"
    "       sluice store rebuild [-c FILE] [--set S.K=V]... [--json]\n"
    "\n"
    "check verifies the store of every route (SQLite: PRAGMA integrity_check) without writing\n"
    "to it, and prints its counts of documents, chunks, vectors and orphaned chunks.\n"
    "Exit status: 0 healthy, 1 damaged, 2 no store there, or a configuration error.\n"
    "\n"
    "rebuild re-ingests every document the store lists (as far as a damaged file can still be\n"
    "read; the uris are paths, so run it from the folder the runs ran in) into a fresh store,\n"
    "then puts the fresh store in place in one step and keeps the old one as a backup, named\n"
    "in the output. Documents that fail are listed and kept in the new store's failure list\n"
    "('sluice retry'). A rebuild that stops (a fatal error, a signal) replaces nothing.\n"
    "Exit status as for run.\n";

static const char *usage_check =
    "usage: sluice check [-c FILE] [--set S.K=V]... [--connect [--json]]\n"
    "       sluice check --plugin FILE.so [--set KEY=VALUE]... [--connect]\n"
    "       sluice check --plugin FILE.so --input FILE [--set KEY=VALUE]... [--json]\n"
    "\n"
    "The first form loads the config and every plugin it names, runs init and fini,\n"
    "and prints the routes. The second checks one plugin file the way a third party\n"
    "needs before shipping it: descriptor, options, init and fini with the defaults\n"
    "(and the --set overrides), and its role's contract on sample input.\n"
    "--connect also makes one minimal real request to each provider (its model list, or one\n"
    "short embedding, which checks the dimension) and opens a session with each sink, and prints\n"
    "latency, HTTP status and the result of each; exit status 2 if any fails. No document is read.\n"
    "With --plugin it probes that one plugin the same way (a FAIL row, exit 1, if it fails); a\n"
    "plugin with nothing to connect to (a local parser, chunker...) is refused with exit 2.\n"
    "--input FILE puts the plugin into the built-in route that owns FILE's type, in its role's\n"
    "place, runs FILE through it and prints what each stage made (as 'sluice inspect'); nothing\n"
    "is stored.\n";

/* An error line on stderr: "sluice: MESSAGE", or with --log-format json a
 * JSON log line of level error (scrubbed either way). */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static void
say_error(const char *fmt, ...) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sl_ctx *ctx = sl_ctx_global();
    if (sl_ctx_log_json(ctx)) {
        sl_ctx_log(ctx, SL_LOG_ERROR, NULL, "%s", msg);
    } else {
        char clean[4096];
        fprintf(stderr, "sluice: %s\n", sl_ctx_scrub(ctx, msg, clean, sizeof clean));
    }
}

static const char *usage_serve =
    "usage: sluice serve [-c FILE] [--set S.K=V]... [-v|-q] [--wait] [PATH...]\n"
    "\n"
    "Ingests the folders of [sluice] watch (or PATH...), then follows them: a file created or\n"
    "changed is ingested once it has been steady for [sluice] watch_debounce, a deleted one is\n"
    "removed from the store, and every [sluice] rescan all folders are walked again. Logs go to\n"
    "stderr (-q: errors only), with the counters every [sluice] report_interval; with\n"
    "[sluice] listen (or --listen HOST:PORT) it serves /metrics, /health, /ready, /query and /.\n"
    "  SIGTERM, SIGINT  finish the documents in flight (up to [sluice] shutdown_grace), exit 0;\n"
    "                   a second signal stops at once (exit 3)\n"
    "  --wait           when another sluice process holds the store, wait for it (else exit 4)\n"
    "  SIGHUP           reload the config: a bad one is refused (logged) and the old one kept;\n"
    "                   a good one replaces it once the current pass is done, then all is rescanned\n"
    "Exit status: 0 stopped by a signal, 2 config error, 4 the store is in use by another process.\n";

static const char *usage_inspect =
    "usage: sluice inspect [-c FILE] [--set S.K=V]... [--stage NAME] [--json] FILE\n"
    "       sluice check --plugin X.so --input FILE [--set KEY=VALUE]... [--json]\n"
    "\n"
    "Runs FILE through its route (up to the stage named by --stage) and prints what each\n"
    "stage made: elements (kind, level, page, line, text), chunks (heading path, text),\n"
    "summaries, vector dimensions and norms, metadata and each stage's busy time. Nothing\n"
    "is stored: the sink is never called. The second form puts plugin X.so into the\n"
    "built-in pipeline in its role's place and inspects FILE up to it.\n";

static int usage_error(const char *fmt, const char *arg) {
    char msg[1024];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(msg, sizeof msg, fmt, arg);
#pragma GCC diagnostic pop
    say_error("%s", msg);
    if (!sl_ctx_log_json(sl_ctx_global())) fprintf(stderr, "(try 'sluice --help')\n");
    return EXIT_USAGE;
}

static int parse_args(cli *c, int argc, char **argv) {
    c->verbosity = SL_LOG_WARN;
    c->k = 5;
    c->rrf_k = SL_RRF_K;
    c->vweight = SL_RRF_VECTOR_WEIGHT;
    c->kweight = SL_RRF_KEYWORD_WEIGHT;
    c->args = calloc((size_t)argc, sizeof *c->args);
    c->sets = calloc((size_t)argc, sizeof *c->sets);
    if (!c->args || !c->sets) return usage_error("%s", "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (strcmp(a, "--") == 0) {
            while (++i < argc) c->args[c->nargs++] = argv[i];
            break;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (!more) return usage_error("%s needs a FILE", a);
            c->config = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            c->config = a + 9;
        } else if (strcmp(a, "--set") == 0) {
            if (!more) return usage_error("%s needs SECTION.KEY=VALUE", a);
            c->sets[c->nsets++] = argv[++i];
        } else if (strncmp(a, "--set=", 6) == 0) {
            c->sets[c->nsets++] = a + 6;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            c->verbosity = c->verbosity < SL_LOG_INFO ? SL_LOG_INFO : SL_LOG_DEBUG;
        } else if (strcmp(a, "-vv") == 0) {
            c->verbosity = SL_LOG_DEBUG;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            c->verbosity = SL_LOG_ERROR;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            c->help = true;
        } else if (strcmp(a, "--version") == 0) {
            c->command = "version";
        } else if (strcmp(a, "--json") == 0) {
            c->json = true;
        } else if (strcmp(a, "--prune") == 0) {
            c->prune = true;
        } else if (strcmp(a, "--dry-run") == 0) {
            c->dry_run = true;
        } else if (strcmp(a, "--connect") == 0) {
            c->connect = true;
        } else if (strcmp(a, "--all") == 0) {
            c->all = true;
        } else if (strcmp(a, "--wait") == 0) {
            c->wait = true;
        } else if (strcmp(a, "--queue") == 0) {
            c->queue = true;
        } else if (strcmp(a, "--log-format") == 0 || strncmp(a, "--log-format=", 13) == 0) {
            if (a[12] != '=' && !more) return usage_error("%s needs text or json", a);
            c->log_format = a[12] == '=' ? a + 13 : argv[++i];
            if (strcmp(c->log_format, "text") != 0 && strcmp(c->log_format, "json") != 0)
                return usage_error("--log-format: '%s' is not text or json", c->log_format);
        } else if (strcmp(a, "-k") == 0 || strcmp(a, "--top") == 0) {
            char *end;
            if (!more) return usage_error("%s needs a number", a);
            errno = 0;
            c->k = strtol(argv[++i], &end, 10);
            if (errno || *end || c->k < 1 || c->k > 10000)
                return usage_error("-k: '%s' is not a number from 1 to 10000", argv[i]);
        } else if (strcmp(a, "--rrf-k") == 0) {
            char *end;
            if (!more) return usage_error("%s needs a number", a);
            errno = 0;
            c->rrf_k = strtol(argv[++i], &end, 10);
            if (errno || *end || c->rrf_k < 1 || c->rrf_k > SL_RRF_K_MAX)
                return usage_error("--rrf-k: '%s' is not a number from 1 to 10000", argv[i]);
        } else if (strcmp(a, "--vector-weight") == 0 || strcmp(a, "--keyword-weight") == 0) {
            char *end;
            if (!more) return usage_error("%s needs a number", a);
            errno = 0;
            double w = strtod(argv[++i], &end);
            if (errno || end == argv[i] || *end || !(w >= 0 && w <= SL_RRF_WEIGHT_MAX))
                return usage_error(a[2] == 'v' ? "--vector-weight: '%s' is not a number from 0 to 100"
                                               : "--keyword-weight: '%s' is not a number from 0 to 100",
                                   argv[i]);
            *(a[2] == 'v' ? &c->vweight : &c->kweight) = w;
        } else if (strcmp(a, "--mode") == 0) {
            if (!more) return usage_error("%s needs hybrid, vector or keyword", a);
            c->mode = argv[++i];
        } else if (strcmp(a, "--route") == 0) {
            if (!more) return usage_error("%s needs a NAME", a);
            c->route = argv[++i];
        } else if (strcmp(a, "--listen") == 0) {
            if (!more) return usage_error("%s needs HOST:PORT (for example 127.0.0.1:9464)", a);
            free(c->listen_set);
            size_t n = strlen(argv[++i]) + sizeof "sluice.listen=";
            if (!(c->listen_set = malloc(n))) return usage_error("%s", "out of memory");
            snprintf(c->listen_set, n, "sluice.listen=%s", argv[i]);
            c->sets[c->nsets++] = c->listen_set;
        } else if (strcmp(a, "--plugin") == 0) {
            if (!more) return usage_error("%s needs a FILE.so", a);
            c->plugin = argv[++i];
        } else if (strcmp(a, "--stage") == 0) {
            if (!more) return usage_error("%s needs a NAME", a);
            c->stage = argv[++i];
        } else if (strcmp(a, "--input") == 0) {
            if (!more) return usage_error("%s needs a FILE", a);
            c->input = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option '%s'", a);
        } else if (!c->command) {
            c->command = a;
        } else {
            c->args[c->nargs++] = a;
        }
    }
    return 0;
}

static int load_config(cli *c, sl_config **cfg) {
    int rc;
    if (c->config) {
        rc = sl_config_load(c->ctx, c->config, cfg);
    } else {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
        rc = sl_config_load_string(c->ctx, "conf/default.ini (built in)", cwd, sl_default_ini, cfg);
    }
    for (size_t i = 0; rc == 0 && i < c->nsets; i++) rc = sl_config_set(c->ctx, *cfg, c->sets[i]);
    return rc;
}

static int fail(cli *c, int code) {
    say_error("%s", sl_ctx_errmsg(c->ctx));
    return code;
}

/* Loads the config and builds the runtime, its sinks to be opened in `mode`
 * (SL_STORE_*: read-only commands never create or write a store); with
 * `init`, inits the stages routes use (or all of them when `all`). On
 * failure everything is freed. */
static int open_runtime(cli *c, int mode, bool init, bool all, sl_config **cfg, sl_runtime **rt) {
    *cfg = NULL;
    *rt = NULL;
    int status = 0;
    if (load_config(c, cfg) || sl_runtime_open(c->ctx, *cfg, rt)) {
        status = fail(c, EXIT_USAGE);
    } else {
        sl_runtime_set_store_mode(*rt, mode); /* before any sink's init */
        if (init && sl_runtime_init(*rt, all)) status = fail(c, EXIT_USAGE);
    }
    if (status) {
        sl_runtime_free(*rt);
        sl_config_free(*cfg);
        *rt = NULL;
        *cfg = NULL;
    }
    return status;
}

/* --- run --- */

/* [sluice] listen_linger: after the run, serve until the time is up or a
 * signal comes. */
typedef struct after_run {
    uv_timer_t timer;
    uv_signal_t sigint, sigterm;
} after_run;

static void linger_end(after_run *l) {
    uv_close((uv_handle_t *)&l->timer, NULL);
    uv_close((uv_handle_t *)&l->sigint, NULL);
    uv_close((uv_handle_t *)&l->sigterm, NULL);
    sl_guard_rehold_interrupts();
}
static void linger_timeout(uv_timer_t *t) { linger_end(t->data); }
static void linger_signal(uv_signal_t *s, int signum) { linger_end(s->data); }

static void serve_after_run(sl_runtime *rt, uint64_t ms) {
    uv_loop_t *uv = sl_loop_uv(rt->loop);
    after_run l;
    uv_timer_init(uv, &l.timer);
    uv_signal_init(uv, &l.sigint);
    uv_signal_init(uv, &l.sigterm);
    l.timer.data = l.sigint.data = l.sigterm.data = &l;
    uv_timer_start(&l.timer, linger_timeout, ms, 0);
    uv_signal_start(&l.sigint, linger_signal, SIGINT);
    uv_signal_start(&l.sigterm, linger_signal, SIGTERM);
    sl_ctx_log(rt->ctx, SL_LOG_INFO, NULL, "run ended: still serving for %llu ms ([sluice] listen_linger)",
               (unsigned long long)ms);
    sl_loop_run(rt->loop);
}

/* The report of a run stopped without unwinding (pipeline.h: last_report). */
static void print_last_report(const sl_report *rep, void *arg) {
    const cli *c = arg;
    if (c->json)
        sl_report_write_json(rep, stdout);
    else
        sl_report_print(rep, stdout);
    fflush(stdout);
}

/* A run of `paths` with the dead letters passed over (none with `all`),
 * its failures recorded in the store after it. */
static int run_paths(cli *c, sl_runtime *rt, const char *const *paths, size_t npaths, bool all) {
    rt->claim_wait = c->wait;
    if (!c->dry_run && sl_runtime_claim(rt)) /* one writer per store */
        return fail(c, rt->claim_interrupted ? EXIT_INTERRUPTED : EXIT_BUSY);
    sl_failure_list fl;
    if (sl_failures_load(rt, &fl)) return fail(c, EXIT_USAGE);
    size_t nparked = 0;
    const char **parked = all ? NULL : sl_failures_uris(&fl, 1, &nparked);
    int status = EXIT_OK;
    c->run_stopped = false;
    if (!all && !parked) {
        sl_ctx_error(c->ctx, SL_ENOMEM, "out of memory");
        status = fail(c, EXIT_USAGE);
    } else if (c->dry_run) {
        sl_run_opts opts = {
            .paths = paths, .npaths = npaths, .prune = c->prune, .parked = parked, .nparked = nparked};
        uint64_t failed = 0;
        if (sl_dry_run(rt, &opts, c->json, stdout, &failed))
            status = fail(c, EXIT_USAGE);
        else
            status = failed ? EXIT_DOCS : EXIT_OK;
    } else {
        sl_run_opts opts = {.paths = paths,
                            .npaths = npaths,
                            .prune = c->prune,
                            .progress = isatty(STDERR_FILENO) && c->verbosity >= SL_LOG_WARN &&
                                        !sl_ctx_log_json(c->ctx),
                            .parked = parked,
                            .nparked = nparked,
                            .last_report = print_last_report,
                            .last_report_arg = c};
        sl_report rep;
        memset(&rep, 0, sizeof rep);
        sl_httpd_run_view view = {.rt = rt, .rep = &rep};
        sl_httpd *httpd = NULL;
        if (rt->set.listen[0]) {
            sl_httpd_source src;
            char err[512];
            sl_httpd_source_for_run(&src, &view);
            httpd = sl_httpd_start(sl_loop_uv(rt->loop), rt->set.listen, &src, err, sizeof err);
            if (!httpd) {
                fprintf(stderr, "sluice: [sluice] listen: %s\n", err);
                free(parked);
                sl_failure_list_free(&fl);
                return EXIT_USAGE;
            }
            sl_ctx_log(c->ctx, SL_LOG_INFO, NULL, "serving http://%s/ (/metrics /health /ready /query)",
                       sl_httpd_address(httpd));
            opts.live = &view.live;
        }
        int rc = sl_pipeline_run(rt, &opts, &rep);
        c->run_stopped = rc || rep.fatal || rep.interrupted;
        if (rc && !rep.fatal) {
            status = fail(c, EXIT_USAGE);
        } else {
            /* the failure list: before the report, so a list that cannot be
             * written is said next to it */
            if (sl_failures_record(rt, &rep)) say_error("%s", sl_ctx_errmsg(c->ctx));
            if (c->json)
                sl_report_write_json(&rep, stdout);
            else
                sl_report_print(&rep, stdout);
            /* a run stopped by a fatal error that stored something is a
             * partial ingestion (1), not "nothing was ingested" (2) */
            status = rep.fatal         ? (rep.stored ? EXIT_DOCS : EXIT_USAGE)
                     : rep.interrupted ? EXIT_INTERRUPTED
                     : rep.failed      ? EXIT_DOCS
                                       : EXIT_OK;
        }
        fflush(stdout);
        if (rep.calls_left) {
            /* a pool thread is still inside a call left at [sluice]
             * call_deadline: it cannot be joined, and unloading the plugins
             * would pull its code from under it. The store is whole. */
            fflush(stderr);
            _exit(status);
        }
        if (httpd && rt->set.listen_linger_ms > 0 && !rep.interrupted)
            serve_after_run(rt, (uint64_t)rt->set.listen_linger_ms);
        if (httpd) {
            sl_httpd_stop(httpd);
            sl_loop_run(rt->loop); /* until its last connection closed */
        }
        sl_report_free(&rep);
    }
    free(parked);
    sl_failure_list_free(&fl);
    return status;
}

/* --- the job queue (queue.h) --- */

static const char *usage_queue =
    "usage: sluice enqueue [-c FILE] [--json] PATH...\n"
    "       sluice run --queue [-c FILE] [--json] [--wait]\n"
    "       sluice serve --queue [-c FILE] [--wait]\n"
    "       sluice queue status [-c FILE] [--json]\n"
    "\n"
    "Many sluice processes (nodes, on one machine or many) share one corpus through the job queue\n"
    "kept in the store's database (sink-postgres). enqueue walks PATHs as run does and adds one job\n"
    "per document, unless one is queued or leased already or the store holds it unchanged. A node\n"
    "leases [sluice] queue_lease_size jobs at a time for [sluice] queue_lease (heartbeated while it\n"
    "lives), stores each and acks it in the same transaction; a node whose lease ran out has its\n"
    "commit refused. A failed job is retried after [sluice] queue_backoff (doubled per failure) and\n"
    "is dead after [sluice] max_attempts failures ('sluice failed' lists it). run --queue exits when\n"
    "no job is queued or leased; serve --queue waits for more. Nodes share the store with each\n"
    "other, never with a plain run or serve (exit 4).\n";

static int cmd_enqueue(cli *c) {
    if (c->nargs == 0) return usage_error("%s", "enqueue: no PATH given (for example: sluice enqueue docs/)");
    sl_config *cfg;
    sl_runtime *rt;
    int status = open_runtime(c, SL_STORE_WRITE, false, false, &cfg, &rt);
    if (status) return status;
    if (sl_queue_enqueue(rt, c->args, c->nargs, c->json, stdout)) status = fail(c, EXIT_USAGE);
    sl_runtime_free(rt);
    sl_config_free(cfg);
    return status;
}

static int cmd_queue(cli *c) {
    if (c->nargs != 1 || strcmp(c->args[0], "status") != 0)
        return usage_error("%s", "queue: the subcommand is status (sluice queue status [--json])");
    sl_config *cfg;
    sl_runtime *rt;
    int status = open_runtime(c, SL_STORE_READ, false, false, &cfg, &rt);
    if (status) return status;
    if (sl_queue_status(rt, c->json, stdout)) status = fail(c, EXIT_USAGE);
    sl_runtime_free(rt);
    sl_config_free(cfg);
    return status;
}

/* run --queue, serve --queue: no paths, no prune; the report as run's */
static int cmd_node(cli *c, bool serve) {
    if (c->nargs) return usage_error("%s", "--queue: a node takes its documents from the queue, not PATHs");
    if (c->prune || c->dry_run) return usage_error("%s", "--queue: --prune and --dry-run do not apply");
    if (serve && c->verbosity == SL_LOG_WARN) sl_ctx_set_log_level(c->ctx, SL_LOG_INFO);
    sl_config *cfg;
    sl_runtime *rt;
    int status = open_runtime(c, SL_STORE_WRITE, true, false, &cfg, &rt);
    if (status) return status;
    rt->claim_wait = c->wait;
    sl_report rep;
    memset(&rep, 0, sizeof rep);
    int busy = 0;
    int rc = sl_queue_run_node(rt, serve, &rep, &busy);
    if (rc && !rep.fatal && !rep.run_id) {
        status = fail(c, busy ? EXIT_BUSY : EXIT_USAGE);
    } else {
        if (!serve) {
            if (c->json)
                sl_report_write_json(&rep, stdout);
            else
                sl_report_print(&rep, stdout);
        }
        /* serve --queue ends on a signal: that is its normal end, as serve's */
        status = rep.fatal         ? (rep.stored ? EXIT_DOCS : EXIT_USAGE)
                 : rep.interrupted ? (serve ? EXIT_OK : EXIT_INTERRUPTED)
                 : rep.failed      ? EXIT_DOCS
                                   : EXIT_OK;
    }
    fflush(stdout);
    sl_report_free(&rep);
    sl_runtime_free(rt);
    sl_config_free(cfg);
    return status;
}

static int cmd_run(cli *c) {
    if (c->queue) return cmd_node(c, false);
    if (c->nargs == 0) return usage_error("%s", "run: no PATH given (for example: sluice run docs/)");
    sl_config *cfg;
    sl_runtime *rt;
    /* a dry run starts no stage but the sinks (dryrun.c) */
    int status = open_runtime(c, c->dry_run ? SL_STORE_PEEK : SL_STORE_WRITE, !c->dry_run, false, &cfg, &rt);
    if (status) return status;
    status = run_paths(c, rt, c->args, c->nargs, false);
    sl_runtime_free(rt);
    sl_config_free(cfg);
    return status;
}

/* --- failed, retry --- */

static void say_no_list(const sl_runtime *rt, const sl_failure_list *fl) {
    for (size_t i = 0; i < fl->nno_list; i++) {
        const char *name = fl->no_list[i];
        const sl_instance *s = NULL;
        for (size_t k = 0; k < rt->ninst && !s; k++)
            if (strcmp(rt->inst[k]->name, name) == 0) s = rt->inst[k];
        sl_ctx_log(rt->ctx, SL_LOG_WARN, name,
                   "plugin %s keeps no failure list (it does not implement failures_record and "
                   "failures_list, ABI 1.3): its failed documents are only in each run's report",
                   s ? s->desc->name : "?");
    }
}

static char *when(int64_t t, char *buf, size_t size) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm)) snprintf(buf, size, "?");
    return buf;
}

static int cmd_failed(cli *c) {
    sl_config *cfg;
    sl_runtime *rt;
    int status = open_runtime(c, SL_STORE_READ, false, false, &cfg, &rt);
    if (status) return status;
    sl_failure_list fl;
    if (sl_failures_load(rt, &fl)) {
        status = fail(c, EXIT_USAGE);
        goto out;
    }
    say_no_list(rt, &fl);
    size_t ndead = 0;
    for (size_t i = 0; i < fl.n; i++) ndead += (size_t)fl.rows[i].dead;
    char t1[32], t2[32];
    if (c->json) {
        json_t *arr = json_array(), *nol = json_array();
        for (size_t i = 0; i < fl.n; i++) {
            const sl_failure_entry *e = &fl.rows[i];
            json_array_append_new(
                arr, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:b, s:s}", "uri", e->uri, "stage", e->stage,
                               "reason", e->reason, "attempts", (json_int_t)e->attempts, "first_failed",
                               when(e->first_at, t1, sizeof t1), "last_failed",
                               when(e->last_at, t2, sizeof t2), "dead_letter", e->dead, "sink", e->sink));
        }
        for (size_t i = 0; i < fl.nno_list; i++) json_array_append_new(nol, json_string(fl.no_list[i]));
        json_t *root = json_pack("{s:o, s:I, s:I, s:I, s:o}", "failures", arr, "count", (json_int_t)fl.n,
                                 "dead_letters", (json_int_t)ndead, "max_attempts",
                                 (json_int_t)fl.max_attempts, "sinks_without_failure_list", nol);
        json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(root);
    } else if (fl.n == 0) {
        printf("no failed documents%s\n", fl.nno_list ? " recorded (see the warning above)" : "");
    } else {
        printf("%zu failed documents, %zu of them dead letters (failed max_attempts = %lld runs):\n", fl.n,
               ndead, (long long)fl.max_attempts);
        for (size_t i = 0; i < fl.n; i++) {
            const sl_failure_entry *e = &fl.rows[i];
            printf("  %s%s [%s] attempts %lld, first %s, last %s: %s\n", e->dead ? "DEAD LETTER " : "",
                   e->uri, e->stage, (long long)e->attempts, when(e->first_at, t1, sizeof t1),
                   when(e->last_at, t2, sizeof t2), e->reason);
        }
        printf("('sluice retry' runs them again%s)\n",
               ndead ? "; 'sluice retry --all' the dead letters too" : "");
    }
    sl_failure_list_free(&fl);
out:
    sl_runtime_free(rt);
    sl_config_free(cfg);
    return status;
}

static int cmd_retry(cli *c) {
    if (c->nargs) return usage_error("retry: takes no PATH ('%s'): it runs the failed documents", c->args[0]);
    sl_config *cfg;
    sl_runtime *rt;
    int status = open_runtime(c, SL_STORE_WRITE, true, false, &cfg, &rt);
    if (status) return status;
    sl_failure_list fl;
    if (sl_failures_load(rt, &fl)) {
        status = fail(c, EXIT_USAGE);
        goto out;
    }
    say_no_list(rt, &fl);
    size_t n = 0, nall = 0;
    const char **all = sl_failures_uris(&fl, 0, &nall);
    const char **paths = all ? calloc(nall ? nall : 1, sizeof *paths) : NULL;
    for (size_t i = 0, k = 0; paths && i < fl.n; i++) {
        /* the rows are sorted; the uris of all, distinct, in that order */
        if (k < nall && strcmp(all[k], fl.rows[i].uri) == 0) {
            bool dead = false;
            for (size_t j = i; j < fl.n && strcmp(fl.rows[j].uri, all[k]) == 0; j++)
                dead |= fl.rows[j].dead != 0;
            if (c->all || !dead) paths[n++] = all[k];
            k++;
        }
    }
    if (!paths) {
        sl_ctx_error(c->ctx, SL_ENOMEM, "out of memory");
        status = fail(c, EXIT_USAGE);
    } else if (n == 0) {
        printf("nothing to retry: %s\n",
               fl.n ? "every failed document is a dead letter (sluice retry --all)" : "no failed documents");
    } else {
        status = run_paths(c, rt, paths, n, c->all);
    }
    free(paths);
    free(all);
    sl_failure_list_free(&fl);
out:
    sl_runtime_free(rt);
    sl_config_free(cfg);
    return status;
}

/* --- store check, store rebuild --- */

static int store_check(cli *c) {
    sl_config *cfg;
    sl_runtime *rt;
    /* salvage: read-only, and a damaged store opens, to be checked */
    int status = open_runtime(c, SL_STORE_SALVAGE, false, false, &cfg, &rt);
    if (status) return status;
    int damaged = 0;
    if (sl_store_check(rt, c->json, stdout, &damaged))
        status = fail(c, EXIT_USAGE);
    else
        status = damaged ? EXIT_DOCS : EXIT_OK;
    sl_runtime_free(rt);
    sl_config_free(cfg);
    return status;
}

static int store_rebuild(cli *c) {
    sl_config *cfg;
    sl_runtime *rt;
    int status = open_runtime(c, SL_STORE_SALVAGE, false, false, &cfg, &rt);
    if (status) return status;
    char **paths = NULL;
    size_t n = 0;
    if (sl_store_salvage(rt, &paths, &n)) status = fail(c, EXIT_USAGE);
    sl_runtime_free(rt);
    sl_config_free(cfg);
    if (!status && n == 0) {
        say_error("%s",
                  "store rebuild: the store lists no document it can still read, so there is nothing to "
                  "re-ingest; move the file away and run 'sluice run PATH...' over your folders");
        status = EXIT_USAGE;
    } else if (!status) {
        sl_ctx_log(c->ctx, SL_LOG_WARN, NULL,
                   "rebuilding: %zu documents listed by the store are ingested into a fresh store", n);
        status = open_runtime(c, SL_STORE_REBUILD, true, false, &cfg, &rt);
        if (!status) {
            status = run_paths(c, rt, (const char *const *)paths, n, true);
            if (c->run_stopped || (status != EXIT_OK && status != EXIT_DOCS)) {
                say_error("%s", "store rebuild did not finish: the store was not replaced (run 'sluice store "
                                "rebuild' again)");
                if (status == EXIT_OK) status = EXIT_DOCS;
            } else if (sl_store_swap(rt, stdout)) {
                status = fail(c, EXIT_USAGE);
            }
            sl_runtime_free(rt);
            sl_config_free(cfg);
        }
    }
    for (size_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
    return status;
}

static int cmd_store(cli *c) {
    const char *sub = c->nargs ? c->args[0] : "";
    if (c->nargs != 1 || (strcmp(sub, "check") != 0 && strcmp(sub, "rebuild") != 0))
        return usage_error("store: '%s' is not check or rebuild (sluice store check | sluice store rebuild)",
                           sub);
    if (c->dry_run || c->prune)
        return usage_error("store: %s does not apply", c->dry_run ? "--dry-run" : "--prune");
    return strcmp(sub, "check") == 0 ? store_check(c) : store_rebuild(c);
}

/* --- serve --- */

static int serve_open(void *arg, struct sl_loop *loop, sl_config **cfg, sl_runtime **rt) {
    cli *c = arg;
    *cfg = NULL;
    *rt = NULL;
    int rc = load_config(c, cfg);
    if (!rc) rc = sl_runtime_open_on(c->ctx, *cfg, loop, rt);
    if (!rc) rc = sl_runtime_init(*rt, false);
    if (!rc) (*rt)->claim_wait = c->wait;
    if (rc) {
        sl_runtime_free(*rt);
        sl_config_free(*cfg);
        *rt = NULL;
        *cfg = NULL;
    }
    return rc;
}

static int cmd_serve(cli *c) {
    if (c->queue) return cmd_node(c, true);
    /* a service's log is all it says: what each pass did is worth a line */
    if (c->verbosity == SL_LOG_WARN) sl_ctx_set_log_level(c->ctx, SL_LOG_INFO);
    sl_serve_opts opts = {.paths = c->args, .npaths = c->nargs, .open = serve_open, .open_arg = c};
    int busy = 0;
    if (sl_serve(c->ctx, &opts, &busy)) return fail(c, busy ? EXIT_BUSY : EXIT_USAGE);
    return EXIT_OK;
}

/* --- query --- */

typedef struct embed_one {
    sl_text text;
    float *out;
} embed_one;
static int call_embed_one(sl_call *call, void *arg) {
    embed_one *e = arg;
    call->query = 1; /* the query prefix, for models that have one */
    return call->inst->desc->embed(call, &e->text, 1, e->out);
}

typedef struct query_args {
    const float *v;
    uint32_t dim, k;
    sl_hits *hits;
    const char *text; /* keyword */
} query_args;
static int call_query(sl_call *call, void *arg) {
    query_args *q = arg;
    return call->inst->desc->query(call, q->v, q->dim, q->k, q->hits);
}
static int call_keyword(sl_call *call, void *arg) {
    query_args *q = arg;
    return call->inst->desc->keyword(call, q->text, q->k, q->hits);
}

/* "p. 3 · paragraph, table · Guide > Install": where the hit is and what
 * its chunk is made of (the region only when it says more than the kinds). */
static void print_place(const sl_hit *h) {
    static const char dot[] = " \u00b7 ";
    const char *pages = sl_hit_attr(h, "pages"), *kinds = sl_hit_attr(h, "kinds");
    const char *region = sl_hit_attr(h, "region");
    bool any = false;
    printf("   ");
    if (pages || h->page) {
        if (pages)
            printf("pp. %s", pages);
        else
            printf("p. %u", h->page);
        any = true;
    }
    if (kinds && *kinds) {
        printf("%s", any ? dot : "");
        for (const char *p = kinds; *p; p++)
            if (*p == ',')
                printf(", ");
            else
                putchar(*p);
        any = true;
    }
    if (region && *region && (!kinds || strcmp(region, kinds) != 0)) {
        printf("%sregion %s", any ? dot : "", region);
        any = true;
    }
    if (h->heading && *h->heading) printf("%s%s", any ? dot : "", h->heading);
    putchar('\n');
}

static void print_hits(const sl_hits *hits, bool json, bool fused) {
    size_t n = sl_hits_count(hits);
    json_t *arr = json ? sl_hits_json(hits) : NULL;
    for (size_t i = 0; !json && i < n; i++) {
        const sl_hit *h = sl_hits_at(hits, i);
        printf("%zu. %.4f  %s", i + 1, h->score, h->uri);
        if (h->line) printf(":%u", h->line);
        printf("  chunk %u", h->chunk);
        if (h->vrank && h->krank) /* fused: where each ranking put it */
            printf("  (vector #%u %.4f, keyword #%u %.4f)", h->vrank, h->vscore, h->krank, h->kscore);
        else if (fused) /* hybrid: one ranking alone found it */
            printf("  (%s #%u only)", h->vrank ? "vector" : "keyword", h->vrank ? h->vrank : h->krank);
        putchar('\n');
        print_place(h);
        printf("   ");
        /* one line of text, whitespace folded, cut at ~200 characters */
        int col = 0, space = 0;
        for (const unsigned char *p = (const unsigned char *)h->text; *p && col < 200; p++) {
            if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
                space = 1;
                continue;
            }
            if (space && col) putchar(' '), col++;
            space = 0;
            putchar(*p);
            if ((*p & 0xC0) != 0x80) col++;
        }
        /* finish a cut multi-byte character */
        printf("%s\n", col >= 200 ? " ..." : "");
    }
    if (json) {
        json_dumpf(arr, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(arr);
    } else if (n == 0) {
        printf("no results (is the store empty? run 'sluice run PATH' first)\n");
    }
}

/* The vector ranking: embeds text and asks the sink for the `depth`
 * nearest chunks, ranked. 0 or an exit status (the error said). */
static int vector_ranking(const sl_route *r, const char *text, uint32_t depth, sl_hits **out) {
    uint32_t dim = r->embedder->dim;
    float *v = calloc(dim ? dim : 1, sizeof *v);
    embed_one e = {{text, strlen(text)}, v};
    sl_call call;
    int rc = v ? sl_invoke(r->embedder, call_embed_one, &e, &call) : SL_ENOMEM;
    if (rc) {
        say_error("[%s] embedding the query failed: %s", r->embedder->name,
                  call.msg[0] ? call.msg : sl_strerror(rc));
        free(v);
        return EXIT_USAGE;
    }
    sl_hits *hits = sl_hits_new(depth);
    query_args q = {v, dim, depth, hits, text};
    rc = hits ? sl_invoke(r->sink, call_query, &q, &call) : SL_ENOMEM;
    free(v);
    if (rc) {
        say_error("[%s] query failed: %s", r->sink->name, call.msg[0] ? call.msg : sl_strerror(rc));
        sl_hits_free(hits);
        return EXIT_USAGE;
    }
    sl_hits_rank(hits, true);
    *out = hits;
    return 0;
}

/* The keyword ranking. *out stays NULL (and a note says why) when the
 * store keeps no keyword index. 0 or an exit status. */
static int keyword_ranking(const sl_route *r, const char *text, uint32_t depth, sl_hits **out) {
    sl_hits *hits = sl_hits_new(depth);
    query_args q = {NULL, 0, depth, hits, text};
    sl_call call;
    int rc = hits ? sl_invoke(r->sink, call_keyword, &q, &call) : SL_ENOMEM;
    if (rc == SL_KEYWORD_NO_INDEX) {
        sl_ctx_log(sl_ctx_global(), SL_LOG_WARN, r->sink->name, "no keyword ranking: %s",
                   call.msg[0] ? call.msg : "the store has no keyword index");
        sl_hits_free(hits);
        return 0;
    }
    if (rc) {
        say_error("[%s] keyword query failed: %s", r->sink->name, call.msg[0] ? call.msg : sl_strerror(rc));
        sl_hits_free(hits);
        return EXIT_USAGE;
    }
    sl_hits_rank(hits, false);
    *out = hits;
    return 0;
}

static int cmd_query(cli *c) {
    if (c->nargs == 0)
        return usage_error("%s", "query: no TEXT given (for example: sluice query \"how to install\")");
    sl_query_mode mode = SL_QUERY_HYBRID;
    if (c->mode && sl_query_mode_parse(c->mode, &mode))
        return usage_error("--mode: '%s' is not hybrid, vector or keyword", c->mode);
    size_t len = 0;
    for (size_t i = 0; i < c->nargs; i++) len += strlen(c->args[i]) + 1;
    char *text = calloc(1, len + 1);
    for (size_t i = 0; text && i < c->nargs; i++) {
        if (i) strcat(text, " ");
        strcat(text, c->args[i]);
    }
    sl_config *cfg = NULL;
    sl_runtime *rt = NULL;
    sl_hits *vec = NULL, *kw = NULL, *fused = NULL;
    int status = text ? open_runtime(c, SL_STORE_READ, false, false, &cfg, &rt) : EXIT_USAGE;
    if (status) goto out;
    const sl_route *r = c->route ? sl_runtime_route_named(rt, c->route) : &rt->routes[0];
    if (!r) {
        status = usage_error("query: no route named '%s'", c->route);
        goto out;
    }
    bool want_vec = mode != SL_QUERY_KEYWORD, want_kw = mode != SL_QUERY_VECTOR;
    if (want_kw && !r->sink->desc->keyword) {
        if (mode == SL_QUERY_KEYWORD) {
            say_error("[%s] (plugin %s) has no keyword search: use --mode vector", r->sink->name,
                      r->sink->desc->name);
            status = EXIT_USAGE;
            goto out;
        }
        sl_ctx_log(sl_ctx_global(), SL_LOG_WARN, r->sink->name,
                   "plugin %s has no keyword search: ranking by vector alone", r->sink->desc->name);
        want_kw = false;
    }
    if (want_vec && !r->embedder) {
        if (mode == SL_QUERY_VECTOR || !want_kw) {
            say_error("[route.%s] has no embedder: its chunks have no vectors to query", r->name);
            status = EXIT_USAGE;
            goto out;
        }
        sl_ctx_log(sl_ctx_global(), SL_LOG_WARN, NULL, "[route.%s] has no embedder: ranking by keyword alone",
                   r->name);
        want_vec = false;
    }
    if ((want_vec && sl_instance_init(c->ctx, r->embedder)) || sl_instance_init(c->ctx, r->sink)) {
        status = fail(c, EXIT_USAGE);
        goto out;
    }
    /* one ranking alone answers k; two are fused from deeper lists */
    uint32_t k = (uint32_t)c->k, depth = want_vec && want_kw ? sl_query_depth(k) : k;
    if (want_vec) status = vector_ranking(r, text, depth, &vec);
    if (!status && want_kw) status = keyword_ranking(r, text, depth, &kw);
    if (!status && mode == SL_QUERY_KEYWORD && !kw) {
        say_error("[%s] has no keyword index to search: use --mode vector, or run 'sluice run' once to "
                  "build it",
                  r->sink->name);
        status = EXIT_USAGE;
    }
    if (!status) {
        if (vec && kw) {
            fused = sl_hits_fuse(vec, kw, k, (uint32_t)c->rrf_k, c->vweight, c->kweight);
            if (!fused) {
                say_error("%s", "query: out of memory");
                status = EXIT_USAGE;
            }
        }
        sl_hits *one = vec ? vec : kw; /* the other ranking was not there: cut to k */
        if (!fused) sl_hits_truncate(one, k);
        if (!status) print_hits(fused ? fused : one, c->json, fused != NULL);
    }
out:
    sl_hits_free(vec);
    sl_hits_free(kw);
    sl_hits_free(fused);
    free(text);
    sl_runtime_free(rt);
    sl_config_free(cfg);
    return status;
}

/* --- plugins --- */

static void print_options(const sl_option *o, const char *indent) {
    for (; o && o->name; o++) {
        printf("%s%-16s %-8s", indent, o->name, sl_opt_type_name(o->type));
        if (o->flags & SL_OPT_REQUIRED)
            printf(" required");
        else
            printf(" default %s", o->def && *o->def ? o->def : "\"\"");
        if (o->flags & SL_OPT_SECRET) printf(" (secret)");
        if (o->type == SL_OPT_ENUM && o->choices) printf(" (%s)", o->choices);
        printf("\n%s    %s\n", indent, o->help ? o->help : "");
    }
}

static json_t *options_json(const sl_option *o) {
    json_t *arr = json_array();
    for (; o && o->name; o++) {
        json_t *j = json_object();
        json_object_set_new(j, "name", json_string(o->name));
        json_object_set_new(j, "type", json_string(sl_opt_type_name(o->type)));
        json_object_set_new(j, "default", o->def ? json_string(o->def) : json_null());
        json_object_set_new(j, "help", json_string(o->help ? o->help : ""));
        json_object_set_new(j, "required", json_boolean(o->flags & SL_OPT_REQUIRED));
        json_object_set_new(j, "secret", json_boolean(o->flags & SL_OPT_SECRET));
        if (o->choices) json_object_set_new(j, "choices", json_string(o->choices));
        json_array_append_new(arr, j);
    }
    return arr;
}

static void bad_plugin(void *arg, const char *path, const char *msg) {
    int *nbad = arg;
    (*nbad)++;
    sl_ctx_log(sl_ctx_global(), SL_LOG_WARN, NULL, "%s", msg);
}

static int cmd_plugins(cli *c) {
    sl_config *cfg = NULL;
    sl_registry *reg = NULL;
    if (load_config(c, &cfg)) return fail(c, EXIT_USAGE);
    if (sl_registry_new(c->ctx, &reg)) {
        sl_config_free(cfg);
        return fail(c, EXIT_USAGE);
    }
    sl_conf_kv *pp = sl_config_get(cfg, "sluice", "plugin_path");
    if (pp) sl_registry_add_path_list(reg, pp->value, cfg->dir);
    int nbad = 0;
    sl_registry_load_all(c->ctx, reg, bad_plugin, &nbad);
    const sl_loaded *const *list;
    size_t n = sl_registry_loaded(reg, &list);
    if (c->json) {
        json_t *root = json_object(), *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            const sl_plugin *d = &list[i]->desc;
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(d->name));
            json_object_set_new(o, "version", json_string(d->version));
            json_object_set_new(o, "role", json_string(sl_role_name(d->role)));
            json_object_set_new(o, "bottleneck", json_string(sl_bottleneck_name(d->bottleneck)));
            /* an io plugin whose requests are built on a pool thread (ABI 1.7) */
            json_object_set_new(o, "sends_off_loop",
                                json_boolean(d->bottleneck == SL_IO && (d->flags & SL_PLUGIN_SEND_OFF_LOOP)));
            json_object_set_new(o, "summary", json_string(d->summary ? d->summary : ""));
            json_object_set_new(o, "path", json_string(list[i]->path));
            json_object_set_new(o, "options", options_json(d->options));
            json_t *applies = json_array();
            for (const sl_option *so = sl_stage_options(); so->name; so++)
                if (sl_stage_option_applies(so, d)) json_array_append_new(applies, json_string(so->name));
            json_object_set_new(o, "stage_settings", applies);
            json_array_append_new(arr, o);
        }
        json_object_set_new(root, "plugins", arr);
        json_object_set_new(root, "stage_settings", options_json(sl_stage_options()));
        json_object_set_new(root, "sluice_settings", options_json(sl_settings_options()));
        json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(root);
    } else {
        const char *const *dirs;
        size_t nd = sl_registry_dirs(reg, &dirs);
        printf("plugin folders, in search order:\n");
        for (size_t i = 0; i < nd; i++) printf("  %s\n", dirs[i]);
        for (size_t i = 0; i < n; i++) {
            const sl_plugin *d = &list[i]->desc;
            printf("\n%s %s  role %s, bottleneck %s\n  %s\n  %s\n", d->name, d->version,
                   sl_role_name(d->role), sl_bottleneck_name(d->bottleneck), d->summary ? d->summary : "",
                   list[i]->path);
            if (d->options && d->options->name) {
                printf("  options:\n");
                print_options(d->options, "    ");
            }
            printf("  stage settings that apply:");
            for (const sl_option *o = sl_stage_options(); o->name; o++)
                if (sl_stage_option_applies(o, d)) printf(" %s", o->name);
            printf("\n");
        }
        printf("\nsettings every stage section accepts:\n");
        print_options(sl_stage_options(), "    ");
        printf("\n[sluice] settings:\n");
        print_options(sl_settings_options(), "    ");
    }
    sl_registry_free(reg);
    sl_config_free(cfg);
    return n == 0 ? EXIT_USAGE : EXIT_OK;
}

/* --- inspect: one document through its route, nothing stored --- */

typedef struct inspect_state {
    json_t *stages;  /* one object per step, in order */
    size_t elements; /* elements already shown */
    bool embedded;   /* vectors shown */
} inspect_state;

static json_t *json_text(const char *s) {
    json_t *j = json_string(s ? s : "");
    /* element text is not always valid UTF-8: say so instead of dropping it */
    return j ? j : json_string("(not valid UTF-8)");
}

static void inspect_observe(void *arg, const char *stage, const char *op, const sl_doc *doc, double busy_s) {
    inspect_state *is = arg;
    json_t *o = json_object();
    json_object_set_new(o, "stage", json_string(stage));
    json_object_set_new(o, "operation", json_string(op));
    json_object_set_new(o, "busy_s", json_real(busy_s));
    if (strcmp(op, "read") == 0) {
        size_t len = 0;
        sl_doc_data(doc, &len);
        json_object_set_new(o, "bytes", json_integer((json_int_t)len));
        json_object_set_new(o, "media_type", json_string(sl_doc_media_type(doc)));
        json_object_set_new(o, "hash", json_string(sl_doc_hash(doc) ? sl_doc_hash(doc) : ""));
    }
    size_t ne = sl_doc_element_count(doc);
    if (ne > is->elements) { /* what this step added */
        json_t *arr = json_array();
        for (size_t i = is->elements; i < ne; i++) {
            json_t *e = json_object();
            json_object_set_new(e, "index", json_integer((json_int_t)i));
            json_object_set_new(e, "kind", json_string(sl_elem_type_name(sl_element_type(doc, i))));
            json_object_set_new(e, "level", json_integer(sl_element_level(doc, i)));
            json_object_set_new(e, "page", json_integer(sl_element_page(doc, i)));
            json_object_set_new(e, "line", json_integer(sl_element_line(doc, i)));
            json_object_set_new(e, "text", json_text(sl_element_text(doc, i, NULL)));
            json_array_append_new(arr, e);
        }
        json_object_set_new(o, "elements", arr);
        is->elements = ne;
    }
    size_t nc = sl_doc_chunk_count(doc);
    if (strcmp(op, "chunk") == 0 || strcmp(op, "summarize") == 0 || strcmp(op, "embed") == 0) {
        json_t *arr = json_array();
        for (size_t i = 0; i < nc; i++) {
            json_t *c = json_object();
            json_object_set_new(c, "index", json_integer((json_int_t)i));
            json_object_set_new(c, "page", json_integer(sl_chunk_page(doc, i)));
            json_object_set_new(c, "line", json_integer(sl_chunk_line(doc, i)));
            json_object_set_new(c, "heading", json_text(sl_chunk_heading(doc, i)));
            if (strcmp(op, "chunk") == 0)
                json_object_set_new(c, "text", json_text(sl_chunk_text(doc, i, NULL)));
            const char *sum = sl_chunk_summary(doc, i);
            if (strcmp(op, "summarize") == 0 && sum) json_object_set_new(c, "summary", json_text(sum));
            uint32_t dim = 0;
            const float *v = sl_chunk_vector(doc, i, &dim);
            if (strcmp(op, "embed") == 0 && v) {
                double n2 = 0;
                for (uint32_t k = 0; k < dim; k++) n2 += (double)v[k] * v[k];
                json_object_set_new(c, "dimension", json_integer(dim));
                json_object_set_new(c, "norm", json_real(sqrt(n2)));
                json_t *head = json_array();
                for (uint32_t k = 0; k < dim && k < 4; k++) json_array_append_new(head, json_real(v[k]));
                json_object_set_new(c, "first", head);
            }
            json_array_append_new(arr, c);
        }
        json_object_set_new(o, "chunks", arr);
    }
    json_t *meta = json_object();
    for (size_t i = 0; i < sl_doc_meta_count(doc); i++) {
        const char *k, *v;
        if (sl_doc_meta_at(doc, i, &k, &v) == 0) json_object_set_new(meta, k, json_text(v));
    }
    json_object_set_new(o, "metadata", meta);
    json_array_append_new(is->stages, o);
}

/* One line of text, whitespace folded, cut at `max` characters. */
static void print_folded(const char *s, int max) {
    int col = 0, space = 0;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p && col < max; p++) {
        if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
            space = 1;
            continue;
        }
        if (space && col) putchar(' '), col++;
        space = 0;
        putchar(*p);
        if ((*p & 0xC0) != 0x80) col++;
    }
    printf("%s\n", col >= max ? " ..." : "");
}

static void inspect_print(json_t *stages) {
    size_t i;
    json_t *st;
    json_array_foreach(stages, i, st) {
        printf("== %s (%s) %.6f s\n", json_string_value(json_object_get(st, "stage")),
               json_string_value(json_object_get(st, "operation")),
               json_real_value(json_object_get(st, "busy_s")));
        json_t *b = json_object_get(st, "bytes");
        if (b)
            printf("  %lld bytes, %s, hash %.16s\n", (long long)json_integer_value(b),
                   json_string_value(json_object_get(st, "media_type")),
                   json_string_value(json_object_get(st, "hash")));
        size_t k;
        json_t *e;
        json_array_foreach(json_object_get(st, "elements"), k, e) {
            printf("  element %lld %s", (long long)json_integer_value(json_object_get(e, "index")),
                   json_string_value(json_object_get(e, "kind")));
            if (json_integer_value(json_object_get(e, "level")))
                printf(" level %lld", (long long)json_integer_value(json_object_get(e, "level")));
            if (json_integer_value(json_object_get(e, "page")))
                printf(" page %lld", (long long)json_integer_value(json_object_get(e, "page")));
            if (json_integer_value(json_object_get(e, "line")))
                printf(" line %lld", (long long)json_integer_value(json_object_get(e, "line")));
            printf(": ");
            print_folded(json_string_value(json_object_get(e, "text")), 100);
        }
        json_array_foreach(json_object_get(st, "chunks"), k, e) {
            printf("  chunk %lld", (long long)json_integer_value(json_object_get(e, "index")));
            if (json_integer_value(json_object_get(e, "page")))
                printf(" page %lld", (long long)json_integer_value(json_object_get(e, "page")));
            if (json_integer_value(json_object_get(e, "line")))
                printf(" line %lld", (long long)json_integer_value(json_object_get(e, "line")));
            const char *h = json_string_value(json_object_get(e, "heading"));
            if (h && *h) printf(" [%s]", h);
            if (json_object_get(e, "dimension"))
                printf(": vector of %lld dimensions, norm %.4f\n",
                       (long long)json_integer_value(json_object_get(e, "dimension")),
                       json_real_value(json_object_get(e, "norm")));
            else if (json_object_get(e, "summary"))
                printf(": summary: "), print_folded(json_string_value(json_object_get(e, "summary")), 200);
            else if (json_object_get(e, "text"))
                printf(": "), print_folded(json_string_value(json_object_get(e, "text")), 100);
            else
                printf("\n");
        }
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(st, "metadata"), key, v) {
            if (i + 1 == json_array_size(stages)) printf("  metadata %s = %s\n", key, json_string_value(v));
        }
    }
}

/* Inits what the route of `media` calls, the sink excepted (it is never called). */
static int init_route(cli *c, sl_runtime *rt, const sl_route *r) {
    sl_instance *list[64];
    size_t n = 0;
    list[n++] = r->parser;
    for (size_t i = 0; i < r->npages && n < 60; i++) list[n++] = r->pages[i];
    list[n++] = r->chunker;
    if (r->llm) list[n++] = r->llm;
    if (r->embedder) list[n++] = r->embedder;
    for (size_t i = 0; i < n; i++) {
        sl_instance *in = list[i];
        /* isolated stages are initialised in their worker processes */
        if (in->stage.isolated || in->desc->bottleneck == SL_ISOLATED) continue;
        if (sl_instance_init(c->ctx, in)) return -1;
        for (size_t f = 0; f < in->nfallbacks; f++)
            if (sl_instance_init(c->ctx, in->fallbacks[f])) return -1;
    }
    (void)rt;
    return 0;
}

/* Runs FILE through its route in rt (up to c->stage), prints what each step made. */
static int inspect_run(cli *c, sl_runtime *rt, const char *file) {
    const char *media = sl_media_type_for_path(file);
    const sl_route *r = sl_runtime_route_for(rt, media);
    if (!r) {
        fprintf(stderr, "sluice: no route for %s (media type %s): add it to a [route.*] section's media\n",
                file, media);
        return EXIT_USAGE;
    }
    if (c->stage) {
        bool found = strcmp(c->stage, "read") == 0 || strcmp(c->stage, r->parser->name) == 0 ||
                     strcmp(c->stage, r->chunker->name) == 0 ||
                     (r->llm && strcmp(c->stage, r->llm->name) == 0) ||
                     (r->embedder && strcmp(c->stage, r->embedder->name) == 0);
        for (size_t i = 0; i < r->npages; i++) found |= strcmp(c->stage, r->pages[i]->name) == 0;
        if (!found) {
            fprintf(stderr, "sluice: inspect --stage %s: [route.%s] has no such stage (its stages: read %s",
                    c->stage, r->name, r->parser->name);
            for (size_t i = 0; i < r->npages; i++) fprintf(stderr, " %s", r->pages[i]->name);
            fprintf(stderr, " %s%s%s%s%s)\n", r->chunker->name, r->llm ? " " : "", r->llm ? r->llm->name : "",
                    r->embedder ? " " : "", r->embedder ? r->embedder->name : "");
            return EXIT_USAGE;
        }
    }
    if (init_route(c, rt, r)) return fail(c, EXIT_USAGE);
    inspect_state is = {.stages = json_array()};
    const char *paths[1] = {file};
    sl_run_opts opts = {.paths = paths,
                        .npaths = 1,
                        .inspect = 1,
                        .stop_after = c->stage,
                        .observe = inspect_observe,
                        .observe_arg = &is};
    sl_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = sl_pipeline_run(rt, &opts, &rep);
    int status = EXIT_OK;
    if (rc && !rep.fatal) {
        status = fail(c, EXIT_USAGE);
    } else {
        json_t *root = json_object();
        json_object_set_new(root, "file", json_string(file));
        json_object_set_new(root, "route", json_string(r->name));
        json_object_set_new(root, "stages", is.stages);
        is.stages = NULL;
        if (rep.nfailures) {
            json_object_set_new(root, "failed_in", json_string(rep.failures[0].stage));
            json_object_set_new(root, "reason", json_text(rep.failures[0].reason));
        }
        if (c->json) {
            json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            putchar('\n');
        } else {
            printf("%s: [route.%s], nothing stored\n", file, r->name);
            inspect_print(json_object_get(root, "stages"));
            if (rep.nfailures) printf("FAILED in %s: %s\n", rep.failures[0].stage, rep.failures[0].reason);
        }
        json_decref(root);
        status = rep.fatal ? EXIT_USAGE : rep.failed ? EXIT_DOCS : EXIT_OK;
    }
    json_decref(is.stages);
    sl_report_free(&rep);
    return status;
}

static int cmd_inspect(cli *c) {
    if (c->nargs != 1)
        return usage_error("%s", "inspect: give one FILE (for example: sluice inspect README.md)");
    sl_config *cfg;
    sl_runtime *rt;
    int status = open_runtime(c, SL_STORE_PEEK, false, false, &cfg, &rt);
    if (status) return status;
    status = inspect_run(c, rt, c->args[0]);
    sl_runtime_free(rt);
    sl_config_free(cfg);
    return status;
}

/* `check --plugin X.so --input FILE`: FILE through the built-in pipeline
 * with X in its role's place, up to X, nothing stored. */
static int check_input(cli *c) {
    sl_registry *reg = NULL;
    const sl_loaded *p = NULL;
    if (sl_registry_new(c->ctx, &reg) || sl_registry_open(c->ctx, reg, c->plugin, &p)) {
        sl_registry_free(reg);
        return fail(c, EXIT_USAGE);
    }
    char name[256], dir[4096], *slash;
    snprintf(name, sizeof name, "%s", p->desc.name);
    sl_role role = p->desc.role;
    snprintf(dir, sizeof dir, "%s", p->path);
    slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    sl_registry_free(reg);
    if (role != SL_ROLE_PARSER && role != SL_ROLE_PAGE && role != SL_ROLE_CHUNKER && role != SL_ROLE_LLM &&
        role != SL_ROLE_EMBEDDER) {
        fprintf(
            stderr,
            "sluice: check --input: %s is a %s; inspecting never calls a sink: run 'sluice run' against a "
            "test store instead\n",
            name, sl_role_name(role));
        return EXIT_USAGE;
    }
    /* The built-in config, loaded once: the plugin goes in as stage
     * [inspected] in the route that takes FILE's type (route.text when none
     * does; matched by whole words, as sl_runtime_route_for matches), and
     * the plugin's own --set KEY=VALUE become inspected.KEY=VALUE. */
    const char *media = sl_media_type_for_path(c->input);
    char route[128] = "route.text", first[64] = "markdown";
    int owned_route = 0;
    sl_config *cfg = NULL;
    const char *user_config = c->config;
    size_t user_n = c->nsets;
    c->config = NULL;
    c->nsets = 0;
    int lrc = load_config(c, &cfg);
    c->config = user_config;
    c->nsets = user_n;
    if (lrc) {
        sl_config_free(cfg);
        return fail(c, EXIT_USAGE);
    }
    size_t ml = strlen(media);
    for (size_t i = 0; !owned_route && i < cfg->nsections; i++) {
        const sl_conf_section *sec = &cfg->sections[i];
        if (strncmp(sec->name, "route.", 6) != 0) continue;
        const sl_conf_kv *m = sl_config_get(cfg, sec->name, "media");
        const sl_conf_kv *st = sl_config_get(cfg, sec->name, "stages");
        for (const char *q = m && st ? m->value : NULL; q && *q && !owned_route;) {
            q += strspn(q, " \t");
            size_t wl = strcspn(q, " \t");
            if (wl == ml && strncmp(q, media, ml) == 0) {
                snprintf(route, sizeof route, "%s", sec->name);
                snprintf(first, sizeof first, "%.*s", (int)strcspn(st->value, " \t"), st->value);
                owned_route = 1;
            }
            q += wl;
        }
    }
    char stages[256];
    switch (role) {
    case SL_ROLE_PARSER: snprintf(stages, sizeof stages, "inspected chunker embedder"); break;
    case SL_ROLE_PAGE: snprintf(stages, sizeof stages, "%s inspected chunker embedder", first); break;
    case SL_ROLE_CHUNKER: snprintf(stages, sizeof stages, "%s inspected embedder", first); break;
    default: snprintf(stages, sizeof stages, "%s chunker inspected", first); break;
    }
    size_t n = c->nsets;
    char **owned = calloc(n + 5, sizeof *owned);
    int status = owned ? EXIT_OK : EXIT_USAGE;
    size_t k = 0;
    if (!status) {
        if (asprintf(&owned[k++], "sluice.plugin_path=%s", dir) < 0 ||
            asprintf(&owned[k++], "inspected.plugin=%s", name) < 0 ||
            asprintf(&owned[k++], "%s.stages=%s", route, stages) < 0 ||
            (!owned_route && asprintf(&owned[k++], "route.text.media=%s%s", media,
                                      role == SL_ROLE_PARSER ? "" : " text/markdown text/plain") < 0) ||
            /* the plugin need not read the route's other types */
            (owned_route && role == SL_ROLE_PARSER && asprintf(&owned[k++], "%s.media=%s", route, media) < 0))
            status = usage_error("%s", "out of memory");
        for (size_t i = 0; !status && i < n; i++)
            if (asprintf(&owned[k++], "inspected.%s", c->sets[i]) < 0)
                status = usage_error("%s", "out of memory");
    }
    for (size_t i = 0; !status && i < k; i++)
        if (sl_config_set(c->ctx, cfg, owned[i])) status = fail(c, EXIT_USAGE);
    sl_runtime *rt = NULL;
    if (!status && sl_runtime_open(c->ctx, cfg, &rt)) status = fail(c, EXIT_USAGE);
    if (!status) sl_runtime_set_store_mode(rt, SL_STORE_PEEK); /* the sink is never written */
    if (!status) {
        const char *user_stage = c->stage;
        c->stage = "inspected";
        status = inspect_run(c, rt, c->input);
        c->stage = user_stage;
    }
    sl_runtime_free(rt);
    sl_config_free(cfg);
    for (size_t i = 0; owned && i < k; i++) free(owned[i]);
    free(owned);
    return status;
}

/* --- check --- */

static int cmd_check(cli *c) {
    if (c->input && !c->plugin)
        return usage_error(
            "%s", "check: --input goes with --plugin X.so (a config's own route: sluice inspect FILE)");
    if (c->input && c->connect)
        return usage_error("%s", "check: --input reads a document and --connect reads none: run them apart");
    if (c->plugin && c->input) return check_input(c);
    if (c->plugin) {
        int rc = sl_check_plugin(c->ctx, c->plugin, c->sets, c->nsets, c->connect, stdout);
        if (rc) return fail(c, rc == SL_EBADINPUT ? EXIT_DOCS : EXIT_USAGE);
        return EXIT_OK;
    }
    if (c->json && !c->connect) return usage_error("%s", "check: --json goes with --connect");
    sl_config *cfg;
    sl_runtime *rt;
    /* --connect inits each instance itself: one that fails is a row of the table */
    int status = open_runtime(c, SL_STORE_PEEK, !c->connect, true, &cfg, &rt);
    if (status) return status;
    /* the probes first (they init the instances), their table after the routes */
    char *table = NULL;
    size_t table_len = 0;
    if (c->connect) {
        FILE *mem = c->json ? stdout : open_memstream(&table, &table_len);
        int failed = mem ? sl_probe_all(rt, c->json, mem) : sl_ctx_error(c->ctx, SL_ENOMEM, "out of memory");
        if (mem && mem != stdout) fclose(mem);
        if (failed) status = failed < 0 ? fail(c, EXIT_USAGE) : EXIT_USAGE;
    }
    if (!c->json || !c->connect) {
        printf("config %s: ok (%zu stages, %zu routes, %d threads)\n", cfg->path, rt->ninst, rt->nroutes,
               rt->threads);
        for (size_t i = 0; i < rt->nroutes; i++) {
            const sl_route *r = &rt->routes[i];
            printf("  [route.%s] ", r->name);
            for (size_t m = 0; m < r->nmedia; m++) printf("%s%s", m ? " " : "", r->media[m]);
            printf(": %s", r->parser->name);
            for (size_t p = 0; p < r->npages; p++) printf(" -> %s", r->pages[p]->name);
            printf(" -> %s", r->chunker->name);
            if (r->llm) printf(" -> %s (summaries)", r->llm->name);
            if (r->embedder) printf(" -> %s (%u dimensions)", r->embedder->name, r->embedder->dim);
            printf(" -> %s  fingerprint %.12s\n", r->sink->name, r->fingerprint);
        }
        for (size_t i = 0; i < rt->ninst; i++) {
            const sl_instance *s = rt->inst[i];
            printf("  [%s] %s %s (%s, %s) %s\n", s->name, s->desc->name, s->desc->version,
                   sl_role_name(s->desc->role),
                   s->desc->bottleneck == SL_IO ? "runs on the loop" : "runs on the thread pool",
                   s->plugin->path);
        }
    }
    if (table) fputs(table, stdout);
    free(table);
    sl_runtime_free(rt);
    sl_config_free(cfg);
    return status;
}

int main(int argc, char **argv) {
    cli c;
    memset(&c, 0, sizeof c);
    int status = parse_args(&c, argc, argv);
    if (status) goto out;
    c.ctx = sl_ctx_new();
    if (!c.ctx) {
        status = usage_error("%s", "out of memory");
        goto out;
    }
    /* a provider or database hanging up mid-write must fail a call, not kill the run */
    signal(SIGPIPE, SIG_IGN);
    sl_ctx_set_log_level(c.ctx, c.verbosity);
    if (c.log_format && strcmp(c.log_format, "json") == 0) {
        sl_ctx_set_log_json(c.ctx, 1);
        setenv("SLUICE_LOG_FORMAT", "json", 1); /* worker processes log the same way (worker_main.c) */
    }
    sl_ctx_set_global(c.ctx);
    const char *cmd = c.command;
    /* a crash inside a plugin names it (guard.h); a worker process's own
     * death is reported by its supervisor instead */
    if (cmd && strcmp(cmd, "__worker") != 0) sl_guard_install(cmd);
    /* an interrupt while the configuration and plugins load ends the run
     * with exit 3 once it starts, rather than killing it mid-initialisation */
    if (cmd && (!strcmp(cmd, "run") || !strcmp(cmd, "retry") || !strcmp(cmd, "serve")))
        sl_guard_hold_interrupts();
    if (!cmd) {
        fputs(usage_main, c.help ? stdout : stderr);
        status = c.help ? EXIT_OK : EXIT_USAGE;
    } else if (strcmp(cmd, "version") == 0) {
        printf("sluice %s (plugin ABI %d.%d)\n", SLUICE_VERSION_STRING, SL_ABI_MAJOR, SL_ABI_MINOR);
    } else if (strcmp(cmd, "run") == 0) {
        status = c.help ? (fputs(usage_run, stdout), EXIT_OK) : cmd_run(&c);
    } else if (strcmp(cmd, "query") == 0) {
        status = c.help ? (fputs(usage_query, stdout), EXIT_OK) : cmd_query(&c);
    } else if (strcmp(cmd, "plugins") == 0) {
        status = c.help ? (fputs(usage_plugins, stdout), EXIT_OK) : cmd_plugins(&c);
    } else if (strcmp(cmd, "check") == 0) {
        status = c.help ? (fputs(usage_check, stdout), EXIT_OK) : cmd_check(&c);
    } else if (strcmp(cmd, "serve") == 0) {
        status = c.help ? (fputs(usage_serve, stdout), EXIT_OK) : cmd_serve(&c);
    } else if (strcmp(cmd, "failed") == 0) {
        status = c.help ? (fputs(usage_failed, stdout), EXIT_OK) : cmd_failed(&c);
    } else if (strcmp(cmd, "retry") == 0) {
        status = c.help ? (fputs(usage_retry, stdout), EXIT_OK) : cmd_retry(&c);
    } else if (strcmp(cmd, "store") == 0) {
        status = c.help ? (fputs(usage_store, stdout), EXIT_OK) : cmd_store(&c);
    } else if (strcmp(cmd, "inspect") == 0) {
        status = c.help ? (fputs(usage_inspect, stdout), EXIT_OK) : cmd_inspect(&c);
    } else if (strcmp(cmd, "enqueue") == 0) {
        status = c.help ? (fputs(usage_queue, stdout), EXIT_OK) : cmd_enqueue(&c);
    } else if (strcmp(cmd, "queue") == 0) {
        status = c.help ? (fputs(usage_queue, stdout), EXIT_OK) : cmd_queue(&c);
    } else if (strcmp(cmd, "__worker") == 0) {
        status = c.nargs == 1 ? sl_worker_main(atoi(c.args[0])) : EXIT_USAGE;
    } else if (strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
    } else {
        status = usage_error("unknown command '%s'", cmd);
    }
out:
    sl_ctx_free(c.ctx);
    free(c.args);
    free(c.sets);
    free(c.listen_set);
    return status;
}
