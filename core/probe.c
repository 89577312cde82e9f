/* probe.c - `sluice check --connect`: one minimal real request to every
 * provider and a session with every sink, reported as a table.
 *
 * Each instance is initialised on its own (an init that fails is a row, not
 * the end), then probed: with the plugin's own `probe` (ABI 1.3: a model
 * list, a database session) when it has one; an embedder without one
 * embeds one short text, which also checks the vectors' dimension against
 * the config; a sink without one counts its init (which opens the store)
 * as the probe. Local stages (parsers, chunkers) need no probe and are not
 * listed. The latency is the probe's own; the HTTP status is the last one
 * the instance saw (core http.c); 401 and 403 read "authentication
 * failed". No retries: a probe says how the other side answers now. No
 * document is read.
 */
#include "probe.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

typedef struct probe_row {
    const sl_instance *inst;
    const char *what;
    double ms;
    long status;
    int version; /* the answer's HTTP version, 11 or 20; 0: none */
    int ok;
    char msg[1200]; /* a prefix and the call's message (1024) */
} probe_row;

static int call_probe(sl_call *call, void *arg) { return call->inst->desc->probe(call); }

typedef struct embed_arg {
    float *out;
} embed_arg;

static int call_embed(sl_call *call, void *arg) {
    embed_arg *e = arg;
    static const char text[] = "sluice check --connect";
    sl_text t = {text, sizeof text - 1};
    return call->inst->desc->embed(call, &t, 1, e->out);
}

static void verdict(probe_row *r, int rc, const sl_call *call) {
    r->ok = rc >= 0;
    if (r->ok) {
        snprintf(r->msg, sizeof r->msg, "ok");
        return;
    }
    const char *m = call->msg[0] ? call->msg : sl_strerror(rc);
    if (r->status == 401 || r->status == 403)
        snprintf(r->msg, sizeof r->msg, "authentication failed (HTTP %ld): %s", r->status, m);
    else if (strstr(m, "dimension"))
        snprintf(r->msg, sizeof r->msg, "dimension mismatch: %s", m);
    else
        snprintf(r->msg, sizeof r->msg, "%s", m);
}

int sl_probe_applies(const sl_plugin *d) {
    return d->probe || d->role == SL_ROLE_EMBEDDER || d->role == SL_ROLE_SINK || d->bottleneck == SL_IO;
}

static void probe_one(sl_ctx *ctx, sl_instance *s, probe_row *r) {
    const sl_plugin *d = s->desc;
    r->inst = s;
    uint64_t t0 = sl_now_ns();
    if (sl_instance_init(ctx, s)) {
        r->what = "init";
        r->ms = (double)(sl_now_ns() - t0) / 1e6;
        snprintf(r->msg, sizeof r->msg, "%s", sl_ctx_errmsg(ctx));
        return;
    }
    sl_call call;
    memset(&call, 0, sizeof call);
    s->last_http_status = 0;
    s->last_http_version = 0;
    t0 = sl_now_ns();
    int rc;
    if (d->probe) {
        r->what = d->role == SL_ROLE_SINK ? "session" : "probe";
        rc = sl_invoke(s, call_probe, NULL, &call);
    } else if (d->role == SL_ROLE_EMBEDDER) {
        r->what = "embed 1 text";
        embed_arg e = {calloc(s->dim ? s->dim : 1, sizeof(float))};
        rc = e.out ? sl_invoke(s, call_embed, &e, &call) : SL_ENOMEM;
        free(e.out);
    } else {
        r->what = "init only";
        rc = 0;
        snprintf(call.msg, sizeof call.msg, "(plugin %s has no probe: init was its check)", d->name);
    }
    r->ms = (double)(sl_now_ns() - t0) / 1e6;
    r->status = s->last_http_status;
    r->version = r->status ? s->last_http_version : 0;
    verdict(r, rc, &call);
    if (r->ok && !d->probe && d->role != SL_ROLE_EMBEDDER)
        snprintf(r->msg, sizeof r->msg, "ok (plugin %s has no probe: init opened it)", d->name);
}

int sl_probe_all(sl_runtime *rt, int json, FILE *out) {
    probe_row *rows = calloc(rt->ninst ? rt->ninst : 1, sizeof *rows);
    if (!rows) return sl_ctx_error(rt->ctx, SL_ENOMEM, "out of memory");
    size_t n = 0;
    int failed = 0;
    for (size_t i = 0; i < rt->ninst; i++) {
        sl_instance *s = rt->inst[i];
        if (!sl_probe_applies(s->desc)) continue;
        probe_row *r = &rows[n++];
        probe_one(rt->ctx, s, r);
        if (!r->ok) failed++;
    }
    char clean[sizeof rows[0].msg];
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            const probe_row *r = &rows[i];
            sl_ctx_scrub(rt->ctx, r->msg, clean, sizeof clean);
            char ver[24] = "";
            if (r->version) snprintf(ver, sizeof ver, "%d.%d", r->version / 10, r->version % 10);
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:f, s:I, s:s?, s:b, s:b, s:s}",
                                                 "instance", r->inst->name, "plugin", r->inst->desc->name,
                                                 "role", sl_role_name(r->inst->desc->role), "request",
                                                 r->what, "latency_ms", r->ms, "http_status",
                                                 (json_int_t)r->status, "http_version",
                                                 r->version ? ver : NULL, "ok", r->ok, "auth_failed",
                                                 r->status == 401 || r->status == 403, "result", clean));
        }
        json_t *root = json_pack("{s:o, s:b}", "connections", arr, "ok", failed == 0);
        json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', out);
        json_decref(root);
    } else {
        fprintf(out, "\nconnections:\n%-18s %-16s %-9s %-13s %10s %-6s  %s\n", "instance", "plugin", "role",
                "request", "latency", "http", "result");
        for (size_t i = 0; i < n; i++) {
            const probe_row *r = &rows[i];
            char status[24] = "-";
            if (r->status && r->version == 20)
                snprintf(status, sizeof status, "%ld h2", r->status);
            else if (r->status)
                snprintf(status, sizeof status, "%ld", r->status);
            sl_ctx_scrub(rt->ctx, r->msg, clean, sizeof clean);
            fprintf(out, "%-18s %-16s %-9s %-13s %8.1fms %-6s  %s\n", r->inst->name, r->inst->desc->name,
                    sl_role_name(r->inst->desc->role), r->what, r->ms, status, clean);
        }
        fprintf(out, "%s\n", failed ? "connect: FAILED" : "connect: ok");
    }
    free(rows);
    return failed;
}

int sl_probe_instance(sl_ctx *ctx, sl_instance *s, char *line, size_t n) {
    probe_row r;
    memset(&r, 0, sizeof r);
    probe_one(ctx, s, &r);
    char status[24] = "";
    if (r.status) snprintf(status, sizeof status, ", HTTP %ld", r.status);
    char clean[sizeof r.msg];
    snprintf(line, n, "connect: %s in %.1f ms%s: %s", r.what, r.ms, status,
             sl_ctx_scrub(ctx, r.msg, clean, sizeof clean));
    return r.ok;
}
