/* softmax.cl: softmax / log-softmax along one axis, and the row argmax of a score matrix.
 *
 * Algorithm  softmax  one row (outer index, inner index) per work-item: the maximum first, then
 *                     sum of exp(x - max), then exp(x - max) / sum or x - max - log(sum), so
 *                     large inputs never overflow. One family for both device variants.
 *            softmax_rows  (CPU family, rows along the last axis: inner 1) softmax with each
 *                     pass over the row on float16 vectors, then the 16 lanes folded: PoCL
 *                     vectorises across work-items only kernels without a loop over data, and
 *                     keeps scalar exp calls scalar, so the vectors are written out. The same
 *                     float formulation; the lanes sum in a different order and the vector exp
 *                     may differ from the scalar one in the last bit. Over 10x faster than
 *                     softmax on attention's rows of 128.
 *            argmax   one row per work-item; the first maximum wins ties and a NaN counts as
 *                     the maximum (torch.argmax); also counts the row's NaN and infinite
 *                     scores, read only within the loop that finds the maximum anyway.
 * Layout     x viewed as [outer][len][inner]; a work-item handles row (i / inner, i % inner).
 * Storage    softmax: X_HALF / Y_HALF, the input / output stored as half (fp16 mode); argmax
 *            reads the float scores of a classifier's output.
 */
#include "storage.clh"

__kernel void softmax(__global const X_T *x, __global Y_T *y, uint rows, uint len,
                      uint inner, int log_output)
{
    uint i = get_global_id(0);
    if (i >= rows) return;
    size_t base = (size_t)(i / inner) * len * inner + i % inner;
    float m = -INFINITY;
    for (uint j = 0; j < len; j++)
        m = fmax(m, LOAD_X(x, base + (size_t)j * inner));
    float sum = 0.0f;
    for (uint j = 0; j < len; j++)
        sum += exp(LOAD_X(x, base + (size_t)j * inner) - m);
    float log_sum = log(sum);
    for (uint j = 0; j < len; j++) {
        float v = LOAD_X(x, base + (size_t)j * inner) - m;
        STORE_Y(log_output ? v - log_sum : exp(v) / sum, y, base + (size_t)j * inner);
    }
}

/* The largest of 16 lanes (fmax: a NaN lane is ignored, as in softmax's scalar loop). */
static inline float max16(float16 v)
{
    float8 m8 = fmax(v.lo, v.hi);
    float4 m4 = fmax(m8.lo, m8.hi);
    float2 m2 = fmax(m4.lo, m4.hi);
    return fmax(m2.x, m2.y);
}

static inline float sum16(float16 v)
{
    float8 s8 = v.lo + v.hi;
    float4 s4 = s8.lo + s8.hi;
    float2 s2 = s4.lo + s4.hi;
    return s2.x + s2.y;
}

/* softmax_rows with a float output keeps exp(x - max) in y while it sums them and divides
 * them there: one exp per element instead of two (1.6x faster on attention's rows), and
 * the same float ops, so the same results. A half output would round the kept values, so it
 * computes exp again; so does log-softmax, which needs no exp in its last pass. */
#define KEEP_EXP (!Y_HALF)
#define LOAD_Y(p, i) CAT(ST_LD_, Y_HALF)(p, i)
#define LOAD16_Y(p, i) CAT(ST_LD16_, Y_HALF)(p, i)

__kernel void softmax_rows(__global const X_T *x, __global Y_T *y, uint rows, uint len,
                           int log_output)
{
    uint r = get_global_id(0);
    if (r >= rows) return;
    __global const X_T *row = x + (size_t)r * len;
    __global Y_T *out = y + (size_t)r * len;
    uint body = len & ~15u; /* the elements the vector loops cover */
    float16 m16 = (float16)(-INFINITY);
    for (uint j = 0; j < body; j += 16)
        m16 = fmax(m16, LOAD16_X(row, j));
    float m = max16(m16);
    for (uint j = body; j < len; j++)
        m = fmax(m, LOAD_X(row, j));
    bool keep = KEEP_EXP && !log_output;
    float16 s16 = (float16)(0.0f);
    for (uint j = 0; j < body; j += 16) {
        float16 e = exp(LOAD16_X(row, j) - m);
        s16 += e;
        if (keep) STORE16_Y(e, out, j);
    }
    float sum = sum16(s16);
    for (uint j = body; j < len; j++) {
        float e = exp(LOAD_X(row, j) - m);
        sum += e;
        if (keep) STORE_Y(e, out, j);
    }
    float log_sum = log(sum);
    for (uint j = 0; j < body; j += 16) {
        float16 v = keep ? LOAD16_Y(out, j) : LOAD16_X(row, j) - m;
        STORE16_Y(keep ? v / sum : log_output ? v - log_sum : exp(v) / sum, out, j);
    }
    for (uint j = body; j < len; j++) {
        float v = keep ? LOAD_Y(out, j) : LOAD_X(row, j) - m;
        STORE_Y(keep ? v / sum : log_output ? v - log_sum : exp(v) / sum, out, j);
    }
}

__kernel void argmax(__global const float *scores, __global int *pred,
                     __global uint *nonfinite, uint n, uint c)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    __global const float *row = scores + (size_t)i * c;
    int best = 0;
    float value = row[0];
    uint bad = isfinite(value) ? 0 : 1;
    for (uint j = 1; j < c; j++) {
        float v = row[j];
        bad += isfinite(v) ? 0 : 1;
        if (!isnan(value) && (v > value || isnan(v))) {
            value = v;
            best = (int)j;
        }
    }
    pred[i] = best;
    nonfinite[i] = bad;
}
