/* OpenCL platforms and devices: discovery, selection, context and queue, the embedded kernel
 * programs (built once per device and option set), zero-copy host buffers, and OpenCL error
 * names. This module knows nothing of data formats or models. */
#ifndef CLEVAL_DEVICE_H
#define CLEVAL_DEVICE_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleval/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cleval_device cleval_device;

typedef enum cleval_device_type {
    CLEVAL_DEVICE_CPU,
    CLEVAL_DEVICE_GPU,
    CLEVAL_DEVICE_ACCELERATOR,
    CLEVAL_DEVICE_OTHER,
} cleval_device_type;

/* Which family of kernels suits a device: CPU-style (few large work-items, explicit vectors,
 * pre-packed operands) or GPU-style (work-group tiles in local memory). */
typedef enum cleval_kernel_variant {
    CLEVAL_VARIANT_CPU,
    CLEVAL_VARIANT_GPU,
} cleval_kernel_variant;

typedef struct cleval_device_info {
    uint32_t index; /* position in `cleval devices`, across all platforms */
    char platform[128];
    char name[256];
    char vendor[128];
    char driver_version[64];
    char opencl_c_version[64];
    cleval_device_type type;
    uint32_t compute_units;
    uint64_t global_mem_bytes;
    uint64_t max_alloc_bytes;
    uint64_t local_mem_bytes;
    size_t max_work_group_size;
    uint32_t preferred_float_width; /* CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT; 0: not said */
    bool has_fp16; /* cl_khr_fp16 */
    bool has_fp64; /* cl_khr_fp64 */
    bool host_unified_memory; /* buffers over host memory are zero-copy (CPU devices) */
} cleval_device_info;

/* Lists every device of every platform, in the order `cleval devices` prints them. On success
 * *infos is an array of *count entries that the caller frees with free(). No platform is not an
 * error: *count is 0. */
cleval_status cleval_device_list(cleval_device_info **infos, uint32_t *count);

/* Turns a device spec into an index. `spec` is a decimal index or a case-insensitive substring
 * of the device name; NULL or "" means the CLEVAL_DEVICE environment variable, and when that is
 * unset too, the first GPU or else the first device. */
cleval_status cleval_device_resolve(const char *spec, uint32_t *index);

/* Turns a spec naming one or several devices into indices: "all", a comma-separated list of
 * specs ("0,2", "gpu,cpu"), or one spec as cleval_device_resolve() takes it (also from
 * CLEVAL_DEVICE when spec is NULL). *indices is heap memory of *count entries (free()); a
 * device named twice is refused. */
cleval_status cleval_device_resolve_list(const char *spec, uint32_t **indices, uint32_t *count);

/* CL_SUCCESS unless CLEVAL_EMULATE_LIMITS=nvidia is set and NVIDIA's driver would refuse this
 * launch: CL_INVALID_WORK_GROUP_SIZE for more than 1024 work-items in a group (or 64 along the
 * third axis), CL_OUT_OF_RESOURCES for more than 48 KiB of local memory (the kernel's __local
 * arrays and arguments). A NULL `local` is the driver's choice and always passes.
 * cleval_kernel_launch() applies it; with the emulation on, device infos report those caps. */
cl_int cleval_device_emulated_launch_check(cl_command_queue queue, cl_kernel kernel, cl_uint dims,
                                           const size_t *local);

/* Opens the device at `index`: context and in-order queue. */
cleval_status cleval_device_open(uint32_t index, cleval_device **out);

/* Releases the device and everything it cached. NULL is a no-op. */
void cleval_device_close(cleval_device *dev);

const cleval_device_info *cleval_device_get_info(const cleval_device *dev);
/* "name0, name1, ...": the names of n open devices, for reports (truncated to size). */
void cleval_device_names(cleval_device *const *devices, uint32_t n, char *out, size_t size);
cl_context cleval_device_context(const cleval_device *dev);
cl_command_queue cleval_device_queue(const cleval_device *dev);
cl_device_id cleval_device_id(const cleval_device *dev);

/* The kernel family used on this device: from the CLEVAL_KERNEL_VARIANT environment variable
 * ("cpu" or "gpu") when set, else from the device type. */
cleval_kernel_variant cleval_device_variant(const cleval_device *dev);

/* Forces a kernel family (tests run both on one CPU device). */
void cleval_device_set_variant(cleval_device *dev, cleval_kernel_variant variant);

const char *cleval_variant_name(cleval_kernel_variant variant);

/* Creates kernel `kernel` from the embedded program `program` (the file kernels/<program>.cl)
 * built with `options` (may be NULL). Each (program, options) pair is compiled once per device
 * and kept; the returned kernel belongs to the caller (clReleaseKernel). A build failure sends
 * the build log to the log hook at CLEVAL_LOG_ERROR. When CLEVAL_KERNEL_DIR is set, sources are
 * read from that folder instead of the copies embedded at build time. */
cleval_status cleval_device_kernel(cleval_device *dev, const char *program, const char *options,
                                   const char *kernel, cl_kernel *out);

/* Allocates a device buffer; `what` names it in the error message. */
cleval_status cleval_device_buffer(cleval_device *dev, cl_mem_flags flags, size_t bytes,
                                   void *host_ptr, const char *what, cl_mem *out);

/* Blocks until every command queued so far has finished. */
cleval_status cleval_device_finish(cleval_device *dev);

/* Host memory that the device reads and writes in place where it can (zero-copy on CPU
 * devices), staged through map/unmap elsewhere. Fill or read `host` only between
 * cleval_hostbuf_map() and cleval_hostbuf_unmap(). */
typedef struct cleval_hostbuf {
    cl_mem mem;
    void *host;
    size_t bytes;
    /* Pinned staging (cleval_hostbuf_create_pinned): the queue `host` stays mapped on, which
     * unmaps it at release; NULL for the in-place kind. */
    cl_command_queue mapped_on;
} cleval_hostbuf;

cleval_status cleval_hostbuf_create(cleval_device *dev, size_t bytes, const char *what,
                                    cleval_hostbuf *out);
/* Maps for host access (blocking); `for_write` discards the device contents first. */
cleval_status cleval_hostbuf_map(cleval_device *dev, cleval_hostbuf *buf, bool for_write);
/* Hands the memory back to the device; kernels enqueued afterwards see the host's writes. */
cleval_status cleval_hostbuf_unmap(cleval_device *dev, cleval_hostbuf *buf);
/* Page-locked host memory for uploads: a CL_MEM_ALLOC_HOST_PTR buffer mapped once, here, and
 * kept mapped until release. `host` is the mapping: fill it on the host and pass it as the
 * source of clEnqueueWriteBuffer, which a GPU driver then copies by DMA, asynchronously, with
 * no bounce through its own pinned buffer (pageable memory costs that extra copy). `mem` is
 * never handed to a kernel. Not for cleval_hostbuf_map/unmap. */
cleval_status cleval_hostbuf_create_pinned(cleval_device *dev, size_t bytes, const char *what,
                                           cleval_hostbuf *out);
/* Releases the buffer and its memory; a zeroed struct is a no-op. */
void cleval_hostbuf_release(cleval_hostbuf *buf);

/* The symbolic name of an OpenCL error code ("CL_OUT_OF_RESOURCES"), or "CL_UNKNOWN_ERROR". */
const char *cleval_cl_error_name(cl_int err);

/* The status an OpenCL error stands for: CLEVAL_ERR_NOMEM when the host or the device ran out
 * of memory (CL_MEM_OBJECT_ALLOCATION_FAILURE, CL_OUT_OF_HOST_MEMORY, and CL_OUT_OF_RESOURCES
 * except from a kernel launch, where it also means a work-group too large for the kernel's
 * registers or local memory), else CLEVAL_ERR_OPENCL. */
cleval_status cleval_cl_status(cl_int err, bool kernel_launch);

/* CLEVAL_OK when err is CL_SUCCESS; otherwise records "<call> failed: <NAME> (<code>)" and
 * returns cleval_cl_status(err) (a call named "clEnqueueNDRangeKernel..." is a launch). */
cleval_status cleval_cl_check(cl_int err, const char *call);

/* Sets a kernel's arguments in order and keeps the first failure: OR-ing the negative OpenCL
 * codes of several clSetKernelArg calls would name an unrelated error (-50 | -38 = -34,
 * CL_INVALID_CONTEXT). Once an argument fails the later ones are skipped. Usage:
 *
 *     cleval_kernel_args a = cleval_kernel_args_begin(kernel, "histogram_add");
 *     cleval_kernel_arg_mem(&a, buffer);
 *     cleval_kernel_arg_uint(&a, n);
 *     if ((status = cleval_kernel_args_end(&a)) != CLEVAL_OK) return status; */
typedef struct cleval_kernel_args {
    cl_kernel kernel;
    const char *name; /* the kernel, for the error message */
    cl_uint index;    /* the next argument's index */
    cl_uint failed;   /* the index of the argument that failed */
    cl_int err;       /* the first failure, or CL_SUCCESS */
} cleval_kernel_args;

static inline cleval_kernel_args cleval_kernel_args_begin(cl_kernel kernel, const char *name)
{
    cleval_kernel_args a = {kernel, name, 0, 0, CL_SUCCESS};
    return a;
}

/* The next argument: `size` bytes at `value` (NULL with a size for __local memory). */
void cleval_kernel_arg(cleval_kernel_args *a, size_t size, const void *value);
void cleval_kernel_arg_mem(cleval_kernel_args *a, cl_mem mem);
void cleval_kernel_arg_int(cleval_kernel_args *a, int32_t value);
void cleval_kernel_arg_uint(cleval_kernel_args *a, uint32_t value);
void cleval_kernel_arg_float(cleval_kernel_args *a, float value);
/* An int4 (x, y, z, w) and an int8 vector argument. */
void cleval_kernel_arg_int4(cleval_kernel_args *a, int32_t x, int32_t y, int32_t z, int32_t w);
void cleval_kernel_arg_int8(cleval_kernel_args *a, const int32_t v[8]);
/* A __local buffer of `bytes` bytes. */
void cleval_kernel_arg_local(cleval_kernel_args *a, size_t bytes);

/* CLEVAL_OK when every argument was set; otherwise records "clSetKernelArg(<name>, argument
 * <i>) failed: <NAME> (<code>)" for the first failure and returns CLEVAL_ERR_OPENCL. A NULL
 * name is looked up from the kernel. */
cleval_status cleval_kernel_args_end(const cleval_kernel_args *a);

/* The one way cleval launches a kernel: checks a's arguments (cleval_kernel_args_end), then
 * enqueues a's kernel on `queue` over `dims` (1 to 3) dimensions, each global size rounded up
 * to its local size (local NULL: the driver picks). A global size of 0 enqueues nothing and
 * succeeds. `event` (NULL: none) receives the launch's event. A failed launch records
 * "clEnqueueNDRangeKernel(<name>) failed: <NAME> (<code>)" and returns
 * cleval_cl_status(err, true). */
cleval_status cleval_kernel_launch(cl_command_queue queue, const cleval_kernel_args *a,
                                   cl_uint dims, const size_t *global, const size_t *local,
                                   cl_event *event);

/* Rounds `n` up to a multiple of `m` (m > 0). */
static inline size_t cleval_round_up(size_t n, size_t m)
{
    return (n + m - 1) / m * m;
}

/* Continues hash *h (cleval_cache_hash) over the source of every kernel program and shared
 * header, as the device compilers get them (embedded, or CLEVAL_KERNEL_DIR): anything cached
 * about the kernels (tuned parameters) is keyed on it. Fails as loading a source fails. */
cleval_status cleval_kernel_sources_hash(uint64_t *h);

#ifdef __cplusplus
}
#endif

#endif
