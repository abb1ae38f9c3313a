/* Graph rewrites between parsing and device preparation, each a linear sweep:
 *   - Identity and Dropout removed (consumers read their input directly);
 *   - torch's decomposed LayerNorm replaced by one LayerNormalization (fuse_layernorm.c);
 *   - input scaling (Add/Sub/Mul/Div by per-channel constants) folded into the Conv after it;
 *   - BatchNormalization folded into the Conv before it when that Conv's output has no other
 *     consumer (W' = W * s, B' = B * s + t), or into the Gemm before it (its columns);
 *   - a constant per-column Add after a MatMul by a constant matrix made the product's C;
 *   - Relu / Clip with constant bounds fused into the epilogue of the Conv, Gemm, MatMul or
 *     unfolded BatchNormalization that produces their input, LeakyRelu / HardSwish into that
 *     of a Conv, Gemm or MatMul;
 *   - a 2x2 stride-2 MaxPool fused into the CPU-style Conv before it;
 *   - elementwise chains as one binary kernel: a Sigmoid or HardSigmoid whose only reader is
 *     a Mul computed inside that Mul (squeeze-excitation's x * sigmoid(s), HardSwish written
 *     x * hardsigmoid(x)), SiLU (x * sigmoid(x)) into the epilogue of the Conv, Gemm or
 *     MatMul that computes x, and a Relu / Clip after an Add, Sub, Mul or Div (a residual
 *     block's relu(x + skip)) applied by it;
 *   - channels-last storage for Conv outputs read only by CPU-style Convs, or through a
 *     Flatten by a Gemm/MatMul whose constant weights are then permuted to match;
 *   - ops whose outputs nobody reads dropped.
 * A fusion needs the intermediate value to have exactly one consumer and not be a graph
 * output, so every value the user can see is still computed exactly. */
#include "nn_internal.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* For every value: the op that reads it (the last one seen) and how many ops read it. */
typedef struct consumers {
    int *op;
    uint32_t *count;
} consumers;

static cleval_status scan_consumers(const cleval_nn *nn, consumers *c)
{
    free(c->op);
    free(c->count);
    c->op = malloc((nn->n_values + 1) * sizeof *c->op);
    c->count = calloc(nn->n_values + 1, sizeof *c->count);
    if (!c->op || !c->count) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory optimising");
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        const nn_op *op = &nn->ops[i];
        if (op->dead) continue;
        for (uint32_t j = 0; j < op->n_in; j++)
            if (op->in[j] >= 0) {
                c->op[op->in[j]] = (int)i;
                c->count[op->in[j]]++;
            }
    }
    return CLEVAL_OK;
}

/* The single consumer of v, or NULL when v is a graph output or read by several ops. */
static nn_op *only_consumer(cleval_nn *nn, const consumers *c, int v)
{
    if (v < 0 || nn->values[v].is_output || c->count[v] != 1 || nn->values[v].uses != 1)
        return NULL;
    return &nn->ops[c->op[v]];
}

static void append_label(nn_op *op, const char *what)
{
    size_t n = strlen(op->label);
    snprintf(op->label + n, sizeof op->label - n, "+%s", what);
}

/* `producer` takes over `absorbed`'s output; `absorbed` disappears. */
static void absorb(cleval_nn *nn, nn_op *producer, nn_op *absorbed)
{
    int old = producer->out[0];
    producer->out[0] = absorbed->out[0];
    nn->values[producer->out[0]].producer = (int)(producer - nn->ops);
    nn->values[old].uses = 0;
    absorbed->dead = true;
    append_label(producer, absorbed->kind->op_type);
}

static cleval_status remove_identities(cleval_nn *nn)
{
    int *target = malloc((nn->n_values + 1) * sizeof *target);
    if (!target) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory optimising");
    for (uint32_t v = 0; v < nn->n_values; v++)
        target[v] = (int)v;
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead || (op->kind != &nn_kind_identity && op->kind != &nn_kind_dropout)) continue;
        /* Inputs were remapped in order, so chains resolve. */
        int in = target[op->in[0]];
        op->in[0] = in;
        if (nn->values[op->out[0]].is_output) continue; /* stays, as a free view */
        target[op->out[0]] = in;
        nn->values[in].uses += nn->values[op->out[0]].uses;
        nn->values[in].uses--;
        nn->values[op->out[0]].uses = 0;
        op->dead = true;
    }
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead) continue;
        for (uint32_t j = 0; j < op->n_in; j++)
            if (op->in[j] >= 0) op->in[j] = target[op->in[j]];
    }
    free(target);
    return CLEVAL_OK;
}

void nn_batchnorm_coefficients(const float *scale, const float *bias, const float *mean,
                               const float *var, float epsilon, uint64_t c, float *s, float *t);

/* The BatchNormalization bn's per-channel scale s and shift t over n channels, and room for
 * the folded weights (w_count) and bias (n). Out of memory: all freed, the failure set. */
static cleval_status fold_buffers(cleval_nn *nn, nn_op *bn, uint64_t n, uint64_t w_count, float **s,
                                  float **t, float **w, float **b)
{
    *s = malloc(n * sizeof **s);
    *t = malloc(n * sizeof **t);
    *w = malloc(w_count * sizeof **w);
    *b = malloc(n * sizeof **b);
    if (!*s || !*t || !*w || !*b) {
        free(*s);
        free(*t);
        free(*w);
        free(*b);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory folding BatchNormalization");
    }
    nn_batchnorm_coefficients(nn_in(nn, bn, 1)->f32, nn_in(nn, bn, 2)->f32, nn_in(nn, bn, 3)->f32,
                              nn_in(nn, bn, 4)->f32, bn->p.ew.epsilon, n, *s, *t);
    return CLEVAL_OK;
}

/* Gives op the folded weights w (shape ws, input 1) and bias b (n values, input 2) in place of
 * its own, and absorbs the BatchNormalization bn whose statistics they carry. Takes w and b. */
static cleval_status adopt_folded(cleval_nn *nn, nn_op *op, nn_op *bn, float *w, const nn_shape *ws,
                                  float *b, int64_t n)
{
    char name[300];
    snprintf(name, sizeof name, "%s/folded_W", op->name);
    int wi = nn_add_const(nn, name, ws, w);
    nn_shape bs = {1, {n}};
    snprintf(name, sizeof name, "%s/folded_B", op->name);
    int bi = wi < 0 ? -1 : nn_add_const(nn, name, &bs, b);
    if (wi < 0) free(b);
    if (bi < 0) return CLEVAL_ERR_NOMEM;
    nn->values[op->in[1]].uses--;
    if (op->n_in > 2 && op->in[2] >= 0) nn->values[op->in[2]].uses--;
    for (uint32_t i = 1; i < 5; i++)
        nn->values[bn->in[i]].uses--;
    op->in[1] = wi;
    op->in[2] = bi;
    op->n_in = 3;
    nn->values[wi].uses = nn->values[bi].uses = 1;
    absorb(nn, op, bn);
    return CLEVAL_OK;
}

static cleval_status fold_batchnorm(cleval_nn *nn, nn_op *conv, nn_op *bn)
{
    nn_conv_params *p = &conv->p.conv;
    const nn_value *w = &nn->values[p->weight];
    uint64_t co = (uint64_t)w->shape.d[0], per = w->count / co;
    if (nn_in(nn, bn, 1)->count != co) return CLEVAL_OK; /* infer will name the mismatch */
    float *s, *t, *nw, *nb;
    cleval_status status = fold_buffers(nn, bn, co, w->count, &s, &t, &nw, &nb);
    if (status != CLEVAL_OK) return status;
    const float *old_b = p->bias >= 0 ? nn->values[p->bias].f32 : NULL;
    for (uint64_t c = 0; c < co; c++) {
        for (uint64_t j = 0; j < per; j++)
            nw[c * per + j] = w->f32[c * per + j] * s[c];
        nb[c] = (float)((old_b ? (double)old_b[c] : 0.0) * s[c] + t[c]);
    }
    free(s);
    free(t);
    nn_shape ws = w->shape;
    status = adopt_folded(nn, conv, bn, nw, &ws, nb, (int64_t)co);
    if (status != CLEVAL_OK) return status;
    p->weight = conv->in[1];
    p->bias = conv->in[2];
    return CLEVAL_OK;
}

/* A Gemm y = alpha A op(B) + beta C followed by BatchNormalization over its columns (a Linear
 * then BatchNorm1d, as tabular MLPs have it): with s, t the normalisation's per-column scale and
 * shift, y s + t = alpha A op(B s) + (beta C s + t), so B's columns are scaled and C becomes the
 * new per-column bias (beta 1). Only when B is a constant and C is absent, a scalar or one value
 * per column; otherwise the normalisation stays a pass of its own. */
static cleval_status fold_batchnorm_into_gemm(cleval_nn *nn, nn_op *gemm, nn_op *bn)
{
    nn_gemm_params *p = &gemm->p.gemm;
    const nn_value *b = nn_in(nn, gemm, 1);
    const nn_value *c = nn_has_in(gemm, 2) ? nn_in(nn, gemm, 2) : NULL;
    if (p->matmul || b->kind != NN_VALUE_CONST || !b->f32 || b->shape.rank != 2) return CLEVAL_OK;
    int64_t n = p->trans_b ? b->shape.d[0] : b->shape.d[1], k = b->count / n;
    if (nn_in(nn, bn, 1)->count != (uint64_t)n) return CLEVAL_OK; /* infer will name it */
    if (c && (c->kind != NN_VALUE_CONST || !c->f32 || (c->count != 1 && c->count != (uint64_t)n) ||
              (c->shape.rank == 2 && c->shape.d[0] != 1)))
        return CLEVAL_OK;
    float *s, *t, *nb, *nc;
    cleval_status status = fold_buffers(nn, bn, (uint64_t)n, b->count, &s, &t, &nb, &nc);
    if (status != CLEVAL_OK) return status;
    for (int64_t j = 0; j < n; j++) {
        for (int64_t i = 0; i < k; i++) {
            int64_t at = p->trans_b ? j * k + i : i * n + j;
            nb[at] = b->f32[at] * s[j];
        }
        double cj = c ? (double)c->f32[c->count == 1 ? 0 : j] : 0.0;
        nc[j] = (float)((double)p->beta * cj * s[j] + t[j]);
    }
    free(s);
    free(t);
    nn_shape bs = b->shape;
    p->beta = 1.0f;
    return adopt_folded(nn, gemm, bn, nb, &bs, nc, n);
}

/* A MatMul by a constant matrix whose only reader adds a constant vector of one value per
 * column (PyTorch's Linear on a tensor of rank 3 or more exports as MatMul then Add, as in
 * every Transformer and ConvNeXt block): the vector becomes the product's C (beta 1), added
 * by the GEMM's epilogue instead of a pass over the output of its own. A 1-D vector of N
 * broadcasts to any rank of output in the same way, so the result is the same. */
static void fuse_matmul_bias(cleval_nn *nn, const consumers *c)
{
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead || op->kind != &nn_kind_matmul || op->n_in != 2) continue;
        const nn_value *b = nn_in(nn, op, 1);
        nn_op *add = only_consumer(nn, c, op->out[0]);
        if (b->kind != NN_VALUE_CONST || b->shape.rank != 2 || !add || add->dead ||
            add->kind != &nn_kind_add || add->p.ew.legacy || add->n_in != 2)
            continue;
        int bias = add->in[0] == op->out[0] ? add->in[1] : add->in[0];
        const nn_value *v = bias >= 0 ? &nn->values[bias] : NULL;
        if (!v || v->kind != NN_VALUE_CONST || !v->f32 || v->shape.rank != 1 ||
            v->shape.d[0] != b->shape.d[1])
            continue;
        op->in[2] = bias;
        op->n_in = 3;
        op->p.gemm.beta = 1.0f;
        absorb(nn, op, add);
    }
}

/* A binary op with one float constant operand that maps its other operand x affinely per
 * channel (axis 1 of a rank-`rank` tensor with `channels` channels): y = a[c] x + b[c]. On
 * success *x_in is the index of x among the op's inputs and a, b are updated (composed). */
static bool affine_step(cleval_nn *nn, const nn_op *op, uint32_t rank, int64_t channels, double *a,
                        double *b, uint32_t *x_in)
{
    if (op->dead || op->p.ew.legacy || op->n_in != 2 || op->in[0] < 0 || op->in[1] < 0)
        return false;
    bool first_const = nn->values[op->in[0]].kind == NN_VALUE_CONST;
    bool second_const = nn->values[op->in[1]].kind == NN_VALUE_CONST;
    if (first_const == second_const) return false;
    uint32_t k_in = first_const ? 0 : 1;
    const nn_value *k = &nn->values[op->in[k_in]];
    if (!k->f32 || k->shape.rank > rank) return false;
    /* Right-aligned to `rank`, the constant may vary along axis 1 only. */
    bool per_channel = false;
    for (uint32_t i = 0; i < k->shape.rank; i++) {
        uint32_t axis = rank - k->shape.rank + i;
        int64_t d = k->shape.d[i];
        if (d == 1) continue;
        if (axis != 1 || d != channels) return false;
        per_channel = true;
    }
    int op_code = op->p.ew.op;
    if (op_code == NN_DIV && first_const) return false; /* k / x is not affine */
    for (int64_t c = 0; c < channels; c++) {
        double v = k->f32[per_channel ? c : 0];
        switch (op_code) {
        case NN_ADD: b[c] += v; break;
        case NN_SUB:
            if (first_const) {
                a[c] = -a[c];
                b[c] = v - b[c];
            } else {
                b[c] -= v;
            }
            break;
        case NN_MUL:
            a[c] *= v;
            b[c] *= v;
            break;
        default:
            a[c] /= v;
            b[c] /= v;
            break;
        }
    }
    *x_in = 1 - k_in;
    return true;
}

static bool is_binary(const nn_op *op)
{
    return op->kind == &nn_kind_add || op->kind == &nn_kind_sub || op->kind == &nn_kind_mul ||
           op->kind == &nn_kind_div;
}

/* Composes the affine step of `op` inside the current map (a, b): the chain is applied
 * input-first and walked backwards, so y = A (x op k) + B and the step's (a', b') feed into
 * the current (a, b). False (a, b unchanged) when op is not such a step or memory runs out. */
static bool compose_step(cleval_nn *nn, const nn_op *op, uint32_t rank, int64_t channels, double *a,
                         double *b, uint32_t *x_in)
{
    double *a2 = malloc((size_t)channels * sizeof *a2);
    double *b2 = malloc((size_t)channels * sizeof *b2);
    double *sa = malloc((size_t)channels * sizeof *sa);
    double *sb = malloc((size_t)channels * sizeof *sb);
    bool ok = a2 && b2 && sa && sb;
    if (ok) {
        memcpy(a2, a, (size_t)channels * sizeof *a2);
        memcpy(b2, b, (size_t)channels * sizeof *b2);
        for (int64_t i = 0; i < channels; i++) {
            sa[i] = 1.0;
            sb[i] = 0.0;
        }
        ok = affine_step(nn, op, rank, channels, sa, sb, x_in);
    }
    if (ok)
        for (int64_t i = 0; i < channels; i++) {
            a[i] = a2[i] * sa[i];
            b[i] = a2[i] * sb[i] + b2[i];
        }
    free(a2);
    free(b2);
    free(sa);
    free(sb);
    return ok;
}

/* Walks back from the Conv's input while each step is affine and singly read, composing the
 * steps into (a, b) (identity on entry). Returns the steps' op indices in chain[] (room for
 * every op) and their count; *start is the value the chain begins from. */
static int walk_affine_chain(cleval_nn *nn, const nn_op *conv, const consumers *c, int64_t channels,
                             double *a, double *b, int *chain, int *start)
{
    uint32_t rank = nn->values[conv->p.conv.weight].shape.rank;
    int n = 0;
    *start = conv->in[0];
    for (;;) {
        const nn_value *v = &nn->values[*start];
        if (v->producer < 0 || v->is_output || v->uses != 1 || c->count[*start] != 1) break;
        const nn_op *op = &nn->ops[v->producer];
        if (!is_binary(op)) break;
        /* Per-channel constants need the shapes to rule out broadcasting that widens x. */
        const nn_value *x0 = &nn->values[op->in[0]], *x1 = &nn->values[op->in[1]];
        const nn_value *xv = x0->kind == NN_VALUE_CONST ? x1 : x0;
        const nn_value *kv = x0->kind == NN_VALUE_CONST ? x0 : x1;
        bool shape_ok = kv->count == 1 ||
                        (nn->shapes_valid && xv->shape.rank == rank && xv->shape.d[1] == channels);
        uint32_t x_in;
        if (!shape_ok || !compose_step(nn, op, rank, channels, a, b, &x_in)) break;
        assert((uint32_t)n < nn->n_ops); /* each op at most once: the walk follows producers */
        chain[n++] = v->producer;
        *start = op->in[x_in];
    }
    return n;
}

/* Replaces the Conv's W and B by the folded ones, reads `start` directly and kills the n ops
 * of the chain: W'[co][ci] = W[co][ci] a[ci], B'[co] = B[co] + sum W[co][ci] b[ci]. */
static cleval_status rewrite_conv(cleval_nn *nn, nn_op *conv, const double *a, const double *b,
                                  const int *chain, int n, int start)
{
    nn_conv_params *p = &conv->p.conv;
    const nn_value *w = &nn->values[p->weight];
    int64_t co = w->shape.d[0], cin_g = w->shape.d[1];
    uint64_t per = w->count / (uint64_t)co, window = per / (uint64_t)cin_g;
    float *nw = malloc(w->count * sizeof *nw), *nb = malloc((size_t)co * sizeof *nb);
    if (!nw || !nb) {
        free(nw);
        free(nb);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory optimising");
    }
    const float *old_b = p->bias >= 0 ? nn->values[p->bias].f32 : NULL;
    for (int64_t o = 0; o < co; o++) {
        int64_t g = o / (co / p->group);
        double sum = old_b ? old_b[o] : 0.0;
        for (int64_t ci = 0; ci < cin_g; ci++)
            for (uint64_t k = 0; k < window; k++) {
                uint64_t at = (uint64_t)o * per + (uint64_t)ci * window + k;
                int64_t ch = g * cin_g + ci;
                nw[at] = (float)(w->f32[at] * a[ch]);
                sum += (double)w->f32[at] * b[ch];
            }
        nb[o] = (float)sum;
    }
    nn_shape ws = w->shape, bs = {1, {co}};
    char name[300];
    snprintf(name, sizeof name, "%s/scaled_W", conv->name);
    int wi = nn_add_const(nn, name, &ws, nw);
    snprintf(name, sizeof name, "%s/scaled_B", conv->name);
    int bi = wi < 0 ? -1 : nn_add_const(nn, name, &bs, nb);
    if (wi < 0) free(nb);
    if (bi < 0) return CLEVAL_ERR_NOMEM;
    nn->values[conv->in[1]].uses--;
    if (conv->in[2] >= 0) nn->values[conv->in[2]].uses--;
    for (int i = 0; i < n; i++) {
        nn_op *op = &nn->ops[chain[i]];
        for (uint32_t j = 0; j < op->n_in; j++)
            if (nn->values[op->in[j]].kind == NN_VALUE_CONST) nn->values[op->in[j]].uses--;
        nn->values[op->out[0]].uses = 0;
        op->dead = true;
    }
    conv->in[0] = start;
    conv->in[1] = p->weight = wi;
    conv->in[2] = p->bias = bi;
    conv->n_in = 3;
    nn->values[wi].uses = nn->values[bi].uses = 1;
    char label[64];
    snprintf(label, sizeof label, "%s", conv->label);
    snprintf(conv->label, sizeof conv->label, "Scale+%.57s", label);
    return CLEVAL_OK;
}

/* Folds a chain of Add/Sub/Mul/Div by per-channel constants (input scaling, as torch exports
 * x / 255 and (x - mean) / std) into the Conv that reads its result (rewrite_conv). Only
 * without padding (zeros would have to become -b / a) unless b is 0, and only when every
 * intermediate value has that single reader. Per-channel constants need the input's shape
 * (known when the inputs are static); scalars fold regardless. */
static cleval_status fold_affine_into_conv(cleval_nn *nn, nn_op *conv, const consumers *c)
{
    const nn_conv_params *p = &conv->p.conv;
    const nn_value *w = &nn->values[p->weight];
    int64_t channels = w->shape.d[1] * p->group;
    double *a = malloc((size_t)channels * sizeof *a), *b = malloc((size_t)channels * sizeof *b);
    int *chain = malloc((nn->n_ops + 1) * sizeof *chain);
    if (!a || !b || !chain) {
        free(a);
        free(b);
        free(chain);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory optimising");
    }
    for (int64_t i = 0; i < channels; i++) {
        a[i] = 1.0;
        b[i] = 0.0;
    }
    int start;
    int n = walk_affine_chain(nn, conv, c, channels, a, b, chain, &start);
    bool any_shift = false;
    for (int64_t i = 0; i < channels; i++)
        any_shift = any_shift || b[i] != 0.0;
    bool padded = p->auto_pad == NN_PAD_SAME_UPPER || p->auto_pad == NN_PAD_SAME_LOWER;
    for (uint32_t i = 0; i < p->spatial; i++)
        padded = padded || p->pad_begin[i] || p->pad_end[i];
    cleval_status status = CLEVAL_OK;
    if (n > 0 && !(padded && any_shift)) status = rewrite_conv(nn, conv, a, b, chain, n, start);
    free(a);
    free(b);
    free(chain);
    return status;
}

static bool is_clamp(const nn_op *op)
{
    return op->kind == &nn_kind_relu || op->kind == &nn_kind_clip;
}

/* LeakyRelu and HardSwish (MobileNetV3), which the Conv/Gemm epilogue can compute instead of
 * its clamp. */
static bool is_epilogue_math(const nn_op *op)
{
    return op->kind == &nn_kind_leakyrelu || op->kind == &nn_kind_hardswish;
}

/* The epilogue's activation commutes with a max-pool, so one that the graph applies before the
 * pool may be fused with it (the kernels pool first): it is non-decreasing, as the clamp and a
 * LeakyRelu of slope >= 0 are and HardSwish is not. */
static bool epilogue_monotone(const nn_epilogue *ep)
{
    return ep->act == 0 || (ep->act == NN_LEAKY_RELU && ep->lo >= 0.0f);
}

/* Moves the activation `next` into op's epilogue when it is free; false when it cannot. */
static bool fuse_into_epilogue(nn_op *op, const nn_op *next)
{
    nn_epilogue *ep = op->kind == &nn_kind_conv                                  ? &op->p.conv.ep
                      : op->kind == &nn_kind_gemm || op->kind == &nn_kind_matmul ? &op->p.gemm.ep
                                                                                 : NULL;
    if (ep && ep->lo == -INFINITY && ep->hi == INFINITY && ep->act == 0) {
        if (is_clamp(next)) {
            ep->lo = next->p.ew.lo;
            ep->hi = next->p.ew.hi;
            return true;
        }
        /* After a fused pool too: the kernels apply it to the pooled values. */
        ep->lo = next->p.ew.lo; /* LeakyRelu's slope */
        ep->act = next->p.ew.op;
        return true;
    }
    if (op->kind == &nn_kind_batchnorm && is_clamp(next) && op->p.ew.lo == -INFINITY &&
        op->p.ew.hi == INFINITY) {
        op->p.ew.lo = next->p.ew.lo;
        op->p.ew.hi = next->p.ew.hi;
        return true;
    }
    return false;
}

static cleval_status fuse_activations(cleval_nn *nn, consumers *c)
{
    cleval_status status = scan_consumers(nn, c);
    if (status != CLEVAL_OK) return status;
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead) continue;
        nn_op *next = only_consumer(nn, c, op->out[0]);
        if (!next || !(is_clamp(next) || is_epilogue_math(next)) || next->in[0] != op->out[0] ||
            !fuse_into_epilogue(op, next))
            continue;
        for (uint32_t j = 1; j < next->n_in; j++)
            if (next->in[j] >= 0) nn->values[next->in[j]].uses--;
        absorb(nn, op, next);
        c->op[op->out[0]] = c->op[next->out[0]];
    }
    return CLEVAL_OK;
}

static bool pool_fusable(const nn_op *pool)
{
    const nn_pool_params *p = &pool->p.pool;
    if (pool->kind != &nn_kind_maxpool || p->spatial != 2 || p->ceil_mode ||
        p->auto_pad == NN_PAD_SAME_UPPER || p->auto_pad == NN_PAD_SAME_LOWER)
        return false;
    for (int i = 0; i < 2; i++)
        if (p->kernel[i] != 2 || p->stride[i] != 2 || p->dilation[i] != 1 || p->pad_begin[i] ||
            p->pad_end[i])
            return false;
    return true;
}

static cleval_status fuse_pools(cleval_nn *nn, consumers *c)
{
    if (nn->variant != CLEVAL_VARIANT_CPU) return CLEVAL_OK;
    cleval_status status = scan_consumers(nn, c);
    if (status != CLEVAL_OK) return status;
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead || op->kind != &nn_kind_conv || op->p.conv.depthwise ||
            op->p.conv.spatial != 2 || op->p.conv.ep.pool || !epilogue_monotone(&op->p.conv.ep))
            continue;
        nn_op *next = only_consumer(nn, c, op->out[0]);
        if (!next || !pool_fusable(next) || next->in[0] != op->out[0]) continue;
        for (uint32_t o = 1; o < next->n_out; o++)
            if (next->out[o] >= 0 &&
                (nn->values[next->out[o]].uses || nn->values[next->out[o]].is_output))
                goto skip;
        op->p.conv.ep.pool = true;
        absorb(nn, op, next);
    skip:;
    }
    return CLEVAL_OK;
}

/* CPU-style convolutions read (and write) either layout; so does the CPU depthwise path. */
static bool reads_any_layout(const cleval_nn *nn, const nn_op *op)
{
    return op->kind == &nn_kind_conv &&
           (!op->p.conv.depthwise || nn_depthwise_cpu_eligible(nn, op));
}

static cleval_status choose_layouts(cleval_nn *nn, consumers *c)
{
    if (nn->variant != CLEVAL_VARIANT_CPU) return CLEVAL_OK;
    cleval_status status = scan_consumers(nn, c);
    if (status != CLEVAL_OK) return status;
    uint32_t *conv_readers = calloc(nn->n_values + 1, sizeof *conv_readers);
    if (!conv_readers) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory optimising");
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        const nn_op *op = &nn->ops[i];
        if (!op->dead && reads_any_layout(nn, op) && op->in[0] >= 0) conv_readers[op->in[0]]++;
    }
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead || !reads_any_layout(nn, op)) continue;
        nn_value *y = &nn->values[op->out[0]];
        /* Only when every reader is a CPU-style Conv reading it as its data input. */
        if (!y->is_output && c->count[op->out[0]] > 0 &&
            conv_readers[op->out[0]] == c->count[op->out[0]] && y->uses == c->count[op->out[0]])
            y->layout = NN_LAYOUT_NHWC;
    }
    /* Values tied to convolutions through elementwise ops (layout_chains.c). */
    status = nn_layout_through_elementwise(nn, reads_any_layout);
    if (status != CLEVAL_OK) {
        free(conv_readers);
        return status;
    }
    /* A Conv read only through Flatten(axis 1) by a Gemm/MatMul with constant weights: store
     * it channels-last too (vector stores) and permute the weights' K rows to match. */
    for (uint32_t i = 0; nn->shapes_valid && i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead || op->kind != &nn_kind_conv || op->p.conv.depthwise) continue;
        nn_value *y = &nn->values[op->out[0]];
        nn_op *flat = only_consumer(nn, c, op->out[0]);
        if (y->layout != NN_LAYOUT_NCHW || !flat || flat->kind != &nn_kind_flatten ||
            flat->p.shape.axis != 1 || y->shape.rank < 3)
            continue;
        nn_op *mm = only_consumer(nn, c, flat->out[0]);
        if (!mm || (mm->kind != &nn_kind_gemm && mm->kind != &nn_kind_matmul) ||
            mm->in[0] != flat->out[0] || mm->p.gemm.trans_a || mm->in[1] < 0 ||
            nn->values[mm->in[1]].kind != NN_VALUE_CONST || nn->values[mm->in[1]].shape.rank != 2)
            continue;
        int64_t spatial = 1;
        for (uint32_t d = 2; d < y->shape.rank; d++)
            spatial *= y->shape.d[d];
        y->layout = NN_LAYOUT_NHWC;
        mm->p.gemm.perm_c = y->shape.d[1];
        mm->p.gemm.perm_s = spatial;
    }
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (!op->dead && op->kind == &nn_kind_conv && op->in[0] >= 0)
            op->p.conv.in_layout = nn->values[op->in[0]].layout;
    }
    free(conv_readers);
    return CLEVAL_OK;
}

/* ---- elementwise fusion ---- */

static bool is_plain_binary(const nn_op *op)
{
    bool binary = op->kind == &nn_kind_add || op->kind == &nn_kind_sub ||
                  op->kind == &nn_kind_mul || op->kind == &nn_kind_div;
    /* (the kind first: p is a union that only binary ops hold as p.ew) */
    return binary && !op->dead && !op->host && !op->alias_only && !op->p.ew.legacy;
}

/* A Mul reading Sigmoid(s) or HardSigmoid(s) computes the gate itself from s: the gate op
 * and its tensor (as large as the Mul's, or a [N, C, 1, 1] broadcast) disappear. The gated
 * operand becomes B (Mul commutes; the broadcast output is the same either way). */
static cleval_status fuse_gates(cleval_nn *nn, consumers *c)
{
    cleval_status status = scan_consumers(nn, c);
    if (status != CLEVAL_OK) return status;
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *mul = &nn->ops[i];
        if (!is_plain_binary(mul) || mul->kind != &nn_kind_mul || mul->p.ew.gate) continue;
        for (int side = 1; side >= 0; side--) {
            int v = mul->in[side];
            if (v < 0 || nn->values[v].producer < 0) continue;
            nn_op *gate = &nn->ops[nn->values[v].producer];
            if (gate->dead || gate->host || gate->alias_only || gate->in[0] < 0 ||
                (gate->kind != &nn_kind_sigmoid && gate->kind != &nn_kind_hardsigmoid) ||
                only_consumer(nn, c, v) != mul || mul->in[1 - side] == v)
                continue;
            mul->p.ew.gate = gate->p.ew.op;
            mul->p.ew.gate_alpha = gate->p.ew.lo; /* HardSigmoid's alpha, beta */
            mul->p.ew.gate_beta = gate->p.ew.hi;
            mul->in[0] = mul->in[1 - side];
            mul->in[1] = gate->in[0];
            /* The gate's input loses the gate as a reader and gains the Mul: uses unchanged. */
            nn->values[v].uses = 0;
            gate->dead = true;
            append_label(mul, gate->kind->op_type);
            break;
        }
    }
    return CLEVAL_OK;
}

/* SiLU (Swish) as PyTorch exports it, y * Sigmoid(y), after fuse_gates a Mul that reads y twice
 * and gates one side: when y comes from a Conv, Gemm or MatMul with no activation yet and
 * nothing else reads it, the epilogue computes it (EfficientNet's every Conv). */
static cleval_status fuse_silu(cleval_nn *nn, consumers *c)
{
    cleval_status status = scan_consumers(nn, c);
    if (status != CLEVAL_OK) return status;
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *mul = &nn->ops[i];
        if (!is_plain_binary(mul) || mul->kind != &nn_kind_mul || mul->p.ew.gate != NN_SIGMOID ||
            mul->in[0] != mul->in[1] || mul->p.ew.lo != -INFINITY || mul->p.ew.hi != INFINITY)
            continue;
        int y = mul->in[0];
        const nn_value *v = &nn->values[y];
        /* The Mul, reading y twice, is its only reader. */
        if (v->is_output || v->uses != 2 || c->count[y] != 2 || c->op[y] != (int)i ||
            v->producer < 0)
            continue;
        nn_op *op = &nn->ops[v->producer];
        nn_epilogue *ep = op->kind == &nn_kind_conv ? &op->p.conv.ep
                          : op->kind == &nn_kind_gemm || op->kind == &nn_kind_matmul
                              ? &op->p.gemm.ep
                              : NULL;
        if (op->dead || !ep || ep->lo != -INFINITY || ep->hi != INFINITY || ep->act != 0 ||
            op->out[0] != y)
            continue;
        ep->act = NN_SILU;
        absorb(nn, op, mul);
        append_label(op, "Sigmoid");
    }
    return CLEVAL_OK;
}

/* A Relu or Clip (constant bounds) reading only a binary op's output becomes that op's
 * clamp. */
static cleval_status fuse_binary_clamps(cleval_nn *nn, consumers *c)
{
    cleval_status status = scan_consumers(nn, c);
    if (status != CLEVAL_OK) return status;
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (!is_plain_binary(op) || op->p.ew.lo != -INFINITY || op->p.ew.hi != INFINITY) continue;
        nn_op *next = only_consumer(nn, c, op->out[0]);
        if (!next || next->dead || !is_clamp(next) || next->in[0] != op->out[0]) continue;
        op->p.ew.lo = next->p.ew.lo;
        op->p.ew.hi = next->p.ew.hi;
        for (uint32_t j = 1; j < next->n_in; j++) /* Clip's bound constants */
            if (next->in[j] >= 0) nn->values[next->in[j]].uses--;
        absorb(nn, op, next);
    }
    return CLEVAL_OK;
}

static void drop_unused(cleval_nn *nn)
{
    /* Backwards, so a chain of unused ops goes in one sweep. */
    for (uint32_t i = nn->n_ops; i-- > 0;) {
        nn_op *op = &nn->ops[i];
        if (op->dead) continue;
        bool used = false;
        for (uint32_t o = 0; o < op->n_out; o++)
            if (op->out[o] >= 0 &&
                (nn->values[op->out[o]].uses || nn->values[op->out[o]].is_output))
                used = true;
        if (used) continue;
        op->dead = true;
        for (uint32_t j = 0; j < op->n_in; j++)
            if (op->in[j] >= 0 && nn->values[op->in[j]].uses) nn->values[op->in[j]].uses--;
    }
}

/* The classifier's last Gemm / MatMul as the fused head (op_head.c) where kernels/head.cl
 * computes exactly what the separate kernels would: GPU kernels and fp32 storage (fp16 and
 * int8 keep their own Gemm kernels), a row-major A, a constant B and C, no fused activation
 * (a clamp would turn distinct scores into ties), at most NN_HEAD_MAX_WIDTH classes, and
 * either the Gemm's output is the graph output or its only reader is a Softmax / LogSoftmax
 * over the classes that is. The normalisation is kept (its values are the scores the user
 * sees), and the argmax is taken on them as the separate argmax kernel would.
 * CLEVAL_NN_FUSE_HEAD=0 turns it off (to compare both paths). Runs last: the shapes of the
 * batch of one are known, the layouts chosen. */
static void fuse_head(cleval_nn *nn, consumers *c)
{
    const char *env = getenv("CLEVAL_NN_FUSE_HEAD");
    if (nn->general || nn->variant != CLEVAL_VARIANT_GPU || nn->precision != CLEVAL_NN_FP32 ||
        nn->n_outputs != 1 || (env && strcmp(env, "0") == 0) || scan_consumers(nn, c) != CLEVAL_OK)
        return;
    const nn_value *out = &nn->values[nn->outputs[0]];
    if (out->producer < 0 || out->shape.rank != 2) return;
    nn_op *last = &nn->ops[out->producer], *gemm = last, *norm = NULL;
    if (last->kind == &nn_kind_softmax || last->kind == &nn_kind_logsoftmax) {
        const nn_softmax_params *sp = &last->p.softmax;
        const nn_value *x = &nn->values[last->in[0]];
        if (x->producer < 0 || (sp->axis != 1 && sp->axis != -1) ||
            nn->values[last->in[0]].uses != 1 || c->count[last->in[0]] != 1 ||
            nn->values[last->in[0]].is_output)
            return;
        norm = last;
        gemm = &nn->ops[x->producer];
    } else if (out->uses != 1) {
        return; /* an op reads the scores besides the graph output */
    }
    if (gemm->dead || (gemm->kind != &nn_kind_gemm && gemm->kind != &nn_kind_matmul)) return;
    const nn_gemm_params *p = &gemm->p.gemm;
    const nn_value *a = &nn->values[gemm->in[0]], *b = &nn->values[gemm->in[1]];
    bool has_c = nn_has_in(gemm, 2) && p->beta != 0.0f;
    if (p->trans_a || a->shape.rank != 2 || b->shape.rank != 2 || b->kind != NN_VALUE_CONST ||
        (has_c && nn->values[gemm->in[2]].kind != NN_VALUE_CONST) || nn_epilogue_clamps(&p->ep) ||
        p->perm_c || !nn_head_fits(nn, p->n, p->k))
        return;
    gemm->p.gemm.head = true;
    gemm->p.gemm.head_softmax = norm ? (norm->kind == &nn_kind_logsoftmax ? 2 : 1) : 0;
    if (norm) absorb(nn, gemm, norm);
    append_label(gemm, "ArgMax");
    nn->has_head = true;
}

cleval_status nn_optimise(cleval_nn *nn)
{
    consumers c = {NULL, NULL};
    cleval_status status = remove_identities(nn);
    if (status == CLEVAL_OK) status = nn_fuse_layernorm(nn);
    if (status == CLEVAL_OK) status = scan_consumers(nn, &c);
    for (uint32_t i = 0; i < nn->n_ops && status == CLEVAL_OK; i++)
        if (!nn->ops[i].dead && nn->ops[i].kind == &nn_kind_conv)
            status = fold_affine_into_conv(nn, &nn->ops[i], &c);
    if (status == CLEVAL_OK) status = scan_consumers(nn, &c);
    for (uint32_t i = 0; i < nn->n_ops && status == CLEVAL_OK; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead || (op->kind != &nn_kind_conv && op->kind != &nn_kind_gemm)) continue;
        nn_op *next = only_consumer(nn, &c, op->out[0]);
        if (!next || next->kind != &nn_kind_batchnorm || next->in[0] != op->out[0]) continue;
        status = op->kind == &nn_kind_conv ? fold_batchnorm(nn, op, next)
                                           : fold_batchnorm_into_gemm(nn, op, next);
    }
    if (status == CLEVAL_OK) fuse_matmul_bias(nn, &c);
    if (status == CLEVAL_OK) status = fuse_activations(nn, &c);
    if (status == CLEVAL_OK) status = fuse_pools(nn, &c);
    if (status == CLEVAL_OK) status = fuse_activations(nn, &c);
    if (status == CLEVAL_OK) status = fuse_gates(nn, &c);
    if (status == CLEVAL_OK) status = fuse_silu(nn, &c);
    if (status == CLEVAL_OK) status = fuse_binary_clamps(nn, &c);
    if (status == CLEVAL_OK) drop_unused(nn);
    if (status == CLEVAL_OK) status = choose_layouts(nn, &c);
    if (status == CLEVAL_OK) fuse_head(nn, &c);
    free(c.op);
    free(c.count);
    return status;
}
