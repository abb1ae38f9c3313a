/* Precision modes of the network runner against plain C references written here, for both
 * kernel families (CPU-style and GPU-style, forced on the test device):
 *   fp16  every kernel family reading and writing half-stored tensors: the op under test sits
 *         between a Relu (which stores its float input as half) and a Mul by 1 (which reads
 *         the half result back into a float graph output), so the result must be a half
 *         value and equal to the reference rounded to half by a round-to-nearest-even written
 *         here from the definition (within one half ulp where float and double sums can fall
 *         on either side of a rounding boundary);
 *   int8  Conv / Gemm / MatMul on grid data (inputs k 2^-6, weights k 2^-7 with a +-127 per
 *         channel, so every scale is a power of two and the dequantised output is the int32
 *         sum times 2^-13 exactly): the outputs must equal the integer reference bit for bit,
 *         including saturation, padding, fused ReLU / max-pool, k-blocks and split K; on
 *         random data, the same quantisation written here within a float tolerance;
 *   prune the count of zeroed weights, ties broken by index, and outputs against a reference
 *         pruned here; model sizes per mode; options refused. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_builder.h"
#define NN_TEST_SEED 7 /* the seed of this program's random inputs */
#include "nn_testutil.h"

/* ---- helpers ---- */

/* Integers in [-limit, limit] times `unit`. */
static float *grid_array(uint64_t n, int limit, float unit)
{
    float *a = malloc((n ? n : 1) * sizeof *a);
    assert_non_null(a);
    for (uint64_t i = 0; i < n; i++)
        a[i] = (float)((int)floor(urand() * (2 * limit + 1)) - limit) * unit;
    return a;
}

/* fp16 runs compute in half (cleval_nn_arithmetic HALF) while this is set, else in float. */
static bool half_math_run;

/* Half arithmetic (products summed in half over blocks of 32, blocks added in float, then the
 * result stored as half) errs by at most (32 + 2) 2^-11 of the magnitudes summed: the float
 * bound err = (terms + 1) 2^-24 |...| of the references below, rescaled. */
static void to_half_math_bound(double *err, uint64_t n, int64_t terms)
{
    for (uint64_t i = 0; i < n; i++)
        err[i] *= 34 * 0x1p-11 / ((double)(terms + 1) * 0x1p-24);
}

/* Every got[i] is a half value within one half ulp of want[i] rounded to half, give or take
 * `slack` and err[i] (a bound on the float arithmetic's error before the rounding: a sum that
 * cancels can land on the other side of a rounding boundary), and most are exactly that. */
static uint64_t assert_half(const float *got, const double *want, const double *err, uint64_t n,
                            double slack, const char *what)
{
    uint64_t exact = 0;
    for (uint64_t i = 0; i < n; i++) {
        float g = got[i], h = hround(want[i]);
        if (hround(g) != g)
            fail_msg("%s: element %llu = %.9g is not a half value", what, (unsigned long long)i, g);
        if (!(fabs((double)g - h) <= half_ulp(h) * 1.0000001 + slack + (err ? err[i] : 0)))
            fail_msg("%s: element %llu is %.9g, expected %.9g (half of %.9g)", what,
                     (unsigned long long)i, g, h, want[i]);
        exact += g == h;
    }
    if (n >= 50 && slack == 0 && !half_math_run && (double)exact < 0.9 * (double)n)
        fail_msg("%s: only %llu of %llu elements equal the rounded reference", what,
                 (unsigned long long)exact, (unsigned long long)n);
    return exact;
}

/* Half arithmetic really ran: float sums round to the reference's half in practically every
 * element (over 99 % in these cases), half sums of 5 or more products miss it in over 14 %
 * (measured on PoCL's CPU device, 8.0-pre). */
static void assert_not_float_sums(uint64_t exact, uint64_t n, const char *what)
{
    if (n >= 50 && (double)exact >= 0.95 * (double)n)
        fail_msg("%s: %llu of %llu elements equal the float-arithmetic rounding: half arithmetic "
                 "did not run",
                 what, (unsigned long long)exact, (unsigned long long)n);
}

static void assert_exact(const float *got, const double *want, uint64_t n, const char *what)
{
    for (uint64_t i = 0; i < n; i++)
        if ((double)got[i] != want[i])
            fail_msg("%s: element %llu is %.9g, expected exactly %.9g", what, (unsigned long long)i,
                     got[i], want[i]);
}

static void assert_close(const float *got, const double *want, uint64_t n, double atol, double rtol,
                         const char *what)
{
    for (uint64_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= atol + rtol * fabs(want[i])))
            fail_msg("%s: element %llu is %.9g, expected %.9g", what, (unsigned long long)i, got[i],
                     want[i]);
}

/* Fails unless some layer of nn runs a kernel whose description contains `kernel`. */
static void expect_kernel(const cleval_nn *nn, const char *kernel)
{
    for (uint32_t i = 0; i < cleval_nn_layer_count(nn); i++)
        if (strstr(cleval_nn_layer_at(nn, i)->kernel, kernel)) return;
    fail_msg("no layer runs '%s'", kernel);
}

/* The kernel the next run_in_precision must use (NULL: any). */
static const char *expected_kernel;

/* Runs a general graph once in `precision` on the given inputs; one output. */
static void run_in_precision(cleval_onnx_model *m, cleval_kernel_variant variant,
                             cleval_nn_precision precision, double prune,
                             const cleval_nn_tensor *inputs, cleval_nn_tensor *out)
{
    cleval_device_set_variant(test_device(), variant);
    cleval_nn_options options = {.general = true, .precision = precision, .prune = prune};
    if (precision == CLEVAL_NN_FP16)
        options.arithmetic = half_math_run ? CLEVAL_NN_ARITH_HALF : CLEVAL_NN_ARITH_FLOAT;
    cleval_nn *nn;
    assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
    if (expected_kernel) expect_kernel(nn, expected_kernel);
    expected_kernel = NULL;
    assert_int_equal(cleval_nn_graph_output_count(nn), 1);
    assert_ok(cleval_nn_run_graph(nn, inputs, out));
    cleval_nn_destroy(nn);
    cleval_device_set_variant(test_device(), VARIANTS[0]);
}

/* x -> Relu -> "xr" (stored as half in fp16); "z" -> Mul by 1 -> "y" (the half read back). */
static void fp16_frame(cleval_onnx_model *m, const char *input, const char *relu_out)
{
    char name[64];
    snprintf(name, sizeof name, "relu_%s", input);
    builder_node(m, "Relu", name, input, relu_out);
}

static void fp16_tail(cleval_onnx_model *m)
{
    static const float one = 1.0f;
    int64_t d = 1;
    builder_init(m, "one", 1, &d, &one);
    builder_node(m, "Mul", "readback", "z,one", "y");
    builder_output(m, "y");
}

/* h(max(x, 0)) of every element: what the Relu stores. */
static float *relu_half(const float *x, uint64_t n)
{
    float *r = malloc((n ? n : 1) * sizeof *r);
    assert_non_null(r);
    for (uint64_t i = 0; i < n; i++)
        r[i] = hround(x[i] < 0 ? 0.0 : x[i]);
    return r;
}

static float *half_copy(const float *x, uint64_t n)
{
    float *r = malloc((n ? n : 1) * sizeof *r);
    assert_non_null(r);
    for (uint64_t i = 0; i < n; i++)
        r[i] = hround(x[i]);
    return r;
}

/* ---- reference convolution (2-D, NCHW, groups) ---- */

typedef struct conv_geom {
    int64_t n, c, h, w, co, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, group;
} conv_geom;

static void conv_out_size(const conv_geom *g, int64_t *oh, int64_t *ow)
{
    *oh = (g->h + g->pt + g->pb - (g->kh - 1) * g->dh - 1) / g->sh + 1;
    *ow = (g->w + g->pl + g->pr - (g->kw - 1) * g->dw - 1) / g->sw + 1;
}

/* y = conv(x, w) + b in double (int8 codes: exact integer sums); err, when not NULL, bounds
 * the error of the same sum in float: (terms + 1) 2^-24 (|b| + sum |x w|). */
static void ref_conv2d(const conv_geom *g, const float *x, const float *w, const double *b,
                       double *y, double *err)
{
    int64_t oh, ow, cin_g = g->c / g->group, co_g = g->co / g->group;
    conv_out_size(g, &oh, &ow);
    for (int64_t i = 0; i < g->n; i++)
        for (int64_t o = 0; o < g->co; o++)
            for (int64_t p = 0; p < oh; p++)
                for (int64_t q = 0; q < ow; q++) {
                    double s = b ? b[o] : 0.0, mag = fabs(s);
                    int64_t grp = o / co_g;
                    for (int64_t ci = 0; ci < cin_g; ci++)
                        for (int64_t a = 0; a < g->kh; a++)
                            for (int64_t e = 0; e < g->kw; e++) {
                                int64_t ih = p * g->sh - g->pt + a * g->dh;
                                int64_t iw = q * g->sw - g->pl + e * g->dw;
                                if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                                double t =
                                    (double)
                                        x[((i * g->c + grp * cin_g + ci) * g->h + ih) * g->w + iw] *
                                    w[((o * cin_g + ci) * g->kh + a) * g->kw + e];
                                s += t;
                                mag += fabs(t);
                            }
                    uint64_t at = (uint64_t)(((i * g->co + o) * oh + p) * ow + q);
                    y[at] = s;
                    if (err) err[at] = (double)(cin_g * g->kh * g->kw + 1) * 0x1p-24 * mag;
                }
}

static void relu_inplace(double *y, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        y[i] = y[i] < 0 ? 0 : y[i];
}

/* 2x2 stride-2 max-pool (floor) of [planes][h][w]; returns a malloc'd array. */
static double *pool2(const double *y, int64_t planes, int64_t h, int64_t w)
{
    int64_t ph = h / 2, pw = w / 2;
    double *p = malloc((size_t)(planes * ph * pw + 1) * sizeof *p);
    for (int64_t c = 0; c < planes; c++)
        for (int64_t i = 0; i < ph; i++)
            for (int64_t j = 0; j < pw; j++) {
                const double *s = y + c * h * w;
                p[(c * ph + i) * pw + j] =
                    fmax(fmax(s[2 * i * w + 2 * j], s[2 * i * w + 2 * j + 1]),
                         fmax(s[(2 * i + 1) * w + 2 * j], s[(2 * i + 1) * w + 2 * j + 1]));
            }
    return p;
}

static cleval_onnx_node *conv_node(cleval_onnx_model *m, const char *name, const char *inputs,
                                   const char *output, const conv_geom *g)
{
    cleval_onnx_node *n = builder_node(m, "Conv", name, inputs, output);
    int64_t k[2] = {g->kh, g->kw}, s[2] = {g->sh, g->sw}, d[2] = {g->dh, g->dw};
    int64_t pads[4] = {g->pt, g->pl, g->pb, g->pr};
    attr_ints(n, "kernel_shape", 2, k);
    attr_ints(n, "strides", 2, s);
    attr_ints(n, "dilations", 2, d);
    attr_ints(n, "pads", 4, pads);
    attr_int(n, "group", g->group);
    return n;
}

/* ---- fp16: Conv ---- */

/* Relu -> Conv (+Relu +MaxPool fused) [-> 3x3 padded Conv, channels-last] -> Mul by 1. */
static void check_conv_fp16(const char *what, const conv_geom *g, bool relu, bool pool, int64_t co2,
                            cleval_kernel_variant variant)
{
    int64_t xd[4] = {g->n, g->c, g->h, g->w}, wd[4] = {g->co, g->c / g->group, g->kh, g->kw};
    uint64_t nx = count_of(4, xd), nw = count_of(4, wd);
    float *x, *w, *b;
    if (co2) {
        /* Before a second Conv: the first one's sums are exact halves (multiples of 1/16 below
         * 4: inputs and weights k / 4 up to 1, biases k / 16), so no stored value can round
         * the other way, in float or half arithmetic. */
        x = grid_array(nx, 4, 0.25f);
        w = grid_array(nw, 4, 0.25f);
        b = grid_array((uint64_t)g->co, 16, 0.0625f);
    } else {
        x = random_array(nx, -0.3f, 1.0f);
        w = random_array(nw, -0.5f, 0.5f);
        b = random_array((uint64_t)g->co, -0.5f, 0.5f);
    }
    int64_t w2d[4] = {co2, g->co, 3, 3};
    /* The second Conv runs Winograd on CPUs: with grid weights (k / 2) its transformed weights
     * U = G g G^T are multiples of 1/8 and its transformed inputs multiples of 1/16, all exact
     * halves, so float arithmetic gives the exact sums, which it writes to the float graph
     * output; half arithmetic (sums of multiples of 1/128 beyond 16 in half) cannot. */
    bool winograd = co2 && variant == CLEVAL_VARIANT_CPU && g->co % 16 == 0 && co2 >= 16;
    float *w2 = !co2       ? NULL
                : winograd ? grid_array(count_of(4, w2d), 8, 0.5f)
                           : random_array(count_of(4, w2d), -0.3f, 0.3f);
    float *b2 = !co2       ? NULL
                : winograd ? grid_array((uint64_t)co2, 4, 0.25f)
                           : random_array((uint64_t)co2, -0.5f, 0.5f);

    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 4, xd);
    builder_init(m, "W", 4, wd, w);
    builder_init(m, "B", 1, &g->co, b);
    fp16_frame(m, "x", "xr");
    const char *conv_out = relu || pool || co2 ? "c" : "z";
    conv_node(m, "conv", "xr,W,B", conv_out, g);
    const char *last = "c";
    if (relu) {
        builder_node(m, "Relu", "relu", "c", pool || co2 ? "r" : "z");
        last = "r";
    }
    if (pool) {
        int64_t two[2] = {2, 2};
        cleval_onnx_node *p = builder_node(m, "MaxPool", "pool", last, co2 ? "p" : "z");
        attr_ints(p, "kernel_shape", 2, two);
        attr_ints(p, "strides", 2, two);
        last = "p";
    }
    conv_geom g2 = {0};
    if (co2) {
        builder_init(m, "W2", 4, w2d, w2);
        builder_init(m, "B2", 1, &co2, b2);
        char in[32];
        snprintf(in, sizeof in, "%s,W2,B2", last);
        g2 = (conv_geom){.co = co2,
                         .kh = 3,
                         .kw = 3,
                         .sh = 1,
                         .sw = 1,
                         .pt = 1,
                         .pl = 1,
                         .pb = 1,
                         .pr = 1,
                         .dh = 1,
                         .dw = 1,
                         .group = 1};
        conv_node(m, "conv2", in, winograd ? "y" : "z", &g2);
    }
    if (winograd)
        builder_output(m, "y");
    else
        fp16_tail(m);

    /* Reference: the half inputs and weights, the stored intermediates rounded to half. */
    float *xh = relu_half(x, nx), *wh = half_copy(w, nw);
    double *bd = malloc((size_t)g->co * sizeof *bd);
    for (int64_t i = 0; i < g->co; i++)
        bd[i] = b[i];
    int64_t oh, ow;
    conv_out_size(g, &oh, &ow);
    uint64_t ny = (uint64_t)(g->n * g->co * oh * ow);
    double *ref = malloc((ny + 1) * sizeof *ref), *err = malloc((ny + 1) * sizeof *err);
    ref_conv2d(g, xh, wh, bd, ref, err);
    if (relu) relu_inplace(ref, ny);
    if (pool) {
        double *p = pool2(ref, g->n * g->co, oh, ow), *e = pool2(err, g->n * g->co, oh, ow);
        free(ref);
        free(err);
        ref = p;
        err = e;
        oh /= 2;
        ow /= 2;
        ny = (uint64_t)(g->n * g->co * oh * ow);
    }
    int64_t yd[4] = {g->n, g->co, oh, ow};
    if (co2) {
        float *mid = malloc((ny + 1) * sizeof *mid), *w2h = half_copy(w2, count_of(4, w2d));
        for (uint64_t i = 0; i < ny; i++)
            mid[i] = hround(ref[i]);
        double *b2d = malloc((size_t)co2 * sizeof *b2d);
        for (int64_t i = 0; i < co2; i++)
            b2d[i] = b2[i];
        g2.n = g->n;
        g2.c = g->co;
        g2.h = oh;
        g2.w = ow;
        for (uint64_t i = 0; i < ny; i++)
            if (mid[i] != ref[i]) fail_msg("the first Conv's grid sums should be exact");
        free(ref);
        free(err);
        ny = (uint64_t)(g->n * co2 * oh * ow);
        ref = malloc((ny + 1) * sizeof *ref);
        err = malloc((ny + 1) * sizeof *err);
        ref_conv2d(&g2, mid, w2h, b2d, ref, err);
        yd[1] = co2;
        free(mid);
        free(w2h);
        free(b2d);
    }
    cleval_nn_tensor in = tensor(4, xd, x), out;
    bool depthwise = g->group == g->c && g->c > 1;
    if (half_math_run && !depthwise) /* depthwise convolution stays float */
        to_half_math_bound(err, ny, co2 ? g->co * 9 : g->c / g->group * g->kh * g->kw);
    if (half_math_run && winograd) {
        /* Winograd's products V U are up to 16 x 4 larger than the direct ones it replaces */
        for (uint64_t i = 0; i < ny; i++)
            err[i] *= 64;
    }
    if (winograd)
        expected_kernel = half_math_run ? "conv_winograd_cpu MR=8 NV=2 fp16 half-math"
                                        : "conv_winograd_cpu MR=8 NV=2 fp16";
    else if (co2 && variant == CLEVAL_VARIANT_CPU)
        expected_kernel = half_math_run ? "fp16 half-math" : "fp16 runs of 16";
    else if (depthwise)
        expected_kernel = "conv_depthwise fp16";
    else
        expected_kernel = variant == CLEVAL_VARIANT_CPU ? "conv_cpu" : "conv_gpu";
    run_in_precision(m, variant, CLEVAL_NN_FP16, 0.0, &in, &out);
    assert_int_equal(out.rank, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(out.dims[i], yd[i]);
    char label[160];
    snprintf(label, sizeof label, "fp16%s %s (%s)", half_math_run ? " half-math" : "", what,
             cleval_variant_name(variant));
    if (winograd) {
        /* float: the exact sums; half: within the bound and not those sums */
        uint64_t exact = 0;
        for (uint64_t i = 0; i < ny; i++)
            exact += (double)out.data[i] == ref[i];
        if (!half_math_run)
            assert_exact(out.data, ref, ny, label);
        else
            for (uint64_t i = 0; i < ny; i++)
                if (!(fabs((double)out.data[i] - ref[i]) <= err[i]))
                    fail_msg("%s: element %llu is %.9g, expected %.9g", label,
                             (unsigned long long)i, out.data[i], ref[i]);
        if (half_math_run) assert_not_float_sums(exact, ny, label);
    } else {
        uint64_t exact = assert_half(out.data, ref, err, ny, 0, label);
        if (half_math_run && !depthwise) assert_not_float_sums(exact, ny, label);
    }
    free(out.data);
    free(ref);
    free(err);
    free(x);
    free(w);
    free(b);
    free(w2);
    free(b2);
    free(xh);
    free(wh);
    free(bd);
    builder_free(m);
}

static void test_fp16_conv(void **state)
{
    (void)state;
    /* clang-format off */
    conv_geom pad1 = {2, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    conv_geom odd = {1, 2, 11, 13, 33, 3, 3, 2, 1, 0, 1, 2, 0, 1, 2, 1};
    conv_geom grouped = {2, 6, 5, 5, 9, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 3};
    conv_geom depthwise = {2, 4, 7, 6, 8, 3, 3, 1, 2, 1, 1, 1, 0, 1, 1, 4};
    conv_geom fused = {3, 3, 10, 9, 16, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1};
    conv_geom wide = {2, 3, 9, 8, 32, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1};
    /* clang-format on */
    for (int v = 0; v < 2; v++) {
        check_conv_fp16("3x3 pad 1", &pad1, false, false, 0, VARIANTS[v]);
        check_conv_fp16("33 channels, strided, dilated, asymmetric pads", &odd, false, false, 0,
                        VARIANTS[v]);
        check_conv_fp16("grouped", &grouped, true, false, 0, VARIANTS[v]);
        check_conv_fp16("depthwise x2", &depthwise, false, false, 0, VARIANTS[v]);
        check_conv_fp16("+Relu+MaxPool fused", &fused, true, true, 0, VARIANTS[v]);
        check_conv_fp16("+Relu+MaxPool, then padded Conv (channels-last)", &fused, true, true, 7,
                        VARIANTS[v]);
        check_conv_fp16("1x1, then padded 3x3 Conv (Winograd on CPUs)", &wide, true, false, 17,
                        VARIANTS[v]);
    }
}

/* ---- fp16: Gemm and MatMul ---- */

typedef struct gemm16_case {
    int64_t m, n, k;
    bool ta, tb;
    float alpha, beta;
    bool bias, b_runtime, split;
    bool positive; /* B in [0.5, 1] (no cancellation: a long half sum loses the most) */
} gemm16_case;

/* What half arithmetic computes for sum_k a_k b_k (a, b halves): per block of `block` k from
 * k = 0 (32 in gemm_cpu, one 16-k slice in gemm_gpu), each step's fma rounded to half; the
 * block sums added exactly (the kernels add them in float: within the float error bound).
 * *blocks_mag gets the sum of the blocks' |sum| (for the float error), *block_max the largest
 * (for a tolerance of an ulp of it). */
static double half_block_dot(const float *a, int64_t as, const float *b, int64_t bs, int64_t k,
                             int block, double *blocks_mag, double *block_max)
{
    double total = 0, mag = 0, most = 0;
    for (int64_t k0 = 0; k0 < k; k0 += block) {
        double h = 0;
        for (int64_t kk = k0; kk < k0 + block && kk < k; kk++)
            h = hround((double)a[kk * as] * b[kk * bs] + h);
        total += h;
        mag += fabs(h);
        most = fmax(most, fabs(h));
    }
    *blocks_mag = mag;
    *block_max = most;
    return total;
}

static void check_gemm_fp16(const gemm16_case *g, cleval_kernel_variant variant)
{
    int64_t ad[2] = {g->ta ? g->k : g->m, g->ta ? g->m : g->k};
    int64_t bd[2] = {g->tb ? g->n : g->k, g->tb ? g->k : g->n};
    float *a = random_array((uint64_t)(g->m * g->k), -0.3f, 1.0f);
    float *b = random_array((uint64_t)(g->k * g->n), g->positive ? 0.5f : -1.0f, 1.0f);
    float *c = random_array((uint64_t)g->n, -1.0f, 1.0f);
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "a", 2, ad);
    fp16_frame(m, "a", "ar");
    if (g->b_runtime) {
        builder_input(m, "b", 2, bd);
        fp16_frame(m, "b", "br");
    } else {
        builder_init(m, "br", 2, bd, b);
    }
    if (g->bias) builder_init(m, "c", 1, &g->n, c);
    cleval_onnx_node *node = builder_node(m, "Gemm", "gemm", g->bias ? "ar,br,c" : "ar,br", "z");
    attr_int(node, "transA", g->ta);
    attr_int(node, "transB", g->tb);
    attr_float(node, "alpha", g->alpha);
    attr_float(node, "beta", g->beta);
    fp16_tail(m);

    float *ah = relu_half(a, (uint64_t)(g->m * g->k));
    float *bh = g->b_runtime ? relu_half(b, (uint64_t)(g->k * g->n))
                             : half_copy(b, (uint64_t)(g->k * g->n));
    uint64_t ny = (uint64_t)(g->m * g->n);
    double *ref = malloc((ny + 1) * sizeof *ref), *err = malloc((ny + 1) * sizeof *err);
    for (int64_t i = 0; i < g->m; i++)
        for (int64_t j = 0; j < g->n; j++) {
            double s = 0, mag = 0;
            for (int64_t kk = 0; kk < g->k; kk++) {
                double t = (double)(g->ta ? ah[kk * g->m + i] : ah[i * g->k + kk]) *
                           (g->tb ? bh[j * g->k + kk] : bh[kk * g->n + j]);
                s += t;
                mag += fabs(t);
            }
            double cv = g->bias ? g->beta * (double)c[j] : 0.0;
            ref[i * g->n + j] = g->alpha * s + cv;
            /* float sums: (K + 2) 2^-24 of the magnitudes involved */
            err[i * g->n + j] = (double)(g->k + 2) * 0x1p-24 * (fabs(g->alpha) * mag + fabs(cv));
        }
    if (half_math_run) {
        to_half_math_bound(err, ny, g->k + 1);
        expected_kernel = "half-math";
    }
    if (g->split) setenv("CLEVAL_NN_TUNING", "gpu_groups=64", 1);
    cleval_nn_tensor in[2] = {tensor(2, ad, a), tensor(2, bd, b)}, out;
    run_in_precision(m, variant, CLEVAL_NN_FP16, 0.0, in, &out);
    unsetenv("CLEVAL_NN_TUNING");
    char label[160];
    snprintf(label, sizeof label, "fp16%s Gemm %lldx%lldx%lld ta%d tb%d%s%s (%s)",
             half_math_run ? " half-math" : "", (long long)g->m, (long long)g->n, (long long)g->k,
             g->ta, g->tb, g->b_runtime ? " B runtime" : "", g->split ? " split K" : "",
             cleval_variant_name(variant));
    uint64_t exact = assert_half(out.data, ref, err, ny, 0, label);
    if (half_math_run) {
        /* (Positive sums blocked in half stay within a half ulp of the float sum.) */
        if (!g->positive) assert_not_float_sums(exact, ny, label);
        /* Within an ulp of the largest half block sum of the emulated algorithm (a step may
         * round the other way on a device that rounds twice), plus the float error and the
         * final rounding to half: a sum that is not blocked, or not in half, or blocked
         * elsewhere (a split not starting on a 16-k slice), lands further off. */
        int block = variant == CLEVAL_VARIANT_CPU ? 32 : 16;
        for (int64_t i = 0; i < g->m; i++)
            for (int64_t j = 0; j < g->n; j++) {
                double mag, most,
                    dot = half_block_dot(g->ta ? ah + i : ah + i * g->k, g->ta ? g->m : 1,
                                         g->tb ? bh + j * g->k : bh + j, g->tb ? 1 : g->n, g->k,
                                         block, &mag, &most);
                double cv = g->bias ? g->beta * (double)c[j] : 0.0, want = g->alpha * dot + cv;
                double got = out.data[i * g->n + j], h = hround(want);
                double blocks = (double)((g->k + block - 1) / block);
                double tol = half_ulp(h) + fabs(g->alpha) * most * 0x1p-10 +
                             (blocks + 2) * 0x1p-24 * (fabs(g->alpha) * mag + fabs(cv));
                if (!(fabs(got - want) <= tol))
                    fail_msg("%s: element (%lld, %lld) is %.9g, half blocks of %d give %.9g", label,
                             (long long)i, (long long)j, got, block, want);
            }
    }
    free(out.data);
    free(ref);
    free(err);
    free(a);
    free(b);
    free(c);
    free(ah);
    free(bh);
    builder_free(m);
}

static void test_fp16_gemm(void **state)
{
    (void)state;
    static const gemm16_case cases[] = {
        {7, 13, 5, false, true, 1.0f, 1.0f, true, false, false, false},
        {65, 33, 300, false, false, 1.0f, 1.0f, true, false, false, false},
        {3, 70, 37, true, false, 0.5f, 2.0f, true, false, false, false},
        {17, 5, 11, true, true, -1.5f, 0.25f, false, false, false, false},
        {11, 9, 23, false, false, 1.0f, 1.0f, false, true, false, false},
        {5, 40, 3, true, true, 1.0f, 1.0f, true, true, false, false},
        {4, 19, 1024, false, false, 1.0f, 1.0f, true, false, false, true},
    };
    for (int v = 0; v < 2; v++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            check_gemm_fp16(&cases[i], VARIANTS[v]);
    /* GPU-style with K split across work-groups. */
    static const gemm16_case split[] = {
        {5, 7, 2000, false, true, 0.5f, 2.0f, true, false, true, false},
        {9, 33, 301, true, false, 1.0f, 1.0f, true, true, true, false},
    };
    for (size_t i = 0; i < sizeof split / sizeof split[0]; i++)
        check_gemm_fp16(&split[i], CLEVAL_VARIANT_GPU);
}

/* ---- fp16: elementwise, pooling, softmax ---- */

/* Runs m on both kernel families against ref; `exact_share`: the share of elements that must
 * equal ref rounded to half (0: assert_half's own rule). */
static void run_fp16_one(cleval_onnx_model *m, float *x, const int64_t *xd, uint32_t rank,
                         const double *ref, const double *err, uint64_t ny, const char *what,
                         double exact_share)
{
    for (int v = 0; v < 2; v++) {
        cleval_nn_tensor in = tensor(rank, xd, x), out;
        run_in_precision(m, VARIANTS[v], CLEVAL_NN_FP16, 0.0, &in, &out);
        char label[160];
        snprintf(label, sizeof label, "fp16%s %s (%s)", half_math_run ? " half-math" : "", what,
                 cleval_variant_name(VARIANTS[v]));
        uint64_t exact = assert_half(out.data, ref, err, ny, 0, label);
        if ((double)exact < exact_share * (double)ny)
            fail_msg("%s: only %llu of %llu elements equal the rounded reference", label,
                     (unsigned long long)exact, (unsigned long long)ny);
        free(out.data);
    }
}

static void test_fp16_elementwise(void **state)
{
    (void)state;
    int64_t xd[3] = {3, 5, 7};
    uint64_t n = count_of(3, xd);
    float *x = random_array(n, -0.5f, 2.0f), *xh = relu_half(x, n);
    double *ref = malloc(n * sizeof *ref);

    /* Sigmoid */
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 3, xd);
    fp16_frame(m, "x", "xr");
    builder_node(m, "Sigmoid", "sigmoid", "xr", "z");
    fp16_tail(m);
    for (uint64_t i = 0; i < n; i++)
        ref[i] = 1.0 / (1.0 + exp(-(double)xh[i]));
    run_fp16_one(m, x, xd, 3, ref, NULL, n, "Sigmoid", 0);
    builder_free(m);

    /* Add of two half tensors, the second broadcast along axes 0 and 2. */
    int64_t bdims[3] = {1, 5, 1};
    float *b = random_array(5, -0.5f, 2.0f), *bh = relu_half(b, 5);
    m = builder_new(13);
    builder_input(m, "x", 3, xd);
    builder_input(m, "b", 3, bdims);
    fp16_frame(m, "x", "xr");
    fp16_frame(m, "b", "bb");
    builder_node(m, "Sub", "sub", "xr,bb", "z");
    fp16_tail(m);
    for (uint64_t i = 0; i < n; i++)
        ref[i] = (double)xh[i] - bh[(i / 7) % 5];
    for (int v = 0; v < 2; v++) {
        cleval_nn_tensor in[2] = {tensor(3, xd, x), tensor(3, bdims, b)}, out;
        run_in_precision(m, VARIANTS[v], CLEVAL_NN_FP16, 0.0, in, &out);
        assert_half(out.data, ref, NULL, n, 0, "fp16 Sub, broadcast");
        free(out.data);
    }
    builder_free(m);

    /* A half activation plus a float constant (one beyond half's range) into the float graph
     * output, and a Sigmoid of it into a float output: float tensors keep an op in float even
     * with half arithmetic, so the sum is float's to the bit and nothing overflows. */
    int64_t cd = 7;
    float cvals[7] = {0.001f, 1e5f, -3.3f, 0.1f, 7e4f, -1e-3f, 2.5f};
    m = builder_new(13);
    builder_input(m, "x", 3, xd);
    builder_init(m, "c", 1, &cd, cvals);
    fp16_frame(m, "x", "xr");
    builder_node(m, "Add", "add", "xr,c", "y");
    builder_node(m, "Sigmoid", "sigmoid_f", "xr", "s");
    builder_output(m, "y");
    builder_output(m, "s");
    for (int v = 0; v < 2; v++) {
        cleval_device_set_variant(test_device(), VARIANTS[v]);
        cleval_nn_options options = {.general = true, .precision = CLEVAL_NN_FP16};
        options.arithmetic = half_math_run ? CLEVAL_NN_ARITH_HALF : CLEVAL_NN_ARITH_FLOAT;
        cleval_nn *nn;
        assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
        cleval_nn_tensor in = tensor(3, xd, x), outs[2];
        assert_ok(cleval_nn_run_graph(nn, &in, outs));
        for (uint64_t i = 0; i < n; i++) {
            float sum = xh[i] + cvals[i % 7]; /* float arithmetic, as C does it */
            if (outs[0].data[i] != sum)
                fail_msg("Add with a float constant: element %llu is %.9g, float gives %.9g",
                         (unsigned long long)i, outs[0].data[i], sum);
            double sig = 1.0 / (1.0 + exp(-(double)xh[i]));
            if (!(fabs(outs[1].data[i] - sig) <= 1e-6 * sig))
                fail_msg("Sigmoid into a float output: element %llu is %.9g, expected %.9g",
                         (unsigned long long)i, outs[1].data[i], sig);
        }
        free(outs[0].data);
        free(outs[1].data);
        cleval_nn_destroy(nn);
    }
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    builder_free(m);

    /* BatchNormalization that cannot fold (no Conv before it): a per-channel affine map, in
     * float whatever the arithmetic. */
    float scale[5], shift[5], mean[5], var[5];
    for (int c = 0; c < 5; c++) {
        scale[c] = 0.5f + 0.25f * (float)c;
        shift[c] = -0.3f + 0.1f * (float)c;
        mean[c] = 0.2f * (float)c;
        var[c] = 1.0f + 0.5f * (float)c;
    }
    int64_t five = 5;
    m = builder_new(13);
    builder_input(m, "x", 3, xd);
    builder_init(m, "s", 1, &five, scale);
    builder_init(m, "t", 1, &five, shift);
    builder_init(m, "mu", 1, &five, mean);
    builder_init(m, "var", 1, &five, var);
    fp16_frame(m, "x", "xr");
    builder_node(m, "BatchNormalization", "bn", "xr,s,t,mu,var", "z");
    fp16_tail(m);
    double *err = malloc(n * sizeof *err);
    for (uint64_t i = 0; i < n; i++) {
        int c = (int)((i / 7) % 5);
        double k = scale[c] / sqrt((double)var[c] + 1e-5), t = shift[c] - mean[c] * k;
        ref[i] = ((double)xh[i] - mean[c]) * k + shift[c];
        /* x s + t in float, s and t rounded to float: it may cancel */
        err[i] = 0x1p-22 * (fabs(xh[i] * k) + fabs(t));
    }
    run_fp16_one(m, x, xd, 3, ref, err, n, "BatchNormalization", 0.9);
    free(err);
    builder_free(m);

    /* Pad (constant 0.75, negative pads crop). */
    int64_t pads[6] = {0, 1, -2, 0, 2, 1};
    m = builder_new(13);
    builder_input(m, "x", 3, xd);
    int64_t six = 6;
    builder_init_i64(m, "pads", 1, &six, pads);
    static const float value = 0.75f;
    int64_t one = 1;
    builder_init(m, "v", 1, &one, &value);
    fp16_frame(m, "x", "xr");
    builder_node(m, "Pad", "pad", "xr,pads,v", "z");
    fp16_tail(m);
    int64_t pd[3] = {3, 8, 6};
    uint64_t np = count_of(3, pd);
    double *pref = malloc(np * sizeof *pref);
    for (int64_t i = 0; i < 3; i++)
        for (int64_t j = 0; j < 8; j++)
            for (int64_t k = 0; k < 6; k++) {
                int64_t sj = j - 1, sk = k + 2;
                pref[(i * 8 + j) * 6 + k] =
                    sj >= 0 && sj < 5 && sk < 7 ? xh[(i * 5 + sj) * 7 + sk] : 0.75;
            }
    run_fp16_one(m, x, xd, 3, pref, NULL, np, "Pad", 0);
    free(pref);
    builder_free(m);

    /* Softmax over the last axis. */
    m = builder_new(13);
    builder_input(m, "x", 3, xd);
    fp16_frame(m, "x", "xr");
    builder_node(m, "Softmax", "softmax", "xr", "z");
    fp16_tail(m);
    for (uint64_t r = 0; r < n / 7; r++) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < 7; j++)
            mx = fmax(mx, xh[r * 7 + j]);
        for (int j = 0; j < 7; j++)
            sum += exp(xh[r * 7 + j] - mx);
        for (int j = 0; j < 7; j++)
            ref[r * 7 + j] = exp(xh[r * 7 + j] - mx) / sum;
    }
    run_fp16_one(m, x, xd, 3, ref, NULL, n, "Softmax", 0);
    builder_free(m);
    free(ref);
    free(x);
    free(xh);
    free(b);
    free(bh);
}

/* The fp16 cases again with half arithmetic, on a device with cl_khr_fp16 (skipped on one
 * without, such as PoCL before 6 on CPUs): every result within the half-arithmetic bound, and
 * the multiply kernels built for it. */
static void test_half_math(void **state)
{
    if (!cleval_device_get_info(test_device())->has_fp16) {
        print_message("[  SKIPPED ] the test device has no cl_khr_fp16\n");
        skip();
    }
    test_fp16_conv(state);
    test_fp16_gemm(state);
    test_fp16_elementwise(state);
}

/* test_half_math's setup and teardown: the flag is cleared even when an assertion fails. */
static int half_math_on(void **state)
{
    (void)state;
    half_math_run = true;
    return 0;
}

static int half_math_off(void **state)
{
    (void)state;
    half_math_run = false;
    return 0;
}

static void test_half_math_refused(void **state)
{
    (void)state;
    cleval_onnx_model *m = builder_new(13);
    int64_t d[2] = {2, 3};
    builder_input(m, "x", 2, d);
    builder_node(m, "Relu", "relu", "x", "y");
    builder_output(m, "y");
    cleval_nn *nn = NULL;
    cleval_nn_options fp32_half = {.general = true, .arithmetic = CLEVAL_NN_ARITH_HALF};
    assert_int_equal(cleval_nn_create_with(test_device(), m, &fp32_half, &nn), CLEVAL_ERR_USAGE);
    assert_null(nn);
    cleval_nn_options half = {
        .general = true, .precision = CLEVAL_NN_FP16, .arithmetic = CLEVAL_NN_ARITH_HALF};
    cleval_status status = cleval_nn_create_with(test_device(), m, &half, &nn);
    if (cleval_device_get_info(test_device())->has_fp16) {
        assert_ok(status);
        cleval_nn_model_info info;
        cleval_nn_model_info_get(nn, &info);
        assert_true(info.half_arithmetic);
        cleval_nn_destroy(nn);
    } else {
        assert_int_equal(status, CLEVAL_ERR_USAGE);
        assert_non_null(strstr(cleval_last_error(), "cl_khr_fp16"));
    }
    builder_free(m);
}

static void test_fp16_pool(void **state)
{
    (void)state;
    int64_t xd[4] = {2, 3, 9, 11};
    uint64_t n = count_of(4, xd);
    float *x = random_array(n, -0.5f, 2.0f), *xh = relu_half(x, n);
    /* 3x2 windows, stride 2x3, pads (1, 0, 1, 1): out 5 x 4. */
    int64_t k[2] = {3, 2}, s[2] = {2, 3}, pads[4] = {1, 0, 1, 1};
    int64_t oh = (9 + 2 - 3) / 2 + 1, ow = (11 + 1 - 2) / 3 + 1;
    uint64_t ny = (uint64_t)(6 * oh * ow);
    double *ref = malloc(ny * sizeof *ref);
    for (int mode = 0; mode < 3; mode++) {
        cleval_onnx_model *m = builder_new(13);
        builder_input(m, "x", 4, xd);
        fp16_frame(m, "x", "xr");
        if (mode < 2) {
            cleval_onnx_node *p =
                builder_node(m, mode == 0 ? "MaxPool" : "AveragePool", "pool", "xr", "z");
            attr_ints(p, "kernel_shape", 2, k);
            attr_ints(p, "strides", 2, s);
            attr_ints(p, "pads", 4, pads);
        } else {
            builder_node(m, "GlobalAveragePool", "gap", "xr", "z");
        }
        fp16_tail(m);
        uint64_t count = mode == 2 ? 6 : ny;
        for (int64_t pl = 0; pl < 6; pl++) {
            const float *src = xh + pl * 99;
            if (mode == 2) {
                double sum = 0;
                for (int i = 0; i < 99; i++)
                    sum += src[i];
                ref[pl] = sum / 99;
                continue;
            }
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    double best = -INFINITY, sum = 0;
                    int inside = 0;
                    for (int a = 0; a < 3; a++)
                        for (int e = 0; e < 2; e++) {
                            int64_t ih = i * 2 - 1 + a, iw = j * 3 + e;
                            if (ih < 0 || ih >= 9 || iw >= 11) continue;
                            best = fmax(best, src[ih * 11 + iw]);
                            sum += src[ih * 11 + iw];
                            inside++;
                        }
                    ref[(pl * oh + i) * ow + j] = mode == 0 ? best : sum / inside;
                }
        }
        run_fp16_one(m, x, xd, 4, ref, NULL, count,
                     mode == 0   ? "MaxPool"
                     : mode == 1 ? "AveragePool"
                                 : "GlobalAveragePool",
                     0);
        builder_free(m);
    }
    free(ref);
    free(x);
    free(xh);
}

/* ---- int8 ---- */

/* A classifier whose output is the Conv (fused Relu / MaxPool) flattened, or a Gemm. */
static cleval_nn *create_int8(cleval_onnx_model *m, cleval_kernel_variant variant,
                              const float *calibration, uint32_t n_calibration, double prune)
{
    cleval_device_set_variant(test_device(), variant);
    cleval_nn_options fp32 = {.prune = prune};
    cleval_nn *probe, *nn;
    assert_ok(cleval_nn_create_with(test_device(), m, &fp32, &probe));
    cleval_nn_calibration *cal = NULL;
    assert_ok(cleval_nn_calibrate(probe, calibration, n_calibration, &cal));
    assert_int_equal(cal->samples, n_calibration);
    cleval_nn_destroy(probe);
    cleval_nn_options options = {.precision = CLEVAL_NN_INT8, .prune = prune, .calibration = cal};
    assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
    cleval_nn_calibration_free(cal);
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    return nn;
}

/* The int8 code of x with scale s, as the contract states it: clamp(rint(x / s), +-127), the
 * division done as a float product by 1 / s. */
static float code_of(float x, float inv)
{
    float q = nearbyintf(x * inv);
    return q < -127.0f ? -127.0f : q > 127.0f ? 127.0f : q;
}

/* Per-channel codes of W (channel c: elements c * per .. (c + 1) * per - 1). */
static void codes_of_rows(const float *w, int64_t channels, int64_t per, float *q, float *scale)
{
    for (int64_t c = 0; c < channels; c++) {
        float mx = 0;
        for (int64_t e = 0; e < per; e++)
            mx = fmaxf(mx, fabsf(w[c * per + e]));
        float s = mx > 0 ? mx / 127.0f : 1.0f;
        scale[c] = s;
        for (int64_t e = 0; e < per; e++) {
            float v = nearbyintf(w[c * per + e] / s);
            q[c * per + e] = v < -127 ? -127 : v > 127 ? 127 : v;
        }
    }
}

typedef struct conv8_case {
    const char *what;
    conv_geom g;
    bool relu, pool, bias, grid;
    int n_cal;
} conv8_case;

static void check_conv_int8(const conv8_case *cc, cleval_kernel_variant variant, const char *tuning)
{
    const conv_geom *g = &cc->g;
    int64_t xd[4] = {g->n, g->c, g->h, g->w}, wd[4] = {g->co, g->c / g->group, g->kh, g->kw};
    int64_t xd_decl[4] = {-1, g->c, g->h, g->w};
    uint64_t nx = count_of(4, xd), nw = count_of(4, wd), per = nw / (uint64_t)g->co;
    uint64_t sample = nx / (uint64_t)g->n, ncal = (uint64_t)cc->n_cal * sample;
    float *x, *w, *cal, *b;
    if (cc->grid) {
        /* Test inputs reach +-160 * 2^-6, beyond the calibrated +-127 * 2^-6: saturation. */
        x = grid_array(nx, 160, 0x1p-6f);
        cal = grid_array(ncal, 126, 0x1p-6f);
        cal[0] = 127 * 0x1p-6f;
        w = grid_array(nw, 127, 0x1p-7f);
        for (int64_t c = 0; c < g->co; c++) /* a +-127 in every channel: its scale is 2^-7 */
            w[(uint64_t)c * per + (uint64_t)c % per] = (c % 2 ? -127 : 127) * 0x1p-7f;
        b = grid_array((uint64_t)g->co, 3000, 0x1p-13f);
    } else {
        x = random_array(nx, -1.5f, 1.5f);
        cal = random_array(ncal, -1.0f, 1.0f);
        w = random_array(nw, -0.5f, 0.5f);
        b = random_array((uint64_t)g->co, -0.5f, 0.5f);
    }
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 4, xd_decl);
    builder_init(m, "W", 4, wd, w);
    if (cc->bias) builder_init(m, "B", 1, &g->co, b);
    conv_node(m, "conv", cc->bias ? "x,W,B" : "x,W", "c", g);
    const char *last = "c";
    if (cc->relu) {
        builder_node(m, "Relu", "relu", "c", "r");
        last = "r";
    }
    if (cc->pool) {
        int64_t two[2] = {2, 2};
        cleval_onnx_node *p = builder_node(m, "MaxPool", "pool", last, "p");
        attr_ints(p, "kernel_shape", 2, two);
        attr_ints(p, "strides", 2, two);
        last = "p";
    }
    builder_node(m, "Flatten", "flatten", last, "y");
    builder_output(m, "y");

    /* Reference: codes as the contract defines them, exact integer sums, then the scales. */
    float mx = 0;
    for (uint64_t i = 0; i < ncal; i++)
        mx = fmaxf(mx, fabsf(cal[i]));
    float sx = mx / 127.0f, inv = 1.0f / sx;
    float *qx = malloc(nx * sizeof *qx), *qw = malloc(nw * sizeof *qw);
    float *sw = malloc((size_t)g->co * sizeof *sw);
    for (uint64_t i = 0; i < nx; i++)
        qx[i] = code_of(x[i], inv);
    codes_of_rows(w, g->co, (int64_t)per, qw, sw);
    int64_t oh, ow;
    conv_out_size(g, &oh, &ow);
    uint64_t ny = (uint64_t)(g->n * g->co * oh * ow), plane = (uint64_t)(oh * ow);
    double *acc = malloc((ny + 1) * sizeof *acc);
    ref_conv2d(g, qx, qw, NULL, acc, NULL); /* integers below 2^53: exact in double */
    for (uint64_t i = 0; i < ny; i++) {
        uint64_t c = (i / plane) % (uint64_t)g->co;
        if (cc->grid && fabs(acc[i]) >= 0x1p24) fail_msg("test data too large for exactness");
        acc[i] = acc[i] * ((double)sx * sw[c]) + (cc->bias ? b[c] : 0.0);
    }
    if (cc->relu) relu_inplace(acc, ny);
    if (cc->pool) {
        double *p = pool2(acc, g->n * g->co, oh, ow);
        free(acc);
        acc = p;
        ny = (uint64_t)(g->n * g->co * (oh / 2) * (ow / 2));
    }

    if (tuning) setenv("CLEVAL_NN_TUNING", tuning, 1);
    cleval_nn *nn = create_int8(m, variant, cal, (uint32_t)cc->n_cal, 0.0);
    unsetenv("CLEVAL_NN_TUNING");
    /* conv_gpu's tile: half width for 32 output channels per group or fewer. */
    bool narrow = g->co / g->group <= 32;
    expect_kernel(nn, variant == CLEVAL_VARIANT_GPU ? (narrow ? "conv_gpu TM=64 TN=32 TK=16 int8"
                                                              : "conv_gpu TM=64 TN=64 TK=16 int8")
                      : tuning && strstr(tuning, "i8_float=1") ? "int8 (float blocks)"
                                                               : "int8");
    cleval_nn_model_info info;
    cleval_nn_model_info_get(nn, &info);
    assert_int_equal(info.quantised_layers, 1);
    assert_int_equal(info.calibration_samples, cc->n_cal);
    assert_int_equal(cleval_nn_output_width(nn), ny / (uint64_t)g->n);
    float *got = malloc((ny + 1) * sizeof *got);
    assert_ok(cleval_nn_run(nn, x, (uint32_t)g->n, got));
    char label[200];
    snprintf(label, sizeof label, "int8 Conv %s (%s%s%s)", cc->what, cleval_variant_name(variant),
             tuning ? ", " : "", tuning ? tuning : "");
    if (cc->grid)
        assert_exact(got, acc, ny, label);
    else
        assert_close(got, acc, ny, 1e-5, 1e-5, label);
    cleval_nn_destroy(nn);
    free(got);
    free(acc);
    free(qx);
    free(qw);
    free(sw);
    free(x);
    free(w);
    free(b);
    free(cal);
    builder_free(m);
}

static void test_int8_conv(void **state)
{
    (void)state;
    /* clang-format off */
    static const conv8_case cases[] = {
        {"3x3 pad 1, bias", {2, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1}, false, false, true, true, 5},
        {"33 channels, strided, dilated, asymmetric pads",
         {1, 2, 11, 13, 33, 3, 3, 2, 1, 0, 1, 2, 0, 1, 2, 1}, false, false, true, true, 3},
        {"grouped", {2, 6, 5, 5, 9, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 3}, true, false, true, true, 2},
        {"+Relu+MaxPool fused, 32 channels (a Winograd shape in fp32)",
         {3, 16, 10, 9, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1}, true, true, true, true, 4},
        {"K 1170: two float blocks", {1, 130, 4, 5, 17, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1}, false, false, false, true, 2},
        {"random data", {2, 4, 8, 7, 19, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1}, true, false, true, false, 6},
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_conv_int8(&cases[i], CLEVAL_VARIANT_CPU, "i8_float=1");
        check_conv_int8(&cases[i], CLEVAL_VARIANT_CPU, "i8_float=0");
        check_conv_int8(&cases[i], CLEVAL_VARIANT_GPU, NULL);
    }
}

/* Two int8 Convs: 1x1 (+Relu) then 3x3 padded over its 32 channels, which on CPUs is read
 * channels-last in runs of 16 codes. The second layer's input scale is max|relu(conv1)| over
 * the calibration samples (exact here: grid data), not a power of two, so the codes follow the
 * contract's rounding and the output is the exact integer sum times one float scale. */
static void check_int8_chain(cleval_kernel_variant variant, const char *tuning)
{
    conv_geom g1 = {3, 3, 6, 7, 32, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1};
    conv_geom g2 = {3, 32, 6, 7, 19, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    int64_t xd[4] = {-1, 3, 6, 7}, w1d[4] = {32, 3, 1, 1}, w2d[4] = {19, 32, 3, 3};
    int64_t co1 = 32, co2 = 19;
    uint64_t sample = 3 * 42, n_cal = 4;
    float *x = grid_array(3 * sample, 150, 0x1p-6f),
          *cal = grid_array(n_cal * sample, 126, 0x1p-6f);
    cal[5] = -127 * 0x1p-6f;
    float *w1 = grid_array(96, 127, 0x1p-7f), *w2 = grid_array(19 * 288, 127, 0x1p-7f);
    for (int c = 0; c < 32; c++)
        w1[c * 3 + c % 3] = 127 * 0x1p-7f;
    for (int c = 0; c < 19; c++)
        w2[c * 288 + (c * 7) % 288] = -127 * 0x1p-7f;
    float *b1 = grid_array(32, 500, 0x1p-13f), *b2 = random_array(19, -0.5f, 0.5f);
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 4, xd);
    builder_init(m, "W1", 4, w1d, w1);
    builder_init(m, "B1", 1, &co1, b1);
    builder_init(m, "W2", 4, w2d, w2);
    builder_init(m, "B2", 1, &co2, b2);
    conv_node(m, "conv1", "x,W1,B1", "c1", &g1);
    builder_node(m, "Relu", "relu", "c1", "r1");
    conv_node(m, "conv2", "r1,W2,B2", "c2", &g2);
    builder_node(m, "Flatten", "flatten", "c2", "y");
    builder_output(m, "y");

    /* Layer 1 on the calibration samples (fp32, exact on grid data) gives the second scale. */
    double b1d[32], m2 = 0;
    for (int c = 0; c < 32; c++)
        b1d[c] = b1[c];
    double *y1 = malloc(n_cal * 32 * 42 * sizeof *y1);
    g1.n = (int64_t)n_cal;
    ref_conv2d(&g1, cal, w1, b1d, y1, NULL);
    for (uint64_t i = 0; i < n_cal * 32 * 42; i++)
        m2 = fmax(m2, y1[i]);
    free(y1);
    float s2 = (float)m2 / 127.0f, inv2 = 1.0f / s2, inv1 = 1.0f / (127 * 0x1p-6f / 127.0f);
    /* The test samples through both int8 layers. */
    g1.n = 3;
    float *q1 = malloc(3 * sample * sizeof *q1), *q2 = malloc(3 * 32 * 42 * sizeof *q2);
    for (uint64_t i = 0; i < 3 * sample; i++)
        q1[i] = code_of(x[i], inv1);
    float qw1[96], sw1[32], *qw2 = malloc(19 * 288 * sizeof *qw2), sw2[19];
    codes_of_rows(w1, 32, 3, qw1, sw1);
    codes_of_rows(w2, 19, 288, qw2, sw2);
    double *acc1 = malloc(3 * 32 * 42 * sizeof *acc1), *acc2 = malloc(3 * 19 * 42 * sizeof *acc2);
    ref_conv2d(&g1, q1, qw1, NULL, acc1, NULL);
    for (uint64_t i = 0; i < 3 * 32 * 42; i++) {
        double v = acc1[i] * 0x1p-13 + b1[(i / 42) % 32]; /* exact */
        q2[i] = code_of((float)(v < 0 ? 0 : v), inv2);
    }
    ref_conv2d(&g2, q2, qw2, NULL, acc2, NULL);
    for (uint64_t i = 0; i < 3 * 19 * 42; i++) {
        int c = (int)((i / 42) % 19);
        acc2[i] = acc2[i] * (double)(s2 * sw2[c]) + b2[c];
    }
    if (tuning) setenv("CLEVAL_NN_TUNING", tuning, 1);
    cleval_nn *nn = create_int8(m, variant, cal, (uint32_t)n_cal, 0.0);
    unsetenv("CLEVAL_NN_TUNING");
    if (variant == CLEVAL_VARIANT_CPU) expect_kernel(nn, "runs of 16");
    float *got = malloc(3 * 19 * 42 * sizeof *got);
    assert_ok(cleval_nn_run(nn, x, 3, got));
    char label[96];
    snprintf(label, sizeof label, "int8 Conv -> Conv (%s%s%s)", cleval_variant_name(variant),
             tuning ? ", " : "", tuning ? tuning : "");
    assert_close(got, acc2, 3 * 19 * 42, 1e-6, 1e-6, label);
    cleval_nn_destroy(nn);
    free(got);
    free(acc1);
    free(acc2);
    free(q1);
    free(q2);
    free(qw2);
    free(x);
    free(cal);
    free(w1);
    free(w2);
    free(b1);
    free(b2);
    builder_free(m);
}

static void test_int8_chain(void **state)
{
    (void)state;
    check_int8_chain(CLEVAL_VARIANT_CPU, "i8_float=1");
    check_int8_chain(CLEVAL_VARIANT_CPU, "i8_float=0");
    check_int8_chain(CLEVAL_VARIANT_GPU, NULL);
}

typedef struct gemm8_case {
    int64_t m, n, k;
    bool tb, matmul, bias, relu, grid;
    float alpha, beta;
} gemm8_case;

static void check_gemm_int8(const gemm8_case *gc, cleval_kernel_variant variant, const char *tuning)
{
    int64_t ad_decl[2] = {-1, gc->k};
    int64_t bd[2] = {gc->tb ? gc->n : gc->k, gc->tb ? gc->k : gc->n};
    uint64_t na = (uint64_t)(gc->m * gc->k), nb = (uint64_t)(gc->k * gc->n);
    int n_cal = 3;
    float *a, *b, *c, *cal;
    if (gc->grid) {
        a = grid_array(na, 140, 0x1p-6f);
        cal = grid_array((uint64_t)(n_cal * gc->k), 126, 0x1p-6f);
        cal[1] = -127 * 0x1p-6f;
        b = grid_array(nb, 127, 0x1p-7f);
        for (int64_t j = 0; j < gc->n; j++) /* a +-127 in every column */
            b[gc->tb ? j * gc->k + j % gc->k : (j % gc->k) * gc->n + j] = 127 * 0x1p-7f;
        c = grid_array((uint64_t)gc->n, 2000, 0x1p-13f);
    } else {
        a = random_array(na, -1.0f, 1.0f);
        cal = random_array((uint64_t)(n_cal * gc->k), -1.0f, 1.0f);
        b = random_array(nb, -1.0f, 1.0f);
        c = random_array((uint64_t)gc->n, -1.0f, 1.0f);
    }
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "a", 2, ad_decl);
    builder_init(m, "b", 2, bd, b);
    if (gc->bias) builder_init(m, "c", 1, &gc->n, c);
    const char *out = gc->relu ? "g" : "y";
    if (gc->matmul) {
        builder_node(m, "MatMul", "mm", "a,b", out);
    } else {
        cleval_onnx_node *node = builder_node(m, "Gemm", "gemm", gc->bias ? "a,b,c" : "a,b", out);
        attr_int(node, "transB", gc->tb);
        attr_float(node, "alpha", gc->alpha);
        attr_float(node, "beta", gc->beta);
    }
    if (gc->relu) builder_node(m, "Relu", "relu", "g", "y");
    builder_output(m, "y");

    float mx = 0;
    for (int64_t i = 0; i < n_cal * gc->k; i++)
        mx = fmaxf(mx, fabsf(cal[i]));
    float sx = mx / 127.0f, inv = 1.0f / sx;
    /* B's columns as rows, so each output channel is a row for codes_of_rows. */
    float *bt = malloc(nb * sizeof *bt), *qb = malloc(nb * sizeof *qb);
    float *sw = malloc((size_t)gc->n * sizeof *sw);
    for (int64_t j = 0; j < gc->n; j++)
        for (int64_t k = 0; k < gc->k; k++)
            bt[j * gc->k + k] = gc->tb ? b[j * gc->k + k] : b[k * gc->n + j];
    codes_of_rows(bt, gc->n, gc->k, qb, sw);
    uint64_t ny = (uint64_t)(gc->m * gc->n);
    double *ref = malloc((ny + 1) * sizeof *ref);
    float alpha = gc->matmul ? 1.0f : gc->alpha, beta = gc->matmul ? 0.0f : gc->beta;
    for (int64_t i = 0; i < gc->m; i++)
        for (int64_t j = 0; j < gc->n; j++) {
            double acc = 0;
            for (int64_t k = 0; k < gc->k; k++)
                acc += (double)code_of(a[i * gc->k + k], inv) * qb[j * gc->k + k];
            if (gc->grid && fabs(acc) >= 0x1p24) fail_msg("test data too large for exactness");
            double v = alpha * (acc * ((double)sx * sw[j])) + (gc->bias ? beta * c[j] : 0.0);
            ref[i * gc->n + j] = gc->relu && v < 0 ? 0 : v;
        }
    if (tuning) setenv("CLEVAL_NN_TUNING", tuning, 1);
    cleval_nn *nn = create_int8(m, variant, cal, (uint32_t)n_cal, 0.0);
    unsetenv("CLEVAL_NN_TUNING");
    /* gemm_gpu's tile: as forced by the tuning, else the large one from 64 columns. */
    bool large = tuning && strstr(tuning, "gpu_gemm_tile=")
                     ? strstr(tuning, "gpu_gemm_tile=2") != NULL
                     : gc->n >= 64;
    expect_kernel(nn, variant == CLEVAL_VARIANT_CPU ? "int8"
                      : large                       ? "gemm_gpu 64x64/16 8x8 int8"
                                                    : "gemm_gpu 32x32/16 4x4 int8");
    float *got = malloc((ny + 1) * sizeof *got);
    assert_ok(cleval_nn_run(nn, a, (uint32_t)gc->m, got));
    char label[200];
    snprintf(label, sizeof label, "int8 %s %lldx%lldx%lld tb%d (%s%s%s)",
             gc->matmul ? "MatMul" : "Gemm", (long long)gc->m, (long long)gc->n, (long long)gc->k,
             gc->tb, cleval_variant_name(variant), tuning ? ", " : "", tuning ? tuning : "");
    if (gc->grid)
        assert_exact(got, ref, ny, label);
    else
        assert_close(got, ref, ny, 1e-5, 1e-5, label);
    cleval_nn_destroy(nn);
    free(got);
    free(ref);
    free(bt);
    free(qb);
    free(sw);
    free(a);
    free(b);
    free(c);
    free(cal);
    builder_free(m);
}

static void test_int8_gemm(void **state)
{
    (void)state;
    /* clang-format off */
    static const gemm8_case cases[] = {
        {7, 13, 5, true, false, true, false, true, 1.0f, 1.0f},
        {65, 33, 300, false, false, true, true, true, 0.5f, 2.0f},   /* k-blocks of 256 */
        {3, 70, 2100, true, false, true, false, true, 1.0f, 1.0f},   /* float blocks of 1024 */
        {17, 5, 37, false, true, false, false, true, 1.0f, 0.0f},    /* MatMul */
        {9, 40, 33, false, false, true, true, false, 1.0f, 1.0f},    /* random data */
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_gemm_int8(&cases[i], CLEVAL_VARIANT_CPU, "i8_float=1");
        check_gemm_int8(&cases[i], CLEVAL_VARIANT_CPU, "i8_float=0");
        check_gemm_int8(&cases[i], CLEVAL_VARIANT_GPU, NULL);
        /* GPU-style with K split across work-groups: int32 partial sums; each tile shape. */
        check_gemm_int8(&cases[i], CLEVAL_VARIANT_GPU, "gpu_groups=64");
        check_gemm_int8(&cases[i], CLEVAL_VARIANT_GPU, "gpu_gemm_tile=1");
        check_gemm_int8(&cases[i], CLEVAL_VARIANT_GPU, "gpu_gemm_tile=2,gpu_groups=64");
    }
}

/* Calibration in chunks equals calibration in one go; the ranges are the layers' inputs. */
static void test_int8_calibration(void **state)
{
    (void)state;
    int64_t xd[2] = {-1, 6}, wd[2] = {6, 4}, w2d[2] = {4, 3};
    float w[24], w2[12];
    for (int i = 0; i < 24; i++)
        w[i] = (float)((i * 7) % 11) - 5.0f;
    for (int i = 0; i < 12; i++)
        w2[i] = (float)((i * 5) % 7) - 3.0f;
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 2, xd);
    builder_init(m, "W", 2, wd, w);
    builder_init(m, "W2", 2, w2d, w2);
    builder_node(m, "MatMul", "mm1", "x,W", "h");
    builder_node(m, "Relu", "relu", "h", "r");
    builder_node(m, "MatMul", "mm2", "r,W2", "y");
    builder_output(m, "y");
    float *x = random_array(10 * 6, -2.0f, 2.0f);
    cleval_nn *nn;
    assert_ok(cleval_nn_create(test_device(), m, &nn));
    cleval_nn_calibration *once = NULL, *chunks = NULL;
    assert_ok(cleval_nn_calibrate(nn, x, 10, &once));
    assert_ok(cleval_nn_calibrate(nn, x, 3, &chunks));
    assert_ok(cleval_nn_calibrate(nn, x + 3 * 6, 7, &chunks));
    assert_int_equal(once->n_layers, 2);
    assert_int_equal(chunks->samples, 10);
    double m1 = 0, m2 = 0;
    for (int s = 0; s < 10; s++) {
        for (int i = 0; i < 6; i++)
            m1 = fmax(m1, fabs(x[s * 6 + i]));
        for (int j = 0; j < 4; j++) {
            double h = 0;
            for (int i = 0; i < 6; i++)
                h += (double)x[s * 6 + i] * w[i * 4 + j];
            m2 = fmax(m2, h < 0 ? 0 : h);
        }
    }
    for (int l = 0; l < 2; l++)
        assert_true(once->max_abs[l] == chunks->max_abs[l]);
    assert_true(once->max_abs[0] == m1);
    assert_true(fabs(once->max_abs[1] - m2) <= 1e-5 * m2);
    cleval_nn_calibration_free(once);
    cleval_nn_calibration_free(chunks);
    cleval_nn_destroy(nn);
    free(x);
    builder_free(m);
}

/* ---- pruning ---- */

/* The reference pruning: the floor(s * n) smallest |w|, lower index first on ties. */
static void prune_ref(float *w, uint64_t n, double s)
{
    uint64_t k = (uint64_t)floor(s * (double)n);
    bool *gone = calloc(n + 1, sizeof *gone);
    for (uint64_t done = 0; done < k; done++) {
        uint64_t best = UINT64_MAX;
        for (uint64_t i = 0; i < n; i++)
            if (!gone[i] && (best == UINT64_MAX || fabsf(w[i]) < fabsf(w[best]))) best = i;
        gone[best] = true;
    }
    for (uint64_t i = 0; i < n; i++)
        if (gone[i]) w[i] = 0.0f;
    free(gone);
}

static void test_prune(void **state)
{
    (void)state;
    /* Exact count and deterministic ties: |w| takes few values. */
    conv_geom g = {2, 3, 6, 7, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    int64_t xd[4] = {2, 3, 6, 7}, wd[4] = {5, 3, 3, 3}, fd[2] = {5 * 42, 4};
    uint64_t nw = count_of(4, wd), nf = count_of(2, fd);
    float *w = grid_array(nw, 4, 0.25f), *f = random_array(nf, -1.0f, 1.0f);
    for (uint64_t i = 0; i < nw; i++)
        if (w[i] == 0.0f) w[i] = 0.25f; /* no zeros before pruning */
    float *b = random_array(5, -0.5f, 0.5f), *x = random_array(count_of(4, xd), -1.0f, 1.0f);
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 4, xd);
    builder_init(m, "W", 4, wd, w);
    builder_init(m, "B", 1, &g.co, b);
    builder_init(m, "F", 2, fd, f);
    conv_node(m, "conv", "x,W,B", "c", &g);
    builder_node(m, "Flatten", "flatten", "c", "h");
    builder_node(m, "MatMul", "fc", "h,F", "y");
    builder_output(m, "y");

    double s = 0.55;
    float *wp = malloc(nw * sizeof *wp), *fp = malloc(nf * sizeof *fp);
    memcpy(wp, w, nw * sizeof *wp);
    memcpy(fp, f, nf * sizeof *fp);
    prune_ref(wp, nw, s);
    prune_ref(fp, nf, s);
    uint64_t zeros = 0;
    for (uint64_t i = 0; i < nw; i++)
        zeros += wp[i] == 0.0f;
    assert_int_equal(zeros, (uint64_t)floor(s * (double)nw));
    double bd[5];
    for (int i = 0; i < 5; i++)
        bd[i] = b[i];
    double *conv = malloc(2 * 5 * 42 * sizeof *conv), ref[2 * 4];
    ref_conv2d(&g, x, wp, bd, conv, NULL);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            double sum = 0;
            for (int k = 0; k < 5 * 42; k++)
                sum += (double)(float)conv[i * 210 + k] * fp[k * 4 + j];
            ref[i * 4 + j] = sum;
        }
    for (int v = 0; v < 2; v++) {
        for (int p = 0; p < 2; p++) {
            cleval_device_set_variant(test_device(), VARIANTS[v]);
            cleval_nn_options options = {
                .general = true, .precision = p ? CLEVAL_NN_FP16 : CLEVAL_NN_FP32, .prune = s};
            cleval_nn *nn;
            assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
            cleval_nn_model_info info;
            cleval_nn_model_info_get(nn, &info);
            assert_int_equal(info.weights, nw + nf);
            assert_int_equal(info.zero_weights,
                             (uint64_t)floor(s * (double)nw) + (uint64_t)floor(s * (double)nf));
            assert_true(info.prune == s);
            cleval_nn_tensor in = tensor(4, xd, x), out;
            assert_ok(cleval_nn_run_graph(nn, &in, &out));
            char label[96];
            snprintf(label, sizeof label, "pruned Conv + MatMul, %s (%s)", p ? "fp16" : "fp32",
                     cleval_variant_name(VARIANTS[v]));
            if (p)
                assert_close(out.data, ref, 8, 0.1, 2e-2, label);
            else
                assert_close(out.data, ref, 8, 1e-4, 1e-4, label);
            free(out.data);
            cleval_nn_destroy(nn);
        }
    }
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    free(conv);
    free(wp);
    free(fp);
    free(w);
    free(f);
    free(b);
    free(x);
    builder_free(m);
}

/* int8 after pruning: the codes of the pruned weights, exactly (grid data). */
static void test_prune_int8(void **state)
{
    (void)state;
    int64_t ad[2] = {-1, 24}, bd[2] = {24, 9};
    float *b = grid_array(24 * 9, 127, 0x1p-7f), *a = grid_array(5 * 24, 127, 0x1p-6f);
    for (int j = 0; j < 9; j++) /* a +-127 in every column survives any pruning below 1 */
        b[(j % 24) * 9 + j] = 127 * 0x1p-7f;
    a[0] = 127 * 0x1p-6f;
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "a", 2, ad);
    builder_init(m, "b", 2, bd, b);
    builder_node(m, "MatMul", "mm", "a,b", "y");
    builder_output(m, "y");
    float *bp = malloc(24 * 9 * sizeof *bp);
    memcpy(bp, b, 24 * 9 * sizeof *bp);
    prune_ref(bp, 24 * 9, 0.7);
    double ref[5 * 9];
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 9; j++) {
            double acc = 0;
            for (int k = 0; k < 24; k++)
                acc += (double)(a[i * 24 + k] * 64.0f) * (bp[k * 9 + j] * 128.0f);
            ref[i * 9 + j] = acc * 0x1p-13;
        }
    for (int v = 0; v < 2; v++) {
        cleval_nn *nn = create_int8(m, VARIANTS[v], a, 5, 0.7);
        float got[5 * 9];
        assert_ok(cleval_nn_run(nn, a, 5, got));
        assert_exact(got, ref, 45, "int8 MatMul pruned at 0.7");
        cleval_nn_destroy(nn);
    }
    free(a);
    free(b);
    free(bp);
    builder_free(m);
}

/* ---- model sizes and refusals ---- */

static void test_sizes_and_refusals(void **state)
{
    (void)state;
    /* Conv 4 -> 6 (3x3, bias) then Gemm 6*5*5 -> 3 with C. */
    int64_t xd[4] = {-1, 4, 7, 7}, wd[4] = {6, 4, 3, 3}, fd[2] = {150, 3}, six = 6, three = 3;
    float *w = random_array(216, -1, 1), *f = random_array(450, -1, 1);
    float *b = random_array(6, -1, 1), *c = random_array(3, -1, 1);
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 4, xd);
    builder_init(m, "W", 4, wd, w);
    builder_init(m, "B", 1, &six, b);
    builder_init(m, "F", 2, fd, f);
    builder_init(m, "C", 1, &three, c);
    conv_geom g = {0, 4, 7, 7, 6, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1};
    conv_node(m, "conv", "x,W,B", "h", &g);
    builder_node(m, "Flatten", "flatten", "h", "hf");
    builder_node(m, "Gemm", "fc", "hf,F,C", "y");
    builder_output(m, "y");
    uint64_t weights = 216 + 450, others = 6 + 3;
    cleval_nn *nn;
    cleval_nn_model_info info;
    for (int p = 0; p < 2; p++) {
        cleval_nn_options options = {.precision = p ? CLEVAL_NN_FP16 : CLEVAL_NN_FP32};
        assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
        cleval_nn_model_info_get(nn, &info);
        assert_int_equal(info.weights, weights);
        assert_int_equal(info.size_bytes, (p ? 2 : 4) * weights + 4 * others);
        /* fp16's default arithmetic is half exactly where the device has cl_khr_fp16. */
        assert_int_equal(info.half_arithmetic,
                         p && cleval_device_get_info(test_device())->has_fp16);
        if (!p) {
            /* Wrong calls: calibrating with no samples; int8 without a calibration. */
            cleval_nn_calibration *cal = NULL;
            float *x = random_array(196 * 2, -1, 1);
            assert_int_equal(cleval_nn_calibrate(nn, x, 0, &cal), CLEVAL_ERR_USAGE);
            assert_ok(cleval_nn_calibrate(nn, x, 2, &cal));
            cleval_nn_options int8 = {.precision = CLEVAL_NN_INT8, .calibration = cal};
            cleval_nn *q;
            assert_ok(cleval_nn_create_with(test_device(), m, &int8, &q));
            cleval_nn_model_info_get(q, &info);
            /* 1 byte per weight, a scale per output channel (6 + 3) and per layer input. */
            assert_int_equal(info.size_bytes, weights + 4 * (6 + 3) + 4 * 2 + 4 * others);
            assert_int_equal(info.quantised_layers, 2);
            cleval_nn_destroy(q);
            /* A calibration of another network (one layer fewer) is refused. */
            cal->n_layers = 1;
            assert_int_equal(cleval_nn_create_with(test_device(), m, &int8, &q), CLEVAL_ERR_USAGE);
            assert_null(q);
            cal->n_layers = 2;
            int8.general = true;
            assert_int_equal(cleval_nn_create_with(test_device(), m, &int8, &q), CLEVAL_ERR_USAGE);
            int8.general = false;
            int8.calibration = NULL;
            assert_int_equal(cleval_nn_create_with(test_device(), m, &int8, &q), CLEVAL_ERR_USAGE);
            cleval_nn_options pruned = {.prune = 1.0};
            assert_int_equal(cleval_nn_create_with(test_device(), m, &pruned, &q),
                             CLEVAL_ERR_USAGE);
            pruned.prune = -0.1;
            assert_int_equal(cleval_nn_create_with(test_device(), m, &pruned, &q),
                             CLEVAL_ERR_USAGE);
            cleval_nn_calibration_free(cal);
            free(x);
        }
        cleval_nn_destroy(nn);
    }
    /* An fp16 network cannot calibrate. */
    cleval_nn_options half = {.precision = CLEVAL_NN_FP16};
    assert_ok(cleval_nn_create_with(test_device(), m, &half, &nn));
    cleval_nn_calibration *cal = NULL;
    assert_int_equal(cleval_nn_calibrate(nn, w, 1, &cal), CLEVAL_ERR_USAGE);
    cleval_nn_destroy(nn);
    assert_string_equal(cleval_nn_precision_name(CLEVAL_NN_INT8), "int8");

    /* A MatMul whose constant B holds no values (a type the reader does not convert) is not a
     * quantisable layer: a one-layer calibration does not match it, and with a calibration of
     * no layers it is refused as not a float tensor instead of quantising missing weights. */
    cleval_onnx_model *nb = builder_new(13);
    int64_t ad[2] = {-1, 4}, bd[2] = {4, 3};
    builder_input(nb, "a", 2, ad);
    BUILDER_GROW(nb->initializers, nb->n_initializers);
    builder_tensor(&nb->initializers[nb->n_initializers++], "Bn", 2, bd, NULL, NULL);
    builder_node(nb, "MatMul", "mm", "a,Bn", "y");
    builder_output(nb, "y");
    double one = 1.0;
    cleval_nn_calibration fake = {.samples = 1, .n_layers = 1, .max_abs = &one};
    cleval_nn_options int8 = {.precision = CLEVAL_NN_INT8, .calibration = &fake};
    for (int v = 0; v < 2; v++) {
        cleval_device_set_variant(test_device(), VARIANTS[v]);
        fake.n_layers = 1;
        assert_int_equal(cleval_nn_create_with(test_device(), nb, &int8, &nn), CLEVAL_ERR_USAGE);
        assert_non_null(strstr(cleval_last_error(), "this network has 0"));
        fake.n_layers = 0;
        assert_int_not_equal(cleval_nn_create_with(test_device(), nb, &int8, &nn), CLEVAL_OK);
        assert_null(nn);
        assert_non_null(strstr(cleval_last_error(), "float tensor"));
    }
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    builder_free(nb);
    free(w);
    free(f);
    free(b);
    free(c);
    builder_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp16_conv),
        cmocka_unit_test(test_fp16_gemm),
        cmocka_unit_test(test_fp16_elementwise),
        cmocka_unit_test(test_fp16_pool),
        cmocka_unit_test_setup_teardown(test_half_math, half_math_on, half_math_off),
        cmocka_unit_test(test_half_math_refused),
        cmocka_unit_test(test_int8_conv),
        cmocka_unit_test(test_int8_gemm),
        cmocka_unit_test(test_int8_chain),
        cmocka_unit_test(test_int8_calibration),
        cmocka_unit_test(test_prune),
        cmocka_unit_test(test_prune_int8),
        cmocka_unit_test(test_sizes_and_refusals),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
