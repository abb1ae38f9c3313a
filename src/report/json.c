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
#include "json_matrix.h"

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
        /* Its nonzero cells are listed with memory of their own: a report without its matrix
         * would pass for a whole one, so running out of memory fails the report. */
        cJSON *matrix = cm ? cleval_report_counts_json(&cm->counts) : NULL;
        if (cm && !matrix) {
            cJSON_Delete(root);
            return NULL;
        }
        if (matrix) cJSON_AddItemToObject(root, "confusion_matrix", matrix);
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

/* The tree's text with the matrices still as placeholders; NULL when out of memory. */
static char *print_tree(cJSON *json)
{
    return make_numbers_exact(json) ? cJSON_Print(json) : NULL;
}

/* A growing string (the library's report text). */
typedef struct text_buffer {
    char *text;
    size_t used, size;
} text_buffer;

static bool append_text(void *user, const char *bytes, size_t n)
{
    text_buffer *b = user;
    if (b->used + n + 1 > b->size) {
        size_t size = b->size ? b->size : 4096;
        while (size < b->used + n + 1)
            size *= 2;
        char *grown = realloc(b->text, size);
        if (!grown) return false;
        b->text = grown;
        b->size = size;
    }
    memcpy(b->text + b->used, bytes, n);
    b->used += n;
    b->text[b->used] = '\0';
    return true;
}

char *cleval_report_json_text(cJSON *json)
{
    char *text = print_tree(json);
    if (!text || !report_json_has_matrix(text)) return text;
    text_buffer b = {0};
    bool ok = report_json_expand(text, append_text, &b);
    free(text);
    if (ok) return b.text;
    free(b.text);
    return NULL;
}

static bool write_stream(void *user, const char *bytes, size_t n)
{
    return fwrite(bytes, 1, n, (FILE *)user) == n;
}

typedef struct temp_sink {
    cleval_output_temp *temp;
    cleval_status status;
} temp_sink;

static bool write_temp(void *user, const char *bytes, size_t n)
{
    temp_sink *sink = user;
    sink->status = cleval_output_temp_write(sink->temp, bytes, n, "--json");
    return sink->status == CLEVAL_OK;
}

/* The report and its final newline to an open stream; false on a write error. */
static bool print_to_stream(const char *text, FILE *f)
{
    return report_json_expand(text, write_stream, f) && fputc('\n', f) != EOF;
}

cleval_status cleval_report_write_json(cJSON *json, const char *path)
{
    char *text = print_tree(json);
    if (!text)
        return cleval_fail(CLEVAL_ERR_NOMEM, "--json %s: out of memory printing the report", path);
    cleval_status status = CLEVAL_OK;
    if (strcmp(path, "-") == 0) {
        if (!print_to_stream(text, stdout) || fflush(stdout) == EOF)
            status = cleval_fail(CLEVAL_ERR_IO, "writing the JSON report to stdout failed: %s",
                                 strerror(errno));
    } else if (cleval_output_in_place(path)) {
        /* A device, pipe or name in /dev: written directly (see cleval_output_write_text). */
        struct stat st;
        bool folder = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        FILE *f = folder ? NULL : fopen(path, "w");
        bool ok = f && print_to_stream(text, f);
        if (f) ok = fclose(f) == 0 && ok;
        if (!ok)
            status = cleval_fail(CLEVAL_ERR_IO, "--json %s: cannot write: %s", path,
                                 folder ? "is a directory" : strerror(errno));
    } else {
        /* Under a temporary renamed at the end: the final name never holds a partial report,
         * and the matrices are expanded straight into the file. */
        cleval_output_temp temp;
        status = cleval_output_temp_create(path, "--json", &temp);
        temp_sink sink = {&temp, CLEVAL_OK};
        if (status == CLEVAL_OK) {
            bool ok = report_json_expand(text, write_temp, &sink) && write_temp(&sink, "\n", 1);
            if (ok)
                status = cleval_output_temp_commit(&temp, path, "--json");
            else {
                status = sink.status != CLEVAL_OK
                             ? sink.status
                             : cleval_fail(CLEVAL_ERR_NOMEM,
                                           "--json %s: out of memory printing the report", path);
                cleval_output_temp_discard(&temp);
            }
        }
    }
    free(text);
    return status;
}
