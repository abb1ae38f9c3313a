/* knn_scores.cl: approximate KNN screening scores, s = |r|^2 - 2 q.r, by a register-tiled
 * matrix multiply; the candidates of each query are the M references with the smallest s.
 *
 * Algorithm  |q - r|^2 = |q|^2 + s, so ranking by s ranks by distance; |q|^2 is added back by
 *            the exact pass (knn_exact.cl), which recomputes every candidate's distance in
 *            float64 and proves, with a bound on the float32 error of s, that no reference left
 *            out could have ranked among the k + 1 nearest.
 *            knn_scores_cpu  CPU: one work-item per block of QB queries x a range of reference
 *                            panels; 4 x 64 register tile (16 float16 accumulators), k-blocked
 *                            by KC so a panel slice stays in L1; the M-best selection (a max-heap
 *                            per query) is fused into the epilogue.
 *                            + no score matrix, AVX-512 FMA loop; - needs packed references.
 *            knn_scores_gpu  GPU: TS x TS work-group tiles in local memory, WPT x WPT outputs
 *                            per work-item; writes a score window that knn_select_gpu reduces.
 *                            + coalesced, local-memory reuse; - a score window round trip.
 * Layout     CPU queries  [nq_pad / 4][dim][4]   (micro-panels of 4 queries, k-major)
 *            CPU refs     [n_panels][dim][64]    (panels of 64 references, k-major)
 *            GPU queries  [nq_pad][dim], refs [n_refs][dim] (row-major)
 *            norms        [n_panels * 64] or [n_refs]; +INF marks padding (never selected)
 *            heaps        [splits][nq_pad][m] scores (float) and indices (int, -1 = empty),
 *                         max-heaps by score: element 0 is the worst kept candidate.
 * Assumes    heaps filled with +INF / -1 before the first launch; dim >= 1.
 */
#ifndef KC
#define KC 128 /* k-block: a 64-column panel slice of KC rows is KC * 256 bytes of L1 */
#endif
#ifndef QB
#define QB 256 /* queries per CPU work-item, a multiple of 4 */
#endif
#ifndef TS
#define TS 64 /* GPU tile: queries and references per work-group */
#endif
#ifndef WPT
#define WPT 4 /* GPU: outputs per work-item along each side; work-group (TS/WPT)^2 */
#endif
#ifndef TK
#define TK 16 /* GPU: k-slice staged in local memory */
#endif

#define MR 4
#define NR 64

#include "tile.clh"

/* Replaces the root (worst) of a max-heap of m scores and restores the heap. */
inline void heap_replace_top(__global float *score, __global int *index, uint m, float s, int i)
{
    uint at = 0;
    for (;;) {
        uint left = 2 * at + 1;
        if (left >= m) break;
        uint right = left + 1;
        uint child = (right < m && score[right] > score[left]) ? right : left;
        if (score[child] <= s) break;
        score[at] = score[child];
        index[at] = index[child];
        at = child;
    }
    score[at] = s;
    index[at] = i;
}

/* Offers 16 scores of one query to its heap; the vector test skips the common case cheaply. */
inline void offer16(float16 s, __global float *score, __global int *index, uint m, int first)
{
    float root = score[0];
    if (!any(s < (float16)(root))) return;
    float values[16];
    vstore16(s, 0, values);
    for (int j = 0; j < 16; j++)
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
                float16 c00, c01, c02, c03, c10, c11, c12, c13;
                float16 c20, c21, c22, c23, c30, c31, c32, c33;
                if (kb == 0) {
                    c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = (float16)(0.0f);
                    c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = (float16)(0.0f);
                } else {
                    c00 = vload16(0, t), c01 = vload16(1, t), c02 = vload16(2, t);
                    c03 = vload16(3, t), c10 = vload16(4, t), c11 = vload16(5, t);
                    c12 = vload16(6, t), c13 = vload16(7, t), c20 = vload16(8, t);
                    c21 = vload16(9, t), c22 = vload16(10, t), c23 = vload16(11, t);
                    c30 = vload16(12, t), c31 = vload16(13, t), c32 = vload16(14, t);
                    c33 = vload16(15, t);
                }
                for (uint k = kb; k < ke; k++) {
                    __global const float *b = panel + (size_t)k * NR;
                    float16 b0 = vload16(0, b), b1 = vload16(1, b);
                    float16 b2 = vload16(2, b), b3 = vload16(3, b);
                    float16 a0 = (float16)(a[k * MR + 0]), a1 = (float16)(a[k * MR + 1]);
                    float16 a2 = (float16)(a[k * MR + 2]), a3 = (float16)(a[k * MR + 3]);
                    c00 = fma(a0, b0, c00), c01 = fma(a0, b1, c01);
                    c02 = fma(a0, b2, c02), c03 = fma(a0, b3, c03);
                    c10 = fma(a1, b0, c10), c11 = fma(a1, b1, c11);
                    c12 = fma(a1, b2, c12), c13 = fma(a1, b3, c13);
                    c20 = fma(a2, b0, c20), c21 = fma(a2, b1, c21);
                    c22 = fma(a2, b2, c22), c23 = fma(a2, b3, c23);
                    c30 = fma(a3, b0, c30), c31 = fma(a3, b1, c31);
                    c32 = fma(a3, b2, c32), c33 = fma(a3, b3, c33);
                }
                vstore16(c00, 0, t), vstore16(c01, 1, t), vstore16(c02, 2, t);
                vstore16(c03, 3, t), vstore16(c10, 4, t), vstore16(c11, 5, t);
                vstore16(c12, 6, t), vstore16(c13, 7, t), vstore16(c20, 8, t);
                vstore16(c21, 9, t), vstore16(c22, 10, t), vstore16(c23, 11, t);
                vstore16(c30, 12, t), vstore16(c31, 13, t), vstore16(c32, 14, t);
                vstore16(c33, 15, t);
            }
        }
        /* Epilogue: scores of this panel against every query of the block. */
        __global const float *panel_norms = norms + (size_t)p * NR;
        float16 n0 = vload16(0, panel_norms), n1 = vload16(1, panel_norms);
        float16 n2 = vload16(2, panel_norms), n3 = vload16(3, panel_norms);
        int first = index_base + (int)(p * NR);
        for (uint q = 0; q < n_queries; q++) {
            __global const float *row = tile + q * NR;
            __global float *hs = heaps_s + (size_t)q * m;
            __global int *hi = heaps_i + (size_t)q * m;
            offer16(n0 - 2.0f * vload16(0, row), hs, hi, m, first);
            offer16(n1 - 2.0f * vload16(1, row), hs, hi, m, first + 16);
            offer16(n2 - 2.0f * vload16(2, row), hs, hi, m, first + 32);
            offer16(n3 - 2.0f * vload16(3, row), hs, hi, m, first + 48);
        }
    }
}

/* scores[q][j] = norms[ref0 + j] - 2 q.r for the `width` references starting at ref0; rows of
 * queries beyond nq and columns beyond n_refs are skipped. Work-group (TS/WPT, TS/WPT). */
__kernel void knn_scores_gpu(__global const float *queries, __global const float *refs,
                             __global const float *norms, uint dim, uint nq, uint n_refs,
                             uint ref0, uint width, __global float *scores)
{
    __local float q_tile[TK][TS + 1];
    __local float r_tile[TK][TS + 1];
    const uint threads = TS / WPT;
    uint lx = get_local_id(0), ly = get_local_id(1);
    uint row0 = get_group_id(1) * TS, col0 = get_group_id(0) * TS;
    uint flat = ly * threads + lx, n_threads = threads * threads;

    float acc[WPT][WPT];
    for (int i = 0; i < WPT; i++)
        for (int j = 0; j < WPT; j++)
            acc[i][j] = 0.0f;

    for (uint kb = 0; kb < dim; kb += TK) {
        /* Stage TK x TS slices of the queries and references (zero beyond the edges). */
        for (uint e = flat; e < TK * TS; e += n_threads) {
            uint kk = e % TK, rr = e / TK;
            uint k = kb + kk;
            uint q = row0 + rr, r = ref0 + col0 + rr;
            q_tile[kk][rr] = (k < dim && q < nq) ? queries[(size_t)q * dim + k] : 0.0f;
            r_tile[kk][rr] =
                (k < dim && col0 + rr < width && r < n_refs) ? refs[(size_t)r * dim + k] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        LOCAL_TILE_PRODUCT(float, fma, acc, q_tile, r_tile);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int i = 0; i < WPT; i++) {
        uint q = row0 + ly + i * threads;
        if (q >= nq) continue;
        for (int j = 0; j < WPT; j++) {
            uint c = col0 + lx + j * threads;
            if (c >= width) continue;
            uint r = ref0 + c;
            scores[(size_t)q * width + c] = r < n_refs ? norms[r] - 2.0f * acc[i][j] : INFINITY;
        }
    }
}

/* One work-item per query: offers its row of a score window to the query's heap for this
 * window (`split`). */
__kernel void knn_select_gpu(__global const float *scores, uint nq, uint nq_pad, uint width,
                             uint m, uint split, __global float *heap_score,
                             __global int *heap_index, int index_base)
{
    uint q = get_global_id(0);
    if (q >= nq) return;
    __global const float *row = scores + (size_t)q * width;
    __global float *hs = heap_score + ((size_t)split * nq_pad + q) * m;
    __global int *hi = heap_index + ((size_t)split * nq_pad + q) * m;
    for (uint c = 0; c < width; c++) {
        float s = row[c];
        if (s < hs[0]) heap_replace_top(hs, hi, m, s, index_base + (int)c);
    }
}
