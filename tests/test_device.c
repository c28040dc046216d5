/* ctest-labels: unit */
/* test_device.c: --device parsing and the auto choice over fake GPU lists (no GPU needed). */
#include "test.h"
#include "cinder/device.h"
#include "cinder/status.h"

#define GIB ((size_t)1 << 30)

static void test_parse(void)
{
    struct device_spec s;
    char err[CND_ERR_LEN];
    CHECK_EQ_INT(device_parse("auto", &s, err), 0);
    CHECK_EQ_INT(s.kind, DEVICE_AUTO);
    CHECK_EQ_INT(device_parse(NULL, &s, err), 0);
    CHECK_EQ_INT(s.kind, DEVICE_AUTO);
    CHECK_EQ_INT(device_parse("cpu", &s, err), 0);
    CHECK_EQ_INT(s.kind, DEVICE_CPU);
    CHECK_EQ_INT(device_parse("CUDA", &s, err), 0);
    CHECK_EQ_INT(s.kind, DEVICE_CUDA);
    CHECK_EQ_INT(s.index, -1);
    CHECK_EQ_INT(device_parse("cuda:3", &s, err), 0);
    CHECK_EQ_INT(s.kind, DEVICE_CUDA);
    CHECK_EQ_INT(s.index, 3);
    CHECK_EQ_INT(device_parse("cuda:", &s, err), CND_EINVAL);
    CHECK_EQ_INT(device_parse("cuda:x", &s, err), CND_EINVAL);
    CHECK_EQ_INT(device_parse("cuda:1x", &s, err), CND_EINVAL);
    CHECK_EQ_INT(device_parse("gpu", &s, err), CND_EINVAL);
    CHECK(strstr(err, "auto, cpu, cuda, cuda:N") != NULL);
}

static void test_auto(void)
{
    struct device_spec s = {DEVICE_AUTO, -1};
    struct device_choice ch;
    char err[CND_ERR_LEN];
    struct device_gpu gpus[2] = {{"Small GPU", 6 * GIB, 8 * GIB}, {"Big GPU", 70 * GIB, 80 * GIB}};
    /* built without CUDA */
    CHECK_EQ_INT(device_choose(&s, false, gpus, 2, GIB, &ch, err), 0);
    CHECK_EQ_INT(ch.kind, DEVICE_CPU);
    CHECK(strstr(ch.reason, "built without CUDA") != NULL);
    /* no device visible */
    CHECK_EQ_INT(device_choose(&s, true, gpus, 0, GIB, &ch, err), 0);
    CHECK_EQ_INT(ch.kind, DEVICE_CPU);
    CHECK(strstr(ch.reason, "no CUDA device visible") != NULL);
    /* the GPU with the most free memory */
    CHECK_EQ_INT(device_choose(&s, true, gpus, 2, 16 * GIB, &ch, err), 0);
    CHECK_EQ_INT(ch.kind, DEVICE_CUDA);
    CHECK_EQ_INT(ch.index, 1);
    CHECK(strstr(ch.reason, "Big GPU") != NULL);
    /* too big for any: CPU, saying why */
    CHECK_EQ_INT(device_choose(&s, true, gpus, 2, 75 * GIB, &ch, err), 0);
    CHECK_EQ_INT(ch.kind, DEVICE_CPU);
    CHECK(strstr(ch.reason, "Big GPU") != NULL && strstr(ch.reason, "need") != NULL);
    /* the headroom counts */
    CHECK_EQ_INT(device_choose(&s, true, gpus, 1, 5 * GIB + GIB / 2, &ch, err), 0);
    CHECK_EQ_INT(ch.kind, DEVICE_CPU);
    CHECK_EQ_INT(device_choose(&s, true, gpus, 1, 4 * GIB, &ch, err), 0);
    CHECK_EQ_INT(ch.kind, DEVICE_CUDA);
    CHECK_EQ_INT(ch.index, 0);
}

static void test_explicit(void)
{
    struct device_choice ch;
    char err[CND_ERR_LEN];
    struct device_gpu gpus[2] = {{"A", 6 * GIB, 8 * GIB}, {"B", 70 * GIB, 80 * GIB}};
    struct device_spec cpu = {DEVICE_CPU, -1};
    CHECK_EQ_INT(device_choose(&cpu, true, gpus, 2, GIB, &ch, err), 0);
    CHECK_EQ_INT(ch.kind, DEVICE_CPU);
    struct device_spec cuda = {DEVICE_CUDA, -1};
    CHECK_EQ_INT(device_choose(&cuda, true, gpus, 2, GIB, &ch, err), 0);
    CHECK_EQ_INT(ch.kind, DEVICE_CUDA);
    CHECK_EQ_INT(ch.index, 0);
    struct device_spec cuda1 = {DEVICE_CUDA, 1};
    CHECK_EQ_INT(device_choose(&cuda1, true, gpus, 2, GIB, &ch, err), 0);
    CHECK_EQ_INT(ch.index, 1);
    struct device_spec cuda5 = {DEVICE_CUDA, 5};
    CHECK_EQ_INT(device_choose(&cuda5, true, gpus, 2, GIB, &ch, err), CND_ENOTFOUND);
    CHECK(strstr(err, "only 2 CUDA devices") != NULL);
    CHECK_EQ_INT(device_choose(&cuda, true, gpus, 0, GIB, &ch, err), CND_ENOTFOUND);
    CHECK(strstr(err, "no CUDA device visible") != NULL);
    CHECK_EQ_INT(device_choose(&cuda, false, gpus, 2, GIB, &ch, err), CND_EUNSUPPORTED);
    CHECK(strstr(err, "without CUDA") != NULL);
    /* explicit cuda with too little memory still goes there, with a warning in the reason */
    CHECK_EQ_INT(device_choose(&cuda, true, gpus, 2, 7 * GIB, &ch, err), 0);
    CHECK_EQ_INT(ch.kind, DEVICE_CUDA);
    CHECK(strstr(ch.reason, "too little") != NULL);
}

static void test_select_real(void)
{
    /* whatever this machine has: auto never fails and always explains itself */
    struct device_spec s = {DEVICE_AUTO, -1};
    struct device_choice ch;
    char err[CND_ERR_LEN];
    CHECK_EQ_INT(device_select(&s, GIB / 4, &ch, err), 0);
    CHECK(ch.reason[0] != 0);
}

int main(void)
{
    RUN(test_parse);
    RUN(test_auto);
    RUN(test_explicit);
    RUN(test_select_real);
    return test_summary();
}
