/* histogram.cl: exact integer histograms (confusion matrices, class and bin counts).
 *
 * Algorithm  sample i adds one to bin rows[i] * n_cols + cols[i] (bin cols[i] when PAIRED is 0).
 *            Four strategies, chosen by the host per device and bin count:
 *            histogram_private  CPU: one work-item per contiguous chunk counts into private
 *                               arrays, then merges with one atomic per non-zero bin.
 *                               + no atomics in the loop, cache-resident; - bins fixed at build.
 *            histogram_slots    CPU, many bins: each work-item owns a global partial
 *                               histogram; histogram_sum_slots adds them when read.
 *                               + any bin count, no atomics; - slots * bins memory.
 *            histogram_local    GPU: a work-group histogram in local memory (local atomics),
 *                               merged into the global one. + fast on GPUs; - bins fit local.
 *            histogram_global   GPU, many bins: one global atomic per sample.
 *                               + any bin count; - throughput bound by atomics.
 * Layout     rows, cols: int32 [n]; hist: uint32 [n_rows * n_cols], row-major;
 *            slots: uint32 [n_slots][n_rows * n_cols].
 * Assumes    labels were checked on the host; a pair outside the grid is skipped, so a bad
 *            label can never write out of bounds. Counts since the host's last read stay below
 *            2^32 (the host reads before that).
 */
#ifndef PAIRED
#define PAIRED 1 /* 0: 1-D histogram; the rows argument is ignored */
#endif
#ifndef PRIVATE_BINS
#define PRIVATE_BINS 128 /* bins of histogram_private's arrays, at least n_rows * n_cols */
#endif
#ifndef SUB_HISTOGRAMS
#define SUB_HISTOGRAMS 4 /* interleaved private copies: consecutive equal keys do not chain */
#endif

/* The bin of sample i, or -1 when its pair lies outside the grid. */
static inline int bin_of(__global const int *rows, __global const int *cols, uint i, uint n_rows,
                         uint n_cols)
{
    int r = PAIRED ? rows[i] : 0;
    int c = cols[i];
    if ((uint)r >= n_rows || (uint)c >= n_cols) return -1;
    return r * (int)n_cols + c;
}

__kernel void histogram_private(__global const int *rows, __global const int *cols, uint n,
                                uint n_rows, uint n_cols, uint chunk, __global uint *hist)
{
    uint counts[SUB_HISTOGRAMS * PRIVATE_BINS];
    for (uint b = 0; b < SUB_HISTOGRAMS * PRIVATE_BINS; b++)
        counts[b] = 0;

    uint start = get_global_id(0) * chunk;
    uint end = start < n ? min(n, start + chunk) : start;
    uint i = start;
    for (; i + SUB_HISTOGRAMS <= end; i += SUB_HISTOGRAMS) {
        for (uint s = 0; s < SUB_HISTOGRAMS; s++) {
            int bin = bin_of(rows, cols, i + s, n_rows, n_cols);
            if (bin >= 0) counts[s * PRIVATE_BINS + bin]++;
        }
    }
    for (; i < end; i++) {
        int bin = bin_of(rows, cols, i, n_rows, n_cols);
        if (bin >= 0) counts[bin]++;
    }

    uint bins = n_rows * n_cols;
    for (uint b = 0; b < bins; b++) {
        uint total = 0;
        for (uint s = 0; s < SUB_HISTOGRAMS; s++)
            total += counts[s * PRIVATE_BINS + b];
        if (total) atomic_add(&hist[b], total);
    }
}

__kernel void histogram_slots(__global const int *rows, __global const int *cols, uint n,
                              uint n_rows, uint n_cols, uint chunk, __global uint *slots)
{
    __global uint *slot = slots + (ulong)get_global_id(0) * n_rows * n_cols;
    uint start = get_global_id(0) * chunk;
    uint end = start < n ? min(n, start + chunk) : start;
    for (uint i = start; i < end; i++) {
        int bin = bin_of(rows, cols, i, n_rows, n_cols);
        if (bin >= 0) slot[bin]++;
    }
}

/* hist[b] = sum of slots[s][b] over all slots, for this work-item's contiguous range of bins. */
__kernel void histogram_sum_slots(__global const uint *slots, uint n_slots, uint bins,
                                  uint bins_per_item, __global uint *hist)
{
    uint start = get_global_id(0) * bins_per_item;
    uint end = start < bins ? min(bins, start + bins_per_item) : start;
    for (uint b = start; b < end; b++) {
        uint total = 0;
        for (uint s = 0; s < n_slots; s++)
            total += slots[(ulong)s * bins + b];
        hist[b] = total;
    }
}

__kernel void histogram_local(__global const int *rows, __global const int *cols, uint n,
                              uint n_rows, uint n_cols, __global uint *hist,
                              __local uint *local_hist)
{
    uint bins = n_rows * n_cols;
    uint lid = get_local_id(0), lsize = get_local_size(0);
    for (uint b = lid; b < bins; b += lsize)
        local_hist[b] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);

    for (uint i = get_global_id(0); i < n; i += get_global_size(0)) {
        int bin = bin_of(rows, cols, i, n_rows, n_cols);
        if (bin >= 0) atomic_inc(&local_hist[bin]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    for (uint b = lid; b < bins; b += lsize)
        if (local_hist[b]) atomic_add(&hist[b], local_hist[b]);
}

__kernel void histogram_global(__global const int *rows, __global const int *cols, uint n,
                               uint n_rows, uint n_cols, __global uint *hist)
{
    for (uint i = get_global_id(0); i < n; i += get_global_size(0)) {
        int bin = bin_of(rows, cols, i, n_rows, n_cols);
        if (bin >= 0) atomic_inc(&hist[bin]);
    }
}
