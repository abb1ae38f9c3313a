/* The device object's layout, shared by the files of the device module only. */
#ifndef CLEVAL_DEVICE_INTERNAL_H
#define CLEVAL_DEVICE_INTERNAL_H

#include "cleval/device.h"

#include <pthread.h>

typedef struct cleval_program_entry {
    char *program; /* kernels/<program>.cl */
    char *options; /* build options, "" when none */
    cl_program handle;
    struct cleval_program_entry *next;
} cleval_program_entry;

struct cleval_device {
    cleval_device_info info;
    cleval_kernel_variant variant;
    cl_platform_id platform_id;
    cl_device_id device_id;
    cl_context context;
    cl_command_queue queue;
    pthread_mutex_t programs_lock; /* guards `programs` */
    cleval_program_entry *programs;
};

/* Writes the address-space or data-size limit in force ("address-space limit 200 MiB") to
 * `out`; false when neither is set. The OpenCL runtime and its compiler map a few hundred MiB,
 * so such a limit is the likely cause when they fail without saying why. */
bool cleval_memory_limit(char *out, size_t size);

/* Fills `info` for one device (index left to the caller). */
cleval_status cleval_device_query_info(cl_platform_id platform, cl_device_id device,
                                       cleval_device_info *info);

/* The embedded (or CLEVAL_KERNEL_DIR) source of kernels/<program>.cl, or of the shared header
 * kernels/<name>.clh when `program` is "<name>.clh", as stored (includes not expanded). On
 * success *source is heap memory the caller frees. */
cleval_status cleval_kernel_source(const char *program, char **source);

/* Releases every cached program of the device. */
void cleval_device_release_programs(cleval_device *dev);

#endif
