/* Classification metrics from confusion counts: accuracy, per-class precision, recall, F1 and
 * support, and their macro, weighted and micro averages, in double precision and bit for bit
 * as scikit-learn computes them (precision_recall_fscore_support with zero_division=0). */
#ifndef CLEVAL_METRICS_H
#define CLEVAL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "cleval/counts.h"
#include "cleval/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exact counts; partial matrices over disjoint samples add up to the whole. Held densely or
 * sparsely by class count (counts.h): read them through cleval_counts_get/next/sorted. */
typedef struct cleval_confusion {
    uint32_t n_classes;
    cleval_counts counts; /* n_classes x n_classes: row = true class, column = predicted class */
} cleval_confusion;

/* An all-zero n_classes x n_classes matrix. */
cleval_status cleval_confusion_init(cleval_confusion *cm, uint32_t n_classes);

/* Frees the counts; a zeroed struct is a no-op. */
void cleval_confusion_free(cleval_confusion *cm);

/* Widens to n_classes (at least the current count), keeping every count. */
cleval_status cleval_confusion_grow(cleval_confusion *cm, uint32_t n_classes);

/* Adds `part` into `into`, widening `into` when `part` has more classes. */
cleval_status cleval_confusion_add(cleval_confusion *into, const cleval_confusion *part);

uint64_t cleval_confusion_total(const cleval_confusion *cm);

/* One precision / recall / F1 triple. */
typedef struct cleval_prf {
    double precision;
    double recall;
    double f1;
} cleval_prf;

typedef struct cleval_class_metrics {
    cleval_prf prf;
    uint64_t support;   /* samples whose true class this is */
    uint64_t predicted; /* samples predicted as this class */
    uint64_t correct;   /* true positives */
} cleval_class_metrics;

/* The weightings of Cohen's kappa: disagreements count 1, |i - j| or (i - j)^2, where i and j
 * are positions among the classes that occur (scikit-learn's weights None, 'linear',
 * 'quadratic'). */
enum { CLEVAL_KAPPA_NONE, CLEVAL_KAPPA_LINEAR, CLEVAL_KAPPA_QUADRATIC, CLEVAL_KAPPA_WEIGHTINGS };

typedef struct cleval_metrics {
    uint32_t n_classes;
    uint64_t n_samples;
    uint64_t n_correct;
    double accuracy;
    cleval_prf macro;    /* unweighted mean over all classes, absent ones included */
    cleval_prf weighted; /* mean weighted by support */
    cleval_prf micro;    /* from pooled counts; equals accuracy for single-label data */
    cleval_class_metrics *per_class; /* [n_classes] */
    /* From the whole matrix, over the classes that occur in y or in pred (see derived.c). */
    double balanced_accuracy; /* mean recall over the classes with support */
    double mcc;               /* Matthews' correlation; 0 when a denominator is 0 */
    double cohen_kappa[CLEVAL_KAPPA_WEIGHTINGS]; /* NaN when undefined */
} cleval_metrics;

/* Computes every metric from the counts. Fails with CLEVAL_ERR_INPUT when the matrix holds no
 * samples. Free the result with cleval_metrics_free(). */
cleval_status cleval_metrics_compute(const cleval_confusion *cm, cleval_metrics *out);

/* Fills balanced_accuracy, mcc and cohen_kappa of `m` (whose counts come from `cm`) as
 * scikit-learn's balanced_accuracy_score, matthews_corrcoef and cohen_kappa_score compute them
 * for the labels behind `cm`, bit for bit (cleval_metrics_compute calls it). */
cleval_status cleval_metrics_derive(const cleval_confusion *cm, cleval_metrics *m);

/* Frees per_class; a zeroed struct is a no-op. */
void cleval_metrics_free(cleval_metrics *m);

/* Sums in numpy's pairwise order (blocks of 128 with 8 accumulators), so a mean computed here
 * equals numpy's to the last bit. */
double cleval_sum_pairwise(const double *values, size_t n);

#ifdef __cplusplus
}
#endif

#endif
