/* HDF5 test and training sets: open and validate a file, then read any numeric dataset in it
 * by rows (hyperslabs), converted to float32 or int32. Nothing here reads a whole dataset at
 * once, so files larger than memory stream in batches. */
#ifndef CLEVAL_DATASET_H
#define CLEVAL_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleval/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An open HDF5 file. */
typedef struct cleval_dataset cleval_dataset;

/* One numeric dataset of shape [N, ...] inside a file, read by rows. */
typedef struct cleval_column cleval_column;

typedef enum cleval_column_kind {
    CLEVAL_COLUMN_FEATURES, /* any integer or float type; reads reject NaN and Inf */
    CLEVAL_COLUMN_VALUES,   /* any integer or float type; no finiteness check (raw scores) */
    CLEVAL_COLUMN_LABELS,   /* shape [N], integer type; reads reject values below 0 */
} cleval_column_kind;

enum { CLEVAL_MAX_RANK = 8 };

/* Opens `path` read-only. Fails with CLEVAL_ERR_INPUT and a message naming the file when it is
 * missing, unreadable, not a regular file (a FIFO is refused without blocking), not HDF5, or
 * damaged, or when a dataset in it reads another file that is missing, not a regular file, or
 * outside the file's folder (see cleval_dataset_allow_outside_files). */
cleval_status cleval_dataset_open(const char *path, cleval_dataset **out);

/* Whether a data file may make cleval read files outside its own folder: external raw storage
 * of a dataset, the source files of virtual datasets, external links. Off by default: such a
 * file is refused at open naming the dataset and the path; on, each must still exist and be a
 * regular file. Process-wide; set it before opening files. */
void cleval_dataset_allow_outside_files(bool allow);

/* A dataset over caller arrays instead of a file: arrays[i] is read as the dataset called
 * names[i], through the same columns (same checks, same conversions, in batches), and
 * `label` stands for the file's path in messages. The names and array descriptions are
 * copied; the data is borrowed until the dataset is closed. It has no class names, attributes
 * or counts. Fails with CLEVAL_ERR_USAGE on a NULL data pointer, a rank outside 1 to
 * CLEVAL_MAX_RANK, an unknown dtype or a size that overflows. */
cleval_status cleval_dataset_from_arrays(const char *label, const char *const *names,
                                         const cleval_array *arrays, uint32_t n,
                                         cleval_dataset **out);

/* Another reference to `ds` (returned): each cleval_dataset_close() drops one and the last
 * closes it, so a job can close what it was handed as if it had opened it. */
cleval_dataset *cleval_dataset_share(cleval_dataset *ds);

/* Drops a reference (cleval_dataset_share); the last closes the file, whose columns must be
 * closed first. NULL is a no-op. */
void cleval_dataset_close(cleval_dataset *ds);

const char *cleval_dataset_path(const cleval_dataset *ds);

/* True when the file holds a dataset called `name` at its root. */
bool cleval_dataset_has(const cleval_dataset *ds, const char *name);

/* The default of --max-classes: the class count a file may imply. A class count C costs a
 * C x C matrix of 64-bit counts (800 MB at 10,000), so a stray large label must not decide
 * it; 10,000 covers the common label sets (ImageNet-1k, iNaturalist 2021). */
enum { CLEVAL_DEFAULT_MAX_CLASSES = 10000 };

/* Refuses, from now on, labels at or above `max_classes` (0: CLEVAL_DEFAULT_MAX_CLASSES) in the
 * label columns of this file (cleval_column_read_i32), a `class_names` with more entries and
 * counts of more classes (cleval_dataset_read_counts), naming --max-classes. Checked before
 * anything is sized by the class count. A file not limited holds no limit. */
void cleval_dataset_limit_classes(cleval_dataset *ds, uint32_t max_classes);

/* Fails like cleval_dataset_limit_classes' checks when `n_classes` (a class count taken from
 * somewhere else than a label, e.g. a model's output width) exceeds `max_classes` (0:
 * CLEVAL_DEFAULT_MAX_CLASSES); `what` names its source ("the model m.onnx"). */
cleval_status cleval_check_class_count(const char *what, uint64_t n_classes, uint32_t max_classes);

/* Reads the optional string dataset `class_names`. When absent, *names is NULL and *count 0.
 * Otherwise the caller frees with cleval_dataset_free_names(). */
cleval_status cleval_dataset_class_names(cleval_dataset *ds, char ***names, uint32_t *count);
void cleval_dataset_free_names(char **names, uint32_t count);

/* Reads a scalar numeric or string attribute of the root group as text ("" when absent). */
cleval_status cleval_dataset_attribute(cleval_dataset *ds, const char *name, char *out,
                                       size_t size);

/* The names of the root group's attributes, in name order (*names may be NULL when there are
 * none). Free with cleval_dataset_free_names(). */
cleval_status cleval_dataset_attribute_names(cleval_dataset *ds, char ***names, uint32_t *count);

/* A block of a 2-D dataset of counts read by cleval_dataset_read_count_blocks: rows
 * [row0, row0 + n_rows) by columns [col0, col0 + n_cols) as [n_rows][n_cols] uint64. Blocks
 * come in the matrix's row-major order: whole rows while a row fits in a block (4 MiB), else
 * consecutive pieces of one row, so their cells taken block after block are the matrix's cells
 * in order. */
typedef struct cleval_count_block {
    uint32_t rows, cols; /* the whole matrix */
    uint32_t row0, col0, n_rows, n_cols;
    const uint64_t *cells; /* valid during the call only */
} cleval_count_block;

typedef cleval_status (*cleval_count_block_fn)(void *user, const cleval_count_block *block);

/* Reads a 2-D dataset of non-negative integers (saved counts) as uint64, one bounded block at a
 * time handed to `each` (memory does not grow with the matrix: a 9001 x 9001 table of a few
 * nonzero cells is read through 4 MiB), stopping at the first status other than CLEVAL_OK it
 * returns. Fails before allocating anything when the file does not store the values its shape
 * declares, or counts more classes than the file's limit. */
cleval_status cleval_dataset_read_count_blocks(cleval_dataset *ds, const char *name,
                                               cleval_count_block_fn each, void *user);

/* The whole matrix at once (for tables that are always small): *cells is heap memory of
 * rows * cols values (free()), with the checks of cleval_dataset_read_count_blocks. */
cleval_status cleval_dataset_read_counts(cleval_dataset *ds, const char *name, uint32_t *rows,
                                         uint32_t *cols, uint64_t **cells);

/* Opens dataset `name` and checks its type and rank against `kind`. */
cleval_status cleval_column_open(cleval_dataset *ds, const char *name, cleval_column_kind kind,
                                 cleval_column **out);

/* NULL is a no-op. */
void cleval_column_close(cleval_column *col);

/* N, the first dimension. */
uint64_t cleval_column_rows(const cleval_column *col);

/* CLEVAL_OK when `other` has as many rows as `first` (two columns of one file); otherwise
 * CLEVAL_ERR_INPUT with "<path>: '<first>' has N samples but '<other>' has M". */
cleval_status cleval_column_check_rows(const cleval_column *first, const cleval_column *other);

/* The shape of one row (the dimensions after the first) and its rank (0 for labels). */
uint32_t cleval_column_row_rank(const cleval_column *col);
const uint64_t *cleval_column_row_shape(const cleval_column *col);

/* Elements per row: the product of the row shape (1 for a 1-D dataset). */
uint64_t cleval_column_row_size(const cleval_column *col);

/* The dataset's name inside the file, the file's path, and a description of its stored type
 * ("uint8"). */
const char *cleval_column_name(const cleval_column *col);
const char *cleval_column_path(const cleval_column *col);
const char *cleval_column_type_name(const cleval_column *col);

/* How many compressed chunks cleval has inflated itself for this column (read raw and
 * inflated on its own threads, see src/dataset/chunk_reader.h); 0 when every read went
 * through HDF5's filters. */
uint64_t cleval_column_chunks_inflated(const cleval_column *col);

/* Reads rows [row0, row0 + n) into `out` (n * row_size floats), converting from the stored
 * type. A FEATURES column fails with CLEVAL_ERR_INPUT naming the first sample that holds NaN or
 * Inf. */
cleval_status cleval_column_read_f32(cleval_column *col, uint64_t row0, uint64_t n, float *out);

/* Element types rows can be read as (cleval_column_read_as). */
typedef enum cleval_elem_type {
    CLEVAL_ELEM_F32 = 0,
    CLEVAL_ELEM_U8 = 1,
    CLEVAL_ELEM_I8 = 2,
    CLEVAL_ELEM_U16 = 3,
    CLEVAL_ELEM_I16 = 4,
    CLEVAL_ELEM_I32 = 5,
    CLEVAL_ELEM_I64 = 6,
    CLEVAL_ELEM_F16 = 7, /* IEEE half bit patterns, only from a column that stores float16 */
} cleval_elem_type;

/* Bytes of one element of `type`. */
size_t cleval_column_elem_size(cleval_elem_type type);

/* Whether the column holds integers. */
bool cleval_column_is_integer(const cleval_column *col);

/* Whether every value the stored type can hold converts exactly to `type`: any numeric type
 * for float32 (as cleval_column_read_f32 converts), an integer type of no wider range for the
 * integer types, float16 for float16 only. */
bool cleval_column_fits(const cleval_column *col, cleval_elem_type type);

/* Reads rows [row0, row0 + n) into `out` (n * row_size elements of `type`): float32 as
 * cleval_column_read_f32, an integer type converted by HDF5 from the stored type, which must
 * fit it (cleval_column_fits; CLEVAL_ERR_INTERNAL otherwise), float16 as stored (features
 * checked finite, as for float32). */
cleval_status cleval_column_read_as(cleval_column *col, uint64_t row0, uint64_t n,
                                    cleval_elem_type type, void *out);

/* Reads labels [row0, row0 + n) into `out`. Fails naming the first sample whose label is below 0
 * or above INT32_MAX. When `max_label` is not NULL it receives the largest label read (-1 for
 * n == 0). */
cleval_status cleval_column_read_i32(cleval_column *col, uint64_t row0, uint64_t n, int32_t *out,
                                     int32_t *max_label);

#ifdef __cplusplus
}
#endif

#endif
