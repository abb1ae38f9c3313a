/* gpu_probe: what one OpenCL device can do, measured, for scripts/gpu_perf.sh to set cleval's
 * figures against: host-to-device and device-to-host copy rates from pageable (malloc) and
 * pinned (a mapped CL_MEM_ALLOC_HOST_PTR buffer, NVIDIA's way to page-lock) memory; whether a
 * copy on one queue overlaps a kernel on another; the float FMA peak; local-memory bandwidth.
 * Plain OpenCL, no cleval code, so that it measures the device rather than cleval.
 *
 *   gpu_probe [DEVICE_INDEX] [--mib N] [--quick]
 *
 * DEVICE_INDEX counts devices over all platforms as `cleval devices` does; without it, the
 * first GPU, else the first device. Prints one JSON object; exit 2 on bad arguments, 1 when
 * OpenCL fails. Each figure is the median of 5 runs after a warm-up. */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPEAT 5

static const char *source =
    /* 8 independent FMA chains per work-item keep the pipelines full; a and b are arguments,
     * so nothing folds. 16 flops per iteration. */
    "__kernel void fma_peak(__global float *out, int iters, float a, float b) {\n"
    "    float x0 = get_global_id(0), x1 = x0 + 1, x2 = x0 + 2, x3 = x0 + 3;\n"
    "    float x4 = x0 + 4, x5 = x0 + 5, x6 = x0 + 6, x7 = x0 + 7;\n"
    "    for (int i = 0; i < iters; i++) {\n"
    "        x0 = fma(x0, a, b); x1 = fma(x1, a, b); x2 = fma(x2, a, b); x3 = fma(x3, a, b);\n"
    "        x4 = fma(x4, a, b); x5 = fma(x5, a, b); x6 = fma(x6, a, b); x7 = fma(x7, a, b);\n"
    "    }\n"
    "    out[get_global_id(0)] = x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7;\n"
    "}\n"
    /* Every work-item reads a float4 of a 4 KiB local tile per step, neighbours reading
     * neighbours (no bank conflicts); the index moves each step so no load can be hoisted.
     * 16 bytes per work-item per iteration. */
    "__kernel void local_read(__global float *out, int iters) {\n"
    "    __local float4 tile[256];\n"
    "    int l = get_local_id(0);\n"
    "    tile[l] = (float4)(l, l + 1, l + 2, l + 3);\n"
    "    barrier(CLK_LOCAL_MEM_FENCE);\n"
    "    float4 s0 = 0, s1 = 0;\n"
    "    for (int i = 0; i < iters; i += 2) {\n"
    "        s0 += tile[(l + i) & 255];\n"
    "        s1 += tile[(l + i + 1) & 255];\n"
    "    }\n"
    "    float4 s = s0 + s1;\n"
    "    out[get_global_id(0)] = s.x + s.y + s.z + s.w;\n"
    "}\n";

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        cl_int err_ = (call);                                                                      \
        if (err_ != CL_SUCCESS) {                                                                  \
            fprintf(stderr, "gpu_probe: %s failed: %d\n", #call, (int)err_);                       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

typedef struct probe {
    cl_device_id device;
    cl_context context;
    cl_command_queue queue, second; /* second: the copy queue of the overlap test */
    cl_kernel fma, local_read;
    cl_mem out;
    size_t fma_items, local_items;
} probe;

/* The device at `index` over all platforms, or the first GPU (else device 0) when index < 0. */
static cl_device_id pick_device(long index, char *name, size_t size)
{
    cl_platform_id platforms[16];
    cl_uint np = 0;
    CHECK(clGetPlatformIDs(16, platforms, &np));
    cl_device_id chosen = NULL, first = NULL, first_gpu = NULL;
    long seen = 0;
    for (cl_uint p = 0; p < np && p < 16; p++) {
        cl_device_id devices[16];
        cl_uint nd = 0;
        if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 16, devices, &nd) != CL_SUCCESS)
            continue;
        for (cl_uint d = 0; d < nd && d < 16; d++, seen++) {
            cl_device_type type;
            CHECK(clGetDeviceInfo(devices[d], CL_DEVICE_TYPE, sizeof type, &type, NULL));
            if (!first) first = devices[d];
            if (!first_gpu && (type & CL_DEVICE_TYPE_GPU)) first_gpu = devices[d];
            if (seen == index) chosen = devices[d];
        }
    }
    if (index < 0) chosen = first_gpu ? first_gpu : first;
    if (!chosen) {
        fprintf(stderr, "gpu_probe: no OpenCL device %ld\n", index);
        exit(index < 0 ? 1 : 2);
    }
    CHECK(clGetDeviceInfo(chosen, CL_DEVICE_NAME, size, name, NULL));
    name[size - 1] = '\0';
    return chosen;
}

/* Median seconds of one copy of `bytes` between `host` and `buf`, each direction. */
static void copy_rates(probe *p, cl_mem buf, void *host, size_t bytes, double *h2d, double *d2h)
{
    double up[REPEAT], down[REPEAT];
    for (int r = -1; r < REPEAT; r++) { /* r = -1: warm-up */
        double t0 = now();
        CHECK(clEnqueueWriteBuffer(p->queue, buf, CL_TRUE, 0, bytes, host, 0, NULL, NULL));
        double t1 = now();
        CHECK(clEnqueueReadBuffer(p->queue, buf, CL_TRUE, 0, bytes, host, 0, NULL, NULL));
        double t2 = now();
        if (r >= 0) up[r] = t1 - t0, down[r] = t2 - t1;
    }
    *h2d = bytes / median(up, REPEAT) / 1e9;
    *d2h = bytes / median(down, REPEAT) / 1e9;
}

/* Wall seconds of the FMA kernel with `iters` iterations, from enqueue to finish. */
static double run_fma(probe *p, int iters)
{
    float a = 0.999f, b = 0.001f;
    CHECK(clSetKernelArg(p->fma, 0, sizeof p->out, &p->out));
    CHECK(clSetKernelArg(p->fma, 1, sizeof iters, &iters));
    CHECK(clSetKernelArg(p->fma, 2, sizeof a, &a));
    CHECK(clSetKernelArg(p->fma, 3, sizeof b, &b));
    double t0 = now();
    CHECK(clEnqueueNDRangeKernel(p->queue, p->fma, 1, NULL, &p->fma_items, NULL, 0, NULL, NULL));
    CHECK(clFinish(p->queue));
    return now() - t0;
}

/* Iterations that make the FMA kernel take about `seconds` (doubling from a short run). */
static int calibrate_fma(probe *p, double seconds)
{
    int iters = 64;
    run_fma(p, iters); /* compile and warm up */
    while (iters < (1 << 24) && run_fma(p, iters) < seconds / 4)
        iters *= 2;
    double t = run_fma(p, iters);
    double scaled = iters * seconds / (t > 1e-6 ? t : 1e-6);
    return scaled > (1 << 26) ? 1 << 26 : scaled < 64 ? 64 : (int)scaled;
}

static double fma_gflops(probe *p, int iters)
{
    double t[REPEAT];
    for (int r = 0; r < REPEAT; r++)
        t[r] = run_fma(p, iters);
    return 16.0 * iters * (double)p->fma_items / median(t, REPEAT) / 1e9;
}

static double local_gbs(probe *p, int iters)
{
    size_t local = 256;
    CHECK(clSetKernelArg(p->local_read, 0, sizeof p->out, &p->out));
    CHECK(clSetKernelArg(p->local_read, 1, sizeof iters, &iters));
    double t[REPEAT];
    for (int r = -1; r < REPEAT; r++) {
        double t0 = now();
        CHECK(clEnqueueNDRangeKernel(p->queue, p->local_read, 1, NULL, &p->local_items, &local, 0,
                                     NULL, NULL));
        CHECK(clFinish(p->queue));
        if (r >= 0) t[r] = now() - t0;
    }
    return 16.0 * iters * (double)p->local_items / median(t, REPEAT) / 1e9;
}

/* Overlap of a pinned host-to-device copy on the second queue with the FMA kernel on the
 * first: 1 when the pair takes as long as the longer alone, 0 when as long as both in turn. */
static double overlap(probe *p, cl_mem buf, void *pinned, size_t bytes, int iters, double *copy_s,
                      double *kernel_s, double *both_s)
{
    double c[REPEAT], k[REPEAT], b[REPEAT];
    for (int r = -1; r < REPEAT; r++) {
        double t0 = now();
        CHECK(clEnqueueWriteBuffer(p->second, buf, CL_TRUE, 0, bytes, pinned, 0, NULL, NULL));
        double t1 = now();
        run_fma(p, iters);
        double t2 = now();
        CHECK(clEnqueueWriteBuffer(p->second, buf, CL_FALSE, 0, bytes, pinned, 0, NULL, NULL));
        CHECK(clFlush(p->second));
        CHECK(
            clEnqueueNDRangeKernel(p->queue, p->fma, 1, NULL, &p->fma_items, NULL, 0, NULL, NULL));
        CHECK(clFlush(p->queue));
        CHECK(clFinish(p->queue));
        CHECK(clFinish(p->second));
        double t3 = now();
        if (r >= 0) c[r] = t1 - t0, k[r] = t2 - t1, b[r] = t3 - t2;
    }
    *copy_s = median(c, REPEAT);
    *kernel_s = median(k, REPEAT);
    *both_s = median(b, REPEAT);
    double shorter = *copy_s < *kernel_s ? *copy_s : *kernel_s;
    return (*copy_s + *kernel_s - *both_s) / shorter;
}

int main(int argc, char **argv)
{
    long index = -1;
    size_t mib = 256;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc) {
            mib = strtoul(argv[++i], &end, 10);
            if (*end || mib == 0 || mib > 8192) {
                fprintf(stderr, "gpu_probe: --mib takes 1 to 8192\n");
                return 2;
            }
        } else {
            index = strtol(argv[i], &end, 10);
            if (*end || index < 0) {
                fprintf(stderr, "usage: gpu_probe [DEVICE_INDEX] [--mib N] [--quick]\n");
                return 2;
            }
        }
    }
    probe p = {0};
    char name[256];
    p.device = pick_device(index, name, sizeof name);
    cl_uint units;
    CHECK(clGetDeviceInfo(p.device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units, NULL));
    cl_int err;
    p.context = clCreateContext(NULL, 1, &p.device, NULL, NULL, &err);
    CHECK(err);
    p.queue = clCreateCommandQueue(p.context, p.device, 0, &err);
    CHECK(err);
    p.second = clCreateCommandQueue(p.context, p.device, 0, &err);
    CHECK(err);
    cl_program program = clCreateProgramWithSource(p.context, 1, &source, NULL, &err);
    CHECK(err);
    CHECK(clBuildProgram(program, 1, &p.device, "-cl-std=CL1.2", NULL, NULL));
    p.fma = clCreateKernel(program, "fma_peak", &err);
    CHECK(err);
    p.local_read = clCreateKernel(program, "local_read", &err);
    CHECK(err);
    /* Enough work-items to fill every compute unit many times over (2048 resident threads per
     * SM on NVIDIA, times 4), a multiple of 256. */
    p.fma_items = (size_t)units * 2048 * 4;
    p.local_items = p.fma_items;
    p.out = clCreateBuffer(p.context, CL_MEM_READ_WRITE, p.fma_items * sizeof(float), NULL, &err);
    CHECK(err);

    size_t bytes = mib << 20;
    if (quick && bytes > (size_t)64 << 20) bytes = (size_t)64 << 20;
    cl_mem buf = clCreateBuffer(p.context, CL_MEM_READ_WRITE, bytes, NULL, &err);
    CHECK(err);
    char *pageable = malloc(bytes);
    if (!pageable) {
        fprintf(stderr, "gpu_probe: out of memory\n");
        return 1;
    }
    memset(pageable, 1, bytes);
    cl_mem pin =
        clCreateBuffer(p.context, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, bytes, NULL, &err);
    CHECK(err);
    void *pinned = clEnqueueMapBuffer(p.queue, pin, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, bytes,
                                      0, NULL, NULL, &err);
    CHECK(err);
    memset(pinned, 1, bytes);

    double page_up, page_down, pin_up, pin_down;
    copy_rates(&p, buf, pageable, bytes, &page_up, &page_down);
    copy_rates(&p, buf, pinned, bytes, &pin_up, &pin_down);
    double target = quick ? 0.05 : 0.2;
    int iters = calibrate_fma(&p, target);
    double gflops = fma_gflops(&p, iters);
    double local = local_gbs(&p, iters / 4 * 2 > 2 ? iters / 4 * 2 : 2);
    /* The kernel sized to take about as long as the copy, so that overlap can show. */
    double copy_alone = bytes / (pin_up * 1e9);
    int overlap_iters = (int)(iters * copy_alone / target);
    double copy_s, kernel_s, both_s;
    double ratio = overlap(&p, buf, pinned, bytes, overlap_iters > 16 ? overlap_iters : 16, &copy_s,
                           &kernel_s, &both_s);

    printf("{\"device\": \"%s\", \"compute_units\": %u, \"copy_mib\": %zu,\n", name, units,
           bytes >> 20);
    printf(" \"h2d_pageable_gbs\": %.2f, \"d2h_pageable_gbs\": %.2f,\n", page_up, page_down);
    printf(" \"h2d_pinned_gbs\": %.2f, \"d2h_pinned_gbs\": %.2f,\n", pin_up, pin_down);
    printf(" \"fma_gflops\": %.1f, \"local_read_gbs\": %.1f,\n", gflops, local);
    printf(" \"overlap\": {\"copy_s\": %.5f, \"kernel_s\": %.5f, \"both_s\": %.5f, "
           "\"ratio\": %.2f}}\n",
           copy_s, kernel_s, both_s, ratio);

    CHECK(clEnqueueUnmapMemObject(p.queue, pin, pinned, 0, NULL, NULL));
    CHECK(clFinish(p.queue));
    free(pageable);
    clReleaseMemObject(pin);
    clReleaseMemObject(buf);
    clReleaseMemObject(p.out);
    clReleaseKernel(p.fma);
    clReleaseKernel(p.local_read);
    clReleaseProgram(program);
    clReleaseCommandQueue(p.second);
    clReleaseCommandQueue(p.queue);
    clReleaseContext(p.context);
    return 0;
}
