/* broken.c - plugins built wrong on purpose, one per loader refusal.
 *
 * Built once per case (CMakeLists.txt defines CASE_<NAME> and PLUGIN_NAME);
 * each build is a file the loader must refuse with a message naming the
 * file and the reason, except CASE_NEWER_MINOR (what a later minor of the
 * ABI could build) and CASE_PARSER_OK, which must load. A case overrides
 * one field of a correct descriptor, hence -Wno-override-init.
 */
#include <sluice/sluice.h>

/* Not every case uses every callback. */
#define UNUSED __attribute__((unused))
static UNUSED int chunk(sl_call *call, sl_doc *doc) { return 0; }
static UNUSED int parse(sl_call *call, sl_doc *doc) { return 0; }
static UNUSED void thread_fini(void *state, void *thread_state) {}

typedef struct conf {
    int64_t n;
} conf;

#if defined(CASE_NO_ENTRY)
/* A shared object, but not a plugin: no entry symbol at all. */
SL_EXPORT int not_a_plugin(void);
int not_a_plugin(void) { return 42; }

#elif defined(CASE_ABI_V2_SYMBOL)
/* What a plugin built for ABI 2 would export. */
static const sl_plugin desc = {SL_PLUGIN_HEADER,        .name = PLUGIN_NAME,  .version = "1",
                               .role = SL_ROLE_CHUNKER, .bottleneck = SL_CPU, .chunk = chunk};
SL_EXPORT const sl_plugin *sluice_plugin_v2(void);
const sl_plugin *sluice_plugin_v2(void) { return &desc; }

#elif defined(CASE_NULL_DESC)
SL_EXPORT const sl_plugin *sluice_plugin_v1(void);
const sl_plugin *sluice_plugin_v1(void) { return NULL; }

#else
static const sl_option opts[] = {
#if defined(CASE_OPT_TYPE)
    {.name = "size", .type = (sl_opt_type)99, .offset = offsetof(conf, n)},
#elif defined(CASE_OPT_DEFAULT)
    {.name = "dimension", .type = SL_OPT_INT, .def = "abc", .offset = offsetof(conf, n)},
#elif defined(CASE_OPT_OUTSIDE)
    {.name = "far", .type = SL_OPT_INT, .offset = sizeof(conf)},
#elif defined(CASE_STAGE_CLASH)
    {.name = "batch_size", .type = SL_OPT_INT, .offset = offsetof(conf, n)},
#else
    {.name = "n", .type = SL_OPT_INT, .def = "1", .offset = offsetof(conf, n)},
#endif
    {.name = NULL},
};

#if defined(CASE_NEWER_MINOR)
/* A descriptor from a later minor: more fields after ours, a larger size. */
static const struct {
    sl_plugin p;
    void (*later_callbacks[4])(void);
} newer = {.p = {.abi_major = SL_ABI_MAJOR,
                 .abi_minor = SL_ABI_MINOR + 3,
                 .size = sizeof newer,
                 .name = PLUGIN_NAME,
                 .version = "9.9",
                 .role = SL_ROLE_CHUNKER,
                 .bottleneck = SL_CPU,
                 .options = opts,
                 .config_size = sizeof(conf),
                 .chunk = chunk}};
SL_EXPORT const sl_plugin *sluice_plugin_v1(void);
const sl_plugin *sluice_plugin_v1(void) { return &newer.p; }
#else
static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = PLUGIN_NAME,
    .version = "1.0",
    .role = SL_ROLE_CHUNKER,
    .bottleneck = SL_CPU,
    .options = opts,
    .config_size = sizeof(conf),
    .chunk = chunk,
#if defined(CASE_ABI_MAJOR_2)
    .abi_major = 2,
#elif defined(CASE_SHORT)
    .size = 16,
#elif defined(CASE_PARSER_NO_PARSE)
    .role = SL_ROLE_PARSER,
#elif defined(CASE_PARSER_OK)
    .role = SL_ROLE_PARSER,
    .parse = parse,
#elif defined(CASE_THREAD_FINI)
    .thread_fini = thread_fini,
#elif defined(CASE_OPTS_NO_CONFIG)
    .config_size = 0,
#elif defined(CASE_BAD_NAME)
    .name = "Bad_Name",
#elif defined(CASE_NO_VERSION)
    .version = NULL,
#elif defined(CASE_BAD_ROLE)
    .role = (sl_role)42,
#elif defined(CASE_LLM)
    .role = SL_ROLE_LLM,
#elif defined(CASE_BAD_BOTTLENECK)
    .bottleneck = (sl_bottleneck)0,
#elif defined(CASE_SINK_INCOMPLETE)
    .role = SL_ROLE_SINK,
#endif
};
SL_PLUGIN_EXPORT(desc)
#endif
#endif
