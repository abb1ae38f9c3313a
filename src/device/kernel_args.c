/* The kernel-argument builder and the launch helper declared in cleval/device.h: each
 * argument in turn, the first OpenCL failure kept with its index, and one enqueue path whose
 * failures name the kernel. */
#include "cleval/device.h"

#include <assert.h>
#include <stdio.h>

void cleval_kernel_arg(cleval_kernel_args *a, size_t size, const void *value)
{
    if (a->err == CL_SUCCESS) {
        a->err = clSetKernelArg(a->kernel, a->index, size, value);
        a->failed = a->index;
    }
    a->index++;
}

void cleval_kernel_arg_mem(cleval_kernel_args *a, cl_mem mem)
{
    cleval_kernel_arg(a, sizeof mem, &mem);
}

void cleval_kernel_arg_int(cleval_kernel_args *a, int32_t value)
{
    cl_int x = value;
    cleval_kernel_arg(a, sizeof x, &x);
}

void cleval_kernel_arg_uint(cleval_kernel_args *a, uint32_t value)
{
    cl_uint x = value;
    cleval_kernel_arg(a, sizeof x, &x);
}

void cleval_kernel_arg_float(cleval_kernel_args *a, float value)
{
    cl_float x = value;
    cleval_kernel_arg(a, sizeof x, &x);
}

void cleval_kernel_arg_int4(cleval_kernel_args *a, int32_t x, int32_t y, int32_t z, int32_t w)
{
    cl_int4 v = {{x, y, z, w}};
    cleval_kernel_arg(a, sizeof v, &v);
}

void cleval_kernel_arg_int8(cleval_kernel_args *a, const int32_t v[8])
{
    cl_int8 x;
    for (int i = 0; i < 8; i++)
        x.s[i] = v[i];
    cleval_kernel_arg(a, sizeof x, &x);
}

void cleval_kernel_arg_local(cleval_kernel_args *a, size_t bytes)
{
    cleval_kernel_arg(a, bytes, NULL);
}

/* The kernel's name for a message: the one given, else the kernel's function name. */
static const char *kernel_name(const cleval_kernel_args *a, char *buf, size_t size)
{
    if (a->name) return a->name;
    if (clGetKernelInfo(a->kernel, CL_KERNEL_FUNCTION_NAME, size, buf, NULL) != CL_SUCCESS)
        snprintf(buf, size, "kernel");
    buf[size - 1] = '\0';
    return buf;
}

cleval_status cleval_kernel_args_end(const cleval_kernel_args *a)
{
    if (a->err == CL_SUCCESS) return CLEVAL_OK;
    char name[64];
    return cleval_fail(cleval_cl_status(a->err, false),
                       "clSetKernelArg(%s, argument %u) failed: %s (%d)",
                       kernel_name(a, name, sizeof name), (unsigned)a->failed,
                       cleval_cl_error_name(a->err), (int)a->err);
}

cleval_status cleval_kernel_launch(cl_command_queue queue, const cleval_kernel_args *a,
                                   cl_uint dims, const size_t *global, const size_t *local,
                                   cl_event *event)
{
    assert(dims >= 1 && dims <= 3);
    cleval_status status = cleval_kernel_args_end(a);
    if (status != CLEVAL_OK) return status;
    size_t rounded[3];
    for (cl_uint d = 0; d < dims; d++) {
        if (global[d] == 0) return CLEVAL_OK;
        rounded[d] = local ? cleval_round_up(global[d], local[d]) : global[d];
    }
    cl_int err = cleval_device_emulated_launch_check(queue, a->kernel, dims, local);
    if (err == CL_SUCCESS)
        err = clEnqueueNDRangeKernel(queue, a->kernel, dims, NULL, rounded, local, 0, NULL, event);
    if (err == CL_SUCCESS) return CLEVAL_OK;
    char name[64];
    return cleval_fail(cleval_cl_status(err, true), "clEnqueueNDRangeKernel(%s) failed: %s (%d)",
                       kernel_name(a, name, sizeof name), cleval_cl_error_name(err), (int)err);
}
