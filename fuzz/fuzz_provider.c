/* fuzz_provider.c - a remote provider plugin's reading of an answer: the
 * plugin's source (FUZZ_PROVIDER_SRC) is compiled in, so its response
 * callback, static in the plugin, is called directly with a finished
 * request whose status is 200 and whose body is the input. That is
 * everything a provider (or a proxy in front of it) controls: the SDK's
 * verdict and JSON checks (sluice/remote.h), the plugin's reading of its
 * API's shape, vectors as numbers or base64 (and embed-openai's jsmn fast
 * path), token counts. Built once per provider; FUZZ_EMBED for embedders
 * (a batch of 3 texts of dimension 8), else an LLM completion.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_request.h"

#include FUZZ_PROVIDER_SRC

#include "fuzz.h"
#include "options.h"

static sl_instance inst;
static char **owned; /* option strings, for the process (reachable for LeakSanitizer) */
static size_t nowned;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    inst.ctx = fuzz_ctx();
    inst.name = "fuzz";
    inst.desc = &desc;
    inst.config = calloc(1, desc.config_size);
    for (const sl_option *o = options; inst.config && o->name; o++) {
        const char *v = o->def;
        if (strcmp(o->name, "dimension") == 0)
            v = "8";
        else if (strcmp(o->name, "base_url") == 0)
            v = "http://127.0.0.1:9/v1";
        else if (o->flags & SL_OPT_REQUIRED)
            v = "fuzz-model";
        char err[256];
        if (v && sl_option_parse(o, v, "/", inst.config, &owned, &nowned, err, sizeof err)) {
            fprintf(stderr, "fuzz: option %s: %s\n", o->name, err);
            exit(2);
        }
    }
    if (!inst.config || desc.init(&inst, inst.config, &inst.state)) {
        fprintf(stderr, "fuzz: %s: init failed: %s\n", desc.name, inst.errmsg);
        exit(2);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sl_call call;
    sl_call_init(&call, &inst, NULL); /* no loop: sl_call_done just records the answer */
    sl_http *req = calloc(1, sizeof *req);
    char *body = malloc(size ? size : 1);
    if (!req || !body) {
        free(req);
        free(body);
        return 0;
    }
    memcpy(body, data, size);
    req->state = REQ_DONE;
    req->status = 200;
    req->resp = body;
    req->resp_len = req->resp_cap = size;
#ifdef FUZZ_EMBED
    float out[3 * 8];
    pending *p = malloc(sizeof *p + 3 * sizeof p->sent[0]);
    if (!p) {
        sl_http_free(req);
        return 0;
    }
    *p = (pending){.call = &call, .out = out, .nsent = 3};
    for (size_t i = 0; i < 3; i++) p->sent[i] = i;
    on_response(req, p); /* frees req and p, answers the call */
#else
    sl_completion out = {0};
    pending *p = malloc(sizeof *p);
    if (!p) {
        sl_http_free(req);
        return 0;
    }
    *p = (pending){.call = &call, .out = &out};
    on_response(req, p);
    free(out.text);
#endif
    return 0;
}
