/* Layouts shared by the files of the dataset module only. */
#ifndef CLEVAL_DATASET_INTERNAL_H
#define CLEVAL_DATASET_INTERNAL_H

#include "cleval/dataset.h"

#include "h5file.h"

struct cleval_dataset {
    char *path;
    hid_t file;
};

#endif
