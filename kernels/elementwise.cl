/* elementwise.cl: one element per work-item, no loop over data, so PoCL vectorises across
 * work-items on CPUs and GPUs get coalesced accesses: one kernel family for both variants,
 * except the CPU family's *_runs kernels (below), 16 elements per work-item on float16
 * vectors: binary_runs (the broadcasts without index arithmetic), unary_runs (math calls PoCL
 * kept scalar) and channel_affine_runs (one channel lookup per run).
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

/* erf(a) for a = |x| >= 0 (or NaN), and erfc(a) in *erfc_a, on float or float16 (ERF_ABS(NAME,
 * T)), given s + s_lo = a^2 (s rounded, s_lo its rounding error). PoCL's erf and erfc, scalar
 * or vector, are calls to scalar code: Erf ran at a quarter of the speed of an Add over the
 * same tensor. This is branch-free, so it vectorises:
 *   a < 1:   erf(a) = a + a Q(a^2), Q of degree 6 (the small term added last keeps the error
 *            under 1.2 ulp), erfc(a) = 1 - erf(a) (at least 0.157: no cancellation);
 *   a >= 1:  erfc(a) = exp(P(1/a) - a^2) / a, P of degree 10 fitted over [1, 10.5] (beyond,
 *            erfc underflows: exp gives 0, as for a = inf), erf(a) = 1 - erfc(a);
 * with both pieces computed and the lanes selected. tools/fit_erf.py fits Q and P (minimax)
 * and checks the float evaluation: under 1.3 ulp against a double erf. The exponent
 * P - a^2 reaches -110, where one rounding is 2^-24 * 64 relative; its low part (s_lo and
 * the rounding of P - s, exact by Fast2Sum as s >= 1 > |P|) is applied after exp as a factor
 * 1 + r_lo, so erfc keeps a few ulps, which Gelu's negative side needs (1 + erf(-a) would
 * cancel). A NaN passes through both pieces; an infinite a gives erfc 0. */
#define ERF_ABS(NAME, T)                                                                       \
    static inline T NAME(T a, T s, T s_lo, T *erfc_a)                                          \
    {                                                                                          \
        T one = (T)(1.0f);                                                                     \
        T q = fma(s, (T)(7.88915859e-05f), (T)(-0.000802085386f));                             \
        q = fma(q, s, (T)(0.00518953707f));                                                    \
        q = fma(q, s, (T)(-0.0268544462f));                                                    \
        q = fma(q, s, (T)(0.112836003f));                                                      \
        q = fma(q, s, (T)(-0.37612626f));                                                      \
        q = fma(q, s, (T)(0.128379166f));                                                      \
        T small = fma(a, q, a);                                                                \
        T t = one / fmax(a, one);                                                              \
        T p = fma(t, (T)(-0.0707578808f), (T)(0.342581868f));                                  \
        p = fma(p, t, (T)(-0.583564103f));                                                     \
        p = fma(p, t, (T)(0.150756881f));                                                      \
        p = fma(p, t, (T)(0.950102985f));                                                      \
        p = fma(p, t, (T)(-1.64557648f));                                                      \
        p = fma(p, t, (T)(1.17784023f));                                                       \
        p = fma(p, t, (T)(-0.111170679f));                                                     \
        p = fma(p, t, (T)(-0.486588657f));                                                     \
        p = fma(p, t, (T)(-0.000889555144f));                                                  \
        p = fma(p, t, (T)(-0.57234019f));                                                      \
        T r = p - s;                                                                           \
        T r_lo = select((T)(0.0f), (p - (r + s)) - s_lo, isfinite(r));                         \
        T e = exp(r);                                                                          \
        T big = fma(e, r_lo, e) * t;                                                           \
        *erfc_a = a < one ? one - small : big;                                                 \
        return a < one ? small : one - big;                                                    \
    }
ERF_ABS(erf_abs1, float)
ERF_ABS(erf_abs16, float16)

/* y = f(v) for every unary op code, with two parameters a, b (Clip's bounds, the exponent of
 * Pow by a constant, alpha and beta of the parametric activations), written once for float
 * (unary1) and float16 (unary16, binary_runs's CPU sibling unary_runs): the builtins are
 * overloaded and a vector ?: selects lane by lane, so both compute the same float ops; PoCL's
 * vector math may differ from its scalar math in the last bit. Where a naive formula loses
 * precision it is rewritten: v^0.5 as a square root with pow's special cases kept
 * ((-0)^0.5 = +0, (-inf)^0.5 = +inf), e^v - 1 as expm1, Gelu through erfc and its tanh form
 * through e^-2u (1 + erf and 1 + tanh cancel for negative v), Softplus as v + log1p(e^-v) for
 * v > 0 (no overflow). Erf and Gelu use erf_abs (below), not the builtins. */
#define UNARY_FN(NAME, T, ERF)                                                                 \
    static inline T NAME(int op, T v, float a, float b)                                        \
    {                                                                                          \
        T zero = (T)(0.0f), one = (T)(1.0f), e, c;                                             \
        switch (op) {                                                                          \
        case OP_RELU: return v < zero ? zero : v;                                              \
        case OP_SIGMOID:                                                                       \
            e = exp(-fabs(v));                                                                 \
            return v >= zero ? one / (one + e) : e / (one + e);                                \
        case OP_TANH: return tanh(v);                                                          \
        case OP_CLIP: return v < (T)(a) ? (T)(a) : (v > (T)(b) ? (T)(b) : v);                  \
        case OP_SQRT: return sqrt(v);                                                          \
        case OP_POW_SCALAR:                                                                    \
            if (a == 2.0f) return v * v;                                                       \
            if (a == 1.0f) return v;                                                           \
            if (a == 0.5f) return v == (T)(-INFINITY) ? (T)(INFINITY) : sqrt(v) + zero;        \
            return pow(v, (T)(a));                                                             \
        case OP_EXP: return exp(v);                                                            \
        case OP_LOG: return log(v);                                                            \
        case OP_NEG: return -v;                                                                \
        case OP_ABS: return fabs(v);                                                           \
        case OP_RECIPROCAL: return one / v;                                                    \
        case OP_ERF:                                                                           \
            e = v * v;                                                                         \
            return copysign(ERF(fabs(v), e, fma(v, v, -e), &c), v);                            \
        case OP_GELU: /* erf(|u|), u = v / sqrt(2), with u^2 = v^2 / 2 from v, not u */        \
            e = v * v;                                                                         \
            e = ERF(fabs(v * M_SQRT1_2_F), 0.5f * e, 0.5f * fma(v, v, -e), &c);                \
            return 0.5f * v * (v < zero ? c : one + e);                                        \
        case OP_GELU_TANH:                                                                     \
            return v / (one + exp(-1.5957691216057308f * (v + 0.044715f * v * v * v)));        \
        case OP_LEAKY_RELU: return v < zero ? a * v : v;                                       \
        case OP_ELU: return v < zero ? a * expm1(v) : v;                                       \
        case OP_CELU: return fmax(v, 0.0f) + fmin(zero, a * expm1(v / a));                     \
        case OP_SELU: return b * (v <= zero ? a * expm1(v) : v);                               \
        case OP_HARD_SIGMOID: e = a * v + b; return e < zero ? zero : (e > one ? one : e);     \
        case OP_HARD_SWISH:                                                                    \
            e = v * (1.0f / 6.0f) + 0.5f;                                                      \
            return v * (e < zero ? zero : (e > one ? one : e));                                \
        case OP_SOFTPLUS: return v > zero ? v + log1p(exp(-v)) : log1p(exp(v));                \
        default: return v;                                                                     \
        }                                                                                      \
    }
UNARY_FN(unary1, float, erf_abs1)
UNARY_FN(unary16, float16, erf_abs16)

__kernel void unary(__global const X_T *x, __global Y_T *y, uint n, int op, float lo,
                    float hi)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    STORE_Y(unary1(op, LOAD_X(x, i), lo, hi), y, i);
}

/* The gate of b fused into binary: sigmoid, or hard sigmoid with alpha ga and beta gb. */
#define GATE_NONE 0
#define GATE_SIGMOID 1
#define GATE_HARD_SIGMOID 2

/* One element of binary: x (op) gate(z), then the fused clamp; [-inf, inf] without one (NaN
 * passes either way). Shared by `binary` and `binary_runs` so both compute the same float ops. */
static inline BIN_T binary1(BIN_T x, BIN_T z, int op, int gate, int gate_half, float ga,
                            float gb, float lo, float hi)
{
    BIN_T v;
    /* The gate in float, as the unfused Sigmoid / HardSigmoid computes it; rounded to half
     * (gate_half) where the unfused graph would have stored it as half. */
    if (gate != GATE_NONE) {
        float g = gate == GATE_SIGMOID ? unary1(OP_SIGMOID, (float)z, 0.0f, 0.0f)
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
static inline float16 clamp1_16(float16 v, float lo, float hi)
{
    return select(select(v, (float16)(hi), v > (float16)(hi)), (float16)(lo), v < (float16)(lo));
}

/* binary1's gate on 16 lanes, with its float ops. PoCL maps the float16 exp of the sigmoid to
 * its vector math library; the lane-by-lane loop this replaces called the scalar exp 16 times,
 * which cost about as much as the rest of an EfficientNet. */
static inline float16 gate16(float16 z, int gate, int gate_half, float ga, float gb)
{
    float16 g = gate == GATE_SIGMOID ? unary16(OP_SIGMOID, z, 0.0f, 0.0f)
                                     : clamp1_16(ga * z + gb, 0.0f, 1.0f);
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

/* unary_runs (CPU family): `unary` on 16 adjacent elements per work-item. One element per
 * work-item leaves the vectorising to PoCL, which keeps calls to the math library scalar (Erf,
 * the Gelu of ConvNeXt and ViT, ran at 20 M elements/s); here they are float16 calls. The last,
 * partial run goes element by element. */
__kernel void unary_runs(__global const X_T *x, __global Y_T *y, uint n, int op, float lo,
                         float hi)
{
    uint i0 = get_global_id(0) * RUN;
    if (i0 >= n) return;
    if (n - i0 < RUN) {
        for (uint i = i0; i < n; i++)
            STORE_Y(unary1(op, LOAD_X(x, i), lo, hi), y, i);
        return;
    }
    STORE16_Y(unary16(op, LOAD16_X(x, i0), lo, hi), y, i0);
}

/* channel_affine_runs (CPU family): `channel_affine` on 16 adjacent elements per work-item. The
 * per-element channel index (a division and a remainder, which x86 has no vector instruction
 * for) becomes one per run: a run inside one channel reads its scale and shift once and
 * splats them; a run across channels gathers them lane by lane. The same fma and clamp per
 * element, so the results are bit-identical to channel_affine's. */
__kernel void channel_affine_runs(__global const X_T *x, __global Y_T *y, __global const float *s,
                                  __global const float *t, uint n, uint channels, uint inner,
                                  float lo, float hi)
{
    uint i0 = get_global_id(0) * RUN;
    if (i0 >= n) return;
    if (n - i0 < RUN) {
        for (uint i = i0; i < n; i++) {
            uint c = (i / inner) % channels;
            STORE_Y(clamp1(fma(LOAD_X(x, i), s[c], t[c]), lo, hi), y, i);
        }
        return;
    }
    float16 sv, tv;
    if (i0 / inner == (i0 + RUN - 1) / inner) {
        uint c = (i0 / inner) % channels;
        sv = (float16)(s[c]);
        tv = (float16)(t[c]);
    } else {
        float sl[RUN], tl[RUN];
        for (uint l = 0; l < RUN; l++) {
            uint c = ((i0 + l) / inner) % channels;
            sl[l] = s[c];
            tl[l] = t[c];
        }
        sv = vload16(0, sl);
        tv = vload16(0, tl);
    }
    STORE16_Y(clamp1_16(fma(LOAD16_X(x, i0), sv, tv), lo, hi), y, i0);
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
