/* plugin_test.h - opening one plugin module and making instances of it, for
 * the tests that drive a plugin through the core (test_batcher,
 * test_layout_torch, test_embed_torch). Include after check.h.
 */
#ifndef SL_TEST_PLUGIN_TEST_H
#define SL_TEST_PLUGIN_TEST_H

#include <stdio.h>

#include "ctx.h"
#include "instance.h"
#include "registry.h"

/* Opens DIR/FILE into a new registry *reg: 0 with *plugin set, or the
 * reason printed and a failed check counted. */
static inline int plugin_open(sl_ctx *ctx, const char *dir, const char *file, sl_registry **reg,
                              const sl_loaded **plugin) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    CHECK_INT(sl_registry_new(ctx, reg), 0);
    int rc = sl_registry_open(ctx, *reg, path, plugin);
    if (rc) {
        fprintf(stderr, "cannot load %s: %s\n", path, sl_ctx_errmsg(ctx));
        CHECK_INT(rc, 0);
    }
    return rc;
}

/* An initialised instance NAME of plugin with the options `base`, then the
 * "key=value" overrides kv (16 in all at most); NULL when init failed (the
 * message is then sl_ctx_errmsg). */
static inline sl_instance *plugin_instance(sl_ctx *ctx, const sl_loaded *plugin, const char *name,
                                           const char *const *base, size_t nbase, const char *const *kv,
                                           size_t n) {
    const char *all[16];
    size_t m = 0;
    for (size_t i = 0; i < nbase && m < 16; i++) all[m++] = base[i];
    for (size_t i = 0; i < n && m < 16; i++) all[m++] = kv[i];
    sl_instance *inst = NULL;
    sl_ctx_clear_error(ctx);
    int rc = sl_instance_new_defaults(ctx, plugin, name, all, m, &inst);
    if (rc == 0) rc = sl_instance_init(ctx, inst);
    if (rc) {
        sl_instance_free(inst);
        return NULL;
    }
    return inst;
}

#endif
