/* quant_avx2.c: AVX2+FMA+F16C kernels (stub). */
#include "cinder/quant.h"

void quant_avx2_fill(enum cnd_dtype t, struct quant_kernels *k);

void quant_avx2_fill(enum cnd_dtype t, struct quant_kernels *k)
{
    CND_UNUSED(t);
    CND_UNUSED(k);
}
