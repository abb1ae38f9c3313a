/* Conv on the GPU kernel family (kernels/conv_gpu.cl, src/nn/op_conv_gpu.c) against a plain
 * float64 C reference: pointwise, grouped, depthwise, strided, dilated, asymmetrically padded,
 * 1 to 3 spatial axes, with and without bias and a fused Relu, in fp32 and fp16, at odd sizes
 * around the tiles (one pixel, one channel, K one past a k-slice, channels one past each tile
 * width, pixel counts one past a tile, an empty batch), with conv_gpu's own choice of tile
 * and with each of its tile shapes forced (each run checks which by the layer's kernel
 * description). */
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

typedef struct conv_case {
    const char *what;
    uint32_t spatial;
    int64_t n, c, co, group;
    int64_t in[3], k[3], stride[3], dil[3], pb[3], pe[3];
    bool bias, relu;
} conv_case;

/* Output extent of one axis. */
static int64_t out_extent(const conv_case *cc, int a)
{
    return (cc->in[a] + cc->pb[a] + cc->pe[a] - cc->dil[a] * (cc->k[a] - 1) - 1) / cc->stride[a] +
           1;
}

/* The reference: y[n][co][o] = b[co] + sum w[co][ci][t] * x[n][g * cin_g + ci][o * s + t * d - p],
 * over right-aligned (D, H, W) extents. */
static double *reference(const conv_case *cc, const float *x, const float *w, const float *b,
                         int64_t *ny)
{
    int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1};
    int64_t d[3] = {1, 1, 1}, p[3] = {0, 0, 0};
    for (uint32_t a = 0; a < cc->spatial; a++) {
        int r = 3 - (int)cc->spatial + (int)a;
        in[r] = cc->in[a], out[r] = out_extent(cc, (int)a), k[r] = cc->k[a];
        s[r] = cc->stride[a], d[r] = cc->dil[a], p[r] = cc->pb[a];
    }
    int64_t cin_g = cc->c / cc->group, co_g = cc->co / cc->group;
    int64_t volume = out[0] * out[1] * out[2], in_volume = in[0] * in[1] * in[2];
    int64_t window = k[0] * k[1] * k[2];
    *ny = cc->n * cc->co * volume;
    double *y = calloc((size_t)(*ny ? *ny : 1), sizeof *y);
    assert_non_null(y);
    for (int64_t n = 0; n < cc->n; n++)
        for (int64_t co = 0; co < cc->co; co++)
            for (int64_t o = 0; o < volume; o++) {
                int64_t oz = o / (out[1] * out[2]), oy = o / out[2] % out[1], ox = o % out[2];
                double acc = cc->bias ? b[co] : 0.0;
                for (int64_t ci = 0; ci < cin_g; ci++)
                    for (int64_t t = 0; t < window; t++) {
                        int64_t tz = t / (k[1] * k[2]), ty = t / k[2] % k[1], tx = t % k[2];
                        int64_t iz = oz * s[0] + tz * d[0] - p[0];
                        int64_t iy = oy * s[1] + ty * d[1] - p[1];
                        int64_t ix = ox * s[2] + tx * d[2] - p[2];
                        if (iz < 0 || iz >= in[0] || iy < 0 || iy >= in[1] || ix < 0 || ix >= in[2])
                            continue;
                        int64_t c = co / co_g * cin_g + ci;
                        acc += (double)w[(co * cin_g + ci) * window + t] *
                               x[(n * cc->c + c) * in_volume + (iz * in[1] + iy) * in[2] + ix];
                    }
                y[(n * cc->co + co) * volume + o] = cc->relu && acc < 0 ? 0.0 : acc;
            }
    return y;
}

/* tile: 0 conv_gpu's own choice, 1 the narrow tile, 2 the wide one (CLEVAL_NN_TUNING). */
static void check(const conv_case *cc, cleval_nn_precision precision, int tile)
{
    uint32_t rank = 2 + cc->spatial;
    int64_t xdims[5] = {cc->n, cc->c}, wdims[5] = {cc->co, cc->c / cc->group}, pads[6];
    for (uint32_t a = 0; a < cc->spatial; a++) {
        xdims[2 + a] = cc->in[a];
        wdims[2 + a] = cc->k[a];
        pads[a] = cc->pb[a];
        pads[cc->spatial + a] = cc->pe[a];
    }
    uint64_t nx = count_of(rank, xdims), nw = count_of(rank, wdims);
    float *x = random_array(nx, -1.0f, 1.0f), *w = random_array(nw, -0.5f, 0.5f);
    float *b = random_array((uint64_t)cc->co, -1.0f, 1.0f);
    /* fp16 stores the weights as half: the reference uses the same values. */
    float *w_ref = malloc((nw ? nw : 1) * sizeof *w_ref);
    for (uint64_t i = 0; i < nw; i++)
        w_ref[i] = precision == CLEVAL_NN_FP16 ? hround(w[i]) : w[i];

    cleval_onnx_model *m = builder_new(13);
    int64_t dyn[5] = {-1, cc->c, -1, -1, -1};
    builder_input(m, "x", rank, dyn);
    builder_init(m, "w", rank, wdims, w);
    int64_t bdims[1] = {cc->co};
    if (cc->bias) builder_init(m, "b", 1, bdims, b);
    cleval_onnx_node *node =
        builder_node(m, "Conv", "conv", cc->bias ? "x,w,b" : "x,w", cc->relu ? "c" : "y");
    attr_ints(node, "kernel_shape", cc->spatial, cc->k);
    attr_ints(node, "strides", cc->spatial, cc->stride);
    attr_ints(node, "dilations", cc->spatial, cc->dil);
    attr_ints(node, "pads", 2 * cc->spatial, pads);
    attr_int(node, "group", cc->group);
    if (cc->relu) builder_node(m, "Relu", "relu", "c", "y");
    builder_output(m, "y");

    cleval_device_set_variant(test_device(), CLEVAL_VARIANT_GPU);
    cleval_nn_options options = {.general = true, .precision = precision};
    cleval_nn *nn;
    char tuning[32];
    snprintf(tuning, sizeof tuning, "gpu_conv_tile=%d", tile);
    setenv("CLEVAL_NN_TUNING", tuning, 1);
    assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
    unsetenv("CLEVAL_NN_TUNING");
    cleval_nn_tensor in = tensor(rank, xdims, x), got;
    assert_ok(cleval_nn_run_graph(nn, &in, &got));

    char what[200];
    snprintf(what, sizeof what, "%s (%s, tile %d)", cc->what,
             precision == CLEVAL_NN_FP16 ? "fp16" : "fp32", tile);
    /* The layer ran conv_gpu with the tile for its channels per group (conv_depthwise for
     * one input channel per group), with the Relu fused into it. */
    bool depthwise = cc->group > 1 && cc->c / cc->group == 1;
    bool narrow = tile ? tile == 1 : cc->co / cc->group <= 32;
    const char *kernel = depthwise ? "conv_depthwise"
                         : narrow  ? "conv_gpu TM=64 TN=32 TK=16"
                                   : "conv_gpu TM=64 TN=64 TK=16";
    bool found = false;
    for (uint32_t i = 0; i < cleval_nn_layer_count(nn); i++)
        found = found || strstr(cleval_nn_layer_at(nn, i)->kernel, kernel) != NULL;
    if (!found) fail_msg("%s: no layer runs %s", what, kernel);
    assert_int_equal(cleval_nn_layer_count(nn), 1);

    int64_t ny;
    double *want = reference(cc, x, w_ref, b, &ny);
    assert_int_equal(got.rank, rank);
    assert_int_equal(got.dims[0], cc->n);
    assert_int_equal(got.dims[1], cc->co);
    for (uint32_t a = 0; a < cc->spatial; a++)
        assert_int_equal(got.dims[2 + a], out_extent(cc, (int)a));
    /* fp32: float sums of at most a few hundred terms of size 1; fp16 may sum each k-slice in
     * half (HALF_MATH), rounding partial sums to 11 bits. */
    double tol = precision == CLEVAL_NN_FP16 ? 2e-2 : 1e-4;
    for (int64_t i = 0; i < ny; i++)
        if (!(fabs(got.data[i] - want[i]) <= tol * (1.0 + fabs(want[i]))))
            fail_msg("%s: element %lld is %.9g, expected %.9g", what, (long long)i, got.data[i],
                     want[i]);
    cleval_nn_destroy(nn);
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    builder_free(m);
    free(got.data);
    free(want);
    free(x), free(w), free(b), free(w_ref);
}

/* clang-format off */
static const conv_case CASES[] = {
    /* what                                  sp  n   c   co grp  in            k          stride     dil        pb         pe        bias  relu */
    {"one pixel, one channel",               2,  1,  1,  1, 1, {1, 1},      {1, 1},    {1, 1},    {1, 1},    {0, 0},    {0, 0},    false, false},
    {"pointwise, 33 channels (wide tile)",   2,  2,  5, 33, 1, {7, 9},      {1, 1},    {1, 1},    {1, 1},    {0, 0},    {0, 0},    true,  false},
    {"K one past a k-slice, 32 channels",    2,  1, 17, 32, 1, {3, 5},      {1, 1},    {1, 1},    {1, 1},    {0, 0},    {0, 0},    true,  true},
    {"3x3 pad 1, 65 channels, 286 pixels",   2,  2,  3, 65, 1, {11, 13},    {3, 3},    {1, 1},    {1, 1},    {1, 1},    {1, 1},    true,  true},
    {"strided, dilated, asymmetric pads",    2,  2,  4,  7, 1, {13, 11},    {3, 2},    {2, 3},    {2, 1},    {0, 2},    {1, 0},    true,  false},
    {"grouped (3 groups of 2 -> 3)",         2,  2,  6,  9, 3, {5, 6},      {3, 3},    {1, 1},    {1, 1},    {1, 0},    {0, 1},    false, true},
    {"grouped, 2 groups of 34 channels",     2,  1,  4, 68, 2, {6, 5},      {3, 3},    {1, 2},    {1, 1},    {1, 1},    {1, 1},    true,  false},
    {"depthwise, multiplier 2",              2,  2,  3,  6, 3, {7, 5},      {3, 3},    {2, 1},    {1, 1},    {1, 1},    {1, 1},    true,  true},
    {"1-D, 65 pixels, 13 channels",          1,  1,  2, 13, 1, {69},        {5},       {1},       {1},       {0},       {0},       true,  false},
    {"3-D, padded",                          3,  1,  2,  8, 1, {5, 6, 7},   {3, 2, 3}, {1, 2, 1}, {1, 1, 2}, {1, 0, 1}, {1, 1, 0}, true,  true},
    {"K 360",                                2,  1, 40, 11, 1, {4, 5},      {3, 3},    {1, 1},    {1, 1},    {0, 0},    {0, 0},    true,  false},
    {"empty batch",                          2,  0,  3,  5, 1, {4, 4},      {3, 3},    {1, 1},    {1, 1},    {1, 1},    {1, 1},    true,  false},
};
/* clang-format on */

static void test_conv_gpu_against_reference(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++)
        for (int tile = 0; tile <= 2; tile++) {
            check(&CASES[i], CLEVAL_NN_FP32, tile);
            check(&CASES[i], CLEVAL_NN_FP16, tile);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_gpu_against_reference),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
