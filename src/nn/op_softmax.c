/* Softmax and LogSoftmax over one axis (opset >= 13) or over everything from `axis` on
 * (opset < 13 coerces the input to 2-D), numerically stable (the row maximum is subtracted
 * first); and the row argmax behind cleval_nn_pred_buffer(). kernels/softmax.cl: one row per
 * work-item for both device variants; on the CPU family the rows along the last axis (inner
 * extent 1, as attention's softmax) run softmax_rows, on float16 vectors, as k[1]. */
#include "nn_internal.h"

#include <stdio.h>

static cleval_status softmax_parse_op(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node,
                                      bool log)
{
    static const char *const known[] = {"axis", NULL};
    nn_softmax_params *p = &op->p.softmax;
    p->log = log;
    p->coerce_2d = nn->opset < 13;
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK ||
        (status = nn_attr_int(nn, node, "axis", p->coerce_2d ? 1 : -1, &p->axis)) != CLEVAL_OK)
        return status;
    if (!nn_has_in(op, 0)) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input is missing");
    return CLEVAL_OK;
}

static cleval_status softmax_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    return softmax_parse_op(nn, op, node, false);
}

static cleval_status logsoftmax_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    return softmax_parse_op(nn, op, node, true);
}

/* The rows of the reduction: outer x len x inner, reducing over len. */
static cleval_status softmax_geometry(cleval_nn *nn, const nn_op *op, const nn_shape *x,
                                      uint64_t *outer, uint64_t *len, uint64_t *inner,
                                      uint32_t *axis_out)
{
    const nn_softmax_params *p = &op->p.softmax;
    uint32_t axis = 0;
    bool ok = p->coerce_2d ? (p->axis >= -(int64_t)x->rank && p->axis <= (int64_t)x->rank)
                           : nn_axis(p->axis, x->rank, &axis);
    if (!ok)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "axis %lld is out of range for rank %u",
                          (long long)p->axis, x->rank);
    if (p->coerce_2d) axis = (uint32_t)(p->axis < 0 ? p->axis + x->rank : p->axis);
    *outer = *len = *inner = 1;
    for (uint32_t i = 0; i < x->rank; i++) {
        if (i < axis)
            *outer *= (uint64_t)x->d[i];
        else if (i == axis || p->coerce_2d)
            *len *= (uint64_t)x->d[i];
        else
            *inner *= (uint64_t)x->d[i];
    }
    *axis_out = axis;
    return CLEVAL_OK;
}

static cleval_status softmax_infer(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0);
    uint64_t outer = 0, len = 0, inner = 0;
    uint32_t axis = 0;
    cleval_status status = softmax_geometry(nn, op, &x->shape, &outer, &len, &inner, &axis);
    if (status != CLEVAL_OK) return status;
    /* Opset < 13 normalises over every axis from `axis` on. */
    int batch = nn_batch_axis(x);
    if (batch >= 0 && (op->p.softmax.coerce_2d ? batch >= (int)axis : batch == (int)axis))
        op->mixes_batch = true;
    nn_out(nn, op, 0)->shape = x->shape;
    op->flops = 4.0 * (double)nn_shape_count(&x->shape);
    return CLEVAL_OK;
}

/* CPU family: also softmax_rows (k[1]) where the rows run along the last axis (inner 1) at
 * the shapes of now; the launch checks again, with the shapes of each batch. */
static cleval_status softmax_prepare(cleval_nn *nn, nn_op *op)
{
    uint64_t outer = 0, len = 0, inner = 0;
    uint32_t axis = 0;
    cleval_status status =
        softmax_geometry(nn, op, &nn_in(nn, op, 0)->shape, &outer, &len, &inner, &axis);
    if (status != CLEVAL_OK) return status;
    bool rows = nn->variant == CLEVAL_VARIANT_CPU && inner == 1;
    if ((status = nn_storage_kernel(nn, op, "softmax", "softmax")) != CLEVAL_OK || !rows)
        return status;
    char options[64];
    nn_storage_options(nn, op->in[0], op->out[0], options, sizeof options);
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "softmax_rows");
    return nn_kernel(nn, op, "softmax", options, "softmax_rows", &op->k[1]);
}

static cleval_status softmax_launch(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0);
    uint64_t outer = 0, len = 0, inner = 0;
    uint32_t axis = 0;
    cleval_status status = softmax_geometry(nn, op, &x->shape, &outer, &len, &inner, &axis);
    if (status != CLEVAL_OK || outer * inner == 0 || len == 0) return status;
    if (op->k[1] && inner == 1) {
        cleval_kernel_args a = cleval_kernel_args_begin(op->k[1], NULL);
        cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->in[0]));
        cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
        cleval_kernel_arg_uint(&a, (uint32_t)outer);
        cleval_kernel_arg_uint(&a, (uint32_t)len);
        cleval_kernel_arg_int(&a, op->p.softmax.log);
        size_t local = nn_local_rows(nn, outer), global = (size_t)outer;
        return nn_enqueue(nn, op, &a, 1, &global, &local);
    }
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->in[0]));
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_uint(&a, (uint32_t)(outer * inner));
    cleval_kernel_arg_uint(&a, (uint32_t)len);
    cleval_kernel_arg_uint(&a, (uint32_t)inner);
    cleval_kernel_arg_int(&a, op->p.softmax.log);
    size_t local = nn_local_1d(nn), global = (size_t)(outer * inner);
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

const nn_op_kind nn_kind_softmax = {"Softmax", softmax_parse, softmax_infer, softmax_prepare,
                                    softmax_launch};
const nn_op_kind nn_kind_logsoftmax = {"LogSoftmax", logsoftmax_parse, softmax_infer,
                                       softmax_prepare, softmax_launch};

cleval_status nn_launch_argmax(cleval_nn *nn, cl_mem scores, cl_mem pred, cl_mem nonfinite,
                               uint32_t n, uint32_t c)
{
    if (n == 0) return CLEVAL_OK;
    cleval_kernel_args a = cleval_kernel_args_begin(nn->argmax, NULL);
    cleval_kernel_arg_mem(&a, scores);
    cleval_kernel_arg_mem(&a, pred);
    cleval_kernel_arg_mem(&a, nonfinite);
    cleval_kernel_arg_uint(&a, n);
    cleval_kernel_arg_uint(&a, c);
    size_t local = nn_local_1d(nn), global = n;
    return nn_enqueue(nn, NULL, &a, 1, &global, &local);
}
