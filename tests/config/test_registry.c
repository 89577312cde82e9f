/* test_registry.c - opening plugins: every refusal names the file and the
 * reason, good plugins load (also from a newer ABI minor), a file opens
 * once, and folders are searched in the documented order. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ops.h"
#include "registry.h"

static sl_ctx *ctx;
static char plugins[PATH_MAX];     /* $SLUICE_TEST_PLUGINS */
static char broken[PATH_MAX + 16]; /* its broken/ folder */
static char tmpdir[PATH_MAX];

static sl_registry *new_registry(const char *plugin_path) {
    if (plugin_path)
        setenv("SLUICE_PLUGIN_PATH", plugin_path, 1);
    else
        unsetenv("SLUICE_PLUGIN_PATH");
    sl_registry *reg = NULL;
    CHECK_INT(sl_registry_new(ctx, &reg), 0);
    return reg;
}

/* Opening broken/FILE.so fails with a message that starts with the path
 * and contains the reason. */
static void expect_refused(sl_registry *reg, const char *file, const char *reason) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s.so", broken, file);
    const sl_loaded *l = (const sl_loaded *)path;
    sl_ctx_clear_error(ctx);
    CHECK_INT(sl_registry_open(ctx, reg, path, &l), SL_EFATAL);
    CHECK(l == NULL);
    const char *msg = sl_ctx_errmsg(ctx);
    CHECK(strncmp(msg, path, strlen(path)) == 0);
    CHECK_CONTAINS(msg, path);
    CHECK_CONTAINS(msg, reason);
}

static void test_refusals(void) {
    sl_registry *reg = new_registry(NULL);
    expect_refused(reg, "no-entry", ": no entry symbol sluice_plugin_v1 (is it a sluice plugin?)");
    expect_refused(reg, "abi-v2-symbol",
                   ": built for plugin ABI 2 (exports sluice_plugin_v2); this sluice speaks ABI 1");
    expect_refused(reg, "null-desc", "sluice_plugin_v1() returned no descriptor");
    expect_refused(reg, "abi-major-2", ": built for plugin ABI 2 (its descriptor says abi_major 2)");
    char want[128];
    snprintf(want, sizeof want, ": descriptor is 16 bytes, smaller than the %zu bytes of ABI 1.0",
             (size_t)SL_PLUGIN_MIN_SIZE_1_0);
    expect_refused(reg, "short", want);
    expect_refused(reg, "parser-no-parse", ": role parser needs the 'parse' callback");
    expect_refused(reg, "sink-incomplete", ": role sink needs the 'lookup' callback");
    expect_refused(reg, "opt-type", ": option 'size': type 99 is not an option type");
    expect_refused(reg, "opt-default", ": option 'dimension': default 'abc' is not an int");
    expect_refused(reg, "opt-outside",
                   ": option 'far': offset 8 + 8 bytes is outside the 8-byte config struct");
    expect_refused(reg, "opts-no-config", ": declares 1 option but config_size is 0");
    expect_refused(reg, "stage-clash",
                   ": option 'batch_size': the name is taken by the core's stage setting");
    expect_refused(reg, "thread-fini", ": thread_fini without thread_init");
    expect_refused(reg, "bad-name", ": plugin name 'Bad_Name' must match [a-z0-9][a-z0-9-]*");
    expect_refused(reg, "no-version", ": plugin no-version declares no version");
    expect_refused(reg, "bad-role", ": role 42 is not a plugin role");
    expect_refused(reg, "llm", ": role llm needs the 'complete' callback");
    expect_refused(reg, "bad-bottleneck", ": bottleneck 0 is not one of io, cpu, isolated, gpu");

    /* nothing refused stays registered */
    const sl_loaded *const *list;
    CHECK_INT(sl_registry_loaded(reg, &list), 0);

    /* a file that is no shared object, and one that is not there */
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/loader-%d-garbage.so", tmpdir, (int)getpid());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        for (int i = 0; i < 20; i++) fputs("this is not an ELF file\n", f); /* longer than an ELF header */
        fclose(f);
    }
    const sl_loaded *l;
    CHECK_INT(sl_registry_open(ctx, reg, path, &l), SL_EFATAL);
    CHECK(strncmp(sl_ctx_errmsg(ctx), path, strlen(path)) == 0);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), ": cannot load: ");
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "ELF");
    unlink(path);
    CHECK_INT(sl_registry_open(ctx, reg, path, &l), SL_EFATAL);
    CHECK(strncmp(sl_ctx_errmsg(ctx), path, strlen(path)) == 0);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), ": cannot load: No such file or directory");
    sl_registry_free(reg);
}

static void test_good_plugins_load(void) {
    sl_registry *reg = new_registry(NULL);
    char path[PATH_MAX + 64], real[PATH_MAX], other[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/cfgtest-good.so", broken);
    const sl_loaded *a = NULL, *b = NULL;
    CHECK_INT(sl_registry_open(ctx, reg, path, &a), 0);
    CHECK(a != NULL);
    if (!a) return;
    CHECK(realpath(path, real) != NULL);
    CHECK_STR(a->path, real);
    CHECK(a->handle != NULL);
    CHECK_STR(a->desc.name, "cfgtest-good");
    CHECK_STR(a->desc.version, "1.0");
    CHECK_INT(a->desc.role, SL_ROLE_CHUNKER);
    CHECK_INT(a->declared_size, sizeof(sl_plugin));
    CHECK(a->desc.init != NULL && a->desc.fini != NULL && a->desc.chunk != NULL);
    CHECK(a->desc.parse == NULL);

    /* the same file, however spelled, is one plugin */
    CHECK_INT(sl_registry_open(ctx, reg, path, &b), 0);
    CHECK(a == b);
    snprintf(other, sizeof other, "%s/../broken/./cfgtest-good.so", broken);
    CHECK_INT(sl_registry_open(ctx, reg, other, &b), 0);
    CHECK(a == b);
    const sl_loaded *const *list;
    CHECK_INT(sl_registry_loaded(reg, &list), 1);

    /* a descriptor from a later minor: larger, and its extra fields ignored */
    snprintf(path, sizeof path, "%s/newer-minor.so", broken);
    CHECK_INT(sl_registry_open(ctx, reg, path, &b), 0);
    if (b) {
        CHECK_INT(b->desc.abi_minor, SL_ABI_MINOR + 3);
        CHECK(b->declared_size > sizeof(sl_plugin));
        CHECK_STR(b->desc.version, "9.9");
    }
    snprintf(path, sizeof path, "%s/parser-ok.so", broken);
    CHECK_INT(sl_registry_open(ctx, reg, path, &b), 0);
    if (b) CHECK_STR(sl_role_name(b->desc.role), "parser");
    CHECK_INT(sl_registry_loaded(reg, &list), 3);
    sl_registry_free(reg);
}

static void test_search_folders(void) {
    char exe[PATH_MAX], want[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    CHECK(n > 0);
    exe[n > 0 ? n : 0] = '\0';
    *strrchr(exe, '/') = '\0';

    sl_registry *reg = new_registry("/env/one::/env/two/");
    CHECK_INT(sl_registry_add_dir(reg, "/added/first"), 0);
    CHECK_INT(sl_registry_add_dir(reg, "/added/second/"), 0);
    const char *const *dirs;
    size_t nd = sl_registry_dirs(reg, &dirs);
    /* exe-relative ones first (a build may add its install folder), then
     * the added ones, then SLUICE_PLUGIN_PATH's, empty entries skipped */
    CHECK(nd >= 6);
    if (nd >= 6) {
        snprintf(want, sizeof want, "%s/plugins", exe);
        CHECK_STR(dirs[0], want);
        *strrchr(exe, '/') = '\0';
        snprintf(want, sizeof want, "%s/lib/sluice/plugins", exe);
        CHECK_STR(dirs[1], want);
        CHECK_STR(dirs[nd - 4], "/added/first");
        CHECK_STR(dirs[nd - 3], "/added/second");
        CHECK_STR(dirs[nd - 2], "/env/one");
        CHECK_STR(dirs[nd - 1], "/env/two");
    }
    const sl_loaded *l = (const sl_loaded *)dirs;
    CHECK_INT(sl_registry_find(ctx, reg, "no-such-plugin", &l), SL_EFATAL);
    CHECK(l == NULL);
    const char *msg = sl_ctx_errmsg(ctx);
    CHECK_CONTAINS(msg, "plugin 'no-such-plugin' not found (looked in: ");
    for (size_t i = 0; i < nd; i++) CHECK_CONTAINS(msg, dirs[i]);
    sl_registry_free(reg);
}

static const char *version_found(sl_registry *reg) {
    const sl_loaded *l = NULL;
    int rc = sl_registry_find(ctx, reg, "cfgtest-good", &l);
    CHECK_INT(rc, 0);
    return l ? l->desc.version : "(not found)";
}

static void test_search_order(void) {
    char a[PATH_MAX + 32], b[PATH_MAX + 32], env[3 * PATH_MAX];
    snprintf(a, sizeof a, "%s/order-a", plugins);
    snprintf(b, sizeof b, "%s/order-b", plugins);

    sl_registry *reg = new_registry(NULL);
    sl_registry_add_dir(reg, a);
    sl_registry_add_dir(reg, b);
    CHECK_STR(version_found(reg), "1.0-a");
    sl_registry_free(reg);

    reg = new_registry(NULL);
    sl_registry_add_dir(reg, b);
    sl_registry_add_dir(reg, a);
    CHECK_STR(version_found(reg), "2.0-b");
    sl_registry_free(reg);

    /* SLUICE_PLUGIN_PATH alone, missing folders skipped */
    snprintf(env, sizeof env, "/does/not/exist:%s:%s", b, a);
    reg = new_registry(env);
    CHECK_STR(version_found(reg), "2.0-b");
    sl_registry_free(reg);

    /* added folders come before SLUICE_PLUGIN_PATH's */
    snprintf(env, sizeof env, "%s", b);
    reg = new_registry(env);
    sl_registry_add_dir(reg, a);
    CHECK_STR(version_found(reg), "1.0-a");

    /* a name with a '/' is a path, searched nowhere */
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/cfgtest-good.so", b);
    const sl_loaded *l = NULL;
    CHECK_INT(sl_registry_find(ctx, reg, path, &l), 0);
    if (l) CHECK_STR(l->desc.version, "2.0-b");
    sl_registry_free(reg);
}

/* A file found as NAME.so must hold plugin NAME. */
static void test_file_name_must_match(void) {
    char dir[PATH_MAX + 64], src[PATH_MAX + 64], dst[PATH_MAX + 96];
    snprintf(dir, sizeof dir, "%s/loader-%d-renamed", tmpdir, (int)getpid());
    snprintf(src, sizeof src, "%s/cfgtest-good.so", broken);
    snprintf(dst, sizeof dst, "%s/renamed.so", dir);
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s'", dir, src, dst);
    CHECK_INT(system(cmd), 0);

    sl_registry *reg = new_registry(NULL);
    sl_registry_add_dir(reg, dir);
    const sl_loaded *l;
    CHECK_INT(sl_registry_find(ctx, reg, "renamed", &l), SL_EFATAL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), dst);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "declares plugin 'cfgtest-good', but its file name says 'renamed'");
    /* by path it is fine: the file was named explicitly */
    CHECK_INT(sl_registry_open(ctx, reg, dst, &l), 0);
    sl_registry_free(reg);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_INT(system(cmd), 0);
}

typedef struct bad_list {
    int n;
    char paths[32][PATH_MAX + 64];
} bad_list;

static void on_bad(void *arg, const char *path, const char *msg) {
    bad_list *bl = arg;
    CHECK(strncmp(msg, path, strlen(path)) == 0);
    if (strncmp(path, broken, strlen(broken)) == 0 && bl->n < 32)
        snprintf(bl->paths[bl->n++], PATH_MAX + 64, "%s", path);
}

static int loaded_under(sl_registry *reg, const char *dir, const char *name) {
    const sl_loaded *const *list;
    size_t n = sl_registry_loaded(reg, &list);
    char real[PATH_MAX];
    if (!realpath(dir, real)) return 0;
    int count = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(list[i]->path, real, strlen(real)) == 0 &&
            (!name || strcmp(list[i]->desc.name, name) == 0))
            count++;
    return count;
}

static void test_load_all(void) {
    sl_registry *reg = new_registry(NULL);
    sl_registry_add_dir(reg, broken);
    bad_list *bl = calloc(1, sizeof *bl);
    int n = sl_registry_load_all(ctx, reg, on_bad, bl);
    CHECK(n >= 4);
    /* the four good ones load, every broken one is reported, once */
    CHECK_INT(loaded_under(reg, broken, NULL), 4);
    CHECK_INT(loaded_under(reg, broken, "cfgtest-good"), 1);
    CHECK_INT(loaded_under(reg, broken, "cfgtest-embed"), 1);
    CHECK_INT(loaded_under(reg, broken, "newer-minor"), 1);
    CHECK_INT(loaded_under(reg, broken, "parser-ok"), 1);
    CHECK_INT(bl->n, 18);
    int saw_no_entry = 0;
    for (int i = 0; i < bl->n; i++) saw_no_entry += strstr(bl->paths[i], "/no-entry.so") != NULL;
    CHECK_INT(saw_no_entry, 1);
    sl_registry_free(reg);

    /* the same file name in two folders: the first folder's wins */
    char a[PATH_MAX + 32], b[PATH_MAX + 32];
    snprintf(a, sizeof a, "%s/order-a", plugins);
    snprintf(b, sizeof b, "%s/order-b", plugins);
    reg = new_registry(NULL);
    sl_registry_add_dir(reg, a);
    sl_registry_add_dir(reg, b);
    memset(bl, 0, sizeof *bl);
    CHECK(sl_registry_load_all(ctx, reg, on_bad, bl) >= 1);
    CHECK_INT(loaded_under(reg, a, "cfgtest-good"), 1);
    CHECK_INT(loaded_under(reg, b, "cfgtest-good"), 0);
    sl_registry_free(reg);
    free(bl);
}

static void test_names(void) {
    CHECK_STR(sl_role_name(SL_ROLE_PARSER), "parser");
    CHECK_STR(sl_role_name(SL_ROLE_PAGE), "page");
    CHECK_STR(sl_role_name(SL_ROLE_CHUNKER), "chunker");
    CHECK_STR(sl_role_name(SL_ROLE_EMBEDDER), "embedder");
    CHECK_STR(sl_role_name(SL_ROLE_SINK), "sink");
    CHECK_STR(sl_role_name((sl_role)77), "unknown");
    CHECK_STR(sl_bottleneck_name(SL_IO), "io");
    CHECK_STR(sl_bottleneck_name(SL_CPU), "cpu");
    CHECK_STR(sl_bottleneck_name(SL_ISOLATED), "isolated");
    CHECK_STR(sl_bottleneck_name(SL_GPU), "gpu");
}

int main(void) {
    const char *p = getenv("SLUICE_TEST_PLUGINS"), *t = getenv("SLUICE_TEST_TMP");
    if (!p || !realpath(p, plugins) || !t || !realpath(t, tmpdir)) {
        fprintf(stderr, "SLUICE_TEST_PLUGINS and SLUICE_TEST_TMP must name existing folders\n");
        return 1;
    }
    snprintf(broken, sizeof broken, "%s/broken", plugins);
    ctx = sl_ctx_new();
    test_refusals();
    test_good_plugins_load();
    test_search_folders();
    test_search_order();
    test_file_name_must_match();
    test_load_all();
    test_names();
    sl_ctx_free(ctx);
    return check_done();
}
