/* mupdf.h - the mupdf contexts parse-pdf and render-pdf give their pool
 * threads, where mupdf's messages go, and the check of a PDF's page tree
 * both make before mupdf reads a page of it.
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

#include <limits.h>
#include <mupdf/fitz.h>
#include <mupdf/pdf.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

/* --- the page tree --- */

#define SLMU_MAX_TREE_DEPTH 1000 /* a deeper page tree fails (mupdf maps it by recursion) */

/* One /Pages node of a walk: the next kid to look at, and the pages found
 * below it so far. */
typedef struct slmu_tree_frame_ {
    pdf_obj *node;
    int next;
    int64_t pages;
} slmu_tree_frame_;

/* "N 0 R", or "(written inline)" for a direct object, for an error message. */
static inline const char *slmu_node_name_(fz_context *ctx, pdf_obj *obj, char *out, size_t cap) {
    int num = pdf_to_num(ctx, obj);
    if (num > 0)
        snprintf(out, cap, "%d %d R", num, pdf_to_gen(ctx, obj));
    else
        snprintf(out, cap, "(written inline)");
    return out;
}

/* Whether mupdf takes kid for a /Pages node, as its page lookup does: by
 * /Type, or without one, by having /Kids and no /MediaBox. */
static inline bool slmu_is_pages_node_(fz_context *ctx, pdf_obj *kid) {
    pdf_obj *type = pdf_dict_get(ctx, kid, PDF_NAME(Type));
    if (type) return pdf_name_eq(ctx, type, PDF_NAME(Pages));
    return pdf_dict_get(ctx, kid, PDF_NAME(Kids)) && !pdf_dict_get(ctx, kid, PDF_NAME(MediaBox));
}

/* Walks fdoc's page tree, without recursion, before mupdf is asked for any
 * page, and sets every /Pages node's /Count to the pages found below it
 * (in memory: the file is never written). mupdf finds a page by walking
 * down from the root, trusting each /Count to skip a branch, so a wrong
 * one makes it miss pages; a null kid in a /Pages node written inline
 * sends it round that node forever, its cycle list growing until memory
 * runs out; and its page map is sized by the root's /Count, which a file
 * may set to two billion. So a null kid, a /Pages node met twice (a cycle,
 * or a branch shared, which multiplies the pages), a tree nested deeper
 * than SLMU_MAX_TREE_DEPTH and more than INT_MAX pages are refused: -1,
 * with the reason in why ("page tree: ..."). Any other kid that is not a
 * /Pages node is a page, as mupdf reads it: a page object listed twice is
 * two pages, and a reference to an object the file lost is a page without
 * text. Returns 0 with the root's /Count as it was in *said and the pages
 * found in *found. Not a PDF, or no page tree: 0, both 0, and mupdf says
 * what it makes of it. */
static inline int slmu_check_page_tree(fz_context *ctx, fz_document *fdoc, int64_t *said, int64_t *found,
                                       char *why, size_t cap) {
    pdf_mark_bits *seen = NULL;
    slmu_tree_frame_ *stack = NULL;
    size_t n = 0, scap = 0;
    int failed = 0;
    char name[48];
    *said = *found = 0;
    fz_var(seen);
    fz_var(stack);
    fz_var(n);
    fz_var(scap);
    fz_var(failed);
    fz_try(ctx) {
        pdf_document *pdf = pdf_specifics(ctx, fdoc);
        pdf_obj *root = pdf ? pdf_dict_getp(ctx, pdf_trailer(ctx, pdf), "Root/Pages") : NULL;
        if (pdf_is_dict(ctx, root)) {
            *said = pdf_dict_get_int(ctx, root, PDF_NAME(Count));
            seen = pdf_new_mark_bits(ctx, pdf);
            pdf_mark_bits_set(ctx, seen, root);
            stack = fz_malloc_array(ctx, 64, slmu_tree_frame_);
            scap = 64;
            stack[n++] = (slmu_tree_frame_){root, 0, 0};
        }
        while (n > 0 && !failed) {
            slmu_tree_frame_ *f = &stack[n - 1];
            pdf_obj *kids = pdf_dict_get(ctx, f->node, PDF_NAME(Kids));
            if (f->next >= pdf_array_len(ctx, kids)) {
                pdf_obj *count = pdf_dict_get(ctx, f->node, PDF_NAME(Count));
                if (!pdf_is_int(ctx, count) || pdf_to_int64(ctx, count) != f->pages)
                    pdf_dict_put_int(ctx, f->node, PDF_NAME(Count), f->pages);
                int64_t pages = f->pages;
                if (--n == 0) {
                    *found = pages;
                } else if ((stack[n - 1].pages += pages) > INT_MAX) {
                    snprintf(why, cap, "page tree: more than %d pages", INT_MAX);
                    failed = 1;
                }
                continue;
            }
            int at = f->next++;
            pdf_obj *kid = pdf_array_get(ctx, kids, at);
            if (!kid) {
                snprintf(why, cap, "page tree: kid %d of /Pages node %s is null, not a page", at + 1,
                         slmu_node_name_(ctx, f->node, name, sizeof name));
                failed = 1;
            } else if (!pdf_is_dict(ctx, kid) || !slmu_is_pages_node_(ctx, kid)) {
                f->pages++;
            } else if (pdf_mark_bits_set(ctx, seen, kid)) {
                snprintf(why, cap, "page tree: /Pages node %s is met twice (a cycle, or a shared branch)",
                         slmu_node_name_(ctx, kid, name, sizeof name));
                failed = 1;
            } else if (n > SLMU_MAX_TREE_DEPTH) {
                snprintf(why, cap, "page tree nested more than %d deep", SLMU_MAX_TREE_DEPTH);
                failed = 1;
            } else {
                if (n == scap) {
                    stack = fz_realloc_array(ctx, stack, scap * 2, slmu_tree_frame_);
                    scap *= 2;
                }
                stack[n++] = (slmu_tree_frame_){kid, 0, 0};
            }
        }
    }
    fz_always(ctx) {
        pdf_drop_mark_bits(ctx, seen);
        fz_free(ctx, stack);
    }
    fz_catch(ctx) {
        snprintf(why, cap, "page tree: %s", fz_caught_message(ctx));
        failed = 1;
    }
    return failed ? -1 : 0;
}

#endif
