/* The score-based metrics end to end: `cleval metrics` on prediction files with scores, `eval`
 * on small models and `knn`, against scikit-learn's top_k_accuracy_score and log_loss,
 * the Brier score and torchmetrics' MulticlassCalibrationError (tools/make_score_fixtures.py):
 * ties, probabilities as given and softmax, k = 1 to C and beyond, batch sizes that do not
 * divide N, N = 1; then the text report, runs without scores, refused inputs, and a resumed
 * run that reports the same numbers. */
#include "testutil.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static double number(const cJSON *o, const char *name)
{
    const cJSON *item = cJSON_GetObjectItem(o, name);
    if (!cJSON_IsNumber(item)) fail_msg("no number '%s' in the report", name);
    return item->valuedouble;
}

static void assert_close(double expected, double got, double rel, const char *what)
{
    if (fabs(expected - got) > rel * fmax(fabs(expected), 1e-3))
        fail_msg("%s: expected %.12g, got %.12g", what, expected, got);
}

/* The report's score metrics against the fixture's numbers; `rel` bounds the float error of
 * the device's sums (and of a model's outputs against onnxruntime's). */
static void check_report(const cJSON *got, const char *expected_json, const char *k, double rel)
{
    cJSON *e = load_json(fixture_path(expected_json));
    assert_string_equal(cJSON_GetObjectItem(got, "probabilities")->valuestring,
                        cJSON_GetObjectItem(e, "probabilities")->valuestring);
    const cJSON *top_k = cJSON_GetObjectItem(got, "top_k");
    assert_int_equal((int)number(top_k, "k"), atoi(k));
    assert_true(number(top_k, "accuracy") == number(cJSON_GetObjectItem(e, "top_k"), k));
    assert_close(number(e, "log_loss"), number(got, "log_loss"), rel, "log_loss");
    assert_close(number(e, "brier"), number(got, "brier"), rel, "brier");
    const cJSON *calibration = cJSON_GetObjectItem(got, "calibration");
    assert_close(number(e, "ece"), number(calibration, "ece"), 1e-5, "ece");
    const cJSON *bins = cJSON_GetObjectItem(calibration, "bins"),
                *ebins = cJSON_GetObjectItem(e, "bins");
    assert_int_equal(cJSON_GetArraySize(bins), 15);
    for (int b = 0; b < 15; b++) {
        const cJSON *g = cJSON_GetArrayItem(bins, b), *x = cJSON_GetArrayItem(ebins, b);
        assert_true(number(g, "count") == number(x, "count"));
        assert_true(number(g, "lower") == number(x, "lower"));
        assert_true(number(g, "upper") == number(x, "upper"));
        assert_close(number(x, "confidence"), number(g, "confidence"), 1e-5, "bin confidence");
        assert_true(number(g, "accuracy") == number(x, "accuracy"));
    }
    cJSON_Delete(e);
}

static void check_metrics_case(const char *name, const char *k, const char *batch)
{
    char h5[4096], json[256];
    snprintf(h5, sizeof h5, "%s/scores/%s.h5", CLEVAL_FIXTURES_DIR, name);
    snprintf(json, sizeof json, "scores/%s.json", name);
    const char *args[] = {"metrics", "--data",  h5,        "--top-k", k,   "--json",
                          "-",       "--quiet", "--batch", batch,     NULL};
    if (!batch) args[8] = NULL;
    cJSON *got = run_cleval_json(args, 0);
    check_report(got, json, k, 1e-6);
    cJSON_Delete(got);
}

static void test_metrics_matches_scikit_learn_and_torchmetrics(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *ks[4];
    } cases[] = {
        {"probs_ties", {"1", "2", "5", "7"}},      {"logits_ties", {"1", "2", "5", "10"}},
        {"single", {"1", "2", "3", NULL}},         {"binary", {"1", "2", NULL, NULL}},
        {"dirichlet_2053", {"1", "2", "5", NULL}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (int k = 0; k < 4 && cases[c].ks[k]; k++) {
            check_metrics_case(cases[c].name, cases[c].ks[k], NULL);
            check_metrics_case(cases[c].name, cases[c].ks[k], "7");
        }
    check_metrics_case("dirichlet_2053", "2", "1000"); /* batches of several work-groups */
}

/* The sums are added in row order whatever the batch size: results agree to float rounding
 * across batch sizes, and bit for bit between two runs. */
static void test_metrics_repeatable(void **state)
{
    (void)state;
    char h5[4096];
    snprintf(h5, sizeof h5, "%s/scores/dirichlet_2053.h5", CLEVAL_FIXTURES_DIR);
    const char *args[] = {"metrics", "--data", h5,       "--top-k", "2",
                          "--batch", "300",    "--json", "-",       NULL};
    cJSON *a = run_cleval_json(args, 0), *b = run_cleval_json(args, 0);
    assert_true(number(a, "log_loss") == number(b, "log_loss"));
    assert_true(number(a, "brier") == number(b, "brier"));
    assert_true(number(cJSON_GetObjectItem(a, "calibration"), "ece") ==
                number(cJSON_GetObjectItem(b, "calibration"), "ece"));
    cJSON_Delete(a);
    cJSON_Delete(b);
}

static void test_eval_matches_references(void **state)
{
    (void)state;
    static const char *const models[] = {"mlp_softmax", "gemm_matmul"};
    for (int m = 0; m < 2; m++) {
        char model[4096], data[4096], json[256];
        snprintf(model, sizeof model, "%s/onnx/%s.onnx", CLEVAL_FIXTURES_DIR, models[m]);
        snprintf(data, sizeof data, "%s/scores/eval_%s.h5", CLEVAL_FIXTURES_DIR, models[m]);
        snprintf(json, sizeof json, "scores/eval_%s.json", models[m]);
        cJSON *got =
            run_cleval_json((const char *[]){"eval", "--model", model, "--data", data, "--top-k",
                                             "2", "--batch", "4", "--json", "-", "--quiet", NULL},
                            0);
        check_report(got, json, "2", 1e-5); /* the network's outputs against onnxruntime's */
        cJSON_Delete(got);
    }
}

static void test_knn_vote_fractions(void **state)
{
    (void)state;
    char train[4096], data[4096];
    snprintf(train, sizeof train, "%s/scores/knn_train.h5", CLEVAL_FIXTURES_DIR);
    snprintf(data, sizeof data, "%s/scores/knn.h5", CLEVAL_FIXTURES_DIR);
    cJSON *got = run_cleval_json((const char *[]){"knn", "--train", train, "--data", data, "-k",
                                                  "5", "--top-k", "2", "--batch", "6", "--json",
                                                  "-", "--quiet", NULL},
                                 0);
    check_report(got, "scores/knn.json", "2", 1e-6);
    cJSON_Delete(got);
}

static void test_text_report_lines(void **state)
{
    (void)state;
    char h5[4096], *out = NULL, *err = NULL;
    snprintf(h5, sizeof h5, "%s/scores/logits_ties.h5", CLEVAL_FIXTURES_DIR);
    assert_int_equal(
        run_cleval((const char *[]){"metrics", "--data", h5, "--top-k", "5", "--quiet", NULL}, &out,
                   &err),
        0);
    cJSON *e = load_json(fixture_path("scores/logits_ties.json"));
    char line[128];
    snprintf(line, sizeof line, "top-5 accuracy %.4f\n",
             number(cJSON_GetObjectItem(e, "top_k"), "5"));
    assert_non_null(strstr(out, line));
    snprintf(line, sizeof line, "log loss %.4f\n", number(e, "log_loss"));
    assert_non_null(strstr(out, line));
    snprintf(line, sizeof line, "Brier %.4f\n", number(e, "brier"));
    assert_non_null(strstr(out, line));
    snprintf(line, sizeof line, "ECE (15 bins) %.4f\n", number(e, "ece"));
    assert_non_null(strstr(out, line));
    /* After the classification report, before the confusion matrix. */
    assert_true(strstr(out, "weighted avg") < strstr(out, "log loss"));
    cJSON_Delete(e);
    free(out);
    free(err);
}

/* Without scores nothing changes; without --top-k there is no top_k. */
static void test_keys_only_with_scores(void **state)
{
    (void)state;
    char h5[4096];
    snprintf(h5, sizeof h5, "%s/metrics/c100_n5000.h5", CLEVAL_FIXTURES_DIR);
    cJSON *got = run_cleval_json(
        (const char *[]){"metrics", "--data", h5, "--top-k", "3", "--json", "-", NULL}, 0);
    assert_null(cJSON_GetObjectItem(got, "log_loss"));
    assert_null(cJSON_GetObjectItem(got, "top_k"));
    assert_null(cJSON_GetObjectItem(got, "calibration"));
    cJSON_Delete(got);
    snprintf(h5, sizeof h5, "%s/scores/single.h5", CLEVAL_FIXTURES_DIR);
    got = run_cleval_json((const char *[]){"metrics", "--data", h5, "--json", "-", NULL}, 0);
    assert_null(cJSON_GetObjectItem(got, "top_k"));
    assert_non_null(cJSON_GetObjectItem(got, "log_loss"));
    cJSON_Delete(got);
}

static void test_refused_inputs(void **state)
{
    (void)state;
    char h5[4096];
    snprintf(h5, sizeof h5, "%s/scores/single.h5", CLEVAL_FIXTURES_DIR);
    expect_cleval_error((const char *[]){"metrics", "--data", h5, "--top-k", "0", NULL}, 2,
                        "--top-k");
    /* A label at or beyond the score columns. */
    const char *path = temp_path("narrow_scores.h5");
    hid_t f = h5_create(path);
    int32_t y[3] = {0, 2, 1}, pred[3] = {0, 1, 1};
    float scores[6] = {0.5f, 0.5f, 0.1f, 0.9f, 0.3f, 0.7f};
    hsize_t n = 3, dims[2] = {3, 2};
    h5_write(f, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    h5_write(f, "pred", H5T_NATIVE_INT32, 1, &n, pred, 0, NULL);
    h5_write(f, "scores", H5T_NATIVE_FLOAT, 2, dims, scores, 0, NULL);
    H5Fclose(f);
    expect_cleval_error((const char *[]){"metrics", "--data", path, NULL}, 2,
                        "'scores' has only 2 columns");
}

/* A prediction file of n rows with scores of 3 classes (raw, so softmax). */
static const char *write_scores_file(const char *name, size_t n)
{
    int32_t *y = malloc(n * sizeof *y), *pred = malloc(n * sizeof *pred);
    float *scores = malloc(n * 3 * sizeof *scores);
    uint64_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < 3; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            scores[i * 3 + j] = (float)((s >> 40) % 1000) / 250.0f - 2.0f;
        }
        y[i] = (int32_t)((s >> 20) % 3);
        pred[i] = (int32_t)(i % 3);
    }
    const char *path = temp_path(name);
    hid_t f = h5_create(path);
    hsize_t dims[2] = {n, 3};
    h5_write(f, "y", H5T_NATIVE_INT32, 1, dims, y, 0, NULL);
    h5_write(f, "pred", H5T_NATIVE_INT32, 1, dims, pred, 0, NULL);
    h5_write(f, "scores", H5T_NATIVE_FLOAT, 2, dims, scores, 0, NULL);
    H5Fclose(f);
    free(y), free(pred), free(scores);
    return path;
}

static void assert_same_scores(const cJSON *a, const cJSON *b)
{
    assert_true(number(cJSON_GetObjectItem(a, "top_k"), "accuracy") ==
                number(cJSON_GetObjectItem(b, "top_k"), "accuracy"));
    assert_true(number(a, "log_loss") == number(b, "log_loss"));
    assert_true(number(a, "brier") == number(b, "brier"));
    const cJSON *ca = cJSON_GetObjectItem(a, "calibration"),
                *cb = cJSON_GetObjectItem(b, "calibration");
    assert_true(number(ca, "ece") == number(cb, "ece"));
    for (int i = 0; i < 15; i++)
        assert_true(number(cJSON_GetArrayItem(cJSON_GetObjectItem(ca, "bins"), i), "count") ==
                    number(cJSON_GetArrayItem(cJSON_GetObjectItem(cb, "bins"), i), "count"));
}

/* A run killed after a checkpoint and resumed reports exactly the uninterrupted run's score
 * metrics: the checkpoint keeps the sums of the rows before it. */
static void test_resume_keeps_score_sums(void **state)
{
    (void)state;
    char data[4096], checkpoint[4096], json[4096];
    snprintf(data, sizeof data, "%s", write_scores_file("resume_scores.h5", 1000000));
    snprintf(checkpoint, sizeof checkpoint, "%s", temp_path("resume_scores.ckpt"));
    snprintf(json, sizeof json, "%s", temp_path("resume_scores.json"));
    cJSON *expected = run_cleval_json((const char *[]){"metrics", "--data", data, "--batch", "100",
                                                       "--top-k", "2", "--json", "-", NULL},
                                      0);
    const char *args[] = {"metrics", "--data",       data,       "--batch",
                          "100",     "--top-k",      "2",        "--json",
                          json,      "--checkpoint", checkpoint, "--checkpoint-every",
                          "1000",    NULL,           NULL};
    remove(json);
    /* Every 10 batches: the first checkpoint comes before the held run blocks. */
    assert_int_equal(interrupt_at_checkpoint(args, checkpoint, SIGKILL), 128 + SIGKILL);
    args[13] = "--resume";
    assert_int_equal(run_cleval(args, NULL, NULL), 0);
    cJSON *got = load_json(json);
    assert_same_scores(expected, got);
    cJSON_Delete(expected);
    cJSON_Delete(got);
}

/* A shard's report has no score metrics (its part file does not carry them). */
static void test_shard_reports_no_scores(void **state)
{
    (void)state;
    char h5[4096];
    snprintf(h5, sizeof h5, "%s/scores/probs_ties.h5", CLEVAL_FIXTURES_DIR);
    cJSON *got =
        run_cleval_json((const char *[]){"metrics", "--data", h5, "--shard", "0/2", "--save",
                                         temp_path("part0.h5"), "--json", "-", NULL},
                        0);
    assert_null(cJSON_GetObjectItem(got, "log_loss"));
    cJSON_Delete(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_matches_scikit_learn_and_torchmetrics),
        cmocka_unit_test(test_metrics_repeatable),
        cmocka_unit_test(test_eval_matches_references),
        cmocka_unit_test(test_knn_vote_fractions),
        cmocka_unit_test(test_text_report_lines),
        cmocka_unit_test(test_keys_only_with_scores),
        cmocka_unit_test(test_refused_inputs),
        cmocka_unit_test(test_resume_keeps_score_sums),
        cmocka_unit_test(test_shard_reports_no_scores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
