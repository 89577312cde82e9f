/* sluice/io.h - asynchronous services for io plugins (ABI 1.1).
 *
 * io plugins run on the loop thread and must never block it. They wait for
 * sockets with sl_watch (libuv's uv_poll underneath) and for time with
 * sl_timer, and complete their calls with sl_call_done. Everything here is
 * loop-thread only, and every callback runs on the loop thread.
 *
 * A descriptor may be closed right after sl_watch_stop returns: the core
 * stops polling it first (libuv must never poll a closed descriptor).
 */
#ifndef SLUICE_IO_H
#define SLUICE_IO_H

#include <stdint.h>

#include "sluice/call.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SL_READABLE 1
#define SL_WRITABLE 2

typedef struct sl_watch sl_watch;
/* status < 0: the socket has an error (the events are then meaningless). */
typedef void (*sl_watch_cb)(sl_watch *watch, int status, int events, void *arg);

/* Watches fd (not owned) for `events`. Returns 0 or a negative SL_E*. */
SL_EXPORT int sl_watch_start(sl_instance *inst, int fd, int events, sl_watch_cb cb, void *arg,
                             sl_watch **out);
/* Changes the events watched (0 pauses the watch). */
SL_EXPORT int sl_watch_update(sl_watch *watch, int events);
/* Stops watching and frees the watch; safe inside its own callback. */
SL_EXPORT void sl_watch_stop(sl_watch *watch);

typedef struct sl_timer sl_timer;
/* Calls cb(arg) once after `ms` milliseconds. The timer frees itself after
 * firing; *out (optional) may be passed to sl_timer_stop until then. */
SL_EXPORT int sl_timer_start(sl_instance *inst, uint64_t ms, void (*cb)(void *arg), void *arg,
                             sl_timer **out);
/* Cancels a timer that has not fired yet and frees it. */
SL_EXPORT void sl_timer_stop(sl_timer *timer);

/* Milliseconds on a monotonic clock (for the plugin's own timeouts). */
SL_EXPORT uint64_t sl_now_ms(void);

/* Plugins that hold a fixed pool of connections say how many calls they can
 * take at once (in init); the core never sends more. */
SL_EXPORT void sl_instance_set_concurrency(sl_instance *inst, uint32_t calls);

#ifdef __cplusplus
}
#endif
#endif
