/* `cleval knn` as a user runs it: every bad input named in docs/contract.md exits 2 with one line,
 * a normal run reports metrics and the tie counts, --save writes the prediction file, and a
 * test set without labels gives predictions only. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes X float32 [n, d] (values i * d + j, or NaN at `nan_row`) and, unless `labels` is 0,
 * y int32 [n] = i % 3. */
static const char *write_set(const char *name, hsize_t n, hsize_t d, long nan_row, int labels)
{
    const char *path = temp_path(name);
    hid_t file = h5_create(path);
    float *x = calloc(n * d + 1, sizeof *x);
    int32_t *y = calloc(n + 1, sizeof *y);
    for (hsize_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % 3);
        for (hsize_t j = 0; j < d; j++)
            x[i * d + j] = (float)((i * 7 + j * 3) % 11);
    }
    if (nan_row >= 0) x[nan_row * d] = NAN;
    hsize_t xdims[2] = {n, d};
    h5_write(file, "X", H5T_NATIVE_FLOAT, 2, xdims, x, 0, NULL);
    if (labels) h5_write(file, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    free(x);
    free(y);
    H5Fclose(file);
    return path;
}

/* Sets label `row` of a set written by write_set. */
static void set_label(const char *path, hsize_t row, int32_t label)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t dset = H5Dopen2(file, "y", H5P_DEFAULT);
    hid_t space = H5Dget_space(dset);
    hsize_t one = 1;
    hid_t mem = H5Screate_simple(1, &one, NULL);
    H5Sselect_hyperslab(space, H5S_SELECT_SET, &row, NULL, &one, NULL);
    assert_true(H5Dwrite(dset, H5T_NATIVE_INT32, mem, space, H5P_DEFAULT, &label) >= 0);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(dset);
    H5Fclose(file);
}

/* One stray large label decides no class count: it stops the run before the device tables
 * are sized, naming the file, the sample and --max-classes (it once failed as an OpenCL error
 * after asking for gigabytes). */
static void test_max_classes(void **state)
{
    (void)state;
    char train[4096], test[4096], huge_train[4096], huge_test[4096];
    snprintf(train, sizeof train, "%s", write_set("knn_mc_train.h5", 20, 4, -1, 1));
    snprintf(test, sizeof test, "%s", write_set("knn_mc_test.h5", 9, 4, -1, 1));
    snprintf(huge_train, sizeof huge_train, "%s", write_set("knn_mc_huge_train.h5", 20, 4, -1, 1));
    snprintf(huge_test, sizeof huge_test, "%s", write_set("knn_mc_huge_test.h5", 9, 4, -1, 1));
    set_label(huge_train, 5, INT32_MAX);
    set_label(huge_test, 2, INT32_MAX);
    expect_cleval_error(
        (const char *[]){"knn", "--train", train, "--data", huge_test, "-k", "1", NULL}, 2,
        "knn_mc_huge_test.h5: 'y' sample 2 has label 2147483647, above "
        "--max-classes 10000 (raise it if the model really has that many "
        "classes)");
    expect_cleval_error(
        (const char *[]){"knn", "--train", huge_train, "--data", test, "-k", "1", NULL}, 2,
        "knn_mc_huge_train.h5: 'y' sample 5 has label 2147483647");
    /* Labels 0..2 are 3 classes: --max-classes 3 runs, 2 refuses. */
    cJSON_Delete(run_cleval_json((const char *[]){"knn", "--train", train, "--data", test, "-k",
                                                  "1", "--max-classes", "3", "--json", "-", NULL},
                                 0));
    expect_cleval_error((const char *[]){"knn", "--train", train, "--data", test, "-k", "1",
                                         "--max-classes", "2", NULL},
                        2, "knn_mc_train.h5: 'y' sample 2 has label 2, above --max-classes 2");
    /* merge holds the parts to it as well. */
    char parts[2][4096];
    for (int i = 0; i < 2; i++) {
        char shard[8], name[32];
        snprintf(shard, sizeof shard, "%d/2", i);
        snprintf(name, sizeof name, "knn_mc_part%d.h5", i);
        snprintf(parts[i], sizeof parts[i], "%s", temp_path(name));
        cJSON_Delete(run_cleval_json((const char *[]){"knn", "--train", train, "--data", test, "-k",
                                                      "1", "--shard", shard, "--save", parts[i],
                                                      "--json", "-", NULL},
                                     0));
    }
    cJSON_Delete(run_cleval_json(
        (const char *[]){"merge", parts[0], parts[1], "--max-classes", "3", "--json", "-", NULL},
        0));
    expect_cleval_error((const char *[]){"merge", parts[0], parts[1], "--max-classes", "2", NULL},
                        2,
                        "knn_mc_part0.h5 has 3 classes, more than --max-classes 2");
}

static void test_bad_inputs_exit_2(void **state)
{
    (void)state;
    char train[4096], test[4096], wide[4096], nan_train[4096], nan_test[4096], unlabelled[4096],
        empty[4096];
    snprintf(train, sizeof train, "%s", write_set("knn_train.h5", 20, 4, -1, 1));
    snprintf(test, sizeof test, "%s", write_set("knn_test.h5", 9, 4, -1, 1));
    snprintf(wide, sizeof wide, "%s", write_set("knn_wide.h5", 9, 5, -1, 1));
    snprintf(nan_train, sizeof nan_train, "%s", write_set("knn_nan_train.h5", 20, 4, 13, 1));
    snprintf(nan_test, sizeof nan_test, "%s", write_set("knn_nan_test.h5", 9, 4, 5, 1));
    snprintf(unlabelled, sizeof unlabelled, "%s", write_set("knn_unlabelled.h5", 20, 4, -1, 0));
    snprintf(empty, sizeof empty, "%s", write_set("knn_empty.h5", 0, 4, -1, 1));

    expect_cleval_error((const char *[]){"knn", "--train", train, "--data", test, "-k", "0", NULL},
                        2, "-k must be at least 1");
    expect_cleval_error((const char *[]){"knn", "--train", train, "--data", test, "-k", "21", NULL},
                        2, "-k 21 is larger than the training set (20 rows)");
    expect_cleval_error((const char *[]){"knn", "--train", train, "--data", test, NULL}, 2,
                        "-k K is required");
    expect_cleval_error((const char *[]){"knn", "--data", test, "-k", "3", NULL}, 2,
                        "--train TRAIN.h5 is required");
    expect_cleval_error((const char *[]){"knn", "--train", train, "--data", wide, "-k", "3", NULL},
                        2, "samples have shape [5] but the training set");
    expect_cleval_error(
        (const char *[]){"knn", "--train", nan_train, "--data", test, "-k", "3", NULL}, 2,
        "'X' sample 13 holds NaN");
    expect_cleval_error(
        (const char *[]){"knn", "--train", train, "--data", nan_test, "-k", "3", NULL}, 2,
        "'X' sample 5 holds NaN");
    expect_cleval_error(
        (const char *[]){"knn", "--train", unlabelled, "--data", test, "-k", "3", NULL}, 2,
        "a KNN training set needs labels");
    expect_cleval_error((const char *[]){"knn", "--train", empty, "--data", test, "-k", "1", NULL},
                        2, "the training set is empty");
    expect_cleval_error((const char *[]){"knn", "--train", train, "--data", test, "-k", "3",
                                         "--weights", "gaussian", NULL},
                        2, "--weights: 'gaussian' is not one of uniform, distance");
    expect_cleval_error((const char *[]){"knn", "--train", train, "--data", test, "-k", "3",
                                         "--metric", "manhattan", NULL},
                        2, "--metric: 'manhattan' is not one of euclidean, cosine");
    expect_cleval_error(
        (const char *[]){"knn", "--train", train, "--data", test, "-k", "3", "--batch", "0", NULL},
        2, "--batch: must be at least 1");
    expect_cleval_error(
        (const char *[]){"knn", "--train", "/nonexistent.h5", "--data", test, "-k", "3", NULL}, 2,
        "/nonexistent.h5: cannot open");
    expect_cleval_error((const char *[]){"knn", "--train", train, "--data", test, "-k", "3",
                                         "--against", "0", "--alpha", "5", NULL},
                        2, "--alpha: must be between 0 and 1");
}

/* The seed's baseline: iris, k=3, every test sample right (scikit-learn's accuracy 1.0). */
static void test_iris_report_and_save(void **state)
{
    (void)state;
    char train[4096], test[4096], saved[4096];
    snprintf(train, sizeof train, "%s/../../datasets/iris_train.h5", CLEVAL_FIXTURES_DIR);
    snprintf(test, sizeof test, "%s/../../datasets/iris_test.h5", CLEVAL_FIXTURES_DIR);
    snprintf(saved, sizeof saved, "%s", temp_path("knn_iris_pred.h5"));
    remove(saved);
    cJSON *report =
        run_cleval_json((const char *[]){"knn", "--train", train, "--data", test, "-k", "3",
                                         "--json", "-", "--save", saved, "--batch", "7", NULL},
                        0);
    assert_int_equal(cJSON_GetObjectItem(report, "n_samples")->valueint, 30);
    assert_int_equal(cJSON_GetObjectItem(report, "n_classes")->valueint, 3);
    assert_true(cJSON_GetObjectItem(report, "accuracy")->valuedouble == 1.0);
    cJSON *knn = cJSON_GetObjectItem(report, "knn");
    assert_int_equal(cJSON_GetObjectItem(knn, "k")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(knn, "n_train")->valueint, 120);
    assert_non_null(cJSON_GetObjectItem(knn, "vote_ties"));
    assert_non_null(cJSON_GetObjectItem(knn, "distance_ties"));
    cJSON *per_class = cJSON_GetObjectItem(report, "per_class");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(per_class, 2), "name")->valuestring,
                        "virginica");
    cJSON_Delete(report);

    hid_t file = H5Fopen(saved, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    float scores[30 * 3];
    int32_t pred[30], y[30];
    hid_t d = H5Dopen2(file, "scores", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, scores) >= 0);
    H5Dclose(d);
    d = H5Dopen2(file, "pred", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, pred) >= 0);
    H5Dclose(d);
    d = H5Dopen2(file, "y", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) >= 0);
    H5Dclose(d);
    assert_true(H5Aexists(file, "model") > 0 && H5Aexists(file, "device") > 0);
    H5Fclose(file);
    for (int i = 0; i < 30; i++) {
        assert_int_equal(pred[i], y[i]);
        float sum = scores[i * 3] + scores[i * 3 + 1] + scores[i * 3 + 2];
        assert_true(fabsf(sum - 1.0f) < 1e-6f);
        assert_true(scores[i * 3 + pred[i]] >= 2.0f / 3.0f - 1e-6f); /* a vote fraction */
    }
}

static void test_unlabelled_test_set(void **state)
{
    (void)state;
    char train[4096], test[4096];
    snprintf(train, sizeof train, "%s", write_set("knn_train2.h5", 20, 4, -1, 1));
    snprintf(test, sizeof test, "%s", write_set("knn_test_unlabelled.h5", 9, 4, -1, 0));
    cJSON *report = run_cleval_json(
        (const char *[]){"knn", "--train", train, "--data", test, "-k", "1", "--json", "-", NULL},
        0);
    assert_null(cJSON_GetObjectItem(report, "accuracy"));
    cJSON *counts = cJSON_GetObjectItem(report, "predicted_class_counts");
    assert_int_equal(cJSON_GetArraySize(counts), 3);
    int total = 0;
    for (int k = 0; k < 3; k++)
        total += cJSON_GetArrayItem(counts, k)->valueint;
    assert_int_equal(total, 9);
    /* Rows 0..8 of the test set equal rows 0..8 of the training set: k=1 finds each itself,
     * and the training labels are i % 3, so the classes come out 3, 3, 3. */
    for (int k = 0; k < 3; k++)
        assert_int_equal(cJSON_GetArrayItem(counts, k)->valueint, 3);
    cJSON_Delete(report);
}

/* Class names only in the training set name the classes, also through --shard and merge. */
static void test_training_set_names_the_classes(void **state)
{
    (void)state;
    char train[4096], test[4096], parts[2][4096];
    snprintf(train, sizeof train, "%s", write_set("knn_named_train.h5", 20, 4, -1, 1));
    snprintf(test, sizeof test, "%s", write_set("knn_unnamed_test.h5", 9, 4, -1, 1));
    hid_t file = H5Fopen(train, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(file >= 0);
    h5_write_strings(file, "class_names", (const char *const[]){"ant", "bee", "cat"}, 3);
    H5Fclose(file);
    cJSON *reports[2];
    reports[0] = run_cleval_json(
        (const char *[]){"knn", "--train", train, "--data", test, "-k", "1", "--json", "-", NULL},
        0);
    for (int i = 0; i < 2; i++) {
        char shard[8], name[32];
        snprintf(shard, sizeof shard, "%d/2", i);
        snprintf(name, sizeof name, "knn_named_part%d.h5", i);
        snprintf(parts[i], sizeof parts[i], "%s", temp_path(name));
        cJSON_Delete(run_cleval_json((const char *[]){"knn", "--train", train, "--data", test, "-k",
                                                      "1", "--shard", shard, "--save", parts[i],
                                                      "--json", "-", NULL},
                                     0));
    }
    reports[1] =
        run_cleval_json((const char *[]){"merge", parts[0], parts[1], "--json", "-", NULL}, 0);
    for (int r = 0; r < 2; r++) {
        cJSON *per_class = cJSON_GetObjectItem(reports[r], "per_class");
        assert_int_equal(cJSON_GetArraySize(per_class), 3);
        assert_string_equal(
            cJSON_GetObjectItem(cJSON_GetArrayItem(per_class, 2), "name")->valuestring, "cat");
        cJSON_Delete(reports[r]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_inputs_exit_2),
        cmocka_unit_test(test_max_classes),
        cmocka_unit_test(test_iris_report_and_save),
        cmocka_unit_test(test_unlabelled_test_set),
        cmocka_unit_test(test_training_set_names_the_classes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
