/* Weight packing shared by Conv and Gemm/MatMul: the register tile of the CPU-style
 * microkernels (conv_cpu, gemm_cpu), constant B matrices packed into k-major panels of 16 * NV
 * columns, per-column vectors padded to whole panels, and the int8 codes of weights. */
#include "nn_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "huge_pages.h"

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

/* Rows of k taken together when B's columns are strided: a tile of this many rows by one
 * panel's columns (at most 64 x 64 floats, 16 KiB) stays in L1 while it is read column by
 * column and written row by row. */
#define PACK_ROWS 64

/* One panel of columns [c0, c0 + cols) into `panel` (k rows of nr floats). B's rows are
 * contiguous in memory when ns == 1 (B is [k][n]): each row's columns are copied in a run.
 * Otherwise (a transposed B, [n][k], as Conv weights and Gemm with transB are) a column is
 * contiguous, and reading it whole while writing across the panel's rows keeps both sides
 * sequential within a tile of PACK_ROWS rows; the element-by-element row order it replaces
 * read each column with a stride of k floats and took 1.5 ns a weight (vgg16's 138 M: 0.21 s). */
static void pack_panel(const float *b, int64_t k, int64_t ks, int64_t ns, int64_t c0, int64_t cols,
                       int64_t nr, float *panel)
{
    if (ns == 1) {
        for (int64_t kk = 0; kk < k; kk++)
            memcpy(panel + kk * nr, b + kk * ks + c0, (size_t)cols * sizeof *panel);
        return;
    }
    for (int64_t k0 = 0; k0 < k; k0 += PACK_ROWS) {
        int64_t k1 = k0 + PACK_ROWS < k ? k0 + PACK_ROWS : k;
        for (int64_t j = 0; j < cols; j++) {
            const float *column = b + (c0 + j) * ns;
            for (int64_t kk = k0; kk < k1; kk++)
                panel[kk * nr + j] = column[kk * ks];
        }
    }
}

float *nn_pack_panels(const float *b, int64_t count, int64_t bs, int64_t k, int64_t n, int64_t ks,
                      int64_t ns, uint32_t nv)
{
    assert(nv >= 1 && count >= 0 && k >= 0 && n >= 0);
    int64_t nr = 16 * (int64_t)nv, panels = nn_panel_count(n, nv);
    size_t per = (size_t)(panels * k * nr), total = per * (size_t)count;
    /* calloc: the padding columns of the last panel stay zero. */
    float *out = calloc(total ? total : 1, sizeof *out);
    if (!out) return NULL;
    cleval_prefer_huge_pages(out, total * sizeof *out);
    for (int64_t i = 0; i < count; i++) {
        const float *one = b + i * bs;
        float *packed = out + (size_t)i * per;
        for (int64_t p = 0; p < panels; p++) {
            int64_t cols = n - p * nr < nr ? n - p * nr : nr;
            pack_panel(one, k, ks, ns, p * nr, cols, nr, packed + (size_t)(p * k * nr));
        }
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
