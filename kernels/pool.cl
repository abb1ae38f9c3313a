/* pool.cl: max and average pooling over up to 3 spatial axes, global average pooling.
 *
 * Algorithm  pool            one output per work-item, a loop over its window. Modes: 0 max
 *                            (padding never wins; NaN propagates, as torch), 1 average counting
 *                            padded positions (the window's taps before the end padding's end:
 *                            a ceil_mode window may reach past it), 2 average over the
 *                            positions inside the input.
 *            global_average  one (n, c) row per work-item, summed in order.
 *            One family for both device variants: pooling is a small share of a network, and
 *            a 2x2 max-pool after a Conv is fused into conv_cpu's epilogue on CPUs.
 * Layout     NCHW (N*C planes of D x H x W, missing spatial axes have extent 1).
 * Storage    X_HALF / Y_HALF: the input / output is stored as half (fp16 mode); arithmetic is
 *            float.
 * Assumes    every window starts before the end of the input (the host drops ceil_mode windows
 *            that would start in the end padding or beyond).
 */
#include "storage.clh"

/* The taps start, start + dilation, ... (k of them) that lie before `limit` (start < limit). */
inline int taps_before(int start, int k, int dilation, int limit)
{
    return min(k, (limit - start + dilation - 1) / dilation);
}

__kernel void pool(__global const X_T *x, __global Y_T *y, uint n, int4 idims, int4 odims,
                   int4 kdims, int4 stride, int4 dilation, int4 pad, int4 pad_end, int mode)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    int volume = odims.x * odims.y * odims.z;
    int plane = (int)i / volume, p = (int)i % volume;
    int od = p / (odims.y * odims.z), rem = p % (odims.y * odims.z);
    int oh = rem / odims.z, ow = rem % odims.z;
    int xp = plane * idims.x * idims.y * idims.z;
    float best = -INFINITY, sum = 0.0f;
    int inside = 0;
    bool nan_seen = false;
    for (int kd = 0; kd < kdims.x; kd++) {
        int id = od * stride.x - pad.x + kd * dilation.x;
        if (id < 0 || id >= idims.x) continue;
        for (int kh = 0; kh < kdims.y; kh++) {
            int ih = oh * stride.y - pad.y + kh * dilation.y;
            if (ih < 0 || ih >= idims.y) continue;
            for (int kw = 0; kw < kdims.z; kw++) {
                int iw = ow * stride.z - pad.z + kw * dilation.z;
                if (iw < 0 || iw >= idims.z) continue;
                float v = LOAD_X(x, xp + (id * idims.y + ih) * idims.z + iw);
                nan_seen = nan_seen || isnan(v);
                best = v > best ? v : best;
                sum += v;
                inside++;
            }
        }
    }
    float out;
    if (mode == 0)
        out = nan_seen ? NAN : best;
    else if (mode == 1)
        out = sum / (float)(taps_before(od * stride.x - pad.x, kdims.x, dilation.x,
                                        idims.x + pad_end.x) *
                            taps_before(oh * stride.y - pad.y, kdims.y, dilation.y,
                                        idims.y + pad_end.y) *
                            taps_before(ow * stride.z - pad.z, kdims.z, dilation.z,
                                        idims.z + pad_end.z));
    else
        out = sum / (float)inside;
    STORE_Y(out, y, i);
}

__kernel void global_average(__global const X_T *x, __global Y_T *y, uint rows, uint inner)
{
    uint r = get_global_id(0);
    if (r >= rows) return;
    size_t row = (size_t)r * inner;
    float sum = 0.0f;
    for (uint j = 0; j < inner; j++)
        sum += LOAD_X(x, row + j);
    STORE_Y(sum / (float)inner, y, r);
}
