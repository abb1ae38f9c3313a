/* The k-nearest-neighbours baseline on an OpenCL device: a training set held on the device
 * (in tiles when it does not fit), searched exactly for batches of queries, with the votes and
 * vote-fraction scores computed on the device.
 *
 * Semantics (docs/contract.md): Euclidean or cosine distance; the k nearest by (distance, training
 * index), so equal distances keep the lower index; uniform or inverse-distance votes, where a
 * neighbour at distance 0 takes all the weight; equal votes go to the smallest label.
 * Distances are those of a float64 computation: a float32 matrix-multiply screening keeps
 * extra candidates, which are re-ranked in float64, and a bound on the screening's rounding
 * error proves no neighbour was missed (queries it cannot prove are searched again with more
 * candidates until it can). */
#ifndef CLEVAL_KNN_H
#define CLEVAL_KNN_H

#include <stdint.h>

#include "cleval/dataset.h"
#include "cleval/device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cleval_knn cleval_knn;

typedef enum cleval_knn_weights {
    CLEVAL_KNN_UNIFORM,  /* every neighbour one vote */
    CLEVAL_KNN_DISTANCE, /* votes weighted by 1 / distance */
} cleval_knn_weights;

typedef enum cleval_knn_metric {
    CLEVAL_KNN_EUCLIDEAN,
    CLEVAL_KNN_COSINE, /* 1 - cos(q, r); a zero vector has cosine 0 with everything */
} cleval_knn_metric;

/* "uniform", "distance"; "euclidean", "cosine": the CLI's and the reports' names. */
const char *cleval_knn_weights_name(cleval_knn_weights weights);
const char *cleval_knn_metric_name(cleval_knn_metric metric);

typedef struct cleval_knn_config {
    uint32_t k;         /* 1 <= k <= n_train */
    cleval_knn_weights weights;
    cleval_knn_metric metric;
    uint32_t n_classes; /* labels are 0 .. n_classes - 1 */
    uint32_t margin;    /* screening candidates kept beyond k + 1; 0: automatic */
    uint64_t device_budget_bytes; /* device memory for the training set; 0: half the device's */
    uint64_t tile_rows; /* training rows per device tile; 0: as many as one buffer holds */
    /* A type every training and query value fits exactly (CLEVAL_ELEM_F32, the zero value:
     * any float). An 8- or 16-bit integer type selects the integer mode for Euclidean
     * distances on devices with float64: exact integer distances, no re-ranking (see
     * cleval_knn_integer_type()). Values outside the type are refused (CLEVAL_ERR_USAGE). */
    cleval_elem_type values;
} cleval_knn_config;

/* Counters over every search so far. */
typedef struct cleval_knn_stats {
    uint64_t queries;
    uint64_t distance_ties; /* queries whose k-th and (k+1)-th distances are equal */
    uint64_t vote_ties;     /* queries whose top vote was shared by two or more classes */
    uint64_t searched_again; /* queries the screening bound could not prove at first */
    double screen_s;        /* device time in the screening matrix multiply */
    double exact_s;         /* device time in re-ranking and voting */
} cleval_knn_stats;

/* A searcher for n_train references of `dim` features. Fails with CLEVAL_ERR_USAGE (naming
 * the value) when k is 0 or above n_train, or n_train is 0. */
cleval_status cleval_knn_create(cleval_device *dev, const cleval_knn_config *config,
                                uint64_t n_train, uint32_t dim, cleval_knn **out);

/* Releases everything. NULL is a no-op. */
void cleval_knn_destroy(cleval_knn *knn);

/* Stores training rows [row0, row0 + n) (features row-major, labels in 0..n_classes-1). Every
 * row must be set once before cleval_knn_prepare(). */
cleval_status cleval_knn_set_train(cleval_knn *knn, uint64_t row0, uint64_t n, const float *x,
                                   const int32_t *y);

/* Lays the training set out for the device (packed panels on CPUs) and uploads the tiles that
 * stay resident. */
cleval_status cleval_knn_prepare(cleval_knn *knn);

/* The most queries one cleval_knn_search() call takes (memory for candidates and votes). */
uint32_t cleval_knn_max_batch(const cleval_knn *knn);

/* Classifies nq queries (row-major, dim floats each): pred[nq] and, when scores is not NULL,
 * vote fractions scores[nq][n_classes]. The predictions also stay in the device buffer
 * returned by cleval_knn_pred_buffer() until the next search. */
cleval_status cleval_knn_search(cleval_knn *knn, const float *queries, uint32_t nq,
                                int32_t *pred, float *scores);

/* int32 [nq] predictions of the last search, on the device. */
cl_mem cleval_knn_pred_buffer(const cleval_knn *knn);
/* float [nq][n_classes] vote fractions of the last search (given `scores`) or vote, on the
 * device: the same values as the host's `scores`, until the next search. */
cl_mem cleval_knn_scores_buffer(const cleval_knn *knn);

const cleval_knn_stats *cleval_knn_get_stats(const cleval_knn *knn);

/* The integer type the search computes exact distances in, or CLEVAL_ELEM_F32 when it runs the
 * float screening and float64 re-ranking (cosine, float data, no float64, or a training set
 * that does not stay resident). Final after cleval_knn_prepare(). */
cleval_elem_type cleval_knn_integer_type(const cleval_knn *knn);

/* The indices of the k nearest training rows of each query of the last search, nearest
 * first (ties by lower index): neighbors[nq][k]. For tests and diagnostics. */
cleval_status cleval_knn_last_neighbors(cleval_knn *knn, uint32_t nq, int32_t *neighbors);

/* One of a query's nearest training rows, with its exact distance (squared Euclidean, or the
 * cosine distance) and label. */
typedef struct cleval_knn_candidate {
    double distance;
    int32_t index; /* -1: no such row (the training set is smaller than k + 1) */
    int32_t label;
} cleval_knn_candidate;

/* The k + 1 nearest training rows of each query of the last search (or vote), nearest first:
 * candidates[nq][k + 1]. Indices count from this searcher's first row. */
cleval_status cleval_knn_last_candidates(cleval_knn *knn, uint32_t nq,
                                         cleval_knn_candidate *candidates);

/* Votes, on the device, over candidates that several searchers of disjoint parts of one
 * training set found for the same nq queries: candidates[n_sets][nq][k + 1], each set's own
 * k + 1 nearest with indices into the whole training set. The k + 1 nearest of the union are
 * then the whole set's, so pred[nq] and scores[nq][n_classes] (may be NULL) are exactly those
 * of one searcher over everything; the device pred buffer holds them too. */
cleval_status cleval_knn_vote_candidates(cleval_knn *knn, uint32_t nq, uint32_t n_sets,
                                         const cleval_knn_candidate *candidates, int32_t *pred,
                                         float *scores);

#ifdef __cplusplus
}
#endif

#endif
