/* loop.h - the loop thread: one libuv loop that owns all pipeline state.
 *
 * Every other executor (the thread pool now; worker processes and the GPU
 * batcher later) takes work from the loop and hands results back with
 * sl_loop_post, the only thread-safe entry point: it queues a callback and
 * wakes the loop with a uv_async, and the callback then runs on the loop
 * thread. Nothing else in the pipeline needs a lock.
 */
#ifndef SL_LOOP_H
#define SL_LOOP_H

#include <uv.h>

typedef struct sl_post sl_post;
/* Intrusive: embed an sl_post in your own struct and recover it in fn. */
struct sl_post {
    sl_post *next;
    void (*fn)(sl_post *post);
};

typedef struct sl_loop sl_loop;

int sl_loop_new(sl_loop **out);
uv_loop_t *sl_loop_uv(sl_loop *loop);
/* Thread-safe: runs post->fn(post) on the loop thread, in posting order. */
void sl_loop_post(sl_loop *loop, sl_post *post);
/* Whether the calling thread is the loop's (the one that made it and runs
 * it). sl_call_done uses it to hand answers from other threads back. */
int sl_loop_is_current(const sl_loop *loop);
/* Holds the loop open while an answer is awaited from another thread
 * (sl_invoke's wait for a cpu plugin that answered SL_PENDING): on > 0
 * references the hand-off handle, 0 releases it. */
void sl_loop_hold(sl_loop *loop, int on);
/* Runs until no referenced handles remain active (uv_run, UV_RUN_DEFAULT).
 * The hand-off handle is unreferenced: posts alone do not keep the loop
 * running, what waits for them must hold a handle of its own. */
int sl_loop_run(sl_loop *loop);
/* Runs every post queued so far (after the pool was joined, say). */
void sl_loop_drain(sl_loop *loop);
/* Closes everything left and frees; call after sl_loop_run returned. */
void sl_loop_free(sl_loop *loop);

/* Per-loop services made on first use (the HTTP client's curl multi
 * handle, say), freed by sl_loop_free before the loop closes. */
enum { SL_LOOP_HTTP = 0, SL_LOOP_POOL = 1, SL_LOOP_METER = 2, SL_LOOP_SERVICES = 4 };
/* The bytes that work in flight holds outside any document (HTTP request and
 * response bodies, embedding batches' vectors), for the memory budget: a run
 * registers one as SL_LOOP_METER. sl_meter_add is safe from any thread;
 * `grew` runs after an increase made on the loop thread. */
typedef struct sl_meter {
    _Atomic long long bytes;
    void (*grew)(void *arg);
    void *arg;
} sl_meter;
void sl_meter_add(sl_loop *loop, long long delta);
void sl_loop_set_service(sl_loop *loop, int id, void *svc, void (*free_fn)(void *svc));
void *sl_loop_service(sl_loop *loop, int id);

/* Monotonic clock in nanoseconds (for stage timings). */
uint64_t sl_now_ns(void);

#endif
