/* `cleval knn`: loads the training set into one KNN searcher per device, then streams the test
 * set through them with engine_run(). */
#include "engine_internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TRAIN_CHUNK_ROWS = 16384 };

/* The vote fractions stay on the device as well (the score metrics read them there); the
 * host copy, when there is one, is what searching again works on. */
static cleval_status predict(void *model, pipeline_slot *slot, cl_mem *pred, cl_mem *scores)
{
    cleval_knn *knn = model;
    cleval_status status = cleval_knn_search(knn, slot->x, slot->n, slot->pred, slot->scores);
    *pred = cleval_knn_pred_buffer(knn);
    *scores = slot->scores ? cleval_knn_scores_buffer(knn) : NULL;
    return status;
}

/* The tie counters every device's searcher keeps, summed. */
typedef struct knn_devices {
    cleval_knn **knns;
    uint32_t count;
} knn_devices;

static void read_counters(void *user, uint64_t *values)
{
    const knn_devices *devices = user;
    for (uint32_t d = 0; d < devices->count; d++) {
        const cleval_knn_stats *stats = cleval_knn_get_stats(devices->knns[d]);
        values[0] += stats->distance_ties;
        values[1] += stats->vote_ties;
        values[2] += stats->searched_again;
    }
}

/* Opens the training set: X and y (labels are required), same length, at least one row. */
static cleval_status open_train(const cleval_knn_job *job, engine_knn_inputs *in)
{
    const char *test_x = job->test.x_key ? job->test.x_key : "X";
    const char *test_y = job->test.y_key ? job->test.y_key : "y";
    const char *x_key = job->train_x_key ? job->train_x_key : test_x;
    const char *y_key = job->train_y_key ? job->train_y_key : test_y;
    cleval_status status;
    if ((status = engine_open_data(job->train_path, job->train_data, job->run.max_classes,
                                   &in->train)) ||
        (status = cleval_column_open(in->train, x_key, CLEVAL_COLUMN_FEATURES, &in->train_x)))
        return status;
    if (!cleval_dataset_has(in->train, y_key))
        return cleval_fail(CLEVAL_ERR_INPUT,
                           "%s: no dataset '%s' (a KNN training set needs labels)", job->train_path,
                           y_key);
    if ((status = cleval_column_open(in->train, y_key, CLEVAL_COLUMN_LABELS, &in->train_y)))
        return status;
    uint64_t n = cleval_column_rows(in->train_x);
    if (n == 0)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: the training set is empty", job->train_path);
    if (cleval_column_rows(in->train_y) != n)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' has %llu samples but '%s' has %llu",
                           job->train_path, x_key, (unsigned long long)n, y_key,
                           (unsigned long long)cleval_column_rows(in->train_y));
    return CLEVAL_OK;
}

/* The largest training label, reading the labels whole (they are small next to X). */
static cleval_status max_train_label(cleval_column *y, int32_t *max_label)
{
    uint64_t n = cleval_column_rows(y);
    int32_t *labels = malloc(n * sizeof *labels);
    if (!labels)
        return cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory reading '%s'",
                           cleval_column_path(y), cleval_column_name(y));
    cleval_status status = cleval_column_read_i32(y, 0, n, labels, max_label);
    free(labels);
    return status;
}

cleval_status engine_open_knn_inputs(const cleval_knn_job *job, engine_knn_inputs *in)
{
    memset(in, 0, sizeof *in);
    int32_t max_train = -1, max_test = -1;
    cleval_status status = open_train(job, in);
    if (status == CLEVAL_OK)
        status = engine_open_test_set(&job->test, job->run.max_classes, &in->test);
    if (status == CLEVAL_OK) {
        char what[CLEVAL_PATH_TEXT_SIZE];
        snprintf(what, sizeof what, "the training set %s", job->train_path);
        status = engine_check_sample_shape(&in->test, cleval_column_row_rank(in->train_x),
                                           cleval_column_row_shape(in->train_x), what);
    }
    if (status == CLEVAL_OK) status = max_train_label(in->train_y, &max_train);
    if (status == CLEVAL_OK) status = engine_scan_labels(&in->test, &max_test);
    if (status == CLEVAL_OK && cleval_column_row_size(in->train_x) > UINT32_MAX)
        status =
            cleval_fail(CLEVAL_ERR_UNSUPPORTED, "%s: samples of %llu features are too large",
                        job->train_path, (unsigned long long)cleval_column_row_size(in->train_x));
    if (status != CLEVAL_OK) {
        engine_close_knn_inputs(in);
        return status;
    }
    in->n_classes = (uint32_t)(max_train > max_test ? max_train : max_test) + 1;
    return CLEVAL_OK;
}

void engine_close_knn_inputs(engine_knn_inputs *in)
{
    engine_close_test_set(&in->test);
    cleval_column_close(in->train_x);
    cleval_column_close(in->train_y);
    cleval_dataset_close(in->train);
    memset(in, 0, sizeof *in);
}

cleval_status engine_load_train(cleval_knn *const *knns, uint32_t count, cleval_column *x,
                                cleval_column *y, uint64_t begin, uint64_t end)
{
    uint64_t n = end - begin, row = cleval_column_row_size(x);
    uint64_t chunk = n < TRAIN_CHUNK_ROWS ? n : TRAIN_CHUNK_ROWS;
    float *values = malloc(chunk * row * sizeof *values);
    int32_t *labels = malloc(chunk * sizeof *labels);
    cleval_status status =
        values && labels ? CLEVAL_OK
                         : cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory loading training rows",
                                       cleval_column_path(x));
    assert(begin < end && end <= cleval_column_rows(x));
    for (uint64_t row0 = begin; status == CLEVAL_OK && row0 < end; row0 += chunk) {
        uint64_t rows = end - row0 < chunk ? end - row0 : chunk;
        int32_t max;
        if (!(status = cleval_column_read_f32(x, row0, rows, values)))
            status = cleval_column_read_i32(y, row0, rows, labels, &max);
        for (uint32_t d = 0; status == CLEVAL_OK && d < count; d++)
            status = cleval_knn_set_train(knns[d], row0 - begin, rows, values, labels);
    }
    for (uint32_t d = 0; status == CLEVAL_OK && d < count; d++)
        status = cleval_knn_prepare(knns[d]);
    free(values);
    free(labels);
    return status;
}

/* The narrowest 8- or 16-bit integer type both X columns fit exactly, which lets the searcher
 * compute exact integer distances (its integer mode); float32 when there is none. */
static cleval_elem_type common_values(const engine_knn_inputs *in)
{
    static const cleval_elem_type candidates[] = {CLEVAL_ELEM_U8, CLEVAL_ELEM_I8, CLEVAL_ELEM_U16,
                                                  CLEVAL_ELEM_I16};
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++)
        if (cleval_column_is_integer(in->train_x) && cleval_column_is_integer(in->test.x) &&
            cleval_column_fits(in->train_x, candidates[i]) &&
            cleval_column_fits(in->test.x, candidates[i]))
            return candidates[i];
    return CLEVAL_ELEM_F32;
}

void engine_knn_description(const cleval_knn_config *config, uint64_t n_train, char *out,
                            size_t size)
{
    snprintf(out, size, "KNN k=%u weights=%s metric=%s train=%llu rows", config->k,
             cleval_knn_weights_name(config->weights), cleval_knn_metric_name(config->metric),
             (unsigned long long)n_train);
}

cleval_status cleval_engine_knn(const cleval_knn_job *job, cleval_knn_outcome *out)
{
    memset(out, 0, sizeof *out);
    engine_knn_inputs in = {0};
    const cleval_run_options *run = &job->run;
    knn_devices devices = {calloc(run->n_devices, sizeof(cleval_knn *)), run->n_devices};
    double start = cleval_seconds();
    cleval_status status =
        devices.knns ? CLEVAL_OK
                     : cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory loading the training set",
                                   job->train_path);
    if (status == CLEVAL_OK) status = engine_open_knn_inputs(job, &in);
    if (status != CLEVAL_OK) goto done;

    out->n_train = cleval_column_rows(in.train_x);
    cleval_knn_config config = job->config;
    config.n_classes = in.n_classes;
    config.values = common_values(&in);
    uint64_t dim = cleval_column_row_size(in.train_x);
    for (uint32_t d = 0; status == CLEVAL_OK && d < devices.count; d++)
        status = cleval_knn_create(run->devices[d], &config, out->n_train, (uint32_t)dim,
                                   &devices.knns[d]);
    if (status == CLEVAL_OK)
        status =
            engine_load_train(devices.knns, devices.count, in.train_x, in.train_y, 0, out->n_train);
    if (status != CLEVAL_OK) goto done;
    out->load_s = cleval_seconds() - start;

    uint32_t max_batch = UINT32_MAX;
    for (uint32_t d = 0; d < devices.count; d++) {
        uint32_t b = cleval_knn_max_batch(devices.knns[d]);
        max_batch = b < max_batch ? b : max_batch;
    }
    uint64_t batch = job->test.batch ? job->test.batch : CLEVAL_DEFAULT_KNN_BATCH;
    batch = batch < max_batch ? batch : max_batch;
    char description[160];
    engine_knn_description(&config, out->n_train, description, sizeof description);
    engine_counters counters = {
        .count = 3,
        .names = {"knn_distance_ties", "knn_vote_ties", "knn_searched_again"},
        .read = read_counters,
        .user = &devices};
    char k_text[16], n_train_text[32];
    snprintf(k_text, sizeof k_text, "%u", config.k);
    snprintf(n_train_text, sizeof n_train_text, "%llu", (unsigned long long)out->n_train);
    const char *const part_attributes[] = {"knn_k",       k_text,
                                           "knn_weights", cleval_knn_weights_name(config.weights),
                                           "knn_metric",  cleval_knn_metric_name(config.metric),
                                           "knn_n_train", n_train_text,
                                           NULL};
    engine_run_spec spec = {.command = "knn",
                            .part_attributes = part_attributes,
                            .data = in.test.ds,
                            .names_fallback = in.train,
                            .x = in.test.x,
                            .labels = in.test.y,
                            .n_classes = config.n_classes,
                            .batch = (uint32_t)batch,
                            .with_scores = job->test.save_path != NULL || job->run.sink,
                            .score_metrics = true,
                            .top_k = job->test.top_k,
                            .errors = job->test.errors,
                            .auc = job->test.auc,
                            .models = (void **)devices.knns,
                            .ops = {.predict = predict},
                            .model_description = description,
                            .save_path = job->test.save_path,
                            .counters = &counters};
    status = engine_run(&spec, run, &out->predict);
    if (status == CLEVAL_OK) {
        uint64_t values[ENGINE_MAX_COUNTERS] = {0};
        read_counters(&devices, values);
        out->stats.distance_ties = values[0] + counters.restored[0];
        out->stats.vote_ties = values[1] + counters.restored[1];
        out->stats.searched_again = values[2] + counters.restored[2];
        for (uint32_t d = 0; d < devices.count; d++) {
            const cleval_knn_stats *s = cleval_knn_get_stats(devices.knns[d]);
            out->stats.queries += s->queries;
            out->stats.screen_s += s->screen_s;
            out->stats.exact_s += s->exact_s;
        }
    }

done:
    for (uint32_t d = 0; devices.knns && d < devices.count; d++)
        cleval_knn_destroy(devices.knns[d]);
    free(devices.knns);
    engine_close_knn_inputs(&in);
    if (status != CLEVAL_OK) cleval_predict_outcome_free(&out->predict);
    return status;
}
