/* The zero-bordered input copies of the CPU convolutions (kernels/conv_pad.cl): conv_cpu and
 * the Winograd path read a padded input without bounds checks. conv_pad_rows keeps the layout
 * and runs as row moves instead of pad_nd's per-element index arithmetic; conv_pad_channels_last
 * also turns any input into the channels-last, 16-channel-multiple form Winograd reads. */
#include "nn_internal.h"

#include <stdio.h>

/* The units of work of the copies: a few per core. */
static int64_t per_item_of(const cleval_nn *nn, int64_t rows)
{
    const cleval_device_info *info = cleval_device_get_info(nn->dev);
    int64_t want = (int64_t)nn->tuning.conv_items * (info->compute_units ? info->compute_units : 1);
    return rows ? (rows + want - 1) / want : 1;
}

cleval_status nn_conv_pad_kernel(cleval_nn *nn, nn_op *op, cl_kernel *out)
{
    char options[64];
    nn_storage_options(nn, op->in[0], op->in[0], options, sizeof options);
    return nn_kernel(nn, op, "conv_pad", options, "conv_pad_rows", out);
}

cleval_status nn_launch_conv_pad(cleval_nn *nn, nn_op *op, cl_kernel k, cl_mem x, cl_mem y,
                                 const nn_shape *in, const nn_shape *out, const int64_t *begin)
{
    uint32_t rank = in->rank;
    if (nn_shape_count(out) == 0) return CLEVAL_OK;
    /* The row: the last padded axis with the unpadded axes after it. */
    uint32_t p = rank - 1;
    while (p > 0 && out->d[p] == in->d[p] && begin[p] == 0)
        p--;
    int64_t inner = 1, rows = 1;
    for (uint32_t d = p + 1; d < rank; d++)
        inner *= in->d[d];
    int32_t od[4] = {1, 1, 1, 1}, id[4] = {1, 1, 1, 1}, bg[4] = {0, 0, 0, 0};
    for (uint32_t d = 0; d < p; d++) {
        rows *= out->d[d];
        od[4 - p + d] = (int32_t)out->d[d];
        id[4 - p + d] = (int32_t)in->d[d];
        bg[4 - p + d] = (int32_t)begin[d];
    }
    int64_t per_item = per_item_of(nn, rows);
    cleval_kernel_args a = cleval_kernel_args_begin(k, NULL);
    cleval_kernel_arg_mem(&a, x);
    cleval_kernel_arg_mem(&a, y);
    cleval_kernel_arg_int(&a, (int32_t)rows);
    cleval_kernel_arg_int(&a, (int32_t)per_item);
    cleval_kernel_arg_int(&a, (int32_t)(in->d[p] * inner));
    cleval_kernel_arg_int(&a, (int32_t)(begin[p] * inner));
    cleval_kernel_arg_int(&a, (int32_t)(out->d[p] * inner));
    cleval_kernel_arg_int4(&a, od[0], od[1], od[2], od[3]);
    cleval_kernel_arg_int4(&a, id[0], id[1], id[2], id[3]);
    cleval_kernel_arg_int4(&a, bg[0], bg[1], bg[2], bg[3]);
    size_t global = (size_t)((rows + per_item - 1) / per_item), local = 1;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

cleval_status nn_conv_repack_kernel(cleval_nn *nn, nn_op *op, cl_kernel *out)
{
    char options[64];
    nn_storage_options(nn, op->in[0], op->in[0], options, sizeof options);
    return nn_kernel(nn, op, "conv_pad", options, "conv_pad_channels_last", out);
}

cleval_status nn_launch_conv_repack(cleval_nn *nn, nn_op *op, cl_kernel k, cl_mem x, cl_mem y,
                                    int64_t ph, int64_t pw, const int64_t pad_b[2])
{
    const nn_value *xv = nn_in(nn, op, 0);
    int64_t n = xv->shape.d[0], c = xv->shape.d[1], h = xv->shape.d[2], w = xv->shape.d[3];
    int64_t xs[4] = {c * h * w, h * w, w, 1}; /* (n, c, h, w) */
    if (xv->layout == NN_LAYOUT_NHWC) {
        xs[1] = 1;
        xs[2] = w * c;
        xs[3] = c;
    }
    int64_t rows = n * ph, per_item = per_item_of(nn, rows);
    if (rows == 0) return CLEVAL_OK;
    cleval_kernel_args a = cleval_kernel_args_begin(k, NULL);
    cleval_kernel_arg_mem(&a, x);
    cleval_kernel_arg_int4(&a, (int32_t)xs[0], (int32_t)xs[1], (int32_t)xs[2], (int32_t)xs[3]);
    cleval_kernel_arg_mem(&a, y);
    cleval_kernel_arg_int(&a, (int32_t)rows);
    cleval_kernel_arg_int(&a, (int32_t)per_item);
    cleval_kernel_arg_int4(&a, (int32_t)c, (int32_t)h, (int32_t)w, (int32_t)((c + 15) / 16 * 16));
    cleval_kernel_arg_int4(&a, (int32_t)ph, (int32_t)pw, (int32_t)pad_b[0], (int32_t)pad_b[1]);
    size_t global = (size_t)((rows + per_item - 1) / per_item), local = 1;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}
