/* The drift module against scipy/numpy (tools/make_compare_drift_fixtures.py): class and
 * confidence counts from the device histograms bit for bit, PSI / Jensen-Shannon /
 * chi-squared and its p-value to 1e-12 relative, mean confidence and entropy to 1e-12 from the
 * float64 kernel (1e-5 from the float32 one), the "every row is a probability vector" rule,
 * batch sizes, both kernel families, and the rows that have no confidence. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/drift.h"

static void assert_close(double got, double want, double rel, const char *what)
{
    double tol = want == 0 ? 1e-15 : rel * fabs(want);
    if (!(fabs(got - want) <= tol))
        fail_msg("%s: got %.17g, want %.17g (relative error %.3g > %.3g)", what, got, want,
                 fabs(got - want) / fmax(fabs(want), 1e-300), rel);
}

static double number(const cJSON *o, const char *key)
{
    const cJSON *item = cJSON_GetObjectItem(o, key);
    if (!cJSON_IsNumber(item)) fail_msg("fixture lacks number '%s'", key);
    return item->valuedouble;
}

static uint64_t *counts_of(const cJSON *array)
{
    int n = cJSON_GetArraySize(array);
    uint64_t *counts = calloc((size_t)n + 1, sizeof *counts);
    for (int i = 0; i < n; i++)
        counts[i] = (uint64_t)cJSON_GetArrayItem(array, i)->valuedouble;
    return counts;
}

static void test_statistics_from_counts(void **state)
{
    (void)state;
    cJSON *fixture = load_json(fixture_path("drift/stats.json"));
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(fixture, "cases"))
    {
        const cJSON *ref = cJSON_GetObjectItem(c, "reference");
        uint32_t n = (uint32_t)cJSON_GetArraySize(ref);
        uint64_t *p = counts_of(ref), *q = counts_of(cJSON_GetObjectItem(c, "current"));
        double psi, js, chi2, p_value;
        cleval_drift_distances(p, q, n, &psi, &js);
        cleval_drift_chi2(p, q, n, &chi2, &p_value);
        assert_close(psi, number(c, "psi"), 1e-12, "psi");
        assert_close(js, number(c, "js"), 1e-12, "js");
        assert_close(chi2, number(c, "chi2"), 1e-12, "chi2");
        assert_close(p_value, number(c, "p_value"), 1e-12, "p_value");
        free(p);
        free(q);
    }
    cJSON_Delete(fixture);
}

static cleval_drift_config config_for(const char *ref, const char *cur)
{
    static char path_ref[4096], path_cur[4096];
    snprintf(path_ref, sizeof path_ref, "%s", fixture_path(ref));
    snprintf(path_cur, sizeof path_cur, "%s", fixture_path(cur));
    return (cleval_drift_config){.path_reference = path_ref,
                                 .path_current = path_cur,
                                 .thresholds = cleval_drift_default_thresholds(),
                                 .device = test_device()};
}

static void check_counts(const uint64_t *got, const cJSON *want, uint32_t n)
{
    assert_int_equal(cJSON_GetArraySize(want), n);
    for (uint32_t k = 0; k < n; k++)
        assert_int_equal(got[k], (uint64_t)cJSON_GetArrayItem(want, (int)k)->valuedouble);
}

static void check_side(const cleval_drift_side *side, const cJSON *want, uint32_t n_classes,
                       double mean_tol, const double *recall)
{
    assert_int_equal(side->n_samples, number(want, "n"));
    assert_int_equal(side->probabilities, cJSON_IsTrue(cJSON_GetObjectItem(want, "probabilities")));
    check_counts(side->class_counts, cJSON_GetObjectItem(want, "class_counts"), n_classes);
    check_counts(side->confidence_counts, cJSON_GetObjectItem(want, "confidence_counts"),
                 CLEVAL_DRIFT_BINS);
    assert_close(side->mean_confidence, number(want, "mean_confidence"), mean_tol, "mean conf");
    assert_close(side->mean_entropy, number(want, "mean_entropy"), mean_tol, "mean entropy");
    const cJSON *recalls = cJSON_GetObjectItem(want, "recall");
    if (!recalls || !recall) return;
    for (uint32_t k = 0; k < n_classes; k++) {
        const cJSON *v = cJSON_GetArrayItem(recalls, (int)k);
        if (cJSON_IsNull(v))
            assert_true(isnan(recall[k]));
        else
            assert_close(recall[k], v->valuedouble, 1e-15, "recall");
    }
}

static void check_result(const cleval_drift_result *r, const char *fixture, double mean_tol)
{
    cJSON *e = load_json(fixture_path(fixture));
    uint32_t c = (uint32_t)number(e, "n_classes");
    assert_int_equal(r->n_classes, c);
    check_side(&r->reference, cJSON_GetObjectItem(e, "reference"), c, mean_tol,
               r->recall_reference);
    check_side(&r->current, cJSON_GetObjectItem(e, "current"), c, mean_tol, r->recall_current);
    const cJSON *cls = cJSON_GetObjectItem(e, "class"),
                *conf = cJSON_GetObjectItem(e, "confidence");
    assert_close(r->class_psi, number(cls, "psi"), 1e-12, "class psi");
    assert_close(r->class_js, number(cls, "js"), 1e-12, "class js");
    assert_close(r->class_chi2, number(cls, "chi2"), 1e-12, "chi2");
    assert_close(r->class_p_value, number(cls, "p_value"), 1e-12, "p_value");
    assert_close(r->confidence_psi, number(conf, "psi"), 1e-12, "confidence psi");
    assert_close(r->confidence_js, number(conf, "js"), 1e-12, "confidence js");
    const cJSON *alerts = cJSON_GetObjectItem(e, "alerts");
    assert_int_equal(r->n_alerts, cJSON_GetArraySize(alerts));
    for (uint32_t i = 0; i < r->n_alerts; i++)
        assert_string_equal(r->alerts[i].name, cJSON_GetArrayItem(alerts, (int)i)->valuestring);
    cJSON_Delete(e);
}

static double mean_tolerance(const cleval_drift_result *r)
{
    return r->fp64 ? 1e-12 : 1e-5;
}

static void test_logits_with_labels(void **state)
{
    (void)state;
    cleval_drift_config config = config_for("drift/ref.h5", "drift/cur.h5");
    cleval_drift_result r;
    assert_ok(cleval_drift_run(&config, &r));
    assert_true(r.has_recall);
    assert_int_equal(r.class_dof, 7);
    check_result(&r, "drift/ref_cur.json", mean_tolerance(&r));
    /* class_names of the reference reach the result. */
    assert_int_equal(r.class_names.count, 8);
    assert_string_equal(r.class_names.names[5], "sandal");

    cJSON *json = cleval_drift_json(&r);
    const char *keys[] = {"n_reference", "n_current", "n_classes", "class",
                          "confidence",  "entropy",   "alerts"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        assert_non_null(cJSON_GetObjectItem(json, keys[i]));
    assert_int_equal(cJSON_GetArraySize(
                         cJSON_GetObjectItem(cJSON_GetObjectItem(json, "confidence"), "reference")),
                     10);
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(json, "labels"), "per_class"));
    cJSON_Delete(json);
    cleval_drift_result_free(&r);
}

static void test_probability_rows(void **state)
{
    (void)state;
    cleval_drift_config config = config_for("drift/ref_prob.h5", "drift/cur_prob.h5");
    cleval_drift_result r;
    assert_ok(cleval_drift_run(&config, &r));
    assert_true(r.reference.probabilities && r.current.probabilities);
    assert_false(r.has_recall);
    check_result(&r, "drift/prob.json", mean_tolerance(&r));
    cleval_drift_result_free(&r);

    /* One row off by 0.01 sends the whole current file to softmax. */
    config = config_for("drift/ref_prob.h5", "drift/cur_mixed.h5");
    assert_ok(cleval_drift_run(&config, &r));
    assert_true(r.reference.probabilities);
    assert_false(r.current.probabilities);
    check_result(&r, "drift/ref_mixed.json", mean_tolerance(&r));
    cleval_drift_result_free(&r);
}

/* The float32 kernel bins the same way (the fixtures keep 1e-5 away from every edge, and
 * probability inputs compare against edges rounded up to float); means to 1e-5. */
static void test_float32_kernel(void **state)
{
    (void)state;
    const char *cases[][3] = {{"drift/ref.h5", "drift/cur.h5", "drift/ref_cur.json"},
                              {"drift/ref_prob.h5", "drift/cur_prob.h5", "drift/prob.json"},
                              {"drift/ref_prob.h5", "drift/cur_mixed.h5", "drift/ref_mixed.json"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cleval_drift_config config = config_for(cases[i][0], cases[i][1]);
        config.force_fp32 = true;
        cleval_drift_result r;
        assert_ok(cleval_drift_run(&config, &r));
        assert_false(r.fp64);
        check_result(&r, cases[i][2], 1e-5);
        cleval_drift_result_free(&r);
    }
}

/* Batch sizes and kernel families change nothing. */
static void test_batches_and_variants(void **state)
{
    (void)state;
    cleval_device *dev = test_device();
    cleval_kernel_variant original = cleval_device_variant(dev);
    const uint64_t batches[] = {1, 7, 1000, 4000};
    for (int v = 0; v < 2; v++) {
        cleval_device_set_variant(dev, v ? CLEVAL_VARIANT_GPU : CLEVAL_VARIANT_CPU);
        for (size_t i = 0; i < sizeof batches / sizeof *batches; i++) {
            if (batches[i] == 1 && v == 1) continue; /* slow and adds nothing */
            cleval_drift_config config = config_for("drift/ref.h5", "drift/cur.h5");
            config.batch = batches[i];
            cleval_drift_result r;
            assert_ok(cleval_drift_run(&config, &r));
            check_result(&r, "drift/ref_cur.json", r.fp64 ? 1e-12 : 1e-5);
            cleval_drift_result_free(&r);
        }
    }
    cleval_device_set_variant(dev, original);
}

static void test_identical_runs(void **state)
{
    (void)state;
    cleval_drift_config config = config_for("drift/ref.h5", "drift/ref.h5");
    cleval_drift_result r;
    assert_ok(cleval_drift_run(&config, &r));
    assert_true(r.class_psi == 0 && r.class_js == 0);
    /* Class 7 (only in the labels) is predicted in neither run, yet the contract's floor makes
     * it expect 1e-4 * n samples: it adds exactly that to the statistic. */
    assert_int_equal(r.reference.class_counts[7], 0);
    assert_close(r.class_chi2, 1e-4 * 4000, 1e-12, "chi2 of identical runs");
    assert_true(r.class_p_value > 0.99);
    assert_true(r.confidence_psi == 0 && r.confidence_js == 0);
    assert_int_equal(r.n_alerts, 0);
    assert_int_equal(r.n_warnings, 0);
    cleval_drift_result_free(&r);
}

static void test_thresholds(void **state)
{
    (void)state;
    cleval_drift_result r = {.class_psi = 0.15,
                             .class_js = 0.05,
                             .class_p_value = 0.2,
                             .confidence_psi = 0.25,
                             .confidence_js = 0.12};
    cleval_drift_thresholds t = cleval_drift_default_thresholds();
    cleval_drift_check(&r, &t);
    assert_int_equal(r.n_warnings, 1);
    assert_string_equal(r.warnings[0].name, "class_psi");
    assert_int_equal(r.n_alerts, 2);
    assert_string_equal(r.alerts[0].name, "confidence_psi");
    assert_string_equal(r.alerts[1].name, "confidence_js");
    /* Exactly at a limit is not above it. */
    t.psi_alert = 0.25;
    t.js_alert = 0.12;
    t.alpha = 0.2;
    cleval_drift_check(&r, &t);
    assert_int_equal(r.n_alerts, 0);
    assert_int_equal(r.n_warnings, 2);
}

/* A small file with one bad row at index 2. */
static const char *write_bad(const char *name, float bad0, float bad1, float bad2)
{
    const char *path = temp_path(name);
    hid_t file = h5_create(path);
    float scores[4][3] = {{1, 2, 3}, {0, 0, 0}, {bad0, bad1, bad2}, {-INFINITY, 1, 0}};
    int32_t pred[4] = {2, 0, 0, 1};
    hsize_t dims[2] = {4, 3};
    h5_write(file, "scores", H5T_NATIVE_FLOAT, 2, dims, scores, 0, NULL);
    h5_write(file, "pred", H5T_NATIVE_INT32, 1, dims, pred, 0, NULL);
    H5Fclose(file);
    return path;
}

/* NaN and infinite scores are refused unless allowed; allowed, a row without a confidence (a
 * NaN or +Inf, or only -Inf) is left out, and -Inf beside finite scores counts as exp(-inf) = 0. */
static void test_rows_without_confidence(void **state)
{
    (void)state;
    char good[4096];
    snprintf(good, sizeof good, "%s", write_bad("drift_good.h5", 0, -INFINITY, 5));
    const float bad[][3] = {{NAN, 0, 0}, {0, INFINITY, 0}, {-INFINITY, -INFINITY, -INFINITY}};
    const uint64_t nonfinite[] = {2, 2, 4}; /* row 3 holds a -Inf too */
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s",
                 write_bad("drift_bad.h5", bad[i][0], bad[i][1], bad[i][2]));
        cleval_drift_config config = {.path_reference = path,
                                      .path_current = path,
                                      .thresholds = cleval_drift_default_thresholds(),
                                      .device = test_device()};
        cleval_drift_result r;
        assert_int_equal(cleval_drift_run(&config, &r), CLEVAL_ERR_INPUT);
        char expected[64];
        snprintf(expected, sizeof expected, "holds %llu non-finite scores (first in sample 2)",
                 (unsigned long long)nonfinite[i]);
        assert_non_null(strstr(cleval_last_error(), expected));
        assert_non_null(strstr(cleval_last_error(), path));
        config.allow_nonfinite = true;
        assert_ok(cleval_drift_run(&config, &r));
        assert_int_equal(r.current.nonfinite_scores, nonfinite[i]);
        /* Rows 0, 1 and 3 only: 3 samples in the confidence histogram. */
        uint64_t binned = 0;
        for (int b = 0; b < CLEVAL_DRIFT_BINS; b++)
            binned += r.current.confidence_counts[b];
        assert_int_equal(binned, 3);
        cleval_drift_result_free(&r);
    }
    cleval_drift_config config = {.path_reference = good,
                                  .path_current = good,
                                  .thresholds = cleval_drift_default_thresholds(),
                                  .device = test_device(),
                                  .allow_nonfinite = true};
    cleval_drift_result r;
    assert_ok(cleval_drift_run(&config, &r));
    assert_int_equal(r.reference.nonfinite_scores, 2);
    assert_false(r.reference.probabilities);
    /* Row 1 is uniform over 3 classes: confidence 1/3 in bin 3, entropy ln 3. */
    assert_true(r.reference.confidence_counts[3] >= 1);
    cleval_drift_result_free(&r);
}

static int teardown(void **state)
{
    (void)state;
    test_device_release();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statistics_from_counts),
        cmocka_unit_test(test_logits_with_labels),
        cmocka_unit_test(test_probability_rows),
        cmocka_unit_test(test_float32_kernel),
        cmocka_unit_test(test_batches_and_variants),
        cmocka_unit_test(test_identical_runs),
        cmocka_unit_test(test_thresholds),
        cmocka_unit_test(test_rows_without_confidence),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
