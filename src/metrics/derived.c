/* Metrics of the whole confusion matrix: balanced accuracy, Matthews' correlation coefficient
 * and Cohen's kappa, computed as scikit-learn computes them, operation for operation, so the
 * results match its balanced_accuracy_score, matthews_corrcoef and cohen_kappa_score bit for
 * bit.
 *
 * scikit-learn builds its matrix over the labels that occur in y or in pred, while cleval's
 * covers 0..C-1; so classes that occur in neither are left out here (this matters for kappa,
 * whose linear and quadratic weights are distances between positions in that label list).
 * Sums of counts are exact integers in float64 as long as n_samples^2 < 2^53 (about 94 million
 * samples); beyond that their order, which numpy leaves to BLAS for the dot products of MCC,
 * may move the last bits. */
#include "cleval/metrics.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

/* The classes that occur in y or in pred, in label order. */
static uint32_t *present_classes(const cleval_metrics *m, uint32_t *n)
{
    uint32_t *present = malloc((m->n_classes ? m->n_classes : 1) * sizeof *present);
    *n = 0;
    for (uint32_t k = 0; present && k < m->n_classes; k++)
        if (m->per_class[k].support > 0 || m->per_class[k].predicted > 0) present[(*n)++] = k;
    return present;
}

/* numpy.mean of the recalls of the classes with support (the others are NaN there and
 * dropped). */
static double balanced_accuracy(const cleval_metrics *m, double *recalls)
{
    size_t n = 0;
    for (uint32_t k = 0; k < m->n_classes; k++)
        if (m->per_class[k].support > 0)
            recalls[n++] = (double)m->per_class[k].correct / (double)m->per_class[k].support;
    return cleval_sum_pairwise(recalls, n) / (double)n;
}

/* matthews_corrcoef: cov(yt, yp) / sqrt(cov(yp, yp) cov(yt, yt)) from float64 sums of the
 * counts, 0 when the denominator is. */
static double mcc(const cleval_metrics *m)
{
    double dot_tp = 0.0, dot_pp = 0.0, dot_tt = 0.0;
    for (uint32_t k = 0; k < m->n_classes; k++) {
        double t = (double)m->per_class[k].support, p = (double)m->per_class[k].predicted;
        dot_tp += t * p;
        dot_pp += p * p;
        dot_tt += t * t;
    }
    double n_samples = (double)m->n_samples, n_correct = (double)m->n_correct;
    double cov_ytyp = n_correct * n_samples - dot_tp;
    double cov_ypyp = n_samples * n_samples - dot_pp;
    double cov_ytyt = n_samples * n_samples - dot_tt;
    double cov_ypyp_ytyt = cov_ypyp * cov_ytyt;
    return cov_ypyp_ytyt == 0.0 ? 0.0 : cov_ytyp / sqrt(cov_ypyp_ytyt);
}

/* What cohen_kappa_score sums over its k x k matrices (row-major, i: y's class, j: pred's). */
typedef struct kappa_terms {
    const cleval_confusion *cm;
    const cleval_metrics *m;
    const uint32_t *present;
    uint32_t k;
    int weighting;
    bool expected; /* the weighted expected counts rather than the weighted counts */
} kappa_terms;

static double kappa_weight(int weighting, uint32_t i, uint32_t j)
{
    double d = (double)j - (double)i;
    if (weighting == CLEVAL_KAPPA_NONE) return i == j ? 0.0 : 1.0;
    return weighting == CLEVAL_KAPPA_LINEAR ? fabs(d) : d * d;
}

/* Term `index` of the flattened matrix: w[i][j] * confusion[i][j], or w[i][j] * expected[i][j]
 * with expected = outer(sum0, sum1) / n: sum0 (column sums) are the predicted counts and sum1
 * (row sums) the supports, so expected[i][j] = predicted[i] * support[j] / n. */
static double kappa_term(const kappa_terms *t, size_t index)
{
    uint32_t i = (uint32_t)(index / t->k), j = (uint32_t)(index % t->k);
    uint32_t ci = t->present[i], cj = t->present[j];
    double w = kappa_weight(t->weighting, i, j);
    if (!t->expected) return w * (double)cleval_counts_get(&t->cm->counts, ci, cj);
    double outer = (double)t->m->per_class[ci].predicted * (double)t->m->per_class[cj].support;
    return w * (outer / (double)t->m->n_samples);
}

/* numpy's pairwise sum of terms [first, first + n), generated block by block so the k x k
 * matrix is never stored: the same splits as cleval_sum_pairwise. */
static double sum_terms(const kappa_terms *t, size_t first, size_t n)
{
    enum { BLOCK = 128 };
    if (n <= BLOCK) {
        double block[BLOCK];
        for (size_t i = 0; i < n; i++)
            block[i] = kappa_term(t, first + i);
        return cleval_sum_pairwise(block, n);
    }
    size_t half = n / 2;
    half -= half % 8;
    return sum_terms(t, first, half) + sum_terms(t, first + half, n - half);
}

/* cohen_kappa_score: 1 - sum(w * confusion) / sum(w * expected), NaN (its
 * replace_undefined_by) when the denominator is 0. */
static double cohen_kappa(const cleval_confusion *cm, const cleval_metrics *m,
                          const uint32_t *present, uint32_t k, int weighting)
{
    kappa_terms t = {cm, m, present, k, weighting, false};
    size_t cells = (size_t)k * k;
    double numerator = sum_terms(&t, 0, cells);
    t.expected = true;
    double denominator = sum_terms(&t, 0, cells);
    if (denominator == 0.0) return NAN;
    return 1.0 - numerator / denominator;
}

cleval_status cleval_metrics_derive(const cleval_confusion *cm, cleval_metrics *m)
{
    uint32_t k;
    uint32_t *present = present_classes(m, &k);
    double *recalls = malloc((m->n_classes ? m->n_classes : 1) * sizeof *recalls);
    if (!present || !recalls) {
        free(present);
        free(recalls);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory computing kappa and MCC");
    }
    m->balanced_accuracy = balanced_accuracy(m, recalls);
    m->mcc = mcc(m);
    for (int w = 0; w < CLEVAL_KAPPA_WEIGHTINGS; w++)
        m->cohen_kappa[w] = cohen_kappa(cm, m, present, k, w);
    free(present);
    free(recalls);
    return CLEVAL_OK;
}
