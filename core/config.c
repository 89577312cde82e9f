/* config.c - INI files into sections of interpolated key = value entries.
 *
 * inih does the parsing, but through our own line reader (ini_parse_stream)
 * rather than ini_parse, for three reasons: we count lines ourselves, so
 * every entry and error knows its line whatever INI_HANDLER_LINENO the
 * installed inih was built with; we see section headers as they pass, so
 * empty sections ([parse-markdown] alone is a valid stage) keep their place
 * in file order; and the INI dialect stops depending on how inih was built:
 *
 *   - indentation means nothing: leading whitespace is dropped before inih
 *     sees a line, so there are no continuation lines and an indented key is
 *     just a key (Debian builds inih with multi-line values on, which would
 *     silently glue an indented "key = value" onto the previous value);
 *   - "; comment" after whitespace ends a line (`size = 1000  ; bytes`), and
 *     lines starting with ';' or '#' are comments;
 *   - a line longer than inih's buffer is an error here, where inih would
 *     split it and parse the tail as a line of its own;
 *   - a section may appear once and a key once per section: a repeated one
 *     is almost always a paste mistake that would otherwise win silently.
 *
 * Values are interpolated as they are read (see config.h), so every later
 * user sees final text and every interpolation error has its file and line.
 */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The state of one parse: the lines handed to inih and what they built. */
typedef struct parse {
    sl_ctx *ctx;
    sl_config *cfg;
    const char *text; /* the whole file */
    const char *next; /* start of the next line */
    int line;         /* line last handed to inih; 0 for --set */
    long cur;         /* index of the current section, -1 before the first */
    int err;          /* our own first error (code), which stops the reader */
    int err_line;
    char cwd[PATH_MAX];
} parse;

static int fail(parse *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(parse *p, int code, const char *fmt, ...) {
    char where[PATH_MAX + 32], msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sl_ctx_error(p->ctx, code, "%s: %s", sl_config_where(p->cfg, p->line, where, sizeof where), msg);
    p->err = code;
    p->err_line = p->line;
    return code;
}

/* --- sections and entries --- */

static sl_conf_section *add_section(sl_config *cfg, const char *name, size_t len, int line) {
    sl_conf_section *grown = realloc(cfg->sections, (cfg->nsections + 1) * sizeof *grown);
    if (!grown) return NULL;
    cfg->sections = grown;
    sl_conf_section *s = &grown[cfg->nsections];
    memset(s, 0, sizeof *s);
    if (!(s->name = strndup(name, len))) return NULL;
    s->line = line;
    cfg->nsections++;
    return s;
}

static sl_conf_kv *find_key(const sl_conf_section *s, const char *key) {
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->kv[i].key, key) == 0) return &s->kv[i];
    return NULL;
}

/* Takes ownership of value. */
static int add_kv(sl_conf_section *s, const char *key, char *value, int line) {
    sl_conf_kv *grown = realloc(s->kv, (s->n + 1) * sizeof *grown);
    char *k = strdup(key);
    if (!grown || !k) {
        if (grown) s->kv = grown;
        free(k);
        free(value);
        return SL_ENOMEM;
    }
    s->kv = grown;
    s->kv[s->n++] = (sl_conf_kv){.key = k, .value = value, .line = line, .used = 0};
    return 0;
}

/* --- interpolation --- */

static int is_name_char(char c, int first) {
    return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (!first && c >= '0' && c <= '9');
}

/* The built-ins win over the environment: ${CWD} must mean where sluice
 * started even when a shell exported something else under that name. */
static const char *lookup(const parse *p, const char *name) {
    if (strcmp(name, "CWD") == 0) return p->cwd;
    if (strcmp(name, "CONFIG_DIR") == 0) return p->cfg->dir;
    return getenv(name);
}

/* Expands [s, s+len) into out: ${VAR}, ${VAR:-default} (the default itself
 * expanded; used when VAR is unset or empty, as in the shell) and $$. A '$'
 * followed by anything else is kept as it is. */
static int expand(parse *p, const char *sec, const char *key, const char *s, size_t len, FILE *out) {
    const char *start = s, *end = s + len;
    while (s < end) {
        if (*s != '$' || s + 1 == end || (s[1] != '$' && s[1] != '{')) {
            fputc(*s++, out);
            continue;
        }
        if (s[1] == '$') {
            fputc('$', out);
            s += 2;
            continue;
        }
        /* ${ ... }: find the matching brace, stepping over nested ${ and $$ */
        const char *body = s + 2, *q = body;
        int depth = 1;
        while (q < end && depth) {
            if (q[0] == '$' && q + 1 < end && (q[1] == '{' || q[1] == '$')) {
                depth += q[1] == '{';
                q += 2;
            } else {
                depth -= *q++ == '}';
            }
        }
        if (depth) return fail(p, SL_EFATAL, "[%s] %s: unterminated ${ (close it with })", sec, key);
        const char *close = q - 1;
        const char *n = body;
        while (n < close && is_name_char(*n, n == body)) n++;
        int has_default = close - n >= 2 && n[0] == ':' && n[1] == '-';
        if (n == body || (n != close && !has_default))
            /* the reference is not quoted: the value around it may be a secret */
            return fail(p, SL_EFATAL,
                        "[%s] %s: bad variable reference at character %d of the value (write ${NAME} or "
                        "${NAME:-default}, NAME of letters, digits and _; the value is not shown)",
                        sec, key, (int)(s - start) + 1);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(n - body), body);
        const char *val = lookup(p, name);
        if (val && (*val || !has_default)) {
            fputs(val, out);
        } else if (has_default) {
            int rc = expand(p, sec, key, n + 2, (size_t)(close - (n + 2)), out);
            if (rc < 0) return rc;
        } else {
            return fail(p, SL_EFATAL,
                        "[%s] %s: environment variable %s is not set (write ${%s:-default} to give one)", sec,
                        key, name, name);
        }
        s = q;
    }
    return 0;
}

static int interpolate(parse *p, const char *sec, const char *key, const char *value, char **out) {
    size_t size;
    FILE *f = open_memstream(out, &size);
    if (!f) return fail(p, SL_ENOMEM, "out of memory");
    int rc = expand(p, sec, key, value, strlen(value), f);
    if (fclose(f) != 0 && rc == 0) rc = fail(p, SL_ENOMEM, "out of memory");
    if (rc < 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* --- the reader and handler inih calls --- */

/* Hands inih the next line, cleaned as the top comment says, and notes
 * section headers. Returns NULL at the end, or after an error of ours. */
static char *next_line(char *buf, int size, void *arg) {
    parse *p = arg;
    if (p->err || !*p->next) return NULL;
    const char *s = p->next, *eol = strchr(s, '\n');
    if (!eol) eol = s + strlen(s);
    p->next = *eol ? eol + 1 : eol;
    p->line++;

    while (s < eol && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\f' || *s == '\v')) s++;
    const char *e = s;
    if (*s != ';' && *s != '#') /* an inline comment needs whitespace before ';' */
        while (e < eol && !(*e == ';' && e > s && (e[-1] == ' ' || e[-1] == '\t'))) e++;
    else
        e = eol;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
    size_t len = (size_t)(e - s);
    if (len + 2 > (size_t)size) { /* room for the newline and the NUL */
        fail(p, SL_EFATAL, "line is longer than %d characters", size - 2);
        return NULL;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';

    const char *close = len && buf[0] == '[' ? strchr(buf, ']') : NULL;
    if (close) { /* a header without ']' is left for inih to call a syntax error */
        const char *n = buf + 1, *ne = close;
        while (n < ne && (*n == ' ' || *n == '\t')) n++;
        while (ne > n && (ne[-1] == ' ' || ne[-1] == '\t')) ne--;
        if (n == ne) {
            fail(p, SL_EFATAL, "empty section name []");
            return NULL;
        }
        for (size_t i = 0; i < p->cfg->nsections; i++) {
            const sl_conf_section *o = &p->cfg->sections[i];
            if (strlen(o->name) == (size_t)(ne - n) && strncmp(o->name, n, (size_t)(ne - n)) == 0) {
                fail(p, SL_EFATAL, "[%s] appears twice (first at line %d): merge the two", o->name, o->line);
                return NULL;
            }
        }
        if (!add_section(p->cfg, n, (size_t)(ne - n), p->line)) {
            fail(p, SL_ENOMEM, "out of memory");
            return NULL;
        }
        p->cur = (long)p->cfg->nsections - 1;
    }
    /* inih wants the newline to know the line is complete */
    buf[len] = '\n';
    buf[len + 1] = '\0';
    return buf;
}

/* inih's section argument is ignored: next_line has already made the
 * current section, with the name trimmed and the line recorded. */
static int on_entry(void *arg, const char *section, const char *name, const char *value) {
    parse *p = arg;
    if (p->err) return 1;
    if (!value) return 0; /* a key without '=' (INI_ALLOW_NO_VALUE builds): a syntax error */
    if (p->cur < 0) {
        fail(p, SL_EFATAL, "%s: this key is outside any section (put it under one, e.g. [sluice])", name);
        return 0;
    }
    sl_conf_section *sec = &p->cfg->sections[p->cur];
    if (!*name) {
        fail(p, SL_EFATAL, "[%s] a key is missing before '='", sec->name);
        return 0;
    }
    const sl_conf_kv *dup = find_key(sec, name);
    if (dup) {
        fail(p, SL_EFATAL, "[%s] %s: set twice in one section (first at line %d)", sec->name, name,
             dup->line);
        return 0;
    }
    char *v;
    if (interpolate(p, sec->name, name, value, &v) < 0) return 0;
    if (add_kv(sec, name, v, p->line) < 0) {
        fail(p, SL_ENOMEM, "out of memory");
        return 0;
    }
    return 1;
}

/* "FILE:LINE: syntax error (...): the line" for a line inih refused. */
static int syntax_error(parse *p, int line) {
    const char *s = p->text;
    for (int i = 1; i < line && s; i++) {
        s = strchr(s, '\n');
        if (s) s++;
    }
    if (!s) s = "";
    while (*s == ' ' || *s == '\t') s++;
    /* only the line's first word: the rest may be a secret missing its '=' */
    size_t len = *s == '[' ? strcspn(s, "\r\n") : strcspn(s, " \t:\r\n");
    const char *why = *s == '[' ? "a section header needs its closing ']'" : "expected 'key = value'";
    p->line = line;
    return fail(p, SL_EFATAL, "syntax error (%s): %.*s%s", why, len > 80 ? 80 : (int)len, s,
                len > 80 || s[len] == ' ' || s[len] == '\t' || s[len] == ':' ? "..." : "");
}

/* --- loading --- */

static void parse_init(parse *p, sl_ctx *ctx, sl_config *cfg) {
    memset(p, 0, sizeof *p);
    p->ctx = ctx;
    p->cfg = cfg;
    p->cur = -1;
    if (!getcwd(p->cwd, sizeof p->cwd)) p->cwd[0] = '\0';
}

int sl_config_load_string(sl_ctx *ctx, const char *name, const char *dir, const char *text, sl_config **out) {
    *out = NULL;
    sl_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) return sl_ctx_error(ctx, SL_ENOMEM, "%s: out of memory", name);
    parse p;
    parse_init(&p, ctx, cfg);
    cfg->path = strdup(name);
    cfg->dir = dir && dir[0] == '/' ? strdup(dir) : NULL;
    if (!cfg->dir && p.cwd[0]) { /* a relative dir is taken from where we run */
        if (dir && *dir && strcmp(dir, ".") != 0) {
            if (asprintf(&cfg->dir, "%s/%s", p.cwd, dir) < 0) cfg->dir = NULL;
        } else {
            cfg->dir = strdup(p.cwd);
        }
    }
    if (!cfg->path || !cfg->dir) {
        sl_config_free(cfg);
        return sl_ctx_error(ctx, SL_ENOMEM, "%s: out of memory", name);
    }

    if (strncmp(text, "\xEF\xBB\xBF", 3) == 0) text += 3; /* a UTF-8 byte order mark */
    p.text = p.next = text;
    int line = ini_parse_stream(next_line, &p, on_entry, &p);
    int rc = 0;
    if (line == -2)
        rc = sl_ctx_error(ctx, SL_ENOMEM, "%s: out of memory", name);
    else if (line > 0 && (!p.err || line < p.err_line))
        rc = syntax_error(&p, line); /* inih refused a line before any error of ours */
    else if (p.err)
        rc = p.err;
    if (rc < 0) {
        sl_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

/* The whole file in one NUL-terminated buffer. */
static int read_file(sl_ctx *ctx, const char *path, char **text) {
    FILE *f = fopen(path, "r");
    if (!f) return sl_ctx_error(ctx, SL_EFATAL, "%s: cannot open: %s", path, strerror(errno));
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len - 1, f);
        if (len + 1 < cap) break;
        char *grown = realloc(buf, cap *= 2);
        if (!grown) free(buf);
        buf = grown;
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (!buf) return sl_ctx_error(ctx, SL_ENOMEM, "%s: out of memory", path);
    if (err) {
        free(buf);
        return sl_ctx_error(ctx, SL_EFATAL, "%s: cannot read: %s", path, strerror(err));
    }
    buf[len] = '\0';
    *text = buf;
    return 0;
}

int sl_config_load(sl_ctx *ctx, const char *path, sl_config **out) {
    *out = NULL;
    char *text = NULL;
    int rc = read_file(ctx, path, &text);
    if (rc < 0) return rc;
    char *copy = strdup(path), dir[PATH_MAX];
    if (!copy) {
        free(text);
        return sl_ctx_error(ctx, SL_ENOMEM, "%s: out of memory", path);
    }
    if (!realpath(dirname(copy), dir)) {
        rc = sl_ctx_error(ctx, SL_EFATAL, "%s: cannot resolve its folder: %s", path, strerror(errno));
    } else {
        rc = sl_config_load_string(ctx, path, dir, text, out);
    }
    free(copy);
    free(text);
    return rc;
}

/* --- --set, lookups --- */

static void trim(const char **s, const char **e) {
    while (*s < *e && (**s == ' ' || **s == '\t')) (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t')) (*e)--;
}

int sl_config_set(sl_ctx *ctx, sl_config *cfg, const char *assignment) {
    const char *eq = strchr(assignment, '=');
    const char *dot = NULL;
    for (const char *q = assignment; eq && q < eq; q++)
        if (*q == '.') dot = q;
    const char *ss = assignment, *se = dot, *ks = dot ? dot + 1 : NULL, *ke = eq;
    if (dot) {
        trim(&ss, &se);
        trim(&ks, &ke);
    }
    if (!eq || !dot || ss == se || ks == ke) /* name only what comes before any value: it may be a secret */
        return sl_ctx_error(ctx, SL_EFATAL,
                            "--set '%.*s...': expected SECTION.KEY=VALUE (e.g. embedder.dimension=256)",
                            (int)strcspn(assignment, "=: \t"), assignment);
    char *sec_name = strndup(ss, (size_t)(se - ss)), *key = strndup(ks, (size_t)(ke - ks));
    const char *value = eq + 1;
    while (*value == ' ' || *value == '\t') value++;

    parse p;
    parse_init(&p, ctx, cfg);
    char *v = NULL;
    int rc = sec_name && key ? interpolate(&p, sec_name, key, value, &v) : SL_ENOMEM;
    sl_conf_section *sec = rc < 0 ? NULL : sl_config_section(cfg, sec_name);
    if (rc == 0 && !sec && !(sec = add_section(cfg, sec_name, strlen(sec_name), 0))) rc = SL_ENOMEM;
    if (rc == 0) {
        sl_conf_kv *kv = find_key(sec, key);
        if (kv) {
            free(kv->value);
            kv->value = v;
            kv->line = 0;
            kv->used = 0;
        } else {
            rc = add_kv(sec, key, v, 0);
        }
    } else {
        free(v);
    }
    if (rc == SL_ENOMEM) sl_ctx_error(ctx, rc, "--set '%s': out of memory", assignment);
    free(sec_name);
    free(key);
    return rc;
}

sl_conf_section *sl_config_section(const sl_config *cfg, const char *name) {
    for (size_t i = 0; cfg && i < cfg->nsections; i++)
        if (strcmp(cfg->sections[i].name, name) == 0) return &cfg->sections[i];
    return NULL;
}

sl_conf_kv *sl_config_get(const sl_config *cfg, const char *section, const char *key) {
    sl_conf_section *s = sl_config_section(cfg, section);
    sl_conf_kv *kv = s ? find_key(s, key) : NULL;
    if (kv) kv->used = 1;
    return kv;
}

const char *sl_config_where(const sl_config *cfg, int line, char *buf, size_t buflen) {
    const char *path = cfg && cfg->path ? cfg->path : "(config)";
    if (line > 0)
        snprintf(buf, buflen, "%s:%d", path, line);
    else
        snprintf(buf, buflen, "%s (--set)", path);
    return buf;
}

void sl_config_free(sl_config *cfg) {
    if (!cfg) return;
    for (size_t i = 0; i < cfg->nsections; i++) {
        sl_conf_section *s = &cfg->sections[i];
        for (size_t k = 0; k < s->n; k++) {
            free(s->kv[k].key);
            free(s->kv[k].value);
        }
        free(s->kv);
        free(s->name);
    }
    free(cfg->sections);
    free(cfg->path);
    free(cfg->dir);
    free(cfg);
}
