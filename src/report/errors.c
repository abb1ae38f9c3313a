/* The error analysis (--errors N) in the JSON and human reports. */
#include "cleval/report.h"
#include "report_internal.h"

#include <string.h>

_Static_assert((int)CLEVAL_ERRORS_TOP_PAIRS == (int)CLEVAL_REPORT_TOP_PAIRS,
               "the error analysis lists the pairs the report names");

static cJSON *sample_list_json(const cleval_error_sample *samples, uint32_t n)
{
    cJSON *list = cJSON_CreateArray();
    for (uint32_t i = 0; list && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddNumberToObject(o, "index", (double)samples[i].index);
        cJSON_AddNumberToObject(o, "true", samples[i].true_class);
        cJSON_AddNumberToObject(o, "pred", samples[i].predicted_class);
        cJSON_AddNumberToObject(o, "confidence", samples[i].confidence);
        cJSON_AddItemToArray(list, o);
    }
    return list;
}

void cleval_report_errors_json(cJSON *root, const cleval_errors *e)
{
    cJSON *errors = cJSON_AddObjectToObject(root, "errors");
    if (!errors) return;
    cJSON_AddNumberToObject(errors, "n", e->n);
    cJSON *pairs = cJSON_AddArrayToObject(errors, "confused_pairs");
    for (uint32_t i = 0; pairs && i < e->n_pairs; i++) {
        const cleval_confused_samples *p = &e->pairs[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddNumberToObject(o, "true", p->true_class);
        cJSON_AddNumberToObject(o, "pred", p->predicted_class);
        cJSON_AddNumberToObject(o, "count", (double)p->count);
        cJSON *indices = cJSON_AddArrayToObject(o, "indices");
        for (uint32_t j = 0; indices && j < p->n_indices; j++)
            cJSON_AddItemToArray(indices, cJSON_CreateNumber((double)p->indices[j]));
        cJSON_AddItemToArray(pairs, o);
    }
    if (!e->has_scores) return;
    cJSON_AddItemToObject(errors, "confident_wrong",
                          sample_list_json(e->lists[CLEVAL_ERROR_CONFIDENT_WRONG],
                                           e->n_lists[CLEVAL_ERROR_CONFIDENT_WRONG]));
    cJSON_AddItemToObject(errors, "unconfident_right",
                          sample_list_json(e->lists[CLEVAL_ERROR_UNCONFIDENT_RIGHT],
                                           e->n_lists[CLEVAL_ERROR_UNCONFIDENT_RIGHT]));
}

/* `text` then spaces up to `width` characters. */
static void write_left_aligned(FILE *out, const char *text, size_t width)
{
    fputs(text, out);
    for (size_t w = report_display_width(text); w < width; w++)
        fputc(' ', out);
}

static void report_pairs(FILE *out, const cleval_errors *e, const cleval_class_names *names)
{
    fprintf(out, "Error analysis: the most confused pairs, their first %u rows of the test file:\n",
            e->n);
    if (e->n_pairs == 0) fprintf(out, "  none: every sample was predicted correctly\n");
    char a[32], b[32];
    for (uint32_t i = 0; i < e->n_pairs; i++) {
        const cleval_confused_samples *p = &e->pairs[i];
        fprintf(out, "  %10llu  true %s predicted as %s:", (unsigned long long)p->count,
                report_class_label(names, p->true_class, a, sizeof a),
                report_class_label(names, p->predicted_class, b, sizeof b));
        for (uint32_t j = 0; j < p->n_indices; j++)
            fprintf(out, "%s %llu", j ? "," : "", (unsigned long long)p->indices[j]);
        fputc('\n', out);
    }
}

static void report_samples(FILE *out, const char *title, const cleval_errors *e,
                           cleval_error_kind kind, const cleval_class_names *names)
{
    const cleval_error_sample *s = e->lists[kind];
    uint32_t n = e->n_lists[kind];
    fprintf(out, "%s (confidence: the %s):\n", title,
            e->softmax ? "softmax of the scores" : "largest score");
    if (n == 0) {
        fprintf(out, "  none\n");
        return;
    }
    char buf[32];
    size_t width = strlen("predicted");
    for (uint32_t i = 0; i < n; i++) {
        size_t t = report_display_width(
            report_class_label(names, (uint32_t)s[i].true_class, buf, sizeof buf));
        size_t p = report_display_width(
            report_class_label(names, (uint32_t)s[i].predicted_class, buf, sizeof buf));
        width = t > width ? t : width;
        width = p > width ? p : width;
    }
    fprintf(out, "  %10s  ", "row");
    write_left_aligned(out, "true", width);
    fputs("  ", out);
    write_left_aligned(out, "predicted", width);
    fputs("  confidence\n", out);
    for (uint32_t i = 0; i < n; i++) {
        fprintf(out, "  %10llu  ", (unsigned long long)s[i].index);
        write_left_aligned(
            out, report_class_label(names, (uint32_t)s[i].true_class, buf, sizeof buf), width);
        fputs("  ", out);
        write_left_aligned(
            out, report_class_label(names, (uint32_t)s[i].predicted_class, buf, sizeof buf), width);
        fprintf(out, "  %.4f\n", s[i].confidence);
    }
}

void cleval_report_errors_text(FILE *out, const cleval_errors *e, const cleval_class_names *names)
{
    report_pairs(out, e, names);
    if (!e->has_scores) return;
    fputc('\n', out);
    report_samples(out, "Most confident wrong predictions", e, CLEVAL_ERROR_CONFIDENT_WRONG, names);
    fputc('\n', out);
    report_samples(out, "Least confident right predictions", e, CLEVAL_ERROR_UNCONFIDENT_RIGHT,
                   names);
}
