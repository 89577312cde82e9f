/* mupdf.h - the mupdf contexts parse-pdf and render-pdf give their pool
 * threads, and where mupdf's messages go.
 *
 * mupdf's rules: a context is used by one thread at a time, and a document
 * belongs to the context that opened it. Each pool thread therefore gets a
 * context of its own, in one of two ways:
 *
 *   independent (the default): each thread makes its own context with its
 *     own resource store of `cache` bytes. Nothing is shared between
 *     threads, so mupdf needs no lock callbacks and no lock is contended.
 *   shared (`shared_cache = true`): each thread clones one base context, and
 *     all of them share its store of `cache` bytes (fonts, images, glyphs)
 *     under the lock callbacks here, one mutex per mupdf lock.
 *
 * Independent is the default because the shared store buys these plugins
 * next to nothing - a document is only ever open in one thread, and what
 * the store keeps is keyed by that document's objects - while its locks
 * cost a lot: mupdf takes FZ_LOCK_ALLOC for every reference count change,
 * and its text device keeps and drops the font of every character, so two
 * threads extracting text meet on one mutex per glyph. Measured with
 * bench/pdf_ocr.sh on two cores: parse-pdf's CPU time for the same pages
 * rose by a third with shared contexts, and not at all with independent
 * ones. The shared mode stays for memory-bound hosts with many threads,
 * where one store of `cache` bytes is worth more than the lost time.
 *
 * mupdf prints warnings and errors (mostly about damage it repairs) to
 * stderr by default; here they go to the instance's log at debug level,
 * naming the document the thread is reading.
 *
 * Header-only (static inline): each plugin is built from its own folder as
 * a third party would build it, linking only the SDK and mupdf.
 */
#ifndef SLUICE_PLUGINS_COMMON_MUPDF_H
#define SLUICE_PLUGINS_COMMON_MUPDF_H

#include <mupdf/fitz.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <sluice/sluice.h>

/* One thread's context, and whom its messages are about. */
typedef struct slmu_thread {
    fz_context *ctx;
    sl_instance *inst;
    const char *uri; /* the document being read; NULL between documents */
} slmu_thread;

/* An instance's contexts. Lives inside the plugin's state, which must not
 * move after slmu_init: mupdf keeps a pointer to the locks. */
typedef struct slmu {
    sl_instance *inst;
    size_t cache;
    bool shared;
    fz_context *base;        /* shared mode only */
    slmu_thread base_thread; /* the base context's message target */
    pthread_mutex_t locks[FZ_LOCK_MAX];
    fz_locks_context lc;
} slmu;

/* The options every mupdf plugin has, for an option table whose config
 * struct TYPE has `uint64_t cache` and `bool shared_cache`. */
#define SLMU_OPTIONS(TYPE)                                                                                   \
    {.name = "cache",                                                                                        \
     .type = SL_OPT_SIZE,                                                                                    \
     .def = "64M",                                                                                           \
     .help = "mupdf's resource cache (fonts, images): per thread, or for all with shared_cache",             \
     .flags = SL_OPT_NO_FINGERPRINT,                                                                         \
     .offset = offsetof(TYPE, cache)},                                                                       \
    {                                                                                                        \
        .name = "shared_cache", .type = SL_OPT_BOOL, .def = "false",                                         \
        .help = "threads share one mupdf cache under mupdf's locks (less memory, slower on many cores)",     \
        .flags = SL_OPT_NO_FINGERPRINT, .offset = offsetof(TYPE, shared_cache)                               \
    }

static inline void slmu_lock_(void *user, int lock) { pthread_mutex_lock(&((slmu *)user)->locks[lock]); }
static inline void slmu_unlock_(void *user, int lock) { pthread_mutex_unlock(&((slmu *)user)->locks[lock]); }

static inline void slmu_message_(void *user, const char *message) {
    const slmu_thread *t = user;
    sl_log(t->inst, SL_LOG_DEBUG, "mupdf: %s%s%s", t->uri ? t->uri : "", t->uri ? ": " : "", message);
}

/* fz_new_context seeds a PRNG whose state is a global of the mupdf copy
 * linked into the plugin: two threads making contexts at once would race
 * on it (helgrind sees it), so new contexts are made one at a time. */
static pthread_mutex_t slmu_new_lock_ = PTHREAD_MUTEX_INITIALIZER;

/* A new context: cloned from the base in shared mode, made afresh (with the
 * document handlers registered) otherwise; NULL when mupdf cannot. */
static inline fz_context *slmu_new_context_(slmu *m) {
    if (m->shared && m->base) return fz_clone_context(m->base);
    pthread_mutex_lock(&slmu_new_lock_);
    fz_context *ctx = fz_new_context(NULL, m->shared ? &m->lc : NULL, m->cache);
    pthread_mutex_unlock(&slmu_new_lock_);
    if (!ctx) return NULL;
    int failed = 0;
    fz_var(failed);
    fz_try(ctx) fz_register_document_handlers(ctx);
    fz_catch(ctx) failed = 1;
    if (failed) {
        fz_drop_context(ctx);
        return NULL;
    }
    return ctx;
}

static inline void slmu_quiet_(slmu_thread *t) {
    fz_set_warning_callback(t->ctx, slmu_message_, t);
    fz_set_error_callback(t->ctx, slmu_message_, t);
}

static inline void slmu_fini(slmu *m) {
    if (m->base) fz_drop_context(m->base);
    m->base = NULL;
    for (int i = 0; i < FZ_LOCK_MAX; i++) pthread_mutex_destroy(&m->locks[i]);
}

/* Sets m up for inst; in shared mode also makes the base context. Returns
 * 0, or the failure recorded on inst. */
static inline int slmu_init(slmu *m, sl_instance *inst, size_t cache, bool shared) {
    *m = (slmu){.inst = inst, .cache = cache, .shared = shared};
    for (int i = 0; i < FZ_LOCK_MAX; i++) pthread_mutex_init(&m->locks[i], NULL);
    m->lc = (fz_locks_context){.user = m, .lock = slmu_lock_, .unlock = slmu_unlock_};
    m->base_thread = (slmu_thread){NULL, inst, NULL};
    if (!shared) return 0;
    m->base = slmu_new_context_(m);
    if (!m->base) {
        slmu_fini(m);
        return sl_instance_fail(inst, SL_EFATAL, "cannot create a mupdf context");
    }
    m->base_thread.ctx = m->base;
    slmu_quiet_(&m->base_thread);
    return 0;
}

/* Gives a pool thread its context. Returns 0 or SL_EFATAL. */
static inline int slmu_thread_init(slmu *m, slmu_thread *t) {
    *t = (slmu_thread){slmu_new_context_(m), m->inst, NULL};
    if (!t->ctx) return SL_EFATAL;
    slmu_quiet_(t);
    return 0;
}

static inline void slmu_thread_fini(slmu_thread *t) {
    if (t->ctx) fz_drop_context(t->ctx);
    t->ctx = NULL;
}

#endif
