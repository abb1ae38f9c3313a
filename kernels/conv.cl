/* conv.cl: convolution (1 to 3 spatial axes) as an implicit GEMM, and depthwise convolution.
 *
 * Algorithm  out[n][co][pixel] = bias[co] + sum over k = (ci, kd, kh, kw) of
 *            w[co][k] * in[n][ci][pixel * stride + (kd, kh, kw) * dilation - pad], i.e. a GEMM
 *            of M = output pixels by N = output channels over K = C_in * window, with the
 *            im2col matrix never materialised: row r of a tile is a pointer to its pixel's
 *            window origin in the input, and koff[k] is the offset of entry k from it.
 *            conv_cpu   CPU: one work-item per (image, range of pixel tiles); an MR x NR
 *                       register tile (MR pixels broadcast x NR = 16 * NV channels as float16
 *                       vectors, the same microkernel as knn_scores_cpu) over weights packed
 *                       k-major in panels of NR channels; epilogue: bias, clamp (fused
 *                       ReLU/Clip), optionally a fused 2x2 stride-2 max-pool (the MR rows are
 *                       then MR/4 pooling windows). The input is read through koff, so any
 *                       layout works (NCHW or channels-last); poff[u] is the window origin of
 *                       output pixel (or pooling window) u, so no division runs per tile; a
 *                       padded input is pre-copied with zero borders (elementwise.cl pad_nd).
 *                       + AVX-512 FMA loop, no im2col buffer, the pool costs no extra pass;
 *                       - pre-padding copies the input when pads are non-zero.
 *            The GPU family's implicit GEMM is conv_gpu (kernels/conv_gpu.cl).
 *            conv_winograd_cpu  CPU, 3x3 stride 1 on a channels-last input: F(2x2, 3x3)
 *                       Winograd with the same register-tile GEMM (see its own comment).
 *            conv_depthwise  one output per work-item, a loop over the window (group = C_in,
 *                       each output channel reads one input channel). + any multiplier; - scalar.
 * Layout     conv_cpu  wp [panels][K][NR] (zero beyond CO), bias [panels * NR]; the window of
 *                      unit u of image n starts at x + x_off + n * xs_n + poff[u] (+ wofs[r & 3]
 *                      for pixel r of a pooling window); output element (n, c, unit u) at
 *                      y + y_off + n * ys_n + c * ys_c + u * ys_p (dense NCHW: ys_p = 1;
 *                      channels-last: ys_c = 1, ys_p = channels).
 * Precision  fp16 (X_HALF, Y_HALF, W_HALF): a tensor stored as half is read with vload_half and
 *            written with vstore_half_rte (core OpenCL 1.2, no cl_khr_fp16 needed); arithmetic
 *            is float (HALF_MATH below excepted). int8 (INT8, conv_cpu): x is the
 *            layer input quantised per tensor (kernels/quantize.cl), w the weights quantised
 *            per output channel, both char; products accumulate exactly in int32 and the
 *            epilogue dequantises,
 *            y = acc * (x_scale * w_scale[c]) + bias[c], then clamp and pool in float.
 *            I8_FLOAT (CPU): the int8 products and sums run in float over k-blocks of at most
 *            1024 (every partial sum is an integer below 2^24, so exact) and each block is
 *            added to the int32 accumulator: the same integers, at float FMA speed.
 *            RUN16 (CPU, int8 float blocks or a half input): K is ordered window position-
 *            major, channel-minor over a channels-last input, so 16 consecutive k are 16
 *            adjacent elements, converted by one vector instruction into a private tile.
 *            HALF_MATH (fp16 on a device with cl_khr_fp16; conv_cpu, the Winograd products):
 *            the products and their sums over blocks of 32 k are half, added across blocks in
 *            float (tile.clh HALF_BLOCKS); the epilogue and conv_depthwise stay float.
 * Assumes    K >= 1; every buffer index fits in an int; pooled outputs use floor mode.
 */
#ifndef MR
#define MR 8 /* CPU: pixels per register tile (a multiple of 4 when POOL) */
#endif
#ifndef NV
#define NV 2 /* CPU: float16 vectors per tile row; NR = 16 * NV output channels */
#endif
#ifndef POOL
#define POOL 0 /* CPU: fuse a 2x2 stride-2 max-pool into the epilogue */
#endif
#ifndef CLAMP
#define CLAMP 0 /* fused activation (clamp.clh); 1: clamp(y, lo, hi), ReLU lo = 0, hi = inf */
#endif
#ifndef VEC_STORE
#define VEC_STORE 0 /* CPU: output channels are contiguous (ys.s1 == 1): vector stores */
#endif
#ifndef W_HALF
#define W_HALF 0 /* the (packed) weights are stored as half */
#endif
#ifndef INT8
#define INT8 0 /* conv_cpu: int8 input and weights, int32 accumulators */
#endif
#ifndef I8_FLOAT
#define I8_FLOAT 0 /* CPU int8: exact float k-blocks added to int32 (see Precision) */
#endif
#ifndef RUN16
#define RUN16 0 /* CPU, int8 float blocks or a half input: k in runs of 16 adjacent inputs */
#endif

#define NR (16 * NV)
#define UNITS_PER_TILE (POOL ? MR / 4 : MR)

#include "storage.clh"
#include "tile.clh"
#define W_T CAT(ST_T_, W_HALF)
#define LOAD_W(p, i) CAT(ST_LD_, W_HALF)(p, i)
#define LOAD16_W(p, i) CAT(ST_LD16_, W_HALF)(p, i)

/* What conv_cpu reads: floats (or halves), or int8 codes. */
#if INT8
#define XIN_T char
#define WIN_T char
#else
#define XIN_T X_T
#define WIN_T W_T
#endif

#include "clamp.clh"

/* max that propagates NaN, as torch's max_pool does */
static inline float16 max_nan16(float16 a, float16 b)
{
    return select(b, a, (a > b) || isnan(a));
}

static inline void store16(__global Y_T *y, int base, int cstride, int c0, int co, float16 v)
{
#if VEC_STORE
    if (c0 + 16 <= co) {
        STORE16_Y(v, y, base + c0);
        return;
    }
#endif
    float vals[16];
    vstore16(v, 0, vals);
    for (int j = 0; j < 16; j++)
        if (c0 + j < co) STORE_Y(vals[j], y, base + (c0 + j) * cstride);
}

#if INT8
#define ACC16 int16
#define DEQUANT16(acc, dq) (convert_float16(acc) * (dq))
#else
#define ACC16 float16
#define DEQUANT16(acc, dq) (acc)
#endif

__kernel void conv_cpu(__global const XIN_T *x, int x_off, int xs_n, __global const int *poff,
                       int4 wofs, __global const WIN_T *wp, int w_off,
                       __global const int *koff, __global const float *bias, int bias_off,
                       __global Y_T *y, int y_off, int ys_n, int ys_c, int ys_p, int K, int CO,
                       int panels, int units, int units_per_item, float lo, float hi,
                       __global const float *wscale, float x_scale)
{
    int img = get_global_id(1);
    int u0 = get_global_id(0) * units_per_item;
    int u1 = min(units, u0 + units_per_item);
    __global const XIN_T *xi = x + x_off + img * xs_n;
    __global const WIN_T *w = wp + w_off;
    __global Y_T *yi = y + y_off + img * ys_n;
#if POOL
    int wo[4] = {wofs.x, wofs.y, wofs.z, wofs.w};
#endif

    for (int t = u0; t < u1; t += UNITS_PER_TILE) {
        /* Row r of the tile: its pixel's window origin (units past the end repeat the last). */
        __global const XIN_T *xr[MR];
#pragma unroll
        for (int r = 0; r < MR; r++) {
#if POOL
            xr[r] = xi + poff[min(t + r / 4, u1 - 1)] + wo[r & 3];
#else
            xr[r] = xi + poff[min(t + r, u1 - 1)];
#endif
        }
        for (int pn = 0; pn < panels; pn++) {
            __global const WIN_T *panel = w + pn * K * NR;
            ACC16 acc[MR][NV];
#pragma unroll
            for (int r = 0; r < MR; r++)
#pragma unroll
                for (int v = 0; v < NV; v++)
                    acc[r][v] = (ACC16)(0);
#define TP_ROW(r) xr[r]
#define TP_AT(k) koff[k]
#define TP_RUN16 RUN16
#define TP_A_HALF X_HALF
#define TP_B_HALF W_HALF
#define TP_K_BEGIN 0
#define TP_K_END K
#include "tile_product.clh"
            /* Epilogue: dequantise (int8), bias, clamp, pool, store. */
#pragma unroll
            for (int v = 0; v < NV; v++) {
                int c0 = pn * NR + v * 16;
                float16 bv = vload16(0, bias + bias_off + c0);
#if INT8
                float16 dq = x_scale * vload16(0, wscale + bias_off + c0);
#else
                float dq = 1.0f;
#endif
#if POOL
#pragma unroll
                for (int g = 0; g < MR / 4; g++) {
                    int u = t + g;
                    if (u >= u1) continue;
                    float16 m = max_nan16(
                        max_nan16(DEQUANT16(acc[4 * g][v], dq), DEQUANT16(acc[4 * g + 1][v], dq)),
                        max_nan16(DEQUANT16(acc[4 * g + 2][v], dq),
                                  DEQUANT16(acc[4 * g + 3][v], dq)));
                    m += bv;
#if CLAMP
                    m = activate16(m, lo, hi);
#endif
                    store16(yi, u * ys_p, ys_c, c0, CO, m);
                }
#else
#pragma unroll
                for (int r = 0; r < MR; r++) {
                    int u = t + r;
                    if (u >= u1) continue;
                    float16 m = DEQUANT16(acc[r][v], dq) + bv;
#if CLAMP
                    m = activate16(m, lo, hi);
#endif
                    store16(yi, u * ys_p, ys_c, c0, CO, m);
                }
#endif
            }
        }
    }
}

/* F(2x2, 3x3) Winograd, CPU: one work-item per (image, range of 2x2 output tiles), MR tiles
 * at a time. Per tile group: (1) the 4x4 input patches are transformed (B^T d B) 16 channels
 * per float16 from a channels-last input into a scratch V[xi][tile][ci]; (2) for each of the
 * 16 transform points xi, an MR x NR register-tile GEMM over the input channels against the
 * transformed weights U[xi] (packed k-major in panels, as conv_cpu) into a scratch M[xi][tile];
 * (3) the output transform (A^T m A) gives the 2x2 outputs, then bias, clamp, and either the
 * fused 2x2 max-pool (the tile is the pooling window) or four stores.
 * + 2.25x fewer multiplications than direct convolution; - 3x3, stride 1 only, and the input
 *   must be channels-last with a multiple of 16 channels. */
__kernel void conv_winograd_cpu(__global const X_T *x, int x_off, int xs_n, int xs_h, int xs_w,
                                int cin, __global const W_T *up, __global const float *bias,
                                __global Y_T *y, int y_off, int ys_n, int ys_c, int ys_h,
                                int ys_w, int CO, int panels, int tiles_w, int tiles, int oh,
                                int ow, int tiles_per_item, float lo, float hi,
                                __global float *scratch, int s_off)
{
    int img = get_global_id(1);
    int item = get_global_id(1) * get_global_size(0) + get_global_id(0);
    int t0 = get_global_id(0) * tiles_per_item, t1 = min(tiles, t0 + tiles_per_item);
    __global const X_T *xi = x + x_off + img * xs_n;
    __global Y_T *yi = y + y_off + img * ys_n;
    __global float *vs = scratch + s_off + item * 16 * MR * (cin + NR); /* [16][MR][cin] */
    __global float *ms = vs + 16 * MR * cin;                            /* [16][MR][NR] */
#if HALF_MATH
    /* V is kept in half (in the first half of its floats): the products read it directly. */
    __global half *vh = (__global half *)vs;
#define STORE16_V(value, at) vstore_half16_rte((value), 0, vh + (at))
#else
#define STORE16_V(value, at) vstore16((value), 0, vs + (at))
#endif

    for (int t = t0; t < t1; t += MR) {
        /* (1) input transform */
        for (int r = 0; r < MR; r++) {
            int q = min(t + r, t1 - 1);
            __global const X_T *base = xi + 2 * (q / tiles_w) * xs_h + 2 * (q % tiles_w) * xs_w;
            for (int c = 0; c < cin; c += 16) {
                /* Column by column (B^T d), so only 4 loads and 16 results are live. */
                float16 tt[4][4];
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    __global const X_T *col = base + j * xs_w + c;
                    float16 d0 = LOAD16_X(col, 0), d1 = LOAD16_X(col, xs_h);
                    float16 d2 = LOAD16_X(col, 2 * xs_h), d3 = LOAD16_X(col, 3 * xs_h);
                    tt[0][j] = d0 - d2;
                    tt[1][j] = d1 + d2;
                    tt[2][j] = d2 - d1;
                    tt[3][j] = d1 - d3;
                }
                int out = r * cin + c;
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    STORE16_V(tt[i][0] - tt[i][2], out + (i * 4 + 0) * MR * cin);
                    STORE16_V(tt[i][1] + tt[i][2], out + (i * 4 + 1) * MR * cin);
                    STORE16_V(tt[i][2] - tt[i][1], out + (i * 4 + 2) * MR * cin);
                    STORE16_V(tt[i][1] - tt[i][3], out + (i * 4 + 3) * MR * cin);
                }
            }
        }
        for (int pn = 0; pn < panels; pn++) {
            /* (2) 16 GEMMs: M[xi] = V[xi] U[xi] over the input channels */
            for (int e = 0; e < 16; e++) {
                __global const W_T *panel = up + (e * panels + pn) * cin * NR;
#if HALF_MATH
                __global const half *ve = vh + e * MR * cin;
#else
                __global const float *ve = vs + e * MR * cin;
#endif
                float16 acc[MR][NV];
#pragma unroll
                for (int r = 0; r < MR; r++)
#pragma unroll
                    for (int v = 0; v < NV; v++)
                        acc[r][v] = (float16)(0.0f);
#if HALF_MATH
                HALF_BLOCKS(acc, 0, cin, ve[r * cin + k],
                            CAT(HM_LD16_, W_HALF)(panel, k * NR + v * 16));
#else
                for (int k = 0; k < cin; k++) {
                    TILE_STEP(float16, fma, acc, ve[r * cin + k], LOAD16_W(panel, k * NR + v * 16));
                }
#endif
#pragma unroll
                for (int r = 0; r < MR; r++)
#pragma unroll
                    for (int v = 0; v < NV; v++)
                        vstore16(acc[r][v], v, ms + (e * MR + r) * NR);
            }
            /* (3) output transform, bias, clamp, pool or store */
            for (int r = 0; r < MR; r++) {
                int q = t + r;
                if (q >= t1) continue;
                int th = q / tiles_w, tw = q % tiles_w;
#pragma unroll
                for (int v = 0; v < NV; v++) {
                    int c0 = pn * NR + v * 16;
                    /* Row by row (m A), so only 4 loads and 8 sums are live. */
                    float16 s0[4], s1[4];
                    __global const float *mr = ms + r * NR + v * 16;
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        float16 m0 = vload16(0, mr + (i * 4 + 0) * MR * NR);
                        float16 m1 = vload16(0, mr + (i * 4 + 1) * MR * NR);
                        float16 m2 = vload16(0, mr + (i * 4 + 2) * MR * NR);
                        float16 m3 = vload16(0, mr + (i * 4 + 3) * MR * NR);
                        s0[i] = m0 + m1 + m2;
                        s1[i] = m1 - m2 - m3;
                    }
                    float16 bv = vload16(0, bias + c0);
                    float16 y00 = s0[0] + s0[1] + s0[2] + bv, y01 = s1[0] + s1[1] + s1[2] + bv;
                    float16 y10 = s0[1] - s0[2] - s0[3] + bv, y11 = s1[1] - s1[2] - s1[3] + bv;
#if POOL
                    float16 o = max_nan16(max_nan16(y00, y01), max_nan16(y10, y11));
#if CLAMP
                    o = activate16(o, lo, hi);
#endif
                    store16(yi, th * ys_h + tw * ys_w, ys_c, c0, CO, o);
#else
#if CLAMP
                    y00 = activate16(y00, lo, hi);
                    y01 = activate16(y01, lo, hi);
                    y10 = activate16(y10, lo, hi);
                    y11 = activate16(y11, lo, hi);
#endif
                    int h = 2 * th, w = 2 * tw;
                    store16(yi, h * ys_h + w * ys_w, ys_c, c0, CO, y00);
                    if (w + 1 < ow) store16(yi, h * ys_h + (w + 1) * ys_w, ys_c, c0, CO, y01);
                    if (h + 1 < oh) {
                        store16(yi, (h + 1) * ys_h + w * ys_w, ys_c, c0, CO, y10);
                        if (w + 1 < ow)
                            store16(yi, (h + 1) * ys_h + (w + 1) * ys_w, ys_c, c0, CO, y11);
                    }
#endif
                }
            }
        }
    }
}

/* One output per work-item; output channel c reads input channel c / multiplier. NCHW. */
__kernel void conv_depthwise(__global const X_T *x, __global const W_T *w,
                             __global const float *bias, __global Y_T *y, int total, int C,
                             int multiplier, int4 idims, int4 odims, int4 kdims, int4 stride,
                             int4 dilation, int4 pad, float lo, float hi)
{
    int i = get_global_id(0);
    if (i >= total) return;
    int volume = odims.x * odims.y * odims.z;
    int nc = i / volume, p = i % volume;
    int c = nc % (C * multiplier), n = nc / (C * multiplier);
    int od = p / (odims.y * odims.z), rem = p % (odims.y * odims.z);
    int oh = rem / odims.z, ow = rem % odims.z;
    int xc = (n * C + c / multiplier) * idims.x * idims.y * idims.z;
    int wc = c * kdims.x * kdims.y * kdims.z;
    float acc = bias[c];
    for (int kd = 0; kd < kdims.x; kd++) {
        int id = od * stride.x - pad.x + kd * dilation.x;
        if (id < 0 || id >= idims.x) continue;
        for (int kh = 0; kh < kdims.y; kh++) {
            int ih = oh * stride.y - pad.y + kh * dilation.y;
            if (ih < 0 || ih >= idims.y) continue;
            for (int kw = 0; kw < kdims.z; kw++) {
                int iw = ow * stride.z - pad.z + kw * dilation.z;
                if (iw < 0 || iw >= idims.z) continue;
                acc = fma(LOAD_X(x, xc + (id * idims.y + ih) * idims.z + iw),
                          LOAD_W(w, wc + (kd * kdims.y + kh) * kdims.z + kw), acc);
            }
        }
    }
#if CLAMP
    acc = activate1(acc, lo, hi);
#endif
    STORE_Y(acc, y, i);
}
