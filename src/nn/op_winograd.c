/* The F(2x2, 3x3) Winograd path of Conv for CPU-style devices (kernels/conv.cl,
 * conv_winograd_cpu): 3x3, stride 1, dilation 1, one group, at least 8 input and 16 output
 * channels. The kernel reads a channels-last input with a multiple of 16 channels; another input
 * (NCHW, or another channel count) is first copied into that form (kernels/conv_pad.cl
 * conv_pad_channels_last, zero channels up to the multiple of 16, whose weights are zero), as
 * is one that needs padding or one more row or column for an odd output (conv_pad_rows).
 * Weights are transformed (G g G^T, in double) and packed k-major per transform point at
 * prepare. */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t nn_window_out(int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                      int64_t pad_begin, int64_t pad_end);

bool nn_winograd_eligible(const cleval_nn *nn, const nn_op *op)
{
    const nn_conv_params *p = &op->p.conv;
    if (nn->variant != CLEVAL_VARIANT_CPU || !nn->tuning.winograd || op->int8 || p->depthwise ||
        p->group != 1 || p->spatial != 2)
        return false;
    const nn_value *w = &nn->values[p->weight];
    for (int i = 0; i < 2; i++)
        if (p->kernel[i] != 3 || p->stride[i] != 1 || p->dilation[i] != 1) return false;
    /* Fewer than 8 input channels would compute mostly on the zero channels. */
    return w->shape.d[1] >= 8 && w->shape.d[0] >= 16;
}

/* Everything a launch needs, from the current shapes. */
typedef struct geometry {
    int64_t n, c, h, w; /* input, logical */
    int64_t oh, ow;     /* conv output (before any pool) */
    int64_t yh, yw, co; /* the output value's extents */
    int64_t tiles_h, tiles_w, tiles;
    int64_t ph, pw;             /* padded input extents */
    int64_t pad_b[2], pad_e[2]; /* pads of the pre-copy (including extra rows/columns) */
    int64_t cp;                 /* channels as the kernel reads them: c rounded up to 16 */
    bool prepad;
    bool repack; /* the staging copy also changes the layout or the channel count */
    int64_t per_image, tiles_per_item;
    size_t padded_floats; /* 4-byte units of the padded copy (half elements take 2 bytes) */
    size_t scratch_floats;
} geometry;

static void geometry_of(const cleval_nn *nn, const nn_op *op, geometry *g)
{
    const nn_conv_params *p = &op->p.conv;
    const nn_shape *x = &nn->values[op->in[0]].shape, *y = &nn->values[op->out[0]].shape;
    g->n = x->d[0];
    g->c = x->d[1];
    g->h = x->d[2];
    g->w = x->d[3];
    g->oh = nn_window_out(g->h, 3, 1, 1, p->pad_begin[0], p->pad_end[0]);
    g->ow = nn_window_out(g->w, 3, 1, 1, p->pad_begin[1], p->pad_end[1]);
    g->co = y->d[1];
    g->yh = y->d[2];
    g->yw = y->d[3];
    g->tiles_h = p->ep.pool ? g->oh / 2 : (g->oh + 1) / 2;
    g->tiles_w = p->ep.pool ? g->ow / 2 : (g->ow + 1) / 2;
    g->tiles = g->tiles_h * g->tiles_w;
    int64_t need[2] = {2 * g->tiles_h + 2, 2 * g->tiles_w + 2}, in[2] = {g->h, g->w};
    g->cp = (g->c + 15) / 16 * 16;
    g->repack = p->in_layout != NN_LAYOUT_NHWC || g->cp != g->c;
    g->prepad = g->repack;
    for (int i = 0; i < 2; i++) {
        g->pad_b[i] = p->pad_begin[i];
        g->pad_e[i] = p->pad_end[i];
        int64_t have = in[i] + g->pad_b[i] + g->pad_e[i];
        if (have < need[i]) g->pad_e[i] += need[i] - have;
        g->prepad = g->prepad || g->pad_b[i] || g->pad_e[i];
    }
    g->ph = g->h + g->pad_b[0] + g->pad_e[0];
    g->pw = g->w + g->pad_b[1] + g->pad_e[1];
    size_t padded = g->prepad ? (size_t)(g->n * g->ph * g->pw * g->cp) : 0;
    g->padded_floats = (padded * nn_value_elem_bytes(nn, op->in[0]) + 3) / 4;
    /* A few work-items per core, each a whole number of MR-tile groups. */
    int64_t mr = nn->tuning.conv_mr;
    const cleval_device_info *info = cleval_device_get_info(nn->dev);
    int64_t want = (int64_t)nn->tuning.conv_items * (info->compute_units ? info->compute_units : 1);
    int64_t groups = (g->tiles + mr - 1) / mr;
    g->per_image = g->n ? (want + g->n - 1) / g->n : 1;
    if (g->per_image > groups) g->per_image = groups;
    if (g->per_image < 1) g->per_image = 1;
    g->tiles_per_item = ((groups + g->per_image - 1) / g->per_image) * mr;
    g->per_image = g->tiles_per_item ? (g->tiles + g->tiles_per_item - 1) / g->tiles_per_item : 1;
    if (g->per_image < 1) g->per_image = 1;
    int64_t nr = 16 * (int64_t)nn->tuning.conv_nv;
    g->scratch_floats = (size_t)(g->n * g->per_image * 16 * mr * (g->cp + nr));
}

size_t nn_winograd_workspace(const cleval_nn *nn, const nn_op *op)
{
    geometry g;
    geometry_of(nn, op, &g);
    return (g.padded_floats + g.scratch_floats) * sizeof(float);
}

cleval_status nn_winograd_prepare(cleval_nn *nn, nn_op *op, const char *options)
{
    nn_conv_params *p = &op->p.conv;
    const nn_value *w = &nn->values[p->weight];
    int64_t co = w->shape.d[0], cin = w->shape.d[1], cp = (cin + 15) / 16 * 16;
    int64_t nr = 16 * (int64_t)p->nv, panels = (co + nr - 1) / nr;
    p->panels = (uint32_t)panels;
    size_t count = (size_t)(16 * panels * cp * nr); /* channels past cin stay zero */
    float *up = calloc(count, sizeof *up), *b = calloc((size_t)(panels * nr), sizeof *b);
    if (!up || !b) {
        free(up);
        free(b);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory transforming Conv weights");
    }
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    for (int64_t o = 0; o < co; o++) {
        int64_t pn = o / nr, j = o % nr;
        for (int64_t ci = 0; ci < cin; ci++) {
            const float *g = w->f32 + (o * cin + ci) * 9;
            double t[4][3], u[4][4];
            for (int i = 0; i < 4; i++)
                for (int k = 0; k < 3; k++)
                    t[i][k] =
                        G[i][0] * g[0 * 3 + k] + G[i][1] * g[1 * 3 + k] + G[i][2] * g[2 * 3 + k];
            for (int i = 0; i < 4; i++)
                for (int k = 0; k < 4; k++)
                    u[i][k] = t[i][0] * G[k][0] + t[i][1] * G[k][1] + t[i][2] * G[k][2];
            for (int e = 0; e < 16; e++)
                up[((e * panels + pn) * cp + ci) * nr + j] = (float)u[e / 4][e % 4];
        }
        if (p->bias >= 0) b[o] = nn->values[p->bias].f32[o];
    }
    cleval_status status = nn_upload_as(nn, up, count, nn->precision == CLEVAL_NN_FP16, false,
                                        "Winograd Conv weights", &op->mem[0]);
    if (status == CLEVAL_OK)
        status = nn_upload(nn, b, (size_t)(panels * nr) * sizeof *b, "Conv bias", &op->mem[1]);
    free(up);
    free(b);
    if (status != CLEVAL_OK) return status;
    p->winograd = true;
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "conv_winograd_cpu MR=%u NV=%u%s%s%s", p->mr,
             p->nv, p->ep.pool ? " pool" : "",
             nn->values[op->out[0]].layout == NN_LAYOUT_NHWC ? " nhwc-out" : "",
             nn->precision == CLEVAL_NN_FP16 ? nn_fp16_tag(nn) : "");
    status = nn_kernel(nn, op, "conv", options, "conv_winograd_cpu", &op->k[0]);
    if (status == CLEVAL_OK) status = nn_conv_pad_kernel(nn, op, &op->k[1]);
    if (status == CLEVAL_OK && (p->in_layout != NN_LAYOUT_NHWC || cin != cp))
        status = nn_conv_repack_kernel(nn, op, &op->k[2]);
    return status;
}

cleval_status nn_winograd_launch(cleval_nn *nn, nn_op *op)
{
    const nn_conv_params *p = &op->p.conv;
    const nn_value *yv = &nn->values[op->out[0]];
    geometry g;
    geometry_of(nn, op, &g);
    if (g.n == 0 || g.tiles == 0 || g.co == 0) return CLEVAL_OK;
    cl_mem xm = nn_value_mem(nn, op->in[0]), ws = nn_workspace_mem(nn, op);
    cleval_status status;
    if (g.repack) {
        if ((status = nn_launch_conv_repack(nn, op, op->k[2], xm, ws, g.ph, g.pw, g.pad_b)) !=
            CLEVAL_OK)
            return status;
        xm = ws;
    } else if (g.prepad) {
        nn_shape in = {4, {g.n, g.h, g.w, g.c}}, out = {4, {g.n, g.ph, g.pw, g.c}};
        int64_t begin[4] = {0, g.pad_b[0], g.pad_b[1], 0};
        if ((status = nn_launch_conv_pad(nn, op, op->k[1], xm, ws, &in, &out, begin)) != CLEVAL_OK)
            return status;
        xm = ws;
    }
    /* Output strides in the output value's layout (pooled extents when pooled). */
    int64_t ys_n, ys_c, ys_h, ys_w;
    if (yv->layout == NN_LAYOUT_NHWC) {
        ys_c = 1;
        ys_w = g.co;
        ys_h = g.yw * g.co;
        ys_n = g.yh * g.yw * g.co;
    } else {
        ys_w = 1;
        ys_h = g.yw;
        ys_c = g.yh * g.yw;
        ys_n = g.co * ys_c;
    }
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, xm);
    cleval_kernel_arg_int(&a, 0);
    cleval_kernel_arg_int(&a, (int32_t)(g.ph * g.pw * g.cp));
    cleval_kernel_arg_int(&a, (int32_t)(g.pw * g.cp));
    cleval_kernel_arg_int(&a, (int32_t)g.cp);
    cleval_kernel_arg_int(&a, (int32_t)g.cp);
    cleval_kernel_arg_mem(&a, op->mem[0]);
    cleval_kernel_arg_mem(&a, op->mem[1]);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_int(&a, 0);
    cleval_kernel_arg_int(&a, (int32_t)ys_n);
    cleval_kernel_arg_int(&a, (int32_t)ys_c);
    cleval_kernel_arg_int(&a, (int32_t)ys_h);
    cleval_kernel_arg_int(&a, (int32_t)ys_w);
    cleval_kernel_arg_int(&a, (int32_t)g.co);
    cleval_kernel_arg_int(&a, (int32_t)p->panels);
    cleval_kernel_arg_int(&a, (int32_t)g.tiles_w);
    cleval_kernel_arg_int(&a, (int32_t)g.tiles);
    cleval_kernel_arg_int(&a, (int32_t)g.oh);
    cleval_kernel_arg_int(&a, (int32_t)g.ow);
    cleval_kernel_arg_int(&a, (int32_t)g.tiles_per_item);
    cleval_kernel_arg_float(&a, p->ep.lo);
    cleval_kernel_arg_float(&a, p->ep.hi);
    cleval_kernel_arg_mem(&a, ws);
    cleval_kernel_arg_int(&a, (int32_t)g.padded_floats);
    size_t global[2] = {(size_t)g.per_image, (size_t)g.n}, local[2] = {1, 1};
    return nn_enqueue(nn, op, &a, 2, global, local);
}
