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
 *            transpose_tiles  a batch of 2-D transposes through local memory (GPU family).
 * Layout     row-major; the host merges contiguous axes and right-aligns the rest into 8
 *            (int8 arguments), the first `first` unused.
 * Storage    X_HALF / Y_HALF: that operand is stored as half (fp16 mode); a copy through float
 *            is exact either way. RAW_T: integer tensors (uint8 pixels, token ids), moved as
 *            they are.
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

/* transpose_tiles: y[b][c][r] = x[b][r][c] for x of [batches][rows][cols], through a TILE x TILE
 * tile in local memory (padded against bank conflicts) so that both the reads and the writes
 * of a work-group are row-contiguous. The GPU family's transposes of the last two axes
 * (NCHW <-> NHWC, 2-D). Work-group TILE x TILE x 1; global (cols, rows, batches) rounded up. */
#define TILE 16
__kernel __attribute__((reqd_work_group_size(TILE, TILE, 1))) void
transpose_tiles(__global const X_T *x, __global Y_T *y, int rows, int cols)
{
    __local VALUE_T tile[TILE][TILE + 1];
    int lx = (int)get_local_id(0), ly = (int)get_local_id(1);
    int c0 = (int)get_group_id(0) * TILE, r0 = (int)get_group_id(1) * TILE;
    int base = (int)get_global_id(2) * rows * cols;
    if (r0 + ly < rows && c0 + lx < cols)
        tile[ly][lx] = LOAD_X(x, base + (r0 + ly) * cols + c0 + lx);
    barrier(CLK_LOCAL_MEM_FENCE);
    if (c0 + ly < cols && r0 + lx < rows)
        STORE_Y(tile[lx][ly], y, base + (c0 + ly) * rows + r0 + lx);
}
