/* Elementwise ops: Add/Sub/Mul/Div with numpy broadcasting (either operand a constant or an
 * activation; opset < 7 broadcast/axis attributes), PRelu (its slope broadcast to X),
 * Relu/Sigmoid/Tanh/Clip, Pow/Sqrt, the elementwise math (Exp, Log, Neg, Abs, Reciprocal, Erf,
 * Gelu and the parametric activations: LeakyRelu, Elu, Celu, Selu, HardSigmoid, HardSwish,
 * Softplus), and
 * BatchNormalization when it could not be folded into a Conv (a per-channel affine map). One
 * kernel family (kernels/elementwise.cl) serves both device variants: one element per
 * work-item, no loop, which PoCL vectorises across work-items; on CPUs the binary ops whose
 * operands are the same shape, per-channel or scalar run binary_runs, 16 outputs per work-item
 * (the broadcast index arithmetic per element kept PoCL scalar), and the unary ops unary_runs
 * (PoCL kept the math library's calls scalar). */
#include "nn_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- binary ---- */

static cleval_status binary_parse_op(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node,
                                     nn_binary_op which)
{
    static const char *const legacy[] = {"broadcast", "axis", NULL};
    nn_elementwise_params *p = &op->p.ew;
    cleval_status status = nn_check_attrs(nn, op, node, nn->opset < 7 ? legacy : NULL);
    if (status != CLEVAL_OK) return status;
    p->op = which;
    p->legacy_axis = -1;
    p->lo = -INFINITY;
    p->hi = INFINITY;
    if (nn->opset < 7) {
        p->legacy = true;
        if ((status = nn_attr_bool(nn, op, node, "broadcast", false, &p->legacy_broadcast)) !=
                CLEVAL_OK ||
            (status = nn_attr_int(nn, node, "axis", -1, &p->legacy_axis)) != CLEVAL_OK)
            return status;
        if (!cleval_onnx_node_attr(node, "axis")) p->legacy_axis = -1;
    }
    if (!nn_has_in(op, 0) || !nn_has_in(op, 1) || op->n_in != 2)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "needs exactly two inputs");
    return CLEVAL_OK;
}

/* B's shape as numpy broadcasting sees it (opset < 7 aligns it at an axis). */
static cleval_status effective_b(cleval_nn *nn, const nn_op *op, const nn_shape *a,
                                 const nn_shape *b, nn_shape *out)
{
    const nn_elementwise_params *p = &op->p.ew;
    *out = *b;
    if (!p->legacy) return CLEVAL_OK;
    if (!p->legacy_broadcast) {
        bool same = a->rank == b->rank;
        for (uint32_t i = 0; same && i < a->rank; i++)
            same = a->d[i] == b->d[i];
        if (!same)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                              "without broadcast=1 both inputs must have the same shape");
        return CLEVAL_OK;
    }
    if (p->legacy_axis < 0) return CLEVAL_OK;
    int64_t axis = p->legacy_axis;
    if (axis + b->rank > a->rank)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "axis %lld does not fit B's rank %u",
                          (long long)axis, b->rank);
    uint32_t rank = (uint32_t)(a->rank - axis);
    for (uint32_t i = b->rank; i < rank; i++)
        out->d[i] = 1;
    out->rank = rank;
    return CLEVAL_OK;
}

static cleval_status binary_infer(cleval_nn *nn, nn_op *op)
{
    const nn_value *a = nn_in(nn, op, 0), *b = nn_in(nn, op, 1);
    nn_shape bs, out;
    cleval_status status = effective_b(nn, op, &a->shape, &b->shape, &bs);
    if (status != CLEVAL_OK) return status;
    if (!nn_broadcast(&a->shape, &bs, &out)) {
        char sa[160], sb[160];
        nn_shape_format(&a->shape, sa, sizeof sa);
        nn_shape_format(&bs, sb, sizeof sb);
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "shapes %s and %s do not broadcast", sa, sb);
    }
    const nn_shape *shapes[2] = {&a->shape, &bs};
    const nn_value *vals[2] = {a, b};
    if (!nn_broadcast_keeps_batch(vals, shapes, 2, &out)) op->mixes_batch = true;
    nn_out(nn, op, 0)->shape = out;
    op->flops = (double)nn_shape_count(&out);
    return CLEVAL_OK;
}

static cleval_status operand_mem(cleval_nn *nn, int v, cl_mem *out)
{
    if (nn->values[v].kind == NN_VALUE_CONST) return nn_const_mem(nn, v, out);
    *out = nn_value_mem(nn, v);
    return CLEVAL_OK;
}

/* The gate fused into binary (elementwise.cl's GATE_ codes). */
static int gate_code(int gate)
{
    return gate == NN_SIGMOID ? 1 : gate == NN_HARD_SIGMOID ? 2 : 0;
}

/* Element strides of an operand of shape `s` broadcast to `out` (0 along broadcast axes). */
static void broadcast_strides(const nn_shape *s, const nn_shape *out, int64_t *strides)
{
    int64_t stride = 1;
    for (int i = (int)out->rank - 1; i >= 0; i--) {
        int j = i - (int)(out->rank - s->rank);
        if (j < 0 || s->d[j] == 1) {
            strides[i] = 0;
        } else {
            strides[i] = stride;
        }
        if (j >= 0) stride *= s->d[j];
    }
}

/* The output's axes as the kernels walk them: size-1 axes dropped, neighbours that both
 * operands walk contiguously merged; per-operand element strides (0 = broadcast). */
typedef struct binary_layout {
    uint32_t rank;
    uint64_t n;
    int64_t dims[NN_MAX_RANK], sa[NN_MAX_RANK], sb[NN_MAX_RANK];
} binary_layout;

static cleval_status binary_collapse(cleval_nn *nn, nn_op *op, binary_layout *l)
{
    const nn_value *a = nn_in(nn, op, 0), *b = nn_in(nn, op, 1), *y = nn_out(nn, op, 0);
    nn_shape bs;
    cleval_status status = effective_b(nn, op, &a->shape, &b->shape, &bs);
    if (status != CLEVAL_OK) return status;
    int64_t *sa = l->sa, *sb = l->sb, *dims = l->dims;
    broadcast_strides(&a->shape, &y->shape, sa);
    broadcast_strides(&bs, &y->shape, sb);
    uint32_t rank = 0;
    for (uint32_t i = 0; i < y->shape.rank; i++) {
        if (y->shape.d[i] == 1) continue;
        if (rank > 0 && sa[rank - 1] == sa[i] * y->shape.d[i] &&
            sb[rank - 1] == sb[i] * y->shape.d[i]) {
            dims[rank - 1] *= y->shape.d[i];
            sa[rank - 1] = sa[i];
            sb[rank - 1] = sb[i];
            continue;
        }
        dims[rank] = y->shape.d[i];
        sa[rank] = sa[i];
        sb[rank] = sb[i];
        rank++;
    }
    l->rank = rank;
    l->n = nn_shape_count(&y->shape);
    return CLEVAL_OK;
}

/* Whether an operand's element for output i is (i / inner) % ch (binary_runs): from the last
 * axis, broadcast axes (inner), then axes walked contiguously (ch), then broadcast ones only. */
static bool run_index(const binary_layout *l, const int64_t *s, uint32_t *inner, uint32_t *ch)
{
    uint64_t in = 1, c = 1;
    int phase = 0; /* 0: inner broadcast axes, 1: channel axes, 2: outer broadcast axes */
    for (int i = (int)l->rank - 1; i >= 0; i--) {
        if (s[i] == 0) {
            if (phase == 0) in *= (uint64_t)l->dims[i];
            else phase = 2;
        } else if (phase < 2 && (uint64_t)s[i] == c) {
            phase = 1;
            c *= (uint64_t)l->dims[i];
        } else {
            return false;
        }
    }
    *inner = (uint32_t)in;
    *ch = (uint32_t)c;
    return true;
}

static bool runs_fit(const binary_layout *l, uint32_t idx[4])
{
    return run_index(l, l->sa, &idx[0], &idx[1]) && run_index(l, l->sb, &idx[2], &idx[3]);
}

static cleval_status binary_prepare(cleval_nn *nn, nn_op *op)
{
    const nn_elementwise_params *p = &op->p.ew;
    bool clamps = p->lo != -INFINITY || p->hi != INFINITY;
    cl_mem unused;
    cleval_status status;
    for (uint32_t i = 0; i < 2; i++)
        if (nn_in(nn, op, i)->kind == NN_VALUE_CONST &&
            (status = nn_const_mem(nn, op->in[i], &unused)) != CLEVAL_OK)
            return status;
    /* CPU family: also binary_runs (k[1]) where both operands index as (i / inner) % ch: the
     * same shape, a scalar, a per-channel operand. The launch checks again, as the batch size
     * can change the collapsed axes. */
    binary_layout l;
    uint32_t idx[4];
    if ((status = binary_collapse(nn, op, &l)) != CLEVAL_OK) return status;
    bool runs = nn->variant == CLEVAL_VARIANT_CPU && runs_fit(&l, idx);
    /* binary_runs computes a fused gate on 16 lanes at a time (elementwise.cl gate16). */
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "%s%s%s%s", runs ? "binary_runs" : "binary",
             p->gate == NN_SIGMOID        ? " +sigmoid(b)"
             : p->gate == NN_HARD_SIGMOID ? " +hardsigmoid(b)"
                                          : "",
             runs && p->gate ? " x16" : "", clamps ? " +clamp" : "");
    char options[64];
    snprintf(options, sizeof options, "-DA_HALF=%d -DB_HALF=%d -DY_HALF=%d", nn_half(nn, op->in[0]),
             nn_half(nn, op->in[1]), nn_half(nn, op->out[0]));
    if ((status = nn_kernel(nn, op, "elementwise", options, "binary", &op->k[0])) != CLEVAL_OK ||
        !runs)
        return status;
    return nn_kernel(nn, op, "elementwise", options, "binary_runs", &op->k[1]);
}

/* The arguments after y and n that both kernels share the order of: the operator first, the
 * gate and clamp last. */
static void binary_gate_args(cleval_nn *nn, nn_op *op, cleval_kernel_args *args)
{
    cleval_kernel_arg_int(args, gate_code(op->p.ew.gate));
    /* The gate's tensor would have been stored as half where its input is (fp16). */
    cleval_kernel_arg_int(args, op->p.ew.gate ? nn_half(nn, op->in[1]) : 0);
    cleval_kernel_arg_float(args, op->p.ew.gate_alpha);
    cleval_kernel_arg_float(args, op->p.ew.gate_beta);
    cleval_kernel_arg_float(args, op->p.ew.lo);
    cleval_kernel_arg_float(args, op->p.ew.hi);
}

static cleval_status binary_launch(cleval_nn *nn, nn_op *op)
{
    uint64_t n = nn_out(nn, op, 0)->count;
    if (n == 0) return CLEVAL_OK;
    binary_layout l;
    cleval_status status = binary_collapse(nn, op, &l);
    if (status != CLEVAL_OK) return status;
    cl_mem ma, mb;
    if ((status = operand_mem(nn, op->in[0], &ma)) != CLEVAL_OK ||
        (status = operand_mem(nn, op->in[1], &mb)) != CLEVAL_OK)
        return status;
    uint32_t idx[4];
    bool runs = op->k[1] && runs_fit(&l, idx);
    cleval_kernel_args args = cleval_kernel_args_begin(op->k[runs ? 1 : 0], NULL);
    cleval_kernel_arg_mem(&args, ma);
    cleval_kernel_arg_mem(&args, mb);
    cleval_kernel_arg_mem(&args, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_uint(&args, (uint32_t)n);
    cleval_kernel_arg_int(&args, op->p.ew.op);
    size_t local = nn_local_1d(nn), global = (size_t)n;
    if (runs) {
        for (int i = 0; i < 4; i++)
            cleval_kernel_arg_uint(&args, idx[i]);
        binary_gate_args(nn, op, &args);
        global = (size_t)((n + 15) / 16); /* 16 outputs per work-item */
        return nn_enqueue(nn, op, &args, 1, &global, &local);
    }
    /* Right-align into the kernel's 8 axes. */
    int32_t kd[8] = {1, 1, 1, 1, 1, 1, 1, 1}, ka[8] = {0}, kb[8] = {0};
    for (uint32_t i = 0; i < l.rank; i++) {
        kd[8 - l.rank + i] = (int32_t)l.dims[i];
        ka[8 - l.rank + i] = (int32_t)l.sa[i];
        kb[8 - l.rank + i] = (int32_t)l.sb[i];
    }
    cleval_kernel_arg_int(&args, (int32_t)(8 - l.rank));
    cleval_kernel_arg_int8(&args, kd);
    cleval_kernel_arg_int8(&args, ka);
    cleval_kernel_arg_int8(&args, kb);
    binary_gate_args(nn, op, &args);
    return nn_enqueue(nn, op, &args, 1, &global, &local);
}

/* PRelu: the binary kernel with the slope as B, which must broadcast to X's shape (ONNX's
 * unidirectional broadcasting: the output has X's shape). */
static cleval_status prelu_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    cleval_status status = nn_check_attrs(nn, op, node, NULL);
    if (status != CLEVAL_OK) return status;
    op->p.ew.op = NN_PRELU;
    op->p.ew.legacy_axis = -1;
    op->p.ew.lo = -INFINITY;
    op->p.ew.hi = INFINITY;
    if (!nn_has_in(op, 0) || !nn_has_in(op, 1) || op->n_in != 2)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "needs exactly two inputs");
    return CLEVAL_OK;
}

static cleval_status prelu_infer(cleval_nn *nn, nn_op *op)
{
    /* Before opset 7 a 1-D slope of X's channel count is per channel (aligned at axis 1), as
     * the exporters of that time wrote it. */
    const nn_shape *xs = &nn_in(nn, op, 0)->shape, *slope = &nn_in(nn, op, 1)->shape;
    nn_elementwise_params *p = &op->p.ew;
    p->legacy = p->legacy_broadcast =
        nn->opset < 7 && slope->rank == 1 && xs->rank >= 2 && slope->d[0] == xs->d[1];
    p->legacy_axis = p->legacy ? 1 : -1;
    cleval_status status = binary_infer(nn, op);
    if (status != CLEVAL_OK) return status;
    const nn_shape *x = &nn_in(nn, op, 0)->shape, *y = &nn_out(nn, op, 0)->shape;
    bool same = x->rank == y->rank;
    for (uint32_t i = 0; same && i < x->rank; i++)
        same = x->d[i] == y->d[i];
    if (!same) {
        char sx[160], ss[160];
        nn_shape_format(x, sx, sizeof sx);
        nn_shape_format(&nn_in(nn, op, 1)->shape, ss, sizeof ss);
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "slope of shape %s does not broadcast to X %s",
                          ss, sx);
    }
    return CLEVAL_OK;
}

const nn_op_kind nn_kind_prelu = {"PRelu", prelu_parse, prelu_infer, binary_prepare, binary_launch};

#define BINARY_KIND(sym, name, code)                                                               \
    static cleval_status sym##_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)       \
    {                                                                                              \
        return binary_parse_op(nn, op, node, code);                                                \
    }                                                                                              \
    const nn_op_kind nn_kind_##sym = {name, sym##_parse, binary_infer, binary_prepare,             \
                                      binary_launch};

BINARY_KIND(add, "Add", NN_ADD)
BINARY_KIND(sub, "Sub", NN_SUB)
BINARY_KIND(mul, "Mul", NN_MUL)
BINARY_KIND(div, "Div", NN_DIV)

/* ---- unary ---- */

static cleval_status unary_parse_op(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node,
                                    nn_unary_op which)
{
    cleval_status status = nn_check_attrs(nn, op, node, NULL);
    if (status != CLEVAL_OK) return status;
    if (!nn_has_in(op, 0)) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input 0 is missing");
    op->p.ew.op = which;
    op->p.ew.lo = 0.0f;
    op->p.ew.hi = INFINITY;
    return CLEVAL_OK;
}

/* A scalar bound of Clip from input i, or `fallback` when omitted. */
static cleval_status clip_bound(cleval_nn *nn, nn_op *op, uint32_t i, const char *what,
                                float fallback, float *out)
{
    *out = fallback;
    if (!nn_has_in(op, i)) return CLEVAL_OK;
    cleval_status status = nn_require_const(nn, op, i, what);
    if (status != CLEVAL_OK) return status;
    const nn_value *v = nn_in(nn, op, i);
    if (v->count != 1) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "%s must be a scalar", what);
    *out = v->f32 ? v->f32[0] : (float)v->i64[0];
    return CLEVAL_OK;
}

static cleval_status clip_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const legacy[] = {"min", "max", NULL};
    nn_elementwise_params *p = &op->p.ew;
    cleval_status status = nn_check_attrs(nn, op, node, nn->opset < 11 ? legacy : NULL);
    if (status != CLEVAL_OK) return status;
    if (!nn_has_in(op, 0)) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input 0 is missing");
    p->op = NN_CLIP;
    if (nn->opset < 11) {
        if ((status = nn_attr_float(nn, node, "min", -FLT_MAX, &p->lo)) != CLEVAL_OK ||
            (status = nn_attr_float(nn, node, "max", FLT_MAX, &p->hi)) != CLEVAL_OK)
            return status;
        return CLEVAL_OK;
    }
    if ((status = clip_bound(nn, op, 1, "min", -INFINITY, &p->lo)) != CLEVAL_OK ||
        (status = clip_bound(nn, op, 2, "max", INFINITY, &p->hi)) != CLEVAL_OK)
        return status;
    return CLEVAL_OK;
}

/* An elementwise math op: its code, the attributes read into alpha and beta (NULL: none) with
 * their defaults, and the opset that introduced it in the default domain. */
typedef struct unary_math {
    nn_unary_op op;
    const char *alpha_name;
    float alpha;
    const char *beta_name;
    float beta;
    int64_t since;
} unary_math;

/* Sets up op as elementwise math op m, its attributes already checked: the opset, input 0, and
 * alpha and beta read from the node into lo and hi (the unary kernel's two parameters). */
static cleval_status unary_math_setup(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node,
                                      const unary_math *m)
{
    nn_elementwise_params *p = &op->p.ew;
    cleval_status status;
    if (nn->opset < m->since)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "operator %s needs opset %lld or later",
                          op->kind->op_type, (long long)m->since);
    if (!nn_has_in(op, 0)) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input 0 is missing");
    p->op = m->op;
    p->lo = m->alpha;
    p->hi = m->beta;
    if ((m->alpha_name &&
         (status = nn_attr_float(nn, node, m->alpha_name, m->alpha, &p->lo)) != CLEVAL_OK) ||
        (m->beta_name &&
         (status = nn_attr_float(nn, node, m->beta_name, m->beta, &p->hi)) != CLEVAL_OK))
        return status;
    if (m->op == NN_CELU && p->lo == 0.0f)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "attribute alpha must not be 0");
    return CLEVAL_OK;
}

static cleval_status unary_math_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node,
                                      const unary_math *m)
{
    const char *known[3] = {NULL, NULL, NULL};
    uint32_t n_known = 0;
    if (m->alpha_name) known[n_known++] = m->alpha_name;
    if (m->beta_name) known[n_known++] = m->beta_name;
    cleval_status status = nn_check_attrs(nn, op, node, known);
    if (status != CLEVAL_OK) return status;
    return unary_math_setup(nn, op, node, m);
}

/* Gelu (opset 20): approximate="none" (erf) or "tanh". */
static cleval_status gelu_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"approximate", NULL};
    static const unary_math exact = {NN_GELU, NULL, 0.0f, NULL, 0.0f, 20};
    static const unary_math tanh_form = {NN_GELU_TANH, NULL, 0.0f, NULL, 0.0f, 20};
    cleval_status status = nn_check_attrs(nn, op, node, known);
    const char *approximate;
    if (status != CLEVAL_OK ||
        (status = nn_attr_string(nn, node, "approximate", "none", &approximate)) != CLEVAL_OK)
        return status;
    if (strcmp(approximate, "tanh") == 0) return unary_math_setup(nn, op, node, &tanh_form);
    if (strcmp(approximate, "none") == 0) return unary_math_setup(nn, op, node, &exact);
    return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "attribute approximate=%s is not valid",
                      approximate);
}

static cleval_status unary_infer(cleval_nn *nn, nn_op *op)
{
    nn_value *y = nn_out(nn, op, 0);
    y->shape = nn_in(nn, op, 0)->shape;
    op->flops = (double)nn_shape_count(&y->shape);
    return CLEVAL_OK;
}

/* CPU family: unary_runs, 16 elements per work-item on float16 vectors (PoCL keeps the math
 * library's calls scalar when it vectorises `unary` across work-items). */
static cleval_status unary_prepare(cleval_nn *nn, nn_op *op)
{
    if (nn->variant != CLEVAL_VARIANT_CPU) return nn_storage_kernel(nn, op, "elementwise", "unary");
    return nn_storage_kernel(nn, op, "elementwise", "unary_runs");
}

static cleval_status unary_launch(cleval_nn *nn, nn_op *op)
{
    const nn_value *y = nn_out(nn, op, 0);
    if (y->count == 0) return CLEVAL_OK;
    cl_mem x;
    cleval_status status = operand_mem(nn, op->in[0], &x);
    if (status != CLEVAL_OK) return status;
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, x);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_uint(&a, (uint32_t)y->count);
    cleval_kernel_arg_int(&a, op->p.ew.op);
    cleval_kernel_arg_float(&a, op->p.ew.lo);
    cleval_kernel_arg_float(&a, op->p.ew.hi);
    size_t local = nn_local_1d(nn), global = (size_t)y->count;
    if (nn->variant == CLEVAL_VARIANT_CPU) global = (size_t)((y->count + 15) / 16);
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

#define UNARY_KIND(sym, name, code)                                                                \
    static cleval_status sym##_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)       \
    {                                                                                              \
        return unary_parse_op(nn, op, node, code);                                                 \
    }                                                                                              \
    const nn_op_kind nn_kind_##sym = {name, sym##_parse, unary_infer, unary_prepare, unary_launch};

UNARY_KIND(relu, "Relu", NN_RELU)
UNARY_KIND(sigmoid, "Sigmoid", NN_SIGMOID)
UNARY_KIND(tanh, "Tanh", NN_TANH)
const nn_op_kind nn_kind_clip = {"Clip", clip_parse, unary_infer, unary_prepare, unary_launch};

/* ---- Pow and Sqrt ---- */

UNARY_KIND(sqrt, "Sqrt", NN_SQRT)

/* An integer constant exponent tensor becomes a float constant (the binary kernel reads
 * floats); exact below 2^24, as the kernel's float arithmetic is anyway. */
static cleval_status integer_exponent_as_float(cleval_nn *nn, nn_op *op)
{
    const nn_value *e = nn_in(nn, op, 1);
    if (!e->i64)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "constant exponent '%s' holds no values",
                          e->name);
    float *f = malloc((e->count ? e->count : 1) * sizeof *f);
    if (!f) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the graph");
    for (uint64_t i = 0; i < e->count; i++)
        f[i] = (float)e->i64[i];
    char name[300];
    snprintf(name, sizeof name, "%s/float", e->name);
    nn_shape shape = e->shape;
    int v = nn_add_const(nn, name, &shape, f); /* may move nn->values */
    if (v < 0) return CLEVAL_ERR_NOMEM;
    nn->values[op->in[1]].uses--;
    nn->values[v].uses = 1;
    op->in[1] = v;
    return CLEVAL_OK;
}

/* Pow broadcasts like the binary ops; a constant scalar exponent runs as a unary op (x^2 as
 * x * x, x^0.5 as a square root). */
static cleval_status pow_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    cleval_status status = binary_parse_op(nn, op, node, NN_POW);
    if (status != CLEVAL_OK) return status;
    const nn_value *e = nn_in(nn, op, 1);
    if (e->kind != NN_VALUE_CONST) return CLEVAL_OK;
    if (e->count == 1 && (e->f32 || e->i64)) {
        op->p.ew.op = NN_POW_SCALAR;
        op->p.ew.lo = e->f32 ? e->f32[0] : (float)e->i64[0];
    } else if (!e->f32) {
        return integer_exponent_as_float(nn, op);
    }
    return CLEVAL_OK;
}

static cleval_status pow_prepare(cleval_nn *nn, nn_op *op)
{
    return op->p.ew.op == NN_POW_SCALAR ? unary_prepare(nn, op) : binary_prepare(nn, op);
}

static cleval_status pow_launch(cleval_nn *nn, nn_op *op)
{
    return op->p.ew.op == NN_POW_SCALAR ? unary_launch(nn, op) : binary_launch(nn, op);
}

const nn_op_kind nn_kind_pow = {"Pow", pow_parse, binary_infer, pow_prepare, pow_launch};

#define MATH_KIND(sym, name, code, alpha_name, alpha, beta_name, beta, since)                      \
    static cleval_status sym##_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)       \
    {                                                                                              \
        static const unary_math m = {code, alpha_name, alpha, beta_name, beta, since};             \
        return unary_math_parse(nn, op, node, &m);                                                 \
    }                                                                                              \
    const nn_op_kind nn_kind_##sym = {name, sym##_parse, unary_infer, unary_prepare, unary_launch};

MATH_KIND(exp, "Exp", NN_EXP, NULL, 0.0f, NULL, 0.0f, 1)
MATH_KIND(log, "Log", NN_LOG, NULL, 0.0f, NULL, 0.0f, 1)
MATH_KIND(neg, "Neg", NN_NEG, NULL, 0.0f, NULL, 0.0f, 1)
MATH_KIND(abs, "Abs", NN_ABS, NULL, 0.0f, NULL, 0.0f, 1)
MATH_KIND(reciprocal, "Reciprocal", NN_RECIPROCAL, NULL, 0.0f, NULL, 0.0f, 1)
MATH_KIND(erf, "Erf", NN_ERF, NULL, 0.0f, NULL, 0.0f, 9)
MATH_KIND(leakyrelu, "LeakyRelu", NN_LEAKY_RELU, "alpha", 0.01f, NULL, 0.0f, 1)
MATH_KIND(elu, "Elu", NN_ELU, "alpha", 1.0f, NULL, 0.0f, 1)
MATH_KIND(celu, "Celu", NN_CELU, "alpha", 1.0f, NULL, 0.0f, 12)
MATH_KIND(selu, "Selu", NN_SELU, "alpha", 1.67326319217681884765625f, "gamma",
          1.05070102214813232421875f, 1)
MATH_KIND(hardsigmoid, "HardSigmoid", NN_HARD_SIGMOID, "alpha", 0.2f, "beta", 0.5f, 1)
MATH_KIND(hardswish, "HardSwish", NN_HARD_SWISH, NULL, 0.0f, NULL, 0.0f, 14)
MATH_KIND(softplus, "Softplus", NN_SOFTPLUS, NULL, 0.0f, NULL, 0.0f, 1)
const nn_op_kind nn_kind_gelu = {"Gelu", gelu_parse, unary_infer, unary_prepare, unary_launch};

/* ---- BatchNormalization (inference form) ---- */

static cleval_status batchnorm_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"epsilon", "momentum",      "spatial",
                                        "is_test", "training_mode", NULL};
    nn_elementwise_params *p = &op->p.ew;
    bool spatial, is_test, training;
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK ||
        (status = nn_attr_float(nn, node, "epsilon", 1e-5f, &p->epsilon)) != CLEVAL_OK ||
        (status = nn_attr_bool(nn, op, node, "spatial", true, &spatial)) != CLEVAL_OK ||
        (status = nn_attr_bool(nn, op, node, "is_test", nn->opset >= 7, &is_test)) != CLEVAL_OK ||
        (status = nn_attr_bool(nn, op, node, "training_mode", false, &training)) != CLEVAL_OK)
        return status;
    if (!spatial)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "attribute spatial=0 is not supported");
    if (!is_test)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "attribute is_test=0 (training mode) is not supported");
    if (training)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "attribute training_mode=1 is not supported");
    for (uint32_t o = 1; o < op->n_out; o++)
        if (op->out[o] >= 0 && (nn_out(nn, op, o)->uses || nn_out(nn, op, o)->is_output))
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                              "output %u (training statistics) is not supported", o);
    if (!nn_has_in(op, 0)) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input X is missing");
    static const char *const names[] = {"X", "scale", "B", "mean", "var"};
    for (uint32_t i = 1; i < 5; i++) {
        if ((status = nn_require_const(nn, op, i, names[i])) != CLEVAL_OK) return status;
        if (!nn_in(nn, op, i)->f32)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "%s must be a float tensor", names[i]);
    }
    /* One value of each per channel: the folding into a Conv and the preparation read all four
     * up to scale's length, before (or without) any shape inference comparing them with X. */
    uint64_t channels = nn_in(nn, op, 1)->count;
    for (uint32_t i = 2; i < 5; i++)
        if (nn_in(nn, op, i)->count != channels)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                              "input %u (%s) has %llu values, scale has %llu", i, names[i],
                              (unsigned long long)nn_in(nn, op, i)->count,
                              (unsigned long long)channels);
    p->lo = -INFINITY;
    p->hi = INFINITY;
    return CLEVAL_OK;
}

static cleval_status batchnorm_infer(cleval_nn *nn, nn_op *op)
{
    const nn_shape *x = &nn_in(nn, op, 0)->shape;
    if (x->rank < 2)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input X has rank %u, needs at least 2",
                          x->rank);
    for (uint32_t i = 1; i < 5; i++)
        if (nn_in(nn, op, i)->count != (uint64_t)x->d[1])
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                              "input %u has %llu values for %lld channels", i,
                              (unsigned long long)nn_in(nn, op, i)->count, (long long)x->d[1]);
    nn_out(nn, op, 0)->shape = *x;
    op->flops = 2.0 * (double)nn_shape_count(x);
    return CLEVAL_OK;
}

/* scale * (x - mean) / sqrt(var + eps) + B = x * s + t, computed in double. */
void nn_batchnorm_coefficients(const float *scale, const float *bias, const float *mean,
                               const float *var, float epsilon, uint64_t c, float *s, float *t)
{
    for (uint64_t i = 0; i < c; i++) {
        double si = (double)scale[i] / sqrt((double)var[i] + (double)epsilon);
        s[i] = (float)si;
        t[i] = (float)((double)bias[i] - (double)mean[i] * si);
    }
}

static cleval_status batchnorm_prepare(cleval_nn *nn, nn_op *op)
{
    uint64_t c = nn_in(nn, op, 1)->count;
    float *s = malloc((c ? c : 1) * sizeof *s), *t = malloc((c ? c : 1) * sizeof *t);
    cleval_status status;
    if (!s || !t) {
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory preparing BatchNormalization");
    } else {
        nn_batchnorm_coefficients(nn_in(nn, op, 1)->f32, nn_in(nn, op, 2)->f32,
                                  nn_in(nn, op, 3)->f32, nn_in(nn, op, 4)->f32, op->p.ew.epsilon, c,
                                  s, t);
        status = nn_upload(nn, s, c * sizeof *s, "BatchNormalization scale", &op->mem[0]);
        if (status == CLEVAL_OK)
            status = nn_upload(nn, t, c * sizeof *t, "BatchNormalization shift", &op->mem[1]);
    }
    free(s);
    free(t);
    if (status != CLEVAL_OK) return status;
    /* CPU family: channel_affine_runs, 16 elements per work-item with one channel lookup per run
     * (the per-element division kept PoCL's vectorised channel_affine slow). */
    return nn_storage_kernel(nn, op, "elementwise",
                             nn->variant == CLEVAL_VARIANT_CPU ? "channel_affine_runs"
                                                               : "channel_affine");
}

static cleval_status batchnorm_launch(cleval_nn *nn, nn_op *op)
{
    const nn_value *y = nn_out(nn, op, 0);
    if (y->count == 0) return CLEVAL_OK;
    uint64_t inner = 1;
    for (uint32_t i = 2; i < y->shape.rank; i++)
        inner *= (uint64_t)y->shape.d[i];
    cl_mem x;
    cleval_status status = operand_mem(nn, op->in[0], &x);
    if (status != CLEVAL_OK) return status;
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, x);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->out[0]));
    cleval_kernel_arg_mem(&a, op->mem[0]);
    cleval_kernel_arg_mem(&a, op->mem[1]);
    cleval_kernel_arg_uint(&a, (uint32_t)y->count);
    cleval_kernel_arg_uint(&a, (uint32_t)y->shape.d[1]);
    cleval_kernel_arg_uint(&a, (uint32_t)inner);
    cleval_kernel_arg_float(&a, op->p.ew.lo);
    cleval_kernel_arg_float(&a, op->p.ew.hi);
    size_t local = nn_local_1d(nn), global = (size_t)y->count;
    if (nn->variant == CLEVAL_VARIANT_CPU) global = (size_t)((y->count + 15) / 16);
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

const nn_op_kind nn_kind_batchnorm = {"BatchNormalization", batchnorm_parse, batchnorm_infer,
                                      batchnorm_prepare, batchnorm_launch};
