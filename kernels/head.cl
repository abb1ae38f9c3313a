/* head.cl: a small classifier head in one launch for GPUs: the last Gemm's scores, an optional
 * Softmax / LogSoftmax over each row, the row argmax with its non-finite count, and the
 * (label, prediction) pair added to the confusion histogram.
 *
 * Algorithm  head  A work-group of WG work-items owns ROWS consecutive rows. K runs in KT-deep
 *                  slices of those rows of A staged in local memory; work-item l owns columns
 *                  l, l + WG, ... (JT of them) and keeps ROWS x JT accumulators, each summed in
 *                  k order from 0 with fma (the order of gemm_gpu.cl without K splits). The
 *                  epilogue alpha * acc + beta * C goes to a local score tile [ROWS][CMAX]; one
 *                  work-item per row then normalises it (SOFTMAX 1: softmax, 2: log-softmax,
 *                  computed as kernels/softmax.cl does: maximum, sum of exp(x - max) in column
 *                  order, then exp(x - max) / sum or x - max - log(sum)) and takes the argmax
 *                  of the final values with kernels/softmax.cl's rules (the first maximum wins
 *                  ties, a NaN counts as the maximum; NaN and infinite values counted). The
 *                  scores are written to y only when `write_scores` (a consumer reads them),
 *                  coalesced by the whole work-group.
 *                  + scores, predictions and counts without a round trip through global memory;
 *                  - the row normalisation and argmax are serial per row (C <= CMAX is small);
 *                    B is read from global memory by every work-group (it stays in cache).
 * Layout     A(r, k) = a[r * a_rs + k * a_ks]; B(k, j) = b[k * b_ks + j * b_ns];
 *            C(r, j) = c[r * c_rs + j * c_cs] (0 strides broadcast); y [m][n] row-major;
 *            pred int32 [m], nonfinite uint32 [m]; hist uint32 [hist_rows][hist_cols].
 * Histogram  with `count`, row r adds one to hist[label * hist_cols + pred] (label 0 when
 *            `paired` is 0), one global atomic per row, skipped outside the grid: the same
 *            cells kernels/histogram.cl would count from pred.
 * Launch     local WG; global ceil(m / ROWS) * WG.
 * Assumes    K >= 1, n <= CMAX, WG >= ROWS; float storage; every index fits in an int.
 */
#pragma OPENCL FP_CONTRACT OFF /* the epilogue rounds alpha * acc, then adds beta * C */

#ifndef ROWS
#define ROWS 4 /* rows of A per work-group */
#endif
#ifndef WG
#define WG 64 /* work-items per work-group */
#endif
#ifndef KT
#define KT 64 /* k-slice of A staged in local memory */
#endif
#ifndef CMAX
#define CMAX 64 /* columns of the local score tile, a multiple of WG, at least n */
#endif
#ifndef HAS_C
#define HAS_C 1
#endif
#ifndef SOFTMAX
#define SOFTMAX 0 /* 0 the scores as they are, 1 softmax, 2 log-softmax */
#endif
#define JT (CMAX / WG) /* columns per work-item */
#if CMAX % WG != 0 || WG < ROWS
#error "CMAX must be a multiple of WG, and WG at least ROWS"
#endif

/* Softmax or log-softmax of one row in place, in kernels/softmax.cl's order of operations. */
static inline void normalise_row(__local float *s, int n)
{
#if SOFTMAX
    float m = -INFINITY;
    for (int j = 0; j < n; j++)
        m = fmax(m, s[j]);
    float sum = 0.0f;
    for (int j = 0; j < n; j++)
        sum += exp(s[j] - m);
    float log_sum = log(sum);
    for (int j = 0; j < n; j++) {
        float v = s[j] - m;
        s[j] = SOFTMAX == 2 ? v - log_sum : exp(v) / sum;
    }
#else
    (void)s;
    (void)n;
#endif
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void
head(__global const float *a, int a_rs, int a_ks, __global const float *b, int b_ks, int b_ns,
     __global const float *c, int c_rs, int c_cs, float alpha, float beta, int m, int n, int k,
     __global float *y, int write_scores, __global int *pred, __global uint *nonfinite,
     int count, int paired, __global const int *labels, __global uint *hist, uint hist_rows,
     uint hist_cols)
{
    __local float xs[ROWS][KT];
    __local float s[ROWS][CMAX];
    int lid = (int)get_local_id(0);
    int row0 = (int)get_group_id(0) * ROWS;

    float acc[ROWS][JT];
    for (int r = 0; r < ROWS; r++)
        for (int t = 0; t < JT; t++)
            acc[r][t] = 0.0f;

    for (int k0 = 0; k0 < k; k0 += KT) {
        int kn = min(KT, k - k0);
        barrier(CLK_LOCAL_MEM_FENCE); /* the previous slice is no longer read */
        for (int e = lid; e < ROWS * KT; e += WG) {
            int r = e / KT, kk = e % KT;
            xs[r][kk] = row0 + r < m && kk < kn ? a[(row0 + r) * a_rs + (k0 + kk) * a_ks] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int t = 0; t < JT; t++) {
            int j = lid + t * WG;
            if (j >= n) break;
            __global const float *bj = b + j * b_ns + k0 * b_ks;
            /* Only the kn real k: a padded k would add 0 * B, NaN for an infinite weight. */
            for (int kk = 0; kk < kn; kk++) {
                float w = bj[kk * b_ks];
                for (int r = 0; r < ROWS; r++)
                    acc[r][t] = fma(xs[r][kk], w, acc[r][t]);
            }
        }
    }

    for (int t = 0; t < JT; t++) {
        int j = lid + t * WG;
        if (j >= n) break;
        for (int r = 0; r < ROWS; r++) {
            float v = alpha * acc[r][t];
#if HAS_C
            if (row0 + r < m) v += beta * c[(row0 + r) * c_rs + j * c_cs];
#endif
            s[r][j] = v;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    if (lid < ROWS && row0 + lid < m) {
        int row = row0 + lid;
        __local float *sr = s[lid];
        normalise_row(sr, n);
        int best = 0;
        float value = sr[0];
        uint bad = isfinite(value) ? 0 : 1;
        for (int j = 1; j < n; j++) {
            float v = sr[j];
            bad += isfinite(v) ? 0 : 1;
            if (!isnan(value) && (v > value || isnan(v))) {
                value = v;
                best = j;
            }
        }
        pred[row] = best;
        nonfinite[row] = bad;
        if (count) {
            uint label = paired ? (uint)labels[row] : 0u;
            if (label < hist_rows && (uint)best < hist_cols)
                atomic_inc(&hist[label * hist_cols + (uint)best]);
        }
    }
    if (!write_scores) return;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int r = 0; r < ROWS && row0 + r < m; r++)
        for (int j = lid; j < n; j += WG)
            y[(row0 + r) * n + j] = s[r][j];
}
