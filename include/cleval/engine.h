/* The batch loops that turn a data file into results: read a batch, run it on the device,
 * accumulate counts, optionally save predictions. One function per kind of job. */
#ifndef CLEVAL_ENGINE_H
#define CLEVAL_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "cleval/device.h"
#include "cleval/knn.h"
#include "cleval/metrics.h"
#include "cleval/report.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called after each batch with the samples done so far. */
typedef void (*cleval_progress_fn)(uint64_t done, uint64_t total, void *user);

enum { CLEVAL_DEFAULT_METRICS_BATCH = 1 << 20 };

/* `cleval metrics`: confusion counts from saved labels and predictions. */
typedef struct cleval_metrics_job {
    const char *data_path;
    const char *y_key;     /* NULL: "y" */
    const char *pred_key;  /* NULL: "pred" */
    uint64_t batch;        /* rows per batch; 0: CLEVAL_DEFAULT_METRICS_BATCH */
    const char *save_path; /* NULL: no prediction file */
    cleval_device *device;
    cleval_progress_fn progress;
    void *progress_user;
} cleval_metrics_job;

typedef struct cleval_metrics_outcome {
    cleval_confusion confusion; /* C = max(label) + 1 over y and pred */
    uint64_t n_samples;
    cleval_class_names class_names; /* from the file's class_names, if any */
    double read_s;   /* time in HDF5 reads and label checks */
    double reduce_s; /* time enqueueing and waiting for the device reduction */
} cleval_metrics_outcome;

/* Streams y and pred in batches through the device histogram. */
cleval_status cleval_engine_metrics(const cleval_metrics_job *job, cleval_metrics_outcome *out);

/* Frees what an outcome holds; a zeroed struct is a no-op. */
void cleval_metrics_outcome_free(cleval_metrics_outcome *out);

/* What a run of a model (network or KNN) over a test set produced. */
typedef struct cleval_predict_outcome {
    uint64_t n_samples;
    uint32_t n_classes;
    bool has_labels;               /* the test set had labels: `confusion` is filled */
    cleval_confusion confusion;    /* true class x predicted class */
    uint64_t *predicted_counts;    /* [n_classes]: samples predicted as each class */
    cleval_class_names class_names;
    double read_s;    /* HDF5 reads and checks of the test set */
    double compute_s; /* the model and the on-device counting */
} cleval_predict_outcome;

void cleval_predict_outcome_free(cleval_predict_outcome *out);

/* The test-set side shared by `eval` and `knn`. */
typedef struct cleval_test_set {
    const char *data_path;
    const char *x_key;     /* NULL: "X" */
    const char *y_key;     /* NULL: "y" */
    uint64_t batch;        /* samples per batch; 0: the model's preferred size */
    const char *save_path; /* NULL: no prediction file */
    cleval_progress_fn progress;
    void *progress_user;
} cleval_test_set;

enum { CLEVAL_DEFAULT_KNN_BATCH = 4096 };

/* `cleval knn`: the KNN baseline over a test set. */
typedef struct cleval_knn_job {
    const char *train_path;
    cleval_knn_config config; /* k, weights, metric; n_classes is computed from the labels */
    cleval_test_set test;
    cleval_device *device;
} cleval_knn_job;

typedef struct cleval_knn_outcome {
    cleval_predict_outcome predict;
    uint64_t n_train;
    cleval_knn_stats stats;
    double load_s; /* reading the training set and laying it out on the device */
} cleval_knn_outcome;

/* Loads the training set (labels required), then classifies the test set in batches. C is
 * max(label) + 1 over the training and test labels. */
cleval_status cleval_engine_knn(const cleval_knn_job *job, cleval_knn_outcome *out);

/* Seconds on a monotonic clock. */
double cleval_seconds(void);

#ifdef __cplusplus
}
#endif

#endif
