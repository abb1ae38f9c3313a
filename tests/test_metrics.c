/* Metrics against scikit-learn, bit for bit: the fixtures in fixtures/metrics were computed by
 * tools/make_metrics_fixtures.py (precision_recall_fscore_support, accuracy_score,
 * confusion_matrix, classification_report). Each case runs the whole metrics engine (HDF5
 * batches, device histogram, host metrics) with a batch size that forces several batches. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/engine.h"
#include "cleval/metrics.h"
#include "cleval/report.h"

static const char *const cases[] = {"c2_n1000",        "c10_n997",      "c100_n5000",
                                    "c1000_n20000",    "never_predicted", "absent_class",
                                    "single",          "n257",          "named",
                                    "perfect"};

static double number(const cJSON *object, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    if (!cJSON_IsNumber(item)) fail_msg("fixture lacks number '%s'", key);
    return item->valuedouble;
}

/* Exact equality: the metrics follow scikit-learn's arithmetic step for step. */
static void expect_same(double got, double expected, const char *what, const char *name)
{
    if (got != expected) fail_msg("%s: %s is %.17g, scikit-learn says %.17g", name, what, got, expected);
}

static void expect_prf(const cleval_prf *got, const cJSON *expected, const char *name)
{
    expect_same(got->precision, number(expected, "precision"), "precision", name);
    expect_same(got->recall, number(expected, "recall"), "recall", name);
    expect_same(got->f1, number(expected, "f1"), "f1", name);
}

static void read_expected_confusion(const char *path, uint32_t c, uint64_t *out)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dset = H5Dopen2(file, "expected_confusion", H5P_DEFAULT);
    hid_t space = H5Dget_space(dset);
    hsize_t dims[2];
    assert_int_equal(H5Sget_simple_extent_ndims(space), 2);
    H5Sget_simple_extent_dims(space, dims, NULL);
    assert_int_equal(dims[0], c);
    assert_int_equal(dims[1], c);
    assert_true(H5Dread(dset, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
    H5Sclose(space);
    H5Dclose(dset);
    H5Fclose(file);
}

static void check_case(const char *name, uint64_t batch)
{
    char rel[256];
    snprintf(rel, sizeof rel, "metrics/%s.json", name);
    cJSON *expected = load_json(fixture_path(rel));
    snprintf(rel, sizeof rel, "metrics/%s.h5", name);
    char h5[4096];
    snprintf(h5, sizeof h5, "%s", fixture_path(rel));

    cleval_device *devices[] = {test_device()};
    cleval_metrics_job job = {.data_path = h5, .batch = batch,
                              .run = {.devices = devices, .n_devices = 1}};
    cleval_predict_outcome outcome;
    assert_ok(cleval_engine_metrics(&job, &outcome));
    uint32_t c = (uint32_t)number(expected, "n_classes");
    assert_int_equal(outcome.confusion.n_classes, c);
    assert_int_equal(outcome.n_samples, (uint64_t)number(expected, "n_samples"));

    uint64_t *matrix = malloc((size_t)c * c * sizeof *matrix);
    read_expected_confusion(h5, c, matrix);
    uint64_t *got;
    assert_ok(cleval_counts_to_dense(&outcome.confusion.counts, &got));
    assert_memory_equal(got, matrix, (size_t)c * c * sizeof *matrix);
    free(got);
    free(matrix);

    cleval_metrics m;
    assert_ok(cleval_metrics_compute(&outcome.confusion, &m));
    expect_same(m.accuracy, number(expected, "accuracy"), "accuracy", name);
    expect_prf(&m.macro, cJSON_GetObjectItem(expected, "macro"), name);
    expect_prf(&m.weighted, cJSON_GetObjectItem(expected, "weighted"), name);
    expect_prf(&m.micro, cJSON_GetObjectItem(expected, "micro"), name);
    const cJSON *per_class = cJSON_GetObjectItem(expected, "per_class");
    assert_int_equal(cJSON_GetArraySize(per_class), c);
    for (uint32_t k = 0; k < c; k++) {
        const cJSON *entry = cJSON_GetArrayItem(per_class, (int)k);
        assert_int_equal((uint32_t)number(entry, "label"), k);
        expect_prf(&m.per_class[k].prf, entry, name);
        assert_int_equal(m.per_class[k].support, (uint64_t)number(entry, "support"));
    }

    char *text = NULL;
    size_t text_size = 0;
    FILE *out = open_memstream(&text, &text_size);
    cleval_report_classification(out, &m, &outcome.class_names);
    fclose(out);
    const cJSON *report = cJSON_GetObjectItem(expected, "report");
    assert_true(cJSON_IsString(report));
    /* scikit-learn 1.9 prints the support column as floats ("1.0") when N = 1, a quirk of its
     * own; cleval prints counts as integers there too, so that one report is not compared. */
    if (strcmp(name, "single") != 0) assert_string_equal(text, report->valuestring);
    free(text);

    cleval_metrics_free(&m);
    cleval_predict_outcome_free(&outcome);
    cJSON_Delete(expected);
}

static void test_against_scikit_learn(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        check_case(cases[i], 0);  /* one batch */
        check_case(cases[i], 97); /* many batches; classes discovered while streaming */
    }
}

/* numpy's pairwise summation order: values whose naive left-to-right sum differs from the
 * pairwise one. The expected sums were computed by numpy.sum (float64). */
static void test_pairwise_sum_matches_numpy(void **state)
{
    (void)state;
    double values[300];
    for (int i = 0; i < 300; i++)
        values[i] = 1.0 / (double)(i + 1) + (i % 7 == 0 ? 1e8 : 0.0);
    double naive = 0;
    for (int i = 0; i < 300; i++)
        naive += values[i];
    /* numpy.sum([1/(i+1) + (1e8 if i % 7 == 0 else 0) for i in range(300)]) */
    const double numpy_sum = 4300000006.282663;
    assert_true(cleval_sum_pairwise(values, 300) == numpy_sum);
    assert_true(naive != numpy_sum);
    assert_true(cleval_sum_pairwise(values, 0) == 0.0);
    assert_true(cleval_sum_pairwise(values, 5) == values[0] + values[1] + values[2] + values[3] + values[4]);
}

static void test_confusion_merge_and_errors(void **state)
{
    (void)state;
    cleval_confusion a, b;
    assert_ok(cleval_confusion_init(&a, 2));
    assert_ok(cleval_confusion_init(&b, 3));
    assert_ok(cleval_counts_add(&a.counts, 0, 0, 5));
    assert_ok(cleval_counts_add(&a.counts, 1, 1, 2));
    assert_ok(cleval_counts_add(&b.counts, 0, 0, 1));
    assert_ok(cleval_counts_add(&b.counts, 1, 1, 1));
    assert_ok(cleval_counts_add(&b.counts, 2, 2, 4));
    assert_ok(cleval_counts_add(&b.counts, 0, 2, 3));
    assert_ok(cleval_confusion_add(&a, &b));
    assert_int_equal(a.n_classes, 3);
    uint64_t expected[9] = {6, 0, 3, 0, 3, 0, 0, 0, 4};
    for (uint32_t i = 0; i < 9; i++)
        assert_int_equal(cleval_counts_get(&a.counts, i / 3, i % 3), expected[i]);
    assert_int_equal(cleval_confusion_total(&a), 16);
    cleval_confusion_free(&a);
    cleval_confusion_free(&b);

    cleval_confusion empty;
    cleval_metrics m;
    assert_ok(cleval_confusion_init(&empty, 4));
    assert_int_equal(cleval_metrics_compute(&empty, &m), CLEVAL_ERR_INPUT);
    cleval_confusion_free(&empty);
    assert_int_equal(cleval_confusion_init(&empty, 0), CLEVAL_ERR_USAGE);

    /* grow from a zeroed struct allocates (compare and merge rely on it), and a later grow
     * keeps (1,0)=7 at row 1, column 0 of the wider matrix. */
    cleval_confusion grown = {0};
    assert_ok(cleval_confusion_grow(&grown, 2));
    assert_int_equal(grown.n_classes, 2);
    assert_int_equal(cleval_confusion_total(&grown), 0);
    assert_ok(cleval_counts_add(&grown.counts, 1, 0, 7));
    assert_ok(cleval_confusion_grow(&grown, 1)); /* narrower: unchanged */
    assert_int_equal(grown.n_classes, 2);
    assert_ok(cleval_confusion_grow(&grown, 3));
    uint64_t wider[9] = {0, 0, 0, 7, 0, 0, 0, 0, 0};
    for (uint32_t i = 0; i < 9; i++)
        assert_int_equal(cleval_counts_get(&grown.counts, i / 3, i % 3), wider[i]);
    cleval_confusion_free(&grown);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_scikit_learn),
        cmocka_unit_test(test_pairwise_sum_matches_numpy),
        cmocka_unit_test(test_confusion_merge_and_errors),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
