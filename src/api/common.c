/* The version, memory handed to the caller, and the devices a run opens. */
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
