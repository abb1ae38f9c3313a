/* `cleval metrics` and `cleval devices` as a user runs them: exit codes, the one-line error for
 * every bad input, the JSON report, the prediction file and its atomic write. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* y/pred file with the given lengths; `bad_label` >= 0 puts -1 at that index of y. */
static const char *write_pairs(const char *name, hsize_t n_y, hsize_t n_pred, long bad_label)
{
    const char *path = temp_path(name);
    hid_t file = h5_create(path);
    int32_t *y = calloc(n_y + 1, sizeof *y), *pred = calloc(n_pred + 1, sizeof *pred);
    for (hsize_t i = 0; i < n_y; i++)
        y[i] = (int32_t)(i % 3);
    for (hsize_t i = 0; i < n_pred; i++)
        pred[i] = (int32_t)((i * 2) % 3);
    if (bad_label >= 0) y[bad_label] = -1;
    h5_write(file, "y", H5T_NATIVE_INT32, 1, &n_y, y, 0, NULL);
    h5_write(file, "pred", H5T_NATIVE_INT32, 1, &n_pred, pred, 0, NULL);
    h5_write(file, "truth", H5T_NATIVE_INT32, 1, &n_y, y, 0, NULL);
    free(y);
    free(pred);
    H5Fclose(file);
    return path;
}

static void test_bad_inputs_exit_2(void **state)
{
    (void)state;
    char good[4096], mismatched[4096], negative[4096], empty[4096], text[4096];
    snprintf(good, sizeof good, "%s", write_pairs("cli_good.h5", 10, 10, -1));
    snprintf(mismatched, sizeof mismatched, "%s", write_pairs("cli_mismatch.h5", 10, 9, -1));
    snprintf(negative, sizeof negative, "%s", write_pairs("cli_negative.h5", 10, 10, 6));
    snprintf(empty, sizeof empty, "%s", write_pairs("cli_empty.h5", 0, 0, -1));
    snprintf(text, sizeof text, "%s", temp_path("cli_text.h5"));
    FILE *f = fopen(text, "w");
    fputs("not hdf5\n", f);
    fclose(f);

    expect_cleval_error((const char *[]){"metrics", "--data", "/nonexistent/p.h5", NULL}, 2,
                        "/nonexistent/p.h5: cannot open");
    expect_cleval_error((const char *[]){"metrics", "--data", text, NULL}, 2, "not an HDF5 file");
    expect_cleval_error((const char *[]){"metrics", "--data", mismatched, NULL}, 2,
                        "'y' has 10 samples but 'pred' has 9");
    expect_cleval_error((const char *[]){"metrics", "--data", negative, NULL}, 2,
                        "'y' sample 6 has label -1");
    expect_cleval_error((const char *[]){"metrics", "--data", empty, NULL}, 2, "zero samples");
    expect_cleval_error((const char *[]){"metrics", "--data", good, "--y-key", "labels", NULL}, 2,
                        "no dataset 'labels'");
    expect_cleval_error((const char *[]){"metrics", "--data", good, "--pred-key", "p", NULL}, 2,
                        "no dataset 'p'");
    expect_cleval_error((const char *[]){"metrics", "--data", good, "--batch", "0", NULL}, 2,
                        "--batch: must be at least 1");
    expect_cleval_error((const char *[]){"metrics", "--data", good, "--batch", "ten", NULL}, 2,
                        "--batch: 'ten' is not an integer");
    expect_cleval_error((const char *[]){"metrics", "--data", good, "--frobnicate", NULL}, 2,
                        "unknown flag '--frobnicate'");
    expect_cleval_error((const char *[]){"metrics", NULL}, 2, "--data PRED.h5 is required");
    expect_cleval_error((const char *[]){"metrics", "--data", NULL}, 2, "--data needs a value");
    expect_cleval_error(
        (const char *[]){"metrics", "--data", good, "--device", "no-such-gpu", NULL}, 2,
        "no device name contains 'no-such-gpu'");
    expect_cleval_error((const char *[]){"evaluate-everything", NULL}, 2, "unknown command");
    expect_cleval_error(
        (const char *[]){"metrics", "--data", good, "--save", "/nonexistent/dir/o.h5", NULL}, 2,
        "--save /nonexistent/dir/o.h5");
}

/* Expected by hand for y = i % 3, pred = 2i % 3 over 10 samples: y 0,1,2,0,1,2,0,1,2,0 and
 * pred 0,2,1,0,2,1,0,2,1,0: class 0 is always right (4/4), classes 1 and 2 swap. */
static void test_json_report(void **state)
{
    (void)state;
    char good[4096];
    snprintf(good, sizeof good, "%s", write_pairs("cli_json.h5", 10, 10, -1));
    cJSON *a = run_cleval_json(
        (const char *[]){"metrics", "--data", good, "--json", "-", "--batch", "3", NULL}, 0);
    assert_int_equal(cJSON_GetObjectItem(a, "n_samples")->valueint, 10);
    assert_int_equal(cJSON_GetObjectItem(a, "n_classes")->valueint, 3);
    assert_true(cJSON_GetObjectItem(a, "accuracy")->valuedouble == 0.4);
    cJSON *matrix = cJSON_GetObjectItem(a, "confusion_matrix");
    int expected[3][3] = {{4, 0, 0}, {0, 0, 3}, {0, 3, 0}};
    for (int t = 0; t < 3; t++)
        for (int p = 0; p < 3; p++)
            assert_int_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(matrix, t), p)->valueint,
                             expected[t][p]);
    cJSON *per_class = cJSON_GetObjectItem(a, "per_class");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(per_class, 1), "name")->valuestring,
                        "1");
    assert_non_null(cJSON_GetObjectItem(a, "device"));
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(a, "timing"), "samples_per_s"));

    /* Same predictions, same JSON, apart from timing. */
    cJSON *b = run_cleval_json((const char *[]){"metrics", "--data", good, "--json", "-", NULL}, 0);
    cJSON_DeleteItemFromObject(a, "timing");
    cJSON_DeleteItemFromObject(b, "timing");
    cJSON_DeleteItemFromObject(a, "timing_breakdown");
    cJSON_DeleteItemFromObject(b, "timing_breakdown");
    assert_true(cJSON_Compare(a, b, 1));
    cJSON_Delete(a);
    cJSON_Delete(b);
}

/* The JSON carries every bit: its numbers equal scikit-learn's exactly (cJSON alone would
 * print 15 significant digits). */
static void test_json_numbers_are_exact(void **state)
{
    (void)state;
    const char *cases[] = {"c100_n5000", "c1000_n20000", "named"};
    for (int i = 0; i < 3; i++) {
        char h5[4096], json[4096];
        snprintf(h5, sizeof h5, "%s/metrics/%s.h5", CLEVAL_FIXTURES_DIR, cases[i]);
        snprintf(json, sizeof json, "metrics/%s.json", cases[i]);
        cJSON *got =
            run_cleval_json((const char *[]){"metrics", "--data", h5, "--json", "-", NULL}, 0);
        cJSON *expected = load_json(fixture_path(json));
        const char *averages[] = {"macro", "weighted", "micro"};
        for (int a = 0; a < 3; a++)
            for (const char *const *f = (const char *const[]){"precision", "recall", "f1", NULL};
                 *f; f++)
                assert_true(
                    cJSON_GetObjectItem(cJSON_GetObjectItem(got, averages[a]), *f)->valuedouble ==
                    cJSON_GetObjectItem(cJSON_GetObjectItem(expected, averages[a]), *f)
                        ->valuedouble);
        cJSON *g = cJSON_GetObjectItem(got, "per_class"),
              *e = cJSON_GetObjectItem(expected, "per_class");
        for (int k = 0; k < cJSON_GetArraySize(e); k++)
            assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(g, k), "f1")->valuedouble ==
                        cJSON_GetObjectItem(cJSON_GetArrayItem(e, k), "f1")->valuedouble);
        cJSON_Delete(got);
        cJSON_Delete(expected);
    }
}

static void test_save_and_json_file(void **state)
{
    (void)state;
    char good[4096], saved[4096], json_path[4096];
    snprintf(good, sizeof good, "%s", write_pairs("cli_save_in.h5", 10, 10, -1));
    snprintf(saved, sizeof saved, "%s", temp_path("cli_saved.h5"));
    snprintf(json_path, sizeof json_path, "%s", temp_path("cli_report.json"));
    remove(saved);
    char *out, *err;
    int code = run_cleval((const char *[]){"metrics", "--data", good, "--y-key", "truth", "--save",
                                           saved, "--json", json_path, NULL},
                          &out, &err);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "weighted avg")); /* the human report still goes to stdout */
    free(out);
    free(err);
    cJSON *report = load_json(json_path);
    assert_true(cJSON_GetObjectItem(report, "accuracy")->valuedouble == 0.4);
    cJSON_Delete(report);

    hid_t file = H5Fopen(saved, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    int32_t y[10], pred[10];
    int64_t confusion[9];
    hid_t d = H5Dopen2(file, "y", H5P_DEFAULT);
    H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y);
    H5Dclose(d);
    d = H5Dopen2(file, "pred", H5P_DEFAULT);
    H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, pred);
    H5Dclose(d);
    d = H5Dopen2(file, "confusion", H5P_DEFAULT);
    H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, confusion);
    H5Dclose(d);
    assert_true(H5Aexists(file, "cleval_version") > 0);
    H5Fclose(file);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(y[i], i % 3);
        assert_int_equal(pred[i], (i * 2) % 3);
    }
    int64_t expected[9] = {4, 0, 0, 0, 0, 3, 0, 3, 0};
    assert_memory_equal(confusion, expected, sizeof expected);
    assert_false(folder_has_temp_files(CLEVAL_TEST_TMPDIR));
}

/* A failure mid-way (a bad label in the second batch) leaves neither the prediction file nor
 * its temporary. */
static void test_failed_run_leaves_no_file(void **state)
{
    (void)state;
    char bad[4096], saved[4096];
    snprintf(bad, sizeof bad, "%s", write_pairs("cli_bad_late.h5", 100, 100, 77));
    snprintf(saved, sizeof saved, "%s", temp_path("cli_never.h5"));
    remove(saved);
    expect_cleval_error(
        (const char *[]){"metrics", "--data", bad, "--batch", "10", "--save", saved, NULL}, 2,
        "sample 77");
    assert_int_equal(access(saved, F_OK), -1);
    assert_false(folder_has_temp_files(CLEVAL_TEST_TMPDIR));
}

/* Devices are written in place, never renamed over: --json /dev/null works and leaves the
 * device node alone; HDF5 needs a regular file, so --save /dev/null is refused. */
static void test_device_destinations(void **state)
{
    (void)state;
    char good[4096];
    snprintf(good, sizeof good, "%s", write_pairs("cli_devnull.h5", 10, 10, -1));
    char *out, *err;
    assert_int_equal(
        run_cleval((const char *[]){"metrics", "--data", good, "--json", "/dev/null", NULL}, &out,
                   &err),
        0);
    free(out), free(err);
    struct stat st;
    assert_int_equal(stat("/dev/null", &st), 0);
    assert_true(S_ISCHR(st.st_mode));
    expect_cleval_error((const char *[]){"metrics", "--data", good, "--save", "/dev/null", NULL}, 2,
                        "--save /dev/null: not a regular file");
    assert_int_equal(stat("/dev/null", &st), 0);
    assert_true(S_ISCHR(st.st_mode));
    expect_cleval_error(
        (const char *[]){"metrics", "--data", good, "--json", CLEVAL_TEST_TMPDIR, NULL}, 2,
        "is a directory");
}

static void test_help_version_devices(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(run_cleval((const char *[]){"--help", NULL}, &out, &err), 0);
    assert_non_null(strstr(out, "metrics"));
    assert_non_null(strstr(out, "4 out of host or device memory, 5 internal error"));
    free(out), free(err);
    assert_int_equal(run_cleval((const char *[]){"metrics", "--help", NULL}, &out, &err), 0);
    assert_non_null(strstr(out, "--pred-key"));
    free(out), free(err);
    assert_int_equal(run_cleval((const char *[]){"--version", NULL}, &out, &err), 0);
    assert_non_null(strstr(out, "cleval "));
    free(out), free(err);
    assert_int_equal(run_cleval((const char *[]){"devices", NULL}, &out, &err), 0);
    assert_non_null(strstr(out, "0: "));
    assert_non_null(strstr(out, "OpenCL C"));
    free(out), free(err);
    assert_int_equal(run_cleval((const char *[]){NULL}, &out, &err), 2);
    free(out), free(err);
}

/* y/pred of 4 samples: labels 0..2, with `label` at y sample 2. */
static const char *write_label(const char *name, int32_t label)
{
    const char *path = temp_path(name);
    hid_t file = h5_create(path);
    int32_t y[4] = {0, 1, label, 2}, pred[4] = {0, 1, 1, 2};
    hsize_t n = 4;
    h5_write(file, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    h5_write(file, "pred", H5T_NATIVE_INT32, 1, &n, pred, 0, NULL);
    H5Fclose(file);
    return path;
}

/* A stray large label, or a class_names longer than --max-classes, stops the run before
 * anything is sized by the class count (label 9,000 once cost 7.3 GB). */
static void test_max_classes(void **state)
{
    (void)state;
    char huge[4096], small[4096], named[4096];
    snprintf(huge, sizeof huge, "%s", write_label("mc_huge.h5", INT32_MAX));
    snprintf(small, sizeof small, "%s", write_label("mc_small.h5", 2));
    snprintf(named, sizeof named, "%s", write_label("mc_named.h5", 2));
    hid_t file = H5Fopen(named, H5F_ACC_RDWR, H5P_DEFAULT);
    h5_write_strings(file, "class_names", (const char *const[]){"a", "b", "c", "d"}, 4);
    H5Fclose(file);
    expect_cleval_error((const char *[]){"metrics", "--data", huge, NULL}, 2,
                        "mc_huge.h5: 'y' sample 2 has label 2147483647, above --max-classes 10000 "
                        "(raise it if the model really has that many classes)");
    expect_cleval_error((const char *[]){"metrics", "--data", small, "--max-classes", "2", NULL}, 2,
                        "mc_small.h5: 'y' sample 2 has label 2, above --max-classes 2");
    cJSON *json = run_cleval_json(
        (const char *[]){"metrics", "--data", small, "--max-classes", "3", "--json", "-", NULL}, 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(json, "per_class")), 3);
    cJSON_Delete(json);
    expect_cleval_error((const char *[]){"metrics", "--data", named, "--max-classes", "3", NULL}, 2,
                        "mc_named.h5: 'class_names' has 4 entries, more than --max-classes 3");
    expect_cleval_error((const char *[]){"metrics", "--data", small, "--max-classes", "x", NULL}, 2,
                        "--max-classes: 'x' is not an integer");
    expect_cleval_error(
        (const char *[]){"metrics", "--data", small, "--max-classes", "4294967296", NULL}, 2,
        "--max-classes: labels are 32-bit, so at most 2147483648 classes");
}

/* Under an address-space limit too small for the OpenCL runtime, commands that need a device
 * say memory is the cause and exit 4 (they once said no ICD was installed, exit 3). */
static void test_low_memory_limit(void **state)
{
    (void)state;
    if (!ADDRESS_LIMITS_WORK) skip();
    char good[4096];
    snprintf(good, sizeof good, "%s", write_pairs("cli_low_memory.h5", 10, 10, -1));
    set_cleval_address_limit(200ull << 20);
    const char *message = "cleval: out of memory loading the OpenCL runtime (address-space limit "
                          "200 MiB)";
    expect_cleval_error((const char *[]){"devices", NULL}, 4, message);
    expect_cleval_error((const char *[]){"metrics", "--data", good, NULL}, 4, message);
    set_cleval_address_limit(0);
}

/* Running out of memory is exit 4 with one line naming the file: a label of 20,000 allowed by
 * --max-classes, with every count matrix forced dense (CLEVAL_TEST_DENSE_CELLS; by default so
 * many classes are counted sparsely), needs a 20001 x 20001 device histogram (3.2 GB), beyond
 * a 1 GiB limit. */
static void test_out_of_memory_exits_4(void **state)
{
    (void)state;
    if (!ADDRESS_LIMITS_WORK) skip();
    char big[4096];
    snprintf(big, sizeof big, "%s", write_label("oom_label.h5", 20000));
    setenv("CLEVAL_TEST_DENSE_CELLS", "1000000000000", 1);
    set_cleval_address_limit(1ull << 30);
    expect_cleval_error((const char *[]){"metrics", "--data", big, "--max-classes", "30000", NULL},
                        4, "oom_label.h5: out of memory");
    set_cleval_address_limit(0);
    unsetenv("CLEVAL_TEST_DENSE_CELLS");
}

/* A --batch beyond the rows costs no memory beyond them: under a 1 GiB limit, a batch of a
 * billion rows (gigabytes of buffers if it were taken as given) runs a 10-row file. */
static void test_batch_clamped_to_rows(void **state)
{
    (void)state;
    if (!ADDRESS_LIMITS_WORK) skip();
    char good[4096];
    snprintf(good, sizeof good, "%s", write_pairs("cli_big_batch.h5", 10, 10, -1));
    set_cleval_address_limit(1ull << 30);
    cJSON *json = run_cleval_json(
        (const char *[]){"metrics", "--data", good, "--batch", "1000000000", "--json", "-", NULL},
        0);
    set_cleval_address_limit(0);
    assert_true(cJSON_GetObjectItem(json, "accuracy")->valuedouble == 0.4);
    cJSON_Delete(json);
}

/* A stand-in for the LZF compression filter (HDF5 filter 32000): stores bytes unchanged. */
static size_t identity_filter(unsigned flags, size_t n_values, const unsigned values[],
                              size_t bytes, size_t *buffer_size, void **buffer)
{
    (void)flags, (void)n_values, (void)values, (void)buffer_size, (void)buffer;
    return bytes;
}

/* A file compressed with a filter that the reading HDF5 lacks (registered only in this test
 * process; cleval runs with plugin loading off) is refused naming the filter, the file and
 * the dataset, not as a damaged file. */
static void test_missing_filter_is_named(void **state)
{
    (void)state;
    const H5Z_class2_t lzf = {H5Z_CLASS_T_VERS, (H5Z_filter_t)32000, 1, 1, "lzf", NULL, NULL,
                              identity_filter};
    assert_true(H5Zregister(&lzf) >= 0);
    char path[4096];
    snprintf(path, sizeof path, "%s", temp_path("lzf.h5"));
    hid_t file = h5_create(path);
    hsize_t n = 4, chunk = 4;
    int32_t labels[4] = {0, 1, 2, 1};
    hid_t space = H5Screate_simple(1, &n, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_chunk(dcpl, 1, &chunk) >= 0);
    assert_true(H5Pset_filter(dcpl, 32000, H5Z_FLAG_MANDATORY, 0, NULL) >= 0);
    for (int i = 0; i < 2; i++) {
        hid_t dset = H5Dcreate2(file, i ? "pred" : "y", H5T_NATIVE_INT32, space, H5P_DEFAULT,
                                dcpl, H5P_DEFAULT);
        assert_true(H5Dwrite(dset, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels) >= 0);
        H5Dclose(dset);
    }
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(file);
    H5Zunregister(32000);
    setenv("HDF5_PLUGIN_PRELOAD", "::", 1); /* no plugin may stand in for it */
    expect_cleval_error((const char *[]){"metrics", "--data", path, NULL}, 2,
                        "lzf.h5: 'y' is compressed with HDF5 filter 32000 (lzf), which is not "
                        "available here");
    unsetenv("HDF5_PLUGIN_PRELOAD");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_inputs_exit_2),
        cmocka_unit_test(test_json_report),
        cmocka_unit_test(test_json_numbers_are_exact),
        cmocka_unit_test(test_save_and_json_file),
        cmocka_unit_test(test_failed_run_leaves_no_file),
        cmocka_unit_test(test_device_destinations),
        cmocka_unit_test(test_help_version_devices),
        cmocka_unit_test(test_max_classes),
        cmocka_unit_test(test_low_memory_limit),
        cmocka_unit_test(test_batch_clamped_to_rows),
        cmocka_unit_test(test_out_of_memory_exits_4),
        cmocka_unit_test(test_missing_filter_is_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
