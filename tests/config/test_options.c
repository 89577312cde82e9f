/* test_options.c - option tables: every type's accepted and refused
 * spellings, range checks, path joining, format round trips, and
 * sl_options_validate catching each kind of malformed table. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "options.h"

typedef struct conf {
    const char *s;
    int64_t i;
    double d;
    bool b;
    uint64_t size;
    int64_t dur;
    const char *path;
    const char *mode;
    const char *key;
} conf;

static const sl_option table[] = {
    {.name = "s", .type = SL_OPT_STRING, .def = "hello", .offset = offsetof(conf, s)},
    {.name = "i", .type = SL_OPT_INT, .def = "7", .offset = offsetof(conf, i)},
    {.name = "d", .type = SL_OPT_DOUBLE, .def = "0.25", .offset = offsetof(conf, d)},
    {.name = "b", .type = SL_OPT_BOOL, .def = "yes", .offset = offsetof(conf, b)},
    {.name = "size", .type = SL_OPT_SIZE, .def = "64K", .offset = offsetof(conf, size)},
    {.name = "dur", .type = SL_OPT_DURATION, .def = "250ms", .offset = offsetof(conf, dur)},
    {.name = "path", .type = SL_OPT_PATH, .offset = offsetof(conf, path)},
    {.name = "mode",
     .type = SL_OPT_ENUM,
     .def = "chars",
     .offset = offsetof(conf, mode),
     .choices = "chars|tokens"},
    {.name = "key", .type = SL_OPT_STRING, .flags = SL_OPT_SECRET, .offset = offsetof(conf, key)},
    {.name = NULL},
};

enum { O_S, O_I, O_D, O_B, O_SIZE, O_DUR, O_PATH, O_MODE, O_KEY };

static conf c;
static char **owned;
static size_t nowned;
static char err[512];

/* Parses text as option `which`; returns the code, the reason in err. */
static int parse(int which, const char *text) {
    err[0] = '\0';
    return sl_option_parse(&table[which], text, "/base/dir", &c, &owned, &nowned, err, sizeof err);
}

static void test_type_names(void) {
    CHECK_STR(sl_opt_type_name(SL_OPT_STRING), "string");
    CHECK_STR(sl_opt_type_name(SL_OPT_DURATION), "duration");
    CHECK_STR(sl_opt_type_name(SL_OPT_ENUM), "enum");
    CHECK(sl_opt_type_name((sl_opt_type)99) == NULL);
    CHECK_INT(sl_options_count(table), 9);
    CHECK_INT(sl_options_count(NULL), 0);
}

static void test_strings_and_enums(void) {
    CHECK_INT(parse(O_S, "some text"), 0);
    CHECK_STR(c.s, "some text");
    CHECK_INT(parse(O_S, ""), 0);
    CHECK_STR(c.s, "");

    CHECK_INT(parse(O_MODE, "tokens"), 0);
    CHECK_STR(c.mode, "tokens");
    CHECK_INT(parse(O_MODE, "token"), SL_EFATAL);
    CHECK_CONTAINS(err, "'token' is not one of: chars, tokens");
    CHECK_INT(parse(O_MODE, "Chars"), SL_EFATAL); /* exact spelling */
    CHECK_STR(c.mode, "tokens");                  /* a refused value leaves the field alone */
}

static void test_ints(void) {
    CHECK_INT(parse(O_I, "42"), 0);
    CHECK_INT(c.i, 42);
    CHECK_INT(parse(O_I, "-17"), 0);
    CHECK_INT(c.i, -17);
    CHECK_INT(parse(O_I, "+5"), 0);
    CHECK_INT(c.i, 5);
    CHECK_INT(parse(O_I, "9223372036854775807"), 0);
    CHECK(c.i == INT64_MAX);
    CHECK_INT(parse(O_I, "-9223372036854775808"), 0);
    CHECK(c.i == INT64_MIN);

    const char *bad[] = {"", "12x", "x12", "1.5", "1e3", " 3", "0x10", "-", "1 2"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        CHECK_INT(parse(O_I, bad[k]), SL_EFATAL);
        CHECK_CONTAINS(err, "is not an int");
    }
    CHECK_INT(parse(O_I, "12x"), SL_EFATAL);
    CHECK_STR(err, "'12x' is not an int");
    CHECK_INT(parse(O_I, "9223372036854775808"), SL_EFATAL);
    CHECK_CONTAINS(err, "'9223372036854775808' is out of range for an int");
    CHECK_INT(parse(O_I, "-99999999999999999999"), SL_EFATAL);
    CHECK_CONTAINS(err, "out of range");
    CHECK(c.i == INT64_MIN); /* refused values leave the field alone */
}

static void test_doubles(void) {
    CHECK_INT(parse(O_D, "0.5"), 0);
    CHECK(c.d == 0.5);
    CHECK_INT(parse(O_D, "-2e3"), 0);
    CHECK(c.d == -2000.0);
    CHECK_INT(parse(O_D, "3"), 0);
    CHECK(c.d == 3.0);
    const char *bad[] = {"", "abc", "1.5x", " 1", "inf", "nan", "1e999"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) CHECK_INT(parse(O_D, bad[k]), SL_EFATAL);
    CHECK_INT(parse(O_D, "1.5x"), SL_EFATAL);
    CHECK_STR(err, "'1.5x' is not a number");
    CHECK(c.d == 3.0);
}

static void test_bools(void) {
    const char *yes[] = {"true", "TRUE", "Yes", "on", "1"};
    const char *no[] = {"false", "False", "NO", "off", "0"};
    for (size_t k = 0; k < 5; k++) {
        c.b = false;
        CHECK_INT(parse(O_B, yes[k]), 0);
        CHECK(c.b == true);
        CHECK_INT(parse(O_B, no[k]), 0);
        CHECK(c.b == false);
    }
    CHECK_INT(parse(O_B, "maybe"), SL_EFATAL);
    CHECK_CONTAINS(err, "'maybe' is not a bool");
    CHECK_INT(parse(O_B, "2"), SL_EFATAL);
    CHECK_INT(parse(O_B, ""), SL_EFATAL);
}

static void test_sizes(void) {
    static const struct {
        const char *text;
        uint64_t bytes;
    } ok[] = {{"0", 0},
              {"512", 512},
              {"512B", 512},
              {"64K", 65536},
              {"64k", 65536},
              {"64KB", 65536},
              {"64KiB", 65536},
              {"10M", 10485760},
              {"10 MB", 10485760},
              {"10MiB", 10485760},
              {"2G", 2147483648ull},
              {"3T", 3298534883328ull},
              {"18446744073709551615", UINT64_MAX},
              {"16777215T", 16777215ull << 40}};
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        c.size = 1;
        CHECK_INT(parse(O_SIZE, ok[k].text), 0);
        CHECK(c.size == ok[k].bytes);
    }
    const char *bad[] = {"", "12x", "K", "-1", "1.5G", "10 M B", "64KK", "1P"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) CHECK_INT(parse(O_SIZE, bad[k]), SL_EFATAL);
    CHECK_INT(parse(O_SIZE, "12x"), SL_EFATAL);
    CHECK_STR(err, "'12x' is not a size (use 512, 64K, 10M or 2G)");
    CHECK_INT(parse(O_SIZE, "16777216T"), SL_EFATAL);
    CHECK_CONTAINS(err, "out of range for a size");
    CHECK_INT(parse(O_SIZE, "18446744073709551616"), SL_EFATAL);
    CHECK_CONTAINS(err, "out of range");
}

static void test_durations(void) {
    static const struct {
        const char *text;
        int64_t ms;
    } ok[] = {{"0", 0},        {"250ms", 250}, {"5s", 5000},       {"2m", 120000},
              {"1h", 3600000}, {"0s", 0},      {"1h30m", 5400000}, {"1m30s500ms", 90500}};
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        c.dur = -1;
        CHECK_INT(parse(O_DUR, ok[k].text), 0);
        CHECK_INT(c.dur, ok[k].ms);
    }
    const char *bad[] = {"", "5", "250", "5x", "s", "-5s", "1.5s", "5 s", "5sec", "1d"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) CHECK_INT(parse(O_DUR, bad[k]), SL_EFATAL);
    CHECK_INT(parse(O_DUR, "5"), SL_EFATAL);
    CHECK_STR(err, "'5' is not a duration (use 250ms, 5s, 2m or 1h)");
    CHECK_INT(parse(O_DUR, "9999999999999999h"), SL_EFATAL);
    CHECK_CONTAINS(err, "out of range for a duration");
}

static void test_paths(void) {
    CHECK_INT(parse(O_PATH, "data/x.db"), 0);
    CHECK_STR(c.path, "/base/dir/data/x.db");
    CHECK_INT(parse(O_PATH, "./x.db"), 0);
    CHECK_STR(c.path, "/base/dir/x.db");
    CHECK_INT(parse(O_PATH, "../x.db"), 0);
    CHECK_STR(c.path, "/base/dir/../x.db");
    CHECK_INT(parse(O_PATH, "/abs/x.db"), 0);
    CHECK_STR(c.path, "/abs/x.db");
    CHECK_INT(parse(O_PATH, ""), 0);
    CHECK_STR(c.path, "");
    /* without a base the text is kept as written */
    CHECK_INT(sl_option_parse(&table[O_PATH], "rel", NULL, &c, &owned, &nowned, err, sizeof err), 0);
    CHECK_STR(c.path, "rel");
    CHECK_INT(sl_option_parse(&table[O_PATH], "rel", "/", &c, &owned, &nowned, err, sizeof err), 0);
    CHECK_STR(c.path, "/rel");
}

static void test_secret_values_stay_out_of_errors(void) {
    static const sl_option secret_int = {
        .name = "pin", .type = SL_OPT_INT, .flags = SL_OPT_SECRET, .offset = offsetof(conf, i)};
    CHECK_INT(sl_option_parse(&secret_int, "hunter2x", NULL, &c, &owned, &nowned, err, sizeof err),
              SL_EFATAL);
    CHECK(strstr(err, "hunter2x") == NULL);
    CHECK_CONTAINS(err, "is not an int");
}

static void test_format_round_trips(void) {
    conf a;
    memset(&a, 0, sizeof a);
    const char *in[] = {"x y", "-12", "0.1", "on", "10M", "1h30m", "p/q", "tokens", "s3cret"};
    const char *canon[] = {"x y",           "-12",      "0.10000000000000001",
                           "true",          "10485760", "5400000ms",
                           "/base/dir/p/q", "tokens",   "s3cret"};
    char buf[64];
    for (int k = 0; k <= O_KEY; k++) {
        CHECK_INT(sl_option_parse(&table[k], in[k], "/base/dir", &a, &owned, &nowned, err, sizeof err), 0);
        CHECK_INT(sl_option_format(&table[k], &a, buf, sizeof buf), 0);
        CHECK_STR(buf, canon[k]);
        /* the canonical text parses back to the same value */
        conf b = a;
        CHECK_INT(sl_option_parse(&table[k], buf, "/elsewhere", &b, &owned, &nowned, err, sizeof err), 0);
        char again[64];
        CHECK_INT(sl_option_format(&table[k], &b, again, sizeof again), 0);
        CHECK_STR(again, canon[k]);
    }
    CHECK(a.d == 0.1);
    /* a NULL string (no default) formats as empty; a buffer too small is an error */
    a.s = NULL;
    CHECK_INT(sl_option_format(&table[O_S], &a, buf, sizeof buf), 0);
    CHECK_STR(buf, "");
    a.i = 123456;
    CHECK_INT(sl_option_format(&table[O_I], &a, buf, 4), SL_EINVAL);
    sl_option bad = table[O_I];
    bad.type = (sl_opt_type)99;
    CHECK_INT(sl_option_format(&bad, &a, buf, sizeof buf), SL_EINVAL);
}

/* --- validate --- */

/* Validates a one-entry table (plus the terminator) against conf. */
static int validate1(sl_option o, size_t config_size) {
    sl_option t[2] = {o, {.name = NULL}};
    err[0] = '\0';
    return sl_options_validate(t, config_size, err, sizeof err);
}

static void test_validate(void) {
    CHECK_INT(sl_options_validate(table, sizeof(conf), err, sizeof err), 0);
    CHECK_INT(sl_options_validate(NULL, 0, err, sizeof err), 0);

    sl_option o = {.name = "dimension", .type = SL_OPT_INT, .def = "abc", .offset = offsetof(conf, i)};
    CHECK_INT(validate1(o, sizeof(conf)), SL_EFATAL);
    CHECK_STR(err, "option 'dimension': default 'abc' is not an int");

    o = (sl_option){.name = "", .type = SL_OPT_INT};
    CHECK_INT(validate1(o, sizeof(conf)), SL_EFATAL);
    CHECK_CONTAINS(err, "name is empty");

    o = (sl_option){.name = "has space", .type = SL_OPT_INT};
    CHECK_INT(validate1(o, sizeof(conf)), SL_EFATAL);
    CHECK_CONTAINS(err, "option 'has space': a name may use only");

    o = (sl_option){.name = "size", .type = (sl_opt_type)99};
    CHECK_INT(validate1(o, sizeof(conf)), SL_EFATAL);
    CHECK_STR(err, "option 'size': type 99 is not an option type");

    o = (sl_option){.name = "far", .type = SL_OPT_INT, .offset = sizeof(conf)};
    CHECK_INT(validate1(o, sizeof(conf)), SL_EFATAL);
    CHECK_CONTAINS(err, "option 'far': offset");
    CHECK_CONTAINS(err, "outside the");
    o = (sl_option){.name = "edge", .type = SL_OPT_INT, .offset = 8};
    CHECK_INT(validate1(o, 16), 0); /* the last 8 bytes of a 16-byte struct */
    CHECK_INT(validate1(o, 15), SL_EFATAL);
    o.offset = SIZE_MAX - 2; /* no wrap-around */
    CHECK_INT(validate1(o, 16), SL_EFATAL);
    o = (sl_option){.name = "b", .type = SL_OPT_BOOL, .offset = 3};
    CHECK_INT(validate1(o, 4), 0); /* a bool needs one byte, any alignment */

    o = (sl_option){.name = "odd", .type = SL_OPT_SIZE, .offset = 4};
    CHECK_INT(validate1(o, 16), SL_EFATAL);
    CHECK_CONTAINS(err, "not aligned");

    o = (sl_option){.name = "mode", .type = SL_OPT_ENUM, .offset = offsetof(conf, mode)};
    CHECK_INT(validate1(o, sizeof(conf)), SL_EFATAL);
    CHECK_CONTAINS(err, "option 'mode': an enum needs choices");
    o.choices = "a||b";
    CHECK_INT(validate1(o, sizeof(conf)), SL_EFATAL);
    o.choices = "a|b";
    o.def = "c";
    CHECK_INT(validate1(o, sizeof(conf)), SL_EFATAL);
    CHECK_CONTAINS(err, "option 'mode': default 'c' is not one of: a, b");
    o.def = "b";
    CHECK_INT(validate1(o, sizeof(conf)), 0);

    o = (sl_option){.name = "path",
                    .type = SL_OPT_PATH,
                    .def = "x",
                    .flags = SL_OPT_REQUIRED,
                    .offset = offsetof(conf, path)};
    CHECK_INT(validate1(o, sizeof(conf)), SL_EFATAL);
    CHECK_CONTAINS(err, "option 'path': is required and has a default");
    o.def = NULL;
    CHECK_INT(validate1(o, sizeof(conf)), 0);

    o = (sl_option){.name = "wait", .type = SL_OPT_DURATION, .def = "5", .offset = offsetof(conf, dur)};
    CHECK_INT(validate1(o, sizeof(conf)), SL_EFATAL);
    CHECK_CONTAINS(err, "option 'wait': default '5' is not a duration");

    sl_option twice[] = {{.name = "x", .type = SL_OPT_INT, .offset = offsetof(conf, i)},
                         {.name = "x", .type = SL_OPT_DOUBLE, .offset = offsetof(conf, d)},
                         {.name = NULL}};
    CHECK_INT(sl_options_validate(twice, sizeof(conf), err, sizeof err), SL_EFATAL);
    CHECK_STR(err, "option 'x': declared twice");

    /* options need a struct to go into */
    o = (sl_option){.name = "x", .type = SL_OPT_BOOL};
    CHECK_INT(validate1(o, 0), SL_EFATAL);
    CHECK_CONTAINS(err, "0-byte config struct");
}

int main(void) {
    test_type_names();
    test_strings_and_enums();
    test_ints();
    test_doubles();
    test_bools();
    test_sizes();
    test_durations();
    test_paths();
    test_secret_values_stay_out_of_errors();
    test_format_round_trips();
    test_validate();
    sl_options_free_owned(owned, nowned);
    return check_done();
}
