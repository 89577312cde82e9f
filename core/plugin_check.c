/* plugin_check.c - `sluice check --plugin`: a plugin checked on its own (see plugin_check.h). */
#include "plugin_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "document.h"
#include "instance.h"
#include "ops.h"
#include "registry.h"
#include "loop.h"
#include "options.h"
#include "probe.h"
#include "query.h"
#include "runtime.h"

static const struct {
    const char *media;
    const char *text;
} samples[] = {
    {"text/markdown", "# Sample\n\nA paragraph with *emphasis*.\n\n- one\n- two\n\n```c\nint x;\n```\n"},
    {"text/plain", "A first paragraph of plain text.\n\nA second paragraph.\n"},
    {"text/csv", "name,size\nalpha,1\nbeta,2\n"},
    {"text/html", "<html><body><h1>Sample</h1><p>A paragraph.</p></body></html>\n"},
};

typedef struct check {
    sl_ctx *ctx;
    FILE *out;
    int failures;
} check;

static void ok(check *c, const char *what) { fprintf(c->out, "  ok    %s\n", what); }

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
bad(check *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(c->out, "  FAIL  ");
    vfprintf(c->out, fmt, ap);
    fprintf(c->out, "\n");
    va_end(ap);
    c->failures++;
}

static int call_parse(sl_call *call, void *doc) { return call->inst->desc->parse(call, doc); }
static int call_chunk(sl_call *call, void *doc) { return call->inst->desc->chunk(call, doc); }
static int call_lookup(sl_call *call, void *doc) { return call->inst->desc->lookup(call, doc); }
static int call_store(sl_call *call, void *doc) { return call->inst->desc->store(call, doc); }

typedef struct embed_args {
    const sl_text *texts;
    size_t n;
    float *out;
} embed_args;
static int call_embed(sl_call *call, void *arg) {
    embed_args *a = arg;
    return call->inst->desc->embed(call, a->texts, a->n, a->out);
}

typedef struct query_args {
    const float *v;
    uint32_t dim;
    sl_hits *hits;
} query_args;
static int call_query(sl_call *call, void *arg) {
    query_args *a = arg;
    return call->inst->desc->query(call, a->v, a->dim, 3, a->hits);
}

typedef struct prune_args {
    const char *root;
    uint64_t run_id;
} prune_args;
static int call_prune(sl_call *call, void *arg) {
    prune_args *a = arg;
    return call->inst->desc->prune(call, &a->root, 1, a->run_id);
}

static void check_elements(check *c, const sl_doc *doc, const char *media) {
    size_t n = sl_doc_element_count(doc);
    if (n == 0) {
        bad(c, "parse %s: no elements from a sample with text", media);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *t = sl_element_text(doc, i, &len);
        if (!sl_utf8_valid(t, len, NULL)) {
            bad(c, "parse %s: element %zu is not valid UTF-8", media, i);
            return;
        }
        if (strcmp(sl_elem_type_name(sl_element_type(doc, i)), "unknown") == 0) {
            bad(c, "parse %s: element %zu has an unknown type", media, i);
            return;
        }
    }
    char msg[256];
    snprintf(msg, sizeof msg, "parse %s: %zu elements", media, n);
    ok(c, msg);
}

static void check_parser(check *c, sl_instance *inst) {
    const char *const *mt = inst->desc->media_types;
    if (!mt || !mt[0]) {
        bad(c, "a parser must declare the media types it reads (media_types)");
        return;
    }
    for (size_t m = 0; mt[m]; m++) {
        const char *text = NULL;
        for (size_t s = 0; s < sizeof samples / sizeof samples[0]; s++)
            if (strcmp(samples[s].media, mt[m]) == 0) text = samples[s].text;
        if (!text) {
            fprintf(c->out, "  note  no built-in sample for %s: route a real file through `sluice run`\n",
                    mt[m]);
            continue;
        }
        sl_doc *doc = sl_doc_new("sluice-check:sample", NULL);
        sl_doc_set_data(doc, text, strlen(text));
        sl_doc_set_media_type(doc, mt[m]);
        sl_call call;
        int rc = sl_invoke(inst, call_parse, doc, &call);
        if (rc)
            bad(c, "parse %s: failed on a valid sample: %s", mt[m], call.msg[0] ? call.msg : sl_strerror(rc));
        else
            check_elements(c, doc, mt[m]);
        sl_doc_free(doc);

        /* bad input must fail the document, not the process */
        doc = sl_doc_new("sluice-check:empty", NULL);
        sl_doc_set_data(doc, "", 0);
        sl_doc_set_media_type(doc, mt[m]);
        rc = sl_invoke(inst, call_parse, doc, &call);
        if (rc == SL_EFATAL)
            bad(c, "parse %s: an empty document is reported as fatal; use SL_EBADINPUT", mt[m]);
        else
            ok(c, rc ? "empty document fails as bad input" : "empty document accepted");
        sl_doc_free(doc);
    }
}

static void check_chunker(check *c, sl_instance *inst) {
    sl_doc *doc = sl_doc_new("sluice-check:sample", NULL);
    const char *body = "A paragraph of sample text that a chunker should keep. ";
    sl_doc_set_data(doc, body, strlen(body));
    int h = sl_doc_add_element(doc, SL_EL_HEADING, "Sample", 6);
    sl_elem_set_level(doc, (size_t)h, 1);
    for (int i = 0; i < 40; i++) {
        int e = sl_doc_add_element(doc, SL_EL_PARAGRAPH, body, strlen(body));
        sl_elem_set_page(doc, (size_t)e, 1);
        sl_elem_set_source(doc, (size_t)e, 0, (uint32_t)(3 + i * 2));
    }
    sl_call call;
    int rc = sl_invoke(inst, call_chunk, doc, &call);
    size_t n = sl_doc_chunk_count(doc);
    if (rc)
        bad(c, "chunk: failed on sample elements: %s", call.msg[0] ? call.msg : sl_strerror(rc));
    else if (n == 0)
        bad(c, "chunk: no chunks from 41 elements of text");
    else {
        int empty = 0;
        for (size_t i = 0; i < n; i++) {
            size_t len;
            const char *t = sl_chunk_text(doc, i, &len);
            if (len == 0 || !sl_utf8_valid(t, len, NULL)) empty = 1;
        }
        if (empty)
            bad(c, "chunk: a chunk is empty or not valid UTF-8");
        else {
            char msg[128];
            snprintf(msg, sizeof msg, "chunk: %zu chunks from 41 elements", n);
            ok(c, msg);
        }
    }
    sl_doc_free(doc);
}

static int embed_texts(check *c, sl_instance *inst, const sl_text *t, size_t n, float *out) {
    embed_args a = {t, n, out};
    sl_call call;
    int rc = sl_invoke(inst, call_embed, &a, &call);
    if (rc) bad(c, "embed: failed on sample texts: %s", call.msg[0] ? call.msg : sl_strerror(rc));
    return rc;
}

static void check_embedder(check *c, sl_instance *inst) {
    uint32_t dim = inst->dim;
    sl_text t[3] = {
        {"the cat sat on the mat", 22}, {"quarterly revenue grew", 22}, {"the cat sat on the mat", 22}};
    float *v = calloc(3 * (size_t)dim, sizeof *v);
    if (!v) {
        bad(c, "out of memory");
        return;
    }
    if (embed_texts(c, inst, t, 3, v) == 0) {
        int finite = 1, nonzero = 0;
        for (size_t i = 0; i < 3 * (size_t)dim; i++) {
            finite &= isfinite(v[i]) != 0;
            nonzero |= v[i] != 0.0f;
        }
        if (!finite)
            bad(c, "embed: a vector holds NaN or infinity");
        else if (!nonzero)
            bad(c, "embed: every vector is zero");
        else {
            char msg[128];
            snprintf(msg, sizeof msg, "embed: 3 finite vectors of %u dimensions", dim);
            ok(c, msg);
        }
        if (memcmp(v, v + 2 * (size_t)dim, dim * sizeof *v) != 0)
            fprintf(c->out, "  note  the same text embedded twice gave different vectors\n");
    }
    free(v);
}

typedef struct complete_args {
    sl_text prompt;
    sl_completion out;
} complete_args;
static int call_complete(sl_call *call, void *arg) {
    complete_args *a = arg;
    return call->inst->desc->complete(call, &a->prompt, &a->out);
}

static void check_llm(check *c, sl_instance *inst) {
    const char *p =
        "Summarise in one sentence: sluice turns documents into chunks with summaries and vectors.";
    complete_args a = {{p, strlen(p)}, {NULL, 0, 0, 0}};
    sl_call call;
    int rc = sl_invoke(inst, call_complete, &a, &call);
    if (a.out.bad)
        bad(c, "complete: the answer is not valid UTF-8 at byte %zu (sl_completion_set refused it)",
            a.out.bad_at);
    else if (rc)
        bad(c, "complete: %s", call.msg[0] ? call.msg : sl_strerror(rc));
    else if (!a.out.text || a.out.len == 0)
        bad(c, "complete: succeeded without an answer (sl_completion_set)");
    else if (!sl_utf8_valid(a.out.text, a.out.len, NULL))
        bad(c, "complete: the answer is not valid UTF-8");
    else {
        char msg[160];
        snprintf(msg, sizeof msg, "complete: a %zu-byte answer, %llu tokens in, %llu out", a.out.len,
                 (unsigned long long)call.tokens_in, (unsigned long long)call.tokens_out);
        ok(c, msg);
    }
    free(a.out.text);
}

/* The failure list (ABI 1.3, optional): recorded twice, listed with two
 * attempts; storing the document clears it (checked after the store). */
typedef struct find_arg {
    const char *uri;
    int64_t attempts;
    int found;
} find_arg;
static void find_row(void *arg, const sl_failure_row *r) {
    find_arg *f = arg;
    if (r->uri && strcmp(r->uri, f->uri) == 0) f->found = 1, f->attempts = r->attempts;
}
static int call_record(sl_call *call, void *arg) { return call->inst->desc->failures_record(call, arg, 1); }
static int call_list(sl_call *call, void *arg) {
    return call->inst->desc->failures_list(call, find_row, arg);
}

static void check_failure_list(check *c, sl_instance *inst, const char *uri, int after_store) {
    const sl_plugin *d = inst->desc;
    if (!d->failures_record != !d->failures_list) {
        bad(c, "failures_record and failures_list: one without the other");
        return;
    }
    if (!d->failures_record) return;
    sl_call call;
    int rc = 0;
    sl_failure_row row = {.uri = uri, .stage = "check", .reason = "sluice check --plugin"};
    for (int i = 0; !after_store && !rc && i < 2; i++) rc = sl_invoke(inst, call_record, &row, &call);
    if (rc) {
        bad(c, "failures_record: %s", call.msg[0] ? call.msg : sl_strerror(rc));
        return;
    }
    find_arg f = {uri, 0, 0};
    if ((rc = sl_invoke(inst, call_list, &f, &call)) < 0)
        bad(c, "failures_list: %s", call.msg[0] ? call.msg : sl_strerror(rc));
    else if (after_store && f.found)
        bad(c, "store did not clear the document's failure row (attempts %lld)", (long long)f.attempts);
    else if (after_store)
        ok(c, "store clears the document's failure row");
    else if (!f.found || f.attempts != 2)
        bad(c, "failures_list after two failures_record: %s (attempts %lld, expected 2)",
            f.found ? "listed" : "not listed", (long long)f.attempts);
    else
        ok(c, "failures_record twice, failures_list: 2 attempts");
}

static void check_sink(check *c, sl_instance *inst) {
    const uint32_t dim = 8;
    const char *text = "sluice check sample";
    sl_doc *doc = sl_doc_new("sluice-check:sample", NULL);
    sl_doc_set_data(doc, text, strlen(text));
    sl_doc_set_media_type(doc, "text/plain");
    sl_doc_set_fingerprint(doc, "00000000000000000000000000000000");
    sl_doc_set_run_id(doc, 1);
    int e = sl_doc_add_element(doc, SL_EL_PARAGRAPH, text, strlen(text));
    (void)e;
    int k = sl_doc_add_chunk(doc, text, strlen(text));
    float *v = sl_doc_chunk_vector(doc, (size_t)k, dim);
    for (uint32_t i = 0; i < dim; i++) v[i] = i == 0 ? 1.0f : 0.0f;
    sl_call call;
    int rc = sl_invoke(inst, call_lookup, doc, &call);
    if (rc != SL_LOOKUP_MISSING && rc != SL_LOOKUP_CHANGED && rc != SL_LOOKUP_UNCHANGED)
        bad(c, "lookup: answered %d (%s)", rc, call.msg);
    else if ((check_failure_list(c, inst, "sluice-check:sample", 0),
              rc = sl_invoke(inst, call_store, doc, &call)) != 0)
        bad(c, "store: %s", call.msg[0] ? call.msg : sl_strerror(rc));
    else if ((rc = sl_invoke(inst, call_lookup, doc, &call)) != SL_LOOKUP_UNCHANGED)
        bad(c, "lookup after store: answered %d, expected unchanged (%d)", rc, SL_LOOKUP_UNCHANGED);
    else {
        ok(c, "lookup, store, lookup again: unchanged");
        check_failure_list(c, inst, "sluice-check:sample", 1);
        sl_hits *hits = sl_hits_new(3);
        query_args q = {v, dim, hits};
        rc = sl_invoke(inst, call_query, &q, &call);
        if (rc)
            bad(c, "query: %s", call.msg[0] ? call.msg : sl_strerror(rc));
        else if (sl_hits_count(hits) == 0)
            bad(c, "query: the stored sample was not found");
        else
            ok(c, "query finds the stored sample");
        sl_hits_free(hits);
    }
    prune_args p = {"sluice-check:sample", 2};
    rc = sl_invoke(inst, call_prune, &p, &call);
    if (rc < 0)
        bad(c, "prune: %s", call.msg[0] ? call.msg : sl_strerror(rc));
    else if (rc != 1)
        bad(c, "prune: removed %d documents, expected the 1 sample", rc);
    else
        ok(c, "prune removes the sample");
    sl_doc_free(doc);
}

int sl_check_plugin(sl_ctx *ctx, const char *path, const char *const *overrides, size_t noverrides,
                    int connect, FILE *out) {
    sl_registry *reg;
    const sl_loaded *p;
    int rc = sl_registry_new(ctx, &reg);
    if (rc) return rc;
    if ((rc = sl_registry_open(ctx, reg, path, &p))) {
        sl_registry_free(reg);
        return rc;
    }
    const sl_plugin *d = &p->desc;
    if (connect && !sl_probe_applies(d)) {
        rc = sl_ctx_error(ctx, SL_EINVAL,
                          "check --plugin %s --connect: %s is a %s %s plugin without a probe: it connects to "
                          "nothing (--connect is for providers, io plugins and sinks)",
                          path, d->name, sl_bottleneck_name(d->bottleneck), sl_role_name(d->role));
        sl_registry_free(reg);
        return rc;
    }
    fprintf(out, "%s: %s %s, role %s, bottleneck %s, ABI %u.%u (%u-byte descriptor)\n", p->path, d->name,
            d->version, sl_role_name(d->role), sl_bottleneck_name(d->bottleneck), d->abi_major, d->abi_minor,
            p->declared_size);
    check c = {ctx, out, 0};
    ok(&c, "descriptor and option table are valid");
    sl_instance *inst;
    if ((rc = sl_instance_new_defaults(ctx, p, d->name, overrides, noverrides, &inst))) {
        bad(&c, "options: %s", sl_ctx_errmsg(ctx));
        fprintf(out, "%s: %d check(s) failed\n", path, c.failures);
        sl_registry_free(reg);
        return rc;
    }
    ok(&c, "options take their defaults");
    sl_loop *loop = NULL; /* io plugins do their work on a loop */
    if (sl_loop_new(&loop) != 0) {
        sl_instance_free(inst);
        sl_registry_free(reg);
        return sl_ctx_error(ctx, SL_ENOMEM, "cannot start an event loop");
    }
    inst->loop = loop;
    if ((rc = sl_instance_init(ctx, inst))) {
        bad(&c, "init: %s", sl_ctx_errmsg(ctx)); /* a FAIL row, as every other check */
        fprintf(out, "%s: %d check(s) failed\n", path, c.failures);
        sl_instance_free(inst);
        sl_loop_free(loop);
        sl_registry_free(reg);
        return rc;
    }
    ok(&c, "init");
    switch (d->role) {
    case SL_ROLE_PARSER: check_parser(&c, inst); break;
    case SL_ROLE_CHUNKER: check_chunker(&c, inst); break;
    case SL_ROLE_EMBEDDER: check_embedder(&c, inst); break;
    case SL_ROLE_SINK: check_sink(&c, inst); break;
    case SL_ROLE_LLM: check_llm(&c, inst); break;
    default: fprintf(out, "  note  no sample contract for role %s yet\n", sl_role_name(d->role)); break;
    }
    if (connect) {
        char line[1400];
        if (sl_probe_instance(ctx, inst, line, sizeof line))
            ok(&c, line);
        else
            bad(&c, "%s", line);
    }
    sl_instance_free(inst);
    sl_loop_free(loop);
    ok(&c, "fini");
    sl_registry_free(reg);
    if (c.failures) {
        fprintf(out, "%s: %d check(s) failed\n", path, c.failures);
        return sl_ctx_error(ctx, SL_EBADINPUT, "%s breaks its role's contract (%d failed checks)", path,
                            c.failures);
    }
    fprintf(out, "%s: passes\n", path);
    return 0;
}
