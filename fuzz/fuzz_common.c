/* fuzz_common.c - loading a plugin for a harness (fuzz.h). */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"
#include "loop.h"

static sl_ctx *ctx;
/* what a harness keeps for the process, held here so that LeakSanitizer
 * sees it reachable */
static sl_registry *regs[8];
static sl_loop *loops[8];
static size_t nkept;

sl_ctx *fuzz_ctx(void) {
    if (!ctx) ctx = sl_ctx_new();
    if (!ctx) {
        fprintf(stderr, "fuzz: out of memory\n");
        exit(2);
    }
    return ctx;
}

sl_instance *fuzz_instance(const char *name, const char *const *overrides, size_t n) {
    sl_ctx *c = fuzz_ctx();
    sl_registry *reg;
    const sl_loaded *p;
    const char *dir = getenv("SLUICE_PLUGIN_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.so", dir && *dir ? dir : FUZZ_PLUGIN_DIR, name);
    sl_instance *inst = NULL;
    sl_loop *loop = NULL;
    if (sl_registry_new(c, &reg) || sl_registry_open(c, reg, path, &p) ||
        sl_instance_new_defaults(c, p, name, overrides, n, &inst) || sl_loop_new(&loop)) {
        fprintf(stderr, "fuzz: cannot load %s: %s\n", path, sl_ctx_errmsg(c));
        exit(2);
    }
    inst->loop = loop;
    if (nkept < sizeof regs / sizeof regs[0]) {
        regs[nkept] = reg;
        loops[nkept++] = loop;
    }
    if (sl_instance_init(c, inst)) {
        fprintf(stderr, "fuzz: %s: init failed: %s\n", name, sl_ctx_errmsg(c));
        exit(2);
    }
    return inst; /* lives for the process, like libFuzzer's */
}
