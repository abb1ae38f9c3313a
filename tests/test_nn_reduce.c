/* Reductions, Pow, Sqrt and LayerNormalization: each kernel against a plain C reference in
 * double at odd sizes (1, primes, one more than a work-group) on both kernel families, in fp32
 * and with half storage; the axes as attribute and as constant input; the fusion of torch's
 * decomposed LayerNorm (exported models against onnxruntime, and patterns that must stay
 * unfused); and the refusals. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/dataset.h"
#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_builder.h"
#define NN_TEST_SEED 1234 /* the seed of this program's random inputs */
#include "nn_testutil.h"

/* ---- helpers ---- */

/* |got - want| <= tol[i] everywhere (NaN must match NaN, infinities exactly). */
static void assert_within(const float *got, const double *want, const double *tol, uint64_t n,
                          const char *what)
{
    for (uint64_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        if (isnan(w) && isnan(g)) continue;
        if (isinf(w) && g == w) continue;
        if (!(fabs(g - w) <= tol[i]))
            fail_msg("%s: element %llu is %.9g, expected %.9g (tolerance %.3g)", what,
                     (unsigned long long)i, g, w, tol[i]);
    }
}

/* ---- reductions ---- */

typedef enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_L2 } reduce_kind;
static const char *const REDUCE_NAMES[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin",
                                           "ReduceL2"};

typedef struct reduce_case {
    uint32_t rank;
    int64_t dims[8];
    uint32_t n_axes; /* 0: every axis */
    int64_t axes[8];
    float lo, hi; /* input range */
} reduce_case;

/* The output of reducing x (shape c) over the axes in `mask`, in double, with each output's
 * sum of |terms| (what the sum's rounding error scales with). */
static void ref_reduce(const reduce_case *c, uint32_t mask, reduce_kind kind, const float *x,
                       double *y, double *mag, uint64_t n_out)
{
    for (uint64_t o = 0; o < n_out; o++) {
        y[o] = kind == R_MAX ? -INFINITY : kind == R_MIN ? INFINITY : 0.0;
        mag[o] = 0.0;
    }
    uint64_t *counts = calloc(n_out ? n_out : 1, sizeof *counts);
    assert_non_null(counts);
    uint64_t n = count_of(c->rank, c->dims);
    for (uint64_t i = 0; i < n; i++) {
        /* Output index: the row-major index over the kept axes. */
        uint64_t rest = i, o = 0, scale = 1;
        for (int d = (int)c->rank - 1; d >= 0; d--) {
            uint64_t coord = rest % (uint64_t)c->dims[d];
            rest /= (uint64_t)c->dims[d];
            if (mask & (1u << d)) continue;
            o += coord * scale;
            scale *= (uint64_t)c->dims[d];
        }
        double v = x[i];
        counts[o]++;
        switch (kind) {
        case R_MAX: y[o] = v > y[o] ? v : y[o]; break;
        case R_MIN: y[o] = v < y[o] ? v : y[o]; break;
        case R_L2:
            y[o] += v * v;
            mag[o] += v * v;
            break;
        default:
            y[o] += v;
            mag[o] += fabs(v);
            break;
        }
    }
    for (uint64_t o = 0; o < n_out; o++) {
        if (kind == R_MEAN) {
            y[o] /= (double)counts[o];
            mag[o] /= (double)counts[o];
        }
        if (kind == R_L2) y[o] = sqrt(y[o]);
    }
    free(counts);
}

static uint32_t axes_mask(const reduce_case *c)
{
    if (c->n_axes == 0) return (1u << c->rank) - 1;
    uint32_t mask = 0;
    for (uint32_t i = 0; i < c->n_axes; i++)
        mask |= 1u << (c->axes[i] < 0 ? c->axes[i] + c->rank : c->axes[i]);
    return mask;
}

/* ONNX's output shape for the case. */
static uint32_t reduced_shape(const reduce_case *c, uint32_t mask, bool keepdims, int64_t *dims)
{
    uint32_t rank = 0;
    for (uint32_t i = 0; i < c->rank; i++)
        if (!(mask & (1u << i)))
            dims[rank++] = c->dims[i];
        else if (keepdims)
            dims[rank++] = 1;
    return rank;
}

/* Whether this opset gives the op its axes as an input (else as an attribute). */
static bool axes_as_input(reduce_kind kind, int64_t opset)
{
    return opset >= (kind == R_SUM ? 13 : 18);
}

/* x -> [Relu ->] Reduce -> [Relu ->] y. The Relus (fp16 runs) make the reduction read and
 * write activations stored as half; the inputs are then positive, so they change nothing. */
static cleval_onnx_model *reduce_model(const reduce_case *c, reduce_kind kind, int64_t opset,
                                       bool keepdims, bool relus)
{
    cleval_onnx_model *m = builder_new(opset);
    builder_input(m, "x", c->rank, c->dims);
    if (relus) builder_node(m, "Relu", "relu_in", "x", "xr");
    const char *in = relus ? "xr" : "x";
    const char *out = relus ? "r" : "y";
    char inputs[32];
    snprintf(inputs, sizeof inputs, "%s", in);
    bool input_axes = axes_as_input(kind, opset);
    if (input_axes && c->n_axes) {
        int64_t n = c->n_axes;
        builder_init_i64(m, "axes", 1, &n, c->axes);
        snprintf(inputs, sizeof inputs, "%s,axes", in);
    }
    cleval_onnx_node *node = builder_node(m, REDUCE_NAMES[kind], "reduce", inputs, out);
    if (!input_axes && c->n_axes) attr_ints(node, "axes", c->n_axes, c->axes);
    attr_int(node, "keepdims", keepdims);
    if (relus) builder_node(m, "Relu", "relu_out", "r", "y");
    builder_output(m, "y");
    return m;
}

static void check_reduce(const reduce_case *c, reduce_kind kind, int64_t opset, bool keepdims,
                         cleval_nn_precision precision)
{
    bool fp16 = precision == CLEVAL_NN_FP16;
    uint64_t n = count_of(c->rank, c->dims);
    float *x = random_array(n, c->lo, c->hi);
    if (fp16) /* the half-stored input is what the reduction reads */
        for (uint64_t i = 0; i < n; i++)
            x[i] = (float)(_Float16)x[i];
    uint32_t mask = axes_mask(c);
    int64_t odims[8];
    uint32_t orank = reduced_shape(c, mask, keepdims, odims);
    uint64_t n_out = count_of(orank, odims);
    double *want = malloc((n_out + 1) * sizeof *want), *mag = malloc((n_out + 1) * sizeof *mag);
    double *tol = malloc((n_out + 1) * sizeof *tol);
    ref_reduce(c, mask, kind, x, want, mag, n_out);
    /* Compensated float sums: error <= 2 eps sum|terms| (+ O(n eps^2), negligible here) plus
     * the output's own rounding; 4 eps leaves room for the division of the mean and the
     * square root of L2. Max and min are exact. Half output: its rounding, 2^-11. */
    for (uint64_t o = 0; o < n_out; o++) {
        double out_eps = fp16 ? 1.0 / 2048 : FLT_EPSILON;
        tol[o] = kind == R_MAX || kind == R_MIN
                     ? (fp16 ? out_eps * fabs(want[o]) : 0.0)
                     : 4.0 * FLT_EPSILON * mag[o] + out_eps * fabs(want[o]) + 1e-30;
        if (kind == R_L2) tol[o] += 4.0 * FLT_EPSILON * sqrt(mag[o]);
    }
    cleval_onnx_model *m = reduce_model(c, kind, opset, keepdims, fp16);
    for (size_t v = 0; v < N_VARIANTS; v++) {
        cleval_nn_tensor in = tensor(c->rank, c->dims, x), out = {0};
        run_general(m, VARIANTS[v], precision, &in, &out);
        assert_shape(&out, orank, odims);
        char what[160];
        snprintf(what, sizeof what, "%s opset %lld rank %u axes %u keepdims %d (%s%s)",
                 REDUCE_NAMES[kind], (long long)opset, c->rank, c->n_axes, keepdims,
                 cleval_variant_name(VARIANTS[v]), fp16 ? " fp16" : "");
        assert_within(out.data, want, tol, n_out, what);
        free(out.data);
    }
    builder_free(m);
    free(x);
    free(want);
    free(mag);
    free(tol);
}

static const reduce_case REDUCE_CASES[] = {
    {1, {1}, 1, {0}, -1, 1},
    {3, {3, 5, 7}, 1, {1}, -1, 1},
    {3, {3, 5, 7}, 1, {-1}, -1, 1},
    {3, {3, 5, 7}, 2, {0, 2}, -1, 1},
    {3, {3, 5, 7}, 0, {0}, -1, 1},                         /* every axis */
    {4, {2, 3, 17, 19}, 2, {2, 3}, -2, 2},                 /* spatial mean (mnasnet) */
    {4, {2, 3, 17, 19}, 2, {-1, -3}, -2, 2},               /* negative, out of order, apart */
    {3, {2, 257, 3}, 1, {1}, -1, 1},                       /* 2 x 3 outputs, strided rows */
    {2, {257, 5}, 1, {-1}, -1, 1},                         /* 257 outputs: a work-group + 1 */
    {8, {2, 3, 2, 3, 2, 3, 2, 3}, 4, {1, 3, 5, 7}, -1, 1}, /* 4 kept and 4 reduced runs */
    {2, {2, 4099}, 1, {1}, 1000, 1001}, /* long rows far from 0: a plain sum drifts */
    /* trailing axes, the CPU family's reduce_rows: rows 1, a prime, a CPU work-group + 1;
     * lengths 1, 7 (a tail only), 256 (vectors only), 1000 and 1025 (both) */
    {2, {1, 1000}, 1, {-1}, -1, 1},
    {2, {13, 7}, 1, {1}, -1, 1},
    {3, {257, 16, 16}, 2, {1, 2}, -1, 1},
    {2, {13, 1025}, 1, {-1}, -1, 1},
    {2, {257, 1}, 1, {1}, -1, 1},
    /* one reduced run with kept axes inside it, the CPU family's reduce_cols: 16 outputs per
     * work-item, whole (inner 48, 32) or not (inner 17, 7) */
    {3, {2, 7, 48}, 1, {1}, -1, 1},
    {3, {13, 5, 17}, 1, {-2}, -1, 1},
    {3, {1, 1000, 32}, 1, {1}, -1, 1},
    {4, {3, 2, 3, 7}, 2, {0, 1}, -1, 1},
};

static void test_reductions(void **state)
{
    (void)state;
    static const int64_t opsets[] = {13, 18};
    for (int kind = R_SUM; kind <= R_L2; kind++)
        for (size_t o = 0; o < 2; o++)
            for (size_t i = 0; i < sizeof REDUCE_CASES / sizeof REDUCE_CASES[0]; i++)
                check_reduce(&REDUCE_CASES[i], (reduce_kind)kind, opsets[o], i % 2 == 0,
                             CLEVAL_NN_FP32);
}

static void test_reductions_fp16(void **state)
{
    (void)state;
    static const reduce_case cases[] = {
        {3, {3, 5, 7}, 1, {-1}, 0.1f, 2},
        {4, {2, 3, 17, 19}, 2, {2, 3}, 0.1f, 2},
        {2, {257, 5}, 2, {0, 1}, 0.1f, 2},
        {2, {13, 1025}, 1, {1}, 0.1f, 2}, /* reduce_rows: vectors and a tail */
        {3, {3, 9, 40}, 1, {1}, 0.1f, 2}, /* reduce_cols: whole runs and a partial one */
    };
    for (int kind = R_SUM; kind <= R_L2; kind++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            check_reduce(&cases[i], (reduce_kind)kind, 18, true, CLEVAL_NN_FP16);
}

/* reduce_rows and reduce_cols keep the scalar loop's NaN rule: a NaN anywhere in what an
 * output reduces (a vector lane or the tail of a row; any step of a column) makes its max and
 * min NaN; an infinity wins over finite values. x [4, 37]: rows 0 and 1 hold a NaN, row 2 +inf,
 * row 3 -inf; reduced along axis 1 (rows) and, transposed as [37, 4] -> [1, 37, 16] columns
 * of the same values, along axis 1 of that. */
static void check_nonfinite(bool cols, reduce_kind kind, const float *rows)
{
    int64_t rdims[2] = {4, 37}, cdims[3] = {1, 37, 16};
    float *x = malloc(37 * 16 * sizeof *x);
    assert_non_null(x);
    for (int r = 0; r < 37; r++) /* column j of the second layout: row j % 4 of the first */
        for (int j = 0; j < 16; j++)
            x[r * 16 + j] = rows[(j % 4) * 37 + r];
    reduce_case c = cols ? (reduce_case){3, {1, 37, 16}, 1, {1}, -1, 1}
                         : (reduce_case){2, {4, 37}, 1, {-1}, -1, 1};
    cleval_onnx_model *m = reduce_model(&c, kind, 18, true, false);
    for (size_t v = 0; v < N_VARIANTS; v++) {
        cleval_nn_tensor in = cols ? tensor(3, cdims, x) : tensor(2, rdims, (float *)rows);
        cleval_nn_tensor out = {0};
        run_general(m, VARIANTS[v], CLEVAL_NN_FP32, &in, &out);
        const float *y = out.data;
        for (int j = 0; j < (cols ? 16 : 4); j++) {
            int r = j % 4;
            bool ok = r < 2 ? isnan(y[j])
                            : (r == 2 && kind == R_MAX   ? y[j] == INFINITY
                               : r == 3 && kind == R_MIN ? y[j] == -INFINITY
                                                         : isfinite(y[j]));
            if (!ok)
                fail_msg("%s %s (%s): output %d is %g", REDUCE_NAMES[kind], cols ? "cols" : "rows",
                         cleval_variant_name(VARIANTS[v]), j, y[j]);
        }
        free(out.data);
    }
    builder_free(m);
    free(x);
}

static void test_reduce_vectors_nonfinite(void **state)
{
    (void)state;
    float *x = random_array(4 * 37, -1, 1);
    x[0 * 37 + 5] = NAN;  /* in a vector lane */
    x[1 * 37 + 35] = NAN; /* in the tail */
    x[2 * 37 + 20] = INFINITY;
    x[3 * 37 + 3] = -INFINITY;
    for (int cols = 0; cols < 2; cols++)
        for (int kind = R_MAX; kind <= R_MIN; kind++)
            check_nonfinite(cols, (reduce_kind)kind, x);
    free(x);
}

/* The kernel a reduction runs on the CPU family: reduce_rows where the reduced axes are the
 * trailing ones, reduce_cols where they form one run with kept axes inside it, reduce
 * otherwise (two reduced runs); reduce on the GPU family. */
static void test_reduce_kernel_per_family(void **state)
{
    (void)state;
    static const struct {
        uint32_t n_axes;
        int64_t axes[2];
        const char *cpu;
    } cases[] = {{1, {2}, "reduce_rows"}, {1, {1}, "reduce_cols"}, {2, {0, 2}, "reduce"}};
    for (size_t v = 0; v < N_VARIANTS; v++)
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            reduce_case c = {3, {2, 3, 40}, cases[k].n_axes, {0}, -1, 1};
            memcpy(c.axes, cases[k].axes, sizeof cases[k].axes);
            cleval_onnx_model *m = reduce_model(&c, R_MEAN, 18, true, false);
            cleval_device_set_variant(test_device(), VARIANTS[v]);
            cleval_nn_options options = {.general = true};
            cleval_nn *nn;
            assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
            const char *want = VARIANTS[v] == CLEVAL_VARIANT_CPU ? cases[k].cpu : "reduce";
            const char *got = NULL;
            for (uint32_t i = 0; i < cleval_nn_layer_count(nn); i++)
                if (strcmp(cleval_nn_layer_at(nn, i)->op, "ReduceMean") == 0)
                    got = cleval_nn_layer_at(nn, i)->kernel;
            if (!got || strcmp(got, want) != 0)
                fail_msg("ReduceMean case %zu (%s) ran %s, expected %s", k,
                         cleval_variant_name(VARIANTS[v]), got ? got : "nothing", want);
            cleval_nn_destroy(nn);
            cleval_device_set_variant(test_device(), VARIANTS[0]);
            builder_free(m);
        }
}

/* A sum over no elements is 0, max -inf, min +inf; a reduction with nothing kept is empty. */
static void test_reduce_empty(void **state)
{
    (void)state;
    static const reduce_case empty_axis = {3, {3, 0, 2}, 1, {1}, -1, 1};
    static const reduce_case no_rows = {2, {0, 4}, 1, {1}, -1, 1};
    for (int kind = R_SUM; kind <= R_L2; kind++) {
        if (kind != R_MEAN) check_reduce(&empty_axis, (reduce_kind)kind, 18, false, CLEVAL_NN_FP32);
        check_reduce(&no_rows, (reduce_kind)kind, 18, true, CLEVAL_NN_FP32);
    }
}

/* noop_with_empty_axes=1 without axes passes the data through; without the flag every axis
 * is reduced. */
static void test_reduce_noop(void **state)
{
    (void)state;
    int64_t dims[] = {2, 3, 5};
    float *x = random_array(30, -2, 2);
    for (int noop = 0; noop < 2; noop++) {
        cleval_onnx_model *m = builder_new(18);
        builder_input(m, "x", 3, dims);
        cleval_onnx_node *node = builder_node(m, "ReduceL2", "l2", "x", "y");
        attr_int(node, "keepdims", 0);
        attr_int(node, "noop_with_empty_axes", noop);
        builder_output(m, "y");
        for (size_t v = 0; v < N_VARIANTS; v++) {
            cleval_nn_tensor in = tensor(3, dims, x), out = {0};
            run_general(m, VARIANTS[v], CLEVAL_NN_FP32, &in, &out);
            if (noop) {
                assert_shape(&out, 3, dims);
                for (int i = 0; i < 30; i++)
                    assert_true(out.data[i] == x[i]);
            } else {
                double s = 0;
                for (int i = 0; i < 30; i++)
                    s += (double)x[i] * x[i];
                assert_int_equal(out.rank, 0);
                assert_true(fabs(out.data[0] - sqrt(s)) <= 1e-6 * sqrt(s));
            }
            free(out.data);
        }
        builder_free(m);
    }
    free(x);
}

static void test_reduce_refusals(void **state)
{
    (void)state;
    int64_t dims[] = {2, 3};
    int64_t two = 2, axes_dup[] = {1, -1}, axes_far[] = {2};
    cleval_onnx_model *m = builder_new(18);
    builder_input(m, "x", 2, dims);
    builder_init_i64(m, "axes", 1, &two, axes_dup);
    builder_node(m, "ReduceMax", "dup", "x,axes", "y");
    builder_output(m, "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'dup' (ReduceMax)",
                           "axis -1 is given twice", NULL);

    m = builder_new(13);
    builder_input(m, "x", 2, dims);
    attr_ints(builder_node(m, "ReduceMean", "far", "x", "y"), "axes", 1, axes_far);
    builder_output(m, "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'far' (ReduceMean)",
                           "axis 2 is out of range for rank 2", NULL);

    int64_t one = 1;
    m = builder_new(13);
    builder_input(m, "x", 2, dims);
    builder_input(m, "axes", 1, &one);
    builder_node(m, "ReduceSum", "computed", "x,axes", "y");
    builder_output(m, "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'computed' (ReduceSum)",
                           "(axes) must be a constant", NULL);

    m = builder_new(13);
    builder_input(m, "x", 2, dims);
    attr_ints(builder_node(m, "ReduceSum", "attr", "x", "y"), "axes", 1, axes_far);
    builder_output(m, "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'attr' (ReduceSum)",
                           "attribute axes", NULL);

    /* A classifier must not average over its batch. */
    int64_t batch[] = {-1, 5}, axis0 = 0;
    m = builder_new(13);
    builder_input(m, "x", 2, batch);
    attr_ints(builder_node(m, "ReduceMean", "over_batch", "x", "y"), "axes", 1, &axis0);
    builder_output(m, "y");
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "node 'over_batch' (ReduceMean)",
                           "combines samples across the batch axis", NULL);
}

/* ---- Pow and Sqrt ---- */

/* One ulp of float at |w|. */
static double ulp(double w)
{
    if (!isfinite(w)) return 0; /* NaN and infinities must match exactly */
    return w == 0 ? FLT_MIN : ldexp(1.0, ilogb(w) - 23);
}

/* Pow(x, constant scalar e): x^2 exactly rounded, x^0.5 within the square root's accuracy,
 * other exponents through pow (OpenCL: 16 ulp). */
static void test_pow_scalar(void **state)
{
    (void)state;
    static const float exps[] = {2.0f, 0.5f, 3.0f, -1.5f, 1.0f};
    static const double ulps[] = {0.5, 3, 16, 16, 0};
    int64_t dims[] = {3, 7, 11}, scalar_dims[] = {1};
    uint64_t n = count_of(3, dims);
    float *x = random_array(n, 0.01f, 3.0f);
    x[0] = -0.0f;
    x[1] = -2.5f;
    double *want = malloc(n * sizeof *want), *tol = malloc(n * sizeof *tol);
    for (size_t e = 0; e < sizeof exps / sizeof exps[0]; e++) {
        for (uint64_t i = 0; i < n; i++) {
            want[i] = e == 0 ? (double)(x[i] * x[i]) : pow((double)x[i], (double)exps[e]);
            tol[i] = ulps[e] * ulp(want[i]);
        }
        cleval_onnx_model *m = builder_new(13);
        builder_input(m, "x", 3, dims);
        builder_constant(m, "e", 1, scalar_dims, &exps[e], NULL);
        builder_node(m, "Pow", "pow", "x,e", "y");
        builder_output(m, "y");
        for (size_t v = 0; v < N_VARIANTS; v++) {
            cleval_nn_tensor in = tensor(3, dims, x), out = {0};
            run_general(m, VARIANTS[v], CLEVAL_NN_FP32, &in, &out);
            assert_shape(&out, 3, dims);
            char what[64];
            snprintf(what, sizeof what, "Pow(x, %g) (%s)", exps[e],
                     cleval_variant_name(VARIANTS[v]));
            assert_within(out.data, want, tol, n, what);
            if (exps[e] == 0.5f) assert_false(signbit(out.data[0])); /* (-0)^0.5 = +0 */
            free(out.data);
        }
        builder_free(m);
    }
    free(x);
    free(want);
    free(tol);
}

/* Pow with a computed exponent broadcast against the base, an int64 exponent tensor, an int64
 * scalar exponent, and Sqrt, in fp32 and with half storage. */
static void test_pow_computed_and_sqrt(void **state)
{
    (void)state;
    int64_t xd[] = {3, 1, 5}, ed[] = {4, 1}, yd[] = {3, 4, 5};
    float *x = random_array(15, 0.1f, 3.0f), *e = random_array(4, -2.0f, 2.0f);
    double want[60], tol[60];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 5; k++) {
                want[(i * 4 + j) * 5 + k] = pow(x[i * 5 + k], e[j]);
                tol[(i * 4 + j) * 5 + k] = 16 * ulp(want[(i * 4 + j) * 5 + k]);
            }
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 3, xd);
    builder_input(m, "e", 2, ed);
    builder_node(m, "Pow", "pow", "x,e", "y");
    builder_output(m, "y");
    for (size_t v = 0; v < N_VARIANTS; v++) {
        cleval_nn_tensor in[2] = {tensor(3, xd, x), tensor(2, ed, e)}, out = {0};
        run_general(m, VARIANTS[v], CLEVAL_NN_FP32, in, &out);
        assert_shape(&out, 3, yd);
        assert_within(out.data, want, tol, 60, "Pow(x, e) broadcast");
        free(out.data);
    }
    builder_free(m);

    /* The exponent as an int64 initializer of the same shape. */
    int64_t ints[4] = {-2, 0, 1, 3};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 5; k++) {
                want[(i * 4 + j) * 5 + k] = pow(x[i * 5 + k], (double)ints[j]);
                tol[(i * 4 + j) * 5 + k] = 16 * ulp(want[(i * 4 + j) * 5 + k]);
            }
    m = builder_new(13);
    builder_input(m, "x", 3, xd);
    builder_init_i64(m, "e", 2, ed, ints);
    builder_node(m, "Pow", "pow", "x,e", "y");
    builder_output(m, "y");
    for (size_t v = 0; v < N_VARIANTS; v++) {
        cleval_nn_tensor in = tensor(3, xd, x), out = {0};
        run_general(m, VARIANTS[v], CLEVAL_NN_FP32, &in, &out);
        assert_shape(&out, 3, yd);
        assert_within(out.data, want, tol, 60, "Pow(x, int64 e) broadcast");
        free(out.data);
    }
    builder_free(m);

    /* x -> Relu -> Pow(int64 3) -> Sqrt -> Relu: sqrt(x^3), half-stored in fp16. */
    int64_t three = 3, scalar[] = {1};
    for (int p = 0; p < 2; p++) {
        m = builder_new(13);
        builder_input(m, "x", 3, xd);
        builder_init_i64(m, "three", 0, scalar, &three);
        builder_node(m, "Relu", "r0", "x", "a");
        builder_node(m, "Pow", "cube", "a,three", "b");
        builder_node(m, "Sqrt", "root", "b", "c");
        builder_node(m, "Relu", "r1", "c", "y");
        builder_output(m, "y");
        for (int i = 0; i < 15; i++) {
            double xi = p ? (double)(_Float16)x[i] : x[i];
            want[i] = sqrt(xi * xi * xi);
            tol[i] = p ? 3.0 / 2048 * want[i] : 20 * ulp(want[i]);
        }
        for (size_t v = 0; v < N_VARIANTS; v++) {
            cleval_nn_tensor in = tensor(3, xd, x), out = {0};
            run_general(m, VARIANTS[v], p ? CLEVAL_NN_FP16 : CLEVAL_NN_FP32, &in, &out);
            assert_shape(&out, 3, xd);
            assert_within(out.data, want, tol, 15, p ? "sqrt(x^3) fp16" : "sqrt(x^3)");
            free(out.data);
        }
        builder_free(m);
    }
    free(x);
    free(e);
}

/* ---- LayerNormalization ---- */

/* y = (x - mean) / sqrt(var + eps) * scale + bias over rows of len (double). */
static void ref_layernorm(const float *x, uint64_t rows, uint64_t len, const float *scale,
                          uint64_t n_scale, const float *bias, uint64_t n_bias, float eps,
                          double *y)
{
    for (uint64_t r = 0; r < rows; r++) {
        const float *row = x + r * len;
        double mean = 0, var = 0;
        for (uint64_t j = 0; j < len; j++)
            mean += row[j];
        mean /= (double)len;
        for (uint64_t j = 0; j < len; j++)
            var += (row[j] - mean) * (row[j] - mean);
        var /= (double)len;
        double inv = 1.0 / sqrt(var + eps);
        for (uint64_t j = 0; j < len; j++)
            y[r * len + j] = (row[j] - mean) * inv * scale[n_scale > 1 ? j : 0] +
                             (bias ? bias[n_bias > 1 ? j : 0] : 0.0);
    }
}

typedef struct ln_case {
    uint32_t rank;
    int64_t dims[4];
    int64_t axis;
    bool scalar_scale, bias;
} ln_case;

static void check_layernorm(const ln_case *c, cleval_nn_precision precision)
{
    bool fp16 = precision == CLEVAL_NN_FP16;
    uint32_t axis = (uint32_t)(c->axis < 0 ? c->axis + c->rank : c->axis);
    uint64_t rows = count_of(axis, c->dims), len = count_of(c->rank - axis, c->dims + axis);
    uint64_t n = rows * len;
    float *x = random_array(n, -3, 5);
    for (uint64_t i = 0; fp16 && i < n; i++)
        x[i] = fabsf((float)(_Float16)x[i]); /* positive: the Relu in front changes nothing */
    uint64_t n_affine = c->scalar_scale ? 1 : len;
    float *scale = random_array(n_affine, 0.5f, 1.5f), *bias = random_array(n_affine, -1, 1);
    const float eps = 1e-5f;
    double *want = malloc(n * sizeof *want), *tol = malloc(n * sizeof *tol);
    ref_layernorm(x, rows, len, scale, n_affine, c->bias ? bias : NULL, n_affine, eps, want);
    /* Float mean and variance of normalised values of magnitude <= sqrt(len): a few ulps of
     * the larger of the two terms. Half output: its rounding, 2^-11 relative. */
    for (uint64_t i = 0; i < n; i++)
        tol[i] = fp16 ? 2e-3 * fabs(want[i]) + 2e-3 : 1e-5 * (1 + fabs(want[i]));
    int64_t affine_dims[4];
    uint32_t affine_rank = c->scalar_scale ? 1 : c->rank - axis;
    if (c->scalar_scale)
        affine_dims[0] = 1;
    else
        memcpy(affine_dims, c->dims + axis, affine_rank * sizeof *affine_dims);
    cleval_onnx_model *m = builder_new(17);
    builder_input(m, "x", c->rank, c->dims);
    builder_init(m, "scale", affine_rank, affine_dims, scale);
    builder_init(m, "bias", affine_rank, affine_dims, bias);
    if (fp16) builder_node(m, "Relu", "r0", "x", "xr");
    cleval_onnx_node *node = builder_node(m, "LayerNormalization", "ln",
                                          c->bias ? (fp16 ? "xr,scale,bias" : "x,scale,bias")
                                                  : (fp16 ? "xr,scale" : "x,scale"),
                                          fp16 ? "n" : "y");
    attr_int(node, "axis", c->axis);
    attr_float(node, "epsilon", eps);
    if (fp16) builder_node(m, "Relu", "r1", "n", "y");
    builder_output(m, "y");
    if (fp16)
        for (uint64_t i = 0; i < n; i++)
            want[i] = want[i] > 0 ? want[i] : 0;
    for (size_t v = 0; v < N_VARIANTS; v++) {
        cleval_nn_tensor in = tensor(c->rank, c->dims, x), out = {0};
        run_general(m, VARIANTS[v], precision, &in, &out);
        assert_shape(&out, c->rank, c->dims);
        char what[128];
        snprintf(what, sizeof what, "LayerNormalization rows %llu len %llu (%s%s)",
                 (unsigned long long)rows, (unsigned long long)len,
                 cleval_variant_name(VARIANTS[v]), fp16 ? " fp16" : "");
        assert_within(out.data, want, tol, n, what);
        free(out.data);
    }
    builder_free(m);
    free(x);
    free(scale);
    free(bias);
    free(want);
    free(tol);
}

static void test_layernorm(void **state)
{
    (void)state;
    static const ln_case cases[] = {
        {2, {3, 1}, -1, false, true},      /* rows of 1: y = bias */
        {3, {2, 3, 13}, -1, false, true},  /* a prime */
        {2, {65, 257}, 1, false, true},    /* rows of a work-group + 1, 65 rows */
        {3, {1, 257, 5}, 1, false, false}, /* two axes, no bias */
        {3, {7, 4, 11}, -2, true, true},   /* one scale and one bias value */
        /* the CPU family's layer_norm_rows: rows of 16-wide vectors and a scalar tail */
        {2, {1, 1000}, 1, false, true}, /* one row, 62 vectors and a tail of 8 */
        {2, {257, 7}, -1, false, true}, /* tail only, rows of a CPU work-group + 1 */
        {2, {13, 256}, 1, false, true}, /* vectors only */
        {2, {3, 1025}, 1, true, true},  /* a tail of 1, one scale and bias value */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_layernorm(&cases[i], CLEVAL_NN_FP32);
        check_layernorm(&cases[i], CLEVAL_NN_FP16);
    }
}

static void test_layernorm_refusals(void **state)
{
    (void)state;
    int64_t dims[] = {2, 3, 5}, five[] = {5}, three_one[] = {3, 1};
    float ones[5] = {1, 1, 1, 1, 1};
    cleval_onnx_model *m = builder_new(17);
    builder_input(m, "x", 3, dims);
    builder_init(m, "scale", 1, five, ones);
    attr_int(builder_node(m, "LayerNormalization", "stash", "x,scale", "y"), "stash_type", 0);
    builder_output(m, "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'stash' (LayerNormalization)",
                           "stash_type=0", NULL);

    m = builder_new(17);
    builder_input(m, "x", 3, dims);
    builder_init(m, "scale", 1, five, ones);
    builder_node(m, "LayerNormalization", "stats", "x,scale", "y,mean");
    builder_node(m, "Add", "use_mean", "y,mean", "z");
    builder_output(m, "z");
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'stats' (LayerNormalization)",
                           "output 1 ('mean') is not supported", NULL);

    m = builder_new(17);
    builder_input(m, "x", 3, dims);
    builder_input(m, "scale", 1, five);
    builder_node(m, "LayerNormalization", "computed", "x,scale", "y");
    builder_output(m, "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'computed' (LayerNormalization)",
                           "(Scale) must be a constant", NULL);

    m = builder_new(17);
    builder_input(m, "x", 3, dims);
    builder_init(m, "scale", 2, three_one, ones);
    attr_int(builder_node(m, "LayerNormalization", "partial", "x,scale", "y"), "axis", 1);
    builder_output(m, "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'partial' (LayerNormalization)",
                           "Scale of shape [3, 1]", NULL);
}

/* The kernel LayerNormalization runs: layer_norm_rows (each row on float16 vectors) on the CPU
 * family, layer_norm (one row per work-item, scalar) on the GPU family. */
static void test_layernorm_kernel_per_family(void **state)
{
    (void)state;
    int64_t dims[2] = {5, 300};
    float scale[300];
    for (int i = 0; i < 300; i++)
        scale[i] = 1.0f;
    for (size_t v = 0; v < N_VARIANTS; v++) {
        cleval_onnx_model *m = builder_new(17);
        builder_input(m, "x", 2, dims);
        builder_init(m, "scale", 1, dims + 1, scale);
        builder_node(m, "LayerNormalization", "ln", "x,scale", "y");
        builder_output(m, "y");
        cleval_device_set_variant(test_device(), VARIANTS[v]);
        cleval_nn_options options = {.general = true};
        cleval_nn *nn;
        assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
        const char *want = VARIANTS[v] == CLEVAL_VARIANT_CPU ? "layer_norm_rows" : "layer_norm";
        const char *got = NULL;
        for (uint32_t i = 0; i < cleval_nn_layer_count(nn); i++)
            if (strcmp(cleval_nn_layer_at(nn, i)->op, "LayerNormalization") == 0)
                got = cleval_nn_layer_at(nn, i)->kernel;
        if (!got || strcmp(got, want) != 0)
            fail_msg("LayerNormalization (%s) ran %s, expected %s",
                     cleval_variant_name(VARIANTS[v]), got ? got : "nothing", want);
        cleval_nn_destroy(nn);
        cleval_device_set_variant(test_device(), VARIANTS[0]);
        builder_free(m);
    }
}

/* ---- the decomposed LayerNorm ---- */

/* How many layers run op `op` exactly. */
static uint32_t layers_running(const cleval_nn *nn, const char *op)
{
    uint32_t count = 0;
    for (uint32_t i = 0; i < cleval_nn_layer_count(nn); i++)
        count += strcmp(cleval_nn_layer_at(nn, i)->op, op) == 0;
    return count;
}

/* nn.LayerNorm exported at opset 13 (decomposed: fused back into two LayerNormalization
 * layers) and 17, against onnxruntime, batch 7 and batches of 3, both families. */
static void test_exported_layernorm(void **state)
{
    (void)state;
    cleval_dataset *ds;
    assert_ok(cleval_dataset_open(fixture_path("onnx/layernorm_io.h5"), &ds));
    uint64_t n, size, n2, width;
    float *x = read_column(ds, "X", &n, &size);
    static const int opsets[] = {13, 17};
    for (int o = 0; o < 2; o++) {
        char path[64], column[32];
        snprintf(path, sizeof path, "onnx/layernorm_%d.onnx", opsets[o]);
        snprintf(column, sizeof column, "scores_ort_%d", opsets[o]);
        float *ref = read_column(ds, column, &n2, &width);
        assert_int_equal(n, n2);
        double *want = malloc(n * width * sizeof *want), *tol = malloc(n * width * sizeof *tol);
        for (uint64_t i = 0; i < n * width; i++) {
            want[i] = ref[i];
            tol[i] = 1e-5;
        }
        float *scores = malloc(n * width * sizeof *scores);
        cleval_onnx_model *model;
        assert_ok(cleval_onnx_load(fixture_path(path), &model));
        for (size_t v = 0; v < N_VARIANTS; v++) {
            cleval_device_set_variant(test_device(), VARIANTS[v]);
            cleval_nn *nn;
            assert_ok(cleval_nn_create(test_device(), model, &nn));
            assert_int_equal(layers_running(nn, "LayerNormalization"), 2);
            assert_int_equal(layers_running(nn, "ReduceMean"), 0);
            static const uint32_t batches[] = {7, 3};
            for (size_t b = 0; b < 2; b++) {
                for (uint64_t i = 0; i < n; i += batches[b]) {
                    uint32_t count = (uint32_t)(n - i < batches[b] ? n - i : batches[b]);
                    assert_ok(cleval_nn_run(nn, x + i * size, count, scores + i * width));
                }
                char what[96];
                snprintf(what, sizeof what, "%s vs onnxruntime, batch %u (%s)", path, batches[b],
                         cleval_variant_name(VARIANTS[v]));
                assert_within(scores, want, tol, n * width, what);
            }
            cleval_nn_destroy(nn);
        }
        cleval_device_set_variant(test_device(), VARIANTS[0]);
        cleval_onnx_free(model);
        free(ref);
        free(want);
        free(tol);
        free(scores);
    }
    free(x);
    cleval_dataset_close(ds);
}

/* The decomposed pattern over `axis` with exponent `power`; gamma and beta over the last
 * axis. `plus_d`: the result plus Sub's output d (a third reader of d). */
static cleval_onnx_model *decomposed_model(const int64_t *dims, int64_t axis, float power,
                                           const float *gamma, const float *beta, bool plus_d)
{
    int64_t scalar[] = {1};
    float eps = 1e-5f;
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 3, dims);
    builder_init(m, "gamma", 1, dims + 2, gamma);
    builder_init(m, "beta", 1, dims + 2, beta);
    builder_constant(m, "power", 0, scalar, &power, NULL);
    builder_constant(m, "eps", 0, scalar, &eps, NULL);
    attr_ints(builder_node(m, "ReduceMean", "mean", "x", "a"), "axes", 1, &axis);
    builder_node(m, "Sub", "sub", "x,a", "d");
    builder_node(m, "Pow", "pow", "d,power", "p");
    attr_ints(builder_node(m, "ReduceMean", "var", "p", "v"), "axes", 1, &axis);
    builder_node(m, "Add", "add_eps", "v,eps", "e");
    builder_node(m, "Sqrt", "sqrt", "e", "s");
    builder_node(m, "Div", "div", "d,s", "q");
    builder_node(m, "Mul", "mul", "q,gamma", "g");
    /* beta first: either order fuses */
    builder_node(m, "Add", "add_beta", "beta,g", plus_d ? "n" : "y");
    if (plus_d) builder_node(m, "Add", "add_d", "n,d", "y");
    builder_output(m, "y");
    return m;
}

/* The decomposition in double: normalised over `axis` of a [d0, d1, d2] x. */
static void ref_decomposed(const int64_t *d, int64_t axis, float power, bool plus_d, const float *x,
                           const float *gamma, const float *beta, double *y)
{
    int64_t len = d[axis], stride = axis == 2 ? 1 : d[2];
    for (int64_t i = 0; i < d[0]; i++)
        for (int64_t o = 0; o < (axis == 2 ? d[1] : d[2]); o++) {
            int64_t base = axis == 2 ? (i * d[1] + o) * d[2] : i * d[1] * d[2] + o;
            double mean = 0, var = 0;
            for (int64_t j = 0; j < len; j++)
                mean += x[base + j * stride];
            mean /= (double)len;
            for (int64_t j = 0; j < len; j++)
                var += pow(x[base + j * stride] - mean, power);
            var /= (double)len;
            for (int64_t j = 0; j < len; j++) {
                int64_t at = base + j * stride, c = at % d[2];
                y[at] = (x[at] - mean) / sqrt(var + 1e-5) * gamma[c] + beta[c] +
                        (plus_d ? x[at] - mean : 0.0);
            }
        }
}

/* Fused when exact (the last axis, Pow 2); left as it is, and still right, when the means are
 * over another axis, the power is 4, or x - mean is read elsewhere too. */
static void test_decomposed_fusion(void **state)
{
    (void)state;
    int64_t dims[] = {2, 5, 7};
    float *x = random_array(70, -2, 3), *gamma = random_array(7, 0.5f, 1.5f);
    float *beta = random_array(7, -1, 1);
    static const struct {
        int64_t axis;
        float power;
        bool plus_d, fused;
        uint32_t layers;
    } cases[] = {{-1, 2.0f, false, true, 1},
                 {2, 2.0f, false, true, 1},
                 {1, 2.0f, false, false, 9},
                 {-1, 4.0f, false, false, 9},
                 {-1, 2.0f, true, false, 10}};
    double want[70], tol[70];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ref_decomposed(dims, cases[c].axis == -1 ? 2 : cases[c].axis, cases[c].power,
                       cases[c].plus_d, x, gamma, beta, want);
        for (int i = 0; i < 70; i++)
            tol[i] = 2e-5 * (1 + fabs(want[i]));
        cleval_onnx_model *m =
            decomposed_model(dims, cases[c].axis, cases[c].power, gamma, beta, cases[c].plus_d);
        for (size_t v = 0; v < N_VARIANTS; v++) {
            cleval_device_set_variant(test_device(), VARIANTS[v]);
            cleval_nn_options options = {.general = true};
            cleval_nn *nn;
            assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
            assert_int_equal(layers_running(nn, "LayerNormalization"), cases[c].fused ? 1 : 0);
            assert_int_equal(cleval_nn_layer_count(nn), cases[c].layers);
            cleval_nn_tensor in = tensor(3, dims, x), out = {0};
            assert_ok(cleval_nn_run_graph(nn, &in, &out));
            cleval_nn_destroy(nn);
            assert_shape(&out, 3, dims);
            assert_within(out.data, want, tol, 70, "decomposed LayerNorm");
            free(out.data);
        }
        cleval_device_set_variant(test_device(), VARIANTS[0]);
        builder_free(m);
    }
    free(x);
    free(gamma);
    free(beta);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reductions),
        cmocka_unit_test(test_reductions_fp16),
        cmocka_unit_test(test_reduce_vectors_nonfinite),
        cmocka_unit_test(test_reduce_kernel_per_family),
        cmocka_unit_test(test_reduce_empty),
        cmocka_unit_test(test_reduce_noop),
        cmocka_unit_test(test_reduce_refusals),
        cmocka_unit_test(test_pow_scalar),
        cmocka_unit_test(test_pow_computed_and_sqrt),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_layernorm_refusals),
        cmocka_unit_test(test_layernorm_kernel_per_family),
        cmocka_unit_test(test_exported_layernorm),
        cmocka_unit_test(test_decomposed_fusion),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
