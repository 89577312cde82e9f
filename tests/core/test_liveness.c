/* test_liveness.c - every run ends on its own, whatever order plugins
 * finish in.
 *
 * The pipeline is live by construction: every event that can free a slot
 * or a byte (a unit finishing on the pool, on the loop, in a worker; a
 * retry's backoff ending; a rate limit refilling; a breaker's cooldown
 * ending; a document finishing) pumps exactly the queues that wait for it.
 * There is no periodic re-pump to hide a forgotten one, so a missed wakeup
 * is a run that never ends. This test hunts for one: whole runs over a few
 * hundred generated documents each, through the plugins of
 * plugins/test_jitter.c, which sleep a random while on the pool and answer
 * io calls in every way a provider can (at once, sl_call_done before
 * returning SL_PENDING, from a timer on the next loop iteration or a few
 * ms later), fail retryably at random, and refuse marked documents.
 * Configurations cover every hand-off: tiny in-flight limits per provider,
 * fallback chains whose primary keeps failing, circuit breakers opening
 * and closing, rpm and tpm limits that make calls wait, page stages (two
 * chained; one of them and a chunker in worker processes), embedding
 * batches, summaries of chunks and of documents in parts, admission
 * throttled by max_documents and a small memory budget, and a second run
 * that skips most documents right after their lookup while the changed
 * ones wait for the sink.
 *
 * Each round runs in a forked child with a deadline (60 s, far beyond the
 * second or so a round takes): a stall is forever, so a generous deadline
 * keeps the test from depending on timing. A child that does not finish is
 * killed and the test fails naming the configuration and the seed. Then
 * every document must have ended stored, skipped (on a second run, the
 * unchanged ones only) or failed (the marked ones only, each for its
 * marker), and the SQLite store must hold each unmarked document once with
 * all its chunks, vectors and, where asked for, summaries.
 *
 * The seed is printed; SLUICE_LIVENESS_SEED=N repeats a run (the corpus,
 * the configurations' limits and the plugins' random streams; thread
 * timing still varies), SLUICE_LIVENESS_ONLY=NAME runs one configuration
 * and SLUICE_LIVENESS_DEADLINE=S changes the deadline.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "check.h"
#include "config.h"
#include "ctx.h"
#include "pipeline.h"
#include "runtime.h"
#include "workers.h"

#define DEADLINE_S 60

/* Markers: a document holding one fails in the stage that refuses it. */
enum { MK_EMBED, MK_LLM, MK_PAGE, MK_PARSE, MK_CHUNK, NMARKERS };
static const char *const marker_word[NMARKERS] = {"POISON", "TOXIC", "BROKEN", "GARBLED", "SHREDDED"};
#define BIT(m) (1u << (m))

/* --- the stages, as INI pieces; @NAME@ is filled in per round --- */

#define SLUICE                                                                                               \
    "[sluice]\nthreads = 2\nretries = 200\nretry_base = 1ms\nretry_max = 3ms\ninclude = *.md *.txt\n"
#define STORE "[store]\nplugin = sink-sqlite\npath = @STORE@\n"
#define MARKDOWN "[markdown]\nplugin = parse-markdown\n"
#define ROUTE_MD(stages)                                                                                     \
    "[route.md]\nmedia = text/markdown\nstages = markdown chunker " stages "\nsink = store\n"
#define ROUTE_PAGED(stages)                                                                                  \
    "[route.paged]\nmedia = text/plain\nstages = parse render ocr chunker " stages "\nsink = store\n"
#define JITTER(name, plugin) "[" name "]\nplugin = test-jitter-" plugin "\nseed = @SEED@\n"
#define CHUNKER(retry) JITTER("chunker", "chunk") "bad_text = SHREDDED\nretry_pct = " retry "\n"
#define PAGED JITTER("parse", "parse") "bad_text = GARBLED\n" JITTER("render", "page") "tag = render\n"
#define OCR JITTER("ocr", "page") "tag = ocr\nbad_text = BROKEN\nretry_pct = 10\n"
#define EMBEDDER(name, retry)                                                                                \
    JITTER(name, "embed")                                                                                    \
    "bad_text = POISON\nretry_pct = " retry "\nbatch_size = @BATCH@\n"                                       \
    "batch_delay = @DELAY@ms\n"
#define LLM(name, retry) JITTER(name, "llm") "bad_text = TOXIC\nretry_pct = " retry "\n"
#define BREAKER(n, ms) "breaker_failures = " n "\nbreaker_cooldown = " ms "\n"

/* One INI per configuration. */
static const char ini_flood[] = SLUICE ROUTE_MD("embedder") MARKDOWN CHUNKER("0")
    EMBEDDER("embedder", "20") "max_concurrency = @MC@\n" BREAKER("3", "2ms") STORE;

static const char ini_fallback[] = SLUICE "max_documents = 3\n" ROUTE_MD("embedder") MARKDOWN CHUNKER("0")
    EMBEDDER("embedder", "60") "max_concurrency = 1\nfallback = embedder2\n" BREAKER("3", "3ms")
        EMBEDDER("embedder2", "10") "max_concurrency = @MC@\n" BREAKER("3", "2ms") STORE;

static const char ini_summaries[] =
    SLUICE "memory_budget = 48K\n" ROUTE_MD("llm embedder") MARKDOWN CHUNKER("0")
        LLM("llm", "15") "summaries = both\nmax_input_chars = 250\nembed_summaries = true\n"
                         "max_concurrency = @MC@\n" BREAKER("3", "2ms")
                             EMBEDDER("embedder", "10") "max_concurrency = @MC2@\n" BREAKER("3", "2ms") STORE;

/* the first call reports more tokens than the tpm bucket holds */
static const char ini_llm_fallback[] =
    SLUICE "max_documents = 2\n" ROUTE_MD("llm embedder") MARKDOWN CHUNKER("0")
        LLM("llm", "50") "summaries = document\nmax_input_chars = 300\nmax_concurrency = 1\n"
                         "tpm = 600000\nusage = 1\nusage_first = 50100\nfallback = llm2\n" BREAKER("3", "3ms")
                             LLM("llm2", "5") "max_concurrency = 1\n" BREAKER("3", "2ms") JITTER(
                                 "embedder", "embed-cpu") "bad_text = POISON\nretry_pct = 10\nbatch_size = "
                                                          "@BATCH@\nbatch_delay = @DELAY@ms\n" STORE;

static const char ini_pages[] = SLUICE "max_documents = @MAXDOCS@\n" ROUTE_PAGED("embedder")
    PAGED OCR CHUNKER("0") EMBEDDER("embedder", "10") "max_concurrency = @MC@\n" BREAKER("3", "2ms") STORE;

static const char ini_two_routes[] =
    SLUICE "max_documents = 3\nmemory_budget = 64K\n" ROUTE_MD("llm embedder") ROUTE_PAGED("embedder")
        MARKDOWN PAGED OCR CHUNKER("0")
            LLM("llm", "10") "summaries = chunks\nmax_concurrency = @MC@\n" BREAKER("3", "2ms")
                EMBEDDER("embedder", "10") "max_concurrency = @MC2@\n" BREAKER("3", "2ms") STORE;

static const char ini_rpm[] = SLUICE ROUTE_MD("embedder") MARKDOWN CHUNKER("0")
    JITTER("embedder", "embed") "batch_size = 1\nmax_concurrency = 2\nrpm = @RPM@\n" STORE;

static const char ini_isolated[] = SLUICE "max_documents = 3\nworkers = 2\n" ROUTE_PAGED("embedder") PAGED OCR
    "isolated = true\n" CHUNKER("0") "isolated = true\n" EMBEDDER(
        "embedder", "10") "max_concurrency = @MC@\n" BREAKER("3", "2ms") STORE;

static const char ini_breakers[] = SLUICE "memory_budget = 96K\n" ROUTE_MD("llm embedder")
    MARKDOWN CHUNKER("0") LLM("llm", "40") "summaries = chunks\nmax_concurrency = @MC@\n" BREAKER("2", "1ms")
        EMBEDDER("embedder", "40") "max_concurrency = 1\n" BREAKER("2", "3ms") STORE;

static const char ini_everything[] = SLUICE "max_documents = @MAXDOCS@\nmemory_budget = 64K\n" ROUTE_MD(
    "llm embedder") ROUTE_PAGED("llm embedder") MARKDOWN PAGED OCR CHUNKER("25")
    LLM("llm",
        "30") "summaries = both\nmax_input_chars = 200\nmax_concurrency = 1\nfallback = llm2\n" BREAKER("3",
                                                                                                        "2ms")
        LLM("llm2", "10") "max_concurrency = @MC@\n" BREAKER("3", "2ms")
            EMBEDDER("embedder", "30") "max_concurrency = 1\nfallback = embedder2\n" BREAKER("3", "2ms")
                EMBEDDER("embedder2", "10") "max_concurrency = @MC2@\n" BREAKER("3", "2ms") STORE;

/* run twice: the second run skips unchanged documents right after their
 * lookup, while changed ones wait for the sink's one slot to store (its
 * lookup, store and prune share one throttle) */
static const char ini_rerun[] =
    SLUICE "max_documents = 8\n" ROUTE_MD("embedder") ROUTE_PAGED("embedder") MARKDOWN PAGED OCR CHUNKER("0")
        EMBEDDER("embedder", "20") "max_concurrency = @MC@\n" BREAKER("3", "2ms") STORE;

/* every paged document holds three children, found by its parser in a
 * worker process; a parent waits for its children before its store (or
 * its end), and admission, at 1-3 documents in flight and a small budget,
 * must let its children in */
static const char ini_children[] =
    SLUICE "max_documents = @MAXDOCS@\nmemory_budget = 64K\nworkers = 2\n" ROUTE_PAGED("embedder")
        JITTER("parse", "parse") "bad_text = GARBLED\nchildren = 3\nisolated = true\n" JITTER(
            "render", "page") "tag = render\n" OCR CHUNKER("0")
            EMBEDDER("embedder", "10") "max_concurrency = @MC@\n" BREAKER("3", "2ms") STORE;
#define CHILD_CHUNKS 3 /* a child: one paragraph, one page through two page stages */

#define MD_ALL (BIT(MK_EMBED) | BIT(MK_LLM) | BIT(MK_CHUNK))
#define PAGED_ALL ((1u << NMARKERS) - 1)

typedef struct config {
    const char *name, *about;
    const char *ini;
    int md, paged;               /* documents of each kind */
    unsigned md_marks, pg_marks; /* markers planted in each kind */
    unsigned summaries;          /* 1: Markdown, 2: paged documents have a summary on every chunk */
    const char *retried;         /* stages that must have retried (space-separated) */
    const char *fallbacks;       /* providers that must have taken calls */
    int rerun;                   /* run again after changing a third of the documents */
    int children;                /* each document's children (ini: parse children =) */
} config;

static const config configs[] = {
    {.name = "flood",
     .about = "every document admitted at once, one io embedder of 1-2 slots",
     .ini = ini_flood,
     .md = 400,
     .md_marks = BIT(MK_EMBED) | BIT(MK_CHUNK),
     .retried = "embedder"},
    {.name = "fallback",
     .about = "an embedder failing 60% of calls falls back to another; 3 documents in flight",
     .ini = ini_fallback,
     .md = 200,
     .md_marks = BIT(MK_EMBED),
     .retried = "embedder",
     .fallbacks = "embedder2"},
    {.name = "summaries",
     .about = "chunk and document summaries, documents in parts, a 48K memory budget",
     .ini = ini_summaries,
     .md = 80,
     .md_marks = MD_ALL,
     .summaries = 1,
     .retried = "llm embedder"},
    {.name = "llm-fallback",
     .about = "an llm that overdraws its tpm limit falls back to another; a cpu embedder",
     .ini = ini_llm_fallback,
     .md = 120,
     .md_marks = MD_ALL,
     .retried = "llm embedder",
     .fallbacks = "llm2"},
    {.name = "pages",
     .about = "two chained page stages per page, 1-3 documents in flight",
     .ini = ini_pages,
     .paged = 80,
     .pg_marks = PAGED_ALL & ~BIT(MK_LLM),
     .retried = "ocr embedder"},
    {.name = "two-routes",
     .about = "Markdown and paged documents share one embedder and one sink",
     .ini = ini_two_routes,
     .md = 80,
     .paged = 80,
     .md_marks = MD_ALL,
     .pg_marks = PAGED_ALL & ~BIT(MK_LLM),
     .summaries = 1,
     .retried = "llm embedder ocr"},
    {.name = "rpm",
     .about = "one text per embedding call, each through an rpm window",
     .ini = ini_rpm,
     .md = 120},
    {.name = "isolated",
     .about = "a page stage and the chunker in worker processes, 3 documents in flight",
     .ini = ini_isolated,
     .paged = 60,
     .pg_marks = PAGED_ALL & ~BIT(MK_LLM),
     .retried = "ocr embedder"},
    {.name = "breakers",
     .about = "breakers that open after 2 failures, 40% of calls failing, a 96K memory budget",
     .ini = ini_breakers,
     .md = 100,
     .md_marks = MD_ALL,
     .summaries = 1,
     .retried = "llm embedder"},
    {.name = "everything",
     .about = "both routes, summaries in parts, fallbacks for both providers, 1-3 documents in flight",
     .ini = ini_everything,
     .md = 50,
     .paged = 50,
     .md_marks = MD_ALL,
     .pg_marks = PAGED_ALL,
     .summaries = 3,
     .retried = "llm embedder chunker ocr",
     .fallbacks = "llm2 embedder2"},
    {.name = "rerun",
     .about = "a second run that skips most documents while a few wait to be stored, 8 in flight",
     .ini = ini_rerun,
     .md = 200,
     .paged = 60,
     .md_marks = BIT(MK_EMBED),
     .pg_marks = BIT(MK_PAGE) | BIT(MK_EMBED),
     .retried = "embedder",
     .rerun = 1},
    {.name = "children",
     .about = "three children per document from an isolated parser, 1-3 documents in flight, a 64K budget",
     .ini = ini_children,
     .paged = 60,
     .pg_marks = PAGED_ALL & ~BIT(MK_LLM),
     .retried = "ocr embedder",
     .children = 3},
};
#define NCONFIGS (sizeof configs / sizeof configs[0])

/* --- random numbers, from the seed only --- */

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t rng_state;
static uint64_t rnd(uint64_t n) { return mix(rng_state++) % n; }

/* --- the corpus --- */

typedef struct docinfo {
    int paged;
    int marker;  /* -1: none */
    int chunks;  /* expected when stored */
    int changed; /* since the first run (configurations that run twice) */
} docinfo;

static const char *const words[] = {"river",  "token",  "lease",  "backup", "queue",  "index",
                                    "budget", "vector", "page",   "render", "ingest", "sluice",
                                    "stream", "batch",  "window", "shard",  "rate",   "limit",
                                    "retry",  "commit", "fence",  "node",   "chunk",  "model"};

static void paragraph(FILE *f, int marker) {
    int n = 8 + (int)rnd(30), at = marker >= 0 ? (int)rnd((uint64_t)n) : -1;
    for (int w = 0; w < n; w++) {
        fprintf(f, "%s%s", w ? " " : "", words[rnd(sizeof words / sizeof words[0])]);
        if (w == at) fprintf(f, " %s", marker_word[marker]);
    }
    fputs(".\n", f);
}

/* A marker for one document of a kind: 1 in 25 documents, when any may be planted. */
static int pick_marker(unsigned marks) {
    if (!marks || rnd(25) != 0) return -1;
    int m;
    do m = (int)rnd(NMARKERS);
    while (!(marks & BIT(m)));
    return m;
}

static void doc_name(char *buf, size_t n, const char *corpus, int i, int paged) {
    snprintf(buf, n, "%s/%s%04d.%s", corpus, paged ? "page" : "doc", i, paged ? "txt" : "md");
}

/* Writes the documents; each Markdown one is a heading and its paragraphs
 * (one chunk each), each paged one "pages N" and its paragraphs, plus one
 * element (and chunk) per page from each of the two page stages. */
static docinfo *write_corpus(const config *c, const char *corpus, int *ndocs) {
    mkdir(corpus, 0755);
    int n = c->md + c->paged;
    docinfo *d = calloc((size_t)n, sizeof *d);
    for (int i = 0; i < n; i++) {
        d[i].paged = i >= c->md;
        int paras = 1 + (int)rnd(5), pages = d[i].paged ? (int)rnd(6) : 0; /* 0: no page stage runs */
        unsigned marks = d[i].paged ? c->pg_marks : c->md_marks;
        d[i].marker = pick_marker(pages ? marks : marks & ~BIT(MK_PAGE));
        char path[900];
        doc_name(path, sizeof path, corpus, i, d[i].paged);
        FILE *f = fopen(path, "w");
        if (!f) {
            perror(path);
            exit(2);
        }
        if (d[i].paged)
            fprintf(f, "pages %d\n\n", pages);
        else
            fprintf(f, "# Document %d\n\n", i);
        /* The llm's marker goes in the last paragraph: a document summarised
         * in parts must have every part asked, the last one too (its tail was
         * once cut off when parts ended early at line breaks). */
        int marked = d[i].marker == MK_LLM ? paras - 1 : d[i].marker >= 0 ? (int)rnd((uint64_t)paras) : -1;
        for (int p = 0; p < paras; p++) {
            paragraph(f, p == marked ? d[i].marker : -1);
            fputc('\n', f);
        }
        fclose(f);
        d[i].chunks = d[i].paged ? paras + 2 * pages : 1 + paras;
    }
    *ndocs = n;
    return d;
}

/* --- the INI --- */

static void put(char **o, char *end, const char *s) {
    while (*s && *o < end) *(*o)++ = *s++;
}

/* Copies tpl to out, replacing each @KEY@ by its value in vars. */
static void fill(const char *tpl, const char *const vars[][2], char *out, size_t cap) {
    char *o = out, *end = out + cap - 1;
    while (*tpl && o < end) {
        size_t i = 0, kl = 0;
        if (*tpl == '@')
            for (; vars[i][0]; i++) {
                kl = strlen(vars[i][0]);
                if (strncmp(tpl + 1, vars[i][0], kl) == 0 && tpl[1 + kl] == '@') break;
            }
        if (*tpl == '@' && vars[i][0]) {
            put(&o, end, vars[i][1]);
            tpl += kl + 2;
        } else {
            *o++ = *tpl++;
        }
    }
    *o = '\0';
}

/* --- one round, in a child process --- */

static char top[512];

static const sl_provider_stats *provider(const sl_report *rep, const char *name) {
    for (size_t i = 0; i < rep->nproviders; i++)
        if (strcmp(rep->providers[i]->name, name) == 0) return rep->providers[i];
    return NULL;
}

static const sl_stage_stats *stage(const sl_report *rep, const char *name) {
    for (size_t i = 0; i < rep->nstages; i++)
        if (strcmp(rep->stages[i].name, name) == 0) return &rep->stages[i];
    return NULL;
}

/* The document a stored or failed URI names, or -1. */
static int doc_index(const char *uri, const char *corpus, int n) {
    size_t cl = strlen(corpus);
    int i;
    char ext[8];
    if (strncmp(uri, corpus, cl) != 0 || uri[cl] != '/' || strchr(uri, '#')) return -1;
    if (sscanf(uri + cl + 1, "doc%4d.%7s", &i, ext) != 2 && sscanf(uri + cl + 1, "page%4d.%7s", &i, ext) != 2)
        return -1;
    return i >= 0 && i < n ? i : -1;
}

/* The parent of a child's URI ("corpus/page0003.txt#child-1.txt"), or -1. */
static int parent_index(const char *uri, const char *corpus, int n) {
    const char *hash = strchr(uri, '#');
    if (!hash) return -1;
    char parent[900];
    snprintf(parent, sizeof parent, "%.*s", (int)(hash - uri), uri);
    return doc_index(parent, corpus, n);
}

/* Children a document's parse makes: none when its parser refuses it. */
static int children_of(const config *c, const docinfo *d) { return d->marker == MK_PARSE ? 0 : c->children; }

/* Problems found in a round: the first few are told, all are counted. */
static int problems;
#define PROBLEM(...) (problems++ < 10 ? fprintf(stderr, __VA_ARGS__) : 0)

/* Each stored document once, with its chunks, vectors and summaries. */
static void check_store(const char *db, const char *corpus, const docinfo *d, int n, const config *c) {
    sqlite3 *s;
    CHECK_INT(sqlite3_open_v2(db, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q;
    const char *sql = "SELECT d.uri, d.chunk_count, count(c.id), count(c.vector), count(c.summary), "
                      "coalesce(min(c.dim), 0), coalesce(max(c.dim), 0) "
                      "FROM documents d LEFT JOIN chunks c ON c.doc_id = d.id GROUP BY d.id";
    CHECK_INT(sqlite3_prepare_v2(s, sql, -1, &q, NULL), SQLITE_OK);
    int *seen = calloc((size_t)n, sizeof *seen);
    long rows = 0, chunks = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        rows++;
        const char *uri = (const char *)sqlite3_column_text(q, 0);
        int i = doc_index(uri, corpus, n);
        int count = sqlite3_column_int(q, 2);
        chunks += count;
        int p = parent_index(uri, corpus, n);
        if (p >= 0) {
            if (!children_of(c, &d[p]) || count != CHILD_CHUNKS || sqlite3_column_int(q, 1) != CHILD_CHUNKS ||
                sqlite3_column_int(q, 3) != count)
                PROBLEM("store: child %s: %d chunks, its parent %s children\n", uri, count,
                        children_of(c, &d[p]) ? "has" : "has no");
            continue;
        }
        if (i < 0 || d[i].marker >= 0 || seen[i]++) {
            PROBLEM("store: %s should not be there (marked, unknown or twice)\n", uri);
            continue;
        }
        if (sqlite3_column_int(q, 1) != d[i].chunks || count != d[i].chunks ||
            sqlite3_column_int(q, 3) != count ||
            (c->summaries & (d[i].paged ? 2u : 1u) && sqlite3_column_int(q, 4) != count) ||
            sqlite3_column_int(q, 5) != 8 || sqlite3_column_int(q, 6) != 8) {
            PROBLEM("store: %s has %d chunks (recorded %d, expected %d), %d vectors, %d summaries\n", uri,
                    count, sqlite3_column_int(q, 1), d[i].chunks, sqlite3_column_int(q, 3),
                    sqlite3_column_int(q, 4));
        }
    }
    sqlite3_finalize(q);
    sqlite3_close(s);
    long want_rows = 0, want_chunks = 0;
    for (int i = 0; i < n; i++) {
        want_rows += d[i].marker < 0;
        want_chunks += d[i].marker < 0 ? d[i].chunks : 0;
        want_rows += children_of(c, &d[i]);
        want_chunks += children_of(c, &d[i]) * CHILD_CHUNKS;
    }
    CHECK_INT(rows, want_rows);
    CHECK_INT(chunks, want_chunks);
    for (int i = 0; i < n; i++)
        if (d[i].marker < 0 && seen[i] != 1) PROBLEM("store: document %d is missing\n", i);
    free(seen);
}

static void words_each(const char *list, const sl_report *rep, int fallback) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list ? list : "");
    for (char *save = NULL, *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (fallback) {
            const sl_provider_stats *p = provider(rep, w);
            if (!p || p->requests == 0) fprintf(stderr, "fallback %s took no calls\n", w);
            CHECK(p && p->requests > 0);
        } else {
            const sl_stage_stats *s = stage(rep, w);
            if (!s || s->retries == 0) fprintf(stderr, "stage %s never retried\n", w);
            CHECK(s && s->retries > 0);
        }
    }
}

/* Appends a paragraph to a third of the documents in the first half of the
 * walk (documents are walked in name order: the Markdown ones, then the
 * paged ones), so the run's last stores wait while the lookups of
 * unchanged documents hold the sink, and only a completion of one of those
 * can let them go. */
static void change_some(const char *corpus, docinfo *d, int n) {
    for (int i = 0; i < n; i++) {
        d[i].changed = i < n / 2 && rnd(3) == 0;
        if (!d[i].changed) continue;
        char path[900];
        doc_name(path, sizeof path, corpus, i, d[i].paged);
        FILE *f = fopen(path, "a");
        if (!f) {
            perror(path);
            exit(2);
        }
        paragraph(f, -1);
        fclose(f);
        d[i].chunks++;
    }
}

/* One run over the corpus, as one invocation of sluice would make it, and
 * what must hold after it. 0 when the run completed. */
static int run_pass(const config *c, const char *ini, const char *rdir, const char *corpus, const char *db,
                    const docinfo *d, int n, int pass) {
    int marked = 0, skipped = 0, kids = 0;
    for (int i = 0; i < n; i++) {
        marked += d[i].marker >= 0;
        skipped += pass && d[i].marker < 0 && !d[i].changed;
        kids += children_of(c, &d[i]); /* (no configuration with children runs twice) */
    }
    sl_ctx *ctx = sl_ctx_new();
    sl_ctx_set_global(ctx);
    sl_ctx_set_log_level(ctx, SL_LOG_ERROR);
    sl_config *cfg = NULL;
    sl_runtime *rt = NULL;
    sl_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = sl_config_load_string(ctx, c->name, rdir, ini, &cfg);
    if (!rc) rc = sl_runtime_open(ctx, cfg, &rt);
    if (!rc) rc = sl_runtime_init(rt, false);
    if (!rc) {
        const char *paths[1] = {corpus};
        sl_run_opts opts = {.paths = paths, .npaths = 1};
        rc = sl_pipeline_run(rt, &opts, &rep);
    }
    if (rc) fprintf(stderr, "%s: %s\n", c->name, sl_ctx_errmsg(ctx));
    CHECK_INT(rc, 0);
    CHECK_INT(rep.fatal, 0);
    CHECK_INT(rep.interrupted, 0);
    CHECK_INT(rep.total, n + kids);
    CHECK_INT(rep.children, kids);
    CHECK_INT(rep.skipped, skipped);
    CHECK_INT(rep.stored, n - marked - skipped + kids);
    CHECK_INT(rep.failed, marked);
    CHECK_INT(rep.nfailures, rep.failed);
    long stored_chunks = 0;
    for (int i = 0; i < n; i++) stored_chunks += d[i].marker < 0 && (!pass || d[i].changed) ? d[i].chunks : 0;
    stored_chunks += (long)kids * CHILD_CHUNKS;
    CHECK_INT(rep.chunks, stored_chunks);
    problems = 0;
    for (size_t i = 0; i < rep.nfailures; i++) {
        const sl_failure *f = &rep.failures[i];
        int k = doc_index(f->uri, corpus, n);
        if (k < 0 || d[k].marker < 0 || !strstr(f->reason, marker_word[d[k].marker]))
            PROBLEM("unexpected failure: %s in %s: %s\n", f->uri, f->stage, f->reason);
    }
    if (!rc) {
        words_each(c->retried, &rep, 0);
        words_each(c->fallbacks, &rep, 1);
        check_store(db, corpus, d, n, c);
    }
    if (problems > 10) fprintf(stderr, "... %d problems in all\n", problems);
    CHECK_INT(problems, 0);
    uint64_t retries = 0, opens = 0;
    for (size_t i = 0; i < rep.nstages; i++) retries += rep.stages[i].retries;
    for (size_t i = 0; i < rep.nproviders; i++) opens += rep.providers[i]->breaker_opens;
    fprintf(stderr,
            "  %-12s %4d documents: %4llu stored, %3llu skipped, %3llu failed; %5llu retries, %3llu breaker "
            "openings; %.2f s\n",
            pass ? "  again" : c->name, n, (unsigned long long)rep.stored, (unsigned long long)rep.skipped,
            (unsigned long long)rep.failed, (unsigned long long)retries, (unsigned long long)opens,
            rep.wall_s);
    sl_report_free(&rep);
    sl_runtime_free(rt);
    sl_config_free(cfg);
    sl_ctx_free(ctx);
    return rc;
}

static int run_round(const config *c, uint64_t seed, const char *rdir) {
    char corpus[800], db[800], ini[16384];
    snprintf(corpus, sizeof corpus, "%s/corpus", rdir);
    snprintf(db, sizeof db, "%s/store.db", rdir);
    rng_state = seed;
    int n;
    docinfo *d = write_corpus(c, corpus, &n);
    long chunks = 0;
    for (int i = 0; i < n; i++) chunks += d[i].chunks;
    /* rpm: every call goes through the minute window; it is left above the
     * calls, since a window that binds waits a whole minute (the wait is
     * checked end to end by tests/providers-e2e/rpm_window.sh) */
    char s_seed[32], mc[16], mc2[16], batch[16], delay[16], maxdocs[16], rpm[32];
    snprintf(s_seed, sizeof s_seed, "%llu", (unsigned long long)(seed >> 1));
    snprintf(mc, sizeof mc, "%d", 1 + (int)rnd(2));
    snprintf(mc2, sizeof mc2, "%d", 1 + (int)rnd(2));
    snprintf(batch, sizeof batch, "%d", 2 + (int)rnd(7));
    snprintf(delay, sizeof delay, "%d", (int)rnd(4));
    snprintf(maxdocs, sizeof maxdocs, "%d", 1 + (int)rnd(3));
    snprintf(rpm, sizeof rpm, "%ld", 12 * (chunks - chunks / 12));
    const char *const vars[][2] = {{"SEED", s_seed}, {"STORE", db},        {"MC", mc},
                                   {"MC2", mc2},     {"BATCH", batch},     {"DELAY", delay},
                                   {"RPM", rpm},     {"MAXDOCS", maxdocs}, {NULL, NULL}};
    fill(c->ini, vars, ini, sizeof ini);
    int rc = run_pass(c, ini, rdir, corpus, db, d, n, 0);
    if (!rc && c->rerun) {
        change_some(corpus, d, n);
        rc = run_pass(c, ini, rdir, corpus, db, d, n, 1);
    }
    free(d);
    return check_done();
}

/* --- the watchdog --- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs one round in a child; 0 when it finished and passed. */
static int round_in_child(const config *c, uint64_t seed, uint64_t master, int deadline) {
    char rdir[600];
    snprintf(rdir, sizeof rdir, "%s/%s", top, c->name);
    mkdir(rdir, 0755);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        check_count_ = check_failures_ = 0; /* the child counts its own checks */
        setpgid(0, 0);                      /* so the watchdog can end the child's worker processes too */
        exit(run_round(c, seed, rdir));
    }
    setpgid(pid, pid);
    double t0 = now_s();
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) {
            perror("waitpid");
            return 1;
        }
        if (now_s() - t0 > deadline) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr,
                    "STALL: configuration '%s' (%s) did not finish within %d s with seed %llu: a unit or "
                    "document waits for a wakeup that never comes.\n"
                    "Repeat with SLUICE_LIVENESS_SEED=%llu SLUICE_LIVENESS_ONLY=%s\n",
                    c->name, c->about, deadline, (unsigned long long)master, (unsigned long long)master,
                    c->name);
            return 1;
        }
        usleep(10000);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    if (WIFSIGNALED(status))
        fprintf(stderr, "configuration '%s' (seed %llu): the child died of signal %d\n", c->name,
                (unsigned long long)master, WTERMSIG(status));
    else
        fprintf(stderr,
                "configuration '%s' (%s) failed with seed %llu; repeat with SLUICE_LIVENESS_SEED=%llu "
                "SLUICE_LIVENESS_ONLY=%s\n",
                c->name, c->about, (unsigned long long)master, (unsigned long long)master, c->name);
    return 1;
}

int main(int argc, char **argv) {
    /* isolated stages start worker processes from /proc/self/exe: this test */
    if (argc == 3 && strcmp(argv[1], "__worker") == 0) return sl_worker_main(atoi(argv[2]));

    const char *env = getenv("SLUICE_LIVENESS_SEED"), *only = getenv("SLUICE_LIVENESS_ONLY");
    const char *dl = getenv("SLUICE_LIVENESS_DEADLINE");
    uint64_t master;
    if (env && *env) {
        master = strtoull(env, NULL, 10);
    } else {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        master =
            mix((uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec + (uint64_t)getpid()) % 1000000000u;
    }
    int deadline = dl && atoi(dl) > 0 ? atoi(dl) : DEADLINE_S;
    fprintf(stderr, "test_liveness: seed %llu (repeat with SLUICE_LIVENESS_SEED=%llu)\n",
            (unsigned long long)master, (unsigned long long)master);

    const char *tmp = getenv("SLUICE_TEST_TMP");
    snprintf(top, sizeof top, "%s/liveness-%d", tmp ? tmp : "/tmp", (int)getpid());
    mkdir(top, 0755);
    char pp[2048];
    snprintf(pp, sizeof pp, "%s:%s", getenv("SLUICE_PLUGIN_DIR"), TEST_PLUGIN_DIR);
    setenv("SLUICE_PLUGIN_PATH", pp, 1);

    int failed = 0, ran = 0;
    double t0 = now_s();
    for (size_t i = 0; i < NCONFIGS; i++) {
        if (only && *only && strcmp(only, configs[i].name) != 0) continue;
        ran++;
        int bad = round_in_child(&configs[i], mix(master * NCONFIGS + i), master, deadline);
        CHECK_INT(bad, 0);
        failed |= bad;
    }
    CHECK(ran > 0);
    fprintf(stderr, "%d configurations in %.1f s\n", ran, now_s() - t0);
    if (!failed) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
        CHECK_INT(system(cmd), 0);
    } else {
        fprintf(stderr, "kept %s for inspection\n", top);
    }
    return check_done();
}
