/* conv_pad.cl: the zero-bordered copy of a convolution's input (op_conv.c, op_winograd.c), for
 * CPU-style devices, at the speed of a memory copy.
 *
 * Algorithm  The padded tensor, row-major over up to 5 axes, is a sequence of rows: the last
 *            padded axis times the unpadded axes after it (an image row of an NCHW input; of a
 *            channels-last one, the row's pixels with all their channels). Row r of
 *            the output is all zeros when its leading coordinates fall in the border, else
 *            `left` zeros, the matching input row of `in_len` elements, and zeros to `out_len`.
 *            Each work-item copies a contiguous range of rows with 16-element vectors.
 *            + a few vector moves per 16 elements (pad_nd in elementwise.cl, one element per
 *            work-item with a division per axis, ran at about 100 ns per element here);
 *            - rows only: a pad of the innermost axis alone makes many short rows.
 * Layout     x and y contiguous; the leading axes (before the row) right-aligned into 4:
 *            odims, idims, begin.
 * Precision  X_HALF: both are stored as half (moved through float, exact).
 * Assumes    every index fits in an int.
 */
#include "storage.clh"

/* Copies n elements (or zeros them when x is NULL). */
inline void move_elements(__global X_T *y, __global const X_T *x, int n)
{
    int j = 0;
    for (; j + 16 <= n; j += 16)
        CAT(ST_ST16_, X_HALF)(x ? LOAD16_X(x, j) : (float16)(0.0f), y, j);
    for (; j < n; j++)
        CAT(ST_ST_, X_HALF)(x ? LOAD_X(x, j) : 0.0f, y, j);
}

__kernel void conv_pad_rows(__global const X_T *x, __global X_T *y, int rows, int rows_per_item,
                            int in_len, int left, int out_len, int4 odims, int4 idims,
                            int4 begin)
{
    int od[4], id[4], bg[4];
    vstore4(odims, 0, od);
    vstore4(idims, 0, id);
    vstore4(begin, 0, bg);
    int r0 = get_global_id(0) * rows_per_item, r1 = min(rows, r0 + rows_per_item);
    for (int r = r0; r < r1; r++) {
        int rest = r, src = 0, stride = 1;
        bool inside = true;
        for (int d = 3; d >= 0; d--) {
            int c = rest % od[d] - bg[d];
            rest /= od[d];
            inside = inside && c >= 0 && c < id[d];
            src += c * stride;
            stride *= id[d];
        }
        __global X_T *yr = y + r * out_len;
        if (!inside) {
            move_elements(yr, 0, out_len);
            continue;
        }
        move_elements(yr, 0, left);
        move_elements(yr + left, x + src * in_len, in_len);
        move_elements(yr + left + in_len, 0, out_len - left - in_len);
    }
}
