/* `cleval eval`: the ONNX network on one runner per device, streaming the test set through
 * engine_run(). */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/onnx.h"
#include "text/printable.h"

/* One device's runner. */
typedef struct eval_model {
    cleval_nn *nn;
    cleval_device *dev;
    /* Per batch in flight, in the order predict takes them (the pipeline finishes a worker's
     * batches in that order): each row's count of NaN and infinite scores, read back with the
     * batch, and the rows it holds. */
    uint32_t *row_nonfinite[PIPELINE_IN_FLIGHT];
    uint32_t capacity[PIPELINE_IN_FLIGHT];
    uint64_t started, finished; /* batches predict enqueued, and finish took back */
    uint64_t nonfinite;         /* NaN and infinite scores in this device's batches */
    uint64_t first_nonfinite;   /* the first sample holding one; UINT64_MAX: none yet */
} eval_model;

/* The batch is done: adds its NaN and infinite scores to the device's tally. */
static cleval_status finish(void *model, pipeline_slot *slot)
{
    eval_model *m = model;
    const uint32_t *rows = m->row_nonfinite[m->finished++ % PIPELINE_IN_FLIGHT];
    for (uint32_t i = 0; i < slot->n; i++) {
        if (!rows[i]) continue;
        m->nonfinite += rows[i];
        if (slot->row0 + i < m->first_nonfinite) m->first_nonfinite = slot->row0 + i;
    }
    return CLEVAL_OK;
}

/* Enqueues the batch. The scores stay on the device (the score metrics read them there);
 * slot->scores, present only when they are saved, gets a copy, and slot->pred the predictions
 * only when the host needs them. Nothing is waited for: the pipeline waits for the batch's end
 * and then calls finish(). */
static cleval_status predict(void *model, pipeline_slot *slot, cl_mem *pred, cl_mem *scores)
{
    eval_model *m = model;
    /* The entry of the batch PIPELINE_IN_FLIGHT before this one, finished by now. */
    uint32_t r = (uint32_t)(m->started % PIPELINE_IN_FLIGHT);
    if (slot->n > m->capacity[r]) {
        free(m->row_nonfinite[r]);
        m->capacity[r] = 0;
        if (!(m->row_nonfinite[r] = malloc((size_t)slot->n * sizeof *m->row_nonfinite[r])))
            return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for a batch of %u samples",
                               slot->n);
        m->capacity[r] = slot->n;
    }
    cleval_status status = cleval_nn_run_async(m->nn, slot->x, slot->n);
    if (status != CLEVAL_OK) return status;
    *pred = cleval_nn_pred_buffer(m->nn);
    *scores = cleval_nn_scores_buffer(m->nn);
    cl_command_queue queue = cleval_device_queue(m->dev);
    status = cleval_cl_check(clEnqueueReadBuffer(queue, cleval_nn_nonfinite_buffer(m->nn), CL_FALSE,
                                                 0, slot->n * sizeof(uint32_t), m->row_nonfinite[r],
                                                 0, NULL, NULL),
                             "clEnqueueReadBuffer(non-finite score counts)");
    if (status == CLEVAL_OK && slot->scores)
        status = cleval_cl_check(
            clEnqueueReadBuffer(queue, *scores, CL_FALSE, 0,
                                (size_t)slot->n * cleval_nn_output_width(m->nn) * sizeof(float),
                                slot->scores, 0, NULL, NULL),
            "clEnqueueReadBuffer(scores)");
    if (status == CLEVAL_OK && slot->host_pred)
        status = cleval_cl_check(clEnqueueReadBuffer(queue, *pred, CL_FALSE, 0,
                                                     slot->n * sizeof(int32_t), slot->pred, 0, NULL,
                                                     NULL),
                                 "clEnqueueReadBuffer(predictions)");
    if (status == CLEVAL_OK) m->started++;
    return status;
}

/* A network ending in the fused head counts the batch's predictions in its own kernel (see
 * pipeline_worker_ops.count_into), and skips writing the scores when nothing reads them. */
static cleval_status count_into(void *model, cl_mem hist, cl_mem labels, uint32_t rows,
                                uint32_t cols, bool scores_needed, bool *taken)
{
    eval_model *m = model;
    *taken = false;
    if (!cleval_nn_has_fused_head(m->nn)) return CLEVAL_OK;
    cleval_nn_set_scores_needed(m->nn, scores_needed);
    cleval_status status = cleval_nn_count_predictions(m->nn, hist, labels, rows, cols);
    *taken = status == CLEVAL_OK && hist != NULL;
    return status;
}

/* The job's counter: NaN and infinite scores, summed over the devices. */
static void read_nonfinite(void *user, uint64_t *values)
{
    const eval_model *models = user;
    for (uint32_t d = 0; models[d].nn; d++)
        values[0] += models[d].nonfinite;
}

/* What engine_run needs to refuse a run with non-finite scores. */
typedef struct nonfinite_check {
    const cleval_eval_job *job;
    const eval_model *models;
    const engine_counters *counters; /* [0]: the count before a resume */
} nonfinite_check;

static cleval_status accept_scores(void *user)
{
    const nonfinite_check *check = user;
    uint64_t count[ENGINE_MAX_COUNTERS] = {0}, first = UINT64_MAX;
    read_nonfinite((void *)check->models, count);
    count[0] += check->counters->restored[0];
    if (count[0] == 0 || check->job->allow_nonfinite) return CLEVAL_OK;
    for (uint32_t d = 0; check->models[d].nn; d++)
        if (check->models[d].first_nonfinite < first) first = check->models[d].first_nonfinite;
    char where[64] = ""; /* unknown when they all came before a resume */
    if (first != UINT64_MAX)
        snprintf(where, sizeof where, " (first in sample %llu)", (unsigned long long)first);
    return cleval_fail(CLEVAL_ERR_INPUT,
                       "model %s produced %llu non-finite scores%s; pass --allow-nonfinite to "
                       "accept them",
                       check->job->model_path, (unsigned long long)count[0], where);
}

void cleval_eval_outcome_free(cleval_eval_outcome *out)
{
    cleval_predict_outcome_free(&out->predict);
    free(out->layers);
    out->layers = NULL;
    out->n_layers = 0;
}

/* The per-layer table, summed over the devices' runners. */
static cleval_status collect_layers(const char *model_path, const eval_model *models,
                                    uint32_t count, cleval_eval_outcome *out)
{
    uint32_t n = cleval_nn_layer_count(models[0].nn);
    out->layers = calloc(n ? n : 1, sizeof *out->layers);
    if (!out->layers)
        return cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory for the layer table", model_path);
    out->n_layers = n;
    for (uint32_t i = 0; i < n; i++) {
        const cleval_nn_layer *layer = cleval_nn_layer_at(models[0].nn, i);
        cleval_eval_layer *row = &out->layers[i];
        cleval_text_printable(layer->name, false, row->name, sizeof row->name); /* a file's name */
        snprintf(row->op, sizeof row->op, "%s", layer->op);
        snprintf(row->kernel, sizeof row->kernel, "%s", layer->kernel);
        for (uint32_t d = 0; d < count; d++) {
            if (cleval_nn_layer_count(models[d].nn) != n) continue; /* another plan: skip it */
            row->seconds += cleval_nn_layer_at(models[d].nn, i)->seconds;
            row->flops += cleval_nn_layer_at(models[d].nn, i)->flops;
        }
    }
    return CLEVAL_OK;
}

/* How the test samples reach the model: the type they are read as, the same as an ONNX type. */
typedef struct eval_feed {
    cleval_elem_type read;
    int32_t onnx;
} eval_feed;

static const eval_feed INTEGER_FEEDS[] = {
    {CLEVAL_ELEM_U8, CLEVAL_ONNX_UINT8},   {CLEVAL_ELEM_I8, CLEVAL_ONNX_INT8},
    {CLEVAL_ELEM_U16, CLEVAL_ONNX_UINT16}, {CLEVAL_ELEM_I16, CLEVAL_ONNX_INT16},
    {CLEVAL_ELEM_I32, CLEVAL_ONNX_INT32},  {CLEVAL_ELEM_I64, CLEVAL_ONNX_INT64},
};

/* The feed for a model input of ONNX type `model_type` from column x; false when x cannot
 * feed it. A float model takes the narrowest integer type up to 16 bits holding the file's, or
 * a float16 file's halves (moved as is, converted on the device), else float32; an integer
 * model its own type, from an integer file whose values all fit it. */
static bool choose_feed(int32_t model_type, const cleval_column *x, eval_feed *out)
{
    bool float_model = model_type == CLEVAL_ONNX_FLOAT || model_type == CLEVAL_ONNX_FLOAT16;
    if (float_model && cleval_column_fits(x, CLEVAL_ELEM_F16)) {
        *out = (eval_feed){CLEVAL_ELEM_F16, CLEVAL_ONNX_FLOAT16};
        return true;
    }
    for (size_t i = 0; i < sizeof INTEGER_FEEDS / sizeof *INTEGER_FEEDS; i++) {
        const eval_feed *f = &INTEGER_FEEDS[i];
        bool candidate = float_model ? f->read <= CLEVAL_ELEM_I16 : f->onnx == model_type;
        if (candidate && cleval_column_is_integer(x) && cleval_column_fits(x, f->read)) {
            *out = *f;
            return true;
        }
    }
    *out = (eval_feed){CLEVAL_ELEM_F32, CLEVAL_ONNX_FLOAT};
    return float_model;
}

/* The sample shape the file must have: the model's, channels moved last when nhwc. */
static void file_shape_wanted(const cleval_nn *nn, bool nhwc, uint64_t *shape)
{
    uint32_t rank = cleval_nn_input_rank(nn);
    const uint64_t *model = cleval_nn_input_shape(nn);
    for (uint32_t d = 0; d < rank; d++)
        shape[d] = nhwc ? model[d + 1 < rank ? d + 1 : 0] : model[d];
}

/* Checks the test samples can feed network nn (element type and sample shape), failing with
 * one line naming what the model wants and what the file has; then sets nn's feed type and
 * *read to the type the samples are read as. */
static cleval_status check_feed(const cleval_eval_job *job, const engine_test_stream *test,
                                cleval_nn *nn, cleval_elem_type *read)
{
    int32_t model_type = cleval_nn_input_type(nn);
    eval_feed feed;
    bool type_ok = choose_feed(model_type, test->x, &feed);
    uint64_t want[CLEVAL_MAX_RANK];
    uint32_t rank = cleval_nn_input_rank(nn);
    file_shape_wanted(nn, job->input.nhwc, want);
    uint32_t got_rank = cleval_column_row_rank(test->x);
    const uint64_t *got = cleval_column_row_shape(test->x);
    bool shape_ok = got_rank == rank;
    for (uint32_t d = 0; shape_ok && d < rank; d++)
        shape_ok = got[d] == want[d];
    if (!type_ok || !shape_ok) {
        char wanted[160], has[160], layout[256] = "";
        engine_format_shape(wanted, sizeof wanted, rank, cleval_nn_input_shape(nn));
        engine_format_shape(has, sizeof has, got_rank, got);
        if (job->input.nhwc) {
            char nhwc[160];
            engine_format_shape(nhwc, sizeof nhwc, rank, want);
            snprintf(layout, sizeof layout, " (channels-last %s with --input-layout nhwc)", nhwc);
        }
        return cleval_fail(
            CLEVAL_ERR_INPUT, "model %s input '%s' wants %s %s%s; --data %s dataset '%s' is %s %s",
            job->model_path, cleval_nn_graph_input_name(nn, 0), cleval_onnx_dtype_name(model_type),
            wanted, layout, cleval_dataset_path(test->ds), cleval_column_name(test->x),
            cleval_column_type_name(test->x), has);
    }
    *read = feed.read;
    return cleval_nn_set_feed_type(nn, feed.onnx);
}

/* int8: the activation ranges of the fp32 network (on the first device, with the same prune
 * and preprocessing) over the first job->calibration samples of the test file, read in chunks.
 * Checks the samples first, as the run itself does. */
static cleval_status calibrate(const cleval_eval_job *job, const cleval_onnx_model *model,
                               engine_test_stream *test, cleval_nn_calibration **out)
{
    cleval_nn_options options = {
        .precision = CLEVAL_NN_FP32, .prune = job->prune, .input = job->input};
    cleval_nn *nn = NULL;
    void *x = NULL;
    cleval_elem_type read = CLEVAL_ELEM_F32;
    cleval_status status = cleval_nn_create_with(job->run.devices[0], model, &options, &nn);
    if (status != CLEVAL_OK) return status;
    status = check_feed(job, test, nn, &read);
    uint64_t want = job->calibration ? job->calibration : CLEVAL_DEFAULT_CALIBRATION;
    uint64_t n = want < test->n ? want : test->n, size = cleval_nn_input_size(nn);
    uint64_t chunk = 64;
    if (status == CLEVAL_OK &&
        !(x = malloc((size_t)(chunk * size) * cleval_column_elem_size(read))))
        status = cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory reading calibration samples",
                             job->test.data_path);
    for (uint64_t row = 0; status == CLEVAL_OK && row < n; row += chunk) {
        uint32_t count = (uint32_t)(n - row < chunk ? n - row : chunk);
        status = cleval_column_read_as(test->x, row, count, read, x);
        if (status == CLEVAL_OK) status = cleval_nn_calibrate(nn, x, count, out);
    }
    free(x);
    cleval_nn_destroy(nn);
    return status;
}

static cleval_status parse_precision(const char *name, cleval_nn_precision *out)
{
    static const cleval_nn_precision all[] = {CLEVAL_NN_FP32, CLEVAL_NN_FP16, CLEVAL_NN_INT8};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (strcmp(name, cleval_nn_precision_name(all[i])) == 0) {
            *out = all[i];
            return CLEVAL_OK;
        }
    return cleval_fail(CLEVAL_ERR_USAGE, "--precision: '%s' is not one of fp32, fp16, int8", name);
}

/* fp16's arithmetic from job->arithmetic; "auto" becomes half only where every device of the
 * run has cl_khr_fp16, so that all of them compute alike (the CLI settles it across MPI ranks
 * beforehand). Other precisions: float. */
static cleval_status choose_arithmetic(const cleval_eval_job *job, cleval_nn_options *options)
{
    const char *name = job->arithmetic ? job->arithmetic : "auto";
    options->arithmetic = CLEVAL_NN_ARITH_AUTO;
    if (strcmp(name, "half") == 0)
        options->arithmetic = CLEVAL_NN_ARITH_HALF;
    else if (strcmp(name, "float") == 0)
        options->arithmetic = CLEVAL_NN_ARITH_FLOAT;
    else if (strcmp(name, "auto") != 0)
        return cleval_fail(CLEVAL_ERR_USAGE,
                           "--fp16-arithmetic: '%s' is not one of auto, half, float", name);
    if (options->precision != CLEVAL_NN_FP16) {
        options->arithmetic = CLEVAL_NN_ARITH_AUTO;
        return CLEVAL_OK;
    }
    if (options->arithmetic != CLEVAL_NN_ARITH_AUTO) return CLEVAL_OK;
    bool all_half = true;
    for (uint32_t d = 0; d < job->run.n_devices; d++)
        all_half = all_half && cleval_device_get_info(job->run.devices[d])->has_fp16;
    options->arithmetic = all_half ? CLEVAL_NN_ARITH_HALF : CLEVAL_NN_ARITH_FLOAT;
    return CLEVAL_OK;
}

/* The options checked, the model loaded, the test set opened and (int8) calibrated, and one
 * network per device checked against the test samples; the model's host copy of the weights
 * goes once the networks hold what they need. */
static cleval_status load_networks(const cleval_eval_job *job, const char *precision,
                                   engine_test_stream *test, eval_model *models, void **model_ptrs,
                                   cleval_nn_calibration **calibration, cleval_elem_type *read,
                                   cleval_eval_outcome *out)
{
    const cleval_run_options *run = &job->run;
    cleval_nn_options options = {.prune = job->prune, .input = job->input};
    cleval_onnx_model *model = NULL;
    cleval_status status = parse_precision(precision, &options.precision);
    if (status == CLEVAL_OK) status = choose_arithmetic(job, &options);
    if (status == CLEVAL_OK && !(job->prune >= 0.0 && job->prune < 1.0))
        status = cleval_fail(CLEVAL_ERR_USAGE, "--prune: %g is not in [0, 1)", job->prune);
    if (status == CLEVAL_OK) status = cleval_onnx_load(job->model_path, &model);
    if (status == CLEVAL_OK) status = engine_open_test_set(&job->test, run->max_classes, test);
    if (status == CLEVAL_OK && options.precision == CLEVAL_NN_INT8) {
        status = calibrate(job, model, test, calibration);
        options.calibration = *calibration;
    }
    for (uint32_t d = 0; status == CLEVAL_OK && d < run->n_devices; d++) {
        models[d].dev = run->devices[d];
        models[d].first_nonfinite = UINT64_MAX;
        model_ptrs[d] = &models[d];
        status = cleval_nn_create_with(run->devices[d], model, &options, &models[d].nn);
        if (status == CLEVAL_OK) status = check_feed(job, test, models[d].nn, read);
        if (status == CLEVAL_OK && job->profile)
            status = cleval_nn_set_profiling(models[d].nn, true);
    }
    if (status == CLEVAL_OK) out->opset = model->opset;
    cleval_onnx_free(model);
    return status;
}

/* The largest batch every device's network takes, at most the job's batch. */
static uint64_t batch_size(const cleval_eval_job *job, const eval_model *models)
{
    uint32_t max_batch = UINT32_MAX;
    for (uint32_t d = 0; d < job->run.n_devices; d++) {
        uint32_t b = cleval_nn_max_batch(models[d].nn);
        max_batch = b < max_batch ? b : max_batch;
    }
    uint64_t batch = job->test.batch ? job->test.batch : CLEVAL_DEFAULT_EVAL_BATCH;
    return batch < max_batch ? batch : max_batch;
}

/* What a prediction file ("model") and a part file (part_attributes) say about the model. */
typedef struct model_texts {
    char description[CLEVAL_PATH_TEXT_SIZE];
    char opset[32], shape[160], prune[32], samples[32], size[32];
    const char *part_attributes[17]; /* name, value pairs, NULL-terminated */
} model_texts;

static void describe_model(const cleval_eval_job *job, const char *precision,
                           const cleval_eval_outcome *out, model_texts *t)
{
    const cleval_nn_model_info *info = &out->model_info;
    snprintf(t->description, sizeof t->description, "ONNX %s (opset %lld), %s", job->model_path,
             (long long)out->opset, precision);
    snprintf(t->prune, sizeof t->prune, "%.17g", info->prune);
    snprintf(t->samples, sizeof t->samples, "%u", info->calibration_samples);
    snprintf(t->size, sizeof t->size, "%llu", (unsigned long long)info->size_bytes);
    snprintf(t->opset, sizeof t->opset, "%lld", (long long)out->opset);
    t->shape[0] = '\0';
    for (uint32_t d = 0; d < out->input_rank; d++)
        snprintf(t->shape + strlen(t->shape), sizeof t->shape - strlen(t->shape), "%s%llu",
                 d ? "," : "", (unsigned long long)out->input_shape[d]);
    const char *const pairs[] = {"eval_model",
                                 job->model_path,
                                 "eval_precision",
                                 precision,
                                 "eval_arithmetic",
                                 info->half_arithmetic ? "half" : "float",
                                 "eval_prune",
                                 t->prune,
                                 "eval_calibration_samples",
                                 t->samples,
                                 "eval_model_size_bytes",
                                 t->size,
                                 "eval_opset",
                                 t->opset,
                                 "eval_input_shape",
                                 t->shape,
                                 NULL};
    _Static_assert(sizeof pairs == sizeof t->part_attributes, "every pair has its place");
    memcpy(t->part_attributes, pairs, sizeof pairs);
}

/* The largest peak of device memory over the devices' networks. */
static void peak_device_memory(const eval_model *models, uint32_t n_devices,
                               cleval_eval_outcome *out)
{
    for (uint32_t d = 0; d < n_devices; d++) {
        cleval_nn_device_memory memory;
        cleval_nn_device_memory_get(models[d].nn, &memory);
        if (d == 0 || memory.peak_bytes > out->device_memory.peak_bytes)
            out->device_memory = memory;
    }
}

cleval_status cleval_engine_eval(const cleval_eval_job *job, cleval_eval_outcome *out)
{
    memset(out, 0, sizeof *out);
    const cleval_run_options *run = &job->run;
    double start = cleval_seconds();
    engine_test_stream test = {0};
    /* One more, zeroed, ends the list for read_nonfinite(). */
    eval_model *models = calloc(run->n_devices + 1, sizeof *models);
    void **model_ptrs = calloc(run->n_devices, sizeof *model_ptrs);
    cleval_status status =
        models && model_ptrs
            ? CLEVAL_OK
            : cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory loading the model", job->model_path);
    const char *precision = job->precision ? job->precision : "fp32";
    cleval_elem_type read = CLEVAL_ELEM_F32;
    cleval_nn_calibration *calibration = NULL;
    if (status == CLEVAL_OK)
        status = load_networks(job, precision, &test, models, model_ptrs, &calibration, &read, out);
    if (status != CLEVAL_OK) goto done;
    cleval_nn_model_info_get(models[0].nn, &out->model_info);
    out->input_rank = cleval_nn_input_rank(models[0].nn);
    memcpy(out->input_shape, cleval_nn_input_shape(models[0].nn),
           out->input_rank * sizeof *out->input_shape);
    char what[CLEVAL_PATH_TEXT_SIZE];
    snprintf(what, sizeof what, "the model %s", job->model_path);
    uint32_t n_classes = cleval_nn_output_width(models[0].nn);
    if ((status = cleval_check_class_count(what, n_classes, run->max_classes))) goto done;
    uint64_t batch = batch_size(job, models);
    out->load_s = cleval_seconds() - start;

    model_texts texts;
    describe_model(job, precision, out, &texts);
    engine_counters counters = {
        .count = 1, .names = {"eval_nonfinite_scores"}, .read = read_nonfinite, .user = models};
    nonfinite_check check = {job, models, &counters};
    engine_run_spec spec = {.command = "eval",
                            .data = test.ds,
                            .x = test.x,
                            .x_type = read,
                            .labels = test.y,
                            .n_classes = n_classes,
                            .classes_from = what,
                            .batch = (uint32_t)batch,
                            .with_scores = job->test.save_path != NULL || job->run.sink,
                            .score_metrics = true,
                            .top_k = job->test.top_k,
                            .errors = job->test.errors,
                            .auc = job->test.auc,
                            .models = model_ptrs,
                            .ops = {.predict = predict,
                                    .finish = finish,
                                    .scores_on_device = true,
                                    .count_into = count_into},
                            .model_description = texts.description,
                            .save_path = job->test.save_path,
                            .part_attributes = texts.part_attributes,
                            .counters = &counters,
                            .accept = accept_scores,
                            .accept_user = &check};
    status = engine_run(&spec, run, &out->predict);
    if (status == CLEVAL_OK) {
        uint64_t count[ENGINE_MAX_COUNTERS] = {0};
        read_nonfinite(models, count);
        out->nonfinite_scores = count[0] + counters.restored[0];
        peak_device_memory(models, run->n_devices, out);
    }
    if (status == CLEVAL_OK && job->profile)
        status = collect_layers(job->model_path, models, run->n_devices, out);

done:
    for (uint32_t d = 0; models && d < run->n_devices; d++) {
        cleval_nn_destroy(models[d].nn);
        for (uint32_t r = 0; r < PIPELINE_IN_FLIGHT; r++)
            free(models[d].row_nonfinite[r]);
    }
    free(models);
    free(model_ptrs);
    cleval_nn_calibration_free(calibration);
    engine_close_test_set(&test);
    if (status != CLEVAL_OK) cleval_eval_outcome_free(out);
    return status;
}
