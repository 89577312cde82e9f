/* embed_shim.h - the C API of embed-torch over libtorch: load an encoder
 * exported to TorchScript, run it on a batch of token ids, get its hidden
 * states back as floats.
 *
 * The discipline is the torch plugins' (plugins/common/torch_plugin.h): no
 * C++ exception crosses this header; every function catches everything,
 * answers a negative SL_TORCH_* code and keeps the message in a
 * thread-local slot (sl_torch_last_error). Out of memory, on the host or the
 * device, answers SL_TORCH_ENOMEM so the caller can split its batch. A
 * model is used by one thread at a time.
 */
#ifndef SL_EMBED_SHIM_H
#define SL_EMBED_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include "torch_plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct et_model et_model;

/* Loads a TorchScript encoder onto "auto" (CUDA when there is one), "cpu",
 * "cuda" or "cuda:N", in eval mode. *out is freed with et_model_free. */
int et_model_load(const char *path, const char *device, et_model **out);
const char *et_model_device(const et_model *m);
/* The inputs forward takes besides self: 2 (input_ids, attention_mask) or
 * 3 (and token_type_ids). */
int et_model_inputs(const et_model *m);
void et_model_free(et_model *m);

/* Runs forward(input_ids, attention_mask[, token_type_ids]) on [b, t] int64
 * tensors (types may be NULL for a 2-input model) without autograd. The
 * output is the last hidden state: a tensor [b, t, h], or the first element
 * of a tuple or list, or "last_hidden_state" of a dict; a [b, h] output is
 * taken as already pooled (*pooled = 1). *out is malloc'd floats, b*t*h
 * (or b*h when pooled), freed by the caller with free(); *h its width. */
int et_forward(et_model *m, const int64_t *ids, const int64_t *mask, const int64_t *types, int64_t b,
               int64_t t, float **out, int64_t *h, int *pooled);

#ifdef __cplusplus
}
#endif
#endif
