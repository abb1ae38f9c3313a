/* The KNN integer mode: training values kept on the device in their own 8- or 16-bit type and
 * squared Euclidean distances computed exactly in integer arithmetic (kernels/knn_int.cl), so
 * the search yields the k + 1 nearest directly, ties decided by (distance, index), with no
 * float64 re-ranking and no second search.
 *
 * Exactness bounds (R: the largest |a - b| of two values, 255 for 8-bit types, 65535 for 16-bit):
 *   knn_int_direct sums (q - r)^2 <= dim * R^2 in int when that is below 2^31
 *   (784 x 255^2 = 50,979,600), else in long.
 *   knn_int_scores_cpu (8-bit, CPU family) sums products |q r| <= 255^2 with float FMAs in
 *   blocks of IB = 128 features (128 x 255^2 < 2^24, so every partial sum is exact) and adds the
 *   blocks in int; its score |r|^2 - 2 q.r stays within +-3 dim 255^2, an int while
 *   dim <= MAX_TILED_DIM. */
#include "knn_internal.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    INT_BLOCK = 128,         /* IB of knn_int_scores_cpu */
    MAX_TILED_DIM = 11008,   /* 3 * 11008 * 255^2 < 2^31 */
    DIRECT_GPU_WINDOW = 8192 /* GPU: references per split of knn_int_direct */
};

static bool eight_bit(cleval_elem_type t)
{
    return t == CLEVAL_ELEM_U8 || t == CLEVAL_ELEM_I8;
}

static const char *store_type(cleval_elem_type t)
{
    switch (t) {
    case CLEVAL_ELEM_U8: return "uchar";
    case CLEVAL_ELEM_I8: return "char";
    case CLEVAL_ELEM_U16: return "ushort";
    default: return "short";
    }
}

static const char *type_name(cleval_elem_type t)
{
    switch (t) {
    case CLEVAL_ELEM_U8: return "uint8";
    case CLEVAL_ELEM_I8: return "int8";
    case CLEVAL_ELEM_U16: return "uint16";
    default: return "int16";
    }
}

static void type_range(cleval_elem_type t, double *lo, double *hi)
{
    switch (t) {
    case CLEVAL_ELEM_U8: *lo = 0, *hi = UINT8_MAX; return;
    case CLEVAL_ELEM_I8: *lo = INT8_MIN, *hi = INT8_MAX; return;
    case CLEVAL_ELEM_U16: *lo = 0, *hi = UINT16_MAX; return;
    default: *lo = INT16_MIN, *hi = INT16_MAX; return;
    }
}

/* Where the integer mode runs (CLEVAL_KNN_INTEGER). By default only where it was measured to
 * pay: the CPU family's tiled kernel on 8-bit values. The direct kernel (GPU family, 16-bit
 * values) is exact but untuned, one query per work-item streaming its split: int16
 * Fashion-MNIST ran 4.6x slower than the float path on a CPU, and it has not been timed on a
 * GPU, where the float path has its fused top-k kernel. `always` takes the mode wherever it is
 * exact (the tests; measuring it on a GPU), `never` keeps the float path. */
static bool integer_mode_wanted(bool tiled)
{
    const char *env = getenv("CLEVAL_KNN_INTEGER");
    if (env && strcmp(env, "always") == 0) return true;
    if (env && strcmp(env, "never") == 0) return false;
    return tiled;
}

void knn_int_choose(cleval_knn *knn)
{
    cleval_elem_type t = knn->config.values;
    bool integer =
        t == CLEVAL_ELEM_U8 || t == CLEVAL_ELEM_I8 || t == CLEVAL_ELEM_U16 || t == CLEVAL_ELEM_I16;
    /* Cosine distances are irrational in general: no integer computation is exact for them. */
    knn->int_type =
        integer && knn->config.metric == CLEVAL_KNN_EUCLIDEAN && knn->fp64 ? t : CLEVAL_ELEM_F32;
    if (knn->int_type == CLEVAL_ELEM_F32) return;
    double range = eight_bit(t) ? 255.0 : 65535.0;
    knn->int_acc_long = (double)knn->dim * range * range >= 2147483648.0;
    knn->int_tiled =
        knn->variant == CLEVAL_VARIANT_CPU && eight_bit(t) && knn->dim <= MAX_TILED_DIM;
    if (!integer_mode_wanted(knn->int_tiled)) {
        knn->int_type = CLEVAL_ELEM_F32;
        knn->int_tiled = false;
    }
}

bool knn_int_mode(const cleval_knn *knn)
{
    return knn->int_type != CLEVAL_ELEM_F32;
}

cleval_elem_type cleval_knn_integer_type(const cleval_knn *knn)
{
    return knn->int_type;
}

/* Writes value v (checked to be an integer of the type) at element `at` of `out`. */
static bool store_value(cleval_elem_type t, float v, void *out, size_t at)
{
    double lo, hi;
    type_range(t, &lo, &hi);
    if (!(v >= lo && v <= hi) || v != floorf(v)) return false;
    switch (t) {
    case CLEVAL_ELEM_U8: ((uint8_t *)out)[at] = (uint8_t)v; break;
    case CLEVAL_ELEM_I8: ((int8_t *)out)[at] = (int8_t)v; break;
    case CLEVAL_ELEM_U16: ((uint16_t *)out)[at] = (uint16_t)v; break;
    default: ((int16_t *)out)[at] = (int16_t)v; break;
    }
    return true;
}

static cleval_status not_of_type(const cleval_knn *knn, const char *what, uint64_t row, float v)
{
    return cleval_fail(CLEVAL_ERR_USAGE, "KNN: %s %llu holds %g, which is not a %s value", what,
                       (unsigned long long)row, (double)v, type_name(knn->int_type));
}

/* The tile's values in their type (VW x NV-reference panels, k-major, for the tiled kernel;
 * row-major otherwise) and, for the tiled kernel, |r|^2 per panel slot. */
static cleval_status pack_int_tile(cleval_knn *knn, knn_tile *tile)
{
    uint32_t dim = knn->dim, nr = knn->nr;
    size_t es = cleval_column_elem_size(knn->int_type);
    size_t slots = knn->int_tiled ? (size_t)tile->n_panels * nr : tile->rows;
    tile->int_values = calloc(slots * dim, es);
    tile->int_norms = knn->int_tiled ? malloc(slots * sizeof *tile->int_norms) : NULL;
    if (!tile->int_values || (knn->int_tiled && !tile->int_norms))
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory laying out a KNN tile");
    for (size_t j = 0; tile->int_norms && j < slots; j++)
        tile->int_norms[j] = INT32_MAX; /* padding: never selected */
    for (uint64_t r = 0; r < tile->rows; r++) {
        const float *v = knn->x + (tile->row0 + r) * dim;
        int64_t norm2 = 0;
        /* Element d of row r: panel r / nr, column r % nr, k-major; else row-major. */
        size_t first = knn->int_tiled ? (size_t)(r / nr) * dim * nr + r % nr : (size_t)r * dim;
        size_t step = knn->int_tiled ? nr : 1;
        for (uint32_t d = 0; d < dim; d++) {
            size_t at = first + d * step;
            if (!store_value(knn->int_type, v[d], tile->int_values, at))
                return not_of_type(knn, "training row", tile->row0 + r, v[d]);
            norm2 += (int64_t)v[d] * (int64_t)v[d];
        }
        if (tile->int_norms) tile->int_norms[r] = (int32_t)norm2;
    }
    return CLEVAL_OK;
}

static cleval_status build_int_kernels(cleval_knn *knn)
{
    char options[160];
    snprintf(options, sizeof options,
             "-DSTORE_T=%s -DACC_T=%s -DMR=%d -DNV=%u -DVW=%u -DIB=%d -DQB=%d",
             store_type(knn->int_type), knn->int_acc_long ? "long" : "int", KNN_MR, knn->nv,
             knn->vw, INT_BLOCK, KNN_QB);
    cleval_status status = cleval_device_kernel(
        knn->dev, "knn_int", options, knn->int_tiled ? "knn_int_scores_cpu" : "knn_int_direct",
        &knn->int_kernel);
    if (status == CLEVAL_OK && knn->int_tiled)
        status = cleval_device_kernel(knn->dev, "knn_int", options, "knn_int_candidates",
                                      &knn->int_candidates_kernel);
    /* The vote over the candidates is the float path's. */
    if (status == CLEVAL_OK)
        status = cleval_device_kernel(knn->dev, "knn_exact", "-DMETRIC_COSINE=0", "knn_vote",
                                      &knn->vote_kernel);
    return status;
}

/* Tiles of at most config.tile_rows rows (whole panels), all resident, or false. */
static cleval_status plan_int_tiles(cleval_knn *knn, bool *resident)
{
    const cleval_device_info *info = cleval_device_get_info(knn->dev);
    uint32_t nr = knn->nr;
    uint64_t row_bytes = (uint64_t)knn->dim * cleval_column_elem_size(knn->int_type);
    uint64_t rows_per_alloc = info->max_alloc_bytes / row_bytes;
    rows_per_alloc = rows_per_alloc > nr ? rows_per_alloc - nr : 1;
    uint64_t tile_rows = knn->config.tile_rows ? knn->config.tile_rows : knn->n_train;
    if (tile_rows > rows_per_alloc) tile_rows = rows_per_alloc;
    if (knn->int_tiled && tile_rows > nr) tile_rows -= tile_rows % nr;
    uint32_t n_tiles = (uint32_t)((knn->n_train + tile_rows - 1) / tile_rows);
    knn->tiles = calloc(n_tiles, sizeof *knn->tiles);
    if (!knn->tiles) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory planning KNN tiles");
    knn->n_tiles = n_tiles;
    uint64_t total = 0;
    for (uint32_t t = 0; t < n_tiles; t++) {
        knn_tile *tile = &knn->tiles[t];
        tile->row0 = (uint64_t)t * tile_rows;
        tile->rows = knn->n_train - tile->row0 < tile_rows ? knn->n_train - tile->row0 : tile_rows;
        tile->n_panels = (uint32_t)((tile->rows + nr - 1) / nr);
        uint64_t slots = knn->int_tiled ? (uint64_t)tile->n_panels * nr : tile->rows;
        total += slots * (row_bytes + sizeof(int32_t)) + tile->rows * sizeof(int32_t);
    }
    uint64_t budget = knn->config.device_budget_bytes ? knn->config.device_budget_bytes
                                                      : info->global_mem_bytes / 2;
    *resident = total <= budget;
    if (*resident)
        cleval_log(CLEVAL_LOG_INFO,
                   "KNN: integer mode, %s values, %llu training rows in %u tile%s, %.1f MiB on "
                   "device, %s kernel",
                   type_name(knn->int_type), (unsigned long long)knn->n_train, n_tiles,
                   n_tiles == 1 ? "" : "s", (double)total / 1048576.0,
                   knn->int_tiled ? "tiled CPU" : "direct");
    return CLEVAL_OK;
}

static cleval_status upload_int_tile(cleval_knn *knn, knn_tile *tile, knn_tile_buffers *b)
{
    cleval_device *dev = knn->dev;
    uint32_t nr = knn->nr;
    size_t slots = knn->int_tiled ? (size_t)tile->n_panels * nr : tile->rows;
    size_t value_bytes = slots * knn->dim * cleval_column_elem_size(knn->int_type);
    cl_mem_flags flags = CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR;
    cleval_status status;
    if ((status = cleval_device_buffer(dev, flags, value_bytes, tile->int_values,
                                       "KNN training values", &b->screen)) ||
        (status = cleval_device_buffer(dev, flags, tile->rows * sizeof(int32_t),
                                       knn->y + tile->row0, "KNN training labels", &b->labels)))
        return status;
    if (knn->int_tiled)
        status = cleval_device_buffer(dev, flags, slots * sizeof(int32_t), tile->int_norms,
                                      "KNN training norms", &b->screen_norm);
    return status;
}

void knn_int_release(cleval_knn *knn)
{
    for (uint32_t t = 0; t < knn->n_tiles; t++) {
        free(knn->tiles[t].int_values);
        free(knn->tiles[t].int_norms);
        knn->tiles[t].int_values = NULL;
        knn->tiles[t].int_norms = NULL;
    }
    if (knn->int_kernel) clReleaseKernel(knn->int_kernel);
    if (knn->int_candidates_kernel) clReleaseKernel(knn->int_candidates_kernel);
    knn->int_kernel = knn->int_candidates_kernel = NULL;
    knn_buffer_release(&knn->q_int);
    knn_buffer_release(&knn->int_slices);
}

cleval_status knn_int_prepare(cleval_knn *knn, bool *used)
{
    *used = false;
    bool resident = false;
    cleval_status status = plan_int_tiles(knn, &resident);
    if (status != CLEVAL_OK) return status;
    if (!resident) {
        /* Streaming tiles through one slot is the float path's business. */
        cleval_log(CLEVAL_LOG_INFO, "KNN: the %s training set does not stay resident: float path",
                   type_name(knn->int_type));
        free(knn->tiles);
        knn->tiles = NULL;
        knn->n_tiles = 0;
        knn->int_type = CLEVAL_ELEM_F32;
        return CLEVAL_OK;
    }
    if ((status = build_int_kernels(knn))) return status;
    knn->device_tiles = calloc(knn->n_tiles, sizeof *knn->device_tiles);
    if (!knn->device_tiles) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for KNN tiles");
    knn->n_device_tiles = knn->n_tiles;
    knn->resident = true;
    for (uint32_t t = 0; t < knn->n_tiles; t++) {
        knn_tile *tile = &knn->tiles[t];
        tile->on_device = &knn->device_tiles[t];
        if ((status = pack_int_tile(knn, tile)) ||
            (status = upload_int_tile(knn, tile, tile->on_device)))
            return status;
        free(tile->int_values), free(tile->int_norms);
        tile->int_values = NULL;
        tile->int_norms = NULL;
    }
    /* The float copy of the training set is no longer read: give its memory back. */
    free(knn->x);
    knn->x = NULL;
    *used = true;
    return CLEVAL_OK;
}

uint32_t knn_int_splits(const cleval_knn *knn, const knn_tile *tile, uint32_t nq)
{
    if (knn->int_tiled) {
        /* As the float kernel: every compute unit busy twice over, whole panels per split. */
        uint32_t blocks = (nq + KNN_QB - 1) / KNN_QB;
        uint32_t splits = (knn->max_splits + blocks - 1) / blocks;
        splits = splits < 1 ? 1 : splits > tile->n_panels ? tile->n_panels : splits;
        uint32_t per_split = (tile->n_panels + splits - 1) / splits;
        return (tile->n_panels + per_split - 1) / per_split;
    }
    uint64_t window = DIRECT_GPU_WINDOW;
    if (knn->variant == CLEVAL_VARIANT_CPU) {
        /* One work-item per query and split: split the references when queries are few. */
        uint64_t splits = nq ? (knn->max_splits + nq - 1) / nq : 1;
        splits = splits < 1 ? 1 : splits > tile->rows ? tile->rows : splits;
        window = (tile->rows + splits - 1) / splits;
    }
    return (uint32_t)((tile->rows + window - 1) / window);
}

cleval_status knn_int_upload_queries(cleval_knn *knn, const float *queries, uint32_t nq)
{
    size_t n = (size_t)nq * knn->dim, es = cleval_column_elem_size(knn->int_type);
    void *values = malloc(n * es);
    if (!values) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory laying out KNN queries");
    cleval_status status = CLEVAL_OK;
    for (size_t at = 0; at < n && status == CLEVAL_OK; at++)
        if (!store_value(knn->int_type, queries[at], values, at))
            status = not_of_type(knn, "query", at / knn->dim, queries[at]);
    /* The tiled kernel reads the float micro-panels upload_queries wrote (integral floats). */
    if (status == CLEVAL_OK && !knn->int_tiled &&
        !(status = knn_buffer_reserve(knn, &knn->q_int, n * es, "KNN queries")))
        status = cleval_cl_check(clEnqueueWriteBuffer(cleval_device_queue(knn->dev), knn->q_int.mem,
                                                      CL_TRUE, 0, n * es, values, 0, NULL, NULL),
                                 "clEnqueueWriteBuffer(KNN queries)");
    free(values);
    return status;
}

/* The rows of one split of knn_int_direct (every split but the last holds `window`). */
static uint32_t direct_window(const knn_tile *tile, uint32_t splits)
{
    return (uint32_t)((tile->rows + splits - 1) / splits);
}

cleval_status knn_int_tile(cleval_knn *knn, knn_tile *tile, uint32_t nq, uint32_t nq_pad,
                           uint32_t m, uint32_t splits, uint32_t chunk_base)
{
    knn_tile_buffers *b = tile->on_device;
    cl_command_queue queue = cleval_device_queue(knn->dev);
    int index_base = (int)tile->row0;
    cleval_status status;
    if (!knn->int_tiled) {
        size_t global[2] = {cleval_round_up(nq, 16), splits};
        cleval_kernel_args a = cleval_kernel_args_begin(knn->int_kernel, "knn_int_direct");
        cleval_kernel_arg_mem(&a, knn->q_int.mem);
        cleval_kernel_arg_mem(&a, b->screen);
        cleval_kernel_arg_mem(&a, b->labels);
        cleval_kernel_arg_uint(&a, knn->dim);
        cleval_kernel_arg_uint(&a, nq);
        cleval_kernel_arg_uint(&a, nq_pad);
        cleval_kernel_arg_uint(&a, (uint32_t)tile->rows);
        cleval_kernel_arg_uint(&a, direct_window(tile, splits));
        cleval_kernel_arg_uint(&a, m);
        cleval_kernel_arg_int(&a, index_base);
        cleval_kernel_arg_uint(&a, chunk_base);
        knn_arg_candidates(&a, knn);
        /* A fixed work-group on CPUs: PoCL compiles a kernel once per work-group size, and the
         * size it would pick follows each batch's query count. */
        size_t local[2] = {16, 1};
        bool cpu = knn->variant == CLEVAL_VARIANT_CPU;
        return cleval_kernel_launch(queue, &a, 2, global, cpu ? local : NULL, NULL);
    }
    uint32_t nr = knn->nr;
    uint32_t blocks = (nq + KNN_QB - 1) / KNN_QB;
    uint32_t per_split = (tile->n_panels + splits - 1) / splits;
    if ((status = knn_buffer_reserve(knn, &knn->scratch,
                                     (size_t)splits * blocks * KNN_QB * nr * sizeof(int32_t),
                                     "KNN tile scratch")) ||
        (status = knn_buffer_reserve(knn, &knn->int_slices,
                                     (size_t)splits * blocks * INT_BLOCK * nr * sizeof(float),
                                     "KNN panel slices")))
        return status;
    size_t global[2] = {blocks, splits}, local[2] = {1, 1};
    cleval_kernel_args a = cleval_kernel_args_begin(knn->int_kernel, "knn_int_scores_cpu");
    cleval_kernel_arg_mem(&a, knn->q_screen.mem);
    cleval_kernel_arg_mem(&a, b->screen);
    cleval_kernel_arg_mem(&a, b->screen_norm);
    cleval_kernel_arg_uint(&a, knn->dim);
    cleval_kernel_arg_uint(&a, tile->n_panels);
    cleval_kernel_arg_uint(&a, per_split);
    cleval_kernel_arg_uint(&a, nq);
    cleval_kernel_arg_uint(&a, nq_pad);
    cleval_kernel_arg_uint(&a, m);
    cleval_kernel_arg_mem(&a, knn->scratch.mem);
    cleval_kernel_arg_mem(&a, knn->int_slices.mem);
    cleval_kernel_arg_mem(&a, knn->heap_score.mem);
    cleval_kernel_arg_mem(&a, knn->heap_index.mem);
    cleval_kernel_arg_int(&a, index_base);
    if ((status = cleval_kernel_launch(queue, &a, 2, global, local, NULL))) return status;
    size_t cand_global[2] = {cleval_round_up(nq, 16), splits};
    a = cleval_kernel_args_begin(knn->int_candidates_kernel, "knn_int_candidates");
    cleval_kernel_arg_mem(&a, knn->heap_score.mem);
    cleval_kernel_arg_mem(&a, knn->heap_index.mem);
    cleval_kernel_arg_mem(&a, knn->q_norm2.mem);
    cleval_kernel_arg_mem(&a, b->labels);
    cleval_kernel_arg_uint(&a, nq);
    cleval_kernel_arg_uint(&a, nq_pad);
    cleval_kernel_arg_uint(&a, m);
    cleval_kernel_arg_int(&a, index_base);
    cleval_kernel_arg_uint(&a, chunk_base);
    knn_arg_candidates(&a, knn);
    return cleval_kernel_launch(queue, &a, 2, cand_global, NULL, NULL);
}
