/* fuzz_config.c - the INI reader and option parsing, the first things a
 * user's file meets. The input is an INI text, loaded as a configuration
 * (sections, keys, ${VAR} and ${file:...} references, includes refused or
 * resolved); then every value of every section is parsed as each option
 * type (int, size, duration, double, bool, enum, string, path), and a
 * --set line is applied for each key, as the command line would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "options.h"

typedef struct every_type {
    int64_t i, ms;
    uint64_t size;
    double d;
    bool b;
    const char *s, *path, *e;
} every_type;

static const sl_option types[] = {
    {.name = "i", .type = SL_OPT_INT, .offset = offsetof(every_type, i)},
    {.name = "size", .type = SL_OPT_SIZE, .offset = offsetof(every_type, size)},
    {.name = "ms", .type = SL_OPT_DURATION, .offset = offsetof(every_type, ms)},
    {.name = "d", .type = SL_OPT_DOUBLE, .offset = offsetof(every_type, d)},
    {.name = "b", .type = SL_OPT_BOOL, .offset = offsetof(every_type, b)},
    {.name = "s", .type = SL_OPT_STRING, .offset = offsetof(every_type, s)},
    {.name = "path", .type = SL_OPT_PATH, .offset = offsetof(every_type, path)},
    {.name = "e", .type = SL_OPT_ENUM, .offset = offsetof(every_type, e), .choices = "chars|tokens|bytes"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    sl_config *cfg = NULL;
    if (sl_config_load_string(fuzz_ctx(), "fuzz.ini", "/nonexistent", text, &cfg) == 0 && cfg) {
        /* the --set lines first, applied after the walk: a set may add keys */
        size_t nlines = 0, cap = 0;
        char **lines = NULL;
        for (size_t s = 0; s < cfg->nsections; s++) {
            const sl_conf_section *sec = &cfg->sections[s];
            for (size_t k = 0; k < sec->n; k++) {
                const sl_conf_kv *kv = &sec->kv[k];
                for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
                    every_type v = {0};
                    char **owned = NULL, err[256];
                    size_t nowned = 0;
                    (void)sl_option_parse(&types[t], kv->value, "/base", &v, &owned, &nowned, err,
                                          sizeof err);
                    sl_options_free_owned(owned, nowned);
                }
                if (nlines == cap) {
                    char **nl = realloc(lines, (cap = cap ? cap * 2 : 16) * sizeof *nl);
                    if (!nl) break;
                    lines = nl;
                }
                size_t need = strlen(sec->name) + strlen(kv->key) + strlen(kv->value) + 3;
                if ((lines[nlines] = malloc(need)))
                    snprintf(lines[nlines++], need, "%s.%s=%s", sec->name, kv->key, kv->value);
            }
        }
        for (size_t i = 0; i < nlines; i++) {
            (void)sl_config_set(fuzz_ctx(), cfg, lines[i]);
            free(lines[i]);
        }
        free(lines);
    }
    sl_config_free(cfg);
    free(text);
    return 0;
}
