/* Gather with indices computed at run time (an embedding lookup: a constant [V, E] table, token
 * ids [N, T] from the graph input): kernels/gather_rows.cl. graph.c picks this kind for a
 * Gather whose indices vary; constant indices go to the ordinary Gather. An index outside
 * [-V, V) is flagged on the device and fails the run after the batch (check), naming the node,
 * the index and the sample. */
#include "nn_internal.h"

#include <inttypes.h>
#include <string.h>

enum { FLAG_MEM = 0, BAD_MEM = 1 }; /* op->mem: the out-of-range flag, the bad index and place */

/* Fails when the last run met an index out of range, and clears the flag for the next run. */
static cleval_status gather_rows_check(cleval_nn *nn, nn_op *op)
{
    int32_t flag = 0;
    cleval_status status =
        cleval_cl_check(clEnqueueReadBuffer(nn->queue, op->mem[FLAG_MEM], CL_TRUE, 0, sizeof flag,
                                            &flag, 0, NULL, NULL),
                        "clEnqueueReadBuffer(Gather index check)");
    if (status != CLEVAL_OK || !flag) return status;
    int64_t bad[2];
    int32_t zero = 0;
    status = cleval_cl_check(clEnqueueReadBuffer(nn->queue, op->mem[BAD_MEM], CL_TRUE, 0,
                                                 sizeof bad, bad, 0, NULL, NULL),
                             "clEnqueueReadBuffer(Gather index check)");
    if (status == CLEVAL_OK)
        status = cleval_cl_check(clEnqueueWriteBuffer(nn->queue, op->mem[FLAG_MEM], CL_TRUE, 0,
                                                      sizeof zero, &zero, 0, NULL, NULL),
                                 "clEnqueueWriteBuffer(Gather index check)");
    if (status != CLEVAL_OK) return status;
    const nn_value *idx = nn_in(nn, op, 1);
    /* The indices' axis 0 is the batch: the sample is the position over a sample's ids. */
    uint64_t per_sample = idx->shape.rank && idx->shape.d[0] ? idx->count / idx->shape.d[0] : 1;
    return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                      "index %" PRId64 " in sample %" PRIu64 " of the batch is outside the %" PRId64
                      " rows of '%s'",
                      bad[0], per_sample ? (uint64_t)bad[1] / per_sample : 0,
                      op->p.gather_rows.rows, nn_in(nn, op, 0)->name);
}

static cleval_status gather_rows_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"axis", NULL};
    int64_t axis;
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK ||
        (status = nn_attr_int(nn, node, "axis", 0, &axis)) != CLEVAL_OK ||
        (status = nn_require_const(nn, op, 0, "data")) != CLEVAL_OK)
        return status;
    const nn_value *data = nn_in(nn, op, 0), *idx = nn_in(nn, op, 1);
    if (!data->f32 || data->shape.rank < 1)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "with runtime indices, data '%s' must be a float table of rank 1 or "
                          "more",
                          data->name);
    uint32_t a;
    if (!nn_axis(axis, data->shape.rank, &a))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "axis %" PRId64 " is out of range for rank %u",
                          axis, data->shape.rank);
    if (a != 0)
        return nn_fail_op(
            nn, op, CLEVAL_ERR_UNSUPPORTED,
            "with runtime indices, only axis 0 (a row lookup) is supported, not %" PRId64, axis);
    if (idx->dtype != NN_INT64 && idx->dtype != NN_INT32)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "indices '%s' are %s; int64 or int32 indices are supported", idx->name,
                          nn_dtype_name(idx->dtype));
    op->p.gather_rows.rows = data->shape.d[0];
    op->p.gather_rows.row_len = 1;
    for (uint32_t d = 1; d < data->shape.rank; d++)
        op->p.gather_rows.row_len *= data->shape.d[d];
    nn_out(nn, op, 0)->dtype = NN_FLOAT;
    op->check = gather_rows_check;
    return CLEVAL_OK;
}

static cleval_status gather_rows_infer(cleval_nn *nn, nn_op *op)
{
    const nn_shape *data = &nn_in(nn, op, 0)->shape, *idx = &nn_in(nn, op, 1)->shape;
    if (idx->rank + data->rank - 1 > NN_MAX_RANK)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "the output rank %u is more than %d",
                          idx->rank + data->rank - 1, NN_MAX_RANK);
    nn_shape out = *idx;
    for (uint32_t d = 1; d < data->rank; d++)
        out.d[out.rank++] = data->d[d];
    nn_out(nn, op, 0)->shape = out;
    return CLEVAL_OK;
}

static cleval_status gather_rows_prepare(cleval_nn *nn, nn_op *op)
{
    const nn_value *idx = nn_in(nn, op, 1);
    int32_t zero = 0;
    int64_t none[2] = {0, 0};
    cleval_status status =
        cleval_device_buffer(nn->dev, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof zero, &zero,
                             "Gather index check", &op->mem[FLAG_MEM]);
    if (status == CLEVAL_OK)
        status = cleval_device_buffer(nn->dev, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                                      sizeof none, none, "Gather index check", &op->mem[BAD_MEM]);
    if (status != CLEVAL_OK) return status;
    char options[96];
    snprintf(options, sizeof options, "-DINDEX_T=%s -DY_HALF=%d", nn_dtype_cl(idx->dtype),
             nn_half(nn, op->out[0]));
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "gather_rows %s%s", nn_dtype_name(idx->dtype),
             nn_half(nn, op->out[0]) ? " fp16" : "");
    return nn_kernel(nn, op, "gather_rows", options, "gather_rows", &op->k[0]);
}

static cleval_status gather_rows_launch(cleval_nn *nn, nn_op *op)
{
    cl_mem table;
    cleval_status status = nn_const_mem(nn, op->in[0], &table);
    if (status != CLEVAL_OK) return status;
    uint64_t n = nn_out(nn, op, 0)->count;
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, table);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->in[1]));
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_int(&a, (int32_t)n);
    cleval_kernel_arg_int(&a, (int32_t)op->p.gather_rows.row_len);
    cl_long rows = op->p.gather_rows.rows;
    cleval_kernel_arg(&a, sizeof rows, &rows);
    cleval_kernel_arg_mem(&a, op->mem[FLAG_MEM]);
    cleval_kernel_arg_mem(&a, op->mem[BAD_MEM]);
    size_t local = nn_local_1d(nn), global = (size_t)n;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

const nn_op_kind nn_kind_gather_rows = {"Gather", gather_rows_parse, gather_rows_infer,
                                        gather_rows_prepare, gather_rows_launch};
