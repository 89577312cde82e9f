/* embed_shim.cpp - embed_shim.h over libtorch: embed-torch's only C++.
 *
 * Every entry point runs inside `guarded` (plugins/common/torch_guard.hpp),
 * which turns whatever libtorch throws into an SL_TORCH_* code and keeps the
 * message thread-locally. Loading onto the device, the version and the
 * thread count are the torch plugins' common torch_plugin.cpp.
 */
#include "embed_shim.h"
#include "torch_guard.hpp"

#include <torch/script.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

struct et_model : torch_module {
    int inputs = 2;
};

namespace {

/* The last hidden state among the model's outputs. */
int hidden_of(const torch::IValue &y, torch::Tensor *out) {
    torch::IValue v = y;
    if (y.isTuple()) {
        const auto &el = y.toTupleRef().elements();
        if (el.empty()) return fail(SL_TORCH_ERROR, "the model returned an empty tuple");
        v = el[0];
    } else if (y.isList()) {
        auto list = y.toList();
        if (list.size() == 0) return fail(SL_TORCH_ERROR, "the model returned an empty list");
        v = list.get(0);
    } else if (y.isGenericDict()) {
        bool found = false;
        for (const auto &kv : y.toGenericDict())
            if (kv.key().isString() && kv.key().toStringRef() == "last_hidden_state") {
                v = kv.value();
                found = true;
            }
        if (!found) return fail(SL_TORCH_ERROR, "the model returned a dict without \"last_hidden_state\"");
    }
    if (!v.isTensor())
        return fail(SL_TORCH_ERROR, std::string("the model's output is a ") + v.tagKind() + ", not a tensor");
    *out = v.toTensor();
    return SL_TORCH_OK;
}

} // namespace

extern "C" {

int et_model_load(const char *path, const char *device, et_model **out) {
    if (!path || !out) return fail(SL_TORCH_EINVAL, "et_model_load: path and out are required");
    *out = nullptr;
    return guarded([&] {
        auto m = std::make_unique<et_model>();
        int rc = torch_module_load(path, device, m.get());
        if (rc) return rc;
        auto method = m->module.find_method("forward");
        if (!method) return fail(SL_TORCH_ERROR, "the model has no forward method");
        size_t args = method->function().getSchema().arguments().size(); /* with self */
        if (args != 3 && args != 4)
            return fail(SL_TORCH_ERROR, "forward takes " + std::to_string(args > 0 ? args - 1 : 0) +
                                            " inputs; expected input_ids, attention_mask[, token_type_ids]");
        m->inputs = static_cast<int>(args - 1);
        *out = m.release();
        return SL_TORCH_OK;
    });
}

const char *et_model_device(const et_model *m) { return m ? m->device_name.c_str() : ""; }

int et_model_inputs(const et_model *m) { return m ? m->inputs : 0; }

void et_model_free(et_model *m) {
    guarded([m] {
        delete m;
        return SL_TORCH_OK;
    });
}

int et_forward(et_model *m, const int64_t *ids, const int64_t *mask, const int64_t *types, int64_t b,
               int64_t t, float **out, int64_t *h, int *pooled) {
    if (!m || !ids || !mask || !out || !h || !pooled || b < 1 || t < 1 || (m->inputs == 3 && !types))
        return fail(SL_TORCH_EINVAL, "et_forward: a model, ids, a mask and out are required");
    *out = nullptr;
    return guarded([&] {
        torch::NoGradGuard no_grad;
        auto opt = torch::TensorOptions().dtype(torch::kLong);
        auto in = [&](const int64_t *p) {
            torch::Tensor x = torch::from_blob(const_cast<int64_t *>(p), {b, t}, opt);
            return m->device.is_cpu() ? x : x.to(m->device, false, true);
        };
        std::vector<torch::IValue> args{in(ids), in(mask)};
        if (m->inputs == 3) args.emplace_back(in(types));
        torch::IValue y = m->module.forward(args);
        torch::Tensor hs;
        int rc = hidden_of(y, &hs);
        if (rc) return rc;
        if (!hs.is_floating_point())
            return fail(SL_TORCH_ERROR, "the model's output is not a floating-point tensor");
        if (hs.dim() == 3 && hs.size(0) == b && hs.size(1) == t) {
            *pooled = 0;
        } else if (hs.dim() == 2 && hs.size(0) == b) {
            *pooled = 1;
        } else {
            std::string shape;
            for (int64_t i = 0; i < hs.dim(); i++) shape += (i ? "," : "") + std::to_string(hs.size(i));
            return fail(SL_TORCH_ERROR, "the model's output is [" + shape +
                                            "]; expected the last hidden state [" + std::to_string(b) + "," +
                                            std::to_string(t) + ",H] (or pooled [" + std::to_string(b) +
                                            ",H])");
        }
        hs = hs.detach().to(torch::kCPU, torch::kFloat).contiguous();
        size_t n = static_cast<size_t>(hs.numel());
        float *buf = static_cast<float *>(std::malloc((n ? n : 1) * sizeof(float)));
        if (!buf) return fail(SL_TORCH_ENOMEM, "out of host memory for the model's output");
        std::memcpy(buf, hs.data_ptr<float>(), n * sizeof(float));
        *h = hs.size(hs.dim() - 1);
        *out = buf;
        return SL_TORCH_OK;
    });
}

} // extern "C"
