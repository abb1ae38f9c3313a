/* ROC AUC and average precision end to end against scikit-learn (tools/make_auc_fixtures.py):
 * `metrics` on prediction files (ties, a class absent, softmax of logits, one class only, 101
 * classes), `knn` (vote fractions: ties everywhere) and `eval` of the shipped model (expected
 * values from onnxruntime's outputs); then --auc auto/on/off, the text report, a shard, and a
 * bad --auc value. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *auc_fixture(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/auc/%s", CLEVAL_FIXTURES_DIR, name);
    return path;
}

/* Relative 1e-12: cleval adds the ROC area exactly in integers and the average precision in
 * double in scikit-learn's order, and both see the same float32 probabilities (the fixtures'
 * softmax cases were checked to rank alike in float32 and float64), so only the last bits of
 * the doubles may differ. */
static void assert_pair(const cJSON *expected, const cJSON *got, const char *key)
{
    const cJSON *e = cJSON_GetObjectItem(expected, key), *g = cJSON_GetObjectItem(got, key);
    if (!g) fail_msg("no '%s' in the report", key);
    if (cJSON_IsNull(e)) {
        if (!cJSON_IsNull(g)) fail_msg("'%s' should be null", key);
        return;
    }
    static const char *const averages[] = {"macro", "weighted"};
    for (int a = 0; a < 2; a++) {
        const cJSON *x = cJSON_GetObjectItem(e, averages[a]),
                    *y = cJSON_GetObjectItem(g, averages[a]);
        if (!cJSON_IsNumber(y)) fail_msg("no number %s.%s", key, averages[a]);
        if (fabs(x->valuedouble - y->valuedouble) > 1e-12 * fabs(x->valuedouble))
            fail_msg("%s.%s: expected %.17g, got %.17g", key, averages[a], x->valuedouble,
                     y->valuedouble);
    }
}

static void check(const char *case_name, const char *const *args)
{
    char json[256];
    snprintf(json, sizeof json, "%s.json", case_name);
    cJSON *expected = load_json(auc_fixture(json));
    cJSON *got = run_cleval_json(args, 0);
    assert_string_equal(cJSON_GetObjectItem(got, "probabilities")->valuestring,
                        cJSON_GetObjectItem(expected, "probabilities")->valuestring);
    assert_pair(expected, got, "roc_auc");
    assert_pair(expected, got, "average_precision");
    cJSON_Delete(expected);
    cJSON_Delete(got);
}

static void check_metrics(const char *case_name, const char *batch, const char *auc)
{
    char h5[4096];
    snprintf(h5, sizeof h5, "%s/auc/%s.h5", CLEVAL_FIXTURES_DIR, case_name);
    check(case_name, (const char *[]){"metrics", "--data", h5, "--batch", batch, "--auc", auc,
                                      "--json", "-", "--quiet", NULL});
}

static void test_metrics_matches_scikit_learn(void **state)
{
    (void)state;
    static const char *const cases[] = {"probs_ties", "logits", "one_class"};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        check_metrics(cases[c], "7", "auto");
        check_metrics(cases[c], "1000", "on");
    }
    check_metrics("wide_101", "64", "on");
}

static void test_knn_vote_fractions(void **state)
{
    (void)state;
    char train[4096], test[4096];
    snprintf(train, sizeof train, "%s", auc_fixture("knn_train.h5"));
    snprintf(test, sizeof test, "%s", auc_fixture("knn.h5"));
    check("knn", (const char *[]){"knn", "--train", train, "--data", test, "-k", "7", "--batch",
                                  "10", "--json", "-", "--quiet", NULL});
    cJSON *off = run_cleval_json((const char *[]){"knn", "--train", train, "--data", test, "-k",
                                                  "7", "--auc", "off", "--json", "-", NULL},
                                 0);
    assert_null(cJSON_GetObjectItem(off, "roc_auc"));
    cJSON_Delete(off);
}

static void test_eval_shipped_model(void **state)
{
    (void)state;
    char model[4096], data[4096];
    snprintf(model, sizeof model, "%s/../../datasets/fmnist_cnn.onnx", CLEVAL_FIXTURES_DIR);
    snprintf(data, sizeof data, "%s", auc_fixture("eval_fmnist.h5"));
    check("eval_fmnist", (const char *[]){"eval", "--model", model, "--data", data, "--batch", "64",
                                          "--json", "-", "--quiet", NULL});
    cJSON *off = run_cleval_json((const char *[]){"eval", "--model", model, "--data", data, "--auc",
                                                  "off", "--json", "-", NULL},
                                 0);
    assert_null(cJSON_GetObjectItem(off, "roc_auc"));
    cJSON_Delete(off);
}

static bool has_auc(const char *h5, const char *auc)
{
    const char *args[] = {"metrics", "--data", h5, "--json", "-", "--auc", auc, NULL};
    if (!auc) args[5] = NULL;
    cJSON *got = run_cleval_json(args, 0);
    bool roc = cJSON_GetObjectItem(got, "roc_auc") != NULL;
    assert_true(roc == (cJSON_GetObjectItem(got, "average_precision") != NULL));
    cJSON_Delete(got);
    return roc;
}

/* auto: up to 100 classes; on: always; off: never. */
static void test_auc_modes(void **state)
{
    (void)state;
    char narrow[4096], wide[4096];
    snprintf(narrow, sizeof narrow, "%s", auc_fixture("logits.h5"));
    snprintf(wide, sizeof wide, "%s", auc_fixture("wide_101.h5"));
    assert_true(has_auc(narrow, NULL));
    assert_true(has_auc(narrow, "auto"));
    assert_false(has_auc(narrow, "off"));
    assert_false(has_auc(wide, NULL));
    assert_true(has_auc(wide, "on"));
    expect_cleval_error((const char *[]){"metrics", "--data", narrow, "--auc", "yes", NULL}, 2,
                        "--auc");
}

/* The text report's lines, and the line when no class qualifies. */
static void test_text_report(void **state)
{
    (void)state;
    char *out, *err;
    char h5[4096];
    snprintf(h5, sizeof h5, "%s", auc_fixture("logits.h5"));
    assert_int_equal(
        run_cleval((const char *[]){"metrics", "--data", h5, "--quiet", NULL}, &out, &err), 0);
    cJSON *e = load_json(auc_fixture("logits.json"));
    char line[128];
    snprintf(line, sizeof line, "ROC AUC (ovr): macro %.4f  weighted %.4f\n",
             cJSON_GetObjectItem(cJSON_GetObjectItem(e, "roc_auc"), "macro")->valuedouble,
             cJSON_GetObjectItem(cJSON_GetObjectItem(e, "roc_auc"), "weighted")->valuedouble);
    if (!strstr(out, line)) fail_msg("no line '%s' in:\n%s", line, out);
    snprintf(
        line, sizeof line, "average precision (ovr): macro %.4f  weighted %.4f\n",
        cJSON_GetObjectItem(cJSON_GetObjectItem(e, "average_precision"), "macro")->valuedouble,
        cJSON_GetObjectItem(cJSON_GetObjectItem(e, "average_precision"), "weighted")->valuedouble);
    if (!strstr(out, line)) fail_msg("no line '%s' in:\n%s", line, out);
    cJSON_Delete(e);
    free(out), free(err);
    snprintf(h5, sizeof h5, "%s", auc_fixture("one_class.h5"));
    assert_int_equal(
        run_cleval((const char *[]){"metrics", "--data", h5, "--quiet", NULL}, &out, &err), 0);
    assert_non_null(strstr(out, "ROC AUC (ovr): none"));
    free(out), free(err);
}

/* A shard reports no AUC, like the other score metrics. */
static void test_shard_reports_none(void **state)
{
    (void)state;
    char h5[4096];
    snprintf(h5, sizeof h5, "%s", auc_fixture("probs_ties.h5"));
    cJSON *got =
        run_cleval_json((const char *[]){"metrics", "--data", h5, "--shard", "1/2", "--save",
                                         temp_path("part1.h5"), "--auc", "on", "--json", "-", NULL},
                        0);
    assert_null(cJSON_GetObjectItem(got, "roc_auc"));
    assert_null(cJSON_GetObjectItem(got, "average_precision"));
    cJSON_Delete(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_matches_scikit_learn),
        cmocka_unit_test(test_knn_vote_fractions),
        cmocka_unit_test(test_eval_shipped_model),
        cmocka_unit_test(test_auc_modes),
        cmocka_unit_test(test_text_report),
        cmocka_unit_test(test_shard_reports_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
