/* fuzz_s3_listing.c - what an S3 (or http) server answers, as source.c
 * reads it: a ListObjectsV2 page (libxml2), an error body (<Code>,
 * <Message>) and response header lines. The server is not trusted: a
 * listing's keys become documents to fetch, its continuation token the next
 * request, an error's text a message in logs, headers a document's metadata.
 *
 * The input is a sequence of pages separated by NUL bytes (XML holds none),
 * read one after another into one listing as sl_s3_list_next would, so
 * tokens and keys are replaced page after page; the whole input is also an
 * error body, and its lines header lines. Beyond crashes and leaks it
 * checks what source.h promises: a page's keys are not empty and are no
 * folder markers, the token is percent-encoded and never the one just used
 * (a listing that would ask for the same page forever), the keys hold no
 * more bytes than the page could spell (no amplification by entities), a
 * failure says why, an error's description is printable ASCII that fits,
 * and a header's value fits its field without a line end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sluice/call.h"
#include "source.h"

#define MAX_PAGES 16
#define MAX_HEADER_LINES 256

static void fail(const char *what, const char *detail) {
    fprintf(stderr, "fuzz_s3_listing: %s: %.200s\n", what, detail ? detail : "");
    abort();
}

static int token_char(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~' || c == '%';
}

/* Reads one page into l and every key it holds; 0 when it was read. */
static int page(sl_s3_list *l, const char *body, size_t len, char **prev_token) {
    char err[512];
    memset(err, 'x', sizeof err);
    int rc = sl_s3_list_page(l, body, len, err, sizeof err);
    if (rc) {
        if (rc != SL_EBADINPUT && rc != SL_ENOMEM) fail("unexpected code", NULL);
        if (!memchr(err, 0, sizeof err) || !err[0]) fail("a failure without its reason", NULL);
        return -1;
    }
    const char *token = sl_s3_list_token(l);
    if (token) {
        if (!*token) fail("an empty continuation token", NULL);
        for (const char *p = token; *p; p++)
            if (!token_char((unsigned char)*p)) fail("a token not percent-encoded", token);
        if (*prev_token && strcmp(*prev_token, token) == 0) fail("the same page asked for twice", token);
    }
    free(*prev_token);
    *prev_token = token ? strdup(token) : NULL;
    /* Text in the document is at most 4 UTF-8 bytes per byte of the page,
     * whatever its declared encoding; more came from entities. */
    size_t total = 0, n = sl_s3_list_pending(l);
    for (size_t k = 0; k < n; k++) {
        const char *key;
        uint64_t size;
        if (sl_s3_list_next(l, &key, &size, err, sizeof err) != 1) fail("a pending key not returned", err);
        size_t kl = strlen(key);
        if (!kl || key[kl - 1] == '/') fail("an empty key or a folder marker", key);
        total += kl;
        if (total > 4 * len + 4) fail("keys larger than the page could spell", key);
    }
    if (sl_s3_list_pending(l) != 0) fail("keys left after the page's count", NULL);
    return 0;
}

static void describe(const char *body) {
    char out[300];
    memset(out, 'x', sizeof out);
    sl_s3_describe_status(403, body, out, sizeof out);
    if (!memchr(out, 0, sizeof out)) fail("a description not terminated", NULL);
    if (strncmp(out, "HTTP 403", 8) != 0) fail("a description without its status", out);
    for (const unsigned char *p = (const unsigned char *)out; *p; p++)
        if (*p < 0x20 || *p > 0x7e) fail("a description with a byte that is not printable ASCII", out);
}

/* A field of sl_fetched holds one line's value, cut to its size. */
static void field(const char *name, const char *v, size_t cap) {
    const char *end = memchr(v, 0, cap);
    if (!end) fail("a header field not terminated", name);
    if (memchr(v, '\r', (size_t)(end - v)) || memchr(v, '\n', (size_t)(end - v)))
        fail("a header field holding a line end", name);
}

static void headers(const uint8_t *data, size_t size) {
    sl_fetched got;
    memset(&got, 0, sizeof got);
    const uint8_t *p = data, *end = data + size;
    for (int k = 0; k < MAX_HEADER_LINES && p < end; k++) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        char *line = malloc(len); /* exactly the line, as curl hands it over */
        if (!line) return;
        memcpy(line, p, len);
        sl_fetched_header(&got, line, len);
        free(line);
        p += len;
    }
    field("Content-Type", got.content_type, sizeof got.content_type);
    field("ETag", got.etag, sizeof got.etag);
    field("Last-Modified", got.last_modified, sizeof got.last_modified);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    headers(data, size);

    /* the error body as source.c gets it: NUL-terminated */
    char *copy = malloc(size + 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    copy[size] = 0;
    describe(copy);
    free(copy);

    sl_s3_list *l;
    if (sl_s3_list_new("s3://fuzz-bucket/some/prefix", &l)) return 0;
    char *prev_token = NULL;
    const char *p = (const char *)data, *end = p + size;
    for (int k = 0; k < MAX_PAGES && p <= end; k++) {
        const char *nul = memchr(p, 0, (size_t)(end - p));
        size_t len = nul ? (size_t)(nul - p) : (size_t)(end - p);
        /* a page in a buffer of its own size, so ASan sees reads past it */
        char *body = malloc(len ? len : 1);
        if (!body) break;
        memcpy(body, p, len);
        int rc = page(l, body, len, &prev_token);
        free(body);
        if (rc || !nul) break;
        p = nul + 1;
    }
    free(prev_token);
    sl_s3_list_free(l);
    return 0;
}
