/* quantize.cl: float activations to int8 codes, the input side of the int8 Conv and Gemm
 * kernels (conv.cl, gemm.cl with INT8).
 *
 * Algorithm  q = clamp(rint(x * inv_scale), -127, 127) (rint: round half to even), symmetric
 *            per tensor: inv_scale = 1 / scale, scale = max |x| / 127 over the calibration
 *            samples; values beyond the calibrated range saturate.
 *            quantize      one element per work-item, contiguous (input and output alike).
 *            quantize_2d   A(r, k) = x[x_off + r * rs + k * ks] into y[r * cols + k]: Gemm's A
 *                          (any transA) as the row-major [M][K] codes gemm_cpu/gemm_gpu read.
 *            quantize_pad  into a zero-bordered copy, as elementwise.cl pad_nd does for floats
 *                          (axes right-aligned into 8): the padded input of conv_cpu.
 *            One element per work-item and no loop, so PoCL vectorises across work-items; one
 *            family for both device variants.
 * Assumes    the global size is rounded up to the work-group size: out-of-range items return;
 *            the input holds no NaN (the engine refuses such samples).
 */

#include "pad.clh"

static inline char quantize1(float x, float inv_scale)
{
    return (char)clamp(rint(x * inv_scale), -127.0f, 127.0f);
}

__kernel void quantize(__global const float *x, int x_off, __global char *y, int y_off, uint n,
                       float inv_scale)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    y[y_off + i] = quantize1(x[x_off + i], inv_scale);
}

__kernel void quantize_2d(__global const float *x, int x_off, int rs, int ks, uint rows,
                          uint cols, __global char *y, int y_off, float inv_scale)
{
    uint i = get_global_id(0);
    if (i >= rows * cols) return;
    int r = (int)(i / cols), k = (int)(i % cols);
    y[y_off + i] = quantize1(x[x_off + r * rs + k * ks], inv_scale);
}

__kernel void quantize_pad(__global const float *x, __global char *y, int y_off, uint n,
                           int8 out_dims, int8 in_dims, int8 begin, float inv_scale)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    int src = pad_source(i, out_dims, in_dims, begin);
    y[y_off + i] = src >= 0 ? quantize1(x[src], inv_scale) : (char)0;
}
