/* Private to the compare module: the file of flipped samples written by `compare --save`. */
#ifndef CLEVAL_COMPARE_INTERNAL_H
#define CLEVAL_COMPARE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "cleval/status.h"

/* An HDF5 file of growing 1-D datasets: `index` int64 (the flipped samples, ascending),
 * `pred_a` and `pred_b` int32, `y` int32 with labels, `score_diff` float64 with scores.
 * Written under a temporary name (cleval_output_temp_create) and renamed by flipfile_commit. */
typedef struct flipfile flipfile;

cleval_status flipfile_create(const char *path, bool with_labels, bool with_scores, flipfile **out);

/* Appends n rows; y and score_diff are ignored when the file has no such dataset. */
cleval_status flipfile_append(flipfile *f, uint64_t n, const int64_t *index, const int32_t *pred_a,
                              const int32_t *pred_b, const int32_t *y, const double *score_diff);

/* Sets the root attributes (a, b, n_samples, n_flips, cleval_version), closes the file and
 * renames it to its final name. The handle is freed either way. */
cleval_status flipfile_commit(flipfile *f, const char *path_a, const char *path_b,
                              uint64_t n_samples);

/* Closes and deletes the temporary file. NULL is a no-op. */
void flipfile_abort(flipfile *f);

#endif
