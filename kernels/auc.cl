/* auc.cl: the device half of one-vs-rest ROC-AUC and average precision (see auc.h).
 *
 * Algorithm  per class: auc_keys packs each sample's score and whether it is a positive into
 *            one 64-bit key whose ascending order is the descending order of the scores; a
 *            bitonic sort orders them (auc_bitonic_local sorts and merges blocks in local
 *            memory, auc_bitonic_global does the merge steps wider than a block); then equal
 *            scores are collapsed into threshold groups as scikit-learn's _binary_clf_curve
 *            does: auc_chunk_counts counts positives and group ends per chunk of the sorted
 *            keys, auc_scan_counts turns those counts into exclusive offsets (one work-group),
 *            and auc_emit_groups writes each group's cumulative (true positives, false
 *            positives). The host sums the curve over those integer counts.
 * Layout     scores: float [n][c] (auc_softmax turns each row into its softmax in place);
 *            labels: int [n]; keys: ulong [m], m a power of two >= n, the tail padded with
 *            the largest key; counts: uint2 [chunks] (positives, group ends), then offsets;
 *            groups: uint2 [number of groups].
 * Pros/cons  bitonic sorting is simple and data-independent (no atomics, the same result on
 *            every device) but does O(m log^2 m) work; a radix sort would do less on large n.
 */
#ifndef AUC_GROUP
#define AUC_GROUP 256 /* work-items of the local sort and of the scan */
#endif

/* The ascending order of these keys is the descending order of the floats; -0 and +0 map to
 * one key, as they compare equal. */
inline uint descending_key(float score)
{
    uint bits = as_uint(score == 0.0f ? 0.0f : score);
    uint ascending = (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
    return ~ascending;
}

/* The softmax of each row in place, computed as scores.cl computes it for the log loss. */
__kernel void auc_softmax(__global float *scores, uint n, uint c)
{
    uint r = get_global_id(0);
    if (r >= n) return;
    __global float *row = scores + (size_t)r * c;
    float top = row[0];
    for (uint j = 1; j < c; j++)
        top = row[j] > top ? row[j] : top;
    float z = 0.0f;
    for (uint j = 0; j < c; j++)
        z += exp(row[j] - top);
    for (uint j = 0; j < c; j++)
        row[j] = exp(row[j] - top) / z;
}

/* key = descending score key << 1 | positive; the padding sorts last. */
__kernel void auc_keys(__global const float *scores, __global const int *labels, uint n, uint c,
                       uint cls, uint m, __global ulong *keys)
{
    uint i = get_global_id(0);
    if (i >= m) return;
    if (i >= n) {
        keys[i] = ~(ulong)0;
        return;
    }
    ulong key = (ulong)descending_key(scores[(size_t)i * c + cls]) << 1;
    keys[i] = key | (labels[i] == (int)cls);
}

/* Orders keys[i] and keys[i + j] for the bitonic merge step (j, k): ascending where i & k is 0. */
inline void compare_exchange(__local ulong *a, __local ulong *b, bool ascending)
{
    ulong x = *a, y = *b;
    if ((x > y) == ascending) {
        *a = y;
        *b = x;
    }
}

/* One merge step of stage k with distance j >= the block: each work-item orders one pair. */
__kernel void auc_bitonic_global(__global ulong *keys, uint j, uint k)
{
    uint t = get_global_id(0);
    uint low = t & (j - 1);
    uint i = ((t - low) << 1) + low;
    ulong x = keys[i], y = keys[i + j];
    bool ascending = (i & k) == 0;
    if ((x > y) == ascending) {
        keys[i] = y;
        keys[i + j] = x;
    }
}

/* Within each block of 2 * local size keys: with k 0, every stage up to the block (a full sort
 * of each block, directions as in the whole sort); else the steps j < block of stage k. */
__kernel void auc_bitonic_local(__global ulong *keys, uint k)
{
    __local ulong block[2 * AUC_GROUP];
    uint lid = get_local_id(0), size = get_local_size(0), width = 2 * size;
    size_t base = get_group_id(0) * (size_t)width;
    block[lid] = keys[base + lid];
    block[lid + size] = keys[base + lid + size];
    barrier(CLK_LOCAL_MEM_FENCE);
    uint first = k ? k : 2, last = k ? k : width;
    for (uint stage = first; stage <= last; stage <<= 1) {
        for (uint j = (k ? width : stage) >> 1; j > 0; j >>= 1) {
            uint low = lid & (j - 1);
            uint i = ((lid - low) << 1) + low;
            compare_exchange(&block[i], &block[i + j], ((base + i) & stage) == 0);
            barrier(CLK_LOCAL_MEM_FENCE);
        }
    }
    keys[base + lid] = block[lid];
    keys[base + lid + size] = block[lid + size];
}

/* Whether sorted key i ends a group of equal scores. */
inline bool group_end(__global const ulong *keys, uint i, uint n)
{
    return i + 1 == n || (keys[i] >> 1) != (keys[i + 1] >> 1);
}

__kernel void auc_chunk_counts(__global const ulong *keys, uint n, uint chunk,
                               __global uint2 *counts)
{
    uint t = get_global_id(0);
    uint begin = t * chunk;
    if (begin >= n) return;
    uint end = min(n, begin + chunk);
    uint2 sum = (uint2)(0, 0);
    for (uint i = begin; i < end; i++) {
        sum.x += (uint)(keys[i] & 1);
        sum.y += group_end(keys, i, n);
    }
    counts[t] = sum;
}

/* One work-group: counts[0..chunks) becomes its exclusive prefix sums, *total the sum. Each
 * work-item scans a contiguous range serially; item 0 then offsets the ranges. */
__kernel void auc_scan_counts(__global uint2 *counts, uint chunks, __global uint2 *total)
{
    __local uint2 range_sum[AUC_GROUP];
    uint lid = get_local_id(0), size = get_local_size(0);
    uint per = (chunks + size - 1) / size;
    uint begin = min(chunks, lid * per), end = min(chunks, begin + per);
    uint2 sum = (uint2)(0, 0);
    for (uint t = begin; t < end; t++)
        sum += counts[t];
    range_sum[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
        uint2 running = (uint2)(0, 0);
        for (uint i = 0; i < size; i++) {
            uint2 s = range_sum[i];
            range_sum[i] = running;
            running += s;
        }
        *total = running;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    uint2 running = range_sum[lid];
    for (uint t = begin; t < end; t++) {
        uint2 s = counts[t];
        counts[t] = running;
        running += s;
    }
}

/* groups[g] = (true positives, false positives) at and above the g-th group's score. */
__kernel void auc_emit_groups(__global const ulong *keys, uint n, uint chunk,
                              __global const uint2 *offsets, __global uint2 *groups)
{
    uint t = get_global_id(0);
    uint begin = t * chunk;
    if (begin >= n) return;
    uint end = min(n, begin + chunk);
    uint tp = offsets[t].x, g = offsets[t].y;
    for (uint i = begin; i < end; i++) {
        tp += (uint)(keys[i] & 1);
        if (group_end(keys, i, n)) groups[g++] = (uint2)(tp, i + 1 - tp);
    }
}
