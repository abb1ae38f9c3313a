/* The pieces the HTML report is made of (see html_internal.h): escaped text, numbers read from
 * the JSON report tree, tables of JSON objects and the SVG primitives of the charts. */
#include "html_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "text/printable.h"

enum { LIST_PREVIEW = 10 }; /* entries of an array shown in a table cell */

/* Set when an allocation for the page being rendered failed (the page is then incomplete):
 * per thread, as each thread renders its own pages. */
static _Thread_local bool out_of_memory;

void html_memory_watch(void)
{
    out_of_memory = false;
}

bool html_memory_failed(void)
{
    return out_of_memory;
}

void html_memory_lost(void)
{
    out_of_memory = true;
}

void *html_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p) out_of_memory = true;
    return p;
}

void *html_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) out_of_memory = true;
    return p;
}

static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

void html_put_text(FILE *f, const char *s)
{
    char *printable = cleval_text_printable_dup(s ? s : "");
    if (!printable) {
        out_of_memory = true;
        return;
    }
    put_escaped(f, printable);
    free(printable);
}

const cJSON *html_json_at(const cJSON *root, const char *path)
{
    char key[128];
    const cJSON *item = root;
    while (item && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof key) return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        item = cJSON_GetObjectItemCaseSensitive(item, key);
        path += n + (path[n] == '.');
    }
    return item;
}

bool html_is_number(const cJSON *item)
{
    if (cJSON_IsNumber(item) || cJSON_IsNull(item)) return true;
    if (!cJSON_IsRaw(item) || !item->valuestring) return false;
    char *end;
    strtod(item->valuestring, &end);
    return strcmp(item->valuestring, "null") == 0 || (end != item->valuestring && *end == '\0');
}

double html_number(const cJSON *item)
{
    if (cJSON_IsNumber(item)) return item->valuedouble;
    if (!cJSON_IsRaw(item) || !html_is_number(item) || strcmp(item->valuestring, "null") == 0)
        return NAN;
    return strtod(item->valuestring, NULL);
}

void html_put_number(FILE *f, double value, int decimals)
{
    if (isnan(value))
        fputs("n/a", f);
    else if (decimals < 0)
        fprintf(f, "%.4g", value);
    else
        fprintf(f, "%.*f", decimals, value);
}

void html_number_cell(FILE *f, const cJSON *item, int decimals)
{
    double value = html_number(item);
    char exact[40];
    report_exact_decimal(value, exact, sizeof exact); /* what --json writes */
    fprintf(f, "<td class=\"num\" title=\"%s\">", exact);
    html_put_number(f, value, decimals);
    fputs("</td>", f);
}

const char *html_class_name(const cJSON *report, uint32_t k, char *buf, size_t size)
{
    const cJSON *entry = cJSON_GetArrayItem(cJSON_GetObjectItem(report, "per_class"), (int)k);
    const cJSON *name = cJSON_GetObjectItem(entry, "name");
    if (cJSON_IsString(name))
        snprintf(buf, size, "%s", name->valuestring);
    else
        snprintf(buf, size, "%u", k);
    return buf;
}

uint32_t html_pick_smallest(const double *keys, uint32_t n, uint32_t limit, uint32_t *out)
{
    if (n <= limit) {
        for (uint32_t k = 0; k < n; k++)
            out[k] = k;
        return n;
    }
    bool *taken = html_calloc(n, sizeof *taken);
    if (!taken) return 0;
    for (uint32_t pick = 0; pick < limit; pick++) {
        uint32_t best = UINT32_MAX;
        for (uint32_t k = 0; k < n; k++) {
            if (taken[k]) continue;
            bool smaller = best == UINT32_MAX || (isnan(keys[k]) && !isnan(keys[best])) ||
                           keys[k] < keys[best];
            if (smaller) best = k;
        }
        taken[best] = true;
    }
    uint32_t count = 0;
    for (uint32_t k = 0; k < n; k++)
        if (taken[k]) out[count++] = k;
    free(taken);
    return count;
}

void html_section_begin(FILE *f, const char *id, const char *title)
{
    fprintf(f, "<section id=\"%s\">\n<h2>", id);
    html_put_text(f, title);
    fputs("</h2>\n", f);
}

void html_section_end(FILE *f)
{
    fputs("</section>\n", f);
}

void html_badge(FILE *f, bool passed, const char *fail_word)
{
    fprintf(f, "<span class=\"badge %s\">%s</span>", passed ? "pass" : "fail",
            passed ? "PASS" : fail_word);
}

void svg_begin(FILE *f, int width, int height, const char *label)
{
    fprintf(f,
            "<svg width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"",
            width, height, width, height);
    html_put_text(f, label);
    fputs("\">\n", f);
}

void svg_end(FILE *f)
{
    fputs("</svg>\n", f);
}

void svg_rect(FILE *f, double x, double y, double w, double h, const char *fill)
{
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n", x, y,
            w, h, fill);
}

void svg_rect_tip_begin(FILE *f, double x, double y, double w, double h, const char *fill)
{
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>", x,
            y, w, h, fill);
}

void svg_rect_tip_end(FILE *f)
{
    fputs("</title></rect>\n", f);
}

void svg_text(FILE *f, double x, double y, const char *anchor, const char *text)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">", x, y, anchor);
    html_put_text(f, text);
    fputs("</text>\n", f);
}

void svg_line(FILE *f, double x1, double y1, double x2, double y2, const char *css_class)
{
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"%s\"/>\n", x1, y1, x2,
            y2, css_class);
}

void html_heat_colour(double share, char out[8])
{
    if (!(share > 0)) share = 0; /* NaN too */
    if (share > 1) share = 1;
    /* From white to #08306b, the darkest blue of the usual sequential "Blues" scale. */
    int r = (int)lround(255 - share * (255 - 8)), g = (int)lround(255 - share * (255 - 48)),
        b = (int)lround(255 - share * (255 - 107));
    snprintf(out, 8, "#%02x%02x%02x", r, g, b);
}

void html_column_chart(FILE *f, const char *label, const char *const *labels, uint32_t n,
                       const html_series *series, int n_series, bool percent)
{
    const double left = 56, top = 12, plot_h = 180, bottom = 46, group_gap = 6;
    double column_w = n * n_series > 40 ? 8 : 16;
    double group_w = column_w * n_series + group_gap;
    double max = 0;
    for (int s = 0; s < n_series; s++)
        for (uint32_t i = 0; i < n; i++)
            if (series[s].values[i] > max) max = series[s].values[i];
    if (!(max > 0)) max = 1;
    int width = (int)(left + group_w * n + 10), height = (int)(top + plot_h + bottom);
    svg_begin(f, width, height, label);
    char text[64];
    for (int tick = 0; tick <= 4; tick++) { /* the y axis: 0, 1/4 ... of the largest value */
        double value = max * tick / 4, y = top + plot_h - plot_h * tick / 4;
        svg_line(f, left, y, width - 10, y, "grid");
        if (percent)
            snprintf(text, sizeof text, "%.1f%%", 100 * value);
        else
            snprintf(text, sizeof text, "%.4g", value);
        svg_text(f, left - 4, y + 4, "end", text);
    }
    for (uint32_t i = 0; i < n; i++) {
        double x0 = left + group_w * i + group_gap / 2;
        for (int s = 0; s < n_series; s++) {
            double v = series[s].values[i] > 0 ? series[s].values[i] : 0, h = plot_h * v / max;
            svg_rect_tip_begin(f, x0 + column_w * s, top + plot_h - h, column_w - 1, h,
                               series[s].colour);
            html_put_text(f, series[s].name);
            fputs(" ", f);
            html_put_text(f, labels[i]);
            if (percent)
                fprintf(f, ": %.2f%%", 100 * v);
            else
                fprintf(f, ": %.6g", v);
            svg_rect_tip_end(f);
        }
        fprintf(f, "<text class=\"tick\" transform=\"translate(%.1f,%.1f) rotate(40)\">",
                x0 + column_w * n_series / 2, top + plot_h + 12);
        html_put_text(f, labels[i]);
        fputs("</text>\n", f);
    }
    svg_end(f);
    if (n_series > 1) {
        fputs("<p class=\"legend\">", f);
        for (int s = 0; s < n_series; s++) {
            fprintf(f, "<span class=\"key\" style=\"background:%s\"></span>", series[s].colour);
            html_put_text(f, series[s].name);
            fputs(" ", f);
        }
        fputs("</p>\n", f);
    }
}

/* Decimals for a value of unknown kind: none for an integer (a count, an index), else 4. */
static int natural_decimals(double value)
{
    return value == floor(value) && fabs(value) < 1e15 ? 0 : 4;
}

/* Whether a key of a table names a class ("true", "pred", "pred_a"...): shown with its name. */
static bool is_class_key(const char *key)
{
    static const char *const keys[] = {"true", "pred", "y", "pred_a", "pred_b", "class", "label"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (strcmp(key, keys[i]) == 0) return true;
    return false;
}

/* A table cell of any flat value: a number, a string, a boolean or a short list; a class
 * label with its name from `report`. */
static void value_cell(FILE *f, const cJSON *report, const cJSON *item)
{
    if (report && item && item->string && is_class_key(item->string) && html_is_number(item)) {
        double k = html_number(item);
        char name[256], label[32];
        snprintf(label, sizeof label, "%.0f", k);
        const char *text = k >= 0 && k < 4294967296.0
                               ? html_class_name(report, (uint32_t)k, name, sizeof name)
                               : label;
        fprintf(f, "<td>%s", label);
        if (strcmp(text, label) != 0) {
            fputs(" (", f);
            html_put_text(f, text);
            fputs(")", f);
        }
        fputs("</td>", f);
        return;
    }
    if (html_is_number(item)) {
        html_number_cell(f, item, natural_decimals(html_number(item)));
        return;
    }
    fputs("<td>", f);
    if (cJSON_IsString(item))
        html_put_text(f, item->valuestring);
    else if (cJSON_IsBool(item))
        fputs(cJSON_IsTrue(item) ? "yes" : "no", f);
    else if (cJSON_IsArray(item)) {
        int n = cJSON_GetArraySize(item), shown = 0;
        for (const cJSON *e = item->child; e && shown < LIST_PREVIEW; e = e->next, shown++) {
            if (shown) fputs(", ", f);
            if (html_is_number(e))
                html_put_number(f, html_number(e), natural_decimals(html_number(e)));
            else if (cJSON_IsString(e))
                html_put_text(f, e->valuestring);
        }
        if (n > shown) fprintf(f, " &hellip; (%d in all)", n);
    }
    fputs("</td>", f);
}

void html_object_table(FILE *f, const cJSON *report, const cJSON *array)
{
    const cJSON *first = cJSON_IsArray(array) ? array->child : NULL;
    if (!first) {
        fputs("<p>None.</p>\n", f);
        return;
    }
    fputs("<table>\n<tr>", f);
    for (const cJSON *key = first->child; key; key = key->next) {
        fputs("<th>", f);
        html_put_text(f, key->string);
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    for (const cJSON *row = first; row; row = row->next) {
        fputs("<tr>", f);
        for (const cJSON *key = first->child; key; key = key->next)
            value_cell(f, report, cJSON_GetObjectItemCaseSensitive(row, key->string));
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

void html_members_table(FILE *f, const cJSON *object)
{
    fputs("<table class=\"kv\">\n", f);
    for (const cJSON *m = object ? object->child : NULL; m; m = m->next) {
        if (cJSON_IsObject(m) || cJSON_IsArray(m)) continue;
        fputs("<tr><th>", f);
        html_put_text(f, m->string);
        fputs("</th>", f);
        value_cell(f, NULL, m);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}
