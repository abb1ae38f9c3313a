/* The graph pass that recognises the exact GELU as torch exports it below opset 20:
 *
 *   d = Div(x, sqrt 2)   e = Erf(d)   a = Add(e, 1)   then one of
 *   y = Mul(Mul(x, a), 0.5)           (nn.GELU, F.gelu)
 *   y = Mul(Mul(x, 0.5), a)           (x * 0.5 * (1 + erf(x / sqrt 2)), as BERT's code writes it)
 *   y = Mul(x, Mul(a, 0.5))
 *
 * (Mul(x, 1 / sqrt 2) for the Div, any operand order of the Adds and Muls) and runs it as one
 * Gelu op (kernels/elementwise.cl, unary_runs on the CPU family): one pass over the tensor
 * instead of five and four intermediate tensors, the largest of ConvNeXt's and a transformer's
 * feed-forward blocks. Only that pattern: the constants single float values equal to those
 * above in float, of rank 0 (or 1 where x is known to have axes: they cannot widen the
 * result), every intermediate value read by the pattern alone and not a graph output. The fused op
 * rounds differently: Gelu computes x / sqrt 2, erf and the products in one go (within a few float
 * ulps of the exact GELU, tests/test_nn_math.c), where the chain rounds each step. */
#include "nn_internal.h"

#include <math.h>

/* v is a float constant holding one value of rank 0 or 1, equal to `want` in float. */
static bool const_equals(const cleval_nn *nn, int v, float want)
{
    if (!nn_is_float_const(nn, v)) return false;
    const nn_value *c = &nn->values[v];
    return c->count == 1 && c->shape.rank <= 1 && c->f32[0] == want;
}

/* The binary op `op` reads v and, as its other operand, a constant equal to `want`. */
static bool with_const(const cleval_nn *nn, const nn_op *op, int v, float want)
{
    return op && !op->p.ew.legacy && const_equals(nn, nn_other_operand(op, v), want);
}

/* The chain from Erf `erf` to the output value: its ops (Div or Mul, Add, the two Muls), x and
 * the output, or false when it is not the pattern. */
typedef struct gelu_match {
    nn_op *ops[5];
    int x, out;
} gelu_match;

static bool match_scaling(cleval_nn *nn, const nn_op *erf, gelu_match *m)
{
    int d = erf->in[0];
    if (d < 0 || nn->values[d].producer < 0 || nn_sole_reader(nn, d) != (int)(erf - nn->ops))
        return false;
    nn_op *scale = &nn->ops[nn->values[d].producer];
    if (scale->dead || (scale->kind != &nn_kind_div && scale->kind != &nn_kind_mul) ||
        scale->p.ew.legacy)
        return false;
    if (scale->kind == &nn_kind_div && const_equals(nn, scale->in[1], sqrtf(2.0f)))
        m->x = scale->in[0];
    else if (scale->kind == &nn_kind_mul &&
             with_const(nn, scale, scale->in[0], (float)(1.0 / sqrt(2.0))))
        m->x = scale->in[0];
    else if (scale->kind == &nn_kind_mul &&
             with_const(nn, scale, scale->in[1], (float)(1.0 / sqrt(2.0))))
        m->x = scale->in[1];
    else
        return false;
    m->ops[0] = scale;
    return m->x >= 0 && m->x != d;
}

/* After a = 1 + erf: the two Muls, in any of the three forms. */
static bool match_products(cleval_nn *nn, int a, gelu_match *m)
{
    nn_op *first = nn_reader_of_kind(nn, a, &nn_kind_mul, -1);
    if (!first || first->p.ew.legacy) return false;
    int other = nn_other_operand(first, a);
    if (other == m->x) { /* Mul(x, a), then Mul(., 0.5) */
        nn_op *half = nn_reader_of_kind(nn, first->out[0], &nn_kind_mul, -1);
        if (!with_const(nn, half, first->out[0], 0.5f)) return false;
        m->ops[3] = first;
        m->ops[4] = half;
        m->out = half->out[0];
        return true;
    }
    if (const_equals(nn, other, 0.5f)) { /* Mul(a, 0.5), then Mul(x, .) */
        nn_op *last = nn_reader_of_kind(nn, first->out[0], &nn_kind_mul, -1);
        if (!last || last->p.ew.legacy || nn_other_operand(last, first->out[0]) != m->x)
            return false;
        m->ops[3] = first;
        m->ops[4] = last;
        m->out = last->out[0];
        return true;
    }
    /* Mul(x, 0.5) computed before, read only here: Mul(that, a) */
    if (other < 0 || nn->values[other].producer < 0) return false;
    nn_op *half = &nn->ops[nn->values[other].producer];
    if (half->dead || half->kind != &nn_kind_mul ||
        nn_sole_reader(nn, other) != (int)(first - nn->ops) ||
        (half->in[0] != m->x && half->in[1] != m->x) || !with_const(nn, half, m->x, 0.5f))
        return false;
    m->ops[3] = half;
    m->ops[4] = first;
    m->out = first->out[0];
    return true;
}

/* A constant of shape [1] would widen a rank-0 x: those only where x has axes for sure. */
static bool constants_fit(const cleval_nn *nn, const gelu_match *m)
{
    const nn_value *x = &nn->values[m->x];
    bool has_axes = nn->shapes_valid && x->shape.rank != UINT32_MAX && x->shape.rank >= 1;
    for (uint32_t i = 0; i < 5; i++)
        for (uint32_t j = 0; j < m->ops[i]->n_in; j++) {
            int v = m->ops[i]->in[j];
            if (v >= 0 && nn->values[v].kind == NN_VALUE_CONST && nn->values[v].shape.rank > 0 &&
                !has_axes)
                return false;
        }
    return true;
}

static bool match_gelu(cleval_nn *nn, nn_op *erf, gelu_match *m)
{
    if (erf->p.ew.op != NN_ERF || !match_scaling(nn, erf, m)) return false;
    nn_op *add = nn_reader_of_kind(nn, erf->out[0], &nn_kind_add, -1);
    if (!with_const(nn, add, erf->out[0], 1.0f)) return false;
    m->ops[1] = erf;
    m->ops[2] = add;
    return match_products(nn, add->out[0], m) && constants_fit(nn, m);
}

/* The last op of the chain becomes the Gelu (x is computed before the chain's first op, the
 * output's readers run after its last); the others die with their values. */
static void rewrite(cleval_nn *nn, const gelu_match *m)
{
    nn_op *gelu = m->ops[4];
    for (uint32_t i = 0; i < 5; i++) {
        nn_op *op = m->ops[i];
        for (uint32_t j = 0; j < op->n_in; j++) {
            int v = op->in[j];
            if (v >= 0 && nn->values[v].kind == NN_VALUE_CONST) nn->values[v].uses--;
        }
        if (op != gelu) {
            nn->values[op->out[0]].uses = 0;
            op->dead = true;
        }
    }
    nn->values[m->x].uses--; /* read by the scaling and a product, now by the Gelu alone */
    gelu->kind = &nn_kind_gelu;
    gelu->in[0] = m->x;
    gelu->in[1] = -1;
    gelu->n_in = 1;
    nn_elementwise_params *p = &gelu->p.ew;
    *p = (nn_elementwise_params){.op = NN_GELU};
    snprintf(gelu->label, sizeof gelu->label, "Gelu");
}

cleval_status nn_fuse_gelu(cleval_nn *nn)
{
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        gelu_match m;
        if (!op->dead && op->kind == &nn_kind_erf && match_gelu(nn, op, &m)) rewrite(nn, &m);
    }
    return CLEVAL_OK;
}
