/* knn_exact.cl: exact distances of the screened candidates, the proof that screening lost
 * nothing, and the k-nearest vote.
 *
 * Algorithm  knn_exact  one work-item per (query, split): recomputes each candidate's distance
 *                       from the original float32 vectors in float64 (squared L2 as a sum of
 *                       exact differences; cosine as 1 - q.r / (|q| |r|)), and a "safe"
 *                       distance below which no reference left out of this split can lie:
 *                       the worst kept score minus a bound on the float32 error of any score
 *                       (dim * 2^-24 relative to |q| |r| for the dot product, a few ulps for
 *                       the norm and the subtraction), converted to distance units.
 *            knn_vote   one work-item per query: the k + 1 smallest candidates by
 *                       (distance, training index) in a max-heap, then the check that the
 *                       smallest safe distance of all splits exceeds the (k+1)-th distance
 *                       (else the query is flagged and searched again with more candidates),
 *                       uniform or inverse-distance votes, the smallest label winning a tie.
 *            + exact with respect to a float64 computation, any k; - one work-item per query.
 * Layout     candidates [n_chunks][nq_pad][m] (distance double, index int, label int);
 *            safe [n_chunks][nq_pad]; votes [nq][n_classes]; per query the k voters (a
 *            max-heap) then the (k+1)-th nearest in [nq][k + 1] (index -1 where absent).
 * Assumes    cl_khr_fp64 (without it EXACT_T falls back to float: still far more accurate
 *            than the screening, but ties at the last bit may be decided differently).
 */
#ifdef cl_khr_fp64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#define EXACT_T double
#define EXACT_INF ((double)INFINITY)
#else
#define EXACT_T float
#define EXACT_INF INFINITY
#endif
#ifndef METRIC_COSINE
#define METRIC_COSINE 0 /* 1: cosine distance; 0: Euclidean (ranked by squared distance) */
#endif

#define FLAG_UNPROVEN 1u     /* screening could have missed a neighbour: search again */
#define FLAG_DISTANCE_TIE 2u /* the k-th and (k+1)-th distances are equal */
#define FLAG_VOTE_TIE 4u     /* two or more classes share the top vote */

#ifdef cl_khr_fp64
#define EXACT_T8 double8
#define TO_EXACT8 convert_double8
#else
#define EXACT_T8 float8
#define TO_EXACT8(v) (v)
#endif

/* Sum of the eight lanes, in a fixed order. */
static inline EXACT_T sum8(EXACT_T8 v)
{
    return ((v.s0 + v.s1) + (v.s2 + v.s3)) + ((v.s4 + v.s5) + (v.s6 + v.s7));
}

/* a . b, eight features at a time in a fixed order. */
static inline EXACT_T dot8(__global const float *a, __global const float *b, uint dim)
{
    EXACT_T8 acc = (EXACT_T8)(0);
    uint d = 0;
    EXACT_T tail = 0;
    for (; d + 8 <= dim; d += 8)
        acc = fma(TO_EXACT8(vload8(0, a + d)), TO_EXACT8(vload8(0, b + d)), acc);
    for (; d < dim; d++)
        tail += (EXACT_T)a[d] * (EXACT_T)b[d];
    return sum8(acc) + tail;
}

/* The exact distance, eight features at a time (every candidate in the same order, so equal
 * vectors give equal distances, and a vector is at distance exactly 0 from itself). */
static inline EXACT_T exact_distance(__global const float *q, __global const float *r, uint dim,
                                     EXACT_T q_norm2, EXACT_T r_norm2)
{
#if METRIC_COSINE
    if (q_norm2 == 0 || r_norm2 == 0) return 1; /* scikit-learn: a zero vector has cosine 0 */
    /* The norms in the dot product's own order, and sqrt(x * x) == x: cos(v, v) is exactly 1.
     * Clipped to [0, 2] as scikit-learn does. */
    EXACT_T qq = dot8(q, q, dim), rr = dot8(r, r, dim);
    return clamp(1 - dot8(q, r, dim) / sqrt(qq * rr), (EXACT_T)0, (EXACT_T)2);
#else
    EXACT_T8 acc = (EXACT_T8)(0);
    uint d = 0;
    EXACT_T tail = 0;
    for (; d + 8 <= dim; d += 8) {
        EXACT_T8 diff = TO_EXACT8(vload8(0, q + d)) - TO_EXACT8(vload8(0, r + d));
        acc = fma(diff, diff, acc);
    }
    for (; d < dim; d++) {
        EXACT_T diff = (EXACT_T)q[d] - (EXACT_T)r[d];
        tail += diff * diff;
    }
    return sum8(acc) + tail;
#endif
}

__kernel void knn_exact(__global const float *queries, __global const EXACT_T *query_norm2,
                        __global const float *refs, __global const EXACT_T *ref_norm2,
                        __global const int *labels, uint dim, uint nq, uint nq_pad, uint m,
                        int index_base, uint chunk_base, float bound_dot, float bound_norm,
                        float max_ref_norm, __global const float *heap_score,
                        __global const int *heap_index, __global EXACT_T *cand_dist,
                        __global int *cand_index, __global int *cand_label,
                        __global EXACT_T *safe)
{
    uint q = get_global_id(0), split = get_global_id(1);
    if (q >= nq) return;
    size_t heap = ((size_t)split * nq_pad + q) * m;
    size_t out = ((size_t)(chunk_base + split) * nq_pad + q) * m;
    __global const float *qv = queries + (size_t)q * dim;
    EXACT_T qn2 = query_norm2[q];
    for (uint j = 0; j < m; j++) {
        int index = heap_index[heap + j];
        cand_index[out + j] = index;
        if (index < 0) continue;
        int row = index - index_base;
        cand_dist[out + j] =
            exact_distance(qv, refs + (size_t)row * dim, dim, qn2, ref_norm2[row]);
        cand_label[out + j] = labels[row];
    }
    /* A split whose heap is not full kept every one of its references. */
    size_t safe_at = (size_t)(chunk_base + split) * nq_pad + q;
    if (heap_index[heap] < 0) {
        safe[safe_at] = EXACT_INF;
        return;
    }
#if METRIC_COSINE
    EXACT_T q_len = 1, r_len = 1; /* screening used unit vectors */
#else
    EXACT_T q_len = sqrt(qn2), r_len = max_ref_norm;
#endif
    EXACT_T bound = (EXACT_T)bound_dot * q_len * r_len + (EXACT_T)bound_norm * r_len * r_len;
    EXACT_T worst_kept = (EXACT_T)heap_score[heap];
#if METRIC_COSINE
    safe[safe_at] = (worst_kept - bound + 1) / 2;
#else
    safe[safe_at] = worst_kept - bound + qn2;
#endif
}

/* (d1, i1) ranks after (d2, i2): farther, or as far with a larger training index. */
static inline bool after(EXACT_T d1, int i1, EXACT_T d2, int i2)
{
    return d1 > d2 || (d1 == d2 && i1 > i2);
}

static inline void sift_down(__global EXACT_T *d, __global int *i, __global int *l, uint size,
                             uint at)
{
    EXACT_T vd = d[at];
    int vi = i[at], vl = l[at];
    for (;;) {
        uint left = 2 * at + 1;
        if (left >= size) break;
        uint right = left + 1;
        uint child = (right < size && after(d[right], i[right], d[left], i[left])) ? right : left;
        if (!after(d[child], i[child], vd, vi)) break;
        d[at] = d[child], i[at] = i[child], l[at] = l[child];
        at = child;
    }
    d[at] = vd, i[at] = vi, l[at] = vl;
}

static inline void sift_up(__global EXACT_T *d, __global int *i, __global int *l, uint at)
{
    EXACT_T vd = d[at];
    int vi = i[at], vl = l[at];
    while (at > 0) {
        uint parent = (at - 1) / 2;
        if (!after(vd, vi, d[parent], i[parent])) break;
        d[at] = d[parent], i[at] = i[parent], l[at] = l[parent];
        at = parent;
    }
    d[at] = vd, i[at] = vi, l[at] = vl;
}

__kernel void knn_vote(__global const EXACT_T *cand_dist, __global const int *cand_index,
                       __global const int *cand_label, __global const EXACT_T *safe, uint nq,
                       uint nq_pad, uint m, uint n_chunks, uint k, uint n_classes,
                       uint distance_weights, __global EXACT_T *heap_dist,
                       __global int *heap_index, __global int *heap_label,
                       __global EXACT_T *votes, __global int *pred, __global float *scores,
                       __global uint *flags)
{
    uint q = get_global_id(0);
    if (q >= nq) return;
    __global EXACT_T *hd = heap_dist + (size_t)q * (k + 1);
    __global int *hi = heap_index + (size_t)q * (k + 1);
    __global int *hl = heap_label + (size_t)q * (k + 1);

    /* The k + 1 nearest candidates over every split. */
    uint size = 0;
    EXACT_T safe_min = EXACT_INF;
    for (uint c = 0; c < n_chunks; c++) {
        safe_min = min(safe_min, safe[(size_t)c * nq_pad + q]);
        size_t base = ((size_t)c * nq_pad + q) * m;
        for (uint j = 0; j < m; j++) {
            int index = cand_index[base + j];
            if (index < 0) continue;
            EXACT_T d = cand_dist[base + j];
            if (size < k + 1) {
                hd[size] = d, hi[size] = index, hl[size] = cand_label[base + j];
                sift_up(hd, hi, hl, size++);
            } else if (after(hd[0], hi[0], d, index)) {
                hd[0] = d, hi[0] = index, hl[0] = cand_label[base + j];
                sift_down(hd, hi, hl, size, 0);
            }
        }
    }
    uint flag = 0;
    EXACT_T last_needed; /* the (k+1)-th distance, or the k-th when there is none */
    if (size == k + 1) {
        /* Pop the (k+1)-th and keep it in the last slot: the k voters stay a heap in front of
         * it, and a caller merging several searchers' candidates reads all k + 1. */
        EXACT_T next = hd[0];
        int next_index = hi[0], next_label = hl[0];
        size--;
        hd[0] = hd[size], hi[0] = hi[size], hl[0] = hl[size];
        sift_down(hd, hi, hl, size, 0);
        hd[size] = next, hi[size] = next_index, hl[size] = next_label;
        if (next == hd[0]) flag |= FLAG_DISTANCE_TIE;
        last_needed = next;
    } else {
        for (uint j = size; j <= k; j++)
            hi[j] = -1; /* fewer candidates than k + 1: mark the empty slots */
        last_needed = size ? hd[0] : 0;
    }
    if (!(safe_min > last_needed)) flag |= FLAG_UNPROVEN;

    __global EXACT_T *v = votes + (size_t)q * n_classes;
    for (uint c = 0; c < n_classes; c++)
        v[c] = 0;
    bool exact_match = false;
    if (distance_weights)
        for (uint j = 0; j < size; j++)
            exact_match = exact_match || hd[j] == 0;
    EXACT_T total = 0;
    for (uint j = 0; j < size; j++) {
        EXACT_T w = 1;
        if (distance_weights) {
#if METRIC_COSINE
            EXACT_T dist = hd[j];
#else
            EXACT_T dist = sqrt(hd[j]);
#endif
            /* scikit-learn: neighbours at distance 0 take all the weight. */
            w = exact_match ? (hd[j] == 0 ? 1 : 0) : 1 / dist;
        }
        v[hl[j]] += w;
        total += w;
    }
    uint best = 0, n_best = 0;
    for (uint c = 0; c < n_classes; c++) {
        if (v[c] > v[best]) best = c, n_best = 0;
        if (v[c] == v[best]) n_best++;
    }
    if (n_best > 1) flag |= FLAG_VOTE_TIE;
    pred[q] = (int)best;
    for (uint c = 0; c < n_classes; c++)
        scores[(size_t)q * n_classes + c] = total > 0 ? (float)(v[c] / total) : 0.0f;
    flags[q] = flag;
}
