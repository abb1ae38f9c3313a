/* Tunables of the nn kernels, per device: a default per kernel family (measured on PoCL for
 * the CPU family, the usual local-memory tile for GPUs), overridable for experiments with
 * CLEVAL_NN_TUNING="conv_mr=8,conv_nv=2,gemm_kc=256,...". The chosen values are logged at
 * CLEVAL_LOG_INFO and appear in each layer's kernel description. */
#include "nn_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tunable {
    const char *name;
    size_t offset;
    uint32_t min, max;
} tunable;

#define TUNABLE(field, lo, hi)                                                                     \
    {                                                                                              \
#field, offsetof(nn_tuning, field), lo, hi                                                 \
    }
static const tunable TUNABLES[] = {
    TUNABLE(conv_mr, 4, 16),      TUNABLE(conv_nv, 1, 4),       TUNABLE(gemm_mr, 1, 16),
    TUNABLE(gemm_nv, 1, 4),       TUNABLE(gemm_kc, 16, 65536),  TUNABLE(gemm_qb, 1, 4096),
    TUNABLE(gpu_conv_tile, 0, 2), TUNABLE(gpu_gemm_tile, 0, 2), TUNABLE(local_1d, 1, 1024),
    TUNABLE(conv_items, 1, 1024), TUNABLE(winograd, 0, 1),      TUNABLE(gpu_groups, 1, 1024),
    TUNABLE(i8_float, 0, 1),
    TUNABLE(gemm_batch_kib, 64, 1048576),
};

static uint32_t *field(nn_tuning *t, const tunable *u)
{
    return (uint32_t *)((char *)t + u->offset);
}

cleval_status nn_tuning_for(const cleval_device *dev, cleval_kernel_variant variant, nn_tuning *out)
{
    (void)dev;
    /* PoCL on AVX-512 (bench/bench_nn.c): 8 x 32 tiles keep 16 float16 accumulators and beat
     * 4 x 64 for both Conv and Gemm; a 256-deep k-block keeps a 32 KB panel slice in L1. */
    nn_tuning t = {.conv_mr = 8,
                   .conv_nv = 2,
                   .gemm_mr = 8,
                   .gemm_nv = 2,
                   .gemm_kc = 256,
                   .gemm_qb = 64,
                   .local_1d = 256,
                   .conv_items = 8,
                   .winograd = 1,
                   .gpu_groups = 4,
                   .i8_float = 1,
                   .gemm_batch_kib = 16384};
    if (variant == CLEVAL_VARIANT_GPU) t.local_1d = 64;
    const char *env = getenv("CLEVAL_NN_TUNING");
    if (env && *env) {
        char copy[512];
        snprintf(copy, sizeof copy, "%s", env);
        for (char *save, *item = strtok_r(copy, ",", &save); item;
             item = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(item, '=');
            const tunable *u = NULL;
            if (eq) {
                *eq = '\0';
                for (size_t i = 0; i < sizeof TUNABLES / sizeof TUNABLES[0]; i++)
                    if (strcmp(TUNABLES[i].name, item) == 0) u = &TUNABLES[i];
            }
            char *end = NULL;
            long value = eq ? strtol(eq + 1, &end, 10) : -1;
            if (!u || !end || *end || value < (long)u->min || value > (long)u->max)
                return cleval_fail(CLEVAL_ERR_USAGE,
                                   "CLEVAL_NN_TUNING: '%s' is not a known tunable with a value "
                                   "in range",
                                   item);
            *field(&t, u) = (uint32_t)value;
        }
    }
    if (t.conv_mr % 4 != 0)
        return cleval_fail(CLEVAL_ERR_USAGE, "CLEVAL_NN_TUNING: conv_mr must be a multiple of 4");
    if (t.gemm_qb % t.gemm_mr != 0) t.gemm_qb += t.gemm_mr - t.gemm_qb % t.gemm_mr;
    cleval_log(CLEVAL_LOG_INFO,
               "nn tuning (%s): conv %ux%u%s, gemm %ux%u kc=%u qb=%u, gpu tiles conv %u gemm %u, "
               "local %u",
               cleval_variant_name(variant), t.conv_mr, 16 * t.conv_nv,
               t.winograd ? " winograd" : "", t.gemm_mr, 16 * t.gemm_nv, t.gemm_kc, t.gemm_qb,
               t.gpu_conv_tile, t.gpu_gemm_tile, t.local_1d);
    *out = t;
    return CLEVAL_OK;
}
