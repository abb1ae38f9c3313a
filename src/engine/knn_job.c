/* `cleval knn`: loads the training set into the KNN searcher, then streams the test set
 * through it with the shared predict loop. */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TRAIN_CHUNK_ROWS = 16384 };

typedef struct knn_model {
    cleval_knn *knn;
} knn_model;

static cleval_status predict(void *self, const float *x, uint32_t n, float *scores, cl_mem *pred)
{
    knn_model *m = self;
    /* The searcher writes host predictions too; the loop reads the device buffer. */
    int32_t *host_pred = malloc((size_t)n * sizeof *host_pred);
    if (!host_pred) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for KNN predictions");
    cleval_status status = cleval_knn_search(m->knn, x, n, host_pred, scores);
    free(host_pred);
    *pred = cleval_knn_pred_buffer(m->knn);
    return status;
}

/* Opens the training set: X and y (labels are required), same length, at least one row. */
static cleval_status open_train(const cleval_knn_job *job, cleval_dataset **ds, cleval_column **x,
                                cleval_column **y)
{
    const char *x_key = job->test.x_key ? job->test.x_key : "X";
    const char *y_key = job->test.y_key ? job->test.y_key : "y";
    cleval_status status;
    if ((status = cleval_dataset_open(job->train_path, ds)) ||
        (status = cleval_column_open(*ds, x_key, CLEVAL_COLUMN_FEATURES, x)))
        return status;
    if (!cleval_dataset_has(*ds, y_key))
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: no dataset '%s' (a KNN training set needs labels)",
                           job->train_path, y_key);
    if ((status = cleval_column_open(*ds, y_key, CLEVAL_COLUMN_LABELS, y))) return status;
    uint64_t n = cleval_column_rows(*x);
    if (n == 0)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: the training set is empty", job->train_path);
    if (cleval_column_rows(*y) != n)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' has %llu samples but '%s' has %llu",
                           job->train_path, x_key, (unsigned long long)n, y_key,
                           (unsigned long long)cleval_column_rows(*y));
    return CLEVAL_OK;
}

/* Streams the training rows into the searcher in chunks. */
static cleval_status load_train(cleval_knn *knn, cleval_column *x, cleval_column *y)
{
    uint64_t n = cleval_column_rows(x), row = cleval_column_row_size(x);
    uint64_t chunk = n < TRAIN_CHUNK_ROWS ? n : TRAIN_CHUNK_ROWS;
    float *values = malloc(chunk * row * sizeof *values);
    int32_t *labels = malloc(chunk * sizeof *labels);
    cleval_status status = values && labels
                               ? CLEVAL_OK
                               : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory loading training rows");
    for (uint64_t row0 = 0; status == CLEVAL_OK && row0 < n; row0 += chunk) {
        uint64_t count = n - row0 < chunk ? n - row0 : chunk;
        int32_t max;
        if (!(status = cleval_column_read_f32(x, row0, count, values)) &&
            !(status = cleval_column_read_i32(y, row0, count, labels, &max)))
            status = cleval_knn_set_train(knn, row0, count, values, labels);
    }
    free(values);
    free(labels);
    return status;
}

static cleval_status max_train_label(cleval_column *y, int32_t *max_label)
{
    uint64_t n = cleval_column_rows(y);
    int32_t *labels = malloc(n * sizeof *labels);
    if (!labels) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading training labels");
    cleval_status status = cleval_column_read_i32(y, 0, n, labels, max_label);
    free(labels);
    return status;
}

cleval_status cleval_engine_knn(const cleval_knn_job *job, cleval_knn_outcome *out)
{
    memset(out, 0, sizeof *out);
    cleval_dataset *train_ds = NULL;
    cleval_column *train_x = NULL, *train_y = NULL;
    engine_test_stream test = {0};
    cleval_knn *knn = NULL;
    double start = cleval_seconds();
    int32_t max_train = -1, max_test = -1;
    cleval_status status = open_train(job, &train_ds, &train_x, &train_y);
    if (status == CLEVAL_OK) status = engine_open_test_set(&job->test, &test);
    if (status == CLEVAL_OK) {
        char what[4200];
        snprintf(what, sizeof what, "the training set %s", job->train_path);
        status = engine_check_sample_shape(&test, cleval_column_row_rank(train_x),
                                           cleval_column_row_shape(train_x), what);
    }
    if (status == CLEVAL_OK) status = max_train_label(train_y, &max_train);
    if (status == CLEVAL_OK) status = engine_scan_labels(&test, &max_test);
    if (status != CLEVAL_OK) goto done;

    out->n_train = cleval_column_rows(train_x);
    cleval_knn_config config = job->config;
    config.n_classes = (uint32_t)(max_train > max_test ? max_train : max_test) + 1;
    uint64_t dim = cleval_column_row_size(train_x);
    if (dim > UINT32_MAX) {
        status = cleval_fail(CLEVAL_ERR_UNSUPPORTED, "%s: samples of %llu features are too large",
                             job->train_path, (unsigned long long)dim);
        goto done;
    }
    if ((status = cleval_knn_create(job->device, &config, out->n_train, (uint32_t)dim, &knn)) ||
        (status = load_train(knn, train_x, train_y)) || (status = cleval_knn_prepare(knn)))
        goto done;
    out->load_s = cleval_seconds() - start;

    char description[160];
    snprintf(description, sizeof description, "KNN k=%u weights=%s metric=%s train=%llu rows",
             config.k, config.weights == CLEVAL_KNN_DISTANCE ? "distance" : "uniform",
             config.metric == CLEVAL_KNN_COSINE ? "cosine" : "euclidean",
             (unsigned long long)out->n_train);
    knn_model self = {knn};
    engine_model model = {.self = &self,
                          .description = description,
                          .n_classes = config.n_classes,
                          .max_batch = cleval_knn_max_batch(knn),
                          .predict = predict};
    cleval_test_set test_set = job->test;
    if (!test_set.batch) test_set.batch = CLEVAL_DEFAULT_KNN_BATCH;
    status = engine_predict_loop(job->device, &test_set, &test, &model, &out->predict);
    if (status == CLEVAL_OK && out->predict.class_names.count == 0)
        status = cleval_dataset_class_names(train_ds, &out->predict.class_names.names,
                                            &out->predict.class_names.count);
    if (status == CLEVAL_OK) out->stats = *cleval_knn_get_stats(knn);

done:
    cleval_knn_destroy(knn);
    engine_close_test_set(&test);
    cleval_column_close(train_x);
    cleval_column_close(train_y);
    cleval_dataset_close(train_ds);
    if (status != CLEVAL_OK) cleval_predict_outcome_free(&out->predict);
    return status;
}
