/* Layouts shared by the files of the dataset module only. */
#ifndef CLEVAL_DATASET_INTERNAL_H
#define CLEVAL_DATASET_INTERNAL_H

#include "cleval/dataset.h"

#include <stdbool.h>
#include <stdint.h>

#include <hdf5.h>

struct cleval_dataset {
    char *path;
    hid_t file;
    hid_t dapl; /* dataset access: see dataset_access_plist() */
};

/* Silences HDF5's own error printing, once per process. */
void cleval_hdf5_init(void);

/* Checks the files `file` (opened from `path`) would make HDF5 read besides itself: external
 * storage, virtual dataset sources, external links (see linked_files.c). Datasets are opened
 * with access list `dapl`. */
cleval_status dataset_check_linked_files(const char *path, hid_t file, hid_t dapl);

/* A new dataset access property list (H5Pclose) that looks external storage up from the data
 * file's folder, as dataset_check_linked_files() checks it; H5I_INVALID_HID on failure. */
hid_t dataset_access_plist(void);

/* The file descriptor of the file holding object `obj` (which may be another file than the
 * one opened, through an external link); -1 when unknown. */
int dataset_file_descriptor(hid_t obj);

/* The size in bytes of the file holding object `obj`; false when unknown. */
bool dataset_file_size(hid_t obj, uint64_t *size);

/* Checks, before HDF5 reads dataset `dset` (called `name`) whose stored elements take
 * `element_bytes` each, that its raw data could be what its shape declares (see validate.c):
 * contiguous storage inside the file and exactly as large as the shape, compact storage as
 * large as the shape, chunks of a sane shape, each inside the file and, unfiltered, one chunk
 * large. CLEVAL_ERR_INPUT naming file and dataset when not. */
cleval_status dataset_check_storage(const cleval_dataset *ds, hid_t dset, const char *name,
                                    size_t element_bytes);

/* Reads the `n` variable-length strings of dataset (`attribute` false) or attribute `obj`
 * called `name` into heap strings in `list` (n slots, zeroed), each cut at its first NUL or
 * at `max_len` bytes. The strings are looked up in the file's global heap by vlen_strings.c,
 * every reference and heap record bounds-checked, not by HDF5 (see there). */
cleval_status dataset_read_vlen_strings(const cleval_dataset *ds, hid_t obj, bool attribute,
                                        const char *name, uint32_t n, size_t max_len,
                                        char **list);

#endif
