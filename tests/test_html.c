/* The HTML report rendered from hand-made JSON reports: every text escaped, no URL and no
 * script, the row-normalised heatmap against shares computed here, the most-confused block of a
 * large matrix, sections only for the keys present, and the same page from raw numbers (the
 * tree --json leaves) as from number items. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/html.h"
#include "cleval/report.h"

static const cleval_named_path inputs[] = {{"--data", "runs/<b>&'x\".h5"}};
static const cleval_html_page page = {"metrics", inputs, 1};

/* A metrics report of `n` classes named names[k] (or "c<k>") with the confusion counts. */
static cJSON *metrics_report(uint32_t n, const char *const *names, const double *counts)
{
    cJSON *report = cJSON_CreateObject();
    double total = 0, right = 0;
    cJSON *per_class = cJSON_AddArrayToObject(report, "per_class");
    cJSON *matrix = cJSON_AddArrayToObject(report, "confusion_matrix");
    for (uint32_t t = 0; t < n; t++) {
        cJSON *row = cJSON_CreateArray();
        double support = 0;
        for (uint32_t p = 0; p < n; p++) {
            cJSON_AddItemToArray(row, cJSON_CreateNumber(counts[t * n + p]));
            support += counts[t * n + p];
        }
        total += support;
        right += counts[t * n + t];
        cJSON_AddItemToArray(matrix, row);
        cJSON *entry = cJSON_CreateObject();
        char name[32];
        snprintf(name, sizeof name, "c%u", t);
        cJSON_AddNumberToObject(entry, "label", t);
        cJSON_AddStringToObject(entry, "name", names ? names[t] : name);
        cJSON_AddNumberToObject(entry, "precision", 0.5);
        cJSON_AddNumberToObject(entry, "recall", 0.25);
        cJSON_AddNumberToObject(entry, "f1", 1.0 / 3);
        cJSON_AddNumberToObject(entry, "support", support);
        cJSON_AddItemToArray(per_class, entry);
    }
    cJSON_AddNumberToObject(report, "n_samples", total);
    cJSON_AddNumberToObject(report, "n_classes", n);
    cJSON_AddNumberToObject(report, "accuracy", right / total);
    return report;
}

static char *render(const cJSON *report)
{
    char *html = cleval_html_render(report, &page);
    assert_non_null(html);
    return html;
}

static void expect_text(const char *html, const char *needle, bool present)
{
    if ((strstr(html, needle) != NULL) != present)
        fail_msg("the page %s '%s'", present ? "lacks" : "holds", needle);
}

static void test_text_is_escaped_and_page_has_no_url(void **state)
{
    (void)state;
    const char *names[] = {"<script>alert(1)</script>", "a&b \"q\" 'r'",
                           "bell\a and <img onerror=x>"};
    const double counts[] = {3, 1, 0, 0, 2, 1, 1, 0, 4};
    cJSON *report = metrics_report(3, names, counts);
    cJSON *gates = cJSON_AddArrayToObject(report, "gates");
    cJSON *gate = cJSON_CreateObject();
    cJSON_AddStringToObject(gate, "name", "min_class_recall");
    cJSON_AddNumberToObject(gate, "limit", 0.9);
    cJSON_AddNumberToObject(gate, "value", 0.5);
    cJSON_AddBoolToObject(gate, "passed", false);
    cJSON_AddStringToObject(gate, "class_name", "</td><b>");
    cJSON_AddItemToArray(gates, gate);
    cJSON_AddBoolToObject(report, "passed", false);
    char *html = render(report);
    expect_text(html, "<script", false);
    expect_text(html, "<img", false);
    expect_text(html, "</td><b>", false);
    expect_text(html, "&lt;script&gt;alert(1)&lt;/script&gt;", true);
    expect_text(html, "a&amp;b &quot;q&quot; &#39;r&#39;", true);
    expect_text(html, "bell\\x07 and &lt;img", true); /* control characters written out */
    expect_text(html, "runs/&lt;b&gt;&amp;&#39;x&quot;.h5", true);
    expect_text(html, "&lt;/td&gt;&lt;b&gt;", true);
    /* Self-contained: nothing is fetched and nothing runs. */
    const char *const forbidden[] = {"http://", "https://", "src=", "href=", "url(", "@import"};
    for (size_t i = 0; i < sizeof forbidden / sizeof *forbidden; i++)
        expect_text(html, forbidden[i], false);
    expect_text(html, "FAIL", true);
    cJSON_Delete(report);
    free(html);
}

/* The tooltip of a heatmap cell as a plain reference writes it. */
static void expected_tip(char *out, size_t size, const char *row, const char *col, double count,
                         double total)
{
    snprintf(out, size, "true %s, predicted %s: %.0f of %.0f (%.1f%%)", row, col, count, total,
             100 * count / total);
}

static void test_heatmap_is_row_normalised(void **state)
{
    (void)state;
    const double counts[] = {8, 2, 0, 1, 1, 0, 0, 0, 5};
    cJSON *report = metrics_report(3, NULL, counts);
    char *html = render(report);
    char tip[128], row[8], col[8];
    for (int t = 0; t < 3; t++) {
        double total = 0;
        for (int p = 0; p < 3; p++)
            total += counts[t * 3 + p];
        for (int p = 0; p < 3; p++) {
            snprintf(row, sizeof row, "c%d", t);
            snprintf(col, sizeof col, "c%d", p);
            expected_tip(tip, sizeof tip, row, col, counts[t * 3 + p], total);
            expect_text(html, tip, true);
        }
    }
    /* A full row is the darkest colour; an empty cell stays white. */
    expect_text(html, "fill=\"#08306b\"><title>true c2, predicted c2", true);
    expect_text(html, "fill=\"#ffffff\"><title>true c0, predicted c2", true);
    cJSON_Delete(report);
    free(html);
}

static void test_large_matrix_shows_most_confused_block(void **state)
{
    (void)state;
    enum { N = 25 };
    double counts[N * N] = {0};
    for (int k = 0; k < N; k++)
        counts[k * N + k] = 10;
    counts[3 * N + 7] = 9;
    counts[12 * N + 4] = 5;
    counts[20 * N + 21] = 2;
    cJSON *report = metrics_report(N, NULL, counts);
    char *html = render(report);
    char tip[128];
    expected_tip(tip, sizeof tip, "c3", "c7", 9, 19);
    expect_text(html, tip, true);
    expected_tip(tip, sizeof tip, "c12", "c4", 5, 15);
    expect_text(html, tip, true);
    expected_tip(tip, sizeof tip, "c20", "c21", 2, 12);
    expect_text(html, tip, true);
    expected_tip(tip, sizeof tip, "c21", "c3", 0, 10); /* inside the block */
    expect_text(html, tip, true);
    expect_text(html, "true c0,", false); /* classes outside it */
    expect_text(html, "predicted c24:", false);
    expect_text(html, "the 6 classes of the 3 largest off-diagonal cells of 25 classes", true);
    cJSON_Delete(report);
    free(html);
}

static void test_sections_follow_the_keys(void **state)
{
    (void)state;
    const double counts[] = {3, 1, 1, 4};
    cJSON *report = metrics_report(2, NULL, counts);
    char *html = render(report);
    expect_text(html, "Reliability diagram", false);
    expect_text(html, "ROC AUC", false);
    expect_text(html, "id=\"errors\"", false);
    expect_text(html, "Verdict", false);
    free(html);

    cJSON *calibration = cJSON_AddObjectToObject(report, "calibration");
    cJSON_AddNumberToObject(calibration, "ece", 0.125);
    cJSON *bins = cJSON_AddArrayToObject(calibration, "bins");
    cJSON *bin = cJSON_CreateObject();
    cJSON_AddNumberToObject(bin, "lower", 0.5);
    cJSON_AddNumberToObject(bin, "upper", 1.0);
    cJSON_AddNumberToObject(bin, "count", 9);
    cJSON_AddNumberToObject(bin, "confidence", 0.75);
    cJSON_AddNumberToObject(bin, "accuracy", 0.625);
    cJSON_AddItemToArray(bins, bin);
    cJSON *auc = cJSON_AddObjectToObject(report, "roc_auc");
    cJSON_AddNumberToObject(auc, "macro", 0.96875);
    cJSON_AddNullToObject(auc, "weighted");
    cJSON *errors = cJSON_AddObjectToObject(report, "errors");
    cJSON_AddNumberToObject(errors, "n", 3);
    cJSON *pairs = cJSON_AddArrayToObject(errors, "confused_pairs");
    cJSON *pair = cJSON_CreateObject();
    cJSON_AddNumberToObject(pair, "true", 1);
    cJSON_AddNumberToObject(pair, "pred", 0);
    cJSON_AddNumberToObject(pair, "count", 1);
    cJSON_AddItemToObject(pair, "indices", cJSON_CreateIntArray((const int[]){17}, 1));
    cJSON_AddItemToArray(pairs, pair);
    cJSON_AddBoolToObject(report, "passed", true);
    html = render(report);
    expect_text(html, "Reliability diagram", true);
    expect_text(html,
                "confidence 0.5000 to 1.0000: 9 samples, mean confidence 0.7500, accuracy "
                "0.6250",
                true);
    expect_text(html, "<th>ROC AUC (macro)</th><td class=\"num\" title=\"0.96875\">0.9688</td>",
                true);
    expect_text(html, "<th>ROC AUC (weighted)</th><td class=\"num\" title=\"null\">n/a</td>", true);
    expect_text(html, "<td>1 (c1)</td><td>0 (c0)</td>", true); /* a confused pair, named */
    expect_text(html, "<td>17</td>", true);
    expect_text(html, "PASS", true);
    cJSON_Delete(report);
    free(html);
}

/* Above 40 classes the bars show the 40 of lowest F1 (the table keeps them all). */
static void test_bars_of_many_classes_show_the_lowest_f1(void **state)
{
    (void)state;
    enum { N = 45 };
    double counts[N * N] = {0};
    for (int k = 0; k < N; k++)
        counts[k * N + k] = 1;
    cJSON *report = metrics_report(N, NULL, counts);
    cJSON *per_class = cJSON_GetObjectItem(report, "per_class");
    for (int k = 0; k < N; k++) /* F1 falls with the label: the lowest 40 are c5..c44 */
        cJSON_SetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(per_class, k), "f1"),
                             1.0 - k / 100.0);
    char *html = render(report);
    expect_text(html, "The 40 classes with the lowest F1 of 45.", true);
    expect_text(html, "<title>c4: f1 ", false);
    expect_text(html, "<title>c5: f1 0.9500</title>", true);
    expect_text(html, "<title>c44: f1 0.5600</title>", true);
    expect_text(html, "<tr><td>0</td><td>c0</td>", true); /* the table */
    cJSON_Delete(report);
    free(html);
}

static cJSON *named_value(const char *name, double value, double limit)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddNumberToObject(o, "limit", limit);
    cJSON_AddNumberToObject(o, "value", value);
    return o;
}

/* Drift: each check against its threshold, ALERT or WARN from the report's lists, and above 40
 * classes the class histogram of the 40 whose share moved most. */
static void test_drift_checks_and_histograms(void **state)
{
    (void)state;
    enum { N = 45 };
    cJSON *report = cJSON_CreateObject();
    cJSON *cls = cJSON_AddObjectToObject(report, "class");
    cJSON_AddNumberToObject(cls, "psi", 0.15);
    cJSON_AddNumberToObject(cls, "js", 0.25);
    cJSON_AddNumberToObject(cls, "p_value", 0.5);
    double ref[N], cur[N];
    for (int k = 0; k < N; k++) { /* classes 0..4 keep their count: they moved least */
        ref[k] = 100;
        cur[k] = k < 5 ? 100 : k % 2 ? 150 : 50; /* the same total: shares as counts */
    }
    cJSON_AddItemToObject(cls, "reference", cJSON_CreateDoubleArray(ref, N));
    cJSON_AddItemToObject(cls, "current", cJSON_CreateDoubleArray(cur, N));
    cJSON *conf = cJSON_AddObjectToObject(report, "confidence");
    cJSON_AddNumberToObject(conf, "psi", 0.01);
    cJSON_AddNumberToObject(conf, "js", 0.02);
    const double bins_ref[2] = {3, 1}, bins_cur[2] = {1, 3};
    cJSON_AddItemToObject(conf, "reference", cJSON_CreateDoubleArray(bins_ref, 2));
    cJSON_AddItemToObject(conf, "current", cJSON_CreateDoubleArray(bins_cur, 2));
    cJSON *thresholds = cJSON_AddObjectToObject(report, "thresholds");
    cJSON_AddNumberToObject(thresholds, "psi_warn", 0.1);
    cJSON_AddNumberToObject(thresholds, "psi_alert", 0.2);
    cJSON_AddNumberToObject(thresholds, "js_alert", 0.1);
    cJSON_AddNumberToObject(thresholds, "alpha", 0.05);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(report, "alerts"),
                         named_value("class_js", 0.25, 0.1));
    cJSON_AddItemToArray(cJSON_AddArrayToObject(report, "warnings"),
                         named_value("class_psi", 0.15, 0.1));
    cleval_html_page drift_page = {"drift", NULL, 0};
    char *html = cleval_html_render(report, &drift_page);
    assert_non_null(html);
    expect_text(html, "Verdict: <span class=\"badge fail\">ALERT</span>", true);
    expect_text(html,
                "<tr><td>class_psi</td><td class=\"num\" title=\"0.15\">0.15</td>"
                "<td class=\"num\">&le; 0.2</td><td><span class=\"badge warn\">WARN",
                true);
    expect_text(html,
                "<tr><td>class_js</td><td class=\"num\" title=\"0.25\">0.25</td>"
                "<td class=\"num\">&le; 0.1</td><td><span class=\"badge fail\">ALERT",
                true);
    expect_text(html,
                "<tr><td>class_chi2</td><td class=\"num\" title=\"0.5\">0.5</td>"
                "<td class=\"num\">&ge; 0.05</td><td><span class=\"badge pass\">PASS",
                true);
    expect_text(html, "The 40 classes whose share moved most, of 45.", true);
    expect_text(html, "<title>reference 4: ", false);
    expect_text(html, "<title>reference 5: ", true);
    char tip[96]; /* class 44's share in the current run, as numpy would compute it */
    double total = 0;
    for (int k = 0; k < N; k++)
        total += cur[k];
    snprintf(tip, sizeof tip, "<title>current 44: %.2f%%</title>", 100 * cur[44] / total);
    expect_text(html, tip, true);
    expect_text(html, "<title>current 0.50-1.00: 75.00%</title>", true);
    cJSON_Delete(report);
    free(html);
}

/* --json turns the numbers of the tree into raw items; the page must not change. */
static void test_raw_numbers_render_the_same(void **state)
{
    (void)state;
    const double counts[] = {5, 1, 0, 2, 7, 1, 0, 3, 11};
    cJSON *report = metrics_report(3, NULL, counts);
    cJSON_AddNumberToObject(report, "mcc", 0.1 + 0.2);
    char *before = render(report);
    assert_ok(cleval_report_write_json(report, temp_path("raw.json")));
    assert_true(cJSON_IsRaw(cJSON_GetObjectItem(report, "accuracy")));
    char *after = render(report);
    expect_text(after, "title=\"0.30000000000000004\">0.3000</td>", true);
    expect_text(before, "title=\"0.30000000000000004\">0.3000</td>", true);
    assert_string_equal(before, after);
    cJSON_Delete(report);
    free(before);
    free(after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_is_escaped_and_page_has_no_url),
        cmocka_unit_test(test_heatmap_is_row_normalised),
        cmocka_unit_test(test_large_matrix_shows_most_confused_block),
        cmocka_unit_test(test_sections_follow_the_keys),
        cmocka_unit_test(test_bars_of_many_classes_show_the_lowest_f1),
        cmocka_unit_test(test_drift_checks_and_histograms),
        cmocka_unit_test(test_raw_numbers_render_the_same),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
