/* embed.c - cfgtest-embed: an embedder whose init declares the dimension its
 * `dimension` option says, or none at all when that is 0, which the core
 * must refuse. */

#include <sluice/sluice.h>

typedef struct embed_conf {
    int64_t dimension;
} embed_conf;

static int init(sl_instance *inst, const void *config, void **state) {
    const embed_conf *c = config;
    if (c->dimension > 0) sl_instance_set_dimension(inst, (uint32_t)c->dimension);
    return 0;
}

static int embed(sl_call *call, const sl_text *texts, size_t n, float *out) { return 0; }

static const sl_option options[] = {
    {.name = "dimension", .type = SL_OPT_INT, .def = "0", .offset = offsetof(embed_conf, dimension)},
    {.name = NULL},
};

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "cfgtest-embed",
    .version = "0.1",
    .role = SL_ROLE_EMBEDDER,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(embed_conf),
    .init = init,
    .embed = embed,
};
SL_PLUGIN_EXPORT(desc)
