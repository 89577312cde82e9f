/* fake.h - the seam between the fake provider's wire formats (apis.c: what
 * OpenAI, Anthropic and Ollama requests and replies look like) and its
 * behaviour (fake_provider.c: options, auth, rate limits, faults, latency,
 * counters). apis.c never sees the options or the counters; fake_provider.c
 * never builds a provider's JSON except through fp_error. */
#ifndef FAKE_PROVIDER_H
#define FAKE_PROVIDER_H

#include <jansson.h>
#include <stdint.h>

#include "http_server.h"

enum fp_api { FP_OPENAI, FP_ANTHROPIC, FP_OLLAMA };
enum fp_kind { FP_LLM, FP_EMBED, FP_OTHER }; /* picks the latency setting */

/* One request as the formats see it. */
struct fp_call {
    const struct hs_request *req;
    json_t *body;       /* the parsed JSON body; NULL for GET */
    enum fp_api api;    /* the family whose shapes to speak */
    const char *models; /* allowed model names, comma-separated; "" accepts any */
    int embed_dim;      /* dimension for every embedding model; 0: by model name */
    uint64_t id;        /* request number, for response ids */
};

/* The reply a format builds: body is malloc'd (the caller takes it). */
struct fp_answer {
    int status;
    char *body;
    size_t len;
    const char *content_type; /* NULL: application/json */
    int64_t tokens_in, tokens_out;
};

struct fp_route {
    const char *method;
    const char *path;
    enum fp_api api;
    enum fp_kind kind;
    int json_body; /* the body must be a JSON object */
    void (*fn)(const struct fp_call *call, struct fp_answer *out);
};

/* The route for path, or NULL; *wrong_method is set when the path exists
 * under another method. */
const struct fp_route *fp_route_find(const char *method, const char *path, int *wrong_method);
/* The family a request speaks: its route's, Anthropic for /v1/... with an
 * anthropic-version header, Ollama under /api/, else OpenAI. */
enum fp_api fp_api_of(const struct fp_route *route, const struct hs_request *req);
/* Parses the body when the route wants JSON, then runs the route. */
void fp_route_call(const struct fp_route *route, struct fp_call *call, struct fp_answer *out);

/* Fills out with an error in the family's shape. type NULL: the family's
 * usual type for the status; code NULL: none. */
void fp_error(struct fp_answer *out, enum fp_api api, int status, const char *type, const char *code,
              const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Makes a valid body invalid JSON, keeping its status (the malformed fault). */
void fp_malform(struct fp_answer *a);

/* Token estimate used everywhere: words * 4 / 3, rounded. */
int64_t fp_tokens_of_words(int64_t words);

#endif
