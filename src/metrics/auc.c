/* ROC-AUC and average precision (see auc.h): the score store on the device, the per-class
 * radix sort and tie collapse of kernels/auc.cl, and the curve sums over the groups' counts. */
#include "cleval/auc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum {
    MAX_GROUP = 256,            /* AUC_GROUP of the kernels */
    RADIX = 256,                /* AUC_RADIX of the kernels: 8 bits a pass */
    TILE = 4096,                /* keys per work-item of the sort and the tie collapse */
    GROUPS_PER_READ = 1u << 20, /* groups read back at a time: the host's share stays 8 MiB */
};

/* Keys and counts are uint on the device. */
static const uint64_t MAX_ROWS = 1ull << 31;

struct cleval_auc_store {
    cleval_device *dev;
    uint32_t n_classes;
    uint64_t capacity;
    /* keys and their sorted copy; after the sort, `spare` holds the groups (uint2 each) */
    cl_mem scores, labels, keys, spare, counts, totals;
    cl_kernel softmax, make_keys, radix_count, radix_scatter, scan, tile_groups, emit;
    size_t scan_size;         /* work-items of auc_scan */
    uint32_t *staging; /* GROUPS_PER_READ groups read back */
    /* Rows read from other devices, waiting for the store's own device to write them: only
     * the thread that runs the store's device (or, at the end, compute) enqueues on its queue,
     * since PoCL can deadlock when two threads enqueue on one device at once. */
    pthread_mutex_t pending_lock;
    struct pending_rows *pending;
};

/* A copy of rows from another device, in host memory until written into the store. */
typedef struct pending_rows {
    struct pending_rows *next;
    size_t score_offset, label_offset, score_bytes, label_bytes;
    unsigned char data[]; /* score bytes, then label bytes */
} pending_rows;

bool cleval_auc_wanted(cleval_auc_mode mode, uint32_t n_classes)
{
    return mode == CLEVAL_AUC_ON ||
           (mode == CLEVAL_AUC_AUTO && n_classes <= CLEVAL_AUC_AUTO_MAX_CLASSES);
}

static uint64_t tiles_of(uint64_t rows)
{
    return rows ? (rows + TILE - 1) / TILE : 1;
}

/* Refuses buffers the device cannot hold, before any is allocated. */
static cleval_status check_fits(const cleval_auc_store *s)
{
    const cleval_device_info *info = cleval_device_get_info(s->dev);
    uint64_t score_bytes = s->capacity * s->n_classes * sizeof(float);
    uint64_t key_bytes = s->capacity * sizeof(uint64_t);
    uint64_t total = score_bytes + 2 * key_bytes + s->capacity * sizeof(int32_t) +
                     tiles_of(s->capacity) * RADIX * sizeof(uint32_t);
    uint64_t largest = score_bytes > key_bytes ? score_bytes : key_bytes;
    const double mib = 1024.0 * 1024.0;
    if (s->capacity >= MAX_ROWS)
        return cleval_fail(CLEVAL_ERR_INPUT,
                           "ROC AUC of %llu samples: at most %llu samples per run (--auc off "
                           "leaves it out)",
                           (unsigned long long)s->capacity, (unsigned long long)(MAX_ROWS - 1));
    if (largest > info->max_alloc_bytes || total > info->global_mem_bytes)
        return cleval_fail(CLEVAL_ERR_INPUT,
                           "ROC AUC of %llu samples x %u classes needs %.0f MiB of device memory "
                           "(largest buffer %.0f MiB); %s has %.0f MiB (largest buffer %.0f MiB): "
                           "--auc off leaves it out",
                           (unsigned long long)s->capacity, s->n_classes, (double)total / mib,
                           (double)largest / mib, info->name, (double)info->global_mem_bytes / mib,
                           (double)info->max_alloc_bytes / mib);
    return CLEVAL_OK;
}

static cleval_status create_kernels(cleval_auc_store *s)
{
    struct {
        const char *name;
        cl_kernel *kernel;
    } kernels[] = {
        {"auc_softmax", &s->softmax},
        {"auc_keys", &s->make_keys},
        {"auc_radix_count", &s->radix_count},
        {"auc_radix_scatter", &s->radix_scatter},
        {"auc_scan", &s->scan},
        {"auc_tile_groups", &s->tile_groups},
        {"auc_emit_groups", &s->emit},
    };
    cleval_status status = CLEVAL_OK;
    for (size_t i = 0; status == CLEVAL_OK && i < sizeof kernels / sizeof *kernels; i++)
        status = cleval_device_kernel(s->dev, "auc", NULL, kernels[i].name, kernels[i].kernel);
    if (status != CLEVAL_OK) return status;
    size_t fits;
    status = cleval_cl_check(clGetKernelWorkGroupInfo(s->scan, cleval_device_id(s->dev),
                                                      CL_KERNEL_WORK_GROUP_SIZE, sizeof fits, &fits,
                                                      NULL),
                             "clGetKernelWorkGroupInfo(auc_scan)");
    s->scan_size = fits < MAX_GROUP ? fits : MAX_GROUP;
    return status;
}

static cleval_status create_buffers(cleval_auc_store *s)
{
    struct {
        const char *what;
        uint64_t bytes;
        cl_mem *mem;
    } buffers[] = {
        {"AUC scores", s->capacity * s->n_classes * sizeof(float), &s->scores},
        {"AUC labels", s->capacity * sizeof(int32_t), &s->labels},
        {"AUC sort keys", s->capacity * sizeof(uint64_t), &s->keys},
        {"AUC sorted keys and groups", s->capacity * sizeof(uint64_t), &s->spare},
        {"AUC tile counts", tiles_of(s->capacity) * RADIX * sizeof(uint32_t), &s->counts},
        {"AUC totals", 2 * sizeof(uint32_t), &s->totals},
    };
    cleval_status status = CLEVAL_OK;
    for (size_t i = 0; status == CLEVAL_OK && i < sizeof buffers / sizeof *buffers; i++)
        status = cleval_device_buffer(s->dev, CL_MEM_READ_WRITE, (size_t)buffers[i].bytes, NULL,
                                      buffers[i].what, buffers[i].mem);
    return status;
}

cleval_status cleval_auc_store_create(cleval_device *dev, uint32_t n_classes, uint64_t capacity,
                                      cleval_auc_store **out)
{
    *out = NULL;
    cleval_auc_store *s = calloc(1, sizeof *s);
    if (!s) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for the ROC AUC store");
    s->dev = dev;
    s->n_classes = n_classes;
    s->capacity = capacity;
    pthread_mutex_init(&s->pending_lock, NULL);
    cleval_status status = check_fits(s);
    if (status == CLEVAL_OK && !(s->staging = malloc(GROUPS_PER_READ * 2 * sizeof *s->staging)))
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for the ROC AUC groups");
    if (status == CLEVAL_OK) status = create_kernels(s);
    if (status == CLEVAL_OK) status = create_buffers(s);
    if (status == CLEVAL_OK)
        cleval_log(CLEVAL_LOG_INFO,
                   "ROC AUC: %llu rows x %u classes kept on the device; radix sort in tiles of "
                   "%d keys, scan of %zu work-items",
                   (unsigned long long)capacity, n_classes, TILE, s->scan_size);
    if (status != CLEVAL_OK) {
        cleval_auc_store_destroy(s);
        return status;
    }
    *out = s;
    return CLEVAL_OK;
}

void cleval_auc_store_destroy(cleval_auc_store *s)
{
    if (!s) return;
    cl_kernel kernels[] = {s->softmax, s->make_keys,   s->radix_count, s->radix_scatter,
                           s->scan,    s->tile_groups, s->emit};
    for (size_t i = 0; i < sizeof kernels / sizeof *kernels; i++)
        if (kernels[i]) clReleaseKernel(kernels[i]);
    cl_mem buffers[] = {s->scores, s->labels, s->keys, s->spare, s->counts, s->totals};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++)
        if (buffers[i]) clReleaseMemObject(buffers[i]);
    while (s->pending) {
        pending_rows *next = s->pending->next;
        free(s->pending);
        s->pending = next;
    }
    pthread_mutex_destroy(&s->pending_lock);
    free(s->staging);
    free(s);
}

/* Reads n rows of another device into a pending copy for the store's own device to write. */
static cleval_status read_foreign(cleval_auc_store *s, cleval_device *from, cl_mem scores,
                                  cl_mem labels, uint64_t row, uint32_t n)
{
    size_t score_bytes = (size_t)n * s->n_classes * sizeof(float);
    size_t label_bytes = (size_t)n * sizeof(int32_t);
    pending_rows *p = malloc(sizeof *p + score_bytes + label_bytes);
    if (!p) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory copying rows for the ROC AUC");
    *p = (pending_rows){.score_offset = (size_t)row * s->n_classes * sizeof(float),
                        .label_offset = (size_t)row * sizeof(int32_t),
                        .score_bytes = score_bytes,
                        .label_bytes = label_bytes};
    cl_command_queue queue = cleval_device_queue(from);
    cleval_status status = cleval_cl_check(
        clEnqueueReadBuffer(queue, scores, CL_TRUE, 0, score_bytes, p->data, 0, NULL, NULL),
        "clEnqueueReadBuffer(AUC rows)");
    if (status == CLEVAL_OK)
        status = cleval_cl_check(clEnqueueReadBuffer(queue, labels, CL_TRUE, 0, label_bytes,
                                                     p->data + score_bytes, 0, NULL, NULL),
                                 "clEnqueueReadBuffer(AUC labels)");
    if (status != CLEVAL_OK) {
        free(p);
        return status;
    }
    pthread_mutex_lock(&s->pending_lock);
    p->next = s->pending;
    s->pending = p;
    pthread_mutex_unlock(&s->pending_lock);
    return CLEVAL_OK;
}

/* Writes every pending copy into the store, on the store's own device (the calling thread must
 * be the one that runs it). */
static cleval_status write_pending(cleval_auc_store *s)
{
    pthread_mutex_lock(&s->pending_lock);
    pending_rows *list = s->pending;
    s->pending = NULL;
    pthread_mutex_unlock(&s->pending_lock);
    cl_command_queue queue = cleval_device_queue(s->dev);
    cleval_status status = CLEVAL_OK;
    while (list) {
        pending_rows *p = list;
        list = p->next;
        if (status == CLEVAL_OK)
            status = cleval_cl_check(clEnqueueWriteBuffer(queue, s->scores, CL_TRUE,
                                                          p->score_offset, p->score_bytes,
                                                          p->data, 0, NULL, NULL),
                                     "clEnqueueWriteBuffer(AUC rows)");
        if (status == CLEVAL_OK)
            status = cleval_cl_check(
                clEnqueueWriteBuffer(queue, s->labels, CL_TRUE, p->label_offset, p->label_bytes,
                                     p->data + p->score_bytes, 0, NULL, NULL),
                "clEnqueueWriteBuffer(AUC labels)");
        free(p);
    }
    return status;
}

cleval_status cleval_auc_store_put(cleval_auc_store *s, cleval_device *from, cl_mem scores,
                                   cl_mem labels, uint64_t row, uint32_t n)
{
    if (n == 0) return CLEVAL_OK;
    if (row + n > s->capacity)
        return cleval_fail(CLEVAL_ERR_INTERNAL, "ROC AUC rows %llu..%llu beyond the store's %llu",
                           (unsigned long long)row, (unsigned long long)(row + n - 1),
                           (unsigned long long)s->capacity);
    if (from != s->dev) return read_foreign(s, from, scores, labels, row, n);
    size_t width = (size_t)s->n_classes * sizeof(float);
    cl_command_queue queue = cleval_device_queue(s->dev);
    cleval_status status = write_pending(s);
    if (status == CLEVAL_OK)
        status = cleval_cl_check(clEnqueueCopyBuffer(queue, scores, s->scores, 0, row * width,
                                                     n * width, 0, NULL, NULL),
                                 "clEnqueueCopyBuffer(AUC rows)");
    if (status == CLEVAL_OK)
        status = cleval_cl_check(clEnqueueCopyBuffer(queue, labels, s->labels, 0,
                                                     row * sizeof(int32_t), n * sizeof(int32_t),
                                                     0, NULL, NULL),
                                 "clEnqueueCopyBuffer(AUC labels)");
    return status;
}

/* Launches a's kernel over `global` work-items in groups of `local` (0: the driver's choice). */
static cleval_status launch(cleval_auc_store *s, const cleval_kernel_args *a, size_t global,
                            size_t local)
{
    return cleval_kernel_launch(cleval_device_queue(s->dev), a, 1, &global, local ? &local : NULL,
                                NULL);
}

static cleval_status apply_softmax(cleval_auc_store *s, uint32_t n)
{
    cleval_kernel_args a = cleval_kernel_args_begin(s->softmax, "auc_softmax");
    cleval_kernel_arg_mem(&a, s->scores);
    cleval_kernel_arg_uint(&a, n);
    cleval_kernel_arg_uint(&a, s->n_classes);
    return launch(s, &a, n, 0);
}

static cleval_status make_keys(cleval_auc_store *s, uint32_t n, uint32_t cls)
{
    cleval_kernel_args a = cleval_kernel_args_begin(s->make_keys, "auc_keys");
    cleval_kernel_arg_mem(&a, s->scores);
    cleval_kernel_arg_mem(&a, s->labels);
    cleval_kernel_arg_uint(&a, n);
    cleval_kernel_arg_uint(&a, s->n_classes);
    cleval_kernel_arg_uint(&a, cls);
    cleval_kernel_arg_mem(&a, s->keys);
    return launch(s, &a, n, 0);
}

/* counts[first, first + count) into exclusive prefix sums, their sum into totals[slot]. */
static cleval_status scan(cleval_auc_store *s, uint32_t first, uint32_t count, uint32_t slot)
{
    cleval_kernel_args a = cleval_kernel_args_begin(s->scan, "auc_scan");
    cleval_kernel_arg_mem(&a, s->counts);
    cleval_kernel_arg_uint(&a, first);
    cleval_kernel_arg_uint(&a, count);
    cleval_kernel_arg_mem(&a, s->totals);
    cleval_kernel_arg_uint(&a, slot);
    return launch(s, &a, s->scan_size, s->scan_size);
}

/* Runs a per-tile kernel whose arguments are (keys, n, tile, ...): one work-item a tile. */
static cleval_status launch_tiles(cleval_auc_store *s, const cleval_kernel_args *a, uint32_t n)
{
    return launch(s, a, tiles_of(n), 0);
}

/* Sorts the n keys by score (ascending keys: descending scores), 8 bits a pass, back into
 * s->keys after the four passes. */
static cleval_status sort_keys(cleval_auc_store *s, uint32_t n)
{
    uint32_t tiles = (uint32_t)tiles_of(n);
    cl_mem from = s->keys, to = s->spare;
    cleval_status status = CLEVAL_OK;
    for (uint32_t shift = 0; status == CLEVAL_OK && shift < 32; shift += 8) {
        cleval_kernel_args a = cleval_kernel_args_begin(s->radix_count, "auc_radix_count");
        cleval_kernel_arg_mem(&a, from);
        cleval_kernel_arg_uint(&a, n);
        cleval_kernel_arg_uint(&a, TILE);
        cleval_kernel_arg_uint(&a, shift);
        cleval_kernel_arg_mem(&a, s->counts);
        if ((status = launch_tiles(s, &a, n)) ||
            (status = scan(s, 0, RADIX * tiles, 0)))
            break;
        a = cleval_kernel_args_begin(s->radix_scatter, "auc_radix_scatter");
        cleval_kernel_arg_mem(&a, from);
        cleval_kernel_arg_uint(&a, n);
        cleval_kernel_arg_uint(&a, TILE);
        cleval_kernel_arg_uint(&a, shift);
        cleval_kernel_arg_mem(&a, s->counts);
        cleval_kernel_arg_mem(&a, to);
        status = launch_tiles(s, &a, n);
        cl_mem swap = from;
        from = to;
        to = swap;
    }
    return status;
}

/* Collapses the sorted keys into groups of equal scores, written to s->spare;
 * *positives and *n_groups from the device. */
static cleval_status collapse_ties(cleval_auc_store *s, uint32_t n, uint32_t *positives,
                                   uint32_t *n_groups)
{
    uint32_t tiles = (uint32_t)tiles_of(n);
    cleval_kernel_args a = cleval_kernel_args_begin(s->tile_groups, "auc_tile_groups");
    cleval_kernel_arg_mem(&a, s->keys);
    cleval_kernel_arg_uint(&a, n);
    cleval_kernel_arg_uint(&a, TILE);
    cleval_kernel_arg_mem(&a, s->counts);
    cleval_status status = launch_tiles(s, &a, n);
    /* Each half alone: the positives' offsets, then the group ends'. */
    if (status == CLEVAL_OK) status = scan(s, 0, tiles, 0);
    if (status == CLEVAL_OK) status = scan(s, tiles, tiles, 1);
    a = cleval_kernel_args_begin(s->emit, "auc_emit_groups");
    cleval_kernel_arg_mem(&a, s->keys);
    cleval_kernel_arg_uint(&a, n);
    cleval_kernel_arg_uint(&a, TILE);
    cleval_kernel_arg_mem(&a, s->counts);
    cleval_kernel_arg_mem(&a, s->spare);
    if (status == CLEVAL_OK)
        status = launch_tiles(s, &a, n);
    uint32_t totals[2] = {0, 0};
    if (status == CLEVAL_OK)
        status =
            cleval_cl_check(clEnqueueReadBuffer(cleval_device_queue(s->dev), s->totals, CL_TRUE, 0,
                                                sizeof totals, totals, 0, NULL, NULL),
                            "clEnqueueReadBuffer(AUC totals)");
    *positives = totals[0];
    *n_groups = totals[1];
    return status;
}

/* One class's curve sums over its groups, in the order of decreasing scores, as scikit-learn
 * adds them: the ROC area by the trapezoid rule, exactly in integers (twice the area in units
 * of one positive x one negative), and average precision as sum (R_k - R_k-1) * P_k. */
static cleval_status curve_sums(cleval_auc_store *s, uint32_t n_groups, uint64_t positives,
                                uint64_t negatives, double *roc, double *ap)
{
    uint64_t twice_area = 0, tp_prev = 0, fp_prev = 0;
    double precision_sum = 0.0;
    for (uint32_t first = 0; first < n_groups; first += GROUPS_PER_READ) {
        uint32_t count = n_groups - first < GROUPS_PER_READ ? n_groups - first : GROUPS_PER_READ;
        cleval_status status = cleval_cl_check(
            clEnqueueReadBuffer(cleval_device_queue(s->dev), s->spare, CL_TRUE,
                                (size_t)first * 2 * sizeof *s->staging,
                                (size_t)count * 2 * sizeof *s->staging, s->staging, 0, NULL, NULL),
            "clEnqueueReadBuffer(AUC groups)");
        if (status != CLEVAL_OK) return status;
        for (uint32_t g = 0; g < count; g++) {
            uint64_t tp = s->staging[2 * g], fp = s->staging[2 * g + 1];
            twice_area += (fp - fp_prev) * (tp + tp_prev);
            precision_sum +=
                ((double)tp / (double)positives - (double)tp_prev / (double)positives) *
                ((double)tp / (double)(tp + fp));
            tp_prev = tp;
            fp_prev = fp;
        }
    }
    *roc = (double)twice_area / (2.0 * (double)positives * (double)negatives);
    *ap = precision_sum;
    return CLEVAL_OK;
}

cleval_status cleval_auc_store_compute(cleval_auc_store *s, uint64_t n_rows, bool softmax,
                                       cleval_auc_result *out)
{
    memset(out, 0, sizeof *out);
    if (n_rows > s->capacity)
        return cleval_fail(CLEVAL_ERR_INTERNAL, "ROC AUC of %llu rows in a store of %llu",
                           (unsigned long long)n_rows, (unsigned long long)s->capacity);
    if (n_rows == 0) return CLEVAL_OK;
    uint32_t n = (uint32_t)n_rows;
    cleval_status status = write_pending(s);
    if (status == CLEVAL_OK && softmax) status = apply_softmax(s, n);
    double roc_sum = 0, roc_weighted = 0, ap_sum = 0, ap_weighted = 0;
    uint64_t support = 0;
    for (uint32_t c = 0; status == CLEVAL_OK && c < s->n_classes; c++) {
        uint32_t positives = 0, n_groups = 0;
        if ((status = make_keys(s, n, c)) || (status = sort_keys(s, n)) ||
            (status = collapse_ties(s, n, &positives, &n_groups)))
            break;
        if (positives == 0 || positives == n) continue; /* no positive or no negative sample */
        double roc, ap;
        if ((status = curve_sums(s, n_groups, positives, n - positives, &roc, &ap))) break;
        out->classes++;
        support += positives;
        roc_sum += roc;
        ap_sum += ap;
        roc_weighted += roc * positives;
        ap_weighted += ap * positives;
    }
    if (status != CLEVAL_OK || out->classes == 0) {
        memset(out, 0, sizeof *out);
        return status;
    }
    out->roc_macro = roc_sum / out->classes;
    out->ap_macro = ap_sum / out->classes;
    out->roc_weighted = roc_weighted / (double)support;
    out->ap_weighted = ap_weighted / (double)support;
    return CLEVAL_OK;
}
