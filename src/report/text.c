/* The human report: scikit-learn's classification_report layout (digits=2), the confusion
 * matrix or its top confused pairs, and the throughput line. */
#include "cleval/report.h"
#include "report_internal.h"

#include <stdlib.h>
#include <string.h>

/* Characters (UTF-8 code points) in `s`: Python pads by code points, printf by bytes. */
static size_t display_width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

static void write_right_aligned(FILE *out, const char *text, size_t width)
{
    for (size_t w = display_width(text); w < width; w++)
        fputc(' ', out);
    fputs(text, out);
}

/* The display name of class k: its name, or its label number. */
static const char *class_label(const cleval_class_names *names, uint32_t k, char *buf,
                               size_t size)
{
    if (names && names->names && k < names->count) return names->names[k];
    snprintf(buf, size, "%u", k);
    return buf;
}

void cleval_report_classification(FILE *out, const cleval_metrics *m,
                                  const cleval_class_names *names)
{
    char buf[32];
    size_t width = strlen("weighted avg");
    for (uint32_t k = 0; k < m->n_classes; k++) {
        size_t w = display_width(class_label(names, k, buf, sizeof buf));
        width = w > width ? w : width;
    }
    write_right_aligned(out, "", width);
    fprintf(out, "  %9s %9s %9s %9s\n\n", "precision", "recall", "f1-score", "support");
    for (uint32_t k = 0; k < m->n_classes; k++) {
        const cleval_class_metrics *c = &m->per_class[k];
        write_right_aligned(out, class_label(names, k, buf, sizeof buf), width);
        fprintf(out, "  %9.2f %9.2f %9.2f %9llu\n", c->prf.precision, c->prf.recall, c->prf.f1,
                (unsigned long long)c->support);
    }
    fputc('\n', out);
    write_right_aligned(out, "accuracy", width);
    fprintf(out, "  %9s %9s %9.2f %9llu\n", "", "", m->micro.f1,
            (unsigned long long)m->n_samples);
    const struct {
        const char *heading;
        const cleval_prf *prf;
    } averages[] = {{"macro avg", &m->macro}, {"weighted avg", &m->weighted}};
    for (size_t i = 0; i < 2; i++) {
        write_right_aligned(out, averages[i].heading, width);
        fprintf(out, "  %9.2f %9.2f %9.2f %9llu\n", averages[i].prf->precision,
                averages[i].prf->recall, averages[i].prf->f1, (unsigned long long)m->n_samples);
    }
}

void cleval_report_agreement(FILE *out, const cleval_metrics *m)
{
    fprintf(out, "balanced accuracy  %.4f\n", m->balanced_accuracy);
    fprintf(out, "MCC                %.4f\n", m->mcc);
    fprintf(out, "Cohen's kappa      %.4f none, %.4f linear, %.4f quadratic\n",
            m->cohen_kappa[CLEVAL_KAPPA_NONE], m->cohen_kappa[CLEVAL_KAPPA_LINEAR],
            m->cohen_kappa[CLEVAL_KAPPA_QUADRATIC]);
}

typedef struct confused_pair {
    uint32_t true_class, predicted_class;
    uint64_t count;
} confused_pair;

/* Largest count first; equal counts by (true, predicted) so the list is deterministic. */
static int by_count_descending(const void *a, const void *b)
{
    const confused_pair *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    if (x->true_class != y->true_class) return x->true_class < y->true_class ? -1 : 1;
    return x->predicted_class < y->predicted_class ? -1 : x->predicted_class > y->predicted_class;
}

static void report_top_pairs(FILE *out, const cleval_confusion *cm,
                             const cleval_class_names *names)
{
    uint32_t c = cm->n_classes;
    confused_pair top[CLEVAL_REPORT_TOP_PAIRS + 1];
    size_t n_top = 0;
    /* Keep the best CLEVAL_REPORT_TOP_PAIRS of the nonzero cells by insertion; the order is
     * total, so the visiting order does not matter. */
    size_t pos = 0;
    cleval_count_cell cell;
    while (cleval_counts_next(&cm->counts, &pos, &cell)) {
        if (cell.row == cell.col) continue;
        confused_pair candidate = {cell.row, cell.col, cell.count};
        if (n_top == CLEVAL_REPORT_TOP_PAIRS &&
            by_count_descending(&candidate, &top[n_top - 1]) >= 0)
            continue;
        size_t i = n_top < CLEVAL_REPORT_TOP_PAIRS ? n_top++ : n_top - 1;
        while (i > 0 && by_count_descending(&candidate, &top[i - 1]) < 0) {
            top[i] = top[i - 1];
            i--;
        }
        top[i] = candidate;
    }
    fprintf(out, "Most confused pairs (of %u classes; the full matrix is in --json):\n", c);
    if (n_top == 0) fprintf(out, "  none: every sample was predicted correctly\n");
    char a[32], b[32];
    for (size_t i = 0; i < n_top; i++)
        fprintf(out, "  %10llu  true %s predicted as %s\n", (unsigned long long)top[i].count,
                class_label(names, top[i].true_class, a, sizeof a),
                class_label(names, top[i].predicted_class, b, sizeof b));
}

void cleval_report_confusion(FILE *out, const cleval_confusion *cm,
                             const cleval_class_names *names)
{
    uint32_t c = cm->n_classes;
    if (c > CLEVAL_REPORT_MAX_MATRIX_CLASSES) {
        report_top_pairs(out, cm, names);
        return;
    }
    /* Columns are as wide as the largest count or label number; rows carry the class name. */
    size_t cell = 1, name_width = strlen("true \\ pred");
    char buf[32];
    for (uint32_t t = 0; t < c; t++)
        for (uint32_t p = 0; p < c; p++) {
            size_t w = (size_t)snprintf(buf, sizeof buf, "%llu",
                                        (unsigned long long)cleval_counts_get(&cm->counts, t, p));
            cell = w > cell ? w : cell;
        }
    for (uint32_t k = 0; k < c; k++) {
        size_t w = (size_t)snprintf(buf, sizeof buf, "%u", k);
        cell = w > cell ? w : cell;
        w = display_width(class_label(names, k, buf, sizeof buf));
        name_width = w > name_width ? w : name_width;
    }
    fprintf(out, "Confusion matrix (rows: true class, columns: predicted class):\n");
    write_right_aligned(out, "true \\ pred", name_width);
    for (uint32_t k = 0; k < c; k++)
        fprintf(out, " %*u", (int)cell, k);
    fputc('\n', out);
    for (uint32_t t = 0; t < c; t++) {
        write_right_aligned(out, class_label(names, t, buf, sizeof buf), name_width);
        for (uint32_t p = 0; p < c; p++)
            fprintf(out, " %*llu", (int)cell,
                    (unsigned long long)cleval_counts_get(&cm->counts, t, p));
        fputc('\n', out);
    }
}

void cleval_report_throughput(FILE *out, const cleval_run_timing *timing)
{
    double rate = timing->total_s > 0 ? (double)timing->n_samples / timing->total_s : 0.0;
    fprintf(out, "%llu samples in %.3f s (%.0f samples/s)", (unsigned long long)timing->n_samples,
            timing->total_s, rate);
    if (timing->device) fprintf(out, " on %s", timing->device);
    fputc('\n', out);
    if (timing->model) fprintf(out, "Model: %s\n", timing->model);
}

const char *report_class_label(const cleval_class_names *names, uint32_t k, char *buf,
                               size_t size)
{
    return class_label(names, k, buf, size);
}

size_t report_display_width(const char *s)
{
    return display_width(s);
}
