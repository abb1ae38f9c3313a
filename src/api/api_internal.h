/* What the files behind include/cleval.h share: the layouts of the public objects, and the
 * steps every run takes (options, devices, sources, the collected predictions, the report). */
#ifndef CLEVAL_API_INTERNAL_H
#define CLEVAL_API_INTERNAL_H

#include "cleval.h"

#include <cJSON.h>

#include "cleval/dataset.h"
#include "cleval/device.h"
#include "cleval/engine.h"
#include "cleval/report.h"

struct cleval_source {
    char *path;             /* the file, or the label of the arrays ("test arrays") */
    char *x_key;            /* NULL: "X" */
    char *y_key;            /* NULL: "y" (optional) */
    cleval_dataset *arrays; /* caller arrays as a dataset, or NULL for a file */
};

struct cleval_result {
    char *json;
    int32_t *pred; /* [n], or NULL */
    float *scores; /* [n][width], or NULL */
    uint64_t n;
    uint32_t width;
    bool passed;
    const char *verdict; /* static string */
};

/* `given`, or the defaults written to *defaults when NULL. */
const cleval_options *api_options(const cleval_options *given, cleval_options *defaults);

/* A result whose JSON is the text of `report` (deleted here, also on failure) as the CLI
 * prints it; *out is NULL on failure. */
cleval_status api_result_create(cJSON *report, bool passed, const char *verdict,
                                cleval_result **out);

/* The devices of options->device (cleval_device_resolve_list's spec), opened. */
typedef struct api_devices {
    cleval_device **devices;
    uint32_t n;
    char names[1024]; /* as the report's "device" names them */
} api_devices;
cleval_status api_devices_open(const char *spec, api_devices *d);
void api_devices_close(api_devices *d);

/* The engine's view of a source: its path (or label), keys and dataset in memory. */
cleval_test_set api_test_set(const cleval_source *source);

/* Every row's prediction and scores, gathered from the engine's batches (a sink whose user is
 * the collector: it must not move once initialised) to be handed to the result. */
typedef struct api_collector {
    cleval_prediction_sink sink;
    uint64_t n;        /* rows up to the last one written */
    uint64_t capacity; /* rows allocated */
    int32_t *pred;
    float *scores;
    uint32_t width;
} api_collector;
void api_collector_init(api_collector *c);
/* Moves the predictions and scores into `result`. */
void api_collector_give(api_collector *c, cleval_result *result);
void api_collector_free(api_collector *c);

/* The run's report, built as the CLI builds its --json for eval, knn and metrics: metrics with
 * labels (else the predicted-class counts), the score metrics, the members of `extra` (taken),
 * then "gates" and "passed" when options set a gate. */
cleval_status api_prediction_result(const cleval_predict_outcome *outcome,
                                    const cleval_run_timing *timing, cJSON *extra,
                                    const cleval_options *options, cleval_result **out);

/* What eval and knn share around their engine call: the devices, the collector of every row's
 * prediction, the start time. Zero it before use; _end() may follow a failed _begin(). */
typedef struct api_prediction_run {
    api_devices devices;
    api_collector collector;
    double start;
} api_prediction_run;
/* Opens options->device and points *run_options at the devices and the collector. */
cleval_status api_prediction_run_begin(api_prediction_run *run, const cleval_options *options,
                                       cleval_run_options *run_options);
/* When `status` is CLEVAL_OK, the result: the report of `outcome` with the members of `extra`
 * (taken in any case) and the collected predictions. Closes the run either way. */
cleval_status api_prediction_run_end(api_prediction_run *run, cleval_status status,
                                     const cleval_predict_outcome *outcome, cJSON *extra,
                                     const cleval_options *options, cleval_result **result);

/* A saved run in memory as a dataset holding "y" (when given), "pred" and "scores" (when
 * given), which the engine reads like a prediction file named `label`. */
cleval_status api_predictions_dataset(const cleval_predictions *p, const char *label,
                                      cleval_dataset **out);

#endif
