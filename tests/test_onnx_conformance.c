/* ONNX's own backend conformance suite (Debian's libonnx-testdata) through the nn library API:
 * every case whose model uses only operators cleval implements is loaded, run on both kernel
 * families and compared with the suite's expected outputs at the tolerance of onnx's backend
 * test runner (|got - want| <= 1e-7 + 1e-3 |want|). A case ends as
 *   passed   every run matched;
 *   refused  creation failed with CLEVAL_ERR_UNSUPPORTED naming what (an attribute value, a
 *            secondary output...): the model is valid but outside what cleval computes;
 *   skipped  it cannot go through the float API (an integer or boolean output, an input 0
 *            whose values floats do not hold exactly: double, uint64, strings);
 *   failed   anything else: a wrong value, a wrong shape, an error on a valid model.
 * Failed must be 0. A case runs twice where it differs: with every float input fed at run time
 * (integer inputs such as Reshape's shape bound as constants), and with every input after the
 * first bound as a constant, as an exporter stores weights. The summary table is printed and
 * written to tests/tmp/conformance_summary.md. */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleval/nn.h"
#include "cleval/onnx.h"

#ifndef CLEVAL_ONNX_TESTDATA
#define CLEVAL_ONNX_TESTDATA "/usr/share/libonnx-testdata/data"
#endif

static const char *const SUITES[] = {"node", "pytorch-converted", "pytorch-operator"};

/* The suite's folder: CLEVAL_ONNX_TESTDATA from the environment, else the build's default. */
static const char *testdata(void)
{
    const char *env = getenv("CLEVAL_ONNX_TESTDATA");
    return env && *env ? env : CLEVAL_ONNX_TESTDATA;
}

typedef enum outcome { PASSED, REFUSED, SKIPPED, FAILED, N_OUTCOMES } outcome;
static const char *const OUTCOME_NAMES[] = {"passed", "refused", "skipped", "failed"};

typedef struct row {
    char op[256];
    int counts[N_OUTCOMES];
    char examples[N_OUTCOMES][512]; /* a case name and reason per outcome, for the table */
} row;

static row rows[256];
static int n_rows;
static int totals[N_OUTCOMES];
static char failures[8192];

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted test_* directory names of a suite (malloc'd; free each and the array). */
static char **list_cases(const char *dir, int *count)
{
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **names = NULL;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "test_", 5) != 0) continue;
        if (*count == cap) {
            cap = cap ? 2 * cap : 256;
            names = realloc(names, (size_t)cap * sizeof *names);
            assert_non_null(names);
        }
        names[(*count)++] = strdup(e->d_name);
    }
    closedir(d);
    if (*count) qsort(names, (size_t)*count, sizeof *names, compare_names);
    return names;
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The operators of a model as "A+B" (sorted, unique, without Constant); false when one of
 * them is not implemented. */
static bool model_ops(const cleval_onnx_model *m, char *label, size_t size)
{
    const char *ops[64];
    int n = 0;
    bool supported = true;
    for (uint32_t i = 0; i < m->n_nodes; i++) {
        const char *op = m->nodes[i].op_type;
        if (!cleval_nn_supports_op(op)) supported = false;
        if (strcmp(op, "Constant") == 0) continue;
        bool seen = false;
        for (int j = 0; j < n && !seen; j++)
            seen = strcmp(ops[j], op) == 0;
        if (!seen && n < 64) ops[n++] = op;
    }
    qsort(ops, (size_t)n, sizeof *ops, compare_names);
    label[0] = '\0';
    for (int j = 0; j < n; j++) {
        size_t used = strlen(label);
        snprintf(label + used, size - used, "%s%s", j ? "+" : "", ops[j]);
    }
    if (n == 0) snprintf(label, size, "Constant");
    return supported;
}

static row *row_for(const char *op)
{
    for (int i = 0; i < n_rows; i++)
        if (strcmp(rows[i].op, op) == 0) return &rows[i];
    assert_true(n_rows < (int)(sizeof rows / sizeof rows[0]));
    row *r = &rows[n_rows++];
    memset(r, 0, sizeof *r);
    snprintf(r->op, sizeof r->op, "%s", op);
    return r;
}

static void record(const char *op, const char *suite, const char *name, outcome o,
                   const char *reason)
{
    row *r = row_for(op);
    r->counts[o]++;
    totals[o]++;
    if (o != PASSED && !r->examples[o][0])
        snprintf(r->examples[o], sizeof r->examples[o], "%s: %s", name, reason);
    if (o == FAILED) {
        size_t used = strlen(failures);
        snprintf(failures + used, sizeof failures - used, "  %s/%s: %s\n", suite, name, reason);
    }
    printf("%-9s %s/%s%s%s\n", OUTCOME_NAMES[o], suite, name, reason[0] ? ": " : "", reason);
}

/* Input and output tensors of one test_data_set folder. */
typedef struct data_set {
    cleval_onnx_tensor *in[16], *out[16];
    uint32_t n_in, n_out;
} data_set;

static void free_data_set(data_set *ds)
{
    for (uint32_t i = 0; i < ds->n_in; i++)
        cleval_onnx_tensor_free(ds->in[i]);
    for (uint32_t i = 0; i < ds->n_out; i++)
        cleval_onnx_tensor_free(ds->out[i]);
    memset(ds, 0, sizeof *ds);
}

static bool load_data_set(const char *dir, data_set *ds, char *reason, size_t size)
{
    memset(ds, 0, sizeof *ds);
    char path[4400];
    for (uint32_t k = 0; k < 16; k++) {
        snprintf(path, sizeof path, "%s/input_%u.pb", dir, k);
        if (!is_file(path)) break;
        if (cleval_onnx_load_tensor(path, &ds->in[k]) != CLEVAL_OK) {
            snprintf(reason, size, "%s", cleval_last_error());
            return false;
        }
        ds->n_in = k + 1;
    }
    for (uint32_t k = 0; k < 16; k++) {
        snprintf(path, sizeof path, "%s/output_%u.pb", dir, k);
        if (!is_file(path)) break;
        if (cleval_onnx_load_tensor(path, &ds->out[k]) != CLEVAL_OK) {
            snprintf(reason, size, "%s", cleval_last_error());
            return false;
        }
        ds->n_out = k + 1;
    }
    return true;
}

static bool is_float(const cleval_onnx_tensor *t)
{
    return t->dtype == CLEVAL_ONNX_FLOAT && t->storage == CLEVAL_ONNX_DATA_F32;
}

/* A float16 tensor, or an integer or boolean one, whose values floats hold exactly: the API
 * takes them as float data and converts them on the device to the input's type. */
static bool is_exact_in_float(const cleval_onnx_tensor *t)
{
    if (t->dtype == CLEVAL_ONNX_FLOAT16) return t->storage == CLEVAL_ONNX_DATA_F32;
    if (t->storage != CLEVAL_ONNX_DATA_I64 || t->dtype == CLEVAL_ONNX_UINT64) return false;
    for (uint64_t i = 0; i < t->count; i++)
        if (t->i64[i] < -(1 << 24) || t->i64[i] > (1 << 24)) return false;
    return true;
}

/* A runtime input's values as floats: the tensor's own, or a malloc'd copy of its integers
 * (*copy, freed by the caller). */
static float *feed_data(const cleval_onnx_tensor *t, float **copy)
{
    *copy = NULL;
    if (t->storage == CLEVAL_ONNX_DATA_F32) return t->f32;
    *copy = malloc((t->count ? t->count : 1) * sizeof **copy);
    assert_non_null(*copy);
    for (uint64_t i = 0; i < t->count; i++)
        (*copy)[i] = (float)t->i64[i];
    return *copy;
}

/* Creates the network with the inputs marked in `bind` bound as constants, runs every data set
 * and compares. Returns the outcome; `reason` says why when not passed. */
static outcome run_mode(const cleval_onnx_model *m, data_set *sets, int n_sets, const bool *bind,
                        cleval_kernel_variant variant, char *reason, size_t size)
{
    cleval_device_set_variant(test_device(), variant);
    const cleval_onnx_tensor *bound[16];
    uint32_t n_bound = 0;
    /* The model's graph inputs that are not initializers, in order, match input_N.pb. */
    uint32_t slot = 0;
    const char *names[16] = {0};
    for (uint32_t i = 0; i < m->n_inputs && slot < 16; i++) {
        if (cleval_onnx_find_initializer(m, m->inputs[i].name)) continue;
        names[slot++] = m->inputs[i].name;
    }
    if (slot != sets[0].n_in) {
        snprintf(reason, size, "the model has %u inputs, the data set %u", slot, sets[0].n_in);
        return FAILED;
    }
    /* Bound tensors take the graph input's name (the .pb files may name them differently). */
    char *saved[16] = {0};
    for (uint32_t k = 0; k < slot; k++)
        if (bind[k]) {
            saved[k] = sets[0].in[k]->name;
            sets[0].in[k]->name = (char *)names[k];
            bound[n_bound++] = sets[0].in[k];
        }
    cleval_nn_options options = {.general = true, .n_bound = n_bound, .bound = bound};
    cleval_nn *nn;
    cleval_status status = cleval_nn_create_with(test_device(), m, &options, &nn);
    for (uint32_t k = 0; k < slot; k++)
        if (saved[k]) sets[0].in[k]->name = saved[k];
    if (status != CLEVAL_OK) {
        snprintf(reason, size, "%s", cleval_last_error());
        return status == CLEVAL_ERR_UNSUPPORTED ? REFUSED : FAILED;
    }
    outcome result = PASSED;
    for (int s = 0; s < n_sets && result == PASSED; s++) {
        data_set *ds = &sets[s];
        cleval_nn_tensor inputs[16], outputs[16];
        float *copies[16] = {NULL};
        uint32_t n = 0;
        for (uint32_t k = 0; k < slot; k++) {
            if (bind[k]) continue;
            cleval_onnx_tensor *t = ds->in[k];
            inputs[n].rank = t->rank;
            for (uint32_t d = 0; d < t->rank && d < CLEVAL_NN_MAX_RANK; d++)
                inputs[n].dims[d] = t->dims[d];
            inputs[n].data = feed_data(t, &copies[n]);
            n++;
        }
        cleval_status ran = CLEVAL_OK;
        if (cleval_nn_graph_output_count(nn) != ds->n_out) {
            snprintf(reason, size, "%u outputs, the data set has %u",
                     cleval_nn_graph_output_count(nn), ds->n_out);
            result = FAILED;
        } else if ((ran = cleval_nn_run_graph(nn, inputs, outputs)) != CLEVAL_OK) {
            snprintf(reason, size, "run: %s", cleval_last_error());
            result = FAILED;
        }
        for (uint32_t k = 0; k < n; k++)
            free(copies[k]);
        if (result != PASSED) break;
        for (uint32_t o = 0; o < ds->n_out; o++) {
            const cleval_onnx_tensor *want = ds->out[o];
            bool same = outputs[o].rank == want->rank;
            for (uint32_t d = 0; same && d < want->rank; d++)
                same = outputs[o].dims[d] == want->dims[d];
            if (!same && result == PASSED) {
                snprintf(reason, size, "output %u has the wrong shape (rank %u)", o,
                         outputs[o].rank);
                result = FAILED;
            }
            for (uint64_t i = 0; same && result == PASSED && i < want->count; i++) {
                double g = outputs[o].data[i], w = want->f32[i];
                if (isnan(w) && isnan(g)) continue;
                if (isinf(w) && g == w) continue;
                if (!(fabs(g - w) <= 1e-7 + 1e-3 * fabs(w))) {
                    snprintf(reason, size, "output %u element %llu is %.9g, expected %.9g", o,
                             (unsigned long long)i, g, w);
                    result = FAILED;
                }
            }
            free(outputs[o].data);
        }
    }
    cleval_nn_destroy(nn);
    return result;
}

static void run_case(const char *suite, const char *name)
{
    char dir[2048], path[4096], reason[1024] = "";
    snprintf(dir, sizeof dir, "%s/%s/%s", testdata(), suite, name);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    cleval_onnx_model *m;
    if (cleval_onnx_load(path, &m) != CLEVAL_OK) return; /* the reader's own tests cover these */
    char op[256];
    if (!model_ops(m, op, sizeof op)) {
        cleval_onnx_free(m);
        return; /* uses an operator cleval does not implement: not a case of ours */
    }
    data_set sets[8];
    int n_sets = 0;
    for (int s = 0; s < 8; s++) {
        char set_dir[2100];
        snprintf(set_dir, sizeof set_dir, "%s/test_data_set_%d", dir, s);
        snprintf(path, sizeof path, "%s/input_0.pb", set_dir);
        char out0[2200];
        snprintf(out0, sizeof out0, "%s/output_0.pb", set_dir);
        if (!is_file(path) && !is_file(out0)) break;
        if (!load_data_set(set_dir, &sets[n_sets], reason, sizeof reason)) {
            record(op, suite, name, SKIPPED, reason);
            for (int i = 0; i <= n_sets; i++)
                free_data_set(&sets[i]);
            cleval_onnx_free(m);
            return;
        }
        n_sets++;
    }
    outcome result = PASSED;
    if (n_sets == 0) {
        result = SKIPPED;
        snprintf(reason, sizeof reason, "no test data");
    }
    for (uint32_t o = 0; result == PASSED && o < sets[0].n_out; o++)
        if (!is_float(sets[0].out[o]) && sets[0].out[o]->dtype != CLEVAL_ONNX_FLOAT16) {
            /* float16 outputs are compared as the floats cleval computes them (rounded to half
             * where a Cast says so) */
            result = SKIPPED;
            snprintf(reason, sizeof reason, "output %u is %s; the API computes float outputs", o,
                     cleval_onnx_dtype_name(sets[0].out[o]->dtype));
        }
    for (int s = 0; result == PASSED && s < n_sets && sets[s].n_in > 0; s++)
        if (!is_float(sets[s].in[0]) && !is_exact_in_float(sets[s].in[0])) {
            result = SKIPPED;
            snprintf(reason, sizeof reason,
                     "input 0 is %s; the API feeds float data (float16, integers up to 2^24)",
                     cleval_onnx_dtype_name(sets[s].in[0]->dtype));
        }
    if (result == PASSED) {
        /* Mode A: float inputs (and input 0 whatever its type) at run time; B: everything
         * after input 0 bound. */
        bool bind_a[16] = {false}, bind_b[16] = {false};
        bool differ = false;
        for (uint32_t k = 0; k < sets[0].n_in; k++) {
            bind_a[k] = k > 0 && !is_float(sets[0].in[k]);
            bind_b[k] = k > 0;
            differ = differ || bind_a[k] != bind_b[k];
        }
        int accepted = 0;
        char refusal[1024] = "";
        for (int mode = 0; mode < (differ ? 2 : 1) && result == PASSED; mode++)
            for (size_t v = 0; v < 2 && result == PASSED; v++) {
                cleval_kernel_variant variant = v ? CLEVAL_VARIANT_GPU : CLEVAL_VARIANT_CPU;
                char why[900] = "";
                outcome o =
                    run_mode(m, sets, n_sets, mode ? bind_b : bind_a, variant, why, sizeof why);
                if (o == REFUSED) {
                    snprintf(refusal, sizeof refusal, "%s", why);
                    break; /* the other variant refuses alike */
                }
                if (o != PASSED) {
                    result = o;
                    snprintf(reason, sizeof reason, "%s (%s, %s)", why,
                             mode ? "parameters bound" : "float inputs at run time",
                             cleval_variant_name(variant));
                } else if (v == 1) {
                    accepted++;
                }
            }
        if (result == PASSED && accepted == 0) {
            result = REFUSED;
            snprintf(reason, sizeof reason, "%s", refusal);
        }
    }
    /* Strip the model path from reasons: the case name says it. */
    const char *shown = reason;
    const char *cut = strstr(reason, "model.onnx: ");
    if (cut) shown = cut + strlen("model.onnx: ");
    record(op, suite, name, result, shown);
    for (int i = 0; i < n_sets; i++)
        free_data_set(&sets[i]);
    cleval_onnx_free(m);
}

static int compare_rows(const void *a, const void *b)
{
    return strcmp(((const row *)a)->op, ((const row *)b)->op);
}

static void write_summary(FILE *f)
{
    fprintf(f, "| operator(s) | passed | refused | skipped | failed | example refusal or skip |\n");
    fprintf(f, "| --- | ---: | ---: | ---: | ---: | --- |\n");
    for (int i = 0; i < n_rows; i++) {
        const row *r = &rows[i];
        const char *example = r->examples[REFUSED][0]   ? r->examples[REFUSED]
                              : r->examples[SKIPPED][0] ? r->examples[SKIPPED]
                                                        : "";
        fprintf(f, "| %s | %d | %d | %d | %d | %s |\n", r->op, r->counts[PASSED],
                r->counts[REFUSED], r->counts[SKIPPED], r->counts[FAILED], example);
    }
    fprintf(f, "| **total** | **%d** | **%d** | **%d** | **%d** | |\n", totals[PASSED],
            totals[REFUSED], totals[SKIPPED], totals[FAILED]);
}

static void test_conformance(void **state)
{
    (void)state;
    struct stat st;
    if (stat(testdata(), &st) != 0) {
        print_message("ONNX test data not found at %s (Debian: libonnx-testdata)\n", testdata());
        skip();
    }
    for (size_t s = 0; s < sizeof SUITES / sizeof SUITES[0]; s++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", testdata(), SUITES[s]);
        int n;
        char **names = list_cases(dir, &n);
        for (int i = 0; i < n; i++) {
            run_case(SUITES[s], names[i]);
            free(names[i]);
        }
        free(names);
    }
    qsort(rows, (size_t)n_rows, sizeof *rows, compare_rows);
    printf("\nONNX conformance cases whose operators cleval implements, both kernel families:\n");
    write_summary(stdout);
    FILE *f = fopen(temp_path("conformance_summary.md"), "w");
    if (f) {
        write_summary(f);
        fclose(f);
    }
    if (totals[FAILED]) fail_msg("%d conformance cases failed:\n%s", totals[FAILED], failures);
    assert_true(totals[PASSED] > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conformance),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
