/* The depthwise path of Conv for CPU-style devices (kernels/conv_depthwise.cl): 2-D, one
 * output channel per input channel (group = C_in = C_out), any kernel size, stride, dilation
 * and pads, bias and the fused activation in the epilogue. A channels-last input runs
 * conv_dw_channels (vectors across channels), an NCHW input conv_dw_flat at stride 1 (vectors
 * across a zero-bordered copy of the plane, in a scratch of a few planes) and conv_dw_planes
 * otherwise (vectors across output columns); the output may be stored either way. Because it reads
 * and writes any layout, the layout pass (passes.c) lets a depthwise Conv sit inside a
 * channels-last chain of convolutions, as in MobileNet's inverted residual blocks. */
#include "nn_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* conv_dw_channels: output pixels per step (PIX), sharing each tap's weight vector and each
 * input vector along the row; the input vectors of a step fit its register array (IN_MAX). */
#define CHANNELS_PIXELS 4
#define CHANNELS_IN_MAX 16

bool nn_depthwise_cpu_eligible(const cleval_nn *nn, const nn_op *op)
{
    const nn_conv_params *p = &op->p.conv;
    if (nn->variant != CLEVAL_VARIANT_CPU || !p->depthwise || p->spatial != 2 || op->int8)
        return false;
    int64_t in = (CHANNELS_PIXELS - 1) * p->stride[1] + (p->kernel[1] - 1) * p->dilation[1] + 1;
    /* One output channel per group: W is [C, 1, KH, KW] with group = C. */
    return nn->values[p->weight].shape.d[0] == p->group && in <= CHANNELS_IN_MAX;
}

static bool channels_last(const nn_conv_params *p)
{
    return p->in_layout == NN_LAYOUT_NHWC;
}

/* conv_dw_flat: FLAT_VECTORS float16 per step (as built); a scratch plane of at most
 * FLAT_MAX_PLANE floats (4 MiB), so that the workspace stays a few tens of MiB: larger planes
 * (a 1024 x 1024 input) take conv_dw_planes, which needs none. */
#define FLAT_VECTORS 4
#define FLAT_MAX_PLANE (1 << 20)

/* A few work-items per core (conv_items), so that uneven ones even out. */
static int64_t items_wanted(const cleval_nn *nn)
{
    const cleval_device_info *info = cleval_device_get_info(nn->dev);
    return (int64_t)nn->tuning.conv_items * (info->compute_units ? info->compute_units : 1);
}

/* conv_dw_flat's scratch: `items` planes of `stride` floats, rows `pitch` wide, and the
 * work-items (one scratch plane each) that take the batch's planes in turn. */
typedef struct flat_scratch {
    int64_t items, pitch, stride;
} flat_scratch;

static flat_scratch flat_scratch_of(const cleval_nn *nn, const nn_op *op)
{
    const nn_conv_params *p = &op->p.conv;
    const nn_shape *x = &nn->values[op->in[0]].shape, *y = &nn->values[op->out[0]].shape;
    int64_t planes = x->d[0] * x->d[1], want = items_wanted(nn),
            reach = (p->kernel[1] - 1) * p->dilation[1];
    flat_scratch s = {planes < want ? planes : want, y->d[3] + reach, 0};
    int64_t rows = y->d[2] + (p->kernel[0] - 1) * p->dilation[0];
    s.stride = rows * s.pitch + 16 * FLAT_VECTORS + reach;
    return s;
}

/* NCHW input at stride 1, planes that fit the scratch: conv_dw_flat. */
static bool flat_planes(const cleval_nn *nn, const nn_op *op)
{
    const nn_conv_params *p = &op->p.conv;
    return !channels_last(p) && p->stride[0] == 1 && p->stride[1] == 1 &&
           flat_scratch_of(nn, op).stride <= FLAT_MAX_PLANE;
}

size_t nn_depthwise_cpu_workspace(const cleval_nn *nn, const nn_op *op)
{
    if (!flat_planes(nn, op)) return 0;
    flat_scratch s = flat_scratch_of(nn, op);
    return (size_t)(s.items * s.stride) * sizeof(float);
}

cleval_status nn_depthwise_cpu_prepare(cleval_nn *nn, nn_op *op, const char *precision)
{
    nn_conv_params *p = &op->p.conv;
    const nn_value *wv = &nn->values[p->weight];
    int64_t c = wv->shape.d[0], window = p->kernel[0] * p->kernel[1];
    int64_t cp = (c + 15) / 16 * 16, bias_count = channels_last(p) ? cp : c;
    bool half = nn->precision == CLEVAL_NN_FP16;
    float *w = NULL, *b = calloc((size_t)bias_count, sizeof *b);
    if (channels_last(p)) {
        /* [tap][CP]: the 16 channels of one vector are adjacent, zeros past C. */
        w = calloc((size_t)(window * cp), sizeof *w);
        if (w)
            for (int64_t ch = 0; ch < c; ch++)
                for (int64_t t = 0; t < window; t++)
                    w[t * cp + ch] = wv->f32[ch * window + t];
    }
    cleval_status status = CLEVAL_OK;
    if (!b || (channels_last(p) && !w))
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory packing Conv weights");
    if (status == CLEVAL_OK && p->bias >= 0)
        memcpy(b, nn->values[p->bias].f32, (size_t)c * sizeof *b);
    if (status == CLEVAL_OK)
        status = nn_upload_as(nn, w ? w : wv->f32, (size_t)(w ? window * cp : window * c), half,
                              false, "Conv weights", &op->mem[0]);
    if (status == CLEVAL_OK)
        status = nn_upload(nn, b, (size_t)bias_count * sizeof *b, "Conv bias", &op->mem[1]);
    free(w);
    free(b);
    if (status != CLEVAL_OK) return status;
    /* conv_dw_channels has kernels of its own for the common windows along W (3 or 5 taps,
     * stride 1 or 2, no dilation), all in the one program. */
    char name[32];
    if (channels_last(p) && (p->kernel[1] == 3 || p->kernel[1] == 5) &&
        (p->stride[1] == 1 || p->stride[1] == 2) && p->dilation[1] == 1)
        snprintf(name, sizeof name, "conv_dw_channels_%ds%d", (int)p->kernel[1], (int)p->stride[1]);
    else
        snprintf(name, sizeof name, "%s",
                 channels_last(p)      ? "conv_dw_channels"
                 : flat_planes(nn, op) ? "conv_dw_flat"
                                       : "conv_dw_planes");
    char options[320];
    snprintf(options, sizeof options, "-DCLAMP=%d -DFLAT_VECTORS=%d -DPIX=%d -DIN_MAX=%d %s",
             nn_epilogue_clamps(&p->ep), FLAT_VECTORS, CHANNELS_PIXELS, CHANNELS_IN_MAX, precision);
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "%s%s", name, half ? " fp16" : "");
    return nn_kernel(nn, op, "conv_depthwise", options, name, &op->k[0]);
}

/* Element strides (n, c, h, w) of a [N, C, H, W] value as stored. */
static void strides_of(const nn_value *v, int64_t s[4])
{
    int64_t c = v->shape.d[1], h = v->shape.d[2], w = v->shape.d[3];
    if (v->layout == NN_LAYOUT_NHWC) {
        s[1] = 1;
        s[3] = c;
        s[2] = w * c;
    } else {
        s[3] = 1;
        s[2] = w;
        s[1] = h * w;
    }
    s[0] = c * h * w;
}

cleval_status nn_depthwise_cpu_launch(cleval_nn *nn, nn_op *op)
{
    const nn_conv_params *p = &op->p.conv;
    const nn_value *xv = nn_in(nn, op, 0), *yv = nn_out(nn, op, 0);
    const nn_shape *x = &xv->shape, *y = &yv->shape;
    if (nn_shape_count(y) == 0) return CLEVAL_OK;
    int64_t xs[4], ys[4];
    strides_of(xv, xs);
    strides_of(yv, ys);
    int64_t n = x->d[0], c = x->d[1], oh = y->d[2];
    /* Each work-item a contiguous range of rows (channels-last) or of (channel, row) lines
     * (NCHW), so neighbouring rows share cached input rows; conv_dw_flat: planes in turn. */
    int64_t want = items_wanted(nn);
    int64_t per_image = (want + n - 1) / n, units = channels_last(p) ? oh : c * oh;
    if (per_image > units) per_image = units;
    int64_t per_item = (units + per_image - 1) / per_image;
    size_t global[2] = {(size_t)((units + per_item - 1) / per_item), (size_t)n}, local[2] = {1, 1};
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->in[0]));
    cleval_kernel_arg_int4(&a, (int32_t)xs[0], (int32_t)xs[1], (int32_t)xs[2], (int32_t)xs[3]);
    cleval_kernel_arg_mem(&a, op->mem[0]);
    cleval_kernel_arg_mem(&a, op->mem[1]);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_int4(&a, (int32_t)ys[0], (int32_t)ys[1], (int32_t)ys[2], (int32_t)ys[3]);
    cleval_kernel_arg_int4(&a, (int32_t)c, (int32_t)x->d[2], (int32_t)x->d[3],
                           (int32_t)((c + 15) / 16 * 16));
    cleval_kernel_arg_int4(&a, (int32_t)oh, (int32_t)y->d[3], (int32_t)p->kernel[0],
                           (int32_t)p->kernel[1]);
    cleval_kernel_arg_int4(&a, (int32_t)p->stride[0], (int32_t)p->stride[1],
                           (int32_t)p->pad_begin[0], (int32_t)p->pad_begin[1]);
    cleval_kernel_arg_int4(&a, (int32_t)p->dilation[0], (int32_t)p->dilation[1], 0, 0);
    if (flat_planes(nn, op)) {
        flat_scratch s = flat_scratch_of(nn, op);
        cleval_kernel_arg_mem(&a, nn_workspace_mem(nn, op));
        cleval_kernel_arg_int(&a, (int32_t)s.pitch);
        cleval_kernel_arg_int(&a, (int32_t)s.stride);
        cleval_kernel_arg_int(&a, (int32_t)(n * c));
        global[0] = (size_t)s.items;
        global[1] = 1;
    } else {
        cleval_kernel_arg_int(&a, (int32_t)per_item);
        if (channels_last(p)) cleval_kernel_arg_int(&a, (int32_t)nn_shape_count(x));
    }
    cleval_kernel_arg_float(&a, p->ep.lo);
    cleval_kernel_arg_float(&a, p->ep.hi);
    return nn_enqueue(nn, op, &a, 2, global, local);
}
