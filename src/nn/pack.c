/* Weight packing shared by Conv and Gemm/MatMul: the register tile of the CPU-style
 * microkernels (conv_cpu, gemm_cpu), constant B matrices packed into k-major panels of 16 * NV
 * columns, per-column vectors padded to whole panels, and the int8 codes of weights. */
#include "nn_internal.h"

#include <assert.h>
#include <stdlib.h>

void nn_choose_tile(uint32_t n_cols, uint32_t tuned_mr, uint32_t tuned_nv, uint32_t *mr,
                    uint32_t *nv)
{
    uint32_t need = (n_cols + 15) / 16;
    *nv = need < tuned_nv ? (need ? need : 1) : tuned_nv;
    *mr = tuned_mr;
}

int64_t nn_panel_count(int64_t n, uint32_t nv)
{
    int64_t nr = 16 * (int64_t)nv;
    return (n + nr - 1) / nr;
}

float *nn_pack_panels(const float *b, int64_t count, int64_t bs, int64_t k, int64_t n, int64_t ks,
                      int64_t ns, uint32_t nv)
{
    assert(nv >= 1 && count >= 0 && k >= 0 && n >= 0);
    int64_t nr = 16 * (int64_t)nv, panels = nn_panel_count(n, nv);
    size_t per = (size_t)(panels * k * nr), total = per * (size_t)count;
    float *out = calloc(total ? total : 1, sizeof *out);
    if (!out) return NULL;
    for (int64_t i = 0; i < count; i++) {
        const float *one = b + i * bs;
        float *packed = out + (size_t)i * per;
        for (int64_t p = 0; p < panels; p++)
            for (int64_t kk = 0; kk < k; kk++)
                for (int64_t j = 0; j < nr && p * nr + j < n; j++)
                    packed[(p * k + kk) * nr + j] = one[kk * ks + (p * nr + j) * ns];
    }
    return out;
}

float *nn_pad_panel_columns(const float *v, int64_t count, int64_t n, uint32_t nv)
{
    int64_t width = nn_panel_count(n, nv) * 16 * (int64_t)nv;
    size_t total = (size_t)(count * width);
    float *out = calloc(total ? total : 1, sizeof *out);
    if (!out || !v) return out;
    for (int64_t i = 0; i < count; i++)
        for (int64_t j = 0; j < n; j++)
            out[i * width + j] = v[i * n + j];
    return out;
}

cleval_status nn_quantise_weights(const float *w, int64_t channels, int64_t per, int64_t cs,
                                  int64_t es, const char *what, float **codes, float **scales)
{
    *codes = malloc((size_t)(channels * per) * sizeof **codes);
    *scales = malloc((size_t)channels * sizeof **scales);
    if (!*codes || !*scales) {
        free(*codes);
        free(*scales);
        *codes = *scales = NULL;
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory quantising %s", what);
    }
    nn_quantise_channels(w, channels, per, cs, es, *codes, *scales);
    return CLEVAL_OK;
}
