/* The flipped-samples file of `compare --save`: extensible HDF5 datasets appended batch by
 * batch (the number of flips is known only at the end), under a temporary name until commit. */
#include "compare_internal.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/output.h"

#include "h5file.h"

enum { N_COLUMNS = 5, CHUNK_ROWS = 4096 };
static const char *const column_names[N_COLUMNS] = {"index", "pred_a", "pred_b", "y", "score_diff"};

struct flipfile {
    char *path;
    cleval_output_temp temp; /* HDF5 opens it as temp.by_fd, never by its name */
    hid_t file;
    hid_t dsets[N_COLUMNS]; /* H5I_INVALID_HID when absent */
    uint64_t rows;
};

/* Closes the file and its datasets (see h5file_close()); returns 0 or an errno. */
static int close_handles(flipfile *f)
{
    int err = f->file >= 0 ? h5file_close(f->file) : 0;
    for (int i = 0; i < N_COLUMNS; i++)
        f->dsets[i] = H5I_INVALID_HID;
    f->file = H5I_INVALID_HID;
    return err;
}

static void destroy(flipfile *f)
{
    close_handles(f);
    free(f->path);
    free(f);
}

/* An empty, unlimited, chunked 1-D dataset. It has no chunk cache: every append reaches the
 * file at once, so a full disk fails that append rather than the close, where HDF5 would drop
 * (and leak) the chunks it still held. */
static hid_t create_column(hid_t file, const char *name, hid_t type)
{
    hsize_t dims[1] = {0}, max_dims[1] = {H5S_UNLIMITED}, chunk[1] = {CHUNK_ROWS};
    hid_t space = H5Screate_simple(1, dims, max_dims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    hid_t dset = H5I_INVALID_HID;
    if (space >= 0 && dcpl >= 0 && dapl >= 0 && H5Pset_chunk(dcpl, 1, chunk) >= 0 &&
        H5Pset_chunk_cache(dapl, 0, 0, H5D_CHUNK_CACHE_W0_DEFAULT) >= 0)
        dset = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, dapl);
    if (dapl >= 0) H5Pclose(dapl);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return dset;
}

cleval_status flipfile_create(const char *path, bool with_labels, bool with_scores, flipfile **out)
{
    *out = NULL;
    cleval_hdf5_init();
    /* HDF5 needs a seekable regular file; never rename over a device, pipe or folder. */
    if (cleval_output_in_place(path))
        return cleval_fail(CLEVAL_ERR_IO, "--save %s: not a regular file (HDF5 needs one)", path);
    flipfile *f = calloc(1, sizeof *f);
    if (!f) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory creating %s", path);
    f->file = H5I_INVALID_HID;
    f->temp.fd = -1;
    for (int i = 0; i < N_COLUMNS; i++)
        f->dsets[i] = H5I_INVALID_HID;
    if (!(f->path = malloc(strlen(path) + 1))) {
        destroy(f);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory creating %s", path);
    }
    strcpy(f->path, path);
    cleval_status status = cleval_output_temp_create(path, "--save", &f->temp);
    if (status != CLEVAL_OK) {
        destroy(f);
        return status;
    }
    errno = 0;
    f->file = H5Fcreate(f->temp.by_fd, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f->file < 0) {
        int err = errno;
        flipfile_abort(f);
        return cleval_fail(CLEVAL_ERR_IO, "--save %s: cannot create the file: %s", path,
                           err ? strerror(err) : "HDF5 error");
    }
    const hid_t types[N_COLUMNS] = {H5T_STD_I64LE, H5T_STD_I32LE, H5T_STD_I32LE, H5T_STD_I32LE,
                                    H5T_IEEE_F64LE};
    const bool wanted[N_COLUMNS] = {true, true, true, with_labels, with_scores};
    errno = 0;
    for (int i = 0; i < N_COLUMNS; i++)
        if (wanted[i] && (f->dsets[i] = create_column(f->file, column_names[i], types[i])) < 0) {
            cleval_status status =
                cleval_fail(CLEVAL_ERR_IO, "--save %s: cannot create its datasets: %s", path,
                            h5file_os_error());
            flipfile_abort(f);
            return status;
        }
    *out = f;
    return CLEVAL_OK;
}

/* Grows `dset` to `rows + n` and writes n values at the end. */
static herr_t append_column(hid_t dset, hid_t mem_type, uint64_t rows, uint64_t n, const void *data)
{
    hsize_t new_size[1] = {rows + n}, start[1] = {rows}, count[1] = {n};
    if (H5Dset_extent(dset, new_size) < 0) return -1;
    hid_t file_space = H5Dget_space(dset);
    hid_t mem_space = H5Screate_simple(1, count, NULL);
    herr_t err = (file_space < 0 || mem_space < 0) ? -1 : 0;
    if (err >= 0) err = H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, NULL, count, NULL);
    if (err >= 0) err = H5Dwrite(dset, mem_type, mem_space, file_space, H5P_DEFAULT, data);
    if (mem_space >= 0) H5Sclose(mem_space);
    if (file_space >= 0) H5Sclose(file_space);
    return err;
}

cleval_status flipfile_append(flipfile *f, uint64_t n, const int64_t *index, const int32_t *pred_a,
                              const int32_t *pred_b, const int32_t *y, const double *score_diff)
{
    if (n == 0) return CLEVAL_OK;
    const void *data[N_COLUMNS] = {index, pred_a, pred_b, y, score_diff};
    const hid_t mem_types[N_COLUMNS] = {H5T_NATIVE_INT64, H5T_NATIVE_INT32, H5T_NATIVE_INT32,
                                        H5T_NATIVE_INT32, H5T_NATIVE_DOUBLE};
    errno = 0;
    for (int i = 0; i < N_COLUMNS; i++)
        if (f->dsets[i] >= 0 && append_column(f->dsets[i], mem_types[i], f->rows, n, data[i]) < 0)
            return cleval_fail(CLEVAL_ERR_IO, "--save %s: writing flipped samples failed: %s",
                               f->path, h5file_os_error());
    f->rows += n;
    return CLEVAL_OK;
}

static herr_t set_string_attribute(hid_t file, const char *name, const char *value)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    hid_t space = H5Screate(H5S_SCALAR);
    herr_t err = (type < 0 || space < 0) ? -1 : 0;
    if (err >= 0) err = H5Tset_size(type, strlen(value) + 1);
    hid_t attr =
        err >= 0 ? H5Acreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT) : H5I_INVALID_HID;
    if (attr < 0 || H5Awrite(attr, type, value) < 0) err = -1;
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    return err;
}

static herr_t set_int_attribute(hid_t file, const char *name, int64_t value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = space >= 0 ? H5Acreate2(file, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT)
                            : H5I_INVALID_HID;
    herr_t err = (attr < 0 || H5Awrite(attr, H5T_NATIVE_INT64, &value) < 0) ? -1 : 0;
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    return err;
}

cleval_status flipfile_commit(flipfile *f, const char *path_a, const char *path_b,
                              uint64_t n_samples)
{
    cleval_status status = CLEVAL_OK;
    errno = 0;
    if (set_string_attribute(f->file, "a", path_a) < 0 ||
        set_string_attribute(f->file, "b", path_b) < 0 ||
        set_string_attribute(f->file, "cleval_version", CLEVAL_VERSION) < 0 ||
        set_int_attribute(f->file, "n_samples", (int64_t)n_samples) < 0 ||
        set_int_attribute(f->file, "n_flips", (int64_t)f->rows) < 0) {
        status = cleval_fail(CLEVAL_ERR_IO, "--save %s: cannot write its attributes: %s", f->path,
                             h5file_os_error());
        flipfile_abort(f);
        return status;
    }
    int err = close_handles(f);
    if (!err) {
        status = cleval_output_temp_commit(&f->temp, f->path, "--save");
    } else {
        status = cleval_fail(CLEVAL_ERR_IO, "--save %s: cannot finish the file: %s", f->path,
                             strerror(err));
        cleval_output_temp_discard(&f->temp);
    }
    destroy(f);
    return status;
}

void flipfile_abort(flipfile *f)
{
    if (!f) return;
    close_handles(f);
    cleval_output_temp_discard(&f->temp);
    destroy(f);
}
