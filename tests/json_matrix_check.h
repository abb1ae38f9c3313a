/* Checks of a report's confusion matrix, shared by the tests of large labels: one too large to
 * parse as a whole (a 9001-class matrix is 244 MB of JSON text) against its known nonzero
 * cells, a small one against the matrix counted here from the file's pairs; and the files
 * those tests write and read (label and prediction pairs, a saved confusion matrix).
 * Header-only: static inline, so a test that uses none of it compiles without unused-function
 * warnings. */
#ifndef CLEVAL_TESTS_JSON_MATRIX_CHECK_H
#define CLEVAL_TESTS_JSON_MATRIX_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

typedef struct known_cell {
    uint32_t row, col;
    uint64_t count;
} known_cell;

/* Reads the JSON array of arrays after "`key`": from a report file without parsing the whole
 * report (a 9001-class matrix is 244 MB of text): every row must hold n numbers, the nonzero
 * ones exactly `cells` (row-major). */
static inline void expect_json_matrix(const char *path, const char *key, uint32_t n,
                                      const known_cell *cells, size_t n_cells)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char needle[64];
    int length = snprintf(needle, sizeof needle, "\"%s\":\t[", key);
    int matched = 0, ch;
    while (matched < length && (ch = getc(f)) != EOF)
        matched = ch == needle[matched] ? matched + 1 : (ch == needle[0] ? 1 : 0);
    assert_int_equal(matched, length);
    size_t next = 0;
    uint32_t row = 0;
    for (;; row++) {
        assert_int_equal(getc(f), '[');
        uint32_t col = 0;
        for (;; col++) {
            unsigned long long v;
            assert_int_equal(fscanf(f, "%llu", &v), 1);
            if (v) {
                assert_true(next < n_cells);
                assert_int_equal(cells[next].row, row);
                assert_int_equal(cells[next].col, col);
                assert_int_equal(cells[next].count, v);
                next++;
            }
            ch = getc(f);
            if (ch == ']') break;
            assert_int_equal(ch, ',');
            assert_int_equal(getc(f), ' ');
        }
        assert_int_equal(col + 1, n);
        ch = getc(f);
        if (ch == ']') break;
        assert_int_equal(ch, ',');
        assert_int_equal(getc(f), ' ');
    }
    assert_int_equal(row + 1, n);
    assert_int_equal(next, n_cells);
    fclose(f);
}

/* The report file's confusion matrix against one counted here from n (y, pred) pairs of c
 * classes. */
static inline void expect_report_matrix(const char *report_path, const int32_t *y,
                                        const int32_t *pred, uint32_t n, uint32_t c)
{
    cJSON *report = load_json(report_path);
    const cJSON *matrix = cJSON_GetObjectItem(report, "confusion_matrix");
    assert_int_equal(cJSON_GetArraySize(matrix), c);
    uint64_t *reference = calloc((size_t)c * c, sizeof *reference);
    assert_non_null(reference);
    for (uint32_t i = 0; i < n; i++)
        reference[(size_t)y[i] * c + (size_t)pred[i]]++;
    uint32_t r = 0;
    for (const cJSON *row = matrix->child; row; row = row->next, r++) {
        assert_int_equal(cJSON_GetArraySize(row), c);
        uint32_t k = 0;
        for (const cJSON *cell = row->child; cell; cell = cell->next, k++)
            assert_true(cell->valuedouble == (double)reference[(size_t)r * c + k]);
    }
    assert_int_equal(r, c);
    free(reference);
    cJSON_Delete(report);
}

/* A prediction file of n (label, prediction) pairs, `y` and `pred` int32, in the test's own
 * temporary folder; returns its path (testutil's buffer). */
static inline const char *write_pairs(const char *name, const int32_t *y, const int32_t *pred,
                                      uint32_t n)
{
    const char *path = temp_path(name);
    hid_t file = h5_create(path);
    hsize_t rows = n;
    h5_write(file, "y", H5T_NATIVE_INT32, 1, &rows, y, 0, NULL);
    h5_write(file, "pred", H5T_NATIVE_INT32, 1, &rows, pred, 0, NULL);
    H5Fclose(file);
    return path;
}

/* The `confusion` counts a --save file holds (`cells` values, row-major; free them). */
static inline int64_t *read_confusion(const char *path, size_t cells)
{
    int64_t *m = malloc(cells * sizeof *m);
    assert_non_null(m);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dset = H5Dopen2(file, "confusion", H5P_DEFAULT);
    assert_true(dset >= 0);
    assert_true(H5Dread(dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, m) >= 0);
    H5Dclose(dset);
    H5Fclose(file);
    return m;
}

#endif
