/* One KNN search: queries laid out for the device, screening over every training tile,
 * exact re-ranking and votes, and a second search with more candidates for the few queries
 * whose screening could not be proven complete. */
#include "knn_internal.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/engine.h"

enum { FLAG_UNPROVEN = 1, FLAG_DISTANCE_TIE = 2, FLAG_VOTE_TIE = 4 };

/* The results of one pass over a batch, in host memory. */
typedef struct pass_output {
    int32_t *pred;      /* [nq] */
    float *scores;      /* [nq][n_classes] or NULL */
    uint32_t *flags;    /* [nq] */
    cleval_knn_candidate *ranked; /* [nq][k + 1]: the k + 1 nearest, nearest first */
} pass_output;

static cleval_status fill(cleval_knn *knn, cl_mem mem, const void *pattern, size_t pattern_size,
                          size_t bytes)
{
    return cleval_cl_check(clEnqueueFillBuffer(cleval_device_queue(knn->dev), mem, pattern,
                                               pattern_size, 0, bytes, 0, NULL, NULL),
                           "clEnqueueFillBuffer(KNN heaps)");
}

static cleval_status write(cleval_knn *knn, cl_mem mem, size_t bytes, const void *data)
{
    return cleval_cl_check(clEnqueueWriteBuffer(cleval_device_queue(knn->dev), mem, CL_TRUE, 0,
                                                bytes, data, 0, NULL, NULL),
                           "clEnqueueWriteBuffer(KNN queries)");
}

static cleval_status read(cleval_knn *knn, cl_mem mem, size_t bytes, void *data)
{
    return cleval_cl_check(clEnqueueReadBuffer(cleval_device_queue(knn->dev), mem, CL_TRUE, 0,
                                               bytes, data, 0, NULL, NULL),
                           "clEnqueueReadBuffer(KNN results)");
}

static uint32_t splits_for(const cleval_knn *knn, const knn_tile *tile, uint32_t nq)
{
    if (knn_int_mode(knn)) return knn_int_splits(knn, tile, nq);
    if (knn->variant == CLEVAL_VARIANT_GPU)
        return (uint32_t)((tile->rows + KNN_GPU_WINDOW - 1) / KNN_GPU_WINDOW);
    /* Enough work-items for every compute unit twice over, each over whole panels. */
    uint32_t blocks = (nq + KNN_QB - 1) / KNN_QB;
    uint32_t splits = (knn->max_splits + blocks - 1) / blocks;
    splits = splits < 1 ? 1 : splits > tile->n_panels ? tile->n_panels : splits;
    uint32_t per_split = (tile->n_panels + splits - 1) / splits;
    return (tile->n_panels + per_split - 1) / per_split;
}

/* Uploads the queries: originals and |q|^2 for the exact pass, and the screening layout
 * (unit vectors for cosine; k-major micro-panels of 4 queries on CPUs). */
static cleval_status upload_queries(cleval_knn *knn, const float *queries, uint32_t nq,
                                    uint32_t nq_pad)
{
    uint32_t dim = knn->dim;
    bool cosine = knn->config.metric == CLEVAL_KNN_COSINE;
    bool packed = knn->variant == CLEVAL_VARIANT_CPU;
    size_t screen_floats = (size_t)nq_pad * dim;
    cleval_status status;
    if ((status = knn_buffer_reserve(knn, &knn->q_original, (size_t)nq * dim * sizeof(float),
                                     "KNN queries")) ||
        (status = knn_buffer_reserve(knn, &knn->q_norm2, (size_t)nq * knn->exact_size,
                                     "KNN query norms")) ||
        (status = knn_buffer_reserve(knn, &knn->q_screen, screen_floats * sizeof(float),
                                     "KNN screening queries")))
        return status;
    void *norm2 = malloc((size_t)nq * knn->exact_size);
    float *screen = calloc(screen_floats, sizeof *screen);
    float *unit = malloc(dim * sizeof *unit);
    if (!norm2 || !screen || !unit) {
        free(norm2), free(screen), free(unit);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory laying out KNN queries");
    }
    for (uint32_t q = 0; q < nq; q++) {
        const float *v = queries + (size_t)q * dim;
        double sum = 0;
        for (uint32_t d = 0; d < dim; d++)
            sum += (double)v[d] * v[d];
        if (knn->fp64)
            ((double *)norm2)[q] = sum;
        else
            ((float *)norm2)[q] = (float)sum;
        if (cosine) {
            knn_unit_vector(v, dim, unit);
            v = unit;
        }
        if (packed) {
            assert(q < nq_pad && nq_pad % KNN_MR == 0); /* the micro-panels hold every query */
            float *panel = screen + (size_t)(q / KNN_MR) * dim * KNN_MR;
            for (uint32_t d = 0; d < dim; d++)
                panel[(size_t)d * KNN_MR + q % KNN_MR] = v[d];
        } else {
            memcpy(screen + (size_t)q * dim, v, dim * sizeof *v);
        }
    }
    if (!(status = write(knn, knn->q_original.mem, (size_t)nq * dim * sizeof(float), queries)) &&
        !(status = write(knn, knn->q_norm2.mem, (size_t)nq * knn->exact_size, norm2)))
        status = write(knn, knn->q_screen.mem, screen_floats * sizeof(float), screen);
    free(norm2);
    free(screen);
    free(unit);
    return status;
}

/* Local memory knn_topk_gpu needs beyond its heaps: the staged slices and the score tile
 * (its static __local arrays). */
static size_t topk_static_local(void)
{
    return sizeof(float) * ((size_t)KNN_GPU_TK * (KNN_GPU_QT + KNN_GPU_RT) +
                            (size_t)KNN_GPU_QT * (KNN_GPU_RT + 1));
}

cleval_status knn_topk_kernel(cleval_knn *knn, bool heap_local, cl_kernel *out)
{
    const cleval_device_info *info = cleval_device_get_info(knn->dev);
    size_t items = (size_t)(KNN_GPU_RT / KNN_GPU_WPT) * (KNN_GPU_QT / KNN_GPU_WPT);
    if (info->max_work_group_size < items || info->local_mem_bytes < topk_static_local())
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                           "the device's work-groups (%zu items, %llu bytes of local memory) are "
                           "smaller than the GPU KNN kernel needs (%zu items, %zu bytes); use "
                           "the CPU kernel family",
                           info->max_work_group_size, (unsigned long long)info->local_mem_bytes,
                           items, topk_static_local());
    char options[128];
    snprintf(options, sizeof options, "-DQT=%d -DRT=%d -DWPT=%d -DTK=%d -DHEAP_LOCAL=%d",
             KNN_GPU_QT, KNN_GPU_RT, KNN_GPU_WPT, KNN_GPU_TK, heap_local);
    return cleval_device_kernel(knn->dev, "knn_topk_gpu", options, "knn_topk_gpu", out);
}

/* GPU screening of one tile: one launch for every split; each work-group's QT heaps stay in
 * local memory when they fit the device's, else they are kept in the global heap buffer. */
static cleval_status screen_tile_gpu(cleval_knn *knn, knn_tile *tile, uint32_t nq,
                                     uint32_t nq_pad, uint32_t m, uint32_t splits)
{
    if (splits == 0 || nq == 0) return CLEVAL_OK;
    const cleval_device_info *info = cleval_device_get_info(knn->dev);
    size_t heap_bytes = (size_t)KNN_GPU_QT * m * (sizeof(float) + sizeof(int32_t));
    bool heap_local = topk_static_local() + heap_bytes <= info->local_mem_bytes;
    cl_kernel kernel = knn->scores_kernel;
    if (!heap_local) {
        if (!knn->topk_global_kernel) {
            cleval_status status = knn_topk_kernel(knn, false, &knn->topk_global_kernel);
            if (status != CLEVAL_OK) return status;
        }
        kernel = knn->topk_global_kernel;
    }
    cleval_kernel_args a = cleval_kernel_args_begin(kernel, "knn_topk_gpu");
    cleval_kernel_arg_mem(&a, knn->q_screen.mem);
    cleval_kernel_arg_mem(&a, tile->on_device->screen);
    cleval_kernel_arg_mem(&a, tile->on_device->screen_norm);
    cleval_kernel_arg_uint(&a, knn->dim);
    cleval_kernel_arg_uint(&a, nq);
    cleval_kernel_arg_uint(&a, nq_pad);
    cleval_kernel_arg_uint(&a, (uint32_t)tile->rows);
    cleval_kernel_arg_uint(&a, KNN_GPU_WINDOW);
    cleval_kernel_arg_uint(&a, m);
    cleval_kernel_arg_mem(&a, knn->heap_score.mem);
    cleval_kernel_arg_mem(&a, knn->heap_index.mem);
    cleval_kernel_arg_int(&a, (int)tile->row0);
    if (heap_local) {
        cleval_kernel_arg_local(&a, (size_t)KNN_GPU_QT * m * sizeof(float));
        cleval_kernel_arg_local(&a, (size_t)KNN_GPU_QT * m * sizeof(int32_t));
    }
    size_t local[2] = {KNN_GPU_RT / KNN_GPU_WPT, KNN_GPU_QT / KNN_GPU_WPT};
    size_t global[2] = {(size_t)splits * local[0],
                        (size_t)((nq + KNN_GPU_QT - 1) / KNN_GPU_QT) * local[1]};
    return cleval_kernel_launch(cleval_device_queue(knn->dev), &a, 2, global, local, NULL);
}

/* Screening of one tile: fills the heaps [splits][nq_pad][m]. */
static cleval_status screen_tile(cleval_knn *knn, knn_tile *tile, uint32_t nq, uint32_t nq_pad,
                                 uint32_t m, uint32_t splits)
{
    knn_tile_buffers *b = tile->on_device;
    uint32_t dim = knn->dim;
    int index_base = (int)tile->row0;
    if (knn->variant == CLEVAL_VARIANT_CPU) {
        uint32_t blocks = (nq + KNN_QB - 1) / KNN_QB;
        uint32_t per_split = (tile->n_panels + splits - 1) / splits;
        cleval_status status = knn_buffer_reserve(
            knn, &knn->scratch, (size_t)splits * blocks * KNN_QB * knn->nr * sizeof(float),
            "KNN tile scratch");
        if (status != CLEVAL_OK) return status;
        size_t global[2] = {blocks, splits}, local[2] = {1, 1};
        cleval_kernel_args a = cleval_kernel_args_begin(knn->scores_kernel, "knn_scores_cpu");
        cleval_kernel_arg_mem(&a, knn->q_screen.mem);
        cleval_kernel_arg_mem(&a, b->screen);
        cleval_kernel_arg_mem(&a, b->screen_norm);
        cleval_kernel_arg_uint(&a, dim);
        cleval_kernel_arg_uint(&a, tile->n_panels);
        cleval_kernel_arg_uint(&a, per_split);
        cleval_kernel_arg_uint(&a, nq);
        cleval_kernel_arg_uint(&a, nq_pad);
        cleval_kernel_arg_uint(&a, m);
        cleval_kernel_arg_mem(&a, knn->scratch.mem);
        cleval_kernel_arg_mem(&a, knn->heap_score.mem);
        cleval_kernel_arg_mem(&a, knn->heap_index.mem);
        cleval_kernel_arg_int(&a, index_base);
        return cleval_kernel_launch(cleval_device_queue(knn->dev), &a, 2, global, local, NULL);
    }
    return screen_tile_gpu(knn, tile, nq, nq_pad, m, splits);
}

/* Exact distances of one tile's candidates into chunks [chunk_base, chunk_base + splits). */
static cleval_status exact_tile(cleval_knn *knn, knn_tile *tile, uint32_t nq, uint32_t nq_pad,
                                uint32_t m, uint32_t splits, uint32_t chunk_base)
{
    knn_tile_buffers *b = tile->on_device;
    const float u = 0x1p-24f;
    double gamma = (double)knn->dim * u / (1.0 - (double)knn->dim * u);
    bool cosine = knn->config.metric == CLEVAL_KNN_COSINE;
    /* Twice the rounding-error analysis (dot product, norm rounding, subtraction; for cosine
     * also the rounding of the unit vectors), plus slack for the float64 side. */
    float bound_dot = (float)(4 * gamma + (cosine ? 16 : 4) * u + 1e-12);
    float bound_norm = (float)((cosine ? 16 : 4) * u + 1e-12);
    int index_base = (int)tile->row0;
    size_t global[2] = {cleval_round_up(nq, 16), splits};
    cleval_kernel_args a = cleval_kernel_args_begin(knn->exact_kernel, "knn_exact");
    cleval_kernel_arg_mem(&a, knn->q_original.mem);
    cleval_kernel_arg_mem(&a, knn->q_norm2.mem);
    cleval_kernel_arg_mem(&a, b->original);
    cleval_kernel_arg_mem(&a, b->norm2);
    cleval_kernel_arg_mem(&a, b->labels);
    cleval_kernel_arg_uint(&a, knn->dim);
    cleval_kernel_arg_uint(&a, nq);
    cleval_kernel_arg_uint(&a, nq_pad);
    cleval_kernel_arg_uint(&a, m);
    cleval_kernel_arg_int(&a, index_base);
    cleval_kernel_arg_uint(&a, chunk_base);
    cleval_kernel_arg_float(&a, bound_dot);
    cleval_kernel_arg_float(&a, bound_norm);
    cleval_kernel_arg_float(&a, tile->max_norm);
    cleval_kernel_arg_mem(&a, knn->heap_score.mem);
    cleval_kernel_arg_mem(&a, knn->heap_index.mem);
    knn_arg_candidates(&a, knn);
    return cleval_kernel_launch(cleval_device_queue(knn->dev), &a, 2, global, NULL, NULL);
}

static cleval_status vote(cleval_knn *knn, uint32_t nq, uint32_t nq_pad, uint32_t m,
                          uint32_t n_chunks)
{
    size_t global = cleval_round_up(nq, 16);
    cleval_kernel_args a = cleval_kernel_args_begin(knn->vote_kernel, "knn_vote");
    knn_arg_candidates(&a, knn);
    cleval_kernel_arg_uint(&a, nq);
    cleval_kernel_arg_uint(&a, nq_pad);
    cleval_kernel_arg_uint(&a, m);
    cleval_kernel_arg_uint(&a, n_chunks);
    cleval_kernel_arg_uint(&a, knn->config.k);
    cleval_kernel_arg_uint(&a, knn->config.n_classes);
    cleval_kernel_arg_uint(&a, knn->config.weights == CLEVAL_KNN_DISTANCE);
    cleval_kernel_arg_mem(&a, knn->vote_dist.mem);
    cleval_kernel_arg_mem(&a, knn->vote_index.mem);
    cleval_kernel_arg_mem(&a, knn->vote_label.mem);
    cleval_kernel_arg_mem(&a, knn->votes.mem);
    cleval_kernel_arg_mem(&a, knn->pred.mem);
    cleval_kernel_arg_mem(&a, knn->scores.mem);
    cleval_kernel_arg_mem(&a, knn->flags.mem);
    return cleval_kernel_launch(cleval_device_queue(knn->dev), &a, 1, &global, NULL, NULL);
}

static cleval_status reserve_pass(cleval_knn *knn, uint32_t nq_pad, uint32_t m,
                                  uint32_t max_splits, uint32_t n_chunks)
{
    size_t es = knn->exact_size, k1 = (size_t)knn->config.k + 1, c = knn->config.n_classes;
    size_t heap = (size_t)max_splits * nq_pad * m, cand = (size_t)n_chunks * nq_pad * m;
    cleval_status status;
    if ((status = knn_buffer_reserve(knn, &knn->heap_score, heap * sizeof(float), "KNN heaps")) ||
        (status = knn_buffer_reserve(knn, &knn->heap_index, heap * sizeof(int32_t), "KNN heaps")) ||
        (status = knn_buffer_reserve(knn, &knn->cand_dist, cand * es, "KNN candidates")) ||
        (status = knn_buffer_reserve(knn, &knn->cand_index, cand * 4, "KNN candidates")) ||
        (status = knn_buffer_reserve(knn, &knn->cand_label, cand * 4, "KNN candidates")) ||
        (status = knn_buffer_reserve(knn, &knn->safe, (size_t)n_chunks * nq_pad * es,
                                     "KNN bounds")) ||
        (status = knn_buffer_reserve(knn, &knn->vote_dist, nq_pad * k1 * es, "KNN votes")) ||
        (status = knn_buffer_reserve(knn, &knn->vote_index, nq_pad * k1 * 4, "KNN votes")) ||
        (status = knn_buffer_reserve(knn, &knn->vote_label, nq_pad * k1 * 4, "KNN votes")) ||
        (status = knn_buffer_reserve(knn, &knn->votes, nq_pad * c * es, "KNN votes")) ||
        (status = knn_buffer_reserve(knn, &knn->pred, nq_pad * 4, "KNN predictions")) ||
        (status = knn_buffer_reserve(knn, &knn->scores, nq_pad * c * 4, "KNN scores")))
        return status;
    return knn_buffer_reserve(knn, &knn->flags, nq_pad * 4, "KNN flags");
}

static int by_distance_then_index(const void *a, const void *b)
{
    const cleval_knn_candidate *x = a, *y = b;
    if ((x->index < 0) != (y->index < 0)) return x->index < 0 ? 1 : -1; /* empty slots last */
    if (x->distance != y->distance) return x->distance < y->distance ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Reads the k + 1 nearest of each query (the k voters and the next), nearest first. */
static cleval_status read_ranked(cleval_knn *knn, uint32_t nq, cleval_knn_candidate *out)
{
    size_t k1 = (size_t)knn->config.k + 1;
    void *dist = malloc((size_t)nq * k1 * knn->exact_size);
    int32_t *index = malloc((size_t)nq * k1 * sizeof *index);
    int32_t *label = malloc((size_t)nq * k1 * sizeof *label);
    cleval_status status = CLEVAL_OK;
    if (!dist || !index || !label)
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading KNN neighbours");
    if (!status && !(status = read(knn, knn->vote_dist.mem, (size_t)nq * k1 * knn->exact_size,
                                   dist)) &&
        !(status = read(knn, knn->vote_index.mem, (size_t)nq * k1 * sizeof *index, index)))
        status = read(knn, knn->vote_label.mem, (size_t)nq * k1 * sizeof *label, label);
    for (size_t at = 0; status == CLEVAL_OK && at < (size_t)nq * k1; at++)
        out[at] = (cleval_knn_candidate){
            .distance = knn->fp64 ? ((double *)dist)[at] : ((float *)dist)[at],
            .index = index[at],
            .label = label[at]};
    for (uint32_t q = 0; status == CLEVAL_OK && q < nq; q++)
        qsort(out + q * k1, k1, sizeof *out, by_distance_then_index);
    free(dist);
    free(index);
    free(label);
    return status;
}

/* One pass over a batch with m screening candidates per split. */
static cleval_status search_pass(cleval_knn *knn, const float *queries, uint32_t nq, uint32_t m,
                                 pass_output *out)
{
    uint32_t nq_pad = (uint32_t)cleval_round_up(nq, KNN_MR);
    uint32_t n_chunks = 0, max_splits = 0;
    for (uint32_t t = 0; t < knn->n_tiles; t++) {
        uint32_t splits = splits_for(knn, &knn->tiles[t], nq);
        n_chunks += splits;
        max_splits = splits > max_splits ? splits : max_splits;
    }
    cleval_status status;
    bool integer = knn_int_mode(knn);
    if ((status = reserve_pass(knn, nq_pad, m, max_splits, n_chunks)) ||
        (integer && (status = knn_int_upload_queries(knn, queries, nq))) ||
        (status = upload_queries(knn, queries, nq, nq_pad)))
        return status;

    const float inf = INFINITY;
    const int32_t none = -1;
    size_t heap_cells = (size_t)max_splits * nq_pad * m;
    uint32_t chunk_base = 0;
    double screen_s = 0, exact_s = 0;
    for (uint32_t t = 0; t < knn->n_tiles; t++) {
        knn_tile *tile = &knn->tiles[t];
        uint32_t splits = splits_for(knn, tile, nq);
        double t0 = cleval_seconds();
        if (integer) {
            /* Exact distances: the candidates are final, nothing to re-rank. Only the tiled
             * kernel keeps heaps apart from the candidates. */
            const int32_t worst = INT32_MAX;
            size_t bytes = heap_cells * 4;
            if ((knn->int_tiled &&
                 ((status = fill(knn, knn->heap_score.mem, &worst, sizeof worst, bytes)) ||
                  (status = fill(knn, knn->heap_index.mem, &none, sizeof none, bytes)))) ||
                (status = knn_int_tile(knn, tile, nq, nq_pad, m, splits, chunk_base)) ||
                (status = cleval_device_finish(knn->dev)))
                return status;
            screen_s += cleval_seconds() - t0;
            chunk_base += splits;
            continue;
        }
        if ((status = knn_use_tile(knn, tile)) ||
            (status = fill(knn, knn->heap_score.mem, &inf, sizeof inf, heap_cells * 4)) ||
            (status = fill(knn, knn->heap_index.mem, &none, sizeof none, heap_cells * 4)) ||
            (status = screen_tile(knn, tile, nq, nq_pad, m, splits)) ||
            (status = cleval_device_finish(knn->dev)))
            return status;
        double t1 = cleval_seconds();
        if ((status = exact_tile(knn, tile, nq, nq_pad, m, splits, chunk_base)) ||
            (status = cleval_device_finish(knn->dev)))
            return status;
        screen_s += t1 - t0;
        exact_s += cleval_seconds() - t1;
        chunk_base += splits;
    }
    double t2 = cleval_seconds();
    if ((status = vote(knn, nq, nq_pad, m, n_chunks)) ||
        (status = read(knn, knn->pred.mem, (size_t)nq * 4, out->pred)) ||
        (status = read(knn, knn->flags.mem, (size_t)nq * 4, out->flags)) ||
        (out->scores && (status = read(knn, knn->scores.mem,
                                       (size_t)nq * knn->config.n_classes * 4, out->scores))) ||
        (status = read_ranked(knn, nq, out->ranked)))
        return status;
    knn->stats.screen_s += screen_s;
    knn->stats.exact_s += exact_s + cleval_seconds() - t2;
    return CLEVAL_OK;
}

static uint64_t largest_tile(const cleval_knn *knn)
{
    uint64_t rows = 0;
    for (uint32_t t = 0; t < knn->n_tiles; t++)
        rows = knn->tiles[t].rows > rows ? knn->tiles[t].rows : rows;
    return rows;
}

/* Searches the unproven queries of `out` again with four times the candidates, until every
 * query is proven (at the latest when a split keeps all its references). */
static cleval_status search_again(cleval_knn *knn, const float *queries, uint32_t nq, uint32_t m,
                                  pass_output *out)
{
    uint32_t k = knn->config.k, c = knn->config.n_classes, dim = knn->dim;
    uint32_t *which = malloc((size_t)nq * sizeof *which);
    float *subset = malloc((size_t)nq * dim * sizeof *subset);
    size_t k1 = (size_t)k + 1;
    pass_output sub = {malloc((size_t)nq * 4), out->scores ? malloc((size_t)nq * c * 4) : NULL,
                       malloc((size_t)nq * 4), malloc((size_t)nq * k1 * sizeof *sub.ranked)};
    cleval_status status = CLEVAL_OK;
    if (!which || !subset || !sub.pred || (out->scores && !sub.scores) || !sub.ranked ||
        !sub.flags)
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory searching KNN queries again");
    uint64_t limit = largest_tile(knn) + 1;
    for (uint32_t round = 0; status == CLEVAL_OK; round++) {
        uint32_t n = 0;
        for (uint32_t q = 0; q < nq; q++)
            if (out->flags[q] & FLAG_UNPROVEN) which[n++] = q;
        if (n == 0) break;
        if (round == 0) knn->stats.searched_again += n;
        if (m >= limit) {
            status = cleval_fail(CLEVAL_ERR_INTERNAL,
                                 "KNN: %u queries unproven with every reference a candidate", n);
            break;
        }
        m = (uint64_t)m * 4 < limit ? m * 4 : (uint32_t)limit;
        for (uint32_t i = 0; i < n; i++)
            memcpy(subset + (size_t)i * dim, queries + (size_t)which[i] * dim, dim * sizeof *subset);
        cleval_log(CLEVAL_LOG_INFO, "KNN: %u queries searched again with %u candidates", n, m);
        if ((status = search_pass(knn, subset, n, m, &sub)) != CLEVAL_OK) break;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t q = which[i];
            out->pred[q] = sub.pred[i];
            out->flags[q] = sub.flags[i];
            memcpy(out->ranked + q * k1, sub.ranked + i * k1, k1 * sizeof *sub.ranked);
            if (out->scores)
                memcpy(out->scores + (size_t)q * c, sub.scores + (size_t)i * c, (size_t)c * 4);
        }
    }
    free(which);
    free(subset);
    free(sub.pred), free(sub.scores), free(sub.ranked), free(sub.flags);
    return status;
}

cleval_status cleval_knn_search(cleval_knn *knn, const float *queries, uint32_t nq,
                                int32_t *pred, float *scores)
{
    if (nq == 0) return CLEVAL_OK;
    if (nq > knn->max_batch)
        return cleval_fail(CLEVAL_ERR_USAGE, "KNN batches hold at most %u queries (got %u)",
                           knn->max_batch, nq);
    uint32_t *flags = malloc((size_t)nq * sizeof *flags);
    if (!flags) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for KNN flags");
    pass_output out = {pred, scores, flags, knn->ranked};
    /* The integer mode's distances are exact: the k + 1 nearest need no margin. */
    uint32_t m = knn->config.k + 1 + (knn_int_mode(knn) ? 0 : knn->margin);
    cleval_status status = search_pass(knn, queries, nq, m, &out);
    bool again = false;
    for (uint32_t q = 0; status == CLEVAL_OK && q < nq; q++)
        again = again || (flags[q] & FLAG_UNPROVEN);
    if (status == CLEVAL_OK && again) {
        status = search_again(knn, queries, nq, m, &out);
        /* The device buffers must hold the whole batch's final predictions (and vote
         * fractions) again: the searches again overwrote their first rows. */
        if (status == CLEVAL_OK)
            status = write(knn, knn->pred.mem, (size_t)nq * sizeof *pred, pred);
        if (status == CLEVAL_OK && scores)
            status = write(knn, knn->scores.mem,
                           (size_t)nq * knn->config.n_classes * sizeof *scores, scores);
    }
    if (status == CLEVAL_OK) {
        knn->stats.queries += nq;
        for (uint32_t q = 0; q < nq; q++) {
            knn->stats.distance_ties += (flags[q] & FLAG_DISTANCE_TIE) != 0;
            knn->stats.vote_ties += (flags[q] & FLAG_VOTE_TIE) != 0;
        }
    }
    free(flags);
    return status;
}

cleval_status cleval_knn_last_neighbors(cleval_knn *knn, uint32_t nq, int32_t *neighbors)
{
    if (nq > knn->max_batch)
        return cleval_fail(CLEVAL_ERR_USAGE, "the last KNN search had at most %u queries",
                           knn->max_batch);
    size_t k = knn->config.k;
    for (size_t q = 0; q < nq; q++)
        for (size_t j = 0; j < k; j++)
            neighbors[q * k + j] = knn->ranked[q * (k + 1) + j].index;
    return CLEVAL_OK;
}

cleval_status cleval_knn_last_candidates(cleval_knn *knn, uint32_t nq,
                                         cleval_knn_candidate *candidates)
{
    if (nq > knn->max_batch)
        return cleval_fail(CLEVAL_ERR_USAGE, "the last KNN search had at most %u queries",
                           knn->max_batch);
    memcpy(candidates, knn->ranked, (size_t)nq * (knn->config.k + 1) * sizeof *candidates);
    return CLEVAL_OK;
}

cleval_status cleval_knn_vote_candidates(cleval_knn *knn, uint32_t nq, uint32_t n_sets,
                                         const cleval_knn_candidate *candidates, int32_t *pred,
                                         float *scores)
{
    if (nq == 0) return CLEVAL_OK;
    if (nq > knn->max_batch)
        return cleval_fail(CLEVAL_ERR_USAGE, "KNN batches hold at most %u queries (got %u)",
                           knn->max_batch, nq);
    uint32_t m = knn->config.k + 1, nq_pad = (uint32_t)cleval_round_up(nq, KNN_MR);
    size_t cells = (size_t)n_sets * nq_pad * m;
    cleval_status status = reserve_pass(knn, nq_pad, m, 1, n_sets);
    void *dist = malloc(cells * knn->exact_size);
    int32_t *index = malloc(cells * sizeof *index), *label = malloc(cells * sizeof *label);
    void *safe = malloc((size_t)n_sets * nq_pad * knn->exact_size);
    uint32_t *flags = malloc((size_t)nq * sizeof *flags);
    if (status == CLEVAL_OK && (!dist || !index || !label || !safe || !flags))
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory voting on KNN candidates");
    for (size_t at = 0; status == CLEVAL_OK && at < cells; at++) {
        size_t set = at / ((size_t)nq_pad * m), q = at / m % nq_pad, j = at % m;
        const cleval_knn_candidate *c =
            q < nq ? &candidates[(set * nq + q) * m + j] : &(cleval_knn_candidate){0, -1, 0};
        index[at] = c->index;
        label[at] = c->label;
        if (knn->fp64) ((double *)dist)[at] = c->distance;
        else ((float *)dist)[at] = (float)c->distance;
    }
    /* Every set is exact already: nothing is left to prove. */
    for (size_t at = 0; status == CLEVAL_OK && at < (size_t)n_sets * nq_pad; at++) {
        if (knn->fp64) ((double *)safe)[at] = INFINITY;
        else ((float *)safe)[at] = INFINITY;
    }
    if (status == CLEVAL_OK &&
        !(status = write(knn, knn->cand_dist.mem, cells * knn->exact_size, dist)) &&
        !(status = write(knn, knn->cand_index.mem, cells * sizeof *index, index)) &&
        !(status = write(knn, knn->cand_label.mem, cells * sizeof *label, label)) &&
        !(status = write(knn, knn->safe.mem, (size_t)n_sets * nq_pad * knn->exact_size, safe)) &&
        !(status = vote(knn, nq, nq_pad, m, n_sets)) &&
        !(status = read(knn, knn->pred.mem, (size_t)nq * 4, pred)) &&
        !(status = read(knn, knn->flags.mem, (size_t)nq * 4, flags)) &&
        !(status = scores ? read(knn, knn->scores.mem, (size_t)nq * knn->config.n_classes * 4,
                                 scores)
                          : CLEVAL_OK))
        status = read_ranked(knn, nq, knn->ranked);
    for (uint32_t q = 0; status == CLEVAL_OK && q < nq; q++) {
        knn->stats.distance_ties += (flags[q] & FLAG_DISTANCE_TIE) != 0;
        knn->stats.vote_ties += (flags[q] & FLAG_VOTE_TIE) != 0;
    }
    if (status == CLEVAL_OK) knn->stats.queries += nq;
    free(dist), free(index), free(label), free(safe), free(flags);
    return status;
}
