/* source.c - remote documents: http(s):// and s3:// URIs through libcurl
 * (see source.h). A fetch during a run is an sl_http request on the loop
 * (http.c) owned by a bare instance named "source"; the listing of an s3://
 * prefix and a fetch outside a run are blocking curl easy requests. Both
 * build their requests with the same few functions, so a URI is signed,
 * bounded and described the same way whichever path reads it. */
#include "source.h"

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlreader.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "http_request.h"
#include "sluice/call.h"

/* The SHA-256 of an empty body: every request here is a GET. S3 wants the
 * payload's hash in x-amz-content-sha256, and curl 7.88 does not add it. */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define DEFAULT_TIMEOUT_MS 60000
#define CONNECT_TIMEOUT_MS 10000
#define MAX_LISTING ((size_t)16 << 20) /* one ListObjectsV2 page: 1000 keys is far less */

static struct {
    char endpoint[512]; /* "" : AWS */
    char region[64];
    char *key_id, *secret, *token; /* NULL: unsigned */
    int64_t timeout_ms, retries, retry_base_ms;
    char ca_file[4096]; /* [sluice] fetch_ca_file; "": the system's CAs alone */
} cfg;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static char *env_dup(const char *name) {
    const char *v = getenv(name);
    return v && *v ? strdup(v) : NULL;
}

static void read_env(void) {
    const char *region = getenv("AWS_REGION");
    if (!region || !*region) region = getenv("AWS_DEFAULT_REGION");
    snprintf(cfg.region, sizeof cfg.region, "%s", region && *region ? region : "us-east-1");
    const char *ep = getenv("AWS_ENDPOINT_URL_S3");
    if (!ep || !*ep) ep = getenv("AWS_ENDPOINT_URL");
    snprintf(cfg.endpoint, sizeof cfg.endpoint, "%s", ep ? ep : "");
    cfg.key_id = env_dup("AWS_ACCESS_KEY_ID");
    cfg.secret = env_dup("AWS_SECRET_ACCESS_KEY");
    cfg.token = env_dup("AWS_SESSION_TOKEN");
    cfg.timeout_ms = DEFAULT_TIMEOUT_MS;
    cfg.retries = 3;
    cfg.retry_base_ms = 500;
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void sl_source_configure(sl_ctx *ctx, const char *s3_endpoint, int64_t timeout_ms, int64_t retries,
                         int64_t retry_base_ms, const char *ca_file) {
    pthread_once(&env_once, read_env);
    snprintf(cfg.ca_file, sizeof cfg.ca_file, "%s", ca_file ? ca_file : "");
    if (s3_endpoint && *s3_endpoint) snprintf(cfg.endpoint, sizeof cfg.endpoint, "%s", s3_endpoint);
    if (timeout_ms > 0) cfg.timeout_ms = timeout_ms;
    if (retries >= 0) cfg.retries = retries;
    if (retry_base_ms > 0) cfg.retry_base_ms = retry_base_ms;
    if (ctx && cfg.secret) sl_ctx_add_secret(ctx, cfg.secret);
    if (ctx && cfg.token) sl_ctx_add_secret(ctx, cfg.token);
}

int sl_source_is_s3(const char *uri) { return uri && strncmp(uri, "s3://", 5) == 0; }

int sl_source_is_remote(const char *uri) {
    return uri &&
           (strncmp(uri, "http://", 7) == 0 || strncmp(uri, "https://", 8) == 0 || sl_source_is_s3(uri));
}

/* --- URLs --- */

/* Percent-encodes all but RFC 3986's unreserved bytes (and '/' when
 * keep_slash), as SigV4's canonical request does; malloc'd. */
static char *pct(const char *s, int keep_slash) {
    size_t n = strlen(s);
    char *o = malloc(n * 3 + 1), *p = o;
    if (!o) return NULL;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '_' || c == '.' || c == '~' || (keep_slash && c == '/'))
            *p++ = (char)c;
        else
            p += sprintf(p, "%%%02X", c);
    }
    *p = 0;
    return o;
}

/* s3://BUCKET/KEY: the bucket (copied into b) and the key (a pointer into
 * uri, "" for none). -1 when there is no bucket. */
static int s3_split(const char *uri, char *b, size_t blen, const char **key) {
    const char *p = uri + 5, *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= blen) return -1;
    memcpy(b, p, n);
    b[n] = 0;
    *key = slash ? slash + 1 : "";
    return 0;
}

/* The bucket's base URL, without a trailing '/'; malloc'd. */
static char *bucket_url(const char *bucket) {
    pthread_once(&env_once, read_env);
    char buf[1024];
    if (cfg.endpoint[0]) {
        size_t l = strlen(cfg.endpoint);
        while (l && cfg.endpoint[l - 1] == '/') l--;
        snprintf(buf, sizeof buf, "%.*s/%s", (int)l, cfg.endpoint, bucket);
    } else {
        snprintf(buf, sizeof buf, "https://%s.s3.%s.amazonaws.com", bucket, cfg.region);
    }
    return strdup(buf);
}

/* The http(s) URL that fetches `uri`; malloc'd, NULL on a bad URI (err). */
static char *url_for(const char *uri, char *err, size_t errlen) {
    if (!sl_source_is_s3(uri)) return strdup(uri);
    char bucket[256];
    const char *key;
    if (s3_split(uri, bucket, sizeof bucket, &key) || !*key) {
        snprintf(err, errlen, "not an object URI (s3://BUCKET/KEY)");
        return NULL;
    }
    char *base = bucket_url(bucket), *k = pct(key, 1), *u = NULL;
    if (base && k && (u = malloc(strlen(base) + strlen(k) + 2))) sprintf(u, "%s/%s", base, k);
    free(base);
    free(k);
    if (!u) snprintf(err, errlen, "out of memory");
    return u;
}

/* --- what a response means --- */

/* Copies the text of <tag>...</tag> from an S3 error body into out, as
 * printable ASCII: the server's bytes end up in logs and reports, where a
 * newline would forge a line and an escape would reach a terminal. */
static void xml_text(const char *body, const char *tag, char *out, size_t outlen) {
    char open[40], close[40];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = strstr(body, open), *b = a ? strstr(a, close) : NULL;
    size_t o = 0;
    if (a && b)
        for (const char *p = a + strlen(open); p < b && o + 1 < outlen; p++) {
            unsigned char c = (unsigned char)*p;
            out[o++] = c >= 0x20 && c < 0x7f ? (char)c : (c == '\n' || c == '\r' || c == '\t' ? ' ' : '?');
        }
    out[o] = 0;
}

/* "HTTP 404", with S3's error code and message when the body has them. */
void sl_s3_describe_status(long status, const char *body, char *out, size_t outlen) {
    char code[64], msg[200];
    xml_text(body ? body : "", "Code", code, sizeof code);
    xml_text(body ? body : "", "Message", msg, sizeof msg);
    if (code[0] && msg[0])
        snprintf(out, outlen, "HTTP %ld %s: %s", status, code, msg);
    else if (code[0])
        snprintf(out, outlen, "HTTP %ld %s", status, code);
    else
        snprintf(out, outlen, "HTTP %ld", status);
}

static int retryable(long status) { return status == 0 || status == 408 || status == 429 || status >= 500; }

static int64_t backoff_ms(int attempt) {
    int64_t ms = cfg.retry_base_ms << (attempt < 10 ? attempt : 10);
    return ms > 30000 ? 30000 : ms;
}

/* The signing and the headers every S3 request carries, appended to *h. */
static int s3_sign(CURL *e, struct curl_slist **h) {
    if (!cfg.key_id || !cfg.secret) return 0; /* a public bucket: unsigned */
    char sigv4[128];
    snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", cfg.region);
    if (curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sigv4) != CURLE_OK) return -1;
    curl_easy_setopt(e, CURLOPT_USERNAME, cfg.key_id);
    curl_easy_setopt(e, CURLOPT_PASSWORD, cfg.secret);
    struct curl_slist *l = curl_slist_append(*h, "x-amz-content-sha256: " EMPTY_SHA256);
    if (!l) return -1;
    *h = l;
    if (cfg.token) {
        size_t n = strlen(cfg.token) + 32;
        char *line = malloc(n);
        if (!line) return -1;
        snprintf(line, n, "x-amz-security-token: %s", cfg.token);
        l = curl_slist_append(*h, line);
        memset(line, 0, n);
        free(line);
        if (!l) return -1;
        *h = l;
    }
    return 0;
}

static void copy_header(const char *v, char *out, size_t outlen) { snprintf(out, outlen, "%s", v ? v : ""); }

/* An http(s) document follows redirects (a moved page), to http(s) only;
 * S3 requests never do (a signed request must not travel elsewhere). */
static void follow(CURL *e) {
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
}

/* --- blocking requests (listings, and readers outside a run) --- */

typedef struct sync_req {
    char *body;
    size_t len, cap, max;
    int too_big, oom;
    sl_fetched *got;
    const atomic_int *cancel; /* set: the request is abandoned (a listing freed meanwhile) */
} sync_req;

static int sync_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    const sync_req *s = ud;
    return atomic_load(s->cancel) ? 1 : 0;
}

static size_t sync_body(char *data, size_t size, size_t n, void *ud) {
    sync_req *s = ud;
    size_t len = size * n;
    if (s->len + len > s->max) {
        s->too_big = 1;
        return 0;
    }
    if (s->len + len + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + len + 1) cap *= 2;
        char *p = realloc(s->body, cap);
        if (!p) {
            s->oom = 1;
            return 0;
        }
        s->body = p;
        s->cap = cap;
    }
    memcpy(s->body + s->len, data, len);
    s->len += len;
    s->body[s->len] = 0;
    return len;
}

void sl_fetched_header(sl_fetched *got, const char *line, size_t len) {
    char h[512];
    snprintf(h, sizeof h, "%.*s", (int)(len < sizeof h - 1 ? len : sizeof h - 1), line);
    h[strcspn(h, "\r\n")] = 0;
    char *colon = strchr(h, ':');
    if (!colon) return;
    *colon = 0;
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    if (strcasecmp(h, "Content-Type") == 0) copy_header(v, got->content_type, sizeof got->content_type);
    if (strcasecmp(h, "ETag") == 0) copy_header(v, got->etag, sizeof got->etag);
    if (strcasecmp(h, "Last-Modified") == 0) copy_header(v, got->last_modified, sizeof got->last_modified);
}

static size_t sync_header(char *line, size_t size, size_t n, void *ud) {
    sync_req *s = ud;
    size_t len = size * n;
    if (s->got) sl_fetched_header(s->got, line, len);
    return len;
}

/* One GET, retried on 5xx and transport errors. 0 with *status and s->body
 * (the caller frees it) when a response came, else a negative SL_E*. */
static int get_sync(const char *url, int s3, sync_req *s, long *status, char *err, size_t errlen) {
    pthread_once(&env_once, read_env);
    int rc = SL_EBADINPUT;
    for (int attempt = 0; attempt <= cfg.retries; attempt++) {
        if (s->cancel && atomic_load(s->cancel)) return snprintf(err, errlen, "abandoned"), SL_EBADINPUT;
        if (attempt) {
            int64_t ms = backoff_ms(attempt - 1);
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
        s->len = 0;
        s->too_big = s->oom = 0;
        if (s->got) s->got->content_type[0] = s->got->etag[0] = s->got->last_modified[0] = 0;
        CURL *e = curl_easy_init();
        struct curl_slist *h = NULL;
        if (!e) return snprintf(err, errlen, "out of memory"), SL_ENOMEM;
        char ebuf[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, ebuf);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sync_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, sync_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                         (long)(cfg.timeout_ms < CONNECT_TIMEOUT_MS ? cfg.timeout_ms : CONNECT_TIMEOUT_MS));
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)cfg.timeout_ms);
        curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
        if (cfg.ca_file[0]) curl_easy_setopt(e, CURLOPT_CAINFO, cfg.ca_file);
        if (s->cancel) {
            curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, sync_progress);
            curl_easy_setopt(e, CURLOPT_XFERINFODATA, s);
            curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
        }
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
        if (!s3) follow(e);
        if (s3 && s3_sign(e, &h)) {
            curl_easy_cleanup(e);
            curl_slist_free_all(h);
            return snprintf(err, errlen, "out of memory"), SL_ENOMEM;
        }
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        CURLcode res = curl_easy_perform(e);
        *status = 0;
        if (res == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
        curl_easy_cleanup(e);
        curl_slist_free_all(h);
        if (s->too_big) return snprintf(err, errlen, "larger than %zu bytes", s->max), SL_EBADINPUT;
        if (s->oom) return snprintf(err, errlen, "out of memory"), SL_ENOMEM;
        if (res != CURLE_OK) {
            const char *detail = ebuf[0] ? ebuf : curl_easy_strerror(res);
            if (res == CURLE_PEER_FAILED_VERIFICATION) { /* say which setting fixes it */
                char hint[4400];
                sl_http_cert_hint(hint, sizeof hint, "[sluice] fetch_ca_file", cfg.ca_file);
                snprintf(err, errlen, "%s (%s)", detail, hint);
            } else {
                snprintf(err, errlen, "%s", detail);
            }
            if (sl_http_result_permanent(res)) return SL_EBADINPUT; /* no retry fixes it */
            rc = SL_EBADINPUT;
            continue;
        }
        if (!s->body && !(s->body = calloc(1, 1))) return snprintf(err, errlen, "out of memory"), SL_ENOMEM;
        if (retryable(*status) && attempt < cfg.retries) continue;
        return 0;
    }
    return rc;
}

int sl_fetch_sync(const char *uri, uint64_t max_size, sl_fetched *got, char *err, size_t errlen) {
    memset(got, 0, sizeof *got);
    char *url = url_for(uri, err, errlen);
    if (!url) return SL_EBADINPUT;
    sync_req s = {.max = max_size > SIZE_MAX ? SIZE_MAX : (size_t)max_size, .got = got};
    long status = 0;
    int rc = get_sync(url, sl_source_is_s3(uri), &s, &status, err, errlen);
    free(url);
    if (rc == SL_EBADINPUT && s.too_big)
        snprintf(err, errlen, "larger than max_file_size (%llu bytes)", (unsigned long long)max_size);
    if (rc == 0 && (status < 200 || status > 299)) {
        sl_s3_describe_status(status, s.body, err, errlen);
        rc = SL_EBADINPUT;
    }
    if (rc) {
        free(s.body);
        return rc;
    }
    got->data = s.body;
    got->len = s.len;
    return 0;
}

/* --- listing a prefix --- */

/* Pages are fetched on a thread of their own, one ahead: the next page is
 * asked for as soon as the current one is in, so that the walk, which a
 * run drives from its loop thread, never waits on the network while keys
 * are left. With a notifier set (a run's), a page not in yet is answered
 * "pending" (2) instead of waited for, and the notifier is called, on the
 * fetching thread, when it is. The fetch fills a listing of its own (nx),
 * whose keys then move into the listing read. */
struct sl_s3_list {
    char *uri;    /* s3://BUCKET/PREFIX as asked, for messages */
    char *base;   /* the bucket's URL */
    char *prefix; /* percent-encoded */
    char *token;  /* the next page's continuation token, percent-encoded; NULL: none */
    char **keys;
    uint64_t *sizes;
    size_t n, i, cap;
    int started, last; /* a page was asked for; the last page is in */
    /* the page being fetched */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    int fetching, threaded; /* a fetch was started (on th, when threaded) and not taken in */
    int fetched;            /* under mu: it ended, nx or nx_err holds what it got */
    sl_s3_list *nx;
    int nx_rc;
    char nx_err[600];
    atomic_int cancel;
    void (*notify)(void *arg);
    void *notify_arg;
};

/* A listing of its own strings (taken, freed with it, even on failure);
 * NULL when one of them or the listing could not be made. */
static sl_s3_list *list_make(char *uri, char *base, char *prefix) {
    sl_s3_list *l = calloc(1, sizeof *l);
    if (l) {
        pthread_mutex_init(&l->mu, NULL);
        pthread_cond_init(&l->cv, NULL);
        l->uri = uri, l->base = base, l->prefix = prefix;
    } else {
        free(uri), free(base), free(prefix);
    }
    if (l && (!uri || !base || !prefix)) {
        sl_s3_list_free(l);
        l = NULL;
    }
    return l;
}

int sl_s3_list_new(const char *uri, sl_s3_list **out) {
    char bucket[256];
    const char *prefix;
    if (s3_split(uri, bucket, sizeof bucket, &prefix)) return SL_EINVAL;
    sl_s3_list *l = list_make(strdup(uri), bucket_url(bucket), pct(prefix, 0));
    if (!l) return SL_ENOMEM;
    xmlInitParser(); /* before a page is read on another thread (libxml2's rule) */
    *out = l;
    return 0;
}

void sl_s3_list_set_notify(sl_s3_list *l, void (*fn)(void *arg), void *arg) {
    pthread_mutex_lock(&l->mu);
    l->notify = fn;
    l->notify_arg = arg;
    pthread_mutex_unlock(&l->mu);
}

static void clear_page(sl_s3_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->keys[i]);
    l->n = l->i = 0;
}

static int child_is(const xmlNode *n, const char *name) {
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static int add_key(sl_s3_list *l, const char *key, uint64_t size) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        char **k = realloc(l->keys, cap * sizeof *k);
        if (!k) return -1;
        l->keys = k;
        uint64_t *s = realloc(l->sizes, cap * sizeof *s);
        if (!s) return -1;
        l->sizes = s;
        l->cap = cap;
    }
    if (!(l->keys[l->n] = strdup(key))) return -1;
    l->sizes[l->n++] = size;
    return 0;
}

/* One child of <ListBucketResult> into l (expanded by the reader, freed by
 * it when it moves on); SL_ENOMEM when a key cannot be kept. */
static int page_child(sl_s3_list *l, const xmlNode *n, int *truncated) {
    if (child_is(n, "IsTruncated")) {
        xmlChar *t = xmlNodeGetContent(n);
        *truncated = t && strcmp((const char *)t, "true") == 0;
        xmlFree(t);
    } else if (child_is(n, "NextContinuationToken")) {
        xmlChar *t = xmlNodeGetContent(n);
        free(l->token);
        l->token = t && *t ? pct((const char *)t, 0) : NULL;
        xmlFree(t);
    } else if (child_is(n, "Contents")) {
        xmlChar *key = NULL, *size = NULL;
        int rc = 0;
        for (xmlNode *c = n->children; c; c = c->next) {
            if (child_is(c, "Key") && !key) key = xmlNodeGetContent(c);
            if (child_is(c, "Size") && !size) size = xmlNodeGetContent(c);
        }
        size_t kl = key ? strlen((const char *)key) : 0;
        if (kl && key[kl - 1] != '/' &&
            add_key(l, (const char *)key, size ? strtoull((const char *)size, NULL, 10) : 0))
            rc = SL_ENOMEM;
        xmlFree(key);
        xmlFree(size);
        return rc;
    }
    return 0;
}

/* Reads one ListBucketResult page into l. The answer is untrusted, so it
 * is read as a stream, one child of the root at a time: memory follows the
 * largest child, not the page (a tree of 16 MiB of empty elements is half
 * a gigabyte). A DTD is refused: S3 sends none, and its entities would let
 * a page of a few kilobytes spell gigabytes of keys. libxml2 reports
 * nothing on stderr; the line of a syntax error goes into the message. */
int sl_s3_list_page(sl_s3_list *l, const char *body, size_t len, char *err, size_t errlen) {
    clear_page(l);
    xmlResetLastError();
    xmlTextReader *r = len <= MAX_LISTING ? xmlReaderForMemory(body, (int)len, NULL, NULL,
                                                               XML_PARSE_NONET | XML_PARSE_NOBLANKS |
                                                                   XML_PARSE_NOERROR | XML_PARSE_NOWARNING)
                                          : NULL;
    int ok = r ? 1 : -1, dtd = 0, listing = 0, truncated = 0, rc = 0;
    char *asked = l->token; /* the token this page was asked with */
    l->token = NULL;
    while (ok == 1 && (ok = xmlTextReaderRead(r)) == 1 && xmlTextReaderNodeType(r) != XML_READER_TYPE_ELEMENT)
        if (xmlTextReaderNodeType(r) == XML_READER_TYPE_DOCUMENT_TYPE) dtd = 1;
    const xmlChar *root = ok == 1 ? xmlTextReaderConstLocalName(r) : NULL;
    listing = root && strcmp((const char *)root, "ListBucketResult") == 0;
    if (ok == 1 && listing && !dtd && !xmlTextReaderIsEmptyElement(r)) {
        ok = xmlTextReaderRead(r);
        while (ok == 1 && !rc && xmlTextReaderDepth(r) > 0) {
            const xmlNode *n = xmlTextReaderExpand(r);
            if (!n) ok = -1;
            if (n) rc = page_child(l, n, &truncated);
            if (n && !rc) ok = xmlTextReaderNext(r);
        }
    }
    /* the rest, for what is not well-formed after the part read */
    while (ok == 1 && !rc) ok = xmlTextReaderRead(r);
    const xmlError *e = ok < 0 ? xmlGetLastError() : NULL;
    xmlFreeTextReader(r);
    int again = truncated && asked && l->token && strcmp(asked, l->token) == 0;
    free(asked);
    if (!rc && (ok < 0 || !listing)) {
        if (e && e->line > 0)
            snprintf(err, errlen,
                     "listing %s: the answer is not a ListBucketResult (not well-formed XML at line %d)",
                     l->uri, e->line);
        else
            snprintf(err, errlen, "listing %s: the answer is not a ListBucketResult", l->uri);
        rc = SL_EBADINPUT;
    } else if (!rc && dtd) {
        snprintf(err, errlen, "listing %s: the answer declares a DTD (S3 sends none)", l->uri);
        rc = SL_EBADINPUT;
    } else if (rc) {
        snprintf(err, errlen, "out of memory");
    } else if (truncated && !l->token) {
        snprintf(err, errlen, "listing %s: a truncated page without a NextContinuationToken", l->uri);
        rc = SL_EBADINPUT;
    } else if (again) {
        /* the same token would ask for the same page again, forever */
        snprintf(err, errlen, "listing %s: the server answered the continuation token it was asked with",
                 l->uri);
        rc = SL_EBADINPUT;
    }
    if (rc) {
        clear_page(l);
        return rc;
    }
    l->last = !truncated;
    return 0;
}

static int next_page(sl_s3_list *l, char *err, size_t errlen) {
    clear_page(l);
    size_t n = strlen(l->base) + strlen(l->prefix) + (l->token ? strlen(l->token) : 0) + 64;
    char *url = malloc(n);
    if (!url) return snprintf(err, errlen, "out of memory"), SL_ENOMEM;
    /* the query's parameters in SigV4's canonical (sorted) order */
    snprintf(url, n, "%s?%s%s%slist-type=2&prefix=%s", l->base, l->token ? "continuation-token=" : "",
             l->token ? l->token : "", l->token ? "&" : "", l->prefix);
    sync_req s = {.max = MAX_LISTING, .cancel = &l->cancel};
    long status = 0;
    char why[256];
    int rc = get_sync(url, 1, &s, &status, why, sizeof why);
    free(url);
    l->started = 1;
    if (rc == 0 && (status < 200 || status > 299)) {
        sl_s3_describe_status(status, s.body, why, sizeof why);
        rc = SL_EBADINPUT;
    }
    if (rc)
        snprintf(err, errlen, "listing %s: %s", l->uri, why);
    else
        rc = sl_s3_list_page(l, s.body, s.len, err, errlen);
    free(s.body);
    return rc;
}

static void fetch_page(sl_s3_list *l) {
    l->nx_rc = next_page(l->nx, l->nx_err, sizeof l->nx_err);
    pthread_mutex_lock(&l->mu);
    l->fetched = 1;
    pthread_cond_broadcast(&l->cv);
    /* under the lock: once sl_s3_list_set_notify(NULL) returned, no call is
     * under way or to come */
    if (l->notify) l->notify(l->notify_arg);
    pthread_mutex_unlock(&l->mu);
}

static void *fetch_main(void *arg) {
    pthread_setname_np(pthread_self(), "sluice-fetch");
    fetch_page(arg);
    return NULL;
}

/* Asks for the page after the current one: on a thread, or here when no
 * thread can be made. */
static int start_fetch(sl_s3_list *l, char *err, size_t errlen) {
    sl_s3_list *nx = list_make(strdup(l->uri), strdup(l->base), strdup(l->prefix));
    if (nx && l->token) nx->token = strdup(l->token);
    if (!nx || (l->token && !nx->token)) {
        sl_s3_list_free(nx);
        return snprintf(err, errlen, "listing %s: out of memory", l->uri), SL_ENOMEM;
    }
    l->nx = nx;
    l->fetched = 0;
    l->fetching = 1;
    l->threaded = pthread_create(&l->th, NULL, fetch_main, l) == 0;
    if (!l->threaded) fetch_page(l);
    return 0;
}

/* The fetched page becomes the current one. */
static int take_page(sl_s3_list *l, char *err, size_t errlen) {
    if (l->threaded) pthread_join(l->th, NULL);
    l->fetching = l->threaded = l->fetched = 0;
    sl_s3_list *nx = l->nx;
    l->nx = NULL;
    int rc = l->nx_rc;
    if (rc) {
        snprintf(err, errlen, "%s", l->nx_err);
    } else {
        clear_page(l);
        char **k = l->keys;
        uint64_t *z = l->sizes;
        size_t cap = l->cap;
        l->keys = nx->keys, l->sizes = nx->sizes, l->cap = nx->cap, l->n = nx->n, l->i = 0;
        nx->keys = k, nx->sizes = z, nx->cap = cap, nx->n = 0;
        free(l->token);
        l->token = nx->token;
        nx->token = NULL;
        l->last = nx->last;
        l->started = 1;
    }
    sl_s3_list_free(nx);
    return rc;
}

int sl_s3_list_next(sl_s3_list *l, const char **key, uint64_t *size, char *err, size_t errlen) {
    while (l->i >= l->n) {
        if (l->started && l->last) return 0;
        int rc = l->fetching ? 0 : start_fetch(l, err, errlen);
        if (!rc) {
            pthread_mutex_lock(&l->mu);
            int pending = !l->fetched && l->notify;
            while (!l->fetched && !pending) pthread_cond_wait(&l->cv, &l->mu);
            pthread_mutex_unlock(&l->mu);
            if (pending) return 2;
            rc = take_page(l, err, errlen);
        }
        if (rc) {
            l->last = l->started = 1;
            clear_page(l);
            return -1;
        }
        /* the following page, while this one's keys are handed out */
        if (!l->last && start_fetch(l, err, errlen)) l->fetching = 0; /* asked for again when needed */
    }
    *key = l->keys[l->i];
    *size = l->sizes[l->i];
    l->i++;
    return 1;
}

size_t sl_s3_list_pending(const sl_s3_list *l) { return l->n - l->i; }

const char *sl_s3_list_token(const sl_s3_list *l) { return l->last ? NULL : l->token; }

void sl_s3_list_free(sl_s3_list *l) {
    if (!l) return;
    if (l->fetching && l->threaded) {
        atomic_store(&l->nx->cancel, 1);
        pthread_join(l->th, NULL);
    }
    sl_s3_list_free(l->nx);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    clear_page(l);
    free(l->keys);
    free(l->sizes);
    free(l->uri);
    free(l->base);
    free(l->prefix);
    free(l->token);
    free(l);
}

/* --- fetching on the loop --- */

struct sl_fetch {
    sl_instance inst; /* a bare one, owning the request (http.c meters and names through it) */
    sl_http *req;
    uv_timer_t timer; /* the backoff before a retry */
    uint64_t max_size;
    int attempt;
    sl_fetch_cb cb;
    void *arg;
};

static void fetch_free(uv_handle_t *h) { free(h->data); }

static void fetch_end(sl_fetch *f, int rc, sl_fetched *got, const char *err) {
    f->cb(f->arg, rc, got, err);
    sl_http_free(f->req);
    f->req = NULL;
    uv_close((uv_handle_t *)&f->timer, fetch_free);
}

static void on_answer(sl_http *req, void *arg);

static void retry_now(uv_timer_t *t) {
    sl_fetch *f = t->data;
    if (sl_http_send(f->req, on_answer, f) != 0) fetch_end(f, SL_ENOMEM, NULL, "out of memory");
}

static void on_answer(sl_http *req, void *arg) {
    sl_fetch *f = arg;
    long status = sl_http_status(req);
    char why[400];
    if (status >= 200 && status <= 299) {
        sl_fetched got;
        memset(&got, 0, sizeof got);
        /* the body changes hands: the document frees it */
        got.data = req->resp ? req->resp : calloc(1, 1);
        got.len = req->resp ? req->resp_len : 0;
        req->resp = NULL;
        req->resp_len = req->resp_cap = 0;
        copy_header(sl_http_response_header(req, "Content-Type"), got.content_type, sizeof got.content_type);
        copy_header(sl_http_response_header(req, "ETag"), got.etag, sizeof got.etag);
        copy_header(sl_http_response_header(req, "Last-Modified"), got.last_modified,
                    sizeof got.last_modified);
        if (!got.data) {
            fetch_end(f, SL_ENOMEM, NULL, "out of memory");
            return;
        }
        fetch_end(f, 0, &got, NULL);
        return;
    }
    if (status == 0 && req->too_big) {
        snprintf(why, sizeof why, "larger than max_file_size (%llu bytes)", (unsigned long long)f->max_size);
        fetch_end(f, SL_EBADINPUT, NULL, why);
        return;
    }
    if (status == 0)
        snprintf(why, sizeof why, "%s", sl_http_error(req) ? sl_http_error(req) : "no response");
    else
        sl_s3_describe_status(status, sl_http_response_body(req, NULL), why, sizeof why);
    /* a certificate that does not verify will not on a retry either */
    if (retryable(status) && !req->oom && !sl_http_result_permanent(req->result) &&
        f->attempt < cfg.retries) {
        uv_timer_start(&f->timer, retry_now, (uint64_t)backoff_ms(f->attempt++), 0);
        return;
    }
    if (f->attempt) {
        size_t l = strlen(why);
        snprintf(why + l, sizeof why - l, " (after %d attempts)", f->attempt + 1);
    }
    fetch_end(f, req->oom ? SL_ENOMEM : SL_EBADINPUT, NULL, why);
}

int sl_fetch_start(sl_loop *loop, const char *uri, uint64_t max_size, sl_fetch_cb cb, void *arg) {
    pthread_once(&env_once, read_env);
    char err[128];
    char *url = url_for(uri, err, sizeof err);
    if (!url) return SL_EINVAL;
    sl_fetch *f = calloc(1, sizeof *f);
    if (!f) {
        free(url);
        return SL_ENOMEM;
    }
    f->inst.name = "source";
    f->inst.loop = loop;
    f->inst.stage.ca_file = cfg.ca_file; /* sl_http_new trusts it */
    f->max_size = max_size;
    f->cb = cb;
    f->arg = arg;
    f->req = sl_http_new(&f->inst, "GET", url);
    free(url);
    int64_t connect = cfg.timeout_ms < CONNECT_TIMEOUT_MS ? cfg.timeout_ms : CONNECT_TIMEOUT_MS;
    struct curl_slist *h = NULL;
    int rc = f->req ? 0 : SL_ENOMEM;
    if (!rc && sl_source_is_s3(uri) && s3_sign(f->req->easy, &h)) rc = SL_ENOMEM;
    if (!rc && !sl_source_is_s3(uri)) follow(f->req->easy);
    /* the signing headers go in through sl_http_header (it owns the list) */
    for (struct curl_slist *p = h; !rc && p; p = p->next) {
        char *colon = strchr(p->data, ':');
        *colon = 0;
        rc = sl_http_header(f->req, p->data, colon + 2);
        *colon = ':';
    }
    curl_slist_free_all(h);
    if (!rc) rc = sl_http_timeouts(f->req, connect, cfg.timeout_ms);
    if (!rc) rc = sl_http_max_response(f->req, max_size > SIZE_MAX ? SIZE_MAX : (size_t)max_size);
    if (!rc) rc = sl_http_send(f->req, on_answer, f);
    if (rc) {
        sl_http_free(f->req);
        free(f);
        return rc;
    }
    uv_timer_init(sl_loop_uv(loop), &f->timer);
    f->timer.data = f;
    return 0;
}
