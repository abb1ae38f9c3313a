/* Prediction files: HDF5 written under a temporary name, renamed on commit. */
#include "cleval/predfile.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleval/input.h"
#include "cleval/output.h"
#include "h5file.h"

struct cleval_predfile {
    char *path;
    cleval_output_temp temp; /* HDF5 opens it as temp.by_fd, never by its name */
    hid_t file;
    hid_t pred, scores, y; /* H5I_INVALID_HID when absent */
    cleval_predfile_spec spec;
};

/* Closes the file and its datasets (see h5file_close()); returns 0 or an errno. */
static int close_handles(cleval_predfile *pf)
{
    int err = pf->file >= 0 ? h5file_close(pf->file) : 0;
    pf->pred = pf->scores = pf->y = pf->file = H5I_INVALID_HID;
    return err;
}

/* Frees the handle; the temporary must have been committed, closed or discarded. */
static void destroy(cleval_predfile *pf)
{
    close_handles(pf);
    free(pf->path);
    free(pf);
}

/* The option that named the file, for messages. */
static const char *option_of(const cleval_predfile_spec *spec)
{
    return spec->option ? spec->option : "--save";
}

static char *copy_string(const char *s)
{
    char *copy = malloc(strlen(s) + 1);
    if (copy) strcpy(copy, s);
    return copy;
}

/* A handle with names set and no file open yet. */
static cleval_status new_handle(const char *path, const cleval_predfile_spec *spec,
                                cleval_predfile **out)
{
    cleval_hdf5_init();
    /* HDF5 needs a seekable regular file; never rename over a device, pipe or folder. */
    if (cleval_output_in_place(path))
        return cleval_fail(CLEVAL_ERR_IO, "%s %s: not a regular file (HDF5 needs one)",
                           option_of(spec), path);
    cleval_predfile *pf = calloc(1, sizeof *pf);
    if (!pf) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory creating %s", path);
    pf->pred = pf->scores = pf->y = pf->file = H5I_INVALID_HID;
    pf->spec = *spec;
    pf->temp.fd = -1;
    pf->spec.option = option_of(spec);
    pf->path = copy_string(path);
    if (!pf->path) {
        destroy(pf);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory creating %s", path);
    }
    pf->spec.temp_path = NULL; /* not owned */
    *out = pf;
    return CLEVAL_OK;
}

static hid_t create_dataset(hid_t file, const char *name, hid_t type, int rank,
                            const hsize_t *dims)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (space < 0 || dcpl < 0) {
        if (space >= 0) H5Sclose(space);
        if (dcpl >= 0) H5Pclose(dcpl);
        return H5I_INVALID_HID;
    }
    H5Pset_obj_track_times(dcpl, 0); /* same content, same bytes */
    hid_t dset = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    return dset;
}

cleval_status cleval_predfile_create(const char *path, const cleval_predfile_spec *spec,
                                     cleval_predfile **out)
{
    *out = NULL;
    cleval_predfile *pf;
    cleval_status status = new_handle(path, spec, &pf);
    if (status != CLEVAL_OK) return status;
    status = cleval_output_temp_create(path, option_of(spec), &pf->temp);
    /* A resumable run's temporary takes the name the next run looks for. */
    if (status == CLEVAL_OK && spec->temp_path)
        status = cleval_output_temp_rename(&pf->temp, spec->temp_path, option_of(spec));
    if (status != CLEVAL_OK) {
        cleval_output_temp_discard(&pf->temp);
        destroy(pf);
        return status;
    }
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl >= 0) H5Pset_obj_track_times(fcpl, 0);
    errno = 0;
    pf->file =
        H5Fcreate(pf->temp.by_fd, H5F_ACC_TRUNC, fcpl >= 0 ? fcpl : H5P_DEFAULT, H5P_DEFAULT);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (pf->file < 0) {
        int err = errno;
        cleval_predfile_abort(pf);
        return cleval_fail(CLEVAL_ERR_IO, "%s %s: cannot create the file: %s", option_of(spec),
                           path, err ? strerror(err) : "HDF5 error");
    }
    hsize_t dims[2] = {spec->n_samples, spec->n_classes};
    errno = 0;
    if ((spec->with_pred &&
         (pf->pred = create_dataset(pf->file, "pred", H5T_STD_I32LE, 1, dims)) < 0) ||
        (spec->with_scores &&
         (pf->scores = create_dataset(pf->file, "scores", H5T_IEEE_F32LE, 2, dims)) < 0) ||
        (spec->with_labels && (pf->y = create_dataset(pf->file, "y", H5T_STD_I32LE, 1, dims)) < 0)) {
        status = cleval_fail(CLEVAL_ERR_IO, "%s %s: cannot create its datasets: %s",
                             option_of(spec), path, h5file_os_error());
        cleval_predfile_abort(pf);
        return status;
    }
    *out = pf;
    return CLEVAL_OK;
}

/* Opens dataset `name` of a resumed file and checks its shape against the spec. */
static hid_t reopen_dataset(hid_t file, const char *name, int rank, const hsize_t *dims)
{
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    if (dset < 0) return H5I_INVALID_HID;
    hid_t space = H5Dget_space(dset);
    hsize_t got[2] = {0, 0};
    bool ok = space >= 0 && H5Sget_simple_extent_ndims(space) == rank &&
              H5Sget_simple_extent_dims(space, got, NULL) == rank && got[0] == dims[0] &&
              (rank == 1 || got[1] == dims[1]);
    if (space >= 0) H5Sclose(space);
    if (!ok) {
        H5Dclose(dset);
        return H5I_INVALID_HID;
    }
    return dset;
}

cleval_status cleval_predfile_resume(const char *path, const cleval_predfile_spec *spec,
                                     cleval_predfile **out)
{
    *out = NULL;
    cleval_predfile *pf;
    cleval_status status = new_handle(path, spec, &pf);
    if (status != CLEVAL_OK) return status;
    /* An earlier run left it, but something else may stand there now (a FIFO, a device): say
     * so rather than hand it to HDF5. */
    if (access(spec->temp_path, F_OK) == 0 &&
        (status = cleval_input_check(spec->temp_path, "an HDF5 file")) != CLEVAL_OK) {
        status = cleval_fail(status, "--resume: %s", cleval_last_error());
        destroy(pf);
        return status;
    }
    if (cleval_output_temp_reopen(spec->temp_path, "--resume", &pf->temp) == CLEVAL_OK)
        pf->file = H5Fopen(pf->temp.by_fd, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t dims[2] = {spec->n_samples, spec->n_classes};
    if (pf->file < 0 ||
        (spec->with_pred && (pf->pred = reopen_dataset(pf->file, "pred", 1, dims)) < 0) ||
        (spec->with_scores && (pf->scores = reopen_dataset(pf->file, "scores", 2, dims)) < 0) ||
        (spec->with_labels && (pf->y = reopen_dataset(pf->file, "y", 1, dims)) < 0)) {
        status = cleval_fail(CLEVAL_ERR_INPUT,
                             "--resume: the partial prediction file %s is missing or does not "
                             "match this run",
                             spec->temp_path);
        cleval_predfile_suspend(pf);
        return status;
    }
    *out = pf;
    return CLEVAL_OK;
}

static herr_t write_rows(hid_t dset, hid_t mem_type, uint64_t row0, uint64_t n, uint64_t width,
                         const void *data)
{
    hsize_t start[2] = {row0, 0}, count[2] = {n, width};
    int rank = width ? 2 : 1;
    hid_t file_space = H5Dget_space(dset);
    hid_t mem_space = H5Screate_simple(rank, count, NULL);
    herr_t err = (file_space < 0 || mem_space < 0) ? -1 : 0;
    if (err >= 0)
        err = H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, NULL, count, NULL);
    if (err >= 0) err = H5Dwrite(dset, mem_type, mem_space, file_space, H5P_DEFAULT, data);
    if (mem_space >= 0) H5Sclose(mem_space);
    if (file_space >= 0) H5Sclose(file_space);
    return err;
}

cleval_status cleval_predfile_write(cleval_predfile *pf, uint64_t row0, uint64_t n,
                                    const int32_t *pred, const float *scores, const int32_t *y)
{
    if (n == 0) return CLEVAL_OK;
    if (row0 + n > pf->spec.n_samples)
        return cleval_fail(CLEVAL_ERR_INTERNAL, "%s: rows beyond the file's %llu samples",
                           pf->path, (unsigned long long)pf->spec.n_samples);
    errno = 0;
    if ((pred && pf->pred >= 0 && write_rows(pf->pred, H5T_NATIVE_INT32, row0, n, 0, pred) < 0) ||
        (scores && pf->scores >= 0 &&
         write_rows(pf->scores, H5T_NATIVE_FLOAT, row0, n, pf->spec.n_classes, scores) < 0) ||
        (y && pf->y >= 0 && write_rows(pf->y, H5T_NATIVE_INT32, row0, n, 0, y) < 0))
        return cleval_fail(CLEVAL_ERR_IO, "%s %s: writing rows %llu..%llu failed: %s",
                           pf->spec.option, pf->path, (unsigned long long)row0,
                           (unsigned long long)(row0 + n), h5file_os_error());
    return CLEVAL_OK;
}

/* The error of a failed write of dataset or attribute `name` (errno cleared before it). */
static cleval_status write_failed(const cleval_predfile *pf, const char *what, const char *name)
{
    return cleval_fail(CLEVAL_ERR_IO, "%s %s: writing %s '%s' failed: %s", pf->spec.option,
                       pf->path, what, name, h5file_os_error());
}

cleval_status cleval_predfile_write_counts(cleval_predfile *pf, const char *name, uint32_t rows,
                                           uint32_t cols, const uint64_t *cells)
{
    hsize_t dims[2] = {rows, cols};
    errno = 0;
    hid_t dset = create_dataset(pf->file, name, H5T_STD_I64LE, 2, dims);
    herr_t err = dset < 0 ? -1
                          : H5Dwrite(dset, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                     cells);
    if (dset >= 0) H5Dclose(dset);
    if (err < 0) return write_failed(pf, "dataset", name);
    return CLEVAL_OK;
}

/* Rows per block of a sparse count table: blocks of about 1 MiB. */
static uint32_t block_rows(uint32_t cols)
{
    uint32_t rows = (UINT32_C(1) << 17) / (cols ? cols : 1);
    return rows ? rows : 1;
}

/* A chunked, compressed int64 [rows, cols] dataset whose unwritten chunks read as 0. */
static hid_t create_blocked_dataset(hid_t file, const char *name, const hsize_t *dims,
                                    const hsize_t *chunk)
{
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t dset = H5I_INVALID_HID;
    if (space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 2, chunk) >= 0 &&
        (!H5Zfilter_avail(H5Z_FILTER_DEFLATE) || H5Pset_deflate(dcpl, 1) >= 0)) {
        H5Pset_obj_track_times(dcpl, 0);
        dset = H5Dcreate2(file, name, H5T_STD_I64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return dset;
}

/* Writes the sorted nonzero cells block by block: only the blocks that hold one, or with
 * `every_block` all of them (zeros included); false when HDF5 fails. */
static bool write_blocks(hid_t dset, uint32_t rows, uint32_t cols, uint32_t block,
                         const cleval_count_cell *cells, size_t n, uint64_t *buffer,
                         bool every_block)
{
    for (size_t i = 0, first = 0; every_block ? first < rows : i < n; first += block) {
        if (!every_block) first = cells[i].row / block * block;
        uint32_t count = rows - (uint32_t)first < block ? rows - (uint32_t)first : block;
        memset(buffer, 0, (size_t)count * cols * sizeof *buffer);
        for (; i < n && cells[i].row < first + count; i++)
            buffer[(size_t)(cells[i].row - first) * cols + cells[i].col] = cells[i].count;
        hsize_t start[2] = {first, 0}, size[2] = {count, cols};
        hid_t file_space = H5Dget_space(dset);
        hid_t memory = H5Screate_simple(2, size, NULL);
        bool ok = file_space >= 0 && memory >= 0 &&
                  H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, NULL, size, NULL) >= 0 &&
                  H5Dwrite(dset, H5T_NATIVE_UINT64, memory, file_space, H5P_DEFAULT, buffer) >= 0;
        if (memory >= 0) H5Sclose(memory);
        if (file_space >= 0) H5Sclose(file_space);
        if (!ok) return false;
    }
    return true;
}

/* Sparse counts into a new int64 [rows, cols] dataset, row block by row block: chunked and
 * compressed with only the blocks that hold a count (`blocked`), or contiguous with every
 * block written, as cleval_predfile_write_counts lays it out. */
static cleval_status write_sparse(cleval_predfile *pf, const char *name,
                                  const cleval_counts *counts, bool blocked)
{
    uint32_t block = block_rows(counts->cols);
    block = block < counts->rows ? block : counts->rows; /* a chunk lies inside the dataset */
    cleval_count_cell *cells;
    size_t n;
    cleval_status status = cleval_counts_sorted(counts, &cells, &n);
    if (status != CLEVAL_OK) return status;
    uint64_t *buffer = malloc((size_t)block * counts->cols * sizeof *buffer);
    if (!buffer) {
        free(cells);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory writing %s", name);
    }
    hsize_t dims[2] = {counts->rows, counts->cols}, chunk[2] = {block, counts->cols};
    errno = 0;
    hid_t dset = blocked ? create_blocked_dataset(pf->file, name, dims, chunk)
                         : create_dataset(pf->file, name, H5T_STD_I64LE, 2, dims);
    bool ok = dset >= 0 &&
              write_blocks(dset, counts->rows, counts->cols, block, cells, n, buffer, !blocked);
    if (dset >= 0) H5Dclose(dset);
    free(buffer);
    free(cells);
    return ok ? CLEVAL_OK : write_failed(pf, "dataset", name);
}

cleval_status cleval_predfile_write_count_table(cleval_predfile *pf, const char *name,
                                                const cleval_counts *counts)
{
    if (!cleval_counts_is_sparse(counts))
        return cleval_predfile_write_counts(pf, name, counts->rows, counts->cols, counts->cells);
    return write_sparse(pf, name, counts, true);
}

cleval_status cleval_predfile_write_count_rows(cleval_predfile *pf, const char *name,
                                               const cleval_counts *counts)
{
    if (!cleval_counts_is_sparse(counts))
        return cleval_predfile_write_counts(pf, name, counts->rows, counts->cols, counts->cells);
    return write_sparse(pf, name, counts, false);
}

cleval_status cleval_predfile_write_strings(cleval_predfile *pf, const char *name,
                                            char *const *strings, uint32_t count)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hsize_t dims[1] = {count};
    errno = 0;
    hid_t dset = create_dataset(pf->file, name, type, 1, dims);
    herr_t err = dset < 0 ? -1 : H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, strings);
    if (dset >= 0) H5Dclose(dset);
    H5Tclose(type);
    if (err < 0) return write_failed(pf, "dataset", name);
    return CLEVAL_OK;
}

cleval_status cleval_predfile_set_attribute(cleval_predfile *pf, const char *name,
                                            const char *value)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    errno = 0;
    hid_t attr = H5Acreate2(pf->file, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t err = attr < 0 ? -1 : H5Awrite(attr, type, &value);
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
    if (err < 0) return write_failed(pf, "attribute", name);
    return CLEVAL_OK;
}

cleval_status cleval_predfile_set_int_attribute(cleval_predfile *pf, const char *name,
                                                int64_t value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    errno = 0;
    hid_t attr = H5Acreate2(pf->file, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t err = attr < 0 ? -1 : H5Awrite(attr, H5T_NATIVE_INT64, &value);
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    if (err < 0) return write_failed(pf, "attribute", name);
    return CLEVAL_OK;
}

cleval_status cleval_predfile_flush(cleval_predfile *pf)
{
    errno = 0;
    if (H5Fflush(pf->file, H5F_SCOPE_GLOBAL) < 0)
        return cleval_fail(CLEVAL_ERR_IO, "%s %s: flushing failed: %s", pf->spec.option, pf->path,
                           h5file_os_error());
    return CLEVAL_OK;
}

cleval_status cleval_predfile_commit(cleval_predfile *pf)
{
    int err = close_handles(pf);
    cleval_status status = CLEVAL_OK;
    if (err)
        status = cleval_fail(CLEVAL_ERR_IO, "%s %s: cannot finish the file: %s", pf->spec.option,
                             pf->path, strerror(err));
    else if (pf->spec.finish)
        status = pf->spec.finish(pf->temp.by_fd); /* the file we created, not whatever has its name */
    if (status == CLEVAL_OK)
        status = cleval_output_temp_commit(&pf->temp, pf->path, pf->spec.option);
    else
        cleval_output_temp_discard(&pf->temp);
    destroy(pf);
    return status;
}

void cleval_predfile_suspend(cleval_predfile *pf)
{
    if (!pf) return;
    /* A temporary that cannot be closed cleanly (full disk) is no use to a resume. */
    if (close_handles(pf) != 0)
        cleval_output_temp_discard(&pf->temp);
    else
        cleval_output_temp_close(&pf->temp);
    destroy(pf);
}

void cleval_predfile_abort(cleval_predfile *pf)
{
    if (!pf) return;
    close_handles(pf);
    cleval_output_temp_discard(&pf->temp);
    destroy(pf);
}
