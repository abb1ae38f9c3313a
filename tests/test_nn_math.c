/* The elementwise math operators (Exp, Log, Neg, Abs, Reciprocal, Erf, Gelu, LeakyRelu, Elu,
 * Celu, Selu, HardSigmoid, HardSwish, Softplus, PRelu), MaxPool / AveragePool with ceil_mode and
 * auto_pad on Conv and the pools: each against a plain C reference (libm in double) at odd sizes
 * on both kernel families (the unary ops: unary_runs on CPUs, checked by name), in fp32 and with
 * half storage (fp16); against onnxruntime's outputs
 * (tests/fixtures/nn_math_ort.h, written by tools/make_nn_math_fixtures.py); the fusions that
 * must leave ceil_mode and SAME pools alone; and the refusals. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_builder.h"
#define NN_TEST_SEED 7 /* the seed of this program's random inputs */
#include "nn_testutil.h"
#include "pool_reference.h"

static const cleval_nn_precision PRECISIONS[] = {CLEVAL_NN_FP32, CLEVAL_NN_FP16};

/* ---- helpers ---- */

static double *doubles(uint64_t n)
{
    double *a = calloc(n ? n : 1, sizeof *a);
    assert_non_null(a);
    return a;
}

/* The inputs as the op under test reads them: rounded to half in fp16. */
static float *as_stored(const float *x, uint64_t n, cleval_nn_precision precision)
{
    float *r = malloc((n ? n : 1) * sizeof *r);
    assert_non_null(r);
    for (uint64_t i = 0; i < n; i++)
        r[i] = precision == CLEVAL_NN_FP16 ? hround(x[i]) : x[i];
    return r;
}

/* got against the reference want (computed in double from the stored inputs): in fp32
 * |got - want| <= atol + rtol |want| once want is rounded to float; in fp16 got must be a half
 * value within that, plus one half ulp, of want rounded to half. NaN must match NaN, an infinity
 * the same infinity. */
static void assert_result(const float *got, const double *want, uint64_t n,
                          cleval_nn_precision precision, double atol, double rtol, const char *what)
{
    bool half = precision == CLEVAL_NN_FP16;
    for (uint64_t i = 0; i < n; i++) {
        double g = got[i], w = half ? hround(want[i]) : (float)want[i];
        if (isnan(w) && isnan(g)) continue;
        if (isinf(w) && g == w) continue;
        if (half && hround(g) != (float)g)
            fail_msg("%s: element %llu = %.9g is not a half value", what, (unsigned long long)i, g);
        double slack = atol + rtol * fabs(w) + (half ? half_ulp(w) : 0.0);
        if (!(fabs(g - w) <= slack))
            fail_msg("%s: element %llu is %.9g, expected %.9g (from %.9g)", what,
                     (unsigned long long)i, g, w, want[i]);
    }
}

static void assert_named_shape(const cleval_nn_tensor *t, uint32_t rank, const int64_t *dims,
                               const char *what)
{
    assert_int_equal(t->rank, rank);
    for (uint32_t i = 0; i < rank; i++)
        if (t->dims[i] != dims[i])
            fail_msg("%s: output axis %u is %lld, expected %lld", what, i, (long long)t->dims[i],
                     (long long)dims[i]);
}

/* A graph x -> Mul by 1 -> "a" -> (the op under test, added by the caller: "a" -> "b") -> Mul
 * by 1 -> "y" (added by frame_end). In fp16 the Muls store "a" and "b" as half (graph inputs and
 * outputs stay float), so the op reads and writes half; in fp32 multiplying by 1 is exact. */
static cleval_onnx_model *framed(int64_t opset, uint32_t rank, const int64_t *dims)
{
    static const float one = 1.0f;
    int64_t d = 1;
    cleval_onnx_model *m = builder_new(opset);
    builder_input(m, "x", rank, dims);
    builder_init(m, "one", 1, &d, &one);
    builder_node(m, "Mul", "into", "x,one", "a");
    return m;
}

/* Closes a framed graph once the op under test is added. */
static void frame_end(cleval_onnx_model *m)
{
    builder_node(m, "Mul", "out_of", "b,one", "y");
    builder_output(m, "y");
}

static const char *precision_name(cleval_nn_precision p)
{
    return p == CLEVAL_NN_FP16 ? "fp16" : "fp32";
}

static const char *variant_name(cleval_kernel_variant v)
{
    return v == CLEVAL_VARIANT_GPU ? "gpu" : "cpu";
}

/* ---- unary math ---- */

static double ref_exp(double x, double a, double b)
{
    (void)a, (void)b;
    return exp(x);
}
static double ref_log(double x, double a, double b)
{
    (void)a, (void)b;
    return log(x);
}
static double ref_neg(double x, double a, double b)
{
    (void)a, (void)b;
    return -x;
}
static double ref_abs(double x, double a, double b)
{
    (void)a, (void)b;
    return fabs(x);
}
static double ref_reciprocal(double x, double a, double b)
{
    (void)a, (void)b;
    return 1.0 / x;
}
static double ref_erf(double x, double a, double b)
{
    (void)a, (void)b;
    return erf(x);
}
static double ref_gelu(double x, double a, double b)
{
    (void)a, (void)b;
    return 0.5 * x * erfc(-x / sqrt(2.0));
}
static double ref_gelu_tanh(double x, double a, double b)
{
    (void)a, (void)b;
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
}
static double ref_leaky_relu(double x, double a, double b)
{
    (void)b;
    return x < 0 ? a * x : x;
}
static double ref_elu(double x, double a, double b)
{
    (void)b;
    return x < 0 ? a * expm1(x) : x;
}
static double ref_celu(double x, double a, double b)
{
    (void)b;
    return fmax(0.0, x) + fmin(0.0, a * expm1(x / a));
}
static double ref_selu(double x, double a, double b)
{
    return b * (x <= 0 ? a * expm1(x) : x);
}
static double ref_hard_sigmoid(double x, double a, double b)
{
    return fmax(0.0, fmin(1.0, a * x + b));
}
static double ref_hard_swish(double x, double a, double b)
{
    (void)a, (void)b;
    return x * fmax(0.0, fmin(1.0, x / 6.0 + 0.5));
}
static double ref_softplus(double x, double a, double b)
{
    (void)a, (void)b;
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

typedef struct unary_case {
    const char *op;
    int64_t opset;
    const char *alpha_name;
    float alpha;
    const char *beta_name;
    float beta;
    const char *approximate; /* Gelu */
    double (*ref)(double x, double a, double b);
    double atol, rtol;
} unary_case;

static const unary_case UNARY[] = {
    {"Exp", 13, NULL, 0, NULL, 0, NULL, ref_exp, 0, 1e-6},
    {"Log", 13, NULL, 0, NULL, 0, NULL, ref_log, 1e-7, 1e-6},
    {"Neg", 13, NULL, 0, NULL, 0, NULL, ref_neg, 0, 0},
    {"Abs", 13, NULL, 0, NULL, 0, NULL, ref_abs, 0, 0},
    {"Reciprocal", 13, NULL, 0, NULL, 0, NULL, ref_reciprocal, 0, 1e-7},
    /* Erf within 2 float ulps of the exact value (erff's own accuracy) */
    {"Erf", 13, NULL, 0, NULL, 0, NULL, ref_erf, 1e-9, 2.5e-7},
    {"Gelu", 20, NULL, 0, NULL, 0, NULL, ref_gelu, 1e-7, 1e-6},
    {"Gelu", 20, NULL, 0, NULL, 0, "tanh", ref_gelu_tanh, 1e-6, 1e-6},
    {"LeakyRelu", 16, "alpha", 0.13f, NULL, 0, NULL, ref_leaky_relu, 0, 1e-7},
    {"LeakyRelu", 13, NULL, 0.01f, NULL, 0, NULL, ref_leaky_relu, 0, 1e-7},
    {"Elu", 13, "alpha", 0.7f, NULL, 0, NULL, ref_elu, 1e-7, 1e-6},
    {"Celu", 13, "alpha", 1.5f, NULL, 0, NULL, ref_celu, 1e-7, 1e-6},
    {"Selu", 13, NULL, 1.67326319217681884765625f, NULL, 1.05070102214813232421875f, NULL, ref_selu,
     1e-7, 1e-6},
    {"Selu", 13, "alpha", 2.0f, "gamma", 0.5f, NULL, ref_selu, 1e-7, 1e-6},
    {"HardSigmoid", 13, NULL, 0.2f, NULL, 0.5f, NULL, ref_hard_sigmoid, 1e-7, 1e-7},
    {"HardSigmoid", 13, "alpha", 0.3f, "beta", 0.4f, NULL, ref_hard_sigmoid, 1e-7, 1e-7},
    {"HardSwish", 14, NULL, 0, NULL, 0, NULL, ref_hard_swish, 1e-7, 1e-6},
    {"Softplus", 13, NULL, 0, NULL, 0, NULL, ref_softplus, 1e-7, 1e-6},
};

/* Sizes: 1, a prime, one more than the GPU-style and CPU-style work-groups (64 and 256), and
 * empty. */
static const int64_t SIZES[] = {1, 13, 65, 257, 0};

/* Special inputs first (zeros, large magnitudes, negatives for Log), then random ones. */
static float *unary_input(uint64_t n)
{
    static const float special[] = {0.0f,   -0.0f,   1e-3f, -1e-3f, 60.0f, -60.0f,
                                    100.0f, -100.0f, 0.5f,  -0.5f,  3.0f,  -3.0f};
    float *x = random_array(n, -6.0f, 6.0f);
    for (uint64_t i = 0; i < n && i < sizeof special / sizeof special[0]; i++)
        x[i] = special[i];
    return x;
}

static void check_unary(const unary_case *uc, int64_t n, cleval_kernel_variant variant,
                        cleval_nn_precision precision)
{
    int64_t dims[2] = {1, n};
    cleval_onnx_model *m = framed(uc->opset, 2, dims);
    cleval_onnx_node *node = builder_node(m, uc->op, "op", "a", "b");
    if (uc->alpha_name) attr_float(node, uc->alpha_name, uc->alpha);
    if (uc->beta_name) attr_float(node, uc->beta_name, uc->beta);
    if (uc->approximate) attr_string(node, "approximate", uc->approximate);
    frame_end(m);
    uint64_t count = (uint64_t)n;
    float *x = unary_input(count), *stored = as_stored(x, count, precision);
    double *want = doubles(count);
    for (uint64_t i = 0; i < count; i++)
        want[i] = uc->ref(stored[i], uc->alpha, uc->beta);
    cleval_nn_tensor in = tensor(2, dims, x), out;
    run_general(m, variant, precision, &in, &out);
    char what[160];
    snprintf(what, sizeof what, "%s%s%s n=%lld %s %s", uc->op, uc->approximate ? " " : "",
             uc->approximate ? uc->approximate : "", (long long)n, variant_name(variant),
             precision_name(precision));
    assert_named_shape(&out, 2, dims, what);
    assert_result(out.data, want, count, precision, uc->atol, uc->rtol, what);
    free(out.data);
    free(x);
    free(stored);
    free(want);
    builder_free(m);
}

static void test_unary_math(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof UNARY / sizeof UNARY[0]; c++)
        for (size_t s = 0; s < sizeof SIZES / sizeof SIZES[0]; s++)
            for (size_t v = 0; v < 2; v++)
                for (size_t p = 0; p < 2; p++)
                    check_unary(&UNARY[c], SIZES[s], VARIANTS[v], PRECISIONS[p]);
}

/* The kernel a unary op runs: on the CPU family unary_runs (16 elements per work-item on
 * float16 vectors), on the GPU family unary (one element per work-item). */
static void test_unary_kernel_per_family(void **state)
{
    (void)state;
    int64_t dims[2] = {1, 257};
    for (size_t v = 0; v < 2; v++) {
        cleval_onnx_model *m = framed(13, 2, dims);
        builder_node(m, "Erf", "op", "a", "b");
        frame_end(m);
        cleval_device_set_variant(test_device(), VARIANTS[v]);
        cleval_nn_options options = {.general = true};
        cleval_nn *nn;
        assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
        const char *want = VARIANTS[v] == CLEVAL_VARIANT_CPU ? "unary_runs" : "unary", *got = NULL;
        for (uint32_t i = 0; i < cleval_nn_layer_count(nn); i++)
            if (strcmp(cleval_nn_layer_at(nn, i)->op, "Erf") == 0)
                got = cleval_nn_layer_at(nn, i)->kernel;
        if (!got || strcmp(got, want) != 0)
            fail_msg("Erf (%s) ran %s, expected %s", variant_name(VARIANTS[v]),
                     got ? got : "nothing", want);
        cleval_nn_destroy(nn);
        cleval_device_set_variant(test_device(), VARIANTS[0]);
        builder_free(m);
    }
}

/* ---- PRelu ---- */

/* y = x < 0 ? slope * x : x, slope (right-aligned, broadcast) read at `slope_of(i)`. */
static void check_prelu(const char *what, uint32_t rank, const int64_t *xdims, uint32_t srank,
                        const int64_t *sdims, bool computed, cleval_kernel_variant variant,
                        cleval_nn_precision precision)
{
    uint64_t n = count_of(rank, xdims), ns = count_of(srank, sdims);
    float *x = random_array(n, -2.0f, 2.0f), *slope = random_array(ns, -1.5f, 1.5f);
    cleval_onnx_model *m = framed(13, rank, xdims);
    if (computed) {
        /* The slope is a second runtime input, negated by an op: an activation. */
        builder_input(m, "s", srank, sdims);
        builder_node(m, "Neg", "neg", "s", "slope");
    } else {
        builder_init(m, "slope", srank, sdims, slope);
    }
    builder_node(m, "PRelu", "prelu", "a,slope", "b");
    frame_end(m);
    float *xs = as_stored(x, n, precision);
    float *ss = malloc(ns * sizeof *ss);
    assert_non_null(ss);
    for (uint64_t i = 0; i < ns; i++) /* a computed slope is stored (and rounded) after Neg */
        ss[i] = computed && precision == CLEVAL_NN_FP16 ? hround(-slope[i])
                : computed                              ? -slope[i]
                                                        : slope[i];
    double *want = doubles(n);
    for (uint64_t i = 0; i < n; i++) {
        /* The slope index of element i: its coordinates along the slope's trailing axes. */
        uint64_t rest = i, si = 0, stride = 1;
        for (uint32_t d = rank; d-- > 0;) {
            uint64_t c = rest % (uint64_t)xdims[d];
            rest /= (uint64_t)xdims[d];
            int64_t sd = (int64_t)d - (int64_t)(rank - srank);
            if (sd < 0) continue;
            if (sdims[sd] != 1) si += c * stride;
            stride *= (uint64_t)sdims[sd];
        }
        want[i] = xs[i] < 0 ? (double)ss[si] * xs[i] : xs[i];
    }
    cleval_nn_tensor in[2] = {tensor(rank, xdims, x), tensor(srank, sdims, slope)}, out;
    run_general(m, variant, precision, in, &out);
    char label[160];
    snprintf(label, sizeof label, "PRelu %s %s %s", what, variant_name(variant),
             precision_name(precision));
    assert_named_shape(&out, rank, xdims, label);
    assert_result(out.data, want, n, precision, 1e-7, 1e-6, label);
    free(out.data);
    free(x);
    free(xs);
    free(slope);
    free(ss);
    free(want);
    builder_free(m);
}

static void test_prelu(void **state)
{
    (void)state;
    const int64_t x4[4] = {2, 3, 5, 7}, per_channel[3] = {3, 1, 1}, scalar[1] = {1};
    const int64_t x2[2] = {1, 257}, row[1] = {257}, full[4] = {2, 3, 5, 7};
    for (size_t v = 0; v < 2; v++)
        for (size_t p = 0; p < 2; p++) {
            check_prelu("per channel", 4, x4, 3, per_channel, false, VARIANTS[v], PRECISIONS[p]);
            check_prelu("computed per channel", 4, x4, 3, per_channel, true, VARIANTS[v],
                        PRECISIONS[p]);
            check_prelu("scalar", 4, x4, 1, scalar, false, VARIANTS[v], PRECISIONS[p]);
            check_prelu("257 slopes", 2, x2, 1, row, false, VARIANTS[v], PRECISIONS[p]);
            check_prelu("full", 4, x4, 4, full, true, VARIANTS[v], PRECISIONS[p]);
        }
}

/* ---- pools with ceil_mode and auto_pad ---- */

typedef struct pool_case {
    const char *what;
    bool max;
    uint32_t spatial;
    int64_t n, c, in[3], k[3], stride[3], dil[3], pads[6];
    const char *auto_pad; /* NULL: NOTSET with `pads` */
    bool ceil_mode, count_include_pad;
} pool_case;

/* ONNX's pads for auto_pad SAME_* (no negative pads) or the given ones. */
static void ref_pads(const pool_case *pc, int64_t *pb, int64_t *pe)
{
    for (uint32_t i = 0; i < pc->spatial; i++) {
        pb[i] = pc->pads[i];
        pe[i] = pc->pads[pc->spatial + i];
        if (!pc->auto_pad || strncmp(pc->auto_pad, "SAME", 4) != 0) continue;
        int64_t out = (pc->in[i] + pc->stride[i] - 1) / pc->stride[i];
        int64_t total = (out - 1) * pc->stride[i] + pc->k[i] - pc->in[i];
        if (total < 0) total = 0;
        pb[i] = strcmp(pc->auto_pad, "SAME_UPPER") == 0 ? total / 2 : total - total / 2;
        pe[i] = total - pb[i];
    }
}

/* ONNX's output extent, in floating point as the specification writes it; in ceil mode a
 * window that would start past the input and its begin padding is dropped. */
static int64_t ref_extent(const pool_case *pc, uint32_t i, int64_t pb, int64_t pe)
{
    double span = (double)((pc->k[i] - 1) * pc->dil[i] + 1);
    double v = ((double)(pc->in[i] + pb + pe) - span) / (double)pc->stride[i] + 1.0;
    int64_t out = (int64_t)(pc->ceil_mode ? ceil(v) : floor(v));
    if (pc->ceil_mode && (out - 1) * pc->stride[i] >= pc->in[i] + pb) out--;
    return out;
}

/* The pool over [n, c, in...] into y (output extents in out[]), through pool_reference.h. */
static void pool_case_reference(const pool_case *pc, const float *x, int64_t *out, double *y)
{
    int64_t pb[3] = {0}, pe[3] = {0};
    ref_pads(pc, pb, pe);
    for (uint32_t i = 0; i < pc->spatial; i++)
        out[i] = ref_extent(pc, i, pb[i], pe[i]);
    ref_pool_geometry g =
        ref_pool_geometry_of(pc->spatial, pc->in, out, pc->k, pc->stride, pc->dil, pb, pe);
    uint64_t ny = (uint64_t)(pc->n * pc->c) * (uint64_t)(g.out[0] * g.out[1] * g.out[2]);
    float *y32 = malloc((ny ? ny : 1) * sizeof *y32);
    assert_non_null(y32);
    ref_pool(&g, pc->n * pc->c,
             pc->max                 ? REF_POOL_MAX
             : pc->count_include_pad ? REF_POOL_AVG_PAD
                                     : REF_POOL_AVG,
             x, y32);
    for (uint64_t i = 0; i < ny; i++)
        y[i] = y32[i];
    free(y32);
}

static void add_pool_node(cleval_onnx_model *m, const pool_case *pc, const char *in,
                          const char *out)
{
    cleval_onnx_node *node = builder_node(m, pc->max ? "MaxPool" : "AveragePool", "pool", in, out);
    attr_ints(node, "kernel_shape", pc->spatial, pc->k);
    attr_ints(node, "strides", pc->spatial, pc->stride);
    attr_ints(node, "dilations", pc->spatial, pc->dil);
    if (pc->auto_pad)
        attr_string(node, "auto_pad", pc->auto_pad);
    else
        attr_ints(node, "pads", 2 * pc->spatial, pc->pads);
    attr_int(node, "ceil_mode", pc->ceil_mode);
    if (!pc->max) attr_int(node, "count_include_pad", pc->count_include_pad);
}

static void check_pool(const pool_case *pc, cleval_kernel_variant variant,
                       cleval_nn_precision precision)
{
    int64_t xdims[5] = {pc->n, pc->c}, ydims[5] = {pc->n, pc->c};
    for (uint32_t i = 0; i < pc->spatial; i++)
        xdims[2 + i] = pc->in[i];
    uint32_t rank = 2 + pc->spatial;
    uint64_t nx = count_of(rank, xdims);
    float *x = random_array(nx, -1.0f, 1.0f), *stored = as_stored(x, nx, precision);
    int64_t out[3];
    uint64_t ny = (uint64_t)(pc->n * pc->c);
    for (uint32_t i = 0; i < pc->spatial; i++) {
        int64_t pb[3], pe[3];
        ref_pads(pc, pb, pe);
        ydims[2 + i] = out[i] = ref_extent(pc, i, pb[i], pe[i]);
        ny *= (uint64_t)out[i];
    }
    double *want = doubles(ny);
    pool_case_reference(pc, stored, out, want);
    cleval_onnx_model *m = framed(19, rank, xdims);
    add_pool_node(m, pc, "a", "b");
    frame_end(m);
    cleval_nn_tensor in = tensor(rank, xdims, x), got;
    run_general(m, variant, precision, &in, &got);
    char what[200];
    snprintf(what, sizeof what, "%s %s %s", pc->what, variant_name(variant),
             precision_name(precision));
    assert_named_shape(&got, rank, ydims, what);
    assert_result(got.data, want, ny, precision, 1e-6, 1e-6, what);
    free(got.data);
    free(x);
    free(stored);
    free(want);
    builder_free(m);
}

static const pool_case POOLS[] = {
    {"max 2-D ceil, clipped last window",
     true,
     2,
     2,
     3,
     {8, 7},
     {3, 3},
     {2, 2},
     {1, 1},
     {0},
     NULL,
     true,
     false},
    {"max 2-D ceil with pads, dropped window",
     true,
     2,
     1,
     2,
     {7, 9},
     {2, 3},
     {3, 3},
     {1, 1},
     {1, 0, 1, 2},
     NULL,
     true,
     false},
    {"avg 2-D ceil count_include_pad=1",
     false,
     2,
     1,
     3,
     {6, 7},
     {3, 3},
     {2, 2},
     {1, 1},
     {1, 1, 1, 1},
     NULL,
     true,
     true},
    {"avg 2-D ceil count_include_pad=0",
     false,
     2,
     1,
     3,
     {6, 7},
     {3, 3},
     {2, 2},
     {1, 1},
     {1, 1, 1, 1},
     NULL,
     true,
     false},
    {"avg 2-D ceil, stride > kernel",
     false,
     2,
     2,
     1,
     {7, 8},
     {2, 2},
     {3, 3},
     {1, 1},
     {0, 1, 0, 1},
     NULL,
     true,
     true},
    {"max 2-D ceil, stride > kernel, no pads",
     true,
     2,
     1,
     1,
     {6, 11},
     {2, 2},
     {3, 3},
     {1, 1},
     {0},
     NULL,
     true,
     false},
    {"avg 2-D ceil with dilations",
     false,
     2,
     1,
     2,
     {9, 7},
     {2, 3},
     {2, 2},
     {2, 2},
     {1, 1, 1, 1},
     NULL,
     true,
     true},
    {"max 1-D ceil", true, 1, 3, 2, {11}, {3}, {2}, {1}, {1, 1}, NULL, true, false},
    {"avg 1-D ceil over 257", false, 1, 1, 1, {257}, {4}, {3}, {1}, {1, 2}, NULL, true, true},
    {"avg 3-D ceil",
     false,
     3,
     1,
     2,
     {5, 6, 7},
     {2, 2, 3},
     {2, 2, 2},
     {1, 1, 1},
     {0, 1, 1, 1, 0, 1},
     NULL,
     true,
     false},
    {"max 2-D SAME_UPPER",
     true,
     2,
     1,
     2,
     {7, 6},
     {3, 3},
     {2, 2},
     {1, 1},
     {0},
     "SAME_UPPER",
     false,
     false},
    {"avg 2-D SAME_UPPER count_include_pad=1",
     false,
     2,
     1,
     2,
     {7, 6},
     {3, 2},
     {2, 2},
     {1, 1},
     {0},
     "SAME_UPPER",
     false,
     true},
    {"avg 2-D SAME_LOWER count_include_pad=0",
     false,
     2,
     1,
     2,
     {5, 6},
     {2, 3},
     {2, 2},
     {1, 1},
     {0},
     "SAME_LOWER",
     false,
     false},
    {"max 2-D SAME_LOWER with ceil_mode",
     true,
     2,
     1,
     1,
     {5, 8},
     {2, 3},
     {2, 3},
     {1, 1},
     {0},
     "SAME_LOWER",
     true,
     false},
    {"avg 2-D SAME_UPPER, stride > kernel",
     false,
     2,
     1,
     1,
     {7, 9},
     {1, 2},
     {4, 3},
     {1, 1},
     {0},
     "SAME_UPPER",
     false,
     true},
    {"max 2-D VALID", true, 2, 1, 2, {7, 5}, {2, 2}, {2, 2}, {1, 1}, {0}, "VALID", false, false},
    {"avg 2-D VALID with ceil_mode",
     false,
     2,
     1,
     2,
     {7, 5},
     {2, 2},
     {2, 2},
     {1, 1},
     {0},
     "VALID",
     true,
     false},
};

static void test_pools_against_reference(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof POOLS / sizeof POOLS[0]; c++)
        for (size_t v = 0; v < 2; v++)
            for (size_t p = 0; p < 2; p++)
                check_pool(&POOLS[c], VARIANTS[v], PRECISIONS[p]);
}

/* ---- onnxruntime ---- */

typedef struct ort_case {
    const char *op, *what;
    int64_t opset;
    uint32_t x_rank;
    int64_t x_dims[5];
    uint32_t w_rank; /* Conv's W or PRelu's slope, a constant; 0: none */
    int64_t w_dims[5];
    uint32_t y_rank;
    int64_t y_dims[5];
    uint32_t spatial; /* 0: no window attributes */
    int64_t kernel[3], strides[3], dilations[3], pads[6];
    bool has_pads;
    const char *auto_pad;
    int64_t ceil_mode, count_include_pad; /* -1: not given */
    const char *alpha_name;
    float alpha;
    const char *beta_name;
    float beta;
    const char *approximate;
    const float *x, *w, *y;
} ort_case;

#include "fixtures/nn_math_ort.h"

static cleval_onnx_model *ort_model(const ort_case *oc)
{
    cleval_onnx_model *m = builder_new(oc->opset);
    builder_input(m, "x", oc->x_rank, oc->x_dims);
    if (oc->w_rank) builder_init(m, "w", oc->w_rank, oc->w_dims, oc->w);
    cleval_onnx_node *node = builder_node(m, oc->op, "op", oc->w_rank ? "x,w" : "x", "y");
    if (oc->spatial) {
        attr_ints(node, "kernel_shape", oc->spatial, oc->kernel);
        attr_ints(node, "strides", oc->spatial, oc->strides);
        attr_ints(node, "dilations", oc->spatial, oc->dilations);
    }
    if (oc->has_pads) attr_ints(node, "pads", 2 * oc->spatial, oc->pads);
    if (oc->auto_pad) attr_string(node, "auto_pad", oc->auto_pad);
    if (oc->ceil_mode >= 0) attr_int(node, "ceil_mode", oc->ceil_mode);
    if (oc->count_include_pad >= 0) attr_int(node, "count_include_pad", oc->count_include_pad);
    if (oc->alpha_name) attr_float(node, oc->alpha_name, oc->alpha);
    if (oc->beta_name) attr_float(node, oc->beta_name, oc->beta);
    if (oc->approximate) attr_string(node, "approximate", oc->approximate);
    builder_output(m, "y");
    return m;
}

static void test_against_onnxruntime(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof ORT_CASES / sizeof ORT_CASES[0]; c++) {
        const ort_case *oc = &ORT_CASES[c];
        cleval_onnx_model *m = ort_model(oc);
        uint64_t nx = count_of(oc->x_rank, oc->x_dims), ny = count_of(oc->y_rank, oc->y_dims);
        float *x = malloc(nx * sizeof *x);
        double *want = doubles(ny);
        assert_non_null(x);
        memcpy(x, oc->x, nx * sizeof *x);
        for (uint64_t i = 0; i < ny; i++)
            want[i] = oc->y[i];
        for (size_t v = 0; v < 2; v++) {
            cleval_nn_tensor in = tensor(oc->x_rank, oc->x_dims, x), out;
            run_general(m, VARIANTS[v], CLEVAL_NN_FP32, &in, &out);
            char what[200];
            snprintf(what, sizeof what, "onnxruntime %s %s %s", oc->op, oc->what,
                     variant_name(VARIANTS[v]));
            assert_named_shape(&out, oc->y_rank, oc->y_dims, what);
            assert_result(out.data, want, ny, CLEVAL_NN_FP32, 2e-6, 2e-6, what);
            free(out.data);
        }
        free(x);
        free(want);
        builder_free(m);
    }
}

/* ---- auto_pad on Conv ---- */

/* Adds Conv "name" (W "w_<name>", no bias) reading `in`: auto_pad when given, else pads. */
static void add_conv(cleval_onnx_model *m, const char *name, const char *in, const char *out,
                     const int64_t *wdims, const float *w, const int64_t *stride,
                     const char *auto_pad, const int64_t *pads)
{
    char wname[64], inputs[160];
    snprintf(wname, sizeof wname, "w_%s", name);
    snprintf(inputs, sizeof inputs, "%s,%s", in, wname);
    builder_init(m, wname, 4, wdims, w);
    cleval_onnx_node *node = builder_node(m, "Conv", name, inputs, out);
    attr_ints(node, "kernel_shape", 2, wdims + 2);
    attr_ints(node, "strides", 2, stride);
    if (auto_pad)
        attr_string(node, "auto_pad", auto_pad);
    else
        attr_ints(node, "pads", 4, pads);
}

typedef struct conv_pad_case {
    const char *auto_pad;
    int64_t c, co, k[2], stride[2];
    bool first_conv; /* read from a 1x1 Conv (channels-last on CPUs: the Winograd path) */
} conv_pad_case;

static void conv_same_pads(const conv_pad_case *cc, const int64_t *in, int64_t *pads)
{
    pool_case pc = {.spatial = 2, .auto_pad = cc->auto_pad};
    for (int i = 0; i < 2; i++) {
        pc.in[i] = in[i];
        pc.k[i] = cc->k[i];
        pc.stride[i] = cc->stride[i];
        pc.dil[i] = 1;
    }
    int64_t pb[3], pe[3];
    ref_pads(&pc, pb, pe);
    pads[0] = pb[0];
    pads[1] = pb[1];
    pads[2] = pe[0];
    pads[3] = pe[1];
}

/* One network with auto_pad runs input extents whose pads differ (zero for some); each run
 * matches a network with those pads given explicitly. */
static void check_conv_auto_pad(const conv_pad_case *cc, cleval_kernel_variant variant,
                                cleval_nn_precision precision)
{
    int64_t wdims[4] = {cc->co, cc->c, cc->k[0], cc->k[1]}, w1dims[4] = {cc->c, cc->c, 1, 1};
    int64_t one[2] = {1, 1}, zero[4] = {0};
    float *w = random_array(count_of(4, wdims), -0.5f, 0.5f);
    float *w1 = random_array(count_of(4, w1dims), -0.5f, 0.5f);
    int64_t xdims[4] = {-1, cc->c, -1, -1};
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 4, xdims);
    if (cc->first_conv) add_conv(m, "first", "x", "f", w1dims, w1, one, NULL, zero);
    add_conv(m, "conv", cc->first_conv ? "f" : "x", "y", wdims, w, cc->stride, cc->auto_pad, NULL);
    builder_output(m, "y");
    cleval_device_set_variant(test_device(), variant);
    cleval_nn_options options = {.general = true, .precision = precision};
    cleval_nn *nn;
    assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
    static const int64_t extents[][2] = {{8, 8}, {7, 9}, {6, 5}, {1, 1}};
    for (size_t e = 0; e < sizeof extents / sizeof extents[0]; e++) {
        bool valid = strcmp(cc->auto_pad, "VALID") == 0;
        if (valid && (extents[e][0] < cc->k[0] || extents[e][1] < cc->k[1])) continue;
        int64_t dims[4] = {2, cc->c, extents[e][0], extents[e][1]}, pads[4];
        conv_same_pads(cc, extents[e], pads);
        uint64_t nx = count_of(4, dims);
        float *x = random_array(nx, -1.0f, 1.0f);
        cleval_nn_tensor in = tensor(4, dims, x), got, want;
        assert_ok(cleval_nn_run_graph(nn, &in, &got));
        cleval_onnx_model *explicit_pads = builder_new(13);
        builder_input(explicit_pads, "x", 4, xdims);
        if (cc->first_conv) add_conv(explicit_pads, "first", "x", "f", w1dims, w1, one, NULL, zero);
        add_conv(explicit_pads, "conv", cc->first_conv ? "f" : "x", "y", wdims, w, cc->stride, NULL,
                 pads);
        builder_output(explicit_pads, "y");
        run_general(explicit_pads, variant, precision, &in, &want);
        cleval_device_set_variant(test_device(), variant);
        char what[200];
        snprintf(what, sizeof what, "Conv %s k%lldx%lld s%lld in %lldx%lld %s %s", cc->auto_pad,
                 (long long)cc->k[0], (long long)cc->k[1], (long long)cc->stride[0],
                 (long long)dims[2], (long long)dims[3], variant_name(variant),
                 precision_name(precision));
        assert_named_shape(&got, want.rank, want.dims, what);
        /* ONNX's SAME output extent: ceil(in / stride); VALID: no padding. */
        for (int i = 0; i < 2; i++) {
            int64_t expect = valid ? (dims[2 + i] - cc->k[i]) / cc->stride[i] + 1
                                   : (dims[2 + i] + cc->stride[i] - 1) / cc->stride[i];
            assert_int_equal(got.dims[2 + i], expect);
        }
        uint64_t ny = count_of(want.rank, want.dims);
        double *ref = doubles(ny);
        for (uint64_t i = 0; i < ny; i++)
            ref[i] = want.data[i];
        double tol = precision == CLEVAL_NN_FP16 ? 2e-3 : 1e-5;
        assert_result(got.data, ref, ny, CLEVAL_NN_FP32, tol, tol, what);
        free(ref);
        free(got.data);
        free(want.data);
        free(x);
        builder_free(explicit_pads);
    }
    cleval_nn_destroy(nn);
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    free(w);
    free(w1);
    builder_free(m);
}

static void test_conv_auto_pad(void **state)
{
    (void)state;
    static const conv_pad_case cases[] = {
        {"SAME_UPPER", 3, 5, {3, 3}, {2, 2}, false},
        {"SAME_UPPER", 2, 3, {2, 2}, {2, 2}, false}, /* no pads at 8x8, some at 7x9 */
        {"SAME_LOWER", 3, 4, {2, 3}, {1, 2}, false},
        {"SAME_UPPER", 16, 16, {3, 3}, {1, 1}, true},
        {"SAME_LOWER", 2, 3, {1, 1}, {3, 3}, false}, /* stride > kernel: no negative pads */
        {"VALID", 3, 2, {1, 2}, {2, 1}, false},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t v = 0; v < 2; v++)
            for (size_t p = 0; p < 2; p++)
                check_conv_auto_pad(&cases[c], VARIANTS[v], PRECISIONS[p]);
}

/* ---- fusions ---- */

/* Conv -> MaxPool 2x2 stride 2 with ceil_mode or SAME_UPPER: not fused into the Conv (whose
 * pool floors), so a 7x7 Conv output pools to 4x4 as the reference says. */
static void test_pool_after_conv_not_fused(void **state)
{
    (void)state;
    static const pool_case pools[] = {
        {"ceil after Conv", true, 2, 1, 4, {7, 7}, {2, 2}, {2, 2}, {1, 1}, {0}, NULL, true, false},
        {"SAME after Conv",
         true,
         2,
         1,
         4,
         {7, 7},
         {2, 2},
         {2, 2},
         {1, 1},
         {0},
         "SAME_UPPER",
         false,
         false},
    };
    /* Extents unknown until the run, so no pads are known while the passes run. */
    int64_t xdims[4] = {1, 3, 9, 9}, dynamic[4] = {-1, 3, -1, -1}, wdims[4] = {4, 3, 3, 3};
    int64_t one[2] = {1, 1}, zero[4] = {0};
    float *x = random_array(count_of(4, xdims), -1.0f, 1.0f);
    float *w = random_array(count_of(4, wdims), -0.5f, 0.5f);
    for (size_t c = 0; c < 2; c++)
        for (size_t v = 0; v < 2; v++) {
            /* The Conv's output alone, then pooled by the reference. */
            cleval_onnx_model *conv = builder_new(13);
            builder_input(conv, "x", 4, xdims);
            add_conv(conv, "conv", "x", "y", wdims, w, one, NULL, zero);
            builder_output(conv, "y");
            cleval_nn_tensor in = tensor(4, xdims, x), c_out, got;
            run_general(conv, VARIANTS[v], CLEVAL_NN_FP32, &in, &c_out);
            int64_t out[3];
            double *want = doubles(4 * 4 * 4);
            pool_case_reference(&pools[c], c_out.data, out, want);
            cleval_onnx_model *m = builder_new(13);
            builder_input(m, "x", 4, dynamic);
            add_conv(m, "conv", "x", "c", wdims, w, one, NULL, zero);
            builder_node(m, "Relu", "relu", "c", "r");
            add_pool_node(m, &pools[c], "r", "y");
            builder_output(m, "y");
            run_general(m, VARIANTS[v], CLEVAL_NN_FP32, &in, &got);
            for (int i = 0; i < 64; i++) /* the Relu between them */
                want[i] = want[i] < 0 ? 0 : want[i];
            int64_t ydims[4] = {1, 4, 4, 4};
            assert_named_shape(&got, 4, ydims, pools[c].what);
            assert_result(got.data, want, 64, CLEVAL_NN_FP32, 1e-6, 1e-6, pools[c].what);
            free(c_out.data);
            free(got.data);
            free(want);
            builder_free(conv);
            builder_free(m);
        }
    free(x);
    free(w);
}

/* (x * 2 + 1) -> Conv SAME_UPPER: the shift must not fold into the Conv, whose zero padding
 * would then stand for -1/2 in x instead of 0 in x * 2 + 1. */
static void test_scaling_not_folded_into_same_conv(void **state)
{
    (void)state;
    int64_t xdims[4] = {1, 2, 6, 6}, dynamic[4] = {-1, 2, -1, -1}, wdims[4] = {3, 2, 3, 3};
    int64_t d1 = 1, s1[2] = {1, 1};
    int64_t pads[4] = {1, 1, 1, 1};
    const float two = 2.0f, one = 1.0f;
    uint64_t nx = count_of(4, xdims);
    float *x = random_array(nx, -1.0f, 1.0f), *w = random_array(count_of(4, wdims), -0.5f, 0.5f);
    float *scaled = malloc(nx * sizeof *scaled);
    assert_non_null(scaled);
    for (uint64_t i = 0; i < nx; i++)
        scaled[i] = x[i] * 2.0f + 1.0f;
    for (size_t v = 0; v < 2; v++) {
        cleval_onnx_model *m = builder_new(13), *plain = builder_new(13);
        builder_input(m, "x", 4, dynamic); /* no pads known while the passes run */
        builder_init(m, "two", 1, &d1, &two);
        builder_init(m, "one", 1, &d1, &one);
        builder_node(m, "Mul", "mul", "x,two", "m");
        builder_node(m, "Add", "add", "m,one", "s");
        add_conv(m, "conv", "s", "y", wdims, w, s1, "SAME_UPPER", NULL);
        builder_output(m, "y");
        builder_input(plain, "x", 4, xdims);
        add_conv(plain, "conv", "x", "y", wdims, w, s1, NULL, pads);
        builder_output(plain, "y");
        cleval_nn_tensor in = tensor(4, xdims, x), in_scaled = tensor(4, xdims, scaled), got, want;
        run_general(m, VARIANTS[v], CLEVAL_NN_FP32, &in, &got);
        run_general(plain, VARIANTS[v], CLEVAL_NN_FP32, &in_scaled, &want);
        uint64_t ny = count_of(want.rank, want.dims);
        double *ref = doubles(ny);
        for (uint64_t i = 0; i < ny; i++)
            ref[i] = want.data[i];
        assert_named_shape(&got, want.rank, want.dims, "scaled SAME Conv");
        assert_result(got.data, ref, ny, CLEVAL_NN_FP32, 1e-5, 1e-5, "scaled SAME Conv");
        free(ref);
        free(got.data);
        free(want.data);
        builder_free(m);
        builder_free(plain);
    }
    free(x);
    free(w);
    free(scaled);
}

/* Conv / Gemm followed by LeakyRelu, HardSwish or SiLU (exported as x * Sigmoid(x)): the
 * activation runs in the epilogue (the layer's label says so); a max-pool after it fuses into a
 * CPU-style Conv only when the activation commutes with it (not HardSwish or SiLU, not a
 * negative slope), one before it always; the values match the C reference either way. */
typedef struct epilogue_case {
    const char *what;
    bool gemm;         /* Gemm [n, 12] x [12, 7] instead of Conv 3x3 over [n, 3, 9, 9] */
    const char *act;   /* LeakyRelu, HardSwish or SiLU (Sigmoid and Mul nodes) */
    float alpha;       /* LeakyRelu */
    int pool;          /* 0 none, 1 MaxPool 2x2 after the activation, 2 before it */
    const char *label; /* the fused layer's label, or NULL when the activation stays apart */
} epilogue_case;

static double activation(const epilogue_case *ec, double v)
{
    if (strcmp(ec->act, "SiLU") == 0) return v / (1.0 + exp(-v));
    return strcmp(ec->act, "HardSwish") == 0 ? ref_hard_swish(v, 0, 0)
                                             : ref_leaky_relu(v, ec->alpha, 0);
}

/* 2x2 stride-2 max-pool of [c][h][w] planes into out (h / 2 x w / 2). */
static void max_pool_2x2(const double *x, int64_t planes, int64_t h, int64_t w, double *out)
{
    for (int64_t p = 0; p < planes; p++)
        for (int64_t i = 0; i < h / 2; i++)
            for (int64_t j = 0; j < w / 2; j++) {
                const double *b = x + (p * h + 2 * i) * w + 2 * j;
                out[(p * (h / 2) + i) * (w / 2) + j] = fmax(fmax(b[0], b[1]), fmax(b[w], b[w + 1]));
            }
}

static cleval_onnx_model *epilogue_model(const epilogue_case *ec, const float *w, bool body_only)
{
    int64_t xconv[4] = {2, 3, 9, 9}, xgemm[2] = {2, 12}, wconv[4] = {4, 3, 3, 3},
            wgemm[2] = {12, 7}, k2[2] = {2, 2}, s1[2] = {1, 1}, zero[4] = {0};
    cleval_onnx_model *m = builder_new(16);
    builder_input(m, "x", ec->gemm ? 2 : 4, ec->gemm ? xgemm : xconv);
    if (ec->gemm) {
        builder_init(m, "w", 2, wgemm, w);
        builder_node(m, "Gemm", "body", "x,w", body_only ? "y" : "c");
    } else {
        add_conv(m, "body", "x", body_only ? "y" : "c", wconv, w, s1, NULL, zero);
    }
    if (body_only) {
        builder_output(m, "y");
        return m;
    }
    const char *act_in = ec->pool == 2 ? "p" : "c", *act_out = ec->pool == 1 ? "a" : "y";
    if (ec->pool == 2) {
        cleval_onnx_node *p = builder_node(m, "MaxPool", "pool", "c", "p");
        attr_ints(p, "kernel_shape", 2, k2);
        attr_ints(p, "strides", 2, k2);
    }
    if (strcmp(ec->act, "SiLU") == 0) {
        char inputs[16];
        snprintf(inputs, sizeof inputs, "%s,s", act_in);
        builder_node(m, "Sigmoid", "sigmoid", act_in, "s");
        builder_node(m, "Mul", "act", inputs, act_out);
    } else {
        cleval_onnx_node *a = builder_node(m, ec->act, "act", act_in, act_out);
        if (strcmp(ec->act, "LeakyRelu") == 0) attr_float(a, "alpha", ec->alpha);
    }
    if (ec->pool == 1) {
        cleval_onnx_node *p = builder_node(m, "MaxPool", "pool", "a", "y");
        attr_ints(p, "kernel_shape", 2, k2);
        attr_ints(p, "strides", 2, k2);
    }
    builder_output(m, "y");
    return m;
}

static void check_epilogue(const epilogue_case *ec, cleval_kernel_variant variant,
                           cleval_nn_precision precision)
{
    int64_t xconv[4] = {2, 3, 9, 9}, xgemm[2] = {2, 12};
    const int64_t *xdims = ec->gemm ? xgemm : xconv;
    uint32_t rank = ec->gemm ? 2 : 4;
    uint64_t nx = count_of(rank, xdims), nw = ec->gemm ? 12 * 7 : 4 * 27;
    float *x = random_array(nx, -1.0f, 1.0f), *w = random_array(nw, -0.8f, 0.8f);
    cleval_nn_tensor in = tensor(rank, xdims, x), body, got;
    cleval_onnx_model *plain = epilogue_model(ec, w, true), *m = epilogue_model(ec, w, false);
    run_general(plain, variant, CLEVAL_NN_FP32, &in, &body);
    uint64_t nb = count_of(body.rank, body.dims);
    double *want = doubles(nb), *act = doubles(nb);
    int64_t planes = ec->gemm ? 0 : body.dims[0] * body.dims[1], h = ec->gemm ? 0 : body.dims[2],
            wd = ec->gemm ? 0 : body.dims[3];
    uint64_t ny = ec->pool ? (uint64_t)(planes * (h / 2) * (wd / 2)) : nb;
    if (ec->pool == 2) { /* pool, then the activation */
        double *b = doubles(nb);
        for (uint64_t i = 0; i < nb; i++)
            b[i] = body.data[i];
        max_pool_2x2(b, planes, h, wd, act);
        for (uint64_t i = 0; i < ny; i++)
            want[i] = activation(ec, act[i]);
        free(b);
    } else {
        for (uint64_t i = 0; i < nb; i++)
            act[i] = activation(ec, body.data[i]);
        if (ec->pool == 1)
            max_pool_2x2(act, planes, h, wd, want);
        else
            memcpy(want, act, nb * sizeof *want);
    }
    cleval_device_set_variant(test_device(), variant);
    cleval_nn_options options = {.general = true, .precision = precision};
    cleval_nn *nn;
    assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
    bool fused = false;
    for (uint32_t i = 0; i < cleval_nn_layer_count(nn); i++)
        fused = fused || (ec->label && strcmp(cleval_nn_layer_at(nn, i)->op, ec->label) == 0);
    bool pool_moves = ec->label && strstr(ec->label, "MaxPool");
    /* The CPU-style Conv alone fuses max-pools; elsewhere only the activation fuses. */
    if (ec->label && !(pool_moves && variant != CLEVAL_VARIANT_CPU) && !fused)
        fail_msg("%s: no layer is %s", ec->what, ec->label);
    assert_ok(cleval_nn_run_graph(nn, &in, &got));
    cleval_nn_destroy(nn);
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    char what[160];
    snprintf(what, sizeof what, "%s %s %s", ec->what, variant_name(variant),
             precision_name(precision));
    assert_int_equal(count_of(got.rank, got.dims), ny);
    double tol = precision == CLEVAL_NN_FP16 ? 1e-2 : 1e-5;
    assert_result(got.data, want, ny, CLEVAL_NN_FP32, tol, tol, what);
    free(got.data);
    free(body.data);
    free(want);
    free(act);
    free(x);
    free(w);
    builder_free(plain);
    builder_free(m);
}

static void test_activations_in_epilogues(void **state)
{
    (void)state;
    static const epilogue_case cases[] = {
        {"Conv LeakyRelu", false, "LeakyRelu", 0.1f, 0, "Conv+LeakyRelu"},
        {"Conv HardSwish", false, "HardSwish", 0, 0, "Conv+HardSwish"},
        {"Gemm HardSwish", true, "HardSwish", 0, 0, "Gemm+HardSwish"},
        {"Gemm LeakyRelu slope -0.5", true, "LeakyRelu", -0.5f, 0, "Gemm+LeakyRelu"},
        {"Conv LeakyRelu MaxPool", false, "LeakyRelu", 0.2f, 1, "Conv+LeakyRelu+MaxPool"},
        {"Conv HardSwish MaxPool", false, "HardSwish", 0, 1, "Conv+HardSwish"},
        {"Conv MaxPool HardSwish", false, "HardSwish", 0, 2, "Conv+MaxPool+HardSwish"},
        {"Conv MaxPool LeakyRelu slope -1", false, "LeakyRelu", -1.0f, 2, "Conv+MaxPool+LeakyRelu"},
        {"Conv SiLU", false, "SiLU", 0, 0, "Conv+Mul+Sigmoid"},
        {"Gemm SiLU", true, "SiLU", 0, 0, "Gemm+Mul+Sigmoid"},
        {"Conv SiLU MaxPool", false, "SiLU", 0, 1, "Conv+Mul+Sigmoid"},
        {"Conv MaxPool SiLU", false, "SiLU", 0, 2, "Conv+MaxPool+Mul+Sigmoid"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t v = 0; v < 2; v++)
            for (size_t p = 0; p < 2; p++)
                check_epilogue(&cases[c], VARIANTS[v], PRECISIONS[p]);
}

/* ---- refusals ---- */

static cleval_onnx_model *one_input(int64_t opset, uint32_t rank, const int64_t *dims)
{
    cleval_onnx_model *m = builder_new(opset);
    builder_input(m, "x", rank, dims);
    builder_output(m, "y");
    return m;
}

static void test_refusals(void **state)
{
    (void)state;
    const int64_t d2[2] = {2, 3}, d4[4] = {1, 2, 6, 6}, k[2] = {2, 2}, w4[4] = {2, 2, 2, 2};
    const int64_t x13[2] = {1, 3}, s43[2] = {4, 3}, pads[4] = {1, 1, 1, 1};
    const float w[16] = {0}, slope[12] = {0};
    cleval_onnx_model *m;

    m = one_input(17, 2, d2);
    builder_node(m, "Gelu", "gelu", "x", "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'gelu' (Gelu)", "needs opset 20", NULL);

    m = one_input(20, 2, d2);
    attr_string(builder_node(m, "Gelu", "gelu", "x", "y"), "approximate", "fast");
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'gelu' (Gelu)", "approximate=fast",
                           NULL);

    m = one_input(13, 2, d2);
    attr_float(builder_node(m, "Celu", "celu", "x", "y"), "alpha", 0.0f);
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'celu' (Celu)", "alpha must not be 0",
                           NULL);

    m = one_input(13, 2, d2);
    attr_float(builder_node(m, "LeakyRelu", "leaky", "x", "y"), "beta", 1.0f);
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'leaky' (LeakyRelu)",
                           "attribute beta", NULL);

    m = one_input(13, 2, x13);
    builder_init(m, "slope", 2, s43, slope);
    builder_node(m, "PRelu", "prelu", "x,slope", "y");
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'prelu' (PRelu)",
                           "does not broadcast to X", NULL);

    m = one_input(13, 4, d4);
    cleval_onnx_node *n = builder_node(m, "MaxPool", "mp", "x", "y");
    attr_ints(n, "kernel_shape", 2, k);
    attr_string(n, "auto_pad", "SAME");
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'mp' (MaxPool)",
                           "auto_pad=SAME is not valid", NULL);

    m = one_input(13, 4, d4);
    n = builder_node(m, "AveragePool", "ap", "x", "y");
    attr_ints(n, "kernel_shape", 2, k);
    attr_string(n, "auto_pad", "VALID");
    attr_ints(n, "pads", 4, pads);
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'ap' (AveragePool)",
                           "pads given with auto_pad=VALID", NULL);

    m = one_input(13, 4, d4);
    builder_init(m, "w", 4, w4, w);
    n = builder_node(m, "Conv", "conv", "x,w", "y");
    attr_ints(n, "dilations", 2, k);
    attr_string(n, "auto_pad", "SAME_UPPER");
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'conv' (Conv)",
                           "auto_pad=SAME_UPPER is not supported with dilations other than 1",
                           NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_math),
        cmocka_unit_test(test_unary_kernel_per_family),
        cmocka_unit_test(test_prelu),
        cmocka_unit_test(test_pools_against_reference),
        cmocka_unit_test(test_against_onnxruntime),
        cmocka_unit_test(test_conv_auto_pad),
        cmocka_unit_test(test_pool_after_conv_not_fused),
        cmocka_unit_test(test_scaling_not_folded_into_same_conv),
        cmocka_unit_test(test_activations_in_epilogues),
        cmocka_unit_test(test_refusals),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
