/* good.c - cfgtest-good: a well-built plugin with one option of every type,
 * two secrets (a string, and an int that can be mistyped), a required option
 * and some left out of the fingerprint. Its config struct is in good.h.
 *
 * Its init can be made to fail (fail_init) or to log its secret
 * (log_secret), and it counts live states so a test can see that fini ran.
 * test_live_states is exported for the tests only; a real plugin exports
 * nothing but its entry symbol.
 */
#include <stdbool.h>
#include <stdlib.h>

#include <sluice/sluice.h>

#include "good.h"

static int live_states;

SL_EXPORT int test_live_states(void);
int test_live_states(void) { return live_states; }

static int init(sl_instance *inst, const void *config, void **state) {
    const good_conf *c = config;
    if (c->fail_init) return sl_instance_fail(inst, SL_EFATAL, "cannot reach %s", c->endpoint);
    if (c->log_secret) sl_log(inst, SL_LOG_WARN, "connecting with key %s", c->api_key ? c->api_key : "");
    int *s = malloc(sizeof *s);
    if (!s) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    live_states++;
    *state = s;
    return 0;
}

static void fini(void *state) {
    live_states--;
    free(state);
}

static int chunk(sl_call *call, sl_doc *doc) { return 0; }

static const sl_option options[] = {
    {.name = "label",
     .type = SL_OPT_STRING,
     .def = "hello",
     .help = "a string",
     .offset = offsetof(good_conf, label)},
    {.name = "count", .type = SL_OPT_INT, .def = "3", .help = "an int", .offset = offsetof(good_conf, count)},
    {.name = "ratio",
     .type = SL_OPT_DOUBLE,
     .def = "0.5",
     .help = "a double",
     .offset = offsetof(good_conf, ratio)},
    {.name = "verbose",
     .type = SL_OPT_BOOL,
     .def = "no",
     .help = "a bool",
     .offset = offsetof(good_conf, verbose)},
    {.name = "cache",
     .type = SL_OPT_SIZE,
     .def = "64K",
     .help = "a size",
     .offset = offsetof(good_conf, cache)},
    {.name = "timeout",
     .type = SL_OPT_DURATION,
     .def = "5s",
     .help = "a duration",
     .offset = offsetof(good_conf, timeout_ms)},
    {.name = "dict", .type = SL_OPT_PATH, .help = "a path", .offset = offsetof(good_conf, dict)},
    {.name = "mode",
     .type = SL_OPT_ENUM,
     .def = "fast",
     .help = "an enum",
     .offset = offsetof(good_conf, mode),
     .choices = "fast|exact"},
    {.name = "api_key",
     .type = SL_OPT_STRING,
     .help = "a secret",
     .flags = SL_OPT_SECRET,
     .offset = offsetof(good_conf, api_key)},
    {.name = "pin",
     .type = SL_OPT_INT,
     .help = "a secret number",
     .flags = SL_OPT_SECRET,
     .offset = offsetof(good_conf, pin)},
    {.name = "endpoint",
     .type = SL_OPT_STRING,
     .help = "required",
     .flags = SL_OPT_REQUIRED,
     .offset = offsetof(good_conf, endpoint)},
    {.name = "workers",
     .type = SL_OPT_INT,
     .def = "2",
     .help = "does not change the output",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(good_conf, workers)},
    {.name = "fail_init",
     .type = SL_OPT_BOOL,
     .def = "false",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(good_conf, fail_init)},
    {.name = "log_secret",
     .type = SL_OPT_BOOL,
     .def = "false",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(good_conf, log_secret)},
    {.name = NULL},
};

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "cfgtest-good",
    .version = GOOD_VERSION,
    .summary = "a plugin for the loader and instance tests",
    .role = SL_ROLE_CHUNKER,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(good_conf),
    .init = init,
    .fini = fini,
    .chunk = chunk,
};
SL_PLUGIN_EXPORT(desc)
