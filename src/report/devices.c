/* The device list as JSON: `cleval devices --json` and cleval_devices_json(). */
#include "cleval/report.h"

const char *cleval_device_type_name(cleval_device_type type)
{
    switch (type) {
    case CLEVAL_DEVICE_CPU: return "CPU";
    case CLEVAL_DEVICE_GPU: return "GPU";
    case CLEVAL_DEVICE_ACCELERATOR: return "accelerator";
    case CLEVAL_DEVICE_OTHER: return "other";
    }
    return "other";
}

cJSON *cleval_report_devices_json(const cleval_device_info *infos, uint32_t n)
{
    cJSON *list = cJSON_CreateArray();
    for (uint32_t i = 0; list && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", i);
        cJSON_AddStringToObject(o, "platform", infos[i].platform);
        cJSON_AddStringToObject(o, "name", infos[i].name);
        cJSON_AddStringToObject(o, "type", cleval_device_type_name(infos[i].type));
        cJSON_AddNumberToObject(o, "compute_units", infos[i].compute_units);
        cJSON_AddNumberToObject(o, "global_mem_bytes", (double)infos[i].global_mem_bytes);
        cJSON_AddStringToObject(o, "opencl_c_version", infos[i].opencl_c_version);
        cJSON_AddItemToArray(list, o);
    }
    return list;
}
