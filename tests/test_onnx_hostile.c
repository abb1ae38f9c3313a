/* Models a real exporter never writes, built byte by byte (tests/onnx_writer.h): a chain of
 * 10^5 nodes loads and runs exactly (every pass over the graph is linear), and dubious files
 * (names given twice, a value with two producers, a repeated attribute, no ir_version, an
 * opset from the future, boolean attributes outside {0, 1}) are refused with exit 2 and one
 * line naming the model, the node and what is wrong. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_builder.h"
#include "onnx_writer.h"

static const int64_t SAMPLE_DIMS[2] = {-1, 4}; /* x and y: [N, 4] */
static const float X[2][4] = {{1, -2, 3, -4}, {5, 6, -7, 8}};

/* The test set the CLI cases run on: X [2, 4], no labels. */
static const char *data_path(void)
{
    static char path[4096];
    if (!path[0]) {
        snprintf(path, sizeof path, "%s", temp_path("hostile_x.h5"));
        hid_t f = h5_create(path);
        h5_write(f, "X", H5T_NATIVE_FLOAT, 2, (const hsize_t[]){2, 4}, X, 0, NULL);
        H5Fclose(f);
    }
    return path;
}

/* A graph with the classifier's input x [N, 4] and output y [N, 4]; the nodes come next. */
static pb_buf classifier_graph(void)
{
    pb_buf g = {0};
    onnx_input(&g, "x", 2, SAMPLE_DIMS);
    onnx_output(&g, "y", 2, SAMPLE_DIMS);
    return g;
}

static void add_node(pb_buf *g, const char *op_type, const char *name, const char *inputs,
                     const char *outputs)
{
    pb_buf node = onnx_node(op_type, name, inputs, outputs);
    onnx_node_end(g, &node);
}

static void add_scalar(pb_buf *g, const char *name, float value)
{
    onnx_initializer(g, name, 1, (const int64_t[]){1}, &value);
}

/* Writes the model as temp file `name` (ir_version 8, opset 13 unless said otherwise). */
static const char *write_model(const char *name, int64_t ir_version, int64_t opset, pb_buf *g)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s", temp_path(name));
    onnx_write_model(path, ir_version, opset, g);
    return path;
}

/* `cleval eval` exits 2 with one line holding the model's path and `needle`; loading the
 * file with the library fails with `status` (cleval_onnx_load, then cleval_nn_create). */
static void expect_refused(const char *path, cleval_status status, const char *needle)
{
    char line[4096];
    snprintf(line, sizeof line, "%s: ", path);
    const char *args[] = {"eval", "--model", path, "--data", data_path(), "--quiet", NULL};
    expect_cleval_error(args, 2, line);
    expect_cleval_error(args, 2, needle);

    cleval_onnx_model *m = NULL;
    cleval_nn *nn = NULL;
    cleval_status got = cleval_onnx_load(path, &m);
    if (got == CLEVAL_OK) got = cleval_nn_create(test_device(), m, &nn);
    cleval_onnx_free(m);
    if (got != status) fail_msg("status %d (wanted %d): %s", got, status, cleval_last_error());
    assert_null(nn);
    if (!strstr(cleval_last_error(), needle))
        fail_msg("'%s' missing from: %s", needle, cleval_last_error());
}

/* ---- scale ---- */

/* y = x + 1 + 1 + ... through 10^5 Add nodes that share one constant: exact in float, since
 * every partial sum is an integer far below 2^24. Loading and building such a graph used to
 * take minutes (name lookups and kernel releases that scanned the whole graph). */
static void test_long_chain_loads_and_runs_exactly(void **state)
{
    (void)state;
    enum { N = 100000 };
    pb_buf g = classifier_graph();
    add_scalar(&g, "one", 1.0f);
    char in[32] = "x", out[32], name[32];
    for (uint32_t i = 0; i < N; i++) {
        snprintf(out, sizeof out, i + 1 == N ? "y" : "v%u", i);
        snprintf(name, sizeof name, "add%u", i);
        char inputs[48];
        snprintf(inputs, sizeof inputs, "%s,one", in);
        add_node(&g, "Add", name, inputs, out);
        snprintf(in, sizeof in, "%s", out);
    }
    const char *path = write_model("hostile_chain.onnx", 8, 13, &g);

    cleval_onnx_model *m;
    assert_ok(cleval_onnx_load(path, &m));
    assert_int_equal(m->n_nodes, N);
    cleval_nn *nn;
    assert_ok(cleval_nn_create(test_device(), m, &nn));
    cleval_onnx_free(m);
    float scores[2][4];
    assert_ok(cleval_nn_run(nn, &X[0][0], 2, &scores[0][0]));
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < 4; c++)
            assert_true(scores[s][c] == X[s][c] + (float)N);
    cleval_nn_destroy(nn);
    remove(path);
}

/* y = Relu(x) + Relu(x) + ... over 2 * 10^4 branches that all stay alive until the sum reads
 * them (the memory plan then juggles 2 * 10^4 buffers): exact, every partial sum being an
 * integer. */
static void test_wide_graph_runs_exactly(void **state)
{
    (void)state;
    enum { N = 20000 };
    pb_buf g = classifier_graph();
    char name[32], out[32], inputs[48];
    for (uint32_t i = 0; i < N; i++) {
        snprintf(name, sizeof name, "relu%u", i);
        snprintf(out, sizeof out, "r%u", i);
        add_node(&g, "Relu", name, "x", out);
    }
    for (uint32_t i = 1; i < N; i++) {
        snprintf(name, sizeof name, "add%u", i);
        snprintf(out, sizeof out, i + 1 == N ? "y" : "s%u", i);
        snprintf(inputs, sizeof inputs, i == 1 ? "r0,r1" : "s%u,r%u", i - 1, i);
        add_node(&g, "Add", name, inputs, out);
    }
    const char *path = write_model("hostile_wide.onnx", 8, 13, &g);
    cleval_onnx_model *m;
    assert_ok(cleval_onnx_load(path, &m));
    cleval_nn *nn;
    assert_ok(cleval_nn_create(test_device(), m, &nn));
    cleval_onnx_free(m);
    float scores[2][4];
    assert_ok(cleval_nn_run(nn, &X[0][0], 2, &scores[0][0]));
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < 4; c++)
            assert_true(scores[s][c] == (X[s][c] > 0 ? X[s][c] * N : 0.0f));
    cleval_nn_destroy(nn);
    remove(path);
}

/* ---- names ---- */

static void test_initializer_given_twice(void **state)
{
    (void)state;
    pb_buf g = classifier_graph();
    add_scalar(&g, "c", 1.0f);
    add_scalar(&g, "c", 2.0f);
    add_node(&g, "Add", "add0", "x,c", "y");
    expect_refused(write_model("hostile_init_twice.onnx", 8, 13, &g), CLEVAL_ERR_INPUT,
                   "initializer 'c' is given twice");
}

/* The same rule for a model built in memory and handed to the nn module directly. */
static void test_initializer_given_twice_in_memory(void **state)
{
    (void)state;
    const int64_t x_dims[2] = {-1, 4}, c_dims[1] = {1};
    const float one = 1.0f, two = 2.0f;
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 2, x_dims);
    builder_init(m, "c", 1, c_dims, &one);
    builder_init(m, "c", 1, c_dims, &two);
    builder_node(m, "Add", "add0", "x,c", "y");
    builder_output(m, "y");
    cleval_nn *nn = NULL;
    cleval_status got = cleval_nn_create(test_device(), m, &nn);
    builder_free(m);
    assert_int_equal(got, CLEVAL_ERR_INPUT);
    assert_null(nn);
    assert_string_equal(cleval_last_error(), "test.onnx: initializer 'c' is given twice");
}

static void test_graph_input_or_output_listed_twice(void **state)
{
    (void)state;
    pb_buf g = classifier_graph();
    onnx_input(&g, "x", 2, SAMPLE_DIMS);
    add_node(&g, "Relu", "relu0", "x", "y");
    expect_refused(write_model("hostile_input_twice.onnx", 8, 13, &g), CLEVAL_ERR_INPUT,
                   "graph input 'x' is listed twice");

    g = classifier_graph();
    onnx_output(&g, "y", 2, SAMPLE_DIMS);
    add_node(&g, "Relu", "relu0", "x", "y");
    expect_refused(write_model("hostile_output_twice.onnx", 8, 13, &g), CLEVAL_ERR_INPUT,
                   "graph output 'y' is listed twice");
}

/* A value has one producer: not two nodes, nor a node and an initializer or a graph input. */
static void test_value_with_two_producers(void **state)
{
    (void)state;
    pb_buf g = classifier_graph();
    add_node(&g, "Relu", "first", "x", "v");
    add_node(&g, "Sigmoid", "second", "x", "v");
    add_node(&g, "Relu", "last", "v", "y");
    expect_refused(write_model("hostile_two_nodes.onnx", 8, 13, &g), CLEVAL_ERR_INPUT,
                   "node 'second' (Sigmoid): output 'v' is also an output of node 'first'");

    g = classifier_graph();
    add_scalar(&g, "w", 1.0f);
    add_node(&g, "Relu", "shadow", "x", "w");
    add_node(&g, "Add", "add0", "x,w", "y");
    expect_refused(write_model("hostile_shadow_init.onnx", 8, 13, &g), CLEVAL_ERR_INPUT,
                   "node 'shadow' (Relu): output 'w' is also an initializer");

    g = classifier_graph();
    add_node(&g, "Relu", "shadow", "y", "x");
    add_node(&g, "Relu", "relu0", "x", "y");
    expect_refused(write_model("hostile_shadow_input.onnx", 8, 13, &g), CLEVAL_ERR_INPUT,
                   "node 'shadow' (Relu): output 'x' is also a graph input");
}

/* ---- header and attributes ---- */

static void test_attribute_given_twice(void **state)
{
    (void)state;
    pb_buf g = classifier_graph();
    onnx_initializer(&g, "w", 2, (const int64_t[]){4, 4}, (const float[16]){1, 0, 0, 0, 0, 1});
    pb_buf node = onnx_node("Gemm", "gemm0", "x,w", "y");
    onnx_attr_int(&node, "transB", 1);
    onnx_attr_int(&node, "transB", 0);
    onnx_node_end(&g, &node);
    expect_refused(write_model("hostile_attr_twice.onnx", 8, 13, &g), CLEVAL_ERR_INPUT,
                   "node 'gemm0' (Gemm): attribute 'transB' is given twice");
}

static void test_ir_version_missing_or_zero(void **state)
{
    (void)state;
    for (int64_t ir = -1; ir <= 0; ir++) {
        pb_buf g = classifier_graph();
        add_node(&g, "Relu", "relu0", "x", "y");
        expect_refused(write_model("hostile_no_ir.onnx", ir, 13, &g), CLEVAL_ERR_INPUT,
                       "ir_version is missing or not positive");
    }
}

static void test_opset_from_the_future(void **state)
{
    (void)state;
    pb_buf g = classifier_graph();
    add_node(&g, "Relu", "relu0", "x", "y");
    expect_refused(write_model("hostile_opset99.onnx", 8, 99, &g), CLEVAL_ERR_UNSUPPORTED,
                   "opset 99 of the default domain is newer than this engine knows (up to 22)");

    /* The newest opset known still runs. */
    g = classifier_graph();
    add_node(&g, "Relu", "relu0", "x", "y");
    const char *path = write_model("hostile_opset22.onnx", 8, CLEVAL_NN_MAX_OPSET, &g);
    cleval_onnx_model *m;
    cleval_nn *nn;
    assert_ok(cleval_onnx_load(path, &m));
    assert_ok(cleval_nn_create(test_device(), m, &nn));
    cleval_nn_destroy(nn);
    cleval_onnx_free(m);
}

static void test_gemm_trans_b_not_boolean(void **state)
{
    (void)state;
    pb_buf g = classifier_graph();
    onnx_initializer(&g, "w", 2, (const int64_t[]){4, 4}, (const float[16]){1, 0, 0, 0, 0, 1});
    pb_buf node = onnx_node("Gemm", "gemm0", "x,w", "y");
    onnx_attr_int(&node, "transB", 7);
    onnx_node_end(&g, &node);
    expect_refused(write_model("hostile_transb7.onnx", 8, 13, &g), CLEVAL_ERR_INPUT,
                   "node 'gemm0' (Gemm): attribute transB=7 is not a boolean (0 or 1)");
}

/* Every boolean attribute the engine reads, set to 2 on an otherwise valid node. */
static void test_boolean_attributes_outside_0_1(void **state)
{
    (void)state;
    static const struct {
        const char *op_type, *attr;
        int64_t opset;
    } cases[] = {
        {"Gemm", "transA", 13},
        {"Gemm", "transB", 13},
        {"Gemm", "broadcast", 6},
        {"Add", "broadcast", 6},
        {"AveragePool", "ceil_mode", 13},
        {"AveragePool", "count_include_pad", 13},
        {"MaxPool", "storage_order", 13},
        {"Reshape", "allowzero", 14},
        {"Dropout", "is_test", 6},
        {"BatchNormalization", "is_test", 6},
        {"BatchNormalization", "spatial", 7},
        {"BatchNormalization", "training_mode", 14},
    };
    const int64_t x_dims[4] = {-1, 2, 2, 2}, c_dims[1] = {2}, k_dims[2] = {2, 2},
                  w_dims[2] = {8, 8}, shape_dims[1] = {2}, target[2] = {-1, 8};
    const float ones[64] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cleval_onnx_model *m = builder_new(cases[i].opset);
        builder_input(m, "x", 4, x_dims);
        builder_init(m, "c", 1, c_dims, ones);
        builder_init(m, "w", 2, w_dims, ones);
        builder_init_i64(m, "shape", 1, shape_dims, target);
        const char *op = cases[i].op_type;
        bool flat = strcmp(op, "Gemm") == 0;
        if (flat) builder_node(m, "Flatten", "flat", "x", "f");
        const char *inputs = flat                                    ? "f,w"
                             : strcmp(op, "Add") == 0                ? "x,c"
                             : strcmp(op, "Reshape") == 0            ? "x,shape"
                             : strcmp(op, "BatchNormalization") == 0 ? "x,c,c,c,c"
                                                                     : "x";
        cleval_onnx_node *n = builder_node(m, op, "probe", inputs, "y");
        if (strstr(op, "Pool")) attr_ints(n, "kernel_shape", 2, k_dims);
        attr_int(n, cases[i].attr, 2);
        builder_output(m, "y");
        cleval_nn_options options = {.general = true};
        cleval_nn *nn = NULL;
        cleval_status got = cleval_nn_create_with(test_device(), m, &options, &nn);
        builder_free(m);
        char needle[128];
        snprintf(needle, sizeof needle, "node 'probe' (%s): attribute %s=2 is not a boolean", op,
                 cases[i].attr);
        if (got != CLEVAL_ERR_INPUT || !strstr(cleval_last_error(), needle))
            fail_msg("%s %s=2: status %d: %s", op, cases[i].attr, got, cleval_last_error());
        assert_null(nn);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_chain_loads_and_runs_exactly),
        cmocka_unit_test(test_wide_graph_runs_exactly),
        cmocka_unit_test(test_initializer_given_twice),
        cmocka_unit_test(test_initializer_given_twice_in_memory),
        cmocka_unit_test(test_graph_input_or_output_listed_twice),
        cmocka_unit_test(test_value_with_two_producers),
        cmocka_unit_test(test_attribute_given_twice),
        cmocka_unit_test(test_ir_version_missing_or_zero),
        cmocka_unit_test(test_opset_from_the_future),
        cmocka_unit_test(test_gemm_trans_b_not_boolean),
        cmocka_unit_test(test_boolean_attributes_outside_0_1),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
