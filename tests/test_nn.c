/* The network runner: every operator against a plain C reference written here, at odd shapes
 * (1, primes, one more than a tile or work-group, empty batches), for both kernel families
 * (CPU-style and GPU-style, forced on the test device); the fusions (BatchNormalization
 * folded, ReLU and max-pool in the Conv epilogue, channels-last between Convs); the ONNX
 * fixtures against PyTorch and onnxruntime; and every model that must be refused. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/dataset.h"
#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_builder.h"
#define NN_TEST_SEED 42 /* the seed of this program's random inputs */
#include "nn_testutil.h"
#include "pool_reference.h"

/* ---- helpers ---- */

/* |got - want| <= atol + rtol * |want| everywhere (NaN must match NaN). */
static void assert_close(const float *got, const double *want, uint64_t n, double atol, double rtol,
                         const char *what)
{
    for (uint64_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        if (isnan(w) && isnan(g)) continue;
        if (isinf(w) && g == w) continue;
        if (!(fabs(g - w) <= atol + rtol * fabs(w)))
            fail_msg("%s: element %llu is %.9g, expected %.9g", what, (unsigned long long)i, g, w);
    }
}

/* ---- Conv ---- */

typedef struct conv_case {
    const char *what;
    uint32_t spatial;
    int64_t n, c, in[3], co, k[3], stride[3], pad[6], dil[3], group;
    bool bias, relu, pool, second; /* second: a padded 3x3 Conv after it (channels-last) */
} conv_case;

/* y[n][co][o...] for a [N, C, in...] input; spatial axes right-aligned into 3. */
static void ref_conv(const float *x, int64_t n, int64_t c, const int64_t in[3], const float *w,
                     int64_t co, const int64_t k[3], const float *b, int64_t group,
                     const int64_t stride[3], const int64_t pad_begin[3], const int64_t dil[3],
                     const int64_t out[3], double *y)
{
    int64_t cin_g = c / group, co_g = co / group;
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < co; o++)
            for (int64_t od = 0; od < out[0]; od++)
                for (int64_t oh = 0; oh < out[1]; oh++)
                    for (int64_t ow = 0; ow < out[2]; ow++) {
                        double s = b ? b[o] : 0.0;
                        int64_t g = o / co_g;
                        for (int64_t ci = 0; ci < cin_g; ci++)
                            for (int64_t a = 0; a < k[0]; a++)
                                for (int64_t bb = 0; bb < k[1]; bb++)
                                    for (int64_t e = 0; e < k[2]; e++) {
                                        int64_t id = od * stride[0] - pad_begin[0] + a * dil[0];
                                        int64_t ih = oh * stride[1] - pad_begin[1] + bb * dil[1];
                                        int64_t iw = ow * stride[2] - pad_begin[2] + e * dil[2];
                                        if (id < 0 || id >= in[0] || ih < 0 || ih >= in[1] ||
                                            iw < 0 || iw >= in[2])
                                            continue;
                                        s +=
                                            (double)
                                                x[(((i * c + g * cin_g + ci) * in[0] + id) * in[1] +
                                                   ih) *
                                                      in[2] +
                                                  iw] *
                                            w[(((o * cin_g + ci) * k[0] + a) * k[1] + bb) * k[2] +
                                              e];
                                    }
                        y[(((i * co + o) * out[0] + od) * out[1] + oh) * out[2] + ow] = s;
                    }
}

/* Extends spatial parameters to 3 axes (leading axes of extent 1). */
static void to3(const int64_t *v, uint32_t spatial, int64_t fill, int64_t out[3])
{
    out[0] = out[1] = out[2] = fill;
    for (uint32_t i = 0; i < spatial; i++)
        out[3 - spatial + i] = v[i];
}

static void check_conv(const conv_case *cc, cleval_kernel_variant variant)
{
    uint32_t s = cc->spatial;
    int64_t xdims[5] = {cc->n, cc->c}, wdims[5] = {cc->co, cc->c / cc->group};
    for (uint32_t i = 0; i < s; i++) {
        xdims[2 + i] = cc->in[i];
        wdims[2 + i] = cc->k[i];
    }
    uint64_t nx = count_of(2 + s, xdims), nw = count_of(2 + s, wdims);
    float *x = random_array(nx, -1.0f, 1.0f), *w = random_array(nw, -0.5f, 0.5f);
    float *b = random_array((uint64_t)cc->co, -0.5f, 0.5f);
    float *w2 = NULL, *b2 = NULL;

    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 2 + s, xdims);
    builder_init(m, "W", 2 + s, wdims, w);
    if (cc->bias) builder_init(m, "B", 1, &cc->co, b);
    cleval_onnx_node *node = builder_node(m, "Conv", "conv", cc->bias ? "x,W,B" : "x,W",
                                          cc->relu || cc->pool || cc->second ? "c" : "y");
    attr_ints(node, "kernel_shape", s, cc->k);
    attr_ints(node, "strides", s, cc->stride);
    attr_ints(node, "pads", 2 * s, cc->pad);
    attr_ints(node, "dilations", s, cc->dil);
    attr_int(node, "group", cc->group);
    const char *last = "c";
    if (cc->relu) {
        builder_node(m, "Relu", "relu", "c", cc->pool || cc->second ? "r" : "y");
        last = "r";
    }
    if (cc->pool) {
        cleval_onnx_node *p = builder_node(m, "MaxPool", "pool", last, cc->second ? "p" : "y");
        int64_t two[2] = {2, 2};
        attr_ints(p, "kernel_shape", 2, two);
        attr_ints(p, "strides", 2, two);
        last = "p";
    }
    int64_t co2 = 5, w2dims[4] = {co2, cc->co, 3, 3};
    if (cc->second) {
        w2 = random_array((uint64_t)(co2 * cc->co * 9), -0.5f, 0.5f);
        b2 = random_array((uint64_t)co2, -0.5f, 0.5f);
        builder_init(m, "W2", 4, w2dims, w2);
        builder_init(m, "B2", 1, &co2, b2);
        char in[32];
        snprintf(in, sizeof in, "%s,W2,B2", last);
        cleval_onnx_node *n2 = builder_node(m, "Conv", "conv2", in, "y");
        int64_t k2[2] = {3, 3}, p2[4] = {1, 1, 1, 1};
        attr_ints(n2, "kernel_shape", 2, k2);
        attr_ints(n2, "pads", 4, p2);
    }
    builder_output(m, "y");

    int64_t in3[3], k3[3], st3[3], pb3[3], pe3[3], dl3[3], out3[3];
    to3(cc->in, s, 1, in3);
    to3(cc->k, s, 1, k3);
    to3(cc->stride, s, 1, st3);
    to3(cc->pad, s, 0, pb3);
    to3(cc->pad + s, s, 0, pe3);
    to3(cc->dil, s, 1, dl3);
    for (int i = 0; i < 3; i++)
        out3[i] = (in3[i] + pb3[i] + pe3[i] - (k3[i] - 1) * dl3[i] - 1) / st3[i] + 1;
    uint64_t ny = (uint64_t)(cc->n * cc->co * out3[0] * out3[1] * out3[2]);
    double *ref = malloc((ny ? ny : 1) * sizeof *ref);
    ref_conv(x, cc->n, cc->c, in3, w, cc->co, k3, cc->bias ? b : NULL, cc->group, st3, pb3, dl3,
             out3, ref);
    int64_t ydims[5] = {cc->n, cc->co};
    for (uint32_t i = 0; i < s; i++)
        ydims[2 + i] = out3[3 - s + i];
    if (cc->relu)
        for (uint64_t i = 0; i < ny; i++)
            ref[i] = ref[i] < 0 ? 0 : ref[i];
    if (cc->pool) {
        int64_t ph = out3[1] / 2, pw = out3[2] / 2;
        double *pooled = malloc((size_t)(cc->n * cc->co * ph * pw + 1) * sizeof *pooled);
        for (int64_t p = 0; p < cc->n * cc->co; p++)
            for (int64_t i = 0; i < ph; i++)
                for (int64_t j = 0; j < pw; j++) {
                    const double *src = ref + p * out3[1] * out3[2];
                    double v = src[2 * i * out3[2] + 2 * j];
                    v = fmax(v, src[2 * i * out3[2] + 2 * j + 1]);
                    v = fmax(v, src[(2 * i + 1) * out3[2] + 2 * j]);
                    v = fmax(v, src[(2 * i + 1) * out3[2] + 2 * j + 1]);
                    pooled[(p * ph + i) * pw + j] = v;
                }
        free(ref);
        ref = pooled;
        ydims[2] = ph;
        ydims[3] = pw;
        out3[1] = ph;
        out3[2] = pw;
        ny = (uint64_t)(cc->n * cc->co * ph * pw);
    }
    if (cc->second) {
        float *mid = malloc((ny ? ny : 1) * sizeof *mid);
        for (uint64_t i = 0; i < ny; i++)
            mid[i] = (float)ref[i];
        int64_t kk[3] = {1, 3, 3}, one[3] = {1, 1, 1}, pads[3] = {0, 1, 1};
        int64_t o2[3] = {out3[0], out3[1], out3[2]};
        double *ref2 = malloc((size_t)(cc->n * co2 * o2[0] * o2[1] * o2[2] + 1) * sizeof *ref2);
        ref_conv(mid, cc->n, cc->co, out3, w2, co2, kk, b2, 1, one, pads, one, o2, ref2);
        free(mid);
        free(ref);
        ref = ref2;
        ydims[1] = co2;
        ny = (uint64_t)(cc->n * co2 * o2[1] * o2[2]);
    }

    cleval_nn_tensor in = tensor(2 + s, xdims, x), out;
    run_general(m, variant, CLEVAL_NN_FP32, &in, &out);
    assert_shape(&out, 2 + s, ydims);
    char what[160];
    snprintf(what, sizeof what, "%s (%s)", cc->what, cleval_variant_name(variant));
    assert_close(out.data, ref, ny, 1e-4, 1e-4, what);
    free(out.data);
    free(ref);
    free(x);
    free(w);
    free(b);
    free(w2);
    free(b2);
    builder_free(m);
}

static void test_conv(void **state)
{
    (void)state;
    /* clang-format off */
#define CONV2(what, n, c, h, w, co, kh, kw, sh, sw, p0, p1, p2, p3, dh, dw, g, ...) \
    {what, 2, n, c, {h, w}, co, {kh, kw}, {sh, sw}, {p0, p1, p2, p3}, {dh, dw}, g, __VA_ARGS__}
    static const conv_case cases[] = {
        CONV2("3x3 pad 1", 2, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, .bias = true),
        CONV2("33 channels", 1, 1, 13, 11, 33, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1, .bias = true),
        CONV2("1x1 stride 2", 3, 4, 6, 6, 8, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1, .bias = false),
        CONV2("dilated, asymmetric pads", 2, 2, 9, 9, 4, 3, 3, 1, 2, 0, 1, 2, 1, 2, 2, 1,
              .bias = true),
        CONV2("grouped", 2, 6, 5, 5, 9, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 3, .bias = true),
        CONV2("depthwise", 2, 4, 7, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4, .bias = true),
        CONV2("depthwise x2, strided", 2, 4, 8, 7, 8, 3, 3, 2, 1, 1, 0, 1, 0, 1, 1, 4,
              .bias = true),
        {"1-D", 1, 2, 3, {17}, 4, {5}, {2}, {2, 2}, {1}, 1, .bias = true},
        {"3-D", 3, 1, 2, {5, 6, 7}, 3, {3, 3, 3}, {1, 1, 1}, {1, 1, 1, 1, 1, 1}, {1, 1, 1}, 1,
         .bias = true},
        CONV2("K 360, 9 pixels", 1, 40, 5, 5, 7, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1, .bias = true),
        CONV2("+Relu+MaxPool fused", 2, 3, 10, 9, 16, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1,
              .bias = true, .relu = true, .pool = true),
        CONV2("+Relu, then padded Conv", 2, 3, 8, 8, 6, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1,
              .bias = true, .relu = true, .second = true),
        CONV2("+Relu+MaxPool, then Conv", 3, 2, 11, 12, 33, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1,
              .bias = true, .relu = true, .pool = true, .second = true),
        CONV2("empty batch", 0, 3, 5, 5, 4, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1, .bias = true),
        CONV2("one pixel", 1, 2, 3, 3, 3, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1, .bias = false),
    };
#undef CONV2
    /* clang-format on */
    FOR_EACH_VARIANT(v)
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_conv(&cases[i], v);
}

/* Conv -> Relu -> Conv 3x3 stride 1: on CPUs the second one reads channels-last and, with a
 * multiple of 16 input channels, runs as F(2x2, 3x3) Winograd (pads, odd sizes, fused pool). */
static void check_winograd(int64_t n, int64_t h, int64_t w, int64_t c1, int64_t c2,
                           const int64_t pads[4], bool relu, bool pool,
                           cleval_kernel_variant variant)
{
    int64_t xd[4] = {n, 3, h, w}, w1d[4] = {c1, 3, 1, 1}, w2d[4] = {c2, c1, 3, 3};
    float *x = random_array(count_of(4, xd), -1, 1), *w1 = random_array(count_of(4, w1d), -1, 1);
    float *w2 = random_array(count_of(4, w2d), -0.3f, 0.3f),
          *b2 = random_array((uint64_t)c2, -1, 1);
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 4, xd);
    builder_init(m, "W1", 4, w1d, w1);
    builder_init(m, "W2", 4, w2d, w2);
    builder_init(m, "B2", 1, &c2, b2);
    builder_node(m, "Conv", "conv1", "x,W1", "c1");
    builder_node(m, "Relu", "relu1", "c1", "r1");
    int64_t k[2] = {3, 3};
    attr_ints(builder_node(m, "Conv", "conv2", "r1,W2,B2", relu || pool ? "c2" : "y"), "pads", 4,
              pads);
    (void)k;
    const char *last = "c2";
    if (relu) {
        builder_node(m, "Relu", "relu2", "c2", pool ? "r2" : "y");
        last = "r2";
    }
    if (pool) {
        int64_t two[2] = {2, 2};
        cleval_onnx_node *pn = builder_node(m, "MaxPool", "pool", last, "y");
        attr_ints(pn, "kernel_shape", 2, two);
        attr_ints(pn, "strides", 2, two);
    }
    builder_output(m, "y");

    int64_t in3[3] = {1, h, w}, one3[3] = {1, 1, 1}, zero3[3] = {0, 0, 0};
    uint64_t n1 = (uint64_t)(n * c1 * h * w);
    double *mid = malloc((n1 + 1) * sizeof *mid);
    int64_t k1[3] = {1, 1, 1};
    ref_conv(x, n, 3, in3, w1, c1, k1, NULL, 1, one3, zero3, one3, in3, mid);
    float *midf = malloc((n1 + 1) * sizeof *midf);
    for (uint64_t i = 0; i < n1; i++)
        midf[i] = mid[i] < 0 ? 0.0f : (float)mid[i];
    int64_t oh = h + pads[0] + pads[2] - 2, ow = w + pads[1] + pads[3] - 2;
    int64_t out3[3] = {1, oh, ow}, k3[3] = {1, 3, 3}, pb3[3] = {0, pads[0], pads[1]};
    uint64_t n2 = (uint64_t)(n * c2 * oh * ow);
    double *ref = malloc((n2 + 1) * sizeof *ref);
    ref_conv(midf, n, c1, in3, w2, c2, k3, b2, 1, one3, pb3, one3, out3, ref);
    if (relu)
        for (uint64_t i = 0; i < n2; i++)
            ref[i] = ref[i] < 0 ? 0 : ref[i];
    int64_t yd[4] = {n, c2, oh, ow};
    if (pool) {
        int64_t ph = oh / 2, pw = ow / 2;
        double *pooled = malloc((size_t)(n * c2 * ph * pw + 1) * sizeof *pooled);
        for (int64_t q = 0; q < n * c2; q++)
            for (int64_t i = 0; i < ph; i++)
                for (int64_t j = 0; j < pw; j++) {
                    const double *src = ref + q * oh * ow;
                    double v = fmax(
                        fmax(src[2 * i * ow + 2 * j], src[2 * i * ow + 2 * j + 1]),
                        fmax(src[(2 * i + 1) * ow + 2 * j], src[(2 * i + 1) * ow + 2 * j + 1]));
                    pooled[(q * ph + i) * pw + j] = v;
                }
        free(ref);
        ref = pooled;
        yd[2] = ph;
        yd[3] = pw;
        n2 = (uint64_t)(n * c2 * ph * pw);
    }
    cleval_device_set_variant(test_device(), variant);
    cleval_nn_options options = {.general = true};
    cleval_nn *nn;
    assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
    if (variant == CLEVAL_VARIANT_CPU)
        assert_non_null(strstr(cleval_nn_layer_at(nn, 1)->kernel, "winograd"));
    cleval_nn_tensor in = tensor(4, xd, x), out;
    assert_ok(cleval_nn_run_graph(nn, &in, &out));
    assert_shape(&out, 4, yd);
    char what[128];
    snprintf(what, sizeof what, "Winograd %lldx%lld %lld->%lld%s%s (%s)", (long long)h,
             (long long)w, (long long)c1, (long long)c2, relu ? " relu" : "", pool ? " pool" : "",
             cleval_variant_name(variant));
    assert_close(out.data, ref, n2, 1e-4, 1e-4, what);
    free(out.data);
    cleval_nn_destroy(nn);
    free(ref);
    free(mid);
    free(midf);
    free(x);
    free(w1);
    free(w2);
    free(b2);
    builder_free(m);
}

static void test_winograd(void **state)
{
    (void)state;
    int64_t none[4] = {0, 0, 0, 0}, same[4] = {1, 1, 1, 1}, odd[4] = {0, 1, 2, 0};
    FOR_EACH_VARIANT(v)
    {
        check_winograd(2, 10, 10, 32, 64, none, true, true, v); /* fmnist-like, even */
        check_winograd(3, 9, 11, 16, 33, none, true, true, v);  /* odd: floor pool */
        check_winograd(2, 7, 9, 16, 16, none, false, false, v); /* odd outputs, no pool */
        check_winograd(1, 8, 8, 48, 17, same, true, false, v);  /* padded */
        check_winograd(2, 5, 6, 32, 40, odd, false, true, v);   /* asymmetric pads, pool */
        check_winograd(1, 3, 3, 16, 16, none, true, false, v);  /* one output pixel */
        check_winograd(0, 6, 6, 16, 16, none, true, true, v);   /* empty batch */
    }
}

/* ---- pooling ---- */

static void check_pool(const char *op, uint32_t spatial, int64_t n, int64_t c, const int64_t *in,
                       const int64_t *k, const int64_t *stride, const int64_t *pad,
                       const int64_t *dil, int include_pad, cleval_kernel_variant variant)
{
    int64_t xdims[5] = {n, c};
    for (uint32_t i = 0; i < spatial; i++)
        xdims[2 + i] = in[i];
    uint64_t nx = count_of(2 + spatial, xdims);
    float *x = random_array(nx, -2.0f, 2.0f);
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 2 + spatial, xdims);
    bool global = strcmp(op, "GlobalAveragePool") == 0;
    cleval_onnx_node *node = builder_node(m, op, "pool", "x", "y");
    if (!global) {
        attr_ints(node, "kernel_shape", spatial, k);
        attr_ints(node, "strides", spatial, stride);
        attr_ints(node, "pads", 2 * spatial, pad);
        if (dil) attr_ints(node, "dilations", spatial, dil);
        if (include_pad >= 0) attr_int(node, "count_include_pad", include_pad);
    }
    builder_output(m, "y");

    /* GlobalAveragePool: one window over the whole sample. */
    int64_t kk[3], ss[3], pb[3], pe[3], dd[3], o[3], ydims[5] = {n, c};
    for (uint32_t i = 0; i < spatial; i++) {
        kk[i] = global ? in[i] : k[i];
        ss[i] = global ? 1 : stride[i];
        pb[i] = global ? 0 : pad[i];
        pe[i] = global ? 0 : pad[spatial + i];
        dd[i] = global || !dil ? 1 : dil[i];
        ydims[2 + i] = o[i] = (in[i] + pb[i] + pe[i] - (kk[i] - 1) * dd[i] - 1) / ss[i] + 1;
    }
    uint64_t ny = count_of(2 + spatial, ydims);
    float *ref32 = malloc((ny ? ny : 1) * sizeof *ref32);
    double *ref = malloc((ny ? ny : 1) * sizeof *ref);
    ref_pool_geometry g = ref_pool_geometry_of(spatial, in, o, kk, ss, dd, pb, pe);
    ref_pool(&g, n * c,
             strcmp(op, "MaxPool") == 0 ? REF_POOL_MAX
             : include_pad == 1         ? REF_POOL_AVG_PAD
                                        : REF_POOL_AVG,
             x, ref32);
    for (uint64_t i = 0; i < ny; i++)
        ref[i] = ref32[i];
    free(ref32);
    cleval_nn_tensor t = tensor(2 + spatial, xdims, x), out;
    run_general(m, variant, CLEVAL_NN_FP32, &t, &out);
    assert_shape(&out, 2 + spatial, ydims);
    char what[96];
    snprintf(what, sizeof what, "%s %uD (%s)", op, spatial, cleval_variant_name(variant));
    assert_close(out.data, ref, ny, 1e-5, 1e-5, what);
    free(out.data);
    free(ref);
    free(x);
    builder_free(m);
}

static void test_pool(void **state)
{
    (void)state;
    int64_t in2[2] = {7, 9}, k2[2] = {3, 2}, s2[2] = {2, 1}, p2[4] = {1, 0, 1, 1};
    int64_t d2[2] = {2, 1}, z2[4] = {0};
    int64_t in1[1] = {257}, k1[1] = {4}, s1[1] = {3}, p1[2] = {2, 1};
    int64_t in3[3] = {4, 5, 6}, k3[3] = {2, 3, 2}, s3[3] = {1, 2, 2}, p3[6] = {0, 1, 1, 1, 0, 0};
    FOR_EACH_VARIANT(v)
    {
        check_pool("MaxPool", 2, 2, 3, in2, k2, s2, p2, NULL, -1, v);
        check_pool("MaxPool", 2, 1, 2, in2, k2, s2, z2, d2, -1, v);
        check_pool("AveragePool", 2, 2, 3, in2, k2, s2, p2, NULL, 0, v);
        check_pool("AveragePool", 2, 2, 3, in2, k2, s2, p2, NULL, 1, v);
        check_pool("MaxPool", 1, 3, 2, in1, k1, s1, p1, NULL, -1, v);
        check_pool("AveragePool", 1, 3, 2, in1, k1, s1, p1, NULL, 1, v);
        check_pool("MaxPool", 3, 1, 2, in3, k3, s3, p3, NULL, -1, v);
        check_pool("AveragePool", 3, 1, 2, in3, k3, s3, p3, NULL, 0, v);
        check_pool("GlobalAveragePool", 2, 2, 5, in2, NULL, NULL, NULL, NULL, -1, v);
        check_pool("GlobalAveragePool", 1, 1, 65, in1, NULL, NULL, NULL, NULL, -1, v);
        check_pool("MaxPool", 2, 0, 3, in2, k2, s2, p2, NULL, -1, v);
    }
}

/* ---- Gemm and MatMul ---- */

typedef struct gemm_case {
    int64_t m, n, k;
    bool ta, tb;
    float alpha, beta;
    int c_kind;     /* 0 none, 1 [N], 2 [1, N], 3 [M, 1], 4 [M, N], 5 scalar */
    bool b_runtime; /* B is a second runtime input instead of an initializer */
    bool relu;
} gemm_case;

static void check_gemm(const gemm_case *g, cleval_kernel_variant variant)
{
    int64_t adims[2] = {g->ta ? g->k : g->m, g->ta ? g->m : g->k};
    int64_t bdims[2] = {g->tb ? g->n : g->k, g->tb ? g->k : g->n};
    int64_t cdims[2];
    uint32_t crank = 0;
    switch (g->c_kind) {
    case 1: crank = 1, cdims[0] = g->n; break;
    case 2: crank = 2, cdims[0] = 1, cdims[1] = g->n; break;
    case 3: crank = 2, cdims[0] = g->m, cdims[1] = 1; break;
    case 4: crank = 2, cdims[0] = g->m, cdims[1] = g->n; break;
    case 5: crank = 0; break;
    }
    float *a = random_array((uint64_t)(g->m * g->k), -1.0f, 1.0f);
    float *b = random_array((uint64_t)(g->k * g->n), -1.0f, 1.0f);
    float *c = random_array((uint64_t)((g->m ? g->m : 1) * g->n), -1.0f, 1.0f);
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "a", 2, adims);
    if (g->b_runtime)
        builder_input(m, "b", 2, bdims);
    else
        builder_init(m, "b", 2, bdims, b);
    if (g->c_kind) builder_init(m, "c", crank, cdims, c);
    cleval_onnx_node *node =
        builder_node(m, "Gemm", "gemm", g->c_kind ? "a,b,c" : "a,b", g->relu ? "g" : "y");
    attr_int(node, "transA", g->ta);
    attr_int(node, "transB", g->tb);
    attr_float(node, "alpha", g->alpha);
    attr_float(node, "beta", g->beta);
    if (g->relu) builder_node(m, "Relu", "relu", "g", "y");
    builder_output(m, "y");

    uint64_t ny = (uint64_t)(g->m * g->n);
    double *ref = malloc((ny ? ny : 1) * sizeof *ref);
    for (int64_t i = 0; i < g->m; i++)
        for (int64_t j = 0; j < g->n; j++) {
            double s = 0;
            for (int64_t kk = 0; kk < g->k; kk++) {
                double av = g->ta ? a[kk * g->m + i] : a[i * g->k + kk];
                double bv = g->tb ? b[j * g->k + kk] : b[kk * g->n + j];
                s += av * bv;
            }
            s *= g->alpha;
            double cv = 0;
            switch (g->c_kind) {
            case 1:
            case 2: cv = c[j]; break;
            case 3: cv = c[i]; break;
            case 4: cv = c[i * g->n + j]; break;
            case 5: cv = c[0]; break;
            }
            s += g->beta * cv;
            ref[i * g->n + j] = g->relu && s < 0 ? 0 : s;
        }
    cleval_nn_tensor in[2] = {tensor(2, adims, a), tensor(2, bdims, b)}, out;
    run_general(m, variant, CLEVAL_NN_FP32, in, &out);
    int64_t ydims[2] = {g->m, g->n};
    assert_shape(&out, 2, ydims);
    char what[128];
    snprintf(what, sizeof what, "Gemm %lldx%lldx%lld ta%d tb%d C%d%s (%s)", (long long)g->m,
             (long long)g->n, (long long)g->k, g->ta, g->tb, g->c_kind,
             g->b_runtime ? " B runtime" : "", cleval_variant_name(variant));
    assert_close(out.data, ref, ny, 1e-4, 1e-4, what);
    free(out.data);
    free(ref);
    free(a);
    free(b);
    free(c);
    builder_free(m);
}

static void test_gemm(void **state)
{
    (void)state;
    /* clang-format off */
    static const gemm_case cases[] = {
        {1, 1, 1, false, false, 1.0f, 1.0f, 0, false, false},
        {7, 13, 5, false, true, 1.0f, 1.0f, 1, false, false},
        {65, 33, 257, false, true, 1.0f, 1.0f, 1, false, true},
        {3, 70, 300, true, false, 0.5f, 2.0f, 4, false, false},
        {17, 5, 11, true, true, -1.5f, 0.25f, 3, false, false},
        {9, 16, 31, false, false, 1.0f, 1.0f, 2, false, false},
        {9, 17, 8, false, false, 2.0f, 3.0f, 5, false, false},
        {11, 9, 7, false, true, 1.0f, 1.0f, 1, true, false},
        {5, 40, 3, true, false, 1.0f, 1.0f, 4, true, true},
        {0, 3, 4, false, true, 1.0f, 1.0f, 1, false, false},
    };
    /* clang-format on */
    FOR_EACH_VARIANT(v)
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_gemm(&cases[i], v);
    /* GPU-style with K split across work-groups (forced: the test device has few units). */
    static const gemm_case split[] = {
        {5, 7, 2000, false, true, 0.5f, 2.0f, 4, false, true},
        {65, 33, 257, true, false, 1.0f, 1.0f, 1, true, false},
        {3, 70, 300, false, false, 1.0f, 1.0f, 0, false, false},
    };
    setenv("CLEVAL_NN_TUNING", "gpu_groups=64", 1);
    for (size_t i = 0; i < sizeof split / sizeof split[0]; i++)
        check_gemm(&split[i], CLEVAL_VARIANT_GPU);
    /* Every tile shape of gemm_gpu (kernels/gemm_gpu.cl) on every case, whole and split. */
    static const char *const tiles[] = {"gpu_gemm_tile=1", "gpu_gemm_tile=2",
                                        "gpu_gemm_tile=1,gpu_groups=64",
                                        "gpu_gemm_tile=2,gpu_groups=64"};
    for (size_t t = 0; t < sizeof tiles / sizeof *tiles; t++) {
        setenv("CLEVAL_NN_TUNING", tiles[t], 1);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            check_gemm(&cases[i], CLEVAL_VARIANT_GPU);
        for (size_t i = 0; i < sizeof split / sizeof split[0]; i++)
            check_gemm(&split[i], CLEVAL_VARIANT_GPU);
    }
    unsetenv("CLEVAL_NN_TUNING");
    cleval_device_set_variant(test_device(), VARIANTS[0]);
}

static void check_matmul(uint32_t ra, const int64_t *ad, uint32_t rb, const int64_t *bd,
                         bool b_runtime, cleval_kernel_variant variant)
{
    uint64_t na = count_of(ra, ad), nb = count_of(rb, bd);
    float *a = random_array(na, -1.0f, 1.0f), *b = random_array(nb, -1.0f, 1.0f);
    cleval_onnx_model *m = matmul_model(ra, ad, rb, bd, b, b_runtime);

    int64_t ydims[8];
    uint32_t yr;
    uint64_t ny;
    double *ref = ref_matmul(ra, ad, a, rb, bd, b, ydims, &yr, &ny);
    cleval_nn_tensor in[2] = {tensor(ra, ad, a), tensor(rb, bd, b)}, out;
    run_general(m, variant, CLEVAL_NN_FP32, in, &out);
    assert_shape(&out, yr, ydims);
    char what[96];
    snprintf(what, sizeof what, "MatMul rank %u x %u%s (%s)", ra, rb, b_runtime ? " runtime B" : "",
             cleval_variant_name(variant));
    assert_close(out.data, ref, ny, 1e-4, 1e-4, what);
    free(out.data);
    free(ref);
    free(a);
    free(b);
    builder_free(m);
}

static void test_matmul(void **state)
{
    (void)state;
    int64_t a2[2] = {7, 24}, b2[2] = {24, 33}, a3[3] = {2, 5, 6}, b3[3] = {2, 6, 3};
    int64_t a4[4] = {2, 1, 3, 4}, b3b[3] = {3, 4, 5}, v[1] = {6}, bv[2] = {6, 4};
    int64_t a1[2] = {65, 3}, b1[2] = {3, 1};
    FOR_EACH_VARIANT(var)
    {
        check_matmul(2, a2, 2, b2, false, var);
        check_matmul(2, a2, 2, b2, true, var);
        check_matmul(3, a3, 3, b3, true, var);
        check_matmul(3, a3, 2, b3 + 1, false, var);
        check_matmul(4, a4, 3, b3b, false, var);
        check_matmul(4, a4, 3, b3b, true, var);
        check_matmul(1, v, 2, bv, false, var);
        check_matmul(3, a3, 1, v, false, var);
        check_matmul(2, a1, 2, b1, false, var);
    }
}

/* ---- elementwise ---- */

static double apply_binary(const char *op, double x, double y)
{
    switch (op[0]) {
    case 'A': return x + y;
    case 'S': return x - y;
    case 'M': return x * y;
    default: return x / y;
    }
}

/* Broadcast index of `out` coordinate into a shape right-aligned to rank r. */
static uint64_t bcast_index(uint64_t i, uint32_t r, const int64_t *out, uint32_t rs,
                            const int64_t *s)
{
    uint64_t idx = 0, stride = 1;
    for (int d = (int)r - 1; d >= 0; d--) {
        uint64_t c = i % (uint64_t)out[d];
        i /= (uint64_t)out[d];
        int j = d - (int)(r - rs);
        if (j < 0) continue;
        if (s[j] != 1) idx += c * stride;
        stride *= (uint64_t)s[j];
    }
    return idx;
}

static void check_binary(const char *op, uint32_t ra, const int64_t *ad, uint32_t rb,
                         const int64_t *bd, int b_mode, int64_t opset, int64_t legacy_axis,
                         cleval_kernel_variant variant)
{
    /* b_mode: 0 initializer, 1 runtime input, 2 Constant node; a is always a runtime input */
    uint64_t na = count_of(ra, ad), nb = count_of(rb, bd);
    float *a = random_array(na, -2.0f, 2.0f), *b = random_array(nb, 0.5f, 2.0f);
    cleval_onnx_model *m = builder_new(opset);
    builder_input(m, "a", ra, ad);
    if (b_mode == 1) builder_input(m, "b", rb, bd);
    if (b_mode == 0) builder_init(m, "b", rb, bd, b);
    if (b_mode == 2) builder_constant(m, "b", rb, bd, b, NULL);
    cleval_onnx_node *node = builder_node(m, op, "bin", "a,b", "y");
    if (opset < 7 && legacy_axis != -2) {
        attr_int(node, "broadcast", 1);
        if (legacy_axis >= 0) attr_int(node, "axis", legacy_axis);
    }
    builder_output(m, "y");
    /* the reference broadcast: legacy axis alignment pads B with trailing ones */
    int64_t beff[8];
    uint32_t rbe = rb;
    memcpy(beff, bd, rb * sizeof *bd);
    if (opset < 7 && legacy_axis >= 0) {
        rbe = ra - (uint32_t)legacy_axis;
        for (uint32_t i = rb; i < rbe; i++)
            beff[i] = 1;
    }
    uint32_t r = ra > rbe ? ra : rbe;
    int64_t od[8];
    for (uint32_t i = 0; i < r; i++) {
        int64_t x = i + ra >= r ? ad[i + ra - r] : 1, y = i + rbe >= r ? beff[i + rbe - r] : 1;
        od[i] = x > y ? x : y;
    }
    uint64_t ny = count_of(r, od);
    double *ref = malloc((ny ? ny : 1) * sizeof *ref);
    for (uint64_t i = 0; i < ny; i++)
        ref[i] =
            apply_binary(op, a[bcast_index(i, r, od, ra, ad)], b[bcast_index(i, r, od, rbe, beff)]);
    cleval_nn_tensor in[2] = {tensor(ra, ad, a), tensor(rb, bd, b)}, out;
    run_general(m, variant, CLEVAL_NN_FP32, in, &out);
    assert_shape(&out, r, od);
    char what[96];
    snprintf(what, sizeof what, "%s mode %d opset %lld (%s)", op, b_mode, (long long)opset,
             cleval_variant_name(variant));
    assert_close(out.data, ref, ny, 1e-6, 1e-6, what);
    free(out.data);
    free(ref);
    free(a);
    free(b);
    builder_free(m);
}

static void test_binary(void **state)
{
    (void)state;
    static const char *const ops[] = {"Add", "Sub", "Mul", "Div"};
    int64_t a4[4] = {2, 3, 5, 7}, c3[3] = {3, 1, 1}, row[1] = {7}, same[4] = {2, 3, 5, 7};
    int64_t scalar[1] = {1}, big[1] = {257}, col[2] = {5, 1}, a2[2] = {1, 4}, b2[2] = {65, 1};
    int64_t l1[2] = {3, 5};
    FOR_EACH_VARIANT(v)
    for (int o = 0; o < 4; o++) {
        check_binary(ops[o], 4, a4, 3, c3, 0, 13, 0, v);
        check_binary(ops[o], 4, a4, 1, row, 2, 13, 0, v);
        check_binary(ops[o], 4, a4, 4, same, 1, 13, 0, v);
        check_binary(ops[o], 1, big, 0, scalar, 0, 13, 0, v);
        check_binary(ops[o], 2, a2, 2, b2, 1, 13, 0, v);
        check_binary(ops[o], 4, a4, 2, col, 0, 13, 0, v);
        /* opset 6: broadcast=1 with axis=1 aligns B [3, 5] with axes 1 and 2 of A */
        check_binary(ops[o], 4, a4, 2, l1, 0, 6, 1, v);
        check_binary(ops[o], 4, a4, 1, row, 0, 6, -1, v);
        check_binary(ops[o], 4, a4, 4, same, 1, 6, -2, v);
    }
}

static void check_unary(const char *op, int64_t opset, const float *lo, const float *hi,
                        bool as_inputs, cleval_kernel_variant variant)
{
    int64_t dims[3] = {3, 5, 19};
    uint64_t n = count_of(3, dims);
    float *x = random_array(n, -4.0f, 4.0f);
    x[0] = 90.0f; /* sigmoid / tanh saturate without overflow */
    x[1] = -90.0f;
    cleval_onnx_model *m = builder_new(opset);
    builder_input(m, "x", 3, dims);
    char inputs[32] = "x";
    if (as_inputs) {
        if (lo) builder_init(m, "lo", 0, NULL, lo);
        if (hi) builder_init(m, "hi", 0, NULL, hi);
        snprintf(inputs, sizeof inputs, "x,%s%s%s", lo ? "lo" : "", hi ? "," : "", hi ? "hi" : "");
    }
    cleval_onnx_node *node = builder_node(m, op, "u", inputs, "y");
    if (!as_inputs && lo) attr_float(node, "min", *lo);
    if (!as_inputs && hi) attr_float(node, "max", *hi);
    builder_output(m, "y");
    double *ref = malloc(n * sizeof *ref);
    for (uint64_t i = 0; i < n; i++) {
        double v = x[i];
        if (strcmp(op, "Relu") == 0) v = v < 0 ? 0 : v;
        if (strcmp(op, "Sigmoid") == 0) v = 1.0 / (1.0 + exp(-v));
        if (strcmp(op, "Tanh") == 0) v = tanh(v);
        if (strcmp(op, "Clip") == 0) {
            if (lo && v < *lo) v = *lo;
            if (hi && v > *hi) v = *hi;
        }
        ref[i] = v;
    }
    cleval_nn_tensor in = tensor(3, dims, x), out;
    run_general(m, variant, CLEVAL_NN_FP32, &in, &out);
    assert_shape(&out, 3, dims);
    char what[64];
    snprintf(what, sizeof what, "%s opset %lld (%s)", op, (long long)opset,
             cleval_variant_name(variant));
    assert_close(out.data, ref, n, 1e-6, 1e-5, what);
    free(out.data);
    free(ref);
    free(x);
    builder_free(m);
}

static void test_unary(void **state)
{
    (void)state;
    float lo = -0.5f, hi = 1.25f;
    FOR_EACH_VARIANT(v)
    {
        check_unary("Relu", 13, NULL, NULL, false, v);
        check_unary("Sigmoid", 13, NULL, NULL, false, v);
        check_unary("Tanh", 13, NULL, NULL, false, v);
        check_unary("Clip", 6, &lo, &hi, false, v);
        check_unary("Clip", 6, NULL, &hi, false, v);
        check_unary("Clip", 13, &lo, &hi, true, v);
        check_unary("Clip", 13, &lo, NULL, true, v);
        check_unary("Clip", 13, NULL, NULL, true, v);
    }
}

/* BatchNormalization: folded into a Conv when it is the Conv's only reader, else run alone
 * (here the Conv output is also a graph output), on 4-D and 2-D inputs. */
static void check_batchnorm(bool after_conv, bool shared, cleval_kernel_variant variant)
{
    int64_t c = 5, xd[4] = {2, 3, 6, 7}, wd[4] = {c, 3, 3, 3}, cd[1] = {c};
    float *x = random_array(count_of(4, xd), -1, 1), *w = random_array(count_of(4, wd), -1, 1);
    float *scale = random_array(5, 0.5f, 1.5f), *bias = random_array(5, -0.5f, 0.5f);
    float *mean = random_array(5, -0.5f, 0.5f), *var = random_array(5, 0.5f, 2.0f);
    cleval_onnx_model *m = builder_new(9);
    int64_t yd[4] = {2, c, 4, 5}, xd2[2] = {6, c};
    if (after_conv) {
        builder_input(m, "x", 4, xd);
        builder_init(m, "W", 4, wd, w);
        builder_node(m, "Conv", "conv", "x,W", "c");
    } else {
        builder_input(m, "c", 2, xd2);
    }
    builder_init(m, "scale", 1, cd, scale);
    builder_init(m, "bias", 1, cd, bias);
    builder_init(m, "mean", 1, cd, mean);
    builder_init(m, "var", 1, cd, var);
    cleval_onnx_node *bn =
        builder_node(m, "BatchNormalization", "bn", "c,scale,bias,mean,var", "b");
    attr_float(bn, "epsilon", 1e-3f);
    builder_node(m, "Relu", "relu", "b", "y");
    builder_output(m, "y");
    if (shared) builder_output(m, "c");

    uint64_t ny = after_conv ? count_of(4, yd) : count_of(2, xd2);
    double *conv = malloc(ny * sizeof *conv);
    float *cin = after_conv ? NULL : random_array(ny, -2, 2);
    if (after_conv) {
        int64_t in3[3] = {1, 6, 7}, k3[3] = {1, 3, 3}, one[3] = {1, 1, 1}, zero[3] = {0},
                o3[3] = {1, 4, 5};
        ref_conv(x, 2, 3, in3, w, c, k3, NULL, 1, one, zero, one, o3, conv);
    } else {
        for (uint64_t i = 0; i < ny; i++)
            conv[i] = cin[i];
    }
    double *ref = malloc(ny * sizeof *ref);
    uint64_t inner = after_conv ? 20 : 1;
    for (uint64_t i = 0; i < ny; i++) {
        uint64_t ch = (i / inner) % (uint64_t)c;
        double v = (conv[i] - mean[ch]) / sqrt((double)var[ch] + 1e-3) * scale[ch] + bias[ch];
        ref[i] = v < 0 ? 0 : v;
    }
    cleval_device_set_variant(test_device(), variant);
    cleval_nn_options options = {.general = true};
    cleval_nn *nn;
    assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
    cleval_nn_tensor in = after_conv ? tensor(4, xd, x) : tensor(2, xd2, cin), out[2];
    assert_ok(cleval_nn_run_graph(nn, &in, out));
    char what[96];
    snprintf(what, sizeof what, "BatchNormalization %s%s (%s)", after_conv ? "after Conv" : "2-D",
             shared ? ", Conv output shared" : "", cleval_variant_name(variant));
    assert_close(out[0].data, ref, ny, 1e-4, 1e-4, what);
    if (shared) {
        assert_close(out[1].data, conv, ny, 1e-4, 1e-4, what);
        free(out[1].data);
    }
    /* The profile names what was fused: one Conv+BatchNormalization+Relu layer when folded. */
    const cleval_nn_layer *first = cleval_nn_layer_at(nn, 0);
    if (after_conv && !shared) assert_string_equal(first->op, "Conv+BatchNormalization+Relu");
    if (after_conv && shared) assert_string_equal(first->op, "Conv");
    cleval_nn_destroy(nn);
    free(out[0].data);
    free(ref);
    free(conv);
    free(cin);
    free(x);
    free(w);
    free(scale);
    free(bias);
    free(mean);
    free(var);
    builder_free(m);
}

static void test_batchnorm(void **state)
{
    (void)state;
    FOR_EACH_VARIANT(v)
    {
        check_batchnorm(true, false, v);
        check_batchnorm(true, true, v);
        check_batchnorm(false, false, v);
    }
}

/* BatchNormalization after a Gemm (a Linear then BatchNorm1d): folded into the Gemm's columns
 * when B is constant and C is absent, a scalar or one value per column, else run alone (C of
 * [M, N]); transB both ways, alpha and beta not 1. Against a double reference. */
typedef enum { GEMM_C_NONE, GEMM_C_SCALAR, GEMM_C_ROW, GEMM_C_FULL } gemm_c_kind;

static void check_gemm_batchnorm(bool trans_b, gemm_c_kind c_kind, cleval_kernel_variant variant)
{
    int64_t m = 7, k = 5, n = 17, xd[2] = {m, k}, bd[2] = {trans_b ? n : k, trans_b ? k : n};
    int64_t nd[1] = {n}, cd_row[2] = {1, n}, cd_full[2] = {m, n}, cd_scalar[1] = {1};
    const float alpha = 0.75f, beta = 1.5f;
    uint64_t nc = c_kind == GEMM_C_FULL  ? (uint64_t)(m * n)
                  : c_kind == GEMM_C_ROW ? (uint64_t)n
                                         : 1;
    float *x = random_array((uint64_t)(m * k), -1, 1), *b = random_array((uint64_t)(k * n), -1, 1);
    float *c = random_array(nc, -1, 1);
    float *scale = random_array((uint64_t)n, 0.5f, 1.5f),
          *shift = random_array((uint64_t)n, -0.5f, 0.5f);
    float *mean = random_array((uint64_t)n, -0.5f, 0.5f),
          *var = random_array((uint64_t)n, 0.5f, 2.0f);
    cleval_onnx_model *model = builder_new(9);
    builder_input(model, "x", 2, xd);
    builder_init(model, "B", 2, bd, b);
    if (c_kind != GEMM_C_NONE)
        builder_init(model, "C", c_kind == GEMM_C_SCALAR ? 1 : 2,
                     c_kind == GEMM_C_SCALAR ? cd_scalar
                     : c_kind == GEMM_C_ROW  ? cd_row
                                             : cd_full,
                     c);
    cleval_onnx_node *g =
        builder_node(model, "Gemm", "gemm", c_kind == GEMM_C_NONE ? "x,B" : "x,B,C", "g");
    attr_int(g, "transB", trans_b);
    attr_float(g, "alpha", alpha);
    attr_float(g, "beta", beta);
    builder_init(model, "scale", 1, nd, scale);
    builder_init(model, "shift", 1, nd, shift);
    builder_init(model, "mean", 1, nd, mean);
    builder_init(model, "var", 1, nd, var);
    attr_float(builder_node(model, "BatchNormalization", "bn", "g,scale,shift,mean,var", "b"),
               "epsilon", 1e-3f);
    builder_node(model, "Relu", "relu", "b", "y");
    builder_output(model, "y");

    double *ref = malloc((size_t)(m * n) * sizeof *ref);
    for (int64_t r = 0; r < m; r++)
        for (int64_t j = 0; j < n; j++) {
            double sum = 0;
            for (int64_t i = 0; i < k; i++)
                sum += (double)x[r * k + i] * b[trans_b ? j * k + i : i * n + j];
            double cv = c_kind == GEMM_C_NONE     ? 0.0
                        : c_kind == GEMM_C_SCALAR ? c[0]
                        : c_kind == GEMM_C_ROW    ? c[j]
                                                  : c[r * n + j];
            double v = alpha * sum + beta * cv;
            v = (v - mean[j]) / sqrt((double)var[j] + 1e-3) * scale[j] + shift[j];
            ref[r * n + j] = v < 0 ? 0 : v;
        }
    cleval_device_set_variant(test_device(), variant);
    cleval_nn_options options = {.general = true};
    cleval_nn *nn;
    assert_ok(cleval_nn_create_with(test_device(), model, &options, &nn));
    cleval_nn_tensor in = tensor(2, xd, x), out[1];
    assert_ok(cleval_nn_run_graph(nn, &in, out));
    char what[96];
    snprintf(what, sizeof what, "Gemm + BatchNormalization, transB %d, C kind %d (%s)", trans_b,
             (int)c_kind, cleval_variant_name(variant));
    assert_close(out[0].data, ref, (uint64_t)(m * n), 1e-4, 1e-4, what);
    const char *want = c_kind == GEMM_C_FULL ? "Gemm" : "Gemm+BatchNormalization+Relu";
    assert_string_equal(cleval_nn_layer_at(nn, 0)->op, want);
    cleval_nn_destroy(nn);
    free(out[0].data);
    free(ref);
    free(x);
    free(b);
    free(c);
    free(scale);
    free(shift);
    free(mean);
    free(var);
    builder_free(model);
}

static void test_gemm_batchnorm(void **state)
{
    (void)state;
    FOR_EACH_VARIANT(v)
    {
        check_gemm_batchnorm(true, GEMM_C_ROW, v);
        check_gemm_batchnorm(false, GEMM_C_NONE, v);
        check_gemm_batchnorm(true, GEMM_C_SCALAR, v);
        check_gemm_batchnorm(false, GEMM_C_FULL, v);
    }
}

/* A MatMul by a constant [K, N] followed by Add of a constant [N] (a Linear on a rank-3 tensor):
 * the Add becomes the product's bias, then a Relu its epilogue; with the bias first or second.
 * A bias of shape [1, N], or a product that is also a graph output, stays a separate Add. */
static void check_matmul_bias(bool bias_first, bool bias_2d, bool shared,
                              cleval_kernel_variant variant)
{
    int64_t b = 2, t = 7, k = 5, n = 19, xd[3] = {b, t, k}, wd[2] = {k, n};
    int64_t bd1[1] = {n}, bd2[2] = {1, n};
    float *x = random_array((uint64_t)(b * t * k), -1, 1),
          *w = random_array((uint64_t)(k * n), -1, 1);
    float *bias = random_array((uint64_t)n, -1, 1);
    cleval_onnx_model *model = builder_new(13);
    builder_input(model, "x", 3, xd);
    builder_init(model, "W", 2, wd, w);
    builder_init(model, "bias", bias_2d ? 2 : 1, bias_2d ? bd2 : bd1, bias);
    builder_node(model, "MatMul", "mm", "x,W", "p");
    builder_node(model, "Add", "add", bias_first ? "bias,p" : "p,bias", "s");
    builder_node(model, "Relu", "relu", "s", "y");
    builder_output(model, "y");
    if (shared) builder_output(model, "p");
    uint64_t ny = (uint64_t)(b * t * n);
    double *ref = malloc(ny * sizeof *ref), *prod = malloc(ny * sizeof *prod);
    for (int64_t r = 0; r < b * t; r++)
        for (int64_t j = 0; j < n; j++) {
            double sum = 0;
            for (int64_t i = 0; i < k; i++)
                sum += (double)x[r * k + i] * w[i * n + j];
            prod[r * n + j] = sum;
            ref[r * n + j] = sum + bias[j] < 0 ? 0 : sum + bias[j];
        }
    cleval_device_set_variant(test_device(), variant);
    cleval_nn_options options = {.general = true};
    cleval_nn *nn;
    assert_ok(cleval_nn_create_with(test_device(), model, &options, &nn));
    cleval_nn_tensor in = tensor(3, xd, x), out[2];
    assert_ok(cleval_nn_run_graph(nn, &in, out));
    char what[96];
    snprintf(what, sizeof what, "MatMul + Add, bias %s%s%s (%s)", bias_first ? "first" : "second",
             bias_2d ? ", [1, N]" : "", shared ? ", product shared" : "",
             cleval_variant_name(variant));
    assert_close(out[0].data, ref, ny, 1e-4, 1e-4, what);
    if (shared) {
        assert_close(out[1].data, prod, ny, 1e-4, 1e-4, what);
        free(out[1].data);
    }
    bool fused = !bias_2d && !shared;
    assert_string_equal(cleval_nn_layer_at(nn, 0)->op, fused ? "MatMul+Add+Relu" : "MatMul");
    cleval_nn_destroy(nn);
    free(out[0].data);
    free(ref);
    free(prod);
    free(x);
    free(w);
    free(bias);
    builder_free(model);
}

static void test_matmul_bias(void **state)
{
    (void)state;
    FOR_EACH_VARIANT(v)
    {
        check_matmul_bias(false, false, false, v);
        check_matmul_bias(true, false, false, v);
        check_matmul_bias(false, true, false, v);
        check_matmul_bias(false, false, true, v);
    }
}

/* ---- shape ops ---- */

static void check_pad(int64_t opset, const int64_t *pads, float value, bool with_value,
                      cleval_kernel_variant variant)
{
    int64_t xd[3] = {2, 5, 7};
    uint64_t nx = count_of(3, xd);
    float *x = random_array(nx, -1, 1);
    cleval_onnx_model *m = builder_new(opset);
    builder_input(m, "x", 3, xd);
    int64_t six = 6;
    cleval_onnx_node *node;
    if (opset >= 11) {
        builder_constant(m, "pads", 1, &six, NULL, pads);
        if (with_value) builder_constant(m, "value", 0, NULL, &value, NULL);
        node = builder_node(m, "Pad", "pad", with_value ? "x,pads,value" : "x,pads", "y");
    } else {
        node = builder_node(m, "Pad", "pad", "x", "y");
        attr_ints(node, "pads", 6, pads);
        if (with_value) attr_float(node, "value", value);
    }
    attr_string(node, "mode", "constant");
    builder_output(m, "y");
    int64_t yd[3];
    for (int i = 0; i < 3; i++)
        yd[i] = xd[i] + pads[i] + pads[3 + i];
    uint64_t ny = count_of(3, yd);
    double *ref = malloc((ny ? ny : 1) * sizeof *ref);
    for (int64_t a = 0; a < yd[0]; a++)
        for (int64_t b = 0; b < yd[1]; b++)
            for (int64_t c = 0; c < yd[2]; c++) {
                int64_t i = a - pads[0], j = b - pads[1], k = c - pads[2];
                bool in = i >= 0 && i < xd[0] && j >= 0 && j < xd[1] && k >= 0 && k < xd[2];
                ref[(a * yd[1] + b) * yd[2] + c] =
                    in ? x[(i * xd[1] + j) * xd[2] + k] : (with_value ? value : 0.0);
            }
    cleval_nn_tensor in = tensor(3, xd, x), out;
    run_general(m, variant, CLEVAL_NN_FP32, &in, &out);
    assert_shape(&out, 3, yd);
    assert_close(out.data, ref, ny, 0, 0, "Pad");
    free(out.data);
    free(ref);
    free(x);
    builder_free(m);
}

static void check_reshape(const int64_t *target, uint32_t rank, const int64_t *expect, bool flatten,
                          int64_t axis, cleval_kernel_variant variant)
{
    int64_t xd[4] = {2, 3, 4, 5};
    uint64_t n = count_of(4, xd);
    float *x = random_array(n, -1, 1);
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 4, xd);
    if (flatten) {
        attr_int(builder_node(m, "Flatten", "flat", "x", "f"), "axis", axis);
    } else {
        int64_t r = rank;
        builder_init_i64(m, "shape", 1, &r, target);
        builder_node(m, "Reshape", "reshape", "x,shape", "f");
    }
    /* a kernel after the view, so the view's buffer is read by something */
    builder_node(m, "Relu", "relu", "f", "y");
    builder_output(m, "y");
    double *ref = malloc(n * sizeof *ref);
    for (uint64_t i = 0; i < n; i++)
        ref[i] = x[i] < 0 ? 0 : x[i];
    cleval_nn_tensor in = tensor(4, xd, x), out;
    run_general(m, variant, CLEVAL_NN_FP32, &in, &out);
    assert_shape(&out, flatten ? 2 : rank, expect);
    assert_close(out.data, ref, n, 0, 0, flatten ? "Flatten" : "Reshape");
    free(out.data);
    free(ref);
    free(x);
    builder_free(m);
}

static void test_shape_ops(void **state)
{
    (void)state;
    int64_t p1[6] = {0, 1, 2, 1, 0, 3}, p2[6] = {1, -1, 0, 0, 2, -3};
    int64_t t1[3] = {0, -1, 5}, e1[3] = {2, 12, 5}, t2[2] = {-1, 60}, e2[2] = {2, 60};
    int64_t e0[2] = {1, 120}, e3[2] = {24, 5}, e4[2] = {120, 1};
    FOR_EACH_VARIANT(v)
    {
        check_pad(13, p1, 0.25f, true, v);
        check_pad(13, p2, 0.0f, false, v);
        check_pad(2, p1, -3.0f, true, v);
        check_reshape(t1, 3, e1, false, 0, v);
        check_reshape(t2, 2, e2, false, 0, v);
        check_reshape(NULL, 0, e0, true, 0, v);
        check_reshape(NULL, 0, e3, true, 3, v);
        check_reshape(NULL, 0, e4, true, 4, v);
        check_reshape(NULL, 0, e3, true, -1, v);
    }
}

/* ---- softmax ---- */

static void check_softmax(bool is_log, int64_t opset, int64_t axis, bool has_axis,
                          cleval_kernel_variant variant)
{
    int64_t xd[3] = {3, 4, 65};
    uint64_t n = count_of(3, xd);
    float *x = random_array(n, -5, 5);
    x[3] = 1000.0f; /* would overflow exp() without the max subtraction */
    x[70] = -1000.0f;
    cleval_onnx_model *m = builder_new(opset);
    builder_input(m, "x", 3, xd);
    cleval_onnx_node *node = builder_node(m, is_log ? "LogSoftmax" : "Softmax", "sm", "x", "y");
    if (has_axis) attr_int(node, "axis", axis);
    builder_output(m, "y");
    int64_t a = has_axis ? axis : (opset < 13 ? 1 : -1);
    if (a < 0) a += 3;
    /* rows: opset < 13 flattens [.., axis) x [axis, ..); otherwise one axis */
    uint64_t outer = 1, len = 1, inner = 1;
    for (int i = 0; i < 3; i++) {
        if (i < a)
            outer *= (uint64_t)xd[i];
        else if (i == a || opset < 13)
            len *= (uint64_t)xd[i];
        else
            inner *= (uint64_t)xd[i];
    }
    double *ref = malloc(n * sizeof *ref);
    for (uint64_t o = 0; o < outer; o++)
        for (uint64_t in = 0; in < inner; in++) {
            double mx = -INFINITY, sum = 0;
            for (uint64_t j = 0; j < len; j++)
                mx = fmax(mx, x[(o * len + j) * inner + in]);
            for (uint64_t j = 0; j < len; j++)
                sum += exp(x[(o * len + j) * inner + in] - mx);
            for (uint64_t j = 0; j < len; j++) {
                double v = x[(o * len + j) * inner + in] - mx;
                ref[(o * len + j) * inner + in] = is_log ? v - log(sum) : exp(v) / sum;
            }
        }
    cleval_nn_tensor t = tensor(3, xd, x), out;
    run_general(m, variant, CLEVAL_NN_FP32, &t, &out);
    char what[96];
    snprintf(what, sizeof what, "%s opset %lld axis %lld (%s)", is_log ? "LogSoftmax" : "Softmax",
             (long long)opset, (long long)a, cleval_variant_name(variant));
    assert_close(out.data, ref, n, 1e-5, 1e-5, what);
    free(out.data);
    free(ref);
    free(x);
    builder_free(m);
}

static void test_softmax(void **state)
{
    (void)state;
    FOR_EACH_VARIANT(v)
    for (int lg = 0; lg < 2; lg++) {
        check_softmax(lg, 11, 1, true, v);  /* coerced to [3, 260] */
        check_softmax(lg, 11, 0, false, v); /* default axis 1 before opset 13 */
        check_softmax(lg, 9, 2, true, v);
        check_softmax(lg, 13, -1, true, v);
        check_softmax(lg, 13, 1, true, v); /* one axis with inner extent 65 */
        check_softmax(lg, 13, 0, false, v);
        check_softmax(lg, 13, 0, true, v);
    }
}

/* ---- classifier runs ---- */

/* x [N, 5] -> Identity -> scores: argmax on chosen rows. */
static void test_argmax_and_batches(void **state)
{
    (void)state;
    FOR_EACH_VARIANT(v)
    {
        cleval_device_set_variant(test_device(), v);
        cleval_onnx_model *m = builder_new(13);
        int64_t dims[2] = {-1, 5};
        builder_input(m, "x", 2, dims);
        builder_node(m, "Identity", "id", "x", "y");
        builder_output(m, "y");
        cleval_nn *nn;
        assert_ok(cleval_nn_create(test_device(), m, &nn));
        assert_int_equal(cleval_nn_output_width(nn), 5);
        assert_int_equal(cleval_nn_input_rank(nn), 1);
        assert_int_equal(cleval_nn_input_shape(nn)[0], 5);
        float x[] = {1,         3,         3,
                     0,         2, /* tie: first maximum */
                     -1,        -2,        -3,
                     -4,        -5, /* 0 */
                     0,         0,         0,
                     0,         7, /* last */
                     1,         NAN,       9,
                     NAN,       2, /* NaN counts as the maximum, first one */
                     -INFINITY, -INFINITY, -INFINITY,
                     -INFINITY, -INFINITY};
        int32_t expect[] = {1, 0, 4, 1, 0}, pred[5];
        float scores[25];
        assert_ok(cleval_nn_run(nn, x, 0, NULL)); /* nothing to do */
        assert_ok(cleval_nn_run(nn, x, 5, NULL));
        assert_ok(cleval_cl_check(clEnqueueReadBuffer(cleval_device_queue(test_device()),
                                                      cleval_nn_pred_buffer(nn), CL_TRUE, 0,
                                                      sizeof pred, pred, 0, NULL, NULL),
                                  "read pred"));
        assert_memory_equal(pred, expect, sizeof expect);
        assert_ok(cleval_nn_run(nn, x + 5, 2, scores));
        assert_memory_equal(scores, x + 5, 10 * sizeof(float));
        assert_int_equal(cleval_nn_run(nn, x, cleval_nn_max_batch(nn) + 1u, NULL) == CLEVAL_OK,
                         cleval_nn_max_batch(nn) == UINT32_MAX);
        cleval_nn_destroy(nn);
        builder_free(m);
    }
    cleval_nn_destroy(NULL);
}

/* ---- ONNX fixtures against PyTorch and onnxruntime ---- */

static uint32_t argmax_row(const float *row, uint32_t c)
{
    uint32_t best = 0;
    for (uint32_t j = 1; j < c; j++)
        if (row[j] > row[best]) best = j;
    return best;
}

/* Scores within 1e-4 of both references; argmax equal unless the reference's top two are
 * within 1e-4 of each other. */
static void check_fixture(const char *model_path, const char *io_path, const uint32_t *batches,
                          size_t n_batches)
{
    cleval_onnx_model *model;
    assert_ok(cleval_onnx_load(model_path, &model));
    cleval_dataset *ds;
    assert_ok(cleval_dataset_open(io_path, &ds));
    uint64_t n, size, n2, width, n3, width2;
    float *x = read_column(ds, "X", &n, &size);
    float *torch = read_column(ds, "scores_torch", &n2, &width);
    float *ort = read_column(ds, "scores_ort", &n3, &width2);
    assert_int_equal(n, n2);
    assert_int_equal(width, width2);
    float *scores = malloc(n * width * sizeof *scores);
    int32_t *pred = malloc(n * sizeof *pred);
    double *want = malloc(n * width * sizeof *want);
    FOR_EACH_VARIANT(v)
    {
        cleval_device_set_variant(test_device(), v);
        cleval_nn *nn;
        assert_ok(cleval_nn_create(test_device(), model, &nn));
        assert_int_equal(cleval_nn_input_size(nn), size);
        assert_int_equal(cleval_nn_output_width(nn), width);
        for (size_t b = 0; b < n_batches; b++) {
            memset(scores, 0xff, n * width * sizeof *scores);
            for (uint64_t i = 0; i < n; i += batches[b]) {
                uint32_t count = (uint32_t)(n - i < batches[b] ? n - i : batches[b]);
                assert_ok(cleval_nn_run(nn, x + i * size, count, scores + i * width));
                assert_ok(cleval_cl_check(clEnqueueReadBuffer(cleval_device_queue(test_device()),
                                                              cleval_nn_pred_buffer(nn), CL_TRUE, 0,
                                                              count * sizeof(int32_t), pred + i, 0,
                                                              NULL, NULL),
                                          "read pred"));
            }
            const float *refs[2] = {torch, ort};
            for (int r = 0; r < 2; r++) {
                for (uint64_t i = 0; i < n * width; i++)
                    want[i] = refs[r][i];
                char what[4200];
                snprintf(what, sizeof what, "%s vs %s, batch %u (%s)", model_path,
                         r ? "onnxruntime" : "PyTorch", batches[b], cleval_variant_name(v));
                assert_close(scores, want, n * width, 1e-4, 0, what);
                for (uint64_t i = 0; i < n; i++) {
                    const float *row = refs[r] + i * width;
                    uint32_t best = argmax_row(row, (uint32_t)width);
                    if ((uint32_t)pred[i] == best) continue;
                    if (fabsf(row[pred[i]] - row[best]) > 1e-4f)
                        fail_msg("%s: sample %llu predicted %d, reference %u", what,
                                 (unsigned long long)i, pred[i], best);
                }
            }
        }
        cleval_nn_destroy(nn);
    }
    free(x);
    free(torch);
    free(ort);
    free(scores);
    free(pred);
    free(want);
    cleval_dataset_close(ds);
    cleval_onnx_free(model);
}

static void test_fixtures(void **state)
{
    (void)state;
    static const char *const names[] = {"mlp_softmax",  "lenet_bn",    "norm_subdiv",
                                        "conv_strided", "conv_padded", "conv_depthwise",
                                        "gemm_matmul",  "gemm_attrs"};
    static const uint32_t batches[] = {1, 2, 3, 7};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char model[4096], io[4096];
        snprintf(model, sizeof model, "%s/onnx/%s.onnx", CLEVAL_FIXTURES_DIR, names[i]);
        snprintf(io, sizeof io, "%s/onnx/%s_io.h5", CLEVAL_FIXTURES_DIR, names[i]);
        check_fixture(model, io, batches, sizeof batches / sizeof batches[0]);
    }
}

static void test_fmnist_model(void **state)
{
    (void)state;
    static const uint32_t batches[] = {64, 100, 256};
    char io[4096];
    snprintf(io, sizeof io, "%s/onnx/fmnist_cnn_io.h5", CLEVAL_FIXTURES_DIR);
    check_fixture(CLEVAL_FIXTURES_DIR "/../../datasets/fmnist_cnn.onnx", io, batches, 3);
}

/* ---- refusals ---- */

static void test_unsupported_fixtures(void **state)
{
    (void)state;
    cleval_onnx_model *m;
    assert_ok(cleval_onnx_load(fixture_path("onnx/unsupported_op.onnx"), &m));
    expect_refusal(m, false, CLEVAL_ERR_UNSUPPORTED, "unsupported_op.onnx", "node 'hardmax_node'",
                   "(Hardmax)", "operator Hardmax is not supported", NULL);
    cleval_onnx_free(m);
    assert_ok(cleval_onnx_load(fixture_path("onnx/unsupported_attr.onnx"), &m));
    expect_refusal(m, false, CLEVAL_ERR_UNSUPPORTED, "unsupported_attr.onnx",
                   "node 'conv_autopad' (Conv): attribute auto_pad=SAME_UPPER is not supported",
                   NULL);
    cleval_onnx_free(m);
}

static cleval_onnx_model *tiny(int64_t opset, const int64_t *dims, uint32_t rank)
{
    cleval_onnx_model *m = builder_new(opset);
    builder_input(m, "x", rank, dims);
    builder_output(m, "y");
    return m;
}

static void test_refusals(void **state)
{
    (void)state;
    int64_t d2[2] = {-1, 6}, d4[4] = {-1, 2, 8, 8}, two = 2;
    cleval_onnx_model *m;

    m = tiny(13, d2, 2); /* two runtime inputs */
    builder_input(m, "z", 2, d2);
    builder_node(m, "Add", "add", "x,z", "y");
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "2 inputs", NULL);

    m = tiny(13, d2, 2); /* softmax over the batch */
    attr_int(builder_node(m, "Softmax", "sm0", "x", "y"), "axis", 0);
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "node 'sm0' (Softmax)", "batch axis",
                           NULL);

    m = tiny(13, d2, 2); /* a reshape that moves the batch */
    int64_t flat[2] = {1, -1};
    builder_init_i64(m, "shape", 1, &two, flat);
    builder_node(m, "Reshape", "rs", "x,shape", "y");
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "node 'rs' (Reshape)", NULL);

    m = tiny(13, d2, 2); /* a computed reshape target */
    builder_input(m, "s", 1, &two);
    builder_node(m, "Reshape", "rs2", "x,s", "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'rs2' (Reshape)",
                           "must be a constant", NULL);

    m = tiny(13, d4, 4); /* auto_pad SAME with dilations */
    cleval_onnx_node *n = builder_node(m, "MaxPool", "mp", "x", "y");
    int64_t k[2] = {2, 2};
    attr_ints(n, "kernel_shape", 2, k);
    attr_ints(n, "dilations", 2, k);
    attr_string(n, "auto_pad", "SAME_LOWER");
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "node 'mp' (MaxPool)",
                           "auto_pad=SAME_LOWER", NULL);

    m = tiny(13, d4, 4); /* an attribute this engine does not know */
    n = builder_node(m, "Relu", "r", "x", "y");
    attr_int(n, "alpha", 1);
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "node 'r' (Relu)", "attribute alpha",
                           NULL);

    m = tiny(13, d4, 4); /* an input no node produces */
    builder_node(m, "Add", "add", "x,nowhere", "y");
    expect_refusal_freeing(m, false, CLEVAL_ERR_INPUT, "node 'add' (Add)", "'nowhere'", NULL);

    m = tiny(13, d2, 2); /* shapes that disagree */
    int64_t wd[2] = {5, 3};
    float w[15] = {0};
    builder_init(m, "w", 2, wd, w);
    builder_node(m, "MatMul", "mm", "x,w", "y");
    expect_refusal_freeing(m, false, CLEVAL_ERR_INPUT, "node 'mm' (MatMul)", "K", NULL);

    int64_t huge[4] = {-1, 100000, 100000, 100000}; /* hostile sizes */
    m = tiny(13, huge, 4);
    builder_node(m, "Relu", "r", "x", "y");
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "too large", NULL);

    int64_t d9[9] = {-1, 1, 1, 1, 1, 1, 1, 1, 1};
    m = tiny(13, d9, 9);
    builder_node(m, "Relu", "r", "x", "y");
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "rank 9", NULL);

    int64_t dyn[3] = {-1, -1, 4}; /* a per-sample axis that varies */
    m = tiny(13, dyn, 3);
    builder_node(m, "Relu", "r", "x", "y");
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "dynamic", NULL);

    m = tiny(13, d4, 4); /* Dropout's mask used */
    builder_node(m, "Dropout", "drop", "x", "y,mask");
    builder_output(m, "mask");
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'drop' (Dropout)", "'mask'",
                           NULL);

    m = tiny(13, d4, 4); /* not [N, C] */
    builder_node(m, "Relu", "r", "x", "y");
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "[N, C]", NULL);

    /* BatchNormalization whose B, mean or var is shorter than scale: refused at load, whether
     * it would be folded into the Conv before it or run alone (both read all four per channel
     * of scale). A general graph with a dynamic batch: no shapes are inferred before the
     * folding and the preparation. */
    for (int folded = 1; folded >= 0; folded--)
        for (int bad = 2; bad <= 4; bad++) {
            int64_t xd[4] = {-1, 3, 6, 6}, wd[4] = {4, 3, 3, 3}, four = 4, two_c = 2;
            float w[108] = {0}, ones[4] = {1, 1, 1, 1};
            m = tiny(9, folded ? xd : d4, 4);
            const char *x = "x";
            if (folded) {
                builder_init(m, "W", 4, wd, w);
                builder_node(m, "Conv", "conv", "x,W", "c");
                x = "c";
            }
            static const char *const names[] = {NULL, NULL, "B", "mean", "var"};
            builder_init(m, "scale", 1, folded ? &four : &two_c, ones);
            for (int i = 2; i <= 4; i++) {
                int64_t len = i == bad ? (folded ? 2 : 1) : (folded ? 4 : 2);
                builder_init(m, names[i], 1, &len, ones);
            }
            char inputs[64];
            snprintf(inputs, sizeof inputs, "%s,scale,B,mean,var", x);
            builder_node(m, "BatchNormalization", "bn", inputs, "b");
            builder_node(m, "Flatten", "flat", "b", "y");
            char count[64];
            snprintf(count, sizeof count, "input %d (%s) has %d values, scale has %d", bad,
                     names[bad], folded ? 2 : 1, folded ? 4 : 2);
            expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'bn' (BatchNormalization)",
                                   count, NULL);
        }

    m = tiny(13, d4, 4); /* a weight that is computed */
    builder_node(m, "Relu", "r", "x", "w");
    builder_node(m, "Conv", "conv", "x,w", "y");
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "node 'conv' (Conv)",
                           "must be a constant", NULL);
}

/* Hostile attribute values: every INT and INTS attribute of the fixture models set in turn to
 * values a broken or malicious exporter could write. Creation must fail cleanly with a
 * one-line message or succeed and run; never crash (run under the sanitizer build). */
static void test_hostile_attributes(void **state)
{
    (void)state;
    static const char *const names[] = {"mlp_softmax",    "lenet_bn",    "conv_padded",
                                        "conv_depthwise", "gemm_matmul", "conv_strided"};
    /* (large-but-valid values such as pads of 2^20 are refused later or just slow: they are
     * left to the limits tests) */
    static const int64_t values[] = {-1, 0, 2, 7, 300, INT32_MAX, INT64_MAX, INT64_MIN};
    int created = 0, refused = 0;
    for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/onnx/%s.onnx", CLEVAL_FIXTURES_DIR, names[f]);
        cleval_onnx_model *m;
        assert_ok(cleval_onnx_load(path, &m));
        for (uint32_t n = 0; n < m->n_nodes; n++)
            for (uint32_t a = 0; a < m->nodes[n].n_attrs; a++) {
                cleval_onnx_attr *attr = &m->nodes[n].attrs[a];
                uint32_t slots = attr->type == CLEVAL_ONNX_ATTR_INT    ? 1
                                 : attr->type == CLEVAL_ONNX_ATTR_INTS ? attr->count
                                                                       : 0;
                for (uint32_t k = 0; k < slots; k++) {
                    int64_t *slot = attr->type == CLEVAL_ONNX_ATTR_INT ? &attr->i : &attr->ints[k];
                    int64_t saved = *slot;
                    for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
                        *slot = values[v];
                        cleval_nn *nn = NULL;
                        cleval_status st = cleval_nn_create(test_device(), m, &nn);
                        if (st != CLEVAL_OK) {
                            refused++;
                            assert_null(nn);
                            assert_null(strchr(cleval_last_error(), '\n'));
                            assert_true(strlen(cleval_last_error()) > 0);
                            continue;
                        }
                        created++;
                        uint64_t size = cleval_nn_input_size(nn);
                        float *x = random_array(3 * size, -1, 1);
                        float *scores = malloc(3 * cleval_nn_output_width(nn) * sizeof *scores);
                        cleval_nn_run(nn, x, 3, scores); /* may fail (K = 0...), cleanly */
                        free(x);
                        free(scores);
                        cleval_nn_destroy(nn);
                    }
                    *slot = saved;
                }
            }
        cleval_onnx_free(m);
    }
    print_message("hostile attributes: %d models created, %d refused\n", created, refused);
    assert_true(refused > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_winograd),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_unary),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_gemm_batchnorm),
        cmocka_unit_test(test_matmul_bias),
        cmocka_unit_test(test_shape_ops),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_argmax_and_batches),
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_fmnist_model),
        cmocka_unit_test(test_unsupported_fixtures),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_hostile_attributes),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
