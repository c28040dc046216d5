/* quant_avx512.c: AVX-512 kernels (stub). */
#include "cinder/quant.h"

void quant_avx512_fill(enum cnd_dtype t, struct quant_kernels *k, bool vnni);

void quant_avx512_fill(enum cnd_dtype t, struct quant_kernels *k, bool vnni)
{
    CND_UNUSED(t);
    CND_UNUSED(k);
    CND_UNUSED(vnni);
}
