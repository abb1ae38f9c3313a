/* Prediction files (CONTRACT.md "Prediction file"): `pred` int32 [N], `scores` float32 [N, C],
 * `y` int32 [N] when labels exist, `confusion` int64 [C, C] when counts are saved, and string
 * attributes naming the model, data file, device and cleval version. Written under a temporary
 * name and renamed by cleval_predfile_commit(), so a crash never leaves a partial file under
 * the final name. Read them back with the dataset module. */
#ifndef CLEVAL_PREDFILE_H
#define CLEVAL_PREDFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "cleval/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cleval_predfile cleval_predfile;

typedef struct cleval_predfile_spec {
    uint64_t n_samples;
    uint32_t n_classes; /* width of `scores`; ignored without scores */
    bool with_pred;
    bool with_scores;
    bool with_labels;
} cleval_predfile_spec;

/* Creates "<path>.tmp.<pid>" with the datasets the spec asks for, sized n_samples. */
cleval_status cleval_predfile_create(const char *path, const cleval_predfile_spec *spec,
                                     cleval_predfile **out);

/* Writes rows [row0, row0 + n); each pointer may be NULL when the spec has no such dataset. */
cleval_status cleval_predfile_write(cleval_predfile *pf, uint64_t row0, uint64_t n,
                                    const int32_t *pred, const float *scores, const int32_t *y);

/* Stores the confusion counts as `confusion` int64 [C, C]. */
cleval_status cleval_predfile_write_confusion(cleval_predfile *pf, const cleval_confusion *cm);

/* Sets a string attribute on the file's root (model, data, device, cleval_version, ...). */
cleval_status cleval_predfile_set_attribute(cleval_predfile *pf, const char *name,
                                            const char *value);

/* Sets an integer attribute on the file's root. */
cleval_status cleval_predfile_set_int_attribute(cleval_predfile *pf, const char *name,
                                                int64_t value);

/* Closes the file and renames it to its final name. The handle is freed either way. */
cleval_status cleval_predfile_commit(cleval_predfile *pf);

/* Closes and deletes the temporary file. NULL is a no-op. */
void cleval_predfile_abort(cleval_predfile *pf);

#ifdef __cplusplus
}
#endif

#endif
