/* conv_gpu.cl: convolution (1 to 3 spatial axes, any group count) for GPUs, as an implicit
 * GEMM whose inner loop reaches the FMA units.
 *
 * Algorithm  out[n][g * CO_g + co][pixel] = bias + sum over k = (ci, kd, kh, kw) of
 *            w[g][k][co] * in[n][g * CI_g + ci][pixel * stride + (kd, kh, kw) * dilation - pad],
 *            a GEMM of M = N * output pixels by CO_g channels over K = CI_g * window per group
 *            (the group is the third launch dimension, so grouped convolutions are one launch).
 *            A work-group computes a TM x TN tile (pixels x channels) in WM x WN = 8 x 8
 *            register tiles, one per work-item, over TK-deep k-slices staged in local memory.
 *            No division runs in the k-loop: each work-item decomposes the pixels it stages
 *            into (image, od, oh, ow) once, at the start, into a window origin; the host's
 *            table ktab[k] = (kd * dd, kh * dh, kw * dw, input offset of k from the origin)
 *            turns every staged element into one add and three unsigned range checks (padding
 *            and the ragged ends of M and K read as zeros). The product reads one float8 of
 *            pixels and one of channels from local memory per 64 FMAs.
 *            Epilogue: dequantise (int8), bias, the fused activation (clamp.clh), store.
 *            + 8 x 8 outputs per work-item, vector local loads, coalesced weight loads, no
 *              bounds checks on the weights (padded), one launch for every group;
 *            - the gather of the input costs a table read and range checks per staged element.
 * Layout     x [N][C][D][H][W], y [N][CO][OD][OH][OW] (NCHW); w [group][K_pad][CO_pad]
 *            k-major, zero past K and CO_g (K_pad a multiple of TK, CO_pad of TN); bias and
 *            int8 weight scales [group][CO_pad]; ktab [K_pad] int4, entries past K have an
 *            out-of-range kd so they read zeros.
 * Precision  as conv.cl: X_HALF / Y_HALF / W_HALF storage; INT8: char codes, int products
 *            accumulated exactly, y = acc * x_scale * w_scale[c] + bias[c]; HALF_MATH: each
 *            k-slice's products summed in half, slices added in float.
 * Launch     local (TN / WN, TM / WM); global (ceil(CO_g / TN) * TN / WN,
 *            ceil(M / TM) * TM / WM, group).
 * Assumes    K >= 1; every buffer index fits in an int.
 */
#ifndef TM
#define TM 64 /* output pixels per work-group tile */
#endif
#ifndef TN
#define TN 64 /* output channels per work-group tile */
#endif
#ifndef TK
#define TK 16 /* k-slice staged in local memory */
#endif
#ifndef CLAMP
#define CLAMP 0 /* fused activation (clamp.clh) */
#endif
#ifndef W_HALF
#define W_HALF 0 /* the weights are stored as half */
#endif
#ifndef INT8
#define INT8 0 /* int8 input codes and weights, int32 accumulators */
#endif
#define WM 8 /* pixels per work-item (rows of its register tile) */
#define WN 8 /* channels per work-item (one float8 per row) */
#define ITEMS ((TM / WM) * (TN / WN))

#if TM % WM != 0 || TN % WN != 0
#error "TM and TN must be multiples of 8"
#endif
#if (ITEMS % TM != 0 && TM % ITEMS != 0) || (ITEMS % TN != 0 && TN % ITEMS != 0)
#error "the work-group size must divide, or be a multiple of, TM and TN"
#endif
#if ITEMS > TM && TK % (ITEMS / TM) != 0
#error "TK must be a multiple of ITEMS / TM"
#endif
#if ITEMS > TN && TK % (ITEMS / TN) != 0
#error "TK must be a multiple of ITEMS / TN"
#endif

#include "storage.clh"
#include "clamp.clh"
#define W_T CAT(ST_T_, W_HALF)

/* The tile and accumulator types: int8 codes into int, half (HALF_MATH) or float into float. */
#if INT8
#define XIN_T char
#define WIN_T char
#define TILE_T char
#define TILE8 char8
#define ACC8 int8
#define LOAD_A(p, i) ((p)[i])
#define LOAD_B(p, i) ((p)[i])
#define CONVERT_ACC8(v) convert_int8(v)
#define MAC8(a, b, c) ((c) + convert_int8(a) * convert_int8(b))
#else
#define XIN_T X_T
#define WIN_T W_T
#define ACC8 float8
#if HALF_MATH
#define TILE_T half
#define TILE8 half8
#define LOAD_A(p, i) CAT(HM_LD_, X_HALF)(p, i)
#define LOAD_B(p, i) CAT(HM_LD_, W_HALF)(p, i)
#else
#define TILE_T float
#define TILE8 float8
#define LOAD_A(p, i) LOAD_X(p, i)
#define LOAD_B(p, i) CAT(ST_LD_, W_HALF)(p, i)
#endif
#endif

/* Rows (pixels) and k-steps of the A slice that work-item `flat` stages: rows
 * flat % TM + j * ITEMS, k-steps from flat / TM in steps of ITEMS / TM (when ITEMS > TM). */
#define A_ROWS (TM > ITEMS ? TM / ITEMS : 1)
#define A_KSTEP (ITEMS > TM ? ITEMS / TM : 1)
#define B_COLS (TN > ITEMS ? TN / ITEMS : 1)
#define B_KSTEP (ITEMS > TN ? ITEMS / TN : 1)

/* An origin no (kd, kh, kw) brings into range: rows past M read zeros. */
#define FAR_AWAY (-(1 << 29))

__kernel __attribute__((reqd_work_group_size(TN / WN, TM / WM, 1))) void
conv_gpu(__global const XIN_T *x, int xs_n, int xs_g, int4 idims, __global const int4 *ktab,
         __global const WIN_T *w, __global const float *bias, __global const float *wscale,
         __global Y_T *y, int ys_n, int ys_c, int ys_g, int K_pad, int CO_pad, int CO_g, int M,
         int4 odims, int4 stride, int4 pad, float lo, float hi, float x_scale)
{
    __local TILE_T a_tile[TK][TM];
    __local TILE_T b_tile[TK][TN];
    const int lx = get_local_id(0), ly = get_local_id(1), flat = ly * (TN / WN) + lx;
    const int row0 = get_group_id(1) * TM, col0 = get_group_id(0) * TN, g = get_group_id(2);
    const int plane = odims.y * odims.z, volume = odims.x * plane;
    const int in_plane = idims.y * idims.z;
    __global const XIN_T *xg = x + g * xs_g;
    __global const WIN_T *wg = w + g * K_pad * CO_pad;
    __global const float *bg = bias + g * CO_pad;

    /* Window origins (input coordinates of kernel tap 0) of the pixels this item stages. */
    int a_base[A_ROWS];
    int4 a_origin[A_ROWS];
    for (int j = 0; j < A_ROWS; j++) {
        int m = row0 + flat % TM + j * ITEMS;
        if (m < M) {
            int n = m / volume, p = m % volume;
            int od = p / plane, rem = p % plane, oh = rem / odims.z, ow = rem % odims.z;
            int4 o = (int4)(od * stride.x - pad.x, oh * stride.y - pad.y, ow * stride.z - pad.z,
                            0);
            a_origin[j] = o;
            a_base[j] = n * xs_n + o.x * in_plane + o.y * idims.z + o.z;
        } else {
            a_origin[j] = (int4)(FAR_AWAY);
            a_base[j] = 0;
        }
    }
    const int a_k0 = ITEMS > TM ? flat / TM : 0, b_k0 = ITEMS > TN ? flat / TN : 0;

    ACC8 acc[WM];
    for (int i = 0; i < WM; i++)
        acc[i] = (ACC8)(0);

    for (int kb = 0; kb < K_pad; kb += TK) {
        for (int kk = a_k0; kk < TK; kk += A_KSTEP) {
            int4 t = ktab[kb + kk];
            for (int j = 0; j < A_ROWS; j++) {
                int4 at = a_origin[j] + t;
                bool inside = (uint)at.x < (uint)idims.x && (uint)at.y < (uint)idims.y &&
                              (uint)at.z < (uint)idims.z;
                /* The offset t.w is used only inside: outside, base + t.w may point anywhere. */
                a_tile[kk][flat % TM + j * ITEMS] =
                    inside ? (TILE_T)LOAD_A(xg, a_base[j] + t.w) : (TILE_T)0;
            }
        }
        for (int kk = b_k0; kk < TK; kk += B_KSTEP)
            for (int j = 0; j < B_COLS; j++) {
                int c = flat % TN + j * ITEMS;
                b_tile[kk][c] = (TILE_T)LOAD_B(wg, (kb + kk) * CO_pad + col0 + c);
            }
        barrier(CLK_LOCAL_MEM_FENCE);
#if HALF_MATH && !INT8
        half8 part[WM];
        for (int i = 0; i < WM; i++)
            part[i] = (half8)(0);
#endif
        for (int kk = 0; kk < TK; kk++) {
            TILE8 a = vload8(ly, &a_tile[kk][0]);
            TILE8 b = vload8(lx, &b_tile[kk][0]);
            TILE_T av[WM];
            vstore8(a, 0, av);
#pragma unroll
            for (int i = 0; i < WM; i++) {
#if INT8
                acc[i] = MAC8((TILE8)(av[i]), b, acc[i]);
#elif HALF_MATH
                part[i] = fma((half8)(av[i]), b, part[i]);
#else
                acc[i] = fma((float8)(av[i]), b, acc[i]);
#endif
            }
        }
#if HALF_MATH && !INT8
        for (int i = 0; i < WM; i++)
            acc[i] += convert_float8(part[i]);
#endif
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    /* Epilogue: this item's pixels ly * WM + i and channels lx * WN + j. */
    const int c0 = col0 + lx * WN;
    float8 b8 = vload8(0, bg + c0);
#if INT8
    float8 dq = x_scale * vload8(0, wscale + g * CO_pad + c0);
#endif
    for (int i = 0; i < WM; i++) {
        int m = row0 + ly * WM + i;
        if (m >= M) break;
        int n = m / volume, p = m % volume;
#if INT8
        float8 v8 = convert_float8(acc[i]) * dq + b8;
#else
        float8 v8 = acc[i] + b8;
#endif
        float v[WN];
        vstore8(v8, 0, v);
        __global Y_T *yp = y + g * ys_g + n * ys_n + p;
        for (int j = 0; j < WN; j++) {
            if (c0 + j >= CO_g) break;
#if CLAMP
            v[j] = activate1(v[j], lo, hi);
#endif
            STORE_Y(v[j], yp, (c0 + j) * ys_c);
        }
    }
}
