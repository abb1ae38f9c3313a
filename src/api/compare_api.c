/* cleval_run_compare() and cleval_run_drift() (include/cleval.h) over two prediction sets in
 * memory. Each set becomes a dataset in memory holding "pred", "y" and "scores"
 * (api_predictions_dataset), which the compare and drift modules read exactly as they read a
 * prediction file: same checks, same messages, same batches. The report is the JSON the
 * command-line tool writes for the same files, and the options are checked as the tool checks
 * its flags. */
#include <math.h>
#include <string.h>

#include "api_internal.h"
#include "cleval/compare.h"
#include "cleval/dataset.h"
#include "cleval/device.h"
#include "cleval/drift.h"

/* A limit the command-line tool takes in [low, high]; NaN is refused. */
static cleval_status check_limit(const char *option, double value, double low, double high)
{
    if (value >= low && value <= high) return CLEVAL_OK;
    return cleval_fail(CLEVAL_ERR_USAGE, "options.%s is %g, outside [%g, %g]", option, value, low,
                       high);
}

/* A compare gate: off when negative, else checked against its range like the tool's flag. */
static cleval_status gate(const char *option, double value, double high, bool *use, double *limit)
{
    *use = value >= 0;
    *limit = value;
    return *use ? check_limit(option, value, 0, high) : CLEVAL_OK;
}

static cleval_status compare_limits(const cleval_options *o, cleval_compare_limits *limits)
{
    memset(limits, 0, sizeof *limits);
    /* Without labels the default alpha gate is dropped and one given is refused, as the tool
     * does with its --alpha. */
    cleval_options defaults;
    cleval_options_init(&defaults);
    limits->alpha_is_default = o->alpha == defaults.alpha;
    cleval_status status;
    if ((status = gate("max_flip_rate", o->max_flip_rate, 1, &limits->use_max_flip_rate,
                       &limits->max_flip_rate)) ||
        (status = gate("max_accuracy_drop", o->max_accuracy_drop, 1, &limits->use_max_accuracy_drop,
                       &limits->max_accuracy_drop)) ||
        (status = gate("alpha", o->alpha, 1, &limits->use_alpha, &limits->alpha)) ||
        (status = gate("max_score_diff", o->max_score_diff, HUGE_VAL, &limits->use_max_score_diff,
                       &limits->max_score_diff)))
        return status;
    return CLEVAL_OK;
}

static cleval_status drift_thresholds(const cleval_options *o, cleval_drift_thresholds *t)
{
    *t = (cleval_drift_thresholds){.psi_warn = o->psi_warn,
                                   .psi_alert = o->psi_alert,
                                   .js_alert = o->js_alert,
                                   .alpha = o->drift_alpha};
    cleval_status status;
    if ((status = check_limit("psi_warn", t->psi_warn, 0, 1e300)) ||
        (status = check_limit("psi_alert", t->psi_alert, 0, 1e300)) ||
        (status = check_limit("js_alert", t->js_alert, 0, 1)) ||
        (status = check_limit("drift_alpha", t->alpha, 0, 1)))
        return status;
    /* As with the tool's flags, a default never overrules a value given: it moves to meet it
     * (a value equal to its default counts as the default). */
    cleval_drift_thresholds d = cleval_drift_default_thresholds();
    if (t->psi_warn > t->psi_alert && t->psi_warn == d.psi_warn) t->psi_warn = t->psi_alert;
    if (t->psi_warn > t->psi_alert && t->psi_alert == d.psi_alert) t->psi_alert = t->psi_warn;
    if (t->psi_warn > t->psi_alert)
        return cleval_fail(CLEVAL_ERR_USAGE, "options.psi_warn %g is above options.psi_alert %g",
                           t->psi_warn, t->psi_alert);
    return CLEVAL_OK;
}

/* The result of a verdict: the report (taken), whether it passed, and its word. */
static cleval_status make_result(cJSON *report, bool passed, const char *verdict,
                                 cleval_result **result)
{
    if (!report) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the JSON report");
    return api_result_create(report, passed, verdict, result);
}

cleval_status cleval_run_compare(const cleval_predictions *a, const cleval_predictions *b,
                                 const cleval_options *options, cleval_result **result)
{
    if (!result) return cleval_fail(CLEVAL_ERR_USAGE, "cleval_run_compare: result is NULL");
    *result = NULL;
    cleval_options defaults;
    const cleval_options *o = api_options(options, &defaults);
    cleval_compare_config config = {.path_a = "a",
                                    .path_b = "b",
                                    .batch = o->batch,
                                    .max_classes = o->max_classes,
                                    .allow_nonfinite = o->allow_nonfinite};
    cleval_compare_result verdict = {0};
    cleval_status status;
    if ((status = compare_limits(o, &config.limits)) == CLEVAL_OK &&
        (status = api_predictions_dataset(a, config.path_a, &config.data_a)) == CLEVAL_OK &&
        (status = api_predictions_dataset(b, config.path_b, &config.data_b)) == CLEVAL_OK &&
        (status = cleval_compare_run(&config, &verdict)) == CLEVAL_OK)
        status = make_result(cleval_compare_json(&verdict), verdict.passed,
                             verdict.passed ? "pass" : "fail", result);
    cleval_compare_result_free(&verdict);
    cleval_dataset_close(config.data_a);
    cleval_dataset_close(config.data_b);
    return status;
}

cleval_status cleval_run_drift(const cleval_predictions *reference,
                               const cleval_predictions *current, const cleval_options *options,
                               cleval_result **result)
{
    if (!result) return cleval_fail(CLEVAL_ERR_USAGE, "cleval_run_drift: result is NULL");
    *result = NULL;
    cleval_options defaults;
    const cleval_options *o = api_options(options, &defaults);
    cleval_drift_config config = {.path_reference = "reference",
                                  .path_current = "current",
                                  .batch = o->batch,
                                  .max_classes = o->max_classes,
                                  .allow_nonfinite = o->allow_nonfinite};
    cleval_drift_result drift = {0};
    uint32_t index;
    cleval_status status;
    if ((status = drift_thresholds(o, &config.thresholds)) == CLEVAL_OK &&
        (status = api_predictions_dataset(reference, config.path_reference,
                                          &config.data_reference)) == CLEVAL_OK &&
        (status = api_predictions_dataset(current, config.path_current, &config.data_current)) ==
            CLEVAL_OK &&
        (status = cleval_device_resolve(o->device, &index)) == CLEVAL_OK &&
        (status = cleval_device_open(index, &config.device)) == CLEVAL_OK &&
        (status = cleval_drift_run(&config, &drift)) == CLEVAL_OK) {
        cJSON *report = cleval_drift_json(&drift);
        /* As the tool's report: the device the histograms were counted on. */
        if (report && !cJSON_AddStringToObject(report, "device",
                                               cleval_device_get_info(config.device)->name)) {
            cJSON_Delete(report);
            report = NULL;
        }
        const char *word = drift.n_alerts ? "alert" : drift.n_warnings ? "warn" : "ok";
        status = make_result(report, drift.n_alerts == 0, word, result);
    }
    cleval_drift_result_free(&drift);
    cleval_device_close(config.device);
    cleval_dataset_close(config.data_reference);
    cleval_dataset_close(config.data_current);
    return status;
}
