/* The report of an eval, knn or metrics run with the gates the options set, built by the same
 * function as the command-line tool's --json (cleval_predict_report_json) so that a run
 * through the library prints the same text; and saved runs in memory seen as prediction
 * files. */
#include "api_internal.h"

#include "cleval/gates.h"
#include "cleval/metrics.h"
#include "cleval/scores.h"

/* options->min_accuracy and min_class_recall as the CLI's limits (negative: none). */
static cleval_status metric_limits(const cleval_options *o, cleval_metric_limits *limits)
{
    *limits = (cleval_metric_limits){.use_min_accuracy = o->min_accuracy >= 0,
                                     .min_accuracy = o->min_accuracy,
                                     .use_min_class_recall = o->min_class_recall >= 0,
                                     .min_class_recall = o->min_class_recall};
    if (o->min_accuracy > 1 || o->min_class_recall > 1)
        return cleval_fail(CLEVAL_ERR_USAGE, "min_accuracy and min_class_recall must be at most 1");
    return CLEVAL_OK;
}

cleval_status api_prediction_result(const cleval_predict_outcome *outcome,
                                    const cleval_run_timing *timing, cJSON *extra,
                                    const cleval_options *options, cleval_result **out)
{
    *out = NULL;
    cleval_metric_limits limits;
    cleval_status status = metric_limits(options, &limits);
    bool gated = limits.use_min_accuracy || limits.use_min_class_recall;
    if (status == CLEVAL_OK && gated && !outcome->has_labels)
        status = cleval_fail(CLEVAL_ERR_USAGE, "min_accuracy and min_class_recall need labels (y) "
                                               "in the test set");
    cleval_metrics m = {0};
    if (status == CLEVAL_OK && outcome->has_labels)
        status = cleval_metrics_compute(&outcome->confusion, &m);
    if (status != CLEVAL_OK) {
        cJSON_Delete(extra);
        return status;
    }
    cleval_gate gates[CLEVAL_METRIC_GATES];
    uint32_t n_gates = 0;
    if (outcome->has_labels) cleval_metric_gates(&m, &limits, gates, &n_gates);
    cJSON *json = NULL;
    status = cleval_predict_report_json(outcome, timing, extra, gates, n_gates, &json);
    cJSON_Delete(extra);
    cleval_metrics_free(&m);
    if (status != CLEVAL_OK) return status;
    return api_result_create(json, cleval_gates_passed(gates, n_gates), NULL, out);
}

cleval_status api_predictions_dataset(const cleval_predictions *p, const char *label,
                                      cleval_dataset **out)
{
    *out = NULL;
    if (!p || !p->pred)
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: no predictions (pred is NULL)", label);
    const char *names[3];
    cleval_array arrays[3];
    uint32_t n = 0;
    if (p->y) names[n] = "y", arrays[n++] = *p->y;
    names[n] = "pred", arrays[n++] = *p->pred;
    if (p->scores) names[n] = "scores", arrays[n++] = *p->scores;
    return cleval_dataset_from_arrays(label, names, arrays, n, out);
}
