/* Conv over 1 to 3 spatial axes: pads, strides, dilations, any group count (group = 1 and
 * grouped convolutions as one implicit GEMM per group; depthwise, one input channel per group,
 * by its own kernel). Weights are packed once at prepare for the device's kernel family
 * (kernels/conv.cl): k-major panels of NR channels for conv_cpu (pack.c, shared with Gemm);
 * the GPU family's conv_gpu has its own files (op_conv_gpu.c, kernels/conv_gpu.cl). The
 * epilogue carries the bias, a fused ReLU/Clip and (conv_cpu) a fused 2x2 max-pool. */
#include "nn_internal.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t nn_window_out(int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                      int64_t pad_begin, int64_t pad_end);

static cleval_status conv_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"auto_pad", "dilations", "group", "kernel_shape",
                                        "pads",     "strides",   NULL};
    nn_conv_params *p = &op->p.conv;
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK ||
        (status = nn_attr_int(nn, node, "group", 1, &p->group)) != CLEVAL_OK)
        return status;
    if (!nn_has_in(op, 0)) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input X is missing");
    if ((status = nn_require_const(nn, op, 1, "W")) != CLEVAL_OK) return status;
    const nn_value *w = nn_in(nn, op, 1);
    if (!w->f32) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "W must be a float tensor");
    if (w->shape.rank < 3 || w->shape.rank > 5)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "W has rank %u; 1 to 3 spatial axes (rank 3 to 5) are supported",
                          w->shape.rank);
    p->spatial = w->shape.rank - 2;
    if (p->group < 1 || w->shape.d[0] % p->group != 0 || w->shape.d[0] == 0 || w->shape.d[1] == 0)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                          "group=%lld does not divide W's %lld output channels",
                          (long long)p->group, (long long)w->shape.d[0]);
    if ((status = nn_parse_window(nn, op, node, p->spatial, p->kernel, p->stride, p->dilation,
                                  p->pad_begin, p->pad_end, &p->auto_pad)) != CLEVAL_OK)
        return status;
    const cleval_onnx_attr *ks = cleval_onnx_node_attr(node, "kernel_shape");
    for (uint32_t i = 0; i < p->spatial; i++) {
        if (ks && p->kernel[i] != w->shape.d[2 + i])
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "kernel_shape does not match W");
        p->kernel[i] = w->shape.d[2 + i];
    }
    p->weight = op->in[1];
    p->bias = -1;
    if (nn_has_in(op, 2)) {
        if ((status = nn_require_const(nn, op, 2, "B")) != CLEVAL_OK) return status;
        const nn_value *b = nn_in(nn, op, 2);
        if (!b->f32 || b->count != (uint64_t)w->shape.d[0])
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "B must hold %lld floats",
                              (long long)w->shape.d[0]);
        p->bias = op->in[2];
    }
    p->depthwise = p->group > 1 && w->shape.d[1] == 1;
    /* Grouped (not depthwise) convolutions run one launch per group: bound them. */
    if (!p->depthwise && p->group > 65536)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "group=%lld is more than supported",
                          (long long)p->group);
    p->ep.lo = -INFINITY;
    p->ep.hi = INFINITY;
    return CLEVAL_OK;
}

/* Conv output shape before a fused pool (and auto_pad SAME's pads for the current input). */
static cleval_status conv_shape(cleval_nn *nn, nn_op *op, nn_shape *out)
{
    nn_conv_params *p = &op->p.conv;
    const nn_shape *x = &nn_in(nn, op, 0)->shape;
    const nn_shape *w = &nn->values[p->weight].shape;
    if (x->rank != 2 + p->spatial)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "X has rank %u, W has %u spatial axes", x->rank,
                          p->spatial);
    if (x->d[1] != w->d[1] * p->group)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                          "X has %lld channels, W expects %lld (group %lld)", (long long)x->d[1],
                          (long long)(w->d[1] * p->group), (long long)p->group);
    nn_same_pads(p->auto_pad, p->spatial, &x->d[2], p->kernel, p->stride, p->pad_begin, p->pad_end);
    *out = *x;
    out->d[1] = w->d[0];
    for (uint32_t i = 0; i < p->spatial; i++) {
        int64_t o = nn_window_out(x->d[2 + i], p->kernel[i], p->stride[i], p->dilation[i],
                                  p->pad_begin[i], p->pad_end[i]);
        if (o < 0)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "the kernel is larger than axis %u", 2 + i);
        out->d[2 + i] = o;
    }
    return CLEVAL_OK;
}

/* Whether the input goes through the zero-bordered copy. auto_pad SAME always does (its pads,
 * zero for some input extents, are only known at infer), so prepare and launch agree. */
static bool has_padding(const nn_conv_params *p)
{
    if (p->auto_pad == NN_PAD_SAME_UPPER || p->auto_pad == NN_PAD_SAME_LOWER) return true;
    for (uint32_t i = 0; i < p->spatial; i++)
        if (p->pad_begin[i] || p->pad_end[i]) return true;
    return false;
}

static bool uses_gemm_cpu(const cleval_nn *nn, const nn_conv_params *p)
{
    return nn->variant == CLEVAL_VARIANT_CPU && !p->depthwise;
}

/* Elements of the input as conv_cpu reads it: zero-bordered when padded. */
static uint64_t padded_count(const nn_shape *x, const nn_conv_params *p)
{
    uint64_t padded = (uint64_t)x->d[0] * (uint64_t)x->d[1];
    for (uint32_t i = 0; i < p->spatial; i++)
        padded *= (uint64_t)(x->d[2 + i] + p->pad_begin[i] + p->pad_end[i]);
    return padded;
}

static cleval_status conv_infer(cleval_nn *nn, nn_op *op)
{
    nn_conv_params *p = &op->p.conv;
    nn_shape out;
    cleval_status status = conv_shape(nn, op, &out);
    if (status != CLEVAL_OK) return status;
    const nn_shape *x = &nn_in(nn, op, 0)->shape;
    uint64_t window = (uint64_t)nn->values[p->weight].shape.d[1];
    for (uint32_t i = 0; i < p->spatial; i++)
        window *= (uint64_t)p->kernel[i];
    op->flops = 2.0 * (double)nn_shape_count(&out) * (double)window;
    if (p->ep.pool) {
        if (out.d[2] < 2 || out.d[3] < 2)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                              "the fused 2x2 max-pool needs at least "
                              "2 x 2 outputs");
        out.d[2] /= 2;
        out.d[3] /= 2;
    }
    nn_out(nn, op, 0)->shape = out;
    /* The windows and the channel sums run along every axis but 0. */
    if (nn_batch_axis(nn_in(nn, op, 0)) > 0) op->mixes_batch = true;
    op->workspace = 0;
    if (op->int8) {
        /* The int8 codes of the input (zero-bordered for conv_cpu). */
        op->workspace = (size_t)(uses_gemm_cpu(nn, p) ? padded_count(x, p) : nn_shape_count(x));
    } else if (nn_winograd_eligible(nn, op)) {
        op->workspace = nn_winograd_workspace(nn, op);
    } else if (nn_depthwise_cpu_eligible(nn, op)) {
        op->workspace = nn_depthwise_cpu_workspace(nn, op);
    } else if (uses_gemm_cpu(nn, p) && has_padding(p)) {
        op->workspace = (size_t)padded_count(x, p) * nn_value_elem_bytes(nn, op->in[0]);
    }
    return CLEVAL_OK;
}

/* Spatial extents right-aligned into (D, H, W). */
static void spatial3(const nn_shape *s, uint32_t spatial, int64_t out[3])
{
    out[0] = out[1] = out[2] = 1;
    for (uint32_t i = 0; i < spatial; i++)
        out[3 - spatial + i] = s->d[2 + i];
}

static void params3(const int64_t *v, uint32_t spatial, int64_t fill, int64_t out[3])
{
    out[0] = out[1] = out[2] = fill;
    for (uint32_t i = 0; i < spatial; i++)
        out[3 - spatial + i] = v[i];
}

/* Element strides (n, c, d, h, w) of a [N, C, D, H, W] tensor stored in `layout`. */
static void layout_strides(nn_layout layout, int64_t c, const int64_t sp[3], int64_t s[5])
{
    if (layout == NN_LAYOUT_NHWC) {
        s[1] = 1;
        s[4] = c;
        s[3] = sp[2] * c;
        s[2] = sp[1] * sp[2] * c;
        s[0] = sp[0] * sp[1] * sp[2] * c;
    } else {
        s[4] = 1;
        s[3] = sp[2];
        s[2] = sp[1] * sp[2];
        s[1] = sp[0] * sp[1] * sp[2];
        s[0] = c * s[1];
    }
}

/* Storage and int8 options shared by every Conv kernel build. */
static void precision_options(const cleval_nn *nn, const nn_op *op, char *out, size_t size)
{
    snprintf(out, size, "-DX_HALF=%d -DY_HALF=%d -DW_HALF=%d -DINT8=%d -DI8_FLOAT=%u",
             nn_half(nn, op->in[0]), nn_half(nn, op->out[0]), nn->precision == CLEVAL_NN_FP16,
             op->int8, nn->tuning.i8_float);
}

/* W as the implicit-GEMM kernels read it: [co][k] floats, or int8 codes with a scale per
 * output channel, with K ordered (window position, channel) when channels_inner. */
typedef struct conv_weights {
    const float *values; /* [co][k] */
    float *owned;        /* `values` when they are a host copy (codes or reordered), else NULL */
    float *scales;       /* int8: [co]; else NULL */
} conv_weights;

static void conv_weights_free(conv_weights *w)
{
    free(w->owned);
    free(w->scales);
}

static cleval_status conv_weights_load(cleval_nn *nn, nn_op *op, conv_weights *out)
{
    const nn_conv_params *p = &op->p.conv;
    const nn_value *w = &nn->values[p->weight];
    int64_t co = w->shape.d[0], cin_g = w->shape.d[1], k = p->k, window = k / cin_g;
    *out = (conv_weights){w->f32, NULL, NULL};
    if (op->int8) {
        cleval_status status =
            nn_quantise_weights(w->f32, co, k, k, 1, "Conv weights", &out->owned, &out->scales);
        if (status != CLEVAL_OK) return status;
        out->values = out->owned;
    }
    if (!p->channels_inner) return CLEVAL_OK;
    /* 16 consecutive k are then 16 adjacent elements of a channels-last input, converted with
     * one vector instruction (RUN16 in kernels/conv.cl). */
    float *ordered = malloc((size_t)(co * k) * sizeof *ordered);
    if (!ordered) {
        conv_weights_free(out);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory packing Conv weights");
    }
    for (int64_t o = 0; o < co; o++)
        for (int64_t ci = 0; ci < cin_g; ci++)
            for (int64_t at = 0; at < window; at++)
                ordered[o * k + at * cin_g + ci] = out->values[o * k + ci * window + at];
    free(out->owned);
    out->values = out->owned = ordered;
    return CLEVAL_OK;
}

/* conv_depthwise: W as it is and the bias (zeros when none). */
static cleval_status prepare_depthwise(cleval_nn *nn, nn_op *op, const char *precision)
{
    nn_conv_params *p = &op->p.conv;
    const nn_value *w = &nn->values[p->weight];
    int64_t co = w->shape.d[0], window = p->k / w->shape.d[1];
    bool half = nn->precision == CLEVAL_NN_FP16;
    float *b = calloc((size_t)co, sizeof *b);
    if (!b) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory packing Conv weights");
    if (p->bias >= 0) memcpy(b, nn->values[p->bias].f32, (size_t)co * sizeof *b);
    cleval_status status =
        nn_upload_as(nn, w->f32, (size_t)(co * window), half, false, "Conv weights", &op->mem[0]);
    if (status == CLEVAL_OK)
        status = nn_upload(nn, b, (size_t)co * sizeof *b, "Conv bias", &op->mem[1]);
    free(b);
    if (status != CLEVAL_OK) return status;
    char options[320];
    snprintf(options, sizeof options, "-DCLAMP=%d %s", nn_epilogue_clamps(&p->ep), precision);
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "conv_depthwise%s", half ? " fp16" : "");
    return nn_kernel(nn, op, "conv", options, "conv_depthwise", &op->k[0]);
}

/* conv_cpu's buffers: each group's W in panels (nn_pack_panels), bias and int8 scales padded
 * to the panels, and room for the k offsets that launch_cpu fills. */
static cleval_status upload_cpu_weights(cleval_nn *nn, nn_op *op, const conv_weights *w)
{
    nn_conv_params *p = &op->p.conv;
    int64_t group = p->group, co_g = p->co, k = p->k;
    int64_t panels = nn_panel_count(co_g, p->nv), nr = 16 * (int64_t)p->nv;
    size_t packed_count = (size_t)(group * panels * k * nr), padded = (size_t)(group * panels * nr);
    const float *bias = p->bias >= 0 ? nn->values[p->bias].f32 : NULL;
    float *packed = nn_pack_panels(w->values, group, co_g * k, k, co_g, 1, k, p->nv);
    float *b = nn_pad_panel_columns(bias, group, co_g, p->nv);
    float *scales = op->int8 ? nn_pad_panel_columns(w->scales, group, co_g, p->nv) : NULL;
    cleval_status status = CLEVAL_OK;
    if (!packed || !b || (op->int8 && !scales))
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory packing Conv weights");
    p->panels = (uint32_t)panels;
    if (status == CLEVAL_OK)
        status = nn_upload_as(nn, packed, packed_count, nn->precision == CLEVAL_NN_FP16, op->int8,
                              "packed Conv weights", &op->mem[0]);
    if (status == CLEVAL_OK)
        status = nn_upload(nn, b, padded * sizeof *b, "Conv bias", &op->mem[1]);
    if (status == CLEVAL_OK && op->int8)
        status = nn_upload(nn, scales, padded * sizeof *scales, "Conv weight scales", &op->mem[4]);
    if (status == CLEVAL_OK)
        status = nn_device_buffer_rw(nn, (size_t)k * sizeof(int32_t), "Conv offsets", &op->mem[2]);
    free(packed);
    free(b);
    free(scales);
    return status;
}

/* conv_cpu and its input staging: quantize (int8) or pad_nd (padded inputs). */
static cleval_status build_cpu_kernels(cleval_nn *nn, nn_op *op, bool vec_store,
                                       const char *precision)
{
    nn_conv_params *p = &op->p.conv;
    bool half = nn->precision == CLEVAL_NN_FP16;
    char options[320];
    snprintf(options, sizeof options,
             "-DMR=%u -DNV=%u -DPOOL=%d -DCLAMP=%d -DVEC_STORE=%d -DRUN16=%d %s", p->mr, p->nv,
             p->ep.pool, nn_epilogue_clamps(&p->ep), vec_store, p->channels_inner, precision);
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "conv_cpu MR=%u NV=%u%s%s%s%s", p->mr, p->nv,
             p->ep.pool ? " pool" : "", vec_store ? " nhwc-out" : "",
             op->int8 ? (nn->tuning.i8_float ? " int8 (float blocks)" : " int8")
             : half   ? nn_fp16_tag(nn)
                      : "",
             p->channels_inner && !nn->half_math ? " runs of 16" : "");
    cleval_status status = nn_kernel(nn, op, "conv", options, "conv_cpu", &op->k[0]);
    if (status == CLEVAL_OK && op->int8)
        return nn_kernel(nn, op, "quantize", NULL, has_padding(p) ? "quantize_pad" : "quantize",
                         &op->k[1]);
    if (status == CLEVAL_OK && has_padding(p)) return nn_conv_pad_kernel(nn, op, &op->k[1]);
    return status;
}

/* CPU: conv_winograd_cpu when eligible, else conv_cpu over packed panels. */
static cleval_status prepare_cpu(cleval_nn *nn, nn_op *op, const char *precision)
{
    nn_conv_params *p = &op->p.conv;
    nn_choose_tile(p->co, nn->tuning.conv_mr, nn->tuning.conv_nv, &p->mr, &p->nv);
    bool vec_store = nn_out(nn, op, 0)->layout == NN_LAYOUT_NHWC;
    if (nn_winograd_eligible(nn, op)) {
        char options[320];
        snprintf(options, sizeof options, "-DMR=%u -DNV=%u -DPOOL=%d -DCLAMP=%d -DVEC_STORE=%d %s",
                 p->mr, p->nv, p->ep.pool, nn_epilogue_clamps(&p->ep), vec_store, precision);
        return nn_winograd_prepare(nn, op, options);
    }
    conv_weights w;
    cleval_status status = conv_weights_load(nn, op, &w);
    if (status != CLEVAL_OK) return status;
    status = upload_cpu_weights(nn, op, &w);
    conv_weights_free(&w);
    if (status != CLEVAL_OK) return status;
    memset(p->table_key, 0, sizeof p->table_key);
    return build_cpu_kernels(nn, op, vec_store, precision);
}

/* One prepare per kernel family: conv_depthwise, conv_cpu (or Winograd), conv_gpu. */
static cleval_status conv_prepare(cleval_nn *nn, nn_op *op)
{
    nn_conv_params *p = &op->p.conv;
    const nn_value *w = &nn->values[p->weight];
    int64_t co = w->shape.d[0], cin_g = w->shape.d[1];
    int64_t window = 1;
    for (uint32_t i = 0; i < p->spatial; i++)
        window *= p->kernel[i];
    int64_t k = cin_g * window;
    if (k > NN_MAX_ELEMENTS / (co ? co : 1))
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "W is too large");
    p->k = (uint32_t)k;
    p->co = (uint32_t)(co / p->group);
    /* conv_cpu reading int8 codes or halves from a channels-last input with a multiple of 16
     * channels orders K (window position, channel): see conv_weights_load. */
    p->channels_inner = nn->variant == CLEVAL_VARIANT_CPU && !p->depthwise &&
                        !nn_winograd_eligible(nn, op) && p->in_layout == NN_LAYOUT_NHWC &&
                        cin_g % 16 == 0 && (op->int8 || nn_half(nn, op->in[0]));
    char precision[160];
    precision_options(nn, op, precision, sizeof precision);
    if (nn_depthwise_cpu_eligible(nn, op)) return nn_depthwise_cpu_prepare(nn, op, precision);
    if (p->depthwise) return prepare_depthwise(nn, op, precision);
    if (nn->variant == CLEVAL_VARIANT_CPU) return prepare_cpu(nn, op, precision);
    return nn_conv_gpu_prepare(nn, op, precision);
}

/* Where conv_cpu reads and writes: the input extents (after any zero border), the output's,
 * the element strides of both and of one output step of the window. */
typedef struct cpu_geometry {
    int64_t n, c;
    int64_t in_sp[3], out_sp[3], y_sp[3], ker[3], dil[3];
    int64_t xs[5], ys[5]; /* element strides (n, c, d, h, w) of the input and the output */
    int64_t ps[3];        /* input elements between neighbouring output pixels, per axis */
    int64_t units;        /* output pixels (or, pooled, 2x2 blocks) per image and group */
} cpu_geometry;

/* Makes *xm the buffer conv_cpu reads: the input, its int8 codes, or a zero-bordered copy (of
 * the codes), in the input's own layout; widens g->in_sp by the border. */
static cleval_status stage_input(cleval_nn *nn, nn_op *op, cpu_geometry *g, cl_mem *xm)
{
    const nn_conv_params *p = &op->p.conv;
    const nn_shape *x = &nn_in(nn, op, 0)->shape;
    if (!has_padding(p)) {
        if (!op->int8) return CLEVAL_OK;
        cl_mem codes = nn_workspace_mem(nn, op);
        cleval_status status =
            nn_launch_quantize(nn, op, op->k[1], *xm, 0, codes, 0, nn_shape_count(x));
        if (status == CLEVAL_OK) *xm = codes;
        return status;
    }
    int64_t pb[3], pe[3], n = g->n, c = g->c;
    params3(p->pad_begin, p->spatial, 0, pb);
    params3(p->pad_end, p->spatial, 0, pe);
    nn_shape in_phys = {5, {n, c, g->in_sp[0], g->in_sp[1], g->in_sp[2]}};
    int64_t begin[5] = {0, 0, pb[0], pb[1], pb[2]}, end[5] = {0, 0, pe[0], pe[1], pe[2]};
    if (p->in_layout == NN_LAYOUT_NHWC) {
        in_phys = (nn_shape){5, {n, g->in_sp[0], g->in_sp[1], g->in_sp[2], c}};
        for (int i = 0; i < 3; i++) {
            begin[1 + i] = pb[i];
            end[1 + i] = pe[i];
        }
        begin[4] = end[4] = 0;
    }
    nn_shape out_phys = in_phys;
    for (int i = 0; i < 5; i++)
        out_phys.d[i] += begin[i] + end[i];
    cl_mem padded = nn_workspace_mem(nn, op);
    cleval_status status =
        op->int8 ? nn_launch_quantize_pad(nn, op, op->k[1], *xm, padded, &in_phys, &out_phys, begin)
                 : nn_launch_conv_pad(nn, op, op->k[1], *xm, padded, &in_phys, &out_phys, begin);
    if (status != CLEVAL_OK) return status;
    *xm = padded;
    for (int i = 0; i < 3; i++)
        g->in_sp[i] += pb[i] + pe[i];
    return CLEVAL_OK;
}

/* The strides and unit count, once the input's extents are final (after stage_input). */
static void finish_geometry(const nn_conv_params *p, const nn_value *yv, cpu_geometry *g)
{
    int64_t stride[3];
    params3(p->stride, p->spatial, 1, stride);
    layout_strides(p->in_layout, g->c, g->in_sp, g->xs);
    layout_strides(yv->layout, yv->shape.d[1], g->y_sp, g->ys);
    for (int i = 0; i < 3; i++)
        g->ps[i] = stride[i] * g->xs[2 + i];
    g->units = p->ep.pool ? g->y_sp[1] * g->y_sp[2] : g->out_sp[0] * g->out_sp[1] * g->out_sp[2];
}

/* Fills conv_cpu's offset tables: the input offset of each k (mem[2]) and of each output unit
 * (mem[3], reallocated for the unit count). */
static cleval_status write_offset_tables(cleval_nn *nn, nn_op *op, const cpu_geometry *g)
{
    const nn_conv_params *p = &op->p.conv;
    const int64_t *ker = g->ker, *dil = g->dil, *xs = g->xs, *ps = g->ps;
    int64_t units = g->units;
    int32_t *koff = malloc((size_t)p->k * sizeof *koff);
    int32_t *poff = malloc((size_t)(units ? units : 1) * sizeof *poff);
    if (!koff || !poff) {
        free(koff);
        free(poff);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building Conv offsets");
    }
    int64_t cin_g = nn->values[p->weight].shape.d[1];
    int64_t window = ker[0] * ker[1] * ker[2];
    assert(cin_g * window == (int64_t)p->k);
    for (int64_t i = 0; i < cin_g * window; i++) {
        /* k = (ci, window position), or (window position, ci) when channels_inner. */
        int64_t ci = p->channels_inner ? i % cin_g : i / window;
        int64_t at = p->channels_inner ? i / cin_g : i % window;
        int64_t a = at / (ker[1] * ker[2]), b = at / ker[2] % ker[1], e = at % ker[2];
        koff[i] =
            (int32_t)(ci * xs[1] + a * dil[0] * xs[2] + b * dil[1] * xs[3] + e * dil[2] * xs[4]);
    }
    for (int64_t u = 0; u < units; u++) {
        if (p->ep.pool) {
            poff[u] = (int32_t)(2 * (u / g->y_sp[2]) * ps[1] + 2 * (u % g->y_sp[2]) * ps[2]);
        } else {
            int64_t plane = g->out_sp[1] * g->out_sp[2], rest = u % plane;
            poff[u] = (int32_t)((u / plane) * ps[0] + (rest / g->out_sp[2]) * ps[1] +
                                (rest % g->out_sp[2]) * ps[2]);
        }
    }
    if (op->mem[3]) clReleaseMemObject(op->mem[3]);
    op->mem[3] = NULL;
    cleval_status status = nn_device_buffer_rw(nn, (size_t)(units ? units : 1) * sizeof *poff,
                                               "Conv pixel offsets", &op->mem[3]);
    if (status == CLEVAL_OK)
        status =
            cleval_cl_check(clEnqueueWriteBuffer(nn->queue, op->mem[2], CL_TRUE, 0,
                                                 (size_t)p->k * sizeof *koff, koff, 0, NULL, NULL),
                            "clEnqueueWriteBuffer(Conv offsets)");
    if (status == CLEVAL_OK && units)
        status =
            cleval_cl_check(clEnqueueWriteBuffer(nn->queue, op->mem[3], CL_TRUE, 0,
                                                 (size_t)units * sizeof *poff, poff, 0, NULL, NULL),
                            "clEnqueueWriteBuffer(Conv pixel offsets)");
    free(koff);
    free(poff);
    return status;
}

/* Output units per conv_cpu work-item: enough work-items to keep every core busy, each at
 * least a few register tiles long. */
static int64_t units_per_item(const cleval_nn *nn, const nn_conv_params *p, int64_t n,
                              int64_t units)
{
    uint32_t units_per_tile = p->ep.pool ? p->mr / 4 : p->mr;
    int64_t tiles = (units + units_per_tile - 1) / units_per_tile;
    const cleval_device_info *info = cleval_device_get_info(nn->dev);
    int64_t want = (int64_t)nn->tuning.conv_items * (info->compute_units ? info->compute_units : 1);
    int64_t per_image = (want + n - 1) / n;
    if (per_image > (tiles + 3) / 4) per_image = (tiles + 3) / 4;
    if (per_image < 1) per_image = 1;
    return ((tiles + per_image - 1) / per_image) * units_per_tile;
}

static cleval_status launch_cpu(cleval_nn *nn, nn_op *op)
{
    nn_conv_params *p = &op->p.conv;
    const nn_value *yv = nn_out(nn, op, 0);
    const nn_shape *x = &nn_in(nn, op, 0)->shape;
    if (x->d[0] == 0 || nn_shape_count(&yv->shape) == 0) return CLEVAL_OK;
    nn_shape conv_out;
    cleval_status status = conv_shape(nn, op, &conv_out);
    if (status != CLEVAL_OK) return status;
    cpu_geometry g = {.n = x->d[0], .c = x->d[1]};
    spatial3(x, p->spatial, g.in_sp);
    spatial3(&conv_out, p->spatial, g.out_sp);
    spatial3(&yv->shape, p->spatial, g.y_sp);
    params3(p->kernel, p->spatial, 1, g.ker);
    params3(p->dilation, p->spatial, 1, g.dil);
    cl_mem xm = nn_value_mem(nn, op->in[0]);
    if ((status = stage_input(nn, op, &g, &xm)) != CLEVAL_OK) return status;
    finish_geometry(p, yv, &g);

    /* The offset tables depend on the input's extents; rebuild them when they change. */
    int64_t key[6] = {g.c, g.in_sp[0], g.in_sp[1], g.in_sp[2], p->in_layout, g.units};
    if (memcmp(key, p->table_key, sizeof key) != 0) {
        if ((status = write_offset_tables(nn, op, &g)) != CLEVAL_OK) return status;
        memcpy(p->table_key, key, sizeof key);
    }

    int64_t per_item = units_per_item(nn, p, g.n, g.units);
    size_t global[2] = {(size_t)((g.units + per_item - 1) / per_item), (size_t)g.n};
    size_t local[2] = {1, 1};
    int64_t co_g = p->co, nr = 16 * (int64_t)p->nv;
    int64_t cin_g = nn->values[p->weight].shape.d[1];
    const int64_t *xs = g.xs, *ys = g.ys, *ps = g.ps;
    int64_t ys_p = yv->layout == NN_LAYOUT_NHWC ? ys[4] : 1;
    for (int64_t grp = 0; grp < p->group; grp++) {
        cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
        cleval_kernel_arg_mem(&a, xm);
        cleval_kernel_arg_int(&a, (int32_t)(grp * cin_g * xs[1]));
        cleval_kernel_arg_int(&a, (int32_t)xs[0]);
        cleval_kernel_arg_mem(&a, op->mem[3]);
        cleval_kernel_arg_int4(&a, 0, (int32_t)ps[2], (int32_t)ps[1], (int32_t)(ps[1] + ps[2]));
        cleval_kernel_arg_mem(&a, op->mem[0]);
        cleval_kernel_arg_int(&a, (int32_t)(grp * p->panels * p->k * nr));
        cleval_kernel_arg_mem(&a, op->mem[2]);
        cleval_kernel_arg_mem(&a, op->mem[1]);
        cleval_kernel_arg_int(&a, (int32_t)(grp * p->panels * nr));
        cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
        cleval_kernel_arg_int(&a, (int32_t)(grp * co_g * ys[1]));
        cleval_kernel_arg_int(&a, (int32_t)ys[0]);
        cleval_kernel_arg_int(&a, (int32_t)ys[1]);
        cleval_kernel_arg_int(&a, (int32_t)ys_p);
        cleval_kernel_arg_int(&a, (int32_t)p->k);
        cleval_kernel_arg_int(&a, (int32_t)co_g);
        cleval_kernel_arg_int(&a, (int32_t)p->panels);
        cleval_kernel_arg_int(&a, (int32_t)g.units);
        cleval_kernel_arg_int(&a, (int32_t)per_item);
        cleval_kernel_arg_float(&a, p->ep.lo);
        cleval_kernel_arg_float(&a, p->ep.hi);
        cleval_kernel_arg_mem(&a, op->int8 ? op->mem[4] : op->mem[1]);
        cleval_kernel_arg_float(&a, op->int8 ? op->x_scale : 1.0f);
        if ((status = nn_enqueue(nn, op, &a, 2, global, local)) != CLEVAL_OK) return status;
    }
    return CLEVAL_OK;
}

static cleval_status launch_depthwise(cleval_nn *nn, nn_op *op)
{
    const nn_conv_params *p = &op->p.conv;
    const nn_shape *x = &nn_in(nn, op, 0)->shape, *y = &nn_out(nn, op, 0)->shape;
    uint64_t total = nn_shape_count(y);
    if (total == 0) return CLEVAL_OK;
    int64_t in_sp[3], out_sp[3], ker[3], stride[3], dil[3], pb[3];
    spatial3(x, p->spatial, in_sp);
    spatial3(y, p->spatial, out_sp);
    params3(p->kernel, p->spatial, 1, ker);
    params3(p->stride, p->spatial, 1, stride);
    params3(p->dilation, p->spatial, 1, dil);
    params3(p->pad_begin, p->spatial, 0, pb);
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->in[0]));
    cleval_kernel_arg_mem(&a, op->mem[0]);
    cleval_kernel_arg_mem(&a, op->mem[1]);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_int(&a, (int32_t)total);
    cleval_kernel_arg_int(&a, (int32_t)x->d[1]);
    cleval_kernel_arg_int(&a, (int32_t)(y->d[1] / x->d[1]));
    cleval_kernel_arg_int4(&a, (int32_t)in_sp[0], (int32_t)in_sp[1], (int32_t)in_sp[2], 0);
    cleval_kernel_arg_int4(&a, (int32_t)out_sp[0], (int32_t)out_sp[1], (int32_t)out_sp[2], 0);
    cleval_kernel_arg_int4(&a, (int32_t)ker[0], (int32_t)ker[1], (int32_t)ker[2], 0);
    cleval_kernel_arg_int4(&a, (int32_t)stride[0], (int32_t)stride[1], (int32_t)stride[2], 0);
    cleval_kernel_arg_int4(&a, (int32_t)dil[0], (int32_t)dil[1], (int32_t)dil[2], 0);
    cleval_kernel_arg_int4(&a, (int32_t)pb[0], (int32_t)pb[1], (int32_t)pb[2], 0);
    cleval_kernel_arg_float(&a, p->ep.lo);
    cleval_kernel_arg_float(&a, p->ep.hi);
    size_t local = nn_local_1d(nn), global = (size_t)total;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

static cleval_status conv_launch(cleval_nn *nn, nn_op *op)
{
    if (nn_depthwise_cpu_eligible(nn, op)) return nn_depthwise_cpu_launch(nn, op);
    if (op->p.conv.depthwise) return launch_depthwise(nn, op);
    if (op->p.conv.winograd) return nn_winograd_launch(nn, op);
    if (nn->variant == CLEVAL_VARIANT_CPU) return launch_cpu(nn, op);
    return nn_conv_gpu_launch(nn, op);
}

const nn_op_kind nn_kind_conv = {"Conv", conv_parse, conv_infer, conv_prepare, conv_launch};
