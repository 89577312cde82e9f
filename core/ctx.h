/* ctx.h - the runtime context: one error convention, logging, secret scrubbing.
 *
 * Core functions return 0 (or a count) on success and a negative SL_E* code
 * on failure; the message is kept on the sl_ctx passed in and read with
 * sl_ctx_errmsg(). Every line sluice prints (logs, errors, reports) goes
 * through sl_ctx_scrub(), which replaces the value of every option declared
 * secret with "***": a plugin that echoes its API key still cannot leak it.
 */
#ifndef SL_CTX_H
#define SL_CTX_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/call.h"

typedef struct sl_ctx sl_ctx;

sl_ctx *sl_ctx_new(void);
void sl_ctx_free(sl_ctx *ctx);

/* Records an error and returns `code` (negative). Scrubbed on the way in. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int sl_ctx_error(sl_ctx *ctx, int code, const char *fmt, ...);
int sl_ctx_verror(sl_ctx *ctx, int code, const char *fmt, va_list ap);
const char *sl_ctx_errmsg(const sl_ctx *ctx); /* "" when none */
int sl_ctx_errcode(const sl_ctx *ctx);
void sl_ctx_clear_error(sl_ctx *ctx);

/* Secrets: values never to print. Thread-safe; values of length < 4 are
 * ignored (scrubbing "1" everywhere would only garble output). */
void sl_ctx_add_secret(sl_ctx *ctx, const char *value);
/* Copies `in` to `out` (size outlen, always NUL-terminated) with every secret
 * replaced by "***". Returns out. */
char *sl_ctx_scrub(const sl_ctx *ctx, const char *in, char *out, size_t outlen);

/* Log level: messages at or below it are printed (SL_LOG_WARN by default). */
void sl_ctx_set_log_level(sl_ctx *ctx, int level);
int sl_ctx_log_level(const sl_ctx *ctx);
/* Logs "sluice: [who: ]message" to stderr, scrubbed. Thread-safe. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
void sl_ctx_log(const sl_ctx *ctx, int level, const char *who, const char *fmt, ...);
void sl_ctx_vlog(const sl_ctx *ctx, int level, const char *who, const char *fmt, va_list ap);
/* The same about one document: "sluice: LEVEL: WHO: DOC: message", or in
 * JSON its "document" field. */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
void sl_ctx_log_doc(const sl_ctx *ctx, int level, const char *who, const char *doc, const char *fmt, ...);
void sl_ctx_vlog_doc(const sl_ctx *ctx, int level, const char *who, const char *doc, const char *fmt,
                     va_list ap);
/* --log-format json: every log line one JSON object {"time" (RFC 3339,
 * UTC), "level", "stage", "document", "message"}, scrubbed as ever. */
void sl_ctx_set_log_json(sl_ctx *ctx, int on);
int sl_ctx_log_json(const sl_ctx *ctx);

/* The process-wide context that sl_log() uses for plugins (set by the CLI). */
void sl_ctx_set_global(sl_ctx *ctx);
sl_ctx *sl_ctx_global(void);

/* Called around log output so the live progress line can be cleared and
 * redrawn; NULL to unset. */
void sl_ctx_set_log_hook(sl_ctx *ctx, void (*before)(void *), void (*after)(void *), void *arg);

/* Invariants worth their cost in every build: a broken one is a bug in
 * sluice, never bad input, so it stops the process saying where it broke. */
#define SL_INVARIANT(cond)                                                                                   \
    do {                                                                                                     \
        if (!(cond)) sl_invariant_failed(#cond, __FILE__, __LINE__);                                         \
    } while (0)
_Noreturn void sl_invariant_failed(const char *cond, const char *file, int line);

#endif
