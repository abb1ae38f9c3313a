/* The JSON and human reports of `cleval drift`, and the findings in words that end both. */
#include "cleval/drift.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_FINDINGS = 12, FINDING_SIZE = 512, MAX_TABLE_CLASSES = 20, MOVED_CLASSES = 3 };

typedef struct findings {
    char lines[MAX_FINDINGS][FINDING_SIZE];
    int n;
} findings;

static void say(findings *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(findings *f, const char *fmt, ...)
{
    if (f->n == MAX_FINDINGS) return;
    va_list args;
    va_start(args, fmt);
    vsnprintf(f->lines[f->n++], FINDING_SIZE, fmt, args);
    va_end(args);
}

/* Appends to the last finding. */
static void say_more(findings *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say_more(findings *f, const char *fmt, ...)
{
    if (f->n == 0) return;
    char *line = f->lines[f->n - 1];
    size_t used = strlen(line);
    va_list args;
    va_start(args, fmt);
    vsnprintf(line + used, FINDING_SIZE - used, fmt, args);
    va_end(args);
}

static const char *class_label(const cleval_drift_result *r, uint32_t k, char *buf, size_t size)
{
    if (r->class_names.names && k < r->class_names.count)
        snprintf(buf, size, "%u (%s)", k, r->class_names.names[k]);
    else
        snprintf(buf, size, "%u", k);
    return buf;
}

static double share(const uint64_t *counts, uint32_t k, uint64_t total)
{
    return total ? (double)counts[k] / (double)total : 0.0;
}

static double accuracy_of(const cleval_drift_side *side, uint32_t c)
{
    uint64_t right = 0, total = 0;
    for (uint32_t k = 0; k < c; k++) {
        total += side->support[k];
        right += side->correct[k];
    }
    return total ? (double)right / (double)total : NAN;
}

/* Classes ordered by how far their share moved, largest first (ties by label). */
static uint32_t moved_most(const cleval_drift_result *r, uint32_t *order, uint32_t want)
{
    uint32_t n = 0;
    for (uint32_t k = 0; k < r->n_classes; k++) {
        double d = fabs(share(r->current.class_counts, k, r->current.n_samples) -
                        share(r->reference.class_counts, k, r->reference.n_samples));
        if (d == 0) continue;
        if (n == want) {
            double last =
                fabs(share(r->current.class_counts, order[n - 1], r->current.n_samples) -
                     share(r->reference.class_counts, order[n - 1], r->reference.n_samples));
            if (d <= last) continue;
            n--;
        }
        uint32_t at = n++;
        while (at > 0) {
            uint32_t prev = order[at - 1];
            double dp = fabs(share(r->current.class_counts, prev, r->current.n_samples) -
                             share(r->reference.class_counts, prev, r->reference.n_samples));
            if (d <= dp) break;
            order[at] = prev;
            at--;
        }
        order[at] = k;
    }
    return n;
}

static bool alert_fired(const cleval_drift_result *r, const char *prefix)
{
    for (uint32_t i = 0; i < r->n_alerts; i++)
        if (strncmp(r->alerts[i].name, prefix, strlen(prefix)) == 0) return true;
    return false;
}

static const char *source_name(const cleval_drift_side *side)
{
    return side->probabilities ? "the largest score (rows are probabilities)"
                               : "the largest softmax probability";
}

static double share_below_half(const cleval_drift_side *side)
{
    uint64_t below = 0;
    for (int b = 0; b < CLEVAL_DRIFT_BINS / 2; b++)
        below += side->confidence_counts[b];
    return (double)below / (double)side->n_samples;
}

/* The alerts (or that none fired) and the warnings. */
static void say_alerts(const cleval_drift_result *r, findings *f)
{
    if (r->n_alerts > 0) {
        say(f, "ALERT (%u):", r->n_alerts);
        for (uint32_t i = 0; i < r->n_alerts; i++) {
            const cleval_drift_alert *a = &r->alerts[i];
            if (strcmp(a->name, "class_chi2") == 0)
                say_more(f, "%s class_chi2 p = %.3g < alpha %g", i ? ";" : "", a->value, a->limit);
            else
                say_more(f, "%s %s %.4g > %g", i ? ";" : "", a->name, a->value, a->limit);
        }
        say_more(f, ".");
    } else {
        say(f,
            "No alert: class PSI %.4g, JS %.4g, chi-squared p %.3g; confidence PSI %.4g, JS "
            "%.4g, all within their limits.",
            r->class_psi, r->class_js, r->class_p_value, r->confidence_psi, r->confidence_js);
    }
    for (uint32_t i = 0; i < r->n_warnings; i++)
        say(f, "Warning (does not fail the run): %s %.4g > %g.", r->warnings[i].name,
            r->warnings[i].value, r->warnings[i].limit);
}

/* The classes whose share moved most (order[], n_moved of them), and classes that appeared
 * or vanished. */
static void say_classes(const cleval_drift_result *r, const uint32_t *order, uint32_t n_moved,
                        findings *f)
{
    char label[160];
    if (n_moved > 0) {
        say(f, "Classes that moved most:");
        for (uint32_t i = 0; i < n_moved; i++) {
            uint32_t k = order[i];
            double p = share(r->reference.class_counts, k, r->reference.n_samples);
            double q = share(r->current.class_counts, k, r->current.n_samples);
            say_more(f, "%s %s %.1f%% -> %.1f%% (%+.1f points)", i ? ";" : "",
                     class_label(r, k, label, sizeof label), 100 * p, 100 * q, 100 * (q - p));
        }
        say_more(f, ".");
    } else {
        say(f, "The predicted-class shares are identical in both runs.");
    }
    for (uint32_t k = 0; k < r->n_classes; k++) {
        uint64_t p = r->reference.class_counts[k], q = r->current.class_counts[k];
        if (p == 0 && q > 0)
            say(f, "Class %s is predicted only in the current run (%llu samples).",
                class_label(r, k, label, sizeof label), (unsigned long long)q);
        else if (q == 0 && p > 0)
            say(f, "Class %s is no longer predicted (%llu samples in the reference).",
                class_label(r, k, label, sizeof label), (unsigned long long)p);
    }
}

static void say_confidence(const cleval_drift_result *r, findings *f)
{
    say(f,
        "Mean confidence %.4f -> %.4f (%+.4f); samples below 0.5 confidence %.1f%% -> %.1f%%; "
        "mean entropy %.4f -> %.4f nats.",
        r->reference.mean_confidence, r->current.mean_confidence,
        r->current.mean_confidence - r->reference.mean_confidence,
        100 * share_below_half(&r->reference), 100 * share_below_half(&r->current),
        r->reference.mean_entropy, r->current.mean_entropy);
    if (r->reference.probabilities != r->current.probabilities)
        say(f,
            "Caution: confidence is %s in the reference but %s in the current run; if one "
            "run saved logits and the other probabilities, the confidence drift may be an "
            "artefact of that.",
            source_name(&r->reference), source_name(&r->current));
}

/* With labels: the accuracies and the class whose recall dropped most, returned (UINT32_MAX
 * when none dropped) with its drop in *worst_drop. */
static uint32_t say_accuracy(const cleval_drift_result *r, findings *f, double *worst_drop)
{
    uint32_t worst = UINT32_MAX;
    *worst_drop = 0;
    if (!r->has_recall) return worst;
    for (uint32_t k = 0; k < r->n_classes; k++) {
        double d = r->recall_current[k] - r->recall_reference[k];
        if (!isnan(d) && d < *worst_drop) {
            *worst_drop = d;
            worst = k;
        }
    }
    say(f, "Accuracy %.4f -> %.4f.", accuracy_of(&r->reference, r->n_classes),
        accuracy_of(&r->current, r->n_classes));
    char label[160];
    if (worst != UINT32_MAX)
        say_more(f, " Largest recall drop: class %s, %.4f -> %.4f (%+.4f).",
                 class_label(r, worst, label, sizeof label), r->recall_reference[worst],
                 r->recall_current[worst], *worst_drop);
    return worst;
}

/* Where to look first, from which alerts fired (naming the class that moved most), and the
 * class that lost the most recall. */
static void say_advice(const cleval_drift_result *r, const uint32_t *order, uint32_t n_moved,
                       uint32_t worst, double worst_drop, findings *f)
{
    char label[160];
    bool class_alert = alert_fired(r, "class_"), confidence_alert = alert_fired(r, "confidence_");
    char top[224] = "";
    if (n_moved) {
        uint32_t k = order[0];
        bool rose = share(r->current.class_counts, k, r->current.n_samples) >
                    share(r->reference.class_counts, k, r->reference.n_samples);
        snprintf(top, sizeof top, "class %s, whose share %s most",
                 class_label(r, k, label, sizeof label), rose ? "rose" : "fell");
    }
    if (class_alert && confidence_alert)
        say(f,
            "Look first at what feeds the predictions: both the predicted classes and the "
            "confidence moved, which points to a changed input pipeline (a new source, "
            "preprocessing or normalisation) or a changed model (pruning, precision, "
            "weights) more than to a shift of the class mix; start with %s.",
            top);
    else if (class_alert)
        say(f,
            "Look first at %s: the class mix moved while the confidence held, which is what "
            "a real change of the population (prior shift) looks like; check whether the new "
            "proportions are expected.",
            top);
    else if (confidence_alert)
        say(f, "Look first at the model and its runtime: the confidence moved while the class "
               "mix held, a sign of a calibration, precision or input-scaling change (another "
               "framework, fp16/int8, a different normalisation).");
    else if (r->n_warnings > 0)
        say(f, "Nothing alarming yet; watch %s in the next runs.", r->warnings[0].name);
    else
        say(f, "Nothing to look at: the output distribution is stable.");
    if (r->has_recall && worst != UINT32_MAX && worst_drop < -0.05)
        say(f,
            "With labels: class %s lost the most recall (%+.1f points); its samples are the "
            "ones to inspect first.",
            class_label(r, worst, label, sizeof label), 100 * worst_drop);
}

static void build_findings(const cleval_drift_result *r, findings *f)
{
    say_alerts(r, f);
    uint32_t order[MOVED_CLASSES];
    uint32_t n_moved = moved_most(r, order, MOVED_CLASSES);
    say_classes(r, order, n_moved, f);
    say_confidence(r, f);
    double worst_drop;
    uint32_t worst = say_accuracy(r, f, &worst_drop);
    say_advice(r, order, n_moved, worst, worst_drop, f);
}

static cJSON *counts_array(const uint64_t *counts, uint32_t n)
{
    cJSON *array = cJSON_CreateArray();
    for (uint32_t k = 0; array && k < n; k++)
        cJSON_AddItemToArray(array, cJSON_CreateNumber((double)counts[k]));
    return array;
}

static cJSON *alert_list(const cleval_drift_alert *list, uint32_t n)
{
    cJSON *array = cJSON_CreateArray();
    for (uint32_t i = 0; array && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", list[i].name);
        cJSON_AddNumberToObject(o, "limit", list[i].limit);
        cJSON_AddNumberToObject(o, "value", list[i].value);
        cJSON_AddItemToArray(array, o);
    }
    return array;
}

cJSON *cleval_drift_json(const cleval_drift_result *r)
{
    cJSON *json = cJSON_CreateObject();
    if (!json) return NULL;
    cJSON *files = cJSON_AddObjectToObject(json, "files");
    cJSON_AddStringToObject(files, "reference", r->reference.path ? r->reference.path : "");
    cJSON_AddStringToObject(files, "current", r->current.path ? r->current.path : "");
    cJSON_AddNumberToObject(json, "n_reference", (double)r->reference.n_samples);
    cJSON_AddNumberToObject(json, "n_current", (double)r->current.n_samples);
    cJSON_AddNumberToObject(json, "n_classes", r->n_classes);

    cJSON *cls = cJSON_AddObjectToObject(json, "class");
    cJSON_AddNumberToObject(cls, "psi", r->class_psi);
    cJSON_AddNumberToObject(cls, "js", r->class_js);
    cJSON_AddNumberToObject(cls, "chi2", r->class_chi2);
    cJSON_AddNumberToObject(cls, "p_value", r->class_p_value);
    cJSON_AddNumberToObject(cls, "dof", r->class_dof);
    cJSON_AddItemToObject(cls, "reference", counts_array(r->reference.class_counts, r->n_classes));
    cJSON_AddItemToObject(cls, "current", counts_array(r->current.class_counts, r->n_classes));

    cJSON *conf = cJSON_AddObjectToObject(json, "confidence");
    cJSON_AddNumberToObject(conf, "psi", r->confidence_psi);
    cJSON_AddNumberToObject(conf, "js", r->confidence_js);
    cJSON_AddItemToObject(conf, "reference",
                          counts_array(r->reference.confidence_counts, CLEVAL_DRIFT_BINS));
    cJSON_AddItemToObject(conf, "current",
                          counts_array(r->current.confidence_counts, CLEVAL_DRIFT_BINS));
    cJSON_AddNumberToObject(conf, "mean_reference", r->reference.mean_confidence);
    cJSON_AddNumberToObject(conf, "mean_current", r->current.mean_confidence);
    cJSON_AddStringToObject(conf, "source_reference",
                            r->reference.probabilities ? "probabilities" : "softmax");
    cJSON_AddStringToObject(conf, "source_current",
                            r->current.probabilities ? "probabilities" : "softmax");

    cJSON *entropy = cJSON_AddObjectToObject(json, "entropy");
    cJSON_AddNumberToObject(entropy, "mean_reference", r->reference.mean_entropy);
    cJSON_AddNumberToObject(entropy, "mean_current", r->current.mean_entropy);

    cJSON *nonfinite = cJSON_AddObjectToObject(json, "nonfinite_scores");
    cJSON_AddNumberToObject(nonfinite, "reference", (double)r->reference.nonfinite_scores);
    cJSON_AddNumberToObject(nonfinite, "current", (double)r->current.nonfinite_scores);

    cJSON_AddItemToObject(json, "alerts", alert_list(r->alerts, r->n_alerts));
    cJSON_AddItemToObject(json, "warnings", alert_list(r->warnings, r->n_warnings));
    cJSON *limits = cJSON_AddObjectToObject(json, "thresholds");
    cJSON_AddNumberToObject(limits, "psi_warn", r->thresholds.psi_warn);
    cJSON_AddNumberToObject(limits, "psi_alert", r->thresholds.psi_alert);
    cJSON_AddNumberToObject(limits, "js_alert", r->thresholds.js_alert);
    cJSON_AddNumberToObject(limits, "alpha", r->thresholds.alpha);

    if (r->has_recall) {
        uint32_t c = r->n_classes;
        cJSON *labels = cJSON_AddObjectToObject(json, "labels");
        cJSON_AddNumberToObject(labels, "accuracy_reference", accuracy_of(&r->reference, c));
        cJSON_AddNumberToObject(labels, "accuracy_current", accuracy_of(&r->current, c));
        cJSON *per_class = cJSON_AddArrayToObject(labels, "per_class");
        for (uint32_t k = 0; per_class && k < c; k++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "label", k);
            if (r->class_names.names && k < r->class_names.count)
                cJSON_AddStringToObject(o, "name", r->class_names.names[k]);
            cJSON_AddNumberToObject(o, "support_reference", (double)r->reference.support[k]);
            cJSON_AddNumberToObject(o, "support_current", (double)r->current.support[k]);
            /* NaN (no support) prints as null. */
            cJSON_AddNumberToObject(o, "recall_reference", r->recall_reference[k]);
            cJSON_AddNumberToObject(o, "recall_current", r->recall_current[k]);
            cJSON_AddNumberToObject(o, "recall_shift",
                                    r->recall_current[k] - r->recall_reference[k]);
            cJSON_AddItemToArray(per_class, o);
        }
    }

    findings *f = calloc(1, sizeof *f);
    cJSON *lines = f ? cJSON_AddArrayToObject(json, "findings") : NULL;
    if (lines) {
        build_findings(r, f);
        for (int i = 0; i < f->n; i++)
            cJSON_AddItemToArray(lines, cJSON_CreateString(f->lines[i]));
    }
    free(f);
    cJSON_AddStringToObject(json, "kernel_precision", r->fp64 ? "float64" : "float32");
    if (!lines || !cJSON_GetObjectItem(json, "kernel_precision")) {
        cJSON_Delete(json);
        return NULL;
    }
    return json;
}

static void print_distances(FILE *out, double psi, double js)
{
    fprintf(out, "  PSI %.4f   JS distance %.4f", psi, js);
}

void cleval_drift_report(FILE *out, const cleval_drift_result *r)
{
    char label[160];
    fprintf(out, "Reference: %s (%llu samples; confidence: %s)\n", r->reference.path,
            (unsigned long long)r->reference.n_samples, source_name(&r->reference));
    fprintf(out, "Current:   %s (%llu samples; confidence: %s)\n\n", r->current.path,
            (unsigned long long)r->current.n_samples, source_name(&r->current));

    uint32_t c = r->n_classes;
    fprintf(out, "Predicted classes%s\n  %-16s %18s %18s %12s\n",
            c > MAX_TABLE_CLASSES ? " (the 20 that moved most)" : "", "class", "reference",
            "current", "change");
    uint32_t *order = malloc((c > MAX_TABLE_CLASSES ? MAX_TABLE_CLASSES : c) * sizeof *order);
    uint32_t shown = 0;
    if (order) {
        if (c > MAX_TABLE_CLASSES) {
            shown = moved_most(r, order, MAX_TABLE_CLASSES);
        } else {
            for (uint32_t k = 0; k < c; k++)
                order[k] = k;
            shown = c;
        }
    }
    for (uint32_t i = 0; i < shown; i++) {
        uint32_t k = order[i];
        double p = share(r->reference.class_counts, k, r->reference.n_samples);
        double q = share(r->current.class_counts, k, r->current.n_samples);
        fprintf(out, "  %-16s %10llu %6.2f%% %10llu %6.2f%% %+9.2f pts\n",
                class_label(r, k, label, sizeof label),
                (unsigned long long)r->reference.class_counts[k], 100 * p,
                (unsigned long long)r->current.class_counts[k], 100 * q, 100 * (q - p));
    }
    free(order);
    print_distances(out, r->class_psi, r->class_js);
    fprintf(out, "   chi-squared %.4g (%u dof), p = %.4g\n\n", r->class_chi2, r->class_dof,
            r->class_p_value);

    fprintf(out, "Confidence\n  %-12s %18s %18s\n", "bin", "reference", "current");
    for (int b = 0; b < CLEVAL_DRIFT_BINS; b++) {
        char bin[32];
        snprintf(bin, sizeof bin, "[%.1f, %.1f%c", b / 10.0, (b + 1) / 10.0,
                 b == CLEVAL_DRIFT_BINS - 1 ? ']' : ')');
        fprintf(out, "  %-12s %10llu %6.2f%% %10llu %6.2f%%\n", bin,
                (unsigned long long)r->reference.confidence_counts[b],
                100 * share(r->reference.confidence_counts, (uint32_t)b, r->reference.n_samples),
                (unsigned long long)r->current.confidence_counts[b],
                100 * share(r->current.confidence_counts, (uint32_t)b, r->current.n_samples));
    }
    print_distances(out, r->confidence_psi, r->confidence_js);
    fprintf(out, "\n  mean confidence %.4f -> %.4f   mean entropy %.4f -> %.4f nats\n",
            r->reference.mean_confidence, r->current.mean_confidence, r->reference.mean_entropy,
            r->current.mean_entropy);

    if (r->has_recall && c <= MAX_TABLE_CLASSES) {
        fprintf(out, "\nRecall by class\n  %-16s %10s %10s %10s\n", "class", "reference", "current",
                "shift");
        for (uint32_t k = 0; k < c; k++) {
            double a = r->recall_reference[k], b = r->recall_current[k];
            fprintf(out, "  %-16s", class_label(r, k, label, sizeof label));
            const double values[3] = {a, b, b - a};
            for (int i = 0; i < 3; i++)
                if (isnan(values[i]))
                    fprintf(out, " %10s", "n/a");
                else
                    fprintf(out, i == 2 ? " %+10.4f" : " %10.4f", values[i]);
            fputc('\n', out);
        }
        fprintf(out, "  (n/a: no sample of that class in the file's labels)\n");
    }

    fprintf(out, "\nThresholds: PSI warn %g / alert %g, JS alert %g, chi-squared alpha %g\n",
            r->thresholds.psi_warn, r->thresholds.psi_alert, r->thresholds.js_alert,
            r->thresholds.alpha);
    findings *f = calloc(1, sizeof *f);
    if (!f) return;
    build_findings(r, f);
    fprintf(out, "\nFindings\n");
    for (int i = 0; i < f->n; i++)
        fprintf(out, "  - %s\n", f->lines[i]);
    free(f);
}
