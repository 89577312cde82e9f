/* wire.c - frames, their encoding, and documents on the wire (see wire.h).
 *
 * A document's state is its page count, metadata, elements (with their
 * attributes), chunks (with summaries and vectors), page images and layout
 * regions. The sender walks the core's arrays directly; the receiver
 * rebuilds them through the same SDK calls a plugin would make, so the
 * document's invariants stay in document.c's hands.
 */
#include "wire.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/call.h"

_Static_assert(sizeof(sl_frame_hdr) == 16, "the frame header is 16 bytes");

/* --- writing --- */

void sl_wput(sl_wbuf *b, const void *src, size_t n) {
    if (b->p) {
        assert(b->len + n <= b->cap);
        if (n) memcpy(b->p + b->len, src, n);
    }
    b->len += n;
}

void sl_wput_u8(sl_wbuf *b, uint8_t v) { sl_wput(b, &v, sizeof v); }
void sl_wput_u32(sl_wbuf *b, uint32_t v) { sl_wput(b, &v, sizeof v); }
void sl_wput_i32(sl_wbuf *b, int32_t v) { sl_wput(b, &v, sizeof v); }
void sl_wput_u64(sl_wbuf *b, uint64_t v) { sl_wput(b, &v, sizeof v); }
void sl_wput_i64(sl_wbuf *b, int64_t v) { sl_wput(b, &v, sizeof v); }
void sl_wput_f32(sl_wbuf *b, float v) { sl_wput(b, &v, sizeof v); }

void sl_wput_strn(sl_wbuf *b, const char *s, size_t len) {
    if (!s) {
        sl_wput_u64(b, UINT64_MAX);
        return;
    }
    sl_wput_u64(b, len);
    sl_wput(b, s, len);
    sl_wput_u8(b, 0);
}

void sl_wput_str(sl_wbuf *b, const char *s) { sl_wput_strn(b, s, s ? strlen(s) : 0); }

static void put_hdr(sl_frame_out *f, uint32_t type, uint32_t flags, uint64_t len) {
    sl_frame_hdr h = {type, flags, len};
    memcpy(f->buf, &h, sizeof h);
}

int sl_frame_begin(uint32_t type, size_t len, sl_frame_out **out, unsigned char **payload) {
    *out = NULL;
    sl_frame_out *f = calloc(1, sizeof *f);
    if (!f) return SL_ENOMEM;
    f->owned = 1;
    if (len <= SL_WIRE_INLINE_MAX) {
        f->buflen = sizeof(sl_frame_hdr) + len;
        f->buf = malloc(f->buflen);
        if (!f->buf) return free(f), SL_ENOMEM;
        put_hdr(f, type, 0, len);
        *payload = f->buf + sizeof(sl_frame_hdr);
        *out = f;
        return 0;
    }
    f->buflen = sizeof(sl_frame_hdr);
    f->buf = malloc(f->buflen);
    int fd = memfd_create("sluice-frame", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (!f->buf || fd < 0) goto fail;
    f->fds[f->nfds++] = fd;
    if (ftruncate(fd, (off_t)len) != 0) goto fail;
    f->map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        goto fail;
    }
    f->maplen = len;
    put_hdr(f, type, SL_FRAME_PAYLOAD_FD, len);
    *payload = f->map;
    *out = f;
    return 0;
fail:
    if (fd >= 0 && f->nfds == 0) close(fd);
    sl_frame_free(f);
    return SL_ENOMEM;
}

int sl_frame_begin_static(sl_frame_out *f, unsigned char *storage, size_t cap, uint32_t type, size_t len,
                          unsigned char **payload) {
    memset(f, 0, sizeof *f);
    if (sizeof(sl_frame_hdr) + len > cap) return SL_ENOMEM;
    f->buf = storage;
    f->buflen = sizeof(sl_frame_hdr) + len;
    put_hdr(f, type, 0, len);
    *payload = f->buf + sizeof(sl_frame_hdr);
    return 0;
}

int sl_frame_build(uint32_t type, sl_wire_enc enc, const void *arg, sl_frame_out **out) {
    sl_wbuf m = {NULL, 0, 0};
    enc(&m, arg);
    unsigned char *p;
    int rc = sl_frame_begin(type, m.len, out, &p);
    if (rc) return rc;
    sl_wbuf b = {p, 0, m.len};
    enc(&b, arg);
    assert(b.len == m.len);
    sl_frame_end(*out);
    return 0;
}

void sl_frame_end(sl_frame_out *f) {
    if (!f->map) return;
    munmap(f->map, f->maplen); /* first: a writable mapping would forbid the seal */
    f->map = NULL;
    sl_memfd_seal(f->fds[0]);
}

int sl_memfd_seal(int fd) { return fcntl(fd, F_ADD_SEALS, SL_MEMFD_SEALS) == 0 ? 0 : -1; }

int sl_memfd_sealed(int fd) {
    int seals = fcntl(fd, F_GET_SEALS);
    return seals >= 0 && (seals & SL_MEMFD_SEALS) == SL_MEMFD_SEALS;
}

void sl_frame_attach_fd(sl_frame_out *f, int fd) {
    assert(f->nfds < 2 && f->sent == 0);
    f->fds[f->nfds++] = fd;
    sl_frame_hdr h;
    memcpy(&h, f->buf, sizeof h);
    h.flags |= SL_FRAME_DATA_FD;
    memcpy(f->buf, &h, sizeof h);
}

int sl_frame_send(int sock, sl_frame_out *f) {
    while (f->sent < f->buflen) {
        struct iovec iov = {f->buf + f->sent, f->buflen - f->sent};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        union {
            char buf[CMSG_SPACE(2 * sizeof(int))];
            struct cmsghdr align;
        } ctl;
        if (f->nfds && !f->fds_sent) {
            /* descriptors ride with the first byte of the header */
            memset(&ctl, 0, sizeof ctl);
            m.msg_control = ctl.buf;
            m.msg_controllen = CMSG_SPACE((size_t)f->nfds * sizeof(int));
            struct cmsghdr *c = CMSG_FIRSTHDR(&m);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN((size_t)f->nfds * sizeof(int));
            memcpy(CMSG_DATA(c), f->fds, (size_t)f->nfds * sizeof(int));
        }
        ssize_t n = sendmsg(sock, &m, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            return -errno;
        }
        f->fds_sent = 1;
        f->sent += (size_t)n;
    }
    return 1;
}

void sl_frame_free(sl_frame_out *f) {
    if (!f) return;
    sl_frame_end(f);
    for (int i = 0; i < f->nfds; i++) close(f->fds[i]);
    f->nfds = 0;
    if (f->owned) {
        free(f->buf);
        free(f);
    }
}

/* --- reading --- */

const void *sl_rget(sl_rbuf *r, size_t n) {
    if (r->bad || n > r->len - r->pos) {
        r->bad = 1;
        return NULL;
    }
    const void *p = r->p + r->pos;
    r->pos += n;
    return p;
}

#define RGET(T, name)                                                                                        \
    T name(sl_rbuf *r) {                                                                                     \
        T v = 0;                                                                                             \
        const void *p = sl_rget(r, sizeof v);                                                                \
        if (p) memcpy(&v, p, sizeof v);                                                                      \
        return v;                                                                                            \
    }
RGET(uint8_t, sl_rget_u8)
RGET(uint32_t, sl_rget_u32)
RGET(int32_t, sl_rget_i32)
RGET(uint64_t, sl_rget_u64)
RGET(int64_t, sl_rget_i64)
RGET(float, sl_rget_f32)

const char *sl_rget_str(sl_rbuf *r, size_t *len) {
    uint64_t n = sl_rget_u64(r);
    if (len) *len = 0;
    if (r->bad || n == UINT64_MAX) return NULL;
    if (n >= r->len - r->pos) { /* the NUL must fit too */
        r->bad = 1;
        return NULL;
    }
    const char *s = sl_rget(r, (size_t)n + 1);
    if (s[n] != '\0') {
        r->bad = 1;
        return NULL;
    }
    if (len) *len = (size_t)n;
    return s;
}

int sl_reader_init(sl_reader *rd) {
    memset(rd, 0, sizeof *rd);
    rd->cap = sizeof(sl_frame_hdr) + SL_WIRE_INLINE_MAX;
    rd->buf = malloc(rd->cap);
    return rd->buf ? 0 : SL_ENOMEM;
}

void sl_reader_free(sl_reader *rd) {
    for (int i = 0; i < rd->nfds; i++) close(rd->fds[i]);
    rd->nfds = 0;
    free(rd->buf);
    rd->buf = NULL;
}

int sl_reader_fill(sl_reader *rd, int sock) {
    if (rd->off) {
        memmove(rd->buf, rd->buf + rd->off, rd->len - rd->off);
        rd->len -= rd->off;
        rd->off = 0;
    }
    if (rd->len == rd->cap) return -EPROTO; /* no frame is that long inline */
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    for (;;) {
        struct iovec iov = {rd->buf + rd->len, rd->cap - rd->len};
        struct msghdr m = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl};
        ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        int bad = (m.msg_flags & MSG_CTRUNC) != 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                if (rd->nfds < (int)(sizeof rd->fds / sizeof rd->fds[0]))
                    rd->fds[rd->nfds++] = fd;
                else {
                    close(fd);
                    bad = 1;
                }
            }
        }
        if (bad) return -EPROTO;
        rd->len += (size_t)n;
        return (int)(n > 0 ? 1 : 0);
    }
}

static int pop_fd(sl_reader *rd) {
    if (rd->nfds == 0) return -1;
    int fd = rd->fds[0];
    memmove(rd->fds, rd->fds + 1, (size_t)(rd->nfds - 1) * sizeof(int));
    rd->nfds--;
    return fd;
}

int sl_reader_next(sl_reader *rd, sl_frame_in *f) {
    memset(f, 0, sizeof *f);
    f->data_fd = -1;
    size_t avail = rd->len - rd->off;
    if (avail < sizeof(sl_frame_hdr)) return 0;
    memcpy(&f->hdr, rd->buf + rd->off, sizeof f->hdr);
    uint32_t flags = f->hdr.flags;
    if (f->hdr.type < SL_MSG_HELLO || f->hdr.type > SL_MSG_RESULT ||
        (flags & ~(SL_FRAME_PAYLOAD_FD | SL_FRAME_DATA_FD)))
        return SL_EINVAL;
    int need = ((flags & SL_FRAME_PAYLOAD_FD) != 0) + ((flags & SL_FRAME_DATA_FD) != 0);
    if (flags & SL_FRAME_PAYLOAD_FD) {
        if (f->hdr.len <= SL_WIRE_INLINE_MAX || f->hdr.len > (uint64_t)SIZE_MAX) return SL_EINVAL;
    } else {
        if (f->hdr.len > SL_WIRE_INLINE_MAX) return SL_EINVAL;
        if (avail < sizeof(sl_frame_hdr) + f->hdr.len) return 0;
    }
    /* descriptors arrive with the header's first byte: they are here */
    if (rd->nfds < need) return SL_EINVAL;
    if (flags & SL_FRAME_PAYLOAD_FD) {
        int fd = pop_fd(rd);
        struct stat st;
        void *map = MAP_FAILED;
        if (sl_memfd_sealed(fd) && fstat(fd, &st) == 0 && (uint64_t)st.st_size >= f->hdr.len)
            map = mmap(NULL, (size_t)f->hdr.len, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (map == MAP_FAILED) {
            if (flags & SL_FRAME_DATA_FD) close(pop_fd(rd));
            rd->off += sizeof(sl_frame_hdr);
            return SL_EINVAL;
        }
        f->map = map;
        f->maplen = (size_t)f->hdr.len;
        f->payload = map;
        f->len = (size_t)f->hdr.len;
        rd->off += sizeof(sl_frame_hdr);
    } else {
        f->payload = rd->buf + rd->off + sizeof(sl_frame_hdr);
        f->len = (size_t)f->hdr.len;
        rd->off += sizeof(sl_frame_hdr) + f->len;
    }
    if (flags & SL_FRAME_DATA_FD) f->data_fd = pop_fd(rd);
    return 1;
}

void sl_frame_in_release(sl_frame_in *f) {
    if (f->map) munmap(f->map, f->maplen);
    f->map = NULL;
    if (f->data_fd >= 0) close(f->data_fd);
    f->data_fd = -1;
}

/* --- documents --- */

static void put_image(sl_wbuf *b, const sl_doc *doc, uint32_t page) {
    const sl_page_image *im = page >= 1 && page <= doc->nimages ? &doc->images[page - 1] : NULL;
    sl_wput_u32(b, page);
    sl_wput_u8(b, im && im->pixels ? 1 : 0);
    if (!im || !im->pixels) return;
    sl_wput_u32(b, im->width);
    sl_wput_u32(b, im->height);
    sl_wput_u32(b, im->channels);
    sl_wput_u64(b, im->stride);
    sl_wput_f32(b, im->dpi);
    sl_wput_u64(b, (uint64_t)im->stride * im->height);
    sl_wput(b, im->pixels, im->stride * im->height);
}

static uint32_t clamp_from(uint32_t from, size_t n) { return from < n ? from : (uint32_t)n; }

void sl_wire_put_doc(sl_wbuf *b, const sl_doc *doc, const sl_wire_sel *sel) {
    sl_wput_u32(b, doc->pages);
    sl_wput_u32(b, (uint32_t)doc->nmeta);
    for (size_t i = 0; i < doc->nmeta; i++) {
        sl_wput_str(b, doc->meta[i].key);
        sl_wput_str(b, doc->meta[i].value);
    }

    uint32_t from = clamp_from(sel->elem_from, doc->nelems), n = 0;
    for (size_t i = from; i < doc->nelems; i++) n += !sel->only_page || doc->elems[i].page == sel->only_page;
    sl_wput_u32(b, from);
    sl_wput_u32(b, n);
    for (size_t i = from; i < doc->nelems; i++) {
        const sl_element *e = &doc->elems[i];
        if (sel->only_page && e->page != sel->only_page) continue;
        sl_wput_u32(b, (uint32_t)e->type);
        sl_wput_i32(b, e->level);
        sl_wput_u32(b, e->page);
        sl_wput_u32(b, e->line);
        sl_wput_u64(b, e->offset);
        sl_wput_f32(b, e->confidence);
        sl_wput_u8(b, (uint8_t)(e->has_bbox != 0));
        for (int k = 0; k < 4; k++) sl_wput_f32(b, e->bbox[k]);
        sl_wput_strn(b, e->text, e->len);
        sl_wput_u32(b, (uint32_t)e->nattrs);
        for (size_t k = 0; k < e->nattrs; k++) {
            sl_wput_str(b, e->attrs[k].key);
            sl_wput_str(b, e->attrs[k].value);
        }
    }

    from = clamp_from(sel->chunk_from, doc->nchunks);
    sl_wput_u32(b, from);
    sl_wput_u32(b, (uint32_t)(doc->nchunks - from));
    for (size_t i = from; i < doc->nchunks; i++) {
        const sl_chunk *c = &doc->chunks[i];
        sl_wput_strn(b, c->text, c->len);
        sl_wput_str(b, c->heading);
        sl_wput_str(b, c->summary);
        sl_wput_u32(b, c->page);
        sl_wput_u32(b, c->line);
        uint32_t dim = c->vector ? c->dim : 0;
        sl_wput_u32(b, dim);
        sl_wput(b, c->vector, (size_t)dim * sizeof(float));
        sl_wput_u32(b, (uint32_t)c->nattrs);
        for (size_t k = 0; k < c->nattrs; k++) {
            sl_wput_str(b, c->attrs[k].key);
            sl_wput_str(b, c->attrs[k].value);
        }
    }

    if (sel->images == SL_IMAGES_PAGE) {
        sl_wput_u32(b, 1);
        put_image(b, doc, sel->page);
    } else if (sel->images == SL_IMAGES_ALL) {
        uint32_t nimg = 0;
        for (size_t i = 0; i < doc->nimages; i++) nimg += doc->images[i].pixels != NULL;
        sl_wput_u32(b, nimg);
        for (size_t i = 0; i < doc->nimages; i++)
            if (doc->images[i].pixels) put_image(b, doc, (uint32_t)i + 1);
    } else {
        sl_wput_u32(b, 0);
    }

    from = clamp_from(sel->region_from, doc->nregions);
    n = 0;
    for (size_t i = from; i < doc->nregions; i++)
        n += !sel->only_page || doc->regions[i].page == sel->only_page;
    sl_wput_u32(b, from);
    sl_wput_u32(b, n);
    for (size_t i = from; i < doc->nregions; i++) {
        const sl_region *g = &doc->regions[i];
        if (sel->only_page && g->page != sel->only_page) continue;
        sl_wput_u32(b, g->page);
        sl_wput_str(b, g->label);
        sl_wput_f32(b, g->score);
        for (int k = 0; k < 4; k++) sl_wput_f32(b, g->box[k]);
    }

    /* children, all of them: the reader keeps those past its own count */
    sl_wput_u32(b, doc->max_children);
    sl_wput_u64(b, doc->max_child_bytes);
    sl_wput_str(b, doc->child_refusal ? doc->child_refusal : "");
    sl_wput_u32(b, (uint32_t)doc->nchildren);
    for (size_t i = 0; i < doc->nchildren; i++) {
        const sl_child *c = &doc->children[i];
        sl_wput_str(b, c->name);
        sl_wput_str(b, c->media_type ? c->media_type : "");
        sl_wput_u64(b, c->len);
        sl_wput(b, c->data, c->len);
    }
}

static int fail(char *err, size_t errlen, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* Cuts a list back to `n` entries before the sender's entries from n on
 * replace it; the sender and this document must agree on what came before. */
static int cut(sl_doc *doc, int which, uint32_t n) {
    int rc = 0;
    pthread_mutex_lock(&doc->lock);
    if (which == 0) {
        if (n > doc->nelems)
            rc = SL_EINVAL;
        else {
            for (size_t i = n; i < doc->nelems; i++) free(doc->elems[i].attrs);
            doc->nelems = n;
        }
    } else if (which == 1) {
        if (n > doc->nchunks)
            rc = SL_EINVAL;
        else {
            for (size_t i = n; i < doc->nchunks; i++) free(doc->chunks[i].attrs);
            doc->nchunks = n;
        }
    } else {
        if (n > doc->nregions)
            rc = SL_EINVAL;
        else
            doc->nregions = n;
    }
    pthread_mutex_unlock(&doc->lock);
    return rc;
}

#define BAD(what) fail(err, errlen, SL_EINVAL, "malformed %s", what)

static int get_elements(sl_rbuf *r, sl_doc *doc, int append, char *err, size_t errlen) {
    uint32_t from = sl_rget_u32(r), n = sl_rget_u32(r);
    if (r->bad) return BAD("element list");
    if (!append && cut(doc, 0, from)) return BAD("element base");
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        uint32_t type = sl_rget_u32(r);
        int32_t level = sl_rget_i32(r);
        uint32_t page = sl_rget_u32(r), line = sl_rget_u32(r);
        uint64_t offset = sl_rget_u64(r);
        float conf = sl_rget_f32(r);
        uint8_t has_bbox = sl_rget_u8(r);
        float box[4];
        for (int k = 0; k < 4; k++) box[k] = sl_rget_f32(r);
        size_t len;
        const char *text = sl_rget_str(r, &len);
        uint32_t nattrs = sl_rget_u32(r);
        if (r->bad || !text) return BAD("element");
        int idx = sl_doc_add_element(doc, (sl_elem_type)type, text, len);
        if (idx == SL_EINVAL) return BAD("element type");
        if (idx < 0) return fail(err, errlen, SL_ENOMEM, "out of memory for elements");
        size_t at = (size_t)idx;
        sl_elem_set_level(doc, at, level);
        sl_elem_set_page(doc, at, page);
        sl_elem_set_source(doc, at, offset, line);
        sl_elem_set_confidence(doc, at, conf);
        if (has_bbox) sl_elem_set_bbox(doc, at, box[0], box[1], box[2], box[3]);
        for (uint32_t k = 0; k < nattrs; k++) {
            const char *key = sl_rget_str(r, NULL), *val = sl_rget_str(r, NULL);
            if (r->bad || !key || !val) return BAD("element attribute");
            if (sl_elem_set_attr(doc, at, key, val) < 0)
                return fail(err, errlen, SL_ENOMEM, "out of memory for attributes");
        }
    }
    return r->bad ? BAD("element") : 0;
}

static int get_chunks(sl_rbuf *r, sl_doc *doc, int append, char *err, size_t errlen) {
    uint32_t from = sl_rget_u32(r), n = sl_rget_u32(r);
    if (r->bad) return BAD("chunk list");
    if (!append && cut(doc, 1, from)) return BAD("chunk base");
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        const char *text = sl_rget_str(r, &len);
        const char *heading = sl_rget_str(r, NULL), *summary = sl_rget_str(r, NULL);
        uint32_t page = sl_rget_u32(r), line = sl_rget_u32(r), dim = sl_rget_u32(r);
        const void *vec = sl_rget(r, (size_t)dim * sizeof(float));
        uint32_t nattrs = sl_rget_u32(r);
        if (r->bad || !text) return BAD("chunk");
        int idx = sl_doc_add_chunk(doc, text, len);
        if (idx < 0) return fail(err, errlen, SL_ENOMEM, "out of memory for chunks");
        size_t at = (size_t)idx;
        int rc = heading && *heading ? sl_chunk_set_heading(doc, at, heading) : 0;
        if (rc == 0 && summary) rc = sl_chunk_set_summary(doc, at, summary);
        if (rc == 0) rc = sl_chunk_set_position(doc, at, page, line);
        if (rc == 0 && dim) rc = sl_doc_set_chunk_vector(doc, at, vec, dim);
        for (uint32_t k = 0; rc == 0 && k < nattrs; k++) {
            const char *key = sl_rget_str(r, NULL), *val = sl_rget_str(r, NULL);
            if (r->bad || !key || !*key || !val) return BAD("chunk attribute");
            rc = sl_chunk_set_attr(doc, at, key, val);
        }
        if (rc < 0) return fail(err, errlen, SL_ENOMEM, "out of memory for chunks");
    }
    return 0;
}

static int get_images(sl_rbuf *r, sl_doc *doc, char *err, size_t errlen) {
    uint32_t n = sl_rget_u32(r);
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        uint32_t page = sl_rget_u32(r);
        uint8_t present = sl_rget_u8(r);
        if (r->bad) break;
        if (!present) {
            if (page >= 1 && page <= doc->nimages) sl_doc_drop_page_image(doc, page);
            continue;
        }
        uint32_t w = sl_rget_u32(r), h = sl_rget_u32(r), ch = sl_rget_u32(r);
        uint64_t stride = sl_rget_u64(r);
        float dpi = sl_rget_f32(r);
        uint64_t bytes = sl_rget_u64(r);
        if (r->bad || h == 0 || stride > SIZE_MAX / h || bytes != stride * h) return BAD("page image");
        const void *px = sl_rget(r, (size_t)bytes);
        if (!px) return BAD("page image");
        int rc = sl_doc_set_page_image(doc, page, w, h, ch, (size_t)stride, px, dpi);
        if (rc == SL_ENOMEM) return fail(err, errlen, rc, "out of memory for page image %u", page);
        if (rc < 0) return fail(err, errlen, rc, "page image %u does not fit the document", page);
    }
    return r->bad ? BAD("page image list") : 0;
}

static int get_regions(sl_rbuf *r, sl_doc *doc, int append, char *err, size_t errlen) {
    uint32_t from = sl_rget_u32(r), n = sl_rget_u32(r);
    if (r->bad) return BAD("region list");
    if (!append && cut(doc, 2, from)) return BAD("region base");
    for (uint32_t i = 0; i < n; i++) {
        uint32_t page = sl_rget_u32(r);
        const char *label = sl_rget_str(r, NULL);
        float score = sl_rget_f32(r), box[4];
        for (int k = 0; k < 4; k++) box[k] = sl_rget_f32(r);
        if (r->bad || !label) return BAD("region");
        if (sl_doc_add_region(doc, page, label, score, box[0], box[1], box[2], box[3]) < 0)
            return fail(err, errlen, SL_ENOMEM, "out of memory for regions");
    }
    return 0;
}

static int get_children(sl_rbuf *r, sl_doc *doc, char *err, size_t errlen) {
    uint32_t maxc = sl_rget_u32(r);
    uint64_t maxb = sl_rget_u64(r);
    const char *refusal = sl_rget_str(r, NULL);
    uint32_t n = sl_rget_u32(r);
    if (r->bad || !refusal) return BAD("child limits");
    sl_doc_set_child_limits(doc, maxc, maxb);
    if (*refusal && !doc->child_refusal && !(doc->child_refusal = strdup(refusal)))
        return fail(err, errlen, SL_ENOMEM, "out of memory for a child's refusal");
    if (n > maxc) return BAD("child count");
    for (uint32_t i = 0; i < n; i++) {
        const char *name = sl_rget_str(r, NULL), *media = sl_rget_str(r, NULL);
        uint64_t len = sl_rget_u64(r);
        if (r->bad || !name || !media || len > maxb) return BAD("child");
        const void *data = sl_rget(r, (size_t)len);
        if (!data && len) return BAD("child bytes");
        if (i < doc->nchildren) continue; /* the reader's own, sent along */
        if (sl_doc_put_child(doc, name, *media ? media : NULL, data, (size_t)len) < 0)
            return fail(err, errlen, SL_ENOMEM, "out of memory for child %u", i);
    }
    return 0;
}

int sl_wire_get_doc(sl_rbuf *r, sl_doc *doc, int append, char *err, size_t errlen) {
    uint32_t pages = sl_rget_u32(r);
    if (r->bad || pages > SL_WIRE_MAX_PAGES) return BAD("page count");
    if (!append || pages > doc->pages) sl_doc_set_page_count(doc, pages);
    uint32_t nmeta = sl_rget_u32(r);
    for (uint32_t i = 0; i < nmeta; i++) {
        const char *k = sl_rget_str(r, NULL), *v = sl_rget_str(r, NULL);
        if (r->bad || !k || !v) return BAD("metadata");
        const char *old = sl_doc_meta_get(doc, k);
        if ((!old || strcmp(old, v) != 0) && sl_doc_meta_set(doc, k, v) < 0)
            return fail(err, errlen, SL_ENOMEM, "out of memory for metadata");
    }
    int rc = get_elements(r, doc, append, err, errlen);
    if (rc == 0) rc = get_chunks(r, doc, append, err, errlen);
    if (rc == 0) rc = get_images(r, doc, err, errlen);
    if (rc == 0) rc = get_regions(r, doc, append, err, errlen);
    if (rc == 0) rc = get_children(r, doc, err, errlen);
    return rc;
}
