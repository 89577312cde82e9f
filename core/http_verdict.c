/* http_verdict.c - what a finished HTTP request means for the call that
 * made it (sl_http_verdict): success, retryable (with the server's
 * Retry-After or rate-limit reset), bad input or fatal, with a message that
 * names the request and a snippet of the answer, never a credential. One
 * reading of HTTP for every io plugin, so retries, fallbacks and the circuit
 * breaker behave the same whatever the provider. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http_request.h"

/* --- the verdict --- */

bool sl_http_result_permanent(CURLcode res) {
    switch (res) {
    /* what no retry can fix: the URL, the TLS setup, the certificate */
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CIPHER: return true;
    default: return false;
    }
}

void sl_http_cert_hint(char *out, size_t n, const char *option, const char *ca_file) {
    if (ca_file && *ca_file)
        snprintf(out, n, "the server's certificate is not signed by the system's CAs nor by %s %s", option,
                 ca_file);
    else
        snprintf(out, n, "a server with a private CA needs its certificate in %s", option);
}

/* "1s", "6m0s", "20ms", "1.5h": the durations OpenAI's x-ratelimit-reset-*
 * headers carry (Go's format). -1 if it is not one. */
static int64_t parse_duration(const char *s) {
    double total = 0;
    int any = 0;
    while (*s) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (end == s || errno || !(v >= 0)) return -1;
        s = end;
        double unit;
        if (strncmp(s, "ms", 2) == 0)
            unit = 1, s += 2;
        else if (strncmp(s, "us", 2) == 0)
            unit = 1e-3, s += 2;
        else if (strncmp(s, "ns", 2) == 0)
            unit = 1e-6, s += 2;
        else if (*s == 's')
            unit = 1000, s++;
        else if (*s == 'm')
            unit = 60000, s++;
        else if (*s == 'h')
            unit = 3600000, s++;
        else
            return -1;
        total += v * unit;
        any = 1;
    }
    if (!any || total > (double)MAX_RETRY_AFTER_MS) return any ? MAX_RETRY_AFTER_MS : -1;
    return (int64_t)ceil(total);
}

/* Milliseconds from the response's retry hints, or -1 if it has none:
 * retry-after-ms (OpenAI), Retry-After in seconds or as an HTTP date, and
 * for a 429 the x-ratelimit-reset-* of whichever limit is exhausted. */
static int64_t retry_after(const sl_http *req) {
    const char *v = sl_http_response_header(req, "retry-after-ms");
    char *end;
    if (v && *v) {
        errno = 0;
        double ms = strtod(v, &end);
        if (end != v && !*end && !errno && ms >= 0)
            return ms > (double)MAX_RETRY_AFTER_MS ? MAX_RETRY_AFTER_MS : (int64_t)ceil(ms);
    }
    v = sl_http_response_header(req, "Retry-After");
    if (v && *v) {
        if (*v >= '0' && *v <= '9') {
            errno = 0;
            long long s = strtoll(v, &end, 10);
            if (!*end && !errno) return s > MAX_RETRY_AFTER_MS / 1000 ? MAX_RETRY_AFTER_MS : s * 1000;
        }
        time_t at = curl_getdate(v, NULL);
        if (at != -1) {
            double d = difftime(at, time(NULL));
            return d <= 0                                  ? 0
                   : d * 1000 > (double)MAX_RETRY_AFTER_MS ? MAX_RETRY_AFTER_MS
                                                           : (int64_t)d * 1000;
        }
    }
    int64_t best = -1;
    if (req->status == 429) {
        static const char *const kinds[][2] = {
            {"x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"},
            {"x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"},
        };
        for (size_t i = 0; i < 2; i++) {
            const char *left = sl_http_response_header(req, kinds[i][0]);
            const char *reset = sl_http_response_header(req, kinds[i][1]);
            if (!left || strcmp(left, "0") != 0 || !reset) continue;
            int64_t ms = parse_duration(reset);
            if (ms > best) best = ms;
        }
    }
    return best;
}

/* The start of the body, one line of printable text, cut on a UTF-8
 * character boundary. */
static void snippet(const sl_http *req, char *out, size_t cap) {
    size_t len;
    const char *b = sl_http_response_body(req, &len);
    size_t o = 0, i = 0;
    int space = 1; /* drops leading blanks and collapses runs */
    for (; i < len && o + 4 < cap && o < SNIPPET_BYTES; i++) {
        unsigned char c = (unsigned char)b[i];
        if (c < 0x20 || c == 0x7f) c = ' ';
        if (c == ' ' && space) continue;
        space = c == ' ';
        out[o++] = (char)c;
    }
    if (i < len) {
        while (o && ((unsigned char)out[o - 1] & 0xc0) == 0x80) o--; /* continuation bytes */
        if (o && ((unsigned char)out[o - 1] & 0xc0) == 0xc0) o--;    /* their lead byte */
        out[o++] = '.', out[o++] = '.', out[o++] = '.';
    }
    while (o && out[o - 1] == ' ') o--;
    out[o] = '\0';
    if (!sl_utf8_valid(out, o, NULL)) /* a binary body: ASCII only */
        for (size_t k = 0; k < o; k++)
            if ((unsigned char)out[k] >= 0x80) out[k] = '?';
}

int sl_http_verdict(sl_call *call, const sl_http *req) {
    if (!req || req->state != REQ_DONE)
        return sl_fail(call, SL_EINVAL, "sl_http_verdict: the request has not completed");
    if (req->error || req->oom || !req->status) {
        int code = sl_http_result_permanent(req->result) ? SL_EFATAL : SL_ERETRY;
        if (req->oom) code = SL_ENOMEM;
        return sl_fail(call, code, "%s %s failed: %s", req->method, req->where,
                       req->error ? req->error : "out of memory");
    }
    long s = req->status;
    if (s >= 200 && s <= 299) return SL_OK;
    char body[SNIPPET_BYTES + 8];
    snippet(req, body, sizeof body);
    const char *sep = body[0] ? ": " : "";
    if (s == 401 || s == 403)
        return sl_fail(call, SL_EFATAL, "HTTP %ld from %s %s: check the API key%s%s", s, req->method,
                       req->where, body[0] ? " - " : "", body);
    if (s >= 300 && s <= 399) {
        const char *loc = sl_http_response_header(req, "Location");
        char *to = loc ? sl_http_url_where(loc) : NULL;
        int rc =
            sl_fail(call, SL_EFATAL, "HTTP %ld from %s %s: redirects are not followed (to %s): check the URL",
                    s, req->method, req->where, to ? to : "?");
        free(to);
        return rc;
    }
    if (s >= 400 && s <= 499 && s != 408 && s != 409 && s != 425 && s != 429)
        return sl_fail(call, SL_EBADINPUT, "HTTP %ld from %s %s%s%s", s, req->method, req->where, sep, body);
    /* 408, 409, 425, 429, 5xx, and anything stranger a proxy may say */
    sl_fail(call, SL_ERETRY, "HTTP %ld from %s %s%s%s", s, req->method, req->where, sep, body);
    int64_t ms = retry_after(req);
    if (ms >= 0) sl_call_retry_after(call, ms);
    if (req->status == 429) call->throttled = 1; /* the limiter waits; the breaker does not count it */
    return SL_ERETRY;
}
