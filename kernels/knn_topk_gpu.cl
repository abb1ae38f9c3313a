/* knn_topk_gpu.cl: KNN screening on a GPU with the M-best selection fused in, so no score
 * matrix ever reaches global memory.
 *
 * Algorithm  s = |r|^2 - 2 q.r ranks references by distance to q (knn_scores.cl explains the
 *            exact pass that follows). One work-group owns QT queries and one split (a range of
 *            `window` references); it walks the split RT references at a time: the QT x RT
 *            score tile is a register-tiled product (WPT x WPT outputs per work-item) of TK-deep
 *            slices of queries and references staged in local memory, read back with float4
 *            loads; the scores go to a local tile, and one work-item per query offers its row
 *            to the query's max-heap of M candidates, kept in local memory (HEAP_LOCAL) or, when
 *            QT heaps do not fit there, in the global heap buffer it owns alone.
 *            + one launch per tile for every split, no score round trip, heaps stay on chip;
 *            - the selection step runs QT of the (QT/WPT) x (RT/WPT) work-items.
 *            Scores and offer order (ascending reference within a split, strict "<" to enter a
 *            heap) are those of the CPU family's selection, so ties resolve the same way.
 * Layout     queries [nq][dim], refs [n_refs][dim] (row-major), norms [n_refs];
 *            heaps [splits][nq_pad][m] scores (float) and indices (int), max-heaps by score:
 *            element 0 is the worst kept candidate.
 * Launch     local (RT / WPT, QT / WPT); global (splits * RT / WPT, ceil(nq / QT) * QT / WPT);
 *            HEAP_LOCAL: two __local arguments of QT * m floats and QT * m ints.
 * Assumes    heaps filled with +INF / -1 before the launch; dim >= 1; m >= 1.
 */
#ifndef QT
#define QT 32 /* queries per work-group */
#endif
#ifndef RT
#define RT 64 /* references per step of the walk over a split */
#endif
#ifndef WPT
#define WPT 4 /* outputs per work-item along each side (float4 local loads need 4) */
#endif
#ifndef TK
#define TK 16 /* k-slice staged in local memory */
#endif
#ifndef HEAP_LOCAL
#define HEAP_LOCAL 1 /* 1: heaps live in local memory during the launch; 0: in global memory */
#endif

#if WPT != 4
#error "WPT must be 4: the register tile is read with float4 loads"
#endif
#if QT % WPT != 0 || RT % WPT != 0
#error "QT and RT must be multiples of WPT"
#endif
#if (RT / WPT) * (QT / WPT) < QT
#error "one work-item per query keeps its heap: RT must be at least WPT * WPT"
#endif

#if HEAP_LOCAL
#define HEAP_AS __local
#else
#define HEAP_AS __global
#endif

/* Replaces the root (worst) of a max-heap of m scores and restores the heap. */
inline void topk_replace_top(HEAP_AS float *score, HEAP_AS int *index, uint m, float s, int i)
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

__kernel __attribute__((reqd_work_group_size(RT / WPT, QT / WPT, 1))) void
knn_topk_gpu(__global const float *queries, __global const float *refs,
             __global const float *norms, uint dim, uint nq, uint nq_pad, uint n_refs,
             uint window, uint m, __global float *heap_score, __global int *heap_index,
             int index_base
#if HEAP_LOCAL
             ,
             __local float *local_score, __local int *local_index
#endif
)
{
    /* k-major tiles: work-item (lx, ly) reads its WPT consecutive queries / references as one
     * float4 per k. */
    __local float4 q_tile[TK][QT / 4];
    __local float4 r_tile[TK][RT / 4];
    __local float s_tile[QT][RT + 1];
    const uint lx = get_local_id(0), ly = get_local_id(1);
    const uint nx = RT / WPT, flat = ly * nx + lx, n_items = nx * (QT / WPT);
    const uint split = get_group_id(0), q0 = get_group_id(1) * QT;
    const uint ref_begin = split * window;
    const uint ref_end = min(n_refs, ref_begin + window);
    const uint own_q = q0 + flat; /* the query whose heap this work-item keeps, if flat < QT */

#if HEAP_LOCAL
    HEAP_AS float *hs = local_score + flat * m;
    HEAP_AS int *hi = local_index + flat * m;
    if (flat < QT)
        for (uint j = 0; j < m; j++) {
            hs[j] = INFINITY;
            hi[j] = -1;
        }
#else
    HEAP_AS float *hs = heap_score + ((size_t)split * nq_pad + own_q) * m;
    HEAP_AS int *hi = heap_index + ((size_t)split * nq_pad + own_q) * m;
#endif

    __local float *q_flat = (__local float *)q_tile;
    __local float *r_flat = (__local float *)r_tile;
    for (uint r0 = ref_begin; r0 < ref_end; r0 += RT) {
        float4 acc[WPT];
        for (int i = 0; i < WPT; i++)
            acc[i] = (float4)(0.0f);
        for (uint kb = 0; kb < dim; kb += TK) {
            /* Stage the slices, consecutive work-items reading consecutive k of one row (zero
             * beyond the edges). */
            for (uint e = flat; e < TK * QT; e += n_items) {
                uint kk = e % TK, row = e / TK, k = kb + kk, q = q0 + row;
                q_flat[kk * QT + row] = (k < dim && q < nq) ? queries[(size_t)q * dim + k] : 0.0f;
            }
            for (uint e = flat; e < TK * RT; e += n_items) {
                uint kk = e % TK, col = e / TK, k = kb + kk, r = r0 + col;
                r_flat[kk * RT + col] =
                    (k < dim && r < ref_end) ? refs[(size_t)r * dim + k] : 0.0f;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int kk = 0; kk < TK; kk++) {
                float4 a = q_tile[kk][ly], b = r_tile[kk][lx];
                acc[0] = fma((float4)(a.s0), b, acc[0]);
                acc[1] = fma((float4)(a.s1), b, acc[1]);
                acc[2] = fma((float4)(a.s2), b, acc[2]);
                acc[3] = fma((float4)(a.s3), b, acc[3]);
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        /* Scores into the local tile; references past the split score +INF (never kept). */
        float norm[WPT];
        for (int j = 0; j < WPT; j++) {
            uint r = r0 + lx * WPT + j;
            norm[j] = r < ref_end ? norms[r] : INFINITY;
        }
        float4 n = vload4(0, norm);
        for (int i = 0; i < WPT; i++) {
            float4 s = n - 2.0f * acc[i];
            uint row = ly * WPT + i, col = lx * WPT;
            s_tile[row][col] = s.s0;
            s_tile[row][col + 1] = s.s1;
            s_tile[row][col + 2] = s.s2;
            s_tile[row][col + 3] = s.s3;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (flat < QT && own_q < nq) {
            uint width = min((uint)RT, ref_end - r0);
            for (uint c = 0; c < width; c++) {
                float s = s_tile[flat][c];
                if (s < hs[0]) topk_replace_top(hs, hi, m, s, index_base + (int)(r0 + c));
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

#if HEAP_LOCAL
    if (flat < QT && own_q < nq) {
        __global float *gs = heap_score + ((size_t)split * nq_pad + own_q) * m;
        __global int *gi = heap_index + ((size_t)split * nq_pad + own_q) * m;
        for (uint j = 0; j < m; j++) {
            gs[j] = hs[j];
            gi[j] = hi[j];
        }
    }
#endif
}
