/* The compare module against scipy/numpy (tools/make_compare_drift_fixtures.py): exact counts,
 * flip matrix and flipped samples; accuracies, Newcombe's interval and score statistics to
 * 1e-12 relative; McNemar's exact p (and ln p) for b + c up to 400000, where the tail
 * underflows double precision; the regularized gamma tails behind chi-squared; gates; and
 * batch sizes that must not change any result. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/compare.h"
#include "cleval/stats.h"

static void assert_close(double got, double want, double rel, const char *what)
{
    double tol = rel * fmax(fabs(want), 1e-300);
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

static void test_mcnemar_against_scipy(void **state)
{
    (void)state;
    cJSON *fixture = load_json(fixture_path("compare/mcnemar.json"));
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(fixture, "cases"))
    {
        uint64_t b = (uint64_t)number(c, "b"), cc = (uint64_t)number(c, "c");
        double want_p = number(c, "p_value"), want_log = number(c, "log_p_value");
        double log_p;
        double p = cleval_stats_mcnemar_exact(b, cc, &log_p);
        char what[96];
        snprintf(what, sizeof what, "ln p for b=%llu c=%llu", (unsigned long long)b,
                 (unsigned long long)cc);
        if (want_log == 0)
            assert_true(log_p == 0 && p == 1.0);
        else
            assert_close(log_p, want_log, 1e-12, what);
        snprintf(what, sizeof what, "p for b=%llu c=%llu", (unsigned long long)b,
                 (unsigned long long)cc);
        if (want_p > 1e-300)
            assert_close(p, want_p, 1e-12, what);
        else
            assert_true(p <= 1e-300 && p >= 0);
        /* Symmetric in b and c. */
        double log_swapped;
        cleval_stats_mcnemar_exact(cc, b, &log_swapped);
        assert_true(log_swapped == log_p);
    }
    cJSON_Delete(fixture);
}

static void test_binomial_tail_closed_forms(void **state)
{
    (void)state;
    /* Binomial(10, 1/2): P(X <= 7) = 1 - (1 + 10 + 45) / 1024, P(X <= 2) = 56 / 1024. */
    assert_close(cleval_stats_binom_half_log_cdf(7, 10), log(968.0 / 1024), 1e-14, "k=7 n=10");
    assert_close(cleval_stats_binom_half_log_cdf(2, 10), log(56.0 / 1024), 1e-14, "k=2 n=10");
    assert_true(cleval_stats_binom_half_log_cdf(10, 10) == 0.0);
    /* P(X = 0) = 2^-n, far below the smallest double. */
    assert_close(cleval_stats_binom_half_log_cdf(0, 1000000), -1000000 * log(2.0), 1e-14,
                 "k=0 n=1e6");
    /* P(X <= (n - 1) / 2) = 1/2 for odd n. */
    assert_close(cleval_stats_binom_half_log_cdf(150000, 300001), log(0.5), 1e-13, "half");
}

static void test_gamma_closed_forms(void **state)
{
    (void)state;
    const double xs[] = {1e-8, 0.3, 1, 2.5, 10, 40, 300, 1400};
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
        double x = xs[i];
        assert_close(cleval_stats_chi2_sf(x, 2), exp(-x / 2), 1e-13, "chi2 dof 2");
        assert_close(cleval_stats_chi2_sf(x, 1), erfc(sqrt(x / 2)), 1e-12, "chi2 dof 1");
        /* dof 4: Q(2, x/2) = e^{-x/2} (1 + x/2). */
        assert_close(cleval_stats_chi2_sf(x, 4), exp(-x / 2) * (1 + x / 2), 1e-13, "dof 4");
    }
    assert_true(cleval_stats_chi2_sf(0, 3) == 1.0);
    assert_true(isnan(cleval_stats_gamma_q(-1, 1)));
    assert_true(isnan(cleval_stats_gamma_q(1, -1)));
    assert_true(cleval_stats_gamma_q(3, INFINITY) == 0.0);
}

static cleval_compare_config base_config(const char *a, const char *b)
{
    static char path_a[4096], path_b[4096];
    snprintf(path_a, sizeof path_a, "%s", fixture_path(a));
    snprintf(path_b, sizeof path_b, "%s", fixture_path(b));
    return (cleval_compare_config){.path_a = path_a, .path_b = path_b};
}

static void check_matrix(const cleval_compare_result *r, const cJSON *expected)
{
    const cJSON *rows = cJSON_GetObjectItem(expected, "flip_matrix");
    assert_int_equal(cJSON_GetArraySize(rows), r->n_classes);
    for (uint32_t a = 0; a < r->n_classes; a++)
        for (uint32_t b = 0; b < r->n_classes; b++)
            assert_int_equal(
                cleval_counts_get(&r->flip_matrix, a, b),
                cJSON_GetArrayItem(cJSON_GetArrayItem(rows, (int)a), (int)b)->valueint);
}

static void check_top(const cleval_compare_sample *list, uint32_t n, const cJSON *expected)
{
    assert_int_equal(n, cJSON_GetArraySize(expected));
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(list[i].index, cJSON_GetArrayItem(expected, (int)i)->valueint);
}

static void check_scores(const cleval_compare_result *r, const cJSON *e)
{
    const cJSON *s = cJSON_GetObjectItem(e, "score_diff");
    assert_true(r->has_scores);
    assert_close(r->max_abs_score_diff, number(s, "max_abs"), 1e-15, "max_abs");
    assert_int_equal(r->max_abs_index, number(s, "max_abs_index"));
    assert_int_equal(r->max_abs_class, number(s, "max_abs_class"));
    assert_close(r->max_rel_score_diff, number(s, "max_rel"), 1e-15, "max_rel");
    assert_int_equal(r->max_rel_index, number(s, "max_rel_index"));
    assert_int_equal(r->max_rel_class, number(s, "max_rel_class"));
    assert_close(r->mean_abs_score_diff, number(s, "mean_abs"), 1e-12, "mean_abs");
    check_top(r->top_score_diffs, r->n_top_score_diffs, cJSON_GetObjectItem(s, "top"));
}

/* Every result field against the fixture. */
static void check_base(const cleval_compare_result *r, const cJSON *e)
{
    assert_int_equal(r->n_samples, number(e, "n_samples"));
    assert_int_equal(r->n_classes, number(e, "n_classes"));
    assert_int_equal(r->flips, number(e, "flips"));
    assert_true(r->agreement == number(e, "agreement"));
    assert_true(r->flip_rate == number(e, "flip_rate"));
    check_matrix(r, e);
    assert_true(r->has_labels);
    assert_true(r->accuracy_a == number(e, "accuracy_a"));
    assert_true(r->accuracy_b == number(e, "accuracy_b"));
    assert_true(r->accuracy_diff == number(e, "accuracy_diff"));
    const cJSON *ci = cJSON_GetObjectItem(e, "accuracy_diff_ci");
    assert_close(r->diff_ci_low, cJSON_GetArrayItem(ci, 0)->valuedouble, 1e-12, "ci low");
    assert_close(r->diff_ci_high, cJSON_GetArrayItem(ci, 1)->valuedouble, 1e-12, "ci high");
    const cJSON *m = cJSON_GetObjectItem(e, "mcnemar");
    assert_int_equal(r->a_only_right, number(m, "b"));
    assert_int_equal(r->b_only_right, number(m, "c"));
    assert_int_equal(r->both_right, number(e, "both_right"));
    assert_int_equal(r->both_wrong, number(e, "both_wrong"));
    assert_close(r->mcnemar_p, number(m, "p_value"), 1e-12, "mcnemar p");
    assert_close(r->mcnemar_log_p, number(m, "log_p_value"), 1e-12, "mcnemar ln p");
    check_scores(r, e);
    check_top(r->top_flips, r->n_top_flips, cJSON_GetObjectItem(e, "top_flips"));
}

static void test_base_pair(void **state)
{
    (void)state;
    cJSON *e = load_json(fixture_path("compare/base.json"));
    cleval_compare_config config = base_config("compare/base_a.h5", "compare/base_b.h5");
    char save[4096];
    snprintf(save, sizeof save, "%s", temp_path("compare_flips.h5"));
    remove(save);
    config.save_path = save;
    cleval_compare_result r;
    assert_ok(cleval_compare_run(&config, &r));
    check_base(&r, e);
    assert_true(r.passed); /* no gates */
    assert_int_equal(r.n_gates, 0);

    /* The saved file lists every flipped sample, in order. */
    hid_t file = H5Fopen(save, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    const cJSON *flipped = cJSON_GetObjectItem(e, "flipped");
    int n = cJSON_GetArraySize(flipped);
    int64_t *index = calloc((size_t)n + 1, sizeof *index);
    int32_t *pred_a = calloc((size_t)n + 1, sizeof *pred_a);
    int32_t *pred_b = calloc((size_t)n + 1, sizeof *pred_b);
    hid_t d = H5Dopen2(file, "index", H5P_DEFAULT);
    hid_t space = H5Dget_space(d);
    assert_int_equal(H5Sget_simple_extent_npoints(space), n);
    H5Sclose(space);
    H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, index);
    H5Dclose(d);
    d = H5Dopen2(file, "pred_a", H5P_DEFAULT);
    H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, pred_a);
    H5Dclose(d);
    d = H5Dopen2(file, "pred_b", H5P_DEFAULT);
    H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, pred_b);
    H5Dclose(d);
    assert_true(H5Lexists(file, "y", H5P_DEFAULT) > 0);
    assert_true(H5Lexists(file, "score_diff", H5P_DEFAULT) > 0);
    assert_true(H5Aexists(file, "n_flips") > 0);
    H5Fclose(file);
    for (int i = 0; i < n; i++) {
        assert_int_equal(index[i], cJSON_GetArrayItem(flipped, i)->valueint);
        assert_true(pred_a[i] != pred_b[i]);
    }
    free(index);
    free(pred_a);
    free(pred_b);
    cleval_compare_result_free(&r);
    cJSON_Delete(e);
}

/* Batch size changes nothing: not the counts, not a bit of the statistics. */
static void test_batch_sizes(void **state)
{
    (void)state;
    cJSON *e = load_json(fixture_path("compare/base.json"));
    const uint64_t batches[] = {1, 7, 256, 2999, 100000};
    for (size_t i = 0; i < sizeof batches / sizeof *batches; i++) {
        cleval_compare_config config = base_config("compare/base_a.h5", "compare/base_b.h5");
        config.batch = batches[i];
        cleval_compare_result r;
        assert_ok(cleval_compare_run(&config, &r));
        check_base(&r, e);
        cleval_compare_result_free(&r);
    }
    cJSON_Delete(e);
}

static void test_without_labels(void **state)
{
    (void)state;
    cJSON *e = load_json(fixture_path("compare/nolabel.json"));
    cleval_compare_config config = base_config("compare/nolabel_a.h5", "compare/nolabel_b.h5");
    config.limits.use_alpha = true;
    config.limits.alpha = 0.05;
    config.limits.alpha_is_default = true; /* dropped, not refused, without labels */
    cleval_compare_result r;
    assert_ok(cleval_compare_run(&config, &r));
    assert_false(r.has_labels);
    assert_int_equal(r.flips, number(e, "flips"));
    assert_true(r.agreement == number(e, "agreement"));
    check_matrix(&r, e);
    check_scores(&r, e);
    check_top(r.top_flips, r.n_top_flips, cJSON_GetObjectItem(e, "top_flips"));
    assert_int_equal(r.n_gates, 0);
    cJSON *json = cleval_compare_json(&r);
    assert_null(cJSON_GetObjectItem(json, "accuracy_a"));
    assert_null(cJSON_GetObjectItem(json, "mcnemar"));
    assert_non_null(cJSON_GetObjectItem(json, "max_abs_score_diff"));
    cJSON_Delete(json);
    cleval_compare_result_free(&r);

    /* An explicit --alpha or --max-accuracy-drop needs labels. */
    config.limits.alpha_is_default = false;
    assert_int_equal(cleval_compare_run(&config, &r), CLEVAL_ERR_USAGE);
    assert_non_null(strstr(cleval_last_error(), "--alpha needs labels"));
    config.limits.use_alpha = false;
    config.limits.use_max_accuracy_drop = true;
    assert_int_equal(cleval_compare_run(&config, &r), CLEVAL_ERR_USAGE);
    cJSON_Delete(e);
}

static void test_different_score_widths(void **state)
{
    (void)state;
    cleval_compare_config config = base_config("compare/base_a.h5", "compare/wide_b.h5");
    cleval_compare_result r;
    assert_ok(cleval_compare_run(&config, &r));
    assert_false(r.has_scores);
    assert_non_null(strstr(r.score_note, "score widths differ (6 in"));
    assert_int_equal(r.flips, 0);
    cleval_compare_result_free(&r);
    config.limits.use_max_score_diff = true;
    config.limits.max_score_diff = 1;
    assert_int_equal(cleval_compare_run(&config, &r), CLEVAL_ERR_USAGE);
    assert_non_null(strstr(cleval_last_error(), "--max-score-diff needs comparable scores"));
}

static void test_identical_runs(void **state)
{
    (void)state;
    cleval_compare_config config = base_config("compare/base_a.h5", "compare/base_a.h5");
    config.limits = (cleval_compare_limits){.use_max_flip_rate = true,
                                            .use_max_accuracy_drop = true,
                                            .use_alpha = true,
                                            .alpha = 0.05,
                                            .use_max_score_diff = true};
    cleval_compare_result r;
    assert_ok(cleval_compare_run(&config, &r));
    assert_int_equal(r.flips, 0);
    assert_true(r.agreement == 1.0);
    assert_true(r.mcnemar_p == 1.0 && r.mcnemar_log_p == 0.0);
    assert_true(r.accuracy_diff == 0.0);
    assert_true(r.diff_ci_low <= 0 && r.diff_ci_high >= 0);
    assert_true(r.max_abs_score_diff == 0.0 && r.mean_abs_score_diff == 0.0);
    assert_int_equal(r.n_top_flips, 0);
    assert_int_equal(r.n_top_score_diffs, 0);
    assert_int_equal(r.n_gates, 4);
    assert_true(r.passed);
    cleval_compare_result_free(&r);
}

static const cleval_compare_gate *find_gate(const cleval_compare_result *r, const char *name)
{
    for (uint32_t i = 0; i < r->n_gates; i++)
        if (strcmp(r->gates[i].name, name) == 0) return &r->gates[i];
    fail_msg("no gate %s", name);
    return NULL;
}

/* Planted flips: every gate fails when tight and passes when loose. */
static void test_gates(void **state)
{
    (void)state;
    cleval_compare_config config = base_config("compare/base_a.h5", "compare/base_b.h5");
    config.limits = (cleval_compare_limits){.use_max_flip_rate = true,
                                            .max_flip_rate = 0.01,
                                            .use_max_accuracy_drop = true,
                                            .max_accuracy_drop = 0.005,
                                            .use_alpha = true,
                                            .alpha = 0.05,
                                            .use_max_score_diff = true,
                                            .max_score_diff = 1.0};
    cleval_compare_result r;
    assert_ok(cleval_compare_run(&config, &r));
    assert_false(r.passed);
    assert_false(find_gate(&r, "flip_rate")->passed);
    assert_false(find_gate(&r, "accuracy_drop")->passed);
    assert_close(find_gate(&r, "accuracy_drop")->value, r.accuracy_a - r.accuracy_b, 0, "drop");
    assert_false(find_gate(&r, "mcnemar_p")->passed);
    assert_false(find_gate(&r, "max_abs_score_diff")->passed);
    cleval_compare_result_free(&r);

    config.limits.max_flip_rate = 0.05;
    config.limits.max_accuracy_drop = 0.02;
    config.limits.alpha = 1e-4;
    config.limits.max_score_diff = 10;
    assert_ok(cleval_compare_run(&config, &r));
    assert_true(r.passed);
    for (uint32_t i = 0; i < r.n_gates; i++)
        assert_true(r.gates[i].passed);
    cleval_compare_result_free(&r);
}

static void test_paired_interval_edges(void **state)
{
    (void)state;
    double low, high;
    /* Everything right in both runs. */
    cleval_compare_paired_interval(100, 0, 0, 0, CLEVAL_STATS_Z95, &low, &high);
    assert_true(low <= 0 && high >= 0 && low >= -1 && high <= 1);
    /* A always right, B always wrong: the difference is -1 and the interval stays inside. */
    cleval_compare_paired_interval(0, 50, 0, 0, CLEVAL_STATS_Z95, &low, &high);
    assert_true(low == -1 && high > -0.95 && high < -0.85);
    /* Symmetric: swapping the runs negates the interval. */
    double l1, h1, l2, h2;
    cleval_compare_paired_interval(700, 40, 15, 245, CLEVAL_STATS_Z95, &l1, &h1);
    cleval_compare_paired_interval(700, 15, 40, 245, CLEVAL_STATS_Z95, &l2, &h2);
    assert_close(l1, -h2, 1e-14, "swap low");
    assert_close(h1, -l2, 1e-14, "swap high");
    assert_true(l1 < -0.025 && h1 > -0.025); /* contains the estimate (15 - 40) / 1000 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mcnemar_against_scipy),
        cmocka_unit_test(test_binomial_tail_closed_forms),
        cmocka_unit_test(test_gamma_closed_forms),
        cmocka_unit_test(test_base_pair),
        cmocka_unit_test(test_batch_sizes),
        cmocka_unit_test(test_without_labels),
        cmocka_unit_test(test_different_score_widths),
        cmocka_unit_test(test_identical_runs),
        cmocka_unit_test(test_gates),
        cmocka_unit_test(test_paired_interval_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
