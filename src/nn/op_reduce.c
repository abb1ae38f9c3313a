/* Reductions (ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceL2) over any set of axes, and
 * LayerNormalization over the trailing axes. kernels/reduce.cl: one output element (or one
 * normalised row) per work-item, float accumulation with compensated sums; on the CPU family
 * a reduction of contiguous rows and LayerNormalization walk each row on float16 vectors
 * (reduce_rows, layer_norm_rows). The axes are an attribute before ReduceSum-13 and the
 * others' opset 18, an input from then on: a constant, or a host value computed from shapes
 * and read at each inference. */
#include "nn_internal.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

/* ---- reductions ---- */

/* Whether the axes are a host value: read at each inference (reduce_infer), not at load. */
static bool host_axes(cleval_nn *nn, const nn_op *op)
{
    return nn_has_in(op, 1) && nn_in(nn, op, 1)->kind == NN_VALUE_HOST;
}

/* Reads the axes from input 1, a constant or a host value (absent: none given). */
static cleval_status axes_from_input(cleval_nn *nn, nn_op *op, nn_reduce_params *p)
{
    p->n_axes = 0;
    if (!nn_has_in(op, 1)) return CLEVAL_OK;
    const int64_t *axes;
    uint64_t count;
    cleval_status status = nn_host_ints(nn, op, 1, "axes", &axes, &count);
    if (status != CLEVAL_OK) return status;
    if (count > NN_MAX_RANK)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "%llu axes are more than the rank allows",
                          (unsigned long long)count);
    p->n_axes = (uint32_t)count;
    memcpy(p->axes, axes, count * sizeof *p->axes);
    return CLEVAL_OK;
}

/* Computed axes, read at each inference; an empty list must not turn the reduction into a
 * copy (noop_with_empty_axes), which parse decides once. */
static cleval_status refresh_axes(cleval_nn *nn, nn_op *op)
{
    if (!host_axes(nn, op)) return CLEVAL_OK;
    cleval_status status = axes_from_input(nn, op, &op->p.reduce);
    if (status == CLEVAL_OK && op->p.reduce.n_axes == 0 && op->p.reduce.noop_with_empty_axes)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "computed axes that are empty with noop_with_empty_axes=1 are not "
                          "supported");
    return status;
}

static cleval_status reduce_parse_op(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node,
                                     nn_reduce_op which)
{
    static const char *const with_attr[] = {"axes", "keepdims", NULL};
    static const char *const with_input[] = {"keepdims", "noop_with_empty_axes", NULL};
    nn_reduce_params *p = &op->p.reduce;
    bool input_axes = nn->opset >= (which == NN_REDUCE_SUM ? 13 : 18);
    cleval_status status = nn_check_attrs(nn, op, node, input_axes ? with_input : with_attr);
    if (status == CLEVAL_OK) status = nn_attr_bool(nn, op, node, "keepdims", true, &p->keepdims);
    if (status == CLEVAL_OK)
        status =
            nn_attr_bool(nn, op, node, "noop_with_empty_axes", false, &p->noop_with_empty_axes);
    if (status != CLEVAL_OK) return status;
    if (!nn_has_in(op, 0)) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input data is missing");
    if (input_axes) {
        if (!host_axes(nn, op) && (status = axes_from_input(nn, op, p)) != CLEVAL_OK) return status;
    } else {
        const int64_t *axes;
        if ((status = nn_attr_ints(nn, node, "axes", &axes, &p->n_axes)) != CLEVAL_OK)
            return status;
        if (op->n_in > 1)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                              "takes one input before opset %d (axes is an attribute)",
                              which == NN_REDUCE_SUM ? 13 : 18);
        if (p->n_axes > NN_MAX_RANK)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "%u axes are more than the rank allows",
                              p->n_axes);
        if (p->n_axes) memcpy(p->axes, axes, p->n_axes * sizeof *axes);
    }
    /* With no axes and noop_with_empty_axes the data passes unchanged: a sum over one element. */
    p->op = p->n_axes == 0 && p->noop_with_empty_axes && !host_axes(nn, op) ? NN_REDUCE_SUM : which;
    return CLEVAL_OK;
}

/* Bit i set: axis i of a rank-`rank` input is reduced. */
static cleval_status reduce_mask(cleval_nn *nn, const nn_op *op, uint32_t rank, uint32_t *mask)
{
    const nn_reduce_params *p = &op->p.reduce;
    *mask = 0;
    if (p->n_axes == 0) {
        if (!p->noop_with_empty_axes) *mask = (1u << rank) - 1;
        return CLEVAL_OK;
    }
    for (uint32_t i = 0; i < p->n_axes; i++) {
        uint32_t axis;
        if (!nn_axis(p->axes[i], rank, &axis))
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "axis %lld is out of range for rank %u",
                              (long long)p->axes[i], rank);
        if (*mask & (1u << axis))
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "axis %lld is given twice",
                              (long long)p->axes[i]);
        *mask |= 1u << axis;
    }
    return CLEVAL_OK;
}

static cleval_status reduce_infer(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0);
    uint32_t mask;
    cleval_status status = refresh_axes(nn, op);
    if (status == CLEVAL_OK) status = reduce_mask(nn, op, x->shape.rank, &mask);
    if (status != CLEVAL_OK) return status;
    nn_shape out = {0, {0}};
    for (uint32_t i = 0; i < x->shape.rank; i++) {
        if (!(mask & (1u << i)))
            out.d[out.rank++] = x->shape.d[i];
        else if (op->p.reduce.keepdims)
            out.d[out.rank++] = 1;
    }
    int batch = nn_batch_axis(x);
    if (batch >= 0 && (mask & (1u << batch))) op->mixes_batch = true;
    nn_out(nn, op, 0)->shape = out;
    op->flops = (double)nn_shape_count(&x->shape);
    return CLEVAL_OK;
}

/* The input's axes grouped into runs of kept or reduced axes (size-1 axes dropped; a run is
 * contiguous in row-major order), right-aligned into the kernel's 4 + 4 slots. */
typedef struct reduce_groups {
    int32_t out_dims[4], out_strides[4], red_dims[4], red_strides[4];
    uint64_t reduced; /* elements per output */
} reduce_groups;

static void group_axes(const nn_shape *x, uint32_t mask, reduce_groups *g)
{
    int64_t dims[NN_MAX_RANK], strides[NN_MAX_RANK];
    bool red[NN_MAX_RANK];
    uint32_t n = 0;
    int64_t stride = 1;
    for (int i = (int)x->rank - 1; i >= 0; i--) {
        bool r = (mask >> i) & 1u;
        int64_t d = x->d[i];
        if (d != 1) {
            if (n > 0 && red[n - 1] == r) {
                dims[n - 1] *= d;
            } else {
                assert(n < NN_MAX_RANK); /* at most one group per axis */
                dims[n] = d;
                strides[n] = stride;
                red[n++] = r;
            }
        }
        stride *= d;
    }
    /* Groups were collected innermost first; fill each kind's slots from the right. */
    for (int s = 0; s < 4; s++) {
        g->out_dims[s] = g->red_dims[s] = 1;
        g->out_strides[s] = g->red_strides[s] = 0;
    }
    int next_out = 3, next_red = 3;
    g->reduced = 1;
    for (uint32_t k = 0; k < n; k++) {
        int *slot = red[k] ? &next_red : &next_out;
        int32_t *gd = red[k] ? g->red_dims : g->out_dims;
        int32_t *gs = red[k] ? g->red_strides : g->out_strides;
        gd[*slot] = (int32_t)dims[k];
        gs[*slot] = (int32_t)strides[k];
        (*slot)--;
        if (red[k]) g->reduced *= (uint64_t)dims[k];
    }
}

/* The CPU family's vector kernels (k[1]): reduce_rows where each output reduces a contiguous
 * row (the reduced axes trailing: output i reads [i * reduced, (i + 1) * reduced)),
 * reduce_cols where the reduced axes form one run with kept axes inside it (output i, of
 * `inner` = the inner kept extent, reads `reduced` elements at stride inner); NULL otherwise. */
static const char *vector_kernel(const reduce_groups *g)
{
    if (g->red_dims[0] != 1 || g->red_dims[1] != 1 || g->red_dims[2] != 1) return NULL;
    if (g->red_strides[3] == 1) return "reduce_rows";
    if (g->red_strides[3] > 1 && g->out_strides[3] == 1 && g->out_dims[3] == g->red_strides[3])
        return "reduce_cols";
    return NULL;
}

/* CPU family: also reduce_rows or reduce_cols (k[1]) where it fits at the shapes of now; the
 * launch checks again, with the shapes of each batch. */
static cleval_status reduce_prepare(cleval_nn *nn, nn_op *op)
{
    char options[96];
    nn_storage_options(nn, op->in[0], op->out[0], options, sizeof options);
    size_t used = strlen(options);
    snprintf(options + used, sizeof options - used, " -DREDUCE_OP=%d", op->p.reduce.op);
    const nn_value *x = nn_in(nn, op, 0);
    uint32_t mask;
    cleval_status status = reduce_mask(nn, op, x->shape.rank, &mask);
    if (status != CLEVAL_OK) return status;
    reduce_groups g;
    group_axes(&x->shape, mask, &g);
    const char *vec = nn->variant == CLEVAL_VARIANT_CPU ? vector_kernel(&g) : NULL;
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "%s", vec ? vec : "reduce");
    if ((status = nn_kernel(nn, op, "reduce", options, "reduce", &op->k[0])) != CLEVAL_OK || !vec)
        return status;
    return nn_kernel(nn, op, "reduce", options, vec, &op->k[1]);
}

static cleval_status reduce_launch(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0), *y = nn_out(nn, op, 0);
    if (y->count == 0) return CLEVAL_OK;
    uint32_t mask;
    cleval_status status = reduce_mask(nn, op, x->shape.rank, &mask);
    if (status != CLEVAL_OK) return status;
    reduce_groups g;
    group_axes(&x->shape, mask, &g);
    const char *vec = op->k[1] ? vector_kernel(&g) : NULL;
    if (vec && strcmp(vec, op->kernel_desc) == 0) { /* the kernel prepare built */
        bool cols = strcmp(vec, "reduce_cols") == 0;
        cleval_kernel_args a = cleval_kernel_args_begin(op->k[1], NULL);
        cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->in[0]));
        cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
        cleval_kernel_arg_uint(&a, (uint32_t)y->count);
        cleval_kernel_arg_uint(&a, (uint32_t)g.reduced);
        if (cols) cleval_kernel_arg_uint(&a, (uint32_t)g.out_dims[3]);
        uint64_t items = cols ? (y->count + 15) / 16 : y->count;
        size_t local = nn_local_rows(nn, items), global = (size_t)items;
        return nn_enqueue(nn, op, &a, 1, &global, &local);
    }
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->in[0]));
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_uint(&a, (uint32_t)y->count);
    cleval_kernel_arg_float(&a, (float)g.reduced);
    cleval_kernel_arg_int4(&a, g.out_dims[0], g.out_dims[1], g.out_dims[2], g.out_dims[3]);
    cleval_kernel_arg_int4(&a, g.out_strides[0], g.out_strides[1], g.out_strides[2],
                           g.out_strides[3]);
    cleval_kernel_arg_int4(&a, g.red_dims[0], g.red_dims[1], g.red_dims[2], g.red_dims[3]);
    cleval_kernel_arg_int4(&a, g.red_strides[0], g.red_strides[1], g.red_strides[2],
                           g.red_strides[3]);
    size_t local = nn_local_1d(nn), global = (size_t)y->count;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

#define REDUCE_KIND(sym, name, code)                                                               \
    static cleval_status sym##_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)       \
    {                                                                                              \
        return reduce_parse_op(nn, op, node, code);                                                \
    }                                                                                              \
    const nn_op_kind nn_kind_##sym = {name, sym##_parse, reduce_infer, reduce_prepare,             \
                                      reduce_launch};

REDUCE_KIND(reducesum, "ReduceSum", NN_REDUCE_SUM)
REDUCE_KIND(reducemean, "ReduceMean", NN_REDUCE_MEAN)
REDUCE_KIND(reducemax, "ReduceMax", NN_REDUCE_MAX)
REDUCE_KIND(reducemin, "ReduceMin", NN_REDUCE_MIN)
REDUCE_KIND(reducel2, "ReduceL2", NN_REDUCE_L2)

/* ---- LayerNormalization ---- */

static cleval_status layernorm_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"axis", "epsilon", "stash_type", NULL};
    nn_reduce_params *p = &op->p.reduce;
    int64_t axis, stash;
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK ||
        (status = nn_attr_int(nn, node, "axis", -1, &axis)) != CLEVAL_OK ||
        (status = nn_attr_float(nn, node, "epsilon", 1e-5f, &p->epsilon)) != CLEVAL_OK ||
        (status = nn_attr_int(nn, node, "stash_type", 1, &stash)) != CLEVAL_OK)
        return status;
    if (stash != 1)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "attribute stash_type=%lld is not supported (only 1, float)",
                          (long long)stash);
    if (!nn_has_in(op, 0)) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input X is missing");
    static const char *const names[] = {"X", "Scale", "B"};
    for (uint32_t i = 1; i < 3; i++) {
        if (i == 2 && !nn_has_in(op, 2)) break;
        if ((status = nn_require_const(nn, op, i, names[i])) != CLEVAL_OK) return status;
        if (!nn_in(nn, op, i)->f32)
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "%s must be a float tensor",
                              names[i]);
    }
    p->axes[0] = axis;
    p->n_axes = 1;
    return CLEVAL_OK;
}

/* Scale or bias (input i) against the normalised shape (x's axes from `axis` on): one value,
 * or the normalised shape itself (leading 1s aside). */
static cleval_status check_affine(cleval_nn *nn, const nn_op *op, uint32_t i, const nn_shape *x,
                                  uint32_t axis)
{
    const nn_value *v = nn_in(nn, op, i);
    bool ok = v->shape.rank <= x->rank - axis;
    for (uint32_t j = 0; ok && j < v->shape.rank; j++) {
        int64_t want = x->d[x->rank - v->shape.rank + j];
        ok = v->shape.d[j] == want || (v->shape.d[j] == 1 && v->count == 1);
    }
    if (ok) return CLEVAL_OK;
    char vs[160], xs[160];
    nn_shape_format(&v->shape, vs, sizeof vs);
    nn_shape_format(x, xs, sizeof xs);
    return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                      "%s of shape %s does not match the axes from %u of X %s (one value or "
                      "exactly those axes are supported)",
                      i == 1 ? "Scale" : "B", vs, axis, xs);
}

static cleval_status layernorm_axis(cleval_nn *nn, const nn_op *op, const nn_shape *x,
                                    uint32_t *axis)
{
    if (!nn_axis(op->p.reduce.axes[0], x->rank, axis))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "axis %lld is out of range for rank %u",
                          (long long)op->p.reduce.axes[0], x->rank);
    return CLEVAL_OK;
}

static cleval_status layernorm_infer(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0);
    uint32_t axis;
    cleval_status status = layernorm_axis(nn, op, &x->shape, &axis);
    if (status == CLEVAL_OK) status = check_affine(nn, op, 1, &x->shape, axis);
    if (status == CLEVAL_OK && nn_has_in(op, 2)) status = check_affine(nn, op, 2, &x->shape, axis);
    if (status != CLEVAL_OK) return status;
    if (nn_batch_axis(x) >= (int)axis) op->mixes_batch = true;
    nn_out(nn, op, 0)->shape = x->shape;
    op->flops = 8.0 * (double)nn_shape_count(&x->shape);
    return CLEVAL_OK;
}

static cleval_status layernorm_prepare(cleval_nn *nn, nn_op *op)
{
    if (!nn_has_in(op, 2)) { /* no B: one zero stands in for it */
        static const float zero = 0.0f;
        cleval_status status =
            nn_upload(nn, &zero, sizeof zero, "LayerNormalization B", &op->mem[0]);
        if (status != CLEVAL_OK) return status;
    }
    return nn_storage_kernel(nn, op, "reduce",
                             nn->variant == CLEVAL_VARIANT_CPU ? "layer_norm_rows" : "layer_norm");
}

static cleval_status layernorm_launch(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0);
    uint32_t axis;
    cleval_status status = layernorm_axis(nn, op, &x->shape, &axis);
    if (status != CLEVAL_OK) return status;
    uint64_t rows = 1, len = 1;
    for (uint32_t i = 0; i < x->shape.rank; i++)
        *(i < axis ? &rows : &len) *= (uint64_t)x->shape.d[i];
    if (rows == 0 || len == 0) return CLEVAL_OK;
    cl_mem scale, bias = op->mem[0];
    if ((status = nn_const_mem(nn, op->in[1], &scale)) != CLEVAL_OK) return status;
    if (nn_has_in(op, 2) && (status = nn_const_mem(nn, op->in[2], &bias)) != CLEVAL_OK)
        return status;
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->in[0]));
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_mem(&a, scale);
    cleval_kernel_arg_mem(&a, bias);
    cleval_kernel_arg_uint(&a, (uint32_t)rows);
    cleval_kernel_arg_uint(&a, (uint32_t)len);
    cleval_kernel_arg_int(&a, nn_in(nn, op, 1)->count > 1);
    cleval_kernel_arg_int(&a, nn_has_in(op, 2) && nn_in(nn, op, 2)->count > 1);
    cleval_kernel_arg_float(&a, op->p.reduce.epsilon);
    size_t local = nn->variant == CLEVAL_VARIANT_CPU ? nn_local_rows(nn, rows) : nn_local_1d(nn);
    size_t global = (size_t)rows;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

const nn_op_kind nn_kind_layernorm = {"LayerNormalization", layernorm_parse, layernorm_infer,
                                      layernorm_prepare, layernorm_launch};
