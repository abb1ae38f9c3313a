/* The charts of a metrics report on the HTML page: per-class bars, the confusion heatmap (also
 * compare's flip matrix), the reliability diagram with the confidence histogram, and the error
 * lists. Each reads its keys from the JSON report tree. */
#include "html_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/report.h"

enum {
    MAX_BAR_CLASSES = 40,   /* classes in the per-class chart; beyond, the lowest F1 */
    OPEN_TABLE_CLASSES = 20 /* the per-class table starts folded above this */
};

static const char *const metric_keys[3] = {"precision", "recall", "f1"};
static const char *const metric_colours[3] = {"#4e79a7", "#f28e2b", "#59a14f"};

static void class_bars(FILE *f, const cJSON *report, const cJSON *per_class, const uint32_t *shown,
                       uint32_t n_shown)
{
    const double left = 160, bar_h = 7, row_h = 3 * bar_h + 9, width = 360, top = 8;
    char name[256];
    svg_begin(f, (int)(left + width + 70), (int)(top + row_h * n_shown + 4),
              "precision, recall and F1 per class");
    for (uint32_t i = 0; i < n_shown; i++) {
        const cJSON *entry = cJSON_GetArrayItem(per_class, (int)shown[i]);
        double y = top + row_h * i;
        html_class_name(report, shown[i], name, sizeof name);
        svg_text(f, left - 6, y + 1.5 * bar_h + 4, "end", name);
        for (int m = 0; m < 3; m++) {
            double v = html_number(cJSON_GetObjectItem(entry, metric_keys[m]));
            double w = v > 0 ? width * (v > 1 ? 1 : v) : 0;
            svg_rect_tip_begin(f, left, y + bar_h * m, w, bar_h - 1, metric_colours[m]);
            html_put_text(f, name);
            fprintf(f, ": %s ", metric_keys[m]);
            html_put_number(f, v, 4);
            svg_rect_tip_end(f);
        }
        char value[32];
        snprintf(value, sizeof value, "F1 %.4f", html_number(cJSON_GetObjectItem(entry, "f1")));
        svg_text(f, left + width + 6, y + 1.5 * bar_h + 4, "start", value);
    }
    svg_end(f);
    fputs("<p class=\"legend\">", f);
    for (int m = 0; m < 3; m++)
        fprintf(f, "<span class=\"key\" style=\"background:%s\"></span>%s ", metric_colours[m],
                metric_keys[m]);
    fputs("</p>\n", f);
}

static void class_table(FILE *f, const cJSON *report, const cJSON *per_class, uint32_t n)
{
    fprintf(f, "<details%s><summary>Per-class table (%u classes)</summary>\n<table>\n",
            n <= OPEN_TABLE_CLASSES ? " open" : "", n);
    fputs("<tr><th>label</th><th>name</th><th>precision</th><th>recall</th><th>F1</th>"
          "<th>support</th></tr>\n",
          f);
    char name[256];
    for (uint32_t k = 0; k < n; k++) {
        const cJSON *entry = cJSON_GetArrayItem(per_class, (int)k);
        fprintf(f, "<tr><td>%u</td><td>", k);
        html_put_text(f, html_class_name(report, k, name, sizeof name));
        fputs("</td>", f);
        for (int m = 0; m < 3; m++)
            html_number_cell(f, cJSON_GetObjectItem(entry, metric_keys[m]), 4);
        html_number_cell(f, cJSON_GetObjectItem(entry, "support"), 0);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n</details>\n", f);
}

void html_per_class_section(FILE *f, const cJSON *report)
{
    const cJSON *per_class = cJSON_GetObjectItem(report, "per_class");
    uint32_t n = (uint32_t)cJSON_GetArraySize(per_class);
    if (!cJSON_IsArray(per_class) || n == 0) return;
    uint32_t *shown = html_malloc(sizeof *shown * n);
    double *f1 = html_malloc(sizeof *f1 * n);
    if (!shown || !f1) {
        free(shown);
        free(f1);
        return;
    }
    for (uint32_t k = 0; k < n; k++)
        f1[k] = html_number(html_json_at(cJSON_GetArrayItem(per_class, (int)k), "f1"));
    uint32_t n_shown = html_pick_smallest(f1, n, MAX_BAR_CLASSES, shown);
    free(f1);
    html_section_begin(f, "per-class", "Per class");
    if (n_shown < n) fprintf(f, "<p>The %u classes with the lowest F1 of %u.</p>\n", n_shown, n);
    class_bars(f, report, per_class, shown, n_shown);
    class_table(f, report, per_class, n);
    html_section_end(f);
    free(shown);
}

/* A matrix as its nonzero cells in row-major order: a report's matrix is mostly zeros when it
 * has many classes (a label of 9000 in a 4-row file), so the page never holds C^2 values. */
typedef struct heat_cell {
    uint32_t row, col;
    double count;
} heat_cell;

typedef struct heat_matrix {
    uint32_t n;
    heat_cell *cells;
    size_t n_cells;
} heat_matrix;

/* The cells of a parsed report's matrix: an array of n arrays of n numbers. */
static bool read_rows(const cJSON *matrix, heat_matrix *m)
{
    m->n = (uint32_t)cJSON_GetArraySize(matrix);
    size_t capacity = 0;
    uint32_t r = 0;
    for (const cJSON *row = matrix->child; row; row = row->next, r++) {
        if (!cJSON_IsArray(row) || (uint32_t)cJSON_GetArraySize(row) != m->n) return false;
        uint32_t c = 0;
        for (const cJSON *item = row->child; item; item = item->next, c++) {
            double v = html_number(item);
            if (v == 0) continue;
            if (m->n_cells == capacity) {
                capacity = capacity ? 2 * capacity : 64;
                heat_cell *grown = realloc(m->cells, capacity * sizeof *grown);
                if (!grown) return false;
                m->cells = grown;
            }
            m->cells[m->n_cells++] = (heat_cell){r, c, v};
        }
    }
    return true;
}

/* The matrix of the report: the placeholder of cleval_report_counts_json (a report being
 * written), or the arrays of a parsed report. False when it is neither (or empty). */
static bool read_matrix(const cJSON *matrix, heat_matrix *m)
{
    *m = (heat_matrix){0};
    uint32_t rows, cols;
    cleval_count_cell *cells;
    size_t n;
    cleval_status status = cleval_report_matrix_cells(matrix, &rows, &cols, &cells, &n);
    if (status == CLEVAL_ERR_NOMEM) html_memory_lost();
    if (status == CLEVAL_OK) {
        m->n = rows;
        m->cells = html_malloc((n ? n : 1) * sizeof *m->cells);
        for (size_t i = 0; m->cells && i < n; i++)
            m->cells[i] = (heat_cell){cells[i].row, cells[i].col, (double)cells[i].count};
        m->n_cells = n;
        free(cells);
        if (m->cells && rows == cols && rows > 0) return true;
    } else if (cJSON_IsArray(matrix) && read_rows(matrix, m) && m->n > 0) {
        return true;
    }
    free(m->cells);
    *m = (heat_matrix){0};
    return false;
}

/* The first cell at or after (row, col): a binary search of the row-major cells. */
static size_t heat_find(const heat_matrix *m, uint32_t row, uint32_t col)
{
    size_t lo = 0, hi = m->n_cells;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const heat_cell *c = &m->cells[mid];
        if (c->row < row || (c->row == row && c->col < col))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static double heat_count(const heat_matrix *m, uint32_t row, uint32_t col)
{
    size_t at = heat_find(m, row, col);
    return at < m->n_cells && m->cells[at].row == row && m->cells[at].col == col
               ? m->cells[at].count
               : 0;
}

static double heat_row_total(const heat_matrix *m, uint32_t row)
{
    double total = 0;
    for (size_t at = heat_find(m, row, 0); at < m->n_cells && m->cells[at].row == row; at++)
        total += m->cells[at].count;
    return total;
}

/* The largest off-diagonal cells, largest first (ties: lower row, then lower column), as
 * indices into m->cells; returns how many (cells of count 0 are not confusions). */
static uint32_t top_pairs(const heat_matrix *m, size_t *pairs, uint32_t want)
{
    uint32_t found = 0;
    const heat_cell *cells = m->cells;
    for (size_t i = 0; i < m->n_cells; i++) {
        if (cells[i].row == cells[i].col || !(cells[i].count > 0)) continue;
        if (found == want && cells[i].count <= cells[pairs[found - 1]].count) continue;
        uint32_t at = found < want ? found++ : found - 1;
        while (at > 0 && cells[pairs[at - 1]].count < cells[i].count) {
            pairs[at] = pairs[at - 1];
            at--;
        }
        pairs[at] = i;
    }
    return found;
}

/* Classes of the heatmap into `shown` (label order): all, or the most-confused block. */
static uint32_t heatmap_classes(const heat_matrix *m, uint32_t *shown, size_t *pairs,
                                uint32_t *n_pairs)
{
    uint32_t n = m->n;
    *n_pairs = 0;
    if (n <= CLEVAL_REPORT_MAX_MATRIX_CLASSES) {
        for (uint32_t k = 0; k < n; k++)
            shown[k] = k;
        return n;
    }
    *n_pairs = top_pairs(m, pairs, CLEVAL_REPORT_TOP_PAIRS);
    uint32_t count = 0;
    for (uint32_t p = 0; p < *n_pairs; p++) {
        uint32_t ends[2] = {m->cells[pairs[p]].row, m->cells[pairs[p]].col};
        for (int e = 0; e < 2; e++) {
            uint32_t at = 0;
            while (at < count && shown[at] < ends[e])
                at++;
            if (at < count && shown[at] == ends[e]) continue;
            memmove(shown + at + 1, shown + at, sizeof *shown * (count - at));
            shown[at] = ends[e];
            count++;
        }
    }
    return count;
}

static void heatmap_svg(FILE *f, const cJSON *report, const heat_matrix *m, const uint32_t *shown,
                        uint32_t n_shown, const char *rows_are, const char *columns_are)
{
    const double left = 150, top = 80, cell = n_shown <= 12 ? 34 : 24;
    char name[256], colour[8], text[32];
    svg_begin(f, (int)(left + cell * n_shown + 10), (int)(top + cell * n_shown + 10),
              "row-normalised matrix");
    for (uint32_t j = 0; j < n_shown; j++) { /* column labels, slanted */
        fprintf(f, "<text class=\"tick\" transform=\"translate(%.1f,%.1f) rotate(-50)\">",
                left + cell * j + cell / 2, top - 6);
        html_put_text(f, html_class_name(report, shown[j], name, sizeof name));
        fputs("</text>\n", f);
    }
    for (uint32_t i = 0; i < n_shown; i++) {
        double total = heat_row_total(m, shown[i]);
        double y = top + cell * i;
        char row_name[256];
        html_class_name(report, shown[i], row_name, sizeof row_name);
        svg_text(f, left - 6, y + cell / 2 + 4, "end", row_name);
        for (uint32_t j = 0; j < n_shown; j++) {
            double count = heat_count(m, shown[i], shown[j]), share = total > 0 ? count / total : 0;
            html_heat_colour(share, colour);
            svg_rect_tip_begin(f, left + cell * j, y, cell - 1, cell - 1, colour);
            fprintf(f, "%s ", rows_are);
            html_put_text(f, row_name);
            fprintf(f, ", %s ", columns_are);
            html_put_text(f, html_class_name(report, shown[j], name, sizeof name));
            fprintf(f, ": %.0f of %.0f (%.1f%%)", count, total, 100 * share);
            svg_rect_tip_end(f);
            if (count > 0) {
                snprintf(text, sizeof text, "%.0f", 100 * share);
                fprintf(f,
                        "<text class=\"cell%s\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s"
                        "</text>\n",
                        share > 0.5 ? " dark" : "", left + cell * j + cell / 2, y + cell / 2 + 4,
                        text);
            }
        }
    }
    svg_end(f);
}

void html_heatmap(FILE *f, const cJSON *report, const cJSON *matrix, const char *rows_are,
                  const char *columns_are)
{
    heat_matrix m;
    uint32_t *shown = read_matrix(matrix, &m) ? html_malloc(sizeof *shown * m.n) : NULL;
    uint32_t n = m.n;
    size_t pairs[CLEVAL_REPORT_TOP_PAIRS];
    uint32_t n_pairs;
    if (!shown) {
        free(m.cells);
        fputs("<p>No matrix.</p>\n", f);
        return;
    }
    uint32_t n_shown = heatmap_classes(&m, shown, pairs, &n_pairs);
    if (n_shown == 0) {
        fprintf(f, "<p>%u classes and no off-diagonal count: nothing to show.</p>\n", n);
    } else {
        if (n_shown < n)
            fprintf(f,
                    "<p>The most-confused block: the %u classes of the %u largest off-diagonal "
                    "cells of %u classes.</p>\n",
                    n_shown, n_pairs, n);
        fprintf(f,
                "<p class=\"note\">Rows: %s; columns: %s. Each cell shows its percentage of "
                "its row; hover for the count.</p>\n",
                rows_are, columns_are);
        heatmap_svg(f, report, &m, shown, n_shown, rows_are, columns_are);
    }
    free(shown);
    free(m.cells);
}

void html_confusion_section(FILE *f, const cJSON *report)
{
    const cJSON *matrix = cJSON_GetObjectItem(report, "confusion_matrix");
    if (!matrix) return;
    html_section_begin(f, "confusion", "Confusion matrix (row-normalised)");
    html_heatmap(f, report, matrix, "true", "predicted");
    html_section_end(f);
}

/* The reliability diagram: each bin's accuracy against its confidence, with the diagonal of a
 * perfectly calibrated model. */
static void reliability_svg(FILE *f, const cJSON *bins)
{
    const double left = 50, top = 10, size = 300;
    svg_begin(f, (int)(left + size + 20), (int)(top + size + 40), "reliability diagram");
    char text[32];
    for (int tick = 0; tick <= 4; tick++) {
        double v = tick / 4.0;
        svg_line(f, left, top + size * (1 - v), left + size, top + size * (1 - v), "grid");
        snprintf(text, sizeof text, "%.2f", v);
        svg_text(f, left - 4, top + size * (1 - v) + 4, "end", text);
        svg_text(f, left + size * v, top + size + 16, "middle", text);
    }
    for (const cJSON *bin = bins->child; bin; bin = bin->next) {
        double lower = html_number(cJSON_GetObjectItem(bin, "lower"));
        double upper = html_number(cJSON_GetObjectItem(bin, "upper"));
        double count = html_number(cJSON_GetObjectItem(bin, "count"));
        double accuracy = html_number(cJSON_GetObjectItem(bin, "accuracy"));
        double confidence = html_number(cJSON_GetObjectItem(bin, "confidence"));
        if (!(count > 0) || isnan(lower) || isnan(upper)) continue;
        double x = left + size * lower, w = size * (upper - lower), h = size * accuracy;
        svg_rect_tip_begin(f, x, top + size - h, w - 1, h, "#4e79a7");
        fprintf(f, "confidence %.4f to %.4f: %.0f samples, mean confidence %.4f, accuracy %.4f",
                lower, upper, count, confidence, accuracy);
        svg_rect_tip_end(f);
    }
    svg_line(f, left, top + size, left + size, top, "diagonal");
    svg_text(f, left + size / 2, top + size + 34, "middle", "confidence (accuracy: bar height)");
    svg_end(f);
}

void html_calibration_section(FILE *f, const cJSON *report)
{
    const cJSON *bins = html_json_at(report, "calibration.bins");
    uint32_t n = (uint32_t)cJSON_GetArraySize(bins);
    if (!cJSON_IsArray(bins) || n == 0) return;
    html_section_begin(f, "calibration", "Calibration");
    fputs("<p>Expected calibration error ", f);
    html_put_number(f, html_number(html_json_at(report, "calibration.ece")), 4);
    fputs(".</p>\n<div class=\"charts\"><div>\n<h3>Reliability diagram</h3>\n", f);
    reliability_svg(f, bins);
    fputs("</div><div>\n<h3>Confidence histogram</h3>\n", f);
    double *counts = html_calloc(n, sizeof *counts);
    char(*labels)[40] = html_calloc(n, sizeof *labels);
    const char **label_list = html_calloc(n, sizeof *label_list);
    if (counts && labels && label_list) {
        uint32_t b = 0;
        for (const cJSON *bin = bins->child; bin; bin = bin->next, b++) {
            counts[b] = html_number(cJSON_GetObjectItem(bin, "count"));
            snprintf(labels[b], sizeof labels[b], "%.2f-%.2f",
                     html_number(cJSON_GetObjectItem(bin, "lower")),
                     html_number(cJSON_GetObjectItem(bin, "upper")));
            label_list[b] = labels[b];
        }
        html_series series = {"samples", "#4e79a7", counts};
        html_column_chart(f, "confidence histogram", label_list, n, &series, 1, false);
    }
    free(counts);
    free(labels);
    free(label_list);
    fputs("</div></div>\n", f);
    html_section_end(f);
}

void html_errors_section(FILE *f, const cJSON *report)
{
    const cJSON *errors = cJSON_GetObjectItem(report, "errors");
    if (!cJSON_IsObject(errors)) return;
    static const struct {
        const char *key, *title;
    } lists[] = {{"confused_pairs", "Most confused pairs (sample indices)"},
                 {"confident_wrong", "Most confident wrong predictions"},
                 {"unconfident_right", "Least confident right predictions"}};
    html_section_begin(f, "errors", "Errors");
    const cJSON *n = cJSON_GetObjectItem(errors, "n");
    if (html_is_number(n)) {
        fputs("<p>Up to ", f);
        html_put_number(f, html_number(n), 0);
        fputs(" samples per list.</p>\n", f);
    }
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        const cJSON *list = cJSON_GetObjectItem(errors, lists[i].key);
        if (!list) continue;
        fprintf(f, "<h3>%s</h3>\n", lists[i].title);
        html_object_table(f, report, list);
    }
    html_section_end(f);
}

/* Labels "0", "1 (cat)"... of classes[0..n) for a chart (free with free_labels). */
char **html_class_labels(const cJSON *report, const uint32_t *classes, uint32_t n)
{
    char **labels = html_calloc(n ? n : 1, sizeof *labels);
    char name[256];
    for (uint32_t i = 0; labels && i < n; i++) {
        html_class_name(report, classes[i], name, sizeof name);
        size_t size = strlen(name) + 1;
        labels[i] = html_malloc(size);
        if (!labels[i]) {
            html_free_labels(labels, i);
            return NULL;
        }
        memcpy(labels[i], name, size);
    }
    return labels;
}

void html_free_labels(char **labels, uint32_t n)
{
    for (uint32_t i = 0; labels && i < n; i++)
        free(labels[i]);
    free(labels);
}

void html_predicted_counts_section(FILE *f, const cJSON *report)
{
    const cJSON *counts = cJSON_GetObjectItem(report, "predicted_class_counts");
    uint32_t n = (uint32_t)cJSON_GetArraySize(counts);
    if (!cJSON_IsArray(counts) || n == 0) return;
    html_section_begin(f, "predicted", "Predicted classes (no labels in the test set)");
    double *values = html_malloc(sizeof *values * n), *keys = html_malloc(sizeof *keys * n);
    uint32_t *shown = html_malloc(sizeof *shown * n);
    if (values && keys && shown) {
        for (uint32_t k = 0; k < n; k++) {
            values[k] = html_number(cJSON_GetArrayItem(counts, (int)k));
            keys[k] = -values[k];
        }
        uint32_t n_shown = html_pick_smallest(keys, n, MAX_BAR_CLASSES, shown);
        if (n_shown < n) fprintf(f, "<p>The %u most predicted of %u classes.</p>\n", n_shown, n);
        for (uint32_t i = 0; i < n_shown; i++)
            keys[i] = values[shown[i]];
        char **labels = html_class_labels(report, shown, n_shown);
        html_series series = {"predicted", "#4e79a7", keys};
        if (labels)
            html_column_chart(f, "predicted class counts", (const char *const *)labels, n_shown,
                              &series, 1, false);
        html_free_labels(labels, n_shown);
    }
    free(values);
    free(keys);
    free(shown);
    html_section_end(f);
}
