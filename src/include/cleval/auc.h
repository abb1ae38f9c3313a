/* ROC-AUC and average precision, one-vs-rest, computed on an OpenCL device as scikit-learn
 * computes them (equal scores form one threshold). The score rows of a run stay on the device
 * (the host holds no N x C array): per class, a device sort by score, a scan that collapses
 * equal scores into groups of (true positives, false positives), and host sums over those
 * integer counts read back in bounded chunks. */
#ifndef CLEVAL_AUC_H
#define CLEVAL_AUC_H

#include <stdbool.h>
#include <stdint.h>

#include "cleval/device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* When a run computes them: AUTO up to CLEVAL_AUC_AUTO_MAX_CLASSES classes, ON always, OFF
 * never. */
typedef enum cleval_auc_mode {
    CLEVAL_AUC_AUTO = 0,
    CLEVAL_AUC_ON,
    CLEVAL_AUC_OFF,
} cleval_auc_mode;

enum { CLEVAL_AUC_AUTO_MAX_CLASSES = 100 };

/* Whether a run of n_classes score columns computes them in `mode`. */
bool cleval_auc_wanted(cleval_auc_mode mode, uint32_t n_classes);

/* The averages over the classes that have both a positive and a negative sample; `weighted`
 * weighs each class by its positives. classes == 0: no class qualifies (null in reports). */
typedef struct cleval_auc_result {
    uint32_t classes;
    double roc_macro, roc_weighted;
    double ap_macro, ap_weighted;
} cleval_auc_result;

/* The device side: room for `capacity` rows of n_classes scores and their labels. */
typedef struct cleval_auc_store cleval_auc_store;

/* Allocates the store on `dev`. When the buffers do not fit the device (one above
 * CL_DEVICE_MAX_MEM_ALLOC_SIZE, or all together above its global memory) it fails with
 * CLEVAL_ERR_INPUT, naming the sizes and --auc. */
cleval_status cleval_auc_store_create(cleval_device *dev, uint32_t n_classes, uint64_t capacity,
                                      cleval_auc_store **out);
void cleval_auc_store_destroy(cleval_auc_store *s);

/* Copies n rows (scores: float [n][n_classes], labels: int32 [n], each below n_classes) from
 * buffers of `from` into rows [row, row + n) of the store; safe to call from several threads,
 * each with its own device. On the store's own device the copy is only enqueued (its queue
 * keeps the order); rows of another device are read into host memory when the call returns and
 * written by the store's device at its next put or at compute, so that no thread enqueues on
 * another thread's device. */
cleval_status cleval_auc_store_put(cleval_auc_store *s, cleval_device *from, cl_mem scores,
                                   cl_mem labels, uint64_t row, uint32_t n);

/* The metrics over rows [0, n_rows), every one of them put (call it once the putting threads
 * are done): the scores as given, or (softmax)
 * the softmax of each row, as the other score metrics take them. Overwrites the stored scores
 * with the softmax, so call it once. */
cleval_status cleval_auc_store_compute(cleval_auc_store *s, uint64_t n_rows, bool softmax,
                                       cleval_auc_result *out);

#ifdef __cplusplus
}
#endif

#endif
