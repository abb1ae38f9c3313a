/* The graph pass that recognises LayerNorm as torch exports it below opset 17:
 *
 *   a = ReduceMean(x, trailing axes)   d = Sub(x, a)        p = Pow(d, 2)
 *   v = ReduceMean(p, the same axes)   e = Add(v, eps)      s = Sqrt(e)
 *   q = Div(d, s)                      [m = Mul(q, gamma)   [y = Add(m, beta)]]
 *
 * and runs it as one LayerNormalization (kernels/reduce.cl: one pass over each row instead of
 * nine kernels and eight intermediate tensors). It fuses only the exact pattern: both means
 * over the same trailing axes with keepdims, eps, gamma and beta constants that cannot widen
 * the result (one value, or the normalised axes themselves), and every intermediate value
 * read by the pattern alone and not a graph output; anything else stays as it is. */
#include "nn_internal.h"

#include <stdlib.h>

/* The single op that reads v (once), or -1 when v is a graph output or read elsewhere too. */
int nn_sole_reader(const cleval_nn *nn, int v)
{
    if (v < 0 || nn->values[v].is_output || nn->values[v].uses != 1) return -1;
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        const nn_op *op = &nn->ops[i];
        if (op->dead) continue;
        for (uint32_t j = 0; j < op->n_in; j++)
            if (op->in[j] == v) return (int)i;
    }
    return -1;
}

/* The sole reader of v when it is an op of `kind` that reads v as input `slot` (-1: either of
 * two inputs); NULL otherwise. */
nn_op *nn_reader_of_kind(cleval_nn *nn, int v, const nn_op_kind *kind, int slot)
{
    int r = nn_sole_reader(nn, v);
    if (r < 0 || nn->ops[r].kind != kind) return NULL;
    nn_op *op = &nn->ops[r];
    bool at = slot >= 0 ? op->in[slot] == v : (op->in[0] == v || op->in[1] == v);
    return at ? op : NULL;
}

/* A binary op's operand other than v. */
int nn_other_operand(const nn_op *op, int v)
{
    return op->in[0] == v ? op->in[1] : op->in[0];
}

bool nn_is_float_const(const cleval_nn *nn, int v)
{
    return v >= 0 && nn->values[v].kind == NN_VALUE_CONST && nn->values[v].f32;
}

/* The number k of trailing axes a ReduceMean averages over with keepdims (0: it does not, or
 * its axes are not the last ones of x, of rank `rank`, UINT32_MAX when unknown). */
static uint32_t trailing_mean_axes(const nn_op *op, uint32_t rank)
{
    const nn_reduce_params *p = &op->p.reduce;
    if (op->kind != &nn_kind_reducemean || p->op != NN_REDUCE_MEAN || !p->keepdims ||
        p->n_axes == 0)
        return 0;
    uint32_t from_end = 0; /* bit j: axis -1 - j */
    for (uint32_t i = 0; i < p->n_axes; i++) {
        int64_t a = p->axes[i];
        if (a >= 0) {
            if (rank == UINT32_MAX || a >= (int64_t)rank) return 0;
            a -= rank;
        }
        if (a < -NN_MAX_RANK) return 0;
        from_end |= 1u << (-1 - a);
    }
    return from_end == (1u << p->n_axes) - 1 ? p->n_axes : 0;
}

/* gamma or beta fits the fused op: it cannot make the result wider than x, so the unfused
 * graph computes the same shape (one value, or exactly the k normalised axes). */
static bool affine_fits(const cleval_nn *nn, int v, const nn_value *x, uint32_t k)
{
    const nn_value *c = &nn->values[v];
    if (c->shape.rank > k) return false;
    if (c->count == 1) return true;
    bool known = nn->shapes_valid && x->shape.rank != UINT32_MAX && x->shape.rank >= k;
    for (uint32_t j = 0; j < c->shape.rank; j++) {
        if (c->shape.d[j] == 1) return false;
        if (known && c->shape.d[j] != x->shape.d[x->shape.rank - c->shape.rank + j]) return false;
    }
    return true;
}

/* The matched chain: ops[0..n) fused into the ReduceMean `head`. */
typedef struct ln_match {
    nn_op *ops[8]; /* Sub, Pow, ReduceMean, Add, Sqrt, Div, [Mul, [Add]] */
    uint32_t n;
    int x, out, gamma, beta, eps;
    uint32_t k;
    float epsilon;
} ln_match;

static bool plain_binary(const nn_op *op)
{
    return op && !op->p.ew.legacy;
}

/* The Mul(gamma) and Add(beta) after the normalisation, when present. */
static void match_affine(cleval_nn *nn, ln_match *m)
{
    const nn_value *x = &nn->values[m->x];
    nn_op *mul = nn_reader_of_kind(nn, m->out, &nn_kind_mul, -1);
    if (!plain_binary(mul) || !nn_is_float_const(nn, nn_other_operand(mul, m->out)) ||
        !affine_fits(nn, nn_other_operand(mul, m->out), x, m->k))
        return;
    m->gamma = nn_other_operand(mul, m->out);
    m->ops[m->n++] = mul;
    m->out = mul->out[0];
    nn_op *add = nn_reader_of_kind(nn, m->out, &nn_kind_add, -1);
    if (!plain_binary(add) || !nn_is_float_const(nn, nn_other_operand(add, m->out)) ||
        !affine_fits(nn, nn_other_operand(add, m->out), x, m->k))
        return;
    m->beta = nn_other_operand(add, m->out);
    m->ops[m->n++] = add;
    m->out = add->out[0];
}

static bool match_layernorm(cleval_nn *nn, nn_op *head, ln_match *m)
{
    m->n = 0;
    m->x = head->in[0];
    m->gamma = m->beta = -1;
    const nn_value *x = &nn->values[m->x];
    uint32_t rank = nn->shapes_valid ? x->shape.rank : UINT32_MAX;
    if (!(m->k = trailing_mean_axes(head, rank))) return false;
    nn_op *sub = nn_reader_of_kind(nn, head->out[0], &nn_kind_sub, 1);
    if (!plain_binary(sub) || sub->in[0] != m->x) return false;
    int d = sub->out[0];
    int pow_at = -1;
    for (uint32_t i = 0; i < nn->n_ops && pow_at < 0; i++)
        if (!nn->ops[i].dead && nn->ops[i].kind == &nn_kind_pow && nn->ops[i].in[0] == d)
            pow_at = (int)i;
    if (pow_at < 0) return false;
    nn_op *pow = &nn->ops[pow_at];
    if (pow->p.ew.op != NN_POW_SCALAR || pow->p.ew.lo != 2.0f) return false;
    nn_op *var = nn_reader_of_kind(nn, pow->out[0], &nn_kind_reducemean, 0);
    if (!var || trailing_mean_axes(var, rank) != m->k) return false;
    nn_op *add = nn_reader_of_kind(nn, var->out[0], &nn_kind_add, -1);
    if (!plain_binary(add)) return false;
    m->eps = nn_other_operand(add, var->out[0]);
    if (!nn_is_float_const(nn, m->eps) || nn->values[m->eps].count != 1 ||
        nn->values[m->eps].shape.rank > m->k)
        return false;
    nn_op *sqrt_op = nn_reader_of_kind(nn, add->out[0], &nn_kind_sqrt, 0);
    if (!sqrt_op) return false;
    nn_op *div = nn_reader_of_kind(nn, sqrt_op->out[0], &nn_kind_div, 1);
    /* d is read by the Pow and the Div, and by nothing else (uses counts every read). */
    if (!plain_binary(div) || div->in[0] != d || nn->values[d].is_output || nn->values[d].uses != 2)
        return false;
    m->epsilon = nn->values[m->eps].f32[0];
    nn_op *chain[] = {sub, pow, var, add, sqrt_op, div};
    for (uint32_t i = 0; i < 6; i++)
        m->ops[m->n++] = chain[i];
    m->out = div->out[0];
    match_affine(nn, m);
    return true;
}

/* A constant 1 for a pattern without Mul(gamma); its index or -1 (NOMEM recorded). */
static int unit_scale(cleval_nn *nn, const nn_op *head)
{
    float *one = malloc(sizeof *one);
    if (!one) {
        cleval_fail(CLEVAL_ERR_NOMEM, "out of memory optimising");
        return -1;
    }
    *one = 1.0f;
    char name[300];
    snprintf(name, sizeof name, "%s/unit_scale", head->name);
    nn_shape scalar = {0, {0}};
    return nn_add_const(nn, name, &scalar, one);
}

/* Drops op's reads of constants other than gamma and beta (axes, the exponent, eps). */
static void release_constants(cleval_nn *nn, const nn_op *op, const ln_match *m)
{
    for (uint32_t j = 0; j < op->n_in; j++) {
        int v = op->in[j];
        if (v >= 0 && v != m->gamma && v != m->beta && nn->values[v].kind == NN_VALUE_CONST)
            nn->values[v].uses--;
    }
}

/* head (the first ReduceMean) becomes the LayerNormalization; the rest of the chain dies. */
static cleval_status rewrite(cleval_nn *nn, nn_op *head, const ln_match *m)
{
    int gamma = m->gamma;
    if (gamma < 0) {
        if ((gamma = unit_scale(nn, head)) < 0) return CLEVAL_ERR_NOMEM;
        nn->values[gamma].uses = 1;
    }
    nn->values[m->x].uses--; /* read by the head and Sub, now once */
    release_constants(nn, head, m);
    for (uint32_t i = 0; i < m->n; i++)
        release_constants(nn, m->ops[i], m);
    nn->values[head->out[0]].uses = 0;
    for (uint32_t i = 0; i < m->n; i++) {
        if (m->ops[i]->out[0] != m->out) nn->values[m->ops[i]->out[0]].uses = 0;
        m->ops[i]->dead = true;
    }
    int index = (int)(head - nn->ops);
    head->kind = &nn_kind_layernorm;
    head->in[1] = gamma;
    head->in[2] = m->beta;
    head->n_in = 3;
    head->out[0] = m->out;
    nn->values[m->out].producer = index;
    nn_reduce_params *p = &head->p.reduce;
    p->n_axes = 1;
    p->axes[0] = -(int64_t)m->k;
    p->epsilon = m->epsilon;
    snprintf(head->label, sizeof head->label, "LayerNormalization");
    return CLEVAL_OK;
}

cleval_status nn_fuse_layernorm(cleval_nn *nn)
{
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        ln_match m;
        if (op->dead || op->kind != &nn_kind_reducemean || !match_layernorm(nn, op, &m)) continue;
        cleval_status status = rewrite(nn, op, &m);
        if (status != CLEVAL_OK) return status;
    }
    return CLEVAL_OK;
}
