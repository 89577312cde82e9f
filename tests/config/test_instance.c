/* test_instance.c - instances from INI sections: defaults, typed values,
 * stage settings, errors that name file, line, section, key and plugin,
 * the fingerprint text, secrets that never print, and init/fini. */
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broken/good.h"
#include "check.h"
#include "instance.h"
#include "options.h"

static sl_ctx *ctx;
static sl_registry *reg;
static char plugins[PATH_MAX];
static char tmpdir[PATH_MAX];

/* Builds the instance of section `sec` in `ini` (named test.ini, in the
 * scratch folder). NULL on failure, with the message in ctx. */
static sl_instance *build(const char *ini, const char *sec) {
    sl_config *cfg = NULL;
    sl_ctx_clear_error(ctx);
    CHECK_INT(sl_config_load_string(ctx, "test.ini", tmpdir, ini, &cfg), 0);
    if (!cfg) return NULL;
    sl_instance *inst = NULL;
    int rc = sl_instance_new(ctx, reg, cfg, sec, &inst);
    CHECK((rc == 0) == (inst != NULL));
    if (rc < 0) CHECK_INT(rc, sl_ctx_errcode(ctx));
    sl_config_free(cfg); /* the instance keeps its own copies */
    return inst;
}

static const good_conf *conf_of(const sl_instance *inst) { return inst->config; }

static void test_defaults_applied(void) {
    sl_instance *inst = build("[g]\nplugin = cfgtest-good\nendpoint = http://x\n", "g");
    CHECK(inst != NULL);
    if (!inst) return;
    CHECK_STR(inst->name, "g");
    CHECK_STR(inst->desc->name, "cfgtest-good");
    CHECK(inst->desc == &inst->plugin->desc);
    CHECK_INT(inst->id, 0);
    CHECK_INT(inst->initialized, 0);
    const good_conf *c = conf_of(inst);
    CHECK_STR(c->label, "hello");
    CHECK_INT(c->count, 3);
    CHECK(c->ratio == 0.5);
    CHECK(c->verbose == false);
    CHECK(c->cache == 65536);
    CHECK_INT(c->timeout_ms, 5000);
    CHECK(c->dict == NULL);
    CHECK_STR(c->mode, "fast");
    CHECK(c->api_key == NULL);
    CHECK_STR(c->endpoint, "http://x");
    CHECK_INT(c->workers, 2);
    CHECK_INT(inst->stage.max_concurrency, 0);
    CHECK_INT(inst->stage.batch_size, 0);
    CHECK_INT(inst->stage.batch_delay_ms, 20);
    sl_instance_free(inst);

    /* without `plugin`, the section's name is the plugin's */
    inst = build("[sluice]\n[cfgtest-good]\nendpoint = e\n", "cfgtest-good");
    CHECK(inst != NULL);
    if (inst) CHECK_STR(inst->desc->name, "cfgtest-good");
    sl_instance_free(inst);
}

static void test_values_parsed(void) {
    sl_instance *inst = build("[g]\n"
                              "plugin = cfgtest-good\n"
                              "label = some words\n"
                              "count = -4\n"
                              "ratio = 1.25\n"
                              "verbose = on\n"
                              "cache = 10M\n"
                              "timeout = 2m\n"
                              "dict = words/en.txt\n"
                              "mode = exact\n"
                              "endpoint = http://y\n"
                              "workers = 8\n"
                              "max_concurrency = 4\n"
                              "batch_size = 16\n"
                              "batch_delay = 1s\n",
                              "g");
    CHECK(inst != NULL);
    if (!inst) return;
    const good_conf *c = conf_of(inst);
    CHECK_STR(c->label, "some words");
    CHECK_INT(c->count, -4);
    CHECK(c->ratio == 1.25);
    CHECK(c->verbose == true);
    CHECK(c->cache == 10485760);
    CHECK_INT(c->timeout_ms, 120000);
    char want[PATH_MAX + 32];
    snprintf(want, sizeof want, "%s/words/en.txt", tmpdir);
    CHECK_STR(c->dict, want);
    CHECK_STR(c->mode, "exact");
    CHECK_INT(c->workers, 8);
    CHECK_INT(inst->stage.max_concurrency, 4);
    CHECK_INT(inst->stage.batch_size, 16);
    CHECK_INT(inst->stage.batch_delay_ms, 1000);
    sl_instance_free(inst);
}

static void test_stage_options_table(void) {
    const sl_option *t = sl_stage_options();
    CHECK_INT(sl_options_count(t), 21);
    CHECK_STR(t[17].name, "fallback_after"); /* appended: io stages with a fallback */
    CHECK_INT(t[17].type, SL_OPT_DURATION);
    CHECK_STR(t[18].name, "shared_limits"); /* appended: rpm and tpm from the sink's bucket */
    CHECK_INT(t[18].type, SL_OPT_BOOL);
    CHECK_STR(t[19].name, "limit_name");
    CHECK_INT(t[19].type, SL_OPT_STRING);
    CHECK_STR(t[20].name, "ca_file"); /* appended: io stages, a private CA for https */
    CHECK_INT(t[20].type, SL_OPT_PATH);
    CHECK_STR(t[0].name, "max_concurrency");
    CHECK_STR(t[1].name, "batch_size");
    CHECK_STR(t[2].name, "batch_delay");
    CHECK_INT(t[2].type, SL_OPT_DURATION);
    CHECK_STR(t[3].name, "isolated");
    CHECK_INT(t[3].type, SL_OPT_BOOL);
    char err[256] = "";
    CHECK_INT(sl_options_validate(t, sizeof(sl_stage_conf), err, sizeof err), 0);

    CHECK(build("[g]\nplugin = cfgtest-good\nendpoint = e\nmax_concurrency = -1\n", "g") == NULL);
    CHECK_STR(sl_ctx_errmsg(ctx), "test.ini:4: [g] max_concurrency: -1 is out of range (0 to 1000000)");
    /* a batch_size whose batch would overflow an allocation (issue 17) is refused where it is written */
    CHECK(build("[g]\nplugin = cfgtest-good\nendpoint = e\nbatch_size = 1152921504606846976\n", "g") == NULL);
    CHECK_STR(sl_ctx_errmsg(ctx),
              "test.ini:4: [g] batch_size: 1152921504606846976 is out of range (0 to 65536)");
    sl_instance *ok = build("[g]\nplugin = cfgtest-good\nendpoint = e\nbatch_size = 65536\n", "g");
    CHECK(ok != NULL);
    sl_instance_free(ok);
    CHECK(build("[g]\nplugin = cfgtest-good\nendpoint = e\nbatch_delay = 20\n", "g") == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "test.ini:4: [g] batch_delay: '20' is not a duration");
}

static void test_unknown_key(void) {
    CHECK(build("[g]\nplugin = cfgtest-good\nendpoint = e\ncuont = 4\n", "g") == NULL);
    const char *msg = sl_ctx_errmsg(ctx);
    CHECK_CONTAINS(msg, "test.ini:4: [g] cuont: unknown option for plugin cfgtest-good");
    CHECK_CONTAINS(msg, "did you mean 'count'?");
    CHECK_CONTAINS(msg, "(known: label, count, ratio, verbose, cache, timeout, dict, mode, api_key, pin,");
    /* the core's settings that apply to a cpu chunker, not an embedder's or a provider's */
    CHECK_CONTAINS(msg, "and the core's: plugin, max_concurrency, isolated, call_timeout)");
    CHECK(strstr(msg, "batch_delay") == NULL);
    CHECK(strstr(msg, "rpm") == NULL);
    CHECK_INT(sl_ctx_errcode(ctx), SL_EFATAL);

    /* nothing close: no guess */
    CHECK(build("[g]\nplugin = cfgtest-good\nendpoint = e\nzzzzzzzz = 4\n", "g") == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx),
                   "test.ini:4: [g] zzzzzzzz: unknown option for plugin cfgtest-good (known:");
    CHECK(strstr(sl_ctx_errmsg(ctx), "did you mean") == NULL);
}

static void test_mistyped_value(void) {
    CHECK(build("[g]\nplugin = cfgtest-good\nendpoint = e\n\ncount = many\n", "g") == NULL);
    CHECK_STR(sl_ctx_errmsg(ctx), "test.ini:5: [g] count: 'many' is not an int");
    CHECK(build("[g]\nplugin = cfgtest-good\nendpoint = e\nmode = slow\n", "g") == NULL);
    CHECK_STR(sl_ctx_errmsg(ctx), "test.ini:4: [g] mode: 'slow' is not one of: fast, exact");

    /* a value from --set has no line */
    sl_config *cfg = NULL;
    CHECK_INT(
        sl_config_load_string(ctx, "test.ini", tmpdir, "[g]\nplugin = cfgtest-good\nendpoint = e\n", &cfg),
        0);
    CHECK_INT(sl_config_set(ctx, cfg, "g.count=abc"), 0);
    sl_instance *inst = NULL;
    CHECK_INT(sl_instance_new(ctx, reg, cfg, "g", &inst), SL_EFATAL);
    CHECK_STR(sl_ctx_errmsg(ctx), "test.ini (--set): [g] count: 'abc' is not an int");
    sl_config_free(cfg);
}

static void test_missing_required(void) {
    CHECK(build("[sluice]\n[store]\nplugin = cfgtest-good\nlabel = x\n", "store") == NULL);
    CHECK_STR(sl_ctx_errmsg(ctx), "test.ini:2: [store] endpoint: required by plugin cfgtest-good; set it in "
                                  "the file, or with --set store.endpoint=VALUE (required)");
    CHECK(build("[store]\nplugin = cfgtest-good\nendpoint =\n", "store") == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "[store] endpoint: required by plugin cfgtest-good");
}

static void test_plugin_and_section_errors(void) {
    CHECK(build("[x]\nplugin = no-such-plugin\n", "x") == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx),
                   "test.ini:2: [x] plugin: plugin 'no-such-plugin' not found (looked in: ");
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), plugins);
    CHECK(build("[no-such-plugin]\n", "no-such-plugin") == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "test.ini:1: [no-such-plugin] plugin 'no-such-plugin' not found");
    CHECK(build("[x]\n", "y") == NULL);
    CHECK_STR(sl_ctx_errmsg(ctx), "test.ini: there is no section [y]");
}

/* `plugin = DIR/FILE.so` is a path from the INI file's folder. */
static void test_plugin_by_path(void) {
    sl_config *cfg = NULL;
    CHECK_INT(sl_config_load_string(ctx, "test.ini", plugins,
                                    "[g]\nplugin = order-b/cfgtest-good.so\nendpoint = e\n", &cfg),
              0);
    sl_instance *inst = NULL;
    CHECK_INT(sl_instance_new(ctx, reg, cfg, "g", &inst), 0);
    if (inst) CHECK_STR(inst->desc->version, "2.0-b");
    sl_instance_free(inst);
    sl_config_free(cfg);
}

static void test_canon(void) {
    sl_instance *inst = build("[g]\nplugin = cfgtest-good\nendpoint = http://x\napi_key = sk-canon-1234\n"
                              "pin = 4321\nworkers = 9\ncache = 64K\n",
                              "g");
    CHECK(inst != NULL);
    if (!inst) return;
    CHECK_STR(inst->canon, "cfgtest-good@1.0\n"
                           "label=hello\n"
                           "count=3\n"
                           "ratio=0.5\n"
                           "verbose=false\n"
                           "cache=65536\n"
                           "timeout=5000ms\n"
                           "dict=\n"
                           "mode=fast\n"
                           "endpoint=http://x\n");
    CHECK(strstr(inst->canon, "sk-canon") == NULL);
    CHECK(strstr(inst->canon, "4321") == NULL);
    CHECK(strstr(inst->canon, "workers") == NULL);

    /* the same settings spelled differently give the same text */
    sl_instance *other =
        build("[h]\nplugin = cfgtest-good\nendpoint = http://x\ncache = 65536\ntimeout = 5000ms\n"
              "verbose = no\nworkers = 1\n",
              "h");
    CHECK(other != NULL);
    if (other) CHECK_STR(other->canon, inst->canon);
    sl_instance_free(other);
    other = build("[h]\nplugin = cfgtest-good\nendpoint = http://x\ncount = 4\n", "h");
    if (other) CHECK(strcmp(other->canon, inst->canon) != 0);
    sl_instance_free(other);
    sl_instance_free(inst);
}

static void test_secrets(void) {
    sl_instance *inst =
        build("[g]\nplugin = cfgtest-good\nendpoint = e\napi_key = sk-live-0123456789\n", "g");
    CHECK(inst != NULL);
    char out[256];
    sl_ctx_scrub(ctx, "Authorization: Bearer sk-live-0123456789.", out, sizeof out);
    CHECK_STR(out, "Authorization: Bearer ***.");
    sl_instance_free(inst);

    /* an error about a secret's value leaves the value out, short or long */
    CHECK(build("[g]\nplugin = cfgtest-good\nendpoint = e\npin = 12x\n", "g") == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "test.ini:4: [g] pin: ");
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "is not an int");
    CHECK(strstr(sl_ctx_errmsg(ctx), "12x") == NULL);
    CHECK(build("[g]\nplugin = cfgtest-good\nendpoint = e\npin = opensesame\n", "g") == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "[g] pin: ");
    CHECK(strstr(sl_ctx_errmsg(ctx), "opensesame") == NULL);
}

static int (*live_states_of(const sl_instance *inst))(void) {
    void *sym = dlsym(inst->plugin->handle, "test_live_states");
    int (*fn)(void) = NULL;
    CHECK(sym != NULL);
    if (sym) memcpy(&fn, &sym, sizeof fn);
    return fn;
}

static void test_init_and_fini(void) {
    sl_instance *inst = build("[g]\nplugin = cfgtest-good\nendpoint = e\n", "g");
    CHECK(inst != NULL);
    if (!inst) return;
    int (*live)(void) = live_states_of(inst);
    if (!live) return;
    int before = live();
    CHECK_INT(sl_instance_init(ctx, inst), 0);
    CHECK_INT(inst->initialized, 1);
    CHECK(inst->state != NULL);
    CHECK_INT(live(), before + 1);
    CHECK_INT(sl_instance_init(ctx, inst), 0); /* once only */
    CHECK_INT(live(), before + 1);
    sl_instance_free(inst); /* runs fini */
    CHECK_INT(live(), before);
    sl_instance_free(NULL);

    /* built but never initialised: no fini */
    inst = build("[g]\nplugin = cfgtest-good\nendpoint = e\n", "g");
    sl_instance_free(inst);
    CHECK_INT(live(), before);
}

static void test_init_failure(void) {
    sl_instance *inst =
        build("[remote]\nplugin = cfgtest-good\nendpoint = http://nowhere:9\nfail_init = yes\n", "remote");
    CHECK(inst != NULL);
    if (!inst) return;
    int (*live)(void) = live_states_of(inst);
    int before = live ? live() : 0;
    CHECK_INT(sl_instance_init(ctx, inst), SL_EFATAL);
    CHECK_STR(sl_ctx_errmsg(ctx), "[remote] init failed: cannot reach http://nowhere:9");
    CHECK_INT(inst->initialized, 0);
    sl_instance_free(inst);
    if (live) CHECK_INT(live(), before);
}

static void test_embedder_needs_dimension(void) {
    sl_instance *inst = build("[embedder]\nplugin = cfgtest-embed\n", "embedder");
    CHECK(inst != NULL);
    if (!inst) return;
    CHECK_INT(sl_instance_init(ctx, inst), SL_EFATAL);
    CHECK_STR(sl_ctx_errmsg(ctx), "[embedder] plugin cfgtest-embed declared no vector dimension "
                                  "(call sl_instance_set_dimension in init)");
    sl_instance_free(inst);

    inst = build("[embedder]\nplugin = cfgtest-embed\ndimension = 8\n", "embedder");
    CHECK(inst != NULL);
    if (!inst) return;
    CHECK_INT(sl_instance_init(ctx, inst), 0);
    CHECK_INT(inst->dim, 8);
    sl_instance_free(inst);
}

/* What a plugin logs passes through the scrubber: stderr is captured. */
static void test_plugin_log_is_scrubbed(void) {
    sl_instance *inst = build("[g]\nplugin = cfgtest-good\nendpoint = e\napi_key = sk-log-abcdef123\n"
                              "log_secret = true\n",
                              "g");
    CHECK(inst != NULL);
    if (!inst) return;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/instance-%d-stderr.txt", tmpdir, (int)getpid());
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    int rc = sl_instance_init(ctx, inst);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    CHECK_INT(rc, 0);

    char text[1024] = "";
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (f) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = '\0';
        fclose(f);
    }
    unlink(path);
    CHECK_CONTAINS(text, "g: connecting with key ***");
    CHECK(strstr(text, "sk-log-abcdef123") == NULL);
    sl_instance_free(inst);
}

static void test_new_defaults(void) {
    const sl_loaded *good = NULL;
    sl_ctx_clear_error(ctx);
    CHECK_INT(sl_registry_find(ctx, reg, "cfgtest-good", &good), 0);
    if (!good) return;
    const char *ok[] = {"endpoint=http://d", " count = 9 ", "dict=rel/x", "batch_size=8"};
    sl_instance *inst = NULL;
    CHECK_INT(sl_instance_new_defaults(ctx, good, NULL, ok, 4, &inst), 0);
    CHECK_STR(sl_ctx_errmsg(ctx), "");
    if (inst) {
        char cwd[PATH_MAX], want[PATH_MAX + 16];
        CHECK(getcwd(cwd, sizeof cwd) != NULL);
        snprintf(want, sizeof want, "%s/rel/x", cwd);
        CHECK_STR(inst->name, "cfgtest-good");
        CHECK_STR(conf_of(inst)->endpoint, "http://d");
        CHECK_INT(conf_of(inst)->count, 9);
        CHECK_STR(conf_of(inst)->dict, want);
        CHECK_STR(conf_of(inst)->label, "hello");
        CHECK_INT(inst->stage.batch_size, 8);
        CHECK_CONTAINS(inst->canon, "count=9\n");
    }
    sl_instance_free(inst);

    CHECK_INT(sl_instance_new_defaults(ctx, good, "check", ok, 1, &inst), 0);
    if (inst) CHECK_STR(inst->name, "check");
    sl_instance_free(inst);

    const char *unknown[] = {"endpoint=x", "nope=1"};
    CHECK_INT(sl_instance_new_defaults(ctx, good, NULL, unknown, 2, &inst), SL_EFATAL);
    CHECK(inst == NULL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "[cfgtest-good] nope: unknown option for plugin cfgtest-good");
    const char *noeq[] = {"endpoint"};
    CHECK_INT(sl_instance_new_defaults(ctx, good, NULL, noeq, 1, &inst), SL_EFATAL);
    CHECK_CONTAINS(sl_ctx_errmsg(ctx), "expected KEY=VALUE");
    CHECK_INT(sl_instance_new_defaults(ctx, good, NULL, NULL, 0, &inst), SL_EFATAL);
    CHECK_STR(sl_ctx_errmsg(ctx), "[cfgtest-good] endpoint: required by plugin cfgtest-good; set it in the "
                                  "file, or with --set cfgtest-good.endpoint=VALUE (required)");
    const char *typo[] = {"endpoint=x", "count=lots"};
    CHECK_INT(sl_instance_new_defaults(ctx, good, NULL, typo, 2, &inst), SL_EFATAL);
    CHECK_STR(sl_ctx_errmsg(ctx), "[cfgtest-good] count: 'lots' is not an int");
}

int main(void) {
    const char *p = getenv("SLUICE_TEST_PLUGINS"), *t = getenv("SLUICE_TEST_TMP");
    if (!p || !realpath(p, plugins) || !t || !realpath(t, tmpdir)) {
        fprintf(stderr, "SLUICE_TEST_PLUGINS and SLUICE_TEST_TMP must name existing folders\n");
        return 1;
    }
    unsetenv("SLUICE_PLUGIN_PATH");
    ctx = sl_ctx_new();
    CHECK_INT(sl_registry_new(ctx, &reg), 0);
    char broken[PATH_MAX + 16];
    snprintf(broken, sizeof broken, "%s/broken", plugins);
    CHECK_INT(sl_registry_add_dir(reg, broken), 0);

    test_defaults_applied();
    test_values_parsed();
    test_stage_options_table();
    test_unknown_key();
    test_mistyped_value();
    test_missing_required();
    test_plugin_and_section_errors();
    test_plugin_by_path();
    test_canon();
    test_secrets();
    test_init_and_fini();
    test_init_failure();
    test_embedder_needs_dimension();
    test_plugin_log_is_scrubbed();
    test_new_defaults();

    sl_registry_free(reg);
    sl_ctx_free(ctx);
    return check_done();
}
