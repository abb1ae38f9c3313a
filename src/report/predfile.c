/* Prediction files: HDF5 written under a temporary name, renamed on commit. */
#include "cleval/predfile.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cleval_predfile {
    char *path;
    char *tmp_path;
    hid_t file;
    hid_t pred, scores, y; /* H5I_INVALID_HID when absent */
    cleval_predfile_spec spec;
};

static void close_handles(cleval_predfile *pf)
{
    if (pf->pred >= 0) H5Dclose(pf->pred);
    if (pf->scores >= 0) H5Dclose(pf->scores);
    if (pf->y >= 0) H5Dclose(pf->y);
    if (pf->file >= 0) H5Fclose(pf->file);
    pf->pred = pf->scores = pf->y = pf->file = H5I_INVALID_HID;
}

static void destroy(cleval_predfile *pf)
{
    close_handles(pf);
    free(pf->path);
    free(pf->tmp_path);
    free(pf);
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
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* HDF5 needs a seekable regular file; never rename over a device, pipe or folder. */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return cleval_fail(CLEVAL_ERR_IO, "--save %s: not a regular file (HDF5 needs one)", path);
    cleval_predfile *pf = calloc(1, sizeof *pf);
    if (!pf) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory creating %s", path);
    pf->pred = pf->scores = pf->y = pf->file = H5I_INVALID_HID;
    pf->spec = *spec;
    pf->path = copy_string(path);
    if (spec->temp_path) {
        pf->tmp_path = copy_string(spec->temp_path);
    } else if ((pf->tmp_path = malloc(strlen(path) + 32))) {
        sprintf(pf->tmp_path, "%s.tmp.%ld", path, (long)getpid());
    }
    if (!pf->path || !pf->tmp_path) {
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
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl >= 0) H5Pset_obj_track_times(fcpl, 0);
    pf->file = H5Fcreate(pf->tmp_path, H5F_ACC_TRUNC, fcpl >= 0 ? fcpl : H5P_DEFAULT,
                         H5P_DEFAULT);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (pf->file < 0) {
        int err = errno;
        destroy(pf);
        return cleval_fail(CLEVAL_ERR_IO, "--save %s: cannot create the file: %s", path,
                           err ? strerror(err) : "HDF5 error");
    }
    hsize_t dims[2] = {spec->n_samples, spec->n_classes};
    if ((spec->with_pred &&
         (pf->pred = create_dataset(pf->file, "pred", H5T_STD_I32LE, 1, dims)) < 0) ||
        (spec->with_scores &&
         (pf->scores = create_dataset(pf->file, "scores", H5T_IEEE_F32LE, 2, dims)) < 0) ||
        (spec->with_labels && (pf->y = create_dataset(pf->file, "y", H5T_STD_I32LE, 1, dims)) < 0)) {
        cleval_predfile_abort(pf);
        return cleval_fail(CLEVAL_ERR_IO, "--save %s: cannot create its datasets", path);
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
    pf->file = access(pf->tmp_path, F_OK) == 0 ? H5Fopen(pf->tmp_path, H5F_ACC_RDWR, H5P_DEFAULT)
                                               : H5I_INVALID_HID;
    hsize_t dims[2] = {spec->n_samples, spec->n_classes};
    if (pf->file < 0 ||
        (spec->with_pred && (pf->pred = reopen_dataset(pf->file, "pred", 1, dims)) < 0) ||
        (spec->with_scores && (pf->scores = reopen_dataset(pf->file, "scores", 2, dims)) < 0) ||
        (spec->with_labels && (pf->y = reopen_dataset(pf->file, "y", 1, dims)) < 0)) {
        status = cleval_fail(CLEVAL_ERR_INPUT,
                             "--resume: the partial prediction file %s is missing or does not "
                             "match this run",
                             pf->tmp_path);
        destroy(pf);
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
    if ((pred && pf->pred >= 0 && write_rows(pf->pred, H5T_NATIVE_INT32, row0, n, 0, pred) < 0) ||
        (scores && pf->scores >= 0 &&
         write_rows(pf->scores, H5T_NATIVE_FLOAT, row0, n, pf->spec.n_classes, scores) < 0) ||
        (y && pf->y >= 0 && write_rows(pf->y, H5T_NATIVE_INT32, row0, n, 0, y) < 0))
        return cleval_fail(CLEVAL_ERR_IO, "--save %s: writing rows %llu..%llu failed (disk full?)",
                           pf->path, (unsigned long long)row0, (unsigned long long)(row0 + n));
    return CLEVAL_OK;
}

cleval_status cleval_predfile_write_counts(cleval_predfile *pf, const char *name, uint32_t rows,
                                           uint32_t cols, const uint64_t *cells)
{
    hsize_t dims[2] = {rows, cols};
    hid_t dset = create_dataset(pf->file, name, H5T_STD_I64LE, 2, dims);
    herr_t err = dset < 0 ? -1
                          : H5Dwrite(dset, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                     cells);
    if (dset >= 0) H5Dclose(dset);
    if (err < 0) return cleval_fail(CLEVAL_ERR_IO, "--save %s: writing '%s' failed", pf->path, name);
    return CLEVAL_OK;
}

cleval_status cleval_predfile_write_strings(cleval_predfile *pf, const char *name,
                                            char *const *strings, uint32_t count)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hsize_t dims[1] = {count};
    hid_t dset = create_dataset(pf->file, name, type, 1, dims);
    herr_t err = dset < 0 ? -1 : H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, strings);
    if (dset >= 0) H5Dclose(dset);
    H5Tclose(type);
    if (err < 0) return cleval_fail(CLEVAL_ERR_IO, "--save %s: writing '%s' failed", pf->path, name);
    return CLEVAL_OK;
}

cleval_status cleval_predfile_set_attribute(cleval_predfile *pf, const char *name,
                                            const char *value)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(pf->file, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t err = attr < 0 ? -1 : H5Awrite(attr, type, &value);
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
    if (err < 0)
        return cleval_fail(CLEVAL_ERR_IO, "--save %s: writing attribute '%s' failed", pf->path,
                           name);
    return CLEVAL_OK;
}

cleval_status cleval_predfile_set_int_attribute(cleval_predfile *pf, const char *name,
                                                int64_t value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(pf->file, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t err = attr < 0 ? -1 : H5Awrite(attr, H5T_NATIVE_INT64, &value);
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    if (err < 0)
        return cleval_fail(CLEVAL_ERR_IO, "--save %s: writing attribute '%s' failed", pf->path,
                           name);
    return CLEVAL_OK;
}

cleval_status cleval_predfile_flush(cleval_predfile *pf)
{
    if (H5Fflush(pf->file, H5F_SCOPE_GLOBAL) < 0)
        return cleval_fail(CLEVAL_ERR_IO, "--save %s: flushing failed (disk full?)", pf->path);
    return CLEVAL_OK;
}

cleval_status cleval_predfile_commit(cleval_predfile *pf)
{
    bool flushed = H5Fflush(pf->file, H5F_SCOPE_GLOBAL) >= 0;
    close_handles(pf);
    cleval_status status = flushed && pf->spec.finish ? pf->spec.finish(pf->tmp_path) : CLEVAL_OK;
    if (status != CLEVAL_OK) {
        unlink(pf->tmp_path);
    } else if (!flushed || rename(pf->tmp_path, pf->path) != 0) {
        status = cleval_fail(CLEVAL_ERR_IO, "--save %s: cannot finish the file: %s", pf->path,
                             flushed ? strerror(errno) : "HDF5 flush failed (disk full?)");
        unlink(pf->tmp_path);
    }
    destroy(pf);
    return status;
}

void cleval_predfile_suspend(cleval_predfile *pf)
{
    if (!pf) return;
    destroy(pf); /* closing flushes; the temporary stays */
}

void cleval_predfile_abort(cleval_predfile *pf)
{
    if (!pf) return;
    close_handles(pf);
    unlink(pf->tmp_path);
    destroy(pf);
}
