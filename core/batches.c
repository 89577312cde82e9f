/* batches.c - embedding: chunks from many documents in one call.
 *
 * An embedder's stage keeps the chunks of every document at its embed step
 * in one queue; a batch goes out when batch_size chunks wait, or when the
 * oldest has waited batch_delay (the flush timer, armed whenever chunks
 * wait). Each chunk is one part of its job. A batch that fails for good is
 * split into one batch per document and tried again, so one bad document
 * does not fail its neighbours; a batch of one document fails it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"

size_t batches_pending(const stage *st) { return st->pend_len - st->pend_head; }

/* Tokens a batch will cost, roughly: four characters a token. */
static uint64_t batch_estimate(const chunk_ref *refs, size_t n) {
    uint64_t chars = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        sl_chunk_text(refs[i].job->doc, refs[i].chunk, &len);
        chars += len;
    }
    return chars / 4 + 1;
}

/* Fails the chunks of a batch that will not be embedded. */
static void fail_refs(const stage *st, const chunk_ref *refs, size_t n, const char *reason) {
    for (size_t i = 0; i < n; i++) {
        job_mark_failed(refs[i].job, st, reason);
        job_part_done(refs[i].job);
    }
}

/* A batch unit over refs (taken: freed with the unit). */
static void send_refs(stage *st, chunk_ref *refs, size_t n, int solo) {
    unit *u = unit_new(st, NULL);
    if (!u) {
        fail_refs(st, refs, n, "out of memory");
        free(refs);
        return;
    }
    u->u.batch.refs = refs;
    u->u.batch.n = n;
    u->u.batch.solo = solo;
    u->estimate = batch_estimate(refs, n);
    stage_dispatch(u);
}

static void send_batch(stage *st, size_t max) {
    chunk_ref *refs = malloc(max * sizeof *refs);
    if (!refs) {
        run_fatal(st->run, stage_name(st), "out of memory");
        return;
    }
    size_t n = 0;
    while (n < max && st->pend_head < st->pend_len) {
        chunk_ref rf = st->pend[st->pend_head++];
        if (rf.job->failed) { /* a neighbour of its document failed: don't embed it */
            job_part_done(rf.job);
            continue;
        }
        refs[n++] = rf;
    }
    if (st->pend_head == st->pend_len) st->pend_head = st->pend_len = 0;
    if (n == 0) {
        free(refs);
        return;
    }
    send_refs(st, refs, n, 0);
}

void batches_flush_timer(uv_timer_t *t) {
    stage *st = t->data;
    st->flush_on = 0;
    while (batches_pending(st)) send_batch(st, st->batch_size);
}

static void maybe_flush(stage *st) {
    while (batches_pending(st) >= st->batch_size) send_batch(st, st->batch_size);
    if (batches_pending(st) && !st->flush_on) {
        st->flush_on = 1;
        uv_timer_start(&st->flush, batches_flush_timer, st->delay_ms, 0);
    }
}

/* Room in the stage's queue for n more chunks; 0, or -1 on out of memory. */
static int pend_reserve(stage *st, size_t n) {
    if (st->pend_len + n > st->pend_cap) {
        /* compact, then grow */
        if (st->pend) memmove(st->pend, st->pend + st->pend_head, batches_pending(st) * sizeof *st->pend);
        st->pend_len -= st->pend_head;
        st->pend_head = 0;
        size_t cap = st->pend_cap ? st->pend_cap : 256;
        while (cap < st->pend_len + n) cap *= 2;
        chunk_ref *np = realloc(st->pend, cap * sizeof *np);
        if (!np) return -1;
        st->pend = np;
        st->pend_cap = cap;
    }
    return 0;
}

void op_start_embed(job *j, stage *st) {
    size_t n = sl_doc_chunk_count(j->doc);
    if (pend_reserve(st, n)) {
        job_mark_failed(j, st, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) st->pend[st->pend_len++] = (chunk_ref){j, (uint32_t)i};
    job_parts_add(j, (uint32_t)n);
    maybe_flush(st);
}

void batches_add_chunk(job *j, stage *st, uint32_t chunk) {
    if (pend_reserve(st, 1)) {
        job_mark_failed(j, st, "out of memory");
        job_part_done(j);
        return;
    }
    st->pend[st->pend_len++] = (chunk_ref){j, chunk};
    maybe_flush(st);
}

/* --- on the executing thread: the texts of a batch --- */

/* The text embedded for a chunk: its own, or its summary and its text. */
static char *embed_text(const unit *u, size_t i, sl_text *t) {
    const chunk_ref *rf = &u->u.batch.refs[i];
    const sl_doc *doc = rf->job->doc;
    t->ptr = sl_chunk_text(doc, rf->chunk, &t->len);
    const char *sum = sl_chunk_summary(doc, rf->chunk);
    if (!sum || !u->st->run->plans[rf->job->route].embed_summaries) return NULL;
    size_t sl = strlen(sum);
    char *both = malloc(sl + 2 + t->len + 1);
    if (!both) return NULL;
    memcpy(both, sum, sl);
    memcpy(both + sl, "\n\n", 2);
    memcpy(both + sl + 2, t->ptr, t->len);
    both[sl + 2 + t->len] = '\0';
    t->ptr = both;
    t->len += sl + 2;
    return both;
}

const char *op_prepare_embed(unit *u) {
    size_t n = u->u.batch.n;
    uint32_t dim = u->thr->inst->dim;
    sl_loop *loop = u->st->run->loop;
    free(u->u.batch.out); /* a retried batch allocated one already */
    sl_meter_add(loop, -(long long)u->u.batch.out_bytes);
    u->u.batch.out_bytes = n * dim * sizeof(float);
    u->u.batch.out = malloc(u->u.batch.out_bytes);
    sl_meter_add(loop, (long long)u->u.batch.out_bytes);
    u->u.batch.texts = malloc(n * sizeof *u->u.batch.texts);
    u->u.batch.joined = calloc(n, sizeof *u->u.batch.joined);
    if (!u->u.batch.out || !u->u.batch.texts || !u->u.batch.joined)
        return "out of memory for a batch of texts";
    for (size_t i = 0; i < n; i++) u->u.batch.joined[i] = embed_text(u, i, &u->u.batch.texts[i]);
    u->args.texts = u->u.batch.texts;
    u->args.n = n;
    u->args.vectors = u->u.batch.out;
    return NULL;
}

void op_release_embed(unit *u) {
    for (size_t i = 0; u->u.batch.joined && i < u->u.batch.n; i++) free(u->u.batch.joined[i]);
    free(u->u.batch.joined);
    free(u->u.batch.texts);
    u->u.batch.joined = NULL;
    u->u.batch.texts = NULL;
    u->args.texts = NULL;
}

/* --- answers --- */

/* Copies a successful batch's vectors into the documents. */
static void batch_stored(unit *u) {
    uint32_t dim = u->st->inst->dim;
    for (size_t i = 0; i < u->u.batch.n; i++) {
        job *j = u->u.batch.refs[i].job;
        const float *v = u->u.batch.out + i * dim;
        int finite = 1;
        for (uint32_t k = 0; k < dim && finite; k++) finite = isfinite(v[k]);
        if (!finite)
            job_mark_failed(j, u->st, "the embedder returned a non-finite value (NaN or inf)");
        else if (!j->failed) {
            if (sl_doc_set_chunk_vector(j->doc, u->u.batch.refs[i].chunk, v, dim) != 0)
                job_mark_failed(j, u->st, "out of memory for vectors");
        }
        job_part_done(j);
    }
}

/* A batch failed for good: split by document, or fail its document. */
static void batch_failed(unit *u, const char *reason) {
    const chunk_ref *refs = u->u.batch.refs;
    size_t n = u->u.batch.n;
    int mixed = 0;
    for (size_t i = 1; i < n && !mixed; i++) mixed = refs[i].job != refs[0].job;
    if (!mixed || u->u.batch.solo) {
        fail_refs(u->st, refs, n, reason);
        return;
    }
    for (size_t i = 0; i < n;) {
        size_t k = i;
        while (k < n && refs[k].job == refs[i].job) k++;
        chunk_ref *part = malloc((k - i) * sizeof *part);
        if (!part) {
            fail_refs(u->st, refs + i, k - i, "out of memory");
        } else {
            memcpy(part, refs + i, (k - i) * sizeof *part);
            send_refs(u->st, part, k - i, 1);
        }
        i = k;
    }
}

void op_done_embed(unit *u, int rc, const char *msg) {
    if (rc < 0)
        batch_failed(u, msg);
    else
        batch_stored(u);
    unit_free(u);
}
