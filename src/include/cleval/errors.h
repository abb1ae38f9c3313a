/* Error analysis (--errors N): for the most confused (true, predicted) pairs, the first N rows
 * of the test file in each; and, when the run has scores, the N most confident wrong and the
 * N least confident right predictions. The confidence lists are selected per batch on an
 * OpenCL device (kernels/errors.cl) and merged into running host lists of at most N rows, so
 * no batch's scores stay on the host; every list is ordered by (confidence, row) and keeps the
 * lowest rows on ties, so the result does not depend on the batch size or the devices. */
#ifndef CLEVAL_ERRORS_H
#define CLEVAL_ERRORS_H

#include <stdbool.h>
#include <stdint.h>

#include "cleval/device.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CLEVAL_ERRORS_MAX = 10000,   /* the largest N: each list holds at most N rows */
    CLEVAL_ERRORS_TOP_PAIRS = 10 /* pairs listed: the report's CLEVAL_REPORT_TOP_PAIRS */
};

/* The confidence lists, each kept under both views of the scores as probabilities (as given,
 * softmax) until the run knows which one its metrics use: list index = kind * 2 + view. */
typedef enum cleval_error_kind {
    CLEVAL_ERROR_CONFIDENT_WRONG,   /* wrong predictions, highest confidence first */
    CLEVAL_ERROR_UNCONFIDENT_RIGHT, /* right predictions, lowest confidence first */
} cleval_error_kind;
enum { CLEVAL_ERROR_VIEWS = 2, CLEVAL_ERROR_LISTS = 2 * CLEVAL_ERROR_VIEWS };

/* One listed row: its row in the test file, its classes and the maximum probability. */
typedef struct cleval_error_sample {
    uint64_t index;
    int32_t true_class, predicted_class;
    float confidence;
} cleval_error_sample;

/* A most confused pair: its count and the first rows (at most N) in file order. */
typedef struct cleval_confused_samples {
    uint32_t true_class, predicted_class;
    uint64_t count;
    uint32_t n_indices;
    uint64_t *indices;
} cleval_confused_samples;

/* The finished analysis (n == 0: none was asked for). */
typedef struct cleval_errors {
    uint32_t n;
    uint32_t n_pairs; /* the top off-diagonal cells, largest count first, then (true, pred) */
    cleval_confused_samples *pairs;
    bool has_scores;               /* the two lists below are filled */
    bool softmax;                  /* their confidences are softmax probabilities, not the scores */
    uint32_t n_lists[2];           /* by cleval_error_kind */
    cleval_error_sample *lists[2]; /* by cleval_error_kind */
} cleval_errors;

/* Frees what `e` holds and zeroes it; a zeroed struct is a no-op. */
void cleval_errors_free(cleval_errors *e);

/* The host side: the running lists of one run. Not thread-safe: one thread adds. */
typedef struct cleval_errors_collector cleval_errors_collector;

/* n in [1, CLEVAL_ERRORS_MAX]; with_scores: the confidence lists are kept too. */
cleval_status cleval_errors_collector_create(uint32_t n, bool with_scores,
                                             cleval_errors_collector **out);
void cleval_errors_collector_destroy(cleval_errors_collector *c);
uint32_t cleval_errors_collector_n(const cleval_errors_collector *c);

/* Adds the misclassified rows of a batch (file rows row0..row0 + n - 1) to their pairs. */
cleval_status cleval_errors_add_pairs(cleval_errors_collector *c, uint64_t row0, uint32_t n,
                                      const int32_t *labels, const int32_t *pred);

/* Merges a batch's picks for list `list` (kind * 2 + view) into the running list. */
cleval_status cleval_errors_add_picks(cleval_errors_collector *c, uint32_t list,
                                      const cleval_error_sample *picks, uint32_t n_picks);

/* The result: the top pairs of the counts seen, and the confidence lists of the view the score
 * metrics chose (softmax: true when any row was not a probability row). */
cleval_status cleval_errors_finish(cleval_errors_collector *c, bool softmax, cleval_errors *out);

/* The device side: per batch, the N best rows of each list, selected on the device. */
typedef struct cleval_error_finder cleval_error_finder;

/* For batches of up to max_rows rows of n_classes scores, N = n. */
cleval_status cleval_error_finder_create(cleval_device *dev, uint32_t n_classes, uint32_t n,
                                         uint32_t max_rows, cleval_error_finder **out);
void cleval_error_finder_destroy(cleval_error_finder *f);

/* Picks per list: at most min(N, max_rows). */
uint32_t cleval_error_finder_capacity(const cleval_error_finder *f);

/* Selects, for each of the CLEVAL_ERROR_LISTS lists, the best min(N, candidates) rows of a
 * batch: scores float [rows][n_classes], labels and pred int32 [rows] on the device, and the
 * same labels and predictions on the host (labels_host, pred_host) to fill the picks. Rows
 * whose confidence is NaN are in no list. picks: [CLEVAL_ERROR_LISTS][capacity], n_picks:
 * [CLEVAL_ERROR_LISTS], each list in no particular order; indices are row0 + batch row. Waits
 * for the device. */
cleval_status cleval_error_finder_run(cleval_error_finder *f, cl_mem scores, cl_mem labels,
                                      cl_mem pred, uint32_t rows, uint64_t row0,
                                      const int32_t *labels_host, const int32_t *pred_host,
                                      cleval_error_sample *picks, uint32_t *n_picks);

#ifdef __cplusplus
}
#endif

#endif
