/* ooxml_zip.c - the bounded zip reader (see ooxml_zip.h). */
#include "ooxml_zip.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

/* Bytes an entry may inflate to beyond max_ratio times its compressed size:
 * a tiny part (a 300-byte rels file) compresses far better than large ones. */
#define RATIO_SLACK (1u << 20)
/* Largest buffer made up front from an entry's declared size (which may lie). */
#define PREALLOC_MAX (16u << 20)
/* Bytes inflated per zip_fread: the limits are checked after each. */
#define SLICE 65536u

struct oz_zip {
    zip_t *zip;
    oz_limits lim;
    uint64_t total; /* bytes inflated from this archive so far */
};

static void say(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A name that would escape a folder if anyone extracted it. */
static const char *unsafe_name(const char *name) {
    if (!name[0]) return "an empty name";
    if (name[0] == '/') return "an absolute path";
    if (strchr(name, '\\')) return "a backslash";
    if (((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')) && name[1] == ':')
        return "a drive letter";
    for (const char *p = name; *p;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') return "a '..' component";
        if (!slash) break;
        p = slash + 1;
    }
    return NULL;
}

/* Printable form of an entry name for messages: anything but printable
 * ASCII as '?' (messages stay valid UTF-8), cut at 200 bytes. */
static const char *shown(const char *name, char *out, size_t outlen) {
    size_t i = 0;
    for (; name[i] && i + 1 < outlen && i < 200; i++)
        out[i] = (unsigned char)name[i] < 0x20 || (unsigned char)name[i] >= 0x7f ? '?' : name[i];
    out[i] = '\0';
    return out;
}

oz_zip *oz_open(const void *data, size_t len, const oz_limits *limits, int *code, char *err, size_t errlen) {
    zip_error_t ze;
    zip_error_init(&ze);
    *code = OZ_EBAD;
    if (len < 22) { /* the end-of-central-directory record alone is 22 bytes */
        say(err, errlen, "not a zip archive: only %zu bytes", len);
        return NULL;
    }
    zip_source_t *src = zip_source_buffer_create(data, len, 0, &ze);
    if (!src) {
        *code = OZ_ENOMEM;
        say(err, errlen, "cannot read the zip archive: %s", zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return NULL;
    }
    zip_t *zip = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!zip) {
        say(err, errlen, "not a readable zip archive (truncated or damaged?): %s", zip_error_strerror(&ze));
        zip_source_free(src);
        zip_error_fini(&ze);
        return NULL;
    }
    zip_error_fini(&ze);
    zip_int64_t n = zip_get_num_entries(zip, 0);
    if (n < 0 || (uint64_t)n > limits->max_entries) {
        *code = OZ_ELIMIT;
        say(err, errlen, "the zip archive has %lld entries, more than max_entries (%llu)", (long long)n,
            (unsigned long long)limits->max_entries);
        zip_discard(zip);
        return NULL;
    }
    for (zip_int64_t i = 0; i < n; i++) {
        const char *name = zip_get_name(zip, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        const char *why = name ? unsafe_name(name) : "no name";
        if (why) {
            char show[256];
            say(err, errlen, "unsafe zip entry name '%s': %s", name ? shown(name, show, sizeof show) : "",
                why);
            zip_discard(zip);
            return NULL;
        }
    }
    oz_zip *z = calloc(1, sizeof *z);
    if (!z) {
        *code = OZ_ENOMEM;
        say(err, errlen, "out of memory");
        zip_discard(zip);
        return NULL;
    }
    z->zip = zip;
    z->lim = *limits;
    *code = 0;
    return z;
}

void oz_close(oz_zip *z) {
    if (!z) return;
    zip_discard(z->zip);
    free(z);
}

int oz_has(oz_zip *z, const char *name) { return zip_name_locate(z->zip, name, ZIP_FL_NOCASE) >= 0; }

static uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }

int oz_read(oz_zip *z, const char *name, char **out, size_t *len, char *err, size_t errlen) {
    *out = NULL;
    *len = 0;
    zip_int64_t idx = zip_name_locate(z->zip, name, ZIP_FL_NOCASE);
    if (idx < 0) {
        say(err, errlen, "%s: no such entry in the zip archive", name);
        return OZ_ENOTFOUND;
    }
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z->zip, (zip_uint64_t)idx, 0, &st) != 0 || !(st.valid & ZIP_STAT_COMP_SIZE)) {
        say(err, errlen, "%s: unreadable zip entry: %s", name, zip_strerror(z->zip));
        return OZ_EBAD;
    }
    /* What this entry may inflate to, from its real compressed size; the
     * declared uncompressed size is only a hint for the first buffer. */
    uint64_t by_ratio = st.comp_size > (UINT64_MAX - RATIO_SLACK) / (z->lim.max_ratio ? z->lim.max_ratio : 1)
                            ? UINT64_MAX
                            : st.comp_size * z->lim.max_ratio + RATIO_SLACK;
    uint64_t left = z->lim.max_total_size > z->total ? z->lim.max_total_size - z->total : 0;
    uint64_t limit = min64(min64(z->lim.max_entry_size, by_ratio), left);
    zip_file_t *f = zip_fopen_index(z->zip, (zip_uint64_t)idx, 0);
    if (!f) {
        say(err, errlen, "%s: cannot open zip entry: %s", name, zip_strerror(z->zip));
        return OZ_EBAD;
    }
    uint64_t hint = (st.valid & ZIP_STAT_SIZE) ? st.size : 0;
    size_t cap = (size_t)min64(min64(hint, limit), PREALLOC_MAX) + 1;
    if (cap < 4096) cap = 4096;
    char *p = malloc(cap);
    uint64_t n = 0;
    int rc = 0;
    while (p) {
        if (cap - n < SLICE + 1) { /* room for one more slice and the NUL */
            size_t need = (size_t)n + SLICE + 1;
            size_t ncap = cap * 2;
            if (ncap > limit + SLICE + 1) ncap = (size_t)limit + SLICE + 1;
            if (ncap < need) ncap = need;
            char *q = realloc(p, ncap);
            if (!q) break;
            p = q;
            cap = ncap;
        }
        zip_int64_t got = zip_fread(f, p + n, SLICE);
        if (got < 0) {
            say(err, errlen, "%s: damaged zip entry: %s", name, zip_file_strerror(f));
            rc = OZ_EBAD;
            break;
        }
        if (got == 0) break;
        n += (uint64_t)got;
        if (n > limit) {
            if (limit == left)
                say(err, errlen, "%s: the archive inflates past max_total_size (%llu bytes)", name,
                    (unsigned long long)z->lim.max_total_size);
            else if (limit == z->lim.max_entry_size)
                say(err, errlen, "%s: inflates past max_entry_size (%llu bytes)", name,
                    (unsigned long long)z->lim.max_entry_size);
            else
                say(err, errlen,
                    "%s: inflates past %llu bytes from %llu compressed, more than max_ratio (%llu) allows: a "
                    "zip bomb?",
                    name, (unsigned long long)limit, (unsigned long long)st.comp_size,
                    (unsigned long long)z->lim.max_ratio);
            rc = OZ_ELIMIT;
            break;
        }
    }
    zip_fclose(f);
    if (!p) {
        say(err, errlen, "%s: out of memory inflating the entry", name);
        return OZ_ENOMEM;
    }
    if (rc) {
        free(p);
        return rc;
    }
    if (cap - n < 1) { /* cannot happen: the loop keeps room for the NUL */
        free(p);
        return OZ_ENOMEM;
    }
    p[n] = '\0';
    z->total += n;
    *out = p;
    *len = (size_t)n;
    return 0;
}

int oz_resolve(const char *base, const char *target, char *out, size_t outlen) {
    size_t n = 0;
    if (target[0] == '/') {
        target++;
    } else {
        const char *slash = strrchr(base, '/');
        n = slash ? (size_t)(slash - base) + 1 : 0;
        if (n >= outlen) return -1;
        memcpy(out, base, n);
    }
    while (*target) {
        const char *slash = strchr(target, '/');
        size_t seg = slash ? (size_t)(slash - target) : strlen(target);
        if (seg == 2 && target[0] == '.' && target[1] == '.') {
            if (n == 0) return -1;
            n--; /* drop the trailing '/', then the last folder */
            while (n && out[n - 1] != '/') n--;
        } else if (!(seg == 1 && target[0] == '.') && seg) {
            if (n + seg + 1 >= outlen) return -1;
            memcpy(out + n, target, seg);
            n += seg;
            if (slash) out[n++] = '/';
        }
        if (!slash) break;
        target = slash + 1;
    }
    out[n] = '\0';
    return n ? 0 : -1;
}
