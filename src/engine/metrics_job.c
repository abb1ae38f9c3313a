/* `cleval metrics`: streams (y, pred) batches from an HDF5 file through the device histogram.
 * The class count is max(label) + 1 over both arrays; it is discovered while streaming (a
 * device histogram widens when a batch holds a larger label), so the file is read once. */
#include "engine_internal.h"

#include <string.h>

cleval_status cleval_engine_metrics(const cleval_metrics_job *job, cleval_predict_outcome *out)
{
    memset(out, 0, sizeof *out);
    const char *y_key = job->y_key ? job->y_key : "y";
    const char *pred_key = job->pred_key ? job->pred_key : "pred";
    cleval_dataset *ds = NULL;
    cleval_column *y = NULL, *pred = NULL;
    cleval_status status;
    if ((status = engine_open_data(job->data_path, job->run.max_classes, &ds)) ||
        (status = cleval_column_open(ds, y_key, CLEVAL_COLUMN_LABELS, &y)) ||
        (status = cleval_column_open(ds, pred_key, CLEVAL_COLUMN_LABELS, &pred)))
        goto done;
    uint64_t n = cleval_column_rows(y);
    if (n != cleval_column_rows(pred)) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' has %llu samples but '%s' has %llu",
                             job->data_path, y_key, (unsigned long long)n, pred_key,
                             (unsigned long long)cleval_column_rows(pred));
        goto done;
    }
    if (n == 0) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: zero samples in '%s'", job->data_path, y_key);
        goto done;
    }
    uint64_t batch = job->batch ? job->batch : CLEVAL_DEFAULT_METRICS_BATCH;
    if (batch > INT32_MAX) batch = INT32_MAX;
    engine_run_spec spec = {.command = "metrics",
                            .data = ds,
                            .labels = y,
                            .file_pred = pred,
                            .batch = (uint32_t)batch,
                            .model_description = "saved predictions",
                            .save_path = job->save_path,
                            .save_counts = true};
    status = engine_run(&spec, &job->run, out);
done:
    cleval_column_close(y);
    cleval_column_close(pred);
    cleval_dataset_close(ds);
    return status;
}
