/* torch_guard.hpp - libtorch's exceptions as codes and messages, and the
 * model loading, for the C++ shims of the torch plugins (layout-torch,
 * embed-torch).
 *
 * Every entry point of a shim runs inside `guarded`: whatever libtorch
 * throws is caught there, turned into an SL_TORCH_* code (torch_plugin.h)
 * and its message kept in a thread-local string (`last_error`, defined once
 * a module in torch_plugin.cpp). Out of memory is recognised by type
 * (std::bad_alloc, c10::OutOfMemoryError) and, because the TorchScript
 * interpreter rethrows errors from inside a model as plain runtime errors,
 * also by the words "out of memory" in the message (CUDA's allocator says
 * "CUDA out of memory").
 */
#ifndef SL_TORCH_GUARD_HPP
#define SL_TORCH_GUARD_HPP

#include "torch_plugin.h"

#include <c10/util/Exception.h>
#include <torch/script.h>

#include <exception>
#include <new>
#include <string>

/* This thread's last failure (sl_torch_last_error); hidden in the module. */
extern thread_local std::string last_error;

/* A TorchScript module on its device, in eval mode: a shim's model derives
 * from it. */
struct torch_module {
    torch::jit::Module module;
    torch::Device device{torch::kCPU};
    std::string device_name; /* "cpu", "cuda:0", ... */
};

/* Loads `path` onto `device` ("auto": the first CUDA device when there is
 * one, else the CPU; "cpu", "cuda" or "cuda:N") into *m. Runs inside
 * `guarded` (libtorch throws); answers SL_TORCH_EINVAL or SL_TORCH_ENODEV
 * with a message for a device that is wrong or not there. */
int torch_module_load(const char *path, const char *device, torch_module *m);

namespace {

int fail(int code, const std::string &msg) {
    last_error = msg;
    return code;
}

bool says_out_of_memory(const std::string &msg) {
    return msg.find("out of memory") != std::string::npos || msg.find("Out of memory") != std::string::npos;
}

/* Runs f, turning every exception into SL_TORCH_ENOMEM or SL_TORCH_ERROR
 * and a message. */
template <typename F> int guarded(F &&f) {
    last_error.clear();
    try {
        return f();
    } catch (const std::bad_alloc &) {
        return fail(SL_TORCH_ENOMEM, "out of host memory");
    } catch (const c10::OutOfMemoryError &e) {
        return fail(SL_TORCH_ENOMEM, e.what_without_backtrace());
    } catch (const c10::Error &e) {
        std::string msg = e.what_without_backtrace();
        return fail(says_out_of_memory(msg) ? SL_TORCH_ENOMEM : SL_TORCH_ERROR, msg);
    } catch (const std::exception &e) {
        std::string msg = e.what();
        return fail(says_out_of_memory(msg) ? SL_TORCH_ENOMEM : SL_TORCH_ERROR, msg);
    } catch (...) {
        return fail(SL_TORCH_ERROR, "libtorch threw something that is not a std::exception");
    }
}

} // namespace

#endif
