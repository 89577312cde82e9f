/* test_gpu.h - what the test gpu plugin records, shared with test_batcher.c
 * (which reads it through the instance's state pointer). */
#ifndef TEST_GPU_H
#define TEST_GPU_H

#include <pthread.h>
#include <stdint.h>

#define TEST_GPU_MAX_CALLS 1024

typedef struct test_gpu_conf {
    int64_t oom_above; /* batches larger than this answer SL_ENOMEM; 0: never */
    int64_t sleep_ms;  /* each call sleeps this long, as a model would compute */
} test_gpu_conf;

typedef struct test_gpu_state {
    test_gpu_conf c;
    pthread_mutex_t lock;
    /* per call to `pages`, in order */
    uint32_t sizes[TEST_GPU_MAX_CALLS];
    int mixed[TEST_GPU_MAX_CALLS]; /* the batch held pages of more than one image shape */
    int rcs[TEST_GPU_MAX_CALLS];
    int ncalls;
    /* threads */
    int thread_inits, thread_finis;
    pthread_t init_thread;
    int wrong_thread;       /* `pages` ran on a thread other than thread_init's */
    int wrong_thread_state; /* sl_call_thread_state was not what thread_init made */
} test_gpu_state;

#endif
