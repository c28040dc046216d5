/* quant.c: CPU feature detection and the per-(type, level) kernel tables. A table starts from
 * the scalar reference and every SIMD level up to the requested one overlays what it has; each
 * level provides vec_dot and vec_dot_tile together so the two always agree bit for bit. */
#include "cinder/quant.h"
#include "quant_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Fillers of the implementation files (no internal header: prototypes repeated there). */

static const enum cnd_dtype supported[] = {
    CND_DTYPE_F32,  CND_DTYPE_F16,  CND_DTYPE_BF16, CND_DTYPE_Q8_0, CND_DTYPE_Q4_0,
    CND_DTYPE_Q4_1, CND_DTYPE_Q5_0, CND_DTYPE_Q5_1, CND_DTYPE_Q2_K, CND_DTYPE_Q3_K,
    CND_DTYPE_Q4_K, CND_DTYPE_Q5_K, CND_DTYPE_Q6_K,
};

bool quant_is_supported(enum cnd_dtype t)
{
    for (size_t i = 0; i < ARRAY_SIZE(supported); i++)
        if (supported[i] == t)
            return true;
    return false;
}

enum cnd_dtype quant_vec_dot_type(enum cnd_dtype t)
{
    switch (t) {
    case CND_DTYPE_Q4_0:
    case CND_DTYPE_Q5_0:
    case CND_DTYPE_Q8_0: return CND_DTYPE_Q8_0;
    case CND_DTYPE_Q4_1:
    case CND_DTYPE_Q5_1: return CND_DTYPE_Q8_1;
    case CND_DTYPE_Q2_K:
    case CND_DTYPE_Q3_K:
    case CND_DTYPE_Q4_K:
    case CND_DTYPE_Q5_K:
    case CND_DTYPE_Q6_K: return CND_DTYPE_Q8_K;
    case CND_DTYPE_F16: return CND_DTYPE_F16;
    case CND_DTYPE_BF16: return CND_DTYPE_BF16;
    default: return CND_DTYPE_F32;
    }
}

const char *quant_simd_name(enum quant_simd level)
{
    switch (level) {
    case QUANT_SIMD_SCALAR: return "scalar";
    case QUANT_SIMD_AVX2: return "avx2";
    case QUANT_SIMD_AVX512: return "avx512";
    case QUANT_SIMD_AVX512_VNNI: return "avx512_vnni";
    }
    return "?";
}

static enum quant_simd cpu_level(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
#if defined(__clang__)
    /* clang 14 cannot query f16c; every AVX2+FMA CPU made has it */
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return QUANT_SIMD_SCALAR;
#else
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
          __builtin_cpu_supports("f16c")))
        return QUANT_SIMD_SCALAR;
#endif
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")))
        return QUANT_SIMD_AVX2;
    if (!__builtin_cpu_supports("avx512vnni"))
        return QUANT_SIMD_AVX512;
    return QUANT_SIMD_AVX512_VNNI;
#else
    return QUANT_SIMD_SCALAR;
#endif
}

static bool cpu_has_bf16(void)
{
#if (defined(__x86_64__) || defined(__i386__)) && !defined(__clang__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

static enum quant_simd detected;
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

static void detect_init(void)
{
    enum quant_simd l = cpu_level();
    const char *env = getenv("CINDER_SIMD");
    if (env && *env) {
        for (int i = QUANT_SIMD_SCALAR; i <= QUANT_SIMD_AVX512_VNNI; i++)
            if (strcasecmp(env, quant_simd_name((enum quant_simd)i)) == 0) {
                if ((enum quant_simd)i < l)
                    l = (enum quant_simd)i;
                break;
            }
    }
    detected = l;
}

enum quant_simd quant_simd_detect(void)
{
    pthread_once(&detect_once, detect_init);
    return detected;
}

/* tables[level][type] built once */
#define N_LEVELS 4
static struct quant_kernels tables[N_LEVELS][CND_DTYPE_COUNT];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void tables_init(void)
{
    const enum quant_simd hw = cpu_level();
    for (size_t i = 0; i < ARRAY_SIZE(supported); i++) {
        const enum cnd_dtype t = supported[i];
        for (int l = 0; l < N_LEVELS; l++) {
            struct quant_kernels *k = &tables[l][t];
            quant_ref_fill(t, k);
            /* never hand out kernels the CPU cannot run, whatever level is asked for */
            const int lv = l < (int)hw ? l : (int)hw;
            if (lv >= QUANT_SIMD_AVX2)
                quant_avx2_fill(t, k);
            if (lv >= QUANT_SIMD_AVX512)
                quant_avx512_fill(t, k, lv >= QUANT_SIMD_AVX512_VNNI, cpu_has_bf16());
        }
    }
}

const struct quant_kernels *quant_get_kernels(enum cnd_dtype t, enum quant_simd level)
{
    if (!quant_is_supported(t))
        return NULL;
    pthread_once(&tables_once, tables_init);
    int l = (int)level;
    if (l < 0)
        l = 0;
    if (l >= N_LEVELS)
        l = N_LEVELS - 1;
    return &tables[l][t];
}
