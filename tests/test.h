/* test.h: the test harness. CHECK* record a failure and go on; RUN runs one test function;
 * test_summary() prints "N passed, N failed" and gives the exit code. Return 77 to skip. */
#ifndef CINDER_TEST_H
#define CINDER_TEST_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int test_n_checks __attribute__((unused)), test_n_failed_checks __attribute__((unused));
static int test_n_passed __attribute__((unused)), test_n_failed __attribute__((unused));
static int test_cur_failed __attribute__((unused));

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        test_n_checks++;                                                                           \
        if (!(c)) {                                                                                \
            test_n_failed_checks++;                                                                \
            test_cur_failed = 1;                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);                  \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(c, ...)                                                                          \
    do {                                                                                           \
        test_n_checks++;                                                                           \
        if (!(c)) {                                                                                \
            test_n_failed_checks++;                                                                \
            test_cur_failed = 1;                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #c);                  \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        CHECK_MSG(a_ == b_, "%lld != %lld", a_, b_);                                               \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        CHECK_MSG(fabs(a_ - b_) <= (tol), "%.9g vs %.9g (tol %g)", a_, b_, (double)(tol));         \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        CHECK_MSG(a_ != NULL && b_ != NULL && strcmp(a_, b_) == 0, "\"%s\" != \"%s\"",             \
                  a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                         \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        test_cur_failed = 0;                                                                       \
        fn();                                                                                      \
        if (test_cur_failed) {                                                                     \
            test_n_failed++;                                                                       \
            fprintf(stderr, "FAIL %s\n", #fn);                                                     \
        } else {                                                                                   \
            test_n_passed++;                                                                       \
            printf("ok   %s\n", #fn);                                                              \
        }                                                                                          \
    } while (0)

static inline int test_summary(void)
{
    printf("%d passed, %d failed (%d checks)\n", test_n_passed, test_n_failed, test_n_checks);
    return test_n_failed ? 1 : 0;
}

#define TEST_SKIP 77

/* The tests' reproducible random source, xorshift64 (13, 7, 17): advances *s and returns it. */
static inline uint64_t test_xorshift64(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The first index of the largest value, in the plainest loop (a NaN never wins, except at
 * index 0 where nothing compares greater): the greedy choice the tests compare against. */
static inline int32_t test_plain_argmax(const float *x, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

#endif
