/* Element type conversions: the Cast operator and the conversion of a runtime input's host
 * data into the graph input (with the classifier's preprocessing). Types come from the host:
 *   SRC_T, DST_T          the OpenCL element types as stored ("float", "long", "uchar"...);
 *   SRC_FLOAT, DST_FLOAT  1 when the side is a float value, then read / written through
 *                         storage.clh (X_HALF, Y_HALF: stored as half);
 *   CONV                  0 a plain C conversion, 1 float to integer (toward zero,
 *                         saturating; NaN becomes 0), 2 to bool (0 or 1);
 *   ROUND_HALF            1: the float result is rounded to the nearest half (float16);
 *   SRC_HALF              with SRC_FLOAT 0: the source is halves (SRC_T half), read with
 *                         vload_half (the host samples of a float16 file). */
#include "storage.clh"

#ifndef ROUND_HALF
#define ROUND_HALF 0
#endif

#ifndef SRC_HALF
#define SRC_HALF 0
#endif

/* Element i of a source that is not a float value (SRC_FLOAT 0): halves through vload_half,
 * which core OpenCL has. */
#if SRC_HALF
#define LOAD_INPUT(x, i) vload_half(i, x)
#else
#define LOAD_INPUT(x, i) ((x)[i])
#endif

#if SRC_FLOAT
#define SRC_ELEM X_T
#define LOAD_SRC(p, i) LOAD_X(p, i)
#else
#define SRC_ELEM SRC_T
#define LOAD_SRC(p, i) LOAD_INPUT(p, i)
#endif

#if DST_FLOAT
#define DST_ELEM Y_T
#define STORE_DST(v, p, i) STORE_Y(v, p, i)
#else
#define DST_ELEM DST_T
#define STORE_DST(v, p, i) ((p)[i] = (v))
#endif

/* v rounded to the nearest half (ties to even), as a float: through a half in private memory,
 * which core OpenCL allows without cl_khr_fp16. */
static inline float round_to_half(float v)
{
    ushort bits;
    vstore_half_rte(v, 0, (private half *)&bits);
    return vload_half(0, (private const half *)&bits);
}

#if CONV == 1
#define CONVERT(v) CAT(CAT(convert_, DST_T), _sat_rtz)(v)
#elif CONV == 2
#define CONVERT(v) ((DST_T)((v) != 0 ? 1 : 0))
#else
#define CONVERT(v) ((DST_T)(v))
#endif

#if ROUND_HALF
#define FINISH(v) round_to_half(v)
#else
#define FINISH(v) (v)
#endif

/* y[i] = x[i] converted, for i < n. */
kernel void cast(global const SRC_ELEM *x, global DST_ELEM *y, int n)
{
    int i = get_global_id(0);
    if (i >= n) return;
    STORE_DST(FINISH(CONVERT(LOAD_SRC(x, i))), y, i);
}

/* The graph input from the host samples: n elements of samples of `channels` x `inner`
 * elements in the input's order (channel-major). NHWC: the samples are channels-last, element
 * (c, p) of a sample read from p * channels + c. PREP: float input, y = (x * scale -
 * pre[c]) / pre[channels + c] (mean, then std). */
kernel void convert_input(global const SRC_T *x, global DST_ELEM *y, int n, int channels,
                          int inner, float scale, global const float *pre)
{
    int i = get_global_id(0);
    if (i >= n) return;
    int sample = channels * inner;
    int r = i % sample, c = r / inner;
#if NHWC
    int src = i - r + (r % inner) * channels + c;
#else
    int src = i;
#endif
#if PREP
    float v = ((float)LOAD_INPUT(x, src) * scale - pre[c]) / pre[channels + c];
    STORE_DST(FINISH(v), y, i);
#else
    (void)scale;
    (void)pre;
    (void)c;
    STORE_DST(FINISH(CONVERT(LOAD_INPUT(x, src))), y, i);
#endif
}
