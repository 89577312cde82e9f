/* ctx.c - errors, logging and secret scrubbing (see ctx.h), plus the small
 * SDK utilities every plugin shares (sl_strerror, sl_log, sl_utf8_valid,
 * sl_hash64). */
#include "ctx.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#define CTX_MSG_MAX 2048

struct sl_ctx {
    int errcode;
    char errmsg[CTX_MSG_MAX];
    int log_level;
    int log_json;         /* --log-format json: one object per line */
    pthread_mutex_t lock; /* guards secrets and stderr writes */
    char **secrets;
    size_t nsecrets;
    void (*hook_before)(void *);
    void (*hook_after)(void *);
    void *hook_arg;
};

static sl_ctx *global_ctx;

sl_ctx *sl_ctx_new(void) {
    sl_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return NULL;
    ctx->log_level = SL_LOG_WARN;
    pthread_mutex_init(&ctx->lock, NULL);
    return ctx;
}

void sl_ctx_free(sl_ctx *ctx) {
    if (!ctx) return;
    for (size_t i = 0; i < ctx->nsecrets; i++) free(ctx->secrets[i]);
    free(ctx->secrets);
    pthread_mutex_destroy(&ctx->lock);
    if (global_ctx == ctx) global_ctx = NULL;
    free(ctx);
}

void sl_ctx_set_global(sl_ctx *ctx) { global_ctx = ctx; }
sl_ctx *sl_ctx_global(void) { return global_ctx; }

void sl_ctx_add_secret(sl_ctx *ctx, const char *value) {
    if (!ctx || !value || strlen(value) < 4) return;
    pthread_mutex_lock(&ctx->lock);
    for (size_t i = 0; i < ctx->nsecrets; i++)
        if (strcmp(ctx->secrets[i], value) == 0) goto out;
    char **n = realloc(ctx->secrets, (ctx->nsecrets + 1) * sizeof *n);
    if (n) {
        ctx->secrets = n;
        char *dup = strdup(value);
        if (dup) ctx->secrets[ctx->nsecrets++] = dup;
    }
out:
    pthread_mutex_unlock(&ctx->lock);
}

/* Caller holds ctx->lock (or ctx has no writers yet). */
static char *scrub_locked(const sl_ctx *ctx, const char *in, char *out, size_t outlen) {
    size_t o = 0;
    if (outlen == 0) return out;
    const char *p = in;
    while (*p && o + 1 < outlen) {
        size_t hit = 0;
        for (size_t i = 0; ctx && i < ctx->nsecrets; i++) {
            size_t l = strlen(ctx->secrets[i]);
            if (strncmp(p, ctx->secrets[i], l) == 0) {
                hit = l;
                break;
            }
        }
        if (hit) {
            for (const char *r = "***"; *r && o + 1 < outlen; r++) out[o++] = *r;
            p += hit;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    return out;
}

char *sl_ctx_scrub(const sl_ctx *ctx, const char *in, char *out, size_t outlen) {
    if (!ctx) {
        snprintf(out, outlen, "%s", in);
        return out;
    }
    pthread_mutex_lock((pthread_mutex_t *)&ctx->lock);
    scrub_locked(ctx, in, out, outlen);
    pthread_mutex_unlock((pthread_mutex_t *)&ctx->lock);
    return out;
}

int sl_ctx_verror(sl_ctx *ctx, int code, const char *fmt, va_list ap) {
    char raw[CTX_MSG_MAX];
    vsnprintf(raw, sizeof raw, fmt, ap);
    ctx->errcode = code;
    sl_ctx_scrub(ctx, raw, ctx->errmsg, sizeof ctx->errmsg);
    return code;
}

int sl_ctx_error(sl_ctx *ctx, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_ctx_verror(ctx, code, fmt, ap);
    va_end(ap);
    return code;
}

const char *sl_ctx_errmsg(const sl_ctx *ctx) { return ctx->errmsg; }
int sl_ctx_errcode(const sl_ctx *ctx) { return ctx->errcode; }
void sl_ctx_clear_error(sl_ctx *ctx) {
    ctx->errcode = 0;
    ctx->errmsg[0] = '\0';
}

void sl_ctx_set_log_level(sl_ctx *ctx, int level) { ctx->log_level = level; }
int sl_ctx_log_level(const sl_ctx *ctx) { return ctx ? ctx->log_level : SL_LOG_WARN; }

void sl_ctx_set_log_hook(sl_ctx *ctx, void (*before)(void *), void (*after)(void *), void *arg) {
    pthread_mutex_lock(&ctx->lock);
    ctx->hook_before = before;
    ctx->hook_after = after;
    ctx->hook_arg = arg;
    pthread_mutex_unlock(&ctx->lock);
}

static const char *level_name(int level) {
    switch (level) {
    case SL_LOG_ERROR: return "error";
    case SL_LOG_WARN: return "warning";
    case SL_LOG_INFO: return "info";
    default: return "debug";
    }
}

void sl_ctx_set_log_json(sl_ctx *ctx, int on) { ctx->log_json = on; }
int sl_ctx_log_json(const sl_ctx *ctx) { return ctx ? ctx->log_json : 0; }

/* One line of JSON: {"time", "level", "stage", "document", "message"},
 * every string already scrubbed; a stage or document not known is null.
 * jansson escapes what the text holds (an invalid UTF-8 path is dropped to
 * null rather than making the line unparseable). */
static void write_json_line(int level, const char *stage, const char *doc, const char *msg) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000);
    json_t *o = json_object();
    if (!o) return;
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "level", json_string(level_name(level)));
    json_t *st = stage && *stage ? json_string(stage) : NULL;
    json_object_set_new(o, "stage", st ? st : json_null());
    json_t *d = doc && *doc ? json_string(doc) : NULL;
    json_object_set_new(o, "document", d ? d : json_null());
    json_t *m = json_string(msg);
    json_object_set_new(o, "message", m ? m : json_string("(a message that is not valid UTF-8)"));
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (line) fprintf(stderr, "%s\n", line);
    free(line);
    json_decref(o);
}

void sl_ctx_vlog_doc(const sl_ctx *ctx, int level, const char *who, const char *doc, const char *fmt,
                     va_list ap) {
    if (level > sl_ctx_log_level(ctx)) return;
    char raw[CTX_MSG_MAX], clean[CTX_MSG_MAX], cdoc[CTX_MSG_MAX] = "", cwho[256] = "";
    vsnprintf(raw, sizeof raw, fmt, ap);
    if (ctx) pthread_mutex_lock((pthread_mutex_t *)&ctx->lock);
    scrub_locked(ctx, raw, clean, sizeof clean);
    if (doc) scrub_locked(ctx, doc, cdoc, sizeof cdoc);
    if (who) scrub_locked(ctx, who, cwho, sizeof cwho);
    if (ctx && ctx->hook_before) ctx->hook_before(ctx->hook_arg);
    if (ctx && ctx->log_json)
        write_json_line(level, cwho, cdoc, clean);
    else if (*cwho && *cdoc)
        fprintf(stderr, "sluice: %s: %s: %s: %s\n", level_name(level), cwho, cdoc, clean);
    else if (*cwho || *cdoc)
        fprintf(stderr, "sluice: %s: %s: %s\n", level_name(level), *cwho ? cwho : cdoc, clean);
    else
        fprintf(stderr, "sluice: %s: %s\n", level_name(level), clean);
    if (ctx && ctx->hook_after) ctx->hook_after(ctx->hook_arg);
    if (ctx) pthread_mutex_unlock((pthread_mutex_t *)&ctx->lock);
}

void sl_ctx_log_doc(const sl_ctx *ctx, int level, const char *who, const char *doc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_ctx_vlog_doc(ctx, level, who, doc, fmt, ap);
    va_end(ap);
}

void sl_ctx_vlog(const sl_ctx *ctx, int level, const char *who, const char *fmt, va_list ap) {
    sl_ctx_vlog_doc(ctx, level, who, NULL, fmt, ap);
}

void sl_ctx_log(const sl_ctx *ctx, int level, const char *who, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_ctx_vlog(ctx, level, who, fmt, ap);
    va_end(ap);
}

/* --- SDK utilities --- */

const char *sl_strerror(int code) {
    switch (code) {
    case SL_OK: return "ok";
    case SL_ERETRY: return "retryable";
    case SL_EBADINPUT: return "bad input";
    case SL_EFATAL: return "fatal";
    case SL_ENOMEM: return "out of memory";
    case SL_EINVAL: return "invalid argument";
    case SL_PENDING: return "pending";
    default: {
        /* the code itself, so a plugin's stray -77 can be found in its source */
        static _Thread_local char unknown[40];
        snprintf(unknown, sizeof unknown, "unknown error (%d)", code);
        return unknown;
    }
    }
}

int sl_utf8_valid(const char *s, size_t len, size_t *bad_offset) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint64_t x; /* ASCII runs 8 bytes at a time: most text is */
        while (len - i >= 8 && (memcpy(&x, p + i, 8), (x & 0x8080808080808080u) == 0)) i += 8;
        if (i == len) break;
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned min;
        if ((c & 0xE0) == 0xC0)
            n = 1, min = 0x80, c &= 0x1F;
        else if ((c & 0xF0) == 0xE0)
            n = 2, min = 0x800, c &= 0x0F;
        else if ((c & 0xF8) == 0xF0)
            n = 3, min = 0x10000, c &= 0x07;
        else
            goto bad;
        if (len - i <= n) goto bad;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80) goto bad;
            c = (c << 6) | (p[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) goto bad;
        i += n + 1;
    }
    return 1;
bad:
    if (bad_offset) *bad_offset = i;
    return 0;
}

uint64_t sl_hash64(const void *p, size_t len, uint64_t seed) { return XXH3_64bits_withSeed(p, len, seed); }

_Noreturn void sl_invariant_failed(const char *cond, const char *file, int line) {
    fprintf(stderr,
            "sluice: internal error: %s:%d: invariant '%s' broken (a bug in sluice: please report it)\n",
            file, line, cond);
    abort();
}
