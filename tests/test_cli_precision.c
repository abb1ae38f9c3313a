/* `cleval eval --precision fp16|int8`, `--calibration N` and `--prune S` as a user runs them on
 * the shipped model (datasets/fmnist_cnn.onnx on datasets/fmnist_test.h5): fp16 within 0.5
 * and int8 within 1.5 accuracy points of fp32, as `cleval compare` reports it through
 * --against (gates pass: exit 0; a too-tight gate: exit 1); the report's model block (mode,
 * arithmetic, prune, calibration samples, size in bytes) and the human "Model:" line; a
 * sharded int8 run merged equals the whole run; bad values exit 2 with one line. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char model[4096], data[4096];

static int setup(void **state)
{
    (void)state;
    snprintf(model, sizeof model, "%s/../../datasets/fmnist_cnn.onnx", CLEVAL_FIXTURES_DIR);
    snprintf(data, sizeof data, "%s/../../datasets/fmnist_test.h5", CLEVAL_FIXTURES_DIR);
    return 0;
}

static double number(const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItem(object, name);
    if (!cJSON_IsNumber(item)) fail_msg("no number '%s' in the JSON", name);
    return item->valuedouble;
}

static const char *string(const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItem(object, name);
    if (!cJSON_IsString(item)) fail_msg("no string '%s' in the JSON", name);
    return item->valuestring;
}

/* The gate `name` of a compare block: its value, and that it passed or not. */
static double gate(const cJSON *compare, const char *name, bool passed)
{
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItem(compare, "gates"))
    {
        if (strcmp(string(g, "name"), name) != 0) continue;
        assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(g, "passed")), passed);
        return number(g, "value");
    }
    fail_msg("no gate '%s'", name);
    return 0;
}

/* fp16's default arithmetic on the device the CLI picks: "half" with cl_khr_fp16. */
static const char *default_arithmetic(void)
{
    return cleval_device_get_info(test_device())->has_fp16 ? "half" : "float";
}

/* Sizes learnt from the fp32 and fp16 runs, checked against the int8 one. */
static double fp32_size, fp16_size, int8_accuracy;

/* fp16 against fp32: within 0.5 points, gated by --max-accuracy-drop 0.005. */
static void test_against_fp16(void **state)
{
    (void)state;
    cJSON *report = run_cleval_json((const char *[]){"eval", "--model", model, "--data", data,
                                                     "--against", "fp16", "--max-accuracy-drop",
                                                     "0.005", "--json", "-", "--quiet", NULL},
                                    0);
    cJSON *a_model = cJSON_GetObjectItem(report, "model");
    cJSON *against = cJSON_GetObjectItem(report, "against");
    cJSON *b_model = cJSON_GetObjectItem(cJSON_GetObjectItem(against, "report"), "model");
    cJSON *compare = cJSON_GetObjectItem(against, "compare");
    assert_string_equal(string(a_model, "precision"), "fp32");
    assert_string_equal(string(b_model, "precision"), "fp16");
    assert_string_equal(string(b_model, "arithmetic"), default_arithmetic());
    assert_true(number(b_model, "prune") == 0);
    assert_true(number(b_model, "calibration_samples") == 0);
    fp32_size = number(a_model, "model_size_bytes");
    fp16_size = number(b_model, "model_size_bytes");
    /* 4 and 2 bytes per weight, 4 per bias: the weights are half the difference. */
    assert_true(fp16_size < fp32_size);
    assert_true(fmod(fp32_size - fp16_size, 2) == 0);
    double a = number(compare, "accuracy_a"), b = number(compare, "accuracy_b");
    print_message("fp32 accuracy %.4f, fp16 %.4f, flips %.0f, size %.0f -> %.0f bytes\n", a, b,
                  number(compare, "flips"), fp32_size, fp16_size);
    assert_true(a == number(report, "accuracy"));
    assert_true(fabs(b - a) <= 0.005);
    assert_true(gate(compare, "accuracy_drop", true) <= 0.005);
    cJSON_Delete(report);
}

/* int8 against fp32: within 1.5 points (exit 0); the saved runs compared with a gate that
 * cannot hold (no flips allowed) exit 1, the JSON still written. */
static void test_against_int8(void **state)
{
    (void)state;
    char saved[4096], other[4200];
    snprintf(saved, sizeof saved, "%s", temp_path("precision_fp32.h5"));
    snprintf(other, sizeof other, "%s.against.h5", saved);
    cJSON *report =
        run_cleval_json((const char *[]){"eval", "--model", model, "--data", data, "--against",
                                         "int8", "--max-accuracy-drop", "0.015", "--save", saved,
                                         "--json", "-", "--quiet", NULL},
                        0);
    cJSON *against = cJSON_GetObjectItem(report, "against");
    cJSON *b_report = cJSON_GetObjectItem(against, "report");
    cJSON *b_model = cJSON_GetObjectItem(b_report, "model");
    cJSON *compare = cJSON_GetObjectItem(against, "compare");
    assert_string_equal(string(against, "precision"), "int8");
    assert_string_equal(string(b_model, "precision"), "int8");
    assert_true(number(b_model, "calibration_samples") == 512);
    double a = number(compare, "accuracy_a"), b = number(compare, "accuracy_b");
    int8_accuracy = number(b_report, "accuracy");
    assert_true(b == int8_accuracy);
    print_message("fp32 accuracy %.4f, int8 %.4f, flips %.0f, McNemar p %.4g\n", a, b,
                  number(compare, "flips"),
                  number(cJSON_GetObjectItem(compare, "mcnemar"), "p_value"));
    assert_true(fabs(b - a) <= 0.015);
    gate(compare, "accuracy_drop", true);
    /* 1 byte per weight, a 4-byte scale per output channel (one per bias entry in this
     * model) and per quantised layer input (4 layers), biases 4 bytes. */
    double weights = (fp32_size - fp16_size) / 2, biases = (fp32_size - 4 * weights) / 4;
    assert_true(number(b_model, "model_size_bytes") == weights + 4 * biases + 4 * 4 + 4 * biases);
    cJSON_Delete(report);

    cJSON *tight = run_cleval_json(
        (const char *[]){"compare", saved, other, "--max-flip-rate", "0.0001", "--json", "-", NULL},
        1);
    assert_true(gate(tight, "flip_rate", false) > 0.0001);
    cJSON_Delete(tight);
    tight = run_cleval_json((const char *[]){"eval", "--model", model, "--data", data, "--against",
                                             "int8", "--max-score-diff", "1e-6", "--json", "-",
                                             "--quiet", NULL},
                            1);
    gate(cJSON_GetObjectItem(cJSON_GetObjectItem(tight, "against"), "compare"),
         "max_abs_score_diff", false);
    cJSON_Delete(tight);
}

/* --calibration and --prune land in the report; pruning half the weights still classifies. */
static void test_calibration_and_prune(void **state)
{
    (void)state;
    cJSON *report = run_cleval_json(
        (const char *[]){"eval", "--model", model, "--data", data, "--precision", "int8",
                         "--calibration", "100", "--prune", "0.5", "--json", "-", "--quiet", NULL},
        0);
    cJSON *block = cJSON_GetObjectItem(report, "model");
    assert_string_equal(string(block, "precision"), "int8");
    assert_true(number(block, "calibration_samples") == 100);
    assert_true(number(block, "prune") == 0.5);
    print_message("int8, 100 calibration samples, pruned 0.5: accuracy %.4f\n",
                  number(report, "accuracy"));
    assert_true(number(report, "accuracy") > 0.8);
    cJSON_Delete(report);
}

/* A sharded int8 run calibrates on the file's first samples whatever the slice, so the
 * merged parts give exactly the whole run's report. */
static void test_sharded_int8(void **state)
{
    (void)state;
    char part0[4096], part1[4096];
    snprintf(part0, sizeof part0, "%s", temp_path("precision_part0.h5"));
    snprintf(part1, sizeof part1, "%s", temp_path("precision_part1.h5"));
    const char *parts[2] = {part0, part1}, *shards[2] = {"0/2", "1/2"};
    for (int i = 0; i < 2; i++)
        assert_int_equal(run_cleval((const char *[]){"eval", "--model", model, "--data", data,
                                                     "--precision", "int8", "--shard", shards[i],
                                                     "--save", parts[i], "--quiet", NULL},
                                    NULL, NULL),
                         0);
    cJSON *merged =
        run_cleval_json((const char *[]){"merge", part0, part1, "--json", "-", NULL}, 0);
    cJSON *block = cJSON_GetObjectItem(merged, "model");
    assert_string_equal(string(block, "precision"), "int8");
    assert_string_equal(string(block, "arithmetic"), "float");
    assert_true(number(block, "calibration_samples") == 512);
    assert_true(number(block, "prune") == 0);
    assert_true(number(block, "model_size_bytes") < fp16_size);
    assert_true(number(merged, "accuracy") == int8_accuracy);
    cJSON_Delete(merged);
}

/* fp16 shards merge only when they computed alike: "float" typed and "auto" resolved to float
 * are one job; on a device with cl_khr_fp16, auto means half and the merge is refused. */
static void test_fp16_shards_agree_on_arithmetic(void **state)
{
    (void)state;
    char part0[4096], part1[4096];
    snprintf(part0, sizeof part0, "%s", temp_path("fp16_part0.h5"));
    snprintf(part1, sizeof part1, "%s", temp_path("fp16_part1.h5"));
    assert_int_equal(
        run_cleval((const char *[]){"eval", "--model", model, "--data", data, "--precision", "fp16",
                                    "--fp16-arithmetic", "float", "--shard", "0/2", "--save", part0,
                                    "--quiet", NULL},
                   NULL, NULL),
        0);
    assert_int_equal(
        run_cleval((const char *[]){"eval", "--model", model, "--data", data, "--precision", "fp16",
                                    "--shard", "1/2", "--save", part1, "--quiet", NULL},
                   NULL, NULL),
        0);
    char *out, *err;
    int code = run_cleval((const char *[]){"merge", part0, part1, "--quiet", NULL}, &out, &err);
    if (cleval_device_get_info(test_device())->has_fp16) {
        assert_int_equal(code, 2);
        assert_non_null(strstr(err, "are parts of different jobs"));
    } else {
        assert_int_equal(code, 0);
        assert_non_null(strstr(out, "Model: fp16 (half storage, float arithmetic)"));
    }
    free(out);
    free(err);
}

/* The human report names the mode, the size and then the device memory. */
static void test_human_line(void **state)
{
    (void)state;
    char io[4096];
    snprintf(io, sizeof io, "%s", fixture_path("onnx/fmnist_cnn_io.h5"));
    char *out, *err;
    assert_int_equal(
        run_cleval((const char *[]){"eval", "--model", model, "--data", io, "--precision", "fp16",
                                    "--batch", "97", "--quiet", NULL},
                   &out, &err),
        0);
    char expected[128];
    snprintf(expected, sizeof expected,
             "Model: fp16 (half storage, %s arithmetic), %.0f bytes of parameters; device memory ",
             default_arithmetic(), fp16_size);
    if (!strstr(out, expected)) fail_msg("stdout lacks '%s':\n%s", expected, out);
    free(out);
    free(err);
    assert_int_equal(run_cleval((const char *[]){"eval", "--model", model, "--data", io, "--prune",
                                                 "0.25", "--quiet", NULL},
                                &out, &err),
                     0);
    snprintf(
        expected, sizeof expected,
        "Model: fp32, weights pruned at sparsity 0.25, %.0f bytes of parameters; device memory ",
        fp32_size);
    if (!strstr(out, expected)) fail_msg("stdout lacks '%s':\n%s", expected, out);
    free(out);
    free(err);
}

static void expect_usage(const char *flag, const char *value, const char *needle)
{
    char *out, *err;
    int code = run_cleval(
        (const char *[]){"eval", "--model", model, "--data", data, flag, value, NULL}, &out, &err);
    if (code != 2) fail_msg("%s %s: exit %d (wanted 2); stderr: %s", flag, value, code, err);
    size_t lines = 0;
    for (const char *c = err; *c; c++)
        lines += *c == '\n';
    if (lines != 1 || !strstr(err, needle))
        fail_msg("%s %s: stderr '%s' lacks '%s' on one line", flag, value, err, needle);
    assert_string_equal(out, "");
    free(out);
    free(err);
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_usage("--precision", "fp64", "--precision: 'fp64' is not one of fp32, fp16, int8");
    expect_usage("--prune", "1.5", "--prune: must be at least 0 and below 1 (got 1.5)");
    expect_usage("--prune", "1", "--prune: must be at least 0 and below 1 (got 1)");
    expect_usage("--prune", "-0.1", "--prune: must be at least 0 and below 1 (got -0.1)");
    expect_usage("--prune", "half", "--prune: 'half' is not a number");
    expect_usage("--calibration", "0", "--calibration: must be at least 1 (got 0)");
    expect_usage("--calibration", "many", "--calibration: 'many' is not an integer");
    expect_usage("--against", "fp64", "fp64");
    expect_usage("--fp16-arithmetic", "double",
                 "--fp16-arithmetic: 'double' is not one of auto, half, float");
    expect_usage("--fp16-arithmetic", "float", "--fp16-arithmetic: applies to an fp16 run");
}

/* --fp16-arithmetic float keeps float arithmetic; half runs where the device has cl_khr_fp16
 * (within 0.5 points of fp32 there) and is refused with one line where it has not. */
static void test_fp16_arithmetic_choice(void **state)
{
    (void)state;
    cJSON *report = run_cleval_json((const char *[]){"eval", "--model", model, "--data", data,
                                                     "--precision", "fp16", "--fp16-arithmetic",
                                                     "float", "--json", "-", "--quiet", NULL},
                                    0);
    assert_string_equal(string(cJSON_GetObjectItem(report, "model"), "arithmetic"), "float");
    cJSON_Delete(report);
    const char *half[] = {"eval",  "--model",
                          model,   "--data",
                          data,    "--against",
                          "fp16",  "--fp16-arithmetic",
                          "half",  "--max-accuracy-drop",
                          "0.005", "--json",
                          "-",     "--quiet",
                          NULL};
    if (!cleval_device_get_info(test_device())->has_fp16) {
        char *out, *err;
        /* Refused before the fp32 run: nothing on stdout, one line on stderr. */
        assert_int_equal(run_cleval(half, &out, &err), 2);
        if (!strstr(err, "--fp16-arithmetic half: device ") || !strstr(err, "has no cl_khr_fp16") ||
            strchr(err, '\n') != strrchr(err, '\n'))
            fail_msg("stderr '%s' lacks the one-line refusal", err);
        assert_string_equal(out, "");
        free(out);
        free(err);
        return;
    }
    report = run_cleval_json(half, 0);
    cJSON *against = cJSON_GetObjectItem(report, "against");
    cJSON *b_model = cJSON_GetObjectItem(cJSON_GetObjectItem(against, "report"), "model");
    assert_string_equal(string(b_model, "arithmetic"), "half");
    cJSON *compare = cJSON_GetObjectItem(against, "compare");
    double a = number(compare, "accuracy_a"), b = number(compare, "accuracy_b");
    print_message("fp32 accuracy %.4f, fp16 half arithmetic %.4f, flips %.0f\n", a, b,
                  number(compare, "flips"));
    assert_true(fabs(b - a) <= 0.005);
    cJSON_Delete(report);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_fp16),
        cmocka_unit_test(test_against_int8),
        cmocka_unit_test(test_calibration_and_prune),
        cmocka_unit_test(test_sharded_int8),
        cmocka_unit_test(test_human_line),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_fp16_arithmetic_choice),
        cmocka_unit_test(test_fp16_shards_agree_on_arithmetic),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
