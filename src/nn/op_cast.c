/* Element types of values, and the Cast operator on the device (kernels/cast.cl). Float values
 * are what every other kernel computes with; integer values (token ids, a uint8 image before
 * its Cast) are kept in their own type, and only views, Cast and Gather's lookup read them. */
#include "nn_internal.h"

#include <string.h>

bool nn_dtype_from_onnx(int32_t onnx, nn_dtype *out)
{
    switch (onnx) {
    case CLEVAL_ONNX_FLOAT:
    case CLEVAL_ONNX_FLOAT16: *out = NN_FLOAT; return true;
    case CLEVAL_ONNX_INT64: *out = NN_INT64; return true;
    case CLEVAL_ONNX_INT32: *out = NN_INT32; return true;
    case CLEVAL_ONNX_INT8: *out = NN_INT8; return true;
    case CLEVAL_ONNX_UINT8: *out = NN_UINT8; return true;
    case CLEVAL_ONNX_BOOL: *out = NN_BOOL; return true;
    }
    return false;
}

const char *nn_dtype_name(nn_dtype t)
{
    static const char *const names[] = {"float", "int64", "int32", "int8", "uint8", "bool"};
    return names[t];
}

size_t nn_dtype_bytes(nn_dtype t)
{
    static const size_t bytes[] = {4, 8, 4, 1, 1, 1};
    return bytes[t];
}

const char *nn_dtype_cl(nn_dtype t)
{
    static const char *const types[] = {"float", "long", "int", "char", "uchar", "uchar"};
    return types[t];
}

/* The ops that move elements without computing on them (layout.cl): they copy integer
 * tensors as they are (a uint8 image permuted to NCHW before its Cast). */
static bool moves_data(const nn_op_kind *kind)
{
    return kind == &nn_kind_transpose || kind == &nn_kind_slice || kind == &nn_kind_concat ||
           kind == &nn_kind_split || kind == &nn_kind_gather;
}

/* A data-movement op: its data inputs (every input of a Concat, input 0 of the others) share
 * one element type, which its outputs take. */
static cleval_status settle_moved(cleval_nn *nn, nn_op *op)
{
    nn_dtype t = nn_in(nn, op, 0)->dtype;
    uint32_t data_inputs = op->kind == &nn_kind_concat ? op->n_in : 1;
    for (uint32_t i = 1; i < data_inputs; i++) {
        if (!nn_has_in(op, i)) continue;
        const nn_value *v = nn_in(nn, op, i);
        bool integer_constant = v->kind == NN_VALUE_CONST && t != NN_FLOAT;
        if (v->dtype != t || integer_constant)
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                              "input '%s' is %s%s while input 0 is %s; the inputs must be "
                              "runtime tensors of one element type",
                              v->name, v->kind == NN_VALUE_CONST ? "a constant " : "",
                              nn_dtype_name(v->dtype), nn_dtype_name(t));
    }
    for (uint32_t o = 0; o < op->n_out; o++)
        if (op->out[o] >= 0) nn_out(nn, op, o)->dtype = t;
    return CLEVAL_OK;
}

cleval_status nn_settle_dtypes(cleval_nn *nn, nn_op *op)
{
    if (op->kind == &nn_kind_cast || op->kind == &nn_kind_gather_rows) return CLEVAL_OK;
    if (op->alias_only) { /* a view: same elements, same type */
        nn_out(nn, op, 0)->dtype = nn_in(nn, op, 0)->dtype;
        return CLEVAL_OK;
    }
    if (moves_data(op->kind)) return settle_moved(nn, op);
    for (uint32_t i = 0; i < op->n_in; i++) {
        if (!nn_has_in(op, i)) continue;
        const nn_value *v = nn_in(nn, op, i);
        if (v->varying && v->dtype != NN_FLOAT)
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                              "input '%s' is %s; this operator runs on float tensors only "
                              "(a Cast to float before it would do)",
                              v->name, nn_dtype_name(v->dtype));
    }
    return CLEVAL_OK;
}

/* ---- Cast ---- */

static cleval_status cast_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    /* saturate (opset 19) concerns float8 targets only, which are refused below. */
    static const char *const known[] = {"to", "saturate", NULL};
    int64_t to;
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK ||
        (status = nn_attr_int(nn, node, "to", 0, &to)) != CLEVAL_OK)
        return status;
    if (!nn_has_in(op, 0)) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input 0 is missing");
    nn_dtype dtype;
    if (to == CLEVAL_ONNX_UNDEFINED)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "attribute to is missing");
    if (to < INT32_MIN || to > INT32_MAX || !nn_dtype_from_onnx((int32_t)to, &dtype))
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "a Cast to %s is not supported (float, float16, int64, int32, int8, "
                          "uint8 and bool are)",
                          cleval_onnx_dtype_name((int32_t)to));
    op->p.cast.to = dtype;
    op->p.cast.to_half = to == CLEVAL_ONNX_FLOAT16;
    nn_out(nn, op, 0)->dtype = dtype;
    return CLEVAL_OK;
}

static cleval_status cast_infer(cleval_nn *nn, nn_op *op)
{
    nn_out(nn, op, 0)->shape = nn_in(nn, op, 0)->shape;
    return CLEVAL_OK;
}

/* The device copy of input 0 when it is a constant: floats through nn_const_mem, integers
 * (held as int64 on the host) uploaded here as long into op->mem[0]. */
static cleval_status cast_constant_input(cleval_nn *nn, nn_op *op, cl_mem *out)
{
    nn_value *x = nn_in(nn, op, 0);
    if (x->f32) return nn_const_mem(nn, op->in[0], out);
    if (!op->mem[0]) {
        cleval_status status =
            nn_upload(nn, x->i64, (size_t)(x->count ? x->count : 1) * 8, "Cast input", &op->mem[0]);
        if (status != CLEVAL_OK) return status;
    }
    *out = op->mem[0];
    return CLEVAL_OK;
}

static cleval_status cast_prepare(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0);
    /* A constant's type is where its host values are (cast_constant_input uploads them). */
    nn_dtype from = x->kind != NN_VALUE_CONST ? x->dtype : x->i64 ? NN_INT64 : NN_FLOAT;
    nn_dtype to = op->p.cast.to;
    if (x->kind == NN_VALUE_CONST) {
        cl_mem unused;
        cleval_status status = cast_constant_input(nn, op, &unused);
        if (status != CLEVAL_OK) return status;
    }
    int conv = to == NN_BOOL ? 2 : from == NN_FLOAT && to != NN_FLOAT ? 1 : 0;
    char options[256];
    snprintf(options, sizeof options,
             "-DSRC_T=%s -DSRC_FLOAT=%d -DDST_T=%s -DDST_FLOAT=%d -DCONV=%d -DROUND_HALF=%d "
             "-DX_HALF=%d -DY_HALF=%d",
             nn_dtype_cl(from), from == NN_FLOAT, nn_dtype_cl(to), to == NN_FLOAT, conv,
             op->p.cast.to_half ? 1 : 0, nn_half(nn, op->in[0]), nn_half(nn, op->out[0]));
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "cast %s->%s%s", nn_dtype_name(from),
             op->p.cast.to_half ? "float16" : nn_dtype_name(to),
             nn_half(nn, op->out[0]) || nn_half(nn, op->in[0]) ? " fp16" : "");
    return nn_kernel(nn, op, "cast", options, "cast", &op->k[0]);
}

static cleval_status cast_launch(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0);
    cl_mem src;
    if (x->kind == NN_VALUE_CONST) {
        cleval_status status = cast_constant_input(nn, op, &src);
        if (status != CLEVAL_OK) return status;
    } else {
        src = nn_value_mem(nn, op->in[0]);
    }
    uint64_t n = nn_out(nn, op, 0)->count;
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, src);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_int(&a, (int32_t)n);
    size_t local = nn_local_1d(nn), global = (size_t)n;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

const nn_op_kind nn_kind_cast = {"Cast", cast_parse, cast_infer, cast_prepare, cast_launch};
