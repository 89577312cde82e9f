/* torch_guard.hpp - libtorch's exceptions as codes and messages, for the
 * C++ shims of the torch plugins (layout-torch, embed-torch).
 *
 * Every entry point of a shim runs inside `guarded<NOMEM, ERROR>`: whatever
 * libtorch throws is caught there, turned into the shim's own code and its
 * message kept in a thread-local string (`last_error`). Out of memory is
 * recognised by type (std::bad_alloc, c10::OutOfMemoryError) and, because
 * the TorchScript interpreter rethrows errors from inside a model as plain
 * runtime errors, also by the words "out of memory" in the message (CUDA's
 * allocator says "CUDA out of memory"). Everything here has internal
 * linkage: each shim (one translation unit) keeps its own last error.
 */
#ifndef SL_TORCH_GUARD_HPP
#define SL_TORCH_GUARD_HPP

#include <c10/util/Exception.h>

#include <exception>
#include <new>
#include <string>

namespace {

thread_local std::string last_error;

int fail(int code, const std::string &msg) {
    last_error = msg;
    return code;
}

bool says_out_of_memory(const std::string &msg) {
    return msg.find("out of memory") != std::string::npos || msg.find("Out of memory") != std::string::npos;
}

/* Runs f, turning every exception into NOMEM or ERROR and a message. */
template <int NOMEM, int ERROR, typename F> int guarded_as(F &&f) {
    last_error.clear();
    try {
        return f();
    } catch (const std::bad_alloc &) {
        return fail(NOMEM, "out of host memory");
    } catch (const c10::OutOfMemoryError &e) {
        return fail(NOMEM, e.what_without_backtrace());
    } catch (const c10::Error &e) {
        std::string msg = e.what_without_backtrace();
        return fail(says_out_of_memory(msg) ? NOMEM : ERROR, msg);
    } catch (const std::exception &e) {
        std::string msg = e.what();
        return fail(says_out_of_memory(msg) ? NOMEM : ERROR, msg);
    } catch (...) {
        return fail(ERROR, "libtorch threw something that is not a std::exception");
    }
}

} // namespace

#endif
