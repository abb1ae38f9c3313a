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

cleval_status nn_infer_all(cleval_nn *nn)
{
    nn->shapes_valid = false;
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead) continue;
        op->workspace = 0;
        op->flops = 0;
        op->mixes_batch = false;
        cleval_status status = op->kind->infer(nn, op);
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
        if (op->workspace > (size_t)NN_MAX_ELEMENTS * sizeof(float))
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                              "needs a %zu-byte work buffer, more than supported", op->workspace);
    }
    nn->shapes_valid = true;
    return CLEVAL_OK;
}
