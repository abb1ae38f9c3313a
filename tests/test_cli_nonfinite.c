/* NaN and infinite scores: a network that produces them (the 20-5 MLP fixture fed finite
 * inputs of +-3e38, which overflow its layers) is refused by eval with exit 2 and one line,
 * and so is every command that reads the prediction file, unless --allow-nonfinite; with it
 * each command gives a defined result and counts them in its JSON. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N = 8, D = 20, WIDTH = 5 };
static const int overflowing[] = {2, 5, 6}; /* the samples fed +-3e38 */

static char model[4096], data[4096], clean_data[4096];

/* The test set, with (or without) the overflowing samples; the others are small values. */
static void write_test_set(const char *path, bool overflow)
{
    float x[N][D];
    int32_t y[N];
    for (int i = 0; i < N; i++) {
        y[i] = i % WIDTH;
        for (int j = 0; j < D; j++)
            x[i][j] = (float)((i * 7 + j * 3) % 11) / 11.0f - 0.5f;
    }
    for (size_t k = 0; overflow && k < sizeof overflowing / sizeof *overflowing; k++)
        for (int j = 0; j < D; j++)
            x[overflowing[k]][j] = j % 2 ? -3e38f : 3e38f;
    hid_t file = h5_create(path);
    hsize_t dims[2] = {N, D};
    h5_write(file, "X", H5T_NATIVE_FLOAT, 2, dims, x, 0, NULL);
    h5_write(file, "y", H5T_NATIVE_INT32, 1, dims, y, 0, NULL);
    H5Fclose(file);
}

static int setup(void **state)
{
    (void)state;
    snprintf(model, sizeof model, "%s", fixture_path("onnx/mlp_softmax.onnx"));
    snprintf(data, sizeof data, "%s", temp_path("overflow.h5"));
    snprintf(clean_data, sizeof clean_data, "%s", temp_path("clean.h5"));
    write_test_set(data, true);
    write_test_set(clean_data, false);
    return 0;
}

/* The non-finite scores of a prediction file, and the first sample holding one. */
static uint64_t count_nonfinite(const char *path, int64_t *first)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dset = H5Dopen2(file, "scores", H5P_DEFAULT);
    float scores[N][WIDTH];
    assert_true(H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, scores) >= 0);
    H5Dclose(dset);
    H5Fclose(file);
    uint64_t count = 0;
    *first = -1;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < WIDTH; j++)
            if (!isfinite(scores[i][j])) {
                count++;
                if (*first < 0) *first = i;
            }
    return count;
}

static double number(const cJSON *json, const char *name)
{
    const cJSON *item = cJSON_GetObjectItem(json, name);
    if (!cJSON_IsNumber(item)) fail_msg("no number '%s' in the report", name);
    return item->valuedouble;
}

/* The saved run of the overflowing test set, accepted: its path; *count its non-finite scores
 * (as the saved file holds them), checked against the report. */
static const char *accepted_run(uint64_t *count)
{
    static char saved[4096];
    snprintf(saved, sizeof saved, "%s", temp_path("nan_pred.h5"));
    cJSON *json =
        run_cleval_json((const char *[]){"eval", "--model", model, "--data", data, "--save", saved,
                                         "--allow-nonfinite", "--json", "-", NULL},
                        0);
    int64_t first;
    *count = count_nonfinite(saved, &first);
    assert_true(*count > 0);
    assert_int_equal(first, overflowing[0]);
    assert_int_equal((uint64_t)number(json, "nonfinite_scores"), *count);
    cJSON_Delete(json);
    return saved;
}

static void test_eval_refuses_nonfinite_scores(void **state)
{
    (void)state;
    uint64_t count;
    accepted_run(&count);
    char saved[4096], message[4200];
    snprintf(saved, sizeof saved, "%s", temp_path("refused.h5"));
    snprintf(message, sizeof message,
             "cleval: model %s produced %llu non-finite scores (first in sample %d); pass "
             "--allow-nonfinite to accept them",
             model, (unsigned long long)count, overflowing[0]);
    expect_cleval_error(
        (const char *[]){"eval", "--model", model, "--data", data, "--save", saved, NULL}, 2,
        message);
    assert_int_equal(access(saved, F_OK), -1);
    /* A clean test set: nothing to refuse, and the report says so. */
    cJSON *json = run_cleval_json(
        (const char *[]){"eval", "--model", model, "--data", clean_data, "--json", "-", NULL}, 0);
    assert_int_equal((int)number(json, "nonfinite_scores"), 0);
    cJSON_Delete(json);
}

static void test_compare_nonfinite_scores(void **state)
{
    (void)state;
    uint64_t count;
    char nan_run[4096], clean_run[4096], message[4200];
    snprintf(nan_run, sizeof nan_run, "%s", accepted_run(&count));
    snprintf(clean_run, sizeof clean_run, "%s", temp_path("clean_pred.h5"));
    assert_int_equal(run_cleval((const char *[]){"eval", "--model", model, "--data", clean_data,
                                                 "--save", clean_run, NULL},
                                NULL, NULL),
                     0);
    snprintf(message, sizeof message,
             "%s: 'scores' holds %llu non-finite scores (first in sample %d); pass "
             "--allow-nonfinite",
             nan_run, (unsigned long long)count, overflowing[0]);
    expect_cleval_error((const char *[]){"compare", clean_run, nan_run, NULL}, 2, message);
    /* Accepted: the pairs with a non-finite score are left out; every other sample had the
     * same input in both runs, so the scores agree exactly. */
    cJSON *json = run_cleval_json(
        (const char *[]){"compare", clean_run, nan_run, "--allow-nonfinite", "--json", "-", NULL},
        0);
    assert_true(number(json, "max_abs_score_diff") == 0.0);
    cJSON *nonfinite = cJSON_GetObjectItem(json, "nonfinite_scores");
    assert_int_equal((int)number(nonfinite, "a"), 0);
    assert_int_equal((uint64_t)number(nonfinite, "b"), count);
    cJSON_Delete(json);
}

static void test_drift_and_metrics_on_nonfinite_scores(void **state)
{
    (void)state;
    uint64_t count;
    char nan_run[4096], message[4200];
    snprintf(nan_run, sizeof nan_run, "%s", accepted_run(&count));
    snprintf(message, sizeof message,
             "%s: 'scores' holds %llu non-finite scores (first in sample %d)", nan_run,
             (unsigned long long)count, overflowing[0]);
    expect_cleval_error((const char *[]){"drift", nan_run, nan_run, NULL}, 2, message);
    cJSON *json = run_cleval_json(
        (const char *[]){"drift", nan_run, nan_run, "--allow-nonfinite", "--json", "-", NULL}, 0);
    cJSON *nonfinite = cJSON_GetObjectItem(json, "nonfinite_scores");
    assert_int_equal((uint64_t)number(nonfinite, "reference"), count);
    assert_int_equal((uint64_t)number(nonfinite, "current"), count);
    /* The overflowing samples have no confidence: the histogram holds the other five. */
    cJSON *reference = cJSON_GetObjectItem(cJSON_GetObjectItem(json, "confidence"), "reference");
    double binned = 0;
    for (cJSON *bin = reference ? reference->child : NULL; bin; bin = bin->next)
        binned += bin->valuedouble;
    assert_true(binned == N - 3);
    cJSON_Delete(json);
    /* metrics reads pred and y only: the scores do not concern it. */
    json = run_cleval_json((const char *[]){"metrics", "--data", nan_run, "--json", "-", NULL}, 0);
    assert_int_equal((int)number(json, "n_samples"), N);
    cJSON_Delete(json);
}

static void test_merge_nonfinite_parts(void **state)
{
    (void)state;
    char parts[2][4096], whole[4096];
    for (int i = 0; i < 2; i++) {
        char shard[8];
        snprintf(shard, sizeof shard, "%d/2", i);
        snprintf(parts[i], sizeof parts[i], "%s", temp_path(i ? "part1.h5" : "part0.h5"));
        assert_int_equal(
            run_cleval((const char *[]){"eval", "--model", model, "--data", data, "--shard", shard,
                                        "--save", parts[i], "--allow-nonfinite", NULL},
                       NULL, NULL),
            0);
    }
    snprintf(whole, sizeof whole, "%s", temp_path("merged.h5"));
    unlink(whole); /* a previous run's */
    expect_cleval_error((const char *[]){"merge", parts[0], parts[1], "--save", whole, NULL}, 2,
                        "non-finite scores (the first in");
    assert_int_equal(access(whole, F_OK), -1);
    cJSON *json = run_cleval_json((const char *[]){"merge", parts[0], parts[1], "--save", whole,
                                                   "--allow-nonfinite", "--json", "-", NULL},
                                  0);
    int64_t first;
    assert_int_equal((uint64_t)number(json, "nonfinite_scores"), count_nonfinite(whole, &first));
    assert_int_equal(first, overflowing[0]);
    cJSON_Delete(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_refuses_nonfinite_scores),
        cmocka_unit_test(test_compare_nonfinite_scores),
        cmocka_unit_test(test_drift_and_metrics_on_nonfinite_scores),
        cmocka_unit_test(test_merge_nonfinite_parts),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
