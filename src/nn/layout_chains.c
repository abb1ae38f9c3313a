/* Channels-last through elementwise ops (the layout pass, passes.c choose_layouts, CPU family).
 *
 * A value is stored channels-last only when every op that reads or writes it handles that
 * layout. Convolutions do (through strides); an elementwise op does too when its result is
 * element i of its inputs' element i: a unary op (Relu, Clip, Sigmoid, Tanh) or a binary one
 * (Add, Sub, Mul, Div) whose two inputs have exactly the output's shape, so no broadcast walks
 * axes in NCHW order. Such ops tie their inputs and output to one layout: the values they
 * connect form a group (union-find), and a group goes channels-last together when all its
 * values are made by convolutions or by the group's own ops, and read only by convolutions (as
 * their data input) or by the group's own ops. ResNet's residual Add (+ Relu) is such a group:
 * every 3x3 convolution then reads channels-last, the input the Winograd path needs. */
#include "nn_internal.h"

#include <stdlib.h>

static bool same_shape(const nn_shape *a, const nn_shape *b)
{
    if (a->rank != b->rank) return false;
    for (uint32_t i = 0; i < a->rank; i++)
        if (a->d[i] != b->d[i]) return false;
    return true;
}

/* How many leading inputs of `op` are tied to its output's layout: 1 or 2 when it maps element
 * i to element i whatever the (common) layout (see above), else 0. */
static uint32_t layout_blind(const cleval_nn *nn, const nn_op *op)
{
    if (op->dead || op->n_out != 1 || op->out[0] < 0 || op->n_in < 1 || op->in[0] < 0) return 0;
    const nn_value *y = &nn->values[op->out[0]];
    if (y->shape.rank < 3 || y->dtype != NN_FLOAT) return 0;
    uint32_t operands = 0;
    if (op->kind == &nn_kind_relu || op->kind == &nn_kind_clip || op->kind == &nn_kind_sigmoid ||
        op->kind == &nn_kind_tanh)
        operands = 1;
    else if ((op->kind == &nn_kind_add || op->kind == &nn_kind_sub || op->kind == &nn_kind_mul ||
              op->kind == &nn_kind_div) &&
             op->n_in == 2 && !op->p.ew.legacy)
        operands = 2;
    for (uint32_t j = 0; j < operands; j++) {
        int v = op->in[j];
        if (v < 0 || nn->values[v].kind != NN_VALUE_ACT ||
            !same_shape(&nn->values[v].shape, &y->shape))
            return 0;
    }
    return operands;
}

static uint32_t find(uint32_t *parent, uint32_t v)
{
    while (parent[v] != v)
        v = parent[v] = parent[parent[v]];
    return v;
}

cleval_status nn_layout_through_elementwise(cleval_nn *nn,
                                            bool (*writes_any)(const cleval_nn *, const nn_op *))
{
    uint32_t nv = nn->n_values;
    uint32_t *parent = malloc((nv + 1) * sizeof *parent);
    uint32_t *reads = calloc(nv + 1, sizeof *reads), *fine = calloc(nv + 1, sizeof *fine);
    bool *bad = calloc(nv + 1, sizeof *bad), *grouped = calloc(nv + 1, sizeof *grouped);
    if (!parent || !reads || !fine || !bad || !grouped) {
        free(parent);
        free(reads);
        free(fine);
        free(bad);
        free(grouped);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory optimising");
    }
    for (uint32_t v = 0; v < nv; v++)
        parent[v] = v;
    /* Groups, and per value its reads that allow channels-last (`fine`) among all (`reads`). */
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        const nn_op *op = &nn->ops[i];
        if (op->dead) continue;
        uint32_t operands = layout_blind(nn, op);
        for (uint32_t j = 0; j < op->n_in; j++) {
            int v = op->in[j];
            if (v < 0) continue;
            reads[v]++;
            if (j < operands || (j == 0 && writes_any(nn, op))) fine[v]++;
        }
        if (!operands) continue;
        grouped[op->out[0]] = true;
        for (uint32_t j = 0; j < operands; j++) {
            grouped[op->in[j]] = true;
            uint32_t a = find(parent, (uint32_t)op->in[j]), b = find(parent, (uint32_t)op->out[0]);
            parent[a] = b;
        }
    }
    /* A group is spoilt by any value made elsewhere, read elsewhere, or a graph output. */
    for (uint32_t v = 0; v < nv; v++) {
        if (!grouped[v]) continue;
        const nn_value *val = &nn->values[v];
        int pr = val->producer;
        bool made_here = pr >= 0 && !nn->ops[pr].dead && nn->ops[pr].out[0] == (int)v &&
                         (writes_any(nn, &nn->ops[pr]) || layout_blind(nn, &nn->ops[pr]));
        if (!made_here || val->is_output || val->alias >= 0 || fine[v] != reads[v] ||
            val->uses != reads[v])
            bad[find(parent, v)] = true;
    }
    for (uint32_t v = 0; v < nv; v++)
        if (grouped[v] && !bad[find(parent, v)]) nn->values[v].layout = NN_LAYOUT_NHWC;
    free(parent);
    free(reads);
    free(fine);
    free(bad);
    free(grouped);
    return CLEVAL_OK;
}
