/* elementwise.cl: one element per work-item, no loop over data, so PoCL vectorises across
 * work-items on CPUs and GPUs get coalesced accesses: one kernel family for both variants.
 *
 * Algorithm  unary           y = f(x): ReLU, sigmoid, tanh, clip, copy (op codes below).
 *            binary          y = a (+ - * /) b with numpy broadcasting: the host collapses the
 *                            shapes to at most 8 axes with per-operand strides (0 = broadcast).
 *            channel_affine  y = x * s[c] + t[c] (BatchNormalization), optional clamp.
 *            pad_nd          constant-mode padding (negative pads crop) over up to 8 axes.
 * Layout     row-major; axes right-aligned into 8 (int8 arguments), the first `first` unused.
 * Assumes    the global size is rounded up to the work-group size: out-of-range items return.
 */
#define OP_RELU 0
#define OP_SIGMOID 1
#define OP_TANH 2
#define OP_CLIP 3
#define OP_COPY 4

#define OP_ADD 0
#define OP_SUB 1
#define OP_MUL 2
#define OP_DIV 3

/* lets NaN through, as torch does */
inline float clamp1(float v, float lo, float hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

__kernel void unary(__global const float *x, __global float *y, uint n, int op, float lo,
                    float hi)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    float v = x[i];
    switch (op) {
    case OP_RELU: v = v < 0.0f ? 0.0f : v; break;
    /* 1 / (1 + e^-v), written so that large |v| neither overflows nor loses precision */
    case OP_SIGMOID:
        v = v >= 0.0f ? 1.0f / (1.0f + exp(-v)) : exp(v) / (1.0f + exp(v));
        break;
    case OP_TANH: v = tanh(v); break;
    case OP_CLIP: v = clamp1(v, lo, hi); break;
    default: break;
    }
    y[i] = v;
}

__kernel void binary(__global const float *a, __global const float *b, __global float *y, uint n,
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
    float x = a[ia], z = b[ib], v;
    switch (op) {
    case OP_ADD: v = x + z; break;
    case OP_SUB: v = x - z; break;
    case OP_MUL: v = x * z; break;
    default: v = x / z; break;
    }
    y[i] = v;
}

__kernel void channel_affine(__global const float *x, __global float *y, __global const float *s,
                             __global const float *t, uint n, uint channels, uint inner,
                             float lo, float hi)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    uint c = (i / inner) % channels;
    y[i] = clamp1(fma(x[i], s[c], t[c]), lo, hi);
}

__kernel void pad_nd(__global const float *x, __global float *y, uint n, int8 out_dims,
                     int8 in_dims, int8 begin, float value)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    int od[8], id[8], bg[8];
    vstore8(out_dims, 0, od);
    vstore8(in_dims, 0, id);
    vstore8(begin, 0, bg);
    int rest = (int)i, src = 0, stride = 1;
    bool inside = true;
    for (int d = 7; d >= 0; d--) {
        int c = rest % od[d] - bg[d];
        rest /= od[d];
        inside = inside && c >= 0 && c < id[d];
        src += c * stride;
        stride *= id[d];
    }
    y[i] = inside ? x[src] : value;
}
