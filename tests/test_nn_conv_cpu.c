/* The CPU convolution paths for the shapes of mobile networks (kernels/conv_depthwise.cl)
 * against a plain C reference in double at odd sizes: 1 channel, prime channel counts and
 * widths, one more than a 16-lane vector, stride 2 on odd extents, pads, dilation, 3x3 and 5x5
 * windows, the fused bias and activations. Each depthwise Conv runs in the four layout
 * combinations the layout pass gives it: alone (NCHW in and out), after a 1x1 Conv (channels-last
 * in), before one (channels-last out), and between two; the kernel that ran is checked by name.
 * The GPU family runs the same graphs through its own depthwise kernel. Then the layout pass's
 * channels-last groups through a residual Add + Relu, and Winograd on inputs of any layout and
 * channel count. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_builder.h"
#define NN_TEST_SEED 11 /* the seed of this program's random inputs */
#include "nn_testutil.h"

typedef enum act { ACT_NONE, ACT_RELU, ACT_CLIP6 } act;

/* The precision the graphs run in, and the tolerance that goes with it: fp16 stores every
 * tensor as half (about 3 significant digits), fp32 only rounds the sums. */
static cleval_nn_precision precision = CLEVAL_NN_FP32;

static double tolerance(double fp32)
{
    return precision == CLEVAL_NN_FP16 ? 2e-2 : fp32;
}

typedef struct dw_case {
    const char *what;
    int64_t n, c, h, w, k, stride, pad, dil;
    bool bias;
    act activation;
} dw_case;

/* ---- the reference ---- */

/* y[n][co][p] = b[co] + sum_ci w[co][ci] x[n][ci][p] (1x1 Conv, NCHW, double). */
static void ref_pointwise(const double *x, int64_t n, int64_t c, int64_t pixels, const float *w,
                          const float *b, int64_t co, double *y)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < co; o++)
            for (int64_t p = 0; p < pixels; p++) {
                double s = b[o];
                for (int64_t ci = 0; ci < c; ci++)
                    s += (double)w[o * c + ci] * x[(i * c + ci) * pixels + p];
                y[(i * co + o) * pixels + p] = s;
            }
}

static double activate(double v, act a)
{
    if (a == ACT_RELU) return v < 0 ? 0 : v;
    if (a == ACT_CLIP6) return v < 0 ? 0 : (v > 6 ? 6 : v);
    return v;
}

/* Depthwise k x k Conv with symmetric pads, NCHW, double. */
static void ref_depthwise(const double *x, const dw_case *d, int64_t oh, int64_t ow, const float *w,
                          const float *b, double *y)
{
    for (int64_t i = 0; i < d->n; i++)
        for (int64_t ch = 0; ch < d->c; ch++)
            for (int64_t r = 0; r < oh; r++)
                for (int64_t q = 0; q < ow; q++) {
                    double s = d->bias ? b[ch] : 0.0;
                    for (int64_t a = 0; a < d->k; a++)
                        for (int64_t e = 0; e < d->k; e++) {
                            int64_t ih = r * d->stride - d->pad + a * d->dil;
                            int64_t iw = q * d->stride - d->pad + e * d->dil;
                            if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w) continue;
                            s += (double)w[(ch * d->k + a) * d->k + e] *
                                 x[((i * d->c + ch) * d->h + ih) * d->w + iw];
                        }
                    y[((i * d->c + ch) * oh + r) * ow + q] = activate(s, d->activation);
                }
}

/* k x k Conv, group 1, symmetric pads, NCHW, double. */
static void ref_conv2d(const double *x, int64_t n, int64_t c, int64_t h, int64_t w, const float *wt,
                       const float *b, int64_t co, int64_t k, int64_t stride, int64_t pad,
                       double *y)
{
    int64_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < co; o++)
            for (int64_t r = 0; r < oh; r++)
                for (int64_t q = 0; q < ow; q++) {
                    double s = b ? b[o] : 0.0;
                    for (int64_t ci = 0; ci < c; ci++)
                        for (int64_t a = 0; a < k; a++)
                            for (int64_t e = 0; e < k; e++) {
                                int64_t ih = r * stride - pad + a, iw = q * stride - pad + e;
                                if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                                s += (double)wt[((o * c + ci) * k + a) * k + e] *
                                     x[((i * c + ci) * h + ih) * w + iw];
                            }
                    y[((i * co + o) * oh + r) * ow + q] = s;
                }
}

/* Runs m on x (one output) with the CPU family forced; the output's data is malloc'd. When
 * `kernel` is not NULL, the layer named `layer` must have run a kernel whose description
 * contains it. */
static void run_cpu(cleval_onnx_model *m, const cleval_nn_tensor *x, cleval_nn_tensor *out,
                    const char *layer, const char *kernel)
{
    cleval_device_set_variant(test_device(), CLEVAL_VARIANT_CPU);
    cleval_nn_options options = {.general = true, .precision = precision};
    cleval_nn *nn;
    assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
    assert_ok(cleval_nn_run_graph(nn, x, out));
    bool found = kernel == NULL;
    for (uint32_t i = 0; !found && i < cleval_nn_layer_count(nn); i++) {
        const cleval_nn_layer *l = cleval_nn_layer_at(nn, i);
        if (strcmp(l->name, layer) == 0) {
            if (!strstr(l->kernel, kernel))
                fail_msg("layer %s ran %s, expected %s", layer, l->kernel, kernel);
            found = true;
        }
    }
    if (!found) fail_msg("no layer %s", layer);
    cleval_nn_destroy(nn);
    cleval_device_set_variant(test_device(), VARIANTS[0]);
}

/* |got - want| <= tol (1 + |want|) everywhere. */
static void expect_within(const float *got, const double *want, uint64_t n, double tol,
                          const char *what)
{
    for (uint64_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i]))))
            fail_msg("%s: element %llu is %.9g, expected %.9g", what, (unsigned long long)i, got[i],
                     want[i]);
}

static void expect_close(const float *got, const double *want, uint64_t n, const char *what)
{
    expect_within(got, want, n, tolerance(2e-5), what);
}

/* ---- one graph ---- */

/* [pre: 1x1 Conv 3 -> C] -> depthwise Conv [-> Relu/Clip] -> [post: 1x1 Conv C -> 5]. */
static void check_depthwise(const dw_case *d, bool pre, bool post, cleval_kernel_variant variant)
{
    const int64_t c0 = 3, co2 = 5;
    int64_t cin = pre ? c0 : d->c;
    int64_t xd[4] = {d->n, cin, d->h, d->w}, wd[4] = {d->c, 1, d->k, d->k};
    int64_t w1d[4] = {d->c, c0, 1, 1}, w2d[4] = {co2, d->c, 1, 1};
    int64_t span = (d->k - 1) * d->dil + 1;
    int64_t oh = (d->h + 2 * d->pad - span) / d->stride + 1;
    int64_t ow = (d->w + 2 * d->pad - span) / d->stride + 1;
    uint64_t nx = count_of(4, xd), pixels = (uint64_t)(d->h * d->w), opix = (uint64_t)(oh * ow);
    float *x = random_array(nx, -1, 1), *w = random_array((uint64_t)(d->c * d->k * d->k), -1, 1);
    float *b = random_array((uint64_t)d->c, -1, 1);
    float *w1 = random_array((uint64_t)(d->c * c0), -1, 1),
          *b1 = random_array((uint64_t)d->c, -1, 1);
    float *w2 = random_array((uint64_t)(co2 * d->c), -1, 1),
          *b2 = random_array((uint64_t)co2, -1, 1);

    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 4, xd);
    builder_init(m, "W", 4, wd, w);
    if (d->bias) builder_init(m, "B", 1, &d->c, b);
    if (pre) {
        builder_init(m, "W1", 4, w1d, w1);
        builder_init(m, "B1", 1, &d->c, b1);
        builder_node(m, "Conv", "pre", "x,W1,B1", "x1");
    }
    char in[32];
    snprintf(in, sizeof in, "%s,W%s", pre ? "x1" : "x", d->bias ? ",B" : "");
    const char *dw_out = d->activation != ACT_NONE ? "a" : (post ? "d" : "y");
    cleval_onnx_node *node = builder_node(m, "Conv", "dw", in, dw_out);
    int64_t k2[2] = {d->k, d->k}, s2[2] = {d->stride, d->stride}, dl2[2] = {d->dil, d->dil};
    int64_t p4[4] = {d->pad, d->pad, d->pad, d->pad};
    attr_ints(node, "kernel_shape", 2, k2);
    attr_ints(node, "strides", 2, s2);
    attr_ints(node, "pads", 4, p4);
    attr_ints(node, "dilations", 2, dl2);
    attr_int(node, "group", d->c);
    if (d->activation == ACT_RELU) builder_node(m, "Relu", "relu", "a", post ? "d" : "y");
    if (d->activation == ACT_CLIP6) {
        float lo = 0, hi = 6;
        builder_init(m, "lo", 0, NULL, &lo);
        builder_init(m, "hi", 0, NULL, &hi);
        builder_node(m, "Clip", "clip", "a,lo,hi", post ? "d" : "y");
    }
    if (post) {
        builder_init(m, "W2", 4, w2d, w2);
        builder_init(m, "B2", 1, &co2, b2);
        builder_node(m, "Conv", "post", "d,W2,B2", "y");
    }
    builder_output(m, "y");

    /* The reference, stage by stage in double. */
    double *xd64 = malloc((nx + 1) * sizeof *xd64);
    for (uint64_t i = 0; i < nx; i++)
        xd64[i] = x[i];
    double *mid = xd64;
    if (pre) {
        mid = malloc((size_t)(d->n * d->c) * pixels * sizeof *mid + sizeof *mid);
        ref_pointwise(xd64, d->n, c0, (int64_t)pixels, w1, b1, d->c, mid);
    }
    double *dw = malloc((size_t)(d->n * d->c) * opix * sizeof *dw + sizeof *dw);
    ref_depthwise(mid, d, oh, ow, w, b, dw);
    double *ref = dw;
    int64_t yc = d->c;
    if (post) {
        ref = malloc((size_t)(d->n * co2) * opix * sizeof *ref + sizeof *ref);
        ref_pointwise(dw, d->n, d->c, (int64_t)opix, w2, b2, co2, ref);
        yc = co2;
    }

    cleval_device_set_variant(test_device(), variant);
    cleval_nn_options options = {.general = true, .precision = precision};
    cleval_nn *nn;
    assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
    cleval_nn_tensor input = tensor(4, xd, x), out;
    assert_ok(cleval_nn_run_graph(nn, &input, &out));
    int64_t yd[4] = {d->n, yc, oh, ow};
    assert_shape(&out, 4, yd);
    char what[160];
    snprintf(what, sizeof what, "%s%s%s (%s)", pre ? "1x1 Conv -> " : "", d->what,
             post ? " -> 1x1 Conv" : "", cleval_variant_name(variant));
    uint64_t ny = count_of(4, yd);
    expect_close(out.data, ref, ny, what);
    if (variant == CLEVAL_VARIANT_CPU && ny > 0 && d->c > 1) {
        /* Channels-last in when a 1x1 Conv feeds it, NCHW (a graph input) otherwise, at stride
         * 1 through the flattened scratch unless a bordered plane passes its 2^20 floats; one
         * channel is group 1, an ordinary Conv. */
        bool big = (d->h + 2 * d->pad) * (d->w + 2 * d->pad) > (1 << 20);
        const char *want = pre                      ? "conv_dw_channels"
                           : d->stride == 1 && !big ? "conv_dw_flat"
                                                    : "conv_dw_planes";
        bool found = false;
        for (uint32_t i = 0; i < cleval_nn_layer_count(nn); i++)
            if (strstr(cleval_nn_layer_at(nn, i)->kernel, want)) found = true;
        if (!found) fail_msg("%s: no layer ran %s", what, want);
    }
    cleval_nn_destroy(nn);
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    free(out.data);
    if (post) free(ref);
    free(dw);
    if (pre) free(mid);
    free(xd64);
    free(x);
    free(w);
    free(b);
    free(w1);
    free(b1);
    free(w2);
    free(b2);
    builder_free(m);
}

/* ---- the cases ---- */

static void test_depthwise(void **state)
{
    (void)state;
    /* what, n, c, h, w, k, stride, pad, dilation, bias, activation */
    static const dw_case cases[] = {
        {"3x3 stride 1, 1 channel", 2, 1, 7, 9, 3, 1, 1, 1, true, ACT_NONE},
        {"3x3 stride 1, 17 channels, width 37", 1, 17, 5, 37, 3, 1, 1, 1, true, ACT_CLIP6},
        {"3x3 stride 2, 16 channels, odd extents", 2, 16, 13, 67, 3, 2, 1, 1, true, ACT_RELU},
        {"3x3 stride 2, 32 channels, width 35", 1, 32, 9, 35, 3, 2, 1, 1, false, ACT_CLIP6},
        {"5x5 stride 1, 7 channels, pad 2", 1, 7, 11, 19, 5, 1, 2, 1, true, ACT_NONE},
        {"5x5 stride 2, 33 channels", 3, 33, 9, 41, 5, 2, 2, 1, true, ACT_RELU},
        {"3x3 dilation 2, 5 channels", 1, 5, 9, 23, 3, 1, 2, 2, true, ACT_NONE},
        {"3x3 stride 3, no pad, 48 channels", 1, 48, 10, 40, 3, 3, 0, 1, true, ACT_NONE},
        {"one pixel, 3 channels", 1, 3, 1, 1, 3, 1, 1, 1, true, ACT_RELU},
        /* ConvNeXt's 7x7: planes of 7 and 14 columns (several rows per vector), more planes
         * (n * c) than work-items, so each work-item's scratch takes several in turn. */
        {"7x7 stride 1, pad 3, 7 x 7 planes", 3, 13, 7, 7, 7, 1, 3, 1, true, ACT_NONE},
        {"7x7 stride 1, pad 3, 14 x 14 planes", 2, 17, 14, 14, 7, 1, 3, 1, false, ACT_RELU},
        {"7x7 stride 1, pad 3, width 61", 1, 3, 5, 61, 7, 1, 3, 1, true, ACT_CLIP6},
        {"3x3 stride 1, no pad, dilation 3", 1, 4, 11, 13, 3, 1, 0, 3, true, ACT_NONE},
        /* A plane larger than the flattened scratch takes: conv_dw_planes, no workspace. */
        {"3x3 stride 1 on a 1030 x 1030 plane", 1, 2, 1030, 1030, 3, 1, 1, 1, true, ACT_RELU},
        {"empty batch", 0, 16, 5, 5, 3, 1, 1, 1, true, ACT_NONE},
    };
    FOR_EACH_VARIANT(v)
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int pre = 0; pre < 2; pre++)
            for (int post = 0; post < 2; post++)
                check_depthwise(&cases[i], pre, post, v);
}

/* A residual block: x -> 1x1 Conv (3 -> 16) = r; r -> 3x3 Conv = b; Relu(b + r) = t;
 * t -> 3x3 Conv (16 -> 16) = u. Alone, every value is read by convolutions or by the Add and
 * Relu that tie them together, so the last Conv reads channels-last (the Winograd path). With
 * `spoilt`, t is also read by a GlobalAveragePool (y = GAP(u) + GAP(t)), so the group stays
 * NCHW; both must give the reference's values. */
static void check_residual(int64_t n, int64_t h, int64_t w, bool spoilt)
{
    const int64_t c = 16;
    int64_t xd[4] = {n, 3, h, w}, wad[4] = {c, 3, 1, 1}, wbd[4] = {c, c, 3, 3};
    int64_t p4[4] = {1, 1, 1, 1}, k2[2] = {3, 3};
    uint64_t nx = count_of(4, xd), pix = (uint64_t)(h * w), nt = (uint64_t)(n * c) * pix;
    float *x = random_array(nx, -1, 1), *wa = random_array((uint64_t)(c * 3), -1, 1);
    float *wb = random_array((uint64_t)(c * c * 9), -0.3f, 0.3f);
    float *wc = random_array((uint64_t)(c * c * 9), -0.3f, 0.3f);
    float *ba = random_array((uint64_t)c, -1, 1), *bb = random_array((uint64_t)c, -1, 1);
    float *bc = random_array((uint64_t)c, -1, 1);
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 4, xd);
    builder_init(m, "Wa", 4, wad, wa);
    builder_init(m, "Ba", 1, &c, ba);
    builder_init(m, "Wb", 4, wbd, wb);
    builder_init(m, "Bb", 1, &c, bb);
    builder_init(m, "Wc", 4, wbd, wc);
    builder_init(m, "Bc", 1, &c, bc);
    builder_node(m, "Conv", "a", "x,Wa,Ba", "r");
    attr_ints(builder_node(m, "Conv", "b", "r,Wb,Bb", "b"), "pads", 4, p4);
    builder_node(m, "Add", "add", "b,r", "s");
    builder_node(m, "Relu", "relu", "s", "t");
    cleval_onnx_node *last = builder_node(m, "Conv", "c", "t,Wc,Bc", spoilt ? "u" : "y");
    attr_ints(last, "pads", 4, p4);
    attr_ints(last, "kernel_shape", 2, k2);
    if (spoilt) {
        builder_node(m, "GlobalAveragePool", "gap_u", "u", "gu");
        builder_node(m, "GlobalAveragePool", "gap_t", "t", "gt");
        builder_node(m, "Add", "sum", "gu,gt", "y");
    }
    builder_output(m, "y");

    double *xd64 = malloc((nx + 1) * sizeof *xd64), *r = malloc((nt + 1) * sizeof *r);
    double *b = malloc((nt + 1) * sizeof *b), *u = malloc((nt + 1) * sizeof *u);
    for (uint64_t i = 0; i < nx; i++)
        xd64[i] = x[i];
    ref_pointwise(xd64, n, 3, (int64_t)pix, wa, ba, c, r);
    ref_conv2d(r, n, c, h, w, wb, bb, c, 3, 1, 1, b);
    for (uint64_t i = 0; i < nt; i++)
        b[i] = fmax(b[i] + r[i], 0.0); /* t, in b */
    ref_conv2d(b, n, c, h, w, wc, bc, c, 3, 1, 1, u);
    uint64_t ny = nt;
    if (spoilt) {
        ny = (uint64_t)(n * c);
        for (uint64_t p = 0; p < ny; p++) {
            double su = 0, st = 0;
            for (uint64_t i = 0; i < pix; i++) {
                su += u[p * pix + i];
                st += b[p * pix + i];
            }
            u[p] = su / (double)pix + st / (double)pix;
        }
    }
    cleval_nn_tensor in = tensor(4, xd, x), out;
    run_cpu(m, &in, &out, "c", spoilt ? NULL : "conv_winograd_cpu");
    char what[96];
    snprintf(what, sizeof what, "residual block %lldx%lld%s", (long long)h, (long long)w,
             spoilt ? ", group read by a pool" : "");
    expect_close(out.data, u, ny, what);
    free(out.data);
    free(xd64);
    free(r);
    free(b);
    free(u);
    free(x);
    free(wa);
    free(wb);
    free(wc);
    free(ba);
    free(bb);
    free(bc);
    builder_free(m);
}

static void test_residual_channels_last(void **state)
{
    (void)state;
    check_residual(2, 7, 9, false);
    check_residual(1, 13, 5, false);
    check_residual(2, 7, 9, true);
}

/* A 3x3 stride-1 Conv (c -> co, pads `pad`) that runs as Winograd whatever its input: NCHW
 * (a graph input), or channels-last with a channel count that is not a multiple of 16 (after
 * a 1x1 Conv, `after_pointwise`). */
static void check_winograd_any_input(int64_t n, int64_t c, int64_t h, int64_t w, int64_t co,
                                     int64_t pad, bool after_pointwise)
{
    int64_t cin = after_pointwise ? 3 : c;
    int64_t xd[4] = {n, cin, h, w}, w1d[4] = {c, 3, 1, 1}, wd[4] = {co, c, 3, 3};
    int64_t p4[4] = {pad, pad, pad, pad};
    int64_t oh = h + 2 * pad - 2, ow = w + 2 * pad - 2;
    uint64_t nx = count_of(4, xd), pix = (uint64_t)(h * w);
    float *x = random_array(nx, -1, 1), *w1 = random_array((uint64_t)(c * 3), -1, 1);
    float *b1 = random_array((uint64_t)c, -1, 1);
    float *wt = random_array((uint64_t)(co * c * 9), -0.3f, 0.3f);
    float *b = random_array((uint64_t)co, -1, 1);
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 4, xd);
    builder_init(m, "W", 4, wd, wt);
    builder_init(m, "B", 1, &co, b);
    if (after_pointwise) {
        builder_init(m, "W1", 4, w1d, w1);
        builder_init(m, "B1", 1, &c, b1);
        builder_node(m, "Conv", "pw", "x,W1,B1", "x1");
    }
    attr_ints(builder_node(m, "Conv", "c", after_pointwise ? "x1,W,B" : "x,W,B", "y"), "pads", 4,
              p4);
    builder_output(m, "y");
    double *in = malloc((size_t)(n * c) * pix * sizeof *in + sizeof *in);
    double *ref = malloc((size_t)(n * co * oh * ow) * sizeof *ref + sizeof *ref);
    if (after_pointwise) {
        double *xd64 = malloc((nx + 1) * sizeof *xd64);
        for (uint64_t i = 0; i < nx; i++)
            xd64[i] = x[i];
        ref_pointwise(xd64, n, 3, (int64_t)pix, w1, b1, c, in);
        free(xd64);
    } else {
        for (uint64_t i = 0; i < nx; i++)
            in[i] = x[i];
    }
    ref_conv2d(in, n, c, h, w, wt, b, co, 3, 1, pad, ref);
    cleval_nn_tensor input = tensor(4, xd, x), out;
    run_cpu(m, &input, &out, "c", "conv_winograd_cpu");
    char what[128];
    snprintf(what, sizeof what, "Winograd %lld -> %lld channels, %lldx%lld, pad %lld, %s",
             (long long)c, (long long)co, (long long)h, (long long)w, (long long)pad,
             after_pointwise ? "channels-last" : "NCHW");
    /* Winograd's transforms add a few roundings to the direct sum's. */
    expect_within(out.data, ref, (uint64_t)(n * co * oh * ow), tolerance(1e-4), what);
    free(out.data);
    free(in);
    free(ref);
    free(x);
    free(w1);
    free(b1);
    free(wt);
    free(b);
    builder_free(m);
}

static void test_winograd_any_input(void **state)
{
    (void)state;
    check_winograd_any_input(2, 8, 7, 9, 16, 1, false);
    check_winograd_any_input(1, 17, 6, 11, 33, 0, false);
    check_winograd_any_input(1, 64, 5, 5, 16, 1, false);
    check_winograd_any_input(2, 9, 8, 5, 17, 1, true);
    check_winograd_any_input(1, 23, 3, 3, 16, 1, true);
}

/* The same paths with every tensor stored as half: the kernels' half loads and stores, and
 * the copies that move half elements as bits. */
static void test_fp16_storage(void **state)
{
    (void)state;
    static const dw_case dw[] = {
        {"3x3 stride 1, 17 channels, width 37", 1, 17, 5, 37, 3, 1, 1, 1, true, ACT_CLIP6},
        {"5x5 stride 2, 33 channels", 2, 33, 9, 41, 5, 2, 2, 1, true, ACT_RELU},
    };
    precision = CLEVAL_NN_FP16;
    for (size_t i = 0; i < sizeof dw / sizeof dw[0]; i++)
        for (int pre = 0; pre < 2; pre++)
            for (int post = 0; post < 2; post++)
                check_depthwise(&dw[i], pre, post, CLEVAL_VARIANT_CPU);
    check_residual(2, 7, 9, false);
    check_winograd_any_input(2, 8, 7, 9, 16, 1, false);
    check_winograd_any_input(1, 4 * 16, 11, 11, 16, 1, true);
    check_winograd_any_input(2, 9, 8, 5, 17, 1, true);
    precision = CLEVAL_NN_FP32;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depthwise),
        cmocka_unit_test(test_residual_channels_last),
        cmocka_unit_test(test_winograd_any_input),
        cmocka_unit_test(test_fp16_storage),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
