/* Constant folding and shape arithmetic on the host (src/nn/fold.c): every host evaluator
 * against values worked out by hand, weights reached through Identity / Transpose / Mul of
 * initializers (as PyTorch's exporter writes them) in a Conv + BatchNormalization classifier,
 * reshapes and Expand / ConstantOfShape with shapes computed from Shape(x) at several batch
 * sizes, both kernel families and fp16, the CLI on such a model, and the refusals. */
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
#include "onnx_writer.h"

#define I64(...) ((const int64_t[]){__VA_ARGS__})
#define F32(...) ((const float[]){__VA_ARGS__})
#define WANT(...) ((const double[]){__VA_ARGS__})
#define DIMS(...) ((const int64_t[]){__VA_ARGS__})

/* ---- host evaluators: graphs of constants, folded at load ---- */

static void init_f(cleval_onnx_model *m, const char *name, uint32_t rank, const int64_t *dims,
                   const float *data)
{
    builder_init(m, name, rank, dims, data);
}

static void init_i(cleval_onnx_model *m, const char *name, uint32_t rank, const int64_t *dims,
                   const int64_t *data)
{
    builder_init_i64(m, name, rank, dims, data);
}

/* A model of one node `op_type` reading the initializers already in m. */
static cleval_onnx_node *one_node(cleval_onnx_model *m, const char *op_type, const char *inputs)
{
    return builder_node(m, op_type, "n", inputs, "y");
}

static void test_cast_and_views(void **state)
{
    (void)state;
    cleval_onnx_model *m = builder_new(13);
    init_f(m, "a", 1, DIMS(4), F32(1.7f, -1.7f, 2.5f, 0.0f));
    attr_int(one_node(m, "Cast", "a"), "to", CLEVAL_ONNX_INT32);
    expect_constant_output(m, "y", 1, DIMS(4), WANT(1, -1, 2, 0), 1e-6);

    m = builder_new(13);
    init_i(m, "a", 1, DIMS(4), I64(5, 0, -2, 4294967297));
    attr_int(one_node(m, "Cast", "a"), "to", CLEVAL_ONNX_BOOL);
    expect_constant_output(m, "y", 1, DIMS(4), WANT(1, 0, 1, 1), 1e-6);

    m = builder_new(13);
    init_i(m, "a", 1, DIMS(2), I64(4294967297, -3));
    attr_int(one_node(m, "Cast", "a"), "to", CLEVAL_ONNX_INT32); /* wraps to 32 bits */
    expect_constant_output(m, "y", 1, DIMS(2), WANT(1, -3), 1e-6);

    m = builder_new(13);
    init_f(m, "a", 2, DIMS(2, 3), F32(0, 1, 2, 3, 4, 5));
    init_i(m, "s", 1, DIMS(2), I64(3, -1));
    one_node(m, "Reshape", "a,s");
    expect_constant_output(m, "y", 2, DIMS(3, 2), WANT(0, 1, 2, 3, 4, 5), 1e-6);

    m = builder_new(13);
    init_f(m, "a", 3, DIMS(2, 3, 1), F32(0, 1, 2, 3, 4, 5));
    attr_int(one_node(m, "Flatten", "a"), "axis", 2);
    expect_constant_output(m, "y", 2, DIMS(6, 1), WANT(0, 1, 2, 3, 4, 5), 1e-6);

    m = builder_new(13);
    init_f(m, "a", 1, DIMS(2), F32(7, 8));
    builder_node(m, "Identity", "i", "a", "b");
    builder_node(m, "Dropout", "d", "b", "y");
    expect_constant_output(m, "y", 1, DIMS(2), WANT(7, 8), 1e-6);
}

static void test_transpose_squeeze_unsqueeze(void **state)
{
    (void)state;
    float v[12];
    for (int i = 0; i < 12; i++)
        v[i] = (float)i;
    /* in[i][j][k] = 6i + 2j + k; out[k][i][j] = in[i][j][k]. */
    cleval_onnx_model *m = builder_new(13);
    init_f(m, "a", 3, DIMS(2, 3, 2), v);
    attr_ints(one_node(m, "Transpose", "a"), "perm", 3, I64(2, 0, 1));
    expect_constant_output(m, "y", 3, DIMS(2, 2, 3), WANT(0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11),
                           1e-6);

    m = builder_new(13);
    init_i(m, "a", 2, DIMS(2, 3), I64(0, 1, 2, 3, 4, 5));
    one_node(m, "Transpose", "a"); /* no perm: axes reversed */
    expect_constant_output(m, "y", 2, DIMS(3, 2), WANT(0, 3, 1, 4, 2, 5), 1e-6);

    m = builder_new(11);
    init_f(m, "a", 3, DIMS(1, 3, 1), F32(1, 2, 3));
    attr_ints(one_node(m, "Squeeze", "a"), "axes", 1, I64(0));
    expect_constant_output(m, "y", 2, DIMS(3, 1), WANT(1, 2, 3), 1e-6);

    m = builder_new(13);
    init_f(m, "a", 3, DIMS(1, 3, 1), F32(1, 2, 3));
    init_i(m, "axes", 1, DIMS(1), I64(-1));
    one_node(m, "Squeeze", "a,axes");
    expect_constant_output(m, "y", 2, DIMS(1, 3), WANT(1, 2, 3), 1e-6);

    m = builder_new(13);
    init_f(m, "a", 3, DIMS(1, 3, 1), F32(1, 2, 3));
    one_node(m, "Squeeze", "a"); /* every axis of size 1 */
    expect_constant_output(m, "y", 1, DIMS(3), WANT(1, 2, 3), 1e-6);

    m = builder_new(11);
    init_i(m, "a", 2, DIMS(2, 3), I64(0, 1, 2, 3, 4, 5));
    attr_ints(one_node(m, "Unsqueeze", "a"), "axes", 2, I64(0, 3));
    expect_constant_output(m, "y", 4, DIMS(1, 2, 3, 1), WANT(0, 1, 2, 3, 4, 5), 1e-6);

    m = builder_new(13);
    init_i(m, "a", 0, NULL, I64(9));
    init_i(m, "axes", 1, DIMS(1), I64(-1));
    one_node(m, "Unsqueeze", "a,axes");
    expect_constant_output(m, "y", 1, DIMS(1), WANT(9), 1e-6);
}

static void test_concat_gather_slice(void **state)
{
    (void)state;
    cleval_onnx_model *m = builder_new(13);
    init_f(m, "a", 2, DIMS(2, 1), F32(1, 2));
    init_f(m, "b", 2, DIMS(2, 2), F32(3, 4, 5, 6));
    attr_int(one_node(m, "Concat", "a,b"), "axis", -1);
    expect_constant_output(m, "y", 2, DIMS(2, 3), WANT(1, 3, 4, 2, 5, 6), 1e-6);

    m = builder_new(13);
    init_i(m, "a", 1, DIMS(1), I64(-1));
    init_i(m, "b", 1, DIMS(2), I64(4, 5));
    attr_int(one_node(m, "Concat", "a,b,a"), "axis", 0);
    expect_constant_output(m, "y", 1, DIMS(4), WANT(-1, 4, 5, -1), 1e-6);

    m = builder_new(13);
    init_f(m, "a", 2, DIMS(2, 3), F32(0, 1, 2, 3, 4, 5));
    init_i(m, "i", 1, DIMS(2), I64(2, -3));
    attr_int(one_node(m, "Gather", "a,i"), "axis", 1);
    expect_constant_output(m, "y", 2, DIMS(2, 2), WANT(2, 0, 5, 3), 1e-6);

    m = builder_new(13);
    init_i(m, "a", 1, DIMS(3), I64(7, 8, 9));
    init_i(m, "i", 0, NULL, I64(1));
    one_node(m, "Gather", "a,i"); /* a scalar index drops the axis */
    expect_constant_output(m, "y", 0, NULL, WANT(8), 1e-6);

    float v[10];
    for (int i = 0; i < 10; i++)
        v[i] = (float)i;
    m = builder_new(13);
    init_f(m, "a", 1, DIMS(10), v);
    init_i(m, "s", 1, DIMS(1), I64(8));
    init_i(m, "e", 1, DIMS(1), I64(1));
    init_i(m, "ax", 1, DIMS(1), I64(0));
    init_i(m, "st", 1, DIMS(1), I64(-3));
    one_node(m, "Slice", "a,s,e,ax,st");
    expect_constant_output(m, "y", 1, DIMS(3), WANT(8, 5, 2), 1e-6);

    m = builder_new(13);
    init_f(m, "a", 1, DIMS(10), v);
    init_i(m, "s", 1, DIMS(1), I64(-3));
    init_i(m, "e", 1, DIMS(1), I64(INT64_MAX));
    one_node(m, "Slice", "a,s,e");
    expect_constant_output(m, "y", 1, DIMS(3), WANT(7, 8, 9), 1e-6);

    m = builder_new(13);
    init_f(m, "a", 1, DIMS(10), v);
    init_i(m, "s", 1, DIMS(1), I64(INT64_MAX));
    init_i(m, "e", 1, DIMS(1), I64(INT64_MIN));
    init_i(m, "ax", 1, DIMS(1), I64(-1));
    init_i(m, "st", 1, DIMS(1), I64(-4)); /* reversed, clamped to the axis */
    one_node(m, "Slice", "a,s,e,ax,st");
    expect_constant_output(m, "y", 1, DIMS(3), WANT(9, 5, 1), 1e-6);

    m = builder_new(13);
    init_f(m, "a", 2, DIMS(2, 3), F32(0, 1, 2, 3, 4, 5));
    init_i(m, "s", 1, DIMS(1), I64(1));
    init_i(m, "e", 1, DIMS(1), I64(100));
    init_i(m, "ax", 1, DIMS(1), I64(1));
    one_node(m, "Slice", "a,s,e,ax");
    expect_constant_output(m, "y", 2, DIMS(2, 2), WANT(1, 2, 4, 5), 1e-6);

    m = builder_new(9);
    init_f(m, "a", 1, DIMS(4), F32(0, 1, 2, 3));
    cleval_onnx_node *n = one_node(m, "Slice", "a");
    attr_ints(n, "starts", 1, I64(1));
    attr_ints(n, "ends", 1, I64(-1));
    expect_constant_output(m, "y", 1, DIMS(2), WANT(1, 2), 1e-6);
}

static void test_shapes_and_generators(void **state)
{
    (void)state;
    float v[120] = {0};
    cleval_onnx_model *m = builder_new(15);
    init_f(m, "a", 4, DIMS(2, 3, 4, 5), v);
    cleval_onnx_node *n = one_node(m, "Shape", "a");
    attr_int(n, "start", 1);
    attr_int(n, "end", -1);
    expect_constant_output(m, "y", 1, DIMS(2), WANT(3, 4), 1e-6);

    m = builder_new(13);
    init_f(m, "a", 4, DIMS(2, 3, 4, 5), v);
    one_node(m, "Size", "a");
    expect_constant_output(m, "y", 0, NULL, WANT(120), 1e-6);

    m = builder_new(13);
    init_i(m, "s", 1, DIMS(2), I64(2, 3));
    cleval_onnx_node *c = one_node(m, "ConstantOfShape", "s");
    cleval_onnx_attr *a = builder_attr(c, "value", CLEVAL_ONNX_ATTR_TENSOR);
    a->t = builder_alloc(sizeof *a->t);
    builder_tensor(a->t, "value", 1, DIMS(1), NULL, I64(7));
    expect_constant_output(m, "y", 2, DIMS(2, 3), WANT(7, 7, 7, 7, 7, 7), 1e-6);

    m = builder_new(13);
    init_i(m, "s", 1, DIMS(1), I64(3));
    one_node(m, "ConstantOfShape", "s"); /* float 0 when no value is given */
    expect_constant_output(m, "y", 1, DIMS(3), WANT(0, 0, 0), 1e-6);

    m = builder_new(13);
    init_f(m, "a", 0, NULL, F32(1));
    init_f(m, "b", 0, NULL, F32(2));
    init_f(m, "d", 0, NULL, F32(0.25f));
    one_node(m, "Range", "a,b,d");
    expect_constant_output(m, "y", 1, DIMS(4), WANT(1, 1.25, 1.5, 1.75), 1e-6);

    m = builder_new(13);
    init_i(m, "a", 0, NULL, I64(10));
    init_i(m, "b", 0, NULL, I64(4));
    init_i(m, "d", 0, NULL, I64(-3));
    one_node(m, "Range", "a,b,d");
    expect_constant_output(m, "y", 1, DIMS(2), WANT(10, 7), 1e-6);

    m = builder_new(13);
    init_f(m, "a", 2, DIMS(3, 1), F32(1, 2, 3));
    init_i(m, "s", 1, DIMS(3), I64(2, 1, 2));
    one_node(m, "Expand", "a,s");
    expect_constant_output(m, "y", 3, DIMS(2, 3, 2), WANT(1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3),
                           1e-6);

    m = builder_new(13);
    init_i(m, "a", 2, DIMS(1, 2), I64(1, 2));
    init_i(m, "r", 1, DIMS(2), I64(2, 3));
    one_node(m, "Tile", "a,r");
    expect_constant_output(m, "y", 2, DIMS(2, 6), WANT(1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2), 1e-6);
}

/* y = op(a, b) on two initializers of the given values. */
static void binary_case(const char *op_type, bool ints, uint32_t ra, const int64_t *da,
                        const double *a, uint32_t rb, const int64_t *db, const double *b,
                        int64_t fmod, uint32_t ry, const int64_t *dy, const double *want)
{
    cleval_onnx_model *m = builder_new(13);
    const double *vals[2] = {a, b};
    const int64_t *dims[2] = {da, db};
    uint32_t ranks[2] = {ra, rb};
    for (int k = 0; k < 2; k++) {
        uint64_t n = 1;
        for (uint32_t i = 0; i < ranks[k]; i++)
            n *= (uint64_t)dims[k][i];
        float f[16];
        int64_t l[16];
        for (uint64_t i = 0; i < n; i++) {
            f[i] = (float)vals[k][i];
            l[i] = (int64_t)vals[k][i];
        }
        if (ints)
            init_i(m, k ? "b" : "a", ranks[k], dims[k], l);
        else
            init_f(m, k ? "b" : "a", ranks[k], dims[k], f);
    }
    cleval_onnx_node *n = one_node(m, op_type, "a,b");
    if (fmod >= 0) attr_int(n, "fmod", fmod);
    expect_constant_output(m, "y", ry, dy, want, 1e-6);
}

static void test_arithmetic(void **state)
{
    (void)state;
    binary_case("Add", false, 2, DIMS(2, 1), WANT(1, 2), 1, DIMS(3), WANT(10, 20, 30), -1, 2,
                DIMS(2, 3), WANT(11, 21, 31, 12, 22, 32));
    binary_case("Sub", true, 1, DIMS(2), WANT(5, 1), 0, NULL, WANT(3), -1, 1, DIMS(2), WANT(2, -2));
    binary_case("Mul", true, 1, DIMS(2), WANT(-4, 6), 1, DIMS(2), WANT(3, 7), -1, 1, DIMS(2),
                WANT(-12, 42));
    /* Integer division truncates toward zero, as onnxruntime's. */
    binary_case("Div", true, 1, DIMS(3), WANT(-7, 7, -7), 1, DIMS(3), WANT(2, -2, 7), -1, 1,
                DIMS(3), WANT(-3, -3, -1));
    binary_case("Div", false, 1, DIMS(1), WANT(-7), 1, DIMS(1), WANT(2), -1, 1, DIMS(1),
                WANT(-3.5));
    /* Mod takes the divisor's sign; fmod=1 the dividend's. */
    binary_case("Mod", true, 1, DIMS(3), WANT(-7, 7, 5), 1, DIMS(3), WANT(3, -3, 5), 0, 1, DIMS(3),
                WANT(2, -2, 0));
    binary_case("Mod", true, 1, DIMS(2), WANT(-7, 7), 1, DIMS(2), WANT(3, -3), 1, 1, DIMS(2),
                WANT(-1, 1));
    binary_case("Mod", false, 1, DIMS(1), WANT(5.5), 1, DIMS(1), WANT(-2), 1, 1, DIMS(1),
                WANT(1.5));
    binary_case("Pow", true, 1, DIMS(2), WANT(3, -2), 1, DIMS(2), WANT(4, 3), -1, 1, DIMS(2),
                WANT(81, -8));
    binary_case("Pow", false, 1, DIMS(1), WANT(2), 1, DIMS(1), WANT(0.5), -1, 1, DIMS(1),
                WANT(sqrt(2.0)));
    binary_case("Equal", true, 1, DIMS(3), WANT(1, 2, 3), 1, DIMS(3), WANT(1, 0, 3), -1, 1, DIMS(3),
                WANT(1, 0, 1));
    binary_case("Less", false, 1, DIMS(3), WANT(1, 2, 3), 0, NULL, WANT(2), -1, 1, DIMS(3),
                WANT(1, 0, 0));
    binary_case("Greater", false, 1, DIMS(3), WANT(1, 2, 3), 0, NULL, WANT(2), -1, 1, DIMS(3),
                WANT(0, 0, 1));
    binary_case("And", true, 1, DIMS(4), WANT(0, 0, 1, 1), 1, DIMS(4), WANT(0, 1, 0, 1), -1, 1,
                DIMS(4), WANT(0, 0, 0, 1));
    binary_case("Or", true, 1, DIMS(4), WANT(0, 0, 1, 1), 1, DIMS(4), WANT(0, 1, 0, 1), -1, 1,
                DIMS(4), WANT(0, 1, 1, 1));

    cleval_onnx_model *m = builder_new(13);
    init_i(m, "a", 1, DIMS(3), I64(5, -1, 9));
    init_i(m, "b", 0, NULL, I64(2));
    init_i(m, "c", 1, DIMS(3), I64(4, 4, -3));
    one_node(m, "Min", "a,b,c");
    expect_constant_output(m, "y", 1, DIMS(3), WANT(2, -1, -3), 1e-6);

    m = builder_new(13);
    init_f(m, "a", 1, DIMS(2), F32(5, -1));
    init_f(m, "b", 0, NULL, F32(2));
    init_f(m, "c", 1, DIMS(2), F32(4, 4));
    one_node(m, "Max", "a,b,c");
    expect_constant_output(m, "y", 1, DIMS(2), WANT(5, 4), 1e-6);

    const char *unary[] = {"Neg", "Abs", "Not"};
    const double want[][3] = {{3, -2, 0}, {3, 2, 0}, {0, 0, 1}};
    for (int i = 0; i < 3; i++) {
        m = builder_new(13);
        init_i(m, "a", 1, DIMS(3), I64(-3, 2, 0));
        one_node(m, unary[i], "a");
        expect_constant_output(m, "y", 1, DIMS(3), want[i], 1e-6);
    }
    m = builder_new(13);
    init_f(m, "a", 1, DIMS(2), F32(4, 2.25f));
    one_node(m, "Sqrt", "a");
    expect_constant_output(m, "y", 1, DIMS(2), WANT(2, 1.5), 1e-6);

    m = builder_new(13);
    init_i(m, "c", 1, DIMS(3), I64(1, 0, 1));
    init_f(m, "x", 0, NULL, F32(9));
    init_f(m, "z", 1, DIMS(3), F32(1, 2, 3));
    one_node(m, "Where", "c,x,z");
    expect_constant_output(m, "y", 1, DIMS(3), WANT(9, 2, 9), 1e-6);
}

/* ---- classifiers ---- */

static float frand(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*state >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

static cleval_nn *create_classifier(cleval_onnx_model *m, cleval_kernel_variant variant,
                                    cleval_nn_precision precision)
{
    cleval_device_set_variant(test_device(), variant);
    cleval_nn_options options = {.precision = precision};
    cleval_nn *nn;
    if (cleval_nn_create_with(test_device(), m, &options, &nn) != CLEVAL_OK)
        fail_msg("%s", cleval_last_error());
    return nn;
}

/* Conv and BatchNormalization whose weights and statistics are reached through Identity,
 * Transpose and Mul of initializers, as a fresh torchvision export stores them. */
static void test_shared_weights(void **state)
{
    (void)state;
    enum { C = 2, K = 5, CO = 3 };
    uint64_t seed = 7;
    float wt[C * CO * K * K], b[CO], scale[CO], shift[CO], mean[CO], var[CO];
    for (int i = 0; i < C * CO * K * K; i++)
        wt[i] = frand(&seed);
    for (int i = 0; i < CO; i++) {
        b[i] = frand(&seed);
        scale[i] = frand(&seed);
        shift[i] = frand(&seed);
        mean[i] = frand(&seed);
        var[i] = 1.5f + frand(&seed);
    }
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 4, DIMS(-1, C, K, K));
    init_f(m, "wt", 4, DIMS(C, CO, K, K), wt); /* stored [C, CO]: transposed back below */
    init_f(m, "b", 1, DIMS(CO), b);
    init_f(m, "two", 0, NULL, F32(2));
    init_f(m, "half_var", 1, DIMS(CO), var);
    init_f(m, "scale", 1, DIMS(CO), scale);
    init_f(m, "shift", 1, DIMS(CO), shift);
    init_f(m, "mean", 1, DIMS(CO), mean);
    attr_ints(builder_node(m, "Transpose", "t", "wt", "w"), "perm", 4, I64(1, 0, 2, 3));
    builder_node(m, "Identity", "i1", "b", "b_shared");
    builder_node(m, "Identity", "i2", "mean", "mean_shared");
    builder_node(m, "Mul", "m", "half_var,two", "var2"); /* var is 2 * half_var */
    builder_node(m, "Conv", "conv", "x,w,b_shared", "c");
    builder_node(m, "BatchNormalization", "bn", "c,scale,shift,mean_shared,var2", "bn_out");
    builder_node(m, "Flatten", "f", "bn_out", "y");
    builder_output(m, "y");

    const uint32_t n = 3;
    float x[n * C * K * K], scores[n * CO];
    double want[n * CO];
    for (uint32_t i = 0; i < n * C * K * K; i++)
        x[i] = frand(&seed);
    for (uint32_t s = 0; s < n; s++)
        for (int o = 0; o < CO; o++) {
            double acc = b[o];
            for (int c = 0; c < C; c++)
                for (int k = 0; k < K * K; k++)
                    acc += (double)x[(s * C + c) * K * K + k] * wt[(c * CO + o) * K * K + k];
            want[s * CO + o] = (acc - mean[o]) / sqrt(2.0 * var[o] + 1e-5) * scale[o] + shift[o];
        }
    for (int v = 0; v < 2; v++) {
        cleval_nn *nn = create_classifier(m, VARIANTS[v], CLEVAL_NN_FP32);
        assert_ok(cleval_nn_run(nn, x, n, scores));
        for (uint32_t i = 0; i < n * CO; i++)
            if (fabs(scores[i] - want[i]) > 1e-4 * (1 + fabs(want[i])))
                fail_msg("variant %d: score %u is %.7g, expected %.7g", v, i, scores[i], want[i]);
        cleval_nn_destroy(nn);
    }
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    builder_free(m);
}

/* x [N, 2, 2] reshaped to [N, 4] with a shape computed from Shape(x); plus a constant row
 * expanded to [N, 4] through the Where(Equal(ConstantOfShape * -1, shape), 1, shape) pattern of
 * exported transformers, plus a float ConstantOfShape of the computed shape. */
static cleval_onnx_model *computed_shape_model(const float *row)
{
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 3, DIMS(-1, 2, 2));
    init_i(m, "zero", 0, NULL, I64(0));
    init_i(m, "axes0", 1, DIMS(1), I64(0));
    init_i(m, "four", 1, DIMS(1), I64(4));
    init_i(m, "minus1", 0, NULL, I64(-1));
    init_f(m, "row", 2, DIMS(1, 4), row);
    builder_node(m, "Shape", "shape", "x", "s");
    builder_node(m, "Gather", "gather", "s,zero", "n");
    builder_node(m, "Unsqueeze", "unsqueeze", "n,axes0", "n1");
    attr_int(builder_node(m, "Concat", "concat", "n1,four", "target"), "axis", 0);
    builder_node(m, "Reshape", "reshape", "x,target", "flat");
    builder_node(m, "Shape", "shape_of_target", "target", "ts");
    cleval_onnx_node *ones = builder_node(m, "ConstantOfShape", "ones", "ts", "one");
    cleval_onnx_attr *a = builder_attr(ones, "value", CLEVAL_ONNX_ATTR_TENSOR);
    a->t = builder_alloc(sizeof *a->t);
    builder_tensor(a->t, "value", 1, DIMS(1), NULL, I64(1));
    builder_node(m, "Mul", "negate", "one,minus1", "neg");
    builder_node(m, "Equal", "equal", "target,neg", "eq");
    builder_node(m, "Where", "where", "eq,one,target", "w");
    builder_node(m, "Expand", "expand", "row,w", "rows");
    cleval_onnx_node *fill = builder_node(m, "ConstantOfShape", "fill", "target", "halves");
    a = builder_attr(fill, "value", CLEVAL_ONNX_ATTR_TENSOR);
    a->t = builder_alloc(sizeof *a->t);
    builder_tensor(a->t, "value", 1, DIMS(1), F32(0.5f), NULL);
    builder_node(m, "Add", "add1", "flat,rows", "sum1");
    builder_node(m, "Add", "add2", "sum1,halves", "y");
    builder_output(m, "y");
    return m;
}

static void test_computed_shapes(void **state)
{
    (void)state;
    const float row[4] = {10, 20, 30, 40};
    cleval_onnx_model *m = computed_shape_model(row);
    uint64_t seed = 3;
    float x[7 * 4], scores[7 * 4];
    for (int i = 0; i < 7 * 4; i++)
        x[i] = frand(&seed);
    const cleval_nn_precision precisions[] = {CLEVAL_NN_FP32, CLEVAL_NN_FP16};
    for (int v = 0; v < 2; v++)
        for (int p = 0; p < 2; p++) {
            cleval_nn *nn = create_classifier(m, VARIANTS[v], precisions[p]);
            assert_int_equal(cleval_nn_output_width(nn), 4);
            /* A full batch, a partial last one, another size, and the first again. */
            const uint32_t batches[] = {5, 2, 7, 1, 5};
            for (int b = 0; b < 5; b++) {
                uint32_t n = batches[b];
                memset(scores, 0, sizeof scores);
                assert_ok(cleval_nn_run(nn, x, n, scores));
                double tol = p ? 0.05 : 1e-6;
                for (uint32_t i = 0; i < n * 4; i++) {
                    double want = x[i] + row[i % 4] + 0.5;
                    if (fabs(scores[i] - want) > tol)
                        fail_msg("variant %d precision %d batch %u: score %u is %.7g, expected "
                                 "%.7g",
                                 v, p, n, i, scores[i], want);
                }
            }
            cleval_nn_destroy(nn);
        }
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    builder_free(m);
}

/* The same reshape written to a file, run by `cleval eval` with a partial last batch: the
 * shape comes from Shape slices (opset 15), Mul and Concat. */
static void test_cli_computed_reshape(void **state)
{
    (void)state;
    pb_buf g = {0};
    onnx_input(&g, "x", 3, DIMS(-1, 2, 3));
    const int64_t bounds[3][2] = {{0, 1}, {1, 2}, {2, 3}};
    const char *names[3] = {"s0", "s1", "s2"};
    for (int i = 0; i < 3; i++) {
        pb_buf n = onnx_node("Shape", names[i], "x", names[i]);
        onnx_attr_int(&n, "start", bounds[i][0]);
        onnx_attr_int(&n, "end", bounds[i][1]);
        onnx_node_end(&g, &n);
    }
    pb_buf n = onnx_node("Mul", "mul", "s1,s2", "s12");
    onnx_node_end(&g, &n);
    n = onnx_node("Concat", "concat", "s0,s12", "target");
    onnx_attr_int(&n, "axis", 0);
    onnx_node_end(&g, &n);
    n = onnx_node("Reshape", "reshape", "x,target", "y");
    onnx_node_end(&g, &n);
    onnx_output(&g, "y", 2, DIMS(-1, 6));
    char model[4096], data[4096], save[4096];
    snprintf(model, sizeof model, "%s", temp_path("computed_reshape.onnx"));
    onnx_write_model(model, 8, 15, &g);

    enum { N = 7 };
    float x[N * 6];
    for (int i = 0; i < N * 6; i++)
        x[i] = (float)i * 0.25f - 3.0f;
    snprintf(data, sizeof data, "%s", temp_path("computed_reshape.h5"));
    hid_t f = h5_create(data);
    hsize_t dims[3] = {N, 2, 3};
    h5_write(f, "X", H5T_NATIVE_FLOAT, 3, dims, x, 0, NULL);
    H5Fclose(f);
    snprintf(save, sizeof save, "%s", temp_path("computed_reshape_pred.h5"));
    const char *args[] = {"eval", "--model", model, "--data", data, "--batch",
                          "3",    "--save",  save,  "-q",     NULL};
    char *out, *err;
    int rc = run_cleval(args, &out, &err);
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    free(out);
    free(err);
    float scores[N * 6];
    hid_t p = H5Fopen(save, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(p, "scores", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, scores) >= 0);
    H5Dclose(d);
    H5Fclose(p);
    for (int i = 0; i < N * 6; i++)
        assert_float_equal(scores[i], x[i], 0.0);
}

/* The CLI refuses an unsupported host attribute with exit 2 and one line naming the node. */
static void test_cli_refusal(void **state)
{
    (void)state;
    pb_buf g = {0};
    onnx_input(&g, "x", 2, DIMS(-1, 3));
    pb_buf n = onnx_node("Shape", "shape", "x", "s");
    onnx_node_end(&g, &n);
    n = onnx_node("Cast", "to_half", "s", "h");
    onnx_attr_int(&n, "to", CLEVAL_ONNX_FLOAT16);
    onnx_node_end(&g, &n);
    n = onnx_node("Reshape", "reshape", "x,h", "y");
    onnx_node_end(&g, &n);
    onnx_output(&g, "y", 2, DIMS(-1, 3));
    char model[4096], data[4096];
    snprintf(model, sizeof model, "%s", temp_path("cast_half.onnx"));
    onnx_write_model(model, 8, 13, &g);
    snprintf(data, sizeof data, "%s", temp_path("cast_half.h5"));
    float x[6] = {0};
    hid_t f = h5_create(data);
    hsize_t dims[2] = {2, 3};
    h5_write(f, "X", H5T_NATIVE_FLOAT, 2, dims, x, 0, NULL);
    H5Fclose(f);
    const char *args[] = {"eval", "--model", model, "--data", data, "-q", NULL};
    expect_cleval_error(args, 2,
                        "node 'to_half' (Cast): attribute to=10 (float16) is not supported");
}

/* ---- device kernels: Expand and the float ConstantOfShape ---- */

/* Runs general graph m (freed) on inputs and returns its single output. */
static cleval_nn_tensor run_general_and_free(cleval_onnx_model *m, cleval_kernel_variant variant,
                                             const cleval_nn_tensor *inputs)
{
    cleval_device_set_variant(test_device(), variant);
    cleval_nn_options options = {.general = true};
    cleval_nn *nn;
    if (cleval_nn_create_with(test_device(), m, &options, &nn) != CLEVAL_OK)
        fail_msg("%s", cleval_last_error());
    cleval_nn_tensor out;
    assert_ok(cleval_nn_run_graph(nn, inputs, &out));
    cleval_nn_destroy(nn);
    builder_free(m);
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    return out;
}

static cleval_nn_tensor input_tensor(uint32_t rank, const int64_t *dims, float *data)
{
    cleval_nn_tensor t = {.rank = rank, .data = data};
    memcpy(t.dims, dims, rank * sizeof *dims);
    return t;
}

/* x broadcast to `shape` (numpy rules), computed here. */
static void ref_expand(const float *x, uint32_t xr, const int64_t *xd, uint32_t rank,
                       const int64_t *shape, float *y, uint64_t count)
{
    for (uint64_t e = 0; e < count; e++) {
        uint64_t rest = e, at = 0, stride = 1;
        for (uint32_t d = rank; d-- > 0;) {
            uint64_t c = rest % (uint64_t)shape[d];
            rest /= (uint64_t)shape[d];
            int64_t j = (int64_t)d - (int64_t)(rank - xr);
            if (j < 0) continue;
            if (xd[j] != 1) at += c * stride;
            stride *= (uint64_t)xd[j];
        }
        y[e] = x[at];
    }
}

typedef struct expand_case {
    uint32_t xr;
    int64_t xd[4];
    uint32_t rank;
    int64_t shape[4];
} expand_case;

static void test_expand_kernel(void **state)
{
    (void)state;
    /* One element, a prime, one more than the work-groups (256 CPU-style, 64 GPU-style), a
     * scalar input, an empty output. */
    static const expand_case cases[] = {
        {1, {1}, 1, {1}},      {2, {7, 1}, 3, {3, 7, 5}}, {2, {1, 257}, 2, {1, 257}},
        {1, {65}, 2, {4, 65}}, {0, {0}, 1, {5}},          {3, {3, 1, 1}, 3, {3, 0, 1}},
    };
    uint64_t seed = 11;
    for (int v = 0; v < 2; v++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            const expand_case *k = &cases[c];
            uint64_t nx = 1;
            for (uint32_t d = 0; d < k->xr; d++)
                nx *= (uint64_t)k->xd[d];
            float x[300];
            for (uint64_t i = 0; i < nx; i++)
                x[i] = frand(&seed);
            /* The target shape as a constant, or as the shape of a second input (a host
             * value). */
            for (int host = 0; host < 2; host++) {
                cleval_onnx_model *m = builder_new(13);
                builder_input(m, "x", k->xr, k->xd);
                if (host) {
                    builder_input(m, "z", k->rank, k->shape);
                    builder_node(m, "Shape", "shape", "z", "s");
                } else {
                    init_i(m, "s", 1, DIMS(k->rank), k->shape);
                }
                builder_node(m, "Expand", "expand", "x,s", "y");
                builder_output(m, "y");
                float z[300] = {0};
                cleval_nn_tensor in[2] = {input_tensor(k->xr, k->xd, x),
                                          input_tensor(k->rank, k->shape, z)};
                cleval_nn_tensor out = run_general_and_free(m, VARIANTS[v], in);
                assert_int_equal(out.rank, k->rank);
                uint64_t count = 1;
                for (uint32_t d = 0; d < k->rank; d++) {
                    assert_int_equal(out.dims[d], k->shape[d]);
                    count *= (uint64_t)k->shape[d];
                }
                float want[2000];
                ref_expand(x, k->xr, k->xd, k->rank, k->shape, want, count);
                for (uint64_t i = 0; i < count; i++)
                    if (out.data[i] != want[i])
                        fail_msg("variant %d case %zu host %d: element %llu is %g, expected %g", v,
                                 c, host, (unsigned long long)i, out.data[i], want[i]);
                free(out.data);
            }
        }
}

/* ConstantOfShape with a float fill of a shape computed from an input, and a host value as
 * a graph output (Shape(x), read back from the host). */
static void test_fill_kernel(void **state)
{
    (void)state;
    static const int64_t shapes[][3] = {{1, 1, 1}, {7, 1, 3}, {1, 257, 1}, {2, 0, 3}};
    for (int v = 0; v < 2; v++)
        for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
            cleval_onnx_model *m = builder_new(13);
            builder_input(m, "x", 3, shapes[c]);
            builder_node(m, "Shape", "shape", "x", "s");
            cleval_onnx_node *fill = builder_node(m, "ConstantOfShape", "fill", "s", "y");
            cleval_onnx_attr *a = builder_attr(fill, "value", CLEVAL_ONNX_ATTR_TENSOR);
            a->t = builder_alloc(sizeof *a->t);
            builder_tensor(a->t, "value", 1, DIMS(1), F32(-2.5f), NULL);
            builder_output(m, "y");
            float x[300] = {0};
            cleval_nn_tensor in = input_tensor(3, shapes[c], x);
            cleval_nn_tensor out = run_general_and_free(m, VARIANTS[v], &in);
            uint64_t count = (uint64_t)(shapes[c][0] * shapes[c][1] * shapes[c][2]);
            assert_int_equal(out.rank, 3);
            for (uint32_t d = 0; d < 3; d++)
                assert_int_equal(out.dims[d], shapes[c][d]);
            for (uint64_t i = 0; i < count; i++)
                assert_float_equal(out.data[i], -2.5f, 0.0);
            free(out.data);
        }

    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 2, DIMS(-1, 3));
    builder_node(m, "Shape", "shape", "x", "y");
    builder_output(m, "y");
    float x[15] = {0};
    cleval_nn_tensor in = input_tensor(2, DIMS(5, 3), x);
    cleval_nn_tensor out = run_general_and_free(m, VARIANTS[0], &in);
    assert_int_equal(out.rank, 1);
    assert_int_equal(out.dims[0], 2);
    assert_float_equal(out.data[0], 5, 0.0);
    assert_float_equal(out.data[1], 3, 0.0);
    free(out.data);
}

/* ---- refusals ---- */

static void test_refusals(void **state)
{
    (void)state;
    cleval_onnx_model *m = builder_new(13);
    init_f(m, "a", 1, DIMS(1), F32(1));
    attr_int(one_node(m, "Cast", "a"), "to", CLEVAL_ONNX_FLOAT16);
    builder_output(m, "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'n' (Cast)",
                           "attribute to=10 (float16) is not supported", NULL);

    m = builder_new(13);
    init_f(m, "a", 1, DIMS(1), F32(1));
    init_i(m, "i", 0, NULL, I64(0));
    attr_int(one_node(m, "Gather", "a,i"), "batch_dims", 0);
    builder_output(m, "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'n' (Gather)",
                           "attribute batch_dims is not supported", NULL);

    /* 10^10 elements from a file of a few bytes: refused before anything is allocated. */
    m = builder_new(13);
    init_i(m, "s", 1, DIMS(2), I64(100000, 100000));
    one_node(m, "ConstantOfShape", "s");
    builder_output(m, "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'n' (ConstantOfShape)",
                           "larger than supported", NULL);

    m = builder_new(13);
    init_f(m, "a", 0, NULL, F32(0));
    init_f(m, "b", 0, NULL, F32(1e10f));
    init_f(m, "d", 0, NULL, F32(1));
    one_node(m, "Range", "a,b,d");
    builder_output(m, "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'n' (Range)",
                           "larger than supported", NULL);

    m = builder_new(13);
    init_i(m, "a", 2, DIMS(1, 1), I64(1));
    init_i(m, "r", 1, DIMS(2), I64(2147483647, 2147483647));
    one_node(m, "Tile", "a,r");
    builder_output(m, "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'n' (Tile)",
                           "larger than supported", NULL);

    m = builder_new(13);
    init_i(m, "a", 1, DIMS(1), I64(5));
    init_i(m, "b", 1, DIMS(1), I64(0));
    one_node(m, "Div", "a,b");
    builder_output(m, "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'n' (Div)", "undefined for integers",
                           NULL);

    m = builder_new(13);
    init_f(m, "a", 1, DIMS(2), F32(1, 2));
    init_i(m, "i", 1, DIMS(1), I64(2));
    one_node(m, "Gather", "a,i");
    builder_output(m, "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'n' (Gather)",
                           "index 2 is out of range", NULL);

    /* Host-only operators on activations, and activations where a device op reads a shape. */
    m = builder_new(13);
    builder_input(m, "x", 2, DIMS(-1, 3));
    one_node(m, "Not", "x");
    builder_output(m, "y");
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "node 'n' (Not)",
                           "supported on constants and tensor shapes only", NULL);

    m = builder_new(13);
    builder_input(m, "x", 2, DIMS(-1, 3));
    builder_node(m, "Relu", "relu", "x", "r");
    builder_node(m, "Reshape", "reshape", "x,r", "y");
    builder_output(m, "y");
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "node 'reshape' (Reshape)",
                           "input 'r' (shape) must be a constant", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cast_and_views),
        cmocka_unit_test(test_transpose_squeeze_unsqueeze),
        cmocka_unit_test(test_concat_gather_slice),
        cmocka_unit_test(test_shapes_and_generators),
        cmocka_unit_test(test_arithmetic),
        cmocka_unit_test(test_shared_weights),
        cmocka_unit_test(test_computed_shapes),
        cmocka_unit_test(test_cli_computed_reshape),
        cmocka_unit_test(test_cli_refusal),
        cmocka_unit_test(test_expand_kernel),
        cmocka_unit_test(test_fill_kernel),
        cmocka_unit_test(test_refusals),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
