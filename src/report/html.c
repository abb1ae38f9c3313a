/* The HTML report (see html.h): the page around the sections, its summary table and gates, and
 * writing it like every other output. */
#include "cleval/html.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "html_internal.h"

/* Inline, so the page needs nothing but itself. */
static const char style[] =
    "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;"
    "padding:0 16px}\n"
    "h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;border-bottom:1px solid #ddd;"
    "padding-bottom:4px;margin-top:28px}h3{font-size:15px;margin:14px 0 6px}\n"
    "table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;"
    "text-align:left}th{background:#f4f4f4}td.num{text-align:right;"
    "font-variant-numeric:tabular-nums}\n"
    ".badge{display:inline-block;padding:1px 8px;border-radius:4px;font-weight:600;color:#fff}"
    ".pass{background:#2e7d32}.fail{background:#c62828}.warn{background:#ef6c00}\n"
    ".verdict{font-size:16px;margin:8px 0}.note{color:#555;font-size:13px}\n"
    ".legend .key{display:inline-block;width:11px;height:11px;margin:0 4px 0 10px}\n"
    ".charts{display:flex;flex-wrap:wrap;gap:32px}\n"
    "svg{display:block;margin:6px 0;overflow:visible}svg text{font-size:11px;fill:#333}"
    "svg text.cell{font-size:10px;fill:#222}svg text.cell.dark{fill:#fff}\n"
    "svg line.grid{stroke:#e4e4e4}svg line.diagonal{stroke:#c62828;stroke-dasharray:4 3}\n"
    "details summary{cursor:pointer;margin:6px 0}\n";

/* A row of the summary table: its label, where its value is in the report, and its decimals
 * (-1: significant digits, for p-values). Rows whose key is absent are left out. */
typedef struct summary_row {
    const char *label, *path;
    int decimals;
} summary_row;

static const summary_row summary_rows[] = {
    {"samples", "n_samples", 0},
    {"reference samples", "n_reference", 0},
    {"current samples", "n_current", 0},
    {"classes", "n_classes", 0},
    {"accuracy", "accuracy", 4},
    {"balanced accuracy", "balanced_accuracy", 4},
    {"macro precision", "macro.precision", 4},
    {"macro recall", "macro.recall", 4},
    {"macro F1", "macro.f1", 4},
    {"weighted precision", "weighted.precision", 4},
    {"weighted recall", "weighted.recall", 4},
    {"weighted F1", "weighted.f1", 4},
    {"micro F1", "micro.f1", 4},
    {"MCC", "mcc", 4},
    {"Cohen's kappa", "cohen_kappa.none", 4},
    {"Cohen's kappa (linear)", "cohen_kappa.linear", 4},
    {"Cohen's kappa (quadratic)", "cohen_kappa.quadratic", 4},
    {"top-k: k", "top_k.k", 0},
    {"top-k accuracy", "top_k.accuracy", 4},
    {"log loss", "log_loss", 4},
    {"Brier score", "brier", 4},
    {"ECE", "calibration.ece", 4},
    {"ROC AUC (macro)", "roc_auc.macro", 4},
    {"ROC AUC (weighted)", "roc_auc.weighted", 4},
    {"average precision (macro)", "average_precision.macro", 4},
    {"average precision (weighted)", "average_precision.weighted", 4},
    {"probabilities", "probabilities", 0},
    {"agreement", "agreement", 4},
    {"flips", "flips", 0},
    {"flip rate", "flip_rate", 4},
    {"accuracy A", "accuracy_a", 4},
    {"accuracy B", "accuracy_b", 4},
    {"accuracy B - A", "accuracy_diff", 4},
    {"95% interval, low", "accuracy_diff_ci.low", 4},
    {"95% interval, high", "accuracy_diff_ci.high", 4},
    {"McNemar b (A right only)", "mcnemar.b", 0},
    {"McNemar c (B right only)", "mcnemar.c", 0},
    {"McNemar p", "mcnemar.p_value", -1},
    {"largest score difference", "max_abs_score_diff", -1},
    {"scores", "score_note", 0},
    {"class PSI", "class.psi", 4},
    {"class JS distance", "class.js", 4},
    {"class chi-squared", "class.chi2", 4},
    {"class chi-squared p", "class.p_value", -1},
    {"confidence PSI", "confidence.psi", 4},
    {"confidence JS distance", "confidence.js", 4},
    {"mean confidence, reference", "confidence.mean_reference", 4},
    {"mean confidence, current", "confidence.mean_current", 4},
    {"mean entropy, reference", "entropy.mean_reference", 4},
    {"mean entropy, current", "entropy.mean_current", 4},
    {"accuracy, reference", "labels.accuracy_reference", 4},
    {"accuracy, current", "labels.accuracy_current", 4},
};

static const summary_row run_rows[] = {
    {"device", "device", 0},
    {"total time (s)", "timing.total_s", 3},
    {"samples per second", "timing.samples_per_s", 1},
    {"MPI ranks", "ranks", 0},
    {"kernel precision", "kernel_precision", 0},
};

static void rows_table(FILE *f, const cJSON *report, const summary_row *rows, size_t n,
                       const char *css_class)
{
    fprintf(f, "<table class=\"%s\">\n", css_class);
    for (size_t i = 0; i < n; i++) {
        const cJSON *item = html_json_at(report, rows[i].path);
        if (!item || cJSON_IsObject(item) || cJSON_IsArray(item)) continue;
        fprintf(f, "<tr><th>%s</th>", rows[i].label);
        if (html_is_number(item)) {
            html_number_cell(f, item, rows[i].decimals);
        } else {
            fputs("<td>", f);
            if (cJSON_IsString(item)) html_put_text(f, item->valuestring);
            if (cJSON_IsBool(item)) fputs(cJSON_IsTrue(item) ? "yes" : "no", f);
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

static void inputs_table(FILE *f, const cleval_html_page *page)
{
    fputs("<table class=\"kv\">\n", f);
    for (size_t i = 0; i < page->n_inputs; i++) {
        if (!page->inputs[i].path) continue;
        fputs("<tr><th>", f);
        html_put_text(f, page->inputs[i].what);
        fputs("</th><td>", f);
        html_put_text(f, page->inputs[i].path);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* Whether the run passed its gates; false in *known when it has none (no verdict to show). */
static bool verdict(const cJSON *report, bool *known)
{
    const cJSON *passed = cJSON_GetObjectItem(report, "passed");
    *known = true;
    if (cJSON_IsBool(passed)) return cJSON_IsTrue(passed);
    if (cJSON_GetObjectItem(report, "alerts")) return html_drift_passed(report);
    *known = false;
    return true;
}

static void gates_section(FILE *f, const cJSON *report)
{
    const cJSON *gates = cJSON_GetObjectItem(report, "gates");
    if (cJSON_GetArraySize(gates) == 0) return;
    html_section_begin(f, "gates", "Gates");
    fputs("<table>\n<tr><th>gate</th><th>value</th><th>limit</th><th>result</th></tr>\n", f);
    for (const cJSON *g = gates->child; g; g = g->next) {
        fputs("<tr><td>", f);
        html_put_text(f, cJSON_GetStringValue(cJSON_GetObjectItem(g, "name")));
        const cJSON *class_name = cJSON_GetObjectItem(g, "class_name");
        if (cJSON_IsString(class_name)) {
            fputs(" (class ", f);
            html_put_text(f, class_name->valuestring);
            fputs(")", f);
        }
        fputs("</td>", f);
        html_number_cell(f, cJSON_GetObjectItem(g, "value"), -1);
        html_number_cell(f, cJSON_GetObjectItem(g, "limit"), -1);
        fputs("<td>", f);
        html_badge(f, cJSON_IsTrue(cJSON_GetObjectItem(g, "passed")), "FAIL");
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    html_section_end(f);
}

static bool has_any(const cJSON *report, const summary_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (html_json_at(report, rows[i].path)) return true;
    return false;
}

static void run_section(FILE *f, const cJSON *report)
{
    if (!has_any(report, run_rows, sizeof run_rows / sizeof *run_rows)) return;
    html_section_begin(f, "run", "Run");
    rows_table(f, report, run_rows, sizeof run_rows / sizeof *run_rows, "kv");
    static const char *const blocks[] = {"model", "knn"};
    for (size_t i = 0; i < sizeof blocks / sizeof *blocks; i++) {
        const cJSON *block = cJSON_GetObjectItem(report, blocks[i]);
        if (!cJSON_IsObject(block)) continue;
        fprintf(f, "<h3>%s</h3>\n", blocks[i]);
        html_members_table(f, block);
    }
    html_section_end(f);
}

static void write_page(FILE *f, const cJSON *report, const cleval_html_page *page)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>cleval ",
          f);
    html_put_text(f, page->command);
    fprintf(f, " report</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>cleval ", style);
    html_put_text(f, page->command);
    fputs(" report</h1>\n", f);
    bool known, passed = verdict(report, &known);
    if (known) {
        fputs("<p class=\"verdict\">Verdict: ", f);
        html_badge(f, passed,
                   page->command && strcmp(page->command, "drift") == 0 ? "ALERT" : "FAIL");
        fputs("</p>\n", f);
    }
    inputs_table(f, page);
    html_section_begin(f, "summary", "Summary");
    rows_table(f, report, summary_rows, sizeof summary_rows / sizeof *summary_rows, "kv");
    html_section_end(f);
    gates_section(f, report);
    html_per_class_section(f, report);
    html_confusion_section(f, report);
    html_predicted_counts_section(f, report);
    html_calibration_section(f, report);
    html_errors_section(f, report);
    html_compare_section(f, report);
    html_drift_section(f, report);
    run_section(f, report);
    fputs("</body>\n</html>\n", f);
}

char *cleval_html_render(const cJSON *report, const cleval_html_page *page)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) return NULL;
    html_memory_watch();
    write_page(f, report, page);
    bool ok = !ferror(f) && !html_memory_failed();
    if (fclose(f) != 0 || !ok) {
        free(text);
        return NULL;
    }
    return text;
}

cleval_status cleval_html_write(const cJSON *report, const cleval_html_page *page, const char *path)
{
    char *text = cleval_html_render(report, page);
    if (!text) return cleval_fail(CLEVAL_ERR_NOMEM, "--html %s: out of memory", path);
    cleval_status status = cleval_output_write_text(path, "--html", text);
    free(text);
    return status;
}
