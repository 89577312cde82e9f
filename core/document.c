/* document.c - sl_doc: a copy of the source bytes and everything plugins add to
 * it, all in one arena (see document.h and sluice/doc.h). */
#include "document.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "sluice/call.h"
#include "source.h"

void sl_hash128_hex(const void *p, size_t len, char out[33]) {
    XXH128_hash_t h = XXH3_128bits(p, len);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
}

sl_doc *sl_doc_new(const char *uri, const char *path) {
    sl_doc *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    pthread_mutex_init(&d->lock, NULL);
    sl_arena_init(&d->arena);
    d->uri = sl_arena_strdup(&d->arena, uri);
    d->path = path ? sl_arena_strdup(&d->arena, path) : NULL;
    d->media_type = "application/octet-stream";
    d->max_children = 1000; /* the run sets [sluice] max_children and max_child_bytes */
    d->max_child_bytes = 64u << 20;
    if (!d->uri || (path && !d->path)) {
        sl_doc_free(d);
        return NULL;
    }
    return d;
}

/* Reads the whole file into a buffer of `size` + 1 bytes (grown if the file
 * grew), from offset 0. *outlen is what was there to read. */
static int read_all(int fd, size_t size, uint64_t max_size, char **out, size_t *outlen, char *err,
                    size_t errlen) {
    size_t cap = size + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) return snprintf(err, errlen, "out of memory for %zu bytes", cap), SL_ENOMEM;
    for (;;) {
        if (len + 1 >= cap) {
            size_t ncap = cap < 65536 ? 65536 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) return free(buf), snprintf(err, errlen, "out of memory"), SL_ENOMEM;
            buf = nb;
            cap = ncap;
        }
        ssize_t n = pread(fd, buf + len, cap - 1 - len, (off_t)len);
        if (n < 0) {
            if (errno == EINTR) continue;
            snprintf(err, errlen, "read failed: %s", strerror(errno));
            free(buf);
            return SL_EBADINPUT;
        }
        if (n == 0) break;
        len += (size_t)n;
        if (len > max_size) {
            snprintf(err, errlen, "larger than max_file_size (%llu bytes)", (unsigned long long)max_size);
            free(buf);
            return SL_EBADINPUT;
        }
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

static int same_file_state(const struct stat *a, const struct stat *b) {
    return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec && a->st_ino == b->st_ino;
}

/* The document's bytes are a copy, read with read(2), never a mapping: a file
 * truncated or rewritten while sluice works on it cannot fault (SIGBUS) the
 * process. A file that changes while it is read (its size, its mtime) is
 * read again, once; if it changes again the document fails, named. */
/* A remote document read outside a run (a dry run, a tool): one blocking
 * fetch. A run fetches on the loop instead (job.c). */
static int load_remote(sl_doc *doc, uint64_t max_size, char *err, size_t errlen) {
    sl_fetched got;
    int rc = sl_fetch_sync(doc->path, max_size, &got, err, errlen);
    if (rc) return rc;
    doc->data = got.data;
    doc->len = got.len;
    doc->mapped = 2; /* malloc'd */
    sl_hash128_hex(doc->data, doc->len, doc->hash);
    return 0;
}

int sl_doc_load(sl_doc *doc, uint64_t max_size, char *err, size_t errlen) {
    if (sl_source_is_remote(doc->path)) return load_remote(doc, max_size, err, errlen);
    int fd = open(doc->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open: %s", strerror(errno));
        return SL_EBADINPUT;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot stat: %s", strerror(errno));
        close(fd);
        return SL_EBADINPUT;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "is a directory");
        close(fd);
        return SL_EBADINPUT;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "not a regular file");
        close(fd);
        return SL_EBADINPUT;
    }
    int rc = SL_EBADINPUT;
    for (int attempt = 0; attempt < 2; attempt++) {
        if ((uint64_t)st.st_size > max_size) {
            snprintf(err, errlen, "%llu bytes, larger than max_file_size (%llu bytes)",
                     (unsigned long long)st.st_size, (unsigned long long)max_size);
            rc = SL_EBADINPUT;
            break;
        }
        char *buf;
        size_t len;
        rc = read_all(fd, (size_t)st.st_size, max_size, &buf, &len, err, errlen);
        if (rc) break;
        struct stat after;
        if (fstat(fd, &after) != 0) {
            free(buf);
            snprintf(err, errlen, "cannot stat: %s", strerror(errno));
            rc = SL_EBADINPUT;
            break;
        }
        if (same_file_state(&st, &after) && len == (size_t)after.st_size) {
            doc->data = buf;
            doc->len = len;
            doc->mapped = 2; /* malloc'd */
            break;
        }
        free(buf);
        snprintf(err, errlen, "the file changed while sluice read it (%lld bytes, then %zu read, now %lld)",
                 (long long)st.st_size, len, (long long)after.st_size);
        rc = SL_EBADINPUT;
        st = after;
    }
    close(fd);
    if (rc == 0) sl_hash128_hex(doc->data, doc->len, doc->hash);
    return rc;
}

void sl_doc_take_data(sl_doc *doc, char *data, size_t len) {
    if (doc->mapped == 2) free((void *)doc->data);
    doc->data = data;
    doc->len = len;
    doc->mapped = 2;
    sl_hash128_hex(data, len, doc->hash);
}

void sl_doc_set_data(sl_doc *doc, const char *data, size_t len) {
    doc->data = data;
    doc->len = len;
    doc->mapped = 0;
    sl_hash128_hex(data, len, doc->hash);
}

void sl_doc_set_media_type(sl_doc *doc, const char *mt) {
    const char *c = sl_arena_strdup(&doc->arena, mt);
    if (c) doc->media_type = c;
}

void sl_doc_set_fingerprint(sl_doc *doc, const char *fp) {
    snprintf(doc->fingerprint, sizeof doc->fingerprint, "%s", fp);
}
void sl_doc_set_run_id(sl_doc *doc, uint64_t run_id) { doc->run_id = run_id; }

size_t sl_doc_bytes(const sl_doc *doc) {
    size_t n = doc->arena.reserved + doc->len;
    for (size_t i = 0; i < doc->nimages; i++)
        if (doc->images[i].pixels) n += doc->images[i].stride * doc->images[i].height;
    return n;
}

void sl_doc_free(sl_doc *doc) {
    if (!doc) return;
    if (doc->mapped == 1)
        munmap((void *)doc->data, doc->len);
    else if (doc->mapped == 2)
        free((void *)doc->data);
    free(doc->meta);
    free(doc->meta_index);
    for (size_t i = 0; i < doc->nelems; i++) free(doc->elems[i].attrs);
    free(doc->elems);
    for (size_t i = 0; i < doc->nchunks; i++) free(doc->chunks[i].attrs);
    free(doc->chunks);
    for (size_t i = 0; i < doc->nimages; i++) free(doc->images[i].pixels);
    free(doc->images);
    free(doc->regions);
    free(doc->children);
    free(doc->child_refusal);
    sl_arena_free(&doc->arena);
    pthread_mutex_destroy(&doc->lock);
    free(doc);
}

/* Grows a malloc'd array (not the arena: arrays are resized, arena memory is not freed). */
static int grow(void **arr, size_t *cap, size_t n, size_t elsize) {
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, nc * elsize);
    if (!p) return SL_ENOMEM;
    memset((char *)p + *cap * elsize, 0, (nc - *cap) * elsize);
    *arr = p;
    *cap = nc;
    return 0;
}

/* --- SDK: core-set properties --- */

const char *sl_doc_uri(const sl_doc *doc) { return doc->uri; }
const char *sl_doc_media_type(const sl_doc *doc) { return doc->media_type; }
const char *sl_doc_data(const sl_doc *doc, size_t *len) {
    if (len) *len = doc->len;
    return doc->data;
}
const char *sl_doc_hash(const sl_doc *doc) { return doc->hash; }

int sl_doc_queue_job(const sl_doc *doc, int64_t *id, int64_t *token) {
    if (!doc || doc->queue_id <= 0) return 0;
    if (id) *id = doc->queue_id;
    if (token) *token = doc->queue_token;
    return 1;
}
int sl_doc_queue_fence(const sl_doc *doc, int64_t *id, int64_t *token) {
    if (!doc || doc->fence_id <= 0) return 0;
    if (id) *id = doc->fence_id;
    if (token) *token = doc->fence_token;
    return 1;
}
const char *sl_doc_fingerprint(const sl_doc *doc) { return doc->fingerprint; }
uint64_t sl_doc_run_id(const sl_doc *doc) { return doc->run_id; }

void *sl_doc_alloc(sl_doc *doc, size_t size) {
    pthread_mutex_lock(&doc->lock);
    void *p = sl_arena_alloc(&doc->arena, size);
    pthread_mutex_unlock(&doc->lock);
    return p;
}

char *sl_doc_strndup(sl_doc *doc, const char *s, size_t len) {
    pthread_mutex_lock(&doc->lock);
    char *p = sl_arena_strndup(&doc->arena, s, len);
    pthread_mutex_unlock(&doc->lock);
    return p;
}

/* --- metadata --- */

/* --- metadata: a list in insertion order, with a hash index once it is
 * long enough for a linear search to cost (a front matter of 200,000 keys
 * took 67 s; issue 17) --- */

#define META_INDEX_FROM 16

static size_t meta_slot(const sl_doc *doc, const char *key, size_t *found) {
    size_t mask = doc->meta_slots - 1, i = (size_t)XXH3_64bits(key, strlen(key)) & mask;
    *found = SIZE_MAX;
    while (doc->meta_index[i]) {
        size_t at = doc->meta_index[i] - 1;
        if (strcmp(doc->meta[at].key, key) == 0) {
            *found = at;
            break;
        }
        i = (i + 1) & mask;
    }
    return i;
}

/* (Re)builds the index with room for twice the keys; 0, or -1. */
static int meta_reindex(sl_doc *doc) {
    size_t slots = 64;
    while (slots < doc->nmeta * 4) slots *= 2;
    uint32_t *idx = calloc(slots, sizeof *idx);
    if (!idx) return -1;
    free(doc->meta_index);
    doc->meta_index = idx;
    doc->meta_slots = slots;
    for (size_t i = 0; i < doc->nmeta; i++) {
        size_t found;
        doc->meta_index[meta_slot(doc, doc->meta[i].key, &found)] = (uint32_t)(i + 1);
    }
    return 0;
}

static size_t meta_find(const sl_doc *doc, const char *key) {
    if (doc->meta_index) {
        size_t found;
        meta_slot(doc, key, &found);
        return found;
    }
    for (size_t i = 0; i < doc->nmeta; i++)
        if (strcmp(doc->meta[i].key, key) == 0) return i;
    return SIZE_MAX;
}

/* Text from a plugin must be UTF-8: the sinks store it as text and
 * `query --json` prints it as JSON. Records the first offence in
 * doc->bad_text (under doc->lock) and returns SL_EBADINPUT; 0 when valid. */
static int check_text(sl_doc *doc, const char *what, size_t index, const char *kind, const char *s,
                      size_t len) {
    size_t bad = 0;
    if (!s || sl_utf8_valid(s, len, &bad)) return 0;
    if (!doc->bad_text[0]) {
        if (index == SIZE_MAX)
            snprintf(doc->bad_text, sizeof doc->bad_text, "%s: not valid UTF-8 at byte %zu", what, bad);
        else
            snprintf(doc->bad_text, sizeof doc->bad_text, "%s %zu%s%s%s: not valid UTF-8 at byte %zu", what,
                     index, kind ? " (" : "", kind ? kind : "", kind ? ")" : "", bad);
    }
    return SL_EBADINPUT;
}

int sl_doc_text_verdict(sl_doc *doc, sl_call *call, int rc) {
    if (!doc || !doc->bad_text[0]) return rc;
    return sl_fail(call, SL_EBADINPUT, "the plugin gave %s; element, chunk and metadata text must be UTF-8",
                   doc->bad_text);
}

int sl_doc_meta_set(sl_doc *doc, const char *key, const char *value) {
    if (!key || !value) return SL_EINVAL;
    int rc = SL_ENOMEM;
    pthread_mutex_lock(&doc->lock);
    if ((rc = check_text(doc, "metadata", SIZE_MAX, NULL, key, strlen(key))) ||
        (rc = check_text(doc, "metadata value", SIZE_MAX, NULL, value, strlen(value)))) {
        pthread_mutex_unlock(&doc->lock);
        return rc;
    }
    rc = SL_ENOMEM;
    const char *v = sl_arena_strdup(&doc->arena, value);
    if (!v) goto out;
    size_t at = meta_find(doc, key);
    if (at != SIZE_MAX) {
        doc->meta[at].value = v;
        rc = 0;
        goto out;
    }
    if (doc->nmeta >= UINT32_MAX - 1) goto out;
    const char *k = sl_arena_strdup(&doc->arena, key);
    if (!k || grow((void **)&doc->meta, &doc->cmeta, doc->nmeta, sizeof *doc->meta)) goto out;
    doc->meta[doc->nmeta].key = k;
    doc->meta[doc->nmeta].value = v;
    doc->nmeta++;
    if (doc->nmeta >= META_INDEX_FROM && doc->nmeta * 2 > doc->meta_slots) {
        if (meta_reindex(doc)) { /* the key is in the list; a search stays linear */
            free(doc->meta_index);
            doc->meta_index = NULL;
            doc->meta_slots = 0;
        }
    } else if (doc->meta_index) {
        size_t found;
        doc->meta_index[meta_slot(doc, k, &found)] = (uint32_t)doc->nmeta;
    }
    rc = 0;
out:
    pthread_mutex_unlock(&doc->lock);
    return rc;
}

const char *sl_doc_meta_get(const sl_doc *doc, const char *key) {
    size_t at = key ? meta_find(doc, key) : SIZE_MAX;
    return at == SIZE_MAX ? NULL : doc->meta[at].value;
}

size_t sl_doc_meta_count(const sl_doc *doc) { return doc->nmeta; }

int sl_doc_meta_at(const sl_doc *doc, size_t i, const char **key, const char **value) {
    if (i >= doc->nmeta) return SL_EINVAL;
    if (key) *key = doc->meta[i].key;
    if (value) *value = doc->meta[i].value;
    return 0;
}

/* --- pages --- */

int sl_doc_set_page_count(sl_doc *doc, uint32_t pages) {
    doc->pages = pages;
    return 0;
}
uint32_t sl_doc_page_count(const sl_doc *doc) { return doc->pages; }

/* --- elements --- */

const char *sl_elem_type_name(sl_elem_type t) {
    switch (t) {
    case SL_EL_TITLE: return "title";
    case SL_EL_HEADING: return "heading";
    case SL_EL_PARAGRAPH: return "paragraph";
    case SL_EL_LIST: return "list";
    case SL_EL_TABLE: return "table";
    case SL_EL_CODE: return "code";
    case SL_EL_CAPTION: return "caption";
    case SL_EL_QUOTE: return "quote";
    case SL_EL_OTHER: return "other";
    }
    return "unknown";
}

int sl_doc_add_element(sl_doc *doc, sl_elem_type type, const char *text, size_t len) {
    if (!text && len) return SL_EINVAL;
    if (type < SL_EL_TITLE || type > SL_EL_OTHER) return SL_EINVAL;
    int rc;
    pthread_mutex_lock(&doc->lock);
    if ((rc = check_text(doc, "element", doc->nelems, sl_elem_type_name(type), text, len))) {
        pthread_mutex_unlock(&doc->lock);
        return rc;
    }
    char *t = sl_arena_strndup(&doc->arena, text ? text : "", len);
    if (!t || doc->nelems >= (size_t)INT32_MAX ||
        grow((void **)&doc->elems, &doc->celems, doc->nelems, sizeof *doc->elems)) {
        rc = SL_ENOMEM;
    } else {
        sl_element *e = &doc->elems[doc->nelems];
        memset(e, 0, sizeof *e);
        e->type = type;
        e->text = t;
        e->len = len;
        e->confidence = -1.0f;
        rc = (int)doc->nelems++;
    }
    pthread_mutex_unlock(&doc->lock);
    return rc;
}

/* Looks up element i under the lock; the macro body runs with `e` set. */
#define WITH_ELEM(doc, i, body)                                                                              \
    do {                                                                                                     \
        int rc_ = 0;                                                                                         \
        pthread_mutex_lock(&(doc)->lock);                                                                    \
        if ((i) >= (doc)->nelems)                                                                            \
            rc_ = SL_EINVAL;                                                                                 \
        else {                                                                                               \
            sl_element *e = &(doc)->elems[i];                                                                \
            body;                                                                                            \
        }                                                                                                    \
        pthread_mutex_unlock(&(doc)->lock);                                                                  \
        return rc_;                                                                                          \
    } while (0)

int sl_elem_set_level(sl_doc *doc, size_t i, int level) { WITH_ELEM(doc, i, e->level = level); }
int sl_elem_set_page(sl_doc *doc, size_t i, uint32_t page) { WITH_ELEM(doc, i, e->page = page); }
int sl_elem_set_source(sl_doc *doc, size_t i, uint64_t offset, uint32_t line) {
    WITH_ELEM(doc, i, (e->offset = offset, e->line = line));
}
int sl_elem_set_bbox(sl_doc *doc, size_t i, float x0, float y0, float x1, float y1) {
    WITH_ELEM(doc, i, (e->has_bbox = 1, e->bbox[0] = x0, e->bbox[1] = y0, e->bbox[2] = x1, e->bbox[3] = y1));
}
int sl_elem_set_confidence(sl_doc *doc, size_t i, float c) { WITH_ELEM(doc, i, e->confidence = c); }

/* Sets key = value in a key/value array (copies in the arena); called
 * under doc->lock. */
static int kv_set(sl_doc *doc, sl_kv **attrs, size_t *nattrs, const char *key, const char *value) {
    const char *v = sl_arena_strdup(&doc->arena, value);
    if (!v) return SL_ENOMEM;
    for (size_t j = 0; j < *nattrs; j++)
        if (strcmp((*attrs)[j].key, key) == 0) {
            (*attrs)[j].value = v;
            return 0;
        }
    const char *k = sl_arena_strdup(&doc->arena, key);
    sl_kv *na = k ? realloc(*attrs, (*nattrs + 1) * sizeof *na) : NULL;
    if (!na) return SL_ENOMEM;
    *attrs = na;
    na[*nattrs].key = k;
    na[*nattrs].value = v;
    (*nattrs)++;
    return 0;
}

static const char *kv_get(const sl_kv *attrs, size_t nattrs, const char *key) {
    for (size_t j = 0; key && j < nattrs; j++)
        if (strcmp(attrs[j].key, key) == 0) return attrs[j].value;
    return NULL;
}

int sl_elem_set_attr(sl_doc *doc, size_t i, const char *key, const char *value) {
    if (!key || !value) return SL_EINVAL;
    WITH_ELEM(doc, i, {
        if (!(rc_ = check_text(doc, "attribute of element", i, NULL, value, strlen(value))))
            rc_ = kv_set(doc, &e->attrs, &e->nattrs, key, value);
    });
}

size_t sl_doc_element_count(const sl_doc *doc) { return doc->nelems; }

static const sl_element *elem(const sl_doc *doc, size_t i) { return i < doc->nelems ? &doc->elems[i] : NULL; }

sl_elem_type sl_element_type(const sl_doc *doc, size_t i) {
    const sl_element *e = elem(doc, i);
    return e ? e->type : (sl_elem_type)0;
}
const char *sl_element_text(const sl_doc *doc, size_t i, size_t *len) {
    const sl_element *e = elem(doc, i);
    if (len) *len = e ? e->len : 0;
    return e ? e->text : NULL;
}
int sl_element_level(const sl_doc *doc, size_t i) {
    const sl_element *e = elem(doc, i);
    return e ? e->level : 0;
}
uint32_t sl_element_page(const sl_doc *doc, size_t i) {
    const sl_element *e = elem(doc, i);
    return e ? e->page : 0;
}
uint32_t sl_element_line(const sl_doc *doc, size_t i) {
    const sl_element *e = elem(doc, i);
    return e ? e->line : 0;
}
uint64_t sl_element_offset(const sl_doc *doc, size_t i) {
    const sl_element *e = elem(doc, i);
    return e ? e->offset : 0;
}
const char *sl_element_attr(const sl_doc *doc, size_t i, const char *key) {
    const sl_element *e = elem(doc, i);
    return e ? kv_get(e->attrs, e->nattrs, key) : NULL;
}
float sl_element_confidence(const sl_doc *doc, size_t i) {
    const sl_element *e = elem(doc, i);
    return e ? e->confidence : -1.0f;
}
int sl_element_bbox(const sl_doc *doc, size_t i, float box[4]) {
    const sl_element *e = elem(doc, i);
    if (!e || !e->has_bbox) return 0;
    memcpy(box, e->bbox, sizeof e->bbox);
    return 1;
}

void sl_doc_sort_elements(sl_doc *doc) {
    /* qsort is not stable; pages are rarely out of order, so check first
     * and do a stable insertion sort when they are. */
    size_t n = doc->nelems;
    int sorted = 1;
    for (size_t i = 1; i < n && sorted; i++)
        if (doc->elems[i].page < doc->elems[i - 1].page) sorted = 0;
    if (sorted) return;
    for (size_t i = 1; i < n; i++) {
        sl_element t = doc->elems[i];
        size_t j = i;
        while (j > 0 && doc->elems[j - 1].page > t.page) {
            doc->elems[j] = doc->elems[j - 1];
            j--;
        }
        doc->elems[j] = t;
    }
}

/* --- chunks --- */

int sl_doc_add_chunk(sl_doc *doc, const char *text, size_t len) {
    if (!text && len) return SL_EINVAL;
    int rc;
    pthread_mutex_lock(&doc->lock);
    if ((rc = check_text(doc, "chunk", doc->nchunks, NULL, text, len))) {
        pthread_mutex_unlock(&doc->lock);
        return rc;
    }
    char *t = sl_arena_strndup(&doc->arena, text ? text : "", len);
    if (!t || doc->nchunks >= (size_t)INT32_MAX ||
        grow((void **)&doc->chunks, &doc->cchunks, doc->nchunks, sizeof *doc->chunks)) {
        rc = SL_ENOMEM;
    } else {
        sl_chunk *c = &doc->chunks[doc->nchunks];
        memset(c, 0, sizeof *c);
        c->text = t;
        c->len = len;
        c->heading = "";
        rc = (int)doc->nchunks++;
    }
    pthread_mutex_unlock(&doc->lock);
    return rc;
}

#define WITH_CHUNK(doc, i, body)                                                                             \
    do {                                                                                                     \
        int rc_ = 0;                                                                                         \
        pthread_mutex_lock(&(doc)->lock);                                                                    \
        if ((i) >= (doc)->nchunks)                                                                           \
            rc_ = SL_EINVAL;                                                                                 \
        else {                                                                                               \
            sl_chunk *c = &(doc)->chunks[i];                                                                 \
            body;                                                                                            \
        }                                                                                                    \
        pthread_mutex_unlock(&(doc)->lock);                                                                  \
        return rc_;                                                                                          \
    } while (0)

int sl_chunk_set_heading(sl_doc *doc, size_t i, const char *h) {
    if (!h) return SL_EINVAL;
    WITH_CHUNK(doc, i, {
        if (!(rc_ = check_text(doc, "heading of chunk", i, NULL, h, strlen(h)))) {
            const char *v = sl_arena_strdup(&doc->arena, h);
            if (v)
                c->heading = v;
            else
                rc_ = SL_ENOMEM;
        }
    });
}
int sl_chunk_set_position(sl_doc *doc, size_t i, uint32_t page, uint32_t line) {
    WITH_CHUNK(doc, i, (c->page = page, c->line = line));
}
int sl_chunk_set_attr(sl_doc *doc, size_t i, const char *key, const char *value) {
    if (!key || !*key || !value) return SL_EINVAL;
    WITH_CHUNK(doc, i, {
        if (!(rc_ = check_text(doc, "attribute of chunk", i, NULL, value, strlen(value))))
            rc_ = kv_set(doc, &c->attrs, &c->nattrs, key, value);
    });
}
int sl_chunk_set_summary(sl_doc *doc, size_t i, const char *s) {
    if (!s) return SL_EINVAL;
    WITH_CHUNK(doc, i, {
        if (!(rc_ = check_text(doc, "summary of chunk", i, NULL, s, strlen(s)))) {
            const char *v = sl_arena_strdup(&doc->arena, s);
            if (v)
                c->summary = v;
            else
                rc_ = SL_ENOMEM;
        }
    });
}

size_t sl_doc_chunk_count(const sl_doc *doc) { return doc->nchunks; }
static const sl_chunk *chunk(const sl_doc *doc, size_t i) {
    return i < doc->nchunks ? &doc->chunks[i] : NULL;
}
const char *sl_chunk_text(const sl_doc *doc, size_t i, size_t *len) {
    const sl_chunk *c = chunk(doc, i);
    if (len) *len = c ? c->len : 0;
    return c ? c->text : NULL;
}
const char *sl_chunk_heading(const sl_doc *doc, size_t i) {
    const sl_chunk *c = chunk(doc, i);
    return c ? c->heading : "";
}
uint32_t sl_chunk_page(const sl_doc *doc, size_t i) {
    const sl_chunk *c = chunk(doc, i);
    return c ? c->page : 0;
}
uint32_t sl_chunk_line(const sl_doc *doc, size_t i) {
    const sl_chunk *c = chunk(doc, i);
    return c ? c->line : 0;
}
const char *sl_chunk_summary(const sl_doc *doc, size_t i) {
    const sl_chunk *c = chunk(doc, i);
    return c ? c->summary : NULL;
}
const float *sl_chunk_vector(const sl_doc *doc, size_t i, uint32_t *dim) {
    const sl_chunk *c = chunk(doc, i);
    if (dim) *dim = c ? c->dim : 0;
    return c ? c->vector : NULL;
}

const char *sl_chunk_attr(const sl_doc *doc, size_t i, const char *key) {
    const sl_chunk *c = chunk(doc, i);
    return c ? kv_get(c->attrs, c->nattrs, key) : NULL;
}
size_t sl_chunk_attr_count(const sl_doc *doc, size_t i) {
    const sl_chunk *c = chunk(doc, i);
    return c ? c->nattrs : 0;
}
int sl_chunk_attr_at(const sl_doc *doc, size_t i, size_t j, const char **key, const char **value) {
    const sl_chunk *c = chunk(doc, i);
    if (!c || j >= c->nattrs) return SL_EINVAL;
    if (key) *key = c->attrs[j].key;
    if (value) *value = c->attrs[j].value;
    return 0;
}

/* Gives chunk i a vector of dim floats in the arena: a copy of src, or
 * zeroed when src is NULL. NULL when there is no chunk i or no memory. */
static float *attach_vector(sl_doc *doc, size_t i, uint32_t dim, const void *src) {
    size_t bytes = (size_t)dim * sizeof(float);
    float *v = NULL;
    pthread_mutex_lock(&doc->lock);
    if (i < doc->nchunks) {
        v = src ? sl_arena_alloc_raw(&doc->arena, bytes) : sl_arena_alloc(&doc->arena, bytes);
        if (v) {
            if (src) memcpy(v, src, bytes);
            doc->chunks[i].vector = v;
            doc->chunks[i].dim = dim;
        }
    }
    pthread_mutex_unlock(&doc->lock);
    return v;
}

float *sl_doc_chunk_vector(sl_doc *doc, size_t i, uint32_t dim) { return attach_vector(doc, i, dim, NULL); }

int sl_doc_set_chunk_vector(sl_doc *doc, size_t i, const void *v, uint32_t dim) {
    if (!doc || !v || !dim) return SL_EINVAL;
    if (attach_vector(doc, i, dim, v)) return 0;
    return i < sl_doc_chunk_count(doc) ? SL_ENOMEM : SL_EINVAL; /* chunks are never taken away */
}

/* --- page images --- */

int sl_doc_set_page_image(sl_doc *doc, uint32_t page, uint32_t width, uint32_t height, uint32_t channels,
                          size_t stride, const unsigned char *pixels, float dpi) {
    if (!pixels || page == 0 || width == 0 || height == 0 ||
        (channels != 1 && channels != 3 && channels != 4) || stride < (size_t)width * channels)
        return SL_EINVAL;
    size_t bytes = stride * height;
    if (bytes / height != stride) return SL_EINVAL;
    unsigned char *copy = malloc(bytes);
    if (!copy) return SL_ENOMEM;
    memcpy(copy, pixels, bytes);
    int rc = 0;
    pthread_mutex_lock(&doc->lock);
    if (page > doc->pages) {
        rc = SL_EINVAL;
    } else if (!doc->images) {
        doc->images = calloc(doc->pages, sizeof *doc->images);
        if (!doc->images)
            rc = SL_ENOMEM;
        else
            doc->nimages = doc->pages;
    }
    if (rc == 0 && page > doc->nimages) rc = SL_EINVAL; /* page count grew after the first image */
    if (rc == 0) {
        sl_page_image *im = &doc->images[page - 1];
        free(im->pixels);
        *im = (sl_page_image){copy, width, height, channels, stride, dpi};
        copy = NULL;
    }
    pthread_mutex_unlock(&doc->lock);
    free(copy);
    return rc;
}

const unsigned char *sl_doc_page_image(const sl_doc *doc, uint32_t page, uint32_t *width, uint32_t *height,
                                       uint32_t *channels, size_t *stride, float *dpi) {
    if (page == 0 || page > doc->nimages || !doc->images[page - 1].pixels) return NULL;
    const sl_page_image *im = &doc->images[page - 1];
    if (width) *width = im->width;
    if (height) *height = im->height;
    if (channels) *channels = im->channels;
    if (stride) *stride = im->stride;
    if (dpi) *dpi = im->dpi;
    return im->pixels;
}

int sl_doc_drop_page_image(sl_doc *doc, uint32_t page) {
    int rc = SL_EINVAL;
    pthread_mutex_lock(&doc->lock);
    if (page > 0 && page <= doc->nimages) {
        free(doc->images[page - 1].pixels);
        memset(&doc->images[page - 1], 0, sizeof doc->images[page - 1]);
        rc = 0;
    }
    pthread_mutex_unlock(&doc->lock);
    return rc;
}

size_t sl_doc_page_text_chars(const sl_doc *doc, uint32_t page) {
    size_t n = 0;
    pthread_mutex_lock((pthread_mutex_t *)&doc->lock);
    for (size_t i = 0; i < doc->nelems; i++) {
        if (doc->elems[i].page != page) continue;
        for (size_t k = 0; k < doc->elems[i].len; k++) {
            unsigned char ch = (unsigned char)doc->elems[i].text[k];
            if ((ch & 0xC0) != 0x80 && ch > ' ') n++; /* code points, not counting white space */
        }
    }
    pthread_mutex_unlock((pthread_mutex_t *)&doc->lock);
    return n;
}

/* --- layout regions --- */

int sl_doc_add_region(sl_doc *doc, uint32_t page, const char *label, float score, float x0, float y0,
                      float x1, float y1) {
    if (!label) return SL_EINVAL;
    int rc;
    pthread_mutex_lock(&doc->lock);
    const char *l = sl_arena_strdup(&doc->arena, label);
    if (!l || doc->nregions >= (size_t)INT32_MAX ||
        grow((void **)&doc->regions, &doc->cregions, doc->nregions, sizeof *doc->regions)) {
        rc = SL_ENOMEM;
    } else {
        doc->regions[doc->nregions] = (sl_region){page, l, score, {x0, y0, x1, y1}};
        rc = (int)doc->nregions++;
    }
    pthread_mutex_unlock(&doc->lock);
    return rc;
}

size_t sl_doc_region_count(const sl_doc *doc) { return doc->nregions; }

int sl_doc_region(const sl_doc *doc, size_t i, uint32_t *page, const char **label, float *score,
                  float box[4]) {
    if (i >= doc->nregions) return SL_EINVAL;
    const sl_region *r = &doc->regions[i];
    if (page) *page = r->page;
    if (label) *label = r->label;
    if (score) *score = r->score;
    if (box) memcpy(box, r->box, sizeof r->box);
    return 0;
}

/* --- children: documents found inside this one --- */

void sl_doc_set_child_limits(sl_doc *doc, uint32_t max_children, uint64_t max_child_bytes) {
    doc->max_children = max_children;
    doc->max_child_bytes = max_child_bytes;
}

static int put_child(sl_doc *doc, const char *name, const char *media_type, const void *data, size_t len) {
    if (grow((void **)&doc->children, &doc->cchildren, doc->nchildren, sizeof *doc->children))
        return SL_ENOMEM;
    sl_child *c = &doc->children[doc->nchildren];
    c->name = sl_arena_strdup(&doc->arena, name);
    c->media_type = media_type && *media_type ? sl_arena_strdup(&doc->arena, media_type) : NULL;
    char *copy = sl_arena_alloc_raw(&doc->arena, len + 1);
    if (!c->name || (media_type && *media_type && !c->media_type) || !copy) return SL_ENOMEM;
    if (len) memcpy(copy, data, len);
    c->data = copy;
    c->len = len;
    doc->child_bytes += len;
    return (int)doc->nchildren++;
}

int sl_doc_put_child(sl_doc *doc, const char *name, const char *media_type, const void *data, size_t len) {
    if (!doc || !name || (!data && len)) return SL_EINVAL;
    pthread_mutex_lock(&doc->lock);
    int rc = put_child(doc, name, media_type, data, len);
    pthread_mutex_unlock(&doc->lock);
    return rc;
}

int sl_doc_add_child(sl_doc *doc, const char *name, const char *media_type, const void *data, size_t len) {
    if (!doc || !name || !*name || (!data && len)) return SL_EINVAL;
    pthread_mutex_lock(&doc->lock);
    int rc;
    char why[256] = "";
    if (doc->nchildren >= doc->max_children)
        snprintf(why, sizeof why,
                 "more than %u documents inside it (child '%.80s' and on refused; [sluice] max_children)",
                 doc->max_children, name);
    else if (len > doc->max_child_bytes || doc->child_bytes + len > doc->max_child_bytes)
        snprintf(why, sizeof why,
                 "the documents inside it pass %llu bytes in all at child '%.80s' ([sluice] max_child_bytes)",
                 (unsigned long long)doc->max_child_bytes, name);
    if (*why) {
        if (!doc->child_refusal) doc->child_refusal = strdup(why);
        rc = SL_EBADINPUT;
    } else {
        rc = put_child(doc, name, media_type, data, len);
    }
    pthread_mutex_unlock(&doc->lock);
    return rc;
}

size_t sl_doc_child_count(const sl_doc *doc) { return doc ? doc->nchildren : 0; }
