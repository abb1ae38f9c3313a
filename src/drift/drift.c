/* `cleval drift`: both files through the device (scan.c), then PSI, Jensen-Shannon distance,
 * the chi-squared test and recall shifts from the exact counts, in numpy's and scipy's order
 * of operations so that they agree to the last few bits. */
#include "cleval/drift.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/dataset.h"
#include "cleval/metrics.h"
#include "cleval/stats.h"
#include "drift_internal.h"

cleval_drift_thresholds cleval_drift_default_thresholds(void)
{
    return (cleval_drift_thresholds){
        .psi_warn = 0.1, .psi_alert = 0.2, .js_alert = 0.1, .alpha = 0.05};
}

static void free_side(cleval_drift_side *side)
{
    free(side->class_counts);
    free(side->support);
    free(side->correct);
    side->class_counts = side->support = side->correct = NULL;
}

void cleval_drift_result_free(cleval_drift_result *r)
{
    free_side(&r->reference);
    free_side(&r->current);
    free(r->recall_reference);
    free(r->recall_current);
    r->recall_reference = r->recall_current = NULL;
    cleval_dataset_free_names(r->class_names.names, r->class_names.count);
    r->class_names.names = NULL;
    r->class_names.count = 0;
}

/* Proportions counts / total, numpy's `counts / counts.sum()`. */
static double total_of(const uint64_t *counts, uint32_t n)
{
    uint64_t total = 0;
    for (uint32_t k = 0; k < n; k++)
        total += counts[k];
    return (double)total;
}

/* x ln(x / y) as scipy.special.rel_entr evaluates it: through log1p when x and y are within a
 * factor of 2 (the Jensen-Shannon terms of two close distributions cancel, so their last bits
 * matter), through a difference of logarithms when x / y would overflow or underflow; 0 when
 * x = 0 (y >= 0), +inf when y = 0 < x. */
static double rel_entr(double x, double y)
{
    if (isnan(x) || isnan(y)) return NAN;
    if (x > 0 && y > 0) {
        double ratio = x / y;
        if (0.5 < ratio && ratio < 2) return x * log1p((x - y) / y);
        if (DBL_MIN < ratio && ratio < INFINITY) return x * log(ratio);
        return x * (log(x) - log(y));
    }
    if (x == 0 && y >= 0) return 0.0;
    return INFINITY;
}

void cleval_drift_distances(const uint64_t *reference, const uint64_t *current, uint32_t n,
                            double *psi, double *js)
{
    double *p = calloc(4 * (size_t)n + 1, sizeof *p);
    if (!p) {
        *psi = *js = NAN;
        return;
    }
    double *q = p + n, *left = q + n, *right = left + n;
    double n_ref = total_of(reference, n), n_cur = total_of(current, n);
    for (uint32_t k = 0; k < n; k++) {
        p[k] = (double)reference[k] / n_ref;
        q[k] = (double)current[k] / n_cur;
        double pf = p[k] > 0 ? p[k] : CLEVAL_DRIFT_FLOOR;
        double qf = q[k] > 0 ? q[k] : CLEVAL_DRIFT_FLOOR;
        left[k] = (qf - pf) * log(qf / pf);
    }
    *psi = cleval_sum_pairwise(left, n);

    /* scipy.spatial.distance.jensenshannon(p, q, base=2), step for step. */
    double p_sum = cleval_sum_pairwise(p, n), q_sum = cleval_sum_pairwise(q, n);
    for (uint32_t k = 0; k < n; k++) {
        double pk = p[k] / p_sum, qk = q[k] / q_sum;
        double m = (pk + qk) / 2.0;
        left[k] = rel_entr(pk, m);
        right[k] = rel_entr(qk, m);
    }
    double divergence = cleval_sum_pairwise(left, n) + cleval_sum_pairwise(right, n);
    divergence /= log(2.0);
    *js = divergence > 0 ? sqrt(divergence / 2.0) : 0.0;
    free(p);
}

void cleval_drift_chi2(const uint64_t *reference, const uint64_t *current, uint32_t n,
                       double *statistic, double *p_value)
{
    double *terms = calloc((size_t)n + 1, sizeof *terms);
    if (!terms) {
        *statistic = *p_value = NAN;
        return;
    }
    double n_ref = total_of(reference, n), n_cur = total_of(current, n);
    for (uint32_t k = 0; k < n; k++) {
        double p = (double)reference[k] / n_ref;
        double expected = (p > 0 ? p : CLEVAL_DRIFT_FLOOR) * n_cur;
        double d = (double)current[k] - expected;
        terms[k] = d * d / expected;
    }
    *statistic = cleval_sum_pairwise(terms, n);
    *p_value = n > 1 ? cleval_stats_chi2_sf(*statistic, (double)(n - 1)) : 1.0;
    free(terms);
}

static void add_alert(cleval_drift_alert *list, uint32_t *n, const char *name, double limit,
                      double value)
{
    list[*n] = (cleval_drift_alert){.name = name, .limit = limit, .value = value};
    (*n)++;
}

void cleval_drift_check(cleval_drift_result *r, const cleval_drift_thresholds *t)
{
    r->thresholds = *t;
    r->n_alerts = r->n_warnings = 0;
    const struct {
        const char *psi_name, *js_name;
        double psi, js;
    } dists[2] = {{"class_psi", "class_js", r->class_psi, r->class_js},
                  {"confidence_psi", "confidence_js", r->confidence_psi, r->confidence_js}};
    for (int i = 0; i < 2; i++) {
        if (dists[i].psi > t->psi_alert)
            add_alert(r->alerts, &r->n_alerts, dists[i].psi_name, t->psi_alert, dists[i].psi);
        else if (dists[i].psi > t->psi_warn)
            add_alert(r->warnings, &r->n_warnings, dists[i].psi_name, t->psi_warn, dists[i].psi);
        if (dists[i].js > t->js_alert)
            add_alert(r->alerts, &r->n_alerts, dists[i].js_name, t->js_alert, dists[i].js);
        if (i == 0 && r->class_p_value < t->alpha)
            add_alert(r->alerts, &r->n_alerts, "class_chi2", t->alpha, r->class_p_value);
    }
}

/* Widens a file's class arrays from its own class count to the common one. */
static cleval_status widen(drift_scan *scan, uint32_t n_classes)
{
    uint32_t c = scan->n_classes;
    if (c == n_classes) return CLEVAL_OK;
    uint64_t **arrays[] = {&scan->side.class_counts, &scan->side.support, &scan->side.correct};
    uint64_t *wider[3] = {NULL, NULL, NULL};
    bool ok = true;
    for (int i = 0; i < 3; i++) {
        if (!*arrays[i]) continue;
        wider[i] = calloc(n_classes, sizeof *wider[i]);
        if (wider[i]) memcpy(wider[i], *arrays[i], c * sizeof *wider[i]);
        ok = ok && wider[i];
    }
    if (!ok) {
        for (int i = 0; i < 3; i++)
            free(wider[i]);
        return cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory for %u class counts",
                           scan->side.path, n_classes);
    }
    for (int i = 0; i < 3; i++) {
        free(*arrays[i]);
        *arrays[i] = wider[i];
    }
    scan->n_classes = n_classes;
    return CLEVAL_OK;
}

/* Recall per class; NaN where the class has no support. */
static void recalls(const cleval_drift_side *side, uint32_t c, double *out)
{
    for (uint32_t k = 0; k < c; k++)
        out[k] = side->support[k] ? (double)side->correct[k] / (double)side->support[k] : NAN;
}

cleval_status cleval_drift_run(const cleval_drift_config *config, cleval_drift_result *out)
{
    memset(out, 0, sizeof *out);
    drift_scan ref = {0}, cur = {0};
    cl_kernel kernel = NULL;
    cleval_status status;
    if ((status = drift_scan_open(config, config->path_reference, config->data_reference, &ref)) !=
            CLEVAL_OK ||
        (status = drift_scan_open(config, config->path_current, config->data_current, &cur)) !=
            CLEVAL_OK)
        goto done;
    uint64_t n_ref = ref.side.n_samples, n_cur = cur.side.n_samples;

    out->fp64 = cleval_device_get_info(config->device)->has_fp64 && !config->force_fp32;
    char options[64];
    snprintf(options, sizeof options, "-DDRIFT_FP64=%d", out->fp64);
    if ((status = cleval_device_kernel(config->device, "drift", options, "drift_confidence",
                                       &kernel)) != CLEVAL_OK ||
        (status = drift_scan_run(config, kernel, out->fp64, 0, n_ref + n_cur, &ref)) !=
            CLEVAL_OK ||
        (status = drift_scan_run(config, kernel, out->fp64, n_ref, n_ref + n_cur, &cur)) !=
            CLEVAL_OK)
        goto done;
    uint32_t c = ref.n_classes > cur.n_classes ? ref.n_classes : cur.n_classes;
    if ((status = widen(&ref, c)) != CLEVAL_OK || (status = widen(&cur, c)) != CLEVAL_OK) goto done;

    out->n_classes = c;
    out->reference = ref.side;
    out->current = cur.side;
    ref.side = (cleval_drift_side){0};
    cur.side = (cleval_drift_side){0};
    if (ref.names.names) {
        out->class_names = ref.names;
        ref.names = (cleval_class_names){0};
    } else {
        out->class_names = cur.names;
        cur.names = (cleval_class_names){0};
    }

    cleval_drift_distances(out->reference.class_counts, out->current.class_counts, c,
                           &out->class_psi, &out->class_js);
    cleval_drift_chi2(out->reference.class_counts, out->current.class_counts, c, &out->class_chi2,
                      &out->class_p_value);
    out->class_dof = c - 1;
    cleval_drift_distances(out->reference.confidence_counts, out->current.confidence_counts,
                           CLEVAL_DRIFT_BINS, &out->confidence_psi, &out->confidence_js);
    if (isnan(out->class_psi) || isnan(out->class_chi2) || isnan(out->confidence_psi)) {
        status = cleval_fail(CLEVAL_ERR_NOMEM, "%s, %s: out of memory computing drift statistics",
                             config->path_reference, config->path_current);
        goto done;
    }
    out->has_recall = out->reference.has_labels && out->current.has_labels;
    if (out->has_recall) {
        out->recall_reference = malloc(c * sizeof *out->recall_reference);
        out->recall_current = malloc(c * sizeof *out->recall_current);
        if (!out->recall_reference || !out->recall_current) {
            status = cleval_fail(CLEVAL_ERR_NOMEM, "%s, %s: out of memory computing recalls",
                                 config->path_reference, config->path_current);
            goto done;
        }
        recalls(&out->reference, c, out->recall_reference);
        recalls(&out->current, c, out->recall_current);
    }
    cleval_drift_check(out, &config->thresholds);

done:
    if (kernel) clReleaseKernel(kernel);
    drift_scan_free(&ref);
    drift_scan_free(&cur);
    if (status != CLEVAL_OK) cleval_drift_result_free(out);
    return status;
}
