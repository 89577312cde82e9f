/* torch_plugin.cpp - the shim calls every torch plugin has (torch_plugin.h)
 * and the model loading of torch_guard.hpp, over libtorch. Linked into each
 * torch plugin module; its symbols are hidden there. */
#include "torch_guard.hpp"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <string>

thread_local std::string last_error;

int torch_module_load(const char *path, const char *device, torch_module *m) {
    std::string dev = device && *device ? device : "auto";
    torch::Device d(torch::kCPU);
    if (dev == "auto") {
        if (torch::cuda::is_available()) d = torch::Device(torch::kCUDA, 0);
    } else if (dev == "cpu") {
    } else if (dev == "cuda" || dev.rfind("cuda:", 0) == 0) {
        if (!torch::cuda::is_available())
            return fail(SL_TORCH_ENODEV, "device '" + dev +
                                             "' asked for, but this libtorch sees no CUDA device (a CPU "
                                             "build, or no GPU or driver here)");
        d = torch::Device(dev == "cuda" ? std::string("cuda:0") : dev);
        if (d.index() >= static_cast<int>(torch::cuda::device_count()))
            return fail(SL_TORCH_ENODEV, "device '" + dev + "' asked for, but there are only " +
                                             std::to_string(torch::cuda::device_count()) + " CUDA devices");
    } else {
        return fail(SL_TORCH_EINVAL, "device '" + dev + "': expected auto, cpu, cuda or cuda:N");
    }
    m->module = torch::jit::load(path, d);
    m->module.eval();
    m->device = d;
    m->device_name = d.str();
    return SL_TORCH_OK;
}

extern "C" {

const char *sl_torch_last_error(void) { return last_error.c_str(); }

const char *sl_torch_version(void) { return TORCH_VERSION; }

int sl_torch_cuda_available(void) {
    int rc = guarded([] { return torch::cuda::is_available() ? 1 : 0; });
    return rc > 0 ? 1 : 0;
}

int sl_torch_set_threads(int n) {
    return guarded([n] {
        if (n > 0) at::set_num_threads(n);
        return at::get_num_threads();
    });
}

} // extern "C"
