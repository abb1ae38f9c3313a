/* Shape inference for the whole graph, with concrete shapes: every op's infer() runs in
 * topological order from the runtime inputs' current shapes. A classifier is inferred for a
 * batch n; general graphs for the shapes of each run. Sizes are bounded here, so a hostile
 * model cannot ask for absurd buffers. */
#include "nn_internal.h"

#include <stdio.h>
#include <string.h>

bool nn_broadcast(const nn_shape *a, const nn_shape *b, nn_shape *out)
{
    uint32_t rank = a->rank > b->rank ? a->rank : b->rank;
    nn_shape r = {rank, {0}};
    for (uint32_t i = 0; i < rank; i++) {
        int64_t da = i < rank - a->rank ? 1 : a->d[i - (rank - a->rank)];
        int64_t db = i < rank - b->rank ? 1 : b->d[i - (rank - b->rank)];
        if (da == db || db == 1)
            r.d[i] = da;
        else if (da == 1)
            r.d[i] = db;
        else
            return false;
    }
    *out = r;
    return true;
}

int64_t nn_batch_size(const cleval_nn *nn)
{
    return nn->general ? 0 : nn->values[nn->inputs[0]].shape.d[0];
}

bool nn_broadcast_keeps_batch(const nn_value *const *operands, const nn_shape *const *shapes,
                              uint32_t count, const nn_shape *out)
{
    int axis = -1;
    int64_t inner = 0;
    for (uint32_t i = 0; i < count; i++) {
        int b = nn_batch_axis(operands[i]);
        if (b < 0) continue;
        int at = b + (int)(out->rank - shapes[i]->rank);
        if (shapes[i]->d[b] != out->d[at]) return false;
        if (axis >= 0 && (at != axis || operands[i]->batch_inner != inner)) return false;
        axis = at;
        inner = operands[i]->batch_inner;
    }
    for (uint32_t i = 0; i < count && axis >= 0; i++) {
        if (nn_batch_axis(operands[i]) >= 0) continue;
        int at = axis - (int)(out->rank - shapes[i]->rank);
        if (at >= 0 && shapes[i]->d[at] != 1) return false;
    }
    return true;
}

/* The row-major order of a value with its batch on axis a (extent x * N * y, sample
 * (i / y) % N) is (p * N + s) * m + q: p counts the blocks before the batch digit. A reshape
 * keeps samples apart when that digit spans [p, p * N) of whole blocks of one output axis c:
 * the axes before c multiply to a divisor of p and those up to c to a multiple of p * N. */
void nn_reshape_batch(const cleval_nn *nn, nn_op *op, const nn_value *x, nn_value *y)
{
    int64_t n = nn_batch_size(nn);
    int a = nn_batch_axis(x);
    if (!nn->batch_ref || a < 0 || n < 1) return;
    int64_t p = x->shape.d[a] / (n * x->batch_inner);
    for (int i = 0; i < a; i++)
        p *= x->shape.d[i];
    if (p < 1) return; /* empty: nothing to mix */
    int64_t before = 1;
    for (uint32_t c = 0; c < y->shape.rank; c++) {
        int64_t upto = before * y->shape.d[c];
        if (upto > 0 && p % before == 0 && upto % (p * n) == 0) {
            y->batch_axis = (int)c;
            y->batch_inner = upto / (p * n);
            return;
        }
        before = upto;
    }
    op->mixes_batch = true;
}

/* The one axis along which `now` (a batch of 2) is twice `ref` (a batch of 1), all others
 * equal; -1 when there is none. */
static int doubled_axis(const nn_shape *ref, const nn_shape *now)
{
    if (ref->rank != now->rank) return -1;
    int axis = -1;
    for (uint32_t d = 0; d < now->rank; d++) {
        if (now->d[d] == ref->d[d]) continue;
        if (axis >= 0 || now->d[d] != 2 * ref->d[d]) return -1;
        axis = (int)d;
    }
    return axis;
}

/* Whether op reads a value that depends on the runtime input's values. */
static bool reads_varying(const cleval_nn *nn, const nn_op *op)
{
    for (uint32_t i = 0; i < op->n_in; i++)
        if (nn_has_in(op, i) && nn->values[op->in[i]].varying) return true;
    return false;
}

static bool same_shape(const nn_shape *a, const nn_shape *b)
{
    if (a->rank != b->rank) return false;
    for (uint32_t d = 0; d < a->rank; d++)
        if (a->d[d] != b->d[d]) return false;
    return true;
}

/* Validation: the batch axes of op's outputs. Most ops keep the batch digit's place inside its
 * axis (the first varying input's batch_inner); reshape-like ones set it themselves, and must
 * agree with the axis that grows with the batch. */
static void track_batch(cleval_nn *nn, nn_op *op)
{
    int64_t inner = 1;
    for (uint32_t i = op->n_in; i-- > 0;)
        if (nn_has_in(op, i) && nn_batch_axis(nn_in(nn, op, i)) >= 0)
            inner = nn_in(nn, op, i)->batch_inner;
    for (uint32_t o = 0; o < op->n_out; o++) {
        if (op->out[o] < 0) continue;
        nn_value *v = nn_out(nn, op, o);
        if (!v->varying) continue;
        /* Computed from constants and shapes, and not growing with the batch: the same for
         * every sample (a mask built from the image size), read like a constant. */
        if (!reads_varying(nn, op) && same_shape(&nn->batch_ref[op->out[o]], &v->shape)) {
            v->varying = false;
            continue;
        }
        int axis = doubled_axis(&nn->batch_ref[op->out[o]], &v->shape);
        if (v->batch_axis >= 0) {
            if (v->batch_axis != axis) op->mixes_batch = true;
        } else {
            v->batch_axis = axis;
            v->batch_inner = inner;
        }
    }
}

cleval_status nn_infer_all(cleval_nn *nn)
{
    nn->shapes_valid = false;
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead) continue;
        op->workspace = 0;
        op->flops = 0;
        op->mixes_batch = false;
        for (uint32_t o = 0; nn->batch_ref && o < op->n_out; o++)
            if (op->out[o] >= 0) nn_out(nn, op, o)->batch_axis = -1;
        nn_use_tuning(nn, op);
        cleval_status status = op->kind->infer(nn, op);
        nn_use_tuning(nn, NULL);
        if (status != CLEVAL_OK) return status;
        for (uint32_t o = 0; o < op->n_out; o++) {
            if (op->out[o] < 0) continue;
            nn_value *v = &nn->values[op->out[o]];
            uint64_t count;
            if (!nn_shape_count_checked(&v->shape, &count)) {
                char shape[160];
                nn_shape_format(&v->shape, shape, sizeof shape);
                return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                                  "output '%s' of shape %s holds more than %lld elements", v->name,
                                  shape, (long long)NN_MAX_ELEMENTS);
            }
            v->count = count;
        }
        if (nn->batch_ref) track_batch(nn, op);
        if (op->workspace > (size_t)NN_MAX_ELEMENTS * sizeof(float))
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                              "needs a %zu-byte work buffer, more than supported", op->workspace);
    }
    nn->shapes_valid = true;
    return CLEVAL_OK;
}
