/* Host buffers the device uses in place: page-aligned memory wrapped with CL_MEM_USE_HOST_PTR.
 * On CPU devices (PoCL) map and unmap are free and nothing is copied; on discrete GPUs the
 * driver copies at unmap, which is still the correct protocol. And pinned staging memory for
 * uploads: a buffer the driver allocates (CL_MEM_ALLOC_HOST_PTR, page-locked on GPU drivers),
 * mapped once for the life of the buffer. */
#include "device_internal.h"

#include <stdlib.h>
#include <string.h>

enum { HOSTBUF_ALIGNMENT = 4096 };

cleval_status cleval_hostbuf_create(cleval_device *dev, size_t bytes, const char *what,
                                    cleval_hostbuf *out)
{
    memset(out, 0, sizeof *out);
    size_t size = cleval_round_up(bytes ? bytes : 1, HOSTBUF_ALIGNMENT);
    void *host = aligned_alloc(HOSTBUF_ALIGNMENT, size);
    if (!host)
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory allocating %s (%zu bytes)", what, size);
    cl_mem mem;
    cleval_status status =
        cleval_device_buffer(dev, CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR, size, host, what, &mem);
    if (status != CLEVAL_OK) {
        free(host);
        return status;
    }
    *out = (cleval_hostbuf){.mem = mem, .host = host, .bytes = size};
    return CLEVAL_OK;
}

cleval_status cleval_hostbuf_map(cleval_device *dev, cleval_hostbuf *buf, bool for_write)
{
    cl_int err;
    cl_map_flags flags = for_write ? CL_MAP_WRITE_INVALIDATE_REGION : CL_MAP_READ;
    void *p = clEnqueueMapBuffer(dev->queue, buf->mem, CL_TRUE, flags, 0, buf->bytes, 0, NULL, NULL,
                                 &err);
    if (err != CL_SUCCESS) return cleval_cl_check(err, "clEnqueueMapBuffer");
    /* With CL_MEM_USE_HOST_PTR the mapped pointer is the host pointer on every driver we know;
     * anything else would break the in-place contract, so treat it as a device failure. */
    if (p != buf->host) {
        clEnqueueUnmapMemObject(dev->queue, buf->mem, p, 0, NULL, NULL);
        return cleval_fail(CLEVAL_ERR_OPENCL,
                           "clEnqueueMapBuffer returned a pointer other than the host pointer");
    }
    return CLEVAL_OK;
}

cleval_status cleval_hostbuf_unmap(cleval_device *dev, cleval_hostbuf *buf)
{
    return cleval_cl_check(clEnqueueUnmapMemObject(dev->queue, buf->mem, buf->host, 0, NULL, NULL),
                           "clEnqueueUnmapMemObject");
}

cleval_status cleval_hostbuf_create_pinned(cleval_device *dev, size_t bytes, const char *what,
                                           cleval_hostbuf *out)
{
    memset(out, 0, sizeof *out);
    size_t size = bytes ? bytes : 1;
    cl_mem mem;
    cleval_status status = cleval_device_buffer(dev, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR,
                                                size, NULL, what, &mem);
    if (status != CLEVAL_OK) return status;
    cl_int err;
    void *host = clEnqueueMapBuffer(dev->queue, mem, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, size,
                                    0, NULL, NULL, &err);
    if ((status = cleval_cl_check(err, "clEnqueueMapBuffer(pinned staging)")) != CLEVAL_OK) {
        clReleaseMemObject(mem);
        return status;
    }
    *out = (cleval_hostbuf){.mem = mem, .host = host, .bytes = size, .mapped_on = dev->queue};
    return CLEVAL_OK;
}

void cleval_hostbuf_release(cleval_hostbuf *buf)
{
    if (buf->mapped_on) {
        /* The driver owns the memory: hand the mapping back (and wait for that), then release. */
        clEnqueueUnmapMemObject(buf->mapped_on, buf->mem, buf->host, 0, NULL, NULL);
        clFinish(buf->mapped_on);
        clReleaseMemObject(buf->mem);
        memset(buf, 0, sizeof *buf);
        return;
    }
    if (buf->mem) clReleaseMemObject(buf->mem);
    free(buf->host);
    memset(buf, 0, sizeof *buf);
}
