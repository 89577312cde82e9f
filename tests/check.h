/* check.h - the tests' assertions: each failure prints file, line and the
 * expression, counts, and the test's main returns non-zero at the end.
 *
 *   int main(void) { CHECK(1 + 1 == 2); CHECK_STR(a, "b"); return check_done(); }
 */
#ifndef SL_TEST_CHECK_H
#define SL_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures_;
static int check_count_;

#define CHECK(expr)                                                                                          \
    do {                                                                                                     \
        check_count_++;                                                                                      \
        if (!(expr)) {                                                                                       \
            check_failures_++;                                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);                         \
        }                                                                                                    \
    } while (0)

#define CHECK_INT(a, b)                                                                                      \
    do {                                                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                                                  \
        check_count_++;                                                                                      \
        if (a_ != b_) {                                                                                      \
            check_failures_++;                                                                               \
            fprintf(stderr, "%s:%d: CHECK_INT failed: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a,  \
                    a_, b_);                                                                                 \
        }                                                                                                    \
    } while (0)

#define CHECK_STR(a, b)                                                                                      \
    do {                                                                                                     \
        const char *a_ = (a), *b_ = (b);                                                                     \
        check_count_++;                                                                                      \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                             \
            check_failures_++;                                                                               \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__,  \
                    #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                             \
        }                                                                                                    \
    } while (0)

/* Substring check: `hay` contains `needle`. */
#define CHECK_CONTAINS(hay, needle)                                                                          \
    do {                                                                                                     \
        const char *h_ = (hay), *n_ = (needle);                                                              \
        check_count_++;                                                                                      \
        if (!h_ || !strstr(h_, n_)) {                                                                        \
            check_failures_++;                                                                               \
            fprintf(stderr, "%s:%d: CHECK_CONTAINS failed: \"%s\" does not contain \"%s\"\n", __FILE__,      \
                    __LINE__, h_ ? h_ : "(null)", n_);                                                       \
        }                                                                                                    \
    } while (0)

static inline int check_done(void) {
    fprintf(stderr, "%d checks, %d failed\n", check_count_, check_failures_);
    return check_failures_ ? 1 : 0;
}

#endif
