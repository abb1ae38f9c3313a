/* The batch loops that turn a data file into results: read a batch, run it on the device,
 * accumulate counts, optionally save predictions. One function per kind of job. */
#ifndef CLEVAL_ENGINE_H
#define CLEVAL_ENGINE_H

#include <stdint.h>

#include "cleval/device.h"
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

/* Seconds on a monotonic clock. */
double cleval_seconds(void);

#ifdef __cplusplus
}
#endif

#endif
