/* Integer histograms reduced on an OpenCL device: the confusion matrix (2-D: true class by
 * predicted class) and 1-D class or bin counts. Counts accumulate on the device across batches
 * and are exact; partial results from several devices or processes merge by adding them. */
#ifndef CLEVAL_HISTOGRAM_H
#define CLEVAL_HISTOGRAM_H

#include <stdint.h>

#include "cleval/device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cleval_histogram cleval_histogram;

/* The reduction strategies; cleval_histogram_create picks one from the device's kernel variant
 * and the number of bins. */
typedef enum cleval_histogram_path {
    CLEVAL_HISTOGRAM_PRIVATE, /* CPU: a private histogram per work-item over a contiguous chunk */
    CLEVAL_HISTOGRAM_SLOTS,   /* CPU, many bins: one global partial histogram per work-item */
    CLEVAL_HISTOGRAM_LOCAL,   /* GPU: a work-group histogram in local memory */
    CLEVAL_HISTOGRAM_GLOBAL,  /* GPU, many bins: atomic increments on the global histogram */
} cleval_histogram_path;

/* A histogram of n_rows x n_cols bins, all zero. n_rows == 1 makes a 1-D histogram. */
cleval_status cleval_histogram_create(cleval_device *dev, uint32_t n_rows, uint32_t n_cols,
                                      cleval_histogram **out);

/* As cleval_histogram_create, with the strategy forced (tests exercise every path). */
cleval_status cleval_histogram_create_path(cleval_device *dev, uint32_t n_rows, uint32_t n_cols,
                                           cleval_histogram_path path, cleval_histogram **out);

/* Releases everything. NULL is a no-op. */
void cleval_histogram_destroy(cleval_histogram *hist);

cleval_histogram_path cleval_histogram_get_path(const cleval_histogram *hist);
const char *cleval_histogram_path_name(cleval_histogram_path path);

/* Counts the n pairs (rows[i], cols[i]) of two int32 device buffers; `rows` is NULL for a 1-D
 * histogram (every sample in row 0). The caller guarantees 0 <= rows[i] < n_rows and
 * 0 <= cols[i] < n_cols (the dataset reader checks labels); pairs outside are skipped, never
 * written out of bounds. The work is enqueued; the buffers must stay unchanged until the next
 * call that waits on the queue. */
cleval_status cleval_histogram_add(cleval_histogram *hist, cl_mem rows, cl_mem cols, uint64_t n);

/* Counting by another module's kernel (the network's fused head): the device counts, uint32
 * [n_rows][n_cols] row-major, that such a kernel may add to with atomics, or NULL on the SLOTS
 * path (its reads overwrite them with the slots' sums). */
cl_mem cleval_histogram_atomic_target(const cleval_histogram *hist);

/* Records that a command enqueued next adds n samples to the atomic target, as
 * cleval_histogram_add does for its own (first moving the counts to the host when they could
 * overflow). Call it before enqueueing that command. */
cleval_status cleval_histogram_reserve(cleval_histogram *hist, uint64_t n);

/* Widens to new_rows x new_cols (each at least the current size) keeping every count, so a
 * reader that discovers larger labels mid-stream can continue. */
cleval_status cleval_histogram_grow(cleval_histogram *hist, uint32_t new_rows, uint32_t new_cols);

/* Waits for the device and copies the totals into `counts` (n_rows * n_cols values, row-major).
 * Accumulation may continue afterwards. */
cleval_status cleval_histogram_read(cleval_histogram *hist, uint64_t *counts);

uint32_t cleval_histogram_rows(const cleval_histogram *hist);
uint32_t cleval_histogram_cols(const cleval_histogram *hist);

#ifdef __cplusplus
}
#endif

#endif
