/* Layouts shared by the files of the dataset module only. */
#ifndef CLEVAL_DATASET_INTERNAL_H
#define CLEVAL_DATASET_INTERNAL_H

#include "cleval/dataset.h"

#include <stdbool.h>
#include <stdint.h>

#include <hdf5.h>

#include "h5file.h"

/* One named caller array of a dataset in memory (cleval_dataset_from_arrays). */
typedef struct dataset_array {
    char *name;
    cleval_array array; /* the data is the caller's */
} dataset_array;

struct cleval_dataset {
    char *path; /* the file's, or the label of arrays in memory */
    hid_t file; /* H5I_INVALID_HID for arrays in memory */
    hid_t dapl; /* dataset access: see dataset_access_plist() */
    uint32_t max_classes; /* 0: no limit until cleval_dataset_limit_classes */
    uint32_t refs;        /* cleval_dataset_share() adds one, cleval_dataset_close() drops one */
    dataset_array *arrays; /* arrays in memory (see memory.c), else NULL */
    uint32_t n_arrays;
};

/* The array called `name` of a dataset in memory; NULL when absent or when `ds` is a file. */
const dataset_array *dataset_find_array(const cleval_dataset *ds, const char *name);

/* Frees the arrays of a dataset in memory (the data stays the caller's). */
void dataset_free_arrays(cleval_dataset *ds);

/* Checks the files `file` (opened from `path`) would make HDF5 read besides itself: external
 * storage, virtual dataset sources, external links (see linked_files.c). Datasets are opened
 * with access list `dapl`. */
cleval_status dataset_check_linked_files(const char *path, hid_t file, hid_t dapl);

/* Walks the structure of the HDF5 file at `path` in a child process (see probe.c): fails with
 * CLEVAL_ERR_INPUT, naming the file, when libhdf5 crashes or loops on it. */
cleval_status dataset_probe(const char *path);

/* A new dataset access property list (H5Pclose) that looks external storage up from the data
 * file's folder, as dataset_check_linked_files() checks it; H5I_INVALID_HID on failure. */
hid_t dataset_access_plist(void);

/* The file descriptor of the file holding object `obj` (which may be another file than the
 * one opened, through an external link); -1 when unknown. */
int dataset_file_descriptor(hid_t obj);

/* The size in bytes of the file holding object `obj`; false when unknown. */
bool dataset_file_size(hid_t obj, uint64_t *size);

/* What reading the file holding `obj` byte by byte needs. */
typedef struct file_format {
    int fd;
    uint64_t size;
    uint64_t base; /* addresses count from here (after a user block) */
    unsigned sizeof_addr, sizeof_size; /* bytes of an address and of a length: 2 to 8 */
} file_format;

/* Fills `format` for the file holding `obj`; false when unknown or unsupported (addresses or
 * lengths wider than 8 bytes). */
bool dataset_file_format(hid_t obj, file_format *format);

/* Little-endian unsigned integer of `bytes` (at most 8) bytes at `p`. */
uint64_t dataset_decode_le(const unsigned char *p, unsigned bytes);

/* Reads `bytes` bytes at `offset` of file descriptor `fd`; false when it cannot. */
bool dataset_read_at(int fd, uint64_t offset, void *dest, size_t bytes);

/* Checks the attribute messages of `ds`'s root group before HDF5 decodes them (HDF5 1.10 copies
 * an attribute's parts and value by the sizes they declare, past the end of the message when
 * damaged): each part and the value must fit in its message. CLEVAL_ERR_INPUT naming the file
 * when not. Headers of format 2 carry a checksum HDF5 verifies and are not walked here. */
cleval_status dataset_check_root_attributes(const cleval_dataset *ds);

/* Checks, before HDF5 reads dataset `dset` (called `name`) whose stored elements take
 * `element_bytes` each, that its raw data could be what its shape declares (see validate.c):
 * contiguous storage inside the file and exactly as large as the shape, compact storage as
 * large as the shape, chunks of a sane shape and, when there are at most 1024, each inside the
 * file and, unfiltered, one chunk large. CLEVAL_ERR_INPUT naming file and dataset when not. */
cleval_status dataset_check_storage(const cleval_dataset *ds, hid_t dset, const char *name,
                                    size_t element_bytes);

/* The bytes a variable-length string takes in a file of `format`: a reference to its heap. */
size_t dataset_vlen_reference_bytes(const file_format *format);

/* Reads the `n` variable-length strings of dataset (`attribute` false) or attribute `obj`
 * called `name` into heap strings in `list` (n slots, zeroed), each cut at its first NUL or
 * at `max_len` bytes; a dataset's storage must have been checked (dataset_check_storage). The strings are looked up in the file's global heap by vlen_strings.c,
 * every reference and heap record bounds-checked, not by HDF5 (see there). */
cleval_status dataset_read_vlen_strings(const cleval_dataset *ds, hid_t obj, bool attribute,
                                        const char *name, uint32_t n, size_t max_len,
                                        char **list);

#endif
