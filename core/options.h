/* options.h - one option table drives parsing, defaults, validation and help.
 *
 * Plugins declare their options in an sl_option table (sluice/plugin.h); the
 * core declares its own per-section settings the same way. This file turns
 * text into typed values at the declared offsets, and checks that a table is
 * well formed before any value is parsed against it.
 */
#ifndef SL_OPTIONS_H
#define SL_OPTIONS_H

#include <stddef.h>

#include "sluice/plugin.h"

/* "string", "int", "double", "bool", "size", "duration", "path", "enum";
 * NULL for an unknown type. */
const char *sl_opt_type_name(sl_opt_type type);

/* Checks a table against a config struct of config_size bytes: known types,
 * unique non-empty names, value inside the struct, enum choices given,
 * defaults that parse. On error writes e.g.
 *   "option 'dimension': default 'abc' is not an int" into err. */
int sl_options_validate(const sl_option *table, size_t config_size, char *err, size_t errlen);

/* Parses `text` as opt's type into config + opt->offset. Strings are
 * strdup'd and appended to *owned (a growing array the caller frees with
 * sl_options_free_owned). base_dir resolves relative SL_OPT_PATH values.
 * On error returns SL_EFATAL and writes the reason ("'12x' is not a size
 * (use 512, 64K, 10M or 2G)") into err. */
int sl_option_parse(const sl_option *opt, const char *text, const char *base_dir, void *config, char ***owned,
                    size_t *nowned, char *err, size_t errlen);

/* Formats the value at opt->offset back as text (for fingerprints and
 * `sluice check`): ints in decimal, sizes in bytes, durations in ms. */
int sl_option_format(const sl_option *opt, const void *config, char *buf, size_t buflen);

void sl_options_free_owned(char **owned, size_t nowned);

/* Number of entries before the NULL-named terminator (0 for NULL). */
size_t sl_options_count(const sl_option *table);

#endif
