/* cleval_run_compare() and cleval_run_drift() over runs in memory give the JSON report that
 * `cleval compare` and `cleval drift` write for the same runs saved as prediction files (the
 * files are written here from the same arrays): sizes 1, a prime and one more than a
 * work-group, labels and scores present or not, other element types than the files', and the
 * failures (lengths that differ, no samples, bad options). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval.h"

enum { MAX_N = 1000, WIDTH = 4 };

/* One saved run: predictions, labels and scores, in the types a prediction file holds. */
typedef struct run {
    uint64_t n;
    int32_t pred[MAX_N], y[MAX_N];
    float scores[MAX_N * WIDTH];
} run;

/* A deterministic generator (no libc rand: the same runs on every platform). */
static uint32_t next_random(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

/* n samples over WIDTH classes, right about 3 times in 4, the scores peaked at the prediction. */
static void make_run(run *r, uint64_t n, uint32_t seed)
{
    r->n = n;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t truth = (uint32_t)i * 7u % WIDTH;
        r->y[i] = (int32_t)truth;
        r->pred[i] = (int32_t)(next_random(&seed) % 4 ? truth : next_random(&seed) % WIDTH);
        for (uint32_t c = 0; c < WIDTH; c++)
            r->scores[i * WIDTH + c] = (float)(next_random(&seed) % 1000) / 250.0f - 2.0f +
                                       (c == (uint32_t)r->pred[i] ? 3.0f : 0.0f);
    }
}

/* The run as a prediction file under the test's folder; which datasets it holds follows the
 * flags. */
static const char *save_run(const char *name, const run *r, bool labels, bool scores)
{
    const char *path = temp_path(name);
    hid_t file = h5_create(path);
    hsize_t dims[2] = {r->n, WIDTH};
    h5_write(file, "pred", H5T_NATIVE_INT32, 1, dims, r->pred, 0, NULL);
    if (labels) h5_write(file, "y", H5T_NATIVE_INT32, 1, dims, r->y, 0, NULL);
    if (scores) h5_write(file, "scores", H5T_NATIVE_FLOAT, 2, dims, r->scores, 0, NULL);
    H5Fclose(file);
    return path;
}

/* Array descriptions of a run (int32 labels, float32 scores). */
typedef struct run_arrays {
    cleval_array pred, y, scores;
    cleval_predictions predictions;
} run_arrays;

static void describe(run_arrays *a, const run *r, bool labels, bool scores)
{
    a->pred = (cleval_array){.data = r->pred, .dtype = CLEVAL_DTYPE_INT32, .rank = 1, .shape = {r->n}};
    a->y = a->pred;
    a->y.data = r->y;
    a->scores = (cleval_array){
        .data = r->scores, .dtype = CLEVAL_DTYPE_FLOAT32, .rank = 2, .shape = {r->n, WIDTH}};
    a->predictions = (cleval_predictions){
        .pred = &a->pred, .y = labels ? &a->y : NULL, .scores = scores ? &a->scores : NULL};
}

/* The report of a result without the keys that name the inputs or the device. */
static cJSON *result_report(cleval_result *result)
{
    cJSON *report = cJSON_Parse(cleval_result_json(result));
    assert_non_null(report);
    cJSON_DeleteItemFromObject(report, "files");
    cJSON_DeleteItemFromObject(report, "device");
    return report;
}

/* The tool's JSON report for `args` (which add "--json -"), exit 0 or 1 (a gate or an alert). */
static cJSON *cli_report(const char *const *args)
{
    char *out, *err;
    int code = run_cleval(args, &out, &err);
    if (code != 0 && code != 1) fail_msg("cleval %s: exit %d: %s", args[0], code, err);
    cJSON *report = cJSON_Parse(out);
    if (!report) fail_msg("cleval %s printed no JSON: %s", args[0], out);
    free(out);
    free(err);
    return report;
}

static void expect_same_report(cJSON *cli, cJSON *api)
{
    cJSON_DeleteItemFromObject(cli, "files");
    cJSON_DeleteItemFromObject(cli, "device");
    if (!cJSON_Compare(cli, api, true)) {
        char *a = cJSON_PrintUnformatted(cli), *b = cJSON_PrintUnformatted(api);
        fail_msg("the command line's report\n%s\ndiffers from the library's\n%s", a, b);
    }
    cJSON_Delete(cli);
    cJSON_Delete(api);
}

static run run_a, run_b;

static void check_compare(uint64_t n, bool labels, bool scores)
{
    make_run(&run_a, n, 1);
    make_run(&run_b, n, 2);
    const char *args[] = {"compare",         NULL, NULL, "--json", "-", "--quiet",
                          "--max-flip-rate", "0.2", NULL};
    char path_a[4096], path_b[4096];
    snprintf(path_a, sizeof path_a, "%s", save_run("a.h5", &run_a, labels, scores));
    snprintf(path_b, sizeof path_b, "%s", save_run("b.h5", &run_b, labels, scores));
    args[1] = path_a;
    args[2] = path_b;
    cJSON *cli = cli_report(args);

    run_arrays a, b;
    describe(&a, &run_a, labels, scores);
    describe(&b, &run_b, labels, scores);
    cleval_options options;
    cleval_options_init(&options);
    options.max_flip_rate = 0.2;
    cleval_result *result = NULL;
    assert_ok(cleval_run_compare(&a.predictions, &b.predictions, &options, &result));
    bool passed = cJSON_IsTrue(cJSON_GetObjectItem(cli, "passed"));
    assert_int_equal(cleval_result_passed(result), passed);
    assert_string_equal(cleval_result_verdict(result), passed ? "pass" : "fail");
    assert_null(cleval_result_predictions(result, NULL));
    expect_same_report(cli, result_report(result));
    cleval_result_destroy(result);
}

static void test_compare_sizes(void **state)
{
    (void)state;
    static const uint64_t sizes[] = {1, 13, 257, MAX_N};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        check_compare(sizes[i], true, true);
}

static void test_compare_without_labels_or_scores(void **state)
{
    (void)state;
    check_compare(97, false, true);
    check_compare(97, true, false);
    check_compare(97, false, false);
}

static void check_drift(uint64_t n_ref, uint64_t n_cur, bool labels)
{
    make_run(&run_a, n_ref, 3);
    make_run(&run_b, n_cur, 4);
    char path_ref[4096], path_cur[4096];
    snprintf(path_ref, sizeof path_ref, "%s", save_run("ref.h5", &run_a, labels, true));
    snprintf(path_cur, sizeof path_cur, "%s", save_run("cur.h5", &run_b, labels, true));
    const char *args[] = {"drift", path_ref, path_cur, "--json", "-", "--quiet", NULL};
    cJSON *cli = cli_report(args);

    run_arrays ref, cur;
    describe(&ref, &run_a, labels, true);
    describe(&cur, &run_b, labels, true);
    cleval_result *result = NULL;
    assert_ok(cleval_run_drift(&ref.predictions, &cur.predictions, NULL, &result));
    const cJSON *alerts = cJSON_GetObjectItem(cli, "alerts");
    assert_int_equal(cleval_result_passed(result), cJSON_GetArraySize(alerts) == 0);
    expect_same_report(cli, result_report(result));
    cleval_result_destroy(result);
}

static void test_drift_sizes(void **state)
{
    (void)state;
    check_drift(1, 1, true);
    check_drift(13, 257, true);
    check_drift(MAX_N, 97, false);
}

/* int64 predictions and float64 scores are read as the files' int32 and float32. */
static void test_other_element_types(void **state)
{
    (void)state;
    make_run(&run_a, 101, 5);
    make_run(&run_b, 101, 6);
    run_arrays a, b;
    describe(&a, &run_a, true, true);
    describe(&b, &run_b, true, true);
    cleval_result *plain = NULL, *converted = NULL;
    assert_ok(cleval_run_compare(&a.predictions, &b.predictions, NULL, &plain));

    static int64_t wide_pred[101];
    static double wide_scores[101 * WIDTH];
    for (int i = 0; i < 101; i++)
        wide_pred[i] = run_b.pred[i];
    for (int i = 0; i < 101 * WIDTH; i++)
        wide_scores[i] = run_b.scores[i];
    b.pred.data = wide_pred;
    b.pred.dtype = CLEVAL_DTYPE_INT64;
    b.scores.data = wide_scores;
    b.scores.dtype = CLEVAL_DTYPE_FLOAT64;
    assert_ok(cleval_run_compare(&a.predictions, &b.predictions, NULL, &converted));
    assert_string_equal(cleval_result_json(plain), cleval_result_json(converted));
    cleval_result_destroy(plain);
    cleval_result_destroy(converted);
}

static void expect_failure(cleval_status status, cleval_status wanted, const char *needle,
                           cleval_result *result)
{
    assert_int_equal(status, wanted);
    assert_null(result);
    if (!strstr(cleval_last_error(), needle))
        fail_msg("message '%s' lacks '%s'", cleval_last_error(), needle);
}

static void test_failures(void **state)
{
    (void)state;
    make_run(&run_a, 10, 7);
    make_run(&run_b, 12, 8);
    run_arrays a, b;
    describe(&a, &run_a, true, true);
    describe(&b, &run_b, true, true);
    cleval_result *result = NULL;
    expect_failure(cleval_run_compare(&a.predictions, &b.predictions, NULL, &result),
                   CLEVAL_ERR_INPUT, "a has 10 samples but b has 12", result);

    /* The same labels in both runs, or compare refuses them. */
    int32_t other_y[10];
    memcpy(other_y, run_a.y, sizeof other_y);
    other_y[4] = (other_y[4] + 1) % WIDTH;
    describe(&b, &run_a, true, true);
    b.y.data = other_y;
    expect_failure(cleval_run_compare(&a.predictions, &b.predictions, NULL, &result),
                   CLEVAL_ERR_INPUT, "differs at sample", result);

    run_a.pred[3] = -1;
    expect_failure(cleval_run_drift(&a.predictions, &b.predictions, NULL, &result),
                   CLEVAL_ERR_INPUT, "reference: 'pred' sample 3 has label -1", result);

    cleval_options options;
    cleval_options_init(&options);
    options.max_flip_rate = 1.5;
    expect_failure(cleval_run_compare(&b.predictions, &b.predictions, &options, &result),
                   CLEVAL_ERR_USAGE, "max_flip_rate", result);
    /* Without labels, an alpha other than the default is refused as --alpha is. */
    run_arrays no_labels;
    describe(&no_labels, &run_b, false, false);
    cleval_options_init(&options);
    options.alpha = 0.01;
    expect_failure(cleval_run_compare(&no_labels.predictions, &no_labels.predictions, &options,
                                      &result),
                   CLEVAL_ERR_USAGE, "needs labels", result);
    cleval_options_init(&options);
    options.js_alert = 2;
    expect_failure(cleval_run_drift(&b.predictions, &b.predictions, &options, &result),
                   CLEVAL_ERR_USAGE, "js_alert", result);

    /* drift needs scores; compare needs predictions. */
    run_arrays no_scores;
    describe(&no_scores, &run_b, true, false);
    expect_failure(cleval_run_drift(&b.predictions, &no_scores.predictions, NULL, &result),
                   CLEVAL_ERR_INPUT, "scores", result);
    cleval_predictions empty = {0};
    expect_failure(cleval_run_compare(&empty, &b.predictions, NULL, &result), CLEVAL_ERR_USAGE,
                   "pred", result);
}

/* A psi_alert below the default psi_warn moves the warning level down to it, as the flags do. */
static void test_drift_default_meets_given_level(void **state)
{
    (void)state;
    make_run(&run_a, 200, 9);
    make_run(&run_b, 200, 10);
    run_arrays ref, cur;
    describe(&ref, &run_a, false, true);
    describe(&cur, &run_b, false, true);
    cleval_options options;
    cleval_options_init(&options);
    options.psi_alert = 0.05;
    cleval_result *result = NULL;
    assert_ok(cleval_run_drift(&ref.predictions, &cur.predictions, &options, &result));
    cJSON *report = cJSON_Parse(cleval_result_json(result));
    const cJSON *thresholds = cJSON_GetObjectItem(report, "thresholds");
    assert_non_null(thresholds);
    assert_true(cJSON_GetObjectItem(thresholds, "psi_warn")->valuedouble == 0.05);
    cJSON_Delete(report);
    cleval_result_destroy(result);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compare_sizes),
        cmocka_unit_test(test_compare_without_labels_or_scores),
        cmocka_unit_test(test_drift_sizes),
        cmocka_unit_test(test_other_element_types),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_drift_default_meets_given_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
