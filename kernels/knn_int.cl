/* knn_int.cl: the KNN integer mode. When every training and query value is an integer of one
 * 8- or 16-bit type, squared Euclidean distances are computed exactly in integer arithmetic,
 * so the k + 1 nearest come straight out of the search: no float64 re-ranking, no proof of
 * completeness, no second search. Ties are decided by (distance, training index) directly.
 *
 * Algorithm  knn_int_direct   any family, any integer type: one work-item per (query, split)
 *                             walks its split's references in index order, sums (q - r)^2 in
 *                             ACC_T and keeps the m nearest by (distance, index) in a max-heap
 *                             held in the candidate buffers themselves.
 *                             + exact for every type (ACC_T long when int could overflow),
 *                               GPU-legal (no local memory, any work-group size);
 *                             - one query per work-item: every query streams its split.
 *            knn_int_scores_cpu  CPU, 8-bit values: the register-tiled product of
 *                             knn_scores.cl on references stored as STORE_T panels (a quarter
 *                             of float32's bytes), the q.r products summed with float FMAs in
 *                             blocks of IB features (exact: IB * 255^2 < 2^24) and the blocks
 *                             added in int. Each panel slice is converted to float once per
 *                             work-item and block, then serves all its QB queries. Scores
 *                             s = |r|^2 - 2 q.r are exact ints; |q - r|^2 = |q|^2 + s. Heaps
 *                             of the m best by (s, index).
 *                             + a quarter of the float path's memory traffic, no re-ranking;
 *                             - the same FMA count as float32 (PoCL's LLVM emits no
 *                               vpmaddwd / VNNI from OpenCL C integer dot products).
 *            knn_int_candidates  turns those heaps into candidates with exact distances.
 * Layout     direct: queries [nq][dim], refs [n_refs][dim] (STORE_T, row-major);
 *            CPU: queries [nq_pad / MR][dim][MR] (float, integral values), refs
 *            [n_panels][dim][NR] (STORE_T), norms [n_panels * NR] int, INT_MAX for padding;
 *            slices [work-items][IB][NR] float; heaps [splits][nq_pad][m] int scores and
 *            indices;
 *            candidates [n_chunks][nq_pad][m] (distance double, index, label), safe
 *            [n_chunks][nq_pad] (+INF: nothing is left to prove), as knn_exact.cl's.
 * Assumes    cl_khr_fp64 (the host enables the mode only then): candidate distances are
 *            integers below 2^53, exact in double.
 */
#pragma OPENCL EXTENSION cl_khr_fp64 : enable

#ifndef STORE_T
#define STORE_T uchar /* the values' own type: uchar, char, ushort or short */
#endif
#ifndef ACC_T
#define ACC_T int /* the direct kernel's sum: int when dim * range^2 < 2^31, else long */
#endif
#ifndef MR
#define MR 4
#endif
#ifndef NV
#define NV 4
#endif
#ifndef VW
#define VW 16 /* lanes of the CPU tile's vectors: the device's preferred float width */
#endif
#ifndef IB
#define IB 128 /* features per exact float block (IB * 255 * 255 < 2^24), its slice in L1 */
#endif
#ifndef QB
#define QB 256
#endif
#define NR (VW * NV)

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FLOATV CAT(float, VW)
#define INTV CAT(int, VW)
#define VLOADV CAT(vload, VW)
#define VSTOREV CAT(vstore, VW)
#define TO_FLOATV CAT(convert_float, VW)
#define TO_INTV CAT(convert_int, VW)

#include "tile.clh"

/* (d1, i1) ranks after (d2, i2): farther, or as far with a larger training index. */
#define AFTER(d1, i1, d2, i2) ((d1) > (d2) || ((d1) == (d2) && (i1) > (i2)))

/* Replaces the root of a max-heap by (distance, index) of m entries and sifts it down. */
static inline void heap_int_replace_top(__global int *score, __global int *index, uint m, int s,
                                        int i)
{
    uint at = 0;
    for (;;) {
        uint left = 2 * at + 1;
        if (left >= m) break;
        uint right = left + 1;
        uint child = (right < m && AFTER(score[right], index[right], score[left], index[left]))
                         ? right
                         : left;
        if (!AFTER(score[child], index[child], s, i)) break;
        score[at] = score[child];
        index[at] = index[child];
        at = child;
    }
    score[at] = s;
    index[at] = i;
}

/* The same for the candidate buffers, which carry labels as well. */
static inline void heap_cand_replace_top(__global double *dist, __global int *index,
                                         __global int *label, uint m, double d, int i, int l)
{
    uint at = 0;
    for (;;) {
        uint left = 2 * at + 1;
        if (left >= m) break;
        uint right = left + 1;
        uint child =
            (right < m && AFTER(dist[right], index[right], dist[left], index[left])) ? right : left;
        if (!AFTER(dist[child], index[child], d, i)) break;
        dist[at] = dist[child];
        index[at] = index[child];
        label[at] = label[child];
        at = child;
    }
    dist[at] = d;
    index[at] = i;
    label[at] = l;
}

static inline ACC_T int_distance(__global const STORE_T *a, __global const STORE_T *b, uint dim)
{
    ACC_T acc = 0;
    for (uint d = 0; d < dim; d++) {
        int diff = (int)a[d] - (int)b[d];
        acc += (ACC_T)diff * (ACC_T)diff;
    }
    return acc;
}

__kernel void knn_int_direct(__global const STORE_T *queries, __global const STORE_T *refs,
                             __global const int *labels, uint dim, uint nq, uint nq_pad,
                             uint n_refs, uint window, uint m, int index_base, uint chunk_base,
                             __global double *cand_dist, __global int *cand_index,
                             __global int *cand_label, __global double *safe)
{
    uint q = get_global_id(0), split = get_global_id(1);
    if (q >= nq) return;
    size_t out = ((size_t)(chunk_base + split) * nq_pad + q) * m;
    __global double *hd = cand_dist + out;
    __global int *hi = cand_index + out;
    __global int *hl = cand_label + out;
    for (uint j = 0; j < m; j++) {
        hd[j] = INFINITY;
        hi[j] = -1;
        hl[j] = 0;
    }
    uint begin = split * window, end = min(n_refs, begin + window);
    __global const STORE_T *qv = queries + (size_t)q * dim;
    for (uint r = begin; r < end; r++) {
        double d = (double)int_distance(qv, refs + (size_t)r * dim, dim);
        int index = index_base + (int)r;
        /* An empty slot (index -1, +INF) ranks after everything. */
        if (hi[0] < 0 || AFTER(hd[0], hi[0], d, index))
            heap_cand_replace_top(hd, hi, hl, m, d, index, labels[r]);
    }
    safe[(size_t)(chunk_base + split) * nq_pad + q] = INFINITY;
}

/* Offers VW scores of one query (references first, first + 1, ...) to its heap. */
static inline void offer_int(INTV s, __global int *score, __global int *index, uint m, int first)
{
    if (!any(s < (INTV)(score[0]))) return;
    int values[VW];
    VSTOREV(s, 0, values);
    for (int j = 0; j < VW; j++)
        if (values[j] < score[0]) heap_int_replace_top(score, index, m, values[j], first + j);
}

__kernel void knn_int_scores_cpu(__global const float *queries, __global const STORE_T *refs,
                                 __global const int *norms, uint dim, uint n_panels,
                                 uint panels_per_split, uint nq, uint nq_pad, uint m,
                                 __global int *scratch, __global float *slices,
                                 __global int *heap_score, __global int *heap_index, int index_base)
{
    uint block = get_global_id(0), split = get_global_id(1);
    uint q0 = block * QB;
    if (q0 >= nq) return;
    uint n_queries = min((uint)QB, nq - q0);
    uint n_micro = (n_queries + MR - 1) / MR;
    uint p_begin = split * panels_per_split;
    uint p_end = min(n_panels, p_begin + panels_per_split);
    size_t item = (size_t)split * get_global_size(0) + block;
    __global int *tile = scratch + item * QB * NR;
    __global float *slice = slices + item * IB * NR;
    __global const float *block_queries = queries + (size_t)(q0 / MR) * dim * MR;
    __global int *heaps_s = heap_score + ((size_t)split * nq_pad + q0) * m;
    __global int *heaps_i = heap_index + ((size_t)split * nq_pad + q0) * m;

    for (uint p = p_begin; p < p_end; p++) {
        __global const STORE_T *panel = refs + (size_t)p * dim * NR;
        for (uint kb = 0; kb < dim; kb += IB) {
            uint ke = min(dim, kb + (uint)IB);
            /* The panel's slice as floats, converted once for every micro-panel of the block
             * (converting per micro-panel would cost as much as the FMAs). */
            for (uint k = kb; k < ke; k++)
#pragma unroll
                for (int v = 0; v < NV; v++)
                    VSTOREV(TO_FLOATV(VLOADV(v, panel + (size_t)k * NR)), v,
                            slice + (size_t)(k - kb) * NR);
            for (uint mp = 0; mp < n_micro; mp++) {
                __global const float *a = block_queries + (size_t)mp * dim * MR;
                __global int *t = tile + mp * MR * NR;
                FLOATV acc[MR][NV];
#pragma unroll
                for (int r = 0; r < MR; r++)
#pragma unroll
                    for (int v = 0; v < NV; v++)
                        acc[r][v] = (FLOATV)(0.0f);
                /* Every partial sum is an integer below 2^24: the float sums are exact. */
                for (uint k = kb; k < ke; k++) {
                    __global const float *b = slice + (size_t)(k - kb) * NR;
                    TILE_STEP(FLOATV, fma, acc, a[k * MR + r], VLOADV(v, b));
                }
#pragma unroll
                for (int r = 0; r < MR; r++)
#pragma unroll
                    for (int v = 0; v < NV; v++) {
                        INTV sum = TO_INTV(acc[r][v]);
                        if (kb > 0) sum += VLOADV(r * NV + v, t);
                        VSTOREV(sum, r * NV + v, t);
                    }
            }
        }
        /* Epilogue: exact scores of this panel against every query of the block. */
        __global const int *panel_norms = norms + (size_t)p * NR;
        int first = index_base + (int)(p * NR);
        for (uint q = 0; q < n_queries; q++) {
            __global const int *row = tile + q * NR;
            __global int *hs = heaps_s + (size_t)q * m;
            __global int *hi = heaps_i + (size_t)q * m;
#pragma unroll
            for (int v = 0; v < NV; v++) {
                INTV n = VLOADV(v, panel_norms);
                /* Padding (INT_MAX) must stay INT_MAX: its dot products are 0. */
                offer_int(n - 2 * VLOADV(v, row), hs, hi, m, first + VW * v);
            }
        }
    }
}

__kernel void knn_int_candidates(__global const int *heap_score, __global const int *heap_index,
                                 __global const double *query_norm2, __global const int *labels,
                                 uint nq, uint nq_pad, uint m, int index_base, uint chunk_base,
                                 __global double *cand_dist, __global int *cand_index,
                                 __global int *cand_label, __global double *safe)
{
    uint q = get_global_id(0), split = get_global_id(1);
    if (q >= nq) return;
    size_t heap = ((size_t)split * nq_pad + q) * m;
    size_t out = ((size_t)(chunk_base + split) * nq_pad + q) * m;
    double qn2 = query_norm2[q];
    for (uint j = 0; j < m; j++) {
        int index = heap_index[heap + j];
        cand_index[out + j] = index;
        if (index < 0) continue;
        /* |q|^2 + s: both exact integers, their sum below 2^53. */
        cand_dist[out + j] = qn2 + (double)heap_score[heap + j];
        cand_label[out + j] = labels[index - index_base];
    }
    safe[(size_t)(chunk_base + split) * nq_pad + q] = INFINITY;
}
