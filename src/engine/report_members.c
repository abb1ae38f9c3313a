/* The JSON report of a run and the members an eval or knn report adds to the metrics
 * (docs/contract.md's extensions): the model or KNN block and where the time went, shared by
 * the CLI, `cleval merge` and the library's results so that each prints the same JSON. */
#include "cleval/engine.h"

cJSON *cleval_eval_model_json(const char *path, int64_t opset, uint32_t rank, const uint64_t *shape,
                              uint32_t output_width, const char *precision)
{
    cJSON *model = cJSON_CreateObject();
    cJSON_AddStringToObject(model, "path", path);
    cJSON_AddNumberToObject(model, "opset", (double)opset);
    cJSON *dims = cJSON_AddArrayToObject(model, "input_shape");
    for (uint32_t d = 0; d < rank; d++)
        cJSON_AddItemToArray(dims, cJSON_CreateNumber((double)shape[d]));
    cJSON_AddNumberToObject(model, "output_width", output_width);
    cJSON_AddStringToObject(model, "precision", precision);
    return model;
}

void cleval_eval_mode_json(cJSON *model, const cleval_eval_mode *mode)
{
    cJSON_AddStringToObject(model, "arithmetic", mode->arithmetic);
    cJSON_AddNumberToObject(model, "prune", mode->prune);
    cJSON_AddNumberToObject(model, "calibration_samples", (double)mode->calibration_samples);
    cJSON_AddNumberToObject(model, "model_size_bytes", (double)mode->size_bytes);
    const cleval_nn_device_memory *memory = mode->device_memory;
    if (!memory) return;
    cJSON *block = cJSON_AddObjectToObject(model, "device_memory");
    cJSON_AddNumberToObject(block, "weights_bytes", (double)memory->weights_bytes);
    cJSON_AddNumberToObject(block, "activations_bytes", (double)memory->activations_bytes);
    cJSON_AddNumberToObject(block, "workspace_bytes", (double)memory->workspace_bytes);
    cJSON_AddNumberToObject(block, "peak_bytes", (double)memory->peak_bytes);
}

cleval_eval_mode cleval_eval_mode_of(const cleval_eval_outcome *out)
{
    const cleval_nn_model_info *info = &out->model_info;
    return (cleval_eval_mode){.precision = cleval_nn_precision_name(info->precision),
                              .arithmetic = info->half_arithmetic ? "half" : "float",
                              .prune = info->prune,
                              .calibration_samples = info->calibration_samples,
                              .size_bytes = info->size_bytes,
                              .device_memory = &out->device_memory};
}

cJSON *cleval_eval_report_members(const cleval_eval_job *job, const cleval_eval_outcome *out)
{
    cJSON *extra = cJSON_CreateObject();
    cJSON *model = cleval_eval_model_json(job->model_path, out->opset, out->input_rank,
                                          out->input_shape, out->predict.n_classes, job->precision);
    cleval_eval_mode mode = cleval_eval_mode_of(out);
    cleval_eval_mode_json(model, &mode);
    cJSON_AddItemToObject(extra, "model", model);
    cJSON_AddNumberToObject(extra, "nonfinite_scores", (double)out->nonfinite_scores);
    cJSON *breakdown = cJSON_AddObjectToObject(extra, "timing_breakdown");
    cJSON_AddNumberToObject(breakdown, "load_model_s", out->load_s);
    cJSON_AddNumberToObject(breakdown, "read_s", out->predict.read_s);
    cJSON_AddNumberToObject(breakdown, "wait_s", out->predict.wait_s);
    return extra;
}

cJSON *cleval_knn_json(uint32_t k, const char *weights, const char *metric, uint64_t n_train,
                       uint64_t distance_ties, uint64_t vote_ties, uint64_t searched_again)
{
    cJSON *knn = cJSON_CreateObject();
    cJSON_AddNumberToObject(knn, "k", k);
    cJSON_AddStringToObject(knn, "weights", weights);
    cJSON_AddStringToObject(knn, "metric", metric);
    cJSON_AddNumberToObject(knn, "n_train", (double)n_train);
    cJSON_AddNumberToObject(knn, "distance_ties", (double)distance_ties);
    cJSON_AddNumberToObject(knn, "vote_ties", (double)vote_ties);
    cJSON_AddNumberToObject(knn, "searched_again", (double)searched_again);
    return knn;
}

cJSON *cleval_knn_report_members(const cleval_knn_job *job, const cleval_knn_outcome *out)
{
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddItemToObject(
        extra, "knn",
        cleval_knn_json(job->config.k, cleval_knn_weights_name(job->config.weights),
                        cleval_knn_metric_name(job->config.metric), out->n_train,
                        out->stats.distance_ties, out->stats.vote_ties, out->stats.searched_again));
    cJSON *breakdown = cJSON_AddObjectToObject(extra, "timing_breakdown");
    cJSON_AddNumberToObject(breakdown, "load_train_s", out->load_s);
    cJSON_AddNumberToObject(breakdown, "read_s", out->predict.read_s);
    cJSON_AddNumberToObject(breakdown, "wait_s", out->predict.wait_s);
    cJSON_AddNumberToObject(breakdown, "screen_s", out->stats.screen_s);
    cJSON_AddNumberToObject(breakdown, "exact_s", out->stats.exact_s);
    return extra;
}

/* Moves every member of `extra` into `json`. */
static void move_members(cJSON *json, cJSON *extra)
{
    for (cJSON *item = extra ? extra->child : NULL; item;) {
        cJSON *next = item->next;
        cJSON_AddItemToObject(json, item->string, cJSON_DetachItemViaPointer(extra, item));
        item = next;
    }
}

/* The predicted-class counts of a run without labels. */
static cJSON *unlabelled_report(const cleval_predict_outcome *outcome,
                                const cleval_run_timing *timing)
{
    cJSON *json =
        cleval_report_json(NULL, NULL, NULL, outcome->n_samples, outcome->n_classes, timing);
    cJSON *counts = json ? cJSON_AddArrayToObject(json, "predicted_class_counts") : NULL;
    for (uint32_t k = 0; counts && k < outcome->n_classes; k++)
        cJSON_AddItemToArray(counts, cJSON_CreateNumber((double)outcome->predicted_counts[k]));
    return json;
}

static cleval_status labelled_report(const cleval_predict_outcome *outcome,
                                     const cleval_run_timing *timing, cJSON **out)
{
    cleval_metrics m;
    cleval_status status = cleval_metrics_compute(&outcome->confusion, &m);
    if (status != CLEVAL_OK) return status;
    cJSON *json = cleval_report_json(&m, &outcome->confusion, &outcome->class_names,
                                     m.n_samples, m.n_classes, timing);
    cleval_metrics_free(&m);
    if (json && outcome->has_scores) {
        cleval_score_metrics scores;
        cleval_score_metrics_compute(&outcome->scores, outcome->top_k, &scores);
        cleval_report_scores_json(json, &scores);
    }
    if (json && outcome->errors.n) cleval_report_errors_json(json, &outcome->errors);
    if (json && outcome->has_auc) cleval_report_auc_json(json, &outcome->auc);
    *out = json;
    return CLEVAL_OK;
}

cleval_status cleval_predict_report_json(const cleval_predict_outcome *outcome,
                                         const cleval_run_timing *timing, cJSON *extra,
                                         const cleval_gate *gates, uint32_t n_gates, cJSON **out)
{
    *out = NULL;
    cJSON *json = NULL;
    if (outcome->has_labels) {
        cleval_status status = labelled_report(outcome, timing, &json);
        if (status != CLEVAL_OK) return status;
    } else {
        json = unlabelled_report(outcome, timing);
    }
    if (!json) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the JSON report");
    move_members(json, extra);
    if (n_gates > 0) {
        cJSON_AddItemToObject(json, "gates", cleval_gates_json(gates, n_gates, &outcome->class_names));
        cJSON_AddBoolToObject(json, "passed", cleval_gates_passed(gates, n_gates));
    }
    *out = json;
    return CLEVAL_OK;
}
