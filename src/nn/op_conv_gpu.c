/* Conv for the GPU kernel family (kernels/conv_gpu.cl): weights packed once at prepare as
 * [group][K_pad][CO_pad] (k-major, zero padded so the kernel loads them without bounds checks),
 * the work-group tile chosen for the output channels and checked against the device's limits,
 * and the k -> input offset table rebuilt only when the input's extents change. Every group
 * runs in one launch. Depthwise convolutions stay on conv_depthwise (op_conv.c): with one
 * input channel per group, K is the window alone and the GEMM tile would idle. */
#include "nn_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One tile shape of conv_gpu (its -D build options): TM pixels x TN channels per work-group
 * over TK-deep k-slices; each work-item owns 8 x 8 outputs. */
typedef struct conv_gpu_tile {
    uint32_t tm, tn, tk;
} conv_gpu_tile;

/* Narrow layers (32 output channels per group or fewer) take the half-width tile so that no
 * more than 31 of its columns are padding. */
static const conv_gpu_tile WIDE = {64, 64, 16}, NARROW = {64, 32, 16};

/* Input offset of k's first tap from a window origin for rows past K: an axis offset no origin
 * brings into range, so the padding of K reads zeros (FAR_AWAY in the kernel). */
#define CONV_GPU_FAR_AWAY (-(1 << 29))

static int64_t round_up64(int64_t v, int64_t to)
{
    return (v + to - 1) / to * to;
}

/* The tuned choice (gpu_conv_tile 1 narrow, 2 wide), else by the channels per group. */
static conv_gpu_tile tile_for(const cleval_nn *nn, const nn_conv_params *p)
{
    uint32_t forced = nn->tuning.gpu_conv_tile;
    if (forced) return forced == 1 ? NARROW : WIDE;
    return p->co <= NARROW.tn ? NARROW : WIDE;
}

/* Extents right-aligned into (D, H, W), 1 for the missing axes. */
static void right3(const int64_t *v, uint32_t n, int64_t fill, int64_t out[3])
{
    out[0] = out[1] = out[2] = fill;
    for (uint32_t i = 0; i < n; i++)
        out[3 - n + i] = v[i];
}

/* The packed weights [group][K_pad][CO_pad], bias and int8 scales [group][CO_pad]. */
static cleval_status upload_weights(cleval_nn *nn, nn_op *op, int64_t k_pad, int64_t co_pad)
{
    const nn_conv_params *p = &op->p.conv;
    const nn_value *wv = &nn->values[p->weight];
    int64_t group = p->group, co_g = p->co, k = p->k, co = group * co_g;
    const float *w = wv->f32;
    float *codes = NULL, *scales = NULL;
    cleval_status status = CLEVAL_OK;
    if (op->int8) {
        if ((status = nn_quantise_weights(w, co, k, k, 1, "Conv weights", &codes, &scales)) !=
            CLEVAL_OK)
            return status;
        w = codes;
    }
    size_t packed_count = (size_t)(group * k_pad * co_pad), padded = (size_t)(group * co_pad);
    float *packed = calloc(packed_count, sizeof *packed);
    float *bias = calloc(padded, sizeof *bias);
    float *scale_pad = op->int8 ? calloc(padded, sizeof *scale_pad) : NULL;
    if (!packed || !bias || (op->int8 && !scale_pad))
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory packing Conv weights");
    const float *b = p->bias >= 0 ? nn->values[p->bias].f32 : NULL;
    for (int64_t g = 0; status == CLEVAL_OK && g < group; g++)
        for (int64_t j = 0; j < co_g; j++) {
            int64_t c = g * co_g + j;
            for (int64_t kk = 0; kk < k; kk++)
                packed[(g * k_pad + kk) * co_pad + j] = w[c * k + kk];
            bias[g * co_pad + j] = b ? b[c] : 0.0f;
            if (scale_pad) scale_pad[g * co_pad + j] = scales[c];
        }
    if (status == CLEVAL_OK)
        status = nn_upload_as(nn, packed, packed_count, nn->precision == CLEVAL_NN_FP16, op->int8,
                              "Conv weights", &op->mem[0]);
    if (status == CLEVAL_OK)
        status = nn_upload(nn, bias, padded * sizeof *bias, "Conv bias", &op->mem[1]);
    if (status == CLEVAL_OK && op->int8)
        status =
            nn_upload(nn, scale_pad, padded * sizeof *scale_pad, "Conv weight scales", &op->mem[4]);
    free(packed);
    free(bias);
    free(scale_pad);
    free(codes);
    free(scales);
    return status;
}

cleval_status nn_conv_gpu_prepare(cleval_nn *nn, nn_op *op, const char *precision)
{
    nn_conv_params *p = &op->p.conv;
    conv_gpu_tile t = tile_for(nn, p);
    size_t items = (size_t)(t.tm / 8) * (t.tn / 8);
    size_t tile_bytes = (op->int8 ? 1 : nn->half_math ? 2 : 4);
    size_t local_bytes = (size_t)t.tk * (t.tm + t.tn) * tile_bytes;
    const cleval_device_info *info = cleval_device_get_info(nn->dev);
    if (info->max_work_group_size < items || info->local_mem_bytes < local_bytes)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "the device's work-groups (%zu items, %llu bytes of local memory) are "
                          "smaller than conv_gpu's %ux%u tile needs (%zu items, %zu bytes)",
                          info->max_work_group_size, (unsigned long long)info->local_mem_bytes,
                          t.tm, t.tn, items, local_bytes);
    int64_t k_pad = round_up64(p->k, t.tk), co_pad = round_up64(p->co, t.tn);
    cleval_status status = upload_weights(nn, op, k_pad, co_pad);
    if (status == CLEVAL_OK)
        status = nn_device_buffer_rw(nn, (size_t)k_pad * 4 * sizeof(int32_t), "Conv k table",
                                     &op->mem[2]);
    if (status != CLEVAL_OK) return status;
    memset(p->table_key, 0, sizeof p->table_key);
    char options[320];
    snprintf(options, sizeof options, "-DTM=%u -DTN=%u -DTK=%u -DCLAMP=%d %s", t.tm, t.tn, t.tk,
             nn_epilogue_clamps(&p->ep), precision);
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "conv_gpu TM=%u TN=%u TK=%u%s", t.tm, t.tn,
             t.tk,
             op->int8                          ? " int8"
             : nn->precision == CLEVAL_NN_FP16 ? nn_fp16_tag(nn)
                                               : "");
    status = nn_kernel(nn, op, "conv_gpu", options, "conv_gpu", &op->k[0]);
    if (status == CLEVAL_OK && op->int8)
        status = nn_kernel(nn, op, "quantize", NULL, "quantize", &op->k[1]);
    return status;
}

/* ktab[k] = (kd * dd, kh * dh, kw * dw, input offset of tap k from the window origin) for
 * k = (ci, kd, kh, kw) of one group, over input extents in[3]; rows past K read nothing. */
static cleval_status write_k_table(cleval_nn *nn, nn_op *op, const int64_t in[3], int64_t k_pad)
{
    const nn_conv_params *p = &op->p.conv;
    int64_t ker[3], dil[3];
    right3(p->kernel, p->spatial, 1, ker);
    right3(p->dilation, p->spatial, 1, dil);
    int64_t window = ker[0] * ker[1] * ker[2], plane = in[1] * in[2], volume = in[0] * plane;
    int32_t *tab = malloc((size_t)k_pad * 4 * sizeof *tab);
    if (!tab) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the Conv k table");
    for (int64_t k = 0; k < k_pad; k++) {
        int32_t *e = tab + 4 * k;
        if (k >= (int64_t)p->k) {
            e[0] = CONV_GPU_FAR_AWAY;
            e[1] = e[2] = e[3] = 0;
            continue;
        }
        int64_t ci = k / window, at = k % window;
        int64_t d = at / (ker[1] * ker[2]) * dil[0], h = at / ker[2] % ker[1] * dil[1];
        int64_t w = at % ker[2] * dil[2];
        e[0] = (int32_t)d;
        e[1] = (int32_t)h;
        e[2] = (int32_t)w;
        e[3] = (int32_t)(ci * volume + d * plane + h * in[2] + w);
    }
    cleval_status status =
        cleval_cl_check(clEnqueueWriteBuffer(nn->queue, op->mem[2], CL_TRUE, 0,
                                             (size_t)k_pad * 4 * sizeof *tab, tab, 0, NULL, NULL),
                        "clEnqueueWriteBuffer(Conv k table)");
    free(tab);
    return status;
}

cleval_status nn_conv_gpu_launch(cleval_nn *nn, nn_op *op)
{
    nn_conv_params *p = &op->p.conv;
    const nn_shape *x = &nn_in(nn, op, 0)->shape, *y = &nn_out(nn, op, 0)->shape;
    int64_t in[3], out[3], stride[3], pad[3];
    right3(x->d + 2, p->spatial, 1, in);
    right3(y->d + 2, p->spatial, 1, out);
    right3(p->stride, p->spatial, 1, stride);
    right3(p->pad_begin, p->spatial, 0, pad);
    int64_t volume = out[0] * out[1] * out[2], in_volume = in[0] * in[1] * in[2];
    int64_t m = y->d[0] * volume, co_g = p->co;
    int64_t cin_g = nn->values[p->weight].shape.d[1];
    if (m == 0 || co_g == 0) return CLEVAL_OK;
    conv_gpu_tile t = tile_for(nn, p);
    int64_t k_pad = round_up64(p->k, t.tk), co_pad = round_up64(co_g, t.tn);
    cleval_status status;
    int64_t key[6] = {in[0], in[1], in[2], 0, 0, 0};
    if (memcmp(key, p->table_key, sizeof key) != 0) {
        if ((status = write_k_table(nn, op, in, k_pad)) != CLEVAL_OK) return status;
        memcpy(p->table_key, key, sizeof key);
    }
    cl_mem xm = nn_value_mem(nn, op->in[0]);
    if (op->int8) {
        cl_mem codes = nn_workspace_mem(nn, op);
        if ((status = nn_launch_quantize(nn, op, op->k[1], xm, 0, codes, 0, nn_shape_count(x))) !=
            CLEVAL_OK)
            return status;
        xm = codes;
    }
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, xm);
    cleval_kernel_arg_int(&a, (int32_t)(x->d[1] * in_volume));
    cleval_kernel_arg_int(&a, (int32_t)(cin_g * in_volume));
    cleval_kernel_arg_int4(&a, (int32_t)in[0], (int32_t)in[1], (int32_t)in[2], 0);
    cleval_kernel_arg_mem(&a, op->mem[2]);
    cleval_kernel_arg_mem(&a, op->mem[0]);
    cleval_kernel_arg_mem(&a, op->mem[1]);
    cleval_kernel_arg_mem(&a, op->int8 ? op->mem[4] : op->mem[1]);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_int(&a, (int32_t)(y->d[1] * volume));
    cleval_kernel_arg_int(&a, (int32_t)volume);
    cleval_kernel_arg_int(&a, (int32_t)(co_g * volume));
    cleval_kernel_arg_int(&a, (int32_t)k_pad);
    cleval_kernel_arg_int(&a, (int32_t)co_pad);
    cleval_kernel_arg_int(&a, (int32_t)co_g);
    cleval_kernel_arg_int(&a, (int32_t)m);
    cleval_kernel_arg_int4(&a, (int32_t)out[0], (int32_t)out[1], (int32_t)out[2], 0);
    cleval_kernel_arg_int4(&a, (int32_t)stride[0], (int32_t)stride[1], (int32_t)stride[2], 0);
    cleval_kernel_arg_int4(&a, (int32_t)pad[0], (int32_t)pad[1], (int32_t)pad[2], 0);
    cleval_kernel_arg_float(&a, p->ep.lo);
    cleval_kernel_arg_float(&a, p->ep.hi);
    cleval_kernel_arg_float(&a, op->int8 ? op->x_scale : 1.0f);
    size_t local[3] = {t.tn / 8, t.tm / 8, 1};
    size_t global[3] = {(size_t)(co_pad / t.tn) * local[0],
                        (size_t)((m + t.tm - 1) / t.tm) * local[1], (size_t)p->group};
    return nn_enqueue(nn, op, &a, 3, global, local);
}
