/* `cleval metrics`: streams (y, pred) batches from an HDF5 file through the device histogram.
 * The class count is max(label) + 1 over both arrays; it is discovered while streaming (a
 * device histogram widens when a batch holds a larger label), so the file is read once. A
 * `scores` dataset [N, W] adds the score-based metrics, reduced on the device as well. */
#include "engine_internal.h"

#include <stdio.h>
#include <string.h>

/* The score rows: one per sample, at least one column, no wider than the class limit (the
 * labels are checked against the width as they stream). */
static cleval_status open_scores(cleval_dataset *ds, const char *path, const char *key, uint64_t n,
                                 uint32_t max_classes, cleval_column **out)
{
    cleval_status status = cleval_column_open(ds, key, CLEVAL_COLUMN_VALUES, out);
    if (status != CLEVAL_OK) return status;
    uint64_t width = cleval_column_row_size(*out);
    if (cleval_column_rows(*out) != n || width == 0 || width > UINT32_MAX)
        return cleval_fail(CLEVAL_ERR_INPUT,
                           "%s: '%s' must be [N, C] with one row per label (N = %llu, C >= 1)",
                           path, key, (unsigned long long)n);
    char what[CLEVAL_PATH_TEXT_SIZE];
    snprintf(what, sizeof what, "%s: '%s'", path, key);
    return cleval_check_class_count(what, width, max_classes);
}

cleval_status cleval_engine_metrics(const cleval_metrics_job *job, cleval_predict_outcome *out)
{
    memset(out, 0, sizeof *out);
    const char *y_key = job->y_key ? job->y_key : "y";
    const char *pred_key = job->pred_key ? job->pred_key : "pred";
    cleval_dataset *ds = NULL;
    cleval_column *y = NULL, *pred = NULL, *scores = NULL;
    const char *scores_key = job->scores_key ? job->scores_key : "scores";
    cleval_status status;
    if ((status = engine_open_data(job->data_path, job->data, job->run.max_classes, &ds)) ||
        (status = cleval_column_open(ds, y_key, CLEVAL_COLUMN_LABELS, &y)) ||
        (status = cleval_column_open(ds, pred_key, CLEVAL_COLUMN_LABELS, &pred)) ||
        (cleval_dataset_has(ds, scores_key) &&
         (status = open_scores(ds, job->data_path, scores_key, cleval_column_rows(y),
                               job->run.max_classes, &scores))))
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
    uint64_t width = scores ? cleval_column_row_size(scores) : 0;
    if (!job->batch && width) { /* wide score rows: fewer rows per batch */
        uint64_t fit = CLEVAL_DEFAULT_METRICS_BATCH_SCORES / width;
        if (fit < batch) batch = fit ? fit : 1;
    }
    if (batch > INT32_MAX) batch = INT32_MAX;
    engine_run_spec spec = {.command = "metrics",
                            .data = ds,
                            .labels = y,
                            .file_pred = pred,
                            .batch = (uint32_t)batch,
                            .model_description = "saved predictions",
                            .save_path = job->save_path,
                            .save_counts = true,
                            .score_metrics = scores != NULL,
                            .file_scores = scores,
                            .score_width = (uint32_t)width,
                            .top_k = job->top_k,
                            .errors = job->errors,
                            .auc = job->auc};
    status = engine_run(&spec, &job->run, out);
done:
    cleval_column_close(y);
    cleval_column_close(pred);
    cleval_column_close(scores);
    cleval_dataset_close(ds);
    return status;
}
