/* gemm.cl: Y = clamp(alpha * A B + beta * C), the matrix multiply behind Gemm and MatMul.
 *
 * Algorithm  gemm_cpu   CPU: one work-item per (block of qb rows of A, panel of NR columns
 *                       of B, matrix of a batch); k-blocked by KC so the panel's KC x NR slice stays in L1 while
 *                       every MR-row micro-tile of the block passes over it; an MR x NR
 *                       register tile (MR rows of A broadcast, NR = 16 * NV columns as float16
 *                       vectors: the microkernel of knn_scores_cpu and conv_cpu). Partial sums
 *                       of a block live in a per-work-item scratch between k-blocks.
 *                       + AVX-512 FMA loop, B read once per block; - B must be packed.
 *                       A batch of products (attention's per-head MatMuls) is one launch:
 *                       the third global axis is the matrix, its operands a_bs, b_bs and y_bs
 *                       elements apart (0 broadcasts one operand to every matrix), so small
 *                       matrices share the launch and its work-items keep every core busy.
 *            gemm_pack  CPU: packs a B that is computed at run time (MatMul of two activations)
 *                       into panels, a batch of them at once; constant weights are packed
 *                       once on the host.
 *            The GPU family's kernels are gemm_gpu and gemm_gpu_reduce (kernels/gemm_gpu.cl).
 * Layout     A(r, k) = a[a_off + r * a_rs + k * a_ks] (transA is a stride swap);
 *            packed B [panels][K][NR] (zero beyond N); raw B(k, j) = b[b_off + k * b_ks +
 *            j * b_ns]; C(r, j) = c[c_off + r * c_rs + j * c_cs] (0 strides broadcast);
 *            Y(r, j) = y[y_off + r * y_rs + j]; scratch [items][qb][NR] from s_off (element
 *            offsets: with int8 the workspace starts with A's codes, the floats follow them).
 * Precision  fp16 (A_HALF, B_HALF, C_HALF, Y_HALF): tensors stored as half are read with
 *            vload_half and written with vstore_half_rte; arithmetic is float (the packed
 *            panels of a constant B are half; a B packed at run time is float scratch).
 *            int8 (INT8, gemm_cpu): A is quantised per tensor into int8 codes
 *            (kernels/quantize.cl, [M][K] row-major), B per column j; products accumulate
 *            exactly in int32 (partial sums in the scratch are int32) and
 *            the epilogue computes alpha * acc * (x_scale * w_scale[j]) (+ beta * C) in float.
 *            I8_FLOAT (CPU): exact float k-blocks of at most 1024 added to int32, as conv.cl.
 *            HALF_MATH (fp16 on a device with cl_khr_fp16): products and their sums over
 *            blocks of 32 k in half, added across blocks in float (tile.clh HALF_BLOCKS); the
 *            epilogue stays float.
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
#define CLAMP 0 /* fused activation (clamp.clh): 1 clamp(y, lo, hi) */
#endif

#ifndef A_HALF
#define A_HALF 0 /* A is stored as half */
#endif
#ifndef B_HALF
#define B_HALF 0 /* gemm_cpu: the packed B is half; gemm_pack: B is stored as half */
#endif
#ifndef C_HALF
#define C_HALF 0 /* C is stored as half */
#endif
#ifndef INT8
#define INT8 0 /* gemm_cpu: int8 A and B, int32 accumulators */
#endif
#ifndef I8_FLOAT
#define I8_FLOAT 0 /* CPU int8: exact float k-blocks added to int32 */
#endif

#define NR (16 * NV)
#if A_KS1
#define A_AT(k) (k)
#else
#define A_AT(k) ((k) * a_ks)
#endif

#include "storage.clh"
#include "tile.clh"
#define A_T CAT(ST_T_, A_HALF)
#define B_T CAT(ST_T_, B_HALF)
#define C_T CAT(ST_T_, C_HALF)
#define LOAD_B(p, i) CAT(ST_LD_, B_HALF)(p, i)
#define LOAD_C(p, i) CAT(ST_LD_, C_HALF)(p, i)

/* What gemm_cpu reads and accumulates: floats (or halves), or int8 codes into int32. */
#if INT8
#define AIN_T char
#define BIN_T char
#define ACC_T int
#define ACC16 int16
#else
#define AIN_T A_T
#define BIN_T B_T
#define ACC_T float
#define ACC16 float16
#endif

#include "clamp.clh"

/* alpha * acc (+ beta * C), clamped, into Y row r from column j0 (at most N). */
static inline void epilogue(float16 acc, int r, int j0, int N, float alpha, float beta,
                            __global const C_T *c, int c_rs, int c_cs, float lo, float hi,
                            __global Y_T *yrow)
{
    float16 v = alpha * acc;
#if HAS_C
    float cv[16];
    for (int j = 0; j < 16; j++)
        cv[j] = j0 + j < N ? LOAD_C(c, r * c_rs + (j0 + j) * c_cs) : 0.0f;
    v += beta * vload16(0, cv);
#endif
#if CLAMP
    v = activate16(v, lo, hi);
#endif
    if (j0 + 16 <= N) {
        STORE16_Y(v, yrow, j0);
    } else {
        float vals[16];
        vstore16(v, 0, vals);
        for (int j = 0; j + j0 < N; j++)
            STORE_Y(vals[j], yrow, j0 + j);
    }
}

__kernel void gemm_cpu(__global const AIN_T *a, int a_off, int a_rs, int a_ks,
                       __global const BIN_T *bp, int b_off, __global const C_T *c, int c_off,
                       int c_rs, int c_cs, __global Y_T *y, int y_off, int y_rs, int M, int N,
                       int K, float alpha, float beta, float lo, float hi,
                       __global ACC_T *scratch, int s_off, int qb, __global const float *wscale,
                       float x_scale, int a_bs, int b_bs, int y_bs)
{
    int block = get_global_id(0), pn = get_global_id(1), z = get_global_id(2);
    int r0 = block * qb;
    if (r0 >= M) return;
    int rows = min(qb, M - r0);
    a_off += z * a_bs;
    y_off += z * y_bs;
    __global const BIN_T *panel = bp + b_off + z * b_bs + pn * K * NR;
    int item = (z * get_global_size(1) + pn) * get_global_size(0) + block;
    __global ACC_T *tile = scratch + s_off + item * qb * NR;
    c += c_off;

    for (int kb = 0; kb < K; kb += KC) {
        int ke = min(K, kb + KC);
        bool first = kb == 0, last = ke == K;
        for (int mt = 0; mt < rows; mt += MR) {
            __global const AIN_T *ar[MR];
#pragma unroll
            for (int r = 0; r < MR; r++)
                ar[r] = a + a_off + (r0 + min(mt + r, rows - 1)) * a_rs;
            ACC16 acc[MR][NV];
            __global ACC_T *t = tile + mt * NR;
#pragma unroll
            for (int r = 0; r < MR; r++)
#pragma unroll
                for (int v = 0; v < NV; v++)
                    acc[r][v] = first ? (ACC16)(0) : vload16(r * NV + v, t);
#define TP_ROW(r) ar[r]
#define TP_AT(k) A_AT(k)
#define TP_RUN16 A_KS1
#define TP_A_HALF A_HALF
#define TP_B_HALF B_HALF
#define TP_K_BEGIN kb
#define TP_K_END ke
#include "tile_product.clh"
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
                    for (int v = 0; v < NV; v++) {
                        int j0 = pn * NR + v * 16;
#if INT8
                        float16 value =
                            convert_float16(acc[r][v]) * (x_scale * vload16(0, wscale + j0));
#else
                        float16 value = acc[r][v];
#endif
                        epilogue(value, row, j0, N, alpha, beta, c, c_rs, c_cs, lo, hi,
                                 y + y_off + row * y_rs);
                    }
                }
            }
        }
    }
}

/* packed[z][p][k][j] = B_z(k, p * NR + j), zero beyond N, for the matrices z of a batch (B_z
 * from b_off + z * b_bs). One work-item per (k, panel, matrix). The packed copy is float
 * scratch whatever B's storage. */
__kernel void gemm_pack(__global const B_T *b, int b_off, int b_ks, int b_ns, int K, int N,
                        __global float *packed, int packed_off, int b_bs)
{
    int k = get_global_id(0), p = get_global_id(1), z = get_global_id(2);
    if (k >= K) return;
    b_off += z * b_bs;
    __global float *dst = packed + packed_off + ((z * get_global_size(1) + p) * K + k) * NR;
    for (int j = 0; j < NR; j++) {
        int col = p * NR + j;
        dst[j] = col < N ? LOAD_B(b, b_off + k * b_ks + col * b_ns) : 0.0f;
    }
}
