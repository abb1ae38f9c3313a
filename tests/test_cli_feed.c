/* The device data path end to end, for every element type a dataset may hold: `cleval eval`
 * with --input-scale/--input-mean/--input-std in batches of 5 (several in flight, the last one
 * partial) saves numpy's scores for the same samples (fixtures made by
 * tools/make_feed_fixtures.py), and the samples move to the device in their own type where the
 * model is float and they are integers of up to 16 bits or float16: the network's three
 * staging buffers hold them at their own width (the reported device memory differs from a
 * float32 file's by exactly that); float16 samples move as halves, also from a big-endian file, and
 * a NaN or infinity among them is refused. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 37, FEATURES = 18, CLASSES = 4, BATCH = 5, STAGING_BUFFERS = 3 };

/* A dataset of the fixture, and the bytes per value it moves to the device as. */
typedef struct sample_type {
    const char *name;
    int device_bytes;
} sample_type;

static const sample_type TYPES[] = {
    {"uint8", 1},       {"int8", 1},    {"uint16", 2},  {"int16", 2},   {"int32", 4},
    {"int32_small", 4}, {"float16", 2}, {"float32", 4}, {"float64", 4},
};

static void read_doubles(const char *path, const char *name, double *out)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
    H5Dclose(d);
    H5Fclose(f);
}

/* Runs the type's samples of file `data_path` and checks the saved scores and predictions;
 * returns the reported device bytes of the activations (staging buffers included). */
static double run_type_from(const char *data_path, const sample_type *t)
{
    char model[4096], data[4096], saved[4096], key[64], json[4096];
    snprintf(model, sizeof model, "%s", fixture_path("feed/gemm.onnx"));
    snprintf(data, sizeof data, "%s", data_path);
    snprintf(saved, sizeof saved, "%s", temp_path("saved.h5"));
    snprintf(json, sizeof json, "%s", temp_path("report.json"));
    snprintf(key, sizeof key, "X_%s", t->name);
    char batch[16];
    snprintf(batch, sizeof batch, "%d", BATCH);
    char *out, *err;
    int code = run_cleval((const char *[]){"eval",      "--model",       model,   "--data",
                                           data,        "--x-key",       key,     "--batch",
                                           batch,       "--input-scale", "0.01",  "--input-mean",
                                           "0.5,-0.25", "--input-std",   "2,0.5", "--save",
                                           saved,       "--json",        json,    "--quiet",
                                           NULL},
                          &out, &err);
    if (code != 0) fail_msg("%s: exit %d: %s", t->name, code, err);
    free(out), free(err);
    double got[N * CLASSES], want[N * CLASSES], bound[N * CLASSES], pred[N];
    char name[64];
    read_doubles(saved, "scores", got);
    read_doubles(saved, "pred", pred);
    snprintf(name, sizeof name, "scores_%s", t->name);
    read_doubles(data, name, want);
    snprintf(name, sizeof name, "bound_%s", t->name);
    read_doubles(data, name, bound);
    for (int s = 0; s < N; s++) {
        int best = 0;
        for (int c = 0; c < CLASSES; c++) {
            int i = s * CLASSES + c;
            /* float32 products and sums: a few units of float32 rounding of the terms' sum */
            if (fabs(got[i] - want[i]) > 1e-6 * bound[i] + 1e-6)
                fail_msg("%s sample %d score %d: %.9g, numpy %.9g", t->name, s, c, got[i], want[i]);
            if (got[i] > got[s * CLASSES + best]) best = c;
        }
        assert_int_equal((int)pred[s], best);
    }
    cJSON *report = load_json(json);
    cJSON *memory = cJSON_GetObjectItem(cJSON_GetObjectItem(report, "model"), "device_memory");
    double activations = cJSON_GetObjectItem(memory, "activations_bytes")->valuedouble;
    cJSON_Delete(report);
    return activations;
}

static double run_type(const sample_type *t)
{
    char data[4096]; /* fixture_path's buffer is reused by the next call */
    snprintf(data, sizeof data, "%s", fixture_path("feed/data.h5"));
    return run_type_from(data, t);
}

static void test_every_sample_type(void **state)
{
    (void)state;
    double activations[sizeof TYPES / sizeof *TYPES];
    size_t float32 = 0;
    for (size_t t = 0; t < sizeof TYPES / sizeof *TYPES; t++) {
        activations[t] = run_type(&TYPES[t]);
        if (strcmp(TYPES[t].name, "float32") == 0) float32 = t;
    }
    /* Everything else the network holds is the same for every type. */
    for (size_t t = 0; t < sizeof TYPES / sizeof *TYPES; t++) {
        double fewer = (double)STAGING_BUFFERS * BATCH * FEATURES * (4 - TYPES[t].device_bytes);
        if (activations[float32] - activations[t] != fewer)
            fail_msg("%s: %.0f device bytes of activations, float32 %.0f: the staging buffers "
                     "should hold %d-byte values",
                     TYPES[t].name, activations[t], activations[float32], TYPES[t].device_bytes);
    }
}

/* IEEE half in big-endian byte order (HDF5 1.10 predefines no half type). */
static hid_t big_endian_half(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32BE);
    assert_true(t >= 0);
    assert_true(H5Tset_fields(t, 15, 10, 5, 0, 10) >= 0);
    assert_true(H5Tset_precision(t, 16) >= 0);
    assert_true(H5Tset_size(t, 2) >= 0);
    assert_true(H5Tset_ebias(t, 15) >= 0);
    return t;
}

static void write_dataset(hid_t file, const char *name, hid_t file_type, hid_t mem_type, int rank,
                          const hsize_t *dims, const void *values)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0);
    H5Dclose(d);
    H5Sclose(space);
}

/* The fixture's float16 samples, y, scores and bounds copied into `path` with X stored as
 * big-endian halves; x[at] replaced by `poison` when at >= 0. */
static void write_big_endian_copy(const char *path, int at, float poison)
{
    static float x[N * FEATURES];
    static double scores[N * CLASSES], bound[N * CLASSES], y[N];
    char fixture[4096];
    snprintf(fixture, sizeof fixture, "%s", fixture_path("feed/data.h5"));
    hid_t f = H5Fopen(fixture, H5F_ACC_RDONLY, H5P_DEFAULT),
          d = H5Dopen2(f, "X_float16", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    read_doubles(fixture, "scores_float16", scores);
    read_doubles(fixture, "bound_float16", bound);
    read_doubles(fixture, "y", y);
    if (at >= 0) x[at] = poison;
    hid_t out = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), half = big_endian_half();
    const hsize_t xdims[] = {N, 2, 3, 3}, sdims[] = {N, CLASSES}, ydims[] = {N};
    write_dataset(out, "X_float16", half, H5T_NATIVE_FLOAT, 4, xdims, x);
    write_dataset(out, "scores_float16", H5T_NATIVE_DOUBLE, H5T_NATIVE_DOUBLE, 2, sdims, scores);
    write_dataset(out, "bound_float16", H5T_NATIVE_DOUBLE, H5T_NATIVE_DOUBLE, 2, sdims, bound);
    write_dataset(out, "y", H5T_STD_I32LE, H5T_NATIVE_DOUBLE, 1, ydims, y);
    H5Tclose(half);
    H5Fclose(out);
}

/* Halves in the other byte order reach the device as halves with the same values; a NaN or an
 * infinity among them is refused naming the sample, as in float32 files. */
static void test_float16_big_endian_and_non_finite(void **state)
{
    (void)state;
    const sample_type *half = NULL;
    for (size_t t = 0; t < sizeof TYPES / sizeof *TYPES; t++)
        if (strcmp(TYPES[t].name, "float16") == 0) half = &TYPES[t];
    char path[4096];
    snprintf(path, sizeof path, "%s", temp_path("big_endian.h5"));
    write_big_endian_copy(path, -1, 0.0f);
    assert_true(run_type_from(path, half) == run_type(half));

    const struct {
        int at;
        float value;
        const char *message;
    } poisons[] = {{23 * FEATURES + 7, INFINITY, "sample 23 holds Inf"},
                   {5, NAN, "sample 0 holds NaN"},
                   {(N - 1) * FEATURES, -INFINITY, "sample 36 holds Inf"}};
    for (size_t p = 0; p < sizeof poisons / sizeof *poisons; p++) {
        write_big_endian_copy(path, poisons[p].at, poisons[p].value);
        char *out, *err;
        char model[4096];
        snprintf(model, sizeof model, "%s", fixture_path("feed/gemm.onnx"));
        int code = run_cleval((const char *[]){"eval", "--model", model, "--data", path, "--x-key",
                                               "X_float16", "--batch", "5", "--quiet", NULL},
                              &out, &err);
        if (code != 2 || !strstr(err, poisons[p].message) ||
            strchr(err, '\n') != strrchr(err, '\n'))
            fail_msg("poison %zu: exit %d, stderr: %s", p, code, err);
        free(out), free(err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_sample_type),
        cmocka_unit_test(test_float16_big_endian_and_non_finite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
