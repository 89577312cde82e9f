/* threads.c - this process's threads as the kernel counts them (see threads.h). */
#include "threads.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The first line of a small /proc file into buf (its newline dropped);
 * 0, or -1 when it cannot be read. */
static int read_line(const char *path, char *buf, size_t len) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (!ok) return -1;
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

/* One thread: its name, and what it ran and waited. schedstat's first two
 * fields are nanoseconds on the CPU and runnable on a run queue; a kernel
 * without it leaves stat's utime and stime (clock ticks) and no wait. */
static int read_thread(const char *tid, sl_thread_sample *t, int *have_wait) {
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/self/task/%.20s/comm", tid);
    if (read_line(path, t->name, sizeof t->name) != 0) return -1; /* it ended meanwhile */
    snprintf(path, sizeof path, "/proc/self/task/%.20s/schedstat", tid);
    unsigned long long ran, waited;
    if (read_line(path, line, sizeof line) == 0 && sscanf(line, "%llu %llu", &ran, &waited) == 2) {
        t->ran_ns = ran;
        t->waited_ns = waited;
        *have_wait = 1;
        return 0;
    }
    snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", tid);
    if (read_line(path, line, sizeof line) != 0) return -1;
    /* the name may hold spaces and brackets: the fields start after the
     * last ')'; utime and stime are the 12th and 13th after it */
    const char *p = strrchr(line, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 1, " %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &ut, &st) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    t->ran_ns = (ut + st) * (1000000000ull / (unsigned long long)(hz > 0 ? hz : 100));
    t->waited_ns = 0;
    return 0;
}

int sl_threads_read(sl_thread_samples *out) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    size_t cap = 0;
    long self = (long)getpid();
    int have_wait = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        if (out->n == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            sl_thread_sample *v = realloc(out->v, ncap * sizeof *v);
            if (!v) break; /* the threads read so far */
            out->v = v;
            cap = ncap;
        }
        sl_thread_sample *t = &out->v[out->n];
        t->tid = strtol(e->d_name, NULL, 10);
        if (read_thread(e->d_name, t, &have_wait) != 0) continue;
        if (t->tid == self) snprintf(t->name, sizeof t->name, "loop");
        out->n++;
    }
    closedir(d);
    out->have_wait = have_wait;
    return 0;
}

void sl_threads_free(sl_thread_samples *t) {
    free(t->v);
    memset(t, 0, sizeof *t);
}

double sl_threads_waited_s(const sl_thread_samples *t) {
    if (!t->have_wait) return -1;
    uint64_t sum = 0;
    for (size_t i = 0; i < t->n; i++) sum += t->v[i].waited_ns;
    return (double)sum / 1e9;
}

static int by_cpu(const void *a, const void *b) {
    const sl_thread_cpu *x = a, *y = b;
    if (x->cpu_s != y->cpu_s) return x->cpu_s < y->cpu_s ? 1 : -1;
    return strcmp(x->name, y->name);
}

int sl_threads_cpu_by_name(const sl_thread_samples *before, const sl_thread_samples *after,
                           sl_thread_cpu **out, size_t *n) {
    sl_thread_cpu *g = NULL;
    size_t ng = 0;
    for (size_t i = 0; i < after->n; i++) {
        const sl_thread_sample *t = &after->v[i];
        uint64_t from = 0;
        for (size_t k = 0; k < before->n; k++)
            if (before->v[k].tid == t->tid) {
                /* a thread id the kernel gave again to a newer thread
                 * counts from 0 */
                from = before->v[k].ran_ns <= t->ran_ns ? before->v[k].ran_ns : 0;
                break;
            }
        sl_thread_cpu *e = sl_thread_cpu_slot(&g, &ng, t->name);
        if (!e) {
            free(g);
            *out = NULL;
            *n = 0;
            return -1;
        }
        e->threads++;
        e->cpu_s += (double)(t->ran_ns - from) / 1e9;
    }
    if (ng) qsort(g, ng, sizeof *g, by_cpu);
    *out = g;
    *n = ng;
    return 0;
}
