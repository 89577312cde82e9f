/* blocking_client.c - the benchmark's baseline: "the usual design" sluice
 * replaces, a pool of threads each making blocking libcurl easy calls.
 *
 *   blocking-client --url BASE --docs N --threads T --chunks-per-doc C --batch B
 *
 * Each thread takes the next document number from a shared counter; per
 * document it makes one chat-completions call (the summary) and then
 * ceil(C/B) embeddings calls of up to B chunks each, one after another, and
 * parses every reply as a client would. A failed call (transport error, 429
 * or 5xx) is retried up to --retries times, waiting Retry-After when the
 * server sends it, else 100 ms doubling; a document whose calls run out of
 * retries counts as failed. Prints one JSON object:
 *
 *   {"docs": N, "threads": T, "wall_s": x, "requests": n, "retries": n, "failed_docs": n}
 *
 * requests counts every HTTP request sent, retries included. BASE is
 * scheme://host:port (a trailing /v1 is accepted); the paths are OpenAI's.
 *
 * To mirror a pipeline call for call (bench/scale.sh): --summary-parts P
 * makes the summary P calls of --summary-words W words each (default: the
 * chunk size), in sequence, then one more over their answers joined, as a
 * runtime summarises a document longer than its prompt limit (map-reduce);
 * --encoding base64 and --dimensions N ask for the embeddings the way the
 * runtime's embedder does (by default neither is sent: floats, the model's
 * size). */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct settings {
    char chat_url[512], embed_url[512];
    char auth[300];
    const char *model, *embed_model;
    const char *encoding; /* NULL: not sent */
    long docs, threads, chunks, batch, retries, chunk_words, timeout_ms;
    long summary_parts, summary_words, dimensions; /* dimensions 0: not sent */
};

struct shared {
    const struct settings *s;
    atomic_long next_doc;
    atomic_long requests, retries, failed_docs;
};

struct body {
    char *p;
    size_t len;
};

static size_t on_data(char *data, size_t size, size_t n, void *ud) {
    struct body *b = ud;
    size_t add = size * n;
    char *p = realloc(b->p, b->len + add + 1);
    if (!p) return 0;
    memcpy(p + b->len, data, add);
    b->len += add;
    p[b->len] = '\0';
    b->p = p;
    return add;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* POSTs json to url and checks the reply has `want` (a member that must be
 * there: choices or data). With `content` set, a chat answer's text is
 * returned there (malloc'd; the caller frees it). Returns 0, or -1 once the
 * retries are spent. */
static int call(struct shared *sh, CURL *h, struct curl_slist *headers, const char *url, const char *json,
                const char *want, size_t want_items, char **content) {
    const struct settings *s = sh->s;
    for (long attempt = 0;; attempt++) {
        struct body b = {0};
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        CURLcode rc = curl_easy_perform(h);
        atomic_fetch_add(&sh->requests, 1);
        long status = 0;
        curl_off_t retry_after = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry_after);
        int ok = 0;
        if (rc == CURLE_OK && status == 200 && b.p) {
            json_t *j = json_loadb(b.p, b.len, 0, NULL);
            json_t *items = json_object_get(j, want);
            ok = json_is_array(items) && json_array_size(items) == want_items;
            if (ok && content) {
                const char *text = json_string_value(
                    json_object_get(json_object_get(json_array_get(items, 0), "message"), "content"));
                ok = text && (*content = strdup(text)) != NULL;
            }
            json_decref(j);
        }
        free(b.p);
        if (ok) return 0;
        int retryable = rc != CURLE_OK || status == 429 || status >= 500 || status == 200;
        if (!retryable || attempt >= s->retries) return -1;
        atomic_fetch_add(&sh->retries, 1);
        sleep_ms(retry_after > 0 ? (long)retry_after * 1000 : 100L << (attempt < 10 ? attempt : 10));
    }
}

/* Deterministic text: chunk k of document d, about chunk_words words. */
static void chunk_text(char *out, size_t n, long d, long k, long words) {
    static const char *const vocab[] = {"ingest",  "document", "chunk",   "vector", "summary", "provider",
                                        "latency", "batch",    "runtime", "plugin", "parser",  "store"};
    size_t used = (size_t)snprintf(out, n, "document %ld chunk %ld:", d, k);
    for (long w = 0; w < words && used + 16 < n; w++)
        used += (size_t)snprintf(out + used, n - used, " %s", vocab[(d * 7 + k * 3 + w * 5) % 12]);
}

/* One chat call with `text` as the user message; its answer in *answer when
 * answer is not NULL. Returns 0 or -1. */
static int summarise(struct shared *sh, CURL *h, struct curl_slist *headers, const char *text,
                     char **answer) {
    const struct settings *s = sh->s;
    json_t *chat = json_pack("{s:s, s:b, s:[{s:s, s:s}]}", "model", s->model, "stream", 0, "messages", "role",
                             "user", "content", text);
    char *chat_json = json_dumps(chat, JSON_COMPACT);
    json_decref(chat);
    int rc = chat_json ? call(sh, h, headers, s->chat_url, chat_json, "choices", 1, answer) : -1;
    free(chat_json);
    return rc;
}

/* The summary of document d: one call, or (summary_parts > 1) one per part
 * and one over the parts' answers. Returns 0 or -1. */
static int summary(struct shared *sh, CURL *h, struct curl_slist *headers, char *text, size_t text_cap,
                   long d) {
    const struct settings *s = sh->s;
    if (s->summary_parts <= 1) {
        chunk_text(text, text_cap, d, 0, s->summary_words);
        return summarise(sh, h, headers, text, NULL);
    }
    size_t cap = 1, used = 0;
    char *joined = malloc(cap);
    if (!joined) return -1;
    joined[0] = '\0';
    int rc = 0;
    for (long p = 0; p < s->summary_parts && rc == 0; p++) {
        char *answer = NULL;
        chunk_text(text, text_cap, d, p, s->summary_words);
        rc = summarise(sh, h, headers, text, &answer);
        if (rc == 0) {
            size_t l = strlen(answer);
            char *grown = realloc(joined, cap + l + 2);
            if (grown) {
                joined = grown;
                cap += l + 2;
                if (used) joined[used++] = '\n', joined[used++] = '\n';
                memcpy(joined + used, answer, l);
                used += l;
                joined[used] = '\0';
            } else {
                rc = -1;
            }
        }
        free(answer);
    }
    if (rc == 0) rc = summarise(sh, h, headers, joined, NULL);
    free(joined);
    return rc;
}

static void *worker(void *arg) {
    struct shared *sh = arg;
    const struct settings *s = sh->s;
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (s->auth[0]) headers = curl_slist_append(headers, s->auth);
    long words = s->chunk_words > s->summary_words ? s->chunk_words : s->summary_words;
    size_t text_cap = (size_t)words * 12 + 64;
    char *text = malloc(text_cap);
    for (;;) {
        long d = atomic_fetch_add(&sh->next_doc, 1);
        if (d >= s->docs || !text) break;
        int failed = 0;
        if (summary(sh, h, headers, text, text_cap, d) < 0) failed = 1;
        for (long k = 0; k < s->chunks && !failed; k += s->batch) {
            long n = s->chunks - k < s->batch ? s->chunks - k : s->batch;
            json_t *input = json_array();
            for (long i = 0; i < n; i++) {
                chunk_text(text, text_cap, d, k + i, s->chunk_words);
                json_array_append_new(input, json_string(text));
            }
            json_t *req = json_pack("{s:s, s:o}", "model", s->embed_model, "input", input);
            if (req && s->encoding) json_object_set_new(req, "encoding_format", json_string(s->encoding));
            if (req && s->dimensions) json_object_set_new(req, "dimensions", json_integer(s->dimensions));
            char *req_json = json_dumps(req, JSON_COMPACT);
            json_decref(req);
            if (!req_json || call(sh, h, headers, s->embed_url, req_json, "data", (size_t)n, NULL) < 0)
                failed = 1;
            free(req_json);
        }
        if (failed) atomic_fetch_add(&sh->failed_docs, 1);
    }
    free(text);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return NULL;
}

static void usage(FILE *to) {
    fprintf(to,
            "usage: blocking-client --url BASE [--docs N] [--threads T] [--chunks-per-doc C] [--batch B]\n"
            "                       [--chunk-words W] [--retries R] [--timeout-ms MS] [--api-key KEY]\n"
            "                       [--model NAME] [--embed-model NAME] [--summary-parts P]\n"
            "                       [--summary-words W] [--encoding float|base64] [--dimensions N]\n");
}

static int number(const char *v, long min, long *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < min) return -1;
    *out = x;
    return 0;
}

int main(int argc, char **argv) {
    struct settings s = {.model = "gpt-4o-mini",
                         .embed_model = "text-embedding-3-small",
                         .docs = 100,
                         .threads = 8,
                         .chunks = 8,
                         .batch = 8,
                         .retries = 3,
                         .chunk_words = 150,
                         .timeout_ms = 60000,
                         .summary_parts = 1,
                         .summary_words = 0};
    const char *url = NULL, *key = NULL;
    for (int i = 1; i < argc; i += 2) { /* --name value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v)
            bad = 1;
        else if (!strcmp(a, "--url"))
            url = v;
        else if (!strcmp(a, "--api-key"))
            key = v;
        else if (!strcmp(a, "--model"))
            s.model = v;
        else if (!strcmp(a, "--embed-model"))
            s.embed_model = v;
        else if (!strcmp(a, "--docs"))
            bad = number(v, 0, &s.docs);
        else if (!strcmp(a, "--threads"))
            bad = number(v, 1, &s.threads);
        else if (!strcmp(a, "--chunks-per-doc"))
            bad = number(v, 0, &s.chunks);
        else if (!strcmp(a, "--batch"))
            bad = number(v, 1, &s.batch);
        else if (!strcmp(a, "--chunk-words"))
            bad = number(v, 1, &s.chunk_words);
        else if (!strcmp(a, "--retries"))
            bad = number(v, 0, &s.retries);
        else if (!strcmp(a, "--timeout-ms"))
            bad = number(v, 1, &s.timeout_ms);
        else if (!strcmp(a, "--summary-parts"))
            bad = number(v, 1, &s.summary_parts);
        else if (!strcmp(a, "--summary-words"))
            bad = number(v, 1, &s.summary_words);
        else if (!strcmp(a, "--dimensions"))
            bad = number(v, 1, &s.dimensions);
        else if (!strcmp(a, "--encoding")) {
            s.encoding = v;
            bad = strcmp(v, "float") && strcmp(v, "base64");
        } else
            bad = 1;
        if (bad) {
            fprintf(stderr, "blocking-client: bad argument %s %s\n", a, v ? v : "");
            usage(stderr);
            return 2;
        }
    }
    if (!url) {
        usage(stderr);
        return 2;
    }
    if (!s.summary_words) s.summary_words = s.chunk_words;
    size_t ul = strlen(url);
    while (ul && url[ul - 1] == '/') ul--;
    if (ul >= 3 && !strncmp(url + ul - 3, "/v1", 3)) ul -= 3;
    snprintf(s.chat_url, sizeof s.chat_url, "%.*s/v1/chat/completions", (int)ul, url);
    snprintf(s.embed_url, sizeof s.embed_url, "%.*s/v1/embeddings", (int)ul, url);
    if (key) snprintf(s.auth, sizeof s.auth, "Authorization: Bearer %s", key);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "blocking-client: curl_global_init failed\n");
        return 1;
    }
    struct shared sh = {.s = &s};
    pthread_t *tids = calloc((size_t)s.threads, sizeof *tids);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long started = 0;
    for (; tids && started < s.threads; started++)
        if (pthread_create(&tids[started], NULL, worker, &sh) != 0) break;
    for (long i = 0; i < started; i++) pthread_join(tids[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    free(tids);
    curl_global_cleanup();
    if (started == 0) {
        fprintf(stderr, "blocking-client: could not start a thread\n");
        return 1;
    }
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("{\"docs\": %ld, \"threads\": %ld, \"wall_s\": %.3f, \"requests\": %ld, \"retries\": %ld, "
           "\"failed_docs\": %ld}\n",
           s.docs, started, wall, atomic_load(&sh.requests), atomic_load(&sh.retries),
           atomic_load(&sh.failed_docs));
    return atomic_load(&sh.failed_docs) ? 1 : 0;
}
