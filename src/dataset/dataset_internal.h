/* Layouts shared by the files of the dataset module only. */
#ifndef CLEVAL_DATASET_INTERNAL_H
#define CLEVAL_DATASET_INTERNAL_H

#include "cleval/dataset.h"

#include "h5file.h"

struct cleval_dataset {
    char *path;
    hid_t file;
    hid_t dapl; /* dataset access: see dataset_access_plist() */
    uint32_t max_classes; /* 0: no limit until cleval_dataset_limit_classes */
};

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

#endif
