/* gemm_gpu.cl: Y = clamp(alpha * A B + beta * C) for GPUs, in the manner of CLBlast's xgemm:
 * every tunable a -D build option, local-memory tiles loaded twice-buffered, register tiles
 * read from local memory as vectors, K optionally split across work-groups.
 *
 * Algorithm  gemm_gpu  A work-group computes an MWG x NWG tile of Y with MDIMC x NDIMC
 *                      work-items, each an MWI x NWI register tile (MWI = MWG / MDIMC, NWI =
 *                      NWG / NDIMC). Its rows are MWI / VWM vectors of VWM adjacent rows,
 *                      vector w at row (w * MDIMC + ly) * VWM (so neighbouring work-items read
 *                      neighbouring vectors), its columns likewise with NWI / NDIMC and VWN.
 *                      K runs in KWG-deep slices staged in local memory, twice buffered: the
 *                      next slice is fetched into registers before the current one is
 *                      multiplied and stored into the other buffer after, one barrier per
 *                      slice. With `splits` > 1 (a small M x N that would leave the GPU
 *                      idle) group (.., .., s) covers k in [s * k_per_split, ..) and writes raw
 *                      sums to part[s][M][N]; gemm_gpu_reduce adds them and applies the
 *                      epilogue. Epilogue: alpha, int8 dequantisation, beta * C, activation.
 *                      + vector local loads, MWI * NWI FMAs per MWI / VWM + NWI / VWN loads,
 *                        no bounds checks in the product, A and B read in place (any strides);
 *                      - the staging loads are scalar (the strides are run-time values); the
 *                        work-group size must divide KWG * MWG and KWG * NWG.
 * Layout     A(r, k) = a[a_off + r * a_rs + k * a_ks]; B(k, j) = b[b_off + k * b_ks + j * b_ns];
 *            C(r, j) = c[c_off + r * c_rs + j * c_cs] (0 strides broadcast); Y(r, j) =
 *            y[y_off + r * y_rs + j]; parts [splits][M][N] from part_off.
 * Precision  as gemm.cl: A_HALF / B_HALF / C_HALF / Y_HALF storage; INT8: char codes, int
 *            sums (and parts), alpha * acc * x_scale * w_scale[j] in the epilogue; HALF_MATH:
 *            each slice's products summed in half, slices added in float (the host starts
 *            every split at a multiple of KWG, so the blocks do not depend on the split).
 * Launch     local (NDIMC, MDIMC); global (ceil(N / NWG) * NDIMC, ceil(M / MWG) * MDIMC,
 *            splits).
 * Assumes    K >= 1; every buffer index fits in an int.
 */
#ifndef MWG
#define MWG 64 /* rows of Y per work-group */
#endif
#ifndef NWG
#define NWG 64 /* columns of Y per work-group */
#endif
#ifndef KWG
#define KWG 16 /* k-slice staged in local memory */
#endif
#ifndef MDIMC
#define MDIMC 16 /* work-items along the rows */
#endif
#ifndef NDIMC
#define NDIMC 16 /* work-items along the columns */
#endif
#ifndef VWM
#define VWM 2 /* rows per local-memory vector load: 2, 4 or 8 */
#endif
#ifndef VWN
#define VWN 2 /* columns per local-memory vector load: 2, 4 or 8 */
#endif
#ifndef HAS_C
#define HAS_C 0 /* add beta * C */
#endif
#ifndef CLAMP
#define CLAMP 0 /* fused activation (clamp.clh) */
#endif
#ifndef A_HALF
#define A_HALF 0
#endif
#ifndef B_HALF
#define B_HALF 0
#endif
#ifndef C_HALF
#define C_HALF 0
#endif
#ifndef INT8
#define INT8 0 /* int8 A and B codes, int32 accumulators */
#endif

#define MWI (MWG / MDIMC)
#define NWI (NWG / NDIMC)
#define ITEMS (MDIMC * NDIMC)
#define A_PER (KWG * MWG / ITEMS) /* elements of A's slice each work-item fetches */
#define B_PER (KWG * NWG / ITEMS)
#if (KWG * MWG) % ITEMS != 0 || (KWG * NWG) % ITEMS != 0
#error "the work-group size must divide KWG * MWG and KWG * NWG"
#endif
#if MWG % (MDIMC * VWM) != 0 || NWG % (NDIMC * VWN) != 0
#error "MWG must be a multiple of MDIMC * VWM and NWG of NDIMC * VWN"
#endif
#if (VWM != 2 && VWM != 4 && VWM != 8) || (VWN != 2 && VWN != 4 && VWN != 8)
#error "VWM and VWN must be 2, 4 or 8"
#endif

#include "storage.clh"
#include "clamp.clh"
#define A_T CAT(ST_T_, A_HALF)
#define B_T CAT(ST_T_, B_HALF)
#define C_T CAT(ST_T_, C_HALF)
#define LOAD_C(p, i) CAT(ST_LD_, C_HALF)(p, i)

#if INT8
#define AIN_T char
#define BIN_T char
#define TILE_T char
#define ACC_T int
#define LOAD_TILE_A(p, i) ((p)[i])
#define LOAD_TILE_B(p, i) ((p)[i])
#define MAC1(a, b, c) ((c) + (int)(a) * (int)(b))
#else
#define AIN_T A_T
#define BIN_T B_T
#define ACC_T float
#define MAC1(a, b, c) fma((a), (b), (c))
#if HALF_MATH
#define TILE_T half
#define LOAD_TILE_A(p, i) CAT(HM_LD_, A_HALF)(p, i)
#define LOAD_TILE_B(p, i) CAT(HM_LD_, B_HALF)(p, i)
#else
#define TILE_T float
#define LOAD_TILE_A(p, i) CAT(ST_LD_, A_HALF)(p, i)
#define LOAD_TILE_B(p, i) CAT(ST_LD_, B_HALF)(p, i)
#endif
#endif
#define VLOAD_M CAT(vload, VWM)
#define VSTORE_M CAT(vstore, VWM)
#define VLOAD_N CAT(vload, VWN)
#define VSTORE_N CAT(vstore, VWN)

/* alpha * acc, dequantised (int8), plus beta * C, activated: one output. */
static inline float gpu_epilogue(ACC_T acc, int r, int col, float alpha, float beta,
                                 __global const C_T *c, int c_off, int c_rs, int c_cs, float lo,
                                 float hi, __global const float *wscale, float x_scale)
{
#if INT8
    float v = alpha * ((float)acc * (x_scale * wscale[col]));
#else
    float v = alpha * acc;
#endif
#if HAS_C
    v += beta * LOAD_C(c, c_off + r * c_rs + col * c_cs);
#endif
#if CLAMP
    v = activate1(v, lo, hi);
#endif
    return v;
}

/* Element i of a work-item's share of a slice (e = flat + i * ITEMS) is local element
 * (kk, r) of A's slice: consecutive work-items take consecutive addresses of the operand, along
 * k when its k stride is 1 (a row-major A; a Gemm B with transB, as PyTorch exports Linear),
 * else along its rows or columns (the test is the same for the whole work-group). */
#define A_KK(e) (a_k_inner ? (e) % KWG : (e) / MWG)
#define A_R(e) (a_k_inner ? (e) / KWG : (e) % MWG)
#define B_KK(e) (b_k_inner ? (e) % KWG : (e) / NWG)
#define B_J(e) (b_k_inner ? (e) / KWG : (e) % NWG)

/* Reads this work-item's share of the slice from kb into registers (zeros past k_end, M, N). */
static inline void fetch(__global const AIN_T *a, int a_rs, int a_ks, __global const BIN_T *b,
                         int b_ks, int b_ns, int row0, int col0, int M, int N, int kb, int k_end,
                         int flat, TILE_T areg[A_PER], TILE_T breg[B_PER])
{
    const bool a_k_inner = a_ks == 1, b_k_inner = b_ks == 1;
    for (int i = 0; i < A_PER; i++) {
        int e = flat + i * ITEMS, r = row0 + A_R(e), k = kb + A_KK(e);
        areg[i] = (k < k_end && r < M) ? LOAD_TILE_A(a, r * a_rs + k * a_ks) : (TILE_T)0;
    }
    for (int i = 0; i < B_PER; i++) {
        int e = flat + i * ITEMS, j = col0 + B_J(e), k = kb + B_KK(e);
        breg[i] = (k < k_end && j < N) ? LOAD_TILE_B(b, k * b_ks + j * b_ns) : (TILE_T)0;
    }
}

/* Writes the fetched share into one pair of local buffers, k-major. */
static inline void store(int a_ks, int b_ks, int flat, const TILE_T areg[A_PER],
                         const TILE_T breg[B_PER], __local TILE_T *at, __local TILE_T *bt)
{
    const bool a_k_inner = a_ks == 1, b_k_inner = b_ks == 1;
    for (int i = 0; i < A_PER; i++) {
        int e = flat + i * ITEMS;
        at[A_KK(e) * MWG + A_R(e)] = areg[i];
    }
    for (int i = 0; i < B_PER; i++) {
        int e = flat + i * ITEMS;
        bt[B_KK(e) * NWG + B_J(e)] = breg[i];
    }
}

__kernel __attribute__((reqd_work_group_size(NDIMC, MDIMC, 1))) void
gemm_gpu(__global const AIN_T *a, int a_off, int a_rs, int a_ks, __global const BIN_T *b,
         int b_off, int b_ks, int b_ns, __global const C_T *c, int c_off, int c_rs, int c_cs,
         __global Y_T *y, int y_off, int y_rs, int M, int N, int K, float alpha, float beta,
         float lo, float hi, int splits, int k_per_split, __global ACC_T *part, int part_off,
         __global const float *wscale, float x_scale)
{
    __local TILE_T a_tile[2][KWG * MWG];
    __local TILE_T b_tile[2][KWG * NWG];
    const int lx = get_local_id(0), ly = get_local_id(1), flat = ly * NDIMC + lx;
    const int row0 = get_group_id(1) * MWG, col0 = get_group_id(0) * NWG;
    const int k_begin = get_group_id(2) * k_per_split, k_end = min(K, k_begin + k_per_split);
    a += a_off;
    b += b_off;

    ACC_T acc[MWI][NWI];
    for (int i = 0; i < MWI; i++)
        for (int j = 0; j < NWI; j++)
            acc[i][j] = 0;

    TILE_T areg[A_PER], breg[B_PER];
    if (k_begin < k_end) {
        fetch(a, a_rs, a_ks, b, b_ks, b_ns, row0, col0, M, N, k_begin, k_end, flat, areg, breg);
        store(a_ks, b_ks, flat, areg, breg, a_tile[0], b_tile[0]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    int buf = 0;
    for (int kb = k_begin; kb < k_end; kb += KWG) {
        /* The next slice's loads are issued before this slice's products, which hide their
         * latency; the registers then go to the other buffer, which every work-item finished
         * reading before the barrier that ended the previous slice. */
        bool more = kb + KWG < k_end;
        if (more)
            fetch(a, a_rs, a_ks, b, b_ks, b_ns, row0, col0, M, N, kb + KWG, k_end, flat, areg,
                  breg);
        __local const TILE_T *at = a_tile[buf], *bt = b_tile[buf];
#if HALF_MATH && !INT8
        half sum[MWI][NWI];
        for (int i = 0; i < MWI; i++)
            for (int j = 0; j < NWI; j++)
                sum[i][j] = 0;
#define SLICE_SUM sum
#else
#define SLICE_SUM acc
#endif
        for (int kk = 0; kk < KWG; kk++) {
            TILE_T av[MWI], bv[NWI];
#pragma unroll
            for (int w = 0; w < MWI / VWM; w++)
                VSTORE_M(VLOAD_M(w * MDIMC + ly, at + kk * MWG), w, av);
#pragma unroll
            for (int w = 0; w < NWI / VWN; w++)
                VSTORE_N(VLOAD_N(w * NDIMC + lx, bt + kk * NWG), w, bv);
#pragma unroll
            for (int i = 0; i < MWI; i++)
#pragma unroll
                for (int j = 0; j < NWI; j++)
                    SLICE_SUM[i][j] = MAC1(av[i], bv[j], SLICE_SUM[i][j]);
        }
#if HALF_MATH && !INT8
        for (int i = 0; i < MWI; i++)
            for (int j = 0; j < NWI; j++)
                acc[i][j] += (float)sum[i][j];
#endif
        if (more) store(a_ks, b_ks, flat, areg, breg, a_tile[buf ^ 1], b_tile[buf ^ 1]);
        barrier(CLK_LOCAL_MEM_FENCE);
        buf ^= 1;
    }

    /* Register element (i, j) is row (i / VWM * MDIMC + ly) * VWM + i % VWM, likewise j. */
    for (int i = 0; i < MWI; i++) {
        int r = row0 + (i / VWM * MDIMC + ly) * VWM + i % VWM;
        if (r >= M) continue;
        for (int j = 0; j < NWI; j++) {
            int col = col0 + (j / VWN * NDIMC + lx) * VWN + j % VWN;
            if (col >= N) continue;
            if (splits > 1) {
                part[part_off + (get_group_id(2) * M + r) * N + col] = acc[i][j];
                continue;
            }
            float v = gpu_epilogue(acc[i][j], r, col, alpha, beta, c, c_off, c_rs, c_cs, lo, hi,
                                   wscale, x_scale);
            STORE_Y(v, y, y_off + r * y_rs + col);
        }
    }
}

/* Sums the split-K partials of gemm_gpu and applies the epilogue: one output per work-item. */
__kernel void gemm_gpu_reduce(__global const ACC_T *part, int part_off, int splits,
                              __global const C_T *c, int c_off, int c_rs, int c_cs,
                              __global Y_T *y, int y_off, int y_rs, int M, int N, float alpha,
                              float beta, float lo, float hi, __global const float *wscale,
                              float x_scale)
{
    int i = get_global_id(0);
    if (i >= M * N) return;
    int r = i / N, col = i % N;
    ACC_T s = 0;
    for (int p = 0; p < splits; p++)
        s += part[part_off + p * M * N + i];
    float v = gpu_epilogue(s, r, col, alpha, beta, c, c_off, c_rs, c_cs, lo, hi, wscale, x_scale);
    STORE_Y(v, y, y_off + r * y_rs + col);
}
