/* The KNN searcher's training side: configuration checks, the host copy of the training set,
 * its split into device tiles, the CPU panel packing, and uploads. */
#include "knn_internal.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { HOST_ALIGNMENT = 4096 };

/* Batch buffers (candidates, votes) of one search stay under this. */
static const uint64_t BATCH_BUDGET_BYTES = 256ull << 20;

cleval_status knn_buffer_reserve(cleval_knn *knn, knn_buffer *buf, size_t bytes, const char *what)
{
    if (bytes <= buf->bytes && buf->mem) return CLEVAL_OK;
    knn_buffer_release(buf);
    cleval_status status =
        cleval_device_buffer(knn->dev, CL_MEM_READ_WRITE, bytes, NULL, what, &buf->mem);
    if (status == CLEVAL_OK) buf->bytes = bytes;
    return status;
}

void knn_buffer_release(knn_buffer *buf)
{
    if (buf->mem) clReleaseMemObject(buf->mem);
    buf->mem = NULL;
    buf->bytes = 0;
}

void knn_arg_candidates(cleval_kernel_args *a, const cleval_knn *knn)
{
    cleval_kernel_arg_mem(a, knn->cand_dist.mem);
    cleval_kernel_arg_mem(a, knn->cand_index.mem);
    cleval_kernel_arg_mem(a, knn->cand_label.mem);
    cleval_kernel_arg_mem(a, knn->safe.mem);
}

void knn_unit_vector(const float *v, uint32_t dim, float *out)
{
    double norm2 = 0;
    for (uint32_t d = 0; d < dim; d++)
        norm2 += (double)v[d] * v[d];
    double scale = norm2 > 0 ? 1.0 / sqrt(norm2) : 0.0;
    for (uint32_t d = 0; d < dim; d++)
        out[d] = (float)(v[d] * scale);
}

/* The CPU tile's vector lanes: the device's preferred float vector width (8 on AVX2, 16 on
 * AVX-512), 16 when it does not say; CLEVAL_KNN_VW overrides it for experiments. */
static uint32_t vector_lanes(const cleval_knn *knn)
{
    const char *env = getenv("CLEVAL_KNN_VW");
    if (env && (!strcmp(env, "4") || !strcmp(env, "8") || !strcmp(env, "16")))
        return (uint32_t)atoi(env);
    uint32_t width = cleval_device_get_info(knn->dev)->preferred_float_width;
    if (width == 0) return 16;
    return width >= 16 ? 16 : width >= 8 ? 8 : 4;
}

void knn_choose_panel(cleval_knn *knn)
{
    knn->vw = vector_lanes(knn);
    /* Four query rows by 64 references in 16 float16 accumulators where there are 32 vector
     * registers (AVX-512); with 16 registers (8 lanes, AVX2) 4 x 2 vectors leave room for the
     * loads and the broadcast. CLEVAL_KNN_NV overrides the count for experiments. */
    knn->nv = knn->vw == 16 ? 4 : knn->vw == 8 ? 2 : 4;
    const char *env = getenv("CLEVAL_KNN_NV");
    if (env && env[0] >= '1' && env[0] <= '8' && !env[1]) knn->nv = (uint32_t)(env[0] - '0');
    knn->nr = knn->vw * knn->nv;
}

static uint32_t automatic_margin(uint32_t k)
{
    return k / 4 > 16 ? k / 4 : 16;
}

const char *cleval_knn_weights_name(cleval_knn_weights weights)
{
    return weights == CLEVAL_KNN_DISTANCE ? "distance" : "uniform";
}

const char *cleval_knn_metric_name(cleval_knn_metric metric)
{
    return metric == CLEVAL_KNN_COSINE ? "cosine" : "euclidean";
}

cleval_status cleval_knn_create(cleval_device *dev, const cleval_knn_config *config,
                                uint64_t n_train, uint32_t dim, cleval_knn **out)
{
    *out = NULL;
    if (n_train == 0) return cleval_fail(CLEVAL_ERR_INPUT, "the training set is empty");
    if (config->k < 1) return cleval_fail(CLEVAL_ERR_USAGE, "-k must be at least 1");
    if (config->k > n_train)
        return cleval_fail(CLEVAL_ERR_USAGE, "-k %u is larger than the training set (%llu rows)",
                           config->k, (unsigned long long)n_train);
    if (n_train > INT32_MAX)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED, "training sets hold at most %d rows", INT32_MAX);
    if (dim == 0) return cleval_fail(CLEVAL_ERR_INPUT, "samples have no features");
    if (config->n_classes == 0) return cleval_fail(CLEVAL_ERR_USAGE, "n_classes must be >= 1");

    cleval_knn *knn = calloc(1, sizeof *knn);
    if (!knn) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory creating the KNN searcher");
    knn->dev = dev;
    knn->config = *config;
    knn->n_train = n_train;
    knn->dim = dim;
    knn->variant = cleval_device_variant(dev);
    knn->fp64 = cleval_device_get_info(dev)->has_fp64;
    knn->exact_size = knn->fp64 ? sizeof(double) : sizeof(float);
    knn->margin = config->margin ? config->margin : automatic_margin(config->k);
    knn->share_screen =
        knn->variant == CLEVAL_VARIANT_GPU && config->metric == CLEVAL_KNN_EUCLIDEAN;
    knn_choose_panel(knn);
    knn_int_choose(knn);
    /* Page-aligned, so CPU devices can use the host copy in place (CL_MEM_USE_HOST_PTR). */
    size_t bytes = cleval_round_up((size_t)n_train * dim * sizeof *knn->x, HOST_ALIGNMENT);
    knn->x = aligned_alloc(HOST_ALIGNMENT, bytes);
    knn->y = malloc((size_t)n_train * sizeof *knn->y);
    if (!knn->x || !knn->y) {
        cleval_knn_destroy(knn);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory holding %llu x %u training values",
                           (unsigned long long)n_train, dim);
    }
    *out = knn;
    return CLEVAL_OK;
}

static void release_tiles(cleval_knn *knn)
{
    for (uint32_t t = 0; t < knn->n_device_tiles; t++) {
        knn_tile_buffers *b = &knn->device_tiles[t];
        cl_mem all[] = {b->screen_norm, b->original, b->norm2, b->labels,
                        b->screen != b->original ? b->screen : NULL};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++)
            if (all[i]) clReleaseMemObject(all[i]);
    }
    free(knn->device_tiles);
    knn->device_tiles = NULL;
    knn->n_device_tiles = 0;
    for (uint32_t t = 0; t < knn->n_tiles; t++) {
        free(knn->tiles[t].screen);
        free(knn->tiles[t].screen_norm);
        free(knn->tiles[t].norm2);
    }
    free(knn->tiles);
    knn->tiles = NULL;
    knn->n_tiles = 0;
}

void cleval_knn_destroy(cleval_knn *knn)
{
    if (!knn) return;
    cleval_device_finish(knn->dev);
    knn_int_release(knn);
    release_tiles(knn);
    cl_kernel kernels[] = {knn->scores_kernel, knn->topk_global_kernel, knn->exact_kernel,
                           knn->vote_kernel};
    for (size_t i = 0; i < sizeof kernels / sizeof *kernels; i++)
        if (kernels[i]) clReleaseKernel(kernels[i]);
    knn_buffer *buffers[] = {&knn->q_original, &knn->q_norm2,    &knn->q_screen,
                             &knn->scratch,    &knn->heap_score, &knn->heap_index,
                             &knn->cand_dist,  &knn->cand_index, &knn->cand_label,
                             &knn->safe,       &knn->vote_dist,  &knn->vote_index,
                             &knn->vote_label, &knn->votes,      &knn->pred,
                             &knn->scores,     &knn->flags};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++)
        knn_buffer_release(buffers[i]);
    free(knn->x);
    free(knn->y);
    free(knn->ranked);
    free(knn);
}

cleval_status cleval_knn_set_train(cleval_knn *knn, uint64_t row0, uint64_t n, const float *x,
                                   const int32_t *y)
{
    if (row0 > knn->n_train || n > knn->n_train - row0)
        return cleval_fail(CLEVAL_ERR_USAGE, "training rows %llu..%llu out of range",
                           (unsigned long long)row0, (unsigned long long)(row0 + n));
    for (uint64_t i = 0; i < n; i++)
        if (y[i] < 0 || (uint32_t)y[i] >= knn->config.n_classes)
            return cleval_fail(CLEVAL_ERR_INPUT, "training label %d of row %llu is outside 0..%u",
                               y[i], (unsigned long long)(row0 + i), knn->config.n_classes - 1);
    memcpy(knn->x + row0 * knn->dim, x, (size_t)n * knn->dim * sizeof *x);
    memcpy(knn->y + row0, y, (size_t)n * sizeof *y);
    knn->rows_set += n;
    return CLEVAL_OK;
}

static size_t screen_floats(const cleval_knn *knn, const knn_tile *tile)
{
    if (knn->variant == CLEVAL_VARIANT_CPU) return (size_t)tile->n_panels * knn->dim * knn->nr;
    return (size_t)tile->rows * knn->dim;
}

static size_t norm_count(const cleval_knn *knn, const knn_tile *tile)
{
    if (knn->variant == CLEVAL_VARIANT_CPU) return (size_t)tile->n_panels * knn->nr;
    return (size_t)tile->rows;
}

/* Fills the tile's host layouts: screening vectors (unit vectors for cosine; nr-row panels,
 * k-major, on CPUs), their norms as float (+INF for padding), the originals' |r|^2 in the
 * exact type, and the largest |r| of the tile. */
static cleval_status pack_tile(const cleval_knn *knn, knn_tile *tile)
{
    uint32_t dim = knn->dim;
    bool cosine = knn->config.metric == CLEVAL_KNN_COSINE;
    bool packed = knn->variant == CLEVAL_VARIANT_CPU;
    size_t n_norms = norm_count(knn, tile);
    tile->screen_norm = malloc(n_norms * sizeof *tile->screen_norm);
    tile->norm2 = malloc(tile->rows * knn->exact_size);
    if (!knn->share_screen)
        tile->screen =
            aligned_alloc(HOST_ALIGNMENT, cleval_round_up(screen_floats(knn, tile) * sizeof(float),
                                                          HOST_ALIGNMENT));
    /* Unit vectors for cosine; otherwise the screening vectors are the originals. */
    float *unit = cosine ? malloc((size_t)tile->rows * dim * sizeof *unit) : NULL;
    if (!tile->screen_norm || !tile->norm2 || (!knn->share_screen && !tile->screen) ||
        (cosine && !unit)) {
        free(unit);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory laying out a KNN tile");
    }
    const float *originals = knn->x + tile->row0 * dim;
    double max2 = 0;
    for (size_t j = 0; j < n_norms; j++)
        tile->screen_norm[j] = INFINITY; /* padding is never selected */
    for (uint64_t r = 0; r < tile->rows; r++) {
        const float *v = originals + r * dim;
        double norm2 = 0;
        for (uint32_t d = 0; d < dim; d++)
            norm2 += (double)v[d] * v[d];
        max2 = norm2 > max2 ? norm2 : max2;
        if (knn->fp64)
            ((double *)tile->norm2)[r] = norm2;
        else
            ((float *)tile->norm2)[r] = (float)norm2;
        if (cosine) {
            knn_unit_vector(v, dim, unit + r * dim);
            norm2 = 0;
            for (uint32_t d = 0; d < dim; d++)
                norm2 += (double)unit[r * dim + d] * unit[r * dim + d];
            /* A zero vector must score like "cosine 0": |r|^2 - 2 q.r = 1. */
            if (norm2 == 0) norm2 = 1;
        }
        tile->screen_norm[r] = (float)norm2;
    }
    /* Rounded up so the error bound built from it stays a bound. */
    tile->max_norm = nextafterf((float)sqrt(max2), INFINITY);

    const float *source = cosine ? unit : originals;
    if (packed) {
        /* Panel by panel: the panel's nr source rows stay in cache while it is transposed. */
        for (uint32_t p = 0; p < tile->n_panels; p++) {
            float *panel = tile->screen + (size_t)p * dim * knn->nr;
            uint64_t first = (uint64_t)p * knn->nr;
            assert(first < tile->rows);
            uint32_t rows = (uint32_t)(tile->rows - first < knn->nr ? tile->rows - first : knn->nr);
            for (uint32_t d = 0; d < dim; d++) {
                float *column = panel + (size_t)d * knn->nr;
                for (uint32_t j = 0; j < rows; j++)
                    column[j] = source[(first + j) * dim + d];
                for (uint32_t j = rows; j < knn->nr; j++)
                    column[j] = 0.0f;
            }
        }
    } else if (!knn->share_screen) {
        memcpy(tile->screen, source, (size_t)tile->rows * dim * sizeof *source);
    }
    free(unit);
    return CLEVAL_OK;
}

static cleval_status write_buffer(cleval_knn *knn, cl_mem mem, size_t bytes, const void *data,
                                  const char *what)
{
    cl_int err = clEnqueueWriteBuffer(cleval_device_queue(knn->dev), mem, CL_TRUE, 0, bytes, data,
                                      0, NULL, NULL);
    if (err != CL_SUCCESS)
        return cleval_fail(cleval_cl_status(err, false), "clEnqueueWriteBuffer(%s) failed: %s (%d)",
                           what, cleval_cl_error_name(err), (int)err);
    return CLEVAL_OK;
}

/* Whether the tile's big arrays can serve as device memory as they are: resident tiles on a
 * device that shares host memory (CPUs through PoCL) skip a copy of each. */
static bool in_place(const cleval_knn *knn)
{
    return knn->resident && cleval_device_get_info(knn->dev)->host_unified_memory;
}

/* Device buffers for `tile` (for the streamed slot: for the largest tile). */
static cleval_status allocate_tile_buffers(cleval_knn *knn, knn_tile *tile, knn_tile_buffers *b)
{
    cleval_device *dev = knn->dev;
    bool use_host = in_place(knn);
    cl_mem_flags big = CL_MEM_READ_ONLY | (use_host ? CL_MEM_USE_HOST_PTR : 0);
    cleval_status status;
    if ((status = cleval_device_buffer(dev, big, tile->rows * knn->dim * sizeof(float),
                                       use_host ? knn->x + tile->row0 * knn->dim : NULL,
                                       "KNN training vectors", &b->original)) ||
        (status = cleval_device_buffer(dev, CL_MEM_READ_ONLY, tile->rows * knn->exact_size, NULL,
                                       "KNN training norms", &b->norm2)) ||
        (status = cleval_device_buffer(dev, CL_MEM_READ_ONLY, tile->rows * sizeof(int32_t), NULL,
                                       "KNN training labels", &b->labels)) ||
        (status = cleval_device_buffer(dev, CL_MEM_READ_ONLY, norm_count(knn, tile) * sizeof(float),
                                       NULL, "KNN screening norms", &b->screen_norm)))
        return status;
    if (knn->share_screen) {
        b->screen = b->original;
        return CLEVAL_OK;
    }
    return cleval_device_buffer(dev, big, screen_floats(knn, tile) * sizeof(float),
                                use_host ? tile->screen : NULL, "KNN screening vectors",
                                &b->screen);
}

/* Copies the tile into its device buffers (the in-place arrays need no copy). */
static cleval_status upload_tile(cleval_knn *knn, const knn_tile *tile)
{
    const knn_tile_buffers *b = tile->on_device;
    bool use_host = in_place(knn);
    cleval_status status;
    if ((!use_host &&
         (status = write_buffer(knn, b->original, tile->rows * knn->dim * sizeof(float),
                                knn->x + tile->row0 * knn->dim, "KNN training vectors"))) ||
        (status = write_buffer(knn, b->norm2, tile->rows * knn->exact_size, tile->norm2,
                               "KNN training norms")) ||
        (status = write_buffer(knn, b->labels, tile->rows * sizeof(int32_t), knn->y + tile->row0,
                               "KNN training labels")) ||
        (status = write_buffer(knn, b->screen_norm, norm_count(knn, tile) * sizeof(float),
                               tile->screen_norm, "KNN screening norms")))
        return status;
    if (knn->share_screen || use_host) return CLEVAL_OK;
    return write_buffer(knn, b->screen, screen_floats(knn, tile) * sizeof(float), tile->screen,
                        "KNN screening vectors");
}

cleval_status knn_use_tile(cleval_knn *knn, knn_tile *tile)
{
    return knn->resident ? CLEVAL_OK : upload_tile(knn, tile);
}

/* Splits the training set into tiles of at most tile_rows rows. */
static cleval_status plan_tiles(cleval_knn *knn)
{
    const cleval_device_info *info = cleval_device_get_info(knn->dev);
    uint64_t row_bytes = (uint64_t)knn->dim * sizeof(float);
    /* The largest buffer of a tile holds its vectors (the screening copy may pad nr - 1 rows). */
    uint64_t rows_per_alloc = info->max_alloc_bytes / row_bytes;
    rows_per_alloc = rows_per_alloc > knn->nr ? rows_per_alloc - knn->nr : 1;
    uint64_t tile_rows = knn->config.tile_rows ? knn->config.tile_rows : knn->n_train;
    if (tile_rows > rows_per_alloc) tile_rows = rows_per_alloc;
    if (knn->variant == CLEVAL_VARIANT_CPU && tile_rows > knn->nr)
        tile_rows -= tile_rows % knn->nr; /* whole panels, except a tile smaller than one */
    uint32_t n_tiles = (uint32_t)((knn->n_train + tile_rows - 1) / tile_rows);
    knn->tiles = calloc(n_tiles, sizeof *knn->tiles);
    if (!knn->tiles) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory planning KNN tiles");
    knn->n_tiles = n_tiles; /* only now: release_tiles walks them */
    uint64_t total_bytes = 0;
    for (uint32_t t = 0; t < knn->n_tiles; t++) {
        knn_tile *tile = &knn->tiles[t];
        tile->row0 = (uint64_t)t * tile_rows;
        tile->rows = knn->n_train - tile->row0 < tile_rows ? knn->n_train - tile->row0 : tile_rows;
        tile->n_panels = (uint32_t)((tile->rows + knn->nr - 1) / knn->nr);
        /* GPU Euclidean screens the originals themselves: no second copy. */
        size_t screen = knn->share_screen ? 0 : screen_floats(knn, tile);
        total_bytes += (screen + tile->rows * knn->dim) * sizeof(float) +
                       tile->rows * (knn->exact_size + sizeof(int32_t) + sizeof(float));
    }
    uint64_t budget = knn->config.device_budget_bytes ? knn->config.device_budget_bytes
                                                      : info->global_mem_bytes / 2;
    knn->resident = total_bytes <= budget;
    if (!knn->resident && knn->n_tiles == 1)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                           "the training set (%llu bytes on the device) exceeds the device "
                           "budget of %llu bytes; set smaller tiles",
                           (unsigned long long)total_bytes, (unsigned long long)budget);
    cleval_log(CLEVAL_LOG_INFO, "KNN: %llu training rows in %u tile%s (%s), %.1f MiB on device",
               (unsigned long long)knn->n_train, knn->n_tiles, knn->n_tiles == 1 ? "" : "s",
               knn->resident ? "resident" : "streamed per batch", (double)total_bytes / 1048576.0);
    return CLEVAL_OK;
}

static cleval_status build_kernels(cleval_knn *knn)
{
    char options[128];
    snprintf(options, sizeof options, "-DMETRIC_COSINE=%d",
             knn->config.metric == CLEVAL_KNN_COSINE);
    cleval_status status;
    if (knn->variant == CLEVAL_VARIANT_CPU) {
        char tile[128];
        snprintf(tile, sizeof tile, "-DMR=%d -DNV=%u -DVW=%u -DQB=%d", KNN_MR, knn->nv, knn->vw,
                 KNN_QB);
        status = cleval_device_kernel(knn->dev, "knn_scores", tile, "knn_scores_cpu",
                                      &knn->scores_kernel);
    } else {
        status = knn_topk_kernel(knn, true, &knn->scores_kernel);
    }
    if (status != CLEVAL_OK || (status = cleval_device_kernel(knn->dev, "knn_exact", options,
                                                              "knn_exact", &knn->exact_kernel)))
        return status;
    return cleval_device_kernel(knn->dev, "knn_exact", options, "knn_vote", &knn->vote_kernel);
}

/* Largest query batch whose candidate and vote buffers fit the batch budget. */
static uint32_t plan_batch(cleval_knn *knn)
{
    const cleval_device_info *info = cleval_device_get_info(knn->dev);
    knn->max_splits = knn->variant == CLEVAL_VARIANT_CPU
                          ? 2 * (info->compute_units ? info->compute_units : 1)
                          : 1;
    uint64_t max_tile_rows = 0;
    for (uint32_t t = 0; t < knn->n_tiles; t++)
        max_tile_rows = knn->tiles[t].rows > max_tile_rows ? knn->tiles[t].rows : max_tile_rows;
    uint32_t splits_per_tile =
        knn->variant == CLEVAL_VARIANT_CPU
            ? knn->max_splits
            : (uint32_t)((max_tile_rows + KNN_GPU_WINDOW - 1) / KNN_GPU_WINDOW);
    uint64_t m = (uint64_t)knn->config.k + 1 + knn->margin;
    uint64_t chunks = (uint64_t)knn->n_tiles * splits_per_tile;
    uint64_t per_query = (uint64_t)knn->dim * 3 * sizeof(float) + 8 + m * splits_per_tile * 8 +
                         chunks * (m * (8 + 8) + 8) + ((uint64_t)knn->config.k + 1) * 16 +
                         knn->config.n_classes * 12;
    uint64_t batch = BATCH_BUDGET_BYTES / per_query;
    batch = batch < 8192 ? batch : 8192;
    batch = batch > KNN_QB ? batch - batch % KNN_QB : (batch ? batch : 1);
    return (uint32_t)batch;
}

/* The batch plan and the result array, once the tiles are planned. */
static cleval_status plan_results(cleval_knn *knn)
{
    knn->max_batch = plan_batch(knn);
    knn->ranked = malloc((size_t)knn->max_batch * (knn->config.k + 1) * sizeof *knn->ranked);
    if (!knn->ranked) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for KNN results");
    return CLEVAL_OK;
}

cleval_status cleval_knn_prepare(cleval_knn *knn)
{
    if (knn->rows_set != knn->n_train)
        return cleval_fail(CLEVAL_ERR_USAGE, "%llu of %llu training rows were set",
                           (unsigned long long)knn->rows_set, (unsigned long long)knn->n_train);
    cleval_status status;
    if (knn_int_mode(knn)) {
        bool used;
        if ((status = knn_int_prepare(knn, &used))) return status;
        if (used) return plan_results(knn);
    }
    if ((status = build_kernels(knn)) || (status = plan_tiles(knn)) ||
        (status = plan_results(knn)))
        return status;
    cleval_log(CLEVAL_LOG_INFO,
               "KNN: %s kernels, k=%u, %u screening candidates per split, "
               "batches of up to %u queries, exact pass in %s",
               cleval_variant_name(knn->variant), knn->config.k, knn->config.k + 1 + knn->margin,
               knn->max_batch, knn->fp64 ? "float64" : "float32");
    /* Resident: one set of device buffers per tile, filled now. Streamed: one slot sized for
     * the first (largest) tile that every tile is uploaded into in turn. */
    uint32_t n_device_tiles = knn->resident ? knn->n_tiles : 1;
    knn->device_tiles = calloc(n_device_tiles, sizeof *knn->device_tiles);
    if (!knn->device_tiles) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for KNN tiles");
    knn->n_device_tiles = n_device_tiles; /* only now: release_tiles walks them */
    for (uint32_t t = 0; t < knn->n_tiles; t++) {
        knn_tile *tile = &knn->tiles[t];
        tile->on_device = &knn->device_tiles[knn->resident ? t : 0];
        if ((status = pack_tile(knn, tile)) != CLEVAL_OK) return status;
        if (knn->resident || t == 0)
            if ((status = allocate_tile_buffers(knn, tile, tile->on_device)) != CLEVAL_OK)
                return status;
        if (knn->resident) {
            if ((status = upload_tile(knn, tile)) != CLEVAL_OK) return status;
            /* The device holds the small arrays now; the big ones stay when used in place. */
            free(tile->screen_norm), free(tile->norm2);
            tile->screen_norm = NULL;
            tile->norm2 = NULL;
            if (!in_place(knn)) {
                free(tile->screen);
                tile->screen = NULL;
            }
        }
    }
    return CLEVAL_OK;
}

uint32_t cleval_knn_max_batch(const cleval_knn *knn)
{
    return knn->max_batch;
}

cl_mem cleval_knn_pred_buffer(const cleval_knn *knn)
{
    return knn->pred.mem;
}

cl_mem cleval_knn_scores_buffer(const cleval_knn *knn)
{
    return knn->scores.mem;
}

const cleval_knn_stats *cleval_knn_get_stats(const cleval_knn *knn)
{
    return &knn->stats;
}
