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
                          __global const float *wt, __global const float *bias,
                          __global float *g, int m, int n, int k)
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
                if (has_y)
                    STORE_Y(h, y, (long)t * y_t + (long)d * y_d + (long)(b0 + q) * y_b + j);
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
                if (has_y)
                    STORE_Y(h, y, (long)t * y_t + (long)d * y_d + (long)(b0 + q) * y_b + j);
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
                if (has_y)
                    STORE_Y(h, y, (long)t * y_t + (long)d * y_d + (long)(b0 + q) * y_b + j);
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
