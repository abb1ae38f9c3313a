/* scores.cl: per-work-group partial sums of the score-based metrics (top-k accuracy, log loss,
 * Brier score, calibration bins) over one batch of score rows.
 *
 * Algorithm  each work-group owns rows [g * rows_per_group, (g + 1) * rows_per_group); its
 *            work-item i takes rows begin + i, begin + i + SCORE_GROUP, ... and accumulates
 *            them in private sums, which a tree in local memory then adds in a fixed order, so
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
#define SCORE_GROUP 64
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

/* Adds one row's probability view: P[y], the sum of P^2, the confidence (max P) and whether
 * the first maximum is the true class. */
inline void add_candidate(float *f, uint *u, uint q, float p_true, float sum_sq, float confidence,
                          bool correct, __global const float *bounds)
{
    float *fq = f + q * CANDIDATE_FLOATS;
    uint *uq = u + 2 + q * CANDIDATE_UINTS;
    fq[0] -= log(clamp(p_true, LOG_LOSS_EPS, 1.0f));
    fq[1] += fmax(sum_sq - 2.0f * p_true + 1.0f, 0.0f); /* >= 0, also after rounding */
    int b = -1;
    for (int i = 0; i <= SCORE_BINS; i++)
        b += bounds[i] <= confidence;
    b = clamp(b, 0, SCORE_GROUPS - 1);
    fq[2 + b] += confidence;
    uq[b] += 1;
    uq[SCORE_GROUPS + b] += correct;
}

inline void add_row(__global const float *row, uint y, uint c, uint k, float *f, uint *u,
                    __global const float *bounds)
{
    float s_true = row[y], top = row[0], low = row[0], sum = 0.0f, sum_sq = 0.0f;
    uint arg = 0, ahead = 0;
    for (uint j = 0; j < c; j++) {
        float s = row[j];
        if (s > top) {
            top = s;
            arg = j;
        }
        low = fmin(low, s);
        sum += s;
        sum_sq += s * s;
        /* Ranked by score, equal scores with the higher class first: scikit-learn's stable
         * ascending sort, reversed. */
        ahead += s > s_true || (s == s_true && j > y);
    }
    u[0] += ahead < k;
    bool probabilities = low >= 0.0f && fabs(sum - 1.0f) <= SUM_TOLERANCE;
    u[1] += !probabilities;
    add_candidate(f, u, 0, s_true, sum_sq, top, arg == y, bounds);

    float z = 0.0f, z_sq = 0.0f;
    for (uint j = 0; j < c; j++) {
        float e = exp(row[j] - top);
        z += e;
        z_sq += e * e;
    }
    add_candidate(f, u, 1, exp(s_true - top) / z, z_sq / (z * z), 1.0f / z, arg == y, bounds);
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
    for (uint r = begin + lid; r < end; r += SCORE_GROUP)
        add_row(scores + (size_t)r * c, (uint)labels[r], c, k, f, u, bounds);

    __local float lf[SCORE_GROUP];
    __local uint lu[SCORE_GROUP];
    for (int v = 0; v < SCORE_FLOATS; v++) {
        lf[lid] = f[v];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint stride = SCORE_GROUP / 2; stride > 0; stride >>= 1) {
            if (lid < stride) lf[lid] += lf[lid + stride];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        if (lid == 0) fsum[(size_t)g * SCORE_FLOATS + v] = lf[0];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int v = 0; v < SCORE_UINTS; v++) {
        lu[lid] = u[v];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint stride = SCORE_GROUP / 2; stride > 0; stride >>= 1) {
            if (lid < stride) lu[lid] += lu[lid + stride];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        if (lid == 0) usum[(size_t)g * SCORE_UINTS + v] = lu[0];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}
