/* The public C API (include/cleval.h) against the command-line tool and plain C references: the
 * same model on a file and on arrays in memory gives the CLI's JSON; KNN and metrics on arrays
 * give the CLI's JSON and the predictions of a brute-force reference; bad arguments fail with
 * a status and one line, never a crash. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval.h"

#define SHIPPED_MODEL CLEVAL_SOURCE_DIR "/datasets/fmnist_cnn.onnx"
#define SHIPPED_TEST CLEVAL_SOURCE_DIR "/datasets/fmnist_test.h5"

/* The parsed JSON of a result, less what differs between two runs of one job: timings. */
static cJSON *result_report(const cleval_result *result)
{
    cJSON *json = cJSON_Parse(cleval_result_json(result));
    assert_non_null(json);
    cJSON_DeleteItemFromObject(json, "timing");
    cJSON_DeleteItemFromObject(json, "timing_breakdown");
    return json;
}

static cJSON *cli_report(const char *const *args)
{
    cJSON *json = run_cleval_json(args, 0);
    cJSON_DeleteItemFromObject(json, "timing");
    cJSON_DeleteItemFromObject(json, "timing_breakdown");
    return json;
}

/* Fails naming the first member that differs, the texts left in the test's folder. */
static void assert_same_report(cJSON *expected, cJSON *got)
{
    if (cJSON_Compare(expected, got, true)) return;
    const char *names[] = {"api_expected.json", "api_got.json"};
    cJSON *reports[] = {expected, got};
    for (int i = 0; i < 2; i++) {
        char *text = cJSON_Print(reports[i]);
        FILE *f = fopen(temp_path(names[i]), "w");
        fputs(text, f);
        fclose(f);
        free(text);
    }
    const cJSON *item;
    const char *first = "(the number of members)";
    cJSON_ArrayForEach(item, expected)
    {
        if (!cJSON_Compare(item, cJSON_GetObjectItem(got, item->string), true)) {
            first = item->string;
            break;
        }
    }
    fail_msg("the reports differ at '%s' (see %s and %s)", first ? first : "?", temp_path(names[0]),
             names[1]);
}

/* Arrays carry no class names: their per-class "name" is the label's number. */
static void drop_class_names(cJSON *report)
{
    cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItem(report, "per_class"))
        cJSON_DeleteItemFromObject(row, "name");
}

/* Rows [0, n) of an HDF5 dataset, read with HDF5 as `mem_type` into heap memory (free). */
static void *read_rows(const char *path, const char *name, hid_t mem_type, hsize_t n,
                       hsize_t *row_size)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t space = H5Dget_space(dset);
    hsize_t dims[8], start[8] = {0};
    int rank = H5Sget_simple_extent_dims(space, dims, NULL);
    assert_true(rank >= 1 && n <= dims[0]);
    *row_size = 1;
    for (int d = 1; d < rank; d++)
        *row_size *= dims[d];
    dims[0] = n;
    void *data = malloc(n * *row_size * H5Tget_size(mem_type));
    hid_t mem = H5Screate_simple(rank, dims, NULL);
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, dims, NULL);
    assert_true(H5Dread(dset, mem_type, mem, space, H5P_DEFAULT, data) >= 0);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(dset);
    H5Fclose(file);
    return data;
}

enum { SUBSET_ROWS = 257 }; /* one more than eval's default batch */

/* The first SUBSET_ROWS samples of the shipped test set (uint8 images, labels, class names) as
 * a file of their own; *x and *y receive them (free). */
static const char *write_subset(uint8_t **x, int32_t **y)
{
    hsize_t row_size;
    *x = read_rows(SHIPPED_TEST, "X", H5T_NATIVE_UINT8, SUBSET_ROWS, &row_size);
    assert_int_equal(row_size, 28 * 28);
    *y = read_rows(SHIPPED_TEST, "y", H5T_NATIVE_INT32, SUBSET_ROWS, &row_size);
    const char *path = temp_path("api_subset.h5");
    hid_t file = h5_create(path);
    hsize_t xdims[4] = {SUBSET_ROWS, 1, 28, 28}, n = SUBSET_ROWS;
    h5_write(file, "X", H5T_NATIVE_UINT8, 4, xdims, *x, 0, NULL);
    h5_write(file, "y", H5T_NATIVE_INT32, 1, &n, *y, 0, NULL);
    static const char *const names[] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                        "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                        "Bag",         "Ankle boot"};
    h5_write_strings(file, "class_names", names, 10);
    H5Fclose(file);
    return path;
}

/* The same network on the file and on the same samples in memory: the CLI's report, and the
 * predictions and scores of the CLI's prediction file. */
static void test_eval_file_and_arrays(void **state)
{
    (void)state;
    uint8_t *x;
    int32_t *y;
    char data[4096], saved[4096];
    snprintf(data, sizeof data, "%s", write_subset(&x, &y));
    snprintf(saved, sizeof saved, "%s", temp_path("api_eval_pred.h5"));
    /* Batches of 100 rows do not divide the 257; score sums and device memory depend on the
     * batch size, so every run uses the same. */
    const char *args[] = {"eval",    "--model", SHIPPED_MODEL, "--data", data,
                          "--top-k", "2",       "--batch",     "100",    "--json",
                          "-",       "--save",  saved,         "--quiet", NULL};
    cJSON *cli = cli_report(args);

    cleval_options options;
    cleval_options_init(&options);
    options.top_k = 2;
    options.batch = 100;
    cleval_source *file = NULL, *arrays = NULL;
    cleval_result *from_file = NULL, *from_arrays = NULL;
    assert_ok(cleval_source_create_file(data, NULL, NULL, &file));
    assert_ok(cleval_run_eval(SHIPPED_MODEL, file, &options, &from_file));
    cJSON *got = result_report(from_file);
    assert_same_report(cli, got);
    cJSON_Delete(got);
    assert_true(cleval_result_passed(from_file));
    assert_string_equal(cleval_result_verdict(from_file), "");

    cleval_array xa = {
        .data = x, .dtype = CLEVAL_DTYPE_UINT8, .rank = 4, .shape = {SUBSET_ROWS, 1, 28, 28}};
    cleval_array ya = {.data = y, .dtype = CLEVAL_DTYPE_INT32, .rank = 1, .shape = {SUBSET_ROWS}};
    assert_ok(cleval_source_create_arrays(&xa, &ya, &arrays));
    assert_ok(cleval_run_eval(SHIPPED_MODEL, arrays, &options, &from_arrays));
    got = result_report(from_arrays);
    drop_class_names(cli);
    drop_class_names(got);
    assert_same_report(cli, got);
    cJSON_Delete(got);

    hsize_t width;
    int32_t *pred = read_rows(saved, "pred", H5T_NATIVE_INT32, SUBSET_ROWS, &width);
    float *scores = read_rows(saved, "scores", H5T_NATIVE_FLOAT, SUBSET_ROWS, &width);
    assert_int_equal(width, 10);
    const cleval_result *results[] = {from_file, from_arrays};
    for (int r = 0; r < 2; r++) {
        uint64_t n, n_scores;
        uint32_t score_width;
        const int32_t *p = cleval_result_predictions(results[r], &n);
        const float *s = cleval_result_scores(results[r], &n_scores, &score_width);
        assert_int_equal(n, SUBSET_ROWS);
        assert_int_equal(n_scores, SUBSET_ROWS);
        assert_int_equal(score_width, 10);
        assert_memory_equal(p, pred, SUBSET_ROWS * sizeof *pred);
        assert_memory_equal(s, scores, SUBSET_ROWS * 10 * sizeof *scores);
    }
    free(pred);
    free(scores);
    cJSON_Delete(cli);
    cleval_result_destroy(from_file);
    cleval_result_destroy(from_arrays);
    cleval_source_destroy(file);
    cleval_source_destroy(arrays);
    free(x);
    free(y);
}

/* A gate set through the options: the JSON's "gates" and "passed", and the result's verdict,
 * as `--min-accuracy 1` gives them. */
static void test_eval_gate(void **state)
{
    (void)state;
    uint8_t *x;
    int32_t *y;
    char data[4096];
    snprintf(data, sizeof data, "%s", write_subset(&x, &y));
    const char *args[] = {"eval", "--model", SHIPPED_MODEL, "--data",  data, "--min-accuracy",
                          "1",    "--json",  "-",           "--quiet", NULL};
    cJSON *cli = run_cleval_json(args, 1);
    cJSON_DeleteItemFromObject(cli, "timing");
    cJSON_DeleteItemFromObject(cli, "timing_breakdown");
    cleval_options options;
    cleval_options_init(&options);
    options.min_accuracy = 1;
    cleval_source *file = NULL;
    cleval_result *result = NULL;
    assert_ok(cleval_source_create_file(data, NULL, NULL, &file));
    assert_ok(cleval_run_eval(SHIPPED_MODEL, file, &options, &result));
    assert_false(cleval_result_passed(result));
    cJSON *got = result_report(result);
    assert_same_report(cli, got);
    cJSON_Delete(got);
    cJSON_Delete(cli);
    cleval_result_destroy(result);
    cleval_source_destroy(file);
    free(x);
    free(y);
}

/* Brute-force KNN as docs/contract.md states it: Euclidean distance, the lower training index
 * nearer on equal distances, uniform votes, the smallest class on equal votes. */
static int32_t knn_reference(const float *train, const int32_t *labels, size_t n_train,
                             const float *query, size_t dim, uint32_t k, uint32_t n_classes)
{
    bool *taken = calloc(n_train, sizeof *taken);
    uint32_t *votes = calloc(n_classes, sizeof *votes);
    for (uint32_t j = 0; j < k; j++) {
        size_t best = n_train;
        double best_d = INFINITY;
        for (size_t i = 0; i < n_train; i++) {
            double d = 0;
            for (size_t c = 0; c < dim; c++)
                d += ((double)train[i * dim + c] - query[c]) *
                     ((double)train[i * dim + c] - query[c]);
            if (!taken[i] && d < best_d) best = i, best_d = d;
        }
        taken[best] = true;
        votes[labels[best]]++;
    }
    int32_t winner = 0;
    for (uint32_t c = 1; c < n_classes; c++)
        if (votes[c] > votes[winner]) winner = (int32_t)c;
    free(taken);
    free(votes);
    return winner;
}

/* Writes X float32 [n, dim] and y int32 [n] to `path`. */
static void write_knn_set(const char *path, const float *x, const int32_t *y, hsize_t n,
                          hsize_t dim)
{
    hid_t file = h5_create(path);
    hsize_t dims[2] = {n, dim};
    h5_write(file, "X", H5T_NATIVE_FLOAT, 2, dims, x, 0, NULL);
    h5_write(file, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    H5Fclose(file);
}

/* KNN on arrays (float64 training samples, int64 labels: converted as a file's are) against
 * the CLI on the same values in files and the brute-force reference, for 1 and 13 queries. */
static void test_knn_arrays(void **state)
{
    (void)state;
    enum { N_TRAIN = 31, DIM = 3, CLASSES = 4, K = 3 };
    static const size_t query_counts[] = {1, 13};
    float train[N_TRAIN * DIM];
    double train64[N_TRAIN * DIM];
    int32_t labels[N_TRAIN];
    int64_t labels64[N_TRAIN];
    for (size_t i = 0; i < N_TRAIN; i++) {
        labels[i] = (int32_t)((i * 5) % CLASSES);
        labels64[i] = labels[i];
        for (size_t c = 0; c < DIM; c++)
            train64[i * DIM + c] = train[i * DIM + c] = (float)((i * 7 + c * 3) % 11);
    }
    char train_path[4096], test_path[4096];
    snprintf(train_path, sizeof train_path, "%s", temp_path("api_knn_train.h5"));
    write_knn_set(train_path, train, labels, N_TRAIN, DIM);
    for (size_t q = 0; q < sizeof query_counts / sizeof *query_counts; q++) {
        size_t n = query_counts[q];
        float *test = malloc(n * DIM * sizeof *test);
        int32_t *truth = malloc(n * sizeof *truth);
        for (size_t i = 0; i < n; i++) {
            truth[i] = (int32_t)(i % CLASSES);
            for (size_t c = 0; c < DIM; c++)
                test[i * DIM + c] = (float)((i * 5 + c * 2) % 13) * 0.75f;
        }
        snprintf(test_path, sizeof test_path, "%s", temp_path("api_knn_test.h5"));
        write_knn_set(test_path, test, truth, n, DIM);
        const char *args[] = {"knn", "--train", train_path, "--data",  test_path, "-k",
                              "3",   "--json",  "-",        "--quiet", NULL};
        cJSON *cli = cli_report(args);

        cleval_array train_x = {
            .data = train64, .dtype = CLEVAL_DTYPE_FLOAT64, .rank = 2, .shape = {N_TRAIN, DIM}};
        cleval_array train_y = {
            .data = labels64, .dtype = CLEVAL_DTYPE_INT64, .rank = 1, .shape = {N_TRAIN}};
        cleval_array test_x = {
            .data = test, .dtype = CLEVAL_DTYPE_FLOAT32, .rank = 2, .shape = {n, DIM}};
        cleval_array test_y = {.data = truth, .dtype = CLEVAL_DTYPE_INT32, .rank = 1, .shape = {n}};
        cleval_source *train_source = NULL, *test_source = NULL;
        cleval_result *result = NULL;
        assert_ok(cleval_source_create_arrays(&train_x, &train_y, &train_source));
        assert_ok(cleval_source_create_arrays(&test_x, &test_y, &test_source));
        cleval_options options;
        cleval_options_init(&options);
        options.k = K;
        assert_ok(cleval_run_knn(train_source, test_source, &options, &result));
        cJSON *got = result_report(result);
        cJSON_DeleteItemFromObject(got, "knn");
        cJSON_DeleteItemFromObject(cli, "knn");
        assert_same_report(cli, got);
        uint64_t n_pred;
        const int32_t *pred = cleval_result_predictions(result, &n_pred);
        assert_int_equal(n_pred, n);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(
                pred[i], knn_reference(train, labels, N_TRAIN, test + i * DIM, DIM, K, CLASSES));
        cJSON_Delete(got);
        cJSON_Delete(cli);
        cleval_result_destroy(result);
        cleval_source_destroy(train_source);
        cleval_source_destroy(test_source);
        free(test);
        free(truth);
    }
}

/* Metrics on arrays of several types: the CLI's report on the same values in a file, and the
 * accuracy and confusion matrix counted here, for 1 sample and for 7 in batches of 3. */
static void test_metrics_arrays(void **state)
{
    (void)state;
    static const uint8_t y_values[] = {0, 1, 2, 2, 1, 0, 3};
    static const int64_t pred_values[] = {0, 2, 2, 2, 1, 1, 3};
    static const size_t counts[] = {1, 7};
    for (size_t t = 0; t < 2; t++) {
        hsize_t n = counts[t];
        float *scores = malloc(n * 4 * sizeof *scores);
        for (size_t i = 0; i < n * 4; i++)
            scores[i] = (float)((i * 3) % 5) - 1.5f;
        int32_t y32[7], pred32[7];
        for (size_t i = 0; i < n; i++)
            y32[i] = y_values[i], pred32[i] = (int32_t)pred_values[i];
        const char *path = temp_path("api_metrics.h5");
        hid_t file = h5_create(path);
        hsize_t sdims[2] = {n, 4};
        h5_write(file, "y", H5T_NATIVE_INT32, 1, &n, y32, 0, NULL);
        h5_write(file, "pred", H5T_NATIVE_INT32, 1, &n, pred32, 0, NULL);
        h5_write(file, "scores", H5T_NATIVE_FLOAT, 2, sdims, scores, 0, NULL);
        H5Fclose(file);
        const char *args[] = {"metrics", "--data", path, "--batch", "3", "--top-k",
                              "2",       "--json", "-",  "--quiet", NULL};
        cJSON *cli = cli_report(args);

        cleval_array y = {.data = y_values, .dtype = CLEVAL_DTYPE_UINT8, .rank = 1, .shape = {n}};
        cleval_array pred = {
            .data = pred_values, .dtype = CLEVAL_DTYPE_INT64, .rank = 1, .shape = {n}};
        cleval_array score_array = {
            .data = scores, .dtype = CLEVAL_DTYPE_FLOAT32, .rank = 2, .shape = {n, 4}};
        cleval_options options;
        cleval_options_init(&options);
        options.batch = 3;
        options.top_k = 2;
        cleval_result *result = NULL;
        assert_ok(cleval_run_metrics(&y, &pred, &score_array, &options, &result));
        cJSON *got = result_report(result);
        assert_same_report(cli, got);

        uint32_t classes = 0, correct = 0;
        for (size_t i = 0; i < n; i++) {
            classes = y_values[i] + 1u > classes ? y_values[i] + 1u : classes;
            classes = pred_values[i] + 1u > classes ? (uint32_t)pred_values[i] + 1u : classes;
            correct += y_values[i] == pred_values[i];
        }
        assert_int_equal(cJSON_GetObjectItem(got, "n_classes")->valuedouble, classes);
        assert_true(cJSON_GetObjectItem(got, "accuracy")->valuedouble == (double)correct / n);
        cJSON *matrix = cJSON_GetObjectItem(got, "confusion_matrix");
        for (uint32_t a = 0; a < classes; a++)
            for (uint32_t b = 0; b < classes; b++) {
                uint32_t expected = 0;
                for (size_t i = 0; i < n; i++)
                    expected += y_values[i] == a && pred_values[i] == b;
                assert_int_equal(
                    cJSON_GetArrayItem(cJSON_GetArrayItem(matrix, (int)a), (int)b)->valuedouble,
                    expected);
            }
        assert_null(cleval_result_predictions(result, NULL));
        cJSON_Delete(got);
        cJSON_Delete(cli);
        cleval_result_destroy(result);
        free(scores);
    }
}

/* Fails unless `status` is `expected` and the last error is one line containing `needle`. */
static void assert_fails(cleval_status status, cleval_status expected, const char *needle)
{
    assert_int_equal(status, expected);
    const char *message = cleval_last_error();
    if (!strstr(message, needle)) fail_msg("'%s' does not contain '%s'", message, needle);
    assert_null(strchr(message, '\n'));
}

/* Bad arguments and bad arrays: a status, one line, no result and no crash; destroy(NULL) is
 * harmless. */
static void test_bad_arguments(void **state)
{
    (void)state;
    cleval_source_destroy(NULL);
    cleval_result_destroy(NULL);
    cleval_free(NULL);
    cleval_source *source = (cleval_source *)1;
    cleval_result *result = (cleval_result *)1;
    static const float x[6] = {0};
    static const int32_t y[3] = {0, 1, 0};
    static const float float_labels[3] = {0, 1, 0};
    cleval_array xa = {.data = x, .dtype = CLEVAL_DTYPE_FLOAT32, .rank = 2, .shape = {3, 2}};
    cleval_array ya = {.data = y, .dtype = CLEVAL_DTYPE_INT32, .rank = 1, .shape = {3}};

    cleval_array no_data = xa;
    no_data.data = NULL;
    assert_fails(cleval_source_create_arrays(&no_data, NULL, &source), CLEVAL_ERR_USAGE, "NULL");
    assert_null(source);
    cleval_array bad_rank = xa;
    bad_rank.rank = 0;
    assert_fails(cleval_source_create_arrays(&bad_rank, NULL, &source), CLEVAL_ERR_USAGE, "rank");
    cleval_array bad_type = xa;
    bad_type.dtype = (cleval_dtype)42;
    assert_fails(cleval_source_create_arrays(&bad_type, NULL, &source), CLEVAL_ERR_USAGE, "dtype");
    cleval_array empty = xa;
    empty.shape[0] = 0;
    assert_fails(cleval_source_create_arrays(&empty, NULL, &source), CLEVAL_ERR_USAGE, "zero");
    cleval_array short_y = ya;
    short_y.shape[0] = 2;
    assert_fails(cleval_source_create_arrays(&xa, &short_y, &source), CLEVAL_ERR_USAGE, "'y'");
    assert_fails(cleval_source_create_file(NULL, NULL, NULL, &source), CLEVAL_ERR_USAGE, "path");

    assert_ok(cleval_source_create_file(temp_path("api_missing.h5"), NULL, NULL, &source));
    assert_fails(cleval_run_eval(SHIPPED_MODEL, source, NULL, &result), CLEVAL_ERR_INPUT,
                 "api_missing.h5");
    assert_null(result);
    cleval_source_destroy(source);

    cleval_options options;
    cleval_options_init(&options);
    options.precision = "fp8";
    assert_ok(cleval_source_create_arrays(&xa, &ya, &source));
    assert_fails(cleval_run_eval(SHIPPED_MODEL, source, &options, &result), CLEVAL_ERR_USAGE,
                 "fp8");
    /* The samples' shape is checked against the model's input, naming both. */
    assert_fails(cleval_run_eval(SHIPPED_MODEL, source, NULL, &result), CLEVAL_ERR_INPUT, "arrays");
    assert_fails(cleval_run_knn(source, source, NULL, &result), CLEVAL_ERR_USAGE, "k must");
    cleval_source_destroy(source);

    cleval_array labels_as_floats = {
        .data = float_labels, .dtype = CLEVAL_DTYPE_FLOAT32, .rank = 1, .shape = {3}};
    assert_fails(cleval_run_metrics(&labels_as_floats, &ya, NULL, NULL, &result), CLEVAL_ERR_INPUT,
                 "integer labels");
    assert_fails(cleval_run_metrics(&ya, NULL, NULL, NULL, &result), CLEVAL_ERR_USAGE, "pred");
    cleval_array negative = ya;
    static const int32_t minus[3] = {0, -1, 0};
    negative.data = minus;
    assert_fails(cleval_run_metrics(&ya, &negative, NULL, NULL, &result), CLEVAL_ERR_INPUT,
                 "below 0");
    options.min_accuracy = 2;
    options.precision = NULL;
    assert_fails(cleval_run_metrics(&ya, &ya, NULL, &options, &result), CLEVAL_ERR_USAGE,
                 "at most 1");
    assert_null(result);
}

/* The version, the status names and the device list the CLI prints. */
static void test_version_status_devices(void **state)
{
    (void)state;
    assert_string_equal(cleval_version(), CLEVAL_VERSION_STRING);
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", CLEVAL_VERSION_MAJOR, CLEVAL_VERSION_MINOR,
             CLEVAL_VERSION_PATCH);
    assert_string_equal(cleval_version(), expected);
    assert_string_equal(cleval_status_str(CLEVAL_ERR_INPUT), "bad input");
    char *json = NULL;
    assert_ok(cleval_devices_json(&json));
    cJSON *got = cJSON_Parse(json);
    const char *args[] = {"devices", "--json", "-", NULL};
    cJSON *cli = run_cleval_json(args, 0);
    assert_same_report(cli, got);
    assert_true(cJSON_GetArraySize(got) >= 1);
    cJSON_Delete(got);
    cJSON_Delete(cli);
    cleval_free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_file_and_arrays), cmocka_unit_test(test_eval_gate),
        cmocka_unit_test(test_knn_arrays),           cmocka_unit_test(test_metrics_arrays),
        cmocka_unit_test(test_bad_arguments),        cmocka_unit_test(test_version_status_devices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
