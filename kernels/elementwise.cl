/* elementwise.cl: one element per work-item, no loop over data, so PoCL vectorises across
 * work-items on CPUs and GPUs get coalesced accesses: one kernel family for both variants,
 * except binary_runs (below), the CPU family's binary for the broadcasts without index
 * arithmetic.
 *
 * Algorithm  unary           y = f(x): ReLU, sigmoid, tanh, clip, sqrt, x^e for a constant e and
 *                            the elementwise math (op codes below), with two parameters lo, hi
 *                            (Clip's bounds, the exponent, alpha and beta of the parametric
 *                            activations).
 *            binary          y = a (+ - * / pow) b with numpy broadcasting: the host collapses the
 *                            shapes to at most 8 axes with per-operand strides (0 = broadcast);
 *                            also PRelu, y = a < 0 ? a * b : a with b the slope. Two fusions
 *                            save a kernel and a tensor: a gate applied to b first (sigmoid or
 *                            hard sigmoid: squeeze-excitation's x * sigmoid(s), HardSwish
 *                            written x * hardsigmoid(x)) and a clamp of the result (Relu or
 *                            Clip after a residual Add).
 *            channel_affine  y = x * s[c] + t[c] (BatchNormalization), optional clamp.
 *            pad_nd          constant-mode padding (negative pads crop) over up to 8 axes.
 * Layout     row-major; axes right-aligned into 8 (int8 arguments), the first `first` unused.
 * Storage    X_HALF / A_HALF / B_HALF / Y_HALF: that operand is stored as half (fp16 mode),
 *            read with vload_half and written with vstore_half_rte; arithmetic is float, or
 *            with HALF_MATH (fp16 on a device with cl_khr_fp16) half for the binary operators
 *            when all their tensors are stored as half. The affine map stays float: its
 *            folded scale and shift are float constants, which rounded to half could overflow
 *            or cancel.
 * Assumes    the global size is rounded up to the work-group size: out-of-range items return.
 */
#ifndef A_HALF
#define A_HALF 0 /* binary: A is stored as half */
#endif
#ifndef B_HALF
#define B_HALF 0 /* binary: B is stored as half */
#endif
#include "storage.clh"
#include "pad.clh"
#define A_T CAT(ST_T_, A_HALF)
#define LOAD_A(p, i) CAT(ST_LD_, A_HALF)(p, i)
#define B_T CAT(ST_T_, B_HALF)
#define LOAD_B(p, i) CAT(ST_LD_, B_HALF)(p, i)

/* What binary computes in: half with HALF_MATH when A, B and Y are all stored as half (a float
 * input or output, such as a constant or a graph input or output, keeps the op in float, so
 * no float value is rounded to half or overflows there). */
#if HALF_MATH && A_HALF && B_HALF && Y_HALF
#define BIN_T half
#define BIN_LD_A(p, i) ((p)[i])
#define BIN_LD_B(p, i) ((p)[i])
#define BIN_ST_Y(v, p, i) ((p)[i] = (v))
#else
#define BIN_T float
#define BIN_LD_A(p, i) LOAD_A(p, i)
#define BIN_LD_B(p, i) LOAD_B(p, i)
#define BIN_ST_Y(v, p, i) STORE_Y(v, p, i)
#endif

#define OP_RELU 0
#define OP_SIGMOID 1
#define OP_TANH 2
#define OP_CLIP 3
#define OP_SQRT 20
#define OP_POW_SCALAR 21 /* exponent in lo */
/* elementwise math (nn_unary_op in src/nn/nn_internal.h) */
#define OP_EXP 32
#define OP_LOG 33
#define OP_NEG 34
#define OP_ABS 35
#define OP_RECIPROCAL 36
#define OP_ERF 37
#define OP_GELU 38
#define OP_GELU_TANH 39
#define OP_LEAKY_RELU 40
#define OP_ELU 41
#define OP_CELU 42
#define OP_SELU 43
#define OP_HARD_SIGMOID 44
#define OP_HARD_SWISH 45
#define OP_SOFTPLUS 46

#define OP_ADD 0
#define OP_SUB 1
#define OP_MUL 2
#define OP_DIV 3
#define OP_POW 20
#define OP_PRELU 32

#include "clamp.clh"

/* v^e for a constant e: x^2 as one product, x^0.5 as a square root (more accurate than pow,
 * with pow's special cases kept: (-0)^0.5 = +0, (-inf)^0.5 = +inf); pow otherwise. */
inline float pow_scalar(float v, float e)
{
    if (e == 2.0f) return v * v;
    if (e == 1.0f) return v;
    if (e == 0.5f) return v == -INFINITY ? INFINITY : sqrt(v) + 0.0f;
    return pow(v, e);
}

/* 1 / (1 + e^-v), written so that large |v| neither overflows nor loses precision: with
 * e = e^-|v|, 1 / (1 + e) for v >= 0 and e / (1 + e) below (one exp for either side). */
inline float sigmoid1(float v)
{
    float e = exp(-fabs(v));
    return v >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

/* The elementwise math ops (codes 32 and up) of v with parameters a (alpha) and b (beta). Where
 * a naive formula loses precision it is rewritten: e^v - 1 as expm1, Gelu through erfc and its
 * tanh form through e^-2u (1 + erf and 1 + tanh cancel for negative v), Softplus as
 * v + log1p(e^-v) for v > 0 (no overflow). */
static inline float unary_math(int op, float v, float a, float b)
{
    switch (op) {
    case OP_EXP: return exp(v);
    case OP_LOG: return log(v);
    case OP_NEG: return -v;
    case OP_ABS: return fabs(v);
    case OP_RECIPROCAL: return 1.0f / v;
    case OP_ERF: return erf(v);
    case OP_GELU: return 0.5f * v * erfc(-v * M_SQRT1_2_F);
    /* (1 + tanh(u)) / 2 = 1 / (1 + e^-2u): no cancellation for negative u */
    case OP_GELU_TANH:
        return v / (1.0f + exp(-1.5957691216057308f * (v + 0.044715f * v * v * v)));
    case OP_LEAKY_RELU: return v < 0.0f ? a * v : v;
    case OP_ELU: return v < 0.0f ? a * expm1(v) : v;
    case OP_CELU: return fmax(v, 0.0f) + fmin(0.0f, a * expm1(v / a));
    case OP_SELU: return b * (v <= 0.0f ? a * expm1(v) : v);
    case OP_HARD_SIGMOID: return clamp1(a * v + b, 0.0f, 1.0f);
    case OP_HARD_SWISH: return v * clamp1(v * (1.0f / 6.0f) + 0.5f, 0.0f, 1.0f);
    case OP_SOFTPLUS: return v > 0.0f ? v + log1p(exp(-v)) : log1p(exp(v));
    default: return v;
    }
}

__kernel void unary(__global const X_T *x, __global Y_T *y, uint n, int op, float lo,
                    float hi)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    float v = LOAD_X(x, i);
    switch (op) {
    case OP_RELU: v = v < 0.0f ? 0.0f : v; break;
    case OP_SIGMOID: v = sigmoid1(v); break;
    case OP_TANH: v = tanh(v); break;
    case OP_CLIP: v = clamp1(v, lo, hi); break;
    case OP_SQRT: v = sqrt(v); break;
    case OP_POW_SCALAR: v = pow_scalar(v, lo); break;
    default: v = unary_math(op, v, lo, hi); break; /* lo, hi: alpha, beta */
    }
    STORE_Y(v, y, i);
}

/* The gate of b fused into binary: sigmoid, or hard sigmoid with alpha ga and beta gb. */
#define GATE_NONE 0
#define GATE_SIGMOID 1
#define GATE_HARD_SIGMOID 2

/* One element of binary: x (op) gate(z), then the fused clamp; [-inf, inf] without one (NaN
 * passes either way). Shared by `binary` and `binary_runs` so both compute the same float ops. */
inline BIN_T binary1(BIN_T x, BIN_T z, int op, int gate, int gate_half, float ga, float gb,
                     float lo, float hi)
{
    BIN_T v;
    /* The gate in float, as the unfused Sigmoid / HardSigmoid computes it; rounded to half
     * (gate_half) where the unfused graph would have stored it as half. */
    if (gate != GATE_NONE) {
        float g = gate == GATE_SIGMOID ? sigmoid1((float)z)
                                       : clamp1(ga * (float)z + gb, 0.0f, 1.0f);
        if (gate_half) {
            ushort bits;
            vstore_half_rte(g, 0, (__private half *)&bits);
            g = vload_half(0, (__private const half *)&bits);
        }
        z = (BIN_T)g;
    }
    switch (op) {
    case OP_ADD: v = x + z; break;
    case OP_SUB: v = x - z; break;
    case OP_MUL: v = x * z; break;
    case OP_POW: v = (BIN_T)pow((float)x, (float)z); break;
    case OP_PRELU: v = x < (BIN_T)0 ? x * z : x; break;
    default: v = x / z; break;
    }
    return (BIN_T)clamp1((float)v, lo, hi);
}

__kernel void binary(__global const A_T *a, __global const B_T *b, __global Y_T *y, uint n,
                     int op, int first, int8 dims, int8 sa, int8 sb, int gate, int gate_half,
                     float ga, float gb, float lo, float hi)
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
    BIN_ST_Y(binary1(BIN_LD_A(a, ia), BIN_LD_B(b, ib), op, gate, gate_half, ga, gb, lo, hi), y,
             i);
}

/* binary_runs (CPU family): 16 adjacent outputs per work-item, for the broadcasts the host can
 * write as "element i of an operand is (i / inner) % ch": the same shape (inner 1, ch n), a
 * scalar (ch 1), a per-channel operand (inner = the spatial size) and one repeated per sample
 * (inner 1, ch the sample size). `binary`'s 8-axis index
 * loop costs a division and a remainder per axis and element and PoCL runs it scalar; here a
 * contiguous run of an operand is one 16-wide load, a run inside one channel one load and a splat, and
 * every operator but Pow, with its fused gate and clamp, computes on 16-wide vectors: the same
 * float ops per element as binary1, so the results are bit-identical, except that the sigmoid
 * gate's vector exp may differ from the scalar one in the last bit. Pow and the last, partial
 * run go element by element. */
#ifndef RAW_T /* the integer builds (pad_nd moving raw elements) have no 16-wide Y stores */
#define RUN 16
#define BIN_T16 CAT(BIN_T, 16)
#if HALF_MATH && A_HALF && B_HALF && Y_HALF
#define BIN_LD16_A(p, i) vload16(0, (p) + (i))
#define BIN_LD16_B(p, i) vload16(0, (p) + (i))
#define BIN_ST16_Y(v, p, i) vstore16((v), 0, (p) + (i))
#define BIN_CVT16 convert_half16
#else
#define BIN_LD16_A(p, i) CAT(ST_LD16_, A_HALF)(p, i)
#define BIN_LD16_B(p, i) CAT(ST_LD16_, B_HALF)(p, i)
#define BIN_ST16_Y(v, p, i) CAT(ST_ST16_, Y_HALF)(v, p, i)
#define BIN_CVT16
#endif

/* clamp1 on 16 lanes, in clamp1's order (lo wins when lo > hi). */
inline float16 clamp1_16(float16 v, float lo, float hi)
{
    return select(select(v, (float16)(hi), v > (float16)(hi)), (float16)(lo), v < (float16)(lo));
}

/* binary1's gate on 16 lanes, with its float ops (sigmoid1's one exp of -|v|). PoCL maps the
 * float16 exp to its vector math library; the lane-by-lane loop it replaces called the scalar
 * exp 16 times, which cost about as much as the rest of an EfficientNet. The vector exp may
 * differ from the scalar one in the last bit. */
inline float16 gate16(float16 z, int gate, int gate_half, float ga, float gb)
{
    float16 g;
    if (gate == GATE_SIGMOID) {
        float16 e = exp(-fabs(z));
        g = select(e / (1.0f + e), 1.0f / (1.0f + e), z >= (float16)(0.0f));
    } else {
        g = clamp1_16(ga * z + gb, 0.0f, 1.0f);
    }
    if (gate_half) {
        ushort bits[RUN];
        vstore_half16_rte(g, 0, (__private half *)bits);
        g = vload_half16(0, (__private const half *)bits);
    }
    return g;
}

/* The 16 lanes from element i0 of an operand indexed (i / inner) % ch. */
#define RUN_LOAD(v, p, LD1, LD16, inner, ch)                                                    \
    do {                                                                                        \
        if ((inner) == 1 && i0 % (ch) + RUN <= (ch)) {                                          \
            v = LD16(p, i0 % (ch));                                                             \
        } else if (i0 / (inner) == (i0 + RUN - 1) / (inner)) {                                  \
            v = (BIN_T16)(LD1(p, (i0 / (inner)) % (ch)));                                       \
        } else {                                                                                \
            BIN_T lanes_[RUN];                                                                  \
            for (uint l_ = 0; l_ < RUN; l_++)                                                   \
                lanes_[l_] = LD1(p, ((i0 + l_) / (inner)) % (ch));                              \
            v = vload16(0, lanes_);                                                             \
        }                                                                                       \
    } while (0)

__kernel void binary_runs(__global const A_T *a, __global const B_T *b, __global Y_T *y, uint n,
                          int op, uint a_inner, uint a_ch, uint b_inner, uint b_ch, int gate,
                          int gate_half, float ga, float gb, float lo, float hi)
{
    uint i0 = get_global_id(0) * RUN;
    if (i0 >= n) return;
    if (n - i0 < RUN) {
        for (uint i = i0; i < n; i++)
            BIN_ST_Y(binary1(BIN_LD_A(a, (i / a_inner) % a_ch), BIN_LD_B(b, (i / b_inner) % b_ch),
                             op, gate, gate_half, ga, gb, lo, hi),
                     y, i);
        return;
    }
    BIN_T16 x, z, v;
    RUN_LOAD(x, a, BIN_LD_A, BIN_LD16_A, a_inner, a_ch);
    RUN_LOAD(z, b, BIN_LD_B, BIN_LD16_B, b_inner, b_ch);
    if (op == OP_POW) {
        BIN_T xs[RUN], zs[RUN];
        vstore16(x, 0, xs);
        vstore16(z, 0, zs);
        for (uint l = 0; l < RUN; l++)
            xs[l] = binary1(xs[l], zs[l], op, gate, gate_half, ga, gb, lo, hi);
        v = vload16(0, xs);
    } else {
        if (gate != GATE_NONE) z = BIN_CVT16(gate16(convert_float16(z), gate, gate_half, ga, gb));
        switch (op) {
        case OP_ADD: v = x + z; break;
        case OP_SUB: v = x - z; break;
        case OP_MUL: v = x * z; break;
        case OP_PRELU: v = select(x, x * z, x < (BIN_T16)(0)); break;
        default: v = x / z; break;
        }
        v = BIN_CVT16(clamp1_16(convert_float16(v), lo, hi));
    }
    BIN_ST16_Y(v, y, i0);
}
#endif

__kernel void channel_affine(__global const X_T *x, __global Y_T *y, __global const float *s,
                             __global const float *t, uint n, uint channels, uint inner,
                             float lo, float hi)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    uint c = (i / inner) % channels;
    STORE_Y(clamp1(fma(LOAD_X(x, i), s[c], t[c]), lo, hi), y, i);
}

__kernel void pad_nd(__global const X_T *x, __global Y_T *y, uint n, int8 out_dims,
                     int8 in_dims, int8 begin, float value)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    int src = pad_source(i, out_dims, in_dims, begin);
    STORE_Y(src >= 0 ? LOAD_X(x, src) : value, y, i);
}
