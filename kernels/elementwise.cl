/* elementwise.cl: one element per work-item, no loop over data, so PoCL vectorises across
 * work-items on CPUs and GPUs get coalesced accesses: one kernel family for both variants.
 *
 * Algorithm  unary           y = f(x): ReLU, sigmoid, tanh, clip (op codes below).
 *            binary          y = a (+ - * /) b with numpy broadcasting: the host collapses the
 *                            shapes to at most 8 axes with per-operand strides (0 = broadcast).
 *            channel_affine  y = x * s[c] + t[c] (BatchNormalization), optional clamp.
 *            pad_nd          constant-mode padding (negative pads crop) over up to 8 axes.
 * Layout     row-major; axes right-aligned into 8 (int8 arguments), the first `first` unused.
 * Storage    X_HALF / A_HALF / B_HALF / Y_HALF: that operand is stored as half (fp16 mode),
 *            read with vload_half and written with vstore_half_rte; arithmetic is float, or
 *            with HALF_MATH (fp16 on a device with cl_khr_fp16) half for ReLU, the binary
 *            operators and the affine map (sigmoid, tanh and clamps evaluate in float).
 * Assumes    the global size is rounded up to the work-group size: out-of-range items return.
 */
#ifndef X_HALF
#define X_HALF 0 /* the input is stored as half */
#endif
#ifndef A_HALF
#define A_HALF 0 /* binary: A is stored as half */
#endif
#ifndef B_HALF
#define B_HALF 0 /* binary: B is stored as half */
#endif
#ifndef Y_HALF
#define Y_HALF 0 /* the output is stored as half */
#endif
#include "storage.clh"
#include "pad.clh"
#define X_T CAT(ST_T_, X_HALF)
#define LOAD_X(p, i) CAT(ST_LD_, X_HALF)(p, i)
#define A_T CAT(ST_T_, A_HALF)
#define LOAD_A(p, i) CAT(ST_LD_, A_HALF)(p, i)
#define B_T CAT(ST_T_, B_HALF)
#define LOAD_B(p, i) CAT(ST_LD_, B_HALF)(p, i)
#define Y_T CAT(ST_T_, Y_HALF)
#define STORE_Y(v, p, i) CAT(ST_ST_, Y_HALF)(v, p, i)

/* The type the kernels compute in, and its loads and stores. */
#if HALF_MATH
#define AR_T half
#define AR_LD_X(p, i) CAT(HM_LD_, X_HALF)(p, i)
#define AR_LD_A(p, i) CAT(HM_LD_, A_HALF)(p, i)
#define AR_LD_B(p, i) CAT(HM_LD_, B_HALF)(p, i)
#define AR_ST_Y(v, p, i) CAT(HM_ST_, Y_HALF)(v, p, i)
#else
#define AR_T float
#define AR_LD_X(p, i) LOAD_X(p, i)
#define AR_LD_A(p, i) LOAD_A(p, i)
#define AR_LD_B(p, i) LOAD_B(p, i)
#define AR_ST_Y(v, p, i) STORE_Y(v, p, i)
#endif

#define OP_RELU 0
#define OP_SIGMOID 1
#define OP_TANH 2
#define OP_CLIP 3

#define OP_ADD 0
#define OP_SUB 1
#define OP_MUL 2
#define OP_DIV 3

#include "clamp.clh"

__kernel void unary(__global const X_T *x, __global Y_T *y, uint n, int op, float lo,
                    float hi)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    AR_T v = AR_LD_X(x, i);
    float f = (float)v; /* the transcendental functions and the clamp work in float */
    switch (op) {
    case OP_RELU: v = v < (AR_T)0 ? (AR_T)0 : v; break;
    /* 1 / (1 + e^-v), written so that large |v| neither overflows nor loses precision */
    case OP_SIGMOID:
        v = (AR_T)(f >= 0.0f ? 1.0f / (1.0f + exp(-f)) : exp(f) / (1.0f + exp(f)));
        break;
    case OP_TANH: v = (AR_T)tanh(f); break;
    case OP_CLIP: v = (AR_T)clamp1(f, lo, hi); break;
    default: break;
    }
    AR_ST_Y(v, y, i);
}

__kernel void binary(__global const A_T *a, __global const B_T *b, __global Y_T *y, uint n,
                     int op, int first, int8 dims, int8 sa, int8 sb)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    int dv[8], av[8], bv[8];
    vstore8(dims, 0, dv);
    vstore8(sa, 0, av);
    vstore8(sb, 0, bv);
    int rest = (int)i, ia = 0, ib = 0;
    for (int d = 7; d >= first; d--) {
        int c = rest % dv[d];
        rest /= dv[d];
        ia += c * av[d];
        ib += c * bv[d];
    }
    AR_T x = AR_LD_A(a, ia), z = AR_LD_B(b, ib), v;
    switch (op) {
    case OP_ADD: v = x + z; break;
    case OP_SUB: v = x - z; break;
    case OP_MUL: v = x * z; break;
    default: v = x / z; break;
    }
    AR_ST_Y(v, y, i);
}

__kernel void channel_affine(__global const X_T *x, __global Y_T *y, __global const float *s,
                             __global const float *t, uint n, uint channels, uint inner,
                             float lo, float hi)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    uint c = (i / inner) % channels;
    AR_T v = fma(AR_LD_X(x, i), (AR_T)s[c], (AR_T)t[c]);
    AR_ST_Y((AR_T)clamp1((float)v, lo, hi), y, i);
}

__kernel void pad_nd(__global const X_T *x, __global Y_T *y, uint n, int8 out_dims,
                     int8 in_dims, int8 begin, float value)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    int src = pad_source(i, out_dims, in_dims, begin);
    STORE_Y(src >= 0 ? LOAD_X(x, src) : value, y, i);
}
