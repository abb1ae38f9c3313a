/* cleval reads only the files it is given, and only regular ones: a FIFO given as any input is
 * refused at once instead of blocking; the files an input names in turn (ONNX external data,
 * HDF5 external storage, virtual dataset sources, external links) must exist, be regular and
 * lie inside that input's folder, so a hostile model or data set cannot make cleval read a host
 * file such as /etc/passwd. A file outside every folder, secret.bin, holds SECRET: it must never
 * show up in any message. */
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleval/dataset.h"
#include "cleval/onnx.h"
#include "cleval/predfile.h"

/* Seconds a single check may take before it counts as blocked. */
enum { TIME_LIMIT = 60, PATH_SIZE = 4096 };

static const char SECRET[] = "TOPSECRET-";
static const float RAW[8] = {0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f, 7.5f};

/* "<tmp>/<name>" into `out` (PATH_SIZE bytes). */
static void tmp_at(char *out, const char *name)
{
    snprintf(out, PATH_SIZE, "%s", temp_path(name));
}

static void write_bytes(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n) fail_msg("cannot write %s", path);
    fclose(f);
}

static void *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot read %s", path);
    char *bytes = malloc(1 << 20);
    *n = fread(bytes, 1, 1 << 20, f);
    fclose(f);
    return bytes;
}

static void make_folder(const char *name)
{
    char path[PATH_SIZE];
    tmp_at(path, name);
    if (mkdir(path, 0700) != 0 && errno != EEXIST) fail_msg("mkdir %s: %s", path, strerror(errno));
}

/* A fresh symbolic link `name` (under tmp) to `target`. */
static void make_link(const char *target, const char *name)
{
    char path[PATH_SIZE];
    tmp_at(path, name);
    unlink(path);
    if (symlink(target, path) != 0) fail_msg("symlink %s: %s", path, strerror(errno));
}

static void make_fifo(const char *path)
{
    unlink(path);
    if (mkfifo(path, 0600) != 0) fail_msg("mkfifo %s: %s", path, strerror(errno));
}

static void assert_message_has(const char *needle)
{
    if (!strstr(cleval_last_error(), needle))
        fail_msg("the message lacks '%s': %s", needle, cleval_last_error());
}

/* secret.bin (outside the test folders): SECRET repeated over 2 KiB. */
static int setup(void **state)
{
    (void)state;
    char secret[2048], path[PATH_SIZE];
    for (size_t i = 0; i < sizeof secret; i++)
        secret[i] = SECRET[i % (sizeof SECRET - 1)];
    tmp_at(path, "secret.bin");
    write_bytes(path, secret, sizeof secret);
    make_folder("onnx");
    make_folder("h5");
    make_folder("outside");
    return 0;
}

static const char *shipped(const char *name)
{
    static char path[PATH_SIZE];
    snprintf(path, sizeof path, "%s/../../datasets/%s", CLEVAL_FIXTURES_DIR, name);
    return path;
}

/* ------------------------------------------------------------------------------------------ */
/* FIFOs */

/* Every kind of input given as a FIFO exits 2 at once, naming the FIFO. Were one to block, the
 * time limit kills cleval and the check fails. */
static void test_fifo_as_every_input(void **state)
{
    (void)state;
    char fifo[PATH_SIZE], needle[PATH_SIZE + 64], model[PATH_SIZE], test[PATH_SIZE],
        train[PATH_SIZE], pred[PATH_SIZE];
    tmp_at(fifo, "input.fifo");
    make_fifo(fifo);
    snprintf(needle, sizeof needle, "%s: not a regular file (a FIFO)", fifo);
    snprintf(model, sizeof model, "%s", fixture_path("onnx/mlp_softmax.onnx"));
    snprintf(test, sizeof test, "%s", shipped("iris_test.h5"));
    snprintf(train, sizeof train, "%s", shipped("iris_train.h5"));
    snprintf(pred, sizeof pred, "%s", shipped("iris_knn3_pred.h5"));
    const char *const *commands[] = {
        (const char *[]){"eval", "--model", fifo, "--data", test, NULL},
        (const char *[]){"eval", "--model", model, "--data", fifo, NULL},
        (const char *[]){"knn", "--train", fifo, "--data", test, "-k", "3", NULL},
        (const char *[]){"knn", "--train", train, "--data", fifo, "-k", "3", NULL},
        (const char *[]){"metrics", "--data", fifo, NULL},
        (const char *[]){"metrics", "--data", pred, "--checkpoint", fifo, "--resume", NULL},
        (const char *[]){"compare", fifo, pred, NULL},
        (const char *[]){"compare", pred, fifo, NULL},
        (const char *[]){"drift", pred, fifo, NULL},
        (const char *[]){"merge", fifo, NULL},
    };
    run_cleval_time_limit(TIME_LIMIT);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        expect_cleval_error(commands[i], 2, needle);
    run_cleval_time_limit(0);
    unlink(fifo);
}

/* The partial prediction file a resumed run reopens (HDF5 opens it by name). */
static void test_fifo_as_partial_prediction_file(void **state)
{
    (void)state;
    char fifo[PATH_SIZE], save[PATH_SIZE];
    tmp_at(save, "resumed.h5");
    tmp_at(fifo, "resumed.h5.partial");
    make_fifo(fifo);
    cleval_predfile_spec spec = {.n_samples = 4, .with_pred = true, .temp_path = fifo};
    cleval_predfile *pf = NULL;
    alarm(TIME_LIMIT);
    assert_int_equal(cleval_predfile_resume(save, &spec, &pf), CLEVAL_ERR_INPUT);
    alarm(0);
    assert_null(pf);
    assert_message_has("not a regular file (a FIFO)");
    unlink(fifo);
}

/* A directory still gets its own words. */
static void test_directory_input(void **state)
{
    (void)state;
    char folder[PATH_SIZE];
    tmp_at(folder, "h5");
    expect_cleval_error((const char *[]){"metrics", "--data", folder, NULL}, 2,
                        "is a directory, not an HDF5 file");
    cleval_onnx_model *m;
    assert_int_equal(cleval_onnx_load(folder, &m), CLEVAL_ERR_INPUT);
    assert_message_has("is a directory, not an ONNX file");
}

/* ------------------------------------------------------------------------------------------ */
/* ONNX external data */

/* onnx/<name>.onnx: the reader fixture mlp.onnx, whose fc.weight lives in external file
 * "mlp_weights.bin", with that location replaced by `location` (the same length, 15
 * characters, so that no length in the protobuf changes). */
static void write_model(const char *name, const char *location, char *model)
{
    static const char original[] = "mlp_weights.bin";
    assert_int_equal(strlen(location), strlen(original));
    size_t n;
    char *bytes = read_bytes(fixture_path("onnx_reader/mlp.onnx"), &n);
    size_t at = 0;
    while (at + strlen(original) <= n && memcmp(bytes + at, original, strlen(original)) != 0)
        at++;
    assert_true(at + strlen(original) <= n);
    memcpy(bytes + at, location, strlen(location));
    char relative[256];
    snprintf(relative, sizeof relative, "onnx/%s.onnx", name);
    tmp_at(model, relative);
    write_bytes(model, bytes, n);
    free(bytes);
}

/* Loading `model` is refused, naming the model, the tensor and `location`, without a byte of
 * the secret in the message. */
static void expect_model_refused(const char *model, const char *location, const char *why)
{
    cleval_onnx_model *m = NULL;
    assert_int_equal(cleval_onnx_load(model, &m), CLEVAL_ERR_INPUT);
    assert_null(m);
    assert_message_has(model);
    assert_message_has("initializer 'fc.weight'");
    assert_message_has(location);
    assert_message_has(why);
    assert_null(strstr(cleval_last_error(), "TOPSECRET"));
}

/* mlp_weights.bin beside the model is a link to a file outside the model's folder. */
static void test_onnx_link_out_of_folder(void **state)
{
    (void)state;
    char model[PATH_SIZE], secret[PATH_SIZE];
    write_model("link_out", "mlp_weights.bin", model);
    tmp_at(secret, "secret.bin");
    make_link(secret, "onnx/mlp_weights.bin");
    expect_model_refused(model, "mlp_weights.bin", "leads outside the model's folder");
    /* cleval eval: one line on stderr (no secret in it), nothing on stdout, nothing saved */
    char saved[PATH_SIZE];
    tmp_at(saved, "link_out_scores.h5");
    unlink(saved);
    expect_cleval_error((const char *[]){"eval", "--model", model, "--data",
                                         shipped("iris_test.h5"), "--save", saved, "--json", "-",
                                         NULL},
                        2, "leads outside the model's folder");
    assert_int_equal(access(saved, F_OK), -1);
}

/* The location goes through a folder that is a link out of the model's folder. */
static void test_onnx_folder_link_out_of_folder(void **state)
{
    (void)state;
    char model[PATH_SIZE], outside[PATH_SIZE], secret[PATH_SIZE];
    write_model("folder_link_out", "d/weights_x.bin", model);
    tmp_at(secret, "secret.bin");
    make_link(secret, "outside/weights_x.bin");
    tmp_at(outside, "outside");
    make_link(outside, "onnx/d");
    expect_model_refused(model, "d/weights_x.bin", "leads outside the model's folder");
}

/* "../" and absolute locations are refused by name, before any file is looked at. */
static void test_onnx_parent_and_absolute_locations(void **state)
{
    (void)state;
    char model[PATH_SIZE];
    write_model("parent", "../outside_.bin", model);
    expect_model_refused(model, "../outside_.bin", "not a relative path inside the model's folder");
    write_model("absolute", "/etc/.///passwd", model);
    expect_model_refused(model, "/etc/.///passwd", "not a relative path inside the model's folder");
}

/* A FIFO as external data is refused at once (the time limit catches a regression). */
static void test_onnx_fifo_external_data(void **state)
{
    (void)state;
    char model[PATH_SIZE], fifo[PATH_SIZE];
    write_model("fifo", "fifo_weights.bn", model);
    tmp_at(fifo, "onnx/fifo_weights.bn");
    make_fifo(fifo);
    alarm(TIME_LIMIT);
    expect_model_refused(model, "fifo_weights.bn", "not a regular file (a FIFO)");
    alarm(0);
    unlink(fifo);
}

/* A link that stays inside the folder is fine: the weights are the fixture's. */
static void test_onnx_link_inside_folder(void **state)
{
    (void)state;
    char model[PATH_SIZE], copy[PATH_SIZE];
    write_model("link_inside", "inside_link.bin", model);
    size_t n;
    char *weights = read_bytes(fixture_path("onnx_reader/mlp_weights.bin"), &n);
    tmp_at(copy, "onnx/real_weights.bin");
    write_bytes(copy, weights, n);
    free(weights);
    make_link("real_weights.bin", "onnx/inside_link.bin");
    cleval_onnx_model *linked, *reference;
    assert_ok(cleval_onnx_load(model, &linked));
    assert_ok(cleval_onnx_load(fixture_path("onnx_reader/mlp.onnx"), &reference));
    const cleval_onnx_tensor *a = cleval_onnx_find_initializer(linked, "fc.weight");
    const cleval_onnx_tensor *b = cleval_onnx_find_initializer(reference, "fc.weight");
    assert_int_equal(a->count, 320);
    assert_int_equal(b->count, 320);
    assert_memory_equal(a->f32, b->f32, 320 * sizeof(float));
    cleval_onnx_free(linked);
    cleval_onnx_free(reference);
}

/* ------------------------------------------------------------------------------------------ */
/* HDF5 external storage, virtual datasets, external links */

static const hsize_t DIMS[2] = {4, 2};

/* Dataset `name`, float32 [4, 2], stored in external file `external`. Nothing is written: the
 * external file is never created nor touched here. */
static void add_external(hid_t file, const char *name, const char *external)
{
    hid_t space = H5Screate_simple(2, DIMS, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    if (H5Pset_external(dcpl, external, 0, sizeof RAW) < 0) fail_msg("H5Pset_external");
    hid_t dset = H5Dcreate2(file, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dset < 0) fail_msg("cannot create external dataset %s", name);
    H5Dclose(dset);
    H5Pclose(dcpl);
    H5Sclose(space);
}

/* Dataset `name`, float32 [4, 2], virtual: all of it from `source_dset` in `source_file`. */
static void add_virtual(hid_t file, const char *name, const char *source_file,
                        const char *source_dset)
{
    hid_t space = H5Screate_simple(2, DIMS, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (H5Pset_virtual(dcpl, space, source_file, source_dset, space) < 0)
        fail_msg("H5Pset_virtual");
    hid_t dset = H5Dcreate2(file, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dset < 0) fail_msg("cannot create virtual dataset %s", name);
    H5Dclose(dset);
    H5Pclose(dcpl);
    H5Sclose(space);
}

/* h5/<name>.h5 holding X made by `add` (with `target`) and y; its path into `path`. */
static void write_data_file(const char *name, char *path,
                            void (*add)(hid_t, const char *, const char *), const char *target)
{
    char relative[256];
    snprintf(relative, sizeof relative, "h5/%s.h5", name);
    tmp_at(path, relative);
    hid_t file = h5_create(path);
    add(file, "X", target);
    const int32_t y[4] = {0, 1, 2, 1};
    h5_write(file, "y", H5T_NATIVE_INT32, 1, DIMS, y, 0, NULL);
    H5Fclose(file);
}

static void add_external_x(hid_t file, const char *name, const char *external)
{
    add_external(file, name, external);
}

static void add_virtual_x(hid_t file, const char *name, const char *source_file)
{
    add_virtual(file, name, source_file, "data");
}

static void add_external_link_x(hid_t file, const char *name, const char *target_file)
{
    if (H5Lcreate_external(target_file, "data", file, name, H5P_DEFAULT, H5P_DEFAULT) < 0)
        fail_msg("H5Lcreate_external");
}

/* An HDF5 file `relative` (under tmp) holding RAW as dataset "data". */
static void write_source(const char *relative)
{
    char path[PATH_SIZE];
    tmp_at(path, relative);
    hid_t file = h5_create(path);
    h5_write(file, "data", H5T_NATIVE_FLOAT, 2, DIMS, RAW, 0, NULL);
    H5Fclose(file);
}

/* Opens `path` and reads its 4 x 2 X into `x`. */
static cleval_status read_x(const char *path, float *x)
{
    cleval_dataset *ds;
    cleval_column *col = NULL;
    cleval_status status = cleval_dataset_open(path, &ds);
    if (status != CLEVAL_OK) return status;
    if ((status = cleval_column_open(ds, "X", CLEVAL_COLUMN_VALUES, &col)) == CLEVAL_OK)
        status = cleval_column_read_f32(col, 0, 4, x);
    cleval_column_close(col);
    cleval_dataset_close(ds);
    return status;
}

static void expect_x(const char *path, const float *expected)
{
    float x[8] = {0};
    assert_ok(read_x(path, x));
    assert_memory_equal(x, expected, sizeof x);
}

/* Opening `path` is refused naming the file, the dataset and `offending`, and why. */
static void expect_data_refused(const char *path, const char *dataset, const char *offending,
                                const char *why)
{
    float x[8];
    char named[128];
    assert_int_equal(read_x(path, x), CLEVAL_ERR_INPUT);
    snprintf(named, sizeof named, "dataset '%s'", dataset);
    assert_message_has(path);
    assert_message_has(named);
    assert_message_has(offending);
    assert_message_has(why);
    assert_null(strstr(cleval_last_error(), "TOPSECRET"));
}

static void test_external_storage_outside_refused(void **state)
{
    (void)state;
    static const char *const outside[] = {"/etc/passwd", "../secret.bin", "/dev/zero"};
    char path[PATH_SIZE], secret[PATH_SIZE];
    for (size_t i = 0; i < sizeof outside / sizeof *outside; i++) {
        write_data_file("external_outside", path, add_external_x, outside[i]);
        expect_data_refused(path, "X", outside[i], "lies outside the data file's folder");
    }
    tmp_at(secret, "secret.bin");
    make_link(secret, "h5/secret_link.bin");
    write_data_file("external_link", path, add_external_x, "secret_link.bin");
    expect_data_refused(path, "X", "secret_link.bin", "lies outside the data file's folder");
    write_data_file("external_missing", path, add_external_x, "missing.bin");
    expect_data_refused(path, "X", "missing.bin", "does not exist");
}

/* Every dataset of the file is checked at open, not only those read. */
static void test_external_storage_in_any_dataset(void **state)
{
    (void)state;
    char path[PATH_SIZE];
    tmp_at(path, "h5/external_scores.h5");
    hid_t file = h5_create(path);
    h5_write(file, "X", H5T_NATIVE_FLOAT, 2, DIMS, RAW, 0, NULL);
    H5Gclose(H5Gcreate2(file, "extra", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    add_external(file, "extra/scores", "/etc/passwd");
    H5Fclose(file);
    expect_data_refused(path, "extra/scores", "/etc/passwd", "lies outside");
}

static void test_external_storage_inside_works(void **state)
{
    (void)state;
    char path[PATH_SIZE], raw[PATH_SIZE];
    tmp_at(raw, "h5/raw.bin");
    write_bytes(raw, RAW, sizeof RAW);
    write_data_file("external_inside", path, add_external_x, "raw.bin");
    expect_x(path, RAW);
    /* The same file opened from another working folder still finds raw.bin beside it. */
    char cwd[PATH_SIZE];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir("/"), 0);
    expect_x(path, RAW);
    assert_int_equal(chdir(cwd), 0);
}

/* Allowed outside the folder, files must still exist and be regular. */
static void test_allow_outside_files(void **state)
{
    (void)state;
    char path[PATH_SIZE];
    float secret[8];
    memcpy(secret, "TOPSECRET-TOPSECRET-TOPSECRET-TO", sizeof secret);
    cleval_dataset_allow_outside_files(true);
    write_data_file("external_allowed", path, add_external_x, "../secret.bin");
    expect_x(path, secret);
    write_data_file("external_device", path, add_external_x, "/dev/zero");
    expect_data_refused(path, "X", "/dev/zero", "not a regular file (a character device)");
    write_data_file("external_missing", path, add_external_x, "../missing.bin");
    expect_data_refused(path, "X", "../missing.bin", "does not exist");
    cleval_dataset_allow_outside_files(false);
}

static void test_virtual_sources(void **state)
{
    (void)state;
    char path[PATH_SIZE];
    write_source("h5/source.h5");
    write_data_file("virtual_inside", path, add_virtual_x, "source.h5");
    expect_x(path, RAW);

    /* "." is the file itself */
    tmp_at(path, "h5/virtual_self.h5");
    hid_t file = h5_create(path);
    h5_write(file, "data", H5T_NATIVE_FLOAT, 2, DIMS, RAW, 0, NULL);
    add_virtual(file, "X", ".", "data");
    H5Fclose(file);
    expect_x(path, RAW);

    write_data_file("virtual_missing", path, add_virtual_x, "no_such_source.h5");
    expect_data_refused(path, "X", "no_such_source.h5", "does not exist");

    write_source("outside_source.h5");
    write_data_file("virtual_outside", path, add_virtual_x, "../outside_source.h5");
    expect_data_refused(path, "X", "../outside_source.h5", "lies outside");
}

/* A source inside the folder whose own dataset reads /etc/passwd. */
static void test_virtual_source_with_external_storage(void **state)
{
    (void)state;
    char path[PATH_SIZE], source[PATH_SIZE];
    tmp_at(source, "h5/nested_source.h5");
    hid_t file = h5_create(source);
    add_external(file, "data", "/etc/passwd");
    H5Fclose(file);
    write_data_file("virtual_nested", path, add_virtual_x, "nested_source.h5");
    float x[8];
    assert_int_equal(read_x(path, x), CLEVAL_ERR_INPUT);
    assert_message_has("/etc/passwd");
}

static void test_external_links(void **state)
{
    (void)state;
    char path[PATH_SIZE];
    write_source("outside_source.h5");
    write_data_file("elink_outside", path, add_external_link_x, "../outside_source.h5");
    expect_data_refused(path, "X", "../outside_source.h5", "lies outside");
    write_source("h5/source.h5");
    write_data_file("elink_inside", path, add_external_link_x, "source.h5");
    expect_x(path, RAW);
}

/* The command line: refused with exit 2 and one line; --allow-external-storage lets it read. */
static void test_cli_allow_external_storage(void **state)
{
    (void)state;
    char path[PATH_SIZE], preds[PATH_SIZE];
    const int32_t pred[4] = {0, 1, 2, 0}, y[4] = {0, 1, 2, 1};
    tmp_at(preds, "preds.bin");
    write_bytes(preds, pred, sizeof pred);
    tmp_at(path, "h5/cli_external.h5");
    hid_t file = h5_create(path);
    h5_write(file, "y", H5T_NATIVE_INT32, 1, DIMS, y, 0, NULL);
    hid_t space = H5Screate_simple(1, DIMS, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    H5Pset_external(dcpl, "../preds.bin", 0, sizeof pred);
    H5Dclose(H5Dcreate2(file, "pred", H5T_STD_I32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(file);
    expect_cleval_error((const char *[]){"metrics", "--data", path, NULL}, 2,
                        "dataset 'pred': external storage file '../preds.bin' lies outside");
    cJSON *report = run_cleval_json((const char *[]){"metrics", "--data", path, "--json", "-",
                                                     "--allow-external-storage", NULL},
                                    0);
    assert_true(cJSON_GetObjectItem(report, "accuracy")->valuedouble == 0.75);
    cJSON_Delete(report);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_as_every_input),
        cmocka_unit_test(test_fifo_as_partial_prediction_file),
        cmocka_unit_test(test_directory_input),
        cmocka_unit_test(test_onnx_link_out_of_folder),
        cmocka_unit_test(test_onnx_folder_link_out_of_folder),
        cmocka_unit_test(test_onnx_parent_and_absolute_locations),
        cmocka_unit_test(test_onnx_fifo_external_data),
        cmocka_unit_test(test_onnx_link_inside_folder),
        cmocka_unit_test(test_external_storage_outside_refused),
        cmocka_unit_test(test_external_storage_in_any_dataset),
        cmocka_unit_test(test_external_storage_inside_works),
        cmocka_unit_test(test_allow_outside_files),
        cmocka_unit_test(test_virtual_sources),
        cmocka_unit_test(test_virtual_source_with_external_storage),
        cmocka_unit_test(test_external_links),
        cmocka_unit_test(test_cli_allow_external_storage),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
