/* config.h - INI files read with inih: sections, interpolation, --set.
 *
 * A config is a list of sections, each a list of key = value entries with
 * the line they came from. Values are interpolated when read: ${VAR} from
 * the environment (an error when unset), ${VAR:-default}, $$ for a literal $,
 * and two built-ins: ${CWD} (where sluice was started) and ${CONFIG_DIR}
 * (the INI file's own folder). Every error names file, line, section and key:
 *   conf/prod.ini:12: [embedder] dimension: ...
 * Which keys are allowed is not this file's business: the option tables of
 * the plugins and of the core decide that (options.h, instance.h).
 */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stddef.h>

#include "ctx.h"

typedef struct sl_conf_kv {
    char *key;
    char *value; /* interpolated */
    int line;    /* 0 for values from --set */
    int used;    /* set by sl_config_get; lets callers report unused keys */
} sl_conf_kv;

typedef struct sl_conf_section {
    char *name;
    int line;
    sl_conf_kv *kv;
    size_t n;
} sl_conf_section;

typedef struct sl_config {
    char *path; /* as given */
    char *dir;  /* absolute folder of the file: base for relative paths */
    sl_conf_section *sections;
    size_t nsections;
} sl_config;

/* Reads and interpolates `path`. On error returns SL_EFATAL with a message
 * naming file and line (and section and key where there is one). */
int sl_config_load(sl_ctx *ctx, const char *path, sl_config **out);
/* The same from a string; `name` stands in for the file name in messages and
 * `dir` is the base for relative paths. */
int sl_config_load_string(sl_ctx *ctx, const char *name, const char *dir, const char *text, sl_config **out);
/* Applies "SECTION.KEY=VALUE" (from --set): replaces or adds the key,
 * creating the section if needed. The section name may itself contain dots
 * ("route.text.stages=..." sets key "stages" of [route.text]): the last dot
 * before '=' splits section from key. */
int sl_config_set(sl_ctx *ctx, sl_config *cfg, const char *assignment);
sl_conf_section *sl_config_section(const sl_config *cfg, const char *name);
/* Finds a key and marks it used; NULL when absent. */
sl_conf_kv *sl_config_get(const sl_config *cfg, const char *section, const char *key);
/* Writes "FILE:LINE" (or "FILE (--set)" for line 0) into buf. */
const char *sl_config_where(const sl_config *cfg, int line, char *buf, size_t buflen);
void sl_config_free(sl_config *cfg);

#endif
