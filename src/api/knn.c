/* cleval_run_knn(): `cleval knn` between two sources, with the predictions kept in the result. */
#include "api_internal.h"

#include <string.h>

/* options->weights and metric as the CLI's --weights and --metric. */
static cleval_status knn_config(const cleval_options *o, cleval_knn_config *config)
{
    if (o->k == 0) return cleval_fail(CLEVAL_ERR_USAGE, "knn: k must be at least 1");
    config->k = o->k;
    if (!o->weights || strcmp(o->weights, "uniform") == 0)
        config->weights = CLEVAL_KNN_UNIFORM;
    else if (strcmp(o->weights, "distance") == 0)
        config->weights = CLEVAL_KNN_DISTANCE;
    else
        return cleval_fail(CLEVAL_ERR_USAGE, "weights: unknown value '%s'", o->weights);
    if (!o->metric || strcmp(o->metric, "euclidean") == 0)
        config->metric = CLEVAL_KNN_EUCLIDEAN;
    else if (strcmp(o->metric, "cosine") == 0)
        config->metric = CLEVAL_KNN_COSINE;
    else
        return cleval_fail(CLEVAL_ERR_USAGE, "metric: unknown value '%s'", o->metric);
    return CLEVAL_OK;
}

cleval_status cleval_run_knn(const cleval_source *train, const cleval_source *test,
                             const cleval_options *options, cleval_result **result)
{
    if (!result) return cleval_fail(CLEVAL_ERR_USAGE, "cleval_run_knn: result is NULL");
    *result = NULL;
    if (!train || !test)
        return cleval_fail(CLEVAL_ERR_USAGE, "cleval_run_knn: train and test are required");
    cleval_options defaults;
    const cleval_options *o = api_options(options, &defaults);
    cleval_knn_job job = {.train_path = train->path,
                          .train_data = train->arrays,
                          .train_x_key = train->x_key ? train->x_key : "X",
                          .train_y_key = train->y_key ? train->y_key : "y",
                          .test = api_test_set(test)};
    job.test.batch = o->batch;
    job.test.top_k = o->top_k;
    api_prediction_run run = {0};
    cleval_knn_outcome outcome = {0};
    cleval_status status = knn_config(o, &job.config);
    if (status == CLEVAL_OK) status = api_prediction_run_begin(&run, o, &job.run);
    if (status == CLEVAL_OK) status = cleval_engine_knn(&job, &outcome);
    cJSON *members = status == CLEVAL_OK ? cleval_knn_report_members(&job, &outcome) : NULL;
    status = api_prediction_run_end(&run, status, &outcome.predict, members, o, result);
    cleval_predict_outcome_free(&outcome.predict);
    return status;
}
