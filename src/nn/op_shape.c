/* Ops that only change a tensor's shape (Flatten, Reshape, Identity, Dropout: views of their
 * input, no kernel) and Pad (constant mode, any rank, negative pads crop). */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- views ---- */

static cleval_status view_prepare(cleval_nn *nn, nn_op *op)
{
    (void)nn;
    (void)op;
    return CLEVAL_OK;
}

static cleval_status view_launch(cleval_nn *nn, nn_op *op)
{
    (void)nn;
    (void)op;
    return CLEVAL_OK;
}

static cleval_status need_input(cleval_nn *nn, const nn_op *op)
{
    if (!nn_has_in(op, 0)) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input 0 is missing");
    return CLEVAL_OK;
}

static cleval_status flatten_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"axis", NULL};
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK ||
        (status = nn_attr_int(nn, node, "axis", 1, &op->p.shape.axis)) != CLEVAL_OK ||
        (status = need_input(nn, op)) != CLEVAL_OK)
        return status;
    op->alias_only = true;
    return CLEVAL_OK;
}

static cleval_status flatten_infer(cleval_nn *nn, nn_op *op)
{
    const nn_shape *in = &nn_in(nn, op, 0)->shape;
    int64_t axis = op->p.shape.axis;
    if (axis < 0) axis += in->rank;
    if (axis < 0 || axis > (int64_t)in->rank)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "axis %lld is out of range for rank %u",
                          (long long)op->p.shape.axis, in->rank);
    nn_shape out = {2, {1, 1}};
    for (uint32_t i = 0; i < in->rank; i++)
        out.d[(int64_t)i < axis ? 0 : 1] *= in->d[i];
    nn_out(nn, op, 0)->shape = out;
    nn_reshape_batch(nn, op, nn_in(nn, op, 0), nn_out(nn, op, 0));
    return CLEVAL_OK;
}

const nn_op_kind nn_kind_flatten = {"Flatten", flatten_parse, flatten_infer, view_prepare,
                                    view_launch};

/* The target shape, as given: a constant read once here, or a host value read at each
 * inference (a shape computed from Shape(x)). */
static cleval_status reshape_target(cleval_nn *nn, nn_op *op)
{
    const int64_t *dims;
    uint64_t count;
    cleval_status status = nn_host_ints(nn, op, 1, "shape", &dims, &count);
    if (status != CLEVAL_OK) return status;
    if (nn_in(nn, op, 1)->shape.rank != 1)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "shape '%s' must be a 1-D int64 tensor",
                          nn_in(nn, op, 1)->name);
    if (count > NN_MAX_RANK)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "a target rank of %llu is more than %d",
                          (unsigned long long)count, NN_MAX_RANK);
    op->p.shape.target.rank = (uint32_t)count;
    memcpy(op->p.shape.target.d, dims, count * sizeof(int64_t));
    return CLEVAL_OK;
}

static cleval_status reshape_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"allowzero", NULL};
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK ||
        (status = nn_attr_bool(nn, op, node, "allowzero", false, &op->p.shape.allowzero)) !=
            CLEVAL_OK ||
        (status = need_input(nn, op)) != CLEVAL_OK)
        return status;
    op->alias_only = true;
    op->p.shape.target_from_host = nn_has_in(op, 1) && nn_in(nn, op, 1)->kind == NN_VALUE_HOST;
    if (op->p.shape.target_from_host) return CLEVAL_OK;
    if ((status = nn_require_const(nn, op, 1, "shape")) != CLEVAL_OK) return status;
    if (!nn_in(nn, op, 1)->i64)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "shape '%s' must be a 1-D int64 tensor",
                          nn_in(nn, op, 1)->name);
    return reshape_target(nn, op);
}

static cleval_status reshape_infer(cleval_nn *nn, nn_op *op)
{
    if (op->p.shape.target_from_host) {
        cleval_status status = reshape_target(nn, op);
        if (status != CLEVAL_OK) return status;
    }
    const nn_shape *in = &nn_in(nn, op, 0)->shape;
    const nn_shape *target = &op->p.shape.target;
    nn_shape out = *target;
    int infer_at = -1;
    uint64_t known = 1;
    for (uint32_t i = 0; i < target->rank; i++) {
        int64_t d = target->d[i];
        if (d == 0 && !op->p.shape.allowzero) {
            if (i >= in->rank)
                return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                                  "shape entry %u is 0 (copy) but the input has rank %u", i,
                                  in->rank);
            out.d[i] = in->d[i];
        } else if (d == -1) {
            if (infer_at >= 0)
                return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "shape has more than one -1");
            infer_at = (int)i;
            continue;
        } else if (d < 0) {
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "shape entry %lld is invalid",
                              (long long)d);
        }
        if (out.d[i] > NN_MAX_ELEMENTS) goto mismatch;
        known *= (uint64_t)out.d[i];
        if (known > (uint64_t)NN_MAX_ELEMENTS) goto mismatch;
    }
    uint64_t total = nn_shape_count(in);
    if (infer_at >= 0) {
        if (known == 0 || total % known != 0) goto mismatch;
        out.d[infer_at] = (int64_t)(total / known);
    } else if (known != total) {
        goto mismatch;
    }
    nn_out(nn, op, 0)->shape = out;
    nn_reshape_batch(nn, op, nn_in(nn, op, 0), nn_out(nn, op, 0));
    return CLEVAL_OK;
mismatch:;
    char from[160], to[160];
    nn_shape_format(in, from, sizeof from);
    nn_shape_format(target, to, sizeof to);
    return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "cannot reshape %s to %s", from, to);
}

const nn_op_kind nn_kind_reshape = {"Reshape", reshape_parse, reshape_infer, view_prepare,
                                    view_launch};

static cleval_status identity_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, NULL)) != CLEVAL_OK ||
        (status = need_input(nn, op)) != CLEVAL_OK)
        return status;
    op->alias_only = true;
    return CLEVAL_OK;
}

static cleval_status identity_infer(cleval_nn *nn, nn_op *op)
{
    nn_out(nn, op, 0)->shape = nn_in(nn, op, 0)->shape;
    return CLEVAL_OK;
}

const nn_op_kind nn_kind_identity = {"Identity", identity_parse, identity_infer, view_prepare,
                                     view_launch};

/* Dropout at inference is the identity; its mask output and training mode are refused. */
static cleval_status dropout_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"ratio", "is_test", "seed", NULL};
    bool is_test;
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK ||
        (status = nn_attr_bool(nn, op, node, "is_test", true, &is_test)) != CLEVAL_OK ||
        (status = need_input(nn, op)) != CLEVAL_OK)
        return status;
    /* Before opset 7, is_test = 0 meant training (random dropping). */
    if (!is_test && nn->opset < 7)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "attribute is_test=0 (training mode) is not supported");
    if (nn_has_in(op, 2)) {
        const nn_value *mode = nn_in(nn, op, 2);
        bool training = mode->kind != NN_VALUE_CONST ||
                        (mode->i64 && mode->count && mode->i64[0]) ||
                        (mode->f32 && mode->count && mode->f32[0] != 0.0f);
        if (training)
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                              "input training_mode must be a constant false");
    }
    if (op->n_out > 1 && op->out[1] >= 0) {
        const nn_value *mask = nn_out(nn, op, 1);
        if (mask->uses || mask->is_output)
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "output mask ('%s') is not supported",
                              mask->name);
    }
    op->alias_only = true;
    return CLEVAL_OK;
}

const nn_op_kind nn_kind_dropout = {"Dropout", dropout_parse, identity_infer, view_prepare,
                                    view_launch};

/* ---- Pad ---- */

static bool host_pads(cleval_nn *nn, const nn_op *op)
{
    return nn_has_in(op, 1) && nn_in(nn, op, 1)->kind == NN_VALUE_HOST;
}

/* Reads the pads from input 1 (opset 11 on), a constant or a host value. */
static cleval_status pads_from_input(cleval_nn *nn, nn_op *op)
{
    if (!nn_has_in(op, 1)) return nn_require_const(nn, op, 1, "pads");
    const nn_value *pads = nn_in(nn, op, 1);
    const int64_t *values;
    uint64_t count;
    cleval_status status = nn_host_ints(nn, op, 1, "pads", &values, &count);
    if (status != CLEVAL_OK) return status;
    if (pads->shape.rank != 1)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "pads '%s' must be a 1-D int64 tensor",
                          pads->name);
    if (count > 2 * NN_MAX_RANK)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "%llu pads are too many",
                          (unsigned long long)count);
    memcpy(op->p.shape.pads, values, count * sizeof *values);
    op->p.shape.n_pads = (uint32_t)count;
    return CLEVAL_OK;
}

static cleval_status pad_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"mode", "pads", "value", NULL};
    nn_shape_params *p = &op->p.shape;
    const char *mode = "constant";
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK ||
        (status = nn_attr_string(nn, node, "mode", "constant", &mode)) != CLEVAL_OK ||
        (status = need_input(nn, op)) != CLEVAL_OK)
        return status;
    if (strcmp(mode, "constant") != 0)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "attribute mode=%s is not supported",
                          mode);
    if (nn->opset < 11) {
        const int64_t *pads;
        uint32_t count;
        if ((status = nn_attr_ints(nn, node, "pads", &pads, &count)) != CLEVAL_OK ||
            (status = nn_attr_float(nn, node, "value", 0.0f, &p->value)) != CLEVAL_OK)
            return status;
        if (!pads) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "attribute pads is missing");
        if (count > 2 * NN_MAX_RANK)
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "%u pads are too many", count);
        memcpy(p->pads, pads, count * sizeof *pads);
        p->n_pads = count;
        return CLEVAL_OK;
    }
    for (uint32_t i = 0; i < node->n_attrs; i++)
        if (strcmp(node->attrs[i].name, "mode") != 0)
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                              "attribute %s is not supported from opset 11 on (pads and value "
                              "are inputs)",
                              node->attrs[i].name);
    if (nn_has_in(op, 3))
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "input axes is not supported");
    /* Pads computed from shapes are read at each inference (pad_infer). */
    if (!host_pads(nn, op) && (status = pads_from_input(nn, op)) != CLEVAL_OK) return status;
    p->value = 0.0f;
    if (nn_has_in(op, 2)) {
        if ((status = nn_require_const(nn, op, 2, "constant_value")) != CLEVAL_OK) return status;
        const nn_value *v = nn_in(nn, op, 2);
        if (v->count != 1)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "constant_value must be one value");
        p->value = v->f32 ? v->f32[0] : (float)v->i64[0];
    }
    return CLEVAL_OK;
}

static cleval_status pad_infer(cleval_nn *nn, nn_op *op)
{
    const nn_shape_params *p = &op->p.shape;
    const nn_value *x = nn_in(nn, op, 0);
    uint32_t rank = x->shape.rank;
    cleval_status status = host_pads(nn, op) ? pads_from_input(nn, op) : CLEVAL_OK;
    if (status != CLEVAL_OK) return status;
    if (p->n_pads != 2 * rank)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "%u pads for a rank-%u input (need %u)",
                          p->n_pads, rank, 2 * rank);
    nn_shape out = x->shape;
    for (uint32_t i = 0; i < rank; i++) {
        int64_t b = p->pads[i], e = p->pads[rank + i];
        if (b > NN_MAX_ELEMENTS || e > NN_MAX_ELEMENTS || b < -NN_MAX_ELEMENTS ||
            e < -NN_MAX_ELEMENTS)
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "pad %lld/%lld is out of range",
                              (long long)b, (long long)e);
        out.d[i] = x->shape.d[i] + b + e;
        if (out.d[i] < 0)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "pads make axis %u negative", i);
    }
    int batch = nn_batch_axis(x);
    if (batch >= 0 && (p->pads[batch] != 0 || p->pads[rank + batch] != 0)) op->mixes_batch = true;
    nn_out(nn, op, 0)->shape = out;
    return CLEVAL_OK;
}

static cleval_status pad_prepare(cleval_nn *nn, nn_op *op)
{
    return nn_storage_kernel(nn, op, "elementwise", "pad_nd");
}

void nn_arg_pad_dims(cleval_kernel_args *a, const nn_shape *in, const nn_shape *out,
                     const int64_t *begin)
{
    int32_t out_dims[8] = {1, 1, 1, 1, 1, 1, 1, 1}, in_dims[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    int32_t begins[8] = {0};
    uint32_t rank = in->rank;
    /* Right-align into 8 dims so the kernel's loop bound is fixed. */
    for (uint32_t i = 0; i < rank; i++) {
        out_dims[8 - rank + i] = (int32_t)out->d[i];
        in_dims[8 - rank + i] = (int32_t)in->d[i];
        begins[8 - rank + i] = (int32_t)begin[i];
    }
    cleval_kernel_arg_int8(a, out_dims);
    cleval_kernel_arg_int8(a, in_dims);
    cleval_kernel_arg_int8(a, begins);
}

/* Enqueues the general rank-8 pad kernel (also used by Conv for its zero-padded copy). */
cleval_status nn_launch_pad(cleval_nn *nn, nn_op *op, cl_kernel k, cl_mem x, cl_mem y,
                            const nn_shape *in, const nn_shape *out, const int64_t *begin,
                            float value)
{
    uint64_t n = nn_shape_count(out);
    if (n == 0) return CLEVAL_OK;
    cleval_kernel_args a = cleval_kernel_args_begin(k, NULL);
    cleval_kernel_arg_mem(&a, x);
    cleval_kernel_arg_mem(&a, y);
    cleval_kernel_arg_uint(&a, (uint32_t)n);
    nn_arg_pad_dims(&a, in, out, begin);
    cleval_kernel_arg_float(&a, value);
    size_t local = nn_local_1d(nn), global = (size_t)n;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

static cleval_status pad_launch(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0), *y = nn_out(nn, op, 0);
    return nn_launch_pad(nn, op, op->k[0], nn_value_mem(nn, op->in[0]),
                         nn_value_mem(nn, op->out[0]), &x->shape, &y->shape, op->p.shape.pads,
                         op->p.shape.value);
}

const nn_op_kind nn_kind_pad = {"Pad", pad_parse, pad_infer, pad_prepare, pad_launch};
