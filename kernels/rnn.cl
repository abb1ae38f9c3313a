/* rnn.cl: ONNX LSTM and GRU, both device variants.
 *
 * Algorithm  rnn_project  the input projection of every time step and direction at once, one
 *                         GEMM: G[r][n] = sum_k X(r, k) Wt[k][n] + bias[n], row r = t * batch
 *                         + b, column n = d * gates * hidden + gate * hidden + j; the biases
 *                         that ONNX adds outside a reset (Wb + Rb) are folded into bias[n].
 *                         16 x 16 tiles through local memory, one output per work-item.
 *            lstm_steps   the recurrence: one work-group per (direction, RB batch rows) loops
 *            gru_steps    over time; its work-items share the hidden units j = lid, lid + L, ...
 *                         and each recurrent weight read serves the RB rows (with RB = 1 every
 *                         row re-read the whole R each step; the rows' sums stay in k order).
 *                         Each step reads G's row, adds the recurrent products R h_{t-1}, applies
 *                         the gates and writes h_t; a work-group barrier separates the steps
 *                         (GRU with linear_before_reset=0 has a second one, after r (.) h_{t-1}).
 * Layout     Wt [input][dirs * gates * hidden]; Rt [dirs][hidden][gates * hidden] (R
 *            transposed, so that neighbouring work-items read neighbouring weights); gate order
 *            as ONNX: LSTM i, o, f, c; GRU z, r, h. The state lives in the float workspace, per
 *            (direction, batch row) 4 * hidden floats: h ping, h pong, then c (LSTM) or z and
 *            r (.) h (GRU). X, Y, initial and final states are addressed through strides, so
 *            layout=1 (batch-major) needs no copy.
 * Storage    X_HALF, Y_HALF, H0_HALF, C0_HALF, YH_HALF, YC_HALF: that tensor is stored as half.
 *            The state, the gates and all arithmetic are float whatever the precision (HALF_MATH
 *            is ignored): a recurrence would compound half rounding over the time steps.
 * Options    ACT_F0 ACT_G0 ACT_H0 / ACT_F1 ACT_G1 ACT_H1: activation codes of directions 0 and 1
 *            (0 Sigmoid, 1 Tanh, 2 Relu); CLIP (0/1): clamp the pre-activations to [-clip, clip];
 *            INPUT_FORGET (LSTM); LBR (GRU linear_before_reset); RB (*_steps): batch rows
 *            per work-group (default 1).
 * Assumes    rnn_project: global sizes multiples of 16 (the host rounds up), local 16 x 16.
 *            *_steps: global dirs * ceil(batch / RB) * L, local L (any L >= 1).
 */
#include "storage.clh"

#ifndef H0_HALF
#define H0_HALF 0
#endif
#ifndef C0_HALF
#define C0_HALF 0
#endif
#ifndef YH_HALF
#define YH_HALF 0
#endif
#ifndef YC_HALF
#define YC_HALF 0
#endif
#define H0_T CAT(ST_T_, H0_HALF)
#define C0_T CAT(ST_T_, C0_HALF)
#define YH_T CAT(ST_T_, YH_HALF)
#define YC_T CAT(ST_T_, YC_HALF)

#ifndef CLIP
#define CLIP 0
#endif
#ifndef INPUT_FORGET
#define INPUT_FORGET 0
#endif
#ifndef LBR
#define LBR 1
#endif
#ifndef ACT_F0
#define ACT_F0 0
#define ACT_G0 1
#define ACT_H0 1
#endif
#ifndef ACT_F1
#define ACT_F1 ACT_F0
#define ACT_G1 ACT_G0
#define ACT_H1 ACT_H0
#endif

#define TS 16

#ifndef RB
#define RB 1
#endif

__kernel void rnn_project(__global const X_T *x, int xs_t, int xs_b, int batch,
                          __global const float *wt, __global const float *bias, __global float *g,
                          int m, int n, int k)
{
    __local float at[TS][TS], bt[TS][TS];
    const int lx = get_local_id(0), ly = get_local_id(1);
    const int col = get_group_id(0) * TS + lx, row = get_group_id(1) * TS + ly;
    /* Row r of A is (t, b) = (r / batch, r % batch); X is read through its strides. */
    const long a_base = row < m ? (long)(row / batch) * xs_t + (long)(row % batch) * xs_b : 0;
    float sum = 0.0f;
    for (int k0 = 0; k0 < k; k0 += TS) {
        /* at[rr][kk] = A(tile row rr, k0 + kk); bt[kk][cc] = Wt[k0 + kk][tile col cc]. */
        at[ly][lx] = row < m && k0 + lx < k ? LOAD_X(x, a_base + k0 + lx) : 0.0f;
        bt[ly][lx] = col < n && k0 + ly < k ? wt[(long)(k0 + ly) * n + col] : 0.0f;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < TS; kk++)
            sum += at[ly][kk] * bt[kk][lx];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (row < m && col < n) g[(long)row * n + col] = sum + bias[col];
}

static float activate(int code, float v)
{
    if (code == 0) return 1.0f / (1.0f + exp(-v));
    if (code == 1) return tanh(v);
    return fmax(v, 0.0f);
}

static float clipped(float v, float clip)
{
    return CLIP ? clamp(v, -clip, clip) : v;
}

/* Arguments common to both cells, after the cell's own weights:
 *   h0 / c0       initial states (has_h0 / has_c0: present, else zeros);
 *   ws, g_off     the workspace: G (rows of dirs * gates * hidden) at 0, the state at g_off;
 *   y, yh, yc     outputs (has_*: written);
 *   seq, batch, hidden, reverse (direction 0 runs backwards);
 *   y_t, y_d, y_b Y's strides over time, direction, batch row (the unit's stride is 1);
 *   s_d, s_b      the same for initial and final states. */
#define RNN_ARGS                                                                                   \
    __global const H0_T *h0, int has_h0, __global const C0_T *c0, int has_c0, __global float *ws,  \
        int g_off, __global Y_T *y, int has_y, __global YH_T *yh, int has_yh, __global YC_T *yc,   \
        int has_yc, int seq, int batch, int hidden, int reverse, int y_t, int y_d, int y_b,        \
        int s_d, int s_b, float clip

/* The work-group's batch rows: group g takes rows b0 .. b0 + rows - 1 of direction d. Rows
 * past the batch (the last block's, when RB does not divide it) alias the block's last row:
 * their reads stay in bounds and their results are never stored. off[q] is row q's offset in
 * units of a state block (4 * hidden floats), which is also its offset in rows of G. */
#define ROW_BLOCK(batch)                                                                           \
    const int blocks = (batch + RB - 1) / RB;                                                      \
    const int d = get_group_id(0) / blocks, b0 = get_group_id(0) % blocks * RB;                    \
    const int rows = min(RB, batch - b0), dirs = get_num_groups(0) / blocks;                       \
    int off[RB];                                                                                   \
    for (int q = 0; q < RB; q++)                                                                   \
        off[q] = min(q, rows - 1);

__kernel void lstm_steps(__global const float *rt, __global const float *peep, RNN_ARGS)
{
    const int L = get_local_size(0), lid = get_local_id(0);
    ROW_BLOCK(batch)
    const int G4 = 4 * hidden, N = G4 * dirs;
    const bool backwards = d == 1 || reverse;
    const int af = d ? ACT_F1 : ACT_F0, ag = d ? ACT_G1 : ACT_G0, ah = d ? ACT_H1 : ACT_H0;
    /* Row q's state: state + off[q] * 4 * hidden; h ping, h pong, c. */
    __global float *state = ws + g_off + (long)(d * batch + b0) * 4 * hidden;
    __global const float *rd = rt + (long)d * hidden * G4;
    __global const float *pd = peep + d * 3 * hidden;
    for (int q = 0; q < rows; q++) {
        const long s0 = (long)d * s_d + (long)(b0 + q) * s_b;
        __global float *st = state + (long)q * 4 * hidden;
        for (int j = lid; j < hidden; j += L) {
            st[j] = has_h0 ? CAT(ST_LD_, H0_HALF)(h0, s0 + j) : 0.0f;
            st[2 * hidden + j] = has_c0 ? CAT(ST_LD_, C0_HALF)(c0, s0 + j) : 0.0f;
        }
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    int cur = 0;
    for (int s = 0; s < seq; s++) {
        const int t = backwards ? seq - 1 - s : s;
        __global const float *gr = ws + (long)(t * batch + b0) * N + d * G4;
        __global const float *hp = state + cur * hidden;
        for (int j = lid; j < hidden; j += L) {
            float gi[RB], go[RB], gf[RB], gc[RB];
            for (int q = 0; q < RB; q++) {
                __global const float *gq = gr + (long)off[q] * N;
                gi[q] = gq[j];
                go[q] = gq[hidden + j];
                gf[q] = gq[2 * hidden + j];
                gc[q] = gq[3 * hidden + j];
            }
            /* Each weight is read once for the RB rows; per row the products are added in the
             * order k = 0, 1, ... as with one row per group, so the results do not depend on RB. */
            __global const float *r = rd + j;
            for (int k = 0; k < hidden; k++, r += G4) {
                const float ri = r[0], ro = r[hidden], rf = r[2 * hidden], rc = r[3 * hidden];
                for (int q = 0; q < RB; q++) {
                    const float hk = hp[(long)off[q] * G4 + k];
                    gi[q] += ri * hk;
                    go[q] += ro * hk;
                    gf[q] += rf * hk;
                    gc[q] += rc * hk;
                }
            }
            for (int q = 0; q < rows; q++) {
                __global float *st = state + (long)q * G4;
                const float cp = st[2 * hidden + j];
                const float i = activate(af, clipped(gi[q] + pd[j] * cp, clip));
#if INPUT_FORGET
                const float f = 1.0f - i;
#else
                const float f = activate(af, clipped(gf[q] + pd[2 * hidden + j] * cp, clip));
#endif
                const float c = f * cp + i * activate(ag, clipped(gc[q], clip));
                const float o = activate(af, clipped(go[q] + pd[hidden + j] * c, clip));
                const float h = o * activate(ah, c);
                st[2 * hidden + j] = c;
                st[(1 - cur) * hidden + j] = h;
                if (has_y) STORE_Y(h, y, (long)t * y_t + (long)d * y_d + (long)(b0 + q) * y_b + j);
            }
        }
        barrier(CLK_GLOBAL_MEM_FENCE);
        cur = 1 - cur;
    }
    for (int q = 0; q < rows; q++) {
        const long s0 = (long)d * s_d + (long)(b0 + q) * s_b;
        __global const float *st = state + (long)q * G4;
        for (int j = lid; j < hidden; j += L) {
            if (has_yh) CAT(ST_ST_, YH_HALF)(st[cur * hidden + j], yh, s0 + j);
            if (has_yc) CAT(ST_ST_, YC_HALF)(st[2 * hidden + j], yc, s0 + j);
        }
    }
}

/* rbh: per direction, the recurrent bias of the h gate, which linear_before_reset=1 adds inside
 * the reset (r (.) (R_h h + Rb_h)); with linear_before_reset=0 it is folded into G. */
__kernel void gru_steps(__global const float *rt, __global const float *rbh, RNN_ARGS)
{
    const int L = get_local_size(0), lid = get_local_id(0);
    ROW_BLOCK(batch)
    const int G3 = 3 * hidden, N = G3 * dirs, S = 4 * hidden;
    const bool backwards = d == 1 || reverse;
    const int af = d ? ACT_F1 : ACT_F0, ag = d ? ACT_G1 : ACT_G0;
    /* Row q's state: state + off[q] * S; h ping, h pong, z, r (.) h_{t-1}. */
    __global float *state = ws + g_off + (long)(d * batch + b0) * S;
    __global const float *rd = rt + (long)d * hidden * G3;
    __global const float *bd = rbh + d * hidden;
    for (int q = 0; q < rows; q++) {
        const long s0 = (long)d * s_d + (long)(b0 + q) * s_b;
        for (int j = lid; j < hidden; j += L)
            state[(long)q * S + j] = has_h0 ? CAT(ST_LD_, H0_HALF)(h0, s0 + j) : 0.0f;
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    int cur = 0;
    for (int s = 0; s < seq; s++) {
        const int t = backwards ? seq - 1 - s : s;
        __global const float *gr = ws + (long)(t * batch + b0) * N + d * G3;
        __global const float *hp = state + cur * hidden;
        for (int j = lid; j < hidden; j += L) {
            float gz[RB], gg[RB], gh[RB];
            for (int q = 0; q < RB; q++) {
                gz[q] = gr[(long)off[q] * N + j];
                gg[q] = gr[(long)off[q] * N + hidden + j];
                gh[q] = 0.0f;
            }
            /* As in lstm_steps: one weight read for RB rows, each row's sums in k order. */
            __global const float *r = rd + j;
            for (int k = 0; k < hidden; k++, r += G3) {
                const float rz = r[0], rg = r[hidden];
#if LBR
                const float rh = r[2 * hidden];
#endif
                for (int q = 0; q < RB; q++) {
                    const float hk = hp[(long)off[q] * S + k];
                    gz[q] += rz * hk;
                    gg[q] += rg * hk;
#if LBR
                    gh[q] += rh * hk;
#endif
                }
            }
            for (int q = 0; q < rows; q++) {
                __global float *st = state + (long)q * S;
                __global const float *gq = gr + (long)q * N;
                const float z = activate(af, clipped(gz[q], clip));
                const float reset = activate(af, clipped(gg[q], clip));
#if LBR
                const float hh =
                    activate(ag, clipped(gq[2 * hidden + j] + reset * (gh[q] + bd[j]), clip));
                const float h = (1.0f - z) * hh + z * st[cur * hidden + j];
                st[(1 - cur) * hidden + j] = h;
                if (has_y) STORE_Y(h, y, (long)t * y_t + (long)d * y_d + (long)(b0 + q) * y_b + j);
#else
                st[2 * hidden + j] = z;
                st[3 * hidden + j] = reset * st[cur * hidden + j];
#endif
            }
        }
#if !LBR
        /* The h gate multiplies R_h by r (.) h_{t-1} of every unit. */
        barrier(CLK_GLOBAL_MEM_FENCE);
        for (int j = lid; j < hidden; j += L) {
            float gh[RB];
            for (int q = 0; q < RB; q++)
                gh[q] = gr[(long)off[q] * N + 2 * hidden + j];
            __global const float *r = rd + 2 * hidden + j;
            for (int k = 0; k < hidden; k++, r += G3) {
                const float rk = r[0];
                for (int q = 0; q < RB; q++)
                    gh[q] += rk * state[(long)off[q] * S + 3 * hidden + k];
            }
            for (int q = 0; q < rows; q++) {
                __global float *st = state + (long)q * S;
                const float z = st[2 * hidden + j];
                const float hh = activate(ag, clipped(gh[q], clip));
                const float h = (1.0f - z) * hh + z * st[cur * hidden + j];
                st[(1 - cur) * hidden + j] = h;
                if (has_y) STORE_Y(h, y, (long)t * y_t + (long)d * y_d + (long)(b0 + q) * y_b + j);
            }
        }
#endif
        barrier(CLK_GLOBAL_MEM_FENCE);
        cur = 1 - cur;
    }
    for (int q = 0; q < rows; q++) {
        const long s0 = (long)d * s_d + (long)(b0 + q) * s_b; /* c0, yc: unused (LSTM only) */
        for (int j = lid; j < hidden; j += L)
            if (has_yh) CAT(ST_ST_, YH_HALF)(state[(long)q * S + cur * hidden + j], yh, s0 + j);
    }
}

/* ---- CPU-style variants: hidden units in float16 vectors, one work-item per work-group ----
 *
 * Algorithm  rnn_project_cpu  the same GEMM as rnn_project, each work-item PR rows x 16 PV
 *                             columns in registers (the weight vectors of a k serve PR rows).
 *            lstm_steps_cpu   the recurrence of one direction and RB batch rows in one
 *            gru_steps_cpu    work-item, so no step needs a barrier: for each panel of 16 PW
 *                             units and each gate, the recurrent products of the RB rows
 *                             accumulate in RB x PW float16 registers (add_products: each
 *                             weight vector serves RB rows, each h_{t-1}[k] PW vectors) and are
 *                             written over G's slice of that gate (it is read once, at this
 *                             step); then the cell updates the panel's units of every row 16 at
 *                             a time.
 * Layout     units per gate are padded to UP = hidden rounded up to a panel (16 PW): G rows of
 *            dirs * gates * UP floats, per (direction, batch row) a state block of 4 * UP
 *            (h ping, h pong, c or z, spare or r (.) h); Rp [dirs][gates][UP / (16 PW)][hidden]
 *            [16 PW] (R transposed in panels, each streamed contiguously over k); the
 *            projection's weights [input][dirs * gates * UP], bias, peepholes and Rb_h padded
 *            with zeros. Padding lanes therefore compute zeros and are never stored to Y, Y_h,
 *            Y_c; the products run over the hidden (not padded) units of h_{t-1}.
 * Options    as above, plus PR and PV (rnn_project_cpu: rows and float16 column vectors per
 *            work-item, default 8 and 1) and PW (*_steps_cpu: float16 vectors per panel, 1 or
 *            2, default 1).
 * Assumes    rnn_project_cpu: global (n / (16 PV), ceil(m / PR)), n a multiple of 16 PV.
 *            *_steps_cpu: global dirs * ceil(batch / RB), local 1.
 */
#ifndef PR
#define PR 8
#endif
#ifndef PV
#define PV 1
#endif
#ifndef PW
#define PW 1
#endif
#define PANEL_UNITS (16 * PW)
#define UNITS(hidden) (((hidden) + PANEL_UNITS - 1) / PANEL_UNITS * PANEL_UNITS)

__kernel void rnn_project_cpu(__global const X_T *x, int xs_t, int xs_b, int batch,
                              __global const float *wt, __global const float *bias,
                              __global float *g, int m, int n, int k)
{
    const int c0 = get_global_id(0) * 16 * PV, r0 = get_global_id(1) * PR;
    if (c0 >= n || r0 >= m) return;
    __global const X_T *a[PR];
    float16 acc[PR][PV];
#pragma unroll
    for (int q = 0; q < PR; q++) {
        const int r = min(r0 + q, m - 1);
        a[q] = x + (long)(r / batch) * xs_t + (long)(r % batch) * xs_b;
#pragma unroll
        for (int v = 0; v < PV; v++)
            acc[q][v] = 0.0f;
    }
    __global const float *w = wt + c0;
    for (int kk = 0; kk < k; kk++, w += n) {
        float16 wk[PV];
#pragma unroll
        for (int v = 0; v < PV; v++)
            wk[v] = vload16(v, w);
#pragma unroll
        for (int q = 0; q < PR; q++) {
            const float xq = LOAD_X(a[q], kk);
#pragma unroll
            for (int v = 0; v < PV; v++)
                acc[q][v] = fma((float16)xq, wk[v], acc[q][v]);
        }
    }
    for (int q = 0; q < PR && r0 + q < m; q++)
        for (int v = 0; v < PV; v++)
            vstore16(acc[q][v] + vload16(v, bias + c0), 0, g + (long)(r0 + q) * n + c0 + 16 * v);
}

static float16 activate16(int code, float16 v)
{
    if (code == 0) return 1.0f / (1.0f + exp(-v));
    if (code == 1) return tanh(v);
    return fmax(v, 0.0f);
}

static float16 clipped16(float16 v, float clip)
{
    return CLIP ? clamp(v, -clip, clip) : v;
}

/* dst[q] = src[q] + sum_k w[k] * h_q[k] for the RB rows q (row q at off[q]), 16 units: src and
 * dst rows `stride` floats apart (src 0: from zero), h rows h_stride apart. Rows past `rows`
 * are computed on copies and not stored. Per row the products are added in k order. */
static void add_products(__global const float *src, __global float *dst, int stride,
                         __global const float *w, __global const float *h, int h_stride,
                         const int *off, int rows, int hidden)
{
    float16 acc[RB][PW];
    __global const float *hq[RB];
#pragma unroll
    for (int q = 0; q < RB; q++) {
#pragma unroll
        for (int v = 0; v < PW; v++)
            acc[q][v] = src ? vload16(v, src + (long)off[q] * stride) : (float16)0.0f;
        hq[q] = h + (long)off[q] * h_stride;
    }
    for (int k = 0; k < hidden; k++) {
        float16 wk[PW];
#pragma unroll
        for (int v = 0; v < PW; v++)
            wk[v] = vload16(k * PW + v, w);
#pragma unroll
        for (int q = 0; q < RB; q++) {
            const float16 hk = (float16)hq[q][k];
#pragma unroll
            for (int v = 0; v < PW; v++)
                acc[q][v] = fma(wk[v], hk, acc[q][v]);
        }
    }
    for (int q = 0; q < rows; q++)
        for (int v = 0; v < PW; v++)
            vstore16(acc[q][v], v, dst + (long)q * stride);
}

/* Stores the units j .. j + 15 of v that exist (j + l < hidden) to p[at + l]. */
#define STORE_UNITS(store, v, p, at, j, hidden)                                                    \
    do {                                                                                           \
        float lanes_[16];                                                                          \
        vstore16((v), 0, lanes_);                                                                  \
        for (int l_ = 0; l_ < 16 && (j) + l_ < (hidden); l_++)                                     \
            store(lanes_[l_], p, (at) + l_);                                                       \
    } while (0)

/* The initial state of the RB rows: slot `at` of each row's block from src (or zeros). */
#define LOAD_STATE(load, src, has, at)                                                             \
    for (int q = 0; q < rows; q++) {                                                               \
        const long s0 = (long)d * s_d + (long)(b0 + q) * s_b;                                      \
        for (int j = 0; j < UP; j++)                                                               \
            state[(long)q * S + (at) + j] = has && j < hidden ? load(src, s0 + j) : 0.0f;          \
    }

__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
lstm_steps_cpu(__global const float *rp, __global const float *peep, RNN_ARGS)
{
    ROW_BLOCK(batch)
    const int UP = UNITS(hidden), S = 4 * UP, G4 = 4 * UP, N = G4 * dirs, panels = UP / PANEL_UNITS;
    const bool backwards = d == 1 || reverse;
    const int af = d ? ACT_F1 : ACT_F0, ag = d ? ACT_G1 : ACT_G0, ah = d ? ACT_H1 : ACT_H0;
    __global float *state = ws + g_off + (long)(d * batch + b0) * S;
    __global const float *rd = rp + (long)d * G4 * hidden;
    __global const float *pd = peep + d * 3 * UP;
    LOAD_STATE(CAT(ST_LD_, H0_HALF), h0, has_h0, 0)
    LOAD_STATE(CAT(ST_LD_, C0_HALF), c0, has_c0, 2 * UP)
    int cur = 0;
    for (int s = 0; s < seq; s++) {
        const int t = backwards ? seq - 1 - s : s;
        __global float *gr = ws + (long)(t * batch + b0) * N + d * G4;
        __global const float *hp = state + cur * UP;
        for (int pj = 0; pj < panels; pj++) {
            const int j0 = pj * PANEL_UNITS;
            for (int gate = 0; gate < 4; gate++) {
                __global float *gg = gr + gate * UP + j0;
                add_products(gg, gg, N, rd + (long)(gate * panels + pj) * hidden * PANEL_UNITS, hp,
                             S, off, rows, hidden);
            }
            for (int q = 0; q < rows; q++)
                for (int v = 0; v < PW; v++) {
                    const int j = j0 + 16 * v;
                    __global const float *gq = gr + (long)q * N + j;
                    __global float *st = state + (long)q * S;
                    const float16 cp = vload16(0, st + 2 * UP + j);
                    const float16 i =
                        activate16(af, clipped16(vload16(0, gq) + vload16(0, pd + j) * cp, clip));
#if INPUT_FORGET
                    const float16 f = 1.0f - i;
#else
                    const float16 f = activate16(
                        af, clipped16(vload16(0, gq + 2 * UP) + vload16(0, pd + 2 * UP + j) * cp,
                                      clip));
#endif
                    const float16 c =
                        f * cp + i * activate16(ag, clipped16(vload16(0, gq + 3 * UP), clip));
                    const float16 o = activate16(
                        af, clipped16(vload16(0, gq + UP) + vload16(0, pd + UP + j) * c, clip));
                    const float16 h = o * activate16(ah, c);
                    vstore16(c, 0, st + 2 * UP + j);
                    vstore16(h, 0, st + (1 - cur) * UP + j);
                    if (has_y)
                        STORE_UNITS(CAT(ST_ST_, Y_HALF), h, y,
                                    (long)t * y_t + (long)d * y_d + (long)(b0 + q) * y_b + j, j,
                                    hidden);
                }
        }
        cur = 1 - cur;
    }
    for (int q = 0; q < rows; q++) {
        const long s0 = (long)d * s_d + (long)(b0 + q) * s_b;
        __global const float *st = state + (long)q * S;
        for (int j = 0; j < hidden; j++) {
            if (has_yh) CAT(ST_ST_, YH_HALF)(st[cur * UP + j], yh, s0 + j);
            if (has_yc) CAT(ST_ST_, YC_HALF)(st[2 * UP + j], yc, s0 + j);
        }
    }
}

/* GRU: with linear_before_reset the h gate's products R_h h_{t-1} go to the state's third
 * slot (they are multiplied by r after Rb_h is added); without it, a first pass over the
 * panels computes z (third slot) and r (.) h_{t-1} (fourth slot) of every unit, and a second
 * adds R_h (r (.) h_{t-1}) to G's h gate. */
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
gru_steps_cpu(__global const float *rp, __global const float *rbh, RNN_ARGS)
{
    ROW_BLOCK(batch)
    const int UP = UNITS(hidden), S = 4 * UP, G3 = 3 * UP, N = G3 * dirs, panels = UP / PANEL_UNITS;
    const bool backwards = d == 1 || reverse;
    const int af = d ? ACT_F1 : ACT_F0, ag = d ? ACT_G1 : ACT_G0;
    __global float *state = ws + g_off + (long)(d * batch + b0) * S;
    __global const float *rd = rp + (long)d * G3 * hidden;
    __global const float *bd = rbh + d * UP;
    LOAD_STATE(CAT(ST_LD_, H0_HALF), h0, has_h0, 0)
    int cur = 0;
    for (int s = 0; s < seq; s++) {
        const int t = backwards ? seq - 1 - s : s;
        __global float *gr = ws + (long)(t * batch + b0) * N + d * G3;
        __global const float *hp = state + cur * UP;
        for (int pj = 0; pj < panels; pj++) {
            const int j0 = pj * PANEL_UNITS;
            for (int gate = 0; gate < 2; gate++) {
                __global float *gg = gr + gate * UP + j0;
                add_products(gg, gg, N, rd + (long)(gate * panels + pj) * hidden * PANEL_UNITS, hp,
                             S, off, rows, hidden);
            }
#if LBR
            add_products(0, state + 2 * UP + j0, S,
                         rd + (long)(2 * panels + pj) * hidden * PANEL_UNITS, hp, S, off, rows,
                         hidden);
#endif
            for (int q = 0; q < rows; q++)
                for (int v = 0; v < PW; v++) {
                    const int j = j0 + 16 * v;
                    __global const float *gq = gr + (long)q * N + j;
                    __global float *st = state + (long)q * S;
                    const float16 z = activate16(af, clipped16(vload16(0, gq), clip));
                    const float16 reset = activate16(af, clipped16(vload16(0, gq + UP), clip));
                    const float16 hprev = vload16(0, st + cur * UP + j);
#if LBR
                    const float16 hh = activate16(
                        ag,
                        clipped16(vload16(0, gq + 2 * UP) +
                                      reset * (vload16(0, st + 2 * UP + j) + vload16(0, bd + j)),
                                  clip));
                    const float16 h = (1.0f - z) * hh + z * hprev;
                    vstore16(h, 0, st + (1 - cur) * UP + j);
                    if (has_y)
                        STORE_UNITS(CAT(ST_ST_, Y_HALF), h, y,
                                    (long)t * y_t + (long)d * y_d + (long)(b0 + q) * y_b + j, j,
                                    hidden);
#else
                    vstore16(z, 0, st + 2 * UP + j);
                    vstore16(reset * hprev, 0, st + 3 * UP + j);
#endif
                }
        }
#if !LBR
        for (int pj = 0; pj < panels; pj++) {
            const int j0 = pj * PANEL_UNITS;
            __global float *gg = gr + 2 * UP + j0;
            add_products(gg, gg, N, rd + (long)(2 * panels + pj) * hidden * PANEL_UNITS,
                         state + 3 * UP, S, off, rows, hidden);
            for (int q = 0; q < rows; q++)
                for (int v = 0; v < PW; v++) {
                    const int j = j0 + 16 * v;
                    __global float *st = state + (long)q * S;
                    const float16 z = vload16(0, st + 2 * UP + j);
                    const float16 hh =
                        activate16(ag, clipped16(vload16(0, gr + (long)q * N + 2 * UP + j), clip));
                    const float16 h = (1.0f - z) * hh + z * vload16(0, st + cur * UP + j);
                    vstore16(h, 0, st + (1 - cur) * UP + j);
                    if (has_y)
                        STORE_UNITS(CAT(ST_ST_, Y_HALF), h, y,
                                    (long)t * y_t + (long)d * y_d + (long)(b0 + q) * y_b + j, j,
                                    hidden);
                }
        }
#endif
        cur = 1 - cur;
    }
    for (int q = 0; q < rows; q++) {
        const long s0 = (long)d * s_d + (long)(b0 + q) * s_b; /* c0, yc: unused (LSTM only) */
        for (int j = 0; j < hidden; j++)
            if (has_yh) CAT(ST_ST_, YH_HALF)(state[(long)q * S + cur * UP + j], yh, s0 + j);
    }
}
