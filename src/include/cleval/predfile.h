/* Prediction files (docs/contract.md "Prediction file"): `pred` int32 [N], `scores` float32 [N, C],
 * `y` int32 [N] when labels exist, `confusion` int64 [C, C] when counts are saved, and string
 * attributes naming the model, data file, device and cleval version. Written under a temporary
 * name and renamed by cleval_predfile_commit(), so a crash never leaves a partial file under
 * the final name. Object modification times are not recorded, so the same content gives the
 * same bytes. Read them back with the dataset module. */
#ifndef CLEVAL_PREDFILE_H
#define CLEVAL_PREDFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "cleval/counts.h"
#include "cleval/status.h"

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
    /* The temporary name. NULL: an unpredictable name private to this process (see
     * cleval_output_temp_create). A resumable run names it so that the next process can reopen
     * it with cleval_predfile_resume(). */
    const char *temp_path;
    /* The option that named the file, for error messages; NULL: "--save". */
    const char *option;
    /* Called on the closed temporary file just before cleval_predfile_commit() renames it
     * (NULL: nothing); when it fails, the file is deleted and the commit fails. */
    cleval_status (*finish)(const char *temp_path);
} cleval_predfile_spec;

/* Creates the temporary file with the datasets the spec asks for, sized n_samples. */
cleval_status cleval_predfile_create(const char *path, const cleval_predfile_spec *spec,
                                     cleval_predfile **out);

/* Reopens the temporary file an interrupted run left (spec->temp_path, same spec) to go on
 * writing it; fails when it is missing or does not match the spec. */
cleval_status cleval_predfile_resume(const char *path, const cleval_predfile_spec *spec,
                                     cleval_predfile **out);

/* Writes rows [row0, row0 + n); each pointer may be NULL when the spec has no such dataset. */
cleval_status cleval_predfile_write(cleval_predfile *pf, uint64_t row0, uint64_t n,
                                    const int32_t *pred, const float *scores, const int32_t *y);

/* Stores an int64 [rows, cols] matrix of counts as dataset `name` ("confusion"). */
cleval_status cleval_predfile_write_counts(cleval_predfile *pf, const char *name, uint32_t rows,
                                           uint32_t cols, const uint64_t *cells);

/* Stores counts of either backing as the same int64 [rows, cols] dataset. Dense counts are
 * written as cleval_predfile_write_counts does; sparse ones into a chunked, compressed dataset,
 * one block of rows at a time, and only the blocks that hold a nonzero cell: the others are
 * never allocated in the file and read back as zeros, so neither memory nor the file grows
 * with C^2. */
cleval_status cleval_predfile_write_count_table(cleval_predfile *pf, const char *name,
                                                const cleval_counts *counts);

/* As cleval_predfile_write_counts, the same contiguous dataset, from counts of either backing:
 * sparse ones are written one block of rows at a time (state files, whose readers expect that
 * layout). */
cleval_status cleval_predfile_write_count_rows(cleval_predfile *pf, const char *name,
                                               const cleval_counts *counts);

/* Stores a 1-D dataset of UTF-8 strings (class names). */
cleval_status cleval_predfile_write_strings(cleval_predfile *pf, const char *name,
                                            char *const *strings, uint32_t count);

/* Sets a string or integer attribute on the file's root. */
cleval_status cleval_predfile_set_attribute(cleval_predfile *pf, const char *name,
                                            const char *value);
cleval_status cleval_predfile_set_int_attribute(cleval_predfile *pf, const char *name,
                                                int64_t value);

/* Makes everything written so far durable in the temporary file (before a checkpoint). */
cleval_status cleval_predfile_flush(cleval_predfile *pf);

/* Closes the file and renames it to its final name. The handle is freed either way; on failure
 * (the message names the file and the OS error) the temporary is deleted and the final name
 * is left as it was. */
cleval_status cleval_predfile_commit(cleval_predfile *pf);

/* Closes the file and keeps the temporary for a later resume, unless closing it fails (a full
 * disk), which deletes it. NULL is a no-op. */
void cleval_predfile_suspend(cleval_predfile *pf);

/* Closes and deletes the temporary file. NULL is a no-op. */
void cleval_predfile_abort(cleval_predfile *pf);

#ifdef __cplusplus
}
#endif

#endif
