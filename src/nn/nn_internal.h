/* The nn module's private layout, shared by its files: the graph (values and ops), the op
 * table, the memory plan and the launch helpers. Each op kind lives in its own op_*.c file and
 * exposes one nn_op_kind; graph.c builds the graph, passes.c rewrites it, plan.c places the
 * activations in device buffers, nn.c holds the public API and the run loop. */
#ifndef CLEVAL_NN_INTERNAL_H
#define CLEVAL_NN_INTERNAL_H

#include "cleval/nn.h"

#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NN_MAX_RANK CLEVAL_NN_MAX_RANK
/* Every op has room for NN_MAX_IN inputs and NN_MAX_OUT outputs (passes may fill the slots a
 * node left out); variadic kinds (Concat, Split) take as many as their node names. */
#define NN_MAX_IN 8 /* LSTM: X, W, R, B, sequence_lens, initial_h, initial_c, P */
/* Secondary outputs (Dropout mask, BN statistics) are refused when used, except for ops that
 * compute them all (nn_op.all_outputs) and variadic kinds. */
#define NN_MAX_OUT 5
#define NN_MAX_KERNELS 4
#define NN_MAX_BUFFERS 6
/* No tensor may hold more elements than this: kernels index buffers with 32-bit integers. */
#define NN_MAX_ELEMENTS ((int64_t)INT32_MAX)

typedef struct nn_shape {
    uint32_t rank;
    int64_t d[NN_MAX_RANK];
} nn_shape;

typedef enum nn_value_kind {
    NN_VALUE_INPUT, /* a runtime graph input */
    NN_VALUE_CONST, /* initializer, Constant node or bound input: values known at load */
    NN_VALUE_ACT,   /* computed by an op */
    /* Computed on the host during shape inference from tensor shapes and constants (Shape,
     * Gather on a shape, Concat of shapes...): f32 / i64 hold the values of the latest
     * inference; `mem` is a float copy where a device op reads it as data. */
    NN_VALUE_HOST,
} nn_value_kind;

/* How an activation is stored. NCHW is ONNX's row-major order; NHWC (channels last: axis 1
 * moved to the end) is used only between CPU-style convolutions, which read any layout. */
typedef enum nn_layout {
    NN_LAYOUT_NCHW = 0,
    NN_LAYOUT_NHWC = 1,
} nn_layout;

/* Element type of a value (op_cast.c). Float values may be stored as half (fp16); the integer
 * types are stored as they are (int64 as OpenCL long, bool as uchar 0/1). ONNX float16 values
 * are float here (rounded to half where a Cast or the input conversion says so). */
typedef enum nn_dtype {
    NN_FLOAT = 0,
    NN_INT64 = 1,
    NN_INT32 = 2,
    NN_INT8 = 3,
    NN_UINT8 = 4,
    NN_BOOL = 5,
} nn_dtype;

typedef struct nn_value {
    char *name;
    nn_value_kind kind;
    nn_dtype dtype; /* constants: NN_INT64 when they hold i64 */
    bool varying;   /* depends on a runtime input */
    nn_shape shape; /* constants: fixed; others: from the latest shape inference */
    nn_layout layout;
    /* Constants and host values: exactly one of f32 / i64 (count elements); bool and int32
     * elements are held as i64. */
    float *f32;
    int64_t *i64;
    uint64_t count;
    /* f32 is the model's own tensor (an initializer, a Constant node's or a bound tensor's
     * values), read-only and not owned: a large model's weights are not copied on the host.
     * Valid during create only; nn_own_f32 copies it before a change, and create drops or
     * copies every borrowed array before it returns. */
    bool borrowed;
    /* Device copy of a float constant (nn_const_mem) or of a host value read as a data
     * operand (nn_upload_host_operands, as floats). */
    cl_mem mem;
    int producer;  /* op index, -1 for inputs and constants */
    uint32_t uses; /* ops that read it (plus one per graph output that names it) */
    bool is_output;
    int alias; /* >= 0: shares the memory of that value (Flatten, Reshape, Identity) */
    int slot;  /* memory plan: device buffer slot of the root value, -1 when none */
    bool half; /* fp16: stored as half (set by nn_choose_storage; views as their root) */
    /* Classifier: the axis that carries the batch (-1: none), found by the validation from the
     * shapes at two batch sizes. It may be a merged axis: extent x * N * y, and the sample of
     * index i along it is (i / batch_inner) % N, batch_inner = y (N * heads: y = heads). */
    int batch_axis;
    int64_t batch_inner;
} nn_value;

typedef struct cleval_nn cleval_nn;
typedef struct nn_op nn_op;

/* What an op kind provides. parse: check attributes (refusing what is not supported) and read
 * them into op->p; infer: output shapes from the current input shapes, op->workspace and
 * op->flops; prepare: device state (packed weights, kernels), once; launch: enqueue for the
 * current shapes. Fusion passes change op fields between parse and prepare. */
typedef struct nn_op_kind {
    const char *op_type;
    cleval_status (*parse)(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node);
    cleval_status (*infer)(cleval_nn *nn, nn_op *op);
    cleval_status (*prepare)(cleval_nn *nn, nn_op *op);
    cleval_status (*launch)(cleval_nn *nn, nn_op *op);
} nn_op_kind;

/* An activation fused into a Conv/Gemm epilogue: y = min(max(acc, lo), hi); ReLU is [0, inf).
 * `pool` adds a 2x2 stride-2 max-pool after it (CPU-style Conv only). `act` NN_LEAKY_RELU
 * (slope lo) or NN_HARD_SWISH replaces the clamp (0: the clamp). */
typedef struct nn_epilogue {
    float lo, hi;
    bool pool;
    int act;
} nn_epilogue;

typedef enum nn_binary_op {
    NN_ADD = 0,
    NN_SUB = 1,
    NN_MUL = 2,
    NN_DIV = 3,
    NN_POW = 20, /* numbered apart: other binary codes may be added independently */
    /* elementwise math (numbered from 32: other codes may be added independently) */
    NN_PRELU = 32, /* x < 0 ? slope * x : x, slope broadcast to x */
} nn_binary_op;

typedef enum nn_unary_op {
    NN_RELU = 0,
    NN_SIGMOID = 1,
    NN_TANH = 2,
    NN_CLIP = 3,
    /* Numbered apart, so unary codes added independently elsewhere cannot collide. */
    NN_SQRT = 20,
    NN_POW_SCALAR = 21, /* x^e for a constant scalar exponent e (in lo) */
    /* elementwise math (numbered from 32; their parameters alpha, beta in lo, hi) */
    NN_EXP = 32,
    NN_LOG = 33,
    NN_NEG = 34,
    NN_ABS = 35,
    NN_RECIPROCAL = 36,
    NN_ERF = 37,
    NN_GELU = 38,         /* x * (1 + erf(x / sqrt 2)) / 2 */
    NN_GELU_TANH = 39,    /* Gelu's approximate="tanh" */
    NN_LEAKY_RELU = 40,   /* x < 0 ? alpha * x : x */
    NN_ELU = 41,          /* x < 0 ? alpha * (e^x - 1) : x */
    NN_CELU = 42,         /* max(0, x) + min(0, alpha * (e^(x / alpha) - 1)) */
    NN_SELU = 43,         /* beta * (x <= 0 ? alpha * (e^x - 1) : x) (beta: ONNX's gamma) */
    NN_HARD_SIGMOID = 44, /* max(0, min(1, alpha * x + beta)) */
    NN_HARD_SWISH = 45,   /* x * max(0, min(1, x / 6 + 1 / 2)) */
    NN_SOFTPLUS = 46,     /* log(1 + e^x) */
    /* epilogue only (numbered apart from the elementwise kernels' codes) */
    NN_SILU = 63, /* x * sigmoid(x), fused into a Conv / Gemm / MatMul by passes.c */
} nn_unary_op;

/* The kernels' -DCLAMP code: 0 nothing, 1 the clamp, 2 LeakyRelu, 3 HardSwish, 4 SiLU
 * (clamp.clh). */
static inline int nn_epilogue_clamps(const nn_epilogue *ep)
{
    if (ep->act == NN_SILU) return 4;
    if (ep->act == NN_LEAKY_RELU) return 2;
    if (ep->act == NN_HARD_SWISH) return 3;
    return ep->lo != -INFINITY || ep->hi != INFINITY;
}

/* Conv and pool auto_pad: NOTSET uses the pads given, VALID none, SAME_* pads computed from the
 * input at infer (nn_same_pads). */
typedef enum nn_auto_pad {
    NN_PAD_NOTSET = 0,
    NN_PAD_VALID = 1,
    NN_PAD_SAME_UPPER = 2,
    NN_PAD_SAME_LOWER = 3,
} nn_auto_pad;

typedef struct nn_conv_params {
    uint32_t spatial; /* 1, 2 or 3 spatial axes */
    int64_t kernel[3], stride[3], dilation[3], pad_begin[3], pad_end[3];
    nn_auto_pad auto_pad;
    int64_t group;
    bool depthwise;
    int weight, bias; /* value indices (bias -1 when none) */
    nn_epilogue ep;
    nn_layout in_layout; /* how the input is stored (the producer's output layout) */
    /* Prepared (CPU-style): register tile and packing. */
    uint32_t mr, nv, k, co, panels;
    bool winograd; /* conv_winograd_cpu (decided at prepare) */
    /* int8 conv_cpu on a channels-last input with a multiple of 16 channels: K is ordered
     * window position-major, channel-minor, so runs of 16 k read 16 adjacent input codes. */
    bool channels_inner;
    int64_t table_key[6]; /* input extents and layout the offset table was built for */
} nn_conv_params;

typedef struct nn_pool_params {
    bool max;
    uint32_t spatial;
    int64_t kernel[3], stride[3], dilation[3], pad_begin[3], pad_end[3];
    nn_auto_pad auto_pad;
    bool ceil_mode; /* output extents rounded up; windows starting past the input dropped */
    bool count_include_pad;
} nn_pool_params;

typedef struct nn_gemm_params {
    bool matmul;
    bool trans_a, trans_b;
    float alpha, beta;
    nn_epilogue ep;
    uint32_t mr, nv, panels;
    bool b_packed; /* B constant and packed once at prepare */
    /* A is a channels-last [C, S] activation flattened (NHWC Conv output through Flatten):
     * B's K rows are permuted from C-major to S-major order when packed. 0: no permutation. */
    int64_t perm_c, perm_s;
    /* Per-run geometry, from infer. */
    int64_t m, n, k, batch;
    bool a_vector, b_vector; /* MatMul with a 1-D operand */
    nn_shape batch_shape;    /* MatMul batch dims of the output */
    /* The classifier's fused head (op_head.c, set by passes.c): this op also normalises its
     * rows (head_softmax 1: Softmax, 2: LogSoftmax, 0: none) and takes their argmax. */
    bool head;
    int head_softmax;
} nn_gemm_params;

typedef struct nn_elementwise_params {
    int op; /* nn_binary_op or nn_unary_op */
    /* Clip, the clamp fused into BatchNormalization; the elementwise math ops' alpha, beta */
    float lo, hi;
    float epsilon; /* BatchNormalization run on its own: y = x * scale[c] + shift[c] */
    /* Opset < 7 binary ops: broadcast=1 aligns B with A starting at `legacy_axis` (-1: at the
     * end, as numpy); broadcast=0 requires equal shapes. */
    bool legacy;
    bool legacy_broadcast;
    int64_t legacy_axis;
    /* Binary ops: a Sigmoid or HardSigmoid (its alpha, beta) fused in front of B (passes.c
     * fuse_gates; 0: none), and a Relu / Clip fused after them in lo, hi ([-inf, inf]: none). */
    int gate;
    float gate_alpha, gate_beta;
} nn_elementwise_params;

typedef struct nn_shape_params {
    int64_t axis;    /* Flatten */
    nn_shape target; /* Reshape: the constant shape, as given */
    bool allowzero;
    bool target_from_host;         /* Reshape: the shape is a host value, read at each inference */
    int64_t pads[2 * NN_MAX_RANK]; /* Pad: begins then ends */
    uint32_t n_pads;
    float value;
} nn_shape_params;

/* Host evaluation of constants and shapes (fold.c): the attributes of the node. */
typedef struct nn_fold_params {
    int64_t axis;    /* Concat, Gather; Shape: start */
    int64_t end;     /* Shape: end (INT64_MAX: the rank) */
    int64_t to;      /* Cast: the ONNX element type */
    bool fmod;       /* Mod */
    bool has_axes;   /* Squeeze / Unsqueeze / Slice: axes given as an attribute */
    uint32_t n_axes; /* entries of axes (Squeeze, Unsqueeze, Slice), perm (Transpose) */
    int64_t axes[NN_MAX_RANK];
    int64_t starts[NN_MAX_RANK], ends[NN_MAX_RANK]; /* Slice before opset 10 */
    uint32_t n_starts, n_ends;
    bool has_perm;
    bool fill_float; /* ConstantOfShape: the fill value's type */
    float fill_f32;
    int64_t fill_i64;
} nn_fold_params;
/* LSTM and GRU (op_rnn.c). Activation codes: 0 Sigmoid, 1 Tanh, 2 Relu. */
typedef struct nn_rnn_params {
    bool gru;
    int64_t hidden;           /* hidden_size (from R when the attribute is absent) */
    uint32_t dirs;            /* 2 for bidirectional */
    bool reverse;             /* direction=reverse: the only direction runs backwards */
    bool batch_major;         /* layout=1: X [batch, seq, input], Y [batch, seq, dirs, hidden] */
    float clip;               /* 0: none; else gate pre-activations clamped to [-clip, clip] */
    bool input_forget;        /* LSTM: forget gate = 1 - input gate */
    bool linear_before_reset; /* GRU */
    uint8_t act[2][3];        /* per direction: f, g (and h for LSTM) */
    int64_t input;            /* input size, from W */
    int64_t seq, batch;       /* current run, from infer */
    uint32_t local;           /* work-group size of the recurrence, from prepare */
    uint32_t rows;            /* batch rows per recurrence work-group (rnn.cl RB), from prepare */
} nn_rnn_params;

typedef struct nn_softmax_params {
    int64_t axis;
    bool log;
    bool coerce_2d; /* opset < 13: the tensor is flattened to 2-D at `axis` */
} nn_softmax_params;

/* ReduceMean/Sum/Max/Min/L2 (op_reduce.c) and LayerNormalization. */
typedef struct nn_reduce_params {
    int op;                    /* nn_reduce_op */
    int64_t axes[NN_MAX_RANK]; /* as given (possibly negative); n_axes 0: all, or none */
    uint32_t n_axes;
    bool keepdims;
    bool noop_with_empty_axes;
    float epsilon; /* LayerNormalization */
} nn_reduce_params;

typedef enum nn_reduce_op {
    NN_REDUCE_SUM = 0,
    NN_REDUCE_MEAN = 1,
    NN_REDUCE_MAX = 2,
    NN_REDUCE_MIN = 3,
    NN_REDUCE_L2 = 4,
} nn_reduce_op;
/* Data movement (op_layout.c). Slice keeps its constants as given (n_slice entries; axes
 * also holds Squeeze's and Unsqueeze's n_axes axes); the rest is resolved against the input
 * shape at each inference. */
typedef struct nn_layout_params {
    int64_t axis;        /* Concat, Split, Gather */
    int64_t num_outputs; /* Split (opset 18), 0 when not given */
    uint32_t n_perm;     /* Transpose: 0 reverses the axes */
    int64_t perm[NN_MAX_RANK];
    uint32_t n_slice;
    int64_t starts[NN_MAX_RANK], ends[NN_MAX_RANK], steps[NN_MAX_RANK];
    uint32_t n_axes; /* Slice, Squeeze, Unsqueeze */
    bool has_axes;   /* Squeeze: false removes every axis of extent 1 */
    int64_t axes[NN_MAX_RANK];
} nn_layout_params;

typedef struct nn_cast_params {
    nn_dtype to;
    bool to_half; /* to float16: the value is rounded to half and kept as float */
} nn_cast_params;

typedef struct nn_gather_rows_params {
    int64_t rows;    /* rows of the table (data's axis 0) */
    int64_t row_len; /* elements per row */
} nn_gather_rows_params;

/* Kernel tunables (tuning.c): the network's base values, and per Conv, Gemm and MatMul layer
 * the values the tuner chose for its shape (cleval tune) when the cache holds them. */
typedef struct nn_tuning {
    uint32_t conv_mr, conv_nv; /* conv_cpu register tile (MR pixels x 16 NV channels) */
    uint32_t gemm_mr, gemm_nv; /* gemm_cpu register tile */
    uint32_t gemm_kc, gemm_qb; /* gemm_cpu k-block and rows per work-item */
    /* conv_gpu / gemm_gpu tile shape: 0 chosen per layer, 1 the narrow / small one, 2 the
     * wide / large one (op_conv_gpu.c, op_gemm.c) */
    uint32_t gpu_conv_tile, gpu_gemm_tile;
    uint32_t local_1d;   /* work-group size of the one-element-per-item kernels */
    uint32_t conv_items; /* conv_cpu / gemm_cpu work-items per compute unit */
    uint32_t winograd;   /* 1: F(2x2,3x3) Winograd for eligible CPU-style Convs */
    uint32_t gpu_groups; /* gemm_gpu: work-groups wanted per compute unit (K split to get them) */
    uint32_t i8_float;   /* int8 conv_cpu / gemm_cpu: 1 exact float k-blocks, 0 int32 products */
    uint32_t gemm_batch_kib; /* gemm_cpu: KiB of workspace a batched MatMul launch may use */
    uint32_t rnn_rows;       /* LSTM / GRU recurrence: batch rows per work-group (rnn.cl RB) */
} nn_tuning;

struct nn_op {
    const nn_op_kind *kind;
    char *name;     /* the ONNX node's name */
    char label[64]; /* op type, plus what was fused into it: "Conv+Relu+MaxPool" */
    char kernel_desc[128];
    int *in; /* n_in entries (at least NN_MAX_IN allocated), -1 for an omitted input */
    uint32_t n_in;
    int *out; /* n_out entries (at least NN_MAX_OUT allocated) */
    uint32_t n_out;
    bool dead;        /* removed by a pass */
    bool alias_only;  /* output is a view of input 0: no kernel */
    bool host;        /* evaluated on the host by infer (fold.c): no kernel, no memory */
    bool mixes_batch; /* set by infer: combines samples across axis 0 */
    bool all_outputs; /* set by parse: computes every output, not only output 0 (LSTM, GRU) */
    size_t workspace; /* scratch bytes needed during launch, set by infer */
    int workspace_slot;
    double flops; /* per launch at the current shapes, set by infer */
    /* int8 (Conv, Gemm, MatMul): runs on int8 kernels; its input is quantised with x_scale.
     * quantisable: int8 would run it so (nn_mark_quantisable): the calibration's layers. */
    bool quantisable;
    bool int8;
    float x_scale;
    cl_kernel k[NN_MAX_KERNELS];
    cl_mem mem[NN_MAX_BUFFERS]; /* owned device buffers: packed weights, tables */
    union {
        nn_conv_params conv;
        nn_pool_params pool;
        nn_gemm_params gemm;
        nn_elementwise_params ew;
        nn_shape_params shape;
        nn_softmax_params softmax;
        nn_reduce_params reduce;
        nn_fold_params fold;
        nn_layout_params layout;
        nn_rnn_params rnn;
        nn_cast_params cast;
        nn_gather_rows_params gather_rows;
    } p;
    cleval_nn_layer prof;
    /* Set by parse when the op flags problems on the device (an index out of range): called
     * after a run's kernels were enqueued, it waits for the device and fails naming the node. */
    cleval_status (*check)(cleval_nn *nn, nn_op *op);
    /* Conv, Gemm, MatMul (tuned true): the tunables of this layer and where they came from
     * (nn_tuning_source_name), chosen by nn_tuning_assign; tuning_key names its cache entry
     * ("" when its shapes were not known at create). Other ops use the network's base. */
    bool tuned;
    nn_tuning tuning;
    int tuning_source;
    char tuning_key[17];
};

/* Where a layer's tunables came from. */
typedef enum nn_tuning_source {
    NN_TUNING_DERIVED, /* from the device's queried properties */
    NN_TUNING_SHIPPED, /* a profile measured on this kind of device, shipped with cleval */
    NN_TUNING_CACHE,   /* the tuner's winner for this layer's shape (cleval tune) */
    NN_TUNING_ENV,     /* CLEVAL_NN_TUNING */
    NN_TUNING_FORCED,  /* a tuner candidate (cleval_nn_options.tuning_override) */
} nn_tuning_source;
const char *nn_tuning_source_name(int source);

/* The network's base tunables: a shipped profile when the device is a measured kind, else
 * derived from its properties (*source says which). */
cleval_status nn_tuning_base(const cleval_device *dev, cleval_kernel_variant variant,
                             nn_tuning *out, nn_tuning_source *source);
/* Applies "name=value,..." (CLEVAL_NN_TUNING's form, also a cache entry's) to t; `what` names
 * the text in the refusal. Checks the result's constraints. */
cleval_status nn_tuning_apply(nn_tuning *t, const char *text, const char *what);
/* Writes every tunable of t as "name=value,..." (the cache entry). */
void nn_tuning_format(const nn_tuning *t, char *out, size_t size);
/* Whether the tuner times this op (Conv, Gemm, MatMul). */
bool nn_tuning_applies(const nn_op *op);
/* Chooses each tunable layer's values once its shapes are known: `override` non-NULL (a tuner
 * candidate): base + override for all, no cache, no environment; NULL: the cache's entry for
 * the layer's key, else the base, then CLEVAL_NN_TUNING on top. Logs each at INFO. */
cleval_status nn_tuning_assign(cleval_nn *nn, const char *override);
/* Makes op's tunables (NULL: the network's base) the ones nn->tuning holds: called before each
 * infer, prepare and launch of an op, so the op files read nn->tuning as they always have. */
void nn_use_tuning(cleval_nn *nn, const nn_op *op);

typedef struct nn_slot {
    cl_mem mem;
    size_t capacity;  /* bytes of mem */
    size_t need;      /* bytes required by the current plan */
    bool holds_value; /* the current plan places a value in it (else only workspaces) */
} nn_slot;

struct cleval_nn {
    cleval_device *dev;
    cleval_kernel_variant variant;
    cleval_nn_precision precision;
    bool half_math; /* fp16 with half arithmetic: every kernel is built with -DHALF_MATH=1 */
    cleval_nn_model_info info;
    /* While cleval_nn_calibrate runs: per op, the largest |input 0| seen so far. */
    double *capture;
    /* The tunables the op being inferred, prepared or launched runs with (nn_use_tuning);
     * the base values outside those. */
    nn_tuning tuning;
    nn_tuning base_tuning;
    nn_tuning_source base_source;
    char *path;
    int64_t opset;
    bool general;
    nn_value *values;
    uint32_t n_values, cap_values;
    nn_op *ops;
    uint32_t n_ops, cap_ops;
    int *inputs; /* runtime inputs */
    uint32_t n_inputs;
    int *outputs;
    uint32_t n_outputs;
    /* Classifier. */
    uint32_t sample_rank;
    uint64_t sample_shape[NN_MAX_RANK];
    uint64_t sample_size;
    uint32_t width;
    uint32_t max_batch;
    cl_mem pred;
    cl_mem nonfinite; /* uint32 [n]: each row's NaN and infinite scores */
    size_t pred_capacity;
    cl_kernel argmax;
    /* The fused head (op_head.c): the network's last Gemm writes pred and nonfinite itself;
     * it skips writing the scores when nobody reads them, and counts each row's (label,
     * prediction) into head_hist (uint32 [head_rows][head_cols]) when that is set. */
    bool has_head;
    bool head_scores_unread;
    cl_mem head_hist, head_labels;
    uint32_t head_rows, head_cols;
    /* Memory plan for the shapes of the latest inference. */
    nn_slot *slots;
    uint32_t n_slots;
    bool shapes_valid;  /* values' shapes match planned_n / planned inputs */
    uint32_t planned_n; /* classifier: the batch the current shapes are for */
    /* While the classifier is validated at a batch of 2: every value's shape at a batch of 1,
     * from which nn_infer_all finds the batch axes (nn_value.batch_axis). */
    const nn_shape *batch_ref;
    /* Execution. */
    cl_command_queue queue; /* the device's queue, or prof_queue while profiling */
    cl_command_queue prof_queue;
    bool profiling;
    cl_event *events; /* profiling: one per launch of the current run */
    int *event_op;
    uint32_t n_events, cap_events;
    cleval_nn_layer *layers; /* profile view: op indices of live kernel ops */
    uint32_t n_layers;
    int *layer_op;
    /* How each runtime input's host data reaches the device (feed.c). */
    struct nn_feed *feeds;     /* [n_inputs] */
    cleval_nn_input_prep prep; /* mean and std point into prep_values */
    float *prep_values;
};

/* ---- graph.c ---- */
/* Records "<path>: node '<name>' (<op>): <message>" and returns `status`. */
cleval_status nn_fail_op(const cleval_nn *nn, const nn_op *op, cleval_status status,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));
cleval_status nn_build_graph(cleval_nn *nn, const cleval_onnx_model *model,
                             const cleval_nn_options *options);
/* A malloc'd copy of s, or NULL. */
char *nn_copy_string(const char *s);
/* Makes v->f32 v's own copy where it is borrowed from the model (before changing it). */
cleval_status nn_own_f32(cleval_nn *nn, nn_value *v);
/* Frees v->f32 (or lets go of the borrowed array). */
void nn_drop_f32(nn_value *v);
/* Adds a constant value (takes ownership of f32); returns its index or -1 (NOMEM recorded). */
int nn_add_const(cleval_nn *nn, const char *name, const nn_shape *shape, float *f32);
const nn_op_kind *nn_find_kind(const char *op_type);
uint64_t nn_shape_count(const nn_shape *s);
/* Multiplies dims with overflow and size checks: false when above NN_MAX_ELEMENTS. */
bool nn_shape_count_checked(const nn_shape *s, uint64_t *count);
void nn_shape_format(const nn_shape *s, char *buf, size_t size);
/* The value of op input i (i < n_in and in[i] >= 0). */
static inline nn_value *nn_in(cleval_nn *nn, const nn_op *op, uint32_t i)
{
    assert(i < op->n_in && op->in[i] >= 0 && (uint32_t)op->in[i] < nn->n_values);
    return &nn->values[op->in[i]];
}
static inline nn_value *nn_out(cleval_nn *nn, const nn_op *op, uint32_t i)
{
    assert(i < op->n_out && op->out[i] >= 0 && (uint32_t)op->out[i] < nn->n_values);
    return &nn->values[op->out[i]];
}
/* The input is present (not omitted with ""). */
static inline bool nn_has_in(const nn_op *op, uint32_t i)
{
    return i < op->n_in && op->in[i] >= 0;
}
/* Fails unless input i is a constant; `what` names it ("shape", "pads"). */
cleval_status nn_require_const(cleval_nn *nn, const nn_op *op, uint32_t i, const char *what);
/* The typed attribute getters of cleval/onnx.h, with the model path added to messages. */
cleval_status nn_attr_int(cleval_nn *nn, const cleval_onnx_node *node, const char *name,
                          int64_t fallback, int64_t *value);
cleval_status nn_attr_float(cleval_nn *nn, const cleval_onnx_node *node, const char *name,
                            float fallback, float *value);
cleval_status nn_attr_string(cleval_nn *nn, const cleval_onnx_node *node, const char *name,
                             const char *fallback, const char **value);
cleval_status nn_attr_ints(cleval_nn *nn, const cleval_onnx_node *node, const char *name,
                           const int64_t **values, uint32_t *count);
/* A boolean attribute (an INT that ONNX allows to be 0 or 1 only); any other value is refused
 * as invalid, naming the node. */
cleval_status nn_attr_bool(cleval_nn *nn, const nn_op *op, const cleval_onnx_node *node,
                           const char *name, bool fallback, bool *value);
/* Refuses any attribute of `node` not in the NULL-terminated list `known`. */
cleval_status nn_check_attrs(cleval_nn *nn, const nn_op *op, const cleval_onnx_node *node,
                             const char *const *known);
/* Normalises a possibly negative axis against rank; false when out of range. */
bool nn_axis(int64_t axis, uint32_t rank, uint32_t *out);

/* Whether input i of a device op of `kind` is shape-like (shape, axes, starts, pads...): a
 * constant or host value read with nn_host_ints during infer. A host value in any other input
 * is a data operand: the kernels read its device copy (nn_upload_host_operands). */
bool nn_reads_host_input(const nn_op_kind *kind, uint32_t i);

/* ---- infer (shapes.c) ---- */
/* Infers every op's output shapes from the runtime inputs' current shapes. */
cleval_status nn_infer_all(cleval_nn *nn);
/* Numpy broadcasting of two shapes; false when they do not broadcast. */
bool nn_broadcast(const nn_shape *a, const nn_shape *b, nn_shape *out);

/* ---- fold.c ---- */
/* The host kind of a node whose inputs are constants (all_const) or host values: evaluated on
 * the host. NULL when its operator has no host evaluator or this node runs on the device: a
 * float fill (ConstantOfShape) or float input 0 (float_data: Expand) brought to a computed
 * shape is an activation. */
const nn_op_kind *nn_host_kind(const cleval_onnx_node *node, bool all_const, bool float_data);
/* Whether the host kind of op_type reads only its inputs' shapes (Shape, Size): such an op is
 * evaluated on the host whatever its input. */
bool nn_host_reads_shapes(const nn_op_kind *kind);
/* Evaluates a host op whose inputs are all constants: its outputs become constants and the op
 * is marked dead. Once, at load. */
cleval_status nn_fold_op(cleval_nn *nn, nn_op *op);
/* The int64 values of op input i, a constant or a host value (current during infer); `what`
 * names the input in refusals ("shape"). Refuses any other input, naming node and input. */
cleval_status nn_host_ints(cleval_nn *nn, const nn_op *op, uint32_t i, const char *what,
                           const int64_t **values, uint64_t *count);
/* Op input i as a shape (nn_host_ints, then dims >= 0 and rank at most NN_MAX_RANK). */
cleval_status nn_host_shape(cleval_nn *nn, const nn_op *op, uint32_t i, nn_shape *shape);
/* ConstantOfShape's attributes into op->p.fold (its fill: float 0 when absent). */
cleval_status nn_constantofshape_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node);
/* ---- the batch axis (shapes.c) ----
 * A classifier evaluates samples independently: an op must not reduce, contract or normalise
 * along its input's batch axis. Ops check this in infer with the helpers below and set
 * op->mixes_batch; the batch axes are known while the classifier is validated (nn->batch_ref
 * set), and the helpers find nothing to refuse otherwise. */
/* The batch of the current inference: the classifier input's axis 0 (0 for general graphs). */
int64_t nn_batch_size(const cleval_nn *nn);
/* The batch axis of value v, -1 when it has none (constants, general graphs). */
static inline int nn_batch_axis(const nn_value *v)
{
    return v->varying ? v->batch_axis : -1;
}
/* Reshape-like views (Reshape, Flatten): sets y's batch axis from x's where the batch digit of
 * the row-major order falls inside one axis of y, or marks op as mixing samples. */
void nn_reshape_batch(const cleval_nn *nn, nn_op *op, const nn_value *x, nn_value *y);
/* Broadcasting ops: the varying operands carry the batch on one and the same axis of `out`
 * (right-aligned, not broadcast along it) and the constant ones have extent 1 there. */
bool nn_broadcast_keeps_batch(const nn_value *const *operands, const nn_shape *const *shapes,
                              uint32_t count, const nn_shape *out);

/* ---- passes.c ---- */
cleval_status nn_optimise(cleval_nn *nn);

/* ---- op_head.c ---- */
#define NN_HEAD_MAX_WIDTH 1024 /* classes a fused head takes (its score tile is local memory) */
/* Weights (K x C) a fused head takes: every work-group reads all of B for its few rows, which
 * is cheap while B stays in cache (1 MiB); a larger product runs on gemm_gpu's tiles. */
#define NN_HEAD_MAX_WEIGHTS 262144
/* Whether the fused head takes n classes and k inputs (the bounds above) on this device. */
bool nn_head_fits(const cleval_nn *nn, int64_t n, int64_t k);
/* A Gemm / MatMul with p.gemm.head: prepare and launch (called by op_gemm.c). */
cleval_status nn_head_prepare(cleval_nn *nn, nn_op *op);
cleval_status nn_head_launch(cleval_nn *nn, nn_op *op);

/* ---- precision.c ---- */
/* Magnitude pruning of the constant weights of Conv, Gemm and MatMul (before nn_optimise). */
cleval_status nn_prune(cleval_nn *nn, double sparsity);
/* Sets every op's `quantisable`: whether an int8 network runs it on int8 kernels, a Conv that
 * is not depthwise, or a Gemm / MatMul with a varying A and a constant 2-D B with float values,
 * K at most NN_INT8_MAX_K. Once, after nn_optimise, while the host float copies exist. */
#define NN_INT8_MAX_K 131072 /* 131072 * 127 * 127 < 2^31: int32 sums cannot overflow */
void nn_mark_quantisable(cleval_nn *nn);
/* fp16: chooses which values are stored as half (after nn_optimise). */
void nn_choose_storage(cleval_nn *nn);
/* Bytes per element of value v as stored (4, or 2 for half). */
size_t nn_value_elem_bytes(const cleval_nn *nn, int v);
/* The IEEE half nearest to f (ties to even), as bits. */
uint16_t nn_half_bits(float f);
/* A malloc'd half copy of n floats (NULL when out of memory). */
uint16_t *nn_to_half(const float *src, size_t n);
/* Symmetric per-channel int8 quantisation: channel c's element e is w[c * cs + e * es] (e <
 * per); scales[c] = max|w| / 127 (1 for an all-zero channel) and the code of that element,
 * clamp(rint(w / scales[c]), -127, 127), goes to q at the same index, as a float. */
void nn_quantise_channels(const float *w, int64_t channels, int64_t per, int64_t cs, int64_t es,
                          float *q, float *scales);
/* The activation scale for a calibrated max |x| (1 when it is 0 or not finite). */
float nn_activation_scale(double maxabs);
/* int8: enqueue kernels/quantize.cl with op's input scale: n contiguous elements; A(r, k) =
 * x[x_off + r * rs + k * ks] into rows x cols row-major codes; or into a zero-bordered copy
 * (shapes and begin as nn_launch_pad). Offsets are in elements. */
cleval_status nn_launch_quantize(cleval_nn *nn, nn_op *op, cl_kernel k, cl_mem x, int64_t x_off,
                                 cl_mem y, int64_t y_off, uint64_t n);
cleval_status nn_launch_quantize_2d(cleval_nn *nn, nn_op *op, cl_kernel k, cl_mem x, int64_t x_off,
                                    int64_t rs, int64_t ks, int64_t rows, int64_t cols, cl_mem y,
                                    int64_t y_off);
cleval_status nn_launch_quantize_pad(cleval_nn *nn, nn_op *op, cl_kernel k, cl_mem x, cl_mem y,
                                     const nn_shape *in, const nn_shape *out, const int64_t *begin);
/* Calibration: updates nn->capture[op] with the largest |x| of op's input (runs are waited
 * for). */
cleval_status nn_capture_input(cleval_nn *nn, const nn_op *op);
/* Fills nn->info (after nn_optimise, while host constants are still there); NOMEM when it
 * cannot. */
cleval_status nn_compute_info(cleval_nn *nn, uint32_t calibration_samples, double prune);
/* Uploads float data as stored for the mode: half when `half`, char codes when `int8` (the
 * floats are then exact integers in [-127, 127]), float otherwise. */
cleval_status nn_upload_as(cleval_nn *nn, const float *data, size_t count, bool half, bool int8,
                           const char *what, cl_mem *out);
/* "-DX_HALF=.." style flag: 1 when value v is stored as half. */
static inline int nn_half(const cleval_nn *nn, int v)
{
    return v >= 0 && nn->values[v].half ? 1 : 0;
}
/* The fp16 tag of a multiply kernel's description (--profile): " fp16", plus " half-math"
 * when it computes in half. */
static inline const char *nn_fp16_tag(const cleval_nn *nn)
{
    return nn->half_math ? " fp16 half-math" : " fp16";
}
/* The OpenCL C type of an element type ("uchar", "long", ...; op_cast.c). */
const char *nn_dtype_cl(nn_dtype t);
/* The storage options of a kernel that reads value x and writes value y:
 * "-DX_HALF=.. -DY_HALF=..", or "-DRAW_T=<type>" for an integer x (storage.clh). */
static inline void nn_storage_options(const cleval_nn *nn, int x, int y, char *out, size_t size)
{
    /* Integer tensors reach only the data-movement ops (nn_settle_dtypes), which copy them. */
    if (x >= 0 && nn->values[x].dtype != NN_FLOAT)
        snprintf(out, size, "-DRAW_T=%s", nn_dtype_cl(nn->values[x].dtype));
    else
        snprintf(out, size, "-DX_HALF=%d -DY_HALF=%d", nn_half(nn, x), nn_half(nn, y));
}

/* ---- feed.c: runtime inputs from host data ---- */
/* Sets up every runtime input's conversion (after the ops are prepared): the preprocessing of
 * options->input checked against the classifier input, and each input fed in its default type
 * (float for float and float16 inputs, the input's own type otherwise; general graphs: float). */
cleval_status nn_feed_init(cleval_nn *nn, const cleval_onnx_model *model,
                           const cleval_nn_options *options);
/* Writes runtime input i's host data (its current count of elements, of its feed type) to its
 * device buffer, converting on the device where the types differ or preprocessing applies. */
/* Enqueues input i's host data and its conversion to the graph input. keep_data: the caller
 * leaves `data` unchanged until the device's queue has finished the commands enqueued so far
 * (the upload may still be reading it on return); else the call returns once it is read. */
cleval_status nn_feed_write(cleval_nn *nn, uint32_t i, const void *data, bool keep_data);
/* Bytes of one classifier sample as fed. */
size_t nn_feed_sample_bytes(const cleval_nn *nn);
/* Bytes of the device buffers the feeds hold (staging and preprocessing). */
uint64_t nn_feed_device_bytes(const cleval_nn *nn);
void nn_feed_release(cleval_nn *nn);

/* ---- op_cast.c: element types ---- */
/* The device type of an ONNX element type; false for one values cannot have. */
bool nn_dtype_from_onnx(int32_t onnx, nn_dtype *out);
const char *nn_dtype_name(nn_dtype t);
size_t nn_dtype_bytes(nn_dtype t);
/* After op's parse: the element types of its outputs (views keep their input's; Cast and
 * Gather set theirs), refusing a non-float runtime input to an op that computes in float. */
cleval_status nn_settle_dtypes(cleval_nn *nn, nn_op *op);

/* ---- plan.c ---- */
/* Assigns device buffers to activations and workspaces for the current shapes, growing
 * buffers where needed. */
cleval_status nn_plan(cleval_nn *nn);
void nn_release_plan(cleval_nn *nn);
/* The device buffer holding value v (an activation or runtime input, after nn_plan). */
cl_mem nn_value_mem(cleval_nn *nn, int v);
cl_mem nn_workspace_mem(cleval_nn *nn, const nn_op *op);
/* Uploads the host values that device ops read as data operands and that have no device
 * copy yet (or no longer: host evaluation drops a copy whose contents changed), as floats. */
cleval_status nn_upload_host_operands(cleval_nn *nn);
/* The device copy of a float constant, uploaded on first use. */
cleval_status nn_const_mem(cleval_nn *nn, int v, cl_mem *out);
/* A read-only device buffer initialised from host memory. */
cleval_status nn_upload(cleval_nn *nn, const void *data, size_t bytes, const char *what,
                        cl_mem *out);

/* A device buffer the kernels read and write, without initial contents. */
cleval_status nn_device_buffer_rw(cleval_nn *nn, size_t bytes, const char *what, cl_mem *out);

/* ---- launch helpers (nn.c) ---- */
/* Kernel arguments are set with cleval/device.h's builder: cleval_kernel_args_begin(kernel,
 * NULL) (the name is looked up on failure), cleval_kernel_arg_*(). */
/* Launches a's kernel with cleval_kernel_launch() on the network's queue, naming `op` (may be
 * NULL) in a failure and recording a profiling event for it when profiling. */
cleval_status nn_enqueue(cleval_nn *nn, nn_op *op, const cleval_kernel_args *a, cl_uint dims,
                         const size_t *global, const size_t *local);
/* Builds kernel `kernel` of kernels/<program>.cl with options (and -DHALF_MATH=1 when the
 * network computes in half). */
cleval_status nn_kernel(cleval_nn *nn, nn_op *op, const char *program, const char *options,
                        const char *kernel, cl_kernel *out);
/* op->k[0] = `kernel` of kernels/<program>.cl for input 0's and output 0's storage
 * (nn_storage_options), which is also its --profile description. */
cleval_status nn_storage_kernel(cleval_nn *nn, nn_op *op, const char *program, const char *kernel);
/* Local size for 1-D elementwise kernels, and the global size rounded up to it. */
size_t nn_local_1d(const cleval_nn *nn);

/* ---- op kinds (op_*.c) ---- */
extern const nn_op_kind nn_kind_conv;
extern const nn_op_kind nn_kind_maxpool, nn_kind_averagepool, nn_kind_globalaveragepool;
extern const nn_op_kind nn_kind_gemm, nn_kind_matmul;
extern const nn_op_kind nn_kind_add, nn_kind_sub, nn_kind_mul, nn_kind_div;
extern const nn_op_kind nn_kind_relu, nn_kind_sigmoid, nn_kind_tanh, nn_kind_clip;
extern const nn_op_kind nn_kind_batchnorm;
extern const nn_op_kind nn_kind_flatten, nn_kind_reshape, nn_kind_identity, nn_kind_dropout;
extern const nn_op_kind nn_kind_pad;
extern const nn_op_kind nn_kind_softmax, nn_kind_logsoftmax;
extern const nn_op_kind nn_kind_pow, nn_kind_sqrt;
extern const nn_op_kind nn_kind_reducemean, nn_kind_reducesum, nn_kind_reducemax, nn_kind_reducemin,
    nn_kind_reducel2, nn_kind_layernorm;

/* Replaces torch's decomposed LayerNorm (ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt,
 * Div, Mul gamma, Add beta) by one LayerNormalization op where the pattern is exact
 * (fuse_layernorm.c). */
cleval_status nn_fuse_layernorm(cleval_nn *nn);
extern const nn_op_kind nn_kind_expand, nn_kind_constantofshape;
extern const nn_op_kind nn_kind_concat, nn_kind_split, nn_kind_slice, nn_kind_transpose;
extern const nn_op_kind nn_kind_gather, nn_kind_squeeze, nn_kind_unsqueeze;
/* Kinds with any number of inputs and outputs, all of them computed (Concat, Split). */
bool nn_kind_variadic(const nn_op_kind *kind);
extern const nn_op_kind nn_kind_lstm, nn_kind_gru;
/* Whether a node of this kind may leave output 0 unnamed (LSTM and GRU compute Y_h and Y_c
 * without Y). */
bool nn_kind_may_omit_output0(const nn_op_kind *kind);
extern const nn_op_kind nn_kind_cast, nn_kind_gather_rows;
extern const nn_op_kind nn_kind_exp, nn_kind_log, nn_kind_neg, nn_kind_abs, nn_kind_reciprocal,
    nn_kind_erf, nn_kind_gelu, nn_kind_leakyrelu, nn_kind_elu, nn_kind_celu, nn_kind_selu,
    nn_kind_hardsigmoid, nn_kind_hardswish, nn_kind_softplus, nn_kind_prelu;

/* ---- weight packing shared by Conv and Gemm (pack.c) ---- */
/* The CPU-style microkernel's tile (mr x 16 nv) for `n_cols` output columns, from the tuned
 * tile; narrow outputs (16 columns or fewer) use one vector. */
void nn_choose_tile(uint32_t n_cols, uint32_t tuned_mr, uint32_t tuned_nv, uint32_t *mr,
                    uint32_t *nv);
/* Panels of 16 * nv columns that hold n columns. */
int64_t nn_panel_count(int64_t n, uint32_t nv);
/* Packs `count` matrices B_i (K x N; element (k, j) of B_i at b[i * bs + k * ks + j * ns]) into
 * panels [P][K][NR] of NR = 16 * nv columns, zero beyond N, B_i's panels at float
 * i * P * K * NR. Returns malloc'd memory (at least one float) or NULL. */
float *nn_pack_panels(const float *b, int64_t count, int64_t bs, int64_t k, int64_t n, int64_t ks,
                      int64_t ns, uint32_t nv);
/* Per-column values of `count` matrices of n columns (v[i * n + j]; NULL: zeros), each padded
 * with zeros to its panels' P * NR columns, as the epilogues read them 16 at a time. Returns
 * malloc'd memory (at least one float) or NULL. */
float *nn_pad_panel_columns(const float *v, int64_t count, int64_t n, uint32_t nv);
/* int8 weights: malloc'd codes and scales of nn_quantise_channels(); NOMEM ("out of memory
 * quantising <what>", both NULL) when they cannot be allocated. */
cleval_status nn_quantise_weights(const float *w, int64_t channels, int64_t per, int64_t cs,
                                  int64_t es, const char *what, float **codes, float **scales);

/* The window attributes shared by Conv and the pools (op_pool.c): kernel_shape (when given),
 * strides, dilations, pads and auto_pad. */
cleval_status nn_parse_window(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node,
                              uint32_t spatial, int64_t *kernel, int64_t *stride, int64_t *dilation,
                              int64_t *pad_begin, int64_t *pad_end, nn_auto_pad *auto_pad);
/* auto_pad SAME_*: the pads of each spatial axis for input extents `in`, so the output has
 * ceil(in / stride) positions; an odd total puts the extra one at the end (UPPER) or at the
 * beginning (LOWER). Other modes leave the pads alone. */
void nn_same_pads(nn_auto_pad mode, uint32_t spatial, const int64_t *in, const int64_t *kernel,
                  const int64_t *stride, int64_t *pad_begin, int64_t *pad_end);

/* Enqueues the rank-8 constant pad kernel: y = x placed at `begin` in `out`, `value` elsewhere
 * (op_shape.c; Conv uses it for its zero-padded input copy). */
cleval_status nn_launch_pad(cleval_nn *nn, nn_op *op, cl_kernel k, cl_mem x, cl_mem y,
                            const nn_shape *in, const nn_shape *out, const int64_t *begin,
                            float value);
/* Appends the pad kernels' (pad_nd, quantize_pad) shape arguments: out's and in's dims and
 * begin, right-aligned into int8 vectors (op_shape.c). */
void nn_arg_pad_dims(cleval_kernel_args *a, const nn_shape *in, const nn_shape *out,
                     const int64_t *begin);
/* The F(2x2, 3x3) Winograd path of Conv (op_winograd.c). */
bool nn_winograd_eligible(const cleval_nn *nn, const nn_op *op);
size_t nn_winograd_workspace(const cleval_nn *nn, const nn_op *op);
cleval_status nn_winograd_prepare(cleval_nn *nn, nn_op *op, const char *options);
cleval_status nn_winograd_launch(cleval_nn *nn, nn_op *op);
/* The depthwise path of Conv for CPU-style devices (op_conv_depthwise.c): eligible ops read and
 * write either layout. */
bool nn_depthwise_cpu_eligible(const cleval_nn *nn, const nn_op *op);
cleval_status nn_depthwise_cpu_prepare(cleval_nn *nn, nn_op *op, const char *precision);
cleval_status nn_depthwise_cpu_launch(cleval_nn *nn, nn_op *op);
size_t nn_depthwise_cpu_workspace(const cleval_nn *nn, const nn_op *op); /* bytes */
/* The zero-bordered input copy of the CPU convolutions (conv_pad.c): the kernel for input 0's
 * storage, and its launch for row-major shapes of rank <= 5 (begin: the pads before each axis). */
cleval_status nn_conv_pad_kernel(cleval_nn *nn, nn_op *op, cl_kernel *out);
/* The layout pass's groups of values tied through elementwise ops (layout_chains.c): each group
 * read and written only by ops for which writes_any holds, or by the group's own ops, is stored
 * channels-last. */
cleval_status nn_layout_through_elementwise(cleval_nn *nn,
                                            bool (*writes_any)(const cleval_nn *, const nn_op *));
cleval_status nn_launch_conv_pad(cleval_nn *nn, nn_op *op, cl_kernel k, cl_mem x, cl_mem y,
                                 const nn_shape *in, const nn_shape *out, const int64_t *begin);
/* The Winograd path's copy of a [N, C, H, W] input 0 in its own layout into a zero-bordered
 * channels-last [N][ph][pw][C rounded up to 16] (pad_b: top and left). */
cleval_status nn_conv_repack_kernel(cleval_nn *nn, nn_op *op, cl_kernel *out);
cleval_status nn_launch_conv_repack(cleval_nn *nn, nn_op *op, cl_kernel k, cl_mem x, cl_mem y,
                                    int64_t ph, int64_t pw, const int64_t pad_b[2]);
/* Conv (not depthwise) for the GPU kernel family (op_conv_gpu.c, kernels/conv_gpu.cl);
 * `precision` is the storage and int8 options shared by every Conv kernel build. */
cleval_status nn_conv_gpu_prepare(cleval_nn *nn, nn_op *op, const char *precision);
cleval_status nn_conv_gpu_launch(cleval_nn *nn, nn_op *op);

/* Enqueues argmax of rows [n][c] into pred, and each row's count of NaN and infinite scores
 * into nonfinite (softmax.c). */
cleval_status nn_launch_argmax(cleval_nn *nn, cl_mem scores, cl_mem pred, cl_mem nonfinite,
                               uint32_t n, uint32_t c);

#endif
