/* summaries.c - an llm stage: summaries of chunks and of whole documents.
 *
 * `summaries = chunks` asks one completion per chunk (its summary lands in
 * chunks.summary), `document` one for the whole text (metadata "summary"),
 * `both` both. A document longer than max_input_chars is summarised in
 * parts, cut at a line break near the limit (never inside a UTF-8
 * sequence), and then once more over the parts' summaries (map-reduce).
 * Prompts are templates with {title} {source} {heading} {text} filled in.
 * Each call is one part of its job's step.
 */
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"

/* A prompt template with {title} {source} {heading} {text} filled in. */
static char *fill_prompt(const char *tpl, const sl_doc *doc, const char *heading, const char *text,
                         size_t tlen, size_t *len) {
    const char *title = sl_doc_meta_get(doc, "title");
    struct {
        const char *key, *val;
        size_t vlen;
    } vars[] = {{"{title}", title ? title : "", 0},
                {"{source}", sl_doc_uri(doc), 0},
                {"{heading}", heading ? heading : "", 0},
                {"{text}", text, tlen}};
    for (size_t i = 0; i < 3; i++) vars[i].vlen = strlen(vars[i].val);
    size_t cap = strlen(tpl) + 1;
    for (const char *s = tpl; *s; s++)
        for (size_t i = 0; i < 4; i++)
            if (strncmp(s, vars[i].key, strlen(vars[i].key)) == 0) cap += vars[i].vlen;
    char *out = malloc(cap), *o = out;
    if (!out) return NULL;
    for (const char *s = tpl; *s;) {
        size_t i = 0;
        while (i < 4 && strncmp(s, vars[i].key, strlen(vars[i].key)) != 0) i++;
        if (i < 4) {
            memcpy(o, vars[i].val, vars[i].vlen);
            o += vars[i].vlen;
            s += strlen(vars[i].key);
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    *len = (size_t)(o - out);
    return out;
}

/* One completion call, as a part of j's step. */
/* A chunk's summary is in, or will never be: in a chained step its
 * embedding goes now (it reads the summary), or its part is given back. */
static void chunk_summarised(job *j, uint32_t chunk, int ok) {
    const route_plan *p = &j->run->plans[j->route];
    if (!p->chained || j->step != p->joint) return;
    if (ok && !j->failed)
        batches_add_chunk(j, p->steps[j->step + 1], chunk);
    else
        job_part_done(j);
}

static void ask(stage *st, job *j, int kind, uint32_t index, const char *tpl, const char *heading,
                const char *text, size_t len) {
    unit *u = unit_new(st, j);
    if (u) u->u.sum.prompt = fill_prompt(tpl, j->doc, heading, text, len, &u->u.sum.len);
    if (!u || !u->u.sum.prompt) {
        free(u);
        job_mark_failed(j, st, "out of memory for a prompt");
        if (kind == SUM_CHUNK) chunk_summarised(j, index, 0);
        return;
    }
    u->u.sum.kind = kind;
    u->u.sum.index = index;
    u->estimate = u->u.sum.len / 4 + 1;
    u->u.sum.text = (sl_text){u->u.sum.prompt, u->u.sum.len};
    u->args.prompt = &u->u.sum.text;
    u->args.answer = &u->u.sum.answer;
    job_parts_add(j, 1);
    stage_dispatch(u);
}

/* The document's text for its summary: elements joined by blank lines. */
static char *document_text(const sl_doc *doc, size_t *len) {
    size_t n = sl_doc_element_count(doc), total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        sl_element_text(doc, i, &l);
        total += l + 2;
    }
    char *t = malloc(total + 1), *o = t;
    if (!t) return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const char *s = sl_element_text(doc, i, &l);
        memcpy(o, s, l);
        o += l;
        if (i + 1 < n) *o++ = '\n', *o++ = '\n';
    }
    *o = '\0';
    *len = (size_t)(o - t);
    return t;
}

/* The last position in (off + max/2, off + max] holding c, or 0. */
static size_t last_in_half(const char *text, size_t off, size_t max, char c) {
    for (size_t i = off + max; i > off + max / 2; i--)
        if (text[i] == c) return i;
    return 0;
}

/* Where the part starting at off ends: at a line break in the second half
 * of the part where there is one, else at a space there (words are not cut
 * in two), else at max, moved back to a UTF-8 boundary; always past off, so
 * every byte is in exactly one part. */
static size_t part_end(const char *text, size_t len, size_t off, size_t max) {
    if (len - off <= max) return len;
    size_t end = last_in_half(text, off, max, '\n');
    if (!end) end = last_in_half(text, off, max, ' ');
    if (end) return end;
    end = off + max;
    while (end > off && ((unsigned char)text[end] & 0xC0) == 0x80) end--;
    if (end > off) return end;
    end = off + 1; /* max is shorter than this character: take it whole */
    while (end < len && ((unsigned char)text[end] & 0xC0) == 0x80) end++;
    return end;
}

/* Asks for the document's summary in parts of about max characters each,
 * covering the whole text. */
static void ask_parts(stage *st, job *j, const char *text, size_t len, size_t max) {
    uint32_t nparts = 0;
    for (size_t off = 0; off < len; off = part_end(text, len, off, max)) nparts++;
    j->summaries = calloc(nparts, sizeof *j->summaries);
    if (!j->summaries) {
        job_mark_failed(j, st, "out of memory");
        return;
    }
    j->nsummaries = j->summaries_left = nparts;
    uint32_t i = 0;
    for (size_t off = 0, end; off < len; off = end, i++) {
        end = part_end(text, len, off, max);
        ask(st, j, SUM_PART, i, st->inst->stage.document_prompt, NULL, text + off, end - off);
    }
}

void op_start_summaries(job *j, stage *st) {
    const sl_stage_conf *c = &st->inst->stage;
    int chunks = strcmp(c->summaries, "chunks") == 0 || strcmp(c->summaries, "both") == 0;
    int whole = strcmp(c->summaries, "document") == 0 || strcmp(c->summaries, "both") == 0;
    size_t len = 0;
    char *text = whole ? document_text(j->doc, &len) : NULL;
    size_t nchunks = chunks ? sl_doc_chunk_count(j->doc) : 0;
    if (whole && !text) {
        job_mark_failed(j, st, "out of memory for the document's text");
        for (size_t i = 0; i < nchunks; i++) chunk_summarised(j, (uint32_t)i, 0);
        return;
    }
    for (size_t i = 0; i < nchunks; i++) {
        size_t cl;
        const char *ct = sl_chunk_text(j->doc, i, &cl);
        ask(st, j, SUM_CHUNK, (uint32_t)i, c->chunk_prompt, sl_chunk_heading(j->doc, i), ct, cl);
    }
    if (whole) {
        size_t max = c->max_input_chars > 0 ? (size_t)c->max_input_chars : SIZE_MAX;
        if (len <= max)
            ask(st, j, SUM_DOC, 0, c->document_prompt, NULL, text, len);
        else
            ask_parts(st, j, text, len, max);
    }
    free(text);
}

/* Every part is summarised: summarise the summaries. */
static void ask_combined(stage *st, job *j) {
    j->sum_base_ns += j->sum_busy_ns; /* the combination comes after the parts */
    j->sum_busy_ns = 0;
    size_t total = 0;
    for (uint32_t i = 0; i < j->nsummaries; i++) total += (j->summaries[i] ? strlen(j->summaries[i]) : 0) + 2;
    char *all = malloc(total + 1), *o = all;
    if (!all) {
        job_mark_failed(j, st, "out of memory");
        return;
    }
    for (uint32_t i = 0; i < j->nsummaries; i++) {
        size_t l = j->summaries[i] ? strlen(j->summaries[i]) : 0;
        if (l) memcpy(o, j->summaries[i], l);
        o += l;
        *o++ = '\n', *o++ = '\n';
    }
    *o = '\0';
    ask(st, j, SUM_COMBINE, 0, st->inst->stage.document_prompt, NULL, all, (size_t)(o - all));
    free(all);
}

void op_done_summary(unit *u, int rc, const char *msg) {
    job *j = u->job;
    const char *text = u->u.sum.answer.text ? u->u.sum.answer.text : "";
    char why[512];
    if (u->u.sum.answer.bad) { /* whatever the plugin made of sl_completion_set's refusal */
        const sl_instance *in = u->thr && u->thr->inst ? u->thr->inst : u->st->inst;
        snprintf(why, sizeof why,
                 "[%s] %s answered text that is not valid UTF-8 at byte %zu (sl_completion_set refused it; "
                 "an LLM plugin's answer must be UTF-8)",
                 in ? in->name : stage_name(u->st), in ? in->desc->name : "the plugin",
                 u->u.sum.answer.bad_at);
        rc = SL_EBADINPUT;
        msg = why;
    }
    if (rc < 0) {
        job_mark_failed(j, u->st, msg);
    } else if (!j->failed) {
        if (u->u.sum.kind == SUM_CHUNK) {
            sl_chunk_set_summary(j->doc, u->u.sum.index, text); /* before chunk_summarised reads it */
        } else if (u->u.sum.kind == SUM_DOC || u->u.sum.kind == SUM_COMBINE) {
            sl_doc_meta_set(j->doc, "summary", text);
        } else if (u->u.sum.index < j->nsummaries) {
            j->summaries[u->u.sum.index] = strdup(text);
            if (--j->summaries_left == 0) ask_combined(u->st, j);
        }
    }
    if (u->u.sum.kind == SUM_CHUNK) chunk_summarised(j, u->u.sum.index, rc >= 0);
    unit_free(u);
    job_part_done(j);
}
