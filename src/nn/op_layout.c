/* Data movement on the device (kernels/layout.cl): Concat (any number of inputs), Split (any
 * number of outputs), Slice, Transpose and Gather with constant indices run one strided-copy
 * or gather kernel; Squeeze and Unsqueeze are views of their input. Ops whose inputs are all
 * constants never get here: they are evaluated on the host at load. The GPU family copies one
 * element per work-item; the CPU family gives each work-item a long stretch of the output
 * (copy_runs, copy_tiles for transposes that move the innermost axis, gather_runs). */
#include "nn_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared ---- */

bool nn_kind_variadic(const nn_op_kind *kind)
{
    return kind == &nn_kind_concat || kind == &nn_kind_split;
}

/* A strided copy: item c (a multi-index over d) copies x[x_off + sum c * xs] to
 * y[y_off + sum c * ys]. */
typedef struct copy_geometry {
    uint32_t rank;
    int64_t d[NN_MAX_RANK], xs[NN_MAX_RANK], ys[NN_MAX_RANK];
    int64_t x_off, y_off;
} copy_geometry;

static void row_major_strides(const nn_shape *s, int64_t *strides)
{
    int64_t stride = 1;
    for (uint32_t i = s->rank; i-- > 0;) {
        strides[i] = stride;
        stride *= s->d[i];
    }
}

/* Drops axes of extent 1 and merges neighbours that are contiguous in both x and y, so the
 * kernel walks as few axes as possible (a Concat input is a 2-D block copy). */
static void collapse(copy_geometry *g)
{
    uint32_t r = 0;
    for (uint32_t i = 0; i < g->rank; i++) {
        if (g->d[i] == 1) continue;
        if (r > 0 && g->xs[r - 1] == g->xs[i] * g->d[i] && g->ys[r - 1] == g->ys[i] * g->d[i]) {
            g->d[r - 1] *= g->d[i];
            g->xs[r - 1] = g->xs[i];
            g->ys[r - 1] = g->ys[i];
            continue;
        }
        g->d[r] = g->d[i];
        g->xs[r] = g->xs[i];
        g->ys[r] = g->ys[i];
        r++;
    }
    g->rank = r;
}

/* Variadic ops may copy between every storage combination: one kernel each (k[0..3]); the
 * others copy input 0 to output 0 only (k[0]), which leaves room for a second kernel. */
static int copy_kernel_slot(const cleval_nn *nn, const nn_op *op, int x, int y)
{
    return nn_kind_variadic(op->kind) ? 2 * nn_half(nn, x) + nn_half(nn, y) : 0;
}

/* The strided copy of each family: one element per work-item (GPU), or runs of the innermost
 * axis per work-item (CPU). */
static const char *copy_kernel_name(const cleval_nn *nn)
{
    return nn->variant == CLEVAL_VARIANT_CPU ? "copy_runs" : "strided_copy";
}

/* Builds the strided copy for value x's and value y's storage, once per combination. */
static cleval_status copy_kernel(cleval_nn *nn, nn_op *op, int x, int y)
{
    cl_kernel *k = &op->k[copy_kernel_slot(nn, op, x, y)];
    if (*k) return CLEVAL_OK;
    char options[64];
    nn_storage_options(nn, x, y, options, sizeof options);
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "%s", copy_kernel_name(nn));
    return nn_kernel(nn, op, "layout", options, copy_kernel_name(nn), k);
}

/* CPU family: elements (or, for gather_runs, about that many elements' worth of rows) per
 * work-item. Each item is a work-group of its own and decodes its start once, so it should be
 * long (at least 4096 elements, 16 KiB of floats); about 64 items keep every core of a CPU busy
 * with room to balance. */
static uint32_t cpu_share(uint64_t n)
{
    uint64_t per = (n + 63) / 64;
    per = per < 4096 ? 4096 : (per + 15) / 16 * 16;
    return (uint32_t)(per < n ? per : n);
}

/* The global size for `items` work-items of one each. */
static cleval_status launch_items(cleval_nn *nn, nn_op *op, cleval_kernel_args *a, uint64_t items)
{
    size_t local = 1, global = (size_t)items;
    return nn_enqueue(nn, op, a, 1, &global, &local);
}

/* The device buffer of value v: a constant's upload, or its planned buffer. */
static cl_mem data_mem(cleval_nn *nn, int v)
{
    return nn->values[v].kind == NN_VALUE_CONST ? nn->values[v].mem : nn_value_mem(nn, v);
}

/* Constants read by a kernel must be float (int64 ones are evaluated on the host). */
static cleval_status need_float_data(cleval_nn *nn, const nn_op *op, int v)
{
    const nn_value *value = &nn->values[v];
    if (value->kind == NN_VALUE_CONST && !value->f32)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "constant '%s' is not float; integer tensors are not supported on "
                          "the device",
                          value->name);
    return CLEVAL_OK;
}

/* The geometry as the kernels take it, right-aligned into 8 axes: sets a's arguments from
 * `first` on (x and y are set; `count` and `per` come between them and `first`). */
static void geometry_args(cleval_kernel_args *a, const copy_geometry *g)
{
    int32_t dims[8] = {1, 1, 1, 1, 1, 1, 1, 1}, xs[8] = {0}, ys[8] = {0};
    for (uint32_t i = 0; i < g->rank; i++) {
        dims[8 - g->rank + i] = (int32_t)g->d[i];
        xs[8 - g->rank + i] = (int32_t)g->xs[i];
        ys[8 - g->rank + i] = (int32_t)g->ys[i];
    }
    cleval_kernel_arg_int(a, (int32_t)(8 - g->rank));
    cleval_kernel_arg_int8(a, dims);
    cleval_kernel_arg_int8(a, xs);
    cleval_kernel_arg_int8(a, ys);
    cleval_kernel_arg_int(a, (int32_t)g->x_off);
    cleval_kernel_arg_int(a, (int32_t)g->y_off);
}

/* Runs the strided copy of a collapsed geometry (strided_copy or copy_runs). */
static cleval_status launch_copy(cleval_nn *nn, nn_op *op, int x, int y, const copy_geometry *g)
{
    uint64_t n = 1;
    for (uint32_t i = 0; i < g->rank; i++)
        n *= (uint64_t)g->d[i];
    if (n == 0) return CLEVAL_OK;
    bool cpu = nn->variant == CLEVAL_VARIANT_CPU;
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[copy_kernel_slot(nn, op, x, y)], NULL);
    cleval_kernel_arg_mem(&a, data_mem(nn, x));
    cleval_kernel_arg_mem(&a, data_mem(nn, y));
    cleval_kernel_arg_uint(&a, (uint32_t)n);
    uint32_t per = cpu ? cpu_share(n) : 0;
    if (cpu) cleval_kernel_arg_uint(&a, per);
    geometry_args(&a, g);
    if (cpu) return launch_items(nn, op, &a, (n + per - 1) / per);
    size_t local = nn_local_1d(nn), global = (size_t)n;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

/* A copy of value x, whole, into the block of y at `offset` along `axis`, or (split) the block
 * of x at `offset` into y: both tensors are [outer, extent, inner] around the axis. */
static cleval_status copy_block(cleval_nn *nn, nn_op *op, int x, int y, uint32_t axis,
                                int64_t offset, bool split)
{
    const nn_shape *part = &nn->values[split ? y : x].shape;
    const nn_shape *whole = &nn->values[split ? x : y].shape;
    copy_geometry g = {.rank = part->rank};
    memcpy(g.d, part->d, part->rank * sizeof *part->d);
    int64_t part_strides[NN_MAX_RANK], whole_strides[NN_MAX_RANK];
    row_major_strides(part, part_strides);
    row_major_strides(whole, whole_strides);
    memcpy(split ? g.ys : g.xs, part_strides, part->rank * sizeof *part_strides);
    memcpy(split ? g.xs : g.ys, whole_strides, whole->rank * sizeof *whole_strides);
    *(split ? &g.x_off : &g.y_off) = offset * whole_strides[axis];
    collapse(&g);
    return launch_copy(nn, op, x, y, &g);
}

/* Reads a 1-D int64 input (axes, starts, ...), a constant or a host value (during infer),
 * into out (at most `max` entries). */
static cleval_status const_ints(cleval_nn *nn, const nn_op *op, uint32_t i, const char *what,
                                int64_t *out, uint32_t max, uint32_t *count)
{
    const int64_t *values;
    uint64_t n;
    cleval_status status = nn_host_ints(nn, op, i, what, &values, &n);
    if (status != CLEVAL_OK) return status;
    if (n > max)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "%llu %s are more than supported (%u)",
                          (unsigned long long)n, what, max);
    memcpy(out, values, n * sizeof *out);
    *count = (uint32_t)n;
    return CLEVAL_OK;
}

/* Whether any of inputs from..n_in is a host value: such inputs are read at each inference,
 * once their values are known, rather than at load. */
static bool host_inputs(cleval_nn *nn, const nn_op *op, uint32_t from)
{
    for (uint32_t i = from; i < op->n_in; i++)
        if (nn_has_in(op, i) && nn_in(nn, op, i)->kind == NN_VALUE_HOST) return true;
    return false;
}

/* Reads an INTS attribute into out (at most `max` entries); *count 0 when absent. */
static cleval_status attr_list(cleval_nn *nn, const nn_op *op, const cleval_onnx_node *node,
                               const char *name, int64_t *out, uint32_t max, uint32_t *count)
{
    const int64_t *values = NULL;
    uint32_t n = 0;
    cleval_status status = nn_attr_ints(nn, node, name, &values, &n);
    if (status != CLEVAL_OK) return status;
    if (n > max)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "attribute %s has %u values, more than %u", name, n, max);
    if (n) memcpy(out, values, n * sizeof *out);
    *count = values ? n : 0;
    return CLEVAL_OK;
}

static cleval_status need_data(cleval_nn *nn, const nn_op *op)
{
    if (!nn_has_in(op, 0)) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input 0 is missing");
    return CLEVAL_OK;
}

static cleval_status check_axis(cleval_nn *nn, const nn_op *op, int64_t axis, uint32_t rank,
                                uint32_t *out)
{
    if (!nn_axis(axis, rank, out))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "axis %lld is out of range for rank %u",
                          (long long)axis, rank);
    return CLEVAL_OK;
}

/* Samples mix when the op picks, splits or joins along its input's batch axis. */
static void refuse_batch_axis(const nn_value *x, uint32_t axis, nn_op *op)
{
    if (nn_batch_axis(x) == (int)axis) op->mixes_batch = true;
}

static cleval_status copy_prepare(cleval_nn *nn, nn_op *op)
{
    cleval_status status = CLEVAL_OK;
    for (uint32_t i = 0; i < op->n_in && status == CLEVAL_OK; i++)
        if (nn_has_in(op, i) && (i == 0 || op->kind == &nn_kind_concat)) {
            status = need_float_data(nn, op, op->in[i]);
            for (uint32_t o = 0; o < op->n_out && status == CLEVAL_OK; o++)
                if (op->out[o] >= 0) status = copy_kernel(nn, op, op->in[i], op->out[o]);
        }
    return status;
}

/* ---- Concat ---- */

static cleval_status concat_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"axis", NULL};
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK ||
        (status = nn_attr_int(nn, node, "axis", INT64_MIN, &op->p.layout.axis)) != CLEVAL_OK)
        return status;
    if (op->p.layout.axis == INT64_MIN)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "attribute axis is missing");
    if (op->n_in == 0) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "no inputs");
    for (uint32_t i = 0; i < op->n_in; i++)
        if (!nn_has_in(op, i))
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input %u is missing", i);
    return CLEVAL_OK;
}

static cleval_status concat_infer(cleval_nn *nn, nn_op *op)
{
    const nn_value *first = nn_in(nn, op, 0);
    nn_shape out = first->shape;
    uint32_t axis;
    cleval_status status = check_axis(nn, op, op->p.layout.axis, out.rank, &axis);
    if (status != CLEVAL_OK) return status;
    out.d[axis] = 0;
    int batch = -1;
    for (uint32_t i = 0; i < op->n_in; i++) {
        const nn_value *x = nn_in(nn, op, i);
        bool same = x->shape.rank == out.rank;
        for (uint32_t d = 0; same && d < out.rank; d++)
            same = d == axis || x->shape.d[d] == out.d[d];
        if (!same) {
            char a[160], b[160];
            nn_shape_format(&first->shape, a, sizeof a);
            nn_shape_format(&x->shape, b, sizeof b);
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                              "input %u has shape %s, which does not match %s but on axis %u", i, b,
                              a, axis);
        }
        out.d[axis] += x->shape.d[axis];
        if (out.d[axis] > NN_MAX_ELEMENTS)
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "the output is too large");
        /* Varying inputs must agree on the batch axis, and not be joined along it. */
        int b = nn_batch_axis(x);
        if (b >= 0 && ((batch >= 0 && b != batch) || b == (int)axis)) op->mixes_batch = true;
        if (b >= 0) batch = b;
    }
    nn_out(nn, op, 0)->shape = out;
    return CLEVAL_OK;
}

static cleval_status concat_launch(cleval_nn *nn, nn_op *op)
{
    uint32_t axis;
    nn_axis(op->p.layout.axis, nn_out(nn, op, 0)->shape.rank, &axis);
    int64_t offset = 0;
    for (uint32_t i = 0; i < op->n_in; i++) {
        cleval_status status = copy_block(nn, op, op->in[i], op->out[0], axis, offset, false);
        if (status != CLEVAL_OK) return status;
        offset += nn_in(nn, op, i)->shape.d[axis];
    }
    return CLEVAL_OK;
}

const nn_op_kind nn_kind_concat = {"Concat", concat_parse, concat_infer, copy_prepare,
                                   concat_launch};

/* ---- Split ---- */

/* The attribute form of `split` (before opset 13) becomes the input form: a constant. */
static cleval_status split_sizes_input(cleval_nn *nn, nn_op *op, const int64_t *sizes,
                                       uint32_t count)
{
    char name[256];
    snprintf(name, sizeof name, "%s/split", op->name);
    nn_shape shape = {1, {count}};
    int v = nn_add_const(nn, name, &shape, NULL);
    if (v < 0) return CLEVAL_ERR_NOMEM;
    if (!(nn->values[v].i64 = malloc((count ? count : 1) * sizeof *sizes)))
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the graph");
    memcpy(nn->values[v].i64, sizes, count * sizeof *sizes);
    nn->values[v].uses++;
    op->in[1] = v;
    op->n_in = 2;
    return CLEVAL_OK;
}

static cleval_status split_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"axis", "split", "num_outputs", NULL};
    nn_layout_params *p = &op->p.layout;
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK ||
        (status = nn_attr_int(nn, node, "axis", 0, &p->axis)) != CLEVAL_OK ||
        (status = nn_attr_int(nn, node, "num_outputs", 0, &p->num_outputs)) != CLEVAL_OK ||
        (status = need_data(nn, op)) != CLEVAL_OK)
        return status;
    if (p->num_outputs < 0 || (p->num_outputs && p->num_outputs != op->n_out))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "num_outputs=%lld for %u outputs",
                          (long long)p->num_outputs, op->n_out);
    const int64_t *sizes = NULL;
    uint32_t count = 0;
    if ((status = nn_attr_ints(nn, node, "split", &sizes, &count)) != CLEVAL_OK) return status;
    if (sizes && nn_has_in(op, 1))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "split is given as attribute and input");
    if (sizes) return split_sizes_input(nn, op, sizes, count);
    if (nn_has_in(op, 1) && !host_inputs(nn, op, 1)) return nn_require_const(nn, op, 1, "split");
    return CLEVAL_OK;
}

/* The extent of output o along the axis: the `split` sizes, or equal parts (the last one
 * smaller when num_outputs does not divide the axis). */
static cleval_status split_sizes(cleval_nn *nn, const nn_op *op, int64_t extent, int64_t *sizes)
{
    if (nn_has_in(op, 1)) {
        const nn_value *s = nn_in(nn, op, 1);
        if (!s->i64 || s->count != op->n_out)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "split '%s' needs %u integer sizes",
                              s->name, op->n_out);
        int64_t sum = 0;
        for (uint32_t o = 0; o < op->n_out; o++) {
            if (s->i64[o] < 0 || s->i64[o] > NN_MAX_ELEMENTS)
                return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "split size %lld is invalid",
                                  (long long)s->i64[o]);
            sizes[o] = s->i64[o];
            sum += sizes[o];
        }
        if (sum != extent)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "split sizes add up to %lld, not %lld",
                              (long long)sum, (long long)extent);
        return CLEVAL_OK;
    }
    int64_t parts = op->n_out, chunk = (extent + parts - 1) / parts;
    if (!op->p.layout.num_outputs && extent % parts != 0)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                          "axis of %lld cannot be split in %u equal parts", (long long)extent,
                          op->n_out);
    for (uint32_t o = 0; o < op->n_out; o++) {
        int64_t left = extent - chunk * o;
        sizes[o] = left < 0 ? 0 : left < chunk ? left : chunk;
    }
    return CLEVAL_OK;
}

static cleval_status split_infer(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0);
    uint32_t axis;
    cleval_status status = check_axis(nn, op, op->p.layout.axis, x->shape.rank, &axis);
    if (status != CLEVAL_OK) return status;
    int64_t *sizes = malloc(op->n_out * sizeof *sizes);
    if (!sizes) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory inferring shapes");
    status = split_sizes(nn, op, x->shape.d[axis], sizes);
    for (uint32_t o = 0; o < op->n_out && status == CLEVAL_OK; o++) {
        if (op->out[o] < 0) continue;
        nn_shape s = x->shape;
        s.d[axis] = sizes[o];
        nn_out(nn, op, o)->shape = s;
    }
    free(sizes);
    refuse_batch_axis(x, axis, op);
    return status;
}

static cleval_status split_launch(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0);
    uint32_t axis;
    nn_axis(op->p.layout.axis, x->shape.rank, &axis);
    int64_t *sizes = malloc(op->n_out * sizeof *sizes);
    if (!sizes) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory running node '%s'", op->name);
    cleval_status status = split_sizes(nn, op, x->shape.d[axis], sizes);
    int64_t offset = 0; /* an unnamed output still takes its share of the axis */
    for (uint32_t o = 0; o < op->n_out && status == CLEVAL_OK; offset += sizes[o++])
        if (op->out[o] >= 0) status = copy_block(nn, op, op->in[0], op->out[o], axis, offset, true);
    free(sizes);
    return status;
}

const nn_op_kind nn_kind_split = {"Split", split_parse, split_infer, copy_prepare, split_launch};

/* ---- Slice ---- */

/* Slice's starts, ends, axes and steps from its inputs (opset 10 on) into op->p.layout. */
static cleval_status slice_inputs(cleval_nn *nn, nn_op *op, uint32_t *n_starts, uint32_t *n_ends,
                                  uint32_t *n_steps)
{
    nn_layout_params *p = &op->p.layout;
    cleval_status status;
    *n_steps = 0;
    p->n_axes = 0;
    if ((status = const_ints(nn, op, 1, "starts", p->starts, NN_MAX_RANK, n_starts)) != CLEVAL_OK ||
        (status = const_ints(nn, op, 2, "ends", p->ends, NN_MAX_RANK, n_ends)) != CLEVAL_OK)
        return status;
    if (nn_has_in(op, 3) &&
        (status = const_ints(nn, op, 3, "axes", p->axes, NN_MAX_RANK, &p->n_axes)) != CLEVAL_OK)
        return status;
    if (nn_has_in(op, 4) &&
        (status = const_ints(nn, op, 4, "steps", p->steps, NN_MAX_RANK, n_steps)) != CLEVAL_OK)
        return status;
    return CLEVAL_OK;
}

/* Checks the lengths of the lists and fills in the axes and steps left out. */
static cleval_status slice_complete(cleval_nn *nn, nn_op *op, uint32_t n_starts, uint32_t n_ends,
                                    uint32_t n_steps)
{
    nn_layout_params *p = &op->p.layout;
    p->n_slice = n_starts;
    bool axes_given = nn->opset < 10 ? p->n_axes > 0 || n_starts == 0 : nn_has_in(op, 3);
    if (n_ends != n_starts || (axes_given && p->n_axes != n_starts) ||
        (n_steps && n_steps != n_starts))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                          "starts, ends, axes and steps have different lengths (%u, %u, %u, %u)",
                          n_starts, n_ends, axes_given ? p->n_axes : n_starts,
                          n_steps ? n_steps : n_starts);
    for (uint32_t i = 0; i < p->n_slice; i++) {
        if (!axes_given) p->axes[i] = i;
        if (!n_steps) p->steps[i] = 1;
        if (p->steps[i] == 0) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "a step is 0");
    }
    p->n_axes = p->n_slice;
    return CLEVAL_OK;
}

static cleval_status slice_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    nn_layout_params *p = &op->p.layout;
    cleval_status status = need_data(nn, op);
    if (status != CLEVAL_OK) return status;
    uint32_t n_starts = 0, n_ends = 0, n_steps = 0;
    if (nn->opset < 10) {
        static const char *const known[] = {"starts", "ends", "axes", NULL};
        if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK ||
            (status = attr_list(nn, op, node, "starts", p->starts, NN_MAX_RANK, &n_starts)) !=
                CLEVAL_OK ||
            (status = attr_list(nn, op, node, "ends", p->ends, NN_MAX_RANK, &n_ends)) !=
                CLEVAL_OK ||
            (status = attr_list(nn, op, node, "axes", p->axes, NN_MAX_RANK, &p->n_axes)) !=
                CLEVAL_OK)
            return status;
    } else {
        if ((status = nn_check_attrs(nn, op, node, NULL)) != CLEVAL_OK) return status;
        /* Bounds computed from shapes are known at each inference only (slice_infer). */
        if (host_inputs(nn, op, 1)) return CLEVAL_OK;
        if ((status = slice_inputs(nn, op, &n_starts, &n_ends, &n_steps)) != CLEVAL_OK)
            return status;
    }
    return slice_complete(nn, op, n_starts, n_ends, n_steps);
}

/* Clamps a start or end index (negative counts from the end) into [lo, hi]. */
static int64_t clamp_index(int64_t i, int64_t extent, int64_t lo, int64_t hi)
{
    if (i < 0) i = i < -extent ? -1 - extent : i; /* no overflow below */
    if (i < 0) i += extent;
    return i < lo ? lo : i > hi ? hi : i;
}

/* Per input axis: the first index read and the step between reads; the output shape. */
static cleval_status slice_geometry(cleval_nn *nn, const nn_op *op, const nn_shape *in,
                                    int64_t *begin, int64_t *step, nn_shape *out)
{
    const nn_layout_params *p = &op->p.layout;
    *out = *in;
    bool seen[NN_MAX_RANK] = {false};
    for (uint32_t a = 0; a < in->rank; a++) {
        begin[a] = 0;
        step[a] = 1;
    }
    for (uint32_t i = 0; i < p->n_slice; i++) {
        uint32_t a;
        cleval_status status = check_axis(nn, op, p->axes[i], in->rank, &a);
        if (status != CLEVAL_OK) return status;
        if (seen[a]) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "axis %u is sliced twice", a);
        seen[a] = true;
        int64_t extent = in->d[a], s = p->steps[i], first, last, count;
        if (s > 0) {
            first = clamp_index(p->starts[i], extent, 0, extent);
            last = clamp_index(p->ends[i], extent, 0, extent);
            count = last > first ? (last - first - 1) / s + 1 : 0;
        } else {
            first = clamp_index(p->starts[i], extent, 0, extent - 1);
            last = clamp_index(p->ends[i], extent, -1, extent - 1);
            count = first > last ? (first - last - 1) / (s == INT64_MIN ? INT64_MAX : -s) + 1 : 0;
        }
        begin[a] = count ? first : 0;
        step[a] = count > 1 ? s : 1; /* a huge step over one element would overflow strides */
        out->d[a] = count;
    }
    return CLEVAL_OK;
}

static cleval_status slice_infer(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0);
    int64_t begin[NN_MAX_RANK], step[NN_MAX_RANK];
    nn_shape out;
    cleval_status status = CLEVAL_OK;
    if (nn->opset >= 10 && host_inputs(nn, op, 1)) {
        uint32_t n_starts, n_ends, n_steps;
        if ((status = slice_inputs(nn, op, &n_starts, &n_ends, &n_steps)) != CLEVAL_OK ||
            (status = slice_complete(nn, op, n_starts, n_ends, n_steps)) != CLEVAL_OK)
            return status;
    }
    status = slice_geometry(nn, op, &x->shape, begin, step, &out);
    if (status != CLEVAL_OK) return status;
    /* Rows of the batch axis may only be kept all, in order. */
    int b = nn_batch_axis(x);
    if (b >= 0 && (begin[b] != 0 || step[b] != 1 || out.d[b] != x->shape.d[b]))
        op->mixes_batch = true;
    nn_out(nn, op, 0)->shape = out;
    return CLEVAL_OK;
}

static cleval_status slice_launch(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0);
    int64_t begin[NN_MAX_RANK], step[NN_MAX_RANK], in_strides[NN_MAX_RANK];
    nn_shape out;
    cleval_status status = slice_geometry(nn, op, &x->shape, begin, step, &out);
    if (status != CLEVAL_OK) return status;
    copy_geometry g = {.rank = out.rank};
    memcpy(g.d, out.d, out.rank * sizeof *out.d);
    row_major_strides(&x->shape, in_strides);
    row_major_strides(&out, g.ys);
    for (uint32_t a = 0; a < out.rank; a++) {
        g.xs[a] = in_strides[a] * step[a];
        g.x_off += begin[a] * in_strides[a];
    }
    collapse(&g);
    return launch_copy(nn, op, op->in[0], op->out[0], &g);
}

const nn_op_kind nn_kind_slice = {"Slice", slice_parse, slice_infer, copy_prepare, slice_launch};

/* ---- Transpose ---- */

static cleval_status transpose_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"perm", NULL};
    nn_layout_params *p = &op->p.layout;
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK ||
        (status = attr_list(nn, op, node, "perm", p->perm, NN_MAX_RANK, &p->n_perm)) != CLEVAL_OK)
        return status;
    return need_data(nn, op);
}

/* perm (reversed axes when not given), checked against the input's rank. */
static cleval_status transpose_perm(cleval_nn *nn, const nn_op *op, uint32_t rank, int64_t *perm)
{
    const nn_layout_params *p = &op->p.layout;
    if (p->n_perm && p->n_perm != rank)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "perm has %u entries for rank %u", p->n_perm,
                          rank);
    bool seen[NN_MAX_RANK] = {false};
    for (uint32_t i = 0; i < rank; i++) {
        perm[i] = p->n_perm ? p->perm[i] : (int64_t)(rank - 1 - i);
        if (perm[i] < 0 || perm[i] >= (int64_t)rank || seen[perm[i]])
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "perm is not a permutation of the %u axes",
                              rank);
        seen[perm[i]] = true;
    }
    return CLEVAL_OK;
}

static cleval_status transpose_infer(cleval_nn *nn, nn_op *op)
{
    const nn_shape *in = &nn_in(nn, op, 0)->shape;
    int64_t perm[NN_MAX_RANK];
    cleval_status status = transpose_perm(nn, op, in->rank, perm);
    if (status != CLEVAL_OK) return status;
    nn_shape out = {in->rank, {0}};
    for (uint32_t i = 0; i < in->rank; i++)
        out.d[i] = in->d[perm[i]];
    nn_out(nn, op, 0)->shape = out;
    return CLEVAL_OK;
}

/* copy_tiles' band width along the axis contiguous in x (its TP): 64 elements read per row of
 * a tile, 4 cache lines of floats; 16 (square tiles) was 0.8 to 0.95 x as fast on
 * channels-last transposes, within the noise the other way. */
#define TILE_P 64

/* Both families also get a tiled transpose (k[1]): the CPU family copy_tiles, for transposes
 * that move the innermost axis; the GPU family transpose_tiles, of the last two axes, when the
 * device runs its 16 x 16 work-groups. */
static cleval_status transpose_prepare(cleval_nn *nn, nn_op *op)
{
    cleval_status status = copy_prepare(nn, op);
    if (status != CLEVAL_OK) return status;
    char options[64];
    nn_storage_options(nn, op->in[0], op->out[0], options, sizeof options);
    if (nn->variant == CLEVAL_VARIANT_CPU) {
        char tiles[96];
        snprintf(tiles, sizeof tiles, "%s -DTP=%d", options, TILE_P);
        snprintf(op->kernel_desc, sizeof op->kernel_desc, "copy_tiles / copy_runs");
        return nn_kernel(nn, op, "layout", tiles, "copy_tiles", &op->k[1]);
    }
    if ((status = nn_kernel(nn, op, "layout", options, "transpose_tiles", &op->k[1])) != CLEVAL_OK)
        return status;
    size_t most = 0;
    cl_int err = clGetKernelWorkGroupInfo(op->k[1], cleval_device_id(nn->dev),
                                          CL_KERNEL_WORK_GROUP_SIZE, sizeof most, &most, NULL);
    if (err != CL_SUCCESS || most < 256) {
        clReleaseKernel(op->k[1]);
        op->k[1] = NULL;
    } else {
        snprintf(op->kernel_desc, sizeof op->kernel_desc, "transpose_tiles / strided_copy");
    }
    return CLEVAL_OK;
}

/* A collapsed transpose that is a batch of 2-D transposes: output [B][P][Q] reads input
 * [B][Q][P] (the output's last axis steps over the input's rows). */
static bool swaps_last_two(const copy_geometry *g, int64_t *rows, int64_t *cols)
{
    uint32_t r = g->rank;
    if (r < 2 || r > 3 || g->xs[r - 2] != 1 || g->xs[r - 1] != g->d[r - 2]) return false;
    if (r == 3 && g->xs[0] != g->d[1] * g->d[2]) return false;
    *rows = g->d[r - 1];
    *cols = g->d[r - 2];
    return true;
}

static cleval_status launch_tiles(cleval_nn *nn, nn_op *op, const copy_geometry *g, int64_t rows,
                                  int64_t cols)
{
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[1], NULL);
    cleval_kernel_arg_mem(&a, data_mem(nn, op->in[0]));
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_int(&a, (int32_t)rows);
    cleval_kernel_arg_int(&a, (int32_t)cols);
    size_t global[3] = {(size_t)cols, (size_t)rows, g->rank == 3 ? (size_t)g->d[0] : 1};
    size_t local[3] = {16, 16, 1};
    return nn_enqueue(nn, op, &a, 3, global, local);
}

/* CPU family: a collapsed copy whose innermost axis is strided in x but that has an axis
 * contiguous in x: that axis moves to the second-last place (the order of the axes is free in
 * a copy), where copy_tiles reads along it. */
static bool tiles_fit(copy_geometry *g)
{
    uint32_t r = g->rank;
    if (r < 2 || g->xs[r - 1] == 1) return false;
    for (uint32_t i = 0; i + 1 < r; i++)
        if (g->xs[i] == 1) {
            int64_t d = g->d[i], xs = g->xs[i], ys = g->ys[i];
            for (uint32_t j = i; j + 2 < r; j++) {
                g->d[j] = g->d[j + 1];
                g->xs[j] = g->xs[j + 1];
                g->ys[j] = g->ys[j + 1];
            }
            g->d[r - 2] = d;
            g->xs[r - 2] = xs;
            g->ys[r - 2] = ys;
            return true;
        }
    return false;
}

/* copy_tiles: a band is TILE_P indices of the second-last axis for one outer multi-index,
 * TILE_P x the last axis elements; each work-item takes about cpu_share's worth. */
static cleval_status launch_copy_tiles(cleval_nn *nn, nn_op *op, const copy_geometry *g)
{
    uint64_t bands = ((uint64_t)g->d[g->rank - 2] + TILE_P - 1) / TILE_P, n = 1;
    for (uint32_t i = 0; i < g->rank; i++)
        n *= (uint64_t)g->d[i];
    for (uint32_t i = 0; i + 2 < g->rank; i++)
        bands *= (uint64_t)g->d[i];
    if (n == 0) return CLEVAL_OK;
    uint64_t per = cpu_share(n) / (TILE_P * (uint64_t)g->d[g->rank - 1]);
    per = per < 1 ? 1 : per;
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[1], NULL);
    cleval_kernel_arg_mem(&a, data_mem(nn, op->in[0]));
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_uint(&a, (uint32_t)bands);
    cleval_kernel_arg_uint(&a, (uint32_t)per);
    geometry_args(&a, g);
    return launch_items(nn, op, &a, (bands + per - 1) / per);
}

static cleval_status transpose_launch(cleval_nn *nn, nn_op *op)
{
    const nn_shape *in = &nn_in(nn, op, 0)->shape;
    int64_t perm[NN_MAX_RANK], in_strides[NN_MAX_RANK];
    cleval_status status = transpose_perm(nn, op, in->rank, perm);
    if (status != CLEVAL_OK) return status;
    const nn_shape *out = &nn_out(nn, op, 0)->shape;
    copy_geometry g = {.rank = out->rank};
    memcpy(g.d, out->d, out->rank * sizeof *out->d);
    row_major_strides(in, in_strides);
    row_major_strides(out, g.ys);
    for (uint32_t i = 0; i < out->rank; i++)
        g.xs[i] = in_strides[perm[i]];
    collapse(&g);
    int64_t rows, cols;
    if (nn->variant == CLEVAL_VARIANT_CPU && tiles_fit(&g)) return launch_copy_tiles(nn, op, &g);
    if (nn->variant == CLEVAL_VARIANT_GPU && op->k[1] && swaps_last_two(&g, &rows, &cols))
        return launch_tiles(nn, op, &g, rows, cols);
    return launch_copy(nn, op, op->in[0], op->out[0], &g);
}

const nn_op_kind nn_kind_transpose = {"Transpose", transpose_parse, transpose_infer,
                                      transpose_prepare, transpose_launch};

/* ---- Gather (constant indices) ---- */

static cleval_status gather_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"axis", NULL};
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK ||
        (status = nn_attr_int(nn, node, "axis", 0, &op->p.layout.axis)) != CLEVAL_OK ||
        (status = need_data(nn, op)) != CLEVAL_OK ||
        (status = nn_require_const(nn, op, 1, "indices")) != CLEVAL_OK)
        return status;
    const nn_value *idx = nn_in(nn, op, 1);
    if (!idx->i64)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "indices '%s' must be integers", idx->name);
    return CLEVAL_OK;
}

static cleval_status gather_infer(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0), *idx = nn_in(nn, op, 1);
    uint32_t axis;
    cleval_status status = check_axis(nn, op, op->p.layout.axis, x->shape.rank, &axis);
    if (status != CLEVAL_OK) return status;
    int64_t extent = x->shape.d[axis];
    for (uint64_t j = 0; j < idx->count; j++)
        if (idx->i64[j] < -extent || idx->i64[j] >= extent)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                              "index %lld is out of range for an axis of %lld",
                              (long long)idx->i64[j], (long long)extent);
    if (x->shape.rank - 1 + idx->shape.rank > NN_MAX_RANK)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "the output rank is more than %d",
                          NN_MAX_RANK);
    /* data[:axis] + indices' shape + data[axis + 1:]; a scalar index removes the axis. */
    nn_shape out = {0, {0}};
    for (uint32_t i = 0; i < axis; i++)
        out.d[out.rank++] = x->shape.d[i];
    for (uint32_t i = 0; i < idx->shape.rank; i++)
        out.d[out.rank++] = idx->shape.d[i];
    for (uint32_t i = axis + 1; i < x->shape.rank; i++)
        out.d[out.rank++] = x->shape.d[i];
    refuse_batch_axis(x, axis, op);
    nn_out(nn, op, 0)->shape = out;
    return CLEVAL_OK;
}

static cleval_status gather_prepare(cleval_nn *nn, nn_op *op)
{
    const nn_value *idx = nn_in(nn, op, 1);
    cleval_status status = need_float_data(nn, op, op->in[0]);
    if (status != CLEVAL_OK) return status;
    int32_t *narrow = malloc((idx->count ? idx->count : 1) * sizeof *narrow);
    if (!narrow)
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory preparing node '%s'", op->name);
    /* In range for some axis of at most NN_MAX_ELEMENTS (checked again at each inference). */
    for (uint64_t j = 0; j < idx->count; j++) {
        int64_t i = idx->i64[j];
        narrow[j] = (int32_t)(i < -NN_MAX_ELEMENTS  ? -NN_MAX_ELEMENTS
                              : i > NN_MAX_ELEMENTS ? NN_MAX_ELEMENTS
                                                    : i);
    }
    status = nn_upload(nn, narrow, (idx->count ? idx->count : 1) * sizeof *narrow, "indices",
                       &op->mem[0]);
    free(narrow);
    if (status == CLEVAL_OK)
        status = nn_storage_kernel(nn, op, "layout",
                                   nn->variant == CLEVAL_VARIANT_CPU ? "gather_runs" : "gather");
    return status;
}

static cleval_status gather_launch(cleval_nn *nn, nn_op *op)
{
    const nn_value *x = nn_in(nn, op, 0), *idx = nn_in(nn, op, 1);
    uint32_t axis;
    nn_axis(op->p.layout.axis, x->shape.rank, &axis);
    int64_t inner = 1;
    for (uint32_t i = axis + 1; i < x->shape.rank; i++)
        inner *= x->shape.d[i];
    uint64_t n = nn_out(nn, op, 0)->count;
    if (n == 0) return CLEVAL_OK;
    /* CPU family (gather_runs): rows of `inner` elements, about cpu_share's worth per item. */
    bool cpu = nn->variant == CLEVAL_VARIANT_CPU;
    uint64_t rows = n / (uint64_t)inner, per = cpu_share(n) / (uint64_t)inner;
    per = per < 1 ? 1 : per;
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, data_mem(nn, op->in[0]));
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_mem(&a, op->mem[0]);
    cleval_kernel_arg_uint(&a, (uint32_t)(cpu ? rows : n));
    if (cpu) cleval_kernel_arg_uint(&a, (uint32_t)per);
    cleval_kernel_arg_int(&a, (int32_t)idx->count);
    cleval_kernel_arg_int(&a, (int32_t)x->shape.d[axis]);
    cleval_kernel_arg_int(&a, (int32_t)inner);
    if (cpu) return launch_items(nn, op, &a, (rows + per - 1) / per);
    size_t local = nn_local_1d(nn), global = (size_t)n;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

const nn_op_kind nn_kind_gather = {"Gather", gather_parse, gather_infer, gather_prepare,
                                   gather_launch};

/* ---- Squeeze, Unsqueeze (views) ---- */

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

/* axes: an attribute before opset 13, an input from 13 on (a constant, or a host value read by
 * infer). */
static cleval_status axes_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    nn_layout_params *p = &op->p.layout;
    cleval_status status = need_data(nn, op);
    if (status != CLEVAL_OK) return status;
    op->alias_only = true;
    if (nn->opset < 13) {
        static const char *const known[] = {"axes", NULL};
        if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK) return status;
        status = attr_list(nn, op, node, "axes", p->axes, NN_MAX_RANK, &p->n_axes);
        p->has_axes = cleval_onnx_node_attr(node, "axes") != NULL;
        return status;
    }
    if ((status = nn_check_attrs(nn, op, node, NULL)) != CLEVAL_OK) return status;
    p->has_axes = nn_has_in(op, 1);
    if (!p->has_axes || host_inputs(nn, op, 1)) return CLEVAL_OK; /* host: read by infer */
    return const_ints(nn, op, 1, "axes", p->axes, NN_MAX_RANK, &p->n_axes);
}

/* Axes computed from shapes, read at each inference. */
static cleval_status host_axes(cleval_nn *nn, nn_op *op)
{
    if (!host_inputs(nn, op, 1)) return CLEVAL_OK;
    return const_ints(nn, op, 1, "axes", op->p.layout.axes, NN_MAX_RANK, &op->p.layout.n_axes);
}

/* Marks the normalised axes (against `rank`) in `mark`; refuses repeats. */
static cleval_status mark_axes(cleval_nn *nn, const nn_op *op, uint32_t rank, bool *mark)
{
    const nn_layout_params *p = &op->p.layout;
    for (uint32_t i = 0; i < p->n_axes; i++) {
        uint32_t a;
        cleval_status status = check_axis(nn, op, p->axes[i], rank, &a);
        if (status != CLEVAL_OK) return status;
        if (mark[a]) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "axis %u is given twice", a);
        mark[a] = true;
    }
    return CLEVAL_OK;
}

static cleval_status squeeze_infer(cleval_nn *nn, nn_op *op)
{
    const nn_shape *in = &nn_in(nn, op, 0)->shape;
    bool drop[NN_MAX_RANK] = {false};
    cleval_status status = host_axes(nn, op);
    if (status == CLEVAL_OK) status = mark_axes(nn, op, in->rank, drop);
    if (status != CLEVAL_OK) return status;
    nn_shape out = {0, {0}};
    for (uint32_t i = 0; i < in->rank; i++) {
        if (drop[i] && in->d[i] != 1)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "axis %u has extent %lld, not 1", i,
                              (long long)in->d[i]);
        if (!drop[i] && (op->p.layout.has_axes || in->d[i] != 1)) out.d[out.rank++] = in->d[i];
    }
    nn_out(nn, op, 0)->shape = out;
    return CLEVAL_OK;
}

static cleval_status unsqueeze_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    cleval_status status = axes_parse(nn, op, node);
    if (status == CLEVAL_OK && !op->p.layout.has_axes)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "axes are missing");
    return status;
}

static cleval_status unsqueeze_infer(cleval_nn *nn, nn_op *op)
{
    const nn_shape *in = &nn_in(nn, op, 0)->shape;
    cleval_status status = host_axes(nn, op);
    if (status != CLEVAL_OK) return status;
    uint32_t rank = in->rank + op->p.layout.n_axes;
    if (rank > NN_MAX_RANK)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "the output rank %u is more than %d",
                          rank, NN_MAX_RANK);
    bool insert[NN_MAX_RANK] = {false};
    status = mark_axes(nn, op, rank, insert);
    if (status != CLEVAL_OK) return status;
    nn_shape out = {rank, {0}};
    for (uint32_t i = 0, j = 0; i < rank; i++)
        out.d[i] = insert[i] ? 1 : in->d[j++];
    nn_out(nn, op, 0)->shape = out;
    return CLEVAL_OK;
}

const nn_op_kind nn_kind_squeeze = {"Squeeze", axes_parse, squeeze_infer, view_prepare,
                                    view_launch};
const nn_op_kind nn_kind_unsqueeze = {"Unsqueeze", unsqueeze_parse, unsqueeze_infer, view_prepare,
                                      view_launch};
