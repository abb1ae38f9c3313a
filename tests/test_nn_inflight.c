/* The GPU data path: several batches in flight at once. cleval_nn_run_async() enqueues batches
 * back to back (their uploads from page-locked or ordinary memory on the copy queue, each
 * batch's conversion waiting for its upload, an upload waiting for the conversion that last
 * used its staging buffer), for every integer and float element type the samples come in,
 * with and without the preprocessing; each batch's scores, read back without waiting, must
 * match a plain C reference of the network. End to end, `cleval eval` with a tiny batch (many
 * batches in flight) saves what PyTorch computed and exactly what one batch of the whole file
 * saves. */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleval/device.h"
#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_builder.h"

enum { FEATURES = 67, CLASSES = 5 };

/* Batch sizes in submission order: one sample, a prime, empty, one past a work-group of 256,
 * then enough more that every staging buffer of the ring is reused while others are busy. */
static const uint32_t BATCHES[] = {1, 7, 0, 257, 13, 2, 64, 31};
#define N_BATCHES (sizeof BATCHES / sizeof *BATCHES)

static uint64_t rng = 5;

static uint32_t next_random(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

/* y = x W^T + b: a Gemm classifier of FEATURES inputs and CLASSES outputs. */
static cleval_onnx_model *gemm_classifier(float *w, float *b)
{
    for (int i = 0; i < CLASSES * FEATURES; i++)
        w[i] = (float)((int)(next_random() % 2001) - 1000) / 4096.0f;
    for (int i = 0; i < CLASSES; i++)
        b[i] = (float)((int)(next_random() % 201) - 100) / 64.0f;
    cleval_onnx_model *m = builder_new(17);
    builder_input(m, "x", 2, (const int64_t[]){-1, FEATURES});
    builder_init(m, "w", 2, (const int64_t[]){CLASSES, FEATURES}, w);
    builder_init(m, "b", 1, (const int64_t[]){CLASSES}, b);
    attr_int(builder_node(m, "Gemm", "fc", "x,w,b", "y"), "transB", 1);
    builder_output(m, "y");
    return m;
}

/* A sample type: its ONNX type, its size, and value i of an array of it as a double. */
typedef struct feed_type {
    int32_t onnx;
    size_t size;
    const char *name;
} feed_type;

static const feed_type TYPES[] = {
    {CLEVAL_ONNX_UINT8, 1, "uint8"},   {CLEVAL_ONNX_INT8, 1, "int8"},
    {CLEVAL_ONNX_UINT16, 2, "uint16"}, {CLEVAL_ONNX_INT16, 2, "int16"},
    {CLEVAL_ONNX_INT32, 4, "int32"},   {CLEVAL_ONNX_INT64, 8, "int64"},
    {CLEVAL_ONNX_FLOAT, 4, "float32"},
};

/* Fills n values of type t with random values spanning the type (int32/int64: within the
 * integers a float holds exactly, float: fractions) and returns them as floats in `as_float`. */
static void fill_values(const feed_type *t, void *data, float *as_float, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t r = next_random();
        switch (t->onnx) {
        case CLEVAL_ONNX_UINT8: ((uint8_t *)data)[i] = (uint8_t)r, as_float[i] = (uint8_t)r; break;
        case CLEVAL_ONNX_INT8: ((int8_t *)data)[i] = (int8_t)r, as_float[i] = (int8_t)r; break;
        case CLEVAL_ONNX_UINT16:
            ((uint16_t *)data)[i] = (uint16_t)r, as_float[i] = (uint16_t)r;
            break;
        case CLEVAL_ONNX_INT16: ((int16_t *)data)[i] = (int16_t)r, as_float[i] = (int16_t)r; break;
        case CLEVAL_ONNX_INT32: {
            int32_t v = (int32_t)(r % 2000001) - 1000000;
            ((int32_t *)data)[i] = v, as_float[i] = (float)v;
            break;
        }
        case CLEVAL_ONNX_INT64: {
            int64_t v = (int64_t)(r % 2000001) - 1000000;
            ((int64_t *)data)[i] = v, as_float[i] = (float)v;
            break;
        }
        default: {
            float v = (float)((int)(r % 20001) - 10000) / 1000.0f;
            ((float *)data)[i] = v, as_float[i] = v;
        }
        }
    }
}

/* One batch: its samples (in page-locked memory for even batches, ordinary memory for odd
 * ones), the same values as floats, and where its scores and predictions come back. */
typedef struct batch {
    cleval_hostbuf pinned;
    void *x;
    float *as_float;
    float *scores;
    int32_t *pred;
} batch;

/* Enqueues every batch of type t through nn without waiting, then checks each against
 * x W^T + b in double, the inputs first mapped as the device does: ((float)x * scale - mean)
 * / std in float. */
static void check_type(cleval_nn *nn, const feed_type *t, const float *w, const float *b,
                       float scale, float mean, float std)
{
    cleval_device *dev = test_device();
    cl_command_queue queue = cleval_device_queue(dev);
    assert_ok(cleval_nn_set_feed_type(nn, t->onnx));
    batch batches[N_BATCHES];
    memset(batches, 0, sizeof batches);
    for (size_t k = 0; k < N_BATCHES; k++) {
        batch *bt = &batches[k];
        size_t n = BATCHES[k] ? BATCHES[k] : 1, values = n * FEATURES;
        if (k % 2 == 0) {
            assert_ok(
                cleval_hostbuf_create_pinned(dev, values * t->size, "test batch", &bt->pinned));
            bt->x = bt->pinned.host;
        } else {
            bt->x = malloc(values * t->size);
        }
        bt->as_float = malloc(values * sizeof *bt->as_float);
        bt->scores = calloc(n * CLASSES, sizeof *bt->scores);
        bt->pred = calloc(n, sizeof *bt->pred);
        assert_true(bt->x && bt->as_float && bt->scores && bt->pred);
        fill_values(t, bt->x, bt->as_float, values);
    }
    for (size_t k = 0; k < N_BATCHES; k++) {
        uint32_t n = BATCHES[k];
        assert_ok(cleval_nn_run_async(nn, batches[k].x, n));
        if (n == 0) continue;
        assert_int_equal(clEnqueueReadBuffer(queue, cleval_nn_scores_buffer(nn), CL_FALSE, 0,
                                             (size_t)n * CLASSES * sizeof(float), batches[k].scores,
                                             0, NULL, NULL),
                         CL_SUCCESS);
        assert_int_equal(clEnqueueReadBuffer(queue, cleval_nn_pred_buffer(nn), CL_FALSE, 0,
                                             (size_t)n * sizeof(int32_t), batches[k].pred, 0, NULL,
                                             NULL),
                         CL_SUCCESS);
    }
    assert_ok(cleval_device_finish(dev));
    for (size_t k = 0; k < N_BATCHES; k++) {
        batch *bt = &batches[k];
        for (uint32_t s = 0; s < BATCHES[k]; s++) {
            double want[CLASSES];
            for (int c = 0; c < CLASSES; c++) {
                double sum = b[c];
                for (int f = 0; f < FEATURES; f++) {
                    float x = (bt->as_float[s * FEATURES + f] * scale - mean) / std;
                    sum += (double)x * w[c * FEATURES + f];
                }
                want[c] = sum;
            }
            double magnitude = 0;
            for (int f = 0; f < FEATURES; f++)
                magnitude += fabs(bt->as_float[s * FEATURES + f] * scale / std);
            double tol = 1e-6 * magnitude + 1e-5;
            int best = 0;
            for (int c = 0; c < CLASSES; c++) {
                float got = bt->scores[s * CLASSES + c];
                if (fabs(got - want[c]) > tol)
                    fail_msg("%s kernels, %s batch %zu (%u samples) sample %u score %d: %.9g, "
                             "expected %.9g",
                             cleval_variant_name(cleval_device_variant(dev)), t->name, k,
                             BATCHES[k], s, c, got, want[c]);
                if (bt->scores[s * CLASSES + c] > bt->scores[s * CLASSES + best]) best = c;
            }
            if (bt->pred[s] != best)
                fail_msg("%s batch %zu sample %u: predicted %d, the largest score is %d", t->name,
                         k, s, bt->pred[s], best);
        }
        if (bt->pinned.mem)
            cleval_hostbuf_release(&bt->pinned);
        else
            free(bt->x);
        free(bt->as_float);
        free(bt->scores);
        free(bt->pred);
    }
}

static void test_batches_in_flight_every_type(void **state)
{
    (void)state;
    float w[CLASSES * FEATURES], b[CLASSES];
    cleval_onnx_model *m = gemm_classifier(w, b);
    /* Both kernel families, without preprocessing and with it. */
    for (int variant = 0; variant < 2; variant++)
        for (int prep = 0; prep < 2; prep++) {
            cleval_device_set_variant(test_device(),
                                      variant ? CLEVAL_VARIANT_GPU : CLEVAL_VARIANT_CPU);
            float scale = prep ? 1.0f / 255.0f : 1.0f, mean = prep ? 0.25f : 0.0f,
                  std = prep ? 2.0f : 1.0f;
            cleval_nn_options options = {.input = {.scale = prep ? scale : 0.0f,
                                                   .n_mean = prep ? 1 : 0,
                                                   .mean = &mean,
                                                   .n_std = prep ? 1 : 0,
                                                   .std = &std}};
            cleval_nn *nn;
            if (cleval_nn_create_with(test_device(), m, &options, &nn) != CLEVAL_OK)
                fail_msg("%s", cleval_last_error());
            for (size_t t = 0; t < sizeof TYPES / sizeof *TYPES; t++)
                check_type(nn, &TYPES[t], w, b, scale, mean, std);
            cleval_nn_destroy(nn);
        }
    cleval_device_set_variant(test_device(), CLEVAL_VARIANT_CPU);
    builder_free(m);
}

/* Completes a user event after a pause (the helper thread of the test below). */
static void *complete_later(void *event)
{
    struct timespec pause = {0, 300 * 1000 * 1000};
    nanosleep(&pause, NULL);
    clSetUserEventStatus((cl_event)event, CL_COMPLETE);
    return NULL;
}

/* While profiling, the network runs on a queue of its own; a reader of its outputs on the
 * device's queue, held back there (by a user event), must still read the batch it was enqueued
 * after, not the next one: the next run waits for the device's queue. */
static void test_profiled_run_waits_for_device_queue(void **state)
{
    (void)state;
    float w[CLASSES * FEATURES], b[CLASSES];
    cleval_onnx_model *m = gemm_classifier(w, b);
    cleval_device *dev = test_device();
    cl_command_queue queue = cleval_device_queue(dev);
    cleval_nn *nn;
    if (cleval_nn_create(dev, m, &nn) != CLEVAL_OK) fail_msg("%s", cleval_last_error());
    assert_ok(cleval_nn_set_profiling(nn, true));
    enum { N = 9 };
    static float first[N * FEATURES], second[N * FEATURES], got[N * CLASSES];
    for (int i = 0; i < N * FEATURES; i++) {
        first[i] = (float)((int)(next_random() % 2001) - 1000) / 100.0f;
        second[i] = -first[i];
    }
    assert_ok(cleval_nn_run_async(nn, first, N));
    cl_int err;
    cl_event hold = clCreateUserEvent(cleval_device_context(dev), &err);
    assert_int_equal(err, CL_SUCCESS);
    assert_int_equal(clEnqueueBarrierWithWaitList(queue, 1, &hold, NULL), CL_SUCCESS);
    assert_int_equal(clEnqueueReadBuffer(queue, cleval_nn_scores_buffer(nn), CL_FALSE, 0,
                                         sizeof got, got, 0, NULL, NULL),
                     CL_SUCCESS);
    assert_int_equal(clFlush(queue), CL_SUCCESS);
    pthread_t helper;
    assert_int_equal(pthread_create(&helper, NULL, complete_later, hold), 0);
    assert_ok(cleval_nn_run_async(nn, second, N));
    pthread_join(helper, NULL);
    assert_ok(cleval_device_finish(dev));
    clReleaseEvent(hold);
    for (int s = 0; s < N; s++)
        for (int c = 0; c < CLASSES; c++) {
            double want = b[c];
            for (int f = 0; f < FEATURES; f++)
                want += (double)first[s * FEATURES + f] * w[c * FEATURES + f];
            if (fabs(got[s * CLASSES + c] - want) > 1e-4 * (1 + fabs(want)))
                fail_msg("sample %d score %d: %.7g, the first batch's %.7g", s, c,
                         got[s * CLASSES + c], want);
        }
    cleval_nn_destroy(nn);
    builder_free(m);
}

/* pred and scores of a prediction file. */
static void read_saved(const char *path, int32_t *pred, float *scores)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "pred", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, pred) >= 0);
    H5Dclose(d);
    d = H5Dopen2(f, "scores", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, scores) >= 0);
    H5Dclose(d);
    H5Fclose(f);
}

/* 256 images in 86 batches of 3 (the last one partial): the scores are PyTorch's within 1e-4
 * and bit for bit those of the whole file in one batch. */
static void test_eval_many_small_batches(void **state)
{
    (void)state;
    char io[4096], model[4096], small[4096], whole[4096];
    snprintf(io, sizeof io, "%s", fixture_path("onnx/fmnist_cnn_io.h5"));
    snprintf(model, sizeof model, "%s/datasets/fmnist_cnn.onnx", CLEVAL_SOURCE_DIR);
    snprintf(small, sizeof small, "%s", temp_path("batch3.h5"));
    snprintf(whole, sizeof whole, "%s", temp_path("batch256.h5"));
    assert_int_equal(run_cleval((const char *[]){"eval", "--model", model, "--data", io, "--save",
                                                 small, "--batch", "3", "--quiet", NULL},
                                NULL, NULL),
                     0);
    assert_int_equal(run_cleval((const char *[]){"eval", "--model", model, "--data", io, "--save",
                                                 whole, "--batch", "256", "--quiet", NULL},
                                NULL, NULL),
                     0);
    static int32_t pred_small[256], pred_whole[256];
    static float small_scores[256 * 10], whole_scores[256 * 10], torch[256 * 10];
    read_saved(small, pred_small, small_scores);
    read_saved(whole, pred_whole, whole_scores);
    hid_t f = H5Fopen(io, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "scores_torch", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, torch) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    for (int i = 0; i < 256 * 10; i++)
        if (fabsf(small_scores[i] - torch[i]) > 1e-4f)
            fail_msg("sample %d score %d: %.7g, PyTorch %.7g", i / 10, i % 10, small_scores[i],
                     torch[i]);
    assert_memory_equal(small_scores, whole_scores, sizeof small_scores);
    assert_memory_equal(pred_small, pred_whole, sizeof pred_small);
}

/* --profile runs the network on a queue of its own while the pipeline reads each batch's
 * outputs on the device's queue: the next batch must not overwrite them before they are read.
 * 86 batches of 3 with both kernel families (the GPU-style one uploads on a copy queue), the
 * saved scores PyTorch's. */
static void test_eval_profiled_many_small_batches(void **state)
{
    (void)state;
    char io[4096], model[4096], saved[4096];
    snprintf(io, sizeof io, "%s", fixture_path("onnx/fmnist_cnn_io.h5"));
    snprintf(model, sizeof model, "%s/datasets/fmnist_cnn.onnx", CLEVAL_SOURCE_DIR);
    snprintf(saved, sizeof saved, "%s", temp_path("profiled.h5"));
    static float scores[256 * 10], torch[256 * 10];
    static int32_t pred[256];
    hid_t f = H5Fopen(io, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "scores_torch", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, torch) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    const char *variants[] = {"cpu", "gpu"};
    for (int v = 0; v < 2; v++) {
        setenv("CLEVAL_KERNEL_VARIANT", variants[v], 1);
        char *out, *err;
        int code = run_cleval((const char *[]){"eval", "--model", model, "--data", io, "--save",
                                               saved, "--batch", "3", "--profile", "--quiet", NULL},
                              &out, &err);
        unsetenv("CLEVAL_KERNEL_VARIANT");
        if (code != 0) fail_msg("%s kernels: exit %d: %s", variants[v], code, err);
        free(out), free(err);
        read_saved(saved, pred, scores);
        for (int i = 0; i < 256 * 10; i++)
            if (fabsf(scores[i] - torch[i]) > 1e-4f)
                fail_msg("%s kernels, --profile: sample %d score %d: %.7g, PyTorch %.7g",
                         variants[v], i / 10, i % 10, scores[i], torch[i]);
    }
}

/* With labels, 86 batches of 3 in flight: the confusion matrix is the saved (y, pred) pairs
 * counted here, and the log loss and Brier score (summed on the device batch by batch, the
 * partial sums of three batches on their way back at once) are those of the saved scores'
 * softmax computed here in double. */
static void test_eval_many_small_batches_with_labels(void **state)
{
    (void)state;
    enum { N = 256, C = 10 };
    char io[4096], model[4096], labelled[4096], saved[4096];
    snprintf(io, sizeof io, "%s", fixture_path("onnx/fmnist_cnn_io.h5"));
    snprintf(model, sizeof model, "%s/datasets/fmnist_cnn.onnx", CLEVAL_SOURCE_DIR);
    snprintf(labelled, sizeof labelled, "%s", temp_path("labelled.h5"));
    snprintf(saved, sizeof saved, "%s", temp_path("labelled_pred.h5"));
    static float x[N * 784];
    hid_t f = H5Fopen(io, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, "X", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    int32_t y[N];
    for (int i = 0; i < N; i++)
        y[i] = (int32_t)(next_random() % C);
    hsize_t xdims[4] = {N, 1, 28, 28}, ydims[1] = {N};
    f = h5_create(labelled);
    h5_write(f, "X", H5T_NATIVE_FLOAT, 4, xdims, x, 0, NULL);
    h5_write(f, "y", H5T_NATIVE_INT32, 1, ydims, y, 0, NULL);
    H5Fclose(f);
    cJSON *report =
        run_cleval_json((const char *[]){"eval", "--model", model, "--data", labelled, "--save",
                                         saved, "--batch", "3", "--json", "-", "--quiet", NULL},
                        0);
    static int32_t pred[N];
    static float scores[N * C];
    read_saved(saved, pred, scores);
    uint64_t counts[C][C] = {{0}};
    double log_loss = 0, brier = 0;
    for (int i = 0; i < N; i++) {
        counts[y[i]][pred[i]]++;
        double max = scores[i * C], sum = 0, p[C];
        for (int c = 1; c < C; c++)
            max = scores[i * C + c] > max ? scores[i * C + c] : max;
        for (int c = 0; c < C; c++)
            sum += p[c] = exp(scores[i * C + c] - max);
        for (int c = 0; c < C; c++) {
            p[c] /= sum;
            brier += (p[c] - (c == y[i])) * (p[c] - (c == y[i]));
        }
        log_loss -= log(p[y[i]] > 2.220446049250313e-16 ? p[y[i]] : 2.220446049250313e-16);
    }
    log_loss /= N, brier /= N;
    cJSON *matrix = cJSON_GetObjectItem(report, "confusion_matrix");
    for (int t = 0; t < C; t++)
        for (int c = 0; c < C; c++)
            assert_int_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(matrix, t), c)->valuedouble,
                             counts[t][c]);
    double got_loss = cJSON_GetObjectItem(report, "log_loss")->valuedouble;
    double got_brier = cJSON_GetObjectItem(report, "brier")->valuedouble;
    if (fabs(got_loss - log_loss) > 1e-5 * log_loss || fabs(got_brier - brier) > 1e-5 * brier)
        fail_msg("log loss %.9g (here %.9g), Brier %.9g (here %.9g)", got_loss, log_loss, got_brier,
                 brier);
    cJSON_Delete(report);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_in_flight_every_type),
        cmocka_unit_test(test_eval_many_small_batches),
        cmocka_unit_test(test_eval_many_small_batches_with_labels),
        cmocka_unit_test(test_eval_profiled_many_small_batches),
        cmocka_unit_test(test_profiled_run_waits_for_device_queue),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
