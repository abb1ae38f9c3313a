/* Exact integer counts over (row, column) pairs: the confusion matrix (true class by predicted
 * class), the flip matrix of compare, and the pipeline's partial counts.
 *
 * Small shapes are held densely, one uint64 per cell, as they always were. Above
 * cleval_counts_dense_limit() cells the counts are held sparsely: only the nonzero cells, in an
 * open-addressed hash table keyed by (row, column). A file of 4 rows whose labels are 0, 1, 2
 * and 9000 then costs 4 cells, not the 81 million of a dense 9001 x 9001 matrix: memory
 * follows the data (rows, distinct pairs), never C^2. Both backings answer the same queries,
 * so no consumer depends on which one a run got. */
#ifndef CLEVAL_COUNTS_H
#define CLEVAL_COUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleval/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One nonzero cell. */
typedef struct cleval_count_cell {
    uint32_t row, col;
    uint64_t count;
} cleval_count_cell;

typedef struct cleval_counts {
    uint32_t rows, cols;
    uint64_t *cells;          /* dense: [rows][cols]; NULL when sparse */
    cleval_count_cell *table; /* sparse: `capacity` slots, count 0 marks a free one */
    size_t capacity, used;
} cleval_counts;

/* The most cells held densely: 2^22 (32 MiB, up to 2048 x 2048). The environment variable
 * CLEVAL_TEST_DENSE_CELLS sets another limit; only the tests use it, to compare the two
 * backings on small shapes. */
uint64_t cleval_counts_dense_limit(void);

/* All-zero counts of rows x cols, dense when rows * cols is within the limit. 0 x 0 is valid
 * (an empty dense matrix). */
cleval_status cleval_counts_init(cleval_counts *c, uint32_t rows, uint32_t cols);

/* Frees everything; a zeroed struct is a no-op. */
void cleval_counts_free(cleval_counts *c);

static inline bool cleval_counts_is_sparse(const cleval_counts *c)
{
    return c->table != NULL;
}

/* Widens to at least rows x cols keeping every count; dense counts turn sparse when the new
 * shape exceeds the limit. */
cleval_status cleval_counts_grow(cleval_counts *c, uint32_t rows, uint32_t cols);

/* Adds n to cell (row, col), which must lie inside the shape. */
cleval_status cleval_counts_add(cleval_counts *c, uint32_t row, uint32_t col, uint64_t n);

/* The count of one cell (0 outside the shape). */
uint64_t cleval_counts_get(const cleval_counts *c, uint32_t row, uint32_t col);

/* into += part, widening `into` to part's shape. */
cleval_status cleval_counts_add_counts(cleval_counts *into, const cleval_counts *part);

/* into += the dense [rows][cols] matrix `cells`, widening `into` to cover it. */
cleval_status cleval_counts_add_dense(cleval_counts *into, uint32_t rows, uint32_t cols,
                                      const uint64_t *cells);

/* A copy of `c` with the same backing. */
cleval_status cleval_counts_copy(const cleval_counts *c, cleval_counts *out);

/* Steps through the nonzero cells in no particular order: start with *pos = 0; false at the
 * end. */
bool cleval_counts_next(const cleval_counts *c, size_t *pos, cleval_count_cell *cell);

/* The nonzero cells sorted by row, then column, as a malloc'd array (free()); *out is NULL
 * when there are none. */
cleval_status cleval_counts_sorted(const cleval_counts *c, cleval_count_cell **out, size_t *n);

/* The sum of every cell. */
uint64_t cleval_counts_total(const cleval_counts *c);

/* The counts as a dense [rows][cols] matrix (malloc'd, free()), for the formats and reductions
 * that need one (the MPI sum). */
cleval_status cleval_counts_to_dense(const cleval_counts *c, uint64_t **out);

#ifdef __cplusplus
}
#endif

#endif
