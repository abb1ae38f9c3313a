/* The searcher's layout, shared by the files of the knn module only. */
#ifndef CLEVAL_KNN_INTERNAL_H
#define CLEVAL_KNN_INTERNAL_H

#include <stdbool.h>

#include "cleval/dataset.h"
#include "cleval/knn.h"

/* Tunables of kernels/knn_scores.cl and kernels/knn_topk_gpu.cl: the host lays its buffers out
 * and sizes its launches for these and passes them to the kernels' builds with -D (knn.c), so
 * both always agree. The CPU panel's vector width and count (cleval_knn's vw, nv) come from the
 * device (knn_choose_panel). */
enum {
    KNN_MR = 4,           /* queries per CPU micro-panel */
    KNN_QB = 256,         /* queries per CPU work-item */
    KNN_GPU_QT = 32,      /* GPU: queries per work-group */
    KNN_GPU_RT = 64,      /* GPU: references per step of a work-group's walk */
    KNN_GPU_WPT = 4,      /* GPU: outputs per work-item side */
    KNN_GPU_TK = 16,      /* GPU: k-slice staged in local memory */
    KNN_GPU_WINDOW = 8192 /* GPU: references per split (the host's alone) */
};

/* A device buffer that grows on demand. */
typedef struct knn_buffer {
    cl_mem mem;
    size_t bytes;
} knn_buffer;

/* The device copies of one tile. */
typedef struct knn_tile_buffers {
    cl_mem screen;      /* CPU: packed panels; GPU: row-major; vectors used for screening */
    cl_mem screen_norm; /* |r|^2 of the screening vectors as float, +INF for padding */
    cl_mem original;    /* row-major original vectors, for the exact pass */
    cl_mem norm2;       /* |r|^2 of the originals in the exact type */
    cl_mem labels;
} knn_tile_buffers;

/* A contiguous range of training rows, laid out for the device on the host. */
typedef struct knn_tile {
    uint64_t row0, rows;
    uint32_t n_panels;   /* CPU: panels of nr references */
    float max_norm;      /* largest |r| of the tile (original vectors), rounded up */
    float *screen;       /* host layout of the screening vectors; NULL when the originals serve */
    float *screen_norm;  /* host screening norms, +INF for padding */
    void *norm2;         /* host |r|^2 of the originals in the exact type */
    knn_tile_buffers *on_device; /* its own buffers when resident, else the shared slot */
    void *int_values;    /* integer mode: the values in their type (panels on CPUs), host side */
    int32_t *int_norms;  /* integer mode, CPU: |r|^2 per panel slot, INT32_MAX for padding */
} knn_tile;

struct cleval_knn {
    cleval_device *dev;
    cleval_knn_config config;
    uint64_t n_train;
    uint32_t dim;
    cleval_kernel_variant variant;
    uint32_t vw, nv, nr; /* CPU panels: vector lanes, vectors, and vw * nv references */
    bool fp64;         /* the exact pass runs in double */
    size_t exact_size; /* sizeof the exact type on the device */

    float *x;          /* host copy of the training set, row-major */
    int32_t *y;
    uint64_t rows_set;

    knn_tile *tiles;
    uint32_t n_tiles;
    bool resident;     /* every tile stays on the device; else they take turns in `slot` */
    bool share_screen; /* the screening vectors are the originals (GPU, Euclidean) */
    knn_tile_buffers *device_tiles; /* one per tile when resident, one slot otherwise */
    uint32_t n_device_tiles;

    /* scores_kernel: knn_scores_cpu, or knn_topk_gpu with its heaps in local memory;
     * topk_global_kernel: knn_topk_gpu with its heaps in global memory, built the first time
     * a pass's heaps do not fit the local memory. */
    cl_kernel scores_kernel, topk_global_kernel, exact_kernel, vote_kernel;
    uint32_t margin;
    uint32_t max_batch;
    uint32_t max_splits; /* CPU: reference splits per tile */

    knn_buffer q_original, q_norm2, q_screen, scratch;
    knn_buffer heap_score, heap_index;
    knn_buffer cand_dist, cand_index, cand_label, safe;
    knn_buffer vote_dist, vote_index, vote_label, votes;
    knn_buffer pred, scores, flags;

    /* Integer mode (integer.c): the values' type, CLEVAL_ELEM_F32 when the float path runs. */
    cleval_elem_type int_type;
    bool int_tiled;       /* CPU: knn_int_scores_cpu; else knn_int_direct */
    bool int_acc_long;    /* knn_int_direct sums in long (int could overflow) */
    cl_kernel int_kernel, int_candidates_kernel;
    knn_buffer q_int;     /* knn_int_direct: the queries in the values' type */
    knn_buffer int_slices; /* knn_int_scores_cpu: each work-item's panel slice as float */

    cleval_knn_candidate *ranked; /* [max_batch][k + 1] of the last search, nearest first */
    cleval_knn_stats stats;
};

/* Grows `buf` to at least `bytes`. */
cleval_status knn_buffer_reserve(cleval_knn *knn, knn_buffer *buf, size_t bytes, const char *what);
void knn_buffer_release(knn_buffer *buf);

/* Appends the candidate buffers (distances, indices, labels, safe flags) that the candidate
 * kernels of every path write, in their argument order. */
void knn_arg_candidates(cleval_kernel_args *a, const cleval_knn *knn);

/* Makes the tile's data current in its device buffers (a no-op for a resident tile after
 * cleval_knn_prepare()). */
cleval_status knn_use_tile(cleval_knn *knn, knn_tile *tile);

/* One float32 vector scaled to unit length (zero vectors stay zero). */
/* Builds knn_topk_gpu with its heaps in local memory (heap_local) or in global memory; fails
 * with CLEVAL_ERR_UNSUPPORTED on a device whose work-groups are too small for it. */
cleval_status knn_topk_kernel(cleval_knn *knn, bool heap_local, cl_kernel *out);

void knn_unit_vector(const float *v, uint32_t dim, float *out);

/* Sets vw, nv and nr for the device's preferred float vector width. */
void knn_choose_panel(cleval_knn *knn);

/* Integer mode (integer.c). knn_int_choose() picks it at creation from the configured value
 * type, the metric, the kernel family and the device; knn_int_prepare() lays the tiles out in
 * the values' type and uploads them, or gives the mode up (*used false, the float path then
 * prepares) when the tiles would not stay resident. */
void knn_int_choose(cleval_knn *knn);
bool knn_int_mode(const cleval_knn *knn);
cleval_status knn_int_prepare(cleval_knn *knn, bool *used);
void knn_int_release(cleval_knn *knn);
/* Splits of one tile for nq queries. */
uint32_t knn_int_splits(const cleval_knn *knn, const knn_tile *tile, uint32_t nq);
/* Checks the batch's values fit the type and uploads what the kernels read beyond
 * upload_queries' layouts. */
cleval_status knn_int_upload_queries(cleval_knn *knn, const float *queries, uint32_t nq);
/* Candidates [chunk_base, chunk_base + splits) of one tile, exact, with +INF safe bounds;
 * the int heaps are filled with INT32_MAX / -1 by the caller for the tiled kernel. */
cleval_status knn_int_tile(cleval_knn *knn, knn_tile *tile, uint32_t nq, uint32_t nq_pad,
                           uint32_t m, uint32_t splits, uint32_t chunk_base);

#endif
