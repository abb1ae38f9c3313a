/* The version, memory handed to the caller, the devices a run opens and the steps around the
 * engine call that eval and knn share. */
#include "api_internal.h"

#include <stdlib.h>

const char *cleval_version(void)
{
    return CLEVAL_VERSION; /* the build's project version, from CMake */
}

void cleval_free(void *memory)
{
    free(memory);
}

cleval_status api_devices_open(const char *spec, api_devices *d)
{
    *d = (api_devices){0};
    uint32_t *indices = NULL, n = 0;
    cleval_status status = cleval_device_resolve_list(spec, &indices, &n);
    if (status == CLEVAL_OK && !(d->devices = calloc(n ? n : 1, sizeof *d->devices)))
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory opening devices");
    for (uint32_t i = 0; status == CLEVAL_OK && i < n; i++) {
        status = cleval_device_open(indices[i], &d->devices[i]);
        if (status == CLEVAL_OK) d->n++;
    }
    free(indices);
    if (status != CLEVAL_OK) {
        api_devices_close(d);
        return status;
    }
    cleval_device_names(d->devices, d->n, d->names, sizeof d->names);
    return CLEVAL_OK;
}

void api_devices_close(api_devices *d)
{
    for (uint32_t i = 0; i < d->n; i++)
        cleval_device_close(d->devices[i]);
    free(d->devices);
    *d = (api_devices){0};
}

cleval_status api_prediction_run_begin(api_prediction_run *run, const cleval_options *options,
                                       cleval_run_options *run_options)
{
    run->start = cleval_seconds();
    api_collector_init(&run->collector);
    cleval_status status = api_devices_open(options->device, &run->devices);
    if (status != CLEVAL_OK) return status;
    *run_options = (cleval_run_options){.devices = run->devices.devices,
                                        .n_devices = run->devices.n,
                                        .max_classes = options->max_classes,
                                        .sink = &run->collector.sink};
    return CLEVAL_OK;
}

cleval_status api_prediction_run_end(api_prediction_run *run, cleval_status status,
                                     const cleval_predict_outcome *outcome, cJSON *extra,
                                     const cleval_options *options, cleval_result **result)
{
    if (status == CLEVAL_OK) {
        cleval_run_timing timing = {.device = run->devices.names,
                                    .total_s = cleval_seconds() - run->start,
                                    .n_samples = outcome->n_samples};
        status = api_prediction_result(outcome, &timing, extra, options, result);
    } else {
        cJSON_Delete(extra);
    }
    if (status == CLEVAL_OK) api_collector_give(&run->collector, *result);
    api_collector_free(&run->collector);
    api_devices_close(&run->devices);
    return status;
}
