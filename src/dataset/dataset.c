/* Opening and checking HDF5 files: existence, the HDF5 signature, damage, and the small
 * metadata a report needs (class names, attributes). Row reads live in column.c. */
#include "dataset_internal.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/input.h"

#include "text/printable.h"

/* HDF5's signature sits at offset 0 or, after a user block, at 512, 1024, 2048, ... */
static bool has_hdf5_signature(FILE *f, uint64_t size)
{
    static const unsigned char signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    for (uint64_t offset = 0; offset + sizeof signature <= size;
         offset = offset ? offset * 2 : 512) {
        unsigned char bytes[8];
        if (fseeko(f, (off_t)offset, SEEK_SET) != 0 || fread(bytes, 1, 8, f) != 8) return false;
        if (memcmp(bytes, signature, sizeof signature) == 0) return true;
    }
    return false;
}

cleval_status cleval_dataset_open(const char *path, cleval_dataset **out)
{
    *out = NULL;
    cleval_hdf5_init();
    FILE *probe;
    uint64_t size;
    cleval_status status = cleval_input_fopen(path, "an HDF5 file", &probe, &size);
    if (status != CLEVAL_OK) return status;
    bool signed_hdf5 = has_hdf5_signature(probe, size);
    fclose(probe);
    if (!signed_hdf5) return cleval_fail(CLEVAL_ERR_INPUT, "%s: not an HDF5 file", path);

    /* The signature is there, so a failure to open means a damaged or truncated file. (No
     * H5Fis_hdf5 first: it only searches for the same signature, opening the file once more.)
     * The file was a regular one just above; HDF5 opens it by name, so check once more right
     * before, in case it was replaced in between. */
    if ((status = cleval_input_check(path, "an HDF5 file")) != CLEVAL_OK ||
        (status = dataset_probe(path)) != CLEVAL_OK)
        return status;
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: HDF5 file is truncated or damaged", path);

    cleval_dataset *ds = calloc(1, sizeof *ds);
    char *path_copy = malloc(strlen(path) + 1);
    hid_t dapl = dataset_access_plist();
    if (!ds || !path_copy || dapl < 0) {
        free(ds);
        free(path_copy);
        if (dapl >= 0) H5Pclose(dapl);
        H5Fclose(file);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory opening %s", path);
    }
    strcpy(path_copy, path);
    ds->path = path_copy;
    ds->file = file;
    ds->dapl = dapl;
    ds->refs = 1;
    if ((status = dataset_check_linked_files(path, file, dapl)) != CLEVAL_OK) {
        cleval_dataset_close(ds);
        return status;
    }
    *out = ds;
    return CLEVAL_OK;
}

cleval_dataset *cleval_dataset_share(cleval_dataset *ds)
{
    ds->refs++;
    return ds;
}

void cleval_dataset_close(cleval_dataset *ds)
{
    if (!ds || --ds->refs > 0) return;
    dataset_free_arrays(ds);
    if (ds->dapl >= 0) H5Pclose(ds->dapl);
    if (ds->file >= 0) H5Fclose(ds->file);
    free(ds->path);
    free(ds);
}

const char *cleval_dataset_path(const cleval_dataset *ds)
{
    return ds->path;
}

bool cleval_dataset_has(const cleval_dataset *ds, const char *name)
{
    if (!name || !*name) return false;
    if (ds->arrays) return dataset_find_array(ds, name) != NULL;
    /* H5Lexists fails (rather than answering no) when an intermediate group is missing. */
    if (H5Lexists(ds->file, name, H5P_DEFAULT) <= 0) return false;
    H5O_info_t info;
    if (H5Oget_info_by_name2(ds->file, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return false;
    return info.type == H5O_TYPE_DATASET;
}

void cleval_dataset_free_names(char **names, uint32_t count)
{
    if (!names) return;
    for (uint32_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

/* The most bytes an attribute value can hold in an HDF5 object header. */
enum { MAX_ATTRIBUTE_BYTES = 1 << 16 };

/* Deflate expands at most about 1032 times; no filter HDF5 ships expands more. */
enum { MAX_EXPANSION = 1032 };

/* True when the values a dataset declares (`declared_bytes` in memory) are really stored in the
 * file: a damaged file may declare a huge shape over little or no storage (unwritten values
 * read as zeros), and reading it would allocate the declared size. */
static bool storage_backs(hid_t dset, uint64_t declared_bytes)
{
    uint64_t file_size = 0, stored = H5Dget_storage_size(dset);
    hid_t dcpl = H5Dget_create_plist(dset);
    int filters = dcpl >= 0 ? H5Pget_nfilters(dcpl) : -1;
    if (dcpl >= 0) H5Pclose(dcpl);
    /* The size of the file that holds the dataset (behind an external link, that one). */
    if (filters < 0 || !dataset_file_size(dset, &file_size) || stored > file_size) return false;
    if (filters == 0) return stored >= declared_bytes;
    return declared_bytes / MAX_EXPANSION <= stored;
}

static char *copy_trimmed(const char *text, size_t max_len)
{
    size_t n = text ? strnlen(text, max_len) : 0;
    char *copy = malloc(n + 1);
    if (!copy) return NULL;
    if (n) memcpy(copy, text, n);
    copy[n] = '\0';
    return copy;
}

/* Reads the `n` values of a string dataset (`attribute` false) or attribute `obj`, fixed- or
 * variable-length, into heap strings in `list` (n slots, zeroed); a dataset's storage has been
 * checked by check_string_storage(). Variable-length strings are
 * looked up by vlen_strings.c, not by HDF5, and cut at 4096 bytes. The memory type of
 * fixed-length ones keeps the stored padding: a plain fixed-length copy of H5T_C_S1 is
 * null-terminated, so converting to it a null-padded value that fills its width (h5py's
 * np.bytes_) would drop the last character to make room for the terminator; copy_trimmed adds
 * the terminator instead. */
static cleval_status read_string_values(cleval_dataset *ds, hid_t obj, bool attribute,
                                        const char *name, hid_t ftype, uint32_t n, char **list)
{
    if (H5Tis_variable_str(ftype) > 0)
        return dataset_read_vlen_strings(ds, obj, attribute, name, n, 4096, list);
    const char *what = attribute ? "attribute " : "";
    size_t width = H5Tget_size(ftype);
    /* An attribute lives in its object header (64 KiB at most): a larger declared width is
     * damage, and allocating it would be the damage's size. */
    if (attribute && width > MAX_ATTRIBUTE_BYTES)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: attribute '%s' declares %zu bytes", ds->path,
                           name, width);
    cleval_status status = CLEVAL_OK;
    hid_t mtype = H5Tcopy(H5T_C_S1);
    char *raw = calloc((size_t)(n ? n : 1) * width + 1, 1);
    if (mtype < 0 || !raw) {
        if (mtype >= 0) H5Tclose(mtype);
        free(raw);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading %s: %s'%s'", ds->path, what,
                           name);
    }
    H5Tset_cset(mtype, H5Tget_cset(ftype));
    H5Tset_size(mtype, width);
    H5Tset_strpad(mtype, H5Tget_strpad(ftype));
    herr_t read = attribute ? H5Aread(obj, mtype, raw)
                            : H5Dread(obj, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw);
    if (read < 0) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: cannot read %s'%s'", ds->path, what, name);
    } else {
        for (uint32_t i = 0; i < n; i++)
            list[i] = copy_trimmed(raw + (size_t)i * width, width);
        for (uint32_t i = 0; i < n && status == CLEVAL_OK; i++)
            if (!list[i])
                status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading %s: %s'%s'",
                                     ds->path, what, name);
    }
    H5Tclose(mtype);
    free(raw);
    return status;
}

/* Checks the storage of string dataset `dset` of type `ftype` (see validate.c) before anything
 * is allocated for its declared length: a variable-length string stores a heap reference. */
static cleval_status check_string_storage(cleval_dataset *ds, hid_t dset, const char *name,
                                          hid_t ftype)
{
    size_t element = H5Tget_size(ftype);
    file_format format;
    if (H5Tis_variable_str(ftype) > 0) {
        if (!dataset_file_format(dset, &format))
            return cleval_fail(CLEVAL_ERR_INPUT,
                               "%s: cannot read '%s' (its file's address format is not "
                               "supported)",
                               ds->path, name);
        element = dataset_vlen_reference_bytes(&format);
    }
    return dataset_check_storage(ds, dset, name, element);
}

/* Reads a 1-D string dataset, fixed- or variable-length, into heap strings. */
static cleval_status read_strings(cleval_dataset *ds, hid_t dset, const char *name, char ***names,
                                  uint32_t *count)
{
    cleval_status status = CLEVAL_OK;
    hid_t ftype = H5Dget_type(dset), space = H5Dget_space(dset);
    hsize_t dims[1] = {0};
    char **list = NULL;
    uint32_t n = 0;
    if (ftype < 0 || space < 0 || H5Tget_class(ftype) != H5T_STRING ||
        H5Sget_simple_extent_ndims(space) != 1) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' must be a 1-D string dataset", ds->path,
                             name);
        goto done;
    }
    H5Sget_simple_extent_dims(space, dims, NULL);
    /* Every entry takes at least one stored byte. */
    if (dims[0] > UINT32_MAX || !storage_backs(dset, dims[0])) {
        status = cleval_fail(CLEVAL_ERR_INPUT,
                             "%s: '%s' declares %llu entries the file does not hold", ds->path,
                             name, (unsigned long long)dims[0]);
        goto done;
    }
    if (ds->max_classes && dims[0] > ds->max_classes) {
        status = cleval_fail(CLEVAL_ERR_INPUT,
                             "%s: '%s' has %llu entries, more than --max-classes %u (raise it "
                             "if the model really has that many classes)",
                             ds->path, name, (unsigned long long)dims[0], ds->max_classes);
        goto done;
    }
    n = (uint32_t)dims[0];
    if ((status = check_string_storage(ds, dset, name, ftype)) != CLEVAL_OK) goto done;
    list = calloc(n ? n : 1, sizeof *list);
    if (!list) {
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading %s: '%s'", ds->path, name);
        goto done;
    }
    status = read_string_values(ds, dset, false, name, ftype, n, list);

done:
    if (space >= 0) H5Sclose(space);
    if (ftype >= 0) H5Tclose(ftype);
    if (status != CLEVAL_OK) {
        cleval_dataset_free_names(list, n);
        return status;
    }
    *names = list;
    *count = n;
    return CLEVAL_OK;
}

/* Class names end up on the user's terminal and in JSON: each is replaced by its printable
 * form (control characters escaped, invalid UTF-8 written out), see text/printable.h. */
static cleval_status make_printable(cleval_dataset *ds, char **names, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        char *printable = cleval_text_printable_dup(names[i]);
        if (!printable)
            return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading %s: 'class_names'",
                               ds->path);
        free(names[i]);
        names[i] = printable;
    }
    return CLEVAL_OK;
}

void cleval_dataset_limit_classes(cleval_dataset *ds, uint32_t max_classes)
{
    ds->max_classes = max_classes ? max_classes : CLEVAL_DEFAULT_MAX_CLASSES;
}

cleval_status cleval_check_class_count(const char *what, uint64_t n_classes, uint32_t max_classes)
{
    if (!max_classes) max_classes = CLEVAL_DEFAULT_MAX_CLASSES;
    if (n_classes <= max_classes) return CLEVAL_OK;
    return cleval_fail(CLEVAL_ERR_INPUT,
                       "%s has %llu classes, more than --max-classes %u (raise it if the model "
                       "really has that many classes)",
                       what, (unsigned long long)n_classes, max_classes);
}

cleval_status cleval_dataset_class_names(cleval_dataset *ds, char ***names, uint32_t *count)
{
    *names = NULL;
    *count = 0;
    if (!cleval_dataset_has(ds, "class_names")) return CLEVAL_OK;
    hid_t dset = H5Dopen2(ds->file, "class_names", ds->dapl);
    if (dset < 0)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: cannot open 'class_names'", ds->path);
    cleval_status status = read_strings(ds, dset, "class_names", names, count);
    H5Dclose(dset);
    if (status == CLEVAL_OK) status = make_printable(ds, *names, *count);
    if (status != CLEVAL_OK) {
        cleval_dataset_free_names(*names, *count);
        *names = NULL;
        *count = 0;
    }
    return status;
}

cleval_status cleval_dataset_attribute(cleval_dataset *ds, const char *name, char *out,
                                       size_t size)
{
    out[0] = '\0';
    if (ds->arrays) return CLEVAL_OK; /* arrays in memory have no attributes */
    cleval_status status = dataset_check_root_attributes(ds);
    if (status != CLEVAL_OK || H5Aexists(ds->file, name) <= 0) return status;
    hid_t attr = H5Aopen(ds->file, name, H5P_DEFAULT);
    hid_t ftype = attr >= 0 ? H5Aget_type(attr) : H5I_INVALID_HID;
    hid_t space = attr >= 0 ? H5Aget_space(attr) : H5I_INVALID_HID;
    if (ftype < 0 || space < 0) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: cannot read attribute '%s'", ds->path, name);
    } else if (H5Sget_simple_extent_npoints(space) != 1) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: attribute '%s' is not a single value",
                             ds->path, name);
    } else if (H5Tget_class(ftype) == H5T_STRING) {
        char *value = NULL;
        status = read_string_values(ds, attr, true, name, ftype, 1, &value);
        if (status == CLEVAL_OK) snprintf(out, size, "%s", value);
        free(value);
    } else if (H5Tget_class(ftype) == H5T_INTEGER) {
        long long value = 0;
        if (H5Aread(attr, H5T_NATIVE_LLONG, &value) >= 0)
            snprintf(out, size, "%lld", value);
        else
            status = cleval_fail(CLEVAL_ERR_INPUT, "%s: cannot read attribute '%s'", ds->path,
                                 name);
    } else if (H5Tget_class(ftype) == H5T_FLOAT) {
        double value = 0;
        if (H5Aread(attr, H5T_NATIVE_DOUBLE, &value) >= 0)
            snprintf(out, size, "%.17g", value);
        else
            status = cleval_fail(CLEVAL_ERR_INPUT, "%s: cannot read attribute '%s'", ds->path,
                                 name);
    } else {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: attribute '%s' is neither text nor a number",
                             ds->path, name);
    }
    if (space >= 0) H5Sclose(space);
    if (ftype >= 0) H5Tclose(ftype);
    if (attr >= 0) H5Aclose(attr);
    return status;
}

typedef struct name_list {
    char **names;
    uint32_t count, capacity;
} name_list;

static herr_t collect_name(hid_t obj, const char *name, const H5A_info_t *info, void *user)
{
    (void)obj, (void)info;
    name_list *list = user;
    if (list->count == list->capacity) {
        uint32_t capacity = list->capacity ? 2 * list->capacity : 16;
        char **grown = realloc(list->names, capacity * sizeof *grown);
        if (!grown) return -1;
        list->names = grown;
        list->capacity = capacity;
    }
    if (!(list->names[list->count] = copy_trimmed(name, MAX_ATTRIBUTE_BYTES))) return -1;
    list->count++;
    return 0;
}

cleval_status cleval_dataset_attribute_names(cleval_dataset *ds, char ***names, uint32_t *count)
{
    name_list list = {0};
    hsize_t index = 0;
    if (ds->arrays) {
        *names = NULL;
        *count = 0;
        return CLEVAL_OK;
    }
    /* Listing decodes every attribute message: the same checks as reading one. */
    cleval_status status = dataset_check_root_attributes(ds);
    if (status != CLEVAL_OK) return status;
    herr_t err = H5Aiterate2(ds->file, H5_INDEX_NAME, H5_ITER_INC, &index, collect_name, &list);
    if (err < 0) {
        cleval_dataset_free_names(list.names, list.count);
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: cannot list its attributes", ds->path);
    }
    *names = list.names;
    *count = list.count;
    return CLEVAL_OK;
}

/* The most values one block of cleval_dataset_read_count_blocks holds: 4 MiB of uint64. */
enum { COUNT_BLOCK_CELLS = 1 << 19 };

/* Reads the blocks of an open, checked [rows][cols] dataset: whole rows while a row fits a
 * block, else pieces of one row at a time; the bounded hyperslab is read into one buffer. */
static cleval_status read_blocks(cleval_dataset *ds, hid_t dset, const char *name,
                                 cleval_count_block *block, cleval_count_block_fn each, void *user)
{
    uint32_t rows = block->rows, cols = block->cols;
    bool whole_rows = cols <= COUNT_BLOCK_CELLS;
    uint32_t step_rows = whole_rows ? COUNT_BLOCK_CELLS / cols : 1;
    uint32_t step_cols = whole_rows ? cols : COUNT_BLOCK_CELLS;
    if (step_rows > rows) step_rows = rows;
    uint64_t *buffer = malloc((size_t)step_rows * step_cols * sizeof *buffer);
    hid_t file_space = H5Dget_space(dset);
    cleval_status status = CLEVAL_OK;
    if (!buffer || file_space < 0)
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading %s: '%s'", ds->path, name);
    for (uint32_t r = 0; status == CLEVAL_OK && r < rows; r += step_rows)
        for (uint32_t c = 0; status == CLEVAL_OK && c < cols; c += step_cols) {
            block->row0 = r;
            block->col0 = c;
            block->n_rows = rows - r < step_rows ? rows - r : step_rows;
            block->n_cols = cols - c < step_cols ? cols - c : step_cols;
            hsize_t start[2] = {r, c}, size[2] = {block->n_rows, block->n_cols};
            hid_t memory = H5Screate_simple(2, size, NULL);
            bool ok =
                memory >= 0 &&
                H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, NULL, size, NULL) >= 0 &&
                H5Dread(dset, H5T_NATIVE_UINT64, memory, file_space, H5P_DEFAULT, buffer) >= 0;
            if (memory >= 0) H5Sclose(memory);
            if (!ok) {
                status = cleval_fail(CLEVAL_ERR_INPUT, "%s: cannot read '%s'", ds->path, name);
                break;
            }
            block->cells = buffer;
            status = each(user, block);
        }
    if (file_space >= 0) H5Sclose(file_space);
    free(buffer);
    return status;
}

cleval_status cleval_dataset_read_count_blocks(cleval_dataset *ds, const char *name,
                                               cleval_count_block_fn each, void *user)
{
    if (!cleval_dataset_has(ds, name))
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: no dataset '%s'", ds->path, name);
    hid_t dset = H5Dopen2(ds->file, name, ds->dapl);
    hid_t type = dset >= 0 ? H5Dget_type(dset) : H5I_INVALID_HID;
    hid_t space = dset >= 0 ? H5Dget_space(dset) : H5I_INVALID_HID;
    hsize_t dims[2] = {0, 0};
    cleval_status status = CLEVAL_OK;
    /* Every check of the file's claims comes before anything is allocated. */
    if (type < 0 || space < 0 || H5Tget_class(type) != H5T_INTEGER ||
        H5Sget_simple_extent_ndims(space) != 2 ||
        H5Sget_simple_extent_dims(space, dims, NULL) != 2 || dims[0] == 0 || dims[1] == 0 ||
        dims[0] > UINT32_MAX || dims[1] > UINT32_MAX || dims[0] * dims[1] > (1ull << 32)) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' is not a 2-D integer matrix of counts",
                             ds->path, name);
    } else if (ds->max_classes && dims[1] > ds->max_classes) {
        status = cleval_fail(CLEVAL_ERR_INPUT,
                             "%s: '%s' counts %llu classes, more than --max-classes %u (raise it "
                             "if the model really has that many classes)",
                             ds->path, name, (unsigned long long)dims[1], ds->max_classes);
    } else if (!storage_backs(dset, dims[0] * dims[1] * H5Tget_size(type))) {
        status = cleval_fail(CLEVAL_ERR_INPUT,
                             "%s: '%s' declares %llu x %llu counts the file does not hold",
                             ds->path, name, (unsigned long long)dims[0],
                             (unsigned long long)dims[1]);
    } else if ((status = dataset_check_storage(ds, dset, name, H5Tget_size(type))) != CLEVAL_OK) {
        /* damaged: the check recorded why */
    } else {
        cleval_count_block block = {.rows = (uint32_t)dims[0], .cols = (uint32_t)dims[1]};
        status = read_blocks(ds, dset, name, &block, each, user);
    }
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (dset >= 0) H5Dclose(dset);
    return status;
}

/* cleval_dataset_read_counts' destination: the whole matrix, allocated at the first block. */
typedef struct dense_counts {
    const char *path, *name;
    uint32_t rows, cols;
    uint64_t *cells;
} dense_counts;

static cleval_status copy_block(void *user, const cleval_count_block *b)
{
    dense_counts *d = user;
    if (!d->cells && !(d->cells = malloc((size_t)b->rows * b->cols * sizeof *d->cells)))
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading %s: '%s'", d->path, d->name);
    d->rows = b->rows;
    d->cols = b->cols;
    for (uint32_t r = 0; r < b->n_rows; r++)
        memcpy(&d->cells[(size_t)(b->row0 + r) * b->cols + b->col0],
               &b->cells[(size_t)r * b->n_cols], b->n_cols * sizeof *d->cells);
    return CLEVAL_OK;
}

cleval_status cleval_dataset_read_counts(cleval_dataset *ds, const char *name, uint32_t *rows,
                                         uint32_t *cols, uint64_t **cells)
{
    dense_counts dense = {.path = ds->path, .name = name};
    cleval_status status = cleval_dataset_read_count_blocks(ds, name, copy_block, &dense);
    if (status != CLEVAL_OK) {
        free(dense.cells);
        dense = (dense_counts){0};
    }
    *cells = dense.cells;
    *rows = dense.rows;
    *cols = dense.cols;
    return status;
}
