/* Building the graph from a loaded ONNX model: constants (initializers, Constant nodes, bound
 * inputs), runtime inputs, one op per node through the op table, graph outputs. Every refusal
 * names the model file, the node and its operator. */
#include "nn_internal.h"

#include "name_map.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const nn_op_kind *const KINDS[] = {
    &nn_kind_conv,    &nn_kind_maxpool,    &nn_kind_averagepool, &nn_kind_globalaveragepool,
    &nn_kind_gemm,    &nn_kind_matmul,     &nn_kind_add,         &nn_kind_sub,
    &nn_kind_mul,     &nn_kind_div,        &nn_kind_relu,        &nn_kind_sigmoid,
    &nn_kind_tanh,    &nn_kind_clip,       &nn_kind_batchnorm,   &nn_kind_flatten,
    &nn_kind_reshape, &nn_kind_identity,   &nn_kind_dropout,     &nn_kind_pad,
    &nn_kind_softmax, &nn_kind_logsoftmax,
    &nn_kind_pow,
    &nn_kind_sqrt,
    &nn_kind_reducemean,
    &nn_kind_reducesum,
    &nn_kind_reducemax,
    &nn_kind_reducemin,
    &nn_kind_reducel2,
    &nn_kind_layernorm,
    &nn_kind_expand,
    &nn_kind_constantofshape,
    &nn_kind_concat,  &nn_kind_split,      &nn_kind_slice,       &nn_kind_transpose,
    &nn_kind_gather,  &nn_kind_squeeze,    &nn_kind_unsqueeze,
    &nn_kind_lstm, &nn_kind_gru,
    &nn_kind_cast,
    &nn_kind_exp, &nn_kind_log, &nn_kind_neg, &nn_kind_abs, &nn_kind_reciprocal, &nn_kind_erf,
    &nn_kind_gelu, &nn_kind_leakyrelu, &nn_kind_elu, &nn_kind_celu, &nn_kind_selu,
    &nn_kind_hardsigmoid, &nn_kind_hardswish, &nn_kind_softplus, &nn_kind_prelu,
};

const nn_op_kind *nn_find_kind(const char *op_type)
{
    for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++)
        if (strcmp(KINDS[i]->op_type, op_type) == 0) return KINDS[i];
    return NULL;
}

cleval_status nn_fail_op(const cleval_nn *nn, const nn_op *op, cleval_status status,
                         const char *fmt, ...)
{
    char message[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return cleval_fail(status, "%s: node '%s' (%s): %s", nn->path, op->name,
                       op->kind ? op->kind->op_type : "?", message);
}

uint64_t nn_shape_count(const nn_shape *s)
{
    uint64_t n = 1;
    for (uint32_t i = 0; i < s->rank; i++)
        n *= (uint64_t)s->d[i];
    return n;
}

bool nn_shape_count_checked(const nn_shape *s, uint64_t *count)
{
    uint64_t n = 1;
    for (uint32_t i = 0; i < s->rank; i++) {
        if (s->d[i] < 0) return false;
        if (s->d[i] == 0)
            n = 0;
        else if (n != 0 && (uint64_t)s->d[i] > (uint64_t)NN_MAX_ELEMENTS / n)
            return false;
        else
            n *= (uint64_t)s->d[i];
    }
    /* A zero dim makes the count 0 whatever the others are; they must still be sane. */
    for (uint32_t i = 0; i < s->rank; i++)
        if (s->d[i] > NN_MAX_ELEMENTS) return false;
    *count = n;
    return true;
}

void nn_shape_format(const nn_shape *s, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (uint32_t i = 0; i < s->rank && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%" PRId64, i ? ", " : "", s->d[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

bool nn_axis(int64_t axis, uint32_t rank, uint32_t *out)
{
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= (int64_t)rank) return false;
    *out = (uint32_t)axis;
    return true;
}

cleval_status nn_require_const(cleval_nn *nn, const nn_op *op, uint32_t i, const char *what)
{
    if (!nn_has_in(op, i))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input %u (%s) is missing", i, what);
    const nn_value *v = &nn->values[op->in[i]];
    if (v->kind != NN_VALUE_CONST)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "input '%s' (%s) must be a constant (an initializer or a Constant "
                          "node); computed %s are not supported",
                          v->name, what, what);
    if (!v->f32 && !v->i64)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "constant '%s' (%s) holds no values",
                          v->name, what);
    return CLEVAL_OK;
}

/* ---- values and ops ---- */

char *nn_copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c) memcpy(c, s, n);
    return c;
}

static int add_value(cleval_nn *nn, const char *name, nn_value_kind kind)
{
    if (nn->n_values == nn->cap_values) {
        uint32_t cap = nn->cap_values ? 2 * nn->cap_values : 64;
        nn_value *grown = realloc(nn->values, cap * sizeof *grown);
        if (!grown) return -1;
        nn->values = grown;
        nn->cap_values = cap;
    }
    nn_value *v = &nn->values[nn->n_values];
    memset(v, 0, sizeof *v);
    v->name = nn_copy_string(name);
    if (!v->name) return -1;
    v->kind = kind;
    v->producer = -1;
    v->alias = -1;
    v->slot = -1;
    v->batch_axis = -1;
    v->batch_inner = 1;
    return (int)nn->n_values++;
}

int nn_add_const(cleval_nn *nn, const char *name, const nn_shape *shape, float *f32)
{
    int v = add_value(nn, name, NN_VALUE_CONST);
    if (v < 0) {
        free(f32);
        cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the graph");
        return -1;
    }
    nn->values[v].shape = *shape;
    nn->values[v].f32 = f32;
    nn->values[v].count = nn_shape_count(shape);
    return v;
}

/* Makes value v findable by its name (unique: the callers refuse a name given twice). */
static cleval_status name_value(const cleval_nn *nn, name_map *names, int v)
{
    if (!name_map_add(names, nn->values[v].name, v, NULL))
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the graph");
    return CLEVAL_OK;
}

cleval_status nn_own_f32(cleval_nn *nn, nn_value *v)
{
    if (!v->borrowed) return CLEVAL_OK;
    size_t n = v->count ? (size_t)v->count : 1;
    float *copy = malloc(n * sizeof *copy);
    if (!copy)
        return cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory copying '%s'", nn->path, v->name);
    memcpy(copy, v->f32, (size_t)v->count * sizeof *copy);
    v->f32 = copy;
    v->borrowed = false;
    return CLEVAL_OK;
}

void nn_drop_f32(nn_value *v)
{
    if (!v->borrowed) free(v->f32);
    v->f32 = NULL;
    v->borrowed = false;
}

/* A tensor's values as a constant value: float values are borrowed (they outlive create, which
 * is all the time the host needs them), integers copied. */
static cleval_status set_const_data(cleval_nn *nn, nn_value *v, const cleval_onnx_tensor *t,
                                    const char *what)
{
    if (t->rank > NN_MAX_RANK)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED, "%s: %s '%s' has rank %u, more than %d",
                           nn->path, what, t->name, t->rank, NN_MAX_RANK);
    v->shape.rank = t->rank;
    for (uint32_t i = 0; i < t->rank; i++)
        v->shape.d[i] = t->dims[i];
    uint64_t count;
    if (!nn_shape_count_checked(&v->shape, &count))
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED, "%s: %s '%s' has too many elements", nn->path,
                           what, t->name);
    v->count = count;
    size_t n = count ? (size_t)count : 1;
    if (t->storage == CLEVAL_ONNX_DATA_F32) {
        v->f32 = (float *)t->f32; /* never written: nn_own_f32 copies it first */
        v->borrowed = true;
    } else if (t->storage == CLEVAL_ONNX_DATA_I64) {
        v->dtype = NN_INT64;
        if (!(v->i64 = malloc(n * sizeof *v->i64))) goto nomem;
        if (count) memcpy(v->i64, t->i64, count * sizeof *v->i64);
    }
    return CLEVAL_OK;
nomem:
    return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory copying %s '%s'", what, t->name);
}

/* A new op with room for n_in inputs and n_out outputs (at least NN_MAX_IN / NN_MAX_OUT), all
 * -1; NULL when out of memory. */
static nn_op *add_op(cleval_nn *nn, uint32_t n_in, uint32_t n_out)
{
    if (nn->n_ops == nn->cap_ops) {
        uint32_t cap = nn->cap_ops ? 2 * nn->cap_ops : 32;
        nn_op *grown = realloc(nn->ops, cap * sizeof *grown);
        if (!grown) return NULL;
        nn->ops = grown;
        nn->cap_ops = cap;
    }
    nn_op *op = &nn->ops[nn->n_ops++];
    memset(op, 0, sizeof *op);
    op->workspace_slot = -1;
    n_in = n_in > NN_MAX_IN ? n_in : NN_MAX_IN;
    n_out = n_out > NN_MAX_OUT ? n_out : NN_MAX_OUT;
    op->in = malloc(n_in * sizeof *op->in);
    op->out = malloc(n_out * sizeof *op->out);
    if (!op->in || !op->out) return NULL;
    for (uint32_t i = 0; i < n_in; i++)
        op->in[i] = -1;
    for (uint32_t i = 0; i < n_out; i++)
        op->out[i] = -1;
    return op;
}

/* A Constant node becomes a constant value named after its output. */
static cleval_status add_constant_node(cleval_nn *nn, name_map *names, const cleval_onnx_node *node)
{
    nn_op probe = {.name = node->name};
    static const nn_op_kind constant_kind = {"Constant", NULL, NULL, NULL, NULL};
    probe.kind = &constant_kind;
    if (node->n_outputs != 1 || !*node->outputs[0])
        return nn_fail_op(nn, &probe, CLEVAL_ERR_INPUT, "a Constant needs exactly one output");
    if (node->n_attrs != 1)
        return nn_fail_op(nn, &probe, CLEVAL_ERR_INPUT,
                          "a Constant needs exactly one value attribute (it has %u)",
                          node->n_attrs);
    const cleval_onnx_attr *a = &node->attrs[0];
    if (name_map_get(names, node->outputs[0]) >= 0)
        return nn_fail_op(nn, &probe, CLEVAL_ERR_INPUT, "output '%s' is produced twice",
                          node->outputs[0]);
    int vi = add_value(nn, node->outputs[0], NN_VALUE_CONST);
    if (vi < 0) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the graph");
    nn_value *v = &nn->values[vi];
    cleval_status status = CLEVAL_OK;
    if (strcmp(a->name, "value") == 0 && a->type == CLEVAL_ONNX_ATTR_TENSOR) {
        if (a->t->storage == CLEVAL_ONNX_DATA_NONE)
            return nn_fail_op(nn, &probe, CLEVAL_ERR_UNSUPPORTED,
                              "attribute value has element type %s, which is not supported",
                              cleval_onnx_dtype_name(a->t->dtype));
        status = set_const_data(nn, v, a->t, "constant");
    } else if (strcmp(a->name, "value_float") == 0 && a->type == CLEVAL_ONNX_ATTR_FLOAT) {
        v->count = 1;
        if ((v->f32 = malloc(sizeof *v->f32))) v->f32[0] = a->f;
    } else if (strcmp(a->name, "value_int") == 0 && a->type == CLEVAL_ONNX_ATTR_INT) {
        v->count = 1;
        v->dtype = NN_INT64;
        if ((v->i64 = malloc(sizeof *v->i64))) v->i64[0] = a->i;
    } else if (strcmp(a->name, "value_floats") == 0 && a->type == CLEVAL_ONNX_ATTR_FLOATS) {
        v->shape.rank = 1;
        v->shape.d[0] = a->count;
        v->count = a->count;
        if ((v->f32 = malloc((a->count ? a->count : 1) * sizeof *v->f32)))
            memcpy(v->f32, a->floats, a->count * sizeof *v->f32);
    } else if (strcmp(a->name, "value_ints") == 0 && a->type == CLEVAL_ONNX_ATTR_INTS) {
        v->shape.rank = 1;
        v->shape.d[0] = a->count;
        v->count = a->count;
        v->dtype = NN_INT64;
        if ((v->i64 = malloc((a->count ? a->count : 1) * sizeof *v->i64)))
            memcpy(v->i64, a->ints, a->count * sizeof *v->i64);
    } else {
        return nn_fail_op(nn, &probe, CLEVAL_ERR_UNSUPPORTED, "attribute %s (%s) is not supported",
                          a->name, cleval_onnx_attr_type_name(a->type));
    }
    if (status != CLEVAL_OK) return status;
    if (!v->f32 && !v->i64)
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the graph");
    return name_value(nn, names, vi);
}

/* The device kind of a node. A Gather whose indices vary (an embedding lookup) has a kind of
 * its own; with constant indices it is the ordinary Gather. */
static const nn_op_kind *device_kind(const cleval_nn *nn, const nn_op *op,
                                     const cleval_onnx_node *node)
{
    if (strcmp(node->op_type, "Gather") == 0 && op->n_in == 2 && op->in[1] >= 0 &&
        nn->values[op->in[1]].varying)
        return &nn_kind_gather_rows;
    return nn_find_kind(node->op_type);
}

/* Where the inputs of a node come from: all constants, or constants and host values only. */
static void classify_inputs(const cleval_nn *nn, const nn_op *op, bool *all_const, bool *all_host)
{
    *all_const = *all_host = true;
    for (uint32_t i = 0; i < op->n_in; i++) {
        if (op->in[i] < 0) continue;
        nn_value_kind kind = nn->values[op->in[i]].kind;
        if (kind != NN_VALUE_CONST) *all_const = false;
        if (kind != NN_VALUE_CONST && kind != NN_VALUE_HOST) *all_host = false;
    }
}

/* Device kinds that compute from their inputs' values what their host kind (fold.c, which
 * parses attributes into the same fields) computes: float fills and broadcasts to computed
 * shapes, which fold.c sends to the device where large results belong, and the views. */
static bool host_capable(const nn_op_kind *kind)
{
    return kind == &nn_kind_constantofshape || kind == &nn_kind_expand ||
           kind == &nn_kind_reshape || kind == &nn_kind_flatten || kind == &nn_kind_identity;
}

/* Whether activation v comes from constants and host values through host-capable device ops
 * only (then the host can evaluate it as well). */
static bool demotable(const cleval_nn *nn, int v)
{
    const nn_value *value = &nn->values[v];
    if (value->kind != NN_VALUE_ACT || value->producer < 0) return false;
    const nn_op *producer = &nn->ops[value->producer];
    if (!host_capable(producer->kind) || producer->n_out != 1) return false;
    for (uint32_t i = 0; i < producer->n_in; i++) {
        int in = producer->in[i];
        if (in >= 0 && nn->values[in].kind == NN_VALUE_ACT && !demotable(nn, in)) return false;
        if (in >= 0 && nn->values[in].kind == NN_VALUE_INPUT) return false;
    }
    return true;
}

/* Moves the producer of demotable activation v, and those of its inputs, to the host. */
static void demote(cleval_nn *nn, int v)
{
    nn_op *producer = &nn->ops[nn->values[v].producer];
    for (uint32_t i = 0; i < producer->n_in; i++)
        if (producer->in[i] >= 0 && nn->values[producer->in[i]].kind == NN_VALUE_ACT)
            demote(nn, producer->in[i]);
    cleval_onnx_node probe = {.op_type = (char *)producer->kind->op_type};
    producer->kind = nn_host_kind(&probe, true, false);
    producer->host = true;
    producer->alias_only = false; /* the host copies the values of views */
    nn->values[v].kind = NN_VALUE_HOST;
    nn->values[v].varying = false;
}

/* An operator that has a host evaluator only (ScatterND writing a mask built from shapes) may
 * read demotable activations: they move to the host. True when every input is then there. */
static bool demote_inputs(cleval_nn *nn, const nn_op *op, const cleval_onnx_node *node)
{
    if (nn_find_kind(node->op_type) || !nn_host_kind(node, false, false)) return false;
    for (uint32_t i = 0; i < op->n_in; i++) {
        const nn_value *v = op->in[i] >= 0 ? &nn->values[op->in[i]] : NULL;
        if (v &&
            (v->kind == NN_VALUE_INPUT || (v->kind == NN_VALUE_ACT && !demotable(nn, op->in[i]))))
            return false;
    }
    for (uint32_t i = 0; i < op->n_in; i++)
        if (op->in[i] >= 0 && nn->values[op->in[i]].kind == NN_VALUE_ACT) demote(nn, op->in[i]);
    return true;
}

/* The node runs on the host when it can: from constants (folded now) and host values, or from
 * any input's shape (Shape, Size). Otherwise on the device, if its operator has a kind. */
static const nn_op_kind *choose_kind(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    bool all_const, all_host;
    classify_inputs(nn, op, &all_const, &all_host);
    if (!all_host) all_host = demote_inputs(nn, op, node);
    bool float_data = nn_has_in(op, 0) && nn_in(nn, op, 0)->f32;
    const nn_op_kind *host = nn_host_kind(node, all_const, float_data);
    op->host = host && (all_host || nn_host_reads_shapes(host));
    return op->host ? host : device_kind(nn, op, node);
}

bool nn_reads_host_input(const nn_op_kind *kind, uint32_t i)
{
    bool reduce = kind == &nn_kind_reducemean || kind == &nn_kind_reducesum ||
                  kind == &nn_kind_reducemax || kind == &nn_kind_reducemin ||
                  kind == &nn_kind_reducel2;
    return (kind == &nn_kind_reshape && i == 1) || (kind == &nn_kind_expand && i == 1) ||
           (kind == &nn_kind_constantofshape && i == 0) || (kind == &nn_kind_slice && i >= 1) ||
           (kind == &nn_kind_pad && i == 1) || (kind == &nn_kind_split && i == 1) ||
           (kind == &nn_kind_squeeze && i == 1) || (kind == &nn_kind_unsqueeze && i == 1) ||
           (reduce && i == 1);
}

static cleval_status add_node(cleval_nn *nn, name_map *names, const cleval_onnx_node *node)
{
    if (strcmp(node->op_type, "Constant") == 0) return add_constant_node(nn, names, node);
    nn_op *op = add_op(nn, node->n_inputs, node->n_outputs);
    if (!op) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the graph");
    if (!(op->name = nn_copy_string(node->name)))
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the graph");
    /* The kind used in messages until the inputs tell which one runs the node. */
    op->kind = nn_find_kind(node->op_type);
    if (!op->kind) op->kind = nn_host_kind(node, true, false);
    if (!op->kind) {
        cleval_status status =
            cleval_fail(CLEVAL_ERR_UNSUPPORTED, "%s: node '%s' (%s): operator %s is not supported",
                        nn->path, node->name, node->op_type, node->op_type);
        return status;
    }
    snprintf(op->label, sizeof op->label, "%s", node->op_type);

    if (node->n_inputs > NN_MAX_IN && !nn_kind_variadic(op->kind))
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "%u inputs are more than supported",
                          node->n_inputs);
    if ((node->n_outputs > NN_MAX_OUT && !nn_kind_variadic(op->kind)) || node->n_outputs == 0)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "%u outputs are not supported",
                          node->n_outputs);
    op->n_in = node->n_inputs;
    for (uint32_t i = 0; i < node->n_inputs; i++) {
        if (!*node->inputs[i]) continue; /* omitted optional input */
        int v = name_map_get(names, node->inputs[i]);
        if (v < 0)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                              "input '%s' is neither a graph input, an initializer nor the "
                              "output of an earlier node",
                              node->inputs[i]);
        op->in[i] = v;
        nn->values[v].uses++;
    }
    const nn_op_kind *kind = choose_kind(nn, op, node);
    if (!kind)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "operator %s is supported on constants and tensor shapes only, not on "
                          "values computed from the network's input",
                          node->op_type);
    op->kind = kind;
    op->n_out = node->n_outputs;
    int op_index = (int)(op - nn->ops);
    /* A value computed from a host value (a shape) changes with the batch like the input. */
    bool varying = false;
    for (uint32_t i = 0; i < op->n_in; i++)
        if (op->in[i] >= 0 &&
            (nn->values[op->in[i]].varying || nn->values[op->in[i]].kind == NN_VALUE_HOST))
            varying = true;
    for (uint32_t i = 0; i < node->n_outputs; i++) {
        if (!*node->outputs[i]) continue;
        if (name_map_get(names, node->outputs[i]) >= 0)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "output '%s' is produced twice",
                              node->outputs[i]);
        int v = add_value(nn, node->outputs[i], op->host ? NN_VALUE_HOST : NN_VALUE_ACT);
        if (v < 0) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the graph");
        op = &nn->ops[op_index]; /* add_value does not move ops, but keep it obvious */
        nn->values[v].producer = op_index;
        nn->values[v].varying = varying && !op->host;
        op->out[i] = v;
        cleval_status status = name_value(nn, names, v);
        if (status != CLEVAL_OK) return status;
    }
    if (op->out[0] < 0 && !nn_kind_may_omit_output0(op->kind))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "output 0 has no name");
    cleval_status status = op->kind->parse(nn, op, node);
    bool all_const, all_host;
    classify_inputs(nn, op, &all_const, &all_host);
    if (status == CLEVAL_OK && op->host && all_const) status = nn_fold_op(nn, op);
    if (status == CLEVAL_OK && !op->host) status = nn_settle_dtypes(nn, op);
    return status;
}

static const cleval_onnx_tensor *find_bound(const cleval_nn_options *options, const char *name)
{
    for (uint32_t i = 0; options && i < options->n_bound; i++)
        if (options->bound[i] && strcmp(options->bound[i]->name, name) == 0)
            return options->bound[i];
    return NULL;
}

static cleval_status add_inputs(cleval_nn *nn, name_map *names, const cleval_onnx_model *model,
                                const cleval_nn_options *options)
{
    nn->inputs = calloc(model->n_inputs ? model->n_inputs : 1, sizeof *nn->inputs);
    if (!nn->inputs) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the graph");
    for (uint32_t i = 0; i < model->n_inputs; i++) {
        const cleval_onnx_value *in = &model->inputs[i];
        if (name_map_get(names, in->name) >= 0) continue; /* an initializer wins */
        const cleval_onnx_tensor *bound = find_bound(options, in->name);
        if (bound) {
            int v = add_value(nn, in->name, NN_VALUE_CONST);
            if (v < 0) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the graph");
            cleval_status status = set_const_data(nn, &nn->values[v], bound, "bound input");
            if (status != CLEVAL_OK) return status;
            if ((status = name_value(nn, names, v)) != CLEVAL_OK) return status;
            continue;
        }
        nn_dtype dtype = NN_FLOAT;
        if (in->elem_type != 0 &&
            (in->elem_type == CLEVAL_ONNX_BOOL || !nn_dtype_from_onnx(in->elem_type, &dtype)))
            return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                               "%s: graph input '%s' has element type %s; cleval feeds float, "
                               "float16, uint8, int8, int32 and int64 inputs",
                               nn->path, in->name, cleval_onnx_dtype_name(in->elem_type));
        if (in->has_shape && in->rank > NN_MAX_RANK)
            return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                               "%s: graph input '%s' has rank %u, more "
                               "than %d",
                               nn->path, in->name, in->rank, NN_MAX_RANK);
        int v = add_value(nn, in->name, NN_VALUE_INPUT);
        if (v < 0) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the graph");
        nn->values[v].varying = true;
        nn->values[v].dtype = dtype;
        if (in->has_shape) {
            nn->values[v].shape.rank = in->rank;
            for (uint32_t d = 0; d < in->rank; d++)
                nn->values[v].shape.d[d] = in->dims[d];
        } else {
            nn->values[v].shape.rank = UINT32_MAX; /* unknown until run time */
        }
        cleval_status status = name_value(nn, names, v);
        if (status != CLEVAL_OK) return status;
        nn->inputs[nn->n_inputs++] = v;
    }
    return CLEVAL_OK;
}

cleval_status nn_build_graph(cleval_nn *nn, const cleval_onnx_model *model,
                             const cleval_nn_options *options)
{
    /* Every value name comes from an initializer, a graph input or a node output: value
     * indices by name, so that each node finds its inputs in constant time. */
    size_t expected = (size_t)model->n_initializers + model->n_inputs + model->n_nodes;
    name_map names;
    if (!name_map_init(&names, expected))
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the graph");

    cleval_status status = CLEVAL_OK;
    for (uint32_t i = 0; i < model->n_initializers && status == CLEVAL_OK; i++) {
        const cleval_onnx_tensor *t = &model->initializers[i];
        if (name_map_get(&names, t->name) >= 0) {
            status = cleval_fail(CLEVAL_ERR_INPUT, "%s: initializer '%s' is given twice", nn->path,
                                 t->name);
            break;
        }
        int v = add_value(nn, t->name, NN_VALUE_CONST);
        if (v < 0) {
            status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the graph");
            break;
        }
        const cleval_onnx_tensor *bound = find_bound(options, t->name);
        status = set_const_data(nn, &nn->values[v], bound ? bound : t, "initializer");
        if (status == CLEVAL_OK) status = name_value(nn, &names, v);
    }
    if (status == CLEVAL_OK) status = add_inputs(nn, &names, model, options);
    for (uint32_t i = 0; i < model->n_nodes && status == CLEVAL_OK; i++)
        status = add_node(nn, &names, &model->nodes[i]);

    if (status == CLEVAL_OK) {
        nn->outputs = calloc(model->n_outputs ? model->n_outputs : 1, sizeof *nn->outputs);
        if (!nn->outputs)
            status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the graph");
    }
    for (uint32_t i = 0; i < model->n_outputs && status == CLEVAL_OK; i++) {
        int v = name_map_get(&names, model->outputs[i].name);
        if (v < 0) {
            status = cleval_fail(CLEVAL_ERR_INPUT, "%s: graph output '%s' is never produced",
                                 nn->path, model->outputs[i].name);
            break;
        }
        int32_t type = model->outputs[i].elem_type;
        if ((type != CLEVAL_ONNX_FLOAT && type != CLEVAL_ONNX_FLOAT16 && type != 0) ||
            nn->values[v].dtype != NN_FLOAT)
            status = cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                                 "%s: graph output '%s' has element type %s; cleval computes "
                                 "float outputs only",
                                 nn->path, model->outputs[i].name,
                                 type ? cleval_onnx_dtype_name(type)
                                      : nn_dtype_name(nn->values[v].dtype));
        nn->values[v].is_output = true;
        nn->values[v].uses++;
        nn->outputs[nn->n_outputs++] = v;
    }
    /* Secondary outputs (Dropout's mask, MaxPool's Indices, BatchNormalization's training
     * statistics) are never computed: refuse a graph that reads one. Ops that compute them
     * all (LSTM's Y_h and Y_c) say so. */
    for (uint32_t i = 0; i < nn->n_ops && status == CLEVAL_OK; i++) {
        const nn_op *op = &nn->ops[i];
        if (nn_kind_variadic(op->kind) || op->all_outputs) continue;
        for (uint32_t o = 1; o < op->n_out && status == CLEVAL_OK; o++) {
            const nn_value *v = op->out[o] >= 0 ? &nn->values[op->out[o]] : NULL;
            if (v && (v->uses || v->is_output))
                status = nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                                    "output %u ('%s') is not supported; only the first output "
                                    "is computed",
                                    o, v->name);
        }
    }
    name_map_free(&names);
    return status;
}

cleval_status nn_check_attrs(cleval_nn *nn, const nn_op *op, const cleval_onnx_node *node,
                             const char *const *known)
{
    for (uint32_t i = 0; i < node->n_attrs; i++) {
        const char *name = node->attrs[i].name;
        bool ok = false;
        for (const char *const *k = known; k && *k && !ok; k++)
            ok = strcmp(*k, name) == 0;
        if (!ok)
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "attribute %s is not supported",
                              name);
    }
    return CLEVAL_OK;
}

/* The onnx getters name node and attribute; the path is added here. */
static cleval_status with_path(cleval_nn *nn, cleval_status status)
{
    if (status == CLEVAL_OK) return status;
    char message[1024];
    snprintf(message, sizeof message, "%s", cleval_last_error());
    return cleval_fail(status, "%s: %s", nn->path, message);
}

cleval_status nn_attr_int(cleval_nn *nn, const cleval_onnx_node *node, const char *name,
                          int64_t fallback, int64_t *value)
{
    return with_path(nn, cleval_onnx_attr_int(node, name, fallback, value));
}

cleval_status nn_attr_bool(cleval_nn *nn, const nn_op *op, const cleval_onnx_node *node,
                           const char *name, bool fallback, bool *value)
{
    int64_t v;
    cleval_status status = nn_attr_int(nn, node, name, fallback ? 1 : 0, &v);
    if (status != CLEVAL_OK) return status;
    if (v != 0 && v != 1)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "attribute %s=%lld is not a boolean (0 or 1)",
                          name, (long long)v);
    *value = v == 1;
    return CLEVAL_OK;
}

cleval_status nn_attr_float(cleval_nn *nn, const cleval_onnx_node *node, const char *name,
                            float fallback, float *value)
{
    return with_path(nn, cleval_onnx_attr_float(node, name, fallback, value));
}

cleval_status nn_attr_string(cleval_nn *nn, const cleval_onnx_node *node, const char *name,
                             const char *fallback, const char **value)
{
    return with_path(nn, cleval_onnx_attr_string(node, name, fallback, value));
}

cleval_status nn_attr_ints(cleval_nn *nn, const cleval_onnx_node *node, const char *name,
                           const int64_t **values, uint32_t *count)
{
    return with_path(nn, cleval_onnx_attr_ints(node, name, values, count));
}
