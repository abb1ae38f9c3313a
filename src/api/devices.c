/* The device list, as `cleval devices --json` prints it. */
#include "api_internal.h"

#include <stdlib.h>

cleval_status cleval_devices_json(char **json)
{
    if (!json) return cleval_fail(CLEVAL_ERR_USAGE, "cleval_devices_json: json is NULL");
    *json = NULL;
    cleval_device_info *infos;
    uint32_t n;
    cleval_status status = cleval_device_list(&infos, &n);
    if (status != CLEVAL_OK) return status;
    cJSON *list = cleval_report_devices_json(infos, n);
    free(infos);
    *json = list ? cleval_report_json_text(list) : NULL;
    cJSON_Delete(list);
    return *json ? CLEVAL_OK : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory listing devices");
}
