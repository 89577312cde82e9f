/* test_threads.c - this process's threads as the kernel counts them
 * (core/threads.c), and the report's CPU by thread:
 *   - a reading finds the main thread as "loop" and a thread by the name
 *     it gave itself, and the CPU it burned between two readings;
 *   - grouping by name: threads of one name add up, a thread id the kernel
 *     gave again counts from 0, a thread new since the first reading counts
 *     whole, most CPU first;
 *   - serve's running report adds each name's CPU up across runs.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "report.h"
#include "threads.h"

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stage; /* 1: named and burned; 2: may end */

static void *burner(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "t-burner");
    double t0 = thread_cpu_s();
    while (thread_cpu_s() - t0 < 0.05) {
    }
    pthread_mutex_lock(&mu);
    stage = 1;
    pthread_cond_broadcast(&cv);
    while (stage < 2) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static const sl_thread_cpu *named(const sl_thread_cpu *v, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0) return &v[i];
    return NULL;
}

static void test_reading_this_process(void) {
    sl_thread_samples before, after;
    CHECK_INT(sl_threads_read(&before), 0);
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, burner, NULL), 0);
    pthread_mutex_lock(&mu);
    while (stage < 1) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    CHECK_INT(sl_threads_read(&after), 0); /* the burner is still there */
    CHECK(after.n >= 2);

    sl_thread_cpu *g = NULL;
    size_t n = 0;
    CHECK_INT(sl_threads_cpu_by_name(&before, &after, &g, &n), 0);
    const sl_thread_cpu *loop = named(g, n, "loop"), *b = named(g, n, "t-burner");
    CHECK(loop != NULL);
    CHECK(b != NULL);
    if (b) {
        CHECK_INT(b->threads, 1);
        CHECK(b->cpu_s >= 0.045); /* it burned 50 ms, new since the first reading */
        CHECK(b->cpu_s < 5);
    }
    if (loop) CHECK_INT(loop->threads, 1);
    if (after.have_wait)
        CHECK(sl_threads_waited_s(&after) >= 0);
    else
        CHECK(sl_threads_waited_s(&after) < 0);
    free(g);

    pthread_mutex_lock(&mu);
    stage = 2;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(t, NULL);
    sl_threads_free(&before);
    sl_threads_free(&after);
    CHECK(before.v == NULL && before.n == 0);
}

static void test_grouping(void) {
    sl_thread_sample b[] = {
        {.tid = 10, .name = "w", .ran_ns = 100000000},
        {.tid = 11, .name = "k", .ran_ns = 500000000},
        {.tid = 12, .name = "gone", .ran_ns = 900000000},
    };
    sl_thread_sample a[] = {
        {.tid = 10, .name = "w", .ran_ns = 300000000},  /* 0.2 s since */
        {.tid = 11, .name = "k", .ran_ns = 400000000},  /* an id given again: 0.4 s, from 0 */
        {.tid = 13, .name = "w", .ran_ns = 50000000},   /* new: 0.05 s */
        {.tid = 14, .name = "idle", .ran_ns = 7000000}, /* new: 0.007 s */
    };
    sl_thread_samples before = {.v = b, .n = 3}, after = {.v = a, .n = 4};
    sl_thread_cpu *g = NULL;
    size_t n = 0;
    CHECK_INT(sl_threads_cpu_by_name(&before, &after, &g, &n), 0);
    CHECK_INT((int)n, 3); /* a thread that ended has no entry */
    if (n == 3) {
        CHECK_STR(g[0].name, "k");
        CHECK(g[0].cpu_s > 0.399 && g[0].cpu_s < 0.401);
        CHECK_STR(g[1].name, "w");
        CHECK_INT(g[1].threads, 2);
        CHECK(g[1].cpu_s > 0.249 && g[1].cpu_s < 0.251);
        CHECK_STR(g[2].name, "idle");
    }

    /* serve adds runs up by name */
    sl_report cum = {0}, run = {.thread_cpu = g, .nthread_cpu = n};
    sl_report_accumulate(&cum, &run, 10);
    sl_report_accumulate(&cum, &run, 10);
    CHECK_INT((int)cum.nthread_cpu, 3);
    const sl_thread_cpu *w = named(cum.thread_cpu, cum.nthread_cpu, "w");
    CHECK(w && w->cpu_s > 0.499 && w->cpu_s < 0.501 && w->threads == 2);
    sl_report_free(&cum);
    free(g);

    /* nothing read: nothing to say */
    sl_thread_samples none = {0};
    CHECK_INT(sl_threads_cpu_by_name(&none, &none, &g, &n), 0);
    CHECK(g == NULL && n == 0);
}

int main(void) {
    test_reading_this_process();
    test_grouping();
    return check_done();
}
