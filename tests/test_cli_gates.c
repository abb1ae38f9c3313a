/* CI gates and CI files as a pipeline uses them: --min-accuracy and --min-class-recall on
 * metrics, knn and eval (exit 0 or 1, the JSON "gates", the report's lines, stderr), --junit on
 * every command with gates, --summary-md, the refusals (exit 2), and the derived metrics
 * (balanced accuracy, MCC, Cohen's kappa) in the reports, merge's included. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/metrics.h"

/* Class 1's name needs escaping in XML and Markdown. */
static const char *const NAMES[] = {"cat", "<dog & \"fox\">", "bird"};

/* 10 samples: accuracy 0.7; recalls 0.75, 0.5, 1 (class 1 the worst). */
static const int32_t Y[] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2};
static const int32_t PRED[] = {0, 0, 0, 1, 1, 1, 0, 0, 2, 2};

static char data_path[4096];

static const char *write_labels(const char *name, const int32_t *y, const int32_t *pred, hsize_t n,
                                bool names)
{
    const char *path = temp_path(name);
    hid_t f = h5_create(path);
    h5_write(f, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    h5_write(f, "pred", H5T_NATIVE_INT32, 1, &n, pred, 0, NULL);
    if (names) h5_write_strings(f, "class_names", NAMES, 3);
    H5Fclose(f);
    return path;
}

static int setup(void **state)
{
    (void)state;
    snprintf(data_path, sizeof data_path, "%s", write_labels("gates.h5", Y, PRED, 10, true));
    return 0;
}

static void expect_contains(const char *text, const char *needle)
{
    if (!strstr(text, needle)) fail_msg("'%s' not in:\n%s", needle, text);
}

/* Runs cleval, expects `code`, and returns stdout and stderr (to free). */
static void run_expect(const char *const *args, int code, char **out, char **err)
{
    int got = run_cleval(args, out, err);
    if (got != code) fail_msg("exit %d (wanted %d): %s", got, code, *err);
}

static void test_gates_pass_at_the_limit_and_fail_below(void **state)
{
    (void)state;
    char *out, *err;
    run_expect((const char *[]){"metrics", "--data", data_path, "--min-accuracy", "0.7",
                                "--min-class-recall", "0.5", NULL},
               0, &out, &err);
    expect_contains(out, "  PASS  min_accuracy       0.7 >= limit 0.7\n");
    expect_contains(out,
                    "  PASS  min_class_recall   0.5 >= limit 0.5, class 1 (<dog & \"fox\">)\n");
    expect_contains(out, "Verdict: PASS (2 gates)\n");
    assert_string_equal(err, "");
    free(out), free(err);

    run_expect((const char *[]){"metrics", "--data", data_path, "--min-accuracy", "0.71", NULL}, 1,
               &out, &err);
    expect_contains(out, "  FAIL  min_accuracy       0.7 < limit 0.71 (below it by 0.01)\n");
    expect_contains(out, "Verdict: FAIL (1 of 1 gates: min_accuracy)\n");
    assert_string_equal(err, "cleval: gate failed: min_accuracy: 0.7 < limit 0.71 (below it by "
                             "0.01)\n");
    free(out), free(err);

    run_expect((const char *[]){"metrics", "--data", data_path, "--min-accuracy", "0.5",
                                "--min-class-recall", "0.6", NULL},
               1, &out, &err);
    expect_contains(out, "Verdict: FAIL (1 of 2 gates: min_class_recall)\n");
    assert_string_equal(err, "cleval: gate failed: min_class_recall: 0.5 < limit 0.6 (below it "
                             "by 0.1), class 1 (<dog & \"fox\">)\n");
    free(out), free(err);

    /* No gate: no gate lines, and the JSON has no "gates". */
    run_expect((const char *[]){"metrics", "--data", data_path, NULL}, 0, &out, &err);
    assert_null(strstr(out, "Gates:"));
    free(out), free(err);
    cJSON *json =
        run_cleval_json((const char *[]){"metrics", "--data", data_path, "--json", "-", NULL}, 0);
    assert_null(cJSON_GetObjectItem(json, "gates"));
    cJSON_Delete(json);
}

static void test_json_gates(void **state)
{
    (void)state;
    cJSON *json = run_cleval_json((const char *[]){"metrics", "--data", data_path, "--json", "-",
                                                   "--min-accuracy", "0.71", "--min-class-recall",
                                                   "0.5", NULL},
                                  1);
    cJSON *gates = cJSON_GetObjectItem(json, "gates");
    assert_int_equal(cJSON_GetArraySize(gates), 2);
    cJSON *accuracy = cJSON_GetArrayItem(gates, 0), *recall = cJSON_GetArrayItem(gates, 1);
    assert_string_equal(cJSON_GetObjectItem(accuracy, "name")->valuestring, "min_accuracy");
    assert_true(cJSON_GetObjectItem(accuracy, "limit")->valuedouble == 0.71);
    assert_true(cJSON_GetObjectItem(accuracy, "value")->valuedouble == 0.7);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(accuracy, "passed")));
    assert_null(cJSON_GetObjectItem(accuracy, "class"));
    assert_string_equal(cJSON_GetObjectItem(recall, "name")->valuestring, "min_class_recall");
    assert_true(cJSON_GetObjectItem(recall, "value")->valuedouble == 0.5);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(recall, "passed")));
    assert_int_equal(cJSON_GetObjectItem(recall, "class")->valueint, 1);
    assert_string_equal(cJSON_GetObjectItem(recall, "class_name")->valuestring, NAMES[1]);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(json, "passed")));
    cJSON_Delete(json);
}

/* A small well-formedness check: tags nest and close, attribute values are quoted, and no raw
 * '<' or bare '&' appears in text or attributes. */
static void expect_well_formed_xml(const char *xml)
{
    const char *stack[16];
    size_t lengths[16], depth = 0;
    const char *p = xml;
    if (strncmp(p, "<?xml ", 6) == 0) p = strstr(p, "?>") + 2;
    for (; *p; p++) {
        if (*p == '&') {
            const char *entities[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
            bool known = false;
            for (size_t e = 0; e < 5; e++)
                known = known || strncmp(p, entities[e], strlen(entities[e])) == 0;
            if (!known) fail_msg("bare '&' in XML: %.40s", p);
            continue;
        }
        if (*p != '<') continue;
        bool closing = p[1] == '/';
        const char *name = p + 1 + closing;
        size_t n = strcspn(name, " />");
        const char *q = name + n;
        while (*q && *q != '>') {
            if (*q == '<') fail_msg("'<' inside a tag: %.40s", p);
            if (*q == '=') {
                if (q[1] != '"') fail_msg("unquoted attribute: %.40s", q);
                q = strchr(q + 2, '"');
                if (!q) fail_msg("unterminated attribute");
            }
            q++;
        }
        if (!*q) fail_msg("unterminated tag: %.40s", p);
        if (closing) {
            if (depth == 0 || lengths[depth - 1] != n || strncmp(stack[depth - 1], name, n) != 0)
                fail_msg("</%.*s> closes nothing open", (int)n, name);
            depth--;
        } else if (q[-1] != '/') {
            assert_true(depth < 16);
            stack[depth] = name, lengths[depth++] = n;
        }
        p = q;
    }
    if (depth != 0) fail_msg("%zu tag(s) left open", depth);
}

static void test_junit_file(void **state)
{
    (void)state;
    char junit[4096];
    snprintf(junit, sizeof junit, "%s", temp_path("gates.xml"));
    char *out, *err;
    run_expect((const char *[]){"metrics", "--data", data_path, "--min-accuracy", "0.5",
                                "--min-class-recall", "0.6", "--junit", junit, NULL},
               1, &out, &err);
    free(out), free(err);
    char *xml = read_text_file(junit);
    expect_well_formed_xml(xml);
    expect_contains(xml, "<testsuites name=\"cleval\" tests=\"2\" failures=\"1\" errors=\"0\">");
    expect_contains(xml, "<testsuite name=\"cleval metrics\" tests=\"2\" failures=\"1\"");
    expect_contains(xml, "<testcase classname=\"cleval metrics\" name=\"min_accuracy\"/>");
    expect_contains(xml, "<testcase classname=\"cleval metrics\" name=\"min_class_recall\">\n"
                         "      <failure type=\"gate\" message=\"min_class_recall: 0.5 &lt; "
                         "limit 0.6 (below it by 0.1), class 1 (&lt;dog &amp; &quot;fox&quot;"
                         "&gt;)\">value 0.5, limit 0.59999999999999998</failure>\n"
                         "    </testcase>");
    free(xml);

    /* Without gates: a suite of no testcases. */
    run_expect((const char *[]){"metrics", "--data", data_path, "--junit", junit, NULL}, 0, &out,
               &err);
    free(out), free(err);
    xml = read_text_file(junit);
    expect_well_formed_xml(xml);
    expect_contains(xml, "<testsuite name=\"cleval metrics\" tests=\"0\" failures=\"0\"");
    free(xml);
}

static void test_summary_markdown(void **state)
{
    (void)state;
    char md_path[4096];
    snprintf(md_path, sizeof md_path, "%s", temp_path("gates.md"));
    char *out, *err;
    run_expect((const char *[]){"metrics", "--data", data_path, "--min-accuracy", "0.71",
                                "--min-class-recall", "0.5", "--summary-md", md_path, NULL},
               1, &out, &err);
    free(out), free(err);
    char *md = read_text_file(md_path);
    expect_contains(md, "## cleval metrics: FAIL\n\n| metric | value |\n| --- | ---: |\n"
                        "| samples | 10 |\n| classes | 3 |\n| accuracy | 0.7000 |\n");
    expect_contains(md, "| balanced accuracy | 0.7500 |\n");
    expect_contains(md, "| MCC | ");
    expect_contains(md, "| Cohen's kappa (none / linear / quadratic) | ");
    expect_contains(md, "| gate | value | limit | result |\n| --- | ---: | ---: | --- |\n"
                        "| min_accuracy | 0.7 | &ge; 0.71 | **FAIL** (below by 0.01) |\n"
                        "| min_class_recall (class 1: &lt;dog &amp; \"fox\"&gt;) | 0.5 | &ge; "
                        "0.5 | PASS |\n");
    expect_contains(md, "| class | precision | recall | F1 | support |\n");
    expect_contains(md, "| 0: cat | 0.6000 | 0.7500 | 0.6667 | 4 |\n");
    expect_contains(md, "| 2: bird | 1.0000 | 1.0000 | 1.0000 | 2 |\n");
    free(md);
}

static void test_refusals(void **state)
{
    (void)state;
    char json_path[4096];
    snprintf(json_path, sizeof json_path, "%s", temp_path("refused.json"));
    expect_cleval_error(
        (const char *[]){"metrics", "--data", data_path, "--min-accuracy", "1.5", NULL}, 2,
        "--min-accuracy: must be between 0 and 1 (got 1.5)");
    expect_cleval_error(
        (const char *[]){"metrics", "--data", data_path, "--min-class-recall", "-0.1", NULL}, 2,
        "--min-class-recall: must be between 0 and 1 (got -0.1)");
    expect_cleval_error(
        (const char *[]){"metrics", "--data", data_path, "--min-accuracy", "high", NULL}, 2,
        "--min-accuracy: 'high' is not a number");
    expect_cleval_error(
        (const char *[]){"metrics", "--data", data_path, "--junit", data_path, NULL}, 2, "--junit");
    expect_cleval_error(
        (const char *[]){"metrics", "--data", data_path, "--summary-md", data_path, NULL}, 2,
        "refusing to overwrite an input");
    expect_cleval_error((const char *[]){"metrics", "--data", data_path, "--json", json_path,
                                         "--summary-md", json_path, NULL},
                        2, "refusing to write one file twice");
    expect_cleval_error(
        (const char *[]){"compare", data_path, data_path, "--junit", data_path, NULL}, 2,
        "refusing to overwrite an input");
    expect_cleval_error((const char *[]){"merge", data_path, "--junit", "x.xml", NULL}, 2,
                        "unknown flag '--junit'");
    expect_cleval_error((const char *[]){"knn", "--train", data_path, "--data", data_path, "-k",
                                         "1", "--against", "0", "--junit", "x.xml", NULL},
                        2, "--against does not combine with");
}

/* X: one feature, the sample's own index; y as given. */
static const char *write_features(const char *name, const float *x, const int32_t *y, hsize_t n)
{
    const char *path = temp_path(name);
    hid_t f = h5_create(path);
    hsize_t dims[2] = {n, 1};
    h5_write(f, "X", H5T_NATIVE_FLOAT, 2, dims, x, 0, NULL);
    if (y) h5_write(f, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    H5Fclose(f);
    return path;
}

static void test_knn_gates_and_junit(void **state)
{
    (void)state;
    char train[4096], test[4096], unlabelled[4096], junit[4096];
    const float x_train[] = {0, 1, 10, 11}, x_test[] = {0.5f, 1.5f, 9.5f, 10.5f};
    const int32_t y_train[] = {0, 0, 1, 1}, y_test[] = {0, 1, 1, 1}; /* sample 1 is wrong */
    snprintf(train, sizeof train, "%s", write_features("knn_train.h5", x_train, y_train, 4));
    snprintf(test, sizeof test, "%s", write_features("knn_test.h5", x_test, y_test, 4));
    snprintf(unlabelled, sizeof unlabelled, "%s",
             write_features("knn_nolabel.h5", x_test, NULL, 4));
    snprintf(junit, sizeof junit, "%s", temp_path("knn.xml"));
    char *out, *err;
    run_expect((const char *[]){"knn", "--train", train, "--data", test, "-k", "1",
                                "--min-accuracy", "0.75", "--junit", junit, NULL},
               0, &out, &err);
    free(out), free(err);
    char *xml = read_text_file(junit);
    expect_contains(xml, "<testcase classname=\"cleval knn\" name=\"min_accuracy\"/>");
    free(xml);
    run_expect((const char *[]){"knn", "--train", train, "--data", test, "-k", "1",
                                "--min-class-recall", "0.75", NULL},
               1, &out, &err);
    expect_contains(err, "gate failed: min_class_recall: 0.666667 < limit 0.75");
    free(out), free(err);
    /* A gate needs labels: refused after the run, leaving no output behind. */
    expect_cleval_error((const char *[]){"knn", "--train", train, "--data", unlabelled, "-k", "1",
                                         "--min-accuracy", "0.5", "--junit", junit, NULL},
                        2, "need labels (y) in the test set");
}

/* The shipped network on 64 images of the fixture, all labelled 0: the gates are wired on
 * eval too. */
static void test_eval_gates(void **state)
{
    (void)state;
    enum { N = 64 };
    static float x[N * 28 * 28];
    int32_t y[N] = {0};
    hid_t f = H5Fopen(fixture_path("onnx/fmnist_cnn_io.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "X", H5P_DEFAULT), space = H5Dget_space(d);
    hsize_t start[4] = {0, 0, 0, 0}, count[4] = {N, 1, 28, 28};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t mem = H5Screate_simple(4, count, NULL);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, x) >= 0);
    H5Sclose(mem), H5Sclose(space), H5Dclose(d), H5Fclose(f);
    char data[4096], model[4096], md_path[4096];
    snprintf(data, sizeof data, "%s", temp_path("eval_gates.h5"));
    f = h5_create(data);
    h5_write(f, "X", H5T_NATIVE_FLOAT, 4, count, x, 0, NULL);
    hsize_t n = N;
    h5_write(f, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    H5Fclose(f);
    snprintf(model, sizeof model, "%s/../../datasets/fmnist_cnn.onnx", CLEVAL_FIXTURES_DIR);
    snprintf(md_path, sizeof md_path, "%s", temp_path("eval.md"));
    char *out, *err;
    run_expect((const char *[]){"eval", "--model", model, "--data", data, "--quiet",
                                "--min-accuracy", "1", "--summary-md", md_path, NULL},
               1, &out, &err);
    expect_contains(err, "cleval: gate failed: min_accuracy: ");
    expect_contains(out, "FAIL  min_accuracy");
    free(out), free(err);
    char *md = read_text_file(md_path);
    expect_contains(md, "## cleval eval: FAIL\n");
    free(md);
    run_expect((const char *[]){"eval", "--model", model, "--data", data, "--quiet",
                                "--min-accuracy", "0", NULL},
               0, &out, &err);
    free(out), free(err);
}

static void test_compare_and_drift_junit(void **state)
{
    (void)state;
    char a[4096], b[4096], junit[4096];
    snprintf(a, sizeof a, "%s", fixture_path("compare/base_a.h5"));
    snprintf(b, sizeof b, "%s", fixture_path("compare/base_b.h5"));
    snprintf(junit, sizeof junit, "%s", temp_path("compare.xml"));
    char *out, *err;
    run_expect((const char *[]){"compare", a, b, "--max-flip-rate", "0", "--junit", junit, NULL}, 1,
               &out, &err);
    free(out), free(err);
    char *xml = read_text_file(junit);
    expect_well_formed_xml(xml);
    expect_contains(xml, "<testsuite name=\"cleval compare\" tests=\"2\"");
    expect_contains(xml, "<testcase classname=\"cleval compare\" name=\"flip_rate\">\n"
                         "      <failure type=\"gate\" message=\"flip_rate: ");
    expect_contains(xml, "name=\"mcnemar_p\"");
    free(xml);

    snprintf(a, sizeof a, "%s", fixture_path("drift/ref.h5"));
    snprintf(b, sizeof b, "%s", fixture_path("drift/cur.h5"));
    snprintf(junit, sizeof junit, "%s", temp_path("drift.xml"));
    int code = run_cleval((const char *[]){"drift", a, b, "--junit", junit, NULL}, &out, &err);
    free(out), free(err);
    xml = read_text_file(junit);
    expect_well_formed_xml(xml);
    expect_contains(xml, "<testsuite name=\"cleval drift\" tests=\"5\"");
    const char *checks[] = {"class_psi", "class_js", "class_chi2", "confidence_psi",
                            "confidence_js"};
    for (size_t i = 0; i < 5; i++) {
        char testcase[128];
        snprintf(testcase, sizeof testcase, "<testcase classname=\"cleval drift\" name=\"%s\"",
                 checks[i]);
        expect_contains(xml, testcase);
    }
    /* The exit code and the failures agree. */
    assert_int_equal(code, strstr(xml, "<failure") ? 1 : 0);
    free(xml);
}

/* The derived metrics in the JSON and human reports, as the library computes them; an
 * undefined kappa (one class only) is null in the JSON. */
static void test_derived_metrics_in_reports(void **state)
{
    (void)state;
    cleval_confusion cm;
    assert_ok(cleval_confusion_init(&cm, 3));
    for (size_t i = 0; i < 10; i++)
        assert_ok(cleval_counts_add(&cm.counts, (uint32_t)Y[i], (uint32_t)PRED[i], 1));
    cleval_metrics m;
    assert_ok(cleval_metrics_compute(&cm, &m));
    cJSON *json =
        run_cleval_json((const char *[]){"metrics", "--data", data_path, "--json", "-", NULL}, 0);
    assert_true(cJSON_GetObjectItem(json, "balanced_accuracy")->valuedouble == 0.75);
    assert_true(cJSON_GetObjectItem(json, "mcc")->valuedouble == m.mcc);
    cJSON *kappa = cJSON_GetObjectItem(json, "cohen_kappa");
    assert_true(cJSON_GetObjectItem(kappa, "none")->valuedouble ==
                m.cohen_kappa[CLEVAL_KAPPA_NONE]);
    assert_true(cJSON_GetObjectItem(kappa, "linear")->valuedouble ==
                m.cohen_kappa[CLEVAL_KAPPA_LINEAR]);
    assert_true(cJSON_GetObjectItem(kappa, "quadratic")->valuedouble ==
                m.cohen_kappa[CLEVAL_KAPPA_QUADRATIC]);
    cJSON_Delete(json);

    char *out, *err, line[128];
    run_expect((const char *[]){"metrics", "--data", data_path, NULL}, 0, &out, &err);
    expect_contains(out, " weighted avg       0.71      0.70      0.70        10\n\n"
                         "balanced accuracy  0.7500\n");
    snprintf(line, sizeof line, "MCC                %.4f\n", m.mcc);
    expect_contains(out, line);
    snprintf(line, sizeof line, "Cohen's kappa      %.4f none, %.4f linear, %.4f quadratic\n",
             m.cohen_kappa[0], m.cohen_kappa[1], m.cohen_kappa[2]);
    expect_contains(out, line);
    free(out), free(err);
    cleval_metrics_free(&m);
    cleval_confusion_free(&cm);

    const int32_t same[] = {2, 2, 2};
    const char *single = write_labels("single_class.h5", same, same, 3, false);
    json = run_cleval_json((const char *[]){"metrics", "--data", single, "--json", "-", NULL}, 0);
    kappa = cJSON_GetObjectItem(json, "cohen_kappa");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(kappa, "none")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(kappa, "quadratic")));
    assert_true(cJSON_GetObjectItem(json, "mcc")->valuedouble == 0.0);
    assert_true(cJSON_GetObjectItem(json, "balanced_accuracy")->valuedouble == 1.0);
    cJSON_Delete(json);
}

/* merge rebuilds the report, derived metrics included, as the unsharded run gives them. */
static void test_merge_report_has_derived_metrics(void **state)
{
    (void)state;
    char parts[2][4096];
    snprintf(parts[0], sizeof parts[0], "%s", temp_path("part0.h5"));
    snprintf(parts[1], sizeof parts[1], "%s", temp_path("part1.h5"));
    for (int i = 0; i < 2; i++) {
        char shard[8];
        snprintf(shard, sizeof shard, "%d/2", i);
        char *out, *err;
        run_expect((const char *[]){"metrics", "--data", data_path, "--shard", shard, "--save",
                                    parts[i], "--quiet", NULL},
                   0, &out, &err);
        free(out), free(err);
    }
    cJSON *whole =
        run_cleval_json((const char *[]){"metrics", "--data", data_path, "--json", "-", NULL}, 0);
    cJSON *merged =
        run_cleval_json((const char *[]){"merge", parts[0], parts[1], "--json", "-", NULL}, 0);
    assert_non_null(cJSON_GetObjectItem(merged, "balanced_accuracy"));
    assert_true(cJSON_GetObjectItem(merged, "balanced_accuracy")->valuedouble == 0.75);
    const char *keys[] = {"balanced_accuracy", "mcc"};
    for (size_t i = 0; i < 2; i++)
        assert_true(cJSON_GetObjectItem(merged, keys[i])->valuedouble ==
                    cJSON_GetObjectItem(whole, keys[i])->valuedouble);
    assert_true(cJSON_Compare(cJSON_GetObjectItem(merged, "cohen_kappa"),
                              cJSON_GetObjectItem(whole, "cohen_kappa"), true));
    cJSON_Delete(whole);
    cJSON_Delete(merged);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gates_pass_at_the_limit_and_fail_below),
        cmocka_unit_test(test_json_gates),
        cmocka_unit_test(test_junit_file),
        cmocka_unit_test(test_summary_markdown),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_knn_gates_and_junit),
        cmocka_unit_test(test_eval_gates),
        cmocka_unit_test(test_compare_and_drift_junit),
        cmocka_unit_test(test_derived_metrics_in_reports),
        cmocka_unit_test(test_merge_report_has_derived_metrics),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
