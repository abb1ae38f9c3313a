/* The fused classifier head (kernels/head.cl, src/nn/op_head.c) under NVIDIA's emulated limits
 * (CLEVAL_EMULATE_LIMITS=nvidia) with the GPU kernel family: random heads (K = 1, a prime, 64,
 * 784; C = 1, 2, 10, 1000; batches of 1, a prime, one more than a work-group's rows and one
 * more than a work-group's items), as Gemm (+bias) or MatMul, alone or followed by Softmax or
 * LogSoftmax, with ties and NaN / infinite scores on purpose, labels present or absent, scores
 * needed or not. Against a plain C reference (sums in k order with fmaf: the kernel's order, so
 * a head without normalisation matches bit for bit; with one, the scores within float rounding
 * of expf / logf and the argmax and counts exactly on the device's own scores) and against the
 * separate kernels (CLEVAL_NN_FUSE_HEAD=0: gemm_gpu, softmax, argmax, histogram.cl). */
#define NN_TEST_SEED 0x4eadu
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval.h"
#include "cleval/histogram.h"
#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_builder.h"
#include "nn_testutil.h"
#include "onnx_writer.h"

typedef enum { NORM_NONE, NORM_SOFTMAX, NORM_LOG } norm_kind;

typedef struct head_case {
    int64_t k, c;
    uint32_t n;
    bool matmul; /* MatMul with B [K, C], no bias; else Gemm with transB and a bias */
    norm_kind norm;
    bool special; /* a tied best pair of columns, a NaN row and an infinite row */
    bool labels;  /* count (label, prediction) pairs; else predictions only */
    bool scores;  /* the scores are read */
} head_case;

/* The index of W(k, j) in the case's layout: Gemm transB [C, K], MatMul [K, C]. */
static int64_t w_index(const head_case *hc, int64_t k, int64_t j)
{
    return hc->matmul ? k * hc->c + j : j * hc->k + k;
}

/* The C reference of the head's scores: acc = fmaf in k order from 0, + bias, then the
 * normalisation in kernels/softmax.cl's order. */
static float *reference_scores(const head_case *hc, const float *x, const float *w,
                               const float *bias)
{
    float *s = malloc((size_t)hc->n * hc->c * sizeof *s);
    assert_non_null(s);
    for (uint32_t r = 0; r < hc->n; r++) {
        float *row = s + (size_t)r * hc->c;
        for (int64_t j = 0; j < hc->c; j++) {
            float acc = 0.0f;
            for (int64_t k = 0; k < hc->k; k++)
                acc = fmaf(x[r * hc->k + k], w[w_index(hc, k, j)], acc);
            row[j] = hc->matmul ? acc : acc + bias[j];
        }
        if (hc->norm == NORM_NONE) continue;
        float m = -INFINITY, sum = 0.0f;
        for (int64_t j = 0; j < hc->c; j++)
            m = fmaxf(m, row[j]);
        for (int64_t j = 0; j < hc->c; j++)
            sum += expf(row[j] - m);
        float log_sum = logf(sum);
        for (int64_t j = 0; j < hc->c; j++) {
            float v = row[j] - m;
            row[j] = hc->norm == NORM_LOG ? v - log_sum : expf(v) / sum;
        }
    }
    return s;
}

/* torch.argmax's rules: the first maximum, a NaN counting as the maximum; and the row's NaN
 * and infinite values. */
static int32_t reference_argmax(const float *row, int64_t c, uint32_t *bad)
{
    int32_t best = 0;
    float value = row[0];
    *bad = isfinite(value) ? 0 : 1;
    for (int64_t j = 1; j < c; j++) {
        *bad += isfinite(row[j]) ? 0 : 1;
        if (!isnan(value) && (row[j] > value || isnan(row[j]))) {
            value = row[j];
            best = (int32_t)j;
        }
    }
    return best;
}

static cleval_onnx_model *head_model(const head_case *hc, const float *w, const float *bias)
{
    cleval_onnx_model *m = builder_new(13);
    int64_t xd[2] = {-1, hc->k};
    builder_input(m, "x", 2, xd);
    const char *scores = hc->norm == NORM_NONE ? "y" : "s";
    if (hc->matmul) {
        int64_t wd[2] = {hc->k, hc->c};
        builder_init(m, "w", 2, wd, w);
        builder_node(m, "MatMul", "fc", "x,w", scores);
    } else {
        int64_t wd[2] = {hc->c, hc->k}, bd[1] = {hc->c};
        builder_init(m, "w", 2, wd, w);
        builder_init(m, "b", 1, bd, bias);
        attr_int(builder_node(m, "Gemm", "fc", "x,w,b", scores), "transB", 1);
    }
    if (hc->norm != NORM_NONE)
        builder_node(m, hc->norm == NORM_LOG ? "LogSoftmax" : "Softmax", "norm", "s", "y");
    builder_output(m, "y");
    return m;
}

/* What one network left: scores (NULL when not read), predictions, non-finite counts and the
 * histogram of (label, prediction), as the engine would count them. */
typedef struct head_result {
    float *scores;
    int32_t *pred;
    uint32_t *bad;
    uint64_t *counts;
} head_result;

static void read_buffer(cl_mem mem, size_t bytes, void *out)
{
    assert_int_equal(clEnqueueReadBuffer(cleval_device_queue(test_device()), mem, CL_TRUE, 0, bytes,
                                         out, 0, NULL, NULL),
                     CL_SUCCESS);
}

/* Runs the case's network, fused or not (CLEVAL_NN_FUSE_HEAD=0), and counts its predictions:
 * the fused head into a histogram's buffer of its own, the separate path with histogram.cl. */
static head_result run_head(const head_case *hc, const cleval_onnx_model *m, const float *x,
                            const int32_t *labels, uint32_t rows, bool fused)
{
    cleval_device *dev = test_device();
    if (!fused) setenv("CLEVAL_NN_FUSE_HEAD", "0", 1);
    cleval_nn *nn;
    assert_ok(cleval_nn_create(dev, m, &nn));
    unsetenv("CLEVAL_NN_FUSE_HEAD");
    assert_int_equal(cleval_nn_has_fused_head(nn), fused);
    /* The plan shows the fusion: the Gemm's label names what it took over. */
    bool found = false;
    for (uint32_t i = 0; i < cleval_nn_layer_count(nn); i++)
        found = found || strstr(cleval_nn_layer_at(nn, i)->op, "+ArgMax") != NULL;
    assert_int_equal(found, fused);

    size_t nc = (size_t)hc->n * hc->c;
    head_result out = {NULL, malloc(hc->n * sizeof(int32_t)), malloc(hc->n * sizeof(uint32_t)),
                       calloc((size_t)rows * hc->c, sizeof(uint64_t))};
    assert_non_null(out.pred);
    assert_non_null(out.bad);
    assert_non_null(out.counts);
    cl_mem label_mem = NULL;
    if (hc->labels)
        assert_ok(cleval_device_buffer(dev, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                                       hc->n * sizeof(int32_t), (void *)labels, "labels",
                                       &label_mem));
    uint32_t *cells = NULL;
    cl_mem hist_mem = NULL;
    if (fused) {
        cells = calloc((size_t)rows * hc->c, sizeof *cells);
        assert_non_null(cells);
        assert_ok(cleval_device_buffer(dev, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                                       (size_t)rows * hc->c * sizeof *cells, cells, "hist",
                                       &hist_mem));
        assert_ok(cleval_nn_count_predictions(nn, hist_mem, label_mem, rows, (uint32_t)hc->c));
        /* Nothing reads the scores buffer: a run given `scores` must still fill them. */
        cleval_nn_set_scores_needed(nn, false);
    }
    if (hc->scores) {
        out.scores = malloc(nc * sizeof(float));
        assert_non_null(out.scores);
        assert_ok(cleval_nn_run(nn, x, hc->n, out.scores));
    } else {
        assert_ok(cleval_nn_run(nn, x, hc->n, NULL));
    }
    read_buffer(cleval_nn_pred_buffer(nn), hc->n * sizeof(int32_t), out.pred);
    read_buffer(cleval_nn_nonfinite_buffer(nn), hc->n * sizeof(uint32_t), out.bad);
    if (fused) {
        read_buffer(hist_mem, (size_t)rows * hc->c * sizeof *cells, cells);
        for (size_t i = 0; i < (size_t)rows * hc->c; i++)
            out.counts[i] = cells[i];
        clReleaseMemObject(hist_mem);
        free(cells);
    } else {
        cleval_histogram *hist;
        assert_ok(cleval_histogram_create(dev, rows, (uint32_t)hc->c, &hist));
        assert_ok(cleval_histogram_add(hist, label_mem, cleval_nn_pred_buffer(nn), hc->n));
        assert_ok(cleval_histogram_read(hist, out.counts));
        cleval_histogram_destroy(hist);
    }
    if (label_mem) clReleaseMemObject(label_mem);
    cleval_nn_destroy(nn);
    return out;
}

static void free_result(head_result *r)
{
    free(r->scores);
    free(r->pred);
    free(r->bad);
    free(r->counts);
}

/* Equal within `tol` relative, or the same NaN / infinity. */
static bool close_to(float got, float want, double tol)
{
    if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got)) return got == want;
    return fabs((double)got - want) <= tol * (1.0 + fabs((double)want));
}

static void check_case(const head_case *hc)
{
    char what[160];
    snprintf(what, sizeof what, "K=%lld C=%lld n=%u %s%s%s%s%s", (long long)hc->k, (long long)hc->c,
             hc->n, hc->matmul ? "MatMul" : "Gemm",
             hc->norm == NORM_LOG       ? "+LogSoftmax"
             : hc->norm == NORM_SOFTMAX ? "+Softmax"
                                        : "",
             hc->special ? " ties/NaN/inf" : "", hc->labels ? " labels" : "",
             hc->scores ? " scores" : "");
    float *x = random_array((uint64_t)hc->n * hc->k, -1.0f, 1.0f);
    float *w = random_array((uint64_t)hc->k * hc->c, -1.0f, 1.0f);
    float *bias = random_array((uint64_t)hc->c, -0.5f, 0.5f);
    if (hc->special && hc->c >= 4) {
        /* Columns 1 and 2 equal and far above the rest (input 0 is 1 in every row, their
         * weights there 1000): the first must win. Row 1 all NaN (a NaN input), row 2
         * infinite through an infinite input (+-inf, NaN where a weight is 0). */
        for (int64_t k = 0; k < hc->k; k++)
            w[w_index(hc, k, 2)] = w[w_index(hc, k, 1)];
        w[w_index(hc, 0, 1)] = w[w_index(hc, 0, 2)] = 1000.0f;
        bias[2] = bias[1];
        for (uint32_t r = 0; r < hc->n; r++)
            x[r * hc->k] = 1.0f;
        if (hc->n > 1) x[hc->k + hc->k - 1] = NAN;
        if (hc->n > 2) x[2 * hc->k] = INFINITY;
    }
    uint32_t rows = hc->labels ? (uint32_t)hc->c : 1;
    int32_t *labels = malloc(hc->n * sizeof *labels);
    assert_non_null(labels);
    for (uint32_t i = 0; i < hc->n; i++)
        labels[i] = (int32_t)(urand() * (double)hc->c);
    if (hc->labels && hc->n > 2) labels[2] = (int32_t)hc->c; /* outside the grid: skipped */

    cleval_onnx_model *m = head_model(hc, w, bias);
    head_result fused = run_head(hc, m, x, labels, rows, true);
    head_result plain = run_head(hc, m, x, labels, rows, false);
    float *want = reference_scores(hc, x, w, bias);

    /* The argmax, the counts and the histogram from the fused head's own scores (the C
     * reference's where they are bit-identical, without normalisation). */
    const float *basis = hc->scores && hc->norm != NORM_NONE ? fused.scores : want;
    uint64_t *counts = calloc((size_t)rows * hc->c, sizeof *counts);
    assert_non_null(counts);
    for (uint32_t i = 0; i < hc->n; i++) {
        uint32_t bad;
        int32_t p = reference_argmax(basis + (size_t)i * hc->c, hc->c, &bad);
        if (hc->scores || hc->norm == NORM_NONE) {
            if (fused.pred[i] != p || fused.bad[i] != bad)
                fail_msg("%s: row %u: prediction %d (%u non-finite), expected %d (%u)", what, i,
                         fused.pred[i], fused.bad[i], p, bad);
        }
        uint32_t r = hc->labels ? (uint32_t)labels[i] : 0;
        if (r < rows) counts[(size_t)r * hc->c + (uint32_t)fused.pred[i]]++;
    }
    for (size_t b = 0; b < (size_t)rows * hc->c; b++)
        if (fused.counts[b] != counts[b])
            fail_msg("%s: histogram cell %zu: %llu, expected %llu", what, b,
                     (unsigned long long)fused.counts[b], (unsigned long long)counts[b]);
    for (uint32_t i = 0; i < hc->n && hc->scores; i++)
        for (int64_t j = 0; j < hc->c; j++) {
            size_t e = (size_t)i * hc->c + j;
            bool exact = hc->norm == NORM_NONE;
            if (exact ? memcmp(&fused.scores[e], &want[e], sizeof(float)) != 0 &&
                            !(isnan(fused.scores[e]) && isnan(want[e]))
                      : !close_to(fused.scores[e], want[e], 1e-5))
                fail_msg("%s: score (%u, %lld) is %.9g, expected %.9g", what, i, (long long)j,
                         fused.scores[e], want[e]);
            if (!close_to(fused.scores[e], plain.scores[e], 1e-5))
                fail_msg("%s: score (%u, %lld) is %.9g, the separate kernels' %.9g", what, i,
                         (long long)j, fused.scores[e], plain.scores[e]);
        }
    /* Against the separate kernels: the same predictions wherever their scores leave no doubt
     * (the top two further apart than the sums' rounding), always the same non-finite
     * counts. Their Gemm may split K, so the last bits of a score can differ. */
    bool all_clear = true;
    for (uint32_t i = 0; i < hc->n; i++) {
        if (fused.bad[i] != plain.bad[i])
            fail_msg("%s: row %u: %u non-finite scores, the separate kernels %u", what, i,
                     fused.bad[i], plain.bad[i]);
        const float *row = want + (size_t)i * hc->c;
        float top = -INFINITY, second = -INFINITY;
        for (int64_t j = 0; j < hc->c; j++) {
            if (row[j] > top) {
                second = top;
                top = row[j];
            } else if (row[j] > second) {
                second = row[j];
            }
        }
        bool tie = hc->special && hc->c >= 4 && i != 1 && i != 2;
        bool clear = tie || hc->c == 1 || !(top - second <= 1e-4 * (1.0 + fabs(top)));
        all_clear = all_clear && clear;
        if (clear && fused.pred[i] != plain.pred[i])
            fail_msg("%s: row %u: prediction %d, the separate kernels %d", what, i, fused.pred[i],
                     plain.pred[i]);
        if (tie && fused.pred[i] != 1)
            fail_msg("%s: row %u: the tie of columns 1 and 2 went to %d", what, i, fused.pred[i]);
    }
    /* Then also the separate kernels' histogram.cl counted the same cells. */
    for (size_t b = 0; b < (size_t)rows * hc->c && all_clear; b++)
        if (plain.counts[b] != fused.counts[b])
            fail_msg("%s: histogram cell %zu: %llu, the separate kernels %llu", what, b,
                     (unsigned long long)fused.counts[b], (unsigned long long)plain.counts[b]);
    free(counts);
    free(want);
    free_result(&fused);
    free_result(&plain);
    builder_free(m);
    free(labels);
    free(x), free(w), free(bias);
}

/* clang-format off */
static const head_case CASES[] = {
    /* k,   c,  n,   matmul norm          special labels scores */
    {1,     1,  1,   false, NORM_NONE,    false,  true,  true},
    {13,    2,  7,   false, NORM_NONE,    false,  true,  true},
    {64,    10, 5,   false, NORM_LOG,     false,  true,  true},
    {784,   10, 257, false, NORM_LOG,     true,   true,  true},
    {784,   10, 257, false, NORM_NONE,    true,   false, true},
    {13,    10, 33,  true,  NORM_SOFTMAX, true,   true,  true},
    {64,    10, 65,  true,  NORM_NONE,    false,  false, false},
    {64,    1000, 7, false, NORM_NONE,    true,   true,  true},
    {13,    1000, 5, false, NORM_SOFTMAX, false,  false, true},
    {784,   2,  1,   true,  NORM_LOG,     false,  true,  false},
    {1,     10, 257, false, NORM_NONE,    true,   true,  false},
};
/* clang-format on */

static void test_heads_match_references(void **state)
{
    (void)state;
    cleval_device_set_variant(test_device(), CLEVAL_VARIANT_GPU);
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++)
        check_case(&CASES[i]);
    cleval_device_set_variant(test_device(), VARIANTS[0]);
}

/* The CPU kernel family keeps its own Gemm, softmax and argmax (the fused head is measured
 * slower there), and a head the kernel does not take (more than 1024 classes, more than 1 MiB
 * of weights, an activation after the Gemm) keeps the separate kernels; counting is then
 * refused. */
static void test_head_not_fused(void **state)
{
    (void)state;
    head_case hc = {13, 10, 3, false, NORM_NONE, false, false, true};
    float *w = random_array(13 * 1025, -1.0f, 1.0f), *bias = random_array(1025, -1.0f, 1.0f);
    cleval_onnx_model *m = head_model(&hc, w, bias);
    cleval_nn *nn;
    cleval_device_set_variant(test_device(), CLEVAL_VARIANT_CPU);
    assert_ok(cleval_nn_create(test_device(), m, &nn));
    assert_false(cleval_nn_has_fused_head(nn));
    cl_mem hist;
    assert_ok(cleval_device_buffer(test_device(), CL_MEM_READ_WRITE, 10 * sizeof(cl_uint), NULL,
                                   "hist", &hist));
    assert_int_equal(cleval_nn_count_predictions(nn, hist, NULL, 1, 10), CLEVAL_ERR_USAGE);
    clReleaseMemObject(hist);
    cleval_nn_destroy(nn);
    builder_free(m);

    cleval_device_set_variant(test_device(), CLEVAL_VARIANT_GPU);
    hc.c = 1025;
    m = head_model(&hc, w, bias);
    assert_ok(cleval_nn_create(test_device(), m, &nn));
    assert_false(cleval_nn_has_fused_head(nn));
    cleval_nn_destroy(nn);
    builder_free(m);

    /* More than 1 MiB of weights: each work-group would read them all. */
    head_case big = {263, 1000, 3, false, NORM_NONE, false, false, true};
    float *wb = random_array(263 * 1000, -1.0f, 1.0f);
    m = head_model(&big, wb, bias);
    assert_ok(cleval_nn_create(test_device(), m, &nn));
    assert_false(cleval_nn_has_fused_head(nn));
    cleval_nn_destroy(nn);
    builder_free(m);
    free(wb);

    hc.c = 10;
    m = builder_new(13);
    int64_t xd[2] = {-1, 13}, wd[2] = {10, 13}, bd[1] = {10};
    builder_input(m, "x", 2, xd);
    builder_init(m, "w", 2, wd, w);
    builder_init(m, "b", 1, bd, bias);
    attr_int(builder_node(m, "Gemm", "fc", "x,w,b", "s"), "transB", 1);
    builder_node(m, "Relu", "relu", "s", "y");
    builder_output(m, "y");
    assert_ok(cleval_nn_create(test_device(), m, &nn));
    assert_false(cleval_nn_has_fused_head(nn));
    cleval_nn_destroy(nn);
    builder_free(m);
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    free(w), free(bias);
}

/* The engine hands its confusion histogram to the fused head (pipeline_worker_ops.count_into):
 * an eval through the public API, in batches of 7 with a shorter last one, counts the same
 * matrix as a C reference of the predictions, and as the same run with the separate kernels.
 * A label outside the classes is refused before anything runs, so all are valid here. */
static void test_engine_counts_with_fused_head(void **state)
{
    (void)state;
    enum { K = 13, C = 10, N = 53 };
    head_case hc = {K, C, N, false, NORM_NONE, true, true, true};
    float *x = random_array((uint64_t)N * K, -1.0f, 1.0f), *w = random_array(K * C, -1.0f, 1.0f);
    float *bias = random_array(C, -0.5f, 0.5f);
    for (int64_t k = 0; k < K; k++) /* columns 1 and 2 tied */
        w[2 * K + k] = w[1 * K + k];
    bias[2] = bias[1];
    int32_t y[N];
    for (uint32_t i = 0; i < N; i++)
        y[i] = (int32_t)(urand() * C);
    pb_buf g = {0};
    int64_t xd[2] = {-1, K}, wd[2] = {C, K}, bd[1] = {C}, yd[2] = {-1, C};
    onnx_input(&g, "x", 2, xd);
    onnx_initializer(&g, "w", 2, wd, w);
    onnx_initializer(&g, "b", 1, bd, bias);
    pb_buf node = onnx_node("Gemm", "fc", "x,w,b", "y");
    onnx_attr_int(&node, "transB", 1);
    onnx_node_end(&g, &node);
    onnx_output(&g, "y", 2, yd);
    char model[4096];
    snprintf(model, sizeof model, "%s", temp_path("head.onnx"));
    onnx_write_model(model, 8, 13, &g);

    float *want = reference_scores(&hc, x, w, bias);
    uint64_t counts[C][C] = {{0}};
    for (uint32_t i = 0; i < N; i++) {
        uint32_t bad;
        counts[y[i]][reference_argmax(want + (size_t)i * C, C, &bad)]++;
    }
    cleval_array ax = {.data = x, .dtype = CLEVAL_DTYPE_FLOAT32, .rank = 2, .shape = {N, K}};
    cleval_array ay = {.data = y, .dtype = CLEVAL_DTYPE_INT32, .rank = 1, .shape = {N}};
    cleval_source *source;
    assert_ok(cleval_source_create_arrays(&ax, &ay, &source));
    cleval_options options;
    cleval_options_init(&options);
    options.batch = 7;
    setenv("CLEVAL_KERNEL_VARIANT", "gpu", 1);
    for (int fused = 1; fused >= 0; fused--) {
        if (!fused) setenv("CLEVAL_NN_FUSE_HEAD", "0", 1);
        cleval_result *result;
        assert_ok(cleval_run_eval(model, source, &options, &result));
        unsetenv("CLEVAL_NN_FUSE_HEAD");
        cJSON *json = cJSON_Parse(cleval_result_json(result));
        assert_non_null(json);
        cJSON *cm = cJSON_GetObjectItem(json, "confusion_matrix");
        assert_int_equal(cJSON_GetArraySize(cm), C);
        for (int r = 0; r < C; r++)
            for (int c = 0; c < C; c++) {
                double got = cJSON_GetArrayItem(cJSON_GetArrayItem(cm, r), c)->valuedouble;
                if (got != (double)counts[r][c])
                    fail_msg("%s: confusion cell (%d, %d) is %g, expected %llu",
                             fused ? "fused head" : "separate kernels", r, c, got,
                             (unsigned long long)counts[r][c]);
            }
        cJSON_Delete(json);
        cleval_result_destroy(result);
    }
    unsetenv("CLEVAL_KERNEL_VARIANT");
    cleval_source_destroy(source);
    free(want);
    free(x), free(w), free(bias);
}

int main(void)
{
    /* Before the first device query: the emulation applies to every device opened after it. */
    setenv("CLEVAL_EMULATE_LIMITS", "nvidia", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heads_match_references),
        cmocka_unit_test(test_head_not_fused),
        cmocka_unit_test(test_engine_counts_with_fused_head),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
