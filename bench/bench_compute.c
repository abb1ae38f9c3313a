/* Compute-only throughput: the same batches as `cleval eval|knn`, already in memory. Loads the
 * first N rows of a test set, then times the model alone over them (median of the repeats), so
 * bench/bench_pipeline.py can compare the whole streamed run against it.
 *
 *   bench_compute eval MODEL.onnx DATA.h5 [--rows N] [--batch B] [--repeat R]
 *   bench_compute knn TRAIN.h5 DATA.h5 -k K [--rows N] [--batch B] [--repeat R]
 *
 * Prints one line: RESULT <samples/s>. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/dataset.h"
#include "cleval/engine.h"
#include "cleval/knn.h"
#include "cleval/nn.h"
#include "cleval/onnx.h"

static int die(const char *what)
{
    fprintf(stderr, "bench_compute: %s: %s\n", what, cleval_last_error());
    return 1;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Reads rows [0, n) of X (and y) into fresh arrays. */
static cleval_status load(const char *path, uint64_t *n, float **x, int32_t **y, uint64_t *row)
{
    cleval_dataset *ds;
    cleval_column *cx, *cy;
    cleval_status status;
    if ((status = cleval_dataset_open(path, &ds)) ||
        (status = cleval_column_open(ds, "X", CLEVAL_COLUMN_FEATURES, &cx)) ||
        (status = cleval_column_open(ds, "y", CLEVAL_COLUMN_LABELS, &cy)))
        return status;
    if (*n == 0 || *n > cleval_column_rows(cx)) *n = cleval_column_rows(cx);
    *row = cleval_column_row_size(cx);
    *x = malloc(*n * *row * sizeof **x);
    *y = malloc(*n * sizeof **y);
    int32_t max;
    if (!*x || !*y) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory");
    if (!(status = cleval_column_read_f32(cx, 0, *n, *x)))
        status = cleval_column_read_i32(cy, 0, *n, *y, &max);
    cleval_column_close(cx);
    cleval_column_close(cy);
    cleval_dataset_close(ds);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_compute eval|knn MODEL_OR_TRAIN DATA.h5 [-k K] [--rows N] "
                        "[--batch B] [--repeat R]\n");
        return 2;
    }
    const char *mode = argv[1], *model_path = argv[2], *data = argv[3];
    uint64_t rows = 0, batch = 0;
    int repeat = 3;
    uint32_t k = 5;
    for (int i = 4; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--rows") == 0) rows = strtoull(argv[i + 1], NULL, 10);
        if (strcmp(argv[i], "--batch") == 0) batch = strtoull(argv[i + 1], NULL, 10);
        if (strcmp(argv[i], "--repeat") == 0) repeat = atoi(argv[i + 1]);
        if (strcmp(argv[i], "-k") == 0) k = (uint32_t)atoi(argv[i + 1]);
    }
    repeat = repeat < 1 ? 1 : repeat > 32 ? 32 : repeat;
    uint32_t index;
    cleval_device *dev;
    if (cleval_device_resolve(NULL, &index) || cleval_device_open(index, &dev)) return die("device");
    float *x;
    int32_t *y;
    uint64_t row;
    if (load(data, &rows, &x, &y, &row)) return die(data);

    cleval_nn *nn = NULL;
    cleval_knn *knn = NULL;
    if (strcmp(mode, "eval") == 0) {
        cleval_onnx_model *model;
        if (cleval_onnx_load(model_path, &model) || cleval_nn_create(dev, model, &nn))
            return die(model_path);
        cleval_onnx_free(model);
        batch = batch ? batch : CLEVAL_DEFAULT_EVAL_BATCH;
    } else {
        float *tx;
        int32_t *ty;
        uint64_t tn = 0, trow;
        if (load(model_path, &tn, &tx, &ty, &trow)) return die(model_path);
        cleval_knn_config config = {.k = k, .n_classes = 10};
        if (cleval_knn_create(dev, &config, tn, (uint32_t)trow, &knn) ||
            cleval_knn_set_train(knn, 0, tn, tx, ty) || cleval_knn_prepare(knn))
            return die("knn");
        free(tx);
        free(ty);
        batch = batch ? batch : CLEVAL_DEFAULT_KNN_BATCH;
        if (batch > cleval_knn_max_batch(knn)) batch = cleval_knn_max_batch(knn);
    }
    int32_t *pred = malloc(batch * sizeof *pred);
    double times[32];
    for (int r = -1; r < repeat; r++) { /* one warm-up */
        double start = cleval_seconds();
        for (uint64_t row0 = 0; row0 < rows; row0 += batch) {
            uint32_t n = (uint32_t)(rows - row0 < batch ? rows - row0 : batch);
            cleval_status status = nn ? cleval_nn_run(nn, x + row0 * row, n, NULL)
                                      : cleval_knn_search(knn, x + row0 * row, n, pred, NULL);
            if (status) return die("run");
        }
        if (cleval_device_finish(dev)) return die("finish");
        if (r >= 0) times[r] = cleval_seconds() - start;
    }
    qsort(times, (size_t)repeat, sizeof *times, by_value);
    printf("RESULT %.1f\n", (double)rows / times[repeat / 2]);
    cleval_nn_destroy(nn);
    cleval_knn_destroy(knn);
    cleval_device_close(dev);
    free(x);
    free(y);
    free(pred);
    return 0;
}
