/* A network's host and device memory: cleval_nn_device_memory_get() against the bytes computed
 * by hand for a Gemm classifier (its weights, the activations of a batch), stable across runs
 * (weights are uploaded once, at create; buffers only grow); and the network's independence
 * from the model it was created from (the model's weights are borrowed while creating, never
 * changed, and may be freed right after). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_builder.h"
#include "nn_testutil.h"

enum { K = 37, C = 16, N = 5 }; /* C = 16: one panel of 16 columns, nothing padded */

static float weight_at(int c, int k)
{
    return (float)((c * 7 + k * 3) % 11 - 5) / 8.0f;
}

static float input_at(int n, int k)
{
    return (float)((n * 5 + k) % 13 - 6) / 4.0f;
}

/* x [N, K] -> Gemm(W [C, K], transB, bias b [C]) -> y [N, C]. */
static cleval_onnx_model *gemm_classifier(void)
{
    cleval_onnx_model *m = builder_new(17);
    float w[C * K], b[C];
    for (int c = 0; c < C; c++) {
        b[c] = (float)c / 4.0f;
        for (int k = 0; k < K; k++)
            w[c * K + k] = weight_at(c, k);
    }
    builder_input(m, "x", 2, (int64_t[]){-1, K});
    builder_init(m, "W", 2, (int64_t[]){C, K}, w);
    builder_init(m, "b", 1, (int64_t[]){C}, b);
    cleval_onnx_node *n = builder_node(m, "Gemm", "fc", "x,W,b", "y");
    attr_int(n, "transB", 1);
    builder_output(m, "y");
    return m;
}

static float *inputs(int n)
{
    float *x = malloc((size_t)n * K * sizeof *x);
    assert_non_null(x);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < K; k++)
            x[i * K + k] = input_at(i, k);
    return x;
}

static void check_device_memory(const cleval_nn *nn, int batch, const char *what)
{
    cleval_nn_device_memory got;
    cleval_nn_device_memory_get(nn, &got);
    /* Weights: W as K x 16 floats (packed in one panel on CPU-style kernels, read in place on
     * GPU-style ones), the bias as 16 floats. */
    uint64_t weights = (uint64_t)K * C * 4 + C * 4;
    /* Activations: the input batch and the scores in two buffers (the input is still read when
     * the scores are written), the int32 predictions and the uint32 non-finite counts, and the
     * three staging buffers the samples are uploaded into as they come (float here) while
     * earlier batches still run. */
    uint64_t activations = (uint64_t)batch * K * 4 + (uint64_t)batch * C * 4 + 2 * batch * 4 +
                           3 * (uint64_t)batch * K * 4;
    if (got.weights_bytes != weights || got.activations_bytes != activations)
        fail_msg("%s: weights %llu (want %llu), activations %llu (want %llu)", what,
                 (unsigned long long)got.weights_bytes, (unsigned long long)weights,
                 (unsigned long long)got.activations_bytes, (unsigned long long)activations);
    assert_true(got.peak_bytes == got.weights_bytes + got.activations_bytes + got.workspace_bytes);
}

/* The hand-computed bytes at a batch of 5, unchanged by a smaller batch afterwards. */
static void test_gemm_device_memory(void **state)
{
    (void)state;
    cleval_onnx_model *m = gemm_classifier();
    float *x = inputs(N);
    float scores[N * C];
    for (size_t v = 0; v < 2; v++) {
        cleval_device_set_variant(test_device(), VARIANTS[v]);
        cleval_nn *nn;
        assert_ok(cleval_nn_create(test_device(), m, &nn));
        assert_ok(cleval_nn_run(nn, x, N, scores));
        check_device_memory(nn, N, cleval_variant_name(VARIANTS[v]));
        assert_ok(cleval_nn_run(nn, x, 2, scores));
        check_device_memory(nn, N, cleval_variant_name(VARIANTS[v]));
        cleval_nn_destroy(nn);
    }
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    cleval_nn_device_memory none;
    cleval_nn_device_memory_get(NULL, &none);
    assert_true(none.peak_bytes == 0 && none.weights_bytes == 0);
    free(x);
    builder_free(m);
}

/* The model may be freed as soon as the network exists: the scores still match a plain C
 * Gemm (under ASan, a weight read from the freed model would be reported). */
static void test_model_freed_after_create(void **state)
{
    (void)state;
    float *x = inputs(N);
    for (size_t v = 0; v < 2; v++) {
        cleval_device_set_variant(test_device(), VARIANTS[v]);
        cleval_onnx_model *m = gemm_classifier();
        cleval_nn *nn;
        assert_ok(cleval_nn_create(test_device(), m, &nn));
        builder_free(m);
        float scores[N * C];
        assert_ok(cleval_nn_run(nn, x, N, scores));
        for (int i = 0; i < N; i++)
            for (int c = 0; c < C; c++) {
                double want = (double)c / 4.0;
                for (int k = 0; k < K; k++)
                    want += (double)input_at(i, k) * weight_at(c, k);
                assert_true(fabs(scores[i * C + c] - want) < 1e-4);
            }
        cleval_nn_destroy(nn);
    }
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    free(x);
}

/* Pruning works on the network's own copy: the model's weights stay as they were. */
static void test_prune_leaves_model_alone(void **state)
{
    (void)state;
    cleval_onnx_model *m = gemm_classifier();
    const cleval_onnx_tensor *w = cleval_onnx_find_initializer(m, "W");
    float before[C * K];
    memcpy(before, w->f32, sizeof before);
    cleval_nn_options options = {.prune = 0.5};
    cleval_nn *nn;
    assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
    cleval_nn_model_info info;
    cleval_nn_model_info_get(nn, &info);
    assert_true(info.zero_weights >= C * K / 2);
    assert_memory_equal(w->f32, before, sizeof before);
    cleval_nn_destroy(nn);
    builder_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_device_memory),
        cmocka_unit_test(test_model_freed_after_create),
        cmocka_unit_test(test_prune_leaves_model_alone),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
