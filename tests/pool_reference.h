/* A plain C reference for MaxPool and AveragePool over [planes, D, H, W] (fewer spatial axes
 * are leading extents of 1), shared by the pooling tests. Taps are visited in D, H, W order and
 * summed in float, as the device kernels do, so a test may ask for equality or a tolerance. */
#ifndef CLEVAL_TEST_POOL_REFERENCE_H
#define CLEVAL_TEST_POOL_REFERENCE_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

/* max; average over the taps inside the input (count_include_pad 0); average over the taps
 * inside the padded input (count_include_pad 1: a ceil_mode window reaching past the end
 * padding counts only up to it). */
typedef enum ref_pool_mode { REF_POOL_MAX, REF_POOL_AVG, REF_POOL_AVG_PAD } ref_pool_mode;

/* One pooling's geometry along D, H, W. */
typedef struct ref_pool_geometry {
    int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
} ref_pool_geometry;

/* The geometry of a pooling with `spatial` axes (1 to 3) from per-axis arrays of that length;
 * `dil` may be NULL (no dilation). */
static inline ref_pool_geometry ref_pool_geometry_of(uint32_t spatial, const int64_t *in,
                                                     const int64_t *out, const int64_t *k,
                                                     const int64_t *s, const int64_t *dil,
                                                     const int64_t *pb, const int64_t *pe)
{
    ref_pool_geometry g;
    for (int i = 0; i < 3; i++) {
        g.in[i] = g.out[i] = g.k[i] = g.s[i] = g.d[i] = 1;
        g.pb[i] = g.pe[i] = 0;
    }
    uint32_t off = 3 - spatial;
    for (uint32_t i = 0; i < spatial; i++) {
        g.in[off + i] = in[i];
        g.out[off + i] = out[i];
        g.k[off + i] = k[i];
        g.s[off + i] = s[i];
        g.d[off + i] = dil ? dil[i] : 1;
        g.pb[off + i] = pb[i];
        g.pe[off + i] = pe[i];
    }
    return g;
}

/* y[planes][out...] from x[planes][in...]; a NaN among a max's taps makes the result NaN. */
static inline void ref_pool(const ref_pool_geometry *g, int64_t planes, ref_pool_mode mode,
                            const float *x, float *y)
{
    uint64_t at = 0;
    for (int64_t plane = 0; plane < planes; plane++)
        for (int64_t a = 0; a < g->out[0]; a++)
            for (int64_t b = 0; b < g->out[1]; b++)
                for (int64_t e = 0; e < g->out[2]; e++) {
                    int64_t pos[3] = {a, b, e}, padded = 1;
                    float best = -INFINITY, sum = 0.0f;
                    bool nan = false;
                    int inside = 0;
                    for (int i = 0; i < 3; i++) {
                        int64_t start = pos[i] * g->s[i] - g->pb[i], count = 0;
                        for (int64_t t = 0; t < g->k[i]; t++)
                            count += start + t * g->d[i] < g->in[i] + g->pe[i];
                        padded *= count;
                    }
                    for (int64_t ka = 0; ka < g->k[0]; ka++)
                        for (int64_t kb = 0; kb < g->k[1]; kb++)
                            for (int64_t ke = 0; ke < g->k[2]; ke++) {
                                int64_t id = a * g->s[0] - g->pb[0] + ka * g->d[0];
                                int64_t ih = b * g->s[1] - g->pb[1] + kb * g->d[1];
                                int64_t iw = e * g->s[2] - g->pb[2] + ke * g->d[2];
                                if (id < 0 || id >= g->in[0] || ih < 0 || ih >= g->in[1] ||
                                    iw < 0 || iw >= g->in[2])
                                    continue;
                                float v =
                                    x[((plane * g->in[0] + id) * g->in[1] + ih) * g->in[2] + iw];
                                nan = nan || isnan(v);
                                best = v > best ? v : best;
                                sum += v;
                                inside++;
                            }
                    y[at++] = mode == REF_POOL_MAX   ? (nan ? NAN : best)
                              : mode == REF_POOL_AVG ? sum / (float)inside
                                                     : sum / (float)padded;
                }
}

#endif
