/* reduce.cl: ReduceSum / ReduceMean / ReduceMax / ReduceMin / ReduceL2 over any set of axes,
 * and LayerNormalization over the trailing axes.
 *
 * Algorithm  reduce      one output element per work-item: it walks its reduced elements in
 *                        row-major order, summing with compensated (Kahan) summation, so a sum
 *                        of n floats is as accurate as a float sum of 2 or 3 terms, whatever
 *                        n; max / min propagate NaN (as numpy). One family for both device
 *                        variants (the same choice as softmax.cl).
 *            layer_norm  one row per work-item: the mean (compensated sum), then the variance
 *                        as the mean of (x - mean)^2 (two passes: no cancellation), then
 *                        y = (x - mean) / sqrt(var + eps) * scale + bias; all in float.
 *            reduce_rows (CPU family) reduce where each output reduces a contiguous row (the
 *                        reduced axes trailing): the row on float16 vectors, 16 compensated
 *                        partial sums (or maxima) folded as layer_norm_rows does.
 *            reduce_cols (CPU family) reduce where the reduced axes form one run with kept axes
 *                        inside it (a mean over the positions of [N, L, C]): 16 adjacent
 *                        outputs per work-item, one float16 lane each, so the walk over the
 *                        reduced run is one vector load per step and needs no merge.
 *            layer_norm_rows  (CPU family) layer_norm with each pass over the row on float16
 *                        vectors: 16 compensated partial sums, merged lane by lane (again
 *                        compensated) with the scalar tail of a row whose length is not a
 *                        multiple of 16. A loop over the row keeps PoCL from vectorising
 *                        across work-items, so the vectors are written out: 6x faster than
 *                        layer_norm on rows of 256 (merging the lanes one by one instead of in
 *                        halves made it only 2x). Same formulation, so the results agree
 *                        with layer_norm's to a few ulps (the order of the additions differs).
 * Layout     reduce: the host collapses the input to at most 4 kept and 4 reduced axis groups
 *            (merging neighbours of the same kind; rank 8 alternates at worst), right-aligned
 *            into int4 extents and element strides; output element i is the row-major index
 *            over the kept groups. layer_norm: [rows][len] row-major; scale and bias have len
 *            values (step 1) or one (step 0).
 * Storage    X_HALF / Y_HALF: input / output stored as half (fp16 mode); arithmetic in float.
 * Assumes    the global size is rounded up to the work-group size: out-of-range items return.
 */
#include "storage.clh"

#define REDUCE_SUM 0
#define REDUCE_MEAN 1
#define REDUCE_MAX 2
#define REDUCE_MIN 3
#define REDUCE_L2 4
#ifndef REDUCE_OP
#define REDUCE_OP REDUCE_SUM
#endif

/* Kahan summation: *c holds what the rounding of *sum lost. Once the sum is infinite the
 * correction would be NaN (inf - inf), so it is dropped: inf + finite stays inf. */
static inline void kahan_add(float *sum, float *c, float v)
{
    float y = v - *c;
    float t = *sum + y;
    *c = isfinite(t) ? (t - *sum) - y : 0.0f;
    *sum = t;
}

#if REDUCE_OP == REDUCE_MAX
#define ACC_INIT (-INFINITY)
#define ACC_ADD(acc, c, v) ((acc) = (isnan(v) || (v) > (acc)) ? (v) : (acc))
#elif REDUCE_OP == REDUCE_MIN
#define ACC_INIT INFINITY
#define ACC_ADD(acc, c, v) ((acc) = (isnan(v) || (v) < (acc)) ? (v) : (acc))
#elif REDUCE_OP == REDUCE_L2
#define ACC_INIT 0.0f
#define ACC_ADD(acc, c, v) kahan_add(&(acc), &(c), (v) * (v))
#else
#define ACC_INIT 0.0f
#define ACC_ADD(acc, c, v) kahan_add(&(acc), &(c), (v))
#endif

__kernel void reduce(__global const X_T *x, __global Y_T *y, uint n, float count, int4 out_dims,
                     int4 out_strides, int4 red_dims, int4 red_strides)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    int od[4], os[4], rd[4], rs[4];
    vstore4(out_dims, 0, od);
    vstore4(out_strides, 0, os);
    vstore4(red_dims, 0, rd);
    vstore4(red_strides, 0, rs);
    int rest = (int)i, base = 0;
    for (int d = 3; d >= 0; d--) {
        base += (rest % od[d]) * os[d];
        rest /= od[d];
    }
    float acc = ACC_INIT, c = 0.0f;
    for (int a = 0; a < rd[0]; a++)
        for (int b = 0; b < rd[1]; b++)
            for (int e = 0; e < rd[2]; e++) {
                int off = base + a * rs[0] + b * rs[1] + e * rs[2];
                for (int f = 0; f < rd[3]; f++) {
                    float v = LOAD_X(x, off + f * rs[3]);
                    ACC_ADD(acc, c, v);
                }
            }
#if REDUCE_OP == REDUCE_MEAN
    acc = acc / count;
#elif REDUCE_OP == REDUCE_L2
    acc = sqrt(acc);
#endif
    STORE_Y(acc, y, i);
}

__kernel void layer_norm(__global const X_T *x, __global Y_T *y, __global const float *scale,
                         __global const float *bias, uint rows, uint len, int scale_step,
                         int bias_step, float epsilon)
{
    uint r = get_global_id(0);
    if (r >= rows) return;
    size_t base = (size_t)r * len;
    float sum = 0.0f, c = 0.0f;
    for (uint j = 0; j < len; j++)
        kahan_add(&sum, &c, LOAD_X(x, base + j));
    float mean = sum / (float)len;
    sum = c = 0.0f;
    for (uint j = 0; j < len; j++) {
        float d = LOAD_X(x, base + j) - mean;
        kahan_add(&sum, &c, d * d);
    }
    float inv = 1.0f / sqrt(sum / (float)len + epsilon);
    for (uint j = 0; j < len; j++) {
        float d = (LOAD_X(x, base + j) - mean) * inv;
        STORE_Y(fma(d, scale[j * scale_step], bias[j * bias_step]), y, base + j);
    }
}

/* ---- layer_norm_rows (CPU family) ---- */

/* kahan_add on 16 lanes. */
static inline void kahan_add16(float16 *sum, float16 *c, float16 v)
{
    float16 y = v - *c;
    float16 t = *sum + y;
    *c = select((float16)(0.0f), (t - *sum) - y, isfinite(t));
    *sum = t;
}

/* a + b = s + *e exactly (TwoSum, lane by lane); *e is 0 where s is not finite (as kahan_add). */
#define TWO_SUM(T)                                                                                 \
    static inline T two_sum_##T(T a, T b, T *e)                                                    \
    {                                                                                              \
        T s = a + b, bb = s - a;                                                                   \
        *e = select((T)(0.0f), (a - (s - bb)) + (b - bb), isfinite(s));                            \
        return s;                                                                                  \
    }
TWO_SUM(float8)
TWO_SUM(float4)
TWO_SUM(float2)

/* The sum of a row's 16 compensated lanes (sum16, with c16 what they lost, negated) and its
 * scalar tail (sum, c): the lanes folded in halves with TwoSum, the rounding errors and the
 * corrections summed alongside (they are tiny next to the sum), so the merge costs 4 vector
 * steps per row instead of 32 scalar ones. */
static inline float kahan_merge16(float16 sum16, float16 c16, float sum, float c)
{
    float8 e8, s8 = two_sum_float8(sum16.lo, sum16.hi, &e8);
    float8 k8 = e8 - (c16.lo + c16.hi);
    float4 e4, s4 = two_sum_float4(s8.lo, s8.hi, &e4);
    float4 k4 = e4 + k8.lo + k8.hi;
    float2 e2, s2 = two_sum_float2(s4.lo, s4.hi, &e2);
    float2 k2 = e2 + k4.lo + k4.hi;
    kahan_add(&sum, &c, s2.x);
    kahan_add(&sum, &c, s2.y);
    kahan_add(&sum, &c, k2.x + k2.y);
    return sum;
}

__kernel void layer_norm_rows(__global const X_T *x, __global Y_T *y, __global const float *scale,
                              __global const float *bias, uint rows, uint len, int scale_step,
                              int bias_step, float epsilon)
{
    uint r = get_global_id(0);
    if (r >= rows) return;
    __global const X_T *row = x + (size_t)r * len;
    __global Y_T *out = y + (size_t)r * len;
    uint body = len & ~15u; /* the elements the vector loops cover */
    float16 sum16 = (float16)(0.0f), c16 = (float16)(0.0f);
    for (uint j = 0; j < body; j += 16)
        kahan_add16(&sum16, &c16, LOAD16_X(row, j));
    float sum = 0.0f, c = 0.0f;
    for (uint j = body; j < len; j++)
        kahan_add(&sum, &c, LOAD_X(row, j));
    float mean = kahan_merge16(sum16, c16, sum, c) / (float)len;
    sum16 = c16 = (float16)(0.0f);
    for (uint j = 0; j < body; j += 16) {
        float16 d = LOAD16_X(row, j) - mean;
        kahan_add16(&sum16, &c16, d * d);
    }
    sum = c = 0.0f;
    for (uint j = body; j < len; j++) {
        float d = LOAD_X(row, j) - mean;
        kahan_add(&sum, &c, d * d);
    }
    float inv = 1.0f / sqrt(kahan_merge16(sum16, c16, sum, c) / (float)len + epsilon);
    for (uint j = 0; j < body; j += 16) {
        float16 s = scale_step ? vload16(0, scale + j) : (float16)(scale[0]);
        float16 b = bias_step ? vload16(0, bias + j) : (float16)(bias[0]);
        STORE16_Y(fma((LOAD16_X(row, j) - mean) * inv, s, b), out, j);
    }
    for (uint j = body; j < len; j++) {
        float d = (LOAD_X(row, j) - mean) * inv;
        STORE_Y(fma(d, scale[j * scale_step], bias[j * bias_step]), out, j);
    }
}

/* ---- reduce_rows (CPU family) ---- */

/* The last step of a mean or an L2 norm over `len` elements, on a float or a float16 alike. */
#if REDUCE_OP == REDUCE_MEAN
#define FINISH(acc, len) ((acc) / (float)(len))
#elif REDUCE_OP == REDUCE_L2
#define FINISH(acc, len) sqrt(acc)
#else
#define FINISH(acc, len) (acc)
#endif

#if REDUCE_OP == REDUCE_MAX || REDUCE_OP == REDUCE_MIN
#if REDUCE_OP == REDUCE_MAX
#define BEATS(v, acc) ((v) > (acc))
#else
#define BEATS(v, acc) ((v) < (acc))
#endif
/* ACC_ADD on 16 lanes: a NaN lane stays NaN (nothing beats it), as in the scalar loop. */
#define ACC_ADD16(acc, c, v) ((acc) = select((acc), (v), isnan(v) | BEATS(v, acc)))
#define ACC_MERGE(acc, c, sum, c1) fold_extreme16(acc, sum)
static inline float fold_extreme16(float16 acc16, float acc)
{
    float l[16];
    vstore16(acc16, 0, l);
    for (int i = 0; i < 16; i++)
        ACC_ADD(acc, c_unused, l[i]);
    return acc;
}
#else
#if REDUCE_OP == REDUCE_L2
#define ACC_ADD16(acc, c, v) kahan_add16(&(acc), &(c), (v) * (v))
#else
#define ACC_ADD16(acc, c, v) kahan_add16(&(acc), &(c), (v))
#endif
#define ACC_MERGE(acc, c, sum, c1) kahan_merge16(acc, c, sum, c1)
#endif

__kernel void reduce_rows(__global const X_T *x, __global Y_T *y, uint n, uint len)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    __global const X_T *row = x + (size_t)i * len;
    uint body = len & ~15u; /* the elements the vector loop covers */
    float16 acc16 = (float16)(ACC_INIT), c16 = (float16)(0.0f);
    for (uint j = 0; j < body; j += 16)
        ACC_ADD16(acc16, c16, LOAD16_X(row, j));
    float acc = ACC_INIT, c = 0.0f;
    for (uint j = body; j < len; j++) {
        float v = LOAD_X(row, j);
        ACC_ADD(acc, c, v);
    }
    acc = ACC_MERGE(acc16, c16, acc, c);
    acc = FINISH(acc, len);
    STORE_Y(acc, y, i);
}

/* ---- reduce_cols (CPU family) ---- */

/* x viewed as [outer][len][inner], y as [outer][inner]: output i reduces the len elements at
 * stride inner from (i / inner) * len * inner + i % inner. A work-item takes outputs
 * i0 .. i0 + 15; where they do not lie in one inner run (inner not a multiple of 16, the
 * last outputs) it goes output by output. */
__kernel void reduce_cols(__global const X_T *x, __global Y_T *y, uint n, uint len, uint inner)
{
    uint i0 = get_global_id(0) * 16;
    if (i0 >= n) return;
    if (n - i0 >= 16 && i0 % inner + 16 <= inner) {
        __global const X_T *col = x + (size_t)(i0 / inner) * len * inner + i0 % inner;
        float16 acc = (float16)(ACC_INIT), c = (float16)(0.0f);
        for (uint r = 0; r < len; r++)
            ACC_ADD16(acc, c, LOAD16_X(col, (size_t)r * inner));
        acc = FINISH(acc, len);
        STORE16_Y(acc, y, i0);
        return;
    }
    for (uint i = i0; i < n && i < i0 + 16; i++) {
        __global const X_T *col = x + (size_t)(i / inner) * len * inner + i % inner;
        float acc = ACC_INIT, c = 0.0f;
        for (uint r = 0; r < len; r++) {
            float v = LOAD_X(col, (size_t)r * inner);
            ACC_ADD(acc, c, v);
        }
        acc = FINISH(acc, len);
        STORE_Y(acc, y, i);
    }
}
