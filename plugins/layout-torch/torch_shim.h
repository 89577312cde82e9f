/* torch_shim.h - a small C API over libtorch: load a TorchScript file, pick
 * a device, run forward on a batch, get the outputs back as plain buffers.
 *
 * The plugin around it is C; libtorch is C++. This header and the torch
 * plugins' common plugins/common/torch_plugin.h (the SL_TORCH_* codes, the
 * last error, the version, the thread count) are the only boundary between
 * them, and no C++ exception crosses it.
 *
 * Threads: a model may be used by one thread at a time (the batcher's
 * dispatcher); different models may run on different threads.
 */
#ifndef SL_TORCH_SHIM_H
#define SL_TORCH_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include "torch_plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SL_TORCH_MAX_DIMS 8

typedef struct sl_torch_model sl_torch_model;
typedef struct sl_torch_outputs sl_torch_outputs;

typedef enum sl_torch_dtype {
    SL_TORCH_FLOAT32 = 1, /* every floating type comes back as float */
    SL_TORCH_INT64 = 2    /* every integer and bool type comes back as int64_t */
} sl_torch_dtype;

/* One output tensor, on the host, contiguous, row-major. Owned by the
 * sl_torch_outputs it came from. */
typedef struct sl_torch_tensor {
    const char *name; /* the dict key; "0", "1", ... in a tuple or list; "output" alone */
    sl_torch_dtype dtype;
    int ndim;
    int64_t shape[SL_TORCH_MAX_DIMS];
    size_t numel;
    const void *data; /* float * or int64_t * by dtype */
} sl_torch_tensor;

/* Loads a TorchScript file onto a device and puts it in eval mode.
 * device: "auto" (the first CUDA device when there is one, else the CPU),
 * "cpu", "cuda" or "cuda:N". *out is freed with sl_torch_model_free. */
int sl_torch_model_load(const char *path, const char *device, sl_torch_model **out);
/* Where the model runs: "cpu", "cuda:0", ... */
const char *sl_torch_model_device(const sl_torch_model *m);
void sl_torch_model_free(sl_torch_model *m);

/* Runs forward(input) without autograd. input: float32, `ndim` dimensions
 * of `shape`, contiguous, on the host (copied to the model's device; it may
 * be freed when this returns). The model may return a tensor, a tuple or
 * list of tensors, or a dict of str to tensor. *out is freed with
 * sl_torch_outputs_free. */
int sl_torch_forward(sl_torch_model *m, const float *input, const int64_t *shape, int ndim,
                     sl_torch_outputs **out);
size_t sl_torch_outputs_count(const sl_torch_outputs *o);
/* Output i (in the model's order), or NULL when out of range. */
const sl_torch_tensor *sl_torch_outputs_at(const sl_torch_outputs *o, size_t i);
/* The output named `name`, or NULL. */
const sl_torch_tensor *sl_torch_outputs_find(const sl_torch_outputs *o, const char *name);
void sl_torch_outputs_free(sl_torch_outputs *o);

#ifdef __cplusplus
}
#endif
#endif
