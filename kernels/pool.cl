/* pool.cl: max and average pooling over up to 3 spatial axes, global average pooling.
 *
 * Algorithm  pool            one output per work-item, a loop over its window. Modes: 0 max
 *                            (padding never wins; NaN propagates, as torch), 1 average counting
 *                            padded positions (the window's taps before the end padding's end:
 *                            a ceil_mode window may reach past it), 2 average over the
 *                            positions inside the input.
 *            pool_rows       CPU family: a run of up to POOL_COLS outputs of one output row per
 *                            work-item. The index arithmetic (divisions, the window's clipping
 *                            against the input along D and H) is done once per run instead of
 *                            once per output and tap, and the tap loops run over the clipped
 *                            ranges only, without a bounds test per tap: on PoCL the per-output
 *                            form spent most of its time there, far below memory speed. Taps
 *                            are visited in the same order as `pool`, so the results are
 *                            bit-identical (average sums included).
 *            pool_flat       CPU family, 1-D and 2-D windows of stride 1: over a bordered copy
 *                            of each plane, 16 outputs per vector load whatever the plane's
 *                            width (below); the same taps in the same order as pool_rows.
 *            global_average  one (n, c) row per work-item, summed in order.
 *            A 2x2 max-pool after a Conv is fused into conv_cpu's epilogue on CPUs.
 * Layout     NCHW (N*C planes of D x H x W, missing spatial axes have extent 1).
 * Storage    X_HALF / Y_HALF: the input / output is stored as half (fp16 mode); arithmetic is
 *            float.
 * Assumes    every window starts before the end of the input (the host drops ceil_mode windows
 *            that would start in the end padding or beyond).
 */
#include "storage.clh"

/* The taps start, start + dilation, ... (k of them) that lie before `limit` (start < limit). */
static inline int taps_before(int start, int k, int dilation, int limit)
{
    return min(k, (limit - start + dilation - 1) / dilation);
}

__kernel void pool(__global const X_T *x, __global Y_T *y, uint n, int4 idims, int4 odims,
                   int4 kdims, int4 stride, int4 dilation, int4 pad, int4 pad_end, int mode)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    int volume = odims.x * odims.y * odims.z;
    int plane = (int)i / volume, p = (int)i % volume;
    int od = p / (odims.y * odims.z), rem = p % (odims.y * odims.z);
    int oh = rem / odims.z, ow = rem % odims.z;
    int xp = plane * idims.x * idims.y * idims.z;
    float best = -INFINITY, sum = 0.0f;
    int inside = 0;
    bool nan_seen = false;
    for (int kd = 0; kd < kdims.x; kd++) {
        int id = od * stride.x - pad.x + kd * dilation.x;
        if (id < 0 || id >= idims.x) continue;
        for (int kh = 0; kh < kdims.y; kh++) {
            int ih = oh * stride.y - pad.y + kh * dilation.y;
            if (ih < 0 || ih >= idims.y) continue;
            for (int kw = 0; kw < kdims.z; kw++) {
                int iw = ow * stride.z - pad.z + kw * dilation.z;
                if (iw < 0 || iw >= idims.z) continue;
                float v = LOAD_X(x, xp + (id * idims.y + ih) * idims.z + iw);
                nan_seen = nan_seen || isnan(v);
                best = v > best ? v : best;
                sum += v;
                inside++;
            }
        }
    }
    float out;
    if (mode == 0)
        out = nan_seen ? NAN : best;
    else if (mode == 1)
        out = sum /
              (float)(taps_before(od * stride.x - pad.x, kdims.x, dilation.x, idims.x + pad_end.x) *
                      taps_before(oh * stride.y - pad.y, kdims.y, dilation.y, idims.y + pad_end.y) *
                      taps_before(ow * stride.z - pad.z, kdims.z, dilation.z, idims.z + pad_end.z));
    else
        out = sum / (float)inside;
    STORE_Y(out, y, i);
}

#ifndef POOL_COLS
#define POOL_COLS 64
#endif

/* The taps start, start + dilation, ... (k of them) inside [0, limit): *lo to *hi (exclusive),
 * an empty range (*hi <= *lo) when none is. */
static inline void taps_inside(int start, int k, int dilation, int limit, int *lo, int *hi)
{
    *lo = start < 0 ? min(k, (-start + dilation - 1) / dilation) : 0;
    *hi = start < limit ? taps_before(start, k, dilation, limit) : 0;
}

/* 16 inputs at r, r + stride, ... (stride 1 or 2), read without passing r + 15 * stride. */
static inline float16 load_strided16(__global const X_T *x, size_t r, int stride)
{
    if (stride == 1) return LOAD16_X(x, r);
    float16 a = LOAD16_X(x, r), b = LOAD16_X(x, r + 15);
    return (float16)(a.even, b.odd);
}

__kernel void pool_rows(__global const X_T *x, __global Y_T *y, uint n, int4 idims, int4 odims,
                        int4 kdims, int4 stride, int4 dilation, int4 pad, int4 pad_end, int mode)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    int blocks = (odims.z + POOL_COLS - 1) / POOL_COLS;
    int row = (int)i / blocks, ow0 = (int)i % blocks * POOL_COLS;
    int ow1 = min(ow0 + POOL_COLS, odims.z);
    int rows_per_plane = odims.x * odims.y;
    int plane = row / rows_per_plane, od = row % rows_per_plane / odims.y,
        oh = row % rows_per_plane % odims.y;
    int d0 = od * stride.x - pad.x, h0 = oh * stride.y - pad.y;
    int kd_lo, kd_hi, kh_lo, kh_hi;
    taps_inside(d0, kdims.x, dilation.x, idims.x, &kd_lo, &kd_hi);
    taps_inside(h0, kdims.y, dilation.y, idims.y, &kh_lo, &kh_hi);
    int rows_inside = max(kd_hi - kd_lo, 0) * max(kh_hi - kh_lo, 0);
    /* count_include_pad: the D x H part of the divisor is the same along the row. */
    int padded_dh = taps_before(d0, kdims.x, dilation.x, idims.x + pad_end.x) *
                    taps_before(h0, kdims.y, dilation.y, idims.y + pad_end.y);
    size_t xp = (size_t)plane * idims.x * idims.y * idims.z;
    size_t yp = (size_t)row * odims.z;
    /* Outputs [in_lo, in_hi) have their whole window inside the row: with stride 1 or 2 they
     * go 16 at a time, a lane per output (the last group of a run may overlap the one before:
     * it recomputes the same values). */
    int span = (kdims.z - 1) * dilation.z;
    int in_lo = max(ow0, (pad.z + stride.z - 1) / stride.z);
    int in_hi =
        min(ow1, idims.z - 1 - span + pad.z >= 0 ? (idims.z - 1 - span + pad.z) / stride.z + 1 : 0);
    bool vector = stride.z <= 2 && in_hi - in_lo >= 16;
    for (int ow = ow0; ow < ow1; ow++) {
        if (vector && ow == in_lo) {
            for (int c = in_lo; c < in_hi; c += 16) {
                int g = min(c, in_hi - 16);
                int w0 = g * stride.z - pad.z;
                float16 best = -INFINITY, sum = 0.0f;
                int16 nan_seen = 0;
                for (int kd = kd_lo; kd < kd_hi; kd++) {
                    size_t plane_d = xp + (size_t)(d0 + kd * dilation.x) * idims.y * idims.z;
                    for (int kh = kh_lo; kh < kh_hi; kh++) {
                        size_t r = plane_d + (size_t)(h0 + kh * dilation.y) * idims.z + w0;
                        for (int kw = 0; kw < kdims.z; kw++) {
                            float16 v = load_strided16(x, r + kw * dilation.z, stride.z);
                            nan_seen |= isnan(v);
                            best = select(best, v, v > best);
                            sum += v;
                        }
                    }
                }
                float16 out;
                if (mode == 0)
                    out = select(best, (float16)NAN, nan_seen);
                else
                    out = sum / (float)((mode == 1 ? padded_dh : rows_inside) * kdims.z);
                STORE16_Y(out, y, yp + g);
            }
            ow = in_hi - 1;
            continue;
        }
        int w0 = ow * stride.z - pad.z, kw_lo, kw_hi;
        taps_inside(w0, kdims.z, dilation.z, idims.z, &kw_lo, &kw_hi);
        float best = -INFINITY, sum = 0.0f;
        bool nan_seen = false;
        for (int kd = kd_lo; kd < kd_hi; kd++) {
            size_t plane_d = xp + (size_t)(d0 + kd * dilation.x) * idims.y * idims.z;
            for (int kh = kh_lo; kh < kh_hi; kh++) {
                size_t r = plane_d + (size_t)(h0 + kh * dilation.y) * idims.z + w0;
                for (int kw = kw_lo; kw < kw_hi; kw++) {
                    float v = LOAD_X(x, r + kw * dilation.z);
                    nan_seen = nan_seen || isnan(v);
                    best = v > best ? v : best;
                    sum += v;
                }
            }
        }
        float out;
        if (mode == 0)
            out = nan_seen ? NAN : best;
        else if (mode == 1)
            out = sum /
                  (float)(padded_dh * taps_before(w0, kdims.z, dilation.z, idims.z + pad_end.z));
        else
            out = sum / (float)(rows_inside * max(kw_hi - kw_lo, 0));
        STORE_Y(out, y, yp + ow);
    }
}

__kernel void global_average(__global const X_T *x, __global Y_T *y, uint rows, uint inner)
{
    uint r = get_global_id(0);
    if (r >= rows) return;
    size_t row = (size_t)r * inner;
    float sum = 0.0f;
    for (uint j = 0; j < inner; j++)
        sum += LOAD_X(x, row + j);
    STORE_Y(sum / (float)inner, y, r);
}

/* pool_flat: CPU family, 1-D or 2-D windows at stride 1 (any dilation and pads): Inception's
 * 3 x 3 average pools, SPP's max pools, on planes so narrow (17 x 17, 8 x 8) that pool_rows
 * would run them lane by lane. Each plane is copied into the work-item's bordered scratch
 * (0 around it for averages, -INFINITY for maxima) and the windows run over its flattened
 * positions (flat.clh), every tap one vector load for 16 outputs; taps in the border add 0 or
 * lose every comparison, so the results equal pool_rows' (the same taps in the same order).
 * The divisors of an average depend on the position only: computed once per work-item into
 * a map beside its scratch plane (1 where no output is). Work-item i takes planes i,
 * i + items, ... in turn.
 * idims (H, W), odims (OH, OW), kdims (KH, KW), dilation (DH, DW), pad (top, left), pad_end
 * (bottom, right) with a 1-D window as H = OH = KH = 1; mode as `pool`; scratch: per
 * work-item plane_stride floats of plane (16 * FLAT_VECTORS + (KW - 1) DW of them slack),
 * then OH * pitch + 16 * FLAT_VECTORS divisors. */
#ifndef FLAT_VECTORS
#define FLAT_VECTORS 4
#endif
#include "flat.clh"

__kernel void pool_flat(__global const X_T *x, __global Y_T *y, int4 idims, int4 odims, int4 kdims,
                        int4 dilation, int4 pad, int4 pad_end, int mode, __global float *scratch,
                        int pitch, int plane_stride, int planes)
{
    const int H = idims.x, W = idims.y, OH = odims.x, OW = odims.y, KH = kdims.x, KW = kdims.y;
    const int rows = OH + (KH - 1) * dilation.x, total = OH * pitch;
    const int divisors = total + 16 * FLAT_VECTORS;
    __global float *pp = scratch + (long)get_global_id(0) * (plane_stride + divisors);
    __global float *divisor = pp + plane_stride;
    for (int o = 0; mode != 0 && o < divisors; o++) {
        const int oh = o / pitch, ow = o % pitch, h0 = oh - pad.x, w0 = ow - pad.y;
        int count = 1;
        if (oh < OH && ow < OW && mode == 1) {
            count = taps_before(h0, KH, dilation.x, H + pad_end.x) *
                    taps_before(w0, KW, dilation.y, W + pad_end.y);
        } else if (oh < OH && ow < OW) {
            int hl, hh, wl, wh;
            taps_inside(h0, KH, dilation.x, H, &hl, &hh);
            taps_inside(w0, KW, dilation.y, W, &wl, &wh);
            count = max(hh - hl, 0) * max(wh - wl, 0);
        }
        divisor[o] = (float)count;
    }
    for (int plane = get_global_id(0); plane < planes; plane += get_global_size(0)) {
        flat_copy_plane(pp, x + (long)plane * H * W, W, 1, H, W, rows, pitch, pad.x, pad.y,
                        plane_stride, mode == 0 ? -INFINITY : 0.0f);
        __global Y_T *yc = y + (long)plane * OH * OW;
        for (int base = 0; base < total; base += 16 * FLAT_VECTORS) {
            float16 acc[FLAT_VECTORS];
            int16 nan_seen[FLAT_VECTORS];
#pragma unroll
            for (int v = 0; v < FLAT_VECTORS; v++) {
                acc[v] = mode == 0 ? (float16)(-INFINITY) : (float16)(0.0f);
                nan_seen[v] = 0;
            }
            for (int kh = 0; kh < KH; kh++) {
                __global const float *row = pp + base + kh * dilation.x * pitch;
                for (int kw = 0; kw < KW; kw++) {
                    if (mode == 0) {
#pragma unroll
                        for (int v = 0; v < FLAT_VECTORS; v++) {
                            const float16 t = vload16(v, row + kw * dilation.y);
                            nan_seen[v] |= isnan(t);
                            acc[v] = select(acc[v], t, t > acc[v]);
                        }
                    } else {
#pragma unroll
                        for (int v = 0; v < FLAT_VECTORS; v++)
                            acc[v] += vload16(v, row + kw * dilation.y);
                    }
                }
            }
            for (int v = 0; v < FLAT_VECTORS; v++) {
                const float16 out = mode == 0 ? select(acc[v], (float16)NAN, nan_seen[v])
                                              : acc[v] / vload16(v, divisor + base);
                flat_store16(out, yc, OW, 1, base + 16 * v, pitch, OH, OW);
            }
        }
    }
}
