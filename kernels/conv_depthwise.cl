/* conv_depthwise.cl: depthwise 2-D convolution for CPU-style devices (one input channel per
 * group, one output channel per input channel), with the bias and the fused activation in the
 * epilogue. The GPU family and the other depthwise shapes (a channel multiplier, 1 or 3
 * spatial axes) use conv_depthwise in conv.cl.
 *
 * Algorithm  out[n][c][oh][ow] = bias[c] + sum over (kh, kw) of
 *            w[c][kh][kw] * in[n][c][oh * sh - ph + kh * dh][ow * sw - pw + kw * dw]
 *            (zero outside the input). Each work-item runs loops over a contiguous range of
 *            output rows of one image with explicit float16 vectors: PoCL then emits AVX-512
 *            FMAs (it vectorises across work-items only for loop-free kernels, which the
 *            one-output-per-work-item conv_depthwise is not).
 *            conv_dw_channels  channels-last input (the channel stride is 1): a vector is 16
 *                       adjacent channels of one pixel, 4 output pixels at a time share each
 *                       tap's weight vector. + plain vector loads at any stride, padding is a
 *                       scalar test per tap; - a channel count that is not a multiple of 16
 *                       loads its last vector lane by lane.
 *            conv_dw_planes  NCHW input (the column stride is 1): a vector is 16 adjacent
 *                       output columns of one channel, the tap's weight broadcast; stride 1
 *                       reads one unaligned vector, stride 2 two vectors and keeps the even
 *                       lanes. + no transposition of an NCHW input; - vectors that touch the
 *                       zero border (or other strides) gather lane by lane: the host uses it
 *                       for strides above 1 only.
 *            conv_dw_flat  NCHW input at stride 1: each plane copied into a zero-bordered
 *                       scratch, a vector is 16 consecutive scratch positions (several rows
 *                       of a narrow plane), every tap one unaligned load (below).
 * Layout     x and y at any element strides (n, c, h, w) (xs, ys; conv_dw_channels needs
 *            xs.c == 1, conv_dw_planes xs.w == 1); a store is one vector when the output's
 *            vector direction is contiguous, else lane by lane.
 *            conv_dw_channels  w [kh * KW + kw][CP], bias [CP] (CP = C rounded up to 16,
 *                       zeros beyond C).
 *            conv_dw_planes  w [c][kh * KW + kw] (ONNX's own order), bias [C].
 * Precision  X_HALF, Y_HALF, W_HALF as in storage.clh: storage only, float arithmetic.
 * Assumes    every buffer index fits in an int; output extents >= 1.
 */
#ifndef CLAMP
#define CLAMP 0 /* fused activation (clamp.clh) */
#endif
#ifndef W_HALF
#define W_HALF 0 /* the weights are stored as half */
#endif

#include "storage.clh"
#define LOAD_W(p, i) CAT(ST_LD_, W_HALF)(p, i)
#define LOAD16_W(p, i) CAT(ST_LD16_, W_HALF)(p, i)
#define W_T CAT(ST_T_, W_HALF)

#include "clamp.clh"

/* conv_dw_channels: output pixels per step (they share each tap's weight vector). */
#ifndef PIX
#define PIX 4
#endif

/* `lanes` (< 16) elements `step` apart as the first lanes of a vector, zeros after. */
static inline float16 load_lanes(__global const X_T *p, int step, int lanes)
{
    float t[16];
    for (int j = 0; j < 16; j++)
        t[j] = j < lanes ? LOAD_X(p, j * step) : 0.0f;
    return vload16(0, t);
}

/* Stores the first `lanes` lanes of v, `step` elements apart (one vector store when all 16
 * lanes are wanted and adjacent). */
static inline void store_lanes(__global Y_T *p, int step, int lanes, float16 v)
{
    if (lanes == 16 && step == 1) {
        STORE16_Y(v, p, 0);
        return;
    }
    float t[16];
    vstore16(v, 0, t);
    for (int j = 0; j < lanes; j++)
        STORE_Y(t[j], p, j * step);
}

/* conv_dw_channels' step: PIX output pixels along a row, whose KW taps at stride SW and
 * dilation DW read IN = (PIX - 1) SW + (KW - 1) DW + 1 input vectors of each input row: each
 * is loaded once and serves all the products that use it (6 loads for the 12 products of a 3x3
 * step at stride 1). dw_channels takes the window as arguments; the kernels for the common
 * windows pass constants, so that the compiler unrolls the loads and keeps them in registers
 * (no unroll pragma on those loops: with the generic kernel's runtime window it would fail),
 * and conv_dw_channels passes its arguments (the host sends it only windows with IN <= IN_MAX).
 *
 * dims (C, H, W, CP), odims (OH, OW, KH, KW), geo (SH, SW, PH, PW), dil (DH, DW, unused).
 * x_count: the elements of x, so that the last channel block (C not a multiple of 16) may load
 * a whole vector whose tail lanes are the next pixel's channels, computed and not stored,
 * except where that would pass the tensor's end. Work-item (i, n) computes output rows
 * [i * rows_per_item, (i + 1) * rows_per_item) of image n. */
#ifndef IN_MAX
#define IN_MAX 16
#endif
#define DW_CHANNELS_ARGS                                                                           \
    __global const X_T *x, int4 xs, __global const W_T *w, __global const float *bias,             \
        __global Y_T *y, int4 ys, int4 dims, int4 odims, int4 geo, int4 dil, int rows_per_item,    \
        int x_count, float lo, float hi
#define DW_CHANNELS_NAMES                                                                          \
    x, xs, w, bias, y, ys, dims, odims, geo, dil, rows_per_item, x_count, lo, hi

static inline void dw_channels(DW_CHANNELS_ARGS, const int KW, const int SW, const int DW)
{
    const int IN = (PIX - 1) * SW + (KW - 1) * DW + 1;
    int img = get_global_id(1);
    int oh0 = get_global_id(0) * rows_per_item, oh1 = min(odims.x, oh0 + rows_per_item);
    int C = dims.x, H = dims.y, W = dims.z, CP = dims.w, OW = odims.y, KH = odims.z;
    __global const X_T *xi = x + img * xs.x;
    __global Y_T *yi = y + img * ys.x;
    for (int oh = oh0; oh < oh1; oh++) {
        for (int c0 = 0; c0 < C; c0 += 16) {
            int lanes = min(16, C - c0);
            float16 bv = vload16(0, bias + c0);
            for (int ow0 = 0; ow0 < OW; ow0 += PIX) {
                float16 acc[PIX];
#pragma unroll
                for (int j = 0; j < PIX; j++)
                    acc[j] = bv;
                const int iw0 = ow0 * SW - geo.w;
                /* Every input vector of the step inside the row: no border tests. */
                const bool interior = iw0 >= 0 && iw0 + IN <= W;
                for (int kh = 0; kh < KH; kh++) {
                    int ih = oh * geo.x - geo.z + kh * dil.x;
                    if (ih < 0 || ih >= H) continue;
                    __global const X_T *row = xi + ih * xs.z + c0;
                    float16 in[IN_MAX];
                    /* ... and whole vectors readable (a last channel block's tail lanes are
                     * the next pixel's channels, up to the tensor's end). */
                    if (interior &&
                        (lanes == 16 || (int)(row - x) + (iw0 + IN - 1) * xs.w + 16 <= x_count)) {
                        for (int t = 0; t < IN; t++)
                            in[t] = LOAD16_X(row, (iw0 + t) * xs.w);
                    } else {
                        for (int t = 0; t < IN; t++) {
                            int iw = iw0 + t, at = (int)(row - x) + iw * xs.w;
                            in[t] = iw < 0 || iw >= W ? (float16)(0.0f)
                                    : lanes == 16 || at + 16 <= x_count
                                        ? LOAD16_X(row, iw * xs.w)
                                        : load_lanes(row + iw * xs.w, 1, lanes);
                        }
                    }
                    for (int kw = 0; kw < KW; kw++) {
                        float16 wv = LOAD16_W(w, (kh * KW + kw) * CP + c0);
#pragma unroll
                        for (int j = 0; j < PIX; j++)
                            acc[j] = fma(in[j * SW + kw * DW], wv, acc[j]);
                    }
                }
#pragma unroll
                for (int j = 0; j < PIX; j++) {
                    if (ow0 + j >= OW) continue;
                    float16 v = acc[j];
#if CLAMP
                    v = activate16(v, lo, hi);
#endif
                    store_lanes(yi + oh * ys.z + (ow0 + j) * ys.w + c0 * ys.y, ys.y, lanes, v);
                }
            }
        }
    }
}

__kernel void conv_dw_channels(DW_CHANNELS_ARGS)
{
    dw_channels(DW_CHANNELS_NAMES, odims.w, geo.y, dil.y);
}

/* The windows of MobileNet, EfficientNet and their kind: 3x3 and 5x5 at stride 1 and 2. */
__kernel void conv_dw_channels_3s1(DW_CHANNELS_ARGS)
{
    dw_channels(DW_CHANNELS_NAMES, 3, 1, 1);
}

__kernel void conv_dw_channels_3s2(DW_CHANNELS_ARGS)
{
    dw_channels(DW_CHANNELS_NAMES, 3, 2, 1);
}

__kernel void conv_dw_channels_5s1(DW_CHANNELS_ARGS)
{
    dw_channels(DW_CHANNELS_NAMES, 5, 1, 1);
}

__kernel void conv_dw_channels_5s2(DW_CHANNELS_ARGS)
{
    dw_channels(DW_CHANNELS_NAMES, 5, 2, 1);
}

/* Arguments as conv_dw_channels; work-item (i, n) computes the output lines (c, oh), taken
 * c-major, [i * lines_per_item, (i + 1) * lines_per_item) of image n. */
__kernel void conv_dw_planes(__global const X_T *x, int4 xs, __global const W_T *w,
                             __global const float *bias, __global Y_T *y, int4 ys, int4 dims,
                             int4 odims, int4 geo, int4 dil, int lines_per_item, float lo, float hi)
{
    int img = get_global_id(1);
    int OH = odims.x, OW = odims.y, KH = odims.z, KW = odims.w;
    int l0 = get_global_id(0) * lines_per_item, l1 = min(dims.x * OH, l0 + lines_per_item);
    int H = dims.y, W = dims.z, SW = geo.y;
    for (int line = l0; line < l1; line++) {
        int c = line / OH, oh = line % OH;
        __global const X_T *xc = x + img * xs.x + c * xs.y;
        __global Y_T *yr = y + img * ys.x + c * ys.y + oh * ys.z;
        __global const W_T *wc = w + c * KH * KW;
        float b = bias[c];
        for (int ow0 = 0; ow0 < OW; ow0 += 16) {
            float16 acc = (float16)(b);
            for (int kh = 0; kh < KH; kh++) {
                int ih = oh * geo.x - geo.z + kh * dil.x;
                if (ih < 0 || ih >= H) continue;
                __global const X_T *row = xc + ih * xs.z;
                for (int kw = 0; kw < KW; kw++) {
                    int iw0 = ow0 * SW - geo.w + kw * dil.y;
                    float16 xv;
                    if (iw0 >= 0 && SW == 1 && iw0 + 16 <= W) {
                        xv = LOAD16_X(row, iw0);
                    } else if (iw0 >= 0 && SW == 2 && iw0 + 32 <= W) {
                        xv = shuffle2(
                            LOAD16_X(row, iw0), LOAD16_X(row, iw0 + 16),
                            (uint16)(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
                    } else {
                        /* The zero border, another stride, or the row's end: lane by lane. */
                        float t[16];
                        for (int j = 0; j < 16; j++) {
                            int iw = iw0 + j * SW;
                            t[j] = iw >= 0 && iw < W ? LOAD_X(row, iw) : 0.0f;
                        }
                        xv = vload16(0, t);
                    }
                    acc = fma(xv, (float16)(LOAD_W(wc, kh * KW + kw)), acc);
                }
            }
#if CLAMP
            acc = activate16(acc, lo, hi);
#endif
            store_lanes(yr + ow0 * ys.w, ys.w, min(16, OW - ow0), acc);
        }
    }
}

/* conv_dw_flat: NCHW input at stride 1 (any dilation and pads), the shape of ConvNeXt's 7 x 7
 * and of narrow planes, where conv_dw_planes gathers lane by lane near every border. Each
 * plane is copied into the work-item's zero-bordered scratch of `pitch` = OW + (KW - 1) DW
 * columns and computed over its flattened positions (flat.clh): every tap one unaligned vector
 * load, FLAT_VECTORS vectors per step as independent FMA chains. Work-item i takes planes
 * (n, c) = i, i + items, ... of the batch in turn, so the scratch is `items` planes, not the
 * whole input.
 * Arguments as conv_dw_planes, then scratch (items planes of plane_stride floats, the last
 * 16 * FLAT_VECTORS + (KW - 1) DW of them slack that over-reading vectors touch), pitch,
 * plane_stride, planes (N * C). */
#ifndef FLAT_VECTORS
#define FLAT_VECTORS 4
#endif
#include "flat.clh"

__kernel void conv_dw_flat(__global const X_T *x, int4 xs, __global const W_T *w,
                           __global const float *bias, __global Y_T *y, int4 ys, int4 dims,
                           int4 odims, int4 geo, int4 dil, __global float *scratch, int pitch,
                           int plane_stride, int planes, float lo, float hi)
{
    const int C = dims.x, H = dims.y, W = dims.z;
    const int OH = odims.x, OW = odims.y, KH = odims.z, KW = odims.w;
    const int rows = OH + (KH - 1) * dil.x, total = OH * pitch;
    __global float *pp = scratch + (long)get_global_id(0) * plane_stride;
    for (int plane = get_global_id(0); plane < planes; plane += get_global_size(0)) {
        const int img = plane / C, c = plane % C;
        flat_copy_plane(pp, x + img * xs.x + c * xs.y, xs.z, xs.w, H, W, rows, pitch, geo.z, geo.w,
                        plane_stride, 0.0f);
        __global const W_T *wc = w + c * KH * KW;
        __global Y_T *yc = y + img * ys.x + c * ys.y;
        const float b = bias[c];
        for (int base = 0; base < total; base += 16 * FLAT_VECTORS) {
            float16 acc[FLAT_VECTORS];
#pragma unroll
            for (int v = 0; v < FLAT_VECTORS; v++)
                acc[v] = (float16)(b);
            for (int kh = 0; kh < KH; kh++) {
                __global const float *row = pp + base + kh * dil.x * pitch;
                for (int kw = 0; kw < KW; kw++) {
                    const float16 wt = (float16)(LOAD_W(wc, kh * KW + kw));
#pragma unroll
                    for (int v = 0; v < FLAT_VECTORS; v++)
                        acc[v] = fma(vload16(v, row + kw * dil.y), wt, acc[v]);
                }
            }
            for (int v = 0; v < FLAT_VECTORS; v++) {
#if CLAMP
                acc[v] = activate16(acc[v], lo, hi);
#endif
                flat_store16(acc[v], yc, ys.z, ys.w, base + 16 * v, pitch, OH, OW);
            }
        }
    }
}
