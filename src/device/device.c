/* Device discovery across every OpenCL platform, selection by index or name, and the
 * context + queue of an opened device. */
#include "device_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* A device handle together with the platform it belongs to, in `cleval devices` order. */
typedef struct device_handle {
    cl_platform_id platform;
    cl_device_id device;
} device_handle;

bool cleval_memory_limit(char *out, size_t size)
{
    static const struct {
        int resource;
        const char *name;
    } limits[] = {{RLIMIT_AS, "address-space"}, {RLIMIT_DATA, "data-size"}};
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        struct rlimit r;
        if (getrlimit(limits[i].resource, &r) == 0 && r.rlim_cur != RLIM_INFINITY) {
            snprintf(out, size, "%s limit %llu MiB", limits[i].name,
                     (unsigned long long)(r.rlim_cur >> 20));
            return true;
        }
    }
    return false;
}

/* Under a memory limit too small for the OpenCL runtime, the ICD loader's dlopen fails quietly
 * and no platform is reported: with a limit in force, finding none fails as out of memory
 * naming it. CLEVAL_OK without a limit. */
static cleval_status blame_memory_limit(void)
{
    char limit[64];
    if (!cleval_memory_limit(limit, sizeof limit)) return CLEVAL_OK;
    return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory loading the OpenCL runtime (%s)", limit);
}

static cleval_status enumerate(device_handle **handles, uint32_t *count)
{
    *handles = NULL;
    *count = 0;
    cl_uint n_platforms = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &n_platforms);
    if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR: no ICD installed */ || n_platforms == 0)
        return blame_memory_limit();
    if (err != CL_SUCCESS) {
        cleval_status status = blame_memory_limit();
        return status != CLEVAL_OK ? status : cleval_cl_check(err, "clGetPlatformIDs");
    }

    cl_platform_id *platforms = calloc(n_platforms, sizeof *platforms);
    if (!platforms) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory listing platforms");
    cleval_status status = cleval_cl_check(clGetPlatformIDs(n_platforms, platforms, NULL),
                                           "clGetPlatformIDs");
    device_handle *list = NULL;
    uint32_t total = 0;
    for (cl_uint p = 0; status == CLEVAL_OK && p < n_platforms; p++) {
        cl_uint n_devices = 0;
        err = clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 0, NULL, &n_devices);
        if (err == CL_DEVICE_NOT_FOUND || n_devices == 0) continue;
        if ((status = cleval_cl_check(err, "clGetDeviceIDs")) != CLEVAL_OK) break;
        cl_device_id *devices = calloc(n_devices, sizeof *devices);
        device_handle *grown = realloc(list, (total + n_devices) * sizeof *list);
        if (!devices || !grown) {
            free(devices);
            if (grown) list = grown;
            status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory listing devices");
            break;
        }
        list = grown;
        status = cleval_cl_check(
            clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, n_devices, devices, NULL),
            "clGetDeviceIDs");
        for (cl_uint d = 0; status == CLEVAL_OK && d < n_devices; d++)
            list[total++] = (device_handle){platforms[p], devices[d]};
        free(devices);
    }
    free(platforms);
    if (status == CLEVAL_OK && total == 0) status = blame_memory_limit();
    if (status != CLEVAL_OK) {
        free(list);
        return status;
    }
    *handles = list;
    *count = total;
    return CLEVAL_OK;
}

/* CLEVAL_EMULATE_LIMITS=nvidia: every device reports, and enforces at launch, the limits of
 * NVIDIA's OpenCL driver on current GPUs (work-groups of at most 1024 items and 64 along the
 * third axis, 48 KiB of local memory per work-group), so that the GPU kernel family's launch
 * geometry can be checked on PoCL, whose limits are far larger (4096 items, megabytes of
 * "local" memory that is plain RAM), before time on a real GPU is spent. */
#define NVIDIA_MAX_WORK_GROUP 1024u
#define NVIDIA_MAX_WORK_ITEMS_Z 64u
#define NVIDIA_LOCAL_MEM_BYTES (48u * 1024u)

/* *nvidia tells whether the emulation is on; any other non-empty value is a usage error. */
static cleval_status emulated_limits(bool *nvidia)
{
    const char *value = getenv("CLEVAL_EMULATE_LIMITS");
    *nvidia = value && strcmp(value, "nvidia") == 0;
    if (value && *value && !*nvidia)
        return cleval_fail(CLEVAL_ERR_USAGE, "CLEVAL_EMULATE_LIMITS: '%s' is not 'nvidia'", value);
    return CLEVAL_OK;
}

cl_int cleval_device_emulated_launch_check(cl_command_queue queue, cl_kernel kernel, cl_uint dims,
                                           const size_t *local)
{
    bool nvidia;
    if (!local || emulated_limits(&nvidia) != CLEVAL_OK || !nvidia) return CL_SUCCESS;
    size_t items = 1;
    for (cl_uint d = 0; d < dims; d++)
        items *= local[d];
    if (items > NVIDIA_MAX_WORK_GROUP || (dims == 3 && local[2] > NVIDIA_MAX_WORK_ITEMS_Z))
        return CL_INVALID_WORK_GROUP_SIZE;
    /* Static __local arrays and the __local arguments set so far, as the driver counts them. */
    cl_device_id device;
    cl_ulong bytes = 0;
    cl_int err = clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof device, &device, NULL);
    if (err == CL_SUCCESS)
        err = clGetKernelWorkGroupInfo(kernel, device, CL_KERNEL_LOCAL_MEM_SIZE, sizeof bytes,
                                       &bytes, NULL);
    if (err != CL_SUCCESS) return err;
    return bytes > NVIDIA_LOCAL_MEM_BYTES ? CL_OUT_OF_RESOURCES : CL_SUCCESS;
}

static cleval_status query_string(cl_device_id device, cl_device_info param, char *out,
                                  size_t size, const char *what)
{
    cl_int err = clGetDeviceInfo(device, param, size, out, NULL);
    if (err != CL_SUCCESS) return cleval_cl_check(err, what);
    out[size - 1] = '\0';
    return CLEVAL_OK;
}

cleval_status cleval_device_query_info(cl_platform_id platform, cl_device_id device,
                                       cleval_device_info *info)
{
    memset(info, 0, sizeof *info);
    cl_int err = clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof info->platform,
                                   info->platform, NULL);
    if (err != CL_SUCCESS) return cleval_cl_check(err, "clGetPlatformInfo(CL_PLATFORM_NAME)");
    info->platform[sizeof info->platform - 1] = '\0';

    cleval_status status;
    if ((status = query_string(device, CL_DEVICE_NAME, info->name, sizeof info->name,
                               "clGetDeviceInfo(CL_DEVICE_NAME)")) ||
        (status = query_string(device, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor,
                               "clGetDeviceInfo(CL_DEVICE_VENDOR)")) ||
        (status = query_string(device, CL_DRIVER_VERSION, info->driver_version,
                               sizeof info->driver_version, "clGetDeviceInfo(CL_DRIVER_VERSION)")) ||
        (status = query_string(device, CL_DEVICE_OPENCL_C_VERSION, info->opencl_c_version,
                               sizeof info->opencl_c_version,
                               "clGetDeviceInfo(CL_DEVICE_OPENCL_C_VERSION)")))
        return status;

    cl_device_type type = 0;
    cl_uint units = 0;
    cl_ulong global_mem = 0, max_alloc = 0, local_mem = 0;
    size_t max_wg = 0;
    cl_bool unified = CL_FALSE;
    if ((err = clGetDeviceInfo(device, CL_DEVICE_TYPE, sizeof type, &type, NULL)) ||
        (err = clGetDeviceInfo(device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units, NULL)) ||
        (err = clGetDeviceInfo(device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof global_mem, &global_mem,
                               NULL)) ||
        (err = clGetDeviceInfo(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof max_alloc, &max_alloc,
                               NULL)) ||
        (err = clGetDeviceInfo(device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local_mem, &local_mem,
                               NULL)) ||
        (err = clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof max_wg, &max_wg,
                               NULL)))
        return cleval_cl_check(err, "clGetDeviceInfo");
    /* The float width the compiler vectorises best (8 on AVX2, 16 on AVX-512), from which the
     * CPU-style kernels size their register tiles; not said (0) leaves each user's default. */
    cl_uint float_width = 0;
    if (clGetDeviceInfo(device, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, sizeof float_width,
                        &float_width, NULL) != CL_SUCCESS)
        float_width = 0;
    info->preferred_float_width = float_width;
    /* Deprecated in OpenCL 2.0 but still answered; a failure just means "not unified". */
    if (clGetDeviceInfo(device, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified, &unified, NULL) !=
        CL_SUCCESS)
        unified = CL_FALSE;

    size_t ext_size = 0;
    char *extensions = NULL;
    if (clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, 0, NULL, &ext_size) == CL_SUCCESS &&
        (extensions = calloc(ext_size + 1, 1)) == NULL)
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading the device's extensions");
    if (extensions &&
        clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, ext_size, extensions, NULL) == CL_SUCCESS) {
        info->has_fp16 = strstr(extensions, "cl_khr_fp16") != NULL;
        info->has_fp64 = strstr(extensions, "cl_khr_fp64") != NULL;
    }
    free(extensions);

    info->type = (type & CL_DEVICE_TYPE_GPU)           ? CLEVAL_DEVICE_GPU
                 : (type & CL_DEVICE_TYPE_CPU)         ? CLEVAL_DEVICE_CPU
                 : (type & CL_DEVICE_TYPE_ACCELERATOR) ? CLEVAL_DEVICE_ACCELERATOR
                                                       : CLEVAL_DEVICE_OTHER;
    info->compute_units = units;
    info->global_mem_bytes = global_mem;
    info->max_alloc_bytes = max_alloc;
    info->local_mem_bytes = local_mem;
    info->max_work_group_size = max_wg;
    bool nvidia;
    if ((status = emulated_limits(&nvidia)) != CLEVAL_OK) return status;
    if (nvidia) {
        if (info->local_mem_bytes > NVIDIA_LOCAL_MEM_BYTES)
            info->local_mem_bytes = NVIDIA_LOCAL_MEM_BYTES;
        if (info->max_work_group_size > NVIDIA_MAX_WORK_GROUP)
            info->max_work_group_size = NVIDIA_MAX_WORK_GROUP;
    }
    info->host_unified_memory = unified == CL_TRUE || info->type == CLEVAL_DEVICE_CPU;
    return CLEVAL_OK;
}

cleval_status cleval_device_list(cleval_device_info **infos, uint32_t *count)
{
    *infos = NULL;
    *count = 0;
    device_handle *handles;
    uint32_t n;
    cleval_status status = enumerate(&handles, &n);
    if (status != CLEVAL_OK || n == 0) return status;
    cleval_device_info *list = calloc(n, sizeof *list);
    if (!list) {
        free(handles);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory listing devices");
    }
    for (uint32_t i = 0; i < n && status == CLEVAL_OK; i++) {
        status = cleval_device_query_info(handles[i].platform, handles[i].device, &list[i]);
        list[i].index = i;
    }
    free(handles);
    if (status != CLEVAL_OK) {
        free(list);
        return status;
    }
    *infos = list;
    *count = n;
    return CLEVAL_OK;
}

static bool contains_ignoring_case(const char *haystack, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *h = haystack; *h; h++) {
        size_t i = 0;
        while (i < n && h[i] && tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n) return true;
    }
    return n == 0;
}

static bool all_digits(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return false;
    return true;
}

cleval_status cleval_device_resolve(const char *spec, uint32_t *index)
{
    const char *source = "--device";
    if (!spec || !*spec) {
        spec = getenv("CLEVAL_DEVICE");
        source = "CLEVAL_DEVICE";
    }
    cleval_device_info *infos;
    uint32_t n;
    cleval_status status = cleval_device_list(&infos, &n);
    if (status != CLEVAL_OK) return status;
    if (n == 0) {
        return cleval_fail(CLEVAL_ERR_OPENCL,
                           "no OpenCL device found: clGetPlatformIDs/clGetDeviceIDs returned "
                           "none (is an ICD such as pocl-opencl-icd installed?)");
    }

    status = CLEVAL_OK;
    if (!spec || !*spec) {
        *index = 0;
        for (uint32_t i = 0; i < n; i++)
            if (infos[i].type == CLEVAL_DEVICE_GPU) {
                *index = i;
                break;
            }
    } else if (all_digits(spec)) {
        unsigned long value = strtoul(spec, NULL, 10);
        if (value >= n)
            status = cleval_fail(CLEVAL_ERR_USAGE,
                                 "%s: device index %s out of range (%u device%s; see "
                                 "`cleval devices`)",
                                 source, spec, n, n == 1 ? "" : "s");
        else
            *index = (uint32_t)value;
    } else {
        uint32_t i = 0;
        while (i < n && !contains_ignoring_case(infos[i].name, spec))
            i++;
        if (i == n)
            status = cleval_fail(CLEVAL_ERR_USAGE,
                                 "%s: no device name contains '%s' (see `cleval devices`)",
                                 source, spec);
        else
            *index = i;
    }
    free(infos);
    return status;
}

cleval_status cleval_device_resolve_list(const char *spec, uint32_t **indices, uint32_t *count)
{
    *indices = NULL;
    *count = 0;
    if (!spec || !*spec) spec = getenv("CLEVAL_DEVICE");
    cleval_device_info *infos;
    uint32_t n;
    cleval_status status = cleval_device_list(&infos, &n);
    if (status != CLEVAL_OK) return status;
    free(infos);
    uint32_t *list = calloc(n ? n : 1, sizeof *list);
    if (!list) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory resolving devices");
    if (spec && strcmp(spec, "all") == 0) {
        for (uint32_t i = 0; i < n; i++)
            list[i] = i;
        *count = n;
    } else if (!spec || !strchr(spec, ',')) {
        status = cleval_device_resolve(spec, &list[0]);
        *count = 1;
    } else {
        char item[256];
        for (const char *p = spec; status == CLEVAL_OK && *p;) {
            size_t len = strcspn(p, ",");
            snprintf(item, sizeof item, "%.*s", (int)len, p);
            p += len + (p[len] == ',');
            uint32_t index;
            if (len == 0) {
                status = cleval_fail(CLEVAL_ERR_USAGE, "--device: empty entry in '%s'", spec);
            } else if ((status = cleval_device_resolve(item, &index)) == CLEVAL_OK) {
                for (uint32_t i = 0; i < *count; i++)
                    if (list[i] == index)
                        status = cleval_fail(CLEVAL_ERR_USAGE, "--device: device %u named twice in '%s'",
                                             index, spec);
                if (status == CLEVAL_OK && *count < n) list[(*count)++] = index;
            }
        }
    }
    if (status == CLEVAL_OK && *count == 0)
        status = cleval_fail(CLEVAL_ERR_OPENCL, "no OpenCL device found");
    if (status != CLEVAL_OK) {
        free(list);
        *count = 0;
        return status;
    }
    *indices = list;
    return CLEVAL_OK;
}

cleval_status cleval_device_open(uint32_t index, cleval_device **out)
{
    *out = NULL;
    device_handle *handles;
    uint32_t n;
    cleval_status status = enumerate(&handles, &n);
    if (status != CLEVAL_OK) return status;
    if (index >= n) {
        free(handles);
        return cleval_fail(CLEVAL_ERR_USAGE, "device index %u out of range (%u devices)", index,
                           n);
    }
    cleval_device *dev = calloc(1, sizeof *dev);
    if (!dev) {
        free(handles);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory opening a device");
    }
    dev->platform_id = handles[index].platform;
    dev->device_id = handles[index].device;
    free(handles);
    pthread_mutex_init(&dev->programs_lock, NULL);

    status = cleval_device_query_info(dev->platform_id, dev->device_id, &dev->info);
    dev->info.index = index;
    if (status != CLEVAL_OK) goto fail;

    const char *forced = getenv("CLEVAL_KERNEL_VARIANT");
    if (forced && strcmp(forced, "cpu") == 0)
        dev->variant = CLEVAL_VARIANT_CPU;
    else if (forced && strcmp(forced, "gpu") == 0)
        dev->variant = CLEVAL_VARIANT_GPU;
    else if (forced && *forced) {
        status = cleval_fail(CLEVAL_ERR_USAGE,
                             "CLEVAL_KERNEL_VARIANT: '%s' is not one of cpu, gpu", forced);
        goto fail;
    } else
        dev->variant = dev->info.type == CLEVAL_DEVICE_CPU ? CLEVAL_VARIANT_CPU : CLEVAL_VARIANT_GPU;

    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)dev->platform_id,
                                     0};
    dev->context = clCreateContext(props, 1, &dev->device_id, NULL, NULL, &err);
    if ((status = cleval_cl_check(err, "clCreateContext")) != CLEVAL_OK) goto fail;
    dev->queue = clCreateCommandQueue(dev->context, dev->device_id, 0, &err);
    if ((status = cleval_cl_check(err, "clCreateCommandQueue")) != CLEVAL_OK) goto fail;
    cleval_log(CLEVAL_LOG_INFO, "device %u: %s (%s), %s-style kernels%s", index, dev->info.name,
               dev->info.platform, cleval_variant_name(dev->variant),
               getenv("CLEVAL_EMULATE_LIMITS") ? ", NVIDIA's limits emulated" : "");
    *out = dev;
    return CLEVAL_OK;

fail:
    cleval_device_close(dev);
    return status;
}

void cleval_device_close(cleval_device *dev)
{
    if (!dev) return;
    cleval_device_release_programs(dev);
    if (dev->queue) clReleaseCommandQueue(dev->queue);
    if (dev->context) clReleaseContext(dev->context);
    pthread_mutex_destroy(&dev->programs_lock);
    free(dev);
}

const cleval_device_info *cleval_device_get_info(const cleval_device *dev)
{
    return &dev->info;
}

void cleval_device_names(cleval_device *const *devices, uint32_t n, char *out, size_t size)
{
    if (size == 0) return;
    out[0] = '\0';
    for (uint32_t d = 0; d < n; d++)
        snprintf(out + strlen(out), size - strlen(out), "%s%s", d ? ", " : "",
                 devices[d]->info.name);
}

cl_context cleval_device_context(const cleval_device *dev)
{
    return dev->context;
}

cl_command_queue cleval_device_queue(const cleval_device *dev)
{
    return dev->queue;
}

cl_device_id cleval_device_id(const cleval_device *dev)
{
    return dev->device_id;
}

cleval_kernel_variant cleval_device_variant(const cleval_device *dev)
{
    return dev->variant;
}

void cleval_device_set_variant(cleval_device *dev, cleval_kernel_variant variant)
{
    dev->variant = variant;
}

const char *cleval_variant_name(cleval_kernel_variant variant)
{
    return variant == CLEVAL_VARIANT_CPU ? "cpu" : "gpu";
}

cleval_status cleval_device_buffer(cleval_device *dev, cl_mem_flags flags, size_t bytes,
                                   void *host_ptr, const char *what, cl_mem *out)
{
    *out = NULL;
    if (bytes == 0) bytes = 1; /* OpenCL refuses empty buffers; callers may have empty batches */
    cl_int err;
    cl_mem mem = clCreateBuffer(dev->context, flags, bytes, host_ptr, &err);
    /* Beyond CL_DEVICE_MAX_MEM_ALLOC_SIZE (bytes is never 0 here): more than the device can
     * hold, as much a lack of memory as a failed allocation. */
    cleval_status status =
        err == CL_INVALID_BUFFER_SIZE ? CLEVAL_ERR_NOMEM : cleval_cl_status(err, false);
    if (err != CL_SUCCESS)
        return cleval_fail(status, "clCreateBuffer(%s, %zu bytes) failed: %s (%d)", what, bytes,
                           cleval_cl_error_name(err), (int)err);
    *out = mem;
    return CLEVAL_OK;
}

cleval_status cleval_device_finish(cleval_device *dev)
{
    return cleval_cl_check(clFinish(dev->queue), "clFinish");
}
