/* worker_main.c - the worker process: `sluice __worker FD` (see workers.h).
 *
 * A plain blocking loop, one thread: read a frame from sluice, do it,
 * answer. The frames (wire.h) are
 *   CONFIG  log level, memory limit and seccomp: the sandbox's settings;
 *   LOAD    a slot number, a plugin path, an instance name and the option
 *           values as "key=value" (secrets included: they travel over the
 *           socket only): the instance is rebuilt, initialised and its
 *           per-thread state made, and LOADED answers how that went;
 *   RUN     one operation (an sl_op_id) on one document or page of a
 *           loaded slot: the document's state arrives in the frame, its
 *           bytes as a path or a memfd; the plugin is called through
 *           sl_op_call (ops.c) like on any other executor, and RESULT sends
 *           back what it added (see sl_wire_sel).
 * The end of the input is the end of the worker: its instances are
 * finished and it exits 0. It holds nothing sluice did not give it, dies
 * with sluice (PR_SET_PDEATHSIG) and leaves ^C to it. Around each call the
 * sandbox (sandbox.c) caps the address space and, if asked, seccomp locks
 * the process down before its first document. A plugin that ran out of
 * memory under the cap may have left the heap full: the worker answers and
 * exits at once, and sluice starts another.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "document.h"
#include "ops.h"
#include "registry.h"
#include "sandbox.h"
#include "wire.h"
#include "workers.h"

typedef struct wslot {
    sl_instance *inst;
    sl_tstate ts; /* a worker is one thread: one state per instance */
} wslot;

typedef struct wctx {
    int fd;
    sl_ctx *ctx;
    sl_registry *reg;
    sl_reader rd;
    wslot *slots;
    size_t nslots;
    sl_sandbox box;
} wctx;

/* Replies that must go out even when memory is exhausted use this. */
static unsigned char small_frame[4096];

static int wsend(wctx *c, sl_frame_out *f) {
    int rc = sl_frame_send(c->fd, f);
    sl_frame_free(f);
    return rc == 1 ? 0 : SL_EFATAL;
}

/* --- LOAD --- */

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

/* Opens the plugin, rebuilds the instance from its option values, runs its
 * init and makes its thread state: 0, or an error in the context. */
static int load_instance(wctx *c, const char *path, const char *name, const char **kv, uint32_t n,
                         sl_instance **out, sl_tstate *ts) {
    const sl_loaded *pl;
    sl_instance *inst = NULL;
    int rc = sl_registry_open(c->ctx, c->reg, path, &pl);
    if (rc == 0) rc = sl_instance_new_defaults(c->ctx, pl, name, kv, n, &inst);
    if (rc == 0) rc = sl_instance_init(c->ctx, inst);
    if (rc == 0) {
        sl_call call;
        sl_call_init(&call, inst, NULL);
        if (sl_tstate_make(inst, ts, &call)) rc = sl_ctx_error(c->ctx, call.code, "%s", call.msg);
    }
    if (rc < 0) {
        sl_instance_free(inst);
        inst = NULL;
    }
    *out = inst;
    return rc;
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
    sl_sandbox_loading(&c->box);
    sl_ctx_clear_error(c->ctx);
    sl_instance *inst;
    sl_tstate ts = {0};
    int rc = load_instance(c, path, name, kv, n, &inst, &ts);
    free(kv);
    wslot *ws = &c->slots[s];
    if (ws->inst) { /* loaded again: the newer one wins */
        sl_tstate_free(ws->inst, &ws->ts);
        sl_instance_free(ws->inst);
    }
    ws->inst = inst;
    ws->ts = ts;
    wsend_loaded(c, s, rc, rc < 0 ? sl_ctx_errmsg(c->ctx) : "");
    return 0;
}

/* --- RUN --- */

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

/* Maps the document's bytes: the sealed memfd copy sent along, checked
 * against the hash sluice computed when it read the file. */
static int map_data(sl_doc *doc, uint8_t kind, uint64_t len, int fd, const char *hash, char *err,
                    size_t errlen) {
    if (kind == SL_DATA_NONE || len == 0) {
        sl_doc_set_data(doc, "", 0);
        return 0;
    }
    struct stat st;
    if (fd < 0 || !sl_memfd_sealed(fd) || fstat(fd, &st) != 0 || (uint64_t)st.st_size != len)
        return snprintf(err, errlen, "the document's bytes did not arrive whole"), SL_EBADINPUT;
    void *m = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        return snprintf(err, errlen, "the worker cannot map the document's %llu bytes: %s%s",
                        (unsigned long long)len, strerror(e),
                        e == ENOMEM ? " (raise [sluice] worker_memory_limit)" : ""),
               e == ENOMEM ? SL_ENOMEM : SL_EBADINPUT;
    }
    doc->data = m;
    doc->len = (size_t)len;
    doc->mapped = 1;
    sl_hash128_hex(doc->data, doc->len, doc->hash);
    if (strcmp(doc->hash, hash) != 0)
        return snprintf(err, errlen, "the document's bytes arrived changed (hash differs)"), SL_EBADINPUT;
    return 0;
}

/* A page's image before the call, to tell whether the plugin changed it. */
typedef struct page_image_mark {
    const unsigned char *px;
    uint64_t hash;
    uint32_t w, h;
} page_image_mark;

static page_image_mark mark_image(const sl_doc *doc, uint32_t page) {
    page_image_mark m = {0};
    if (page < 1 || page > doc->nimages || !doc->images[page - 1].pixels) return m;
    const sl_page_image *im = &doc->images[page - 1];
    m.px = im->pixels;
    m.hash = XXH3_64bits(im->pixels, im->stride * im->height);
    m.w = im->width;
    m.h = im->height;
    return m;
}

/* What travels back (see sl_wire_sel): a page stage's additions (and its
 * page's image only if the plugin changed or dropped it), a chunker's
 * chunks and new elements, or a parser's whole state. `before` holds the
 * list lengths the plugin started from. */
static void select_result(result_enc *e, const sl_op *o, const sl_doc *doc, uint32_t page,
                          const sl_wire_sel *before, const page_image_mark *m0) {
    if (o->unit == SL_UNIT_PAGE) {
        e->append = 1;
        e->sel = (sl_wire_sel){SL_IMAGES_NONE,      page, before->elem_from, before->chunk_from,
                               before->region_from, 0};
        const sl_page_image *im = page <= doc->nimages ? &doc->images[page - 1] : NULL;
        int same = im && m0->px && im->pixels == m0->px && im->width == m0->w && im->height == m0->h &&
                   XXH3_64bits(im->pixels, im->stride * im->height) == m0->hash;
        int none = (!im || !im->pixels) && !m0->px;
        if (!same && !none) e->sel.images = SL_IMAGES_PAGE;
    } else if (o->id == SL_OP_CHUNK) {
        e->sel = (sl_wire_sel){SL_IMAGES_ALL, 0, before->elem_from, 0, before->region_from, 0};
    } else {
        e->sel = (sl_wire_sel){SL_IMAGES_ALL, 0, 0, 0, 0, 0};
    }
}

/* A RUN's header: which operation on which slot, and the document's identity
 * and bytes; its state follows in the frame. */
typedef struct run_req {
    uint64_t seq;
    uint32_t slot, op, page;
    const char *uri, *path, *media, *hash, *fp;
    uint64_t run_id;
    uint8_t kind; /* sl_wire_data */
    uint64_t len;
} run_req;

static int read_run(sl_rbuf *r, run_req *q) {
    q->seq = sl_rget_u64(r);
    q->slot = sl_rget_u32(r);
    q->op = sl_rget_u32(r);
    q->page = sl_rget_u32(r);
    q->uri = sl_rget_str(r, NULL);
    q->path = sl_rget_str(r, NULL);
    q->media = sl_rget_str(r, NULL);
    q->hash = sl_rget_str(r, NULL);
    q->fp = sl_rget_str(r, NULL);
    q->run_id = sl_rget_u64(r);
    q->kind = sl_rget_u8(r);
    q->len = sl_rget_u64(r);
    return r->bad || !q->uri || !q->media || !q->hash || !q->fp ? SL_EINVAL : 0;
}

/* Rebuilds the document: its bytes mapped, then the state in the frame. */
static int read_doc(const run_req *q, sl_rbuf *r, int data_fd, sl_doc *doc, char *err, size_t errlen) {
    int rc = map_data(doc, q->kind, q->len, data_fd, q->hash, err, errlen);
    if (rc) return rc;
    sl_doc_set_media_type(doc, q->media);
    sl_doc_set_fingerprint(doc, q->fp);
    sl_doc_set_run_id(doc, q->run_id);
    return sl_wire_get_doc(r, doc, 0, err, errlen);
}

static int w_run(wctx *c, sl_rbuf *r, int data_fd) {
    run_req q;
    if (read_run(r, &q)) return SL_EINVAL;
    if (q.slot >= c->nslots || !c->slots[q.slot].inst)
        return wsend_fail(c, q.seq, SL_EFATAL, "the instance is not loaded in this worker");
    wslot *ws = &c->slots[q.slot];
    sl_instance *inst = ws->inst;
    const sl_op *o = sl_op_get((sl_op_id)q.op);
    char err[512];
    if (!o || !o->isolatable || o->role != inst->desc->role) {
        snprintf(err, sizeof err, "[%s] operation %u cannot run in a worker", inst->name, q.op);
        return wsend_fail(c, q.seq, SL_EINVAL, err);
    }
    if (sl_sandbox_lock(&c->box, err, sizeof err)) return wsend_fail(c, q.seq, SL_EFATAL, err);
    sl_sandbox_measure(&c->box); /* before this document is mapped */
    sl_doc *doc = sl_doc_new(q.uri, q.path);
    if (!doc) return wsend_fail(c, q.seq, SL_ENOMEM, "out of memory for the document");
    int rc = read_doc(&q, r, data_fd, doc, err, sizeof err);
    if (rc < 0) {
        sl_doc_free(doc);
        return wsend_fail(c, q.seq, rc == SL_EINVAL ? SL_EFATAL : rc, err);
    }

    /* what the plugin adds is what travels back */
    sl_wire_sel before = {0, 0, (uint32_t)doc->nelems, (uint32_t)doc->nchunks, (uint32_t)doc->nregions, 0};
    page_image_mark m0 = o->unit == SL_UNIT_PAGE ? mark_image(doc, q.page) : (page_image_mark){0};

    sl_sandbox_limit(&c->box);
    sl_call call;
    sl_op_args args = {.doc = doc, .page = q.page};
    rc = sl_op_call(o, inst, &ws->ts, &args, &call, NULL, NULL);

    result_enc e = {.seq = q.seq, .rc = rc, .doc = doc};
    e.msg = call.msg[0] || rc >= 0 ? call.msg : sl_strerror(rc);
    /* a plugin that hit the memory limit may have left the heap full:
     * this worker ends after answering */
    e.retire = rc == SL_ENOMEM && c->box.memory_limit;
    int status;
    if (rc < 0) {
        e.doc = NULL;
        status = wsend_small(c, &e);
    } else {
        select_result(&e, o, doc, q.page, &before, &m0);
        sl_frame_out *f;
        sl_sandbox_unlimit(&c->box); /* the answer must not fail for the plugin's limit */
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

/* --- CONFIG, HELLO and the loop --- */

static int w_config(wctx *c, sl_rbuf *r) {
    int32_t level = sl_rget_i32(r);
    uint64_t limit = sl_rget_u64(r);
    uint8_t sec = sl_rget_u8(r);
    if (r->bad) return SL_EINVAL;
    sl_ctx_set_log_level(c->ctx, level);
    sl_sandbox_init(&c->box, limit, sec != 0);
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
    /* --log-format json reaches workers through their environment (cli.c) */
    const char *lf = getenv("SLUICE_LOG_FORMAT");
    sl_ctx_set_log_json(c.ctx, lf && strcmp(lf, "json") == 0);
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
    sl_sandbox_unlimit(&c.box);
    for (size_t i = 0; i < c.nslots; i++) {
        wslot *ws = &c.slots[i];
        if (!ws->inst) continue;
        sl_tstate_free(ws->inst, &ws->ts);
        sl_instance_free(ws->inst);
    }
    free(c.slots);
    sl_reader_free(&c.rd);
    sl_registry_free(c.reg);
    sl_ctx_set_global(old);
    sl_ctx_free(c.ctx);
    return status;
}
