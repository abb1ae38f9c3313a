/* The JSON report of docs/contract.md, and atomic writing of JSON documents. */
#include "cleval/report.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleval/output.h"
#include "decimal.h"

static cJSON *prf_object(const cleval_prf *prf)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "precision", prf->precision);
    cJSON_AddNumberToObject(o, "recall", prf->recall);
    cJSON_AddNumberToObject(o, "f1", prf->f1);
    return o;
}

/* Cohen's kappa by weighting; an undefined one (NaN) is written as null. */
static cJSON *kappa_object(const cleval_metrics *m)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "none", m->cohen_kappa[CLEVAL_KAPPA_NONE]);
    cJSON_AddNumberToObject(o, "linear", m->cohen_kappa[CLEVAL_KAPPA_LINEAR]);
    cJSON_AddNumberToObject(o, "quadratic", m->cohen_kappa[CLEVAL_KAPPA_QUADRATIC]);
    return o;
}

static cJSON *timing_object(const cleval_run_timing *timing)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "total_s", timing->total_s);
    cJSON_AddNumberToObject(o, "samples_per_s",
                            timing->total_s > 0 ? (double)timing->n_samples / timing->total_s : 0);
    return o;
}

static cJSON *per_class_array(const cleval_metrics *m, const cleval_class_names *names)
{
    cJSON *list = cJSON_CreateArray();
    for (uint32_t k = 0; list && k < m->n_classes; k++) {
        const cleval_class_metrics *c = &m->per_class[k];
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddNumberToObject(o, "label", k);
        if (names && names->names && k < names->count)
            cJSON_AddStringToObject(o, "name", names->names[k]);
        else {
            char label[16];
            snprintf(label, sizeof label, "%u", k);
            cJSON_AddStringToObject(o, "name", label);
        }
        cJSON_AddNumberToObject(o, "precision", c->prf.precision);
        cJSON_AddNumberToObject(o, "recall", c->prf.recall);
        cJSON_AddNumberToObject(o, "f1", c->prf.f1);
        cJSON_AddNumberToObject(o, "support", (double)c->support);
        cJSON_AddItemToArray(list, o);
    }
    return list;
}

/* The decimal text of a count, as report_exact_decimal writes it for (double)value: the digits
 * themselves below 2^53 (every count of a real run), without a printf call per cell. */
static size_t count_text(uint64_t value, char *out)
{
    if (value >= UINT64_C(9007199254740992)) {
        report_exact_decimal((double)value, out, 40);
        return strlen(out);
    }
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    for (size_t i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    return n;
}

/* One row as the raw text "[a, b, c]", exactly as cJSON_Print() would print an array of those
 * numbers; NULL when out of memory. */
static cJSON *counts_row(const uint64_t *row, uint32_t n)
{
    size_t size = 3 + (size_t)n * 42, at = 0;
    char *text = cJSON_malloc(size);
    if (!text) return NULL;
    text[at++] = '[';
    for (uint32_t k = 0; k < n; k++) {
        if (k) {
            text[at++] = ',';
            text[at++] = ' ';
        }
        at += count_text(row[k], text + at);
    }
    text[at++] = ']';
    text[at] = '\0';
    /* cJSON_CreateRaw copies the text: the copy is its exact length, not the worst case. */
    cJSON *item = cJSON_CreateRaw(text);
    cJSON_free(text);
    return item;
}

cJSON *cleval_report_counts_json(const uint64_t *counts, uint32_t n)
{
    cJSON *rows = cJSON_CreateArray();
    for (uint32_t r = 0; rows && r < n; r++) {
        cJSON *row = counts_row(counts + (size_t)r * n, n);
        if (!row) {
            cJSON_Delete(rows);
            return NULL;
        }
        cJSON_AddItemToArray(rows, row);
    }
    return rows;
}

cJSON *cleval_report_json(const cleval_metrics *m, const cleval_confusion *cm,
                          const cleval_class_names *names, uint64_t n_samples, uint32_t n_classes,
                          const cleval_run_timing *timing)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddNumberToObject(root, "n_samples", (double)n_samples);
    cJSON_AddNumberToObject(root, "n_classes", n_classes);
    if (m) {
        cJSON_AddNumberToObject(root, "accuracy", m->accuracy);
        cJSON_AddItemToObject(root, "macro", prf_object(&m->macro));
        cJSON_AddItemToObject(root, "weighted", prf_object(&m->weighted));
        cJSON_AddItemToObject(root, "micro", prf_object(&m->micro));
        cJSON_AddNumberToObject(root, "balanced_accuracy", m->balanced_accuracy);
        cJSON_AddNumberToObject(root, "mcc", m->mcc);
        cJSON_AddItemToObject(root, "cohen_kappa", kappa_object(m));
        cJSON_AddItemToObject(root, "per_class", per_class_array(m, names));
        if (cm)
            cJSON_AddItemToObject(root, "confusion_matrix",
                                  cleval_report_counts_json(cm->counts, cm->n_classes));
    }
    if (timing) {
        cJSON_AddStringToObject(root, "device", timing->device ? timing->device : "");
        cJSON_AddItemToObject(root, "timing", timing_object(timing));
    }
    return root;
}

/* JSON numbers carry every bit: cJSON's own printing settles for 15 digits when they are "close
 * enough". */
void report_exact_decimal(double value, char *out, size_t size)
{
    if (!isfinite(value)) {
        snprintf(out, size, "null"); /* JSON has no NaN or Inf */
        return;
    }
    if (value == floor(value) && fabs(value) < 9007199254740992.0) { /* counts: 60000, not 6e+04 */
        snprintf(out, size, "%.0f", value);
        return;
    }
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(out, size, "%.*g", digits, value);
        if (strtod(out, NULL) == value) return;
    }
}

/* Turns every number of the tree into its exact text (a raw item); false when out of
 * memory. */
static bool make_numbers_exact(cJSON *item)
{
    for (; item; item = item->next) {
        if (cJSON_IsNumber(item)) {
            char text[40];
            report_exact_decimal(item->valuedouble, text, sizeof text);
            char *copy = malloc(strlen(text) + 1);
            if (!copy) return false;
            strcpy(copy, text);
            item->type = cJSON_Raw;
            item->valuestring = copy;
        } else if (item->child) {
            if (!make_numbers_exact(item->child)) return false;
        }
    }
    return true;
}

char *cleval_report_json_text(cJSON *json)
{
    return make_numbers_exact(json) ? cJSON_Print(json) : NULL;
}

cleval_status cleval_report_write_json(cJSON *json, const char *path)
{
    cleval_status status = CLEVAL_OK;
    char *text = cleval_report_json_text(json);
    if (!text)
        return cleval_fail(CLEVAL_ERR_NOMEM, "--json %s: out of memory printing the report", path);
    if (strcmp(path, "-") == 0) {
        if (fputs(text, stdout) == EOF || fputc('\n', stdout) == EOF || fflush(stdout) == EOF)
            status = cleval_fail(CLEVAL_ERR_IO, "writing the JSON report to stdout failed: %s",
                                 strerror(errno));
        free(text);
        return status;
    }
    /* The newline ends the file as a text file should. */
    size_t length = strlen(text);
    char *line = realloc(text, length + 2);
    if (!line) {
        free(text);
        return cleval_fail(CLEVAL_ERR_NOMEM, "--json %s: out of memory printing the report", path);
    }
    memcpy(line + length, "\n", 2);
    status = cleval_output_write_text(path, "--json", line);
    free(line);
    return status;
}
