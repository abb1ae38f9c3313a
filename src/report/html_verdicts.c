/* The sections of the HTML page for `compare` (flip matrix, top flips and score differences)
 * and `drift` (its checks against their thresholds, the reference and current histograms, the
 * findings and the recall shifts). */
#include "html_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_DRIFT_CLASSES = 40 }; /* classes in the class histogram; beyond, those that moved most */

void html_compare_section(FILE *f, const cJSON *report)
{
    const cJSON *matrix = cJSON_GetObjectItem(report, "flip_matrix");
    if (matrix) {
        html_section_begin(f, "flips", "Flip matrix (row-normalised)");
        html_heatmap(f, report, matrix, "class in A", "class in B");
        html_section_end(f);
    }
    const cJSON *flips = cJSON_GetObjectItem(report, "top_flips");
    if (flips) {
        html_section_begin(f, "top-flips", "Top flips");
        html_object_table(f, report, flips);
        html_section_end(f);
    }
    const cJSON *scores = cJSON_GetObjectItem(report, "score_diff");
    if (cJSON_IsObject(scores)) {
        html_section_begin(f, "score-diff", "Score differences");
        html_members_table(f, scores);
        const cJSON *top = cJSON_GetObjectItem(scores, "top");
        if (top) {
            fputs("<h3>Largest differences</h3>\n", f);
            html_object_table(f, report, top);
        }
        html_section_end(f);
    }
}

/* The alert checks of drift: the value, its limit, and whether a low value is the bad one. */
static const struct drift_check {
    const char *name, *value, *limit;
    bool below;
} drift_checks[] = {
    {"class_psi", "class.psi", "thresholds.psi_alert", false},
    {"class_js", "class.js", "thresholds.js_alert", false},
    {"class_chi2", "class.p_value", "thresholds.alpha", true},
    {"confidence_psi", "confidence.psi", "thresholds.psi_alert", false},
    {"confidence_js", "confidence.js", "thresholds.js_alert", false},
};

static bool listed(const cJSON *list, const char *name)
{
    for (const cJSON *e = cJSON_IsArray(list) ? list->child : NULL; e; e = e->next) {
        const cJSON *n = cJSON_GetObjectItem(e, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) return true;
    }
    return false;
}

bool html_drift_passed(const cJSON *report)
{
    return cJSON_GetArraySize(cJSON_GetObjectItem(report, "alerts")) == 0;
}

static void drift_checks_table(FILE *f, const cJSON *report)
{
    const cJSON *alerts = cJSON_GetObjectItem(report, "alerts");
    const cJSON *warnings = cJSON_GetObjectItem(report, "warnings");
    fputs("<table>\n<tr><th>check</th><th>value</th><th>limit</th><th>result</th></tr>\n", f);
    for (size_t i = 0; i < sizeof drift_checks / sizeof *drift_checks; i++) {
        const struct drift_check *c = &drift_checks[i];
        const cJSON *value = html_json_at(report, c->value);
        if (!value) continue;
        fprintf(f, "<tr><td>%s</td>", c->name);
        html_number_cell(f, value, -1);
        fprintf(f, "<td class=\"num\">%s ", c->below ? "&ge;" : "&le;");
        html_put_number(f, html_number(html_json_at(report, c->limit)), -1);
        fputs("</td><td>", f);
        if (listed(alerts, c->name))
            html_badge(f, false, "ALERT");
        else if (listed(warnings, c->name))
            fputs("<span class=\"badge warn\">WARN</span>", f);
        else
            html_badge(f, true, "");
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n<p class=\"note\">Thresholds: ", f);
    static const char *const keys[] = {"psi_warn", "psi_alert", "js_alert", "alpha"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        fprintf(f, "%s%s ", i ? ", " : "", keys[i]);
        html_put_number(
            f, html_number(html_json_at(cJSON_GetObjectItem(report, "thresholds"), keys[i])), -1);
    }
    fputs(". A warning never fails the run.</p>\n", f);
}

/* Shares of the two count arrays `reference` and `current` (each divided by its sum). */
static bool read_shares(const cJSON *reference, const cJSON *current, uint32_t n, double *p,
                        double *q)
{
    double sums[2] = {0, 0};
    const cJSON *sides[2] = {reference, current};
    double *out[2] = {p, q};
    for (int s = 0; s < 2; s++) {
        if ((uint32_t)cJSON_GetArraySize(sides[s]) != n) return false;
        uint32_t k = 0;
        for (const cJSON *e = sides[s]->child; e; e = e->next, k++) {
            out[s][k] = html_number(e);
            sums[s] += out[s][k];
        }
        for (k = 0; k < n; k++)
            out[s][k] = sums[s] > 0 ? out[s][k] / sums[s] : 0;
    }
    return true;
}

static void paired_chart(FILE *f, const char *label, const char *const *labels, uint32_t n,
                         const double *p, const double *q)
{
    html_series series[2] = {{"reference", "#9c9c9c", p}, {"current", "#e15759", q}};
    html_column_chart(f, label, labels, n, series, 2, true);
}

/* The class histogram: every class, or the MAX_DRIFT_CLASSES whose share moved most. */
static void class_histogram(FILE *f, const cJSON *report)
{
    const cJSON *ref = html_json_at(report, "class.reference");
    const cJSON *cur = html_json_at(report, "class.current");
    uint32_t n = (uint32_t)cJSON_GetArraySize(ref);
    if (n == 0) return;
    double *p = html_malloc(sizeof *p * n), *q = html_malloc(sizeof *q * n),
           *keys = html_malloc(sizeof *keys * n);
    uint32_t *shown = html_malloc(sizeof *shown * n);
    if (p && q && keys && shown && read_shares(ref, cur, n, p, q)) {
        for (uint32_t k = 0; k < n; k++)
            keys[k] = -fabs(q[k] - p[k]);
        uint32_t n_shown = html_pick_smallest(keys, n, MAX_DRIFT_CLASSES, shown);
        fputs("<h3>Predicted classes</h3>\n", f);
        if (n_shown < n)
            fprintf(f, "<p>The %u classes whose share moved most, of %u.</p>\n", n_shown, n);
        for (uint32_t i = 0; i < n_shown; i++) { /* compact in place: shown[i] >= i */
            p[i] = p[shown[i]];
            q[i] = q[shown[i]];
        }
        char **labels = html_class_labels(report, shown, n_shown);
        if (labels)
            paired_chart(f, "predicted class shares", (const char *const *)labels, n_shown, p, q);
        html_free_labels(labels, n_shown);
    }
    free(p);
    free(q);
    free(keys);
    free(shown);
}

static void confidence_histogram(FILE *f, const cJSON *report)
{
    const cJSON *ref = html_json_at(report, "confidence.reference");
    const cJSON *cur = html_json_at(report, "confidence.current");
    uint32_t n = (uint32_t)cJSON_GetArraySize(ref);
    if (n == 0) return;
    double *p = html_malloc(sizeof *p * n), *q = html_malloc(sizeof *q * n);
    char(*text)[32] = html_malloc(sizeof *text * n);
    const char **labels = html_malloc(sizeof *labels * n);
    if (p && q && text && labels && read_shares(ref, cur, n, p, q)) {
        for (uint32_t b = 0; b < n; b++) { /* equal bins over [0, 1] */
            snprintf(text[b], sizeof text[b], "%.2f-%.2f", (double)b / n, (double)(b + 1) / n);
            labels[b] = text[b];
        }
        fputs("<h3>Confidence</h3>\n", f);
        paired_chart(f, "confidence shares", labels, n, p, q);
    }
    free(p);
    free(q);
    free(text);
    free(labels);
}

void html_drift_section(FILE *f, const cJSON *report)
{
    if (!cJSON_GetObjectItem(report, "thresholds")) return;
    html_section_begin(f, "drift-checks", "Drift checks");
    drift_checks_table(f, report);
    const cJSON *findings = cJSON_GetObjectItem(report, "findings");
    if (cJSON_GetArraySize(findings) > 0) {
        fputs("<h3>Findings</h3>\n<ul>\n", f);
        for (const cJSON *line = findings->child; line; line = line->next) {
            fputs("<li>", f);
            html_put_text(f, cJSON_GetStringValue(line));
            fputs("</li>\n", f);
        }
        fputs("</ul>\n", f);
    }
    html_section_end(f);
    html_section_begin(f, "drift-histograms", "Reference and current distributions");
    class_histogram(f, report);
    confidence_histogram(f, report);
    html_section_end(f);
    const cJSON *recall = html_json_at(report, "labels.per_class");
    if (recall) {
        html_section_begin(f, "recall-shift", "Recall per class");
        html_object_table(f, report, recall);
        html_section_end(f);
    }
}
