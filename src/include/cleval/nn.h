/* The network runner: turns a loaded ONNX graph (cleval/onnx.h) into OpenCL kernels on one
 * device and runs batches through it. At create time it checks every operator and attribute,
 * infers shapes, rewrites the graph (input scaling and BatchNormalization folded into the
 * Conv weights, ReLU/Clip and a 2x2 max-pool fused into the Conv/Gemm epilogue, Dropout and
 * Identity removed, channels-last storage between CPU-style convolutions, F(2x2,3x3) Winograd
 * for eligible 3x3 convolutions on CPUs), packs the weights for the device's kernel family and
 * uploads them once. Runs only move activations. Kernel tunables are chosen per kernel family;
 * CLEVAL_NN_TUNING="conv_mr=8,gemm_kc=256,..." overrides them for experiments (src/nn/tuning.c).
 *
 * Two ways to use it. A classifier (cleval_nn_create): one graph input whose first axis is
 * the batch, one output [N, C]; cleval_nn_run() takes n samples and leaves scores and argmax
 * predictions on the device. A general graph (cleval_nn_create_with, options.general): any
 * number of inputs (fed as floats) and float outputs of any shape, shapes fixed per call of
 * cleval_nn_run_graph() (ONNX's conformance cases run this way).
 *
 * Element types: graph inputs may be float, float16, uint8, int8, int32 or int64; the host
 * data moves to the device as it is and is converted there (cleval_nn_set_feed_type,
 * cleval_nn_input_prep). Integer values (token ids, an image before its Cast) stay integers
 * on the device: views (Reshape, Flatten, Identity), Cast and Gather with runtime indices (an
 * embedding lookup into a constant table) read them; any other operator reading one is
 * refused naming it. Cast converts between float, float16, int64, int32, int8, uint8 and
 * bool (float to integer toward zero, saturating; to bool x != 0; to float16 rounded to half
 * and kept as float). An embedding index outside [-rows, rows) fails the run with
 * CLEVAL_ERR_INPUT naming the node, the index and its sample in the batch.
 *
 * Precision modes (cleval_nn_options.precision): fp32; fp16, where weights and activations are
 * stored as half (vload_half / vstore_half, core OpenCL 1.2) and the arithmetic is half on
 * devices with cl_khr_fp16 and float elsewhere (cleval_nn_arithmetic);
 * int8, post-training quantisation of the Conv and Gemm/MatMul layers with constant weights
 * (symmetric int8 weights per output channel, symmetric int8 inputs per tensor with scales
 * calibrated on sample inputs, exact int32 accumulation, dequantised epilogue), every other op
 * in float. Magnitude pruning (options.prune) zeroes the smallest weights of those layers
 * before any of that. cleval_nn_model_info() says what a network holds and its size. */
#ifndef CLEVAL_NN_H
#define CLEVAL_NN_H

#include <stdbool.h>
#include <stdint.h>

#include "cleval/device.h"
#include "cleval/onnx.h"
#include "cleval/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cleval_nn cleval_nn;

/* The largest tensor rank the kernels handle; a model with more is refused. */
enum { CLEVAL_NN_MAX_RANK = 8 };

/* The numeric mode of a network. */
typedef enum cleval_nn_precision {
    CLEVAL_NN_FP32 = 0, /* float weights, activations and arithmetic */
    CLEVAL_NN_FP16 = 1, /* half storage of weights and activations (cleval_nn_arithmetic) */
    CLEVAL_NN_INT8 = 2, /* int8 Conv/Gemm/MatMul (weights per channel, inputs per tensor) */
} cleval_nn_precision;

/* "fp32", "fp16", "int8". */
const char *cleval_nn_precision_name(cleval_nn_precision precision);

/* fp16 only: the type the kernels compute in. Half arithmetic needs cl_khr_fp16; it covers
 * the products of Conv, Gemm and MatMul (summed in half over blocks of 32 products, in the
 * GPU-style kernels over each 16-k slice, the blocks added in float), and Add/Sub/Mul/Div when
 * all their tensors are stored as half; epilogues, softmax, pooling, depthwise convolution,
 * BatchNormalization that did not fold and the unary ops stay float. */
typedef enum cleval_nn_arithmetic {
    CLEVAL_NN_ARITH_AUTO = 0, /* half where the device has cl_khr_fp16, else float */
    CLEVAL_NN_ARITH_FLOAT = 1,
    CLEVAL_NN_ARITH_HALF = 2, /* refused (CLEVAL_ERR_USAGE) on a device without cl_khr_fp16 */
} cleval_nn_arithmetic;

/* Classifier only: preprocessing applied on the device while the samples given to
 * cleval_nn_run() become the graph input, for a float (or float16) graph input:
 * y = (x * scale - mean[c]) / std[c], c the channel (the input's axis 1), computed in float.
 * A zeroed struct means none. Refused (CLEVAL_ERR_USAGE) for an integer graph input, a scale
 * that is not finite or is 0, a std entry that is 0 or not finite, a mean or std list of
 * another length than 1 (every channel) or the channel count, and nhwc for an input of fewer
 * than 2 axes besides the batch. */
typedef struct cleval_nn_input_prep {
    float scale;     /* 0 means 1 */
    uint32_t n_mean; /* 0: all 0 */
    const float *mean;
    uint32_t n_std; /* 0: all 1 */
    const float *std;
    /* The samples are channels-last ([H, W, C] for an input [N, C, H, W]; for any rank, the
     * input's axis 1 comes last): the conversion transposes them. */
    bool nhwc;
} cleval_nn_input_prep;

/* Options of cleval_nn_create_with(); a zeroed struct means cleval_nn_create(). */
typedef struct cleval_nn_options {
    /* false: a classifier (see cleval_nn_create). true: a general graph; inputs are the graph
     * inputs not bound below, in file order, each given as float data (converted on the
     * device to the input's type) whose shape is given at run time; outputs may have any
     * shape. */
    bool general;
    /* Graph inputs replaced by these constants, matched by name (a conformance case's
     * parameters, or weights an exporter left as inputs). Copied at create. */
    uint32_t n_bound;
    const cleval_onnx_tensor *const *bound;
    /* The numeric mode (default fp32). fp16: every activation except the runtime inputs and
     * the graph outputs is stored as half, and so are the weights of Conv, Gemm and MatMul;
     * biases and other constants stay float. int8: every Conv that is not depthwise, and every
     * Gemm or MatMul whose B is a constant 2-D float matrix (K up to 131072), runs on int8
     * codes: weights q = clamp(rint(w / s_c), -127, 127) with s_c = max|w| / 127 over output
     * channel c; the layer input x likewise with one scale, max|x| / 127 over what the fp32
     * network feeds that layer on the calibration samples (a scale of 0 becomes 1). */
    cleval_nn_precision precision;
    /* fp16 only (another precision refuses anything but AUTO): half or float arithmetic. */
    cleval_nn_arithmetic arithmetic;
    /* int8 only (required): the activation ranges, from cleval_nn_calibrate() on an fp32
     * network of the same model and the same prune. Read during create. */
    const struct cleval_nn_calibration *calibration;
    /* Magnitude pruning, 0 <= prune < 1 (default 0): in every Conv, Gemm and MatMul with
     * constant weights, the floor(prune * count) weights of smallest |w| are set to 0 (ties:
     * the lower index first), before folding and quantisation. Weights stay stored densely. */
    double prune;
    /* Classifier only: preprocessing of the samples (copied at create). */
    cleval_nn_input_prep input;
    /* The tuner (cleval tune) only: every Conv, Gemm and MatMul runs with the base tunables
     * plus these ("conv_mr=4,conv_nv=1"), neither the tuning cache nor CLEVAL_NN_TUNING
     * consulted. NULL (the default): each such layer uses the cache's entry for its shape
     * when there is one. */
    const char *tuning_override;
} cleval_nn_options;

/* What a network holds, for reports. */
typedef struct cleval_nn_model_info {
    cleval_nn_precision precision;
    bool half_arithmetic;         /* fp16: arithmetic in half (cleval_nn_arithmetic) */
    double prune;                 /* as requested */
    uint32_t calibration_samples; /* int8: samples the scales came from */
    uint32_t quantised_layers;    /* int8: layers on int8 kernels */
    uint64_t weights;             /* elements of the Conv/Gemm/MatMul constant weight tensors */
    uint64_t zero_weights;        /* of those, how many are 0 (after pruning) */
    /* Bytes of every constant the network computes with (after folding), as stored for the
     * mode: weights 4 (fp32), 2 (fp16) or 1 byte (int8 layers, plus a 4-byte scale per
     * output channel and one per layer input); biases and other constants 4 bytes. Dense,
     * pruned zeros included; the devices' padded or Winograd-transformed copies are not
     * counted. */
    uint64_t size_bytes;
} cleval_nn_model_info;

void cleval_nn_model_info_get(const cleval_nn *nn, cleval_nn_model_info *out);

/* The device memory a network holds, in bytes, as allocated now: the plan's buffers grow to
 * the largest shapes run so far and never shrink, so after runs at a batch of n this is the
 * memory that batch needs (before any run: at a batch of 1 for a classifier, nothing planned
 * for a general graph).
 *   weights_bytes      every device buffer of constants: float constants uploaded as they are,
 *                      packed or transformed weights, per-op tables (offsets, scales);
 *   activations_bytes  the pool of buffers holding runtime inputs and intermediate tensors
 *                      (views share their input's buffer; a buffer is reused once its value is
 *                      dead), the runtime inputs' staging and preprocessing buffers, and a
 *                      classifier's predictions and non-finite counts;
 *   workspace_bytes    the pool's buffers that only ever hold ops' scratch space;
 *   peak_bytes         their sum: all of it is allocated at once while the network lives. */
typedef struct cleval_nn_device_memory {
    uint64_t weights_bytes;
    uint64_t activations_bytes;
    uint64_t workspace_bytes;
    uint64_t peak_bytes;
} cleval_nn_device_memory;

/* Fills *out for `nn` (all zero for NULL). Waits for nothing and allocates nothing. */
void cleval_nn_device_memory_get(const cleval_nn *nn, cleval_nn_device_memory *out);

/* Activation ranges for int8: the largest |x| reaching the input of each layer that an int8
 * network quantises (nn_mark_quantisable in src/nn/precision.c), in execution order. Computed
 * once and shared, so that every device quantises with the same scales. */
typedef struct cleval_nn_calibration {
    uint32_t samples;  /* the samples it was measured on */
    uint32_t n_layers; /* entries of max_abs */
    double *max_abs;
} cleval_nn_calibration;

/* Runs the fp32 classifier `nn` on n samples (x: n * cleval_nn_input_size() elements of the
 * feed type, cleval_nn_set_feed_type) and records
 * the range of every quantisable layer's input: into a new calibration when *calibration is
 * NULL, else added to the one there (so samples can come in chunks). Fails with
 * CLEVAL_ERR_USAGE for a network that is not an fp32 classifier, n == 0, or a calibration of
 * another network. Free the result with cleval_nn_calibration_free. */
cleval_status cleval_nn_calibrate(cleval_nn *nn, const void *x, uint32_t n,
                                  cleval_nn_calibration **calibration);
/* NULL is a no-op. */
void cleval_nn_calibration_free(cleval_nn_calibration *calibration);

/* The newest opset of the default ONNX domain whose definitions of the supported operators
 * this engine follows. From opset 18 to 22 they only gained element types, or inputs and
 * attribute values that the engine refuses by name (Pad's axes, mode wrap). */
#define CLEVAL_NN_MAX_OPSET 22

/* Builds a classifier from `model` on `dev`: exactly one graph input that is not an
 * initializer, of element type float, float16, uint8, int8, int32 or int64, whose first axis
 * is the batch (its declared size is ignored) and whose other axes are fixed; exactly one
 * output of shape [N, C] (float or float16, computed in float). Samples must stay independent:
 * a graph that mixes samples across the batch axis (softmax over axis 0, a reshape that moves
 * the batch, a product over the batch) is refused. The kernel family is the device's
 * (cleval_device_variant) at this call. `model` may be freed afterwards. Fails with
 *   CLEVAL_ERR_UNSUPPORTED for an operator or attribute value this engine does not run; the
 *                          message is one line "<path>: node '<name>' (<op>): ..."; also for
 *                          a default-domain opset above CLEVAL_NN_MAX_OPSET;
 *   CLEVAL_ERR_INPUT       for a graph that is invalid ONNX (shapes that do not agree, a
 *                          missing input, an unknown tensor name, a value produced twice, an
 *                          initializer given twice, a boolean attribute such as Gemm's transB
 *                          other than 0 or 1), named the same way;
 *   CLEVAL_ERR_USAGE       for options out of range (a prune outside [0, 1), int8 without a
 *                          calibration or with one of another network, int8 for a general
 *                          graph, half arithmetic on a device without cl_khr_fp16 or
 *                          outside fp16);
 *   CLEVAL_ERR_OPENCL, CLEVAL_ERR_NOMEM as usual. */
cleval_status cleval_nn_create(cleval_device *dev, const cleval_onnx_model *model, cleval_nn **out);

/* As cleval_nn_create, with options (NULL means none). */
cleval_status cleval_nn_create_with(cleval_device *dev, const cleval_onnx_model *model,
                                    const cleval_nn_options *options, cleval_nn **out);

/* Whether operator `op_type` (default ONNX domain) is implemented. Attribute values can still
 * be refused when a model is created; this answers for the operator as such. */
bool cleval_nn_supports_op(const char *op_type);

/* Waits for the device and releases everything. NULL is a no-op. */
void cleval_nn_destroy(cleval_nn *nn);

/* Classifier: the per-sample input shape (the graph input without its batch axis) and the
 * output width C. */
uint32_t cleval_nn_input_rank(const cleval_nn *nn);
const uint64_t *cleval_nn_input_shape(const cleval_nn *nn);
uint64_t cleval_nn_input_size(const cleval_nn *nn); /* elements per sample */
uint32_t cleval_nn_output_width(const cleval_nn *nn);

/* Classifier: the graph input's element type (a cleval_onnx_dtype: CLEVAL_ONNX_FLOAT,
 * FLOAT16, UINT8, INT8, INT32 or INT64). */
int32_t cleval_nn_input_type(const cleval_nn *nn);

/* Classifier: the element type of the samples given to cleval_nn_run() and
 * cleval_nn_calibrate() from now on (a cleval_onnx_dtype). They are copied to the device as
 * they are and converted there (with the preprocessing of cleval_nn_input_prep) to the graph
 * input's type. The default is float for a float or float16 input (a float16 input gets each
 * value rounded to half), else the input's own type. A float or float16 input takes FLOAT,
 * UINT8, INT8, UINT16, INT16, INT32 or INT64 samples; an integer input takes UINT8, INT8,
 * UINT16, INT16, INT32 or INT64 samples (converted as C converts integers). Anything else
 * fails with CLEVAL_ERR_USAGE. */
cleval_status cleval_nn_set_feed_type(cleval_nn *nn, int32_t type);

/* Classifier: the largest n for which every intermediate tensor fits one device buffer. */
uint32_t cleval_nn_max_batch(const cleval_nn *nn);

/* Classifier: runs n samples (`x`: n * cleval_nn_input_size() elements of the feed type,
 * cleval_nn_set_feed_type, row-major per sample).
 * Leaves the scores [n][C] and pred[n] = argmax of each score row (the first maximum on ties,
 * a NaN counting as the maximum, as torch.argmax) in device buffers, and copies the scores to
 * `scores` when it is not NULL (the call then waits for the device). Without `scores` the
 * work may still be running on the device's queue when the call returns; commands enqueued
 * on that queue afterwards see the results. n == 0 does nothing. n above
 * cleval_nn_max_batch() fails with CLEVAL_ERR_USAGE. */
cleval_status cleval_nn_run(cleval_nn *nn, const void *x, uint32_t n, float *scores);

/* Classifier: cleval_nn_run() without `scores`, and without waiting for the upload of x: the
 * call returns once the batch is enqueued, and x must stay unchanged until the commands
 * enqueued on the device's queue so far have finished (an event or a blocking call on that
 * queue after this one). Batches may follow one another without waiting: each upload runs on
 * a queue of its own into one of three staging buffers (waiting only for the batch three back
 * to have been converted), so it overlaps the earlier batches' kernels; page-locked x
 * (cleval_hostbuf_create_pinned) lets a GPU driver copy it by DMA. */
cleval_status cleval_nn_run_async(cleval_nn *nn, const void *x, uint32_t n);

/* Classifier: the int32 [n] predictions and float [n][C] scores of the last run, valid until
 * the next run or destroy (a larger batch may replace the buffers). */
cl_mem cleval_nn_pred_buffer(const cleval_nn *nn);
cl_mem cleval_nn_scores_buffer(const cleval_nn *nn);
/* Classifier: the uint32 [n] count of NaN and infinite scores in each row of the last run
 * (counted by the argmax, so free), valid as the predictions are. */
cl_mem cleval_nn_nonfinite_buffer(const cleval_nn *nn);

/* Classifier: whether the network ends in the fused head (GPU kernels, fp32: a last Gemm or
 * MatMul with constant weights and at most 1024 classes, optionally followed by a Softmax or
 * LogSoftmax over them), which computes the scores, predictions and non-finite counts in one
 * kernel and can count the predictions itself (cleval_nn_count_predictions). Set
 * CLEVAL_NN_FUSE_HEAD=0 before create to run the separate kernels instead. */
bool cleval_nn_has_fused_head(const cleval_nn *nn);
/* Classifier with a fused head: whether later runs write the scores buffer (default true);
 * false when nothing reads cleval_nn_scores_buffer(), whose contents are then undefined after
 * a run without `scores` (a cleval_nn_run() given `scores` still fills them). No effect
 * without a fused head. */
void cleval_nn_set_scores_needed(cleval_nn *nn, bool needed);
/* Classifier with a fused head: every later run adds one to hist[labels[i] * cols + pred[i]]
 * for each row i (uint32 [rows][cols] row-major, a buffer of the network's device; labels
 * int32 [n] of the batch, NULL: row 0), pairs outside the grid skipped: the counts
 * kernels/histogram.cl would add from the predictions. Both buffers must hold the batch's
 * data when its run is enqueued. hist NULL stops the counting. CLEVAL_ERR_USAGE without a
 * fused head. */
cleval_status cleval_nn_count_predictions(cleval_nn *nn, cl_mem hist, cl_mem labels, uint32_t rows,
                                          uint32_t cols);

/* A host tensor for general graphs: `rank` dims, row-major float data. An input of an integer
 * type gets the values converted on the device (toward zero, saturating), a float16 input gets
 * them rounded to half. */
typedef struct cleval_nn_tensor {
    uint32_t rank;
    int64_t dims[CLEVAL_NN_MAX_RANK];
    float *data;
} cleval_nn_tensor;

/* General graph: its runtime inputs (graph inputs neither initializers nor bound) and outputs,
 * in file order. */
uint32_t cleval_nn_graph_input_count(const cleval_nn *nn);
const char *cleval_nn_graph_input_name(const cleval_nn *nn, uint32_t index);
uint32_t cleval_nn_graph_output_count(const cleval_nn *nn);
const char *cleval_nn_graph_output_name(const cleval_nn *nn, uint32_t index);

/* General graph: runs once on `inputs` (one per runtime input, in order; the data is read
 * during the call) and fills `outputs` (one per output): rank, dims and `data`, a malloc'd
 * array the caller frees. Waits for the device. A shape that the graph cannot take fails with
 * CLEVAL_ERR_INPUT naming the node; on failure no output holds memory. */
cleval_status cleval_nn_run_graph(cleval_nn *nn, const cleval_nn_tensor *inputs,
                                  cleval_nn_tensor *outputs);

/* Per-layer device time. Profiling is off by default; when on, each run records the device
 * time of every kernel (through OpenCL events on a profiling queue of its own) and waits for
 * the device at its end. */
typedef struct cleval_nn_layer {
    const char *name;   /* the ONNX node (the first of a fused group) */
    const char *op;     /* "Conv+Relu+MaxPool", "Gemm", ... */
    const char *kernel; /* the kernel that runs it, with its tunables ("conv_cpu MR=8 NV=2") */
    uint64_t runs;      /* launches so far */
    double seconds;     /* device time so far */
    double flops;       /* operations of the direct computation so far (multiply-add = 2;
                         * a Winograd convolution performs fewer) */
} cleval_nn_layer;

cleval_status cleval_nn_set_profiling(cleval_nn *nn, bool on);
/* The layers in execution order (ops that need no kernel, such as Flatten, are left out). */
uint32_t cleval_nn_layer_count(const cleval_nn *nn);
const cleval_nn_layer *cleval_nn_layer_at(const cleval_nn *nn, uint32_t index);
/* Sends the per-layer table to the log hook at CLEVAL_LOG_INFO. */
void cleval_nn_log_profile(const cleval_nn *nn);

#ifdef __cplusplus
}
#endif

#endif
