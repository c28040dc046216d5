/* tensor.c: the element-type table (block sizes and bytes per block of every GGML type), so
 * any GGUF can be sized and inspected even where we have no kernels for its types. */
#include "cinder/tensor.h"
#include "cinder/status.h"

#include <strings.h>

struct dtype_traits {
    const char *name;
    int64_t block_size;
    int64_t type_size;
};

static const struct dtype_traits dtype_table[CND_DTYPE_COUNT] = {
    [CND_DTYPE_F32] = {"f32", 1, 4},
    [CND_DTYPE_F16] = {"f16", 1, 2},
    [CND_DTYPE_Q4_0] = {"q4_0", 32, 18},
    [CND_DTYPE_Q4_1] = {"q4_1", 32, 20},
    [CND_DTYPE_Q5_0] = {"q5_0", 32, 22},
    [CND_DTYPE_Q5_1] = {"q5_1", 32, 24},
    [CND_DTYPE_Q8_0] = {"q8_0", 32, 34},
    [CND_DTYPE_Q8_1] = {"q8_1", 32, 36},
    [CND_DTYPE_Q2_K] = {"q2_K", 256, 84},
    [CND_DTYPE_Q3_K] = {"q3_K", 256, 110},
    [CND_DTYPE_Q4_K] = {"q4_K", 256, 144},
    [CND_DTYPE_Q5_K] = {"q5_K", 256, 176},
    [CND_DTYPE_Q6_K] = {"q6_K", 256, 210},
    [CND_DTYPE_Q8_K] = {"q8_K", 256, 292},
    [CND_DTYPE_IQ2_XXS] = {"iq2_xxs", 256, 66},
    [CND_DTYPE_IQ2_XS] = {"iq2_xs", 256, 74},
    [CND_DTYPE_IQ3_XXS] = {"iq3_xxs", 256, 98},
    [CND_DTYPE_IQ1_S] = {"iq1_s", 256, 50},
    [CND_DTYPE_IQ4_NL] = {"iq4_nl", 32, 18},
    [CND_DTYPE_IQ3_S] = {"iq3_s", 256, 110},
    [CND_DTYPE_IQ2_S] = {"iq2_s", 256, 82},
    [CND_DTYPE_IQ4_XS] = {"iq4_xs", 256, 136},
    [CND_DTYPE_I8] = {"i8", 1, 1},
    [CND_DTYPE_I16] = {"i16", 1, 2},
    [CND_DTYPE_I32] = {"i32", 1, 4},
    [CND_DTYPE_I64] = {"i64", 1, 8},
    [CND_DTYPE_F64] = {"f64", 1, 8},
    [CND_DTYPE_IQ1_M] = {"iq1_m", 256, 56},
    [CND_DTYPE_BF16] = {"bf16", 1, 2},
    [CND_DTYPE_TQ1_0] = {"tq1_0", 256, 54},
    [CND_DTYPE_TQ2_0] = {"tq2_0", 256, 66},
    [CND_DTYPE_MXFP4] = {"mxfp4", 32, 17},
};

bool dtype_is_valid(uint32_t type)
{
    return type < CND_DTYPE_COUNT && dtype_table[type].name != NULL;
}

const char *dtype_name(enum cnd_dtype type)
{
    return dtype_is_valid(type) ? dtype_table[type].name : "invalid";
}

int dtype_from_name(const char *name, enum cnd_dtype *out)
{
    for (uint32_t t = 0; name && t < CND_DTYPE_COUNT; t++) {
        if (dtype_table[t].name && strcasecmp(name, dtype_table[t].name) == 0) {
            *out = (enum cnd_dtype)t;
            return 0;
        }
    }
    return CND_EINVAL;
}

int64_t dtype_block_size(enum cnd_dtype type)
{
    return dtype_is_valid(type) ? dtype_table[type].block_size : 1;
}

int64_t dtype_type_size(enum cnd_dtype type)
{
    return dtype_is_valid(type) ? dtype_table[type].type_size : 0;
}
