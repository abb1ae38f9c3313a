/* conv_pad.cl: the zero-bordered copies of a convolution's input (op_conv.c, op_winograd.c),
 * for CPU-style devices, at about the speed of a memory copy.
 *
 * Algorithm  conv_pad_rows  the padded tensor, row-major over up to 5 axes, is a sequence of
 *                       rows: the last padded axis times the unpadded axes after it (an image
 *                       row of an NCHW input; of a channels-last one, the row's pixels with
 *                       all their channels). Row r of the output is all zeros when its leading
 *                       coordinates fall in the border, else `left` zeros, the matching input
 *                       row of `in_len` elements, and zeros to `out_len`. Each work-item copies
 *                       a contiguous range of rows with 16-element vectors.
 *                       + a few vector moves per 16 elements (pad_nd in elementwise.cl, one
 *                       element per work-item with a division per axis, ran at about 100 ns
 *                       per element here); - a pad of the innermost axis alone makes short rows.
 *            conv_pad_channels_last  the same border, and the input (any layout) turned
 *                       channels-last with zero channels up to a multiple of 16 (Winograd's
 *                       input form). + one pass; - scalar moves.
 * Layout     x and y contiguous; conv_pad_rows: the leading axes (before the row) right-aligned
 *            into 4 (odims, idims, begin); conv_pad_channels_last: see its comment.
 * Precision  X_HALF: both are stored as half; elements move as bits (2 or 4 bytes), exact.
 * Assumes    every index fits in an int.
 */
#ifndef X_HALF
#define X_HALF 0
#endif
/* The copies move bits: 2-byte elements (half) or 4-byte ones (float); 0 bits are +0.0. */
#if X_HALF
#define E_T ushort
#define E16_T ushort16
#else
#define E_T uint
#define E16_T uint16
#endif

static inline void zero_elements(__global E_T *y, int n)
{
    int j = 0;
    for (; j + 16 <= n; j += 16)
        vstore16((E16_T)(0), 0, y + j);
    for (; j < n; j++)
        y[j] = 0;
}

static inline void copy_elements(__global E_T *y, __global const E_T *x, int n)
{
    int j = 0;
    for (; j + 16 <= n; j += 16)
        vstore16(vload16(0, x + j), 0, y + j);
    for (; j < n; j++)
        y[j] = x[j];
}

__kernel void conv_pad_rows(__global const E_T *x, __global E_T *y, int rows, int rows_per_item,
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
        __global E_T *yr = y + r * out_len;
        if (!inside) {
            zero_elements(yr, out_len);
            continue;
        }
        zero_elements(yr, left);
        copy_elements(yr + left, x + src * in_len, in_len);
        zero_elements(yr + left + in_len, out_len - left - in_len);
    }
}

/* The Winograd path's staging copy of an input in any layout (element strides xs = (n, c, h,
 * w)) into a zero-bordered channels-last tensor [n][PH][PW][CP], zeros also in channels C to CP
 * (CP: C rounded up to 16, the kernel's channel vector). dims (C, H, W, CP), pdims (PH, PW,
 * pad top, pad left). Work-item i writes output rows [i * rows_per_item, ...) of all images
 * (rows counted n-major); within a row, channel by channel along the input row, so an NCHW
 * input is read contiguously and the row being written (PW * CP elements) stays in cache. */
__kernel void conv_pad_channels_last(__global const E_T *x, int4 xs, __global E_T *y, int rows,
                                     int rows_per_item, int4 dims, int4 pdims)
{
    int C = dims.x, H = dims.y, W = dims.z, CP = dims.w, PH = pdims.x, PW = pdims.y;
    int r0 = get_global_id(0) * rows_per_item, r1 = min(rows, r0 + rows_per_item);
    for (int r = r0; r < r1; r++) {
        int img = r / PH, ih = r % PH - pdims.z;
        __global E_T *yr = y + r * PW * CP;
        if (ih < 0 || ih >= H) {
            zero_elements(yr, PW * CP);
            continue;
        }
        int left = pdims.w, right = PW - left - W;
        zero_elements(yr, left * CP);
        zero_elements(yr + (left + W) * CP, right * CP);
        __global const E_T *xr = x + img * xs.x + ih * xs.z;
        __global E_T *yp = yr + left * CP;
        for (int c = 0; c < C; c++)
            for (int iw = 0; iw < W; iw++)
                yp[iw * CP + c] = xr[c * xs.y + iw * xs.w];
        for (int c = C; c < CP; c++)
            for (int iw = 0; iw < W; iw++)
                yp[iw * CP + c] = 0;
    }
}
