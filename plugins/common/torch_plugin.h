/* torch_plugin.h - what the libtorch plugins (layout-torch, embed-torch)
 * share: the shim's codes and process-wide calls (torch_plugin.cpp), and
 * the C glue around them (torch_plugin.c): the device and threads options
 * and the dispatcher thread's libtorch thread count.
 *
 * No C++ exception crosses this header: every shim function catches
 * everything, answers a negative SL_TORCH_* code and keeps the message in a
 * thread-local slot (sl_torch_last_error), so two threads that fail at once
 * each read their own message. Out of memory, on the host or on the device,
 * answers SL_TORCH_ENOMEM so the caller can split its batch. Each plugin
 * module links its own copy (a hidden symbol of that module).
 */
#ifndef SL_TORCH_PLUGIN_H
#define SL_TORCH_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_TORCH_OK 0
#define SL_TORCH_EINVAL (-1) /* a bad argument (NULL, a shape of more than 8 dimensions) */
#define SL_TORCH_ENOMEM (-2) /* out of host or device memory: try a smaller batch */
#define SL_TORCH_ENODEV (-3) /* the device asked for is not there (CUDA on a CPU build) */
#define SL_TORCH_ERROR (-4)  /* anything else libtorch threw: a bad file, a model that failed */

/* The message of this thread's last failure; "" when none. Valid until the
 * next shim call on this thread. */
const char *sl_torch_last_error(void);

/* The libtorch version this shim was built against, e.g. "1.13.1". */
const char *sl_torch_version(void);

/* 1 when this libtorch can run on a CUDA device here, else 0. */
int sl_torch_cuda_available(void);

/* Sets the threads libtorch uses inside one operator on the CPU (at::
 * set_num_threads), for the process and for the calling thread: with the
 * OpenMP backend the count is kept per thread, so call it on the thread that
 * runs forward. n <= 0 changes nothing. Returns the count now in effect. */
int sl_torch_set_threads(int n);

/* For a plugin's thread_init (the batcher's dispatcher thread, where
 * forward runs): sets libtorch's CPU threads to the `threads` option, or one
 * per core when it is 0. The batcher runs one batch at a time per model, so
 * a batch may use every core; lower `threads` when cpu stages should keep
 * some. Returns the count now in effect. */
int sl_torch_thread_init(int64_t threads);

/* The `device` and `threads` options, the same in every torch plugin: the
 * plugin's conf struct has `const char *device` and `int64_t threads`. */
#define SL_TORCH_OPTION_DEVICE(conf_type)                                                                    \
    {                                                                                                        \
        "device", SL_OPT_ENUM, "auto", "where the model runs: auto (CUDA when there is one), cpu or cuda",   \
            SL_OPT_NO_FINGERPRINT, offsetof(conf_type, device), "auto|cpu|cuda", {                           \
            0                                                                                                \
        }                                                                                                    \
    }
#define SL_TORCH_OPTION_THREADS(conf_type)                                                                   \
    {                                                                                                        \
        "threads", SL_OPT_INT, "0", "CPU threads inside each operator (0: one per core)",                    \
            SL_OPT_NO_FINGERPRINT, offsetof(conf_type, threads), NULL, {                                     \
            0                                                                                                \
        }                                                                                                    \
    }

#ifdef __cplusplus
}
#endif
#endif
