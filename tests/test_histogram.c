/* The device histogram against a plain C loop, bit for bit: every reduction path, odd sizes
 * (0, 1, a prime, one more than the work-group size), 2 to 4096 classes, 1-D histograms,
 * accumulation across batches and widening mid-stream. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "cleval/histogram.h"

/* Deterministic pseudo-random labels in [0, c). */
static void fill_labels(int32_t *out, size_t n, uint32_t c, uint64_t seed)
{
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        out[i] = (int32_t)((s >> 33) % c);
    }
}

static void reference(const int32_t *rows, const int32_t *cols, size_t n, uint32_t n_cols,
                      uint64_t *counts)
{
    for (size_t i = 0; i < n; i++)
        counts[(size_t)(rows ? rows[i] : 0) * n_cols + cols[i]]++;
}

static cl_mem upload(const int32_t *values, size_t n)
{
    cl_mem mem;
    cl_mem_flags flags = CL_MEM_READ_ONLY | (n ? CL_MEM_COPY_HOST_PTR : 0);
    assert_ok(cleval_device_buffer(test_device(), flags, n * sizeof *values,
                                   n ? (void *)values : NULL, "test labels", &mem));
    return mem;
}

/* Adds the same data in `batches` pieces and compares with the reference. */
static void check(cleval_histogram_path path, uint32_t c, size_t n, int paired, int batches)
{
    int32_t *rows = malloc((n ? n : 1) * sizeof *rows), *cols = malloc((n ? n : 1) * sizeof *cols);
    fill_labels(rows, n, c, 1 + c + n);
    fill_labels(cols, n, c, 7 + c * 3 + n);
    uint32_t n_rows = paired ? c : 1;
    uint64_t *expected = calloc((size_t)n_rows * c, sizeof *expected);
    uint64_t *got = calloc((size_t)n_rows * c, sizeof *got);
    reference(paired ? rows : NULL, cols, n, c, expected);

    cleval_histogram *hist;
    cleval_status status = cleval_histogram_create_path(test_device(), n_rows, c, path, &hist);
    if (status == CLEVAL_ERR_USAGE) { /* the path cannot hold this many bins on this device */
        free(rows), free(cols), free(expected), free(got);
        return;
    }
    assert_ok(status);
    size_t per_batch = n ? (n + (size_t)batches - 1) / (size_t)batches : 1;
    for (size_t start = 0; start < n || (n == 0 && start == 0); start += per_batch) {
        size_t count = n - start < per_batch ? n - start : per_batch;
        cl_mem r = upload(rows + start, count), k = upload(cols + start, count);
        assert_ok(cleval_histogram_add(hist, paired ? r : NULL, k, count));
        assert_ok(cleval_device_finish(test_device()));
        clReleaseMemObject(r);
        clReleaseMemObject(k);
    }
    assert_ok(cleval_histogram_read(hist, got));
    if (memcmp(expected, got, (size_t)n_rows * c * sizeof *got) != 0)
        fail_msg("path %s, %u classes, n=%zu, paired=%d, batches=%d: counts differ",
                 cleval_histogram_path_name(path), c, n, paired, batches);
    cleval_histogram_destroy(hist);
    free(rows);
    free(cols);
    free(expected);
    free(got);
}

static const cleval_histogram_path all_paths[] = {CLEVAL_HISTOGRAM_PRIVATE, CLEVAL_HISTOGRAM_SLOTS,
                                                  CLEVAL_HISTOGRAM_LOCAL, CLEVAL_HISTOGRAM_GLOBAL};

static void test_odd_sizes_every_path(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 1, 2, 13, 255, 256, 257, 4097, 100003};
    const uint32_t classes[] = {2, 10, 32};
    for (size_t p = 0; p < 4; p++)
        for (size_t c = 0; c < sizeof classes / sizeof *classes; c++)
            for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
                check(all_paths[p], classes[c], sizes[s], 1, 1);
}

static void test_many_classes(void **state)
{
    (void)state;
    check(CLEVAL_HISTOGRAM_SLOTS, 100, 50021, 1, 3);
    check(CLEVAL_HISTOGRAM_GLOBAL, 100, 50021, 1, 3);
    check(CLEVAL_HISTOGRAM_LOCAL, 100, 50021, 1, 3);
    check(CLEVAL_HISTOGRAM_SLOTS, 1000, 200003, 1, 2);
    check(CLEVAL_HISTOGRAM_GLOBAL, 1000, 200003, 1, 2);
    check(CLEVAL_HISTOGRAM_SLOTS, 4096, 100000, 1, 1);
    check(CLEVAL_HISTOGRAM_GLOBAL, 4096, 100000, 1, 1);
}

static void test_one_dimensional(void **state)
{
    (void)state;
    for (size_t p = 0; p < 4; p++) {
        check(all_paths[p], 10, 1, 0, 1);
        check(all_paths[p], 10, 9973, 0, 4);
        check(all_paths[p], 1000, 9973, 0, 2);
    }
}

static void test_default_path_choice(void **state)
{
    (void)state;
    cleval_device *dev = test_device();
    cleval_kernel_variant saved = cleval_device_variant(dev);
    cleval_histogram *hist;
    cleval_device_set_variant(dev, CLEVAL_VARIANT_CPU);
    assert_ok(cleval_histogram_create(dev, 10, 10, &hist));
    assert_int_equal(cleval_histogram_get_path(hist), CLEVAL_HISTOGRAM_PRIVATE);
    cleval_histogram_destroy(hist);
    assert_ok(cleval_histogram_create(dev, 1000, 1000, &hist));
    assert_int_equal(cleval_histogram_get_path(hist), CLEVAL_HISTOGRAM_SLOTS);
    cleval_histogram_destroy(hist);
    cleval_device_set_variant(dev, CLEVAL_VARIANT_GPU);
    assert_ok(cleval_histogram_create(dev, 10, 10, &hist));
    assert_int_equal(cleval_histogram_get_path(hist), CLEVAL_HISTOGRAM_LOCAL);
    cleval_histogram_destroy(hist);
    cleval_device_set_variant(dev, saved);
    cleval_histogram_destroy(NULL);
}

/* Counts survive widening, and pairs outside the grid never count. */
static void test_grow_keeps_counts(void **state)
{
    (void)state;
    for (size_t p = 0; p < 4; p++) {
        cleval_histogram *hist;
        cleval_status status = cleval_histogram_create_path(test_device(), 3, 3, all_paths[p],
                                                            &hist);
        if (status == CLEVAL_ERR_USAGE) continue;
        assert_ok(status);
        int32_t rows1[4] = {0, 1, 2, 2}, cols1[4] = {0, 2, 2, 1};
        int32_t rows2[3] = {5, 0, 2}, cols2[3] = {5, 4, 2};
        int32_t rows_bad[2] = {9, -1}, cols_bad[2] = {0, 0};
        cl_mem r = upload(rows1, 4), c = upload(cols1, 4);
        assert_ok(cleval_histogram_add(hist, r, c, 4));
        assert_ok(cleval_histogram_grow(hist, 6, 6));
        cl_mem r2 = upload(rows2, 3), c2 = upload(cols2, 3);
        cl_mem rb = upload(rows_bad, 2), cb = upload(cols_bad, 2);
        assert_ok(cleval_histogram_add(hist, r2, c2, 3));
        assert_ok(cleval_histogram_add(hist, rb, cb, 2));
        uint64_t got[36];
        assert_ok(cleval_histogram_read(hist, got));
        uint64_t expected[36] = {0};
        expected[0 * 6 + 0] = 1;
        expected[1 * 6 + 2] = 1;
        expected[2 * 6 + 2] = 2;
        expected[2 * 6 + 1] = 1;
        expected[5 * 6 + 5] = 1;
        expected[0 * 6 + 4] = 1;
        assert_memory_equal(got, expected, sizeof got);
        assert_int_equal(cleval_histogram_grow(hist, 2, 9), CLEVAL_ERR_USAGE);
        cleval_histogram_destroy(hist);
        cl_mem all[] = {r, c, r2, c2, rb, cb};
        for (int i = 0; i < 6; i++)
            clReleaseMemObject(all[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_odd_sizes_every_path),
        cmocka_unit_test(test_many_classes),
        cmocka_unit_test(test_one_dimensional),
        cmocka_unit_test(test_default_path_choice),
        cmocka_unit_test(test_grow_keeps_counts),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
