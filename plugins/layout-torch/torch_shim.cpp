/* torch_shim.cpp - the C API of torch_shim.h over libtorch: the plugin's
 * only C++.
 *
 * Every entry point is a `guarded` lambda (plugins/common/torch_guard.hpp):
 * whatever libtorch throws is caught there, turned into an SL_TORCH_* code
 * and its message kept in a thread-local string. Loading, the version and
 * the thread count are the torch plugins' common torch_plugin.cpp. Outputs
 * are moved to the host once and kept alive as tensors; the C side reads
 * their memory through plain pointers.
 */
#include "torch_shim.h"
#include "torch_guard.hpp"

#include <torch/script.h>

#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

struct sl_torch_model : torch_module {};

struct sl_torch_outputs {
    std::vector<torch::Tensor> tensors; /* host, contiguous: what the views point into */
    std::vector<std::string> names;
    std::vector<sl_torch_tensor> views;
};

namespace {

/* Moves one output to the host as float32 or int64 and adds its view. */
int add_output(sl_torch_outputs *o, const std::string &name, const torch::IValue &v) {
    if (!v.isTensor())
        return fail(SL_TORCH_ERROR, "model output '" + name + "' is a " + v.tagKind() + ", not a tensor");
    torch::Tensor t = v.toTensor().detach();
    if (t.dim() > SL_TORCH_MAX_DIMS)
        return fail(SL_TORCH_ERROR, "model output '" + name + "' has more than 8 dimensions");
    sl_torch_dtype dt;
    if (t.is_floating_point()) {
        t = t.to(torch::kCPU, torch::kFloat);
        dt = SL_TORCH_FLOAT32;
    } else if (t.is_complex()) {
        return fail(SL_TORCH_ERROR, "model output '" + name + "' is complex");
    } else {
        t = t.to(torch::kCPU, torch::kLong);
        dt = SL_TORCH_INT64;
    }
    t = t.contiguous();
    o->tensors.push_back(t);
    o->names.push_back(name);
    sl_torch_tensor view{};
    view.dtype = dt;
    view.ndim = static_cast<int>(t.dim());
    for (int i = 0; i < view.ndim; i++) view.shape[i] = t.size(i);
    view.numel = static_cast<size_t>(t.numel());
    view.data = t.data_ptr();
    o->views.push_back(view);
    return SL_TORCH_OK;
}

} // namespace

extern "C" {

int sl_torch_model_load(const char *path, const char *device, sl_torch_model **out) {
    if (!path || !out) return fail(SL_TORCH_EINVAL, "sl_torch_model_load: path and out are required");
    *out = nullptr;
    return guarded([&] {
        auto m = std::make_unique<sl_torch_model>();
        int rc = torch_module_load(path, device, m.get());
        if (rc) return rc;
        *out = m.release();
        return SL_TORCH_OK;
    });
}

const char *sl_torch_model_device(const sl_torch_model *m) { return m ? m->device_name.c_str() : ""; }

void sl_torch_model_free(sl_torch_model *m) {
    guarded([m] {
        delete m;
        return SL_TORCH_OK;
    });
}

int sl_torch_forward(sl_torch_model *m, const float *input, const int64_t *shape, int ndim,
                     sl_torch_outputs **out) {
    if (!m || !input || !shape || !out || ndim < 1 || ndim > SL_TORCH_MAX_DIMS)
        return fail(SL_TORCH_EINVAL, "sl_torch_forward: a model, an input of 1 to 8 dimensions and out are "
                                     "required");
    *out = nullptr;
    return guarded([&] {
        torch::NoGradGuard no_grad;
        std::vector<int64_t> dims(shape, shape + ndim);
        /* from_blob does not copy: the input stays the caller's until .to() */
        torch::Tensor x = torch::from_blob(const_cast<float *>(input), dims, torch::kFloat);
        x = m->device.is_cpu() ? x : x.to(m->device, /*non_blocking=*/false, /*copy=*/true);
        torch::IValue y = m->module.forward({x});
        auto o = std::make_unique<sl_torch_outputs>();
        int rc = SL_TORCH_OK;
        if (y.isTensor()) {
            rc = add_output(o.get(), "output", y);
        } else if (y.isTuple()) {
            const auto &el = y.toTupleRef().elements();
            for (size_t i = 0; i < el.size() && rc == SL_TORCH_OK; i++)
                rc = add_output(o.get(), std::to_string(i), el[i]);
        } else if (y.isList()) {
            auto list = y.toList();
            for (size_t i = 0; i < list.size() && rc == SL_TORCH_OK; i++)
                rc = add_output(o.get(), std::to_string(i), list.get(i));
        } else if (y.isGenericDict()) {
            for (const auto &kv : y.toGenericDict()) {
                if (!kv.key().isString())
                    return fail(SL_TORCH_ERROR, "model output is a dict whose keys are not strings");
                rc = add_output(o.get(), kv.key().toStringRef(), kv.value());
                if (rc != SL_TORCH_OK) break;
            }
        } else {
            return fail(SL_TORCH_ERROR, std::string("model output is a ") + y.tagKind() +
                                            "; expected a tensor, a tuple or list of tensors, or a dict of "
                                            "str to tensor");
        }
        if (rc != SL_TORCH_OK) return rc;
        /* names live in the vector now: point the views at them */
        for (size_t i = 0; i < o->views.size(); i++) o->views[i].name = o->names[i].c_str();
        *out = o.release();
        return SL_TORCH_OK;
    });
}

size_t sl_torch_outputs_count(const sl_torch_outputs *o) { return o ? o->views.size() : 0; }

const sl_torch_tensor *sl_torch_outputs_at(const sl_torch_outputs *o, size_t i) {
    return o && i < o->views.size() ? &o->views[i] : nullptr;
}

const sl_torch_tensor *sl_torch_outputs_find(const sl_torch_outputs *o, const char *name) {
    if (!o || !name) return nullptr;
    for (const auto &v : o->views)
        if (std::strcmp(v.name, name) == 0) return &v;
    return nullptr;
}

void sl_torch_outputs_free(sl_torch_outputs *o) {
    guarded([o] {
        delete o;
        return SL_TORCH_OK;
    });
}

} // extern "C"
