/* embed_shim.cpp - embed_shim.h over libtorch: embed-torch's only C++.
 *
 * Every entry point runs inside `guarded`, which turns whatever libtorch
 * throws into an ET_* code and keeps the message thread-locally. Out of
 * memory is recognised by type and, since the TorchScript interpreter
 * rethrows errors from inside a model as plain runtime errors, by the words
 * "out of memory" in the message (CUDA's allocator says "CUDA out of
 * memory").
 */
#include "embed_shim.h"
#include "torch_guard.hpp"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

struct et_model {
    torch::jit::Module module;
    torch::Device device{torch::kCPU};
    std::string device_name;
    int inputs = 2;
};

namespace {

template <typename F> int guarded(F &&f) { return guarded_as<ET_ENOMEM, ET_ERROR>(static_cast<F &&>(f)); }

/* The last hidden state among the model's outputs. */
int hidden_of(const torch::IValue &y, torch::Tensor *out) {
    torch::IValue v = y;
    if (y.isTuple()) {
        const auto &el = y.toTupleRef().elements();
        if (el.empty()) return fail(ET_ERROR, "the model returned an empty tuple");
        v = el[0];
    } else if (y.isList()) {
        auto list = y.toList();
        if (list.size() == 0) return fail(ET_ERROR, "the model returned an empty list");
        v = list.get(0);
    } else if (y.isGenericDict()) {
        bool found = false;
        for (const auto &kv : y.toGenericDict())
            if (kv.key().isString() && kv.key().toStringRef() == "last_hidden_state") {
                v = kv.value();
                found = true;
            }
        if (!found) return fail(ET_ERROR, "the model returned a dict without \"last_hidden_state\"");
    }
    if (!v.isTensor())
        return fail(ET_ERROR, std::string("the model's output is a ") + v.tagKind() + ", not a tensor");
    *out = v.toTensor();
    return ET_OK;
}

} // namespace

extern "C" {

const char *et_last_error(void) { return last_error.c_str(); }

const char *et_version(void) { return TORCH_VERSION; }

int et_set_threads(int n) {
    return guarded([n] {
        if (n > 0) at::set_num_threads(n);
        return at::get_num_threads();
    });
}

int et_model_load(const char *path, const char *device, et_model **out) {
    if (!path || !out) return fail(ET_EINVAL, "et_model_load: path and out are required");
    *out = nullptr;
    std::string dev = device && *device ? device : "auto";
    return guarded([&] {
        torch::Device d(torch::kCPU);
        if (dev == "auto") {
            if (torch::cuda::is_available()) d = torch::Device(torch::kCUDA, 0);
        } else if (dev == "cuda" || dev.rfind("cuda:", 0) == 0) {
            if (!torch::cuda::is_available())
                return fail(ET_ENODEV,
                            "device '" + dev +
                                "' asked for, but this libtorch sees no CUDA device (a CPU build, or "
                                "no GPU or driver here)");
            d = torch::Device(dev == "cuda" ? std::string("cuda:0") : dev);
        } else if (dev != "cpu") {
            return fail(ET_EINVAL, "device '" + dev + "': expected auto, cpu, cuda or cuda:N");
        }
        auto m = std::make_unique<et_model>();
        m->module = torch::jit::load(path, d);
        m->module.eval();
        m->device = d;
        m->device_name = d.str();
        auto method = m->module.find_method("forward");
        if (!method) return fail(ET_ERROR, "the model has no forward method");
        size_t args = method->function().getSchema().arguments().size(); /* with self */
        if (args != 3 && args != 4)
            return fail(ET_ERROR, "forward takes " + std::to_string(args > 0 ? args - 1 : 0) +
                                      " inputs; expected input_ids, attention_mask[, token_type_ids]");
        m->inputs = static_cast<int>(args - 1);
        *out = m.release();
        return ET_OK;
    });
}

const char *et_model_device(const et_model *m) { return m ? m->device_name.c_str() : ""; }

int et_model_inputs(const et_model *m) { return m ? m->inputs : 0; }

void et_model_free(et_model *m) {
    guarded([m] {
        delete m;
        return ET_OK;
    });
}

int et_forward(et_model *m, const int64_t *ids, const int64_t *mask, const int64_t *types, int64_t b,
               int64_t t, float **out, int64_t *h, int *pooled) {
    if (!m || !ids || !mask || !out || !h || !pooled || b < 1 || t < 1 || (m->inputs == 3 && !types))
        return fail(ET_EINVAL, "et_forward: a model, ids, a mask and out are required");
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
            return fail(ET_ERROR, "the model's output is not a floating-point tensor");
        if (hs.dim() == 3 && hs.size(0) == b && hs.size(1) == t) {
            *pooled = 0;
        } else if (hs.dim() == 2 && hs.size(0) == b) {
            *pooled = 1;
        } else {
            std::string shape;
            for (int64_t i = 0; i < hs.dim(); i++) shape += (i ? "," : "") + std::to_string(hs.size(i));
            return fail(ET_ERROR, "the model's output is [" + shape + "]; expected the last hidden state [" +
                                      std::to_string(b) + "," + std::to_string(t) + ",H] (or pooled [" +
                                      std::to_string(b) + ",H])");
        }
        hs = hs.detach().to(torch::kCPU, torch::kFloat).contiguous();
        size_t n = static_cast<size_t>(hs.numel());
        float *buf = static_cast<float *>(std::malloc((n ? n : 1) * sizeof(float)));
        if (!buf) return fail(ET_ENOMEM, "out of host memory for the model's output");
        std::memcpy(buf, hs.data_ptr<float>(), n * sizeof(float));
        *h = hs.size(hs.dim() - 1);
        *out = buf;
        return ET_OK;
    });
}

} // extern "C"
