/* The kernel-argument builder declared in cleval/device.h: each argument in turn, the first
 * OpenCL failure kept with its index. */
#include "cleval/device.h"

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

void cleval_kernel_arg_local(cleval_kernel_args *a, size_t bytes)
{
    cleval_kernel_arg(a, bytes, NULL);
}

cleval_status cleval_kernel_args_end(const cleval_kernel_args *a)
{
    if (a->err == CL_SUCCESS) return CLEVAL_OK;
    return cleval_fail(cleval_cl_status(a->err, false),
                       "clSetKernelArg(%s, argument %u) failed: %s (%d)", a->name,
                       (unsigned)a->failed, cleval_cl_error_name(a->err), (int)a->err);
}
