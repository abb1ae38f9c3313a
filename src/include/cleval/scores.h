/* Score-based metrics (top-k accuracy, log loss, Brier score, expected calibration error)
 * reduced on an OpenCL device from the score rows of a run: per-work-group float partial sums
 * in a fixed order, added in double on the host. Counts are exact. */
#ifndef CLEVAL_SCORES_H
#define CLEVAL_SCORES_H

#include <stdbool.h>
#include <stdint.h>

#include "cleval/device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Calibration bins [i/15, (i+1)/15) as torchmetrics bins them; internally one more group
 * holds the confidences of exactly 1, which torchmetrics keeps apart in its error. */
enum { CLEVAL_CALIBRATION_BINS = 15, CLEVAL_SCORE_GROUPS = CLEVAL_CALIBRATION_BINS + 1 };

/* The sums of one view of the scores as probabilities. */
typedef struct cleval_score_candidate {
    double log_loss;                        /* sum of -log(clip(P[y])) */
    double brier;                           /* sum of sum_c (P[c] - onehot(y)[c])^2 */
    double confidence[CLEVAL_SCORE_GROUPS]; /* sum of max P per calibration group */
    uint64_t count[CLEVAL_SCORE_GROUPS];    /* rows per group */
    uint64_t correct[CLEVAL_SCORE_GROUPS];  /* rows per group whose first maximum is y */
} cleval_score_candidate;

/* Everything the metrics need, summed over rows; both candidates are kept until the run knows
 * whether every row was a probability row. */
typedef struct cleval_score_sums {
    uint64_t rows;
    uint64_t top_k_hits;        /* rows whose true class ranks among the top k */
    uint64_t not_probabilities; /* rows with a negative score or a sum off 1 by more than 1e-4 */
    cleval_score_candidate as_given, softmax;
} cleval_score_sums;

/* into += from. */
void cleval_score_sums_add(cleval_score_sums *into, const cleval_score_sums *from);

typedef struct cleval_calibration_bin {
    double lower, upper;
    uint64_t count;
    double confidence, accuracy; /* means over the bin; 0 when empty */
} cleval_calibration_bin;

typedef struct cleval_score_metrics {
    uint32_t top_k; /* 0: no top-k accuracy */
    double top_k_accuracy;
    bool softmax; /* the probabilities are the softmax of the scores, not the scores */
    double log_loss, brier, ece;
    cleval_calibration_bin bins[CLEVAL_CALIBRATION_BINS]; /* the last one includes 1 */
} cleval_score_metrics;

/* The metrics of `sums` (sums->rows > 0): the scores as given when every row was a probability
 * row, else their softmax. */
void cleval_score_metrics_compute(const cleval_score_sums *sums, uint32_t top_k,
                                  cleval_score_metrics *out);

/* The device side: a kernel and its partial-sum buffers for batches of up to max_rows rows of
 * n_classes scores. top_k 0 counts no hits. */
typedef struct cleval_score_reducer cleval_score_reducer;

cleval_status cleval_score_reducer_create(cleval_device *dev, uint32_t n_classes, uint32_t top_k,
                                          uint32_t max_rows, cleval_score_reducer **out);
void cleval_score_reducer_destroy(cleval_score_reducer *r);

/* The sums of the n rows of `scores` (float [n][n_classes]) with their true classes `labels`
 * (int32 [n], each below n_classes): *batch is overwritten. Waits for the device. */
cleval_status cleval_score_reducer_add(cleval_score_reducer *r, cl_mem scores, cl_mem labels,
                                       uint32_t n, cleval_score_sums *batch);

/* The same in two steps, so that several batches can be in flight: enqueue the reduction on the
 * device's queue without waiting, its partial sums coming back into host area `area` (below
 * CLEVAL_SCORE_REDUCER_AREAS; one per batch still in flight); once that queue has run it,
 * cleval_score_reducer_sums() adds them up into *batch (overwritten), exactly as
 * cleval_score_reducer_add() does. */
enum { CLEVAL_SCORE_REDUCER_AREAS = 3 };
cleval_status cleval_score_reducer_enqueue(cleval_score_reducer *r, cl_mem scores, cl_mem labels,
                                           uint32_t n, uint32_t area);
void cleval_score_reducer_sums(const cleval_score_reducer *r, uint32_t n, uint32_t area,
                               cleval_score_sums *batch);

#ifdef __cplusplus
}
#endif

#endif
