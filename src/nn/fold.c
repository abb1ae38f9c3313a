/* Host evaluation of the nodes that compute constants and tensor shapes. At load, a node whose
 * inputs are all constants becomes a constant (nn_fold_op): weights that the exporter reaches
 * through Identity, Cast, Reshape, Transpose... of initializers are weights like any other. A
 * node that computes from tensor shapes (Shape, then Gather, Concat, Unsqueeze, arithmetic...)
 * becomes a host op: its infer evaluates it on the host each time shapes are inferred (once per
 * batch size), and its output is a host value: device ops read its entries where they take a
 * shape, axes, bounds or pads (nn_host_ints), and its device copy where they take data
 * (nn_upload_host_operands; dropped here when an evaluation changes the contents). Values are
 * the f32 / i64 arrays of nn_value; bool and integer results are held as i64. Every output
 * size is checked against NN_MAX_ELEMENTS before it is allocated. */
#include "nn_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef cleval_status (*fold_eval)(cleval_nn *nn, nn_op *op, nn_value *out);

/* A host kind: op->kind points at `kind`, the first member, so infer finds `eval`. */
typedef struct fold_kind {
    nn_op_kind kind;
    fold_eval eval;
    /* Views (Identity, Reshape, Flatten, Dropout): the device kind whose parse reads the
     * attributes and whose infer gives the output shape; the values are copied. */
    const nn_op_kind *view;
    bool reads_shapes; /* Shape, Size: the input's values are never read */
} fold_kind;

static const fold_kind *fold_of(const nn_op *op)
{
    return (const fold_kind *)op->kind;
}

/* ---- values ---- */

static double get_f(const nn_value *v, uint64_t i)
{
    return v->f32 ? (double)v->f32[i] : (double)v->i64[i];
}

/* Gives `out` the shape and fresh storage (float or int64) for its values. */
static cleval_status set_output(cleval_nn *nn, const nn_op *op, nn_value *out,
                                const nn_shape *shape, bool is_float)
{
    uint64_t count;
    if (shape->rank > NN_MAX_RANK || !nn_shape_count_checked(shape, &count)) {
        char text[160];
        nn_shape_format(shape, text, sizeof text);
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "output '%s' of shape %s is larger than supported (at most %lld "
                          "elements, rank %d)",
                          out->name, text, (long long)NN_MAX_ELEMENTS, NN_MAX_RANK);
    }
    free(out->f32);
    free(out->i64);
    out->f32 = NULL;
    out->i64 = NULL;
    size_t n = count ? (size_t)count : 1;
    if (is_float)
        out->f32 = malloc(n * sizeof *out->f32);
    else
        out->i64 = malloc(n * sizeof *out->i64);
    if (!out->f32 && !out->i64)
        return nn_fail_op(nn, op, CLEVAL_ERR_NOMEM, "out of memory computing '%s'", out->name);
    out->shape = *shape;
    out->count = count;
    return CLEVAL_OK;
}

static void put(nn_value *out, uint64_t i, double f, int64_t k)
{
    if (out->f32)
        out->f32[i] = (float)f;
    else
        out->i64[i] = k;
}

/* Copies element `from` of `in` to element `to` of `out` (same element type). */
static void copy_element(const nn_value *in, uint64_t from, nn_value *out, uint64_t to)
{
    if (out->f32)
        out->f32[to] = in->f32[from];
    else
        out->i64[to] = in->i64[from];
}

/* out = in, element for element (shape set by the caller's set_output). */
static void copy_values(const nn_value *in, nn_value *out)
{
    for (uint64_t e = 0; e < out->count; e++)
        copy_element(in, e, out, e);
}

cleval_status nn_host_ints(cleval_nn *nn, const nn_op *op, uint32_t i, const char *what,
                           const int64_t **values, uint64_t *count)
{
    if (!nn_has_in(op, i))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input %u (%s) is missing", i, what);
    const nn_value *v = nn_in(nn, op, i);
    if (v->kind != NN_VALUE_CONST && v->kind != NN_VALUE_HOST)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "input '%s' (%s) must be a constant or computed from tensor shapes; "
                          "a %s computed from tensor values is not supported",
                          v->name, what, what);
    if (!v->i64)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input '%s' (%s) must be an integer tensor",
                          v->name, what);
    if (v->shape.rank > 1)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input '%s' (%s) must be 1-D, not rank %u",
                          v->name, what, v->shape.rank);
    *values = v->i64;
    *count = v->count;
    return CLEVAL_OK;
}

/* An axis list (from `values`) normalised against `rank`, each axis once. */
static cleval_status normalise_axes(cleval_nn *nn, const nn_op *op, const int64_t *values,
                                    uint64_t count, uint32_t rank, uint32_t *axes)
{
    bool seen[NN_MAX_RANK] = {false};
    if (count > NN_MAX_RANK)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "%llu axes are more than %d",
                          (unsigned long long)count, NN_MAX_RANK);
    for (uint64_t i = 0; i < count; i++) {
        if (!nn_axis(values[i], rank, &axes[i]) || seen[axes[i]])
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                              "axis %lld is out of range or repeated for rank %u",
                              (long long)values[i], rank);
        seen[axes[i]] = true;
    }
    return CLEVAL_OK;
}

/* The axes of Squeeze / Unsqueeze / Slice: the attribute (older opsets) or input i. */
static cleval_status axes_of(cleval_nn *nn, const nn_op *op, uint32_t i, const int64_t **values,
                             uint64_t *count)
{
    if (op->p.fold.has_axes) {
        *values = op->p.fold.axes;
        *count = op->p.fold.n_axes;
        return CLEVAL_OK;
    }
    if (!nn_has_in(op, i)) {
        *values = NULL;
        *count = 0;
        return CLEVAL_OK;
    }
    return nn_host_ints(nn, op, i, "axes", values, count);
}

/* Row-major strides of a shape. */
static void strides_of(const nn_shape *s, int64_t *strides)
{
    int64_t stride = 1;
    for (uint32_t i = s->rank; i-- > 0;) {
        strides[i] = stride;
        stride *= s->d[i];
    }
}

/* Fills `out` (shape set) from `in`: out's element at index (i_0..i_k) is in's element at
 * offset + sum i_j * step[j]. Transpose, Slice and Expand are such affine gathers. */
static void gather_affine(const nn_value *in, nn_value *out, int64_t offset, const int64_t *step)
{
    for (uint64_t e = 0; e < out->count; e++) {
        uint64_t rest = e;
        int64_t at = offset;
        for (uint32_t d = out->shape.rank; d-- > 0;) {
            at += (int64_t)(rest % (uint64_t)out->shape.d[d]) * step[d];
            rest /= (uint64_t)out->shape.d[d];
        }
        copy_element(in, (uint64_t)at, out, e);
    }
}

/* The steps of `in` broadcast to `shape` (0 along broadcast axes), right-aligned. */
static void broadcast_steps(const nn_shape *in, const nn_shape *shape, int64_t *step)
{
    int64_t strides[NN_MAX_RANK];
    strides_of(in, strides);
    for (uint32_t d = 0; d < shape->rank; d++) {
        int64_t j = (int64_t)d - (int64_t)(shape->rank - in->rank);
        step[d] = j < 0 || in->d[j] == 1 ? 0 : strides[j];
    }
}

/* ---- views: Identity, Dropout, Reshape, Flatten ---- */

static cleval_status eval_view(cleval_nn *nn, nn_op *op, nn_value *out)
{
    cleval_status status = fold_of(op)->view->infer(nn, op);
    if (status != CLEVAL_OK) return status;
    nn_shape shape = out->shape;
    const nn_value *in = nn_in(nn, op, 0);
    if ((status = set_output(nn, op, out, &shape, in->f32 != NULL)) != CLEVAL_OK) return status;
    copy_values(in, out);
    return CLEVAL_OK;
}

/* ---- elementwise ---- */

typedef enum elementwise_op {
    EW_ADD,
    EW_SUB,
    EW_MUL,
    EW_DIV,
    EW_MOD,
    EW_POW,
    EW_MIN,
    EW_MAX,
    EW_EQUAL,
    EW_LESS,
    EW_GREATER,
    EW_AND,
    EW_OR,
} elementwise_op;

static bool is_comparison(elementwise_op op)
{
    return op >= EW_EQUAL;
}

static double float_binary(elementwise_op op, double a, double b)
{
    switch (op) {
    case EW_ADD: return a + b;
    case EW_SUB: return a - b;
    case EW_MUL: return a * b;
    case EW_DIV: return a / b;
    case EW_MOD: return fmod(a, b);
    case EW_POW: return pow(a, b);
    case EW_MIN: return a < b || isnan(a) ? a : b;
    case EW_MAX: return a > b || isnan(a) ? a : b;
    case EW_EQUAL: return a == b;
    case EW_LESS: return a < b;
    case EW_GREATER: return a > b;
    case EW_AND: return a != 0 && b != 0;
    case EW_OR: return a != 0 || b != 0;
    }
    return 0;
}

/* Integer arithmetic wraps like int64 hardware (no undefined behaviour); division truncates
 * toward zero as onnxruntime's does; Mod without fmod takes the divisor's sign. False where
 * the result is undefined (a zero divisor, INT64_MIN / -1, a negative power). */
static bool int_binary(elementwise_op op, bool fmod_sign, int64_t a, int64_t b, int64_t *r)
{
    uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
    switch (op) {
    case EW_ADD: *r = (int64_t)(ua + ub); return true;
    case EW_SUB: *r = (int64_t)(ua - ub); return true;
    case EW_MUL: *r = (int64_t)(ua * ub); return true;
    case EW_DIV:
    case EW_MOD:
        if (b == 0 || (a == INT64_MIN && b == -1)) return false;
        if (op == EW_DIV) {
            *r = a / b;
        } else {
            *r = a % b;
            if (!fmod_sign && *r != 0 && (*r < 0) != (b < 0)) *r += b;
        }
        return true;
    case EW_POW: {
        if (b < 0) return false;
        uint64_t result = 1, base = ua;
        for (uint64_t e = ub; e; e >>= 1, base *= base)
            if (e & 1) result *= base;
        *r = (int64_t)result;
        return true;
    }
    case EW_MIN: *r = a < b ? a : b; return true;
    case EW_MAX: *r = a > b ? a : b; return true;
    default: *r = (int64_t)float_binary(op, (double)a, (double)b); return true;
    }
}

static const char *const EW_NAMES[] = {"Add", "Sub",   "Mul",  "Div",     "Mod", "Pow", "Min",
                                       "Max", "Equal", "Less", "Greater", "And", "Or"};

static elementwise_op elementwise_code(const nn_op *op)
{
    for (uint32_t i = 0; i < sizeof EW_NAMES / sizeof EW_NAMES[0]; i++)
        if (strcmp(EW_NAMES[i], op->kind->op_type) == 0) return (elementwise_op)i;
    return EW_ADD;
}

static cleval_status no_broadcast(cleval_nn *nn, const nn_op *op, const nn_shape *a,
                                  const nn_shape *b)
{
    char sa[160], sb[160];
    nn_shape_format(a, sa, sizeof sa);
    nn_shape_format(b, sb, sizeof sb);
    return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "shapes %s and %s do not broadcast", sa, sb);
}

/* out = a (op) b with numpy broadcasting; `out` is a value of its own (not a or b). */
static cleval_status apply_binary(cleval_nn *nn, const nn_op *op, elementwise_op code,
                                  const nn_value *a, const nn_value *b, nn_value *out)
{
    nn_shape shape;
    if (!nn_broadcast(&a->shape, &b->shape, &shape))
        return no_broadcast(nn, op, &a->shape, &b->shape);
    bool floats = a->f32 || b->f32;
    if (code == EW_MOD && floats && !op->p.fold.fmod)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "Mod of floats needs fmod=1");
    cleval_status status = set_output(nn, op, out, &shape, floats && !is_comparison(code));
    if (status != CLEVAL_OK) return status;
    int64_t sa[NN_MAX_RANK], sb[NN_MAX_RANK];
    broadcast_steps(&a->shape, &shape, sa);
    broadcast_steps(&b->shape, &shape, sb);
    for (uint64_t e = 0; e < out->count; e++) {
        uint64_t rest = e;
        int64_t ia = 0, ib = 0;
        for (uint32_t d = shape.rank; d-- > 0;) {
            int64_t c = (int64_t)(rest % (uint64_t)shape.d[d]);
            rest /= (uint64_t)shape.d[d];
            ia += c * sa[d];
            ib += c * sb[d];
        }
        if (floats) {
            double r = float_binary(code, get_f(a, (uint64_t)ia), get_f(b, (uint64_t)ib));
            put(out, e, r, (int64_t)r);
            continue;
        }
        int64_t r;
        if (!int_binary(code, op->p.fold.fmod, a->i64[ia], b->i64[ib], &r))
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                              "%" PRId64 " %s %" PRId64 " is undefined for integers", a->i64[ia],
                              code == EW_POW   ? "to the power"
                              : code == EW_MOD ? "mod"
                                               : "/",
                              b->i64[ib]);
        out->i64[e] = r;
    }
    return CLEVAL_OK;
}

static void release_data(nn_value *v)
{
    free(v->f32);
    free(v->i64);
    v->f32 = NULL;
    v->i64 = NULL;
}

/* Binary ops, and Min / Max of any number of inputs (folded left to right). */
static cleval_status eval_elementwise(cleval_nn *nn, nn_op *op, nn_value *out)
{
    elementwise_op code = elementwise_code(op);
    if (code != EW_MIN && code != EW_MAX && op->n_in != 2)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "%u inputs are not valid here", op->n_in);
    const nn_value *a = nn_in(nn, op, 0);
    if (op->n_in == 1) {
        cleval_status status = set_output(nn, op, out, &a->shape, a->f32 != NULL);
        if (status == CLEVAL_OK) copy_values(a, out);
        return status;
    }
    nn_value acc = {.name = out->name}, next = {.name = out->name};
    cleval_status status = CLEVAL_OK;
    for (uint32_t i = 1; i < op->n_in && status == CLEVAL_OK; i++) {
        if (!nn_has_in(op, i)) {
            status = nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input %u is missing", i);
            break;
        }
        nn_value *target = i + 1 == op->n_in ? out : &next;
        status = apply_binary(nn, op, code, i == 1 ? a : &acc, nn_in(nn, op, i), target);
        release_data(&acc);
        acc = next;
        next.f32 = NULL;
        next.i64 = NULL;
    }
    release_data(&acc);
    return status;
}

static cleval_status eval_where(cleval_nn *nn, nn_op *op, nn_value *out)
{
    if (op->n_in != 3 || !nn_has_in(op, 0) || !nn_has_in(op, 1) || !nn_has_in(op, 2))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "Where needs 3 inputs");
    const nn_value *c = nn_in(nn, op, 0), *x = nn_in(nn, op, 1), *y = nn_in(nn, op, 2);
    nn_shape xy, shape;
    if (!nn_broadcast(&x->shape, &y->shape, &xy)) return no_broadcast(nn, op, &x->shape, &y->shape);
    if (!nn_broadcast(&c->shape, &xy, &shape)) return no_broadcast(nn, op, &c->shape, &xy);
    if ((x->f32 != NULL) != (y->f32 != NULL))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "inputs X and Y have different types");
    cleval_status status = set_output(nn, op, out, &shape, x->f32 != NULL);
    if (status != CLEVAL_OK) return status;
    int64_t sc[NN_MAX_RANK], sx[NN_MAX_RANK], sy[NN_MAX_RANK];
    broadcast_steps(&c->shape, &shape, sc);
    broadcast_steps(&x->shape, &shape, sx);
    broadcast_steps(&y->shape, &shape, sy);
    for (uint64_t e = 0; e < out->count; e++) {
        uint64_t rest = e;
        int64_t ic = 0, ix = 0, iy = 0;
        for (uint32_t d = shape.rank; d-- > 0;) {
            int64_t k = (int64_t)(rest % (uint64_t)shape.d[d]);
            rest /= (uint64_t)shape.d[d];
            ic += k * sc[d];
            ix += k * sx[d];
            iy += k * sy[d];
        }
        if (get_f(c, (uint64_t)ic) != 0)
            copy_element(x, (uint64_t)ix, out, e);
        else
            copy_element(y, (uint64_t)iy, out, e);
    }
    return CLEVAL_OK;
}

/* Neg, Abs, Sqrt, Not. */
static cleval_status eval_unary(cleval_nn *nn, nn_op *op, nn_value *out)
{
    const nn_value *x = nn_in(nn, op, 0);
    const char *type = op->kind->op_type;
    bool is_not = strcmp(type, "Not") == 0, is_sqrt = strcmp(type, "Sqrt") == 0;
    if (is_sqrt && !x->f32) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "Sqrt needs a float input");
    cleval_status status = set_output(nn, op, out, &x->shape, x->f32 && !is_not);
    if (status != CLEVAL_OK) return status;
    bool neg = strcmp(type, "Neg") == 0;
    for (uint64_t e = 0; e < out->count; e++) {
        if (is_not) {
            out->i64[e] = get_f(x, e) == 0;
        } else if (x->f32) {
            float v = x->f32[e];
            out->f32[e] = is_sqrt ? sqrtf(v) : neg ? -v : fabsf(v);
        } else {
            uint64_t v = (uint64_t)x->i64[e], minus = 0 - v;
            out->i64[e] = (int64_t)(neg || x->i64[e] < 0 ? minus : v);
        }
    }
    return CLEVAL_OK;
}

/* ---- Cast ---- */

static bool cast_to_float(int64_t to)
{
    return to == CLEVAL_ONNX_FLOAT || to == CLEVAL_ONNX_DOUBLE;
}

/* An integer of ONNX type `to` from v, wrapped to its width as a C cast of that type does. */
static int64_t narrow_int(int64_t to, int64_t v)
{
    switch (to) {
    case CLEVAL_ONNX_INT8: return (int8_t)(uint8_t)(uint64_t)v;
    case CLEVAL_ONNX_UINT8: return (uint8_t)(uint64_t)v;
    case CLEVAL_ONNX_INT16: return (int16_t)(uint16_t)(uint64_t)v;
    case CLEVAL_ONNX_UINT16: return (uint16_t)(uint64_t)v;
    case CLEVAL_ONNX_INT32: return (int32_t)(uint32_t)(uint64_t)v;
    case CLEVAL_ONNX_UINT32: return (uint32_t)(uint64_t)v;
    case CLEVAL_ONNX_BOOL: return v != 0;
    default: return v;
    }
}

static cleval_status eval_cast(cleval_nn *nn, nn_op *op, nn_value *out)
{
    const nn_value *x = nn_in(nn, op, 0);
    int64_t to = op->p.fold.to;
    cleval_status status = set_output(nn, op, out, &x->shape, cast_to_float(to));
    if (status != CLEVAL_OK) return status;
    for (uint64_t e = 0; e < out->count; e++) {
        if (out->f32) {
            out->f32[e] = (float)get_f(x, e);
        } else if (!x->f32) {
            out->i64[e] = narrow_int(to, x->i64[e]);
        } else if (to == CLEVAL_ONNX_BOOL) {
            out->i64[e] = x->f32[e] != 0.0f;
        } else {
            float v = x->f32[e];
            if (!(v > -9.2e18f && v < 9.2e18f))
                return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "%g cannot be cast to %s", (double)v,
                                  cleval_onnx_dtype_name((int32_t)to));
            out->i64[e] = narrow_int(to, (int64_t)v);
        }
    }
    return CLEVAL_OK;
}

/* ---- shapes ---- */

static cleval_status eval_shape(cleval_nn *nn, nn_op *op, nn_value *out)
{
    const nn_shape *in = &nn_in(nn, op, 0)->shape;
    int64_t rank = in->rank, start = op->p.fold.axis, end = op->p.fold.end;
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = start < 0 ? 0 : start > rank ? rank : start;
    end = end < 0 ? 0 : end > rank ? rank : end;
    nn_shape shape = {1, {end > start ? end - start : 0}};
    cleval_status status = set_output(nn, op, out, &shape, false);
    for (int64_t i = start; status == CLEVAL_OK && i < end; i++)
        out->i64[i - start] = in->d[i];
    return status;
}

static cleval_status eval_size(cleval_nn *nn, nn_op *op, nn_value *out)
{
    nn_shape scalar = {0, {0}};
    cleval_status status = set_output(nn, op, out, &scalar, false);
    if (status == CLEVAL_OK) out->i64[0] = (int64_t)nn_shape_count(&nn_in(nn, op, 0)->shape);
    return status;
}

cleval_status nn_host_shape(cleval_nn *nn, const nn_op *op, uint32_t i, nn_shape *shape)
{
    const int64_t *dims = NULL;
    uint64_t count = 0;
    cleval_status status = nn_host_ints(nn, op, i, "shape", &dims, &count);
    if (status != CLEVAL_OK) return status;
    if (count > NN_MAX_RANK)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "a shape of rank %llu is more than %d",
                          (unsigned long long)count, NN_MAX_RANK);
    shape->rank = (uint32_t)count;
    for (uint32_t d = 0; d < shape->rank; d++) {
        if (dims[d] < 0)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "shape entry %lld is negative",
                              (long long)dims[d]);
        shape->d[d] = dims[d];
    }
    return CLEVAL_OK;
}

static cleval_status eval_constantofshape(cleval_nn *nn, nn_op *op, nn_value *out)
{
    nn_shape shape;
    cleval_status status = nn_host_shape(nn, op, 0, &shape);
    if (status == CLEVAL_OK) status = set_output(nn, op, out, &shape, op->p.fold.fill_float);
    for (uint64_t e = 0; status == CLEVAL_OK && e < out->count; e++)
        put(out, e, op->p.fold.fill_f32, op->p.fold.fill_i64);
    return status;
}

static cleval_status eval_range(cleval_nn *nn, nn_op *op, nn_value *out)
{
    const nn_value *v[3];
    for (uint32_t i = 0; i < 3; i++) {
        if (!nn_has_in(op, i) || nn_in(nn, op, i)->count != 1)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input %u must be a scalar", i);
        v[i] = nn_in(nn, op, i);
    }
    double start = get_f(v[0], 0), limit = get_f(v[1], 0), delta = get_f(v[2], 0);
    if (delta == 0 || !isfinite(start) || !isfinite(limit) || !isfinite(delta))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "Range(%g, %g, %g) is not a finite range",
                          start, limit, delta);
    double steps = ceil((limit - start) / delta);
    if (steps > (double)NN_MAX_ELEMENTS) steps = (double)NN_MAX_ELEMENTS + 1; /* refused below */
    nn_shape shape = {1, {steps > 0 ? (int64_t)steps : 0}};
    bool floats = v[0]->f32 != NULL;
    cleval_status status = set_output(nn, op, out, &shape, floats);
    for (uint64_t e = 0; status == CLEVAL_OK && e < out->count; e++)
        if (floats)
            out->f32[e] = (float)(start + (double)e * delta);
        else
            out->i64[e] = (int64_t)((uint64_t)v[0]->i64[0] + e * (uint64_t)v[2]->i64[0]);
    return status;
}

static cleval_status eval_expand(cleval_nn *nn, nn_op *op, nn_value *out)
{
    const nn_value *x = nn_in(nn, op, 0);
    nn_shape target, shape;
    cleval_status status = nn_host_shape(nn, op, 1, &target);
    if (status != CLEVAL_OK) return status;
    if (!nn_broadcast(&x->shape, &target, &shape)) return no_broadcast(nn, op, &x->shape, &target);
    if ((status = set_output(nn, op, out, &shape, x->f32 != NULL)) != CLEVAL_OK) return status;
    int64_t step[NN_MAX_RANK];
    broadcast_steps(&x->shape, &shape, step);
    gather_affine(x, out, 0, step);
    return CLEVAL_OK;
}

static cleval_status eval_tile(cleval_nn *nn, nn_op *op, nn_value *out)
{
    const nn_value *x = nn_in(nn, op, 0);
    const int64_t *repeats;
    uint64_t count;
    cleval_status status = nn_host_ints(nn, op, 1, "repeats", &repeats, &count);
    if (status != CLEVAL_OK) return status;
    if (count != x->shape.rank)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "%llu repeats for a rank-%u input",
                          (unsigned long long)count, x->shape.rank);
    nn_shape shape = x->shape;
    for (uint32_t d = 0; d < shape.rank; d++) {
        if (repeats[d] < 0 || repeats[d] > NN_MAX_ELEMENTS)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "repeat %lld is invalid",
                              (long long)repeats[d]);
        shape.d[d] *= repeats[d]; /* both at most 2^31: no overflow */
    }
    if ((status = set_output(nn, op, out, &shape, x->f32 != NULL)) != CLEVAL_OK) return status;
    int64_t strides[NN_MAX_RANK];
    strides_of(&x->shape, strides);
    for (uint64_t e = 0; e < out->count; e++) {
        uint64_t rest = e;
        int64_t at = 0;
        for (uint32_t d = shape.rank; d-- > 0;) {
            at += (int64_t)(rest % (uint64_t)shape.d[d]) % x->shape.d[d] * strides[d];
            rest /= (uint64_t)shape.d[d];
        }
        copy_element(x, (uint64_t)at, out, e);
    }
    return CLEVAL_OK;
}

static cleval_status eval_transpose(cleval_nn *nn, nn_op *op, nn_value *out)
{
    const nn_value *x = nn_in(nn, op, 0);
    uint32_t rank = x->shape.rank, perm[NN_MAX_RANK];
    int64_t reversed[NN_MAX_RANK];
    for (uint32_t d = 0; d < rank; d++)
        reversed[d] = rank - 1 - d;
    const nn_fold_params *p = &op->p.fold;
    if (p->has_perm && p->n_axes != rank)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "perm has %u entries for a rank-%u input",
                          p->n_axes, rank);
    cleval_status status =
        normalise_axes(nn, op, p->has_perm ? p->axes : reversed, rank, rank, perm);
    if (status != CLEVAL_OK) return status;
    nn_shape shape = {rank, {0}};
    int64_t strides[NN_MAX_RANK], step[NN_MAX_RANK];
    strides_of(&x->shape, strides);
    for (uint32_t d = 0; d < rank; d++) {
        shape.d[d] = x->shape.d[perm[d]];
        step[d] = strides[perm[d]];
    }
    if ((status = set_output(nn, op, out, &shape, x->f32 != NULL)) != CLEVAL_OK) return status;
    gather_affine(x, out, 0, step);
    return CLEVAL_OK;
}

static cleval_status eval_squeeze(cleval_nn *nn, nn_op *op, nn_value *out)
{
    const nn_value *x = nn_in(nn, op, 0);
    const int64_t *values;
    uint64_t count;
    uint32_t axes[NN_MAX_RANK];
    cleval_status status = axes_of(nn, op, 1, &values, &count);
    if (status == CLEVAL_OK) status = normalise_axes(nn, op, values, count, x->shape.rank, axes);
    if (status != CLEVAL_OK) return status;
    bool drop[NN_MAX_RANK] = {false};
    for (uint64_t i = 0; i < count; i++) {
        if (x->shape.d[axes[i]] != 1)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "axis %u has size %lld, not 1", axes[i],
                              (long long)x->shape.d[axes[i]]);
        drop[axes[i]] = true;
    }
    nn_shape shape = {0, {0}};
    for (uint32_t d = 0; d < x->shape.rank; d++)
        if (!(count ? drop[d] : x->shape.d[d] == 1)) shape.d[shape.rank++] = x->shape.d[d];
    if ((status = set_output(nn, op, out, &shape, x->f32 != NULL)) != CLEVAL_OK) return status;
    copy_values(x, out);
    return CLEVAL_OK;
}

static cleval_status eval_unsqueeze(cleval_nn *nn, nn_op *op, nn_value *out)
{
    const nn_value *x = nn_in(nn, op, 0);
    const int64_t *values;
    uint64_t count;
    cleval_status status = axes_of(nn, op, 1, &values, &count);
    if (status != CLEVAL_OK) return status;
    if (!values) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "axes are missing");
    if (x->shape.rank + count > NN_MAX_RANK)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "the output rank is more than %d",
                          NN_MAX_RANK);
    uint32_t rank = x->shape.rank + (uint32_t)count, axes[NN_MAX_RANK];
    if ((status = normalise_axes(nn, op, values, count, rank, axes)) != CLEVAL_OK) return status;
    bool added[NN_MAX_RANK] = {false};
    for (uint64_t i = 0; i < count; i++)
        added[axes[i]] = true;
    nn_shape shape = {rank, {0}};
    for (uint32_t d = 0, j = 0; d < rank; d++)
        shape.d[d] = added[d] ? 1 : x->shape.d[j++];
    if ((status = set_output(nn, op, out, &shape, x->f32 != NULL)) != CLEVAL_OK) return status;
    copy_values(x, out);
    return CLEVAL_OK;
}

static cleval_status eval_concat(cleval_nn *nn, nn_op *op, nn_value *out)
{
    if (op->n_in == 0 || !nn_has_in(op, 0))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "Concat needs inputs");
    const nn_value *first = nn_in(nn, op, 0);
    uint32_t rank = first->shape.rank, axis;
    if (!nn_axis(op->p.fold.axis, rank, &axis))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "axis %lld is out of range for rank %u",
                          (long long)op->p.fold.axis, rank);
    nn_shape shape = first->shape;
    shape.d[axis] = 0;
    for (uint32_t i = 0; i < op->n_in; i++) {
        const nn_value *v = nn_has_in(op, i) ? nn_in(nn, op, i) : NULL;
        bool same = v && v->shape.rank == rank && (v->f32 != NULL) == (first->f32 != NULL);
        for (uint32_t d = 0; same && d < rank; d++)
            same = d == axis || v->shape.d[d] == first->shape.d[d];
        if (!same)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                              "input %u does not match input 0 in type, rank or the dims off "
                              "axis %u",
                              i, axis);
        shape.d[axis] += v->shape.d[axis]; /* each at most 2^31: no overflow */
    }
    cleval_status status = set_output(nn, op, out, &shape, first->f32 != NULL);
    if (status != CLEVAL_OK) return status;
    uint64_t outer = 1, inner = 1;
    for (uint32_t d = 0; d < axis; d++)
        outer *= (uint64_t)shape.d[d];
    for (uint32_t d = axis + 1; d < rank; d++)
        inner *= (uint64_t)shape.d[d];
    uint64_t e = 0;
    for (uint64_t o = 0; o < outer; o++)
        for (uint32_t i = 0; i < op->n_in; i++) {
            const nn_value *v = nn_in(nn, op, i);
            uint64_t run = (uint64_t)v->shape.d[axis] * inner;
            for (uint64_t k = 0; k < run; k++)
                copy_element(v, o * run + k, out, e++);
        }
    return CLEVAL_OK;
}

static cleval_status eval_gather(cleval_nn *nn, nn_op *op, nn_value *out)
{
    const nn_value *x = nn_in(nn, op, 0);
    if (!nn_has_in(op, 1)) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input indices is missing");
    const nn_value *idx = nn_in(nn, op, 1);
    uint32_t axis;
    if (!nn_axis(op->p.fold.axis, x->shape.rank, &axis))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "axis %lld is out of range for rank %u",
                          (long long)op->p.fold.axis, x->shape.rank);
    if (!idx->i64) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "indices must be integers");
    if (x->shape.rank - 1 + idx->shape.rank > NN_MAX_RANK)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "the output rank is more than %d",
                          NN_MAX_RANK);
    nn_shape shape = {0, {0}};
    for (uint32_t d = 0; d < axis; d++)
        shape.d[shape.rank++] = x->shape.d[d];
    for (uint32_t d = 0; d < idx->shape.rank; d++)
        shape.d[shape.rank++] = idx->shape.d[d];
    for (uint32_t d = axis + 1; d < x->shape.rank; d++)
        shape.d[shape.rank++] = x->shape.d[d];
    cleval_status status = set_output(nn, op, out, &shape, x->f32 != NULL);
    if (status != CLEVAL_OK) return status;
    uint64_t outer = 1, inner = 1, n = (uint64_t)x->shape.d[axis];
    for (uint32_t d = 0; d < axis; d++)
        outer *= (uint64_t)x->shape.d[d];
    for (uint32_t d = axis + 1; d < x->shape.rank; d++)
        inner *= (uint64_t)x->shape.d[d];
    uint64_t e = 0;
    for (uint64_t o = 0; o < outer; o++)
        for (uint64_t j = 0; j < idx->count; j++) {
            int64_t k = idx->i64[j] < 0 ? idx->i64[j] + (int64_t)n : idx->i64[j];
            if (k < 0 || k >= (int64_t)n)
                return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                                  "index %lld is out of range for an axis of %llu",
                                  (long long)idx->i64[j], (unsigned long long)n);
            for (uint64_t i = 0; i < inner; i++)
                copy_element(x, (o * n + (uint64_t)k) * inner + i, out, e++);
        }
    return CLEVAL_OK;
}

/* Slice's start and end on an axis of `dim` for `step`, clamped as ONNX says. */
static void slice_bounds(int64_t dim, int64_t step, int64_t *start, int64_t *end)
{
    int64_t s = *start, e = *end;
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (step > 0) {
        s = s < 0 ? 0 : s > dim ? dim : s;
        e = e < 0 ? 0 : e > dim ? dim : e;
    } else {
        s = s < 0 ? -1 : s > dim - 1 ? dim - 1 : s;
        e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
    }
    *start = s;
    *end = e;
}

/* Slice's starts / ends / axes / steps: attributes before opset 10, inputs from it on. */
typedef struct slice_args {
    const int64_t *starts, *ends, *axes, *steps;
    uint64_t n, n_ends, n_axes, n_steps;
} slice_args;

static cleval_status slice_args_of(cleval_nn *nn, const nn_op *op, slice_args *a)
{
    const nn_fold_params *p = &op->p.fold;
    cleval_status status = CLEVAL_OK;
    memset(a, 0, sizeof *a);
    if (nn->opset < 10) {
        a->starts = p->starts;
        a->n = p->n_starts;
        a->ends = p->ends;
        a->n_ends = p->n_ends;
    } else if ((status = nn_host_ints(nn, op, 1, "starts", &a->starts, &a->n)) != CLEVAL_OK ||
               (status = nn_host_ints(nn, op, 2, "ends", &a->ends, &a->n_ends)) != CLEVAL_OK ||
               (nn_has_in(op, 4) &&
                (status = nn_host_ints(nn, op, 4, "steps", &a->steps, &a->n_steps)) != CLEVAL_OK)) {
        return status;
    }
    if ((status = axes_of(nn, op, 3, &a->axes, &a->n_axes)) != CLEVAL_OK) return status;
    if (a->n_ends != a->n || (a->axes && a->n_axes != a->n) || (a->steps && a->n_steps != a->n))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                          "starts, ends, axes and steps must have as many entries");
    return CLEVAL_OK;
}

static cleval_status eval_slice(cleval_nn *nn, nn_op *op, nn_value *out)
{
    const nn_value *x = nn_in(nn, op, 0);
    uint32_t rank = x->shape.rank, axes[NN_MAX_RANK];
    slice_args a;
    cleval_status status = slice_args_of(nn, op, &a);
    if (status != CLEVAL_OK) return status;
    int64_t identity[NN_MAX_RANK];
    for (uint32_t d = 0; d < NN_MAX_RANK; d++)
        identity[d] = d;
    if (a.n > rank)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "%llu starts for a rank-%u input",
                          (unsigned long long)a.n, rank);
    if ((status = normalise_axes(nn, op, a.axes ? a.axes : identity, a.n, rank, axes)) != CLEVAL_OK)
        return status;
    int64_t start[NN_MAX_RANK] = {0}, step[NN_MAX_RANK], strides[NN_MAX_RANK];
    nn_shape shape = x->shape;
    for (uint32_t d = 0; d < rank; d++)
        step[d] = 1;
    for (uint64_t i = 0; i < a.n; i++) {
        uint32_t d = axes[i];
        int64_t s = a.starts[i], e = a.ends[i], k = a.steps ? a.steps[i] : 1, dim = x->shape.d[d];
        if (k == 0) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "a step of 0 is invalid");
        /* A step longer than the axis takes one element at most: bounding it keeps the
         * arithmetic below in range. */
        if (k > dim + 1) k = dim + 1;
        if (k < -(dim + 1)) k = -(dim + 1);
        slice_bounds(dim, k, &s, &e);
        /* Both bounds lie in [-1, dim]. */
        shape.d[d] = k > 0 ? (e > s ? (e - s - 1) / k + 1 : 0) : (s > e ? (s - e - 1) / -k + 1 : 0);
        start[d] = s;
        step[d] = k;
    }
    if ((status = set_output(nn, op, out, &shape, x->f32 != NULL)) != CLEVAL_OK) return status;
    strides_of(&x->shape, strides);
    int64_t offset = 0;
    for (uint32_t d = 0; d < rank; d++) {
        if (shape.d[d] > 0) offset += start[d] * strides[d];
        step[d] *= strides[d];
    }
    gather_affine(x, out, offset, step);
    return CLEVAL_OK;
}

/* ---- ScatterND ---- */

/* out = data with the slices that `indices` names replaced by the matching slices of updates.
 * indices is [..., k]: each row names an element of data's first k axes, and the slice there
 * (data's axes k...) comes from updates' row of the same index; later rows win. */
static cleval_status eval_scatternd(cleval_nn *nn, nn_op *op, nn_value *out)
{
    if (op->n_in != 3 || !nn_has_in(op, 1) || !nn_has_in(op, 2))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "ScatterND needs 3 inputs");
    const nn_value *data = nn_in(nn, op, 0), *idx = nn_in(nn, op, 1), *upd = nn_in(nn, op, 2);
    if (!idx->i64) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "indices must be integers");
    if ((upd->f32 != NULL) != (data->f32 != NULL))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "data and updates have different types");
    uint32_t q = idx->shape.rank, r = data->shape.rank;
    int64_t k = q ? idx->shape.d[q - 1] : -1;
    /* updates' shape is indices' shape without its last axis, then data's axes k... */
    bool valid = q >= 1 && k >= 0 && k <= (int64_t)r && upd->shape.rank == q - 1 + r - (uint32_t)k;
    for (uint32_t d = 0; valid && d + 1 < q; d++)
        valid = upd->shape.d[d] == idx->shape.d[d];
    for (uint32_t d = (uint32_t)k; valid && d < r; d++)
        valid = upd->shape.d[q - 1 + d - (uint32_t)k] == data->shape.d[d];
    if (!valid)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                          "the shapes of data, indices and updates do not agree");
    cleval_status status = set_output(nn, op, out, &data->shape, data->f32 != NULL);
    if (status != CLEVAL_OK) return status;
    copy_values(data, out);
    int64_t strides[NN_MAX_RANK];
    strides_of(&data->shape, strides);
    uint64_t slice = 1, rows = 1;
    for (uint32_t d = 0; d + 1 < q; d++)
        rows *= (uint64_t)idx->shape.d[d];
    for (uint32_t d = (uint32_t)k; d < r; d++)
        slice *= (uint64_t)data->shape.d[d];
    for (uint64_t row = 0; row < rows && out->count; row++) {
        int64_t at = 0;
        for (int64_t j = 0; j < k; j++) {
            int64_t i = idx->i64[row * (uint64_t)k + (uint64_t)j], dim = data->shape.d[j];
            if (i < -dim || i >= dim)
                return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                                  "index %lld is out of range for an axis of %lld", (long long)i,
                                  (long long)dim);
            at += (i < 0 ? i + dim : i) * strides[j];
        }
        for (uint64_t e = 0; e < slice; e++)
            copy_element(upd, row * slice + e, out, (uint64_t)at + e);
    }
    return CLEVAL_OK;
}

/* ---- parsing ---- */

static cleval_status parse_plain(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    return nn_check_attrs(nn, op, node, NULL);
}

static cleval_status parse_view(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    cleval_status status = fold_of(op)->view->parse(nn, op, node);
    op->alias_only = false; /* the values are copied on the host */
    return status;
}

/* ScatterND replaces (reduction="none", the default); combining reductions are refused. */
static cleval_status parse_scatternd(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"reduction", NULL};
    const char *reduction;
    cleval_status status = nn_check_attrs(nn, op, node, known);
    if (status == CLEVAL_OK) status = nn_attr_string(nn, node, "reduction", "none", &reduction);
    if (status == CLEVAL_OK && strcmp(reduction, "none") != 0)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "attribute reduction=%s is not supported",
                          reduction);
    return status;
}

static cleval_status parse_mod(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"fmod", NULL};
    cleval_status status = nn_check_attrs(nn, op, node, known);
    if (status == CLEVAL_OK) status = nn_attr_bool(nn, op, node, "fmod", false, &op->p.fold.fmod);
    return status;
}

static cleval_status parse_cast(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"to", NULL};
    int64_t to;
    cleval_status status = nn_check_attrs(nn, op, node, known);
    if (status == CLEVAL_OK) status = nn_attr_int(nn, node, "to", -1, &to);
    if (status != CLEVAL_OK) return status;
    switch (to) {
    case CLEVAL_ONNX_FLOAT:
    case CLEVAL_ONNX_DOUBLE:
    case CLEVAL_ONNX_INT8:
    case CLEVAL_ONNX_UINT8:
    case CLEVAL_ONNX_INT16:
    case CLEVAL_ONNX_UINT16:
    case CLEVAL_ONNX_INT32:
    case CLEVAL_ONNX_UINT32:
    case CLEVAL_ONNX_INT64:
    case CLEVAL_ONNX_UINT64:
    case CLEVAL_ONNX_BOOL: op->p.fold.to = to; return CLEVAL_OK;
    default:
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "attribute to=%lld (%s) is not supported",
                          (long long)to, cleval_onnx_dtype_name((int32_t)to));
    }
}

/* An INTS attribute of at most NN_MAX_RANK entries into `to`; *present tells whether given. */
static cleval_status parse_rank_ints(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node,
                                     const char *name, int64_t *to, uint32_t *count, bool *present)
{
    const int64_t *values;
    cleval_status status = nn_attr_ints(nn, node, name, &values, count);
    if (status != CLEVAL_OK) return status;
    if (*count > NN_MAX_RANK)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "attribute %s has %u entries, more than %d", name, *count, NN_MAX_RANK);
    if (present) *present = cleval_onnx_node_attr(node, name) != NULL;
    if (*count) memcpy(to, values, *count * sizeof *to);
    return CLEVAL_OK;
}

/* Squeeze / Unsqueeze: axes is an attribute before opset 13, an input from it on. */
static cleval_status parse_squeeze(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const older[] = {"axes", NULL};
    nn_fold_params *p = &op->p.fold;
    cleval_status status = nn_check_attrs(nn, op, node, nn->opset < 13 ? older : NULL);
    if (status == CLEVAL_OK && nn->opset < 13)
        status = parse_rank_ints(nn, op, node, "axes", p->axes, &p->n_axes, &p->has_axes);
    return status;
}

static cleval_status parse_transpose(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"perm", NULL};
    nn_fold_params *p = &op->p.fold;
    cleval_status status = nn_check_attrs(nn, op, node, known);
    if (status == CLEVAL_OK)
        status = parse_rank_ints(nn, op, node, "perm", p->axes, &p->n_axes, &p->has_perm);
    return status;
}

static cleval_status parse_axis(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node,
                                bool required)
{
    static const char *const known[] = {"axis", NULL};
    cleval_status status = nn_check_attrs(nn, op, node, known);
    if (status != CLEVAL_OK) return status;
    if (required && !cleval_onnx_node_attr(node, "axis"))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "attribute axis is missing");
    return nn_attr_int(nn, node, "axis", 0, &op->p.fold.axis);
}

static cleval_status parse_concat(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    return parse_axis(nn, op, node, true);
}

static cleval_status parse_gather(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    return parse_axis(nn, op, node, false);
}

static cleval_status parse_shape(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"start", "end", NULL};
    cleval_status status = nn_check_attrs(nn, op, node, known);
    if (status == CLEVAL_OK) status = nn_attr_int(nn, node, "start", 0, &op->p.fold.axis);
    if (status == CLEVAL_OK) status = nn_attr_int(nn, node, "end", INT64_MAX, &op->p.fold.end);
    return status;
}

static cleval_status parse_slice(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const older[] = {"starts", "ends", "axes", NULL};
    nn_fold_params *p = &op->p.fold;
    cleval_status status = nn_check_attrs(nn, op, node, nn->opset < 10 ? older : NULL);
    if (status != CLEVAL_OK || nn->opset >= 10) return status;
    if ((status = parse_rank_ints(nn, op, node, "starts", p->starts, &p->n_starts, NULL)) !=
            CLEVAL_OK ||
        (status = parse_rank_ints(nn, op, node, "ends", p->ends, &p->n_ends, NULL)) != CLEVAL_OK)
        return status;
    return parse_rank_ints(nn, op, node, "axes", p->axes, &p->n_axes, &p->has_axes);
}

/* ConstantOfShape's fill: a one-element tensor, float 0 when absent. */
static cleval_status fill_of(cleval_nn *nn, const nn_op *op, const cleval_onnx_node *node,
                             nn_fold_params *p)
{
    const cleval_onnx_attr *a = cleval_onnx_node_attr(node, "value");
    p->fill_float = true;
    p->fill_f32 = 0.0f;
    if (!a) return CLEVAL_OK;
    if (a->type != CLEVAL_ONNX_ATTR_TENSOR || !a->t || a->t->count != 1 ||
        a->t->storage == CLEVAL_ONNX_DATA_NONE)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "attribute value must be a one-element numeric tensor");
    p->fill_float = a->t->storage == CLEVAL_ONNX_DATA_F32;
    if (p->fill_float)
        p->fill_f32 = a->t->f32[0];
    else
        p->fill_i64 = a->t->i64[0];
    return CLEVAL_OK;
}

cleval_status nn_constantofshape_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"value", NULL};
    cleval_status status = nn_check_attrs(nn, op, node, known);
    if (status == CLEVAL_OK) status = fill_of(nn, op, node, &op->p.fold);
    return status;
}

/* ---- the host kinds ---- */

/* Whether v holds the shape, element type and values of `old`. */
static bool same_contents(const nn_value *old, const nn_value *v)
{
    if (old->shape.rank != v->shape.rank || old->count != v->count ||
        (old->f32 != NULL) != (v->f32 != NULL) || (!old->f32 && !old->i64))
        return false;
    for (uint32_t d = 0; d < v->shape.rank; d++)
        if (old->shape.d[d] != v->shape.d[d]) return false;
    if (v->f32) return memcmp(old->f32, v->f32, (size_t)v->count * sizeof *v->f32) == 0;
    return memcmp(old->i64, v->i64, (size_t)v->count * sizeof *v->i64) == 0;
}

static cleval_status host_infer(cleval_nn *nn, nn_op *op)
{
    const fold_kind *fk = fold_of(op);
    if (!nn_has_in(op, 0)) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "input 0 is missing");
    for (uint32_t i = 0; i < op->n_in && !fk->reads_shapes; i++) {
        const nn_value *v = nn_has_in(op, i) ? nn_in(nn, op, i) : NULL;
        if (v && !v->f32 && !v->i64)
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                              "input '%s' has an element type that cannot be evaluated", v->name);
    }
    /* The previous values stay until the new ones are known: a device copy of the output
     * (a data operand of a device op) is dropped only when its contents change. */
    nn_value *out = nn_out(nn, op, 0), old = *out;
    out->f32 = NULL;
    out->i64 = NULL;
    cleval_status status = fk->eval(nn, op, out);
    if (out->mem && (status != CLEVAL_OK || !same_contents(&old, out))) {
        clReleaseMemObject(out->mem);
        out->mem = NULL;
    }
    release_data(&old);
    return status;
}

static cleval_status host_nothing(cleval_nn *nn, nn_op *op)
{
    (void)nn;
    (void)op;
    return CLEVAL_OK;
}

#define HOST(type, parse, eval)                                                                    \
    {                                                                                              \
        {type, parse, host_infer, host_nothing, host_nothing}, eval, NULL, false                   \
    }
#define VIEW(type, device)                                                                         \
    {                                                                                              \
        {type, parse_view, host_infer, host_nothing, host_nothing}, eval_view, &device, false      \
    }
#define SHAPE(type, parse, eval)                                                                   \
    {                                                                                              \
        {type, parse, host_infer, host_nothing, host_nothing}, eval, NULL, true                    \
    }

static const fold_kind FOLD_KINDS[] = {
    VIEW("Identity", nn_kind_identity),
    VIEW("Dropout", nn_kind_dropout),
    VIEW("Reshape", nn_kind_reshape),
    VIEW("Flatten", nn_kind_flatten),
    HOST("Cast", parse_cast, eval_cast),
    HOST("Transpose", parse_transpose, eval_transpose),
    HOST("Squeeze", parse_squeeze, eval_squeeze),
    HOST("Unsqueeze", parse_squeeze, eval_unsqueeze),
    HOST("Concat", parse_concat, eval_concat),
    HOST("Gather", parse_gather, eval_gather),
    HOST("Slice", parse_slice, eval_slice),
    SHAPE("Shape", parse_shape, eval_shape),
    SHAPE("Size", parse_plain, eval_size),
    HOST("ConstantOfShape", nn_constantofshape_parse, eval_constantofshape),
    HOST("Range", parse_plain, eval_range),
    HOST("Expand", parse_plain, eval_expand),
    HOST("Tile", parse_plain, eval_tile),
    HOST("Add", parse_plain, eval_elementwise),
    HOST("Sub", parse_plain, eval_elementwise),
    HOST("Mul", parse_plain, eval_elementwise),
    HOST("Div", parse_plain, eval_elementwise),
    HOST("Mod", parse_mod, eval_elementwise),
    HOST("Pow", parse_plain, eval_elementwise),
    HOST("Min", parse_plain, eval_elementwise),
    HOST("Max", parse_plain, eval_elementwise),
    HOST("Equal", parse_plain, eval_elementwise),
    HOST("Less", parse_plain, eval_elementwise),
    HOST("Greater", parse_plain, eval_elementwise),
    HOST("And", parse_plain, eval_elementwise),
    HOST("Or", parse_plain, eval_elementwise),
    HOST("Neg", parse_plain, eval_unary),
    HOST("Abs", parse_plain, eval_unary),
    HOST("Sqrt", parse_plain, eval_unary),
    HOST("Not", parse_plain, eval_unary),
    HOST("Where", parse_plain, eval_where),
    HOST("ScatterND", parse_scatternd, eval_scatternd),
};

/* ConstantOfShape with an integer fill: a shape-like host value. */
static bool int_fill(const cleval_onnx_node *node)
{
    const cleval_onnx_attr *a = cleval_onnx_node_attr(node, "value");
    return a && a->type == CLEVAL_ONNX_ATTR_TENSOR && a->t && a->t->storage == CLEVAL_ONNX_DATA_I64;
}

const nn_op_kind *nn_host_kind(const cleval_onnx_node *node, bool all_const, bool float_data)
{
    for (size_t i = 0; i < sizeof FOLD_KINDS / sizeof FOLD_KINDS[0]; i++) {
        if (strcmp(FOLD_KINDS[i].kind.op_type, node->op_type) != 0) continue;
        /* Floats broadcast or filled to a computed shape are activations: the device makes
         * them (op_expand.c). */
        if (!all_const && FOLD_KINDS[i].eval == eval_constantofshape && !int_fill(node))
            return NULL;
        if (!all_const && FOLD_KINDS[i].eval == eval_expand && float_data) return NULL;
        return &FOLD_KINDS[i].kind;
    }
    return NULL;
}

bool nn_host_reads_shapes(const nn_op_kind *kind)
{
    for (size_t i = 0; i < sizeof FOLD_KINDS / sizeof FOLD_KINDS[0]; i++)
        if (kind == &FOLD_KINDS[i].kind) return FOLD_KINDS[i].reads_shapes;
    return false;
}

cleval_status nn_fold_op(cleval_nn *nn, nn_op *op)
{
    cleval_status status = op->kind->infer(nn, op);
    if (status != CLEVAL_OK) return status;
    for (uint32_t o = 0; o < op->n_out; o++) {
        if (op->out[o] < 0) continue;
        nn_value *v = nn_out(nn, op, o);
        v->kind = NN_VALUE_CONST;
        v->producer = -1;
    }
    for (uint32_t i = 0; i < op->n_in; i++)
        if (op->in[i] >= 0) nn->values[op->in[i]].uses--;
    op->n_in = 0;
    op->dead = true;
    return CLEVAL_OK;
}
