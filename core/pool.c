/* pool.c - the thread pool (see pool.h).
 *
 * Our own pool rather than uv_queue_work: libuv's pool is process-wide,
 * sized by an environment variable and anonymous, and we need a known
 * thread index for per-thread plugin state plus priorities. */
#include "pool.h"
#include "guard.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

struct sl_pool {
    sl_loop *loop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    sl_task *head[SL_POOL_PRIORITIES], *tail[SL_POOL_PRIORITIES];
    int queued;
    int stopping;
    int nthreads, cap;
    pthread_t *threads;
    void (*thread_exit)(void *, int);
    void *arg;
};

typedef struct worker_arg {
    sl_pool *pool;
    int index;
} worker_arg;

int sl_cpu_count(void) {
    /* the CPUs this process may run on (taskset, cpusets): a pool thread
     * more than those only waits for one of them */
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int k = CPU_COUNT(&set);
        if (k > 0) return k;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void post_done(sl_post *post) {
    sl_task *t = (sl_task *)post;
    t->done(t);
}

static sl_task *take(sl_pool *p) {
    for (int pr = SL_POOL_PRIORITIES - 1; pr >= 0; pr--) {
        sl_task *t = p->head[pr];
        if (t) {
            p->head[pr] = t->next;
            if (!p->head[pr]) p->tail[pr] = NULL;
            p->queued--;
            return t;
        }
    }
    return NULL;
}

static void *worker(void *arg) {
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    sl_pool *p = wa.pool;
    pthread_setname_np(pthread_self(), "sluice-pool"); /* for top -H, perf and the report (threads.h) */
    sl_guard_thread_begin(); /* a stack overflow in a plugin is reported too (guard.h) */
    void (*thread_exit)(void *, int) = NULL;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        sl_task *t;
        while (!(t = take(p)) && !p->stopping) pthread_cond_wait(&p->cond, &p->lock);
        thread_exit = p->thread_exit; /* read under the lock: sl_pool_abandon clears it */
        pthread_mutex_unlock(&p->lock);
        if (!t) break; /* stopping and nothing left */
        t->t_start = sl_now_ns();
        t->run(t, wa.index);
        t->t_end = sl_now_ns();
        t->post.fn = post_done;
        sl_loop_post(p->loop, &t->post);
    }
    if (thread_exit) thread_exit(p->arg, wa.index);
    sl_guard_thread_end();
    return NULL;
}

int sl_pool_new(sl_loop *loop, int threads, void (*thread_exit)(void *, int), void *arg, sl_pool **out) {
    if (threads < 1) threads = 1;
    sl_pool *p = calloc(1, sizeof *p);
    if (!p) return -1;
    p->threads = calloc((size_t)threads, sizeof *p->threads);
    p->cap = threads;
    if (!p->threads) {
        free(p);
        return -1;
    }
    p->loop = loop;
    p->thread_exit = thread_exit;
    p->arg = arg;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    /* Pool threads run C libraries on untrusted input, and some recurse as
     * deep as the input nests (mupdf loads a PDF outline, and runs nested
     * form XObjects, recursively: an outline 100,000 deep overflowed the
     * default 8 MB stack and took the process down). The stack is address
     * space, touched only as deep as a call goes: 256 MB holds what fits
     * under the default max_file_size; deeper input fails in the library's
     * own limits or faults only that far. */
    pthread_attr_t attr;
    int have_attr = pthread_attr_init(&attr) == 0;
    if (have_attr && pthread_attr_setstacksize(&attr, SL_POOL_STACK) != 0) {
        pthread_attr_destroy(&attr);
        have_attr = 0;
    }
    for (int i = 0; i < threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) break;
        wa->pool = p;
        wa->index = i;
        if (pthread_create(&p->threads[i], have_attr ? &attr : NULL, worker, wa) != 0) {
            free(wa);
            break;
        }
        p->nthreads++;
    }
    if (have_attr) pthread_attr_destroy(&attr);
    if (p->nthreads == 0) {
        sl_pool_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

int sl_pool_threads(const sl_pool *p) { return p->nthreads; }

int sl_pool_add_thread(sl_pool *p) {
    pthread_mutex_lock(&p->lock);
    if (p->nthreads == p->cap) {
        int nc = p->cap * 2;
        pthread_t *nt = realloc(p->threads, (size_t)nc * sizeof *nt);
        if (!nt) {
            pthread_mutex_unlock(&p->lock);
            return -1;
        }
        p->threads = nt;
        p->cap = nc;
    }
    int index = p->nthreads;
    pthread_mutex_unlock(&p->lock);
    worker_arg *wa = malloc(sizeof *wa);
    if (!wa) return -1;
    wa->pool = p;
    wa->index = index;
    pthread_attr_t attr;
    int have_attr = pthread_attr_init(&attr) == 0;
    if (have_attr && pthread_attr_setstacksize(&attr, SL_POOL_STACK) != 0) {
        pthread_attr_destroy(&attr);
        have_attr = 0;
    }
    pthread_t t;
    int rc = pthread_create(&t, have_attr ? &attr : NULL, worker, wa);
    if (have_attr) pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(wa);
        return -1;
    }
    pthread_mutex_lock(&p->lock);
    p->threads[p->nthreads++] = t;
    pthread_mutex_unlock(&p->lock);
    return index;
}

void sl_pool_abandon(sl_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    /* the threads that end now must not run thread_exit: its argument (the
     * run) is freed while they end, and the process exits soon after */
    p->thread_exit = NULL;
    p->stopping = 1;
    pthread_cond_broadcast(&p->cond);
    for (int i = 0; i < p->nthreads; i++) pthread_detach(p->threads[i]);
    pthread_mutex_unlock(&p->lock);
}

void sl_pool_submit(sl_pool *p, sl_task *t) {
    int pr = t->priority;
    if (pr < 0) pr = 0;
    if (pr >= SL_POOL_PRIORITIES) pr = SL_POOL_PRIORITIES - 1;
    t->next = NULL;
    t->t_submit = sl_now_ns();
    pthread_mutex_lock(&p->lock);
    if (p->tail[pr])
        p->tail[pr]->next = t;
    else
        p->head[pr] = t;
    p->tail[pr] = t;
    p->queued++;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

int sl_pool_queued(sl_pool *p) {
    pthread_mutex_lock(&p->lock);
    int n = p->queued;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void sl_pool_free(sl_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}
