/* rnn.cl: ONNX LSTM and GRU, both device variants.
 *
 * Algorithm  rnn_project  the input projection of every time step and direction at once, one
 *                         GEMM: G[r][n] = sum_k X(r, k) Wt[k][n] + bias[n], row r = t * batch
 *                         + b, column n = d * gates * hidden + gate * hidden + j; the biases
 *                         that ONNX adds outside a reset (Wb + Rb) are folded into bias[n].
 *                         16 x 16 tiles through local memory, one output per work-item.
 *            lstm_steps   the recurrence: one work-group per (direction, batch row) loops over
 *            gru_steps    time; its work-items share the hidden units j = lid, lid + L, ...
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
 *            INPUT_FORGET (LSTM); LBR (GRU linear_before_reset).
 * Assumes    rnn_project: global sizes multiples of 16 (the host rounds up), local 16 x 16.
 *            *_steps: global dirs * batch * L, local L (any L >= 1).
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

__kernel void lstm_steps(__global const float *rt, __global const float *peep, RNN_ARGS)
{
    const int L = get_local_size(0), lid = get_local_id(0);
    const int d = get_group_id(0) / batch, b = get_group_id(0) % batch;
    const int G4 = 4 * hidden, N = G4 * get_num_groups(0) / batch;
    const bool backwards = d == 1 || reverse;
    const int af = d ? ACT_F1 : ACT_F0, ag = d ? ACT_G1 : ACT_G0, ah = d ? ACT_H1 : ACT_H0;
    __global float *state = ws + g_off + (long)(d * batch + b) * 4 * hidden;
    __global float *cs = state + 2 * hidden;
    __global const float *rd = rt + (long)d * hidden * G4;
    __global const float *pd = peep + d * 3 * hidden;
    const long s0 = (long)d * s_d + (long)b * s_b;
    for (int j = lid; j < hidden; j += L) {
        state[j] = has_h0 ? CAT(ST_LD_, H0_HALF)(h0, s0 + j) : 0.0f;
        cs[j] = has_c0 ? CAT(ST_LD_, C0_HALF)(c0, s0 + j) : 0.0f;
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    int cur = 0;
    for (int s = 0; s < seq; s++) {
        const int t = backwards ? seq - 1 - s : s;
        __global const float *gr = ws + (long)(t * batch + b) * N + d * G4;
        __global const float *hp = state + cur * hidden;
        __global float *hn = state + (1 - cur) * hidden;
        for (int j = lid; j < hidden; j += L) {
            float gi = gr[j], go = gr[hidden + j], gf = gr[2 * hidden + j], gc = gr[3 * hidden + j];
            __global const float *r = rd + j;
            for (int k = 0; k < hidden; k++, r += G4) {
                const float hk = hp[k];
                gi += r[0] * hk;
                go += r[hidden] * hk;
                gf += r[2 * hidden] * hk;
                gc += r[3 * hidden] * hk;
            }
            const float cp = cs[j];
            const float i = activate(af, clipped(gi + pd[j] * cp, clip));
#if INPUT_FORGET
            const float f = 1.0f - i;
#else
            const float f = activate(af, clipped(gf + pd[2 * hidden + j] * cp, clip));
#endif
            const float c = f * cp + i * activate(ag, clipped(gc, clip));
            const float o = activate(af, clipped(go + pd[hidden + j] * c, clip));
            const float h = o * activate(ah, c);
            cs[j] = c;
            hn[j] = h;
            if (has_y) STORE_Y(h, y, (long)t * y_t + (long)d * y_d + (long)b * y_b + j);
        }
        barrier(CLK_GLOBAL_MEM_FENCE);
        cur = 1 - cur;
    }
    for (int j = lid; j < hidden; j += L) {
        if (has_yh) CAT(ST_ST_, YH_HALF)(state[cur * hidden + j], yh, s0 + j);
        if (has_yc) CAT(ST_ST_, YC_HALF)(cs[j], yc, s0 + j);
    }
}

/* rbh: per direction, the recurrent bias of the h gate, which linear_before_reset=1 adds inside
 * the reset (r (.) (R_h h + Rb_h)); with linear_before_reset=0 it is folded into G. */
__kernel void gru_steps(__global const float *rt, __global const float *rbh, RNN_ARGS)
{
    const int L = get_local_size(0), lid = get_local_id(0);
    const int d = get_group_id(0) / batch, b = get_group_id(0) % batch;
    const int G3 = 3 * hidden, N = G3 * get_num_groups(0) / batch;
    const bool backwards = d == 1 || reverse;
    const int af = d ? ACT_F1 : ACT_F0, ag = d ? ACT_G1 : ACT_G0;
    __global float *state = ws + g_off + (long)(d * batch + b) * 4 * hidden;
    __global float *zs = state + 2 * hidden;
    __global float *rh = state + 3 * hidden;
    __global const float *rd = rt + (long)d * hidden * G3;
    __global const float *bd = rbh + d * hidden;
    const long s0 = (long)d * s_d + (long)b * s_b; /* c0, yc: unused (LSTM only) */
    for (int j = lid; j < hidden; j += L)
        state[j] = has_h0 ? CAT(ST_LD_, H0_HALF)(h0, s0 + j) : 0.0f;
    barrier(CLK_GLOBAL_MEM_FENCE);
    int cur = 0;
    for (int s = 0; s < seq; s++) {
        const int t = backwards ? seq - 1 - s : s;
        __global const float *gr = ws + (long)(t * batch + b) * N + d * G3;
        __global const float *hp = state + cur * hidden;
        __global float *hn = state + (1 - cur) * hidden;
        for (int j = lid; j < hidden; j += L) {
            float gz = gr[j], gg = gr[hidden + j], gh = 0.0f;
            __global const float *r = rd + j;
            for (int k = 0; k < hidden; k++, r += G3) {
                const float hk = hp[k];
                gz += r[0] * hk;
                gg += r[hidden] * hk;
#if LBR
                gh += r[2 * hidden] * hk;
#endif
            }
            const float z = activate(af, clipped(gz, clip));
            const float reset = activate(af, clipped(gg, clip));
#if LBR
            const float hh = activate(ag, clipped(gr[2 * hidden + j] + reset * (gh + bd[j]), clip));
            hn[j] = (1.0f - z) * hh + z * hp[j];
            if (has_y) STORE_Y(hn[j], y, (long)t * y_t + (long)d * y_d + (long)b * y_b + j);
#else
            zs[j] = z;
            rh[j] = reset * hp[j];
#endif
        }
#if !LBR
        /* The h gate multiplies R_h by r (.) h_{t-1} of every unit. */
        barrier(CLK_GLOBAL_MEM_FENCE);
        for (int j = lid; j < hidden; j += L) {
            float gh = gr[2 * hidden + j];
            __global const float *r = rd + 2 * hidden + j;
            for (int k = 0; k < hidden; k++, r += G3)
                gh += r[0] * rh[k];
            const float z = zs[j];
            const float hh = activate(ag, clipped(gh, clip));
            hn[j] = (1.0f - z) * hh + z * hp[j];
            if (has_y) STORE_Y(hn[j], y, (long)t * y_t + (long)d * y_d + (long)b * y_b + j);
        }
#endif
        barrier(CLK_GLOBAL_MEM_FENCE);
        cur = 1 - cur;
    }
    for (int j = lid; j < hidden; j += L)
        if (has_yh) CAT(ST_ST_, YH_HALF)(state[cur * hidden + j], yh, s0 + j);
}
