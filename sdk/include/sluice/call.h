/* sluice/call.h - what a plugin callback receives: calls, instances, errors, logs.
 *
 * One error convention everywhere: functions return 0 (or a count) on
 * success and a negative SL_E* code on failure; the message is kept on the
 * call or instance that was passed in. A failure says what kind it is, and
 * the core decides what follows: retry with backoff, fail this document and
 * go on, or stop the run. Messages must not contain secrets; the core also
 * scrubs every secret option value from whatever it prints, as a safety net.
 */
#ifndef SLUICE_CALL_H
#define SLUICE_CALL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque handles: plugins never see core structs. */
typedef struct sl_instance sl_instance; /* a configured plugin: one INI section */
typedef struct sl_call sl_call;         /* one callback invocation */

/* Return codes. */
#define SL_OK 0
#define SL_ERETRY (-1)        /* transient (timeout, 429, 5xx): the core retries with backoff */
#define SL_EBADINPUT (-2)     /* this document cannot be processed: it fails, the run goes on */
#define SL_EFATAL (-3)        /* configuration or environment is wrong: the run stops */
#define SL_ENOMEM (-4)        /* out of memory: the document fails */
#define SL_EINVAL (-5)        /* an SDK function was called with bad arguments */
#define SL_PENDING 0x40000000 /* io and cpu plugins: the call completes later via sl_call_done */

/* A short name for a code: "retryable", "bad input", "fatal", ... */
SL_EXPORT const char *sl_strerror(int code);

/* Records why the call failed and returns `code`, so `return sl_fail(...)`
 * reads naturally. The message should say what and where. */
SL_EXPORT
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int sl_fail(sl_call *call, int code, const char *fmt, ...);

/* For SL_ERETRY: the earliest the core should try again, in milliseconds. */
SL_EXPORT void sl_call_retry_after(sl_call *call, int64_t ms);

/* Completes a call that returned SL_PENDING, with the value the callback
 * would have returned. io plugins: on the loop thread, or on the pool thread
 * where an answer is decoded (sl_http_answer_on_pool). cpu plugins (ABI 1.2):
 * from any thread, e.g. a sink's own committer thread, once the work is
 * durable. The core brings the answer to the loop thread; the first call
 * counts and later ones are ignored. */
SL_EXPORT void sl_call_done(sl_call *call, int rc);

/* The instance state made by init, and for cpu plugins the per-thread state. */
SL_EXPORT void *sl_call_state(sl_call *call);
SL_EXPORT void *sl_call_thread_state(sl_call *call);
SL_EXPORT sl_instance *sl_call_instance(sl_call *call);
/* Embedders (ABI 1.4): 1 when the texts of this embed call are a search
 * query (`sluice query`, serve's /query), 0 when they are chunks being
 * stored. Models trained with prefixes (E5's "query: " / "passage: ")
 * embed the two differently. */
SL_EXPORT int sl_call_is_query(const sl_call *call);

/* The instance's INI section name, e.g. "embedder". */
SL_EXPORT const char *sl_instance_name(const sl_instance *inst);
/* Records why init failed and returns `code`. */
SL_EXPORT
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int sl_instance_fail(sl_instance *inst, int code, const char *fmt, ...);
/* Embedders declare, in init, the vector dimension they produce (required)
 * and the model they run (compared along fallback chains). */
SL_EXPORT void sl_instance_set_dimension(sl_instance *inst, uint32_t dim);
SL_EXPORT void sl_instance_set_model(sl_instance *inst, const char *model);
/* Another INI section's value of `key` (ABI 1.4), for a plugin that must
 * agree with a neighbour (chunk-text counts the tokens of the embedder
 * section it names). The value as written, interpolated; with `path`
 * nonzero, a relative path resolved against the INI file's folder. NULL
 * when the section or key is absent, or the instance was not built from an
 * INI file. The string lives as long as the instance; call it from init. */
SL_EXPORT const char *sl_instance_peer_value(sl_instance *inst, const char *section, const char *key,
                                             int path);

/* Tokens a call used (LLMs and remote embedders), for the run report's
 * usage and cost accounting; may be called more than once per call. (1.1) */
SL_EXPORT void sl_call_usage(sl_call *call, uint64_t input_tokens, uint64_t output_tokens);

/* An LLM's answer (1.1): the text is copied. It must be UTF-8: otherwise
 * nothing is kept, SL_EBADINPUT is returned, and the core fails the
 * document in the LLM's stage with the plugin's name and the byte offset,
 * whatever the plugin then returns. */
typedef struct sl_completion sl_completion;
SL_EXPORT int sl_completion_set(sl_completion *out, const char *text, size_t len);

typedef enum sl_log_level {
    SL_LOG_ERROR = 0,
    SL_LOG_WARN = 1,
    SL_LOG_INFO = 2,
    SL_LOG_DEBUG = 3
} sl_log_level;

/* Logs to stderr, prefixed with the instance name, at the user's -v/-q level.
 * inst may be NULL. Safe from any thread. */
SL_EXPORT
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void sl_log(const sl_instance *inst, sl_log_level level, const char *fmt, ...);

/* Utilities the core already has, shared so plugins need not copy them. */

/* 1 if [s, s+len) is valid UTF-8; else 0 and *bad_offset (if given) is the
 * byte offset of the first invalid sequence. */
SL_EXPORT int sl_utf8_valid(const char *s, size_t len, size_t *bad_offset);
/* A fast, well-distributed 64-bit hash (XXH3) of [p, p+len) with a seed. */
SL_EXPORT uint64_t sl_hash64(const void *p, size_t len, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
