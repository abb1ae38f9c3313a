/* cleval_run_eval(): `cleval eval` on a source, with the predictions kept in the result. */
#include "api_internal.h"

#include <math.h>
#include <string.h>

/* `value` when it is one of the NULL-terminated `choices` (NULL: the first), else a usage
 * failure naming the option. */
static cleval_status choose(const char *option, const char *value, const char *const *choices,
                            const char **out)
{
    *out = choices[0];
    if (!value) return CLEVAL_OK;
    for (const char *const *c = choices; *c; c++)
        if (strcmp(value, *c) == 0) {
            *out = *c;
            return CLEVAL_OK;
        }
    return cleval_fail(CLEVAL_ERR_USAGE, "%s: unknown value '%s'", option, value);
}

/* The eval options of `o` checked as the CLI checks its flags, into `job`. */
static cleval_status eval_options(const cleval_options *o, cleval_eval_job *job)
{
    static const char *const precisions[] = {"fp32", "fp16", "int8", NULL};
    static const char *const arithmetics[] = {"auto", "half", "float", NULL};
    cleval_status status;
    if ((status = choose("precision", o->precision, precisions, &job->precision)) ||
        (status = choose("fp16_arithmetic", o->fp16_arithmetic, arithmetics, &job->arithmetic)))
        return status;
    if (!(o->prune >= 0.0 && o->prune < 1.0))
        return cleval_fail(CLEVAL_ERR_USAGE, "prune: must be at least 0 and below 1 (got %g)",
                           o->prune);
    if (!isfinite(o->input_scale))
        return cleval_fail(CLEVAL_ERR_USAGE, "input_scale: must be a finite float");
    for (uint32_t c = 0; c < o->n_input_std; c++)
        if (!o->input_std || o->input_std[c] == 0.0f)
            return cleval_fail(CLEVAL_ERR_USAGE, "input_std: value %u is 0 or missing", c + 1);
    if (o->n_input_mean && !o->input_mean)
        return cleval_fail(CLEVAL_ERR_USAGE, "input_mean: NULL with n_input_mean %u",
                           o->n_input_mean);
    job->calibration = o->calibration ? o->calibration : CLEVAL_DEFAULT_CALIBRATION;
    job->prune = o->prune;
    job->allow_nonfinite = o->allow_nonfinite;
    job->input = (cleval_nn_input_prep){.scale = o->input_scale,
                                        .mean = o->input_mean,
                                        .n_mean = o->n_input_mean,
                                        .std = o->input_std,
                                        .n_std = o->n_input_std,
                                        .nhwc = o->input_nhwc};
    return CLEVAL_OK;
}

cleval_status cleval_run_eval(const char *model_path, const cleval_source *test,
                              const cleval_options *options, cleval_result **result)
{
    if (!result) return cleval_fail(CLEVAL_ERR_USAGE, "cleval_run_eval: result is NULL");
    *result = NULL;
    if (!model_path || !test)
        return cleval_fail(CLEVAL_ERR_USAGE, "cleval_run_eval: model_path and test are required");
    cleval_options defaults;
    const cleval_options *o = api_options(options, &defaults);
    cleval_eval_job job = {.model_path = model_path, .test = api_test_set(test)};
    job.test.batch = o->batch;
    job.test.top_k = o->top_k;
    api_prediction_run run = {0};
    cleval_eval_outcome outcome = {0};
    cleval_status status = eval_options(o, &job);
    if (status == CLEVAL_OK) status = api_prediction_run_begin(&run, o, &job.run);
    if (status == CLEVAL_OK) status = cleval_engine_eval(&job, &outcome);
    cJSON *members = status == CLEVAL_OK ? cleval_eval_report_members(&job, &outcome) : NULL;
    status = api_prediction_run_end(&run, status, &outcome.predict, members, o, result);
    cleval_eval_outcome_free(&outcome);
    return status;
}
