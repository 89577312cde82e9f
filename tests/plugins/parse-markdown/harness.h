/* harness.h - runs one plugin by hand in a test: dlopen the built .so, fill
 * its config from the option table's defaults (plus overrides), call init,
 * and make calls and documents, the way the core will.
 *
 * The core's own option parser and instance builder are not used on purpose:
 * this test checks the plugin, not them. Only the option types the plugins
 * under test declare are understood (int, bool, enum, string, double, size).
 * Shared by the parser tests and tests/plugins/formats/dump_elements.c.
 */
#ifndef SL_TEST_HARNESS_H
#define SL_TEST_HARNESS_H

#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ctx.h"
#include "document.h"
#include "instance.h"

typedef struct harness {
    void *so;
    const sl_plugin *desc;
    sl_instance *inst;
    void *config;
    int init_rc;
} harness;

static int harness_set(const sl_option *opt, void *config, const char *text) {
    char *at = (char *)config + opt->offset;
    switch (opt->type) {
    case SL_OPT_INT: {
        int64_t v = text ? strtoll(text, NULL, 10) : 0;
        memcpy(at, &v, sizeof v);
        return 0;
    }
    case SL_OPT_DOUBLE: {
        double v = text ? strtod(text, NULL) : 0.0;
        memcpy(at, &v, sizeof v);
        return 0;
    }
    case SL_OPT_BOOL: {
        bool v = text &&
                 (!strcmp(text, "true") || !strcmp(text, "yes") || !strcmp(text, "on") || !strcmp(text, "1"));
        memcpy(at, &v, sizeof v);
        return 0;
    }
    case SL_OPT_SIZE: {
        char *end;
        uint64_t v = text ? strtoull(text, &end, 10) : 0;
        if (text && *end) v <<= *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
        memcpy(at, &v, sizeof v);
        return 0;
    }
    case SL_OPT_STRING:
    case SL_OPT_ENUM:
    case SL_OPT_PATH: memcpy(at, &text, sizeof text); return 0;
    default: return -1;
    }
}

/* Loads $SLUICE_PLUGIN_DIR/<name>.so and inits an instance with the defaults
 * and "key=value" overrides (the strings must outlive the harness). Returns
 * init's code (also in h->init_rc); -100 if loading itself failed. */
static int harness_open(harness *h, const char *name, const char *const *overrides) {
    memset(h, 0, sizeof *h);
    const char *dir = getenv("SLUICE_PLUGIN_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.so", dir ? dir : "plugins", name);
    h->so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h->so) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return h->init_rc = -100;
    }
    const sl_plugin *(*entry)(void) = (const sl_plugin *(*)(void))dlsym(h->so, SL_ENTRY_SYMBOL);
    if (!entry) return h->init_rc = -100;
    h->desc = entry();
    h->config = calloc(1, h->desc->config_size ? h->desc->config_size : 1);
    for (const sl_option *o = h->desc->options; o && o->name; o++) harness_set(o, h->config, o->def);
    for (size_t i = 0; overrides && overrides[i]; i++) {
        const char *eq = strchr(overrides[i], '=');
        const sl_option *o = h->desc->options;
        for (; o && o->name; o++)
            if (eq && strlen(o->name) == (size_t)(eq - overrides[i]) &&
                !strncmp(o->name, overrides[i], (size_t)(eq - overrides[i])))
                break;
        if (!o || !o->name || harness_set(o, h->config, eq + 1)) {
            fprintf(stderr, "bad override %s\n", overrides[i]);
            return h->init_rc = -100;
        }
    }
    h->inst = calloc(1, sizeof *h->inst);
    h->inst->ctx = sl_ctx_new();
    h->inst->name = strdup(name);
    h->inst->desc = h->desc;
    h->inst->config = h->config;
    h->init_rc = h->desc->init ? h->desc->init(h->inst, h->config, &h->inst->state) : 0;
    h->inst->initialized = h->init_rc == 0;
    return h->init_rc;
}

static void harness_close(harness *h) {
    if (h->inst) {
        if (h->inst->initialized && h->desc->fini) h->desc->fini(h->inst->state);
        sl_ctx_free(h->inst->ctx);
        free(h->inst->name);
        free(h->inst->model);
        free(h->inst);
    }
    free(h->config);
    if (h->so) dlclose(h->so);
    memset(h, 0, sizeof *h);
}

/* A document over caller-owned bytes (they must outlive it). */
static sl_doc *harness_doc(const char *uri, const char *media_type, const char *data, size_t len) {
    sl_doc *doc = sl_doc_new(uri, NULL);
    sl_doc_set_data(doc, data, len);
    sl_doc_set_media_type(doc, media_type);
    return doc;
}

#endif
