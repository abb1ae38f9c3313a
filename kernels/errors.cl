/* errors.cl: per batch, the N best rows of each error-analysis list (most confident wrong,
 * least confident right; each under both views of the scores as probabilities).
 *
 * Algorithm  error_keys gives every row one 64-bit key per list, smaller = better: the
 *            confidence mapped to an order-preserving uint in the high half (inverted for the
 *            most-confident list), the batch row in the low half, so keys are unique and equal
 *            confidences rank the lower row first. The host then finds the N-th smallest key of
 *            each list by a radix select, eight passes of error_digits (a 256-bin histogram of
 *            one byte of the keys that match the bytes fixed so far), and error_gather copies
 *            every key at or below that threshold: exactly min(N, candidates) keys.
 *            Pros: O(rows) per pass, exact, deterministic in what it selects (the order of the
 *            gathered keys is not, so the host sorts them). Cons: nine launches per batch.
 * Layout     scores: float [n][c]; labels, pred: int [n]; keys: ulong [ERROR_LISTS][n], list
 *            l = kind * 2 + view (kind 0 wrong, 1 right; view 0 as given, 1 softmax);
 *            prefix, threshold: ulong [ERROR_LISTS]; hist: uint [ERROR_LISTS][256] (zeroed by
 *            the host); count: uint [ERROR_LISTS] (zeroed); picked: ulong [ERROR_LISTS][cap].
 * Confidence as given: the row's maximum score; softmax: 1 / sum_j exp(s_j - max), computed as
 *            kernels/scores.cl computes it for the calibration bins. A NaN confidence puts the
 *            row in no list.
 */
#define ERROR_LISTS 4
#define ERROR_DIGITS 256
#define NOT_A_CANDIDATE ULONG_MAX
#ifndef ERROR_GROUP
#define ERROR_GROUP 64
#endif

/* The float's order as a uint (after -0 becomes +0): a < b exactly when ordered(a) <
 * ordered(b), for every value but NaN. */
static inline uint ordered(float x)
{
    uint bits = as_uint(x + 0.0f);
    return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

__kernel void error_keys(__global const float *scores, __global const int *labels,
                         __global const int *pred, uint n, uint c, __global ulong *keys)
{
    uint r = get_global_id(0);
    if (r >= n) return;
    __global const float *row = scores + (size_t)r * c;
    float top = row[0];
    for (uint j = 1; j < c; j++)
        if (row[j] > top) top = row[j];
    float z = 0.0f;
    for (uint j = 0; j < c; j++)
        z += exp(row[j] - top);
    float confidence[2] = {top, 1.0f / z};
    bool wrong = pred[r] != labels[r];
    for (uint view = 0; view < 2; view++) {
        bool usable = !isnan(confidence[view]);
        ulong o = ordered(confidence[view]);
        ulong wrong_key = ((ulong)(~(uint)o) << 32) | r, right_key = (o << 32) | r;
        keys[(size_t)view * n + r] = usable && wrong ? wrong_key : NOT_A_CANDIDATE;
        keys[(size_t)(2 + view) * n + r] = usable && !wrong ? right_key : NOT_A_CANDIDATE;
    }
}

/* Counts, per list, the keys whose bytes above `shift` equal the prefix's (high_mask selects
 * them; 0 on the first pass) in the bin of their byte at `shift`. */
__kernel __attribute__((reqd_work_group_size(ERROR_GROUP, 1, 1))) void
error_digits(__global const ulong *keys, uint n, __global const ulong *prefix, ulong high_mask,
             uint shift, __global uint *hist)
{
    __local uint local_hist[ERROR_LISTS * ERROR_DIGITS];
    uint lid = get_local_id(0);
    for (uint i = lid; i < ERROR_LISTS * ERROR_DIGITS; i += ERROR_GROUP)
        local_hist[i] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint r = get_global_id(0); r < n; r += get_global_size(0))
        for (uint l = 0; l < ERROR_LISTS; l++) {
            ulong key = keys[(size_t)l * n + r];
            if (key != NOT_A_CANDIDATE && (key & high_mask) == prefix[l])
                atomic_inc(&local_hist[l * ERROR_DIGITS + (uint)((key >> shift) & 255)]);
        }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint i = lid; i < ERROR_LISTS * ERROR_DIGITS; i += ERROR_GROUP)
        if (local_hist[i]) atomic_add(&hist[i], local_hist[i]);
}

/* Copies every key at or below its list's threshold (at most cap per list). */
__kernel void error_gather(__global const ulong *keys, uint n, __global const ulong *threshold,
                           uint cap, __global uint *count, __global ulong *picked)
{
    uint r = get_global_id(0);
    if (r >= n) return;
    for (uint l = 0; l < ERROR_LISTS; l++) {
        ulong key = keys[(size_t)l * n + r];
        if (key == NOT_A_CANDIDATE || key > threshold[l]) continue;
        uint slot = atomic_inc(&count[l]);
        if (slot < cap) picked[(size_t)l * cap + slot] = key;
    }
}
