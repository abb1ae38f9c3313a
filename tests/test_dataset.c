/* The HDF5 reader: type conversion, batch reads by hyperslab, chunked + gzip data, every bad
 * input it must name, and memory that stays bounded by the batch, not the file. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleval/dataset.h"

/* A file with X uint8 [6, 2, 3] = 0..35, y int64 [6] and fixed-length class names. */
static const char *write_small_file(void)
{
    const char *path = temp_path("dataset_small.h5");
    hid_t file = h5_create(path);
    uint8_t x[36];
    for (int i = 0; i < 36; i++)
        x[i] = (uint8_t)i;
    int64_t y[6] = {0, 1, 2, 1, 0, 2};
    hsize_t xdims[3] = {6, 2, 3}, ydims[1] = {6};
    h5_write(file, "X", H5T_NATIVE_UINT8, 3, xdims, x, 0, NULL);
    h5_write(file, "y", H5T_NATIVE_INT64, 1, ydims, y, 0, NULL);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, 8);
    hsize_t ndims[1] = {3};
    h5_write(file, "class_names", str, 1, ndims, "red\0\0\0\0\0green\0\0\0blue\0\0\0\0", 0, NULL);
    H5Tclose(str);
    H5Fclose(file);
    return path;
}

/* The file's class names are exactly `expected` (n of them). */
static void assert_class_names(cleval_dataset *ds, const char *const *expected, uint32_t n)
{
    char **names;
    uint32_t count;
    assert_ok(cleval_dataset_class_names(ds, &names, &count));
    assert_int_equal(count, n);
    for (uint32_t i = 0; i < n; i++)
        assert_string_equal(names[i], expected[i]);
    cleval_dataset_free_names(names, count);
}

static void test_reads_uint8_as_float_by_rows(void **state)
{
    (void)state;
    const char *path = write_small_file();
    cleval_dataset *ds;
    cleval_column *x;
    assert_ok(cleval_dataset_open(path, &ds));
    assert_ok(cleval_column_open(ds, "X", CLEVAL_COLUMN_FEATURES, &x));
    assert_int_equal(cleval_column_rows(x), 6);
    assert_int_equal(cleval_column_row_rank(x), 2);
    assert_int_equal(cleval_column_row_shape(x)[0], 2);
    assert_int_equal(cleval_column_row_shape(x)[1], 3);
    assert_int_equal(cleval_column_row_size(x), 6);
    assert_string_equal(cleval_column_type_name(x), "uint8");
    float rows[12];
    assert_ok(cleval_column_read_f32(x, 4, 2, rows));
    for (int i = 0; i < 12; i++)
        assert_true(rows[i] == (float)(24 + i));
    cleval_column_close(x);
    cleval_dataset_close(ds);
}

static void test_reads_labels_and_names(void **state)
{
    (void)state;
    const char *path = write_small_file();
    cleval_dataset *ds;
    cleval_column *y;
    assert_ok(cleval_dataset_open(path, &ds));
    assert_ok(cleval_column_open(ds, "y", CLEVAL_COLUMN_LABELS, &y));
    int32_t labels[5];
    int32_t max;
    assert_ok(cleval_column_read_i32(y, 1, 5, labels, &max));
    int32_t expected[5] = {1, 2, 1, 0, 2};
    assert_memory_equal(labels, expected, sizeof expected);
    assert_int_equal(max, 2);
    assert_class_names(ds, (const char *const[]){"red", "green", "blue"}, 3);
    cleval_column_close(y);
    cleval_dataset_close(ds);
}

static void test_variable_length_names_and_attributes(void **state)
{
    (void)state;
    const char *path = temp_path("dataset_names.h5");
    hid_t file = h5_create(path);
    const char *names[] = {"T-shirt/top", "chien \xc3\xa9l\xc3\xa9gant"};
    h5_write_strings(file, "class_names", names, 2);
    int32_t y[2] = {0, 1};
    hsize_t dims[1] = {2};
    h5_write(file, "y", H5T_NATIVE_INT32, 1, dims, y, 0, NULL);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(file, "n_shards", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    int64_t shards = 7;
    H5Awrite(attr, H5T_NATIVE_INT64, &shards);
    H5Aclose(attr);
    H5Sclose(space);
    H5Fclose(file);

    cleval_dataset *ds;
    assert_ok(cleval_dataset_open(path, &ds));
    assert_class_names(ds, names, 2);
    char text[64];
    assert_ok(cleval_dataset_attribute(ds, "n_shards", text, sizeof text));
    assert_string_equal(text, "7");
    assert_ok(cleval_dataset_attribute(ds, "absent", text, sizeof text));
    assert_string_equal(text, "");
    cleval_dataset_close(ds);
}

/* A fixed-length, null-padded string that fills its width has no terminator in the file (h5py
 * stores np.bytes_ this way); the reader must keep every character, for attributes and for
 * class names alike. Expected values are the bytes written here. */
static void test_null_padded_strings_keep_full_width(void **state)
{
    (void)state;
    const char *path = temp_path("dataset_nullpad.h5");
    hid_t file = h5_create(path);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, 5);
    H5Tset_strpad(str, H5T_STR_NULLPAD);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(file, "model", str, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, str, "resne");
    H5Aclose(attr);
    H5Sclose(space);
    hsize_t ndims[1] = {2};
    h5_write(file, "class_names", str, 1, ndims, "shirtbag\0\0", 0, NULL);
    H5Tclose(str);
    H5Fclose(file);

    cleval_dataset *ds;
    assert_ok(cleval_dataset_open(path, &ds));
    char text[64];
    assert_ok(cleval_dataset_attribute(ds, "model", text, sizeof text));
    assert_string_equal(text, "resne");
    assert_class_names(ds, (const char *const[]){"shirt", "bag"}, 2);
    cleval_dataset_close(ds);
}

/* Every stored numeric type converts to the same float32 values. */
static void test_converts_every_numeric_type(void **state)
{
    (void)state;
    const char *path = temp_path("dataset_types.h5");
    hid_t file = h5_create(path);
    hsize_t dims[2] = {3, 2};
    int8_t i8[6] = {-3, -2, -1, 0, 1, 2};
    uint16_t u16[6] = {0, 1, 2, 60000, 4, 5};
    int32_t i32[6] = {-100000, 2, 3, 4, 5, 6};
    uint32_t u32[6] = {4000000000u, 1, 2, 3, 4, 5};
    int64_t i64[6] = {-5, 1LL << 40, 3, 4, 5, 6};
    double f64[6] = {0.5, -1.25, 3.0e10, 4, 5, 6};
    h5_write(file, "i8", H5T_NATIVE_INT8, 2, dims, i8, 0, NULL);
    h5_write(file, "u16", H5T_NATIVE_UINT16, 2, dims, u16, 0, NULL);
    h5_write(file, "i32", H5T_NATIVE_INT32, 2, dims, i32, 0, NULL);
    h5_write(file, "u32", H5T_NATIVE_UINT32, 2, dims, u32, 0, NULL);
    h5_write(file, "i64", H5T_NATIVE_INT64, 2, dims, i64, 0, NULL);
    h5_write(file, "f64", H5T_NATIVE_DOUBLE, 2, dims, f64, 0, NULL);
    /* Big-endian float32: HDF5 swaps bytes on read. */
    float f32[6] = {1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t dset = H5Dcreate2(file, "f32be", H5T_IEEE_F32BE, space, H5P_DEFAULT, H5P_DEFAULT,
                            H5P_DEFAULT);
    H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, f32);
    H5Dclose(dset);
    H5Sclose(space);
    H5Fclose(file);

    struct {
        const char *name;
        float expected[6];
    } cases[] = {
        {"i8", {-3, -2, -1, 0, 1, 2}},
        {"u16", {0, 1, 2, 60000, 4, 5}},
        {"i32", {-100000, 2, 3, 4, 5, 6}},
        {"u32", {4000000000.0f, 1, 2, 3, 4, 5}},
        {"i64", {-5, 1099511627776.0f, 3, 4, 5, 6}},
        {"f64", {0.5f, -1.25f, 3.0e10f, 4, 5, 6}},
        {"f32be", {1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f}},
    };
    cleval_dataset *ds;
    assert_ok(cleval_dataset_open(path, &ds));
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        cleval_column *col;
        assert_ok(cleval_column_open(ds, cases[c].name, CLEVAL_COLUMN_FEATURES, &col));
        float got[6];
        assert_ok(cleval_column_read_f32(col, 0, 3, got));
        for (int i = 0; i < 6; i++)
            assert_true(got[i] == cases[c].expected[i]);
        cleval_column_close(col);
    }
    cleval_dataset_close(ds);
}

/* Integer rows read as another integer type (HDF5 converts): exact where the stored type fits
 * the one asked, which cleval_column_fits says; floats fit float32 only. */
static void test_reads_integers_as_fitting_types(void **state)
{
    (void)state;
    test_converts_every_numeric_type(state); /* writes dataset_types.h5 */
    cleval_dataset *ds;
    assert_ok(cleval_dataset_open(temp_path("dataset_types.h5"), &ds));
    static const struct {
        const char *name;
        bool fits[7]; /* F32, U8, I8, U16, I16, I32, I64 */
    } cases[] = {
        {"i8", {true, false, true, false, true, true, true}},
        {"u16", {true, false, false, true, false, true, true}},
        {"i32", {true, false, false, false, false, true, true}},
        {"u32", {true, false, false, false, false, false, true}},
        {"i64", {true, false, false, false, false, false, true}},
        {"f64", {true, false, false, false, false, false, false}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        cleval_column *col;
        assert_ok(cleval_column_open(ds, cases[c].name, CLEVAL_COLUMN_FEATURES, &col));
        for (int t = 0; t < 7; t++)
            assert_int_equal(cleval_column_fits(col, (cleval_elem_type)t), cases[c].fits[t]);
        assert_int_equal(cleval_column_is_integer(col), c < 5);
        cleval_column_close(col);
    }
    cleval_column *col;
    int64_t i64[4];
    int16_t i16[4];
    assert_ok(cleval_column_open(ds, "u32", CLEVAL_COLUMN_FEATURES, &col));
    assert_ok(cleval_column_read_as(col, 1, 2, CLEVAL_ELEM_I64, i64)); /* rows 1 and 2 */
    assert_true(i64[0] == 2 && i64[1] == 3 && i64[2] == 4 && i64[3] == 5);
    assert_int_equal(cleval_column_read_as(col, 0, 1, CLEVAL_ELEM_I32, i64), CLEVAL_ERR_INTERNAL);
    cleval_column_close(col);
    assert_ok(cleval_column_open(ds, "i8", CLEVAL_COLUMN_FEATURES, &col));
    assert_ok(cleval_column_read_as(col, 0, 2, CLEVAL_ELEM_I16, i16));
    assert_true(i16[0] == -3 && i16[1] == -2 && i16[2] == -1 && i16[3] == 0);
    assert_int_equal(cleval_column_elem_size(CLEVAL_ELEM_I16), 2);
    assert_int_equal(cleval_column_elem_size(CLEVAL_ELEM_I64), 8);
    cleval_column_close(col);
    cleval_dataset_close(ds);
}

/* Chunked, gzip-compressed data read in batches that cut through chunks equals a plain read. */
static void test_chunked_gzip_batches(void **state)
{
    (void)state;
    const char *path = temp_path("dataset_gzip.h5");
    const hsize_t n = 1009, d = 17; /* primes: batches and chunks never line up */
    float *x = malloc(n * d * sizeof *x);
    int16_t *y = malloc(n * sizeof *y);
    for (hsize_t i = 0; i < n * d; i++)
        x[i] = (float)((i * 2654435761u) % 1000) / 7.0f;
    for (hsize_t i = 0; i < n; i++)
        y[i] = (int16_t)(i % 11);
    hid_t file = h5_create(path);
    hsize_t xdims[2] = {n, d}, xchunk[2] = {64, 5}, ydims[1] = {n}, ychunk[1] = {100};
    h5_write(file, "X", H5T_NATIVE_FLOAT, 2, xdims, x, 6, xchunk);
    h5_write(file, "y", H5T_NATIVE_INT16, 1, ydims, y, 9, ychunk);
    H5Fclose(file);

    cleval_dataset *ds;
    cleval_column *xc, *yc;
    assert_ok(cleval_dataset_open(path, &ds));
    assert_ok(cleval_column_open(ds, "X", CLEVAL_COLUMN_FEATURES, &xc));
    assert_ok(cleval_column_open(ds, "y", CLEVAL_COLUMN_LABELS, &yc));
    float *batch = malloc(97 * d * sizeof *batch);
    int32_t labels[97];
    for (hsize_t row0 = 0; row0 < n; row0 += 97) {
        hsize_t count = n - row0 < 97 ? n - row0 : 97;
        assert_ok(cleval_column_read_f32(xc, row0, count, batch));
        assert_memory_equal(batch, x + row0 * d, count * d * sizeof *batch);
        int32_t max;
        assert_ok(cleval_column_read_i32(yc, row0, count, labels, &max));
        for (hsize_t i = 0; i < count; i++)
            assert_int_equal(labels[i], y[row0 + i]);
    }
    free(batch);
    free(x);
    free(y);
    cleval_column_close(xc);
    cleval_column_close(yc);
    cleval_dataset_close(ds);
}

static void expect_open_error(const char *path, const char *needle)
{
    cleval_dataset *ds = NULL;
    assert_int_equal(cleval_dataset_open(path, &ds), CLEVAL_ERR_INPUT);
    assert_null(ds);
    assert_non_null(strstr(cleval_last_error(), path));
    if (!strstr(cleval_last_error(), needle))
        fail_msg("message '%s' lacks '%s'", cleval_last_error(), needle);
}

static void test_bad_files(void **state)
{
    (void)state;
    expect_open_error(temp_path("no_such_file.h5"), "No such file");
    expect_open_error(CLEVAL_TEST_TMPDIR, "directory");

    const char *text = temp_path("not_hdf5.h5");
    FILE *f = fopen(text, "w");
    fputs("just some text, not HDF5\n", f);
    fclose(f);
    expect_open_error(text, "not an HDF5 file");

    /* Truncate a valid file to half its size. */
    char src[4096];
    snprintf(src, sizeof src, "%s", write_small_file());
    FILE *in = fopen(src, "rb");
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fclose(in);
    const char *truncated = temp_path("truncated.h5");
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "head -c %ld %s > %s", size / 2, src, truncated);
    assert_int_equal(system(cmd), 0);
    expect_open_error(truncated, "truncated or damaged");

    /* The signature and nothing usable after it: at offset 0, and after a 512-byte user block
     * (where HDF5 also looks). */
    static const char signature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
    for (long offset = 0; offset <= 512; offset += 512) {
        const char *bare = temp_path("signature_only.h5");
        FILE *out = fopen(bare, "wb");
        for (long i = 0; i < offset; i++)
            fputc('u', out);
        fwrite(signature, 1, sizeof signature, out);
        for (int i = 0; i < 200; i++)
            fputc(0, out);
        fclose(out);
        expect_open_error(bare, "truncated or damaged");
    }
}

static void expect_column_error(cleval_dataset *ds, const char *name, cleval_column_kind kind,
                                const char *needle)
{
    cleval_column *col = NULL;
    assert_int_equal(cleval_column_open(ds, name, kind, &col), CLEVAL_ERR_INPUT);
    assert_null(col);
    if (!strstr(cleval_last_error(), needle))
        fail_msg("message '%s' lacks '%s'", cleval_last_error(), needle);
}

static void test_bad_columns(void **state)
{
    (void)state;
    const char *path = temp_path("dataset_badcols.h5");
    hid_t file = h5_create(path);
    float labels_f[3] = {0, 1, 2};
    int32_t grid[4] = {0, 1, 1, 0};
    hsize_t d3[1] = {3}, d22[2] = {2, 2}, d0[1] = {0};
    h5_write(file, "float_labels", H5T_NATIVE_FLOAT, 1, d3, labels_f, 0, NULL);
    h5_write(file, "grid_labels", H5T_NATIVE_INT32, 2, d22, grid, 0, NULL);
    h5_write(file, "empty", H5T_NATIVE_FLOAT, 1, d0, labels_f, 0, NULL);
    const char *names[] = {"a"};
    h5_write_strings(file, "strings", names, 1);
    H5Gclose(H5Gcreate2(file, "group", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Fclose(file);

    cleval_dataset *ds;
    assert_ok(cleval_dataset_open(path, &ds));
    expect_column_error(ds, "X", CLEVAL_COLUMN_FEATURES, "no dataset 'X'");
    expect_column_error(ds, "group", CLEVAL_COLUMN_FEATURES, "no dataset 'group'");
    expect_column_error(ds, "float_labels", CLEVAL_COLUMN_LABELS, "integer labels");
    expect_column_error(ds, "grid_labels", CLEVAL_COLUMN_LABELS, "1-D");
    expect_column_error(ds, "strings", CLEVAL_COLUMN_FEATURES, "integers or floats");
    cleval_column *empty;
    assert_ok(cleval_column_open(ds, "empty", CLEVAL_COLUMN_FEATURES, &empty));
    assert_int_equal(cleval_column_rows(empty), 0);
    cleval_column_close(empty);
    /* Row counts of two columns: 3 and 2 as written above. */
    cleval_column *three, *two;
    assert_ok(cleval_column_open(ds, "float_labels", CLEVAL_COLUMN_FEATURES, &three));
    assert_ok(cleval_column_open(ds, "grid_labels", CLEVAL_COLUMN_FEATURES, &two));
    assert_ok(cleval_column_check_rows(three, three));
    assert_int_equal(cleval_column_check_rows(three, two), CLEVAL_ERR_INPUT);
    char expected[4200];
    snprintf(expected, sizeof expected,
             "%s: 'float_labels' has 3 samples but 'grid_labels' has 2", path);
    assert_string_equal(cleval_last_error(), expected);
    cleval_column_close(three);
    cleval_column_close(two);
    cleval_dataset_close(ds);
}

static void test_non_finite_values_name_the_sample(void **state)
{
    (void)state;
    const char *path = temp_path("dataset_nan.h5");
    float x[5 * 3] = {0};
    x[3 * 3 + 1] = NAN;
    double inf_x[4 * 2] = {0};
    inf_x[2 * 2] = -INFINITY;
    double huge[2] = {1.0, 1e300};
    hsize_t d53[2] = {5, 3}, d42[2] = {4, 2}, d21[2] = {2, 1};
    hid_t file = h5_create(path);
    h5_write(file, "X", H5T_NATIVE_FLOAT, 2, d53, x, 0, NULL);
    h5_write(file, "Xinf", H5T_NATIVE_DOUBLE, 2, d42, inf_x, 0, NULL);
    h5_write(file, "Xhuge", H5T_NATIVE_DOUBLE, 2, d21, huge, 0, NULL);
    H5Fclose(file);

    cleval_dataset *ds;
    cleval_column *col;
    float out[15];
    assert_ok(cleval_dataset_open(path, &ds));
    assert_ok(cleval_column_open(ds, "X", CLEVAL_COLUMN_FEATURES, &col));
    assert_ok(cleval_column_read_f32(col, 0, 3, out)); /* rows 0..2 are fine */
    assert_int_equal(cleval_column_read_f32(col, 2, 3, out), CLEVAL_ERR_INPUT);
    assert_non_null(strstr(cleval_last_error(), "sample 3 holds NaN"));
    cleval_column_close(col);

    assert_ok(cleval_column_open(ds, "Xinf", CLEVAL_COLUMN_FEATURES, &col));
    assert_int_equal(cleval_column_read_f32(col, 0, 4, out), CLEVAL_ERR_INPUT);
    assert_non_null(strstr(cleval_last_error(), "sample 2 holds Inf"));
    cleval_column_close(col);

    assert_ok(cleval_column_open(ds, "Xhuge", CLEVAL_COLUMN_FEATURES, &col));
    assert_int_equal(cleval_column_read_f32(col, 0, 2, out), CLEVAL_ERR_INPUT);
    assert_non_null(strstr(cleval_last_error(), "sample 1"));
    cleval_column_close(col);

    /* Raw scores (VALUES) are not checked. */
    assert_ok(cleval_column_open(ds, "X", CLEVAL_COLUMN_VALUES, &col));
    assert_ok(cleval_column_read_f32(col, 0, 5, out));
    assert_true(isnan(out[10]));
    cleval_column_close(col);
    cleval_dataset_close(ds);
}

static void test_bad_labels_name_the_sample(void **state)
{
    (void)state;
    const char *path = temp_path("dataset_badlabels.h5");
    int8_t neg[4] = {0, 1, -1, 2};
    int64_t big[3] = {0, 3000000000LL, 1};
    uint64_t ubig[2] = {5, 1ull << 40};
    uint8_t fine[3] = {255, 0, 7};
    hsize_t d4[1] = {4}, d3[1] = {3}, d2[1] = {2};
    hid_t file = h5_create(path);
    h5_write(file, "neg", H5T_NATIVE_INT8, 1, d4, neg, 0, NULL);
    h5_write(file, "big", H5T_NATIVE_INT64, 1, d3, big, 0, NULL);
    h5_write(file, "ubig", H5T_NATIVE_UINT64, 1, d2, ubig, 0, NULL);
    h5_write(file, "fine", H5T_NATIVE_UINT8, 1, d3, fine, 0, NULL);
    H5Fclose(file);

    cleval_dataset *ds;
    cleval_column *col;
    int32_t out[4], max;
    assert_ok(cleval_dataset_open(path, &ds));
    assert_ok(cleval_column_open(ds, "neg", CLEVAL_COLUMN_LABELS, &col));
    assert_int_equal(cleval_column_read_i32(col, 0, 4, out, &max), CLEVAL_ERR_INPUT);
    assert_non_null(strstr(cleval_last_error(), "sample 2 has label -1"));
    cleval_column_close(col);
    assert_ok(cleval_column_open(ds, "big", CLEVAL_COLUMN_LABELS, &col));
    assert_int_equal(cleval_column_read_i32(col, 0, 3, out, &max), CLEVAL_ERR_INPUT);
    assert_non_null(strstr(cleval_last_error(), "sample 1 has label 3000000000"));
    cleval_column_close(col);
    assert_ok(cleval_column_open(ds, "ubig", CLEVAL_COLUMN_LABELS, &col));
    assert_int_equal(cleval_column_read_i32(col, 0, 2, out, &max), CLEVAL_ERR_INPUT);
    assert_non_null(strstr(cleval_last_error(), "sample 1 has label 1099511627776"));
    cleval_column_close(col);
    assert_ok(cleval_column_open(ds, "fine", CLEVAL_COLUMN_LABELS, &col));
    assert_ok(cleval_column_read_i32(col, 0, 3, out, &max));
    assert_int_equal(out[0], 255);
    assert_int_equal(max, 255);
    assert_int_equal(cleval_column_read_i32(col, 2, 5, out, &max), CLEVAL_ERR_USAGE);
    cleval_column_close(col);
    cleval_dataset_close(ds);
}

/* Peak resident memory in KiB (the process's high-water mark). */
static long peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1) break;
    if (f) fclose(f);
    return kib;
}

/* Streaming a 256 MiB chunked + gzip file in 1 MiB batches raises the process's peak memory
 * by a few batches and cache lines, never by the file's size. */
static void test_memory_bounded_by_batch(void **state)
{
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    /* AddressSanitizer's quarantine keeps freed blocks resident: RSS says nothing there. */
    skip();
#endif
    const char *path = temp_path("dataset_large.h5");
    const hsize_t n = 65536, d = 1024; /* float32: 256 MiB */
    const hsize_t batch = 256;         /* 1 MiB */
    hid_t file = h5_create(path);
    hsize_t dims[2] = {n, d}, chunk[2] = {256, d};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    H5Pset_deflate(dcpl, 1);
    hid_t dset = H5Dcreate2(file, "X", H5T_NATIVE_FLOAT, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    float *block = malloc(batch * d * sizeof *block);
    for (hsize_t row0 = 0; row0 < n; row0 += batch) {
        for (hsize_t i = 0; i < batch * d; i++)
            block[i] = (float)((row0 * d + i) % 251);
        hsize_t start[2] = {row0, 0}, count[2] = {batch, d};
        hid_t mem = H5Screate_simple(2, count, NULL);
        H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
        H5Dwrite(dset, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, block);
        H5Sclose(mem);
    }
    H5Dclose(dset);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(file);

    long before = peak_rss_kib();
    cleval_dataset *ds;
    cleval_column *x;
    assert_ok(cleval_dataset_open(path, &ds));
    assert_ok(cleval_column_open(ds, "X", CLEVAL_COLUMN_FEATURES, &x));
    double checksum = 0;
    for (hsize_t row0 = 0; row0 < n; row0 += batch) {
        assert_ok(cleval_column_read_f32(x, row0, batch, block));
        checksum += block[0] + block[batch * d - 1];
    }
    cleval_column_close(x);
    cleval_dataset_close(ds);
    long growth_kib = peak_rss_kib() - before;
    free(block);
    remove(path);
    assert_true(checksum > 0);
    print_message("streaming 256 MiB in 1 MiB batches raised peak RSS by %ld KiB\n", growth_kib);
    assert_true(growth_kib < 32 * 1024); /* the chunk cache holds at most a few batches */
}

/* The process's current address-space size in bytes (VmSize), or -1. */
static long long address_space_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %lld kB", &kib) == 1) break;
    if (f) fclose(f);
    return kib < 0 ? -1 : kib * 1024;
}

/* Reads rows [0, n) of `name` as float32 in a child process whose address space may grow by at
 * most `headroom` bytes during the read; true when the read succeeded and equals `expected`. */
static bool child_reads_within(const char *path, const char *name, hsize_t n, size_t row,
                               const uint8_t *expected, long long headroom)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cleval_dataset *ds;
        cleval_column *col;
        float *values = malloc(n * row * sizeof *values);
        bool ok = values && cleval_dataset_open(path, &ds) == CLEVAL_OK &&
                  cleval_column_open(ds, name, CLEVAL_COLUMN_FEATURES, &col) == CLEVAL_OK;
        struct rlimit cap = {.rlim_cur = (rlim_t)(address_space_bytes() + headroom),
                             .rlim_max = RLIM_INFINITY};
        ok = ok && setrlimit(RLIMIT_AS, &cap) == 0 &&
             cleval_column_read_f32(col, 0, n, values) == CLEVAL_OK;
        for (size_t i = 0; ok && i < n * row; i++)
            ok = values[i] == (float)expected[i];
        _exit(ok ? 0 : 1);
    }
    int wstatus;
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    return WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
}

/* A dataset in absurdly small chunks (one element each) reads back exactly within a bounded
 * amount of memory: HDF5 keeps kilobytes for every chunk a single read touches, so a batch is
 * read in runs of a bounded number of chunks (a 4096-row batch of 28 x 28 images once took
 * 20 GB; 100 such rows in one read take 600 MB). */
static void test_tiny_chunks_bounded(void **state)
{
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    skip(); /* AddressSanitizer reserves terabytes of address space: no cap can be set */
#endif
    const char *path = temp_path("dataset_tiny_chunks.h5");
    const hsize_t n = 100, side = 28;
    uint8_t *x = malloc(n * side * side);
    for (hsize_t i = 0; i < n * side * side; i++)
        x[i] = (uint8_t)((i * 2654435761u) >> 24);
    hid_t file = h5_create(path);
    hsize_t dims[4] = {n, 1, side, side}, chunk[4] = {1, 1, 1, 1};
    h5_write(file, "X", H5T_NATIVE_UINT8, 4, dims, x, 0, chunk);
    H5Fclose(file);
    /* 78,400 chunks in one call, within 96 MiB more address space. */
    assert_true(child_reads_within(path, "X", n, side * side, x, 96ll << 20));
    free(x);
}

/* A layout where one sample spans more chunks than the documented limit is refused at open,
 * naming the file and the dataset, before any read. */
static void test_too_many_chunks_per_sample_refused(void **state)
{
    (void)state;
    const char *path = temp_path("dataset_chunk_dust.h5");
    hid_t file = h5_create(path);
    hsize_t dims[3] = {2, 300, 300}, chunk[3] = {1, 1, 1};
    hid_t space = H5Screate_simple(3, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 3, chunk);
    H5Dclose(H5Dcreate2(file, "X", H5T_NATIVE_FLOAT, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(file);
    cleval_dataset *ds;
    cleval_column *xc = NULL;
    assert_ok(cleval_dataset_open(path, &ds));
    assert_int_equal(cleval_column_open(ds, "X", CLEVAL_COLUMN_FEATURES, &xc), CLEVAL_ERR_INPUT);
    assert_null(xc);
    const char *message = cleval_last_error();
    assert_non_null(strstr(message, path));
    assert_non_null(strstr(message, "'X'"));
    assert_non_null(strstr(message, "chunks"));
    cleval_dataset_close(ds);
}

/* Files found by the dataset fuzzer that crash Debian's libhdf5 inside its own code while it
 * walks their structure: each is refused as damaged (the structure is walked in a child process
 * first), and this process survives. */
static void test_files_that_crash_libhdf5_refused(void **state)
{
    (void)state;
    static const char *const files[] = {
        "damaged/group_heap_segv.h5", /* SIGSEGV in H5Lvisit: a group's damaged local heap */
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        const char *path = fixture_path(files[i]);
        cleval_dataset *ds = NULL;
        assert_int_equal(cleval_dataset_open(path, &ds), CLEVAL_ERR_INPUT);
        assert_null(ds);
        assert_non_null(strstr(cleval_last_error(), path));
        assert_non_null(strstr(cleval_last_error(), "damaged"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_uint8_as_float_by_rows),
        cmocka_unit_test(test_reads_labels_and_names),
        cmocka_unit_test(test_variable_length_names_and_attributes),
        cmocka_unit_test(test_null_padded_strings_keep_full_width),
        cmocka_unit_test(test_converts_every_numeric_type),
        cmocka_unit_test(test_reads_integers_as_fitting_types),
        cmocka_unit_test(test_chunked_gzip_batches),
        cmocka_unit_test(test_tiny_chunks_bounded),
        cmocka_unit_test(test_files_that_crash_libhdf5_refused),
        cmocka_unit_test(test_too_many_chunks_per_sample_refused),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bad_columns),
        cmocka_unit_test(test_non_finite_values_name_the_sample),
        cmocka_unit_test(test_bad_labels_name_the_sample),
        cmocka_unit_test(test_memory_bounded_by_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
