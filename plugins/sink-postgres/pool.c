/* pool.c - sink-postgres's connections, driven from the loop thread.
 *
 * Each connection runs libpq in non-blocking pipeline mode with its socket
 * on an sl_watch: an operation (one sink call) is sent as all its
 * statements followed by one sync, and its results are read as the socket
 * becomes readable, so a document's whole transaction costs one round trip
 * and the loop never waits. A connection runs one operation at a time;
 * operations beyond the free connections wait in a FIFO queue. The core is
 * told the pool's size (sl_instance_set_concurrency) and rarely sends more.
 *
 * Connections are made on demand: init hands over the blocking connection
 * it checked the server with, and the others are opened asynchronously
 * (PQconnectStartParams / PQconnectPoll, with the socket re-registered after
 * every step because libpq may switch sockets) the first time an operation
 * finds no free one. A connection that breaks is closed, and reopened the
 * same way when work next needs it; nothing reconnects in the background,
 * so an idle sink holds no timers and the loop can end.
 *
 * Failures: an operation interrupted by a broken connection fails as
 * retryable and the core sends the call again (a document's transaction is
 * all or nothing, so running it again is safe). An operation about to start
 * on a connection the server has closed since its last use (a restart) is
 * not failed at all: the connection is reopened first. When no connection
 * can be opened, waiting operations fail as retryable with libpq's reason
 * and a retry-after of a second, so the core's backoff spans a restart.
 *
 * libpq's rules followed here: PQconsumeInput before PQisBusy, every time;
 * PQflush until it answers 0, watching for writability meanwhile; a watch is
 * stopped before libpq closes its descriptor (PQfinish).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink_postgres.h"

/* A server that refuses connections is given this long between tries. */
#define UNREACHABLE_RETRY_MS 1000

/* --- operations --- */

struct pg_block {
    pg_block *next;
    void *p;
};

pg_op *pg_op_new(sl_call *call, const char *what, const char *subject) {
    pg_op *op = calloc(1, sizeof *op);
    if (!op) return NULL;
    op->call = call;
    op->what = what;
    op->subject = pg_op_strdup(op, subject ? subject : "");
    if (!op->subject) {
        free(op);
        return NULL;
    }
    return op;
}

static void *keep(pg_op *op, void *p) {
    if (!p) return NULL;
    pg_block *b = malloc(sizeof *b);
    if (!b) {
        free(p);
        return NULL;
    }
    b->p = p;
    b->next = op->blocks;
    op->blocks = b;
    return p;
}

void *pg_op_alloc(pg_op *op, size_t size) { return keep(op, calloc(1, size ? size : 1)); }

char *pg_op_strdup(pg_op *op, const char *s) { return keep(op, strdup(s)); }

pg_stmt *pg_op_stmt(pg_op *op, const char *sql, int nparams) {
    if (op->nstmts == op->capstmts) {
        int nc = op->capstmts ? op->capstmts * 2 : 8;
        pg_stmt *ns = realloc(op->stmts, (size_t)nc * sizeof *ns);
        if (!ns) return NULL;
        op->stmts = ns;
        op->capstmts = nc;
    }
    pg_stmt *st = &op->stmts[op->nstmts];
    memset(st, 0, sizeof *st);
    st->sql = sql;
    st->nparams = nparams;
    if (nparams > 0) {
        st->values = pg_op_alloc(op, (size_t)nparams * sizeof *st->values);
        st->lengths = pg_op_alloc(op, (size_t)nparams * sizeof *st->lengths);
        st->formats = pg_op_alloc(op, (size_t)nparams * sizeof *st->formats);
        if (!st->values || !st->lengths || !st->formats) return NULL;
    }
    op->nstmts++;
    return st;
}

void pg_stmt_text(pg_stmt *st, int i, const char *value) {
    st->values[i] = value;
    st->lengths[i] = 0;
    st->formats[i] = 0;
}

void pg_stmt_binary(pg_stmt *st, int i, const char *p, int len) {
    st->values[i] = p;
    st->lengths[i] = len;
    st->formats[i] = 1;
}

int pg_op_fail(pg_op *op, int code, const char *fmt, ...) {
    if (op->code) return op->code; /* the first failure is the cause; later ones follow from it */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->msg, sizeof op->msg, fmt, ap);
    va_end(ap);
    op->code = code;
    return code;
}

void pg_op_free(pg_op *op) {
    if (!op) return;
    while (op->blocks) {
        pg_block *b = op->blocks;
        op->blocks = b->next;
        free(b->p);
        free(b);
    }
    free(op->stmts);
    free(op);
}

/* --- errors --- */

int pg_error_kind(const char *sqlstate) {
    if (!sqlstate || strlen(sqlstate) != 5)
        return SL_ERETRY;                                 /* no server verdict: client side, or the link */
    if (strcmp(sqlstate, "SLD01") == 0) return SL_EFATAL; /* our own: a store of another dimension */
    if (strcmp(sqlstate, "SLQ01") == 0)
        return SL_EBADINPUT;                                /* our own: lease lost (queue.c): this document */
    if (strncmp(sqlstate, "08", 2) == 0) return SL_ERETRY;  /* connection exception */
    if (strncmp(sqlstate, "40", 2) == 0) return SL_ERETRY;  /* serialization failure, deadlock */
    if (strncmp(sqlstate, "57P", 3) == 0) return SL_ERETRY; /* shutdown, crash, starting up */
    if (strcmp(sqlstate, "57014") == 0) return SL_ERETRY;   /* query cancelled */
    if (strcmp(sqlstate, "55P03") == 0) return SL_ERETRY;   /* lock not available */
    if (strcmp(sqlstate, "53200") == 0 || strcmp(sqlstate, "53300") == 0)
        return SL_ERETRY;                                     /* server out of memory, too many connections */
    if (strncmp(sqlstate, "23", 2) == 0) return SL_ERETRY;    /* a concurrent writer got in between */
    if (strncmp(sqlstate, "22", 2) == 0) return SL_EBADINPUT; /* data exception: this document's values */
    if (strncmp(sqlstate, "54", 2) == 0) return SL_EBADINPUT; /* program limit: a row or value too large */
    return SL_EFATAL; /* disk full, undefined table, permission, internal error, ... */
}

/* --- connections --- */

typedef enum { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY } conn_state;
enum { PH_OP, PH_ROLLBACK };

typedef struct conn {
    pg_pool *pool;
    PGconn *pg;
    conn_state state;
    sl_watch *watch;
    int events; /* what the watch waits for now */
    sl_timer *deadline;
    pg_op *op;
    int phase;
    int stmt; /* the statement whose results come next */
} conn;

struct pg_pool {
    pg_pool_conf conf;
    conn *conns;
    pg_op *qhead, *qtail;
    int queued;
    pg_op *ended; /* failed while a plugin callback ran: answered from a timer */
    sl_timer *answer;
    char last_error[512]; /* why the last connection attempt failed */
};

static void conn_cb(sl_watch *w, int status, int events, void *arg);
static void conn_begin(conn *c, pg_op *op);
static void grow(pg_pool *p);
static void fail_unservable(pg_pool *p);
static void dispatch(pg_pool *p);

static void notice(void *arg, const char *message) {
    pg_pool *p = arg;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", message);
    pg_scrub(msg, sizeof msg, p->conf.secret);
    sl_log(p->conf.inst, SL_LOG_DEBUG, "%s: %s", p->conf.where, msg);
}

/* libpq's last message for c, one line, without the password. */
static void conn_message(conn *c, char *out, size_t cap, const char *fallback) {
    const char *m = c->pg ? PQerrorMessage(c->pg) : NULL;
    snprintf(out, cap, "%s", m && *m ? m : fallback);
    pg_scrub(out, cap, c->pool->conf.secret);
}

static void unwatch(conn *c) {
    if (c->watch) sl_watch_stop(c->watch);
    c->watch = NULL;
    c->events = 0;
}

/* Watches c's socket for `events`, making the watch if there is none. */
static int watch(conn *c, int events) {
    if (c->watch) {
        if (c->events == events) return 0;
        int rc = sl_watch_update(c->watch, events);
        if (rc == 0) c->events = events;
        return rc;
    }
    int fd = PQsocket(c->pg);
    if (fd < 0) return SL_EINVAL;
    int rc = sl_watch_start(c->pool->conf.inst, fd, events, conn_cb, c, &c->watch);
    if (rc == 0) c->events = events;
    return rc;
}

/* While connecting, libpq may close its socket and open another (another
 * address, SSL refused, ...), possibly under the same number: the old watch
 * goes first, so libuv never polls a descriptor that is no longer ours. */
static int rewatch(conn *c, int events) {
    unwatch(c);
    return watch(c, events);
}

static void conn_close(conn *c) {
    if (c->deadline) sl_timer_stop(c->deadline);
    c->deadline = NULL;
    unwatch(c); /* before PQfinish closes the descriptor */
    if (c->pg) PQfinish(c->pg);
    c->pg = NULL;
    c->state = C_DOWN;
}

static void enqueue_front(pg_pool *p, pg_op *op) {
    op->next = p->qhead;
    p->qhead = op;
    if (!p->qtail) p->qtail = op;
    p->queued++;
}

static void enqueue(pg_pool *p, pg_op *op) {
    op->next = NULL;
    if (p->qtail)
        p->qtail->next = op;
    else
        p->qhead = op;
    p->qtail = op;
    p->queued++;
}

static void unqueue(pg_pool *p, pg_op *op) {
    pg_op **pp = &p->qhead, *prev = NULL;
    while (*pp && *pp != op) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp) return;
    *pp = op->next;
    if (p->qtail == op) p->qtail = prev;
    op->next = NULL;
    p->queued--;
}

static pg_op *dequeue(pg_pool *p) {
    pg_op *op = p->qhead;
    if (!op) return NULL;
    p->qhead = op->next;
    if (!p->qhead) p->qtail = NULL;
    op->next = NULL;
    p->queued--;
    return op;
}

/* Ends an op: the call answers rc (a negative code with the op's message). */
static void complete(pg_op *op, int rc) {
    if (op->on_end) op->on_end(op, rc);
    sl_call *call = op->call;
    if (rc < 0) {
        sl_fail(call, rc, "%s", op->msg[0] ? op->msg : sl_strerror(rc));
        if (op->retry_after_ms > 0) sl_call_retry_after(call, op->retry_after_ms);
    }
    pg_op_free(op);
    sl_call_done(call, rc);
}

/* Answers the ops in p->ended. */
static void answer_ended(void *arg) {
    pg_pool *p = arg;
    p->answer = NULL;
    while (p->ended) {
        pg_op *op = p->ended;
        p->ended = op->next;
        complete(op, op->code);
    }
}

/* Fails op later, from a timer: ops fail while the core is calling into
 * the plugin (a store finding no connection fails the others waiting),
 * and the core is not re-entered from inside its own call. */
static void complete_later(pg_pool *p, pg_op *op) {
    pg_op **tail = &p->ended;
    while (*tail) tail = &(*tail)->next;
    op->next = NULL;
    *tail = op;
    if (!p->answer && sl_timer_start(p->conf.inst, 0, answer_ended, p, &p->answer) != 0) {
        p->answer = NULL;
        answer_ended(p); /* no timer: answer now rather than never */
    }
}

/* c is free: it takes the next waiting op, if any. */
static void conn_next(conn *c) {
    pg_op *op = dequeue(c->pool);
    if (op) conn_begin(c, op);
}

/* --- connecting --- */

static void connect_failed(conn *c, const char *why) {
    pg_pool *p = c->pool;
    if (why)
        snprintf(p->last_error, sizeof p->last_error, "%s", why);
    else
        conn_message(c, p->last_error, sizeof p->last_error, "connection failed");
    sl_log(p->conf.inst, SL_LOG_DEBUG, "cannot connect to %s: %s", p->conf.where, p->last_error);
    conn_close(c);
    fail_unservable(p);
}

static void connect_deadline(void *arg) {
    conn *c = arg;
    char why[128];
    c->deadline = NULL; /* a fired timer frees itself */
    snprintf(why, sizeof why, "timeout expired after %llu ms",
             (unsigned long long)c->pool->conf.connect_timeout_ms);
    connect_failed(c, why);
}

static void conn_ready(conn *c) {
    if (c->deadline) sl_timer_stop(c->deadline);
    c->deadline = NULL;
    if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
        connect_failed(c, NULL);
        return;
    }
    unwatch(c); /* the socket is final now; the next op watches it */
    c->state = C_IDLE;
    sl_log(c->pool->conf.inst, SL_LOG_DEBUG, "connected to %s", c->pool->conf.where);
    conn_next(c);
}

static void connect_step(conn *c) {
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        if (rewatch(c, SL_READABLE) != 0) connect_failed(c, "cannot watch the socket");
        return;
    case PGRES_POLLING_WRITING:
        if (rewatch(c, SL_WRITABLE) != 0) connect_failed(c, "cannot watch the socket");
        return;
    case PGRES_POLLING_OK: conn_ready(c); return;
    default: connect_failed(c, NULL); return;
    }
}

/* Starts opening c; 0 when under way, else negative (p->last_error says why). */
static int conn_connect(conn *c) {
    pg_pool *p = c->pool;
    c->pg = PQconnectStartParams(p->conf.keys, p->conf.values, 0);
    if (!c->pg) {
        snprintf(p->last_error, sizeof p->last_error, "out of memory");
        return SL_ENOMEM;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_message(c, p->last_error, sizeof p->last_error, "connection failed");
        conn_close(c);
        return SL_ERETRY;
    }
    PQsetNoticeProcessor(c->pg, notice, p);
    c->state = C_CONNECTING;
    /* libpq: begin as if PQconnectPoll had answered PGRES_POLLING_WRITING */
    if (rewatch(c, SL_WRITABLE) != 0 ||
        sl_timer_start(p->conf.inst, p->conf.connect_timeout_ms, connect_deadline, c, &c->deadline) != 0) {
        snprintf(p->last_error, sizeof p->last_error, "cannot watch the socket");
        conn_close(c);
        return SL_EFATAL;
    }
    return 0;
}

/* Opens connections for waiting ops: one per op not already covered by a
 * connection under way, as far as the pool's size allows. */
static void grow(pg_pool *p) {
    int connecting = 0;
    for (int i = 0; i < p->conf.size; i++) connecting += p->conns[i].state == C_CONNECTING;
    for (int i = 0; i < p->conf.size && connecting < p->queued; i++) {
        conn *c = &p->conns[i];
        if (c->state != C_DOWN) continue;
        if (conn_connect(c) != 0) break; /* the next would fail the same way */
        connecting++;
    }
}

static bool servable(const pg_pool *p) {
    for (int i = 0; i < p->conf.size; i++)
        if (p->conns[i].state != C_DOWN) return true;
    return false;
}

/* No connection is open or opening: the waiting ops cannot run now. They
 * fail as retryable; the core tries them again after a backoff, and that
 * try opens a connection again. */
static void fail_unservable(pg_pool *p) {
    if (servable(p)) return;
    pg_op *op;
    while ((op = dequeue(p)) != NULL) {
        pg_op_fail(op, SL_ERETRY, "%s '%s': cannot connect to %s: %s", op->what, op->subject, p->conf.where,
                   p->last_error);
        op->retry_after_ms = UNREACHABLE_RETRY_MS;
        complete_later(p, op);
    }
}

/* Waiting ops go to idle connections. An idle connection has no event of
 * its own to wake it, so whoever queues an op, or sees connections die,
 * hands the queue to the idle ones: else, with the server restarted, ops
 * waited in the queue beside idle connections for ever. */
static void dispatch(pg_pool *p) {
    for (int i = 0; i < p->conf.size && p->qhead; i++)
        if (p->conns[i].state == C_IDLE) conn_next(&p->conns[i]);
}

/* --- running an op --- */

/* The connection died under c->op: the op fails as retryable. */
static void conn_broken(conn *c) {
    pg_pool *p = c->pool;
    char why[512];
    conn_message(c, why, sizeof why, "the connection was closed");
    pg_op *op = c->op;
    c->op = NULL;
    conn_close(c);
    sl_log(p->conf.inst, SL_LOG_INFO, "lost the connection to %s: %s", p->conf.where, why);
    if (op) {
        /* whatever the op's statements said before, the connection's end
         * is the cause now, and worth another try */
        op->code = 0;
        pg_op_fail(op, SL_ERETRY, "%s '%s': lost the connection to %s: %s", op->what, op->subject,
                   p->conf.where, why);
        complete_later(p, op);
    }
    dispatch(p);
    if (p->queued) grow(p);
    fail_unservable(p);
}

/* Sends what libpq holds; watches for writability while some is left. */
static int conn_flush(conn *c) {
    int r = PQflush(c->pg);
    if (r < 0) return -1;
    return watch(c, r == 1 ? SL_READABLE | SL_WRITABLE : SL_READABLE) == 0 ? 0 : -1;
}

/* Before a connection's first statement of an op: has the server closed it
 * since its last use? Reading is non-blocking; a closed connection shows as
 * end of file, after any last message the server sent. */
static bool conn_alive(conn *c) {
    for (int i = 0; i < 2; i++)
        if (!PQconsumeInput(c->pg)) return false;
    return PQstatus(c->pg) == CONNECTION_OK;
}

static void conn_begin(conn *c, pg_op *op) {
    pg_pool *p = c->pool;
    c->op = op;
    c->state = C_BUSY;
    c->phase = PH_OP;
    c->stmt = 0;
    if (!conn_alive(c)) {
        /* nothing of this op reached the server: it waits for a new connection */
        char why[512];
        conn_message(c, why, sizeof why, "the connection was closed");
        sl_log(p->conf.inst, SL_LOG_INFO, "%s closed an idle connection (%s): reconnecting", p->conf.where,
               why);
        c->op = NULL;
        conn_close(c);
        if (++op->attempts > p->conf.size) {
            /* every connection it was given had died: let the core back off */
            pg_op_fail(op, SL_ERETRY, "%s '%s': the connections to %s keep closing: %s", op->what,
                       op->subject, p->conf.where, why);
            complete_later(p, op);
            return;
        }
        enqueue_front(p, op);
        dispatch(p); /* another idle connection may take it (its socket is checked the same way) */
        grow(p);
        fail_unservable(p);
        return;
    }
    for (int i = 0; i < op->nstmts; i++) {
        const pg_stmt *st = &op->stmts[i];
        if (!PQsendQueryParams(c->pg, st->sql, st->nparams, NULL, st->values, st->lengths, st->formats, 0)) {
            conn_broken(c);
            return;
        }
    }
    if (!PQpipelineSync(c->pg) || conn_flush(c) != 0) conn_broken(c);
}

static void record_error(conn *c, const PGresult *res) {
    pg_op *op = c->op;
    if (op->code) return;
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    char msg[600];
    if (primary)
        snprintf(msg, sizeof msg, "%s%s%s", primary, detail ? ": " : "", detail ? detail : "");
    else
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
    pg_scrub(msg, sizeof msg, c->pool->conf.secret);
    pg_op_fail(op, pg_error_kind(state), "%s '%s': %s (SQLSTATE %s, %s)", op->what, op->subject, msg,
               state ? state : "none", c->pool->conf.where);
}

static void handle_result(conn *c, const PGresult *res) {
    pg_op *op = c->op;
    switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
        if (c->phase == PH_OP && !op->code && op->on_result && c->stmt < op->nstmts) {
            int rc = op->on_result(op, c->stmt, res);
            if (rc < 0) pg_op_fail(op, rc, "%s '%s': %s", op->what, op->subject, sl_strerror(rc));
        }
        break;
    case PGRES_PIPELINE_ABORTED: break; /* skipped after an earlier error, which is the cause */
    case PGRES_FATAL_ERROR:
    case PGRES_NONFATAL_ERROR:
    case PGRES_BAD_RESPONSE: record_error(c, res); break;
    default:
        pg_op_fail(op, SL_EFATAL, "%s '%s': unexpected result %s", op->what, op->subject,
                   PQresStatus(PQresultStatus(res)));
    }
}

/* The sync of c's pipeline came back: the op (or its rollback) is over. */
static void sync_done(conn *c) {
    pg_op *op = c->op;
    if (c->phase == PH_OP && op->code && PQtransactionStatus(c->pg) == PQTRANS_INERROR) {
        /* the op's explicit transaction failed: end it before the
         * connection is used again */
        c->phase = PH_ROLLBACK;
        c->stmt = 0;
        if (!PQsendQueryParams(c->pg, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0) || !PQpipelineSync(c->pg) ||
            conn_flush(c) != 0)
            conn_broken(c);
        return;
    }
    c->op = NULL;
    c->state = C_IDLE;
    if (watch(c, 0) != 0) {
        conn_close(c); /* cannot happen with a live watch; be safe */
    } else {
        conn_next(c);
    }
    complete(op, op->code ? op->code : op->value);
}

/* Reads what arrived and hands complete results on. */
static void conn_io(conn *c, int status, int events) {
    if (status < 0 || ((events & SL_WRITABLE) && PQflush(c->pg) < 0) || !PQconsumeInput(c->pg)) {
        conn_broken(c);
        return;
    }
    int expected = c->phase == PH_OP ? c->op->nstmts : 1;
    for (;;) {
        if (PQisBusy(c->pg)) break;
        PGresult *res = PQgetResult(c->pg);
        if (!res) {
            /* the end of one statement's results */
            if (c->stmt >= expected) break;
            c->stmt++;
            continue;
        }
        if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            sync_done(c);
            return;
        }
        handle_result(c, res);
        PQclear(res);
    }
    if (PQstatus(c->pg) == CONNECTION_BAD || conn_flush(c) != 0) conn_broken(c);
}

static void conn_cb(sl_watch *w, int status, int events, void *arg) {
    conn *c = arg;
    (void)w;
    if (c->state == C_CONNECTING)
        connect_step(c); /* a socket error shows in PQconnectPoll's answer */
    else if (c->state == C_BUSY)
        conn_io(c, status, events);
}

/* --- the pool --- */

int pg_pool_new(const pg_pool_conf *conf, PGconn *first, pg_pool **out) {
    pg_pool *p = calloc(1, sizeof *p);
    if (!p) return SL_ENOMEM;
    p->conf = *conf;
    if (p->conf.size < 1) p->conf.size = 1;
    p->conns = calloc((size_t)p->conf.size, sizeof *p->conns);
    if (!p->conns) {
        free(p);
        return SL_ENOMEM;
    }
    for (int i = 0; i < p->conf.size; i++) {
        p->conns[i].pool = p;
        p->conns[i].state = C_DOWN;
    }
    if (first) {
        conn *c = &p->conns[0];
        c->pg = first;
        PQsetNoticeProcessor(first, notice, p);
        if (PQsetnonblocking(first, 1) != 0 || PQenterPipelineMode(first) != 1) {
            conn_close(c); /* the next op opens it again */
        } else {
            c->state = C_IDLE;
        }
    }
    *out = p;
    return 0;
}

int pg_pool_submit(pg_pool *p, pg_op *op) {
    if (op->code) {
        /* building it failed (out of memory, bad input): never sent */
        int code = op->code;
        sl_fail(op->call, code, "%s", op->msg);
        pg_op_free(op);
        return code;
    }
    enqueue(p, op);
    dispatch(p);
    bool waiting = false;
    for (pg_op *q = p->qhead; q && !waiting; q = q->next) waiting = q == op;
    if (!waiting) return SL_PENDING; /* a connection took it (or failed it, answering later) */
    grow(p);
    if (servable(p)) return SL_PENDING;
    /* nothing can run it now: this call is answered at once, the others
     * waiting with it through sl_call_done */
    unqueue(p, op);
    fail_unservable(p);
    sl_fail(op->call, SL_ERETRY, "%s '%s': cannot connect to %s: %s", op->what, op->subject, p->conf.where,
            p->last_error);
    sl_call_retry_after(op->call, UNREACHABLE_RETRY_MS);
    if (op->on_end) op->on_end(op, SL_ERETRY);
    pg_op_free(op);
    return SL_ERETRY;
}

void pg_pool_free(pg_pool *p) {
    if (!p) return;
    for (int i = 0; i < p->conf.size; i++) {
        conn *c = &p->conns[i];
        if (c->op) pg_op_free(c->op);
        c->op = NULL;
        conn_close(c);
    }
    pg_op *op;
    while ((op = dequeue(p)) != NULL) pg_op_free(op);
    if (p->answer) sl_timer_stop(p->answer);
    while ((op = p->ended) != NULL) {
        p->ended = op->next;
        pg_op_free(op);
    }
    free(p->conns);
    free(p);
}
