/* ctest-labels: unit */
/* test_quant.c: the CPU weight kernels.
 *  - scalar dequantization of every type against the original f32 weights of the shared
 *    random-llama-256x4 model (same model, quantized by llama.cpp into every format);
 *  - our reference quantizers: bit-exact with llama.cpp's for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, and a
 *    round-trip error bound for every type;
 *  - the scalar dot products against a double-precision dot of the dequantized rows;
 *  - every SIMD level this CPU has against the scalar oracle, on random blocks with edge cases
 *    (zero blocks, extreme quants, tiny/huge/negative-zero scales, large activations).
 *    Tolerance: |simd - ref| <= 2e-5 * S + 1e-30, S = sum over elements of |activation| times
 *    (|scale part of w| + |min part of w|), i.e. the magnitude of the terms being summed: the
 *    integer parts are exact, so only float reassociation of block sums can differ;
 *  - activation quantization at every level bit-identical to the reference;
 *  - vec_dot_tile bit-identical to vec_dot for every type and every tile shape;
 *  - gemm (where present) bit-identical to vec_dot for every block shape and position, and
 *    gemv (decode) for every row count;
 *  - the x16 (16-row interleaved) kernels: against the scalar oracle with the same bound, every
 *    column computed alone bit-identical to the same column in a batch of 11, row groups
 *    computed separately identical to one call, partial last groups. */
#include "test.h"
#include "cinder/fp16.h"
#include "cinder/gguf.h"
#include "cinder/quant.h"
#include "cinder/quant_x16.h"

#include <stdlib.h>

static const enum cnd_dtype all_types[] = {
    CND_DTYPE_F32,  CND_DTYPE_F16,  CND_DTYPE_BF16, CND_DTYPE_Q8_0, CND_DTYPE_Q4_0,
    CND_DTYPE_Q4_1, CND_DTYPE_Q5_0, CND_DTYPE_Q5_1, CND_DTYPE_Q2_K, CND_DTYPE_Q3_K,
    CND_DTYPE_Q4_K, CND_DTYPE_Q5_K, CND_DTYPE_Q6_K,
};

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static float rndf(void) /* uniform [-1, 1) */
{
    return (float)((double)(rnd() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float rnd_gauss(void)
{
    float s = 0;
    for (int i = 0; i < 4; i++)
        s += rndf();
    return s * 0.8f;
}

/* a "scale" value: mostly ordinary, sometimes an edge case */
static float rnd_scale(void)
{
    switch (rnd() % 16) {
    case 0: return 0.0f;
    case 1: return -0.0f;
    case 2: return 5.9604645e-08f; /* smallest f16 subnormal */
    case 3: return 65504.0f;       /* largest f16 */
    case 4: return -1e-3f;
    default: return rndf() * ldexpf(1.0f, (int)(rnd() % 24) - 16);
    }
}

static void put_h(uint8_t *p, float f)
{
    uint16_t h = fp32_to_fp16(f);
    memcpy(p, &h, 2);
}

/* offsets of the f16 scale fields of one block, -1 terminated */
static const int *scale_offsets(enum cnd_dtype t)
{
    static const int o0[] = {0, -1}, o02[] = {0, 2, -1}, oq2k[] = {80, 82, -1}, oq3k[] = {108, -1},
                     oq6k[] = {208, -1}, none[] = {-1};
    switch (t) {
    case CND_DTYPE_Q4_0:
    case CND_DTYPE_Q5_0:
    case CND_DTYPE_Q8_0: return o0;
    case CND_DTYPE_Q4_1:
    case CND_DTYPE_Q5_1:
    case CND_DTYPE_Q4_K:
    case CND_DTYPE_Q5_K: return o02;
    case CND_DTYPE_Q2_K: return oq2k;
    case CND_DTYPE_Q3_K: return oq3k;
    case CND_DTYPE_Q6_K: return oq6k;
    default: return none;
    }
}

/* offset of the "min" f16 field (zeroed to split w into scale and min parts), or -1 */
static int min_offset(enum cnd_dtype t)
{
    switch (t) {
    case CND_DTYPE_Q4_1:
    case CND_DTYPE_Q5_1:
    case CND_DTYPE_Q4_K:
    case CND_DTYPE_Q5_K: return 2;
    case CND_DTYPE_Q2_K: return 82;
    default: return -1;
    }
}

/* Random weight row of n elements of type t; mode 0 = raw random blocks with edge scales,
 * 1 = quantized from gaussian floats, 2 = edge blocks (zero / all-max quants / all-min). */
static void gen_weights(enum cnd_dtype t, uint8_t *w, int64_t n, int mode)
{
    const int64_t bs = dtype_block_size(t), ts = dtype_type_size(t), nb = n / bs;
    if (t == CND_DTYPE_F32 || t == CND_DTYPE_F16 || t == CND_DTYPE_BF16) {
        float *x = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) {
            x[i] = rnd_gauss();
            if (mode == 2) {
                switch (rnd() % 6) {
                case 0: x[i] = 0.0f; break;
                case 1: x[i] = -0.0f; break;
                case 2: x[i] = 60000.0f; break;
                case 3: x[i] = 1e-7f; break;
                default: break;
                }
            }
        }
        quant_quantize_weights(t, x, w, n);
        free(x);
        return;
    }
    if (mode == 1) {
        float *x = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++)
            x[i] = rnd_gauss() * 0.05f;
        CHECK_EQ_INT(quant_quantize_weights(t, x, w, n), 0);
        free(x);
        return;
    }
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *blk = w + b * ts;
        int kind = mode == 2 ? (int)(rnd() % 4) : 3;
        for (int64_t i = 0; i < ts; i++)
            blk[i] = kind == 0 ? 0 : kind == 1 ? 0xFF : kind == 2 ? 0x80 : (uint8_t)rnd();
        for (const int *o = scale_offsets(t); *o >= 0; o++)
            put_h(blk + *o, kind == 0 ? 0.0f : rnd_scale());
    }
}

/* Activation row of n floats: gaussian with occasional large values and zero blocks. */
static void gen_act_floats(float *x, int64_t n, int mode, enum cnd_dtype at)
{
    /* F16 saturates at 65504 and Q8_1's s = d * sum(q) is stored in f16 too */
    const float big = (at == CND_DTYPE_F16 || at == CND_DTYPE_Q8_1) ? 1e3f : 1e6f;
    for (int64_t i = 0; i < n; i++)
        x[i] = rnd_gauss();
    if (mode >= 1)
        for (int64_t i = 0; i < n; i++)
            if (rnd() % 50 == 0)
                x[i] = rndf() * big;
    if (mode >= 2) {
        for (int64_t i = 0; i < 32 && i < n; i++)
            x[i] = 0.0f;
        for (int64_t i = 256; i < 512 && i < n; i++)
            x[i] = -0.0f;
    }
}

/* Raw random Q8 activation blocks (values -128..127) with consistent s / bsums. */
static void gen_act_raw(enum cnd_dtype at, uint8_t *a, int64_t n)
{
    const int64_t bs = dtype_block_size(at), ts = dtype_type_size(at);
    for (int64_t b = 0; b < n / bs; b++) {
        uint8_t *blk = a + b * ts;
        int kind = (int)(rnd() % 4);
        if (at == CND_DTYPE_Q8_K) {
            float d = rndf() * 0.01f;
            memcpy(blk, &d, 4);
            int s16[16] = {0};
            for (int j = 0; j < 256; j++) {
                int8_t v = kind == 0 ? -128 : kind == 1 ? 127 : (int8_t)rnd();
                blk[4 + j] = (uint8_t)v;
                s16[j / 16] += v;
            }
            for (int g = 0; g < 16; g++) {
                int16_t v = (int16_t)s16[g];
                memcpy(blk + 260 + 2 * g, &v, 2);
            }
        } else {
            const int qo = at == CND_DTYPE_Q8_1 ? 4 : 2;
            float d = rnd_scale();
            if (at == CND_DTYPE_Q8_1 && fabsf(d) > 10.0f)
                d = 10.0f;
            put_h(blk, d);
            d = fp16_to_fp32(fp32_to_fp16(d));
            int sum = 0;
            for (int j = 0; j < 32; j++) {
                int8_t v = kind == 0 ? -128 : kind == 1 ? 127 : (int8_t)rnd();
                blk[qo + j] = (uint8_t)v;
                sum += v;
            }
            if (at == CND_DTYPE_Q8_1)
                put_h(blk + 2, (float)sum * d);
        }
    }
}

static double rel_rms(const float *a, const float *ref, int64_t n)
{
    double e = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        r += (double)ref[i] * ref[i];
    }
    return r > 0 ? sqrt(e / r) : sqrt(e);
}

/* ---------------------------------------------------------------------------------------- */

static double max_err_for(const char *name)
{
    if (!strcmp(name, "f16"))
        return 1e-3;
    if (!strcmp(name, "bf16"))
        return 8e-3;
    if (!strcmp(name, "q8_0"))
        return 0.01;
    if (!strcmp(name, "q6_k"))
        return 0.03;
    if (!strcmp(name, "q5_0") || !strcmp(name, "q5_1") || !strcmp(name, "q5_k_m"))
        return 0.06;
    if (!strcmp(name, "q4_0") || !strcmp(name, "q4_1") || !strcmp(name, "q4_k_m"))
        return 0.12;
    if (!strcmp(name, "q3_k_m"))
        return 0.25;
    return 0.5; /* q2_k */
}

static void test_dequant_gguf(void)
{
    static const char *names[] = {"f16",    "bf16", "q8_0", "q6_k",   "q5_1",   "q5_0",
                                  "q5_k_m", "q4_1", "q4_0", "q4_k_m", "q3_k_m", "q2_k"};
    char err[512], path[1024];
    snprintf(path, sizeof(path), "%s/models/random-llama-256x4-f32.gguf", CND_SHARED_DIR);
    struct gguf_file *ref = gguf_open(path, err);
    if (!ref) {
        printf("skip test_dequant_gguf: %s\n", err);
        return;
    }
    double prev = 0;
    for (size_t f = 0; f < ARRAY_SIZE(names); f++) {
        snprintf(path, sizeof(path), "%s/models/random-llama-256x4-%s.gguf", CND_SHARED_DIR,
                 names[f]);
        struct gguf_file *g = gguf_open(path, err);
        CHECK_MSG(g != NULL, "%s", err);
        if (!g)
            continue;
        double worst = 0, e2 = 0, r2 = 0;
        int n_checked = 0, n_types[CND_DTYPE_COUNT] = {0};
        int exact_ok = 0, exact_n = 0;
        for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
            const struct gguf_tensor_info *ti = gguf_tensor(g, i);
            const struct gguf_tensor_info *tr = gguf_find_tensor(ref, ti->name);
            CHECK(tr != NULL && tr->type == CND_DTYPE_F32);
            if (!tr)
                continue;
            int64_t n = 1;
            for (int d = 0; d < CND_MAX_DIMS; d++) {
                CHECK_EQ_INT(ti->ne[d], tr->ne[d]);
                n *= ti->ne[d];
            }
            CHECK(quant_is_supported(ti->type));
            if (!quant_is_supported(ti->type) || ti->type == CND_DTYPE_F32)
                continue;
            n_types[ti->type]++;
            float *y = malloc(sizeof(float) * (size_t)n);
            quant_dequantize_row_ref(ti->type, ti->data, y, n);
            const float *x = tr->data;
            double e = 0, r = 0;
            for (int64_t j = 0; j < n; j++) {
                e += ((double)y[j] - x[j]) * ((double)y[j] - x[j]);
                r += (double)x[j] * x[j];
            }
            e2 += e;
            r2 += r;
            const double rel = sqrt(e / r);
            if (rel > worst)
                worst = rel;
            /* the legacy formats are quantized by llama.cpp with the same rounding rules as
             * our reference quantizer: expect the same bytes */
            if (ti->type == CND_DTYPE_Q4_0 || ti->type == CND_DTYPE_Q4_1 ||
                ti->type == CND_DTYPE_Q5_0 || ti->type == CND_DTYPE_Q5_1 ||
                ti->type == CND_DTYPE_Q8_0 || ti->type == CND_DTYPE_F16 ||
                ti->type == CND_DTYPE_BF16) {
                const size_t sz = dtype_row_size(ti->type, n);
                uint8_t *q = malloc(sz);
                quant_quantize_weights(ti->type, x, q, n);
                exact_n++;
                exact_ok += memcmp(q, ti->data, sz) == 0;
                free(q);
            }
            free(y);
            n_checked++;
        }
        const double tot = sqrt(e2 / r2);
        printf("  %-7s %2d tensors: rel rms %.5f (worst tensor %.5f); types:", names[f], n_checked,
               tot, worst);
        for (int t = 0; t < CND_DTYPE_COUNT; t++)
            if (n_types[t])
                printf(" %s x%d", dtype_name((enum cnd_dtype)t), n_types[t]);
        if (exact_n)
            printf("; requantized bit-exact %d/%d", exact_ok, exact_n);
        printf("\n");
        CHECK(n_checked > 0);
        CHECK_MSG(worst < max_err_for(names[f]), "%s worst %g", names[f], worst);
        CHECK_EQ_INT(exact_ok, exact_n);
        /* error grows as bits shrink (files are listed from most to fewest bits) */
        if (f > 2)
            CHECK_MSG(tot >= prev * 0.7, "%s: %g after %g", names[f], tot, prev);
        prev = tot;
        gguf_close(g);
    }
    gguf_close(ref);
}

static void test_quantize_roundtrip(void)
{
    const int64_t n = 4096;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    uint8_t *q = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        x[i] = rnd_gauss() * (i % 512 < 256 ? 1.0f : 0.01f);
    for (size_t ti = 0; ti < ARRAY_SIZE(all_types); ti++) {
        const enum cnd_dtype t = all_types[ti];
        CHECK_EQ_INT(quant_quantize_weights(t, x, q, n), 0);
        quant_dequantize_row_ref(t, q, y, n);
        const double e = rel_rms(y, x, n);
        double lim = 0.35;
        switch (t) {
        case CND_DTYPE_F32: lim = 0; break;
        case CND_DTYPE_F16: lim = 1e-3; break;
        case CND_DTYPE_BF16: lim = 8e-3; break;
        case CND_DTYPE_Q8_0: lim = 0.01; break;
        case CND_DTYPE_Q6_K: lim = 0.03; break;
        case CND_DTYPE_Q5_0:
        case CND_DTYPE_Q5_1:
        case CND_DTYPE_Q5_K: lim = 0.07; break;
        case CND_DTYPE_Q4_0:
        case CND_DTYPE_Q4_1:
        case CND_DTYPE_Q4_K: lim = 0.14; break;
        case CND_DTYPE_Q3_K: lim = 0.3; break;
        default: lim = 0.6; break;
        }
        CHECK_MSG(e <= lim, "%s: rel rms %g > %g", dtype_name(t), e, lim);
    }
    /* all-zero input quantizes to something that dequantizes to exact zeros */
    memset(x, 0, sizeof(float) * n);
    for (size_t ti = 0; ti < ARRAY_SIZE(all_types); ti++) {
        quant_quantize_weights(all_types[ti], x, q, n);
        quant_dequantize_row_ref(all_types[ti], q, y, n);
        for (int64_t i = 0; i < n; i++)
            CHECK_MSG(y[i] == 0.0f, "%s", dtype_name(all_types[ti]));
    }
    CHECK(quant_quantize_weights(CND_DTYPE_IQ2_XS, x, q, n) < 0);
    free(x);
    free(y);
    free(q);
}

static void test_act_quant_ref(void)
{
    const int64_t n = 1024;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    uint8_t *q = malloc((size_t)n * 4);
    gen_act_floats(x, n, 0, CND_DTYPE_F32);
    /* Q8_0: hand-checked block */
    {
        float b[32];
        for (int i = 0; i < 32; i++)
            b[i] = (float)(i - 16) * 0.25f;
        b[5] = 127.0f * 0.5f / 16.0f * 4.0f; /* = 15.875 -> amax, maps to 127 */
        uint8_t o[34];
        quant_quantize_row_ref(CND_DTYPE_Q8_0, b, o, 32);
        CHECK_EQ_INT((int8_t)o[2 + 5], 127);
        CHECK_EQ_INT((int8_t)o[2 + 0], -32); /* -4 / (15.875/127) = -32 */
    }
    const enum cnd_dtype acts[] = {CND_DTYPE_Q8_0, CND_DTYPE_Q8_1, CND_DTYPE_Q8_K,
                                   CND_DTYPE_F16,  CND_DTYPE_BF16, CND_DTYPE_F32};
    for (size_t i = 0; i < ARRAY_SIZE(acts); i++) {
        quant_quantize_row_ref(acts[i], x, q, n);
        quant_dequantize_row_ref(acts[i], q, y, n);
        CHECK_MSG(rel_rms(y, x, n) < 0.01, "%s", dtype_name(acts[i]));
    }
    /* Q8_K: bsums, d = 1/iscale, max maps to -127 */
    quant_quantize_row_ref(CND_DTYPE_Q8_K, x, q, n);
    for (int b = 0; b < n / 256; b++) {
        const uint8_t *blk = q + b * 292;
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++)
                s += (int8_t)blk[4 + g * 16 + j];
            int16_t bs;
            memcpy(&bs, blk + 260 + 2 * g, 2);
            CHECK_EQ_INT(bs, s);
        }
    }
    /* Q8_1: s = d * sum(q) */
    quant_quantize_row_ref(CND_DTYPE_Q8_1, x, q, n);
    for (int b = 0; b < n / 32; b++) {
        const uint8_t *blk = q + b * 36;
        int s = 0;
        for (int j = 0; j < 32; j++)
            s += (int8_t)blk[4 + j];
        uint16_t hd, hs;
        memcpy(&hd, blk, 2);
        memcpy(&hs, blk + 2, 2);
        CHECK_NEAR(fp16_to_fp32(hs), (double)s * fp16_to_fp32(hd),
                   1e-3 * fabs((double)s * fp16_to_fp32(hd)) + 1e-6);
    }
    free(x);
    free(y);
    free(q);
}

/* S: magnitude of the summed terms (see the top comment) */
static double term_magnitude(enum cnd_dtype t, const uint8_t *w, const uint8_t *a, int64_t n)
{
    const enum cnd_dtype at = quant_vec_dot_type(t);
    float *wf = malloc(sizeof(float) * n), *w0 = malloc(sizeof(float) * n);
    float *af = malloc(sizeof(float) * n);
    quant_dequantize_row_ref(t, w, wf, n);
    quant_dequantize_row_ref(at, a, af, n);
    const int mo = min_offset(t);
    if (mo >= 0) {
        const size_t sz = dtype_row_size(t, n);
        const int64_t ts = dtype_type_size(t);
        uint8_t *wz = malloc(sz);
        memcpy(wz, w, sz);
        for (size_t o = 0; o < sz; o += (size_t)ts)
            wz[o + (size_t)mo] = wz[o + (size_t)mo + 1] = 0;
        quant_dequantize_row_ref(t, wz, w0, n);
        free(wz);
    } else {
        memcpy(w0, wf, sizeof(float) * n);
    }
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (fabs((double)w0[i]) + fabs((double)wf[i] - w0[i])) * fabs((double)af[i]);
    free(wf);
    free(w0);
    free(af);
    return s;
}

/* Reference dot against a double-precision dot of the dequantized rows. */
static void test_ref_dot_vs_dequant(void)
{
    const int64_t n = 1024;
    float *x = malloc(sizeof(float) * n), *wf = malloc(sizeof(float) * n);
    float *af = malloc(sizeof(float) * n);
    uint8_t *w = malloc((size_t)n * 4), *a = malloc((size_t)n * 4 + 64);
    for (size_t ti = 0; ti < ARRAY_SIZE(all_types); ti++) {
        const enum cnd_dtype t = all_types[ti], at = quant_vec_dot_type(t);
        for (int rep = 0; rep < 20; rep++) {
            gen_weights(t, w, n, rep % 3);
            gen_act_floats(x, n, rep % 3, at);
            quant_quantize_row_ref(at, x, a, n);
            quant_dequantize_row_ref(t, w, wf, n);
            quant_dequantize_row_ref(at, a, af, n);
            double exact = 0;
            for (int64_t i = 0; i < n; i++)
                exact += (double)wf[i] * af[i];
            const double got = quant_vec_dot_ref(t, n, w, a);
            /* dequantized values carry one float rounding each; Q8_1's s is stored in f16 */
            const double S = term_magnitude(t, w, a, n);
            const double tol = (at == CND_DTYPE_Q8_1 ? 2e-3 : 1e-4) * S + 1e-30;
            CHECK_MSG(fabs(got - exact) <= tol, "%s rep %d: %.9g vs %.9g (S %g)", dtype_name(t),
                      rep, got, exact, S);
        }
    }
    free(x);
    free(wf);
    free(af);
    free(w);
    free(a);
}

static void test_simd_levels(void)
{
    const enum quant_simd top = quant_simd_detect();
    printf("  detected SIMD level: %s\n", quant_simd_name(top));
    const int64_t sizes[] = {256, 1024, 4096};
    const int R = QUANT_TILE_MAX, C = QUANT_TILE_MAX;
    float *x = malloc(sizeof(float) * 4096 * C);
    for (size_t ti = 0; ti < ARRAY_SIZE(all_types); ti++) {
        const enum cnd_dtype t = all_types[ti], at = quant_vec_dot_type(t);
        const struct quant_kernels *kref = quant_get_kernels(t, QUANT_SIMD_SCALAR);
        CHECK(kref && kref->type == t && kref->vec_dot_type == at);
        for (int lv = QUANT_SIMD_SCALAR; lv <= (int)top; lv++) {
            const struct quant_kernels *k = quant_get_kernels(t, (enum quant_simd)lv);
            CHECK(k && k->vec_dot && k->vec_dot_tile && k->quantize_act && k->dequantize);
            double worst = 0;
            int tile_bad = 0, quant_bad = 0;
            for (size_t si = 0; si < ARRAY_SIZE(sizes); si++) {
                const int64_t n = sizes[si];
                /* rows/cols with odd padding so kernels see unaligned rows */
                const size_t ws = dtype_row_size(t, n) + 3, as = dtype_row_size(at, n) + 5;
                uint8_t *w = malloc(ws * R + 1), *a = malloc(as * C + 1), *a2 = malloc(as + 1);
                uint8_t *wu = w + 1, *au = a + 1;
                for (int rep = 0; rep < 6; rep++) {
                    for (int r = 0; r < R; r++)
                        gen_weights(t, wu + r * ws, n, (rep + r) % 3);
                    for (int c = 0; c < C; c++) {
                        if (rep % 3 == 2 && at != CND_DTYPE_F32 && at != CND_DTYPE_F16 &&
                            at != CND_DTYPE_BF16) {
                            gen_act_raw(at, au + c * as, n);
                            continue;
                        }
                        gen_act_floats(x + c * n, n, (rep + c) % 3, at);
                        k->quantize_act(x + c * n, au + c * as, n);
                        quant_quantize_row_ref(at, x + c * n, a2, n);
                        if (memcmp(a2, au + c * as, dtype_row_size(at, n)) != 0)
                            quant_bad++;
                    }
                    float single[QUANT_TILE_MAX][QUANT_TILE_MAX];
                    for (int r = 0; r < R; r++)
                        for (int c = 0; c < C; c++) {
                            const uint8_t *wr = wu + r * ws, *ac = au + c * as;
                            const float ref = quant_vec_dot_ref(t, n, wr, ac);
                            const float got = k->vec_dot(n, wr, ac);
                            single[r][c] = got;
                            const double S = term_magnitude(t, wr, ac, n);
                            const double err = fabs((double)got - ref);
                            if (S > 0 && err / S > worst)
                                worst = err / S;
                            CHECK_MSG(err <= 2e-5 * S + 1e-30,
                                      "%s %s n=%lld rep %d: %.9g vs ref %.9g (S %g)", dtype_name(t),
                                      quant_simd_name((enum quant_simd)lv), (long long)n, rep, got,
                                      ref, S);
                        }
                    /* every tile shape and position: bit-identical to vec_dot */
                    for (int nr = 1; nr <= R; nr++)
                        for (int nc = 1; nc <= C; nc++)
                            for (int r0 = 0; r0 + nr <= R; r0 += nr)
                                for (int c0 = 0; c0 + nc <= C; c0 += nc) {
                                    float out[QUANT_TILE_MAX * 7];
                                    const size_t os = 7;
                                    k->vec_dot_tile(n, wu + r0 * ws, ws, nr, au + c0 * as, as, nc,
                                                    out, os);
                                    for (int r = 0; r < nr; r++)
                                        for (int c = 0; c < nc; c++)
                                            if (memcmp(&out[r * os + c], &single[r0 + r][c0 + c],
                                                       4) != 0)
                                                tile_bad++;
                                }
                }
                free(w);
                free(a);
                free(a2);
            }
            CHECK_MSG(tile_bad == 0, "%s %s: %d tile outputs differ from vec_dot", dtype_name(t),
                      quant_simd_name((enum quant_simd)lv), tile_bad);
            CHECK_MSG(quant_bad == 0, "%s %s: %d activation rows differ from the reference",
                      dtype_name(t), quant_simd_name((enum quant_simd)lv), quant_bad);
            if (lv > 0)
                printf("  %-5s %-11s max |simd-ref|/S = %.2e\n", dtype_name(t),
                       quant_simd_name((enum quant_simd)lv), worst);
        }
    }
    free(x);
}

/* Activation quantization of every level on edge inputs: bit-identical with the reference. */
static void test_act_quant_levels(void)
{
    const enum quant_simd top = quant_simd_detect();
    const int64_t n = 2048;
    float *x = malloc(sizeof(float) * n);
    uint8_t *q = malloc((size_t)n * 4 + 8), *r = malloc((size_t)n * 4 + 8);
    const enum cnd_dtype types[] = {CND_DTYPE_Q8_0, CND_DTYPE_Q4_1, CND_DTYPE_Q4_K,
                                    CND_DTYPE_F16,  CND_DTYPE_BF16, CND_DTYPE_F32};
    for (int rep = 0; rep < 40; rep++) {
        for (int64_t i = 0; i < n; i++) {
            x[i] = rnd_gauss() * ldexpf(1.0f, (int)(rnd() % 40) - 20);
            if (rep % 4 == 1) /* exact halves: rounding ties */
                x[i] = (float)((int)(rnd() % 255) - 127) * 0.5f;
        }
        if (rep % 4 == 2)
            for (int64_t i = 0; i < 300; i++)
                x[i] = (i & 1) ? -0.0f : 0.0f;
        if (rep % 4 == 3) { /* one block where the max is negative and another with ties */
            x[3] = -1000.0f;
            x[300] = 127.0f;
            for (int i = 301; i < 330; i++)
                x[i] = (float)(i - 315) + 0.5f;
        }
        for (size_t ti = 0; ti < ARRAY_SIZE(types); ti++) {
            const enum cnd_dtype at = quant_vec_dot_type(types[ti]);
            quant_quantize_row_ref(at, x, r, n);
            for (int lv = 1; lv <= (int)top; lv++) {
                const struct quant_kernels *k = quant_get_kernels(types[ti], (enum quant_simd)lv);
                k->quantize_act(x, q + 1, n);
                CHECK_MSG(memcmp(q + 1, r, dtype_row_size(at, n)) == 0, "%s at %s rep %d",
                          dtype_name(at), quant_simd_name((enum quant_simd)lv), rep);
            }
        }
    }
    free(x);
    free(q);
    free(r);
}

static void test_tables(void)
{
    CHECK(quant_get_kernels(CND_DTYPE_IQ2_XS, QUANT_SIMD_SCALAR) == NULL);
    CHECK(quant_get_kernels(CND_DTYPE_Q8_K, QUANT_SIMD_SCALAR) == NULL);
    CHECK(!quant_is_supported(CND_DTYPE_Q8_1));
    CHECK_EQ_INT(quant_vec_dot_type(CND_DTYPE_Q4_0), CND_DTYPE_Q8_0);
    CHECK_EQ_INT(quant_vec_dot_type(CND_DTYPE_Q5_1), CND_DTYPE_Q8_1);
    CHECK_EQ_INT(quant_vec_dot_type(CND_DTYPE_Q3_K), CND_DTYPE_Q8_K);
    CHECK_EQ_INT(quant_vec_dot_type(CND_DTYPE_BF16), CND_DTYPE_BF16);
    CHECK_STR(quant_simd_name(QUANT_SIMD_AVX512_VNNI), "avx512_vnni");
    for (size_t i = 0; i < ARRAY_SIZE(all_types); i++) {
        CHECK(quant_is_supported(all_types[i]));
        const struct quant_kernels *k = quant_get_kernels(all_types[i], QUANT_SIMD_AVX512_VNNI);
        CHECK(k != NULL && k->type == all_types[i]);
    }
}

/* gemm (where a table has one): every block shape and position, with odd row counts, several
 * column blocks and partial weight groups, bit-identical to vec_dot; out laid out [col][row]
 * like the CPU backend's matmul. The same for the prompt-pass order (gemm_pp vs vec_dot_pp),
 * whose dots must also agree with the scalar oracle. */
static void test_gemm(void)
{
    enum { GR = 11, GC = 14 };
    const enum quant_simd top = quant_simd_detect();
    for (size_t ti = 0; ti < ARRAY_SIZE(all_types); ti++) {
        const enum cnd_dtype t = all_types[ti], at = quant_vec_dot_type(t);
        for (int lv = QUANT_SIMD_SCALAR; lv <= (int)top; lv++)
            for (int order = 0; order < 2; order++) {
                const struct quant_kernels *k = quant_get_kernels(t, (enum quant_simd)lv);
                const quant_gemm_fn gemm = order ? k->gemm_pp : k->gemm;
                const quant_vec_dot_fn dot = order ? k->vec_dot_pp : k->vec_dot;
                if (!gemm)
                    continue;
                CHECK(dot != NULL && (order == 0 || k->pp_align > 0));
                const int64_t bs = dtype_block_size(t);
                const int64_t sizes[] = {bs == 256 ? 256 : 32 * 7, bs == 256 ? 768 : 32 * 13,
                                         bs == 256 ? 2816 : 2816};
                int bad = 0;
                for (size_t si = 0; si < ARRAY_SIZE(sizes); si++) {
                    const int64_t n = sizes[si];
                    const size_t ws = dtype_row_size(t, n) + 3, as = dtype_row_size(at, n) + 5;
                    uint8_t *w = malloc(ws * GR + 1), *a = malloc(as * GC + 1);
                    float *x = malloc(sizeof(float) * (size_t)n);
                    uint8_t *wu = w + 1, *au = a + 1;
                    for (int r = 0; r < GR; r++)
                        gen_weights(t, wu + r * ws, n, r % 3);
                    for (int c = 0; c < GC; c++) {
                        gen_act_floats(x, n, c % 3, at);
                        k->quantize_act(x, au + c * as, n);
                    }
                    float single[GR][GC], out[GR * GC];
                    for (int r = 0; r < GR; r++)
                        for (int c = 0; c < GC; c++) {
                            single[r][c] = dot(n, wu + r * ws, au + c * as);
                            if (order == 1) {
                                const double S = term_magnitude(t, wu + r * ws, au + c * as, n);
                                const double ref =
                                    quant_vec_dot_ref(t, n, wu + r * ws, au + c * as);
                                CHECK_MSG(fabs(single[r][c] - ref) <= 2e-5 * S + 1e-30,
                                          "%s pp n=%lld: %.9g vs ref %.9g", dtype_name(t),
                                          (long long)n, single[r][c], ref);
                            }
                        }
                    const int shapes[][2] = {{GR, GC}, {1, 1},  {4, 1}, {5, 3},
                                             {9, 7},   {3, 13}, {8, 6}};
                    for (size_t sh = 0; sh < ARRAY_SIZE(shapes); sh++) {
                        const int nr = shapes[sh][0], nc = shapes[sh][1];
                        for (int r0 = 0; r0 + nr <= GR; r0 += nr > 1 ? nr : 5)
                            for (int c0 = 0; c0 + nc <= GC; c0 += nc > 1 ? nc : 6) {
                                gemm(n, wu + r0 * ws, ws, nr, au + c0 * as, as, nc, out, 1,
                                     (size_t)nr);
                                for (int r = 0; r < nr; r++)
                                    for (int c = 0; c < nc; c++)
                                        if (memcmp(&out[c * nr + r], &single[r0 + r][c0 + c], 4) !=
                                            0)
                                            bad++;
                            }
                    }
                    /* gemv (decode's 4-stream order): every row count, so every split of the
                     * rows into quarters plus a remainder, against the same single dots */
                    if (order == 0 && k->gemv)
                        for (int nr = 1; nr <= GR; nr++)
                            for (int c = 0; c < GC; c += 5) {
                                k->gemv(n, wu, ws, nr, au + c * as, out);
                                for (int r = 0; r < nr; r++)
                                    if (memcmp(&out[r], &single[r][c], 4) != 0)
                                        bad++;
                            }
                    free(w);
                    free(a);
                    free(x);
                }
                CHECK_MSG(bad == 0, "%s %s%s: %d gemm outputs differ from vec_dot", dtype_name(t),
                          quant_simd_name((enum quant_simd)lv), order ? " (pp)" : "", bad);
            }
    }
}

static void test_x16(void)
{
    enum { NR = 37, NC = 11 }; /* 3 groups, the last one partial; columns: a tile of 8 + 3 */
    static const enum cnd_dtype types[] = {CND_DTYPE_Q4_0, CND_DTYPE_Q8_0, CND_DTYPE_Q4_K,
                                           CND_DTYPE_Q5_K, CND_DTYPE_Q6_K};
    if (!quant_x16_supported(CND_DTYPE_Q4_0)) {
        printf("  (x16 kernels need AVX-512 VNNI: not tested on this CPU)\n");
        return;
    }
    for (size_t ti = 0; ti < ARRAY_SIZE(types); ti++) {
        const enum cnd_dtype t = types[ti], at = quant_vec_dot_type(t);
        const struct quant_kernels *k = quant_get_kernels(t, quant_simd_detect());
        const int64_t bs = dtype_block_size(t);
        const int64_t sizes[] = {bs == 256 ? 256 : 32 * 3, bs == 256 ? 768 : 32 * 13};
        int bad_ref = 0, bad_col = 0, bad_grp = 0;
        double worst = 0;
        for (size_t si = 0; si < ARRAY_SIZE(sizes); si++) {
            const int64_t n = sizes[si];
            const size_t ws = dtype_row_size(t, n), as = dtype_row_size(at, n);
            uint8_t *w = malloc(ws * NR), *a = malloc(as * NC);
            float *x = malloc(sizeof(float) * (size_t)n);
            for (int r = 0; r < NR; r++)
                gen_weights(t, w + r * ws, n, r % 3);
            for (int c = 0; c < NC; c++) {
                if (c == NC - 1) {
                    gen_act_raw(at, a + c * as, n);
                    continue;
                }
                gen_act_floats(x, n, c % 3, at);
                k->quantize_act(x, a + c * as, n);
            }
            const size_t pb = quant_x16_size(t, n, NR), aw = quant_x16_aux_words(t, n);
            /* Q4_K and Q5_K store their 12 bytes of 6-bit scales as 16 */
            const bool k45 = t == CND_DTYPE_Q4_K || t == CND_DTYPE_Q5_K;
            CHECK(pb ==
                  (size_t)((NR + 15) / 16 * 16) * ws + (k45 ? 4u * (size_t)(n / 256) * 48 : 0));
            uint8_t *packed = malloc(pb);
            int32_t *aux = malloc(sizeof(int32_t) * aw * NC);
            quant_x16_pack(t, n, NR, w, ws, 0, (NR + 15) / 16, packed);
            quant_x16_prepare(t, n, a, as, 0, NC, aux);
            float all[NC][NR + 3], one[NR], grp[NC][NR];
            quant_x16_gemm(t, n, NR, packed, 0, (NR + 15) / 16, a, as, aux, NC, &all[0][0], NR + 3);
            for (int r = 0; r < NR; r++)
                for (int c = 0; c < NC; c++) {
                    const double ref = quant_vec_dot_ref(t, n, w + r * ws, a + c * as);
                    const double tol = 2e-5 * term_magnitude(t, w + r * ws, a + c * as, n) + 1e-30;
                    const double e = fabs((double)all[c][r] - ref);
                    if (!(e <= tol))
                        bad_ref++;
                    if (tol > 1e-30 && e / tol > worst)
                        worst = e / tol;
                }
            for (int c = 0; c < NC; c++) { /* one column alone, from its own aux and act row */
                quant_x16_gemm(t, n, NR, packed, 0, (NR + 15) / 16, a + c * as, as, aux + c * aw, 1,
                               one, NR);
                bad_col += memcmp(one, all[c], sizeof(float) * NR) != 0;
            }
            for (int g = 0; g < (NR + 15) / 16; g++) /* group by group */
                quant_x16_gemm(t, n, NR, packed, g, g + 1, a, as, aux, NC, &grp[0][0], NR);
            for (int c = 0; c < NC; c++)
                bad_grp += memcmp(grp[c], all[c], sizeof(float) * NR) != 0;
            free(packed);
            free(aux);
            free(w);
            free(a);
            free(x);
        }
        printf("  x16 %-5s worst |err| / bound %.3f\n", dtype_name(t), worst);
        CHECK_MSG(bad_ref == 0, "x16 %s: %d outputs off the oracle", dtype_name(t), bad_ref);
        CHECK_MSG(bad_col == 0, "x16 %s: %d columns differ alone vs batched", dtype_name(t),
                  bad_col);
        CHECK_MSG(bad_grp == 0, "x16 %s: %d columns differ group by group", dtype_name(t), bad_grp);
    }
}

int main(void)
{
    RUN(test_tables);
    RUN(test_dequant_gguf);
    RUN(test_quantize_roundtrip);
    RUN(test_act_quant_ref);
    RUN(test_ref_dot_vs_dequant);
    RUN(test_act_quant_levels);
    RUN(test_simd_levels);
    RUN(test_gemm);
    RUN(test_x16);
    return test_summary();
}
