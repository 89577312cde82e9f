/* test_config.c - INI files: sections, keys and lines in file order, inline
 * comments, interpolation, --set, and errors that name file and line. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

static sl_ctx *ctx;
static char tmpdir[PATH_MAX];

/* Writes text to a fresh file in the test's scratch folder. */
static const char *write_ini(const char *tag, const char *text) {
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/config-%d-%s.ini", tmpdir, (int)getpid(), tag);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

/* Loads text from a file; on failure returns NULL with the message in ctx. */
static sl_config *load(const char *tag, const char *text, char *path_out) {
    const char *path = write_ini(tag, text);
    if (path_out) strcpy(path_out, path);
    sl_config *cfg = NULL;
    sl_ctx_clear_error(ctx);
    int rc = sl_config_load(ctx, path, &cfg);
    CHECK((rc == 0) == (cfg != NULL));
    unlink(path);
    return cfg;
}

static const char *value(const sl_config *cfg, const char *sec, const char *key) {
    const sl_conf_kv *kv = sl_config_get(cfg, sec, key);
    return kv ? kv->value : NULL;
}

static void test_sections_keys_and_lines(void) {
    char path[PATH_MAX + 64];
    sl_config *cfg = load("basic",
                          "; a comment\n"
                          "# another\n"
                          "\n"
                          "[sluice]\n"
                          "threads = 0              ; pool threads\n"
                          "include = *.md *.txt\n"
                          "    indented = yes\n"
                          "[route.text]\n"
                          "stages = markdown chunker embedder\n"
                          "url = http://example.com/a;b\n"
                          "note = a;b ; and a comment\n"
                          "[empty]\n"
                          "[ spaced ]\r\n"
                          "colon : works\r\n",
                          path);
    CHECK(cfg != NULL);
    if (!cfg) return;
    CHECK_STR(cfg->path, path);
    CHECK_STR(cfg->dir, tmpdir);
    CHECK_INT(cfg->nsections, 4);
    if (cfg->nsections == 4) {
        CHECK_STR(cfg->sections[0].name, "sluice");
        CHECK_INT(cfg->sections[0].line, 4);
        CHECK_STR(cfg->sections[1].name, "route.text");
        CHECK_INT(cfg->sections[1].line, 8);
        CHECK_STR(cfg->sections[2].name, "empty");
        CHECK_INT(cfg->sections[2].n, 0);
        CHECK_STR(cfg->sections[3].name, "spaced");
        CHECK_INT(cfg->sections[3].line, 13);

        const sl_conf_section *s = &cfg->sections[0];
        CHECK_INT(s->n, 3);
        CHECK_STR(s->kv[0].key, "threads");
        CHECK_STR(s->kv[0].value, "0");
        CHECK_INT(s->kv[0].line, 5);
        CHECK_STR(s->kv[1].value, "*.md *.txt");
        CHECK_STR(s->kv[2].key, "indented"); /* indentation is not a continuation */
        CHECK_STR(s->kv[2].value, "yes");
        CHECK_INT(s->kv[2].line, 7);
        CHECK_INT(s->kv[0].used, 0);
    }
    CHECK_STR(value(cfg, "route.text", "url"), "http://example.com/a;b");
    CHECK_STR(value(cfg, "route.text", "note"), "a;b");
    CHECK_STR(value(cfg, "spaced", "colon"), "works");
    CHECK(sl_config_get(cfg, "sluice", "threads")->used == 1);
    CHECK(sl_config_get(cfg, "sluice", "nothing") == NULL);
    CHECK(sl_config_get(cfg, "nowhere", "threads") == NULL);
    CHECK(sl_config_section(cfg, "empty") == &cfg->sections[2]);
    CHECK(sl_config_section(cfg, "route") == NULL);

    char where[2 * PATH_MAX], want[2 * PATH_MAX];
    snprintf(want, sizeof want, "%s:12", path);
    CHECK_STR(sl_config_where(cfg, 12, where, sizeof where), want);
    snprintf(want, sizeof want, "%s (--set)", path);
    CHECK_STR(sl_config_where(cfg, 0, where, sizeof where), want);
    sl_config_free(cfg);
}

static void test_interpolation(void) {
    setenv("SL_TEST_VAR", "abc", 1);
    setenv("SL_TEST_EMPTY", "", 1);
    unsetenv("SL_TEST_UNSET");
    setenv("CWD", "/not/the/cwd", 1); /* built-ins win over the environment */
    setenv("CONFIG_DIR", "/not/the/dir", 1);
    sl_config *cfg = load("interp",
                          "[s]\n"
                          "a = ${SL_TEST_VAR}/x\n"
                          "b = ${SL_TEST_UNSET:-def ault}\n"
                          "c = $$HOME and $${SL_TEST_VAR}\n"
                          "d = ${CWD}\n"
                          "e = ${CONFIG_DIR}/db\n"
                          "f = ${SL_TEST_EMPTY:-fallback}\n"
                          "g = ${SL_TEST_UNSET:-${SL_TEST_VAR}-nested}\n"
                          "h = costs $5, $ alone, end$\n"
                          "i = [${SL_TEST_EMPTY}]\n"
                          "j = ${SL_TEST_UNSET:-}\n",
                          NULL);
    CHECK(cfg != NULL);
    if (cfg) {
        char cwd[PATH_MAX], want[PATH_MAX + 16];
        CHECK(getcwd(cwd, sizeof cwd) != NULL);
        CHECK_STR(value(cfg, "s", "a"), "abc/x");
        CHECK_STR(value(cfg, "s", "b"), "def ault");
        CHECK_STR(value(cfg, "s", "c"), "$HOME and ${SL_TEST_VAR}");
        CHECK_STR(value(cfg, "s", "d"), cwd);
        snprintf(want, sizeof want, "%s/db", tmpdir);
        CHECK_STR(value(cfg, "s", "e"), want);
        CHECK_STR(value(cfg, "s", "f"), "fallback");
        CHECK_STR(value(cfg, "s", "g"), "abc-nested");
        CHECK_STR(value(cfg, "s", "h"), "costs $5, $ alone, end$");
        CHECK_STR(value(cfg, "s", "i"), "[]");
        CHECK_STR(value(cfg, "s", "j"), "");
        sl_config_free(cfg);
    }
    unsetenv("CWD");
    unsetenv("CONFIG_DIR");
}

static void test_interpolation_errors(void) {
    char path[PATH_MAX + 64], want[PATH_MAX + 256];
    unsetenv("SL_TEST_UNSET");
    sl_config *cfg = load("unset", "[embedder]\nplugin = embed-hash\napi_key = ${SL_TEST_UNSET}\n", path);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want,
             "%s:3: [embedder] api_key: environment variable SL_TEST_UNSET is not set "
             "(write ${SL_TEST_UNSET:-default} to give one)",
             path);
    CHECK_STR(sl_ctx_errmsg(ctx), want);
    CHECK_INT(sl_ctx_errcode(ctx), SL_EFATAL);

    cfg = load("unterminated", "[s]\n\nk = ${SL_TEST_VAR\n", path);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s:3: [s] k: unterminated ${", path);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), want);

    cfg = load("badref", "[s]\nk = ${1X}\n", path);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s:2: [s] k: bad variable reference at character 1 of the value", path);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), want);

    cfg = load("badref2", "[s]\nk = ${A-b}\n", path);
    CHECK(cfg == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "bad variable reference at character 1");

    /* a secret around a bad reference is never echoed (issue 17: a
     * password holding "${my pass}" was printed) */
    cfg = load("badref3", "[s]\nk = hunter2${my pass}\n", path);
    CHECK(cfg == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "bad variable reference at character 8");
    CHECK(strstr(sl_ctx_errmsg(ctx), "hunter2") == NULL);
    CHECK(strstr(sl_ctx_errmsg(ctx), "my pass") == NULL);
}

static void test_set(void) {
    char path[PATH_MAX + 64];
    sl_config *cfg =
        load("set", "[embedder]\nplugin = embed-hash\ndimension = 384\n[route.text]\nstages = a\n", path);
    CHECK(cfg != NULL);
    if (!cfg) return;
    CHECK_INT(sl_config_set(ctx, cfg, "embedder.dimension=256"), 0);
    const sl_conf_kv *kv = sl_config_get(cfg, "embedder", "dimension");
    CHECK_STR(kv->value, "256");
    CHECK_INT(kv->line, 0);
    CHECK_INT(sl_config_section(cfg, "embedder")->n, 2); /* replaced, not added */

    CHECK_INT(sl_config_set(ctx, cfg, "embedder.batch_size = 32"), 0);
    CHECK_STR(value(cfg, "embedder", "batch_size"), "32");
    CHECK_INT(sl_config_section(cfg, "embedder")->n, 3);

    CHECK_INT(sl_config_set(ctx, cfg, "route.text.stages=a b c"), 0);
    CHECK_STR(value(cfg, "route.text", "stages"), "a b c");
    CHECK(sl_config_section(cfg, "route") == NULL);

    CHECK_INT(sl_config_set(ctx, cfg, "store.path=${CONFIG_DIR}/s.db"), 0);
    const sl_conf_section *store = sl_config_section(cfg, "store");
    CHECK(store != NULL);
    if (store) CHECK_INT(store->line, 0);
    char want[PATH_MAX + 256];
    snprintf(want, sizeof want, "%s/s.db", tmpdir);
    CHECK_STR(value(cfg, "store", "path"), want);
    CHECK_INT(cfg->nsections, 3);

    CHECK_INT(sl_config_set(ctx, cfg, "embedder.url=a=b"), 0); /* the first '=' splits */
    CHECK_STR(value(cfg, "embedder", "url"), "a=b");

    const char *bad[] = {"noequals", "nodot=1", ".key=v", "section.=v", "=v", " . = v"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_INT(sl_config_set(ctx, cfg, bad[i]), SL_EFATAL);
        CHECK_CONTAINS(sl_ctx_errmsg(ctx), "expected SECTION.KEY=VALUE");
        /* the part before any value is named; a value (maybe a secret) never is */
        char name[32];
        snprintf(name, sizeof name, "'%.*s...'", (int)strcspn(bad[i], "=: \t"), bad[i]);
        CHECK_CONTAINS(sl_ctx_errmsg(ctx), name);
    }
    CHECK_INT(sl_config_set(ctx, cfg, "summarizer.api_key:sk-secret-123"), SL_EFATAL);
    CHECK(strstr(sl_ctx_errmsg(ctx), "sk-secret-123") == NULL);
    unsetenv("SL_TEST_UNSET");
    CHECK_INT(sl_config_set(ctx, cfg, "embedder.api_key=${SL_TEST_UNSET}"), SL_EFATAL);
    snprintf(want, sizeof want,
             "%s (--set): [embedder] api_key: environment variable SL_TEST_UNSET is not set", path);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), want);
    CHECK(sl_config_get(cfg, "embedder", "api_key") == NULL);
    sl_config_free(cfg);
}

static void test_syntax_errors(void) {
    char path[PATH_MAX + 64], want[PATH_MAX + 256];
    sl_config *cfg = load("syntax", "[a]\nk = 1\nthis line has no equals\nz = 2\n", path);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s:3: syntax error", path);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), want);
    /* the first word locates the line; the rest may be a value and is not shown */
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), ": this...");
    CHECK(strstr(sl_ctx_errmsg(ctx), "has no equals") == NULL);

    cfg = load("header", "[a]\nk = 1\n[b\n", path);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s:3: syntax error (a section header needs its closing ']')", path);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), want);

    /* the first error in the file is the one reported, whichever kind */
    unsetenv("SL_TEST_UNSET");
    cfg = load("order1", "[a]\nbroken\nk = ${SL_TEST_UNSET}\n", path);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s:2: syntax error", path);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), want);
    cfg = load("order2", "[a]\nk = ${SL_TEST_UNSET}\nbroken\n", path);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s:2: [a] k: environment variable", path);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), want);

    cfg = load("dupkey", "[a]\nk = 1\nother = 2\nk = 3\n", path);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s:4: [a] k: set twice in one section (first at line 2)", path);
    CHECK_STR(sl_ctx_errmsg(ctx), want);

    cfg = load("dupsec", "[a]\nk = 1\n[b]\n[a]\nj = 2\n", path);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s:4: [a] appears twice (first at line 1)", path);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), want);

    cfg = load("outside", "k = 1\n[a]\n", path);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s:1: k: this key is outside any section", path);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), want);

    cfg = load("emptysec", "[a]\n[  ]\n", path);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s:2: empty section name", path);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), want);

    cfg = load("emptykey", "[a]\n = 1\n", path);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s:2: [a] a key is missing", path);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), want);

    char longline[600];
    memset(longline, 'x', sizeof longline);
    memcpy(longline, "[a]\nk = ", 8);
    strcpy(longline + sizeof longline - 12, "\nz = ok\n");
    cfg = load("long", longline, path);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s:2: line is longer than", path);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), want);

    /* a long line that is mostly comment is fine */
    char commented[400];
    snprintf(commented, sizeof commented, "[a]\nk = v ; %0300d\n", 0);
    cfg = load("longcomment", commented, path);
    CHECK(cfg != NULL);
    if (cfg) CHECK_STR(value(cfg, "a", "k"), "v");
    sl_config_free(cfg);
}

static void test_missing_file(void) {
    char path[PATH_MAX + 64], want[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/config-%d-does-not-exist.ini", tmpdir, (int)getpid());
    sl_config *cfg = (sl_config *)1;
    CHECK_INT(sl_config_load(ctx, path, &cfg), SL_EFATAL);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    CHECK_STR(sl_ctx_errmsg(ctx), want);

    CHECK_INT(sl_config_load(ctx, tmpdir, &cfg), SL_EFATAL); /* a folder */
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), tmpdir);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "Is a directory");
}

static void test_load_string(void) {
    sl_config *cfg = NULL;
    CHECK_INT(
        sl_config_load_string(ctx, "<builtin>", "/some/dir", "\xEF\xBB\xBF[a]\np = ${CONFIG_DIR}\n", &cfg),
        0);
    if (!cfg) return;
    CHECK_STR(cfg->path, "<builtin>");
    CHECK_STR(cfg->dir, "/some/dir");
    CHECK_STR(value(cfg, "a", "p"), "/some/dir");
    sl_config_free(cfg);

    char cwd[PATH_MAX];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK_INT(sl_config_load_string(ctx, "<builtin>", NULL, "[a]\n", &cfg), 0);
    if (cfg) CHECK_STR(cfg->dir, cwd);
    sl_config_free(cfg);

    CHECK_INT(sl_config_load_string(ctx, "<builtin>", NULL, "[a]\nbad\n", &cfg), SL_EFATAL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "<builtin>:2: syntax error");
}

/* The shipped default config reads as intended: inline comments gone,
 * ${CWD} expanded. */
static void test_default_ini(void) {
    sl_config *cfg = NULL;
    CHECK_INT(sl_config_load(ctx, SLUICE_SOURCE_DIR "/conf/default.ini", &cfg), 0);
    if (!cfg) return;
    CHECK_STR(value(cfg, "sluice", "threads"), "0");
    CHECK_STR(value(cfg, "sluice", "memory_budget"), "256M");
    CHECK_STR(value(cfg, "route.text", "stages"), "markdown chunker embedder");
    CHECK_STR(value(cfg, "embedder", "plugin"), "embed-hash");
    char cwd[PATH_MAX], want[PATH_MAX + 32];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    snprintf(want, sizeof want, "%s/.sluice/store.db", cwd);
    CHECK_STR(value(cfg, "store", "path"), want);
    CHECK_STR(cfg->sections[0].name, "sluice");
    sl_config_free(cfg);
}

int main(void) {
    const char *t = getenv("SLUICE_TEST_TMP");
    if (!t || !realpath(t, tmpdir)) {
        fprintf(stderr, "SLUICE_TEST_TMP is not set to an existing folder\n");
        return 1;
    }
    ctx = sl_ctx_new();
    test_sections_keys_and_lines();
    test_interpolation();
    test_interpolation_errors();
    test_set();
    test_syntax_errors();
    test_missing_file();
    test_load_string();
    test_default_ini();
    sl_ctx_free(ctx);
    return check_done();
}
