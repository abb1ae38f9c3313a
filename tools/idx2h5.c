/* idx2h5: converts an IDX image file and its label file (the MNIST / Fashion-MNIST format,
 * gzip-compressed or not) into a cleval dataset file: X uint8 [N, 1, rows, cols] (chunked,
 * gzip) and y int32 [N], plus optional class names. A developer tool, built next to cleval.
 *   idx2h5 IMAGES.gz LABELS.gz OUT.h5 [NAME...] */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint32_t big_endian(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads an IDX file: `dims` receives its dimensions; returns the raw bytes or NULL. */
static unsigned char *read_idx(const char *path, uint32_t dims[3], int *rank)
{
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "idx2h5: cannot open %s\n", path);
        return NULL;
    }
    unsigned char magic[4], word[4];
    if (gzread(f, magic, 4) != 4 || magic[0] || magic[1] || magic[2] != 0x08 || magic[3] < 1 ||
        magic[3] > 3) {
        fprintf(stderr, "idx2h5: %s is not an unsigned-byte IDX file\n", path);
        gzclose(f);
        return NULL;
    }
    *rank = magic[3];
    size_t total = 1;
    for (int d = 0; d < *rank; d++) {
        if (gzread(f, word, 4) != 4) {
            fprintf(stderr, "idx2h5: %s: truncated header\n", path);
            gzclose(f);
            return NULL;
        }
        dims[d] = big_endian(word);
        total *= dims[d];
    }
    unsigned char *data = malloc(total ? total : 1);
    if (!data || gzread(f, data, (unsigned)total) != (int)total) {
        fprintf(stderr, "idx2h5: %s: truncated data\n", path);
        free(data);
        data = NULL;
    }
    gzclose(f);
    return data;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: idx2h5 IMAGES.gz LABELS.gz OUT.h5 [CLASS_NAME...]\n");
        return 2;
    }
    uint32_t idims[3] = {0}, ldims[3] = {0};
    int irank, lrank;
    unsigned char *images = read_idx(argv[1], idims, &irank);
    unsigned char *labels = images ? read_idx(argv[2], ldims, &lrank) : NULL;
    if (!images || !labels) return 2;
    if (irank != 3 || lrank != 1 || idims[0] != ldims[0]) {
        fprintf(stderr, "idx2h5: expected images [N, rows, cols] and labels [N]\n");
        return 2;
    }
    int32_t *y = malloc(ldims[0] * sizeof *y);
    for (uint32_t i = 0; i < ldims[0]; i++)
        y[i] = labels[i];

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[3]);
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t xdims[4] = {idims[0], 1, idims[1], idims[2]}, chunk[4] = {1000, 1, idims[1], idims[2]};
    if (chunk[0] > xdims[0]) chunk[0] = xdims[0] ? xdims[0] : 1;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 4, chunk);
    H5Pset_deflate(dcpl, 4);
    hid_t space = H5Screate_simple(4, xdims, NULL);
    hid_t dset = H5Dcreate2(file, "X", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t err = H5Dwrite(dset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, images);
    H5Dclose(dset), H5Sclose(space), H5Pclose(dcpl);
    hsize_t ydims[1] = {ldims[0]};
    space = H5Screate_simple(1, ydims, NULL);
    dset = H5Dcreate2(file, "y", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (err >= 0) err = H5Dwrite(dset, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y);
    H5Dclose(dset), H5Sclose(space);
    if (argc > 4 && err >= 0) {
        hsize_t ndims[1] = {(hsize_t)(argc - 4)};
        hid_t type = H5Tcopy(H5T_C_S1);
        H5Tset_size(type, H5T_VARIABLE);
        H5Tset_cset(type, H5T_CSET_UTF8);
        space = H5Screate_simple(1, ndims, NULL);
        dset = H5Dcreate2(file, "class_names", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        err = H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, argv + 4);
        H5Dclose(dset), H5Sclose(space), H5Tclose(type);
    }
    if (H5Fclose(file) < 0 || err < 0 || rename(tmp, argv[3]) != 0) {
        fprintf(stderr, "idx2h5: writing %s failed\n", argv[3]);
        remove(tmp);
        return 2;
    }
    free(images), free(labels), free(y);
    return 0;
}
