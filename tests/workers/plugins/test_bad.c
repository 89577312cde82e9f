/* test_bad.c - plugins that misbehave on purpose, for the worker tests.
 *
 * Built several times (see CMakeLists.txt): a parser (cpu, or declaring the
 * isolated bottleneck), a page stage and a chunker. Each behaves on ordinary
 * documents and misbehaves when the document's bytes hold a marker word:
 *
 *   SLUICE_TEST_SEGFAULT  writes through a wild pointer (a real SIGSEGV)
 *   SLUICE_TEST_ABORT     abort()
 *   SLUICE_TEST_HANG      sleeps forever
 *   SLUICE_TEST_ALLOCATE  allocates 1 MiB blocks and touches them until malloc
 *                         fails (then SL_ENOMEM); stops at 1 GiB so a test
 *                         without a limit cannot take the machine down
 *   SLUICE_TEST_EXIT      exit(3)
 *   SLUICE_TEST_REJECT    fails as bad input, like any ordinary plugin
 *   SLUICE_TEST_LEAK      fails with its secret `token` in the message
 *   SLUICE_TEST_WRITE     creates the file `write_path` (seccomp must stop it)
 *   SLUICE_TEST_SOCKET    opens a network socket (seccomp must stop it)
 *   SLUICE_TEST_GROW      keeps 48 MiB resident for the rest of its life
 *
 * The parser makes one element per non-empty line ("# x" is a heading) and
 * records what the tests check in metadata: its pid, how many calls its
 * per-thread state has seen, the bytes and hash it saw, its token's length.
 * The page stage (page 2 is the one that crashes) adds one element and one
 * region per page, inverts the page image of even pages and drops that of
 * odd ones. The chunker makes one chunk per element.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sluice/sluice.h>

#ifndef TEST_NAME
#define TEST_NAME "test-bad-parser"
#endif
#ifndef TEST_ROLE
#define TEST_ROLE SL_ROLE_PARSER
#endif
#ifndef TEST_BOTTLENECK
#define TEST_BOTTLENECK SL_CPU
#endif

typedef struct conf {
    const char *token;
    const char *write_path;
    bool fail_init;
    bool init_crash;
    int64_t pages;
} conf;

static const sl_option options[] = {
    {"token",
     SL_OPT_STRING,
     "",
     "a secret it leaks on SLUICE_TEST_LEAK",
     SL_OPT_SECRET,
     offsetof(conf, token),
     NULL,
     {0}},
    {"write_path",
     SL_OPT_PATH,
     NULL,
     "the file SLUICE_TEST_WRITE creates",
     0,
     offsetof(conf, write_path),
     NULL,
     {0}},
    {"fail_init", SL_OPT_BOOL, "false", "init fails", 0, offsetof(conf, fail_init), NULL, {0}},
    {"init_crash", SL_OPT_BOOL, "false", "init crashes", 0, offsetof(conf, init_crash), NULL, {0}},
    {"pages",
     SL_OPT_INT,
     "0",
     "parser: page count to declare, each with a small image",
     0,
     offsetof(conf, pages),
     NULL,
     {0}},
    {NULL, 0, NULL, NULL, 0, 0, NULL, {0}},
};

static void *grown; /* SLUICE_TEST_GROW's memory, kept on purpose */
/* SLUICE_TEST_ALLOCATE leaks its blocks on purpose (a runaway), each through
 * this pointer: an allocation nothing reads may be left out, and clang -O3
 * leaves it out. */
static void *volatile runaway;

static void crash(void) {
    /* a wild address, not NULL (UBSan would report that instead), read
     * through a volatile so the compiler cannot see it coming */
    static volatile uintptr_t wild = 64;
    *(volatile int *)wild = 1;
}

static int init(sl_instance *inst, const void *config, void **out) {
    const conf *c = config;
    if (c->init_crash) crash();
    if (c->fail_init) return sl_instance_fail(inst, SL_EFATAL, "told to fail by fail_init");
    conf *copy = malloc(sizeof *copy);
    if (!copy) return SL_ENOMEM;
    *copy = *c;
    *out = copy;
    return 0;
}

static void fini(void *state) {
    free(state);
    free(grown); /* before dlclose unmaps the only pointer to it */
    grown = NULL;
}

static int thread_init(void *state, void **out) {
    long *calls = calloc(1, sizeof *calls);
    if (!calls) return SL_ENOMEM;
    *out = calls;
    return 0;
}

static void thread_fini(void *state, void *ts) { free(ts); }

static bool has(const sl_doc *doc, const char *marker) {
    size_t len;
    const char *d = sl_doc_data(doc, &len);
    return memmem(d, len, marker, strlen(marker)) != NULL;
}

static void set_meta_int(sl_doc *doc, const char *key, long long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    sl_doc_meta_set(doc, key, buf);
}

/* The common misbehaviours; returns 1 when the call is over (*rc set). */
static int misbehave(sl_call *call, sl_doc *doc, int *rc) {
    const conf *c = sl_call_state(call);
    if (has(doc, "SLUICE_TEST_SEGFAULT") && TEST_ROLE != SL_ROLE_PAGE) crash();
    if (has(doc, "SLUICE_TEST_ABORT")) abort();
    if (has(doc, "SLUICE_TEST_EXIT")) exit(3);
    if (has(doc, "SLUICE_TEST_HANG"))
        for (;;) sleep(1);
    if (has(doc, "SLUICE_TEST_ALLOCATE")) {
        size_t mib = 0;
        for (; mib < 1024; mib++) {
            char *p = malloc(1 << 20);
            if (!p) break;
            memset(p, (int)mib, 1 << 20);
            runaway = p;
        }
        *rc = mib < 1024 ? sl_fail(call, SL_ENOMEM, "malloc failed after %zu MiB", mib)
                         : sl_fail(call, SL_EBADINPUT, "allocated 1 GiB and no memory limit stopped it");
        return 1;
    }
    if (has(doc, "SLUICE_TEST_REJECT")) {
        *rc = sl_fail(call, SL_EBADINPUT, "rejected: the document holds SLUICE_TEST_REJECT");
        return 1;
    }
    if (has(doc, "SLUICE_TEST_LEAK")) {
        *rc = sl_fail(call, SL_EBADINPUT, "my token is %s", c->token);
        return 1;
    }
    if (has(doc, "SLUICE_TEST_WRITE")) {
        int fd = c->write_path ? open(c->write_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
        if (fd < 0) {
            *rc =
                sl_fail(call, SL_EBADINPUT, "cannot create %s", c->write_path ? c->write_path : "(no path)");
            return 1;
        }
        (void)!write(fd, "x", 1);
        close(fd);
        sl_doc_meta_set(doc, "wrote", c->write_path);
    }
    if (has(doc, "SLUICE_TEST_SOCKET")) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s >= 0) close(s);
        sl_doc_meta_set(doc, "socket", s >= 0 ? "opened" : "refused");
    }
    if (has(doc, "SLUICE_TEST_GROW") && !grown) {
        grown = malloc(48u << 20);
        if (grown) memset(grown, 1, 48u << 20);
    }
    return 0;
}

static int parse(sl_call *call, sl_doc *doc) {
    int rc;
    if (misbehave(call, doc, &rc)) return rc;
    const conf *c = sl_call_state(call);
    long *calls = sl_call_thread_state(call);
    size_t len;
    const char *d = sl_doc_data(doc, &len);
    uint32_t line = 1;
    for (size_t at = 0; at < len; line++) {
        const char *nl = memchr(d + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - d) : len;
        if (end > at) {
            int heading = end - at > 2 && d[at] == '#' && d[at + 1] == ' ';
            size_t skip = heading ? 2 : 0;
            int i = sl_doc_add_element(doc, heading ? SL_EL_HEADING : SL_EL_PARAGRAPH, d + at + skip,
                                       end - at - skip);
            if (i < 0) return sl_fail(call, i, "cannot add an element");
            if (heading) sl_elem_set_level(doc, (size_t)i, 1);
            sl_elem_set_page(doc, (size_t)i, c->pages > 0 ? 1 : 0);
            sl_elem_set_source(doc, (size_t)i, at, line);
            sl_elem_set_confidence(doc, (size_t)i, 90.0f);
            sl_elem_set_bbox(doc, (size_t)i, 1, 2, 3, (float)line);
            char n[32];
            snprintf(n, sizeof n, "%zu", end - at);
            sl_elem_set_attr(doc, (size_t)i, "len", n);
        }
        at = end + 1;
    }
    set_meta_int(doc, "pid", (long long)getpid());
    set_meta_int(doc, "calls", ++*calls);
    set_meta_int(doc, "bytes", (long long)len);
    set_meta_int(doc, "token_len", (long long)strlen(c->token ? c->token : ""));
    sl_doc_meta_set(doc, "hash", sl_doc_hash(doc));
    if (c->pages > 0) {
        sl_doc_set_page_count(doc, (uint32_t)c->pages);
        for (uint32_t p = 1; p <= (uint32_t)c->pages; p++) {
            unsigned char px[8 * 4];
            memset(px, (int)p, sizeof px);
            sl_doc_set_page_image(doc, p, 8, 4, 1, 8, px, 72.0f);
        }
    }
    return 0;
}

static int page(sl_call *call, sl_doc *doc, uint32_t page) {
    int rc;
    if (has(doc, "SLUICE_TEST_SEGFAULT") && page == 2) crash();
    if (misbehave(call, doc, &rc)) return rc;
    uint32_t w = 0, h = 0, ch = 0;
    size_t stride = 0;
    float dpi = 0;
    const unsigned char *px = sl_doc_page_image(doc, page, &w, &h, &ch, &stride, &dpi);
    char text[160];
    snprintf(text, sizeof text, "page %u: chars=%zu image=%ux%u px=%d", page,
             sl_doc_page_text_chars(doc, page), w, h, px ? px[0] : -1);
    int i = sl_doc_add_element(doc, SL_EL_PARAGRAPH, text, strlen(text));
    if (i < 0) return sl_fail(call, i, "cannot add an element");
    sl_elem_set_page(doc, (size_t)i, page);
    sl_elem_set_attr(doc, (size_t)i, "from", "page-stage");
    sl_doc_add_region(doc, page, page % 2 ? "odd" : "even", 0.5f, 0, 0, (float)w, (float)h);
    if (px && page % 2 == 0) {
        unsigned char *inv = malloc(stride * h);
        if (!inv) return sl_fail(call, SL_ENOMEM, "no memory");
        for (size_t k = 0; k < stride * h; k++) inv[k] = (unsigned char)(255 - px[k]);
        rc = sl_doc_set_page_image(doc, page, w, h, ch, stride, inv, dpi);
        free(inv);
        if (rc < 0) return sl_fail(call, rc, "cannot set the page image");
    } else if (px) {
        sl_doc_drop_page_image(doc, page);
    }
    char key[32];
    snprintf(key, sizeof key, "page.%u", page);
    set_meta_int(doc, key, (long long)getpid());
    return 0;
}

static int chunk(sl_call *call, sl_doc *doc) {
    int rc;
    if (misbehave(call, doc, &rc)) return rc;
    for (size_t i = 0; i < sl_doc_element_count(doc); i++) {
        size_t len;
        const char *t = sl_element_text(doc, i, &len);
        int k = sl_doc_add_chunk(doc, t, len);
        if (k < 0) return sl_fail(call, k, "cannot add a chunk");
        char s[32];
        snprintf(s, sizeof s, "h/%zu", i);
        sl_chunk_set_heading(doc, (size_t)k, s);
        snprintf(s, sizeof s, "s/%zu", i);
        sl_chunk_set_summary(doc, (size_t)k, s);
        sl_chunk_set_position(doc, (size_t)k, sl_element_page(doc, i), sl_element_line(doc, i));
    }
    set_meta_int(doc, "chunker_pid", (long long)getpid());
    return 0;
}

static const char *const media[] = {"text/markdown", "text/plain", NULL};

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = TEST_NAME,
    .version = "1.0.0",
    .summary = "misbehaves on marker words, for the worker tests",
    .role = TEST_ROLE,
    .bottleneck = TEST_BOTTLENECK,
    .options = options,
    .config_size = sizeof(conf),
    .media_types = TEST_ROLE == SL_ROLE_PARSER ? media : NULL,
    .init = init,
    .fini = fini,
    .thread_init = thread_init,
    .thread_fini = thread_fini,
    .parse = TEST_ROLE == SL_ROLE_PARSER ? parse : NULL,
    .page = TEST_ROLE == SL_ROLE_PAGE ? page : NULL,
    .chunk = TEST_ROLE == SL_ROLE_CHUNKER ? chunk : NULL,
};

SL_PLUGIN_EXPORT(desc)
