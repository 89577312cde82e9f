/* document.h - the core's side of sl_doc: creation, the mapped bytes, and
 * what the pipeline needs beyond the SDK accessors (see sluice/doc.h).
 *
 * A document owns an arena; everything plugins add lives there and is freed
 * by sl_doc_free. The mutex lets page stages add elements to one
 * document from several pool threads at once.
 */
#ifndef SL_DOCUMENT_H
#define SL_DOCUMENT_H

#include <pthread.h>
#include <stdint.h>

#include "arena.h"
#include "sluice/call.h"
#include "sluice/doc.h"

typedef struct sl_kv {
    const char *key;
    const char *value;
} sl_kv;

typedef struct sl_element {
    sl_elem_type type;
    int level;
    uint32_t page;
    uint32_t line;
    uint64_t offset;
    float confidence; /* < 0: unknown */
    int has_bbox;
    float bbox[4];
    const char *text;
    size_t len;
    sl_kv *attrs;
    size_t nattrs;
} sl_element;

typedef struct sl_chunk {
    const char *text;
    size_t len;
    const char *heading;
    const char *summary;
    uint32_t page;
    uint32_t line;
    float *vector; /* dim floats, arena-owned */
    uint32_t dim;
    sl_kv *attrs; /* malloc'd array; keys and values in the arena */
    size_t nattrs;
} sl_chunk;

typedef struct sl_page_image {
    unsigned char *pixels; /* malloc'd; NULL: none */
    uint32_t width, height, channels;
    size_t stride;
    float dpi;
} sl_page_image;

/* A document found inside this one (sl_doc_add_child): its name as the
 * parser gave it, its media type (NULL: detect) and its bytes, arena-owned. */
typedef struct sl_child {
    const char *name;
    const char *media_type;
    const char *data;
    size_t len;
} sl_child;

typedef struct sl_region {
    uint32_t page;
    const char *label;
    float score;
    float box[4];
} sl_region;

struct sl_doc {
    pthread_mutex_t lock;
    sl_arena arena;
    /* set by the core */
    const char *uri;
    const char *path; /* file system path, NULL if none */
    const char *media_type;
    const char *data;
    size_t len;
    int mapped; /* 1: an mmap of len bytes (worker processes); 2: malloc'd; 0: the caller's */
    char hash[33];
    char fingerprint[33];
    uint64_t run_id;
    int64_t queue_id, queue_token; /* the queue job it was leased as (queue.c); 0: none */
    int64_t fence_id, fence_token; /* a leased document's child: its job, to fence (not ack) its store */
    /* filled by plugins */
    uint32_t pages;
    sl_kv *meta;
    size_t nmeta, cmeta;
    uint32_t *meta_index; /* open addressing over meta (index + 1; 0 empty), from 16 keys on */
    size_t meta_slots;
    sl_element *elems;
    size_t nelems, celems;
    sl_chunk *chunks;
    size_t nchunks, cchunks;
    sl_page_image *images; /* [pages], made on the first image */
    size_t nimages;
    sl_region *regions;
    size_t nregions, cregions;
    /* children (sl_doc_add_child) and the limits the core set on them */
    sl_child *children;
    size_t nchildren, cchildren;
    uint64_t child_bytes;
    uint32_t max_children;
    uint64_t max_child_bytes;
    char *child_refusal;  /* malloc'd: why a child was refused (the document then fails) */
    uint32_t depth;       /* 0 for a file; a child's parent's depth + 1 */
    const char *detected; /* the read step: the type the content showed when the name said another */
    const char *believed; /* ...and the one believed (the name's or the content's); static strings */
    /* The first text a plugin gave that is not UTF-8 ("element 3
     * (paragraph): not valid UTF-8 at byte 17"); empty while all were. The
     * text is refused (SL_EBADINPUT) and sl_op_call fails the document with
     * this, whatever the plugin then answered. */
    char bad_text[160];
};

/* After a plugin's call on doc: when it gave text that is not UTF-8,
 * fails `call` with SL_EBADINPUT and the place (doc->bad_text), replacing
 * rc; else returns rc. */
int sl_doc_text_verdict(sl_doc *doc, sl_call *call, int rc);

/* A new, empty document for `uri` (copied). NULL on out of memory. */
sl_doc *sl_doc_new(const char *uri, const char *path);
/* Reads `path` into a copy (never a mapping: a file truncated underneath
 * cannot fault the process), up to max_size bytes; fills data, len and the
 * content hash. A file that keeps changing while it is read fails. On
 * failure returns a negative SL_E* and writes the reason ("permission
 * denied", "is a directory", "the file changed while sluice read it", ...)
 * to err. A path that is an http(s):// or s3:// URI is fetched, blocking
 * (source.h). */
int sl_doc_load(sl_doc *doc, uint64_t max_size, char *err, size_t errlen);
/* Uses caller-owned bytes (tests, `sluice check`); hashes them. The bytes
 * must outlive the document. */
void sl_doc_set_data(sl_doc *doc, const char *data, size_t len);
/* Takes malloc'd bytes (a fetched body): the document frees them. Hashes them. */
void sl_doc_take_data(sl_doc *doc, char *data, size_t len);
void sl_doc_set_media_type(sl_doc *doc, const char *media_type);
void sl_doc_set_fingerprint(sl_doc *doc, const char *fp_hex);
void sl_doc_set_run_id(sl_doc *doc, uint64_t run_id);
/* Allocates the vector of chunk i (dim floats, zeroed); NULL on OOM. */
float *sl_doc_chunk_vector(sl_doc *doc, size_t i, uint32_t dim);
/* Sets the vector of chunk i to a copy of v (dim floats, any alignment),
 * without zeroing it first: 0, SL_EINVAL (no such chunk), or SL_ENOMEM. */
int sl_doc_set_chunk_vector(sl_doc *doc, size_t i, const void *v, uint32_t dim);
/* Orders elements by page, keeping the order within a page (after page
 * stages added elements in parallel). */
void sl_doc_sort_elements(sl_doc *doc);
/* Bytes the document holds: arena, page images and its data. */
size_t sl_doc_bytes(const sl_doc *doc);
/* The limits on children (sl_doc_add_child): how many, and their bytes in all. */
void sl_doc_set_child_limits(sl_doc *doc, uint32_t max_children, uint64_t max_child_bytes);
/* Adds a child without checking the limits (wire.c: a worker checked them). */
int sl_doc_put_child(sl_doc *doc, const char *name, const char *media_type, const void *data, size_t len);
/* Frees the data, the arena and the document. */
void sl_doc_free(sl_doc *doc);

/* Hex of XXH3-128 of the bytes (32 chars + NUL). */
void sl_hash128_hex(const void *p, size_t len, char out[33]);

#endif
