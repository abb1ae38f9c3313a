/* `cleval eval`: the ONNX network on one runner per device, streaming the test set through
 * engine_run(). */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/onnx.h"

/* One device's runner. */
typedef struct eval_model {
    cleval_nn *nn;
    cleval_device *dev;
} eval_model;

static cleval_status predict(void *model, pipeline_slot *slot, cl_mem *pred)
{
    eval_model *m = model;
    cleval_status status = cleval_nn_run(m->nn, slot->x, slot->n, slot->scores);
    if (status != CLEVAL_OK) return status;
    *pred = cleval_nn_pred_buffer(m->nn);
    /* The pipeline keeps the host predictions too (for --save and its own bookkeeping). */
    return cleval_cl_check(clEnqueueReadBuffer(cleval_device_queue(m->dev), *pred,
                                               CL_TRUE, 0, slot->n * sizeof(int32_t), slot->pred,
                                               0, NULL, NULL),
                           "clEnqueueReadBuffer(predictions)");
}

void cleval_eval_outcome_free(cleval_eval_outcome *out)
{
    cleval_predict_outcome_free(&out->predict);
    free(out->layers);
    out->layers = NULL;
    out->n_layers = 0;
}

/* The per-layer table, summed over the devices' runners. */
static cleval_status collect_layers(const eval_model *models, uint32_t count,
                                    cleval_eval_outcome *out)
{
    uint32_t n = cleval_nn_layer_count(models[0].nn);
    out->layers = calloc(n ? n : 1, sizeof *out->layers);
    if (!out->layers) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for the layer table");
    out->n_layers = n;
    for (uint32_t i = 0; i < n; i++) {
        const cleval_nn_layer *layer = cleval_nn_layer_at(models[0].nn, i);
        cleval_eval_layer *row = &out->layers[i];
        snprintf(row->name, sizeof row->name, "%s", layer->name);
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

cleval_status cleval_engine_eval(const cleval_eval_job *job, cleval_eval_outcome *out)
{
    memset(out, 0, sizeof *out);
    const cleval_run_options *run = &job->run;
    double start = cleval_seconds();
    cleval_onnx_model *model = NULL;
    engine_test_stream test = {0};
    eval_model *models = calloc(run->n_devices, sizeof *models);
    void **model_ptrs = calloc(run->n_devices, sizeof *model_ptrs);
    cleval_status status = models && model_ptrs ? CLEVAL_OK
                                                : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory");
    const char *precision = job->precision ? job->precision : "fp32";
    if (status == CLEVAL_OK && strcmp(precision, "fp32") != 0)
        status = cleval_fail(CLEVAL_ERR_UNSUPPORTED, "--precision %s: not available yet (fp32 only)",
                             precision);
    if (status == CLEVAL_OK) status = cleval_onnx_load(job->model_path, &model);
    if (status == CLEVAL_OK) status = engine_open_test_set(&job->test, &test);
    for (uint32_t d = 0; status == CLEVAL_OK && d < run->n_devices; d++) {
        models[d].dev = run->devices[d];
        model_ptrs[d] = &models[d];
        status = cleval_nn_create(run->devices[d], model, &models[d].nn);
        if (status == CLEVAL_OK && job->profile)
            status = cleval_nn_set_profiling(models[d].nn, true);
    }
    if (status != CLEVAL_OK) goto done;
    out->opset = model->opset;
    out->input_rank = cleval_nn_input_rank(models[0].nn);
    memcpy(out->input_shape, cleval_nn_input_shape(models[0].nn),
           out->input_rank * sizeof *out->input_shape);
    char what[4200];
    snprintf(what, sizeof what, "the model %s", job->model_path);
    if ((status = engine_check_sample_shape(&test, out->input_rank, out->input_shape, what)))
        goto done;
    uint32_t n_classes = cleval_nn_output_width(models[0].nn);
    uint32_t max_batch = UINT32_MAX;
    for (uint32_t d = 0; d < run->n_devices; d++) {
        uint32_t b = cleval_nn_max_batch(models[d].nn);
        max_batch = b < max_batch ? b : max_batch;
    }
    uint64_t batch = job->test.batch ? job->test.batch : CLEVAL_DEFAULT_EVAL_BATCH;
    batch = batch < max_batch ? batch : max_batch;
    out->load_s = cleval_seconds() - start;

    char description[4200];
    snprintf(description, sizeof description, "ONNX %s (opset %lld), fp32", job->model_path,
             (long long)model->opset);
    char opset[32], shape[160] = "";
    snprintf(opset, sizeof opset, "%lld", (long long)model->opset);
    for (uint32_t d = 0; d < out->input_rank; d++)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%llu", d ? "," : "",
                 (unsigned long long)out->input_shape[d]);
    const char *const part_attributes[] = {"eval_model", job->model_path, "eval_precision", "fp32",
                                           "eval_opset", opset, "eval_input_shape", shape, NULL};
    engine_run_spec spec = {.command = "eval",
                            .data = test.ds,
                            .x = test.x,
                            .labels = test.y,
                            .n_classes = n_classes,
                            .batch = (uint32_t)batch,
                            .with_scores = job->test.save_path != NULL,
                            .models = model_ptrs,
                            .ops = {predict},
                            .model_description = description,
                            .save_path = job->test.save_path,
                            .part_attributes = part_attributes};
    status = engine_run(&spec, run, &out->predict);
    if (status == CLEVAL_OK && job->profile) status = collect_layers(models, run->n_devices, out);

done:
    for (uint32_t d = 0; models && d < run->n_devices; d++)
        cleval_nn_destroy(models[d].nn);
    free(models);
    free(model_ptrs);
    engine_close_test_set(&test);
    cleval_onnx_free(model);
    if (status != CLEVAL_OK) cleval_eval_outcome_free(out);
    return status;
}
