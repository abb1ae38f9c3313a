/* layout.cl: data movement (Concat, Split, Slice, Transpose, Gather), one element per
 * work-item and no loop over data, so PoCL vectorises across work-items on CPUs and GPUs get
 * coalesced writes: one kernel family for both variants.
 *
 * Algorithm  strided_copy  item i, as a multi-index c over `dims` (row-major), copies
 *                          x[x_off + sum c[d] * xs[d]] to y[y_off + sum c[d] * ys[d]]: a
 *                          transpose (permuted xs), a slice (xs times the steps, negative for
 *                          negative steps), one input of a Concat (ys of the whole output) or
 *                          one output of a Split (xs of the whole input).
 *            gather        y[o][j][r] = x[o][idx[j]][r] for `count` indices along an axis of
 *                          `extent` (negative indices count from the end).
 * Layout     row-major; the host merges contiguous axes and right-aligns the rest into 8
 *            (int8 arguments), the first `first` unused.
 * Storage    X_HALF / Y_HALF: that operand is stored as half (fp16 mode); a copy through float
 *            is exact either way.
 * Assumes    the global size is rounded up to the work-group size: out-of-range items return.
 */
#include "storage.clh"

__kernel void strided_copy(__global const X_T *x, __global Y_T *y, uint n, int first, int8 dims,
                           int8 xs, int8 ys, int x_off, int y_off)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    int dv[8], xv[8], yv[8];
    vstore8(dims, 0, dv);
    vstore8(xs, 0, xv);
    vstore8(ys, 0, yv);
    int rest = (int)i, ix = x_off, iy = y_off;
    for (int d = 7; d >= first; d--) {
        int c = rest % dv[d];
        rest /= dv[d];
        ix += c * xv[d];
        iy += c * yv[d];
    }
    STORE_Y(LOAD_X(x, ix), y, iy);
}

__kernel void gather(__global const X_T *x, __global Y_T *y, __global const int *idx, uint n,
                     int count, int extent, int inner)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    int r = (int)i % inner, t = (int)i / inner;
    int j = t % count, o = t / count;
    int k = idx[j] < 0 ? idx[j] + extent : idx[j];
    STORE_Y(LOAD_X(x, (o * extent + k) * inner + r), y, i);
}
