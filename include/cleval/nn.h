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
 * number of float inputs and outputs of any shape, shapes fixed per call of
 * cleval_nn_run_graph() (ONNX's conformance cases run this way). */
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

/* Options of cleval_nn_create_with(); a zeroed struct means cleval_nn_create(). */
typedef struct cleval_nn_options {
    /* false: a classifier (see cleval_nn_create). true: a general graph; inputs are the graph
     * inputs not bound below, in file order, each a float tensor whose shape is given at run
     * time; outputs may have any shape. */
    bool general;
    /* Graph inputs replaced by these constants, matched by name (a conformance case's
     * parameters, or weights an exporter left as inputs). Copied at create. */
    uint32_t n_bound;
    const cleval_onnx_tensor *const *bound;
} cleval_nn_options;

/* Builds a classifier from `model` on `dev`: exactly one graph input that is not an
 * initializer, float, whose first axis is the batch (its declared size is ignored) and whose
 * other axes are fixed; exactly one output of shape [N, C]. Samples must stay independent:
 * a graph that mixes samples across the batch axis (softmax over axis 0, a reshape that moves
 * the batch, a product over the batch) is refused. The kernel family is the device's
 * (cleval_device_variant) at this call. `model` may be freed afterwards. Fails with
 *   CLEVAL_ERR_UNSUPPORTED for an operator or attribute value this engine does not run; the
 *                          message is one line "<path>: node '<name>' (<op>): ...";
 *   CLEVAL_ERR_INPUT       for a graph that is invalid ONNX (shapes that do not agree, a
 *                          missing input, an unknown tensor name), named the same way;
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
uint64_t cleval_nn_input_size(const cleval_nn *nn); /* floats per sample */
uint32_t cleval_nn_output_width(const cleval_nn *nn);

/* Classifier: the largest n for which every intermediate tensor fits one device buffer. */
uint32_t cleval_nn_max_batch(const cleval_nn *nn);

/* Classifier: runs n samples (`x`: n * cleval_nn_input_size() floats, row-major per sample).
 * Leaves the scores [n][C] and pred[n] = argmax of each score row (the first maximum on ties,
 * a NaN counting as the maximum, as torch.argmax) in device buffers, and copies the scores to
 * `scores` when it is not NULL (the call then waits for the device). Without `scores` the
 * work may still be running on the device's queue when the call returns; commands enqueued
 * on that queue afterwards see the results. n == 0 does nothing. n above
 * cleval_nn_max_batch() fails with CLEVAL_ERR_USAGE. */
cleval_status cleval_nn_run(cleval_nn *nn, const float *x, uint32_t n, float *scores);

/* Classifier: the int32 [n] predictions and float [n][C] scores of the last run, valid until
 * the next run or destroy (a larger batch may replace the buffers). */
cl_mem cleval_nn_pred_buffer(const cleval_nn *nn);
cl_mem cleval_nn_scores_buffer(const cleval_nn *nn);

/* A host tensor for general graphs: `rank` dims, row-major float data. */
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
