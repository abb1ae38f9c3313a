/* auc.cl: the device half of one-vs-rest ROC-AUC and average precision (see auc.h).
 *
 * Algorithm  per class: auc_keys packs each sample's score and whether it is a positive into
 *            one 64-bit key whose ascending order is the descending order of the scores; an
 *            LSD radix sort orders them on the 32 score bits, 8 bits a pass (auc_radix_count
 *            counts each tile's digits, auc_scan turns the counts into offsets, and
 *            auc_radix_scatter moves each tile's keys in order: stable); then equal scores are
 *            collapsed into threshold groups as scikit-learn's _binary_clf_curve does:
 *            auc_tile_groups counts positives and group ends per tile of the sorted keys,
 *            auc_scan makes them offsets, and auc_emit_groups writes each group's cumulative
 *            (true positives, false positives). The host sums the curve over those counts.
 * Layout     scores: float [n][c] (auc_softmax turns each row into its softmax in place);
 *            labels: int [n]; keys: ulong [n]; counts: uint [AUC_RADIX][tiles] (digit-major)
 *            or [2][tiles]; groups: uint2 [number of groups].
 * Pros/cons  each work-item walks one tile serially, which keeps the sort stable and exact
 *            with no atomics (the same result on every device) and suits CPUs; a GPU would
 *            rather rank within work-groups in local memory. auc_scan is one work-group.
 */
#ifndef AUC_GROUP
#define AUC_GROUP 256 /* work-items of auc_scan, at most */
#endif
#ifndef AUC_RADIX
#define AUC_RADIX 256 /* digits of a radix pass: 8 bits */
#endif

/* The ascending order of these keys is the descending order of the floats; -0 and +0 map to
 * one key, as they compare equal. */
static inline uint descending_key(float score)
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

/* key = descending score key << 1 | positive. */
__kernel void auc_keys(__global const float *scores, __global const int *labels, uint n, uint c,
                       uint cls, __global ulong *keys)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    ulong key = (ulong)descending_key(scores[(size_t)i * c + cls]) << 1;
    keys[i] = key | (labels[i] == (int)cls);
}

/* The radix digit of a key in pass `shift`: bits shift..shift+7 of the score key, which sits
 * above the positive flag. */
static inline uint digit_of(ulong key, uint shift)
{
    return (uint)(key >> (1 + shift)) & (AUC_RADIX - 1);
}

/* counts[d * tiles + t] = keys of tile t with digit d: digit-major, so that the exclusive
 * prefix sums are where each tile's keys of each digit go in a stable sort. */
__kernel void auc_radix_count(__global const ulong *keys, uint n, uint tile, uint shift,
                              __global uint *counts)
{
    uint t = get_global_id(0), tiles = (n + tile - 1) / tile;
    if (t >= tiles) return;
    uint hist[AUC_RADIX];
    for (uint d = 0; d < AUC_RADIX; d++)
        hist[d] = 0;
    uint end = min(n, (t + 1) * tile);
    for (uint i = t * tile; i < end; i++)
        hist[digit_of(keys[i], shift)]++;
    for (uint d = 0; d < AUC_RADIX; d++)
        counts[d * tiles + t] = hist[d];
}

/* Moves each tile's keys, in order, to the places its prefix sums give: one stable pass. */
__kernel void auc_radix_scatter(__global const ulong *keys, uint n, uint tile, uint shift,
                                __global const uint *offsets, __global ulong *out)
{
    uint t = get_global_id(0), tiles = (n + tile - 1) / tile;
    if (t >= tiles) return;
    uint next[AUC_RADIX];
    for (uint d = 0; d < AUC_RADIX; d++)
        next[d] = offsets[d * tiles + t];
    uint end = min(n, (t + 1) * tile);
    for (uint i = t * tile; i < end; i++) {
        ulong key = keys[i];
        out[next[digit_of(key, shift)]++] = key;
    }
}

/* One work-group: values[first, first + count) becomes its exclusive prefix sums and
 * totals[slot] their sum. Each work-item scans a contiguous range serially; item 0 then
 * offsets the ranges. */
__kernel void auc_scan(__global uint *values, uint first, uint count, __global uint *totals,
                       uint slot)
{
    values += first;
    __local uint range_sum[AUC_GROUP];
    uint lid = get_local_id(0), size = get_local_size(0);
    uint per = (count + size - 1) / size;
    uint begin = min(count, lid * per), end = min(count, begin + per);
    uint sum = 0;
    for (uint i = begin; i < end; i++)
        sum += values[i];
    range_sum[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
        uint running = 0;
        for (uint i = 0; i < size; i++) {
            uint s = range_sum[i];
            range_sum[i] = running;
            running += s;
        }
        totals[slot] = running;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    uint running = range_sum[lid];
    for (uint i = begin; i < end; i++) {
        uint s = values[i];
        values[i] = running;
        running += s;
    }
}

/* Whether sorted key i ends a group of equal scores. */
static inline bool group_end(__global const ulong *keys, uint i, uint n)
{
    return i + 1 == n || (keys[i] >> 1) != (keys[i + 1] >> 1);
}

/* counts[t] = positives and counts[tiles + t] = group ends among tile t's sorted keys. */
__kernel void auc_tile_groups(__global const ulong *keys, uint n, uint tile,
                              __global uint *counts)
{
    uint t = get_global_id(0), tiles = (n + tile - 1) / tile;
    if (t >= tiles) return;
    uint end = min(n, (t + 1) * tile), positives = 0, ends = 0;
    for (uint i = t * tile; i < end; i++) {
        positives += (uint)(keys[i] & 1);
        ends += group_end(keys, i, n);
    }
    counts[t] = positives;
    counts[tiles + t] = ends;
}

/* groups[g] = (true positives, false positives) at and above the g-th group's score, from
 * each tile's exclusive offsets (counts after auc_scan). */
__kernel void auc_emit_groups(__global const ulong *keys, uint n, uint tile,
                              __global const uint *offsets, __global uint2 *groups)
{
    uint t = get_global_id(0), tiles = (n + tile - 1) / tile;
    if (t >= tiles) return;
    uint end = min(n, (t + 1) * tile), tp = offsets[t], g = offsets[tiles + t];
    for (uint i = t * tile; i < end; i++) {
        tp += (uint)(keys[i] & 1);
        if (group_end(keys, i, n)) groups[g++] = (uint2)(tp, i + 1 - tp);
    }
}
