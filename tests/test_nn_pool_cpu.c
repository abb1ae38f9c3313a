/* MaxPool and AveragePool on both kernel families (kernels/pool.cl: on CPUs `pool_flat` for 1-D
 * and 2-D windows of stride 1, over a bordered copy of each plane, and `pool_rows` for the rest,
 * which runs whole windows of stride 2 sixteen outputs at a time; `pool` on GPUs) against a plain
 * C reference at odd sizes: extents of 1, primes, stride 2 on odd extents, rows shorter than,
 * equal to and longer than a 16-lane group and a 64-output work-item, pads, a window lying in
 * the end padding, dilation, ceil_mode, 1 to 3 spatial axes, count_include_pad both ways, NaN,
 * fp16 storage. The reference (pool_reference.h) visits the taps in the kernels' order and sums
 * in float, so every result must match bit for bit; the kernel that ran is checked by name. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_builder.h"
#define NN_TEST_SEED 23 /* the seed of this program's random inputs */
#include "nn_testutil.h"
#include "pool_reference.h"

/* Mode of a case: max, average without the padding, average counting it. */
typedef enum pool_mode {
    MAX = REF_POOL_MAX,
    AVG = REF_POOL_AVG,
    AVG_PAD = REF_POOL_AVG_PAD
} pool_mode;

typedef struct pool_case {
    const char *what;
    uint32_t spatial;
    int64_t n, c;
    int64_t in[3], k[3], s[3], d[3], pb[3], pe[3]; /* the first `spatial` entries */
    bool ceil;
    pool_mode mode;
} pool_case;

/* Output extent along one axis: floor, or ceil_mode dropping a last window that starts in the
 * end padding (onnxruntime's rule). */
static int64_t out_extent(const pool_case *p, int i)
{
    int64_t span = (p->k[i] - 1) * p->d[i] + 1, padded = p->in[i] + p->pb[i] + p->pe[i];
    int64_t o = (padded - span) / p->s[i] + 1;
    if (p->ceil && (padded - span) % p->s[i] != 0) o++;
    if (p->ceil && (o - 1) * p->s[i] >= p->in[i] + p->pb[i]) o--;
    return o;
}

static void check(const pool_case *p, cleval_kernel_variant variant, cleval_nn_precision precision)
{
    uint32_t rank = 2 + p->spatial;
    int64_t xdims[5] = {p->n, p->c}, ydims[5] = {p->n, p->c}, o[3];
    for (uint32_t i = 0; i < p->spatial; i++) {
        xdims[2 + i] = p->in[i];
        ydims[2 + i] = o[i] = out_extent(p, (int)i);
    }
    uint64_t nx = count_of(rank, xdims), ny = count_of(rank, ydims);
    float *x = random_array(nx, -3.0f, 3.0f);
    if (p->mode == MAX && nx > 40) x[nx / 2 + 3] = NAN; /* propagates to its windows */
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", rank, xdims);
    /* fp16 keeps a graph's inputs and outputs float: Neg before and after makes the pool read
     * and write half. */
    bool half = precision == CLEVAL_NN_FP16;
    if (half) builder_node(m, "Neg", "neg_in", "x", "xn");
    cleval_onnx_node *node = builder_node(m, p->mode == MAX ? "MaxPool" : "AveragePool", "pool",
                                          half ? "xn" : "x", half ? "yn" : "y");
    int64_t pads[6];
    for (uint32_t i = 0; i < p->spatial; i++) {
        pads[i] = p->pb[i];
        pads[p->spatial + i] = p->pe[i];
    }
    attr_ints(node, "kernel_shape", p->spatial, p->k);
    attr_ints(node, "strides", p->spatial, p->s);
    attr_ints(node, "dilations", p->spatial, p->d);
    attr_ints(node, "pads", 2 * p->spatial, pads);
    if (p->ceil) attr_int(node, "ceil_mode", 1);
    if (p->mode != MAX) attr_int(node, "count_include_pad", p->mode == AVG_PAD);
    if (half) builder_node(m, "Neg", "neg_out", "yn", "y");
    builder_output(m, "y");

    /* fp16: the reference reads the input as the pool does, rounded to half, and rounds its
     * result as the pool stores it. */
    float *xr = calloc(nx ? nx : 1, sizeof *xr), *want = calloc(ny ? ny : 1, sizeof *want);
    for (uint64_t i = 0; i < nx; i++)
        xr[i] = half ? hround(-(double)x[i]) : x[i];
    ref_pool_geometry g =
        ref_pool_geometry_of(p->spatial, p->in, o, p->k, p->s, p->d, p->pb, p->pe);
    ref_pool(&g, p->n * p->c, (ref_pool_mode)p->mode, xr, want);
    if (half)
        for (uint64_t i = 0; i < ny; i++)
            want[i] = -hround(want[i]);

    cleval_device_set_variant(test_device(), variant);
    cleval_nn_options options = {.general = true, .precision = precision};
    cleval_nn *nn;
    assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
    cleval_nn_tensor t = tensor(rank, xdims, x), out;
    assert_ok(cleval_nn_run_graph(nn, &t, &out));
    /* CPUs: 1-D and 2-D windows of stride 1 run pool_flat, unless the bordered plane and its
     * divisors pass the scratch's 2^21 floats; the others pool_rows. */
    bool stride_1 = p->spatial <= 2;
    int64_t plane = 1;
    for (uint32_t i = 0; i < p->spatial; i++) {
        stride_1 = stride_1 && p->s[i] == 1;
        plane *= p->in[i] + p->pb[i] + p->pe[i];
    }
    stride_1 = stride_1 && 2 * plane <= (1 << 21);
    const char *kernel = variant != CLEVAL_VARIANT_CPU ? "pool"
                         : stride_1                    ? "pool_flat"
                                                       : "pool_rows";
    for (uint32_t i = 0; i < cleval_nn_layer_count(nn); i++) {
        const cleval_nn_layer *l = cleval_nn_layer_at(nn, i);
        if (strcmp(l->name, "pool") == 0 && strcmp(l->kernel, kernel) != 0)
            fail_msg("%s: ran %s, expected %s", p->what, l->kernel, kernel);
    }
    cleval_nn_destroy(nn);
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    assert_shape(&out, rank, ydims);
    for (uint64_t i = 0; i < ny; i++) {
        float got = out.data[i];
        bool same = isnan(want[i]) ? isnan(got) : got == want[i];
        if (!same)
            fail_msg("%s (%s, %s): element %llu is %.9g, expected %.9g", p->what,
                     cleval_variant_name(variant), precision == CLEVAL_NN_FP16 ? "fp16" : "fp32",
                     (unsigned long long)i, got, want[i]);
    }
    free(out.data);
    free(want);
    free(xr);
    free(x);
    builder_free(m);
}

#define P2(a, b)                                                                                   \
    {                                                                                              \
        a, b, 1                                                                                    \
    }
static const pool_case CASES[] = {
    /* ResNet's stem pool at odd extents: 3x3 stride 2 pad 1, 19 outputs per row. */
    {"stem max", 2, 2, 3, P2(23, 37), P2(3, 3), P2(2, 2), P2(1, 1), P2(1, 1), P2(1, 1), false, MAX},
    {"stem avg", 2, 2, 3, P2(23, 37), P2(3, 3), P2(2, 2), P2(1, 1), P2(1, 1), P2(1, 1), false, AVG},
    {"stem avg pad", 2, 1, 3, P2(23, 37), P2(3, 3), P2(2, 2), P2(1, 1), P2(1, 1), P2(1, 1), false,
     AVG_PAD},
    {"1x1", 2, 1, 1, P2(1, 1), P2(1, 1), P2(1, 1), P2(1, 1), P2(0, 0), P2(0, 0), false, MAX},
    {"width 1", 2, 1, 2, P2(5, 1), P2(3, 3), P2(1, 1), P2(1, 1), P2(1, 1), P2(1, 1), false, AVG},
    /* Stride 1: 67 outputs, a 64-output work-item and a 3-output one. */
    {"stride 1 max", 2, 1, 2, P2(5, 67), P2(3, 3), P2(1, 1), P2(1, 1), P2(1, 1), P2(1, 1), false,
     MAX},
    {"stride 1 avg pad", 2, 1, 2, P2(5, 67), P2(3, 3), P2(1, 1), P2(1, 1), P2(1, 1), P2(1, 1),
     false, AVG_PAD},
    /* 16 and 17 full windows in a row. */
    {"16 lanes", 2, 1, 1, P2(3, 18), P2(3, 3), P2(1, 1), P2(1, 1), P2(0, 0), P2(0, 0), false, MAX},
    {"17 lanes", 2, 1, 1, P2(3, 35), P2(3, 3), P2(2, 2), P2(1, 1), P2(0, 0), P2(0, 0), false, AVG},
    {"stride 2 long", 2, 1, 2, P2(3, 301), P2(3, 3), P2(2, 2), P2(1, 1), P2(1, 1), P2(1, 1), false,
     MAX},
    {"ceil_mode max", 2, 1, 3, P2(8, 41), P2(3, 3), P2(2, 2), P2(1, 1), P2(0, 0), P2(0, 0), true,
     MAX},
    {"ceil_mode avg pad", 2, 1, 3, P2(8, 41), P2(3, 2), P2(2, 2), P2(1, 1), P2(1, 0), P2(1, 0),
     true, AVG_PAD},
    {"dilation 2", 2, 1, 2, P2(9, 53), P2(3, 3), P2(2, 2), P2(2, 2), P2(2, 2), P2(1, 2), false,
     AVG},
    {"stride 3", 2, 1, 2, P2(7, 50), P2(2, 4), P2(3, 3), P2(1, 1), P2(1, 1), P2(0, 2), false, MAX},
    /* Pads larger than the window: the last output's window lies in the end padding. */
    {"window in padding", 2, 1, 2, P2(3, 20), P2(1, 1), P2(1, 1), P2(1, 1), P2(0, 0), P2(1, 1),
     false, MAX},
    {"window in padding avg", 2, 1, 2, P2(3, 20), P2(1, 1), P2(1, 1), P2(1, 1), P2(0, 0), P2(1, 1),
     false, AVG_PAD},
    {"1D", 1, 2, 3, {131}, {4}, {1}, {1}, {2}, {1}, false, AVG},
    /* Inception's 3x3 stride-1 averages on 17 x 17 and 8 x 8 planes (several rows per vector),
     * more planes than work-items; SPP's 5x5 stride-1 max; dilation at stride 1. */
    {"3x3 stride 1 avg, 17 x 17", 2, 3, 7, P2(17, 17), P2(3, 3), P2(1, 1), P2(1, 1), P2(1, 1),
     P2(1, 1), false, AVG},
    {"3x3 stride 1 avg pad, 8 x 8", 2, 2, 11, P2(8, 8), P2(3, 3), P2(1, 1), P2(1, 1), P2(1, 1),
     P2(1, 1), false, AVG_PAD},
    {"5x5 stride 1 max, 13 x 13", 2, 2, 9, P2(13, 13), P2(5, 5), P2(1, 1), P2(1, 1), P2(2, 2),
     P2(2, 2), false, MAX},
    {"3x2 stride 1 dilation 2 avg", 2, 1, 3, P2(9, 23), P2(3, 2), P2(1, 1), P2(2, 2), P2(2, 1),
     P2(1, 2), false, AVG},
    /* A plane larger than the flattened scratch takes: pool_rows, no workspace. */
    {"3x3 stride 1 max on 1100 x 1000", 2, 1, 1, P2(1100, 1000), P2(3, 3), P2(1, 1), P2(1, 1),
     P2(1, 1), P2(1, 1), false, MAX},
    {"1D max", 1, 2, 3, {131}, {4}, {2}, {1}, {2}, {1}, false, MAX},
    {"3D", 3, 1, 2, {4, 5, 40}, {2, 3, 3}, {1, 2, 2}, {1, 1, 1}, {0, 1, 1}, {1, 0, 1}, false, AVG},
    {"3D max",
     3,
     1,
     2,
     {4, 5, 40},
     {2, 3, 3},
     {1, 2, 1},
     {1, 1, 1},
     {0, 1, 1},
     {1, 0, 1},
     false,
     MAX},
};

static void test_fp32(void **state)
{
    (void)state;
    FOR_EACH_VARIANT(v)
    {
        for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
            check(&CASES[i], v, CLEVAL_NN_FP32);
    }
}

static void test_fp16_storage(void **state)
{
    (void)state;
    FOR_EACH_VARIANT(v)
    {
        for (size_t i = 0; i < 3; i++)
            check(&CASES[i], v, CLEVAL_NN_FP16);
        check(&CASES[6], v, CLEVAL_NN_FP16);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp32),
        cmocka_unit_test(test_fp16_storage),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
