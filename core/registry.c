/* registry.c - plugin shared objects: where they are, opening them, and
 * refusing the ones this core cannot run.
 *
 * A plugin is trusted code, but not trusted to be built right: everything
 * its descriptor says is checked here, once, before any INI value is parsed
 * against it, and every refusal starts with the file's path and says what to
 * fix. The descriptor is copied into a zeroed sl_plugin of the size this
 * core knows (never more than the plugin declared), so a plugin built for an
 * older minor reads as "callback absent" and one built for a newer minor
 * simply has fields we do not look at.
 *
 * The registry owns every opened plugin until sl_registry_free; a file is
 * opened at most once (compared by realpath), so two sections naming the
 * same plugin share one handle and one descriptor.
 */
#include "registry.h"
#include "ops.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "instance.h"
#include "options.h"

struct sl_registry {
    char **dirs; /* search order: exe-relative, added, SLUICE_PLUGIN_PATH */
    size_t ndirs;
    size_t insert_at;   /* where sl_registry_add_dir puts the next folder */
    sl_loaded **loaded; /* in the order opened */
    size_t nloaded;
};

/* --- search folders --- */

static int insert_dir(sl_registry *reg, size_t at, const char *dir, size_t len) {
    for (size_t i = 0; i < reg->ndirs; i++)
        if (strlen(reg->dirs[i]) == len && strncmp(reg->dirs[i], dir, len) == 0) return 0;
    char **grown = realloc(reg->dirs, (reg->ndirs + 1) * sizeof *grown);
    if (!grown) return SL_ENOMEM;
    reg->dirs = grown;
    char *copy = strndup(dir, len);
    if (!copy) return SL_ENOMEM;
    memmove(&grown[at + 1], &grown[at], (reg->ndirs - at) * sizeof *grown);
    grown[at] = copy;
    reg->ndirs++;
    return 1;
}

int sl_registry_add_dir(sl_registry *reg, const char *dir) {
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    if (!len) return 0;
    int rc = insert_dir(reg, reg->insert_at, dir, len);
    if (rc > 0) reg->insert_at++;
    return rc < 0 ? rc : 0;
}

/* The folders next to the running executable: plugins/ in a build tree,
 * ../lib/sluice/plugins after install, and the install folder the build
 * configured when it differs (lib/<multiarch>/... on Debian): define
 * SLUICE_PLUGIN_RELDIR to it, relative to the install prefix. */
static int add_exe_dirs(sl_registry *reg) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 0;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return 0;
    *slash = '\0';
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/plugins", exe);
    int rc = sl_registry_add_dir(reg, dir);
    slash = strrchr(exe, '/'); /* the prefix: the executable's folder's parent */
    if (slash) *slash = '\0';
    const char *prefix = slash ? exe : "";
    snprintf(dir, sizeof dir, "%s/lib/sluice/plugins", prefix);
    if (rc == 0) rc = sl_registry_add_dir(reg, dir);
#ifdef SLUICE_PLUGIN_RELDIR
    snprintf(dir, sizeof dir, "%s/%s", prefix, SLUICE_PLUGIN_RELDIR);
    if (rc == 0) rc = sl_registry_add_dir(reg, dir);
#endif
    return rc;
}

int sl_registry_new(sl_ctx *ctx, sl_registry **out) {
    *out = NULL;
    sl_registry *reg = calloc(1, sizeof *reg);
    int rc = reg ? add_exe_dirs(reg) : SL_ENOMEM;
    const char *env = getenv("SLUICE_PLUGIN_PATH");
    for (const char *p = env; rc >= 0 && p && *p;) {
        size_t len = strcspn(p, ":");
        while (len > 1 && p[len - 1] == '/') len--;
        if (len && insert_dir(reg, reg->ndirs, p, len) < 0) rc = SL_ENOMEM;
        p += strcspn(p, ":");
        if (*p) p++;
    }
    if (rc < 0) {
        sl_registry_free(reg);
        return sl_ctx_error(ctx, SL_ENOMEM, "plugin registry: out of memory");
    }
    *out = reg;
    return 0;
}

size_t sl_registry_dirs(const sl_registry *reg, const char *const **dirs) {
    *dirs = (const char *const *)reg->dirs;
    return reg->ndirs;
}

size_t sl_registry_loaded(const sl_registry *reg, const sl_loaded *const **list) {
    *list = (const sl_loaded *const *)reg->loaded;
    return reg->nloaded;
}

/* --- checking a descriptor --- */

static int name_ok(const char *name) {
    if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'))) return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) return 0;
    return strlen(name) <= 64;
}

/* Writes why the descriptor cannot be used into err; 0 when it can. */
static int check_descriptor(const sl_plugin *d, char *err, size_t errlen) {
    if (!d->name || !*d->name) return snprintf(err, errlen, "the descriptor has no name"), SL_EFATAL;
    if (!name_ok(d->name))
        return snprintf(err, errlen, "plugin name '%s' must match [a-z0-9][a-z0-9-]* (at most 64 characters)",
                        d->name),
               SL_EFATAL;
    if (!d->version || !*d->version)
        return snprintf(err, errlen, "plugin %s declares no version", d->name), SL_EFATAL;
    if (!sl_role_get(d->role))
        return snprintf(err, errlen, "role %d is not a plugin role", (int)d->role), SL_EFATAL;
    if (d->bottleneck < SL_IO || d->bottleneck > SL_GPU)
        return snprintf(err, errlen, "bottleneck %d is not one of io, cpu, isolated, gpu",
                        (int)d->bottleneck),
               SL_EFATAL;
    const char *cb = sl_role_missing_callback(d);
    if (cb)
        return snprintf(err, errlen, "role %s needs the '%s' callback", sl_role_name(d->role), cb), SL_EFATAL;
    if (d->thread_fini && !d->thread_init)
        return snprintf(err, errlen, "thread_fini without thread_init (it would never have a state to free)"),
               SL_EFATAL;

    size_t nopt = sl_options_count(d->options);
    if (nopt && !d->config_size)
        return snprintf(err, errlen, "declares %zu option%s but config_size is 0", nopt,
                        nopt == 1 ? "" : "s"),
               SL_EFATAL;
    int rc = sl_options_validate(d->options, d->config_size, err, errlen);
    if (rc < 0) return rc;
    /* A section's keys are shared with the core's: a plugin option with one
     * of their names could never be set. */
    const sl_option *stage = sl_stage_options();
    for (size_t i = 0; i < nopt; i++) {
        const char *n = d->options[i].name;
        if (strcmp(n, "plugin") == 0)
            return snprintf(err, errlen, "option 'plugin': the name is taken by the section's plugin key"),
                   SL_EFATAL;
        for (size_t k = 0; stage[k].name; k++)
            if (strcmp(n, stage[k].name) == 0)
                return snprintf(err, errlen, "option '%s': the name is taken by the core's stage setting", n),
                       SL_EFATAL;
    }
    return 0;
}

/* --- opening --- */

/* The entry function's result, or NULL with the reason in err. */
static const sl_plugin *call_entry(void *handle, char *err, size_t errlen) {
    void *sym = dlsym(handle, SL_ENTRY_SYMBOL);
    if (!sym) {
        for (int major = 2; major <= 9; major++) {
            char other[32];
            snprintf(other, sizeof other, "sluice_plugin_v%d", major);
            if (dlsym(handle, other)) {
                snprintf(err, errlen, "built for plugin ABI %d (exports %s); this sluice speaks ABI %d",
                         major, other, SL_ABI_MAJOR);
                return NULL;
            }
        }
        snprintf(err, errlen, "no entry symbol %s (is it a sluice plugin?)", SL_ENTRY_SYMBOL);
        return NULL;
    }
    /* dlsym hands back an object pointer; POSIX guarantees it converts. */
    const sl_plugin *(*entry)(void);
    memcpy(&entry, &sym, sizeof entry);
    const sl_plugin *d = entry();
    if (!d) snprintf(err, errlen, "%s() returned no descriptor", SL_ENTRY_SYMBOL);
    return d;
}

/* dlerror() usually starts with the file name, which our message already has. */
static const char *dl_reason(const char *real) {
    const char *e = dlerror();
    if (!e) return "unknown dlopen error";
    size_t l = strlen(real);
    if (strncmp(e, real, l) == 0 && e[l] == ':' && e[l + 1] == ' ') e += l + 2;
    return e;
}

/* Opens, checks and registers one file. `expect` (when not NULL) is the
 * name the file was found under: NAME.so must hold plugin NAME, or
 * `plugin = NAME` would get something else. */
static int open_file(sl_ctx *ctx, sl_registry *reg, const char *path, const char *expect,
                     const sl_loaded **out) {
    *out = NULL;
    char real[PATH_MAX];
    if (!realpath(path, real))
        return sl_ctx_error(ctx, SL_EFATAL, "%s: cannot load: %s", path, strerror(errno));
    for (size_t i = 0; i < reg->nloaded; i++) {
        const sl_loaded *l = reg->loaded[i];
        if (strcmp(l->path, real) != 0) continue;
        if (expect && strcmp(l->desc.name, expect) != 0) break; /* opened by path before: refuse below */
        return *out = l, 0;
    }

    void *handle = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    if (!handle) return sl_ctx_error(ctx, SL_EFATAL, "%s: cannot load: %s", path, dl_reason(real));
    char err[1024];
    int rc = SL_EFATAL;
    const sl_plugin *d = call_entry(handle, err, sizeof err);
    sl_loaded *l = NULL;
    if (!d) goto refuse;
    if (d->abi_major != SL_ABI_MAJOR) {
        snprintf(err, sizeof err,
                 "built for plugin ABI %u (its descriptor says abi_major %u); this sluice speaks ABI %d",
                 d->abi_major, d->abi_major, SL_ABI_MAJOR);
        goto refuse;
    }
    if (d->size < SL_PLUGIN_MIN_SIZE_1_0) {
        snprintf(err, sizeof err, "descriptor is %u bytes, smaller than the %zu bytes of ABI 1.0", d->size,
                 (size_t)SL_PLUGIN_MIN_SIZE_1_0);
        goto refuse;
    }
    if (!(l = calloc(1, sizeof *l)) || !(l->path = strdup(real))) {
        snprintf(err, sizeof err, "out of memory");
        rc = SL_ENOMEM;
        goto refuse;
    }
    memcpy(&l->desc, d, d->size < sizeof l->desc ? d->size : sizeof l->desc);
    l->declared_size = d->size;
    l->handle = handle;
    if ((rc = check_descriptor(&l->desc, err, sizeof err)) < 0) goto refuse;
    if (expect && strcmp(l->desc.name, expect) != 0) {
        snprintf(err, sizeof err, "declares plugin '%s', but its file name says '%s' (name it %s.so)",
                 l->desc.name, expect, l->desc.name);
        rc = SL_EFATAL;
        goto refuse;
    }
    sl_loaded **grown = realloc(reg->loaded, (reg->nloaded + 1) * sizeof *grown);
    if (!grown) {
        snprintf(err, sizeof err, "out of memory");
        rc = SL_ENOMEM;
        goto refuse;
    }
    reg->loaded = grown;
    grown[reg->nloaded++] = l;
    *out = l;
    return 0;

refuse:
    if (l) free(l->path);
    free(l);
    /* a file opened by path earlier is still registered: dlopen counts references */
    dlclose(handle);
    return sl_ctx_error(ctx, rc, "%s: %s", path, err);
}

int sl_registry_open(sl_ctx *ctx, sl_registry *reg, const char *path, const sl_loaded **out) {
    return open_file(ctx, reg, path, NULL, out);
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int sl_registry_find(sl_ctx *ctx, sl_registry *reg, const char *name, const sl_loaded **out) {
    *out = NULL;
    if (strchr(name, '/')) return sl_registry_open(ctx, reg, name, out);
    if (!*name) return sl_ctx_error(ctx, SL_EFATAL, "the plugin name is empty");
    char file[PATH_MAX];
    for (size_t i = 0; i < reg->ndirs; i++) {
        snprintf(file, sizeof file, "%s/%s.so", reg->dirs[i], name);
        if (!is_file(file)) continue;
        /* the same name further on the path is never loaded: say so, or an
         * author rebuilding the other copy waits for a change that never comes */
        char other[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
        for (size_t j = i + 1; j < reg->ndirs; j++) {
            snprintf(other, sizeof other, "%s/%s.so", reg->dirs[j], name);
            if (!is_file(other) || !realpath(file, a) || !realpath(other, b) || strcmp(a, b) == 0) continue;
            sl_ctx_log(ctx, SL_LOG_WARN, NULL,
                       "plugin '%s' is in two folders: %s is used, %s is not (the earlier folder on the "
                       "search path wins; `sluice plugins` lists the order)",
                       name, file, other);
        }
        return open_file(ctx, reg, file, name, out);
    }
    char looked[1536] = "";
    size_t o = 0;
    for (size_t i = 0; i < reg->ndirs && o < sizeof looked; i++) {
        int n = snprintf(looked + o, sizeof looked - o, "%s%s", i ? ", " : "", reg->dirs[i]);
        if (n > 0) o += (size_t)n;
    }
    return sl_ctx_error(ctx, SL_EFATAL,
                        "plugin '%s' not found (looked in: %s; add folders with SLUICE_PLUGIN_PATH)", name,
                        reg->ndirs ? looked : "no folders");
}

static int is_so(const struct dirent *e) {
    size_t l = strlen(e->d_name);
    return e->d_name[0] != '.' && l > 3 && strcmp(e->d_name + l - 3, ".so") == 0;
}

static int remember(char ***seen, size_t *nseen, const char *name) {
    char **grown = realloc(*seen, (*nseen + 1) * sizeof *grown);
    if (!grown) return SL_ENOMEM;
    *seen = grown;
    if (!(grown[*nseen] = strdup(name))) return SL_ENOMEM;
    (*nseen)++;
    return 0;
}

int sl_registry_load_all(sl_ctx *ctx, sl_registry *reg,
                         void (*bad)(void *arg, const char *path, const char *msg), void *arg) {
    char **seen = NULL; /* file names met so far: an earlier folder's wins */
    size_t nseen = 0;
    int count = 0, rc = 0;
    for (size_t i = 0; i < reg->ndirs; i++) {
        struct dirent **list;
        int n = scandir(reg->dirs[i], &list, is_so, alphasort);
        if (n < 0) continue; /* a folder that does not exist is simply not searched */
        for (int k = 0; k < n; k++) {
            const char *fname = list[k]->d_name;
            int dup = 0;
            for (size_t s = 0; s < nseen && !dup; s++) dup = strcmp(seen[s], fname) == 0;
            if (rc == 0 && !dup && (rc = remember(&seen, &nseen, fname)) == 0) {
                char path[PATH_MAX], name[NAME_MAX + 1];
                snprintf(path, sizeof path, "%s/%s", reg->dirs[i], fname);
                snprintf(name, sizeof name, "%.*s", (int)(strlen(fname) - 3), fname);
                const sl_loaded *l;
                if (open_file(ctx, reg, path, name, &l) == 0)
                    count++;
                else if (bad)
                    bad(arg, path, sl_ctx_errmsg(ctx));
            }
            free(list[k]);
        }
        free(list);
    }
    for (size_t s = 0; s < nseen; s++) free(seen[s]);
    free(seen);
    if (rc < 0) return sl_ctx_error(ctx, rc, "plugin registry: out of memory");
    return count;
}

void sl_registry_free(sl_registry *reg) {
    if (!reg) return;
    for (size_t i = 0; i < reg->nloaded; i++) {
        dlclose(reg->loaded[i]->handle);
        free(reg->loaded[i]->path);
        free(reg->loaded[i]);
    }
    free(reg->loaded);
    for (size_t i = 0; i < reg->ndirs; i++) free(reg->dirs[i]);
    free(reg->dirs);
    free(reg);
}
