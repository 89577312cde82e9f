/* batcher.c - the gpu executor (see batcher.h).
 *
 * Units wait in groups, one per page image shape (a single group when the
 * stage does not group by shape). The dispatcher thread sleeps on a
 * condition variable with a CLOCK_MONOTONIC deadline: the oldest head of any
 * group plus max_delay. It wakes when a group holds a full batch, when that
 * deadline passes, or when the batcher is freed (then it empties the queue
 * without waiting). A full group goes first; otherwise the group whose head
 * has waited longest.
 *
 * The ceiling starts at max_batch. A batch that runs out of memory lowers
 * it to half its size and the same units go again in batches of the new
 * ceiling; once a batch below the smallest failing size works, the ceiling
 * is the largest such size. It never grows back: device memory that ran
 * out once (another process, fragmentation) tends to run out again. A unit
 * that runs out of memory even alone fails with the plugin's message, and
 * the failures it caused do not count against the batch size.
 *
 * Completions travel back without allocating: a finished batch's units are
 * linked together and the first one's embedded sl_post carries them all to
 * the loop thread in one hand-off.
 *
 * Embedding units (sl_batcher_submit_texts) arrive already batched across
 * documents by the embed stage (batches.c): each is one group of its own
 * kind, goes out as soon as the dispatcher is free, and its texts are the
 * items the ceiling counts, so a batch of texts that runs out of memory is
 * split and retried exactly like a batch of pages.
 */
#include "batcher.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops.h"
#include "sluice/plugin.h"

typedef struct unit unit;
struct unit {
    sl_post post; /* first: a finished batch travels to the loop as its first unit's post */
    unit *next;   /* in its group's queue, then in its finished batch */
    sl_doc *doc;
    uint32_t page;
    uint32_t w, h, channels; /* the page image's shape (0 when it has none) */
    const sl_text *texts;    /* an embedding unit: its texts (NULL for a page) */
    size_t ntexts;
    float *out; /* ntexts * dim floats */
    uint32_t dim;
    sl_batch_done done;
    void *arg;
    uint64_t t_submit;
    sl_batch_times times; /* when its first batch started, its share of device time */
    int rc;
    char *msg; /* malloc'd on failure; NULL when out of memory for it too */
};

/* Units of one shape, oldest first. */
typedef struct group {
    uint32_t w, h, channels;
    bool texts; /* a group of embedding units */
    unit *head, *tail;
    uint32_t count;
} group;

struct sl_batcher {
    sl_loop *loop;
    sl_instance *inst;
    sl_batcher_opts opts;
    pthread_t thread;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cond;
    group *groups;
    size_t ngroups, cgroups;
    uint32_t queued;
    int stopping;
    sl_batcher_stats stats;
    uint32_t oom_floor; /* smallest batch size that ran out of memory; 0: none yet */
    uint32_t best;      /* largest size below oom_floor that worked; 0: none yet */
    /* dispatcher-only scratch, max_batch long: what `pages` receives */
    unit **batch;
    sl_doc **docs;
    uint32_t *pages;
};

void sl_batcher_opts_for(const sl_instance *inst, sl_batcher_opts *out) {
    memset(out, 0, sizeof *out);
    int64_t bs = inst->stage.batch_size > 0 ? inst->stage.batch_size : (int64_t)inst->desc->batch_size;
    out->max_batch = bs > 0 ? (bs > 65536 ? 65536 : (uint32_t)bs) : 16;
    out->max_delay_ms = inst->stage.batch_delay_ms > 0 ? (uint64_t)inst->stage.batch_delay_ms : 0;
    out->group_by_shape = false;
}

static int bucket(size_t n) {
    int b = 0;
    size_t top = 1;
    while (n > top && b < SL_BATCH_HIST - 1) {
        top *= 2;
        b++;
    }
    return b;
}

const char *sl_batcher_bucket_label(int b) {
    static const char *const labels[SL_BATCH_HIST] = {"1",    "2",     "3-4",   "5-8",
                                                      "9-16", "17-32", "33-64", "65+"};
    return b >= 0 && b < SL_BATCH_HIST ? labels[b] : "?";
}

/* --- the ceiling (under the lock) --- */

static uint32_t ceiling(const sl_batcher *b) {
    if (b->oom_floor == 0) return b->opts.max_batch;
    if (b->best) return b->best;
    return (b->oom_floor + 1) / 2; /* oom_floor >= 2: only batches of two or more are split */
}

static void lower(sl_batcher *b, uint32_t n) {
    if (b->oom_floor == 0 || n < b->oom_floor) b->oom_floor = n;
    if (b->best >= b->oom_floor) b->best = 0;
}

static void raise_best(sl_batcher *b, uint32_t n) {
    if (b->oom_floor && n < b->oom_floor && n > b->best) b->best = n;
}

/* --- loop side --- */

/* Runs on the loop thread: every unit of one finished batch. */
static void deliver(sl_post *post) {
    unit *u = (unit *)post;
    while (u) {
        unit *next = u->next;
        u->done(u->arg, u->rc, u->rc ? (u->msg ? u->msg : sl_strerror(u->rc)) : NULL, &u->times);
        free(u->msg);
        free(u);
        u = next;
    }
}

static group *group_for(sl_batcher *b, const unit *u) {
    for (size_t i = 0; i < b->ngroups; i++) {
        group *g = &b->groups[i];
        if (g->texts != (u->texts != NULL)) continue;
        if (g->texts || !b->opts.group_by_shape ||
            (g->w == u->w && g->h == u->h && g->channels == u->channels))
            return g;
    }
    if (b->ngroups == b->cgroups) {
        size_t nc = b->cgroups ? b->cgroups * 2 : 4;
        group *ng = realloc(b->groups, nc * sizeof *ng);
        if (!ng) return NULL;
        b->groups = ng;
        b->cgroups = nc;
    }
    group *g = &b->groups[b->ngroups++];
    memset(g, 0, sizeof *g);
    g->w = u->w;
    g->h = u->h;
    g->channels = u->channels;
    g->texts = u->texts != NULL;
    return g;
}

static int enqueue(sl_batcher *b, unit *u) {
    u->t_submit = sl_now_ns();
    pthread_mutex_lock(&b->lock);
    group *g = b->stopping ? NULL : group_for(b, u);
    if (!g) {
        int rc = b->stopping ? SL_EINVAL : SL_ENOMEM;
        pthread_mutex_unlock(&b->lock);
        free(u);
        return rc;
    }
    if (g->tail)
        g->tail->next = u;
    else
        g->head = u;
    g->tail = u;
    g->count++;
    b->queued++;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
    return 0;
}

int sl_batcher_submit(sl_batcher *b, sl_doc *doc, uint32_t page, sl_batch_done done, void *arg) {
    if (!b || !doc || !done || !b->inst->desc->pages) return SL_EINVAL;
    unit *u = calloc(1, sizeof *u);
    if (!u) return SL_ENOMEM;
    u->doc = doc;
    u->page = page;
    u->done = done;
    u->arg = arg;
    /* The image is read here, on the loop thread that owns the document,
     * and only its shape is kept. */
    sl_doc_page_image(doc, page, &u->w, &u->h, &u->channels, NULL, NULL);
    return enqueue(b, u);
}

int sl_batcher_submit_texts(sl_batcher *b, const sl_text *texts, size_t n, float *out, uint32_t dim,
                            sl_batch_done done, void *arg) {
    if (!b || !texts || !out || !done || !dim || !b->inst->desc->embed) return SL_EINVAL;
    unit *u = calloc(1, sizeof *u);
    if (!u) return SL_ENOMEM;
    u->texts = texts;
    u->ntexts = n;
    u->out = out;
    u->dim = dim;
    u->done = done;
    u->arg = arg;
    return enqueue(b, u);
}

uint32_t sl_batcher_queued(sl_batcher *b) {
    pthread_mutex_lock(&b->lock);
    uint32_t n = b->queued;
    pthread_mutex_unlock(&b->lock);
    return n;
}

void sl_batcher_stats_get(sl_batcher *b, sl_batcher_stats *out) {
    pthread_mutex_lock(&b->lock);
    *out = b->stats;
    pthread_mutex_unlock(&b->lock);
}

/* --- the dispatcher --- */

/* Under the lock: the group to take a batch from now, or NULL and the
 * moment (ns) the oldest head comes due. */
static group *pick(sl_batcher *b, uint64_t now, uint64_t *due) {
    uint32_t limit = ceiling(b);
    group *oldest = NULL;
    for (size_t i = 0; i < b->ngroups; i++) {
        group *g = &b->groups[i];
        if (!g->head) continue;
        if (g->count >= limit || g->texts) return g; /* texts come batched: no wait */
        if (!oldest || g->head->t_submit < oldest->head->t_submit) oldest = g;
    }
    if (!oldest) return NULL;
    if (b->stopping) return oldest;
    uint64_t deadline = oldest->head->t_submit + b->opts.max_delay_ms * 1000000u;
    if (now >= deadline) return oldest;
    *due = deadline;
    return NULL;
}

/* Under the lock: moves up to `limit` units from g's head into b->batch. */
static size_t take(sl_batcher *b, group *g, uint32_t limit) {
    size_t n = 0;
    while (g->head && n < limit) {
        unit *u = g->head;
        g->head = u->next;
        u->next = NULL;
        b->batch[n++] = u;
    }
    if (!g->head) g->tail = NULL;
    g->count -= (uint32_t)n;
    b->queued -= (uint32_t)n;
    if (!g->head) *g = b->groups[--b->ngroups]; /* empty groups go: shapes come and go */
    return n;
}

static void fail_units(unit **us, size_t n, int rc, const char *msg) {
    for (size_t i = 0; i < n; i++) {
        us[i]->rc = rc;
        us[i]->msg = msg && *msg ? strdup(msg) : NULL;
    }
}

/* One call into `pages` on units [start, start + k) of the batch. */
typedef struct attempt {
    uint32_t start, k;
    int rc;
} attempt;

#define MAX_ATTEMPTS 64

/* A unit that ran out of memory on its own (a batch of one) explains every
 * failed batch it was part of: those failures say nothing about batch size,
 * and one oversized page must not drag the ceiling down for the rest of the
 * run. So the ceiling is worked out again from the attempts without them.
 * alone_text: for an embedding unit, the text that ran out alone (else -1). */
static void forgive(sl_batcher *b, uint32_t floor0, uint32_t best0, const attempt *log, size_t nlog,
                    long alone_text) {
    unit **us = b->batch;
    pthread_mutex_lock(&b->lock);
    b->oom_floor = floor0;
    b->best = best0;
    for (size_t i = 0; i < nlog; i++) {
        if (log[i].rc == 0) {
            raise_best(b, log[i].k);
        } else if (log[i].rc == SL_ENOMEM && log[i].k > 1) {
            int explained = 0;
            if (alone_text >= 0)
                explained = alone_text >= (long)log[i].start && alone_text < (long)(log[i].start + log[i].k);
            for (uint32_t j = log[i].start; alone_text < 0 && j < log[i].start + log[i].k && !explained; j++)
                explained = us[j]->rc == SL_ENOMEM;
            if (!explained) lower(b, log[i].k);
        }
    }
    b->stats.ceiling = ceiling(b);
    pthread_mutex_unlock(&b->lock);
}

/* Records one call of k items from `done` on: its attempt (for forgive),
 * the batch statistics, and the ceiling it teaches (lowered on SL_ENOMEM,
 * raised on success). Returns whether the batch is to be split and run
 * again: out of memory with more than one item. */
static int account(sl_batcher *b, size_t done, size_t k, int rc, uint64_t ns, attempt *log, size_t *nlog,
                   int *overflow) {
    if (*nlog < MAX_ATTEMPTS)
        log[(*nlog)++] = (attempt){(uint32_t)done, (uint32_t)k, rc};
    else
        *overflow = 1;
    int split = rc == SL_ENOMEM && k > 1;
    pthread_mutex_lock(&b->lock);
    b->stats.batches++;
    b->stats.hist[bucket(k)]++;
    b->stats.device_ns += ns;
    if (split) {
        lower(b, (uint32_t)k);
        b->stats.splits++;
    } else if (rc == 0) {
        raise_best(b, (uint32_t)k);
    }
    b->stats.ceiling = ceiling(b);
    pthread_mutex_unlock(&b->lock);
    return split;
}

/* Runs the plugin on units [0, n) of b->batch, in batches no larger than
 * the ceiling, lowering it on SL_ENOMEM; fills every unit's rc and msg. */
static void run_batch(sl_batcher *b, size_t n, sl_tstate *ts) {
    unit **us = b->batch;
    uint64_t now = sl_now_ns(), wait = 0;
    for (size_t i = 0; i < n; i++) wait += now > us[i]->t_submit ? now - us[i]->t_submit : 0;
    pthread_mutex_lock(&b->lock);
    b->stats.queue_wait_ns += wait;
    b->stats.units += n;
    uint32_t floor0 = b->oom_floor, best0 = b->best;
    pthread_mutex_unlock(&b->lock);

    attempt log[MAX_ATTEMPTS];
    size_t nlog = 0, done = 0;
    int overflow = 0, alone = 0;
    while (done < n) {
        pthread_mutex_lock(&b->lock);
        size_t k = n - done, lim = ceiling(b);
        pthread_mutex_unlock(&b->lock);
        if (k > lim) k = lim;
        for (size_t i = 0; i < k; i++) {
            b->docs[i] = us[done + i]->doc;
            b->pages[i] = us[done + i]->page;
        }
        sl_call call;
        sl_op_args args = {.docs = b->docs, .pages = b->pages, .n = k};
        uint64_t t0 = sl_now_ns();
        int rc = sl_op_call(sl_op_get(SL_OP_PAGE), b->inst, ts, &args, &call, NULL, NULL);
        uint64_t t1 = sl_now_ns();
        for (size_t i = 0; i < k; i++) {
            sl_batch_times *t = &us[done + i]->times;
            if (!t->t_start) t->t_start = t0;
            t->busy_ns += (t1 - t0) / k;
        }
        us[done]->times.calls++;
        int split = account(b, done, k, rc, t1 - t0, log, &nlog, &overflow);
        if (split) continue; /* the same units again, in smaller batches */
        if (rc)
            fail_units(us + done, k, rc, call.msg);
        else
            for (size_t i = 0; i < k; i++) us[done + i]->rc = 0;
        alone |= rc == SL_ENOMEM;
        done += k;
    }
    if (alone && !overflow) forgive(b, floor0, best0, log, nlog, -1);
}

/* Runs the plugin's `embed` on the texts of one embedding unit, at most the
 * ceiling at a time, lowering it on SL_ENOMEM; the first failure that is
 * not a split fails the unit (the embed stage then retries its documents
 * one by one, batches.c). */
static void run_texts(sl_batcher *b, unit *u, sl_tstate *ts) {
    uint64_t now = sl_now_ns();
    pthread_mutex_lock(&b->lock);
    b->stats.queue_wait_ns += now > u->t_submit ? (now - u->t_submit) * u->ntexts : 0;
    b->stats.units += u->ntexts;
    uint32_t floor0 = b->oom_floor, best0 = b->best;
    pthread_mutex_unlock(&b->lock);

    attempt log[MAX_ATTEMPTS];
    size_t nlog = 0, done = 0, n = u->ntexts;
    int overflow = 0;
    long alone = -1;
    u->rc = 0;
    while (done < n) {
        pthread_mutex_lock(&b->lock);
        size_t k = n - done, lim = ceiling(b);
        pthread_mutex_unlock(&b->lock);
        if (k > lim) k = lim;
        sl_call call;
        sl_op_args args = {.texts = u->texts + done, .n = k, .vectors = u->out + done * u->dim};
        uint64_t t0 = sl_now_ns();
        int rc = sl_op_call(sl_op_get(SL_OP_EMBED), b->inst, ts, &args, &call, NULL, NULL);
        uint64_t t1 = sl_now_ns();
        if (!u->times.t_start) u->times.t_start = t0;
        u->times.busy_ns += t1 - t0;
        u->times.calls++;
        int split = account(b, done, k, rc, t1 - t0, log, &nlog, &overflow);
        if (split) continue;
        if (rc) {
            u->rc = rc;
            u->msg = call.msg[0] ? strdup(call.msg) : NULL;
            if (rc == SL_ENOMEM) alone = (long)done;
            break;
        }
        done += k;
    }
    if (alone >= 0 && !overflow) forgive(b, floor0, best0, log, nlog, alone);
}

static void post_batch(sl_batcher *b, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) b->batch[i]->next = b->batch[i + 1];
    b->batch[n - 1]->next = NULL;
    b->batch[0]->post.fn = deliver;
    sl_loop_post(b->loop, &b->batch[0]->post);
}

static void *dispatcher(void *arg) {
    sl_batcher *b = arg;
    pthread_setname_np(pthread_self(), "sluice-batcher");
    sl_tstate ts = {0}; /* made on the first batch, by sl_op_call */
    pthread_mutex_lock(&b->lock);
    for (;;) {
        uint64_t due = 0;
        group *g = pick(b, sl_now_ns(), &due);
        if (!g) {
            if (b->stopping && b->queued == 0) break;
            if (due) {
                struct timespec until = {(time_t)(due / 1000000000u), (long)(due % 1000000000u)};
                pthread_cond_timedwait(&b->cond, &b->lock, &until);
            } else {
                pthread_cond_wait(&b->cond, &b->lock);
            }
            continue;
        }
        size_t n = take(b, g, g->texts ? 1 : ceiling(b));
        pthread_mutex_unlock(&b->lock);
        if (b->batch[0]->texts)
            run_texts(b, b->batch[0], &ts);
        else
            run_batch(b, n, &ts);
        post_batch(b, n);
        pthread_mutex_lock(&b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    sl_tstate_free(b->inst, &ts);
    return NULL;
}

/* --- lifecycle --- */

static void destroy(sl_batcher *b) {
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    free(b->groups);
    free(b->batch);
    free(b->docs);
    free(b->pages);
    free(b);
}

int sl_batcher_new(sl_loop *loop, sl_instance *inst, const sl_batcher_opts *opts, sl_batcher **out) {
    *out = NULL;
    if (!loop || !inst || !opts || opts->max_batch == 0 || !(inst->desc->pages || inst->desc->embed))
        return SL_EINVAL;
    sl_batcher *b = calloc(1, sizeof *b);
    if (!b) return SL_ENOMEM;
    b->loop = loop;
    b->inst = inst;
    b->opts = *opts;
    b->stats.ceiling = opts->max_batch;
    b->batch = malloc(opts->max_batch * sizeof *b->batch);
    b->docs = malloc(opts->max_batch * sizeof *b->docs);
    b->pages = malloc(opts->max_batch * sizeof *b->pages);
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* sl_now_ns's clock: deadlines compare directly */
    pthread_cond_init(&b->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (!b->batch || !b->docs || !b->pages) {
        destroy(b);
        return SL_ENOMEM;
    }
    if (pthread_create(&b->thread, NULL, dispatcher, b) != 0) {
        destroy(b);
        return SL_EFATAL;
    }
    *out = b;
    return 0;
}

void sl_batcher_free(sl_batcher *b) {
    if (!b) return;
    pthread_mutex_lock(&b->lock);
    b->stopping = 1;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->thread, NULL);
    destroy(b);
}
