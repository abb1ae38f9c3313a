/* Runtime inputs from host data: the samples are copied to the device in the type they come in
 * (a uint8 image set moves a quarter of the bytes of floats) and converted there to the graph
 * input's type by kernels/cast.cl's convert_input, which also applies the classifier's
 * preprocessing ((x * scale - mean[c]) / std[c], channels-last samples transposed). A general
 * graph's input that already is what the data holds is written as it is.
 *
 * A classifier's samples always go through a ring of FEED_RING staging buffers, copied there
 * on a queue of their own (the copy queue) while the device's queue (the compute queue) still
 * runs earlier batches: the conversion of a batch waits for its upload's event, and the
 * upload into a staging buffer waits for the conversion that last read it. So up to FEED_RING
 * batches can be in flight without either queue waiting for the host. */
#include "nn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { FEED_RING = 3 };

typedef struct nn_feed {
    int32_t model_type; /* the graph input's ONNX element type */
    int32_t type;       /* the host data's ONNX element type */
    cl_kernel k;        /* convert_input; NULL when the data is written as it is */
    /* The host data on the device, before conversion, and the event of the conversion that
     * last read each buffer (NULL: none pending). */
    cl_mem staging[FEED_RING];
    cl_event consumed[FEED_RING];
    uint32_t next;   /* the staging buffer the next upload uses */
    size_t capacity; /* bytes of each staging buffer */
    /* The uploads' queue, made at the first one. NULL on a device whose buffers are host
     * memory (a CPU device) running the CPU-style kernels: a copy there is the same cores'
     * memcpy and overlaps nothing, so the uploads go on the compute queue, in order, and the
     * events below hold trivially. The GPU-style family keeps the copy queue on every device,
     * so the tests (which run both families on PoCL) check its event chain. */
    cl_command_queue copy_queue;
    cl_mem pre; /* preprocessing: mean[C] then std[C] (input 0 of a classifier) */
} nn_feed;

/* The OpenCL type of host data of ONNX type `type`; NULL for a type that cannot be fed. */
static const char *feed_cl_type(int32_t type)
{
    switch (type) {
    case CLEVAL_ONNX_FLOAT: return "float";
    case CLEVAL_ONNX_FLOAT16: return "half"; /* read with vload_half: no fp16 extension needed */
    case CLEVAL_ONNX_UINT8: return "uchar";
    case CLEVAL_ONNX_INT8: return "char";
    case CLEVAL_ONNX_UINT16: return "ushort";
    case CLEVAL_ONNX_INT16: return "short";
    case CLEVAL_ONNX_INT32: return "int";
    case CLEVAL_ONNX_INT64: return "long";
    }
    return NULL;
}

static size_t feed_bytes(int32_t type)
{
    switch (type) {
    case CLEVAL_ONNX_UINT8:
    case CLEVAL_ONNX_INT8: return 1;
    case CLEVAL_ONNX_UINT16:
    case CLEVAL_ONNX_INT16:
    case CLEVAL_ONNX_FLOAT16: return 2;
    case CLEVAL_ONNX_INT64: return 8;
    }
    return 4;
}

static bool prep_active(const cleval_nn_input_prep *prep)
{
    return prep->scale != 0.0f || prep->n_mean || prep->n_std || prep->nhwc;
}

/* Channels (the input's axis 1) and elements per channel of a classifier sample. */
static void sample_channels(const cleval_nn *nn, uint32_t *channels, uint32_t *inner)
{
    *channels = nn->sample_rank ? (uint32_t)nn->sample_shape[0] : 1;
    *inner = (uint32_t)(nn->sample_size / *channels);
}

static cleval_status check_prep_list(const cleval_nn *nn, const char *what, uint32_t n,
                                     const float *values, uint32_t channels, bool nonzero)
{
    if (n && !values)
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: the input %s has %u values but no array",
                           nn->path, what, n);
    if (n > 1 && n != channels)
        return cleval_fail(CLEVAL_ERR_USAGE,
                           "%s: the input %s has %u values but graph input '%s' has %u channels "
                           "(axis 1); give 1 or %u",
                           nn->path, what, n, nn->values[nn->inputs[0]].name, channels, channels);
    for (uint32_t c = 0; c < n; c++)
        if (!isfinite(values[c]) || (nonzero && values[c] == 0.0f))
            return cleval_fail(CLEVAL_ERR_USAGE, "%s: input %s value %g (channel %u) is %s",
                               nn->path, what, values[c], c,
                               isfinite(values[c]) ? "0" : "not finite");
    return CLEVAL_OK;
}

/* Checks the preprocessing against the classifier input, and uploads mean and std. */
static cleval_status setup_prep(cleval_nn *nn, const cleval_nn_input_prep *prep)
{
    if (!prep_active(prep)) return CLEVAL_OK;
    if (nn->general)
        return cleval_fail(CLEVAL_ERR_USAGE,
                           "%s: input preprocessing (scale, mean, std, layout) is for classifiers",
                           nn->path);
    const nn_value *in = &nn->values[nn->inputs[0]];
    if (in->dtype != NN_FLOAT)
        return cleval_fail(CLEVAL_ERR_USAGE,
                           "%s: input preprocessing (scale, mean, std, layout) applies to a float "
                           "graph input; '%s' is %s",
                           nn->path, in->name, nn_dtype_name(in->dtype));
    if (prep->scale != 0.0f && !isfinite(prep->scale))
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: the input scale %g is not finite", nn->path,
                           prep->scale);
    if (prep->nhwc && nn->sample_rank < 2)
        return cleval_fail(CLEVAL_ERR_USAGE,
                           "%s: channels-last samples need a graph input with 2 or more axes "
                           "besides the batch; '%s' has %u",
                           nn->path, in->name, nn->sample_rank);
    uint32_t channels, inner;
    sample_channels(nn, &channels, &inner);
    cleval_status status;
    if ((status = check_prep_list(nn, "mean", prep->n_mean, prep->mean, channels, false)) ||
        (status = check_prep_list(nn, "std", prep->n_std, prep->std, channels, true)))
        return status;
    nn->prep = *prep;
    if (nn->prep.scale == 0.0f) nn->prep.scale = 1.0f;
    nn->prep_values = malloc(2 * (size_t)channels * sizeof *nn->prep_values);
    if (!nn->prep_values) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory creating a network");
    for (uint32_t c = 0; c < channels; c++) {
        nn->prep_values[c] = prep->n_mean ? prep->mean[prep->n_mean > 1 ? c : 0] : 0.0f;
        nn->prep_values[channels + c] = prep->n_std ? prep->std[prep->n_std > 1 ? c : 0] : 1.0f;
    }
    nn->prep.mean = nn->prep_values;
    nn->prep.std = nn->prep_values + channels;
    nn->prep.n_mean = nn->prep.n_std = channels;
    return nn_upload(nn, nn->prep_values, 2 * (size_t)channels * sizeof *nn->prep_values,
                     "input preprocessing", &nn->feeds[0].pre);
}

/* (Re)builds input i's conversion for host data of `type`: no kernel when a general graph's data
 * already is what the input holds (a classifier's identity conversion still decouples the
 * staging buffer, which the next upload may overwrite, from the graph input). */
static cleval_status build_feed(cleval_nn *nn, uint32_t i, int32_t type)
{
    nn_feed *f = &nn->feeds[i];
    const nn_value *in = &nn->values[nn->inputs[i]];
    bool prep = i == 0 && prep_active(&nn->prep);
    bool round_half = f->model_type == CLEVAL_ONNX_FLOAT16;
    if (f->k) clReleaseKernel(f->k);
    f->k = NULL;
    f->type = type;
    if (nn->general && !prep && !round_half &&
        strcmp(feed_cl_type(type), nn_dtype_cl(in->dtype)) == 0)
        return CLEVAL_OK;
    bool to_int = in->dtype != NN_FLOAT;
    char options[256];
    snprintf(options, sizeof options,
             "-DSRC_T=%s -DSRC_FLOAT=0 -DSRC_HALF=%d -DDST_T=%s -DDST_FLOAT=%d -DCONV=%d "
             "-DROUND_HALF=%d -DPREP=%d -DNHWC=%d",
             feed_cl_type(type), type == CLEVAL_ONNX_FLOAT16, nn_dtype_cl(in->dtype), !to_int,
             type == CLEVAL_ONNX_FLOAT && to_int ? 1 : 0, round_half, prep, prep && nn->prep.nhwc);
    return nn_kernel(nn, NULL, "cast", options, "convert_input", &f->k);
}

/* Whether host data of `type` can feed input i: anything feeds a float input, integers an
 * integer one. */
static bool feedable(const cleval_nn *nn, uint32_t i, int32_t type)
{
    if (!feed_cl_type(type)) return false;
    return nn->values[nn->inputs[i]].dtype == NN_FLOAT ||
           (type != CLEVAL_ONNX_FLOAT && type != CLEVAL_ONNX_FLOAT16);
}

static int32_t model_input_type(const cleval_onnx_model *model, const char *name)
{
    for (uint32_t i = 0; i < model->n_inputs; i++)
        if (strcmp(model->inputs[i].name, name) == 0)
            return model->inputs[i].elem_type ? model->inputs[i].elem_type : CLEVAL_ONNX_FLOAT;
    return CLEVAL_ONNX_FLOAT;
}

cleval_status nn_feed_init(cleval_nn *nn, const cleval_onnx_model *model,
                           const cleval_nn_options *options)
{
    nn->feeds = calloc(nn->n_inputs ? nn->n_inputs : 1, sizeof *nn->feeds);
    if (!nn->feeds) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory creating a network");
    for (uint32_t i = 0; i < nn->n_inputs; i++)
        nn->feeds[i].model_type = model_input_type(model, nn->values[nn->inputs[i]].name);
    static const cleval_nn_input_prep none = {0};
    cleval_status status = setup_prep(nn, options ? &options->input : &none);
    for (uint32_t i = 0; i < nn->n_inputs && status == CLEVAL_OK; i++) {
        /* General graphs take floats; a classifier its input's own type (float for float16). */
        bool as_float = nn->general || nn->values[nn->inputs[i]].dtype == NN_FLOAT;
        status = build_feed(nn, i, as_float ? CLEVAL_ONNX_FLOAT : nn->feeds[i].model_type);
    }
    return status;
}

cleval_status cleval_nn_set_feed_type(cleval_nn *nn, int32_t type)
{
    if (nn->general)
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: general graphs take float data", nn->path);
    if (!feedable(nn, 0, type))
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: graph input '%s' (%s) cannot be fed %s data",
                           nn->path, nn->values[nn->inputs[0]].name,
                           cleval_onnx_dtype_name(nn->feeds[0].model_type),
                           cleval_onnx_dtype_name(type));
    if (type == nn->feeds[0].type) return CLEVAL_OK;
    return build_feed(nn, 0, type);
}

int32_t cleval_nn_input_type(const cleval_nn *nn)
{
    return nn->feeds[0].model_type;
}

size_t nn_feed_sample_bytes(const cleval_nn *nn)
{
    return (size_t)nn->sample_size * feed_bytes(nn->feeds[0].type);
}

/* Waits for every pending conversion of f's staging buffers and forgets them. */
static cleval_status feed_drain(nn_feed *f)
{
    cleval_status status = CLEVAL_OK;
    for (uint32_t r = 0; r < FEED_RING; r++) {
        if (!f->consumed[r]) continue;
        cl_int err = clWaitForEvents(1, &f->consumed[r]);
        if (status == CLEVAL_OK) status = cleval_cl_check(err, "clWaitForEvents(network input)");
        clReleaseEvent(f->consumed[r]);
        f->consumed[r] = NULL;
    }
    return status;
}

/* Makes f's staging buffers hold `bytes` each (and its copy queue), waiting for the batches
 * still reading the old ones before they go. */
static cleval_status feed_reserve(cleval_nn *nn, nn_feed *f, size_t bytes)
{
    cleval_status status;
    bool own_queue = !cleval_device_get_info(nn->dev)->host_unified_memory ||
                     cleval_device_variant(nn->dev) == CLEVAL_VARIANT_GPU;
    if (!f->copy_queue && own_queue) {
        cl_int err;
        f->copy_queue = clCreateCommandQueue(cleval_device_context(nn->dev),
                                             cleval_device_id(nn->dev), 0, &err);
        if ((status = cleval_cl_check(err, "clCreateCommandQueue(uploads)")) != CLEVAL_OK) {
            f->copy_queue = NULL;
            return status;
        }
    }
    if (bytes <= f->capacity) return CLEVAL_OK;
    if ((status = feed_drain(f)) != CLEVAL_OK) return status;
    for (uint32_t r = 0; r < FEED_RING; r++) {
        if (f->staging[r]) clReleaseMemObject(f->staging[r]);
        f->staging[r] = NULL;
    }
    f->capacity = 0;
    for (uint32_t r = 0; r < FEED_RING; r++)
        if ((status = cleval_device_buffer(nn->dev, CL_MEM_READ_ONLY, bytes, NULL,
                                           "network input (as fed)", &f->staging[r])) != CLEVAL_OK)
            return status;
    f->capacity = bytes;
    return CLEVAL_OK;
}

/* Enqueues the upload of `bytes` of data into the next staging buffer (copy queue) and its
 * conversion into the graph input (compute queue, after the upload). */
static cleval_status feed_enqueue(cleval_nn *nn, uint32_t i, const void *data, size_t bytes,
                                  bool keep_data)
{
    nn_feed *f = &nn->feeds[i];
    int v = nn->inputs[i];
    cleval_status status = feed_reserve(nn, f, bytes);
    if (status != CLEVAL_OK) return status;
    uint32_t r = f->next;
    f->next = (r + 1) % FEED_RING;
    cl_event uploaded = NULL;
    cl_uint n_wait = f->consumed[r] ? 1 : 0;
    cl_command_queue queue = f->copy_queue ? f->copy_queue : nn->queue;
    status =
        cleval_cl_check(clEnqueueWriteBuffer(queue, f->staging[r], CL_FALSE, 0, bytes, data, n_wait,
                                             n_wait ? &f->consumed[r] : NULL, &uploaded),
                        "clEnqueueWriteBuffer(network input)");
    if (status == CLEVAL_OK) status = cleval_cl_check(clFlush(queue), "clFlush(uploads)");
    if (status == CLEVAL_OK)
        status = cleval_cl_check(clEnqueueBarrierWithWaitList(nn->queue, 1, &uploaded, NULL),
                                 "clEnqueueBarrierWithWaitList(network input)");
    uint32_t channels = 1, inner = 1;
    bool prep = i == 0 && prep_active(&nn->prep);
    if (prep) sample_channels(nn, &channels, &inner);
    uint64_t count = nn->values[v].count;
    if (status == CLEVAL_OK) {
        cleval_kernel_args a = cleval_kernel_args_begin(f->k, NULL);
        cleval_kernel_arg_mem(&a, f->staging[r]);
        cleval_kernel_arg_mem(&a, nn_value_mem(nn, v));
        cleval_kernel_arg_int(&a, (int32_t)count);
        cleval_kernel_arg_int(&a, (int32_t)channels);
        cleval_kernel_arg_int(&a, (int32_t)inner);
        cleval_kernel_arg_float(&a, prep ? nn->prep.scale : 1.0f);
        cleval_kernel_arg_mem(&a, f->pre);
        size_t local = nn_local_1d(nn), global = (size_t)count;
        status = nn_enqueue(nn, NULL, &a, 1, &global, &local);
    }
    if (f->consumed[r]) clReleaseEvent(f->consumed[r]);
    f->consumed[r] = NULL;
    if (status == CLEVAL_OK)
        status = cleval_cl_check(clEnqueueMarkerWithWaitList(nn->queue, 0, NULL, &f->consumed[r]),
                                 "clEnqueueMarkerWithWaitList(network input)");
    /* The caller may reuse `data` at once unless it keeps it until the batch is done. */
    if (uploaded && (!keep_data || status != CLEVAL_OK)) {
        cl_int err = clWaitForEvents(1, &uploaded);
        if (status == CLEVAL_OK) status = cleval_cl_check(err, "clWaitForEvents(network input)");
    }
    if (uploaded) clReleaseEvent(uploaded);
    return status;
}

cleval_status nn_feed_write(cleval_nn *nn, uint32_t i, const void *data, bool keep_data)
{
    nn_feed *f = &nn->feeds[i];
    int v = nn->inputs[i];
    uint64_t count = nn->values[v].count;
    size_t bytes = (size_t)count * feed_bytes(f->type);
    if (count == 0) return CLEVAL_OK;
    if (f->k) return feed_enqueue(nn, i, data, bytes, keep_data);
    return cleval_cl_check(clEnqueueWriteBuffer(nn->queue, nn_value_mem(nn, v), CL_TRUE, 0, bytes,
                                                data, 0, NULL, NULL),
                           "clEnqueueWriteBuffer(network input)");
}

void nn_feed_release(cleval_nn *nn)
{
    for (uint32_t i = 0; nn->feeds && i < nn->n_inputs; i++) {
        nn_feed *f = &nn->feeds[i];
        feed_drain(f); /* nothing may still read the buffers released below */
        if (f->copy_queue) {
            clFinish(f->copy_queue);
            clReleaseCommandQueue(f->copy_queue);
        }
        if (f->k) clReleaseKernel(f->k);
        for (uint32_t r = 0; r < FEED_RING; r++)
            if (f->staging[r]) clReleaseMemObject(f->staging[r]);
        if (f->pre) clReleaseMemObject(f->pre);
    }
    free(nn->feeds);
    free(nn->prep_values);
    nn->feeds = NULL;
    nn->prep_values = NULL;
}

uint64_t nn_feed_device_bytes(const cleval_nn *nn)
{
    uint64_t total = 0;
    for (uint32_t i = 0; nn->feeds && i < nn->n_inputs; i++) {
        const nn_feed *f = &nn->feeds[i];
        cl_mem mems[] = {f->staging[0], f->staging[1], f->staging[2], f->pre};
        for (size_t m = 0; m < sizeof mems / sizeof *mems; m++) {
            size_t bytes = 0;
            if (mems[m] &&
                clGetMemObjectInfo(mems[m], CL_MEM_SIZE, sizeof bytes, &bytes, NULL) == CL_SUCCESS)
                total += bytes;
        }
    }
    return total;
}
