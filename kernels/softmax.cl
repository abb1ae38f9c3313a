/* softmax.cl: softmax / log-softmax along one axis, and the row argmax of a score matrix.
 *
 * Algorithm  softmax  one row (outer index, inner index) per work-item: the maximum first, then
 *                     sum of exp(x - max), then exp(x - max) / sum or x - max - log(sum), so
 *                     large inputs never overflow. One family for both device variants.
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
