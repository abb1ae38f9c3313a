/* Row reads of one numeric dataset by hyperslab: the stored type is read as is into a scratch
 * buffer and converted here (a plain loop is faster than HDF5's generic conversion), then
 * checked (finite features, non-negative labels). */
#include "dataset_internal.h"

#include "chunk_reader.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum element_type {
    ELEMENT_I8,
    ELEMENT_U8,
    ELEMENT_I16,
    ELEMENT_U16,
    ELEMENT_I32,
    ELEMENT_U32,
    ELEMENT_I64,
    ELEMENT_U64,
    ELEMENT_F32,
    ELEMENT_F64,
    ELEMENT_OTHER_FLOAT, /* other float widths: HDF5 converts them to float32 */
    ELEMENT_F16,         /* IEEE half: float32 through HDF5, or moved as is (read_as F16) */
} element_type;

static const char *const element_names[] = {
    "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float32", "float64", "float", "float16",
};

struct cleval_column {
    cleval_dataset *ds;
    char *name;
    cleval_column_kind kind;
    hid_t dset;
    hid_t file_space;
    element_type type;
    size_t element_size; /* bytes of one stored element as read into memory */
    uint64_t rows;
    uint32_t row_rank;
    uint64_t row_shape[CLEVAL_MAX_RANK];
    uint64_t row_size;
    uint64_t rows_per_read; /* bounds the chunks one H5Dread touches (see read_limits) */
    const cleval_array *array; /* a caller array's rows instead of the file's, or NULL */
    void *scratch; /* stored-type staging for conversions */
    size_t scratch_bytes;
    chunk_reader *chunks; /* deflated chunks inflated by cleval's threads, or NULL */
};

static hid_t memory_type(element_type type)
{
    switch (type) {
    case ELEMENT_I8: return H5T_NATIVE_INT8;
    case ELEMENT_U8: return H5T_NATIVE_UINT8;
    case ELEMENT_I16: return H5T_NATIVE_INT16;
    case ELEMENT_U16: return H5T_NATIVE_UINT16;
    case ELEMENT_I32: return H5T_NATIVE_INT32;
    case ELEMENT_U32: return H5T_NATIVE_UINT32;
    case ELEMENT_I64: return H5T_NATIVE_INT64;
    case ELEMENT_U64: return H5T_NATIVE_UINT64;
    case ELEMENT_F32: return H5T_NATIVE_FLOAT;
    case ELEMENT_F64: return H5T_NATIVE_DOUBLE;
    case ELEMENT_OTHER_FLOAT:
    case ELEMENT_F16: return H5T_NATIVE_FLOAT;
    }
    return H5T_NATIVE_FLOAT;
}

static size_t memory_size(element_type type)
{
    static const size_t sizes[] = {1, 1, 2, 2, 4, 4, 8, 8, 4, 8, 4, 4};
    return sizes[type];
}

/* Whether a 2-byte float type has IEEE half's fields (1 sign, 5 exponent biased by 15, 10
 * mantissa bits), in either byte order. */
static bool is_ieee_half(hid_t ftype)
{
    size_t spos, epos, esize, mpos, msize;
    return H5Tget_size(ftype) == 2 &&
           H5Tget_fields(ftype, &spos, &epos, &esize, &mpos, &msize) >= 0 && spos == 15 &&
           epos == 10 && esize == 5 && mpos == 0 && msize == 10 &&
           H5Tget_ebias(ftype) == 15;
}

/* IEEE half in this host's byte order, for reading half values as they are (HDF5 swaps the
 * bytes of a big-endian file); the caller closes it. */
static hid_t half_memory_type(void)
{
    hid_t t = H5Tcopy(H5T_NATIVE_FLOAT);
    if (t < 0) return t;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_precision(t, 16) < 0 ||
        H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* Classifies the stored type; false for anything that is not an integer or a float. */
static bool classify(hid_t ftype, element_type *type)
{
    H5T_class_t cls = H5Tget_class(ftype);
    size_t size = H5Tget_size(ftype);
    if (cls == H5T_FLOAT) {
        *type = size == 4             ? ELEMENT_F32
                : size == 8           ? ELEMENT_F64
                : is_ieee_half(ftype) ? ELEMENT_F16
                                      : ELEMENT_OTHER_FLOAT;
        return true;
    }
    if (cls != H5T_INTEGER) return false;
    bool is_signed = H5Tget_sign(ftype) == H5T_SGN_2;
    switch (size) {
    case 1: *type = is_signed ? ELEMENT_I8 : ELEMENT_U8; return true;
    case 2: *type = is_signed ? ELEMENT_I16 : ELEMENT_U16; return true;
    case 4: *type = is_signed ? ELEMENT_I32 : ELEMENT_U32; return true;
    case 8: *type = is_signed ? ELEMENT_I64 : ELEMENT_U64; return true;
    }
    return false;
}

static bool is_integer(element_type type)
{
    return type <= ELEMENT_U64;
}

/* A raw-data chunk cache that holds a full band of chunks across the row dimension, so a batch
 * boundary that cuts through a compressed chunk does not decompress it twice: a copy of access
 * list `base` with that cache, or `base` itself when the dataset is not chunked. */
static hid_t chunk_cache_access(hid_t dset, hid_t base)
{
    hid_t dcpl = H5Dget_create_plist(dset);
    if (dcpl < 0) return base;
    hid_t dapl = base;
    if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
        hsize_t chunk[H5S_MAX_RANK];
        int rank = H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk);
        hid_t ftype = H5Dget_type(dset), space = H5Dget_space(dset);
        hsize_t dims[H5S_MAX_RANK];
        if (rank > 0 && ftype >= 0 && space >= 0 &&
            H5Sget_simple_extent_dims(space, dims, NULL) == rank) {
            size_t chunk_bytes = H5Tget_size(ftype);
            size_t band = 1;
            for (int d = 0; d < rank; d++) {
                chunk_bytes *= chunk[d];
                if (d > 0) band *= (dims[d] + chunk[d] - 1) / chunk[d];
            }
            size_t cache = 2 * band * chunk_bytes;
            const size_t min_cache = 4u << 20, max_cache = 256u << 20;
            cache = cache < min_cache ? min_cache : cache > max_cache ? max_cache : cache;
            dapl = H5Pcopy(base);
            if (dapl >= 0) H5Pset_chunk_cache(dapl, 12421 /* prime, as HDF5 advises */, cache, 1.0);
        }
        if (ftype >= 0) H5Tclose(ftype);
        if (space >= 0) H5Sclose(space);
    }
    H5Pclose(dcpl);
    return dapl < 0 ? base : dapl;
}

/* HDF5 1.10 keeps a record of several kilobytes for every chunk one H5Dread touches, and its
 * cost per chunk grows with their number: a batch of 4096 images stored in 1x1x1x1 chunks took
 * 20 GB and minutes. Reads are therefore cut into runs of whole chunk rows touching at most
 * CHUNKS_PER_READ chunks; a layout whose single chunk row already holds more than
 * MAX_CHUNKS_PER_ROW chunks is refused instead of read. */
enum { CHUNKS_PER_READ = 1024 };
#define MAX_CHUNKS_PER_ROW 65536

static cleval_status read_limits(cleval_column *col)
{
    col->rows_per_read = UINT64_MAX;
    hid_t dcpl = H5Dget_create_plist(col->dset);
    if (dcpl < 0) return CLEVAL_OK;
    hsize_t chunk[H5S_MAX_RANK];
    int rank = H5Pget_layout(dcpl) == H5D_CHUNKED ? H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk) : 0;
    H5Pclose(dcpl);
    if (rank != (int)col->row_rank + 1) return CLEVAL_OK; /* contiguous or compact */
    uint64_t band = 1; /* chunks across one chunk row */
    for (uint32_t d = 0; d < col->row_rank; d++) {
        uint64_t across = chunk[d + 1] ? (col->row_shape[d] + chunk[d + 1] - 1) / chunk[d + 1] : 1;
        band = band > MAX_CHUNKS_PER_ROW ? band : band * across;
    }
    if (band > MAX_CHUNKS_PER_ROW)
        return cleval_fail(CLEVAL_ERR_INPUT,
                           "%s: '%s' is stored in chunks so small that one sample spans %llu or "
                           "more of them (at most %d): rechunk it, e.g. with h5repack",
                           col->ds->path, col->name, (unsigned long long)band, MAX_CHUNKS_PER_ROW);
    uint64_t chunk_rows = chunk[0] ? chunk[0] : 1;
    uint64_t runs = band >= CHUNKS_PER_READ ? 1 : CHUNKS_PER_READ / band;
    col->rows_per_read = runs * chunk_rows;
    return CLEVAL_OK;
}

/* Takes the column's shape from the dimensions of its dataset or array, checked for `kind`. */
static cleval_status check_dims(cleval_column *col, int rank, const uint64_t *dims)
{
    const char *path = col->ds->path;
    if (rank < 1)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' must have a sample dimension (it is a %s)",
                           path, col->name, rank == 0 ? "scalar" : "dataset without shape");
    if (rank > CLEVAL_MAX_RANK)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' has rank %d (at most %d supported)", path,
                           col->name, rank, CLEVAL_MAX_RANK);
    if (col->kind == CLEVAL_COLUMN_LABELS && rank != 1)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' must be 1-D [N] (it has rank %d)", path,
                           col->name, rank);
    col->rows = dims[0];
    col->row_rank = (uint32_t)rank - 1;
    col->row_size = 1;
    for (int d = 1; d < rank; d++) {
        col->row_shape[d - 1] = dims[d];
        col->row_size *= dims[d];
    }
    if (col->row_size == 0)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' has an empty sample shape", path,
                           col->name);
    return CLEVAL_OK;
}

static cleval_status check_shape(cleval_column *col, hid_t space)
{
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[CLEVAL_MAX_RANK] = {0};
    uint64_t dims64[CLEVAL_MAX_RANK] = {0};
    if (rank >= 1 && rank <= CLEVAL_MAX_RANK) H5Sget_simple_extent_dims(space, dims, NULL);
    for (int d = 0; d < rank && d < CLEVAL_MAX_RANK; d++)
        dims64[d] = dims[d];
    return check_dims(col, rank, dims64);
}

/* The type checks shared by files and arrays in memory. */
static cleval_status check_type(const cleval_column *col)
{
    if (col->kind == CLEVAL_COLUMN_LABELS && !is_integer(col->type))
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' must hold integer labels (it holds %s)",
                           col->ds->path, col->name, element_names[col->type]);
    return CLEVAL_OK;
}

/* A column over a caller array (cleval_dataset_from_arrays): cleval_dtype lists the element
 * types in element_type's order. */
static cleval_status open_array(cleval_column *col, const cleval_array *array)
{
    col->array = array;
    col->type = (element_type)array->dtype;
    col->element_size = memory_size(col->type);
    col->rows_per_read = UINT64_MAX;
    cleval_status status = check_type(col);
    if (status == CLEVAL_OK) status = check_dims(col, (int)array->rank, array->shape);
    return status;
}

cleval_status cleval_column_open(cleval_dataset *ds, const char *name, cleval_column_kind kind,
                                 cleval_column **out)
{
    *out = NULL;
    if (!cleval_dataset_has(ds, name))
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: no dataset '%s'", ds->path, name);
    cleval_column *col = calloc(1, sizeof *col);
    if (!col || !(col->name = malloc(strlen(name) + 1))) {
        free(col);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory opening %s: '%s'", ds->path, name);
    }
    strcpy(col->name, name);
    col->ds = ds;
    col->kind = kind;
    col->dset = col->file_space = H5I_INVALID_HID;

    cleval_status status = CLEVAL_OK;
    const dataset_array *array = dataset_find_array(ds, name);
    if (array) {
        if ((status = open_array(col, &array->array)) != CLEVAL_OK) goto fail;
        *out = col;
        return CLEVAL_OK;
    }
    hid_t probe = H5Dopen2(ds->file, name, ds->dapl);
    hid_t dapl = probe >= 0 ? chunk_cache_access(probe, ds->dapl) : ds->dapl;
    if (probe >= 0) H5Dclose(probe);
    col->dset = H5Dopen2(ds->file, name, dapl);
    if (dapl != ds->dapl) H5Pclose(dapl);
    if (col->dset < 0) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: cannot open dataset '%s'", ds->path, name);
        goto fail;
    }
    hid_t ftype = H5Dget_type(col->dset);
    bool numeric = ftype >= 0 && classify(ftype, &col->type);
    size_t stored_size = numeric ? H5Tget_size(ftype) : 0;
    if (ftype >= 0) H5Tclose(ftype);
    if (!numeric) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' must hold integers or floats", ds->path,
                             name);
        goto fail;
    }
    if ((status = check_type(col)) != CLEVAL_OK) goto fail;
    col->element_size = memory_size(col->type);
    col->file_space = H5Dget_space(col->dset);
    if (col->file_space < 0) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: cannot read the shape of '%s'", ds->path,
                             name);
        goto fail;
    }
    if ((status = check_shape(col, col->file_space)) != CLEVAL_OK ||
        (status = dataset_check_storage(ds, col->dset, name, stored_size)) != CLEVAL_OK ||
        (status = read_limits(col)) != CLEVAL_OK)
        goto fail;
    if (col->type != ELEMENT_OTHER_FLOAT &&
        (status = chunk_reader_open(col->dset, memory_type(col->type), ds->path, col->name,
                                    &col->chunks)) != CLEVAL_OK)
        goto fail;
    *out = col;
    return CLEVAL_OK;

fail:
    cleval_column_close(col);
    return status;
}

void cleval_column_close(cleval_column *col)
{
    if (!col) return;
    chunk_reader_close(col->chunks);
    if (col->file_space >= 0) H5Sclose(col->file_space);
    if (col->dset >= 0) H5Dclose(col->dset);
    free(col->scratch);
    free(col->name);
    free(col);
}

uint64_t cleval_column_rows(const cleval_column *col)
{
    return col->rows;
}

uint32_t cleval_column_row_rank(const cleval_column *col)
{
    return col->row_rank;
}

const uint64_t *cleval_column_row_shape(const cleval_column *col)
{
    return col->row_shape;
}

uint64_t cleval_column_row_size(const cleval_column *col)
{
    return col->row_size;
}

cleval_status cleval_column_check_rows(const cleval_column *first, const cleval_column *other)
{
    if (first->rows == other->rows) return CLEVAL_OK;
    return cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' has %llu samples but '%s' has %llu",
                       first->ds->path, first->name, (unsigned long long)first->rows, other->name,
                       (unsigned long long)other->rows);
}

const char *cleval_column_path(const cleval_column *col)
{
    return col->ds->path;
}

const char *cleval_column_name(const cleval_column *col)
{
    return col->name;
}

const char *cleval_column_type_name(const cleval_column *col)
{
    return element_names[col->type];
}

uint64_t cleval_column_chunks_inflated(const cleval_column *col)
{
    return col->chunks ? chunk_reader_inflated(col->chunks) : 0;
}

/* The first HDF5 filter of the column's pipeline that this HDF5 library cannot apply (a
 * compression plugin that is not installed, such as LZF): its id and stored name ("" when it
 * has none), or -1 when every filter is available. */
static H5Z_filter_t missing_filter(const cleval_column *col, char *name, size_t size)
{
    hid_t dcpl = H5Dget_create_plist(col->dset);
    if (dcpl < 0) return -1;
    H5Z_filter_t missing = -1;
    int n = H5Pget_nfilters(dcpl);
    for (int i = 0; i < n && missing < 0; i++) {
        unsigned flags = 0, config = 0;
        size_t n_values = 0;
        name[0] = '\0';
        H5Z_filter_t id =
            H5Pget_filter2(dcpl, (unsigned)i, &flags, &n_values, NULL, size, name, &config);
        if (id >= 0 && H5Zfilter_avail(id) <= 0) missing = id;
    }
    H5Pclose(dcpl);
    return missing;
}

/* The failure of a read: a missing filter named, else a damaged file suspected. */
static cleval_status read_failed(const cleval_column *col, uint64_t row0, uint64_t n)
{
    char name[64];
    H5Z_filter_t filter = missing_filter(col, name, sizeof name);
    if (filter >= 0)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                           "%s: '%s' is compressed with HDF5 filter %d%s%s%s, which is not "
                           "available here (set HDF5_PLUGIN_PATH to the folder of its plugin)",
                           col->ds->path, col->name, (int)filter, name[0] ? " (" : "", name,
                           name[0] ? ")" : "");
    return cleval_fail(CLEVAL_ERR_INPUT,
                       "%s: reading rows %llu..%llu of '%s' failed (file truncated or damaged?)",
                       col->ds->path, (unsigned long long)row0, (unsigned long long)(row0 + n),
                       col->name);
}

static cleval_status read_run(cleval_column *col, uint64_t row0, uint64_t n, hid_t mem_type,
                              void *dest);

/* Reads rows [row0, row0 + n) as `mem_type` (elements of `element_size` bytes; HDF5 converts
 * from the stored type) into `dest`: deflated chunks of the stored type through the chunk
 * reader, anything else (or a batch it hands back) by H5Dread in runs of rows_per_read. */
static cleval_status read_rows(cleval_column *col, uint64_t row0, uint64_t n, hid_t mem_type,
                               size_t element_size, void *dest)
{
    if (row0 > col->rows || n > col->rows - row0)
        return cleval_fail(CLEVAL_ERR_USAGE,
                           "%s: rows %llu..%llu of '%s' are out of range (%llu rows)",
                           col->ds->path, (unsigned long long)row0, (unsigned long long)(row0 + n),
                           col->name, (unsigned long long)col->rows);
    if (col->chunks && H5Tequal(mem_type, memory_type(col->type)) > 0) {
        bool handled;
        cleval_status status = chunk_reader_read(col->chunks, row0, n, dest, &handled);
        if (status != CLEVAL_OK || handled) return status;
    }
    size_t row_bytes = (size_t)col->row_size * element_size;
    for (uint64_t done = 0; done < n;) {
        uint64_t run = n - done < col->rows_per_read ? n - done : col->rows_per_read;
        cleval_status status =
            read_run(col, row0 + done, run, mem_type, (char *)dest + done * row_bytes);
        if (status != CLEVAL_OK) return status;
        done += run;
    }
    return CLEVAL_OK;
}

/* Reads rows [row0, row0 + n) in the stored type into `dest`. */
static cleval_status read_raw(cleval_column *col, uint64_t row0, uint64_t n, void *dest)
{
    return read_rows(col, row0, n, memory_type(col->type), col->element_size, dest);
}

/* An integer element of `type` at `p`, widened (every stored integer type fits int64 when it
 * fits the type read: cleval_column_fits). */
static int64_t load_integer(element_type type, const void *p)
{
    switch (type) {
    case ELEMENT_I8: return *(const int8_t *)p;
    case ELEMENT_U8: return *(const uint8_t *)p;
    case ELEMENT_I16: return *(const int16_t *)p;
    case ELEMENT_U16: return *(const uint16_t *)p;
    case ELEMENT_I32: return *(const int32_t *)p;
    case ELEMENT_U32: return *(const uint32_t *)p;
    case ELEMENT_I64: return *(const int64_t *)p;
    case ELEMENT_U64: return (int64_t) * (const uint64_t *)p;
    default: return 0;
    }
}

static void store_integer(element_type type, int64_t value, void *p)
{
    switch (type) {
    case ELEMENT_I8: *(int8_t *)p = (int8_t)value; break;
    case ELEMENT_U8: *(uint8_t *)p = (uint8_t)value; break;
    case ELEMENT_I16: *(int16_t *)p = (int16_t)value; break;
    case ELEMENT_U16: *(uint16_t *)p = (uint16_t)value; break;
    case ELEMENT_I32: *(int32_t *)p = (int32_t)value; break;
    case ELEMENT_U32: *(uint32_t *)p = (uint32_t)value; break;
    case ELEMENT_I64: *(int64_t *)p = value; break;
    case ELEMENT_U64: *(uint64_t *)p = (uint64_t)value; break;
    default: break;
    }
}

/* Rows [row0, row0 + n) of a caller array as `mem_type`: a copy when it is the stored type
 * (every read but cleval_column_read_as into another integer type), else a conversion. */
static cleval_status read_array_run(cleval_column *col, const cleval_array *array, uint64_t row0,
                                    uint64_t n, hid_t mem_type, void *dest)
{
    size_t count = (size_t)(n * col->row_size);
    const char *src =
        (const char *)array->data + (size_t)(row0 * col->row_size) * col->element_size;
    if (H5Tequal(mem_type, memory_type(col->type)) > 0) {
        memcpy(dest, src, count * col->element_size);
        return CLEVAL_OK;
    }
    element_type to = ELEMENT_I8;
    while (to <= ELEMENT_U64 && H5Tequal(mem_type, memory_type(to)) <= 0)
        to++;
    if (to > ELEMENT_U64 || !is_integer(col->type))
        return cleval_fail(CLEVAL_ERR_INTERNAL, "%s: '%s' read as an unexpected type",
                           col->ds->path, col->name);
    size_t to_size = memory_size(to);
    for (size_t i = 0; i < count; i++)
        store_integer(to, load_integer(col->type, src + i * col->element_size),
                      (char *)dest + i * to_size);
    return CLEVAL_OK;
}

/* One H5Dread of rows [row0, row0 + n) (or their copy from a caller array). */
static cleval_status read_run(cleval_column *col, uint64_t row0, uint64_t n, hid_t mem_type,
                              void *dest)
{
    if (col->array) return read_array_run(col, col->array, row0, n, mem_type, dest);
    hsize_t start[CLEVAL_MAX_RANK] = {row0}, count[CLEVAL_MAX_RANK] = {n};
    for (uint32_t d = 0; d < col->row_rank; d++)
        count[d + 1] = col->row_shape[d];
    hid_t mem_space = H5Screate_simple((int)col->row_rank + 1, count, NULL);
    herr_t err = mem_space < 0 ? -1
                               : H5Sselect_hyperslab(col->file_space, H5S_SELECT_SET, start, NULL,
                                                     count, NULL);
    if (err >= 0) err = H5Dread(col->dset, mem_type, mem_space, col->file_space, H5P_DEFAULT, dest);
    if (mem_space >= 0) H5Sclose(mem_space);
    if (err < 0) return read_failed(col, row0, n);
    return CLEVAL_OK;
}

static cleval_status ensure_scratch(cleval_column *col, size_t bytes)
{
    if (bytes <= col->scratch_bytes) return CLEVAL_OK;
    void *grown = realloc(col->scratch, bytes);
    if (!grown)
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading %s: '%s' (%zu bytes)",
                           col->ds->path, col->name, bytes);
    col->scratch = grown;
    col->scratch_bytes = bytes;
    return CLEVAL_OK;
}

#define CONVERT_LOOP(src_type, dest, src, count)                                                   \
    do {                                                                                           \
        const src_type *s_ = (const src_type *)(src);                                              \
        for (size_t i_ = 0; i_ < (count); i_++)                                                    \
            (dest)[i_] = (float)s_[i_];                                                            \
    } while (0)

static void convert_to_float(element_type type, const void *src, size_t count, float *dest)
{
    switch (type) {
    case ELEMENT_I8: CONVERT_LOOP(int8_t, dest, src, count); break;
    case ELEMENT_U8: CONVERT_LOOP(uint8_t, dest, src, count); break;
    case ELEMENT_I16: CONVERT_LOOP(int16_t, dest, src, count); break;
    case ELEMENT_U16: CONVERT_LOOP(uint16_t, dest, src, count); break;
    case ELEMENT_I32: CONVERT_LOOP(int32_t, dest, src, count); break;
    case ELEMENT_U32: CONVERT_LOOP(uint32_t, dest, src, count); break;
    case ELEMENT_I64: CONVERT_LOOP(int64_t, dest, src, count); break;
    case ELEMENT_U64: CONVERT_LOOP(uint64_t, dest, src, count); break;
    case ELEMENT_F64: CONVERT_LOOP(double, dest, src, count); break;
    case ELEMENT_F32:
    case ELEMENT_OTHER_FLOAT:
    case ELEMENT_F16: break; /* read straight into dest */
    }
}

/* The index of the first non-finite value, or `count` when all are finite. The common case
 * runs branch-free in blocks so the compiler can vectorise it. */
static size_t first_non_finite(const float *values, size_t count)
{
    const size_t block = 256;
    for (size_t start = 0; start < count; start += block) {
        size_t end = start + block < count ? start + block : count;
        int bad = 0;
        for (size_t i = start; i < end; i++)
            bad |= !isfinite(values[i]);
        if (bad)
            for (size_t i = start; i < end; i++)
                if (!isfinite(values[i])) return i;
    }
    return count;
}

cleval_status cleval_column_read_f32(cleval_column *col, uint64_t row0, uint64_t n, float *out)
{
    if (n == 0) return CLEVAL_OK;
    size_t count = (size_t)(n * col->row_size);
    cleval_status status;
    bool direct =
        col->type == ELEMENT_F32 || col->type == ELEMENT_OTHER_FLOAT || col->type == ELEMENT_F16;
    if (direct) {
        if ((status = read_raw(col, row0, n, out)) != CLEVAL_OK) return status;
    } else {
        if ((status = ensure_scratch(col, count * col->element_size)) != CLEVAL_OK ||
            (status = read_raw(col, row0, n, col->scratch)) != CLEVAL_OK)
            return status;
        convert_to_float(col->type, col->scratch, count, out);
    }
    /* Integers always convert to finite floats; only stored floats can hold NaN or Inf (a
     * float64 beyond float32's range becomes Inf here and is caught too). */
    if (col->kind == CLEVAL_COLUMN_FEATURES && !is_integer(col->type)) {
        size_t bad = first_non_finite(out, count);
        if (bad < count) {
            float v = out[bad];
            return cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' sample %llu holds %s", col->ds->path,
                               col->name, (unsigned long long)(row0 + bad / col->row_size),
                               isnan(v) ? "NaN" : "Inf (or a value beyond float32 range)");
        }
    }
    return CLEVAL_OK;
}

/* Converts labels to int32 while tracking the smallest and largest value; the loop has no
 * branches so it vectorises. Out-of-range values are located afterwards, only when present. */
#define LABEL_CONVERT(src_type)                                                                    \
    do {                                                                                           \
        const src_type *s_ = (const src_type *)src;                                                \
        src_type lo_ = s_[0], hi_ = s_[0];                                                         \
        for (size_t i_ = 0; i_ < count; i_++) {                                                    \
            src_type v_ = s_[i_];                                                                  \
            lo_ = v_ < lo_ ? v_ : lo_;                                                             \
            hi_ = v_ > hi_ ? v_ : hi_;                                                             \
            out[i_] = (int32_t)v_;                                                                 \
        }                                                                                          \
        in_range = !(lo_ < 0) && !((uint64_t)hi_ > (uint64_t)INT32_MAX);                           \
        max = (int32_t)hi_;                                                                        \
    } while (0)

#define LABEL_FIND_BAD(src_type)                                                                   \
    do {                                                                                           \
        const src_type *s_ = (const src_type *)src;                                                \
        for (size_t i_ = 0; i_ < count; i_++)                                                      \
            if (s_[i_] < 0 || (uint64_t)s_[i_] > (uint64_t)INT32_MAX) {                            \
                bad = i_;                                                                          \
                negative = s_[i_] < 0;                                                             \
                bad_text_value = s_[i_] < 0 ? (long long)s_[i_] : 0;                               \
                bad_unsigned = s_[i_] < 0 ? 0 : (unsigned long long)s_[i_];                        \
                break;                                                                             \
            }                                                                                      \
    } while (0)

#define FOR_EACH_INTEGER_TYPE(ACTION)                                                              \
    switch (col->type) {                                                                           \
    case ELEMENT_I8: ACTION(int8_t); break;                                                        \
    case ELEMENT_U8: ACTION(uint8_t); break;                                                       \
    case ELEMENT_I16: ACTION(int16_t); break;                                                      \
    case ELEMENT_U16: ACTION(uint16_t); break;                                                     \
    case ELEMENT_I32: ACTION(int32_t); break;                                                      \
    case ELEMENT_U32: ACTION(uint32_t); break;                                                     \
    case ELEMENT_I64: ACTION(int64_t); break;                                                      \
    case ELEMENT_U64: ACTION(uint64_t); break;                                                     \
    default: break;                                                                                \
    }

/* The failure for the first of `labels` at or above the file's --max-classes. */
static cleval_status label_above_limit(const cleval_column *col, uint64_t row0,
                                       const int32_t *labels, size_t count, uint32_t limit)
{
    size_t i = 0;
    while (i + 1 < count && (uint32_t)labels[i] < limit)
        i++;
    return cleval_fail(CLEVAL_ERR_INPUT,
                       "%s: '%s' sample %llu has label %d, above --max-classes %u (raise it if "
                       "the model really has that many classes)",
                       col->ds->path, col->name, (unsigned long long)(row0 + i), labels[i], limit);
}

cleval_status cleval_column_read_i32(cleval_column *col, uint64_t row0, uint64_t n, int32_t *out,
                                     int32_t *max_label)
{
    if (max_label) *max_label = -1;
    if (n == 0) return CLEVAL_OK;
    if (!is_integer(col->type))
        return cleval_fail(CLEVAL_ERR_INTERNAL, "%s: '%s' is not an integer column", col->ds->path,
                           col->name);
    size_t count = (size_t)n;
    cleval_status status;
    const void *src = out; /* int32 is read in place and checked there */
    if (col->type != ELEMENT_I32) {
        if ((status = ensure_scratch(col, count * col->element_size)) != CLEVAL_OK) return status;
        src = col->scratch;
    }
    if ((status = read_raw(col, row0, n, (void *)src)) != CLEVAL_OK) return status;

    bool in_range = true;
    int32_t max = -1;
    FOR_EACH_INTEGER_TYPE(LABEL_CONVERT)
    if (!in_range) {
        size_t bad = count;
        bool negative = false;
        long long bad_text_value = 0;
        unsigned long long bad_unsigned = 0;
        FOR_EACH_INTEGER_TYPE(LABEL_FIND_BAD)
        unsigned long long sample = (unsigned long long)(row0 + bad);
        if (negative)
            return cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' sample %llu has label %lld (below 0)",
                               col->ds->path, col->name, sample, bad_text_value);
        return cleval_fail(CLEVAL_ERR_INPUT,
                           "%s: '%s' sample %llu has label %llu (above the largest supported, %d)",
                           col->ds->path, col->name, sample, bad_unsigned, INT32_MAX);
    }
    uint32_t limit = col->ds->max_classes;
    if (limit && (uint32_t)max >= limit) return label_above_limit(col, row0, out, count, limit);
    if (max_label) *max_label = max;
    return CLEVAL_OK;
}

/* The stored integer type's range. */
static void integer_range(element_type type, double *lo, double *hi)
{
    static const double los[] = {-128.0, 0, -32768.0, 0, -2147483648.0, 0, -9223372036854775808.0, 0};
    static const double his[] = {127.0,        255.0,        32767.0,
                                 65535.0,      2147483647.0, 4294967295.0,
                                 9223372036854775807.0, 18446744073709551615.0};
    *lo = los[type];
    *hi = his[type];
}

/* The integer types rows can be read as (cleval_elem_type after CLEVAL_ELEM_F32, in order):
 * bytes and range. */
static const struct {
    size_t size;
    double lo, hi;
} read_types[] = {
    {1, 0, 255.0},                                        /* CLEVAL_ELEM_U8 */
    {1, -128.0, 127.0},                                   /* CLEVAL_ELEM_I8 */
    {2, 0, 65535.0},                                      /* CLEVAL_ELEM_U16 */
    {2, -32768.0, 32767.0},                               /* CLEVAL_ELEM_I16 */
    {4, -2147483648.0, 2147483647.0},                     /* CLEVAL_ELEM_I32 */
    {8, -9223372036854775808.0, 9223372036854775807.0},   /* CLEVAL_ELEM_I64 */
};

static hid_t elem_memory_type(cleval_elem_type type)
{
    switch (type) {
    case CLEVAL_ELEM_U8: return H5T_NATIVE_UINT8;
    case CLEVAL_ELEM_I8: return H5T_NATIVE_INT8;
    case CLEVAL_ELEM_U16: return H5T_NATIVE_UINT16;
    case CLEVAL_ELEM_I16: return H5T_NATIVE_INT16;
    case CLEVAL_ELEM_I32: return H5T_NATIVE_INT32;
    case CLEVAL_ELEM_I64: return H5T_NATIVE_INT64;
    case CLEVAL_ELEM_F32:
    case CLEVAL_ELEM_F16: break;
    }
    return H5T_NATIVE_FLOAT;
}

size_t cleval_column_elem_size(cleval_elem_type type)
{
    return type == CLEVAL_ELEM_F32 ? 4 : type == CLEVAL_ELEM_F16 ? 2 : read_types[type - 1].size;
}

bool cleval_column_fits(const cleval_column *col, cleval_elem_type type)
{
    if (type == CLEVAL_ELEM_F32) return true;
    if (type == CLEVAL_ELEM_F16) return col->type == ELEMENT_F16;
    if (!is_integer(col->type)) return false;
    double lo, hi;
    integer_range(col->type, &lo, &hi);
    return lo >= read_types[type - 1].lo && hi <= read_types[type - 1].hi;
}

bool cleval_column_is_integer(const cleval_column *col)
{
    return is_integer(col->type);
}

/* The first of `count` half values (bit patterns) that is NaN or infinite (exponent all ones),
 * or `count`. */
static size_t first_non_finite_half(const uint16_t *bits, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if ((bits[i] & 0x7c00u) == 0x7c00u) return i;
    return count;
}

/* Half rows as they are stored (a file's own float16 values), checked to be finite as
 * cleval_column_read_f32 checks floats. */
static cleval_status read_half(cleval_column *col, uint64_t row0, uint64_t n, uint16_t *out)
{
    hid_t half = half_memory_type();
    if (half < 0)
        return cleval_fail(CLEVAL_ERR_INTERNAL, "%s: cannot describe float16 to HDF5",
                           col->ds->path);
    cleval_status status = read_rows(col, row0, n, half, sizeof *out, out);
    H5Tclose(half);
    if (status != CLEVAL_OK || col->kind != CLEVAL_COLUMN_FEATURES) return status;
    size_t count = (size_t)(n * col->row_size), bad = first_non_finite_half(out, count);
    if (bad < count)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' sample %llu holds %s", col->ds->path,
                           col->name, (unsigned long long)(row0 + bad / col->row_size),
                           out[bad] & 0x3ffu ? "NaN" : "Inf");
    return CLEVAL_OK;
}

cleval_status cleval_column_read_as(cleval_column *col, uint64_t row0, uint64_t n,
                                    cleval_elem_type type, void *out)
{
    if (type == CLEVAL_ELEM_F32) return cleval_column_read_f32(col, row0, n, out);
    if (!cleval_column_fits(col, type))
        return cleval_fail(CLEVAL_ERR_INTERNAL, "%s: '%s' (%s) does not fit the type read",
                           col->ds->path, col->name, element_names[col->type]);
    if (n == 0) return CLEVAL_OK;
    if (type == CLEVAL_ELEM_F16) return read_half(col, row0, n, out);
    return read_rows(col, row0, n, elem_memory_type(type), cleval_column_elem_size(type), out);
}
