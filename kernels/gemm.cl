/* gemm.cl: Y = clamp(alpha * A B + beta * C), the matrix multiply behind Gemm and MatMul.
 *
 * Algorithm  gemm_cpu   CPU: one work-item per (block of qb rows of A, panel of NR columns
 *                       of B); k-blocked by KC so the panel's KC x NR slice stays in L1 while
 *                       every MR-row micro-tile of the block passes over it; an MR x NR
 *                       register tile (MR rows of A broadcast, NR = 16 * NV columns as float16
 *                       vectors: the microkernel of knn_scores_cpu and conv_cpu). Partial sums
 *                       of a block live in a per-work-item scratch between k-blocks.
 *                       + AVX-512 FMA loop, B read once per block; - B must be packed.
 *            gemm_pack  CPU: packs a B that is computed at run time (MatMul of two activations)
 *                       into panels; constant weights are packed once on the host.
 *            gemm_gpu   GPU: TS x TS work-group tiles in local memory, WPT x WPT outputs per
 *                       work-item, B read in place through strides; when M x N gives too few
 *                       tiles to fill the GPU (a fully connected layer at a small batch), K is
 *                       split across work-groups and gemm_gpu_reduce adds the partial sums.
 *                       + coalesced, local-memory reuse; - 1 % of peak on a CPU (PoCL).
 * Layout     A(r, k) = a[a_off + r * a_rs + k * a_ks] (transA is a stride swap);
 *            packed B [panels][K][NR] (zero beyond N); raw B(k, j) = b[b_off + k * b_ks +
 *            j * b_ns]; C(r, j) = c[c_off + r * c_rs + j * c_cs] (0 strides broadcast);
 *            Y(r, j) = y[y_off + r * y_rs + j]; scratch [items][qb][NR].
 * Assumes    K >= 1; every buffer index fits in an int.
 */
#ifndef MR
#define MR 8 /* CPU: rows of A per register tile */
#endif
#ifndef NV
#define NV 2 /* CPU: float16 vectors per tile row; NR = 16 * NV columns */
#endif
#ifndef KC
#define KC 256 /* CPU: k-block; a KC x NR panel slice is KC * NR * 4 bytes of L1 */
#endif
#ifndef HAS_C
#define HAS_C 0 /* add beta * C */
#endif
#ifndef A_KS1
#define A_KS1 0 /* CPU: A's k stride is 1 (A not transposed), known at build time */
#endif
#ifndef CLAMP
#define CLAMP 0 /* fuse y = clamp(y, lo, hi) */
#endif
#ifndef TS
#define TS 32 /* GPU: tile rows and columns per work-group */
#endif
#ifndef WPT
#define WPT 4 /* GPU: outputs per work-item along each side */
#endif
#ifndef TK
#define TK 16 /* GPU: k-slice staged in local memory */
#endif

#define NR (16 * NV)

inline float16 clamp16(float16 v, float lo, float hi)
{
    v = select(v, (float16)(lo), v < (float16)(lo));
    return select(v, (float16)(hi), v > (float16)(hi));
}

inline float clamp1(float v, float lo, float hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* alpha * acc (+ beta * C), clamped, into Y row r from column j0 (at most N). */
inline void epilogue(float16 acc, int r, int j0, int N, float alpha, float beta,
                     __global const float *c, int c_rs, int c_cs, float lo, float hi,
                     __global float *yrow)
{
    float16 v = alpha * acc;
#if HAS_C
    float cv[16];
    for (int j = 0; j < 16; j++)
        cv[j] = j0 + j < N ? c[r * c_rs + (j0 + j) * c_cs] : 0.0f;
    v += beta * vload16(0, cv);
#endif
#if CLAMP
    v = clamp16(v, lo, hi);
#endif
    if (j0 + 16 <= N) {
        vstore16(v, 0, yrow + j0);
    } else {
        float vals[16];
        vstore16(v, 0, vals);
        for (int j = 0; j + j0 < N; j++)
            yrow[j0 + j] = vals[j];
    }
}

__kernel void gemm_cpu(__global const float *a, int a_off, int a_rs, int a_ks,
                       __global const float *bp, int b_off, __global const float *c, int c_off,
                       int c_rs, int c_cs, __global float *y, int y_off, int y_rs, int M, int N,
                       int K, float alpha, float beta, float lo, float hi,
                       __global float *scratch, int s_off, int qb)
{
    int block = get_global_id(0), pn = get_global_id(1);
    int r0 = block * qb;
    if (r0 >= M) return;
    int rows = min(qb, M - r0);
    __global const float *panel = bp + b_off + pn * K * NR;
    __global float *tile =
        scratch + s_off + (get_global_id(1) * get_global_size(0) + block) * qb * NR;
    c += c_off;

    for (int kb = 0; kb < K; kb += KC) {
        int ke = min(K, kb + KC);
        bool first = kb == 0, last = ke == K;
        for (int mt = 0; mt < rows; mt += MR) {
            __global const float *ar[MR];
#pragma unroll
            for (int r = 0; r < MR; r++)
                ar[r] = a + a_off + (r0 + min(mt + r, rows - 1)) * a_rs;
            float16 acc[MR][NV];
            __global float *t = tile + mt * NR;
#pragma unroll
            for (int r = 0; r < MR; r++)
#pragma unroll
                for (int v = 0; v < NV; v++)
                    acc[r][v] = first ? (float16)(0.0f) : vload16(r * NV + v, t);
            for (int k = kb; k < ke; k++) {
                float16 b[NV];
#pragma unroll
                for (int v = 0; v < NV; v++)
                    b[v] = vload16(v, panel + k * NR);
#pragma unroll
                for (int r = 0; r < MR; r++) {
#if A_KS1
                    float16 av = (float16)(ar[r][k]);
#else
                    float16 av = (float16)(ar[r][k * a_ks]);
#endif
#pragma unroll
                    for (int v = 0; v < NV; v++)
                        acc[r][v] = fma(av, b[v], acc[r][v]);
                }
            }
            if (!last) {
#pragma unroll
                for (int r = 0; r < MR; r++)
#pragma unroll
                    for (int v = 0; v < NV; v++)
                        vstore16(acc[r][v], r * NV + v, t);
                continue;
            }
#pragma unroll
            for (int r = 0; r < MR; r++) {
                int row = r0 + mt + r;
                if (mt + r < rows) {
#pragma unroll
                    for (int v = 0; v < NV; v++)
                        epilogue(acc[r][v], row, pn * NR + v * 16, N, alpha, beta, c, c_rs,
                                 c_cs, lo, hi, y + y_off + row * y_rs);
                }
            }
        }
    }
}

/* packed[p][k][j] = B(k, p * NR + j), zero beyond N. One work-item per (k, panel). */
__kernel void gemm_pack(__global const float *b, int b_off, int b_ks, int b_ns, int K, int N,
                        __global float *packed)
{
    int k = get_global_id(0), p = get_global_id(1);
    if (k >= K) return;
    __global float *dst = packed + (p * K + k) * NR;
    for (int j = 0; j < NR; j++) {
        int col = p * NR + j;
        dst[j] = col < N ? b[b_off + k * b_ks + col * b_ns] : 0.0f;
    }
}

/* Work-group (TS/WPT, TS/WPT) computes a TS x TS tile of Y over the k range of its split
 * (get_group_id(2) of `splits`, k_per_split long). With one split it applies the epilogue;
 * with several it writes raw partial sums to part[split][M][N] for gemm_gpu_reduce. */
__kernel void gemm_gpu(__global const float *a, int a_off, int a_rs, int a_ks,
                       __global const float *b, int b_off, int b_ks, int b_ns,
                       __global const float *c, int c_off, int c_rs, int c_cs, __global float *y,
                       int y_off, int y_rs, int M, int N, int K, float alpha, float beta,
                       float lo, float hi, int splits, int k_per_split, __global float *part)
{
    __local float a_tile[TK][TS + 1];
    __local float b_tile[TK][TS + 1];
    const int threads = TS / WPT;
    int lx = get_local_id(0), ly = get_local_id(1);
    int row0 = get_group_id(1) * TS, col0 = get_group_id(0) * TS;
    int flat = ly * threads + lx, n_threads = threads * threads;

    float acc[WPT][WPT];
    for (int i = 0; i < WPT; i++)
        for (int j = 0; j < WPT; j++)
            acc[i][j] = 0.0f;

    int k_begin = get_group_id(2) * k_per_split, k_end = min(K, k_begin + k_per_split);
    for (int kb = k_begin; kb < k_end; kb += TK) {
        for (int e = flat; e < TK * TS; e += n_threads) {
            int kk = e % TK, rr = e / TK;
            int k = kb + kk, r = row0 + rr, j = col0 + rr;
            a_tile[kk][rr] = (k < k_end && r < M) ? a[a_off + r * a_rs + k * a_ks] : 0.0f;
            b_tile[kk][rr] = (k < k_end && j < N) ? b[b_off + k * b_ks + j * b_ns] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < TK; kk++) {
            float av[WPT], bv[WPT];
            for (int i = 0; i < WPT; i++)
                av[i] = a_tile[kk][ly + i * threads];
            for (int j = 0; j < WPT; j++)
                bv[j] = b_tile[kk][lx + j * threads];
            for (int i = 0; i < WPT; i++)
                for (int j = 0; j < WPT; j++)
                    acc[i][j] = fma(av[i], bv[j], acc[i][j]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int i = 0; i < WPT; i++) {
        int r = row0 + ly + i * threads;
        if (r >= M) continue;
        for (int j = 0; j < WPT; j++) {
            int col = col0 + lx + j * threads;
            if (col >= N) continue;
            if (splits > 1) {
                part[(get_group_id(2) * M + r) * N + col] = acc[i][j];
                continue;
            }
            float v = alpha * acc[i][j];
#if HAS_C
            v += beta * c[c_off + r * c_rs + col * c_cs];
#endif
#if CLAMP
            v = clamp1(v, lo, hi);
#endif
            y[y_off + r * y_rs + col] = v;
        }
    }
}

/* Sums the split-K partials of gemm_gpu and applies the epilogue: one output per work-item. */
__kernel void gemm_gpu_reduce(__global const float *part, int splits, __global const float *c,
                              int c_off, int c_rs, int c_cs, __global float *y, int y_off,
                              int y_rs, int M, int N, float alpha, float beta, float lo, float hi)
{
    int i = get_global_id(0);
    if (i >= M * N) return;
    int r = i / N, col = i % N;
    float s = 0.0f;
    for (int p = 0; p < splits; p++)
        s += part[p * M * N + i];
    float v = alpha * s;
#if HAS_C
    v += beta * c[c_off + r * c_rs + col * c_cs];
#endif
#if CLAMP
    v = clamp1(v, lo, hi);
#endif
    y[y_off + r * y_rs + col] = v;
}
