/* knn_scores.cl: approximate KNN screening scores, s = |r|^2 - 2 q.r, by a register-tiled
 * matrix multiply; the candidates of each query are the M references with the smallest s.
 *
 * Algorithm  |q - r|^2 = |q|^2 + s, so ranking by s ranks by distance; |q|^2 is added back by
 *            the exact pass (knn_exact.cl), which recomputes every candidate's distance in
 *            float64 and proves, with a bound on the float32 error of s, that no reference left
 *            out could have ranked among the k + 1 nearest.
 *            knn_scores_cpu  CPU: one work-item per block of QB queries x a range of reference
 *                            panels; MR x NR register tile (TILE_STEP; 4 x 4 float16
 *                            accumulators on AVX-512, 4 x 2 float8 on AVX2), k-blocked by KC
 *                            so a panel slice stays in L1; the M-best selection (a max-heap
 *                            per query) is fused into the epilogue.
 *                            + no score matrix, a clean FMA loop; - needs packed references.
 *            The GPU family screens with knn_topk_gpu (kernels/knn_topk_gpu.cl).
 * Layout     CPU queries  [nq_pad / 4][dim][4]   (micro-panels of 4 queries, k-major)
 *            CPU refs     [n_panels][dim][NR]    (panels of NR references, k-major)
 *            norms        [n_panels * NR]; +INF marks padding (never selected)
 *            heaps        [splits][nq_pad][m] scores (float) and indices (int, -1 = empty),
 *                         max-heaps by score: element 0 is the worst kept candidate.
 * Assumes    heaps filled with +INF / -1 before the first launch; dim >= 1.
 */
#ifndef KC
#define KC 128 /* k-block: a panel slice of KC rows is KC * NR * 4 bytes of L1 */
#endif
#ifndef QB
#define QB 256 /* queries per CPU work-item, a multiple of 4 */
#endif

/* CPU register tile: MR queries x NV vectors of VW references; NR = VW * NV references per
 * panel. VW is the device's preferred float vector width (16 on AVX-512, 8 on AVX2). The host
 * packs queries and references to these and passes its values with -D. */
#ifndef MR
#define MR 4
#endif
#ifndef NV
#define NV 4
#endif
#ifndef VW
#define VW 16
#endif
#define NR (VW * NV)

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FLOATV CAT(float, VW)
#define VLOADV CAT(vload, VW)
#define VSTOREV CAT(vstore, VW)

#include "tile.clh"

#define HEAP_AS __global
#include "heap.clh"

/* Offers VW scores of one query to its heap; the vector test skips the common case cheaply. */
static inline void offer(FLOATV s, __global float *score, __global int *index, uint m, int first)
{
    float root = score[0];
    if (!any(s < (FLOATV)(root))) return;
    float values[VW];
    VSTOREV(s, 0, values);
    for (int j = 0; j < VW; j++)
        if (values[j] < score[0]) heap_replace_top(score, index, m, values[j], first + j);
}

__kernel void knn_scores_cpu(__global const float *queries, __global const float *refs,
                             __global const float *norms, uint dim, uint n_panels,
                             uint panels_per_split, uint nq, uint nq_pad, uint m,
                             __global float *scratch, __global float *heap_score,
                             __global int *heap_index, int index_base)
{
    uint block = get_global_id(0), split = get_global_id(1);
    uint q0 = block * QB;
    if (q0 >= nq) return;
    uint n_queries = min((uint)QB, nq - q0);
    uint n_micro = (n_queries + MR - 1) / MR;
    uint p_begin = split * panels_per_split;
    uint p_end = min(n_panels, p_begin + panels_per_split);
    __global float *tile = scratch + ((size_t)split * get_global_size(0) + block) * QB * NR;
    __global const float *block_queries = queries + (size_t)(q0 / MR) * dim * MR;
    __global float *heaps_s = heap_score + ((size_t)split * nq_pad + q0) * m;
    __global int *heaps_i = heap_index + ((size_t)split * nq_pad + q0) * m;

    for (uint p = p_begin; p < p_end; p++) {
        __global const float *panel = refs + (size_t)p * dim * NR;
        for (uint kb = 0; kb < dim; kb += KC) {
            uint ke = min(dim, kb + (uint)KC);
            for (uint mp = 0; mp < n_micro; mp++) {
                __global const float *a = block_queries + (size_t)mp * dim * MR;
                __global float *t = tile + mp * MR * NR;
                FLOATV acc[MR][NV];
#pragma unroll
                for (int r = 0; r < MR; r++)
#pragma unroll
                    for (int v = 0; v < NV; v++)
                        acc[r][v] = kb == 0 ? (FLOATV)(0.0f) : VLOADV(r * NV + v, t);
                for (uint k = kb; k < ke; k++) {
                    __global const float *b = panel + (size_t)k * NR;
                    TILE_STEP(FLOATV, fma, acc, a[k * MR + r], VLOADV(v, b));
                }
#pragma unroll
                for (int r = 0; r < MR; r++)
#pragma unroll
                    for (int v = 0; v < NV; v++)
                        VSTOREV(acc[r][v], r * NV + v, t);
            }
        }
        /* Epilogue: scores of this panel against every query of the block. */
        __global const float *panel_norms = norms + (size_t)p * NR;
        FLOATV n[NV];
#pragma unroll
        for (int v = 0; v < NV; v++)
            n[v] = VLOADV(v, panel_norms);
        int first = index_base + (int)(p * NR);
        for (uint q = 0; q < n_queries; q++) {
            __global const float *row = tile + q * NR;
            __global float *hs = heaps_s + (size_t)q * m;
            __global int *hi = heaps_i + (size_t)q * m;
#pragma unroll
            for (int v = 0; v < NV; v++)
                offer(n[v] - 2.0f * VLOADV(v, row), hs, hi, m, first + VW * v);
        }
    }
}
