/* instance.c - a plugin configured from one INI section, and its lifecycle.
 *
 * Building an instance is where the user's text meets the plugin's option
 * table: defaults first, then the section's keys in file order, each either
 * the core's own stage setting (sl_stage_options), the `plugin` key, or an
 * option the plugin declares. Anything else is a typo and an error that
 * lists what the plugin does know, with the closest name when one is near.
 *
 * Secrets are registered with the context before their value is parsed, so
 * even an error about the value itself prints "***"; the parse errors of
 * secret options also leave the value out (options.c).
 *
 * The canonical text (inst->canon) is what the pipeline hashes into the
 * fingerprint: the plugin and its version, then every option that changes
 * the output, in table order and in canonical form ("64K" and "65536" are
 * the same setting and give the same fingerprint).
 */
#include "instance.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guard.h"
#include "http_request.h"
#include "options.h"

static const sl_option stage_options[] = {
    {.name = "max_concurrency",
     .type = SL_OPT_INT,
     .def = "0",
     .help = "most calls of this stage in flight at once; 0: derived from the plugin and executor",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sl_stage_conf, max_concurrency)},
    {.name = "batch_size",
     .type = SL_OPT_INT,
     .def = "0",
     .help = "embedders: texts per call; 0: the plugin's preference, else 64",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sl_stage_conf, batch_size)},
    {.name = "batch_delay",
     .type = SL_OPT_DURATION,
     .def = "20ms",
     .help = "embedders: the longest wait to fill a batch",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sl_stage_conf, batch_delay_ms)},
    {.name = "isolated",
     .type = SL_OPT_BOOL,
     .def = "false",
     .help = "cpu stages: run in worker processes (untrusted input, crash-prone libraries)",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sl_stage_conf, isolated)},
    {.name = "call_timeout",
     .type = SL_OPT_DURATION,
     .def = "0",
     .help = "isolated stages: a worker busy longer on one call is killed and the document fails "
             "(0: [sluice] worker_timeout); io stages: a call not answered by then fails its document "
             "(0: [sluice] call_deadline); refused on stages that run on the thread pool",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sl_stage_conf, timeout_ms)},
    {.name = "rpm",
     .type = SL_OPT_INT,
     .def = "0",
     .help = "io stages: requests per minute the provider allows; 0: no limit",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sl_stage_conf, rpm)},
    {.name = "tpm",
     .type = SL_OPT_INT,
     .def = "0",
     .help = "io stages: tokens per minute the provider allows; 0: no limit",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sl_stage_conf, tpm)},
    {.name = "fallback",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "io stages: sections that take the work, in order, when this provider is down or over its limit",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sl_stage_conf, fallback)},
    {.name = "breaker_failures",
     .type = SL_OPT_INT,
     .def = "5",
     .help = "io stages: consecutive failures after which the provider is left alone for a while",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sl_stage_conf, breaker_failures)},
    {.name = "breaker_cooldown",
     .type = SL_OPT_DURATION,
     .def = "30s",
     .help = "io stages: how long an open circuit stays open",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sl_stage_conf, breaker_cooldown_ms)},
    {.name = "price_input",
     .type = SL_OPT_DOUBLE,
     .def = "0",
     .help = "price per million input tokens, for the report's cost",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sl_stage_conf, price_input)},
    {.name = "price_output",
     .type = SL_OPT_DOUBLE,
     .def = "0",
     .help = "price per million output tokens, for the report's cost",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sl_stage_conf, price_output)},
    {.name = "summaries",
     .type = SL_OPT_ENUM,
     .def = "document",
     .help = "llm stages: what to summarise",
     .choices = "none|document|chunks|both",
     .offset = offsetof(sl_stage_conf, summaries)},
    {.name = "document_prompt",
     .type = SL_OPT_STRING,
     .def = "Summarise this document in three sentences.\nTitle: {title}\nSource: {source}\n\n{text}",
     .help = "llm stages: prompt for a document summary; {title} {source} {text} are filled in",
     .offset = offsetof(sl_stage_conf, document_prompt)},
    {.name = "chunk_prompt",
     .type = SL_OPT_STRING,
     .def = "Summarise this passage in one sentence.\nDocument: {title}\nSection: {heading}\n\n{text}",
     .help = "llm stages: prompt for a chunk summary; {title} {source} {heading} {text} are filled in",
     .offset = offsetof(sl_stage_conf, chunk_prompt)},
    {.name = "max_input_chars",
     .type = SL_OPT_INT,
     .def = "24000",
     .help = "llm stages: longer documents are summarised in parts, then as a whole",
     .offset = offsetof(sl_stage_conf, max_input_chars)},
    {.name = "embed_summaries",
     .type = SL_OPT_BOOL,
     .def = "false",
     .help = "llm stages: embed each chunk's summary together with its text",
     .offset = offsetof(sl_stage_conf, embed_summaries)},
    {.name = "fallback_after",
     .type = SL_OPT_DURATION,
     .def = "30s",
     .help = "io stages with a fallback: how long a call waits for this provider's limits (rpm, tpm, "
             "concurrency, a 429) before a fallback with room takes it; a provider that is down passes "
             "its work on at once",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sl_stage_conf, fallback_after_ms)},
    {.name = "shared_limits",
     .type = SL_OPT_BOOL,
     .def = "false",
     .help = "io stages: rpm and tpm are the account's, shared with every sluice process using it: draw them "
             "from a token bucket kept in the route's store (a sink with limit_grant: sink-postgres)",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sl_stage_conf, shared_limits)},
    {.name = "limit_name",
     .type = SL_OPT_STRING,
     .def = "",
     .help = "io stages with shared_limits: the shared bucket's name (letters, digits and .:_/-, at most "
             "120); empty: derived from the plugin, base_url, model and a hash of the key",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sl_stage_conf, limit_name)},
    {.name = "ca_file",
     .type = SL_OPT_PATH,
     .def = "",
     .help = "io stages: a PEM file of CA certificates to trust for https besides the system's (a private "
             "CA in front of a local model server); empty: the system's alone",
     .flags = SL_OPT_NO_FINGERPRINT,
     .offset = offsetof(sl_stage_conf, ca_file)},
    {.name = NULL},
};

const sl_option *sl_stage_options(void) { return stage_options; }

bool sl_stage_option_applies(const sl_option *o, const sl_plugin *d) {
    static const char *const io_only[] = {"rpm",         "ca_file",          "tpm",
                                          "fallback",    "breaker_failures", "breaker_cooldown",
                                          "price_input", "price_output",     "fallback_after",
                                          NULL};
    if (strcmp(o->name, "shared_limits") == 0 || strcmp(o->name, "limit_name") == 0)
        return d->bottleneck == SL_IO;
    static const char *const llm_only[] = {"summaries",       "document_prompt", "chunk_prompt",
                                           "max_input_chars", "embed_summaries", NULL};
    for (size_t i = 0; io_only[i]; i++)
        if (strcmp(o->name, io_only[i]) == 0) return d->bottleneck == SL_IO;
    for (size_t i = 0; llm_only[i]; i++)
        if (strcmp(o->name, llm_only[i]) == 0) return d->role == SL_ROLE_LLM;
    if (strcmp(o->name, "batch_size") == 0 || strcmp(o->name, "batch_delay") == 0)
        return d->role == SL_ROLE_EMBEDDER;
    if (strcmp(o->name, "isolated") == 0) return d->bottleneck == SL_CPU || d->bottleneck == SL_ISOLATED;
    if (strcmp(o->name, "call_timeout") == 0) return d->bottleneck != SL_GPU;
    return true;
}

static const sl_option *find_option(const sl_option *table, const char *name) {
    for (size_t i = 0; table && table[i].name; i++)
        if (strcmp(table[i].name, name) == 0) return &table[i];
    return NULL;
}

/* --- building --- */

/* What one build needs besides the instance: where values come from. */
typedef struct build {
    sl_ctx *ctx;
    sl_instance *inst;
    const char *base_dir; /* for relative paths */
    unsigned char *given; /* per plugin option: set by the section */
} build;

static sl_instance *instance_alloc(sl_ctx *ctx, const sl_loaded *plugin, const char *name) {
    sl_instance *inst = calloc(1, sizeof *inst);
    if (!inst) return NULL;
    inst->ctx = ctx;
    inst->plugin = plugin;
    inst->desc = &plugin->desc;
    inst->name = strdup(name);
    inst->config = calloc(1, plugin->desc.config_size ? plugin->desc.config_size : 1);
    if (!inst->name || !inst->config) {
        sl_instance_free(inst);
        return NULL;
    }
    return inst;
}

/* The loader validated every default, so a failure here is out of memory. */
static int apply_defaults(build *b) {
    sl_instance *inst = b->inst;
    char err[256];
    for (const sl_option *o = stage_options; o->name; o++)
        if (sl_option_parse(o, o->def, NULL, &inst->stage, &inst->owned, &inst->nowned, err, sizeof err) < 0)
            return sl_ctx_error(b->ctx, SL_ENOMEM, "[%s] %s: %s", inst->name, o->name, err);
    for (const sl_option *o = inst->desc->options; o && o->name; o++) {
        if (!o->def) continue;
        if (sl_option_parse(o, o->def, b->base_dir, inst->config, &inst->owned, &inst->nowned, err,
                            sizeof err) < 0)
            return sl_ctx_error(b->ctx, SL_ENOMEM, "[%s] %s: %s", inst->name, o->name, err);
    }
    return 0;
}

/* Edit distance, for "did you mean". Names longer than 63 are not compared. */
static size_t distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b), row[64];
    if (la > 63 || lb > 63) return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static void consider(const char *key, const char *name, const char **best, size_t *bestd) {
    size_t d = distance(key, name);
    if (d < *bestd) *bestd = d, *best = name;
}

/* Appends to a fixed buffer, silently cutting at its end. */
static void append(char *buf, size_t size, size_t *used, const char *fmt, const char *s) {
    if (*used + 1 >= size) return;
    int n = snprintf(buf + *used, size - *used, fmt, s);
    if (n > 0) *used = *used + (size_t)n < size ? *used + (size_t)n : size - 1;
}

static int unknown_key(build *b, const char *where, const char *key) {
    const sl_instance *inst = b->inst;
    char known[1024] = "";
    size_t used = 0;
    const char *best = NULL;
    size_t bestd = SIZE_MAX;
    for (const sl_option *opt = inst->desc->options; opt && opt->name; opt++) {
        append(known, sizeof known, &used, "%s, ", opt->name);
        consider(key, opt->name, &best, &bestd);
    }
    append(known, sizeof known, &used, "%s", "and the core's: plugin");
    consider(key, "plugin", &best, &bestd);
    /* only the core's settings that apply to this plugin's role and bottleneck */
    for (const sl_option *opt = stage_options; opt->name; opt++) {
        if (!sl_stage_option_applies(opt, inst->desc)) continue;
        append(known, sizeof known, &used, ", %s", opt->name);
        consider(key, opt->name, &best, &bestd);
    }
    size_t len = strlen(key), near = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    char hint[128] = "";
    if (best && bestd <= near) snprintf(hint, sizeof hint, "; did you mean '%s'?", best);
    return sl_ctx_error(b->ctx, SL_EFATAL, "%s[%s] %s: unknown option for plugin %s%s (known: %s)", where,
                        inst->name, key, inst->desc->name, hint, known);
}

/* One key = value of the section (or of the overrides). `where` is the
 * message prefix: "FILE:LINE: " or "". */
static int apply(build *b, const char *where, const char *key, const char *value) {
    sl_instance *inst = b->inst;
    const sl_option *opt = find_option(stage_options, key);
    void *target = &inst->stage;
    if (!opt) {
        opt = find_option(inst->desc->options, key);
        target = inst->config;
        if (!opt) return unknown_key(b, where, key);
        b->given[opt - inst->desc->options] = *value != '\0';
        if (opt->flags & SL_OPT_SECRET) sl_ctx_add_secret(b->ctx, value);
    }
    char err[512];
    int rc = sl_option_parse(opt, value, b->base_dir, target, &inst->owned, &inst->nowned, err, sizeof err);
    if (rc < 0) return sl_ctx_error(b->ctx, rc, "%s[%s] %s: %s", where, inst->name, key, err);
    if (target == &inst->stage && opt->type == SL_OPT_INT) {
        /* the core's stage options have ranges: every size computed from
         * one (a batch of batch_size vectors, say) then stays in bounds */
        static const struct {
            const char *name;
            int64_t max;
        } bounds[] = {{"max_concurrency", 1000000},
                      {"batch_size", 65536},
                      {"rpm", 1000000000},
                      {"tpm", INT64_C(1000000000000)},
                      {"breaker_failures", 1000000}};
        int64_t v, max = INT64_MAX;
        memcpy(&v, (char *)target + opt->offset, sizeof v);
        for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
            if (strcmp(bounds[i].name, key) == 0) max = bounds[i].max;
        if (v < 0 || v > max)
            return sl_ctx_error(b->ctx, SL_EFATAL, "%s[%s] %s: %lld is out of range (0 to %lld)", where,
                                inst->name, key, (long long)v, (long long)max);
    }
    return 0;
}

static int check_required(build *b, const char *where) {
    const sl_instance *inst = b->inst;
    for (size_t i = 0; inst->desc->options && inst->desc->options[i].name; i++) {
        const sl_option *o = &inst->desc->options[i];
        if ((o->flags & SL_OPT_REQUIRED) && !b->given[i])
            return sl_ctx_error(b->ctx, SL_EFATAL,
                                "%s[%s] %s: required by plugin %s; set it in the file, or with --set "
                                "%s.%s=VALUE%s%s%s",
                                where, inst->name, o->name, inst->desc->name, inst->name, o->name,
                                o->help && *o->help ? " (" : "", o->help ? o->help : "",
                                o->help && *o->help ? ")" : "");
    }
    return 0;
}

/* Secret strings as the plugin will see them (a default, a joined path). */
static void register_secrets(build *b) {
    const sl_instance *inst = b->inst;
    for (const sl_option *o = inst->desc->options; o && o->name; o++) {
        if (!(o->flags & SL_OPT_SECRET)) continue;
        if (o->type != SL_OPT_STRING && o->type != SL_OPT_PATH && o->type != SL_OPT_ENUM) continue;
        const char *s;
        memcpy(&s, (const char *)inst->config + o->offset, sizeof s);
        if (s) sl_ctx_add_secret(b->ctx, s);
    }
}

static int make_canon(build *b) {
    sl_instance *inst = b->inst;
    size_t size, buflen = 128;
    char *buf = malloc(buflen);
    FILE *f = open_memstream(&inst->canon, &size);
    if (!f || !buf) {
        if (f) fclose(f);
        free(buf);
        return sl_ctx_error(b->ctx, SL_ENOMEM, "[%s] out of memory", inst->name);
    }
    fprintf(f, "%s@%s\n", inst->desc->name, inst->desc->version);
    for (const sl_option *o = inst->desc->options; o && o->name && buf; o++) {
        if (o->flags & (SL_OPT_SECRET | SL_OPT_NO_FINGERPRINT)) continue;
        while (buf && sl_option_format(o, inst->config, buf, buflen) < 0) {
            char *grown = realloc(buf, buflen *= 2);
            if (!grown) free(buf);
            buf = grown;
        }
        if (buf) fprintf(f, "%s=%s\n", o->name, buf);
    }
    int bad = fclose(f) != 0 || !buf;
    free(buf);
    if (bad) return sl_ctx_error(b->ctx, SL_ENOMEM, "[%s] out of memory", inst->name);
    return 0;
}

/* Everything after the values are in: required, secrets, canon. */
static int finish(build *b, const char *where) {
    int rc = check_required(b, where);
    if (rc < 0) return rc;
    register_secrets(b);
    return make_canon(b);
}

static int start(build *b, sl_ctx *ctx, const sl_loaded *plugin, const char *name, const char *base_dir) {
    memset(b, 0, sizeof *b);
    b->ctx = ctx;
    b->base_dir = base_dir;
    b->inst = instance_alloc(ctx, plugin, name);
    b->given = calloc(sl_options_count(plugin->desc.options) + 1, 1);
    if (!b->inst || !b->given) return sl_ctx_error(ctx, SL_ENOMEM, "[%s] out of memory", name);
    return apply_defaults(b);
}

/* Hands the instance over on success, frees it otherwise. */
static int end(build *b, int rc, sl_instance **out) {
    free(b->given);
    if (rc < 0) {
        sl_instance_free(b->inst);
        return rc;
    }
    *out = b->inst;
    return 0;
}

int sl_instance_new(sl_ctx *ctx, sl_registry *reg, const sl_config *cfg, const char *section,
                    sl_instance **out) {
    *out = NULL;
    sl_conf_section *sec = sl_config_section(cfg, section);
    if (!sec) return sl_ctx_error(ctx, SL_EFATAL, "%s: there is no section [%s]", cfg->path, section);
    sl_conf_kv *pk = sl_config_get(cfg, section, "plugin");
    const char *pname = pk ? pk->value : sec->name;
    char where[PATH_MAX + 64], path[PATH_MAX];
    snprintf(where, sizeof where, "%s: ", sl_config_where(cfg, pk ? pk->line : sec->line, path, sizeof path));

    /* `plugin = ./mine/x.so`: a path, taken from the INI file's folder */
    if (strchr(pname, '/') && pname[0] != '/') {
        snprintf(path, sizeof path, "%s/%s", cfg->dir, pname);
        pname = path;
    }
    const sl_loaded *plugin;
    int rc = sl_registry_find(ctx, reg, pname, &plugin);
    if (rc < 0) {
        char why[2048];
        snprintf(why, sizeof why, "%s", sl_ctx_errmsg(ctx));
        return sl_ctx_error(ctx, rc, "%s[%s] %s%s", where, sec->name, pk ? "plugin: " : "", why);
    }

    build b;
    rc = start(&b, ctx, plugin, sec->name, cfg->dir);
    for (size_t i = 0; rc == 0 && i < sec->n; i++) {
        sl_conf_kv *kv = &sec->kv[i];
        if (kv == pk) continue;
        kv->used = 1;
        char at[PATH_MAX + 64];
        snprintf(at, sizeof at, "%s: ", sl_config_where(cfg, kv->line, path, sizeof path));
        rc = apply(&b, at, kv->key, kv->value);
    }
    if (rc == 0) {
        snprintf(where, sizeof where, "%s: ", sl_config_where(cfg, sec->line, path, sizeof path));
        rc = finish(&b, where);
    }
    rc = end(&b, rc, out);
    if (rc == 0) (*out)->cfg = cfg; /* sl_instance_peer_value reads its neighbours */
    return rc;
}

const char *sl_instance_peer_value(sl_instance *inst, const char *section, const char *key, int path) {
    if (!inst || !inst->cfg || !section || !key) return NULL;
    sl_conf_section *sec = sl_config_section(inst->cfg, section);
    for (size_t i = 0; sec && i < sec->n; i++) {
        if (strcmp(sec->kv[i].key, key) != 0) continue;
        static const sl_option as_path = {.type = SL_OPT_PATH}, as_string = {.type = SL_OPT_STRING};
        const char *value = NULL;
        char err[256];
        if (sl_option_parse(path ? &as_path : &as_string, sec->kv[i].value, inst->cfg->dir, &value,
                            &inst->owned, &inst->nowned, err, sizeof err))
            return NULL;
        return value; /* owned by the instance */
    }
    return NULL;
}

static void trim(const char **s, const char **e) {
    while (*s < *e && (**s == ' ' || **s == '\t')) (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t')) (*e)--;
}

int sl_instance_new_defaults(sl_ctx *ctx, const sl_loaded *plugin, const char *name,
                             const char *const *overrides, size_t noverrides, sl_instance **out) {
    *out = NULL;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = '\0';
    build b;
    int rc = start(&b, ctx, plugin, name ? name : plugin->desc.name, cwd[0] ? cwd : NULL);
    for (size_t i = 0; rc == 0 && i < noverrides; i++) {
        const char *eq = strchr(overrides[i], '=');
        if (!eq) {
            rc = sl_ctx_error(ctx, SL_EFATAL, "[%s] '%s': expected KEY=VALUE", b.inst->name, overrides[i]);
            break;
        }
        /* spaces around key and value, as the INI reader drops them */
        const char *ks = overrides[i], *ke = eq, *vs = eq + 1, *ve = eq + strlen(eq);
        trim(&ks, &ke);
        trim(&vs, &ve);
        char *key = strndup(ks, (size_t)(ke - ks)), *value = strndup(vs, (size_t)(ve - vs));
        rc = key && value ? apply(&b, "", key, value)
                          : sl_ctx_error(ctx, SL_ENOMEM, "[%s] out of memory", b.inst->name);
        free(key);
        free(value);
    }
    if (rc == 0) rc = finish(&b, "");
    return end(&b, rc, out);
}

/* --- lifecycle --- */

/* ca_file, when set: a readable file with a PEM certificate in it, said
 * before the first request fails with TLS's vaguer words. */
static int check_ca_file(sl_ctx *ctx, const sl_instance *inst) {
    char err[600];
    if (sl_http_ca_file_check(inst->stage.ca_file, err, sizeof err))
        return sl_ctx_error(ctx, SL_EFATAL, "[%s] ca_file: %s", inst->name, err);
    return 0;
}

int sl_instance_init(sl_ctx *ctx, sl_instance *inst) {
    if (inst->initialized) return 0;
    const sl_plugin *d = inst->desc;
    inst->errcode = 0;
    inst->errmsg[0] = '\0';
    int crc = check_ca_file(ctx, inst);
    if (crc) return crc;
    if (d->init) {
        void *state = NULL;
        sl_guard_call gc;
        sl_guard_enter_callback(&gc, inst, "init");
        int rc = d->init(inst, inst->config, &state);
        sl_guard_leave(&gc);
        if (rc != 0) { /* a positive return (SL_PENDING) is no answer for init */
            int code = rc < 0 ? rc : SL_EFATAL;
            return sl_ctx_error(ctx, code, "[%s] init failed: %s", inst->name,
                                inst->errmsg[0] ? inst->errmsg : sl_strerror(code));
        }
        inst->state = state;
    }
    inst->initialized = 1; /* from here on, fini runs in sl_instance_free */
    if (d->role == SL_ROLE_EMBEDDER && inst->dim == 0)
        return sl_ctx_error(
            ctx, SL_EFATAL,
            "[%s] plugin %s declared no vector dimension (call sl_instance_set_dimension in init)",
            inst->name, d->name);
    return 0;
}

void sl_instance_free(sl_instance *inst) {
    if (!inst) return;
    if (inst->initialized && inst->desc->fini) inst->desc->fini(inst->state);
    sl_options_free_owned(inst->owned, inst->nowned);
    free(inst->config);
    free(inst->model);
    free(inst->canon);
    free(inst->fallbacks);
    free(inst->name);
    free(inst);
}
