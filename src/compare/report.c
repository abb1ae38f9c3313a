/* The JSON and human reports of `cleval compare`, built from a finished result. */
#include "cleval/compare.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/report.h"

enum { MAX_MATRIX_CLASSES = 20, TOP_CELLS = 10 };

static cJSON *sample_object(const cleval_compare_result *r, const cleval_compare_sample *s,
                            bool flip)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "index", (double)s->index);
    cJSON_AddNumberToObject(o, "pred_a", s->pred_a);
    cJSON_AddNumberToObject(o, "pred_b", s->pred_b);
    if (r->has_labels) cJSON_AddNumberToObject(o, "y", s->y);
    if (r->has_scores) {
        cJSON_AddNumberToObject(o, flip ? "score_diff" : "abs_diff", s->score_diff);
        cJSON_AddNumberToObject(o, "class", s->score_class);
        cJSON_AddNumberToObject(o, "score_a", s->score_a);
        cJSON_AddNumberToObject(o, "score_b", s->score_b);
    }
    return o;
}

static cJSON *sample_list(const cleval_compare_result *r, const cleval_compare_sample *list,
                          uint32_t n, bool flips)
{
    cJSON *array = cJSON_CreateArray();
    for (uint32_t i = 0; array && i < n; i++)
        cJSON_AddItemToArray(array, sample_object(r, &list[i], flips));
    return array;
}

cJSON *cleval_compare_json(const cleval_compare_result *r)
{
    cJSON *json = cJSON_CreateObject();
    if (!json) return NULL;
    cJSON *files = cJSON_AddObjectToObject(json, "files");
    cJSON_AddStringToObject(files, "a", r->path_a ? r->path_a : "");
    cJSON_AddStringToObject(files, "b", r->path_b ? r->path_b : "");
    cJSON_AddNumberToObject(json, "n_samples", (double)r->n_samples);
    cJSON_AddNumberToObject(json, "n_classes", r->n_classes);
    cJSON_AddNumberToObject(json, "agreement", r->agreement);
    cJSON_AddNumberToObject(json, "flips", (double)r->flips);
    cJSON_AddNumberToObject(json, "flip_rate", r->flip_rate);
    cJSON_AddItemToObject(json, "flip_matrix", cleval_report_counts_json(&r->flip_matrix));

    cJSON_AddBoolToObject(json, "has_labels", r->has_labels);
    if (r->has_labels) {
        cJSON_AddNumberToObject(json, "accuracy_a", r->accuracy_a);
        cJSON_AddNumberToObject(json, "accuracy_b", r->accuracy_b);
        cJSON_AddNumberToObject(json, "accuracy_diff", r->accuracy_diff);
        cJSON *ci = cJSON_AddObjectToObject(json, "accuracy_diff_ci");
        cJSON_AddNumberToObject(ci, "level", 0.95);
        cJSON_AddNumberToObject(ci, "low", r->diff_ci_low);
        cJSON_AddNumberToObject(ci, "high", r->diff_ci_high);
        cJSON_AddStringToObject(ci, "method", "newcombe_paired_score");
        cJSON *mcnemar = cJSON_AddObjectToObject(json, "mcnemar");
        cJSON_AddNumberToObject(mcnemar, "b", (double)r->a_only_right);
        cJSON_AddNumberToObject(mcnemar, "c", (double)r->b_only_right);
        cJSON_AddNumberToObject(mcnemar, "p_value", r->mcnemar_p);
        cJSON_AddNumberToObject(mcnemar, "log_p_value", r->mcnemar_log_p);
        cJSON_AddNumberToObject(mcnemar, "both_right", (double)r->both_right);
        cJSON_AddNumberToObject(mcnemar, "both_wrong", (double)r->both_wrong);
    }

    cJSON_AddBoolToObject(json, "has_scores", r->has_scores);
    if (r->has_scores) {
        cJSON_AddNumberToObject(json, "max_abs_score_diff", r->max_abs_score_diff);
        cJSON *scores = cJSON_AddObjectToObject(json, "score_diff");
        cJSON_AddNumberToObject(scores, "width", r->score_width);
        cJSON_AddNumberToObject(scores, "max_abs", r->max_abs_score_diff);
        cJSON_AddNumberToObject(scores, "max_abs_index", (double)r->max_abs_index);
        cJSON_AddNumberToObject(scores, "max_abs_class", r->max_abs_class);
        cJSON_AddNumberToObject(scores, "max_rel", r->max_rel_score_diff);
        cJSON_AddNumberToObject(scores, "max_rel_index", (double)r->max_rel_index);
        cJSON_AddNumberToObject(scores, "max_rel_class", r->max_rel_class);
        cJSON_AddNumberToObject(scores, "mean_abs", r->mean_abs_score_diff);
        cJSON *nonfinite = cJSON_AddObjectToObject(json, "nonfinite_scores");
        cJSON_AddNumberToObject(nonfinite, "a", (double)r->nonfinite_a);
        cJSON_AddNumberToObject(nonfinite, "b", (double)r->nonfinite_b);
        cJSON_AddItemToObject(scores, "top",
                              sample_list(r, r->top_score_diffs, r->n_top_score_diffs, false));
    } else {
        cJSON_AddStringToObject(json, "score_note", r->score_note);
    }
    cJSON_AddItemToObject(json, "top_flips", sample_list(r, r->top_flips, r->n_top_flips, true));

    cJSON *gates = cJSON_AddArrayToObject(json, "gates");
    for (uint32_t i = 0; gates && i < r->n_gates; i++) {
        const cleval_compare_gate *g = &r->gates[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", g->name);
        cJSON_AddNumberToObject(o, "limit", g->limit);
        cJSON_AddNumberToObject(o, "value", g->value);
        cJSON_AddBoolToObject(o, "passed", g->passed);
        cJSON_AddItemToArray(gates, o);
    }
    cJSON_AddBoolToObject(json, "passed", r->passed);

    /* Any failed allocation above left a member out: report it as out of memory. */
    if (!cJSON_GetObjectItem(json, "passed") || !cJSON_GetObjectItem(json, "flip_matrix") ||
        !cJSON_GetObjectItem(json, "top_flips")) {
        cJSON_Delete(json);
        return NULL;
    }
    return json;
}

/* "3" or "3 (cat)". */
static const char *class_label(const cleval_compare_result *r, int32_t k, char *buf, size_t size)
{
    if (k >= 0 && r->class_names.names && (uint32_t)k < r->class_names.count)
        snprintf(buf, size, "%d (%s)", k, r->class_names.names[k]);
    else
        snprintf(buf, size, "%d", k);
    return buf;
}

/* Whether flip (a, b) seen v times comes before flip (a2, b2) seen v2 times: more often
 * first, then by A's class, then B's. */
static bool ranks_before(uint64_t v, uint32_t a, uint32_t b, uint64_t v2, uint32_t a2, uint32_t b2)
{
    if (v != v2) return v > v2;
    return a != a2 ? a < a2 : b < b2;
}

static void print_matrix(FILE *out, const cleval_compare_result *r)
{
    uint32_t c = r->n_classes;
    if (c <= MAX_MATRIX_CLASSES) {
        fprintf(out, "Flip matrix (rows: class in A, columns: class in B)\n%6s", "");
        for (uint32_t k = 0; k < c; k++)
            fprintf(out, " %7u", k);
        fputc('\n', out);
        for (uint32_t a = 0; a < c; a++) {
            fprintf(out, "%6u", a);
            for (uint32_t b = 0; b < c; b++)
                fprintf(out, " %7llu",
                        (unsigned long long)cleval_counts_get(&r->flip_matrix, a, b));
            fputc('\n', out);
        }
        return;
    }
    /* Too wide to print: the most frequent flips, ties by (A class, B class), whatever order
     * the nonzero cells come in. */
    uint64_t top_count[TOP_CELLS] = {0};
    uint32_t top_a[TOP_CELLS], top_b[TOP_CELLS], n_top = 0;
    size_t pos = 0;
    cleval_count_cell cell;
    while (cleval_counts_next(&r->flip_matrix, &pos, &cell)) {
        uint32_t a = cell.row, b = cell.col;
        uint64_t v = cell.count;
        if (a == b || (n_top == TOP_CELLS && !ranks_before(v, a, b, top_count[n_top - 1],
                                                           top_a[n_top - 1], top_b[n_top - 1])))
            continue;
        uint32_t at = n_top < TOP_CELLS ? n_top++ : n_top - 1;
        while (at > 0 && ranks_before(v, a, b, top_count[at - 1], top_a[at - 1], top_b[at - 1])) {
            top_count[at] = top_count[at - 1];
            top_a[at] = top_a[at - 1];
            top_b[at] = top_b[at - 1];
            at--;
        }
        top_count[at] = v, top_a[at] = a, top_b[at] = b;
    }
    fprintf(out, "Most frequent flips (class in A -> class in B), of %u classes\n", c);
    char la[96], lb[96];
    for (uint32_t i = 0; i < n_top; i++)
        fprintf(out, "  %s -> %s: %llu\n", class_label(r, (int32_t)top_a[i], la, sizeof la),
                class_label(r, (int32_t)top_b[i], lb, sizeof lb), (unsigned long long)top_count[i]);
}

static void print_gate(FILE *out, const cleval_compare_gate *g)
{
    if (g->below)
        fprintf(out, "  %s  %-18s %.6g %s alpha %.6g%s", g->passed ? "PASS" : "FAIL", g->name,
                g->value, g->passed ? ">=" : "<", g->limit, g->passed ? "\n" : "");
    else
        fprintf(out, "  %s  %-18s %.6g %s limit %.6g%s", g->passed ? "PASS" : "FAIL", g->name,
                g->value, g->passed ? "<=" : ">", g->limit, g->passed ? "\n" : "");
    if (g->passed) return;
    if (g->below)
        fprintf(out, " (below it by %.6g: the accuracies differ significantly)\n",
                g->limit - g->value);
    else
        fprintf(out, " (exceeded by %.6g)\n", g->value - g->limit);
}

void cleval_compare_report(FILE *out, const cleval_compare_result *r)
{
    char la[96], lb[96], ly[96];
    fprintf(out, "A: %s\nB: %s\n%llu samples, %u classes\n\n", r->path_a, r->path_b,
            (unsigned long long)r->n_samples, r->n_classes);
    fprintf(out, "Agreement     %.4f  (%llu flips, flip rate %.4f)\n", r->agreement,
            (unsigned long long)r->flips, r->flip_rate);
    if (r->has_labels) {
        fprintf(out, "Accuracy A    %.4f\nAccuracy B    %.4f\n", r->accuracy_a, r->accuracy_b);
        fprintf(out, "Difference    %+.4f  (B - A; 95%% CI %+.4f .. %+.4f, Newcombe, paired)\n",
                r->accuracy_diff, r->diff_ci_low, r->diff_ci_high);
        fprintf(out,
                "McNemar exact b = %llu (A right, B wrong), c = %llu (A wrong, B right), "
                "p = %.4g\n",
                (unsigned long long)r->a_only_right, (unsigned long long)r->b_only_right,
                r->mcnemar_p);
    } else {
        fprintf(out, "No labels: predictions compared only (no accuracy, no McNemar test).\n");
    }
    if (!r->has_scores) {
        fprintf(out, "Scores        not compared: %s\n", r->score_note);
    } else {
        fprintf(out,
                "Scores        max |a - b| %.6g (sample %llu, class %u), max relative %.6g "
                "(sample %llu, class %u), mean |a - b| %.6g\n",
                r->max_abs_score_diff, (unsigned long long)r->max_abs_index, r->max_abs_class,
                r->max_rel_score_diff, (unsigned long long)r->max_rel_index, r->max_rel_class,
                r->mean_abs_score_diff);
        if (r->nonfinite_a || r->nonfinite_b)
            fprintf(out,
                    "              pairs with a non-finite score left out (%llu in A, %llu "
                    "in B)\n",
                    (unsigned long long)r->nonfinite_a, (unsigned long long)r->nonfinite_b);
    }
    fputc('\n', out);
    print_matrix(out, r);

    if (r->n_top_flips > 0) {
        fprintf(out, "\nTop flips%s:\n", r->has_scores ? " (largest score change first)" : "");
        fprintf(out, "  %10s  %-14s  %-14s", "sample", "A", "B");
        if (r->has_labels) fprintf(out, "  %-14s", "true");
        if (r->has_scores) fprintf(out, "  max |a - b| (class)");
        fputc('\n', out);
        for (uint32_t i = 0; i < r->n_top_flips; i++) {
            const cleval_compare_sample *s = &r->top_flips[i];
            fprintf(out, "  %10llu  %-14s  %-14s", (unsigned long long)s->index,
                    class_label(r, s->pred_a, la, sizeof la),
                    class_label(r, s->pred_b, lb, sizeof lb));
            if (r->has_labels) fprintf(out, "  %-14s", class_label(r, s->y, ly, sizeof ly));
            if (r->has_scores) fprintf(out, "  %.6g (%u)", s->score_diff, s->score_class);
            fputc('\n', out);
        }
        if (r->flips > r->n_top_flips)
            fprintf(out, "  ... %llu more (--save writes every flipped sample)\n",
                    (unsigned long long)(r->flips - r->n_top_flips));
    }
    if (r->n_top_score_diffs > 0) {
        fprintf(out, "\nLargest score differences:\n  %10s  %6s  %14s  %14s  %12s\n", "sample",
                "class", "A", "B", "|a - b|");
        for (uint32_t i = 0; i < r->n_top_score_diffs; i++) {
            const cleval_compare_sample *s = &r->top_score_diffs[i];
            fprintf(out, "  %10llu  %6u  %14.7g  %14.7g  %12.6g\n", (unsigned long long)s->index,
                    s->score_class, s->score_a, s->score_b, s->score_diff);
        }
    }

    fputc('\n', out);
    if (r->n_gates == 0) {
        fprintf(out, "No gates set (--max-flip-rate, --max-accuracy-drop, --alpha, "
                     "--max-score-diff): verdict PASS\n");
        return;
    }
    fprintf(out, "Gates:\n");
    uint32_t failed = 0;
    for (uint32_t i = 0; i < r->n_gates; i++) {
        print_gate(out, &r->gates[i]);
        failed += !r->gates[i].passed;
    }
    if (failed == 0) {
        fprintf(out, "Verdict: PASS (%u gate%s)\n", r->n_gates, r->n_gates == 1 ? "" : "s");
        return;
    }
    fprintf(out, "Verdict: FAIL (%u of %u gates:", failed, r->n_gates);
    for (uint32_t i = 0; i < r->n_gates; i++)
        if (!r->gates[i].passed) fprintf(out, " %s", r->gates[i].name);
    fprintf(out, ")\n");
}
