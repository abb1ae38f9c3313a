/* `cleval eval` with samples that are not float32: a uint8 channels-last image set through a
 * float NCHW model with --input-scale/--input-mean/--input-std/--input-layout gives the
 * predictions and scores of the same images preprocessed here on the host; models exported
 * by torch with an int64 (token ids) or uint8 input match onnxruntime (fixtures made by
 * tools/make_dtype_fixtures.py); and every sample type, shape or flag that cannot feed the
 * model exits 2 with one line. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_writer.h"

enum { N = 37, C = 3, H = 6, W = 5, CLASSES = 3 };

static const float MEAN[C] = {0.485f, 0.456f, 0.406f}, STD[C] = {0.229f, 0.224f, 0.225f};

static void expect_failure(const char *const *args, const char *needle)
{
    char *out, *err;
    int code = run_cleval(args, &out, &err);
    if (code != 2) fail_msg("exit %d (wanted 2); stderr: %s", code, err);
    size_t lines = 0;
    for (const char *c = err; *c; c++)
        lines += *c == '\n';
    if (lines != 1 || !strstr(err, needle))
        fail_msg("stderr '%s' lacks '%s' on one line", err, needle);
    free(out), free(err);
}

/* Reads float dataset `name` of `path` ([rows, cols]) into a malloc'd array. */
static float *read_scores(const char *path, const char *name, size_t count)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t space = H5Dget_space(d);
    assert_int_equal((size_t)H5Sget_simple_extent_npoints(space), count);
    float *v = malloc(count * sizeof *v);
    assert_non_null(v);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Sclose(space);
    H5Dclose(d);
    H5Fclose(f);
    return v;
}

static void assert_scores_close(const float *a, const float *b, size_t count, double tol)
{
    for (size_t i = 0; i < count; i++)
        if (!(fabs((double)a[i] - (double)b[i]) <= tol * (1.0 + fabs((double)b[i]))))
            fail_msg("score %zu: %.9g vs %.9g", i, a[i], b[i]);
}

/* A float model x [N, 3, 6, 5] -> Conv(4, 3x3) -> Relu -> Flatten -> Gemm -> [N, 3]. */
static void write_image_model(const char *path)
{
    float w[4 * C * 3 * 3], b[4], fc[48 * CLASSES], fb[CLASSES];
    uint64_t s = 5;
    float *all[4] = {w, b, fc, fb};
    size_t sizes[4] = {sizeof w / 4, 4, sizeof fc / 4, CLASSES};
    for (int a = 0; a < 4; a++)
        for (size_t i = 0; i < sizes[a]; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            all[a][i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
        }
    pb_buf g = {0};
    int64_t wd[4] = {4, C, 3, 3}, bd[1] = {4}, fd[2] = {48, CLASSES}, fbd[1] = {CLASSES};
    onnx_initializer(&g, "w", 4, wd, w);
    onnx_initializer(&g, "b", 1, bd, b);
    onnx_initializer(&g, "fc", 2, fd, fc);
    onnx_initializer(&g, "fb", 1, fbd, fb);
    const char *nodes[][4] = {{"Conv", "conv", "x,w,b", "c"},
                              {"Relu", "relu", "c", "r"},
                              {"Flatten", "flat", "r", "f"},
                              {"Gemm", "fc", "f,fc,fb", "y"}};
    for (int i = 0; i < 4; i++) {
        pb_buf n = onnx_node(nodes[i][0], nodes[i][1], nodes[i][2], nodes[i][3]);
        onnx_node_end(&g, &n);
    }
    int64_t in[4] = {-1, C, H, W}, out[2] = {-1, CLASSES};
    onnx_input(&g, "x", 4, in);
    onnx_output(&g, "y", 2, out);
    onnx_write_model(path, 8, 17, &g);
}

/* uint8 images stored NHWC, and the same preprocessed on the host, stored NCHW. */
static void write_image_data(const char *nhwc_path, const char *host_path, const char *nchw_u8)
{
    static uint8_t pixels[N * H * W * C], planar[N * C * H * W];
    static float host[N * C * H * W];
    int64_t labels[N];
    uint64_t s = 9;
    for (size_t i = 0; i < sizeof pixels; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        pixels[i] = (uint8_t)(s >> 56);
    }
    const float scale = 1.0f / 255.0f;
    for (int n = 0; n < N; n++) {
        labels[n] = n % CLASSES;
        for (int c = 0; c < C; c++)
            for (int p = 0; p < H * W; p++) {
                size_t dst = ((size_t)n * C + c) * H * W + p, src = ((size_t)n * H * W + p) * C + c;
                planar[dst] = pixels[src];
                host[dst] = ((float)pixels[src] * scale - MEAN[c]) / STD[c];
            }
    }
    hsize_t nhwc[4] = {N, H, W, C}, nchw[4] = {N, C, H, W}, n1[1] = {N};
    hid_t f = h5_create(nhwc_path);
    h5_write(f, "X", H5T_NATIVE_UINT8, 4, nhwc, pixels, 0, NULL);
    h5_write(f, "y", H5T_NATIVE_INT64, 1, n1, labels, 0, NULL);
    H5Fclose(f);
    f = h5_create(host_path);
    h5_write(f, "X", H5T_NATIVE_FLOAT, 4, nchw, host, 0, NULL);
    h5_write(f, "y", H5T_NATIVE_INT64, 1, n1, labels, 0, NULL);
    H5Fclose(f);
    f = h5_create(nchw_u8);
    h5_write(f, "X", H5T_NATIVE_UINT8, 4, nchw, planar, 0, NULL);
    H5Fclose(f);
}

static char model[4096], nhwc_data[4096], host_data[4096], nchw_data[4096];

static int setup(void **state)
{
    (void)state;
    snprintf(model, sizeof model, "%s", temp_path("image.onnx"));
    snprintf(nhwc_data, sizeof nhwc_data, "%s", temp_path("nhwc_u8.h5"));
    snprintf(host_data, sizeof host_data, "%s", temp_path("host_f32.h5"));
    snprintf(nchw_data, sizeof nchw_data, "%s", temp_path("nchw_u8.h5"));
    write_image_model(model);
    write_image_data(nhwc_data, host_data, nchw_data);
    return 0;
}

/* The uint8 NHWC set with the --input-* flags equals the host-preprocessed float set: the same
 * predictions (so the same report) and scores within float rounding. Batch 5 leaves a partial
 * last batch. */
static void test_uint8_nhwc_matches_host_preprocessing(void **state)
{
    (void)state;
    char saved_u8[4096], saved_f32[4096];
    snprintf(saved_u8, sizeof saved_u8, "%s", temp_path("pred_u8.h5"));
    snprintf(saved_f32, sizeof saved_f32, "%s", temp_path("pred_f32.h5"));
    cJSON *a = run_cleval_json((const char *[]){"eval",
                                                "--model",
                                                model,
                                                "--data",
                                                nhwc_data,
                                                "--batch",
                                                "5",
                                                "--input-scale",
                                                "0.0039215686274509803",
                                                "--input-mean",
                                                "0.485,0.456,0.406",
                                                "--input-std",
                                                "0.229,0.224,0.225",
                                                "--input-layout",
                                                "nhwc",
                                                "--save",
                                                saved_u8,
                                                "--json",
                                                "-",
                                                NULL},
                               0);
    cJSON *b =
        run_cleval_json((const char *[]){"eval", "--model", model, "--data", host_data, "--batch",
                                         "5", "--save", saved_f32, "--json", "-", NULL},
                        0);
    assert_true(cJSON_GetObjectItem(a, "accuracy")->valuedouble ==
                cJSON_GetObjectItem(b, "accuracy")->valuedouble);
    cJSON_Delete(a);
    cJSON_Delete(b);
    float *pa = read_scores(saved_u8, "pred", N), *pb = read_scores(saved_f32, "pred", N);
    for (int i = 0; i < N; i++)
        assert_true(pa[i] == pb[i]);
    float *sa = read_scores(saved_u8, "scores", N * CLASSES);
    float *sb = read_scores(saved_f32, "scores", N * CLASSES);
    assert_scores_close(sa, sb, N * CLASSES, 1e-5);
    free(pa), free(pb), free(sa), free(sb);
}

/* Runs `model` on `data` saving scores, and compares them with the fixture's onnxruntime
 * scores. */
static void expect_ort_scores(const char *model_path, const char *data, const char *ort_data,
                              size_t count)
{
    char saved[4096];
    snprintf(saved, sizeof saved, "%s", temp_path("pred_export.h5"));
    char *out, *err;
    int code = run_cleval((const char *[]){"eval", "--model", model_path, "--data", data, "--batch",
                                           "8", "--save", saved, "-q", NULL},
                          &out, &err);
    if (code != 0) fail_msg("exit %d: %s", code, err);
    free(out), free(err);
    float *got = read_scores(saved, "scores", count),
          *want = read_scores(ort_data, "scores_ort", count);
    assert_scores_close(got, want, count, 1e-5);
    free(got), free(want);
}

/* Writes the fixture's int64 ids as `type` into a new file. */
static void write_ids_as(const char *path, hid_t type, const int64_t *ids, int64_t bad_at,
                         int64_t bad)
{
    int64_t copy[N * 6];
    memcpy(copy, ids, sizeof copy);
    if (bad_at >= 0) copy[bad_at] = bad;
    hsize_t dims[2] = {N, 6};
    hid_t f = h5_create(path);
    hid_t file_type = H5Tcopy(type);
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(f, "X", file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, copy) >= 0);
    H5Dclose(d);
    H5Sclose(space);
    H5Tclose(file_type);
    H5Fclose(f);
}

static void read_fixture_ids(int64_t *ids)
{
    hid_t f = H5Fopen(fixture_path("dtype/embed_linear_data.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "X", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids) >= 0);
    H5Dclose(d);
    H5Fclose(f);
}

/* torch exports with an int64 and a uint8 input match onnxruntime; int32 and uint8 id files
 * feed the int64 model the same ids. */
static void test_torch_exports_match_onnxruntime(void **state)
{
    (void)state;
    char embed[4096], embed_data[4096], prep[4096], prep_data[4096];
    snprintf(embed, sizeof embed, "%s", fixture_path("dtype/embed_linear.onnx"));
    snprintf(embed_data, sizeof embed_data, "%s", fixture_path("dtype/embed_linear_data.h5"));
    snprintf(prep, sizeof prep, "%s", fixture_path("dtype/uint8_prep.onnx"));
    snprintf(prep_data, sizeof prep_data, "%s", fixture_path("dtype/uint8_prep_data.h5"));
    expect_ort_scores(embed, embed_data, embed_data, N * 4);
    expect_ort_scores(prep, prep_data, prep_data, N * 3);
    int64_t ids[N * 6];
    read_fixture_ids(ids);
    char narrow[4096];
    snprintf(narrow, sizeof narrow, "%s", temp_path("ids_narrow.h5"));
    write_ids_as(narrow, H5T_STD_I32LE, ids, -1, 0);
    expect_ort_scores(embed, narrow, embed_data, N * 4);
    write_ids_as(narrow, H5T_STD_U8LE, ids, -1, 0);
    expect_ort_scores(embed, narrow, embed_data, N * 4);
}

/* Samples, flags and ids that cannot feed the model: exit 2, one line. */
static void test_refusals(void **state)
{
    (void)state;
    char embed[4096], embed_data[4096], prep[4096], prep_data[4096], ids_file[4096];
    snprintf(embed, sizeof embed, "%s", fixture_path("dtype/embed_linear.onnx"));
    snprintf(embed_data, sizeof embed_data, "%s", fixture_path("dtype/embed_linear_data.h5"));
    snprintf(prep, sizeof prep, "%s", fixture_path("dtype/uint8_prep.onnx"));
    snprintf(prep_data, sizeof prep_data, "%s", fixture_path("dtype/uint8_prep_data.h5"));
    snprintf(ids_file, sizeof ids_file, "%s", temp_path("ids_bad.h5"));
    int64_t ids[N * 6];
    read_fixture_ids(ids);

    /* Element types that do not fit the model input, and shapes. */
    write_ids_as(ids_file, H5T_IEEE_F32LE, ids, -1, 0);
    expect_failure((const char *[]){"eval", "--model", embed, "--data", ids_file, NULL},
                   "input 'x' wants int64 [6]; --data ");
    expect_failure((const char *[]){"eval", "--model", embed, "--data", ids_file, NULL},
                   "ids_bad.h5 dataset 'X' is float32 [6]");
    write_ids_as(ids_file, H5T_STD_U64LE, ids, -1, 0);
    expect_failure((const char *[]){"eval", "--model", embed, "--data", ids_file, NULL},
                   "dataset 'X' is uint64 [6]");
    expect_failure((const char *[]){"eval", "--model", prep, "--data", host_data, NULL},
                   "input 'x' wants uint8 [3, 6, 5]; --data ");
    expect_failure((const char *[]){"eval", "--model", model, "--data", nchw_data, "--input-layout",
                                    "nhwc", NULL},
                   "input 'x' wants float [3, 6, 5] (channels-last [6, 5, 3] with "
                   "--input-layout nhwc); --data ");
    expect_failure((const char *[]){"eval", "--model", model, "--data", nhwc_data, NULL},
                   "nhwc_u8.h5 dataset 'X' is uint8 [6, 5, 3]");

    /* A token id outside the embedding table, in sample 3. */
    write_ids_as(ids_file, H5T_STD_I64LE, ids, 3 * 6 + 2, 50);
    expect_failure((const char *[]){"eval", "--model", embed, "--data", ids_file, NULL},
                   "embed_linear.onnx: node '/embed/Gather' (Gather): index 50 in sample 3 of "
                   "the batch is outside the 50 rows of 'embed.weight'");

    /* Preprocessing flags: for float model inputs only, per channel, std not 0. */
    expect_failure((const char *[]){"eval", "--model", embed, "--data", embed_data, "--input-scale",
                                    "0.5", NULL},
                   "applies to a float graph input; 'x' is int64");
    expect_failure(
        (const char *[]){"eval", "--model", prep, "--data", prep_data, "--input-mean", "0.5", NULL},
        "applies to a float graph input; 'x' is uint8");
    expect_failure((const char *[]){"eval", "--model", model, "--data", nchw_data, "--input-mean",
                                    "0.5,0.5", NULL},
                   "the input mean has 2 values but graph input 'x' has 3 channels (axis 1); "
                   "give 1 or 3");
    expect_failure((const char *[]){"eval", "--model", model, "--data", nchw_data, "--input-std",
                                    "1,0,1", NULL},
                   "--input-std: value 2 is 0 (got 1,0,1)");
    expect_failure(
        (const char *[]){"eval", "--model", model, "--data", nchw_data, "--input-scale", "0", NULL},
        "--input-scale: must be a non-zero float (got 0)");
    expect_failure((const char *[]){"eval", "--model", model, "--data", nchw_data, "--input-mean",
                                    "0.5,x,1", NULL},
                   "--input-mean: '0.5,x,1' is not a comma-separated list of numbers");
    expect_failure((const char *[]){"eval", "--model", model, "--data", nchw_data, "--input-layout",
                                    "nhcw", NULL},
                   "--input-layout");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uint8_nhwc_matches_host_preprocessing),
        cmocka_unit_test(test_torch_exports_match_onnxruntime),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
