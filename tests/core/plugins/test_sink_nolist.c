/* test_sink_nolist.c - a third-party sink built against ABI 1.2: lookup,
 * store, prune and query, and none of 1.3's failure list, documents or
 * probe. Its descriptor says so the way an old build would: minor 2 and
 * the size of a 1.2 descriptor, so the core reads the 1.3 callbacks as
 * absent. It keeps nothing: every document is missing, every store
 * succeeds. For tests/e2e/failure_list_third_party.sh. */
#include <stddef.h>

#include <sluice/sluice.h>

static int lookup(sl_call *call, sl_doc *doc) { return SL_LOOKUP_MISSING; }
static int store(sl_call *call, sl_doc *doc) { return 0; }
static int prune(sl_call *call, const char *const *roots, size_t nroots, uint64_t run_id) { return 0; }
static int query(sl_call *call, const float *vector, uint32_t dim, uint32_t k, sl_hits *hits) { return 0; }

static const sl_plugin desc = {
    .abi_major = SL_ABI_MAJOR,
    .abi_minor = 2,
    .size = offsetof(sl_plugin, failures_record), /* as built before ABI 1.3 */
    .name = "test-sink-nolist",
    .version = "1.0.0",
    .summary = "a sink of ABI 1.2 that keeps nothing (tests)",
    .role = SL_ROLE_SINK,
    .bottleneck = SL_CPU,
    .lookup = lookup,
    .store = store,
    .prune = prune,
    .query = query,
};

SL_PLUGIN_EXPORT(desc)
