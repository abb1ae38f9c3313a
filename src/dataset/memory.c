/* Datasets over caller arrays: what the library's users pass in memory goes through the same
 * columns as an HDF5 file (column.c reads the rows from the array instead of the file), so the
 * engine streams both alike and applies the same checks. */
#include "dataset_internal.h"

#include <stdlib.h>
#include <string.h>

static bool valid_dtype(cleval_dtype dtype)
{
    return dtype >= CLEVAL_DTYPE_INT8 && dtype <= CLEVAL_DTYPE_FLOAT64;
}

/* Fails naming the array when its description cannot be read safely. */
static cleval_status check_array(const char *label, const char *name, const cleval_array *a)
{
    if (!a->data)
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: '%s' has no data (NULL pointer)", label, name);
    if (!valid_dtype(a->dtype))
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: '%s' has an unknown dtype %d", label, name,
                           (int)a->dtype);
    if (a->rank < 1 || a->rank > CLEVAL_MAX_RANK)
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: '%s' has rank %u (1 to %d supported)", label,
                           name, a->rank, CLEVAL_MAX_RANK);
    uint64_t bytes = 8; /* the widest element */
    for (uint32_t d = 0; d < a->rank; d++) {
        if (a->shape[d] != 0 && bytes > SIZE_MAX / a->shape[d])
            return cleval_fail(CLEVAL_ERR_USAGE, "%s: '%s' is too large to address", label, name);
        bytes *= a->shape[d];
    }
    return CLEVAL_OK;
}

cleval_status cleval_dataset_from_arrays(const char *label, const char *const *names,
                                         const cleval_array *arrays, uint32_t n,
                                         cleval_dataset **out)
{
    *out = NULL;
    cleval_status status = CLEVAL_OK;
    for (uint32_t i = 0; i < n && status == CLEVAL_OK; i++)
        status = check_array(label, names[i], &arrays[i]);
    if (status != CLEVAL_OK) return status;
    cleval_hdf5_init(); /* conversions compare HDF5 types */
    cleval_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory describing %s", label);
    ds->file = ds->dapl = H5I_INVALID_HID;
    ds->refs = 1;
    if (!(ds->path = malloc(strlen(label) + 1)) ||
        !(ds->arrays = calloc(n ? n : 1, sizeof *ds->arrays))) {
        cleval_dataset_close(ds);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory describing %s", label);
    }
    strcpy(ds->path, label);
    for (uint32_t i = 0; i < n; i++) {
        dataset_array *a = &ds->arrays[ds->n_arrays];
        if (!(a->name = malloc(strlen(names[i]) + 1))) {
            cleval_dataset_close(ds);
            return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory describing %s", label);
        }
        strcpy(a->name, names[i]);
        a->array = arrays[i];
        ds->n_arrays++;
    }
    *out = ds;
    return CLEVAL_OK;
}

const dataset_array *dataset_find_array(const cleval_dataset *ds, const char *name)
{
    for (uint32_t i = 0; i < ds->n_arrays; i++)
        if (strcmp(ds->arrays[i].name, name) == 0) return &ds->arrays[i];
    return NULL;
}

void dataset_free_arrays(cleval_dataset *ds)
{
    for (uint32_t i = 0; i < ds->n_arrays; i++)
        free(ds->arrays[i].name);
    free(ds->arrays);
    ds->arrays = NULL;
    ds->n_arrays = 0;
}
