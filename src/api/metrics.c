/* cleval_run_metrics(): `cleval metrics` on labels and predictions in memory. */
#include "api_internal.h"

cleval_status cleval_run_metrics(const cleval_array *y, const cleval_array *pred,
                                 const cleval_array *scores, const cleval_options *options,
                                 cleval_result **result)
{
    if (!result) return cleval_fail(CLEVAL_ERR_USAGE, "cleval_run_metrics: result is NULL");
    *result = NULL;
    if (!y || !pred)
        return cleval_fail(CLEVAL_ERR_USAGE, "cleval_run_metrics: y and pred are required");
    double start = cleval_seconds();
    cleval_options defaults;
    const cleval_options *o = api_options(options, &defaults);
    static const char label[] = "arrays";
    const cleval_predictions saved = {.y = y, .pred = pred, .scores = scores};
    cleval_dataset *data = NULL;
    api_devices devices = {0};
    cleval_predict_outcome outcome = {0};
    cleval_status status = api_predictions_dataset(&saved, label, &data);
    if (status == CLEVAL_OK) status = api_devices_open(o->device, &devices);
    if (status == CLEVAL_OK) {
        cleval_metrics_job job = {.data_path = label,
                                  .data = data,
                                  .batch = o->batch,
                                  .top_k = o->top_k,
                                  .run = {.devices = devices.devices,
                                          .n_devices = devices.n,
                                          .max_classes = o->max_classes}};
        status = cleval_engine_metrics(&job, &outcome);
    }
    if (status == CLEVAL_OK) {
        cleval_run_timing timing = {.device = devices.names,
                                    .total_s = cleval_seconds() - start,
                                    .n_samples = outcome.n_samples};
        cJSON *extra = cJSON_CreateObject();
        cJSON *breakdown = cJSON_AddObjectToObject(extra, "timing_breakdown");
        cJSON_AddNumberToObject(breakdown, "read_s", outcome.read_s);
        cJSON_AddNumberToObject(breakdown, "wait_s", outcome.wait_s);
        status = api_prediction_result(&outcome, &timing, extra, o, result);
    }
    cleval_predict_outcome_free(&outcome);
    api_devices_close(&devices);
    cleval_dataset_close(data);
    return status;
}
