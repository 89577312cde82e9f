/* call.c - the SDK's call and instance functions: failures, retry hints,
 * io completion, state access, and sl_log for plugins. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "instance.h"
#include "sluice/io.h"

void sl_call_init(sl_call *call, sl_instance *inst, void *thread_state) {
    memset(call, 0, sizeof *call);
    call->inst = inst;
    call->thread_state = thread_state;
    call->retry_after_ms = -1;
}

int sl_fail(sl_call *call, int code, const char *fmt, ...) {
    if (!call) return code;
    char raw[sizeof call->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    call->code = code;
    sl_ctx_scrub(call->inst ? call->inst->ctx : sl_ctx_global(), raw, call->msg, sizeof call->msg);
    return code;
}

void sl_call_retry_after(sl_call *call, int64_t ms) {
    if (call) call->retry_after_ms = ms < 0 ? 0 : ms;
}

/* An answer given on another thread, delivered on the loop's. */
static void deliver(sl_post *post) {
    sl_call *call = (sl_call *)((char *)post - offsetof(sl_call, post));
    if (call->on_done) call->on_done(call, call->answer);
}

/* Once per call, whatever the thread: the first answer counts. On the loop
 * thread it is delivered at once; from a pool thread or a plugin's own
 * thread it is posted to the loop, where every caller's state lives. */
/* Answers that came when none was awaited, for the run report. */
static atomic_ullong late_answers, extra_answers;

void sl_call_answers_ignored(uint64_t *late, uint64_t *extra) {
    *late = atomic_load(&late_answers);
    *extra = atomic_load(&extra_answers);
}

/* A second answer, or one after the call's deadline: ignored, counted and
 * said. A second one is a plugin bug: an error in every build (debug builds
 * with SLUICE_STRICT_CALLS set in the environment also abort, so a
 * debugger stops there). */
static void answer_ignored(sl_call *call, int state) {
    const sl_instance *inst = call->inst;
    const char *name = inst ? inst->name : "?", *plugin = inst ? inst->desc->name : "?";
    if (state == SL_CALL_ABANDONED) {
        atomic_fetch_add(&late_answers, 1);
        sl_ctx_log(inst ? inst->ctx : sl_ctx_global(), SL_LOG_WARN, name,
                   "plugin %s answered a call after its deadline: the answer is ignored", plugin);
        return;
    }
    atomic_fetch_add(&extra_answers, 1);
    sl_ctx_log(inst ? inst->ctx : sl_ctx_global(), SL_LOG_ERROR, name,
               "plugin %s called sl_call_done on a call already answered (twice, or after returning its "
               "answer): the second answer is ignored; this is a bug in the plugin",
               plugin);
#ifndef NDEBUG
    if (getenv("SLUICE_STRICT_CALLS")) abort();
#endif
}

void sl_call_done(sl_call *call, int rc) {
    if (!call) return;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&call->done, &expected, 1)) {
        answer_ignored(call, expected);
        return;
    }
    if (call->loop && !sl_loop_is_current(call->loop)) {
        call->answer = rc;
        call->post.fn = deliver;
        sl_loop_post(call->loop, &call->post);
        return;
    }
    if (call->on_done) call->on_done(call, rc);
}

void *sl_call_state(sl_call *call) { return call && call->inst ? call->inst->state : NULL; }
void *sl_call_thread_state(sl_call *call) { return call ? call->thread_state : NULL; }
sl_instance *sl_call_instance(sl_call *call) { return call ? call->inst : NULL; }
int sl_call_is_query(const sl_call *call) { return call ? call->query : 0; }

const char *sl_instance_name(const sl_instance *inst) { return inst ? inst->name : ""; }

int sl_instance_store_mode(const sl_instance *inst) {
    return inst && inst->desc->role == SL_ROLE_SINK ? inst->store_mode : SL_STORE_WRITE;
}

int sl_instance_fail(sl_instance *inst, int code, const char *fmt, ...) {
    if (!inst) return code;
    char raw[sizeof inst->errmsg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    inst->errcode = code;
    sl_ctx_scrub(inst->ctx, raw, inst->errmsg, sizeof inst->errmsg);
    return code;
}

void sl_instance_set_dimension(sl_instance *inst, uint32_t dim) {
    if (inst) inst->dim = dim;
}

void sl_instance_set_model(sl_instance *inst, const char *model) {
    if (!inst || !model) return;
    char *m = strdup(model);
    if (!m) return;
    free(inst->model);
    inst->model = m;
}

void sl_log(const sl_instance *inst, sl_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_ctx_vlog(inst ? inst->ctx : sl_ctx_global(), (int)level, inst ? inst->name : NULL, fmt, ap);
    va_end(ap);
}

void sl_call_usage(sl_call *call, uint64_t input_tokens, uint64_t output_tokens) {
    if (!call) return;
    call->tokens_in += input_tokens;
    call->tokens_out += output_tokens;
}

int sl_completion_set(sl_completion *out, const char *text, size_t len) {
    if (!out || (!text && len)) return SL_EINVAL;
    size_t bad = 0;
    if (len && !sl_utf8_valid(text, len, &bad)) {
        out->bad = 1;
        out->bad_at = bad;
        return SL_EBADINPUT;
    }
    char *t = malloc(len + 1);
    if (!t) return SL_ENOMEM;
    if (len) memcpy(t, text, len);
    t[len] = '\0';
    free(out->text);
    out->text = t;
    out->len = len;
    out->bad = 0;
    return 0;
}

void sl_instance_set_concurrency(sl_instance *inst, uint32_t calls) {
    if (inst) inst->concurrency = calls;
}
