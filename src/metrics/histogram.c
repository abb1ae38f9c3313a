/* Device-side histogram accumulation (kernels/histogram.cl): picks a reduction strategy per
 * device and bin count, keeps uint32 counts on the device, and moves them into uint64 host
 * totals whenever they are read or could overflow. */
#include "cleval/histogram.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    PRIVATE_MAX_BINS = 1024,        /* C <= 32: private arrays of 4 x 1024 uint stay in L1/L2 */
    MIN_SAMPLES_PER_ITEM = 1 << 14, /* below this, launching more work-items costs more */
    GPU_LOCAL_SIZE = 256,
};
static const uint64_t SLOTS_MAX_BYTES = 256ull << 20; /* all partial histograms together */

struct cleval_histogram {
    cleval_device *dev;
    cleval_histogram_path path;
    uint32_t n_rows, n_cols;
    uint64_t bins;
    cl_kernel add_kernel;
    cl_kernel sum_kernel; /* SLOTS only */
    cl_mem counts;        /* uint32 [bins]: counts since the last flush */
    cl_mem slots;         /* SLOTS only: uint32 [n_slots][bins] */
    uint32_t n_items;     /* work-items of the CPU paths */
    uint32_t n_slots;
    uint64_t pending;     /* samples counted on the device since the last flush */
    uint64_t *totals;     /* flushed counts, row-major [n_rows][n_cols] */
    bool forced;          /* the path was chosen by the caller, not by choose_path */
    uint32_t *staging;    /* host copy of `counts` during a flush */
};

const char *cleval_histogram_path_name(cleval_histogram_path path)
{
    switch (path) {
    case CLEVAL_HISTOGRAM_PRIVATE: return "private";
    case CLEVAL_HISTOGRAM_SLOTS: return "slots";
    case CLEVAL_HISTOGRAM_LOCAL: return "local";
    case CLEVAL_HISTOGRAM_GLOBAL: return "global";
    }
    return "unknown";
}

static uint32_t next_power_of_two(uint64_t n)
{
    uint32_t p = 16;
    while (p < n)
        p *= 2;
    return p;
}

/* Whether a strategy can hold `bins` bins on this device. */
static bool path_fits(const cleval_device *dev, cleval_histogram_path path, uint64_t bins)
{
    uint64_t bytes = bins * sizeof(uint32_t);
    switch (path) {
    case CLEVAL_HISTOGRAM_PRIVATE: return bins <= PRIVATE_MAX_BINS;
    case CLEVAL_HISTOGRAM_SLOTS: return bytes <= SLOTS_MAX_BYTES;
    /* Half the local memory, so the kernel still fits beside the driver's own use of it. */
    case CLEVAL_HISTOGRAM_LOCAL: return bytes <= cleval_device_get_info(dev)->local_mem_bytes / 2;
    case CLEVAL_HISTOGRAM_GLOBAL: return true;
    }
    return false;
}

static cleval_histogram_path choose_path(const cleval_device *dev, uint64_t bins)
{
    if (cleval_device_variant(dev) == CLEVAL_VARIANT_CPU) {
        if (path_fits(dev, CLEVAL_HISTOGRAM_PRIVATE, bins)) return CLEVAL_HISTOGRAM_PRIVATE;
        if (path_fits(dev, CLEVAL_HISTOGRAM_SLOTS, bins)) return CLEVAL_HISTOGRAM_SLOTS;
        return CLEVAL_HISTOGRAM_GLOBAL;
    }
    return path_fits(dev, CLEVAL_HISTOGRAM_LOCAL, bins) ? CLEVAL_HISTOGRAM_LOCAL
                                                        : CLEVAL_HISTOGRAM_GLOBAL;
}

static void release_device_state(cleval_histogram *hist)
{
    if (hist->add_kernel) clReleaseKernel(hist->add_kernel);
    if (hist->sum_kernel) clReleaseKernel(hist->sum_kernel);
    if (hist->counts) clReleaseMemObject(hist->counts);
    if (hist->slots) clReleaseMemObject(hist->slots);
    hist->add_kernel = hist->sum_kernel = NULL;
    hist->counts = hist->slots = NULL;
}

static cleval_status zero_buffer(cleval_histogram *hist, cl_mem buffer, size_t bytes)
{
    const cl_uint zero = 0;
    return cleval_cl_check(clEnqueueFillBuffer(cleval_device_queue(hist->dev), buffer, &zero,
                                               sizeof zero, 0, bytes, 0, NULL, NULL),
                           "clEnqueueFillBuffer(histogram)");
}

/* Builds kernels and buffers for the current dimensions and path. */
static cleval_status create_device_state(cleval_histogram *hist)
{
    cleval_device *dev = hist->dev;
    const cleval_device_info *info = cleval_device_get_info(dev);
    char options[160];
    const char *kernel_name = "histogram_global";
    switch (hist->path) {
    case CLEVAL_HISTOGRAM_PRIVATE:
        snprintf(options, sizeof options, "-DPAIRED=%d -DPRIVATE_BINS=%u", hist->n_rows > 1,
                 next_power_of_two(hist->bins));
        kernel_name = "histogram_private";
        break;
    case CLEVAL_HISTOGRAM_SLOTS:
        snprintf(options, sizeof options, "-DPAIRED=%d", hist->n_rows > 1);
        kernel_name = "histogram_slots";
        break;
    case CLEVAL_HISTOGRAM_LOCAL:
        snprintf(options, sizeof options, "-DPAIRED=%d", hist->n_rows > 1);
        kernel_name = "histogram_local";
        break;
    case CLEVAL_HISTOGRAM_GLOBAL:
        snprintf(options, sizeof options, "-DPAIRED=%d", hist->n_rows > 1);
        break;
    }
    cleval_status status =
        cleval_device_kernel(dev, "histogram", options, kernel_name, &hist->add_kernel);
    if (status != CLEVAL_OK) return status;

    size_t bytes = (size_t)hist->bins * sizeof(uint32_t);
    if (bytes > info->max_alloc_bytes)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                           "a %u x %u histogram needs %zu bytes, more than the device's largest "
                           "buffer (%llu bytes)",
                           hist->n_rows, hist->n_cols, bytes,
                           (unsigned long long)info->max_alloc_bytes);
    if ((status = cleval_device_buffer(dev, CL_MEM_READ_WRITE, bytes, NULL, "histogram counts",
                                       &hist->counts)) != CLEVAL_OK ||
        (status = zero_buffer(hist, hist->counts, bytes)) != CLEVAL_OK)
        return status;

    hist->n_items = info->compute_units ? 2 * info->compute_units : 2;
    /* Slots: one partial histogram per compute unit keeps the scattered footprint small. */
    if (hist->path == CLEVAL_HISTOGRAM_SLOTS) hist->n_items = info->compute_units ? info->compute_units : 1;
    if (hist->path == CLEVAL_HISTOGRAM_SLOTS) {
        uint64_t fit = SLOTS_MAX_BYTES / bytes;
        hist->n_slots = hist->n_items < fit ? hist->n_items : (uint32_t)fit;
        hist->n_items = hist->n_slots;
        size_t slot_bytes = (size_t)hist->n_slots * bytes;
        if ((status = cleval_device_kernel(dev, "histogram", options, "histogram_sum_slots",
                                           &hist->sum_kernel)) != CLEVAL_OK ||
            (status = cleval_device_buffer(dev, CL_MEM_READ_WRITE, slot_bytes, NULL,
                                           "histogram slots", &hist->slots)) != CLEVAL_OK ||
            (status = zero_buffer(hist, hist->slots, slot_bytes)) != CLEVAL_OK)
            return status;
    }
    cleval_log(CLEVAL_LOG_INFO, "histogram %u x %u: %s path", hist->n_rows, hist->n_cols,
               cleval_histogram_path_name(hist->path));
    return CLEVAL_OK;
}

static cleval_status create(cleval_device *dev, uint32_t n_rows, uint32_t n_cols,
                            bool force, cleval_histogram_path forced, cleval_histogram **out)
{
    *out = NULL;
    uint64_t bins = (uint64_t)n_rows * n_cols;
    if (n_rows == 0 || n_cols == 0)
        return cleval_fail(CLEVAL_ERR_USAGE, "a histogram needs at least one row and column");
    if (bins > INT32_MAX)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED, "a %u x %u histogram has too many bins",
                           n_rows, n_cols);
    cleval_histogram *hist = calloc(1, sizeof *hist);
    if (!hist) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory creating a histogram");
    hist->dev = dev;
    hist->n_rows = n_rows;
    hist->n_cols = n_cols;
    hist->bins = bins;
    hist->forced = force;
    hist->path = force ? forced : choose_path(dev, bins);
    if (!path_fits(dev, hist->path, bins)) {
        free(hist);
        return cleval_fail(CLEVAL_ERR_USAGE, "the %s histogram path cannot hold %u x %u bins",
                           cleval_histogram_path_name(forced), n_rows, n_cols);
    }
    hist->totals = calloc(bins, sizeof *hist->totals);
    hist->staging = malloc(bins * sizeof *hist->staging);
    cleval_status status =
        hist->totals && hist->staging
            ? create_device_state(hist)
            : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory creating a %u x %u histogram", n_rows,
                          n_cols);
    if (status != CLEVAL_OK) {
        cleval_histogram_destroy(hist);
        return status;
    }
    *out = hist;
    return CLEVAL_OK;
}

cleval_status cleval_histogram_create(cleval_device *dev, uint32_t n_rows, uint32_t n_cols,
                                      cleval_histogram **out)
{
    return create(dev, n_rows, n_cols, false, CLEVAL_HISTOGRAM_PRIVATE, out);
}

cleval_status cleval_histogram_create_path(cleval_device *dev, uint32_t n_rows, uint32_t n_cols,
                                           cleval_histogram_path path, cleval_histogram **out)
{
    return create(dev, n_rows, n_cols, true, path, out);
}

void cleval_histogram_destroy(cleval_histogram *hist)
{
    if (!hist) return;
    release_device_state(hist);
    free(hist->totals);
    free(hist->staging);
    free(hist);
}

cleval_histogram_path cleval_histogram_get_path(const cleval_histogram *hist)
{
    return hist->path;
}

uint32_t cleval_histogram_rows(const cleval_histogram *hist)
{
    return hist->n_rows;
}

uint32_t cleval_histogram_cols(const cleval_histogram *hist)
{
    return hist->n_cols;
}

/* Moves the device counts into the host totals and zeroes them on the device. */
static cleval_status flush(cleval_histogram *hist)
{
    if (hist->pending == 0) return CLEVAL_OK;
    cl_command_queue queue = cleval_device_queue(hist->dev);
    size_t bytes = (size_t)hist->bins * sizeof(uint32_t);
    cleval_status status;
    if (hist->path == CLEVAL_HISTOGRAM_SLOTS) {
        uint32_t bins = (uint32_t)hist->bins, n_slots = hist->n_slots;
        size_t items = 64;
        uint32_t per_item = (uint32_t)((bins + items - 1) / items);
        cleval_kernel_args a = cleval_kernel_args_begin(hist->sum_kernel, "histogram_sum_slots");
        cleval_kernel_arg_mem(&a, hist->slots);
        cleval_kernel_arg_uint(&a, n_slots);
        cleval_kernel_arg_uint(&a, bins);
        cleval_kernel_arg_uint(&a, per_item);
        cleval_kernel_arg_mem(&a, hist->counts);
        if ((status = cleval_kernel_launch(queue, &a, 1, &items, NULL, NULL)) != CLEVAL_OK)
            return status;
    }
    status = cleval_cl_check(clEnqueueReadBuffer(queue, hist->counts, CL_TRUE, 0, bytes,
                                                 hist->staging, 0, NULL, NULL),
                             "clEnqueueReadBuffer(histogram)");
    if (status != CLEVAL_OK) return status;
    for (uint64_t b = 0; b < hist->bins; b++)
        hist->totals[b] += hist->staging[b];
    if ((status = zero_buffer(hist, hist->counts, bytes)) != CLEVAL_OK) return status;
    if (hist->path == CLEVAL_HISTOGRAM_SLOTS &&
        (status = zero_buffer(hist, hist->slots, (size_t)hist->n_slots * bytes)) != CLEVAL_OK)
        return status;
    hist->pending = 0;
    return CLEVAL_OK;
}

static cleval_status launch(cleval_histogram *hist, cl_mem rows, cl_mem cols, uint32_t n)
{
    cl_command_queue queue = cleval_device_queue(hist->dev);
    cl_kernel k = hist->add_kernel;
    cl_mem row_arg = rows ? rows : cols; /* ignored by the kernel when PAIRED is 0 */
    cleval_kernel_args a = cleval_kernel_args_begin(k, "histogram");
    cleval_kernel_arg_mem(&a, row_arg);
    cleval_kernel_arg_mem(&a, cols);
    cleval_kernel_arg_uint(&a, n);
    cleval_kernel_arg_uint(&a, hist->n_rows);
    cleval_kernel_arg_uint(&a, hist->n_cols);

    size_t global, local = 1;
    const cleval_device_info *info = cleval_device_get_info(hist->dev);
    if (hist->path == CLEVAL_HISTOGRAM_PRIVATE || hist->path == CLEVAL_HISTOGRAM_SLOTS) {
        /* Few large work-items, each over a contiguous chunk (the fast shape on CPUs). The
         * slots path always runs n_slots items: each owns one partial histogram. */
        uint32_t items = hist->n_items;
        if (hist->path == CLEVAL_HISTOGRAM_PRIVATE) {
            uint32_t useful = (n + MIN_SAMPLES_PER_ITEM - 1) / MIN_SAMPLES_PER_ITEM;
            items = useful < items ? useful : items;
        }
        uint32_t chunk = (uint32_t)((n + (uint64_t)items - 1) / items);
        global = items;
        cleval_kernel_arg_uint(&a, chunk);
        cleval_kernel_arg_mem(&a, hist->path == CLEVAL_HISTOGRAM_SLOTS ? hist->slots
                                                                       : hist->counts);
    } else {
        local = GPU_LOCAL_SIZE < info->max_work_group_size ? GPU_LOCAL_SIZE
                                                           : info->max_work_group_size;
        size_t groups = (n + local - 1) / local;
        size_t max_groups = (size_t)(info->compute_units ? info->compute_units : 1) * 8;
        global = (groups < max_groups ? groups : max_groups) * local;
        cleval_kernel_arg_mem(&a, hist->counts);
        if (hist->path == CLEVAL_HISTOGRAM_LOCAL)
            cleval_kernel_arg_local(&a, (size_t)hist->bins * sizeof(cl_uint));
    }
    return cleval_kernel_launch(queue, &a, 1, &global, &local, NULL);
}

cleval_status cleval_histogram_add(cleval_histogram *hist, cl_mem rows, cl_mem cols, uint64_t n)
{
    if (n == 0) return CLEVAL_OK;
    if (n > INT32_MAX)
        return cleval_fail(CLEVAL_ERR_USAGE, "histogram batches hold at most %d samples",
                           INT32_MAX);
    cleval_status status;
    /* Keep every uint32 device count below 2^32: flush before a batch could overflow one. */
    if (hist->pending + n > UINT32_MAX && (status = flush(hist)) != CLEVAL_OK) return status;
    if ((status = launch(hist, rows, cols, (uint32_t)n)) != CLEVAL_OK) return status;
    hist->pending += n;
    return CLEVAL_OK;
}

cl_mem cleval_histogram_atomic_target(const cleval_histogram *hist)
{
    return hist->path == CLEVAL_HISTOGRAM_SLOTS ? NULL : hist->counts;
}

cleval_status cleval_histogram_reserve(cleval_histogram *hist, uint64_t n)
{
    if (n > INT32_MAX)
        return cleval_fail(CLEVAL_ERR_USAGE, "histogram batches hold at most %d samples",
                           INT32_MAX);
    cleval_status status;
    if (hist->pending + n > UINT32_MAX && (status = flush(hist)) != CLEVAL_OK) return status;
    hist->pending += n;
    return CLEVAL_OK;
}

cleval_status cleval_histogram_read(cleval_histogram *hist, uint64_t *counts)
{
    cleval_status status = flush(hist);
    if (status != CLEVAL_OK) return status;
    memcpy(counts, hist->totals, hist->bins * sizeof *counts);
    return CLEVAL_OK;
}

cleval_status cleval_histogram_grow(cleval_histogram *hist, uint32_t new_rows, uint32_t new_cols)
{
    if (new_rows < hist->n_rows || new_cols < hist->n_cols)
        return cleval_fail(CLEVAL_ERR_USAGE, "a histogram can only grow");
    if (new_rows == hist->n_rows && new_cols == hist->n_cols) return CLEVAL_OK;
    uint64_t bins = (uint64_t)new_rows * new_cols;
    if (bins > INT32_MAX)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED, "a %u x %u histogram has too many bins",
                           new_rows, new_cols);
    cleval_status status = flush(hist);
    if (status != CLEVAL_OK) return status;

    uint64_t *totals = calloc(bins, sizeof *totals);
    uint32_t *staging = malloc(bins * sizeof *staging);
    if (!totals || !staging) {
        free(totals);
        free(staging);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory growing a histogram to %u x %u",
                           new_rows, new_cols);
    }
    for (uint32_t r = 0; r < hist->n_rows; r++)
        memcpy(totals + (uint64_t)r * new_cols, hist->totals + (uint64_t)r * hist->n_cols,
               hist->n_cols * sizeof *totals);
    /* Wait for the queue before releasing buffers a pending command might still read. */
    if ((status = cleval_device_finish(hist->dev)) != CLEVAL_OK) {
        free(totals);
        free(staging);
        return status;
    }
    release_device_state(hist);
    free(hist->totals);
    free(hist->staging);
    hist->totals = totals;
    hist->staging = staging;
    hist->n_rows = new_rows;
    hist->n_cols = new_cols;
    hist->bins = bins;
    /* A forced strategy stays unless it can no longer hold the bins. */
    if (!hist->forced || !path_fits(hist->dev, hist->path, bins))
        hist->path = choose_path(hist->dev, bins);
    return create_device_state(hist);
}
