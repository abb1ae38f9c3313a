/* Batched matrix products (MatMul with batch axes, attention-style: both operands computed,
 * or one a constant shared by or stacked along the batch) against a plain C reference at odd
 * sizes, for both kernel families: M, N and K of 1, primes, one past the register tile (NR =
 * 32 columns) and the k-block (KC = 256), batches of 1, primes and more products than one
 * batched launch holds, empty products and batches. And the elementwise fusions (Add+Relu,
 * Mul+Sigmoid, Mul+HardSigmoid, Add+Clip) in a small network against onnxruntime
 * (tools/make_gemmfuse_fixtures.py), with the fused plan checked through the per-layer profile. */
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

/* ---- batched MatMul ---- */

/* A [..., M, K] x B [..., K, N] (ranks >= 2), B a graph input or a constant. In fp16 a
 * constant B is packed as half (graph inputs and outputs stay float); a misplaced matrix
 * would still err by far more than the tolerance. */
static void check_batched_in(uint32_t ra, const int64_t *ad, uint32_t rb, const int64_t *bd,
                             bool b_runtime, cleval_kernel_variant variant,
                             cleval_nn_precision precision)
{
    uint64_t na = count_of(ra, ad), nb = count_of(rb, bd);
    float *a = random_array(na, -1.0f, 1.0f), *b = random_array(nb, -1.0f, 1.0f);
    cleval_onnx_model *m = matmul_model(ra, ad, rb, bd, b, b_runtime);

    int64_t ydims[8];
    uint32_t yr;
    uint64_t ny;
    double *ref = ref_matmul(ra, ad, a, rb, bd, b, ydims, &yr, &ny);
    int64_t M = ad[ra - 2], K = ad[ra - 1], N = bd[rb - 1];
    int64_t batch = M * N != 0 ? (int64_t)ny / (M * N) : 0; /* for the message */
    cleval_nn_tensor in[2] = {tensor(ra, ad, a), tensor(rb, bd, b)}, out;
    run_general(m, variant, precision, in, &out);
    assert_shape(&out, yr, ydims);
    double tol = precision == CLEVAL_NN_FP16 ? 2e-2 : 1e-4;
    for (uint64_t i = 0; i < ny; i++)
        if (fabs(out.data[i] - ref[i]) > tol * (1 + fabs(ref[i])))
            fail_msg("MatMul %lld products of %lldx%lldx%lld%s (%s, %s): element %lld is %.7g, "
                     "expected %.7g",
                     (long long)batch, (long long)M, (long long)K, (long long)N,
                     b_runtime ? " runtime B" : "", cleval_variant_name(variant),
                     precision == CLEVAL_NN_FP16 ? "fp16" : "fp32", (long long)i, out.data[i],
                     ref[i]);
    free(out.data);
    free(ref);
    free(a);
    free(b);
    builder_free(m);
}

static void check_batched(uint32_t ra, const int64_t *ad, uint32_t rb, const int64_t *bd,
                          bool b_runtime, cleval_kernel_variant variant)
{
    check_batched_in(ra, ad, rb, bd, b_runtime, variant, CLEVAL_NN_FP32);
}

static void test_batched_matmul(void **state)
{
    (void)state;
    /* attention: [N, heads, L, d] x [N, heads, d, L], then [N, heads, L, L] x [N, heads, L, d] */
    int64_t q[4] = {2, 3, 13, 8}, kt[4] = {2, 3, 8, 13}, p[4] = {2, 3, 13, 13},
            v[4] = {2, 3, 13, 33};
    /* one past the k-block and the panel width; M = K = N = 1; a single product */
    int64_t a_k[3] = {3, 5, 257}, b_k[3] = {3, 257, 33}, a_1[3] = {7, 1, 1}, b_1[3] = {7, 1, 1};
    int64_t a_one[3] = {1, 17, 9}, b_one[3] = {1, 9, 31};
    /* one operand shared by every product: A without batch axes, or with a batch of 1 */
    int64_t a_shared[2] = {5, 6}, b_stack[3] = {4, 6, 3}, a_unit[4] = {1, 1, 5, 6};
    int64_t b_stack4[4] = {2, 2, 6, 19};
    /* empty: no rows, no products */
    int64_t a_m0[3] = {2, 0, 4}, b_m0[3] = {2, 4, 5}, a_b0[3] = {0, 3, 4}, b_b0[3] = {0, 4, 5};
    /* broadcast on some batch axes only ([2, 1] x [1, 3]): one launch per product */
    int64_t a_part[4] = {2, 1, 4, 5}, b_part[4] = {1, 3, 5, 7};
    FOR_EACH_VARIANT(var)
    {
        check_batched(4, q, 4, kt, true, var);
        check_batched(4, p, 4, v, true, var);
        check_batched(4, q, 4, kt, false, var);
        check_batched(3, a_k, 3, b_k, true, var);
        check_batched(3, a_k, 3, b_k, false, var);
        check_batched(3, a_1, 3, b_1, true, var);
        check_batched(3, a_one, 3, b_one, true, var);
        check_batched(2, a_shared, 3, b_stack, true, var);
        check_batched(2, a_shared, 3, b_stack, false, var);
        check_batched(4, a_unit, 4, b_stack4, true, var);
        check_batched(4, a_part, 4, b_part, true, var);
        check_batched(3, a_m0, 3, b_m0, true, var);
        check_batched(3, a_b0, 3, b_b0, true, var);
    }
    /* More products than one CPU launch holds (its workspace is bounded: 16 MiB of run-time
     * packed panels, 2 x 257 x 32 floats each): cut into several launches. */
    int64_t a_many[3] = {300, 2, 257}, b_many[3] = {300, 257, 33};
    check_batched(3, a_many, 3, b_many, true, CLEVAL_VARIANT_CPU);
    /* fp16 (a constant B's panels in half) */
    FOR_EACH_VARIANT(var)
    {
        check_batched_in(4, p, 4, v, true, var, CLEVAL_NN_FP16);
        check_batched_in(3, a_k, 3, b_k, false, var, CLEVAL_NN_FP16);
        check_batched_in(2, a_shared, 3, b_stack, true, var, CLEVAL_NN_FP16);
    }
}

/* ---- elementwise fusion ---- */

/* How many layers run op `op` exactly (the layer's op names what was fused into it). */
static uint32_t layers_running(const cleval_nn *nn, const char *op)
{
    uint32_t count = 0;
    for (uint32_t i = 0; i < cleval_nn_layer_count(nn); i++)
        count += strcmp(cleval_nn_layer_at(nn, i)->op, op) == 0;
    return count;
}

/* Residual and squeeze-excitation blocks (fusion_blocks.onnx) against onnxruntime within 1e-5,
 * batch 7 and batches of 3, both families: every gate and clamp runs inside its Add or Mul. */
static void test_fused_blocks(void **state)
{
    (void)state;
    cleval_dataset *ds;
    assert_ok(cleval_dataset_open(fixture_path("onnx/fusion_io.h5"), &ds));
    uint64_t n, size, n2, width;
    float *x = read_column(ds, "X", &n, &size), *ref = read_column(ds, "scores_ort", &n2, &width);
    assert_int_equal(n, n2);
    float *scores = malloc(n * width * sizeof *scores);
    assert_non_null(scores);
    cleval_onnx_model *model;
    assert_ok(cleval_onnx_load(fixture_path("onnx/fusion_blocks.onnx"), &model));
    FOR_EACH_VARIANT(v)
    {
        cleval_device_set_variant(test_device(), v);
        cleval_nn *nn;
        assert_ok(cleval_nn_create(test_device(), model, &nn));
        assert_int_equal(layers_running(nn, "Add+Relu"), 1);
        assert_int_equal(layers_running(nn, "Mul+Sigmoid"), 1);
        assert_int_equal(layers_running(nn, "Mul+HardSigmoid"), 2);
        assert_int_equal(layers_running(nn, "Add+Clip"), 1);
        static const char *const gone[] = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "Add", "Mul"};
        for (size_t g = 0; g < sizeof gone / sizeof gone[0]; g++)
            if (layers_running(nn, gone[g])) fail_msg("a %s runs as a kernel of its own", gone[g]);
        static const uint32_t batches[] = {7, 3};
        for (size_t b = 0; b < 2; b++) {
            memset(scores, 0, n * width * sizeof *scores);
            for (uint64_t i = 0; i < n; i += batches[b]) {
                uint32_t count = (uint32_t)(n - i < batches[b] ? n - i : batches[b]);
                assert_ok(cleval_nn_run(nn, x + i * size, count, scores + i * width));
            }
            for (uint64_t i = 0; i < n * width; i++)
                if (fabs(scores[i] - ref[i]) > 1e-5 * (1 + fabs(ref[i])))
                    fail_msg("fusion_blocks.onnx batch %u (%s): score %llu is %.7g, onnxruntime "
                             "%.7g",
                             batches[b], cleval_variant_name(v), (unsigned long long)i, scores[i],
                             ref[i]);
        }
        cleval_nn_destroy(nn);
    }
    cleval_onnx_free(model);
    free(scores);
    free(ref);
    free(x);
    cleval_dataset_close(ds);
}

static double sigmoid_ref(double v)
{
    return 1.0 / (1.0 + exp(-v));
}

static double clamp_ref(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Every fusion and where it must not happen, against a plain C reference (both families):
 *   m1 = Sigmoid(s) * x          gate as Mul's first input, s [2, 3, 1, 1] broadcast to x
 *   m2 = m1 * HardSigmoid(x)     alpha 0.3, beta 0.4 (not torch's), x also read elsewhere
 *   r  = Relu(m2 - x)            Sub+Relu
 *   c  = Clip(r / k, -0.5)       Div+Clip with only a lower bound, k a constant
 *   y  = c * t + t, t = Sigmoid(x)   t has two readers: not fused, Mul and Add plain */
static void test_fusion_rules(void **state)
{
    (void)state;
    int64_t xd[4] = {2, 3, 4, 5}, sd[4] = {2, 3, 1, 1}, kd[1] = {5}, scalar[1] = {1};
    float lo = -0.5f, k[5] = {0.5f, -2.0f, 3.0f, 0.25f, -1.0f};
    uint64_t n = count_of(4, xd);
    float *x = random_array(n, -4.0f, 4.0f), *sv = random_array(6, -3.0f, 3.0f);
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 4, xd);
    builder_input(m, "s", 4, sd);
    builder_init(m, "k", 1, kd, k);
    builder_init(m, "lo", 0, scalar, &lo);
    builder_node(m, "Sigmoid", "gate1", "s", "g");
    builder_node(m, "Mul", "mul1", "g,x", "m1");
    cleval_onnx_node *hs = builder_node(m, "HardSigmoid", "gate2", "x", "h");
    attr_float(hs, "alpha", 0.3f);
    attr_float(hs, "beta", 0.4f);
    builder_node(m, "Mul", "mul2", "m1,h", "m2");
    builder_node(m, "Sub", "sub", "m2,x", "d");
    builder_node(m, "Relu", "relu", "d", "r");
    builder_node(m, "Div", "div", "r,k", "q");
    builder_node(m, "Clip", "clip", "q,lo", "c");
    builder_node(m, "Sigmoid", "shared", "x", "t");
    builder_node(m, "Mul", "mul3", "c,t", "u");
    builder_node(m, "Add", "add", "u,t", "y");
    builder_output(m, "y");

    double *want = malloc(n * sizeof *want);
    assert_non_null(want);
    for (uint64_t i = 0; i < n; i++) {
        double xv = x[i], g = sigmoid_ref(sv[i / 20]), t = sigmoid_ref(xv);
        double m2 = g * xv * clamp_ref(0.3 * xv + 0.4, 0.0, 1.0);
        double c = clamp_ref(clamp_ref(m2 - xv, 0.0, INFINITY) / k[i % 5], lo, INFINITY);
        want[i] = c * t + t;
    }
    cleval_nn_tensor in[2] = {tensor(4, xd, x), tensor(4, sd, sv)}, out;
    FOR_EACH_VARIANT(v)
    {
        cleval_device_set_variant(test_device(), v);
        cleval_nn_options options = {.general = true};
        cleval_nn *nn;
        assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
        static const struct {
            const char *op;
            uint32_t count;
        } plan[] = {{"Mul+Sigmoid", 1}, {"Mul+HardSigmoid", 1}, {"Sub+Relu", 1},
                    {"Div+Clip", 1},    {"Sigmoid", 1},         {"Mul", 1},
                    {"Add", 1},         {"HardSigmoid", 0},     {"Relu", 0}};
        for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++)
            if (layers_running(nn, plan[i].op) != plan[i].count)
                fail_msg("%u layers run %s, expected %u (%s)", layers_running(nn, plan[i].op),
                         plan[i].op, plan[i].count, cleval_variant_name(v));
        assert_int_equal(cleval_nn_layer_count(nn), 7);
        assert_ok(cleval_nn_run_graph(nn, in, &out));
        assert_shape(&out, 4, xd);
        for (uint64_t i = 0; i < n; i++)
            if (fabs(out.data[i] - want[i]) > 1e-5 * (1 + fabs(want[i])))
                fail_msg("fusion rules (%s): element %llu is %.7g, expected %.7g",
                         cleval_variant_name(v), (unsigned long long)i, out.data[i], want[i]);
        free(out.data);
        cleval_nn_destroy(nn);
    }
    builder_free(m);
    free(want);
    free(x);
    free(sv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batched_matmul),
        cmocka_unit_test(test_fused_blocks),
        cmocka_unit_test(test_fusion_rules),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
