/* What the parts of the HTML report share: escaped text, reading the JSON report tree (whose
 * numbers may already be raw items), and the SVG pieces every chart is drawn with. Internal to
 * src/report. */
#ifndef CLEVAL_REPORT_HTML_INTERNAL_H
#define CLEVAL_REPORT_HTML_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cJSON.h>

/* Allocations of the sections: a failed one is remembered (for this thread) from
 * html_memory_watch() on, and html_memory_failed() then tells the page is incomplete. */
void html_memory_watch(void);
bool html_memory_failed(void);
void *html_malloc(size_t size);
/* Marks the page incomplete: an allocation made elsewhere on its behalf failed. */
void html_memory_lost(void);
void *html_calloc(size_t n, size_t size);

/* Writes `s` for HTML text or a quoted attribute: made valid UTF-8 with control characters
 * written out (cleval_text_printable), then & < > " ' as entities. */
void html_put_text(FILE *f, const char *s);

/* The item at a dotted path ("macro.f1") of an object, or NULL. */
const cJSON *html_json_at(const cJSON *root, const char *path);

/* Whether `item` is a number: a number item, or the raw item cleval_report_write_json makes of
 * one; null (what JSON holds for NaN), as an item or raw, counts as a number: NaN. */
bool html_is_number(const cJSON *item);

/* The value of a number (html_is_number), NaN for anything else. */
double html_number(const cJSON *item);

/* Writes a number with `decimals` decimals (4 significant digits when decimals < 0, for
 * p-values), NaN as "n/a". */
void html_put_number(FILE *f, double value, int decimals);

/* A table cell holding a number (html_put_number) whose tooltip is its exact value. */
void html_number_cell(FILE *f, const cJSON *item, int decimals);

/* The name of class k as the report holds it (per_class[k].name), else its label; written to
 * buf (valid until the next call with it). */
const char *html_class_name(const cJSON *report, uint32_t k, char *buf, size_t size);

/* Writes "<h2>title</h2>" opening a <section>; html_section_end closes it. */
void html_section_begin(FILE *f, const char *id, const char *title);
void html_section_end(FILE *f);

/* A "PASS" or "FAIL" badge. */
void html_badge(FILE *f, bool passed, const char *fail_word);

/* The indices of the `limit` smallest of keys[0..n) (all when n <= limit; NaN counts as the
 * smallest; ties: the lower index), in index order into out[]; returns how many. */
uint32_t html_pick_smallest(const double *keys, uint32_t n, uint32_t limit, uint32_t *out);

/* SVG: an image of width x height with an accessible name. */
void svg_begin(FILE *f, int width, int height, const char *label);
void svg_end(FILE *f);
/* A rectangle; svg_rect_tip_begin leaves its <title> (the tooltip) open for the caller's text,
 * which svg_rect_tip_end closes. */
void svg_rect(FILE *f, double x, double y, double w, double h, const char *fill);
void svg_rect_tip_begin(FILE *f, double x, double y, double w, double h, const char *fill);
void svg_rect_tip_end(FILE *f);
/* Text (escaped) anchored "start", "middle" or "end" at (x, y). */
void svg_text(FILE *f, double x, double y, const char *anchor, const char *text);
void svg_line(FILE *f, double x1, double y1, double x2, double y2, const char *css_class);

/* The heatmap of a square matrix of counts (rows: `rows_are`, columns: `columns_are`), each
 * cell coloured by its share of its row, its tooltip giving the count; class names from
 * `report`. Above CLEVAL_REPORT_MAX_MATRIX_CLASSES classes, only the most-confused block: the
 * classes of the CLEVAL_REPORT_TOP_PAIRS largest off-diagonal cells (shares still of the whole
 * row). */
void html_heatmap(FILE *f, const cJSON *report, const cJSON *matrix, const char *rows_are,
                  const char *columns_are);

/* The heatmap colour of a share in [0, 1]: white to dark blue, "#rrggbb" into out[8]. */
void html_heat_colour(double share, char out[8]);

/* One series of a column chart: its name, colour and n values. */
typedef struct html_series {
    const char *name;
    const char *colour;
    const double *values;
} html_series;

/* A column chart: n groups labelled labels[i], one column per series in each, heights scaled
 * to the largest value; values are fractions shown as percentages when `percent`. Each column's
 * tooltip names its series, group and value. */
void html_column_chart(FILE *f, const char *label, const char *const *labels, uint32_t n,
                       const html_series *series, int n_series, bool percent);

/* A table of an array of flat objects: one column per key of the first object, arrays shown as
 * their first entries joined by commas, class labels ("true", "pred"...) with their names from
 * `report` (may be NULL). */
void html_object_table(FILE *f, const cJSON *report, const cJSON *array);

/* A two-column table of a flat object's members (nested objects and arrays left out). */
void html_members_table(FILE *f, const cJSON *object);

/* Heap labels "0", "cat"... of the classes[i] (names from `report`), for a chart; NULL when out
 * of memory. Free with html_free_labels. */
char **html_class_labels(const cJSON *report, const uint32_t *classes, uint32_t n);
void html_free_labels(char **labels, uint32_t n);

/* The sections of the page, each written only when its keys are in the report. */
void html_per_class_section(FILE *f, const cJSON *report);
void html_confusion_section(FILE *f, const cJSON *report);
void html_calibration_section(FILE *f, const cJSON *report);
void html_errors_section(FILE *f, const cJSON *report);
void html_predicted_counts_section(FILE *f, const cJSON *report);
void html_compare_section(FILE *f, const cJSON *report);
void html_drift_section(FILE *f, const cJSON *report);
/* The drift checks against their thresholds; whether none raised an alert. */
bool html_drift_passed(const cJSON *report);

#endif
