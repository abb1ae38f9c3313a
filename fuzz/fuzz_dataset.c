/* libFuzzer target: HDF5 file bytes through the dataset module: open (signature, damage and
 * linked-file checks), class names, attributes, count matrices, and every row of X (features)
 * and y (labels), in batches as the engine reads them. */
#include <stdint.h>
#include <stdlib.h>

#include "cleval/dataset.h"
#include "fuzz_input.h"

/* Bounds the work per input, not what is checked: rows beyond it are not read. */
enum { MAX_ELEMENTS = 1 << 20, BATCH_ROWS = 64 };

static void read_column(cleval_dataset *ds, const char *name, cleval_column_kind kind)
{
    cleval_column *col;
    if (cleval_column_open(ds, name, kind, &col) != CLEVAL_OK) return;
    uint64_t rows = cleval_column_rows(col), row_size = cleval_column_row_size(col);
    if (row_size && row_size <= MAX_ELEMENTS / BATCH_ROWS) {
        float *x = malloc(BATCH_ROWS * row_size * sizeof *x);
        int32_t *y = malloc(BATCH_ROWS * sizeof *y);
        for (uint64_t row0 = 0; x && y && row0 < rows && row0 * row_size < MAX_ELEMENTS;
             row0 += BATCH_ROWS) {
            uint64_t n = rows - row0 < BATCH_ROWS ? rows - row0 : BATCH_ROWS;
            int32_t max_label;
            cleval_status status = kind == CLEVAL_COLUMN_LABELS
                                       ? cleval_column_read_i32(col, row0, n, y, &max_label)
                                       : cleval_column_read_f32(col, row0, n, x);
            if (status != CLEVAL_OK) break;
        }
        free(x);
        free(y);
    }
    cleval_column_close(col);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_hdf5_without_free_lists();
    return 0;
}

static void read_everything(const uint8_t *data, size_t size)
{
    cleval_dataset *ds;
    if (cleval_dataset_open(fuzz_input_file(data, size, "data.h5"), &ds) != CLEVAL_OK) return;
    char **names;
    uint32_t n_names;
    if (cleval_dataset_class_names(ds, &names, &n_names) == CLEVAL_OK)
        cleval_dataset_free_names(names, n_names);
    char text[256];
    cleval_dataset_attribute(ds, "job", text, sizeof text);
    static const char *const count_sets[] = {"confusion", "counts", "counters"};
    for (size_t i = 0; i < sizeof count_sets / sizeof *count_sets; i++) {
        uint32_t rows, cols;
        uint64_t *cells;
        if (cleval_dataset_read_counts(ds, count_sets[i], &rows, &cols, &cells) == CLEVAL_OK)
            free(cells);
    }
    read_column(ds, "X", CLEVAL_COLUMN_FEATURES);
    read_column(ds, "scores", CLEVAL_COLUMN_FEATURES);
    read_column(ds, "y", CLEVAL_COLUMN_LABELS);
    read_column(ds, "pred", CLEVAL_COLUMN_LABELS);
    cleval_dataset_close(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    read_everything(data, size);
    fuzz_check_hdf5_closed();
    fuzz_check_children_memory();
    return 0;
}
