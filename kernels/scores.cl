/* scores.cl: per-work-group partial sums of the score-based metrics (top-k accuracy, log loss,
 * Brier score, calibration bins) over one batch of score rows.
 *
 * Algorithm  each work-group owns rows [g * rows_per_group, (g + 1) * rows_per_group); its
 *            work-item i takes rows begin + i, begin + i + SCORE_GROUP, ... and accumulates
 *            them in private sums (a row SCORE_VECTOR classes at a time in vector lanes), which
 *            local memory then gathers and one work-item per slot adds in work-item order, so
 *            the partials do not depend on scheduling. Both candidate probabilities are
 *            accumulated in the same pass: the scores as given, and their softmax; the host
 *            picks one once it knows whether every row of the run was a probability row.
 * Layout     scores: float [n][c]; labels: int [n] (checked on the host: 0 <= y < c);
 *            bounds: float [SCORE_BINS + 1], the calibration bin boundaries as the host computes
 *            them; fsum: float [groups][SCORE_FLOATS]; usum: uint [groups][SCORE_UINTS].
 *            Float slot of candidate q (0 as given, 1 softmax): q * (2 + SCORE_GROUPS) + 0 log
 *            loss, + 1 Brier, + 2 + b confidence of group b. Uint slots: 0 top-k hits, 1 rows
 *            that are not probabilities, 2 + q * 2 * SCORE_GROUPS + b count of group b,
 *            + SCORE_GROUPS + b correct rows of group b.
 * Groups     b = (number of bounds <= confidence) - 1: bins [bounds[b], bounds[b + 1]) and a
 *            last group for a confidence of exactly 1 (or above).
 */
#ifndef SCORE_GROUP
#define SCORE_GROUP 64
#endif
/* Classes per vector step of a row: 8 or 16 (OpenCL's widths that hold a lane index). */
#ifndef SCORE_VECTOR
#define SCORE_VECTOR 8
#endif
#if SCORE_VECTOR == 16
#define floatV float16
#define intV int16
#define VLOAD vload16
#define VSTORE vstore16
#define LANE_INDICES 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
#else
#define floatV float8
#define intV int8
#define VLOAD vload8
#define VSTORE vstore8
#define LANE_INDICES 0, 1, 2, 3, 4, 5, 6, 7
#endif
#define SCORE_BINS 15
#define SCORE_GROUPS (SCORE_BINS + 1)
#define CANDIDATE_FLOATS (2 + SCORE_GROUPS)
#define CANDIDATE_UINTS (2 * SCORE_GROUPS)
#define SCORE_FLOATS (2 * CANDIDATE_FLOATS)
#define SCORE_UINTS (2 + 2 * CANDIDATE_UINTS)
/* The clipping of the log loss: float64's machine epsilon (1 - it rounds to 1 in float). */
#define LOG_LOSS_EPS 2.220446049250313e-16f
/* How far a row's sum may be from 1 for the row to count as probabilities. */
#define SUM_TOLERANCE 1e-4f

/* The clipped P[y] of each candidate for the last rows, whose logs are taken SCORE_VECTOR rows
 * at a time: one vector log instead of a scalar log per row (on a CPU the scalar logs cost as
 * much as the rest of a 10-class row). */
typedef struct pending_logs {
    float p[2][SCORE_VECTOR];
    uint n;
} pending_logs;

/* Adds the pending rows' -log P[y] to the log losses (a partly filled batch is padded with
 * P = 1, whose log is 0). */
static inline void flush_logs(pending_logs *logs, float *f)
{
    for (int q = 0; q < 2; q++) {
        for (uint i = logs->n; i < SCORE_VECTOR; i++)
            logs->p[q][i] = 1.0f;
        float terms[SCORE_VECTOR];
        VSTORE(log(VLOAD(0, logs->p[q])), 0, terms);
        for (int l = 0; l < SCORE_VECTOR; l++)
            f[q * CANDIDATE_FLOATS] -= terms[l];
    }
    logs->n = 0;
}

/* Adds one row's probability view: P[y], the sum of P^2, the confidence (max P) and whether
 * the first maximum is the true class. The log loss term waits in `logs` (the caller flushes). */
static inline void add_candidate(float *f, uint *u, pending_logs *logs, uint q, float p_true,
                                 float sum_sq, float confidence, bool correct,
                                 __global const float *bounds)
{
    float *fq = f + q * CANDIDATE_FLOATS;
    uint *uq = u + 2 + q * CANDIDATE_UINTS;
    logs->p[q][logs->n] = clamp(p_true, LOG_LOSS_EPS, 1.0f);
    fq[1] += fmax(sum_sq - 2.0f * p_true + 1.0f, 0.0f); /* >= 0, also after rounding */
    int b = -1;
    for (int i = 0; i <= SCORE_BINS; i++)
        b += bounds[i] <= confidence;
    b = clamp(b, 0, SCORE_GROUPS - 1);
    fq[2 + b] += confidence;
    uq[b] += 1;
    uq[SCORE_GROUPS + b] += correct;
}

/* One row: the first pass finds the maximum (its first class), the minimum, the sum, the sum
 * of squares and how many classes rank ahead of the true one; the second sums the softmax's
 * terms. Both run SCORE_VECTOR classes at a time in vector lanes (the CPU's SIMD: exp and the
 * comparisons are the cost), then the remaining classes one by one; lanes are added in a
 * fixed order, so the sums do not depend on scheduling. */
static inline void add_row(__global const float *row, uint y, uint c, uint k, float *f, uint *u,
                           pending_logs *logs, __global const float *bounds)
{
    const float s_true = row[y];
    const intV lane = (intV)(LANE_INDICES);
    floatV top_v = (floatV)(row[0]), low_v = top_v, sum_v = 0.0f, sq_v = 0.0f;
    intV arg_v = 0, ahead_v = 0;
    uint vec_end = c / SCORE_VECTOR * SCORE_VECTOR;
    for (uint j = 0; j < vec_end; j += SCORE_VECTOR) {
        floatV s = VLOAD(0, row + j);
        intV index = lane + (int)j;
        intV greater = isgreater(s, top_v);
        top_v = select(top_v, s, greater);
        arg_v = select(arg_v, index, greater);
        low_v = fmin(low_v, s);
        sum_v += s;
        sq_v += s * s;
        /* Ranked by score, equal scores with the higher class first: scikit-learn's stable
         * ascending sort, reversed. (Vector comparisons give -1 for true.) */
        ahead_v -= isgreater(s, s_true) | (isequal(s, s_true) & (index > (int)y));
    }
    float tops[SCORE_VECTOR], lows[SCORE_VECTOR], sums[SCORE_VECTOR], sqs[SCORE_VECTOR];
    int args[SCORE_VECTOR], aheads[SCORE_VECTOR];
    VSTORE(top_v, 0, tops);
    VSTORE(arg_v, 0, args);
    VSTORE(low_v, 0, lows);
    VSTORE(sum_v, 0, sums);
    VSTORE(sq_v, 0, sqs);
    VSTORE(ahead_v, 0, aheads);
    /* The first maximum: the largest lane, ties by the lower class; each lane held its own
     * first maximum (every lane started at row[0], so a NaN there stays the maximum). */
    float top = tops[0], low = lows[0], sum = 0.0f, sum_sq = 0.0f;
    uint arg = (uint)args[0], ahead = 0;
    for (int l = 0; l < SCORE_VECTOR; l++) {
        if (tops[l] > top || (tops[l] == top && (uint)args[l] < arg)) {
            top = tops[l];
            arg = (uint)args[l];
        }
        low = fmin(low, lows[l]);
        sum += sums[l];
        sum_sq += sqs[l];
        ahead += aheads[l];
    }
    for (uint j = vec_end; j < c; j++) {
        float s = row[j];
        if (s > top) {
            top = s;
            arg = j;
        }
        low = fmin(low, s);
        sum += s;
        sum_sq += s * s;
        ahead += s > s_true || (s == s_true && j > y);
    }
    u[0] += ahead < k;
    bool probabilities = low >= 0.0f && fabs(sum - 1.0f) <= SUM_TOLERANCE;
    u[1] += !probabilities;
    add_candidate(f, u, logs, 0, s_true, sum_sq, top, arg == y, bounds);

    floatV z_v = 0.0f, z_sq_v = 0.0f;
    for (uint j = 0; j < vec_end; j += SCORE_VECTOR) {
        floatV e = exp(VLOAD(0, row + j) - top);
        z_v += e;
        z_sq_v += e * e;
    }
    VSTORE(z_v, 0, sums);
    VSTORE(z_sq_v, 0, sqs);
    float z = 0.0f, z_sq = 0.0f;
    for (int l = 0; l < SCORE_VECTOR; l++) {
        z += sums[l];
        z_sq += sqs[l];
    }
    for (uint j = vec_end; j < c; j++) {
        float e = exp(row[j] - top);
        z += e;
        z_sq += e * e;
    }
    add_candidate(f, u, logs, 1, exp(s_true - top) / z, z_sq / (z * z), 1.0f / z, arg == y,
                  bounds);
    if (++logs->n == SCORE_VECTOR) flush_logs(logs, f);
}

__kernel __attribute__((reqd_work_group_size(SCORE_GROUP, 1, 1))) void
score_partials(__global const float *scores, __global const int *labels, uint n, uint c, uint k,
               uint rows_per_group, __global const float *bounds, __global float *fsum,
               __global uint *usum)
{
    uint lid = get_local_id(0), g = get_group_id(0);
    float f[SCORE_FLOATS];
    uint u[SCORE_UINTS];
    for (int i = 0; i < SCORE_FLOATS; i++)
        f[i] = 0.0f;
    for (int i = 0; i < SCORE_UINTS; i++)
        u[i] = 0;
    uint begin = g * rows_per_group;
    uint end = min(n, begin + rows_per_group);
    pending_logs logs = {.n = 0};
    for (uint r = begin + lid; r < end; r += SCORE_GROUP)
        add_row(scores + (size_t)r * c, (uint)labels[r], c, k, f, u, &logs, bounds);
    flush_logs(&logs, f);

    /* Every work-item's sums to local memory, then work-item v adds slot v over the
     * work-items in order: one barrier instead of a barrier-separated tree per slot (on a CPU
     * each barrier is a pass over the work-items). */
    __local float lf[SCORE_GROUP][SCORE_FLOATS];
    __local uint lu[SCORE_GROUP][SCORE_UINTS];
    for (int v = 0; v < SCORE_FLOATS; v++)
        lf[lid][v] = f[v];
    for (int v = 0; v < SCORE_UINTS; v++)
        lu[lid][v] = u[v];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint v = lid; v < SCORE_FLOATS + SCORE_UINTS; v += SCORE_GROUP) {
        if (v < SCORE_FLOATS) {
            float total = 0.0f;
            for (int i = 0; i < SCORE_GROUP; i++)
                total += lf[i][v];
            fsum[(size_t)g * SCORE_FLOATS + v] = total;
        } else {
            uint total = 0, w = v - SCORE_FLOATS;
            for (int i = 0; i < SCORE_GROUP; i++)
                total += lu[i][w];
            usum[(size_t)g * SCORE_UINTS + w] = total;
        }
    }
}
