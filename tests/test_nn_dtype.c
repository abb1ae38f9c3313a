/* Element types in the network runner, against plain C references written here, on both kernel
 * families (CPU-style and GPU-style, forced on the test device):
 *   inputs   a graph input of each supported type fed its own data, and uint8 data fed to
 *            float and int64 inputs (converted on the device);
 *   Cast     every supported target from float and integer values at odd sizes (1, a prime,
 *            one more than a work-group), with saturation, bool and float16 rounding, also
 *            between half-stored values (fp16);
 *   prep     the input conversion with scale, per-channel mean / std and channels-last
 *            samples at odd sizes, and its refusals;
 *   Gather   with runtime int64 / int32 indices (an embedding lookup), negative indices, the
 *            run failing on an index out of range (and the next run working again), and the
 *            refusal of integer values where an op computes in float. */
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

static void assert_close(const float *got, const float *want, uint64_t n, double tol)
{
    for (uint64_t i = 0; i < n; i++)
        if (got[i] != want[i] &&
            !(fabs((double)got[i] - (double)want[i]) <= tol * (1.0 + fabs((double)want[i])))) {
            print_error("element %llu: got %.9g, want %.9g\n", (unsigned long long)i, got[i],
                        want[i]);
            fail();
        }
}

/* A classifier x [N, width] (of `type`) -> Cast(to float) -> Mul by 1 -> y. */
static cleval_onnx_model *cast_classifier(int32_t type, int64_t width)
{
    cleval_onnx_model *m = builder_new(17);
    int64_t dims[2] = {-1, width};
    builder_input(m, "x", 2, dims);
    m->inputs[0].elem_type = type;
    builder_output(m, "y");
    attr_int(builder_node(m, "Cast", "to_float", "x", "xf"), "to", CLEVAL_ONNX_FLOAT);
    float one = 1.0f;
    builder_init(m, "one", 0, NULL, &one);
    builder_node(m, "Mul", "times_one", "xf,one", "y");
    return m;
}

/* Host samples of `type` holding values[i] (which fit it). */
static void *typed_data(int32_t type, const double *values, uint64_t n)
{
    size_t size = type == CLEVAL_ONNX_INT64                                 ? 8
                  : type == CLEVAL_ONNX_INT32                               ? 4
                  : type == CLEVAL_ONNX_FLOAT                               ? 4
                  : type == CLEVAL_ONNX_INT16 || type == CLEVAL_ONNX_UINT16 ? 2
                                                                            : 1;
    unsigned char *p = malloc(n * size + 1);
    assert_non_null(p);
    for (uint64_t i = 0; i < n; i++) {
        double v = values[i];
        switch (type) {
        case CLEVAL_ONNX_UINT8: p[i] = (uint8_t)v; break;
        case CLEVAL_ONNX_INT8: ((int8_t *)p)[i] = (int8_t)v; break;
        case CLEVAL_ONNX_INT16: ((int16_t *)p)[i] = (int16_t)v; break;
        case CLEVAL_ONNX_INT32: ((int32_t *)p)[i] = (int32_t)v; break;
        case CLEVAL_ONNX_INT64: ((int64_t *)p)[i] = (int64_t)v; break;
        default: ((float *)p)[i] = (float)v; break;
        }
    }
    return p;
}

/* Each input type fed its default data (float for float16), and uint8 data fed to float and
 * int64 inputs, through Cast to float: the values come out as the reference converts them. */
static void test_input_types(void **state)
{
    (void)state;
    static const struct {
        int32_t input, feed; /* feed 0: the default */
        double lo, hi;
        bool integer;
    } cases[] = {
        {CLEVAL_ONNX_UINT8, 0, 0, 255, true},
        {CLEVAL_ONNX_INT8, 0, -128, 127, true},
        {CLEVAL_ONNX_INT32, 0, -2e9, 2e9, true},
        {CLEVAL_ONNX_INT64, 0, -1e15, 1e15, true},
        {CLEVAL_ONNX_FLOAT16, 0, -70000, 70000, false},
        {CLEVAL_ONNX_FLOAT, 0, -3, 3, false},
        {CLEVAL_ONNX_FLOAT, CLEVAL_ONNX_UINT8, 0, 255, true},
        {CLEVAL_ONNX_FLOAT, CLEVAL_ONNX_INT16, -32768, 32767, true},
        {CLEVAL_ONNX_INT64, CLEVAL_ONNX_UINT8, 0, 255, true},
        {CLEVAL_ONNX_FLOAT16, CLEVAL_ONNX_INT32, -70000, 70000, true},
    };
    const uint32_t n = 3;
    const uint64_t width = 13;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        double values[3 * 13];
        float want[3 * 13], got[3 * 13];
        for (uint64_t i = 0; i < n * width; i++) {
            double v = cases[c].lo + (cases[c].hi - cases[c].lo) * urand();
            values[i] = cases[c].integer ? floor(v) : (double)(float)v;
        }
        int32_t feed = cases[c].feed                           ? cases[c].feed
                       : cases[c].input == CLEVAL_ONNX_FLOAT16 ? CLEVAL_ONNX_FLOAT
                                                               : cases[c].input;
        for (uint64_t i = 0; i < n * width; i++)
            want[i] =
                cases[c].input == CLEVAL_ONNX_FLOAT16 ? hround((float)values[i]) : (float)values[i];
        void *x = typed_data(feed, values, n * width);
        cleval_onnx_model *m = cast_classifier(cases[c].input, (int64_t)width);
        for (int v = 0; v < 2; v++) {
            cleval_device_set_variant(test_device(), VARIANTS[v]);
            cleval_nn *nn = NULL;
            assert_ok(cleval_nn_create(test_device(), m, &nn));
            assert_int_equal(cleval_nn_input_type(nn), cases[c].input);
            if (cases[c].feed) assert_ok(cleval_nn_set_feed_type(nn, cases[c].feed));
            memset(got, 0, sizeof got);
            assert_ok(cleval_nn_run(nn, x, n, got));
            assert_close(got, want, n * width, 0.0);
            cleval_nn_destroy(nn);
        }
        builder_free(m);
        free(x);
    }
    cleval_device_set_variant(test_device(), VARIANTS[0]);
}

/* What the feed types refuse: float data for an integer input, types that cannot be fed. */
static void test_feed_refusals(void **state)
{
    (void)state;
    cleval_onnx_model *m = cast_classifier(CLEVAL_ONNX_INT64, 4);
    cleval_nn *nn = NULL;
    assert_ok(cleval_nn_create(test_device(), m, &nn));
    assert_int_equal(cleval_nn_set_feed_type(nn, CLEVAL_ONNX_FLOAT), CLEVAL_ERR_USAGE);
    assert_non_null(strstr(cleval_last_error(), "'x' (int64) cannot be fed float data"));
    assert_int_equal(cleval_nn_set_feed_type(nn, CLEVAL_ONNX_DOUBLE), CLEVAL_ERR_USAGE);
    cleval_nn_destroy(nn);
    builder_free(m);
    /* A bool graph input is not fed. */
    m = cast_classifier(CLEVAL_ONNX_BOOL, 4);
    assert_int_equal(cleval_nn_create(test_device(), m, &nn), CLEVAL_ERR_UNSUPPORTED);
    assert_non_null(strstr(cleval_last_error(), "graph input 'x' has element type bool"));
    builder_free(m);
}

/* ONNX Cast of one value as the reference computes it. */
static double cast_ref(double v, int32_t to)
{
    double t = trunc(v);
    switch (to) {
    case CLEVAL_ONNX_INT8: return isnan(v) ? 0 : t < -128 ? -128 : t > 127 ? 127 : t;
    case CLEVAL_ONNX_UINT8: return isnan(v) ? 0 : t < 0 ? 0 : t > 255 ? 255 : t;
    case CLEVAL_ONNX_INT32:
    case CLEVAL_ONNX_INT64: return t;
    case CLEVAL_ONNX_BOOL: return v != 0;
    case CLEVAL_ONNX_FLOAT16: return hround(v);
    }
    return v;
}

/* General graph x -> Relu (stored as half in fp16) -> Cast(to) -> Cast(float) -> Mul by 1.
 * Also the input itself int64 (fed floats) -> Cast(int32) -> Cast(float). */
static void run_cast_chain(int32_t to, cleval_nn_precision precision, uint64_t count)
{
    cleval_onnx_model *m = builder_new(17);
    int64_t dims[1] = {(int64_t)count};
    builder_input(m, "x", 1, dims);
    builder_output(m, "y");
    builder_node(m, "Sub", "shift", "x,half_range", "xs");
    attr_int(builder_node(m, "Cast", "cast_to", "xs", "c"), "to", to);
    attr_int(builder_node(m, "Cast", "back", "c", "cf"), "to", CLEVAL_ONNX_FLOAT);
    float one = 1.0f, half_range = 300.0f;
    builder_init(m, "one", 0, NULL, &one);
    builder_init(m, "half_range", 0, NULL, &half_range);
    builder_node(m, "Mul", "times_one", "cf,one", "y");
    float *x = malloc(count * sizeof *x), *want = malloc(count * sizeof *want);
    assert_non_null(x);
    assert_non_null(want);
    for (uint64_t i = 0; i < count; i++) {
        x[i] = (float)(600.0 * urand());
        if (i % 7 == 3) x[i] = 300.0f; /* a zero after the Sub: bool 0 */
        double xs = (double)(x[i] - half_range);
        /* fp16: Sub's output is stored as half before the Cast reads it. */
        if (precision == CLEVAL_NN_FP16) xs = hround(xs);
        want[i] = (float)cast_ref(xs, to);
    }
    cleval_nn_options options = {.general = true, .precision = precision};
    for (int v = 0; v < 2; v++) {
        cleval_device_set_variant(test_device(), VARIANTS[v]);
        cleval_nn *nn = NULL;
        assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
        cleval_nn_tensor in = {.rank = 1, .dims = {(int64_t)count}, .data = x}, out;
        assert_ok(cleval_nn_run_graph(nn, &in, &out));
        assert_int_equal(out.dims[0], (int64_t)count);
        assert_close(out.data, want, count, 0.0);
        free(out.data);
        cleval_nn_destroy(nn);
    }
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    free(x);
    free(want);
    builder_free(m);
}

static void test_cast(void **state)
{
    (void)state;
    static const int32_t targets[] = {CLEVAL_ONNX_FLOAT, CLEVAL_ONNX_FLOAT16, CLEVAL_ONNX_INT64,
                                      CLEVAL_ONNX_INT32, CLEVAL_ONNX_INT8,    CLEVAL_ONNX_UINT8,
                                      CLEVAL_ONNX_BOOL};
    static const uint64_t sizes[] = {1, 13, 257};
    for (size_t t = 0; t < sizeof targets / sizeof *targets; t++)
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            run_cast_chain(targets[t], CLEVAL_NN_FP32, sizes[s]);
            run_cast_chain(targets[t], CLEVAL_NN_FP16, sizes[s]);
        }
}

/* An int64 general-graph input (fed floats, converted toward zero) cast to int32 and back;
 * a Cast of a constant; Cast targets and inputs refused. */
static void test_cast_integers_and_refusals(void **state)
{
    (void)state;
    cleval_onnx_model *m = builder_new(17);
    int64_t dims[1] = {5};
    builder_input(m, "ids", 1, dims);
    m->inputs[0].elem_type = CLEVAL_ONNX_INT64;
    builder_output(m, "y");
    builder_output(m, "k");
    attr_int(builder_node(m, "Cast", "narrow", "ids", "i32"), "to", CLEVAL_ONNX_INT32);
    attr_int(builder_node(m, "Cast", "widen", "i32", "y"), "to", CLEVAL_ONNX_FLOAT);
    int64_t kdims[1] = {3}, kv[3] = {-4, 0, 1234567};
    builder_init_i64(m, "kint", 1, kdims, kv);
    attr_int(builder_node(m, "Cast", "const_cast", "kint", "k"), "to", CLEVAL_ONNX_FLOAT);
    float x[5] = {-3.75f, -0.5f, 0.0f, 7.9f, 1e6f};
    float want[5] = {-3, 0, 0, 7, 1e6f}, kwant[3] = {-4, 0, 1234567};
    cleval_nn_options options = {.general = true};
    for (int v = 0; v < 2; v++) {
        cleval_device_set_variant(test_device(), VARIANTS[v]);
        cleval_nn *nn = NULL;
        assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
        cleval_nn_tensor in = {.rank = 1, .dims = {5}, .data = x}, out[2];
        assert_ok(cleval_nn_run_graph(nn, &in, out));
        assert_close(out[0].data, want, 5, 0.0);
        assert_close(out[1].data, kwant, 3, 0.0);
        free(out[0].data);
        free(out[1].data);
        cleval_nn_destroy(nn);
    }
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    builder_free(m);

    /* A Cast to double, an int64 value read by Relu, an int64 graph output. */
    static const struct {
        const char *op;
        int64_t to;
        int32_t output_type;
        const char *needle;
    } refused[] = {
        {"Cast", CLEVAL_ONNX_DOUBLE, CLEVAL_ONNX_FLOAT, "a Cast to double is not supported"},
        {"Relu", CLEVAL_ONNX_INT64, CLEVAL_ONNX_FLOAT,
         "node 'r' (Relu): input 'c' is int64; this operator runs on float tensors only"},
        {"Identity", CLEVAL_ONNX_INT64, 0, "graph output 'y' has element type int64"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        m = builder_new(17);
        builder_input(m, "x", 1, dims);
        builder_output(m, "y");
        m->outputs[0].elem_type = refused[i].output_type;
        cleval_onnx_node *cast = builder_node(m, "Cast", "c", "x", "c");
        attr_int(cast, "to", refused[i].to);
        if (strcmp(refused[i].op, "Cast") == 0)
            builder_node(m, "Relu", "r", "c", "y");
        else
            builder_node(m, refused[i].op, "r", "c", "y");
        cleval_nn *nn = NULL;
        assert_int_equal(cleval_nn_create_with(test_device(), m, &options, &nn),
                         CLEVAL_ERR_UNSUPPORTED);
        assert_null(nn);
        assert_non_null(strstr(cleval_last_error(), refused[i].needle));
        builder_free(m);
    }
}

/* A float classifier x [N, C, H, W] -> Flatten -> Mul by 1: the output is the converted
 * input. */
static cleval_onnx_model *image_classifier(int64_t c, int64_t h, int64_t w)
{
    cleval_onnx_model *m = builder_new(17);
    int64_t dims[4] = {-1, c, h, w};
    builder_input(m, "x", 4, dims);
    builder_output(m, "y");
    builder_node(m, "Flatten", "flat", "x", "f");
    float one = 1.0f;
    builder_init(m, "one", 0, NULL, &one);
    builder_node(m, "Mul", "times_one", "f,one", "y");
    return m;
}

/* uint8 / int8 samples, NCHW or NHWC, through scale, mean and std, at odd sizes. */
static void test_input_prep(void **state)
{
    (void)state;
    static const struct {
        int64_t c, h, w;
        uint32_t n;
        bool nhwc, one_mean;
        int32_t feed;
    } cases[] = {
        {3, 5, 7, 3, true, false, CLEVAL_ONNX_UINT8},
        {3, 5, 7, 3, false, false, CLEVAL_ONNX_UINT8},
        {1, 1, 1, 1, true, false, CLEVAL_ONNX_UINT8},
        {2, 11, 13, 2, true, true, CLEVAL_ONNX_INT8},
        {5, 1, 53, 1, false, true, CLEVAL_ONNX_FLOAT},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int64_t C = cases[k].c, H = cases[k].h, W = cases[k].w;
        uint64_t per = (uint64_t)(C * H * W), total = per * cases[k].n;
        float mean[5], stdv[5];
        for (int64_t i = 0; i < C; i++) {
            mean[i] = (float)(0.2 + 0.5 * urand());
            stdv[i] = (float)(0.1 + urand());
        }
        cleval_nn_options options = {.input = {.scale = 1.0f / 255.0f,
                                               .n_mean = cases[k].one_mean ? 1 : (uint32_t)C,
                                               .mean = mean,
                                               .n_std = (uint32_t)C,
                                               .std = stdv,
                                               .nhwc = cases[k].nhwc}};
        double *values = malloc(total * sizeof *values);
        float *want = malloc(total * sizeof *want), *got = malloc(total * sizeof *got);
        assert_non_null(values);
        assert_non_null(want);
        assert_non_null(got);
        for (uint64_t i = 0; i < total; i++)
            values[i] = cases[k].feed == CLEVAL_ONNX_INT8 ? floor(urand() * 256) - 128
                                                          : floor(urand() * 256);
        /* want in NCHW order; the samples are stored NHWC when asked. */
        for (uint64_t n = 0; n < cases[k].n; n++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t p = 0; p < H * W; p++) {
                    uint64_t dst = n * per + (uint64_t)(c * H * W + p);
                    uint64_t src = cases[k].nhwc ? n * per + (uint64_t)(p * C + c) : dst;
                    float m = mean[cases[k].one_mean ? 0 : c];
                    want[dst] = ((float)values[src] * options.input.scale - m) / stdv[c];
                }
        void *x = typed_data(cases[k].feed, values, total);
        cleval_onnx_model *m = image_classifier(C, H, W);
        for (int v = 0; v < 2; v++) {
            cleval_device_set_variant(test_device(), VARIANTS[v]);
            cleval_nn *nn = NULL;
            assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
            assert_ok(cleval_nn_set_feed_type(nn, cases[k].feed));
            assert_ok(cleval_nn_run(nn, x, cases[k].n, got));
            assert_close(got, want, total, 1e-6);
            cleval_nn_destroy(nn);
        }
        builder_free(m);
        free(x);
        free(values);
        free(want);
        free(got);
    }
    cleval_device_set_variant(test_device(), VARIANTS[0]);
}

static void test_input_prep_refusals(void **state)
{
    (void)state;
    float two[2] = {0.5f, 0.5f}, zero[3] = {1, 0, 1}, three[3] = {1, 1, 1};
    cleval_onnx_model *image = image_classifier(3, 2, 2);
    cleval_onnx_model *ids = cast_classifier(CLEVAL_ONNX_INT64, 4);
    cleval_onnx_model *flat = cast_classifier(CLEVAL_ONNX_FLOAT, 4);
    static const char *const needles[] = {
        "applies to a float graph input; 'x' is int64",
        "the input mean has 2 values but graph input 'x' has 3 channels",
        "input std value 0 (channel 1) is 0",
        "channels-last samples need a graph input with 2 or more axes besides the batch",
        "the input scale inf is not finite",
        "input preprocessing (scale, mean, std, layout) is for classifiers",
    };
    cleval_nn_options options[6] = {
        {.input = {.scale = 2.0f}},
        {.input = {.n_mean = 2, .mean = two}},
        {.input = {.n_std = 3, .std = zero}},
        {.input = {.nhwc = true}},
        {.input = {.scale = INFINITY}},
        {.general = true, .input = {.n_std = 3, .std = three}},
    };
    const cleval_onnx_model *models[6] = {ids, image, image, flat, image, image};
    for (int i = 0; i < 6; i++) {
        cleval_nn *nn = NULL;
        assert_int_equal(cleval_nn_create_with(test_device(), models[i], &options[i], &nn),
                         CLEVAL_ERR_USAGE);
        assert_null(nn);
        assert_non_null(strstr(cleval_last_error(), needles[i]));
    }
    builder_free(image);
    builder_free(ids);
    builder_free(flat);
}

/* ids [N, T] (int64 or int32) -> Gather(table [V, E]) -> [N, T, E] -> Flatten -> Mul by 1. */
static cleval_onnx_model *embedding_classifier(int32_t type, int64_t t, int64_t v, int64_t e,
                                               const float *table)
{
    cleval_onnx_model *m = builder_new(17);
    int64_t dims[2] = {-1, t}, tdims[2] = {v, e};
    builder_input(m, "ids", 2, dims);
    m->inputs[0].elem_type = type;
    builder_output(m, "y");
    builder_init(m, "table", 2, tdims, table);
    builder_node(m, "Gather", "embed", "table,ids", "emb");
    builder_node(m, "Flatten", "flat", "emb", "f");
    float one = 1.0f;
    builder_init(m, "one", 0, NULL, &one);
    builder_node(m, "Mul", "times_one", "f,one", "y");
    return m;
}

static void test_gather_rows(void **state)
{
    (void)state;
    static const struct {
        int32_t type;
        int64_t t, v, e;
        uint32_t n;
        cleval_nn_precision precision;
    } cases[] = {
        {CLEVAL_ONNX_INT64, 3, 11, 5, 4, CLEVAL_NN_FP32},
        {CLEVAL_ONNX_INT32, 1, 7, 1, 1, CLEVAL_NN_FP32},
        {CLEVAL_ONNX_INT64, 17, 13, 31, 3, CLEVAL_NN_FP32},
        {CLEVAL_ONNX_INT64, 3, 11, 5, 4, CLEVAL_NN_FP16},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int64_t T = cases[k].t, V = cases[k].v, E = cases[k].e;
        uint64_t n_ids = cases[k].n * (uint64_t)T, n_out = n_ids * (uint64_t)E;
        float *table = malloc((size_t)(V * E) * sizeof *table);
        double *idv = malloc(n_ids * sizeof *idv);
        float *want = malloc(n_out * sizeof *want), *got = malloc(n_out * sizeof *got);
        assert_non_null(table);
        assert_non_null(idv);
        assert_non_null(want);
        assert_non_null(got);
        for (int64_t i = 0; i < V * E; i++)
            table[i] = (float)(urand() * 4 - 2);
        for (uint64_t i = 0; i < n_ids; i++)
            idv[i] = floor(urand() * (double)(2 * V)) - (double)V; /* [-V, V) */
        for (uint64_t p = 0; p < n_ids; p++) {
            int64_t row = (int64_t)idv[p] < 0 ? (int64_t)idv[p] + V : (int64_t)idv[p];
            for (int64_t e = 0; e < E; e++) {
                float w = table[row * E + e];
                want[p * (uint64_t)E + (uint64_t)e] =
                    cases[k].precision == CLEVAL_NN_FP16 ? hround(w) : w;
            }
        }
        void *ids = typed_data(cases[k].type, idv, n_ids);
        cleval_onnx_model *m = embedding_classifier(cases[k].type, T, V, E, table);
        cleval_nn_options options = {.precision = cases[k].precision};
        for (int v = 0; v < 2; v++) {
            cleval_device_set_variant(test_device(), VARIANTS[v]);
            cleval_nn *nn = NULL;
            assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
            assert_int_equal(cleval_nn_output_width(nn), (uint32_t)(T * E));
            assert_ok(cleval_nn_run(nn, ids, cases[k].n, got));
            assert_close(got, want, n_out, 0.0);
            cleval_nn_destroy(nn);
        }
        builder_free(m);
        free(ids);
        free(table);
        free(idv);
        free(want);
        free(got);
    }
    cleval_device_set_variant(test_device(), VARIANTS[0]);
}

/* An id outside [-V, V) fails the run naming node, id and sample; the next run works. */
static void test_gather_rows_out_of_range(void **state)
{
    (void)state;
    float table[4 * 2] = {1, 2, 3, 4, 5, 6, 7, 8};
    cleval_onnx_model *m = embedding_classifier(CLEVAL_ONNX_INT64, 2, 4, 2, table);
    int64_t bad[6] = {0, 1, 2, 3, -5, 1}, good[6] = {0, 1, 2, 3, -4, 1};
    float got[12], want[12] = {1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4};
    for (int v = 0; v < 2; v++) {
        cleval_device_set_variant(test_device(), VARIANTS[v]);
        cleval_nn *nn = NULL;
        assert_ok(cleval_nn_create(test_device(), m, &nn));
        assert_int_equal(cleval_nn_run(nn, bad, 3, got), CLEVAL_ERR_INPUT);
        assert_string_equal(cleval_last_error(),
                            "test.onnx: node 'embed' (Gather): index -5 in sample 2 of the batch "
                            "is outside the 4 rows of 'table'");
        bad[4] = 4;
        assert_int_equal(cleval_nn_run(nn, bad, 3, NULL), CLEVAL_ERR_INPUT);
        assert_non_null(strstr(cleval_last_error(), "index 4 in sample 2"));
        bad[4] = -5;
        assert_ok(cleval_nn_run(nn, good, 3, got));
        assert_close(got, want, 12, 0.0);
        cleval_nn_destroy(nn);
    }
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    builder_free(m);

    /* Runtime indices into a table that is not a constant, or float indices: refused. */
    m = builder_new(17);
    int64_t dims[2] = {-1, 3};
    builder_input(m, "x", 2, dims);
    builder_output(m, "y");
    builder_node(m, "Gather", "g", "x,x", "y");
    cleval_nn *nn = NULL;
    assert_int_equal(cleval_nn_create(test_device(), m, &nn), CLEVAL_ERR_UNSUPPORTED);
    assert_non_null(strstr(cleval_last_error(), "input 'x' (data) must be a constant"));
    builder_free(m);
    m = builder_new(17);
    int64_t tdims[2] = {4, 2};
    builder_input(m, "x", 2, dims);
    builder_output(m, "y");
    builder_init(m, "table", 2, tdims, table);
    builder_node(m, "Gather", "g", "table,x", "y");
    assert_int_equal(cleval_nn_create(test_device(), m, &nn), CLEVAL_ERR_UNSUPPORTED);
    assert_non_null(strstr(cleval_last_error(), "indices 'x' are float; int64 or int32"));
    builder_free(m);
}

/* Integer tensors moved before their Cast, as a model with its preprocessing inside does
 * (x.permute(0, 3, 1, 2).float()): x [N, 3, 4, 5] of `type` -> Transpose (0, 3, 1, 2) ->
 * Slice of the last axis [1, 4) -> Concat of two copies on axis 1 -> Gather of rows (2, 0) on
 * axis 2 -> Cast to float -> Flatten: [N, 60]. */
static cleval_onnx_model *moved_integers_classifier(int32_t type)
{
    cleval_onnx_model *m = builder_new(13);
    const int64_t dims[4] = {-1, 3, 4, 5};
    builder_input(m, "x", 4, dims);
    m->inputs[0].elem_type = type;
    builder_output(m, "y");
    const int64_t perm[4] = {0, 3, 1, 2}, one = 1;
    attr_ints(builder_node(m, "Transpose", "permute", "x", "t"), "perm", 4, perm);
    const int64_t start = 1, end = 4, axis = 3, rows[2] = {2, 0};
    builder_init_i64(m, "starts", 1, &one, &start);
    builder_init_i64(m, "ends", 1, &one, &end);
    builder_init_i64(m, "axes", 1, &one, &axis);
    builder_node(m, "Slice", "slice", "t,starts,ends,axes", "s");
    attr_int(builder_node(m, "Concat", "twice", "s,s", "c"), "axis", 1);
    const int64_t two = 2;
    builder_init_i64(m, "rows", 1, &two, rows);
    attr_int(builder_node(m, "Gather", "pick", "c,rows", "g"), "axis", 2);
    attr_int(builder_node(m, "Cast", "to_float", "g", "gf"), "to", CLEVAL_ONNX_FLOAT);
    builder_node(m, "Flatten", "flat", "gf", "y");
    return m;
}

/* moved_integers_classifier's output for sample values x[n][c][h][w] (plain C). */
static void moved_integers_reference(const double *x, uint32_t n, float *y)
{
    const int64_t rows[2] = {2, 0};
    uint64_t o = 0;
    for (uint32_t i = 0; i < n; i++)
        for (int copy = 0; copy < 2; copy++)
            for (int w = 0; w < 5; w++) /* t = [N, 5 (w), 3 (c), 4 (h)], sliced h in [1, 4) */
                for (int r = 0; r < 2; r++) /* Gather picks c = rows[r] */
                    for (int h = 1; h < 4; h++)
                        y[o++] = (float)x[((i * 3 + rows[r]) * 4 + h) * 5 + w];
}

/* Transpose, Slice, Concat and Gather move uint8 and int64 tensors exactly, on both families;
 * a Concat of a float and an integer tensor is refused naming the input. */
static void test_moved_integers(void **state)
{
    (void)state;
    const int32_t types[] = {CLEVAL_ONNX_UINT8, CLEVAL_ONNX_INT64};
    const uint32_t n = 3;
    double values[3 * 60];
    float want[3 * 60], got[3 * 60];
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        double hi = types[t] == CLEVAL_ONNX_UINT8 ? 255 : 1e7; /* exact in float */
        for (uint64_t i = 0; i < n * 60; i++)
            values[i] = floor(hi * urand());
        moved_integers_reference(values, n, want);
        void *x = typed_data(types[t], values, n * 60);
        cleval_onnx_model *m = moved_integers_classifier(types[t]);
        for (int v = 0; v < 2; v++) {
            cleval_device_set_variant(test_device(), VARIANTS[v]);
            cleval_nn *nn = NULL;
            assert_ok(cleval_nn_create(test_device(), m, &nn));
            memset(got, 0, sizeof got);
            assert_ok(cleval_nn_run(nn, x, n, got));
            assert_close(got, want, n * 60, 0.0);
            cleval_nn_destroy(nn);
        }
        builder_free(m);
        free(x);
    }
    cleval_device_set_variant(test_device(), VARIANTS[0]);

    cleval_onnx_model *m = builder_new(13);
    const int64_t dims[2] = {-1, 4};
    builder_input(m, "x", 2, dims);
    m->inputs[0].elem_type = CLEVAL_ONNX_INT64;
    builder_output(m, "y");
    attr_int(builder_node(m, "Cast", "to_float", "x", "xf"), "to", CLEVAL_ONNX_FLOAT);
    attr_int(builder_node(m, "Concat", "mixed", "xf,x", "y"), "axis", 1);
    cleval_nn *nn = NULL;
    assert_int_equal(cleval_nn_create(test_device(), m, &nn), CLEVAL_ERR_UNSUPPORTED);
    assert_non_null(strstr(cleval_last_error(), "node 'mixed' (Concat): input 'x' is int64"));
    builder_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_input_types), cmocka_unit_test(test_feed_refusals),
        cmocka_unit_test(test_cast),        cmocka_unit_test(test_cast_integers_and_refusals),
        cmocka_unit_test(test_input_prep),  cmocka_unit_test(test_input_prep_refusals),
        cmocka_unit_test(test_gather_rows), cmocka_unit_test(test_gather_rows_out_of_range),
        cmocka_unit_test(test_moved_integers),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
