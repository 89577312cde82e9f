/* instance.h - a configured plugin (one INI section) and the calls made to it.
 *
 * An instance is a plugin plus its filled config struct and the state its
 * init made. It is built from an INI section: `plugin = NAME` picks the
 * plugin (default: the section's own name), the core's stage settings below
 * are taken out, and every other key must be an option the plugin declares:
 * unknown keys, values of the wrong type and missing required options are
 * errors naming file, line, section and key. Values of options declared
 * secret are registered with the context so they never print.
 *
 * An sl_call is one invocation of a callback: it carries the instance, the
 * per-thread state, and the failure (code, message, retry-after) if any.
 */
#ifndef SL_INSTANCE_H
#define SL_INSTANCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "ctx.h"
#include "registry.h"

/* Settings the core reads from every stage section, whatever the plugin. */
typedef struct sl_stage_conf {
    int64_t max_concurrency;  /* 0: derived (plugin's declaration, then executor) */
    int64_t batch_size;       /* embedders: texts per call; 0: plugin's or 64 */
    int64_t batch_delay_ms;   /* embedders: longest wait to fill a batch */
    bool isolated;            /* cpu stages: run in worker processes instead of the pool */
    int64_t timeout_ms;       /* per call; 0: none (workers are killed, io calls retried) */
    int64_t rpm;              /* io stages: requests per minute; 0: unlimited */
    int64_t tpm;              /* io stages: tokens per minute; 0: unlimited */
    const char *fallback;     /* io stages: sections to try, in order, when this one fails */
    int64_t breaker_failures; /* consecutive failures that open the circuit */
    int64_t breaker_cooldown_ms;
    double price_input;    /* per million input tokens, for the report's cost */
    double price_output;   /* per million output tokens */
    const char *summaries; /* llm stages: none|document|chunks|both */
    const char *document_prompt;
    const char *chunk_prompt;
    int64_t max_input_chars;   /* llm stages: longer documents are summarised in parts */
    bool embed_summaries;      /* llm stages: chunk summaries are embedded with their text */
    int64_t fallback_after_ms; /* io stages with fallbacks: how long a call waits for this one's limits */
    bool shared_limits;     /* io stages: rpm and tpm drawn from the sink's shared bucket (shared_limits.h) */
    const char *limit_name; /* io stages: that bucket's name; "": derived from url, model and key */
    const char *ca_file; /* io stages: PEM certificates to trust for https (private CA); "": the system's */
} sl_stage_conf;

/* The core's table for sl_stage_conf (shown by `sluice plugins`). */
const sl_option *sl_stage_options(void);
/* Whether stage setting o means anything for a plugin of d's role and
 * bottleneck (rpm for io plugins, summaries for llm stages, ...). */
bool sl_stage_option_applies(const sl_option *o, const sl_plugin *d);

struct sl_instance {
    sl_ctx *ctx;
    char *name; /* INI section name */
    const sl_loaded *plugin;
    const sl_plugin *desc; /* &plugin->desc */
    void *config;          /* desc->config_size bytes, filled */
    char **owned;          /* strings referenced from config */
    size_t nowned;
    sl_stage_conf stage;
    char *canon; /* "plugin@version\nkey=value\n..." of fingerprinted options, table order */
    void *state;
    int initialized;
    uint32_t dim;
    char *model;
    int id;                         /* index among a run's instances, for per-thread state */
    struct sl_loop *loop;           /* the runtime's loop: io services run on it */
    uint32_t concurrency;           /* set by sl_instance_set_concurrency; 0: none declared */
    struct sl_instance **fallbacks; /* resolved [stage] fallback sections, in order */
    size_t nfallbacks;
    int errcode;
    char errmsg[1024];
    long last_http_status;       /* the status of its latest HTTP response, 0 if none (check --connect) */
    int last_http_version;       /* and its HTTP version: 11 or 20 (10, 30), 0 if none */
    const struct sl_config *cfg; /* the INI it was built from (NULL: defaults); for sl_instance_peer_value */
    /* HTTP requests libcurl sent again by itself (a reused connection found
     * dead before any answer): the provider saw them (http.c counts, the
     * throttle reports) */
    _Atomic uint64_t resends;
    /* connections libcurl opened for its requests, and answers that came
     * over HTTP/2 (http.c counts, the report shows) */
    _Atomic uint64_t connects, http2_answers;
    int store_mode; /* sinks: SL_STORE_* (sl_instance_store_mode), set before init */
};

/* Builds an instance from section `section` of cfg (does not call init). */
int sl_instance_new(sl_ctx *ctx, sl_registry *reg, const sl_config *cfg, const char *section,
                    sl_instance **out);
/* Builds an instance of `plugin` from its defaults plus "key=value"
 * overrides (for `sluice check --plugin`). */
int sl_instance_new_defaults(sl_ctx *ctx, const sl_loaded *plugin, const char *name,
                             const char *const *overrides, size_t noverrides, sl_instance **out);
/* Calls init; on failure the context's message is "[name] init failed: ...".
 * Embedders must have declared a dimension. */
int sl_instance_init(sl_ctx *ctx, sl_instance *inst);
/* Calls fini if init succeeded, then frees. NULL is fine. */
void sl_instance_free(sl_instance *inst);

struct sl_call {
    sl_instance *inst;
    void *thread_state;
    int code;               /* what sl_fail recorded */
    int64_t retry_after_ms; /* -1: none */
    char msg[1024];
    /* io completion: set by the executor before calling an io callback. */
    void (*on_done)(sl_call *call, int rc);
    void *udata;
    atomic_int done;      /* set once sl_call_done ran (SL_CALL_ABANDONED: its deadline passed) */
    struct sl_loop *loop; /* where the answer goes: sl_call_done from another thread posts it */
    sl_post post;
    int answer;                          /* the posted answer */
    const struct sl_op *op;              /* what is being called (ops.c); NULL: a caller's own function */
    void (*then)(sl_call *call, int rc); /* ops.c: the caller's callback after normalising */
    uint64_t tokens_in, tokens_out;      /* sl_call_usage */
    int throttled;                       /* the provider said 429: pacing, not a failure */
    struct sl_doc *doc;                  /* the document an operation works on (ops.c), or NULL */
    int query;                           /* embedding a search query (sl_call_is_query) */
    int unusable; /* the failure says the provider's answers cannot be used (sl_dim_mismatch) */
};

#define SL_CALL_ABANDONED 2

struct sl_completion {
    char *text; /* malloc'd, NUL-terminated */
    size_t len;
    /* sl_completion_set refused text that is not UTF-8: the first bad
     * byte's offset, for a failure that names the LLM plugin and its stage */
    int bad;
    size_t bad_at;
};

void sl_call_init(sl_call *call, sl_instance *inst, void *thread_state);
/* sl_call_done calls ignored so far in this process: after a call's
 * deadline (late) and on a call already answered (extra). */
void sl_call_answers_ignored(uint64_t *late, uint64_t *extra);

#endif
