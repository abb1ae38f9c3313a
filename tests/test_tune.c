/* `cleval tune` and the tuning cache: a tuned model's winners reach the cache, eval runs with
 * them (and with any valid entry) and still predicts what onnxruntime does, a candidate with
 * wrong results never wins, a damaged entry is a miss, recurrent layers are tuned as well, and
 * bad arguments exit 2. */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 7, C = 4 }; /* fixtures/onnx/lenet_bn_io.h5: 7 samples, 4 classes */

static char model[4096], data[4096];

static int setup(void **state)
{
    (void)state;
    snprintf(model, sizeof model, "%s", fixture_path("onnx/lenet_bn.onnx"));
    snprintf(data, sizeof data, "%s", fixture_path("onnx/lenet_bn_io.h5"));
    unsetenv("CLEVAL_NN_TUNING");
    unsetenv("CLEVAL_TUNE_TEST_BREAK");
    unsetenv("CLEVAL_KERNEL_VARIANT");
    return 0;
}

static void use_cache(const char *name)
{
    setenv("CLEVAL_CACHE_DIR", temp_path(name), 1);
}

static void read_floats(const char *path, const char *name, float *out)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
    H5Dclose(d);
    H5Fclose(f);
}

/* Runs eval with --save and checks the predictions against onnxruntime's argmax exactly (the
 * fixture's scores are far from ties) and the scores within float rounding. Returns stderr and
 * stdout (free them). */
static void eval_matches_onnxruntime(const char *saved_name, char **out, char **err)
{
    char saved[4096];
    snprintf(saved, sizeof saved, "%s", temp_path(saved_name));
    remove(saved);
    assert_int_equal(run_cleval((const char *[]){"eval", "--model", model, "--data", data, "--save",
                                                 saved, "--profile", "--verbose", NULL},
                                out, err),
                     0);
    float ort[N * C], scores[N * C], pred[N];
    read_floats(data, "scores_ort", ort);
    read_floats(saved, "scores", scores);
    read_floats(saved, "pred", pred);
    for (int i = 0; i < N; i++) {
        int best = 0;
        for (int c = 1; c < C; c++)
            if (ort[i * C + c] > ort[i * C + best]) best = c;
        assert_int_equal((int)pred[i], best);
        for (int c = 0; c < C; c++)
            assert_true(fabsf(scores[i * C + c] - ort[i * C + c]) <= 1e-4f);
    }
}

/* The entries of the tuning cache folder, each rewritten to `text` when it is not NULL. */
static int entries(const char *cache, const char *text)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tuning", cache);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        n++;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *content = read_text_file(path);
        assert_non_null(content);
        /* Every entry names every tunable, as nn_tuning_format writes them. */
        if (!text) assert_true(strncmp(content, "conv_mr=", 8) == 0);
        free(content);
        if (text) {
            FILE *f = fopen(path, "w");
            assert_non_null(f);
            fputs(text, f);
            fclose(f);
        }
    }
    closedir(d);
    return n;
}

static void test_tune_then_eval_reads_the_cache(void **state)
{
    (void)state;
    use_cache("cache");
    char cache[4096];
    snprintf(cache, sizeof cache, "%s", temp_path("cache"));
    char *out = NULL, *err = NULL;
    assert_int_equal(run_cleval((const char *[]){"tune", "--model", model, "--budget", "1",
                                                 "--batch", "7", NULL},
                                &out, &err),
                     0);
    assert_non_null(strstr(out, "stored in the tuning cache"));
    assert_non_null(strstr(out, "/net/net.0/Conv"));
    assert_non_null(strstr(out, "/net/net.9/Gemm"));
    free(out);
    free(err);
    /* Two Convs and a Gemm: one entry per layer shape. */
    assert_int_equal(entries(cache, NULL), 3);

    eval_matches_onnxruntime("tuned.h5", &out, &err);
    assert_non_null(strstr(err, "(Conv+BatchNormalization+Relu): tuning from cache"));
    assert_non_null(strstr(out, "[tuning: cache]"));
    free(out);
    free(err);

    /* Any valid entry is used as it is: the tiles and k-block below are not the defaults. */
    assert_int_equal(entries(cache, "conv_mr=4,conv_nv=1,winograd=0,gemm_mr=4,gemm_kc=128"), 3);
    eval_matches_onnxruntime("forced.h5", &out, &err);
    assert_non_null(strstr(out, "conv_cpu MR=4 NV=1 [tuning: cache]"));
    assert_non_null(strstr(out, "gemm_cpu MR=4 NV=1 KC=128 [tuning: cache]"));
    free(out);
    free(err);

    /* A damaged entry is a miss: the defaults, a warning, the same predictions. */
    assert_int_equal(entries(cache, "conv_mr=5,garbage"), 3);
    eval_matches_onnxruntime("damaged.h5", &out, &err);
    assert_non_null(strstr(err, "is damaged"));
    assert_null(strstr(out, "[tuning: cache]"));
    free(out);
    free(err);

    /* No cache at all: the untuned network, same predictions. */
    setenv("CLEVAL_CACHE_DIR", "off", 1);
    eval_matches_onnxruntime("untuned.h5", &out, &err);
    assert_true(strstr(err, "tuning from shipped") || strstr(err, "tuning from derived"));
    free(out);
    free(err);
}

/* A candidate whose scores differ from the defaults' is dropped and logged; it wins nowhere.
 * winograd=0 is the first CPU candidate, which runs whatever the budget. */
static void test_wrong_candidate_is_rejected(void **state)
{
    (void)state;
    use_cache("cache_broken");
    setenv("CLEVAL_TUNE_TEST_BREAK", "winograd=0", 1);
    char *out = NULL, *err = NULL;
    assert_int_equal(run_cleval((const char *[]){"tune", "--model", model, "--budget", "1",
                                                 "--batch", "7", NULL},
                                &out, &err),
                     0);
    unsetenv("CLEVAL_TUNE_TEST_BREAK");
    assert_non_null(strstr(err, "candidate winograd=0 gives wrong scores"));
    assert_non_null(strstr(out, "dropped)"));
    assert_null(strstr(out, " (0 dropped)"));
    assert_null(strstr(out, "  winograd=0"));
    free(out);
    free(err);
}

/* The GPU-style kernels' candidates (conv_gpu / gemm_gpu tiles) on PoCL: checked, timed or dropped,
 * and the network built from what was stored still predicts what onnxruntime does. */
static void test_gpu_style_candidates(void **state)
{
    (void)state;
    use_cache("cache_gpu");
    setenv("CLEVAL_KERNEL_VARIANT", "gpu", 1);
    char *out = NULL, *err = NULL;
    assert_int_equal(run_cleval((const char *[]){"tune", "--model", model, "--budget", "1",
                                                 "--batch", "7", NULL},
                                &out, &err),
                     0);
    assert_non_null(strstr(out, "/net/net.4/Conv"));
    free(out);
    free(err);
    eval_matches_onnxruntime("gpu.h5", &out, &err);
    assert_non_null(strstr(out, "conv_gpu TM="));
    assert_non_null(strstr(out, "[tuning: cache]"));
    unsetenv("CLEVAL_KERNEL_VARIANT");
    free(out);
    free(err);
}

/* eval of tests/fixtures/zoo/gru_sequence_17.onnx (a 2-layer GRU and a Linear head, exported
 * by PyTorch) against onnxruntime's scores stored beside it; stdout (free it). */
static char *gru_eval_matches_onnxruntime(const char *saved_name)
{
    enum { GN = 5, GC = 6 }; /* gru_sequence_17_io.h5: 5 samples, 6 classes */
    char gru[4096], gru_data[4096], saved[4096];
    snprintf(gru, sizeof gru, "%s", fixture_path("zoo/gru_sequence_17.onnx"));
    snprintf(gru_data, sizeof gru_data, "%s", fixture_path("zoo/gru_sequence_17_io.h5"));
    snprintf(saved, sizeof saved, "%s", temp_path(saved_name));
    remove(saved);
    char *out = NULL, *err = NULL;
    assert_int_equal(run_cleval((const char *[]){"eval", "--model", gru, "--data", gru_data,
                                                 "--save", saved, "--profile", NULL},
                                &out, &err),
                     0);
    free(err);
    float ort[GN * GC], scores[GN * GC];
    read_floats(gru_data, "scores", ort);
    read_floats(saved, "scores", scores);
    for (int i = 0; i < GN * GC; i++)
        assert_true(fabsf(scores[i] - ort[i]) <= 1e-4f);
    return out;
}

/* LSTM and GRU layers are tuned too (the recurrence's batch rows, rnn_rows): each GRU gets an
 * entry of its own, eval reads it, and a forced entry's rows reach the kernel while the scores
 * stay onnxruntime's. */
static void test_recurrent_layers_are_tuned(void **state)
{
    (void)state;
    use_cache("cache_rnn");
    char cache[4096], gru[4096];
    snprintf(cache, sizeof cache, "%s", temp_path("cache_rnn"));
    snprintf(gru, sizeof gru, "%s", fixture_path("zoo/gru_sequence_17.onnx"));
    char *out = NULL, *err = NULL;
    assert_int_equal(
        run_cleval((const char *[]){"tune", "--model", gru, "--budget", "1", "--batch", "5", NULL},
                   &out, &err),
        0);
    assert_non_null(strstr(out, "/gru/GRU "));
    assert_non_null(strstr(out, "/gru/GRU_1 "));
    free(out);
    free(err);
    /* Two GRUs of different input widths and the head: three entries. */
    assert_int_equal(entries(cache, NULL), 3);
    out = gru_eval_matches_onnxruntime("gru_tuned.h5");
    /* The default rows follow the device's vector width: any count, from the cache. */
    const char *rows = strstr(out, "gru_steps_cpu L=1 RB=");
    assert_non_null(rows);
    char *rest = NULL;
    assert_true(strtol(rows + strlen("gru_steps_cpu L=1 RB="), &rest, 10) >= 1);
    assert_true(strncmp(rest, " [tuning: cache]", 16) == 0);
    free(out);
    assert_int_equal(entries(cache, "rnn_rows=3"), 3);
    out = gru_eval_matches_onnxruntime("gru_forced.h5");
    assert_non_null(strstr(out, "gru_steps_cpu L=1 RB=3 [tuning: cache]"));
    free(out);
}

static void test_usage_errors_exit_2(void **state)
{
    (void)state;
    use_cache("cache_usage");
    expect_cleval_error((const char *[]){"tune", NULL}, 2, "--model MODEL.onnx is required");
    expect_cleval_error((const char *[]){"tune", "--model", model, "extra", NULL}, 2,
                        "unexpected argument 'extra'");
    expect_cleval_error((const char *[]){"tune", "--model", model, "--budget", "0", NULL}, 2,
                        "--budget");
    expect_cleval_error((const char *[]){"tune", "--model", model, "--budget", "soon", NULL}, 2,
                        "--budget");
    expect_cleval_error((const char *[]){"tune", "--model", model, "--batch", "0", NULL}, 2,
                        "--batch");
    expect_cleval_error((const char *[]){"tune", "--model", model, "--precision", "int8", NULL}, 2,
                        "--precision");
    expect_cleval_error((const char *[]){"tune", "--model", "/nonexistent.onnx", NULL}, 2,
                        "/nonexistent.onnx");
    expect_cleval_error((const char *[]){"tune", "--model", model, "--data", data, NULL}, 2,
                        "--data");
    setenv("CLEVAL_NN_TUNING", "conv_mr=4", 1);
    expect_cleval_error((const char *[]){"tune", "--model", model, NULL}, 2, "CLEVAL_NN_TUNING");
    unsetenv("CLEVAL_NN_TUNING");
    /* Nothing was tuned, so nothing was stored. */
    char cache[4096];
    snprintf(cache, sizeof cache, "%s", temp_path("cache_usage"));
    assert_int_equal(entries(cache, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_tune_then_eval_reads_the_cache, setup),
        cmocka_unit_test_setup(test_wrong_candidate_is_rejected, setup),
        cmocka_unit_test_setup(test_gpu_style_candidates, setup),
        cmocka_unit_test_setup(test_recurrent_layers_are_tuned, setup),
        cmocka_unit_test_setup(test_usage_errors_exit_2, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
