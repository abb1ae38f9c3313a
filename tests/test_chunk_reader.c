/* Compressed chunks read raw and inflated on cleval's own threads (src/dataset/chunk_reader.c):
 * every row equals numpy's values (tools/make_chunk_fixtures.py stores them beside each
 * dataset, read back here with libhdf5 alone) at several batch sizes and thread counts; chunks
 * never written and chunks whose filter was skipped still read right; damaged chunks fail
 * naming file and dataset, in the library and through the command line. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/dataset.h"

typedef struct chunked_case {
    const char *name;
    cleval_column_kind kind;
    cleval_elem_type read;  /* as what the test reads it: its stored type */
    uint64_t stored_chunks; /* chunks in storage when every one was written, else 0 */
} chunked_case;

/* Chunks: ceil(103 / c0) rows of chunks times the chunks across one sample. */
static const chunked_case cases[] = {
    {"u8_gzip1", CLEVAL_COLUMN_FEATURES, CLEVAL_ELEM_U8, 11 * 3 * 3},
    {"u8_gzip9_shuffle", CLEVAL_COLUMN_FEATURES, CLEVAL_ELEM_U8, 7},
    {"f32_gzip9_shuffle", CLEVAL_COLUMN_FEATURES, CLEVAL_ELEM_F32, 15 * 4},
    {"f32_gzip1", CLEVAL_COLUMN_FEATURES, CLEVAL_ELEM_F32, 3},
    {"i32_gzip6_shuffle", CLEVAL_COLUMN_VALUES, CLEVAL_ELEM_I32, 103},
    {"y", CLEVAL_COLUMN_LABELS, CLEVAL_ELEM_I32, 13},
    {"y_wide_chunk", CLEVAL_COLUMN_LABELS, CLEVAL_ELEM_I32, 1},
    {"partial", CLEVAL_COLUMN_FEATURES, CLEVAL_ELEM_F32, 0},
    {"skipped_filter", CLEVAL_COLUMN_FEATURES, CLEVAL_ELEM_F32, 0},
};

static hid_t native(cleval_elem_type type)
{
    return type == CLEVAL_ELEM_U8    ? H5T_NATIVE_UINT8
           : type == CLEVAL_ELEM_I32 ? H5T_NATIVE_INT32
                                     : H5T_NATIVE_FLOAT;
}

/* NAME_expected read whole by libhdf5: numpy's values. */
static void *expected_values(const char *path, const chunked_case *c, size_t *bytes)
{
    char name[64];
    snprintf(name, sizeof name, "%s_expected", c->name);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t space = H5Dget_space(dset);
    *bytes = (size_t)H5Sget_simple_extent_npoints(space) * cleval_column_elem_size(c->read);
    void *values = malloc(*bytes);
    assert_non_null(values);
    assert_true(H5Dread(dset, native(c->read), H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0);
    H5Sclose(space);
    H5Dclose(dset);
    H5Fclose(file);
    return values;
}

static void read_batch(cleval_column *col, const chunked_case *c, uint64_t row0, uint64_t n,
                       void *dest)
{
    if (c->kind == CLEVAL_COLUMN_LABELS) {
        int32_t max;
        assert_ok(cleval_column_read_i32(col, row0, n, dest, &max));
    } else {
        assert_ok(cleval_column_read_as(col, row0, n, c->read, dest));
    }
}

/* Every row of case `c`, read in batches of `batch` from the start, then a few batches out of
 * order, equals numpy's; a fully written dataset read in order inflates each chunk once (a
 * chunk row cut by a batch boundary is kept for the next batch). */
static void check_case(const char *path, const chunked_case *c, uint64_t batch)
{
    size_t bytes;
    unsigned char *expected = expected_values(path, c, &bytes);
    cleval_dataset *ds;
    cleval_column *col;
    assert_ok(cleval_dataset_open(path, &ds));
    assert_ok(cleval_column_open(ds, c->name, c->kind, &col));
    uint64_t rows = cleval_column_rows(col);
    size_t row_bytes = bytes / rows;
    unsigned char *got = malloc(bytes);
    assert_non_null(got);
    memset(got, 0xA5, bytes);
    for (uint64_t row0 = 0; row0 < rows; row0 += batch) {
        uint64_t n = rows - row0 < batch ? rows - row0 : batch;
        read_batch(col, c, row0, n, got + row0 * row_bytes);
    }
    if (memcmp(got, expected, bytes) != 0)
        fail_msg("'%s' read in batches of %llu differs from numpy's values", c->name,
                 (unsigned long long)batch);
    uint64_t inflated = cleval_column_chunks_inflated(col);
    if (c->stored_chunks && inflated != c->stored_chunks)
        fail_msg("'%s' in batches of %llu: %llu chunks inflated, %llu stored", c->name,
                 (unsigned long long)batch, (unsigned long long)inflated,
                 (unsigned long long)c->stored_chunks);
    /* A batch that touches a chunk never written or stored unfiltered is HDF5's to read. */
    if (inflated == 0 && (c->stored_chunks || batch <= 7))
        fail_msg("'%s' in batches of %llu: no chunk was inflated by cleval", c->name,
                 (unsigned long long)batch);

    const uint64_t out_of_order[][2] = {{50, 8}, {3, 7}, {rows - 9, 9}, {0, 1}, {49, 2}};
    for (size_t i = 0; i < sizeof out_of_order / sizeof out_of_order[0]; i++) {
        uint64_t row0 = out_of_order[i][0] % rows, n = out_of_order[i][1];
        if (row0 + n > rows) n = rows - row0;
        memset(got, 0xA5, bytes);
        read_batch(col, c, row0, n, got);
        if (memcmp(got, expected + row0 * row_bytes, n * row_bytes) != 0)
            fail_msg("'%s' rows %llu..%llu differ from numpy's values", c->name,
                     (unsigned long long)row0, (unsigned long long)(row0 + n));
    }
    free(got);
    free(expected);
    cleval_column_close(col);
    cleval_dataset_close(ds);
}

static void test_rows_equal_numpy(void **state)
{
    (void)state;
    const char *path = fixture_path("chunks/chunks.h5");
    static const char *const threads[] = {"1", "3"};
    static const uint64_t batches[] = {1, 7, 64, 103};
    for (size_t t = 0; t < 2; t++) {
        setenv("CLEVAL_INFLATE_THREADS", threads[t], 1);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++)
                check_case(path, &cases[i], batches[b]);
    }
    unsetenv("CLEVAL_INFLATE_THREADS");
}

/* Reading rows [row0, row0 + n) of `name` in `file` fails naming both and `what`. */
static void expect_damage(const char *file, const char *name, uint64_t row0, uint64_t n,
                          const char *what)
{
    const char *path = fixture_path(file);
    char copy[512];
    snprintf(copy, sizeof copy, "%s", path);
    cleval_dataset *ds;
    cleval_column *col;
    assert_ok(cleval_dataset_open(copy, &ds));
    bool labels = strcmp(name, "X") != 0;
    assert_ok(
        cleval_column_open(ds, name, labels ? CLEVAL_COLUMN_VALUES : CLEVAL_COLUMN_FEATURES, &col));
    float values[40 * 6];
    assert_ok(cleval_column_read_f32(col, 0, 10, values)); /* the chunk before is sound */
    assert_int_equal(cleval_column_read_f32(col, row0, n, values), CLEVAL_ERR_INPUT);
    const char *message = cleval_last_error();
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s'", name);
    if (!strstr(message, copy) || !strstr(message, quoted) || !strstr(message, what) ||
        strchr(message, '\n'))
        fail_msg("message '%s' lacks the file, %s or '%s'", message, quoted, what);
    cleval_column_close(col);
    cleval_dataset_close(ds);
}

static void test_damaged_chunks_named(void **state)
{
    (void)state;
    static const char *const threads[] = {"1", "2"};
    for (size_t t = 0; t < 2; t++) {
        setenv("CLEVAL_INFLATE_THREADS", threads[t], 1);
        expect_damage("chunks/corrupt_inflate.h5", "X", 0, 40, "rows 10..20 does not inflate");
        expect_damage("chunks/corrupt_inflate.h5", "pred", 5, 10, "does not inflate");
        expect_damage("chunks/corrupt_short.h5", "X", 12, 3,
                      "inflates to 50 bytes where its shape holds 60");
        expect_damage("chunks/corrupt_short.h5", "pred", 0, 40,
                      "inflates to 30 bytes where its shape holds 40");
        expect_damage("chunks/corrupt_long.h5", "X", 0, 40, "inflates to more than the 60 bytes");
        expect_damage("chunks/corrupt_long.h5", "pred", 19, 1,
                      "inflates to more than the 40 bytes");
    }
    unsetenv("CLEVAL_INFLATE_THREADS");
}

/* `cleval metrics` on a damaged prediction file: exit 2, one line naming file and dataset. */
static void test_cli_damaged_chunk(void **state)
{
    (void)state;
    static const char *const files[] = {"chunks/corrupt_inflate.h5", "chunks/corrupt_short.h5",
                                        "chunks/corrupt_long.h5"};
    for (size_t i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s", fixture_path(files[i]));
        char *out, *err;
        int code =
            run_cleval((const char *[]){"metrics", "--data", path, "--quiet", NULL}, &out, &err);
        assert_int_equal(code, 2);
        assert_string_equal(out, "");
        const char *newline = strchr(err, '\n');
        if (!strstr(err, path) || !strstr(err, "dataset 'pred' is damaged") || !newline ||
            newline[1] != '\0')
            fail_msg("stderr '%s' is not one line naming %s and 'pred'", err, path);
        free(out);
        free(err);
    }
}

static void test_bad_thread_count_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"0", "-1", "two", "3x", "100000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("CLEVAL_INFLATE_THREADS", bad[i], 1);
        cleval_dataset *ds;
        cleval_column *col = NULL;
        assert_ok(cleval_dataset_open(fixture_path("chunks/chunks.h5"), &ds));
        assert_int_equal(cleval_column_open(ds, "y", CLEVAL_COLUMN_LABELS, &col), CLEVAL_ERR_USAGE);
        assert_null(col);
        assert_non_null(strstr(cleval_last_error(), "CLEVAL_INFLATE_THREADS"));
        cleval_dataset_close(ds);
    }
    unsetenv("CLEVAL_INFLATE_THREADS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_equal_numpy),
        cmocka_unit_test(test_damaged_chunks_named),
        cmocka_unit_test(test_cli_damaged_chunk),
        cmocka_unit_test(test_bad_thread_count_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
