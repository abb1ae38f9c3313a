/* Scaffolding shared by the network test programs (tests/test_nn*.c): the kernel-variant loop,
 * a seeded random source, tensors and shapes, numpy's matmul in double, and the check that a
 * model is refused. Include it
 * after testutil.h (it uses cmocka's asserts and test_device()). A program that wants the
 * random source defines NN_TEST_SEED (its own seed, so its inputs stay what they were) before
 * including this header. */
#ifndef CLEVAL_NN_TESTUTIL_H
#define CLEVAL_NN_TESTUTIL_H

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/dataset.h"
#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_builder.h"

/* Both kernel families; VARIANTS[0] is the one a test leaves the device on. */
static const cleval_kernel_variant VARIANTS[] = {CLEVAL_VARIANT_CPU, CLEVAL_VARIANT_GPU};
#define N_VARIANTS 2

/* Runs the body once per kernel family with `v` forced on the test device, then puts the
 * device back on VARIANTS[0]. */
#define FOR_EACH_VARIANT(v)                                                                        \
    for (size_t v##_i = 0; v##_i < N_VARIANTS; v##_i++)                                            \
        for (cleval_kernel_variant v = VARIANTS[v##_i], *v##_once = &v; v##_once;                  \
             v##_once = NULL, cleval_device_set_variant(test_device(), VARIANTS[0]))

#ifdef NN_TEST_SEED
static uint64_t rng_state = NN_TEST_SEED;

/* Uniform in [0, 1) from a 64-bit LCG (53 bits of the state). */
static inline double urand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in [lo, hi). */
static inline float frand(float lo, float hi)
{
    return (float)(lo + (hi - lo) * urand());
}

/* n values uniform in [lo, hi) (malloc'd, never NULL). */
static inline float *random_array(uint64_t n, float lo, float hi)
{
    float *a = malloc((n ? n : 1) * sizeof *a);
    assert_non_null(a);
    for (uint64_t i = 0; i < n; i++)
        a[i] = frand(lo, hi);
    return a;
}
#endif

/* The number of elements of a tensor of these dims. */
static inline uint64_t count_of(uint32_t rank, const int64_t *dims)
{
    uint64_t n = 1;
    for (uint32_t i = 0; i < rank; i++)
        n *= (uint64_t)dims[i];
    return n;
}

/* The offset of the matrix of batch index t in an operand whose batch dims `own` (own_rank of
 * them, right-aligned to the broadcast dims `all`) hold matrices of `matrix` elements: numpy's
 * broadcasting, an axis of 1 repeated. */
static inline int64_t ref_matrix_offset(uint32_t all_rank, const int64_t *all, uint32_t own_rank,
                                        const int64_t *own, int64_t t, int64_t matrix)
{
    int64_t offset = 0, stride = matrix;
    for (int i = (int)all_rank - 1; i >= 0; i--) {
        int64_t coord = t % all[i];
        t /= all[i];
        int j = i - (int)(all_rank - own_rank);
        if (j < 0) continue;
        if (own[j] != 1) offset += coord * stride;
        stride *= own[j];
    }
    return offset;
}

/* A one-MatMul model y = a x b, b a graph input (b_runtime) or the constant `b`. */
static inline cleval_onnx_model *matmul_model(uint32_t ra, const int64_t *ad, uint32_t rb,
                                              const int64_t *bd, const float *b, bool b_runtime)
{
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "a", ra, ad);
    if (b_runtime)
        builder_input(m, "b", rb, bd);
    else
        builder_init(m, "b", rb, bd, b);
    builder_node(m, "MatMul", "mm", "a,b", "y");
    builder_output(m, "y");
    return m;
}

/* A x B as numpy's matmul computes it, in double: a 1-D operand promoted to a matrix (and its
 * axis dropped from the result), batch axes broadcast. The result's shape goes to ydims (at
 * most 8 axes) and *yr, its element count to *count; returns it (malloc'ed). */
static inline double *ref_matmul(uint32_t ra, const int64_t *ad, const float *a, uint32_t rb,
                                 const int64_t *bd, const float *b, int64_t *ydims, uint32_t *yr,
                                 uint64_t *count)
{
    int64_t M = ra == 1 ? 1 : ad[ra - 2], K = ad[ra - 1], N = rb == 1 ? 1 : bd[rb - 1];
    uint32_t ba = ra > 2 ? ra - 2 : 0, bb = rb > 2 ? rb - 2 : 0, br = ba > bb ? ba : bb;
    int64_t all[8];
    for (uint32_t i = 0; i < br; i++) {
        int64_t x = i + ba >= br ? ad[i + ba - br] : 1, y = i + bb >= br ? bd[i + bb - br] : 1;
        all[i] = x > y ? x : y;
    }
    *yr = 0;
    for (uint32_t i = 0; i < br; i++)
        ydims[(*yr)++] = all[i];
    if (ra > 1) ydims[(*yr)++] = M;
    if (rb > 1) ydims[(*yr)++] = N;
    int64_t batch = (int64_t)count_of(br, all);
    *count = (uint64_t)(batch * M * N);
    double *ref = malloc((size_t)(*count + 1) * sizeof *ref);
    assert_non_null(ref);
    for (int64_t t = 0; t < batch; t++) {
        const float *at = a + ref_matrix_offset(br, all, ba, ad, t, M * K);
        const float *bt = b + ref_matrix_offset(br, all, bb, bd, t, K * N);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (double)at[i * K + k] * bt[k * N + j];
                ref[(t * M + i) * N + j] = s;
            }
    }
    return ref;
}

/* A float tensor over `data` (not copied). */
static inline cleval_nn_tensor tensor(uint32_t rank, const int64_t *dims, float *data)
{
    cleval_nn_tensor t = {.rank = rank, .data = data};
    memcpy(t.dims, dims, rank * sizeof *dims);
    return t;
}

/* The output `t` has exactly these dims. */
static inline void assert_shape(const cleval_nn_tensor *t, uint32_t rank, const int64_t *dims)
{
    assert_int_equal(t->rank, rank);
    for (uint32_t i = 0; i < rank; i++)
        if (t->dims[i] != dims[i])
            fail_msg("output axis %u is %lld, expected %lld", i, (long long)t->dims[i],
                     (long long)dims[i]);
}

/* The IEEE half nearest to v, ties to even, as a float: a multiple of its binade's spacing
 * (2^-24 below 2^-14), from the definition rather than from bit patterns. */
static inline float hround(double v)
{
    if (isnan(v)) return (float)v;
    double a = fabs(v);
    if (a >= 65520.0) return (float)copysign(INFINITY, v);
    int e;
    frexp(a, &e);
    int exponent = e - 1 < -14 ? -14 : e - 1;
    double q = ldexp(1.0, exponent - 10);
    return (float)copysign(nearbyint(a / q) * q, v);
}

/* The spacing of the half values in the binade of h. */
static inline double half_ulp(double h)
{
    int e;
    frexp(fabs(h), &e);
    return ldexp(1.0, (e - 1 < -14 ? -14 : e - 1) - 10);
}

/* Creates `m` as a general graph in `precision` with `variant` forced, runs it once on `inputs`
 * and checks it has a single output, which lands in *out (data malloc'd); the device goes back
 * to VARIANTS[0]. */
static inline void run_general(const cleval_onnx_model *m, cleval_kernel_variant variant,
                               cleval_nn_precision precision, const cleval_nn_tensor *inputs,
                               cleval_nn_tensor *out)
{
    cleval_device_set_variant(test_device(), variant);
    cleval_nn_options options = {.general = true, .precision = precision};
    cleval_nn *nn;
    assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
    assert_int_equal(cleval_nn_graph_output_count(nn), 1);
    assert_ok(cleval_nn_run_graph(nn, inputs, out));
    cleval_nn_destroy(nn);
    cleval_device_set_variant(test_device(), VARIANTS[0]);
}

/* Creates `m` (constants only: no graph inputs) as a general graph with `output` as its only
 * output, runs it and checks the output's dims and values (integers come back as floats): each
 * value is want[i] exactly when rel_tol is 0, else within rel_tol (1 + |want[i]|). Frees m. */
static inline void expect_constant_output(cleval_onnx_model *m, const char *output, uint32_t rank,
                                          const int64_t *dims, const double *want, double rel_tol)
{
    builder_output(m, output);
    cleval_nn_options options = {.general = true};
    cleval_nn *nn;
    if (cleval_nn_create_with(test_device(), m, &options, &nn) != CLEVAL_OK)
        fail_msg("%s: %s", output, cleval_last_error());
    cleval_nn_tensor out;
    assert_ok(cleval_nn_run_graph(nn, NULL, &out));
    if (out.rank != rank) fail_msg("%s: rank %u, expected %u", output, out.rank, rank);
    uint64_t n = 1;
    for (uint32_t i = 0; i < rank; i++) {
        if (out.dims[i] != dims[i])
            fail_msg("%s: axis %u is %lld, expected %lld", output, i, (long long)out.dims[i],
                     (long long)dims[i]);
        n *= (uint64_t)dims[i];
    }
    for (uint64_t i = 0; i < n; i++) {
        bool ok = rel_tol == 0 ? out.data[i] == want[i]
                               : fabs(out.data[i] - want[i]) <= rel_tol * (1 + fabs(want[i]));
        if (!ok)
            fail_msg("%s: element %llu is %.9g, expected %.9g", output, (unsigned long long)i,
                     out.data[i], want[i]);
    }
    free(out.data);
    cleval_nn_destroy(nn);
    builder_free(m);
}

/* The whole float column `name` of `ds` (malloc'd), its rows and row width. */
static inline float *read_column(cleval_dataset *ds, const char *name, uint64_t *rows,
                                 uint64_t *width)
{
    cleval_column *col;
    assert_ok(cleval_column_open(ds, name, CLEVAL_COLUMN_VALUES, &col));
    *rows = cleval_column_rows(col);
    *width = cleval_column_row_size(col);
    float *data = malloc((*rows * *width + 1) * sizeof *data);
    assert_non_null(data);
    assert_ok(cleval_column_read_f32(col, 0, *rows, data));
    cleval_column_close(col);
    return data;
}

/* Creating `m` (a general graph, or a classifier) fails with `status`, leaves no network, and the
 * one-line message holds every one of the NULL-terminated `needles`. */
static inline void expect_refusal_va(cleval_onnx_model *m, bool general, cleval_status status,
                                     va_list needles)
{
    cleval_nn_options options = {.general = general};
    cleval_nn *nn = (cleval_nn *)0x1;
    cleval_status got = cleval_nn_create_with(test_device(), m, &options, &nn);
    if (got != status) fail_msg("expected status %d, got %d: %s", status, got, cleval_last_error());
    assert_null(nn);
    const char *message = cleval_last_error();
    assert_null(strchr(message, '\n'));
    for (const char *needle; (needle = va_arg(needles, const char *));)
        if (!strstr(message, needle)) fail_msg("'%s' missing from: %s", needle, message);
}

/* expect_refusal_va with the needles as arguments; `m` stays the caller's. */
static inline void expect_refusal(cleval_onnx_model *m, bool general, cleval_status status, ...)
{
    va_list ap;
    va_start(ap, status);
    expect_refusal_va(m, general, status, ap);
    va_end(ap);
}

/* expect_refusal, then frees the builder model `m`. */
static inline void expect_refusal_freeing(cleval_onnx_model *m, bool general, cleval_status status,
                                          ...)
{
    va_list ap;
    va_start(ap, status);
    expect_refusal_va(m, general, status, ap);
    va_end(ap);
    builder_free(m);
}

#endif
