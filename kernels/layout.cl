/* layout.cl: data movement (Concat, Split, Slice, Transpose, Gather) in two families. The GPU
 * family moves one element per work-item with no loop over data (coalesced accesses; PoCL
 * would vectorise it across work-items, but decodes an 8-axis index per element). The CPU
 * family gives each work-item a long stretch of the output and walks it (few, large
 * work-items, work-group size 1): its index is decoded once, and contiguous runs move 16
 * elements at a time.
 *
 * Algorithm  strided_copy  item i, as a multi-index c over `dims` (row-major), copies
 *                          x[x_off + sum c[d] * xs[d]] to y[y_off + sum c[d] * ys[d]]: a
 *                          transpose (permuted xs), a slice (xs times the steps, negative for
 *                          negative steps), one input of a Concat (ys of the whole output) or
 *                          one output of a Split (xs of the whole input).
 *            copy_runs     the same copy, CPU family: item g copies the output-order elements
 *                          [g * per_item, (g + 1) * per_item) run by run along the innermost
 *                          axis, carrying into the outer axes like an odometer.
 *            copy_tiles    the same copy, CPU family, for transposes that move the innermost
 *                          axis: TP x TQ tiles over the last two axes, read along axis 6 and
 *                          written along axis 7, so both sides touch whole cache lines.
 *            gather        y[o][j][r] = x[o][idx[j]][r] for `count` indices along an axis of
 *                          `extent` (negative indices count from the end).
 *            gather_runs   the same, CPU family: item g copies rows (o, j) [g * per_item, ...),
 *                          each a contiguous run of `inner` elements.
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

/* ---- CPU family ---- */

/* How the CPU family moves elements: as raw bits when both sides have the same storage (half
 * to half as ushort), whole runs through vload16 / vstore16; through float when one side is
 * half and the other float. Either way the copy is exact. */
#ifdef RAW_T
#define MOVE_T RAW_T
#elif X_HALF == Y_HALF
#define MOVE_T_0 float
#define MOVE_T_1 ushort
#define MOVE_T CAT(MOVE_T_, X_HALF)
#endif
#ifdef MOVE_T
#define TILE_T MOVE_T
#define LD_X(p, i) (((__global const MOVE_T *)(p))[i])
#define ST_Y(v, p, i) (((__global MOVE_T *)(p))[i] = (v))
#define MOVE16(x, ix, y, iy)                                                                       \
    vstore16(vload16(0, (__global const MOVE_T *)(x) + (ix)), 0, (__global MOVE_T *)(y) + (iy))
#else
#define TILE_T float
#define LD_X(p, i) LOAD_X(p, i)
#define ST_Y(v, p, i) STORE_Y(v, p, i)
#define MOVE16(x, ix, y, iy) STORE16_Y(LOAD16_X(x, ix), y, iy)
#endif

/* Copies len contiguous elements x[ix..] to y[iy..]. */
static inline void move_run(__global const X_T *x, int ix, __global Y_T *y, int iy, int len)
{
    int j = 0;
    for (; j + 16 <= len; j += 16)
        MOVE16(x, ix + j, y, iy + j);
    for (; j < len; j++)
        ST_Y(LD_X(x, ix + j), y, iy + j);
}

/* copy_runs: strided_copy's copy over n elements, per_item of them per work-item. Pros: one
 * index decode per item, contiguous runs (Concat inputs, Split outputs, most Slices and the
 * transposes that keep the innermost axis) at vector width. Cons: a transpose that moves the
 * innermost axis reads one element per cache line (copy_tiles). */
__kernel void copy_runs(__global const X_T *x, __global Y_T *y, uint n, uint per_item, int first,
                        int8 dims, int8 xs, int8 ys, int x_off, int y_off)
{
    uint start = get_global_id(0) * per_item;
    if (start >= n) return;
    int left = (int)min(per_item, n - start);
    int dv[8], xv[8], yv[8], c[8] = {0, 0, 0, 0, 0, 0, 0, 0}; /* first = 8: one element */
    vstore8(dims, 0, dv);
    vstore8(xs, 0, xv);
    vstore8(ys, 0, yv);
    /* (ix, iy): the start of the current row, where c[7] = 0. */
    int rest = (int)start, ix = x_off, iy = y_off;
    for (int d = 7; d >= first; d--) {
        c[d] = rest % dv[d];
        rest /= dv[d];
        if (d < 7) {
            ix += c[d] * xv[d];
            iy += c[d] * yv[d];
        }
    }
    int inner = dv[7], sx = xv[7], sy = yv[7], at = c[7];
    for (;;) {
        int len = min(inner - at, left);
        if (sx == 1 && sy == 1) {
            move_run(x, ix + at, y, iy + at, len);
        } else {
            for (int j = at; j < at + len; j++)
                ST_Y(LD_X(x, ix + j * sx), y, iy + j * sy);
        }
        left -= len;
        if (left == 0) return;
        /* The row is done: step the outer axes (the last row of this item is never passed). */
        at = 0;
        for (int d = 6; d >= first; d--) {
            ix += xv[d];
            iy += yv[d];
            if (++c[d] < dv[d]) break;
            ix -= dv[d] * xv[d];
            iy -= dv[d] * yv[d];
            c[d] = 0;
        }
    }
}

#ifndef TP
#define TP 64 /* copy_tiles: the tile's extent along axis 6, a band's width (set by the host) */
#endif
#ifndef TQ
#define TQ 16 /* copy_tiles: the tile's extent along axis 7 */
#endif

/* copy_tiles: strided_copy's copy in bands: band b is TP indices of axis 6 for one outer
 * multi-index, walked along axis 7 in TP x TQ tiles, loaded along axis 6 and stored along axis
 * 7; item g takes bands [g * per_item, (g + 1) * per_item) of `bands`. The host puts the axis
 * that is contiguous in x at 6 (the innermost one stays 7, contiguous in y). Pros: whole cache
 * lines on both sides of a transpose. Cons: a private tile per item. */
__kernel void copy_tiles(__global const X_T *x, __global Y_T *y, uint bands, uint per_item,
                         int first, int8 dims, int8 xs, int8 ys, int x_off, int y_off)
{
    uint b0 = get_global_id(0) * per_item;
    if (b0 >= bands) return;
    uint b1 = min(b0 + per_item, bands);
    int dv[8], xv[8], yv[8];
    vstore8(dims, 0, dv);
    vstore8(xs, 0, xv);
    vstore8(ys, 0, yv);
    int per_outer = (dv[6] + TP - 1) / TP, xp = xv[6], xq = xv[7], yp = yv[6], yq = yv[7];
    TILE_T t[TQ][TP];
    for (uint b = b0; b < b1; b++) {
        int rest = (int)b / per_outer, p0 = ((int)b % per_outer) * TP;
        int ix = x_off + p0 * xp, iy = y_off + p0 * yp;
        for (int d = 5; d >= first; d--) {
            int c = rest % dv[d];
            rest /= dv[d];
            ix += c * xv[d];
            iy += c * yv[d];
        }
        int tp = min(TP, dv[6] - p0);
        for (int q0 = 0; q0 < dv[7]; q0 += TQ) {
            int tq = min(TQ, dv[7] - q0);
            for (int q = 0; q < tq; q++)
                for (int p = 0; p < tp; p++)
                    t[q][p] = LD_X(x, ix + p * xp + (q0 + q) * xq);
            for (int p = 0; p < tp; p++)
                for (int q = 0; q < tq; q++)
                    ST_Y(t[q][p], y, iy + p * yp + (q0 + q) * yq);
        }
    }
}

/* gather_runs: gather's copy, per_item rows (o, j) of `inner` elements per work-item out of
 * `rows` = outer * count. Pros: contiguous runs at vector width (attention's q / k / v picks,
 * a class token). Cons: an index lookup per row, slow when `inner` is 1. */
__kernel void gather_runs(__global const X_T *x, __global Y_T *y, __global const int *idx,
                          uint rows, uint per_item, int count, int extent, int inner)
{
    uint start = get_global_id(0) * per_item;
    if (start >= rows) return;
    int left = (int)min(per_item, rows - start);
    int j = (int)start % count, o = (int)start / count;
    for (int r = (int)start; r < (int)start + left; r++) {
        int k = idx[j] < 0 ? idx[j] + extent : idx[j];
        move_run(x, (o * extent + k) * inner, y, r * inner, inner);
        if (++j == count) {
            j = 0;
            o++;
        }
    }
}
