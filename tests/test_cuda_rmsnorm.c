/* ctest-labels: cuda */
/* test_cuda_rmsnorm.c: the CUDA RMSNorm kernel against a plain C loop. Skips (77) when the build
 * has no CUDA or no GPU is visible. Tolerance 1e-5 relative: both sum in float, in another order.
 */
#include "test.h"
#include "cinder/common.h"

#include <stdlib.h>

#ifdef CND_HAVE_CUDA
#include "kernels.h"

static void test_rmsnorm_matches_cpu(void)
{
    const int rows = 7, cols = 1000;
    float *x = malloc(sizeof(float) * rows * cols), *w = malloc(sizeof(float) * cols);
    float *y = malloc(sizeof(float) * rows * cols), *ref = malloc(sizeof(float) * rows * cols);
    unsigned s = 1;
    for (int i = 0; i < rows * cols; i++)
        x[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 16384.0f - 1.0f;
    for (int i = 0; i < cols; i++)
        w[i] = 0.5f + (float)i / cols;
    for (int r = 0; r < rows; r++) {
        double ss = 0;
        for (int i = 0; i < cols; i++)
            ss += (double)x[r * cols + i] * x[r * cols + i];
        float sc = (float)(1.0 / sqrt(ss / cols + 1e-5));
        for (int i = 0; i < cols; i++)
            ref[r * cols + i] = x[r * cols + i] * sc * w[i];
    }
    void *dx, *dw, *dy;
    CHECK(cnd_cuda_malloc(&dx, sizeof(float) * rows * cols) == 0);
    CHECK(cnd_cuda_malloc(&dw, sizeof(float) * cols) == 0);
    CHECK(cnd_cuda_malloc(&dy, sizeof(float) * rows * cols) == 0);
    CHECK(cnd_cuda_memcpy_h2d(dx, x, sizeof(float) * rows * cols) == 0);
    CHECK(cnd_cuda_memcpy_h2d(dw, w, sizeof(float) * cols) == 0);
    CHECK(cnd_cuda_rmsnorm_f32(dy, dx, dw, rows, cols, 1e-5f, NULL) == 0);
    CHECK(cnd_cuda_memcpy_d2h(y, dy, sizeof(float) * rows * cols) == 0);
    double max_err = 0;
    for (int i = 0; i < rows * cols; i++) {
        double e = fabs(y[i] - ref[i]) / (fabs(ref[i]) + 1e-6);
        max_err = e > max_err ? e : max_err;
    }
    CHECK_MSG(max_err < 1e-5, "max relative error %g", max_err);
    cnd_cuda_free(dx), cnd_cuda_free(dw), cnd_cuda_free(dy);
    free(x), free(w), free(y), free(ref);
}
#endif

int main(void)
{
#ifdef CND_HAVE_CUDA
    if (cnd_cuda_device_count() == 0) {
        printf("no CUDA device visible: skipped\n");
        return TEST_SKIP;
    }
    RUN(test_rmsnorm_matches_cpu);
    return test_summary();
#else
    printf("built without CUDA: skipped\n");
    return TEST_SKIP;
#endif
}
