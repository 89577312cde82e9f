/* fuzz_common.c - loading a plugin for a harness (fuzz.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* One mapping, grown when an input needs more: [pages][PROT_NONE page]. */
static unsigned char *guard_map;
static size_t guard_room; /* bytes before the guard page */

const uint8_t *fuzz_at_guard(const uint8_t *data, size_t size) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (!guard_map || size > guard_room) {
        if (guard_map) munmap(guard_map, guard_room + page);
        size_t room = (size + page - 1) / page * page;
        if (!room) room = page;
        void *m = mmap(NULL, room + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED || mprotect((unsigned char *)m + room, page, PROT_NONE) != 0) {
            perror("fuzz: guard page");
            exit(2);
        }
        guard_map = m;
        guard_room = room;
    }
    unsigned char *at = guard_map + guard_room - size;
    if (size) memcpy(at, data, size);
    return at;
}
