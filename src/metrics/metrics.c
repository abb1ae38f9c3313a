/* Metrics from confusion counts, following scikit-learn's arithmetic step for step: integer
 * sums, one float64 division per ratio, zero_division=0, and averages summed in numpy's
 * pairwise order, so reports match scikit-learn bit for bit. */
#include "cleval/metrics.h"

#include <stdlib.h>

double cleval_sum_pairwise(const double *values, size_t n)
{
    enum { BLOCK = 128 };
    if (n < 8) {
        double sum = 0.0;
        for (size_t i = 0; i < n; i++)
            sum += values[i];
        return sum;
    }
    if (n <= BLOCK) {
        double r[8];
        for (int j = 0; j < 8; j++)
            r[j] = values[j];
        size_t i = 8;
        for (; i < n - n % 8; i += 8)
            for (int j = 0; j < 8; j++)
                r[j] += values[i + j];
        double sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            sum += values[i];
        return sum;
    }
    size_t half = n / 2;
    half -= half % 8;
    return cleval_sum_pairwise(values, half) + cleval_sum_pairwise(values + half, n - half);
}

/* numerator / denominator, or 0 when the denominator is 0 (zero_division=0). */
static double ratio(double numerator, double denominator)
{
    return denominator == 0.0 ? 0.0 : numerator / denominator;
}

static cleval_prf prf_of(uint64_t tp, uint64_t predicted, uint64_t support)
{
    cleval_prf prf;
    prf.precision = ratio((double)tp, (double)predicted);
    prf.recall = ratio((double)tp, (double)support);
    /* scikit-learn >= 1.3: F = (1 + b^2) tp / (b^2 (tp + fn) + (tp + fp)) with b = 1. */
    prf.f1 = ratio(2.0 * (double)tp, (double)support + (double)predicted);
    return prf;
}

/* Mean of one field over classes (numpy.mean), or its support-weighted mean (numpy.average
 * with weights: sum(value * weight) / sum(weight), both sums pairwise). */
static cleval_status average(const cleval_metrics *m, cleval_prf *unweighted,
                             cleval_prf *weighted)
{
    uint32_t c = m->n_classes;
    double *values = malloc((size_t)c * sizeof *values);
    double *weights = malloc((size_t)c * sizeof *weights);
    if (!values || !weights) {
        free(values);
        free(weights);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory averaging metrics");
    }
    for (uint32_t k = 0; k < c; k++)
        weights[k] = (double)m->per_class[k].support;
    double weight_sum = cleval_sum_pairwise(weights, c);

    for (int field = 0; field < 3; field++) {
        for (uint32_t k = 0; k < c; k++) {
            const cleval_prf *p = &m->per_class[k].prf;
            values[k] = field == 0 ? p->precision : field == 1 ? p->recall : p->f1;
        }
        double mean = cleval_sum_pairwise(values, c) / (double)c;
        for (uint32_t k = 0; k < c; k++)
            values[k] *= weights[k];
        double weighted_mean = cleval_sum_pairwise(values, c) / weight_sum;
        double *u = field == 0 ? &unweighted->precision : field == 1 ? &unweighted->recall
                                                                     : &unweighted->f1;
        double *w = field == 0 ? &weighted->precision : field == 1 ? &weighted->recall
                                                                   : &weighted->f1;
        *u = mean;
        *w = weighted_mean;
    }
    free(values);
    free(weights);
    return CLEVAL_OK;
}

cleval_status cleval_metrics_compute(const cleval_confusion *cm, cleval_metrics *out)
{
    *out = (cleval_metrics){0};
    uint32_t c = cm->n_classes;
    cleval_class_metrics *per_class = calloc(c ? c : 1, sizeof *per_class);
    if (!per_class) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory computing metrics");

    /* Row sums, column sums and the diagonal are all the metrics need: one pass over the
     * nonzero cells, whatever the backing. */
    uint64_t total = 0, correct = 0;
    size_t pos = 0;
    cleval_count_cell cell;
    while (cleval_counts_next(&cm->counts, &pos, &cell)) {
        per_class[cell.row].support += cell.count;
        per_class[cell.col].predicted += cell.count;
        total += cell.count;
        if (cell.row == cell.col) {
            correct += cell.count;
            per_class[cell.row].correct = cell.count;
        }
    }
    if (total == 0) {
        free(per_class);
        return cleval_fail(CLEVAL_ERR_INPUT, "no samples to compute metrics from");
    }
    for (uint32_t k = 0; k < c; k++) {
        per_class[k].prf = prf_of(per_class[k].correct, per_class[k].predicted,
                                  per_class[k].support);
    }
    out->n_classes = c;
    out->n_samples = total;
    out->n_correct = correct;
    out->accuracy = (double)correct / (double)total;
    out->micro = prf_of(correct, total, total);
    out->per_class = per_class;
    cleval_status status = average(out, &out->macro, &out->weighted);
    if (status == CLEVAL_OK) status = cleval_metrics_derive(cm, out);
    if (status != CLEVAL_OK) cleval_metrics_free(out);
    return status;
}

void cleval_metrics_free(cleval_metrics *m)
{
    free(m->per_class);
    m->per_class = NULL;
}
