/* drift.cl: the confidence and entropy of every scores row, and its confidence bin, for
 * `cleval drift`; the device histogram (histogram.cl) then counts the bins.
 *
 * Algorithm  drift_confidence  one work-item per row, two passes over its W scores:
 *            pass 1  the maximum m, whether the row is usable (no NaN, no +Inf, some entry
 *                    above -Inf) and whether it is a probability vector (entries in [0, 1]
 *                    summing to 1 within PROB_TOLERANCE);
 *            pass 2  softmax: S = sum exp(s - m), confidence 1 / S, entropy
 *                    ln S - sum exp(s - m) (s - m) / S (no division by tiny probabilities);
 *                    as given: confidence m, entropy -sum s ln s (0 ln 0 = 0).
 *            Both variants are written, because "every row of the file is a probability
 *            vector" is known only after the last batch; the host keeps the one that applies,
 *            so each file is read once.
 *            + one read of the scores, exact bins against numpy's edges; - one work-item per
 *            row, uncoalesced on GPUs (the rows are short: W is the class count).
 * Layout     scores float [n][W] row-major; edges REAL [N_BINS + 1] (numpy.linspace(0, 1, 11),
 *            rounded up to float when REAL is float, so `conf >= edge` decides as numpy does
 *            for float inputs); outputs [n]: bins int (-1 for an unusable row), conf and
 *            entropy REAL, flags int (the flags below, and above them the row's count of NaN
 *            and infinite entries).
 * Assumes    n <= the global size; W >= 1.
 */
#ifdef cl_khr_fp64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
#ifndef DRIFT_FP64
#ifdef cl_khr_fp64
#define DRIFT_FP64 1 /* 1: confidences and entropies in double (numpy's precision) */
#else
#define DRIFT_FP64 0
#endif
#endif
#ifndef N_BINS
#define N_BINS 10
#endif
#ifndef PROB_TOLERANCE
#define PROB_TOLERANCE 1e-4
#endif

#if DRIFT_FP64
#define REAL double
#else
#define REAL float
#endif

#define FLAG_PROBABILITIES 1 /* the row is a probability vector */
#define FLAG_UNUSABLE 2      /* NaN, +Inf, or every entry -Inf: no confidence */
#define NONFINITE_SHIFT 2    /* flags >> NONFINITE_SHIFT: the row's NaN and infinite entries */

/* The bin of a confidence: b with edges[b] <= conf < edges[b + 1]; the last bin is closed and
 * values outside [0, 1] clamp to the end bins. */
static inline int bin_of(REAL conf, __global const REAL *edges)
{
    int b = 0;
    for (int e = 1; e < N_BINS; e++)
        b += conf >= edges[e];
    return b;
}

__kernel void drift_confidence(__global const float *scores, uint n, uint width,
                               __global const REAL *edges, __global int *bin_softmax,
                               __global int *bin_given, __global REAL *conf_softmax,
                               __global REAL *conf_given, __global REAL *entropy_softmax,
                               __global REAL *entropy_given, __global int *flags)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    __global const float *row = scores + (ulong)i * width;

    REAL m = -INFINITY, total = 0;
    bool usable = true, probabilities = true;
    int nonfinite = 0;
    for (uint j = 0; j < width; j++) {
        float s = row[j];
        nonfinite += isfinite(s) ? 0 : 1;
        usable = usable && !isnan(s) && s != INFINITY;
        probabilities = probabilities && s >= 0.0f && s <= 1.0f;
        total += (REAL)s;
        m = fmax(m, (REAL)s);
    }
    usable = usable && m > -INFINITY;
    probabilities = usable && probabilities && fabs(total - (REAL)1) <= (REAL)PROB_TOLERANCE;
    if (!usable) {
        flags[i] = FLAG_UNUSABLE | nonfinite << NONFINITE_SHIFT;
        bin_softmax[i] = bin_given[i] = -1;
        conf_softmax[i] = conf_given[i] = entropy_softmax[i] = entropy_given[i] = 0;
        return;
    }

    REAL sum = 0, weighted = 0, given = 0;
    for (uint j = 0; j < width; j++) {
        REAL d = (REAL)row[j] - m;
        REAL e = exp(d);
        sum += e;
        if (e > 0) weighted += e * d;
        REAL p = (REAL)row[j];
        if (probabilities && p > 0) given -= p * log(p);
    }
    REAL conf = (REAL)1 / sum;
    conf_softmax[i] = conf;
    entropy_softmax[i] = log(sum) - weighted / sum;
    bin_softmax[i] = bin_of(conf, edges);
    conf_given[i] = probabilities ? m : 0;
    entropy_given[i] = probabilities ? given : 0;
    bin_given[i] = probabilities ? bin_of(m, edges) : 0;
    flags[i] = (probabilities ? FLAG_PROBABILITIES : 0) | nonfinite << NONFINITE_SHIFT;
}
