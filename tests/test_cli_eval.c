/* `cleval eval` as a user runs it: the shipped model reaches PyTorch's accuracy on the shipped
 * test set, its saved scores match PyTorch's, and every bad input exits 2 with one line naming
 * the file, node or dataset. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *shipped(const char *name)
{
    static char path[2][4096];
    static int next;
    next ^= 1;
    snprintf(path[next], sizeof path[next], "%s/../../datasets/%s", CLEVAL_FIXTURES_DIR, name);
    return path[next];
}

static void expect_failure(const char *const *args, const char *needle)
{
    char *out, *err;
    int code = run_cleval(args, &out, &err);
    if (code != 2) fail_msg("exit %d (wanted 2); stderr: %s", code, err);
    size_t lines = 0;
    for (const char *c = err; *c; c++)
        lines += *c == '\n';
    if (lines != 1 || !strstr(err, needle)) fail_msg("stderr '%s' lacks '%s' on one line", err, needle);
    assert_string_equal(out, "");
    free(out), free(err);
}

/* PyTorch measured 0.9088 on this test set (datasets/fmnist_cnn.json, tools/train_fmnist_cnn.py). */
static void test_shipped_model_accuracy(void **state)
{
    (void)state;
    cJSON *expected = load_json(shipped("fmnist_cnn.json"));
    double pytorch = cJSON_GetObjectItem(expected, "test_accuracy_pytorch")->valuedouble;
    cJSON_Delete(expected);
    char *out, *err;
    char model[4096], data[4096];
    snprintf(model, sizeof model, "%s", shipped("fmnist_cnn.onnx"));
    snprintf(data, sizeof data, "%s", shipped("fmnist_test.h5"));
    assert_int_equal(run_cleval((const char *[]){"eval", "--model", model, "--data", data,
                                                 "--json", "-", NULL},
                                &out, &err),
                     0);
    cJSON *report = cJSON_Parse(out);
    assert_non_null(report);
    assert_true(cJSON_GetObjectItem(report, "accuracy")->valuedouble == pytorch);
    assert_int_equal(cJSON_GetObjectItem(report, "n_classes")->valueint, 10);
    cJSON *names = cJSON_GetObjectItem(report, "per_class");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(names, 9), "name")->valuestring,
                        "Ankle boot");
    cJSON_Delete(report);
    free(out), free(err);
}

/* The saved raw outputs of the first 256 images agree with PyTorch's within 1e-4. */
static void test_saved_scores_match_pytorch(void **state)
{
    (void)state;
    const char *io = fixture_path("onnx/fmnist_cnn_io.h5");
    char io_path[4096], model[4096], saved[4096];
    snprintf(io_path, sizeof io_path, "%s", io);
    snprintf(model, sizeof model, "%s", shipped("fmnist_cnn.onnx"));
    snprintf(saved, sizeof saved, "%s", temp_path("eval_scores.h5"));
    assert_int_equal(run_cleval((const char *[]){"eval", "--model", model, "--data", io_path,
                                                 "--save", saved, "--batch", "97", "--quiet",
                                                 NULL},
                                NULL, NULL),
                     0);
    float got[256 * 10], torch[256 * 10];
    hid_t f = H5Fopen(saved, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, "scores", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, got) >= 0);
    H5Dclose(d), H5Fclose(f);
    f = H5Fopen(io_path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, "scores_torch", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, torch) >= 0);
    H5Dclose(d), H5Fclose(f);
    float worst = 0;
    for (int i = 0; i < 2560; i++)
        worst = fabsf(got[i] - torch[i]) > worst ? fabsf(got[i] - torch[i]) : worst;
    print_message("largest |cleval - PyTorch| over 256 x 10 scores: %g\n", worst);
    assert_true(worst <= 1e-4f);
}

static void test_bad_inputs_exit_2(void **state)
{
    (void)state;
    char model[4096], data[4096], wrong_shape[4096], big_label[4096], unlabelled[4096];
    snprintf(model, sizeof model, "%s", shipped("fmnist_cnn.onnx"));
    snprintf(data, sizeof data, "%s", shipped("iris_test.h5"));
    snprintf(wrong_shape, sizeof wrong_shape, "%s", temp_path("eval_wrong_shape.h5"));
    snprintf(big_label, sizeof big_label, "%s", temp_path("eval_big_label.h5"));
    snprintf(unlabelled, sizeof unlabelled, "%s", temp_path("eval_unlabelled.h5"));
    float pixels[3 * 784] = {0};
    int32_t labels[3] = {1, 12, 0};
    hsize_t dims[4] = {3, 1, 28, 28}, n[1] = {3};
    hid_t f = h5_create(big_label);
    h5_write(f, "X", H5T_NATIVE_FLOAT, 4, dims, pixels, 0, NULL);
    h5_write(f, "y", H5T_NATIVE_INT32, 1, n, labels, 0, NULL);
    H5Fclose(f);
    f = h5_create(unlabelled);
    h5_write(f, "X", H5T_NATIVE_FLOAT, 4, dims, pixels, 0, NULL);
    H5Fclose(f);

    expect_failure((const char *[]){"eval", "--model", model, "--data", data, NULL},
                   "input 'input' wants float [1, 28, 28]; --data ");
    expect_failure((const char *[]){"eval", "--model", model, "--data", data, NULL},
                   "iris_test.h5 dataset 'X' is float64 [4]");
    expect_failure((const char *[]){"eval", "--model", model, "--data", big_label, NULL},
                   "eval_big_label.h5: 'y' sample 1 has label 12, at or above the model's 10 "
                   "classes");
    /* The model's output width is a class count --max-classes holds too. */
    char limited[4200];
    snprintf(limited, sizeof limited, "the model %s has 10 classes, more than --max-classes 5",
             model);
    expect_failure((const char *[]){"eval", "--model", model, "--data", unlabelled, "--max-classes",
                                    "5", NULL},
                   limited);
    expect_failure((const char *[]){"eval", "--model", model, "--data", big_label, "--max-classes",
                                    "11", NULL},
                   "eval_big_label.h5: 'y' sample 1 has label 12, above --max-classes 11");
    /* class_names cannot name more classes than the model has. */
    char named[4096];
    snprintf(named, sizeof named, "%s", temp_path("eval_eleven_names.h5"));
    f = h5_create(named);
    h5_write(f, "X", H5T_NATIVE_FLOAT, 4, dims, pixels, 0, NULL);
    h5_write_strings(f, "class_names",
                     (const char *const[]){"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"},
                     11);
    H5Fclose(f);
    expect_failure((const char *[]){"eval", "--model", model, "--data", named, NULL},
                   "eval_eleven_names.h5: 'class_names' has 11 entries, more than the 10 classes "
                   "of the model");
    expect_failure((const char *[]){"eval", "--model", fixture_path("onnx/truncated.onnx"),
                                    "--data", unlabelled, NULL},
                   "truncated.onnx: not an ONNX model");
    expect_failure((const char *[]){"eval", "--model", fixture_path("onnx/not_onnx.onnx"),
                                    "--data", unlabelled, NULL},
                   "not_onnx.onnx: not an ONNX model");
    expect_failure((const char *[]){"eval", "--model", fixture_path("onnx/unsupported_op.onnx"),
                                    "--data", unlabelled, NULL},
                   "node 'hardmax_node' (Hardmax)");
    expect_failure((const char *[]){"eval", "--model", fixture_path("onnx/unsupported_attr.onnx"),
                                    "--data", unlabelled, NULL},
                   "node 'conv_autopad' (Conv)");
    expect_failure((const char *[]){"eval", "--model", "/nonexistent.onnx", "--data", unlabelled,
                                    NULL},
                   "/nonexistent.onnx");
    expect_failure((const char *[]){"eval", "--model", model, "--data", unlabelled, "--precision",
                                    "fp64", NULL},
                   "--precision: 'fp64' is not one of fp32, fp16, int8");
    expect_failure((const char *[]){"eval", "--data", unlabelled, NULL}, "--model MODEL.onnx is required");
}

/* Writes five unlabelled 1x28x28 images as 'X' of a new file `path`, pixel i being
 * (i * step) % 256. */
static void write_five_images(const char *path, int step)
{
    float pixels[5 * 784];
    for (int i = 0; i < 5 * 784; i++)
        pixels[i] = (float)((i * step) % 256);
    hsize_t dims[4] = {5, 1, 28, 28};
    hid_t f = h5_create(path);
    h5_write(f, "X", H5T_NATIVE_FLOAT, 4, dims, pixels, 0, NULL);
    H5Fclose(f);
}

/* Without labels: predictions only, and the JSON says how often each class was predicted. */
static void test_unlabelled_predictions_only(void **state)
{
    (void)state;
    char model[4096], unlabelled[4096];
    snprintf(model, sizeof model, "%s", shipped("fmnist_cnn.onnx"));
    snprintf(unlabelled, sizeof unlabelled, "%s", temp_path("eval_unlabelled2.h5"));
    write_five_images(unlabelled, 37);
    char *out, *err;
    assert_int_equal(run_cleval((const char *[]){"eval", "--model", model, "--data", unlabelled,
                                                 "--json", "-", NULL},
                                &out, &err),
                     0);
    cJSON *report = cJSON_Parse(out);
    assert_null(cJSON_GetObjectItem(report, "accuracy"));
    cJSON *counts = cJSON_GetObjectItem(report, "predicted_class_counts");
    int total = 0;
    for (int k = 0; k < cJSON_GetArraySize(counts); k++)
        total += cJSON_GetArrayItem(counts, k)->valueint;
    assert_int_equal(total, 5);
    cJSON_Delete(report);
    free(out), free(err);
}

/* The "model" object reports the device memory of the run: weights (at least the dense
 * parameters, as every one is uploaded), activations (at least the input batch), and a peak
 * that is their sum with the workspace; the human report's Model: line says the same. */
static void test_report_device_memory(void **state)
{
    (void)state;
    char model[4096], data[4096];
    snprintf(model, sizeof model, "%s", shipped("fmnist_cnn.onnx"));
    snprintf(data, sizeof data, "%s", temp_path("eval_memory.h5"));
    write_five_images(data, 13);
    char *out, *err;
    assert_int_equal(run_cleval((const char *[]){"eval", "--model", model, "--data", data,
                                                 "--batch", "5", "--json", "-", NULL},
                                &out, &err),
                     0);
    cJSON *report = cJSON_Parse(out);
    cJSON *block = cJSON_GetObjectItem(report, "model");
    double params = cJSON_GetObjectItem(block, "model_size_bytes")->valuedouble;
    cJSON *memory = cJSON_GetObjectItem(block, "device_memory");
    assert_non_null(memory);
    double weights = cJSON_GetObjectItem(memory, "weights_bytes")->valuedouble;
    double activations = cJSON_GetObjectItem(memory, "activations_bytes")->valuedouble;
    double workspace = cJSON_GetObjectItem(memory, "workspace_bytes")->valuedouble;
    double peak = cJSON_GetObjectItem(memory, "peak_bytes")->valuedouble;
    assert_true(params > 0 && weights >= params && weights < 4 * params);
    assert_true(activations >= 5 * 784 * 4 && workspace >= 0);
    assert_true(peak == weights + activations + workspace);
    cJSON_Delete(report);
    free(out), free(err);
    assert_int_equal(
        run_cleval((const char *[]){"eval", "--model", model, "--data", data, "--batch", "5", NULL},
                   &out, &err),
        0);
    char line[160];
    snprintf(line, sizeof line, "; device memory %.0f bytes (weights %.0f, activations %.0f", peak,
             weights, activations);
    if (!strstr(out, line)) fail_msg("the report lacks '%s':\n%s", line, out);
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_model_accuracy),
        cmocka_unit_test(test_saved_scores_match_pytorch),
        cmocka_unit_test(test_bad_inputs_exit_2),
        cmocka_unit_test(test_unlabelled_predictions_only),
        cmocka_unit_test(test_report_device_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
