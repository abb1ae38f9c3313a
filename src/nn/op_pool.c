/* Pooling: MaxPool and AveragePool over 1 to 3 spatial axes (pads or auto_pad, strides,
 * dilations, ceil_mode, count_include_pad both ways), GlobalAveragePool.
 * kernels/pool.cl: on GPUs one output per work-item (`pool`); on CPUs a run of up to
 * POOL_COLS outputs of one output row per work-item (`pool_rows`), which does the window's
 * index arithmetic once per run (a 2x2 max-pool after a Conv is fused into the Conv instead). */
#include "nn_internal.h"

#include <stdio.h>
#include <string.h>

static const char *const AUTO_PAD_NAMES[] = {"NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"};

static cleval_status parse_auto_pad(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node,
                                    nn_auto_pad *mode)
{
    const char *auto_pad;
    cleval_status status = nn_attr_string(nn, node, "auto_pad", "NOTSET", &auto_pad);
    if (status != CLEVAL_OK) return status;
    for (int i = 0; i < 4; i++)
        if (strcmp(auto_pad, AUTO_PAD_NAMES[i]) == 0) {
            *mode = (nn_auto_pad)i;
            return CLEVAL_OK;
        }
    return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "attribute auto_pad=%s is not valid", auto_pad);
}

cleval_status nn_parse_window(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node,
                              uint32_t spatial, int64_t *kernel, int64_t *stride, int64_t *dilation,
                              int64_t *pad_begin, int64_t *pad_end, nn_auto_pad *auto_pad)
{
    const int64_t *values;
    uint32_t count;
    cleval_status status = parse_auto_pad(nn, op, node, auto_pad);
    if (status != CLEVAL_OK) return status;
    for (uint32_t i = 0; i < 3; i++) {
        kernel[i] = stride[i] = dilation[i] = 1;
        pad_begin[i] = pad_end[i] = 0;
    }
    if ((status = nn_attr_ints(nn, node, "kernel_shape", &values, &count)) != CLEVAL_OK)
        return status;
    if (values) {
        if (count != spatial)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                              "kernel_shape has %u entries for %u spatial axes", count, spatial);
        for (uint32_t i = 0; i < count; i++)
            kernel[i] = values[i];
    }
    if ((status = nn_attr_ints(nn, node, "strides", &values, &count)) != CLEVAL_OK) return status;
    if (values) {
        if (count != spatial)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                              "strides has %u entries for %u spatial "
                              "axes",
                              count, spatial);
        for (uint32_t i = 0; i < count; i++)
            stride[i] = values[i];
    }
    if ((status = nn_attr_ints(nn, node, "dilations", &values, &count)) != CLEVAL_OK) return status;
    if (values) {
        if (count != spatial)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                              "dilations has %u entries for %u spatial "
                              "axes",
                              count, spatial);
        for (uint32_t i = 0; i < count; i++)
            dilation[i] = values[i];
    }
    if ((status = nn_attr_ints(nn, node, "pads", &values, &count)) != CLEVAL_OK) return status;
    if (values) {
        if (*auto_pad != NN_PAD_NOTSET)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "pads given with auto_pad=%s",
                              AUTO_PAD_NAMES[*auto_pad]);
        if (count != 2 * spatial)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "pads has %u entries for %u spatial axes",
                              count, spatial);
        for (uint32_t i = 0; i < spatial; i++) {
            pad_begin[i] = values[i];
            pad_end[i] = values[spatial + i];
        }
    }
    for (uint32_t i = 0; i < spatial; i++) {
        if (kernel[i] < 1 || kernel[i] > 1 << 20 || stride[i] < 1 || stride[i] > 1 << 20 ||
            dilation[i] < 1 || dilation[i] > 1 << 20)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                              "kernel, stride and dilation must be between 1 and 2^20");
        if (pad_begin[i] < 0 || pad_end[i] < 0 || pad_begin[i] > 1 << 20 || pad_end[i] > 1 << 20)
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "pads must be between 0 and 2^20");
        /* Where SAME meets dilation, runtimes disagree on the pads (the dilated or the plain
         * kernel extent) or refuse it. */
        if (dilation[i] != 1 && (*auto_pad == NN_PAD_SAME_UPPER || *auto_pad == NN_PAD_SAME_LOWER))
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                              "attribute auto_pad=%s is not supported with dilations other than 1",
                              AUTO_PAD_NAMES[*auto_pad]);
    }
    return CLEVAL_OK;
}

void nn_same_pads(nn_auto_pad mode, uint32_t spatial, const int64_t *in, const int64_t *kernel,
                  const int64_t *stride, int64_t *pad_begin, int64_t *pad_end)
{
    if (mode != NN_PAD_SAME_UPPER && mode != NN_PAD_SAME_LOWER) return;
    for (uint32_t i = 0; i < spatial; i++) {
        int64_t out = (in[i] + stride[i] - 1) / stride[i];
        int64_t total = (out - 1) * stride[i] + kernel[i] - in[i];
        /* A stride larger than the kernel can leave input behind: no negative pads, the first
         * window starts at the input's first element. */
        if (total < 0) total = 0;
        int64_t small = total / 2;
        pad_begin[i] = mode == NN_PAD_SAME_UPPER ? small : total - small;
        pad_end[i] = total - pad_begin[i];
    }
}

/* Output extent of a window along one axis (floor mode), or -1 when the window does not fit. */
int64_t nn_window_out(int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                      int64_t pad_begin, int64_t pad_end)
{
    int64_t span = (kernel - 1) * dilation + 1;
    int64_t padded = in + pad_begin + pad_end;
    if (padded < span) return -1;
    return (padded - span) / stride + 1;
}

/* A pool's output extent along axis i for an input extent `in` (pads already set): floor mode as
 * Conv; ceil_mode rounds up, then drops a last window that would start in the end padding or
 * beyond, as onnxruntime and torch do. -1 when the window does not fit. */
static int64_t pool_out(const nn_pool_params *p, uint32_t i, int64_t in)
{
    int64_t out = nn_window_out(in, p->kernel[i], p->stride[i], p->dilation[i], p->pad_begin[i],
                                p->pad_end[i]);
    if (out < 0 || !p->ceil_mode) return out;
    int64_t span = (p->kernel[i] - 1) * p->dilation[i] + 1;
    int64_t rest = in + p->pad_begin[i] + p->pad_end[i] - span;
    if (rest % p->stride[i] != 0) out++;
    if ((out - 1) * p->stride[i] >= in + p->pad_begin[i]) out--;
    return out;
}

/* The spatial axes of an input of rank 3..5 ([N, C, spatial...]). */
static cleval_status spatial_rank(cleval_nn *nn, const nn_op *op, const nn_shape *x,
                                  uint32_t *spatial)
{
    if (x->rank < 3 || x->rank > 5)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "input has rank %u; 1 to 3 spatial axes (rank 3 to 5) are supported",
                          x->rank);
    *spatial = x->rank - 2;
    return CLEVAL_OK;
}

static cleval_status pool_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node, bool max)
{
    static const char *const known_max[] = {"auto_pad",     "ceil_mode", "dilations",
                                            "kernel_shape", "pads",      "storage_order",
                                            "strides",      NULL};
    static const char *const known_avg[] = {
        "auto_pad",     "ceil_mode", "count_include_pad", "dilations",
        "kernel_shape", "pads",      "strides",           NULL};
    nn_pool_params *p = &op->p.pool;
    p->max = max;
    cleval_status status = nn_check_attrs(nn, op, node, max ? known_max : known_avg);
    if (status != CLEVAL_OK) return status;
    bool column_major; /* storage_order only orders Indices, which is refused */
    if ((status = nn_attr_bool(nn, op, node, "ceil_mode", false, &p->ceil_mode)) != CLEVAL_OK ||
        (status = nn_attr_bool(nn, op, node, "count_include_pad", false, &p->count_include_pad)) !=
            CLEVAL_OK ||
        (status = nn_attr_bool(nn, op, node, "storage_order", false, &column_major)) != CLEVAL_OK)
        return status;
    if (op->n_out > 1 && op->out[1] >= 0 &&
        (nn_out(nn, op, 1)->uses || nn_out(nn, op, 1)->is_output))
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "output Indices is not supported");
    if (!nn_has_in(op, 0)) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input X is missing");
    const cleval_onnx_attr *k = cleval_onnx_node_attr(node, "kernel_shape");
    if (!k || k->type != CLEVAL_ONNX_ATTR_INTS || k->count < 1 || k->count > 3)
        return nn_fail_op(nn, op, k ? CLEVAL_ERR_UNSUPPORTED : CLEVAL_ERR_INPUT,
                          k ? "kernel_shape must list 1 to 3 axes"
                            : "attribute kernel_shape is missing");
    p->spatial = k->count;
    return nn_parse_window(nn, op, node, p->spatial, p->kernel, p->stride, p->dilation,
                           p->pad_begin, p->pad_end, &p->auto_pad);
}

static cleval_status maxpool_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    return pool_parse(nn, op, node, true);
}

static cleval_status averagepool_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    return pool_parse(nn, op, node, false);
}

/* pool_flat (kernels/pool.cl) on CPU-style devices: 1-D or 2-D windows at stride 1. */
#define FLAT_VECTORS 4 /* float16 vectors per step, passed to the kernel */

/* pool_flat's geometry, 1-D windows as 2-D ones of height 1: the window, dilation, pads and
 * extents in (H, W); the scratch row pitch, plane length and floats per work-item. */
typedef struct flat_geometry {
    int64_t in[2], out[2], k[2], dil[2], pad[2], pad_end[2];
    int64_t pitch, plane_stride, per_item, items, planes;
} flat_geometry;

static flat_geometry flat_geometry_of(const cleval_nn *nn, const nn_op *op)
{
    const nn_pool_params *p = &op->p.pool;
    const nn_shape *x = &nn->values[op->in[0]].shape, *y = &nn->values[op->out[0]].shape;
    flat_geometry g = {{1, 1}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, 0, 0, 0, 0, 0};
    for (uint32_t i = 0, at = 2 - p->spatial; i < p->spatial; i++, at++) {
        g.in[at] = x->d[2 + i];
        g.out[at] = y->d[2 + i];
        g.k[at] = p->kernel[i];
        g.dil[at] = p->dilation[i];
        g.pad[at] = p->pad_begin[i];
        g.pad_end[at] = p->pad_end[i];
    }
    int64_t reach = (g.k[1] - 1) * g.dil[1], rows = g.out[0] + (g.k[0] - 1) * g.dil[0];
    g.pitch = g.out[1] + reach;
    g.plane_stride = rows * g.pitch + 16 * FLAT_VECTORS + reach;
    g.per_item = g.plane_stride + g.out[0] * g.pitch + 16 * FLAT_VECTORS;
    const cleval_device_info *info = cleval_device_get_info(nn->dev);
    int64_t want = (int64_t)nn->tuning.conv_items * (info->compute_units ? info->compute_units : 1);
    g.planes = x->d[0] * x->d[1];
    g.items = g.planes < want ? g.planes : want;
    return g;
}

/* Windows of stride 1 on planes whose scratch (plane and divisors) fits FLAT_MAX_ITEM floats
 * (8 MiB), so that the workspace stays a few tens of MiB; larger ones take pool_rows. */
#define FLAT_MAX_ITEM (1 << 21)
static bool flat_eligible(const cleval_nn *nn, const nn_op *op)
{
    const nn_pool_params *p = &op->p.pool;
    if (nn->variant != CLEVAL_VARIANT_CPU || p->spatial > 2) return false;
    for (uint32_t i = 0; i < p->spatial; i++)
        if (p->stride[i] != 1) return false;
    return flat_geometry_of(nn, op).per_item <= FLAT_MAX_ITEM;
}

static cleval_status pool_infer(cleval_nn *nn, nn_op *op)
{
    nn_pool_params *p = &op->p.pool;
    const nn_shape *x = &nn_in(nn, op, 0)->shape;
    uint32_t spatial = 0;
    cleval_status status = spatial_rank(nn, op, x, &spatial);
    if (status != CLEVAL_OK) return status;
    if (spatial != p->spatial)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "kernel_shape has %u axes, the input %u",
                          p->spatial, spatial);
    nn_same_pads(p->auto_pad, spatial, &x->d[2], p->kernel, p->stride, p->pad_begin, p->pad_end);
    nn_shape out = *x;
    uint64_t window = 1;
    for (uint32_t i = 0; i < spatial; i++) {
        int64_t o = pool_out(p, i, x->d[2 + i]);
        if (o < 0)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "the window is larger than axis %u", 2 + i);
        out.d[2 + i] = o;
        window *= (uint64_t)p->kernel[i];
    }
    nn_out(nn, op, 0)->shape = out;
    /* The windows run along the axes after the channels: the batch must be axis 0 or 1. */
    if (nn_batch_axis(nn_in(nn, op, 0)) > 1) op->mixes_batch = true;
    op->flops = (double)nn_shape_count(&out) * (double)window;
    op->workspace = 0;
    if (flat_eligible(nn, op)) {
        flat_geometry g = flat_geometry_of(nn, op);
        op->workspace = (size_t)(g.items * g.per_item) * sizeof(float);
    }
    return CLEVAL_OK;
}

/* Outputs of one row per pool_rows work-item: the default of kernels/pool.cl. */
enum { POOL_COLS = 64 };

static cleval_status pool_prepare(cleval_nn *nn, nn_op *op)
{
    if (flat_eligible(nn, op)) {
        char options[96];
        nn_storage_options(nn, op->in[0], op->out[0], options, sizeof options);
        size_t used = strlen(options);
        snprintf(options + used, sizeof options - used, " -DFLAT_VECTORS=%d", FLAT_VECTORS);
        snprintf(op->kernel_desc, sizeof op->kernel_desc, "pool_flat");
        return nn_kernel(nn, op, "pool", options, "pool_flat", &op->k[0]);
    }
    return nn_storage_kernel(nn, op, "pool",
                             nn->variant == CLEVAL_VARIANT_CPU ? "pool_rows" : "pool");
}

static cleval_status launch_flat(cleval_nn *nn, nn_op *op)
{
    const nn_pool_params *p = &op->p.pool;
    flat_geometry g = flat_geometry_of(nn, op);
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->in[0]));
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_int4(&a, (int32_t)g.in[0], (int32_t)g.in[1], 0, 0);
    cleval_kernel_arg_int4(&a, (int32_t)g.out[0], (int32_t)g.out[1], 0, 0);
    cleval_kernel_arg_int4(&a, (int32_t)g.k[0], (int32_t)g.k[1], 0, 0);
    cleval_kernel_arg_int4(&a, (int32_t)g.dil[0], (int32_t)g.dil[1], 0, 0);
    cleval_kernel_arg_int4(&a, (int32_t)g.pad[0], (int32_t)g.pad[1], 0, 0);
    cleval_kernel_arg_int4(&a, (int32_t)g.pad_end[0], (int32_t)g.pad_end[1], 0, 0);
    cleval_kernel_arg_int(&a, p->max ? 0 : p->count_include_pad ? 1 : 2);
    cleval_kernel_arg_mem(&a, nn_workspace_mem(nn, op));
    cleval_kernel_arg_int(&a, (int32_t)g.pitch);
    cleval_kernel_arg_int(&a, (int32_t)g.plane_stride);
    cleval_kernel_arg_int(&a, (int32_t)g.planes);
    size_t global = (size_t)g.items, local = 1;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

static cleval_status pool_launch(cleval_nn *nn, nn_op *op)
{
    const nn_pool_params *p = &op->p.pool;
    const nn_shape *x = &nn_in(nn, op, 0)->shape, *y = &nn_out(nn, op, 0)->shape;
    uint64_t n = nn_shape_count(y);
    if (n == 0) return CLEVAL_OK;
    if (flat_eligible(nn, op)) return launch_flat(nn, op);
    /* Spatial axes right-aligned into (D, H, W); missing ones have extent 1. */
    int32_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1},
            d[3] = {1, 1, 1}, pb[3] = {0, 0, 0}, pe[3] = {0, 0, 0};
    uint32_t off = 3 - p->spatial;
    for (uint32_t i = 0; i < p->spatial; i++) {
        in[off + i] = (int32_t)x->d[2 + i];
        out[off + i] = (int32_t)y->d[2 + i];
        k[off + i] = (int32_t)p->kernel[i];
        s[off + i] = (int32_t)p->stride[i];
        d[off + i] = (int32_t)p->dilation[i];
        pb[off + i] = (int32_t)p->pad_begin[i];
        pe[off + i] = (int32_t)p->pad_end[i];
    }
    int mode = p->max ? 0 : p->count_include_pad ? 1 : 2;
    /* pool_rows: one work-item per run of POOL_COLS outputs along W. */
    if (nn->variant == CLEVAL_VARIANT_CPU)
        n = n / (uint64_t)out[2] * (uint64_t)((out[2] + POOL_COLS - 1) / POOL_COLS);
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->in[0]));
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_uint(&a, (uint32_t)n);
    cleval_kernel_arg_int4(&a, in[0], in[1], in[2], 0);
    cleval_kernel_arg_int4(&a, out[0], out[1], out[2], 0);
    cleval_kernel_arg_int4(&a, k[0], k[1], k[2], 0);
    cleval_kernel_arg_int4(&a, s[0], s[1], s[2], 0);
    cleval_kernel_arg_int4(&a, d[0], d[1], d[2], 0);
    cleval_kernel_arg_int4(&a, pb[0], pb[1], pb[2], 0);
    cleval_kernel_arg_int4(&a, pe[0], pe[1], pe[2], 0);
    cleval_kernel_arg_int(&a, mode);
    size_t local = nn_local_1d(nn), global = (size_t)n;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

const nn_op_kind nn_kind_maxpool = {"MaxPool", maxpool_parse, pool_infer, pool_prepare,
                                    pool_launch};
const nn_op_kind nn_kind_averagepool = {"AveragePool", averagepool_parse, pool_infer, pool_prepare,
                                        pool_launch};

/* ---- GlobalAveragePool ---- */

static cleval_status gap_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    cleval_status status = nn_check_attrs(nn, op, node, NULL);
    if (status != CLEVAL_OK) return status;
    if (!nn_has_in(op, 0)) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input X is missing");
    return CLEVAL_OK;
}

static cleval_status gap_infer(cleval_nn *nn, nn_op *op)
{
    const nn_shape *x = &nn_in(nn, op, 0)->shape;
    if (x->rank < 3)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input has rank %u, needs at least 3", x->rank);
    nn_shape out = *x;
    for (uint32_t i = 2; i < x->rank; i++)
        out.d[i] = 1;
    nn_out(nn, op, 0)->shape = out;
    if (nn_batch_axis(nn_in(nn, op, 0)) > 1) op->mixes_batch = true; /* averaged over */
    op->flops = (double)nn_shape_count(x);
    return CLEVAL_OK;
}

static cleval_status gap_prepare(cleval_nn *nn, nn_op *op)
{
    return nn_storage_kernel(nn, op, "pool", "global_average");
}

static cleval_status gap_launch(cleval_nn *nn, nn_op *op)
{
    const nn_shape *x = &nn_in(nn, op, 0)->shape;
    uint64_t rows = (uint64_t)x->d[0] * (uint64_t)x->d[1],
             inner = nn_shape_count(x) / (rows ? rows : 1);
    if (rows == 0) return CLEVAL_OK;
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->in[0]));
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_uint(&a, (uint32_t)rows);
    cleval_kernel_arg_uint(&a, (uint32_t)inner);
    size_t local = nn_local_1d(nn), global = (size_t)rows;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

const nn_op_kind nn_kind_globalaveragepool = {"GlobalAveragePool", gap_parse, gap_infer,
                                              gap_prepare, gap_launch};
