/* options.c - typed option values from text, and the checks on option tables.
 *
 * One sl_option table (a plugin's, or the core's own stage settings) drives
 * everything: sl_options_validate checks the table once, when the plugin is
 * loaded, so a malformed table is the plugin author's error and never the
 * user's; sl_option_parse then turns INI text into the typed field at the
 * declared offset; sl_option_format turns it back into canonical text for the
 * pipeline fingerprint and `sluice check`.
 *
 * Parsing is strict on purpose: "12x", "1e3" for an int, or a duration
 * without a unit are errors, because a config that silently means something
 * else is worse than one that stops. Error texts never include the value of
 * an option declared secret.
 */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *sl_opt_type_name(sl_opt_type type) {
    switch (type) {
    case SL_OPT_STRING: return "string";
    case SL_OPT_INT: return "int";
    case SL_OPT_DOUBLE: return "double";
    case SL_OPT_BOOL: return "bool";
    case SL_OPT_SIZE: return "size";
    case SL_OPT_DURATION: return "duration";
    case SL_OPT_PATH: return "path";
    case SL_OPT_ENUM: return "enum";
    }
    return NULL;
}

/* The C type behind each option type: its size and alignment. */
static size_t field_size(sl_opt_type type) {
    switch (type) {
    case SL_OPT_INT:
    case SL_OPT_DURATION: return sizeof(int64_t);
    case SL_OPT_SIZE: return sizeof(uint64_t);
    case SL_OPT_DOUBLE: return sizeof(double);
    case SL_OPT_BOOL: return sizeof(bool);
    default: return sizeof(const char *);
    }
}

static size_t field_align(sl_opt_type type) {
    switch (type) {
    case SL_OPT_INT:
    case SL_OPT_DURATION: return alignof(int64_t);
    case SL_OPT_SIZE: return alignof(uint64_t);
    case SL_OPT_DOUBLE: return alignof(double);
    case SL_OPT_BOOL: return alignof(bool);
    default: return alignof(const char *);
    }
}

size_t sl_options_count(const sl_option *table) {
    size_t n = 0;
    while (table && table[n].name) n++;
    return n;
}

void sl_options_free_owned(char **owned, size_t nowned) {
    for (size_t i = 0; i < nowned; i++) free(owned[i]);
    free(owned);
}

/* --- text to values --- */

/* How the value appears in error messages: quoted, or not at all. */
static void shown_value(const sl_option *opt, const char *text, char *buf, size_t len) {
    if (opt->flags & SL_OPT_SECRET)
        snprintf(buf, len, "the value");
    else
        snprintf(buf, len, "'%s'", text);
}

/* [+-]?[0-9]+ into int64; -1 on junk, -2 on overflow. */
static int parse_int64(const char *s, int64_t *out) {
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (!*p) return -1;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q)) return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE) return -2;
    *out = v;
    return 0;
}

/* Leading decimal digits into *v, advancing *p; -1 without digits, -2 on overflow. */
static int take_digits(const char **p, uint64_t *v) {
    const char *s = *p;
    if (!isdigit((unsigned char)*s)) return -1;
    uint64_t n = 0;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (n > (UINT64_MAX - d) / 10) return -2;
        n = n * 10 + d;
    }
    *v = n;
    *p = s;
    return 0;
}

static int parse_bool(const char *s, bool *out) {
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = true, 0;
        if (strcasecmp(s, no[i]) == 0) return *out = false, 0;
    }
    return -1;
}

/* "512", "64K", "10 MB", "2GiB": base 1024; -1 on junk, -2 on overflow. */
static int parse_size(const char *s, uint64_t *out) {
    static const struct {
        const char *unit;
        unsigned shift;
    } units[] = {{"", 0},     {"b", 0},  {"k", 10},  {"kb", 10},  {"kib", 10}, {"m", 20},  {"mb", 20},
                 {"mib", 20}, {"g", 30}, {"gb", 30}, {"gib", 30}, {"t", 40},   {"tb", 40}, {"tib", 40}};
    uint64_t n;
    int rc = take_digits(&s, &n);
    if (rc < 0) return rc;
    while (*s == ' ') s++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(s, units[i].unit) != 0) continue;
        if (n > (UINT64_MAX >> units[i].shift)) return -2;
        *out = n << units[i].shift;
        return 0;
    }
    return -1;
}

/* "250ms", "5s", "2m", "1h", "1h30m"; a bare "0" is allowed. Milliseconds. */
static int parse_duration(const char *s, int64_t *out) {
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    if (strcmp(s, "0") == 0) return *out = 0, 0;
    int64_t total = 0;
    do {
        uint64_t n;
        int rc = take_digits(&s, &n);
        if (rc < 0) return rc;
        size_t u = 0, ulen = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            size_t l = strlen(units[i].unit);
            /* longest match: "ms" before "m" */
            if (strncmp(s, units[i].unit, l) == 0 && l > ulen) u = i, ulen = l;
        }
        if (!ulen) return -1;
        s += ulen;
        if (n > (uint64_t)(INT64_MAX / units[u].ms)) return -2;
        int64_t part = (int64_t)n * units[u].ms;
        if (total > INT64_MAX - part) return -2;
        total += part;
    } while (*s);
    *out = total;
    return 0;
}

static int enum_has(const char *choices, const char *s) {
    size_t len = strlen(s);
    for (const char *p = choices; p;) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == len && strncmp(p, s, l) == 0) return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

/* "a|b|c" as "a, b, c" for messages. */
static void enum_list(const char *choices, char *buf, size_t len) {
    size_t o = 0;
    for (const char *p = choices; *p && o + 3 < len; p++) {
        if (*p == '|') {
            buf[o++] = ',';
            buf[o++] = ' ';
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
}

/* Keeps a copy of s alive as long as the config: stored in *owned. */
static char *own(const char *s, char ***owned, size_t *nowned) {
    char **grown = realloc(*owned, (*nowned + 1) * sizeof *grown);
    if (!grown) return NULL;
    *owned = grown;
    char *dup = strdup(s);
    if (dup) grown[(*nowned)++] = dup;
    return dup;
}

/* Relative paths are taken from base_dir (the INI file's folder). */
static char *own_path(const char *text, const char *base_dir, char ***owned, size_t *nowned) {
    if (!*text || text[0] == '/' || !base_dir || !*base_dir) return own(text, owned, nowned);
    while (text[0] == '.' && text[1] == '/') {
        text += 2;
        while (*text == '/') text++;
    }
    size_t blen = strlen(base_dir);
    while (blen > 1 && base_dir[blen - 1] == '/') blen--;
    char *joined;
    if (!*text || strcmp(text, ".") == 0) {
        if (asprintf(&joined, "%.*s", (int)blen, base_dir) < 0) return NULL;
    } else if (asprintf(&joined, "%.*s%s%s", (int)blen, base_dir, blen == 1 ? "" : "/", text) < 0) {
        return NULL;
    }
    char *kept = own(joined, owned, nowned);
    free(joined);
    return kept;
}

int sl_option_parse(const sl_option *opt, const char *text, const char *base_dir, void *config, char ***owned,
                    size_t *nowned, char *err, size_t errlen) {
    char shown[160];
    shown_value(opt, text, shown, sizeof shown);
    void *field = (char *)config + opt->offset;
    int rc = 0;
    switch (opt->type) {
    case SL_OPT_STRING:
    case SL_OPT_PATH:
    case SL_OPT_ENUM: {
        if (opt->type == SL_OPT_ENUM && !enum_has(opt->choices ? opt->choices : "", text)) {
            char list[256];
            enum_list(opt->choices ? opt->choices : "", list, sizeof list);
            snprintf(err, errlen, "%s is not one of: %s", shown, list);
            return SL_EFATAL;
        }
        const char *s =
            opt->type == SL_OPT_PATH ? own_path(text, base_dir, owned, nowned) : own(text, owned, nowned);
        if (!s) {
            snprintf(err, errlen, "out of memory");
            return SL_ENOMEM;
        }
        memcpy(field, &s, sizeof s);
        return 0;
    }
    case SL_OPT_INT: {
        int64_t v;
        if ((rc = parse_int64(text, &v)) == 0) memcpy(field, &v, sizeof v);
        break;
    }
    case SL_OPT_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(text, &end);
        if (!*text || isspace((unsigned char)*text) || *end)
            rc = -1;
        else if (!isfinite(v)) /* overflow gives HUGE_VAL; "inf" and "nan" are no config values */
            rc = -2;
        else
            memcpy(field, &v, sizeof v);
        break;
    }
    case SL_OPT_BOOL: {
        bool v;
        if ((rc = parse_bool(text, &v)) == 0) memcpy(field, &v, sizeof v);
        break;
    }
    case SL_OPT_SIZE: {
        uint64_t v;
        if ((rc = parse_size(text, &v)) == 0) memcpy(field, &v, sizeof v);
        break;
    }
    case SL_OPT_DURATION: {
        int64_t v;
        if ((rc = parse_duration(text, &v)) == 0) memcpy(field, &v, sizeof v);
        break;
    }
    default: snprintf(err, errlen, "type %d is not an option type", (int)opt->type); return SL_EFATAL;
    }
    if (rc == 0) return 0;
    const char *tname = sl_opt_type_name(opt->type);
    if (rc == -2)
        snprintf(err, errlen, "%s is out of range for a%s %s", shown, opt->type == SL_OPT_INT ? "n" : "",
                 tname);
    else if (opt->type == SL_OPT_INT)
        snprintf(err, errlen, "%s is not an int", shown);
    else if (opt->type == SL_OPT_DOUBLE)
        snprintf(err, errlen, "%s is not a number", shown);
    else if (opt->type == SL_OPT_BOOL)
        snprintf(err, errlen, "%s is not a bool (use true/false, yes/no, on/off or 1/0)", shown);
    else if (opt->type == SL_OPT_SIZE)
        snprintf(err, errlen, "%s is not a size (use 512, 64K, 10M or 2G)", shown);
    else
        snprintf(err, errlen, "%s is not a duration (use 250ms, 5s, 2m or 1h)", shown);
    return SL_EFATAL;
}

/* --- values to text --- */

int sl_option_format(const sl_option *opt, const void *config, char *buf, size_t buflen) {
    const void *field = (const char *)config + opt->offset;
    int n;
    switch (opt->type) {
    case SL_OPT_STRING:
    case SL_OPT_PATH:
    case SL_OPT_ENUM: {
        const char *s;
        memcpy(&s, field, sizeof s);
        n = snprintf(buf, buflen, "%s", s ? s : "");
        break;
    }
    case SL_OPT_INT: {
        int64_t v;
        memcpy(&v, field, sizeof v);
        n = snprintf(buf, buflen, "%" PRId64, v);
        break;
    }
    case SL_OPT_DOUBLE: {
        double v;
        memcpy(&v, field, sizeof v);
        n = snprintf(buf, buflen, "%.17g", v);
        break;
    }
    case SL_OPT_BOOL: {
        bool v;
        memcpy(&v, field, sizeof v);
        n = snprintf(buf, buflen, "%s", v ? "true" : "false");
        break;
    }
    case SL_OPT_SIZE: {
        uint64_t v;
        memcpy(&v, field, sizeof v);
        n = snprintf(buf, buflen, "%" PRIu64, v);
        break;
    }
    case SL_OPT_DURATION: {
        int64_t v;
        memcpy(&v, field, sizeof v);
        n = snprintf(buf, buflen, "%" PRId64 "ms", v);
        break;
    }
    default:
        if (buflen) buf[0] = '\0';
        return SL_EINVAL;
    }
    return n >= 0 && (size_t)n < buflen ? 0 : SL_EINVAL;
}

/* --- table checks --- */

static int name_ok(const char *name) {
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.') return 0;
    return 1;
}

static int check_choices(const char *choices) {
    if (!choices || !*choices) return 0;
    for (const char *p = choices; p;) {
        const char *bar = strchr(p, '|');
        if ((bar ? bar : p + strlen(p)) == p) return 0; /* an empty choice */
        p = bar ? bar + 1 : NULL;
    }
    return 1;
}

/* The default must parse as the option's type; tried on a scratch struct. */
static int check_default(const sl_option *opt, size_t config_size, char *err, size_t errlen) {
    void *scratch = calloc(1, config_size ? config_size : 1);
    if (!scratch) return snprintf(err, errlen, "out of memory"), SL_ENOMEM;
    char **owned = NULL;
    size_t nowned = 0;
    char why[256];
    int rc = sl_option_parse(opt, opt->def, NULL, scratch, &owned, &nowned, why, sizeof why);
    sl_options_free_owned(owned, nowned);
    free(scratch);
    if (rc < 0) snprintf(err, errlen, "option '%s': default %s", opt->name, why);
    return rc;
}

int sl_options_validate(const sl_option *table, size_t config_size, char *err, size_t errlen) {
    size_t n = sl_options_count(table);
    for (size_t i = 0; i < n; i++) {
        const sl_option *o = &table[i];
        if (!*o->name) return snprintf(err, errlen, "option #%zu: the name is empty", i + 1), SL_EFATAL;
        if (!name_ok(o->name))
            return snprintf(err, errlen, "option '%s': a name may use only letters, digits, '_', '-' and '.'",
                            o->name),
                   SL_EFATAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(table[j].name, o->name) == 0)
                return snprintf(err, errlen, "option '%s': declared twice", o->name), SL_EFATAL;
        const char *tname = sl_opt_type_name(o->type);
        if (!tname)
            return snprintf(err, errlen, "option '%s': type %d is not an option type", o->name, (int)o->type),
                   SL_EFATAL;
        size_t size = field_size(o->type);
        if (o->offset > config_size || size > config_size - o->offset)
            return snprintf(err, errlen,
                            "option '%s': offset %zu + %zu bytes is outside the %zu-byte config struct",
                            o->name, o->offset, size, config_size),
                   SL_EFATAL;
        if (o->offset % field_align(o->type))
            return snprintf(err, errlen, "option '%s': offset %zu is not aligned for a%s %s", o->name,
                            o->offset, o->type == SL_OPT_INT || o->type == SL_OPT_ENUM ? "n" : "", tname),
                   SL_EFATAL;
        if (o->type == SL_OPT_ENUM && !check_choices(o->choices))
            return snprintf(err, errlen, "option '%s': an enum needs choices such as \"a|b|c\"", o->name),
                   SL_EFATAL;
        if ((o->flags & SL_OPT_REQUIRED) && o->def)
            return snprintf(err, errlen, "option '%s': is required and has a default '%s' (pick one)",
                            o->name, o->def),
                   SL_EFATAL;
        if (o->def) {
            int rc = check_default(o, config_size, err, errlen);
            if (rc < 0) return rc;
        }
    }
    return 0;
}
