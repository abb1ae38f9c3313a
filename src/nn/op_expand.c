/* Device ops whose output shape is computed at run time from a shape input (a constant or a
 * host value, fold.c): Expand (broadcast to a shape) and ConstantOfShape with a float fill.
 * Kernels in kernels/expand.cl. */
#include "nn_internal.h"

#include <stdio.h>

/* Input i is a shape: a constant (checked now) or a host value (read at each inference). */
static cleval_status need_shape_input(cleval_nn *nn, const nn_op *op, uint32_t i)
{
    if (nn_has_in(op, i) && nn_in(nn, op, i)->kind == NN_VALUE_HOST) return CLEVAL_OK;
    nn_shape unused;
    return nn_host_shape(nn, op, i, &unused);
}

/* ---- Expand ---- */

static cleval_status expand_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    cleval_status status = nn_check_attrs(nn, op, node, NULL);
    if (status != CLEVAL_OK) return status;
    if (!nn_has_in(op, 0)) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input 0 is missing");
    return need_shape_input(nn, op, 1);
}

static cleval_status expand_infer(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0);
    nn_shape target, out;
    cleval_status status = nn_host_shape(nn, op, 1, &target);
    if (status != CLEVAL_OK) return status;
    if (!nn_broadcast(&x->shape, &target, &out)) {
        char sx[160], st[160];
        nn_shape_format(&x->shape, sx, sizeof sx);
        nn_shape_format(&target, st, sizeof st);
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "cannot expand %s to %s", sx, st);
    }
    /* A varying input keeps its samples apart only when its batch axis is not broadcast. */
    int batch = nn_batch_axis(x);
    if (batch >= 0 && out.d[out.rank - x->shape.rank + (uint32_t)batch] != x->shape.d[batch])
        op->mixes_batch = true;
    nn_out(nn, op, 0)->shape = out;
    return CLEVAL_OK;
}

static cleval_status expand_prepare(cleval_nn *nn, nn_op *op)
{
    return nn_storage_kernel(nn, op, "expand", "expand");
}

static cleval_status expand_launch(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0), *y = nn_out(nn, op, 0);
    if (y->count == 0) return CLEVAL_OK;
    /* Steps of x over y's axes, right-aligned into the kernel's 8 (0 where x broadcasts). */
    int32_t dims[8] = {1, 1, 1, 1, 1, 1, 1, 1}, steps[8] = {0};
    uint32_t rank = y->shape.rank;
    int64_t stride = 1;
    for (uint32_t d = rank; d-- > 0;) {
        int64_t j = (int64_t)d - (int64_t)(rank - x->shape.rank);
        dims[8 - rank + d] = (int32_t)y->shape.d[d];
        if (j < 0) continue;
        if (x->shape.d[j] != 1) steps[8 - rank + d] = (int32_t)stride;
        stride *= x->shape.d[j];
    }
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->in[0]));
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_uint(&a, (uint32_t)y->count);
    cleval_kernel_arg_int(&a, (int32_t)(8 - rank));
    cleval_kernel_arg_int8(&a, dims);
    cleval_kernel_arg_int8(&a, steps);
    size_t local = nn_local_1d(nn), global = (size_t)y->count;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

const nn_op_kind nn_kind_expand = {"Expand", expand_parse, expand_infer, expand_prepare,
                                   expand_launch};

/* ---- ConstantOfShape (float fill) ---- */

static cleval_status fill_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    cleval_status status = nn_constantofshape_parse(nn, op, node);
    if (status == CLEVAL_OK && !op->p.fold.fill_float)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "an integer fill is supported for shapes computed on the host only");
    if (status == CLEVAL_OK) status = need_shape_input(nn, op, 0);
    return status;
}

static cleval_status fill_infer(cleval_nn *nn, nn_op *op)
{
    return nn_host_shape(nn, op, 0, &nn_out(nn, op, 0)->shape);
}

static cleval_status fill_prepare(cleval_nn *nn, nn_op *op)
{
    char options[32];
    snprintf(options, sizeof options, "-DY_HALF=%d", nn_half(nn, op->out[0]));
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "fill");
    return nn_kernel(nn, op, "expand", options, "fill", &op->k[0]);
}

static cleval_status fill_launch(cleval_nn *nn, nn_op *op)
{
    const nn_value *y = nn_out(nn, op, 0);
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_uint(&a, (uint32_t)y->count);
    cleval_kernel_arg_float(&a, op->p.fold.fill_f32);
    size_t local = nn_local_1d(nn), global = (size_t)y->count;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

const nn_op_kind nn_kind_constantofshape = {"ConstantOfShape", fill_parse, fill_infer, fill_prepare,
                                            fill_launch};
