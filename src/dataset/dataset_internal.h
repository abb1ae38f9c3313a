/* Layouts shared by the files of the dataset module only. */
#ifndef CLEVAL_DATASET_INTERNAL_H
#define CLEVAL_DATASET_INTERNAL_H

#include "cleval/dataset.h"

#include <hdf5.h>

struct cleval_dataset {
    char *path;
    hid_t file;
    uint32_t max_classes; /* 0: no limit until cleval_dataset_limit_classes */
};

/* Silences HDF5's own error printing, once per process. */
void cleval_hdf5_init(void);

#endif
