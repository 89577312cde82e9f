/* test_executors.c - the loop thread and the thread pool: posts from many
 * threads all arrive, on the loop thread, in order per thread; pool tasks run
 * on pool threads with valid indexes, complete on the loop thread, in
 * priority order, and every thread runs its exit hook once. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "loop.h"
#include "pool.h"

static pthread_t loop_thread;

/* The loop's hand-off does not keep it alive (loop.h): a timer does here,
 * closed once the test has seen everything it waits for. */
static uv_timer_t keeper;
static void on_keep(uv_timer_t *t) {}
static void keep_alive(sl_loop *loop) {
    uv_timer_init(sl_loop_uv(loop), &keeper);
    uv_timer_start(&keeper, on_keep, 100000, 100000);
}
static void let_go(sl_loop *loop) { uv_close((uv_handle_t *)&keeper, NULL); }

/* --- posts --- */

#define POSTERS 4
#define POSTS 2000

typedef struct msg {
    sl_post post;
    int from, seq;
} msg;

static int received, wrong_thread, out_of_order;
static int last_seq[POSTERS];
static sl_loop *the_loop;

static void on_msg(sl_post *p) {
    msg *m = (msg *)p;
    if (!pthread_equal(pthread_self(), loop_thread)) wrong_thread++;
    if (m->seq != last_seq[m->from] + 1) out_of_order++;
    last_seq[m->from] = m->seq;
    free(m);
    if (++received == POSTERS * POSTS) let_go(the_loop);
}

static void *poster(void *arg) {
    int from = (int)(intptr_t)arg;
    for (int i = 0; i < POSTS; i++) {
        msg *m = malloc(sizeof *m);
        m->post.fn = on_msg;
        m->from = from;
        m->seq = i;
        sl_loop_post(the_loop, &m->post);
    }
    return NULL;
}

static void test_posts_arrive_on_loop_thread_in_order(void) {
    CHECK_INT(sl_loop_new(&the_loop), 0);
    keep_alive(the_loop);
    for (int i = 0; i < POSTERS; i++) last_seq[i] = -1;
    pthread_t t[POSTERS];
    for (int i = 0; i < POSTERS; i++) pthread_create(&t[i], NULL, poster, (void *)(intptr_t)i);
    sl_loop_run(the_loop);
    for (int i = 0; i < POSTERS; i++) pthread_join(t[i], NULL);
    CHECK_INT(received, POSTERS * POSTS);
    CHECK_INT(wrong_thread, 0);
    CHECK_INT(out_of_order, 0);
    sl_loop_free(the_loop);
}

/* --- pool --- */

#define TASKS 300
typedef struct job {
    sl_task task;
    int thread;
    int order;
} job;

static int done_count, done_wrong_thread, bad_index, exits[8], order_counter;
static int nthreads_seen = 3;
static sl_loop *pool_loop;
static sl_pool *pool;

static void run_job(sl_task *t, int thread) {
    job *j = (job *)t;
    j->thread = thread;
    if (thread < 0 || thread >= nthreads_seen) __atomic_add_fetch(&bad_index, 1, __ATOMIC_SEQ_CST);
}

static void job_done(sl_task *t) {
    if (!pthread_equal(pthread_self(), loop_thread)) done_wrong_thread++;
    if (++done_count == TASKS) let_go(pool_loop);
}

static void on_exit_hook(void *arg, int thread) {
    if (thread >= 0 && thread < 8) __atomic_add_fetch(&exits[thread], 1, __ATOMIC_SEQ_CST);
}

static void test_pool_tasks_complete_on_loop_with_thread_indexes(void) {
    CHECK_INT(sl_loop_new(&pool_loop), 0);
    keep_alive(pool_loop);
    CHECK_INT(sl_pool_new(pool_loop, nthreads_seen, on_exit_hook, NULL, &pool), 0);
    CHECK_INT(sl_pool_threads(pool), nthreads_seen);
    job *jobs = calloc(TASKS, sizeof *jobs);
    for (int i = 0; i < TASKS; i++) {
        jobs[i].thread = -1;
        jobs[i].task.run = run_job;
        jobs[i].task.done = job_done;
        jobs[i].task.priority = i % SL_POOL_PRIORITIES;
        sl_pool_submit(pool, &jobs[i].task);
    }
    sl_loop_run(pool_loop);
    CHECK_INT(done_count, TASKS);
    CHECK_INT(done_wrong_thread, 0);
    CHECK_INT(bad_index, 0);
    int ran = 0;
    for (int i = 0; i < TASKS; i++) ran += jobs[i].thread >= 0;
    CHECK_INT(ran, TASKS);
    sl_pool_free(pool);
    for (int i = 0; i < nthreads_seen; i++) CHECK_INT(exits[i], 1);
    sl_loop_free(pool_loop);
    free(jobs);
}

/* One thread, blocked while tasks of mixed priority queue up: once
 * released, they must run highest priority first, FIFO within one. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open, gate_entered;

static void run_gate(sl_task *t, int thread) {
    pthread_mutex_lock(&gate_lock);
    gate_entered = 1;
    pthread_cond_broadcast(&gate_cond);
    while (!gate_open) pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
}

static void run_ordered(sl_task *t, int thread) { ((job *)t)->order = order_counter++; }

static int prio_done;
static void prio_job_done(sl_task *t) {
    if (++prio_done == 7) let_go(pool_loop);
}

static void test_pool_runs_higher_priority_first(void) {
    CHECK_INT(sl_loop_new(&pool_loop), 0);
    keep_alive(pool_loop);
    CHECK_INT(sl_pool_new(pool_loop, 1, NULL, NULL, &pool), 0);
    job gate = {.task = {.run = run_gate, .done = prio_job_done, .priority = 0}};
    sl_pool_submit(pool, &gate.task);
    pthread_mutex_lock(&gate_lock);
    while (!gate_entered) pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    int prios[6] = {1, 5, 1, 7, 5, 0};
    job js[6];
    for (int i = 0; i < 6; i++) {
        js[i] = (job){.task = {.run = run_ordered, .done = prio_job_done, .priority = prios[i]}};
        sl_pool_submit(pool, &js[i].task);
    }
    CHECK_INT(sl_pool_queued(pool), 6);
    pthread_mutex_lock(&gate_lock);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    sl_loop_run(pool_loop);
    /* expected: 7 (i=3), 5 (i=1), 5 (i=4), 1 (i=0), 1 (i=2), 0 (i=5) */
    CHECK_INT(js[3].order, 0);
    CHECK_INT(js[1].order, 1);
    CHECK_INT(js[4].order, 2);
    CHECK_INT(js[0].order, 3);
    CHECK_INT(js[2].order, 4);
    CHECK_INT(js[5].order, 5);
    sl_pool_free(pool);
    sl_loop_free(pool_loop);
}

int main(void) {
    loop_thread = pthread_self();
    test_posts_arrive_on_loop_thread_in_order();
    test_pool_tasks_complete_on_loop_with_thread_indexes();
    test_pool_runs_higher_priority_first();
    CHECK(sl_cpu_count() >= 1);
    return check_done();
}
