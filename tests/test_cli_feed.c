/* The device data path end to end, for every element type a dataset may hold: `cleval eval`
 * with --input-scale/--input-mean/--input-std in batches of 5 (several in flight, the last one
 * partial) saves numpy's scores for the same samples (fixtures made by
 * tools/make_feed_fixtures.py), and the samples move to the device in their own type where the
 * model is float and they are integers of up to 16 bits: the network's three staging buffers
 * hold them at their own width (the reported device memory differs from a float32 file's by
 * exactly that). */
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
    {"int32_small", 4}, {"float16", 4}, {"float32", 4}, {"float64", 4},
};

static void read_doubles(const char *path, const char *name, double *out)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
    H5Dclose(d);
    H5Fclose(f);
}

/* Runs the type's samples and checks the saved scores and predictions; returns the reported
 * device bytes of the activations (staging buffers included). */
static double run_type(const sample_type *t)
{
    char model[4096], data[4096], saved[4096], key[64], json[4096];
    snprintf(model, sizeof model, "%s", fixture_path("feed/gemm.onnx"));
    snprintf(data, sizeof data, "%s", fixture_path("feed/data.h5"));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_sample_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
