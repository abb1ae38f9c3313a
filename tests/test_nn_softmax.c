/* Softmax and LogSoftmax along the last axis, the CPU family's softmax_rows (each row on float16
 * vectors and a scalar tail) and the GPU family's softmax, against a plain C reference in double
 * with the maximum subtracted: rows 1, a prime, one more than a CPU work-group; row lengths 1, 7,
 * 256, 1000, 1025 and empty; fp32 and half storage; rows holding +-1000, -inf, +inf and NaN; and
 * which kernel each family runs. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_builder.h"
#define NN_TEST_SEED 4242 /* the seed of this program's random inputs */
#include "nn_testutil.h"

/* x -> Mul(1) -> (Log)Softmax(axis -1) -> Mul(1) -> y: the multiplications by one keep the
 * op's input and output inside the graph, so with fp16 both are stored as half. */
static cleval_onnx_model *softmax_model(bool log, const int64_t *dims)
{
    static const float one = 1.0f;
    int64_t d = 1;
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 2, dims);
    builder_init(m, "one", 1, &d, &one);
    builder_node(m, "Mul", "into", "x,one", "a");
    attr_int(builder_node(m, log ? "LogSoftmax" : "Softmax", "sm", "a", "b"), "axis", -1);
    builder_node(m, "Mul", "out_of", "b,one", "y");
    builder_output(m, "y");
    return m;
}

/* The (log-)softmax of each row of x [rows, len] in double: the row maximum first (fmax skips
 * NaN, as the kernels do), then the sum of exp(x - max). */
static void ref_softmax(bool log_output, const float *x, uint64_t rows, uint64_t len, double *y)
{
    for (uint64_t r = 0; r < rows; r++) {
        const float *row = x + r * len;
        double m = -INFINITY, sum = 0;
        for (uint64_t j = 0; j < len; j++)
            m = fmax(m, row[j]);
        for (uint64_t j = 0; j < len; j++)
            sum += exp(row[j] - m);
        for (uint64_t j = 0; j < len; j++)
            y[r * len + j] = log_output ? row[j] - m - log(sum) : exp(row[j] - m) / sum;
    }
}

/* Special rows where there are enough: overflow without the max subtraction, a -inf (weight
 * 0), a +inf and a NaN (the row turns NaN). */
static void special_rows(float *x, uint64_t rows, uint64_t len)
{
    if (rows < 5 || len < 3) return;
    x[0 * len + 1] = 1000.0f;
    x[1 * len + len - 1] = -1000.0f;
    x[2 * len + len / 2] = -INFINITY;
    x[3 * len] = INFINITY;
    x[4 * len + len - 2] = NAN;
}

static void check_softmax_rows(bool log, uint64_t rows, uint64_t len, cleval_kernel_variant variant,
                               cleval_nn_precision precision)
{
    bool fp16 = precision == CLEVAL_NN_FP16;
    int64_t dims[2] = {(int64_t)rows, (int64_t)len};
    uint64_t n = rows * len;
    float *x = random_array(n, -8.0f, 8.0f);
    special_rows(x, rows, len);
    float *stored = malloc((n ? n : 1) * sizeof *stored);
    double *want = malloc((n ? n : 1) * sizeof *want);
    assert_true(stored && want);
    for (uint64_t i = 0; i < n; i++)
        stored[i] = fp16 ? hround(x[i]) : x[i];
    ref_softmax(log, stored, rows, len, want);
    cleval_onnx_model *m = softmax_model(log, dims);
    cleval_nn_tensor in = tensor(2, dims, x), out = {0};
    run_general(m, variant, precision, &in, &out);
    char what[128];
    snprintf(what, sizeof what, "%s rows %llu len %llu (%s%s)", log ? "LogSoftmax" : "Softmax",
             (unsigned long long)rows, (unsigned long long)len, cleval_variant_name(variant),
             fp16 ? " fp16" : "");
    assert_shape(&out, 2, dims);
    const float *got = out.data;
    for (uint64_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        if (isnan(w) && isnan(g)) continue;
        if (isinf(w) && g == w) continue;
        /* float: a few ulps of the result plus the rounding of sums of up to 1025 terms;
         * half: the output's rounding, one half ulp, on top */
        double tol = 1e-6 + 2e-6 * fabs(w) + (fp16 ? half_ulp(w) : 0.0);
        if (!(fabs(g - w) <= tol))
            fail_msg("%s: element %llu is %.9g, expected %.9g (tolerance %.3g)", what,
                     (unsigned long long)i, g, w, tol);
    }
    free(out.data);
    builder_free(m);
    free(x);
    free(stored);
    free(want);
}

static void test_softmax_rows(void **state)
{
    (void)state;
    /* rows: 1, a prime, one more than the CPU family's work-group (256); row lengths: 1, 7 (a
     * tail only), 256 (vectors only), 1000 and 1025 (both), 0 (empty) */
    static const uint64_t shapes[][2] = {{1, 1000}, {13, 7},   {257, 256}, {13, 1025},
                                         {257, 1},  {1, 1},    {13, 1000}, {1, 1025},
                                         {257, 7},  {13, 256}, {3, 0}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t v = 0; v < N_VARIANTS; v++)
            for (int p = 0; p < 2; p++)
                for (int lg = 0; lg < 2; lg++)
                    check_softmax_rows(lg, shapes[s][0], shapes[s][1], VARIANTS[v],
                                       p ? CLEVAL_NN_FP16 : CLEVAL_NN_FP32);
}

/* The kernel Softmax runs: softmax_rows on the CPU family along the last axis, softmax along
 * another axis (its rows are strided) and on the GPU family. */
static void test_softmax_kernel_per_family(void **state)
{
    (void)state;
    int64_t dims[3] = {2, 3, 40};
    for (size_t v = 0; v < N_VARIANTS; v++)
        for (int64_t axis = 1; axis <= 2; axis++) {
            cleval_onnx_model *m = builder_new(13);
            builder_input(m, "x", 3, dims);
            attr_int(builder_node(m, "Softmax", "sm", "x", "y"), "axis", axis);
            builder_output(m, "y");
            cleval_device_set_variant(test_device(), VARIANTS[v]);
            cleval_nn_options options = {.general = true};
            cleval_nn *nn;
            assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
            const char *want =
                VARIANTS[v] == CLEVAL_VARIANT_CPU && axis == 2 ? "softmax_rows" : "softmax";
            const char *got = NULL;
            for (uint32_t i = 0; i < cleval_nn_layer_count(nn); i++)
                if (strcmp(cleval_nn_layer_at(nn, i)->op, "Softmax") == 0)
                    got = cleval_nn_layer_at(nn, i)->kernel;
            if (!got || strcmp(got, want) != 0)
                fail_msg("Softmax axis %lld (%s) ran %s, expected %s", (long long)axis,
                         cleval_variant_name(VARIANTS[v]), got ? got : "nothing", want);
            cleval_nn_destroy(nn);
            cleval_device_set_variant(test_device(), VARIANTS[0]);
            builder_free(m);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_rows),
        cmocka_unit_test(test_softmax_kernel_per_family),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
