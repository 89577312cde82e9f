/* walk.c - document discovery (see walk.h). */
#include "walk.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "source.h"

typedef struct frame {
    char *dir;
    char **names;
    size_t n, i;
    dev_t dev;
    ino_t ino;
} frame;

struct sl_walk {
    char **roots;
    size_t nroots, root_i;
    char **inc, **exc;
    size_t ninc, nexc;
    frame *stack;
    size_t depth, cap;
    char *cur; /* the path handed out last */
    int report_outside;
    char err[512];
    /* an s3:// root being listed (source.h): its URI and its key prefix */
    sl_s3_list *s3;
    char *s3_root;
    const char *s3_prefix; /* in s3_root */
    uint64_t s3_found;
    uint64_t s3_listed;        /* candidates found under s3:// roots so far (sl_walk_s3_listed) */
    int skip_s3, s3_skipped;   /* sl_walk_count: s3:// roots are not listed; some were not */
    void (*notify)(void *arg); /* sl_walk_set_notify */
    void *notify_arg;
};

static void split_patterns(const char *s, char ***out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!s) return;
    char *copy = strdup(s);
    if (!copy) return;
    for (char *save = NULL, *tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
        char **nv = realloc(*out, (*n + 1) * sizeof *nv);
        if (!nv) break;
        *out = nv;
        (*out)[(*n)++] = strdup(tok);
    }
    free(copy);
}

static int matches(char **pats, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (pats[i] && fnmatch(pats[i], name, FNM_CASEFOLD) == 0) return 1;
    return 0;
}

int sl_walk_new(const char *const *roots, size_t nroots, const char *include, const char *exclude,
                sl_walk **out) {
    sl_walk *w = calloc(1, sizeof *w);
    if (!w) return -1;
    w->roots = calloc(nroots ? nroots : 1, sizeof *w->roots);
    for (size_t i = 0; w->roots && i < nroots; i++) {
        /* "docs/" and "docs" give the same URIs */
        size_t l = strlen(roots[i]);
        int url = sl_source_is_remote(roots[i]) && !sl_source_is_s3(roots[i]); /* its path is the server's */
        while (!url && l > 1 && roots[i][l - 1] == '/') l--;
        w->roots[i] = strndup(roots[i], l);
    }
    w->nroots = nroots;
    split_patterns(include, &w->inc, &w->ninc);
    split_patterns(exclude, &w->exc, &w->nexc);
    *out = w;
    return 0;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t o = a;
    if (a && dir[a - 1] != '/') p[o++] = '/';
    memcpy(p + o, name, b + 1);
    return p;
}

static void pop(sl_walk *w) {
    frame *f = &w->stack[--w->depth];
    for (size_t i = 0; i < f->n; i++) free(f->names[i]);
    free(f->names);
    free(f->dir);
}

/* Pushes a directory's sorted listing. Returns 0, or -1 with w->err set. */
static int push(sl_walk *w, const char *dir, const struct stat *st) {
    for (size_t i = 0; i < w->depth; i++)
        if (w->stack[i].dev == st->st_dev && w->stack[i].ino == st->st_ino) return 0; /* loop: skip */
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(w->err, sizeof w->err, "cannot open directory: %s", strerror(errno));
        return -1;
    }
    if (w->depth == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 16;
        frame *ns = realloc(w->stack, nc * sizeof *ns);
        if (!ns) {
            closedir(d);
            return -1;
        }
        w->stack = ns;
        w->cap = nc;
    }
    frame f = {.dir = strdup(dir), .dev = st->st_dev, .ino = st->st_ino};
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        if (matches(w->exc, w->nexc, de->d_name)) continue;
        if (f.n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(f.names, cap * sizeof *nn);
            if (!nn) break;
            f.names = nn;
        }
        f.names[f.n++] = strdup(de->d_name);
    }
    closedir(d);
    if (f.n) qsort(f.names, f.n, sizeof *f.names, cmp_names);
    w->stack[w->depth++] = f;
    return 0;
}

static void hand_out(sl_walk *w, sl_walk_entry *e, char *path, const char *error, uint64_t size) {
    free(w->cur);
    w->cur = path;
    e->path = path;
    e->error = error;
    e->size = size;
    e->named = w->depth == 0;
    e->outside = 0;
}

void sl_walk_report_outside(sl_walk *w) { w->report_outside = 1; }

void sl_walk_set_notify(sl_walk *w, void (*fn)(void *arg), void *arg) {
    w->notify = fn;
    w->notify_arg = arg;
    if (w->s3) sl_s3_list_set_notify(w->s3, fn, arg);
}

static void s3_done(sl_walk *w) {
    sl_s3_list_free(w->s3);
    w->s3 = NULL;
    free(w->s3_root);
    w->s3_root = NULL;
}

/* The next object of the s3:// root being listed, as a folder's files are
 * walked: the object the root names exactly is a named candidate, the keys
 * under ROOT/ must match the include patterns (the base name, as files).
 * A root that names nothing, or whose listing fails, is yielded with the
 * reason, so it fails as a document instead of vanishing. 1: *e filled; 0:
 * this root is done; 2: its next page is not in yet (sl_walk_set_notify). */
static int s3_next(sl_walk *w, sl_walk_entry *e) {
    size_t plen = strlen(w->s3_prefix);
    for (;;) {
        const char *key;
        uint64_t size;
        int rc = sl_s3_list_next(w->s3, &key, &size, w->err, sizeof w->err);
        if (rc == 2) return 2; /* the next page is not in yet */
        if (rc <= 0) {
            char *root = w->s3_root;
            w->s3_root = NULL;
            int nothing = rc == 0 && !w->s3_found && plen;
            if (nothing) snprintf(w->err, sizeof w->err, "no such object, and no objects under it");
            s3_done(w);
            if (rc == 0 && !nothing) {
                free(root);
                return 0;
            }
            hand_out(w, e, root, w->err, 0);
            return 1;
        }
        int exact = plen && strcmp(key, w->s3_prefix) == 0;
        if (!exact && plen && (strncmp(key, w->s3_prefix, plen) != 0 || key[plen] != '/'))
            continue; /* "docs2/a.md" is not under "docs" */
        const char *base = strrchr(key, '/') ? strrchr(key, '/') + 1 : key;
        int outside = 0;
        if (!exact && matches(w->exc, w->nexc, base)) continue;
        if (!exact && !matches(w->inc, w->ninc, base)) {
            if (!w->report_outside) continue;
            outside = 1;
        }
        /* s3://BUCKET/ + key */
        size_t blen = (size_t)(w->s3_prefix - w->s3_root);
        char *uri = malloc(blen + strlen(key) + 1);
        if (!uri) return 0;
        memcpy(uri, w->s3_root, blen);
        strcpy(uri + blen, key);
        w->s3_found++;
        if (!outside) w->s3_listed++;
        hand_out(w, e, uri, NULL, size);
        e->named = exact;
        e->outside = outside;
        return 1;
    }
}

int sl_walk_next(sl_walk *w, sl_walk_entry *e) {
    for (;;) {
        if (w->s3) {
            int rc = s3_next(w, e);
            if (rc) return rc;
            continue;
        }
        if (w->depth == 0) {
            if (w->root_i >= w->nroots) return 0;
            char *root = strdup(w->roots[w->root_i++]);
            if (!root) return 0;
            if (sl_source_is_s3(root)) {
                if (w->skip_s3) {
                    w->s3_skipped = 1;
                    free(root);
                    continue;
                }
                const char *slash = strchr(root + 5, '/');
                if (root[5] == '/' || root[5] == 0 || sl_s3_list_new(root, &w->s3) != 0) {
                    snprintf(w->err, sizeof w->err, "not an s3://BUCKET/PREFIX URI");
                    hand_out(w, e, root, w->err, 0);
                    return 1;
                }
                if (!slash) { /* s3://BUCKET: keys are joined after a '/' */
                    char *r = malloc(strlen(root) + 2);
                    if (!r) {
                        free(root);
                        s3_done(w);
                        return 0;
                    }
                    sprintf(r, "%s/", root);
                    free(root);
                    root = r;
                    slash = strchr(root + 5, '/');
                }
                w->s3_root = root;
                w->s3_prefix = slash + 1;
                w->s3_found = 0;
                if (w->notify) sl_s3_list_set_notify(w->s3, w->notify, w->notify_arg);
                continue;
            }
            if (sl_source_is_remote(root)) { /* an http(s) URL: one document, fetched when read */
                hand_out(w, e, root, NULL, 0);
                return 1;
            }
            struct stat st;
            if (stat(root, &st) != 0) {
                snprintf(w->err, sizeof w->err, "%s", strerror(errno));
                hand_out(w, e, root, w->err, 0);
                return 1;
            }
            if (S_ISDIR(st.st_mode)) {
                if (push(w, root, &st) != 0) {
                    hand_out(w, e, root, w->err, 0);
                    return 1;
                }
                free(root);
                continue;
            }
            hand_out(w, e, root, NULL, (uint64_t)st.st_size);
            return 1;
        }
        frame *f = &w->stack[w->depth - 1];
        if (f->i >= f->n) {
            pop(w);
            continue;
        }
        const char *name = f->names[f->i++];
        char *path = join(f->dir, name);
        if (!path) return 0;
        struct stat st;
        if (stat(path, &st) != 0) {
            /* dangling link or loop: a candidate only if its name says it is one */
            if (matches(w->inc, w->ninc, name)) {
                snprintf(w->err, sizeof w->err, "cannot resolve: %s", strerror(errno));
                hand_out(w, e, path, w->err, 0);
                return 1;
            }
            free(path);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (push(w, path, &st) != 0) {
                hand_out(w, e, path, w->err, 0);
                return 1;
            }
            free(path);
            continue;
        }
        if (!matches(w->inc, w->ninc, name)) {
            if (w->report_outside && S_ISREG(st.st_mode)) {
                hand_out(w, e, path, NULL, (uint64_t)st.st_size);
                e->outside = 1;
                return 1;
            }
            free(path);
            continue;
        }
        hand_out(w, e, path, NULL, (uint64_t)st.st_size);
        return 1;
    }
}

void sl_walk_free(sl_walk *w) {
    if (!w) return;
    s3_done(w);
    while (w->depth) pop(w);
    free(w->stack);
    for (size_t i = 0; i < w->nroots; i++) free(w->roots[i]);
    free(w->roots);
    for (size_t i = 0; i < w->ninc; i++) free(w->inc[i]);
    for (size_t i = 0; i < w->nexc; i++) free(w->exc[i]);
    free(w->inc);
    free(w->exc);
    free(w->cur);
    free(w);
}

uint64_t sl_walk_count(const char *const *roots, size_t nroots, const char *include, const char *exclude,
                       int *uncounted) {
    sl_walk *w;
    *uncounted = 0;
    if (sl_walk_new(roots, nroots, include, exclude, &w) != 0) return 0;
    w->skip_s3 = 1;
    uint64_t n = 0;
    sl_walk_entry e;
    while (sl_walk_next(w, &e) == 1) n++;
    *uncounted = w->s3_skipped;
    sl_walk_free(w);
    return n;
}

uint64_t sl_walk_s3_listed(const sl_walk *w) { return w->s3_listed; }

int sl_walk_name_matches(const char *patterns, const char *name) {
    char **pats;
    size_t n;
    split_patterns(patterns, &pats, &n);
    int m = matches(pats, n, name);
    for (size_t i = 0; i < n; i++) free(pats[i]);
    free(pats);
    return m;
}
