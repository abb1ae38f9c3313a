/* --html on the five commands as files (their text; tests/test_html_browser.c renders them in a
 * browser), --summary-md on compare and drift against the values of the scikit-learn/numpy
 * fixtures, and the refusals: exit 2, one line, and no report left behind. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char compare_a[4096], compare_b[4096], drift_ref[4096], drift_cur[4096], named[4096];

static int setup(void **state)
{
    (void)state;
    snprintf(compare_a, sizeof compare_a, "%s", fixture_path("compare/base_a.h5"));
    snprintf(compare_b, sizeof compare_b, "%s", fixture_path("compare/base_b.h5"));
    snprintf(drift_ref, sizeof drift_ref, "%s", fixture_path("drift/ref.h5"));
    snprintf(drift_cur, sizeof drift_cur, "%s", fixture_path("drift/cur.h5"));
    snprintf(named, sizeof named, "%s", fixture_path("metrics/named.h5"));
    return 0;
}

static void run_expect(const char *const *args, int code)
{
    char *out, *err;
    int got = run_cleval(args, &out, &err);
    if (got != code) fail_msg("exit %d (wanted %d); stderr: %s", got, code, err);
    free(out);
    free(err);
}

static void expect_contains(const char *text, const char *needle)
{
    if (!text) fail_msg("no text to find '%s' in", needle);
    if (!strstr(text, needle)) fail_msg("'%s' not found in:\n%s", needle, text);
}

/* The shortest decimal that reads back as `value`, as the JSON report and the page's tooltips
 * write numbers. */
static void shortest_decimal(double value, char *out, size_t size)
{
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(out, size, "%.*g", digits, value);
        if (strtod(out, NULL) == value) return;
    }
}

static double fixture_number(const cJSON *json, const char *key)
{
    const cJSON *item = cJSON_GetObjectItem(json, key);
    if (!cJSON_IsNumber(item)) fail_msg("fixture lacks '%s'", key);
    return item->valuedouble;
}

static void test_compare_summary(void **state)
{
    (void)state;
    char md_path[4096], line[256];
    snprintf(md_path, sizeof md_path, "%s", temp_path("compare.md"));
    run_expect((const char *[]){"compare", compare_a, compare_b, "--max-flip-rate", "0.01",
                                "--summary-md", md_path, NULL},
               1);
    cJSON *expected = load_json(fixture_path("compare/base.json"));
    char *md = read_text_file(md_path);
    expect_contains(md, "## cleval compare: FAIL\n\n| metric | value |\n| --- | ---: |\n"
                        "| samples | 3000 |\n");
    snprintf(line, sizeof line, "| agreement | %.4f |\n", fixture_number(expected, "agreement"));
    expect_contains(md, line);
    double flip_rate = fixture_number(expected, "flip_rate");
    snprintf(line, sizeof line, "| flips (rate) | %.0f (%.4f) |\n",
             fixture_number(expected, "flips"), flip_rate);
    expect_contains(md, line);
    const cJSON *ci = cJSON_GetObjectItem(expected, "accuracy_diff_ci");
    snprintf(line, sizeof line, "| accuracy B - A (95%% interval) | %+.4f (%+.4f, %+.4f) |\n",
             fixture_number(expected, "accuracy_diff"), cJSON_GetArrayItem(ci, 0)->valuedouble,
             cJSON_GetArrayItem(ci, 1)->valuedouble);
    expect_contains(md, line);
    double p = fixture_number(cJSON_GetObjectItem(expected, "mcnemar"), "p_value");
    snprintf(line, sizeof line, "| McNemar p | %.4g |\n", p);
    expect_contains(md, line);
    snprintf(line, sizeof line, "| flip_rate | %.6g | &le; 0.01 | **FAIL** (above by %.6g) |\n",
             flip_rate, flip_rate - 0.01);
    expect_contains(md, line);
    snprintf(line, sizeof line, "| mcnemar_p | %.6g | &ge; 0.05 | **FAIL** (below by %.6g) |\n", p,
             0.05 - p);
    expect_contains(md, line);
    free(md);

    /* Every gate met: PASS. */
    run_expect((const char *[]){"compare", compare_a, compare_b, "--max-flip-rate", "0.5",
                                "--alpha", "0.0001", "--summary-md", md_path, NULL},
               0);
    md = read_text_file(md_path);
    expect_contains(md, "## cleval compare: PASS\n");
    expect_contains(md, "| flip_rate | ");
    assert_null(strstr(md, "FAIL"));
    free(md);
    cJSON_Delete(expected);
}

static void test_drift_summary(void **state)
{
    (void)state;
    char md_path[4096], line[256];
    snprintf(md_path, sizeof md_path, "%s", temp_path("drift.md"));
    run_expect((const char *[]){"drift", drift_ref, drift_cur, "--summary-md", md_path, NULL}, 1);
    cJSON *expected = load_json(fixture_path("drift/ref_cur.json"));
    const cJSON *cls = cJSON_GetObjectItem(expected, "class");
    const cJSON *conf = cJSON_GetObjectItem(expected, "confidence");
    char *md = read_text_file(md_path);
    expect_contains(md, "## cleval drift: FAIL\n\n| metric | value |\n| --- | ---: |\n"
                        "| samples (reference / current) | 4000 / 2999 |\n");
    /* The default limits: PSI 0.2, JS 0.1, alpha 0.05; every check alerts on this pair. */
    const struct {
        const char *name;
        double value, limit;
        bool below;
    } checks[] = {
        {"class_psi", fixture_number(cls, "psi"), 0.2, false},
        {"class_js", fixture_number(cls, "js"), 0.1, false},
        {"class_chi2", fixture_number(cls, "p_value"), 0.05, true},
        {"confidence_psi", fixture_number(conf, "psi"), 0.2, false},
        {"confidence_js", fixture_number(conf, "js"), 0.1, false},
    };
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(expected, "alerts")), 5);
    for (size_t i = 0; i < sizeof checks / sizeof *checks; i++) {
        snprintf(line, sizeof line, "| %s | %.6g | %s %.6g | **FAIL** (%s by %.6g) |\n",
                 checks[i].name, checks[i].value, checks[i].below ? "&ge;" : "&le;",
                 checks[i].limit, checks[i].below ? "below" : "above",
                 checks[i].below ? checks[i].limit - checks[i].value
                                 : checks[i].value - checks[i].limit);
        expect_contains(md, line);
    }
    free(md);

    /* Limits above every value: PASS. */
    run_expect((const char *[]){"drift", drift_ref, drift_cur, "--psi-alert", "100", "--js-alert",
                                "1", "--alpha", "0", "--summary-md", md_path, NULL},
               0);
    md = read_text_file(md_path);
    expect_contains(md, "## cleval drift: PASS\n");
    expect_contains(md, "| warnings (never fail) | class\\_psi "); /* Markdown-escaped */
    free(md);
    cJSON_Delete(expected);
}

/* The page of a metrics run: written whole, with the values of the scikit-learn fixture. */
static void test_metrics_page(void **state)
{
    (void)state;
    char html_path[4096], json_path[4096], cell[128];
    snprintf(html_path, sizeof html_path, "%s", temp_path("named.html"));
    snprintf(json_path, sizeof json_path, "%s", temp_path("named.json"));
    run_expect((const char *[]){"metrics", "--data", named, "--json", json_path, "--html",
                                html_path, "--min-accuracy", "0.9", NULL},
               1);
    cJSON *expected = load_json(fixture_path("metrics/named.json"));
    char *html = read_text_file(html_path);
    expect_contains(html, "<!DOCTYPE html>\n");
    expect_contains(html, "<title>cleval metrics report</title>");
    char exact[40];
    shortest_decimal(fixture_number(expected, "accuracy"), exact, sizeof exact);
    snprintf(cell, sizeof cell, "<th>accuracy</th><td class=\"num\" title=\"%s\">%.4f</td>", exact,
             fixture_number(expected, "accuracy"));
    expect_contains(html, cell);
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(expected, "per_class"), 0);
    snprintf(cell, sizeof cell, "%.4f</td>", fixture_number(first, "f1"));
    expect_contains(html, cell);
    expect_contains(html, "chien \xc3\xa9l\xc3\xa9gant"); /* a UTF-8 class name as it is */
    expect_contains(html, "<span class=\"badge fail\">FAIL</span>");
    expect_contains(html, "</html>\n");
    assert_false(folder_has_temp_files(CLEVAL_TEST_TMPDIR));
    free(html);
    cJSON_Delete(expected);
}

static void test_compare_and_drift_pages(void **state)
{
    (void)state;
    char html_path[4096];
    snprintf(html_path, sizeof html_path, "%s", temp_path("compare.html"));
    run_expect((const char *[]){"compare", compare_a, compare_b, "--html", html_path, NULL}, 1);
    char *html = read_text_file(html_path);
    expect_contains(html, "Flip matrix (row-normalised)");
    expect_contains(html, "<th>agreement</th><td class=\"num\" title=\"0.9716666666666667\">"
                          "0.9717</td>");
    expect_contains(html, "<td>mcnemar_p</td>");
    free(html);
    run_expect((const char *[]){"drift", drift_ref, drift_cur, "--html", html_path, NULL}, 1);
    html = read_text_file(html_path);
    expect_contains(html, "<title>cleval drift report</title>");
    expect_contains(html, "<tr><td>class_psi</td><td class=\"num\" title=\"1.120300908957123\">");
    expect_contains(html, "<span class=\"badge fail\">ALERT</span>");
    expect_contains(html, "Reference and current distributions");
    free(html);
}

static void test_refusals(void **state)
{
    (void)state;
    char json_path[4096], bad_path[4096];
    snprintf(json_path, sizeof json_path, "%s", temp_path("refused.json"));
    snprintf(bad_path, sizeof bad_path, "%s", temp_path("no-such-folder/page.html"));
    unlink(json_path);
    /* A page that cannot be written fails the run and takes the JSON written before it along. */
    expect_cleval_error(
        (const char *[]){"metrics", "--data", named, "--json", json_path, "--html", bad_path, NULL},
        2, "--html");
    assert_int_equal(access(json_path, F_OK), -1);
    expect_cleval_error((const char *[]){"metrics", "--data", named, "--html", named, NULL}, 2,
                        "refusing to overwrite an input");
    expect_cleval_error(
        (const char *[]){"compare", compare_a, compare_b, "--html", compare_b, NULL}, 2,
        "refusing to overwrite an input");
    expect_cleval_error((const char *[]){"drift", drift_ref, drift_cur, "--json", json_path,
                                         "--html", json_path, NULL},
                        2, "refusing to write one file twice");
    expect_cleval_error((const char *[]){"merge", named, "--html", "x.html", NULL}, 2,
                        "unknown flag '--html'");
    expect_cleval_error((const char *[]){"knn", "--train", named, "--data", named, "-k", "1",
                                         "--against", "0", "--html", "x.html", NULL},
                        2, "--against does not combine with");
    assert_false(folder_has_temp_files(CLEVAL_TEST_TMPDIR));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compare_summary), cmocka_unit_test(test_drift_summary),
        cmocka_unit_test(test_metrics_page),    cmocka_unit_test(test_compare_and_drift_pages),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
