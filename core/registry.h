/* registry.h - finding, opening and validating plugin shared objects.
 *
 * A plugin is opened with dlopen(RTLD_NOW | RTLD_LOCAL) and its entry symbol
 * sluice_plugin_v1 called; the descriptor it returns is checked and copied
 * into a zeroed sl_plugin of the size this core knows. Every refusal names
 * the file and the reason:
 *   plugins/bad.so: no entry symbol sluice_plugin_v1 (is it a sluice plugin?)
 *   plugins/v2.so: built for plugin ABI 2 (exports sluice_plugin_v2); this sluice speaks ABI 1
 *   plugins/x.so: descriptor is 24 bytes, smaller than the 200 bytes of ABI 1.0
 *   plugins/x.so: role parser needs the 'parse' callback
 *   plugins/x.so: option 'size': type 99 is not an option type
 * Search order for a plugin named NAME (file NAME.so): the folder `plugins`
 * next to the executable, <exe>/../lib/sluice/plugins (after install), the
 * configured plugin_path folders, then SLUICE_PLUGIN_PATH (colon-separated).
 */
#ifndef SL_REGISTRY_H
#define SL_REGISTRY_H

#include <stddef.h>

#include "ctx.h"
#include "sluice/plugin.h"

typedef struct sl_loaded {
    char *path;     /* the file opened */
    void *handle;   /* dlopen handle */
    sl_plugin desc; /* zero-extended copy of what the plugin declared */
    uint32_t declared_size;
} sl_loaded;

typedef struct sl_registry sl_registry;

/* A registry with the default search folders (exe-relative and
 * SLUICE_PLUGIN_PATH) already added. */
int sl_registry_new(sl_ctx *ctx, sl_registry **out);
/* Adds a folder before SLUICE_PLUGIN_PATH's, after the exe-relative ones. */
int sl_registry_add_dir(sl_registry *reg, const char *dir);
/* The search folders in order (for `sluice plugins` and error messages). */
size_t sl_registry_dirs(const sl_registry *reg, const char *const **dirs);
/* Opens and validates one file; the result is owned by the registry and
 * lives until sl_registry_free. Opening the same file twice returns the
 * same sl_loaded. */
int sl_registry_open(sl_ctx *ctx, sl_registry *reg, const char *path, const sl_loaded **out);
/* Finds a plugin by name (searching NAME.so in the folders, first hit wins)
 * or, when `name` contains a '/', by path. Error: "plugin 'x' not found
 * (looked in: a, b, c)". */
int sl_registry_find(sl_ctx *ctx, sl_registry *reg, const char *name, const sl_loaded **out);
/* Opens every *.so in every folder, in search order, first name wins; calls
 * `bad` for each file that fails to load (with the message) and goes on.
 * Returns the number loaded; then sl_registry_loaded lists them. */
int sl_registry_load_all(sl_ctx *ctx, sl_registry *reg,
                         void (*bad)(void *arg, const char *path, const char *msg), void *arg);
size_t sl_registry_loaded(const sl_registry *reg, const sl_loaded *const **list);
void sl_registry_free(sl_registry *reg);

#endif
