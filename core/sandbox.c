/* sandbox.c - the worker process's fences: an address-space cap and a
 * seccomp filter (see sandbox.h). */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifdef SLUICE_HAVE_SECCOMP
#include <seccomp.h>
#endif

#include "sluice/call.h"

bool sl_sandbox_seccomp_available(void) {
#ifdef SLUICE_HAVE_SECCOMP
    return true;
#else
    return false;
#endif
}

void sl_sandbox_init(sl_sandbox *s, uint64_t memory_limit, bool seccomp) {
    s->memory_limit = memory_limit;
    s->seccomp = seccomp;
    s->stale = true;
}

/* --- the address-space cap --- */

static uint64_t vm_size(void) {
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long size = 0;
    if (!f) return 0;
    if (fscanf(f, "%llu", &size) != 1) size = 0;
    fclose(f);
    return size * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* The limit counts from what the worker holds after loading its plugins:
 * libraries and models are not what runs away. (Relative also keeps it
 * meaningful under AddressSanitizer, whose shadow reserves terabytes.) It is
 * measured again only after a load, so a slow leak still reaches it. */
void sl_sandbox_limit(sl_sandbox *s) {
    struct rlimit rl;
    if (!s->memory_limit || getrlimit(RLIMIT_AS, &rl) != 0) return;
    if (s->stale) {
        s->limit_at = vm_size() + s->memory_limit;
        s->stale = false;
    }
    uint64_t want = s->limit_at;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) want = rl.rlim_max;
    rl.rlim_cur = (rlim_t)want;
    setrlimit(RLIMIT_AS, &rl);
}

void sl_sandbox_unlimit(sl_sandbox *s) {
    struct rlimit rl;
    if (!s->memory_limit || getrlimit(RLIMIT_AS, &rl) != 0) return;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_AS, &rl);
}

void sl_sandbox_loading(sl_sandbox *s) {
    sl_sandbox_unlimit(s); /* loading is not the runaway the limit is for */
    s->stale = true;
}

void sl_sandbox_measure(sl_sandbox *s) {
    if (s->stale) sl_sandbox_limit(s);
}

/* --- seccomp --- */

#ifdef SLUICE_HAVE_SECCOMP
/* Denies new sockets and every way to write, create or remove files. Calls
 * on descriptors already open (the socket to sluice, stderr, what init
 * opened) stay allowed. openat2 and io_uring answer ENOSYS, so libraries
 * that try them fall back to calls the filter can inspect. */
static int install_seccomp(char *err, size_t errlen) {
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
    if (!f) return snprintf(err, errlen, "seccomp_init failed"), SL_EFATAL;
    static const int denied[] = {
        SCMP_SYS(socket),
        SCMP_SYS(socketpair),
        SCMP_SYS(connect),
        SCMP_SYS(bind),
        SCMP_SYS(listen),
        SCMP_SYS(accept),
        SCMP_SYS(accept4),
        SCMP_SYS(creat),
        SCMP_SYS(truncate),
        SCMP_SYS(unlink),
        SCMP_SYS(unlinkat),
        SCMP_SYS(rename),
        SCMP_SYS(renameat),
        SCMP_SYS(renameat2),
        SCMP_SYS(mkdir),
        SCMP_SYS(mkdirat),
        SCMP_SYS(rmdir),
        SCMP_SYS(link),
        SCMP_SYS(linkat),
        SCMP_SYS(symlink),
        SCMP_SYS(symlinkat),
        SCMP_SYS(chmod),
        SCMP_SYS(fchmodat),
        SCMP_SYS(chown),
        SCMP_SYS(lchown),
        SCMP_SYS(fchownat),
        SCMP_SYS(mknod),
        SCMP_SYS(mknodat),
        SCMP_SYS(open_by_handle_at),
    };
    static const int nosys[] = {SCMP_SYS(openat2), SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_enter),
                                SCMP_SYS(io_uring_register)};
    static const unsigned write_flags[] = {O_WRONLY, O_RDWR, O_CREAT, O_TRUNC};
    int rc = 0;
    for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++)
        rc = rc ? rc : seccomp_rule_add(f, SCMP_ACT_KILL_PROCESS, denied[i], 0);
    for (size_t i = 0; i < sizeof nosys / sizeof nosys[0]; i++)
        rc = rc ? rc : seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), nosys[i], 0);
    for (size_t i = 0; i < sizeof write_flags / sizeof write_flags[0]; i++) {
        scmp_datum_t fl = write_flags[i];
        rc = rc ? rc
                : seccomp_rule_add(f, SCMP_ACT_KILL_PROCESS, SCMP_SYS(open), 1,
                                   SCMP_A1(SCMP_CMP_MASKED_EQ, fl, fl));
        rc = rc ? rc
                : seccomp_rule_add(f, SCMP_ACT_KILL_PROCESS, SCMP_SYS(openat), 1,
                                   SCMP_A2(SCMP_CMP_MASKED_EQ, fl, fl));
    }
    if (rc == 0) rc = seccomp_load(f);
    seccomp_release(f);
    if (rc) return snprintf(err, errlen, "cannot load the seccomp filter: %s", strerror(-rc)), SL_EFATAL;
    return 0;
}
#endif

int sl_sandbox_lock(sl_sandbox *s, char *err, size_t errlen) {
    if (!s->seccomp || s->locked) return 0;
#ifdef SLUICE_HAVE_SECCOMP
    int rc = install_seccomp(err, errlen);
    if (rc) return rc;
    s->locked = true;
    return 0;
#else
    /* sl_workers_new refuses worker_seccomp in such a build; a worker asked anyway fails */
    return snprintf(err, errlen, "this sluice was built without libseccomp"), SL_EFATAL;
#endif
}
