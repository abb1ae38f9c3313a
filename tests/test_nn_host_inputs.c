/* Host values (computed from tensor shapes, src/nn/fold.c) read by device operators: as Slice
 * bounds, Pad pads and Reduce axes (read at each inference), as data operands (uploaded, and
 * uploaded again when the batch size changes them), a float fill computed from shapes that is
 * the same for every sample, and ScatterND evaluated on the host (against values worked out by
 * hand, and writing a mask built from shapes). Classifiers run at several batch sizes with a
 * partial last batch, on both kernel families, in fp32 and fp16. */
#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_builder.h"
#include "nn_testutil.h"

static const cleval_nn_precision PRECISIONS[] = {CLEVAL_NN_FP32, CLEVAL_NN_FP16};

#define I64(...) ((const int64_t[]){__VA_ARGS__})
#define F32(...) ((const float[]){__VA_ARGS__})
#define WANT(...) ((const double[]){__VA_ARGS__})
#define DIMS(...) ((const int64_t[]){__VA_ARGS__})

/* A full batch, a partial last one, a larger one, one sample, and the first size again. */
static const uint32_t BATCHES[] = {5, 2, 7, 1, 5};
#define MAX_BATCH 7

/* Sample s's score j, worked out by the test; x is the sample's features. */
typedef double (*reference)(const float *x, uint32_t s, uint32_t j, uint32_t n);

static float frand(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*state >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

/* Runs classifier m (freed) with `features` floats per sample and `width` scores at every
 * batch of BATCHES, on both families and precisions, against ref. */
static void expect_scores(cleval_onnx_model *m, uint32_t features, uint32_t width, reference ref)
{
    uint64_t seed = 11;
    float *x = malloc(MAX_BATCH * features * sizeof *x);
    float *scores = malloc(MAX_BATCH * width * sizeof *scores);
    assert_non_null(x);
    assert_non_null(scores);
    for (uint32_t i = 0; i < MAX_BATCH * features; i++)
        x[i] = frand(&seed);
    for (int v = 0; v < 2; v++)
        for (int p = 0; p < 2; p++) {
            cleval_device_set_variant(test_device(), VARIANTS[v]);
            cleval_nn_options options = {.precision = PRECISIONS[p]};
            cleval_nn *nn;
            if (cleval_nn_create_with(test_device(), m, &options, &nn) != CLEVAL_OK)
                fail_msg("%s", cleval_last_error());
            assert_int_equal(cleval_nn_output_width(nn), width);
            for (size_t b = 0; b < sizeof BATCHES / sizeof BATCHES[0]; b++) {
                uint32_t n = BATCHES[b];
                memset(scores, 0, MAX_BATCH * width * sizeof *scores);
                assert_ok(cleval_nn_run(nn, x, n, scores));
                for (uint32_t s = 0; s < n; s++)
                    for (uint32_t j = 0; j < width; j++) {
                        double want = ref(x + s * features, s, j, n);
                        double tol = p ? 0.01 * (1 + fabs(want)) : 1e-5 * (1 + fabs(want));
                        if (fabs(scores[s * width + j] - want) > tol)
                            fail_msg("variant %d precision %d batch %u: sample %u score %u is "
                                     "%.7g, expected %.7g",
                                     v, p, n, s, j, scores[s * width + j], want);
                    }
            }
            cleval_nn_destroy(nn);
        }
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    free(x);
    free(scores);
    builder_free(m);
}

/* "d" = Shape(x)[axis:axis + 1], a 1-D host value. */
static void shape_dim(cleval_onnx_model *m, const char *name, int64_t axis, const char *out)
{
    cleval_onnx_node *n = builder_node(m, "Shape", name, "x", out);
    attr_int(n, "start", axis);
    attr_int(n, "end", axis + 1);
}

static cleval_onnx_node *fill_node(cleval_onnx_model *m, const char *name, const char *shape,
                                   const char *out, float value)
{
    cleval_onnx_node *fill = builder_node(m, "ConstantOfShape", name, shape, out);
    cleval_onnx_attr *a = builder_attr(fill, "value", CLEVAL_ONNX_ATTR_TENSOR);
    a->t = builder_alloc(sizeof *a->t);
    builder_tensor(a->t, "value", 1, DIMS(1), F32(value), NULL);
    return fill;
}

/* ---- shape-like inputs ---- */

/* x [N, 6]: y = Concat(x[:, 1:w/2], x[:, w/3::2]) with w = Shape(x)[1], as shufflenet's channel
 * split computes its bounds: [x1, x2, x2, x4]. */
static double ref_slices(const float *x, uint32_t s, uint32_t j, uint32_t n)
{
    (void)s;
    (void)n;
    static const int column[4] = {1, 2, 2, 4};
    return x[column[j]];
}

static void test_slice_bounds(void **state)
{
    (void)state;
    cleval_onnx_model *m = builder_new(17);
    builder_input(m, "x", 2, DIMS(-1, 6));
    builder_init_i64(m, "one", 1, DIMS(1), I64(1));
    builder_init_i64(m, "two", 1, DIMS(1), I64(2));
    builder_init_i64(m, "three", 1, DIMS(1), I64(3));
    shape_dim(m, "width", 1, "w");
    builder_node(m, "Div", "half", "w,two", "w2");
    builder_node(m, "Div", "third", "w,three", "w3");
    builder_node(m, "Slice", "first", "x,one,w2,one", "a");
    builder_node(m, "Slice", "second", "x,w3,w,one,two", "b");
    attr_int(builder_node(m, "Concat", "join", "a,b", "y"), "axis", 1);
    builder_output(m, "y");
    expect_scores(m, 6, 4, ref_slices);
}

/* x [N, 3] padded at the end of axis 1 by Shape(x)[1] / 3 fives: [x0, x1, x2, 5]. */
static double ref_pad(const float *x, uint32_t s, uint32_t j, uint32_t n)
{
    (void)s;
    (void)n;
    return j < 3 ? x[j] : 5.0;
}

static void test_pad_pads(void **state)
{
    (void)state;
    cleval_onnx_model *m = builder_new(17);
    builder_input(m, "x", 2, DIMS(-1, 3));
    builder_init_i64(m, "zeros", 1, DIMS(3), I64(0, 0, 0));
    builder_init_i64(m, "three", 1, DIMS(1), I64(3));
    builder_init(m, "five", 0, NULL, F32(5));
    shape_dim(m, "width", 1, "w");
    builder_node(m, "Div", "third", "w,three", "k");
    attr_int(builder_node(m, "Concat", "pads", "zeros,k", "p"), "axis", 0);
    builder_node(m, "Pad", "pad", "x,p,five", "y");
    builder_output(m, "y");
    expect_scores(m, 3, 4, ref_pad);
}

/* x [N, 2, 3] summed over its last axis, named by Shape(Shape(x)) - 1: [N, 2]. */
static double ref_reduce(const float *x, uint32_t s, uint32_t j, uint32_t n)
{
    (void)s;
    (void)n;
    return (double)x[3 * j] + x[3 * j + 1] + x[3 * j + 2];
}

static void test_reduce_axes(void **state)
{
    (void)state;
    cleval_onnx_model *m = builder_new(17);
    builder_input(m, "x", 3, DIMS(-1, 2, 3));
    builder_init_i64(m, "one", 1, DIMS(1), I64(1));
    builder_node(m, "Shape", "shape", "x", "s");
    builder_node(m, "Shape", "rank", "s", "r");
    builder_node(m, "Sub", "last", "r,one", "axes");
    attr_int(builder_node(m, "ReduceSum", "sum", "x,axes", "y"), "keepdims", 0);
    builder_output(m, "y");
    expect_scores(m, 6, 2, ref_reduce);
}

/* x [N, 6] split at Shape(x)[1] / 3 into a [N, 2] and b [N, 4]; a goes through Unsqueeze and
 * Squeeze on the axis Shape(Shape(x)) (2); y = Concat(b, a) = [x2, x3, x4, x5, x0, x1]. */
static double ref_split(const float *x, uint32_t s, uint32_t j, uint32_t n)
{
    (void)s;
    (void)n;
    return x[(j + 2) % 6];
}

static void test_split_and_axes(void **state)
{
    (void)state;
    cleval_onnx_model *m = builder_new(17);
    builder_input(m, "x", 2, DIMS(-1, 6));
    builder_init_i64(m, "three", 1, DIMS(1), I64(3));
    shape_dim(m, "width", 1, "w");
    builder_node(m, "Div", "third", "w,three", "k");
    builder_node(m, "Sub", "rest", "w,k", "r");
    attr_int(builder_node(m, "Concat", "sizes", "k,r", "sizes"), "axis", 0);
    attr_int(builder_node(m, "Split", "split", "x,sizes", "a,b"), "axis", 1);
    builder_node(m, "Shape", "shape", "x", "s");
    builder_node(m, "Shape", "rank", "s", "axes");
    builder_node(m, "Unsqueeze", "unsqueeze", "a,axes", "a3");
    builder_node(m, "Squeeze", "squeeze", "a3,axes", "a2");
    attr_int(builder_node(m, "Concat", "join", "b,a2", "y"), "axis", 1);
    builder_output(m, "y");
    expect_scores(m, 6, 6, ref_split);
}

/* ---- data operands ---- */

/* x [N, 4]: y = (x * float(N) + Shape(x)[1]) * sqrt(float(Shape(x)[1])): float(N) changes with
 * the batch, the integer 4 (read as a float) and sqrt(4) do not. */
static double ref_operands(const float *x, uint32_t s, uint32_t j, uint32_t n)
{
    (void)s;
    return ((double)x[j] * n + 4.0) * 2.0;
}

static void test_data_operands(void **state)
{
    (void)state;
    cleval_onnx_model *m = builder_new(17);
    builder_input(m, "x", 2, DIMS(-1, 4));
    builder_init_i64(m, "zero", 0, NULL, I64(0));
    builder_init_i64(m, "one", 0, NULL, I64(1));
    builder_node(m, "Shape", "shape", "x", "s");
    builder_node(m, "Gather", "batch", "s,zero", "n");
    attr_int(builder_node(m, "Cast", "batch_float", "n", "nf"), "to", CLEVAL_ONNX_FLOAT);
    builder_node(m, "Gather", "width", "s,one", "w");
    attr_int(builder_node(m, "Cast", "width_float", "w", "wf"), "to", CLEVAL_ONNX_FLOAT);
    builder_node(m, "Sqrt", "scale", "wf", "sq");
    builder_node(m, "Mul", "times_batch", "x,nf", "t");
    builder_node(m, "Add", "plus_width", "t,w", "u");
    builder_node(m, "Mul", "scaled", "u,sq", "y");
    builder_output(m, "y");
    expect_scores(m, 4, 4, ref_operands);
}

/* x [N, 4] + ConstantOfShape(Shape(x)[1:], 1.5): a float fill of a shape computed from x, the
 * same for every sample. */
static double ref_fill(const float *x, uint32_t s, uint32_t j, uint32_t n)
{
    (void)s;
    (void)n;
    return x[j] + 1.5;
}

static void test_fill_from_shapes(void **state)
{
    (void)state;
    cleval_onnx_model *m = builder_new(17);
    builder_input(m, "x", 2, DIMS(-1, 4));
    shape_dim(m, "width", 1, "w");
    fill_node(m, "fill", "w", "c", 1.5f);
    builder_node(m, "Add", "add", "x,c", "y");
    builder_output(m, "y");
    expect_scores(m, 4, 4, ref_fill);
}

/* ---- ScatterND ---- */

static void test_scatternd_values(void **state)
{
    (void)state;
    /* Rows (k = 1): data [3, 2]; row 2 <- [1, 2], row 0 <- [3, 4]. */
    cleval_onnx_model *m = builder_new(17);
    builder_init_i64(m, "data", 2, DIMS(3, 2), I64(10, 11, 12, 13, 14, 15));
    builder_init_i64(m, "idx", 2, DIMS(2, 1), I64(2, 0));
    builder_init_i64(m, "upd", 2, DIMS(2, 2), I64(1, 2, 3, 4));
    builder_node(m, "ScatterND", "n", "data,idx,upd", "y");
    expect_constant_output(m, "y", 2, DIMS(3, 2), WANT(3, 4, 12, 13, 1, 2), 0);

    /* Elements (k = 2) of float data, a negative index, indices [2, 1, 2]. */
    m = builder_new(17);
    builder_init(m, "data", 2, DIMS(2, 3), F32(0, 0, 0, 0, 0, 0));
    builder_init_i64(m, "idx", 3, DIMS(2, 1, 2), I64(1, -1, 0, 1));
    builder_init(m, "upd", 2, DIMS(2, 1), F32(7.5f, -2));
    builder_node(m, "ScatterND", "n", "data,idx,upd", "y");
    expect_constant_output(m, "y", 2, DIMS(2, 3), WANT(0, -2, 0, 0, 0, 7.5), 0);

    /* k = 0: the whole tensor is replaced. */
    m = builder_new(17);
    builder_init(m, "data", 1, DIMS(2), F32(1, 2));
    builder_init_i64(m, "idx", 1, DIMS(0), I64(0)); /* no entries */
    builder_init(m, "upd", 1, DIMS(2), F32(8, 9));
    builder_node(m, "ScatterND", "n", "data,idx,upd", "y");
    expect_constant_output(m, "y", 1, DIMS(2), WANT(8, 9), 0);
}

/* x [N, 4] + mask, mask = ScatterND(ConstantOfShape(Shape(x)[1:], 0), [[1], [3]], [7, 9]):
 * the float fill moves to the host so that ScatterND (host only) can write it. */
static double ref_mask(const float *x, uint32_t s, uint32_t j, uint32_t n)
{
    (void)s;
    (void)n;
    static const double mask[4] = {0, 7, 0, 9};
    return x[j] + mask[j];
}

static void test_scatternd_mask(void **state)
{
    (void)state;
    cleval_onnx_model *m = builder_new(17);
    builder_input(m, "x", 2, DIMS(-1, 4));
    builder_init_i64(m, "idx", 2, DIMS(2, 1), I64(1, 3));
    builder_init(m, "upd", 1, DIMS(2), F32(7, 9));
    shape_dim(m, "width", 1, "w");
    fill_node(m, "zeros", "w", "z", 0.0f);
    builder_node(m, "ScatterND", "scatter", "z,idx,upd", "mask");
    builder_node(m, "Add", "add", "x,mask", "y");
    builder_output(m, "y");
    expect_scores(m, 4, 4, ref_mask);
}

static void expect_unsupported(cleval_onnx_model *m, const char *a, const char *b)
{
    cleval_nn_options options = {.general = true};
    cleval_nn *nn = (cleval_nn *)0x1;
    assert_int_equal(cleval_nn_create_with(test_device(), m, &options, &nn),
                     CLEVAL_ERR_UNSUPPORTED);
    assert_null(nn);
    const char *message = cleval_last_error();
    if (!strstr(message, a) || !strstr(message, b))
        fail_msg("'%s' and '%s' expected in: %s", a, b, message);
    builder_free(m);
}

static void test_refusals(void **state)
{
    (void)state;
    cleval_onnx_model *m = builder_new(17);
    builder_init(m, "data", 1, DIMS(2), F32(1, 2));
    builder_init_i64(m, "idx", 2, DIMS(1, 1), I64(0));
    builder_init(m, "upd", 1, DIMS(1), F32(5));
    attr_string(builder_node(m, "ScatterND", "n", "data,idx,upd", "y"), "reduction", "add");
    builder_output(m, "y");
    expect_unsupported(m, "node 'n' (ScatterND)", "reduction=add is not supported");

    /* ScatterND writing into the network's input itself stays refused. */
    m = builder_new(17);
    builder_input(m, "x", 2, DIMS(-1, 4));
    builder_init_i64(m, "idx", 2, DIMS(1, 1), I64(0));
    builder_init(m, "upd", 2, DIMS(1, 4), F32(1, 2, 3, 4));
    builder_node(m, "ScatterND", "scatter", "x,idx,upd", "y");
    builder_output(m, "y");
    expect_unsupported(m, "node 'scatter' (ScatterND)", "supported on constants and tensor shapes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slice_bounds),     cmocka_unit_test(test_pad_pads),
        cmocka_unit_test(test_reduce_axes),      cmocka_unit_test(test_split_and_axes),
        cmocka_unit_test(test_data_operands),    cmocka_unit_test(test_fill_from_shapes),
        cmocka_unit_test(test_scatternd_values), cmocka_unit_test(test_scatternd_mask),
        cmocka_unit_test(test_refusals),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
