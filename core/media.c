/* media.c - media types from names and content (see media.h). */
#include "media.h"

#include <fcntl.h>
#include <magic.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DOCX "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
#define PPTX "application/vnd.openxmlformats-officedocument.presentationml.presentation"
#define XLSX "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

static const struct {
    const char *ext;
    const char *type;
} table[] = {
    {"md", "text/markdown"},
    {"markdown", "text/markdown"},
    {"mdown", "text/markdown"},
    {"txt", "text/plain"},
    {"text", "text/plain"},
    {"csv", "text/csv"},
    {"html", "text/html"},
    {"htm", "text/html"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"json", "application/json"},
    {"jsonl", "application/x-ndjson"},
    {"ndjson", "application/x-ndjson"},
    {"tsv", "text/tab-separated-values"},
    {"xhtml", "application/xhtml+xml"},
    {"eml", "message/rfc822"},
    {"mbox", "application/mbox"},
    {"docx", DOCX},
    {"pptx", PPTX},
    {"xlsx", XLSX},
    {"epub", "application/epub+zip"},
    {"zip", "application/zip"},
};

const char *sl_media_ext(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    return dot && dot != base ? dot : "";
}

const char *sl_media_type_for_path(const char *path) {
    const char *ext = sl_media_ext(path);
    if (!*ext) return "application/octet-stream";
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcasecmp(ext + 1, table[i].ext) == 0) return table[i].type;
    return "application/octet-stream";
}

/* --- content --- */

static int is_text_type(const char *t) {
    return strncmp(t, "text/", 5) == 0 || strcmp(t, "application/json") == 0 ||
           strcmp(t, "application/x-ndjson") == 0 || strcmp(t, "application/xhtml+xml") == 0 ||
           strcmp(t, "message/rfc822") == 0 || strcmp(t, "application/mbox") == 0;
}

static int starts(const void *head, size_t len, const char *sig, size_t n) {
    return len >= n && memcmp(head, sig, n) == 0;
}

/* A signature a text file never starts with. */
static int binary_signature(const unsigned char *h, size_t len) {
    return starts(h, len, "%PDF-", 5) || starts(h, len, "PK\3\4", 4) || starts(h, len, "\x89PNG", 4) ||
           starts(h, len, "\xff\xd8\xff", 3) || starts(h, len, "GIF8", 4) || starts(h, len, "II*\0", 4) ||
           starts(h, len, "MM\0*", 4) || starts(h, len, "\xd0\xcf\x11\xe0", 4) ||
           starts(h, len, "\x1f\x8b", 2);
}

/* Whether the bytes plainly are what a known name says: then libmagic is
 * not asked. */
static int fits_name(const char *named, const unsigned char *h, size_t len) {
    if (is_text_type(named)) return !memchr(h, 0, len) && !binary_signature(h, len);
    if (strcmp(named, "application/pdf") == 0) return starts(h, len, "%PDF-", 5);
    if (strcmp(named, "image/png") == 0) return starts(h, len, "\x89PNG", 4);
    if (strcmp(named, "image/jpeg") == 0) return starts(h, len, "\xff\xd8\xff", 3);
    if (strcmp(named, "image/tiff") == 0) return starts(h, len, "II*\0", 4) || starts(h, len, "MM\0*", 4);
    return 0;
}

/* A zip's first entries name what it holds: an Office document keeps
 * word/, ppt/ or xl/ parts, an EPUB starts with its "mimetype" entry. */
static const char *zip_kind(const unsigned char *h, size_t len) {
    if (!starts(h, len, "PK\3\4", 4)) return NULL;
    if (len >= 58 && memcmp(h + 30, "mimetypeapplication/epub+zip", 28) == 0) return "application/epub+zip";
    if (memmem(h, len, "word/", 5)) return DOCX;
    if (memmem(h, len, "ppt/", 4)) return PPTX;
    if (memmem(h, len, "xl/", 3)) return XLSX;
    return "application/zip";
}

static pthread_mutex_t magic_lock = PTHREAD_MUTEX_INITIALIZER;
static magic_t magic_handle;
static int magic_broken;
/* libmagic's answers, interned: a finite vocabulary, kept for the process */
static char **interned;
static size_t ninterned;

static const char *intern(const char *t) {
    for (size_t i = 0; i < ninterned; i++)
        if (strcmp(interned[i], t) == 0) return interned[i];
    if (ninterned >= 512) return NULL;
    char **nv = realloc(interned, (ninterned + 1) * sizeof *nv);
    if (!nv) return NULL;
    interned = nv;
    char *c = strdup(t);
    if (!c) return NULL;
    interned[ninterned++] = c;
    return c;
}

static const char *ask_magic(const void *head, size_t len) {
    const char *out = NULL;
    pthread_mutex_lock(&magic_lock);
    if (!magic_handle && !magic_broken) {
        magic_handle = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS | MAGIC_NO_CHECK_ELF);
        if (!magic_handle || magic_load(magic_handle, NULL) != 0) {
            if (magic_handle) magic_close(magic_handle);
            magic_handle = NULL;
            magic_broken = 1; /* no database: names are believed */
        }
    }
    if (magic_handle) {
        const char *m = magic_buffer(magic_handle, head, len);
        if (m) out = intern(m);
    }
    pthread_mutex_unlock(&magic_lock);
    return out;
}

const char *sl_media_believe(const char *named, const void *head, size_t len, const char **content) {
    const unsigned char *h = head;
    *content = NULL;
    if (len > SL_MEDIA_HEAD) len = SL_MEDIA_HEAD;
    int unknown = strcmp(named, "application/octet-stream") == 0;
    if (!unknown && fits_name(named, h, len)) return named;
    const char *m = zip_kind(h, len);
    if (!m) m = len ? ask_magic(h, len) : NULL;
    if (!m || strcmp(m, named) == 0 || strcmp(m, "application/octet-stream") == 0 ||
        strncmp(m, "inode/", 6) == 0 || strcmp(m, "application/x-empty") == 0)
        return named;
    /* libmagic's names for the types the table knows */
    if (strcmp(m, "application/x-mbox") == 0 && strcmp(named, "application/mbox") == 0) return named;
    if (strcmp(m, "application/x-mbox") == 0) m = "application/mbox";
    if (unknown) {
        *content = m;
        return m;
    }
    /* text under a known name is weak evidence: the name says which text */
    if (is_text_type(m)) {
        if (is_text_type(named)) return named;
        *content = m;
        return named;
    }
    *content = m;
    return m;
}

const char *sl_media_believe_file(const char *path, const char *named, const char **content) {
    *content = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return named;
    unsigned char head[SL_MEDIA_HEAD];
    ssize_t n = pread(fd, head, sizeof head, 0);
    close(fd);
    return n > 0 ? sl_media_believe(named, head, (size_t)n, content) : named;
}
