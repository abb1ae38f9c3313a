/* The elementwise binary operators on both kernel families (kernels/elementwise.cl:
 * `binary_runs` on CPUs where both operands are the same shape, a per-row / per-channel one or a
 * scalar, 16 outputs per work-item; `binary` on GPUs) against a plain C reference at odd sizes:
 * 1 element, primes, 17, one more than a multiple of 16, channels whose runs straddle a 16-lane
 * group, the broadcast operand first or second, the fused Relu, the fused Sigmoid and
 * HardSigmoid gates (x * sigmoid(x) with both signs, squeeze-excitation's per-channel gate),
 * fp16 storage. Without the Sigmoid gate the reference does the kernels' float ops in their
 * order, so every result must match bit for bit (the HardSigmoid's alpha 0.25 makes its product
 * exact, fused or not); the Sigmoid's exp may differ by an ulp from C's. The kernel that ran is
 * checked by name, and on CPUs that binary_runs computes a gate on 16 lanes ("x16"). Also the
 * per-channel affine map of an unfolded BatchNormalization (channel_affine_runs on CPUs). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_builder.h"
#define NN_TEST_SEED 29 /* the seed of this program's random inputs */
#include "nn_testutil.h"

/* What B is, for x of shape [N, C, H, W]: |x|, x[:, :, :, :1] (per row), x[:, :, :1, :1] (per
 * sample and channel), a [C, 1, 1] constant, a [1] constant, a [C, H, W] constant (the same for
 * every sample), x itself (with a gate: SiLU's x * sigmoid(x), negated). */
typedef enum b_kind { SAME, ROW, NC, CHAN, SCALAR, SAMPLE, SELF } b_kind;

/* The gate fused into the op, applied to B first. */
typedef enum gate_kind { NO_GATE, SIGMOID, HARD_SIGMOID } gate_kind;
#define HARD_ALPHA 0.25f
#define HARD_BETA 0.5f

typedef struct bin_case {
    const char *what, *op; /* Add, Sub, Mul, Div, PRelu */
    int64_t d[4];
    b_kind b;
    bool a_chan; /* A is the [C, 1, 1] constant and B the activation -x (Add / Sub only) */
    bool relu;
    gate_kind gate;
} bin_case;

static float store(float v, bool half)
{
    return half ? hround(v) : v;
}

static float apply(const char *op, float a, float b)
{
    if (strcmp(op, "Add") == 0) return a + b;
    if (strcmp(op, "Sub") == 0) return a - b;
    if (strcmp(op, "Mul") == 0) return a * b;
    if (strcmp(op, "PRelu") == 0) return a < 0.0f ? a * b : a;
    return a / b;
}

static void check(const bin_case *p, cleval_kernel_variant variant, cleval_nn_precision precision)
{
    bool half = precision == CLEVAL_NN_FP16;
    const int64_t *d = p->d, chan_dims[3] = {d[1], 1, 1}, one = 1, axis_w = 3, axes_hw[2] = {2, 3},
                  zero2[2] = {0, 0}, one2[2] = {1, 1};
    uint64_t n = count_of(4, d);
    float *x = random_array(n, -3.0f, 3.0f);
    uint64_t sample = (uint64_t)(d[1] * d[2] * d[3]);
    float *cst = random_array(sample, -2.0f, 2.0f);
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 4, d);
    builder_node(m, "Neg", "neg_a", "x", "xn");
    const char *b = "b";
    switch (p->b) {
    case SAME: builder_node(m, "Abs", "abs_b", "x", "b"); break;
    case ROW:
        builder_init_i64(m, "s0", 1, &one, zero2);
        builder_init_i64(m, "s1", 1, &one, one2);
        builder_init_i64(m, "sw", 1, &one, &axis_w);
        builder_node(m, "Slice", "slice_b", "x,s0,s1,sw", "b");
        break;
    case NC:
        builder_init_i64(m, "s0", 1, (const int64_t[]){2}, zero2);
        builder_init_i64(m, "s1", 1, (const int64_t[]){2}, one2);
        builder_init_i64(m, "shw", 1, (const int64_t[]){2}, axes_hw);
        builder_node(m, "Slice", "slice_b", "x,s0,s1,shw", "b");
        break;
    case CHAN: builder_init(m, "b", 3, chan_dims, cst); break;
    case SCALAR: builder_init(m, "b", 1, &one, cst); break;
    case SAMPLE: builder_init(m, "b", 3, d + 1, cst); break;
    case SELF: b = "x"; break;
    }
    if (p->gate == SIGMOID) builder_node(m, "Sigmoid", "gate", b, "g");
    if (p->gate == HARD_SIGMOID) {
        cleval_onnx_node *g = builder_node(m, "HardSigmoid", "gate", b, "g");
        attr_float(g, "alpha", HARD_ALPHA);
        attr_float(g, "beta", HARD_BETA);
    }
    if (p->gate) b = "g";
    char inputs[16];
    snprintf(inputs, sizeof inputs, p->a_chan ? "%s,xn" : "xn,%s", b);
    builder_node(m, p->op, "bin", inputs, "s");
    if (p->relu) builder_node(m, "Relu", "relu", "s", "r");
    /* fp16 keeps a graph's outputs float: the Neg after makes the binary op write half. */
    builder_node(m, "Neg", "neg_y", p->relu ? "r" : "s", "y");
    builder_output(m, "y");

    /* The reference: each operand as the op reads it (rounded to half where stored as half),
     * float arithmetic (which rounded to half once equals half arithmetic for + - * /, as float
     * has more than twice half's precision), the result rounded as stored. */
    float *want = calloc(n, sizeof *want);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t w = i % (uint64_t)d[3], h = i / (uint64_t)d[3] % (uint64_t)d[2],
                 c = i / (uint64_t)(d[3] * d[2]) % (uint64_t)d[1];
        float xa = store(-x[i], half), bv = 0.0f;
        switch (p->b) {
        case SAME: bv = store(fabsf(x[i]), half); break;
        case ROW: bv = store(x[i - w], half); break;
        case NC: bv = store(x[i - w - h * (uint64_t)d[3]], half); break;
        case CHAN: bv = cst[c]; break;
        case SCALAR: bv = cst[0]; break;
        case SAMPLE: bv = cst[i % sample]; break;
        case SELF: bv = x[i]; break;
        }
        /* The gate's tensor, had it not been fused, is stored as its input is: the graph's
         * input (SELF) stays float in fp16 mode. */
        bool gate_half = half && p->b != SELF;
        if (p->gate == SIGMOID) bv = store(1.0f / (1.0f + expf(-bv)), gate_half);
        if (p->gate == HARD_SIGMOID) {
            float g = HARD_ALPHA * bv + HARD_BETA;
            bv = store(g < 0.0f ? 0.0f : g > 1.0f ? 1.0f : g, gate_half);
        }
        float v = p->a_chan ? apply(p->op, bv, xa) : apply(p->op, xa, bv);
        if (p->relu) v = v < 0.0f ? 0.0f : v;
        want[i] = -store(v, half);
    }

    cleval_device_set_variant(test_device(), variant);
    cleval_nn_options options = {.general = true, .precision = precision};
    cleval_nn *nn;
    assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
    cleval_nn_tensor t = tensor(4, d, x), out;
    assert_ok(cleval_nn_run_graph(nn, &t, &out));
    bool cpu = variant == CLEVAL_VARIANT_CPU, found = false;
    for (uint32_t i = 0; i < cleval_nn_layer_count(nn); i++) {
        const char *k = cleval_nn_layer_at(nn, i)->kernel;
        if (strncmp(k, "binary", 6) != 0) continue;
        found = true;
        if ((strncmp(k, "binary_runs", 11) == 0) != cpu)
            fail_msg("%s (%s): ran %s", p->what, cleval_variant_name(variant), k);
        const char *gate_tag = p->gate == SIGMOID ? "+sigmoid(b)" : "+hardsigmoid(b)";
        if ((p->relu && !strstr(k, "+clamp")) || (p->gate && !strstr(k, gate_tag)))
            fail_msg("%s (%s): ran %s, the Relu / gate not fused", p->what,
                     cleval_variant_name(variant), k);
        if (p->gate && cpu && !strstr(k, " x16"))
            fail_msg("%s: ran %s, the gate not on 16 lanes", p->what, k);
    }
    if (!found) fail_msg("%s: no binary kernel ran", p->what);
    cleval_nn_destroy(nn);
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    assert_shape(&out, 4, d);
    /* The gate: C's expf against the device's exp, and its half rounding that may then differ. */
    double tol = p->gate != SIGMOID ? 0.0 : half ? 2e-3 : 1e-6;
    for (uint64_t i = 0; i < n; i++) {
        float got = out.data[i];
        bool ok = isnan(want[i]) ? isnan(got)
                                 : got == want[i] || fabs(got - want[i]) <= tol * fabs(want[i]);
        if (!ok)
            fail_msg("%s (%s, %s): element %llu is %.9g, expected %.9g (x %.9g)", p->what,
                     cleval_variant_name(variant), half ? "fp16" : "fp32", (unsigned long long)i,
                     got, want[i], x[i]);
    }
    free(out.data);
    free(want);
    free(cst);
    free(x);
    builder_free(m);
}

#define D4(n, c, h, w) {n, c, h, w}
static const bin_case CASES[] = {
    {"one element", "Add", D4(1, 1, 1, 1), SAME, false, true, false},
    {"17", "Add", D4(1, 1, 1, 17), SAME, false, true, false},
    {"prime", "Sub", D4(1, 1, 1, 31), SAME, false, false, false},
    {"16k+1", "Mul", D4(1, 1, 9, 9), SAME, false, false, false},
    {"residual", "Add", D4(2, 3, 7, 11), SAME, false, true, false},
    {"div", "Div", D4(2, 2, 5, 17), SAME, false, false, false},
    {"per row", "Sub", D4(2, 3, 5, 7), ROW, false, false, false},
    {"per sample channel", "Add", D4(2, 5, 3, 11), NC, false, true, false},
    {"per channel", "Add", D4(2, 5, 4, 9), CHAN, false, false, false},
    {"per channel 16k+1", "Mul", D4(3, 4, 1, 65), CHAN, false, true, false},
    {"per channel first", "Sub", D4(2, 3, 7, 5), CHAN, true, false, false},
    {"scalar", "Div", D4(1, 3, 5, 7), SCALAR, false, false, false},
    {"scalar first", "Sub", D4(1, 1, 1, 33), SCALAR, true, true, false},
    {"per sample", "Add", D4(3, 2, 5, 9), SAMPLE, false, true, false},
    {"per sample first", "Sub", D4(2, 1, 1, 16), SAMPLE, true, false, false},
    {"prelu", "PRelu", D4(2, 3, 6, 7), CHAN, false, false, false},
    {"gate", "Mul", D4(2, 3, 5, 13), SAME, false, false, SIGMOID},
    {"gate per channel", "Mul", D4(2, 6, 7, 7), NC, false, false, SIGMOID},
    {"silu one element", "Mul", D4(1, 1, 1, 1), SELF, false, false, SIGMOID},
    {"silu prime", "Mul", D4(1, 1, 1, 31), SELF, false, false, SIGMOID},
    {"silu 16k+1", "Mul", D4(1, 1, 1, 17), SELF, false, false, SIGMOID},
    {"silu", "Mul", D4(2, 3, 9, 11), SELF, false, true, SIGMOID},
    {"hard gate per channel", "Mul", D4(2, 5, 3, 11), NC, false, false, HARD_SIGMOID},
    {"hardswish", "Mul", D4(3, 2, 5, 7), SELF, false, false, HARD_SIGMOID},
    {"hardswish 16k+1", "Mul", D4(1, 1, 1, 33), SELF, false, true, HARD_SIGMOID},
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

/* fp16 storage: the cases whose B is an activation (constants keep their own storage). */
static void test_fp16_storage(void **state)
{
    (void)state;
    FOR_EACH_VARIANT(v)
    {
        for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
            if (CASES[i].b != CHAN && CASES[i].b != SCALAR && CASES[i].b != SAMPLE) check(&CASES[i], v, CLEVAL_NN_FP16);
    }
}

/* A BatchNormalization that cannot fold into a Conv (it reads the graph input), with or without
 * a fused Relu: channel_affine_runs on CPUs (channel_affine on GPUs) against y = fmaf(x, s, t)
 * with s, t computed as the host folds them (double, then float), bit for bit. Sizes: one
 * element, channels of one element (every lane another channel), of a prime count, of 16k+1
 * (runs straddle channels), 17 in all. */
static void check_affine(const int64_t d[4], bool relu, cleval_kernel_variant variant)
{
    int64_t c = d[1], cd[1] = {c};
    uint64_t n = count_of(4, d), inner = (uint64_t)(d[2] * d[3]);
    float *x = random_array(n, -3.0f, 3.0f), *scale = random_array((uint64_t)c, 0.5f, 1.5f);
    float *bias = random_array((uint64_t)c, -0.5f, 0.5f), *mean = random_array((uint64_t)c, -1, 1);
    float *var = random_array((uint64_t)c, 0.5f, 2.0f);
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 4, d);
    builder_init(m, "scale", 1, cd, scale);
    builder_init(m, "bias", 1, cd, bias);
    builder_init(m, "mean", 1, cd, mean);
    builder_init(m, "var", 1, cd, var);
    builder_node(m, "BatchNormalization", "bn", "x,scale,bias,mean,var", relu ? "b" : "y");
    if (relu) builder_node(m, "Relu", "relu", "b", "y");
    builder_output(m, "y");
    float *want = calloc(n, sizeof *want);
    assert_non_null(want);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t ch = (i / inner) % (uint64_t)c;
        double si = (double)scale[ch] / sqrt((double)var[ch] + 1e-5);
        float v = fmaf(x[i], (float)si, (float)((double)bias[ch] - (double)mean[ch] * si));
        want[i] = relu && v < 0.0f ? 0.0f : v;
    }
    cleval_device_set_variant(test_device(), variant);
    cleval_nn_options options = {.general = true};
    cleval_nn *nn;
    assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
    cleval_nn_tensor t = tensor(4, d, x), out;
    assert_ok(cleval_nn_run_graph(nn, &t, &out));
    const char *k = cleval_nn_layer_at(nn, 0)->kernel;
    const char *kernel = variant == CLEVAL_VARIANT_CPU ? "channel_affine_runs" : "channel_affine";
    if (strcmp(k, kernel) != 0)
        fail_msg("BatchNormalization [%lld, %lld, %lld, %lld] (%s): ran %s, expected %s",
                 (long long)d[0], (long long)d[1], (long long)d[2], (long long)d[3],
                 cleval_variant_name(variant), k, kernel);
    cleval_nn_destroy(nn);
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    assert_shape(&out, 4, d);
    for (uint64_t i = 0; i < n; i++)
        if (out.data[i] != want[i])
            fail_msg("BatchNormalization (%s): element %llu is %.9g, expected %.9g",
                     cleval_variant_name(variant), (unsigned long long)i, out.data[i], want[i]);
    free(out.data);
    free(want);
    free(x);
    free(scale);
    free(bias);
    free(mean);
    free(var);
    builder_free(m);
}

static void test_channel_affine(void **state)
{
    (void)state;
    static const int64_t shapes[][4] = {
        {1, 1, 1, 1}, {3, 7, 1, 1}, {2, 5, 3, 11}, {1, 3, 1, 17}, {2, 3, 4, 4}, {1, 1, 1, 17},
    };
    FOR_EACH_VARIANT(v)
    {
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            check_affine(shapes[i], false, v);
            check_affine(shapes[i], true, v);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp32),
        cmocka_unit_test(test_fp16_storage),
        cmocka_unit_test(test_channel_affine),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
