/* wire.h - the framed format between sluice and its worker processes.
 *
 * A frame is a 16-byte header (type, flags, payload length) and its payload,
 * on a SOCK_STREAM socketpair. Payloads up to SL_WIRE_INLINE_MAX bytes travel
 * inline; a larger one is written once, straight into a memfd, and only the
 * descriptor crosses the socket (SCM_RIGHTS): a page image or the elements of
 * a long document are never pushed through the socket buffer. A frame may
 * carry one more descriptor (a document's bytes, see sl_wire_data). Memfds are
 * sealed before they travel, and refused unsealed.
 *
 * Encoders run twice over the same data: once with a writer that has no
 * buffer (it only counts), then into a buffer of exactly that size. Readers
 * check every length against what is left: a malformed frame is an error,
 * never a crash. Both ends are the same executable, so integers travel in
 * host order. Strings travel with their terminating NUL, so a reader hands
 * out pointers into the frame instead of copies.
 */
#ifndef SL_WIRE_H
#define SL_WIRE_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>

#include "document.h"

enum {
    SL_WIRE_INLINE_MAX = 64 * 1024,
    SL_WIRE_VERSION = 3,        /* 2: RUN names an sl_op_id (parse 2, page 3, chunk 4); 3: chunk attributes */
    SL_WIRE_MAX_PAGES = 1 << 20 /* a page count beyond is refused (it sizes an array) */
};

typedef enum sl_msg {
    SL_MSG_HELLO = 1,  /* worker: pid, version */
    SL_MSG_CONFIG = 2, /* core: log level, memory limit, seccomp */
    SL_MSG_LOAD = 3,   /* core: slot, plugin path, instance name, "key=value" options */
    SL_MSG_LOADED = 4, /* worker: slot, rc, message */
    SL_MSG_RUN = 5,    /* core: one operation (an sl_op_id) on one document (or page) */
    SL_MSG_RESULT = 6  /* worker: rc, message, what the plugin made */
} sl_msg;

/* How a RUN's document bytes travel: none (empty), or as a sealed memfd
 * copy attached to the frame (the worker checks it against the hash). 1 was
 * a path the worker opened again: a file that changed underneath could
 * fault it, so it is no longer used. */
typedef enum sl_wire_data { SL_DATA_NONE = 0, SL_DATA_FD = 2 } sl_wire_data;

#define SL_FRAME_PAYLOAD_FD 0x1u /* the payload is in an attached memfd */
#define SL_FRAME_DATA_FD 0x2u    /* one more descriptor follows (after the payload's) */

typedef struct sl_frame_hdr {
    uint32_t type;
    uint32_t flags;
    uint64_t len;
} sl_frame_hdr;

/* --- writing --- */

/* p == NULL: measuring (only len grows). Writing past cap is a bug. */
typedef struct sl_wbuf {
    unsigned char *p;
    size_t len, cap;
} sl_wbuf;

void sl_wput(sl_wbuf *b, const void *src, size_t n);
void sl_wput_u8(sl_wbuf *b, uint8_t v);
void sl_wput_u32(sl_wbuf *b, uint32_t v);
void sl_wput_i32(sl_wbuf *b, int32_t v);
void sl_wput_u64(sl_wbuf *b, uint64_t v);
void sl_wput_i64(sl_wbuf *b, int64_t v);
void sl_wput_f32(sl_wbuf *b, float v);
/* len bytes and a NUL; s == NULL travels as "absent". */
void sl_wput_strn(sl_wbuf *b, const char *s, size_t len);
void sl_wput_str(sl_wbuf *b, const char *s);

/* An outgoing frame: header and inline payload in one buffer, or header
 * only and the payload in a memfd. Owns its descriptors. */
typedef struct sl_frame_out {
    struct sl_frame_out *next;
    unsigned char *buf; /* header (+ inline payload) */
    size_t buflen, sent;
    int owned; /* buf is malloc'd (else the caller's storage) */
    int fds[2];
    int nfds, fds_sent;
    void *map; /* the memfd payload while it is being written */
    size_t maplen;
} sl_frame_out;

/* Starts a frame of `len` payload bytes and points *payload where to write
 * them (inline, or a shared mapping of a new memfd). Returns 0 or SL_ENOMEM. */
int sl_frame_begin(uint32_t type, size_t len, sl_frame_out **out, unsigned char **payload);
/* The same, for small inline frames, in caller storage of `cap` bytes (no
 * allocation: for a worker whose plugin just ran out of memory). */
int sl_frame_begin_static(sl_frame_out *f, unsigned char *storage, size_t cap, uint32_t type, size_t len,
                          unsigned char **payload);
/* An encoder, run twice by sl_frame_build: measuring, then writing. */
typedef void (*sl_wire_enc)(sl_wbuf *b, const void *arg);
/* Measures, starts a frame of that size and encodes into it. 0 or SL_ENOMEM. */
int sl_frame_build(uint32_t type, sl_wire_enc enc, const void *arg, sl_frame_out **out);
/* Writing done: unmaps a memfd payload. */
void sl_frame_end(sl_frame_out *f);
/* Attaches one more descriptor (the frame takes ownership). */
void sl_frame_attach_fd(sl_frame_out *f, int fd);
/* Sends what it can: 1 all sent, 0 the socket is full (non-blocking), or a
 * negative errno. Blocking sockets loop until 1 or an error. */
int sl_frame_send(int sock, sl_frame_out *f);
/* Closes the descriptors; frees the frame unless it is caller storage. */
void sl_frame_free(sl_frame_out *f);

/* Memfds travel sealed: once sent, neither side can change or resize what
 * the other is reading (a compromised worker cannot race the core's
 * decoder). seal: 0 or -1; sealed: 1 if fd carries the seals. */
#define SL_MEMFD_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
int sl_memfd_seal(int fd);
int sl_memfd_sealed(int fd);

/* --- reading --- */

typedef struct sl_rbuf {
    const unsigned char *p;
    size_t len, pos;
    int bad; /* a read ran past the end or found a malformed value */
} sl_rbuf;

const void *sl_rget(sl_rbuf *r, size_t n); /* NULL (and bad) past the end */
uint8_t sl_rget_u8(sl_rbuf *r);
uint32_t sl_rget_u32(sl_rbuf *r);
int32_t sl_rget_i32(sl_rbuf *r);
uint64_t sl_rget_u64(sl_rbuf *r);
int64_t sl_rget_i64(sl_rbuf *r);
float sl_rget_f32(sl_rbuf *r);
/* NUL-terminated, inside the frame; NULL when absent (or bad). */
const char *sl_rget_str(sl_rbuf *r, size_t *len);

/* One received frame. An inline payload lives in the reader's buffer until
 * the next sl_reader_fill; a memfd payload until sl_frame_in_release. */
typedef struct sl_frame_in {
    sl_frame_hdr hdr;
    const unsigned char *payload;
    size_t len;
    void *map; /* mapping of a memfd payload */
    size_t maplen;
    int data_fd; /* SL_FRAME_DATA_FD's descriptor, -1 if none; take it or release closes it */
} sl_frame_in;

/* Bytes and descriptors received but not yet made into frames. */
typedef struct sl_reader {
    unsigned char *buf;
    size_t len, off, cap;
    int fds[8];
    int nfds;
} sl_reader;

int sl_reader_init(sl_reader *rd);
void sl_reader_free(sl_reader *rd);
/* One recvmsg: >0 bytes read, 0 end of stream, or a negative errno
 * (-EAGAIN: nothing there on a non-blocking socket). */
int sl_reader_fill(sl_reader *rd, int sock);
/* The next complete frame: 1 got one, 0 need more bytes, or a negative
 * SL_E* code for a malformed stream. */
int sl_reader_next(sl_reader *rd, sl_frame_in *f);
void sl_frame_in_release(sl_frame_in *f);

/* --- documents --- */

/* Which page images go with a document's state. */
typedef enum sl_wire_images { SL_IMAGES_NONE, SL_IMAGES_ALL, SL_IMAGES_PAGE } sl_wire_images;

/* What part of a document's lists to send: everything from the given
 * indexes on, and images by `images` (SL_IMAGES_PAGE: `page` only, present
 * or dropped). The receiver either replaces (each list cut to `from`, then
 * the rest appended) or appends (page stages: other pages' results arrive
 * meanwhile, so only additions travel back). */
typedef struct sl_wire_sel {
    sl_wire_images images;
    uint32_t page;
    uint32_t elem_from, chunk_from, region_from;
    uint32_t only_page; /* nonzero: only the elements and regions of this page */
} sl_wire_sel;

/* Encodes page count, metadata, elements, chunks, images and regions. The
 * document must not change between the measuring and the writing pass. */
void sl_wire_put_doc(sl_wbuf *b, const sl_doc *doc, const sl_wire_sel *sel);
/* Applies an encoded state to doc. 0, or a negative SL_E* code with the
 * reason in err. */
int sl_wire_get_doc(sl_rbuf *r, sl_doc *doc, int append, char *err, size_t errlen);

#endif
