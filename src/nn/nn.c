/* The public side of the nn module: create (build, optimise, validate, prepare), run a
 * classifier batch or a general graph, profiling, and the kernel launch helpers the op files
 * share. */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- launch helpers ---- */

size_t nn_local_1d(const cleval_nn *nn)
{
    return nn->tuning.local_1d;
}

size_t nn_local_rows(const cleval_nn *nn, uint64_t rows)
{
    size_t local = 1;
    while (2 * local <= nn->tuning.local_1d && 2 * local * 8 <= rows)
        local *= 2;
    return local;
}

static cleval_status grow_events(cleval_nn *nn)
{
    if (nn->n_events < nn->cap_events) return CLEVAL_OK;
    uint32_t cap = nn->cap_events ? 2 * nn->cap_events : 64;
    cl_event *events = realloc(nn->events, cap * sizeof *events);
    if (!events) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory profiling");
    nn->events = events;
    int *owners = realloc(nn->event_op, cap * sizeof *owners);
    if (!owners) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory profiling");
    nn->event_op = owners;
    nn->cap_events = cap;
    return CLEVAL_OK;
}

cleval_status nn_enqueue(cleval_nn *nn, nn_op *op, const cleval_kernel_args *a, cl_uint dims,
                         const size_t *global, const size_t *local)
{
    cleval_status status = nn->profiling ? grow_events(nn) : CLEVAL_OK;
    if (status != CLEVAL_OK) return status;
    cl_event event = NULL;
    status = cleval_kernel_launch(nn->queue, a, dims, global, local, nn->profiling ? &event : NULL);
    if (status != CLEVAL_OK) {
        char message[512];
        snprintf(message, sizeof message, "%s", cleval_last_error());
        if (!op) return cleval_fail(status, "%s: %s", nn->path, message);
        return nn_fail_op(nn, op, status, "%s", message);
    }
    if (event) {
        nn->events[nn->n_events] = event;
        nn->event_op[nn->n_events++] = op ? (int)(op - nn->ops) : -1;
    }
    return CLEVAL_OK;
}

cleval_status nn_kernel(cleval_nn *nn, nn_op *op, const char *program, const char *options,
                        const char *kernel, cl_kernel *out)
{
    char all[1024];
    snprintf(all, sizeof all, "%s%s", options ? options : "",
             nn->half_math ? " -DHALF_MATH=1" : "");
    cleval_status status = cleval_device_kernel(nn->dev, program, all, kernel, out);
    if (status == CLEVAL_OK && op)
        cleval_log(CLEVAL_LOG_INFO, "node '%s' (%s): %s [%s]", op->name, op->label, kernel, all);
    return status;
}

cleval_status nn_storage_kernel(cleval_nn *nn, nn_op *op, const char *program, const char *kernel)
{
    char options[64];
    nn_storage_options(nn, op->in[0], op->out[0], options, sizeof options);
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "%s", kernel);
    return nn_kernel(nn, op, program, options, kernel, &op->k[0]);
}

/* ---- create ---- */

/* Sets the classifier input to n samples. */
static void set_batch(cleval_nn *nn, uint32_t n)
{
    nn_value *in = &nn->values[nn->inputs[0]];
    in->shape.rank = nn->sample_rank + 1;
    in->shape.d[0] = n;
    for (uint32_t i = 0; i < nn->sample_rank; i++)
        in->shape.d[1 + i] = (int64_t)nn->sample_shape[i];
    in->count = (uint64_t)n * nn->sample_size;
    in->batch_axis = 0;
    in->batch_inner = 1;
    nn->shapes_valid = false;
}

/* The bytes every buffer needs at the current shapes: values, then workspaces. */
static void sizes_now(const cleval_nn *nn, uint64_t *value_bytes, uint64_t *workspace_bytes)
{
    for (uint32_t v = 0; v < nn->n_values; v++)
        value_bytes[v] = nn->values[v].kind == NN_VALUE_CONST || nn->values[v].kind == NN_VALUE_HOST
                             ? 0
                             : nn->values[v].count * nn_value_elem_bytes(nn, (int)v);
    for (uint32_t i = 0; i < nn->n_ops; i++)
        workspace_bytes[i] = nn->ops[i].dead ? 0 : nn->ops[i].workspace;
}

/* The most bytes buffer i (values, then workspaces, as sizes_now) may take: the device's
 * largest allocation, and NN_MAX_ELEMENTS elements because kernels index with int. Elements
 * are 4 bytes, 2 for half values, 1 for int8 layers' codes; an fp16 network's workspaces count
 * 2 (its zero-bordered copies are half; its float ones are then limited below the int range). */
static uint64_t buffer_limit(const cleval_nn *nn, uint32_t i, uint64_t max_alloc)
{
    uint64_t element = i < nn->n_values                  ? nn_value_elem_bytes(nn, (int)i)
                       : nn->ops[i - nn->n_values].int8  ? 1
                       : nn->precision == CLEVAL_NN_FP16 ? 2
                                                         : 4;
    uint64_t elements = (uint64_t)NN_MAX_ELEMENTS * element;
    return max_alloc < elements ? max_alloc : elements;
}

/* The first varying input's batch axis (for messages), 0 when none is known. */
static int input_batch_axis(cleval_nn *nn, const nn_op *op)
{
    for (uint32_t i = 0; i < op->n_in; i++)
        if (nn_has_in(op, i) && nn_batch_axis(nn_in(nn, op, i)) >= 0)
            return nn_batch_axis(nn_in(nn, op, i));
    return 0;
}

/* At a batch of 2 (batch axes tracked from the batch-1 shapes): no op mixes samples, and every
 * varying value that is used has one batch axis, the others fixed. */
static cleval_status check_batch_axes(cleval_nn *nn)
{
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead) continue;
        if (op->mixes_batch)
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                              "combines samples across the batch axis (axis %d); cleval "
                              "evaluates samples independently",
                              input_batch_axis(nn, op));
        for (uint32_t o = 0; o < op->n_out; o++) {
            if (op->out[o] < 0) continue;
            nn_value *v = nn_out(nn, op, o);
            if (!v->varying || (!v->uses && !v->is_output) || v->batch_axis >= 0) continue;
            char shape[160];
            nn_shape_format(&v->shape, shape, sizeof shape);
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                              "output '%s' has shape %s for a batch of 2: the batch must stay "
                              "on one axis with a fixed per-sample shape",
                              v->name, shape);
        }
    }
    return CLEVAL_OK;
}

/* The classifier's output is [N, C] with the samples as rows (at a batch of 2). */
static cleval_status check_output(cleval_nn *nn)
{
    const nn_value *out = &nn->values[nn->outputs[0]];
    if (out->shape.rank == 2 && out->shape.d[0] == 2 && out->batch_axis == 0 &&
        out->batch_inner == 1 && out->shape.d[1] >= 1 && out->shape.d[1] <= INT32_MAX &&
        out->varying)
        return CLEVAL_OK;
    char shape[160];
    nn_shape_format(&out->shape, shape, sizeof shape);
    if (out->producer < 0)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                           "%s: output '%s' has shape %s; a classifier outputs [N, C]", nn->path,
                           out->name, shape);
    return nn_fail_op(nn, &nn->ops[out->producer], CLEVAL_ERR_UNSUPPORTED,
                      "output '%s' has shape %s for a batch of 2; a classifier outputs [N, C] "
                      "with one sample per row",
                      out->name, shape);
}

/* Classifier checks at batches of 1 and 2: the batch axes and the output (above). Also derives
 * the largest batch whose buffers fit the device. */
static cleval_status validate_classifier(cleval_nn *nn)
{
    uint64_t *b1 = calloc(nn->n_values + nn->n_ops + 1, sizeof *b1);
    uint64_t *b2 = calloc(nn->n_values + nn->n_ops + 1, sizeof *b2);
    nn_shape *s1 = calloc(nn->n_values + 1, sizeof *s1);
    cleval_status status = CLEVAL_OK;
    if (!b1 || !b2 || !s1) {
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory validating the graph");
        goto done;
    }
    set_batch(nn, 1);
    if ((status = nn_infer_all(nn)) != CLEVAL_OK) goto done;
    sizes_now(nn, b1, b1 + nn->n_values);
    for (uint32_t v = 0; v < nn->n_values; v++)
        s1[v] = nn->values[v].shape;
    set_batch(nn, 2);
    nn->batch_ref = s1;
    status = nn_infer_all(nn);
    nn->batch_ref = NULL;
    if (status != CLEVAL_OK || (status = check_batch_axes(nn)) != CLEVAL_OK ||
        (status = check_output(nn)) != CLEVAL_OK)
        goto done;
    sizes_now(nn, b2, b2 + nn->n_values);
    const nn_value *out = &nn->values[nn->outputs[0]];
    nn->width = (uint32_t)out->shape.d[1];
    /* Sizes grow linearly with the batch: bytes(n) = fixed + n * per_sample. */
    uint64_t max_alloc = cleval_device_get_info(nn->dev)->max_alloc_bytes;
    uint64_t best = UINT32_MAX;
    for (uint32_t i = 0; i < nn->n_values + nn->n_ops; i++) {
        if (b2[i] <= b1[i]) continue;
        uint64_t limit = buffer_limit(nn, i, max_alloc);
        uint64_t per = b2[i] - b1[i], fixed = b1[i] - per;
        uint64_t fit = b1[i] > limit ? 0 : (limit - fixed) / per;
        if (fit < best) best = fit;
    }
    nn->max_batch = (uint32_t)(best > UINT32_MAX ? UINT32_MAX : best);
    if (nn->max_batch == 0)
        status = cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                             "%s: one sample needs more memory than the device's largest buffer",
                             nn->path);
done:
    free(b1);
    free(b2);
    free(s1);
    return status;
}

static cleval_status check_classifier_io(cleval_nn *nn, const cleval_onnx_model *model)
{
    if (nn->n_inputs != 1)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                           "%s: the graph has %u inputs besides its initializers; a classifier "
                           "has exactly one",
                           nn->path, nn->n_inputs);
    if (nn->n_outputs != 1)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                           "%s: the graph has %u outputs; a classifier has exactly one", nn->path,
                           nn->n_outputs);
    const nn_value *in = &nn->values[nn->inputs[0]];
    if (in->shape.rank == UINT32_MAX || in->shape.rank < 1)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                           "%s: graph input '%s' has no shape with a batch axis", nn->path,
                           in->name);
    nn->sample_rank = in->shape.rank - 1;
    nn->sample_size = 1;
    for (uint32_t i = 0; i < nn->sample_rank; i++) {
        int64_t d = in->shape.d[1 + i];
        if (d < 1)
            return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                               "%s: graph input '%s' has a dynamic or empty axis %u; only the "
                               "batch axis may vary",
                               nn->path, in->name, 1 + i);
        nn->sample_shape[i] = (uint64_t)d;
        nn->sample_size *= (uint64_t)d;
        if (nn->sample_size > (uint64_t)NN_MAX_ELEMENTS)
            return cleval_fail(CLEVAL_ERR_UNSUPPORTED, "%s: graph input '%s' is too large",
                               nn->path, in->name);
    }
    (void)model;
    return CLEVAL_OK;
}

/* Per value: whether a live host op reads it. NULL when out of memory. */
static bool *host_operands(const cleval_nn *nn)
{
    bool *read = calloc(nn->n_values ? nn->n_values : 1, sizeof *read);
    for (uint32_t i = 0; i < nn->n_ops && read; i++) {
        const nn_op *op = &nn->ops[i];
        if (op->dead || !op->host) continue;
        for (uint32_t j = 0; j < op->n_in; j++)
            if (op->in[j] >= 0) read[op->in[j]] = true;
    }
    return read;
}

/* Float constants a kernel reads as they are (data inputs of every op, and the other inputs of
 * the ops that do not pack them). */
static cleval_status upload_operands(cleval_nn *nn, nn_op *op)
{
    bool packs = op->kind == &nn_kind_conv || op->kind == &nn_kind_gemm ||
                 op->kind == &nn_kind_matmul || op->kind == &nn_kind_batchnorm ||
                 op->kind == &nn_kind_lstm || op->kind == &nn_kind_gru;
    for (uint32_t j = 0; j < op->n_in; j++) {
        if (op->in[j] < 0 || (packs && j > 0)) continue;
        nn_value *v = &nn->values[op->in[j]];
        if (v->kind != NN_VALUE_CONST || !v->f32) continue;
        cl_mem unused;
        cleval_status status = nn_const_mem(nn, op->in[j], &unused);
        if (status != CLEVAL_OK) return status;
    }
    return CLEVAL_OK;
}

/* Host copies of float constants are needed only until the ops reading them are prepared
 * (uploaded or packed) and a graph output is copied from the host: each is freed once its last
 * reader is prepared, so that a large model never holds its weights on the host twice over
 * (the float copies and the packed ones of every layer) while the rest is prepared. */
static bool host_copy_needed(const nn_value *v, uint32_t readers_left, bool host_read)
{
    return v->kind != NN_VALUE_CONST || v->is_output || readers_left > 0 || host_read;
}

/* Readers of each value among the ops that are prepared (live ones); malloc'd, NULL when out
 * of memory. */
static uint32_t *count_readers(const cleval_nn *nn)
{
    uint32_t *readers = calloc(nn->n_values + 1, sizeof *readers);
    for (uint32_t i = 0; readers && i < nn->n_ops; i++) {
        const nn_op *op = &nn->ops[i];
        if (op->dead) continue;
        for (uint32_t j = 0; j < op->n_in; j++)
            if (op->in[j] >= 0) readers[op->in[j]]++;
    }
    return readers;
}

/* Adds where a tuned layer's values came from to its kernel description (--profile). */
static void describe_tuning(nn_op *op)
{
    size_t used = strlen(op->kernel_desc);
    snprintf(op->kernel_desc + used, sizeof op->kernel_desc - used, " [tuning: %s]",
             nn_tuning_source_name(op->tuning_source));
}

/* Prepares every live op (device state, packed weights) in order, freeing each constant's host
 * copy after its last reader. */
static cleval_status prepare_ops(cleval_nn *nn)
{
    uint32_t *readers = count_readers(nn);
    /* Host ops evaluate again at each batch size: the constants they read stay on the host. */
    bool *host_read = host_operands(nn);
    if (!readers || !host_read) {
        free(readers);
        free(host_read);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory creating a network");
    }
    cleval_status status = CLEVAL_OK;
    for (uint32_t i = 0; i < nn->n_ops && status == CLEVAL_OK; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead) continue;
        nn_use_tuning(nn, op);
        if ((status = upload_operands(nn, op)) == CLEVAL_OK) status = op->kind->prepare(nn, op);
        if (status == CLEVAL_OK && op->tuned) describe_tuning(op);
        for (uint32_t j = 0; j < op->n_in && status == CLEVAL_OK; j++) {
            int v = op->in[j];
            if (v >= 0 && !host_copy_needed(&nn->values[v], --readers[v], host_read[v]))
                nn_drop_f32(&nn->values[v]);
        }
    }
    nn_use_tuning(nn, NULL);
    /* Constants no op reads; outputs copied, as the model may go after create. */
    for (uint32_t v = 0; v < nn->n_values && status == CLEVAL_OK; v++) {
        if (!host_copy_needed(&nn->values[v], 0, host_read[v]))
            nn_drop_f32(&nn->values[v]);
        else
            status = nn_own_f32(nn, &nn->values[v]);
    }
    free(readers);
    free(host_read);
    return status;
}

static bool static_inputs(const cleval_nn *nn)
{
    for (uint32_t i = 0; i < nn->n_inputs; i++) {
        const nn_value *v = &nn->values[nn->inputs[i]];
        if (v->shape.rank == UINT32_MAX) return false;
        for (uint32_t d = 0; d < v->shape.rank; d++)
            if (v->shape.d[d] < 0) return false;
    }
    return true;
}

/* Whether an fp16 network computes in half (cleval_nn_arithmetic). */
static cleval_status choose_arithmetic(cleval_nn *nn, cleval_nn_arithmetic arithmetic)
{
    const cleval_device_info *info = cleval_device_get_info(nn->dev);
    if (arithmetic == CLEVAL_NN_ARITH_AUTO) {
        nn->half_math = nn->precision == CLEVAL_NN_FP16 && info->has_fp16;
        return CLEVAL_OK;
    }
    if (arithmetic != CLEVAL_NN_ARITH_FLOAT && arithmetic != CLEVAL_NN_ARITH_HALF)
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: unknown arithmetic %d", nn->path,
                           (int)arithmetic);
    if (nn->precision != CLEVAL_NN_FP16)
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: the arithmetic is chosen for fp16 only, not %s",
                           nn->path, cleval_nn_precision_name(nn->precision));
    if (arithmetic == CLEVAL_NN_ARITH_HALF && !info->has_fp16)
        return cleval_fail(CLEVAL_ERR_USAGE,
                           "%s: half arithmetic needs cl_khr_fp16, which device %u (%s) lacks",
                           nn->path, info->index, info->name);
    nn->half_math = arithmetic == CLEVAL_NN_ARITH_HALF;
    return CLEVAL_OK;
}

/* int8: the layers that run on int8 kernels, with their input scales from the calibration. */
static cleval_status choose_int8(cleval_nn *nn, const cleval_nn_calibration *calibration)
{
    uint32_t layers = 0;
    for (uint32_t i = 0; i < nn->n_ops; i++)
        layers += nn->ops[i].quantisable;
    if (layers != calibration->n_layers)
        return cleval_fail(CLEVAL_ERR_USAGE,
                           "%s: the calibration covers %u quantisable layers, this network has %u "
                           "(another model or prune?)",
                           nn->path, calibration->n_layers, layers);
    for (uint32_t i = 0, l = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (!op->quantisable) continue;
        op->int8 = true;
        op->x_scale = nn_activation_scale(calibration->max_abs[l++]);
    }
    return CLEVAL_OK;
}

cleval_status cleval_nn_create_with(cleval_device *dev, const cleval_onnx_model *model,
                                    const cleval_nn_options *options, cleval_nn **out)
{
    *out = NULL;
    if (!dev || !model)
        return cleval_fail(CLEVAL_ERR_USAGE, "cleval_nn_create: no device or model");
    cleval_nn_precision precision = options ? options->precision : CLEVAL_NN_FP32;
    double prune = options ? options->prune : 0.0;
    const cleval_nn_calibration *calibration = options ? options->calibration : NULL;
    if (precision != CLEVAL_NN_FP32 && precision != CLEVAL_NN_FP16 && precision != CLEVAL_NN_INT8)
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: unknown precision %d", model->path,
                           (int)precision);
    if (!(prune >= 0.0 && prune < 1.0))
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: prune %g is outside [0, 1)", model->path, prune);
    if (precision == CLEVAL_NN_INT8 && (options->general || !calibration))
        return cleval_fail(CLEVAL_ERR_USAGE,
                           options->general ? "%s: int8 runs classifiers only"
                                            : "%s: int8 needs a calibration (cleval_nn_calibrate)",
                           model->path);
    if (model->opset > CLEVAL_NN_MAX_OPSET)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                           "%s: opset %lld of the default domain is newer than this engine "
                           "knows (up to %d)",
                           model->path, (long long)model->opset, CLEVAL_NN_MAX_OPSET);
    cleval_nn *nn = calloc(1, sizeof *nn);
    if (!nn) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory creating a network");
    nn->dev = dev;
    nn->variant = cleval_device_variant(dev);
    nn->queue = cleval_device_queue(dev);
    nn->opset = model->opset;
    nn->general = options && options->general;
    nn->precision = precision;
    cleval_status status = nn_tuning_base(dev, nn->variant, &nn->base_tuning, &nn->base_source);
    if (status != CLEVAL_OK) goto fail;
    nn->tuning = nn->base_tuning;
    if (!(nn->path = nn_copy_string(model->path))) {
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory creating a network");
        goto fail;
    }
    if ((status = choose_arithmetic(nn, options ? options->arithmetic : CLEVAL_NN_ARITH_AUTO)) !=
        CLEVAL_OK)
        goto fail;
    if ((status = nn_build_graph(nn, model, options)) != CLEVAL_OK ||
        (status = nn_prune(nn, prune)) != CLEVAL_OK)
        goto fail;
    if (!nn->general && (status = check_classifier_io(nn, model)) != CLEVAL_OK) goto fail;
    /* Shapes first where they are known, so the rewrites can use them. */
    if (!nn->general) {
        set_batch(nn, 1);
        status = nn_infer_all(nn);
    } else if (static_inputs(nn)) {
        status = nn_infer_all(nn);
    }
    if (status != CLEVAL_OK || (status = nn_optimise(nn)) != CLEVAL_OK) goto fail;
    nn_mark_quantisable(nn);
    nn_choose_storage(nn);
    if (precision == CLEVAL_NN_INT8 && (status = choose_int8(nn, calibration)) != CLEVAL_OK)
        goto fail;
    /* Each layer's tunables, before anything sizes its work buffers: from the shapes at one
     * sample (a classifier) or the static ones, inferred again after the rewrites. */
    if (!nn->general) set_batch(nn, 1);
    if (!nn->general || static_inputs(nn)) status = nn_infer_all(nn);
    if (status != CLEVAL_OK ||
        (status = nn_tuning_assign(nn, options ? options->tuning_override : NULL)) != CLEVAL_OK)
        goto fail;
    if (!nn->general)
        status = validate_classifier(nn);
    else if (static_inputs(nn))
        status = nn_infer_all(nn);
    if (status != CLEVAL_OK ||
        (status = nn_compute_info(nn, calibration ? calibration->samples : 0, prune)) != CLEVAL_OK)
        goto fail;

    if ((status = prepare_ops(nn)) == CLEVAL_OK) status = nn_feed_init(nn, model, options);
    if (status == CLEVAL_OK && !nn->general)
        status = cleval_device_kernel(dev, "softmax", NULL, "argmax", &nn->argmax);
    if (status != CLEVAL_OK) goto fail;
    /* Profile view: the ops that launch kernels. */
    nn->layer_op = malloc((nn->n_ops + 1) * sizeof *nn->layer_op);
    nn->layers = calloc(nn->n_ops + 1, sizeof *nn->layers);
    if (!nn->layer_op || !nn->layers) {
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory creating a network");
        goto fail;
    }
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        op->prof.name = op->name;
        op->prof.op = op->label;
        op->prof.kernel = op->kernel_desc;
        if (!op->dead && !op->alias_only && !op->host) nn->layer_op[nn->n_layers++] = (int)i;
    }
    nn->shapes_valid = false;
    *out = nn;
    return CLEVAL_OK;
fail:
    cleval_nn_destroy(nn);
    return status;
}

cleval_status cleval_nn_create(cleval_device *dev, const cleval_onnx_model *model, cleval_nn **out)
{
    return cleval_nn_create_with(dev, model, NULL, out);
}

static void release_events(cleval_nn *nn)
{
    for (uint32_t i = 0; i < nn->n_events; i++)
        clReleaseEvent(nn->events[i]);
    nn->n_events = 0;
}

void cleval_nn_destroy(cleval_nn *nn)
{
    if (!nn) return;
    if (nn->queue) clFinish(nn->queue);
    release_events(nn);
    /* Kernels go in the reverse order of their creation: OpenCL drivers keep a program's
     * kernels in a list, newest first (PoCL does), and search it on release; newest first
     * keeps the release of a graph of n ops linear instead of quadratic. */
    for (uint32_t i = nn->n_ops; i-- > 0;) {
        nn_op *op = &nn->ops[i];
        for (int k = NN_MAX_KERNELS; k-- > 0;)
            if (op->k[k]) clReleaseKernel(op->k[k]);
        for (int m = 0; m < NN_MAX_BUFFERS; m++)
            if (op->mem[m]) clReleaseMemObject(op->mem[m]);
        free(op->name);
        free(op->in);
        free(op->out);
    }
    for (uint32_t v = 0; v < nn->n_values; v++) {
        nn_value *value = &nn->values[v];
        if (value->mem) clReleaseMemObject(value->mem);
        free(value->name);
        nn_drop_f32(value);
        free(value->i64);
    }
    nn_feed_release(nn);
    nn_release_plan(nn);
    if (nn->pred) clReleaseMemObject(nn->pred);
    if (nn->nonfinite) clReleaseMemObject(nn->nonfinite);
    if (nn->argmax) clReleaseKernel(nn->argmax);
    if (nn->prof_queue) clReleaseCommandQueue(nn->prof_queue);
    free(nn->events);
    free(nn->event_op);
    free(nn->layers);
    free(nn->layer_op);
    free(nn->ops);
    free(nn->values);
    free(nn->inputs);
    free(nn->outputs);
    free(nn->path);
    free(nn);
}

/* ---- accessors ---- */

bool cleval_nn_supports_op(const char *op_type)
{
    cleval_onnx_node node = {.op_type = (char *)op_type};
    return op_type && (strcmp(op_type, "Constant") == 0 || nn_find_kind(op_type) != NULL ||
                       nn_host_kind(&node, true, false) != NULL);
}

uint32_t cleval_nn_input_rank(const cleval_nn *nn)
{
    return nn->sample_rank;
}

const uint64_t *cleval_nn_input_shape(const cleval_nn *nn)
{
    return nn->sample_shape;
}

uint64_t cleval_nn_input_size(const cleval_nn *nn)
{
    return nn->sample_size;
}

uint32_t cleval_nn_output_width(const cleval_nn *nn)
{
    return nn->width;
}

uint32_t cleval_nn_max_batch(const cleval_nn *nn)
{
    return nn->max_batch;
}

cl_mem cleval_nn_pred_buffer(const cleval_nn *nn)
{
    return nn->pred;
}

cl_mem cleval_nn_nonfinite_buffer(const cleval_nn *nn)
{
    return nn->nonfinite;
}

uint32_t cleval_nn_graph_input_count(const cleval_nn *nn)
{
    return nn->n_inputs;
}

const char *cleval_nn_graph_input_name(const cleval_nn *nn, uint32_t index)
{
    return index < nn->n_inputs ? nn->values[nn->inputs[index]].name : NULL;
}

uint32_t cleval_nn_graph_output_count(const cleval_nn *nn)
{
    return nn->n_outputs;
}

const char *cleval_nn_graph_output_name(const cleval_nn *nn, uint32_t index)
{
    return index < nn->n_outputs ? nn->values[nn->outputs[index]].name : NULL;
}

/* ---- running ---- */

/* Reads the device times of this run's kernels into the per-layer totals. */
static cleval_status collect_profile(cleval_nn *nn)
{
    cleval_status status = cleval_cl_check(clFinish(nn->queue), "clFinish");
    for (uint32_t i = 0; i < nn->n_events && status == CLEVAL_OK; i++) {
        cl_ulong start = 0, end = 0;
        cl_int err = clGetEventProfilingInfo(nn->events[i], CL_PROFILING_COMMAND_START,
                                             sizeof start, &start, NULL);
        if (err == CL_SUCCESS)
            err = clGetEventProfilingInfo(nn->events[i], CL_PROFILING_COMMAND_END, sizeof end, &end,
                                          NULL);
        if ((status = cleval_cl_check(err, "clGetEventProfilingInfo")) != CLEVAL_OK) break;
        int o = nn->event_op[i];
        cleval_nn_layer *layer = o >= 0 ? &nn->ops[o].prof : &nn->layers[nn->n_layers];
        layer->seconds += (double)(end - start) * 1e-9;
    }
    release_events(nn);
    return status;
}

static cleval_status launch_all(cleval_nn *nn)
{
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead || op->alias_only || op->host) continue;
        cleval_status status = CLEVAL_OK;
        if (nn->capture && op->quantisable) status = nn_capture_input(nn, op);
        nn_use_tuning(nn, op);
        if (status == CLEVAL_OK) status = op->kind->launch(nn, op);
        nn_use_tuning(nn, NULL);
        if (status != CLEVAL_OK) return status;
        op->prof.runs++;
        op->prof.flops += op->flops;
    }
    return CLEVAL_OK;
}

/* Runs the check of every op that flags problems on the device (after the run's kernels). */
static cleval_status check_ops(cleval_nn *nn)
{
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead || !op->check) continue;
        cleval_status status = op->check(nn, op);
        if (status != CLEVAL_OK) return status;
    }
    return CLEVAL_OK;
}

/* While profiling, the network runs on a queue of its own: makes it start only after what the
 * device's queue holds so far (the readers of the previous batch's outputs, which may not have
 * run yet) has run. The other way round, collect_profile() finishes the network's queue. */
static cleval_status queue_after_device(cleval_nn *nn)
{
    cl_command_queue device = cleval_device_queue(nn->dev);
    if (nn->queue == device) return CLEVAL_OK;
    cl_event before = NULL;
    cleval_status status = cleval_cl_check(clEnqueueMarkerWithWaitList(device, 0, NULL, &before),
                                           "clEnqueueMarkerWithWaitList(profiled run)");
    if (status == CLEVAL_OK) status = cleval_cl_check(clFlush(device), "clFlush");
    if (status == CLEVAL_OK)
        status = cleval_cl_check(clEnqueueBarrierWithWaitList(nn->queue, 1, &before, NULL),
                                 "clEnqueueBarrierWithWaitList(profiled run)");
    if (before) clReleaseEvent(before);
    return status;
}

/* cleval_nn_run and cleval_nn_run_async: keep_x, x is read after the call returns. */
static cleval_status run_classifier(cleval_nn *nn, const void *x, uint32_t n, float *scores,
                                    bool keep_x)
{
    if (nn->general)
        return cleval_fail(CLEVAL_ERR_USAGE,
                           "%s: cleval_nn_run needs a classifier; use "
                           "cleval_nn_run_graph",
                           nn->path);
    if (n == 0) return CLEVAL_OK;
    if (n > nn->max_batch)
        return cleval_fail(CLEVAL_ERR_USAGE,
                           "%s: a batch of %u samples is more than the %u that "
                           "fit the device",
                           nn->path, n, nn->max_batch);
    cleval_status status;
    if (!nn->shapes_valid || nn->planned_n != n) {
        set_batch(nn, n);
        if ((status = nn_infer_all(nn)) != CLEVAL_OK || (status = nn_plan(nn)) != CLEVAL_OK)
            return status;
        nn->planned_n = n;
    }
    size_t pred_bytes = (size_t)n * sizeof(cl_int);
    if (pred_bytes > nn->pred_capacity) {
        if (nn->pred) clReleaseMemObject(nn->pred);
        if (nn->nonfinite) clReleaseMemObject(nn->nonfinite);
        nn->pred = nn->nonfinite = NULL;
        nn->pred_capacity = 0;
        if ((status = nn_device_buffer_rw(nn, pred_bytes, "predictions", &nn->pred)) != CLEVAL_OK ||
            (status = nn_device_buffer_rw(nn, pred_bytes, "non-finite score counts",
                                          &nn->nonfinite)) != CLEVAL_OK)
            return status;
        nn->pred_capacity = pred_bytes;
    }
    int out = nn->outputs[0];
    /* A fused head told that nobody reads the scores still writes them for `scores`. */
    bool scores_unread = nn->head_scores_unread;
    nn->head_scores_unread = scores_unread && !scores;
    status = queue_after_device(nn);
    if (status == CLEVAL_OK) status = nn_feed_write(nn, 0, x, keep_x);
    if (status == CLEVAL_OK) status = launch_all(nn);
    nn->head_scores_unread = scores_unread;
    if (status != CLEVAL_OK ||
        (!nn->has_head && /* the fused head wrote pred and nonfinite */
         (status = nn_launch_argmax(nn, nn_value_mem(nn, out), nn->pred, nn->nonfinite, n,
                                    nn->width)) != CLEVAL_OK) ||
        (status = check_ops(nn)) != CLEVAL_OK)
        return status;
    nn->layers[nn->n_layers].runs++;
    if (scores)
        status = cleval_cl_check(clEnqueueReadBuffer(nn->queue, nn_value_mem(nn, out), CL_TRUE, 0,
                                                     (size_t)n * nn->width * sizeof(float), scores,
                                                     0, NULL, NULL),
                                 "clEnqueueReadBuffer(scores)");
    if (status == CLEVAL_OK && nn->profiling) status = collect_profile(nn);
    return status;
}

cleval_status cleval_nn_run(cleval_nn *nn, const void *x, uint32_t n, float *scores)
{
    return run_classifier(nn, x, n, scores, false);
}

cleval_status cleval_nn_run_async(cleval_nn *nn, const void *x, uint32_t n)
{
    return run_classifier(nn, x, n, NULL, true);
}

cl_mem cleval_nn_scores_buffer(const cleval_nn *nn)
{
    if (nn->general || !nn->shapes_valid) return NULL;
    return nn_value_mem((cleval_nn *)nn, nn->outputs[0]);
}

cleval_status cleval_nn_run_graph(cleval_nn *nn, const cleval_nn_tensor *inputs,
                                  cleval_nn_tensor *outputs)
{
    for (uint32_t o = 0; o < nn->n_outputs; o++)
        outputs[o].data = NULL;
    cleval_status status = CLEVAL_OK;
    for (uint32_t i = 0; i < nn->n_inputs; i++) {
        nn_value *v = &nn->values[nn->inputs[i]];
        const cleval_nn_tensor *t = &inputs[i];
        nn_shape s = {t->rank, {0}};
        if (t->rank > NN_MAX_RANK)
            return cleval_fail(CLEVAL_ERR_INPUT, "%s: input '%s' has rank %u, more than %d",
                               nn->path, v->name, t->rank, NN_MAX_RANK);
        memcpy(s.d, t->dims, t->rank * sizeof *s.d);
        uint64_t count;
        if (!nn_shape_count_checked(&s, &count))
            return cleval_fail(CLEVAL_ERR_INPUT,
                               "%s: input '%s' is too large or has a negative "
                               "dim",
                               nn->path, v->name);
        v->shape = s;
        v->count = count;
    }
    nn->shapes_valid = false;
    if ((status = nn_infer_all(nn)) != CLEVAL_OK || (status = nn_plan(nn)) != CLEVAL_OK)
        return status;
    for (uint32_t i = 0; i < nn->n_inputs && status == CLEVAL_OK; i++)
        status = nn_feed_write(nn, i, inputs[i].data, false);
    if (status == CLEVAL_OK) status = launch_all(nn);
    if (status == CLEVAL_OK) status = check_ops(nn);
    for (uint32_t o = 0; o < nn->n_outputs && status == CLEVAL_OK; o++) {
        const nn_value *v = &nn->values[nn->outputs[o]];
        outputs[o].rank = v->shape.rank;
        memcpy(outputs[o].dims, v->shape.d, sizeof outputs[o].dims);
        outputs[o].data = malloc((size_t)(v->count ? v->count : 1) * sizeof(float));
        if (!outputs[o].data) {
            status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading outputs");
            break;
        }
        if (v->count == 0) continue;
        if (v->kind == NN_VALUE_CONST || v->kind == NN_VALUE_HOST) {
            if (v->f32)
                memcpy(outputs[o].data, v->f32, (size_t)v->count * sizeof(float));
            else
                for (uint64_t j = 0; j < v->count; j++)
                    outputs[o].data[j] = (float)v->i64[j];
            continue;
        }
        status = cleval_cl_check(clEnqueueReadBuffer(nn->queue, nn_value_mem(nn, nn->outputs[o]),
                                                     CL_TRUE, 0, (size_t)v->count * sizeof(float),
                                                     outputs[o].data, 0, NULL, NULL),
                                 "clEnqueueReadBuffer(network output)");
    }
    if (status == CLEVAL_OK && nn->profiling) status = collect_profile(nn);
    if (status != CLEVAL_OK) {
        clFinish(nn->queue);
        for (uint32_t o = 0; o < nn->n_outputs; o++) {
            free(outputs[o].data);
            outputs[o].data = NULL;
        }
    }
    return status;
}

/* ---- profiling ---- */

cleval_status cleval_nn_set_profiling(cleval_nn *nn, bool on)
{
    if (on == nn->profiling) return CLEVAL_OK;
    cleval_status status = cleval_cl_check(clFinish(nn->queue), "clFinish");
    if (status != CLEVAL_OK) return status;
    if (on && !nn->prof_queue) {
        cl_int err;
        nn->prof_queue =
            clCreateCommandQueue(cleval_device_context(nn->dev), cleval_device_id(nn->dev),
                                 CL_QUEUE_PROFILING_ENABLE, &err);
        if ((status = cleval_cl_check(err, "clCreateCommandQueue(profiling)")) != CLEVAL_OK) {
            nn->prof_queue = NULL;
            return status;
        }
    }
    nn->profiling = on;
    nn->queue = on ? nn->prof_queue : cleval_device_queue(nn->dev);
    return CLEVAL_OK;
}

uint32_t cleval_nn_layer_count(const cleval_nn *nn)
{
    return nn->n_layers + (nn->general ? 0 : 1);
}

const cleval_nn_layer *cleval_nn_layer_at(const cleval_nn *nn, uint32_t index)
{
    if (index < nn->n_layers) return &nn->ops[nn->layer_op[index]].prof;
    if (index == nn->n_layers && !nn->general) {
        cleval_nn_layer *l = &nn->layers[nn->n_layers];
        l->name = "(predictions)";
        l->op = "ArgMax";
        l->kernel = "argmax";
        return l;
    }
    return NULL;
}

void cleval_nn_log_profile(const cleval_nn *nn)
{
    double total = 0.0;
    uint32_t count = cleval_nn_layer_count(nn);
    for (uint32_t i = 0; i < count; i++)
        total += cleval_nn_layer_at(nn, i)->seconds;
    cleval_log(CLEVAL_LOG_INFO, "%-28s %-24s %-44s %10s %6s %9s", "layer", "op", "kernel", "ms",
               "share", "GFLOP/s");
    for (uint32_t i = 0; i < count; i++) {
        const cleval_nn_layer *l = cleval_nn_layer_at(nn, i);
        cleval_log(CLEVAL_LOG_INFO, "%-28.28s %-24.24s %-44.44s %10.2f %5.1f%% %9.1f", l->name,
                   l->op, l->kernel, l->seconds * 1e3, total > 0 ? 100.0 * l->seconds / total : 0.0,
                   l->seconds > 0 ? l->flops / l->seconds * 1e-9 : 0.0);
    }
    cleval_log(CLEVAL_LOG_INFO, "total device time %.2f ms", total * 1e3);
}
