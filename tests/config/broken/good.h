/* good.h - the config struct of cfgtest-good (good.c), shared with the
 * instance test so it can read back what the core filled in. */
#ifndef TEST_GOOD_H
#define TEST_GOOD_H

#include <stdbool.h>
#include <stdint.h>

typedef struct good_conf {
    const char *label;
    int64_t count;
    double ratio;
    bool verbose;
    uint64_t cache;
    int64_t timeout_ms;
    const char *dict;
    const char *mode;
    const char *api_key;  /* secret */
    int64_t pin;          /* secret, and can be mistyped */
    const char *endpoint; /* required */
    int64_t workers;      /* not fingerprinted */
    bool fail_init;
    bool log_secret;
} good_conf;

#endif
