/* torch_plugin.c - the C glue the libtorch plugins share (torch_plugin.h). */
#include <unistd.h>

#include "torch_plugin.h"

int sl_torch_thread_init(int64_t threads) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return sl_torch_set_threads(threads > 0 ? (int)threads : cores > 0 ? (int)cores : 1);
}
