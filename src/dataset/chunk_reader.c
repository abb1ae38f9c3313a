/* See chunk_reader.h. One read: the calling thread asks HDF5 for the stored size of every chunk
 * the rows touch (all must be written, inside the file and within a bound before anything is
 * allocated), then reads them one by one into one buffer, publishing each to the pool as soon
 * as its bytes are in; the pool inflates, unshuffles and copies the rows wanted straight into
 * the destination. A batch boundary inside a chunk row would inflate that row twice, so the
 * last chunk row of a read that ends inside it is kept for the next read (two buffers: the
 * next read copies from one while it may fill the other). */
#include "chunk_reader.h"

#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "chunk_decode.h"
#include "dataset_internal.h"
#include "inflate_pool.h"

/* Larger chunks go through H5Dread: each thread holds two of them. */
#define MAX_CHUNK_BYTES ((size_t)64 << 20)
/* The kept chunk row is skipped beyond this (it costs twice as much). */
#define MAX_TAIL_BYTES ((size_t)64 << 20)
/* More chunks, or more stored bytes, in one read go through H5Dread, which reads them in
 * bounded runs. */
#define MAX_TASKS ((uint64_t)1 << 20)
#define MAX_PACKED_BYTES ((size_t)1 << 30)

typedef struct chunk_task {
    hsize_t index[H5S_MAX_RANK];        /* the chunk's position, in chunks */
    uint64_t slot;                      /* its place in its chunk row */
    size_t packed_offset, packed_bytes; /* its stored bytes in reader->packed */
    bool kept; /* its rows come from the chunk row kept by the previous read */
    chunk_decode_result result;
    size_t produced;
} chunk_task;

struct chunk_reader {
    hid_t dset;
    const char *path, *name;
    int rank;
    hsize_t dims[H5S_MAX_RANK], chunk[H5S_MAX_RANK];
    uint64_t chunk_stride[H5S_MAX_RANK], dest_stride[H5S_MAX_RANK]; /* elements */
    bool whole_rows; /* chunks span whole samples: their rows are contiguous in the output */
    size_t element_size, chunk_bytes, max_packed;
    bool shuffled;
    uint64_t band; /* chunks per chunk row */
    uint64_t file_size;
    unsigned threads;
    inflate_pool *pool;
    unsigned char **scratch; /* per worker: inflated chunk (+1 byte), then unshuffled */
    chunk_task *tasks;
    size_t task_capacity;
    unsigned char *packed;
    size_t packed_capacity;
    unsigned char *kept[2]; /* band chunks each, allocated on first use */
    int kept_current;
    int64_t kept_row; /* chunk row held in kept[kept_current]; -1: none */
    bool keep_rows;   /* the band fits MAX_TAIL_BYTES */
    /* The read in progress. */
    uint64_t row0, n;
    unsigned char *dest;
    int64_t store_row; /* chunk row the tasks copy into kept[!kept_current]; -1: none */
    uint64_t inflated;
};

/* Whether `dcpl`'s filters are deflate alone or shuffle (of `element_size`-byte elements)
 * then deflate; *shuffled tells which. */
static bool undoable_filters(hid_t dcpl, size_t element_size, bool *shuffled)
{
    int n = H5Pget_nfilters(dcpl);
    if (n < 1 || n > 2) return false;
    H5Z_filter_t ids[2];
    unsigned values[2][8];
    size_t n_values[2];
    for (int i = 0; i < n; i++) {
        unsigned flags = 0, config = 0;
        n_values[i] = sizeof values[i] / sizeof values[i][0];
        char name[8];
        ids[i] = H5Pget_filter2(dcpl, (unsigned)i, &flags, &n_values[i], values[i], sizeof name,
                                name, &config);
    }
    *shuffled = n == 2;
    if (n == 1) return ids[0] == H5Z_FILTER_DEFLATE;
    return ids[0] == H5Z_FILTER_SHUFFLE && ids[1] == H5Z_FILTER_DEFLATE && n_values[0] >= 1 &&
           values[0][0] == element_size;
}

/* Fills the reader's shape from `dset` when its layout and type are ones it can read. */
static bool describe(chunk_reader *r, hid_t dset, hid_t mem_type)
{
    hid_t dcpl = H5Dget_create_plist(dset);
    hid_t ftype = H5Dget_type(dset);
    hid_t space = H5Dget_space(dset);
    bool ok = dcpl >= 0 && ftype >= 0 && space >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED &&
              H5Tequal(ftype, mem_type) > 0;
    r->element_size = H5Tget_size(mem_type);
    if (ok) {
        r->rank = H5Pget_chunk(dcpl, H5S_MAX_RANK, r->chunk);
        ok = r->rank >= 1 && H5Sget_simple_extent_dims(space, r->dims, NULL) == r->rank &&
             undoable_filters(dcpl, r->element_size, &r->shuffled);
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (ftype >= 0) H5Tclose(ftype);
    if (space >= 0) H5Sclose(space);
    if (!ok || r->element_size == 0) return false;
    /* Sizes, each bounded before the next multiplication. */
    uint64_t bytes = r->element_size, band = 1;
    r->whole_rows = true;
    for (int d = r->rank - 1; d >= 0; d--) {
        if (r->chunk[d] == 0 || bytes > MAX_CHUNK_BYTES / r->chunk[d]) return false;
        r->chunk_stride[d] = bytes / r->element_size;
        bytes *= r->chunk[d];
        if (d > 0) {
            uint64_t across = (r->dims[d] + r->chunk[d] - 1) / r->chunk[d];
            if (across == 0 || band > MAX_TASKS / across) return false;
            band *= across;
            r->whole_rows = r->whole_rows && r->chunk[d] == r->dims[d];
        }
    }
    uint64_t stride = 1;
    for (int d = r->rank - 1; d >= 0; d--) {
        r->dest_stride[d] = stride;
        stride *= r->dims[d] ? r->dims[d] : 1;
    }
    r->chunk_bytes = (size_t)bytes;
    r->band = band;
    r->max_packed = (size_t)compressBound((uLong)bytes);
    r->keep_rows = band <= MAX_TAIL_BYTES / bytes;
    return true;
}

cleval_status chunk_reader_open(hid_t dset, hid_t mem_type, const char *path, const char *name,
                                chunk_reader **out)
{
    *out = NULL;
    chunk_reader *r = calloc(1, sizeof *r);
    if (!r) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory opening %s: '%s'", path, name);
    if (!describe(r, dset, mem_type) || !dataset_file_size(dset, &r->file_size)) {
        free(r);
        return CLEVAL_OK;
    }
    cleval_status status = inflate_pool_threads_wanted(&r->threads);
    if (status != CLEVAL_OK) {
        free(r);
        return status;
    }
    r->dset = dset;
    r->path = path;
    r->name = name;
    r->kept_row = -1;
    *out = r;
    return CLEVAL_OK;
}

/* Starts the pool and its scratch memory on the first read. */
static cleval_status start_pool(chunk_reader *r)
{
    if (r->pool) return CLEVAL_OK;
    inflate_pool *pool;
    cleval_status status = inflate_pool_create(r->threads, &pool);
    if (status != CLEVAL_OK) return status;
    unsigned workers = inflate_pool_size(pool);
    size_t bytes = r->chunk_bytes + 1 + (r->shuffled ? r->chunk_bytes : 0);
    unsigned char **scratch = calloc(workers, sizeof *scratch);
    for (unsigned w = 0; scratch && w < workers; w++)
        if (!(scratch[w] = malloc(bytes))) {
            for (unsigned v = 0; v < w; v++)
                free(scratch[v]);
            free(scratch);
            scratch = NULL;
        }
    if (!scratch) {
        inflate_pool_destroy(pool);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading %s: '%s' (%u x %zu bytes)",
                           r->path, r->name, workers, bytes);
    }
    r->pool = pool;
    r->scratch = scratch;
    return CLEVAL_OK;
}

/* Copies the rows of the read that chunk `t` (its elements at `chunk`) holds into place. */
static void copy_rows(const chunk_reader *r, const chunk_task *t, const unsigned char *chunk)
{
    size_t es = r->element_size;
    uint64_t first = t->index[0] * r->chunk[0];
    uint64_t lo = r->row0 > first ? r->row0 : first;
    uint64_t end = r->row0 + r->n, chunk_end = first + r->chunk[0];
    uint64_t hi = end < chunk_end ? end : chunk_end;
    if (lo >= hi) return;
    if (r->whole_rows) {
        memcpy(r->dest + (lo - r->row0) * r->dest_stride[0] * es,
               chunk + (lo - first) * r->chunk_stride[0] * es,
               (size_t)((hi - lo) * r->dest_stride[0] * es));
        return;
    }
    /* The chunk's part of each sample: `extent` elements along each sample dimension from
     * `start`, copied in runs along the last one. */
    int last = r->rank - 1;
    uint64_t start[H5S_MAX_RANK], extent[H5S_MAX_RANK], at[H5S_MAX_RANK] = {0};
    uint64_t dest_origin = 0;
    for (int d = 1; d <= last; d++) {
        start[d] = t->index[d] * r->chunk[d];
        extent[d] = r->dims[d] - start[d] < r->chunk[d] ? r->dims[d] - start[d] : r->chunk[d];
        dest_origin += start[d] * r->dest_stride[d];
    }
    size_t run = (size_t)extent[last] * es;
    for (uint64_t row = lo; row < hi; row++) {
        for (;;) {
            uint64_t src = (row - first) * r->chunk_stride[0];
            uint64_t dst = (row - r->row0) * r->dest_stride[0] + dest_origin;
            for (int d = 1; d < last; d++) {
                src += at[d] * r->chunk_stride[d];
                dst += at[d] * r->dest_stride[d];
            }
            memcpy(r->dest + dst * es, chunk + src * es, run);
            int d = last - 1;
            while (d >= 1 && ++at[d] == extent[d])
                at[d--] = 0;
            if (d < 1) break;
        }
    }
}

/* A pool task: inflate (unless kept), unshuffle, keep for the next read if asked, copy. */
static void run_task(void *ctx, size_t index, unsigned worker)
{
    chunk_reader *r = ctx;
    chunk_task *t = &r->tasks[index];
    const unsigned char *chunk;
    if (t->kept) {
        chunk = r->kept[r->kept_current] + t->slot * r->chunk_bytes;
    } else {
        unsigned char *inflated = r->scratch[worker];
        t->result = chunk_inflate(r->packed + t->packed_offset, t->packed_bytes, inflated,
                                  r->chunk_bytes, &t->produced);
        if (t->result != CHUNK_DECODE_OK) return;
        chunk = inflated;
        if (r->shuffled) {
            unsigned char *plain = inflated + r->chunk_bytes + 1;
            chunk_unshuffle(inflated, r->chunk_bytes, r->element_size, plain);
            chunk = plain;
        }
        if ((int64_t)t->index[0] == r->store_row)
            memcpy(r->kept[!r->kept_current] + t->slot * r->chunk_bytes, chunk, r->chunk_bytes);
    }
    copy_rows(r, t, chunk);
}

/* Grows *buffer to at least `bytes`. */
static bool ensure(void **buffer, size_t *capacity, size_t bytes)
{
    if (bytes <= *capacity) return true;
    void *grown = realloc(*buffer, bytes);
    if (!grown) return false;
    *buffer = grown;
    *capacity = bytes;
    return true;
}

static cleval_status damaged(const chunk_reader *r, const chunk_task *t, const char *what)
{
    uint64_t first = t->index[0] * r->chunk[0];
    uint64_t last = first + r->chunk[0] < r->dims[0] ? first + r->chunk[0] : r->dims[0];
    return cleval_fail(CLEVAL_ERR_INPUT,
                       "%s: dataset '%s' is damaged (the compressed chunk holding rows %llu..%llu "
                       "%s)",
                       r->path, r->name, (unsigned long long)first, (unsigned long long)last, what);
}

/* The failure of the first task that did not inflate, or CLEVAL_OK. */
static cleval_status task_failures(const chunk_reader *r, size_t n_tasks)
{
    for (size_t i = 0; i < n_tasks; i++) {
        const chunk_task *t = &r->tasks[i];
        char what[160];
        switch (t->kept ? CHUNK_DECODE_OK : t->result) {
        case CHUNK_DECODE_OK: continue;
        case CHUNK_DECODE_NOMEM:
            return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory inflating a chunk of %s: '%s'",
                               r->path, r->name);
        case CHUNK_DECODE_CORRUPT:
            return damaged(r, t, "does not inflate: its bytes are not a whole deflate stream");
        case CHUNK_DECODE_SIZE:
            if (t->produced > r->chunk_bytes)
                snprintf(what, sizeof what, "inflates to more than the %zu bytes its shape holds",
                         r->chunk_bytes);
            else
                snprintf(what, sizeof what, "inflates to %zu bytes where its shape holds %zu",
                         t->produced, r->chunk_bytes);
            return damaged(r, t, what);
        }
    }
    return CLEVAL_OK;
}

/* Lays out the `n_tasks` tasks of the chunk rows from `first_row`, each row's chunks in order,
 * and asks HDF5 for the stored size of each chunk not in `kept_row` (kept by the last read).
 * false when HDF5 must read this batch; a failure in *status. */
static bool plan(chunk_reader *r, uint64_t first_row, size_t n_tasks, int64_t kept_row,
                 size_t *packed_total, cleval_status *status)
{
    *status = CLEVAL_OK;
    size_t total = 0;
    for (size_t i = 0; i < n_tasks; i++) {
        chunk_task *t = &r->tasks[i];
        memset(t, 0, sizeof *t);
        t->slot = i % r->band;
        t->index[0] = first_row + i / r->band;
        uint64_t rest = t->slot;
        for (int d = r->rank - 1; d >= 1; d--) {
            uint64_t across = (r->dims[d] + r->chunk[d] - 1) / r->chunk[d];
            t->index[d] = rest % across;
            rest /= across;
        }
        t->kept = (int64_t)t->index[0] == kept_row;
        if (t->kept) continue;
        hsize_t offset[H5S_MAX_RANK];
        for (int d = 0; d < r->rank; d++)
            offset[d] = t->index[d] * r->chunk[d];
        hsize_t size = 0;
        if (H5Dget_chunk_storage_size(r->dset, offset, &size) < 0 || size == 0) return false;
        if (size > r->file_size) {
            *status = damaged(r, t, "is larger than the file");
            return false;
        }
        if (size > r->max_packed) return false; /* not from deflate: let HDF5 judge it */
        if (size > MAX_PACKED_BYTES - total) return false;
        t->packed_offset = total;
        t->packed_bytes = (size_t)size;
        total += (size_t)size;
    }
    *packed_total = total;
    return true;
}

cleval_status chunk_reader_read(chunk_reader *r, uint64_t row0, uint64_t n, void *dest,
                                bool *handled)
{
    *handled = false;
    if (n == 0 || row0 >= r->dims[0] || n > r->dims[0] - row0) return CLEVAL_OK;
    uint64_t first_row = row0 / r->chunk[0], last_row = (row0 + n - 1) / r->chunk[0];
    uint64_t rows = last_row - first_row + 1;
    if (rows > MAX_TASKS / r->band) return CLEVAL_OK;
    size_t n_tasks = (size_t)(rows * r->band);
    int64_t kept_row = r->kept_row;
    r->kept_row = -1; /* nothing is kept unless this read completes */
    if (!ensure((void **)&r->tasks, &r->task_capacity, n_tasks * sizeof *r->tasks))
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading %s: '%s'", r->path, r->name);
    size_t packed_total = 0;
    cleval_status status;
    if (!plan(r, first_row, n_tasks, kept_row, &packed_total, &status)) return status;
    if (!ensure((void **)&r->packed, &r->packed_capacity, packed_total ? packed_total : 1))
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading %s: '%s' (%zu bytes)", r->path,
                           r->name, packed_total);
    if ((status = start_pool(r)) != CLEVAL_OK) return status;

    /* Keep the last chunk row when this read ends inside it (and it is not the one kept). */
    uint64_t end = row0 + n, row_end = (last_row + 1) * r->chunk[0];
    r->store_row = -1;
    if (r->keep_rows && end < row_end && end < r->dims[0] && (int64_t)last_row != kept_row) {
        for (int k = 0; k < 2; k++)
            if (!r->kept[k]) r->kept[k] = malloc(r->band * r->chunk_bytes);
        if (r->kept[0] && r->kept[1]) r->store_row = (int64_t)last_row;
    }
    r->row0 = row0;
    r->n = n;
    r->dest = dest;

    bool read_all = true;
    inflate_pool_begin(r->pool, run_task, r);
    for (size_t i = 0; i < n_tasks; i++) {
        chunk_task *t = &r->tasks[i];
        if (!t->kept) {
            hsize_t offset[H5S_MAX_RANK];
            for (int d = 0; d < r->rank; d++)
                offset[d] = t->index[d] * r->chunk[d];
            uint32_t mask = 0;
            if (H5Dread_chunk(r->dset, H5P_DEFAULT, offset, &mask, r->packed + t->packed_offset) <
                    0 ||
                mask != 0) {
                read_all = false; /* unreadable here, or stored with a filter skipped */
                break;
            }
        }
        inflate_pool_publish(r->pool, i + 1);
    }
    inflate_pool_finish(r->pool);
    if (!read_all) return CLEVAL_OK;
    if ((status = task_failures(r, n_tasks)) != CLEVAL_OK) return status;
    for (size_t i = 0; i < n_tasks; i++)
        r->inflated += !r->tasks[i].kept;
    if (r->store_row >= 0) {
        r->kept_current = !r->kept_current;
        r->kept_row = r->store_row;
    } else if ((int64_t)last_row == kept_row) {
        r->kept_row = kept_row; /* still the last chunk row read */
    }
    *handled = true;
    return CLEVAL_OK;
}

uint64_t chunk_reader_inflated(const chunk_reader *r)
{
    return r->inflated;
}

void chunk_reader_close(chunk_reader *r)
{
    if (!r) return;
    if (r->pool) {
        unsigned workers = inflate_pool_size(r->pool);
        inflate_pool_destroy(r->pool);
        for (unsigned w = 0; w < workers; w++)
            free(r->scratch[w]);
        free(r->scratch);
    }
    free(r->tasks);
    free(r->packed);
    free(r->kept[0]);
    free(r->kept[1]);
    free(r);
}
