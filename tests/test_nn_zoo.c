/* The model zoo: small exports of every architecture family users bring (torchvision's CNNs
 * and transformers, nn.TransformerEncoder, LSTM/GRU classifiers, 1-D CNNs, MLPs; made by
 * tools/make_zoo_fixtures.py into tests/fixtures/zoo) against onnxruntime's outputs.
 *
 * Each line of the manifest is one test. A line marked `run` must load, run on both kernel
 * families with every score within 1e-3 x the largest |score| of that sample's onnxruntime
 * output and the same argmax wherever onnxruntime's top two are further apart than that; its
 * fp16 argmax agreement is printed, not asserted. A line marked `refuse` must be refused
 * with CLEVAL_ERR_UNSUPPORTED and one line naming the node (or the graph input) at fault; a
 * refused model that starts to run fails too, so the manifest always says what is true. A
 * table of every model's outcome is printed at the end. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/dataset.h"
#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_testutil.h"

#define ZOO_DIR CLEVAL_FIXTURES_DIR "/zoo"
enum { MAX_MODELS = 256, NAME_LEN = 96 };
static const double RELATIVE_TOLERANCE = 1e-3;
/* Batch sizes per run: all 5 samples at once, and 2 (a partial last batch of 1). */
static const uint32_t BATCHES[] = {5, 2};

/* One manifest line and what the test found. */
typedef struct zoo_model {
    char name[NAME_LEN], family[NAME_LEN], weights[16];
    int opset;
    bool expect_run;
    /* outcome */
    bool ran, refused;
    double max_diff; /* largest |score - onnxruntime| / the sample's largest |score| so far */
    uint32_t fp16_agree, samples;
    bool fp16_ran;
    char refusal[160]; /* "<Op>: <reason>" of the refusal */
} zoo_model;

static zoo_model models[MAX_MODELS];
static size_t n_models;

/* ---- manifest ---- */

static void load_manifest(void)
{
    FILE *f = fopen(ZOO_DIR "/manifest.txt", "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", ZOO_DIR "/manifest.txt");
        exit(1);
    }
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        zoo_model *m = &models[n_models];
        char expect[16];
        if (n_models == MAX_MODELS ||
            sscanf(line, "%95s %95s %d %15s %15s", m->name, m->family, &m->opset, m->weights,
                   expect) != 5 ||
            (strcmp(expect, "run") && strcmp(expect, "refuse"))) {
            fprintf(stderr, "bad manifest line: %s", line);
            exit(1);
        }
        m->expect_run = !strcmp(expect, "run");
        n_models++;
    }
    fclose(f);
}

static const char *model_path(const zoo_model *m, const char *suffix)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s%s", ZOO_DIR, m->name, suffix);
    return path;
}

/* ---- reference data ---- */

typedef struct io_data {
    uint64_t n, size, width;
    float *x, *scores;
} io_data;

static io_data read_io(const zoo_model *m)
{
    cleval_dataset *ds;
    assert_ok(cleval_dataset_open(model_path(m, "_io.h5"), &ds));
    io_data io;
    uint64_t rows;
    io.x = read_column(ds, "X", &io.n, &io.size);
    io.scores = read_column(ds, "scores", &rows, &io.width);
    assert_int_equal(rows, io.n);
    cleval_dataset_close(ds);
    return io;
}

static void free_io(io_data *io)
{
    free(io->x);
    free(io->scores);
}

static double largest_magnitude(const float *row, uint64_t width)
{
    double big = 0;
    for (uint64_t j = 0; j < width; j++)
        if (fabs(row[j]) > big) big = fabs(row[j]);
    return big;
}

static uint32_t argmax_row(const float *row, uint64_t width)
{
    uint32_t best = 0;
    for (uint32_t j = 1; j < width; j++)
        if (row[j] > row[best]) best = j;
    return best;
}

/* The reference's top score minus its second (infinite for one class). */
static double top_two_margin(const float *row, uint64_t width)
{
    uint32_t best = argmax_row(row, width);
    double second = -INFINITY;
    for (uint32_t j = 0; j < width; j++)
        if (j != best && row[j] > second) second = row[j];
    return row[best] - second;
}

/* ---- running ---- */

static void read_predictions(cleval_nn *nn, uint32_t count, int32_t *pred)
{
    cl_int err = clEnqueueReadBuffer(cleval_device_queue(test_device()), cleval_nn_pred_buffer(nn),
                                     CL_TRUE, 0, count * sizeof *pred, pred, 0, NULL, NULL);
    assert_ok(cleval_cl_check(err, "read predictions"));
}

/* Runs all samples through `nn` in batches of `batch`; scores and predictions to the host. A
 * model with an integer input (token ids, uint8 pixels) is fed int64 samples: the fixtures'
 * floats hold those integers exactly. */
static void run_batches(cleval_nn *nn, const io_data *io, uint32_t batch, float *scores,
                        int32_t *pred)
{
    int32_t type = cleval_nn_input_type(nn);
    bool integer = type != CLEVAL_ONNX_FLOAT && type != CLEVAL_ONNX_FLOAT16;
    int64_t *ids = NULL;
    if (integer) {
        assert_non_null(ids = malloc((io->n * io->size + 1) * sizeof *ids));
        for (uint64_t i = 0; i < io->n * io->size; i++)
            ids[i] = (int64_t)io->x[i];
        assert_ok(cleval_nn_set_feed_type(nn, CLEVAL_ONNX_INT64));
    }
    for (uint64_t i = 0; i < io->n; i += batch) {
        uint32_t count = (uint32_t)(io->n - i < batch ? io->n - i : batch);
        const void *x =
            integer ? (const void *)(ids + i * io->size) : (const void *)(io->x + i * io->size);
        assert_ok(cleval_nn_run(nn, x, count, scores + i * io->width));
        read_predictions(nn, count, pred + i);
    }
    free(ids);
}

/* Every score within the sample's tolerance, the argmax equal where the reference's margin
 * exceeds it; records the largest relative difference in m. */
static void compare_with_reference(zoo_model *m, const io_data *io, const float *scores,
                                   const int32_t *pred, const char *what)
{
    for (uint64_t i = 0; i < io->n; i++) {
        const float *want = io->scores + i * io->width, *got = scores + i * io->width;
        double scale = largest_magnitude(want, io->width);
        double tolerance = RELATIVE_TOLERANCE * scale;
        for (uint64_t j = 0; j < io->width; j++) {
            double diff = fabs((double)got[j] - want[j]);
            double relative = scale > 0 ? diff / scale : diff;
            if (relative > m->max_diff) m->max_diff = relative;
            if (!(diff <= tolerance))
                fail_msg("%s: sample %llu score %llu is %.7g, onnxruntime %.7g (tolerance %.3g)",
                         what, (unsigned long long)i, (unsigned long long)j, got[j], want[j],
                         tolerance);
        }
        uint32_t best = argmax_row(want, io->width);
        if ((uint32_t)pred[i] != best && top_two_margin(want, io->width) > tolerance)
            fail_msg("%s: sample %llu predicted %d, onnxruntime %u", what, (unsigned long long)i,
                     pred[i], best);
    }
}

/* fp16 on the default kernel family: how many argmaxes agree with onnxruntime (not asserted;
 * a model fp16 refuses just records nothing). */
static void measure_fp16(zoo_model *m, const cleval_onnx_model *model, const io_data *io,
                         float *scores, int32_t *pred)
{
    cleval_nn_options options = {.precision = CLEVAL_NN_FP16};
    cleval_nn *nn;
    if (cleval_nn_create_with(test_device(), model, &options, &nn) != CLEVAL_OK) return;
    run_batches(nn, io, BATCHES[0], scores, pred);
    cleval_nn_destroy(nn);
    m->fp16_ran = true;
    for (uint64_t i = 0; i < io->n; i++)
        m->fp16_agree += (uint32_t)pred[i] == argmax_row(io->scores + i * io->width, io->width);
}

static void expect_runs(zoo_model *m, const cleval_onnx_model *model)
{
    io_data io = read_io(m);
    m->samples = (uint32_t)io.n;
    float *scores = malloc(io.n * io.width * sizeof *scores);
    int32_t *pred = malloc(io.n * sizeof *pred);
    assert_non_null(scores);
    assert_non_null(pred);
    FOR_EACH_VARIANT(v)
    {
        cleval_device_set_variant(test_device(), v);
        cleval_nn *nn;
        cleval_status status = cleval_nn_create(test_device(), model, &nn);
        if (status != CLEVAL_OK)
            fail_msg("%s is marked run but is refused (%s): %s", m->name, cleval_status_str(status),
                     cleval_last_error());
        assert_int_equal(cleval_nn_output_width(nn), io.width);
        for (size_t b = 0; b < sizeof BATCHES / sizeof BATCHES[0]; b++) {
            char what[256];
            snprintf(what, sizeof what, "%s, batch %u (%s)", m->name, BATCHES[b],
                     cleval_variant_name(v));
            run_batches(nn, &io, BATCHES[b], scores, pred);
            compare_with_reference(m, &io, scores, pred, what);
        }
        cleval_nn_destroy(nn);
    }
    m->ran = true;
    measure_fp16(m, model, &io, scores, pred);
    free(scores);
    free(pred);
    free_io(&io);
}

/* "<Op>: <reason>" from a refusal "...: node '<name>' (<Op>): <reason>", shortened; the
 * reason alone when no node is named (a graph input's type). */
static void describe_refusal(zoo_model *m, const char *message)
{
    const char *node = strstr(message, "node '");
    const char *open = node ? strstr(node, "' (") : NULL;
    const char *close = open ? strstr(open, "): ") : NULL;
    const char *input = strstr(message, "graph input '");
    if (close)
        snprintf(m->refusal, sizeof m->refusal, "%.*s: %.60s", (int)(close - open - 3), open + 3,
                 close + 3);
    else
        snprintf(m->refusal, sizeof m->refusal, "%.70s", input ? input : message);
}

static void expect_refused(zoo_model *m, const cleval_onnx_model *model)
{
    cleval_nn *nn = NULL;
    cleval_status status = cleval_nn_create(test_device(), model, &nn);
    if (status == CLEVAL_OK) {
        cleval_nn_destroy(nn);
        fail_msg("%s is marked refuse but now loads: mark it run in the manifest", m->name);
    }
    const char *message = cleval_last_error();
    print_message("%s refused: %s\n", m->name, message);
    if (status != CLEVAL_ERR_UNSUPPORTED)
        fail_msg("%s: expected CLEVAL_ERR_UNSUPPORTED, got %s", m->name, cleval_status_str(status));
    assert_null(nn);
    assert_null(strchr(message, '\n'));
    if (!strstr(message, "node '") && !strstr(message, "graph input '"))
        fail_msg("%s: the refusal names neither a node nor a graph input: %s", m->name, message);
    m->refused = true;
    describe_refusal(m, message);
}

static void test_zoo_model(void **state)
{
    zoo_model *m = *state;
    cleval_onnx_model *model;
    assert_ok(cleval_onnx_load(model_path(m, ".onnx"), &model));
    if (m->expect_run)
        expect_runs(m, model);
    else
        expect_refused(m, model);
    cleval_onnx_free(model);
}

/* ---- summary ---- */

static void print_summary(void)
{
    printf("\n%-38s %5s  %-8s %-10s %s\n", "model", "opset", "outcome", "max diff", "notes");
    size_t ran = 0, refused = 0;
    for (size_t i = 0; i < n_models; i++) {
        const zoo_model *m = &models[i];
        const char *outcome = m->ran ? "runs" : m->refused ? "refused" : "FAILED";
        char diff[32] = "-", notes[200] = "";
        if (!m->refused) snprintf(diff, sizeof diff, "%.2e", m->max_diff);
        if (m->ran && m->fp16_ran)
            snprintf(notes, sizeof notes, "fp16 argmax %u/%u", m->fp16_agree, m->samples);
        else if (m->ran)
            snprintf(notes, sizeof notes, "fp16 refused");
        else if (m->refused)
            snprintf(notes, sizeof notes, "%s", m->refusal);
        printf("%-38s %5d  %-8s %-10s %s\n", m->name, m->opset, outcome, diff, notes);
        ran += m->ran;
        refused += m->refused;
    }
    printf("%zu models: %zu run, %zu refused, %zu failed\n", n_models, ran, refused,
           n_models - ran - refused);
}

int main(void)
{
    load_manifest();
    static struct CMUnitTest tests[MAX_MODELS];
    for (size_t i = 0; i < n_models; i++)
        tests[i] = (struct CMUnitTest){
            .name = models[i].name, .test_func = test_zoo_model, .initial_state = &models[i]};
    /* The count comes from the manifest, so the group runner is called without the macro. */
    int failed = _cmocka_run_group_tests("nn_zoo", tests, n_models, NULL, NULL);
    print_summary();
    test_device_release();
    return failed;
}
