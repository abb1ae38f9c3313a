/* `cleval compare` and `cleval drift` as a CI job runs them: exit codes 0 / 1 / 2, the JSON
 * still written when a gate fails, the one-line error of every bad input, the flipped-samples
 * file written atomically, and McNemar's p for b + c in the hundreds of thousands (the files
 * are built here from the counts in tests/fixtures/compare/mcnemar.json). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fixture_a[4096], fixture_b[4096], fixture_wide[4096], nolabel_a[4096], nolabel_b[4096],
    drift_ref[4096], drift_cur[4096], drift_ref_prob[4096], drift_cur_prob[4096];

static int setup(void **state)
{
    (void)state;
    snprintf(fixture_a, sizeof fixture_a, "%s", fixture_path("compare/base_a.h5"));
    snprintf(fixture_b, sizeof fixture_b, "%s", fixture_path("compare/base_b.h5"));
    snprintf(fixture_wide, sizeof fixture_wide, "%s", fixture_path("compare/wide_b.h5"));
    snprintf(nolabel_a, sizeof nolabel_a, "%s", fixture_path("compare/nolabel_a.h5"));
    snprintf(nolabel_b, sizeof nolabel_b, "%s", fixture_path("compare/nolabel_b.h5"));
    snprintf(drift_ref, sizeof drift_ref, "%s", fixture_path("drift/ref.h5"));
    snprintf(drift_cur, sizeof drift_cur, "%s", fixture_path("drift/cur.h5"));
    snprintf(drift_ref_prob, sizeof drift_ref_prob, "%s", fixture_path("drift/ref_prob.h5"));
    snprintf(drift_cur_prob, sizeof drift_cur_prob, "%s", fixture_path("drift/cur_prob.h5"));
    return 0;
}

/* Runs cleval, expects `code`, an empty stdout and exactly one stderr line holding `needle`. */
static void expect_failure(const char *const *args, int code, const char *needle)
{
    char *out, *err;
    int got = run_cleval(args, &out, &err);
    if (got != code) fail_msg("exit %d (wanted %d); stderr: %s", got, code, err);
    assert_string_equal(out, "");
    size_t lines = 0;
    for (const char *c = err; *c; c++)
        lines += *c == '\n';
    if (lines != 1) fail_msg("stderr has %zu lines: %s", lines, err);
    if (!strstr(err, needle)) fail_msg("stderr '%s' lacks '%s'", err, needle);
    free(out);
    free(err);
}

/* Runs cleval with --json -, expects `code` and returns the parsed JSON. */
static double number(const cJSON *o, const char *key)
{
    const cJSON *item = cJSON_GetObjectItem(o, key);
    if (!cJSON_IsNumber(item)) fail_msg("JSON lacks number '%s'", key);
    return item->valuedouble;
}

/* A prediction file of n samples: pred and y from the callbacks' arrays, optional scores. */
static const char *write_preds(const char *name, const int32_t *pred, const int32_t *y,
                               const float *scores, hsize_t n, hsize_t width)
{
    const char *path = temp_path(name);
    hid_t file = h5_create(path);
    hsize_t dims[2] = {n, width};
    if (pred) h5_write(file, "pred", H5T_NATIVE_INT32, 1, dims, pred, 0, NULL);
    if (y) h5_write(file, "y", H5T_NATIVE_INT32, 1, dims, y, 0, NULL);
    if (scores) h5_write(file, "scores", H5T_NATIVE_FLOAT, 2, dims, scores, 0, NULL);
    H5Fclose(file);
    return path;
}

static void test_compare_identical(void **state)
{
    (void)state;
    cJSON *json = run_cleval_json((const char *[]){"compare", fixture_a, fixture_a, "--json", "-",
                                                   "--max-flip-rate", "0", "--max-score-diff", "0",
                                                   "--max-accuracy-drop", "0", NULL},
                                  0);
    assert_int_equal(number(json, "flips"), 0);
    assert_true(number(json, "agreement") == 1.0);
    const cJSON *m = cJSON_GetObjectItem(json, "mcnemar");
    assert_true(number(m, "p_value") == 1.0);
    assert_int_equal(number(m, "b"), 0);
    assert_int_equal(number(m, "c"), 0);
    assert_true(number(json, "max_abs_score_diff") == 0.0);
    assert_true(number(json, "accuracy_diff") == 0.0);
    const cJSON *gates = cJSON_GetObjectItem(json, "gates");
    assert_int_equal(cJSON_GetArraySize(gates), 4); /* the three flags and the default alpha */
    const cJSON *g;
    cJSON_ArrayForEach(g, gates) assert_true(cJSON_IsTrue(cJSON_GetObjectItem(g, "passed")));
    cJSON_Delete(json);

    char *out, *err;
    assert_int_equal(
        run_cleval((const char *[]){"compare", fixture_a, fixture_a, NULL}, &out, &err), 0);
    assert_non_null(strstr(out, "Verdict: PASS"));
    free(out), free(err);
}

/* The planted flips (60 broken, 25 fixed) fail tight gates and pass loose ones; the JSON is
 * written either way. */
static void test_compare_gates(void **state)
{
    (void)state;
    cJSON *expected = load_json(fixture_path("compare/base.json"));
    char json_path[4096];
    snprintf(json_path, sizeof json_path, "%s", temp_path("compare_gates.json"));
    remove(json_path);
    char *out, *err;
    int code = run_cleval((const char *[]){"compare", fixture_a, fixture_b, "--json", json_path,
                                           "--max-flip-rate", "0.01", "--max-accuracy-drop",
                                           "0.005", "--max-score-diff", "1e-3", NULL},
                          &out, &err);
    assert_int_equal(code, 1);
    assert_string_equal(err, "");
    assert_non_null(strstr(out, "FAIL  flip_rate"));
    assert_non_null(strstr(out, "exceeded by"));
    assert_non_null(strstr(out, "Verdict: FAIL (4 of 4 gates"));
    assert_non_null(strstr(out, "Top flips"));
    free(out), free(err);
    cJSON *json = load_json(json_path);
    const char *keys[] = {"n_samples",          "agreement",  "flips",         "flip_matrix",
                          "accuracy_a",         "accuracy_b", "accuracy_diff", "mcnemar",
                          "max_abs_score_diff", "gates"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!cJSON_GetObjectItem(json, keys[i])) fail_msg("JSON lacks '%s'", keys[i]);
    assert_int_equal(number(json, "flips"), number(expected, "flips"));
    assert_true(number(json, "accuracy_a") == number(expected, "accuracy_a"));
    const cJSON *m = cJSON_GetObjectItem(json, "mcnemar");
    const cJSON *want = cJSON_GetObjectItem(expected, "mcnemar");
    assert_int_equal(number(m, "b"), number(want, "b"));
    assert_int_equal(number(m, "c"), number(want, "c"));
    assert_true(fabs(number(m, "p_value") - number(want, "p_value")) <=
                1e-12 * number(want, "p_value"));
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItem(json, "gates"))
    {
        assert_false(cJSON_IsTrue(cJSON_GetObjectItem(g, "passed")));
        assert_non_null(cJSON_GetObjectItem(g, "limit"));
        assert_non_null(cJSON_GetObjectItem(g, "value"));
    }
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(json, "passed")));
    cJSON_Delete(json);

    json =
        run_cleval_json((const char *[]){"compare", fixture_a, fixture_b, "--json", "-",
                                         "--max-flip-rate", "0.05", "--max-accuracy-drop", "0.02",
                                         "--alpha", "1e-5", "--max-score-diff", "10", NULL},
                        0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(json, "passed")));
    cJSON_Delete(json);
    /* Only the default alpha: p = 1.9e-4 < 0.05 fails. */
    json =
        run_cleval_json((const char *[]){"compare", fixture_a, fixture_b, "--json", "-", NULL}, 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(json, "gates")), 1);
    cJSON_Delete(json);
    cJSON_Delete(expected);
}

/* --save lists every flipped sample; a run that fails leaves no file and no temporary. */
static void test_compare_save(void **state)
{
    (void)state;
    char saved[4096];
    snprintf(saved, sizeof saved, "%s", temp_path("cli_flips.h5"));
    remove(saved);
    char *out, *err;
    assert_int_equal(run_cleval((const char *[]){"compare", fixture_a, fixture_b, "--save", saved,
                                                 "--alpha", "0", NULL},
                                &out, &err),
                     0);
    free(out), free(err);
    hid_t file = H5Fopen(saved, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    int64_t n_flips = 0;
    hid_t attr = H5Aopen(file, "n_flips", H5P_DEFAULT);
    H5Aread(attr, H5T_NATIVE_INT64, &n_flips);
    H5Aclose(attr);
    assert_int_equal(n_flips, 85);
    hid_t d = H5Dopen2(file, "index", H5P_DEFAULT);
    hid_t space = H5Dget_space(d);
    assert_int_equal(H5Sget_simple_extent_npoints(space), 85);
    H5Sclose(space);
    H5Dclose(d);
    H5Fclose(file);
    assert_false(folder_has_temp_files(CLEVAL_TEST_TMPDIR));

    /* NaN in B's scores, in the second batch: no file. */
    char never[4096], bad[4096];
    snprintf(never, sizeof never, "%s", temp_path("cli_flips_never.h5"));
    remove(never);
    int32_t pred[20] = {0}, y[20] = {0};
    float scores[20][2] = {{0}};
    scores[13][1] = NAN;
    snprintf(bad, sizeof bad, "%s", write_preds("cli_nan_b.h5", pred, y, &scores[0][0], 20, 2));
    char good[4096];
    scores[13][1] = 0;
    snprintf(good, sizeof good, "%s", write_preds("cli_nan_a.h5", pred, y, &scores[0][0], 20, 2));
    expect_failure((const char *[]){"compare", good, bad, "--batch", "5", "--save", never, NULL}, 2,
                   "'scores' holds 1 non-finite scores (first in sample 13)");
    assert_int_equal(access(never, F_OK), -1);
    assert_false(folder_has_temp_files(CLEVAL_TEST_TMPDIR));
}

/* b + c in the hundreds of thousands: files of n samples, all of class 0, with b samples that
 * only A gets right and c that only B gets right. */
static void test_compare_large_discordance(void **state)
{
    (void)state;
    cJSON *fixture = load_json(fixture_path("compare/mcnemar.json"));
    const cJSON *c;
    int checked = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(fixture, "cases"))
    {
        uint64_t b = (uint64_t)number(c, "b"), cc = (uint64_t)number(c, "c");
        if (b + cc < 250000 || b + cc > 400000) continue;
        checked++;
        hsize_t n = b + cc + 1000;
        int32_t *y = calloc(n, sizeof *y), *pa = calloc(n, sizeof *pa), *pb = calloc(n, sizeof *pb);
        for (uint64_t i = 0; i < b; i++)
            pb[i] = 1; /* A right, B wrong */
        for (uint64_t i = b; i < b + cc; i++)
            pa[i] = 1; /* A wrong, B right */
        char a_path[4096], b_path[4096];
        snprintf(a_path, sizeof a_path, "%s", write_preds("cli_large_a.h5", pa, y, NULL, n, 0));
        snprintf(b_path, sizeof b_path, "%s", write_preds("cli_large_b.h5", pb, y, NULL, n, 0));
        free(y), free(pa), free(pb);
        double want_p = number(c, "p_value"), want_log = number(c, "log_p_value");
        cJSON *json = run_cleval_json(
            (const char *[]){"compare", a_path, b_path, "--json", "-", "--alpha", "0", NULL}, 0);
        const cJSON *m = cJSON_GetObjectItem(json, "mcnemar");
        assert_int_equal(number(m, "b"), b);
        assert_int_equal(number(m, "c"), cc);
        double log_p = number(m, "log_p_value"), p = number(m, "p_value");
        if (!(fabs(log_p - want_log) <= 1e-10 * fmax(1, fabs(want_log))))
            fail_msg("b=%llu c=%llu: ln p %.17g, scipy %.17g", (unsigned long long)b,
                     (unsigned long long)cc, log_p, want_log);
        if (want_p > 1e-300 && !(fabs(p - want_p) <= 1e-10 * want_p))
            fail_msg("b=%llu c=%llu: p %.17g, scipy %.17g", (unsigned long long)b,
                     (unsigned long long)cc, p, want_p);
        assert_int_equal(number(json, "flips"), b + cc);
        cJSON_Delete(json);
    }
    assert_int_equal(checked, 7);
    cJSON_Delete(fixture);
}

static void test_compare_without_labels(void **state)
{
    (void)state;
    cJSON *json = run_cleval_json((const char *[]){"compare", nolabel_a, nolabel_b, "--json", "-",
                                                   "--max-flip-rate", "0.5", NULL},
                                  0);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(json, "has_labels")));
    assert_null(cJSON_GetObjectItem(json, "mcnemar"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(json, "gates")), 1);
    cJSON_Delete(json);
    json = run_cleval_json(
        (const char *[]){"compare", fixture_a, fixture_wide, "--json", "-", NULL}, 0);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(json, "has_scores")));
    assert_non_null(
        strstr(cJSON_GetObjectItem(json, "score_note")->valuestring, "score widths differ"));
    cJSON_Delete(json);
}

static void test_compare_bad_inputs(void **state)
{
    (void)state;
    int32_t pred[10] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0}, y[10] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
    int32_t y2[10] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 1};
    float scores[10][3] = {{0}};
    char ten[4096], nine[4096], other_y[4096], no_y[4096], no_pred[4096], no_scores[4096],
        empty[4096], text[4096], short_scores[4096];
    snprintf(ten, sizeof ten, "%s", write_preds("cmp_ten.h5", pred, y, &scores[0][0], 10, 3));
    snprintf(nine, sizeof nine, "%s", write_preds("cmp_nine.h5", pred, y, &scores[0][0], 9, 3));
    snprintf(other_y, sizeof other_y, "%s",
             write_preds("cmp_other_y.h5", pred, y2, &scores[0][0], 10, 3));
    snprintf(no_y, sizeof no_y, "%s", write_preds("cmp_no_y.h5", pred, NULL, &scores[0][0], 10, 3));
    snprintf(no_pred, sizeof no_pred, "%s",
             write_preds("cmp_no_pred.h5", NULL, y, &scores[0][0], 10, 3));
    snprintf(no_scores, sizeof no_scores, "%s",
             write_preds("cmp_no_scores.h5", pred, y, NULL, 10, 0));
    snprintf(empty, sizeof empty, "%s", write_preds("cmp_empty.h5", pred, y, &scores[0][0], 0, 3));
    snprintf(text, sizeof text, "%s", temp_path("cmp_text.h5"));
    FILE *f = fopen(text, "w");
    fputs("not hdf5\n", f);
    fclose(f);
    {
        const char *path = temp_path("cmp_short_scores.h5");
        hid_t file = h5_create(path);
        hsize_t dims[2] = {10, 3}, short_dims[2] = {8, 3};
        h5_write(file, "pred", H5T_NATIVE_INT32, 1, dims, pred, 0, NULL);
        h5_write(file, "scores", H5T_NATIVE_FLOAT, 2, short_dims, scores, 0, NULL);
        H5Fclose(file);
        snprintf(short_scores, sizeof short_scores, "%s", path);
    }

    expect_failure((const char *[]){"compare", "/nonexistent/a.h5", ten, NULL}, 2,
                   "/nonexistent/a.h5: cannot open");
    expect_failure((const char *[]){"compare", ten, "/nonexistent/b.h5", NULL}, 2,
                   "/nonexistent/b.h5: cannot open");
    expect_failure((const char *[]){"compare", ten, text, NULL}, 2, "not an HDF5 file");
    expect_failure((const char *[]){"compare", ten, nine, NULL}, 2, "has 10 samples but");
    expect_failure((const char *[]){"compare", ten, nine, NULL}, 2, "cmp_nine.h5 has 9");
    expect_failure((const char *[]){"compare", ten, other_y, NULL}, 2,
                   "'y' differs at sample 9 (0 vs 1)");
    expect_failure((const char *[]){"compare", ten, no_y, NULL}, 2, "has labels 'y' but");
    expect_failure((const char *[]){"compare", ten, no_pred, NULL}, 2, "no dataset 'pred'");
    expect_failure((const char *[]){"compare", ten, empty, NULL}, 2, "zero samples");
    expect_failure((const char *[]){"compare", ten, short_scores, NULL}, 2,
                   "'pred' has 10 samples but 'scores' has 8");
    expect_failure((const char *[]){"compare", ten, no_scores, "--max-score-diff", "1", NULL}, 2,
                   "--max-score-diff needs comparable scores: ");
    expect_failure((const char *[]){"compare", ten, ten, "--pred-key", "p", NULL}, 2,
                   "no dataset 'p'");
    expect_failure((const char *[]){"compare", ten, ten, "--alpha", "2", NULL}, 2,
                   "--alpha: must be between 0 and 1 (got 2)");
    expect_failure((const char *[]){"compare", ten, ten, "--alpha", "nan", NULL}, 2,
                   "--alpha: 'nan' is not a number");
    expect_failure((const char *[]){"compare", ten, ten, "--max-flip-rate", "abc", NULL}, 2,
                   "--max-flip-rate: 'abc' is not a number");
    expect_failure((const char *[]){"compare", ten, ten, "--max-flip-rate", "-0.1", NULL}, 2,
                   "--max-flip-rate: must be between 0 and 1");
    expect_failure((const char *[]){"compare", ten, ten, "--max-score-diff", "-1", NULL}, 2,
                   "--max-score-diff: must be between 0 and");
    expect_failure((const char *[]){"compare", ten, ten, "--max-accuracy-drop", "1x", NULL}, 2,
                   "--max-accuracy-drop: '1x' is not a number");
    expect_failure((const char *[]){"compare", ten, ten, "--batch", "0", NULL}, 2,
                   "--batch: must be at least 1");
    expect_failure((const char *[]){"compare", ten, NULL}, 2, "two prediction files are required");
    expect_failure((const char *[]){"compare", ten, ten, ten, NULL}, 2, "unexpected argument");
    expect_failure((const char *[]){"compare", ten, ten, "--psi-alert", "1", NULL}, 2,
                   "unknown flag '--psi-alert'");
    expect_failure((const char *[]){"compare", ten, ten, "--save", "/nonexistent/dir/f.h5", NULL},
                   2, "--save /nonexistent/dir/f.h5");
    expect_failure((const char *[]){"compare", nolabel_a, nolabel_b, "--alpha", "0.05", NULL}, 2,
                   "--alpha needs labels");
}

static void test_drift_runs(void **state)
{
    (void)state;
    cJSON *expected = load_json(fixture_path("drift/ref_cur.json"));
    char json_path[4096];
    snprintf(json_path, sizeof json_path, "%s", temp_path("drift_report.json"));
    remove(json_path);
    char *out, *err;
    assert_int_equal(
        run_cleval((const char *[]){"drift", drift_ref, drift_cur, "--json", json_path, NULL}, &out,
                   &err),
        1);
    assert_non_null(strstr(out, "Findings"));
    assert_non_null(strstr(out, "ALERT (5)"));
    assert_non_null(strstr(out, "Look first at"));
    free(out), free(err);
    cJSON *json = load_json(json_path);
    assert_int_equal(number(json, "n_reference"), 4000);
    assert_int_equal(number(json, "n_classes"), 8);
    const cJSON *cls = cJSON_GetObjectItem(json, "class");
    const cJSON *want = cJSON_GetObjectItem(expected, "class");
    const char *stats[] = {"psi", "js", "chi2", "p_value"};
    for (size_t i = 0; i < 4; i++)
        if (!(fabs(number(cls, stats[i]) - number(want, stats[i])) <=
              1e-12 * number(want, stats[i])))
            fail_msg("class %s: %.17g vs %.17g", stats[i], number(cls, stats[i]),
                     number(want, stats[i]));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(cls, "reference")), 8);
    const cJSON *conf = cJSON_GetObjectItem(json, "confidence");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(conf, "current")), 10);
    assert_non_null(cJSON_GetObjectItem(conf, "mean_reference"));
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(json, "entropy"), "mean_current"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(json, "alerts")), 5);
    const cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(json, "alerts"), 0);
    assert_string_equal(cJSON_GetObjectItem(a, "name")->valuestring, "class_psi");
    assert_true(number(a, "limit") == 0.2);
    cJSON_Delete(json);
    cJSON_Delete(expected);

    /* Identical runs: no alert. */
    json = run_cleval_json((const char *[]){"drift", drift_ref, drift_ref, "--json", "-", NULL}, 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(json, "alerts")), 0);
    cJSON_Delete(json);
    /* Probabilities: the confidence alerts fire at the defaults and not at loose limits. */
    json = run_cleval_json(
        (const char *[]){"drift", drift_ref_prob, drift_cur_prob, "--json", "-", NULL}, 1);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(json, "confidence"), "source_current")->valuestring,
        "probabilities");
    cJSON_Delete(json);
    json = run_cleval_json((const char *[]){"drift", drift_ref_prob, drift_cur_prob, "--json", "-",
                                            "--psi-alert", "1", "--js-alert", "0.5", NULL},
                           0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(json, "alerts")), 0);
    cJSON_Delete(json);
    /* --alpha 0.5 makes the class test (p = 0.12) fire. */
    json = run_cleval_json((const char *[]){"drift", drift_ref_prob, drift_cur_prob, "--json", "-",
                                            "--psi-alert", "1", "--js-alert", "0.5", "--alpha",
                                            "0.5", NULL},
                           1);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(json, "alerts"), 0), "name")
            ->valuestring,
        "class_chi2");
    cJSON_Delete(json);
}

static void test_drift_bad_inputs(void **state)
{
    (void)state;
    int32_t pred[4] = {0, 1, 0, 1};
    float scores[4][2] = {{0, 1}, {1, 0}, {NAN, 0}, {0, 0}};
    char no_scores[4096], no_pred[4096], nan_scores[4096], flat[4096];
    snprintf(no_scores, sizeof no_scores, "%s",
             write_preds("dr_no_scores.h5", pred, NULL, NULL, 4, 0));
    snprintf(no_pred, sizeof no_pred, "%s",
             write_preds("dr_no_pred.h5", NULL, NULL, &scores[0][0], 4, 2));
    snprintf(nan_scores, sizeof nan_scores, "%s",
             write_preds("dr_nan.h5", pred, NULL, &scores[0][0], 4, 2));
    {
        const char *path = temp_path("dr_flat.h5");
        hid_t file = h5_create(path);
        hsize_t dims[1] = {4};
        h5_write(file, "pred", H5T_NATIVE_INT32, 1, dims, pred, 0, NULL);
        h5_write(file, "scores", H5T_NATIVE_FLOAT, 1, dims, scores, 0, NULL);
        H5Fclose(file);
        snprintf(flat, sizeof flat, "%s", path);
    }
    expect_failure((const char *[]){"drift", "/nonexistent/r.h5", drift_cur, NULL}, 2,
                   "/nonexistent/r.h5: cannot open");
    expect_failure((const char *[]){"drift", drift_ref, "/nonexistent/c.h5", NULL}, 2,
                   "/nonexistent/c.h5: cannot open");
    expect_failure((const char *[]){"drift", drift_ref, no_scores, NULL}, 2,
                   "dr_no_scores.h5: no dataset 'scores'");
    expect_failure((const char *[]){"drift", no_pred, drift_cur, NULL}, 2,
                   "dr_no_pred.h5: no dataset 'pred'");
    expect_failure((const char *[]){"drift", drift_ref, nan_scores, NULL}, 2,
                   "dr_nan.h5: 'scores' holds 1 non-finite scores (first in sample 2)");
    expect_failure((const char *[]){"drift", drift_ref, flat, NULL}, 2, "must be 2-D [N, C]");
    expect_failure((const char *[]){"drift", drift_ref, drift_cur, "--psi-alert", "-1", NULL}, 2,
                   "--psi-alert: must be between 0 and");
    expect_failure((const char *[]){"drift", drift_ref, drift_cur, "--js-alert", "x", NULL}, 2,
                   "--js-alert: 'x' is not a number");
    expect_failure((const char *[]){"drift", drift_ref, drift_cur, "--alpha", "1.5", NULL}, 2,
                   "--alpha: must be between 0 and 1");
    expect_failure((const char *[]){"drift", drift_ref, drift_cur, "--psi-warn", "0.3",
                                    "--psi-alert", "0.2", NULL},
                   2, "--psi-warn 0.3 is above --psi-alert 0.2");
    expect_failure((const char *[]){"drift", drift_ref, drift_cur, "--scores-key", "logits", NULL},
                   2, "no dataset 'logits'");
    expect_failure((const char *[]){"drift", drift_ref, NULL}, 2,
                   "two prediction files are required");
    expect_failure((const char *[]){"drift", drift_ref, drift_cur, "--max-flip-rate", "1", NULL}, 2,
                   "unknown flag '--max-flip-rate'");
    expect_failure((const char *[]){"drift", drift_ref, drift_cur, "--device", "no-such-gpu", NULL},
                   2, "no device name contains 'no-such-gpu'");
}

/* The PSI levels as the JSON report states them after `extra` thresholds. */
static void expect_psi_levels(const char *const *extra, double warn, double alert)
{
    const char *args[16] = {"drift", drift_ref, drift_cur, "--json", "-"};
    size_t n = 5;
    while (*extra)
        args[n++] = *extra++;
    char *out, *err;
    int code = run_cleval(args, &out, &err);
    if (code != 0 && code != 1) fail_msg("exit %d: %s", code, err);
    cJSON *json = cJSON_Parse(out);
    assert_non_null(json);
    const cJSON *t = cJSON_GetObjectItem(json, "thresholds");
    assert_true(number(t, "psi_warn") == warn);
    assert_true(number(t, "psi_alert") == alert);
    cJSON_Delete(json);
    free(out), free(err);
}

/* A default never overrules a level the user gave: the default moves to meet it. */
static void test_drift_default_yields_to_given_level(void **state)
{
    (void)state;
    expect_psi_levels((const char *[]){"--psi-alert", "1e-6", NULL}, 1e-6, 1e-6);
    expect_psi_levels((const char *[]){"--psi-warn", "0.5", NULL}, 0.5, 0.5);
    expect_psi_levels((const char *[]){"--psi-alert", "0.15", NULL}, 0.1, 0.15);
    expect_psi_levels((const char *[]){"--psi-warn", "0.05", "--psi-alert", "0.07", NULL}, 0.05,
                      0.07);
}

/* A label beyond --max-classes stops compare and drift before the class tables are sized,
 * naming the file, the dataset, the sample and the flag. */
static void test_max_classes(void **state)
{
    (void)state;
    int32_t pred[4] = {0, 1, 1, 1}, y[4] = {0, 1, 0, 1}, huge[4] = {0, 1, 2147483647, 1};
    float scores[4][2] = {{1, 0}, {0, 1}, {0, 1}, {0, 1}};
    char plain[4096], big_pred[4096], big_y[4096], names[4096];
    snprintf(plain, sizeof plain, "%s", write_preds("mc_plain.h5", pred, y, &scores[0][0], 4, 2));
    snprintf(big_pred, sizeof big_pred, "%s",
             write_preds("mc_big_pred.h5", huge, y, &scores[0][0], 4, 2));
    snprintf(big_y, sizeof big_y, "%s",
             write_preds("mc_big_y.h5", pred, huge, &scores[0][0], 4, 2));
    expect_failure((const char *[]){"compare", plain, big_pred, NULL}, 2,
                   "mc_big_pred.h5: 'pred' sample 2 has label 2147483647, above --max-classes "
                   "10000 (raise it if the model really has that many classes)");
    expect_failure((const char *[]){"compare", big_y, big_y, NULL}, 2,
                   "mc_big_y.h5: 'y' sample 2 has label 2147483647, above --max-classes 10000");
    expect_failure((const char *[]){"drift", plain, big_pred, NULL}, 2,
                   "mc_big_pred.h5: 'pred' sample 2 has label 2147483647, above --max-classes");
    expect_failure((const char *[]){"drift", big_y, plain, NULL}, 2,
                   "mc_big_y.h5: 'y' sample 2 has label 2147483647, above --max-classes");
    /* The limit is the user's: labels 0..1 need 2 classes. */
    expect_failure((const char *[]){"compare", plain, plain, "--max-classes", "1", NULL}, 2,
                   "'pred' sample 1 has label 1, above --max-classes 1");
    expect_failure((const char *[]){"drift", plain, plain, "--max-classes", "1", NULL}, 2,
                   "'pred' sample 1 has label 1, above --max-classes 1");
    cJSON *json = run_cleval_json(
        (const char *[]){"compare", plain, plain, "--max-classes", "2", "--json", "-", NULL}, 0);
    cJSON_Delete(json);
    expect_failure((const char *[]){"compare", plain, plain, "--max-classes", "0", NULL}, 2,
                   "--max-classes: must be at least 1");
    /* class_names longer than the limit is refused before its entries are read. */
    {
        const char *path = temp_path("mc_names.h5");
        hid_t file = h5_create(path);
        hsize_t dims[2] = {4, 2};
        h5_write(file, "pred", H5T_NATIVE_INT32, 1, dims, pred, 0, NULL);
        h5_write(file, "scores", H5T_NATIVE_FLOAT, 2, dims, scores, 0, NULL);
        h5_write_strings(file, "class_names", (const char *[]){"a", "b", "c"}, 3);
        H5Fclose(file);
        snprintf(names, sizeof names, "%s", path);
    }
    expect_failure((const char *[]){"compare", names, names, "--max-classes", "2", NULL}, 2,
                   "mc_names.h5: 'class_names' has 3 entries, more than --max-classes 2");
    expect_failure((const char *[]){"drift", names, names, "--max-classes", "2", NULL}, 2,
                   "mc_names.h5: 'class_names' has 3 entries, more than --max-classes 2");
}

/* Under an address-space limit too small for the OpenCL runtime, compare (host only) runs as
 * ever and drift, which counts on the device, says memory is the cause (exit 4). */
static void test_low_memory_limit(void **state)
{
    (void)state;
    if (!ADDRESS_LIMITS_WORK) skip();
    set_cleval_address_limit(200ull << 20);
    cJSON *json =
        run_cleval_json((const char *[]){"compare", fixture_a, fixture_a, "--json", "-", NULL}, 0);
    cJSON_Delete(json);
    expect_failure((const char *[]){"drift", drift_ref, drift_cur, NULL}, 4,
                   "cleval: out of memory loading the OpenCL runtime (address-space limit 200 "
                   "MiB)");
    /* Memory that cleval itself sizes fails cleanly too: labels up to 20,000 under a 1 GiB
     * limit, with the flip matrix forced dense (CLEVAL_TEST_DENSE_CELLS), need a 20001-class
     * matrix of 3.2 GB. Counted sparsely, as they are by default, both commands run; drift
     * never holds a class-by-class matrix. */
    int32_t pred[4] = {0, 1, 20000, 1};
    float scores[4][2] = {{1, 0}, {0, 1}, {0, 1}, {0, 1}};
    char big[4096];
    snprintf(big, sizeof big, "%s", write_preds("oom_big.h5", pred, pred, &scores[0][0], 4, 2));
    set_cleval_address_limit(1ull << 30);
    setenv("CLEVAL_TEST_DENSE_CELLS", "1000000000000", 1);
    expect_failure((const char *[]){"compare", big, big, "--max-classes", "30000", NULL}, 4,
                   "oom_big.h5: out of memory");
    unsetenv("CLEVAL_TEST_DENSE_CELLS");
    const char *const commands[] = {"compare", "drift"};
    for (int i = 0; i < 2; i++) {
        char *out, *err;
        int code = run_cleval(
            (const char *[]){commands[i], big, big, "--max-classes", "30000", "--quiet", NULL},
            &out, &err);
        if (code != 0) fail_msg("%s: exit %d; stderr: %s", commands[i], code, err);
        free(out);
        free(err);
    }
    set_cleval_address_limit(0);
}

static void test_help(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(run_cleval((const char *[]){"--help", NULL}, &out, &err), 0);
    assert_non_null(strstr(out, "compare"));
    assert_non_null(strstr(out, "drift"));
    free(out), free(err);
    assert_int_equal(run_cleval((const char *[]){"compare", "--help", NULL}, &out, &err), 0);
    assert_non_null(strstr(out, "--max-accuracy-drop"));
    free(out), free(err);
    assert_int_equal(run_cleval((const char *[]){"drift", "--help", NULL}, &out, &err), 0);
    assert_non_null(strstr(out, "--psi-warn"));
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compare_identical),
        cmocka_unit_test(test_compare_gates),
        cmocka_unit_test(test_compare_save),
        cmocka_unit_test(test_compare_large_discordance),
        cmocka_unit_test(test_compare_without_labels),
        cmocka_unit_test(test_compare_bad_inputs),
        cmocka_unit_test(test_drift_runs),
        cmocka_unit_test(test_drift_bad_inputs),
        cmocka_unit_test(test_drift_default_yields_to_given_level),
        cmocka_unit_test(test_max_classes),
        cmocka_unit_test(test_low_memory_limit),
        cmocka_unit_test(test_help),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
